//! Chunks as byte ranges of stored files.
//!
//! An object with `Encoding::Chunks` is the concatenation of its chunks, so
//! once its file is in a generation, its chunks are byte ranges of that file
//! (offsets follow from the chunk lengths in the catalog). The chunk store
//! keeps no copy of them: only the kept chunks that are not a range of a
//! stored file (recipe and expanded-form chunks of `Encoding::Rebuilt`
//! objects, and the chunks of a file `ferry-in scrub` moved out) stay in
//! `STATE/chunks/`; a patch's chunks are not kept at all
//! (`FileObject::held_chunks`, bundle-format §5.6). Every kept chunk of the
//! current catalog is therefore either in the chunk store or a range of a
//! current file, which is what the outside counts on when it decides what
//! to ship.
//!
//! A range is read like a chunk of the store: its bytes are checked against
//! the chunk's BLAKE3 id before anything uses them, so a rotten range is
//! named and never used to build an object.
//!
//! Where a chunk lies is read from the state database's chunk-use index
//! (`crate::db::Use`, kept by every apply's delta): [`RangeIndex::from_snapshot`]
//! for the chunks an import needs, [`store_only_among`] for the chunks its
//! changes touch, so neither walks the catalog. [`store_only`] (the whole
//! catalog) is for `recover` after an interrupted apply.

use crate::chunkstore::ChunkStore;
use crate::db::{Snapshot, Use};
use anyhow::Result;
use ferry_protocol::catalog::{Catalog, Encoding, FileObject, Object, SourceKind};
use ferry_protocol::id::{ChunkId, Sha256};
use ferry_protocol::path::ObjectKey;
use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Why a chunk could not be read from a range of a stored file.
#[derive(Debug, thiserror::Error)]
pub enum RangeError {
    /// The file is missing, shorter than the range, or cannot be read.
    #[error("chunk {id}: bytes {offset}..{end} of {path} cannot be read: {why}", end = .offset + *.len as u64, path = .path.display())]
    Unreadable {
        /// The chunk.
        id: ChunkId,
        /// The stored file.
        path: PathBuf,
        /// Where the range starts.
        offset: u64,
        /// Its length.
        len: u32,
        /// The I/O error.
        why: String,
    },
    /// The bytes of the range do not hash to the chunk's id.
    #[error(
        "chunk {id}: bytes {offset}..{end} of {path} are corrupt (bit rot?): they do not hash to \
         the chunk's id; run `ferry-in scrub` to quarantine the file, and have the outside re-ship it",
        end = .offset + *.len as u64, path = .path.display()
    )]
    Rotten {
        /// The chunk.
        id: ChunkId,
        /// The stored file.
        path: PathBuf,
        /// Where the range starts.
        offset: u64,
        /// Its length.
        len: u32,
    },
    /// No stored file holds the chunk.
    #[error("chunk {id} is neither in the chunk store nor a range of a stored file")]
    NotHeld {
        /// The chunk.
        id: ChunkId,
    },
}

impl RangeError {
    /// The chunk concerned.
    pub fn id(&self) -> ChunkId {
        match self {
            RangeError::Unreadable { id, .. }
            | RangeError::Rotten { id, .. }
            | RangeError::NotHeld { id } => *id,
        }
    }
}

/// Where a chunk lies in a stored file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The object whose file holds it.
    pub key: ObjectKey,
    /// The file.
    pub path: PathBuf,
    /// Offset of the chunk's first byte.
    pub offset: u64,
    /// The chunk's length.
    pub len: u32,
}

/// `<store>/<source>/<path>` of an object in a generation directory (each
/// store keeps its objects under the name of its source kind).
pub fn object_rel(catalog: &Catalog, key: &ObjectKey) -> Option<PathBuf> {
    let kind = catalog.sources.get(&key.source)?;
    Some(Path::new(kind.name()).join(&key.source).join(&key.path))
}

