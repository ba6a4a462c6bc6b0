//! Sending bundles across a one-way data diode (UDP, no packet ever comes back).
//!
//! Each file of a bundle (manifest, volumes) is cut into segments; each
//! segment goes out as its RaptorQ source symbols plus repair symbols (the
//! configured overhead). Packets of a window of segments are interleaved, so
//! a burst of lost packets costs each segment only a few symbols. A token
//! bucket holds the send rate to the diode's line rate: overrunning it is loss.
//!
//! With `repeat`, the whole stream is sent again as a carousel of fresh repair
//! symbols (never the same symbol twice), enough on each pass for a receiver
//! that started late to rebuild every segment from that pass alone.

use anyhow::{bail, Context, Result};
use ferry_agent_common::media::MANIFEST_FILE;
use ferry_protocol::diode::{self, Packet};
use ferry_protocol::volume;
use rayon::prelude::*;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod pacer;
mod parse;
use pacer::Pacer;
pub use parse::{parse_loss, parse_overhead, parse_rate};

/// Settings of a send.
#[derive(Clone, Debug)]
pub struct SendOptions {
    /// Line rate in bits per second (IP and UDP headers included).
    pub rate_bps: u64,
    /// Repair overhead, 0.1 for 10%.
    pub overhead: f64,
    /// Expected loss on the link, 0.01 for 1%: each segment gets the repair
    /// that covers it ([`diode::repair_for_loss`]), or the overhead's if
    /// that is more.
    pub loss: Option<f64>,
    /// Extra carousel passes after the first.
    pub repeat: u32,
    /// Link MTU (1500, or 9000 for jumbo frames).
    pub mtu: u16,
    /// Segment size in bytes (a multiple of the symbol size is used); 0
    /// for [`SEGMENT_SYMBOLS`] symbols (at most the format's 16 MiB).
    pub segment_size: u32,
    /// Segments interleaved together.
    pub window: usize,
}

impl Default for SendOptions {
    fn default() -> Self {
        SendOptions {
            rate_bps: 100_000_000,
            overhead: 0.1,
            loss: None,
            repeat: 0,
            mtu: 1500,
            segment_size: 0,
            window: 8,
        }
    }
}

/// Source symbols of a segment by default: 4 MiB of 1 408-byte symbols at
/// MTU 1500 (16 MiB, the format's largest, at MTU 9000). The larger a
/// segment, the smaller the share of repair that covers a given loss.
pub const SEGMENT_SYMBOLS: u32 = 2978;

/// What a send did.
#[derive(Debug, Default)]
pub struct SendStats {
    /// Bundles sent.
    pub bundles: u64,
    /// Bytes of bundle files.
    pub payload_bytes: u64,
    /// Packets sent.
    pub packets: u64,
    /// Bytes on the wire (UDP payloads).
    pub wire_bytes: u64,
    /// Seconds spent encoding.
    pub encode_secs: f64,
    /// Wall time.
    pub secs: f64,
    /// Seconds from the start to the first datagram sent (reading and
    /// cutting the first window).
    pub first_packet_secs: f64,
    /// Sending time the pacer gave up because the sender fell more than
    /// 5 ms behind the line rate (a busy machine, or encoding that did
    /// not keep up): the line rate was not held for that long.
    pub behind_secs: f64,
    /// Seconds the sending thread waited for datagrams to be cut and
    /// encoded, after the first (it may have had time to spare).
    pub starved_secs: f64,
}

/// One bundle to send: its directory, stream, sequence and files.
struct Outgoing {
    stream: ferry_protocol::id::StreamId,
    sequence: u64,
    files: Vec<PathBuf>,
}

