use super::*;
use crate::chunkstore::ChunkStore;
use crate::db::{CatalogUpdate, Db};
use crate::layout::{Layout, GEN_FILES};
use crate::ranges::{ChunkSource, RangeIndex};
use crate::store::{materialize, BuildCtx};
use ferry_protocol::catalog::Sums;
use ferry_protocol::catalog::{
    Catalog, Change, ChunkRef, Encoding, FileObject, Object, SourceKind,
};
use ferry_protocol::id::ChunkId;
use ferry_protocol::path::ObjectKey;
use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;

fn key(i: usize) -> ObjectKey {
    ObjectKey {
        source: "mirror".into(),
        path: format!("d{:02}/f{i:05}", i / 100),
    }
}

fn bytes(i: usize, version: u8) -> Vec<u8> {
    format!("object {i} version {version}").into_bytes()
}

/// A file of one chunk, which `chunks` receives.
fn file(chunks: &ChunkStore, b: &[u8]) -> Object {
    let id = ChunkId::of(b);
    let (codec, stored) = ferry_protocol::codec::encode(b, 3);
    chunks.put(&id, codec, b.len() as u32, &stored).unwrap();
    Object::File(FileObject {
        size: b.len() as u64,
        sha256: Sha256::of(b),
        executable: false,
        encoding: Encoding::Chunks(vec![ChunkRef {
            id,
            len: b.len() as u32,
        }]),
    })
}

/// The object files (not temporary ones) of the store.
fn object_files(store: &ObjectStore) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for fan in std::fs::read_dir(store.root())
        .into_iter()
        .flatten()
        .flatten()
    {
        for e in std::fs::read_dir(fan.path()).unwrap().flatten() {
            out.insert(e.file_name().to_string_lossy().into_owned());
        }
    }
    out
}

/// Builds generation `name` of `next` over `prev` (the generation before,
/// if any) with its path index, as `apply` does; returns the bytes written.
fn build(
    layout: &Layout,
    chunks: &ChunkStore,
    (prev, next): (&Catalog, &Catalog),
    prev_gen: Option<&str>,
    name: &str,
) -> u64 {
    build_missing(
        layout,
        chunks,
        (prev, next),
        prev_gen,
        name,
        &Default::default(),
    )
}

/// [`build`], with the objects `scrub` recorded `missing`.
fn build_missing(
    layout: &Layout,
    chunks: &ChunkStore,
    (prev, next): (&Catalog, &Catalog),
    prev_gen: Option<&str>,
    name: &str,
    missing: &std::collections::HashSet<Sha256>,
) -> u64 {
    let objects = ObjectStore::new(&layout.objects());
    let ranges = RangeIndex::empty();
    let source = ChunkSource {
        carried: None,
        store: chunks,
        ranges: &ranges,
    };
    let progress = indicatif::ProgressBar::hidden();
    let prev_dir = prev_gen.map(|g| layout.gen(g));
    let new_gen = layout.gen(name);
    std::fs::create_dir_all(&new_gen).unwrap();
    let fixture = crate::delta::Fixture::new(prev);
    let catalogs = fixture.catalogs(next);
    let cx = BuildCtx {
        layout,
        prev_gen: prev_dir.as_deref(),
        new_gen: &new_gen,
        objects: &objects,
        missing,
        prev_in_objects: prev_dir.is_some(),
        prev: crate::store::Prev(prev),
        next,
        catalogs: &catalogs,
        chunks: &source,
        progress: &progress,
        changed: None,
        reference_in_memory: crate::store::REFERENCE_IN_MEMORY,
    };
    let written = materialize(&cx, SourceKind::Files, GEN_FILES).unwrap();
    crate::genread::write_index(prev_dir.as_deref(), &new_gen, &catalogs, None).unwrap();
    written
}

fn commit(db: &Db, seq: u64, update: CatalogUpdate<'_>) {
    crate::db::commit_test_apply(db, seq, update);
}

fn point_current(layout: &Layout, name: &str) {
    let link = layout.current_link();
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(std::path::Path::new("gens").join(name), &link).unwrap();
}

