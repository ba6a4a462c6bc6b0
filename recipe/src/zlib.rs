//! Deflate streams that zlib, or GNU gzip's deflate, reproduces byte for byte.
//!
//! Most upstream deflate is made by zlib with its default settings: Python's
//! `zipfile` (wheels) at level 6, cargo's flate2 (crates) at level 9, anything
//! built on `gzip` of zlib. Deflating the stream's plain bytes again as the
//! same zlib at the same level does gives the very same bytes, which is both
//! cheaper and smaller than preflate-rs's analysis and corrections. A stream
//! is recorded as [`Segment::Zlib`](crate::Segment::Zlib) only when a
//! candidate level rebuilds it exactly; the search stops a candidate at its
//! first differing byte.
//!
//! [`ZlibParams::encoder`] names the encoder's *output*. Encoder
//! [`ZLIB_ENCODER`] is zlib's raw deflate (32 KiB window, memLevel 8, default
//! strategy) as zlib 1.2.12 to 1.4 make it when handed their input 64 KiB at
//! a time: the output of the C zlib of libz-sys `=1.1.33` (zlib 1.4, built
//! statically) as this module ran it until recipes were first shipped. It is
//! now made by Ferry's own Rust deflate in its zlib flavour
//! (`crate::deflate`, the same engine as encoder 2), about 1.5 times as fast
//! at level 6 and 3 times at level 9; the C zlib stays linked (flate2
//! inflates with it) and is the oracle the tests compare encoder 1 with, at
//! every level. Before rebuilding with an encoder's level, or taking it as
//! a stream's recipe once it has reproduced the stream, this build checks
//! that it gives the encoder's known answers at that level on a fixed
//! sample (`params_ok`: only the levels used, each once), so a build whose
//! encoder's output differs refuses instead of rebuilding other bytes.
//!
//! Encoder [`GNU_GZIP_ENCODER`] (recipe version 3) is GNU gzip's deflate, the
//! same Rust engine in its GNU flavour: `gzip -1` to `-9` streams (layers,
//! charts) that no zlib level reproduces. It passes its own known answers
//! before use.
//!
//! Encoder [`GO_FLATE_ENCODER`] (recipe version 5) is Go's `compress/flate`,
//! rewritten in Rust (`goflate`): image layers gzipped by Go's
//! `gzip.NewWriter` (Docker's; level 6 by default), which neither
//! zlib nor GNU gzip reproduces and preflate-rs refuses (Go writes
//! one-symbol Huffman codes). Tried last, and only when
//! `Options::max_recipe_version` is 5; it too passes known answers (made by
//! real Go).
//!
//! Encoder [`MINIZ_OXIDE_ENCODER`] (recipe version 5) is miniz_oxide's
//! deflate, the crate itself, pinned (`crate::miniz`): Rust-built wheels.
//!
//! Encoder [`ZLIB_NG_ENCODER`] (recipe version 6) is zlib-ng's deflate
//! (`crate::deflate::zlibng`): releases 2.2.2, 2.2.5 and 2.3, levels 1 to
//! 9, as CPython's `zlib` (or the `zlib-ng` package) feeds it; its level
//! byte also names that profile. Tried last, at level 6 (or the level the
//! zip flags or gzip's XFL say) in six profiles; it too passes known answers (made by the
//! real zlib-ng).
//! Encoders [`PGZIP_ENCODER`] and [`KP_FLATE_ENCODER`] (recipe version 6)
//! are klauspost/pgzip's framing over klauspost/compress's `flate`, and one
//! such `flate` stream, rewritten in Rust (`crate::kpflate`): layers
//! written by podman, buildah and skopeo: klauspost/compress 1.15.12 to
//! 1.19.1 at levels 1 to 9, the release in the level byte's high nibble (`crate::kpflate::release`; older builds
//! refuse such a level byte). They are tried only on streams
//! that end the way they end (pgzip: a sync flush and an empty fixed final
//! block, `00 00 ff ff 03 00`, and then first; one stream: an empty fixed
//! final block, last), so other streams do not pay for them.
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

