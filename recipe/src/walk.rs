//! The container walk shared by [`analyze`](crate::analyze) and
//! [`expand`](crate::expand): it finds the compressed streams of an object,
//! decodes them within the bounds, and builds the expanded form (and, when
//! analysing, the recipe and the report).

use crate::codec::{self, Bounds, Codec};
use crate::known::KnownStreams;
use crate::recipe::Segment;
use crate::report::{LiteralReason, Outcome, StreamKind, StreamReport};
use crate::zlib::{DeflateSearch, LevelHint, StreamView, ZlibParams};
use crate::Options;

/// What the walk is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Decode every stream found; no recipe.
    Expand,
    /// Keep a stream decoded only if it is reproduced bit-exactly.
    Analyze,
}

/// The walk's state: everything before `pos` has been emitted.
pub(crate) struct Walker<'a> {
    pub(crate) data: &'a [u8],
    opts: &'a Options,
    mode: Mode,
    pos: usize,
    /// Size the expanded form will have: the input's size plus the growth of
    /// every stream decoded so far.
    pub(crate) projected: u64,
    pub(crate) expanded: Vec<u8>,
    pub(crate) segments: Vec<Segment>,
    pub(crate) streams: Vec<StreamReport>,
    /// The deflate encoder search of this object.
    pub(crate) deflate: DeflateSearch,
    /// Expanding: every deflate stream decoded, as (its start in `data`,
    /// its compressed length, its start in `expanded`, its plain length).
    pub(crate) deflated: Vec<[usize; 4]>,
    /// The streams of the base the object is analysed against
    /// ([`crate::analyze_sharing`]): a deflate stream the object shares
    /// with it byte for byte is not searched ([`shared_params`]).
    pub(crate) base: Option<&'a KnownStreams>,
    /// The zlib segments of the streams shared with the base (not
    /// searched), by their index in `segments`.
    pub(crate) shared: Vec<usize>,
    /// The zlib segments whose encoder output the search compared with the
    /// stream to its end, by their index in `segments`.
    pub(crate) compared: Vec<usize>,
}

/// Where a stream sits: its container region ends at `end`, and the container
/// may declare its compressed length.
pub(crate) struct Place {
    pub(crate) kind: StreamKind,
    pub(crate) codec: Codec,
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) declared: Option<usize>,
    /// The levels the container's header suggests (deflate only).
    pub(crate) hint: LevelHint,
    /// Whether the stream may be GNU gzip's at a level that can be cut (a
    /// gzip member written on Unix, not at level 1): its block ends are
    /// then read on another thread while it is inflated
    /// ([`crate::cuts::blocks::read_ahead`]), when it is large enough to be
    /// cut.
    pub(crate) read_ahead: bool,
}

