//! What has been published to one bucket and prefix, kept beside the state
//! (`STATE/publish/<target>/record.redb`), so that a publish uploads only
//! what the bucket lacks without asking it about every object.
//!
//! - `objects`: every SHA-256 uploaded under `objects/` (with its size),
//!   recorded once its PUT succeeded (a lost record only costs a re-upload
//!   of the same bytes under the same key).
//! - `refs`: how many keys of the last published generation (and its
//!   derived files) name a digest; `orphaned`: digests whose count fell to
//!   zero, with the publish number that dropped them. `--prune` deletes the
//!   orphans that no kept generation names.
//! - `index_files`: index files uploaded under `index/`, with the last
//!   publish number that named them.
//! - `gens`: publish number → the generation's name and manifest (JSON).

use super::manifest::Manifest;
use anyhow::{Context, Result};
use ferry_protocol::id::Sha256;
use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    WriteTransaction,
};
use std::collections::BTreeMap;
use std::path::Path;

const OBJECTS: TableDefinition<&[u8; 32], u64> = TableDefinition::new("objects");
const REFS: TableDefinition<&[u8; 32], u64> = TableDefinition::new("refs");
const ORPHANED: TableDefinition<&[u8; 32], u64> = TableDefinition::new("orphaned");
const INDEX_FILES: TableDefinition<&[u8; 32], u64> = TableDefinition::new("index_files");
const GENS: TableDefinition<u64, &[u8]> = TableDefinition::new("gens");

/// The record of one bucket and prefix.
pub struct Record {
    db: Database,
}

/// A published generation, as recorded.
#[derive(Clone, Debug)]
pub struct Published {
    /// Its publish number (1, 2, …).
    pub seq: u64,
    /// Its manifest.
    pub manifest: Manifest,
}

fn ctx<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> anyhow::Error {
    move |e| anyhow::anyhow!("publish record: cannot {what}: {e}")
}

impl Record {
    /// Opens (creates) the record at `path`. Another publish to the same
    /// bucket holds it locked.
    pub fn open(path: &Path) -> Result<Record> {
        let db = Database::create(path).with_context(|| {
            format!(
                "cannot open the publish record {} (is another `ferry-in publish` to this bucket running?)",
                path.display()
            )
        })?;
        let txn = db.begin_write().map_err(ctx("write"))?;
        txn.open_table(OBJECTS).map_err(ctx("open"))?;
        txn.open_table(REFS).map_err(ctx("open"))?;
        txn.open_table(ORPHANED).map_err(ctx("open"))?;
        txn.open_table(INDEX_FILES).map_err(ctx("open"))?;
        txn.open_table(GENS).map_err(ctx("open"))?;
        txn.commit().map_err(ctx("commit"))?;
        Ok(Record { db })
    }

    /// Whether `sha` was uploaded under `objects/`.
    pub fn has_object(&self, sha: &Sha256) -> Result<bool> {
        let txn = self.db.begin_read().map_err(ctx("read"))?;
        let t = txn.open_table(OBJECTS).map_err(ctx("open"))?;
        Ok(t.get(&sha.0).map_err(ctx("read"))?.is_some())
    }

    /// How many objects are recorded as uploaded.
    pub fn objects(&self) -> Result<u64> {
        let txn = self.db.begin_read().map_err(ctx("read"))?;
        let t = txn.open_table(OBJECTS).map_err(ctx("open"))?;
        t.len().map_err(ctx("read"))
    }

    /// Records these objects as uploaded, in one commit.
    pub fn add_objects(&self, done: &[(Sha256, u64)]) -> Result<()> {
        let txn = self.db.begin_write().map_err(ctx("write"))?;
        {
            let mut t = txn.open_table(OBJECTS).map_err(ctx("open"))?;
            for (sha, size) in done {
                t.insert(&sha.0, *size).map_err(ctx("write"))?;
            }
        }
        txn.commit().map_err(ctx("commit"))
    }

    /// Whether the index file `sha` was uploaded.
    pub fn has_index(&self, sha: &Sha256) -> Result<bool> {
        let txn = self.db.begin_read().map_err(ctx("read"))?;
        let t = txn.open_table(INDEX_FILES).map_err(ctx("open"))?;
        Ok(t.get(&sha.0).map_err(ctx("read"))?.is_some())
    }

    /// Records the index file `sha` as uploaded (named by no generation yet).
    pub fn add_index(&self, sha: &Sha256) -> Result<()> {
        let txn = self.db.begin_write().map_err(ctx("write"))?;
        {
            let mut t = txn.open_table(INDEX_FILES).map_err(ctx("open"))?;
            if t.get(&sha.0).map_err(ctx("read"))?.is_none() {
                t.insert(&sha.0, 0).map_err(ctx("write"))?;
            }
        }
        txn.commit().map_err(ctx("commit"))
    }

    /// The published generations, oldest first.
    pub fn published(&self) -> Result<Vec<Published>> {
        let txn = self.db.begin_read().map_err(ctx("read"))?;
        let t = txn.open_table(GENS).map_err(ctx("open"))?;
        let mut out = Vec::new();
        for row in t.iter().map_err(ctx("read"))? {
            let (k, v) = row.map_err(ctx("read"))?;
            let manifest = serde_json::from_slice(v.value())
                .with_context(|| format!("publish record: generation {} is damaged", k.value()))?;
            out.push(Published {
                seq: k.value(),
                manifest,
            });
        }
        Ok(out)
    }