struct Setup {
    _tmp: tempfile::TempDir,
    layout: Layout,
    chunks: ChunkStore,
    db: Db,
    first: Catalog,
    changes: Vec<Change>,
    next: Catalog,
}

/// A first generation of 1,000 objects committed and current, and a delta
/// of 10 objects put with new bytes (8 replaced, 2 added) and 2 removed.
fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path());
    let chunks = ChunkStore::new(&layout.chunks(), 1 << 20);
    let db = Db::open(&layout.db()).unwrap();
    let mut first = Catalog::default();
    first.sources.insert("mirror".into(), SourceKind::Files);
    for i in 0..1000 {
        first.objects.insert(key(i), file(&chunks, &bytes(i, 0)));
    }
    build(&layout, &chunks, (&Catalog::default(), &first), None, "g1");
    commit(&db, 1, CatalogUpdate::Whole(&first));
    point_current(&layout, "g1");
    let mut changes: Vec<Change> = (0..8)
        .map(|i| Change::Put {
            key: key(i * 100),
            object: file(&chunks, &bytes(i * 100, 1)),
        })
        .collect();
    changes.extend([1000, 1001].map(|i| Change::Put {
        key: key(i),
        object: file(&chunks, &bytes(i, 0)),
    }));
    changes.extend([7, 8].map(|i| Change::Remove { key: key(i) }));
    changes.sort_by(|a, b| a.key().cmp(b.key()));
    let next = first.apply(&first.sources, &changes).unwrap();
    Setup {
        _tmp: tmp,
        layout,
        chunks,
        db,
        first,
        changes,
        next,
    }
}

#[test]
fn a_ten_object_change_writes_ten_objects_and_ten_counts() {
    let s = setup();
    let store = ObjectStore::new(&s.layout.objects());
    let before = object_files(&store);
    assert_eq!(before.len(), 1000);
    assert_eq!(s.db.object_ref_counts().unwrap().len(), 1000);
    let unchanged = store.path(&Sha256::of(&bytes(500, 0)));
    let ino = std::fs::metadata(&unchanged).unwrap().ino();

    let written = build(&s.layout, &s.chunks, (&s.first, &s.next), Some("g1"), "g2");
    let after = object_files(&store);
    let new: Vec<_> = after.difference(&before).collect();
    assert_eq!(new.len(), 10, "10 objects written, no other");
    let put_bytes: u64 = (0..8)
        .map(|i| bytes(i * 100, 1).len() as u64)
        .chain([1000, 1001].map(|i| bytes(i, 0).len() as u64))
        .sum();
    assert_eq!(written, put_bytes);
    assert_eq!(
        std::fs::metadata(&unchanged).unwrap().ino(),
        ino,
        "an unchanged object is not touched"
    );

    let counts_before: BTreeSet<_> = s.db.object_ref_counts().unwrap().into_iter().collect();
    let update = CatalogUpdate::Delta {
        sources: &s.first.sources,
        changes: &s.changes,
        sums: Sums::of(s.next.objects.values()),
    };
    commit(&s.db, 2, update);
    let counts_after: BTreeSet<_> = s.db.object_ref_counts().unwrap().into_iter().collect();
    assert_eq!(counts_after.difference(&counts_before).count(), 10);
    assert_eq!(counts_before.difference(&counts_after).count(), 10);
    assert_eq!(s.db.released_objects().unwrap().len(), 10);

    // After the switch the 10 released objects go (8 replaced, 2 removed).
    point_current(&s.layout, "g2");
    remove_released(&store, &s.db, 2, false).unwrap();
    assert_eq!(object_files(&store).len(), 1000);
    assert!(s.db.released_objects().unwrap().is_empty());
    for (k, o) in &s.next.objects {
        let Object::File(f) = o else { unreachable!() };
        assert!(store.holds(&f.sha256, f.size), "{k}");
    }
}

