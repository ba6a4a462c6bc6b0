//! xz streams: bounded decoding, and (placeholder) encoder-parameter search.
//!
//! PLACEHOLDER: the real module (parameter search against a pinned liblzma) is
//! written in parallel and replaces this file wholesale at merge. Here
//! [`find_params`] never finds settings, so every xz stream stays literal;
//! [`decompress`] really decodes.

use liblzma::stream::{Action, Status, Stream};

/// Encoder settings that reproduce one xz stream (empty in the placeholder).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct XzParams {}

/// Why an xz stream could not be decoded or reproduced.
#[derive(Debug, thiserror::Error)]
pub enum XzError {
    /// liblzma refused the stream.
    #[error("xz stream is corrupt: {0}")]
    Corrupt(liblzma::stream::Error),
    /// The input ended before the end of the stream.
    #[error("xz stream is truncated")]
    Truncated,
    /// The stream decodes to more than the allowed number of bytes.
    #[error("xz stream decodes to more than {limit} bytes")]
    TooLarge {
        /// The limit that was passed.
        limit: u64,
    },
    /// No encoder settings known here reproduce the stream.
    #[error("no xz encoder settings reproduce this stream")]
    NotModelled,
}

const MEMLIMIT: u64 = 256 << 20;

/// Decodes one whole .xz stream at the start of `data`, producing at most `limit`
/// bytes; returns the plain bytes and how many bytes of `data` the stream used.
pub fn decompress(data: &[u8], limit: u64) -> Result<(Vec<u8>, usize), XzError> {
    let mut stream = Stream::new_stream_decoder(MEMLIMIT, 0).map_err(XzError::Corrupt)?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let (in_before, out_before) = (stream.total_in(), stream.total_out());
        let input = data.get(in_before as usize..).unwrap_or_default();
        let status = stream
            .process(input, &mut buf, Action::Run)
            .map_err(XzError::Corrupt)?;
        let produced = (stream.total_out() - out_before) as usize;
        if out.len() as u64 + produced as u64 > limit {
            return Err(XzError::TooLarge { limit });
        }
        out.extend_from_slice(&buf[..produced]);
        if status == Status::StreamEnd {
            return Ok((out, stream.total_in() as usize));
        }
        if produced == 0 && stream.total_in() == in_before {
            return Err(XzError::Truncated);
        }
    }
}

/// Encoder settings that reproduce `compressed` exactly from `plain`, or why not.
/// (Placeholder: always [`XzError::NotModelled`].)
pub fn find_params(_compressed: &[u8], _plain: &[u8]) -> Result<XzParams, XzError> {
    Err(XzError::NotModelled)
}

/// Compresses with `params` (hostile input: bounded and checked).
/// (Placeholder: always [`XzError::NotModelled`].)
pub fn compress(_params: &XzParams, _plain: &[u8]) -> Result<Vec<u8>, XzError> {
    Err(XzError::NotModelled)
}
