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

/// A whole catalog is written at sequence 1, every this many sequences after
/// it, and whenever the changes are more than half the catalog.
pub const CHECKPOINT_EVERY: u64 = 64;

/// One sequence of the history.
#[derive(Deserialize)]
enum Step {
    /// The whole catalog.
    Checkpoint(Catalog),
    /// The catalog as the one of the sequence before, with its sources
    /// replaced by `sources` and `changes` applied.
    Changes {
        sources: BTreeMap<String, SourceKind>,
        changes: Vec<Change>,
    },
}

/// [`Step::Changes`] as written, borrowing the changes.
#[derive(Serialize)]
enum StepRef<'a> {
    /// Never written: it keeps [`StepRef::Changes`] at its index.
    #[allow(dead_code)]
    Checkpoint(()),
    Changes {
        sources: &'a BTreeMap<String, SourceKind>,
        changes: &'a [Change],
    },
}

/// [`Step::Checkpoint`] as written: the catalog encoded from the rows, one
/// at a time (a checkpoint of a million objects is never held decoded).
struct CheckpointRef<'a, T>(super::rows::RowsCatalog<'a, T>);

impl<T: ReadableTable<&'static str, &'static [u8]>> Serialize for CheckpointRef<'_, T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        // As `Step::Checkpoint` is: the first variant, a newtype.
        s.serialize_newtype_variant("Step", 0, "Checkpoint", &self.0)
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
/// checkpoint, encoded from the rows; see [`stores_changes`]).
pub(super) fn write(
    txn: &WriteTransaction,
    sequence: u64,
    sources: &BTreeMap<String, SourceKind>,
    changes: Option<&[Change]>,
) -> Result<()> {
    let mut t = txn.open_table(STEPS).map_err(ctx("open"))?;
    match changes {
        Some(changes) => {
            let step = StepRef::Changes { sources, changes };
            t.insert(sequence, postcard::to_stdvec(&step)?.as_slice())
                .map_err(ctx("write"))?;
        }
        None => {
            let rows = txn.open_table(super::rows::ROWS).map_err(ctx("open"))?;
            let step = CheckpointRef(super::rows::RowsCatalog {
                sources,
                rows: &rows,
            });
            // Two passes over the rows: the size, then the bytes encoded
            // into their place in the table.
            let len =
                postcard::serialize_with_flavor(&step, postcard::ser_flavors::Size::default())?;
            let mut slot = t.insert_reserve(sequence, len).map_err(ctx("write"))?;
            postcard::to_slice(&step, slot.as_mut())?;
        }
    }
    Ok(())
}

/// Forgets the catalog of `sequence` (the last one: nothing builds on it).
pub(super) fn remove(txn: &WriteTransaction, sequence: u64) -> Result<()> {
    let mut t = txn.open_table(STEPS).map_err(ctx("open"))?;
    t.remove(sequence).map_err(ctx("write"))?;
    let mut legacy = txn.open_table(LEGACY).map_err(ctx("open"))?;
    legacy.remove(sequence).map_err(ctx("write"))?;
    Ok(())
}

/// The catalog of `sequence` (empty for 0): the nearest checkpoint at or
/// before it, and the changes of every sequence after that one.
pub(super) fn read(
    steps: &impl ReadableTable<u64, &'static [u8]>,
    legacy: &impl ReadableTable<u64, &'static [u8]>,
    sequence: u64,
) -> Result<Catalog> {
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
    use redb::ReadableDatabase;

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

    fn stored_bytes(ledger: &Ledger, sequence: u64) -> usize {
        let txn = ledger.db.begin_read().unwrap();
        let t = txn.open_table(STEPS).unwrap();
        t.get(sequence).unwrap().unwrap().value().len()
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

    #[test]
    fn every_catalog_of_a_long_history_reads_back_across_checkpoints() {
        let tmp = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&Layout::new(tmp.path())).unwrap();
        let last = 2 * CHECKPOINT_EVERY + 5;
        let mut prev = Catalog::default();
        for n in 1..=last {
            let next = catalog_at(n);
            commit(&ledger, n, &prev, &next);
            prev = next;
        }
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
        assert!(matches!(step, Step::Checkpoint(_)));
        drop((t, txn));
        assert_eq!(ledger.catalog(2).unwrap(), second);
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
