//! Bounded decoding of one stream, and the deflate side of reproduction
//! (preflate-rs). xz and zstd live in their own modules.

use std::panic::{catch_unwind, AssertUnwindSafe};

use std::io::{Cursor, Write};

use preflate_rs::{PreflateConfig, PreflateStreamProcessor, RecreateStreamProcessor};

use crate::recipe::DeflateChunk;
use crate::report::LiteralReason;

/// The compression format of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Codec {
    Deflate,
    Xz,
    Zstd,
}

/// Output allowed beyond `consumed input × max_ratio` while a deflate stream is
/// still being inflated, so that a legitimate stream with a very compressible
/// start is not cut short; the final check is strict.
pub(crate) const RATIO_SLACK: u64 = 1 << 20;

/// The bounds of one decode: at most `limit` bytes of output; `ratio_bound`
/// says whether `limit` is the ratio bound (true) or the expansion budget.
pub(crate) struct Bounds {
    pub(crate) limit: u64,
    pub(crate) max_ratio: u64,
    pub(crate) ratio_bound: bool,
}

impl Bounds {
    fn over_limit(&self) -> LiteralReason {
        if self.ratio_bound {
            LiteralReason::Ratio
        } else {
            LiteralReason::TooLarge
        }
    }
}

/// Decodes the stream at the start of `data`, appending its plain bytes to
/// `out` (deflate inflates in place, so a large stream is not held twice);
/// returns how many bytes of `data` it used. On error `out` may hold part
/// of the stream: the caller truncates it.
pub(crate) fn decode_into(
    codec: Codec,
    data: &[u8],
    bounds: &Bounds,
    out: &mut Vec<u8>,
) -> Result<usize, LiteralReason> {
    let appended = |(plain, used): (Vec<u8>, usize), out: &mut Vec<u8>| {
        out.extend_from_slice(&plain);
        used
    };
    match codec {
        Codec::Deflate => inflate_into(data, bounds, out),
        Codec::Xz => crate::xz::decompress_into(data, bounds.limit, out).map_err(|e| match e {
            crate::xz::XzError::TooLarge { .. } => bounds.over_limit(),
            _ => LiteralReason::Corrupt,
        }),
        Codec::Zstd => crate::zstd::decompress(data, bounds.limit)
            .map(|d| appended(d, out))
            .map_err(|e| match e {
                crate::zstd::ZstdError::TooLarge { .. } => bounds.over_limit(),
                _ => LiteralReason::Corrupt,
            }),
    }
}

/// Inflates one raw deflate stream at the start of `data`, within `bounds`,
/// appending to `out`. zlib-rs inflates (its safe API): it is about twice as
/// fast as C zlib's inflate on a layer, and its output is checked as any
/// decoder's is (the stream's CRC by its container, every rebuilt stream by
/// its bytes).
fn inflate_into(data: &[u8], bounds: &Bounds, out: &mut Vec<u8>) -> Result<usize, LiteralReason> {
    const STEP: usize = 256 << 10;
    let mut d = zlib_rs::Inflate::new(false, 15);
    loop {
        let in_before = d.total_in();
        let out_before = d.total_out();
        let input = data.get(in_before as usize..).unwrap_or_default();
        let at = out.len();
        out.resize(at + STEP, 0);
        let status = d.decompress(input, &mut out[at..], zlib_rs::InflateFlush::NoFlush);
        out.truncate(at + (d.total_out() - out_before) as usize);
        let status = status.map_err(|_| LiteralReason::Corrupt)?;
        if d.total_out() > bounds.limit {
            return Err(bounds.over_limit());
        }
        let ratio_cap = d
            .total_in()
            .saturating_mul(bounds.max_ratio)
            .saturating_add(RATIO_SLACK);
        if d.total_out() > ratio_cap {
            return Err(LiteralReason::Ratio);
        }
        if status == zlib_rs::Status::StreamEnd {
            return Ok(d.total_in() as usize);
        }
        if d.total_in() == in_before && d.total_out() == out_before {
            return Err(LiteralReason::Corrupt);
        }
    }
}

/// Runs `f`, turning a panic inside preflate-rs into an error: upstream data and
/// recipes are hostile, and a library bug must not take the agent down.
fn guarded<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| Err("preflate-rs panicked".to_string()))
}

/// preflate-rs's chunks and corrections that rebuild `compressed` (one whole raw
/// deflate stream) from `plain`, verified by rebuilding it when `check` is set
/// (else the caller rebuilds the whole object and checks it). preflate-rs cannot
/// cut a stream whose single block holds more than `chunk` plain bytes: such a
/// stream is tried again as one chunk, if it is at most [`ONE_CHUNK_MOST`]
/// times `chunk` (preflate-rs holds a few times its chunk: a 158 MB stream
/// it failed on in chunks would take it past the agents' memory bound).
pub(crate) fn deflate_chunks(
    compressed: &[u8],
    plain: &[u8],
    max_chain: u32,
    chunk: u64,
    check: bool,
) -> Result<Vec<DeflateChunk>, LiteralReason> {
    let chunked = chunks_of(compressed, plain, max_chain, chunk, check);
    let len = plain.len() as u64;
    if chunked.is_err() && chunk < len && len <= ONE_CHUNK_MOST.saturating_mul(chunk) {
        return chunks_of(compressed, plain, max_chain, plain.len() as u64, check);
    }
    chunked
}

