//! The extra hash chains of the matcher (`Longer`): a speed-up of gzip's
//! and zlib's match search that changes no output.

use super::matcher::{ARRAY, ARRAY_MASK, PAD, WINDOW_SIZE, WSIZE};

/// The lengths of the prefixes by which `Longer` chains strings, increasing,
/// from 3 to 8 bytes. A string's prefix must be read when it is inserted (its
/// chain is not changed later), and gzip reads `MIN_LOOKAHEAD` bytes ahead (zlib
/// too, but at the end of its input: it waits for more before it goes under), so
/// that the last string inserted in a match of 258 has 6 bytes read, not
/// more: the string at `s` goes on the 8-byte chain (`LAGGED`) when the one
/// at `s + 2` is inserted, and a search there checks the string before it
/// first.
pub(super) const KEYS: [usize; 4] = [3, 4, 6, 8];
/// The chain whose strings are inserted 2 strings late.
pub(super) const LAGGED: usize = 3;
/// `Longer::key_for` per `best_len` up to 7 (the prefixes are of at most 8
/// bytes: a longer match is the same as 7).
pub(super) const KEY_FOR: [usize; 8] = {
    let mut table = [0; 8];
    let mut best_len = 0;
    while best_len < 8 {
        let mut key = 0;
        while key + 1 < KEYS.len() && KEYS[key + 1] <= best_len + 1 {
            key += 1;
        }
        table[best_len] = key;
        best_len += 1;
    }
    table
};
/// The shortest input for which `Longer` is used.
pub(super) const LONGER_FROM: usize = WINDOW_SIZE;
/// The bits of the hash of a prefix (fewer made more strings of other
/// prefixes share a chain: slower).
const KEY_BITS: u32 = 16;
const KEY_SIZE: usize = 1 << KEY_BITS;
/// Other hash chains, a speed-up that changes no output: the strings of the
/// window by a hash of their first `KEYS[i]` bytes, and per string its rank
/// in gzip's chain (one more than the string before it there). gzip walks its
/// chain (strings of the same 15-bit hash of three bytes) and counts every
/// string against `max_chain`, but only strings whose first `best_len + 1`
/// bytes (at least 3) are the current string's can give a longer match than
/// `best_len`: gzip compares all of them but the third, which its hash makes
/// equal once the first two are. Those strings are on the chain of the
/// longest such prefix, in gzip's order, and the difference of two ranks is
/// how far gzip's walk is from one to the other. Every string gzip inserts is
/// inserted here too (with lazy matching gzip inserts every string). zlib's
/// chains and walk are gzip's, so all of this holds for it too (it inserts
/// no string with fewer than 3 bytes of input ahead: nor are those here). Used
/// from level 5 up, for inputs of `LONGER_FROM` bytes or more: at level 4
/// (chains of 16) their upkeep costs more than they save, on a short input
/// their setup.
pub(super) struct Longer {
    pub(super) head: [Box<[u16; KEY_SIZE]>; KEYS.len()],
    pub(super) prev: [Box<[u16; WSIZE]>; KEYS.len()],
    /// Per string (`& WMASK`), its rank on gzip's chain (wrapping).
    pub(super) rank: Box<[u16; WSIZE]>,
    /// The first string inserted (0 once slid below the window).
    pub(super) first: usize,
}

impl Longer {
    /// Chains whose first string will be at `first`.
    pub(super) fn new(first: usize) -> Longer {
        Longer {
            head: std::array::from_fn(|_| Box::new([0; KEY_SIZE])),
            prev: std::array::from_fn(|_| Box::new([0; WSIZE])),
            rank: Box::new([0; WSIZE]),
            first,
        }
    }

    /// The first `KEYS[key]` bytes of the string at `at`.
    #[inline]
    pub(super) fn prefix(w: &[u8; ARRAY + PAD], at: usize, key: usize) -> u64 {
        let at = at & ARRAY_MASK;
        let word = u64::from_le_bytes(w[at..at + 8].try_into().unwrap_or([0; 8]));
        word & (u64::MAX >> (64 - 8 * KEYS[key]))
    }

    #[inline]
    pub(super) fn hash(prefix: u64) -> usize {
        (prefix.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - KEY_BITS)) as usize
    }

    /// Which chain a search for a match longer than `best_len` walks: the
    /// longest prefix of at most `best_len + 1` bytes (3 below a match of 2).
    #[inline]
    pub(super) fn key_for(best_len: usize) -> usize {
        KEY_FOR[best_len.min(7)]
    }
}
