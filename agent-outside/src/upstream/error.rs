//! What can go wrong reaching upstream.

use std::path::PathBuf;

/// Why an upstream operation failed. Every variant names the URL (or the
/// file) it is about; sources add which source and which artifact.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No answer: the connection could not be made or broke, after every
    /// retry. `via` names the proxy the request went through, if any.
    #[error("cannot reach {url}{via} (after {attempts} attempts): {reason}")]
    Connection {
        /// The URL.
        url: String,
        /// ` (through the proxy …)`, or empty.
        via: String,
        /// How many times it was tried.
        attempts: u32,
        /// The last error.
        reason: String,
    },
    /// Upstream answered with a status that is not a success (after every
    /// retry, for 429 and 5xx). A 404 is this variant with `status: 404`.
    #[error("{url}: HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// The content's checksum is not the one upstream's metadata gives.
    /// Nothing was kept.
    #[error("{url}: checksum mismatch: expected {expected}, got {got}")]
    ChecksumMismatch {
        /// The URL.
        url: String,
        /// `kind:hex` the metadata gives.
        expected: String,
        /// `kind:hex` of what upstream sent.
        got: String,
    },
    /// The content's size is not the one upstream's metadata gives.
    /// Nothing was kept.
    #[error("{url}: size mismatch: expected {expected} bytes, got {got}{}", if *.more { " or more" } else { "" })]
    SizeMismatch {
        /// The URL.
        url: String,
        /// The size the metadata gives.
        expected: u64,
        /// The bytes received (at least this many when `more`).
        got: u64,
        /// Upstream sent more than `got`; the rest was not read.
        more: bool,
    },
    /// The content is larger than the limit for its kind of file.
    #[error("{url}: larger than the limit of {limit} bytes")]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit.
        limit: u64,
    },
    /// Upstream answered a `Range` request with a range that does not start
    /// where the `.part` file ends (the `.part` file is started over on the
    /// next attempt).
    #[error("{url}: asked for bytes from {asked}, upstream answered the range {answered:?}")]
    BadRange {
        /// The URL.
        url: String,
        /// The first byte asked for.
        asked: u64,
        /// The `Content-Range` header received.
        answered: String,
    },
    /// A signature does not verify with any key of the keyring, or is not a
    /// signature at all.
    #[error("{what}: BAD SIGNATURE: {reason}")]
    Signature {
        /// The signed file.
        what: String,
        /// Why.
        reason: String,
    },
    /// A file of the cache could not be written or read.
    #[error("{}: {source}", path.display())]
    Cache {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl UpstreamError {
    /// Whether upstream said the file does not exist (HTTP 404 or 410).
    pub fn is_not_found(&self) -> bool {
        matches!(self, UpstreamError::Status { status, .. } if *status == 404 || *status == 410)
    }

    /// Whether the content did not match what the metadata promised.
    pub fn is_mismatch(&self) -> bool {
        matches!(
            self,
            UpstreamError::ChecksumMismatch { .. } | UpstreamError::SizeMismatch { .. }
        )
    }
}
