//! Limits a receiver enforces on hostile input before it allocates, decodes
//! or writes anything a bundle asks for.

use crate::Error;
use serde::{Deserialize, Serialize};

/// What a receiver is willing to accept. Every declared size in a manifest is
/// checked against these before it is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiverLimits {
    /// Largest manifest file, in bytes.
    pub max_manifest_bytes: u64,
    /// Largest uncompressed chunk.
    pub max_chunk_bytes: u32,
    /// Largest single object.
    pub max_object_bytes: u64,
    /// Most bytes one bundle may carry on the media (all volumes).
    pub max_bundle_bytes: u64,
    /// Most uncompressed bytes one bundle's chunks may expand to.
    pub max_bundle_raw_bytes: u64,
    /// Most volumes one bundle may have.
    pub max_volumes: u32,
    /// Most objects a catalog may hold.
    pub max_objects: u64,
}

impl Default for ReceiverLimits {
    fn default() -> Self {
        const GIB: u64 = 1 << 30;
        ReceiverLimits {
            max_manifest_bytes: 256 << 20,
            max_chunk_bytes: 4 << 20,
            max_object_bytes: 256 * GIB,
            max_bundle_bytes: 4096 * GIB,
            max_bundle_raw_bytes: 8192 * GIB,
            max_volumes: 100_000,
            max_objects: 50_000_000,
        }
    }
}

/// Fails with [`Error::OverLimit`] when `value > limit`.
pub fn check(what: &str, value: u64, limit: u64) -> Result<(), Error> {
    if value > limit {
        Err(Error::OverLimit {
            what: what.to_string(),
            value,
            limit,
        })
    } else {
        Ok(())
    }
}
