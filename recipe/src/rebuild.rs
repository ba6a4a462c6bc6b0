//! Rebuilding an object from its expanded form and its recipe.

use std::io::Write;

use crate::codec::{self, DeflateFail};
use crate::recipe::{DeflateChunk, Recipe, Segment};
use crate::xz::XzError;
use crate::zlib::ZlibError;
use crate::zstd::ZstdError;

/// Why a recipe did not rebuild the object. Nothing is written when the lengths
/// disagree up front; after a segment fails, what was written before it must be
/// discarded by the caller (it checks the digest anyway).
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// The recipe consumes a different number of expanded bytes than given.
    #[error("recipe consumes {recipe} expanded bytes but {actual} were given")]
    ExpandedLenMismatch {
        /// What the segments add up to (saturated).
        recipe: u64,
        /// The length of the expanded form given.
        actual: u64,
    },
    /// The recipe rebuilds a different number of bytes than the object has.
    #[error("recipe rebuilds {recipe:?} bytes but the object has {expected}")]
    OutputLenMismatch {
        /// What the segments add up to (`None`: overflow).
        recipe: Option<u64>,
        /// The object's size, as the caller knows it.
        expected: u64,
    },
    /// A segment's rebuilt bytes are not as long as it declares.
    #[error("segment {segment} rebuilt {produced} bytes but declares {declared}")]
    SegmentLenMismatch {
        /// Index of the segment.
        segment: usize,
        /// The length it declares.
        declared: u64,
        /// The length it produced.
        produced: u64,
    },
    /// preflate-rs refused a deflate segment's corrections.
    #[error("segment {segment}: deflate corrections do not rebuild: {detail}")]
    Deflate {
        /// Index of the segment.
        segment: usize,
        /// preflate-rs's message.
        detail: String,
    },
    /// A deflate segment's chunks do not add up to the segment's lengths.
    #[error("segment {segment}: its deflate chunks do not add up to its lengths")]
    ChunksInconsistent {
        /// Index of the segment.
        segment: usize,
    },
    /// A deflate chunk rebuilt other than its declared length.
    #[error("segment {segment}, deflate chunk {chunk}: rebuilt {produced} bytes but declares {declared}")]
    ChunkLenMismatch {
        /// Index of the segment.
        segment: usize,
        /// Index of the chunk in the segment.
        chunk: usize,
        /// The length it declares.
        declared: u64,
        /// The length it produced.
        produced: u64,
    },
    /// An xz segment did not compress.
    #[error("segment {segment}: xz: {source}")]
    Xz {
        /// Index of the segment.
        segment: usize,
        /// Why.
        source: XzError,
    },
    /// A zstd segment did not compress.
    #[error("segment {segment}: zstd: {source}")]
    Zstd {
        /// Index of the segment.
        segment: usize,
        /// Why.
        source: ZstdError,
    },
    /// A zlib segment did not rebuild (unknown or mismatched encoder, wrong length).
    #[error("segment {segment}: zlib: {source}")]
    Zlib {
        /// Index of the segment.
        segment: usize,
        /// Why.
        source: ZlibError,
    },
    /// Writing the output failed.
    #[error("writing the rebuilt object failed: {0}")]
    Write(#[from] std::io::Error),
}

/// Rebuilds the object of `out_len` bytes from `expanded` with `recipe`, writing
/// it to `out`. The recipe is hostile: lengths are checked before anything is
/// written, every segment must consume and produce exactly what it declares,
/// and never more than `out_len` bytes are written. The caller still checks the
/// object's digest.
pub fn rebuild(
    recipe: &Recipe,
    expanded: &[u8],
    out_len: u64,
    out: &mut impl Write,
) -> Result<(), RebuildError> {
    let recipe_expanded = recipe.expanded_len();
    if recipe_expanded != expanded.len() as u64 {
        return Err(RebuildError::ExpandedLenMismatch {
            recipe: recipe_expanded,
            actual: expanded.len() as u64,
        });
    }
    let recipe_out = recipe.output_len();
    if recipe_out != Some(out_len) {
        return Err(RebuildError::OutputLenMismatch {
            recipe: recipe_out,
            expected: out_len,
        });
    }
    let mut at = 0usize;
    for (index, segment) in recipe.segments.iter().enumerate() {
        // Both sums were checked against real lengths above: these fit.
        let input = &expanded[at..at + segment.expanded_len() as usize];
        at += input.len();
        let rebuilt = match segment {
            Segment::Literal { .. } => {
                out.write_all(input)?;
                continue;
            }
            Segment::Deflate {
                chunks,
                compressed_len,
                ..
            } => {
                // Written chunk by chunk, each checked against its declared
                // length, and the chunks add up to the segment's length.
                deflate(index, input, *compressed_len, chunks, out)?;
                continue;
            }
            Segment::Zlib {
                params,
                compressed_len,
                ..
            } => {
                // Written as it comes, never past its declared length.
                crate::zlib::rebuild(params, input, *compressed_len, out).map_err(|source| {
                    match source {
                        ZlibError::Write(e) => RebuildError::Write(e),
                        source => RebuildError::Zlib {
                            segment: index,
                            source,
                        },
                    }
                })?;
                continue;
            }
            Segment::Xz { params, .. } => {
                crate::xz::compress(params, input).map_err(|source| RebuildError::Xz {
                    segment: index,
                    source,
                })?
            }
            Segment::Zstd { params, .. } => {
                crate::zstd::compress(params, input).map_err(|source| RebuildError::Zstd {
                    segment: index,
                    source,
                })?
            }
        };
        if rebuilt.len() as u64 != segment.output_len() {
            return Err(RebuildError::SegmentLenMismatch {
                segment: index,
                declared: segment.output_len(),
                produced: rebuilt.len() as u64,
            });
        }
        out.write_all(&rebuilt)?;
    }
    Ok(())
}

/// Rebuilds deflate segment `segment` after checking its chunks add up.
fn deflate(
    segment: usize,
    plain: &[u8],
    compressed_len: u64,
    chunks: &[DeflateChunk],
    out: &mut impl Write,
) -> Result<(), RebuildError> {
    let sums = chunks.iter().try_fold((0u64, 0u64), |(p, c), k| {
        Some((
            p.checked_add(k.plain_len)?,
            c.checked_add(k.compressed_len)?,
        ))
    });
    if sums != Some((plain.len() as u64, compressed_len)) {
        return Err(RebuildError::ChunksInconsistent { segment });
    }
    codec::deflate_rebuild(plain, chunks, out).map_err(|e| match e {
        DeflateFail::Preflate(detail) => RebuildError::Deflate { segment, detail },
        DeflateFail::ChunkLen {
            chunk,
            declared,
            produced,
        } => RebuildError::ChunkLenMismatch {
            segment,
            chunk,
            declared,
            produced,
        },
        DeflateFail::Write(e) => RebuildError::Write(e),
    })
}
