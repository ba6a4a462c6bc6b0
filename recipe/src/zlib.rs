//! Deflate streams that zlib, or GNU gzip's deflate, reproduces byte for byte.
//!
//! Most upstream deflate is made by zlib with its default settings: Python's
//! `zipfile` (wheels) at level 6, cargo's flate2 (crates) at level 9, anything
//! built on `gzip` of zlib. Deflating the stream's plain bytes again with the
//! same zlib and level gives the very same bytes, which is both cheaper and
//! smaller than preflate-rs's analysis and corrections. A stream is recorded as
//! [`Segment::Zlib`](crate::Segment::Zlib) only when a candidate level rebuilds
//! it exactly; the search stops a candidate at its first differing byte.
//!
//! The encoder is pinned: libz-sys `=1.1.33` built statically (its own zlib,
//! never the system's). [`ZlibParams::encoder`] names the encoder's *output*,
//! and before analysing or rebuilding with it this build checks that its
//! deflate gives the known answers of encoder [`ZLIB_ENCODER`] on a fixed
//! sample, so a build linked to a zlib whose output differs refuses instead of
//! rebuilding other bytes.
//!
//! Encoder [`GNU_GZIP_ENCODER`] (recipe version 3) is GNU gzip's deflate,
//! rewritten in Rust (`gnu`): `gzip -1` to `-9` streams (layers, charts) that
//! no zlib level reproduces. It passes its own known answers before use.
//!
//! Encoder [`GO_FLATE_ENCODER`] (recipe version 5) is Go's `compress/flate`,
//! rewritten in Rust (`goflate`): image layers gzipped by Docker, BuildKit
//! or containerd (Go's `gzip.NewWriter`, level 6 by default), which neither
//! zlib nor GNU gzip reproduces and preflate-rs refuses (Go writes
//! one-symbol Huffman codes). Tried last, and only with
//! `Options::go_encoder`; it too passes known answers (made by real Go).
//!
//! The search ([`DeflateSearch`], one per object): the params that rebuilt
//! the object's previous stream first, then each encoder at the levels the
//! container's header suggests (`LevelHint`); an encoder that fails every
//! level tried on one stream is not tried again on the object's later streams
//! (they go straight to the next encoder, then to preflate-rs). Each candidate
//! stops at its first differing byte (zlib's, or gzip's, block). With
//! `Options::check_streams` off, a candidate whose first MiB (`PREFIX`)
//! matches is taken without deflating the rest: the caller rebuilds the whole
//! object and checks its digest anyway.

use std::io::{Read, Write};
use std::sync::OnceLock;

use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use serde::{Deserialize, Serialize};

/// The encoder this build has: zlib's deflate (raw, 32 KiB window, memLevel 8,
/// default strategy) as zlib 1.2.12 to 1.4 make it, whose output the
/// [`KNOWN_ANSWERS`] pin.
pub const ZLIB_ENCODER: u8 = 1;

pub use crate::gnu::GNU_GZIP_ENCODER;
pub use crate::goflate::GO_FLATE_ENCODER;

/// How a [`Segment::Zlib`](crate::Segment::Zlib) deflates its plain bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZlibParams {
    /// Which encoder's output: [`ZLIB_ENCODER`] (zlib),
    /// [`GNU_GZIP_ENCODER`] (GNU gzip, recipe version 3) or
    /// [`GO_FLATE_ENCODER`] (Go's `compress/flate`, recipe version 5).
    pub encoder: u8,
    /// The encoder's compression level, 1 to 9.
    pub level: u8,
}

