//! Recipes: an upstream artifact's exact bytes as an *expanded form* plus a
//! small [`Recipe`] that rebuilds them.
//!
//! Almost everything upstream publishes is compressed (wheels and jars are zip,
//! crates and layers tar.gz, debs hold data.tar.xz, RPM payloads xz or zstd),
//! and a recompressed release shares almost no bytes with the previous one. The
//! decompressed content does. [`analyze`] turns an object into its expanded form
//! — literal bytes plus the decoded content of every stream it can reproduce
//! bit-exactly — and the recipe that rebuilds the original from it; [`rebuild`]
//! does the reverse. [`expand`] gives the *reference form* of an object (every
//! recognised stream decoded, reproducible or not) to delta against.
//!
//! The crate is pure, like `ferry-protocol`: bytes in, bytes out, no file or
//! network I/O.
//!
//! # The walk
//!
//! The object is sniffed by magic at offset 0, and containers are walked
//! recursively up to [`Options::max_depth`] containers deep:
//! - gzip (`1f 8b 08`): member after member; each member's header (with FEXTRA,
//!   FNAME, FCOMMENT, FHCRC) and 8-byte trailer are literal, its deflate body a
//!   stream ([`StreamKind::GzipMember`]). A member whose header is malformed,
//!   or whose body does not decode, ends the walk of the gzip: the rest is literal.
//! - zip (`PK 03 04`): local entry after local entry; a deflated entry (method
//!   8) is a stream ([`StreamKind::ZipEntry`]) whose end is where inflation
//!   ends, and which must agree with the header's compressed size when the header
//!   gives one (zip64 extra field included); a stored entry (method 0) is walked
//!   as an object of its own (a jar in a jar); a data descriptor (flag bit 3) is
//!   skipped; the central directory and anything unrecognised is literal.
//! - ar (`!<arch>\n`, debs): each member's data is walked as an object of its own
//!   (`control.tar.gz`, `data.tar.xz`...); member headers are literal.
//! - RPM (lead `ed ab ee db`): the 96-byte lead, the signature header (padded to 8
//!   bytes) and the header are literal; the payload is walked (gzip, xz or zstd).
//! - xz (`fd 37 7a 58 5a 00`) and zstd (`28 b5 2f fd`): one stream, as far as
//!   [`xz::decompress`] / [`zstd::decompress`] consume ([`StreamKind::Xz`],
//!   [`StreamKind::Zstd`]).
//!
//! Decoded content is not walked again (a wheel inside a tar.gz layer stays
//! compressed inside the layer's expanded tar).
//!
//! Every decode is bounded: a stream is decoded to at most
//! `min(region × max_ratio, what keeps the whole expanded form within
//! max_expanded)` bytes, where `region` is the bytes from the stream's start to
//! the end of its container; deflate is also stopped as soon as its output passes
//! `consumed × max_ratio + 1 MiB`; and a stream whose decoded size is more than
//! `max_ratio` times its compressed size stays literal. A stream that fails any
//! bound stays literal with the reason in the [`Report`].
//!
//! # The expanded form
//!
//! The concatenation, in object order, of each segment's bytes: a literal
//! segment's bytes of the object, and a stream's decoded content. In
//! [`analyze`]'s expanded form only reproduced streams are decoded; in
//! [`expand`]'s reference form every stream that decodes within the bounds is.
//! The reference form depends on the walk ([`EXPAND_VERSION`]) and on
//! `max_expanded`, `max_ratio` and `max_depth`: both sides must use the same.
//!
//! # The recipe encoding (versions 1 to 7)
//!
//! [`Recipe::to_bytes`]: one version byte, `0x01` unless the recipe holds a
//! tag-4 or tag-5 segment, `0x02` when every tag-4 segment names encoder 1, `0x03` when
//! one names another encoder, `0x04` with a tag-5 segment, `0x05` with
//! encoder 3 or 4, `0x06` with encoders 5 to 8, `0x07` with a tag-5 segment
//! of encoder 3 (a recipe holding a segment or an encoder its
//! version does not have is refused: [`RecipeError::SegmentNotInVersion`]), then the
//! [postcard](https://postcard.jamesmunns.com/wire-format) encoding of
//! [`Recipe`], with nothing after it, at most [`MAX_RECIPE_BYTES`] in all:
//! - `varint(n)`, the number of segments, then `n` segments;
//! - each segment is `varint(tag)` and its fields in order. A `varint` is
//!   unsigned LEB128 (7 bits a byte, low bits first, at most 10 bytes for a u64);
//!   a byte string is `varint(len)` and the bytes.
//!   - tag 0, `Literal { len: varint }`;
//!   - tag 1, `Deflate { plain_len: varint, compressed_len: varint, chunks }`, where
//!     `chunks` is `varint(m)` then `m` times
//!     `{ plain_len: varint, compressed_len: varint, corrections: bytes }`;
//!   - tag 2, `Xz { plain_len: varint, compressed_len: varint, params: XzParams }`;
//!   - tag 3, `Zstd { plain_len: varint, compressed_len: varint, params: ZstdParams }`,
//!   - tag 4 (version 2; encoder 2 version 3), `Zlib { plain_len: varint,
//!     compressed_len: varint, params: { encoder: u8, level: u8 } }`,
//!   - tag 5 (version 4; encoder 3: version 7), `ZlibCuts { plain_len: varint, compressed_len: varint,
//!     params: { encoder: u8, level: u8 }, cuts }`, where `cuts` is `varint(m)` then
//!     `m` times `{ plain: varint, bit: varint, window: varint, partial: u8 }`,
//!
//!   where `XzParams` and `ZstdParams` are the postcard encodings of
//!   [`xz::XzParams`] and [`zstd::ZstdParams`] (a `u8` is one raw byte).
//!
//! Rebuilding: the segments consume consecutive ranges of the expanded form,
//! `len` or `plain_len` bytes each, which must add up to the expanded form's
//! length; they emit consecutive ranges of the object, `len` or `compressed_len`
//! bytes each, which must add up to the object's length. A literal segment emits
//! what it consumes. A deflate segment's chunk plain lengths must add up to its
//! `plain_len`, and their compressed lengths to its `compressed_len`; it emits,
//! for each chunk in order, what one `preflate_rs::RecreateStreamProcessor`
//! (of preflate-rs **0.7.6** exactly: corrections from another version are not
//! valid) returns from `recompress(chunk's plain bytes, chunk's corrections)`,
//! which must be exactly the chunk's `compressed_len` bytes. A zlib segment
//! emits zlib's raw deflate (32 KiB window, memLevel 8, default strategy) of
//! what it consumes at `level` (1 to 9), as encoder `encoder` makes it: encoder
//! 1 is zlib 1.2.12 to 1.4's output, pinned by known answers ([`zlib`]);
//! encoder 2 is GNU gzip 1.6 to 1.13's deflate (`gzip -level`, without
//! `--rsyncable`; its 15-bit hash, 64 KiB window, blocks of at most 32 767
//! symbols with its early-flush guess every 4096), also pinned by known
//! answers. A reader refuses any other encoder, and an encoder whose output
//! here does not give its known answers. A cut zlib segment (tag 5) emits
//! what tag 4 with its fields emits, in pieces between its cuts, each made
//! by encoder 2 (or, version 7, encoder 3) resumed at its cut (see [`Segment::ZlibCuts`], the module
//! `cuts` and docs/bundle-format.md §14.1); a piece whose encoder does not
//! end a block exactly at the next cut as recorded is refused. An xz or zstd segment emits [`xz::compress`] / [`zstd::compress`] of
//! what it consumes with its params. Every emitted range must have exactly its
//! declared length, and the object's SHA-256 is checked by the caller.