/// Where a generation's files are: the object store (by SHA-256), or the
/// tree of a generation of an older ferry-in.
#[derive(Clone, Copy, Debug)]
pub enum Files<'a> {
    /// The object store (`crate::objects`).
    Objects(&'a crate::objects::ObjectStore),
    /// A generation directory's tree, `<store>/<source>/<path>`.
    Tree(&'a Path),
}

impl<'a> Files<'a> {
    /// Where the files of the generation in `gen` are: the object store, or
    /// the tree of a generation of an older ferry-in.
    pub(crate) fn of_gen(
        gen: &'a Path,
        objects: &'a crate::objects::ObjectStore,
    ) -> Result<Self, crate::genread::GenReadError> {
        Ok(if crate::genread::in_object_store(gen)? {
            Files::Objects(objects)
        } else {
            Files::Tree(gen)
        })
    }

    /// Where the file at `key` with digest `sha` is (`None`: a source
    /// `sources` does not have, in a tree).
    pub fn path(
        &self,
        sources: &BTreeMap<String, SourceKind>,
        key: &ObjectKey,
        sha: &Sha256,
    ) -> Option<PathBuf> {
        match self {
            Files::Objects(o) => Some(o.path(sha)),
            Files::Tree(dir) => rel_in(sources, key).map(|rel| dir.join(rel)),
        }
    }
}

/// The chunks of `f` that are ranges of its file, with their offsets;
/// empty unless it is carried as `Encoding::Chunks`.
pub fn ranges_of(f: &FileObject) -> impl Iterator<Item = (ChunkId, u64, u32)> + '_ {
    let refs = match &f.encoding {
        Encoding::Chunks(refs) => refs.as_slice(),
        Encoding::Rebuilt(_) => &[],
    };
    refs.iter().scan(0u64, |offset, r| {
        let at = *offset;
        *offset += r.len as u64;
        Some((r.id, at, r.len))
    })
}

/// Reads bytes `offset..offset+len` of the file at `path` and checks that
/// they hash to `id`.
pub fn read_range(path: &Path, id: &ChunkId, offset: u64, len: u32) -> Result<Vec<u8>, RangeError> {
    let unreadable = |why: String| RangeError::Unreadable {
        id: *id,
        path: path.to_path_buf(),
        offset,
        len,
        why,
    };
    let file = std::fs::File::open(path).map_err(|e| unreadable(e.to_string()))?;
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, offset)
        .map_err(|e| unreadable(e.to_string()))?;
    if ChunkId::of(&buf) != *id {
        return Err(RangeError::Rotten {
            id: *id,
            path: path.to_path_buf(),
            offset,
            len,
        });
    }
    Ok(buf)
}

/// Where the chunks an import needs lie in the generation it builds on.
#[derive(Debug, Default)]
pub struct RangeIndex {
    at: HashMap<ChunkId, Vec<Location>>,
}

impl RangeIndex {
    /// An index that holds nothing.
    pub fn empty() -> Self {
        RangeIndex::default()
    }

    /// The locations, in `files` (of the generation serving `catalog`), of
    /// the chunks in `wanted`: every file of the catalog carried as chunks
    /// that holds one. Files are not opened here.
    pub fn build(catalog: &Catalog, files: Files<'_>, wanted: &HashSet<ChunkId>) -> RangeIndex {
        let mut at: HashMap<ChunkId, Vec<Location>> = HashMap::new();
        if wanted.is_empty() {
            return RangeIndex { at };
        }
        for (key, f) in catalog.files() {
            let Some(path) = files.path(&catalog.sources, key, &f.sha256) else {
                continue;
            };
            for (id, offset, len) in ranges_of(f) {
                if wanted.contains(&id) {
                    at.entry(id).or_default().push(Location {
                        key: key.clone(),
                        path: path.clone(),
                        offset,
                        len,
                    });
                }
            }
        }
        RangeIndex { at }
    }

    /// The locations, in `files` (of the generation serving the catalog of
    /// `snap`), of the chunks in `wanted`, from the stored chunk index: rows
    /// read in proportion to `wanted`. Files are not opened here.
    pub fn from_snapshot(
        snap: &Snapshot,
        files: Files<'_>,
        wanted: &HashSet<ChunkId>,
    ) -> Result<RangeIndex> {
        let sources = snap.sources()?;
        let mut at: HashMap<ChunkId, Vec<Location>> = HashMap::new();
        for id in wanted {
            for u in snap.uses(id)? {
                let Use::Range { key, offset, len } = u else {
                    continue;
                };
                let Some(Object::File(f)) = snap.get(&key)? else {
                    continue;
                };
                let Some(path) = files.path(&sources, &key, &f.sha256) else {
                    continue;
                };
                at.entry(*id).or_default().push(Location {
                    path,
                    key,
                    offset,
                    len,
                });
            }
        }
        Ok(RangeIndex { at })
    }