/// Why a zlib segment did not rebuild.
#[derive(Debug, thiserror::Error)]
pub enum ZlibError {
    /// The recipe names an encoder this build does not have.
    #[error(
        "deflate encoder {found} is unknown to this build (it has encoders {ZLIB_ENCODER}, {GNU_GZIP_ENCODER} and {GO_FLATE_ENCODER})"
    )]
    UnknownEncoder {
        /// The encoder id the recipe names.
        found: u8,
    },
    /// The encoder in this build does not give its known answers (for
    /// encoder 1, the zlib linked in).
    #[error("deflate encoder {encoder}'s output differs from its known answers")]
    EncoderMismatch {
        /// The encoder id.
        encoder: u8,
    },
    /// The level is not 1 to 9.
    #[error("zlib level {0} is not 1 to 9")]
    BadLevel(u8),
    /// The stream came out longer than declared.
    #[error("deflate came out longer than its declared {declared} bytes")]
    TooLong {
        /// The declared length.
        declared: u64,
    },
    /// The stream came out shorter than declared.
    #[error("deflate came out {produced} bytes, not its declared {declared}")]
    TooShort {
        /// The declared length.
        declared: u64,
        /// What was produced.
        produced: u64,
    },
    /// zlib reported an error.
    #[error("zlib: {0}")]
    Zlib(String),
    /// Writing the output failed.
    #[error("writing the rebuilt stream failed: {0}")]
    Write(#[source] std::io::Error),
}

/// The levels a stream's container suggests it was made at, tried in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LevelHint {
    /// Nothing said (or "normal"): the default level, then the strongest.
    Unknown,
    /// gzip's XFL 2 (zlib and GNU gzip write it at level 9 only).
    GzipMax,
    /// gzip's XFL 4, or zip's "super fast" (bits 1-2 of the flags = 3): level 1.
    Fastest,
    /// zip's "maximum" (flags bits 1-2 = 1: `-8` or `-9`).
    ZipMax,
    /// zip's "fast" (flags bits 1-2 = 2: `-2`).
    ZipFast,
}

impl LevelHint {
    /// The hint of a gzip member's XFL byte.
    pub(crate) fn of_xfl(xfl: u8) -> LevelHint {
        match xfl {
            2 => LevelHint::GzipMax,
            4 => LevelHint::Fastest,
            _ => LevelHint::Unknown,
        }
    }

    /// The hint of a zip local header's general-purpose flags.
    pub(crate) fn of_zip_flags(flags: u16) -> LevelHint {
        match (flags >> 1) & 3 {
            1 => LevelHint::ZipMax,
            2 => LevelHint::ZipFast,
            3 => LevelHint::Fastest,
            _ => LevelHint::Unknown,
        }
    }

    /// The levels of `encoder` tried, in order.
    fn levels(self, encoder: u8) -> &'static [u8] {
        if encoder == GO_FLATE_ENCODER {
            // Go's gzip writes XFL 2 at level 9, 4 at level 1, 0 otherwise
            // (its default, 6, first; `archive/zip` deflates at 5); its
            // zip and zlib writers say nothing.
            return match self {
                LevelHint::Unknown => &[6, 5, 9, 1, 4, 7, 8, 3, 2],
                LevelHint::GzipMax => &[9],
                LevelHint::Fastest => &[1],
                LevelHint::ZipMax => &[9, 8],
                LevelHint::ZipFast => &[2],
            };
        }
        match self {
            LevelHint::Unknown => &[6, 9],
            LevelHint::GzipMax => &[9],
            LevelHint::Fastest => &[1],
            LevelHint::ZipMax => &[9, 8],
            LevelHint::ZipFast => &[2],
        }
    }
}

/// The encoders in the order the search tries them (a new encoder goes
/// last, so that streams an earlier one rebuilds keep their recipes).
const ENCODERS: [u8; 3] = [ZLIB_ENCODER, GNU_GZIP_ENCODER, GO_FLATE_ENCODER];

/// Plain bytes given to zlib at a time; output is compared or written as it comes.
const STEP: usize = 64 << 10;

/// (level, deflated length, CRC-32 of the deflated bytes) of [`sample`] made by
/// encoder 1 (computed with Python's zlib 1.2.13; libz-sys 1.1.33's zlib 1.4
/// gives the same).
const KNOWN_ANSWERS: [(u8, u64, u32); 3] = [
    (1, 62_233, 0x24f8_8b0f),
    (6, 49_136, 0x103e_2857),
    (9, 46_654, 0xcfd4_f704),
];

