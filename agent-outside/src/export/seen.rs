//! [`Seen`]: which keys of the last catalog the sources listed, as 128-bit
//! keyed hashes (no key held), and the keys they did not list (removed).

use crate::ledger::Last;
use anyhow::Result;
use ferry_protocol::path::ObjectKey;
use std::collections::hash_map::RandomState;
use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};

/// The last catalog's keys listed so far.
pub(super) struct Seen {
    hashes: HashSet<u128>,
    /// The two keyed hashes of [`Seen::hash`].
    keys: (RandomState, RandomState),
    /// A row key being hashed, reused.
    buf: String,
}

impl Seen {
    /// Room for the `n` keys of the last catalog: sized once, as a set of
    /// 16-byte hashes growing by doubling would hold two tables at each step
    /// (about 36 MB at a million keys).
    pub(super) fn with_capacity(n: u64) -> Seen {
        Seen {
            hashes: HashSet::with_capacity(usize::try_from(n).unwrap_or(0)),
            keys: (RandomState::new(), RandomState::new()),
            buf: String::new(),
        }
    }

    /// A row key (`source \0 path`) as 128 bits: two SipHashes under random
    /// keys (a collision, about 2^-128 a pair, is not in reach of crafted
    /// names).
    fn hash(&self, row_key: &str) -> u128 {
        let (mut x, mut y) = (self.keys.0.build_hasher(), self.keys.1.build_hasher());
        x.write(row_key.as_bytes());
        y.write(row_key.as_bytes());
        (u128::from(x.finish()) << 64) | u128::from(y.finish())
    }

    fn hash_key(&mut self, key: &ObjectKey) -> u128 {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        buf.push_str(&key.source);
        buf.push('\0');
        buf.push_str(&key.path);
        let h = self.hash(&buf);
        self.buf = buf;
        h
    }

    /// Whether `key`, a key of the last catalog, was listed.
    pub(super) fn contains(&mut self, key: &ObjectKey) -> bool {
        let h = self.hash_key(key);
        self.hashes.contains(&h)
    }

    /// Records that `key`, a key of the last catalog, was listed.
    pub(super) fn insert(&mut self, key: &ObjectKey) {
        let h = self.hash_key(key);
        self.hashes.insert(h);
    }

    /// The keys of `last` not listed, in key order. Every key recorded is
    /// one of `last`'s, once: when as many were listed as its table holds
    /// (redb keeps the count), none is removed and its keys are not read.
    pub(super) fn removed(self, last: &Last) -> Result<Vec<ObjectKey>> {
        let mut out = Vec::new();
        if (self.hashes.len() as u64) < last.row_count()? {
            last.each_key(|k| {
                if !self.hashes.contains(&self.hash(k)) {
                    let (source, path) = k.split_once('\0').unwrap_or((k, ""));
                    out.push(ObjectKey {
                        source: source.into(),
                        path: path.into(),
                    });
                }
                Ok(true)
            })?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_told_from_its_neighbours() {
        let mut s = Seen::with_capacity(4);
        let key = |source: &str, path: &str| ObjectKey {
            source: source.into(),
            path: path.into(),
        };
        s.insert(&key("a", "b/c"));
        assert!(s.contains(&key("a", "b/c")));
        // The source and path are told apart, not only their bytes.
        assert!(!s.contains(&key("a/b", "c")));
        assert!(!s.contains(&key("ab", "/c")));
        assert!(!s.contains(&key("a", "b/c2")));
        assert_eq!(s.hash("a\0b/c"), s.hash_key(&key("a", "b/c")));
    }
}
