//! The analysis cache: the recipe made for an object, kept by its SHA-256,
//! so that an upstream object is analysed (preflate-rs, the costly part) once
//! even when it comes back: under a second key, or in an export run again
//! after one that failed before it was committed.
//!
//! `STATE/analyses/<sha256 hex>.<variant>` holds the recipe's bytes (empty for
//! an object that is its own expanded form); the variant names the analysis
//! settings that change the recipe (`x`: xz streams reproduced, `d`: not).
//! An entry is a hint, never trusted: the expanded form is decoded again by
//! the recipe (`ferry_recipe::expand_by`) and the recipe is rebuilt and its
//! SHA-256 checked before use, as after a fresh analysis; an entry that fails
//! is ignored and replaced. Entries of objects no longer in the catalog are
//! removed after each export.

use anyhow::{Context, Result};
use ferry_protocol::id::Sha256;
use std::collections::HashSet;
use std::path::PathBuf;

/// The directory of kept recipes, and what this export's fresh analyses
/// found (shared by its clones).
#[derive(Clone)]
pub(crate) struct Recipes {
    dir: PathBuf,
    tally: super::tally::SharedTally,
}

impl Recipes {
    /// The cache at `dir` (created on first write).
    pub(crate) fn new(dir: PathBuf) -> Self {
        Recipes {
            dir,
            tally: Default::default(),
        }
    }

    /// Keeps the recipe of a fresh analysis of object `key` (`sha`) that
    /// checked, and counts its streams (`report`) in the export's report. A
    /// recipe that cannot be written is only warned about: the object is
    /// analysed again next time.
    pub(crate) fn keep_fresh(
        &self,
        key: &ferry_protocol::path::ObjectKey,
        sha: &Sha256,
        reproduce_xz: bool,
        recipe: &[u8],
        report: &ferry_recipe::Report,
    ) {
        self.tally.add(report);
        if let Err(e) = self.put(sha, reproduce_xz, recipe) {
            eprintln!("ferry-out: warning: cannot keep the analysis of {key}: {e:#}");
        }
    }

    /// The streams of the fresh analyses counted so far.
    pub(crate) fn streams(&self) -> super::StreamTally {
        self.tally.get()
    }

    fn path(&self, sha: &Sha256, reproduce_xz: bool) -> PathBuf {
        let variant = if reproduce_xz { "x" } else { "d" };
        self.dir.join(format!("{}.{variant}", sha.to_hex()))
    }

    /// The recipe kept for object `sha` under these settings, if any. A file
    /// that cannot be read counts as none (the object is analysed again).
    pub(crate) fn get(&self, sha: &Sha256, reproduce_xz: bool) -> Option<Vec<u8>> {
        std::fs::read(self.path(sha, reproduce_xz)).ok()
    }

    /// Keeps `recipe` for object `sha`.
    pub(crate) fn put(&self, sha: &Sha256, reproduce_xz: bool, recipe: &[u8]) -> Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        super::write_cache_file(&self.path(sha, reproduce_xz), recipe)
    }

    /// Removes the recipes of object `sha` (under either setting), if kept.
    pub(crate) fn remove(&self, sha: &Sha256) -> Result<()> {
        for reproduce_xz in [false, true] {
            super::remove_cache_file(&self.path(sha, reproduce_xz))?;
        }
        Ok(())
    }

    /// Removes every recipe whose object is not in `keep`.
    pub(crate) fn prune(&self, keep: &HashSet<Sha256>) -> Result<()> {
        super::prune_cache_dir(&self.dir, keep, |name| {
            name.split_once('.')
                .and_then(|(hex, _)| Sha256::from_hex(hex))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipes_are_kept_by_digest_and_settings_and_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let r = Recipes::new(dir.path().join("analyses"));
        let (a, b) = (Sha256::of(b"a"), Sha256::of(b"b"));
        assert_eq!(r.get(&a, false), None);
        r.put(&a, false, b"recipe a").unwrap();
        r.put(&b, true, b"").unwrap();
        assert_eq!(r.get(&a, false).as_deref(), Some(&b"recipe a"[..]));
        assert_eq!(r.get(&a, true), None);
        assert_eq!(r.get(&b, true).as_deref(), Some(&b""[..]));
        r.prune(&HashSet::from([b])).unwrap();
        assert_eq!(r.get(&a, false), None);
        assert_eq!(r.get(&b, true).as_deref(), Some(&b""[..]));
    }
}
