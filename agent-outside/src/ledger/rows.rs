//! The last catalog as rows: the `catalog_rows` table holds one row per
//! object of the catalog of one sequence (written in `meta` beside its
//! sources and sums), keyed `source \0 path` (which sorts as object keys
//! do), its value the object and the fingerprint the file had when it was
//! read (the scan cache, merged into the rows: an unchanged file is one
//! lookup, its row's fingerprint compared as bytes, nothing decoded).
//!
//! Each commit updates the rows from its changes in the same write
//! transaction, so an export reads the last catalog near its changes only:
//! nothing of a million objects is decoded to find that ten changed.
//!
//! Rows of another sequence than the one asked for (a ledger written before
//! the rows, whose scan cache table they replace; an unsigned export
//! discarded after its commit) are built again once from the history
//! (`catalogs`, which stays for resends), keeping each fingerprint whose
//! object is the same.

use super::{catalogs, counts, ctx, META, SCAN};
use crate::export::ChangeSet;
use anyhow::{Context, Result};
use ferry_protocol::catalog::{Catalog, FileObject, LastCatalog, Object, SourceKind, Sums};
use ferry_protocol::id::{ChunkId, Sha256};
use ferry_protocol::path::ObjectKey;
use redb::{ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `source \0 path` -> a [`Row`] (postcard).
pub(super) const ROWS: TableDefinition<&str, &[u8]> = TableDefinition::new("catalog_rows");
/// The `meta` key of the rows' [`RowsState`].
const STATE: &str = "catalog_rows";

/// Which catalog the rows hold, and what a manifest says of it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct RowsState {
    sequence: u64,
    sources: BTreeMap<String, SourceKind>,
    objects: u64,
    bytes: u64,
    max_object: u64,
}

impl RowsState {
    fn sums(&self) -> Sums {
        Sums {
            objects: self.objects,
            bytes: self.bytes,
            max_object: self.max_object,
        }
    }
}

/// A row: the fingerprint the file had when it was last read (none for
/// objects a source lists without one), and the catalog's object.
#[derive(Deserialize)]
pub struct Row {
    /// See [`Row`].
    pub fingerprint: Option<String>,
    /// See [`Row`].
    pub object: Object,
}

/// [`Row`] as written, borrowing.
#[derive(Serialize)]
struct RowRef<'a> {
    fingerprint: Option<&'a str>,
    object: &'a Object,
}

/// The start of a row: what an object's kind, size and digest need,
/// without its chunk list (postcard reads a struct's first fields only).
#[derive(Deserialize)]
struct RowHead<'a> {
    #[serde(borrow)]
    _fingerprint: Option<&'a str>,
    object: ObjectHead<'a>,
}

/// [`Object`]'s variants in the same order, a file's first two fields.
#[derive(Deserialize)]
enum ObjectHead<'a> {
    File(FileHead),
    Symlink {
        #[serde(borrow)]
        _target: &'a str,
    },
}

#[derive(Deserialize)]
struct FileHead {
    size: u64,
    sha256: Sha256,
}

/// The row key of `source`/`path`.
fn row_key(source: &str, path: &str) -> String {
    let mut k = String::with_capacity(source.len() + 1 + path.len());
    k.push_str(source);
    k.push('\0');
    k.push_str(path);
    k
}

fn split_key(k: &str) -> Result<(&str, &str)> {
    k.split_once('\0')
        .with_context(|| format!("ledger: catalog row key {k:?} has no source"))
}

fn object_key(k: &str) -> Result<ObjectKey> {
    let (source, path) = split_key(k)?;
    Ok(ObjectKey {
        source: source.into(),
        path: path.into(),
    })
}

fn encode(fingerprint: Option<&str>, object: &Object) -> Result<Vec<u8>> {
    Ok(postcard::to_stdvec(&RowRef {
        fingerprint,
        object,
    })?)
}

fn decode(key: &str, v: &[u8]) -> Result<Row> {
    postcard::from_bytes(v)
        .with_context(|| format!("ledger: the catalog row of {key:?} does not decode"))
}

/// The size of a row's object if it is a file, and its digest.
fn head(key: &str, v: &[u8]) -> Result<Option<(u64, Sha256)>> {
    let (h, _) = postcard::take_from_bytes::<RowHead<'_>>(v)
        .with_context(|| format!("ledger: the catalog row of {key:?} does not decode"))?;
    Ok(match h.object {
        ObjectHead::File(f) => Some((f.size, f.sha256)),
        ObjectHead::Symlink { .. } => None,
    })
}

