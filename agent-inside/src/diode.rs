//! Receiving bundles from a one-way data diode.
//!
//! Packets are checked and sorted by bundle, file and segment; each segment
//! is rebuilt by RaptorQ from any sufficient set of its symbols, in any order,
//! duplicates ignored, and written at its place in a spool file. When every
//! segment of every file of a bundle is in, the bundle directory is renamed
//! into the spool under its final name and, with `--import`, imported — which
//! verifies it completely, exactly as from media, before anything is applied.
//!
//! What is rebuilt survives a restart: each partial bundle keeps a progress
//! file listing its finished segments, and a receiver started late or
//! restarted picks up the rest on the sender's next carousel pass.
//! Progress for `ferry-in status` goes to `STATE/diode-receive.json`.

use crate::apply::ApplyOptions;
use crate::db::Db;
use crate::layout::Layout;
use anyhow::{Context, Result};
use ferry_agent_common::{fsx, media};
use ferry_protocol::diode::{self, Packet, SegmentDecoder};
use ferry_protocol::id::StreamId;
use ferry_protocol::limits::ReceiverLimits;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Settings of a receiver.
#[derive(Clone, Debug)]
pub struct ReceiveOptions {
    /// Address to listen on.
    pub listen: String,
    /// Spool directory for bundles being received and complete.
    pub spool: PathBuf,
    /// Import each complete bundle.
    pub import: bool,
    /// Stop after this long without a packet (once one has arrived).
    pub exit_when_idle: Option<Duration>,
    /// Most segments being decoded at once (each holds up to a segment in memory).
    pub max_decoders: usize,
    /// Most bundles received at once.
    pub max_bundles: usize,
    /// Limits for imports and for sizes announced by packets.
    pub limits: ReceiverLimits,
    /// Apply options for imports.
    pub apply: ApplyOptions,
    /// A registry to push the images to after each import that applied a
    /// bundle (`[push] to` in the config).
    pub push_to: Option<String>,
}

enum Seg {
    Missing,
    Partial(Box<SegmentDecoder>, u64),
    Done,
}

struct FileRx {
    size: u64,
    segment_size: u32,
    symbol_size: u16,
    segs: Vec<Seg>,
    file: std::fs::File,
}

struct BundleRx {
    stream: StreamId,
    sequence: u64,
    file_count: u16,
    files: BTreeMap<u16, FileRx>,
    dir: PathBuf,
    dirty: bool,
}

/// Persisted progress of one partial bundle.
#[derive(Serialize, Deserialize, Default)]
struct Progress {
    stream: String,
    sequence: u64,
    file_count: u16,
    files: BTreeMap<u16, FileProgress>,
}

#[derive(Serialize, Deserialize)]
struct FileProgress {
    size: u64,
    segment_size: u32,
    symbol_size: u16,
    done: Vec<u32>,
}

/// Counters, as reported in the status file.
#[derive(Default, Serialize)]
struct Counters {
    packets: u64,
    garbage: u64,
    other_stream: u64,
    already_applied: u64,
    conflicting: u64,
    duplicate_or_late: u64,
    over_capacity: u64,
    /// CPU seconds spent in RaptorQ decoding.
    decode_secs: f64,
    /// Bytes of bundle files rebuilt.
    rebuilt_bytes: u64,
}

fn file_name(index: u16) -> String {
    if index == 0 {
        media::MANIFEST_FILE.to_string()
    } else {
        ferry_protocol::volume::file_name(index as u32 - 1)
    }
}

fn partial_dir(spool: &Path, stream: StreamId, seq: u64) -> PathBuf {
    spool.join(format!(".partial-{}", media::bundle_dir_name(stream, seq)))
}

impl BundleRx {
    fn complete(&self) -> bool {
        self.files.len() == self.file_count as usize
            && self
                .files
                .values()
                .all(|f| f.segs.iter().all(|s| matches!(s, Seg::Done)))
    }

    fn progress(&self) -> Progress {
        Progress {
            stream: self.stream.to_hex(),
            sequence: self.sequence,
            file_count: self.file_count,
            files: self
                .files
                .iter()
                .map(|(i, f)| {
                    let done = f
                        .segs
                        .iter()
                        .enumerate()
                        .filter(|(_, s)| matches!(s, Seg::Done))
                        .map(|(n, _)| n as u32)
                        .collect();
                    (
                        *i,
                        FileProgress {
                            size: f.size,
                            segment_size: f.segment_size,
                            symbol_size: f.symbol_size,
                            done,
                        },
                    )
                })
                .collect(),
        }
    }

    fn save(&mut self) -> Result<()> {
        if self.dirty {
            let json = serde_json::to_vec(&self.progress())?;
            fsx::write_atomic(&self.dir.join("progress.json"), &json)?;
            self.dirty = false;
        }
        Ok(())
    }

