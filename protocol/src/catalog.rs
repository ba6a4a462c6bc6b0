//! Catalogs: what a stream holds at one sequence number, and deltas between two.
//!
//! The outside keeps the catalog of every sequence it has shipped; the inside
//! keeps the catalog of the generation it serves. A bundle carries the delta
//! from its base catalog to the next as a list of [`Change`]s.

use crate::id::{ChunkId, Sha256};
use crate::path::{check_key, check_symlink_target, ObjectKey};
use crate::Error;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

mod changes;
pub use changes::{
    check_changes, check_changes_owned, check_first_changes, first_changes_pass, validate_changes,
    Changes, LastCatalog, PutsCheck, Sums,
};

/// One chunk of an object: its id and its uncompressed length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    /// BLAKE3 of the chunk's bytes.
    pub id: ChunkId,
    /// Length of the chunk's bytes.
    pub len: u32,
}

/// How an object's bytes are rebuilt.
///
/// The object's SHA-256 is always checked on the rebuilt bytes, whatever the
/// encoding. A reader meeting a variant it does not know fails to decode the
/// manifest and says so. `Rebuilt` is new in format version 2
/// (`docs/bundle-format.md` §4.4): a version-1 manifest never carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Encoding {
    /// The object is the concatenation of these chunks, in order.
    Chunks(Vec<ChunkRef>),
    /// The object is rebuilt from an *expanded form* (its literal bytes and
    /// the decompressed content of its compressed streams) by a recipe that
    /// recompresses each stream bit-exactly.
    Rebuilt(Box<Rebuilt>),
}

/// An object carried as a recipe and an expanded form (format version 2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rebuilt {
    /// Chunks of the recipe's bytes, in order (the encoding of the
    /// `ferry-recipe` crate, `docs/bundle-format.md` §4.4.2). Empty: the
    /// object is its own expanded form.
    pub recipe: Vec<ChunkRef>,
    /// Length of the expanded form.
    pub expanded_len: u64,
    /// BLAKE3 of the expanded form, checked before the recipe runs.
    pub expanded_blake3: [u8; 32],
    /// How the expanded form travels.
    pub expanded: Expanded,
}

/// How the expanded form of a [`Rebuilt`] object travels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expanded {
    /// The concatenation of these chunks.
    Chunks(Vec<ChunkRef>),
    /// One zstd frame, cut into these chunks, that decodes to the expanded
    /// form with the base's reference form as its prefix (what `zstd
    /// --patch-from` does).
    Patch {
        /// The object of the base catalog the patch is made against.
        base: Base,
        /// The patch's chunks, in order.
        patch: Vec<ChunkRef>,
    },
    /// Format version 3: the expanded form cut into consecutive windows,
    /// each its own zstd frame whose prefix is a range of the base's
    /// reference form, so that neither side holds a whole expanded or
    /// reference form, nor a zstd window spanning both
    /// (`docs/bundle-format.md` §5.5.2).
    Windows {
        /// The object of the base catalog the windows are made against.
        base: Base,
        /// The windows, in order: their lengths add up to the expanded form's.
        windows: Vec<Window>,
    },
}

/// The largest expanded bytes one [`Window`] may decode to (64 MiB).
pub const MAX_WINDOW: u64 = 64 << 20;
/// The largest range of the reference form one [`Window`] may take as its
/// prefix (128 MiB).
pub const MAX_WINDOW_REFERENCE: u64 = 128 << 20;

/// One window of an [`Expanded::Windows`] object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Bytes of the expanded form it decodes to (1 to [`MAX_WINDOW`]).
    pub len: u64,
    /// BLAKE3 of those bytes, checked before the recipe reads them.
    pub blake3: [u8; 32],
    /// Where its prefix starts in the base's reference form. Each window's
    /// range starts and ends no earlier than the one before it.
    pub reference_start: u64,
    /// Length of its prefix (at most [`MAX_WINDOW_REFERENCE`]).
    pub reference_len: u64,
    /// Its zstd frame's chunks, in order (not empty).
    pub patch: Vec<ChunkRef>,
}

