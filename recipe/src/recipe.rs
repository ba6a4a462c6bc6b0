//! The recipe: how to rebuild an object's exact bytes from its expanded form.

use serde::{Deserialize, Serialize};

use crate::xz::XzParams;
use crate::zlib::ZlibParams;
use crate::zstd::ZstdParams;

/// The newest version of the encoding, the first byte of [`Recipe::to_bytes`]
/// for a recipe with a [`Segment::ZlibCuts`] of encoder 3 (a Go
/// `compress/flate` stream rebuilt in pieces,
/// [`GO_FLATE_ENCODER`](crate::zlib::GO_FLATE_ENCODER)). Every recipe is
/// written as the oldest version that has all its segments
/// ([`Recipe::version`]), so that earlier readers read what they can
/// rebuild. All seven are read.
pub const RECIPE_VERSION: u8 = 7;

/// The version that added encoders 5 (klauspost/pgzip's,
/// [`PGZIP_ENCODER`](crate::zlib::PGZIP_ENCODER)), 6 (zlib-ng's,
/// [`ZLIB_NG_ENCODER`](crate::zlib::ZLIB_NG_ENCODER)), 7 (one
/// klauspost/compress `flate` stream,
/// [`KP_FLATE_ENCODER`](crate::zlib::KP_FLATE_ENCODER)) and 8 (Go 1.27's,
/// [`GO127_FLATE_ENCODER`](crate::zlib::GO127_FLATE_ENCODER)).
pub const RECIPE_VERSION_6: u8 = 6;

/// The version that added encoders 3 (Go's `compress/flate`,
/// [`GO_FLATE_ENCODER`](crate::zlib::GO_FLATE_ENCODER)) and 4
/// (miniz_oxide's, [`MINIZ_OXIDE_ENCODER`](crate::zlib::MINIZ_OXIDE_ENCODER)).
pub const RECIPE_VERSION_5: u8 = 5;

/// The version that added [`Segment::ZlibCuts`] (a deflate stream rebuilt
/// in pieces at once).
pub const RECIPE_VERSION_4: u8 = 4;

/// The version that added encoder 2 (GNU gzip's,
/// [`GNU_GZIP_ENCODER`](crate::zlib::GNU_GZIP_ENCODER)) to [`Segment::Zlib`].
pub const RECIPE_VERSION_3: u8 = 3;

/// The version that added [`Segment::Zlib`] (zlib's encoder only).
pub const RECIPE_VERSION_2: u8 = 2;

/// The first version of the encoding: no [`Segment::Zlib`].
pub const RECIPE_VERSION_1: u8 = 1;

/// The largest encoded recipe [`Recipe::from_bytes`] accepts (64 MiB). Deflate
/// corrections are typically 0.01–1% of the plain size, so this covers objects
/// far beyond any expansion limit.
pub const MAX_RECIPE_BYTES: usize = 64 << 20;

/// How to rebuild an object: its segments, in order. Each segment consumes a
/// declared number of bytes of the expanded form and emits a declared number of
/// bytes of the object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipe {
    /// The segments, in object order.
    pub segments: Vec<Segment>,
}

