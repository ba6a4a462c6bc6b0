//! `ferry-in scrub`: reads every byte the inside holds and checks it, as
//! `restic check --read-data` does.
//!
//! - Every file object of the current generation: its size and SHA-256
//!   against the catalog in the state database.
//! - Every chunk in the chunk store: its bytes against its BLAKE3 id; and
//!   every chunk the catalog refers to must be held.
//!
//! What is bad is quarantined under `STATE/quarantine/`:
//!
//! - a rotten chunk is moved to `quarantine/chunks/<id>`, so the store no
//!   longer claims to hold it: the next bundle that relies on it is refused
//!   with an error naming it, until the outside re-ships it;
//! - a rotten object file is moved out of the generation to
//!   `quarantine/objects/<generation>/<store>/<source>/<path>`: `serve`
//!   answers 500 for it instead of rotten bytes, and the next import finds
//!   nothing to hard-link and rebuilds it from its chunks (checked again).
//!
//! See docs/scrub.md for the repair loop.

use crate::chunkstore::ChunkStore;
use crate::db::Db;
use crate::layout::Layout;
use anyhow::{Context, Result};
use ferry_protocol::catalog::{Catalog, FileObject};
use ferry_protocol::id::{ChunkId, Sha256Hasher};
use ferry_protocol::path::ObjectKey;
use serde::Serialize;
use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};

/// What is wrong with one object file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum ObjectProblem {
    /// The file is missing from the generation (or cannot be read).
    Missing {
        /// The error.
        error: String,
    },
    /// The file's size is not the catalog's.
    Size {
        /// Bytes the catalog states.
        expected: u64,
        /// Bytes found.
        got: u64,
    },
    /// The file's SHA-256 is not the catalog's.
    Digest {
        /// `sha256:<hex>` the catalog states.
        expected: String,
        /// `sha256:<hex>` of the bytes found.
        got: String,
    },
}

impl std::fmt::Display for ObjectProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ObjectProblem::Missing { error } => write!(f, "unreadable: {error}"),
            ObjectProblem::Size { expected, got } => {
                write!(f, "{got} bytes, the catalog says {expected}")
            }
            ObjectProblem::Digest { expected, got } => {
                write!(f, "SHA-256 is {got}, the catalog says {expected}")
            }
        }
    }
}

/// One bad object of the current generation.
#[derive(Clone, Debug, Serialize)]
pub struct BadObject {
    /// Its source.
    pub source: String,
    /// Its path within the source.
    pub path: String,
    /// What is wrong.
    #[serde(flatten)]
    pub problem: ObjectProblem,
    /// Where the rotten file was moved, if it was.
    pub quarantined_to: Option<PathBuf>,
}

/// What is wrong with one chunk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChunkProblem {
    /// Its bytes do not decode to its id.
    Corrupt,
    /// The catalog refers to it and the store lacks it.
    Missing,
}

/// One bad chunk.
#[derive(Clone, Debug, Serialize)]
pub struct BadChunk {
    /// Its BLAKE3 id, in hex.
    pub id: String,
    /// What is wrong.
    pub problem: ChunkProblem,
    /// The error, for the operator.
    pub error: String,
    /// Where the rotten file was moved, if it was.
    pub quarantined_to: Option<PathBuf>,
}

/// The outcome of a scrub.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// The generation checked, if any bundle has been applied.
    pub generation: Option<String>,
    /// Objects of the generation read.
    pub objects_checked: u64,
    /// Bytes of those objects.
    pub object_bytes: u64,
    /// Chunks of the chunk store read.
    pub chunks_checked: u64,
    /// Objects whose bytes are not the catalog's.
    pub bad_objects: Vec<BadObject>,
    /// Chunks that are rotten or missing.
    pub bad_chunks: Vec<BadChunk>,
}

impl Report {
    /// Whether nothing bad was found.
    pub fn ok(&self) -> bool {
        self.bad_objects.is_empty() && self.bad_chunks.is_empty()
    }

    /// The summary lines printed after a scrub.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "scrub: generation {}: {} objects ({} bytes) and {} chunks read; \
             {} bad objects, {} bad chunks\n",
            self.generation.as_deref().unwrap_or("(none)"),
            self.objects_checked,
            self.object_bytes,
            self.chunks_checked,
            self.bad_objects.len(),
            self.bad_chunks.len()
        );
        for b in &self.bad_objects {
            s += &format!("bad object {}/{}: {}\n", b.source, b.path, b.problem);
        }
        for c in &self.bad_chunks {
            s += &format!("bad chunk {}: {}\n", c.id, c.error);
        }
        if !self.ok() {
            s += "rotten files were moved to STATE/quarantine/; the next import rebuilds \
                  objects from good chunks; chunks must be re-shipped by the outside \
                  (give it this report: `ferry-in scrub --json`)\n";
        }
        s
    }
}

/// The quarantine directory of a state directory.
pub fn quarantine_dir(layout: &Layout) -> PathBuf {
    layout.root.join("quarantine")
}