#![forbid(unsafe_code)]
#![warn(unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::too_many_lines))]

mod ahead;
pub mod budget;
mod by_recipe;
mod codec;
mod containers;
mod cuts;
mod deflate;
mod goflate;
mod known;
mod kpflate;
mod miniz;
mod rebuild;
mod recipe;
mod report;
pub mod reuse;
pub mod stream_expand;
mod stream_pkg;
mod stream_zip;
mod walk;
pub mod xz;
pub mod zlib;
pub mod zstd;

pub use by_recipe::{expand_by, ExpandByError};

/// Entry points for the fuzz targets (`fuzz/`) into parsers that are
/// otherwise private. Not part of the crate's API.
#[doc(hidden)]
pub mod fuzzing {
    /// One block end: (plain offset, bit offset, partial byte, ended on a
    /// match).
    pub type BlockEnd = (u64, u64, u8, bool);

    /// The block ends of raw deflate stream `compressed` as the cut finder
    /// reads them (`cuts::blocks`), and the plain length, or `None` if the
    /// stream is malformed or truncated.
    pub fn deflate_block_ends(compressed: &[u8]) -> (Option<u64>, Vec<BlockEnd>) {
        let mut ends = Vec::new();
        let plain = crate::cuts::blocks::block_ends(compressed, |e| {
            ends.push((e.plain, e.bit, e.partial, e.after_match))
        });
        (plain, ends)
    }

