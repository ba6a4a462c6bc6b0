//! The outside's copies of the objects the inside holds, kept so that the
//! next export can patch a new release against its predecessor.
//!
//! `STATE/objects/<sha256 hex>` holds the bytes of every object of the last
//! exported catalog that is small enough to patch against. A copy is checked
//! against its name before use (a rotten copy is dropped, and the object
//! then ships whole), and copies no longer in the catalog are removed after
//! each export. Copies are written without syncing (`write_cache_file`):
//! the check on read catches a copy a crash tore.

use anyhow::{Context, Result};
use ferry_protocol::id::Sha256;
use std::collections::HashSet;
use std::path::PathBuf;

/// The directory of kept objects.
#[derive(Clone)]
pub(crate) struct References {
    dir: PathBuf,
}

impl References {
    /// The store at `dir` (created on first write).
    pub(crate) fn new(dir: PathBuf) -> Self {
        References { dir }
    }

    /// Where the copies are.
    pub(crate) fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    fn path(&self, sha: &Sha256) -> PathBuf {
        self.dir.join(sha.to_hex())
    }

    /// The bytes of object `sha`, if kept and intact.
    pub(crate) fn get(&self, sha: &Sha256) -> Result<Option<Vec<u8>>> {
        let path = self.path(sha);
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        if Sha256::of(&data) != *sha {
            eprintln!(
                "ferry-out: warning: {} is damaged (its SHA-256 differs from its name); removed, \
                 the objects patched against it ship whole",
                path.display()
            );
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
            return Ok(None);
        }
        Ok(Some(data))
    }

    /// Keeps a copy of `data`, whose SHA-256 is `sha`.
    pub(crate) fn put(&self, sha: &Sha256, data: &[u8]) -> Result<()> {
        let path = self.path(sha);
        if path.exists() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        super::write_cache_file(&path, data)
    }

    /// Removes every copy whose digest is not in `keep`.
    pub(crate) fn prune(&self, keep: &HashSet<Sha256>) -> Result<()> {
        super::prune_cache_dir(&self.dir, keep, Sha256::from_hex)
    }
}
