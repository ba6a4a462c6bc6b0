//! Export: scan every source, cut new content into chunks, ship only chunks
//! the inside does not hold yet, and write a signed bundle.
//!
//! The inside holds exactly the chunks its current catalog refers to (it
//! drops the rest after each apply), so the chunks the inside has after
//! bundle N are the chunks of the outside's catalog N. A new bundle carries
//! every chunk of the new catalog that catalog N lacks.
//!
//! Reading, chunking and hashing run on the calling thread; compression and
//! volume writes run on a second thread, fed through a bounded channel.

use crate::ledger::{scan_key, BundleRecord, Ledger, ScanEntry};
use crate::source::{ItemKind, Source};
use anyhow::{anyhow, bail, Context, Result};
use ferry_agent_common::{fsx, media, progress};
use ferry_protocol::catalog::{Catalog, ChunkRef, Encoding, FileObject, Object, SourceKind};
use ferry_protocol::chunking::{ChunkParams, Chunker};
use ferry_protocol::codec;
use ferry_protocol::id::{ChunkId, ManifestHash, StreamId};
use ferry_protocol::keys::SecretKey;
use ferry_protocol::manifest::{ChunkEntry, Manifest, Totals, VolumeEntry};
use ferry_protocol::path::ObjectKey;
use ferry_protocol::volume::{self, VolumeWriter};
use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

/// Settings of one export.
pub struct ExportOptions {
    /// Largest volume file, in bytes.
    pub volume_size: u64,
    /// zstd level.
    pub level: i32,
    /// Seconds from now until the bundle expires.
    pub expires_in: u64,
}

/// What an export produced.
pub struct Exported {
    /// The ledger's record of the bundle.
    pub record: BundleRecord,
    /// The bundle directory in the state directory.
    pub dir: PathBuf,
    /// Bytes read from sources (files whose fingerprint was unchanged are not read).
    pub bytes_read: u64,
}

/// The directory in the state where bundles are kept for re-sending.
pub fn bundles_dir(state: &Path) -> PathBuf {
    state.join("bundles")
}

/// The directory a source may keep downloads and metadata in between exports.
pub fn cache_dir(state: &Path, source: &str) -> PathBuf {
    state.join("cache").join(source)
}

