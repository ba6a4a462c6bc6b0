//! Bit-exact xz (LZMA2) recompression.
//!
//! An `.xz` stream is rebuilt from its decompressed bytes with liblzma and an
//! [`XzParams`], and only when the rebuilt bytes are identical to the
//! original. The encoder is the liblzma that `liblzma-sys` 0.4.9 compiles
//! from its bundled source (xz 5.8.4): the build probes for a system liblzma
//! of at least 5.8.0 first, and Debian 12 ships 5.4.1, so the bundled copy is
//! what links here. Both sides of a transfer must run the same build; the
//! tests check that it reproduces what xz 5.4.1 (the `xz` CLI and dpkg-deb
//! here) writes.
//!
//! # Parameters
//!
//! [`XzParams`] is serialized into recipes (serde); its fields are the whole
//! encoding:
//!
//! - `preset`: the liblzma preset 0–9 whose LZMA2 options (literal/position
//!   bits, mode, match finder, nice length, depth) are used;
//! - `extreme`: the preset's `-e` variant (`LZMA_PRESET_EXTREME`);
//! - `dict_size`: the LZMA2 dictionary size in bytes, exactly as the block
//!   header's filter properties encode it (the xz CLI shrinks the preset's
//!   dictionary for small files, so it is kept apart from the preset);
//! - `check`: the stream's integrity check (none, CRC32, CRC64, SHA-256);
//! - `mode`: [`XzMode::Single`], liblzma's single-threaded stream encoder
//!   (one block, no sizes in its header: `xz -T1`, `xz` 5.2 and older), or
//!   [`XzMode::Multi`], the multi-threaded encoder (blocks of `block_size`
//!   uncompressed bytes, sizes in every block header: `xz -T0`/`-T2`, and
//!   dpkg-deb). The multi-threaded encoder's output does not depend on the
//!   thread count, so the count is not a parameter; [`compress`] picks it.
//!
//! # Supported
//!
//! Streams with one filter, LZMA2, made by a preset (with or without `-e`),
//! any check, in single-threaded mode or in multi-threaded mode with any block
//! size up to [`MAX_BLOCK_SIZE`]. That covers `xz -0`…`-9`, `-e`, `-T1`,
//! `-T2`, `--block-size`, `--check=…` and dpkg-deb's data.tar.xz and
//! control.tar.xz. The tests rebuild, byte for byte, what xz 5.4.1 (Debian
//! 12's CLI, dpkg-deb 1.21 and rpmbuild 4.18 `w6.xzdio`) wrote with each of
//! these, from a file and from a pipe, and the members of real bookworm
//! security-update debs: liblzma 5.8.4's LZMA2 output equals 5.4.1's.
//! dpkg-deb streams are multi-threaded, preset 6 (or its `-z` level), CRC64,
//! one block of 3 × dictionary; rpmbuild's are single-threaded with SHA-256.
//!
//! For a multi-threaded stream with one block the block size is not in the
//! stream; [`find_params`] records the preset's default (3 × its dictionary,
//! at least 1 MiB) or the input length plus one if larger, which encode the
//! same single block.
//!
//! # Not supported ([`XzError::Unsupported`] or [`XzError::NotReproduced`])
//!
//! - filter chains (BCJ, delta) and custom LZMA2 options (`--lzma2=…`
//!   other than a preset, such as a changed `lc`, `nice` or match finder);
//! - single-threaded streams with several blocks (`xz -T1 --block-size`),
//!   `--block-list`, and multi-threaded streams whose blocks are not all of
//!   one size;
//! - dictionaries larger than preset 9's 64 MiB;
//! - streams without blocks (the encoding of empty input);
//! - encoders other than liblzma (7-Zip, Go, Java) and liblzma versions
//!   whose LZMA2 output differs from 5.8.4's.
//!
//! A stream is one `.xz` stream: stream header, blocks, index and footer.
//! Stream padding after the footer (zero bytes) is not part of it; a caller
//! that meets padding or concatenated streams handles them.

use liblzma::stream::{Action, Check, Filters, LzmaOptions, MtStreamBuilder, Status, Stream};
use serde::{Deserialize, Serialize};

mod mt;

