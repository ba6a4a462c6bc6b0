//! `ferry-out prune`: what the outside forgets of old bundles.
//!
//! Two things go, and only what is older than what must stay:
//! - the kept copies of bundles older than the newest `--keep` (they can
//!   then no longer be re-sent; bundles never written to media stay);
//! - the ledger's catalog history before them ([`Ledger::compact_history`]):
//!   the checkpoints and change lists of old sequences, which otherwise
//!   grow by a whole catalog every [`CHECKPOINT_EVERY`] exports. The
//!   history is cut at a checkpoint, so nothing is written but deletions.
//!
//! What stays, whatever `--keep` says:
//! - the bundles after the newest one every trusted inside acknowledged
//!   (its receipts), unless `--unacknowledged-too`;
//! - the catalog of every kept bundle, of the head, and of the bundle each
//!   trusted inside last applied (`receipt add` checks the inside's
//!   inventory against it; `export --reship` maps a scrub report's objects
//!   to chunks with it). A catalog older than that is then a clear
//!   [`Compacted`](crate::ledger::Compacted) error.
//!
//! [`CHECKPOINT_EVERY`]: crate::ledger::CHECKPOINT_EVERY

use crate::layout::Layout;
use crate::ledger::{Compaction, Ledger};
use crate::receipts;
use anyhow::Result;
use ferry_agent_common::fsx;

/// What [`prune`] did.
#[derive(Debug, Default)]
pub struct Pruned {
    /// Kept bundle copies deleted, and their bytes.
    pub bundles: u64,
    /// See `bundles`.
    pub bundle_bytes: u64,
    /// The sequence after which bundles were kept although `--keep` let
    /// them go: a trusted inside has not acknowledged them.
    pub held_for_insides: Option<u64>,
    /// The catalog history deleted, if any.
    pub history: Option<Compaction>,
    /// The ledger file's size before and after.
    pub ledger_bytes: (u64, u64),
}

