//! What the rows of the last catalog use, counted, so that an export asks
//! one key instead of reading every row:
//!
//! - `held_chunks`: chunk id -> how many times the files of the catalog
//!   name it among the chunks an inside keeps (`FileObject::held_chunks`: a
//!   patch's are not kept). The inside holds exactly these after applying
//!   the catalog's bundle, so "does the inside hold chunk X" is one read.
//! - `catalog_digests`: SHA-256 -> how many files of the catalog have it.
//!   The outside's copies (`STATE/objects`) and recipes (`STATE/analyses`)
//!   are kept by digest; one whose count falls to 0 is no longer needed.
//! - `unheld_digests`: the digests whose count fell to 0, in the commit that
//!   made it so, whose copies and recipes are still to be removed
//!   ([`super::Ledger::prune_unheld`], right after the commit). A crash in
//!   between leaves them listed, and the next prune removes them; a digest
//!   counted again meanwhile is skipped, so a copy still used never goes.
//!
//! The counts follow the rows: each commit adjusts them from the objects it
//! puts and the ones they replace or remove, in the same write transaction.
//! `meta["catalog_counts"]` names the sequence they are of; when it is not
//! the rows' (a ledger written before the counts, rows built again from the
//! history), they are built again from the rows in one pass.

use super::{ctx, META};
use anyhow::{Context, Result};
use ferry_protocol::catalog::Object;
use ferry_protocol::id::{ChunkId, Sha256};
use redb::{ReadableTable, TableDefinition, WriteTransaction};

/// Chunk id -> uses by the catalog's files (chunks an inside keeps).
pub(super) const HELD: TableDefinition<&[u8; 32], u64> = TableDefinition::new("held_chunks");
/// SHA-256 -> files of the catalog with it.
pub(super) const DIGESTS: TableDefinition<&[u8; 32], u64> = TableDefinition::new("catalog_digests");
/// SHA-256 whose count fell to 0 -> the sequence that dropped it.
pub(super) const UNHELD: TableDefinition<&[u8; 32], u64> = TableDefinition::new("unheld_digests");
/// The `meta` key of the sequence the counts are of (postcard `u64`).
const STATE: &str = "catalog_counts";