/// Largest multi-threaded block size [`compress`] accepts (512 MiB).
pub const MAX_BLOCK_SIZE: u64 = 512 << 20;
/// Largest LZMA2 dictionary [`compress`] accepts: preset 9's 64 MiB.
pub const MAX_DICT_SIZE: u32 = 64 << 20;
/// Memory the decoder may use (preset 9 needs 65 MiB).
pub(crate) const DECODER_MEMLIMIT: u64 = 128 << 20;
/// Most encoder settings [`find_params`] tries on a stream.
pub const MAX_CANDIDATES: usize = 20;
/// Most candidates that pass the prefix test and get a full re-encode
/// (streams longer than the prefix).
const MAX_FULL_VERIFY: usize = 3;
/// Plain bytes a candidate encodes before its output is compared.
const PREFIX_INPUT: usize = 1 << 20;
const EXTREME_BIT: u32 = 0x8000_0000;
const HEADER_MAGIC: [u8; 6] = [0xFD, b'7', b'z', b'X', b'Z', 0];
/// The last two bytes of a stream footer.
const FOOTER_MAGIC: &[u8; 2] = b"YZ";
const LZMA2_FILTER_ID: u64 = 0x21;
/// Dictionary size of presets 0 to 9.
const PRESET_DICT: [u32; 10] = [
    256 << 10,
    1 << 20,
    2 << 20,
    4 << 20,
    4 << 20,
    8 << 20,
    8 << 20,
    16 << 20,
    32 << 20,
    64 << 20,
];

/// The integrity check an xz stream carries (its stream flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum XzCheck {
    /// No check (`--check=none`).
    None,
    /// CRC32 (`--check=crc32`).
    Crc32,
    /// CRC64, the xz CLI's and dpkg-deb's default.
    Crc64,
    /// SHA-256 (`--check=sha256`).
    Sha256,
}

impl XzCheck {
    /// Every check, in the order of their ids.
    const ALL: [XzCheck; 4] = [
        XzCheck::None,
        XzCheck::Crc32,
        XzCheck::Crc64,
        XzCheck::Sha256,
    ];

    /// Its id in the stream flags.
    fn id(self) -> u8 {
        match self {
            XzCheck::None => 0x00,
            XzCheck::Crc32 => 0x01,
            XzCheck::Crc64 => 0x04,
            XzCheck::Sha256 => 0x0A,
        }
    }

    /// The check whose id is `id`, if it is one of the four.
    fn from_id(id: u8) -> Option<XzCheck> {
        XzCheck::ALL.into_iter().find(|c| c.id() == id)
    }

    /// Bytes of its field after each block.
    fn len(self) -> u64 {
        match self {
            XzCheck::None => 0,
            XzCheck::Crc32 => 4,
            XzCheck::Crc64 => 8,
            XzCheck::Sha256 => 32,
        }
    }

    /// liblzma's name for it.
    fn lzma(self) -> Check {
        match self {
            XzCheck::None => Check::None,
            XzCheck::Crc32 => Check::Crc32,
            XzCheck::Crc64 => Check::Crc64,
            XzCheck::Sha256 => Check::Sha256,
        }
    }
}

/// Which liblzma encoder made the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum XzMode {
    /// `lzma_stream_encoder`: one block, no sizes in the block header.
    Single,
    /// `lzma_stream_encoder_mt`: blocks of `block_size` uncompressed bytes
    /// (the last may be shorter), sizes in every block header.
    Multi {
        /// Uncompressed bytes per block, 1..=[`MAX_BLOCK_SIZE`].
        block_size: u64,
    },
}

/// Encoder settings that reproduce one xz stream; see the module docs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct XzParams {
    /// liblzma preset, 0..=9.
    pub preset: u32,
    /// The preset's extreme variant (`-e`).
    pub extreme: bool,
    /// LZMA2 dictionary size in bytes, 4096..=[`MAX_DICT_SIZE`].
    pub dict_size: u32,
    /// The stream's integrity check.
    pub check: XzCheck,
    /// Single- or multi-threaded encoder.
    pub mode: XzMode,
}