/// The postcard of `Some(fingerprint)`: how a row whose fingerprint it is
/// starts.
fn fingerprint_prefix(fingerprint: &str, out: &mut Vec<u8>) -> Result<()> {
    out.clear();
    *out = postcard::to_extend(&Some(fingerprint), std::mem::take(out))?;
    Ok(())
}

fn read_state(meta: &impl ReadableTable<&'static str, &'static [u8]>) -> Result<Option<RowsState>> {
    let v = meta.get(STATE).map_err(ctx("read"))?;
    v.map(|v| postcard::from_bytes(v.value()).context("ledger: bad catalog rows state"))
        .transpose()
}

/// Which sequence's catalog the rows hold, if any.
pub(super) fn rows_sequence(txn: &WriteTransaction) -> Result<Option<u64>> {
    let meta = txn.open_table(META).map_err(ctx("open meta"))?;
    Ok(read_state(&meta)?.map(|s| s.sequence))
}

/// Makes the rows those of the catalog of `sequence`, building them from
/// the history if they are of another one (or missing). Returns whether
/// they were built.
pub(super) fn ensure(txn: &WriteTransaction, sequence: u64) -> Result<bool> {
    let mut built = false;
    if rows_sequence(txn)? != Some(sequence) {
        let catalog = {
            let steps = txn.open_table(catalogs::STEPS).map_err(ctx("open"))?;
            let legacy = txn.open_table(catalogs::LEGACY).map_err(ctx("open"))?;
            let parts = txn.open_table(catalogs::PARTS).map_err(ctx("open"))?;
            let meta = txn.open_table(META).map_err(ctx("open meta"))?;
            catalogs::read(&meta, &steps, &legacy, &parts, sequence)?
        };
        rebuild(txn, sequence, &catalog)?;
        built = true;
    }
    // The counts follow the rows (a ledger written before them has none).
    let counted = {
        let meta = txn.open_table(META).map_err(ctx("open meta"))?;
        counts::sequence(&meta)?
    };
    if built || counted != Some(sequence) {
        let rows = txn.open_table(ROWS).map_err(ctx("open"))?;
        counts::rebuild(txn, sequence, |visit| {
            for r in rows.iter().map_err(ctx("read"))? {
                let (k, v) = r.map_err(ctx("read"))?;
                visit(&decode(k.value(), v.value())?.object);
            }
            Ok(())
        })?;
        built = true;
    }
    Ok(built)
}

/// Writes the rows of `catalog`, the catalog of `sequence`, over whatever
/// the table holds: each object's fingerprint is its old row's, or its old
/// scan cache entry's, when that names the same object. The scan cache
/// table goes (its entries live in the rows now).
fn rebuild(txn: &WriteTransaction, sequence: u64, catalog: &Catalog) -> Result<()> {
    {
        let mut rows = txn.open_table(ROWS).map_err(ctx("open"))?;
        let scan = txn.open_table(SCAN).map_err(ctx("open"))?;
        let mut k = String::new();
        for (key, object) in &catalog.objects {
            k.clear();
            k.push_str(&key.source);
            k.push('\0');
            k.push_str(&key.path);
            let mut fingerprint = None;
            if let Some(v) = rows.get(k.as_str()).map_err(ctx("read"))? {
                // A row that does not decode is built again, not an error.
                if let Ok(row) = postcard::from_bytes::<Row>(v.value()) {
                    if row.object == *object {
                        fingerprint = row.fingerprint;
                    }
                }
            }
            if fingerprint.is_none() {
                if let Some(v) = scan.get(k.as_str()).map_err(ctx("read"))? {
                    if let Ok(e) = postcard::from_bytes::<super::ScanEntry>(v.value()) {
                        if e.object == *object {
                            fingerprint = Some(e.fingerprint);
                        }
                    }
                }
            }
            let bytes = encode(fingerprint.as_deref(), object)?;
            rows.insert(k.as_str(), bytes.as_slice())
                .map_err(ctx("write"))?;
        }
        // Rows of keys the catalog lacks: one ordered pass beside it.
        let mut keys = catalog.objects.keys().peekable();
        let mut gone = Vec::new();
        for r in rows.iter().map_err(ctx("read"))? {
            let (k, _) = r.map_err(ctx("read"))?;
            let k = k.value();
            let (source, path) = split_key(k).unwrap_or((k, ""));
            let held = loop {
                let Some(next) = keys.peek() else { break false };
                match (next.source.as_str(), next.path.as_str()).cmp(&(source, path)) {
                    std::cmp::Ordering::Less => {
                        keys.next();
                    }
                    std::cmp::Ordering::Equal => break true,
                    std::cmp::Ordering::Greater => break false,
                }
            };
            if !held {
                gone.push(k.to_string());
            }
        }
        for k in gone {
            rows.remove(k.as_str()).map_err(ctx("write"))?;
        }
    }
    txn.delete_table(SCAN).map_err(ctx("drop the scan cache"))?;
    let sums = Sums::of(catalog.objects.values());
    write_state(
        txn,
        &RowsState {
            sequence,
            sources: catalog.sources.clone(),
            objects: sums.objects,
            bytes: sums.bytes,
            max_object: sums.max_object,
        },
    )
}

