//! The scan half of an export: every source's items read, cut into chunks
//! and encoded (whole, or as a patch made on the analysis pool), while a
//! second thread packs the chunks the inside lacks into volumes.

use crate::delta::{self, DeltaOptions, DeltaReport, Families, Recipes, References};
use crate::layout::Layout;
use crate::ledger::{Last, Lookup};
use crate::source::{Item, ItemKind, ScanCtx, Source};
use anyhow::{anyhow, bail, Context, Result};
use ferry_agent_common::progress;
use ferry_protocol::builder::{
    cut_chunks, cut_chunks_undigested, cut_file, BundleBuilder, PackOptions, Position,
};
use ferry_protocol::catalog::{
    Catalog, ChunkRef, Encoding, FileObject, Object, PutsCheck, SourceKind,
};
use ferry_protocol::id::{ChunkId, Sha256};
use ferry_protocol::path::ObjectKey;
use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Read;
use std::ops::Range;
use std::sync::{mpsc, Arc};

use super::carried::Carried;
use super::keeper::{Digest, Keeper, Linkable, Linked, KEEP_AHEAD};
use super::puts::ChangeSet;
use super::seen::Seen;

mod pack;
mod patches;
use super::{volume_error, ExportOptions, MediaCopy, VolumeFiles};
use pack::{start_writer, Batch, Outbox, BATCHES_QUEUED};

/// Upstream bytes of the objects whose patches are being made at once (one
/// larger object is still made, alone). Each needs several times its size
/// while in flight (its expanded form, its base's reference form, the patch),
/// so this bounds the analysis pool's memory, not only its queue.
const INFLIGHT_BYTES: u64 = 48 << 20;

/// The buffer a new object is first read into: most small files fit.
const HEAD_ROOM: usize = 64 << 10;

/// The chunks a patch's frames travel in (a quarter of the 4 MiB a reader
/// takes by default, `ReceiverLimits::max_chunk_bytes`).
const FRAME_CHUNK: usize = 1 << 20;

/// What the scan counts as held besides the last catalog's chunks, or not.
#[derive(Clone, Copy)]
pub(super) struct Counted<'a> {
    /// Chunks the inside lost (`crate::reship`): not held.
    pub(super) reship: &'a HashSet<ChunkId>,
    /// Objects every inside holds by its inventory (`ferry-in adopt`), by
    /// digest, with their size: named in the catalog, never carried.
    pub(super) adopted: &'a HashMap<Sha256, u64>,
}

/// The scan's results, besides the chunks.
pub(super) struct Scanned {
    /// The fingerprints of the files read whose object did not change, by
    /// key (written into their rows of the next catalog; those of the
    /// objects put go with them: [`super::puts`]).
    pub(super) scan: Vec<(ObjectKey, String)>,
    /// The chunks the bundle carries (sent to its volumes once each).
    pub(super) carried: Carried,
    pub(super) bytes_read: u64,
    pub(super) delta: DeltaReport,
}

