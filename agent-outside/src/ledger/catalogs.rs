//! The catalog at every sequence, stored as a history of changes: a whole
//! catalog (a checkpoint) every [`CHECKPOINT_EVERY`] sequences, and between
//! checkpoints only the changes from the sequence before. A one-file export
//! of a mirror of a million objects then adds one change to the ledger, not
//! a million objects, and reading any catalog costs one checkpoint plus at
//! most `CHECKPOINT_EVERY - 1` change lists.
//!
//! Ledgers written before this history kept a whole catalog per sequence in
//! the `catalogs` table; those are read as checkpoints, so an old ledger
//! goes on working and its next export starts the history.
//!
//! A checkpoint is written in parts (since session 15): the catalog's
//! encoding cut into values of [`PART_BYTES`] in [`PARTS`], its step saying
//! how many there are ([`Step::Parts`]). A write transaction then never
//! holds a whole catalog's encoding in one value (redb keeps a value being
//! written in memory until the commit; parts are written out as its cache
//! fills). Checkpoints written before, one value in [`STEPS`]
//! ([`Step::Checkpoint`]), are read as they are.

use super::ctx;
use anyhow::{bail, Context, Result};
use ferry_protocol::catalog::{Catalog, Change, SourceKind};
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Sequence -> a [`Step`] (postcard).
pub(super) const STEPS: TableDefinition<u64, &[u8]> = TableDefinition::new("catalog_steps");
/// Sequence -> a whole catalog: how ledgers kept catalogs before the history
/// (read only, as checkpoints).
pub(super) const LEGACY: TableDefinition<u64, &[u8]> = TableDefinition::new("catalogs");
/// (sequence, part) -> a part of the encoding of the checkpoint of that
/// sequence ([`Step::Parts`]): the parts in order are a [`Catalog`]'s
/// postcard encoding.
pub(super) const PARTS: TableDefinition<(u64, u32), &[u8]> =
    TableDefinition::new("catalog_checkpoint_parts");

/// The size of a checkpoint's parts but the last: a page's worth under
/// 1 MiB. redb stores a value this large alone in a page whose size is a
/// power of two, with its key and the page's header beside it, so a part of
/// exactly 1 MiB took a 2 MiB page and left half of it empty (105 MB of a
/// 1,000,000-object checkpoint's 210 MB, session 18).
pub(super) const PART_BYTES: usize = (1 << 20) - 4096;

/// A whole catalog is written at sequence 1, every this many sequences after
/// it, and whenever the changes are more than half the catalog.
pub const CHECKPOINT_EVERY: u64 = 64;

/// One sequence of the history.
#[derive(Deserialize)]
enum Step {
    /// The whole catalog, in one value (written before session 15; read
    /// only).
    Checkpoint(Catalog),
    /// The catalog as the one of the sequence before, with its sources
    /// replaced by `sources` and `changes` applied.
    Changes {
        sources: BTreeMap<String, SourceKind>,
        changes: Vec<Change>,
    },
    /// The whole catalog, its encoding in `parts` values of [`PARTS`]
    /// (`bytes` in all).
    Parts { parts: u32, bytes: u64 },
}

/// [`Step`] as written, borrowing the changes.
#[derive(Serialize)]
enum StepRef<'a> {
    /// Never written: it keeps the others at their index.
    #[allow(dead_code)]
    Checkpoint(()),
    Changes {
        sources: &'a BTreeMap<String, SourceKind>,
        changes: &'a [Change],
    },
    Parts {
        parts: u32,
        bytes: u64,
    },
}

/// An `io::Write` cutting what it is given into [`PARTS`] values of
/// `part` bytes (the last one shorter) of the checkpoint of `sequence`.
struct PartWriter<'t, 'x> {
    table: &'t mut redb::Table<'x, (u64, u32), &'static [u8]>,
    sequence: u64,
    part: usize,
    buf: Vec<u8>,
    parts: u32,
    bytes: u64,
}