impl Window {
    /// Where its prefix ends in the reference form (saturating).
    pub fn reference_end(&self) -> u64 {
        self.reference_start.saturating_add(self.reference_len)
    }
}

/// The predecessor a patch is made against: an object of the catalog the
/// bundle's delta starts from (the one the receiver serves).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Base {
    /// Its key. It belongs to the same source as the object patched.
    pub key: ObjectKey,
    /// Its SHA-256 in the base catalog; applying refuses a base catalog
    /// whose object at `key` has another digest, or none.
    pub sha256: Sha256,
    /// Which of its forms is the reference.
    pub form: BaseForm,
    /// Length of the reference form.
    pub len: u64,
    /// BLAKE3 of the reference form, checked before the patch is decoded.
    pub blake3: [u8; 32],
}

/// Which form of the base object a patch refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BaseForm {
    /// Its bytes as served.
    Bytes,
    /// Its expanded reference form, as `ferry_recipe::expand` of this
    /// version computes it from its bytes.
    Expanded {
        /// `ferry_recipe::EXPAND_VERSION` of the sender.
        version: u32,
    },
}

/// A regular file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileObject {
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the exact bytes.
    pub sha256: Sha256,
    /// Whether the file is served executable (mode 0755 instead of 0644).
    pub executable: bool,
    /// How the bytes are rebuilt.
    pub encoding: Encoding,
}

impl FileObject {
    /// Every chunk this object needs, in order: its bytes' chunks, or its
    /// recipe's chunks followed by its expanded form's (or patch's) chunks.
    pub fn chunks(&self) -> impl Iterator<Item = &ChunkRef> + '_ {
        let (first, rebuilt): (&[ChunkRef], Option<&Rebuilt>) = match &self.encoding {
            Encoding::Chunks(c) => (c, None),
            Encoding::Rebuilt(r) => (&r.recipe, Some(r)),
        };
        first
            .iter()
            .chain(rebuilt.into_iter().flat_map(|r| r.expanded_chunks()))
    }

    /// The chunks a receiver keeps once this object is applied
    /// (bundle-format §5.6): every chunk but a patch's. A patch is of use only
    /// against its base, which a later catalog may no longer hold, and the
    /// rebuilt object is stored whole, so a sender counts patch chunks as
    /// absent from the receiver.
    pub fn held_chunks(&self) -> impl Iterator<Item = &ChunkRef> + '_ {
        let (first, second): (&[ChunkRef], &[ChunkRef]) = match &self.encoding {
            Encoding::Chunks(c) => (c, &[]),
            Encoding::Rebuilt(r) => match &r.expanded {
                Expanded::Chunks(c) => (&r.recipe, c),
                Expanded::Patch { .. } | Expanded::Windows { .. } => (&r.recipe, &[]),
            },
        };
        first.iter().chain(second)
    }

    /// The base a patch of this object refers to, if it is carried as one.
    pub fn base(&self) -> Option<&Base> {
        match &self.encoding {
            Encoding::Rebuilt(r) => match &r.expanded {
                Expanded::Patch { base, .. } | Expanded::Windows { base, .. } => Some(base),
                Expanded::Chunks(_) => None,
            },
            Encoding::Chunks(_) => None,
        }
    }

    /// The oldest format version that carries this object: 1 for chunks, 2
    /// for a rebuilt object, 3 for one carried as windows.
    pub fn format_version(&self) -> u32 {
        match &self.encoding {
            Encoding::Chunks(_) => 1,
            Encoding::Rebuilt(r) => match r.expanded {
                Expanded::Windows { .. } => 3,
                _ => 2,
            },
        }
    }
}

impl Rebuilt {
    /// The chunks of the expanded form, of its patch or of its windows' patches.
    pub fn expanded_chunks(&self) -> impl Iterator<Item = &ChunkRef> + '_ {
        let (one, windows): (&[ChunkRef], &[Window]) = match &self.expanded {
            Expanded::Chunks(c) => (c, &[]),
            Expanded::Patch { patch, .. } => (patch, &[]),
            Expanded::Windows { windows, .. } => (&[], windows),
        };
        one.iter().chain(windows.iter().flat_map(|w| &w.patch))
    }
}

