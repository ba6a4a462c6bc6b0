//! Go 1.27's standard-library `compress/flate` writer: encoder 8 of
//! [`Segment::Zlib`](crate::Segment::Zlib).
//!
//! Go 1.27 (golang/go issue 75532, CL 707355) replaced `compress/flate`'s
//! encoder with a cleaned copy of klauspost/compress's `flate`, so gzip
//! layers written by Docker/moby, containerd and other Go ≥ 1.27 programs
//! (`compress/gzip`, which deflates with `compress/flate`) are no longer
//! Go 1.19–1.26's output (encoder 3).
//!
//! What is modelled: one `flate.NewWriter(w, level)` + `Write`s + `Close`
//! stream at levels 1 to 6 (`DefaultCompression`, -1, is level 6 there, not
//! klauspost's 5); how the input is split into `Write`s does not change the
//! output (65,535-byte windows). It is klauspost 1.15.12's levels 1 to 6
//! ([`super::fast`], [`super::better`]: Go 1.27's `level1.go`..`level6.go`
//! read against them show the same matchers, renamed) with the three
//! differences of Go 1.27's `huffman_bit_writer.go` from 1.15.12's
//! ([`super::writer`], `go127`): a block left open (no flush) counts one
//! end of block in its histogram (`tokens.extraHist[0] = 1`, which changes
//! the reuse estimate and the table), sends only the code lengths it uses
//! (klauspost 1.18.1's "exact sizes") rather than all 286 + 30, and the flat
//! histogram test breaks at `abs >= max` (no output change).
//!
//! What is not: levels 7 to 9 (Go 1.27 has klauspost ≥ 1.16's `deflateLazy`:
//! other good/lazy/nice/chain values, a gain-weighed `findMatch`, a look for
//! a better match at a match's end, literal skipping — none modelled here,
//! so level 9 layers, XFL 2, stay literal), level 0, `HuffmanOnly`,
//! `Flush`, `NewWriterDict`/`Reset`. Checked against a dev oracle (Go 1.19
//! building klauspost 1.15.12 with those writer changes applied), not the
//! real Go 1.27, which is not installed here: the Go 1.27 sources read were
//! a snapshot of the release's `compress/flate` (see docs/compression.md,
//! session 22), and a difference outside what was read would go unseen.

use std::io::Read;

use super::Compressor;

/// The encoder id of Go 1.27's `compress/flate` (one stream).
pub const GO127_FLATE_ENCODER: u8 = 8;

/// (level, deflated length, CRC-32 of the deflated bytes) of
/// [`crate::zlib::sample`] as the dev oracle (Go 1.27's writer model, see
/// the module docs) deflates it with `flate.NewWriter(w, level)`, one
/// `Write`, `Close`.
pub(crate) const GO127_KNOWN_ANSWERS: [(u8, u64, u32); 6] = [
    (1, 63_578, 0xa8ba_4e74),
    (2, 62_427, 0x098b_385a),
    (3, 62_355, 0x58ce_b7fb),
    (4, 56_835, 0x807b_8564),
    (5, 55_998, 0x0d83_756b),
    (6, 54_494, 0xc508_dd83),
];

/// The levels modelled.
pub(crate) fn level_ok(level: u8) -> bool {
    (1..=6).contains(&level)
}

/// Deflates what `plain` reads as Go 1.27's `flate.NewWriter(w, level)`
/// (level 1 to 6) does when given the whole input and closed, handing the
/// output to `sink` as it comes; stops as [`super::deflate_to`] does.
pub(crate) fn deflate_to<E>(
    level: u8,
    plain: &mut dyn Read,
    sink: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), Result<E, std::io::Error>> {
    if !level_ok(level) {
        return Err(Err(std::io::Error::other(format!(
            "Go 1.27 flate level {level} is not modelled"
        ))));
    }
    super::stream_to(Compressor::new_go127(level), plain, sink)
}
