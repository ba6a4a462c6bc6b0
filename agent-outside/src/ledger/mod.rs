//! The outside ledger (redb): the stream's identity and head, the catalog at
//! every sequence shipped (as a history of changes: [`catalogs`]), the last
//! catalog as rows with each file's fingerprint ([`rows`]: what an export
//! reads, near its changes, and what lets an unchanged file skip
//! re-reading), a record of every bundle, and every chunk ever shipped.
//!
//! What an export writes grows with its change, not with the mirror: the
//! catalog as changes since the sequence before, and the rows of the
//! objects that changed.
//!
//! One write transaction commits an export; a crash before it leaves the
//! ledger at the previous head, and the next export starts over.
//!
//! An unsigned export (`export --unsigned`) commits its catalog, shipped
//! chunks and rows, but its record waits in the `unsigned` table, not
//! in `bundles`: the head does not move until `publish` finds the bundle
//! signed (its manifest hash, the next bundle's `previous`, exists only
//! then) and moves the record over in one transaction. While a bundle waits,
//! export refuses to build another.
//!
//! Chunks to ship again (`export --reship`, from an inside scrub report)
//! wait in the `reship` table until a bundle carrying them is committed.

mod catalogs;
mod counts;
mod insides;
mod rows;

pub use catalogs::{stores_changes, Compacted, Compaction, CHECKPOINT_EVERY};
pub use insides::Inside;
pub use rows::{Last, Lookup, Row};

use crate::export::ChangeSet;
use crate::layout::Layout;
use anyhow::{Context, Result};
use ferry_protocol::catalog::{Catalog, Object, SourceKind, Sums};
use ferry_protocol::id::{ChunkId, ManifestHash, Sha256, StreamId};
use ferry_protocol::path::ObjectKey;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const BUNDLES: TableDefinition<u64, &[u8]> = TableDefinition::new("bundles");
const SHIPPED: TableDefinition<&[u8; 32], u64> = TableDefinition::new("shipped_chunks");
/// The scan cache of ledgers written before the catalog rows (`source \0
/// path` -> a [`ScanEntry`]): read once when the rows are built, then gone.
const SCAN: TableDefinition<&str, &[u8]> = TableDefinition::new("scan_cache");
/// Sequence -> the inside's confirmation that it applied the bundle (a
/// `Delivery`). Kept apart from `BundleRecord`, whose postcard encoding older
/// ledgers already hold.
const DELIVERED: TableDefinition<u64, &[u8]> = TableDefinition::new("delivered");
/// Sequence -> the `BundleRecord` of a bundle exported unsigned, waiting
/// for its signature (at most one). Its `hash` and `bytes` are those of the
/// unsigned manifest file until `commit_signed`.
const UNSIGNED: TableDefinition<u64, &[u8]> = TableDefinition::new("unsigned");
/// redb's page cache (its default, 1 GiB, would keep most of a mirror's
/// ledger in memory after one scan; the kernel's page cache serves reads
/// again). Half of it at most buffers a commit's written pages.
const CACHE_BYTES: usize = 32 << 20;
/// Chunks the inside reported bad (`export --reship`): the next bundle
/// carries them again. Value: the head sequence when asked.
const RESHIP: TableDefinition<&[u8; 32], u64> = TableDefinition::new("reship");

/// What the ledger remembers of one bundle.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BundleRecord {
    /// Sequence number.
    pub sequence: u64,
    /// Creation time (Unix seconds).
    pub created: u64,
    /// Expiry time (Unix seconds).
    pub expires: u64,
    /// Manifest hash.
    pub hash: ManifestHash,
    /// Directory name of the bundle.
    pub dir_name: String,
    /// Bytes on media: manifest plus volumes.
    pub bytes: u64,
    /// Chunks carried.
    pub chunks: u64,
    /// Uncompressed bytes of those chunks.
    pub chunk_raw_bytes: u64,
    /// Objects added, changed, removed.
    pub added: u64,
    /// See `added`.
    pub changed: u64,
    /// See `added`.
    pub removed: u64,
    /// Objects in the resulting catalog.
    pub objects: u64,
    /// Bytes of the files in the resulting catalog.
    pub catalog_bytes: u64,
    /// Whether the bundle has been written completely to media at least once.
    pub written: bool,
}

