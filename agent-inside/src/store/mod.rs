//! Inside stores. Each ecosystem is one store behind the [`Store`] trait: it
//! checks the objects of its sources in the next catalog, then builds its
//! part of a new generation directory, reusing the previous generation where
//! objects did not change.

pub mod apt;
pub mod cargo;
pub mod files;
pub mod go;
pub mod helm;
pub mod npm;
pub mod oci;
mod order;
pub mod pypi;
pub mod pypi_meta;
mod rebuilt;
#[cfg(test)]
pub(crate) mod testing;
mod windowed;
pub mod yum;

use crate::delta::Catalogs;
use crate::ranges::ChunkSource;
use anyhow::{bail, Context, Result};
use ferry_protocol::catalog::{
    Catalog, ChunkRef, Encoding, Expanded, FileObject, Object, SourceKind,
};
use ferry_protocol::id::{Sha256, Sha256Hasher};
use ferry_protocol::path::ObjectKey;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// What a store needs to build its part of a generation.
pub struct BuildCtx<'a> {
    /// The state directory (for inside-only state such as a site key).
    pub layout: &'a crate::layout::Layout,
    /// The generation being replaced, if any.
    pub prev_gen: Option<&'a Path>,
    /// The directory of the generation being built.
    pub new_gen: &'a Path,
    /// The object store (`crate::objects`): new files are written there
    /// once by SHA-256 (the generation has no tree of them).
    pub objects: &'a crate::objects::ObjectStore,
    /// Digests `scrub` found missing or rotten in the object store (and
    /// moved out) that no apply has rebuilt since (`Db::missing_objects`):
    /// an unchanged file naming one is rebuilt; every other digest an
    /// unchanged file names is held, without a look.
    pub missing: &'a HashSet<Sha256>,
    /// Whether the previous generation's files are in the object store
    /// (false for a generation of an older ferry-in, a tree only: its
    /// unchanged files are then taken into the store by a link, and a
    /// base is read from its tree).
    pub prev_in_objects: bool,
    /// The previous generation's objects of this store's kind (with every
    /// source): [`Catalogs::prev_of_kind`]; none for a store that does not
    /// read the catalog ([`Store::reads_catalog`]).
    pub prev: Prev<'a>,
    /// The new generation's objects of this store's kind (with every
    /// source): [`Catalogs::next_of_kind`]; none for a store that does not
    /// read the catalog.
    pub next: &'a Catalog,
    /// The previous and the next catalog, read by key (for
    /// [`materialize`]).
    pub catalogs: &'a Catalogs<'a>,
    /// Where chunks are read from: the chunk store (with the bundle's
    /// staged chunks) and the ranges of the previous generation's files.
    pub chunks: &'a ChunkSource<'a>,
    /// Told the bytes written or linked.
    pub progress: &'a indicatif::ProgressBar,
    /// The keys the apply put or removed, when `prev` is the catalog
    /// `prev_gen` serves and every source kept its kind: a store then
    /// checks again only what these keys can affect (every other object was
    /// checked when the previous generation was built). `None` (the first
    /// generation, a rebase snapshot, a source that changed kind): every
    /// object is checked.
    pub changed: Option<&'a BTreeSet<ObjectKey>>,
    /// A base's reference form longer than this is made into a spill file
    /// and read a window's range at a time, not held
    /// (`[store] reference_in_memory`, [`REFERENCE_IN_MEMORY`] by default),
    /// but a zip's whose streams the object shares (up to
    /// `ferry_recipe::KNOWN_FORM_MOST`): the outside's check copied them.
    pub reference_in_memory: u64,
}

/// The longest reference form of a base held in memory while an object is
/// rebuilt from windows against it: the corpus's layer (158 MB) is held,
/// so that its pieces can copy its parse; a larger one is spilled (a layer
/// of 230 MB held took the import to 337 MiB).
pub const REFERENCE_IN_MEMORY: u64 = 160 << 20;