/// Scans every source while a second thread packs the new chunks into
/// volumes; returns the changes to `last` (checked:
/// [`ferry_protocol::catalog::PutsCheck`]; the next catalog is never built
/// beside the last one, and a large change is not held in memory:
/// [`super::puts`]) and the builder (its last volume still open). The
/// volumes are written to `media` too, if given ([`MediaCopy`]).
pub(super) fn scan_and_pack(
    layout: &Layout,
    last: &Last,
    position: Position,
    counted: Counted<'_>,
    sources: &[Box<dyn Source>],
    opts: &ExportOptions,
    media: Option<&Arc<MediaCopy>>,
) -> Result<(Scanned, ChangeSet, BundleBuilder<VolumeFiles>)> {
    let Counted { reship, adopted } = counted;
    let (tx, rx) = mpsc::sync_channel::<Batch>(BATCHES_QUEUED);
    let pack = PackOptions {
        volume_size: opts.volume_size,
        level: opts.level,
    };
    let tmp = layout.export_tmp();
    // Each chunk is sent once (`carried`): the builder needs no set of its
    // own.
    let files = VolumeFiles {
        dir: tmp.clone(),
        media: media.cloned(),
    };
    let builder = BundleBuilder::new(position, pack, files).without_id_set();
    // Two lines on a terminal (nothing on a pipe): bytes scanned and
    // chunked, and chunk bytes packed into volumes.
    let bars = indicatif::MultiProgress::new();
    let scan_pb = bars.add(progress::spinner("scanning"));
    let pack_pb = bars.add(progress::spinner("packing"));
    let writer = start_writer(rx, builder, opts.level, pack_pb.clone())?;

    let refs = References::new(layout.objects());
    let mut scanner = Scanner {
        keeper: Keeper::start(refs.clone())?,
        last,
        have: Have { last, reship },
        reship,
        adopted,
        carried: Carried::default(),
        outbox: Outbox {
            tx,
            batch: Vec::new(),
            bytes: 0,
        },
        pb: scan_pb,
        changes: ChangeSet::spilling(&tmp, opts.puts_held),
        seen: Seen::with_capacity(last.len()),
        scan: Vec::new(),
        bytes_read: 0,
        delta: opts.delta,
        families: Families::new(last),
        refs,
        recipes: Recipes::new(layout.analyses()),
        report: DeltaReport::default(),
        analysis: rayon::ThreadPoolBuilder::new()
            .thread_name(|i| format!("ferry-analysis-{i}"))
            .build()
            .context("cannot start the analysis threads")?,
        pending: VecDeque::new(),
        pending_keys: HashSet::new(),
        inflight_bytes: 0,
        linked: Vec::new(),
    };
    let scanned = sources
        .iter()
        .try_for_each(|src| {
            scanner
                .scan_source(layout, src.as_ref())
                .with_context(|| format!("source {:?}", src.name()))
        })
        .and_then(|()| scanner.outbox.flush());
    let kept = scanner.keeper.finish();
    let Scanner {
        outbox,
        pb,
        mut changes,
        seen,
        mut scan,
        bytes_read,
        mut report,
        linked,
        carried,
        recipes,
        ..
    } = scanner;
    report.streams = recipes.streams();
    drop(outbox);
    pb.finish_and_clear();
    let written = writer
        .join()
        .map_err(|_| anyhow!("volume writer thread panicked"))?;
    pack_pb.finish_and_clear();
    // A writer failure (disk full, say) surfaces as a closed channel in the
    // scan; report the writer's own error, which names the cause.
    let builder = match (scanned, written) {
        (_, Err(e)) => return Err(volume_error(&tmp, e)),
        (Err(e), _) => return Err(e),
        (Ok(()), Ok(b)) => b,
    };
    let mut kept = kept?;
    kept.extend(linked);
    finish_puts(layout, kept, &mut changes, &mut scan)?;
    // Removed: the last catalog's objects no source listed.
    changes.removes = seen.removed(last)?;
    // The puts read back in key order, one at a time.
    let invalid = "the scanned sources do not make a valid catalog";
    let mut check = PutsCheck::new(last, &changes.sources, &changes.removes).context(invalid)?;
    changes
        .puts
        .each(|key, object| Ok(check.put(key, object)?))
        .context(invalid)?;
    let scanned = Scanned {
        scan,
        carried,
        bytes_read,
        delta: report,
    };
    Ok((scanned, changes, builder))
}

/// Ends the scan's puts ([`super::puts::Puts::finish`]), the new
/// fingerprints of the files `kept` linked applied: the puts' as they are
/// merged, the others' in `scan`.
fn finish_puts(
    layout: &Layout,
    kept: Vec<Linked>,
    changes: &mut ChangeSet,
    scan: &mut [(ObjectKey, String)],
) -> Result<()> {
    let mut after = match kept.is_empty() {
        true => HashMap::new(),
        false => super::links::fingerprints_after(kept, &layout.objects())?,
    };
    changes.puts.finish(&mut after)?;
    if !after.is_empty() {
        for (key, fingerprint) in scan {
            if let Some(f) = after.remove(key) {
                *fingerprint = f;
            }
        }
    }
    Ok(())
}

