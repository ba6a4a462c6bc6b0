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
    cut_chunks, cut_chunks_undigested, cut_file, BuildError, BundleBuilder, PackOptions, Position,
};
use ferry_protocol::catalog::{
    Catalog, ChunkRef, Encoding, Expanded, FileObject, Object, PutsCheck, Rebuilt, SourceKind,
};
use ferry_protocol::codec::{self, Codec};
use ferry_protocol::id::{ChunkId, Sha256};
use ferry_protocol::path::ObjectKey;
use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Read;
use std::ops::Range;
use std::sync::mpsc;

use super::carried::Carried;
use super::keeper::{Digest, Keeper, Linkable, Linked, KEEP_AHEAD};
use super::puts::ChangeSet;
use super::seen::Seen;
use super::{volume_error, ExportOptions, VolumeFiles};

/// Upstream bytes of the objects whose patches are being made at once (one
/// larger object is still made, alone). Each needs several times its size
/// while in flight (its expanded form, its base's reference form, the patch),
/// so this bounds the analysis pool's memory, not only its queue.
const INFLIGHT_BYTES: u64 = 48 << 20;

/// Chunk bytes the scan gathers before handing them to the volume writer in
/// one message (a chunk larger than the rest of a batch still joins it): a
/// tree of small files sends one message, and the writer starts one
/// encoding job, per batch, not per chunk.
const BATCH_BYTES: usize = 1 << 20;

/// Batches on their way to the volume writer, at most: with
/// [`BATCH_BYTES`] and chunks of at most 256 KiB, 10 MiB.
const BATCHES_QUEUED: usize = 8;

/// The buffer a new object is first read into: most small files fit.
const HEAD_ROOM: usize = 64 << 10;

/// New chunks, in the order the bundle stores them.
type Batch = Vec<(ChunkId, Vec<u8>)>;

/// The chunks the scan has not handed to the volume writer yet, and the way
/// to it.
struct Outbox {
    tx: mpsc::SyncSender<Batch>,
    batch: Batch,
    bytes: usize,
}

impl Outbox {
    /// Adds a chunk; sends the batch once it holds [`BATCH_BYTES`].
    fn post(&mut self, id: ChunkId, data: Vec<u8>) -> Result<()> {
        self.bytes += data.len();
        self.batch.push((id, data));
        if self.bytes >= BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Sends what is gathered.
    fn flush(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.bytes = 0;
        let batch = std::mem::take(&mut self.batch);
        self.tx
            .send(batch)
            .map_err(|_| anyhow!("the volume writer stopped"))
    }
}

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

/// Starts the thread that packs the scan's batches of new chunks into
/// volumes (their zstd on a pool of every core); it gives the builder back.
fn start_writer(
    rx: mpsc::Receiver<Batch>,
    mut builder: BundleBuilder<VolumeFiles>,
    level: i32,
    packed: indicatif::ProgressBar,
) -> Result<std::thread::JoinHandle<Result<BundleBuilder<VolumeFiles>, BuildError>>> {
    let packers = rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("ferry-pack-{i}"))
        .build()
        .context("cannot start the packing threads")?;
    Ok(std::thread::spawn(move || {
        pack_chunks(rx, &mut builder, &packers, level, &packed)?;
        Ok(builder)
    }))
}

/// Scans every source while a second thread packs the new chunks into
/// volumes; returns the changes to `last` (checked:
/// [`ferry_protocol::catalog::PutsCheck`]; the next catalog is never built
/// beside the last one, and a large change is not held in memory:
/// [`super::puts`]) and the builder (its last volume still open).
pub(super) fn scan_and_pack(
    layout: &Layout,
    last: &Last,
    position: Position,
    counted: Counted<'_>,
    sources: &[Box<dyn Source>],
    opts: &ExportOptions,
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
    let builder =
        BundleBuilder::new(position, pack, VolumeFiles { dir: tmp.clone() }).without_id_set();
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
        report,
        linked,
        carried,
        ..
    } = scanner;
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

/// A batch on its way into a volume: each chunk's id and raw length, and
/// their stored forms once a packing thread has encoded them.
type Packing = (Vec<(ChunkId, u32)>, mpsc::Receiver<Vec<(Codec, Vec<u8>)>>);