/// Which sequence's catalog the counts are of, if any.
pub(super) fn sequence(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Option<u64>> {
    let v = meta.get(STATE).map_err(ctx("read"))?;
    v.map(|v| postcard::from_bytes(v.value()).context("ledger: bad catalog counts state"))
        .transpose()
}

fn set_sequence(txn: &WriteTransaction, sequence: u64) -> Result<()> {
    let mut meta = txn.open_table(META).map_err(ctx("open meta"))?;
    meta.insert(STATE, postcard::to_stdvec(&sequence)?.as_slice())
        .map_err(ctx("write"))?;
    Ok(())
}

/// Changes to the counts, gathered from a commit's objects and applied in
/// key order (a first export's million objects are sorted, not looked up
/// one at a time in a growing table), in batches of at most
/// [`TALLY_BATCH`] entries when the commit adds them as it goes
/// ([`Tally::add_if_full`]).
#[derive(Default)]
pub(super) struct Tally {
    chunks: Vec<([u8; 32], i64)>,
    digests: Vec<([u8; 32], i64)>,
}

/// How many changes (40 bytes each) a tally gathers before
/// [`Tally::add_if_full`] adds them to the counts: a first export of a
/// million one-chunk files makes two million, added in four batches. (A
/// count may pass through 0 between batches; only the end counts, as in
/// one batch.) Small under test, so that every test's commit adds in
/// several.
const TALLY_BATCH: usize = if cfg!(test) { 3 } else { 1 << 19 };

impl Tally {
    /// Counts `object` in (`by` 1) or out (`by` -1).
    pub(super) fn object(&mut self, object: &Object, by: i64) {
        if let Object::File(f) = object {
            self.digests.push((f.sha256.0, by));
            self.chunks.extend(f.held_chunks().map(|c| (c.id.0, by)));
        }
    }

    /// Adds the changes gathered to the counts, in the commit of
    /// `sequence`, once they are [`TALLY_BATCH`] or more.
    pub(super) fn add_if_full(&mut self, txn: &WriteTransaction, sequence: u64) -> Result<()> {
        if self.chunks.len() + self.digests.len() >= TALLY_BATCH {
            self.add(txn, sequence)?;
        }
        Ok(())
    }

    /// Adds the changes gathered to the counts and forgets them. A digest
    /// whose count falls to 0 is listed in `unheld_digests` (and taken off
    /// again if a later batch counts it).
    fn add(&mut self, txn: &WriteTransaction, sequence: u64) -> Result<()> {
        let mut held = txn.open_table(HELD).map_err(ctx("open"))?;
        merge(&mut held, &mut self.chunks, "chunk", |_, _| Ok(()))?;
        self.chunks.clear();
        let mut table = txn.open_table(DIGESTS).map_err(ctx("open"))?;
        let mut unheld = txn.open_table(UNHELD).map_err(ctx("open"))?;
        merge(&mut table, &mut self.digests, "digest", |d, now| {
            if now == 0 {
                unheld.insert(d, sequence).map_err(ctx("write"))?;
            } else {
                unheld.remove(d).map_err(ctx("write"))?;
            }
            Ok(())
        })?;
        self.digests.clear();
        Ok(())
    }

    /// Applies the changes to the counts of `sequence - 1` (with those
    /// added already), making them those of `sequence`.
    pub(super) fn apply(mut self, txn: &WriteTransaction, sequence: u64) -> Result<()> {
        self.add(txn, sequence)?;
        set_sequence(txn, sequence)
    }
}

/// Adds `changes` (sorted here, then summed by key) to `table`; a count at 0
/// leaves the table. `moved` sees each key whose count left or reached 0.
fn merge(
    table: &mut redb::Table<&[u8; 32], u64>,
    changes: &mut [([u8; 32], i64)],
    what: &str,
    mut moved: impl FnMut(&[u8; 32], u64) -> Result<()>,
) -> Result<()> {
    changes.sort_unstable_by_key(|c| c.0);
    let mut at = 0;
    while at < changes.len() {
        let key = changes[at].0;
        let mut by = 0i64;
        while at < changes.len() && changes[at].0 == key {
            by += changes[at].1;
            at += 1;
        }
        if by == 0 {
            continue;
        }
        let was = table
            .get(&key)
            .map_err(ctx("read"))?
            .map_or(0, |v| v.value());
        let now = i64::try_from(was)
            .ok()
            .and_then(|w| w.checked_add(by))
            .filter(|n| *n >= 0)
            .with_context(|| {
                format!(
                    "ledger: the count of {what} {} would go from {was} to {was}{by:+}: \
                     the catalog's counts disagree with its rows; nothing was committed",
                    hex(&key)
                )
            })? as u64;
        if now == 0 {
            table.remove(&key).map_err(ctx("write"))?;
        } else {
            table.insert(&key, now).map_err(ctx("write"))?;
        }
        if (was == 0) != (now == 0) {
            moved(&key, now)?;
        }
    }
    Ok(())
}

fn hex(b: &[u8; 32]) -> String {
    ChunkId(*b).to_hex()
}

/// Builds the counts of the rows (of `sequence`) afresh: the tables are
/// emptied and filled from one pass over the rows. The digests that leave
/// are listed in `unheld_digests` (their copies go at the next prune).
pub(super) fn rebuild(
    txn: &WriteTransaction,
    sequence: u64,
    each_object: impl FnOnce(&mut dyn FnMut(&Object)) -> Result<()>,
) -> Result<()> {
    let mut old_digests = Vec::new();
    {
        let table = txn.open_table(DIGESTS).map_err(ctx("open"))?;
        for r in table.iter().map_err(ctx("read"))? {
            old_digests.push(*r.map_err(ctx("read"))?.0.value());
        }
    }
    txn.delete_table(HELD)
        .map_err(ctx("drop the held chunks"))?;
    txn.delete_table(DIGESTS).map_err(ctx("drop the digests"))?;
    let mut tally = Tally::default();
    each_object(&mut |o| tally.object(o, 1))?;
    // The digests counted before and not now: each one as if counted out.
    old_digests.sort_unstable();
    tally.digests.sort_unstable_by_key(|d| d.0);
    {
        let mut unheld = txn.open_table(UNHELD).map_err(ctx("open"))?;
        for d in &old_digests {
            if tally.digests.binary_search_by(|e| e.0.cmp(d)).is_err() {
                unheld.insert(d, sequence).map_err(ctx("write"))?;
            }
        }
    }
    tally.apply(txn, sequence)
}

/// The digests listed as no longer counted, and whether each is counted
/// again since (then it is only taken off the list).
pub(super) fn unheld(txn: &redb::ReadTransaction) -> Result<Vec<(Sha256, bool)>> {
    let list = match txn.open_table(UNHELD) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(ctx("open")(e)),
    };
    let counted = match txn.open_table(DIGESTS) {
        Ok(t) => Some(t),
        Err(redb::TableError::TableDoesNotExist(_)) => None,
        Err(e) => return Err(ctx("open")(e)),
    };
    let mut out = Vec::new();
    for r in list.iter().map_err(ctx("read"))? {
        let d = *r.map_err(ctx("read"))?.0.value();
        let again = match &counted {
            Some(t) => t.get(&d).map_err(ctx("read"))?.is_some(),
            None => false,
        };
        out.push((Sha256(d), again));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{commit, commit_with, record};
    use super::super::{rows, Ledger};
    use super::*;
    use crate::layout::Layout;
    use ferry_protocol::catalog::{Catalog, ChunkRef, Encoding, FileObject, SourceKind};
    use ferry_protocol::path::ObjectKey;
    use redb::{Database, ReadableDatabase};
    use std::collections::BTreeMap;

    fn file(sha: u8, chunks: &[u8]) -> Object {
        Object::File(FileObject {
            size: chunks.len() as u64,
            sha256: Sha256([sha; 32]),
            executable: false,
            encoding: Encoding::Chunks(
                chunks
                    .iter()
                    .map(|c| ChunkRef {
                        id: ChunkId([*c; 32]),
                        len: 1,
                    })
                    .collect(),
            ),
        })
    }

    fn catalog(objects: &[(&str, Object)]) -> Catalog {
        let mut c = Catalog::default();
        c.sources.insert("a".into(), SourceKind::Files);
        for (p, o) in objects {
            let key = ObjectKey {
                source: "a".into(),
                path: p.to_string(),
            };
            c.objects.insert(key, o.clone());
        }
        c
    }

    type Counts = (BTreeMap<[u8; 32], u64>, BTreeMap<[u8; 32], u64>);

    /// The counts `catalog` makes, counted the slow way.
    fn expected(catalog: &Catalog) -> Counts {
        let (mut held, mut digests) = (BTreeMap::new(), BTreeMap::new());
        for o in catalog.objects.values() {
            if let Object::File(f) = o {
                *digests.entry(f.sha256.0).or_insert(0) += 1;
                for c in f.held_chunks() {
                    *held.entry(c.id.0).or_insert(0) += 1;
                }
            }
        }
        (held, digests)
    }

    fn stored(ledger: &Ledger) -> (Counts, Vec<[u8; 32]>) {
        let txn = ledger.db.begin_read().unwrap();
        let read = |def: TableDefinition<&[u8; 32], u64>| {
            let t = txn.open_table(def).unwrap();
            t.iter()
                .unwrap()
                .map(|r| {
                    let (k, v) = r.unwrap();
                    (*k.value(), v.value())
                })
                .collect::<BTreeMap<[u8; 32], u64>>()
        };
        let unheld = read(UNHELD).into_keys().collect();
        ((read(HELD), read(DIGESTS)), unheld)
    }

    /// The counts of `sequence` are those of `catalog`, and a `Last` of it
    /// answers from them.
    fn assert_counts(ledger: &Ledger, sequence: u64, catalog: &Catalog) {
        let last = ledger.last(sequence).unwrap();
        let want = expected(catalog);
        assert_eq!(stored(ledger).0, want, "counts of {sequence}");
        for id in want.0.keys() {
            assert!(last.holds_chunk(&ChunkId(*id)).unwrap());
        }
        assert!(!last.holds_chunk(&ChunkId([0xee; 32])).unwrap());
    }

    /// The digests `prune_unheld` hands over.
    fn pruned(ledger: &Ledger) -> Vec<u8> {
        let mut out = Vec::new();
        ledger
            .prune_unheld(|d| {
                out.push(d.0[0]);
                Ok(())
            })
            .unwrap();
        out.sort_unstable();
        out
    }

    #[test]
    fn each_commit_keeps_the_counts_and_lists_the_digests_that_leave() {
        let tmp = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&Layout::new(tmp.path())).unwrap();
        // Two files share digest 1 and chunk 7; a chunk twice in one file.
        let first = catalog(&[
            ("x", file(1, &[7, 8])),
            ("y", file(1, &[7, 8])),
            ("z", file(2, &[7, 9, 9])),
            ("l", Object::Symlink { target: "x".into() }),
        ]);
        commit(&ledger, 1, &Catalog::default(), &first, &[], &[]);
        assert_counts(&ledger, 1, &first);
        assert!(pruned(&ledger).is_empty());
        // x replaced (digest 1 still y's), z removed (digest 2 leaves), w
        // new with digest 3.
        let second = catalog(&[
            ("x", file(4, &[10])),
            ("y", file(1, &[7, 8])),
            ("w", file(3, &[9])),
            ("l", Object::Symlink { target: "y".into() }),
        ]);
        commit(&ledger, 2, &first, &second, &[], &[]);
        assert_counts(&ledger, 2, &second);
        assert_eq!(pruned(&ledger), [2]);
        assert!(pruned(&ledger).is_empty(), "taken off the list");
        // y goes, then a digest listed comes back before the prune (a
        // crash after the commit): it is only taken off the list.
        let third = catalog(&[("x", file(4, &[10])), ("w", file(3, &[9]))]);
        commit(&ledger, 3, &second, &third, &[], &[]);
        assert_counts(&ledger, 3, &third);
        let fourth = catalog(&[("x", file(4, &[10])), ("v", file(1, &[8]))]);
        commit(&ledger, 4, &third, &fourth, &[], &[]);
        assert_counts(&ledger, 4, &fourth);
        assert_eq!(pruned(&ledger), [3], "1 is counted again, 3 left");
        assert!(stored(&ledger).1.is_empty());
    }

    #[test]
    fn a_patch_s_chunks_are_not_held() {
        let tmp = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&Layout::new(tmp.path())).unwrap();
        let Object::File(mut f) = file(5, &[1]) else {
            unreachable!()
        };
        let base = ferry_protocol::catalog::Base {
            key: ObjectKey {
                source: "a".into(),
                path: "b".into(),
            },
            sha256: Sha256([6; 32]),
            form: ferry_protocol::catalog::BaseForm::Bytes,
            len: 1,
            blake3: [0; 32],
        };
        f.encoding = Encoding::Rebuilt(Box::new(ferry_protocol::catalog::Rebuilt {
            recipe: vec![ChunkRef {
                id: ChunkId([2; 32]),
                len: 1,
            }],
            expanded_len: 1,
            expanded_blake3: [0; 32],
            expanded: ferry_protocol::catalog::Expanded::Patch {
                base,
                patch: vec![ChunkRef {
                    id: ChunkId([3; 32]),
                    len: 1,
                }],
            },
        }));
        let c = catalog(&[("p", Object::File(f)), ("b", file(6, &[4]))]);
        commit(&ledger, 1, &Catalog::default(), &c, &[], &[]);
        assert_counts(&ledger, 1, &c);
        let last = ledger.last(1).unwrap();
        assert!(last.holds_chunk(&ChunkId([2; 32])).unwrap(), "the recipe");
        assert!(!last.holds_chunk(&ChunkId([3; 32])).unwrap(), "the patch");
    }

    #[test]
    fn the_counts_of_a_discarded_unsigned_export_are_built_again() {
        let tmp = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&Layout::new(tmp.path())).unwrap();
        let first = catalog(&[("x", file(1, &[1])), ("y", file(2, &[2]))]);
        commit(&ledger, 1, &Catalog::default(), &first, &[], &[]);
        let second = catalog(&[("x", file(1, &[1])), ("y", file(3, &[3]))]);
        commit_with(&ledger, false, &record(2), (&first, &second), &[], &[]).unwrap();
        assert_eq!(pruned(&ledger), [2]);
        ledger.discard_unsigned().unwrap().unwrap();
        assert_counts(&ledger, 1, &first);
        // Digest 3 was the discarded export's only: listed to go.
        assert_eq!(pruned(&ledger), [3]);
        commit(&ledger, 2, &first, &second, &[], &[]);
        assert_counts(&ledger, 2, &second);
    }

    #[test]
    fn a_ledger_with_rows_but_no_counts_is_upgraded_in_place() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path());
        let first = catalog(&[("x", file(1, &[1, 2])), ("y", file(2, &[2]))]);
        let second = catalog(&[("x", file(1, &[1, 2])), ("y", file(3, &[3]))]);
        {
            let ledger = Ledger::open(&layout).unwrap();
            commit(&ledger, 1, &Catalog::default(), &first, &[], &[]);
            commit(&ledger, 2, &first, &second, &[], &[]);
        }
        // As session 12 left a ledger: rows, no count tables, no marker.
        {
            let db = Database::create(layout.ledger()).unwrap();
            let txn = db.begin_write().unwrap();
            for t in [HELD, DIGESTS, UNHELD] {
                txn.delete_table(t).unwrap();
            }
            txn.open_table(META).unwrap().remove(STATE).unwrap();
            txn.commit().unwrap();
        }
        let ledger = Ledger::open(&layout).unwrap();
        assert_counts(&ledger, 2, &second);
        {
            let txn = ledger.db.begin_read().unwrap();
            let meta = txn.open_table(META).unwrap();
            assert_eq!(sequence(&meta).unwrap(), Some(2));
            assert_eq!(
                rows::Last::open(ledger.db.begin_read().unwrap(), 2)
                    .unwrap()
                    .row_count()
                    .unwrap(),
                2
            );
        }
        // Exports go on from the counts built.
        let third = catalog(&[("x", file(1, &[1, 2]))]);
        commit(&ledger, 3, &second, &third, &[], &[]);
        assert_counts(&ledger, 3, &third);
        assert_eq!(pruned(&ledger), [3]);
    }

    #[test]
    fn counts_that_disagree_with_the_rows_stop_the_commit() {
        let tmp = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&Layout::new(tmp.path())).unwrap();
        let first = catalog(&[("x", file(1, &[1]))]);
        commit(&ledger, 1, &Catalog::default(), &first, &[], &[]);
        {
            let txn = ledger.db.begin_write().unwrap();
            txn.open_table(DIGESTS).unwrap().remove(&[1; 32]).unwrap();
            txn.commit().unwrap();
        }
        let second = catalog(&[("x", file(2, &[2]))]);
        let err = commit_with(&ledger, true, &record(2), (&first, &second), &[], &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("disagree"), "{err}");
        assert_eq!(ledger.head().unwrap().sequence, 1, "nothing committed");
    }
}
