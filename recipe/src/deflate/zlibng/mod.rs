//! A deflate encoder whose output is zlib-ng's, byte for byte: encoder 6 of
//! [`Segment::Zlib`](crate::Segment::Zlib).
//!
//! zlib-ng (the zlib fork with SIMD code and its own matchers) is the system
//! zlib of Fedora 40 on and RHEL 10 (`zlib-ng-compat`), CPython 3.14's on
//! Windows, and what some projects build their wheels with: pillow 11.1.0's
//! manylinux wheels were deflated by zlib-ng 2.2.2 (`--zlib-compat`, so
//! Python's `zipfile` used it). Its output differs from zlib's at every
//! level and between its own releases.
//!
//! What is modelled: `deflateInit2(level, Z_DEFLATED, -15, 8,
//! Z_DEFAULT_STRATEGY)` (raw; a container's header and trailer stay literal
//! bytes of the recipe), the input handed over as [`Feed`] says, then one
//! `deflate(Z_FINISH)` without input, each call's output buffer grown as
//! [`OutBuf`] says (as Python's `zlib.compressobj` does: `compress(data)`
//! then `flush()`). The buffer matters at levels 5 and 6: when it fills at
//! a block's end, `deflate()` returns and `deflate_medium` forgets the match
//! it had looked ahead. The recipe's level byte names one of [`PROFILES`].
//! Levels 1 (`deflate_quick`), 2 (`deflate_fast`), 3 to 6 (`deflate_medium`),
//! 7 to 8 (`deflate_slow` with `longest_match`) and 9 (`deflate_slow` with
//! `longest_match_slow` and the rolling hash). Versions ([`Version`]): 2.2.2 (and 2.2.0 to 2.2.4, whose
//! deflate code is the same), 2.2.5 (medium inserts no strings of matches
//! longer than 16 times `max_lazy`) and 2.3 (the match search stops at a
//! match reaching the input's end). Only the x86-64/generic code paths
//! (SIMD variants give the same output; IBM Z's DFLTCC does not and is not
//! modelled). Not modelled: other strategies, windowBits or memLevel,
//! `deflateParams`, dictionaries, sync flushes.
//!
//! How the input is handed over changes the output (zlib-ng inserts the
//! string before `strstart` each time `fill_window` reads input, and
//! medium's look-ahead stops where a call's input ends): compressing
//! everything in one call and in 8 KiB calls (`zipfile.ZipFile.write`)
//! give different streams at levels 1, 5 and 6 for inputs over 8 KiB.
//!
//! The Huffman side is zlib's (`trees.c` kept its algorithm): blocks of
//! 16,383 symbols, the same trees and the same choice of stored, fixed or
//! dynamic block; it is Ferry's zlib engine's ([`crate::deflate::trees`]).
//! Level 1 instead writes fixed-code blocks as it goes, one per call.

mod lz;
mod strategies;

use std::io::Read;

pub(crate) use lz::OutBuf;
use lz::{Config, Input, Lz};
use strategies::Done;

/// The encoder id of zlib-ng's deflate in [`crate::zlib::ZlibParams`].
pub const ZLIB_NG_ENCODER: u8 = 6;

/// The zlib-ng releases whose deflate output is modelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Version {
    /// 2.2.2 (pillow 11.1.0's wheels).
    V2_2_2,
    /// 2.2.5 (the `zlib-ng` 1.0.0 Python package).
    V2_2_5,
    /// 2.3 (2.3.3: the `zlib-ng` 1.1.0 Python package).
    V2_3,
}

/// How the input is handed to `deflate()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Feed {
    /// All of it in one call (`compressobj().compress(data)`,
    /// `zipfile.writestr`).
    Whole,
    /// 8 KiB per call (`zipfile.ZipFile.write` of a file).
    Pieces8K,
}

/// zlib-ng's `configuration_table` (the default build, with the quick and
/// medium strategies): good, lazy, nice, chain.
fn config(level: u8) -> Config {
    let (good, lazy, nice, chain) = match level {
        1 => (0, 0, 0, 0),
        2 => (4, 4, 8, 4),
        3 => (4, 6, 16, 6),
        4 => (4, 12, 32, 24),
        5 => (8, 16, 32, 32),
        6 => (8, 16, 128, 128),
        7 => (8, 32, 128, 256),
        8 => (32, 128, 258, 1024),
        _ => (32, 258, 258, 4096),
    };
    Config {
        good,
        lazy,
        nice,
        chain,
    }
}

/// Whether `level` is one this module models (1 to 9).
pub(crate) fn level_modelled(level: u8) -> bool {
    (1..=9).contains(&level)
}

