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
        let (first, second): (&[ChunkRef], &[ChunkRef]) = match &self.encoding {
            Encoding::Chunks(c) => (c, &[]),
            Encoding::Rebuilt(r) => (&r.recipe, r.expanded_chunks()),
        };
        first.iter().chain(second)
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
                Expanded::Patch { .. } => (&r.recipe, &[]),
            },
        };
        first.iter().chain(second)
    }

    /// The base a patch of this object refers to, if it is carried as one.
    pub fn base(&self) -> Option<&Base> {
        match &self.encoding {
            Encoding::Rebuilt(r) => match &r.expanded {
                Expanded::Patch { base, .. } => Some(base),
                Expanded::Chunks(_) => None,
            },
            Encoding::Chunks(_) => None,
        }
    }

    /// Whether this object needs format version 2.
    pub fn needs_v2(&self) -> bool {
        matches!(self.encoding, Encoding::Rebuilt(_))
    }
}

impl Rebuilt {
    /// The chunks of the expanded form or of its patch.
    pub fn expanded_chunks(&self) -> &[ChunkRef] {
        match &self.expanded {
            Expanded::Chunks(c) => c,
            Expanded::Patch { patch, .. } => patch,
        }
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
    /// refused: the delta does not fit this catalog.
    pub fn apply(
        &self,
        sources: &BTreeMap<String, SourceKind>,
        changes: &[Change],
    ) -> Result<Catalog, Error> {
        let mut next = self.clone();
        next.sources = sources.clone();
        let mut touched = HashSet::new();
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
                        self.check_base(key, f)?;
                    }
                    next.objects.insert(key.clone(), object.clone());
                }
                Change::Remove { key } => {
                    if next.objects.remove(key).is_none() {
                        return Err(Error::Inconsistent(format!(
                            "removes {key}, which the base catalog does not hold"
                        )));
                    }
                }
            }
        }
        next.validate()?;
        Ok(next)
    }

    /// Checks that the base a patch of `key` refers to is in this catalog,
    /// with the digest the patch was made against.
    fn check_base(&self, key: &ObjectKey, f: &FileObject) -> Result<(), Error> {
        let Some(base) = f.base() else { return Ok(()) };
        match self.objects.get(&base.key) {
            Some(Object::File(held)) if held.sha256 == base.sha256 => Ok(()),
            Some(Object::File(held)) => Err(Error::MissingBase {
                key: key.to_string(),
                base: base.key.to_string(),
                why: format!(
                    "the patch was made against SHA-256 {}, the base catalog holds {}",
                    base.sha256, held.sha256
                ),
            }),
            _ => Err(Error::MissingBase {
                key: key.to_string(),
                base: base.key.to_string(),
                why: "the base catalog does not hold it".into(),
            }),
        }
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
        Expanded::Patch { base, .. } if base.key.source != key.source => bad(format!(
            "is patched against {}, an object of another source",
            base.key
        )),
        Expanded::Patch { patch, .. } if patch.is_empty() => bad("has an empty patch".into()),
        Expanded::Patch { base, .. } => check_key(&base.key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn srcs() -> BTreeMap<String, SourceKind> {
        [("s".to_string(), SourceKind::Files)].into_iter().collect()
    }

    fn key(p: &str) -> ObjectKey {
        ObjectKey {
            source: "s".into(),
            path: p.into(),
        }
    }

    fn file(content: &[u8]) -> Object {
        Object::File(FileObject {
            size: content.len() as u64,
            sha256: Sha256::of(content),
            executable: false,
            encoding: Encoding::Chunks(vec![ChunkRef {
                id: ChunkId::of(content),
                len: content.len() as u32,
            }]),
        })
    }

    #[test]
    fn diff_then_apply_gives_the_target() {
        let mut a = Catalog {
            sources: srcs(),
            ..Default::default()
        };
        a.objects.insert(key("keep"), file(b"1"));
        a.objects.insert(key("change"), file(b"2"));
        a.objects.insert(key("remove"), file(b"3"));
        let mut b = Catalog {
            sources: srcs(),
            ..Default::default()
        };
        b.objects.insert(key("keep"), file(b"1"));
        b.objects.insert(key("change"), file(b"22"));
        b.objects.insert(key("new/file"), file(b"4"));
        let d = a.diff(&b);
        assert_eq!(d.len(), 3);
        assert_eq!(
            a.delta_stats(&d),
            DeltaStats {
                added: 1,
                changed: 1,
                removed: 1
            }
        );
        assert_eq!(a.apply(&srcs(), &d).unwrap(), b);
        assert!(b.diff(&b).is_empty());
    }

    /// A file carried as a patch against `base` (holding `base_content`).
    fn patched(size: u64, base: &str, base_content: &[u8]) -> Object {
        Object::File(FileObject {
            size,
            sha256: Sha256([1; 32]),
            executable: false,
            encoding: Encoding::Rebuilt(Box::new(Rebuilt {
                recipe: vec![],
                expanded_len: size,
                expanded_blake3: [2; 32],
                expanded: Expanded::Patch {
                    base: Base {
                        key: key(base),
                        sha256: Sha256::of(base_content),
                        form: BaseForm::Bytes,
                        len: base_content.len() as u64,
                        blake3: [3; 32],
                    },
                    patch: vec![ChunkRef {
                        id: ChunkId::of(b"patch"),
                        len: 5,
                    }],
                },
            })),
        })
    }

    #[test]
    fn a_patch_needs_its_base_in_the_base_catalog_with_its_digest() {
        let mut a = Catalog {
            sources: srcs(),
            ..Default::default()
        };
        a.objects.insert(key("tool-1.0"), file(b"old release"));
        let put = |o: Object| Change::Put {
            key: key("tool-1.1"),
            object: o,
        };
        let next = a
            .apply(&srcs(), &[put(patched(100, "tool-1.0", b"old release"))])
            .unwrap();
        assert!(matches!(&next.objects[&key("tool-1.1")], Object::File(f) if f.needs_v2()));
        for (base, content, why) in [
            ("tool-0.9", &b"old release"[..], "does not hold"),
            ("tool-1.0", &b"other bytes"[..], "was made against"),
        ] {
            let e = a
                .apply(&srcs(), &[put(patched(100, base, content))])
                .unwrap_err();
            assert!(
                matches!(&e, Error::MissingBase { why: w, .. } if w.contains(why)),
                "{e}"
            );
        }
        // The base may go in the same bundle: it is looked up in the base catalog.
        let both = [
            Change::Remove {
                key: key("tool-1.0"),
            },
            put(patched(100, "tool-1.0", b"old release")),
        ];
        assert!(a.apply(&srcs(), &both).is_ok());
    }

    #[test]
    fn rebuilt_encodings_are_checked() {
        let check = |o: Object| {
            let mut c = Catalog {
                sources: srcs(),
                ..Default::default()
            };
            c.objects.insert(key("x"), o);
            c.validate()
        };
        let with = |f: &dyn Fn(&mut Rebuilt, &mut u64)| {
            let Object::File(mut fo) = patched(100, "b", b"b") else {
                unreachable!()
            };
            let Encoding::Rebuilt(r) = &mut fo.encoding else {
                unreachable!()
            };
            f(r, &mut fo.size);
            Object::File(fo)
        };
        assert!(check(with(&|_, _| {})).is_ok());
        // No recipe: the object is its expanded form, so the lengths agree.
        assert!(check(with(&|_, size| *size = 99)).is_err());
        // A base in another source.
        assert!(check(with(&|r, _| {
            if let Expanded::Patch { base, .. } = &mut r.expanded {
                base.key.source = "other".into();
            }
        }))
        .is_err());
        // An empty patch, and an empty chunk.
        assert!(check(with(&|r, _| r.expanded = match &r.expanded {
            Expanded::Patch { base, .. } => Expanded::Patch {
                base: base.clone(),
                patch: vec![],
            },
            e => e.clone(),
        }))
        .is_err());
        assert!(check(with(&|r, _| r.recipe = vec![ChunkRef {
            id: ChunkId::of(b""),
            len: 0
        }]))
        .is_err());
        // Expanded chunks must add up to the expanded length.
        let chunks = |n: u32| {
            with(&move |r, _| {
                r.expanded = Expanded::Chunks(vec![ChunkRef {
                    id: ChunkId::of(b"e"),
                    len: n,
                }])
            })
        };
        assert!(check(chunks(100)).is_ok());
        assert!(check(chunks(101)).is_err());
    }

    #[test]
    fn bad_deltas_are_refused() {
        let a = Catalog::default();
        let rm = Change::Remove { key: key("ghost") };
        assert!(a
            .apply(&srcs(), &[rm])
            .unwrap_err()
            .to_string()
            .contains("ghost"));
        let put = Change::Put {
            key: key("x"),
            object: file(b"x"),
        };
        assert!(a.apply(&srcs(), &[put.clone(), put]).is_err());
        let trav = Change::Put {
            key: key("../../etc/passwd"),
            object: file(b"x"),
        };
        assert!(a.apply(&srcs(), &[trav]).is_err());
    }

    #[test]
    fn object_cannot_be_a_directory_of_another() {
        let changes = vec![
            Change::Put {
                key: key("a"),
                object: Object::Symlink { target: "b".into() },
            },
            Change::Put {
                key: key("a/x"),
                object: file(b"x"),
            },
        ];
        let e = Catalog::default()
            .apply(&srcs(), &changes)
            .unwrap_err()
            .to_string();
        assert!(e.contains("s/a/x"), "{e}");
    }

    #[test]
    fn escaping_symlink_is_refused() {
        let changes = vec![Change::Put {
            key: key("link"),
            object: Object::Symlink {
                target: "../../../etc/shadow".into(),
            },
        }];
        assert!(Catalog::default().apply(&srcs(), &changes).is_err());
    }

    #[test]
    fn size_must_match_chunks() {
        let mut o = file(b"abc");
        if let Object::File(f) = &mut o {
            f.size = 1 << 40;
        }
        let changes = vec![Change::Put {
            key: key("big"),
            object: o,
        }];
        assert!(Catalog::default().apply(&srcs(), &changes).is_err());
    }

    #[test]
    fn source_kinds_keep_their_indices() {
        assert_eq!(postcard::to_stdvec(&SourceKind::Files).unwrap(), [0]);
        assert_eq!(postcard::to_stdvec(&SourceKind::Oci).unwrap(), [1]);
        for (i, k) in SourceKind::ALL.iter().enumerate() {
            assert_eq!(postcard::to_stdvec(k).unwrap(), [i as u8], "{}", k.name());
        }
    }

    #[test]
    fn undeclared_source_is_refused() {
        let changes = vec![Change::Put {
            key: key("x"),
            object: file(b"x"),
        }];
        let e = Catalog::default()
            .apply(&BTreeMap::new(), &changes)
            .unwrap_err();
        assert!(e.to_string().contains("does not declare"), "{e}");
    }
}
