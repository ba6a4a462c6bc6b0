//! Core metadata of a wheel (its `Requires-Dist`): the index's PEP 658
//! `.metadata` file when offered, else `METADATA` read from the wheel
//! itself; cached by the wheel's SHA-256 in `STATE/cache/<source>/metadata/`.

use super::index::MAX_PAGE;
use super::page::IndexFile;
use super::PypiSource;
use anyhow::{anyhow, bail, Context, Result};
use ferry_protocol::id::Sha256;
use std::path::Path;

impl PypiSource {
    /// The core metadata of a wheel: cached, or the index's `.metadata`
    /// file, or `METADATA` from the wheel itself (downloaded into `downloads`).
    pub(super) fn metadata(&self, f: &IndexFile, sha256: &str, cache: &Path) -> Result<String> {
        let meta_dir = cache.join("metadata");
        let cached = meta_dir.join(sha256);
        if let Ok(text) = std::fs::read_to_string(&cached) {
            return Ok(text);
        }
        std::fs::create_dir_all(&meta_dir)
            .with_context(|| format!("cannot create {}", meta_dir.display()))?;
        let text = match &f.metadata {
            Some(hash) => {
                let url = format!("{}.metadata", f.url.split('#').next().unwrap_or(&f.url));
                let offered = || format!("{url}: the index offers this metadata file");
                let bytes = self
                    .client
                    .get_small(&url, MAX_PAGE)
                    .with_context(offered)?
                    .ok_or_else(|| anyhow!("{}, but it is not there (HTTP 404)", offered()))?;
                if let Some(h) = hash {
                    let actual = Sha256::of(&bytes).to_hex();
                    if actual != *h {
                        bail!(
                            "{}.metadata from {url}: the index states SHA-256 {h}, the download has {actual}", f.filename
                        );
                    }
                }
                String::from_utf8_lossy(&bytes).into_owned()
            }
            None => {
                let dl = cache.join("downloads");
                std::fs::create_dir_all(&dl)
                    .with_context(|| format!("cannot create {}", dl.display()))?;
                let path = dl.join(&f.filename);
                if !path.is_file() {
                    self.download(&f.url, sha256, &f.filename, &path)?;
                }
                wheel_metadata(&path)
                    .with_context(|| format!("cannot read METADATA from {}", f.filename))?
            }
        };
        ferry_agent_common::fsx::write_atomic(&cached, text.as_bytes())?;
        Ok(text)
    }
}

/// `METADATA` of a wheel file: the `*.dist-info/METADATA` at its top level.
fn wheel_metadata(path: &Path) -> Result<String> {
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let bytes = ferry_formats::pypi::wheel_metadata(std::io::BufReader::new(f), MAX_PAGE)?;
    String::from_utf8(bytes).context("METADATA is not UTF-8")
}

/// The `Requires-Dist` values of a core metadata file (headers only,
/// continuation lines joined).
pub(super) fn requires_dist(metadata: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut in_req = false;
    for line in metadata.lines() {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if in_req {
                if let Some(last) = out.last_mut() {
                    last.push(' ');
                    last.push_str(line.trim());
                }
            }
            continue;
        }
        in_req = false;
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("Requires-Dist") {
                out.push(v.trim().to_string());
                in_req = true;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_requirements() {
        let m = "Metadata-Version: 2.1\nName: a\nRequires-Dist: b>=1\nRequires-Dist: c;\n  extra == \"x\"\nSummary: s\n\nRequires-Dist: not-a-header\n";
        assert_eq!(requires_dist(m), vec!["b>=1", "c; extra == \"x\""]);
    }
}