/// An object in a catalog.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Object {
    /// A regular file.
    File(FileObject),
    /// A symbolic link, relative and inside its source.
    Symlink {
        /// The link's target.
        target: String,
    },
}

/// One entry of a catalog delta.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// Adds an object, or replaces the one at the same key.
    Put {
        /// Where.
        key: ObjectKey,
        /// What.
        object: Object,
    },
    /// Removes the object at this key.
    Remove {
        /// Where.
        key: ObjectKey,
    },
}

impl Change {
    /// The key this change is about.
    pub fn key(&self) -> &ObjectKey {
        match self {
            Change::Put { key, .. } | Change::Remove { key } => key,
        }
    }

    /// The object this change puts (`None`: it removes its key).
    pub fn object(&self) -> Option<&Object> {
        match self {
            Change::Put { object, .. } => Some(object),
            Change::Remove { .. } => None,
        }
    }
}

/// Which kind of upstream a source is, and so which inside store holds its
/// objects and how they are served. New ecosystems are new variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SourceKind {
    /// Plain files, served under `/files/<source>/`.
    Files,
    /// An OCI image store, served by the OCI distribution pull API under
    /// `/v2/`. Object paths: `blobs/sha256/<hex>`, `manifests/sha256/<hex>`
    /// (each object's SHA-256 is the hex of its path) and
    /// `repos/<repository>/_tags/<tag>` (content `sha256:<hex>`, the tagged
    /// manifest's digest). See `docs/bundle-format.md` §5.3.
    Oci,
    /// A Debian (apt) repository, byte for byte upstream's layout
    /// (`dists/…`, `pool/…`), served under `/apt/<source>/`.
    Apt,
    /// An RPM (yum/dnf) repository (`repodata/…` and packages at the paths
    /// `primary.xml` names), served under `/yum/<source>/`.
    Yum,
    /// A Python package index, served under `/pypi/<source>/simple/`.
    Pypi,
    /// A Helm chart repository (`index.yaml` and charts), served under
    /// `/helm/<source>/`.
    Helm,
    /// A Rust crate registry (sparse index files at their index paths,
    /// `crates/<name>/<name>-<version>.crate`), served as a sparse registry
    /// under `/cargo/<source>/`.
    Cargo,
    /// An npm registry (`packuments/<name>.json` written by ferry-out,
    /// `tarballs/<name>/-/<base>-<version>.tgz`), served under `/npm/<source>/`.
    Npm,
    /// A Go module proxy (the GOPROXY tree: `<module>/@v/list`,
    /// `@v/<version>.info|.mod|.zip`, `<module>/@latest`, module paths
    /// case-encoded, and `checksums/<module>@<version>`), served under
    /// `/go/<source>/`.
    Go,
}

impl SourceKind {
    /// Every kind, in encoding order.
    pub const ALL: [SourceKind; 9] = [
        SourceKind::Files,
        SourceKind::Oci,
        SourceKind::Apt,
        SourceKind::Yum,
        SourceKind::Pypi,
        SourceKind::Helm,
        SourceKind::Cargo,
        SourceKind::Npm,
        SourceKind::Go,
    ];

    /// A short lower-case name (`files`, `oci`, `apt`, …): the config's
    /// `type`, and the directory the inside's store for it uses.
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Files => "files",
            SourceKind::Oci => "oci",
            SourceKind::Apt => "apt",
            SourceKind::Yum => "yum",
            SourceKind::Pypi => "pypi",
            SourceKind::Helm => "helm",
            SourceKind::Cargo => "cargo",
            SourceKind::Npm => "npm",
            SourceKind::Go => "go",
        }
    }
}

/// Every object a stream holds at one sequence number.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Catalog {
    /// The sources, by name. Every object's source is listed here.
    pub sources: BTreeMap<String, SourceKind>,
    /// Objects by key.
    pub objects: BTreeMap<ObjectKey, Object>,
}

/// Counts of a delta, for reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeltaStats {
    /// Objects new in the later catalog.
    pub added: usize,
    /// Objects whose content or kind changed.
    pub changed: usize,
    /// Objects gone from the later catalog.
    pub removed: usize,
}

