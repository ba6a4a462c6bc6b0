//! The applied catalog as redb tables (issue 15): one row per object, keyed
//! by `source \0 path` (which sorts as `ObjectKey` does), and an index of
//! the chunks the objects use (`ChunkId -> use`), so that an apply writes
//! and reads rows in proportion to its change, never one value of the
//! whole catalog.
//!
//! - `catalog_objects`: key bytes -> postcard [`Object`];
//! - `catalog_chunk_uses` (multimap): chunk id -> [`Use`] encoded as
//!   `tag (1) | offset (8, LE) | len (4, LE) | key bytes`: tag 0 a range of
//!   the object's file (`Encoding::Chunks`, `crate::ranges`), tag 1 a chunk
//!   the object keeps that is not a range (recipe and expanded-form chunks
//!   of `Encoding::Rebuilt`; a patch's chunks are not kept and not listed);
//! - the sources: `meta["catalog_sources"]`;
//! - the catalog's sums (objects, bytes of the files, the largest file):
//!   `meta["catalog_sums"]`, three little-endian u64, written by every
//!   commit (a delta's from the applied sums and its change:
//!   `crate::delta`), so that an apply checks the manifest's totals
//!   without reading every row. A database written before them gets them
//!   from one pass over its rows when it is opened (`migrate`).
//!
//! The rows of the catalog and the applied record change in one
//! transaction ([`super::Db::commit_apply_with`]), so the catalog read is
//! always the applied one; a [`Snapshot`] (a redb read transaction) keeps
//! reading the catalog it started with while later applies commit.

use super::{ctx, META};
use anyhow::{bail, Context, Result};
use ferry_protocol::catalog::{Catalog, Change, Encoding, FileObject, Object, SourceKind, Sums};
use ferry_protocol::id::ChunkId;
use ferry_protocol::path::ObjectKey;
use redb::{
    MultimapTableDefinition, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition,
    WriteTransaction,
};
use std::collections::{BTreeMap, BTreeSet};

pub(super) const OBJECTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("catalog_objects");
pub(super) const USES: MultimapTableDefinition<&[u8; 32], &[u8]> =
    MultimapTableDefinition::new("catalog_chunk_uses");
const SOURCES: &str = "catalog_sources";
const SUMS: &str = "catalog_sums";
/// Where databases before issue 15 kept the whole catalog as one value.
pub(super) const LEGACY: &str = "catalog";

/// How a commit changes the stored catalog.
#[derive(Clone, Copy, Debug)]
pub enum CatalogUpdate<'a> {
    /// Replace it with this catalog: every row is rewritten.
    Whole(&'a Catalog),
    /// Take these sources and apply these changes (checked already:
    /// `crate::delta`): only the rows of the changed keys are written.
    Delta {
        /// The new source list.
        sources: &'a BTreeMap<String, SourceKind>,
        /// The changes.
        changes: &'a [Change],
        /// The sums of the catalog they make.
        sums: Sums,
    },
    /// [`CatalogUpdate::Delta`] of changes checked already and held in key
    /// order (`crate::delta::Catalogs`: the objects put, the keys removed).
    Checked {
        /// The new source list.
        sources: &'a BTreeMap<String, SourceKind>,
        /// The objects put.
        puts: crate::delta::Puts<'a>,
        /// The keys removed.
        removes: &'a [ObjectKey],
        /// The sums of the catalog they make.
        sums: Sums,
    },
}

/// How an object of the catalog uses a chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Use {
    /// The chunk is bytes `offset..offset + len` of the object's file.
    Range {
        /// The object.
        key: ObjectKey,
        /// Where the chunk starts in its file.
        offset: u64,
        /// The chunk's length.
        len: u32,
    },
    /// The object keeps the chunk, and it is not a range of its file.
    Held {
        /// The object.
        key: ObjectKey,
    },
}

impl Use {
    /// The object using the chunk.
    pub fn key(&self) -> &ObjectKey {
        match self {
            Use::Range { key, .. } | Use::Held { key } => key,
        }
    }

