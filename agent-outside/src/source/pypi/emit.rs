//! What a scan lists: every selected file (downloaded when the exporter
//! opens it, checked against the index's SHA-256 as it streams) and one
//! deterministic `simple/<project>/index.json` per project.

use super::pins::Kept;
use super::select::Selected;
use super::PypiSource;
use crate::source::{Item, ItemKind, ScanCtx};
use anyhow::{anyhow, bail, Context, Result};
use ferry_formats::pypi::{file_path, index_path, IndexEntry, ProjectIndex};
use ferry_protocol::id::{Sha256, Sha256Hasher};
use std::collections::HashSet;
use std::io::Read;
use std::path::Path;

impl PypiSource {
    /// Lists the selected files and the index of every project (kept pins
    /// included).
    pub(super) fn emit(
        &self,
        cx: &ScanCtx<'_>,
        selected: &Selected,
        kept: Kept,
        sink: &mut dyn FnMut(Item) -> Result<()>,
    ) -> Result<()> {
        let src = &self.name;
        let downloads = cx.cache_dir.join("downloads");
        let mut projects = kept;
        for (project, files) in selected {
            for f in files.values() {
                let sha = f.sha256.clone().expect("checked by select_files");
                projects
                    .entry(project.clone())
                    .or_default()
                    .push(IndexEntry {
                        filename: f.filename.clone(),
                        sha256: sha.clone(),
                        requires_python: f.requires_python.clone(),
                        yanked: f.yanked.clone(),
                    });
                let (url, cached) = (f.url.clone(), downloads.join(&f.filename));
                let what = format!("source {src:?}: {} from {url}", f.filename);
                let want = sha.clone();
                let agent = self.agent.clone();
                sink(Item {
                    path: file_path(&f.filename),
                    kind: ItemKind::File {
                        executable: false,
                        fingerprint: Some(format!("sha256:{sha}")),
                        expected_sha256: Sha256::from_hex(&sha),
                        open: Box::new(move || open_file(&agent, &url, &cached, &want, what)),
                    },
                })?;
            }
        }
        for (project, mut files) in projects {
            files.sort_by(|a, b| a.filename.cmp(&b.filename));
            let index = ProjectIndex {
                name: project.clone(),
                files,
            };
            let mut bytes = serde_json::to_vec_pretty(&index)?;
            bytes.push(b'\n');
            sink(Item {
                path: index_path(&project),
                kind: ItemKind::File {
                    executable: false,
                    fingerprint: None,
                    expected_sha256: None,
                    open: Box::new(move || {
                        Ok(Box::new(std::io::Cursor::new(bytes)) as Box<dyn Read>)
                    }),
                },
            })?;
        }
        Ok(())
    }
}

/// Drops downloads (made to read a wheel's `METADATA`) that nothing
/// selected refers to any more.
pub(super) fn clean_downloads(cx: &ScanCtx<'_>, selected: &Selected) {
    let wanted: HashSet<&str> = selected
        .values()
        .flat_map(|m| m.keys().map(String::as_str))
        .collect();
    if let Ok(rd) = std::fs::read_dir(cx.cache_dir.join("downloads")) {
        for e in rd.flatten() {
            let n = e.file_name();
            if !n.to_str().is_some_and(|n| wanted.contains(n)) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// A reader that checks the SHA-256 of what passes through and fails at the
/// end, naming `what`, when it is not the one expected.
pub(super) struct Verify {
    inner: Box<dyn Read>,
    hasher: Option<Sha256Hasher>,
    want: Sha256,
    what: String,
}

impl Verify {
    pub(super) fn new(inner: Box<dyn Read>, want_hex: &str, what: String) -> Result<Verify> {
        let want = Sha256::from_hex(want_hex).ok_or_else(|| {
            anyhow!("{what}: the index's sha256 {want_hex:?} is not 64 hex digits")
        })?;
        Ok(Verify {
            inner,
            hasher: Some(Sha256Hasher::new()),
            want,
            what,
        })
    }
}

impl Read for Verify {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            if let Some(h) = &mut self.hasher {
                h.update(&buf[..n]);
            }
        } else if let Some(h) = self.hasher.take() {
            let actual = h.finish();
            if actual != self.want {
                return Err(std::io::Error::other(format!(
                    "{}: the index states SHA-256 {}, the download has {actual} (tampered or corrupted upstream)",
                    self.what, self.want
                )));
            }
        }
        Ok(n)
    }
}

/// Opens a distribution file: the copy downloaded for its metadata if there
/// is one (removed once open), else a fresh download; either way checked
/// against the index's SHA-256 as it is read.
fn open_file(
    agent: &ureq::Agent,
    url: &str,
    cached: &Path,
    sha256: &str,
    what: String,
) -> Result<Box<dyn Read>> {
    let inner: Box<dyn Read> = match std::fs::File::open(cached) {
        Ok(f) => {
            let _ = std::fs::remove_file(cached);
            Box::new(f)
        }
        Err(_) => {
            let resp = agent
                .get(url)
                .call()
                .with_context(|| format!("cannot fetch {url}"))?;
            if !resp.status().is_success() {
                bail!("{url}: HTTP {}", resp.status());
            }
            Box::new(resp.into_body().into_with_config().limit(u64::MAX).reader())
        }
    };
    Ok(Box::new(Verify::new(inner, sha256, what)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_reader_names_the_file() {
        let want = Sha256::of(b"good").to_hex();
        let mut ok = Verify::new(Box::new(&b"good"[..]), &want, "f".into()).unwrap();
        std::io::copy(&mut ok, &mut std::io::sink()).unwrap();
        let mut bad = Verify::new(Box::new(&b"evil"[..]), &want, "x.whl from u".into()).unwrap();
        let e = std::io::copy(&mut bad, &mut std::io::sink())
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.whl from u") && e.contains(&want), "{e}");
    }
}