/// The volume writer: encodes the batches of chunks `rx` brings on every
/// core of `packers` (zstd at `level`, or raw; one job a batch), and appends
/// the chunks to the builder's volumes in the order they came, so the
/// bundle's bytes are those of a serial [`BundleBuilder::add_chunk`] of
/// each. At most a few batches per thread are in flight.
fn pack_chunks(
    rx: mpsc::Receiver<Batch>,
    builder: &mut BundleBuilder<VolumeFiles>,
    packers: &rayon::ThreadPool,
    level: i32,
    pb: &indicatif::ProgressBar,
) -> Result<(), BuildError> {
    let most = 2 * packers.current_num_threads();
    let mut inflight: VecDeque<Packing> = VecDeque::with_capacity(most + 1);
    let append = |builder: &mut BundleBuilder<VolumeFiles>, (ids, rx): Packing| {
        let stored = rx.recv().map_err(|_| {
            BuildError::Read(std::io::Error::other(format!(
                "the encoding of chunk {} stopped",
                ids[0].0
            )))
        })?;
        for ((id, raw_len), (codec, stored)) in ids.into_iter().zip(stored) {
            builder.add_stored(id, raw_len, codec, &stored)?;
            pb.inc(u64::from(raw_len));
        }
        Ok::<_, BuildError>(())
    };
    for batch in rx {
        if batch.is_empty() {
            continue;
        }
        let (tx, encoded) = mpsc::sync_channel(1);
        let ids = batch.iter().map(|(id, d)| (*id, d.len() as u32)).collect();
        packers.spawn(move || {
            let stored = batch
                .into_iter()
                .map(|(_, data)| codec::encode_owned(data, level))
                .collect();
            let _ = tx.send(stored);
        });
        inflight.push_back((ids, encoded));
        while inflight.len() > most {
            let next = inflight.pop_front().expect("not empty");
            append(builder, next)?;
        }
    }
    while let Some(next) = inflight.pop_front() {
        append(builder, next)?;
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
        let side = Digest::start(self.refs.clone(), u64::MAX)?;
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
        if size > self.delta.max_object {
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

    /// What to do with a changed object once cut (`whole`, with the chunks
    /// shipping it whole would add): keep the last bundle's object when it
    /// is unchanged (an index without a fingerprint, read again), name an
    /// adopted one (held by every inside outside Ferry), patch it against
    /// its predecessor, or ship it whole (counted in the report).
    fn plan_cut(
        &mut self,
        key: &ObjectKey,
        hint: Option<&ObjectKey>,
        whole: &FileObject,
        new_chunks: &[(ChunkId, Range<usize>)],
    ) -> Result<Plan> {
        if let Some(last) = self.last.object(key)? {
            if let Object::File(prev) = &last {
                let same = prev.sha256 == whole.sha256 && prev.executable == whole.executable;
                if same && self.chunks_known(&last) {
                    return Ok(Plan::Done(prev.clone()));
                }
            }
        }
        if self.adopted.get(&whole.sha256) == Some(&whole.size) {
            return Ok(Plan::Done(whole.clone()));
        }
        let whole_cost: u64 = new_chunks.iter().map(|(_, r)| r.len() as u64).sum();
        match self.families.predecessor(key, hint, whole.size)? {
            Some((k, b)) if b.sha256 != whole.sha256 && whole_cost > 0 => Ok(Plan::Patch((k, b))),
            _ => {
                self.report.whole += 1;
                self.report.whole_bytes += whole.size;
                Ok(Plan::Whole)
            }
        }
    }

    /// Starts the patch of `content` (object `key`, `whole` as shipped
    /// whole) against `base` on the analysis pool.
    fn start_patch(
        &mut self,
        key: &ObjectKey,
        base: (ObjectKey, FileObject),
        content: delta::Content,
        whole: FileObject,
        new_chunks: Vec<(ChunkId, Range<usize>)>,
        level: i32,
    ) -> Encoded {
        let (tx, rx) = mpsc::sync_channel(1);
        let (refs, recipes) = (self.refs.clone(), self.recipes.clone());
        let (opts, key) = (self.delta, key.clone());
        let (size, sha256) = (whole.size, whole.sha256);
        self.analysis.spawn(move || {
            let patched = delta::patch_against(
                &key, content, &sha256, &base.0, &base.1, &refs, &opts, level, &recipes,
            );
            let _ = tx.send(patched);
        });
        let whole_cost = new_chunks.iter().map(|(_, r)| r.len() as u64).sum();
        Encoded::Pending(Box::new(Pending {
            whole,
            new_chunks,
            whole_cost,
            size,
            patched: rx,
        }))
    }

    /// Sends the chunks `new_chunks` of an object shipped whole, read back
    /// from its kept copy (each checked against its id) a chunk at a time.
    fn send_kept(
        &mut self,
        key: &ObjectKey,
        whole: &FileObject,
        new_chunks: Vec<(ChunkId, Range<usize>)>,
    ) -> Result<()> {
        use std::os::unix::fs::FileExt;
        if new_chunks.is_empty() {
            return Ok(());
        }
        let dir = self.refs.dir().display().to_string();
        let lost = || {
            anyhow!("the copy of {key} kept in {dir} vanished or was damaged during the export; export again")
        };
        let copy = self
            .refs
            .open(&whole.sha256, whole.size)?
            .ok_or_else(lost)?;
        for (id, range) in new_chunks {
            let mut bytes = vec![0u8; range.len()];
            copy.read_exact_at(&mut bytes, range.start as u64)
                .with_context(|| format!("cannot read the copy of {key} kept in {dir}"))?;
            if ChunkId::of(&bytes) != id {
                return Err(lost());
            }
            self.send(id, bytes)?;
        }
        Ok(())
    }

    /// Queues an object whose patch is being made; settles the oldest ones
    /// while too many objects (or bytes) are in flight.
    fn queue(&mut self, key: ObjectKey, p: Pending, scan: Option<ScanSlot>) -> Result<()> {
        self.inflight_bytes += p.size;
        self.pending_keys.insert(key.clone());
        self.pending.push_back((key, p, scan));
        let most = 2 * self.analysis.current_num_threads();
        while self.pending.len() > most
            || (self.pending.len() > 1 && self.inflight_bytes > INFLIGHT_BYTES)
        {
            self.settle_one()?;
        }
        Ok(())
    }

    /// Waits for every object in flight and records it.
    fn settle_all(&mut self) -> Result<()> {
        while !self.pending.is_empty() {
            self.settle_one()?;
        }
        Ok(())
    }

    /// Waits for the oldest object in flight: ships it as its patch if that
    /// costs less than its new chunks, else whole; records it.
    fn settle_one(&mut self) -> Result<()> {
        let Some((key, p, scan)) = self.pending.pop_front() else {
            return Ok(());
        };
        self.inflight_bytes -= p.size;
        self.pending_keys.remove(&key);
        let patched = p
            .patched
            .recv()
            .map_err(|_| anyhow!("the analysis of {key} stopped"))??;
        if patched.as_ref().is_some_and(|p| p.reused) {
            self.report.reused += 1;
        }
        let object = match patched {
            Some(patch) if patch.cost() + patch.entry_cost() < p.whole_cost => {
                self.report.patched += 1;
                self.report.patched_bytes += p.whole.size;
                self.report.patch_bytes += patch.cost();
                self.ship_patched(p.whole, patch)?
            }
            _ => {
                self.report.whole += 1;
                self.report.whole_bytes += p.whole.size;
                self.send_kept(&key, &p.whole, p.new_chunks)?;
                p.whole
            }
        };
        self.record(key, Object::File(object), scan)
    }

    /// Cuts a patch's recipe and frame into chunks, sends the new ones, and
    /// returns the object with its `Rebuilt` encoding.
    fn ship_patched(&mut self, whole: FileObject, p: delta::Patched) -> Result<FileObject> {
        let recipe = self.cut_bytes(&p.recipe)?;
        let expanded = match &p.patch {
            delta::Frames::One(frame) => Expanded::Patch {
                base: p.base,
                patch: self.cut_bytes(frame)?,
            },
            delta::Frames::Windows(windows) => {
                let mut entries = Vec::with_capacity(windows.len());
                for w in windows {
                    let chunks = self.cut_bytes(&w.frame)?;
                    entries.push(w.entry(chunks));
                }
                Expanded::Windows {
                    base: p.base,
                    windows: entries,
                }
            }
        };
        Ok(FileObject {
            encoding: Encoding::Rebuilt(Box::new(Rebuilt {
                recipe,
                expanded_len: p.expanded_len,
                expanded_blake3: p.expanded_blake3,
                expanded,
            })),
            ..whole
        })
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
            Some(_) => 0,
            None => self.delta.max_object,
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
        if let Some(l) = local.filter(|_| size <= self.delta.max_object) {
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
mod tests {
    use super::super::{export_at, ExportOptions};
    use crate::delta::DeltaOptions;
    use crate::layout::Layout;
    use crate::ledger::Ledger;
    use crate::source::{Item, ItemKind, ScanCtx, Source};
    use crate::test_util::noise;
    use anyhow::Result;
    use ferry_protocol::catalog::SourceKind;
    use ferry_protocol::keys::SecretKey;
    use ferry_protocol::path::ObjectKey;
    use std::collections::BTreeMap;
    use std::io::Read;
    use std::path::Path;

    /// A source of files held in memory; the file named `fail` (if any)
    /// gives an error once `after` of its bytes are read.
    struct Mem {
        files: Vec<(String, Vec<u8>)>,
        fail: Option<(String, usize)>,
        /// Each file's fingerprint, by path (else none).
        fingerprints: BTreeMap<String, String>,
    }

    /// Reads `data`, then fails (a disk or a network gone mid-read).
    struct Failing {
        data: std::io::Cursor<Vec<u8>>,
    }

    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match self.data.read(buf)? {
                0 => Err(std::io::Error::other("the upstream disk went away")),
                n => Ok(n),
            }
        }
    }

    impl Source for Mem {
        fn name(&self) -> &str {
            "s"
        }
        fn kind(&self) -> SourceKind {
            SourceKind::Files
        }
        fn scan(&self, _: &ScanCtx<'_>, sink: &mut dyn FnMut(Item) -> Result<()>) -> Result<()> {
            for (path, data) in &self.files {
                let data = data.clone();
                let fail = match &self.fail {
                    Some((p, after)) if p == path => Some(*after),
                    _ => None,
                };
                let open: crate::source::Opener = Box::new(move || {
                    Ok(match fail {
                        Some(after) => Box::new(Failing {
                            data: std::io::Cursor::new(data[..after].to_vec()),
                        }) as Box<dyn Read>,
                        None => Box::new(std::io::Cursor::new(data)),
                    })
                });
                sink(Item {
                    path: path.clone(),
                    predecessor: None,
                    kind: ItemKind::File {
                        executable: false,
                        fingerprint: self.fingerprints.get(path).cloned(),
                        expected_sha256: None,
                        open,
                    },
                })?;
            }
            Ok(())
        }
    }

    fn options(delta: DeltaOptions) -> ExportOptions {
        ExportOptions {
            volume_size: 64 << 20,
            level: 3,
            expires_in: 86_400,
            delta,
            // Runs of a few puts, merged: the path of large exports.
            puts_held: 5,
        }
    }

    /// Exports `files` into the state at `root` as bundle `now`'s.
    fn export(
        root: &Path,
        files: &[(String, Vec<u8>)],
        fail: Option<(String, usize)>,
        delta: DeltaOptions,
    ) -> Result<Option<(std::path::PathBuf, crate::delta::DeltaReport)>> {
        export_with(root, files, fail, options(delta))
    }

    /// [`export`] with these options.
    fn export_with(
        root: &Path,
        files: &[(String, Vec<u8>)],
        fail: Option<(String, usize)>,
        options: ExportOptions,
    ) -> Result<Option<(std::path::PathBuf, crate::delta::DeltaReport)>> {
        export_fingerprinted(root, files, fail, options, &BTreeMap::new())
    }

    /// [`export_with`], the files listed with these fingerprints.
    fn export_fingerprinted(
        root: &Path,
        files: &[(String, Vec<u8>)],
        fail: Option<(String, usize)>,
        options: ExportOptions,
        fingerprints: &BTreeMap<String, String>,
    ) -> Result<Option<(std::path::PathBuf, crate::delta::DeltaReport)>> {
        let layout = Layout::new(root);
        let ledger = Ledger::open(&layout)?;
        let key = SecretKey::from_seed([7; 32]);
        let sources: Vec<Box<dyn Source>> = vec![Box::new(Mem {
            files: files.to_vec(),
            fail,
            fingerprints: fingerprints.clone(),
        })];
        let made = export_at(&layout, &ledger, &key, &sources, &options, 1_000)?;
        Ok(made.map(|e| (e.dir, e.delta)))
    }

    /// Every file under `dir` and its bytes.
    fn files_of(dir: &Path) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        let mut todo = vec![dir.to_path_buf()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    todo.push(p);
                } else {
                    let name = p.strip_prefix(dir).unwrap().display().to_string();
                    out.insert(name, std::fs::read(&p).unwrap());
                }
            }
        }
        out
    }

    fn copy_dir(from: &Path, to: &Path) {
        for (name, bytes) in files_of(from) {
            let p = to.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, bytes).unwrap();
        }
    }

    /// `old` with bytes inserted near the start and a run changed in the
    /// middle.
    fn edited(old: &[u8], seed: u8) -> Vec<u8> {
        let mut new = old[..1000].to_vec();
        new.extend_from_slice(&[seed; 37]);
        new.extend_from_slice(&old[1000..]);
        let mid = new.len() / 2;
        new[mid..mid + 300].fill(seed);
        new
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// Small settings, so that small objects take the large objects' paths:
    /// objects over 64 KiB stream, windows of 300 kB, objects over 3 MB are
    /// not patched.
    fn small(scan_held: u64) -> DeltaOptions {
        DeltaOptions {
            window: 300_000,
            max_object: 3_000_000,
            scan_held,
            ..DeltaOptions::default()
        }
    }

    /// Files listed in no key order (as several sources and patches give
    /// their puts).
    fn unordered(n: u32) -> Vec<(String, Vec<u8>)> {
        (0..n)
            .map(|i| (i * 7919) % n)
            .map(|i| {
                (
                    format!("d{}/f{i:05}", i % 13),
                    format!("{i}\n").repeat(3).into_bytes(),
                )
            })
            .collect()
    }

    #[test]
    fn puts_held_or_written_out_in_runs_make_the_same_bundles_and_ledger() {
        let tmp = tempfile::tempdir().unwrap();
        let (held, runs) = (tmp.path().join("held"), tmp.path().join("runs"));
        // One stream: the same state copied before its first export.
        drop(Ledger::open(&Layout::new(&held)).unwrap());
        copy_dir(&held, &runs);
        let first = unordered(1_500);
        let mut second = unordered(1_510);
        second.retain(|(p, _)| p != "d3/f00003" && p != "d7/f01000");
        second[4].1 = b"changed".to_vec();
        for (files, seq) in [(&first, 1), (&second, 2)] {
            let in_memory = ExportOptions {
                puts_held: super::super::PUTS_HELD,
                ..options(DeltaOptions::default())
            };
            let a = export_with(&held, files, None, in_memory).unwrap().unwrap();
            let b = export_with(&runs, files, None, options(DeltaOptions::default()))
                .unwrap()
                .unwrap();
            let (a, b) = (files_of(&a.0), files_of(&b.0));
            assert!(a.contains_key(ferry_agent_common::media::MANIFEST_FILE));
            assert!(a == b, "bundle {seq} differs");
            let catalog = |root: &Path| Ledger::open(&Layout::new(root)).unwrap().catalog(seq);
            let c = catalog(&held).unwrap();
            assert_eq!(c.objects.len(), files.len());
            assert_eq!(catalog(&runs).unwrap(), c);
        }
    }

    #[test]
    fn fingerprints_carried_in_runs_or_held_write_the_same_rows() {
        let tmp = tempfile::tempdir().unwrap();
        let (held, runs) = (tmp.path().join("held"), tmp.path().join("runs"));
        drop(Ledger::open(&Layout::new(&held)).unwrap());
        copy_dir(&held, &runs);
        let first = unordered(1_500);
        let mut fps: BTreeMap<String, String> = first
            .iter()
            .map(|(p, _)| (p.clone(), format!("a-{p}")))
            .collect();
        let fps1 = fps.clone();
        // The delta: two removed, ten added, one changed (a new
        // fingerprint), one read again (a new fingerprint, the same bytes:
        // its object is not put, its fingerprint is written all the same),
        // the others unchanged (not read; their rows keep theirs).
        let mut second = unordered(1_510);
        second.retain(|(p, _)| p != "d3/f00003" && p != "d7/f01000");
        second[4].1 = b"changed".to_vec();
        let (changed, touched) = (second[4].0.clone(), second[5].0.clone());
        for (p, _) in &second {
            fps.entry(p.clone()).or_insert_with(|| format!("a-{p}"));
        }
        fps.insert(changed.clone(), format!("b-{changed}"));
        fps.insert(touched.clone(), format!("t-{touched}"));
        fps.retain(|p, _| second.iter().any(|(q, _)| q == p));
        for (files, fps, seq) in [(&first, &fps1, 1), (&second, &fps, 2)] {
            let in_memory = ExportOptions {
                puts_held: super::super::PUTS_HELD,
                ..options(DeltaOptions::default())
            };
            let a = export_fingerprinted(&held, files, None, in_memory, fps)
                .unwrap()
                .unwrap();
            let b = export_fingerprinted(&runs, files, None, options(DeltaOptions::default()), fps)
                .unwrap()
                .unwrap();
            assert!(files_of(&a.0) == files_of(&b.0), "bundle {seq} differs");
            for root in [&held, &runs] {
                let ledger = Ledger::open(&Layout::new(root)).unwrap();
                let last = ledger.last(seq).unwrap();
                assert_eq!(last.row_count().unwrap(), files.len() as u64);
                for (path, fp) in fps {
                    let key = ObjectKey {
                        source: "s".into(),
                        path: path.clone(),
                    };
                    let row = last.row(&key).unwrap().unwrap();
                    assert_eq!(row.fingerprint.as_ref(), Some(fp), "{root:?} {seq}: {path}");
                }
            }
            // The same files again: none is read, nothing is exported.
            if seq == 2 {
                let report =
                    export_fingerprinted(&runs, files, None, options(DeltaOptions::default()), fps)
                        .unwrap();
                assert!(report.is_none(), "nothing changed, nothing exported");
            }
        }
    }

    #[test]
    fn a_delta_that_removes_the_largest_file_finds_the_next_largest_beside_the_puts() {
        let tmp = tempfile::tempdir().unwrap();
        let mut v1 = unordered(30);
        v1.push(("z/big".into(), noise(5_000, 1)));
        v1.push(("a/second".into(), noise(3_000, 2)));
        v1.push(("k/third".into(), noise(2_000, 3)));
        export(tmp.path(), &v1, None, DeltaOptions::default())
            .unwrap()
            .unwrap();
        // The largest gone, the next largest kept; one put larger than
        // the third but smaller than the second, and the third rewritten.
        let mut v2 = unordered(30);
        v2[3].1 = b"changed".to_vec();
        v2.push(("a/second".into(), noise(3_000, 2)));
        v2.push(("k/third".into(), noise(2_000, 4)));
        v2.push(("m/new".into(), noise(2_500, 5)));
        let (dir, _) = export(tmp.path(), &v2, None, DeltaOptions::default())
            .unwrap()
            .unwrap();
        let file = std::fs::read(dir.join(ferry_agent_common::media::MANIFEST_FILE)).unwrap();
        let key = SecretKey::from_seed([7; 32]);
        let limits = ferry_protocol::limits::ReceiverLimits::default();
        let opened =
            ferry_protocol::manifest::Manifest::open(&file, &[key.public()], &limits).unwrap();
        let m = opened.manifest().unwrap();
        assert_eq!(m.totals.max_object, 3_000);
        let ledger = Ledger::open(&Layout::new(tmp.path())).unwrap();
        let next = ledger
            .catalog(1)
            .unwrap()
            .apply(&m.sources, &m.changes)
            .unwrap();
        assert_eq!(ledger.catalog(2).unwrap(), next);
        m.check_result(&next, &limits).unwrap();
    }

    #[test]
    fn two_items_at_one_path_are_refused_held_or_in_different_runs() {
        for (held, gap) in [(super::super::PUTS_HELD, 2), (5, 2), (5, 20)] {
            let tmp = tempfile::tempdir().unwrap();
            let mut files = unordered(40);
            files.insert(gap, files[0].clone());
            let opts = ExportOptions {
                puts_held: held,
                ..options(DeltaOptions::default())
            };
            let e = export_with(tmp.path(), &files, None, opts).unwrap_err();
            let msg = format!("{e:#}");
            let want = format!("source \"s\": two items at path {:?}", files[0].0);
            assert!(msg.contains(&want), "held {held}, gap {gap}: {msg}");
            let ledger = Ledger::open(&Layout::new(tmp.path())).unwrap();
            assert_eq!(ledger.head().unwrap().sequence, 0);
            let bundles = Layout::new(tmp.path()).bundles();
            assert!(files_of(&bundles).is_empty(), "{:?}", files_of(&bundles));
        }
    }

    #[test]
    fn a_first_export_of_many_objects_streams_a_manifest_that_opens_to_its_catalog() {
        // Over 1,024 changes: the manifest goes through `ManifestWriter`.
        let files: Vec<(String, Vec<u8>)> = (0..1_500u32)
            .map(|i| {
                (
                    format!("d{}/f{i:05}", i / 100),
                    format!("file {i}\n")
                        .repeat(1 + i as usize % 7)
                        .into_bytes(),
                )
            })
            .collect();
        let tmp = tempfile::tempdir().unwrap();
        let (dir, _) = export(tmp.path(), &files, None, DeltaOptions::default())
            .unwrap()
            .unwrap();
        let file = std::fs::read(dir.join(ferry_agent_common::media::MANIFEST_FILE)).unwrap();
        let key = SecretKey::from_seed([7; 32]);
        let limits = ferry_protocol::limits::ReceiverLimits::default();
        let mut opened =
            ferry_protocol::manifest::Manifest::open(&file, &[key.public()], &limits).unwrap();
        assert_eq!(u32::from_le_bytes(file[8..12].try_into().unwrap()), 4);
        // Each small file is one chunk, listed without its id: named from its bytes.
        let bytes: BTreeMap<&str, &[u8]> = files
            .iter()
            .map(|(p, b)| (p.as_str(), b.as_slice()))
            .collect();
        let ids: Vec<_> = opened
            .to_name()
            .iter()
            .map(|t| {
                ferry_protocol::id::ChunkId(
                    *blake3::hash(bytes[t.key.key().path.as_str()]).as_bytes(),
                )
            })
            .collect();
        opened.name(&ids).unwrap();
        let m = opened.manifest().unwrap();
        assert_eq!(m.changes.len(), files.len());
        // The in-memory writer makes the same file of the same manifest.
        assert!(
            m.sign(&key) == file,
            "the streamed manifest is not the writer's form"
        );
        // Its catalog is the one the ledger committed.
        let next = ferry_protocol::catalog::Catalog::default()
            .apply(&m.sources, &m.changes)
            .unwrap();
        let ledger = Ledger::open(&Layout::new(tmp.path())).unwrap();
        assert_eq!(ledger.catalog(1).unwrap(), next);
        m.check_result(&next, &limits).unwrap();
        // A delta after it (a few changes: written in memory) commits on.
        let mut changed = files.clone();
        changed[3].1 = b"changed".to_vec();
        changed.pop();
        drop(ledger);
        export(tmp.path(), &changed, None, DeltaOptions::default())
            .unwrap()
            .unwrap();
        let ledger = Ledger::open(&Layout::new(tmp.path())).unwrap();
        assert_eq!(ledger.catalog(2).unwrap().objects.len(), files.len() - 1);
    }

    #[test]
    fn changed_objects_streamed_make_the_bundle_they_make_read_whole() {
        // A plain object over a window (patched in windows read from its
        // copy), one under a window, a compressed one, one over the delta
        // size bound (ships whole, its chunks read back from its copy), one
        // whose patch does not pay (new noise: ships whole), and small ones.
        let plain = noise(1_000_000, 1);
        let small_plain = noise(200_000, 2);
        let text = noise(40_000, 3).repeat(8);
        let huge = noise(3_500_000, 4);
        let fresh = noise(500_000, 5);
        let v1: Vec<(String, Vec<u8>)> = vec![
            ("big.bin".into(), plain.clone()),
            ("mid.bin".into(), small_plain.clone()),
            ("pkg.gz".into(), gz(&text)),
            ("huge.iso".into(), huge.clone()),
            ("other.bin".into(), fresh.clone()),
            ("tiny.txt".into(), b"hello".to_vec()),
        ];
        let v2: Vec<(String, Vec<u8>)> = vec![
            ("big.bin".into(), edited(&plain, 9)),
            ("mid.bin".into(), edited(&small_plain, 8)),
            ("pkg.gz".into(), gz(&edited(&text, 7))),
            ("huge.iso".into(), edited(&huge, 6)),
            ("other.bin".into(), noise(500_000, 55)),
            ("tiny.txt".into(), b"hello again".to_vec()),
        ];
        let tmp = tempfile::tempdir().unwrap();
        let (read, streamed) = (tmp.path().join("read"), tmp.path().join("streamed"));
        export(&read, &v1, None, small(u64::MAX)).unwrap().unwrap();
        copy_dir(&read, &streamed);
        // The same second export from the same state, the changed objects
        // read whole by the scan, then streamed.
        let a = export(&read, &v2, None, small(u64::MAX)).unwrap().unwrap();
        let b = export(&streamed, &v2, None, small(64 << 10))
            .unwrap()
            .unwrap();
        // Patched: the two plain ones and the compressed one; whole: the
        // one whose patch does not pay and the tiny one (the huge one is
        // not counted).
        assert_eq!((b.1.patched, b.1.whole), (3, 2), "{:?}", b.1);
        assert_eq!(a.1, b.1);
        let (a, b) = (files_of(&a.0), files_of(&b.0));
        assert!(a.len() >= 2, "{:?}", a.keys());
        assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
        for (name, bytes) in &a {
            assert!(b[name] == *bytes, "{name} differs");
        }
        // Patches, not whole objects: the bundle holds much less than the
        // 1.7 MB of changed patchable objects (the huge one ships whole).
        let total: usize = b.values().map(Vec::len).sum();
        assert!(total < 3_500_000 + 500_000 + 200_000, "{total} bytes");
        // The copy of the object too large to patch is not kept; the others'
        // are (the next export's bases).
        let objects = files_of(&Layout::new(&streamed).objects());
        let sha = |d: &[u8]| ferry_protocol::id::Sha256::of(d).to_hex();
        assert!(!objects.contains_key(&sha(&edited(&huge, 6))));
        assert_eq!(
            objects.get(&sha(&edited(&plain, 9))),
            Some(&edited(&plain, 9))
        );
        assert!(
            objects.keys().all(|k| !k.starts_with('.')),
            "{:?}",
            objects.keys()
        );
    }

    #[test]
    fn a_read_error_midway_through_a_streamed_object_commits_nothing() {
        let plain = noise(1_000_000, 1);
        let v1: Vec<(String, Vec<u8>)> = vec![("big.bin".into(), plain.clone())];
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        export(root, &v1, None, small(64 << 10)).unwrap().unwrap();
        let layout = Layout::new(root);
        let (bundles, objects) = (files_of(&layout.bundles()), files_of(&layout.objects()));
        let v2: Vec<(String, Vec<u8>)> = vec![("big.bin".into(), edited(&plain, 3))];
        for after in [0, 100_000, 700_000] {
            let e =
                export(root, &v2, Some(("big.bin".into(), after)), small(64 << 10)).unwrap_err();
            let msg = format!("{e:#}");
            assert!(msg.contains("the upstream disk went away"), "{msg}");
            assert!(msg.contains("big.bin"), "{msg}");
            // Nothing committed, no bundle, no copy or temporary file.
            let ledger = Ledger::open(&layout).unwrap();
            assert_eq!(ledger.head().unwrap().sequence, 1);
            drop(ledger);
            assert!(files_of(&layout.bundles()) == bundles, "after {after}");
            assert!(files_of(&layout.objects()) == objects, "after {after}");
        }
        // The next export reads it whole and ships it.
        assert!(export(root, &v2, None, small(64 << 10)).unwrap().is_some());
    }
}