    fn encode(&self) -> Vec<u8> {
        let (tag, offset, len, key) = match self {
            Use::Range { key, offset, len } => (0u8, *offset, *len, key),
            Use::Held { key } => (1u8, 0, 0, key),
        };
        let mut v = Vec::with_capacity(13 + key.source.len() + key.path.len() + 1);
        v.push(tag);
        v.extend_from_slice(&offset.to_le_bytes());
        v.extend_from_slice(&len.to_le_bytes());
        v.extend_from_slice(&key_bytes(key));
        v
    }

    fn decode(v: &[u8]) -> Result<Use> {
        if v.len() < 13 {
            bail!("state database: bad chunk use record");
        }
        let offset = u64::from_le_bytes(v[1..9].try_into().expect("8 bytes"));
        let len = u32::from_le_bytes(v[9..13].try_into().expect("4 bytes"));
        let key = key_from(&v[13..])?;
        match v[0] {
            0 => Ok(Use::Range { key, offset, len }),
            1 => Ok(Use::Held { key }),
            t => bail!("state database: chunk use record of unknown kind {t}"),
        }
    }
}

/// The row key of `key`: `source \0 path` (source names hold no NUL).
pub fn key_bytes(key: &ObjectKey) -> Vec<u8> {
    let mut v = Vec::with_capacity(key.source.len() + 1 + key.path.len());
    v.extend_from_slice(key.source.as_bytes());
    v.push(0);
    v.extend_from_slice(key.path.as_bytes());
    v
}

fn key_from(b: &[u8]) -> Result<ObjectKey> {
    let i = b
        .iter()
        .position(|c| *c == 0)
        .context("state database: bad catalog key")?;
    let s = |b: &[u8]| {
        String::from_utf8(b.to_vec()).context("state database: catalog key is not UTF-8")
    };
    Ok(ObjectKey {
        source: s(&b[..i])?,
        path: s(&b[i + 1..])?,
    })
}

/// The chunk uses of `f` at `key`, each once.
pub fn uses_of(key: &ObjectKey, f: &FileObject) -> Vec<(ChunkId, Use)> {
    match &f.encoding {
        Encoding::Chunks(_) => crate::ranges::ranges_of(f)
            .map(|(id, offset, len)| {
                let key = key.clone();
                (id, Use::Range { key, offset, len })
            })
            .collect(),
        Encoding::Rebuilt(_) => f
            .held_chunks()
            .map(|c| c.id)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(|id| (id, Use::Held { key: key.clone() }))
            .collect(),
    }
}

pub(super) fn decode_object(v: &[u8]) -> Result<Object> {
    postcard::from_bytes(v).context("state database: bad catalog object")
}

/// Writes `update` in `txn`, and the object reference counts it changes
/// (digests released are tagged `sequence`); returns the object rows
/// written or removed.
pub(super) fn write(
    txn: &WriteTransaction,
    update: CatalogUpdate<'_>,
    sequence: u64,
) -> Result<u64> {
    let mut counts = super::objects::Counts::open(txn, sequence)?;
    let (sources, rows, sums) = match update {
        CatalogUpdate::Whole(c) => {
            {
                let t = txn.open_table(OBJECTS).map_err(ctx("open"))?;
                for r in t.iter().map_err(ctx("read"))? {
                    let (_, v) = r.map_err(ctx("read"))?;
                    counts.drop_ref(&decode_object(v.value())?)?;
                }
            }
            for o in c.objects.values() {
                counts.add(o)?;
            }
            txn.delete_table(OBJECTS).map_err(ctx("clear"))?;
            txn.delete_multimap_table(USES).map_err(ctx("clear"))?;
            let mut t = txn.open_table(OBJECTS).map_err(ctx("open"))?;
            let mut u = txn.open_multimap_table(USES).map_err(ctx("open"))?;
            for (key, obj) in &c.objects {
                put(&mut t, &mut u, key, obj)?;
            }
            (
                &c.sources,
                c.objects.len() as u64,
                Sums::of(c.objects.values()),
            )
        }
        CatalogUpdate::Delta {
            sources,
            changes,
            sums,
        } => {
            let each = changes.iter().map(|c| (c.key(), c.object()));
            (sources, write_changes(txn, &mut counts, each)?, sums)
        }
        CatalogUpdate::Checked {
            sources,
            puts,
            removes,
            sums,
        } => {
            let each = puts.iter().map(|(k, o)| (k, Some(o)));
            let each = each.chain(
                removes
                    .iter()
                    .map(|k| (std::borrow::Cow::Borrowed(k), None)),
            );
            (sources, write_changes(txn, &mut counts, each)?, sums)
        }
    };
    let mut m = txn.open_table(META).map_err(ctx("open"))?;
    m.insert(SOURCES, postcard::to_stdvec(sources)?.as_slice())
        .map_err(ctx("write"))?;
    m.insert(SUMS, encode_sums(sums).as_slice())
        .map_err(ctx("write"))?;
    m.remove(LEGACY).map_err(ctx("write"))?;
    Ok(rows)
}

