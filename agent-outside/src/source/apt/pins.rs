//! Pins: the stanzas of pinned packages are remembered in the source's
//! cache directory (`pinned.json`); a pinned `.deb` the selection no longer
//! has is kept from the last bundle, its stanza shipped under
//! `ferry/pinned/<suite>/<component>/binary-<arch>/Packages`.

use super::index::Stanza;
use super::AptSource;
use crate::source::ScanCtx;
use anyhow::{Context, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// What the pin step decided.
pub(super) struct Pins {
    /// `pinned.json`.
    file: PathBuf,
    /// Pinned stanzas by `.deb` path.
    pinned: BTreeMap<String, Stanza>,
    /// `.deb` paths to keep from the last bundle.
    pub(super) keep: Vec<String>,
    /// `ferry/pinned/…/Packages` paths and their text.
    pub(super) packages: BTreeMap<String, String>,
}

impl AptSource {
    /// Remembers the stanzas of pinned packages; returns the ones to keep
    /// that the selection (`debs`) no longer has but the last bundle does.
    pub(super) fn pin(
        &self,
        cx: &ScanCtx<'_>,
        selected: &[&Stanza],
        debs: &BTreeMap<&str, &Stanza>,
    ) -> Result<Pins> {
        let file = cx.cache_dir.join("pinned.json");
        let mut pinned: BTreeMap<String, Stanza> = match std::fs::read(&file) {
            Ok(b) => serde_json::from_slice(&b)
                .with_context(|| format!("cannot read {}", file.display()))?,
            Err(_) => BTreeMap::new(),
        };
        pinned.retain(|_, st| self.s.pin.contains(&st.package));
        for st in selected {
            if self.s.pin.contains(&st.package) {
                pinned.insert(st.filename.clone(), (*st).clone());
            }
        }
        let prev: BTreeSet<&str> = cx.previous_paths().map(|(p, _)| p).collect();
        let mut keep = Vec::new();
        let mut packages: BTreeMap<String, String> = BTreeMap::new();
        for (fname, st) in &pinned {
            if !debs.contains_key(fname.as_str()) && prev.contains(fname.as_str()) {
                keep.push(fname.clone());
                packages
                    .entry(format!(
                        "ferry/pinned/{}/{}/binary-{}/Packages",
                        st.suite, st.component, st.arch
                    ))
                    .or_default()
                    .push_str(&format!("{}\n", st.text));
            }
        }
        Ok(Pins {
            file,
            pinned,
            keep,
            packages,
        })
    }
}

impl Pins {
    /// Writes `pinned.json` for the next export.
    pub(super) fn save(&self) -> Result<()> {
        let tmp = self.file.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&self.pinned)?)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.file)
            .with_context(|| format!("cannot write {}", self.file.display()))
    }
}