fn outgoing(dir: &Path) -> Result<Outgoing> {
    let unsigned = dir.join(ferry_agent_common::media::UNSIGNED_MANIFEST_FILE);
    if !dir.join(MANIFEST_FILE).exists() && unsigned.exists() {
        return Err(anyhow::Error::new(ferry_protocol::Error::Unsigned)
            .context(format!("{} is not sent", dir.display())));
    }
    let bytes = std::fs::read(dir.join(MANIFEST_FILE))
        .with_context(|| format!("cannot read {}", dir.join(MANIFEST_FILE).display()))?;
    let (_, m) = ferry_protocol::manifest::peek_unverified(&bytes)
        .with_context(|| format!("{}", dir.display()))?;
    let m = m.head();
    let mut files = vec![dir.join(MANIFEST_FILE)];
    files.extend((0..m.volumes.len() as u32).map(|i| dir.join(volume::file_name(i))));
    if files.len() > diode::MAX_FILES as usize {
        bail!(
            "bundle {} has too many volumes for the diode format",
            m.sequence
        );
    }
    Ok(Outgoing {
        stream: m.stream,
        sequence: m.sequence,
        files,
    })
}

/// Resolves `HOST:PORT`.
pub fn resolve(target: &str) -> Result<SocketAddr> {
    target
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve diode target {target}"))?
        .next()
        .with_context(|| format!("diode target {target} has no address"))
}

/// Sends every bundle directory in `dirs` (in sequence order) to `target`.
pub fn send(dirs: &[PathBuf], target: SocketAddr, opts: &SendOptions) -> Result<SendStats> {
    let mut bundles = dirs
        .iter()
        .map(|d| outgoing(d))
        .collect::<Result<Vec<_>>>()?;
    bundles.sort_by_key(|b| (b.stream, b.sequence));
    let cut = Cut::new(opts);
    let sock = open_socket(target)?;

    let mut stats = SendStats::default();
    let t0 = Instant::now();
    let mut pacer = Pacer::new(opts.rate_bps);
    let mut clock = Clock {
        start: t0,
        first: None,
    };
    let pb = ferry_agent_common::progress::bytes(total_bytes(&bundles, opts.repeat), "sending");
    // Windows are cut and encoded on other threads, a few batches of
    // datagrams ahead, while this thread paces them onto the wire.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Window>>(AHEAD);
    let payload_bytes = std::thread::scope(|scope| -> Result<u64> {
        let bundles = &bundles;
        let producer = scope.spawn(move || produce(bundles, opts, cut, &tx));
        loop {
            let waiting = Instant::now();
            let Ok(item) = rx.recv() else { break };
            if clock.first.is_some() {
                stats.starved_secs += waiting.elapsed().as_secs_f64();
            }
            let window = item?;
            stats.encode_secs += window.secs;
            transmit(&sock, &mut pacer, &mut clock, &mut stats, window.packets)?;
            pb.inc(window.bytes);
        }
        producer
            .join()
            .map_err(|_| anyhow::anyhow!("the encoder thread panicked"))
    })?;
    stats.payload_bytes = payload_bytes;
    stats.bundles = bundles.len() as u64;
    pb.finish_and_clear();
    stats.secs = t0.elapsed().as_secs_f64();
    stats.first_packet_secs = clock.first.map_or(0.0, |d| d.as_secs_f64());
    stats.behind_secs = pacer.forfeited.as_secs_f64();
    Ok(stats)
}

/// How files are cut into segments and symbols.
#[derive(Clone, Copy)]
struct Cut {
    symbol: u16,
    segment: u32,
}

impl Cut {
    /// The symbol size for the MTU, and the segment size rounded down to a
    /// multiple of it (within the format's limits).
    fn new(opts: &SendOptions) -> Cut {
        let symbol = diode::symbol_size_for_mtu(opts.mtu);
        let wanted = match opts.segment_size {
            0 => (symbol as u32).saturating_mul(SEGMENT_SYMBOLS),
            n => n,
        };
        let segment =
            (wanted.clamp(symbol as u32, diode::MAX_SEGMENT) / symbol as u32) * symbol as u32;
        Cut { symbol, segment }
    }
}

