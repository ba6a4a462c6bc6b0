//! Export: scan every source, cut new content into chunks, ship only chunks
//! the inside does not hold yet, and write a signed bundle.
//!
//! The inside keeps exactly the chunks its current catalog refers to, but a
//! patch's (bundle-format §5.6; it drops the rest after each apply), so the
//! chunks the inside has after bundle N are `Catalog::held_chunk_ids` of the
//! outside's catalog N. A new bundle carries every chunk of the new catalog
//! that this set lacks.
//!
//! Reading, chunking and hashing run on the calling thread; compression and
//! volume writes run on a second thread, fed through a bounded channel. The
//! bytes of the bundle are laid out by `ferry_protocol::builder`, the same
//! code tests use to craft bundles, so what export writes is what the format
//! document says.
//!
//! Errors from a source's scan are reported once with the source's name
//! (`source "NAME": …`), added here around each scan.
//!
//! The manifest is signed at the end ([`Signing::Now`]), or left unsigned
//! for `ferry-out sign` ([`Signing::Separate`], `crate::signing`). Chunks the
//! ledger is asked to ship again (`crate::reship`) count as not held, so the
//! objects using them are read again and the bundle carries them, even when
//! no object changed.

use crate::delta::{DeltaOptions, DeltaReport, Recipes, References};
use crate::layout::Layout;
use crate::ledger::{self, BundleRecord, Commit, Last, Ledger};
use crate::reship;
use crate::signing::SigningError;
use crate::source::Source;
use anyhow::{bail, Context, Result};
use ferry_agent_common::{fsx, media, progress};
use ferry_protocol::builder::{BuildError, BundleBuilder, Position, Stamp};
use ferry_protocol::catalog::{Catalog, DeltaStats, Object, Sums};
use ferry_protocol::id::{ChunkId, Sha256};
use ferry_protocol::keys::SecretKey;
use ferry_protocol::manifest::{Manifest, ManifestWriter};
use ferry_protocol::volume;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod carried;
mod keeper;
mod links;
mod puts;
pub mod rebase;
mod scanner;
mod seen;
mod spill;
mod volumes;
use scanner::{scan_and_pack, Counted, Scanned};
use spill::FileSpill;
pub use volumes::MediaCopy;
use volumes::VolumeFiles;

pub use puts::{ChangeSet, PUTS_HELD};

/// Settings of one export.
pub struct ExportOptions {
    /// Largest volume file, in bytes.
    pub volume_size: u64,
    /// zstd level.
    pub level: i32,
    /// Seconds from now until the bundle expires.
    pub expires_in: u64,
    /// How changed objects are encoded against their predecessors.
    pub delta: DeltaOptions,
    /// How many objects put the scan holds in memory; the others are
    /// written out in sorted runs in the bundle's temporary directory
    /// ([`PUTS_HELD`]; smaller in tests, to write them out).
    pub puts_held: usize,
    /// The media directory the bundle is written to as it is built
    /// ([`MediaCopy`]; published by the caller after the export), if any.
    pub media: Option<PathBuf>,
}

/// What an export produced.
pub struct Exported {
    /// The ledger's record of the bundle.
    pub record: BundleRecord,
    /// The bundle directory in the state directory.
    pub dir: PathBuf,
    /// Bytes read from sources (files whose fingerprint was unchanged are not read).
    pub bytes_read: u64,
    /// What was shipped as patches.
    pub delta: DeltaReport,
    /// Whether the manifest is signed (else the bundle awaits `ferry-out sign`
    /// and `record` is not in the stream yet).
    pub signed: bool,
    /// The bundle's copy on media written as it was built (with
    /// [`ExportOptions::media`], signed): [`MediaCopy::publish`] completes it.
    pub media: Option<Arc<MediaCopy>>,
}

/// How an export's manifest is signed.
#[derive(Clone, Copy)]
pub enum Signing<'a> {
    /// Now, with this key: the bundle is ready for media.
    Now(&'a SecretKey),
    /// Later, by `ferry-out sign`: the bundle gets `manifest.unsigned`, the
    /// ledger records it as awaiting its signature, and no key is read.
    Separate,
}