/// A fixed sample: words from a small vocabulary in a pseudo-random order, so
/// that every level finds matches of every length and distance.
pub(crate) fn sample() -> Vec<u8> {
    const WORDS: [&[u8]; 12] = [
        b"ferry ",
        b"deflate ",
        b"zlib ",
        b"wheel ",
        b"crate ",
        b"layer ",
        b"a ",
        b"of ",
        b"recipe\n",
        b"0123456789 ",
        b"the ",
        b"stream ",
    ];
    let mut x: u32 = 0x2545_f491;
    let mut out = Vec::with_capacity(300 << 10);
    while out.len() < 256 << 10 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        out.extend_from_slice(WORDS[(x % 12) as usize]);
        if x.is_multiple_of(7) {
            out.push((x >> 8) as u8);
        }
    }
    out
}

/// Whether encoder `encoder` is known and gives its known answers.
fn encoder_ok(encoder: u8) -> bool {
    match encoder {
        ZLIB_ENCODER => zlib_ok(),
        GNU_GZIP_ENCODER => crate::gnu::encoder_ok(),
        GO_FLATE_ENCODER => crate::goflate::encoder_ok(),
        _ => false,
    }
}

/// Whether the linked zlib gives encoder 1's known answers (computed once).
fn zlib_ok() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        let plain = sample();
        KNOWN_ANSWERS.iter().all(|&(level, len, crc)| {
            let mut out = Vec::new();
            let mut sum = Crc::new();
            let done = deflate_to(level, &mut &plain[..], |b| {
                sum.update(b);
                out.extend_from_slice(b);
                Ok::<(), ()>(())
            });
            done.is_ok() && out.len() as u64 == len && sum.sum() == crc
        })
    })
}

/// Deflates what `plain` reads (raw, zlib level `level`), handing each piece
/// of output to `sink` as it comes; stops at the sink's first error. The
/// input is read `STEP` bytes at a time and given to zlib without a flush:
/// zlib's output does not depend on how its input is handed over.
fn deflate_to<E>(
    level: u8,
    plain: &mut dyn Read,
    mut sink: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), Result<E, String>> {
    let mut c = Compress::new(Compression::new(u32::from(level)), false);
    let mut buf = vec![0u8; STEP + 1024];
    let mut input = vec![0u8; STEP];
    loop {
        let n = read_full(plain, &mut input).map_err(|e| Err(e.to_string()))?;
        // A short read is the end of the input.
        let flush = if n < STEP {
            FlushCompress::Finish
        } else {
            FlushCompress::None
        };
        let mut at = 0usize;
        loop {
            let (in0, out0) = (c.total_in(), c.total_out());
            let status = c
                .compress(&input[at..n], &mut buf, flush)
                .map_err(|e| Err(e.to_string()))?;
            let used = (c.total_in() - in0) as usize;
            let made = (c.total_out() - out0) as usize;
            at += used;
            sink(&buf[..made]).map_err(Ok)?;
            if status == Status::StreamEnd {
                return Ok(());
            }
            if flush == FlushCompress::None && at == n && made < buf.len() {
                break;
            }
            if used == 0 && made == 0 {
                return Err(Err("zlib made no progress".into()));
            }
        }
    }
}

