//! Ferry's own deflate encoder, in two flavours whose output is byte for
//! byte that of an encoder upstream artifacts are made with: GNU gzip's
//! deflate (encoder 2, [`gnu`]) and zlib's (encoder 1, [`crate::zlib`]).
//!
//! zlib and GNU gzip deflate with the same algorithm (their `deflate.c` and
//! `trees.c` come from the same authors), yet neither reproduces the
//! other's streams: gzip ends blocks at 32 Ki symbols, or earlier by a guess
//! every 4096 symbols; zlib (memLevel 8) at 16 Ki - 1 symbols; and they read
//! their input and finish the stream differently. [`matcher`] finds the
//! matches (with other hash chains that find the same matches faster than
//! the C code from level 5 up) and [`trees`] encodes the blocks, each
//! parameterised by the [`Flavour`] where the two differ (listed in their
//! module docs). Only the raw deflate stream is made here.
//!
//! Each flavour is checked against known answers of the C original (the real
//! `/bin/gzip`, the C zlib) before it analyses or rebuilds anything; the
//! tests compare both with their originals on varied inputs. A stream can
//! also be deflated in pieces between clean block boundaries ([`piece`]):
//! recipes do so for GNU gzip's streams ([`crate::cuts`]).

pub(crate) mod gnu;
mod longer;
mod matcher;
mod trees;
pub(crate) mod zlibng;

use std::io::Read;

pub(crate) use matcher::Boundary;

/// zlib's input step: the C zlib whose streams encoder 1 names was handed
/// its input `STEP` bytes per call, finishing with the first shorter piece
/// ([`crate::zlib`] did so before this encoder replaced it). zlib fills its
/// window only from what it was handed, so the pieces are modelled as they
/// were (64 KiB, a window's worth, refills the window as a whole read does;
/// this model does not rely on that).
pub(crate) const STEP: usize = 64 << 10;

/// Whose deflate the encoder reproduces (see [`matcher`] for where they
/// differ, [`trees`] for where their blocks end).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flavour {
    /// GNU gzip's, 1.6 to 1.13, without `--rsyncable` (encoder 2).
    Gnu,
    /// zlib's, 1.2.12 to 1.4: raw, 32 KiB window, memLevel 8, default
    /// strategy, handed its input `STEP` bytes at a time (encoder 1).
    Zlib,
}

/// Deflates what `plain` reads as `gzip -level` does, or as zlib at `level`
/// does (level 1 to 9), handing the output to `sink` block by block (the
/// input is read as gzip reads a file, a window's worth at a time, or as
/// zlib is handed it, `STEP` bytes at a time: the output does not depend on
/// how `plain` hands it over); stops at the sink's first error (`Err(Ok)`),
/// or at a read error (`Err(Err)`, once the output up to there was handed
/// over).
pub(crate) fn deflate_to<E>(
    flavour: Flavour,
    level: u8,
    plain: &mut dyn Read,
    mut sink: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), Result<E, std::io::Error>> {
    let mut m = matcher::Matcher::new(flavour, level, plain);
    let mut failed = None;
    m.run(|out, _| {
        let r = sink(out);
        out.clear();
        match r {
            Ok(()) => true,
            Err(e) => {
                failed = Some(e);
                false
            }
        }
    });
    match (failed, m.read_error.take()) {
        (Some(e), _) => Err(Ok(e)),
        (None, Some(e)) => Err(Err(e)),
        (None, None) => Ok(()),
    }
}