/// The inside's word that it applied a bundle: only the inside can say so
/// (a push's `Outcome`, or a push finding it already applied). Writing a
/// bundle to media is not delivery.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// When the outside learned it (Unix seconds).
    pub at: u64,
    /// How: `"quic"` for a push.
    pub via: String,
}

/// A scan cache entry of a ledger written before the catalog rows: the
/// fingerprint a file had, and the object it gave.
#[derive(Deserialize)]
struct ScanEntry {
    fingerprint: String,
    object: Object,
}

/// The head of the stream.
#[derive(Clone, Debug)]
pub struct Head {
    /// Last sequence exported (0 before the first).
    pub sequence: u64,
    /// Its manifest hash.
    pub hash: Option<ManifestHash>,
}

/// The ledger database.
pub struct Ledger {
    db: Database,
}

fn ctx<E: std::error::Error + Send + Sync + 'static>(
    what: &'static str,
) -> impl FnOnce(E) -> anyhow::Error {
    move |e| anyhow::Error::new(e).context(format!("ledger: {what}"))
}

impl Ledger {
    /// Opens (or creates) the ledger of the state directory `layout`.
    /// Creates the stream id on first use.
    pub fn open(layout: &Layout) -> Result<Ledger> {
        let state = &layout.root;
        std::fs::create_dir_all(state)
            .with_context(|| format!("cannot create state directory {}", state.display()))?;
        let path = layout.ledger();
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .with_context(|| {
                format!(
                    "cannot open ledger {} (is another ferry-out running?)",
                    path.display()
                )
            })?;
        let l = Ledger { db };
        let txn = l.db.begin_write().map_err(ctx("begin"))?;
        {
            let mut meta = txn.open_table(META).map_err(ctx("open meta"))?;
            if meta.get("stream").map_err(ctx("read"))?.is_none() {
                let mut id = [0u8; 16];
                getrandom::fill(&mut id)
                    .map_err(|e| anyhow::anyhow!("no randomness for a stream id: {e}"))?;
                meta.insert("stream", &id[..]).map_err(ctx("write"))?;
            }
            txn.open_table(catalogs::STEPS).map_err(ctx("open"))?;
            txn.open_table(catalogs::LEGACY).map_err(ctx("open"))?;
            txn.open_table(catalogs::PARTS).map_err(ctx("open"))?;
            txn.open_table(BUNDLES).map_err(ctx("open"))?;
            txn.open_table(SHIPPED).map_err(ctx("open"))?;
            txn.open_table(rows::ROWS).map_err(ctx("open"))?;
            txn.open_table(counts::HELD).map_err(ctx("open"))?;
            txn.open_table(counts::DIGESTS).map_err(ctx("open"))?;
            txn.open_table(counts::UNHELD).map_err(ctx("open"))?;
            txn.open_table(UNSIGNED).map_err(ctx("open"))?;
            txn.open_table(RESHIP).map_err(ctx("open"))?;
        }
        txn.commit().map_err(ctx("commit"))?;
        Ok(l)
    }

    /// The stream id.
    pub fn stream(&self) -> Result<StreamId> {
        let txn = self.db.begin_read().map_err(ctx("begin"))?;
        let meta = txn.open_table(META).map_err(ctx("open meta"))?;
        let v = meta
            .get("stream")
            .map_err(ctx("read"))?
            .context("ledger has no stream id")?;
        Ok(StreamId(
            v.value()
                .try_into()
                .context("ledger: stream id is not 16 bytes")?,
        ))
    }

