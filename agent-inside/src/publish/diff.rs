//! What changed between two generations' path indexes, as sorted streams.
//!
//! When both share their base (the same file: an import links an unchanged
//! base), only the keys of the two deltas can differ: O(changes since the
//! base). Otherwise (no earlier publish, or a new base since) the two views
//! are walked side by side: O(mirror), once every time the inside writes a
//! new base (about once in 16 changes of the mirror's size).

use crate::pathindex::{Entry, IndexError, IndexFile, View};
use std::cmp::Ordering;
use std::fs::File;

/// A key whose entry differs: (key, before, after); None is absent.
pub type Change = (Vec<u8>, Option<Entry>, Option<Entry>);

type Items<'a> = Box<dyn Iterator<Item = Result<(Vec<u8>, Entry), IndexError>> + 'a>;

/// Calls `f` with every key whose entry differs from `old` to `new`, in key
/// order. `same_base`: the two views' bases are the same file.
pub fn each_change(
    old: Option<&View<File>>,
    new: &View<File>,
    same_base: bool,
    mut f: impl FnMut(Change) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    match old {
        Some(old) if same_base => {
            let keys = Union::new(
                Box::new(old.delta().scan_from(b"")),
                Box::new(new.delta().scan_from(b"")),
            );
            for k in keys {
                let k = k?;
                let (a, b) = (old.get(&k)?, new.get(&k)?);
                if a != b {
                    f((k, a, b))?;
                }
            }
        }
        Some(old) => {
            let mut a = old.iter().peekable();
            let mut b = new.iter().peekable();
            loop {
                let ord = match (a.peek(), b.peek()) {
                    (None, None) => break,
                    (Some(Err(_)), _) => return Err(a.next().unwrap().unwrap_err().into()),
                    (_, Some(Err(_))) => return Err(b.next().unwrap().unwrap_err().into()),
                    (Some(Ok(_)), None) => Ordering::Less,
                    (None, Some(Ok(_))) => Ordering::Greater,
                    (Some(Ok((ka, _))), Some(Ok((kb, _)))) => ka.cmp(kb),
                };
                match ord {
                    Ordering::Less => {
                        let (k, e) = a.next().unwrap()?;
                        f((k, Some(e), None))?;
                    }
                    Ordering::Greater => {
                        let (k, e) = b.next().unwrap()?;
                        f((k, None, Some(e)))?;
                    }
                    Ordering::Equal => {
                        let (k, ea) = a.next().unwrap()?;
                        let (_, eb) = b.next().unwrap()?;
                        if ea != eb {
                            f((k, Some(ea), Some(eb)))?;
                        }
                    }
                }
            }
        }
        None => {
            for item in new.iter() {
                let (k, e) = item?;
                f((k, None, Some(e)))?;
            }
        }
    }
    Ok(())
}

/// The keys of two sorted scans, each once, in order.
struct Union<'a> {
    a: std::iter::Peekable<Items<'a>>,
    b: std::iter::Peekable<Items<'a>>,
}

impl<'a> Union<'a> {
    fn new(a: Items<'a>, b: Items<'a>) -> Self {
        Union {
            a: a.peekable(),
            b: b.peekable(),
        }
    }
}

impl Iterator for Union<'_> {
    type Item = Result<Vec<u8>, IndexError>;

    fn next(&mut self) -> Option<Self::Item> {
        let ord = match (self.a.peek(), self.b.peek()) {
            (None, None) => return None,
            (Some(Err(_)), _) | (Some(Ok(_)), None) => Ordering::Less,
            (_, Some(Err(_))) | (None, Some(Ok(_))) => Ordering::Greater,
            (Some(Ok((ka, _))), Some(Ok((kb, _)))) => ka.cmp(kb),
        };
        let item = match ord {
            Ordering::Less => self.a.next()?,
            Ordering::Greater => self.b.next()?,
            Ordering::Equal => {
                self.b.next();
                self.a.next()?
            }
        };
        Some(item.map(|(k, _)| k))
    }
}

/// Opens a view of the index files `base` and `delta`.
pub fn open_view(base: &std::path::Path, delta: &std::path::Path) -> anyhow::Result<View<File>> {
    use anyhow::Context;
    let open = |p: &std::path::Path| -> anyhow::Result<IndexFile<File>> {
        let f = File::open(p).with_context(|| format!("cannot open {}", p.display()))?;
        IndexFile::open(f).with_context(|| format!("{}", p.display()))
    };
    View::new(open(base)?, open(delta)?)
        .with_context(|| format!("{} and {}", base.display(), delta.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pathindex::{Kind, Writer};
    use ferry_protocol::id::Sha256;
    use std::path::Path;

    fn file(n: u8) -> Entry {
        Entry::File {
            sha256: Sha256([n; 32]),
            size: u64::from(n),
            executable: false,
        }
    }

    fn write(path: &Path, kind: Kind, entries: &[(Vec<u8>, Entry)]) {
        let mut w = Writer::new(File::create(path).unwrap(), kind).unwrap();
        for (k, e) in entries {
            w.push(k, e).unwrap();
        }
        w.finish().unwrap();
    }

    fn key(i: u32) -> Vec<u8> {
        format!("src\0d/{i:04}").into_bytes()
    }

    fn changes(old: Option<&View<File>>, new: &View<File>, same: bool) -> Vec<Change> {
        let mut out = vec![];
        each_change(old, new, same, |c| {
            out.push(c);
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn the_two_deltas_give_what_the_whole_walk_gives() {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        let base: Vec<_> = (0..500).map(|i| (key(i), file((i % 200) as u8))).collect();
        write(&p("base"), Kind::Base, &base);
        // Before: key 3 changed, key 9 removed. After: key 3 back as in the
        // base, key 9 still removed, key 20 changed, key 9999 added.
        write(
            &p("old"),
            Kind::Delta,
            &[(key(3), file(250)), (key(9), Entry::Tombstone)],
        );
        write(
            &p("new"),
            Kind::Delta,
            &[
                (key(9), Entry::Tombstone),
                (key(20), file(251)),
                (key(9999), file(252)),
            ],
        );
        let old = open_view(&p("base"), &p("old")).unwrap();
        let new = open_view(&p("base"), &p("new")).unwrap();
        let by_deltas = changes(Some(&old), &new, true);
        let by_walk = changes(Some(&old), &new, false);
        assert_eq!(by_deltas, by_walk);
        assert_eq!(
            by_deltas,
            vec![
                (key(3), Some(file(250)), Some(file(3))),
                (key(20), Some(file(20)), Some(file(251))),
                (key(9999), None, Some(file(252))),
            ]
        );
        // No earlier publish: every live key is new.
        assert_eq!(changes(None, &new, false).len(), 500);
    }
}
