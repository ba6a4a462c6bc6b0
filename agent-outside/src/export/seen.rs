//! [`Seen`]: which keys of the last catalog the sources listed, as 128-bit
//! keyed hashes (no key held), and the keys they did not list (removed).
//!
//! A `files` source lists its keys in key order (`FilesSource::walk`), so
//! the hashes are kept as a list in that order: appended one after the
//! other, and matched against the rows (also in key order) in one merge for
//! the removals. A million-entry hash set cost a fifth of a delta's CPU at
//! a million files, in writes scattered over 36 MB. A key recorded late (a
//! changed object whose analysis finished after later keys were listed)
//! goes into a small set beside the list. A key asked about out of order
//! (another kind of source, or several sources) turns the list into the
//! set, and from then on every key goes into the set.

use crate::ledger::Last;
use anyhow::Result;
use ferry_protocol::path::ObjectKey;
use std::collections::hash_map::RandomState;
use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};

/// Hands each row key, in key order, to the visitor it is given.
type EachKey<'a> = dyn Fn(&mut dyn FnMut(&str)) -> Result<()> + 'a;

/// The last catalog's keys listed so far.
pub(super) struct Seen {
    /// While the keys come in increasing order: their hashes in that order,
    /// and the last key (a row key, `source\0path`).
    ordered: Option<(Vec<u128>, String)>,
    /// With the list: the keys recorded after a greater one. Without it
    /// (a key asked about out of order): every hash.
    hashes: HashSet<u128>,
    /// The two keyed hashes of [`Seen::hash`].
    keys: (RandomState, RandomState),
    /// A row key being hashed, reused.
    buf: String,
}

impl Seen {
    /// An empty set for a catalog of about `n` keys.
    pub(super) fn with_capacity(n: u64) -> Seen {
        Seen {
            ordered: Some((
                Vec::with_capacity(usize::try_from(n).unwrap_or(0)),
                String::new(),
            )),
            hashes: HashSet::new(),
            keys: (RandomState::new(), RandomState::new()),
            buf: String::new(),
        }
    }

    /// The 128-bit keyed hash of a row key (`source\0path`): two
    /// independently keyed SipHashes.
    fn hash(&self, row_key: &str) -> u128 {
        let (mut x, mut y) = (self.keys.0.build_hasher(), self.keys.1.build_hasher());
        x.write(row_key.as_bytes());
        y.write(row_key.as_bytes());
        (u128::from(x.finish()) << 64) | u128::from(y.finish())
    }

    /// Puts `key`'s row key in `buf`.
    fn row_key(&mut self, key: &ObjectKey) {
        self.buf.clear();
        self.buf.push_str(&key.source);
        self.buf.push('\0');
        self.buf.push_str(&key.path);
    }

    /// Leaves the ordered list for the set (a key came out of order).
    fn unorder(&mut self) {
        if let Some((list, _)) = self.ordered.take() {
            self.hashes.extend(list);
        }
    }

    /// Whether `key` was listed.
    pub(super) fn contains(&mut self, key: &ObjectKey) -> bool {
        self.row_key(key);
        if let Some((_, last)) = &self.ordered {
            match self.buf.as_str().cmp(last.as_str()) {
                // Never listed: every key listed is smaller.
                std::cmp::Ordering::Greater => return false,
                std::cmp::Ordering::Equal => return true,
                std::cmp::Ordering::Less => self.unorder(),
            }
        }
        self.hashes.contains(&self.hash(&self.buf))
    }

    /// Records that `key` was listed.
    pub(super) fn insert(&mut self, key: &ObjectKey) {
        self.row_key(key);
        let h = self.hash(&self.buf);
        if let Some((list, last)) = &mut self.ordered {
            if list.is_empty() || self.buf.as_str() > last.as_str() {
                list.push(h);
                last.clone_from(&self.buf);
                return;
            }
        }
        // Late (below the last key listed), or no list any more.
        self.hashes.insert(h);
    }

    /// The keys of `last` that were not listed, in key order.
    pub(super) fn removed(self, last: &Last) -> Result<Vec<ObjectKey>> {
        let keys = |visit: &mut dyn FnMut(&str)| {
            last.each_key(|k| {
                visit(k);
                Ok(true)
            })
        };
        self.removed_among(last.row_count()?, &keys)
    }

