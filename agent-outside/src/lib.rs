//! ferry-out: the agent on the connected side.
//!
//! It reads upstream sources ([`source`]), keeps a ledger of what it has
//! shipped ([`ledger`]), and writes signed delta bundles ([`export`]),
//! signed at once or apart from the export ([`signing`]); [`reship`] ships
//! again what the inside's scrub found bad; [`receipts`] records what each
//! inside says it holds.
//! Every source reaches upstream through [`upstream`]; the state
//! directory's paths are in [`layout`].

#![forbid(unsafe_code)]
#![warn(unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::too_many_lines))]

pub mod adopted;
pub mod config;
pub mod delta;
pub mod diode;
pub mod export;
pub mod keys;
pub mod layout;
pub mod ledger;
pub mod policy;
pub mod prune;
pub mod push;
pub mod receipts;
pub mod reship;
pub mod signing;
pub mod source;
pub mod upstream;

/// Helpers shared by this crate's unit tests.
#[cfg(test)]
pub(crate) mod test_util {
    /// `len` pseudo-random bytes from xorshift64 (13, 7, 17), reproducible by seed.
    pub(crate) fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }
}
