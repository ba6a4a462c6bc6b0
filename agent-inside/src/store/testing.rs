//! Test helpers for the stores' checks: two generation directories (the
//! previous one and the one being built) written from catalogs and bytes,
//! and a [`BuildCtx`] over them.

use super::BuildCtx;
use crate::chunkstore::ChunkStore;
use crate::layout::Layout;
use crate::ranges::{ChunkSource, RangeIndex};
use ferry_protocol::catalog::{Catalog, Encoding, FileObject, Object, SourceKind};
use ferry_protocol::id::Sha256;
use ferry_protocol::path::ObjectKey;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Objects and their bytes, by key.
pub(crate) type Files = BTreeMap<ObjectKey, Vec<u8>>;

/// The catalog object of `bytes`.
pub(crate) fn object(bytes: &[u8]) -> Object {
    Object::File(FileObject {
        size: bytes.len() as u64,
        sha256: Sha256::of(bytes),
        executable: false,
        encoding: Encoding::Chunks(vec![]),
    })
}

/// The key `path` of `source`.
pub(crate) fn key(source: &str, path: &str) -> ObjectKey {
    ObjectKey {
        source: source.into(),
        path: path.into(),
    }
}

/// The catalog of `files`, all of source `source` of `kind`.
pub(crate) fn catalog(source: &str, kind: SourceKind, files: &Files) -> Catalog {
    let mut c = Catalog::default();
    c.sources.insert(source.into(), kind);
    for (k, b) in files {
        c.objects.insert(k.clone(), object(b));
    }
    c
}

/// The keys whose bytes differ between `prev` and `next`.
pub(crate) fn changed(prev: &Files, next: &Files) -> BTreeSet<ObjectKey> {
    prev.keys()
        .chain(next.keys())
        .filter(|k| prev.get(*k) != next.get(*k))
        .cloned()
        .collect()
}

fn write_gen(gen: &Path, dir: &str, files: &Files) {
    for (k, b) in files {
        let p = gen.join(dir).join(&k.source).join(&k.path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b).unwrap();
    }
}

/// Writes `prev` and `next` (under `dir` of a store) into two generations
/// in `root` and runs `f` with a context over them; `changed` as
/// [`BuildCtx::changed`]. A previous generation already at `root/prev` is
/// kept (a test may have built it with the store).
pub(crate) fn with_ctx<R>(
    root: &Path,
    dir: &str,
    (prev, next): (&Files, &Files),
    kind: SourceKind,
    changed: Option<&BTreeSet<ObjectKey>>,
    f: impl FnOnce(&BuildCtx<'_>) -> R,
) -> R {
    let (prev_gen, new_gen) = (root.join("prev"), root.join("next"));
    if !prev_gen.exists() {
        write_gen(&prev_gen, dir, prev);
    }
    let _ = std::fs::remove_dir_all(&new_gen);
    write_gen(&new_gen, dir, next);
    let layout = Layout::new(&root.join("state"));
    let objects = crate::objects::ObjectStore::new(&layout.objects());
    for b in next.values() {
        let p = objects.path(&Sha256::of(b));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b).unwrap();
    }
    let store = ChunkStore::new(&layout.chunks(), 1 << 20);
    let ranges = RangeIndex::empty();
    let chunks = ChunkSource {
        carried: None,
        store: &store,
        ranges: &ranges,
    };
    let progress = indicatif::ProgressBar::hidden();
    let missing = std::collections::HashSet::new();
    let (prev_cat, next_cat) = (catalog("s", kind, prev), catalog("s", kind, next));
    let fixture = crate::delta::Fixture::new(&prev_cat);
    let catalogs = fixture.catalogs(&next_cat);
    let cx = BuildCtx {
        layout: &layout,
        prev_gen: Some(&prev_gen),
        new_gen: &new_gen,
        objects: &objects,
        missing: &missing,
        prev_in_objects: false,
        prev: super::Prev(&prev_cat),
        next: &next_cat,
        catalogs: &catalogs,
        chunks: &chunks,
        progress: &progress,
        changed,
        reference_in_memory: crate::store::REFERENCE_IN_MEMORY,
    };
    f(&cx)
}