/// Runs one export. Returns `None` when nothing changed since the last bundle.
pub fn export(
    state: &Path,
    ledger: &Ledger,
    key: &SecretKey,
    sources: &[Box<dyn Source>],
    opts: &ExportOptions,
) -> Result<Option<Exported>> {
    let stream = ledger.stream()?;
    let head = ledger.head()?;
    let sequence = head.sequence + 1;
    let prev = ledger.catalog(head.sequence)?;
    let have = prev.chunk_ids();

    let dir = bundles_dir(state);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = dir.join(".tmp-export");
    fsx::remove_dir_if_exists(&tmp)?;
    std::fs::create_dir(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;

    let result = build(
        state, &tmp, stream, sequence, ledger, &prev, &have, sources, opts,
    );
    let (catalog, chunks, volumes, scan, bytes_read) = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = fsx::remove_dir_if_exists(&tmp);
            return Err(e);
        }
    };

    let changes = prev.diff(&catalog);
    if changes.is_empty() && prev.sources == catalog.sources {
        fsx::remove_dir_if_exists(&tmp)?;
        return Ok(None);
    }
    let stats = prev.delta_stats(&changes);

    let now = ferry_agent_common::now_unix();
    let chunk_raw_bytes: u64 = chunks.iter().map(|c| c.raw_len as u64).sum();
    let totals = Totals {
        max_chunk: chunks.iter().map(|c| c.raw_len).max().unwrap_or(0),
        chunk_raw_bytes,
        volume_bytes: volumes.iter().map(|v| v.size).sum(),
        max_object: catalog.files().map(|(_, f)| f.size).max().unwrap_or(0),
        objects: catalog.objects.len() as u64,
        catalog_bytes: catalog.total_bytes(),
    };
    let manifest = Manifest {
        stream,
        sequence,
        previous: head.hash,
        created: now,
        expires: now.saturating_add(opts.expires_in),
        chunking: ChunkParams::DEFAULT,
        sources: catalog.sources.clone(),
        changes,
        chunks: chunks.clone(),
        volumes: volumes.clone(),
        totals,
        producer: format!("ferry-out {}", env!("CARGO_PKG_VERSION")),
        extensions: vec![],
    };
    manifest
        .check(&ferry_protocol::limits::ReceiverLimits::default())
        .context("internal error: the manifest just built does not pass its own checks")?;
    let file = manifest.sign(key);
    fsx::write_atomic(&tmp.join(media::MANIFEST_FILE), &file)?;
    fsx::sync_dir(&tmp)?;

    let dir_name = media::bundle_dir_name(stream, sequence);
    let final_dir = dir.join(&dir_name);
    fsx::remove_dir_if_exists(&final_dir)?; // left by an export that crashed before its ledger commit
    std::fs::rename(&tmp, &final_dir)
        .with_context(|| format!("cannot rename bundle into {}", final_dir.display()))?;
    fsx::sync_dir(&dir)?;

    let record = BundleRecord {
        sequence,
        created: now,
        expires: manifest.expires,
        hash: ManifestHash::of(&file),
        dir_name,
        bytes: file.len() as u64 + totals.volume_bytes,
        chunks: chunks.len() as u64,
        chunk_raw_bytes,
        added: stats.added as u64,
        changed: stats.changed as u64,
        removed: stats.removed as u64,
        objects: totals.objects,
        catalog_bytes: totals.catalog_bytes,
        written: false,
    };
    let shipped: Vec<ChunkId> = chunks.iter().map(|c| c.id).collect();
    ledger.commit_export(&record, &catalog, &shipped, &scan)?;
    Ok(Some(Exported {
        record,
        dir: final_dir,
        bytes_read,
    }))
}

type Built = (
    Catalog,
    Vec<ChunkEntry>,
    Vec<VolumeEntry>,
    Vec<(String, ScanEntry)>,
    u64,
);