    /// The keys not listed among `rows` keys, which `keys` hands over in
    /// key order.
    fn removed_among(mut self, rows: u64, keys: &EachKey<'_>) -> Result<Vec<ObjectKey>> {
        let mut out = Vec::new();
        let listed = self.hashes.len() + self.ordered.as_ref().map_or(0, |(list, _)| list.len());
        if listed as u64 >= rows {
            return Ok(out);
        }
        let mut next = 0;
        keys(&mut |k: &str| {
            let h = self.hash(k);
            let was_listed = match &self.ordered {
                // Both in key order: the next hash listed is this key's, or
                // the key was not listed.
                Some((list, _)) if list.get(next) == Some(&h) => {
                    next += 1;
                    true
                }
                _ => self.hashes.contains(&h),
            };
            if !was_listed {
                let (source, path) = k.split_once('\0').unwrap_or((k, ""));
                out.push(ObjectKey {
                    source: source.into(),
                    path: path.into(),
                });
            }
        })?;
        if let Some((list, _)) = &self.ordered {
            if next != list.len() {
                // A key listed that the rows do not hold (none should be):
                // the merge lost its place, so the set decides instead.
                self.unorder();
                return self.removed_among(rows, keys);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(source: &str, path: &str) -> ObjectKey {
        ObjectKey {
            source: source.into(),
            path: path.into(),
        }
    }

    /// The removals among the rows `rows` (row keys, sorted here).
    fn removed(seen: Seen, rows: &[&str]) -> Vec<String> {
        let mut rows = rows.to_vec();
        rows.sort_unstable();
        let keys = |visit: &mut dyn FnMut(&str)| {
            rows.iter().for_each(|k| visit(k));
            Ok(())
        };
        let out = seen.removed_among(rows.len() as u64, &keys).unwrap();
        out.iter()
            .map(|k| format!("{}/{}", k.source, k.path))
            .collect()
    }

    #[test]
    fn a_key_is_told_from_its_neighbours() {
        for ordered in [true, false] {
            let mut s = Seen::with_capacity(4);
            if !ordered {
                s.insert(&key("z", "z"));
                assert!(!s.contains(&key("a", "a")));
                assert!(
                    s.ordered.is_none(),
                    "a key asked out of order leaves the list"
                );
            }
            s.insert(&key("a", "b/c"));
            assert!(s.contains(&key("a", "b/c")));
            // The source and path are told apart, not only their bytes.
            assert!(!s.contains(&key("a/b", "c")));
            assert!(!s.contains(&key("ab", "/c")));
            assert!(!s.contains(&key("a", "b/c2")));
            assert!(!s.contains(&key("a", "b")));
            assert!(s.contains(&key("a", "b/c")));
        }
    }

    #[test]
    fn keys_in_order_stay_a_list_and_the_removals_are_merged() {
        let rows = ["s\0a", "s\0a.txt", "s\0a/x", "s\0b", "s\0c/d", "t\0a"];
        let mut s = Seen::with_capacity(6);
        for (source, path) in [("s", "a.txt"), ("s", "a/x"), ("s", "c/d")] {
            assert!(!s.contains(&key(source, path)));
            s.insert(&key(source, path));
        }
        assert!(s.ordered.is_some());
        assert!(s.hashes.is_empty(), "no set while in order");
        assert_eq!(removed(s, &rows), ["s/a", "s/b", "t/a"]);
    }

    #[test]
    fn keys_out_of_order_give_the_same_removals() {
        let rows = ["s\0a", "s\0a.txt", "s\0a/x", "s\0b", "s\0c/d", "t\0a"];
        let mut s = Seen::with_capacity(6);
        for (source, path) in [("t", "a"), ("s", "a/x"), ("s", "a.txt")] {
            assert!(!s.contains(&key(source, path)));
            s.insert(&key(source, path));
        }
        assert!(s.ordered.is_none());
        assert_eq!(removed(s, &rows), ["s/a", "s/b", "s/c/d"]);
    }

    #[test]
    fn a_key_listed_that_no_row_holds_does_not_derail_the_merge() {
        // Not expected (only keys the last catalog holds are listed), but
        // the merge would otherwise call every later row removed.
        let rows = ["s\0a", "s\0c", "s\0d", "s\0e"];
        let mut s = Seen::with_capacity(4);
        for path in ["b", "c", "d"] {
            s.insert(&key("s", path));
        }
        assert_eq!(removed(s, &rows), ["s/a", "s/e"]);
    }

    #[test]
    fn all_listed_means_none_removed() {
        let mut s = Seen::with_capacity(2);
        s.insert(&key("s", "a"));
        s.insert(&key("s", "b"));
        assert!(removed(s, &["s\0a", "s\0b"]).is_empty());
    }

    #[test]
    fn a_key_recorded_late_keeps_the_list() {
        // The walk lists in order, but a changed object is recorded when
        // its analysis is done, after greater keys.
        let rows = ["s\0a", "s\0b", "s\0c", "s\0d", "s\0e"];
        let mut s = Seen::with_capacity(5);
        for path in ["a", "b", "c", "d"] {
            assert!(!s.contains(&key("s", path)));
        }
        for path in ["a", "c", "d", "b"] {
            s.insert(&key("s", path));
        }
        assert!(s.ordered.is_some(), "a late insert keeps the list");
        assert_eq!(s.hashes.len(), 1, "b, late");
        assert!(s.contains(&key("s", "d")), "the last key: a second listing");
        assert!(!s.contains(&key("s", "e")));
        assert_eq!(removed(s, &rows), ["s/e"]);
    }
}