/// Writes each change (an object put, or `None`: the key removed) in
/// `txn`, with the counts it changes; returns how many.
fn write_changes<K: std::borrow::Borrow<ObjectKey>, O: std::borrow::Borrow<Object>>(
    txn: &WriteTransaction,
    counts: &mut super::objects::Counts<'_>,
    changes: impl Iterator<Item = (K, Option<O>)>,
) -> Result<u64> {
    let mut t = txn.open_table(OBJECTS).map_err(ctx("open"))?;
    let mut u = txn.open_multimap_table(USES).map_err(ctx("open"))?;
    let mut rows = 0;
    for (key, object) in changes {
        let (key, object) = (key.borrow(), object.as_ref().map(|o| o.borrow()));
        rows += 1;
        let k = key_bytes(key);
        let old = t.remove(k.as_slice()).map_err(ctx("write"))?;
        let old = old.map(|v| decode_object(v.value())).transpose()?;
        if let Some(o) = &old {
            counts.drop_ref(o)?;
        }
        if let Some(Object::File(f)) = &old {
            for (id, use_) in uses_of(key, f) {
                u.remove(&id.0, use_.encode().as_slice())
                    .map_err(ctx("write"))?;
            }
        }
        match object {
            Some(object) => {
                counts.add(object)?;
                put(&mut t, &mut u, key, object)?;
            }
            None if old.is_none() => {
                bail!("state database: removes {key}, which the stored catalog does not hold")
            }
            None => {}
        }
    }
    Ok(rows)
}

fn put(
    t: &mut redb::Table<&[u8], &[u8]>,
    u: &mut redb::MultimapTable<&[u8; 32], &[u8]>,
    key: &ObjectKey,
    obj: &Object,
) -> Result<()> {
    t.insert(
        key_bytes(key).as_slice(),
        postcard::to_stdvec(obj)?.as_slice(),
    )
    .map_err(ctx("write"))?;
    if let Object::File(f) = obj {
        for (id, use_) in uses_of(key, f) {
            u.insert(&id.0, use_.encode().as_slice())
                .map_err(ctx("write"))?;
        }
    }
    Ok(())
}

fn encode_sums(s: Sums) -> [u8; 24] {
    let mut b = [0u8; 24];
    b[..8].copy_from_slice(&s.objects.to_le_bytes());
    b[8..16].copy_from_slice(&s.bytes.to_le_bytes());
    b[16..].copy_from_slice(&s.max_object.to_le_bytes());
    b
}

fn decode_sums(b: &[u8]) -> Result<Sums> {
    let Ok(b) = <&[u8; 24]>::try_from(b) else {
        bail!("state database: bad catalog sums");
    };
    let u = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
    Ok(Sums {
        objects: u(0),
        bytes: u(8),
        max_object: u(16),
    })
}