fn write_state(txn: &WriteTransaction, state: &RowsState) -> Result<()> {
    let mut meta = txn.open_table(META).map_err(ctx("open meta"))?;
    meta.insert(STATE, postcard::to_stdvec(state)?.as_slice())
        .map_err(ctx("write"))?;
    Ok(())
}

/// Turns the rows of the catalog of `sequence - 1` into those of
/// `sequence`: `changes` applied (the puts read in key order, one at a
/// time, each written with the fingerprint it carries, else its entry in
/// `scan`), the fingerprints of the other files read (`scan`) written, the
/// state set to `sources` and `sums` (the manifest's, made from the same
/// changes).
pub(super) fn apply(
    txn: &WriteTransaction,
    sequence: u64,
    sources: &BTreeMap<String, SourceKind>,
    changes: &ChangeSet,
    sums: Sums,
    scan: &[(ObjectKey, String)],
) -> Result<()> {
    let mut fingerprints: Vec<&(ObjectKey, String)> = scan.iter().collect();
    fingerprints.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    // Which fingerprints are of objects put (written with them).
    let mut of_put = vec![false; fingerprints.len()];
    // What the objects put and the ones they replace or remove change in
    // the counts.
    let mut tally = counts::Tally::default();
    {
        let mut rows = txn.open_table(ROWS).map_err(ctx("open"))?;
        let mut k = String::new();
        changes.puts.each_with_fingerprint(|key, object, carried| {
            k.clear();
            k.push_str(&key.source);
            k.push('\0');
            k.push_str(&key.path);
            let at = fingerprints.binary_search_by(|e| e.0.cmp(key)).ok();
            if let Some(i) = at {
                of_put[i] = true;
            }
            let fingerprint = carried.or(at.map(|i| fingerprints[i].1.as_str()));
            let bytes = encode(fingerprint, object)?;
            tally.object(object, 1);
            let old = rows
                .insert(k.as_str(), bytes.as_slice())
                .map_err(ctx("write"))?
                .map(|v| decode(&k, v.value()))
                .transpose()?;
            if let Some(old) = old {
                tally.object(&old.object, -1);
            }
            // A first export's tally is added in batches, not held whole.
            tally.add_if_full(txn, sequence)
        })?;
        for key in &changes.removes {
            k = row_key(&key.source, &key.path);
            let old = rows
                .remove(k.as_str())
                .map_err(ctx("write"))?
                .map(|v| decode(&k, v.value()))
                .transpose()?;
            if let Some(old) = old {
                tally.object(&old.object, -1);
            }
            tally.add_if_full(txn, sequence)?;
        }
        // Files read again whose object did not change: their new
        // fingerprint.
        let mut prefix = Vec::new();
        for (&(key, fp), put) in fingerprints.iter().zip(&of_put) {
            if *put {
                continue;
            }
            k = row_key(&key.source, &key.path);
            fingerprint_prefix(fp, &mut prefix)?;
            let row = match rows.get(k.as_str()).map_err(ctx("read"))? {
                Some(v) if v.value().starts_with(&prefix) => None,
                Some(v) => Some(decode(&k, v.value())?),
                None => None,
            };
            if let Some(row) = row {
                let bytes = encode(Some(fp), &row.object)?;
                rows.insert(k.as_str(), bytes.as_slice())
                    .map_err(ctx("write"))?;
            }
        }
        let held = rows.len().map_err(ctx("read"))?;
        anyhow::ensure!(
            held == sums.objects,
            "ledger: the catalog rows of bundle {sequence} hold {held} objects, but its \
             manifest counts {}; nothing was committed",
            sums.objects
        );
    }
    tally.apply(txn, sequence)?;
    write_state(
        txn,
        &RowsState {
            sequence,
            sources: sources.clone(),
            objects: sums.objects,
            bytes: sums.bytes,
            max_object: sums.max_object,
        },
    )
}

/// A checkpoint of the rows: the encoding of a `Catalog` (sources, then
/// the objects as a map in key order), made from the rows one at a time.
pub(super) struct RowsCatalog<'a, T> {
    pub(super) sources: &'a BTreeMap<String, SourceKind>,
    pub(super) rows: &'a T,
}