/// Why an xz stream could not be decoded, analysed or rebuilt.
#[derive(Debug, thiserror::Error)]
pub enum XzError {
    /// The bytes are not a valid xz stream.
    #[error("corrupt xz stream: {0}")]
    Corrupt(String),
    /// The stream decodes to more than the caller's limit.
    #[error("xz stream decodes to more than the limit of {limit} bytes")]
    TooLarge {
        /// The caller's limit on decoded bytes.
        limit: u64,
    },
    /// Decoding needs more memory than the decoder may use.
    #[error("xz stream needs more than {limit} bytes of decoder memory (dictionary too large)")]
    MemoryLimit {
        /// The decoder's memory limit.
        limit: u64,
    },
    /// A valid stream this module cannot rebuild by design (see module docs).
    #[error("xz stream not reproducible: {0}")]
    Unsupported(String),
    /// No tried setting rebuilt the stream byte for byte.
    #[error("no encoder setting reproduced the xz stream ({} tried)", tried.len())]
    NotReproduced {
        /// Every setting tried, in order.
        tried: Vec<XzParams>,
    },
    /// Parameters out of range (they come from an untrusted bundle).
    #[error("bad xz parameters: {0}")]
    BadParams(String),
    /// liblzma refused or failed an operation on valid input.
    #[error("liblzma failed: {0}")]
    Lzma(String),
}

/// Decodes one whole .xz stream at the start of `data`, producing at most
/// `limit` bytes; returns the plain bytes and how many bytes of `data` the
/// stream used (up to its footer; stream padding is not consumed).
pub fn decompress(data: &[u8], limit: u64) -> Result<(Vec<u8>, usize), XzError> {
    let mut out = Vec::new();
    let used = decompress_into(data, limit, &mut out)?;
    Ok((out, used))
}

/// [`decompress`], appending the plain bytes to `out` (so a caller building
/// a larger buffer does not hold them twice); `limit` bounds what is
/// appended. On error `out` may hold part of the stream.
pub fn decompress_into(data: &[u8], limit: u64, out: &mut Vec<u8>) -> Result<usize, XzError> {
    if !data.starts_with(&HEADER_MAGIC) {
        return Err(XzError::Corrupt("no xz stream header magic".into()));
    }
    let mut stream = Stream::new_stream_decoder(DECODER_MEMLIMIT, 0)
        .map_err(|e| XzError::Lzma(e.to_string()))?;
    let mark = out.len();
    loop {
        let used = stream.total_in() as usize;
        let before = (stream.total_in(), stream.total_out());
        let made = (out.len() - mark) as u64;
        let room = (limit.saturating_add(1) - made).min(1 << 20) as usize;
        out.reserve(room.max(1));
        let status = stream
            .process_vec(&data[used..], out, Action::Run)
            .map_err(|e| decode_error(e, limit))?;
        if (out.len() - mark) as u64 > limit {
            return Err(XzError::TooLarge { limit });
        }
        if status == Status::StreamEnd {
            return Ok(stream.total_in() as usize);
        }
        let stalled = before == (stream.total_in(), stream.total_out());
        if stalled && stream.total_in() as usize == data.len() {
            return Err(XzError::Corrupt(
                "truncated: the data ends inside the stream".into(),
            ));
        }
    }
}

fn decode_error(e: liblzma::stream::Error, limit: u64) -> XzError {
    match e {
        liblzma::stream::Error::MemLimit => XzError::MemoryLimit {
            limit: DECODER_MEMLIMIT,
        },
        liblzma::stream::Error::Mem => XzError::TooLarge { limit },
        other => XzError::Corrupt(other.to_string()),
    }
}

/// Encoder settings that reproduce `compressed` (exactly the bytes
/// [`decompress`] consumed) from `plain`, or why not.
///
/// The stream and first block headers give the check, the encoder mode (the
/// multi-threaded encoder writes sizes into block headers), the block size
/// and the dictionary, which narrows the presets; each candidate encodes a
/// prefix of the first block and is dropped at the first differing byte, and
/// the survivors are verified by a full [`compress`].
pub fn find_params(compressed: &[u8], plain: &[u8]) -> Result<XzParams, XzError> {
    search(compressed, plain, true)
}

/// [`find_params`] without the full re-encode of a stream longer than the
/// prefix: the first candidate whose prefix encodes to the stream's first
/// bytes. The caller must rebuild and compare, as one that checks the whole
/// object does (`Options::check_streams` off): a full re-encode costs what
/// compressing costs (about 1.5 MB/s a core at preset 6), and doing it twice
/// doubled the outside's cost of an xz stream.
pub fn find_params_by_prefix(compressed: &[u8], plain: &[u8]) -> Result<XzParams, XzError> {
    search(compressed, plain, false)
}