/// The scan in progress: what it has found, and where new chunks go.
struct Scanner<'a> {
    /// Writes the copies of small new objects.
    keeper: Keeper,
    /// The last catalog, as rows (each file's fingerprint beside it).
    last: &'a Last,
    /// Chunks the inside holds (those of the previous catalog it keeps but
    /// those it lost), each looked up in the ledger's counts.
    have: Have<'a>,
    /// Chunks the inside lost (`crate::reship`): an object using one is
    /// shipped again, whole.
    reship: &'a HashSet<ChunkId>,
    /// See [`Counted::adopted`].
    adopted: &'a HashMap<Sha256, u64>,
    /// Chunks sent to the volume writer so far (the builder keeps no set
    /// of its own).
    carried: Carried,
    outbox: Outbox,
    pb: indicatif::ProgressBar,
    /// What changed: objects new or not the last catalog's, and the sources.
    changes: ChangeSet,
    /// The last catalog's keys listed by a source, by a 128-bit hash of
    /// `source \0 path` (their objects unchanged or in `changes`); the
    /// others are removed.
    seen: Seen,
    scan: Vec<(ObjectKey, String)>,
    bytes_read: u64,
    delta: DeltaOptions,
    /// The last catalog's files by name family, to find predecessors.
    families: Families<'a, Last>,
    /// Copies of the last catalog's objects: the bases of patches.
    refs: References,
    /// Recipes of objects analysed before, by digest.
    recipes: Recipes,
    report: DeltaReport,
    /// Where patches are made (every core).
    analysis: rayon::ThreadPool,
    /// Objects whose patch is being made, oldest first.
    pending: VecDeque<(ObjectKey, Pending, Option<ScanSlot>)>,
    pending_keys: HashSet<ObjectKey>,
    inflight_bytes: u64,
    /// Files whose kept copies the scan thread made as links to them.
    linked: Vec<Linked>,
}

/// The fingerprint an object goes under in its row.
type ScanSlot = String;

/// A changed object read and cut, whose patch the analysis pool is making.
struct Pending {
    /// The object encoded whole.
    whole: FileObject,
    /// The chunks shipping it whole would add: where they lie in the object.
    new_chunks: Vec<(ChunkId, Range<usize>)>,
    whole_cost: u64,
    size: u64,
    patched: mpsc::Receiver<Result<Option<delta::Patched>>>,
}

/// An object encoded now, or one whose patch is being made.
enum Encoded {
    Ready(FileObject),
    Pending(Box<Pending>),
}

impl Encoded {
    /// The object as shipped whole (size and digest are the same either way).
    fn whole(&self) -> &FileObject {
        match self {
            Encoded::Ready(f) => f,
            Encoded::Pending(p) => &p.whole,
        }
    }
}