impl PartWriter<'_, '_> {
    fn flush_part(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.table
            .insert((self.sequence, self.parts), self.buf.as_slice())
            .map_err(std::io::Error::other)?;
        self.parts += 1;
        self.bytes += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }
}

impl std::io::Write for PartWriter<'_, '_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(self.part - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == self.part {
            self.flush_part()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Whether the catalog of `sequence`, of `objects` objects, is stored as
/// its `changes` changes from the sequence before (else whole, as a
/// checkpoint).
pub fn stores_changes(sequence: u64, changes: usize, objects: u64) -> bool {
    sequence % CHECKPOINT_EVERY != 1 && changes as u64 <= objects / 2
}

/// Writes the catalog of `sequence`, whose `sources` are given and whose
/// objects the rows hold (already updated in `txn`): as `changes`, its
/// changes from the sequence before, or whole when they are `None` (a
/// checkpoint, encoded from the rows in [`PART_BYTES`] parts; see
/// [`stores_changes`]).
pub(super) fn write(
    txn: &WriteTransaction,
    sequence: u64,
    sources: &BTreeMap<String, SourceKind>,
    changes: Option<&[Change]>,
) -> Result<()> {
    write_with(txn, sequence, sources, changes, PART_BYTES)
}

/// [`write`], with parts of `part` bytes.
fn write_with(
    txn: &WriteTransaction,
    sequence: u64,
    sources: &BTreeMap<String, SourceKind>,
    changes: Option<&[Change]>,
    part: usize,
) -> Result<()> {
    // Parts of an earlier checkpoint of this sequence (an unsigned export
    // discarded) are gone already ([`remove`]); none are left beside a
    // step of changes.
    remove_parts(txn, sequence)?;
    let step = match changes {
        Some(changes) => postcard::to_stdvec(&StepRef::Changes { sources, changes })?,
        None => {
            let rows = txn.open_table(super::rows::ROWS).map_err(ctx("open"))?;
            let mut parts = txn.open_table(PARTS).map_err(ctx("open"))?;
            let catalog = super::rows::RowsCatalog {
                sources,
                rows: &rows,
            };
            let mut w = PartWriter {
                table: &mut parts,
                sequence,
                part,
                buf: Vec::with_capacity(part),
                parts: 0,
                bytes: 0,
            };
            postcard::to_io(&catalog, &mut w).with_context(|| {
                format!("ledger: cannot write the catalog of bundle {sequence}")
            })?;
            w.flush_part().with_context(|| {
                format!("ledger: cannot write the catalog of bundle {sequence}")
            })?;
            postcard::to_stdvec(&StepRef::Parts {
                parts: w.parts,
                bytes: w.bytes,
            })?
        }
    };
    let mut t = txn.open_table(STEPS).map_err(ctx("open"))?;
    t.insert(sequence, step.as_slice()).map_err(ctx("write"))?;
    Ok(())
}

/// Removes the parts of a checkpoint of `sequence`, if any.
fn remove_parts(txn: &WriteTransaction, sequence: u64) -> Result<()> {
    let mut parts = txn.open_table(PARTS).map_err(ctx("open"))?;
    parts
        .retain_in((sequence, 0)..=(sequence, u32::MAX), |_, _| false)
        .map_err(ctx("write"))?;
    Ok(())
}

/// The catalog of the checkpoint of `sequence` written in `parts` parts of
/// `bytes` bytes in all.
fn read_parts(
    table: &impl ReadableTable<(u64, u32), &'static [u8]>,
    sequence: u64,
    parts: u32,
    bytes: u64,
) -> Result<Catalog> {
    let broken = || format!("ledger: the catalog of bundle {sequence} is incomplete");
    let mut all = Vec::with_capacity(usize::try_from(bytes).unwrap_or(0));
    let mut n = 0u32;
    for r in table
        .range((sequence, 0)..=(sequence, u32::MAX))
        .map_err(ctx("read"))?
    {
        let (k, v) = r.map_err(ctx("read"))?;
        if k.value().1 != n {
            bail!("{}: part {n} is missing", broken());
        }
        all.extend_from_slice(v.value());
        n += 1;
    }
    if n != parts || all.len() as u64 != bytes {
        bail!(
            "{}: {n} parts of {} bytes, its step says {parts} of {bytes}",
            broken(),
            all.len()
        );
    }
    postcard::from_bytes(&all)
        .with_context(|| format!("ledger: the catalog of bundle {sequence} does not decode"))
}

/// Forgets the catalog of `sequence` (the last one: nothing builds on it).
pub(super) fn remove(txn: &WriteTransaction, sequence: u64) -> Result<()> {
    let mut t = txn.open_table(STEPS).map_err(ctx("open"))?;
    t.remove(sequence).map_err(ctx("write"))?;
    remove_parts(txn, sequence)?;
    let mut legacy = txn.open_table(LEGACY).map_err(ctx("open"))?;
    legacy.remove(sequence).map_err(ctx("write"))?;
    Ok(())
}

/// A catalog asked for that `ferry-out prune` has compacted away.
#[derive(Debug, thiserror::Error)]
#[error(
    "the ledger no longer holds the catalog of bundle {sequence}: `ferry-out prune` compacted \
     the catalog history before bundle {from}"
)]
pub struct Compacted {
    /// The sequence asked for.
    pub sequence: u64,
    /// The oldest sequence whose catalog is held.
    pub from: u64,
}