fn search(compressed: &[u8], plain: &[u8], verify: bool) -> Result<XzParams, XzError> {
    search_held((compressed, compressed.len()), (plain, plain.len()), verify)
}

/// [`find_params_by_prefix`] of a stream of `compressed_len` bytes and
/// `plain_len` plain bytes of which only the first bytes are held
/// (`compressed_head`, `plain_head`): the same params, for a stream read
/// as it goes ([`crate::stream_pkg`]). A stream of at most
/// [`PREFIX_INPUT`] plain bytes is compared whole, so it must be held
/// whole; a longer one needs its first block's first MiB of plain bytes
/// and the compressed bytes that encode them (a few MiB are plenty).
pub(crate) fn find_params_held(
    (compressed_head, compressed_len): (&[u8], usize),
    (plain_head, plain_len): (&[u8], usize),
) -> Result<XzParams, XzError> {
    search_held(
        (compressed_head, compressed_len),
        (plain_head, plain_len),
        false,
    )
}

/// The search of [`find_params`] on the first bytes of a stream and of its
/// plain bytes (all of them, or the lengths say how many there are).
fn search_held(
    (compressed, compressed_len): (&[u8], usize),
    (plain, plain_len): (&[u8], usize),
    verify: bool,
) -> Result<XzParams, XzError> {
    let held_whole = compressed.len() == compressed_len && plain.len() == plain_len;
    let head = parse_headers(compressed)?;
    if head.dict_size > MAX_DICT_SIZE {
        return Err(XzError::Unsupported(format!(
            "dictionary of {} bytes is larger than preset 9's",
            head.dict_size
        )));
    }
    let mode = match head.block_uncompressed {
        Some(first) if (first as usize) < plain_len => XzMode::Multi { block_size: first },
        Some(_) => XzMode::Multi { block_size: 0 },
        None if head.has_compressed_size => {
            return Err(XzError::Unsupported(
                "block header has a compressed size but no uncompressed size".into(),
            ))
        }
        None => XzMode::Single,
    };
    let first_block_len = match mode {
        XzMode::Multi { block_size } if block_size > 0 => block_size as usize,
        _ => plain_len,
    };
    let block_head = &plain[..first_block_len.min(plain.len()).min(PREFIX_INPUT)];
    let expected = &compressed[head.data_start..];
    let expected = match head.block_compressed {
        Some(n) => &expected[..(n as usize).min(expected.len())],
        None => expected,
    };
    let mut tried = Vec::new();
    let mut verified = 0;
    for (preset, extreme) in candidate_presets(head.dict_size) {
        if tried.len() >= MAX_CANDIDATES || verified >= MAX_FULL_VERIFY {
            break;
        }
        let mode = match mode {
            XzMode::Multi { block_size: 0 } => XzMode::Multi {
                block_size: single_block_size(preset, plain_len),
            },
            m => m,
        };
        let params = XzParams {
            preset,
            extreme,
            dict_size: head.dict_size,
            check: head.check,
            mode,
        };
        tried.push(params.clone());
        // A stream no longer than the prefix is verified in full at once.
        if plain_len > PREFIX_INPUT {
            if block_head.len() < first_block_len.min(PREFIX_INPUT) {
                return Err(XzError::Unsupported(
                    "fewer plain bytes held than the search compares".into(),
                ));
            }
            if !prefix_matches(&params, (block_head, first_block_len), expected)? {
                continue;
            }
            if !verify {
                return Ok(params);
            }
            verified += 1;
        }
        if !held_whole {
            return Err(XzError::Unsupported(
                "a stream not held whole cannot be compared whole".into(),
            ));
        }
        if compress(&params, plain)? == compressed {
            return Ok(params);
        }
    }
    Err(XzError::NotReproduced { tried })
}

/// A block size for a stream whose only block holds all of `len` bytes: the
/// preset's default (3 × dictionary, at least 1 MiB) when it is larger.
fn single_block_size(preset: u32, len: usize) -> u64 {
    let default = (3 * u64::from(PRESET_DICT[preset as usize])).max(1 << 20);
    default.max(len as u64 + 1).min(MAX_BLOCK_SIZE)
}

