//! ferry-in's state database (redb): the stream it follows, the applied
//! sequence and chain, the current catalog and generation, trusted keys,
//! held bundles and the apply history.
//!
//! The database is the truth: the `current` link is made to agree with it
//! (see [`crate::apply::recover`]). redb is single-process, so each command
//! opens it for as short a time as it can; `serve` never opens it.

use anyhow::{Context, Result};
use ferry_protocol::catalog::Catalog;
use ferry_protocol::id::{ManifestHash, StreamId};
use ferry_protocol::keys::PublicKey;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::path::Path;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const TRUST: TableDefinition<&[u8; 32], u64> = TableDefinition::new("trusted_keys");
const HISTORY: TableDefinition<u64, &[u8]> = TableDefinition::new("history");
const HELD: TableDefinition<u64, &[u8]> = TableDefinition::new("held");

/// What the inside has applied.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Applied {
    /// The stream followed (set by the first bundle applied).
    pub stream: Option<StreamId>,
    /// Last sequence applied (0 before the first).
    pub sequence: u64,
    /// Its manifest hash.
    pub hash: Option<ManifestHash>,
    /// The generation serving it.
    pub generation: Option<String>,
    /// The generation before it, kept for clients mid-download.
    pub previous_generation: Option<String>,
}

/// One applied bundle.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Manifest hash.
    pub hash: ManifestHash,
    /// When it was applied (Unix seconds).
    pub applied_at: u64,
    /// When the outside made it.
    pub created: u64,
    /// Bytes on media.
    pub bundle_bytes: u64,
    /// Objects added, changed, removed.
    pub added: u64,
    /// See `added`.
    pub changed: u64,
    /// See `added`.
    pub removed: u64,
}

/// A bundle waiting for an earlier one.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Held {
    /// Directory under `held/`.
    pub dir_name: String,
    /// Manifest hash.
    pub hash: ManifestHash,
    /// Why it waits.
    pub reason: String,
}

/// The open database.
pub struct Db {
    db: Database,
}

fn ctx<E: std::error::Error + Send + Sync + 'static>(
    what: &'static str,
) -> impl FnOnce(E) -> anyhow::Error {
    move |e| anyhow::Error::new(e).context(format!("state database: {what}"))
}