/// Reads into `buf` until it is full or the input ends; returns how much
/// (the zlib and xz encoders take their input a block at a time).
pub(crate) fn read_full(input: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(got) => n += got,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Deflates what `plain` reads with `params` (a known encoder, level 1 to
/// 9), handing the output to `sink` as it comes; stops at the sink's first
/// error.
fn encode_to<E>(
    params: ZlibParams,
    plain: &mut dyn Read,
    sink: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), Result<E, String>> {
    match params.encoder {
        GNU_GZIP_ENCODER => crate::gnu::deflate_to(params.level, plain, sink)
            .map_err(|e| e.map_err(|e| e.to_string())),
        GO_FLATE_ENCODER => crate::goflate::deflate_to(params.level, plain, sink)
            .map_err(|e| e.map_err(|e| e.to_string())),
        _ => deflate_to(params.level, plain, sink),
    }
}

/// Compressed bytes compared before a candidate is taken when the caller
/// checks the whole object anyway (`Options::check_streams` off): 1 MiB.
pub(crate) const PREFIX: usize = 1 << 20;

/// Whether `params` deflate `plain` into exactly `compressed`, or, with
/// `prefix`, into output that starts with the first `prefix` bytes of
/// `compressed` (the caller rebuilds and checks the rest); stops at the first
/// piece of output that differs.
fn reproduces(params: ZlibParams, plain: &[u8], compressed: &[u8], prefix: Option<usize>) -> bool {
    let enough = prefix.unwrap_or(usize::MAX).min(compressed.len());
    let mut at = 0usize;
    let done = encode_to(params, &mut &plain[..], |b| {
        match compressed.get(at..at + b.len()) {
            Some(want) if want == b => {
                at += b.len();
                if at >= enough && at < compressed.len() {
                    // Enough compared: stop here (Err stops the encoder).
                    return Err(true);
                }
                Ok(())
            }
            _ => Err(false),
        }
    });
    match done {
        Ok(()) => at == compressed.len(),
        Err(Ok(stopped_early)) => stopped_early,
        Err(Err(_)) => false,
    }
}

/// The search for the params that rebuild an object's deflate streams; one
/// per object (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct DeflateSearch {
    /// What rebuilt the previous stream.
    last: Option<ZlibParams>,
    /// Per encoder of [`ENCODERS`]: failed every level tried on a stream.
    given_up: [bool; ENCODERS.len()],
}

impl DeflateSearch {
    /// The params with which an encoder of this build rebuilds `compressed`
    /// (one whole raw deflate stream) from `plain` byte for byte, if any;
    /// encoder 3 (Go's) only with `go_encoder`;
    /// with `prefix`, the first whose output starts with that many bytes of
    /// `compressed` (the caller then rebuilds and checks the whole object).
    pub(crate) fn find(
        &mut self,
        compressed: &[u8],
        plain: &[u8],
        hint: LevelHint,
        prefix: Option<usize>,
        go_encoder: bool,
    ) -> Option<ZlibParams> {
        if let Some(last) = self.last {
            if reproduces(last, plain, compressed, prefix) {
                return Some(last);
            }
        }
        for (i, encoder) in ENCODERS.into_iter().enumerate() {
            if self.given_up[i]
                || (encoder == GO_FLATE_ENCODER && !go_encoder)
                || !encoder_ok(encoder)
            {
                continue;
            }
            let found = hint
                .levels(encoder)
                .iter()
                .map(|&level| ZlibParams { encoder, level })
                .filter(|&p| Some(p) != self.last)
                .find(|&p| reproduces(p, plain, compressed, prefix));
            if found.is_some() {
                self.last = found;
                return found;
            }
            self.given_up[i] = true;
        }
        None
    }
}

/// Deflates what `plain` reads with `params` into `out`, which must come to
/// exactly `compressed_len` bytes: never more is written. A read error is
/// [`ZlibError::Zlib`] (a caller that tells it apart wraps its reader).
pub(crate) fn rebuild(
    params: &ZlibParams,
    plain: &mut dyn Read,
    compressed_len: u64,
    out: &mut impl Write,
) -> Result<(), ZlibError> {
    if !ENCODERS.contains(&params.encoder) {
        return Err(ZlibError::UnknownEncoder {
            found: params.encoder,
        });
    }
    if !(1..=9).contains(&params.level) {
        return Err(ZlibError::BadLevel(params.level));
    }
    if !encoder_ok(params.encoder) {
        return Err(ZlibError::EncoderMismatch {
            encoder: params.encoder,
        });
    }
    let mut written = 0u64;
    encode_to(*params, plain, |b| {
        written += b.len() as u64;
        if written > compressed_len {
            return Err(ZlibError::TooLong {
                declared: compressed_len,
            });
        }
        out.write_all(b).map_err(ZlibError::Write)
    })
    .map_err(|e| e.unwrap_or_else(ZlibError::Zlib))?;
    if written != compressed_len {
        return Err(ZlibError::TooShort {
            declared: compressed_len,
            produced: written,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Prints the known answers of the linked zlib (to pin a new encoder).
    #[test]
    fn known_answers_hold() {
        let plain = sample();
        for (level, _, _) in KNOWN_ANSWERS {
            let mut out = Vec::new();
            deflate_to(level, &mut &plain[..], |b| {
                out.extend_from_slice(b);
                Ok::<(), ()>(())
            })
            .unwrap();
            let mut sum = Crc::new();
            sum.update(&out);
            println!("({level}, {}, {:#010x}),", out.len(), sum.sum());
        }
        assert!(zlib_ok(), "the linked zlib is not encoder 1");
    }
}
