//! The deflate streams of a base object, so that a rebuild copies a stream
//! its object shares with the base instead of deflating it again.
//!
//! Between two releases of a zip (a wheel, a jar) most members are the same
//! bytes: on the benchmark's wheels, 55% of the new releases' plain bytes
//! are in members whose compressed bytes are the old release's. Both sides
//! hold the old release (it is the patch's base), so when a zlib segment's
//! plain bytes are those of a base stream of the recipe's compressed length,
//! [`rebuild_known`](crate::rebuild_known) writes that stream's bytes
//! instead of running the encoder: the recipe is unchanged (and an inside
//! without this still rebuilds it by deflating).
//!
//! A stream is found by the BLAKE3 of its plain bytes and its compressed
//! length; the object's SHA-256, which every caller checks, proves the copy.
//! Two encodings of the same plain bytes of the same length (another
//! encoder, another level) are possible though rare: then the object's
//! digest differs, and the caller rebuilds again without known streams, by
//! deflating. Both agents do exactly that, so the outside's check covers the
//! inside's path.

use std::collections::HashMap;

use crate::{ExpandError, Options};

/// A base object's bytes and its deflate streams by the BLAKE3 of their
/// plain bytes (see the module docs).
#[derive(Debug, Default)]
pub struct KnownStreams {
    base: Vec<u8>,
    by_plain: HashMap<[u8; 32], (usize, usize)>,
}

impl KnownStreams {
    /// How many streams are known.
    pub fn len(&self) -> usize {
        self.by_plain.len()
    }

    /// Whether no stream is known.
    pub fn is_empty(&self) -> bool {
        self.by_plain.is_empty()
    }

    /// The bytes held: the base object's, when a stream is known.
    pub fn held(&self) -> u64 {
        self.base.len() as u64
    }

    /// The compressed bytes of the base stream whose plain bytes are
    /// `plain`, if it is `compressed_len` bytes long.
    pub(crate) fn compressed(&self, plain: &[u8], compressed_len: u64) -> Option<&[u8]> {
        if self.by_plain.is_empty() {
            return None;
        }
        let &(start, len) = self.by_plain.get(blake3::hash(plain).as_bytes())?;
        (len as u64 == compressed_len).then(|| &self.base[start..start + len])
    }
}

/// The most plain bytes of a stream worth knowing: a rebuild copies only
/// the members of a zip it deflates at once, each at most this long.
const MOST_PLAIN: usize = crate::rebuild::AT_ONCE_SEGMENT as usize;

/// [`expand`](crate::expand) of `data`, and its deflate streams when it
/// holds two or more (a zip's members; a single stream, a gzip layer or a
/// crate, is never shared by a changed object): then `data` is kept, else
/// dropped.
pub fn expand_known(data: Vec<u8>, opts: &Options) -> Result<(Vec<u8>, KnownStreams), ExpandError> {
    let (expanded, deflated) = crate::expand_streams(&data, opts)?;
    let small: Vec<_> = deflated
        .into_iter()
        .filter(|s| s[3] <= MOST_PLAIN)
        .collect();
    if small.len() < 2 {
        return Ok((expanded, KnownStreams::default()));
    }
    let by_plain = small
        .iter()
        .map(|&[start, len, plain_at, plain_len]| {
            let plain = &expanded[plain_at..plain_at + plain_len];
            (*blake3::hash(plain).as_bytes(), (start, len))
        })
        .collect();
    Ok((
        expanded,
        KnownStreams {
            base: data,
            by_plain,
        },
    ))
}