impl Db {
    /// Opens (or creates) the database.
    pub fn open(path: &Path) -> Result<Db> {
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p)
                .with_context(|| format!("cannot create state directory {}", p.display()))?;
        }
        let db = Database::create(path).with_context(|| {
            format!(
                "cannot open {} (is another ferry-in import running?)",
                path.display()
            )
        })?;
        let txn = db.begin_write().map_err(ctx("begin"))?;
        txn.open_table(META).map_err(ctx("open"))?;
        txn.open_table(TRUST).map_err(ctx("open"))?;
        txn.open_table(HISTORY).map_err(ctx("open"))?;
        txn.open_table(HELD).map_err(ctx("open"))?;
        txn.commit().map_err(ctx("commit"))?;
        Ok(Db { db })
    }

    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let txn = self.db.begin_read().map_err(ctx("begin"))?;
        let t = txn.open_table(META).map_err(ctx("open"))?;
        let v = t.get(key).map_err(ctx("read"))?.map(|v| v.value().to_vec());
        Ok(v)
    }

    /// What has been applied.
    pub fn applied(&self) -> Result<Applied> {
        Ok(match self.get_meta("applied")? {
            Some(b) => postcard::from_bytes(&b).context("state database: bad applied record")?,
            None => Applied::default(),
        })
    }

    /// The catalog of the current generation.
    pub fn catalog(&self) -> Result<Catalog> {
        Ok(match self.get_meta("catalog")? {
            Some(b) => Catalog::from_bytes(&b)?,
            None => Catalog::default(),
        })
    }

    /// Commits an apply: new applied record, catalog and history entry, and
    /// drops the held record of that sequence, in one transaction.
    pub fn commit_apply(
        &self,
        applied: &Applied,
        catalog: &Catalog,
        entry: &HistoryEntry,
    ) -> Result<()> {
        let txn = self.db.begin_write().map_err(ctx("begin"))?;
        {
            let mut m = txn.open_table(META).map_err(ctx("open"))?;
            m.insert("applied", postcard::to_stdvec(applied)?.as_slice())
                .map_err(ctx("write"))?;
            m.insert("catalog", catalog.to_bytes().as_slice())
                .map_err(ctx("write"))?;
            let mut h = txn.open_table(HISTORY).map_err(ctx("open"))?;
            h.insert(applied.sequence, postcard::to_stdvec(entry)?.as_slice())
                .map_err(ctx("write"))?;
            let mut held = txn.open_table(HELD).map_err(ctx("open"))?;
            held.remove(applied.sequence).map_err(ctx("write"))?;
        }
        txn.commit().map_err(ctx("commit"))?;
        Ok(())
    }

    /// The history entry of `sequence`.
    pub fn history_entry(&self, sequence: u64) -> Result<Option<HistoryEntry>> {
        let txn = self.db.begin_read().map_err(ctx("begin"))?;
        let t = txn.open_table(HISTORY).map_err(ctx("open"))?;
        let v = t.get(sequence).map_err(ctx("read"))?;
        Ok(match v {
            Some(v) => {
                Some(postcard::from_bytes(v.value()).context("state database: bad history entry")?)
            }
            None => None,
        })
    }

    /// The whole history, in sequence order.
    pub fn history(&self) -> Result<Vec<(u64, HistoryEntry)>> {
        let txn = self.db.begin_read().map_err(ctx("begin"))?;
        let t = txn.open_table(HISTORY).map_err(ctx("open"))?;
        let mut out = vec![];
        for r in t.iter().map_err(ctx("read"))? {
            let (k, v) = r.map_err(ctx("read"))?;
            out.push((
                k.value(),
                postcard::from_bytes(v.value()).context("state database: bad history entry")?,
            ));
        }
        Ok(out)
    }

    /// Trusted keys.
    pub fn trusted(&self) -> Result<Vec<PublicKey>> {
        let txn = self.db.begin_read().map_err(ctx("begin"))?;
        let t = txn.open_table(TRUST).map_err(ctx("open"))?;
        let mut out = vec![];
        for r in t.iter().map_err(ctx("read"))? {
            let (k, _) = r.map_err(ctx("read"))?;
            out.push(PublicKey(*k.value()));
        }
        Ok(out)
    }

    /// Adds a trusted key; returns false if it was already trusted.
    pub fn trust(&self, key: &PublicKey) -> Result<bool> {
        let txn = self.db.begin_write().map_err(ctx("begin"))?;
        let new = {
            let mut t = txn.open_table(TRUST).map_err(ctx("open"))?;
            let had = t.get(&key.0).map_err(ctx("read"))?.is_some();
            if !had {
                t.insert(&key.0, ferry_agent_common::now_unix())
                    .map_err(ctx("write"))?;
            }
            !had
        };
        txn.commit().map_err(ctx("commit"))?;
        Ok(new)
    }

    /// Removes a trusted key; returns false if it was not trusted.
    pub fn untrust(&self, key: &PublicKey) -> Result<bool> {
        let txn = self.db.begin_write().map_err(ctx("begin"))?;
        let had = {
            let mut t = txn.open_table(TRUST).map_err(ctx("open"))?;
            let had = t.remove(&key.0).map_err(ctx("write"))?.is_some();
            had
        };
        txn.commit().map_err(ctx("commit"))?;
        Ok(had)
    }

    /// Records (or replaces) a held bundle.
    pub fn hold(&self, sequence: u64, held: &Held) -> Result<()> {
        let txn = self.db.begin_write().map_err(ctx("begin"))?;
        {
            let mut t = txn.open_table(HELD).map_err(ctx("open"))?;
            t.insert(sequence, postcard::to_stdvec(held)?.as_slice())
                .map_err(ctx("write"))?;
        }
        txn.commit().map_err(ctx("commit"))?;
        Ok(())
    }

    /// Forgets a held bundle.
    pub fn unhold(&self, sequence: u64) -> Result<()> {
        let txn = self.db.begin_write().map_err(ctx("begin"))?;
        {
            let mut t = txn.open_table(HELD).map_err(ctx("open"))?;
            t.remove(sequence).map_err(ctx("write"))?;
        }
        txn.commit().map_err(ctx("commit"))?;
        Ok(())
    }

    /// Held bundles, in sequence order.
    pub fn held(&self) -> Result<Vec<(u64, Held)>> {
        let txn = self.db.begin_read().map_err(ctx("begin"))?;
        let t = txn.open_table(HELD).map_err(ctx("open"))?;
        let mut out = vec![];
        for r in t.iter().map_err(ctx("read"))? {
            let (k, v) = r.map_err(ctx("read"))?;
            out.push((
                k.value(),
                postcard::from_bytes(v.value()).context("state database: bad held record")?,
            ));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_protocol::keys::SecretKey;

    fn hash(b: u8) -> ManifestHash {
        ManifestHash([b; 32])
    }

    #[test]
    fn an_apply_commits_sequence_catalog_history_and_drops_its_hold() {
        let tmp = tempfile::tempdir().unwrap();
        let db = Db::open(&tmp.path().join("state/ferry-in.redb")).unwrap();
        assert_eq!(db.applied().unwrap().sequence, 0);
        assert_eq!(db.catalog().unwrap(), Catalog::default());
        let held = Held {
            dir_name: "bundle-x-00000002".into(),
            hash: hash(2),
            reason: "waiting for bundle 1".into(),
        };
        db.hold(2, &held).unwrap();
        db.hold(3, &held).unwrap();
        assert_eq!(
            db.held().unwrap().iter().map(|h| h.0).collect::<Vec<_>>(),
            [2, 3]
        );

        let applied = Applied {
            stream: Some(StreamId([4; 16])),
            sequence: 2,
            hash: Some(hash(2)),
            generation: Some("g2".into()),
            previous_generation: Some("g1".into()),
        };
        let mut catalog = Catalog::default();
        catalog
            .sources
            .insert("tools".into(), ferry_protocol::catalog::SourceKind::Files);
        let entry = HistoryEntry {
            hash: hash(2),
            applied_at: 10,
            created: 9,
            bundle_bytes: 100,
            added: 1,
            changed: 0,
            removed: 0,
        };
        db.commit_apply(&applied, &catalog, &entry).unwrap();
        drop(db);

        let db = Db::open(&tmp.path().join("state/ferry-in.redb")).unwrap();
        let a = db.applied().unwrap();
        assert_eq!(
            (a.sequence, a.hash, a.generation.as_deref()),
            (2, Some(hash(2)), Some("g2"))
        );
        assert_eq!(db.catalog().unwrap(), catalog);
        assert_eq!(db.history_entry(2).unwrap().unwrap().hash, hash(2));
        assert!(db.history_entry(1).unwrap().is_none());
        assert_eq!(
            db.held().unwrap().iter().map(|h| h.0).collect::<Vec<_>>(),
            [3]
        );
        db.unhold(3).unwrap();
        assert!(db.held().unwrap().is_empty());
    }

    #[test]
    fn trust_and_untrust_say_whether_anything_changed() {
        let tmp = tempfile::tempdir().unwrap();
        let db = Db::open(&tmp.path().join("ferry-in.redb")).unwrap();
        let k = SecretKey::from_seed([1; 32]).public();
        assert!(db.trust(&k).unwrap());
        assert!(!db.trust(&k).unwrap());
        assert_eq!(db.trusted().unwrap(), vec![k]);
        assert!(db.untrust(&k).unwrap());
        assert!(!db.untrust(&k).unwrap());
        assert!(db.trusted().unwrap().is_empty());
    }
}