    /// The base-parse reader of `reuse` (`reuse::symbols`) on raw deflate
    /// stream `compressed`: the plain length and every block start (plain
    /// offset, bit offset, whether the block before ended on a match) if the
    /// whole stream reads; and, for each start, the plain length a reader
    /// started there reaches (`None` where it found the stream malformed).
    pub fn deflate_symbols(compressed: &[u8]) -> SymbolsRead {
        use crate::cuts::symbols::{Scan, Symbols};
        let whole = Symbols::index(compressed).map(|(starts, plain)| (plain, starts));
        let again = whole
            .iter()
            .flat_map(|(_, starts)| starts.iter().take(64))
            .map(|&(plain, bit, after)| {
                let mut s = Symbols::at(compressed, bit, plain)?;
                s.after_match = after;
                while s.scan(u64::MAX) != Scan::End {}
                s.finished.then_some(s.plain)
            })
            .collect();
        (whole, again)
    }

    /// The same reader from `compressed`'s first bit, reading it whole and
    /// reading it from a file a 4 KiB window at a time: where each ended
    /// (plain length, and whether after the last block), which must agree
    /// whatever the bytes.
    pub fn deflate_symbols_windowed(compressed: &[u8]) -> [Option<(u64, bool)>; 2] {
        use crate::cuts::symbols::{FileStream, Scan, Symbols};
        use std::io::Write;
        let end = |s: Option<Symbols<'_>>| {
            let mut s = s?;
            while s.scan(u64::MAX) != Scan::End {}
            Some((s.plain, s.finished))
        };
        let whole = end(Symbols::at(compressed, 0, 0));
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("ferry-symbols-{}-{n}", std::process::id()));
        let windowed = (|| {
            let mut file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
                .ok()?;
            file.write_all(compressed).ok()?;
            let stream = FileStream {
                file: &file,
                start: 0,
                len: compressed.len() as u64,
            };
            end(Symbols::at_in(stream, 0, 0, Some(4096)))
        })();
        let _ = std::fs::remove_file(&path);
        [whole, windowed]
    }

    /// How the streamed expansion and analysis of `data` (as a gzip member,
    /// a zip or a package, `crate::stream_expand`) differ from `expand`'s and
    /// `analyze`'s (`check_streams` off), if they do: a form or recipe made
    /// as the object is read must be the whole walk's, or none.
    pub fn streamed_differs(data: &[u8]) -> Option<String> {
        use crate::stream_expand::{analyze_streamed, expand_streamed};
        use std::io::Write;
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("ferry-streamed-{}-{n}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .and_then(|mut f| f.write_all(data).map(|()| f));
        let _ = std::fs::remove_file(&path);
        let file = file.ok()?;
        let len = data.len() as u64;
        let mut form = Vec::new();
        if expand_streamed(&file, len, &mut &data[..], &mut form).is_ok() {
            match crate::expand(data, &crate::Options::default()) {
                Ok(whole) if whole == form => {}
                _ => return Some("the streamed form is not expand's".into()),
            }
        }
        let opts = crate::Options {
            check_streams: false,
            ..crate::Options::default()
        };
        let mut out = Vec::new();
        if let Ok(a) = analyze_streamed(&file, len, &mut &data[..], &mut out, &opts) {
            let whole = crate::analyze(data, &opts);
            if a.recipe != whole.recipe || a.report != whole.report || out != whole.expanded {
                return Some("the streamed analysis is not analyze's".into());
            }
            if a.expanded_len != out.len() as u64 {
                return Some("the streamed analysis miscounts its form".into());
            }
        }
        None
    }

    /// A block start as [`deflate_symbols`] gives it.
    pub type BlockStartOf = crate::reuse::BlockStart;

    /// What [`deflate_symbols`] read: the plain length and block starts of
    /// the whole stream, and where a reader from each start ended.
    pub type SymbolsRead = (Option<(u64, Vec<BlockStartOf>)>, Vec<Option<u64>>);
}
pub use cuts::{CutError, DEFAULT_PIECE};
pub use deflate::PieceError;
pub use known::{
    expand_known, known_streams_worth, verified_streams, KnownStreams, KNOWN_FORM_MOST, KNOWN_MOST,
};
pub use rebuild::{
    rebuild, rebuild_from, rebuild_from_base, rebuild_from_known, rebuild_known, rebuild_with_base,
    FromBase, RebuildError,
};
pub use recipe::{
    DeflateChunk, DeflateCut, RebuildWork, Recipe, RecipeError, Segment, MAX_RECIPE_BYTES,
    RECIPE_VERSION, RECIPE_VERSION_1, RECIPE_VERSION_2, RECIPE_VERSION_3, RECIPE_VERSION_4,
    RECIPE_VERSION_5, RECIPE_VERSION_6,
};
pub use report::{LiteralReason, Outcome, Report, StreamKind, StreamReport};