/// The (version, feed, output buffer) combinations a recipe may name: the
/// level byte of encoder 6 is `16 * profile + level`. Profiles 0 to 5 are
/// CPython's `zlib` (3.10 on) linked with zlib-ng, `compressobj` handed
/// the whole input or 8 KiB pieces; 6 and 7 the `zlib-ng` Python package.
pub(crate) const PROFILES: [(Version, Feed, OutBuf); 8] = [
    (Version::V2_2_2, Feed::Whole, OutBuf::CPythonBlocks),
    (Version::V2_2_2, Feed::Pieces8K, OutBuf::CPythonBlocks),
    (Version::V2_2_5, Feed::Whole, OutBuf::CPythonBlocks),
    (Version::V2_2_5, Feed::Pieces8K, OutBuf::CPythonBlocks),
    (Version::V2_3, Feed::Whole, OutBuf::CPythonBlocks),
    (Version::V2_3, Feed::Pieces8K, OutBuf::CPythonBlocks),
    (Version::V2_2_5, Feed::Whole, OutBuf::Doubling16K),
    (Version::V2_3, Feed::Whole, OutBuf::Doubling16K),
];

/// The settings an encoder-6 level byte names, if any.
pub(crate) fn decode(byte: u8) -> Option<(Version, Feed, OutBuf, u8)> {
    let (version, feed, out_buf) = *PROFILES.get(usize::from(byte >> 4))?;
    let level = byte & 15;
    level_modelled(level).then_some((version, feed, out_buf, level))
}

/// The level bytes of `level` in the profiles the search tries, most
/// common first (CPython's zipfile with 2.2.2, then later releases).
const fn search(level: u8) -> [u8; 6] {
    [
        level,
        0x10 | level,
        0x20 | level,
        0x30 | level,
        0x40 | level,
        0x50 | level,
    ]
}

/// The search's candidates at the default level (6), level 1, level 8,
/// level 9 and levels 8 then 9.
pub(crate) const SEARCH_6: [u8; 6] = search(6);
/// See [`SEARCH_6`].
pub(crate) const SEARCH_1: [u8; 6] = search(1);
/// See [`SEARCH_6`].
pub(crate) const SEARCH_2: [u8; 6] = search(2);
/// See [`SEARCH_6`].
pub(crate) const SEARCH_9: [u8; 6] = search(9);
/// See [`SEARCH_6`] (zip's "maximum": `-8` or `-9`).
pub(crate) const SEARCH_8_9: [u8; 12] = {
    let (a, b) = (search(8), search(9));
    let mut out = [0; 12];
    let mut i = 0;
    while i < 6 {
        out[i] = a[i];
        out[i + 6] = b[i];
        i += 1;
    }
    out
};