use crate::deflate::Flavour;
use flate2::Crc;
use serde::{Deserialize, Serialize};

/// zlib's deflate (raw, 32 KiB window, memLevel 8, default strategy) as zlib
/// 1.2.12 to 1.4 make it, whose output the [`KNOWN_ANSWERS`] pin (made by
/// Ferry's Rust deflate in its zlib flavour; see the module docs).
pub const ZLIB_ENCODER: u8 = 1;

pub use crate::deflate::gnu::GNU_GZIP_ENCODER;
pub use crate::deflate::zlibng::ZLIB_NG_ENCODER;
pub use crate::goflate::GO_FLATE_ENCODER;
pub use crate::kpflate::go127::GO127_FLATE_ENCODER;
pub use crate::kpflate::{KP_FLATE_ENCODER, PGZIP_ENCODER};
pub use crate::miniz::MINIZ_OXIDE_ENCODER;

/// The recipe version that added `encoder` to [`Segment::Zlib`](crate::Segment::Zlib):
/// 2 for zlib's, 3 for GNU gzip's, 5 for Go's and miniz_oxide's, 6 for
/// zlib-ng's, klauspost's and Go 1.27's (and any unknown encoder, which a
/// reader refuses anyway).
pub fn encoder_version(encoder: u8) -> u8 {
    match encoder {
        ZLIB_ENCODER => crate::RECIPE_VERSION_2,
        GNU_GZIP_ENCODER => crate::RECIPE_VERSION_3,
        GO_FLATE_ENCODER | MINIZ_OXIDE_ENCODER => crate::RECIPE_VERSION_5,
        _ => crate::RECIPE_VERSION_6,
    }
}

/// Whether `level` is a level `encoder` has: 1 to 9, or for zlib-ng a
/// profile and level (`crate::deflate::zlibng::decode`), or for
/// klauspost's a release and level (`crate::kpflate::release`).
fn level_ok(encoder: u8, level: u8) -> bool {
    if encoder == ZLIB_NG_ENCODER {
        return crate::deflate::zlibng::decode(level).is_some();
    }
    if encoder == GO127_FLATE_ENCODER {
        return crate::kpflate::go127::level_ok(level);
    }
    if encoder == PGZIP_ENCODER || encoder == KP_FLATE_ENCODER {
        return crate::kpflate::release::Release::decode(level).is_some();
    }
    (1..=9).contains(&level)
}

/// How a [`Segment::Zlib`](crate::Segment::Zlib) deflates its plain bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZlibParams {
    /// Which encoder's output: [`ZLIB_ENCODER`] (zlib),
    /// [`GNU_GZIP_ENCODER`] (GNU gzip, recipe version 3),
    /// [`GO_FLATE_ENCODER`] (Go's `compress/flate`, recipe version 5),
    /// [`MINIZ_OXIDE_ENCODER`] (version 5), [`PGZIP_ENCODER`] (klauspost's
    /// pgzip, version 6), [`ZLIB_NG_ENCODER`] (version 6),
    /// [`KP_FLATE_ENCODER`] (klauspost's `flate`, version 6) or
    /// [`GO127_FLATE_ENCODER`] (Go 1.27's `compress/flate`, version 6).
    pub encoder: u8,
    /// The encoder's compression level, 1 to 9; for zlib-ng,
    /// `16 * profile + level` (`PROFILES` of `crate::deflate::zlibng`:
    /// its release, and how its caller fed it); for pgzip and klauspost's
    /// `flate`, `16 * release + level` (`crate::kpflate::release`: 0 is
    /// klauspost/compress 1.15.12, 3 is 1.18.2 to 1.19.1).
    pub level: u8,
}