use walk::{Mode, Walker};

/// The version of the walk that makes [`expand`]'s reference form. Any change
/// to what the reference form of some object is must bump it.
pub const EXPAND_VERSION: u32 = 1;

/// Bounds and settings of the walk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// The largest expanded form made (default 1 GiB): a stream whose decoding
    /// would pass it stays literal ([`LiteralReason::TooLarge`]).
    pub max_expanded: u64,
    /// A stream that inflates more than this many times its compressed size
    /// stays literal ([`LiteralReason::Ratio`]; default 1000).
    pub max_ratio: u64,
    /// The largest deflate stream (decoded size) given to preflate-rs (default
    /// 256 MiB; its memory is a few times this). Larger ones stay literal in
    /// [`analyze`] ([`LiteralReason::TooLarge`]); [`expand`] ignores this.
    pub max_deflate_plain: u64,
    /// How many containers deep the walk goes (default 4: an RPM or deb is 1,
    /// its payload 2).
    pub max_depth: u32,
    /// Plain bytes preflate-rs analyses at a time (default 8 MiB): a deflate
    /// stream is cut into chunks at the first block boundary past this, which
    /// bounds preflate-rs's memory to a few times this instead of a few times
    /// the stream. Part of what the recipe records, not of the reference form.
    pub preflate_chunk: u64,
    /// preflate-rs's hash-chain search limit (default 4096, its own default):
    /// streams made with a deeper search stay literal.
    pub preflate_max_chain: u32,
    /// Whether [`analyze`] tries to reproduce xz streams (default true).
    /// Rebuilding one costs what `xz -6` costs (about 1.5 MB/s a core), so a
    /// caller in a hurry leaves them literal ([`LiteralReason::Skipped`]).
    /// Not part of the reference form: [`expand`] decodes them either way.
    pub reproduce_xz: bool,
    /// Whether [`analyze`] rebuilds each deflate stream it keeps decoded and
    /// compares it with the original (default true), so that a stream
    /// preflate-rs does not reproduce stays literal. A caller that rebuilds
    /// the whole object with [`rebuild`] and checks its digest anyway (and
    /// analyses again with the check when that fails) sets it to false: that
    /// halves the preflate-rs work, whose recompression costs about what its
    /// analysis costs. For an xz stream it skips the full re-encode of the
    /// parameter search ([`xz::find_params_by_prefix`]), and for a deflate
    /// stream the zlib or GNU gzip encoder search compares only the first MiB
    /// of each candidate's output: the caller's rebuild is then that stream's
    /// only full re-encode. A zip member of at most 8 MiB is still compared
    /// whole (its found encoder's output to the end: [`Analysis::compared`]),
    /// and the caller's rebuild copies it ([`verified_streams`]).
    pub check_streams: bool,
    /// Plain bytes between the cuts of a deflate stream GNU gzip's encoder
    /// rebuilds at levels 4 to 9 (default 4 MiB, [`DEFAULT_PIECE`]), or Go's
    /// at levels 4 to 9 when `max_recipe_version` is 7: its
    /// recipe is then a [`Segment::ZlibCuts`] (recipe version 4; 7 for Go's), whose
    /// pieces are rebuilt at once, one a core. `None` keeps such a stream
    /// one [`Segment::Zlib`] rebuilt on one core (recipe version 3 at most),
    /// for a reader older than version 4. The cuts are read off the
    /// stream's blocks by a decoder (no encoder pass); with `check_streams`
    /// each piece is then rebuilt and compared, on every core.
    pub deflate_cuts: Option<u64>,
    /// The newest recipe version [`analyze`]'s recipe may need (default
    /// [`RECIPE_VERSION`]): a deflate encoder added in a later version is
    /// not tried (version 5 added encoders 3, Go's `compress/flate`, and 4,
    /// miniz_oxide's; version 6 encoders 5 and 6, klauspost's pgzip and
    /// `flate`), for a reader older than it: those streams then go to
    /// preflate-rs (or stay literal) as before. Cuts are
    /// [`Options::deflate_cuts`]'.
    pub max_recipe_version: u8,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_expanded: 1 << 30,
            max_ratio: 1000,
            max_deflate_plain: 256 << 20,
            max_depth: 4,
            preflate_chunk: 8 << 20,
            preflate_max_chain: 4096,
            reproduce_xz: true,
            check_streams: true,
            deflate_cuts: Some(DEFAULT_PIECE),
            max_recipe_version: RECIPE_VERSION,
        }
    }
}

