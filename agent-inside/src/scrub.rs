//! `ferry-in scrub`: reads every byte the inside holds and checks it, as
//! `restic check --read-data` does.
//!
//! - Every file object of the current generation: its size and SHA-256
//!   against the catalog in the state database. A good file vouches for the
//!   chunks that are byte ranges of it (`crate::ranges`).
//! - Every chunk in the chunk store: its bytes against its BLAKE3 id; and
//!   every chunk the catalog refers to must be held (in the store or as a
//!   range of a good file).
//!
//! What is bad is quarantined under `STATE/quarantine/`:
//!
//! - a rotten chunk is moved to `quarantine/chunks/<id>`, so the store no
//!   longer claims to hold it: the next bundle that relies on it is refused
//!   with an error naming it, until the outside re-ships it;
//! - a rotten object file (`STATE/objects/ab/<sha256>`, read once however
//!   many paths name it; in a generation of an older ferry-in, its tree's
//!   file) is moved out of the store to
//!   `quarantine/objects/<generation>/<store>/<source>/<path>` (named after the
//!   first path naming it): `serve` answers 500 for it instead of rotten
//!   bytes. Before it is moved, each of
//!   its chunk ranges is read and checked: the good ones that no good file
//!   holds are copied into the chunk store (salvaged), the rotten ones are
//!   reported as bad chunks. The next import rebuilds the object from its
//!   chunks (checked again) once every one of them is held again.
//!
//! See docs/scrub.md for the repair loop.

use crate::chunkstore::ChunkStore;
use crate::db::Db;
use crate::layout::Layout;
use crate::ranges::{ranges_of, read_range, Files, RangeError};
use anyhow::{Context, Result};
use ferry_protocol::catalog::{Catalog, Encoding, FileObject};
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
    /// Chunks vouched for as byte ranges of good object files.
    pub ranges_checked: u64,
    /// Good chunks of rotten object files copied into the chunk store.
    pub chunks_salvaged: u64,
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
            "scrub: generation {}: {} objects ({} bytes) and {} chunks read \
             (and {} chunks as ranges of good objects); {} bad objects, {} bad chunks\n",
            self.generation.as_deref().unwrap_or("(none)"),
            self.objects_checked,
            self.object_bytes,
            self.chunks_checked,
            self.ranges_checked,
            self.bad_objects.len(),
            self.bad_chunks.len()
        );
        for b in &self.bad_objects {
            s += &format!("bad object {}/{}: {}\n", b.source, b.path, b.problem);
        }
        for c in &self.bad_chunks {
            s += &format!("bad chunk {}: {}\n", c.id, c.error);
        }
        if self.chunks_salvaged > 0 {
            s += &format!(
                "{} good chunks of rotten objects were copied into the chunk store\n",
                self.chunks_salvaged
            );
        }
        if !self.ok() {
            s += "rotten files were moved to STATE/quarantine/; the next import rebuilds \
                  objects from good chunks; bad chunks must be re-shipped by the outside \
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
    let (_, chunk_bytes) = store.usage();
    let pb = ferry_agent_common::progress::bytes(catalog.total_bytes() + chunk_bytes, "scrubbing");
    let mut report = Report {
        generation: generation.clone(),
        ..Report::default()
    };
    let mut ranges = Ranges::default();
    if let Some(g) = &generation {
        check_objects(layout, g, &catalog, &store, &pb, &mut report, &mut ranges)?;
    }
    // Listed after the objects, so salvaged chunks are read again too.
    let ids = store.ids();
    check_chunks(layout, &store, &ids, &catalog, &ranges, &pb, &mut report)?;
    pb.finish_and_clear();
    if !report.ok() || report.chunks_salvaged > 0 {
        crate::apply::sync_filesystem(&layout.root)?;
    }
    // An import rebuilds these objects: it does not look for the object of
    // an unchanged file otherwise.
    if matches!(
        generation.as_ref().map(|g| layout.gen(g)),
        Some(g) if crate::genread::in_object_store(&g)?
    ) {
        let digests: HashSet<_> = report
            .bad_objects
            .iter()
            .filter_map(|b| {
                let key = ObjectKey {
                    source: b.source.clone(),
                    path: b.path.clone(),
                };
                match catalog.objects.get(&key) {
                    Some(ferry_protocol::catalog::Object::File(f)) => Some(f.sha256),
                    _ => None,
                }
            })
            .collect();
        db.record_missing_objects(digests.into_iter())?;
    }
    // An apply looks at these, not at every kept chunk of the catalog.
    db.record_missing(
        report
            .bad_chunks
            .iter()
            .filter_map(|c| ChunkId::from_hex(&c.id)),
    )?;
    drop(db);
    Ok(report)
}