#[allow(clippy::too_many_arguments)]
fn build(
    state: &Path,
    tmp: &Path,
    stream: StreamId,
    sequence: u64,
    ledger: &Ledger,
    prev: &Catalog,
    have: &HashSet<ChunkId>,
    sources: &[Box<dyn Source>],
    opts: &ExportOptions,
) -> Result<Built> {
    let (tx, rx) = mpsc::sync_channel::<(ChunkId, Vec<u8>)>(64);
    let writer_dir = tmp.to_path_buf();
    let (volume_size, level) = (opts.volume_size, opts.level);
    let writer = std::thread::spawn(move || {
        write_volumes(rx, &writer_dir, stream, sequence, volume_size, level)
    });

    let pb = progress::spinner("scanning");
    let mut catalog = Catalog::default();
    let mut scan = Vec::new();
    let mut carried: HashSet<ChunkId> = HashSet::new();
    let mut bytes_read = 0u64;
    let scanned = (|| -> Result<()> {
        for src in sources {
            catalog.sources.insert(src.name().to_string(), src.kind());
            let name = src.name().to_string();
            let cx = crate::source::ScanCtx {
                previous: prev,
                cache_dir: cache_dir(state, &name),
                source: &name,
            };
            std::fs::create_dir_all(&cx.cache_dir)
                .with_context(|| format!("cannot create {}", cx.cache_dir.display()))?;
            src.scan(&cx, &mut |item| {
                if let Err(e) = ferry_protocol::path::check_path(&item.path) {
                    eprintln!("ferry-out: warning: source {name:?}: skipping {:?}: {e}", item.path);
                    return Ok(());
                }
                let key = ObjectKey {
                    source: name.clone(),
                    path: item.path.clone(),
                };
                if catalog.objects.contains_key(&key) {
                    bail!("source {name:?}: two items at path {:?}", item.path);
                }
                let object = match item.kind {
                    ItemKind::Symlink { target } => Object::Symlink { target },
                    ItemKind::Keep => match prev.objects.get(&key) {
                        Some(o) => o.clone(),
                        None => {
                            eprintln!(
                                "ferry-out: warning: source {name:?}: {} is to be kept, but the last bundle does not have it",
                                item.path
                            );
                            return Ok(());
                        }
                    },
                    ItemKind::File {
                        executable,
                        fingerprint,
                        expected_sha256,
                        open,
                    } => {
                        let cached = match &fingerprint {
                            Some(fp) => ledger
                                .scan_entry(&name, &item.path)?
                                .filter(|e| &e.fingerprint == fp)
                                .filter(|e| object_chunks_known(&e.object, have, &carried))
                                .filter(|e| prev.objects.get(&key) == Some(&e.object)),
                            None => None,
                        };
                        let object = match cached {
                            Some(e) => e.object,
                            None => {
                                let reader = open().with_context(|| format!("source {name:?}: {}", item.path))?;
                                let f = chunk_object(reader, executable, have, &mut carried, &tx, &pb)
                                    .with_context(|| format!("source {name:?}: cannot read {}", item.path))?;
                                bytes_read += f.size;
                                if let Some(want) = expected_sha256 {
                                    if want != f.sha256 {
                                        bail!(
                                            "source {name:?}: {} has SHA-256 {}, but {} {}",
                                            item.path,
                                            f.sha256,
                                            if src.kind() == SourceKind::Files {
                                                "the config expects"
                                            } else {
                                                "upstream's index says"
                                            },
                                            want
                                        );
                                    }
                                }
                                Object::File(f)
                            }
                        };
                        if let Some(fp) = fingerprint {
                            scan.push((
                                scan_key(&name, &item.path),
                                ScanEntry {
                                    fingerprint: fp,
                                    object: object.clone(),
                                },
                            ));
                        }
                        object
                    }
                };
                catalog.objects.insert(key, object);
                Ok(())
            })?;
        }
        Ok(())
    })();
    drop(tx);
    pb.finish_and_clear();
    let written = writer
        .join()
        .map_err(|_| anyhow!("volume writer thread panicked"))?;
    // A writer failure (disk full, say) surfaces as a closed channel in the
    // scan; report the writer's own error, which names the cause.
    let (chunks, volumes) = match (scanned, written) {
        (_, Err(e)) => return Err(e),
        (Err(e), _) => return Err(e),
        (Ok(()), Ok(w)) => w,
    };
    catalog
        .validate()
        .context("the scanned sources do not make a valid catalog")?;
    Ok((catalog, chunks, volumes, scan, bytes_read))
}

fn object_chunks_known(o: &Object, have: &HashSet<ChunkId>, carried: &HashSet<ChunkId>) -> bool {
    match o {
        Object::File(f) => f
            .chunks()
            .iter()
            .all(|c| have.contains(&c.id) || carried.contains(&c.id)),
        Object::Symlink { .. } => true,
    }
}

fn chunk_object(
    reader: Box<dyn std::io::Read>,
    executable: bool,
    have: &HashSet<ChunkId>,
    carried: &mut HashSet<ChunkId>,
    tx: &mpsc::SyncSender<(ChunkId, Vec<u8>)>,
    pb: &indicatif::ProgressBar,
) -> Result<FileObject> {
    let mut chunker = Chunker::new(reader, ChunkParams::DEFAULT);
    let mut refs = Vec::new();
    while let Some(c) = chunker.next_chunk()? {
        let len = c.data.len() as u32;
        pb.inc(len as u64);
        refs.push(ChunkRef { id: c.id, len });
        if !have.contains(&c.id) && carried.insert(c.id) {
            tx.send((c.id, c.data))
                .map_err(|_| anyhow!("the volume writer stopped"))?;
        }
    }
    let (size, sha256) = chunker.finish();
    Ok(FileObject {
        size,
        sha256,
        executable,
        encoding: Encoding::Chunks(refs),
    })
}

