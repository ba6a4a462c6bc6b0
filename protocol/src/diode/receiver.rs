//! The diode receiver as a state machine, sans I/O.
//!
//! The agent feeds it datagrams and the current time
//! ([`Receiver::handle`]) and carries out the [`Event`]s it queues: create a
//! spool file at its final size, write these bytes at this offset, a bundle is
//! complete, a bundle's partial files are to be dropped. It reads no clock,
//! opens no file and never fails on a packet: anything it cannot use is
//! counted and dropped.
//!
//! Hostile packets are expected (the packet check is unkeyed). So:
//! - a bundle's geometry (file count, file sizes, segment and symbol sizes,
//!   totals) is checked against [`DiodeLimits`] before any slot, decoder or
//!   file is made for it, with checked arithmetic;
//! - a slot whose bundle has not rebuilt a segment for
//!   [`DiodeLimits::stale_after_ms`] expires, and when every slot is taken a
//!   new bundle may take over the least recently fed slot that never rebuilt
//!   a segment; slots that keep decoding are kept;
//! - a segment is accepted only when every symbol received for it agrees with
//!   the rebuilt bytes ([`SegmentDecoder`]); otherwise its symbols are
//!   dropped and later passes rebuild it;
//! - a complete bundle that later fails verification is [`Receiver::forget`]ten,
//!   so the next carousel pass is received afresh.

pub use crate::diode::report::{
    BundleProgress, BundleReport, Counters, FileProgress, RestoreRefused,
};
use crate::diode::segment::{Added, SegmentDecoder};
use crate::diode::wire::{segment_count, segment_len, Packet, ALIGNMENT, MAX_SEGMENT, MAX_SYMBOLS};
use crate::id::StreamId;
use crate::limits::DiodeLimits;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

/// Completed bundles remembered (to drop their late packets) until they are
/// applied or forgotten.
const MAX_DONE: usize = 64;

/// One bundle of one stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BundleId {
    /// Stream of the bundle.
    pub stream: StreamId,
    /// Bundle sequence.
    pub sequence: u64,
}

/// What the agent is to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// Make file `file` of `bundle` (0 the manifest, `i + 1` volume `i`)
    /// exist at `size` bytes, keeping what it holds (a restored bundle).
    FileStarted {
        /// The bundle.
        bundle: BundleId,
        /// The file index.
        file: u16,
        /// Its final size.
        size: u64,
    },
    /// Write a rebuilt segment.
    Write {
        /// The bundle.
        bundle: BundleId,
        /// The file index.
        file: u16,
        /// Offset in the file.
        offset: u64,
        /// The segment's bytes.
        data: Vec<u8>,
    },
    /// Every segment of every file is written; the receiver holds nothing
    /// more of this bundle. Still unverified.
    Complete {
        /// The bundle.
        bundle: BundleId,
        /// Its final figures.
        report: BundleReport,
    },
    /// The receiver dropped this bundle's partial state; its files are to go.
    Abandoned {
        /// The bundle.
        bundle: BundleId,
        /// Why.
        why: Abandon,
    },
}

/// Why a partial bundle was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Abandon {
    /// No segment of it was rebuilt for the expiry time.
    Expired,
    /// It never rebuilt a segment and another bundle needed its slot.
    Evicted,
    /// Its sequence is applied already (or it belongs to another stream).
    AlreadyApplied,
}

/// A segment: its bundle, file and index.
type SegmentKey = (BundleId, u16, u32);

struct Partial {
    dec: SegmentDecoder,
    last_fed: u64,
}

struct FileRx {
    size: u64,
    segment_size: u32,
    symbol_size: u16,
    done: Vec<bool>,
    remaining: u32,
    partial: HashMap<u32, Partial>,
}

struct BundleRx {
    file_count: u16,
    files: BTreeMap<u16, FileRx>,
    segments: u64,
    bytes: u64,
    done_segments: u64,
    last_progress_ms: u64,
    last_fed: u64,
    dirty: bool,
    /// Symbol ids spanned by its rebuilt segments, and those lost.
    span: (u64, u64),
}

/// The geometry one packet (or progress record) announces for a file.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Geometry {
    file_count: u16,
    file: u16,
    size: u64,
    segment_size: u32,
    symbol_size: u16,
}