    /// The head of the stream.
    pub fn head(&self) -> Result<Head> {
        let txn = self.db.begin_read().map_err(ctx("begin"))?;
        let bundles = txn.open_table(BUNDLES).map_err(ctx("open"))?;
        let last = bundles.last().map_err(ctx("read"))?;
        let head = match last {
            None => Head {
                sequence: 0,
                hash: None,
            },
            Some((k, v)) => {
                let rec: BundleRecord =
                    postcard::from_bytes(v.value()).context("ledger: bad bundle record")?;
                Head {
                    sequence: k.value(),
                    hash: Some(rec.hash),
                }
            }
        };
        Ok(head)
    }

    /// Every bundle record, in sequence order.
    pub fn bundles(&self) -> Result<Vec<BundleRecord>> {
        let txn = self.db.begin_read().map_err(ctx("begin"))?;
        let t = txn.open_table(BUNDLES).map_err(ctx("open"))?;
        let mut out = vec![];
        for r in t.iter().map_err(ctx("read"))? {
            let (_, v) = r.map_err(ctx("read"))?;
            out.push(postcard::from_bytes(v.value()).context("ledger: bad bundle record")?);
        }
        Ok(out)
    }

    /// The catalog as of `sequence` (empty for 0). A sequence whose catalog
    /// `prune` compacted away is a [`Compacted`] error.
    pub fn catalog(&self, sequence: u64) -> Result<Catalog> {
        let txn = self.db.begin_read().map_err(ctx("begin"))?;
        let meta = txn.open_table(META).map_err(ctx("open meta"))?;
        let steps = txn.open_table(catalogs::STEPS).map_err(ctx("open"))?;
        let legacy = txn.open_table(catalogs::LEGACY).map_err(ctx("open"))?;
        let parts = txn.open_table(catalogs::PARTS).map_err(ctx("open"))?;
        catalogs::read(&meta, &steps, &legacy, &parts, sequence)
    }

    /// The oldest sequence whose catalog the ledger holds, once `prune` has
    /// compacted the history (0 before: every catalog is held).
    pub fn catalogs_from(&self) -> Result<u64> {
        let txn = self.db.begin_read().map_err(ctx("begin"))?;
        catalogs::catalogs_from(&txn.open_table(META).map_err(ctx("open meta"))?)
    }

    /// Deletes the catalog history before the newest checkpoint at or
    /// before `keep`, in one transaction: the catalog of every sequence
    /// from `keep` on still reads, older ones are a [`Compacted`] error.
    /// Only deletes (no catalog is written), so its cost is what it frees.
    /// `None` when there is nothing to delete. `keep` above the head is
    /// taken as the head: the head's catalog is always held.
    pub fn compact_history(&self, keep: u64) -> Result<Option<Compaction>> {
        let keep = keep.min(self.head()?.sequence);
        let txn = self.db.begin_write().map_err(ctx("begin"))?;
        let done = catalogs::compact(&txn, keep)?;
        txn.commit().map_err(ctx("commit"))?;
        Ok(done)
    }

    /// Gives the ledger file's free pages back to the filesystem (redb
    /// reuses them otherwise, but never shrinks the file by itself).
    /// Crash safe: redb compacts through its own commits. Returns whether
    /// the file could be compacted further.
    pub fn compact_file(&mut self) -> Result<bool> {
        self.db.compact().map_err(ctx("compact"))
    }

    /// The catalog of `sequence` as rows, for an export to read near its
    /// changes. Rows of another sequence (a ledger written before them, an
    /// unsigned export discarded) are built again first, once, from the
    /// history.
    pub fn last(&self, sequence: u64) -> Result<Last> {
        let txn = self.db.begin_write().map_err(ctx("begin"))?;
        if rows::ensure(&txn, sequence)? {
            txn.commit().map_err(ctx("commit"))?;
        } else {
            txn.abort().map_err(ctx("abort"))?;
        }
        let txn = self.db.begin_read().map_err(ctx("begin"))?;
        Last::open(txn, sequence)
    }

    /// Records an export in one transaction: bundle record, catalog (its
    /// step in the history, and the rows), shipped chunks and the files'
    /// fingerprints. The chunks asked to be shipped again are no longer
    /// asked for.
    pub fn commit_export(&self, export: &Commit<'_>) -> Result<()> {
        self.commit(true, export)
    }

