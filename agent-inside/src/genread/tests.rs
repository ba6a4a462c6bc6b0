//! A generation read through its path index answers exactly as through its
//! catalog: after a first import, after small deltas (base linked, delta
//! merged), and after a delta large enough for a new base.

use super::*;
use ferry_protocol::catalog::{Encoding, FileObject};
use std::collections::BTreeSet;

fn key(source: &str, path: &str) -> ObjectKey {
    ObjectKey {
        source: source.into(),
        path: path.into(),
    }
}

fn file(n: u64) -> Object {
    Object::File(FileObject {
        size: n,
        sha256: Sha256::of(&n.to_le_bytes()),
        executable: n.is_multiple_of(7),
        encoding: Encoding::Chunks(Vec::new()),
    })
}

fn catalog(n: u64) -> Catalog {
    let mut c = Catalog::default();
    c.sources.insert("files".into(), SourceKind::Files);
    c.sources.insert("img".into(), SourceKind::Oci);
    for i in 0..n {
        c.objects
            .insert(key("files", &format!("d{}/f{i:04}", i % 13)), file(i));
        c.objects.insert(
            key("img", &format!("repos/r{}/_tags/t{i}", i % 5)),
            file(i + 1),
        );
    }
    c.objects.insert(
        key("files", "latest"),
        Object::Symlink {
            target: "d0/f0000".into(),
        },
    );
    c
}

/// Writes generation `name` with both its catalog and its index (built on
/// `prev` with `changed`), and opens it both ways.
fn both(
    layout: &Layout,
    name: &str,
    c: &Catalog,
    prev: Option<&str>,
    changed: Option<&BTreeSet<ObjectKey>>,
) -> (GenRead, GenRead) {
    let dir = layout.gen(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(GEN_INDEX), c.to_bytes()).unwrap();
    let by_catalog = GenRead::open(layout, name).unwrap();
    assert!(matches!(by_catalog.keys, Keys::Catalog(_)));
    let prev = prev.map(|p| layout.gen(p));
    // The index is written from a catalog read by key: here over an
    // empty applied catalog (a whole next catalog).
    let fixture = crate::delta::Fixture::new(&Catalog::default());
    write_index(prev.as_deref(), &dir, &fixture.catalogs(c), changed).unwrap();
    let by_index = GenRead::open(layout, name).unwrap();
    assert!(matches!(by_index.keys, Keys::Index { .. }));
    (by_catalog, by_index)
}

fn same(a: &GenRead, b: &GenRead, c: &Catalog) {
    assert_eq!(a.sources(), b.sources());
    assert_eq!(a.objects(), b.objects());
    assert_eq!(a.total_bytes(), b.total_bytes());
    for k in c.objects.keys() {
        assert_eq!(a.get(k).unwrap(), b.get(k).unwrap(), "{k}");
    }
    for k in [key("files", "nothing"), key("zz", "a"), key("files", "d1")] {
        assert_eq!(b.get(&k).unwrap(), None);
    }
    for (source, prefix, from) in [
        ("files", "", ""),
        ("files", "d1/", "d1/"),
        ("files", "d1/", "d1/f0500"),
        ("img", "repos/", "repos/"),
        ("img", "repos/r3/_tags/", "repos/r3/_tags/"),
        ("none", "", ""),
    ] {
        let x: Vec<_> = a.scan(source, prefix, from).map(Result::unwrap).collect();
        let y: Vec<_> = b.scan(source, prefix, from).map(Result::unwrap).collect();
        assert_eq!(x, y, "{source} {prefix} {from}");
    }
}