impl Geometry {
    /// Checks the geometry against the limits, given what the bundle holds
    /// already; returns the file's segment count.
    fn check(&self, l: &DiodeLimits, bytes: u64, segments: u64) -> Result<u32, &'static str> {
        if self.file >= self.file_count || u32::from(self.file_count) > l.max_files {
            return Err("file count");
        }
        if self.file == 0 && self.size > l.max_manifest_bytes {
            return Err("manifest size");
        }
        let t = u32::from(self.symbol_size);
        if t == 0 || t % u32::from(ALIGNMENT) != 0 {
            return Err("symbol size");
        }
        if self.segment_size == 0
            || self.segment_size > MAX_SEGMENT
            || !self.segment_size.is_multiple_of(t)
        {
            return Err("segment size");
        }
        if self
            .size
            .min(u64::from(self.segment_size))
            .div_ceil(u64::from(t))
            > MAX_SYMBOLS
        {
            return Err("symbols per segment");
        }
        let count = segment_count(self.size, self.segment_size).ok_or("segment count")?;
        match bytes.checked_add(self.size) {
            Some(b) if b <= l.max_bundle_bytes => {}
            _ => return Err("bundle size"),
        }
        match segments.checked_add(u64::from(count)) {
            Some(s) if s <= l.max_segments => {}
            _ => return Err("segment count"),
        }
        Ok(count)
    }
}

/// The receiver's state: partial bundles, their segments, counters.
pub struct Receiver {
    limits: DiodeLimits,
    stream: Option<StreamId>,
    applied: u64,
    bundles: BTreeMap<BundleId, BundleRx>,
    done: BTreeSet<BundleId>,
    decoders: usize,
    pending_bytes: u64,
    tick: u64,
    counters: Counters,
    events: VecDeque<Event>,
    /// Threads to rebuild segments on ([`Receiver::set_threads`]).
    threads: usize,
    /// Segments with enough symbols in, waiting to be rebuilt together
    /// (at most [`READY_WAIT_MS`] after the first of them was ready).
    ready: Vec<SegmentKey>,
    ready_since_ms: u64,
}

/// How long a segment ready to be rebuilt waits for others to be rebuilt
/// with it, on as many threads, while packets keep arriving.
pub const READY_WAIT_MS: u64 = 10;

impl Receiver {
    /// A receiver for a store that follows `stream` (any, until one is
    /// applied) and has applied up to `applied`.
    pub fn new(limits: DiodeLimits, stream: Option<StreamId>, applied: u64) -> Self {
        Receiver {
            limits,
            stream,
            applied,
            bundles: BTreeMap::new(),
            done: BTreeSet::new(),
            decoders: 0,
            pending_bytes: 0,
            tick: 0,
            counters: Counters::default(),
            events: VecDeque::new(),
            threads: 1,
            ready: Vec::new(),
            ready_since_ms: 0,
        }
    }

    /// The next thing for the agent to do.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The counters so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Segments being decoded now, and the symbol bytes they hold.
    pub fn decoding(&self) -> (usize, u64) {
        (self.decoders, self.pending_bytes)
    }

    /// Handles one datagram received at `now_ms` (milliseconds since the Unix
    /// epoch). Never fails: what cannot be used is counted.
    pub fn handle(&mut self, now_ms: u64, datagram: &[u8]) {
        self.counters.packets += 1;
        self.tick += 1;
        self.expire(now_ms);
        let p = match Packet::from_bytes(datagram) {
            Ok(p) => p,
            Err(_) => {
                self.counters.garbage += 1;
                return;
            }
        };
        let id = BundleId {
            stream: p.stream,
            sequence: p.sequence,
        };
        if self.stream.is_some_and(|s| s != p.stream) {
            self.counters.other_stream += 1;
            return;
        }
        if p.sequence <= self.applied {
            self.counters.already_applied += 1;
            return;
        }
        if self.done.contains(&id) {
            self.counters.duplicate_or_late += 1;
            return;
        }
        let geometry = Geometry {
            file_count: p.file_count,
            file: p.file,
            size: p.file_size,
            segment_size: p.segment_size,
            symbol_size: p.symbol_size,
        };
        if !self.admit_file(now_ms, id, geometry) {
            return;
        }
        self.add_symbol(now_ms, id, p);
        self.limit_decoders();
    }