impl BuildCtx<'_> {
    /// The changed keys of the next catalog's sources of `kind` (see
    /// [`BuildCtx::changed`]), or `None` when everything is to be checked.
    pub fn changed_of_kind(&self, kind: SourceKind) -> Option<Vec<&ObjectKey>> {
        let changed = self.changed?;
        self.prev_gen?;
        Some(
            changed
                .iter()
                .filter(|k| self.next.sources.get(&k.source) == Some(&kind))
                .collect(),
        )
    }

    /// The bytes of `key` in the previous generation (at
    /// `<dir>/<source>/<path>`), if the previous catalog holds it and the
    /// file there still has its SHA-256; `None` otherwise.
    pub fn prev_bytes(&self, dir: &str, key: &ObjectKey) -> Option<Vec<u8>> {
        let Some(Object::File(f)) = self.prev.get(key) else {
            return None;
        };
        let path = self.prev_path(dir, key, &f.sha256)?;
        let bytes = std::fs::read(path).ok()?;
        (bytes.len() as u64 == f.size && ferry_protocol::id::Sha256::of(&bytes) == f.sha256)
            .then_some(bytes)
    }
}

impl BuildCtx<'_> {
    /// Where the previous generation holds the file at `key` with digest
    /// `sha` (under `dir` of its tree for a generation of an older
    /// ferry-in); `None` without a previous generation.
    pub fn prev_path(&self, dir: &str, key: &ObjectKey, sha: &Sha256) -> Option<PathBuf> {
        let g = self.prev_gen?;
        Some(if self.prev_in_objects {
            self.objects.path(sha)
        } else {
            g.join(dir).join(&key.source).join(&key.path)
        })
    }

    /// Where the new generation's file at `key` (a file of `next`) is read
    /// from by the store's checks after the build: its object.
    pub fn new_path(&self, dir: &str, key: &ObjectKey) -> PathBuf {
        match self.next.objects.get(key) {
            Some(Object::File(f)) => self.objects.path(&f.sha256),
            _ => self.new_gen.join(dir).join(&key.source).join(&key.path),
        }
    }
}

/// The objects of `catalog` in source `source` whose path begins with
/// `prefix`, in key order.
pub fn objects_under<'c>(
    catalog: &'c Catalog,
    source: &'c str,
    prefix: &'c str,
) -> impl Iterator<Item = (&'c ObjectKey, &'c Object)> {
    let start = ObjectKey {
        source: source.to_string(),
        path: prefix.to_string(),
    };
    catalog
        .objects
        .range(start..)
        .take_while(move |(k, _)| k.source == source && k.path.starts_with(prefix))
}

/// Whether every source of `prev` that `next` still has kept its kind (else
/// the build checks everything: [`BuildCtx::changed`] is `None`).
pub fn same_kinds(
    prev: &BTreeMap<String, SourceKind>,
    next: &BTreeMap<String, SourceKind>,
) -> bool {
    prev.iter().all(|(s, k)| next.get(s).is_none_or(|n| n == k))
}

/// A store's part of the previous generation's catalog (the objects of
/// its kind, every source: [`Catalogs::prev_of_kind`]).
#[derive(Clone, Copy, Debug)]
pub struct Prev<'a>(pub &'a Catalog);

impl<'a> Prev<'a> {
    /// The previous catalog's object at `key`.
    pub fn get(&self, key: &ObjectKey) -> Option<&'a Object> {
        self.0.objects.get(key)
    }

    /// Whether the previous catalog holds `key`.
    pub fn contains_key(&self, key: &ObjectKey) -> bool {
        self.get(key).is_some()
    }

    /// The previous catalog's sources.
    pub fn sources(&self) -> &'a BTreeMap<String, SourceKind> {
        &self.0.sources
    }
}