/// The stamp of the bundle at `sequence`: created `now`, expiring
/// `expires_in` seconds later, with the key statements due at `sequence`,
/// `mark` (a rebase snapshot's) and what upstream vouched for.
fn stamp(
    layout: &Layout,
    sequence: u64,
    sources: &[Box<dyn Source>],
    mark: Option<ferry_protocol::manifest::Extension>,
    (now, expires_in): (u64, u64),
) -> Result<Stamp> {
    let mut extensions = crate::keys::extensions(layout, sequence)?;
    extensions.extend(mark);
    extensions.push(provenance(sources).extension());
    Ok(Stamp {
        created: now,
        expires: now.saturating_add(expires_in),
        producer: format!("ferry-out {}", env!("CARGO_PKG_VERSION")),
        extensions,
    })
}

/// Writes the manifest of `changes` (to a catalog of `sums`), signed now or
/// left for `ferry-out sign`, into the bundle directory `dir`
/// (`manifest.ferry` or `manifest.unsigned`), and syncs the directory.
/// Returns the manifest (without its changes when they were streamed) and
/// the file written.
///
/// A change list of [`ManifestWriter::streams`] size (a first export's is
/// the whole catalog) is streamed into the writer's columns, kept in
/// unlinked files in `dir` ([`spill::FileSpill`]), read from the scan's
/// puts one at a time: no copy of it is made (no change list, columns or
/// frame in memory). The bytes are the same as the in-memory writer's.
fn write_manifest(
    dir: &Path,
    builder: BundleBuilder<VolumeFiles>,
    changes: &ChangeSet,
    (sums, stamp): (Sums, Stamp),
    signing: Signing<'_>,
) -> Result<(Manifest, Vec<u8>)> {
    let name = match signing {
        Signing::Now(_) => media::MANIFEST_FILE,
        Signing::Separate => media::UNSIGNED_MANIFEST_FILE,
    };
    let count = usize::try_from(changes.count()).unwrap_or(usize::MAX);
    let (manifest, file) = if ManifestWriter::<FileSpill>::streams(count, builder.chunks().len()) {
        let (head, _volumes) = builder
            .finish_head(changes.sources.clone(), sums, stamp)
            .map_err(|e| volume_error(dir, e))?;
        let cannot = || format!("cannot write the manifest in {}", dir.display());
        let mut w = ManifestWriter::new(FileSpill::new(dir)).with_context(cannot)?;
        changes
            .puts
            .each(|key, object| w.push_put(key, object).with_context(cannot))?;
        for key in &changes.removes {
            w.push_remove(key).with_context(cannot)?;
        }
        let written = w.finish(&head).with_context(cannot)?;
        let file = match signing {
            Signing::Now(key) => written.sign(key),
            Signing::Separate => written.file,
        };
        (head, file)
    } else {
        let unsigned = builder
            .finish_unsigned_changes(changes.to_changes()?, sums, stamp)
            .map_err(|e| volume_error(dir, e))?;
        match signing {
            Signing::Now(key) => {
                let built = unsigned.sign(key);
                (built.manifest, built.file)
            }
            Signing::Separate => (unsigned.manifest, unsigned.file),
        }
    };
    fsx::write_atomic(&dir.join(name), &file)?;
    fsx::sync_dir(dir)?;
    Ok((manifest, file))
}

/// What upstream vouched for, per source, as the sources' last scans found
/// it: the bundle's provenance record (bundle-format §19).
pub fn provenance(sources: &[Box<dyn Source>]) -> ferry_protocol::provenance::Provenance {
    ferry_protocol::provenance::Provenance::new(
        sources.iter().flat_map(|s| s.provenance()).collect(),
    )
}

/// Runs one export now. Returns `None` when nothing changed since the last bundle.
pub fn export(
    layout: &Layout,
    ledger: &Ledger,
    key: &SecretKey,
    sources: &[Box<dyn Source>],
    opts: &ExportOptions,
) -> Result<Option<Exported>> {
    let now = ferry_agent_common::now_unix();
    export_at(layout, ledger, key, sources, opts, now)
}

/// [`export`], with the bundle's creation time (Unix seconds) given.
pub fn export_at(
    layout: &Layout,
    ledger: &Ledger,
    key: &SecretKey,
    sources: &[Box<dyn Source>],
    opts: &ExportOptions,
    now: u64,
) -> Result<Option<Exported>> {
    export_with(layout, ledger, Signing::Now(key), sources, opts, now)
}

