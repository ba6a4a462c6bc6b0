//! The chunks an export has sent to its volume writer, as a set: each id
//! once, in the order sent, and an open-addressed index of their positions
//! (4 bytes a slot, at most half of them used).
//!
//! A first export sends about one chunk an object, so this set grows with
//! the mirror: a `HashSet<ChunkId>` takes 33 bytes a slot, and about 70 MB
//! at a million chunks (twice that for a moment as it grows); this one
//! about 40 bytes a chunk (32 for the id, 8 for the index), and the
//! builder keeps no set of its own beside it
//! ([`ferry_protocol::builder::BundleBuilder::without_id_set`]).
//!
//! Positions are found by the standard library's keyed hash of the id
//! (random keys each export), so that chunks made to share hash bits do
//! not crowd one run of slots.

use ferry_protocol::id::ChunkId;
use std::hash::BuildHasher;

/// A set of chunk ids; see the module's docs.
#[derive(Default)]
pub(super) struct Carried {
    ids: Vec<ChunkId>,
    /// `0` for an empty slot, else the id's position in `ids` plus one.
    slots: Vec<u32>,
    keys: std::collections::hash_map::RandomState,
}

impl Carried {
    /// Whether `id` is in the set.
    pub(super) fn contains(&self, id: &ChunkId) -> bool {
        self.find(id).is_err()
    }

    /// Adds `id`; whether it was not in the set already.
    pub(super) fn insert(&mut self, id: ChunkId) -> bool {
        if (self.ids.len() + 1) * 2 > self.slots.len() {
            self.grow();
        }
        match self.find(&id) {
            Err(_) => false,
            Ok(slot) => {
                self.ids.push(id);
                // Below `u32::MAX` chunks: a bundle has far fewer (its chunk
                // table counts them in 32 bits as well).
                self.slots[slot] = u32::try_from(self.ids.len()).expect("under 4G chunks");
                true
            }
        }
    }

    /// How many ids the set holds.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.ids.len()
    }

    /// The empty slot where `id` goes (`Ok`), or `Err` if it is held.
    fn find(&self, id: &ChunkId) -> Result<usize, ()> {
        if self.slots.is_empty() {
            return Ok(0);
        }
        let mask = self.slots.len() - 1;
        let mut at = self.keys.hash_one(id) as usize & mask;
        loop {
            match self.slots[at] {
                0 => return Ok(at),
                n if self.ids[n as usize - 1] == *id => return Err(()),
                _ => at = (at + 1) & mask,
            }
        }
    }

    /// Doubles the slots (16 at first) and places every id again.
    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(16);
        self.slots = vec![0; size];
        let mask = size - 1;
        for (i, id) in self.ids.iter().enumerate() {
            let mut at = self.keys.hash_one(id) as usize & mask;
            while self.slots[at] != 0 {
                at = (at + 1) & mask;
            }
            self.slots[at] = u32::try_from(i + 1).expect("under 4G chunks");
        }
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