/// What the object check learnt about chunks held as ranges.
#[derive(Default)]
struct Ranges {
    /// Chunks that are ranges of good files.
    good: HashSet<ChunkId>,
    /// Rotten or unreadable ranges of bad files whose chunk no good file
    /// holds: the error, and where the file went.
    /// The object whose file it is, named in the report.
    bad: Vec<(RangeError, Option<PathBuf>, ObjectKey)>,
}

fn check_objects(
    layout: &Layout,
    generation: &str,
    catalog: &Catalog,
    store: &ChunkStore,
    pb: &indicatif::ProgressBar,
    report: &mut Report,
    ranges: &mut Ranges,
) -> Result<()> {
    use rayon::prelude::*;
    let gen_dir = layout.gen(generation);
    let objects = crate::objects::ObjectStore::new(&layout.objects());
    let at = Files::of_gen(&gen_dir, &objects)?;
    // A generation of session 10's ferry-in kept a tree of links beside
    // the objects: its links to a quarantined object go too.
    let has_tree = crate::genread::GenRead::open(layout, generation)?.has_tree();
    let files: Vec<(&ObjectKey, &FileObject)> = catalog.files().collect();
    // Each stored file is read once, however many keys name its digest.
    let mut unique: Vec<(PathBuf, &FileObject)> = Vec::new();
    let mut seen = HashSet::new();
    for (key, f) in &files {
        if let Some(p) = at.path(&catalog.sources, key, &f.sha256) {
            if seen.insert(p.clone()) {
                unique.push((p, *f));
            }
        }
    }
    let bad_paths: std::collections::HashMap<PathBuf, ObjectProblem> = unique
        .par_iter()
        .filter_map(|(p, f)| {
            let problem = check_file(p, &(*f).into(), |n| pb.inc(n))?;
            Some((p.clone(), problem))
        })
        .collect();
    report.objects_checked = files.len() as u64;
    report.object_bytes = files.iter().map(|(_, f)| f.size).sum();
    let path_of = |key: &ObjectKey, f: &FileObject| at.path(&catalog.sources, key, &f.sha256);
    for (key, f) in &files {
        if path_of(key, f).is_some_and(|p| !bad_paths.contains_key(&p)) {
            ranges.good.extend(ranges_of(f).map(|(id, _, _)| id));
        }
    }
    report.ranges_checked = ranges.good.len() as u64;
    let qdir = quarantine_dir(layout).join("objects").join(generation);
    let mut moved: std::collections::HashMap<PathBuf, Option<PathBuf>> = Default::default();
    for (key, f) in &files {
        let Some(from) = path_of(key, f) else {
            continue;
        };
        let Some(problem) = bad_paths.get(&from) else {
            continue;
        };
        let quarantined_to = match moved.get(&from) {
            Some(to) => to.clone(),
            None => {
                let rotten = salvage(&from, f, store, &ranges.good, &mut report.chunks_salvaged)?;
                let rel = crate::ranges::object_rel(catalog, key)
                    .unwrap_or_else(|| Path::new(&key.source).join(&key.path));
                let to = match problem {
                    ObjectProblem::Missing { .. } => None,
                    _ => Some(move_out(&from, &qdir.join(rel))?),
                };
                ranges
                    .bad
                    .extend(rotten.into_iter().map(|e| (e, to.clone(), (*key).clone())));
                if to.is_some() && matches!(at, Files::Objects(_)) && has_tree {
                    unlink_tree(&gen_dir, catalog, &files, &f.sha256)?;
                }
                moved.insert(from, to.clone());
                to
            }
        };
        report.bad_objects.push(BadObject {
            source: key.source.to_string(),
            path: key.path.to_string(),
            problem: problem.clone(),
            quarantined_to,
        });
    }
    Ok(())
}

/// Reads each chunk range of the bad file at `path` (of object `f`, carried
/// as chunks) that neither a good file nor the store holds: a good one is
/// copied into the store, a rotten or unreadable one is returned.
fn salvage(
    path: &Path,
    f: &FileObject,
    store: &ChunkStore,
    good: &HashSet<ChunkId>,
    salvaged: &mut u64,
) -> Result<Vec<RangeError>> {
    let mut rotten = Vec::new();
    if !matches!(f.encoding, Encoding::Chunks(_)) {
        return Ok(rotten);
    }
    let mut seen = HashSet::new();
    for (id, offset, len) in ranges_of(f) {
        if good.contains(&id) || store.contains(&id) || !seen.insert(id) {
            continue;
        }
        match read_range(path, &id, offset, len) {
            Ok(data) => {
                let (codec, stored) = ferry_protocol::codec::encode(&data, 3);
                store.put(&id, codec, len, &stored)?;
                *salvaged += 1;
            }
            Err(e) => rotten.push(e),
        }
    }
    Ok(rotten)
}