    /// Records an unsigned export: like [`Ledger::commit_export`], but the
    /// record waits for its signature ([`Ledger::awaiting_signature`]) and
    /// the head stays where it is. The chunks to ship again stay asked for
    /// until [`Ledger::commit_signed`].
    pub fn commit_unsigned(&self, export: &Commit<'_>) -> Result<()> {
        self.commit(false, export)
    }

    fn commit(&self, signed: bool, export: &Commit<'_>) -> Result<()> {
        let record = export.record;
        let txn = self.db.begin_write().map_err(ctx("begin"))?;
        // The changes are from the catalog of the sequence before.
        rows::ensure(&txn, record.sequence - 1)?;
        rows::apply(
            &txn,
            record.sequence,
            export.sources,
            export.changes,
            export.sums,
            export.scan,
        )?;
        let count = usize::try_from(export.changes.count()).unwrap_or(usize::MAX);
        // A delta's changes are stored as a list (a copy of the change); a
        // checkpoint is encoded from the rows.
        let stored = stores_changes(record.sequence, count, export.sums.objects)
            .then(|| export.changes.to_list())
            .transpose()?;
        catalogs::write(&txn, record.sequence, export.sources, stored.as_deref())?;
        {
            let table = if signed { BUNDLES } else { UNSIGNED };
            let mut b = txn.open_table(table).map_err(ctx("open"))?;
            b.insert(record.sequence, postcard::to_stdvec(record)?.as_slice())
                .map_err(ctx("write"))?;
            let mut s = txn.open_table(SHIPPED).map_err(ctx("open"))?;
            for id in export.shipped {
                if s.get(&id.0).map_err(ctx("read"))?.is_none() {
                    s.insert(&id.0, record.sequence).map_err(ctx("write"))?;
                }
            }
        }
        if signed {
            txn.delete_table(RESHIP).map_err(ctx("reset reship"))?;
        }
        txn.commit().map_err(ctx("commit"))?;
        Ok(())
    }

    /// Hands `remove` each digest no file of the last catalog has any more
    /// (its count fell to 0 in a commit, and it is not counted again since),
    /// to remove its copy and recipes, then takes them off the list; a
    /// digest counted again is only taken off. Run right after each commit:
    /// what a crash leaves listed goes at the next one. Returns how many
    /// were handed over.
    pub fn prune_unheld(&self, mut remove: impl FnMut(&Sha256) -> Result<()>) -> Result<usize> {
        let listed = {
            let txn = self.db.begin_read().map_err(ctx("begin"))?;
            counts::unheld(&txn)?
        };
        if listed.is_empty() {
            return Ok(0);
        }
        let mut n = 0;
        for (d, again) in &listed {
            if !again {
                remove(d)?;
                n += 1;
            }
        }
        let txn = self.db.begin_write().map_err(ctx("begin"))?;
        {
            let mut t = txn.open_table(counts::UNHELD).map_err(ctx("open"))?;
            for (d, _) in &listed {
                t.remove(&d.0).map_err(ctx("write"))?;
            }
        }
        txn.commit().map_err(ctx("commit"))?;
        Ok(n)
    }

    /// Every digest a file of the last catalog committed has (the counted
    /// digests' keys: no row read).
    pub fn catalog_digests(&self) -> Result<std::collections::HashSet<Sha256>> {
        let txn = self.db.begin_read().map_err(ctx("begin"))?;
        let t = txn.open_table(counts::DIGESTS).map_err(ctx("open"))?;
        let mut out = std::collections::HashSet::with_capacity(
            usize::try_from(t.len().map_err(ctx("read"))?).unwrap_or(0),
        );
        for r in t.iter().map_err(ctx("read"))? {
            out.insert(Sha256(*r.map_err(ctx("read"))?.0.value()));
        }
        Ok(out)
    }

    /// The bundle exported unsigned and waiting for its signature, if any.
    pub fn awaiting_signature(&self) -> Result<Option<BundleRecord>> {
        let txn = self.db.begin_read().map_err(ctx("begin"))?;
        let t = txn.open_table(UNSIGNED).map_err(ctx("open"))?;
        let last = t.last().map_err(ctx("read"))?;
        last.map(|(_, v)| postcard::from_bytes(v.value()).context("ledger: bad bundle record"))
            .transpose()
    }

