//! The order in which [`super::rebuild_all`] rebuilds a batch: by the memory
//! each rebuild holds, then the longest first.

use super::{BuildCtx, ALONE_REBUILD, BESIDE_LARGE, LARGE_REBUILD};
use anyhow::Result;
use ferry_protocol::catalog::{Encoding, FileObject};
use ferry_protocol::path::ObjectKey;

/// Sorts `list` into [`super::rebuild_all`]'s groups by what `of` says of each
/// (the bytes its rebuild holds, its size, its [`rebuild_span`]): those
/// holding over [`ALONE_REBUILD`], then over [`LARGE_REBUILD`], then over
/// [`BESIDE_LARGE`], then the rest, the first group largest first and the
/// others longest first. Returns where the last three groups start.
pub(super) fn rebuild_order<T>(list: &mut [T], of: impl Fn(&T) -> (u64, u64, u64)) -> [usize; 3] {
    list.sort_by_key(|e| {
        let (held, size, _) = of(e);
        std::cmp::Reverse((held, size))
    });
    let starts = [ALONE_REBUILD, LARGE_REBUILD, BESIDE_LARGE]
        .map(|most| list.partition_point(|e| of(e).0 > most));
    let [alone, large, small] = starts;
    for group in [alone..large, large..small, small..list.len()] {
        list[group].sort_by_key(|e| {
            let (_, size, span) = of(e);
            std::cmp::Reverse((span, size))
        });
    }
    starts
}

/// How long rebuilding `f` takes at least on `cores` cores, roughly (for
/// [`super::rebuild_all`]'s order only): its recipe's
/// [`ferry_recipe::RebuildWork::span`], and its expanded form's bytes (the
/// chunks or the patch decoded, the digests: about a tenth of a byte
/// deflated by zlib). Reads the recipe (a few KiB), which the rebuild reads
/// again.
pub(super) fn rebuild_span(
    cx: &BuildCtx<'_>,
    key: &ObjectKey,
    f: &FileObject,
    cores: u64,
) -> Result<u64> {
    Ok(match &f.encoding {
        Encoding::Chunks(_) => f.size,
        Encoding::Rebuilt(r) => {
            let recipe = super::rebuilt::recipe(cx, key, r)?;
            let work = recipe.map(|r| r.rebuild_work()).unwrap_or_default();
            work.span(cores).saturating_add(r.expanded_len)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::rebuild_order;
    use crate::store::{ALONE_REBUILD, BESIDE_LARGE, LARGE_REBUILD};

    /// The groups go by the bytes held, the largest first; within the
    /// groups rebuilt beside others the longest rebuild goes first, whatever
    /// it holds or its size.
    #[test]
    fn groups_by_memory_then_the_longest_first() {
        const MIB: u64 = 1 << 20;
        // (name, held, size, span)
        let mut list = vec![
            ("small-short", MIB, 9 * MIB, 10),
            ("layer", ALONE_REBUILD + MIB, 60 * MIB, 500),
            ("small-long", 2 * MIB, MIB, 900),
            ("numpy", LARGE_REBUILD + MIB, 16 * MIB, 300),
            ("middle-short", BESIDE_LARGE + MIB, 5 * MIB, 20),
            ("middle-long", BESIDE_LARGE + 2 * MIB, 4 * MIB, 40),
            ("small-middle", 3 * MIB, 2 * MIB, 100),
            ("huge", 2 * ALONE_REBUILD, 90 * MIB, 1),
        ];
        let starts = rebuild_order(&mut list, |&(_, held, size, span)| (held, size, span));
        let names: Vec<_> = list.iter().map(|e| e.0).collect();
        assert_eq!(
            names,
            [
                "huge",
                "layer",
                "numpy",
                "middle-long",
                "middle-short",
                "small-long",
                "small-middle",
                "small-short"
            ]
        );
        assert_eq!(starts, [2, 3, 5]);
    }
}