/// One inside store.
pub trait Store {
    /// The source kind whose objects this store holds.
    fn kind(&self) -> SourceKind;
    /// Checks the objects of this store's sources in the next catalog, before
    /// anything is extracted or built (keys and digests an ecosystem requires).
    /// An error names the object.
    fn check(&self, _next: &Catalog) -> Result<()> {
        Ok(())
    }
    /// Whether [`Store::check`] and [`Store::build`] read the catalog (its
    /// objects of this kind, [`BuildCtx::next`] and [`BuildCtx::prev`]);
    /// false for a store whose build is [`materialize`] alone, which
    /// reads the catalog by key.
    fn reads_catalog(&self) -> bool {
        true
    }
    /// Builds this store's part of `cx.new_gen`. Returns bytes newly written
    /// (objects linked from the previous generation do not count).
    fn build(&self, cx: &BuildCtx<'_>) -> Result<u64>;
}

/// Every store this build knows.
pub fn all() -> Vec<Box<dyn Store>> {
    vec![
        Box::new(files::FilesStore),
        Box::new(oci::OciStore),
        Box::new(apt::AptStore),
        Box::new(yum::YumStore),
        Box::new(pypi::PypiStore),
        Box::new(helm::HelmStore),
        Box::new(cargo::CargoStore),
        Box::new(npm::NpmStore),
        Box::new(go::GoStore),
    ]
}

/// Runs every store's [`Store::check`] on `next`.
pub fn check_all(next: &Catalog) -> Result<()> {
    for s in all() {
        s.check(next)?;
    }
    Ok(())
}

/// Runs every store's [`Store::check`] on the next catalog of `catalogs`:
/// each store that reads the catalog gets its kind's objects
/// ([`Catalogs::next_of_kind`]; nothing is read for a kind without a
/// source).
pub fn check_catalogs(catalogs: &Catalogs<'_>) -> Result<()> {
    for s in all() {
        if s.reads_catalog() && catalogs.sources().values().any(|k| *k == s.kind()) {
            s.check(&catalogs.next_of_kind(s.kind())?)?;
        }
    }
    Ok(())
}

/// The objects of `catalog` whose source is of `kind`, in key order.
pub fn objects_of_kind(
    catalog: &Catalog,
    kind: SourceKind,
) -> impl Iterator<Item = (&ObjectKey, &Object)> {
    catalog
        .objects
        .iter()
        .filter(move |(k, _)| catalog.sources.get(&k.source) == Some(&kind))
}

/// Where the build finds the object of a file of the next catalog: the one
/// rule of `materialize` (what it rebuilds) and of `apply`'s chunk lookup
/// (whose chunks may be read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holding {
    /// Held, without a look: unchanged since the previous generation, whose
    /// files are in the object store (its count names it), and not recorded
    /// missing by `scrub`.
    Held,
    /// Unchanged since a previous generation of an older ferry-in (a tree):
    /// held in the object store, or taken in from that tree by a link when
    /// it is there with its size.
    InTree,
    /// Looked for in the object store (a revert, a copy) and rebuilt from
    /// chunks when not there: a new or changed file, or an unchanged one
    /// whose object `scrub` moved out (`unchanged`).
    Look {
        /// Whether the file is unchanged since the previous generation.
        unchanged: bool,
    },
}

/// Where the build finds the object of `f`, a file of the next catalog
/// (`unchanged` since the previous one, or not) ([`Holding`]).
pub fn holding(
    unchanged: bool,
    prev_in_objects: bool,
    missing: &HashSet<Sha256>,
    f: &FileObject,
) -> Holding {
    match (unchanged, prev_in_objects) {
        (true, true) if !missing.contains(&f.sha256) => Holding::Held,
        (true, false) => Holding::InTree,
        _ => Holding::Look { unchanged },
    }
}

/// Whether the files the build must look at are all among
/// [`Catalogs::puts`]: the next catalog is made apart from the rows, or
/// every file it does not put is [`Holding::Held`] (the previous
/// generation's files are in the object store and `scrub` recorded
/// nothing missing).
pub fn puts_cover(
    catalogs: &Catalogs<'_>,
    prev_in_objects: bool,
    missing: &HashSet<Sha256>,
) -> bool {
    !catalogs.is_delta() || (prev_in_objects && missing.is_empty())
}