    /// Moves the bundle awaiting its signature to the stream as `record`
    /// (with the signed manifest's hash and size), in one transaction: the
    /// head moves, and the chunks to ship again are no longer asked for.
    pub fn commit_signed(&self, record: &BundleRecord) -> Result<()> {
        let txn = self.db.begin_write().map_err(ctx("begin"))?;
        {
            let mut u = txn.open_table(UNSIGNED).map_err(ctx("open"))?;
            if u.remove(record.sequence).map_err(ctx("write"))?.is_none() {
                anyhow::bail!(
                    "ledger: bundle {} is not awaiting a signature",
                    record.sequence
                );
            }
            let mut b = txn.open_table(BUNDLES).map_err(ctx("open"))?;
            b.insert(record.sequence, postcard::to_stdvec(record)?.as_slice())
                .map_err(ctx("write"))?;
        }
        txn.delete_table(RESHIP).map_err(ctx("reset reship"))?;
        txn.commit().map_err(ctx("commit"))?;
        Ok(())
    }

    /// Forgets the bundle awaiting its signature (and its catalog); the
    /// next export builds that sequence afresh. Returns its record.
    pub fn discard_unsigned(&self) -> Result<Option<BundleRecord>> {
        let Some(rec) = self.awaiting_signature()? else {
            return Ok(None);
        };
        let txn = self.db.begin_write().map_err(ctx("begin"))?;
        {
            let mut u = txn.open_table(UNSIGNED).map_err(ctx("open"))?;
            u.remove(rec.sequence).map_err(ctx("write"))?;
            catalogs::remove(&txn, rec.sequence)?;
        }
        txn.commit().map_err(ctx("commit"))?;
        Ok(Some(rec))
    }

    /// Asks for `ids` to be shipped again (the inside lost them): they leave
    /// the shipped set and wait in the reship set until a bundle carrying
    /// them is committed. Returns how many were newly asked for.
    pub fn request_reship(&self, ids: &[ChunkId]) -> Result<usize> {
        let head = self.head()?.sequence;
        let txn = self.db.begin_write().map_err(ctx("begin"))?;
        let mut n = 0;
        {
            let mut s = txn.open_table(SHIPPED).map_err(ctx("open"))?;
            let mut r = txn.open_table(RESHIP).map_err(ctx("open"))?;
            for id in ids {
                s.remove(&id.0).map_err(ctx("write"))?;
                if r.insert(&id.0, head).map_err(ctx("write"))?.is_none() {
                    n += 1;
                }
            }
        }
        txn.commit().map_err(ctx("commit"))?;
        Ok(n)
    }