#[test]
fn a_released_object_stays_for_the_kept_previous_generation() {
    let s = setup();
    let store = ObjectStore::new(&s.layout.objects());
    build(&s.layout, &s.chunks, (&s.first, &s.next), Some("g1"), "g2");
    let update = CatalogUpdate::Delta {
        sources: &s.first.sources,
        changes: &s.changes,
        sums: Sums::of(s.next.objects.values()),
    };
    commit(&s.db, 2, update);
    remove_released(&store, &s.db, 2, true).unwrap();
    assert_eq!(
        object_files(&store).len(),
        1010,
        "g1 is kept: its objects stay"
    );
    remove_released(&store, &s.db, 3, true).unwrap();
    assert_eq!(object_files(&store).len(), 1000);
}

#[test]
fn identical_files_under_two_paths_are_stored_once() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path());
    let chunks = ChunkStore::new(&layout.chunks(), 1 << 20);
    let db = Db::open(&layout.db()).unwrap();
    let mut c = Catalog::default();
    c.sources.insert("mirror".into(), SourceKind::Files);
    for i in 0..3 {
        c.objects.insert(key(i), file(&chunks, b"the same bytes"));
    }
    build(&layout, &chunks, (&Catalog::default(), &c), None, "g1");
    commit(&db, 1, CatalogUpdate::Whole(&c));
    let store = ObjectStore::new(&layout.objects());
    assert_eq!(object_files(&store).len(), 1);
    assert_eq!(db.object_refs(&Sha256::of(b"the same bytes")).unwrap(), 3);
    let gen = crate::genread::GenRead::open(&layout, "g1").unwrap();
    assert!(!gen.has_tree() && !layout.gen("g1").join(GEN_FILES).exists());
    for i in 0..3 {
        let f = gen.file(&key(i)).unwrap().unwrap();
        let p = gen.bytes_path(&key(i), &f);
        assert_eq!(std::fs::read(p).unwrap(), b"the same bytes");
    }
}

#[test]
fn a_delta_build_writes_no_tree_and_looks_for_no_unchanged_object() {
    let s = setup();
    let store = ObjectStore::new(&s.layout.objects());
    // An unchanged object gone behind the database's back is not looked
    // for (its count says it is held): the build does not rebuild it.
    let gone = match s.first.objects.get(&key(5)) {
        Some(Object::File(f)) => f.sha256,
        _ => unreachable!(),
    };
    std::fs::remove_file(store.path(&gone)).unwrap();
    let written = build(&s.layout, &s.chunks, (&s.first, &s.next), Some("g1"), "g2");
    let put_bytes: u64 = (0..8)
        .map(|i| bytes(i * 100, 1).len() as u64)
        .chain([1000, 1001].map(|i| bytes(i, 0).len() as u64))
        .sum();
    assert_eq!(written, put_bytes, "the 10 put objects only");
    assert!(!store.path(&gone).exists());
    let g2 = s.layout.gen("g2");
    let mut names: Vec<String> = std::fs::read_dir(&g2)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["index.base", "index.delta", "index.meta"]);
    // Once `scrub` records it missing, the next build rebuilds it.
    let missing = [gone].into_iter().collect();
    let written = build_missing(
        &s.layout,
        &s.chunks,
        (&s.first, &s.next),
        Some("g1"),
        "g3",
        &missing,
    );
    assert_eq!(written, bytes(5, 0).len() as u64, "the missing object only");
    assert_eq!(std::fs::read(store.path(&gone)).unwrap(), bytes(5, 0));
}

#[test]
fn a_crash_before_the_commit_leaves_the_old_generation_and_recover_sweeps() {
    let s = setup();
    let store = ObjectStore::new(&s.layout.objects());
    // The apply built its generation (objects written, synced) and stopped
    // before the database commit; a temporary object was left too.
    s.db.set_prune_pending().unwrap();
    let tmp_gen = s.layout.gens().join(".tmp-g2");
    std::fs::create_dir_all(&tmp_gen).unwrap();
    build(
        &s.layout,
        &s.chunks,
        (&s.first, &s.next),
        Some("g1"),
        ".tmp-g2",
    );
    let (_, leftover) = store.create_tmp(&Sha256::of(b"half")).unwrap();
    assert_eq!(object_files(&store).len(), 1011);
    assert_eq!(s.layout.current_gen_name().as_deref(), Some("g1"));

    let limits = ferry_protocol::limits::ReceiverLimits::default();
    crate::apply::recover(&s.layout, &s.db, &limits, &crate::policy::Policy::default()).unwrap();
    assert_eq!(s.layout.current_gen_name().as_deref(), Some("g1"));
    assert!(!tmp_gen.exists() && !leftover.exists());
    let left = object_files(&store);
    assert_eq!(
        left.len(),
        1000,
        "the objects of the uncommitted apply are gone"
    );
    for (k, o) in &s.first.objects {
        let Object::File(f) = o else { unreachable!() };
        assert!(left.contains(&f.sha256.to_hex()), "{k}");
    }
    assert!(!s.db.prune_pending().unwrap());
}