/// Removes from the generation's tree (of an older ferry-in, kept beside
/// the objects) every path whose file is the quarantined object `sha`, so that the tree
/// holds no rotten file either.
fn unlink_tree(
    gen_dir: &Path,
    catalog: &Catalog,
    files: &[(&ObjectKey, &FileObject)],
    sha: &ferry_protocol::id::Sha256,
) -> Result<()> {
    for (key, _) in files.iter().filter(|(_, f)| f.sha256 == *sha) {
        let Some(rel) = crate::ranges::object_rel(catalog, key) else {
            continue;
        };
        let p = gen_dir.join(rel);
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot remove {}", p.display())),
        }
    }
    Ok(())
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
pub fn check_file(
    path: &Path,
    f: &crate::genread::FileMeta,
    on_bytes: impl Fn(u64),
) -> Option<ObjectProblem> {
    match hash_file(path, on_bytes) {
        Err(e) => Some(ObjectProblem::Missing {
            error: format!("{}: {e}", path.display()),
        }),
        Ok((size, sha)) => problem_of(size, sha, f),
    }
}

/// What is wrong with `size` bytes of SHA-256 `sha` stored for `f`; `None`
/// when they are `f`'s.
pub fn problem_of(
    size: u64,
    sha: ferry_protocol::id::Sha256,
    f: &crate::genread::FileMeta,
) -> Option<ObjectProblem> {
    if size != f.size {
        Some(ObjectProblem::Size {
            expected: f.size,
            got: size,
        })
    } else if sha != f.sha256 {
        Some(ObjectProblem::Digest {
            expected: format!("sha256:{}", f.sha256.to_hex()),
            got: format!("sha256:{}", sha.to_hex()),
        })
    } else {
        None
    }
}

/// The size and SHA-256 of a file, read 1 MiB at a time (a smaller file
/// into a buffer of its size: `serve` hashes every small file it sends
/// first, and a zeroed 1 MiB each time was a fifth of its CPU).
pub fn hash_file(
    path: &Path,
    on_bytes: impl Fn(u64),
) -> std::io::Result<(u64, ferry_protocol::id::Sha256)> {
    let mut file = std::fs::File::open(path)?;
    // One byte over the size stated, so that the read that finds the end
    // comes second; a file that grew meanwhile is read on in the same buffer.
    let stated = file.metadata().map_or(0, |m| m.len());
    let len = usize::try_from(stated.saturating_add(1)).map_or(1 << 20, |n| n.clamp(4096, 1 << 20));
    let mut buf = vec![0u8; len];
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
    ranges: &Ranges,
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
    let mut reported = HashSet::new();
    for (id, error) in &rotten {
        let to = store.quarantine(id, &qdir)?;
        reported.insert(*id);
        report.bad_chunks.push(BadChunk {
            id: id.to_hex(),
            problem: ChunkProblem::Corrupt,
            error: error.clone(),
            quarantined_to: Some(to),
        });
    }
    let mut held: HashSet<ChunkId> = ids.iter().copied().collect();
    held.retain(|id| !reported.contains(id));
    held.extend(ranges.good.iter().copied());
    for (e, quarantined_to, key) in &ranges.bad {
        if held.contains(&e.id()) || !reported.insert(e.id()) {
            continue;
        }
        report.bad_chunks.push(BadChunk {
            id: e.id().to_hex(),
            problem: match e {
                RangeError::Rotten { .. } => ChunkProblem::Corrupt,
                _ => ChunkProblem::Missing,
            },
            error: format!("object {key}: {e}"),
            quarantined_to: quarantined_to.clone(),
        });
    }
    for (key, f) in catalog.files() {
        for r in f.held_chunks() {
            if !held.contains(&r.id) && reported.insert(r.id) {
                report.bad_chunks.push(BadChunk {
                    id: r.id.to_hex(),
                    problem: ChunkProblem::Missing,
                    error: format!(
                        "object {key} needs it and neither the chunk store nor a good file holds it"
                    ),
                    quarantined_to: None,
                });
            }
        }
    }
    Ok(())
}
