//! A suite's release files: `InRelease`, or `Release` with `Release.gpg`,
//! fetched and verified against the keyring.

use super::AptSource;
use anyhow::{anyhow, bail, Context, Result};
use ferry_formats::deb::Release;

/// A release file: its path and bytes.
pub(super) type ReleaseFile = (String, Vec<u8>);

/// The largest InRelease/Release/Release.gpg accepted.
const MAX_RELEASE_BYTES: u64 = 64 << 20;

impl AptSource {
    /// Fetches one suite's release files, verified. Returns them (path,
    /// bytes) and the parsed Release.
    pub(super) fn fetch_release(&self, suite: &str) -> Result<(Vec<ReleaseFile>, Release)> {
        let base = format!("dists/{suite}");
        let inrel_path = format!("{base}/InRelease");
        let rel_path = format!("{base}/Release");
        let gpg_path = format!("{base}/Release.gpg");
        let inrel = self.get_small(&inrel_path)?;
        let rel = self.get_small(&rel_path)?;
        let gpg = match rel {
            Some(_) => self.get_small(&gpg_path)?,
            None => None,
        };
        let mut files = Vec::new();
        let mut text = None;
        if let Some(b) = inrel {
            text = Some(self.keyring.verify_cleartext(&inrel_path, &b)?);
            files.push((inrel_path.clone(), b));
        }
        if let Some(r) = rel {
            match gpg {
                Some(g) => {
                    self.keyring
                        .verify_detached(&gpg_path, &r, &g)?;
                    if text.is_none() {
                        text = Some(String::from_utf8(r.clone()).map_err(|_| {
                            anyhow!("{rel_path} is not UTF-8")
                        })?);
                    }
                    files.push((rel_path.clone(), r));
                    files.push((gpg_path, g));
                }
                None if text.is_some() => {
                    // An unsigned Release beside a signed InRelease: carried
                    // only if it says the same, so nothing unverified ships.
                    let same = std::str::from_utf8(&r)
                        .ok()
                        .is_some_and(|t| t.trim_end() == text.as_deref().unwrap_or("").trim_end());
                    if same {
                        files.push((rel_path.clone(), r));
                    } else {
                        eprintln!(
                            "ferry-out: warning: source {:?}: {rel_path} has no Release.gpg and differs from InRelease; not carried",
                            self.name
                        );
                    }
                }
                None => bail!(
                    "{base}: upstream has no InRelease and no Release.gpg beside Release; nothing to verify ({})",
                    self.url_of(&gpg_path)
                ),
            }
        }
        let Some(text) = text else {
            bail!(
                "suite {suite:?}: neither {} nor {} exists upstream",
                self.url_of(&inrel_path),
                self.url_of(&rel_path)
            );
        };
        let release = Release::parse(&text).with_context(|| format!("{base}/Release"))?;
        Ok((files, release))
    }

    /// A small file (release files), or `None` on 404.
    fn get_small(&self, path: &str) -> Result<Option<Vec<u8>>> {
        self.client
            .get_small(&self.url_of(path), MAX_RELEASE_BYTES)
            .with_context(|| path.to_string())
    }
}
