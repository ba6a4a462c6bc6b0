//! One way to read a generation (issue 15): what a key is (a file's SHA-256,
//! size and mode, or a link), a sorted range of keys, the sources and their
//! kinds, and where a file's bytes and a store's derived files are.
//!
//! Every reader of a served generation (`serve`, `push`, `client-config`)
//! goes through [`GenRead`], so that the layout under it can change in one
//! place. A generation's bytes are objects stored once by SHA-256
//! (`crate::objects`, `STATE/objects/ab/<sha256>`; a generation of an older
//! ferry-in without the object store: its directory tree
//! `gens/G/<store>/<source>/<path>`); what each key is comes from its path
//! index (`crate::pathindex`: `index.base` and `index.delta`, with
//! `index.meta` for its sources and totals, written by `apply` through
//! [`write_index`]). A generation written before the index existed (only
//! `gens/G/index.ferry`, the whole catalog) is read from that catalog, as
//! before; the next import writes the index. A generation written now has no
//! tree (`index.meta` says `treeless`): its index, the objects, and the
//! small per-generation derived files of some stores (`derived_path`).

mod write;

pub use write::write_index;

use crate::layout::{Layout, GEN_INDEX};
use crate::pathindex::{self, Entry, IndexError, IndexFile, View};
use ferry_protocol::catalog::{Catalog, FileObject, Object, SourceKind};
use ferry_protocol::id::Sha256;
use ferry_protocol::path::ObjectKey;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;

/// The base of a generation's path index, in its directory.
pub const INDEX_BASE: &str = "index.base";
/// The delta of a generation's path index.
pub const INDEX_DELTA: &str = "index.delta";
/// A generation's sources and totals (JSON), beside its index.
pub const INDEX_META: &str = "index.meta";

/// What `index.meta` holds.
#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    sources: BTreeMap<String, SourceKind>,
    objects: u64,
    bytes: u64,
    /// Its files' bytes are in the object store (`crate::objects`), by
    /// SHA-256; absent (false) in generations of an older ferry-in, whose
    /// bytes are their tree's files.
    #[serde(default)]
    object_store: bool,
    /// It has no tree of its files (`gens/G/<store>/<source>/<path>`):
    /// only its index, the objects and its stores' derived files. Absent
    /// (false) in generations of an older ferry-in, which kept a tree of
    /// hard links beside the objects (read by nobody).
    #[serde(default)]
    treeless: bool,
}

/// Whether the generation in `dir` keeps its bytes in the object store
/// (its `index.meta` says so); false for a generation of an older ferry-in
/// (no `index.meta`, or one without the flag). An `index.meta` that cannot
/// be read or decoded is an error naming it, never taken for an older tree.
pub fn in_object_store(dir: &std::path::Path) -> Result<bool, GenReadError> {
    let path = dir.join(INDEX_META);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(source) => return Err(GenReadError::Read { path, source }),
    };
    serde_json::from_slice::<Meta>(&bytes)
        .map(|m| m.object_store)
        .map_err(|e| GenReadError::Decode {
            path,
            message: e.to_string(),
        })
}

/// A generation that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum GenReadError {
    /// Its catalog or index file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Its catalog or index file does not decode.
    #[error("{path}: {message}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Its path index cannot be read (I/O, or a damaged block).
    #[error("generation {generation}: path index: {source}")]
    Index {
        /// The generation.
        generation: String,
        /// What failed.
        source: IndexError,
    },
}

/// A regular file of a generation, as readers need it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileMeta {
    /// SHA-256 of its bytes.
    pub sha256: Sha256,
    /// Its size.
    pub size: u64,
    /// Served executable.
    pub executable: bool,
}

impl From<&FileObject> for FileMeta {
    fn from(f: &FileObject) -> Self {
        FileMeta {
            sha256: f.sha256,
            size: f.size,
            executable: f.executable,
        }
    }
}

/// What a key is in a generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Held {
    /// A regular file.
    File(FileMeta),
    /// A symbolic link and its target (relative to the link's directory).
    Link(String),
}

impl Held {
    /// The file, if it is one.
    pub fn file(&self) -> Option<FileMeta> {
        match self {
            Held::File(f) => Some(*f),
            Held::Link(_) => None,
        }
    }

    /// The path index entry of this object.
    pub fn to_entry(&self) -> Entry {
        match self {
            Held::File(f) => Entry::File {
                sha256: f.sha256,
                size: f.size,
                executable: f.executable,
            },
            Held::Link(t) => Entry::Symlink { target: t.clone() },
        }
    }
}

