//! Rebuilding an object from its expanded form and its recipe.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{Read, Write};

use crate::codec::{self, DeflateFail};
use crate::known::KnownStreams;
use crate::recipe::{DeflateChunk, Recipe, Segment};
use crate::xz::{StreamError, XzError};
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
    /// A cut zlib segment did not rebuild (a malformed cut, a piece whose
    /// encoder does not reach its cut as recorded, a wrong length).
    #[error("segment {segment}: cut deflate stream: {source}")]
    Cuts {
        /// Index of the segment.
        segment: usize,
        /// Why.
        source: crate::cuts::CutError,
    },
    /// Writing the output failed.
    #[error("writing the rebuilt object failed: {0}")]
    Write(#[from] std::io::Error),
    /// Reading the expanded form failed, or it ended early
    /// ([`rebuild_from`]), in segment `segment`.
    #[error("segment {segment}: reading the expanded form failed: {source}")]
    Read {
        /// Index of the segment that was reading.
        segment: usize,
        /// Why.
        source: std::io::Error,
    },
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
    // An xz or zstd segment (and a preflate chunk) is given its slice of
    // `expanded`, not a copy.
    rebuild_known(recipe, expanded, out_len, out, None)
}

/// [`rebuild`], copying the streams it shares with a base object instead of
/// deflating them (see [`KnownStreams`]): the caller that gives `known` and
/// finds the object's digest wrong rebuilds again without.
pub fn rebuild_known(
    recipe: &Recipe,
    expanded: &[u8],
    out_len: u64,
    out: &mut impl Write,
    known: Option<&KnownStreams>,
) -> Result<(), RebuildError> {
    let from = FromBase { known, parse: None };
    rebuild_with_base(recipe, expanded, out_len, out, from)
}

/// [`rebuild`] from an expanded form of `expanded_len` bytes read from
/// `expanded` as the segments consume it, never held whole: a literal
/// segment is copied through a small buffer, a deflate segment read one
/// preflate chunk at a time, a zlib or xz segment as its encoder reads (a
/// window's worth, or a MiB, at a time), but a run of zlib segments (a
/// zip's members) a batch of at most 48 MiB at a time, deflated on every
/// core; a zstd segment is read whole (its
/// output depends on how the input is handed over), bounded by its declared
/// length. A read error (or a short read) is [`RebuildError::Read`].
pub fn rebuild_from(
    recipe: &Recipe,
    expanded: &mut impl Read,
    expanded_len: u64,
    out_len: u64,
    out: &mut impl Write,
) -> Result<(), RebuildError> {
    rebuild_from_known(recipe, expanded, (expanded_len, out_len), out, None)
}

/// [`rebuild_from`] with known streams, as [`rebuild_known`]; the lengths
/// are (expanded, object).
pub fn rebuild_from_known(
    recipe: &Recipe,
    expanded: &mut impl Read,
    lens: (u64, u64),
    out: &mut impl Write,
    known: Option<&KnownStreams>,
) -> Result<(), RebuildError> {
    let from = FromBase { known, parse: None };
    rebuild_from_base(recipe, expanded, lens, out, from)
}

/// What a rebuild may take from its base object instead of computing it:
/// the deflate streams the object shares with it ([`KnownStreams`]), and
/// the base's GNU gzip parse where the object's cut stream's plain bytes
/// are the base's ([`crate::reuse`]). Neither is trusted: a piece copied
/// wrong in length is deflated again, and the caller that finds the
/// object's digest wrong rebuilds it again without them.
#[derive(Clone, Copy, Default)]
pub struct FromBase<'a> {
    /// Streams copied whole.
    pub known: Option<&'a KnownStreams>,
    /// The base's parse, copied into cut GNU gzip streams (levels 4 to 9).
    pub parse: Option<&'a crate::reuse::Base<'a>>,
}

/// [`rebuild_from`], taking what it can `from` the base.
pub fn rebuild_from_base(
    recipe: &Recipe,
    expanded: &mut impl Read,
    lens: (u64, u64),
    out: &mut impl Write,
    from: FromBase<'_>,
) -> Result<(), RebuildError> {
    segments(recipe, &mut Stream(expanded), lens, out, from)
}

