//! Bit-exact zstd recompression.
//!
//! A zstd frame is rebuilt from its decompressed bytes with libzstd and a
//! [`ZstdParams`], and only when the rebuilt bytes are identical to the
//! original. The encoder is the libzstd that `zstd-sys` 2.1.2 compiles from
//! its bundled source (zstd 1.5.7; the crate links no system libzstd unless
//! its `pkg-config` feature is on, and it is not). Both sides of a transfer
//! must run the same build. Frames made by another zstd version reproduce
//! only where that version's output equals 1.5.7's (see below).
//!
//! # One stream is one frame
//!
//! [`decompress`] decodes exactly one zstd frame (header, blocks, optional
//! checksum) and reports its length; concatenated frames (`zstd` run on
//! several inputs, `cat a.zst b.zst`) and skippable frames are the caller's
//! to walk, one call per frame. The multi-threaded encoder writes one frame
//! for its whole input, so a `zstd -T2` file is one stream.
//!
//! # Parameters
//!
//! [`ZstdParams`] is serialized into recipes (serde); its fields are the
//! whole encoding:
//!
//! - `level`: the compression level, 1..=22 (`ZSTD_c_compressionLevel`);
//! - `checksum`: `ZSTD_c_checksumFlag` (the CLI's default; `--no-check` off);
//! - `size_known`: the encoder was told the input size in advance
//!   (`ZSTD_CCtx_setPledgedSrcSize`): the CLI does so for a file, not for a
//!   pipe, and the size changes the parameters libzstd derives (window, table
//!   sizes), so it is part of the encoding;
//! - `content_size`: `ZSTD_c_contentSizeFlag`, whether a known size is written
//!   into the frame header (`--no-content-size` clears it);
//! - `mode`: [`ZstdMode::Single`] (`nbWorkers` 0) or [`ZstdMode::Multi`]
//!   (`nbWorkers` ≥ 1; libzstd's multi-threaded output does not depend on
//!   the worker count, so [`compress`] picks it; the zstd CLI uses this mode
//!   by default, `-T1` included);
//! - `long`: `Some(window_log)` for long-distance matching with that window
//!   (`--long` is `Some(27)`), `None` otherwise.
//!
//! # Supported
//!
//! Frames made by libzstd 1.5.7 (this build, or any program linking that
//! version and streaming its input) at levels 1..=19 with or without checksum
//! and content size, single- or multi-threaded, with `--long` up to a 2^27
//! window. Multi-threaded frames of unknown size are only searched at levels
//! 3, 19 and 1 (their prefix cannot be tested single-threaded).
//!
//! # Not reproduced
//!
//! - **Frames from zstd 1.5.4**, Debian 12's `zstd` CLI, dpkg-deb `-Zzstd`
//!   and rpmbuild `wN.zstdio`: at levels 1 to 19, in either mode, with and
//!   without a known size, the bundled 1.5.7 writes different blocks (the
//!   system libzstd 1.5.4, driven with the same calls, rebuilds the CLI's
//!   frames, so the difference is the library version). Small frames can
//!   still match (a test deb's 1 KiB control.tar.zst did). Reproducing them
//!   needs a libzstd of the same version as the producer's on both sides
//!   (zstd's `pkg-config` feature links the system's, which is then not
//!   pinned); this module ships such frames as literal bytes.
//! - Negative (`--fast`) levels, levels 20..=22 (accepted by [`compress`],
//!   not searched), dictionaries, advanced parameters (`--zstd=…`), `--long`
//!   windows above 2^27, `--rsyncable`, other encoders.

use serde::{Deserialize, Serialize};
use zstd::zstd_safe::{
    self, zstd_sys::ZSTD_EndDirective, CCtx, CParameter, DCtx, InBuffer, OutBuffer,
};