/// The [`super::META`] key of the oldest sequence whose catalog is held (a
/// u64, little-endian), written when [`compact`] deletes the history.
const CATALOGS_FROM: &str = "catalogs_from";

/// The oldest sequence whose catalog is held (0: all are).
pub(super) fn catalogs_from(meta: &impl ReadableTable<&'static str, &'static [u8]>) -> Result<u64> {
    meta.get(CATALOGS_FROM)
        .map_err(ctx("read"))?
        .map(|v| {
            <[u8; 8]>::try_from(v.value())
                .map(u64::from_le_bytes)
                .map_err(|_| anyhow::anyhow!("ledger: {CATALOGS_FROM} is not 8 bytes"))
        })
        .transpose()
        .map(Option::unwrap_or_default)
}

/// Whether a stored step is a whole catalog ([`Step::Checkpoint`] or
/// [`Step::Parts`]), read from its first byte without decoding the rest:
/// postcard writes an enum's variant index first, as a varint, and indices
/// under 128 are one byte (the test `a_steps_first_byte_is_its_kind` holds
/// this to the encoding).
fn is_checkpoint(step: &[u8]) -> bool {
    matches!(step.first(), Some(0 | 2))
}

/// What [`compact`] deleted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Compaction {
    /// The oldest sequence whose catalog is still held (a checkpoint).
    pub from: u64,
    /// Sequences whose catalogs were deleted.
    pub sequences: u64,
    /// Bytes of the values deleted (steps, parts, whole catalogs).
    pub bytes: u64,
}

