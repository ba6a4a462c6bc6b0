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
    /// Largest expanded form (and base reference form) a rebuilt object may
    /// declare. Rebuilding holds it in memory.
    pub max_expanded_bytes: u64,
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
            max_expanded_bytes: GIB,
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

/// What a diode receiver is willing to hold for bundles it is rebuilding.
/// Every packet's announced geometry is checked against these before a slot,
/// a decoder or a spool file is made for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiodeLimits {
    /// Most files in one bundle (manifest plus volumes).
    pub max_files: u32,
    /// Largest manifest (file 0).
    pub max_manifest_bytes: u64,
    /// Most bytes all files of one bundle may add up to.
    pub max_bundle_bytes: u64,
    /// Most segments one bundle may have (the receiver keeps a byte per segment).
    pub max_segments: u64,
    /// Most bundles received at once (slots).
    pub max_bundles: usize,
    /// Most segments being decoded at once.
    pub max_decoders: usize,
    /// Most bytes of symbols held by all decoders together.
    pub max_pending_bytes: u64,
    /// A bundle none of whose segments was rebuilt for this long (milliseconds)
    /// is dropped, and so is restored progress older than this.
    pub stale_after_ms: u64,
}

impl DiodeLimits {
    /// The diode limits implied by a receiver's bundle limits, with the
    /// default slot, decoder and expiry settings.
    pub fn from_receiver(l: &ReceiverLimits) -> Self {
        DiodeLimits {
            max_files: l.max_volumes.saturating_add(1),
            max_manifest_bytes: l.max_manifest_bytes,
            max_bundle_bytes: l.max_bundle_bytes,
            ..DiodeLimits::default()
        }
    }
}

impl Default for DiodeLimits {
    fn default() -> Self {
        let r = ReceiverLimits::default();
        DiodeLimits {
            max_files: r.max_volumes + 1,
            max_manifest_bytes: r.max_manifest_bytes,
            max_bundle_bytes: r.max_bundle_bytes,
            max_segments: 1 << 22,
            max_bundles: 8,
            max_decoders: 512,
            max_pending_bytes: 1 << 30,
            stale_after_ms: 10 * 60 * 1000,
        }
    }
}