struct RowsMap<'a, T>(&'a T);

#[derive(Serialize)]
struct KeyRef<'a> {
    source: &'a str,
    path: &'a str,
}

impl<T: ReadableTable<&'static str, &'static [u8]>> Serialize for RowsCatalog<'_, T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Catalog", 2)?;
        st.serialize_field("sources", self.sources)?;
        st.serialize_field("objects", &RowsMap(self.rows))?;
        st.end()
    }
}

impl<T: ReadableTable<&'static str, &'static [u8]>> Serialize for RowsMap<'_, T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeMap};
        let len = self.0.len().map_err(S::Error::custom)?;
        let len = usize::try_from(len).map_err(S::Error::custom)?;
        let mut m = s.serialize_map(Some(len))?;
        for r in self.0.iter().map_err(S::Error::custom)? {
            let (k, v) = r.map_err(S::Error::custom)?;
            let k = k.value();
            let (source, path) = split_key(k).map_err(S::Error::custom)?;
            let row = decode(k, v.value()).map_err(S::Error::custom)?;
            m.serialize_entry(&KeyRef { source, path }, &row.object)?;
        }
        m.end()
    }
}

/// The rows of one sequence's catalog in one read transaction: the last
/// catalog of an export, read near its changes.
pub struct Last {
    table: Option<redb::ReadOnlyTable<&'static str, &'static [u8]>>,
    /// The chunks the catalog's files keep, counted ([`counts::HELD`]).
    held: Option<redb::ReadOnlyTable<&'static [u8; 32], u64>>,
    state: RowsState,
    /// A key being looked up, reused.
    key: std::cell::RefCell<String>,
    /// A fingerprint encoded to be compared, reused.
    prefix: std::cell::RefCell<Vec<u8>>,
    _txn: Option<redb::ReadTransaction>,
}

/// What the last catalog holds at a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Nothing.
    Absent,
    /// An object, whose row's fingerprint is the one asked about or not.
    Held {
        /// See [`Lookup::Held`].
        same_fingerprint: bool,
    },
}

impl Last {
    /// An empty catalog (a rebase reads everything again).
    pub fn empty() -> Last {
        Last {
            table: None,
            held: None,
            state: RowsState::default(),
            key: Default::default(),
            prefix: Default::default(),
            _txn: None,
        }
    }

    pub(super) fn open(txn: redb::ReadTransaction, sequence: u64) -> Result<Last> {
        let meta = txn.open_table(META).map_err(ctx("open meta"))?;
        let state = read_state(&meta)?.context("ledger: no catalog rows")?;
        let counted = counts::sequence(&meta)?;
        drop(meta);
        anyhow::ensure!(
            state.sequence == sequence,
            "ledger: the catalog rows are of bundle {}, not {sequence}",
            state.sequence
        );
        anyhow::ensure!(
            counted == Some(sequence),
            "ledger: the catalog counts are of bundle {counted:?}, not {sequence}"
        );
        let table = txn.open_table(ROWS).map_err(ctx("open"))?;
        let held = txn.open_table(counts::HELD).map_err(ctx("open"))?;
        Ok(Last {
            table: Some(table),
            held: Some(held),
            state,
            key: Default::default(),
            prefix: Default::default(),
            _txn: Some(txn),
        })
    }

    /// The sources.
    pub fn sources(&self) -> &BTreeMap<String, SourceKind> {
        &self.state.sources
    }

    /// How many objects.
    pub fn len(&self) -> u64 {
        self.state.objects
    }

    /// How many rows the table holds (redb keeps the count: nothing read).
    pub fn row_count(&self) -> Result<u64> {
        match &self.table {
            Some(t) => t.len().map_err(ctx("read")),
            None => Ok(0),
        }
    }

    /// Whether there is no object.
    pub fn is_empty(&self) -> bool {
        self.state.objects == 0
    }

    /// What a manifest says of it.
    pub fn sums(&self) -> Sums {
        self.state.sums()
    }

    fn with<T>(
        &self,
        source: &str,
        path: &str,
        f: impl FnOnce(Option<&[u8]>) -> Result<T>,
    ) -> Result<T> {
        let Some(table) = &self.table else {
            return f(None);
        };
        let mut key = self.key.borrow_mut();
        key.clear();
        key.push_str(source);
        key.push('\0');
        key.push_str(path);
        let v = table.get(key.as_str()).map_err(ctx("read"))?;
        f(v.as_ref().map(|v| v.value()))
    }

