//! A deflate encoder whose output is klauspost/compress's `flate`, byte for
//! byte, and the block framing of klauspost/pgzip over it: encoders 5
//! (pgzip) and 6 (one flate stream) of [`Segment::Zlib`](crate::Segment::Zlib).
//!
//! Container image layers written by podman, buildah and skopeo
//! (containers/image's `pkg/compression`: `pgzip.NewWriterLevel`, by default
//! `DefaultCompression`) are gzipped by github.com/klauspost/pgzip, which
//! splits its input into 1 MiB blocks and deflates each with a fresh
//! klauspost `flate.Writer` given the previous block's last 16 KiB as its
//! dictionary (`ResetDict`), ends each block with a sync flush
//! (`00 00 ff ff`) and the last one with `Close` as well (an empty fixed
//! final block, `03 00`), and joins the blocks into one gzip member (XFL 2
//! at level 9, 4 at level 1, else 0; OS 255). Go 1.27's standard library
//! `compress/flate` is derived from klauspost's, so one plain
//! `flate.NewWriter(w, level)` + `Write` + `Close` stream (encoder 7,
//! also klauspost's own `gzip.NewWriter`) is modelled too.
//!
//! What is modelled: klauspost/compress 1.15.12 (Debian bookworm's
//! `golang-github-klauspost-compress-dev`), and the releases podman,
//! buildah and skopeo vendor in 2025-2026 (1.16.0 to 1.18.0, 1.18.1, and
//! 1.18.2 to 1.19.1), levels 1 to 9, named by the level byte's high nibble
//! ([`release`]), with pgzip 1.2.5 (whose output 1.2.6 and its 2026 master
//! keep) with its default
//! block size (1 MiB; `SetConcurrency` can change it, which is not
//! modelled), levels 1 to 9 (`DefaultCompression`, -1, is level 5), on amd64
//! (`tokens.rs`'s size estimate is `f32` arithmetic that Go on arm64 may
//! fuse into multiply-adds: not checked). [`fast`] and [`better`] are
//! `level1.go`..`level6.go`, [`lazy`] is levels 7 to 9 (`deflateLazy`),
//! [`writer`] is `huffman_bit_writer.go` (table reuse across blocks, the
//! stored / fixed / dynamic / Huffman-only choices), [`tokens`] is
//! `token.go`. Levels 0 (stored) and -2 (`HuffmanOnly`), `Flush` other than
//! pgzip's, and pgzip's `Flush` by its caller are not modelled. Only the raw
//! deflate stream is made here; the gzip header and trailer are literal
//! bytes of the recipe.
//!
//! A flate writer's output does not depend on how its input is split into
//! `Write`s (levels 1 to 6 encode 65,535-byte windows, levels 7 to 9 work
//! on a 64 KiB window whatever the writes). pgzip's pooled writers carry
//! their tables from one block to another, but `ResetDict` moves every old
//! entry out of reach, so each block is deflated here by a fresh writer
//! (which makes the blocks independent: [`pgzip_to`] deflates several at
//! once on scoped threads).
//!
//! Like the other encoders it is checked against known answers made by the
//! real Go before it analyses or rebuilds anything (`zlib::encoder_ok`).

mod better;
mod fast;
pub(crate) mod go127;
mod lazy;
pub(crate) mod release;
mod tokens;
mod writer;

use std::io::Read;

use release::Release;
use tokens::Tokens;
use writer::BitWriter;

/// The encoder id of klauspost/pgzip (1 MiB blocks) in
/// [`crate::zlib::ZlibParams`].
pub const PGZIP_ENCODER: u8 = 5;
/// The encoder id of one klauspost/compress `flate` stream.
pub const KP_FLATE_ENCODER: u8 = 7;

/// The largest stored block, and the fast levels' window.
pub(crate) const MAX_STORE: usize = 65_535;
/// pgzip's block size (`defaultBlockSize`).
pub(crate) const PGZIP_BLOCK: usize = 1 << 20;
/// The dictionary pgzip hands the next block (`tailSize`).
const TAIL: usize = 16 << 10;