/// Highest level [`compress`] accepts.
pub const MAX_LEVEL: i32 = 22;
/// Largest long-distance-matching window log [`compress`] accepts (128 MiB,
/// the `--long` default); it is also the decoder's window limit.
pub const MAX_WINDOW_LOG: u32 = 27;
/// Highest level [`find_params`] searches (20..=22 need `--ultra`).
pub const MAX_SEARCH_LEVEL: i32 = 19;
/// Most encoder settings [`find_params`] tries on a frame.
pub const MAX_CANDIDATES: usize = 96;
/// Most candidates that pass the prefix test and get a full re-encode.
const MAX_FULL_VERIFY: usize = 8;
/// Levels whose multi-threaded, unknown-size encoding is verified in full
/// although the single-threaded prefix test failed.
const MAX_BLIND_MULTI: usize = 3;
/// Plain bytes a candidate encodes (single-threaded) before its output is
/// compared with the frame's.
const PREFIX_INPUT: usize = 256 << 10;
/// Workers [`compress`] uses in multi-threaded mode.
const WORKERS: u32 = 2;
const MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// Whether libzstd ran single- or multi-threaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ZstdMode {
    /// `nbWorkers` = 0.
    Single,
    /// `nbWorkers` ≥ 1 (output independent of the count).
    Multi,
}

/// Encoder settings that reproduce one zstd frame; see the module docs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZstdParams {
    /// Compression level, 1..=[`MAX_LEVEL`].
    pub level: i32,
    /// Whether the frame ends with a content checksum.
    pub checksum: bool,
    /// Whether the encoder was told the input size before compressing.
    pub size_known: bool,
    /// Whether a known input size is written into the frame header.
    pub content_size: bool,
    /// Single- or multi-threaded libzstd.
    pub mode: ZstdMode,
    /// Long-distance matching with this window log, 10..=[`MAX_WINDOW_LOG`].
    pub long: Option<u32>,
}