    /// The chunks asked to be shipped again.
    pub fn reship(&self) -> Result<std::collections::HashSet<ChunkId>> {
        let txn = self.db.begin_read().map_err(ctx("begin"))?;
        let mut out = std::collections::HashSet::new();
        let t = match txn.open_table(RESHIP) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(out),
            Err(e) => return Err(ctx("open")(e)),
        };
        for r in t.iter().map_err(ctx("read"))? {
            let (k, _) = r.map_err(ctx("read"))?;
            out.insert(ChunkId(*k.value()));
        }
        Ok(out)
    }

    /// Records that bundle `sequence` has been written completely to media.
    pub fn mark_written(&self, sequence: u64) -> Result<()> {
        let txn = self.db.begin_write().map_err(ctx("begin"))?;
        {
            let mut b = txn.open_table(BUNDLES).map_err(ctx("open"))?;
            let rec = b
                .get(sequence)
                .map_err(ctx("read"))?
                .map(|v| v.value().to_vec());
            let Some(rec) = rec else {
                anyhow::bail!("ledger has no bundle {sequence}");
            };
            let mut rec: BundleRecord =
                postcard::from_bytes(&rec).context("ledger: bad bundle record")?;
            rec.written = true;
            b.insert(sequence, postcard::to_stdvec(&rec)?.as_slice())
                .map_err(ctx("write"))?;
        }
        txn.commit().map_err(ctx("commit"))?;
        Ok(())
    }

    /// Records that the inside confirmed it applied bundle `sequence`. The
    /// first confirmation is kept.
    pub fn mark_delivered(&self, sequence: u64, delivery: &Delivery) -> Result<()> {
        let txn = self.db.begin_write().map_err(ctx("begin"))?;
        {
            let bundles = txn.open_table(BUNDLES).map_err(ctx("open"))?;
            if bundles.get(sequence).map_err(ctx("read"))?.is_none() {
                anyhow::bail!("ledger has no bundle {sequence}");
            }
            let mut t = txn.open_table(DELIVERED).map_err(ctx("open"))?;
            if t.get(sequence).map_err(ctx("read"))?.is_none() {
                t.insert(sequence, postcard::to_stdvec(delivery)?.as_slice())
                    .map_err(ctx("write"))?;
            }
        }
        txn.commit().map_err(ctx("commit"))?;
        Ok(())
    }

    /// The inside's confirmation for bundle `sequence`, if any.
    pub fn delivery(&self, sequence: u64) -> Result<Option<Delivery>> {
        let txn = self.db.begin_read().map_err(ctx("begin"))?;
        let t = match txn.open_table(DELIVERED) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(ctx("open")(e)),
        };
        let v = t.get(sequence).map_err(ctx("read"))?;
        v.map(|v| postcard::from_bytes(v.value()).context("ledger: bad delivery record"))
            .transpose()
    }

    /// Number of distinct chunks ever shipped.
    pub fn shipped_chunks(&self) -> Result<u64> {
        let txn = self.db.begin_read().map_err(ctx("begin"))?;
        let t = txn.open_table(SHIPPED).map_err(ctx("open"))?;
        t.len().map_err(ctx("read"))
    }
}