/// Datagrams for the pacing thread: a batch of a window's source symbols,
/// or its repair symbols (interleaved), with the bundle bytes the window
/// covers and the seconds encoding took (on the repair batch).
struct Window {
    packets: Vec<Vec<u8>>,
    bytes: u64,
    secs: f64,
}

/// A UDP socket connected to `target`, with a large send buffer.
fn open_socket(target: SocketAddr) -> Result<UdpSocket> {
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(target),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    let _ = sock.set_send_buffer_size(8 << 20);
    let bind: SocketAddr = if target.is_ipv4() {
        "0.0.0.0:0".parse()?
    } else {
        "[::]:0".parse()?
    };
    sock.bind(&bind.into())?;
    sock.connect(&target.into())
        .with_context(|| format!("cannot reach {target}"))?;
    Ok(sock.into())
}

/// Bundle bytes the whole send covers (every pass), for the progress bar.
fn total_bytes(bundles: &[Outgoing], repeat: u32) -> u64 {
    bundles
        .iter()
        .flat_map(|b| &b.files)
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum::<u64>()
        * (1 + repeat as u64)
}

/// The sending thread's clock: when it started, and when the first datagram
/// was ready to go (the pacer's time zero).
struct Clock {
    start: Instant,
    first: Option<Duration>,
}

/// Paces one window's datagrams onto the wire.
fn transmit(
    sock: &UdpSocket,
    pacer: &mut Pacer,
    clock: &mut Clock,
    stats: &mut SendStats,
    packets: Vec<Vec<u8>>,
) -> Result<()> {
    for dgram in packets {
        // The line rate is held from the first datagram on (reading and
        // cutting the first window is not time the link could have used).
        let first = *clock.first.get_or_insert_with(|| clock.start.elapsed());
        let wait = pacer.due(clock.start.elapsed().saturating_sub(first), dgram.len());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        send_one(sock, &dgram)?;
        stats.packets += 1;
        stats.wire_bytes += dgram.len() as u64;
    }
    Ok(())
}

/// The encoder thread: every pass of every bundle file, window by window,
/// into `tx`; stops at the first error (sent on) or when the receiving end
/// is gone. Returns the bundle bytes of one pass seen so far.
///
/// A window takes the next segments in order, across files: a file of one
/// segment (the manifest, a small volume) is interleaved with its
/// neighbours' segments too, so a burst of loss costs it only its share.
/// Files stay open only while a window holds one of their segments.
fn produce(
    bundles: &[Outgoing],
    opts: &SendOptions,
    cut: Cut,
    tx: &std::sync::mpsc::SyncSender<Result<Window>>,
) -> u64 {
    let mut payload = 0;
    let size = opts.window.max(1);
    let mut window: Vec<(Arc<FileJob>, u32)> = Vec::with_capacity(size);
    let mut carry = Vec::new();
    let stop = |e: Option<anyhow::Error>| {
        if let Some(e) = e {
            let _ = tx.send(Err(e));
        }
    };
    for pass in 0..=opts.repeat {
        for b in bundles {
            for (fi, path) in b.files.iter().enumerate() {
                let file = match open_file(path, cut) {
                    Ok(x) => x,
                    Err(e) => {
                        stop(Some(e));
                        return payload;
                    }
                };
                if pass == 0 {
                    payload += file.size;
                }
                let job = Arc::new(FileJob {
                    bundle: b,
                    index: fi as u16,
                    path,
                    file,
                    pass,
                    cut,
                    opts,
                });
                for s in 0..job.file.segments {
                    window.push((job.clone(), s));
                    if window.len() == size {
                        if let Err(e) = send_window(&window, cut, &mut carry, tx) {
                            stop(e);
                            return payload;
                        }
                        window.clear();
                    }
                }
            }
        }
    }
    if !window.is_empty() {
        if let Err(e) = send_window(&window, cut, &mut carry, tx) {
            stop(e);
            return payload;
        }
    }
    // The end of the last window, with nothing left to overlap it.
    let last = carry.into_iter().map(|(_, d)| d).collect::<Vec<_>>();
    if !last.is_empty()
        && tx
            .send(Ok(Window {
                packets: last,
                bytes: 0,
                secs: 0.0,
            }))
            .is_err()
    {
        stop(None);
    }
    payload
}