/// Presets to try for a dictionary size: those whose dictionary is exactly
/// `dict` (the usual case), then larger ones (the xz CLI shrinks the
/// dictionary of small files), each plain before extreme; preset 6 (the
/// default) first among equals.
fn candidate_presets(dict: u32) -> Vec<(u32, bool)> {
    let mut presets: Vec<u32> = (0..10)
        .filter(|&p| PRESET_DICT[p as usize] >= dict)
        .collect();
    presets.sort_by_key(|&p| (PRESET_DICT[p as usize] != dict, p != 6, p));
    let mut out = Vec::new();
    for p in presets {
        out.push((p, false));
        out.push((p, true));
    }
    out
}

/// Encodes the first bytes of a block of `block_len` bytes (`block`: up to
/// [`PREFIX_INPUT`] of them) with the raw LZMA2 encoder and tells whether
/// what it produced so far is a prefix of the block's compressed data
/// `expected`.
fn prefix_matches(
    params: &XzParams,
    (block, block_len): (&[u8], usize),
    expected: &[u8],
) -> Result<bool, XzError> {
    // A raw encoder: the match finder, no block of input (what the
    // multi-threaded mode adds; reserving it made a prefix of a 56 MiB block
    // wait for 150 MiB).
    let _permit = crate::budget::reserve(raw_encoder_memory(params)?);
    let mut stream =
        Stream::new_raw_encoder(&filters(params)?).map_err(|e| XzError::Lzma(e.to_string()))?;
    let input = &block[..block.len().min(PREFIX_INPUT)];
    let whole = input.len() == block_len;
    let mut out = Vec::with_capacity(64 << 10);
    let mut compared = 0usize;
    loop {
        let action = if whole { Action::Finish } else { Action::Run };
        let used = stream.total_in() as usize;
        out.clear();
        let status = stream
            .process_vec(&input[used..], &mut out, action)
            .map_err(|e| XzError::Lzma(e.to_string()))?;
        let end = compared + out.len();
        if end > expected.len() || expected[compared..end] != out[..] {
            return Ok(false);
        }
        compared = end;
        let fed = stream.total_in() as usize == input.len();
        if status == Status::StreamEnd || (!whole && fed && out.is_empty()) {
            return Ok(true);
        }
    }
}

fn filters(params: &XzParams) -> Result<Filters, XzError> {
    validate(params)?;
    let preset = params.preset | if params.extreme { EXTREME_BIT } else { 0 };
    let mut opts = LzmaOptions::new_preset(preset).map_err(|e| XzError::Lzma(e.to_string()))?;
    opts.dict_size(params.dict_size);
    let mut filters = Filters::new();
    filters.lzma2(&opts);
    Ok(filters)
}

fn validate(params: &XzParams) -> Result<(), XzError> {
    if params.preset > 9 {
        return Err(XzError::BadParams(format!(
            "preset {} is not 0..=9",
            params.preset
        )));
    }
    if !(4096..=MAX_DICT_SIZE).contains(&params.dict_size) {
        return Err(XzError::BadParams(format!(
            "dictionary size {} is not 4096..={MAX_DICT_SIZE}",
            params.dict_size
        )));
    }
    if let XzMode::Multi { block_size } = params.mode {
        if !(1..=MAX_BLOCK_SIZE).contains(&block_size) {
            return Err(XzError::BadParams(format!(
                "block size {block_size} is not 1..={MAX_BLOCK_SIZE}"
            )));
        }
    }
    Ok(())
}

/// Compresses `plain` with `params`. `params` comes from a hostile bundle:
/// it is validated first ([`XzError::BadParams`]). See [`compress_to`].
pub fn compress(params: &XzParams, plain: &[u8]) -> Result<Vec<u8>, XzError> {
    let mut out = Vec::with_capacity(plain.len() / 4 + 1024);
    compress_to(params, &mut &plain[..], u64::MAX, &mut out)
        .map_err(|e| e.into_xz().unwrap_or_else(|e| XzError::Lzma(e.to_string())))?;
    Ok(out)
}