/// Hands `visit` each file of the next catalog (of the sources of `kind`;
/// `None`: of every source) that the build must look at ([`holding`] is
/// not [`Holding::Held`]), with its key and where to find it: only the
/// puts when they cover them all ([`puts_cover`]), else the next catalog
/// read through (its rows one at a time).
pub fn files_to_look<'c>(
    catalogs: &'c Catalogs<'_>,
    kind: Option<SourceKind>,
    (prev_in_objects, missing): (bool, &HashSet<Sha256>),
    visit: &mut dyn FnMut(Cow<'c, ObjectKey>, Cow<'c, FileObject>, Holding) -> Result<()>,
) -> Result<()> {
    let sources = catalogs.sources();
    let of_kind = |k: &ObjectKey| kind.is_none_or(|kind| sources.get(&k.source) == Some(&kind));
    if puts_cover(catalogs, prev_in_objects, missing) {
        for (k, o) in catalogs.puts() {
            let f = match o {
                Cow::Borrowed(Object::File(f)) => Cow::Borrowed(f),
                Cow::Owned(Object::File(f)) => Cow::Owned(f),
                _ => continue,
            };
            if !of_kind(&k) {
                continue;
            }
            let unchanged = catalogs.unchanged(&k, &f)?;
            match holding(unchanged, prev_in_objects, missing, &f) {
                Holding::Held => {}
                h => visit(k, f, h)?,
            }
        }
        return Ok(());
    }
    let mut each = |k: &ObjectKey, o: &Object| -> Result<()> {
        let Object::File(f) = o else { return Ok(()) };
        let unchanged = catalogs.unchanged(k, f)?;
        match holding(unchanged, prev_in_objects, missing, f) {
            Holding::Held => Ok(()),
            h => visit(Cow::Owned(k.clone()), Cow::Owned(f.clone()), h),
        }
    };
    match kind {
        Some(kind) => catalogs.for_each_of_kind(kind, &mut each),
        None => catalogs.for_each_from(None, &mut |k, o| each(k, o).map(|()| true)),
    }
}

/// The bytes of the files [`files_to_look`] hands on (a bound: the
/// files of the puts, or of the whole next catalog), for the progress bar.
pub fn bytes_to_look(
    catalogs: &Catalogs<'_>,
    prev_in_objects: bool,
    missing: &HashSet<Sha256>,
) -> u64 {
    if !puts_cover(catalogs, prev_in_objects, missing) {
        return catalogs.sums().bytes;
    }
    catalogs
        .puts()
        .values()
        .map(|o| match &*o {
            Object::File(f) => f.size,
            Object::Symlink { .. } => 0,
        })
        .sum()
}

/// Materializes the objects of `kind` sources: each file's bytes are an
/// object of the store (`crate::objects`), written once by SHA-256. The
/// generation has no tree of them (docs/scale.md): what each path is, its
/// mode and a link's target, is its path index (`crate::genread`).
///
/// An unchanged file of a previous generation in the object store is held
/// (its count names it) and costs nothing, unless `scrub` recorded its
/// object missing ([`BuildCtx::missing`]); a changed file's object is held
/// if a file of its size is at its digest (a revert, a copy); one of an
/// older generation's tree is taken in by a hard link; the rest are rebuilt
/// from chunks (on all cores) with their size and SHA-256 checked, each
/// digest once. Returns the bytes rebuilt. `dir` is the store's directory,
/// where an older generation's tree kept the files.
pub fn materialize(cx: &BuildCtx<'_>, kind: SourceKind, dir: &str) -> Result<u64> {
    let mut batch: Vec<(Cow<'_, ObjectKey>, Cow<'_, FileObject>)> = Vec::new();
    let mut first = HashSet::new();
    let mut written = 0;
    let look = (cx.prev_in_objects, cx.missing);
    // A file held without a look (unchanged, in the object store) is not
    // handed on, nor remembered: a changed file of the same digest finds
    // it held. The files to rebuild go in batches (a first import's are
    // the whole catalog): a digest rebuilt by an earlier batch is held.
    files_to_look(cx.catalogs, Some(kind), look, &mut |key, f, h| {
        if first.contains(&f.sha256) {
            return Ok(());
        }
        if h == Holding::InTree {
            adopt_from_tree(cx, dir, &key, &f)?;
        }
        let held = cx.objects.holds(&f.sha256, f.size);
        first.insert(f.sha256);
        if held {
            cx.progress.inc(f.size);
        } else {
            batch.push((key, f));
        }
        if batch.len() >= REBUILD_BATCH {
            written += rebuild_all(cx, dir, &batch)?;
            batch.clear();
            first.clear();
        }
        Ok(())
    })?;
    Ok(written + rebuild_all(cx, dir, &batch)?)
}

/// How many objects [`materialize`] lists before it rebuilds them.
const REBUILD_BATCH: usize = 4096;

