//! The expanded form of an object from a recipe made before: what
//! [`analyze`](crate::analyze) gave, without preflate-rs (each stream the
//! recipe keeps decoded is decoded again; nothing is recompressed). A caller
//! that keeps recipes by object digest analyses an object once; it still
//! rebuilds and checks the digest before trusting the pair.

use crate::codec::{self, Bounds, Codec};
use crate::recipe::{Recipe, Segment};
use crate::report::LiteralReason;
use crate::Options;

/// Why a recipe does not give an object's expanded form.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExpandByError {
    /// The recipe's emitted lengths do not add up to the object's size.
    #[error("the recipe describes {recipe:?} bytes but the object has {actual}")]
    OutputLenMismatch {
        /// What the segments add up to (`None`: overflow).
        recipe: Option<u64>,
        /// The object's size.
        actual: u64,
    },
    /// The expanded form would pass `Options::max_expanded`.
    #[error("the recipe's expanded form is {len} bytes, over the {max}-byte limit")]
    TooLarge {
        /// The expanded form's length by the recipe.
        len: u64,
        /// `Options::max_expanded`.
        max: u64,
    },
    /// A stream segment does not decode to its declared length.
    #[error("segment {segment} does not decode to its declared {declared} bytes ({why:?})")]
    Segment {
        /// Index of the segment.
        segment: usize,
        /// Its declared plain length.
        declared: u64,
        /// Why.
        why: LiteralReason,
    },
}

/// The expanded form of `data` that `recipe` rebuilds it from: literal segments
/// as they are, every other segment's compressed bytes decoded again (bounded by
/// its declared plain length and `opts.max_ratio`).
pub fn expand_by(recipe: &Recipe, data: &[u8], opts: &Options) -> Result<Vec<u8>, ExpandByError> {
    let out_len = recipe.output_len();
    if out_len != Some(data.len() as u64) {
        return Err(ExpandByError::OutputLenMismatch {
            recipe: out_len,
            actual: data.len() as u64,
        });
    }
    let len = recipe.expanded_len();
    if len > opts.max_expanded {
        return Err(ExpandByError::TooLarge {
            len,
            max: opts.max_expanded,
        });
    }
    let mut out = Vec::with_capacity(len as usize);
    let mut at = 0usize;
    for (index, segment) in recipe.segments.iter().enumerate() {
        // The output sum was checked against the data's length: these fit.
        let input = &data[at..at + segment.output_len() as usize];
        at += input.len();
        let (codec, plain_len) = match segment {
            Segment::Literal { .. } => {
                out.extend_from_slice(input);
                continue;
            }
            Segment::Deflate { plain_len, .. }
            | Segment::Zlib { plain_len, .. }
            | Segment::ZlibCuts { plain_len, .. } => (Codec::Deflate, *plain_len),
            Segment::Xz { plain_len, .. } => (Codec::Xz, *plain_len),
            Segment::Zstd { plain_len, .. } => (Codec::Zstd, *plain_len),
        };
        let bounds = Bounds {
            limit: plain_len,
            max_ratio: opts.max_ratio,
            ratio_bound: false,
        };
        let mark = out.len();
        let fail = |why| ExpandByError::Segment {
            segment: index,
            declared: plain_len,
            why,
        };
        let used = codec::decode_into(codec, input, &bounds, &mut out).map_err(fail)?;
        if used != input.len() || (out.len() - mark) as u64 != plain_len {
            return Err(fail(LiteralReason::Inconsistent));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn a_recipe_gives_back_the_expanded_form_of_its_analysis() {
        let plain: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let mut object = gz(&plain);
        object.extend_from_slice(&gz(b"a second member, small"));
        let opts = Options::default();
        let a = crate::analyze(&object, &opts);
        assert!(!a.recipe.is_identity());
        assert_eq!(expand_by(&a.recipe, &object, &opts).unwrap(), a.expanded);
    }

    #[test]
    fn a_recipe_of_another_object_is_refused() {
        let opts = Options::default();
        let plain: Vec<u8> = (0..50_000u32)
            .flat_map(|i| (i % 13).to_le_bytes())
            .collect();
        let one = gz(&plain);
        let a = crate::analyze(&one, &opts);
        assert!(!a.recipe.is_identity());
        // Incompressible content: its deflate stream does not end where the
        // recipe says the first one does.
        let noise: Vec<u8> = (0..100_000u64)
            .map(|i| (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8)
            .collect();
        let mut other = gz(&noise);
        other.truncate(one.len());
        let e = expand_by(&a.recipe, &other, &opts).unwrap_err();
        assert!(matches!(e, ExpandByError::Segment { .. }), "{e}");
        let e = expand_by(&a.recipe, &one[1..], &opts).unwrap_err();
        assert!(matches!(e, ExpandByError::OutputLenMismatch { .. }), "{e}");
    }

    #[test]
    fn what_the_walk_does_not_recognise_is_its_own_expanded_form() {
        let opts = Options::default();
        let noise: Vec<u8> = (0..100_000u64)
            .map(|i| (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8)
            .collect();
        let mut tar = vec![0u8; 512];
        tar[..4].copy_from_slice(b"file");
        for plain in [&noise[..], &tar[..], b""] {
            assert!(!crate::is_walked(plain));
            let a = crate::analyze(plain, &opts);
            assert!(a.recipe.is_identity());
            assert_eq!(a.expanded, plain);
            assert_eq!(crate::expand(plain, &opts).unwrap(), plain);
        }
        // Behind a gzip header, the same bytes are walked.
        assert!(crate::is_walked(&gz(&noise)));
        assert!(!crate::analyze(&gz(&noise), &opts).recipe.is_identity());
    }
}
