//! Which klauspost/compress release encoders 5 (pgzip) and 7 (one `flate`
//! stream) model: the high nibble of their level byte, `16 × release +
//! level`, as zlib-ng's profiles are (a recipe of release 0 has the level
//! byte it always had).
//!
//! The releases were told apart by building klauspost/compress at every
//! release tag from 1.15.12 to 1.19.1 that touched `flate/` (Go 1.19,
//! GOPATH mode, with Debian's pgzip 1.2.5 over it; pgzip's writer has not
//! changed its output since, up to its 2026 master) and comparing their
//! output at levels 1 to 9 on text, binaries, random bytes and runs:
//!
//! | release | levels 1–6 as | levels 7–9 as |
//! |---|---|---|
//! | 1.15.12 | 0 | 0 |
//! | 1.16.0 – 1.17.11 | 0 | 1 |
//! | 1.18.0 | 0, except level 4: 1 | 1 |
//! | 1.18.1 | 2 | 2 |
//! | 1.18.2 – 1.19.1 | 3 | 3 |
//!
//! Release 1 is 1.18.0's level 4 (#1043 made it compare a candidate
//! match with the bytes at its distance, see [`super::better::level4`]) and
//! 1.16.0's levels 7 to 9 (#739: `findMatch` weighs from a gain of 4 at a
//! base cost of 3, and the look at a match's end extends it back, see
//! [`super::lazy`]); release 2 adds 1.18.1's "exact sizes" (#1103: an
//! open block's header no longer sends all 286 + 30 code lengths, see
//! [`super::writer::Sizes`]); release 3 counts the end of block while
//! sizing and makes level 9's literal code from at most 32,768 bytes
//! (#1115). 1.18.1's level 9 of input of one byte value writes a stream
//! that does not inflate, which no artifact holds: not modelled. A build
//! that does not know a release refuses its level byte
//! (`ZlibError::BadLevel`); levels 1 to 9 in every release.

use super::writer::Sizes;

/// A release's output, the high nibble of the level byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Release {
    /// 1.15.12 (Debian bookworm's); levels 1 to 6 also 1.16.0 to 1.17.11's,
    /// and 1.18.0's but level 4.
    V1_15 = 0,
    /// 1.18.0's level 4 and levels 7 to 9 (also 1.16.0 to 1.17.11's).
    V1_18_0 = 1,
    /// 1.18.1.
    V1_18_1 = 2,
    /// 1.18.2 to 1.19.1.
    V1_18_2 = 3,
}

impl Release {
    /// The release and level of a level byte of encoders 5 and 7, if known.
    pub(crate) fn decode(byte: u8) -> Option<(Release, u8)> {
        let level = byte & 15;
        let release = match byte >> 4 {
            0 => Release::V1_15,
            1 => Release::V1_18_0,
            2 => Release::V1_18_1,
            3 => Release::V1_18_2,
            _ => return None,
        };
        (1..=9).contains(&level).then_some((release, level))
    }

    /// The level byte of `level` in this release.
    pub(crate) const fn byte(self, level: u8) -> u8 {
        (self as u8) << 4 | level
    }

    /// Whether level 4 compares at the distance (1.18.0 on).
    pub(super) fn l4_118(self) -> bool {
        self != Release::V1_15
    }

    /// The table sizes its writer sends.
    pub(super) fn sizes(self) -> Sizes {
        match self {
            Release::V1_15 | Release::V1_18_0 => Sizes::Full,
            Release::V1_18_1 => Sizes::Exact,
            Release::V1_18_2 => Sizes::ExactEob,
        }
    }
}