/// Deletes the history before the newest checkpoint at or before `keep`,
/// so that every catalog from `keep` on still reads, and nothing is
/// written but deletions (no new checkpoint). `None` when there is no such
/// checkpoint, or nothing before it.
pub(super) fn compact(txn: &WriteTransaction, keep: u64) -> Result<Option<Compaction>> {
    let mut steps = txn.open_table(STEPS).map_err(ctx("open"))?;
    let mut legacy = txn.open_table(LEGACY).map_err(ctx("open"))?;
    let mut parts = txn.open_table(PARTS).map_err(ctx("open"))?;
    let mut from = legacy
        .range(..=keep)
        .map_err(ctx("read"))?
        .next_back()
        .transpose()
        .map_err(ctx("read"))?
        .map_or(0, |(k, _)| k.value());
    for r in steps.range(from + 1..=keep).map_err(ctx("read"))?.rev() {
        let (k, v) = r.map_err(ctx("read"))?;
        if is_checkpoint(v.value()) {
            from = k.value();
            break;
        }
    }
    if from <= 1 {
        return Ok(None);
    }
    let mut done = Compaction {
        from,
        ..Compaction::default()
    };
    let mut gone = std::collections::BTreeSet::new();
    steps
        .retain_in(..from, |k, v| {
            gone.insert(k);
            done.bytes += v.len() as u64;
            false
        })
        .map_err(ctx("write"))?;
    legacy
        .retain_in(..from, |k, v| {
            gone.insert(k);
            done.bytes += v.len() as u64;
            false
        })
        .map_err(ctx("write"))?;
    parts
        .retain_in(..(from, 0), |_, v| {
            done.bytes += v.len() as u64;
            false
        })
        .map_err(ctx("write"))?;
    done.sequences = gone.len() as u64;
    if done.sequences == 0 {
        return Ok(None);
    }
    let mut meta = txn.open_table(super::META).map_err(ctx("open meta"))?;
    let from = catalogs_from(&meta)?.max(from);
    meta.insert(CATALOGS_FROM, &from.to_le_bytes()[..])
        .map_err(ctx("write"))?;
    Ok(Some(done))
}

/// The catalog of `sequence` (empty for 0): the nearest checkpoint at or
/// before it, and the changes of every sequence after that one. A sequence
/// before the history's cut ([`compact`]) is a [`Compacted`] error.
pub(super) fn read(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
    steps: &impl ReadableTable<u64, &'static [u8]>,
    legacy: &impl ReadableTable<u64, &'static [u8]>,
    parts: &impl ReadableTable<(u64, u32), &'static [u8]>,
    sequence: u64,
) -> Result<Catalog> {
    let from = catalogs_from(meta)?;
    if sequence > 0 && sequence < from {
        return Err(Compacted { sequence, from }.into());
    }
    let mut later = Vec::new();
    let mut at = sequence;
    let mut catalog = loop {
        if at == 0 {
            break Catalog::default();
        }
        // Decoded from the stored value in place (a checkpoint of a mirror
        // is not copied first).
        let step = match steps.get(at).map_err(ctx("read"))? {
            Some(v) => postcard::from_bytes::<Step>(v.value())
                .with_context(|| format!("ledger: the catalog of bundle {at} does not decode"))?,
            None => match legacy.get(at).map_err(ctx("read"))? {
                Some(v) => break Catalog::from_bytes(v.value())?,
                None if at == sequence => bail!("ledger has no catalog for bundle {sequence}"),
                None => bail!(
                    "ledger has no catalog for bundle {at}, which the catalog of bundle \
                     {sequence} builds on"
                ),
            },
        };
        match step {
            Step::Checkpoint(c) => break c,
            Step::Parts { parts: n, bytes } => break read_parts(parts, at, n, bytes)?,
            step @ Step::Changes { .. } => later.push(step),
        }
        at -= 1;
    };
    for step in later.into_iter().rev() {
        if let Step::Changes { sources, changes } = step {
            catalog.sources = sources;
            for change in changes {
                match change {
                    Change::Put { key, object } => {
                        catalog.objects.insert(key, object);
                    }
                    Change::Remove { key } => {
                        catalog.objects.remove(&key);
                    }
                }
            }
        }
    }
    Ok(catalog)
}

#[cfg(test)]
mod tests {
    use super::super::Ledger;
    use super::*;
    use crate::layout::Layout;
    use ferry_protocol::catalog::Object;
    use ferry_protocol::path::ObjectKey;
    use redb::{ReadableDatabase, ReadableTableMetadata};

    fn key(i: u64) -> ObjectKey {
        ObjectKey {
            source: "tools".into(),
            path: format!("dir/file-{i:06}"),
        }
    }

    fn link(v: u64) -> Object {
        Object::Symlink {
            target: format!("target-{v}"),
        }
    }