impl<'a> Walker<'a> {
    pub(crate) fn new(data: &'a [u8], opts: &'a Options, mode: Mode) -> Walker<'a> {
        Walker {
            data,
            opts,
            mode,
            pos: 0,
            projected: data.len() as u64,
            expanded: Vec::new(),
            segments: Vec::new(),
            streams: Vec::new(),
            deflate: DeflateSearch::new(opts.max_recipe_version),
            deflated: Vec::new(),
            base: None,
            shared: Vec::new(),
            compared: Vec::new(),
        }
    }

    /// A walk of `data`, a part of a larger object that is read as it goes
    /// ([`crate::stream_pkg`]): `projected` is the larger object's projected
    /// size so far, `deflate` its encoder search. What the walk makes is
    /// the part's, its offsets the part's.
    pub(crate) fn within(
        data: &'a [u8],
        opts: &'a Options,
        mode: Mode,
        (projected, deflate): (u64, DeflateSearch),
    ) -> Walker<'a> {
        Walker {
            projected,
            deflate,
            ..Walker::new(data, opts, mode)
        }
    }

    /// How many containers deep the walk goes.
    pub(crate) fn max_depth(&self) -> u32 {
        self.opts.max_depth
    }

    /// Emits the object's bytes from the current position up to `end` literally.
    pub(crate) fn literal_to(&mut self, end: usize) {
        if end <= self.pos {
            return;
        }
        let len = (end - self.pos) as u64;
        self.expanded.extend_from_slice(&self.data[self.pos..end]);
        self.pos = end;
        if self.mode == Mode::Analyze {
            if let Some(Segment::Literal { len: last }) = self.segments.last_mut() {
                *last += len;
            } else {
                self.segments.push(Segment::Literal { len });
            }
        }
    }

    /// Drops the expanded bytes from `mark` on (a stream that stays literal),
    /// and the memory they took: a large stream's capacity is not kept.
    fn drop_from(&mut self, mark: usize) {
        self.expanded.truncate(mark);
        if self.expanded.capacity() > 2 * mark + (1 << 20) {
            self.expanded.shrink_to(2 * mark);
        }
    }

    /// Emits everything left literally; the walk is over.
    pub(crate) fn finish(&mut self) {
        self.literal_to(self.data.len());
    }

    /// The bounds of decoding a stream whose container region (from the
    /// stream's start) is `region` bytes.
    fn bounds(&self, region: u64) -> Bounds {
        bounds(self.opts, self.projected, region)
    }

    /// Inflates `region` (a stream of `codec`) into the expanded form; a
    /// stream that may be cut (`read_ahead`, large enough) has its block
    /// ends read on another thread meanwhile: the cut analysis's decoder
    /// pass, otherwise run after the inflate on this thread.
    fn decode_reading_ahead(
        &mut self,
        (codec, read_ahead): (Codec, bool),
        region: &[u8],
        bounds: &Bounds,
    ) -> (
        Result<usize, LiteralReason>,
        Option<crate::cuts::blocks::Ahead>,
    ) {
        let ahead = self.mode == Mode::Analyze
            && codec == Codec::Deflate
            && read_ahead
            && self
                .opts
                .deflate_cuts
                .is_some_and(|step| region.len() as u64 >= READ_AHEAD_MIN.max(step / 2));
        let expanded = &mut self.expanded;
        std::thread::scope(|s| {
            let reader = ahead
                .then(|| {
                    std::thread::Builder::new()
                        .name("ferry-blocks".into())
                        .spawn_scoped(s, || crate::cuts::blocks::read_ahead(region))
                        .ok()
                })
                .flatten();
            let decoded = codec::decode_into(codec, region, bounds, expanded);
            (decoded, reader.and_then(|r| r.join().ok().flatten()))
        })
    }

    /// The segment that rebuilds the stream `compressed` (of `kind`), whose
    /// plain bytes are the expanded form's from `mark` on, or why not; and
    /// how it was found.
    fn analyse(
        &mut self,
        (kind, codec, hint): (StreamKind, Codec, LevelHint),
        (compressed, ahead): (&[u8], Option<crate::cuts::blocks::Ahead>),
        mark: usize,
    ) -> (Result<Segment, LiteralReason>, Found) {
        let plain = &self.expanded[mark..];
        let base = (self.opts, self.base);
        if let Some(params) =
            shared_params(base, &mut self.deflate, (codec, hint), compressed, plain)
        {
            let segment = Segment::Zlib {
                plain_len: plain.len() as u64,
                compressed_len: compressed.len() as u64,
                params,
            };
            return (Ok(segment), Found::Shared);
        }
        let whole = self.opts.check_streams
            || compressed.len() <= crate::zlib::PREFIX
            || (kind == StreamKind::ZipEntry && compressed.len() <= crate::zlib::COMPARED_WHOLE);
        let made = reproduce(
            self.opts,
            &mut self.deflate,
            (codec, hint),
            (compressed, ahead),
            (plain, whole),
        );
        (made, if whole { Found::Whole } else { Found::Prefix })
    }

    /// Handles the stream at `place`: decodes it within the bounds and emits it,
    /// decoded or literal. Returns where it ends, or `None` if it does not decode
    /// (then nothing of it is emitted and the caller decides what stays literal).
    pub(crate) fn stream(&mut self, place: Place) -> Option<usize> {
        let Place {
            kind,
            codec,
            start,
            end,
            declared,
            hint,
            read_ahead,
        } = place;
        if start < self.pos || start > end || end > self.data.len() {
            return None;
        }
        let region = &self.data[start..end];
        let bounds = self.bounds(region.len() as u64);
        let report = |compressed_len: usize, plain_len: Option<u64>, outcome| StreamReport {
            kind,
            offset: start as u64,
            compressed_len: compressed_len as u64,
            plain_len,
            recipe_len: 0,
            outcome,
        };
        if self.mode == Mode::Analyze && codec == Codec::Xz && !self.opts.reproduce_xz {
            // It would stay literal: not even decoded (an xz stream is only
            // found at the start of its container, which leaves the rest literal).
            let left = declared.unwrap_or(region.len()).min(region.len());
            let plain = crate::xz::indexed_plain_len(&region[..left]);
            self.streams.push(report(
                left,
                plain,
                Outcome::Literal(LiteralReason::Skipped),
            ));
            return None;
        }
        // The stream's plain bytes go straight after what is emitted so far
        // (the bytes before it, emitted literally first), so a large stream
        // is held once; they are dropped again if it stays literal.
        self.literal_to(start);
        let mark = self.expanded.len();
        let (decoded, ahead) = self.decode_reading_ahead((codec, read_ahead), region, &bounds);
        let used = match decoded {
            Ok(used) => used,
            Err(why) => {
                self.drop_from(mark);
                let left = declared.unwrap_or(region.len()).min(region.len());
                self.streams.push(report(left, None, Outcome::Literal(why)));
                return None;
            }
        };
        let plain_len = (self.expanded.len() - mark) as u64;
        let check = if declared.is_some_and(|d| d != used) {
            Err(LiteralReason::Inconsistent)
        } else if plain_len > (used as u64).saturating_mul(self.opts.max_ratio) {
            Err(LiteralReason::Ratio)
        } else {
            Ok(())
        };
        if let Err(why) = check {
            self.drop_from(mark);
            self.streams
                .push(report(used, Some(plain_len), Outcome::Literal(why)));
            return if declared.is_some() {
                None
            } else {
                Some(start + used)
            };
        }
        let compressed = &region[..used];
        let (segment, found) = match self.mode {
            Mode::Expand => (Ok(None), Found::Prefix),
            Mode::Analyze => {
                let (segment, found) = self.analyse((kind, codec, hint), (compressed, ahead), mark);
                (segment.map(Some), found)
            }
        };
        if self.mode == Mode::Expand && codec == Codec::Deflate {
            self.deflated.push([start, used, mark, plain_len as usize]);
        }
        match segment {
            Ok(segment) => {
                let mut r = report(used, Some(plain_len), Outcome::Reproduced);
                if let Some(segment) = segment {
                    r.recipe_len = recipe_data_len(&segment);
                    let index = self.segments.len();
                    match (found, &segment) {
                        (Found::Shared, _) => self.shared.push(index),
                        (Found::Whole, Segment::Zlib { .. }) => self.compared.push(index),
                        _ => {}
                    }
                    self.segments.push(segment);
                }
                if self.mode == Mode::Analyze {
                    self.streams.push(r);
                }
                self.projected = self.projected - used as u64 + plain_len;
                self.pos = start + used;
            }
            Err(why) => {
                self.drop_from(mark);
                self.streams
                    .push(report(used, Some(plain_len), Outcome::Literal(why)));
                self.literal_to(start + used);
            }
        }
        Some(start + used)
    }
}