/// [`rebuild`], taking what it can `from` the base.
pub fn rebuild_with_base(
    recipe: &Recipe,
    expanded: &[u8],
    out_len: u64,
    out: &mut impl Write,
    from: FromBase<'_>,
) -> Result<(), RebuildError> {
    let expanded_len = expanded.len() as u64;
    segments(
        recipe,
        &mut Slice(expanded),
        (expanded_len, out_len),
        out,
        from,
    )
}

/// Where the segments read the expanded form from: a reader, or a slice
/// whose bytes a segment that takes its plain stream whole borrows.
trait Input: Read {
    /// The next `len` bytes (the lengths were checked against the expanded
    /// form's, so `len` is bounded by what the caller declared); an error
    /// names `segment`.
    fn next_bytes(&mut self, segment: usize, len: u64) -> Result<Cow<'_, [u8]>, RebuildError>;
}

/// An expanded form in memory.
struct Slice<'a>(&'a [u8]);

impl Read for Slice<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl Input for Slice<'_> {
    fn next_bytes(&mut self, segment: usize, len: u64) -> Result<Cow<'_, [u8]>, RebuildError> {
        let n = usize::try_from(len).unwrap_or(usize::MAX).min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        if n as u64 != len {
            return Err(short(segment, len, n as u64));
        }
        Ok(Cow::Borrowed(head))
    }
}

/// An expanded form read as the segments consume it.
struct Stream<R>(R);

impl<R: Read> Read for Stream<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl<R: Read> Input for Stream<R> {
    fn next_bytes(&mut self, segment: usize, len: u64) -> Result<Cow<'_, [u8]>, RebuildError> {
        read_len(&mut self.0, segment, len).map(Cow::Owned)
    }
}