impl Scanner<'_> {
    /// Scans one source into the catalog. Errors do not name the source; the
    /// caller adds it.
    fn scan_source(&mut self, layout: &Layout, src: &dyn Source) -> Result<()> {
        let name = src.name().to_string();
        self.changes.sources.insert(name.clone(), src.kind());
        // The last catalog's objects of this source, for the sources that
        // look at them (pins, lineage, indexes kept); `files` never does,
        // and a tree of a million files is not read into memory for it.
        let previous = if src.kind() == SourceKind::Files {
            Catalog::default()
        } else {
            self.last.source_catalog(&name)?
        };
        let cx = ScanCtx {
            previous: &previous,
            cache_dir: layout.cache(&name),
            source: &name,
        };
        std::fs::create_dir_all(&cx.cache_dir)
            .with_context(|| format!("cannot create {}", cx.cache_dir.display()))?;
        src.scan(&cx, &mut |item| self.take_item(&name, src.kind(), item))?;
        self.settle_all()
    }

    /// Adds one item of source `name` to the catalog.
    fn take_item(&mut self, name: &str, kind: SourceKind, item: Item) -> Result<()> {
        if let Err(e) = ferry_protocol::path::check_path(&item.path) {
            eprintln!(
                "ferry-out: warning: source {name:?}: skipping {:?}: {e}",
                item.path
            );
            return Ok(());
        }
        let key = ObjectKey {
            source: name.to_string(),
            path: item.path.clone(),
        };
        let (item_kind, local) = local_as_file(item.kind);
        let fingerprint = match &item_kind {
            ItemKind::File { fingerprint, .. } => fingerprint.as_deref(),
            _ => None,
        };
        // One lookup of the row: whether the last catalog holds the key,
        // and whether its file is unchanged (its row's fingerprint).
        let lookup = self.last.lookup(name, &item.path, fingerprint)?;
        let listed = match lookup {
            Lookup::Held { .. } => self.seen.contains(&key),
            // A key put twice: among the puts held, found here; among
            // those written out, when they are merged.
            Lookup::Absent => self.changes.puts.holds(&key),
        };
        if listed || self.pending_keys.contains(&key) {
            bail!("two items at path {:?}", item.path);
        }
        let object = match item_kind {
            // Made a `File` by `local_as_file` above.
            ItemKind::Local { .. } => bail!("{}: a local file was not opened", item.path),
            ItemKind::Symlink { target } => Object::Symlink { target },
            ItemKind::Keep => match self.last.object(&key)? {
                Some(o) => o,
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
                // Unchanged: the row holds this fingerprint beside the last
                // catalog's object, whose chunks the inside keeps.
                let unchanged = lookup
                    == Lookup::Held {
                        same_fingerprint: true,
                    }
                    && (self.reship.is_empty()
                        || self
                            .last
                            .object(&key)?
                            .is_some_and(|o| self.chunks_known(&o)));
                if unchanged {
                    // Nothing recorded but that it was listed; its row
                    // stays as it is.
                    self.seen.insert(&key);
                    return Ok(());
                }
                // Read again: its fingerprint is written into its row.
                let reader = open().with_context(|| item.path.clone())?;
                let local = local.map(|(path, fingerprint)| Linkable {
                    key: key.clone(),
                    path,
                    fingerprint,
                });
                let encoded = match expected_sha256.filter(|w| self.adopted.contains_key(w)) {
                    Some(_) => self.cut_adopted(reader, executable),
                    None => self.encode_object(
                        &key,
                        item.predecessor.as_ref(),
                        reader,
                        (executable, local),
                    ),
                }
                .with_context(|| format!("cannot read {}", item.path))?;
                let f = encoded.whole();
                self.bytes_read += f.size;
                if let Some(want) = expected_sha256.filter(|w| *w != f.sha256) {
                    bail!(
                        "{} has SHA-256 {}, but {} {want}",
                        item.path,
                        f.sha256,
                        if kind == SourceKind::Files {
                            "the config expects"
                        } else {
                            "upstream's index says"
                        },
                    );
                }
                let scan = fingerprint;
                return match encoded {
                    Encoded::Ready(f) => self.record(key, Object::File(f), scan),
                    Encoded::Pending(p) => self.queue(key, *p, scan),
                };
            }
        };
        self.record(key, object, None)
    }

    /// Records an object listed at `key` (a change unless it is the last
    /// catalog's), and its fingerprint for its row: a put's goes with it
    /// (into the puts' runs), an unchanged object's into `scan`.
    fn record(&mut self, key: ObjectKey, object: Object, scan: Option<ScanSlot>) -> Result<()> {
        if let Some(last) = self.last.object(&key)? {
            self.seen.insert(&key);
            if last == object {
                if let Some(fingerprint) = scan {
                    self.scan.push((key, fingerprint));
                }
                return Ok(());
            }
        }
        self.changes.puts.insert(key, object, scan)
    }

    /// Whether the inside holds every chunk it keeps of `o`, an object of
    /// the last catalog (a patch's chunks are not kept, and an unchanged
    /// patched object is not rebuilt). The inside holds every chunk of the
    /// last catalog it keeps (`have` is made of them) but those it lost, so
    /// only those are looked for.
    fn chunks_known(&self, o: &Object) -> bool {
        match o {
            Object::File(f) => {
                self.reship.is_empty() || !f.chunks().any(|c| self.reship.contains(&c.id))
            }
            Object::Symlink { .. } => true,
        }
    }

    /// Encodes a changed object whole, or starts encoding it as a patch
    /// against its predecessor (`hint`, the source's guess, first; on the
    /// analysis pool) when one is kept.
    /// Objects over the delta size bound stream through
    /// [`Scanner::chunk_object`] without being held in memory. A new
    /// object's copy is a link to its file when it may be (`local`).
    fn encode_object(
        &mut self,
        key: &ObjectKey,
        hint: Option<&ObjectKey>,
        mut reader: Box<dyn Read>,
        (executable, local): (bool, Option<Linkable>),
    ) -> Result<Encoded> {
        let Some(level) = self.delta.level else {
            return Ok(Encoded::Ready(self.chunk_object(reader, executable)?));
        };
        // Nothing to patch against (a first export, a new package): the
        // object streams through the chunker as with deltas off, its chunks
        // going to the volume writer as they are cut, and its copy (the base
        // of the next patch) is written on the way. Not while inventories
        // name adopted content: whether an object is adopted is known only
        // from its whole digest, before any chunk may go.
        if self.adopted.is_empty() && self.families.predecessor(key, hint, 0)?.is_none() {
            // A small one is read whole (into room for most in one read
            // call; a growing buffer reads a few KiB in many) and its copy
            // written by the keeper thread while the scan goes on.
            let mut head = Vec::with_capacity(HEAD_ROOM);
            (&mut reader).take(KEEP_AHEAD + 1).read_to_end(&mut head)?;
            if head.len() as u64 <= KEEP_AHEAD.min(self.delta.max_object) {
                head.shrink_to_fit();
                let whole = self.chunk_object(&head[..], executable)?;
                self.keeper.keep(whole.sha256, head, local)?;
                self.report.whole += 1;
                self.report.whole_bytes += whole.size;
                return Ok(Encoded::Ready(whole));
            }
            let reader = std::io::Cursor::new(head).chain(reader);
            let whole = self.chunk_streamed(reader, executable, local)?;
            self.report.whole += 1;
            self.report.whole_bytes += whole.size;
            return Ok(Encoded::Ready(whole));
        }
        // A changed object with a predecessor: a small one is read whole
        // here, a larger one streams through the chunker and into its copy,
        // never held whole by the scan (`encode_streamed`).
        let held = self.delta.scan_held.min(self.delta.max_object);
        let mut data = Vec::with_capacity(HEAD_ROOM);
        (&mut reader).take(held + 1).read_to_end(&mut data)?;
        if data.len() as u64 > held {
            let rest = std::io::Cursor::new(data).chain(reader);
            return self.encode_streamed(key, hint, rest, (executable, level));
        }
        // What shipping it whole costs: the chunks the inside lacks. Only
        // where they lie is kept: if the object ships whole after all, they
        // are cut again from the copy kept in `refs`.
        let mut new_chunks = Vec::new();
        let mut seen = HashSet::new();
        let mut at = 0usize;
        let whole = cut_file(&data[..], executable, |id, bytes| -> Result<()> {
            if !self.have.contains(id)? && !self.carried.contains(id) && seen.insert(*id) {
                new_chunks.push((*id, at..at + bytes.len()));
            }
            at += bytes.len();
            Ok(())
        })?;
        self.pb.inc(whole.size);
        self.refs.put(&whole.sha256, &data)?;
        let base = match self.plan_cut(key, hint, &whole, &new_chunks)? {
            Plan::Done(object) => return Ok(Encoded::Ready(object)),
            Plan::Whole => {
                for (id, range) in new_chunks {
                    self.send(id, data[range].to_vec())?;
                }
                return Ok(Encoded::Ready(whole));
            }
            Plan::Patch(base) => base,
        };
        let content = delta::Content::Bytes(data);
        Ok(self.start_patch(key, base, content, whole, new_chunks, level))
    }

    /// [`Scanner::encode_object`] of a changed object over what the scan
    /// reads whole, with a predecessor: it streams through the chunker while
    /// a [`Digest`] thread makes its SHA-256 and writes its copy. The chunks
    /// shipping it whole would add are only located; they are read back
    /// from the copy if it ships whole, and the analysis reads the copy (a
    /// range at a time when the object is its own expanded form). An object
    /// over the delta size bound ships whole, its copy dropped once its
    /// chunks are read back. A read error stops it with no copy kept.
    fn encode_streamed(
        &mut self,
        key: &ObjectKey,
        hint: Option<&ObjectKey>,
        reader: impl std::io::Read,
        (executable, level): (bool, i32),
    ) -> Result<Encoded> {
        // The copy is kept whatever the size: the chunks of an object too
        // large to patch are read back from it.
        let side = Digest::start(self.refs.clone(), (u64::MAX, u64::MAX))?;
        let mut new_chunks = Vec::new();
        let mut seen = HashSet::new();
        let mut at = 0usize;
        let (have, carried, pb) = (&self.have, &self.carried, &self.pb);
        let cut = cut_chunks_undigested(side.reader(reader), |id, bytes| -> Result<()> {
            if !have.contains(id)? && !carried.contains(id) && seen.insert(*id) {
                new_chunks.push((*id, at..at + bytes.len()));
            }
            at += bytes.len();
            pb.inc(bytes.len() as u64);
            Ok(())
        });
        // The digest thread's error first: a copy it could not write stops
        // the cut too.
        let digest = side.finish(cut.is_ok())?;
        let (refs, size) = cut?;
        let sha256 =
            digest.ok_or_else(|| anyhow!("the thread that digests objects stopped early"))?;
        let whole = FileObject {
            size,
            sha256,
            executable,
            encoding: Encoding::Chunks(refs),
        };
        if !self
            .delta
            .patchable(size, || self.refs.starts_streamed(&sha256))
        {
            self.send_kept(key, &whole, new_chunks)?;
            self.refs.drop_copy(&sha256)?;
            return Ok(Encoded::Ready(whole));
        }
        let base = match self.plan_cut(key, hint, &whole, &new_chunks)? {
            Plan::Done(object) => return Ok(Encoded::Ready(object)),
            Plan::Whole => {
                self.send_kept(key, &whole, new_chunks)?;
                return Ok(Encoded::Ready(whole));
            }
            Plan::Patch(base) => base,
        };
        let content = delta::Content::Kept { len: size };
        Ok(self.start_patch(key, base, content, whole, new_chunks, level))
    }

    /// Cuts `bytes` into chunks, sends the new ones, returns their references.
    fn cut_bytes(&mut self, bytes: &[u8]) -> Result<Vec<ChunkRef>> {
        let mut pieces = Vec::new();
        let (refs, _, _) = cut_chunks(bytes, |id, data| -> Result<()> {
            pieces.push((*id, data));
            Ok(())
        })?;
        for (id, data) in pieces {
            self.send(id, data)?;
        }
        Ok(refs)
    }

    /// Cuts a patch's frame (a window's, or the whole patch's) into pieces
    /// of [`FRAME_CHUNK`] bytes (the last shorter), sends the new ones, and
    /// returns their references. A frame is compressed and depends on its
    /// base: its chunks deduplicate against nothing but the same frame, so
    /// content-defined 64 KiB chunks would only add a chunk entry and a
    /// reference (about 80 bytes) every 64 KiB.
    fn cut_frame(&mut self, frame: &[u8]) -> Result<Vec<ChunkRef>> {
        let mut refs = Vec::with_capacity(frame.len().div_ceil(FRAME_CHUNK).max(1));
        for piece in frame.chunks(FRAME_CHUNK) {
            refs.push(self.frame_piece(piece.to_vec())?);
        }
        Ok(refs)
    }

    /// [`Scanner::cut_frame`] of window `w`'s frame, read from the frames
    /// file of `windows` a piece at a time.
    fn cut_spilled_frame(
        &mut self,
        windows: &delta::Windows,
        w: &delta::WindowPatch,
    ) -> Result<Vec<ChunkRef>> {
        let len = w.frame_len();
        let mut refs = Vec::with_capacity(len.div_ceil(FRAME_CHUNK as u64).max(1) as usize);
        let mut at = 0u64;
        while at < len {
            let n = (len - at).min(FRAME_CHUNK as u64) as usize;
            let piece = windows.read_frame(w, at, n)?;
            refs.push(self.frame_piece(piece)?);
            at += n as u64;
        }
        Ok(refs)
    }

    /// One piece of a frame as a chunk: sent if new, its reference.
    fn frame_piece(&mut self, piece: Vec<u8>) -> Result<ChunkRef> {
        let id = ChunkId::of(&piece);
        let len = piece.len() as u32;
        self.send(id, piece)?;
        Ok(ChunkRef { id, len })
    }

    /// Sends a chunk to the volume writer unless the inside holds it or this
    /// bundle carries it already.
    fn send(&mut self, id: ChunkId, data: Vec<u8>) -> Result<()> {
        post_new(&self.have, &mut self.carried, &mut self.outbox, id, data)
    }

    /// Cuts an object every inside holds by its inventory, sending none of
    /// its chunks; checks its size against the inventory's.
    fn cut_adopted(&mut self, reader: Box<dyn Read>, executable: bool) -> Result<Encoded> {
        let pb = &self.pb;
        let f = cut_file(reader, executable, |_, data| -> Result<()> {
            pb.inc(data.len() as u64);
            Ok(())
        })?;
        match self.adopted.get(&f.sha256) {
            Some(&size) if size != f.size => bail!(
                "an inside's inventory gives {} bytes for SHA-256 {}, but the object has {}; run `ferry-in adopt` there again",
                size,
                f.sha256,
                f.size
            ),
            Some(_) => Ok(Encoded::Ready(f)),
            // Not the digest upstream announced: the caller reports it.
            None => Ok(Encoded::Ready(f)),
        }
    }

    /// Cuts a file into chunks, sending those the inside lacks to the volume writer.
    fn chunk_object(&mut self, reader: impl std::io::Read, executable: bool) -> Result<FileObject> {
        let (have, carried, outbox, pb) =
            (&self.have, &mut self.carried, &mut self.outbox, &self.pb);
        cut_file(reader, executable, |id, data| {
            pb.inc(data.len() as u64);
            post_new(have, carried, outbox, *id, data)
        })
    }

    /// [`Scanner::chunk_object`] of an object streaming through, whose
    /// SHA-256 and copy (the next patch's base) a [`Digest`] thread makes
    /// from the same blocks while this thread cuts and hashes the chunks.
    /// The copy of a local file that may be linked is a link to it, made
    /// once the object is read (the digest thread then writes none).
    fn chunk_streamed(
        &mut self,
        reader: impl std::io::Read,
        executable: bool,
        local: Option<Linkable>,
    ) -> Result<FileObject> {
        let local = match local {
            Some(l) if self.refs.may_link(&l.path)? => Some(l),
            _ => None,
        };
        let limit = match local {
            Some(_) => (0, 0),
            None => (self.delta.max_object, self.delta.max_streamed),
        };
        let side = Digest::start(self.refs.clone(), limit)?;
        let (have, carried, outbox, pb) =
            (&self.have, &mut self.carried, &mut self.outbox, &self.pb);
        let cut = cut_chunks_undigested(side.reader(reader), |id, data| {
            pb.inc(data.len() as u64);
            post_new(have, carried, outbox, *id, data)
        });
        // The digest thread's error first: a copy it could not write stops
        // the cut too.
        let digest = side.finish(cut.is_ok())?;
        let (refs, size) = cut?;
        let sha256 =
            digest.ok_or_else(|| anyhow!("the thread that digests objects stopped early"))?;
        let patchable = |l: &Linkable| self.delta.patchable(size, || delta::file_streamed(&l.path));
        if let Some(l) = local.filter(patchable) {
            if let delta::Link::Made(stamp) = self.refs.link(&sha256, &l.path, &l.fingerprint)? {
                self.linked.push(Linked {
                    key: l.key,
                    path: l.path,
                    stamp,
                });
            }
        }
        Ok(FileObject {
            size,
            sha256,
            executable,
            encoding: Encoding::Chunks(refs),
        })
    }
}

