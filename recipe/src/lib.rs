//! Bit-exact rebuild recipes for compressed upstream objects.
//!
//! Upstream packages carry compressed streams (a deb's `data.tar.xz`, an
//! RPM's zstd payload). Shipping their decompressed content deduplicates far
//! better, but the inside must serve the original bytes, so a stream is only
//! shipped decompressed when the encoder settings that rebuild it byte for
//! byte are known and verified. Each module offers the same three calls:
//!
//! - `decompress(data, limit)`: decode one stream at the start of `data`,
//!   bounded, and say how many bytes it used;
//! - `find_params(compressed, plain)`: the settings that reproduce
//!   `compressed` from `plain`, verified by re-encoding, or a typed reason;
//! - `compress(params, plain)`: re-encode; `params` come from an untrusted
//!   bundle and are validated.
//!
//! Modules:
//! - [`xz`]: `.xz` streams (liblzma, single- and multi-threaded encoders).
//! - [`zstd`]: zstd frames (libzstd, single- and multi-threaded modes).
#![warn(unreachable_pub)]
#![forbid(unsafe_code)]

pub mod xz;
pub mod zstd;