/// [`rebuild_from`]'s work, from either kind of [`Input`].
fn segments(
    recipe: &Recipe,
    expanded: &mut impl Input,
    (expanded_len, out_len): (u64, u64),
    out: &mut impl Write,
    from: FromBase<'_>,
) -> Result<(), RebuildError> {
    let known = from.known;
    check_lens(recipe, expanded_len, out_len)?;
    let mut next = 0;
    while let Some(segment) = recipe.segments.get(next) {
        let index = next;
        next += 1;
        if let Some(end) = zlib_batch(&recipe.segments, index) {
            zlib_at_once(&recipe.segments, index..end, expanded, out, known)?;
            next = end;
            continue;
        }
        let rebuilt = match segment {
            Segment::Literal { len } => {
                let copied =
                    std::io::copy(&mut (&mut *expanded).take(*len), out).map_err(|source| {
                        RebuildError::Read {
                            segment: index,
                            source,
                        }
                    })?;
                if copied != *len {
                    return Err(short(index, *len, copied));
                }
                continue;
            }
            Segment::Deflate {
                chunks,
                compressed_len,
                plain_len,
            } => {
                // Written chunk by chunk, each checked against its declared
                // length, and the chunks add up to the segment's length.
                deflate(index, expanded, *plain_len, *compressed_len, chunks, out)?;
                continue;
            }
            Segment::Zlib {
                params,
                compressed_len,
                plain_len,
            } => {
                zlib(
                    index,
                    params,
                    (*plain_len, *compressed_len),
                    expanded,
                    out,
                    known,
                )?;
                continue;
            }
            Segment::ZlibCuts {
                params,
                compressed_len,
                plain_len,
                cuts,
            } => {
                cut(
                    index,
                    params,
                    cuts,
                    (*plain_len, *compressed_len),
                    expanded,
                    out,
                    from.parse,
                )?;
                continue;
            }
            Segment::Xz {
                params,
                plain_len,
                compressed_len,
            } => {
                xz(index, params, *plain_len, *compressed_len, expanded, out)?;
                continue;
            }
            Segment::Zstd {
                params, plain_len, ..
            } => {
                let input = expanded.next_bytes(index, *plain_len)?;
                crate::zstd::compress(params, &input).map_err(|source| RebuildError::Zstd {
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

/// The recipe consumes `expanded_len` bytes and makes `out_len`: checked
/// before anything is read or written.
fn check_lens(recipe: &Recipe, expanded_len: u64, out_len: u64) -> Result<(), RebuildError> {
    let recipe_expanded = recipe.expanded_len();
    if recipe_expanded != expanded_len {
        return Err(RebuildError::ExpandedLenMismatch {
            recipe: recipe_expanded,
            actual: expanded_len,
        });
    }
    let recipe_out = recipe.output_len();
    if recipe_out != Some(out_len) {
        return Err(RebuildError::OutputLenMismatch {
            recipe: recipe_out,
            expected: out_len,
        });
    }
    Ok(())
}

/// The most plain bytes of a zlib segment deflated beside others
/// ([`zlib_at_once`]); a longer one is read as its encoder goes, alone.
pub(crate) const AT_ONCE_SEGMENT: u64 = 32 << 20;

/// The most expanded bytes (plain and literal) a batch of segments
/// deflated at once holds.
const AT_ONCE_BATCH: u64 = 48 << 20;

/// The end of the batch of segments from `first` that [`zlib_at_once`]
/// rebuilds, if there is one: `first` and the segments after it while
/// they are literal or zlib segments of at most [`AT_ONCE_SEGMENT`] plain
/// bytes, up to [`AT_ONCE_BATCH`] in all, with at least two zlib segments
/// (a zip's members: a wheel, a jar).
fn zlib_batch(segments: &[Segment], first: usize) -> Option<usize> {
    if !matches!(segments.get(first), Some(Segment::Zlib { plain_len, .. }) if *plain_len <= AT_ONCE_SEGMENT)
    {
        return None;
    }
    let (mut held, mut zlib, mut end, mut last_zlib) = (0u64, 0usize, first, first);
    while let Some(s) = segments.get(end) {
        let len = match s {
            Segment::Literal { len } => *len,
            Segment::Zlib { plain_len, .. } if *plain_len <= AT_ONCE_SEGMENT => *plain_len,
            _ => break,
        };
        if held.saturating_add(len) > AT_ONCE_BATCH {
            break;
        }
        held += len;
        if let Segment::Zlib { .. } = s {
            zlib += 1;
            last_zlib = end;
        }
        end += 1;
    }
    // Literals after the batch's last zlib segment are left to the loop.
    (zlib >= 2).then_some(last_zlib + 1)
}

/// Rebuilds `batch` (from [`zlib_batch`]): reads its expanded bytes, deflates
/// its zlib segments on every core (the largest first), each into memory and
/// never past its declared length, and writes the segments in order; the
/// first that fails is the error, after those before it were written, as
/// one after another. A segment that is a `known` stream is copied, not
/// deflated. The bytes held are reserved in the process's
/// [`budget`](crate::budget).
fn zlib_at_once(
    segments: &[Segment],
    batch: std::ops::Range<usize>,
    expanded: &mut impl Input,
    out: &mut impl Write,
    known: Option<&KnownStreams>,
) -> Result<(), RebuildError> {
    let first = batch.start;
    let batch = &segments[batch];
    let expanded_len: u64 = batch.iter().map(Segment::expanded_len).sum();
    let compressed: u64 = batch
        .iter()
        .filter(|s| matches!(s, Segment::Zlib { .. }))
        .map(Segment::output_len)
        .sum();
    let _permit = crate::budget::reserve(expanded_len + compressed);
    let bytes = expanded.next_bytes(first, expanded_len)?;
    let mut at = 0usize;
    let mut jobs = Vec::new();
    // Segments copied from a known stream, by their index in the batch.
    let mut copied = HashMap::new();
    for (i, s) in batch.iter().enumerate() {
        let len = s.expanded_len() as usize;
        if let Segment::Zlib {
            params,
            compressed_len,
            ..
        } = s
        {
            let plain = &bytes[at..at + len];
            match known.and_then(|k| k.compressed(plain, *compressed_len)) {
                Some(stream) => {
                    copied.insert(i, stream);
                }
                None => jobs.push((i, params, *compressed_len, plain)),
            }
        }
        at += len;
    }
    jobs.sort_by_key(|j| std::cmp::Reverse(j.3.len()));
    let taken = std::sync::atomic::AtomicUsize::new(0);
    let workers = crate::cuts::threads().min(jobs.len());
    type Made = (usize, Result<Vec<u8>, ZlibError>, usize);
    let mut made: Vec<Made> = std::thread::scope(|s| {
        let running: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let n = taken.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(&(i, params, compressed_len, plain)) = jobs.get(n) else {
                            return done;
                        };
                        // Its declared length, within what deflate can
                        // make of its plain bytes (the recipe is hostile).
                        let bound = 2 * plain.len() as u64 + (64 << 10);
                        let mut deflated = Vec::with_capacity(compressed_len.min(bound) as usize);
                        let mut input = plain;
                        let r =
                            crate::zlib::rebuild(params, &mut input, compressed_len, &mut deflated);
                        // The encoder reads to the end of what it is given.
                        done.push((i, r.map(|()| deflated), input.len()));
                    }
                })
            })
            .collect();
        running
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    made.sort_by_key(|m| m.0);
    let mut made = made.into_iter();
    let mut at = 0usize;
    for (i, s) in batch.iter().enumerate() {
        let len = s.expanded_len() as usize;
        match s {
            Segment::Zlib { .. } if copied.contains_key(&i) => out.write_all(copied[&i])?,
            Segment::Zlib { .. } => {
                let (_, r, left) =
                    made.next()
                        .filter(|m| m.0 == i)
                        .ok_or_else(|| RebuildError::Zlib {
                            segment: first + i,
                            source: ZlibError::Zlib("a deflate job was lost".into()),
                        })?;
                let deflated = r.map_err(|source| RebuildError::Zlib {
                    segment: first + i,
                    source,
                })?;
                if left != 0 {
                    return Err(short(first + i, len as u64, (len - left) as u64));
                }
                out.write_all(&deflated)?;
            }
            _ => out.write_all(&bytes[at..at + len])?,
        }
        at += len;
    }
    Ok(())
}

/// Rebuilds zlib segment `index` of `plain_len` plain bytes into exactly
/// `compressed_len` bytes: copied when it is one of the `known` streams,
/// else deflated.
fn zlib(
    index: usize,
    params: &crate::zlib::ZlibParams,
    (plain_len, compressed_len): (u64, u64),
    expanded: &mut impl Input,
    out: &mut impl Write,
    known: Option<&KnownStreams>,
) -> Result<(), RebuildError> {
    let failed = |source| match source {
        ZlibError::Write(e) => RebuildError::Write(e),
        source => RebuildError::Zlib {
            segment: index,
            source,
        },
    };
    if let Some(k) = known.filter(|k| plain_len <= AT_ONCE_SEGMENT && k.has_len(compressed_len)) {
        // A stream that may be known (a crate's, a chart's: one stream the
        // outside's search compared whole; a large member of a zip, alone
        // outside a batch, that the object shares with its base) is read
        // whole, and copied if it is.
        let _permit = crate::budget::reserve(plain_len + compressed_len);
        let plain = expanded.next_bytes(index, plain_len)?;
        if let Some(stream) = k.compressed(&plain, compressed_len) {
            out.write_all(stream)?;
            return Ok(());
        }
        let mut input = &plain[..];
        crate::zlib::rebuild(params, &mut input, compressed_len, out).map_err(failed)?;
        if !input.is_empty() {
            return Err(short(index, plain_len, plain_len - input.len() as u64));
        }
        return Ok(());
    }
    // Read as the encoder goes and written as it comes, never past its
    // declared length: the plain stream is not held.
    let mut input = Counted::new((&mut *expanded).take(plain_len));
    let done = crate::zlib::rebuild(params, &mut input, compressed_len, out);
    input.check(index, plain_len)?;
    done.map_err(failed)?;
    input.check_all(index, plain_len)
}

/// Rebuilds xz segment `index`: read as the encoder goes and written as it
/// comes, as a zlib segment is.
fn xz(
    index: usize,
    params: &crate::xz::XzParams,
    plain_len: u64,
    compressed_len: u64,
    expanded: &mut impl Read,
    out: &mut impl Write,
) -> Result<(), RebuildError> {
    let mut input = Counted::new(expanded.by_ref().take(plain_len));
    let done = crate::xz::compress_to(params, &mut input, compressed_len, out);
    input.check(index, plain_len)?;
    let written = done.map_err(|e| match e {
        StreamError::Xz(source) => RebuildError::Xz {
            segment: index,
            source,
        },
        StreamError::TooLong { .. } => RebuildError::SegmentLenMismatch {
            segment: index,
            declared: compressed_len,
            produced: compressed_len.saturating_add(1),
        },
        StreamError::Write(e) => RebuildError::Write(e),
        StreamError::Read(source) => RebuildError::Read {
            segment: index,
            source,
        },
    })?;
    input.check_all(index, plain_len)?;
    if written != compressed_len {
        return Err(RebuildError::SegmentLenMismatch {
            segment: index,
            declared: compressed_len,
            produced: written,
        });
    }
    Ok(())
}

/// Rebuilds cut zlib segment `index`: its pieces at once, read as they
/// need and written in order.
fn cut(
    index: usize,
    params: &crate::zlib::ZlibParams,
    cuts: &[crate::recipe::DeflateCut],
    (plain_len, compressed_len): (u64, u64),
    expanded: &mut impl Read,
    out: &mut impl Write,
    parse: Option<&crate::reuse::Base<'_>>,
) -> Result<(), RebuildError> {
    let mut input = Counted::new(expanded.by_ref().take(plain_len));
    let done = crate::cuts::rebuild(
        params,
        cuts,
        plain_len,
        compressed_len,
        &mut input,
        out,
        true,
        parse,
    );
    input.check(index, plain_len)?;
    done.map_err(|source| match source {
        crate::cuts::CutError::Write(e) => RebuildError::Write(e),
        source => RebuildError::Cuts {
            segment: index,
            source,
        },
    })?;
    input.check_all(index, plain_len)
}

/// A reader that counts what it gives, and keeps its first error and
/// whether it ended.
struct Counted<R> {
    inner: R,
    count: u64,
    ended: bool,
    error: Option<std::io::Error>,
}

impl<R> Counted<R> {
    fn new(inner: R) -> Self {
        Counted {
            inner,
            count: 0,
            ended: false,
            error: None,
        }
    }
}

impl<R> Counted<R> {
    /// A read that failed, or ended before `want` bytes, is the cause of
    /// segment `segment`'s failure, whatever its encoder made of it.
    fn check(&mut self, segment: usize, want: u64) -> Result<(), RebuildError> {
        if let Some(source) = self.error.take() {
            return Err(RebuildError::Read { segment, source });
        }
        if self.ended && self.count != want {
            return Err(short(segment, want, self.count));
        }
        Ok(())
    }

    /// The encoder read all `want` bytes.
    fn check_all(&self, segment: usize, want: u64) -> Result<(), RebuildError> {
        if self.count != want {
            return Err(short(segment, want, self.count));
        }
        Ok(())
    }
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.count += n as u64;
                self.ended |= n == 0 && !buf.is_empty();
                Ok(n)
            }
            Err(e) => {
                let again = std::io::Error::new(e.kind(), e.to_string());
                if e.kind() != std::io::ErrorKind::Interrupted {
                    self.error = Some(e);
                }
                Err(again)
            }
        }
    }
}