/// One piece of an object. The postcard encoding of this enum is part of the
/// recipe format: the variant index is the tag (see the crate docs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Segment {
    /// Tag 0: `len` bytes of the expanded form, copied as they are.
    Literal {
        /// Bytes consumed and emitted.
        len: u64,
    },
    /// Tag 1: `plain_len` bytes of the expanded form, deflated again by
    /// preflate-rs 0.7.6 into exactly `compressed_len` bytes of raw deflate,
    /// chunk after chunk (the chunks' lengths add up to the segment's).
    Deflate {
        /// Bytes of the expanded form consumed (the inflated content).
        plain_len: u64,
        /// Bytes of raw deflate emitted.
        compressed_len: u64,
        /// The stream's chunks, in order, each with its preflate corrections.
        chunks: Vec<DeflateChunk>,
    },
    /// Tag 2: `plain_len` bytes of the expanded form, compressed again into one
    /// xz stream of exactly `compressed_len` bytes with `params`.
    Xz {
        /// Bytes of the expanded form consumed (the decoded content).
        plain_len: u64,
        /// Bytes of xz emitted.
        compressed_len: u64,
        /// The encoder settings.
        params: XzParams,
    },
    /// Tag 3: `plain_len` bytes of the expanded form, compressed again into
    /// exactly `compressed_len` bytes of zstd with `params`.
    Zstd {
        /// Bytes of the expanded form consumed (the decoded content).
        plain_len: u64,
        /// Bytes of zstd emitted.
        compressed_len: u64,
        /// The encoder settings.
        params: ZstdParams,
    },
    /// Tag 4 (recipe version 2): `plain_len` bytes of the expanded form,
    /// deflated again by zlib (raw, `params.level`, its other settings default)
    /// into exactly `compressed_len` bytes of raw deflate: a stream zlib made,
    /// with no preflate corrections.
    Zlib {
        /// Bytes of the expanded form consumed (the inflated content).
        plain_len: u64,
        /// Bytes of raw deflate emitted.
        compressed_len: u64,
        /// The encoder and its level.
        params: ZlibParams,
    },
    /// Tag 5 (recipe version 4): what [`Segment::Zlib`] emits, made in
    /// pieces that can be deflated at once: the stream is cut at the
    /// `cuts`, block boundaries where an encoder resumed with only the
    /// plain bytes before (its window) gives the same next blocks as the
    /// one that deflated everything before. Encoder 2 (GNU gzip's) at
    /// levels 4 to 9, and from recipe version 7 encoder 3 (Go's) at levels
    /// 4 to 9.
    ZlibCuts {
        /// Bytes of the expanded form consumed (the inflated content).
        plain_len: u64,
        /// Bytes of raw deflate emitted.
        compressed_len: u64,
        /// The encoder and its level.
        params: ZlibParams,
        /// Where the pieces start after the first, in stream order.
        cuts: Vec<DeflateCut>,
    },
}

/// Where a piece of a [`Segment::ZlibCuts`] starts: a block boundary of
/// the stream, and the encoder's state there that is not in the plain bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeflateCut {
    /// Offset in the segment's plain bytes of the block's first byte.
    pub plain: u64,
    /// Offset in bits, in the segment's output, of the block's first bit.
    pub bit: u64,
    /// Where `plain` is in the encoder's 64 KiB window (gzip's `strstart`,
    /// Go's `d.index`).
    pub window: u32,
    /// The `bit % 8` bits of output before the block in its first byte
    /// (the previous piece's last bits), in the low bits.
    pub partial: u8,
}

/// One chunk of a deflate stream as preflate-rs cuts it (at a deflate block
/// boundary once `Options::preflate_chunk` plain bytes are passed): its plain and
/// compressed lengths, and the corrections that rebuild it given every chunk
/// before it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeflateChunk {
    /// Plain bytes of this chunk.
    pub plain_len: u64,
    /// Raw deflate bytes this chunk rebuilds.
    pub compressed_len: u64,
    /// preflate-rs's corrections (`PreflateStreamChunkResult::corrections`).
    pub corrections: Vec<u8>,
}

impl Segment {
    /// Bytes of the expanded form this segment consumes.
    pub fn expanded_len(&self) -> u64 {
        match self {
            Segment::Literal { len } => *len,
            Segment::Deflate { plain_len, .. }
            | Segment::Xz { plain_len, .. }
            | Segment::Zstd { plain_len, .. }
            | Segment::Zlib { plain_len, .. }
            | Segment::ZlibCuts { plain_len, .. } => *plain_len,
        }
    }

    /// Bytes of the object this segment emits.
    pub fn output_len(&self) -> u64 {
        match self {
            Segment::Literal { len } => *len,
            Segment::Deflate { compressed_len, .. }
            | Segment::Xz { compressed_len, .. }
            | Segment::Zstd { compressed_len, .. }
            | Segment::Zlib { compressed_len, .. }
            | Segment::ZlibCuts { compressed_len, .. } => *compressed_len,
        }
    }
}