    /// Whether some stored file is said to hold `id` (nothing is read).
    pub fn contains(&self, id: &ChunkId) -> bool {
        self.at.contains_key(id)
    }

    /// Reads chunk `id` from the first of its ranges whose bytes hash to it.
    /// When none does, the error is the first range's.
    pub fn read(&self, id: &ChunkId) -> Result<Vec<u8>, RangeError> {
        let mut first = None;
        for l in self.at.get(id).into_iter().flatten() {
            match read_range(&l.path, id, l.offset, l.len) {
                Ok(b) => return Ok(b),
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
        }
        Err(first.unwrap_or(RangeError::NotHeld { id: *id }))
    }
}

/// Every chunk that is a range of a file of `catalog` carried as chunks
/// (whether or not the file is on disk).
pub fn range_ids(catalog: &Catalog) -> HashSet<ChunkId> {
    catalog
        .files()
        .flat_map(|(_, f)| ranges_of(f).map(|(id, _, _)| id))
        .collect()
}

/// The chunks of `catalog` that the chunk store must hold: those that are
/// not a range of a file of `files` (of the generation serving `catalog`;
/// `None`: not built yet, every file counts as there). A file counts when
/// it is there with the catalog's size; its bytes are not read (`scrub`
/// does that).
pub fn store_only(catalog: &Catalog, files: Option<Files<'_>>) -> HashSet<ChunkId> {
    let present = |key: &ObjectKey, f: &FileObject| {
        let Some(files) = files else { return true };
        files
            .path(&catalog.sources, key, &f.sha256)
            .and_then(|p| p.metadata().ok())
            .is_some_and(|m| m.is_file() && m.len() == f.size)
    };
    let mut ranges = HashSet::new();
    for (key, f) in catalog.files() {
        if matches!(f.encoding, Encoding::Chunks(_)) && present(key, f) {
            ranges.extend(ranges_of(f).map(|(id, _, _)| id));
        }
    }
    catalog
        .files()
        .flat_map(|(_, f)| f.held_chunks().map(|c| c.id))
        .filter(|id| !ranges.contains(id))
        .collect()
}

/// How the catalog an apply is about to commit uses chunks, as the stored
/// catalog (a [`Snapshot`] of the one before) changed by the apply's
/// changes: the uses by the changed keys are dropped, those of the objects
/// put added. Built from the changes only.
#[derive(Debug, Default)]
pub struct Overlay {
    changed: HashSet<ObjectKey>,
    added: HashMap<ChunkId, Vec<Use>>,
}

impl Overlay {
    /// No change: the snapshot is the catalog (after the commit).
    pub fn none() -> Overlay {
        Overlay::default()
    }

    /// The uses `changes` (each an object put, or `None`: the key removed;
    /// `(c.key(), c.object())` of a change) remove (every changed key's) and add (each put file's).
    pub fn of<K: Borrow<ObjectKey>, O: Borrow<Object>>(
        changes: impl Iterator<Item = (K, Option<O>)>,
    ) -> Overlay {
        let mut o = Overlay::default();
        for (key, object) in changes {
            let key = key.borrow();
            o.changed.insert(key.clone());
            if let Some(Object::File(f)) = object.as_ref().map(|o| o.borrow()) {
                for (id, u) in crate::db::uses_of(key, f) {
                    o.added.entry(id).or_default().push(u);
                }
            }
        }
        o
    }

