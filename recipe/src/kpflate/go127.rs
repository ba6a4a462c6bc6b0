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
//! stream at levels 1 to 9 (`DefaultCompression`, -1, is level 6 there, not
//! klauspost's 5); how the input is split into `Write`s does not change the
//! output (65,535-byte windows at levels 1 to 6, a 64 KiB window at 7 to
//! 9). Levels 1 to 6 are klauspost 1.15.12's ([`super::fast`],
//! [`super::better`]: Go 1.27's `level1.go`..`level6.go` read against them
//! show the same matchers, renamed) with the three differences of Go 1.27's
//! `huffman_bit_writer.go` from 1.15.12's ([`super::writer`], `go127`): a
//! block left open (no flush) counts one end of block in its histogram
//! (`tokens.extraHist[0] = 1`), sends only the code lengths it uses
//! (klauspost 1.18.1's "exact sizes") rather than all 286 + 30, and the
//! flat histogram test breaks at `abs >= max` (no output change). That
//! writer gives klauspost 1.18.2's output (`super::release`, release 3),
//! so encoder 8 is release 3 of encoder 7 but at level 4 (1.18.0 changed
//! level 4's matcher; Go 1.27 kept 1.15.12's). Levels 7 to 9 are klauspost
//! 1.18.2's `deflateLazy` ([`super::lazy`] with `v116` and `v1182`): Go
//! 1.27's `deflate.go` read (`findMatch` weighing from a gain of 4 at a
//! base cost of 3 when the chain is 100 or more, `tryBetterMatchAtEnd`,
//! `skipLiterals`, level 9's literal code from at most 32,768 bytes) is
//! 1.18.2's, split into functions; their known answers are the real
//! klauspost 1.18.2's.
//!
//! What is not: level 0, `HuffmanOnly`, `Flush`, `NewWriterDict`/`Reset`.
//! Checked against a dev oracle (Go 1.19 building klauspost 1.15.12 with
//! those writer changes applied) at levels 1 to 6, and against the real
//! klauspost 1.18.2 (release 3's golden vectors) at 1 to 3 and 5 to 9; not
//! against the real Go 1.27, which is not installed here: the Go 1.27
//! sources read were a snapshot of the release's `compress/flate` (see
//! docs/compression.md's session 21 on Go 1.27 and session 22 on the
//! klauspost releases), and a difference outside what was read would go
//! unseen.

use std::io::Read;

use super::Compressor;

/// The encoder id of Go 1.27's `compress/flate` (one stream).
pub const GO127_FLATE_ENCODER: u8 = 8;

/// (level, deflated length, CRC-32 of the deflated bytes) of
/// [`crate::zlib::sample`] as the dev oracle (Go 1.27's writer model, see
/// the module docs) deflates it with `flate.NewWriter(w, level)`, one
/// `Write`, `Close`.
pub(crate) const GO127_KNOWN_ANSWERS: [(u8, u64, u32); 9] = [
    (1, 63_578, 0xa8ba_4e74),
    (2, 62_427, 0x098b_385a),
    (3, 62_355, 0x58ce_b7fb),
    (4, 56_835, 0x807b_8564),
    (5, 55_998, 0x0d83_756b),
    (6, 54_494, 0xc508_dd83),
    // Levels 7 to 9: the real klauspost 1.18.2's (see the module docs).
    (7, 52_222, 0x5215_fecc),
    (8, 50_029, 0x3370_d814),
    (9, 46_704, 0xa620_07e2),
];

/// The levels modelled.
pub(crate) fn level_ok(level: u8) -> bool {
    (1..=9).contains(&level)
}

/// Deflates what `plain` reads as Go 1.27's `flate.NewWriter(w, level)`
/// (level 1 to 9) does when given the whole input and closed, handing the
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