fn held(o: &Object) -> Held {
    match o {
        Object::File(f) => Held::File(f.into()),
        Object::Symlink { target } => Held::Link(target.clone()),
    }
}

/// How a generation's keys are read.
enum Keys {
    /// Its path index.
    Index { view: Box<View<File>>, meta: Meta },
    /// The whole catalog (a generation written before the index).
    Catalog(Catalog),
}

/// One generation, opened for reading.
pub struct GenRead {
    name: String,
    dir: PathBuf,
    keys: Keys,
    /// The object store, when the generation keeps its bytes there.
    objects: Option<crate::objects::ObjectStore>,
}

/// The object key of index key `k` (`source \0 path`).
fn object_key(k: &[u8]) -> Option<ObjectKey> {
    let i = k.iter().position(|c| *c == 0)?;
    Some(ObjectKey {
        source: String::from_utf8(k[..i].to_vec()).ok()?,
        path: String::from_utf8(k[i + 1..].to_vec()).ok()?,
    })
}

fn held_of(e: Entry) -> Option<Held> {
    match e {
        Entry::File {
            sha256,
            size,
            executable,
        } => Some(Held::File(FileMeta {
            sha256,
            size,
            executable,
        })),
        Entry::Symlink { target } => Some(Held::Link(target)),
        Entry::Tombstone => None,
    }
}

impl GenRead {
    /// Opens generation `name` of `layout`.
    pub fn open(layout: &Layout, name: &str) -> Result<Self, GenReadError> {
        let dir = layout.gen(name);
        if dir.join(INDEX_META).is_file() {
            let mut g = Self::open_index(name, dir)?;
            if matches!(&g.keys, Keys::Index { meta, .. } if meta.object_store) {
                g.objects = Some(crate::objects::ObjectStore::new(&layout.objects()));
            }
            return Ok(g);
        }
        let path = dir.join(GEN_INDEX);
        let bytes = std::fs::read(&path).map_err(|source| GenReadError::Read {
            path: path.clone(),
            source,
        })?;
        let catalog = Catalog::from_bytes(&bytes).map_err(|e| GenReadError::Decode {
            path,
            message: e.to_string(),
        })?;
        Ok(GenRead {
            name: name.to_string(),
            dir,
            keys: Keys::Catalog(catalog),
            objects: None,
        })
    }

    /// Opens the path index of generation `name` in `dir`.
    fn open_index(name: &str, dir: PathBuf) -> Result<Self, GenReadError> {
        let read = |file: &str| {
            let path = dir.join(file);
            File::open(&path).map_err(|source| GenReadError::Read { path, source })
        };
        let meta_path = dir.join(INDEX_META);
        let meta_bytes = std::fs::read(&meta_path).map_err(|source| GenReadError::Read {
            path: meta_path.clone(),
            source,
        })?;
        let meta: Meta = serde_json::from_slice(&meta_bytes).map_err(|e| GenReadError::Decode {
            path: meta_path,
            message: e.to_string(),
        })?;
        let index = |source| GenReadError::Index {
            generation: name.to_string(),
            source,
        };
        let base = IndexFile::open(read(INDEX_BASE)?).map_err(index)?;
        let delta = IndexFile::open(read(INDEX_DELTA)?).map_err(index)?;
        let view = View::new(base, delta).map_err(index)?;
        Ok(GenRead {
            name: name.to_string(),
            dir,
            keys: Keys::Index {
                view: Box::new(view),
                meta,
            },
            objects: None,
        })
    }

    fn index_error(&self, source: IndexError) -> GenReadError {
        GenReadError::Index {
            generation: self.name.clone(),
            source,
        }
    }