    /// Makes sure `id` has a slot and the file of `g` is known, checking
    /// the geometry first. False when the packet is to be dropped.
    fn admit_file(&mut self, now_ms: u64, id: BundleId, g: Geometry) -> bool {
        let (bytes, segments) = match self.bundles.get(&id) {
            Some(b) => match b.files.get(&g.file) {
                Some(f)
                    if b.file_count == g.file_count
                        && (f.size, f.segment_size, f.symbol_size)
                            == (g.size, g.segment_size, g.symbol_size) =>
                {
                    return true
                }
                None if b.file_count == g.file_count => (b.bytes, b.segments),
                _ => {
                    self.counters.conflicting += 1;
                    // The first packets of a bundle may be forged: until a
                    // segment is rebuilt, the latest geometry wins.
                    if b.done_segments > 0 {
                        return false;
                    }
                    self.drop_bundle(id);
                    self.events.push_back(Event::Abandoned {
                        bundle: id,
                        why: Abandon::Evicted,
                    });
                    (0, 0)
                }
            },
            None => (0, 0),
        };
        let count = match g.check(&self.limits, bytes, segments) {
            Ok(c) => c,
            Err(_) => {
                self.counters.over_limit += 1;
                return false;
            }
        };
        if !self.bundles.contains_key(&id) && !self.make_room() {
            self.counters.over_capacity += 1;
            return false;
        }
        let b = self.bundles.entry(id).or_insert_with(|| BundleRx {
            file_count: g.file_count,
            files: BTreeMap::new(),
            segments: 0,
            bytes: 0,
            done_segments: 0,
            last_progress_ms: now_ms,
            last_fed: 0,
            dirty: true,
            span: (0, 0),
        });
        b.insert_file(g, count, &[]);
        self.events.push_back(Event::FileStarted {
            bundle: id,
            file: g.file,
            size: g.size,
        });
        true
    }

    /// Frees a slot if every one is taken: the least recently fed bundle that
    /// never rebuilt a segment goes. False when all are making progress.
    fn make_room(&mut self) -> bool {
        if self.bundles.len() < self.limits.max_bundles {
            return true;
        }
        let victim = self
            .bundles
            .iter()
            .filter(|(_, b)| b.done_segments == 0)
            .min_by_key(|(_, b)| b.last_fed)
            .map(|(id, _)| *id);
        match victim {
            Some(v) => {
                self.drop_bundle(v);
                self.counters.evicted_bundles += 1;
                self.events.push_back(Event::Abandoned {
                    bundle: v,
                    why: Abandon::Evicted,
                });
                true
            }
            None => false,
        }
    }

    fn add_symbol(&mut self, now_ms: u64, id: BundleId, p: Packet) {
        let (tick, threads) = (self.tick, self.threads);
        let Some(b) = self.bundles.get_mut(&id) else {
            return;
        };
        b.last_fed = tick;
        let Some(f) = b.files.get_mut(&p.file) else {
            return;
        };
        if f.done.get(p.segment as usize) != Some(&false) {
            self.counters.duplicate_or_late += 1;
            return;
        }
        let len = segment_len(f.size, f.segment_size, p.segment);
        let symbol_size = f.symbol_size;
        let partial = f.partial.entry(p.segment).or_insert_with(|| {
            self.decoders += 1;
            Partial {
                dec: SegmentDecoder::new(len, symbol_size),
                last_fed: tick,
            }
        });
        partial.last_fed = tick;
        let before = partial.dec.held_bytes();
        let added = if threads > 1 {
            partial.dec.store(p.symbol_id, p.data)
        } else {
            partial.dec.add(p.symbol_id, p.data)
        };
        let after = partial.dec.held_bytes();
        self.pending_bytes = self.pending_bytes.saturating_sub(before) + after;
        self.settle(now_ms, (id, p.file, p.segment), added);
        let waited = now_ms.saturating_sub(self.ready_since_ms) >= READY_WAIT_MS;
        if threads > 1 && (self.ready.len() >= threads || self.has_ready() && waited) {
            self.solve_ready(now_ms);
        }
    }