#[test]
fn counts_of_a_database_from_before_the_object_store_are_made_on_open() {
    let s = setup();
    drop(s.db);
    // What an older ferry-in left: the catalog, no counts.
    {
        let db = redb::Database::create(s.layout.db()).unwrap();
        let txn = db.begin_write().unwrap();
        txn.delete_table(crate::db::OBJECT_REFS_TABLE).unwrap();
        {
            let mut m = txn.open_table(crate::db::META_TABLE).unwrap();
            m.remove(crate::db::OBJECT_REFS_COUNTED).unwrap();
        }
        txn.commit().unwrap();
    }
    let db = Db::open(&s.layout.db()).unwrap();
    let counts = db.object_ref_counts().unwrap();
    assert_eq!(counts.len(), 1000);
    assert!(counts.iter().all(|(_, n)| *n == 1));
}

#[test]
fn the_next_import_over_an_older_tree_takes_its_files_in_by_links() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path());
    let chunks = ChunkStore::new(&layout.chunks(), 1 << 20);
    let mut first = Catalog::default();
    first.sources.insert("mirror".into(), SourceKind::Files);
    // What an older ferry-in left: a tree and its catalog, no objects.
    let g1 = layout.gen("g1");
    for i in 0..20 {
        first.objects.insert(key(i), file(&chunks, &bytes(i, 0)));
        let p = g1.join(GEN_FILES).join("mirror").join(key(i).path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes(i, 0)).unwrap();
    }
    std::fs::write(g1.join(crate::layout::GEN_INDEX), first.to_bytes()).unwrap();
    assert!(!crate::genread::in_object_store(&g1).unwrap());
    let changes = vec![Change::Put {
        key: key(3),
        object: file(&chunks, &bytes(3, 1)),
    }];
    let next = first.apply(&first.sources, &changes).unwrap();
    let objects = ObjectStore::new(&layout.objects());
    let ranges = RangeIndex::empty();
    let source = ChunkSource {
        carried: None,
        store: &chunks,
        ranges: &ranges,
    };
    let progress = indicatif::ProgressBar::hidden();
    let g2 = layout.gen("g2");
    std::fs::create_dir_all(&g2).unwrap();
    let fixture = crate::delta::Fixture::new(&first);
    let catalogs = fixture.catalogs(&next);
    let cx = BuildCtx {
        layout: &layout,
        prev_gen: Some(&g1),
        new_gen: &g2,
        objects: &objects,
        missing: &Default::default(),
        prev_in_objects: false,
        prev: crate::store::Prev(&first),
        next: &next,
        catalogs: &catalogs,
        chunks: &source,
        progress: &progress,
        changed: None,
        reference_in_memory: crate::store::REFERENCE_IN_MEMORY,
    };
    let written = materialize(&cx, SourceKind::Files, GEN_FILES).unwrap();
    assert_eq!(
        written,
        bytes(3, 1).len() as u64,
        "only the changed file is written"
    );
    assert_eq!(object_files(&objects).len(), 20);
    let tree_file = g1.join(GEN_FILES).join("mirror").join(key(5).path);
    let obj = objects.path(&Sha256::of(&bytes(5, 0)));
    assert_eq!(
        std::fs::metadata(tree_file).unwrap().ino(),
        std::fs::metadata(obj).unwrap().ino(),
        "an unchanged file is linked in, not copied"
    );
    assert!(
        !g2.join(GEN_FILES).exists(),
        "the new generation has no tree"
    );
}