    fn report(&self) -> serde_json::Value {
        let (mut done, mut partial, mut missing, mut symbols) = (0u64, 0u64, 0u64, 0u64);
        for f in self.files.values() {
            for s in &f.segs {
                match s {
                    Seg::Done => done += 1,
                    Seg::Partial(d, _) => {
                        partial += 1;
                        symbols += d.received() as u64;
                    }
                    Seg::Missing => missing += 1,
                }
            }
        }
        serde_json::json!({
            "stream": self.stream.to_hex(),
            "sequence": self.sequence,
            "files": self.file_count,
            "files_seen": self.files.len(),
            "segments_received": done,
            "segments_recoverable": partial,
            "segments_missing": missing,
            "symbols_pending": symbols,
        })
    }
}

struct Receiver {
    opts: ReceiveOptions,
    layout: Layout,
    bundles: BTreeMap<(StreamId, u64), BundleRx>,
    completed: Vec<serde_json::Value>,
    /// The bundles in `completed`, for the per-packet check.
    done: std::collections::HashSet<(StreamId, u64)>,
    counters: Counters,
    stream: Option<StreamId>,
    applied: Arc<AtomicU64>,
    decoders: usize,
    tick: u64,
    import_log: Arc<Mutex<Vec<serde_json::Value>>>,
    importer: Option<mpsc::Sender<PathBuf>>,
}

impl Receiver {
    fn handle(&mut self, dgram: &[u8]) -> Result<()> {
        self.counters.packets += 1;
        self.tick += 1;
        let p = match Packet::from_bytes(dgram) {
            Ok(p) => p,
            Err(_) => {
                self.counters.garbage += 1;
                return Ok(());
            }
        };
        if self.stream.is_some_and(|s| s != p.stream) {
            self.counters.other_stream += 1;
            return Ok(());
        }
        if p.sequence <= self.applied.load(Ordering::Relaxed) {
            self.counters.already_applied += 1;
            return Ok(());
        }
        if self.done.contains(&(p.stream, p.sequence)) {
            self.counters.duplicate_or_late += 1;
            return Ok(());
        }
        let key = (p.stream, p.sequence);
        if !self.bundles.contains_key(&key) {
            if self.bundles.len() >= self.opts.max_bundles {
                self.counters.over_capacity += 1;
                return Ok(());
            }
            let dir = partial_dir(&self.opts.spool, p.stream, p.sequence);
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            self.bundles.insert(
                key,
                BundleRx {
                    stream: p.stream,
                    sequence: p.sequence,
                    file_count: p.file_count,
                    files: BTreeMap::new(),
                    dir,
                    dirty: true,
                },
            );
        }
        let limit = self.opts.limits.max_bundle_bytes;
        let b = self.bundles.get_mut(&key).expect("just inserted");
        if b.file_count != p.file_count {
            self.counters.conflicting += 1;
            return Ok(());
        }
        if !b.files.contains_key(&p.file) {
            let announced: u64 = b.files.values().map(|f| f.size).sum::<u64>() + p.file_size;
            if announced > limit {
                self.counters.conflicting += 1;
                return Ok(());
            }
            b.files.insert(
                p.file,
                open_file(
                    &b.dir,
                    p.file,
                    p.file_size,
                    p.segment_size,
                    p.symbol_size,
                    &[],
                )?,
            );
        }
        let f = b.files.get_mut(&p.file).expect("just inserted");
        if (f.size, f.segment_size, f.symbol_size) != (p.file_size, p.segment_size, p.symbol_size) {
            self.counters.conflicting += 1;
            return Ok(());
        }
        let seg = &mut f.segs[p.segment as usize];
        if matches!(seg, Seg::Done) {
            self.counters.duplicate_or_late += 1;
            return Ok(());
        }
        if matches!(seg, Seg::Missing) {
            *seg = Seg::Partial(
                Box::new(SegmentDecoder::new(p.segment_len(), p.symbol_size)),
                self.tick,
            );
            self.decoders += 1;
        }
        let Seg::Partial(dec, last) = seg else {
            unreachable!()
        };
        *last = self.tick;
        let t = Instant::now();
        let rebuilt = dec.add(p.symbol_id, p.data);
        self.counters.decode_secs += t.elapsed().as_secs_f64();
        if let Some(data) = rebuilt {
            self.counters.rebuilt_bytes += data.len() as u64;
            f.file
                .write_all_at(&data, p.segment as u64 * p.segment_size as u64)
                .with_context(|| format!("cannot write to the spool in {}", b.dir.display()))?;
            *seg = Seg::Done;
            self.decoders -= 1;
            b.dirty = true;
            if b.complete() {
                self.finish(key)?;
            }
        }
        if self.decoders > self.opts.max_decoders {
            self.evict_oldest();
        }
        Ok(())
    }