    /// Whether `source`/`path` is held, and if so whether its row's
    /// fingerprint is `fingerprint`: bytes compared, nothing decoded.
    pub fn lookup(&self, source: &str, path: &str, fingerprint: Option<&str>) -> Result<Lookup> {
        let mut prefix = self.prefix.borrow_mut();
        if let Some(fp) = fingerprint {
            fingerprint_prefix(fp, &mut prefix)?;
        }
        self.with(source, path, |v| {
            Ok(match v {
                None => Lookup::Absent,
                Some(v) => Lookup::Held {
                    same_fingerprint: fingerprint.is_some() && v.starts_with(&prefix),
                },
            })
        })
    }

    /// Whether a file of the catalog keeps chunk `id` (one read of the
    /// held chunks' counts; the rows are not read).
    pub fn holds_chunk(&self, id: &ChunkId) -> Result<bool> {
        match &self.held {
            Some(t) => Ok(t.get(&id.0).map_err(ctx("read"))?.is_some()),
            None => Ok(false),
        }
    }

    /// The row of `key`.
    pub fn row(&self, key: &ObjectKey) -> Result<Option<Row>> {
        self.with(&key.source, &key.path, |v| {
            v.map(|v| decode(&key.path, v)).transpose()
        })
    }

    /// The object at `key`.
    pub fn object(&self, key: &ObjectKey) -> Result<Option<Object>> {
        Ok(self.row(key)?.map(|r| r.object))
    }

    /// Whether `key` is held, and if so the size and digest of its file
    /// (none for a symlink); the rest of the row is not decoded.
    pub fn file_head(&self, key: &ObjectKey) -> Result<Option<Option<(u64, Sha256)>>> {
        self.with(&key.source, &key.path, |v| match v {
            Some(v) => head(&key.path, v).map(Some),
            None => Ok(None),
        })
    }

    /// Hands `visit` every row key (`source \0 path`) in key order, until
    /// it returns false; nothing decoded.
    pub fn each_key(&self, mut visit: impl FnMut(&str) -> Result<bool>) -> Result<()> {
        let Some(table) = &self.table else {
            return Ok(());
        };
        for r in table.iter().map_err(ctx("read"))? {
            let (k, _) = r.map_err(ctx("read"))?;
            if !visit(k.value())? {
                break;
            }
        }
        Ok(())
    }

    /// Hands `visit` every file's digest, in key order (only the start of
    /// each row decoded).
    pub fn each_digest(&self, mut visit: impl FnMut(Sha256)) -> Result<()> {
        let Some(table) = &self.table else {
            return Ok(());
        };
        for r in table.iter().map_err(ctx("read"))? {
            let (k, v) = r.map_err(ctx("read"))?;
            if let Some((_, sha256)) = head(k.value(), v.value())? {
                visit(sha256);
            }
        }
        Ok(())
    }

    /// Hands `visit` every file, in key order, decoded.
    pub fn each_file(&self, mut visit: impl FnMut(&str, &FileObject) -> Result<()>) -> Result<()> {
        self.each_object_from("", |k, o| match o {
            Object::File(f) => visit(k, f).map(|()| true),
            Object::Symlink { .. } => Ok(true),
        })
    }

    /// Hands `visit` each key from `from` on and its object, decoded, in
    /// key order, until it returns false.
    fn each_object_from(
        &self,
        from: &str,
        mut visit: impl FnMut(&str, &Object) -> Result<bool>,
    ) -> Result<()> {
        let Some(table) = &self.table else {
            return Ok(());
        };
        for r in table.range(from..).map_err(ctx("read"))? {
            let (k, v) = r.map_err(ctx("read"))?;
            let row = decode(k.value(), v.value())?;
            if !visit(k.value(), &row.object)? {
                break;
            }
        }
        Ok(())
    }

    /// The objects of source `source`, as a catalog of that source alone
    /// (what a source that asks for the last catalog sees of it).
    pub fn source_catalog(&self, source: &str) -> Result<Catalog> {
        let mut c = Catalog {
            sources: self.state.sources.clone(),
            ..Catalog::default()
        };
        let from = row_key(source, "");
        self.each_object_from(&from, |k, o| {
            let (s, path) = split_key(k)?;
            if s != source {
                return Ok(false);
            }
            c.objects.insert(
                ObjectKey {
                    source: s.into(),
                    path: path.into(),
                },
                o.clone(),
            );
            Ok(true)
        })?;
        Ok(c)
    }