/// (level, deflated length, CRC-32 of the deflated bytes) of
/// [`crate::zlib::sample`] as klauspost/pgzip 1.2.5 over
/// klauspost/compress 1.15.12 deflates it (the raw deflate body of
/// `pgzip.NewWriterLevel(w, level)`, one `Write`, `Close`).
pub(crate) const PGZIP_KNOWN_ANSWERS: [(u8, u64, u32); 9] = [
    (1, 63_586, 0x99e1_4c6d),
    (2, 62_437, 0xfd72_bc80),
    (3, 62_364, 0xe414_6c82),
    (4, 56_843, 0x868f_810f),
    (5, 56_006, 0x1d00_0994),
    (6, 54_503, 0x8a0c_b8cb),
    (7, 51_440, 0x7d58_5071),
    (8, 49_997, 0xf835_f0cb),
    (9, 46_685, 0x241d_0946),
];

/// The same for one `flate.NewWriter(w, level)` stream.
pub(crate) const KP_FLATE_KNOWN_ANSWERS: [(u8, u64, u32); 9] = [
    (1, 63_581, 0x4047_439d),
    (2, 62_432, 0x1bc6_502b),
    (3, 62_359, 0xe7c5_2364),
    (4, 56_838, 0x9d58_90c5),
    (5, 56_001, 0x1655_16b7),
    (6, 54_498, 0x81a7_88e5),
    (7, 51_435, 0x34fe_8a72),
    (8, 49_992, 0xd519_a06c),
    (9, 46_680, 0xe8e2_3c7f),
];

/// The matcher of a level.
enum Kind {
    /// Levels 1 to 6.
    Fast(Box<fast::Fast>),
    /// Levels 7 to 9.
    Lazy(Box<lazy::Lazy>),
}

/// Go's `compressor` (one `flate.Writer`).
struct Compressor {
    kind: Kind,
    w: BitWriter,
    tokens: Tokens,
    /// The fast levels' window (levels 7 to 9 keep their own).
    window: Vec<u8>,
    sync: bool,
}

impl Compressor {
    /// Go 1.27's standard-library `NewWriter(w, level)`, level 1 to 9
    /// (see [`go127`]).
    fn new_go127(level: u8) -> Compressor {
        // Levels 7 to 9 are klauspost 1.18.2's `deflateLazy`; the writer is
        // Go 1.27's (`go127` decides the table sizes).
        let release = if level >= 7 {
            Release::V1_18_2
        } else {
            Release::V1_15
        };
        let mut c = Compressor::new(release, level);
        c.w.sizes = writer::Sizes::Full;
        c.w.go127 = true;
        c
    }

    /// Go's `NewWriter(w, level)` of `release`, level 1 to 9.
    fn new(release: Release, level: u8) -> Compressor {
        let (kind, penalty) = match level {
            1..=6 => {
                let mut f = fast::Fast::new(level);
                f.l4_118 = release.l4_118();
                (Kind::Fast(Box::new(f)), 7)
            }
            _ => {
                let mut l = lazy::Lazy::new(level);
                l.v116 = release != Release::V1_15;
                l.v1182 = release == Release::V1_18_2;
                (Kind::Lazy(Box::new(l)), 8)
            }
        };
        let mut w = BitWriter::new(penalty);
        w.sizes = release.sizes();
        Compressor {
            kind,
            w,
            tokens: Tokens::new(),
            window: Vec::with_capacity(MAX_STORE),
            sync: false,
        }
    }

    /// Go's `ResetDict` on a new writer: `dict` (at most 32 KiB of it) as
    /// history, no output.
    fn reset_dict(&mut self, dict: &[u8]) {
        match &mut self.kind {
            Kind::Fast(f) => {
                f.reset();
                let dict = &dict[dict.len().saturating_sub(fast::MAX_OFFSET as usize)..];
                f.encode(&mut self.tokens, dict);
                self.tokens.reset();
            }
            Kind::Lazy(l) => l.fill_window(dict),
        }
    }