/// Why a zstd frame could not be decoded, analysed or rebuilt.
#[derive(Debug, thiserror::Error)]
pub enum ZstdError {
    /// The bytes are not a valid zstd frame.
    #[error("corrupt zstd frame: {0}")]
    Corrupt(String),
    /// The frame decodes to more than the caller's limit.
    #[error("zstd frame decodes to more than the limit of {limit} bytes")]
    TooLarge {
        /// The caller's limit on decoded bytes.
        limit: u64,
    },
    /// The frame's window is larger than the decoder allows.
    #[error("zstd frame needs a window larger than 2^{MAX_WINDOW_LOG} bytes")]
    WindowTooLarge,
    /// A valid frame this module cannot rebuild by design (see module docs).
    #[error("zstd frame not reproducible: {0}")]
    Unsupported(String),
    /// No tried setting rebuilt the frame byte for byte.
    #[error("no encoder setting reproduced the zstd frame ({} tried)", tried.len())]
    NotReproduced {
        /// Every setting tried, in order.
        tried: Vec<ZstdParams>,
    },
    /// Parameters out of range (they come from an untrusted bundle).
    #[error("bad zstd parameters: {0}")]
    BadParams(String),
    /// libzstd refused or failed an operation on valid input.
    #[error("libzstd failed: {0}")]
    Zstd(&'static str),
}

fn zerr(code: usize) -> ZstdError {
    ZstdError::Zstd(zstd_safe::get_error_name(code))
}

/// Decodes one zstd frame at the start of `data`, producing at most `limit`
/// bytes; returns the plain bytes and the frame's length in `data`.
pub fn decompress(data: &[u8], limit: u64) -> Result<(Vec<u8>, usize), ZstdError> {
    if !data.starts_with(&MAGIC) {
        return Err(ZstdError::Corrupt("no zstd frame magic".into()));
    }
    let mut dctx = DCtx::try_create().ok_or(ZstdError::Zstd("cannot allocate a context"))?;
    dctx.set_parameter(zstd_safe::DParameter::WindowLogMax(MAX_WINDOW_LOG))
        .map_err(zerr)?;
    let mut out: Vec<u8> = Vec::new();
    let mut input = InBuffer::around(data);
    loop {
        let room = (limit.saturating_add(1) - out.len() as u64).min(1 << 20) as usize;
        out.reserve(room.max(1));
        let before = (input.pos(), out.len());
        let pos = out.len();
        let mut output = OutBuffer::around_pos(&mut out, pos);
        let left = dctx
            .decompress_stream(&mut output, &mut input)
            .map_err(|code| {
                let name = zstd_safe::get_error_name(code);
                if name.contains("too much memory") || name.contains("indow") {
                    ZstdError::WindowTooLarge
                } else {
                    ZstdError::Corrupt(name.to_string())
                }
            })?;
        if out.len() as u64 > limit {
            return Err(ZstdError::TooLarge { limit });
        }
        if left == 0 {
            return Ok((out, input.pos()));
        }
        if before == (input.pos(), out.len()) && input.pos() == data.len() {
            return Err(ZstdError::Corrupt(
                "truncated: the data ends inside the frame".into(),
            ));
        }
    }
}

/// What the frame header says.
struct Header {
    checksum: bool,
    has_content_size: bool,
    /// Window log from the window descriptor (absent in single-segment mode).
    window_log: Option<u32>,
}

fn parse_header(data: &[u8]) -> Result<Header, ZstdError> {
    if data.len() < 6 || !data.starts_with(&MAGIC) {
        return Err(ZstdError::Corrupt("no zstd frame header".into()));
    }
    let fhd = data[4];
    if fhd & 0x03 != 0 {
        return Err(ZstdError::Unsupported(
            "frame made with a dictionary".into(),
        ));
    }
    let single_segment = fhd & 0x20 != 0;
    let fcs_flag = fhd >> 6;
    Ok(Header {
        checksum: fhd & 0x04 != 0,
        has_content_size: fcs_flag != 0 || single_segment,
        window_log: (!single_segment).then(|| 10 + u32::from(data[5] >> 3)),
    })
}

/// Encoder settings that reproduce `compressed` (exactly one frame, as
/// [`decompress`] consumed it) from `plain`, or why not.
///
/// The frame header gives the checksum flag and whether the size was known;
/// levels are tried default (3) first, then 19, then the rest; each
/// candidate first encodes a prefix single-threaded and is dropped at the
/// first differing byte (its multi- and single-threaded variants share that
/// test); survivors are verified by a full [`compress`].
pub fn find_params(compressed: &[u8], plain: &[u8]) -> Result<ZstdParams, ZstdError> {
    let head = parse_header(compressed)?;
    let sizes: &[(bool, bool)] = if head.has_content_size {
        &[(true, true)]
    } else {
        &[(false, true), (true, false)]
    };
    let mut longs = vec![None];
    if let Some(w) = head.window_log.filter(|&w| w >= MAX_WINDOW_LOG) {
        longs.insert(0, Some(w.min(MAX_WINDOW_LOG)));
    } else {
        longs.push(Some(MAX_WINDOW_LOG));
    }
    let mut levels: Vec<i32> = vec![3, 19];
    levels.extend((1..=MAX_SEARCH_LEVEL).filter(|l| *l != 3 && *l != 19));
    let mut tried = Vec::new();
    let mut verified = 0;
    let mut blind = 0;
    for long in longs {
        for &(size_known, content_size) in sizes {
            for &level in &levels {
                let base = ZstdParams {
                    level,
                    checksum: head.checksum,
                    size_known,
                    content_size,
                    mode: ZstdMode::Single,
                    long,
                };
                if tried.len() >= MAX_CANDIDATES || verified >= MAX_FULL_VERIFY {
                    return Err(ZstdError::NotReproduced { tried });
                }
                tried.push(base.clone());
                let modes: &[ZstdMode] = if prefix_matches(&base, plain, compressed)? {
                    &[ZstdMode::Multi, ZstdMode::Single]
                } else if !size_known && blind < MAX_BLIND_MULTI {
                    // With an unknown size the multi-threaded encoder's
                    // output differs from the single-threaded prefix, so
                    // the first levels are verified without the test.
                    blind += 1;
                    &[ZstdMode::Multi]
                } else {
                    continue;
                };
                for &mode in modes {
                    let params = ZstdParams {
                        mode,
                        ..base.clone()
                    };
                    verified += 1;
                    if compress(&params, plain)? == compressed {
                        return Ok(params);
                    }
                }
            }
        }
    }
    Err(ZstdError::NotReproduced { tried })
}

/// Encodes up to [`PREFIX_INPUT`] bytes of `plain` single-threaded without
/// ending the frame and tells whether the blocks it wrote so far are a
/// prefix of `expected`'s.
fn prefix_matches(params: &ZstdParams, plain: &[u8], expected: &[u8]) -> Result<bool, ZstdError> {
    let mut cctx = context(params, plain.len(), 0)?;
    let prefix = &plain[..plain.len().min(PREFIX_INPUT)];
    let mut out = Vec::with_capacity(zstd_safe::compress_bound(prefix.len()) + 1024);
    let mut input = InBuffer::around(prefix);
    while input.pos() < prefix.len() {
        let pos = out.len();
        let mut output = OutBuffer::around_pos(&mut out, pos);
        cctx.compress_stream2(&mut output, &mut input, ZSTD_EndDirective::ZSTD_e_continue)
            .map_err(zerr)?;
        // The header may differ between modes (single-segment, window
        // descriptor); the blocks after it must not.
        let (Some(ours), Some(theirs)) = (header_len(&out), header_len(expected)) else {
            continue;
        };
        let body = &out[ours..];
        let want = &expected[theirs..];
        if body.len() > want.len() || want[..body.len()] != *body {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Length of the frame header at the start of `frame`, once it is complete.
fn header_len(frame: &[u8]) -> Option<usize> {
    let fhd = *frame.get(4)?;
    let single = fhd & 0x20 != 0;
    let fcs = match fhd >> 6 {
        0 => usize::from(single),
        1 => 2,
        2 => 4,
        _ => 8,
    };
    let len = 5 + usize::from(!single) + [0, 1, 2, 4][usize::from(fhd & 3)] + fcs;
    (frame.len() >= len).then_some(len)
}

fn validate(params: &ZstdParams) -> Result<(), ZstdError> {
    if !(1..=MAX_LEVEL).contains(&params.level) {
        return Err(ZstdError::BadParams(format!(
            "level {} is not 1..={MAX_LEVEL}",
            params.level
        )));
    }
    if let Some(w) = params.long {
        if !(10..=MAX_WINDOW_LOG).contains(&w) {
            return Err(ZstdError::BadParams(format!(
                "long-distance window log {w} is not 10..={MAX_WINDOW_LOG}"
            )));
        }
    }
    Ok(())
}

/// A compression context set up for `params` and an input of `len` bytes.
fn context(params: &ZstdParams, len: usize, workers: u32) -> Result<CCtx<'static>, ZstdError> {
    validate(params)?;
    let mut cctx = CCtx::try_create().ok_or(ZstdError::Zstd("cannot allocate a context"))?;
    let mut set = |p| cctx.set_parameter(p).map(|_| ()).map_err(zerr);
    set(CParameter::CompressionLevel(params.level))?;
    set(CParameter::ChecksumFlag(params.checksum))?;
    set(CParameter::ContentSizeFlag(params.content_size))?;
    if let Some(w) = params.long {
        set(CParameter::EnableLongDistanceMatching(true))?;
        set(CParameter::WindowLog(w))?;
    }
    set(CParameter::NbWorkers(workers))?;
    if params.size_known {
        cctx.set_pledged_src_size(Some(len as u64)).map_err(zerr)?;
    }
    Ok(cctx)
}

/// Compresses `plain` into one frame with `params`. `params` comes from a
/// hostile bundle: it is validated first ([`ZstdError::BadParams`]); the
/// multi-threaded mode uses two workers.
pub fn compress(params: &ZstdParams, plain: &[u8]) -> Result<Vec<u8>, ZstdError> {
    let workers = if params.mode == ZstdMode::Multi {
        WORKERS
    } else {
        0
    };
    let mut cctx = context(params, plain.len(), workers)?;
    let mut out = Vec::with_capacity(zstd_safe::compress_bound(plain.len()) + 1024);
    let mut input = InBuffer::around(plain);
    // Streamed like the zstd CLI, rpm and dpkg do: the input goes in before
    // the frame is ended. (A first call that ends the frame takes libzstd's
    // one-shot path, whose output differs, and tells it the size.)
    while input.pos() < plain.len() {
        step(
            &mut cctx,
            &mut out,
            &mut input,
            ZSTD_EndDirective::ZSTD_e_continue,
        )?;
    }
    while step(
        &mut cctx,
        &mut out,
        &mut input,
        ZSTD_EndDirective::ZSTD_e_end,
    )? != 0
    {}
    Ok(out)
}

/// One `ZSTD_compressStream2` call appending to `out`; returns its result.
fn step(
    cctx: &mut CCtx<'_>,
    out: &mut Vec<u8>,
    input: &mut InBuffer<'_>,
    end: ZSTD_EndDirective,
) -> Result<usize, ZstdError> {
    if out.capacity() - out.len() < 64 << 10 {
        out.reserve(64 << 10);
    }
    let pos = out.len();
    let mut output = OutBuffer::around_pos(out, pos);
    cctx.compress_stream2(&mut output, input, end).map_err(zerr)
}