/// (level byte, deflated length, CRC-32 of the deflated bytes) of
/// [`crate::zlib::sample`] as the real zlib-ng deflates it: profiles 0 to 5
/// by zlib-ng 2.2.2, 2.2.5 and 2.3.3 (`./configure --zlib-compat`, the
/// last two from the sources in the `zlib-ng` 1.0.0 and 1.1.0 sdists) under
/// CPython 3.11's `zlib`, 6 and 7 by the `zlib-ng` packages 1.0.0 and 1.1.0.
pub(crate) const KNOWN_ANSWERS: [(u8, u64, u32); 72] = [
    (0x21, 82_996, 0xed900c82),
    (0x22, 61_553, 0xdb44c520),
    (0x23, 57_718, 0x41f553d1),
    (0x24, 52_548, 0xbce8ac99),
    (0x25, 51_586, 0xbd160b16),
    (0x26, 49_319, 0x6bc2f4f2),
    (0x27, 47_812, 0x29af4aef),
    (0x28, 46_729, 0xda701663),
    (0x29, 46_665, 0x8fb9cf5d),
    (0x31, 82_995, 0xdb0a566c),
    (0x32, 61_553, 0xdb44c520),
    (0x33, 57_718, 0x41f553d1),
    (0x34, 52_548, 0xbce8ac99),
    (0x35, 51_608, 0x5ac59d3c),
    (0x36, 49_340, 0x265d1657),
    (0x37, 47_812, 0x29af4aef),
    (0x38, 46_729, 0xda701663),
    (0x39, 46_665, 0x8fb9cf5d),
    (0x41, 82_996, 0xed900c82),
    (0x42, 61_553, 0xdb44c520),
    (0x43, 57_718, 0x41f553d1),
    (0x44, 52_548, 0xbce8ac99),
    (0x45, 51_586, 0xbd160b16),
    (0x46, 49_319, 0x6bc2f4f2),
    (0x47, 47_812, 0x29af4aef),
    (0x48, 46_729, 0xda701663),
    (0x49, 46_665, 0x8fb9cf5d),
    (0x51, 82_995, 0xdb0a566c),
    (0x52, 61_553, 0xdb44c520),
    (0x53, 57_718, 0x41f553d1),
    (0x54, 52_548, 0xbce8ac99),
    (0x55, 51_608, 0x5ac59d3c),
    (0x56, 49_340, 0x265d1657),
    (0x57, 47_812, 0x29af4aef),
    (0x58, 46_729, 0xda701663),
    (0x59, 46_665, 0x8fb9cf5d),
    (0x01, 82_996, 0xed900c82),
    (0x02, 61_553, 0xdb44c520),
    (0x03, 57_718, 0x41f553d1),
    (0x04, 52_548, 0xbce8ac99),
    (0x05, 51_586, 0xbd160b16),
    (0x06, 49_319, 0x6bc2f4f2),
    (0x07, 47_812, 0x29af4aef),
    (0x08, 46_729, 0xda701663),
    (0x09, 46_665, 0x8fb9cf5d),
    (0x11, 82_995, 0xdb0a566c),
    (0x12, 61_553, 0xdb44c520),
    (0x13, 57_718, 0x41f553d1),
    (0x14, 52_548, 0xbce8ac99),
    (0x15, 51_608, 0x5ac59d3c),
    (0x16, 49_340, 0x265d1657),
    (0x17, 47_812, 0x29af4aef),
    (0x18, 46_729, 0xda701663),
    (0x19, 46_665, 0x8fb9cf5d),
    (0x61, 82_996, 0xed900c82),
    (0x62, 61_553, 0xdb44c520),
    (0x63, 57_718, 0x41f553d1),
    (0x64, 52_548, 0xbce8ac99),
    (0x65, 51_588, 0x3af2feb8),
    (0x66, 49_319, 0xc3c5ba99),
    (0x67, 47_812, 0x29af4aef),
    (0x68, 46_729, 0xda701663),
    (0x69, 46_665, 0x8fb9cf5d),
    (0x71, 82_996, 0xed900c82),
    (0x72, 61_553, 0xdb44c520),
    (0x73, 57_718, 0x41f553d1),
    (0x74, 52_548, 0xbce8ac99),
    (0x75, 51_588, 0x3af2feb8),
    (0x76, 49_319, 0xc3c5ba99),
    (0x77, 47_812, 0x29af4aef),
    (0x78, 46_729, 0xda701663),
    (0x79, 46_665, 0x8fb9cf5d),
];

/// Why zlib-ng's deflate did not run to the end.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ZlibNgError<E> {
    /// The sink refused the output.
    #[error("the sink stopped the encoder")]
    Sink(E),
    /// Reading the input failed.
    #[error("reading the input failed: {0}")]
    Read(#[source] std::io::Error),
    /// The level is not one modelled (1 to 9).
    #[error("zlib-ng level {0} is not modelled (levels 1 to 9 are)")]
    Level(u8),
}

/// Deflates what `plain` reads as zlib-ng `version` does at `level` with the
/// input handed over as `feed` says (see the module docs), handing the
/// output to `sink` as it comes; stops at the sink's first error.
pub(crate) fn deflate_to<E>(
    version: Version,
    level: u8,
    feed: Feed,
    out_buf: OutBuf,
    plain: &mut dyn Read,
    mut sink: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), ZlibNgError<E>> {
    if !level_modelled(level) {
        return Err(ZlibNgError::Level(level));
    }
    let step = match feed {
        Feed::Whole => None,
        Feed::Pieces8K => Some(8 << 10),
    };
    let mut failed = None;
    let mut take = |b: &[u8]| {
        if b.is_empty() {
            return true;
        }
        match sink(b) {
            Ok(()) => true,
            Err(e) => {
                failed = Some(e);
                false
            }
        }
    };
    let input = Input::new(plain, step);
    let mut s = Lz::new(level, config(level), version, input, out_buf, &mut take);
    let mut quick_open = 0u8;
    let mut match_available = false;
    let mut call = |s: &mut Lz, finish: bool| {
        s.start_call();
        loop {
            let done = match level {
                1 => strategies::quick(s, finish, &mut quick_open),
                2 => strategies::fast(s, finish),
                3..=6 => strategies::medium(s, finish),
                _ => strategies::slow(s, finish, &mut match_available),
            };
            if done != Done::OutFull {
                return done;
            }
            s.grow();
        }
    };
    let mut done = Done::NeedMore;
    while done == Done::NeedMore && s.input.next_piece() {
        done = call(&mut s, false);
    }
    if done == Done::NeedMore {
        call(&mut s, true);
    }
    let error = s.input.error.take();
    drop(s);
    if let Some(e) = failed {
        return Err(ZlibNgError::Sink(e));
    }
    match error {
        Some(e) => Err(ZlibNgError::Read(e)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