    /// [`Overlay::of`] good for [`Overlay::uses`] of the chunks of `ids`
    /// only: the changed keys that use one of them in `snap`, and the uses
    /// of them the puts add. Its size is that of their uses, not of the
    /// change (a first import's change is the whole catalog).
    pub fn of_among<K: Borrow<ObjectKey>, O: Borrow<Object>>(
        snap: &Snapshot,
        ids: &HashSet<ChunkId>,
        changes: impl Iterator<Item = (K, Option<O>)>,
        is_changed: impl Fn(&ObjectKey) -> bool,
    ) -> Result<Overlay> {
        let mut o = Overlay::default();
        if ids.is_empty() {
            return Ok(o);
        }
        for id in ids {
            for u in snap.uses(id)? {
                if is_changed(u.key()) {
                    o.changed.insert(u.key().clone());
                }
            }
        }
        for (key, object) in changes {
            let key = key.borrow();
            if let Some(Object::File(f)) = object.as_ref().map(|o| o.borrow()) {
                for (id, u) in crate::db::uses_of(key, f) {
                    if ids.contains(&id) {
                        o.added.entry(id).or_default().push(u);
                    }
                }
            }
        }
        Ok(o)
    }

    /// The uses of `id` in the catalog `snap` changed by this overlay.
    pub fn uses(&self, snap: &Snapshot, id: &ChunkId) -> Result<Vec<Use>> {
        let mut out: Vec<Use> = snap
            .uses(id)?
            .into_iter()
            .filter(|u| !self.changed.contains(u.key()))
            .collect();
        out.extend(self.added.get(id).into_iter().flatten().cloned());
        Ok(out)
    }
}

/// Every chunk whose place (chunk store, range, or neither) `changes` may
/// change: the chunks of the objects they replace or remove (as `snap`, the
/// catalog before, holds them) and of the objects they put.
pub fn touched_chunks<K: Borrow<ObjectKey>, O: Borrow<Object>>(
    snap: &Snapshot,
    changes: impl Iterator<Item = (K, Option<O>)>,
) -> Result<HashSet<ChunkId>> {
    let mut out = HashSet::new();
    for (key, object) in changes {
        if let Some(Object::File(f)) = snap.get(key.borrow())? {
            out.extend(f.chunks().map(|r| r.id));
        }
        if let Some(Object::File(f)) = object.as_ref().map(|o| o.borrow()) {
            out.extend(f.chunks().map(|r| r.id));
        }
    }
    Ok(out)
}

/// Of the chunks the objects `puts` keep that are not ranges of a file
/// (those the chunk store must hold, `store_only`) over an empty catalog
/// before (a first import): the chunks a file keeps otherwise (recipe and
/// expanded-form chunks) that no file of the puts has as a range. Holds
/// only those chunks (two passes over the puts), not every chunk of them.
pub fn store_only_of_puts<K, O: Borrow<Object>>(
    puts: impl Iterator<Item = (K, O)> + Clone,
) -> HashSet<ChunkId> {
    let mut keep = HashSet::new();
    for (_, o) in puts.clone() {
        if let Object::File(f) = o.borrow() {
            if matches!(f.encoding, Encoding::Rebuilt(_)) {
                keep.extend(f.held_chunks().map(|c| c.id));
            }
        }
    }
    if !keep.is_empty() {
        for (_, o) in puts {
            if let Object::File(f) = o.borrow() {
                for (id, _, _) in ranges_of(f) {
                    keep.remove(&id);
                }
            }
        }
    }
    keep
}

/// Of `candidates`, the chunks the chunk store must hold for the catalog
/// `snap` changed by `overlay`: kept by an object and not a range of a
/// file (of `gen`, the generation's files and its sources, when given,
/// with `overlay` empty and `snap` its catalog: a file counts when it is
/// there with the range inside it; `None`: every file counts).
/// [`store_only`] restricted to the candidates, reading only their rows.
pub fn store_only_among(
    snap: &Snapshot,
    overlay: &Overlay,
    candidates: &HashSet<ChunkId>,
    gen: Option<(Files<'_>, &BTreeMap<String, SourceKind>)>,
) -> Result<HashSet<ChunkId>> {
    let mut keep = HashSet::new();
    for id in candidates {
        let uses = overlay.uses(snap, id)?;
        let mut is_range = false;
        for u in &uses {
            is_range |= match (u, gen) {
                (Use::Range { .. }, None) => true,
                (Use::Range { key, offset, len }, Some((files, sources))) => {
                    let Some(Object::File(f)) = snap.get(key)? else {
                        continue;
                    };
                    files.path(sources, key, &f.sha256).is_some_and(|p| {
                        p.metadata()
                            .is_ok_and(|m| m.is_file() && m.len() >= offset + *len as u64)
                    })
                }
                (Use::Held { .. }, _) => false,
            };
            if is_range {
                break;
            }
        }
        if !uses.is_empty() && !is_range {
            keep.insert(*id);
        }
    }
    Ok(keep)
}

/// Of `candidates`, those the catalog `snap` uses (by an object, as a range
/// or kept otherwise): the only chunks the store may hold, with the ones an
/// apply adds.
pub fn used_in(snap: &Snapshot, candidates: &HashSet<ChunkId>) -> Result<HashSet<ChunkId>> {
    let mut out = HashSet::new();
    for id in candidates {
        if !snap.uses(id)?.is_empty() {
            out.insert(*id);
        }
    }
    Ok(out)
}

fn rel_in(sources: &BTreeMap<String, SourceKind>, key: &ObjectKey) -> Option<PathBuf> {
    let kind = sources.get(&key.source)?;
    Some(Path::new(kind.name()).join(&key.source).join(&key.path))
}

/// Where a build reads chunks: the volumes of the bundle being applied
/// (when it came with volumes, `crate::carried`), then the chunk store (with
/// its staging area), then the ranges of the generation it builds on.
/// Every read is checked against the chunk's id.
pub struct ChunkSource<'a> {
    /// The chunks the bundle's volumes carry, read where they lie.
    pub carried: Option<&'a crate::carried::Carried<'a>>,
    /// The chunk store, usually with a staging area.
    pub store: &'a ChunkStore,
    /// The ranges of the previous generation's files.
    pub ranges: &'a RangeIndex,
}

impl ChunkSource<'_> {
    /// Whether the bundle carries `id`, the store (or staging) holds it or
    /// a file is said to.
    pub fn contains(&self, id: &ChunkId) -> bool {
        self.carried.is_some_and(|c| c.contains(id))
            || self.store.contains(id)
            || self.ranges.contains(id)
    }