/// Datagrams of a window's end held back to go out with the next window's
/// start, with their times on the next window's scale.
type Carry = Vec<(f64, Vec<u8>)>;

/// Sends one window of segments to the pacing thread, in the order of
/// [`diode::taper_order`]: each segment's source symbols (on pass 0; the
/// data itself, a systematic code needs no encoding), then its repair
/// symbols, spread over the window and interleaved with the others', the
/// segments ending one after another. The window's last quarter (where
/// fewer and fewer segments are left) is held back in `carry` and goes out
/// merged into the next window's first quarter, so a burst there still
/// costs each segment only a share; the caller sends what the last window
/// leaves. Other threads read the segments and encode their repair symbols
/// while the first packets go out (their source symbols read a little at
/// a time); later passes send fresh repair symbols only. `Err(None)` when
/// the pacing thread is gone.
fn send_window(
    window: &[(Arc<FileJob>, u32)],
    cut: Cut,
    carry: &mut Carry,
    tx: &std::sync::mpsc::SyncSender<Result<Window>>,
) -> std::result::Result<(), Option<anyhow::Error>> {
    let lens: Vec<u64> = window.iter().map(|(job, s)| job.segment_len(*s)).collect();
    let bytes = lens.iter().sum();
    // Source symbols, then repair symbols, of each segment.
    let shape: Vec<(u32, u32)> = window
        .iter()
        .zip(&lens)
        .map(|((job, _), &len)| {
            let k = diode::source_symbols(len, cut.symbol);
            let sent = if job.pass == 0 { k } else { 0 };
            (sent, job.repair_span(k).1)
        })
        .collect();
    let counts: Vec<u32> = shape.iter().map(|&(k, r)| k + r).collect();
    let keyed = diode::taper_keys(&counts, diode::TAPER);
    let earlier = std::mem::take(carry);
    std::thread::scope(|scope| {
        let mut encoding = Some(scope.spawn(|| -> Result<Repair> {
            let te = Instant::now();
            let lists = window
                .par_iter()
                .map(|(job, s)| Ok(job.repair_packets(*s, &job.read_segment(*s)?)))
                .collect::<Result<Vec<_>>>()?;
            Ok((lists, te.elapsed().as_secs_f64()))
        }));
        let mut repair: Option<Repair> = None;
        let mut source = Sources::new(window, &lens, cut.symbol);
        let mut out = Batcher::new(tx);
        let make = |i: u32, j: u32| -> std::result::Result<Vec<u8>, Option<anyhow::Error>> {
            let (i, (sources, _)) = (i as usize, shape[i as usize]);
            if j < sources {
                return Ok(source.packet(i, j)?);
            }
            if repair.is_none() {
                let h = encoding.take().expect("joined once");
                repair = Some(joined(h)?);
            }
            let (lists, _) = repair.as_mut().expect("joined");
            Ok(lists
                .get_mut(i)
                .and_then(|l| l.get_mut((j - sources) as usize))
                .map(std::mem::take)
                .ok_or_else(|| anyhow::anyhow!("a repair symbol is missing"))?)
        };
        *carry = overlap(&keyed, earlier, make, |d| out.push(d))?;
        let secs = match (repair, encoding) {
            (Some(r), _) => r.1,
            (None, Some(h)) => joined(h)?.1,
            (None, None) => 0.0,
        };
        out.finish(bytes, secs)
    })
}