/// Moves a catalog stored the old way (one value) into the tables, and
/// gives a database written before the sums were kept its sums (one pass
/// over the rows).
pub(super) fn migrate(txn: &WriteTransaction) -> Result<()> {
    let (legacy, has_sums) = {
        let m = txn.open_table(META).map_err(ctx("open"))?;
        let v = m.get(LEGACY).map_err(ctx("read"))?;
        let has_sums = m.get(SUMS).map_err(ctx("read"))?.is_some();
        (v.map(|v| v.value().to_vec()), has_sums)
    };
    if let Some(b) = legacy {
        let c = Catalog::from_bytes(&b).context("state database: bad stored catalog")?;
        write(txn, CatalogUpdate::Whole(&c), 0)?;
    } else if !has_sums {
        let t = txn.open_table(OBJECTS).map_err(ctx("open"))?;
        let mut sums = Sums::default();
        for r in t.iter().map_err(ctx("read"))? {
            let (_, v) = r.map_err(ctx("read"))?;
            sums = sums.with(&decode_object(v.value())?);
        }
        let mut m = txn.open_table(META).map_err(ctx("open"))?;
        m.insert(SUMS, encode_sums(sums).as_slice())
            .map_err(ctx("write"))?;
    }
    Ok(())
}

/// Kept chunks `ferry-in scrub` found neither in the chunk store nor in a
/// good file (the outside believes them held): an apply refuses while the
/// next catalog still keeps one and the store lacks it, as it did when it
/// checked every kept chunk of the catalog.
const MISSING: TableDefinition<&[u8; 32], u8> = TableDefinition::new("missing_chunks");

impl super::Db {
    /// Records chunks `scrub` found missing or rotten (and moved out).
    pub fn record_missing(&self, ids: impl Iterator<Item = ChunkId>) -> Result<()> {
        let txn = self.db.begin_write().map_err(ctx("begin"))?;
        {
            let mut t = txn.open_table(MISSING).map_err(ctx("open"))?;
            for id in ids {
                t.insert(&id.0, 1).map_err(ctx("write"))?;
            }
        }
        txn.commit().map_err(ctx("commit"))?;
        Ok(())
    }

    /// The chunks [`super::Db::record_missing`] recorded and no apply has
    /// found held since.
    pub fn missing(&self) -> Result<Vec<ChunkId>> {
        let txn = self.db.begin_read().map_err(ctx("begin"))?;
        let t = match txn.open_table(MISSING) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(ctx("open")(e)),
        };
        let mut out = Vec::new();
        for r in t.iter().map_err(ctx("read"))? {
            out.push(ChunkId(*r.map_err(ctx("read"))?.0.value()));
        }
        Ok(out)
    }

    /// Forgets missing chunks that are held again or no longer needed.
    pub fn forget_missing(&self, ids: &[ChunkId]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin_write().map_err(ctx("begin"))?;
        {
            let mut t = txn.open_table(MISSING).map_err(ctx("open"))?;
            for id in ids {
                t.remove(&id.0).map_err(ctx("write"))?;
            }
        }
        txn.commit().map_err(ctx("commit"))?;
        Ok(())
    }
}

/// The stored catalog as one read transaction saw it: later commits do not
/// change what it reads.
pub struct Snapshot {
    txn: ReadTransaction,
}

impl Snapshot {
    pub(super) fn new(txn: ReadTransaction) -> Snapshot {
        Snapshot { txn }
    }

    /// The sources.
    pub fn sources(&self) -> Result<BTreeMap<String, SourceKind>> {
        let m = self.txn.open_table(META).map_err(ctx("open"))?;
        let v = m.get(SOURCES).map_err(ctx("read"))?;
        match v {
            Some(v) => postcard::from_bytes(v.value()).context("state database: bad sources"),
            None => Ok(BTreeMap::new()),
        }
    }

    /// The object at `key`.
    pub fn get(&self, key: &ObjectKey) -> Result<Option<Object>> {
        let t = match self.txn.open_table(OBJECTS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(ctx("open")(e)),
        };
        let v = t.get(key_bytes(key).as_slice()).map_err(ctx("read"))?;
        v.map(|v| decode_object(v.value())).transpose()
    }

    /// How the objects use chunk `id` (none when no object does).
    pub fn uses(&self, id: &ChunkId) -> Result<Vec<Use>> {
        let u = match self.txn.open_multimap_table(USES) {
            Ok(u) => u,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(ctx("open")(e)),
        };
        let mut out = Vec::new();
        for v in u.get(&id.0).map_err(ctx("read"))? {
            out.push(Use::decode(v.map_err(ctx("read"))?.value())?);
        }
        Ok(out)
    }