    /// The files directly in directory `dir` of source `source` (`""` for
    /// its top), by name with their sizes, in key order; the rows of its
    /// subdirectories are skipped over, not read.
    pub fn dir_files(&self, source: &str, dir: &str) -> Result<Vec<(String, u64)>> {
        let mut out = Vec::new();
        let Some(table) = &self.table else {
            return Ok(out);
        };
        let mut prefix = row_key(source, dir);
        if !dir.is_empty() {
            prefix.push('/');
        }
        let mut from = prefix.clone();
        loop {
            // Where to go on from past a subdirectory's rows, if one is met.
            let mut next = None;
            for r in table.range(from.as_str()..).map_err(ctx("read"))? {
                let (k, v) = r.map_err(ctx("read"))?;
                let k = k.value();
                let Some(rest) = k.strip_prefix(prefix.as_str()) else {
                    break;
                };
                if let Some(slash) = rest.find('/') {
                    // '0' is the character after '/'.
                    next = Some(format!("{prefix}{}0", &rest[..slash]));
                    break;
                }
                if let Some((size, _)) = head(k, v.value())? {
                    out.push((rest.to_string(), size));
                }
            }
            match next {
                Some(n) => from = n,
                None => break,
            }
        }
        Ok(out)
    }
}

fn io(e: anyhow::Error) -> ferry_protocol::Error {
    ferry_protocol::Error::Io(std::io::Error::other(format!("{e:#}")))
}

impl LastCatalog for Last {
    fn sources(&self) -> &BTreeMap<String, SourceKind> {
        &self.state.sources
    }

    fn holds(&self, key: &ObjectKey) -> Result<bool, ferry_protocol::Error> {
        self.with(&key.source, &key.path, |v| Ok(v.is_some()))
            .map_err(io)
    }