    fn commit(ledger: &Ledger, sequence: u64, prev: &Catalog, catalog: &Catalog) {
        super::super::tests::commit(ledger, sequence, prev, catalog, &[], &[]);
    }

    /// The bytes the catalog of `sequence` takes: its step and its parts.
    fn stored_bytes(ledger: &Ledger, sequence: u64) -> usize {
        let txn = ledger.db.begin_read().unwrap();
        let t = txn.open_table(STEPS).unwrap();
        let p = txn.open_table(PARTS).unwrap();
        let parts: usize = p
            .range((sequence, 0)..=(sequence, u32::MAX))
            .unwrap()
            .map(|r| r.unwrap().1.value().len())
            .sum();
        t.get(sequence).unwrap().unwrap().value().len() + parts
    }

    /// The catalog of sequence `n` of the test's history: 2,000 objects, one
    /// of them changed, one added and, every third sequence, one removed.
    fn catalog_at(n: u64) -> Catalog {
        let mut c = Catalog::default();
        c.sources.insert("tools".into(), SourceKind::Files);
        for i in 0..2_000 + n {
            if !(i < n && i % 3 == 0) {
                c.objects
                    .insert(key(i), link(if i == n % 2_000 { n } else { 0 }));
            }
        }
        c
    }

    /// A ledger of `2 * CHECKPOINT_EVERY + 5` sequences of [`catalog_at`]:
    /// its directory, itself and its last sequence.
    fn long_history() -> (tempfile::TempDir, Ledger, u64) {
        let tmp = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&Layout::new(tmp.path())).unwrap();
        let last = 2 * CHECKPOINT_EVERY + 5;
        let mut prev = Catalog::default();
        for n in 1..=last {
            let next = catalog_at(n);
            commit(&ledger, n, &prev, &next);
            prev = next;
        }
        (tmp, ledger, last)
    }

    #[test]
    fn every_catalog_of_a_long_history_reads_back_across_checkpoints() {
        let (_tmp, ledger, last) = long_history();
        for n in [
            1,
            2,
            CHECKPOINT_EVERY,
            CHECKPOINT_EVERY + 1,
            CHECKPOINT_EVERY + 2,
            last,
        ] {
            assert_eq!(ledger.catalog(n).unwrap(), catalog_at(n), "sequence {n}");
        }
        // A one-object change costs about one object, not the catalog.
        let whole = stored_bytes(&ledger, CHECKPOINT_EVERY + 1);
        let step = stored_bytes(&ledger, CHECKPOINT_EVERY + 2);
        assert!(
            step * 100 < whole,
            "a change of 3 objects took {step} bytes, a checkpoint {whole}"
        );
        assert!(ledger.catalog(last + 1).is_err());
    }

    /// [`is_checkpoint`] reads the kind of a step from its first byte.
    #[test]
    fn a_steps_first_byte_is_its_kind() {
        #[derive(Serialize)]
        enum OldStep<'a> {
            Checkpoint(&'a Catalog),
        }
        let c = catalog_at(1);
        let whole = postcard::to_stdvec(&OldStep::Checkpoint(&c)).unwrap();
        let parts = postcard::to_stdvec(&StepRef::Parts {
            parts: 300,
            bytes: 1 << 30,
        })
        .unwrap();
        let changes = postcard::to_stdvec(&StepRef::Changes {
            sources: &c.sources,
            changes: &[],
        })
        .unwrap();
        assert!(is_checkpoint(&whole));
        assert!(is_checkpoint(&parts));
        assert!(!is_checkpoint(&changes));
        assert!(!is_checkpoint(&[]));
        assert!(matches!(
            postcard::from_bytes::<Step>(&parts).unwrap(),
            Step::Parts { parts: 300, .. }
        ));
    }

    /// Compacting keeps every catalog from the sequence asked for on, cut
    /// at the checkpoint at or before it; older ones are a clear error; a
    /// second compaction to the same place deletes nothing; the history
    /// goes on.
    #[test]
    fn a_compacted_history_keeps_every_catalog_from_its_checkpoint_on() {
        let (_tmp, ledger, last) = long_history();
        let prev = catalog_at(last);
        // Up to the second checkpoint, nothing is before the first.
        assert_eq!(ledger.compact_history(CHECKPOINT_EVERY).unwrap(), None);
        assert_eq!(ledger.catalogs_from().unwrap(), 0);
        let keep = 2 * CHECKPOINT_EVERY - 3;
        let whole = stored_bytes(&ledger, 1);
        let done = ledger.compact_history(keep).unwrap().unwrap();
        assert_eq!(done.from, CHECKPOINT_EVERY + 1);
        assert_eq!(done.sequences, CHECKPOINT_EVERY);
        assert!(done.bytes as usize > whole, "{done:?}, {whole}");
        assert_eq!(ledger.catalogs_from().unwrap(), CHECKPOINT_EVERY + 1);
        for n in [CHECKPOINT_EVERY + 1, keep, 2 * CHECKPOINT_EVERY + 1, last] {
            assert_eq!(ledger.catalog(n).unwrap(), catalog_at(n), "sequence {n}");
        }
        assert_eq!(ledger.catalog(0).unwrap(), Catalog::default());
        let err = ledger.catalog(CHECKPOINT_EVERY).unwrap_err();
        let c = err.downcast_ref::<Compacted>().expect("a Compacted error");
        assert_eq!(
            (c.sequence, c.from),
            (CHECKPOINT_EVERY, CHECKPOINT_EVERY + 1)
        );
        assert!(
            err.to_string().contains(&format!(
                "no longer holds the catalog of bundle {CHECKPOINT_EVERY}"
            )),
            "{err}"
        );
        {
            let txn = ledger.db.begin_read().unwrap();
            let t = txn.open_table(STEPS).unwrap();
            assert_eq!(t.first().unwrap().unwrap().0.value(), CHECKPOINT_EVERY + 1);
            let p = txn.open_table(PARTS).unwrap();
            assert_eq!(
                p.first().unwrap().unwrap().0.value().0,
                CHECKPOINT_EVERY + 1
            );
        }
        assert_eq!(ledger.compact_history(keep).unwrap(), None);
        // Asked past the head, it keeps the head's checkpoint.
        let next = catalog_at(last + 1);
        commit(&ledger, last + 1, &prev, &next);
        assert_eq!(ledger.catalog(last + 1).unwrap(), next);
        let done = ledger.compact_history(u64::MAX).unwrap().unwrap();
        assert_eq!(done.from, 2 * CHECKPOINT_EVERY + 1);
        assert_eq!(ledger.catalog(last + 1).unwrap(), next);
        assert!(ledger.catalog(last - 10).is_err());
    }

    /// A history that starts from a whole catalog of the older ledgers is
    /// cut there too, and a change stored whole (most of the catalog
    /// changed) is a checkpoint to cut at.
    #[test]
    fn compacting_cuts_at_old_whole_catalogs_and_whole_changes() {
        let tmp = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&Layout::new(tmp.path())).unwrap();
        let txn = ledger.db.begin_write().unwrap();
        txn.open_table(LEGACY)
            .unwrap()
            .insert(1, catalog_at(1).to_bytes().as_slice())
            .unwrap();
        txn.commit().unwrap();
        let mut prev = catalog_at(1);
        for n in 2..=6 {
            let next = if n == 4 {
                let mut c = Catalog {
                    sources: prev.sources.clone(),
                    ..Catalog::default()
                };
                c.objects.insert(key(4), link(4));
                c
            } else {
                catalog_at(n)
            };
            commit(&ledger, n, &prev, &next);
            prev = next;
        }
        // Sequence 1 (legacy) is the only checkpoint at or before 3.
        assert_eq!(ledger.compact_history(3).unwrap(), None);
        // 4 (one object left) and 5 (the others back) are stored whole.
        let done = ledger.compact_history(4).unwrap().unwrap();
        assert_eq!((done.from, done.sequences), (4, 3));
        assert!(ledger.catalog(3).is_err());
        let done = ledger.compact_history(5).unwrap().unwrap();
        assert_eq!((done.from, done.sequences), (5, 1));
        assert_eq!(ledger.catalog(6).unwrap(), prev);
        let txn = ledger.db.begin_read().unwrap();
        assert!(txn.open_table(LEGACY).unwrap().len().unwrap() == 0);
    }

    #[test]
    fn a_change_of_most_of_the_catalog_is_stored_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&Layout::new(tmp.path())).unwrap();
        let first = catalog_at(1);
        commit(&ledger, 1, &Catalog::default(), &first);
        let mut second = Catalog {
            sources: first.sources.clone(),
            ..Catalog::default()
        };
        second.objects.insert(key(7), link(7));
        commit(&ledger, 2, &first, &second);
        let txn = ledger.db.begin_read().unwrap();
        let t = txn.open_table(STEPS).unwrap();
        let step: Step = postcard::from_bytes(t.get(2).unwrap().unwrap().value()).unwrap();
        assert!(matches!(step, Step::Parts { parts: 1, .. }));
        drop((t, txn));
        assert_eq!(ledger.catalog(2).unwrap(), second);
    }

    /// The step and parts of the checkpoint of `sequence`.
    fn parts_of(ledger: &Ledger, sequence: u64) -> (u32, u64, Vec<Vec<u8>>) {
        let txn = ledger.db.begin_read().unwrap();
        let t = txn.open_table(STEPS).unwrap();
        let step: Step = postcard::from_bytes(t.get(sequence).unwrap().unwrap().value()).unwrap();
        let Step::Parts { parts, bytes } = step else {
            panic!("the step of {sequence} is not in parts");
        };
        let p = txn.open_table(PARTS).unwrap();
        let values = p
            .range((sequence, 0)..=(sequence, u32::MAX))
            .unwrap()
            .map(|r| r.unwrap().1.value().to_vec())
            .collect();
        (parts, bytes, values)
    }

    /// A checkpoint cut into many parts is the catalog's own encoding, reads
    /// back, and a part lost or cut short is an error naming the bundle;
    /// parts of a discarded sequence go with it.
    #[test]
    fn a_checkpoint_in_parts_is_the_catalogs_encoding_and_reads_back() {
        let tmp = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&Layout::new(tmp.path())).unwrap();
        let first = catalog_at(1);
        commit(&ledger, 1, &Catalog::default(), &first);
        // Written again with small parts, in place of the 1 MiB ones.
        let txn = ledger.db.begin_write().unwrap();
        write_with(&txn, 1, &first.sources, None, 1000).unwrap();
        txn.commit().unwrap();
        let (parts, bytes, values) = parts_of(&ledger, 1);
        let encoded = first.to_bytes();
        assert!(parts > 10, "{parts} parts");
        assert_eq!(values.len(), parts as usize);
        assert_eq!(bytes, encoded.len() as u64);
        assert!(values[..values.len() - 1].iter().all(|v| v.len() == 1000));
        assert_eq!(values.concat(), encoded);
        assert_eq!(ledger.catalog(1).unwrap(), first);
        let second = catalog_at(2);
        commit(&ledger, 2, &first, &second);
        assert_eq!(ledger.catalog(2).unwrap(), second);

        // A part cut short, then a part missing.
        let txn = ledger.db.begin_write().unwrap();
        txn.open_table(PARTS)
            .unwrap()
            .insert((1, 3), &values[3][..10])
            .unwrap();
        txn.commit().unwrap();
        let err = format!("{:#}", ledger.catalog(2).unwrap_err());
        assert!(err.contains("catalog of bundle 1 is incomplete"), "{err}");
        let txn = ledger.db.begin_write().unwrap();
        txn.open_table(PARTS).unwrap().remove((1, 3)).unwrap();
        txn.commit().unwrap();
        let err = format!("{:#}", ledger.catalog(1).unwrap_err());
        assert!(err.contains("part 3 is missing"), "{err}");

        // Removing the sequence removes its parts.
        let txn = ledger.db.begin_write().unwrap();
        remove(&txn, 1).unwrap();
        txn.commit().unwrap();
        let txn = ledger.db.begin_read().unwrap();
        let p = txn.open_table(PARTS).unwrap();
        assert_eq!(p.range((1, 0)..=(1, u32::MAX)).unwrap().count(), 0);
    }

    /// A checkpoint's parts fill the pages redb gives them: what the
    /// parts' table stores is not doubled by empty page space.
    #[test]
    fn a_checkpoints_parts_fill_their_pages() {
        let tmp = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&Layout::new(tmp.path())).unwrap();
        let mut c = Catalog::default();
        c.sources.insert("tools".into(), SourceKind::Files);
        for i in 0..40_000u64 {
            c.objects.insert(
                key(i),
                Object::Symlink {
                    target: format!("{i:0>100}"),
                },
            );
        }
        commit(&ledger, 1, &Catalog::default(), &c);
        let (parts, bytes, _) = parts_of(&ledger, 1);
        assert!(parts >= 4, "{parts} parts of {bytes} bytes");
        let txn = ledger.db.begin_read().unwrap();
        let stats = txn.open_table(PARTS).unwrap().stats().unwrap();
        assert!(
            stats.fragmented_bytes() * 8 < stats.stored_bytes(),
            "{} bytes stored, {} of the pages empty",
            stats.stored_bytes(),
            stats.fragmented_bytes()
        );
    }

    /// A ledger whose checkpoint is one value (written before the parts:
    /// `Step::Checkpoint`) reads it as it is and goes on.
    #[test]
    fn a_checkpoint_in_one_value_is_read_as_it_is() {
        #[derive(Serialize)]
        enum OldStep<'a> {
            Checkpoint(&'a Catalog),
        }
        let tmp = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&Layout::new(tmp.path())).unwrap();
        let first = catalog_at(1);
        commit(&ledger, 1, &Catalog::default(), &first);
        let txn = ledger.db.begin_write().unwrap();
        remove_parts(&txn, 1).unwrap();
        txn.open_table(STEPS)
            .unwrap()
            .insert(
                1,
                postcard::to_stdvec(&OldStep::Checkpoint(&first))
                    .unwrap()
                    .as_slice(),
            )
            .unwrap();
        txn.commit().unwrap();
        assert_eq!(ledger.catalog(1).unwrap(), first);
        let second = catalog_at(2);
        commit(&ledger, 2, &first, &second);
        assert_eq!(ledger.catalog(2).unwrap(), second);
        assert_eq!(ledger.catalog(1).unwrap(), first);
    }

    #[test]
    fn a_ledger_with_whole_catalogs_goes_on_with_a_history() {
        let tmp = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&Layout::new(tmp.path())).unwrap();
        // How an older ledger kept sequence 1.
        let first = catalog_at(1);
        let txn = ledger.db.begin_write().unwrap();
        txn.open_table(LEGACY)
            .unwrap()
            .insert(1, first.to_bytes().as_slice())
            .unwrap();
        txn.commit().unwrap();
        let second = catalog_at(2);
        commit(&ledger, 2, &first, &second);
        assert_eq!(ledger.catalog(1).unwrap(), first);
        assert_eq!(ledger.catalog(2).unwrap(), second);

        // A history whose start is gone says which catalog is missing.
        let txn = ledger.db.begin_write().unwrap();
        txn.open_table(LEGACY).unwrap().remove(1).unwrap();
        txn.commit().unwrap();
        let err = format!("{:#}", ledger.catalog(2).unwrap_err());
        assert!(
            err.contains("bundle 1, which the catalog of bundle 2"),
            "{err}"
        );
    }
}