    /// Go's `write`.
    fn write(&mut self, mut b: &[u8]) {
        while !b.is_empty() {
            let n = match &mut self.kind {
                Kind::Fast(_) => {
                    if self.window.len() == MAX_STORE {
                        self.step();
                    }
                    let n = b.len().min(MAX_STORE - self.window.len());
                    self.window.extend_from_slice(&b[..n]);
                    n
                }
                Kind::Lazy(l) => {
                    if l.full() {
                        self.step();
                    }
                    match &mut self.kind {
                        Kind::Lazy(l) => l.fill(b),
                        Kind::Fast(_) => unreachable!("the kind does not change"),
                    }
                }
            };
            b = &b[n..];
        }
    }

    /// Go's `step`: `storeFast` or `deflateLazy`.
    fn step(&mut self) {
        match &mut self.kind {
            Kind::Fast(f) => store_fast(
                f,
                &mut self.w,
                &mut self.tokens,
                &mut self.window,
                self.sync,
            ),
            Kind::Lazy(l) => l.step(self.sync, &mut self.w, &mut self.tokens),
        }
    }

    /// Go's `Flush` (a sync flush: `00 00 ff ff`).
    fn sync_flush(&mut self) {
        self.sync = true;
        self.step();
        self.w.write_stored_header(0, false);
        self.w.flush();
        self.sync = false;
    }

    /// Go's `Close` (an empty fixed final block).
    fn close(&mut self) {
        self.sync = true;
        self.step();
        self.w.write_stored_header(0, true);
        self.w.flush();
    }
}

/// Go's `storeFast`: encodes the window when full (or on a flush).
fn store_fast(
    f: &mut fast::Fast,
    w: &mut BitWriter,
    tokens: &mut Tokens,
    window: &mut Vec<u8>,
    sync: bool,
) {
    let end = window.len();
    if end < MAX_STORE {
        if !sync {
            return;
        }
        if end < 128 {
            if end == 0 {
                return;
            }
            if end <= 32 {
                w.write_stored(window, false);
            } else {
                w.write_block_huff(false, window, true);
            }
            tokens.reset();
            window.clear();
            f.reset();
            return;
        }
    }
    f.encode(tokens, window);
    if tokens.n() == 0 {
        w.write_stored(window, false);
    } else if tokens.n() > end - (end >> 4) {
        w.write_block_huff(false, window, sync);
    } else {
        w.write_block_dynamic(tokens, false, Some(window), sync);
    }
    tokens.reset();
    window.clear();
}

/// Hands `w`'s finished bytes to `sink`.
fn hand<E>(
    w: &mut BitWriter,
    sink: &mut impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), Result<E, std::io::Error>> {
    let r = if w.out.is_empty() {
        Ok(())
    } else {
        sink(&w.out)
    };
    w.out.clear();
    r.map_err(Ok)
}

/// The release and level of a level byte (see [`release`]), or an error.
fn decode(byte: u8) -> Result<(Release, u8), std::io::Error> {
    Release::decode(byte).ok_or_else(|| {
        std::io::Error::other(format!(
            "klauspost level byte {byte:#04x} is unknown (release {}, level {})",
            byte >> 4,
            byte & 15
        ))
    })
}

/// Deflates what `plain` reads as klauspost's `flate.NewWriter(w, level)`
/// (the level byte names the release, see [`release`]) does when given the
/// whole input and closed, handing the output to `sink` as it comes; stops
/// at the sink's first error (`Err(Ok)`), or at a read error (`Err(Err)`).
pub(crate) fn deflate_to<E>(
    level: u8,
    plain: &mut dyn Read,
    sink: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), Result<E, std::io::Error>> {
    let (release, level) = decode(level).map_err(Err)?;
    stream_to(Compressor::new(release, level), plain, sink)
}