    /// Counts what adding a symbol (or a rebuild) did; takes in a rebuilt
    /// segment, or notes one ready to be rebuilt.
    fn settle(&mut self, now_ms: u64, key: SegmentKey, added: Added) {
        match added {
            Added::Pending => {}
            Added::Ready => {
                if self.ready.is_empty() {
                    self.ready_since_ms = now_ms;
                }
                if !self.ready.contains(&key) {
                    self.ready.push(key);
                }
            }
            Added::Duplicate => self.counters.duplicate_or_late += 1,
            Added::Conflicting => self.counters.conflicting_symbols += 1,
            Added::Inconsistent => self.counters.poisoned_segments += 1,
            Added::Rebuilt(data) => self.rebuilt(now_ms, key, data),
        }
    }

    fn rebuilt(&mut self, now_ms: u64, (id, file, segment): SegmentKey, data: Vec<u8>) {
        let Some(b) = self.bundles.get_mut(&id) else {
            return;
        };
        let Some(f) = b.files.get_mut(&file) else {
            return;
        };
        let Some(partial) = f.partial.remove(&segment) else {
            return;
        };
        let (span, lost) = partial.dec.span();
        b.span = (b.span.0 + span, b.span.1 + lost);
        self.counters.span_symbols += span;
        self.counters.span_lost += lost;
        self.decoders -= 1;
        self.pending_bytes = self.pending_bytes.saturating_sub(partial.dec.held_bytes());
        f.done[segment as usize] = true;
        f.remaining -= 1;
        b.done_segments += 1;
        b.last_progress_ms = now_ms;
        b.dirty = true;
        self.counters.segments_rebuilt += 1;
        self.counters.rebuilt_bytes += data.len() as u64;
        self.events.push_back(Event::Write {
            bundle: id,
            file,
            offset: u64::from(segment) * u64::from(f.segment_size),
            data,
        });
        if b.complete() {
            self.finish(id);
        }
    }

    /// Decodes on up to `threads` threads: from now on a segment with
    /// enough symbols in waits until that many are ready (or
    /// [`READY_WAIT_MS`] passed, or [`Receiver::solve_ready`] is called),
    /// then they are rebuilt at once.
    /// 0 or 1 (the default): each is rebuilt on the spot.
    pub fn set_threads(&mut self, threads: usize) {
        self.threads = threads;
    }