/// Why a zlib segment did not rebuild.
#[derive(Debug, thiserror::Error)]
pub enum ZlibError {
    /// The recipe names an encoder this build does not have.
    #[error(
        "deflate encoder {found} is unknown to this build (it has encoders {ZLIB_ENCODER} zlib, {GNU_GZIP_ENCODER} GNU gzip, {GO_FLATE_ENCODER} Go, {MINIZ_OXIDE_ENCODER} miniz_oxide, {PGZIP_ENCODER} pgzip, {ZLIB_NG_ENCODER} zlib-ng, {KP_FLATE_ENCODER} klauspost's flate and {GO127_FLATE_ENCODER} Go 1.27's flate)"
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
    /// The level is not 1 to 9 (or, for zlib-ng, not a profile and level,
    /// for klauspost's, not a release and level this build models: an
    /// older build meets a newer release's level byte here).
    #[error("deflate level {0} is not one of its encoder's")]
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

    /// Whether the search would try `params` under this hint (the first
    /// try, the previous stream's params, aside).
    pub(crate) fn admits(self, params: ZlibParams) -> bool {
        self.levels(params.encoder).contains(&params.level)
    }

    /// The levels of `encoder` tried, in order.
    fn levels(self, encoder: u8) -> &'static [u8] {
        if encoder == ZLIB_NG_ENCODER {
            use crate::deflate::zlibng::{SEARCH_1, SEARCH_2, SEARCH_6, SEARCH_8_9, SEARCH_9};
            return match self {
                LevelHint::Unknown => &SEARCH_6,
                LevelHint::GzipMax => &SEARCH_9,
                LevelHint::Fastest => &SEARCH_1,
                LevelHint::ZipMax => &SEARCH_8_9,
                LevelHint::ZipFast => &SEARCH_2,
            };
        }
        if encoder == PGZIP_ENCODER || encoder == KP_FLATE_ENCODER {
            // pgzip and klauspost's gzip write XFL 2 at level 9, 4 at level
            // 1, 0 otherwise; their default (-1) is level 5.
            // Releases after 1.15.12 are in the level byte's high nibble.
            use crate::kpflate::release::{SEARCH_ANY, SEARCH_FASTEST, SEARCH_MAX, SEARCH_ZIP_MAX};
            return match self {
                LevelHint::Unknown | LevelHint::ZipFast => &SEARCH_ANY,
                LevelHint::GzipMax => &SEARCH_MAX,
                LevelHint::Fastest => &SEARCH_FASTEST,
                LevelHint::ZipMax => &SEARCH_ZIP_MAX,
            };
        }
        if encoder == GO127_FLATE_ENCODER {
            // Go 1.27's gzip writes XFL 2 at level 9, 4 at level 1; its
            // default is level 6. (Encoder 7 of release 3, tried before,
            // gives the same streams but at level 4.)
            return match self {
                LevelHint::Unknown => &[6, 5, 1, 4, 9, 7, 8, 3, 2],
                LevelHint::GzipMax => &[9],
                LevelHint::ZipMax => &[9, 8],
                LevelHint::Fastest => &[1],
                LevelHint::ZipFast => &[2],
            };
        }
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
/// last, so that streams an earlier one rebuilds keep their recipes; pgzip
/// goes first where the stream ends as pgzip's do, and is tried only there).
const ENCODERS: [u8; 8] = [
    PGZIP_ENCODER,
    ZLIB_ENCODER,
    GNU_GZIP_ENCODER,
    MINIZ_OXIDE_ENCODER,
    GO_FLATE_ENCODER,
    ZLIB_NG_ENCODER,
    KP_FLATE_ENCODER,
    GO127_FLATE_ENCODER,
];

/// Whether a raw deflate stream ends as klauspost/pgzip's do: its last
/// block's sync flush (`00 00 ff ff`), then `Close`'s empty fixed final
/// block, byte-aligned (`03 00`). No other encoder here ends so.
pub(crate) fn ends_as_pgzip(compressed: &[u8]) -> bool {
    compressed.ends_with(&[0, 0, 0xff, 0xff, 3, 0])
}

/// Whether a raw deflate stream may end as one klauspost/compress `flate`
/// stream does: an empty fixed final block (bits 1, 1, 0, then seven 0s
/// for the end of block) wherever the last block left the bit position,
/// then zeros to the byte. A cheap filter, not a proof.
pub(crate) fn ends_as_kp_flate(compressed: &[u8]) -> bool {
    match compressed {
        [.., x, 1, 0] if x & 0x80 != 0 => true,
        // The header's three bits start at bit p of `x` (p = 6 leaves its
        // last bit, a 0, in the final byte).
        [.., x, 0] => (0..=6).any(|p| x >> p == 3),
        _ => false,
    }
}

/// (level, deflated length, CRC-32 of the deflated bytes) of [`sample`] made by
/// encoder 1 at every level (computed with Python's zlib 1.2.13 and with
/// libz-sys 1.1.33's zlib 1.4, which agree; levels 8 and 9 give the same
/// stream on it).
const KNOWN_ANSWERS: [(u8, u64, u32); 9] = [
    (1, 62_233, 0x24f8_8b0f),
    (2, 59_737, 0xf4ee_6de8),
    (3, 54_704, 0xb7b3_265f),
    (4, 54_450, 0x7015_6c30),
    (5, 51_696, 0x3a2f_34fb),
    (6, 49_136, 0x103e_2857),
    (7, 47_812, 0x97fb_1800),
    (8, 46_654, 0xcfd4_f704),
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

/// A known answer: level byte, deflated length, CRC-32 of the deflated
/// bytes.
type Answer = (u8, u64, u32);

/// The known answers of `encoder` (each encoder's module pins them): for
/// klauspost's, 1.15.12's, then the later releases'.
fn known_answers(encoder: u8) -> (&'static [Answer], &'static [Answer]) {
    use crate::kpflate::release;
    match encoder {
        ZLIB_ENCODER => (&KNOWN_ANSWERS, &[]),
        GNU_GZIP_ENCODER => (&crate::deflate::gnu::KNOWN_ANSWERS, &[]),
        GO_FLATE_ENCODER => (&crate::goflate::KNOWN_ANSWERS, &[]),
        MINIZ_OXIDE_ENCODER => (&crate::miniz::KNOWN_ANSWERS, &[]),
        ZLIB_NG_ENCODER => (&crate::deflate::zlibng::KNOWN_ANSWERS, &[]),
        PGZIP_ENCODER => (
            &crate::kpflate::PGZIP_KNOWN_ANSWERS,
            &release::PGZIP_KNOWN_ANSWERS,
        ),
        KP_FLATE_ENCODER => (
            &crate::kpflate::KP_FLATE_KNOWN_ANSWERS,
            &release::KP_FLATE_KNOWN_ANSWERS,
        ),
        GO127_FLATE_ENCODER => (&crate::kpflate::go127::GO127_KNOWN_ANSWERS, &[]),
        _ => (&[], &[]),
    }
}

/// Whether encoder `encoder` is known and gives all its known answers on
/// [`sample`] (computed once an encoder).
pub(crate) fn encoder_ok(encoder: u8) -> bool {
    // One slot per encoder, in the order of ENCODERS.
    static OK: [OnceLock<bool>; ENCODERS.len()] = [const { OnceLock::new() }; ENCODERS.len()];
    let Some(slot) = ENCODERS.iter().position(|&e| e == encoder) else {
        return false;
    };
    let (answers, more) = known_answers(encoder);
    *OK[slot].get_or_init(|| {
        let plain = sample();
        !answers.is_empty()
            && answers
                .iter()
                .chain(more)
                .all(|&(level, len, crc)| answer(encoder, level, &plain) == Some((len, crc)))
    })
}

/// Whether `params` may be used: where its encoder has known answers at
/// its level byte, it gives those (checked once, before that level byte's
/// first use); otherwise its encoder gives all its own ([`encoder_ok`]).
/// Checking only the levels used saves most of the check: all of an
/// encoder's take 0.03 to 0.15 CPU s, zlib-ng's 64 (every profile at every
/// level) 0.7 s; the search checks a level only once it has reproduced a
/// stream, so a search that ends at zlib-ng's level 6 checks that one.
pub(crate) fn params_ok(params: ZlibParams) -> bool {
    // One row per encoder, in the order of ENCODERS; one slot a level byte.
    static OK: [[OnceLock<bool>; 256]; ENCODERS.len()] =
        [const { [const { OnceLock::new() }; 256] }; ENCODERS.len()];
    let Some(row) = ENCODERS.iter().position(|&e| e == params.encoder) else {
        return false;
    };
    let (answers, more) = known_answers(params.encoder);
    let at_level = |&&(level, ..): &&Answer| level == params.level;
    if !answers.iter().chain(more).any(|a| at_level(&a)) {
        return encoder_ok(params.encoder);
    }
    *OK[row][usize::from(params.level)].get_or_init(|| {
        let plain = sample();
        answers
            .iter()
            .chain(more)
            .filter(at_level)
            .all(|&(level, len, crc)| answer(params.encoder, level, &plain) == Some((len, crc)))
    })
}

/// (length, CRC-32) of `plain` deflated by `encoder` at `level`.
pub(crate) fn answer(encoder: u8, level: u8, plain: &[u8]) -> Option<(u64, u32)> {
    let mut len = 0u64;
    let mut sum = Crc::new();
    let done = encode_to(ZlibParams { encoder, level }, &mut &plain[..], |b| {
        sum.update(b);
        len += b.len() as u64;
        Ok::<(), ()>(())
    });
    done.ok().map(|()| (len, sum.sum()))
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
    let flavour = match params.encoder {
        GNU_GZIP_ENCODER => Flavour::Gnu,
        MINIZ_OXIDE_ENCODER => return crate::miniz::deflate_to(params.level, plain, sink),
        GO_FLATE_ENCODER => {
            return crate::goflate::deflate_to(params.level, plain, sink)
                .map_err(|e| e.map_err(|e| e.to_string()))
        }
        ZLIB_NG_ENCODER => {
            use crate::deflate::zlibng::{decode, deflate_to, ZlibNgError};
            let Some((version, feed, out_buf, level)) = decode(params.level) else {
                return Err(Err(format!(
                    "zlib-ng level byte {:#04x} is unknown",
                    params.level
                )));
            };
            return deflate_to(version, level, feed, out_buf, plain, sink).map_err(|e| match e {
                ZlibNgError::Sink(e) => Ok(e),
                other => Err(other.to_string()),
            });
        }
        PGZIP_ENCODER => {
            let threads = crate::kpflate::pgzip_threads();
            return crate::kpflate::pgzip_to(params.level, plain, threads, sink)
                .map_err(|e| e.map_err(|e| e.to_string()));
        }
        KP_FLATE_ENCODER => {
            return crate::kpflate::deflate_to(params.level, plain, sink)
                .map_err(|e| e.map_err(|e| e.to_string()))
        }
        GO127_FLATE_ENCODER => {
            return crate::kpflate::go127::deflate_to(params.level, plain, sink)
                .map_err(|e| e.map_err(|e| e.to_string()))
        }
        _ => Flavour::Zlib,
    };
    crate::deflate::deflate_to(flavour, params.level, plain, sink)
        .map_err(|e| e.map_err(|e| e.to_string()))
}

/// Compressed bytes compared before a candidate is taken when the caller
/// checks the whole object anyway (`Options::check_streams` off): 1 MiB.
pub(crate) const PREFIX: usize = 1 << 20;

/// The longest zip member (compressed bytes) whose search compares the
/// found encoder's output to its end, not only its first [`PREFIX`]: the
/// caller's check would deflate the whole member anyway, on top of the
/// search's first MiB, and now copies it instead
/// ([`verified_streams`](crate::verified_streams)). A longer member, or a
/// gzip stream (a layer's is cut and rebuilt on every core by the check),
/// is compared for its first MiB.
pub(crate) const COMPARED_WHOLE: usize = 8 << 20;

/// A raw deflate stream as the encoder search sees it: its first bytes (all
/// of it, or enough for a prefix comparison), its last bytes, its length.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StreamView<'a> {
    /// The stream's first bytes.
    pub(crate) head: &'a [u8],
    /// Its last bytes (at least 8, or all of it), for the end filters.
    pub(crate) tail: &'a [u8],
    /// Its length.
    pub(crate) len: usize,
}

impl<'a> StreamView<'a> {
    /// The view of a stream held whole.
    pub(crate) fn whole(compressed: &'a [u8]) -> StreamView<'a> {
        StreamView {
            head: compressed,
            tail: compressed,
            len: compressed.len(),
        }
    }
}

/// Whether `params` deflate `plain` into exactly the stream `compressed`, or,
/// with `prefix`, into output that starts with the first `prefix` bytes of
/// it (the caller rebuilds and checks the rest); stops at the first piece of
/// output that differs. Output past `compressed.head` counts as differing.
fn reproduces(
    params: ZlibParams,
    plain: &[u8],
    compressed: StreamView<'_>,
    prefix: Option<usize>,
) -> bool {
    let enough = prefix.unwrap_or(usize::MAX).min(compressed.len);
    let mut at = 0usize;
    let done = encode_to(params, &mut &plain[..], |b| {
        match compressed.head.get(at..at + b.len()) {
            Some(want) if want == b => {
                at += b.len();
                if at >= enough && at < compressed.len {
                    // Enough compared: stop here (Err stops the encoder).
                    return Err(true);
                }
                Ok(())
            }
            _ => Err(false),
        }
    });
    match done {
        Ok(()) => at == compressed.len,
        Err(Ok(stopped_early)) => stopped_early,
        Err(Err(_)) => false,
    }
}

/// The search for the params that rebuild an object's deflate streams; one
/// per object (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct DeflateSearch {
    /// The newest recipe version the recipe may need
    /// (`Options::max_recipe_version`): encoders added later are not tried.
    max_version: u8,
    /// What rebuilt the previous stream.
    last: Option<ZlibParams>,
    /// Per encoder of [`ENCODERS`]: failed every level tried on a stream.
    given_up: [bool; ENCODERS.len()],
}

impl DeflateSearch {
    /// A search for an object whose recipe may need at most recipe version
    /// `max_version`.
    pub(crate) fn new(max_version: u8) -> DeflateSearch {
        DeflateSearch {
            max_version,
            ..DeflateSearch::default()
        }
    }

