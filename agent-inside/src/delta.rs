//! The next catalog of an apply, made from the applied one in place: one
//! catalog in memory, not two (the applied one and a copy changed into the
//! next). What the changes replaced is kept beside it, so the build still
//! asks "what did the previous generation hold at this key"
//! ([`crate::store::Prev`]).
//!
//! The checks are [`Catalog::apply`]'s, with the whole validation of the
//! result replaced by [`Catalog::validate_changes`] (what the changes can
//! break in a valid catalog): every key checked, no key changed twice, a
//! removed key held, a patch's base held with the digest the patch was made
//! against (in the applied catalog), and the result valid.

use crate::store::Prev;
use ferry_protocol::catalog::{Catalog, Change, Changes, Object, SourceKind};
use ferry_protocol::path::{check_key, ObjectKey};
use ferry_protocol::Error;
use std::collections::{BTreeMap, HashSet};

/// The applied catalog and the next one, held as one.
#[derive(Debug)]
pub struct Catalogs {
    next: Catalog,
    before: Before,
}

#[derive(Debug)]
enum Before {
    /// The whole previous catalog (a rebase snapshot's next catalog is made
    /// from nothing).
    Whole(Catalog),
    /// The previous sources, and the previous object of each changed key.
    Replaced {
        sources: BTreeMap<String, SourceKind>,
        replaced: BTreeMap<ObjectKey, Option<Object>>,
    },
}

impl Catalogs {
    /// `prev` changed by `sources` and `changes` (checked first: on an
    /// error nothing is changed, and `prev` is dropped).
    pub fn absorb(
        mut prev: Catalog,
        sources: &BTreeMap<String, SourceKind>,
        changes: &[Change],
    ) -> Result<Catalogs, Error> {
        let checked = check(&prev, sources, changes)?;
        let mut replaced = BTreeMap::new();
        let Changes {
            sources,
            puts,
            removes,
        } = checked;
        if prev.objects.is_empty() {
            // A first import: the previous catalog is empty, held whole
            // (no copy of every key as replacing nothing).
            let next = Catalog {
                sources,
                objects: puts,
            };
            return Ok(Catalogs::whole(
                Catalog {
                    sources: prev.sources,
                    ..Catalog::default()
                },
                next,
            ));
        }
        for (key, object) in puts {
            let old = prev.objects.insert(key.clone(), object);
            replaced.insert(key, old);
        }
        for key in removes {
            let old = prev.objects.remove(&key);
            replaced.insert(key, old);
        }
        let sources = std::mem::replace(&mut prev.sources, sources);
        Ok(Catalogs {
            next: prev,
            before: Before::Replaced { sources, replaced },
        })
    }

    /// `prev` kept whole beside `next` (made apart from it).
    pub fn whole(prev: Catalog, next: Catalog) -> Catalogs {
        Catalogs {
            next,
            before: Before::Whole(prev),
        }
    }

    /// The next catalog.
    pub fn next(&self) -> &Catalog {
        &self.next
    }

    /// The previous catalog.
    pub fn prev(&self) -> Prev<'_> {
        match &self.before {
            Before::Whole(c) => Prev::Whole(c),
            Before::Replaced { sources, replaced } => Prev::Replaced {
                next: &self.next,
                sources,
                replaced,
            },
        }
    }

    /// The whole previous catalog, when it is held whole.
    pub fn prev_whole(&self) -> Option<&Catalog> {
        match &self.before {
            Before::Whole(c) => Some(c),
            Before::Replaced { .. } => None,
        }
    }
}

/// `changes` as [`Changes`] (the puts and removals in key order), after
/// every check [`Catalog::apply`] makes of them against `prev`.
fn check(
    prev: &Catalog,
    sources: &BTreeMap<String, SourceKind>,
    changes: &[Change],
) -> Result<Changes, Error> {
    let mut touched = HashSet::new();
    let mut out = Changes {
        sources: sources.clone(),
        ..Changes::default()
    };
    for c in changes {
        check_key(c.key())?;
        if !touched.insert(c.key()) {
            return Err(Error::Inconsistent(format!(
                "object {} changed twice",
                c.key()
            )));
        }
        match c {
            Change::Put { key, object } => {
                if let Object::File(f) = object {
                    if let Some(base) = f.base() {
                        check_base(prev, key, &base.key, &base.sha256)?;
                    }
                }
                out.puts.insert(key.clone(), object.clone());
            }
            Change::Remove { key } => {
                if !prev.objects.contains_key(key) {
                    return Err(Error::Inconsistent(format!(
                        "removes {key}, which the base catalog does not hold"
                    )));
                }
                out.removes.push(key.clone());
            }
        }
    }
    out.removes.sort();
    prev.validate_changes(&out)?;
    Ok(out)
}