/// Rebuilds `list` (each digest once). A rebuilt object holds its expanded
/// form (and its base's reference form) in memory, reserved from the
/// process's budget ([`rebuild`]); large ones are rebuilt one at a time, so
/// that two of them never add up. The largest (a layer's rebuild holds about
/// as much as the agents may) go alone, first; the other large ones beside
/// the rest that hold little (a large object's serial steps, reading and
/// expanding its base, would leave the other cores idle); then what is left
/// on all cores. Within each of these groups the longest rebuild goes first
/// ([`order::rebuild_span`]), each next one to the first thread free: a long
/// single stream started last (a maturin wheel's one large member) ran alone
/// at the end of the wheels' import for a fifth of its time. Returns the
/// bytes rebuilt.
fn rebuild_all(
    cx: &BuildCtx<'_>,
    dir: &str,
    list: &[(Cow<'_, ObjectKey>, Cow<'_, FileObject>)],
) -> Result<u64> {
    use rayon::prelude::*;
    let cores = rayon::current_num_threads() as u64;
    // The recipes are read for their spans on every core.
    let mut list = list
        .par_iter()
        .map(|(k, f)| {
            let held = held_to_rebuild(f, cx.reference_in_memory);
            Ok((&**k, &**f, held, order::rebuild_span(cx, k, f, cores)?))
        })
        .collect::<Result<Vec<(&ObjectKey, &FileObject, u64, u64)>>>()?;
    let [alone, large, small] =
        order::rebuild_order(&mut list, |&(_, f, held, span)| (held, f.size, span));
    let one = |&(key, f, _, _): &(&ObjectKey, &FileObject, u64, u64)| rebuild(cx, dir, key, f);
    list[..alone].iter().try_for_each(one)?;
    // Only small objects go beside a large one. An encoder one of them makes
    // (a deb's xz encoder, about 94 MiB) waits in the budget for room beside
    // them. `par_bridge` hands the objects out in order, each to the first
    // thread free (rayon's halves would start the second half's first beside
    // the first half's).
    let (done_large, done_small) = rayon::join(
        || list[alone..large].iter().try_for_each(one),
        || list[small..].iter().par_bridge().try_for_each(one),
    );
    done_large?;
    done_small?;
    list[large..small].iter().par_bridge().try_for_each(one)?;
    Ok(list.iter().map(|(_, f, _, _)| f.size).sum())
}

/// The first import over a generation of an older ferry-in (a tree, no
/// objects) takes an unchanged file of that tree into the object store by
/// a hard link, if it is there with its size (`scrub` moves rotten ones out).
fn adopt_from_tree(cx: &BuildCtx<'_>, dir: &str, key: &ObjectKey, f: &FileObject) -> Result<()> {
    let Some(g) = cx.prev_gen else { return Ok(()) };
    let from = g.join(dir).join(&key.source).join(&key.path);
    if std::fs::symlink_metadata(&from).is_ok_and(|m| m.is_file() && m.len() == f.size) {
        cx.objects.adopt_link(&from, &f.sha256)?;
    }
    Ok(())
}

/// The budget of the inside's large buffers (`ferry_recipe::budget`): the
/// objects' buffers and encoders a rebuild reserves. The import's own
/// memory beside them is about 40 MiB (an import of chunked objects peaks
/// at 38 MiB), less than the outside's (its scan and chunk index), so it
/// takes more than `ferry_recipe::budget::BUDGET`: two rebuilds of a wheel
/// mirror's large and small zips side by side, within 256 MiB.
pub const REBUILD_BUDGET: u64 = 192 << 20;

/// Bytes held in memory to rebuild an object this large or larger are
/// rebuilt one object at a time.
const LARGE_REBUILD: u64 = 64 << 20;

/// An object holding more than this is rebuilt alone (with its own threads:
/// a layer's cut pieces, a zip's members).
const ALONE_REBUILD: u64 = 128 << 20;

/// The most an object rebuilt beside a large one holds.
const BESIDE_LARGE: u64 = 32 << 20;

/// The longest base reference form a rebuild holds in memory beside an
/// encoder of `encoder` bytes (`Recipe::rebuild_memory`): `in_memory`, or
/// less when the two would pass the budget (a deb's data.tar.xz holds
/// an xz encoder, about 94 MiB and a block's output at preset 6: a larger
/// base's form is spilled, and its windows read their ranges from the spill).
pub(super) fn reference_in_memory(in_memory: u64, encoder: u64) -> u64 {
    in_memory.min(REBUILD_BUDGET.saturating_sub(encoder))
}