/// [`Recipe::rebuild_work`]: a rough cost of a rebuild, for scheduling.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct RebuildWork {
    /// The longest piece one thread rebuilds alone.
    pub serial: u64,
    /// The whole.
    pub total: u64,
}

impl RebuildWork {
    /// The least time the rebuild can take on `cores` cores, in the same
    /// units: its longest piece, or its whole shared evenly.
    pub fn span(&self, cores: u64) -> u64 {
        self.serial.max(self.total / cores.max(1))
    }
}

/// [`Recipe::rebuild_work`]'s cost of a byte deflated by `encoder` (zlib's
/// and GNU gzip's encoders 10; miniz_oxide's, slower by about 2.5 in a
/// profile of a maturin wheel; Go's and klauspost's 15).
fn deflate_cost(encoder: u8) -> u64 {
    match encoder {
        crate::zlib::ZLIB_ENCODER | crate::deflate::gnu::GNU_GZIP_ENCODER => 10,
        crate::miniz::MINIZ_OXIDE_ENCODER => 25,
        _ => 15,
    }
}

/// [`Recipe::rebuild_work`]'s cost of a byte compressed by zstd at `level`.
fn zstd_cost(level: i32) -> u64 {
    match level {
        ..=3 => 3,
        4..=9 => 10,
        _ => 40,
    }
}

/// Why bytes are not a recipe.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    /// No bytes at all.
    #[error("recipe is empty (not even a version byte)")]
    Empty,
    /// The version byte is not one this build reads.
    #[error(
        "recipe version {found} is not supported (this build reads versions 1 to {RECIPE_VERSION})"
    )]
    UnknownVersion {
        /// The version byte found.
        found: u8,
    },
    /// Larger than [`MAX_RECIPE_BYTES`].
    #[error("recipe is {len} bytes, more than the {MAX_RECIPE_BYTES}-byte limit")]
    TooLarge {
        /// The encoded length.
        len: usize,
    },
    /// The body does not decode as a recipe.
    #[error("recipe body is malformed: {0}")]
    Malformed(#[source] postcard::Error),
    /// Bytes follow the recipe.
    #[error("{count} stray bytes follow the recipe")]
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// The recipe holds a segment (or a zlib segment's encoder) that its
    /// version does not have: a zlib segment in version 1, an encoder other
    /// than zlib's in version 2, a cut zlib segment before version 4, a cut
    /// Go stream before version 7.
    #[error("recipe holds a segment its version does not have (zlib segments need version 2, other encoders version 3, cut streams version 4, encoders 3 and 4 version 5, encoders 5 to 8 version 6, cut Go streams version 7)")]
    SegmentNotInVersion,
    /// The segment lengths add up to more than 2^64 bytes.
    #[error("recipe segment lengths overflow a 64-bit size")]
    LengthOverflow,
}

impl Recipe {
    /// The deflate params of its [`Segment::Zlib`] and [`Segment::ZlibCuts`]
    /// segments, in order: which encoder, at which level, rebuilds each.
    pub fn zlib_params(&self) -> Vec<ZlibParams> {
        self.segments
            .iter()
            .filter_map(|s| match s {
                Segment::Zlib { params, .. } | Segment::ZlibCuts { params, .. } => Some(*params),
                _ => None,
            })
            .collect()
    }

    /// Whether it has a cut GNU gzip stream at level 4 to 9, whose pieces
    /// may copy a base's parse ([`crate::reuse`]): a rebuild given one
    /// ([`crate::FromBase::parse`]) copies it then.
    pub fn copies_base_parse(&self) -> bool {
        self.segments.iter().any(|s| {
            matches!(s, Segment::ZlibCuts { params, .. }
                if params.encoder == crate::zlib::GNU_GZIP_ENCODER && params.level >= 4)
        })
    }

