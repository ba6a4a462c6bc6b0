use super::*;
use crate::db::{CatalogUpdate, Db};
use ferry_protocol::catalog::{
    Base, BaseForm, ChunkRef, DeltaStats, Encoding, Expanded, FileObject, Rebuilt,
};
use ferry_protocol::id::{ChunkId, Sha256};

fn key(source: &str, path: &str) -> ObjectKey {
    ObjectKey {
        source: source.into(),
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

/// A file carried as a patch against `base` made against digest `sha`.
fn patched(body: &str, base: ObjectKey, sha: Sha256) -> Object {
    Object::File(FileObject {
        size: body.len() as u64,
        sha256: Sha256::of(body.as_bytes()),
        executable: false,
        encoding: Encoding::Rebuilt(Box::new(Rebuilt {
            recipe: vec![],
            expanded_len: body.len() as u64,
            expanded_blake3: [0; 32],
            expanded: Expanded::Patch {
                base: Base {
                    key: base,
                    sha256: sha,
                    form: BaseForm::Bytes,
                    len: 4,
                    blake3: [0; 32],
                },
                patch: vec![ChunkRef {
                    id: ChunkId::of(b"patch"),
                    len: 5,
                }],
            },
        })),
    })
}

/// 50 files of source `s` (files), the largest `d0/big`, and 3 of `sx`
/// (npm: a source whose name `s` is a prefix of).
fn catalog() -> Catalog {
    let mut c = Catalog::default();
    c.sources.insert("s".into(), SourceKind::Files);
    c.sources.insert("sx".into(), SourceKind::Npm);
    for i in 0..50 {
        c.objects.insert(
            key("s", &format!("d{}/f{i}", i % 5)),
            file(&format!("v0 {i}")),
        );
    }
    c.objects
        .insert(key("s", "d0/big"), file("the largest file of all"));
    for i in 0..3 {
        c.objects
            .insert(key("sx", &format!("p{i}")), file(&format!("x {i}")));
    }
    c
}

fn put(path: &str, object: Object) -> Change {
    Change::Put {
        key: key("s", path),
        object,
    }
}

/// The next catalog as `c` reads it, row by row.
fn read_through(c: &Catalogs<'_>) -> Catalog {
    let mut out = Catalog {
        sources: c.sources().clone(),
        ..Catalog::default()
    };
    c.for_each_from(None, &mut |k, o| {
        assert!(
            out.objects.insert(k.clone(), o.clone()).is_none(),
            "{k} twice"
        );
        Ok(true)
    })
    .unwrap();
    out
}

/// `prev` stored as the applied catalog of a new database.
fn stored(prev: &Catalog) -> (tempfile::TempDir, Db) {
    let tmp = tempfile::tempdir().unwrap();
    let db = Db::open(&tmp.path().join("ferry-in.redb")).unwrap();
    crate::db::commit_test_apply(&db, 1, CatalogUpdate::Whole(prev));
    (tmp, db)
}

/// Checks `got` (over the rows of `prev`) against `want` (`Catalog::apply`).
fn agrees(prev: &Catalog, got: &Catalogs<'_>, want: &Catalog, stats: DeltaStats, what: &str) {
    assert_eq!(&read_through(got), want, "{what}");
    assert_eq!(got.sums(), Sums::of(want.objects.values()), "{what}: sums");
    assert_eq!(got.prev_sources(), &prev.sources, "{what}");
    for k in prev.objects.keys().chain(want.objects.keys()) {
        assert_eq!(
            got.get(k).unwrap().as_ref(),
            want.objects.get(k),
            "{what}: {k}"
        );
        assert_eq!(
            got.prev_get(k).unwrap().as_ref(),
            prev.objects.get(k),
            "{what}: {k}"
        );
    }
    for kind in [SourceKind::Files, SourceKind::Npm] {
        let of_kind = got.next_of_kind(kind).unwrap();
        let wanted: BTreeMap<_, _> = want
            .objects
            .iter()
            .filter(|(k, _)| want.sources.get(&k.source) == Some(&kind))
            .map(|(k, o)| (k.clone(), o.clone()))
            .collect();
        assert_eq!(of_kind.objects, wanted, "{what}: {kind:?}");
    }
    assert_eq!(got.delta_stats().unwrap(), stats, "{what}: stats");
}

/// Every delta gives what `Catalog::apply` gives: the same next catalog
/// (read by key, by kind and row by row), the same sums, or the same
/// error; the applied objects stay readable.
#[test]
fn absorb_over_the_rows_agrees_with_apply() {
    let prev = catalog();
    let (_tmp, db) = stored(&prev);
    let snap = db.snapshot().unwrap();
    let big = key("s", "d0/big");
    let Some(Object::File(held)) = prev.objects.get(&big) else {
        unreachable!()
    };
    let mut other = prev.sources.clone();
    other.insert("t".into(), SourceKind::Files);
    let mut dropped = prev.sources.clone();
    dropped.remove("sx");
    let sx_gone: Vec<Change> = (0..3)
        .map(|i| Change::Remove {
            key: key("sx", &format!("p{i}")),
        })
        .collect();
    let cases: Vec<(BTreeMap<String, SourceKind>, Vec<Change>)> = vec![
        (prev.sources.clone(), vec![]),
        (
            prev.sources.clone(),
            vec![
                put("d1/f1", file("v1 1")),
                put("d9/new", file("new")),
                Change::Remove {
                    key: key("s", "d2/f2"),
                },
            ],
        ),
        // A put of the same object; a new source.
        (prev.sources.clone(), vec![put("d1/f1", file("v0 1"))]),
        (other.clone(), vec![put("d3/f3", file("v1 3"))]),
        // The largest file removed, or replaced by a smaller one, or by a
        // larger one; a source dropped with its objects.
        (
            prev.sources.clone(),
            vec![Change::Remove { key: big.clone() }],
        ),
        (prev.sources.clone(), vec![put("d0/big", file("small"))]),
        (
            prev.sources.clone(),
            vec![put("d0/big", file("an even larger file than the largest"))],
        ),
        (dropped.clone(), sx_gone),
        // A patch against a base held with its digest.
        (
            prev.sources.clone(),
            vec![put("d1/p", patched("abcd", big.clone(), held.sha256))],
        ),
        // Errors: a key twice, an absent key removed, a bad key, an object
        // where a directory stands, a directory over an object, a source
        // dropped with objects left, a patch's base held with another
        // digest, a base not held.
        (
            prev.sources.clone(),
            vec![put("d1/f1", file("a")), put("d1/f1", file("b"))],
        ),
        // A key put and removed, a key removed twice (the moved list
        // checks these without a set of keys).
        (
            prev.sources.clone(),
            vec![
                put("d1/f1", file("a")),
                Change::Remove {
                    key: key("s", "d1/f1"),
                },
            ],
        ),
        (
            prev.sources.clone(),
            vec![
                Change::Remove {
                    key: key("s", "d2/f2"),
                },
                Change::Remove {
                    key: key("s", "d2/f2"),
                },
            ],
        ),
        (
            prev.sources.clone(),
            vec![Change::Remove {
                key: key("s", "nope"),
            }],
        ),
        (prev.sources.clone(), vec![put("../x", file("x"))]),
        (prev.sources.clone(), vec![put("d1", file("x"))]),
        (prev.sources.clone(), vec![put("d1/f1/under", file("x"))]),
        (dropped, vec![]),
        (BTreeMap::new(), vec![]),
        (
            prev.sources.clone(),
            vec![put(
                "d1/p",
                patched("abcd", big.clone(), Sha256::of(b"other")),
            )],
        ),
        (
            prev.sources.clone(),
            vec![put(
                "d1/p",
                patched("abcd", key("s", "d7/none"), held.sha256),
            )],
        ),
    ];
    for (i, (sources, changes)) in cases.iter().enumerate() {
        let want = prev.apply(sources, changes);
        let got = Catalogs::absorb(&snap, sources, changes.clone());
        match (want, got) {
            (Ok(want), Ok(got)) => {
                assert!(got.is_delta(), "case {i}");
                let stats = prev.delta_stats(changes);
                agrees(&prev, &got, &want, stats, &format!("case {i}"));
            }
            (Err(w), Err(g)) => assert_eq!(w.to_string(), g.to_string(), "case {i}"),
            (w, g) => panic!(
                "case {i}: apply gave {w:?}, absorb gave {:?}",
                g.map(|c| read_through(&c))
            ),
        }
    }
}

/// A first import (from the empty catalog), to the empty catalog, and a
/// rebase snapshot (from nothing, the rows still the applied catalog).
#[test]
fn first_import_emptying_and_rebase_agree_with_apply() {
    let prev = catalog();
    let (_tmp, empty_db) = stored(&Catalog::default());
    let snap = empty_db.snapshot().unwrap();
    let first = Catalog::default().diff(&prev);
    let got = Catalogs::absorb(&snap, &prev.sources, first.clone()).unwrap();
    assert!(!got.is_delta(), "a first import holds its change");
    let stats = Catalog::default().delta_stats(&first);
    agrees(&Catalog::default(), &got, &prev, stats, "first import");

    let (_tmp2, db) = stored(&prev);
    let snap = db.snapshot().unwrap();
    let all_gone = prev.diff(&Catalog::default());
    let want = prev.apply(&prev.sources, &all_gone).unwrap();
    let got = Catalogs::absorb(&snap, &prev.sources, all_gone.clone()).unwrap();
    agrees(&prev, &got, &want, prev.delta_stats(&all_gone), "emptied");

    let mut next = catalog();
    next.objects.remove(&key("s", "d1/f1"));
    next.objects.insert(key("s", "d8/n"), file("n"));
    next.objects.insert(key("s", "d2/f2"), file("v9"));
    let got = Catalogs::rebase(&snap, &next.sources, &Catalog::default().diff(&next)).unwrap();
    assert!(!got.is_delta());
    let stats = DeltaStats {
        added: 1,
        changed: 1,
        removed: 1,
    };
    assert_eq!(prev.delta_stats(&prev.diff(&next)), stats);
    agrees(&prev, &got, &next, stats, "rebase");
}

/// A first import's next catalog is its change list in key order, checked
/// without a map: every list gives what `Catalog::apply` of the empty
/// catalog gives (the same catalog, read every way, or the same error),
/// and its commit writes the rows, chunk uses and counts a whole catalog
/// writes.
#[test]
fn a_first_import_agrees_with_apply_over_the_empty_catalog() {
    let want = catalog();
    let (_tmp, db) = stored(&Catalog::default());
    let snap = db.snapshot().unwrap();
    let first = Catalog::default().diff(&want);
    let mut shuffled = first.clone();
    shuffled.reverse();
    shuffled.swap(3, 17);
    let sources = want.sources.clone();
    let mut bad_source = sources.clone();
    bad_source.insert("../up".into(), SourceKind::Files);
    let with = |extra: Vec<Change>| {
        let mut l = first.clone();
        l.extend(extra);
        l
    };
    let big = key("s", "d0/big");
    let cases: Vec<(BTreeMap<String, SourceKind>, Vec<Change>)> = vec![
        (sources.clone(), first.clone()),
        (sources.clone(), shuffled),
        (sources.clone(), vec![]),
        (BTreeMap::new(), vec![]),
        // A key twice (in order, and out of it), a removal, a bad key, a
        // patch (no base is held), an object where a directory stands
        // (above, below), an undeclared source, a bad source name.
        (
            sources.clone(),
            vec![put("d1/f1", file("a")), put("d1/f1", file("b"))],
        ),
        (sources.clone(), with(vec![put("d1/f1", file("b"))])),
        (
            sources.clone(),
            with(vec![Change::Remove { key: big.clone() }]),
        ),
        (sources.clone(), vec![put("../x", file("x"))]),
        (
            sources.clone(),
            vec![put("d1/p", patched("abcd", big.clone(), Sha256::of(b"x")))],
        ),
        (sources.clone(), with(vec![put("d1", file("x"))])),
        (sources.clone(), with(vec![put("d1/f1/under", file("x"))])),
        (
            sources.clone(),
            vec![Change::Put {
                key: key("t", "x"),
                object: file("x"),
            }],
        ),
        (bad_source, first.clone()),
    ];
    let mut refused = 0;
    for (i, (sources, changes)) in cases.iter().enumerate() {
        let what = format!("case {i}");
        let applied = Catalog::default().apply(sources, changes);
        let got = Catalogs::absorb(&snap, sources, changes.clone());
        match (applied, got) {
            (Ok(next), Ok(got)) => {
                assert!(matches!(got.puts(), Puts::Sorted(_)), "{what}");
                assert_eq!(got.puts().len(), next.objects.len(), "{what}");
                let stats = DeltaStats {
                    added: next.objects.len(),
                    ..DeltaStats::default()
                };
                agrees(&Catalog::default(), &got, &next, stats, &what);
                // The commit of the list writes what the whole catalog writes.
                let (_t, by_list) = stored(&Catalog::default());
                crate::db::commit_test_apply(
                    &by_list,
                    2,
                    CatalogUpdate::Checked {
                        sources: got.sources(),
                        puts: got.puts(),
                        removes: got.removes(),
                        sums: got.sums(),
                    },
                );
                let (_w, by_whole) = stored(&Catalog::default());
                crate::db::commit_test_apply(&by_whole, 2, CatalogUpdate::Whole(&next));
                assert_eq!(by_list.catalog().unwrap(), next, "{what}");
                let (a, b) = (by_list.snapshot().unwrap(), by_whole.snapshot().unwrap());
                assert_eq!(a.sums().unwrap(), b.sums().unwrap(), "{what}");
                for (_, f) in next.files() {
                    for c in f.chunks() {
                        assert_eq!(a.uses(&c.id).unwrap(), b.uses(&c.id).unwrap(), "{what}");
                    }
                }
                assert_eq!(
                    by_list.object_ref_counts().unwrap(),
                    by_whole.object_ref_counts().unwrap(),
                    "{what}"
                );
            }
            (Err(w), Err(g)) => {
                refused += 1;
                assert_eq!(w.to_string(), format!("{g:#}"), "{what}")
            }
            (w, g) => panic!(
                "{what}: apply gave {w:?}, absorb gave {:?}",
                g.map(|c| read_through(&c))
            ),
        }
        first_from_columns(&snap, sources, changes, &what);
    }
    assert_eq!(refused, 9, "the last nine cases are refused");
}

/// The change list `changes` kept as a manifest's columns and absorbed
/// over the empty catalog of `snap` (`Catalogs::absorb_columns`) gives
/// what the decoded list gives (`Catalogs::absorb`): the same catalog, read
/// every way, sums and commit, or the same error; read as a stream when
/// the list is in key order and passes.
fn first_from_columns(
    snap: &Snapshot,
    sources: &BTreeMap<String, SourceKind>,
    changes: &[Change],
    what: &str,
) {
    let columns = ferry_protocol::manifest::Columns::of_changes(changes.to_vec());
    let listed = Catalogs::absorb(snap, sources, changes.to_vec());
    let streamed = Catalogs::absorb_columns(snap, sources, columns, &[]);
    let (listed, streamed) = match (listed, streamed) {
        (Ok(l), Ok(s)) => (l, s),
        (Err(l), Err(s)) => return assert_eq!(format!("{l:#}"), format!("{s:#}"), "{what}"),
        (l, s) => panic!(
            "{what}: the list gave {:?}, the columns {:?}",
            l.map(|c| read_through(&c)),
            s.map(|c| read_through(&c))
        ),
    };
    let in_order = changes.windows(2).all(|w| w[0].key() < w[1].key());
    assert_eq!(
        matches!(streamed.puts(), Puts::Stream(..)),
        in_order,
        "{what}: streamed when in key order"
    );
    assert_eq!(read_through(&listed), read_through(&streamed), "{what}");
    assert_eq!(listed.sums(), streamed.sums(), "{what}");
    assert_eq!(listed.sources(), streamed.sources(), "{what}");
    assert_eq!(listed.puts().len(), streamed.puts().len(), "{what}");
    assert_eq!(
        listed.delta_stats().unwrap(),
        streamed.delta_stats().unwrap(),
        "{what}"
    );
    for (k, o) in listed.puts() {
        assert_eq!(streamed.get(&k).unwrap().as_ref(), Some(&*o), "{what}: {k}");
    }
    for kind in listed.sources().values() {
        assert_eq!(
            listed.next_of_kind(*kind).unwrap(),
            streamed.next_of_kind(*kind).unwrap(),
            "{what}"
        );
    }
    assert_eq!(streamed.get(&key("s", "no/such")).unwrap(), None, "{what}");
    let keys: Vec<ObjectKey> = listed.changes().map(|(k, _)| k.into_owned()).collect();
    let streamed_keys: Vec<ObjectKey> = streamed.changes().map(|(k, _)| k.into_owned()).collect();
    assert_eq!(keys, streamed_keys, "{what}");
    // Their commits write the same rows, uses, sums and counts.
    let commit = |c: &Catalogs<'_>| {
        let (t, db) = stored(&Catalog::default());
        crate::db::commit_test_apply(
            &db,
            2,
            CatalogUpdate::Checked {
                sources: c.sources(),
                puts: c.puts(),
                removes: c.removes(),
                sums: c.sums(),
            },
        );
        (t, db)
    };
    let ((_a, a), (_b, b)) = (commit(&listed), commit(&streamed));
    assert_eq!(a.catalog().unwrap(), b.catalog().unwrap(), "{what}");
    let (sa, sb) = (a.snapshot().unwrap(), b.snapshot().unwrap());
    assert_eq!(sa.sums().unwrap(), sb.sums().unwrap(), "{what}");
    for (_, o) in listed.puts() {
        if let Object::File(f) = &*o {
            for c in f.chunks() {
                assert_eq!(sa.uses(&c.id).unwrap(), sb.uses(&c.id).unwrap(), "{what}");
            }
        }
    }
    assert_eq!(
        a.object_ref_counts().unwrap(),
        b.object_ref_counts().unwrap(),
        "{what}"
    );
}
