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
//! tests compare both with their originals on varied inputs.

pub(crate) mod gnu;
mod matcher;
mod trees;

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