#[test]
fn the_index_answers_as_the_catalog_across_generations() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::new(dir.path());
    let mut c = catalog(400);
    let (a, b) = both(&layout, "g1", &c, None, None);
    same(&a, &b, &c);

    // A small delta: the base is the same file, the delta holds the changes.
    let mut changed = BTreeSet::new();
    for i in [3u64, 40, 41, 399] {
        let k = key("files", &format!("d{}/f{i:04}", i % 13));
        c.objects.insert(k.clone(), file(10_000 + i));
        changed.insert(k);
    }
    let gone = key("img", "repos/r0/_tags/t0");
    c.objects.remove(&gone);
    changed.insert(gone.clone());
    let added = key("files", "new/x");
    c.objects.insert(added.clone(), file(5));
    changed.insert(added);
    let (a, b) = both(&layout, "g2", &c, Some("g1"), Some(&changed));
    same(&a, &b, &c);
    assert_eq!(b.get(&gone).unwrap(), None);
    let Keys::Index { view, .. } = &b.keys else {
        unreachable!()
    };
    assert_eq!(view.delta().entries(), 6);
    use std::os::unix::fs::MetadataExt;
    let ino = |g: &str| {
        std::fs::metadata(layout.gen(g).join(INDEX_BASE))
            .unwrap()
            .ino()
    };
    assert_eq!(ino("g1"), ino("g2"), "the base is linked, not rewritten");

    // A second delta builds on the first.
    let mut changed = BTreeSet::new();
    let k = key("files", "d3/f0003");
    c.objects.remove(&k);
    changed.insert(k);
    let (a, b) = both(&layout, "g3", &c, Some("g2"), Some(&changed));
    same(&a, &b, &c);

    // A delta over 1/16 of the base: a new base, an empty delta.
    let mut changed = BTreeSet::new();
    for i in 0..200u64 {
        let k = key("files", &format!("d{}/f{i:04}", i % 13));
        c.objects.insert(k.clone(), file(20_000 + i));
        changed.insert(k);
    }
    let (a, b) = both(&layout, "g4", &c, Some("g3"), Some(&changed));
    same(&a, &b, &c);
    let Keys::Index { view, .. } = &b.keys else {
        unreachable!()
    };
    assert_eq!(view.delta().entries(), 0);
    assert_eq!(view.base().entries(), c.objects.len() as u64);
    assert_ne!(ino("g3"), ino("g4"));
}

#[test]
fn a_whole_index_is_written_without_a_previous_one() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::new(dir.path());
    let c = catalog(50);
    // The previous generation has only a catalog (written before the index).
    let g0 = layout.gen("g0");
    std::fs::create_dir_all(&g0).unwrap();
    std::fs::write(g0.join(GEN_INDEX), c.to_bytes()).unwrap();
    let changed = BTreeSet::from([key("files", "latest")]);
    let (a, b) = both(&layout, "g1", &c, Some("g0"), Some(&changed));
    same(&a, &b, &c);
}

/// A first import's index, written from its change list in key order,
/// is byte for byte the one written from the same catalog held in a map.
#[test]
fn a_first_import_writes_the_index_of_its_catalog_in_a_map() {
    let dir = tempfile::tempdir().unwrap();
    let c = catalog(300);
    let fixture = crate::delta::Fixture::new(&Catalog::default());
    let (sorted, whole) = (fixture.catalogs(&c), fixture.whole(&c));
    assert!(matches!(sorted.puts(), crate::delta::Puts::Sorted(_)));
    assert!(matches!(whole.puts(), crate::delta::Puts::Map(_)));
    let files = |name: &str, catalogs: &crate::delta::Catalogs<'_>| {
        let gen = dir.path().join(name);
        std::fs::create_dir_all(&gen).unwrap();
        write_index(None, &gen, catalogs, None).unwrap();
        let mut out = Vec::new();
        for e in std::fs::read_dir(&gen).unwrap() {
            let e = e.unwrap();
            out.push((e.file_name(), std::fs::read(e.path()).unwrap()));
        }
        out.sort();
        out
    };
    let (a, b) = (files("sorted", &sorted), files("whole", &whole));
    assert_eq!(a.len(), 3, "meta, base and delta");
    assert_eq!(a, b);
}

#[test]
fn a_damaged_index_is_an_error_never_a_wrong_answer() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::new(dir.path());
    let c = catalog(300);
    let (_, _) = both(&layout, "g1", &c, None, None);
    let base = layout.gen("g1").join(INDEX_BASE);
    let mut bytes = std::fs::read(&base).unwrap();
    bytes[100] ^= 0x20;
    std::fs::write(&base, bytes).unwrap();
    let g = GenRead::open(&layout, "g1").unwrap();
    let results: Vec<_> = c.objects.keys().map(|k| g.get(k)).collect();
    assert!(results
        .iter()
        .any(|r| matches!(r, Err(GenReadError::Index { .. }))));
    for (k, r) in c.objects.keys().zip(&results) {
        if let Ok(found) = r {
            assert_eq!(found.as_ref(), c.objects.get(k).map(held).as_ref());
        }
    }
}

#[test]
fn bytes_are_objects_by_digest_unless_the_generation_is_an_older_tree() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::new(dir.path());
    let c = catalog(20);
    let (old, new) = both(&layout, "g1", &c, None, None);
    let (k, f) = c.files().next().unwrap();
    let meta = FileMeta::from(f);
    assert_eq!(
        new.bytes_path(k, &meta),
        crate::objects::ObjectStore::new(&layout.objects()).path(&f.sha256)
    );
    let kind = c.sources[&k.source].name();
    assert_eq!(
        old.bytes_path(k, &meta),
        layout.gen("g1").join(kind).join(&k.source).join(&k.path)
    );
    assert!(crate::genread::in_object_store(&layout.gen("g1")).unwrap());
}