/// One writer's whole stream: `plain` written, then `Close`.
fn stream_to<E>(
    mut c: Compressor,
    plain: &mut dyn Read,
    mut sink: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), Result<E, std::io::Error>> {
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = crate::zlib::read_full(plain, &mut buf).map_err(Err)?;
        if n == 0 {
            break;
        }
        c.write(&buf[..n]);
        hand(&mut c.w, &mut sink)?;
    }
    c.close();
    hand(&mut c.w, &mut sink)
}

/// One pgzip block: `block` deflated after `dict`, sync-flushed, and closed
/// when it is the last.
fn pgzip_block(release: Release, level: u8, dict: &[u8], block: &[u8], last: bool) -> Vec<u8> {
    let mut c = Compressor::new(release, level);
    c.reset_dict(dict);
    c.write(block);
    c.sync_flush();
    if last {
        c.close();
    }
    std::mem::take(&mut c.w.out)
}

/// Deflates what `plain` reads as klauspost/pgzip's `NewWriterLevel(w,
/// level)` does (the raw deflate between the gzip header and trailer),
/// `threads` blocks at once (the first alone, so that a search stopped by
/// the sink early has deflated one block); stops as [`deflate_to`] does.
pub(crate) fn pgzip_to<E>(
    level: u8,
    plain: &mut dyn Read,
    threads: usize,
    mut sink: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), Result<E, std::io::Error>> {
    let (release, level) = decode(level).map_err(Err)?;
    let mut tail: Vec<u8> = Vec::new();
    let mut batch = 1usize;
    let mut ahead: Vec<u8> = Vec::new();
    let mut eof = false;
    loop {
        // Up to `batch` blocks, and one byte more to know whether more come.
        let want = batch * PGZIP_BLOCK + 1;
        if ahead.len() < want && !eof {
            let have = ahead.len();
            ahead.resize(want, 0);
            let n = crate::zlib::read_full(plain, &mut ahead[have..]).map_err(Err)?;
            ahead.truncate(have + n);
            eof = ahead.len() < want;
        }
        let whole = ahead.len().min(batch * PGZIP_BLOCK);
        // pgzip deflates a full block as soon as it has it; the block it
        // closes with holds the rest, which may be empty.
        let mut blocks: Vec<(&[u8], &[u8], bool)> = Vec::new();
        let mut dict: &[u8] = &tail;
        let mut at = 0;
        while at < whole {
            let end = (at + PGZIP_BLOCK).min(whole);
            let block = &ahead[at..end];
            let last = eof && end == ahead.len() && block.len() < PGZIP_BLOCK;
            blocks.push((dict, block, last));
            dict = if block.len() > TAIL {
                &block[block.len() - TAIL..]
            } else {
                &[]
            };
            at = end;
        }
        let done = eof && whole == ahead.len();
        let closing = done && blocks.last().is_none_or(|b| !b.2);
        if closing {
            blocks.push((dict, &[], true));
        }
        let outs: Vec<Vec<u8>> = if blocks.len() == 1 || threads <= 1 {
            blocks
                .iter()
                .map(|&(d, b, last)| pgzip_block(release, level, d, b, last))
                .collect()
        } else {
            std::thread::scope(|scope| {
                let handles: Vec<_> = blocks
                    .iter()
                    .map(|&(d, b, last)| {
                        scope.spawn(move || pgzip_block(release, level, d, b, last))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("a pgzip block's thread panicked"))
                    .collect()
            })
        };
        for out in &outs {
            sink(out).map_err(Ok)?;
        }
        if done {
            return Ok(());
        }
        tail = dict.to_vec();
        ahead.drain(..whole);
        batch = threads.max(1);
    }
}

/// The threads a pgzip rebuild uses: one per core, at most 4.
pub(crate) fn pgzip_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

#[cfg(test)]
mod go127_tests;
#[cfg(test)]
mod release_golden;
#[cfg(test)]
mod release_tests;
#[cfg(test)]
mod tests;
