//! Deflate streams that zlib reproduces byte for byte.
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

use std::io::Write;
use std::sync::OnceLock;

use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use serde::{Deserialize, Serialize};

/// The encoder this build has: zlib's deflate (raw, 32 KiB window, memLevel 8,
/// default strategy) as zlib 1.2.12 to 1.4 make it, whose output the
/// [`KNOWN_ANSWERS`] pin.
pub const ZLIB_ENCODER: u8 = 1;

/// How a [`Segment::Zlib`](crate::Segment::Zlib) deflates its plain bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZlibParams {
    /// Which encoder's output: [`ZLIB_ENCODER`] is the only one this build has.
    pub encoder: u8,
    /// zlib's compression level, 1 to 9.
    pub level: u8,
}

/// Why a zlib segment did not rebuild.
#[derive(Debug, thiserror::Error)]
pub enum ZlibError {
    /// The recipe names an encoder this build does not have.
    #[error("deflate encoder {found} is unknown to this build (it has encoder {ZLIB_ENCODER})")]
    UnknownEncoder {
        /// The encoder id the recipe names.
        found: u8,
    },
    /// The zlib linked into this build does not give encoder 1's known answers.
    #[error(
        "the linked zlib's deflate output differs from encoder {ZLIB_ENCODER}'s known answers"
    )]
    EncoderMismatch,
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

/// Levels in the order the search tries them: zlib's default, then the most
/// common explicit choice, then the rest.
const LEVELS: [u8; 9] = [6, 9, 1, 2, 3, 4, 5, 7, 8];

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
fn sample() -> Vec<u8> {
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

/// Whether the linked zlib gives encoder 1's known answers (computed once).
pub(crate) fn encoder_ok() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        let plain = sample();
        KNOWN_ANSWERS.iter().all(|&(level, len, crc)| {
            let mut out = Vec::new();
            let mut sum = Crc::new();
            let done = deflate_to(level, &plain, |b| {
                sum.update(b);
                out.extend_from_slice(b);
                Ok::<(), ()>(())
            });
            done.is_ok() && out.len() as u64 == len && sum.sum() == crc
        })
    })
}

/// Deflates `plain` (raw, zlib level `level`), handing each piece of output to
/// `sink` as it comes; stops at the sink's first error.
fn deflate_to<E>(
    level: u8,
    plain: &[u8],
    mut sink: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), Result<E, String>> {
    let mut c = Compress::new(Compression::new(u32::from(level)), false);
    let mut buf = vec![0u8; STEP + 1024];
    let mut at = 0usize;
    loop {
        let end = plain.len().min(at + STEP);
        let flush = if end == plain.len() {
            FlushCompress::Finish
        } else {
            FlushCompress::None
        };
        let (in0, out0) = (c.total_in(), c.total_out());
        let status = c
            .compress(&plain[at..end], &mut buf, flush)
            .map_err(|e| Err(e.to_string()))?;
        let used = (c.total_in() - in0) as usize;
        let made = (c.total_out() - out0) as usize;
        at += used;
        sink(&buf[..made]).map_err(Ok)?;
        if status == Status::StreamEnd {
            return Ok(());
        }
        if used == 0 && made == 0 {
            return Err(Err("zlib made no progress".into()));
        }
    }
}

/// Whether zlib at `level` deflates `plain` into exactly `compressed`; stops at
/// the first byte that differs.
fn reproduces(level: u8, plain: &[u8], compressed: &[u8]) -> bool {
    let mut at = 0usize;
    let done = deflate_to(level, plain, |b| match compressed.get(at..at + b.len()) {
        Some(want) if want == b => {
            at += b.len();
            Ok(())
        }
        _ => Err(()),
    });
    done.is_ok() && at == compressed.len()
}

/// The params with which this build's zlib rebuilds `compressed` (one whole
/// raw deflate stream) from `plain` byte for byte, if any level does.
pub(crate) fn find_params(compressed: &[u8], plain: &[u8]) -> Option<ZlibParams> {
    if !encoder_ok() {
        return None;
    }
    LEVELS
        .into_iter()
        .find(|&level| reproduces(level, plain, compressed))
        .map(|level| ZlibParams {
            encoder: ZLIB_ENCODER,
            level,
        })
}

/// Deflates `plain` with `params` into `out`, which must come to exactly
/// `compressed_len` bytes: never more is written.
pub(crate) fn rebuild(
    params: &ZlibParams,
    plain: &[u8],
    compressed_len: u64,
    out: &mut impl Write,
) -> Result<(), ZlibError> {
    if params.encoder != ZLIB_ENCODER {
        return Err(ZlibError::UnknownEncoder {
            found: params.encoder,
        });
    }
    if !(1..=9).contains(&params.level) {
        return Err(ZlibError::BadLevel(params.level));
    }
    if !encoder_ok() {
        return Err(ZlibError::EncoderMismatch);
    }
    let mut written = 0u64;
    deflate_to(params.level, plain, |b| {
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
            deflate_to(level, &plain, |b| {
                out.extend_from_slice(b);
                Ok::<(), ()>(())
            })
            .unwrap();
            let mut sum = Crc::new();
            sum.update(&out);
            println!("({level}, {}, {:#010x}),", out.len(), sum.sum());
        }
        assert!(encoder_ok(), "the linked zlib is not encoder 1");
    }
}