/// Reads and checks every object of the current generation and every chunk,
/// quarantining what is bad.
pub fn scrub(layout: &Layout, max_chunk: u32) -> Result<Report> {
    // The database stays open (locked) until the scrub ends, so no import
    // moves the generation or prunes the chunk store under it.
    let db = Db::open(&layout.db())?;
    let (catalog, generation) = (db.catalog()?, db.applied()?.generation);
    let store = ChunkStore::new(&layout.chunks(), max_chunk);
    let ids = store.ids();
    let (_, chunk_bytes) = store.usage();
    let pb = ferry_agent_common::progress::bytes(catalog.total_bytes() + chunk_bytes, "scrubbing");
    let mut report = Report {
        generation: generation.clone(),
        ..Report::default()
    };
    if let Some(g) = &generation {
        check_objects(layout, g, &catalog, &pb, &mut report)?;
    }
    check_chunks(layout, &store, &ids, &catalog, &pb, &mut report)?;
    pb.finish_and_clear();
    drop(db);
    Ok(report)
}

fn check_objects(
    layout: &Layout,
    generation: &str,
    catalog: &Catalog,
    pb: &indicatif::ProgressBar,
    report: &mut Report,
) -> Result<()> {
    use rayon::prelude::*;
    let gen_dir = layout.gen(generation);
    let files: Vec<(&ObjectKey, &FileObject)> = catalog.files().collect();
    let bad: Vec<(&ObjectKey, PathBuf, ObjectProblem)> = files
        .par_iter()
        .filter_map(|(key, f)| {
            let rel = object_rel(catalog, key)?;
            let problem = check_file(&gen_dir.join(&rel), f, |n| pb.inc(n))?;
            Some((*key, rel, problem))
        })
        .collect();
    report.objects_checked = files.len() as u64;
    report.object_bytes = files.iter().map(|(_, f)| f.size).sum();
    let qdir = quarantine_dir(layout).join("objects").join(generation);
    for (key, rel, problem) in bad {
        let from = gen_dir.join(&rel);
        let quarantined_to = match problem {
            ObjectProblem::Missing { .. } => None,
            _ => Some(move_out(&from, &qdir.join(&rel))?),
        };
        report.bad_objects.push(BadObject {
            source: key.source.to_string(),
            path: key.path.to_string(),
            problem,
            quarantined_to,
        });
    }
    Ok(())
}

/// `<store>/<source>/<path>` of an object in a generation directory.
fn object_rel(catalog: &Catalog, key: &ObjectKey) -> Option<PathBuf> {
    let kind = catalog.sources.get(&key.source)?;
    Some(Path::new(kind.name()).join(&key.source).join(&key.path))
}

fn move_out(from: &Path, to: &Path) -> Result<PathBuf> {
    let parent = to.parent().expect("quarantine paths have a parent");
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    std::fs::rename(from, to)
        .with_context(|| format!("cannot move {} to {}", from.display(), to.display()))?;
    Ok(to.to_path_buf())
}

/// Reads the file at `path` (streamed) and compares it with `f`; `None`
/// when it is good.
pub fn check_file(path: &Path, f: &FileObject, on_bytes: impl Fn(u64)) -> Option<ObjectProblem> {
    match hash_file(path, on_bytes) {
        Err(e) => Some(ObjectProblem::Missing {
            error: format!("{}: {e}", path.display()),
        }),
        Ok((size, _)) if size != f.size => Some(ObjectProblem::Size {
            expected: f.size,
            got: size,
        }),
        Ok((_, sha)) if sha != f.sha256 => Some(ObjectProblem::Digest {
            expected: format!("sha256:{}", f.sha256.to_hex()),
            got: format!("sha256:{}", sha.to_hex()),
        }),
        Ok(_) => None,
    }
}

/// The size and SHA-256 of a file, read 1 MiB at a time.
pub fn hash_file(
    path: &Path,
    on_bytes: impl Fn(u64),
) -> std::io::Result<(u64, ferry_protocol::id::Sha256)> {
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut sha = Sha256Hasher::new();
    let mut size = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        sha.update(&buf[..n]);
        size += n as u64;
        on_bytes(n as u64);
    }
    Ok((size, sha.finish()))
}

fn check_chunks(
    layout: &Layout,
    store: &ChunkStore,
    ids: &[ChunkId],
    catalog: &Catalog,
    pb: &indicatif::ProgressBar,
    report: &mut Report,
) -> Result<()> {
    use rayon::prelude::*;
    let rotten: Vec<(ChunkId, String)> = ids
        .par_iter()
        .filter_map(|id| match store.get(id) {
            Ok(data) => {
                pb.inc(data.len() as u64);
                None
            }
            Err(e) => Some((*id, format!("{e:#}"))),
        })
        .collect();
    report.chunks_checked = ids.len() as u64;
    let qdir = quarantine_dir(layout).join("chunks");
    for (id, error) in rotten {
        let to = store.quarantine(&id, &qdir)?;
        report.bad_chunks.push(BadChunk {
            id: id.to_hex(),
            problem: ChunkProblem::Corrupt,
            error,
            quarantined_to: Some(to),
        });
    }
    let held: HashSet<ChunkId> = ids.iter().copied().collect();
    let mut missing = HashSet::new();
    for (key, f) in catalog.files() {
        for r in f.chunks() {
            if !held.contains(&r.id) && missing.insert(r.id) {
                report.bad_chunks.push(BadChunk {
                    id: r.id.to_hex(),
                    problem: ChunkProblem::Missing,
                    error: format!("object {key} needs it and the chunk store lacks it"),
                    quarantined_to: None,
                });
            }
        }
    }
    Ok(())
}
