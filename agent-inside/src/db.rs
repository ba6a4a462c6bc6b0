//! ferry-in's state database (redb): the stream it follows, the applied
//! sequence and chain, the current catalog and generation, trusted keys and
//! the streams each may sign, held bundles and the apply history (with the
//! key that signed each bundle).
//!
//! Migration from a database without stream bindings (before
//! `trust add --stream`): when [`Db::open`] finds a trusted key with no
//! binding, it binds it to the stream already applied, or, when nothing was
//! applied yet, marks it "first use" (its first applied bundle binds it),
//! which is what that database's keys meant. History entries from before
//! have no recorded signer; they show as unknown.
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

mod catalog;
mod keyring;
mod objects;
#[cfg(test)]
pub(crate) use objects::{COUNTED as OBJECT_REFS_COUNTED, REFS as OBJECT_REFS_TABLE};
#[cfg(test)]
pub(crate) const META_TABLE: TableDefinition<&str, &[u8]> = META;

pub use catalog::{key_bytes, uses_of, CatalogUpdate, Snapshot, Use};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// redb's page cache (read pages, and a write transaction's dirty pages
/// before they go to the file). Its default, 1 GiB, kept every page an
/// import read or wrote (the catalog rows, their chunk uses) in the
/// process: 21 MiB of a 10-file delta import's heap at 200,000 objects,
/// more for a first import (docs/scale.md, session 12).
const CACHE_BYTES: usize = 32 << 20;
/// Set in `meta` while the chunk store may hold chunks no commit accounts for.
const PRUNE_PENDING: &str = "prune_pending";
const TRUST: TableDefinition<&[u8; 32], u64> = TableDefinition::new("trusted_keys");
const HISTORY: TableDefinition<u64, &[u8]> = TableDefinition::new("history");
const HELD: TableDefinition<u64, &[u8]> = TableDefinition::new("held");
/// Trusted key -> postcard [`KeyBinding`].
const BINDINGS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("key_streams");
/// Applied sequence -> the key that signed that bundle.
const SIGNERS: TableDefinition<u64, &[u8; 32]> = TableDefinition::new("history_signers");

/// Which streams a trusted key may sign.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyBinding {
    /// The streams it may sign.
    pub streams: Vec<StreamId>,
    /// Whether the first bundle it signs that is applied binds it to that
    /// bundle's stream (`trust add --first-use`, or a key from before
    /// bindings on a store that had applied nothing).
    pub first_use: bool,
}

impl KeyBinding {
    /// Whether a bundle of `stream` signed by this key is acceptable.
    pub fn allows(&self, stream: StreamId) -> bool {
        self.streams.contains(&stream) || (self.first_use && self.streams.is_empty())
    }
}