/// An item's kind with a local file made a [`ItemKind::File`] the
/// exporter opens, and that file's path and fingerprint beside it.
fn local_as_file(kind: ItemKind) -> (ItemKind, Option<(std::path::PathBuf, String)>) {
    match kind {
        ItemKind::Local {
            executable,
            fingerprint,
            path,
        } => {
            let at = path.clone();
            let file = ItemKind::File {
                executable,
                fingerprint: Some(fingerprint.clone()),
                expected_sha256: None,
                open: Box::new(move || {
                    let f = std::fs::File::open(&at)
                        .with_context(|| format!("cannot open {}", at.display()))?;
                    Ok(Box::new(f) as Box<dyn Read>)
                }),
            };
            (file, Some((path, fingerprint)))
        }
        other => (other, None),
    }
}

/// [`Scanner::plan_cut`]'s answer.
enum Plan {
    /// Ship this object as it is (no chunk to send).
    Done(FileObject),
    /// Ship the cut object whole: its new chunks go.
    Whole,
    /// Patch it against this predecessor.
    Patch((ObjectKey, FileObject)),
}

/// The chunks the inside holds after the last bundle: those the last
/// catalog's files keep (the ledger's counts of them: one read a chunk, the
/// rows not read), but those it lost (`reship`).
struct Have<'a> {
    last: &'a Last,
    reship: &'a HashSet<ChunkId>,
}

impl Have<'_> {
    fn contains(&self, id: &ChunkId) -> Result<bool> {
        Ok(!self.reship.contains(id) && self.last.holds_chunk(id)?)
    }
}

/// Posts a chunk to the volume writer unless the inside holds it (`have`)
/// or this bundle carries it already.
fn post_new(
    have: &Have<'_>,
    carried: &mut Carried,
    outbox: &mut Outbox,
    id: ChunkId,
    data: Vec<u8>,
) -> Result<()> {
    if !have.contains(&id)? && carried.insert(id) {
        outbox.post(id, data)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
