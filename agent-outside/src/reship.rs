//! `export --reship REPORT`: the outside's half of the repair loop
//! (docs/scrub.md).
//!
//! `ferry-in scrub --json` reports the chunks it found rotten or missing
//! (`bad_chunks[].id`) and the object files it found rotten
//! (`bad_objects[]`: `source`, `path`), and the generation it checked
//! (`generation`, whose first field is the applied sequence). The outside
//! asks its ledger to ship again those chunks and every chunk of those
//! objects as its catalog at that sequence lists them ([`chunks_to_reship`]);
//! they leave the shipped set, so the next export re-reads the objects that
//! use them and carries them. [`check_carried`] refuses a bundle that would
//! still lack one of them (an object no source re-reads, such as a pinned
//! one), instead of a bundle the inside would refuse.

use crate::ledger::{Compacted, Ledger};
use anyhow::Result;
use ferry_protocol::catalog::FileObject;
use ferry_protocol::id::ChunkId;
use ferry_protocol::path::ObjectKey;
use serde::Deserialize;
use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The largest scrub report read (a report of every chunk of a large store
/// is a few hundred MB at most).
pub const MAX_REPORT_BYTES: u64 = 1 << 30;

/// What is wrong with a scrub report, or with shipping what it names again.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReshipError {
    /// The report cannot be read.
    #[error("scrub report {}: cannot read it: {source}", path.display())]
    Read {
        /// The report.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The report is larger than [`MAX_REPORT_BYTES`].
    #[error("scrub report {}: larger than {MAX_REPORT_BYTES} bytes", path.display())]
    TooLarge {
        /// The report.
        path: PathBuf,
    },
    /// Not the JSON of `ferry-in scrub --json`.
    #[error("scrub report {}: not a `ferry-in scrub --json` report: {why}", path.display())]
    Malformed {
        /// The report.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A chunk id that is not 64 hex digits.
    #[error("scrub report {}: bad_chunks[{index}].id {id:?} is not a chunk id (64 hex digits)", path.display())]
    BadChunkId {
        /// The report.
        path: PathBuf,
        /// Its place in `bad_chunks`.
        index: usize,
        /// The id as written.
        id: String,
    },
    /// A generation name that does not start with its sequence.
    #[error("scrub report: generation {0:?} is not a ferry-in generation name (SEQUENCE-RANDOM)")]
    BadGeneration(String),
    /// The report checked a generation this outside never exported.
    #[error("scrub report: generation {generation:?} is of bundle {sequence}, but this outside's stream has bundles up to {head} only (a report of another stream?)")]
    UnknownGeneration {
        /// The generation.
        generation: String,
        /// Its sequence.
        sequence: u64,
        /// The ledger's head.
        head: u64,
    },
    /// The generation's catalog was compacted away by `prune`.
    #[error("scrub report: generation {generation:?} is of bundle {sequence}, whose catalog `ferry-out prune` compacted away (the ledger holds catalogs from bundle {from} on), so its bad objects cannot be mapped to chunks; apply the newest bundles on the inside and scrub again")]
    CompactedGeneration {
        /// The generation.
        generation: String,
        /// Its sequence.
        sequence: u64,
        /// The oldest sequence whose catalog is held.
        from: u64,
    },
    /// Bad objects, but no generation to find their chunks in.
    #[error("scrub report: it names bad objects but no generation")]
    NoGeneration,
    /// A bad object the outside's catalog does not hold.
    #[error(
        "scrub report: bad object {key} is not in this outside's catalog of bundle {sequence}"
    )]
    UnknownObject {
        /// The object.
        key: ObjectKey,
        /// The catalog looked in.
        sequence: u64,
    },
    /// The next bundle would still lack a chunk to ship again.
    #[error("chunk {chunk} must be shipped again (scrub report), but {key} needs it and no source read {key} again (pinned, or kept from an earlier bundle); nothing was exported")]
    NotCarried {
        /// The chunk.
        chunk: ChunkId,
        /// An object of the next catalog that needs it.
        key: ObjectKey,
    },
}

/// The parts of a scrub report the outside uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScrubReport {
    /// The generation checked.
    pub generation: Option<String>,
    /// Chunks rotten or missing.
    pub bad_chunks: Vec<ChunkId>,
    /// Objects rotten or missing.
    pub bad_objects: Vec<ObjectKey>,
}

#[derive(Deserialize)]
struct RawReport {
    generation: Option<String>,
    bad_objects: Vec<RawObject>,
    bad_chunks: Vec<RawChunk>,
}

#[derive(Deserialize)]
struct RawObject {
    source: String,
    path: String,
}

#[derive(Deserialize)]
struct RawChunk {
    id: String,
}