    /// The generation `current` names, if any.
    pub fn open_current(layout: &Layout) -> Result<Option<Self>, GenReadError> {
        match layout.current_gen_name() {
            Some(name) => Self::open(layout, &name).map(Some),
            None => Ok(None),
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its sources and their kinds, by name.
    pub fn sources(&self) -> &BTreeMap<String, SourceKind> {
        match &self.keys {
            Keys::Index { meta, .. } => &meta.sources,
            Keys::Catalog(c) => &c.sources,
        }
    }

    /// How many objects (files and links) it holds.
    pub fn objects(&self) -> u64 {
        match &self.keys {
            Keys::Index { meta, .. } => meta.objects,
            Keys::Catalog(c) => c.objects.len() as u64,
        }
    }

    /// Whether its directory holds a tree of its files (a generation of an
    /// older ferry-in); readers never need it (`bytes_path`).
    pub fn has_tree(&self) -> bool {
        match &self.keys {
            Keys::Index { meta, .. } => !meta.treeless,
            Keys::Catalog(_) => true,
        }
    }

    /// Its directory (`gens/G`).
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// The bytes of its files.
    pub fn total_bytes(&self) -> u64 {
        match &self.keys {
            Keys::Index { meta, .. } => meta.bytes,
            Keys::Catalog(c) => c.total_bytes(),
        }
    }

    /// The kind of `source`, if it is one of this generation's.
    pub fn kind_of(&self, source: &str) -> Option<SourceKind> {
        self.sources().get(source).copied()
    }

    /// What `key` is, if held.
    pub fn get(&self, key: &ObjectKey) -> Result<Option<Held>, GenReadError> {
        match &self.keys {
            Keys::Index { view, .. } => view
                .get(&pathindex::key_of(key))
                .map(|e| e.and_then(held_of))
                .map_err(|e| self.index_error(e)),
            Keys::Catalog(c) => Ok(c.objects.get(key).map(held)),
        }
    }

    /// The file at `key`, if `key` is a regular file.
    pub fn file(&self, key: &ObjectKey) -> Result<Option<FileMeta>, GenReadError> {
        Ok(self.get(key)?.and_then(|h| h.file()))
    }

    /// The objects of `source` whose path starts with `prefix`, in key
    /// order, from the first path at or after `from` (give `prefix` to start
    /// at the beginning).
    pub fn scan<'a>(
        &'a self,
        source: &'a str,
        prefix: &'a str,
        from: &str,
    ) -> Box<dyn Iterator<Item = Result<(ObjectKey, Held), GenReadError>> + 'a> {
        let start = ObjectKey {
            source: source.to_string(),
            path: if from > prefix { from } else { prefix }.to_string(),
        };
        match &self.keys {
            Keys::Index { view, .. } => {
                let mut p = pathindex::dir_prefix(source, "");
                p.extend_from_slice(prefix.as_bytes());
                let from = pathindex::key_of(&start);
                Box::new(ScanIndex {
                    gen: self,
                    inner: Box::new(view.scan_prefix(&p, &from)),
                })
            }
            Keys::Catalog(c) => Box::new(
                c.objects
                    .range(start..)
                    .take_while(move |(k, _)| k.source == source && k.path.starts_with(prefix))
                    .map(|(k, o)| Ok((k.clone(), held(o)))),
            ),
        }
    }

    /// Where the bytes of the file `f` at `key` are (`key` must have passed
    /// `check_key`). Readers check the bytes against `f` as they read them
    /// (`serve::file`), or bound what they read by `f.size`.
    pub fn bytes_path(&self, key: &ObjectKey, f: &FileMeta) -> PathBuf {
        if let Some(objects) = &self.objects {
            return objects.path(&f.sha256);
        }
        let store = self.kind_of(&key.source).map_or("files", SourceKind::name);
        self.dir.join(store).join(&key.source).join(&key.path)
    }

    /// Where a store's derived file `path` of `source` is: `area` is the
    /// store's derived area (`store::apt::GEN_APT_SITE`,
    /// `store::pypi_meta::GEN_PYPI_META`).
    pub fn derived_path(&self, area: &str, source: &str, path: &str) -> PathBuf {
        self.dir.join(area).join(source).join(path)
    }
}

type IndexItems<'a> = Box<dyn Iterator<Item = Result<(Vec<u8>, Entry), IndexError>> + 'a>;

/// A scan of a generation's path index, as object keys.
struct ScanIndex<'a> {
    gen: &'a GenRead,
    inner: IndexItems<'a>,
}

impl Iterator for ScanIndex<'_> {
    type Item = Result<(ObjectKey, Held), GenReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (k, e) = match self.inner.next()? {
                Ok(kv) => kv,
                Err(e) => return Some(Err(self.gen.index_error(e))),
            };
            let Some(held) = held_of(e) else { continue };
            return Some(match object_key(&k) {
                Some(key) => Ok((key, held)),
                None => Err(self.gen.index_error(IndexError::Corrupt {
                    block: 0,
                    what: "a key that is not source NUL path in UTF-8",
                })),
            });
        }
    }
}

#[cfg(test)]
mod tests;