/// What one export commits to the ledger.
pub struct Commit<'a> {
    /// The bundle.
    pub record: &'a BundleRecord,
    /// The sources of the catalog the bundle makes.
    pub sources: &'a BTreeMap<String, SourceKind>,
    /// The changes from the catalog of the sequence before (the manifest's:
    /// objects put, in key order, then keys removed): stored as such, or
    /// whole when [`stores_changes`] says a checkpoint is due.
    pub changes: &'a ChangeSet,
    /// What the manifest says of the catalog the bundle makes.
    pub sums: Sums,
    /// The chunks it carries.
    pub shipped: &'a [ChunkId],
    /// The fingerprints of the files read by this export (those whose row
    /// was missing or out of date), by key: written into their rows; the
    /// rows of files found unchanged stay as they are. An object put that
    /// carries a fingerprint of its own (the export's puts do) is written
    /// with that one.
    pub scan: &'a [(ObjectKey, String)],
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ferry_protocol::catalog::SourceKind;

    pub(crate) fn record(sequence: u64) -> BundleRecord {
        BundleRecord {
            sequence,
            created: 1,
            expires: 2,
            hash: ManifestHash([sequence as u8; 32]),
            dir_name: format!("bundle-x-{sequence:08}"),
            bytes: 10,
            chunks: 1,
            chunk_raw_bytes: 5,
            added: 1,
            changed: 0,
            removed: 0,
            objects: 1,
            catalog_bytes: 5,
            written: false,
        }
    }

    /// How a commit of `next` after `prev` goes to `ledger`.
    pub(crate) fn commit_with(
        ledger: &Ledger,
        signed: bool,
        record: &BundleRecord,
        (prev, next): (&Catalog, &Catalog),
        shipped: &[ChunkId],
        scan: &[(ObjectKey, String)],
    ) -> Result<()> {
        let changes = ChangeSet::in_memory(ferry_protocol::catalog::Changes::from_list(
            next.sources.clone(),
            prev.diff(next),
        ));
        let c = Commit {
            record,
            sources: &next.sources,
            changes: &changes,
            sums: Sums::of(next.objects.values()),
            shipped,
            scan,
        };
        if signed {
            ledger.commit_export(&c)
        } else {
            ledger.commit_unsigned(&c)
        }
    }

    pub(crate) fn commit(
        ledger: &Ledger,
        sequence: u64,
        prev: &Catalog,
        catalog: &Catalog,
        shipped: &[ChunkId],
        scan: &[(ObjectKey, String)],
    ) {
        let record = record(sequence);
        commit_with(ledger, true, &record, (prev, catalog), shipped, scan).unwrap();
    }

    /// The fingerprint in the row of `source`/`path` of the catalog of
    /// `sequence`.
    fn fingerprint(ledger: &Ledger, sequence: u64, source: &str, path: &str) -> Option<String> {
        let key = ObjectKey {
            source: source.into(),
            path: path.into(),
        };
        let last = ledger.last(sequence).unwrap();
        last.row(&key).unwrap().and_then(|r| r.fingerprint)
    }

    #[test]
    fn the_rows_keep_unread_fingerprints_and_drop_the_objects_gone() {
        let tmp = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&Layout::new(tmp.path())).unwrap();
        let link = |t: &str| Object::Symlink { target: t.into() };
        let mut catalog = Catalog::default();
        catalog.sources.insert("a".into(), SourceKind::Files);
        catalog.sources.insert("ab".into(), SourceKind::Files);
        let keys = [("a", "x"), ("a", "x/y"), ("a", "z"), ("ab", "x")];
        for (source, path) in keys {
            let key = ferry_protocol::path::ObjectKey {
                source: source.into(),
                path: path.into(),
            };
            catalog.objects.insert(key, link(path));
        }
        let key = |source: &str, path: &str| ObjectKey {
            source: source.into(),
            path: path.into(),
        };
        let entry = |source: &str, path: &str| (key(source, path), format!("fp-{path}"));
        let scan: Vec<_> = keys.iter().map(|(s, p)| entry(s, p)).collect();
        let none = Catalog::default();
        commit(&ledger, 1, &none, &catalog, &[], &scan);
        // A later export that read nothing again keeps every entry.
        commit(&ledger, 2, &catalog, &catalog, &[], &[]);
        let last = ledger.last(2).unwrap();
        for (source, path) in keys {
            let row = last.row(&key(source, path)).unwrap().unwrap();
            assert_eq!(row.fingerprint, Some(format!("fp-{path}")));
            assert_eq!(row.object, link(path), "the catalog's object");
        }
        // An unchanged file is one whose row has its fingerprint.
        let held = |same_fingerprint| Lookup::Held { same_fingerprint };
        assert_eq!(last.lookup("a", "x", Some("fp-x")).unwrap(), held(true));
        assert_eq!(last.lookup("a", "x", Some("fp-y")).unwrap(), held(false));
        assert_eq!(last.lookup("a", "x", None).unwrap(), held(false));
        assert_eq!(last.lookup("a", "q", Some("fp-q")).unwrap(), Lookup::Absent);
        drop(last);
        // Objects gone lose their entries; the others keep theirs, and a
        // file read again gets its new one.
        let mut next = catalog.clone();
        next.objects
            .retain(|k, _| k.path != "x/y" && k.source != "ab");
        let again = [(key("a", "z"), "fp-new".to_string())];
        commit(&ledger, 3, &catalog, &next, &[], &again);
        let fp = |s: &str, p: &str| fingerprint(&ledger, 3, s, p);
        assert_eq!(fp("a", "x").as_deref(), Some("fp-x"));
        assert_eq!(fp("a", "x/y"), None);
        assert_eq!(fp("ab", "x"), None);
        assert_eq!(fp("a", "z").as_deref(), Some("fp-new"));
    }

    #[test]
    fn an_export_moves_the_head_and_keeps_its_catalog_and_rows() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path());
        let ledger = Ledger::open(&layout).unwrap();
        let stream = ledger.stream().unwrap();
        let head = ledger.head().unwrap();
        assert_eq!((head.sequence, head.hash), (0, None));
        assert_eq!(ledger.catalog(0).unwrap(), Catalog::default());
        assert!(ledger.catalog(1).is_err());

        let mut catalog = Catalog::default();
        catalog.sources.insert("tools".into(), SourceKind::Files);
        let a = ChunkId::of(b"a");
        let x = ObjectKey {
            source: "tools".into(),
            path: "x".into(),
        };
        let x_key = x.clone();
        let scan = vec![(x, "fp1".to_string())];
        let none = Catalog::default();
        commit(&ledger, 1, &none, &catalog, &[a], &scan);
        commit(&ledger, 2, &catalog, &catalog, &[a, ChunkId::of(b"b")], &[]);
        drop(ledger);

        let ledger = Ledger::open(&layout).unwrap();
        assert_eq!(ledger.stream().unwrap(), stream, "the stream id is kept");
        let head = ledger.head().unwrap();
        assert_eq!((head.sequence, head.hash), (2, Some(record(2).hash)));
        assert_eq!(ledger.catalog(1).unwrap(), catalog);
        assert_eq!(
            ledger.shipped_chunks().unwrap(),
            2,
            "chunks are counted once"
        );
        // A fingerprint of an object the catalog does not hold is not kept.
        assert!(ledger.last(2).unwrap().row(&x_key).unwrap().is_none());
        ledger.mark_written(1).unwrap();
        let written: Vec<bool> = ledger
            .bundles()
            .unwrap()
            .iter()
            .map(|r| r.written)
            .collect();
        assert_eq!(written, [true, false]);
        assert!(ledger.mark_written(3).is_err());

        // Written is not delivered: only the inside's confirmation is.
        assert_eq!(ledger.delivery(1).unwrap(), None);
        let first = Delivery {
            at: 10,
            via: "quic".into(),
        };
        ledger.mark_delivered(1, &first).unwrap();
        let later = Delivery {
            at: 20,
            via: "quic".into(),
        };
        ledger.mark_delivered(1, &later).unwrap();
        assert_eq!(
            ledger.delivery(1).unwrap(),
            Some(first),
            "the first is kept"
        );
        assert_eq!(ledger.delivery(2).unwrap(), None);
        assert!(ledger.mark_delivered(3, &later).is_err());
    }

    #[test]
    fn an_unsigned_export_waits_off_the_stream_and_reship_lasts_until_a_signed_commit() {
        let tmp = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&Layout::new(tmp.path())).unwrap();
        let catalog = Catalog::default();
        let (a, b) = (ChunkId::of(b"a"), ChunkId::of(b"b"));
        commit(&ledger, 1, &catalog, &catalog, &[a, b], &[]);
        assert_eq!(ledger.request_reship(&[a, a]).unwrap(), 1);
        assert_eq!(
            ledger.shipped_chunks().unwrap(),
            1,
            "a left the shipped set"
        );
        assert_eq!(ledger.reship().unwrap(), [a].into());

        commit_with(&ledger, false, &record(2), (&catalog, &catalog), &[a], &[]).unwrap();
        assert_eq!(ledger.head().unwrap().sequence, 1, "the head waits");
        assert_eq!(ledger.awaiting_signature().unwrap().unwrap().sequence, 2);
        assert_eq!(ledger.reship().unwrap(), [a].into(), "asked until signed");
        assert!(ledger.commit_signed(&record(3)).is_err());
        ledger.commit_signed(&record(2)).unwrap();
        assert!(ledger.awaiting_signature().unwrap().is_none());
        assert_eq!(ledger.head().unwrap().hash, Some(record(2).hash));
        assert!(ledger.reship().unwrap().is_empty());

        commit_with(&ledger, false, &record(3), (&catalog, &catalog), &[], &[]).unwrap();
        assert_eq!(ledger.discard_unsigned().unwrap().unwrap().sequence, 3);
        assert!(ledger.catalog(3).is_err(), "its catalog is gone");
        assert!(ledger.discard_unsigned().unwrap().is_none());
        assert_eq!(ledger.head().unwrap().sequence, 2);
    }
}