    /// Chunk `id`, checked: from the bundle's volumes when it carries it
    /// (a carried chunk that does not check is an error: the bundle is
    /// bad), else from the store, or else (or when the store's copy is
    /// rotten) from a range. When both fail, the store's error.
    pub fn get(&self, id: &ChunkId) -> Result<Vec<u8>> {
        if let Some(read) = self.carried.and_then(|c| c.get(id)) {
            return read;
        }
        match self.store.get_if_held(id) {
            Ok(Some(b)) => Ok(b),
            Ok(None) => Ok(self.ranges.read(id)?),
            Err(e) => self.ranges.read(id).map_err(|_| e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_protocol::catalog::{ChunkRef, Object, SourceKind};
    use ferry_protocol::id::Sha256;

    fn catalog_of(files: &[(&str, &[&[u8]])]) -> Catalog {
        let mut c = Catalog::default();
        c.sources.insert("tools".into(), SourceKind::Files);
        for (path, chunks) in files {
            let refs = chunks
                .iter()
                .map(|b| ChunkRef {
                    id: ChunkId::of(b),
                    len: b.len() as u32,
                })
                .collect();
            let all = chunks.concat();
            c.objects.insert(
                ObjectKey {
                    source: "tools".into(),
                    path: path.to_string(),
                },
                Object::File(FileObject {
                    size: all.len() as u64,
                    sha256: Sha256::of(&all),
                    executable: false,
                    encoding: Encoding::Chunks(refs),
                }),
            );
        }
        c
    }

    fn write_gen(dir: &Path, files: &[(&str, &[&[u8]])]) {
        for (path, chunks) in files {
            let p = dir.join("files/tools").join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, chunks.concat()).unwrap();
        }
    }

    #[test]
    fn chunks_are_read_from_their_ranges_and_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let files: &[(&str, &[&[u8]])] = &[("a", &[b"one", b"two22"]), ("b", &[b"three"])];
        write_gen(tmp.path(), files);
        let c = catalog_of(files);
        let wanted: HashSet<ChunkId> = [ChunkId::of(b"two22"), ChunkId::of(b"three")].into();
        let idx = RangeIndex::build(&c, Files::Tree(tmp.path()), &wanted);
        assert!(
            !idx.contains(&ChunkId::of(b"one")),
            "not wanted, not indexed"
        );
        assert_eq!(idx.read(&ChunkId::of(b"two22")).unwrap(), b"two22");
        assert_eq!(idx.read(&ChunkId::of(b"three")).unwrap(), b"three");
        assert!(matches!(
            idx.read(&ChunkId::of(b"one")),
            Err(RangeError::NotHeld { .. })
        ));
        assert_eq!(range_ids(&c).len(), 3);
        assert!(store_only(&c, Some(Files::Tree(tmp.path()))).is_empty());
    }

    /// Over an empty catalog before, the chunks to keep found from the
    /// puts are those `store_only` finds of the whole catalog: a recipe's
    /// and an expanded form's chunks, but not one that is also a range.
    #[test]
    fn the_chunks_a_first_import_keeps_are_those_of_the_whole_catalog() {
        use ferry_protocol::catalog::{Expanded, Rebuilt};
        let files: &[(&str, &[&[u8]])] = &[("a", &[b"one", b"two22"]), ("b", &[b"three"])];
        let mut c = catalog_of(files);
        assert!(store_only_of_puts(c.objects.iter()).is_empty());
        let r = |b: &[u8]| ChunkRef {
            id: ChunkId::of(b),
            len: b.len() as u32,
        };
        c.objects.insert(
            ObjectKey {
                source: "tools".into(),
                path: "r".into(),
            },
            Object::File(FileObject {
                size: 9,
                sha256: Sha256::of(b"rebuilt!!"),
                executable: false,
                encoding: Encoding::Rebuilt(Box::new(Rebuilt {
                    recipe: vec![r(b"recipe")],
                    expanded_len: 8,
                    expanded_blake3: [0; 32],
                    // "three" is also a range of b: not kept.
                    expanded: Expanded::Chunks(vec![r(b"exp"), r(b"three")]),
                })),
            }),
        );
        let kept = store_only_of_puts(c.objects.iter());
        assert_eq!(kept, store_only(&c, None));
        assert_eq!(
            kept,
            [ChunkId::of(b"recipe"), ChunkId::of(b"exp")].into(),
            "recipe and expanded-form chunks, not a range"
        );
    }

    #[test]
    fn a_rotten_range_is_refused_and_another_copy_is_used() {
        let tmp = tempfile::tempdir().unwrap();
        let files: &[(&str, &[&[u8]])] = &[("a", &[b"head", b"shared"]), ("b", &[b"shared"])];
        write_gen(tmp.path(), files);
        let c = catalog_of(files);
        let id = ChunkId::of(b"shared");
        // Rot in a's copy: the read falls back to b's.
        std::fs::write(tmp.path().join("files/tools/a"), b"headsharEd").unwrap();
        let idx = RangeIndex::build(&c, Files::Tree(tmp.path()), &[id].into());
        assert_eq!(idx.read(&id).unwrap(), b"shared");
        // Rot in both: refused, naming the chunk and the first range.
        std::fs::write(tmp.path().join("files/tools/b"), b"sharEd").unwrap();
        let e = idx.read(&id).unwrap_err();
        assert!(
            matches!(&e, RangeError::Rotten { id: i, offset: 4, len: 6, .. } if *i == id),
            "{e}"
        );
        assert!(e.to_string().contains("ferry-in scrub"), "{e}");
        // A missing file: unreadable, and its chunks are no longer ranges.
        std::fs::remove_file(tmp.path().join("files/tools/b")).unwrap();
        std::fs::remove_file(tmp.path().join("files/tools/a")).unwrap();
        assert!(matches!(idx.read(&id), Err(RangeError::Unreadable { .. })));
        assert_eq!(store_only(&c, Some(Files::Tree(tmp.path()))).len(), 2);
        assert!(store_only(&c, None).is_empty());
    }
}