    /// Whether segments wait for [`Receiver::solve_ready`].
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Rebuilds every segment that has enough symbols in, in parallel.
    pub fn solve_ready(&mut self, now_ms: u64) {
        let mut jobs: Vec<(SegmentKey, Partial, u64)> = Vec::new();
        for key in std::mem::take(&mut self.ready) {
            let partial = self
                .bundles
                .get_mut(&key.0)
                .and_then(|b| b.files.get_mut(&key.1))
                .and_then(|f| f.partial.remove(&key.2));
            if let Some(p) = partial {
                let held = p.dec.held_bytes();
                jobs.push((key, p, held));
            }
        }
        if jobs.is_empty() {
            return;
        }
        let chunk = jobs.len().div_ceil(self.threads.max(1));
        let solve = |c: &mut [(SegmentKey, Partial, u64)]| -> Vec<Added> {
            c.iter_mut().map(|j| j.1.dec.solve()).collect()
        };
        let results: Vec<Added> = std::thread::scope(|scope| {
            let mut chunks = jobs.chunks_mut(chunk);
            let first = chunks.next().unwrap_or_default();
            let others: Vec<_> = chunks.map(|c| scope.spawn(move || solve(c))).collect();
            let mut out = solve(first);
            for h in others {
                out.extend(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
            }
            out
        });
        for ((key, partial, before), added) in jobs.into_iter().zip(results) {
            let after = partial.dec.held_bytes();
            self.pending_bytes = self.pending_bytes.saturating_sub(before) + after;
            if let Some(f) = self
                .bundles
                .get_mut(&key.0)
                .and_then(|b| b.files.get_mut(&key.1))
            {
                f.partial.insert(key.2, partial);
            }
            self.settle(now_ms, key, added);
        }
    }

    fn finish(&mut self, id: BundleId) {
        if let Some(b) = self.drop_bundle(id) {
            let report = b.report(id);
            self.done.insert(id);
            while self.done.len() > MAX_DONE {
                self.done.pop_first();
            }
            self.events
                .push_back(Event::Complete { bundle: id, report });
        }
    }

    /// Removes a bundle's state, keeping the decoder accounting true.
    fn drop_bundle(&mut self, id: BundleId) -> Option<BundleRx> {
        let b = self.bundles.remove(&id)?;
        for f in b.files.values() {
            for p in f.partial.values() {
                self.decoders -= 1;
                self.pending_bytes = self.pending_bytes.saturating_sub(p.dec.held_bytes());
            }
        }
        Some(b)
    }

    /// Drops the least recently fed partial segments while over the decoder
    /// limits; they are rebuilt from a later pass.
    fn limit_decoders(&mut self) {
        while self.decoders > self.limits.max_decoders
            || self.pending_bytes > self.limits.max_pending_bytes
        {
            let mut oldest: Option<(u64, BundleId, u16, u32)> = None;
            for (id, b) in &self.bundles {
                for (fi, f) in &b.files {
                    for (si, p) in &f.partial {
                        if oldest.is_none_or(|o| p.last_fed < o.0) {
                            oldest = Some((p.last_fed, *id, *fi, *si));
                        }
                    }
                }
            }
            let Some((_, id, fi, si)) = oldest else {
                return;
            };
            let removed = self
                .bundles
                .get_mut(&id)
                .and_then(|b| b.files.get_mut(&fi))
                .and_then(|f| f.partial.remove(&si));
            if let Some(p) = removed {
                self.decoders -= 1;
                self.pending_bytes = self.pending_bytes.saturating_sub(p.dec.held_bytes());
                self.counters.evicted_decoders += 1;
            }
        }
    }

    /// Drops bundles that rebuilt no segment for the expiry time.
    pub fn expire(&mut self, now_ms: u64) {
        let stale = self.limits.stale_after_ms;
        let expired: Vec<BundleId> = self
            .bundles
            .iter()
            .filter(|(_, b)| now_ms.saturating_sub(b.last_progress_ms) > stale)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.drop_bundle(id);
            self.counters.expired_bundles += 1;
            self.events.push_back(Event::Abandoned {
                bundle: id,
                why: Abandon::Expired,
            });
        }
    }
}

impl Receiver {
    /// The store applied up to `applied` of `stream`: drops packets and
    /// partial bundles of what is applied now (or of another stream).
    pub fn set_applied(&mut self, stream: Option<StreamId>, applied: u64) {
        self.stream = stream.or(self.stream);
        self.applied = self.applied.max(applied);
        let (s, a) = (self.stream, self.applied);
        let gone = |id: &BundleId| id.sequence <= a || s.is_some_and(|s| s != id.stream);
        self.done.retain(|id| !gone(id));
        let drop: Vec<BundleId> = self
            .bundles
            .keys()
            .filter(|&&id| gone(&id))
            .copied()
            .collect();
        for id in drop {
            self.drop_bundle(id);
            self.events.push_back(Event::Abandoned {
                bundle: id,
                why: Abandon::AlreadyApplied,
            });
        }
    }

    /// A complete bundle failed verification (or was refused): receive it
    /// afresh from later packets.
    pub fn forget(&mut self, id: BundleId) {
        self.done.remove(&id);
    }

    /// Drops a partial bundle the agent cannot keep (its spool write
    /// failed); later packets start it over. No event is queued.
    pub fn abandon(&mut self, id: BundleId) {
        self.drop_bundle(id);
    }

    /// Progress of every bundle that rebuilt a segment since the last call,
    /// to persist.
    pub fn take_dirty(&mut self) -> Vec<BundleProgress> {
        let mut out = Vec::new();
        for (id, b) in self.bundles.iter_mut().filter(|(_, b)| b.dirty) {
            b.dirty = false;
            out.push(b.progress(*id));
        }
        out
    }

    /// Where every bundle being received stands.
    pub fn reports(&self) -> Vec<BundleReport> {
        self.bundles.iter().map(|(id, b)| b.report(*id)).collect()
    }

