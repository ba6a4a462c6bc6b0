//! One way to read a generation (issue 15): what a key is (a file's SHA-256,
//! size and mode, or a link), a sorted range of keys, the sources and their
//! kinds, and where a file's bytes and a store's derived files are.
//!
//! Every reader of a served generation (`serve`) goes through [`GenRead`],
//! so that the layout under it can change in one place: today it is the
//! generation directory `gens/G/<store>/<source>/<path>` and its catalog
//! (`gens/G/index.ferry`); by the design of docs/scale.md it becomes a path
//! index (`crate::pathindex`, a base and a delta) over objects stored once
//! by SHA-256. Lookups and scans return `Result` already, as reading an
//! index file can fail.

use crate::layout::{Layout, GEN_INDEX};
use crate::pathindex::Entry;
use ferry_protocol::catalog::{Catalog, FileObject, Object, SourceKind};
use ferry_protocol::id::Sha256;
use ferry_protocol::path::ObjectKey;
use std::collections::BTreeMap;
use std::path::PathBuf;

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

/// One generation, opened for reading.
pub struct GenRead {
    name: String,
    dir: PathBuf,
    catalog: Catalog,
}

impl GenRead {
    /// Opens generation `name` of `layout`.
    pub fn open(layout: &Layout, name: &str) -> Result<Self, GenReadError> {
        let dir = layout.gen(name);
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
            catalog,
        })
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
        &self.catalog.sources
    }

    /// How many objects (files and links) it holds.
    pub fn objects(&self) -> u64 {
        self.catalog.objects.len() as u64
    }

    /// The bytes of its files.
    pub fn total_bytes(&self) -> u64 {
        self.catalog.total_bytes()
    }

    /// The kind of `source`, if it is one of this generation's.
    pub fn kind_of(&self, source: &str) -> Option<SourceKind> {
        self.catalog.sources.get(source).copied()
    }

    /// What `key` is, if held.
    pub fn get(&self, key: &ObjectKey) -> Result<Option<Held>, GenReadError> {
        Ok(self.catalog.objects.get(key).map(held))
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
    ) -> impl Iterator<Item = Result<(ObjectKey, Held), GenReadError>> + 'a {
        let start = ObjectKey {
            source: source.to_string(),
            path: if from > prefix { from } else { prefix }.to_string(),
        };
        self.catalog
            .objects
            .range(start..)
            .take_while(move |(k, _)| k.source == source && k.path.starts_with(prefix))
            .map(|(k, o)| Ok((k.clone(), held(o))))
    }

    /// Where the bytes of the file `f` at `key` are (`key` must have passed
    /// `check_key`). Readers check the bytes against `f` as they read them
    /// (`serve::file`), or bound what they read by `f.size`.
    pub fn bytes_path(&self, key: &ObjectKey, f: &FileMeta) -> PathBuf {
        let _ = f;
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
