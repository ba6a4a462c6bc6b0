//! Errors of the bundle format, as types.
//!
//! Every variant names the thing that is wrong (which chunk, which volume,
//! which object) so the agents can print it as one readable line.

use crate::id::{ChunkId, StreamId};

/// Everything that can be wrong with a bundle, a manifest or a piece of one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The manifest file does not start with the manifest magic.
    #[error("not a Ferry manifest (bad magic bytes)")]
    BadManifestMagic,
    /// The manifest file is an unsigned manifest (`manifest.unsigned`, written
    /// by `ferry-out export --unsigned`): it has no signature at all.
    #[error("manifest is unsigned: it carries no signature (an `export --unsigned` bundle); sign it with `ferry-out sign` and publish it first")]
    Unsigned,
    /// The manifest's format version is one this reader does not know.
    #[error("manifest format version {0} is not supported (this reader knows versions 1 to {1}; a newer ferry-in is needed)")]
    UnsupportedFormat(u32, u32),
    /// The manifest file ends before its declared length.
    #[error("manifest is truncated: {0}")]
    TruncatedManifest(&'static str),
    /// The manifest is larger than the configured limit.
    #[error("manifest is {size} bytes, over the limit of {limit} bytes")]
    ManifestTooLarge {
        /// Declared or actual size.
        size: u64,
        /// Configured limit.
        limit: u64,
    },
    /// The manifest body does not decode.
    #[error("manifest body does not decode: {0}")]
    ManifestDecode(String),
    /// The signature does not verify against the key the manifest names.
    #[error("manifest signature is invalid (the manifest or its signature was altered)")]
    BadSignature,
    /// The signer is not in the trust set.
    #[error("manifest is signed by key {0}, which is not trusted here (add it with `ferry-in trust add`)")]
    UntrustedKey(String),
    /// A key file or key text does not parse.
    #[error("bad key: {0}")]
    BadKey(String),
    /// The manifest is internally inconsistent.
    #[error("manifest is inconsistent: {0}")]
    Inconsistent(String),
    /// A declared size goes beyond a receiver limit.
    #[error("{what} is {value}, over the limit of {limit}")]
    OverLimit {
        /// What was measured.
        what: String,
        /// Declared value.
        value: u64,
        /// Limit in force.
        limit: u64,
    },
    /// A manifest carries a critical extension this reader does not understand.
    #[error("manifest carries critical extension {0}, which this reader does not understand")]
    UnknownCriticalExtension(u32),
    /// The trust statements a manifest carries are malformed or misplaced.
    #[error(transparent)]
    Statement(#[from] crate::trust::StatementError),
    /// A rebase snapshot's record (extension kind 2) is malformed.
    #[error(transparent)]
    Rebase(#[from] crate::rebase::RebaseError),
    /// An object key or symlink target would leave the store.
    #[error("unsafe path {path:?}: {why}")]
    UnsafePath {
        /// The offending path.
        path: String,
        /// Why it is refused.
        why: &'static str,
    },
    /// A volume file is not the one the manifest describes.
    #[error("volume {index} is damaged: {why}")]
    BadVolume {
        /// Volume index.
        index: u32,
        /// What is wrong.
        why: String,
    },
    /// A chunk's bytes do not match its id, or do not decode.
    #[error("chunk {id} is damaged: {why}")]
    BadChunk {
        /// Chunk id.
        id: ChunkId,
        /// What is wrong.
        why: String,
    },
    /// An object's rebuilt bytes do not match its digest or size.
    #[error("object {key} does not match its digest: {why}")]
    BadObject {
        /// The object's key, as `source/path`.
        key: String,
        /// What is wrong.
        why: String,
    },
    /// A patch refers to a base object the receiver's catalog does not hold
    /// (or holds with other content). The sender must ship the object whole.
    #[error("object {key} is a patch against {base}, which this store cannot use: {why} (the outside must ship {key} whole)")]
    MissingBase {
        /// The patched object.
        key: String,
        /// The base it names.
        base: String,
        /// What is wrong with it.
        why: String,
    },
    /// A patch or a base's reference form does not rebuild what it declares.
    #[error("patch of {key} does not apply: {why}")]
    BadPatch {
        /// The patched object.
        key: String,
        /// What is wrong.
        why: String,
    },
    /// A bundle of another stream.
    #[error("bundle belongs to stream {found}, but this store follows stream {expected}")]
    WrongStream {
        /// Stream this store follows.
        expected: StreamId,
        /// Stream of the bundle.
        found: StreamId,
    },
    /// An I/O error from the reader or writer the caller handed in.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