    fn keys_from(
        &self,
        from: &ObjectKey,
        visit: &mut dyn FnMut(&ObjectKey) -> bool,
    ) -> Result<(), ferry_protocol::Error> {
        let Some(table) = &self.table else {
            return Ok(());
        };
        let from = row_key(&from.source, &from.path);
        let range = table
            .range(from.as_str()..)
            .map_err(|e| io(ctx("read")(e)))?;
        for r in range {
            let (k, _) = r.map_err(|e| io(ctx("read")(e)))?;
            let key = object_key(k.value()).map_err(io)?;
            if !visit(&key) {
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
impl Last {
    /// The whole catalog the rows hold, and each key's fingerprint.
    pub(super) fn whole(&self) -> (Catalog, BTreeMap<ObjectKey, String>) {
        let mut c = Catalog {
            sources: self.state.sources.clone(),
            ..Catalog::default()
        };
        let mut fps = BTreeMap::new();
        let table = self.table.as_ref().expect("rows");
        for r in table.iter().unwrap() {
            let (k, v) = r.unwrap();
            let key = object_key(k.value()).unwrap();
            let row = decode(k.value(), v.value()).unwrap();
            if let Some(fp) = row.fingerprint {
                fps.insert(key.clone(), fp);
            }
            c.objects.insert(key, row.object);
        }
        (c, fps)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{commit, commit_with, record};
    use super::super::{Ledger, BUNDLES};
    use super::*;
    use crate::layout::Layout;
    use redb::{Database, ReadableDatabase};

    fn key(source: &str, path: &str) -> ObjectKey {
        ObjectKey {
            source: source.into(),
            path: path.into(),
        }
    }

    fn link(t: &str) -> Object {
        Object::Symlink { target: t.into() }
    }

    fn file(size: u64) -> Object {
        Object::File(FileObject {
            size,
            sha256: Sha256([size as u8; 32]),
            executable: false,
            encoding: ferry_protocol::catalog::Encoding::Chunks(vec![]),
        })
    }

    fn catalog(objects: &[(&str, &str, Object)]) -> Catalog {
        let mut c = Catalog::default();
        for (s, p, o) in objects {
            c.sources.insert(s.to_string(), SourceKind::Files);
            c.objects.insert(key(s, p), o.clone());
        }
        c
    }

    /// The rows of `sequence`'s catalog are `expected`, with its sums.
    fn assert_rows(
        ledger: &Ledger,
        sequence: u64,
        expected: &Catalog,
    ) -> BTreeMap<ObjectKey, String> {
        let last = ledger.last(sequence).unwrap();
        let (whole, fps) = last.whole();
        assert_eq!(&whole, expected, "rows of {sequence}");
        assert_eq!(last.sums(), Sums::of(expected.objects.values()));
        fps
    }

    #[test]
    fn each_commit_updates_the_rows_and_their_fingerprints() {
        let tmp = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&Layout::new(tmp.path())).unwrap();
        let first = catalog(&[
            ("a", "x", file(10)),
            ("a", "y", file(30)),
            ("ab", "z", link("x")),
        ]);
        let scan = [
            (key("a", "x"), "fp-x".to_string()),
            (key("a", "y"), "fp-y".to_string()),
        ];
        commit(&ledger, 1, &Catalog::default(), &first, &[], &scan);
        let fps = assert_rows(&ledger, 1, &first);
        assert_eq!(fps.len(), 2);
        assert_eq!(fps[&key("a", "x")], "fp-x");
        // y changed (the largest file, smaller now), z gone, w new; x read
        // again with another fingerprint but the same object.
        let second = catalog(&[
            ("a", "w", file(5)),
            ("a", "x", file(10)),
            ("a", "y", file(20)),
        ]);
        let scan = [
            (key("a", "x"), "fp-x2".to_string()),
            (key("a", "y"), "fp-y2".to_string()),
        ];
        commit(&ledger, 2, &first, &second, &[], &scan);
        let fps = assert_rows(&ledger, 2, &second);
        assert_eq!(fps[&key("a", "x")], "fp-x2");
        assert_eq!(fps[&key("a", "y")], "fp-y2");
        assert!(
            !fps.contains_key(&key("a", "w")),
            "w was not read with a fingerprint"
        );
        // The history is the same catalogs.
        assert_eq!(ledger.catalog(1).unwrap(), first);
        assert_eq!(ledger.catalog(2).unwrap(), second);
        // A changed file whose source gives no fingerprint any more loses it.
        let third = catalog(&[
            ("a", "w", file(5)),
            ("a", "x", file(11)),
            ("a", "y", file(20)),
        ]);
        commit(&ledger, 3, &second, &third, &[], &[]);
        let fps = assert_rows(&ledger, 3, &third);
        assert_eq!(fps.keys().collect::<Vec<_>>(), [&key("a", "y")]);
    }

    #[test]
    fn the_rows_of_a_discarded_unsigned_export_are_built_again_from_the_history() {
        let tmp = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&Layout::new(tmp.path())).unwrap();
        let first = catalog(&[("a", "x", file(10)), ("a", "y", file(30))]);
        let scan = [
            (key("a", "x"), "fp-x".to_string()),
            (key("a", "y"), "fp-y".to_string()),
        ];
        commit(&ledger, 1, &Catalog::default(), &first, &[], &scan);
        let second = catalog(&[
            ("a", "x", file(10)),
            ("a", "y", file(31)),
            ("a", "n", link("x")),
        ]);
        let scan2 = [
            (key("a", "x"), "fp-x2".to_string()),
            (key("a", "y"), "fp-y2".to_string()),
        ];
        commit_with(&ledger, false, &record(2), (&first, &second), &[], &scan2).unwrap();
        assert_eq!(ledger.head().unwrap().sequence, 1);
        ledger.discard_unsigned().unwrap().unwrap();
        // Back to the catalog of 1: x keeps the fingerprint its row had (the
        // same object), y's row named another object, so y is read again.
        let fps = assert_rows(&ledger, 1, &first);
        assert_eq!(fps.get(&key("a", "x")).map(String::as_str), Some("fp-x2"));
        assert_eq!(fps.get(&key("a", "y")), None);
        // The next export commits on top of them.
        let again = catalog(&[("a", "x", file(10)), ("a", "y", file(32))]);
        commit(&ledger, 2, &first, &again, &[], &[]);
        assert_rows(&ledger, 2, &again);
        assert_eq!(ledger.catalog(2).unwrap(), again);
        // Rows asked for an older sequence (a resend's catalog is read from
        // the history, never from the rows) are built for it, and back.
        assert_rows(&ledger, 1, &first);
        assert_rows(&ledger, 2, &again);
    }

    #[test]
    fn an_old_ledger_with_a_scan_cache_is_upgraded_in_place() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path());
        std::fs::create_dir_all(&layout.root).unwrap();
        // A ledger as session 11 wrote it: no rows; the catalog of 1 whole
        // (as before the history), 2 as its changes; a scan cache.
        let first = catalog(&[
            ("a", "x", file(10)),
            ("a", "y", file(30)),
            ("a", "z", file(7)),
        ]);
        let second = catalog(&[("a", "x", file(10)), ("a", "y", file(31))]);
        {
            let db = Database::create(layout.ledger()).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut meta = txn.open_table(META).unwrap();
                meta.insert("stream", &[7u8; 16][..]).unwrap();
                let mut legacy = txn.open_table(catalogs::LEGACY).unwrap();
                legacy.insert(1, first.to_bytes().as_slice()).unwrap();
                #[derive(Serialize)]
                enum OldStep<'a> {
                    #[allow(dead_code)]
                    Checkpoint(&'a Catalog),
                    Changes {
                        sources: &'a BTreeMap<String, SourceKind>,
                        changes: &'a [ferry_protocol::catalog::Change],
                    },
                }
                let step = OldStep::Changes {
                    sources: &second.sources,
                    changes: &first.diff(&second),
                };
                let mut steps = txn.open_table(catalogs::STEPS).unwrap();
                steps
                    .insert(2, postcard::to_stdvec(&step).unwrap().as_slice())
                    .unwrap();
                let mut bundles = txn.open_table(BUNDLES).unwrap();
                for n in [1, 2] {
                    bundles
                        .insert(n, postcard::to_stdvec(&record(n)).unwrap().as_slice())
                        .unwrap();
                }
                #[derive(Serialize)]
                struct Entry<'a> {
                    fingerprint: &'a str,
                    object: &'a Object,
                }
                let mut scan = txn.open_table(SCAN).unwrap();
                // x's entry is of its object; y's of its object in 1, stale.
                for (p, fp, o) in [("x", "fp-x", &file(10)), ("y", "fp-y", &file(30))] {
                    let e = postcard::to_stdvec(&Entry {
                        fingerprint: fp,
                        object: o,
                    })
                    .unwrap();
                    scan.insert(row_key("a", p).as_str(), e.as_slice()).unwrap();
                }
            }
            txn.commit().unwrap();
        }
        let ledger = Ledger::open(&layout).unwrap();
        assert_eq!(ledger.stream().unwrap().0, [7u8; 16]);
        let fps = assert_rows(&ledger, 2, &second);
        // The counts are built with the rows.
        let digests: std::collections::HashSet<Sha256> =
            [10u8, 31].iter().map(|s| Sha256([*s; 32])).collect();
        assert_eq!(ledger.catalog_digests().unwrap(), digests);
        assert_eq!(fps.len(), 1, "only x's entry names its object");
        assert_eq!(fps[&key("a", "x")], "fp-x");
        {
            let txn = ledger.db.begin_read().unwrap();
            assert!(
                matches!(
                    txn.open_table(SCAN),
                    Err(redb::TableError::TableDoesNotExist(_))
                ),
                "the scan cache is gone"
            );
        }
        // Exports go on, and every catalog still reads back.
        let third = catalog(&[("a", "x", file(10))]);
        commit(&ledger, 3, &second, &third, &[], &[]);
        assert_rows(&ledger, 3, &third);
        for (n, c) in [(1, &first), (2, &second), (3, &third)] {
            assert_eq!(&ledger.catalog(n).unwrap(), c);
        }
    }

    #[test]
    fn a_directory_lists_its_files_only_and_keys_read_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&Layout::new(tmp.path())).unwrap();
        let c = catalog(&[
            ("a", "top", file(1)),
            ("a", "d/x-1", file(2)),
            ("a", "d/link", link("x-1")),
            ("a", "d/sub/x-2", file(3)),
            ("a", "d/sub0", file(4)),
            ("a", "d/y", file(5)),
            ("a", "d-e/x", file(6)),
            ("ab", "d/x", file(7)),
        ]);
        commit(&ledger, 1, &Catalog::default(), &c, &[], &[]);
        let last = ledger.last(1).unwrap();
        let names = |s: &str, d: &str| -> Vec<(String, u64)> { last.dir_files(s, d).unwrap() };
        let d = names("a", "d");
        assert_eq!(
            d,
            [("sub0".to_string(), 4), ("x-1".into(), 2), ("y".into(), 5)]
        );
        assert_eq!(names("a", ""), [("top".to_string(), 1)]);
        assert_eq!(names("a", "d/sub"), [("x-2".to_string(), 3)]);
        assert!(names("a", "none").is_empty());
        assert_eq!(names("ab", "d"), [("x".to_string(), 7)]);
        // keys_from and holds agree with the catalog's.
        let from = key("a", "d/sub/");
        let mut seen = Vec::new();
        LastCatalog::keys_from(&last, &from, &mut |k| {
            seen.push(k.clone());
            seen.len() < 3
        })
        .unwrap();
        let want: Vec<ObjectKey> = c
            .objects
            .range(&from..)
            .take(3)
            .map(|(k, _)| k.clone())
            .collect();
        assert_eq!(seen, want);
        assert!(LastCatalog::holds(&last, &key("a", "d/y")).unwrap());
        assert!(!LastCatalog::holds(&last, &key("a", "d")).unwrap());
        assert_eq!(last.source_catalog("ab").unwrap().objects.len(), 1);
        // A checkpoint encoded from the rows is the catalog's encoding.
        assert_eq!(ledger.catalog(1).unwrap(), c);
    }
}