/// What an export has made before its ledger commit: the scan's results,
/// its changes, the manifest (without its changes if they were streamed)
/// and its file, the next catalog's sums and the counts of its changes.
type Built = (Scanned, ChangeSet, Manifest, Vec<u8>, Sums, DeltaStats);

/// [`export_at`], signed now or left for `ferry-out sign`. Refused while an
/// earlier bundle awaits its signature.
pub fn export_with(
    layout: &Layout,
    ledger: &Ledger,
    signing: Signing<'_>,
    sources: &[Box<dyn Source>],
    opts: &ExportOptions,
    now: u64,
) -> Result<Option<Exported>> {
    check_none_awaits_signature(layout, ledger)?;
    let reship = ledger.reship()?;
    let head = ledger.head()?;
    let position = Position {
        stream: ledger.stream()?,
        sequence: head.sequence + 1,
        previous: head.hash,
    };
    // The last catalog as the ledger's rows: read near the changes only.
    let last = ledger.last(head.sequence)?;

    let dir = layout.bundles();
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = layout.export_tmp();
    fsx::remove_dir_if_exists(&tmp)?;
    std::fs::create_dir(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;

    let dir_name = media::bundle_dir_name(position.stream, position.sequence);
    let media_copy = match (&opts.media, signing) {
        (Some(m), Signing::Now(_)) => MediaCopy::start(m, &dir_name),
        _ => None,
    };
    let result = (|| -> Result<Option<Built>> {
        let adopted = ledger.adopted()?;
        let counted = Counted {
            reship: &reship,
            adopted: &adopted,
        };
        let (mut scanned, changes, builder) = scan_and_pack(
            layout,
            &last,
            position,
            counted,
            sources,
            opts,
            media_copy.as_ref(),
        )?;
        if changes.is_empty(last.sources()) && builder.chunks().is_empty() {
            return Ok(None);
        }
        // The chunks sent to the volumes, each once: the builder's.
        let carried = std::mem::take(&mut scanned.carried);
        check_carried(&reship, &last, &changes, |c| carried.contains(c))?;
        drop(carried);
        let stamp = stamp(
            layout,
            position.sequence,
            sources,
            None,
            (now, opts.expires_in),
        )?;
        let (sums, stats) = sums_after(&last, &changes)?;
        let (manifest, file) = write_manifest(&tmp, builder, &changes, (sums, stamp), signing)
            .with_context(|| format!("bundle {}", position.sequence))?;
        Ok(Some((scanned, changes, manifest, file, sums, stats)))
    })();
    let (scanned, changes, manifest, file, sums, stats) = match result {
        Ok(Some(r)) => r,
        Ok(None) => {
            fsx::remove_dir_if_exists(&tmp)?;
            return Ok(None);
        }
        Err(e) => {
            let _ = fsx::remove_dir_if_exists(&tmp);
            return Err(e);
        }
    };

    let final_dir = layout.bundle(&dir_name);
    fsx::remove_dir_if_exists(&final_dir)?; // left by an export that crashed before its ledger commit
    std::fs::rename(&tmp, &final_dir)
        .with_context(|| format!("cannot rename bundle into {}", final_dir.display()))?;
    fsx::sync_dir(&dir)?;

    let record = bundle_record(stats, &manifest, &file, dir_name);
    let shipped: Vec<ChunkId> = manifest.chunks.iter().map(|c| c.id).collect();
    // The changes (every object put) update the ledger's rows of the
    // catalog; the manifest is not held through the commit.
    let sources = changes.sources.clone();
    drop((manifest, file, last));
    let signed = matches!(signing, Signing::Now(_));
    let commit = Commit {
        record: &record,
        sources: &sources,
        changes: &changes,
        sums,
        shipped: &shipped,
        scan: &scanned.scan,
    };
    if signed {
        ledger.commit_export(&commit)?;
    } else {
        ledger.commit_unsigned(&commit)?;
    }
    let count = usize::try_from(changes.count()).unwrap_or(usize::MAX);
    let checkpoint = !ledger::stores_changes(position.sequence, count, sums.objects);
    drop(changes);
    prune_copies(layout, ledger, checkpoint && position.sequence > 1)?;
    Ok(Some(Exported {
        record,
        dir: final_dir,
        bytes_read: scanned.bytes_read,
        delta: scanned.delta,
        signed,
        media: media_copy,
    }))
}

/// Removes the copies and recipes of the objects no file of the catalog
/// just committed has: those of the digests whose count the commit brought
/// to 0 (the ledger lists them; nothing else is read). With `whole` (an
/// export that wrote a checkpoint, so already O(mirror)), every copy and
/// recipe whose digest is not counted goes too: what exports that failed
/// before their commit left.
fn prune_copies(layout: &Layout, ledger: &Ledger, whole: bool) -> Result<()> {
    let refs = References::new(layout.objects());
    let recipes = Recipes::new(layout.analyses());
    if whole {
        let keep: HashSet<Sha256> = ledger.catalog_digests()?;
        refs.prune(&keep)?;
        recipes.prune(&keep)?;
    }
    ledger.prune_unheld(|d| {
        refs.remove(d)?;
        recipes.remove(d)
    })?;
    Ok(())
}

/// [`SigningError::AwaitingSignature`] if a bundle awaits its signature:
/// the next one would have to name its signed manifest's hash.
fn check_none_awaits_signature(layout: &Layout, ledger: &Ledger) -> Result<()> {
    match ledger.awaiting_signature()? {
        Some(r) => Err(SigningError::AwaitingSignature {
            sequence: r.sequence,
            dir: layout.bundle(&r.dir_name),
        }
        .into()),
        None => Ok(()),
    }
}

/// What the catalog `changes` make of `last` sums to, and how many of the
/// objects put are added or changed, from the rows of the keys changed:
/// only when the largest file is replaced or removed are the rest read
/// (the next largest is not known otherwise), beside the puts read again
/// in key order.
fn sums_after(last: &Last, changes: &ChangeSet) -> Result<(Sums, DeltaStats)> {
    let mut sums = last.sums();
    let mut stats = DeltaStats::default();
    let mut largest_gone = false;
    let mut largest_put = 0;
    let mut take = |sums: &mut Sums, old: Option<u64>| {
        if let Some(size) = old {
            sums.bytes = sums.bytes.saturating_sub(size);
            largest_gone |= size == sums.max_object && size > 0;
        }
    };
    changes.puts.each(|key, object| {
        match last.file_head(key)? {
            Some(old) => {
                stats.changed += 1;
                take(&mut sums, old.map(|(size, _)| size));
            }
            None => {
                stats.added += 1;
                sums.objects += 1;
            }
        }
        if let Object::File(f) = object {
            sums.bytes = sums.bytes.saturating_add(f.size);
            sums.max_object = sums.max_object.max(f.size);
            largest_put = largest_put.max(f.size);
        }
        Ok(())
    })?;
    for key in &changes.removes {
        if let Some(old) = last.file_head(key)? {
            stats.removed += 1;
            sums.objects -= 1;
            take(&mut sums, old.map(|(size, _)| size));
        }
    }
    if largest_gone {
        sums.max_object = largest_put;
        let mut puts = changes.puts.iter()?.peekable();
        let mut key = ferry_protocol::path::ObjectKey {
            source: String::new(),
            path: String::new(),
        };
        last.each_file(|k, f| {
            if f.size > sums.max_object {
                set_key(&mut key, k);
                let kept =
                    !puts_at(&mut puts, &key)? && changes.removes.binary_search(&key).is_err();
                if kept {
                    sums.max_object = f.size;
                }
            }
            Ok(())
        })?;
    }
    Ok((sums, stats))
}

/// `key` made the key of the row key `row` (`source \0 path`).
fn set_key(key: &mut ferry_protocol::path::ObjectKey, row: &str) {
    let (source, path) = row.split_once('\0').unwrap_or((row, ""));
    key.source.clear();
    key.source.push_str(source);
    key.path.clear();
    key.path.push_str(path);
}

/// Whether `puts` (read in key order) put `key`: those before it are
/// passed, so that keys asked in key order read the puts once.
pub(crate) fn puts_at<I: Iterator<Item = Result<(ferry_protocol::path::ObjectKey, Object)>>>(
    puts: &mut std::iter::Peekable<I>,
    key: &ferry_protocol::path::ObjectKey,
) -> Result<bool> {
    loop {
        match puts.peek() {
            None => return Ok(false),
            Some(Ok((k, _))) if k < key => {
                puts.next();
            }
            Some(Ok((k, _))) => return Ok(k == key),
            Some(Err(_)) => return Err(puts.next().expect("peeked").expect_err("an error")),
        }
    }
}

/// [`reship::check_carried`] of the catalog `changes` make of `last`: its
/// files read from the rows only when chunks are to be shipped again.
fn check_carried(
    reship: &HashSet<ChunkId>,
    last: &Last,
    changes: &ChangeSet,
    carries: impl Fn(&ChunkId) -> bool,
) -> Result<()> {
    if reship.is_empty() {
        return Ok(());
    }
    changes.puts.each(|k, o| match o {
        Object::File(f) => Ok(reship::check_carried(reship, [(k, f)], &carries)?),
        Object::Symlink { .. } => Ok(()),
    })?;
    let mut puts = changes.puts.iter()?.peekable();
    let mut key = ferry_protocol::path::ObjectKey {
        source: String::new(),
        path: String::new(),
    };
    last.each_file(|k, f| {
        set_key(&mut key, k);
        if !puts_at(&mut puts, &key)? && changes.removes.binary_search(&key).is_err() {
            reship::check_carried(reship, [(&key, f)], &carries)?;
        }
        Ok(())
    })
}

/// The ledger's record of a bundle whose manifest (signed or not) is `file`.
fn bundle_record(
    stats: DeltaStats,
    manifest: &Manifest,
    file: &[u8],
    dir_name: String,
) -> BundleRecord {
    let totals = manifest.totals;
    BundleRecord {
        sequence: manifest.sequence,
        created: manifest.created,
        expires: manifest.expires,
        hash: ferry_protocol::id::ManifestHash::of(file),
        dir_name,
        bytes: file.len() as u64 + totals.volume_bytes,
        chunks: manifest.chunks.len() as u64,
        chunk_raw_bytes: totals.chunk_raw_bytes,
        added: stats.added as u64,
        changed: stats.changed as u64,
        removed: stats.removed as u64,
        objects: totals.objects,
        catalog_bytes: totals.catalog_bytes,
        written: false,
    }
}

/// A builder error, with a failing volume named by its path.
fn volume_error(dir: &Path, e: BuildError) -> anyhow::Error {
    match e {
        BuildError::Volume { index, source } => anyhow::Error::new(source).context(format!(
            "cannot write volume {}",
            dir.join(volume::file_name(index)).display()
        )),
        e => anyhow::Error::new(e),
    }
}

/// Copies bundle `record` from the state into `media`, atomically.
pub fn copy_to_media(layout: &Layout, record: &BundleRecord, media_dir: &Path) -> Result<u64> {
    media_outside_state(layout, media_dir)?;
    std::fs::create_dir_all(media_dir)
        .with_context(|| format!("cannot create media directory {}", media_dir.display()))?;
    let from = layout.bundle(&record.dir_name);
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

/// Refuses a media directory that is the state directory or inside it:
/// publishing there would replace the state's own bundle, or put a
/// temporary directory among its caches.
pub fn media_outside_state(layout: &Layout, media_dir: &Path) -> Result<()> {
    let state = resolved(&layout.root)?;
    let media = resolved(media_dir)?;
    if media.starts_with(&state) {
        bail!(
            "media directory {} is inside the state directory {}: write bundles \
             to a directory of their own (a mounted stick, a diode's spool)",
            media_dir.display(),
            layout.root.display()
        );
    }
    Ok(())
}

/// `path` absolute, its longest existing prefix resolved (links followed)
/// and the rest appended with `.` and `..` applied.
fn resolved(path: &Path) -> Result<PathBuf> {
    let abs =
        std::path::absolute(path).with_context(|| format!("cannot resolve {}", path.display()))?;
    let mut rest = Vec::new();
    let mut existing = abs.as_path();
    let mut base = loop {
        match existing.canonicalize() {
            Ok(p) => break p,
            Err(_) => match (existing.parent(), existing.file_name()) {
                (Some(parent), Some(name)) => {
                    rest.push(name.to_os_string());
                    existing = parent;
                }
                _ => break existing.to_path_buf(),
            },
        }
    };
    for name in rest.into_iter().rev() {
        match name.to_str() {
            Some(".") => {}
            Some("..") => {
                base.pop();
            }
            _ => base.push(name),
        }
    }
    Ok(base)
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