impl Catalog {
    /// The changes that turn `self` into `next`, in key order.
    pub fn diff(&self, next: &Catalog) -> Vec<Change> {
        let mut out = Vec::new();
        for (key, obj) in &next.objects {
            if self.objects.get(key) != Some(obj) {
                out.push(Change::Put {
                    key: key.clone(),
                    object: obj.clone(),
                });
            }
        }
        for key in self.objects.keys() {
            if !next.objects.contains_key(key) {
                out.push(Change::Remove { key: key.clone() });
            }
        }
        out
    }

    /// Counts how many of `changes` add, change or remove objects of `self`.
    pub fn delta_stats(&self, changes: &[Change]) -> DeltaStats {
        let mut s = DeltaStats::default();
        for c in changes {
            match c {
                Change::Put { key, .. } if self.objects.contains_key(key) => s.changed += 1,
                Change::Put { .. } => s.added += 1,
                Change::Remove { .. } => s.removed += 1,
            }
        }
        s
    }

    /// Applies `changes`, takes `sources` as the new source list, and checks
    /// the result with [`Catalog::validate`].
    ///
    /// A change that names a key twice, or removes a key that is not there, is
    /// refused: the delta does not fit this catalog ([`check_changes`]).
    pub fn apply(
        &self,
        sources: &BTreeMap<String, SourceKind>,
        changes: &[Change],
    ) -> Result<Catalog, Error> {
        let checked = check_changes(
            self,
            &mut |k| {
                Ok(match self.objects.get(k) {
                    Some(Object::File(f)) => Some(f.sha256),
                    _ => None,
                })
            },
            sources,
            changes,
        )?;
        let mut next = self.clone();
        next.absorb(sources.clone(), checked.into_list());
        next.validate()?;
        Ok(next)
    }

    /// Checks every key, every symlink, every file's size against its chunks,
    /// and that no object stands where another needs a directory.
    pub fn validate(&self) -> Result<(), Error> {
        for name in self.sources.keys() {
            crate::path::check_source_name(name)?;
        }
        // One key to look ancestors up with, its strings reused.
        let mut parent = ObjectKey {
            source: String::new(),
            path: String::new(),
        };
        for (key, obj) in &self.objects {
            check_key(key)?;
            if !self.sources.contains_key(&key.source) {
                return Err(Error::Inconsistent(format!(
                    "object {key} belongs to source {:?}, which the manifest does not declare",
                    key.source
                )));
            }
            match obj {
                Object::Symlink { target } => check_symlink_target(&key.path, target)?,
                Object::File(f) => check_encoding(key, f)?,
            }
            // An ancestor directory of this path must not be an object itself.
            let mut path = key.path.as_str();
            if parent.source != key.source {
                parent.source.clone_from(&key.source);
            }
            while let Some(i) = path.rfind('/') {
                path = &path[..i];
                parent.path.clear();
                parent.path.push_str(path);
                if self.objects.contains_key(&parent) {
                    return Err(Error::UnsafePath {
                        path: key.to_string(),
                        why: "an object of the same catalog stands where its directory must be",
                    });
                }
            }
        }
        Ok(())
    }

    /// Every chunk any object refers to.
    pub fn chunk_ids(&self) -> HashSet<ChunkId> {
        self.files()
            .flat_map(|(_, f)| f.chunks().map(|c| c.id))
            .collect()
    }

    /// Every chunk a receiver holding this catalog keeps
    /// ([`FileObject::held_chunks`]): all but the chunks of patches.
    pub fn held_chunk_ids(&self) -> HashSet<ChunkId> {
        self.files()
            .flat_map(|(_, f)| f.held_chunks().map(|c| c.id))
            .collect()
    }

    /// The regular files, with their keys.
    pub fn files(&self) -> impl Iterator<Item = (&ObjectKey, &FileObject)> {
        self.objects.iter().filter_map(|(k, o)| match o {
            Object::File(f) => Some((k, f)),
            Object::Symlink { .. } => None,
        })
    }

    /// Total bytes of all regular files.
    pub fn total_bytes(&self) -> u64 {
        self.files().map(|(_, f)| f.size).sum()
    }

