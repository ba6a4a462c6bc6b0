//! Ferry's bundle format, as a pure library.
//!
//! This crate knows how a bundle is laid out, how content is cut into chunks,
//! how chunks are compressed and identified, how a manifest is signed and
//! verified, and how one catalog differs from the next. It does no I/O of its
//! own: it works on byte slices and `Read`/`Write`, takes the current time as an
//! argument, and never touches the filesystem or the network. The agents
//! (`ferry-out`, `ferry-in`) do all of that.
//!
//! The byte-level specification lives in `docs/bundle-format.md`; this crate is
//! its reference implementation.
//!
//! Map:
//! - [`id`]: chunk ids (BLAKE3), object digests (SHA-256), stream ids.
//! - [`chunking`]: content-defined chunking (FastCDC 2020) of a byte stream.
//! - [`codec`]: how one chunk is stored (raw or zstd) and checked on the way back.
//! - [`path`]: object keys and the rules that keep them inside a store.
//! - [`catalog`]: the set of objects a stream holds, and deltas between two.
//! - [`manifest`]: the signed manifest and its file encoding.
//! - [`volume`]: volume files that carry the chunk payloads.
//! - [`builder`]: the sender's side: chunks into volumes, a catalog delta into
//!   a signed manifest (volumes go to a sink the caller provides).
//! - [`diode`]: the one-way UDP wire format with RaptorQ forward error correction,
//!   and the diode receiver as a sans-I/O state machine.
//! - [`push`]: the two-way push protocol's messages.
//! - [`receipt`]: the inside's signed receipt of what it holds, carried back by hand.
//! - [`keys`]: signing keys, public key text form, trust sets.
//! - [`limits`]: the receiver's limits against hostile input.

#![forbid(unsafe_code)]
#![warn(unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::too_many_lines))]
#![warn(missing_docs)]

pub mod builder;
pub mod catalog;
pub mod chunking;
pub mod codec;
pub mod delta;
pub mod diode;
pub mod error;
pub mod id;
pub mod inventory;
pub mod keys;
pub mod limits;
pub mod manifest;
pub mod path;
pub mod provenance;
pub mod push;
pub mod rebase;
pub mod receipt;
mod signed_file;
pub mod trust;
pub mod volume;

pub use error::Error;

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Helpers shared by this crate's unit tests.
#[cfg(test)]
mod test_util {
    /// `n` pseudo-random bytes from xorshift64 (13, 7, 17), reproducible by seed.
    pub(crate) fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }
}