/// How many chunks' worth of plain bytes a stream preflate-rs failed on in
/// chunks may have to be tried again as one.
const ONE_CHUNK_MOST: u64 = 4;

fn chunks_of(
    compressed: &[u8],
    plain: &[u8],
    max_chain: u32,
    chunk: u64,
    check: bool,
) -> Result<Vec<DeflateChunk>, LiteralReason> {
    let config = PreflateConfig {
        max_chain_length: max_chain,
        plain_text_limit: usize::try_from(chunk).unwrap_or(usize::MAX).max(1),
        // Verified below with the same calls rebuild makes.
        verify_compression: false,
    };
    let chunks = guarded(|| {
        let mut p = PreflateStreamProcessor::new(&config);
        let (mut at, mut plain_at) = (0usize, 0usize);
        let mut chunks = Vec::new();
        while !p.is_done() {
            let r = p.decompress(&compressed[at..]).map_err(|e| e.to_string())?;
            let text = p.plain_text().text();
            if r.compressed_size == 0 && text.is_empty() {
                return Err("preflate-rs made no progress".to_string());
            }
            if plain.get(plain_at..plain_at + text.len()) != Some(text) {
                return Err("preflate-rs decoded other bytes".to_string());
            }
            plain_at += text.len();
            at += r.compressed_size;
            chunks.push(DeflateChunk {
                plain_len: text.len() as u64,
                compressed_len: r.compressed_size as u64,
                corrections: r.corrections,
            });
            p.shrink_to_dictionary();
        }
        if at != compressed.len() || plain_at != plain.len() {
            return Err("preflate-rs parsed a different stream".to_string());
        }
        Ok(chunks)
    })
    .map_err(|_| LiteralReason::PreflateFailed)?;
    if !check {
        return Ok(chunks);
    }
    let mut again = Vec::with_capacity(compressed.len());
    match deflate_rebuild(plain, &chunks, &mut again) {
        Ok(()) if again == compressed => Ok(chunks),
        _ => Err(LiteralReason::NotIdentical),
    }
}

/// Why a deflate segment did not rebuild.
#[derive(Debug)]
pub(crate) enum DeflateFail {
    /// preflate-rs refused (or panicked on) the corrections.
    Preflate(String),
    /// A chunk rebuilt other than its declared length.
    ChunkLen {
        chunk: usize,
        declared: u64,
        produced: u64,
    },
    /// Writing the rebuilt bytes failed.
    Write(std::io::Error),
}

/// Rebuilds a raw deflate stream from its plain bytes and preflate chunks,
/// writing each chunk to `out` once its length is checked (a large stream is
/// never held whole). The caller has checked that the chunks' plain lengths
/// add up to `plain.len()`.
pub(crate) fn deflate_rebuild(
    plain: &[u8],
    chunks: &[DeflateChunk],
    out: &mut impl Write,
) -> Result<(), DeflateFail> {
    let mut p = DeflateRebuilder::new();
    let mut at = 0usize;
    for (index, chunk) in chunks.iter().enumerate() {
        let end = usize::try_from(chunk.plain_len)
            .ok()
            .and_then(|n| at.checked_add(n))
            .filter(|&e| e <= plain.len())
            .ok_or_else(|| DeflateFail::Preflate("chunk lengths pass the plain bytes".into()))?;
        p.chunk(index, &plain[at..end], chunk, out)?;
        at = end;
    }
    Ok(())
}

/// One deflate stream rebuilt chunk after chunk, each chunk's plain bytes
/// given as they come (the state between chunks is preflate-rs's dictionary).
pub(crate) struct DeflateRebuilder(RecreateStreamProcessor);

impl DeflateRebuilder {
    pub(crate) fn new() -> Self {
        DeflateRebuilder(RecreateStreamProcessor::new())
    }

    /// Rebuilds chunk `index` from `text`, its plain bytes, and writes it to
    /// `out` once its length is checked.
    pub(crate) fn chunk(
        &mut self,
        index: usize,
        text: &[u8],
        chunk: &DeflateChunk,
        out: &mut impl Write,
    ) -> Result<(), DeflateFail> {
        let p = &mut self.0;
        let bytes = guarded(|| {
            p.recompress(&mut Cursor::new(text), &chunk.corrections)
                .map(|(bytes, _)| bytes)
                .map_err(|e| e.to_string())
        })
        .map_err(DeflateFail::Preflate)?;
        if bytes.len() as u64 != chunk.compressed_len {
            return Err(DeflateFail::ChunkLen {
                chunk: index,
                declared: chunk.compressed_len,
                produced: bytes.len() as u64,
            });
        }
        out.write_all(&bytes).map_err(DeflateFail::Write)
    }
}