    /// Encodes with postcard.
    pub fn to_bytes(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("a catalog always serializes")
    }

    /// Decodes what [`Catalog::to_bytes`] wrote.
    pub fn from_bytes(bytes: &[u8]) -> Result<Catalog, Error> {
        postcard::from_bytes(bytes).map_err(|e| Error::ManifestDecode(format!("catalog: {e}")))
    }
}

/// Checks a file's encoding: chunk lengths add up, no chunk is empty, a
/// patch's base is in the same source, an object without a recipe is as long
/// as its expanded form.
fn check_encoding(key: &ObjectKey, f: &FileObject) -> Result<(), Error> {
    let bad = |why: String| Err(Error::Inconsistent(format!("object {key} {why}")));
    let sum = |c: &[ChunkRef]| c.iter().map(|c| c.len as u64).sum::<u64>();
    if f.chunks().any(|c| c.len == 0) {
        return bad("has an empty chunk".into());
    }
    let r = match &f.encoding {
        Encoding::Chunks(c) if sum(c) != f.size => {
            return bad(format!(
                "declares {} bytes but its chunks hold {}",
                f.size,
                sum(c)
            ))
        }
        Encoding::Chunks(_) => return Ok(()),
        Encoding::Rebuilt(r) => r,
    };
    if r.recipe.is_empty() && r.expanded_len != f.size {
        return bad(format!(
            "declares {} bytes but has no recipe and an expanded form of {}",
            f.size, r.expanded_len
        ));
    }
    match &r.expanded {
        Expanded::Chunks(c) if sum(c) != r.expanded_len => bad(format!(
            "declares {} expanded bytes but its chunks hold {}",
            r.expanded_len,
            sum(c)
        )),
        Expanded::Chunks(_) => Ok(()),
        Expanded::Patch { base, .. } | Expanded::Windows { base, .. }
            if base.key.source != key.source =>
        {
            bad(format!(
                "is patched against {}, an object of another source",
                base.key
            ))
        }
        Expanded::Patch { patch, .. } if patch.is_empty() => bad("has an empty patch".into()),
        Expanded::Patch { base, .. } => check_key(&base.key),
        Expanded::Windows { base, windows } => {
            check_windows(r.expanded_len, base, windows).or_else(bad)?;
            check_key(&base.key)
        }
    }
}

/// Checks an [`Expanded::Windows`]: at least one window; each not empty, at
/// most [`MAX_WINDOW`] bytes, its patch not empty, its prefix within the
/// reference form and at most [`MAX_WINDOW_REFERENCE`] bytes, starting and
/// ending no earlier than the one before; lengths adding up to `expanded_len`.
fn check_windows(expanded_len: u64, base: &Base, windows: &[Window]) -> Result<(), String> {
    if windows.is_empty() {
        return Err("has no window".into());
    }
    let (mut total, mut start, mut end) = (0u64, 0u64, 0u64);
    for (i, w) in windows.iter().enumerate() {
        if w.len == 0 || w.len > MAX_WINDOW {
            return Err(format!(
                "has window {i} of {} bytes (1 to {MAX_WINDOW})",
                w.len
            ));
        }
        if w.patch.is_empty() {
            return Err(format!("has window {i} with an empty patch"));
        }
        let w_end = w.reference_start.checked_add(w.reference_len);
        if w.reference_len > MAX_WINDOW_REFERENCE || w_end.is_none_or(|e| e > base.len) {
            return Err(format!(
                "has window {i} whose reference range ({} bytes at {}) passes the {}-byte reference form or the {MAX_WINDOW_REFERENCE}-byte bound",
                w.reference_len, w.reference_start, base.len
            ));
        }
        if w.reference_start < start || w.reference_end() < end {
            return Err(format!("has window {i} whose reference range goes back"));
        }
        (start, end) = (w.reference_start, w.reference_end());
        total = total.saturating_add(w.len);
    }
    if total != expanded_len {
        return Err(format!(
            "declares {expanded_len} expanded bytes but its windows hold {total}"
        ));
    }
    Ok(())
}

#[cfg(test)]
#[path = "catalog_tests.rs"]
mod tests;
