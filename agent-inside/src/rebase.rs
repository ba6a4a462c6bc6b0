//! Rebase snapshots (bundle-format §17): when a store may apply one.
//!
//! A snapshot carries the stream's whole catalog at its sequence N, as a
//! delta from the empty catalog, and names the manifest hash of the stream's
//! own bundle N. A store with nothing applied takes it as its first bundle;
//! a store that holds something only with `import --rebase`, and only to move
//! forward (N after its applied sequence): its catalog is then replaced
//! whole. The chain link recorded for N is the named hash, so bundle N+1
//! follows as usual, and the stream's bundle N itself is then skipped as
//! applied.

use crate::apply::ApplyOptions;
use crate::bundle::Bundle;
use crate::db::Applied;
use crate::import::Refusal;
use ferry_protocol::id::ManifestHash;

/// The hash of the stream's bundle that `b` snapshots, if `b` is a rebase
/// snapshot. (`Manifest::open` checked the record already.)
pub fn snapshot_of(b: &Bundle) -> Option<ManifestHash> {
    ferry_protocol::rebase::rebase(b.head())
        .ok()
        .flatten()
        .map(|r| r.of)
}

/// Why the rebase snapshot `b` may not be applied over `applied`, if it may
/// not: one that would not move the store forward is a replay; one over a
/// store that holds something needs `import --rebase`.
pub fn refusal(b: &Bundle, applied: &Applied, opts: ApplyOptions) -> Option<Refusal> {
    let (sequence, applied) = (b.sequence(), applied.sequence);
    if applied == 0 {
        None
    } else if sequence <= applied {
        Some(Refusal::RebaseReplay { sequence, applied })
    } else if !opts.rebase {
        Some(Refusal::RebaseNotAsked { sequence, applied })
    } else {
        None
    }
}