    /// The sums of the catalog (kept by every commit).
    pub fn sums(&self) -> Result<Sums> {
        let m = self.txn.open_table(META).map_err(ctx("open"))?;
        let v = m.get(SUMS).map_err(ctx("read"))?;
        match v {
            Some(v) => decode_sums(v.value()),
            None => Ok(Sums::default()),
        }
    }

    /// Hands `visit` the rows from `from` (a row key, [`key_bytes`]) on, in
    /// key order, until it returns false; only the keys are decoded when
    /// `objects` is false (`visit` then gets `None`).
    pub fn rows_from(
        &self,
        from: &[u8],
        objects: bool,
        visit: &mut dyn FnMut(ObjectKey, Option<Object>) -> Result<bool>,
    ) -> Result<()> {
        let t = match self.txn.open_table(OBJECTS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(e) => return Err(ctx("open")(e)),
        };
        for r in t.range(from..).map_err(ctx("read"))? {
            let (k, v) = r.map_err(ctx("read"))?;
            let object = objects.then(|| decode_object(v.value())).transpose()?;
            if !visit(key_from(k.value())?, object)? {
                break;
            }
        }
        Ok(())
    }

    /// Whether the catalog holds `key` (nothing decoded).
    pub fn holds(&self, key: &ObjectKey) -> Result<bool> {
        let t = match self.txn.open_table(OBJECTS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(false),
            Err(e) => return Err(ctx("open")(e)),
        };
        Ok(t.get(key_bytes(key).as_slice())
            .map_err(ctx("read"))?
            .is_some())
    }