/// Puts out one window's packets (`keyed`: time on the window's scale,
/// segment, index; made by `make`) merged by time with `earlier`, the end
/// of the window before (already on this one's scale). Returns this
/// window's end, the packets after `1 - TAPER`, on the next one's scale.
fn overlap<T, E>(
    keyed: &[(f64, u32, u32)],
    earlier: Vec<(f64, T)>,
    mut make: impl FnMut(u32, u32) -> std::result::Result<T, E>,
    mut emit: impl FnMut(T) -> std::result::Result<(), E>,
) -> std::result::Result<Vec<(f64, T)>, E> {
    let held_from = 1.0 - diode::TAPER;
    let mut earlier = earlier.into_iter().peekable();
    let mut carry = Vec::new();
    for &(key, i, j) in keyed {
        while let Some((_, d)) = earlier.next_if(|(k, _)| *k <= key) {
            emit(d)?;
        }
        let d = make(i, j)?;
        if key > held_from {
            carry.push((key - held_from, d));
        } else {
            emit(d)?;
        }
    }
    for (_, d) in earlier {
        emit(d)?;
    }
    Ok(carry)
}

/// Hands datagrams to the pacing thread in batches of [`SOURCE_BATCH`]
/// (the first four of a window [`FIRST_BATCH`], so the link is busy sooner).
struct Batcher<'t> {
    tx: &'t std::sync::mpsc::SyncSender<Result<Window>>,
    batch: Vec<Vec<u8>>,
    sent: usize,
}

impl<'t> Batcher<'t> {
    fn new(tx: &'t std::sync::mpsc::SyncSender<Result<Window>>) -> Self {
        Batcher {
            tx,
            batch: Vec::with_capacity(FIRST_BATCH),
            sent: 0,
        }
    }

    fn push(&mut self, dgram: Vec<u8>) -> std::result::Result<(), Option<anyhow::Error>> {
        self.batch.push(dgram);
        self.sent += 1;
        let small = self.sent <= 4 * FIRST_BATCH && self.batch.len() >= FIRST_BATCH;
        if small || self.batch.len() >= SOURCE_BATCH {
            self.send(0, 0.0)?;
        }
        Ok(())
    }

    fn send(&mut self, bytes: u64, secs: f64) -> std::result::Result<(), Option<anyhow::Error>> {
        let w = Window {
            packets: std::mem::replace(&mut self.batch, Vec::with_capacity(SOURCE_BATCH)),
            bytes,
            secs,
        };
        self.tx.send(Ok(w)).map_err(|_| None)
    }

    /// Sends the rest, with the window's bundle bytes and encoding time.
    fn finish(mut self, bytes: u64, secs: f64) -> std::result::Result<(), Option<anyhow::Error>> {
        self.send(bytes, secs)
    }
}

/// The repair packets of a window's segments, and the seconds encoding took.
type Repair = (Vec<Vec<Vec<u8>>>, f64);

fn joined(h: std::thread::ScopedJoinHandle<'_, Result<Repair>>) -> Result<Repair> {
    h.join()
        .map_err(|_| anyhow::anyhow!("the encoder thread panicked"))?
}

/// Symbols read from a segment at a time for its source packets.
const READ_SYMBOLS: u64 = 256;

/// The source symbols of a window's segments, read as they are sent: the
/// first packets go out without waiting for whole segments to be read.
struct Sources<'a> {
    window: &'a [(Arc<FileJob<'a>>, u32)],
    lens: &'a [u64],
    symbol: u16,
    read: Vec<Vec<u8>>,
}