/// Bytes a rebuilt object holds in memory while it is rebuilt (its expanded
/// form and, for a patch, its base's reference form, or a window's range of
/// it when it is longer than `in_memory` and spilled); 0 for chunked
/// objects, which stream.
fn held_to_rebuild(f: &FileObject, in_memory: u64) -> u64 {
    match &f.encoding {
        Encoding::Chunks(_) => 0,
        Encoding::Rebuilt(r) => match &r.expanded {
            Expanded::Patch { base, .. } => r.expanded_len.saturating_add(base.len),
            Expanded::Chunks(_) => r.expanded_len,
            // The reference form and one window.
            Expanded::Windows { base, windows } => {
                let window = windows.iter().map(|w| w.len).max().unwrap_or(0);
                let range = windows
                    .iter()
                    .map(|w| w.reference_end().saturating_sub(w.reference_start))
                    .max()
                    .unwrap_or(0);
                let reference = if base.len > in_memory {
                    range
                } else {
                    base.len
                };
                reference.saturating_add(window)
            }
        },
    }
}

/// A writer that hashes and counts what passes through it.
struct Hashed<'a, W: Write> {
    out: &'a mut W,
    sha: &'a mut Sha256Hasher,
    size: &'a mut u64,
}

impl<W: Write> Write for Hashed<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.sha.update(&buf[..n]);
        *self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// One chunk of object `key`, checked against its id (by the chunk store,
/// or as a range of a stored file) and against the length the catalog
/// gives it.
fn chunk(cx: &BuildCtx<'_>, key: &ObjectKey, r: &ChunkRef) -> Result<Vec<u8>> {
    let data = cx
        .chunks
        .get(&r.id)
        .with_context(|| format!("object {key}"))?;
    if data.len() != r.len as usize {
        bail!(
            "object {key}: chunk {} has {} bytes, the catalog says {}",
            r.id,
            data.len(),
            r.len
        );
    }
    Ok(data)
}

/// Writes an object from its chunks (or its recipe) into the object store,
/// checking its size and SHA-256.
fn rebuild(cx: &BuildCtx<'_>, dir: &str, key: &ObjectKey, f: &FileObject) -> Result<()> {
    // What the rebuild holds, and what its recipe's encoder will (an xz
    // encoder), are reserved together before it reads a byte: so it waits
    // in the budget's queue for all of it, and the encoder, made later in
    // this thread, draws from what was reserved ahead. A chunked object
    // streams and reserves nothing (a reservation waits its turn behind a
    // waiting one).
    // The recipe is read and decoded once, here, for every try.
    let recipe = match &f.encoding {
        Encoding::Rebuilt(r) => rebuilt::recipe(cx, key, r)?,
        Encoding::Chunks(_) => None,
    };
    let ahead = recipe
        .as_ref()
        .map_or(0, ferry_recipe::Recipe::rebuild_memory);
    let held = held_to_rebuild(f, reference_in_memory(cx.reference_in_memory, ahead));
    let _permit = (held + ahead > 0).then(|| ferry_recipe::budget::reserve_ahead(held, ahead));
    cx.objects
        .write_object(&f.sha256, |file, tmp| {
            write_checked(cx, (dir, key, f, recipe.as_ref()), file, tmp)
        })
        .with_context(|| format!("object {key}"))?;
    Ok(())
}

/// Writes object `f` of `key` into `file` (at `tmp`), checking its size and
/// SHA-256; a rebuilt one with `recipe`, its decoded recipe (`None`: it is
/// its own expanded form).
fn write_checked(
    cx: &BuildCtx<'_>,
    (dir, key, f, recipe): (&str, &ObjectKey, &FileObject, Option<&ferry_recipe::Recipe>),
    file: std::fs::File,
    tmp: &Path,
) -> Result<()> {
    if let Encoding::Rebuilt(r) = &f.encoding {
        // Copying the members it shares with its base first; if that gives
        // other bytes (a base member of the same plain bytes and length but
        // made otherwise: rare), again by deflating them, as the outside
        // checked it.
        let object = (dir, key, f, (&**r, recipe));
        let (written, copied) = write_rebuilt(cx, object, &file, tmp, true)?;
        let written = match written {
            Err(_) if copied => write_rebuilt(cx, object, &file, tmp, false)?.0,
            written => written,
        };
        return written;
    }
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut sha = Sha256Hasher::new();
    let mut size = 0u64;
    let refs: &[ChunkRef] = match &f.encoding {
        Encoding::Chunks(refs) => refs,
        Encoding::Rebuilt(_) => &[],
    };
    for r in refs {
        let data = chunk(cx, key, r)?;
        sha.update(&data);
        size += data.len() as u64;
        out.write_all(&data)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        cx.progress.inc(data.len() as u64);
    }
    out.flush()
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    is_object(key, f, size, sha)
}