/// Why [`compress_to`] stopped.
#[derive(Debug)]
pub enum StreamError {
    /// The encoder failed or the params are bad.
    Xz(XzError),
    /// The stream came out longer than the `most` bytes allowed.
    TooLong {
        /// The bound given.
        most: u64,
    },
    /// Reading the plain bytes failed.
    Read(std::io::Error),
    /// Writing the compressed bytes failed.
    Write(std::io::Error),
}

impl StreamError {
    fn into_xz(self) -> Result<XzError, std::io::Error> {
        match self {
            StreamError::Xz(e) => Ok(e),
            StreamError::TooLong { most } => Ok(XzError::Lzma(format!(
                "the stream came out longer than {most} bytes"
            ))),
            StreamError::Read(e) | StreamError::Write(e) => Err(e),
        }
    }
}

/// Plain bytes handed to the encoder at a time by [`compress_to`].
const STEP: usize = 1 << 20;

/// Compresses what `plain` reads with `params` into `out`, as it comes, never
/// more than `most` bytes; returns how many it wrote. The plain stream is
/// never held whole (liblzma's output does not depend on how its input is
/// handed over). The multi-threaded mode's bytes are made on this thread
/// by a raw encoder and the container written around it ([`mt`]), which
/// holds one block's compressed bytes instead of liblzma's block of input
/// and output buffer (94 MiB and the block against 166 MiB at preset 6, so
/// that two rebuilds fit side by side).
pub fn compress_to(
    params: &XzParams,
    plain: &mut dyn std::io::Read,
    most: u64,
    out: &mut dyn std::io::Write,
) -> Result<u64, StreamError> {
    let filters = filters(params).map_err(StreamError::Xz)?;
    let _permit = crate::budget::reserve(encoder_memory(params, most).map_err(StreamError::Xz)?);
    if let XzMode::Multi { block_size } = params.mode {
        return mt::compress_to(params, block_size, plain, most, out);
    }
    let mut stream = Stream::new_stream_encoder(&filters, params.check.lzma())
        .map_err(|e| StreamError::Xz(XzError::Lzma(e.to_string())))?;
    let mut input = vec![0u8; STEP];
    let mut buf: Vec<u8> = Vec::with_capacity(STEP);
    let mut written = 0u64;
    loop {
        let n = crate::zlib::read_full(plain, &mut input).map_err(StreamError::Read)?;
        let finish = n < STEP;
        let action = if finish { Action::Finish } else { Action::Run };
        let mut at = 0usize;
        loop {
            buf.clear();
            let before = stream.total_in();
            let status = stream
                .process_vec(&input[at..n], &mut buf, action)
                .map_err(|e| StreamError::Xz(XzError::Lzma(e.to_string())))?;
            at += (stream.total_in() - before) as usize;
            written += buf.len() as u64;
            if written > most {
                return Err(StreamError::TooLong { most });
            }
            out.write_all(&buf).map_err(StreamError::Write)?;
            if status == Status::StreamEnd {
                return Ok(written);
            }
            // Running: the piece is taken and the output buffer was not
            // filled, so the encoder wants more input.
            if !finish && at == n && buf.len() < buf.capacity() {
                break;
            }
        }
    }
}

/// What an encoder of `params` making a stream of at most `most` bytes
/// holds: its match finder (liblzma's estimate for the single-threaded
/// mode, whose buffers are a few KiB) and, for the multi-threaded mode's
/// bytes, one block's compressed bytes ([`mt::held`]).
pub(crate) fn encoder_memory(params: &XzParams, most: u64) -> Result<u64, XzError> {
    let raw = raw_encoder_memory(params)?;
    Ok(match params.mode {
        XzMode::Single => raw,
        XzMode::Multi { block_size } => raw + mt::held(block_size, most),
    })
}

/// What a raw LZMA2 encoder of `params` holds: liblzma's estimate for the
/// single-threaded mode, whose block buffers are a few KiB.
fn raw_encoder_memory(params: &XzParams) -> Result<u64, XzError> {
    Ok(MtStreamBuilder::new()
        .filters(filters(params)?)
        .block_size(4096)
        .threads(1)
        .memusage())
}

/// What the stream header and the first block header say.
struct Headers {
    check: XzCheck,
    dict_size: u32,
    has_compressed_size: bool,
    block_compressed: Option<u64>,
    block_uncompressed: Option<u64>,
    /// Offset of the first block's compressed data.
    data_start: usize,
}