    /// Drops the least recently fed decoder; its segment comes again on the next pass.
    fn evict_oldest(&mut self) {
        let mut oldest: Option<(u64, (StreamId, u64), u16, usize)> = None;
        for (k, b) in &self.bundles {
            for (fi, f) in &b.files {
                for (si, s) in f.segs.iter().enumerate() {
                    if let Seg::Partial(_, t) = s {
                        if oldest.is_none_or(|o| *t < o.0) {
                            oldest = Some((*t, *k, *fi, si));
                        }
                    }
                }
            }
        }
        if let Some((_, k, fi, si)) = oldest {
            if let Some(f) = self.bundles.get_mut(&k).and_then(|b| b.files.get_mut(&fi)) {
                f.segs[si] = Seg::Missing;
                self.decoders -= 1;
            }
        }
    }

    fn finish(&mut self, key: (StreamId, u64)) -> Result<()> {
        let mut b = self.bundles.remove(&key).expect("bundle exists");
        for f in b.files.values() {
            f.file.sync_all().context("cannot sync the spool")?;
        }
        std::fs::remove_file(b.dir.join("progress.json")).ok();
        b.dirty = false;
        let dest = self
            .opts
            .spool
            .join(media::bundle_dir_name(b.stream, b.sequence));
        fsx::remove_dir_if_exists(&dest)?;
        std::fs::rename(&b.dir, &dest)
            .with_context(|| format!("cannot rename into {}", dest.display()))?;
        fsx::sync_dir(&self.opts.spool)?;
        eprintln!(
            "ferry-in: received bundle {} completely into {}",
            b.sequence,
            dest.display()
        );
        let mut rep = b.report();
        rep["complete"] = serde_json::json!(true);
        rep["dir"] = serde_json::json!(dest.display().to_string());
        self.completed.push(rep);
        self.done.insert(key);
        if let Some(tx) = &self.importer {
            let _ = tx.send(dest);
        }
        Ok(())
    }

    fn save_all(&mut self) -> Result<()> {
        for b in self.bundles.values_mut() {
            b.save()?;
        }
        let status = serde_json::json!({
            "listen": self.opts.listen,
            "spool": self.opts.spool.display().to_string(),
            "updated": ferry_agent_common::now_unix(),
            "counters": &self.counters,
            "receiving": self.bundles.values().map(BundleRx::report).collect::<Vec<_>>(),
            "received": &self.completed,
            "imports": &*self.import_log.lock().expect("import log"),
        });
        fsx::write_atomic(
            &self.layout.root.join(STATUS_FILE),
            &serde_json::to_vec_pretty(&status)?,
        )
    }
}

/// The receiver's status file in the state directory.
pub const STATUS_FILE: &str = "diode-receive.json";

fn open_file(
    dir: &Path,
    index: u16,
    size: u64,
    segment_size: u32,
    symbol_size: u16,
    done: &[u32],
) -> Result<FileRx> {
    let path = dir.join(file_name(index));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    file.set_len(size)
        .with_context(|| format!("cannot size {}", path.display()))?;
    let count = diode::segment_count(size, segment_size) as usize;
    let mut segs: Vec<Seg> = (0..count).map(|_| Seg::Missing).collect();
    for &d in done {
        if let Some(s) = segs.get_mut(d as usize) {
            *s = Seg::Done;
        }
    }
    Ok(FileRx {
        size,
        segment_size,
        symbol_size,
        segs,
        file,
    })
}

