//! The chunks an export has sent to its volume writer, as a set: each id
//! once, in the order sent, and a hash table of their positions
//! (`hashbrown::HashTable<u32>`: 5 bytes a slot, at most 7/8 of them used).
//!
//! A first export sends about one chunk an object, so this set grows with
//! the mirror: a `HashSet<ChunkId>` takes 33 bytes a slot, and about 70 MB
//! at a million chunks (twice that for a moment as it grows); this one
//! about 40 bytes a chunk (32 for the id, 6 to 11 for the table), and the
//! builder keeps no set of its own beside it
//! ([`ferry_protocol::builder::BundleBuilder::without_id_set`]).
//!
//! Positions are placed by the standard library's keyed hash of the id
//! (random keys each export), so that chunks made to share hash bits do
//! not crowd one run of slots.

use ferry_protocol::id::ChunkId;
use hashbrown::hash_table::Entry;
use hashbrown::HashTable;
use std::hash::BuildHasher;

/// A set of chunk ids; see the module's docs.
#[derive(Default)]
pub(super) struct Carried {
    ids: Vec<ChunkId>,
    /// Each id's position in `ids`.
    table: HashTable<u32>,
    keys: std::collections::hash_map::RandomState,
}

impl Carried {
    /// Whether `id` is in the set.
    pub(super) fn contains(&self, id: &ChunkId) -> bool {
        let ids = &self.ids;
        self.table
            .find(self.keys.hash_one(id), |&at| ids[at as usize] == *id)
            .is_some()
    }

    /// Adds `id`; whether it was not in the set already.
    pub(super) fn insert(&mut self, id: ChunkId) -> bool {
        let Carried { ids, table, keys } = self;
        let entry = table.entry(
            keys.hash_one(id),
            |&at| ids[at as usize] == id,
            |&at| keys.hash_one(ids[at as usize]),
        );
        match entry {
            Entry::Occupied(_) => false,
            Entry::Vacant(v) => {
                // Below `u32::MAX` chunks: a bundle has far fewer (its chunk
                // table counts them in 32 bits as well).
                v.insert(u32::try_from(ids.len()).expect("under 4G chunks"));
                ids.push(id);
                true
            }
        }
    }

    /// How many ids the set holds.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.ids.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Ids that differ in their first 8 bytes only.
    fn id(n: u64) -> ChunkId {
        let mut b = [9u8; 32];
        b[..8].copy_from_slice(&n.to_le_bytes());
        ChunkId(b)
    }

    #[test]
    fn the_set_holds_what_a_hash_set_holds() {
        let mut c = Carried::default();
        let mut h = HashSet::new();
        assert!(!c.contains(&id(0)));
        // Every id twice, in a scrambled order, across many growths.
        for round in 0..2 {
            for i in 0..10_000u64 {
                let n = (i * 7919) % 10_000;
                assert_eq!(c.insert(id(n)), h.insert(id(n)), "round {round}, {n}");
                assert!(c.contains(&id(n)));
            }
        }
        assert_eq!(c.len(), 10_000);
        for n in 0..20_000u64 {
            assert_eq!(c.contains(&id(n)), h.contains(&id(n)), "{n}");
        }
        // Ids alike but for one byte are told apart.
        let mut a = ChunkId([7; 32]);
        assert!(c.insert(a));
        a.0[31] = 8;
        assert!(!c.contains(&a));
        assert!(c.insert(a));
        assert!(!c.insert(a));
    }
}