/// What [`analyze`] makes of an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Analysis {
    /// Rebuilds the object from `expanded`.
    pub recipe: Recipe,
    /// Literal bytes and the decoded content of every reproduced stream.
    pub expanded: Vec<u8>,
    /// Every stream found, reproduced or literal, and why.
    pub report: Report,
    /// The zlib segments (by their index in `recipe.segments`) whose
    /// streams the object shares with the base it was analysed against
    /// ([`analyze_sharing`]): their params were not compared in full.
    pub shared: Vec<usize>,
    /// The zlib segments whose encoder output the search compared with
    /// the stream to its end (by index): with `Options::check_streams`
    /// every one, else those of at most a MiB and the zip members of at
    /// most 8 MiB. A check copies them ([`verified_streams`]).
    pub compared: Vec<usize>,
}

/// Why [`expand`] gave no reference form.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExpandError {
    /// The object alone is larger than `Options::max_expanded`.
    #[error("object is {len} bytes, more than the {max}-byte expansion limit")]
    TooLarge {
        /// The object's size.
        len: u64,
        /// `Options::max_expanded`.
        max: u64,
    },
}

/// Whether `data` starts with a container or stream the walk looks into. If
/// not, [`analyze`] gives the identity recipe and [`expand`] the bytes as
/// they are, each a copy of `data`: a caller holding a large object that is
/// neither (a random blob, a plain tar) can use the object itself instead.
pub fn is_walked(data: &[u8]) -> bool {
    containers::recognised(data)
}

