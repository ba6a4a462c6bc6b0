//! The encoder's GNU gzip flavour, whose output is GNU gzip's byte for byte:
//! encoder 2 of [`Segment::Zlib`](crate::Segment::Zlib).
//!
//! GNU gzip (`gzip -1` to `-9`, so `tar | gzip` layers, `helm package` charts
//! made with it, Debian's `.gz` files) does not deflate like zlib, although
//! both come from the same code: gzip cuts blocks at 32 Ki symbols (zlib at
//! 16 Ki), guesses every 4096 symbols whether to end a block early, hashes
//! with 15 bits, and slides a 64 KiB window. No zlib level reproduces its
//! streams. The encoder ([`super`]) rewrites that algorithm in Rust (gzip 1.6
//! to 1.13 give the same output; `--rsyncable` is not modelled): its matcher
//! finds the matches as gzip's `deflate.c` does, its trees encode blocks as
//! gzip's `trees.c` does. Only the raw deflate stream is made; the gzip
//! header and trailer are literal bytes of the recipe. Here: its known
//! answers, and the pieces of a stream cut at block boundaries
//! ([`crate::cuts`]).
//!
//! Like encoder 1, it is checked against known answers (made by the real
//! `/bin/gzip`) before it analyses or rebuilds anything ([`encoder_ok`]).

use std::sync::OnceLock;

use flate2::Crc;

use super::{deflate_to, matcher, Boundary, Flavour};

/// The encoder id of GNU gzip's deflate in [`crate::zlib::ZlibParams`].
pub const GNU_GZIP_ENCODER: u8 = 2;

/// (level, deflated length, CRC-32 of the deflated bytes) of
/// [`crate::zlib::sample`] as GNU gzip 1.12 deflates it (`gzip -N -n`, its
/// 10-byte header and 8-byte trailer removed).
const KNOWN_ANSWERS: [(u8, u64, u32); 4] = [
    (1, 62_156, 0x448e_6537),
    (3, 54_640, 0x86d9_dff7),
    (6, 49_064, 0xeb6d_9783),
    (9, 46_578, 0x1647_bc64),
];

/// Deflates `plain` as `gzip -level` does and compares the output with
/// `compressed` as it comes; calls `each` with every block boundary passed
/// (the last block's end excepted). True when the whole output is exactly
/// `compressed`; false at the first difference. (The analysis reads the
/// boundaries off the stream's blocks instead; this is the tests' reference.)
#[cfg(test)]
pub(crate) fn boundaries(
    level: u8,
    plain: &[u8],
    compressed: &[u8],
    mut each: impl FnMut(&Boundary),
) -> bool {
    let mut input = plain;
    let mut m = matcher::Matcher::new(Flavour::Gnu, level, &mut input);
    let mut at = 0usize;
    let mut same = true;
    m.run(|out, boundary| {
        same = compressed.get(at..at + out.len()) == Some(&out[..]);
        at += out.len();
        out.clear();
        if let (true, Some(b)) = (same, boundary) {
            each(&b);
        }
        same
    });
    same && at == compressed.len() && m.read_error.is_none()
}

/// Why a piece of a cut stream did not rebuild.
#[derive(Debug, thiserror::Error)]
pub enum PieceError {
    /// The piece's plain bytes do not reach its cut.
    #[error("the cut at plain offset {0} is outside the bytes given")]
    Outside(u64),
    /// The encoder passed the end cut without a block boundary there, or at
    /// another bit offset, window position or partial byte.
    #[error(
        "no block boundary as recorded at plain offset {plain}, bit {bit} (the encoder's: {found})"
    )]
    NotReached {
        /// The cut's plain offset.
        plain: u64,
        /// The cut's bit offset.
        bit: u64,
        /// Where the encoder's boundary was instead.
        found: String,
    },
    /// The encoder's output at the end cut's boundary does not end in the
    /// recorded partial byte.
    #[error("the bits before the cut at plain offset {0} differ from the recorded partial byte")]
    Partial(u64),
    /// Reading the plain bytes failed (an in-memory slice does not).
    #[error("reading the plain bytes failed: {0}")]
    Read(#[source] std::io::Error),
    /// The thread deflating the piece ended without an answer.
    #[error("the thread deflating it ended without an answer")]
    Lost,
}