/// Deflates `plain` as `flavour` does at `level` and compares the output with
/// `compressed` as it comes; calls `each` with every block boundary passed
/// (the last block's end excepted). True when the whole output is exactly
/// `compressed`; false at the first difference. (The analysis reads the
/// boundaries off the stream's blocks instead; this is the tests' reference.)
#[cfg(test)]
pub(crate) fn boundaries(
    flavour: Flavour,
    level: u8,
    plain: &[u8],
    compressed: &[u8],
    mut each: impl FnMut(&Boundary),
) -> bool {
    let mut input = plain;
    let mut m = matcher::Matcher::new(flavour, level, &mut input);
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
/// Recipes cut GNU gzip's streams only ([`crate::cuts`]); zlib's flavour
/// resumes as well (its tests), but no recipe cuts a zlib stream yet. The
/// rebuild calls [`piece_copying`] (with or without a base's parse).
#[cfg(test)]
pub(crate) fn piece(
    flavour: Flavour,
    level: u8,
    text: &[u8],
    text_at: u64,
    from: Option<&Boundary>,
    to: Option<&Boundary>,
    out: &mut Vec<u8>,
) -> Result<(), PieceError> {
    piece_copying(flavour, level, text, text_at, from, to, out, None).map(|_| ())
}

/// Where plain offset `plain` of a stream is in a piece's `text` (its plain
/// bytes from offset `text_at`), or [`PieceError::Outside`].
pub(crate) fn text_offset(text: &[u8], text_at: u64, plain: u64) -> Result<usize, PieceError> {
    plain
        .checked_sub(text_at)
        .and_then(|o| usize::try_from(o).ok())
        .filter(|&o| o <= text.len())
        .ok_or(PieceError::Outside(plain))
}

/// [`piece`], copying a base's parse where it is this stream's (`copier`,
/// made for the same `text`; see [`crate::reuse`]); gives what it copied.
#[allow(clippy::too_many_arguments)]
pub(crate) fn piece_copying(
    flavour: Flavour,
    level: u8,
    text: &[u8],
    text_at: u64,
    from: Option<&Boundary>,
    to: Option<&Boundary>,
    out: &mut Vec<u8>,
    copier: Option<crate::reuse::Copier<'_>>,
) -> Result<crate::reuse::CopyStats, PieceError> {
    let start = text_offset(text, text_at, from.map_or(0, |b| b.plain))?;
    let mut input = &text[start..];
    let mut m = match from {
        Some(b) => matcher::Matcher::resume(flavour, level, &mut input, &text[..start], b),
        None => matcher::Matcher::new(flavour, level, &mut input),
    };
    // Copying is modelled for GNU gzip's lazy matching only.
    if flavour == Flavour::Gnu && level >= 4 {
        m.copier = copier;
    }
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
    let stats = m.copier.as_ref().map(|c| c.stats).unwrap_or_default();
    let Some(to) = to else {
        return Ok(stats);
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
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plain bytes like a tar of sources and binaries: edited text, runs,
    /// incompressible stretches.
    fn mixed(len: usize) -> Vec<u8> {
        let text = crate::zlib::sample();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut out = Vec::with_capacity(len + 4096);
        while out.len() < len {
            let r = next();
            match r % 8 {
                0 => out.extend((0..(r >> 8) % 3000).map(|_| next() as u8)),
                1 => out.extend(std::iter::repeat_n(
                    (r >> 8) as u8,
                    (r >> 16) as usize % 700,
                )),
                _ => {
                    let at = (r >> 8) as usize % (text.len() - 2000);
                    out.extend_from_slice(&text[at..at + 20 + (r >> 32) as usize % 1500]);
                }
            }
        }
        out.truncate(len);
        out
    }

    /// zlib's flavour resumes at its clean block boundaries as GNU gzip's
    /// does: every piece between two clean boundaries (and from the start
    /// to the first, from the last to the end) rebuilds its bytes of the
    /// whole stream from the plain bytes around it (32 KiB before, 65 KiB
    /// after, as [`crate::cuts`] gives a piece). Not used by any recipe
    /// yet: what cutting a zlib stream would stand on.
    #[test]
    fn zlib_pieces_rebuild_between_clean_boundaries() {
        let plain = mixed(6 << 20);
        for level in [4u8, 6, 9] {
            let mut whole = Vec::new();
            deflate_to(Flavour::Zlib, level, &mut &plain[..], |b| {
                whole.extend_from_slice(b);
                Ok::<(), ()>(())
            })
            .unwrap();
            let (mut all, mut clean) = (0usize, Vec::new());
            assert!(boundaries(Flavour::Zlib, level, &plain, &whole, |b| {
                all += 1;
                if b.clean {
                    clean.push(*b);
                }
            }));
            assert!(
                clean.len() * 4 > all,
                "level {level}: {} of {all}",
                clean.len()
            );
            let mut cuts: Vec<Option<&Boundary>> = vec![None];
            cuts.extend(clean.iter().map(Some));
            cuts.push(None);
            for pair in cuts.windows(2) {
                let (from, to) = (pair[0], pair[1]);
                let start = from.map_or(0, |b| b.plain - (32 << 10).min(u64::from(b.strstart)));
                let end = to.map_or(plain.len() as u64, |b| {
                    (b.plain + (64 << 10) + 1024).min(plain.len() as u64)
                });
                let mut out = Vec::new();
                let text = &plain[start as usize..end as usize];
                piece(Flavour::Zlib, level, text, start, from, to, &mut out).unwrap();
                let (os, oe) = (
                    from.map_or(0, |b| b.bit / 8) as usize,
                    to.map_or(whole.len() as u64, |b| b.bit / 8) as usize,
                );
                assert!(
                    out == whole[os..oe],
                    "level {level}: the piece from {:?} to {:?} differs",
                    from.map(|b| b.plain),
                    to.map(|b| b.plain)
                );
            }
            eprintln!(
                "level {level}: {} of {all} boundaries clean, all cut",
                clean.len()
            );
        }
    }
}