/// The error of a read in segment `segment` that gave `got` of `want` bytes.
fn short(segment: usize, want: u64, got: u64) -> RebuildError {
    RebuildError::Read {
        segment,
        source: std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("the expanded form ended {} bytes early", want - got),
        ),
    }
}

/// Reads exactly `len` bytes (the lengths were checked against the expanded
/// form's, so `len` is bounded by what the caller declared).
fn read_len(input: &mut impl Read, segment: usize, len: u64) -> Result<Vec<u8>, RebuildError> {
    let mut buf = Vec::new();
    let got = (&mut *input)
        .take(len)
        .read_to_end(&mut buf)
        .map_err(|source| RebuildError::Read { segment, source })? as u64;
    if got != len {
        return Err(short(segment, len, got));
    }
    Ok(buf)
}

/// Rebuilds deflate segment `segment` after checking its chunks add up,
/// reading each chunk's plain bytes as it comes.
fn deflate(
    segment: usize,
    input: &mut impl Input,
    plain_len: u64,
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
    if sums != Some((plain_len, compressed_len)) {
        return Err(RebuildError::ChunksInconsistent { segment });
    }
    let mut p = codec::DeflateRebuilder::new();
    for (index, chunk) in chunks.iter().enumerate() {
        let text = input.next_bytes(segment, chunk.plain_len)?;
        p.chunk(index, &text, chunk, out).map_err(|e| match e {
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
        })?;
    }
    Ok(())
}