impl<'a> Sources<'a> {
    fn new(window: &'a [(Arc<FileJob<'a>>, u32)], lens: &'a [u64], symbol: u16) -> Self {
        Sources {
            window,
            lens,
            symbol,
            read: vec![Vec::new(); window.len()],
        }
    }

    /// The datagram of source symbol `j` of the window's segment `i`.
    fn packet(&mut self, i: usize, j: u32) -> Result<Vec<u8>> {
        let (job, s) = &self.window[i];
        let (t, len, buf) = (u64::from(self.symbol), self.lens[i], &mut self.read[i]);
        let start = (u64::from(j) * t).min(len);
        let end = (start + t).min(len);
        if (buf.len() as u64) < end {
            let from = buf.len();
            let to = end.max(from as u64 + READ_SYMBOLS * t).min(len) as usize;
            buf.resize(to, 0);
            let at = u64::from(*s) * u64::from(job.cut.segment) + from as u64;
            job.file
                .f
                .read_exact_at(&mut buf[from..], at)
                .with_context(|| format!("cannot read {}", job.path.display()))?;
        }
        let mut sym = buf[start as usize..end as usize].to_vec();
        sym.resize(t as usize, 0);
        Ok(job.packet(*s, j, sym))
    }
}

/// A bundle file opened for encoding.
struct OpenFile {
    f: std::fs::File,
    size: u64,
    segments: u32,
}

/// Opens `path` and counts its segments.
fn open_file(path: &Path, cut: Cut) -> Result<OpenFile> {
    let (f, size) = std::fs::File::open(path)
        .and_then(|f| f.metadata().map(|m| (f, m.len())))
        .with_context(|| format!("cannot open {}", path.display()))?;
    let Some(segments) = diode::segment_count(size, cut.segment) else {
        bail!(
            "{} is too large for the diode format at {}-byte segments",
            path.display(),
            cut.segment
        );
    };
    Ok(OpenFile { f, size, segments })
}

/// Datagrams sent to the pacing thread at a time: the first packets of a
/// window go out while the rest are still being cut.
const SOURCE_BATCH: usize = 1024;

/// The first four batches of a window are this small: the link is busy sooner.
const FIRST_BATCH: usize = 64;

/// Batches of datagrams the encoder thread may run ahead of the pacing
/// thread (a few megabytes).
const AHEAD: usize = 16;

/// One file of a bundle, on one pass.
struct FileJob<'a> {
    bundle: &'a Outgoing,
    index: u16,
    path: &'a Path,
    file: OpenFile,
    pass: u32,
    cut: Cut,
    opts: &'a SendOptions,
}

impl FileJob<'_> {
    /// Repair symbols for a segment of `k` source symbols: the overhead's,
    /// or what the expected loss needs if that is more.
    fn repair_count(&self, k: u32) -> u32 {
        let r = diode::repair_count(k, self.opts.overhead);
        match self.opts.loss {
            Some(loss) => r.max(diode::repair_for_loss(k, loss)),
            None => r,
        }
    }

    fn segment_len(&self, s: u32) -> u64 {
        diode::segment_len(self.file.size, self.cut.segment, s)
    }

    fn read_segment(&self, s: u32) -> Result<Vec<u8>> {
        let len = self.segment_len(s);
        let mut data = vec![0u8; len as usize];
        self.file
            .f
            .read_exact_at(&mut data, s as u64 * self.cut.segment as u64)
            .with_context(|| format!("cannot read {}", self.path.display()))?;
        Ok(data)
    }

    /// The repair symbols sent for a segment of `k` source symbols, as
    /// (first repair index, count): on pass 0, `r` of them; on pass p,
    /// `k + r` not sent before.
    fn repair_span(&self, k: u32) -> (u32, u32) {
        let r = self.repair_count(k);
        match self.pass {
            0 => (0, r),
            p => (r.saturating_add((p - 1).saturating_mul(k + r)), k + r),
        }
    }

    /// The repair symbols of segment `s` (its bytes `d`), as
    /// [`FileJob::repair_span`] says.
    fn repair_packets(&self, s: u32, d: &[u8]) -> Vec<Vec<u8>> {
        let t = self.cut.symbol;
        let k = diode::source_symbols(d.len() as u64, t);
        let (start, n) = self.repair_span(k);
        diode::encode_segment(d, t, false, start, n)
            .into_iter()
            .map(|(id, sym)| self.packet(s, id, sym))
            .collect()
    }

    /// The datagram carrying symbol `id` of segment `s`.
    fn packet(&self, s: u32, id: u32, data: Vec<u8>) -> Vec<u8> {
        let b = self.bundle;
        Packet {
            stream: b.stream,
            sequence: b.sequence,
            file: self.index,
            file_count: b.files.len() as u16,
            file_size: self.file.size,
            segment: s,
            segment_size: self.cut.segment,
            symbol_size: self.cut.symbol,
            symbol_id: id,
            data,
        }
        .to_bytes()
    }
}

