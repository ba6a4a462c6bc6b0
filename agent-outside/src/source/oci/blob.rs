//! The blob cache, `STATE/cache/<source>/blobs/`: downloads (through
//! `crate::upstream`) named by their digest's hex, resumed from a `.part` an
//! interrupted export left, and removed once the last bundle holds them.

use super::registry::Registry;
use crate::source::ScanCtx;
use crate::upstream::{Expect, UpstreamError};
use anyhow::{Context, Result};
use ferry_formats::oci::{parse_path, Digest, OciPath};
use ferry_formats::rpm::Checksum;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

impl Registry {
    /// Downloads blob `digest` of `repo` into `dir` as `<hex>` and returns
    /// its path, through the shared upstream download: the bytes go to
    /// `<hex>.part` first, a broken connection is resumed with a Range
    /// request (in this export, or from the `.part` the next export finds),
    /// and the SHA-256 is checked before the rename, so a `<hex>` file is
    /// always whole and right. An expired token is renewed once.
    pub fn fetch_blob(&self, repo: &str, digest: &Digest, dir: &Path) -> Result<PathBuf> {
        self.fetch_blob_sized(repo, digest, dir, None)
    }

    /// [`fetch_blob`](Self::fetch_blob) of a blob whose size is known: the
    /// download stops with an error past `size` bytes instead of filling the
    /// disk until the checksum fails.
    pub fn fetch_blob_sized(
        &self,
        repo: &str,
        digest: &Digest,
        dir: &Path,
        size: Option<u64>,
    ) -> Result<PathBuf> {
        let hex = digest.hex();
        let done = dir.join(&hex);
        if done.is_file() {
            return Ok(done);
        }
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let url = format!("{}/v2/{repo}/blobs/{digest}", self.base);
        let expect = Expect {
            size,
            checksum: Some(Checksum::new("sha256", &hex)?),
        };
        let mut renewed = false;
        loop {
            let bearer = self.bearer(repo);
            let headers: Vec<(&str, &str)> = bearer
                .as_deref()
                .map(|b| ("Authorization", b))
                .into_iter()
                .collect();
            match self.client.download_with(&url, &done, &expect, &headers) {
                Ok(_) => return Ok(done),
                Err(UpstreamError::Status { status: 401, .. }) if !renewed => {
                    renewed = true;
                    self.reauthorize(repo)?;
                }
                Err(e) => return Err(explain(e, digest, &dir.join(format!("{hex}.part")))),
            }
        }
    }
}

/// Says what a failed blob download means for the next export.
fn explain(e: UpstreamError, digest: &Digest, part: &Path) -> anyhow::Error {
    let kept = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    let why = match &e {
        UpstreamError::ChecksumMismatch { .. } => Some(format!(
            "the registry sent content whose SHA-256 is not the blob's digest {digest}"
        )),
        UpstreamError::Connection { .. } if kept > 0 => Some(format!(
            "{kept} bytes are kept in {} and the next export resumes from there",
            part.display()
        )),
        _ => None,
    };
    match why {
        Some(w) => anyhow::Error::new(e).context(w),
        None => anyhow::Error::new(e),
    }
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