    /// The most one encoder it makes reserves from the process's
    /// [`budget`](crate::budget) while it rebuilds (an xz encoder's match
    /// finder, about 94 MiB at preset 6); 0 when its encoders reserve
    /// nothing. A caller that holds an object's buffers reserves this much
    /// ahead ([`budget::reserve_ahead`](crate::budget::reserve_ahead)).
    pub fn rebuild_memory(&self) -> u64 {
        self.segments
            .iter()
            .filter_map(|s| match s {
                Segment::Xz {
                    params,
                    compressed_len,
                    ..
                } => crate::xz::encoder_memory(params, *compressed_len).ok(),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }

    /// A rough cost of its rebuild, for scheduling only (which object to
    /// start first), never for a decision about bytes: the longest piece one
    /// thread must rebuild alone, and the whole, in units of a tenth of what
    /// zlib's deflate costs a byte of plain input. A cut stream's pieces, and
    /// a zip's members, are rebuilt on every core; one stream is rebuilt on
    /// one. The costs per encoder are measured orders of magnitude
    /// (`docs/compression.md`): xz at preset 6 about ten times zlib, the
    /// slower deflate encoders about two times.
    pub fn rebuild_work(&self) -> RebuildWork {
        let mut work = RebuildWork::default();
        for s in &self.segments {
            let plain = s.expanded_len();
            let (per_byte, pieces) = match s {
                Segment::Literal { .. } => (0, 1),
                Segment::Deflate { .. } => (30, 1),
                Segment::Xz { .. } => (100, 1),
                Segment::Zstd { params, .. } => (zstd_cost(params.level), 1),
                Segment::Zlib { params, .. } => (deflate_cost(params.encoder), 1),
                Segment::ZlibCuts { params, cuts, .. } => {
                    (deflate_cost(params.encoder), cuts.len() as u64 + 1)
                }
            };
            let cost = plain.saturating_mul(per_byte);
            work.serial = work.serial.max(cost / pieces);
            work.total = work.total.saturating_add(cost);
        }
        work
    }

    /// A recipe that copies `len` bytes: the object is its own expanded form.
    pub fn identity(len: u64) -> Recipe {
        let segments = if len == 0 {
            Vec::new()
        } else {
            vec![Segment::Literal { len }]
        };
        Recipe { segments }
    }

    /// The version its encoding needs: [`RECIPE_VERSION_1`] without a
    /// [`Segment::Zlib`], else the version of its newest encoder
    /// ([`crate::zlib::encoder_version`]: 2 for zlib's, 3 for GNU gzip's, 5
    /// for Go's and miniz_oxide's, 6 for klauspost's), at least [`RECIPE_VERSION_4`] with a
    /// [`Segment::ZlibCuts`], and [`RECIPE_VERSION`] (7) with one of Go's.
    pub fn version(&self) -> u8 {
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Zlib { params, .. } => crate::zlib::encoder_version(params.encoder),
                Segment::ZlibCuts { params, .. } => cut_version(params.encoder),
                _ => RECIPE_VERSION_1,
            })
            .max()
            .unwrap_or(RECIPE_VERSION_1)
    }