/// The level bytes the search tries on a stream ending as pgzip's or
/// klauspost's, the level hint saying nothing: the default (5) of 1.15.12
/// (whose recipes older builds read) and of the current releases first,
/// then the other levels, 1.18.1 last (1.18.0 at levels 1 to 3, 5 and 6
/// is release 0).
pub(crate) const SEARCH_ANY: [u8; 31] = [
    5,
    Release::V1_18_2.byte(5),
    6,
    Release::V1_18_2.byte(6),
    4,
    Release::V1_18_2.byte(4),
    Release::V1_18_0.byte(4),
    3,
    Release::V1_18_2.byte(3),
    2,
    Release::V1_18_2.byte(2),
    7,
    Release::V1_18_2.byte(7),
    Release::V1_18_0.byte(7),
    8,
    Release::V1_18_2.byte(8),
    Release::V1_18_0.byte(8),
    9,
    Release::V1_18_2.byte(9),
    Release::V1_18_0.byte(9),
    1,
    Release::V1_18_2.byte(1),
    Release::V1_18_1.byte(5),
    Release::V1_18_1.byte(6),
    Release::V1_18_1.byte(4),
    Release::V1_18_1.byte(3),
    Release::V1_18_1.byte(2),
    Release::V1_18_1.byte(7),
    Release::V1_18_1.byte(8),
    Release::V1_18_1.byte(9),
    Release::V1_18_1.byte(1),
];

/// The same when the gzip header says level 1 (XFL 4).
pub(crate) const SEARCH_FASTEST: [u8; 3] = [1, Release::V1_18_2.byte(1), Release::V1_18_1.byte(1)];

/// The same when the gzip header says level 9 (XFL 2).
pub(crate) const SEARCH_MAX: [u8; 4] = [
    9,
    Release::V1_18_2.byte(9),
    Release::V1_18_0.byte(9),
    Release::V1_18_1.byte(9),
];

/// The same when a zip header says level 8 or 9.
pub(crate) const SEARCH_ZIP_MAX: [u8; 8] = [
    9,
    8,
    Release::V1_18_2.byte(9),
    Release::V1_18_2.byte(8),
    Release::V1_18_0.byte(9),
    Release::V1_18_0.byte(8),
    Release::V1_18_1.byte(9),
    Release::V1_18_1.byte(8),
];

/// Known answers of releases 1 to 3 on [`crate::zlib::sample`] (level
/// byte, deflated length, CRC-32 of the deflated bytes), made by the real
/// klauspost/compress 1.18.0, 1.18.1 and 1.18.2 with pgzip 1.2.5 (the raw
/// deflate body of `pgzip.NewWriterLevel(w, level)`, one `Write`, `Close`;
/// on this sample the three releases agree at levels 7 to 9, so only two
/// are listed).
pub(crate) const PGZIP_KNOWN_ANSWERS: [(u8, u64, u32); 17] = [
    (0x14, 57_193, 0xfcf6_dc25),
    (0x17, 52_228, 0x1905_eacb),
    (0x18, 50_034, 0x0fb9_e93f),
    (0x19, 46_709, 0x770d_e925),
    (0x21, 63_583, 0x65f4_a879),
    (0x22, 62_432, 0xc7e4_c453),
    (0x23, 62_360, 0xea68_f726),
    (0x24, 57_190, 0x0eb3_5006),
    (0x25, 56_003, 0x58a4_4139),
    (0x26, 54_499, 0x269c_55ea),
    (0x31, 63_583, 0x65f4_a879),
    (0x32, 62_432, 0xc7e4_c453),
    (0x33, 62_360, 0xea68_f726),
    (0x34, 57_190, 0x0eb3_5006),
    (0x35, 56_003, 0x58a4_4139),
    (0x36, 54_499, 0x269c_55ea),
    (0x39, 46_709, 0x770d_e925),
];

/// The same for one `flate.NewWriter(w, level)` stream.
pub(crate) const KP_FLATE_KNOWN_ANSWERS: [(u8, u64, u32); 17] = [
    (0x14, 57_188, 0x2c14_03a0),
    (0x17, 52_222, 0x5215_fecc),
    (0x18, 50_029, 0x3370_d814),
    (0x19, 46_704, 0xa620_07e2),
    (0x21, 63_578, 0xa8ba_4e74),
    (0x22, 62_427, 0x098b_385a),
    (0x23, 62_355, 0x58ce_b7fb),
    (0x24, 57_185, 0x4b58_7759),
    (0x25, 55_998, 0x0d83_756b),
    (0x26, 54_494, 0xc508_dd83),
    (0x31, 63_578, 0xa8ba_4e74),
    (0x32, 62_427, 0x098b_385a),
    (0x33, 62_355, 0x58ce_b7fb),
    (0x34, 57_185, 0x4b58_7759),
    (0x35, 55_998, 0x0d83_756b),
    (0x36, 54_494, 0xc508_dd83),
    (0x39, 46_704, 0xa620_07e2),
];