/// How `trust add` binds a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bind {
    /// To this stream.
    Stream(StreamId),
    /// To the stream of the first bundle it signs that is applied.
    FirstUse,
}

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
    /// The generation before it: kept on disk for clients mid-download
    /// only with `[store] keep_previous`, deleted after the switch otherwise.
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
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(path)
            .with_context(|| {
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
        txn.open_table(SIGNERS).map_err(ctx("open"))?;
        txn.open_table(catalog::OBJECTS).map_err(ctx("open"))?;
        txn.open_multimap_table(catalog::USES)
            .map_err(ctx("open"))?;
        migrate_bindings(&txn)?;
        catalog::migrate(&txn)?;
        objects::migrate(&txn)?;
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

    /// The catalog of the current generation, read whole.
    pub fn catalog(&self) -> Result<Catalog> {
        self.snapshot()?.catalog()
    }

    /// The catalog of the current generation as this moment's read
    /// transaction sees it (rows read on demand; later commits do not
    /// change it).
    pub fn snapshot(&self) -> Result<Snapshot> {
        Ok(Snapshot::new(self.db.begin_read().map_err(ctx("begin"))?))
    }

    /// Commits an apply: new applied record, catalog and history entry, and
    /// drops the held record of that sequence, in one transaction. With a
    /// `signer`, records it for the history and, if that key was trusted on
    /// first use and not bound yet, binds it to the applied stream.
    pub fn commit_apply(
        &self,
        applied: &Applied,
        catalog: CatalogUpdate<'_>,
        entry: &HistoryEntry,
        signer: Option<&PublicKey>,
    ) -> Result<()> {
        self.commit_apply_with(applied, catalog, entry, signer, None)
            .map(|_| ())
    }

    /// [`Db::commit_apply`], committing the trust `view` the bundle's
    /// statements made ([`crate::trust::View::admit`]) in the same transaction.
    /// A [`CatalogUpdate::Delta`] writes only the rows of the keys it
    /// changes; returns the catalog rows written or removed.
    pub fn commit_apply_with(
        &self,
        applied: &Applied,
        catalog: CatalogUpdate<'_>,
        entry: &HistoryEntry,
        signer: Option<&PublicKey>,
        view: Option<&crate::trust::View>,
    ) -> Result<u64> {
        let txn = self.db.begin_write().map_err(ctx("begin"))?;
        if let Some(v) = view {
            keyring::write_view(&txn, v, applied.stream)?;
        }
        if let Some(k) = signer {
            let mut s = txn.open_table(SIGNERS).map_err(ctx("open"))?;
            s.insert(applied.sequence, &k.0).map_err(ctx("write"))?;
            let mut b = txn.open_table(BINDINGS).map_err(ctx("open"))?;
            let mut binding = read_binding(&b, k)?;
            if let (true, Some(stream)) = (binding.allows_first_use(), applied.stream) {
                binding.streams.push(stream);
                b.insert(&k.0, postcard::to_stdvec(&binding)?.as_slice())
                    .map_err(ctx("write"))?;
            }
        }
        {
            let mut m = txn.open_table(META).map_err(ctx("open"))?;
            m.insert("applied", postcard::to_stdvec(applied)?.as_slice())
                .map_err(ctx("write"))?;
            let mut h = txn.open_table(HISTORY).map_err(ctx("open"))?;
            h.insert(applied.sequence, postcard::to_stdvec(entry)?.as_slice())
                .map_err(ctx("write"))?;
            let mut held = txn.open_table(HELD).map_err(ctx("open"))?;
            held.remove(applied.sequence).map_err(ctx("write"))?;
        }
        let rows = catalog::write(&txn, catalog, applied.sequence)?;
        txn.commit().map_err(ctx("commit"))?;
        Ok(rows)
    }

    /// Records that the chunk store may hold chunks the database does not
    /// account for (an apply is moving staged chunks in), so that a
    /// [`crate::apply::recover`] after a crash prunes it whole.
    pub fn set_prune_pending(&self) -> Result<()> {
        self.set_meta(PRUNE_PENDING, Some(&[1]))
    }

    /// Clears what [`Db::set_prune_pending`] records (a write only when set).
    pub fn clear_prune_pending(&self) -> Result<()> {
        if self.prune_pending()? {
            self.set_meta(PRUNE_PENDING, None)?;
        }
        Ok(())
    }

    /// Whether [`Db::set_prune_pending`] was recorded and not cleared since.
    pub fn prune_pending(&self) -> Result<bool> {
        Ok(self.get_meta(PRUNE_PENDING)?.is_some())
    }

    fn set_meta(&self, key: &str, value: Option<&[u8]>) -> Result<()> {
        let txn = self.db.begin_write().map_err(ctx("begin"))?;
        {
            let mut m = txn.open_table(META).map_err(ctx("open"))?;
            match value {
                Some(v) => m.insert(key, v).map(|_| ()),
                None => m.remove(key).map(|_| ()),
            }
            .map_err(ctx("write"))?;
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

    /// The key that signed applied bundle `sequence`, if recorded (bundles
    /// applied before signers were recorded have none).
    pub fn signer(&self, sequence: u64) -> Result<Option<PublicKey>> {
        let txn = self.db.begin_read().map_err(ctx("begin"))?;
        let t = txn.open_table(SIGNERS).map_err(ctx("open"))?;
        let v = t.get(sequence).map_err(ctx("read"))?;
        Ok(v.map(|v| PublicKey(*v.value())))
    }

    /// The streams `key` may sign (empty and not first-use when it is not trusted).
    pub fn binding(&self, key: &PublicKey) -> Result<KeyBinding> {
        let txn = self.db.begin_read().map_err(ctx("begin"))?;
        let t = txn.open_table(BINDINGS).map_err(ctx("open"))?;
        read_binding(&t, key)
    }

    /// Trusted keys with their bindings.
    pub fn trusted_bindings(&self) -> Result<Vec<(PublicKey, KeyBinding)>> {
        self.trusted()?
            .into_iter()
            .map(|k| Ok((k, self.binding(&k)?)))
            .collect()
    }

    /// Lets trusted `key` sign `stream` too (`trust bind`); returns false if
    /// it could already. Fails when the key is not trusted.
    pub fn bind(&self, key: &PublicKey, stream: StreamId) -> Result<bool> {
        let txn = self.db.begin_write().map_err(ctx("begin"))?;
        let new = {
            let t = txn.open_table(TRUST).map_err(ctx("open"))?;
            if t.get(&key.0).map_err(ctx("read"))?.is_none() {
                anyhow::bail!(
                    "key {} is not trusted; add it with `ferry-in trust add KEYFILE --stream {}`",
                    key.to_text(),
                    stream
                );
            }
            let mut b = txn.open_table(BINDINGS).map_err(ctx("open"))?;
            let mut binding = read_binding(&b, key)?;
            let new = !binding.streams.contains(&stream);
            if new {
                binding.streams.push(stream);
                b.insert(&key.0, postcard::to_stdvec(&binding)?.as_slice())
                    .map_err(ctx("write"))?;
            }
            new
        };
        txn.commit().map_err(ctx("commit"))?;
        Ok(new)
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

    /// Adds a trusted key bound as `bind` says; returns false if it was
    /// already trusted with that binding. Trusting a key again with another
    /// stream adds that stream to it.
    pub fn trust(&self, key: &PublicKey, bind: Bind) -> Result<bool> {
        let txn = self.db.begin_write().map_err(ctx("begin"))?;
        let new = {
            let mut t = txn.open_table(TRUST).map_err(ctx("open"))?;
            let had = t.get(&key.0).map_err(ctx("read"))?.is_some();
            if !had {
                t.insert(&key.0, ferry_agent_common::now_unix())
                    .map_err(ctx("write"))?;
            }
            let mut b = txn.open_table(BINDINGS).map_err(ctx("open"))?;
            let mut binding = read_binding(&b, key)?;
            let before = binding.clone();
            match bind {
                Bind::Stream(s) if !binding.streams.contains(&s) => binding.streams.push(s),
                Bind::Stream(_) => {}
                Bind::FirstUse => binding.first_use = true,
            }
            if binding != before {
                b.insert(&key.0, postcard::to_stdvec(&binding)?.as_slice())
                    .map_err(ctx("write"))?;
            }
            !had || binding != before
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
            let mut b = txn.open_table(BINDINGS).map_err(ctx("open"))?;
            b.remove(&key.0).map_err(ctx("write"))?;
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

impl KeyBinding {
    /// Trusted on first use and not bound to any stream yet.
    fn allows_first_use(&self) -> bool {
        self.first_use && self.streams.is_empty()
    }
}

fn read_binding<T: ReadableTable<&'static [u8; 32], &'static [u8]>>(
    t: &T,
    key: &PublicKey,
) -> Result<KeyBinding> {
    match t.get(&key.0).map_err(ctx("read"))? {
        Some(v) => postcard::from_bytes(v.value()).context("state database: bad key binding"),
        None => Ok(KeyBinding::default()),
    }
}

/// Gives every trusted key without a binding one (see the module's doc):
/// the stream applied, or first use when none was.
fn migrate_bindings(txn: &redb::WriteTransaction) -> Result<()> {
    let applied: Option<StreamId> = {
        let m = txn.open_table(META).map_err(ctx("open"))?;
        let v = m.get("applied").map_err(ctx("read"))?;
        match v {
            Some(v) => {
                postcard::from_bytes::<Applied>(v.value())
                    .context("state database: bad applied record")?
                    .stream
            }
            None => None,
        }
    };
    let keys: Vec<[u8; 32]> = {
        let t = txn.open_table(TRUST).map_err(ctx("open"))?;
        let mut out = Vec::new();
        for r in t.iter().map_err(ctx("read"))? {
            out.push(*r.map_err(ctx("read"))?.0.value());
        }
        out
    };
    let mut b = txn.open_table(BINDINGS).map_err(ctx("open"))?;
    for k in keys {
        if b.get(&k).map_err(ctx("read"))?.is_some() {
            continue;
        }
        let binding = match applied {
            Some(s) => KeyBinding {
                streams: vec![s],
                first_use: false,
            },
            None => KeyBinding {
                streams: vec![],
                first_use: true,
            },
        };
        b.insert(&k, postcard::to_stdvec(&binding)?.as_slice())
            .map_err(ctx("write"))?;
    }
    Ok(())
}

/// Commits a bare apply of `update` as sequence `seq` (generation `g<seq>`,
/// the one before `g<seq - 1>`), for unit tests of what an apply writes.
#[cfg(test)]
pub(crate) fn commit_test_apply(db: &Db, seq: u64, update: CatalogUpdate<'_>) -> u64 {
    let applied = Applied {
        sequence: seq,
        hash: Some(ManifestHash([seq as u8; 32])),
        generation: Some(format!("g{seq}")),
        previous_generation: (seq > 1).then(|| format!("g{}", seq - 1)),
        ..Applied::default()
    };
    let entry = HistoryEntry {
        hash: ManifestHash([seq as u8; 32]),
        applied_at: seq,
        created: seq,
        bundle_bytes: 1,
        added: 0,
        changed: 0,
        removed: 0,
    };
    db.commit_apply_with(&applied, update, &entry, None, None)
        .unwrap()
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
        db.commit_apply(&applied, CatalogUpdate::Whole(&catalog), &entry, None)
            .unwrap();
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
        assert!(db.trust(&k, Bind::FirstUse).unwrap());
        assert!(!db.trust(&k, Bind::FirstUse).unwrap());
        assert_eq!(db.trusted().unwrap(), vec![k]);
        assert!(db.untrust(&k).unwrap());
        assert!(!db.untrust(&k).unwrap());
        assert!(db.trusted().unwrap().is_empty());
    }

    #[test]
    fn a_key_is_bound_to_streams_and_first_use_binds_on_the_first_apply() {
        let tmp = tempfile::tempdir().unwrap();
        let db = Db::open(&tmp.path().join("ferry-in.redb")).unwrap();
        let (a, b) = (StreamId([1; 16]), StreamId([2; 16]));
        let k = SecretKey::from_seed([1; 32]).public();
        let stranger = SecretKey::from_seed([2; 32]).public();
        assert!(db.bind(&k, a).is_err(), "an untrusted key cannot be bound");
        assert!(db.trust(&k, Bind::Stream(a)).unwrap());
        assert!(!db.trust(&k, Bind::Stream(a)).unwrap());
        assert!(db.binding(&k).unwrap().allows(a));
        assert!(!db.binding(&k).unwrap().allows(b));
        assert!(db.bind(&k, b).unwrap());
        assert!(!db.bind(&k, b).unwrap());
        assert!(db.binding(&k).unwrap().allows(b));
        assert!(!db.binding(&stranger).unwrap().allows(a));

        // First use: any stream until an applied bundle binds it.
        assert!(db.trust(&stranger, Bind::FirstUse).unwrap());
        assert!(db.binding(&stranger).unwrap().allows(b));
        let applied = Applied {
            stream: Some(a),
            sequence: 1,
            hash: Some(hash(1)),
            ..Applied::default()
        };
        let entry = HistoryEntry {
            hash: hash(1),
            applied_at: 2,
            created: 1,
            bundle_bytes: 3,
            added: 0,
            changed: 0,
            removed: 0,
        };
        db.commit_apply(
            &applied,
            CatalogUpdate::Whole(&Catalog::default()),
            &entry,
            Some(&stranger),
        )
        .unwrap();
        assert_eq!(db.signer(1).unwrap(), Some(stranger));
        assert_eq!(db.signer(2).unwrap(), None);
        let bound = db.binding(&stranger).unwrap();
        assert!(bound.allows(a) && !bound.allows(b), "{bound:?}");
        assert!(db.untrust(&stranger).unwrap());
        assert!(!db.binding(&stranger).unwrap().allows(a));
    }

    /// A database written by the code before bindings: a trusted key, and
    /// either an applied stream or nothing applied.
    fn old_database(path: &Path, key: &PublicKey, applied: Option<&Applied>) {
        let db = Database::create(path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut m = txn.open_table(META).unwrap();
            if let Some(a) = applied {
                m.insert("applied", postcard::to_stdvec(a).unwrap().as_slice())
                    .unwrap();
            }
            let mut t = txn.open_table(TRUST).unwrap();
            t.insert(&key.0, 5).unwrap();
            txn.open_table(HISTORY).unwrap();
            txn.open_table(HELD).unwrap();
        }
        txn.commit().unwrap();
    }

    #[test]
    fn keys_of_an_old_database_are_bound_to_the_applied_stream_or_first_use() {
        let tmp = tempfile::tempdir().unwrap();
        let k = SecretKey::from_seed([1; 32]).public();
        let (a, b) = (StreamId([1; 16]), StreamId([2; 16]));
        let applied = Applied {
            stream: Some(a),
            sequence: 4,
            hash: Some(hash(4)),
            ..Applied::default()
        };
        let with = tmp.path().join("with.redb");
        old_database(&with, &k, Some(&applied));
        let db = Db::open(&with).unwrap();
        assert_eq!(db.trusted().unwrap(), vec![k]);
        let binding = db.binding(&k).unwrap();
        assert_eq!(binding.streams, vec![a]);
        assert!(!binding.allows(b));
        assert_eq!(db.applied().unwrap().sequence, 4);
        assert_eq!(db.signer(4).unwrap(), None);

        let fresh = tmp.path().join("fresh.redb");
        old_database(&fresh, &k, None);
        let binding = Db::open(&fresh).unwrap().binding(&k).unwrap();
        assert!(binding.first_use && binding.streams.is_empty());
        assert!(binding.allows(b));
    }
}
