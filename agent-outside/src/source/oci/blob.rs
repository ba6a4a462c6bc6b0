//! The blob cache, `STATE/cache/<source>/blobs/`: downloads named by their
//! digest's hex, resumed from a `.part` an interrupted export left, and
//! removed once the last bundle holds them.

use super::registry::Registry;
use crate::source::ScanCtx;
use anyhow::{anyhow, bail, Context, Result};
use ferry_formats::oci::{parse_path, Digest, OciPath};
use ferry_protocol::id::Sha256Hasher;
use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

impl Registry {
    /// Downloads blob `digest` of `repo` into `dir` as `<hex>` and returns
    /// its path. The bytes go to `<hex>.part` first; a `.part` an interrupted
    /// run left is resumed with a Range request (started over when the
    /// registry answers the whole blob instead). The digest is checked before
    /// the rename, so a `<hex>` file is always whole and right.
    pub fn fetch_blob(&self, repo: &str, digest: &Digest, dir: &Path) -> Result<PathBuf> {
        let hex = digest.hex();
        let done = dir.join(&hex);
        if done.is_file() {
            return Ok(done);
        }
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let part = dir.join(format!("{hex}.part"));
        let url = format!("{}/v2/{repo}/blobs/{digest}", self.base);
        self.download_part(repo, digest, &url, &part)?;
        check_and_keep(&url, digest, &part, &done)?;
        Ok(done)
    }

    /// Brings `part` to the blob's full length: resumes it with a Range
    /// request, or starts over when the registry sends the whole blob.
    fn download_part(&self, repo: &str, digest: &Digest, url: &str, part: &Path) -> Result<()> {
        let have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
        let range = format!("bytes={have}-");
        let headers: Vec<(&str, &str)> = if have > 0 {
            vec![("Range", range.as_str())]
        } else {
            Vec::new()
        };
        let resp = self.request(repo, &format!("{repo}/blobs/{digest}"), &headers)?;
        let status = resp.status().as_u16();
        let resumed_from = match status {
            206 => {
                let cr = resp
                    .headers()
                    .get("content-range")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if !cr.starts_with(&format!("bytes {have}-")) {
                    bail!("{url}: asked for bytes from {have}, the registry answered the range {cr:?}");
                }
                have
            }
            200 => 0,
            // The part is already whole.
            416 if have > 0 => return Ok(()),
            _ => bail!("{url}: HTTP {status}"),
        };
        let mut file = if resumed_from > 0 {
            std::fs::OpenOptions::new().append(true).open(part)
        } else {
            std::fs::File::create(part)
        }
        .with_context(|| format!("cannot write {}", part.display()))?;
        let expected: Option<u64> = resp
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let mut body = resp.into_body().into_with_config().limit(u64::MAX).reader();
        let got = append_body(url, &mut body, &mut file, part, resumed_from)?;
        if let Some(e) = expected.filter(|&e| got < e) {
            bail!(
                "{url}: the connection ended after {got} of {e} bytes; they are kept in {} \
                 and the next export resumes from there",
                part.display()
            );
        }
        Ok(())
    }
}

/// Copies `body` to the end of `file` (the `.part` at `part`); returns the
/// bytes copied. A broken connection keeps what arrived, for the next run.
fn append_body(
    url: &str,
    body: &mut dyn Read,
    file: &mut std::fs::File,
    part: &Path,
    resumed_from: u64,
) -> Result<u64> {
    let mut got = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = file.flush();
                return Err(anyhow!(e).context(format!(
                    "{url}: the download stopped after {} bytes ({got} in this run); \
                     they are kept in {} and the next export resumes from there",
                    resumed_from + got,
                    part.display()
                )));
            }
        };
        file.write_all(&buf[..n])
            .with_context(|| format!("cannot write {}", part.display()))?;
        got += n as u64;
    }
    file.flush()
        .with_context(|| format!("cannot write {}", part.display()))?;
    Ok(got)
}

/// Checks the SHA-256 of `part` against `digest` and renames it to `done`;
/// a wrong `part` is removed, so the next run starts over.
fn check_and_keep(url: &str, digest: &Digest, part: &Path, done: &Path) -> Result<()> {
    let mut hasher = Sha256Hasher::new();
    let mut f =
        std::fs::File::open(part).with_context(|| format!("cannot read {}", part.display()))?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", part.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let actual = hasher.finish();
    if actual != digest.sha256() {
        let _ = std::fs::remove_file(part);
        bail!("{url}: the registry sent content with SHA-256 {actual}, not the blob's digest {digest}");
    }
    std::fs::rename(part, done)
        .with_context(|| format!("cannot rename {} to {}", part.display(), done.display()))
}

/// Deletes cached downloads (whole or `.part`) the last bundle already holds.
pub(super) fn clean_cache(cx: &ScanCtx<'_>, blob_dir: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(blob_dir) else {
        return Ok(());
    };
    let shipped: HashSet<&str> = cx
        .previous_paths()
        .filter_map(|(p, _)| match parse_path(p) {
            Some(OciPath::Blob(hex)) => Some(hex),
            _ => None,
        })
        .collect();
    for e in entries {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let hex = name.strip_suffix(".part").unwrap_or(&name);
        if shipped.contains(hex) {
            std::fs::remove_file(e.path())
                .with_context(|| format!("cannot remove {}", e.path().display()))?;
        }
    }
    Ok(())
}