/// Deletes the kept copies of all bundles but the newest `keep`, and the
/// catalog history before what stays (see the module's documentation).
pub fn prune(layout: &Layout, keep: u64, unacknowledged_too: bool) -> Result<Pruned> {
    let mut ledger = Ledger::open(layout)?;
    let bundles = ledger.bundles()?;
    let head = ledger.head()?.sequence;
    let mut out = Pruned::default();
    let mut cut = bundles
        .len()
        .saturating_sub(usize::try_from(keep).unwrap_or(usize::MAX));
    // The oldest catalog that must stay readable.
    let mut needed = head;
    if !unacknowledged_too {
        if let Some(acked) = receipts::acknowledged_by_all(&ledger)? {
            let floor = bundles.iter().take_while(|b| b.sequence <= acked).count();
            if floor < cut {
                out.held_for_insides = Some(acked);
                cut = floor;
            }
            needed = needed.min(acked);
        }
    }
    for r in &bundles[..cut] {
        let dir = layout.bundle(&r.dir_name);
        if !r.written {
            // Never written to media: kept, with its catalog.
            needed = needed.min(r.sequence);
        } else if dir.is_dir() {
            fsx::remove_dir_if_exists(&dir)?;
            out.bundles += 1;
            out.bundle_bytes += r.bytes;
        }
    }
    if let Some(oldest) = bundles.get(cut) {
        needed = needed.min(oldest.sequence);
    }
    let size = || std::fs::metadata(layout.ledger()).map_or(0, |m| m.len());
    let before = size();
    out.history = ledger.compact_history(needed)?;
    if out.history.is_some() {
        // What was deleted is free pages inside the file until compacted;
        // the deletion is committed already, so a failure here only
        // leaves them there (redb reuses them).
        if let Err(e) = ledger.compact_file() {
            eprintln!(
                "ferry-out: warning: the ledger's freed pages stay in its file (they are \
                 reused by later exports): {e:#}"
            );
        }
    }
    drop(ledger);
    out.ledger_bytes = (before, size());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::tests::{commit_with, record};
    use crate::ledger::{Compacted, CHECKPOINT_EVERY};
    use crate::reship::{chunks_to_reship, ReshipError, ScrubReport};
    use ferry_protocol::catalog::{Catalog, Object, SourceKind};
    use ferry_protocol::path::ObjectKey;

    fn key(i: u64) -> ObjectKey {
        ObjectKey {
            source: "tools".into(),
            path: format!("f{i:03}"),
        }
    }

    /// The catalog of sequence `n`: 40 objects, the `n % 40`th changed.
    fn catalog_at(n: u64) -> Catalog {
        let mut c = Catalog::default();
        c.sources.insert("tools".into(), SourceKind::Files);
        for i in 0..40 {
            let v = if i == n % 40 { n } else { 0 };
            c.objects.insert(
                key(i),
                Object::Symlink {
                    target: format!("t{v}"),
                },
            );
        }
        c
    }

    /// A state of `last` bundles, each kept in its directory; those in
    /// `unwritten` never written to media.
    fn state(last: u64, unwritten: &[u64]) -> (tempfile::TempDir, Layout) {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path());
        let ledger = Ledger::open(&layout).unwrap();
        let mut prev = Catalog::default();
        for n in 1..=last {
            let next = catalog_at(n);
            let mut r = record(n);
            r.written = !unwritten.contains(&n);
            commit_with(&ledger, true, &r, (&prev, &next), &[], &[]).unwrap();
            std::fs::create_dir_all(layout.bundle(&r.dir_name)).unwrap();
            prev = next;
        }
        (tmp, layout)
    }

    fn kept(layout: &Layout, last: u64) -> Vec<u64> {
        (1..=last)
            .filter(|n| layout.bundle(&record(*n).dir_name).is_dir())
            .collect()
    }

    #[test]
    fn prune_deletes_old_copies_and_the_history_before_them() {
        let last = 2 * CHECKPOINT_EVERY + 12;
        let (_tmp, layout) = state(last, &[]);
        let p = prune(&layout, 10, false).unwrap();
        assert_eq!(p.bundles, last - 10);
        assert_eq!(kept(&layout, last), (last - 9..=last).collect::<Vec<_>>());
        // The oldest kept bundle is last - 9 = 2 * 64 + 3: the history is
        // cut at the checkpoint before it, 2 * 64 + 1.
        let h = p.history.expect("the history was compacted");
        assert_eq!(h.from, 2 * CHECKPOINT_EVERY + 1);
        assert_eq!(h.sequences, 2 * CHECKPOINT_EVERY);
        assert!(p.ledger_bytes.1 <= p.ledger_bytes.0, "{:?}", p.ledger_bytes);
        let ledger = Ledger::open(&layout).unwrap();
        for n in h.from..=last {
            assert_eq!(ledger.catalog(n).unwrap(), catalog_at(n), "bundle {n}");
        }
        let err = ledger.catalog(h.from - 1).unwrap_err();
        assert!(err.downcast_ref::<Compacted>().is_some(), "{err:#}");
        // The records stay: status and resend still name every bundle.
        assert_eq!(ledger.bundles().unwrap().len() as u64, last);

        // A scrub report of a generation whose catalog is gone cannot be
        // mapped to chunks: refused by name; one of a kept generation can.
        let report = |sequence: u64| ScrubReport {
            generation: Some(format!("{sequence}-abcdef")),
            bad_chunks: Vec::new(),
            bad_objects: vec![key(3)],
        };
        let err = chunks_to_reship(&report(5), &ledger).unwrap_err();
        match err.downcast_ref::<ReshipError>() {
            Some(ReshipError::CompactedGeneration {
                sequence: 5, from, ..
            }) => {
                assert_eq!(*from, h.from)
            }
            _ => panic!("{err:#}"),
        }
        assert!(
            err.to_string().contains("apply the newest bundles"),
            "{err}"
        );
        // Bundle `last`'s symlinks have no chunks, but the catalog is read.
        assert!(chunks_to_reship(&report(last), &ledger).unwrap().is_empty());
        drop(ledger);

        // Nothing more to do with the same --keep; the stream goes on.
        let p = prune(&layout, 10, false).unwrap();
        assert_eq!((p.bundles, p.history), (0, None));
        let ledger = Ledger::open(&layout).unwrap();
        let next = catalog_at(last + 1);
        commit_with(
            &ledger,
            true,
            &record(last + 1),
            (&catalog_at(last), &next),
            &[],
            &[],
        )
        .unwrap();
        assert_eq!(ledger.catalog(last + 1).unwrap(), next);
    }

    #[test]
    fn a_bundle_never_written_keeps_itself_and_its_catalog() {
        let last = 2 * CHECKPOINT_EVERY + 12;
        let (_tmp, layout) = state(last, &[CHECKPOINT_EVERY + 5]);
        let p = prune(&layout, 1, false).unwrap();
        assert_eq!(p.bundles, last - 2);
        assert_eq!(kept(&layout, last), vec![CHECKPOINT_EVERY + 5, last]);
        assert_eq!(p.history.unwrap().from, CHECKPOINT_EVERY + 1);
        let ledger = Ledger::open(&layout).unwrap();
        let n = CHECKPOINT_EVERY + 5;
        assert_eq!(ledger.catalog(n).unwrap(), catalog_at(n));
    }

    #[test]
    fn keeping_everything_compacts_nothing() {
        let last = CHECKPOINT_EVERY + 3;
        let (_tmp, layout) = state(last, &[]);
        let p = prune(&layout, last, false).unwrap();
        assert_eq!((p.bundles, p.history), (0, None));
        // --keep 0: every copy goes, the head's catalog stays.
        let p = prune(&layout, 0, false).unwrap();
        assert_eq!(p.bundles, last);
        assert_eq!(p.history.unwrap().from, CHECKPOINT_EVERY + 1);
        let ledger = Ledger::open(&layout).unwrap();
        assert_eq!(ledger.catalog(last).unwrap(), catalog_at(last));
    }
}