/// Picks up partial bundles a previous run left in the spool.
fn restore(spool: &Path) -> Result<BTreeMap<(StreamId, u64), BundleRx>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(spool)
        .with_context(|| format!("cannot read spool {}", spool.display()))?
    {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with(".partial-") {
            continue;
        }
        let progress: Option<Progress> = std::fs::read(e.path().join("progress.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let Some((progress, stream)) =
            progress.and_then(|p| StreamId::from_hex(&p.stream).map(|s| (p, s)))
        else {
            // Nothing finished was recorded: start this bundle over.
            fsx::remove_dir_if_exists(&e.path())?;
            continue;
        };
        let seq = progress.sequence;
        let mut files = BTreeMap::new();
        for (i, f) in &progress.files {
            files.insert(
                *i,
                open_file(
                    &e.path(),
                    *i,
                    f.size,
                    f.segment_size,
                    f.symbol_size,
                    &f.done,
                )?,
            );
        }
        eprintln!(
            "ferry-in: resuming bundle {seq} from {}",
            e.path().display()
        );
        out.insert(
            (stream, seq),
            BundleRx {
                stream,
                sequence: seq,
                file_count: progress.file_count,
                files,
                dir: e.path(),
                dirty: false,
            },
        );
    }
    Ok(out)
}

/// Runs the receiver until the idle timeout (or forever).
pub fn receive(layout: &Layout, opts: ReceiveOptions) -> Result<()> {
    std::fs::create_dir_all(&opts.spool)
        .with_context(|| format!("cannot create spool {}", opts.spool.display()))?;
    let (stream, applied) = {
        let db = Db::open(&layout.db())?;
        let a = db.applied()?;
        (a.stream, a.sequence)
    };
    let applied = Arc::new(AtomicU64::new(applied));
    let addr: SocketAddr = opts
        .listen
        .parse()
        .with_context(|| format!("cannot read address {}", opts.listen))?;
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    let _ = sock.set_recv_buffer_size(32 << 20);
    // Linux reports twice the size it grants (the rest is its bookkeeping).
    let got = sock.recv_buffer_size().unwrap_or(0) / 2;
    if got < 16 << 20 {
        eprintln!(
            "ferry-in: warning: the UDP receive buffer is only {} (the kernel's net.core.rmem_max); \
             at high rates packets will be lost before ferry-in sees them: raise it with \
             `sysctl -w net.core.rmem_max=33554432`",
            ferry_agent_common::units::human_bytes(got as u64)
        );
    }
    sock.bind(&addr.into())
        .with_context(|| format!("cannot listen on {addr}"))?;
    let sock: UdpSocket = sock.into();
    sock.set_read_timeout(Some(Duration::from_millis(200)))?;
    eprintln!(
        "ferry-in: receiving on udp://{} into {}",
        sock.local_addr()?,
        opts.spool.display()
    );

    let import_log = Arc::new(Mutex::new(Vec::new()));
    let (tx, importer) = if opts.import {
        let (tx, rx) = mpsc::channel::<PathBuf>();
        let (layout, limits, apply, applied, log, push_to) = (
            layout.clone(),
            opts.limits,
            opts.apply,
            applied.clone(),
            import_log.clone(),
            opts.push_to.clone(),
        );
        let h = std::thread::spawn(move || {
            for dir in rx {
                let res = crate::import::import(&layout, &dir, &limits, apply);
                if let (Ok(r), Some(to)) = (&res, &push_to) {
                    if !r.applied.is_empty() {
                        crate::registry_push::after_import(&layout, to);
                    }
                }
                let entry = match &res {
                    Ok(r) if r.ok() => {
                        let _ = fsx::remove_dir_if_exists(&dir);
                        serde_json::json!({"dir": dir.display().to_string(), "applied": r.applied, "held": r.held})
                    }
                    Ok(r) => {
                        serde_json::json!({"dir": dir.display().to_string(), "failed": r.failed})
                    }
                    Err(e) => {
                        serde_json::json!({"dir": dir.display().to_string(), "failed": [format!("{e:#}")]})
                    }
                };
                if let Ok(db) = Db::open(&layout.db()) {
                    if let Ok(a) = db.applied() {
                        applied.store(a.sequence, Ordering::Relaxed);
                    }
                }
                log.lock().expect("import log").push(entry);
            }
        });
        (Some(tx), Some(h))
    } else {
        (None, None)
    };

    let mut rx = Receiver {
        bundles: restore(&opts.spool)?,
        opts,
        layout: layout.clone(),
        completed: Vec::new(),
        done: Default::default(),
        counters: Counters::default(),
        stream,
        applied,
        decoders: 0,
        tick: 0,
        import_log,
        importer: tx,
    };
    let mut buf = vec![0u8; 65_536];
    let mut last_packet: Option<Instant> = None;
    let mut last_save = Instant::now();
    loop {
        match sock.recv(&mut buf) {
            Ok(n) => {
                last_packet = Some(Instant::now());
                rx.handle(&buf[..n])?;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e).context("cannot receive"),
        }
        if last_save.elapsed() > Duration::from_secs(1) {
            rx.save_all()?;
            last_save = Instant::now();
        }
        if let (Some(idle), Some(t)) = (rx.opts.exit_when_idle, last_packet) {
            if t.elapsed() > idle {
                break;
            }
        }
    }
    rx.save_all()?;
    drop(rx.importer.take());
    if let Some(h) = importer {
        let _ = h.join();
    }
    rx.save_all()?;
    let incomplete: Vec<_> = rx.bundles.values().map(|b| b.sequence).collect();
    if !incomplete.is_empty() {
        for b in rx.bundles.values() {
            let r = b.report();
            eprintln!(
                "ferry-in: bundle {} incomplete: {} segments received, {} recoverable with more symbols, {} missing, {} of {} files seen; nothing of it was applied",
                b.sequence, r["segments_received"], r["segments_recoverable"], r["segments_missing"], r["files_seen"], r["files"]
            );
        }
    }
    Ok(())
}