    /// The last published generation.
    pub fn last(&self) -> Result<Option<Published>> {
        let txn = self.db.begin_read().map_err(ctx("read"))?;
        let t = txn.open_table(GENS).map_err(ctx("open"))?;
        let Some((k, v)) = t.last().map_err(ctx("read"))? else {
            return Ok(None);
        };
        let manifest = serde_json::from_slice(v.value())
            .with_context(|| format!("publish record: generation {} is damaged", k.value()))?;
        Ok(Some(Published {
            seq: k.value(),
            manifest,
        }))
    }

    /// Records `manifest` as published (its `current` was written), with
    /// the reference changes from the last published generation to it
    /// (`changes`: digest → +n or −n). Digests whose count falls to zero
    /// become orphans of this publish; an orphan named again is one no more.
    pub fn commit_published(
        &self,
        manifest: &Manifest,
        changes: &BTreeMap<Sha256, i64>,
    ) -> Result<u64> {
        let txn = self.db.begin_write().map_err(ctx("write"))?;
        let seq = {
            let gens = txn.open_table(GENS).map_err(ctx("open"))?;
            let last = gens.last().map_err(ctx("read"))?.map(|(k, _)| k.value());
            last.unwrap_or(0) + 1
        };
        apply_changes(&txn, seq, changes)?;
        {
            let mut idx = txn.open_table(INDEX_FILES).map_err(ctx("open"))?;
            for f in [&manifest.index.base, &manifest.index.delta] {
                idx.insert(&f.sha256.0, seq).map_err(ctx("write"))?;
            }
            let mut gens = txn.open_table(GENS).map_err(ctx("open"))?;
            let bytes = serde_json::to_vec(manifest)?;
            gens.insert(seq, bytes.as_slice()).map_err(ctx("write"))?;
        }
        txn.commit().map_err(ctx("commit"))?;
        Ok(seq)
    }

    /// Orphans dropped at or before publish `seq` (named by no generation
    /// published at `seq` or later).
    pub fn orphans_through(&self, seq: u64) -> Result<Vec<Sha256>> {
        let txn = self.db.begin_read().map_err(ctx("read"))?;
        let t = txn.open_table(ORPHANED).map_err(ctx("open"))?;
        let mut out = Vec::new();
        for row in t.iter().map_err(ctx("read"))? {
            let (k, v) = row.map_err(ctx("read"))?;
            if v.value() <= seq {
                out.push(Sha256(*k.value()));
            }
        }
        Ok(out)
    }

    /// Index files last named before publish `seq`.
    pub fn index_files_before(&self, seq: u64) -> Result<Vec<Sha256>> {
        let txn = self.db.begin_read().map_err(ctx("read"))?;
        let t = txn.open_table(INDEX_FILES).map_err(ctx("open"))?;
        let mut out = Vec::new();
        for row in t.iter().map_err(ctx("read"))? {
            let (k, v) = row.map_err(ctx("read"))?;
            // 0: uploaded by a publish that never moved `current`.
            if v.value() < seq && v.value() != 0 {
                out.push(Sha256(*k.value()));
            }
        }
        Ok(out)
    }

    /// Forgets deleted objects (they are orphans).
    pub fn forget_objects(&self, gone: &[Sha256]) -> Result<()> {
        let txn = self.db.begin_write().map_err(ctx("write"))?;
        {
            let mut o = txn.open_table(OBJECTS).map_err(ctx("open"))?;
            let mut orph = txn.open_table(ORPHANED).map_err(ctx("open"))?;
            for sha in gone {
                o.remove(&sha.0).map_err(ctx("write"))?;
                orph.remove(&sha.0).map_err(ctx("write"))?;
            }
        }
        txn.commit().map_err(ctx("commit"))
    }

    /// Forgets deleted index files.
    pub fn forget_index_files(&self, gone: &[Sha256]) -> Result<()> {
        let txn = self.db.begin_write().map_err(ctx("write"))?;
        {
            let mut t = txn.open_table(INDEX_FILES).map_err(ctx("open"))?;
            for sha in gone {
                t.remove(&sha.0).map_err(ctx("write"))?;
            }
        }
        txn.commit().map_err(ctx("commit"))
    }

    /// Forgets the generations published before `seq` (their manifests
    /// were deleted).
    pub fn forget_gens_before(&self, seq: u64) -> Result<()> {
        let txn = self.db.begin_write().map_err(ctx("write"))?;
        {
            let mut t = txn.open_table(GENS).map_err(ctx("open"))?;
            t.retain(|k, _| k >= seq).map_err(ctx("write"))?;
        }
        txn.commit().map_err(ctx("commit"))
    }
}

fn apply_changes(txn: &WriteTransaction, seq: u64, changes: &BTreeMap<Sha256, i64>) -> Result<()> {
    let mut refs = txn.open_table(REFS).map_err(ctx("open"))?;
    let mut orph = txn.open_table(ORPHANED).map_err(ctx("open"))?;
    for (sha, d) in changes {
        if *d == 0 {
            continue;
        }
        let n = refs
            .get(&sha.0)
            .map_err(ctx("read"))?
            .map_or(0, |v| v.value());
        let next = (n as i64 + d).max(0) as u64;
        if next == 0 {
            refs.remove(&sha.0).map_err(ctx("write"))?;
            orph.insert(&sha.0, seq).map_err(ctx("write"))?;
        } else {
            refs.insert(&sha.0, next).map_err(ctx("write"))?;
            orph.remove(&sha.0).map_err(ctx("write"))?;
        }
    }
    Ok(())
}
