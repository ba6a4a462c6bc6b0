//! zstd frames: bounded decoding, and (placeholder) encoder-parameter search.
//!
//! PLACEHOLDER: the real module (parameter search against a pinned libzstd) is
//! written in parallel and replaces this file wholesale at merge. Here
//! [`find_params`] never finds settings, so every zstd stream stays literal;
//! [`decompress`] really decodes (one frame).

use zstd::stream::raw::{Decoder, InBuffer, Operation, OutBuffer};

/// Encoder settings that reproduce one zstd stream (empty in the placeholder).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ZstdParams {}

/// Why a zstd stream could not be decoded or reproduced.
#[derive(Debug, thiserror::Error)]
pub enum ZstdError {
    /// libzstd refused the frame.
    #[error("zstd frame is corrupt: {0}")]
    Corrupt(std::io::Error),
    /// The input ended before the end of the frame.
    #[error("zstd frame is truncated")]
    Truncated,
    /// The frame decodes to more than the allowed number of bytes.
    #[error("zstd frame decodes to more than {limit} bytes")]
    TooLarge {
        /// The limit that was passed.
        limit: u64,
    },
    /// No encoder settings known here reproduce the frame.
    #[error("no zstd encoder settings reproduce this frame")]
    NotModelled,
}

/// Decodes one whole zstd frame at the start of `data`, producing at most `limit`
/// bytes; returns the plain bytes and how many bytes of `data` the frame used.
pub fn decompress(data: &[u8], limit: u64) -> Result<(Vec<u8>, usize), ZstdError> {
    let mut decoder = Decoder::new().map_err(ZstdError::Corrupt)?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut pos = 0usize;
    loop {
        let mut input = InBuffer::around(&data[pos..]);
        let mut output = OutBuffer::around(&mut buf[..]);
        let hint = decoder
            .run(&mut input, &mut output)
            .map_err(ZstdError::Corrupt)?;
        let (used, produced) = (input.pos(), output.pos());
        pos += used;
        if out.len() as u64 + produced as u64 > limit {
            return Err(ZstdError::TooLarge { limit });
        }
        out.extend_from_slice(&buf[..produced]);
        if hint == 0 {
            return Ok((out, pos));
        }
        if used == 0 && produced == 0 {
            return Err(ZstdError::Truncated);
        }
    }
}

/// Encoder settings that reproduce `compressed` exactly from `plain`, or why not.
/// (Placeholder: always [`ZstdError::NotModelled`].)
pub fn find_params(_compressed: &[u8], _plain: &[u8]) -> Result<ZstdParams, ZstdError> {
    Err(ZstdError::NotModelled)
}

/// Compresses with `params` (hostile input: bounded and checked).
/// (Placeholder: always [`ZstdError::NotModelled`].)
pub fn compress(_params: &ZstdParams, _plain: &[u8]) -> Result<Vec<u8>, ZstdError> {
    Err(ZstdError::NotModelled)
}