fn parse_headers(data: &[u8]) -> Result<Headers, XzError> {
    let corrupt = |what: &str| XzError::Corrupt(what.to_string());
    if data.len() < 12 + 12 || !data.starts_with(&HEADER_MAGIC) {
        return Err(corrupt("no xz stream header"));
    }
    let check = XzCheck::from_id(data[7])
        .ok_or_else(|| XzError::Unsupported(format!("check type {:#x}", data[7])))?;
    if data[12] == 0 {
        return Err(XzError::Unsupported(
            "stream has no blocks (empty input)".into(),
        ));
    }
    let header_len = (usize::from(data[12]) + 1) * 4;
    let header = data
        .get(12..12 + header_len)
        .ok_or_else(|| corrupt("block header cut short"))?;
    let flags = header[1];
    let mut pos = 2;
    let has_compressed_size = flags & 0x40 != 0;
    let block_compressed = if has_compressed_size {
        Some(read_vli(header, &mut pos)?)
    } else {
        None
    };
    let block_uncompressed = if flags & 0x80 != 0 {
        Some(read_vli(header, &mut pos)?)
    } else {
        None
    };
    if flags & 0x03 != 0 {
        return Err(XzError::Unsupported(
            "filter chain with more than LZMA2".into(),
        ));
    }
    let id = read_vli(header, &mut pos)?;
    let props_len = read_vli(header, &mut pos)?;
    if id != LZMA2_FILTER_ID || props_len != 1 {
        return Err(XzError::Unsupported(format!(
            "filter {id:#x} instead of LZMA2"
        )));
    }
    let props = *header
        .get(pos)
        .ok_or_else(|| corrupt("block header cut short"))?;
    if props > 40 {
        return Err(corrupt("LZMA2 dictionary size byte out of range"));
    }
    let dict_size = if props == 40 {
        u32::MAX
    } else {
        (2 | (u32::from(props) & 1)) << (props / 2 + 11)
    };
    Ok(Headers {
        check,
        dict_size,
        has_compressed_size,
        block_compressed,
        block_uncompressed,
        data_start: 12 + header_len,
    })
}

/// The plain size an xz stream's index records, read from `tail`, the last
/// bytes of the stream (stream padding after its footer allowed): the sum of
/// its blocks' uncompressed sizes. For a report only (what a stream left
/// compressed would decode to), never for a bound: the index is the
/// upstream's word. `None` when the footer or the index is not whole in
/// `tail`, or does not check.
pub fn indexed_plain_len(tail: &[u8]) -> Option<u64> {
    let mut end = tail.len();
    while end >= 4 && tail[end - 4..end] == [0; 4] {
        end -= 4;
    }
    let footer = tail.get(end.checked_sub(12)?..end)?;
    if &footer[10..12] != FOOTER_MAGIC
        || crc32fast::hash(&footer[4..10]).to_le_bytes() != footer[..4]
    {
        return None;
    }
    let backward = (u64::from(u32::from_le_bytes(footer[4..8].try_into().ok()?)) + 1) * 4;
    let start = (end - 12).checked_sub(usize::try_from(backward).ok()?)?;
    let index = &tail[start..end - 12];
    let (body, crc) = index.split_at(index.len() - 4);
    if index[0] != 0 || crc32fast::hash(body).to_le_bytes() != crc {
        return None;
    }
    let mut pos = 1;
    let records = read_vli(body, &mut pos).ok()?;
    let mut plain = 0u64;
    for _ in 0..records {
        read_vli(body, &mut pos).ok()?;
        plain = plain.checked_add(read_vli(body, &mut pos).ok()?)?;
    }
    Some(plain)
}

/// Reads an xz variable-length integer (7 bits a byte, little end first).
fn read_vli(buf: &[u8], pos: &mut usize) -> Result<u64, XzError> {
    let mut value = 0u64;
    for i in 0..9 {
        let byte = *buf
            .get(*pos)
            .ok_or_else(|| XzError::Corrupt("block header cut short".into()))?;
        *pos += 1;
        value |= u64::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(XzError::Corrupt(
        "variable-length integer longer than 9 bytes".into(),
    ))
}