/// Whether `head` starts with a gzip member's magic (what
/// [`stream_expand`] reads without holding the object).
pub fn is_gzip(head: &[u8]) -> bool {
    containers::is_gzip(head)
}

/// Splits `data` into its expanded form and the recipe that rebuilds it. Every
/// stream kept decoded has been rebuilt and compared byte for byte (unless
/// [`Options::check_streams`] is off: then the caller must rebuild and check);
/// what cannot be reproduced stays literal (see the report). An object larger
/// than `max_expanded` is its own expanded form.
pub fn analyze(data: &[u8], opts: &Options) -> Analysis {
    analyze_sharing(data, opts, None)
}

/// [`analyze`] of an object patched against a base whose deflate streams
/// are `base` ([`expand_known`]): a stream the object shares with the base
/// byte for byte is not searched but takes the params of the stream before
/// it ([`Analysis::shared`]). Its rebuild, like the inside's, must copy
/// such streams from the base ([`rebuild_known`] with `base`): between two
/// releases of a wheel most members are the same bytes, and searching them
/// was most of the analysis.
pub fn analyze_sharing(data: &[u8], opts: &Options, base: Option<&KnownStreams>) -> Analysis {
    let mut w = Walker::new(data, opts, Mode::Analyze);
    w.base = base;
    if data.len() as u64 <= opts.max_expanded {
        containers::walk(&mut w, 0, data.len(), 0);
    }
    w.finish();
    Analysis {
        recipe: Recipe {
            segments: w.segments,
        },
        expanded: w.expanded,
        report: Report {
            input_len: data.len() as u64,
            streams: w.streams,
        },
        shared: w.shared,
        compared: w.compared,
    }
}

/// The reference form of an object: the same walk as [`analyze`], decoding every
/// recognised stream (reproducible or not) and no preflate analysis. Deterministic
/// for a given [`EXPAND_VERSION`] and `max_expanded`, `max_ratio`, `max_depth`.
pub fn expand(data: &[u8], opts: &Options) -> Result<Vec<u8>, ExpandError> {
    expand_streams(data, opts).map(|(expanded, _)| expanded)
}

/// A deflate stream an expansion decoded ([`expand_deflated`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeflatedStream {
    /// Its raw deflate bytes' range in the object.
    pub compressed: (usize, usize),
    /// Its plain bytes' range in the expanded form.
    pub plain: (usize, usize),
}

/// [`expand`], and where the deflate streams it decoded are, in the object
/// and in the expanded form (for [`reuse::Base`]).
pub fn expand_deflated(
    data: &[u8],
    opts: &Options,
) -> Result<(Vec<u8>, Vec<DeflatedStream>), ExpandError> {
    let (expanded, streams) = expand_streams(data, opts)?;
    let streams = streams
        .into_iter()
        .map(|[start, len, plain_at, plain_len]| DeflatedStream {
            compressed: (start, start + len),
            plain: (plain_at, plain_at + plain_len),
        })
        .collect();
    Ok((expanded, streams))
}

/// [`expand`], and the deflate streams it decoded: each one's start in
/// `data`, compressed length, start in the expanded form and plain length.
fn expand_streams(data: &[u8], opts: &Options) -> Result<(Vec<u8>, Vec<[usize; 4]>), ExpandError> {
    if data.len() as u64 > opts.max_expanded {
        return Err(ExpandError::TooLarge {
            len: data.len() as u64,
            max: opts.max_expanded,
        });
    }
    let mut w = Walker::new(data, opts, Mode::Expand);
    containers::walk(&mut w, 0, data.len(), 0);
    w.finish();
    Ok((w.expanded, w.deflated))
}