/// The bounds of decoding a stream whose container region (from the
/// stream's start) is `region` bytes, the object's form being projected to
/// `projected` bytes so far: at most `max_ratio` times the region, and no
/// further than `max_expanded`. The walks that read an object as it goes
/// ([`crate::stream_expand`], [`crate::stream_zip`], [`crate::stream_pkg`])
/// decode within the same limit, so that their forms are the whole walk's.
pub(crate) fn bounds(opts: &Options, projected: u64, region: u64) -> Bounds {
    let by_ratio = region.saturating_mul(opts.max_ratio);
    let by_budget = opts
        .max_expanded
        .saturating_sub(projected)
        .saturating_add(region);
    Bounds {
        limit: by_ratio.min(by_budget),
        max_ratio: opts.max_ratio,
        ratio_bound: by_ratio < by_budget,
    }
}

/// The fewest compressed bytes of a stream whose block ends are read ahead
/// (see [`Place::read_ahead`]): smaller streams are rarely cut, and the
/// read would be wasted.
const READ_AHEAD_MIN: u64 = 1 << 20;

/// How [`Walker::analyse`] found a stream's segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Found {
    /// Shared with the base: not searched ([`shared_params`]).
    Shared,
    /// Searched, the encoder's output compared with the stream to its end.
    Whole,
    /// Searched, its output compared for the first [`crate::zlib::PREFIX`]
    /// bytes (or not a deflate stream).
    Prefix,
}

/// Output compared before a stream the object shares with its base takes
/// the params found ([`shared_params`]); a shorter stream takes the previous
/// stream's params untested.
const SHARED_PREFIX: usize = 64 << 10;

