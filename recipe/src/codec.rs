//! Bounded decoding of one stream, and the deflate side of reproduction
//! (preflate-rs). xz and zstd live in their own modules.

use std::panic::{catch_unwind, AssertUnwindSafe};

use flate2::{Decompress, FlushDecompress, Status};
use preflate_rs::{preflate_whole_deflate_stream, recreate_whole_deflate_stream, PreflateConfig};

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
const RATIO_SLACK: u64 = 1 << 20;

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

/// Decodes the stream at the start of `data`: its plain bytes and how many bytes
/// of `data` it used.
pub(crate) fn decode(
    codec: Codec,
    data: &[u8],
    bounds: &Bounds,
) -> Result<(Vec<u8>, usize), LiteralReason> {
    match codec {
        Codec::Deflate => inflate(data, bounds),
        Codec::Xz => crate::xz::decompress(data, bounds.limit).map_err(|e| match e {
            crate::xz::XzError::TooLarge { .. } => bounds.over_limit(),
            _ => LiteralReason::Corrupt,
        }),
        Codec::Zstd => crate::zstd::decompress(data, bounds.limit).map_err(|e| match e {
            crate::zstd::ZstdError::TooLarge { .. } => bounds.over_limit(),
            _ => LiteralReason::Corrupt,
        }),
    }
}

/// Inflates one raw deflate stream at the start of `data`, within `bounds`.
fn inflate(data: &[u8], bounds: &Bounds) -> Result<(Vec<u8>, usize), LiteralReason> {
    let mut d = Decompress::new(false);
    let mut out: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let (in_before, out_before) = (d.total_in(), d.total_out());
        let input = data.get(in_before as usize..).unwrap_or_default();
        let status = d
            .decompress(input, &mut buf, FlushDecompress::None)
            .map_err(|_| LiteralReason::Corrupt)?;
        let produced = (d.total_out() - out_before) as usize;
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
        out.extend_from_slice(&buf[..produced]);
        if status == Status::StreamEnd {
            return Ok((out, d.total_in() as usize));
        }
        if d.total_in() == in_before && produced == 0 {
            return Err(LiteralReason::Corrupt);
        }
    }
}

/// Runs `f`, turning a panic inside preflate-rs into an error: upstream data and
/// recipes are hostile, and a library bug must not take the agent down.
fn guarded<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| Err("preflate-rs panicked".to_string()))
}

/// preflate-rs's corrections that rebuild `compressed` (one whole raw deflate
/// stream) from `plain`, verified by rebuilding it.
pub(crate) fn deflate_corrections(
    compressed: &[u8],
    plain: &[u8],
    max_chain: u32,
) -> Result<Vec<u8>, LiteralReason> {
    let config = PreflateConfig {
        max_chain_length: max_chain,
        plain_text_limit: plain.len(),
        // Verified below with the same call rebuild makes.
        verify_compression: false,
    };
    let corrections = guarded(|| {
        let (result, text) =
            preflate_whole_deflate_stream(compressed, &config).map_err(|e| e.to_string())?;
        if result.compressed_size != compressed.len() || text.text() != plain {
            return Err("preflate-rs parsed a different stream".to_string());
        }
        Ok(result.corrections)
    })
    .map_err(|_| LiteralReason::PreflateFailed)?;
    match deflate_rebuild(plain, &corrections) {
        Ok(again) if again == compressed => Ok(corrections),
        _ => Err(LiteralReason::NotIdentical),
    }
}

/// Rebuilds a raw deflate stream from its plain bytes and preflate corrections.
pub(crate) fn deflate_rebuild(plain: &[u8], corrections: &[u8]) -> Result<Vec<u8>, String> {
    guarded(|| recreate_whole_deflate_stream(plain, corrections).map_err(|e| e.to_string()))
}
