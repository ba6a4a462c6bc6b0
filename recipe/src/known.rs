//! Deflate streams known byte for byte, so that a rebuild copies them
//! instead of deflating them again: a base object's, which its object may
//! share, and on the outside an object's own, which its analysis compared.
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
//!
//! The outside's check also knows the object's own members whose encoder
//! output its analysis already compared in full ([`verified_streams`]): the
//! search for a member's encoder deflates it and compares every byte of a
//! member of at most a MiB, so deflating it again in the check proved
//! nothing new. Each member's encoder output is still compared with
//! upstream's bytes once, with the code the inside runs.
//!
//! A member the object shares with its base byte for byte is not even
//! searched ([`analyze_sharing`](crate::analyze_sharing)): it takes the
//! params of the member before it, and both the outside's check and the
//! inside's rebuild copy it from the base. On the benchmark's wheels that
//! was most of the search: numpy 2.1.3 shares 1,031 of its 1,044 members
//! with 2.1.2.

use std::collections::HashMap;
use std::sync::Arc;

use crate::{Analysis, ExpandError, Options, Segment};

/// Deflate streams by the BLAKE3 of their plain bytes: a base object's (see
/// the module docs), or an analysed object's own that its analysis already
/// compared in full ([`verified_streams`]).
#[derive(Debug, Default)]
pub struct KnownStreams {
    /// The bytes the streams are in: a base object's, or copies (shared by
    /// [`KnownStreams::merged`]).
    buffers: Vec<Arc<Vec<u8>>>,
    /// Each stream's buffer, start and length.
    by_plain: HashMap<[u8; 32], (usize, usize, usize)>,
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

    /// The bytes held.
    pub fn held(&self) -> u64 {
        self.buffers.iter().map(|b| b.len() as u64).sum()
    }

    /// These streams and `other`'s (these first where both know the same
    /// plain bytes), sharing their bytes.
    pub fn merged(&self, other: &KnownStreams) -> KnownStreams {
        let mut both = KnownStreams {
            buffers: other.buffers.iter().chain(&self.buffers).cloned().collect(),
            by_plain: other.by_plain.clone(),
        };
        let first = other.buffers.len();
        for (plain, &(buffer, start, len)) in &self.by_plain {
            both.by_plain.insert(*plain, (first + buffer, start, len));
        }
        both
    }

    /// Whether a known stream is `compressed_len` bytes long (so that a
    /// rebuild reads a stream of that length whole, to look it up).
    pub(crate) fn has_len(&self, compressed_len: u64) -> bool {
        self.by_plain
            .values()
            .any(|&(_, _, len)| len as u64 == compressed_len)
    }

    /// The compressed bytes of the known stream whose plain bytes are
    /// `plain`, if it is `compressed_len` bytes long.
    pub(crate) fn compressed(&self, plain: &[u8], compressed_len: u64) -> Option<&[u8]> {
        if self.by_plain.is_empty() {
            return None;
        }
        let &(buffer, start, len) = self.by_plain.get(blake3::hash(plain).as_bytes())?;
        (len as u64 == compressed_len).then(|| &self.buffers[buffer][start..start + len])
    }
}

/// The largest base whose streams are kept: its bytes are held while an
/// object is checked or rebuilt.
pub const KNOWN_MOST: u64 = 64 << 20;

/// The longest reference form of a base whose streams are known. The
/// inside holds such a base's form in memory, with its streams, whatever
/// its `reference_in_memory` says (it would otherwise spill the form and
/// copy nothing); the outside knows no streams of a base whose form is
/// longer. So whenever the outside's check copies a stream, the inside's
/// rebuild copies it too: a member the object shares with its base is not
/// searched ([`analyze_sharing`](crate::analyze_sharing)), and its params
/// are right only when copied.
pub const KNOWN_FORM_MOST: u64 = 160 << 20;

/// Whether a base of `len` bytes that starts with `head` is worth
/// [`expand_known`]: a zip (its members are the streams objects share) of
/// at most [`KNOWN_MOST`] bytes. Both agents ask this, so that the outside's
/// check and the inside's rebuild copy the same streams.
pub fn known_streams_worth(head: &[u8], len: u64) -> bool {
    len <= KNOWN_MOST && head.starts_with(crate::containers::ZIP_LOCAL)
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
            (*blake3::hash(plain).as_bytes(), (0, start, len))
        })
        .collect();
    Ok((
        expanded,
        KnownStreams {
            buffers: vec![Arc::new(data)],
            by_plain,
        },
    ))
}

/// The zlib streams of `object` (a zip's members, a crate's one stream)
/// whose analysis, `analysis`, compared its encoder's whole output with
/// their bytes ([`Analysis::compared`]: every one with `check_streams`,
/// else those of at most the first MiB the search compares and the zip
/// members of at most 8 MiB; never a stream the object shares with its
/// base, which is the base's to copy). A rebuild check that copies them
/// instead of deflating them again still checks every member's encoder
/// output against upstream's bytes, once, with the code the inside runs.
/// Their bytes are copied.
pub fn verified_streams(analysis: &Analysis, object: &[u8]) -> KnownStreams {
    let segments = &analysis.recipe.segments;
    let mut known = KnownStreams::default();
    if analysis.compared.is_empty() {
        return known;
    }
    let (mut expanded_at, mut object_at) = (0usize, 0usize);
    let mut bytes = Vec::new();
    for (i, s) in segments.iter().enumerate() {
        let (plain_len, out_len) = (s.expanded_len() as usize, s.output_len() as usize);
        // `compared` is in increasing order.
        let compared = analysis.compared.binary_search(&i).is_ok();
        if let (Segment::Zlib { .. }, true) = (s, compared) {
            let plain = analysis.expanded.get(expanded_at..expanded_at + plain_len);
            let compressed = object.get(object_at..object_at + out_len);
            if let (Some(plain), Some(compressed)) = (plain, compressed) {
                let at = bytes.len();
                bytes.extend_from_slice(compressed);
                known
                    .by_plain
                    .insert(*blake3::hash(plain).as_bytes(), (0, at, out_len));
            }
        }
        expanded_at += plain_len;
        object_at += out_len;
    }
    known.buffers.push(Arc::new(bytes));
    known
}