fn send_one(sock: &UdpSocket, dgram: &[u8]) -> Result<()> {
    const ENOBUFS: i32 = 105;
    loop {
        match sock.send(dgram) {
            Ok(_) => return Ok(()),
            // An ICMP "port unreachable" for an earlier datagram (a receiver not
            // up yet; only on a test link, a diode returns nothing): this
            // datagram is lost like any other, and the stream goes on.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Ok(()),
            // A full socket buffer: wait for it to drain.
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.raw_os_error() == Some(ENOBUFS) =>
            {
                std::thread::sleep(Duration::from_micros(200));
            }
            Err(e) => return Err(e).context("cannot send to the diode"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three windows of 8 equal segments through [`overlap`], as the sender
    /// puts them out: (window, segment, index), the final window's end last.
    fn three_windows() -> (Vec<(u32, u32, u32)>, usize) {
        let keyed = diode::taper_keys(&[3049; 8], diode::TAPER);
        let mut out = Vec::new();
        let mut carry = Vec::new();
        for w in 0..3u32 {
            carry = overlap(
                &keyed,
                carry,
                |i, j| Ok::<_, ()>((w, i, j)),
                |p| {
                    out.push(p);
                    Ok(())
                },
            )
            .unwrap();
        }
        let before_end = out.len();
        out.extend(carry.into_iter().map(|(_, p)| p));
        (out, before_end)
    }

    #[test]
    fn windows_overlap_so_a_burst_costs_each_segment_a_share() {
        let (out, before_end) = three_windows();
        assert_eq!(out.len(), 3 * 8 * 3049);
        // Every packet once, each segment's in order.
        let mut next = std::collections::HashMap::new();
        let mut last = std::collections::HashMap::new();
        for (pos, &(w, i, j)) in out.iter().enumerate() {
            let n = next.entry((w, i)).or_insert(0u32);
            assert_eq!(j, *n);
            *n += 1;
            last.insert((w, i), pos);
        }
        assert!(next.values().all(|&n| n == 3049));
        // A window's segments end one after another, during the next one.
        let ends: Vec<usize> = (0..8).map(|i| last[&(0, i)]).collect();
        assert!(ends.windows(2).all(|e| e[0] < e[1]));
        assert!(ends[0] > 8 * 3049 * 8 / 10 && ends[7] < 2 * 8 * 3049);
        // A burst of 100 costs any segment at most 17 (round-robin: 13),
        // except at the very end of the stream, where nothing overlaps.
        let mut hit = std::collections::HashMap::new();
        let mut worst = 0;
        for pos in 0..before_end {
            *hit.entry((out[pos].0, out[pos].1)).or_insert(0) += 1;
            if pos >= 100 {
                *hit.get_mut(&(out[pos - 100].0, out[pos - 100].1)).unwrap() -= 1;
            }
            worst = worst.max(*hit.values().max().unwrap());
        }
        assert!(worst <= 17, "a burst costs a segment {worst}");
    }

    #[test]
    fn segments_hold_about_three_thousand_symbols() {
        let cut = |mtu| {
            Cut::new(&SendOptions {
                mtu,
                ..Default::default()
            })
        };
        let c = cut(1500);
        assert_eq!(
            (c.symbol, c.segment / c.symbol as u32),
            (1408, SEGMENT_SYMBOLS)
        );
        assert!(c.segment <= 4 << 20);
        let j = cut(9000);
        assert_eq!(j.segment, (diode::MAX_SEGMENT / 8904) * 8904);
    }
}