/// Writes rebuilt object `f` into `file` from its start (what an earlier try
/// wrote is cut off), copying known streams with `copy_known`: whether it is
/// the object, and whether streams could be copied. An error in the
/// rebuild itself is the outer error.
fn write_rebuilt(
    cx: &BuildCtx<'_>,
    (dir, key, f, r): (&str, &ObjectKey, &FileObject, rebuilt::Encoded<'_>),
    file: &std::fs::File,
    tmp: &Path,
    copy_known: bool,
) -> Result<(Result<()>, bool)> {
    let cannot = || format!("cannot write {}", tmp.display());
    file.set_len(0).with_context(cannot)?;
    let mut file = file;
    std::io::Seek::rewind(&mut file).with_context(cannot)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut sha = Sha256Hasher::new();
    let mut size = 0u64;
    let mut hashed = Hashed {
        out: &mut out,
        sha: &mut sha,
        size: &mut size,
    };
    let copied = rebuilt::write_object(cx, dir, key, f, r, &mut hashed, copy_known);
    let copied = match copied {
        Ok(copied) => copied,
        // A failure of the copying try is retried without.
        Err(e) if copy_known => return Ok((Err(e), true)),
        Err(e) => return Err(e).with_context(cannot),
    };
    out.flush().with_context(cannot)?;
    drop(out);
    let is = is_object(key, f, size, sha);
    // Counted once: by the try that stands.
    if is.is_ok() || !(copied && copy_known) {
        cx.progress.inc(size);
    }
    Ok((is, copied))
}

/// Whether `size` bytes of SHA-256 `sha` are object `f`.
fn is_object(key: &ObjectKey, f: &FileObject, size: u64, sha: Sha256Hasher) -> Result<()> {
    let actual = sha.finish();
    if size != f.size || actual != f.sha256 {
        bail!(ferry_protocol::Error::BadObject {
            key: key.to_string(),
            why: format!(
                "rebuilt {size} bytes with SHA-256 {actual}, expected {} bytes with {}",
                f.size, f.sha256
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod budget_tests {
    use super::{reference_in_memory, REBUILD_BUDGET, REFERENCE_IN_MEMORY};

    /// A recipe that rebuilds nothing keeps the setting; one holding a
    /// deb's xz encoder (liblzma's multi-threaded mode at preset 6, 24 MiB
    /// blocks, as dpkg-deb writes: the match finder and a block's output)
    /// holds a base's form in memory only while the two fit in the budget,
    /// so a base of some tens of MiB is spilled.
    #[test]
    fn a_large_encoder_spills_its_base_sooner() {
        assert_eq!(
            reference_in_memory(REFERENCE_IN_MEMORY, 0),
            REFERENCE_IN_MEMORY
        );
        let xz = ferry_recipe::Recipe {
            segments: vec![ferry_recipe::Segment::Xz {
                plain_len: 79 << 20,
                compressed_len: 71 << 20,
                params: ferry_recipe::xz::XzParams {
                    preset: 6,
                    extreme: false,
                    dict_size: 8 << 20,
                    check: ferry_recipe::xz::XzCheck::Crc64,
                    mode: ferry_recipe::xz::XzMode::Multi {
                        block_size: 24 << 20,
                    },
                },
            }],
        };
        let encoder = xz.rebuild_memory();
        assert!((96 << 20..128 << 20).contains(&encoder), "{encoder}");
        let most = reference_in_memory(REFERENCE_IN_MEMORY, encoder);
        assert_eq!(most, REBUILD_BUDGET - encoder);
        assert!(most < 96 << 20, "{most}");
        assert_eq!(reference_in_memory(REFERENCE_IN_MEMORY, u64::MAX), 0);
    }
}