impl ScrubReport {
    /// Reads and parses the report at `path`.
    pub fn load(path: &Path) -> Result<ScrubReport, ReshipError> {
        let read = |source| ReshipError::Read {
            path: path.into(),
            source,
        };
        let f = std::fs::File::open(path).map_err(read)?;
        let mut bytes = Vec::new();
        f.take(MAX_REPORT_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(read)?;
        if bytes.len() as u64 > MAX_REPORT_BYTES {
            return Err(ReshipError::TooLarge { path: path.into() });
        }
        Self::parse(&bytes, path)
    }

    /// Parses a report's bytes (`path` names it in errors).
    pub fn parse(bytes: &[u8], path: &Path) -> Result<ScrubReport, ReshipError> {
        let raw: RawReport = serde_json::from_slice(bytes).map_err(|e| ReshipError::Malformed {
            path: path.into(),
            why: e.to_string(),
        })?;
        let bad_chunks = raw
            .bad_chunks
            .into_iter()
            .enumerate()
            .map(|(index, c)| {
                ChunkId::from_hex(&c.id).ok_or_else(|| ReshipError::BadChunkId {
                    path: path.into(),
                    index,
                    id: c.id,
                })
            })
            .collect::<Result<_, _>>()?;
        let bad_objects = raw
            .bad_objects
            .into_iter()
            .map(|o| ObjectKey {
                source: o.source,
                path: o.path,
            })
            .collect();
        Ok(ScrubReport {
            generation: raw.generation,
            bad_chunks,
            bad_objects,
        })
    }

    /// The sequence of the generation checked (`00000002-1a2b3c4d` is 2).
    pub fn sequence(&self) -> Result<Option<u64>, ReshipError> {
        let Some(g) = &self.generation else {
            return Ok(None);
        };
        let seq = g.split('-').next().filter(|s| !s.is_empty());
        seq.and_then(|s| s.parse().ok())
            .map(Some)
            .ok_or_else(|| ReshipError::BadGeneration(g.clone()))
    }
}

/// The chunks to ship again for `report`: its bad chunks, and every chunk
/// of its bad objects in the ledger's catalog of the generation checked.
pub fn chunks_to_reship(report: &ScrubReport, ledger: &Ledger) -> Result<Vec<ChunkId>> {
    let mut out: Vec<ChunkId> = report.bad_chunks.clone();
    if report.bad_objects.is_empty() {
        return Ok(out);
    }
    let sequence = report.sequence()?.ok_or(ReshipError::NoGeneration)?;
    let head = ledger.head()?.sequence;
    if sequence > head {
        return Err(ReshipError::UnknownGeneration {
            generation: report.generation.clone().unwrap_or_default(),
            sequence,
            head,
        }
        .into());
    }
    let catalog = ledger
        .catalog(sequence)
        .map_err(|e| match e.downcast::<Compacted>() {
            Ok(c) => ReshipError::CompactedGeneration {
                generation: report.generation.clone().unwrap_or_default(),
                sequence,
                from: c.from,
            }
            .into(),
            Err(e) => e,
        })?;
    for key in &report.bad_objects {
        match catalog.objects.get(key) {
            Some(ferry_protocol::catalog::Object::File(f)) => out.extend(f.chunks().map(|c| c.id)),
            Some(_) => {} // a symlink has no bytes to rot
            None => {
                return Err(ReshipError::UnknownObject {
                    key: key.clone(),
                    sequence,
                }
                .into())
            }
        }
    }
    let mut seen = HashSet::new();
    out.retain(|id| seen.insert(*id));
    Ok(out)
}

/// Checks that a bundle whose catalog is `next` carries every chunk of
/// `reship` that `next` still needs (`carries` tells what it carries).
pub fn check_carried<'a>(
    reship: &HashSet<ChunkId>,
    next: impl IntoIterator<Item = (&'a ObjectKey, &'a FileObject)>,
    carries: impl Fn(&ChunkId) -> bool,
) -> Result<(), ReshipError> {
    if reship.is_empty() {
        return Ok(());
    }
    for (key, f) in next {
        if let Some(c) = f
            .chunks()
            .find(|c| reship.contains(&c.id) && !carries(&c.id))
        {
            return Err(ReshipError::NotCarried {
                chunk: c.id,
                key: key.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_protocol::catalog::Catalog;

    fn parse(text: &str) -> Result<ScrubReport, ReshipError> {
        ScrubReport::parse(text.as_bytes(), Path::new("r.json"))
    }

    #[test]
    fn a_report_parses_and_every_malformed_one_is_a_typed_error() {
        let id = ChunkId::of(b"x");
        let good = format!(
            r#"{{"generation":"00000002-1a2b3c4d","objects_checked":1,"bad_objects":[{{"source":"tools","path":"a/b","problem":"digest"}}],"bad_chunks":[{{"id":"{id}","problem":"corrupt"}}]}}"#
        );
        let r = parse(&good).unwrap();
        assert_eq!(r.bad_chunks, [id]);
        assert_eq!(r.bad_objects[0].to_string(), "tools/a/b");
        assert_eq!(r.sequence().unwrap(), Some(2));

        assert!(matches!(
            parse("not json"),
            Err(ReshipError::Malformed { .. })
        ));
        assert!(matches!(
            parse(r#"{"generation":null,"bad_objects":[]}"#),
            Err(ReshipError::Malformed { .. })
        ));
        let e = parse(r#"{"generation":null,"bad_objects":[],"bad_chunks":[{"id":"abc"}]}"#);
        assert!(
            matches!(e, Err(ReshipError::BadChunkId { index: 0, .. })),
            "{e:?}"
        );
        let r = parse(r#"{"generation":"x-1","bad_objects":[],"bad_chunks":[]}"#).unwrap();
        assert!(matches!(r.sequence(), Err(ReshipError::BadGeneration(_))));
    }

    #[test]
    fn a_needed_chunk_not_carried_is_named() {
        let data = b"some bytes".to_vec();
        let f = ferry_protocol::builder::cut_file::<_, ferry_protocol::builder::BuildError>(
            &data[..],
            false,
            |_, _| Ok(()),
        )
        .unwrap();
        let id = f.chunks().next().unwrap().id;
        let mut next = Catalog::default();
        let key = ObjectKey {
            source: "s".into(),
            path: "p".into(),
        };
        next.objects
            .insert(key.clone(), ferry_protocol::catalog::Object::File(f));
        let reship: HashSet<ChunkId> = [id].into();
        check_carried(&reship, next.files(), |c| *c == id).unwrap();
        let e = check_carried(&reship, next.files(), |_| false).unwrap_err();
        assert!(matches!(e, ReshipError::NotCarried { chunk, key: k } if chunk == id && k == key));
    }
}