/// The base `base` of a patch of `key` is in `prev` with digest `sha256`.
fn check_base(
    prev: &Catalog,
    key: &ObjectKey,
    base: &ObjectKey,
    sha256: &ferry_protocol::id::Sha256,
) -> Result<(), Error> {
    match prev.objects.get(base) {
        Some(Object::File(held)) if held.sha256 == *sha256 => Ok(()),
        Some(Object::File(held)) => Err(Error::MissingBase {
            key: key.to_string(),
            base: base.to_string(),
            why: format!(
                "the patch was made against SHA-256 {sha256}, the base catalog holds {}",
                held.sha256
            ),
        }),
        _ => Err(Error::MissingBase {
            key: key.to_string(),
            base: base.to_string(),
            why: "the base catalog does not hold it".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_protocol::catalog::{ChunkRef, Encoding, FileObject};
    use ferry_protocol::id::{ChunkId, Sha256};

    fn key(path: &str) -> ObjectKey {
        ObjectKey {
            source: "s".into(),
            path: path.into(),
        }
    }

    fn file(body: &str) -> Object {
        Object::File(FileObject {
            size: body.len() as u64,
            sha256: Sha256::of(body.as_bytes()),
            executable: false,
            encoding: Encoding::Chunks(vec![ChunkRef {
                id: ChunkId::of(body.as_bytes()),
                len: body.len() as u32,
            }]),
        })
    }

    fn catalog(n: usize) -> Catalog {
        let mut c = Catalog::default();
        c.sources.insert("s".into(), SourceKind::Files);
        for i in 0..n {
            c.objects
                .insert(key(&format!("d{}/f{i}", i % 5)), file(&format!("v0 {i}")));
        }
        c
    }

    fn put(path: &str, body: &str) -> Change {
        Change::Put {
            key: key(path),
            object: file(body),
        }
    }

    /// Every delta gives what `Catalog::apply` gives: the same next catalog,
    /// or an error where it errs; the previous objects stay readable.
    #[test]
    fn absorb_agrees_with_apply() {
        let prev = catalog(50);
        for (sources, changes) in [
            (prev.sources.clone(), prev.clone().diff(&Catalog::default())),
            (prev.sources.clone(), Catalog::default().diff(&prev)),
        ] {
            // From the empty catalog (a first import), and to it.
            let from = if changes.iter().any(|c| matches!(c, Change::Remove { .. })) {
                prev.clone()
            } else {
                Catalog::default()
            };
            let want = from.apply(&sources, &changes).unwrap();
            let got = Catalogs::absorb(from.clone(), &sources, &changes).unwrap();
            assert_eq!(got.next(), &want);
            for k in prev.objects.keys() {
                assert_eq!(got.prev().get(k), from.objects.get(k), "{k}");
            }
        }
        let mut other = prev.sources.clone();
        other.insert("t".into(), SourceKind::Files);
        let cases: Vec<(BTreeMap<String, SourceKind>, Vec<Change>)> = vec![
            (prev.sources.clone(), vec![]),
            (
                prev.sources.clone(),
                vec![
                    put("d1/f1", "v1 1"),
                    put("d9/new", "new"),
                    Change::Remove { key: key("d2/f2") },
                ],
            ),
            (other.clone(), vec![put("d3/f3", "v1 3")]),
            // Errors: a key twice, an absent key removed, a bad key, an
            // object where a directory stands, a directory over an object,
            // a source dropped with objects left.
            (
                prev.sources.clone(),
                vec![put("d1/f1", "a"), put("d1/f1", "b")],
            ),
            (
                prev.sources.clone(),
                vec![Change::Remove { key: key("nope") }],
            ),
            (prev.sources.clone(), vec![put("../x", "x")]),
            (prev.sources.clone(), vec![put("d1", "x")]),
            (prev.sources.clone(), vec![put("d1/f1/under", "x")]),
            (BTreeMap::new(), vec![]),
        ];
        for (i, (sources, changes)) in cases.iter().enumerate() {
            let want = prev.apply(sources, changes);
            let got = Catalogs::absorb(prev.clone(), sources, changes);
            match (want, got) {
                (Ok(want), Ok(got)) => {
                    assert_eq!(got.next(), &want, "case {i}");
                    let p = got.prev();
                    assert_eq!(p.sources(), &prev.sources, "case {i}");
                    for (k, o) in &prev.objects {
                        assert_eq!(p.get(k), Some(o), "case {i}: {k}");
                    }
                    for k in want.objects.keys() {
                        assert_eq!(p.get(k), prev.objects.get(k), "case {i}: {k}");
                    }
                }
                (Err(w), Err(g)) => assert_eq!(w.to_string(), g.to_string(), "case {i}"),
                (w, g) => panic!("case {i}: apply gave {w:?}, absorb gave {g:?}"),
            }
        }
    }
}
