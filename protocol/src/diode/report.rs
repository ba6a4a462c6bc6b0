//! What the diode receiver reports and persists: its counters, where each
//! bundle being received stands, the progress it saves for a restart, and why
//! restored progress may be refused.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Packet and segment counters, for the status file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Datagrams handled.
    pub packets: u64,
    /// Not a valid packet (short, wrong magic, damaged, fields out of range).
    pub garbage: u64,
    /// Of another stream than the store follows.
    pub other_stream: u64,
    /// Of a bundle already applied.
    pub already_applied: u64,
    /// Geometry disagreeing with earlier packets of the same bundle or file.
    pub conflicting: u64,
    /// For a segment or bundle already complete, or a repeated symbol.
    pub duplicate_or_late: u64,
    /// For a new bundle while every slot holds one that is making progress.
    pub over_capacity: u64,
    /// Announcing a bundle beyond the receiver's limits.
    pub over_limit: u64,
    /// A symbol id seen before with other bytes (forged or damaged).
    pub conflicting_symbols: u64,
    /// Segments whose rebuilt bytes contradicted a received symbol, started over.
    pub poisoned_segments: u64,
    /// Partial segments dropped for memory (rebuilt from a later pass).
    pub evicted_decoders: u64,
    /// Bundles dropped after the expiry time without progress.
    pub expired_bundles: u64,
    /// Bundles that lost their slot to another bundle.
    pub evicted_bundles: u64,
    /// Segments rebuilt.
    pub segments_rebuilt: u64,
    /// Bytes of bundle files rebuilt.
    pub rebuilt_bytes: u64,
    /// Symbol ids the rebuilt segments spanned (lowest to highest received
    /// before the rebuild), and of those, how many never arrived: the
    /// link's loss as measured here ([`Counters::loss`]).
    pub span_symbols: u64,
    /// Of [`Counters::span_symbols`], those lost on the way.
    pub span_lost: u64,
}

impl Counters {
    /// The share of symbols lost on the way, as measured over the rebuilt
    /// segments (`None` before one was rebuilt). A sender's `--loss` sized
    /// to it (with a margin) keeps repair overhead low.
    pub fn loss(&self) -> Option<f64> {
        loss(self.span_symbols, self.span_lost)
    }
}

fn loss(span: u64, lost: u64) -> Option<f64> {
    (span > 0).then(|| lost as f64 / span as f64)
}

/// Where a bundle being received stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BundleReport {
    /// Stream, hex.
    pub stream: String,
    /// Sequence.
    pub sequence: u64,
    /// Files in the bundle.
    pub files: u16,
    /// Files at least one packet was seen for.
    pub files_seen: usize,
    /// Segments rebuilt.
    pub segments_received: u64,
    /// Segments with some symbols in.
    pub segments_recoverable: u64,
    /// Segments (of files seen) without any symbol.
    pub segments_missing: u64,
    /// Symbols held by partial segments.
    pub symbols_pending: u64,
    /// Symbol ids its rebuilt segments spanned ([`Counters::span_symbols`]).
    pub span_symbols: u64,
    /// Of those, lost on the way.
    pub span_lost: u64,
}

impl BundleReport {
    /// The share of symbols lost on the way to this bundle's rebuilt segments.
    pub fn loss(&self) -> Option<f64> {
        loss(self.span_symbols, self.span_lost)
    }
}

/// Persisted progress of one partial bundle (`progress.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleProgress {
    /// Stream, hex.
    pub stream: String,
    /// Sequence.
    pub sequence: u64,
    /// Files in the bundle.
    pub file_count: u16,
    /// Per file seen: its geometry and the segments rebuilt.
    pub files: BTreeMap<u16, FileProgress>,
    /// When a segment was last rebuilt (milliseconds since the Unix epoch);
    /// absent in progress files of older receivers.
    #[serde(default)]
    pub last_progress_ms: Option<u64>,
}

/// Persisted progress of one file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileProgress {
    /// File size.
    pub size: u64,
    /// Segment size.
    pub segment_size: u32,
    /// Symbol size.
    pub symbol_size: u16,
    /// Segments rebuilt.
    pub done: Vec<u32>,
}

/// Why restored progress was not taken up.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RestoreRefused {
    /// The stream field is not a stream id.
    #[error("the stream id {0:?} is not valid")]
    BadStream(String),
    /// Another stream than the store follows.
    #[error("it belongs to another stream than this store follows")]
    OtherStream,
    /// Applied already, or already complete.
    #[error("bundle {0} is applied or complete already")]
    AlreadyApplied(u64),
    /// No segment was rebuilt for longer than the expiry time.
    #[error("no segment was rebuilt for {age_secs} s (expiry {limit_secs} s)")]
    Stale {
        /// How long ago.
        age_secs: u64,
        /// The expiry time.
        limit_secs: u64,
    },
    /// Its geometry is beyond the receiver's limits.
    #[error("its {0} is beyond this receiver's limits")]
    OverLimit(&'static str),
    /// Every slot is taken.
    #[error("every receive slot is taken")]
    NoSlot,
}