/// Deflates one piece of a stream cut at clean block boundaries: from `from`
/// (the stream's start when `None`, then `text` starts there) to `to` (the
/// stream's end when `None`), appending the piece's output to `out`: the
/// stream's bytes from `from.bit / 8` (its first byte holds `from`'s partial
/// bits) to `to.bit / 8` (without `to`'s partial byte, which the next piece
/// writes). `text` is the stream's plain bytes from offset `text_at`: from
/// at least 32 KiB (or the window's `strstart`) before `from`, to at least
/// 64 KiB past `to` or the stream's end. The encoder must reach `to` exactly
/// as recorded (plain offset, bit offset, window position, partial bits).
pub(crate) fn piece(
    level: u8,
    text: &[u8],
    text_at: u64,
    from: Option<&Boundary>,
    to: Option<&Boundary>,
    out: &mut Vec<u8>,
) -> Result<(), PieceError> {
    let local = |plain: u64| {
        plain
            .checked_sub(text_at)
            .and_then(|o| usize::try_from(o).ok())
            .filter(|&o| o <= text.len())
            .ok_or(PieceError::Outside(plain))
    };
    let start = match from {
        Some(b) => local(b.plain)?,
        None => local(0)?,
    };
    let mut input = &text[start..];
    let mut m = match from {
        Some(b) => matcher::Matcher::resume(level, &mut input, &text[..start], b),
        None => matcher::Matcher::new(Flavour::Gnu, level, &mut input),
    };
    let mut reached = None;
    m.run(|o, boundary| {
        out.extend_from_slice(o);
        o.clear();
        match (to, boundary) {
            (Some(to), Some(b)) if b.plain >= to.plain => {
                reached = Some(b);
                false
            }
            _ => true,
        }
    });
    if let Some(e) = m.read_error.take() {
        return Err(PieceError::Read(e));
    }
    let Some(to) = to else {
        return Ok(());
    };
    let found = match reached {
        Some(b) if (b.plain, b.bit, b.strstart) == (to.plain, to.bit, to.strstart) => None,
        Some(b) => Some(format!(
            "plain offset {}, bit {}, window position {} (recorded: {})",
            b.plain, b.bit, b.strstart, to.strstart
        )),
        None => Some("none: the stream ended".to_string()),
    };
    if let Some(found) = found {
        return Err(PieceError::NotReached {
            plain: to.plain,
            bit: to.bit,
            found,
        });
    }
    let (bits, n) = m.trees.bits.whole_bytes();
    out.append(&mut m.trees.bits.out);
    if u64::from(n) != to.bit % 8 || bits != to.partial {
        return Err(PieceError::Partial(to.plain));
    }
    Ok(())
}

/// The deflated stream and its CRC-32.
fn deflated(level: u8, plain: &[u8]) -> (u64, u32) {
    let mut len = 0u64;
    let mut sum = Crc::new();
    let _ = deflate_to(Flavour::Gnu, level, &mut &plain[..], |b| {
        sum.update(b);
        len += b.len() as u64;
        Ok::<(), ()>(())
    });
    (len, sum.sum())
}

/// Whether this build's encoder gives GNU gzip's known answers (computed once).
pub(crate) fn encoder_ok() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        let plain = crate::zlib::sample();
        KNOWN_ANSWERS
            .iter()
            .all(|&(level, len, crc)| deflated(level, &plain) == (len, crc))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Prints this encoder's answers on the sample (to compare with gzip's).
    #[test]
    fn known_answers_hold() {
        let plain = crate::zlib::sample();
        for (level, _, _) in KNOWN_ANSWERS {
            let (len, crc) = deflated(level, &plain);
            println!("({level}, {len}, {crc:#010x}),");
        }
        assert!(
            encoder_ok(),
            "the encoder does not give gzip's known answers"
        );
    }

    /// A driver to measure the encoder (callgrind, perf): deflates the file
    /// named by `GNU_BENCH_FILE` at `GNU_BENCH_LEVEL` (6 unless given) and,
    /// with `GNU_BENCH_OUT`, writes the raw deflate stream there.
    ///
    ///     GNU_BENCH_FILE=x cargo test --release -p ferry-recipe --lib deflate::gnu::tests::bench -- --ignored
    #[test]
    #[ignore = "a measuring driver, run by hand"]
    fn bench() {
        let Ok(path) = std::env::var("GNU_BENCH_FILE") else {
            return;
        };
        let level = std::env::var("GNU_BENCH_LEVEL")
            .ok()
            .and_then(|l| l.parse().ok())
            .unwrap_or(6);
        let mut file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
        let mut out = Vec::new();
        deflate_to(Flavour::Gnu, level, &mut file, |b| {
            out.extend_from_slice(b);
            Ok::<(), ()>(())
        })
        .unwrap();
        println!("{} bytes deflated", out.len());
        if let Ok(to) = std::env::var("GNU_BENCH_OUT") {
            std::fs::write(to, &out).unwrap();
        }
    }
}
