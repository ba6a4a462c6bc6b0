//! A deflate encoder whose output is Go's `compress/flate`, byte for byte:
//! encoder 3 of [`Segment::Zlib`](crate::Segment::Zlib).
//!
//! Container image layers written by Go's standard library are gzipped
//! by it (`gzip.NewWriter`, level 6 = `DefaultCompression`, sometimes
//! `BestSpeed` or `BestCompression`): Docker's (moby's `pkg/archive`), and
//! other Go tools that use `compress/gzip`. podman, buildah and skopeo
//! (containers/image) use klauspost/pgzip instead (encoder 5,
//! `crate::kpflate`). Go's deflate is its own design (not
//! zlib's): hash chains over 4-byte hashes of 17 bits, no 3-byte matches,
//! 4-byte matches only within 4096 bytes, blocks of 16,384 tokens, its own
//! length-limited Huffman codes (one-symbol codes of length 1, which
//! preflate-rs refuses), a Snappy-style matcher at level 1, and every stream
//! ends with an empty final stored block. This module rewrites, in Rust,
//! what Go 1.19's `flate.NewWriter(w, level)` writes for an input followed
//! by `Close()`, at levels 1 to 9 (and -2, `HuffmanOnly`, not used by the
//! search): [`lazy`] is `deflate.go`'s matcher (levels 2 to 9), [`fast`]
//! is `deflatefast.go` and `encSpeed` (level 1), [`huffman`] is
//! `huffman_bit_writer.go` and `huffman_code.go`. Only the raw deflate
//! stream is made here; a gzip member's header and trailer are literal
//! bytes of the recipe.
//!
//! What is modelled is one `Write` of the whole input (or writes of any
//! multiple of 32 KiB, as `io.Copy` from a file makes, which give the same
//! bytes): Go processes its window between writes, and where it slides the
//! window can move by one position when writes end at other offsets; the
//! only effect is whether a block that began more than 32 KiB before the
//! slide may be stored, so other write sizes give the same output except
//! in that corner (not seen in the tests, which also write in 1, 100,
//! 4096-byte and random pieces). `Flush` (sync flush) and
//! `NewWriterDict` are not modelled. Tested against Go 1.19 only. The
//! level-1 matcher and `HuffmanOnly` date from Go 1.7 and the matching
//! across level-1 blocks from Go 1.8 (older Go differs at level 1); the
//! fixes of Go issues 18636 and 34121 (level 1 past 2 GiB) are modelled as
//! 1.19 has them. Whether later Go releases changed the output is not
//! checked here: the known answers make a differing encoder refuse rather
//! than rebuild other bytes, but a layer made by another Go would simply
//! not be reproduced.
//!
//! Like zlib and GNU gzip, it is checked against known answers (made by the
//! real Go) before it analyses or rebuilds anything (`zlib::encoder_ok`).

pub(crate) mod cut;
mod fast;
pub(crate) mod huffman;
mod lazy;

use std::io::Read;

/// The encoder id of Go's `compress/flate` in [`crate::zlib::ZlibParams`].
pub const GO_FLATE_ENCODER: u8 = 3;

/// The level of Go's `HuffmanOnly` (-2) as this module takes it: no
/// matching, every 65,535 bytes one block of literals. Not a level the
/// search tries or a recipe names.
#[cfg(test)]
pub(crate) const HUFFMAN_ONLY: u8 = 0xfe;

/// Plain bytes read at a time.
const STEP: usize = 64 << 10;

/// (level, deflated length, CRC-32 of the deflated bytes) of
/// [`crate::zlib::sample`] as Go 1.19's `compress/flate` deflates it
/// (`flate.NewWriter(w, level)`, one `Write`, `Close`).
pub(crate) const KNOWN_ANSWERS: [(u8, u64, u32); 4] = [
    (1, 63_961, 0x09d8_cb9f),
    (3, 54_419, 0x34a6_645b),
    (6, 49_078, 0xb659_4d8f),
    (9, 46_758, 0x6721_7094),
];

/// The matcher of a level.
enum Matcher {
    /// Levels 2 to 9.
    Lazy(Box<lazy::Lazy>),
    /// Level 1, or Huffman only.
    Fast(Box<fast::Fast>),
}

impl Matcher {
    fn step(&mut self, sync: bool, w: &mut huffman::BlockWriter) {
        match self {
            Matcher::Lazy(m) => m.step(sync, w),
            Matcher::Fast(m) => m.step(sync, w),
        }
    }

    fn fill(&mut self, b: &[u8]) -> usize {
        match self {
            Matcher::Lazy(m) => m.fill(b),
            Matcher::Fast(m) => m.fill(b),
        }
    }

    fn full(&self) -> bool {
        match self {
            Matcher::Lazy(m) => m.full(),
            Matcher::Fast(m) => m.full(),
        }
    }
}

/// Deflates what `plain` reads as Go's `flate.NewWriter(w, level)` does
/// (level 1 to 9) when given the whole input and closed, handing the output
/// to `sink` block by block; stops at the sink's first error (`Err(Ok)`),
/// or at a read error (`Err(Err)`).
pub(crate) fn deflate_to<E>(
    level: u8,
    plain: &mut dyn Read,
    mut sink: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), Result<E, std::io::Error>> {
    let mut m = match level {
        1 => Matcher::Fast(Box::new(fast::Fast::new(false))),
        0xfe => Matcher::Fast(Box::new(fast::Fast::new(true))),
        _ => Matcher::Lazy(Box::new(lazy::Lazy::new(level))),
    };
    let mut w = huffman::BlockWriter::new();
    let mut buf = vec![0u8; STEP];
    let (mut at, mut have) = (0usize, 0usize);
    let mut hand = |w: &mut huffman::BlockWriter| {
        let r = if w.out.is_empty() {
            Ok(())
        } else {
            sink(&w.out)
        };
        w.out.clear();
        r.map_err(Ok)
    };
    'input: loop {
        m.step(false, &mut w);
        hand(&mut w)?;
        // Go's `fill` with the rest of the input: up to a full window.
        loop {
            if at == have {
                have = crate::zlib::read_full(plain, &mut buf).map_err(Err)?;
                at = 0;
                if have == 0 {
                    break 'input;
                }
            }
            at += m.fill(&buf[at..have]);
            if m.full() {
                break;
            }
        }
    }
    m.step(true, &mut w);
    w.finish();
    hand(&mut w)
}

#[cfg(test)]
pub(crate) mod tests;