    /// What rebuilt the previous stream, if any did.
    pub(crate) fn last(&self) -> Option<ZlibParams> {
        self.last
    }

    /// The params with which an encoder of this build rebuilds `compressed`
    /// (one whole raw deflate stream) from `plain` byte for byte, if any;
    /// an encoder added after the search's recipe version is not tried;
    /// with `prefix`, the first whose output starts with that many bytes of
    /// `compressed` (the caller then rebuilds and checks the whole object).
    pub(crate) fn find(
        &mut self,
        compressed: StreamView<'_>,
        plain: &[u8],
        hint: LevelHint,
        prefix: Option<usize>,
    ) -> Option<ZlibParams> {
        if let Some(last) = self.last {
            if reproduces(last, plain, compressed, prefix) {
                return Some(last);
            }
        }
        for (i, encoder) in ENCODERS.into_iter().enumerate() {
            let fits = match encoder {
                PGZIP_ENCODER => ends_as_pgzip(compressed.tail),
                // Go 1.27's writer closes as klauspost's does.
                KP_FLATE_ENCODER | GO127_FLATE_ENCODER => ends_as_kp_flate(compressed.tail),
                _ => true,
            };
            if !fits {
                continue;
            }
            if self.given_up[i] || encoder_version(encoder) > self.max_version {
                continue;
            }
            let found = hint
                .levels(encoder)
                .iter()
                .map(|&level| ZlibParams { encoder, level })
                .filter(|&p| Some(p) != self.last)
                // The known answers after the stream: only params that
                // reproduce one need them (the same params are found).
                .find(|&p| reproduces(p, plain, compressed, prefix) && params_ok(p));
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
    if !level_ok(params.encoder, params.level) {
        return Err(ZlibError::BadLevel(params.level));
    }
    if !params_ok(*params) {
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
mod tests;