    /// Takes up progress a previous run persisted, under the same rules as
    /// packets: stream, applied sequence, limits, expiry and slots.
    pub fn restore(&mut self, now_ms: u64, p: &BundleProgress) -> Result<BundleId, RestoreRefused> {
        let stream = StreamId::from_hex(&p.stream)
            .ok_or_else(|| RestoreRefused::BadStream(p.stream.clone()))?;
        if self.stream.is_some_and(|s| s != stream) {
            return Err(RestoreRefused::OtherStream);
        }
        let id = BundleId {
            stream,
            sequence: p.sequence,
        };
        if p.sequence <= self.applied || self.done.contains(&id) || self.bundles.contains_key(&id) {
            return Err(RestoreRefused::AlreadyApplied(p.sequence));
        }
        let last = p.last_progress_ms.unwrap_or(now_ms).min(now_ms);
        if now_ms - last > self.limits.stale_after_ms {
            return Err(RestoreRefused::Stale {
                age_secs: (now_ms - last) / 1000,
                limit_secs: self.limits.stale_after_ms / 1000,
            });
        }
        if self.bundles.len() >= self.limits.max_bundles {
            return Err(RestoreRefused::NoSlot);
        }
        let mut b = BundleRx {
            file_count: p.file_count,
            files: BTreeMap::new(),
            segments: 0,
            bytes: 0,
            done_segments: 0,
            last_progress_ms: last,
            last_fed: self.tick,
            dirty: false,
            span: (0, 0),
        };
        for (&file, f) in &p.files {
            let g = Geometry {
                file_count: p.file_count,
                file,
                size: f.size,
                segment_size: f.segment_size,
                symbol_size: f.symbol_size,
            };
            let count = g
                .check(&self.limits, b.bytes, b.segments)
                .map_err(RestoreRefused::OverLimit)?;
            b.insert_file(g, count, &f.done);
        }
        for (&file, f) in &b.files {
            self.events.push_back(Event::FileStarted {
                bundle: id,
                file,
                size: f.size,
            });
        }
        let complete = b.complete();
        self.bundles.insert(id, b);
        if complete {
            self.finish(id);
        }
        Ok(id)
    }
}

impl BundleRx {
    fn insert_file(&mut self, g: Geometry, count: u32, done: &[u32]) {
        let mut f = FileRx {
            size: g.size,
            segment_size: g.segment_size,
            symbol_size: g.symbol_size,
            done: vec![false; count as usize],
            remaining: count,
            partial: HashMap::new(),
        };
        for &d in done {
            if let Some(s) = f.done.get_mut(d as usize) {
                if !*s {
                    *s = true;
                    f.remaining -= 1;
                    self.done_segments += 1;
                }
            }
        }
        self.bytes += g.size;
        self.segments += u64::from(count);
        self.files.insert(g.file, f);
    }

    fn complete(&self) -> bool {
        self.files.len() == self.file_count as usize
            && self.files.values().all(|f| f.remaining == 0)
    }

    fn progress(&self, id: BundleId) -> BundleProgress {
        BundleProgress {
            stream: id.stream.to_hex(),
            sequence: id.sequence,
            file_count: self.file_count,
            files: self
                .files
                .iter()
                .map(|(i, f)| {
                    let done = (0..f.done.len() as u32)
                        .filter(|&n| f.done[n as usize])
                        .collect();
                    let fp = FileProgress {
                        size: f.size,
                        segment_size: f.segment_size,
                        symbol_size: f.symbol_size,
                        done,
                    };
                    (*i, fp)
                })
                .collect(),
            last_progress_ms: Some(self.last_progress_ms),
        }
    }

    fn report(&self, id: BundleId) -> BundleReport {
        let (mut partial, mut missing, mut symbols) = (0u64, 0u64, 0u64);
        for f in self.files.values() {
            partial += f.partial.len() as u64;
            missing += u64::from(f.remaining) - f.partial.len() as u64;
            symbols += f
                .partial
                .values()
                .map(|p| u64::from(p.dec.received()))
                .sum::<u64>();
        }
        BundleReport {
            stream: id.stream.to_hex(),
            sequence: id.sequence,
            files: self.file_count,
            files_seen: self.files.len(),
            segments_received: self.done_segments,
            segments_recoverable: partial,
            segments_missing: missing,
            symbols_pending: symbols,
            span_symbols: self.span.0,
            span_lost: self.span.1,
        }
    }
}