    /// The whole catalog, read row by row.
    pub fn catalog(&self) -> Result<Catalog> {
        let mut c = Catalog {
            sources: self.sources()?,
            ..Catalog::default()
        };
        let t = match self.txn.open_table(OBJECTS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(c),
            Err(e) => return Err(ctx("open")(e)),
        };
        for r in t.iter().map_err(ctx("read"))? {
            let (k, v) = r.map_err(ctx("read"))?;
            c.objects
                .insert(key_from(k.value())?, decode_object(v.value())?);
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Db;
    use ferry_protocol::catalog::{ChunkRef, Rebuilt};
    use ferry_protocol::id::Sha256;

    fn key(i: usize) -> ObjectKey {
        ObjectKey {
            source: "mirror".into(),
            path: format!("d{:02}/f{i:05}", i / 100),
        }
    }

    /// A file of two chunks, the second shared by every file of the same `i % 7`.
    fn file(i: usize, version: u8) -> Object {
        let a = format!("object {i} v{version}").into_bytes();
        let b = format!("shared {}", i % 7).into_bytes();
        let refs = [&a, &b]
            .iter()
            .map(|c| ChunkRef {
                id: ChunkId::of(c),
                len: c.len() as u32,
            })
            .collect();
        Object::File(FileObject {
            size: (a.len() + b.len()) as u64,
            sha256: Sha256::of(&[a, b].concat()),
            executable: false,
            encoding: Encoding::Chunks(refs),
        })
    }

    fn catalog(n: usize) -> Catalog {
        let mut c = Catalog::default();
        c.sources.insert("mirror".into(), SourceKind::Files);
        c.objects = (0..n).map(|i| (key(i), file(i, 0))).collect();
        c
    }

    fn commit(db: &Db, seq: u64, update: CatalogUpdate<'_>) -> u64 {
        crate::db::commit_test_apply(db, seq, update)
    }

    /// 10 changes of a 1,000-object catalog: 6 replaced, 2 removed, 2 added.
    fn ten_changes() -> Vec<Change> {
        let mut changes: Vec<Change> = (0..6)
            .map(|i| Change::Put {
                key: key(i * 100),
                object: file(i * 100, 1),
            })
            .collect();
        changes.extend([7, 8].map(|i| Change::Remove { key: key(i) }));
        changes.extend([1000, 1001].map(|i| Change::Put {
            key: key(i),
            object: file(i, 0),
        }));
        changes
    }

    #[test]
    fn a_ten_object_change_writes_ten_rows_and_keeps_the_chunk_index_true() {
        let tmp = tempfile::tempdir().unwrap();
        let db = Db::open(&tmp.path().join("ferry-in.redb")).unwrap();
        let first = catalog(1000);
        assert_eq!(commit(&db, 1, CatalogUpdate::Whole(&first)), 1000);
        let changes = ten_changes();
        let next = first.apply(&first.sources, &changes).unwrap();
        let update = CatalogUpdate::Delta {
            sources: &first.sources,
            changes: &changes,
            sums: Sums::of(next.objects.values()),
        };
        assert_eq!(
            commit(&db, 2, update),
            10,
            "rows in proportion to the change"
        );
        assert_eq!(db.catalog().unwrap(), next);

        // The chunk index: a replaced or removed object's chunks are gone,
        // a put one's are there, shared chunks keep their other users.
        let snap = db.snapshot().unwrap();
        let Object::File(old) = file(0, 0) else {
            unreachable!()
        };
        let old_head = old.chunks().next().unwrap().id;
        assert!(snap.uses(&old_head).unwrap().is_empty());
        let Object::File(new) = file(0, 1) else {
            unreachable!()
        };
        let new_head = new.chunks().next().unwrap().id;
        assert_eq!(
            snap.uses(&new_head).unwrap(),
            [Use::Range {
                key: key(0),
                offset: 0,
                len: new.chunks().next().unwrap().len
            }]
        );
        let shared = old.chunks().nth(1).unwrap().id;
        let holders = next
            .files()
            .filter(|(_, f)| f.chunks().any(|c| c.id == shared))
            .count();
        assert_eq!(snap.uses(&shared).unwrap().len(), holders);
        assert!(snap.get(&key(7)).unwrap().is_none());
    }

    /// The changes checked and held in key order (`crate::delta`) write
    /// what the manifest's list writes: rows, chunk uses, object counts.
    #[test]
    fn checked_changes_write_what_the_change_list_writes() {
        let first = catalog(1000);
        let changes = ten_changes();
        let next = first.apply(&first.sources, &changes).unwrap();
        let sums = Sums::of(next.objects.values());
        let mut checked = ferry_protocol::catalog::Changes::default();
        for c in &changes {
            match c {
                Change::Put { key, object } => {
                    checked.puts.insert(key.clone(), object.clone());
                }
                Change::Remove { key } => checked.removes.push(key.clone()),
            }
        }
        checked.removes.sort();
        let dbs: Vec<_> = (0..2)
            .map(|i| {
                let tmp = tempfile::tempdir().unwrap();
                let db = Db::open(&tmp.path().join("ferry-in.redb")).unwrap();
                commit(&db, 1, CatalogUpdate::Whole(&first));
                let update = match i {
                    0 => CatalogUpdate::Delta {
                        sources: &first.sources,
                        changes: &changes,
                        sums,
                    },
                    _ => CatalogUpdate::Checked {
                        sources: &first.sources,
                        puts: crate::delta::Puts::Map(&checked.puts),
                        removes: &checked.removes,
                        sums,
                    },
                };
                assert_eq!(commit(&db, 2, update), 10, "rows in proportion");
                (tmp, db)
            })
            .collect();
        let (a, b) = (&dbs[0].1, &dbs[1].1);
        assert_eq!(a.catalog().unwrap(), next);
        assert_eq!(b.catalog().unwrap(), next);
        let (sa, sb) = (a.snapshot().unwrap(), b.snapshot().unwrap());
        for f in first.files().chain(next.files()).map(|(_, f)| f) {
            for c in f.chunks() {
                assert_eq!(sa.uses(&c.id).unwrap(), sb.uses(&c.id).unwrap());
            }
        }
        assert_eq!(sa.sums().unwrap(), sb.sums().unwrap());
        assert_eq!(
            a.object_ref_counts().unwrap(),
            b.object_ref_counts().unwrap()
        );
        assert_eq!(a.released_objects().unwrap(), b.released_objects().unwrap());
    }

    #[test]
    fn a_snapshot_reads_its_generation_until_it_is_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let db = Db::open(&tmp.path().join("ferry-in.redb")).unwrap();
        let first = catalog(200);
        commit(&db, 1, CatalogUpdate::Whole(&first));
        let before = db.snapshot().unwrap();
        let changes = vec![
            Change::Put {
                key: key(3),
                object: file(3, 9),
            },
            Change::Remove { key: key(4) },
        ];
        let next = first.apply(&first.sources, &changes).unwrap();
        let update = CatalogUpdate::Delta {
            sources: &first.sources,
            changes: &changes,
            sums: Sums::of(next.objects.values()),
        };
        commit(&db, 2, update);
        // The snapshot taken before the commit still reads generation 1.
        assert_eq!(before.get(&key(3)).unwrap(), Some(file(3, 0)));
        assert_eq!(before.get(&key(4)).unwrap(), Some(file(4, 0)));
        assert_eq!(before.catalog().unwrap(), first);
        // A snapshot taken after it reads generation 2.
        let after = db.snapshot().unwrap();
        assert_eq!(after.get(&key(3)).unwrap(), Some(file(3, 9)));
        assert!(after.get(&key(4)).unwrap().is_none());
        assert_eq!(
            after.catalog().unwrap(),
            first.apply(&first.sources, &changes).unwrap()
        );
    }

    #[test]
    fn a_rebuilt_object_lists_its_kept_chunks_as_held() {
        let recipe = ChunkRef {
            id: ChunkId::of(b"recipe"),
            len: 6,
        };
        let f = FileObject {
            size: 10,
            sha256: Sha256::of(b"0123456789"),
            executable: false,
            encoding: Encoding::Rebuilt(Box::new(Rebuilt {
                recipe: vec![recipe, recipe],
                expanded_len: 0,
                expanded_blake3: [0; 32],
                expanded: ferry_protocol::catalog::Expanded::Chunks(vec![]),
            })),
        };
        let uses = uses_of(&key(1), &f);
        assert_eq!(uses, [(ChunkId::of(b"recipe"), Use::Held { key: key(1) })]);
        let u = &uses[0].1;
        assert_eq!(&Use::decode(&u.encode()).unwrap(), u);
    }

    /// A database written before the sums were kept (rows, no sums) gets
    /// them when it is opened, from its rows; every commit keeps them.
    #[test]
    fn a_database_without_sums_gets_them_from_its_rows() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("ferry-in.redb");
        let mut old = catalog(300);
        old.objects.insert(
            key(999),
            Object::Symlink {
                target: "f00001".into(),
            },
        );
        {
            let db = Db::open(&path).unwrap();
            commit(&db, 1, CatalogUpdate::Whole(&old));
            assert_eq!(
                db.snapshot().unwrap().sums().unwrap(),
                Sums::of(old.objects.values())
            );
        }
        {
            // As an older ferry-in left it: no sums.
            let raw = redb::Database::create(&path).unwrap();
            let txn = raw.begin_write().unwrap();
            txn.open_table(META).unwrap().remove(SUMS).unwrap();
            txn.commit().unwrap();
        }
        let db = Db::open(&path).unwrap();
        let sums = db.snapshot().unwrap().sums().unwrap();
        assert_eq!(sums, Sums::of(old.objects.values()));
        assert_eq!(sums.objects, 301);
        assert!(sums.bytes > 0 && sums.max_object > 0);
        assert_eq!(db.catalog().unwrap(), old, "the rows are as they were");
    }

    #[test]
    fn a_database_with_the_catalog_as_one_value_is_migrated_to_rows() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("ferry-in.redb");
        let old = catalog(50);
        {
            let raw = redb::Database::create(&path).unwrap();
            let txn = raw.begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert(LEGACY, old.to_bytes().as_slice())
                .unwrap();
            txn.commit().unwrap();
        }
        let db = Db::open(&path).unwrap();
        assert_eq!(db.catalog().unwrap(), old);
        assert!(db.get_meta(LEGACY).unwrap().is_none(), "the value is gone");
        assert_eq!(
            db.snapshot().unwrap().sums().unwrap(),
            Sums::of(old.objects.values())
        );
        let Object::File(f) = file(9, 0) else {
            unreachable!()
        };
        let head = f.chunks().next().unwrap().id;
        assert_eq!(db.snapshot().unwrap().uses(&head).unwrap().len(), 1);
    }
}
