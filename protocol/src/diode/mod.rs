//! The one-way (data diode) transport: bundle files cut into segments, each
//! segment protected by RaptorQ (RFC 6330) forward error correction and
//! carried in self-describing UDP packets (`docs/diode.md`).
//!
//! - [`wire`]: the packet format, segment geometry and the sender's encoder.
//! - [`plan`]: RaptorQ encoders from cached encoding plans.
//! - [`segment`]: rebuilding one segment, refusing rebuilds a received
//!   symbol contradicts.
//! - [`receiver`]: the receiver's state machine, sans I/O: packets and the
//!   time in, file writes and bundle events out.

pub mod plan;
pub mod receiver;
pub mod report;
pub mod segment;
pub mod wire;

#[cfg(test)]
mod tests;

pub use receiver::{
    Abandon, BundleId, BundleProgress, BundleReport, Counters, Event, FileProgress, Receiver,
    RestoreRefused,
};
pub use segment::{Added, SegmentDecoder};
pub use wire::{
    encode_segment, interleave, repair_count, repair_for_loss, segment_count, segment_len,
    source_symbols, symbol_size_for_mtu, taper_keys, taper_order, Garbage, Packet, ALIGNMENT,
    CHECK_LEN, HEADER_LEN, LOSS_TARGET, MAGIC, MAX_FILES, MAX_SEGMENT, MAX_SYMBOLS, TAPER, VERSION,
};