type OpenVolume = (u32, PathBuf, VolumeWriter<BufWriter<File>>);

fn write_volumes(
    rx: mpsc::Receiver<(ChunkId, Vec<u8>)>,
    dir: &Path,
    stream: StreamId,
    sequence: u64,
    volume_size: u64,
    level: i32,
) -> Result<(Vec<ChunkEntry>, Vec<VolumeEntry>)> {
    let mut entries = Vec::new();
    let mut volumes = Vec::new();
    let mut cur: Option<OpenVolume> = None;
    for (id, data) in rx {
        let (codec, stored) = codec::encode(&data, level);
        if let Some((_, _, w)) = &cur {
            if !w.is_empty() && w.len() + stored.len() as u64 > volume_size {
                let (_, path, w) = cur.take().expect("checked");
                volumes.push(close_volume(&path, w)?);
            }
        }
        if cur.is_none() {
            let index = volumes.len() as u32;
            let path = dir.join(volume::file_name(index));
            let f = File::create(&path)
                .with_context(|| format!("cannot create volume {}", path.display()))?;
            let w = VolumeWriter::new(
                BufWriter::with_capacity(1 << 20, f),
                stream,
                sequence,
                index,
            )
            .with_context(|| format!("cannot write volume {}", path.display()))?;
            cur = Some((index, path, w));
        }
        let (index, path, w) = cur.as_mut().expect("just opened");
        let offset = w
            .append(&stored)
            .with_context(|| format!("cannot write volume {}", path.display()))?;
        entries.push(ChunkEntry {
            id,
            raw_len: data.len() as u32,
            stored_len: stored.len() as u32,
            codec,
            volume: *index,
            offset,
        });
    }
    if let Some((_, path, w)) = cur {
        volumes.push(close_volume(&path, w)?);
    }
    Ok((entries, volumes))
}

fn close_volume(path: &Path, w: VolumeWriter<BufWriter<File>>) -> Result<VolumeEntry> {
    let (buf, entry) = w.finish();
    buf.into_inner()
        .map_err(|e| e.into_error())
        .and_then(|mut f| f.flush().and_then(|_| f.sync_all()))
        .with_context(|| format!("cannot write volume {}", path.display()))?;
    Ok(entry)
}

/// Copies bundle `record` from the state into `media`, atomically.
pub fn copy_to_media(state: &Path, record: &BundleRecord, media_dir: &Path) -> Result<u64> {
    std::fs::create_dir_all(media_dir)
        .with_context(|| format!("cannot create media directory {}", media_dir.display()))?;
    let from = bundles_dir(state).join(&record.dir_name);
    if !from.is_dir() {
        bail!(
            "bundle {} is no longer kept in {} (pruned?); it cannot be re-sent",
            record.sequence,
            from.display()
        );
    }
    let pb = progress::bytes(record.bytes, "copying");
    let n = fsx::copy_dir_atomic(&from, &media_dir.join(&record.dir_name), |n| pb.inc(n))
        .with_context(|| {
            format!(
                "cannot write bundle {} to {}",
                record.sequence,
                media_dir.display()
            )
        })?;
    pb.finish_and_clear();
    Ok(n)
}

/// The sources of a catalog as a map, for messages.
pub fn source_summary(c: &Catalog) -> BTreeMap<String, (usize, u64)> {
    let mut m: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    for (k, o) in &c.objects {
        let e = m.entry(k.source.clone()).or_default();
        e.0 += 1;
        if let Object::File(f) = o {
            e.1 += f.size;
        }
    }
    m
}