    /// The encoding: [`Recipe::version`], then the postcard encoding of the recipe.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![self.version()];
        // Serializing plain integers, vectors and enums into a Vec cannot fail.
        let body = postcard::to_stdvec(self).unwrap_or_default();
        out.extend_from_slice(&body);
        out
    }

    /// Decodes [`Recipe::to_bytes`]' output; hostile input gets a typed error.
    pub fn from_bytes(b: &[u8]) -> Result<Recipe, RecipeError> {
        let (&version, body) = b.split_first().ok_or(RecipeError::Empty)?;
        if !(RECIPE_VERSION_1..=RECIPE_VERSION).contains(&version) {
            return Err(RecipeError::UnknownVersion { found: version });
        }
        if b.len() > MAX_RECIPE_BYTES {
            return Err(RecipeError::TooLarge { len: b.len() });
        }
        let (recipe, rest): (Recipe, _) =
            postcard::take_from_bytes(body).map_err(RecipeError::Malformed)?;
        if !rest.is_empty() {
            return Err(RecipeError::TrailingBytes { count: rest.len() });
        }
        if version < recipe.version() {
            return Err(RecipeError::SegmentNotInVersion);
        }
        if recipe.checked_lens().is_none() {
            return Err(RecipeError::LengthOverflow);
        }
        Ok(recipe)
    }

    /// The (expanded, output) lengths, or `None` if either sum overflows.
    fn checked_lens(&self) -> Option<(u64, u64)> {
        self.segments.iter().try_fold((0u64, 0u64), |(e, o), s| {
            Some((
                e.checked_add(s.expanded_len())?,
                o.checked_add(s.output_len())?,
            ))
        })
    }

    /// Bytes of the expanded form the recipe consumes (saturating at `u64::MAX`
    /// for a hand-made recipe whose lengths overflow).
    pub fn expanded_len(&self) -> u64 {
        self.segments
            .iter()
            .fold(0u64, |a, s| a.saturating_add(s.expanded_len()))
    }

    /// Bytes of the object the recipe rebuilds; `None` if the lengths overflow.
    pub fn output_len(&self) -> Option<u64> {
        self.checked_lens().map(|(_, o)| o)
    }

    /// The same recipe with every [`Segment::ZlibCuts`] made its serial
    /// form, [`Segment::Zlib`] (the same bytes, one piece after another): for
    /// a reader of recipe version 3 or older.
    pub fn serial(&self) -> Recipe {
        self.serial_above(RECIPE_VERSION_1)
    }

    /// The same recipe with every [`Segment::ZlibCuts`] that needs a
    /// version above `version` made its serial form: for a reader of
    /// recipe version `version` (6: a Go stream's cuts, which need 7, are
    /// dropped; GNU gzip's, which need 4, kept).
    pub fn serial_above(&self, version: u8) -> Recipe {
        let segments = self
            .segments
            .iter()
            .map(|s| match s {
                Segment::ZlibCuts {
                    plain_len,
                    compressed_len,
                    params,
                    ..
                } if cut_version(params.encoder) > version => Segment::Zlib {
                    plain_len: *plain_len,
                    compressed_len: *compressed_len,
                    params: *params,
                },
                s => s.clone(),
            })
            .collect();
        Recipe { segments }
    }

    /// True when nothing is reproduced: every segment is literal, so the object
    /// is its own expanded form.
    pub fn is_identity(&self) -> bool {
        self.segments
            .iter()
            .all(|s| matches!(s, Segment::Literal { .. }))
    }
}

/// The recipe version a [`Segment::ZlibCuts`] of `encoder` needs: 4 for GNU
/// gzip's (and an encoder no version cuts, which a reader refuses when it
/// rebuilds), 7 for Go's.
fn cut_version(encoder: u8) -> u8 {
    if encoder == crate::zlib::GO_FLATE_ENCODER {
        RECIPE_VERSION
    } else {
        RECIPE_VERSION_4.max(crate::zlib::encoder_version(encoder))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zlib::ZlibParams;

    fn zlib(encoder: u8) -> ZlibParams {
        ZlibParams { encoder, level: 6 }
    }

    #[test]
    fn rebuild_work_counts_the_longest_piece_and_the_whole() {
        let cut = |plain| DeflateCut {
            plain,
            bit: 0,
            window: 0,
            partial: 0,
        };
        let recipe = Recipe {
            segments: vec![
                Segment::Literal { len: 1000 },
                Segment::Zlib {
                    plain_len: 100,
                    compressed_len: 50,
                    params: zlib(crate::zlib::ZLIB_ENCODER),
                },
                Segment::Zlib {
                    plain_len: 100,
                    compressed_len: 50,
                    params: zlib(crate::miniz::MINIZ_OXIDE_ENCODER),
                },
                // Three pieces of 200 bytes each.
                Segment::ZlibCuts {
                    plain_len: 600,
                    compressed_len: 300,
                    params: zlib(crate::deflate::gnu::GNU_GZIP_ENCODER),
                    cuts: vec![cut(200), cut(400)],
                },
            ],
        };
        let work = recipe.rebuild_work();
        // zlib 100 × 10, miniz_oxide 100 × 25, GNU gzip 600 × 10 in 3 pieces.
        assert_eq!(work.total, 1000 + 2500 + 6000);
        assert_eq!(work.serial, 2500);
        assert_eq!(work.span(2), 4750);
        assert_eq!(work.span(8), 2500);
        assert_eq!(
            Recipe::identity(5000).rebuild_work(),
            RebuildWork::default()
        );
    }
}