/// The params recorded for a deflate stream whose bytes are those of one of
/// `base`'s streams (the streams of the base the object is analysed
/// against, which both agents' rebuilds copy: see [`crate::known`]), or
/// `None` to search as usual. Such a stream is not deflated whole: a
/// stream of at most [`SHARED_PREFIX`] bytes takes the params of the
/// stream before it in the object (when the container's hint admits them),
/// a longer one the first params whose output starts with its first
/// [`SHARED_PREFIX`] bytes. The rebuild check copies the stream from the
/// base, as the inside's rebuild does, so the params are not what proves
/// it; they are what a rebuild without the base would deflate with, and a
/// check that does (the recipe patched against another base) fails when
/// they are wrong, and the object is analysed again. With
/// `check_streams`, or without a stream before it, the stream is searched.
fn shared_params(
    (opts, base): (&Options, Option<&KnownStreams>),
    search: &mut DeflateSearch,
    (codec, hint): (Codec, LevelHint),
    compressed: &[u8],
    plain: &[u8],
) -> Option<ZlibParams> {
    if codec != Codec::Deflate || opts.check_streams {
        return None;
    }
    let last = search.last()?;
    if base?.compressed(plain, compressed.len() as u64)? != compressed {
        return None;
    }
    if compressed.len() <= SHARED_PREFIX {
        return hint.admits(last).then_some(last);
    }
    search.find(
        StreamView::whole(compressed),
        plain,
        hint,
        Some(SHARED_PREFIX),
    )
}

/// The segment that rebuilds `compressed` from `plain`, or why not; a
/// deflate stream's encoder output is compared to its end with `whole`,
/// else for its first [`crate::zlib::PREFIX`] bytes.
fn reproduce(
    opts: &Options,
    search: &mut DeflateSearch,
    (codec, hint): (Codec, LevelHint),
    (compressed, ahead): (&[u8], Option<crate::cuts::blocks::Ahead>),
    (plain, whole): (&[u8], bool),
) -> Result<Segment, LiteralReason> {
    let plain_len = plain.len() as u64;
    let compressed_len = compressed.len() as u64;
    match codec {
        Codec::Deflate => {
            let prefix = (!whole).then_some(crate::zlib::PREFIX);
            if let Some(params) = search.find(
                crate::zlib::StreamView::whole(compressed),
                plain,
                hint,
                prefix,
            ) {
                // A cut Go stream needs recipe version 7.
                let go_cuts = params.encoder != crate::zlib::GO_FLATE_ENCODER
                    || opts.max_recipe_version >= crate::RECIPE_VERSION;
                let cuts = opts.deflate_cuts.filter(|_| go_cuts).and_then(|step| {
                    crate::cuts::find(&params, plain, compressed, step, opts.check_streams, ahead)
                });
                if let Some(cuts) = cuts {
                    return Ok(Segment::ZlibCuts {
                        plain_len,
                        compressed_len,
                        params,
                        cuts,
                    });
                }
                return Ok(Segment::Zlib {
                    plain_len,
                    compressed_len,
                    params,
                });
            }
            if plain_len > opts.max_deflate_plain {
                return Err(LiteralReason::TooLarge);
            }
            let chunks = codec::deflate_chunks(
                compressed,
                plain,
                opts.preflate_max_chain,
                opts.preflate_chunk,
                opts.check_streams,
            )?;
            Ok(Segment::Deflate {
                plain_len,
                compressed_len,
                chunks,
            })
        }
        Codec::Xz if !opts.reproduce_xz => Err(LiteralReason::Skipped),
        Codec::Xz if !opts.check_streams => crate::xz::find_params_by_prefix(compressed, plain)
            .map(|params| Segment::Xz {
                plain_len,
                compressed_len,
                params,
            })
            .map_err(|_| LiteralReason::NotModelled),
        Codec::Xz => crate::xz::find_params(compressed, plain)
            .map(|params| Segment::Xz {
                plain_len,
                compressed_len,
                params,
            })
            .map_err(|_| LiteralReason::NotModelled),
        Codec::Zstd => crate::zstd::find_params(compressed, plain)
            .map(|params| Segment::Zstd {
                plain_len,
                compressed_len,
                params,
            })
            .map_err(|_| LiteralReason::NotModelled),
    }
}

/// Bytes of reproduction data a segment carries (its encoding minus the lengths).
pub(crate) fn recipe_data_len(segment: &Segment) -> u64 {
    match segment {
        Segment::Literal { .. } => 0,
        Segment::Deflate { chunks, .. } => chunks.iter().map(|c| c.corrections.len() as u64).sum(),
        Segment::Xz { params, .. } => postcard::to_stdvec(params).map_or(0, |v| v.len() as u64),
        Segment::Zstd { params, .. } => postcard::to_stdvec(params).map_or(0, |v| v.len() as u64),
        Segment::Zlib { params, .. } => postcard::to_stdvec(params).map_or(0, |v| v.len() as u64),
        Segment::ZlibCuts { params, cuts, .. } => {
            postcard::to_stdvec(&(params, cuts)).map_or(0, |v| v.len() as u64)
        }
    }
}
