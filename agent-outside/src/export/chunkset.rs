//! [`ChunkSet`]: the chunks the inside holds, as a sorted array (32 bytes an
//! id, against about 70 in a `HashSet` of a million ids), looked up through
//! an index of the ids' first bits (chunk ids are BLAKE3 digests, spread
//! evenly, so each bucket holds a few ids).

use ferry_protocol::id::ChunkId;
use std::collections::HashSet;

/// A set of chunk ids, fixed once built.
pub(super) struct ChunkSet {
    /// Sorted, without duplicates.
    ids: Vec<ChunkId>,
    /// `index[b]`: the first position in `ids` of bucket `b` or later;
    /// `2^bits + 1` entries.
    index: Vec<u32>,
    bits: u32,
}

impl ChunkSet {
    /// The set of `ids` but those in `minus`.
    pub(super) fn new(mut ids: Vec<ChunkId>, minus: &HashSet<ChunkId>) -> ChunkSet {
        if !minus.is_empty() {
            ids.retain(|id| !minus.contains(id));
        }
        ids.sort_unstable();
        ids.dedup();
        ids.shrink_to_fit();
        // About one id a bucket, at most 2^16 buckets (256 KiB of index).
        let bits = (usize::BITS - ids.len().leading_zeros()).min(16);
        let mut index = Vec::with_capacity((1 << bits) + 1);
        let mut at = 0;
        for b in 0..=(1usize << bits) {
            while at < ids.len() && Self::bucket(bits, &ids[at]) < b {
                at += 1;
            }
            index.push(u32::try_from(at).expect("fewer than 2^32 chunks"));
        }
        ChunkSet { ids, index, bits }
    }

    fn bucket(bits: u32, id: &ChunkId) -> usize {
        let top = u16::from_be_bytes([id.0[0], id.0[1]]) as usize;
        top >> (16 - bits)
    }

    /// Whether `id` is in the set.
    pub(super) fn contains(&self, id: &ChunkId) -> bool {
        let b = Self::bucket(self.bits, id);
        let (from, to) = (self.index[b] as usize, self.index[b + 1] as usize);
        self.ids[from..to].binary_search(id).is_ok()
    }

    /// How many ids the set holds.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.ids.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_exactly_the_ids_given_but_those_taken_away() {
        for n in [0u32, 1, 2, 3, 100, 70_000] {
            let ids: Vec<ChunkId> = (0..n).map(|i| ChunkId::of(&i.to_le_bytes())).collect();
            let minus: HashSet<ChunkId> = ids.iter().step_by(7).copied().collect();
            // Each id twice: duplicates count once.
            let set = ChunkSet::new(ids.iter().chain(&ids).copied().collect(), &minus);
            assert_eq!(set.len(), ids.len() - minus.len(), "{n} ids");
            for id in &ids {
                assert_eq!(set.contains(id), !minus.contains(id), "{n} ids");
            }
            for i in n..n + 50 {
                assert!(!set.contains(&ChunkId::of(&i.to_le_bytes())));
            }
            // Ids at the ends of the range of buckets.
            assert!(!set.contains(&ChunkId([0; 32])));
            assert!(!set.contains(&ChunkId([0xff; 32])));
        }
        let edges = [ChunkId([0; 32]), ChunkId([0xff; 32])];
        let set = ChunkSet::new(edges.to_vec(), &HashSet::new());
        assert!(edges.iter().all(|id| set.contains(id)));
    }
}
