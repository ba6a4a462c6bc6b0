//! A large gzip object expanded, and analysed, as it is read, never held:
//! `expand` and `analyze` read an object whole and return its form whole,
//! which for a layer of a few hundred MB is more than an agent may hold.
//!
//! [`expand_gzip_member`] makes the reference form of one gzip member (what
//! `expand` makes of it, or nothing); [`analyze_gzip_member`] makes its
//! expanded form and recipe as `analyze` does with `check_streams` off, for
//! the streams an encoder of this crate reproduces (or nothing: the caller
//! analyses the object whole).

use std::io::{Read, Write};

use crate::DeflatedStream;

/// Bytes read from the object at a time.
const READ: usize = 1 << 20;

/// Plain bytes inflated at a time: the granularity of the running ratio
/// check (see [`expand_gzip_member`]).
const STEP: usize = 256 << 10;

/// Why [`expand_gzip_member`] gave no form.
#[derive(Debug, thiserror::Error)]
pub enum StreamExpandError {
    /// Reading the object or writing the form failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The stream is one gzip member but its encoder was not found without
    /// holding the stream (the caller analyses the object whole, as
    /// [`crate::analyze`] does: preflate-rs, or literal).
    #[error("not reproduced as it is read: {0}")]
    NotReproduced(&'static str),
    /// The object is not one gzip member whose deflate stream decodes and
    /// ends just before its 8-byte trailer at the object's end, or it comes
    /// near the expansion's bounds, where only [`crate::expand`] decides
    /// (the caller expands it whole).
    #[error("not one gzip member: {0}")]
    NotOneMember(&'static str),
}

/// Writes to `out` the reference form of the object read from `object`
/// (`len` bytes) when it is one gzip member: its header, its plain bytes and
/// its trailer, which is what [`crate::expand`] makes of such an object
/// with [`crate::Options::default`]. Reads and inflates the object a MiB at
/// a time. Gives where its deflate stream is, in the object and in the form.
///
/// The form is exactly `expand`'s or none: an object `expand` might lay
/// out otherwise is refused ([`StreamExpandError::NotOneMember`]), and the
/// caller expands it whole. `expand` keeps a stream literal when its plain
/// bytes pass `min(region × max_ratio, max_expanded − len + region)`
/// (`region`: the object from the stream's start) or `max_ratio` times its
/// compressed length, both checked here on the final lengths as `expand`
/// checks them; and while inflating, when its output passes `consumed ×
/// max_ratio + 1 MiB` at one of its checks (every 256 KiB of output, its
/// input whole in memory). That running check cannot be replayed exactly
/// on input read in pieces, so a stream whose output comes within half a
/// MiB of that line at any of this reader's checks (at most 256 KiB
/// apart) is refused: between two checks the output grows by at most 256
/// KiB, so `expand`'s checks then stay more than 200 KiB below its line.
pub fn expand_gzip_member(
    object: &mut impl Read,
    len: u64,
    out: &mut impl Write,
) -> Result<DeflatedStream, StreamExpandError> {
    expand_member_with(object, len, out, &crate::Options::default())
}

/// [`expand_gzip_member`] with the bounds of `opts` (`max_expanded`,
/// `max_ratio`).
pub(crate) fn expand_member_with(
    object: &mut impl Read,
    len: u64,
    out: &mut impl Write,
    opts: &crate::Options,
) -> Result<DeflatedStream, StreamExpandError> {
    expand_member_indexed(object, len, out, opts, None)
}

/// [`expand_member_with`], its plain bytes fed to `index` too as they are
/// written (and nothing else: not the header or the trailer).
fn expand_member_indexed(
    object: &mut impl Read,
    len: u64,
    out: &mut impl Write,
    opts: &crate::Options,
    index: Option<&mut crate::reuse::PlainIndexer>,
) -> Result<DeflatedStream, StreamExpandError> {
    let refuse = |why| Err(StreamExpandError::NotOneMember(why));
    if len > opts.max_expanded {
        return refuse("larger than the expansion limit");
    }
    let mut buf = vec![0u8; READ];
    // The header: within the first read (its optional fields are short).
    let mut filled = 0usize;
    while filled < buf.len() && (filled as u64) < len {
        let n = object.read(&mut buf[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    let head = &buf[..filled];
    let Some(body) = crate::containers::gzip_header_end(head, 0, head.len()) else {
        return refuse("no gzip header");
    };
    out.write_all(&head[..body])?;
    // `expand`'s bounds for this stream (the region is the object from the
    // stream's start).
    let region = len - body as u64;
    let limit = crate::walk::bounds(opts, len, region).limit;
    let mut input = Read::chain(&buf[body..filled], &mut *object).take(region);
    let (compressed_len, plain_len, mut tail) = match index {
        Some(index) => {
            let mut tee = Tee {
                out: &mut *out,
                index,
            };
            inflate_stream(&mut input, limit, opts.max_ratio, &mut tee)?
        }
        None => inflate_stream(&mut input, limit, opts.max_ratio, out)?,
    };
    // The trailer: the object's last 8 bytes, nothing after them.
    Read::take(&mut input, 9).read_to_end(&mut tail)?;
    if tail.len() != 8 || object.read(&mut [0u8; 1])? != 0 {
        return refuse("more than a trailer after the stream");
    }
    out.write_all(&tail)?;
    let (compressed_len, plain_len) = (compressed_len as usize, plain_len as usize);
    Ok(DeflatedStream {
        compressed: (body, body + compressed_len),
        plain: (body, body + plain_len),
    })
}

/// A writer that indexes what it passes on.
struct Tee<'a, W> {
    out: &'a mut W,
    index: &'a mut crate::reuse::PlainIndexer,
}

impl<W: Write> Write for Tee<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.index.feed(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Inflates the raw deflate stream read from `input` into `out` as
/// `expand` inflates a stream whose output is bounded by `limit` and
/// `max_ratio` (see [`expand_gzip_member`]: refused near the running
/// ratio line, past `limit`, or past `max_ratio` times its compressed
/// length at its end). Gives its compressed and plain lengths, and the
/// bytes read past its end (at most a read's).
pub(crate) fn inflate_stream(
    input: &mut impl Read,
    limit: u64,
    max_ratio: u64,
    out: &mut impl Write,
) -> Result<(u64, u64, Vec<u8>), StreamExpandError> {
    let refuse = |why| Err(StreamExpandError::NotOneMember(why));
    let mut buf = vec![0u8; READ];
    let (mut at, mut filled) = (0usize, 0usize);
    let mut inflate = zlib_rs::Inflate::new(false, 15);
    let mut plain = vec![0u8; STEP];
    loop {
        if at == filled {
            filled = input.read(&mut buf)?;
            if filled == 0 {
                return refuse("the deflate stream does not end");
            }
            at = 0;
        }
        let (in_before, out_before) = (inflate.total_in(), inflate.total_out());
        let status =
            inflate.decompress(&buf[at..filled], &mut plain, zlib_rs::InflateFlush::NoFlush);
        let used = (inflate.total_in() - in_before) as usize;
        let made = (inflate.total_out() - out_before) as usize;
        at += used;
        out.write_all(&plain[..made])?;
        let Ok(status) = status else {
            return refuse("the deflate stream is corrupt");
        };
        let line = inflate
            .total_in()
            .saturating_mul(max_ratio)
            .saturating_add(crate::codec::RATIO_SLACK / 2);
        if inflate.total_out() > limit || inflate.total_out() > line {
            return refuse("near the expansion's bounds");
        }
        if status == zlib_rs::Status::StreamEnd {
            break;
        }
        if used == 0 && made == 0 && at < filled {
            return refuse("the deflate stream is corrupt");
        }
    }
    let (compressed_len, plain_len) = (inflate.total_in(), inflate.total_out());
    if plain_len > compressed_len.saturating_mul(max_ratio) {
        return refuse("past the expansion's ratio");
    }
    Ok((compressed_len, plain_len, buf[at..filled].to_vec()))
}

/// Plain bytes of the stream held for the encoder search (which compares
/// the first MiB of a candidate's output, [`crate::zlib::PREFIX`]: about 2.3
/// MiB of a layer's plain bytes, and the rest of a deflate block).
pub(crate) const HELD_PLAIN: usize = 32 << 20;

/// Compressed bytes of the stream held for the encoder search: its prefix
/// and room for the candidate's last piece of output past it.
pub(crate) const HELD_COMPRESSED: usize = crate::zlib::PREFIX + (8 << 20);

/// Objects [`analyze_gzip_member`] analysed in this process (for tests).
pub(crate) static ANALYSED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many objects [`analyze_gzip_member`] analysed in this process: a
/// test's way to see that a large object took this path.
pub fn streamed_analyses() -> u64 {
    ANALYSED.load(std::sync::atomic::Ordering::Relaxed)
}

/// What [`analyze_gzip_member`] made: the recipe, the report, and the
/// length of the expanded form it wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamedAnalysis {
    /// Rebuilds the object from the expanded form written.
    pub recipe: crate::Recipe,
    /// The member's stream, reproduced.
    pub report: crate::Report,
    /// Bytes written: the header, the plain bytes, the trailer.
    pub expanded_len: u64,
}

/// [`crate::analyze`] of an object of `len` bytes that is one gzip member,
/// with `opts.check_streams` off, writing its expanded form to `out` as the
/// object is read from `object` (the bytes of `file` from its start; the
/// stream's block ends are read from `file` on another thread meanwhile):
/// the same recipe and form as `analyze`, holding at most about 42 MiB
/// (the stream's first 32 MiB of plain bytes and 9 MiB of compressed ones,
/// for the encoder search).
///
/// Refused, for the caller to analyse the object whole: anything
/// [`expand_gzip_member`] refuses ([`StreamExpandError::NotOneMember`]),
/// `opts.check_streams` on, and a stream whose encoder the search does not
/// find in those first bytes ([`StreamExpandError::NotReproduced`]: one
/// preflate-rs may model, or a stream so compressible that 32 MiB of plain
/// bytes make less than the MiB the search compares). The caller rebuilds
/// the object from the form with the recipe and checks its digest, as after
/// `analyze` with `check_streams` off; a recipe that does not check is
/// analysed again whole, stream by stream.
pub fn analyze_gzip_member(
    file: &std::fs::File,
    len: u64,
    object: &mut impl Read,
    out: &mut impl Write,
    opts: &crate::Options,
) -> Result<StreamedAnalysis, StreamExpandError> {
    use crate::cuts::{blocks, symbols::FileStream};
    use crate::recipe::Segment;
    use crate::zlib::{self, DeflateSearch, LevelHint, StreamView};
    use std::os::unix::fs::FileExt;
    let not_one = |why| StreamExpandError::NotOneMember(why);
    if opts.check_streams {
        return Err(StreamExpandError::NotReproduced(
            "each stream is to be checked on its own",
        ));
    }
    // The header, and the stream's last bytes (the end filters of the
    // encoder search, and whether the block ends are worth reading).
    let mut head = vec![0u8; len.min(64 << 10) as usize];
    file.read_exact_at(&mut head, 0)?;
    let body = crate::containers::gzip_header_end(&head, 0, head.len())
        .ok_or(not_one("no gzip header"))?;
    let stream_len = len
        .checked_sub(body as u64 + 8)
        .ok_or(not_one("shorter than its header and trailer"))?;
    let tail_len = stream_len.min(16);
    let mut tail = vec![0u8; tail_len as usize];
    file.read_exact_at(&mut tail, body as u64 + stream_len - tail_len)?;
    let (xfl, os) = (head[8], head[9]);
    let stream = FileStream {
        file,
        start: body as u64,
        len: stream_len,
    };
    // As `analyze` reads a stream's block ends beside its inflate (a stream
    // that may be GNU gzip's or Go's at a level that is cut).
    let ends_wanted = opts.deflate_cuts.is_some()
        && matches!(os, 3 | 255)
        && xfl != 4
        && !zlib::ends_as_pgzip(&tail);
    let mut held = Holding {
        out,
        kept: Vec::new(),
        cap: body + HELD_PLAIN,
    };
    let mut read = Held::default();
    let (place, ahead) = std::thread::scope(|s| {
        let reader = ends_wanted
            .then(|| {
                std::thread::Builder::new()
                    .name("ferry-blocks".into())
                    .spawn_scoped(s, || blocks::read_ahead_in(stream))
                    .ok()
            })
            .flatten();
        // The stream's first compressed bytes kept as they are read.
        let mut tapped = Tapped {
            inner: object,
            held: &mut read,
            cap: body + HELD_COMPRESSED,
        };
        let place = expand_member_with(&mut tapped, len, &mut held, opts);
        (place, reader.and_then(|r| r.join().ok().flatten()))
    });
    let place = place?;
    let compressed_len = (place.compressed.1 - place.compressed.0) as u64;
    let plain_len = (place.plain.1 - place.plain.0) as u64;
    let kept_plain = held.kept.len().saturating_sub(body).min(plain_len as usize);
    let plain = &held.kept[body..body + kept_plain];
    let kept_compressed = read
        .head
        .len()
        .saturating_sub(body)
        .min(compressed_len as usize);
    let compressed = StreamView {
        head: &read.head[body..body + kept_compressed],
        tail: &tail,
        len: compressed_len as usize,
    };
    let mut search = DeflateSearch::new(opts.max_recipe_version);
    let hint = (LevelHint::of_xfl(xfl), &mut search);
    let segment = member_segment((compressed, stream), (plain, plain_len), hint, ahead, opts)?;
    let report = crate::Report {
        input_len: len,
        streams: vec![crate::report::StreamReport {
            kind: crate::report::StreamKind::GzipMember,
            offset: body as u64,
            compressed_len,
            plain_len: Some(plain_len),
            recipe_len: crate::walk::recipe_data_len(&segment),
            outcome: crate::report::Outcome::Reproduced,
        }],
    };
    let recipe = crate::Recipe {
        segments: vec![
            Segment::Literal { len: body as u64 },
            segment,
            Segment::Literal { len: 8 },
        ],
    };
    ANALYSED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(StreamedAnalysis {
        recipe,
        report,
        expanded_len: len - compressed_len + plain_len,
    })
}

/// The segment of a member's stream (`compressed`, also in the file as
/// `stream`) of `plain_len` plain bytes, the first of which are `plain`,
/// the level its container's header hints and its block ends if read
/// (`ahead`): what the walk's `reproduce` makes of it with `check_streams`
/// off, or [`StreamExpandError::NotReproduced`] where that would need
/// preflate-rs. `search` is the object's (it tries the last stream's
/// params first).
pub(crate) fn member_segment(
    (compressed, stream): (
        crate::zlib::StreamView<'_>,
        crate::cuts::symbols::FileStream<'_>,
    ),
    (plain, plain_len): (&[u8], u64),
    (hint, search): (crate::zlib::LevelHint, &mut crate::zlib::DeflateSearch),
    ahead: Option<crate::cuts::blocks::Ahead>,
    opts: &crate::Options,
) -> Result<crate::recipe::Segment, StreamExpandError> {
    use crate::cuts::{self, blocks};
    use crate::recipe::Segment;
    use crate::zlib;
    let compressed_len = compressed.len as u64;
    let params = search
        .find(compressed, plain, hint, Some(zlib::PREFIX))
        .ok_or(StreamExpandError::NotReproduced(
            "no encoder of this build gives its first MiB",
        ))?;
    // A cut Go stream needs recipe version 7.
    let go_cuts = params.encoder != zlib::GO_FLATE_ENCODER
        || opts.max_recipe_version >= crate::RECIPE_VERSION;
    let cuts = opts
        .deflate_cuts
        .filter(|&step| go_cuts && cuts::may_cut(&params, plain_len, step))
        .and_then(|step| {
            // Read here when they were not read beside the inflate.
            let ahead = ahead.or_else(|| blocks::read_ahead_in(stream))?;
            cuts::find_unchecked(&params, (plain_len, compressed_len), step, &ahead)
        });
    Ok(match cuts {
        Some(cuts) => Segment::ZlibCuts {
            plain_len,
            compressed_len,
            params,
            cuts,
        },
        None => Segment::Zlib {
            plain_len,
            compressed_len,
            params,
        },
    })
}

/// A writer that passes everything on and keeps the first `cap` bytes.
pub(crate) struct Holding<'w, W> {
    pub(crate) out: &'w mut W,
    pub(crate) kept: Vec<u8>,
    pub(crate) cap: usize,
}

impl<W: Write> Write for Holding<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        let room = self.cap.saturating_sub(self.kept.len()).min(n);
        self.kept.extend_from_slice(&buf[..room]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// What a stream's inflate kept of it for the encoder search: its first
/// plain bytes, its first and last compressed bytes.
#[derive(Default)]
pub(crate) struct Held {
    pub(crate) plain: Vec<u8>,
    pub(crate) head: Vec<u8>,
    pub(crate) tail: Vec<u8>,
}

/// A reader that keeps the first `cap` bytes it reads in `held.head` and
/// the last 16 in `held.tail`.
pub(crate) struct Tapped<'h, R> {
    pub(crate) inner: R,
    pub(crate) held: &'h mut Held,
    pub(crate) cap: usize,
}

impl<R: Read> Read for Tapped<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let got = &buf[..n];
        let room = self.cap.saturating_sub(self.held.head.len()).min(n);
        self.held.head.extend_from_slice(&got[..room]);
        let tail = &mut self.held.tail;
        tail.extend_from_slice(&got[n.saturating_sub(16)..]);
        if tail.len() > 16 {
            tail.drain(..tail.len() - 16);
        }
        Ok(n)
    }
}

/// Whether an object starting with `head` is one this module expands and
/// analyses as it is read: a gzip member, a zip or a package (a deb, an
/// RPM).
pub fn is_streamed(head: &[u8]) -> bool {
    crate::containers::is_gzip(head)
        || head.starts_with(crate::containers::ZIP_LOCAL)
        || is_package(head)
}

/// Whether `head` (at least 4 bytes) starts an ar archive or an RPM.
fn is_package(head: &[u8]) -> bool {
    head.starts_with(&crate::containers::AR[..4]) || head.starts_with(crate::containers::RPM_LEAD)
}

/// The reference form of the object read from `object` (`len` bytes, the
/// bytes of `file` from its start), written to `out` as it is read: a gzip
/// member ([`expand_gzip_member`]), a zip ([`crate::stream_zip`]) or a
/// package, a deb or an RPM ([`crate::stream_pkg`]), each exactly what [`crate::expand`] makes
/// of it, or refused (the caller expands it whole).
pub fn expand_streamed(
    file: &std::fs::File,
    len: u64,
    object: &mut impl Read,
    out: &mut impl Write,
) -> Result<(), StreamExpandError> {
    let opts = crate::Options::default();
    match head_of(file, len)? {
        h if crate::containers::is_gzip(&h) => {
            expand_member_with(object, len, out, &opts).map(|_| ())
        }
        h if h.starts_with(crate::containers::ZIP_LOCAL) => {
            crate::stream_zip::walk_zip(object, len, out, &opts, (0, 0), |_| Ok(()))
        }
        h if is_package(&h) => crate::stream_pkg::expand_package(object, len, out, &opts),
        _ => Err(StreamExpandError::NotOneMember(
            "neither gzip, zip nor a package",
        )),
    }
}

/// [`expand_streamed`] of a base whose GNU gzip parse a rebuild may copy
/// ([`crate::reuse`]) without holding it: when the object is one gzip
/// member, its plain bytes are indexed as they are written
/// ([`crate::reuse::PlainIndexer`]) while another thread reads its block
/// starts from `file` ([`crate::reuse::block_starts_in`]), and both are
/// given with where its stream is. `None` beside the form for any other
/// object, a stream whose blocks cannot be read, or one of fewer than
/// [`crate::reuse::LEND_MIN`] plain bytes. The same starts and
/// index as [`crate::reuse::gzip_block_starts`] and
/// [`crate::reuse::PlainIndex::of`] give of the object held.
pub fn expand_streamed_lending(
    file: &std::fs::File,
    len: u64,
    object: &mut impl Read,
    out: &mut impl Write,
) -> Result<Option<crate::reuse::Lendable>, StreamExpandError> {
    if !crate::containers::is_gzip(&head_of(file, len)?) {
        return expand_streamed(file, len, object, out).map(|()| None);
    }
    let opts = crate::Options::default();
    let mut indexer = crate::reuse::PlainIndexer::new();
    let (stream, starts) = std::thread::scope(|s| {
        let starts = std::thread::Builder::new()
            .name("ferry-base-blocks".into())
            .spawn_scoped(s, || gzip_block_starts_in(file, len));
        let stream = expand_member_indexed(object, len, out, &opts, Some(&mut indexer));
        let starts = match starts {
            Ok(t) => t.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
            Err(_) => None,
        };
        (stream, starts)
    });
    let stream = stream?;
    let index = indexer.finish();
    Ok(starts
        .filter(|(at, _, plain)| {
            *at == stream.compressed.0
                && *plain == (stream.plain.1 - stream.plain.0) as u64
                && *plain >= crate::reuse::LEND_MIN
        })
        .map(|(_, starts, _)| crate::reuse::Lendable {
            stream,
            starts,
            index,
        }))
}

/// Where the deflate stream of the gzip member in `file` (`len` bytes)
/// starts, its block starts and plain length, read from the file.
fn gzip_block_starts_in(
    file: &std::fs::File,
    len: u64,
) -> Option<(usize, Vec<crate::reuse::BlockStart>, u64)> {
    let mut head = vec![0u8; len.min(READ as u64) as usize];
    std::os::unix::fs::FileExt::read_exact_at(file, &mut head, 0).ok()?;
    let body = crate::containers::gzip_header_end(&head, 0, head.len())?;
    let stream = crate::reuse::FileStream {
        file,
        start: body as u64,
        len: len - body as u64,
    };
    let (starts, plain) = crate::reuse::block_starts_in(stream)?;
    Some((body, starts, plain))
}

/// [`crate::analyze`] (`check_streams` off) of the object read from
/// `object` (`len` bytes, the bytes of `file` from its start), its expanded
/// form written to `out` as it is read: a gzip member
/// ([`analyze_gzip_member`]), a zip ([`crate::stream_zip::analyze_zip`]) or
/// a deb or an RPM ([`crate::stream_pkg::analyze_package`]).
pub fn analyze_streamed(
    file: &std::fs::File,
    len: u64,
    object: &mut impl Read,
    out: &mut impl Write,
    opts: &crate::Options,
) -> Result<StreamedAnalysis, StreamExpandError> {
    match head_of(file, len)? {
        h if crate::containers::is_gzip(&h) => analyze_gzip_member(file, len, object, out, opts),
        h if h.starts_with(crate::containers::ZIP_LOCAL) => {
            crate::stream_zip::analyze_zip(file, len, object, out, opts)
        }
        h if is_package(&h) => crate::stream_pkg::analyze_package(object, len, out, opts),
        _ => Err(StreamExpandError::NotOneMember(
            "neither gzip, zip nor a package",
        )),
    }
}

/// The first bytes of `file` (up to 4).
fn head_of(file: &std::fs::File, len: u64) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut head = vec![0u8; len.min(4) as usize];
    file.read_exact_at(&mut head, 0)?;
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gzip(plain: &[u8], level: u32, name: Option<&str>) -> Vec<u8> {
        let mut b = flate2::GzBuilder::new();
        if let Some(n) = name {
            b = b.filename(n);
        }
        let mut e = b.write(Vec::new(), flate2::Compression::new(level));
        std::io::Write::write_all(&mut e, plain).unwrap();
        e.finish().unwrap()
    }

    /// A reader that gives at most `n` bytes a call.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(buf.len()).min(self.1);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    /// One gzip member (with and without a name in its header, read in
    /// pieces of any size) is laid out as `expand` lays it out, with its
    /// stream's place; anything else is refused, never a panic.
    #[test]
    fn one_gzip_member_is_laid_out_as_expand_does_and_others_are_refused() {
        let text = crate::zlib::sample();
        let plain: Vec<u8> = text.iter().copied().cycle().take(3 << 20).collect();
        let opts = crate::Options::default();
        for (gz, trickle) in [
            (gzip(&plain, 6, None), 1 << 20),
            (gzip(&plain, 1, Some("layer.tar")), 7777),
            (gzip(b"", 6, None), 3),
        ] {
            let (expanded, streams) = crate::expand_deflated(&gz, &opts).unwrap();
            let mut out = Vec::new();
            let place = expand_gzip_member(&mut Trickle(&gz, trickle), gz.len() as u64, &mut out)
                .expect("one member");
            assert!(out == expanded, "the form differs from expand's");
            assert_eq!(streams, vec![place]);
        }
        let gz = gzip(&plain, 6, None);
        let mut two = gz.clone();
        two.extend_from_slice(&gzip(b"second", 6, None));
        let mut trailing = gz.clone();
        trailing.push(0);
        let mut corrupt = gz.clone();
        corrupt[gz.len() / 2] ^= 0xff;
        let cases: [(&str, &[u8]); 5] = [
            ("two members", &two),
            ("a byte after the trailer", &trailing),
            ("truncated", &gz[..gz.len() - 20]),
            ("not gzip", &plain[..1000]),
            ("corrupt", &corrupt),
        ];
        for (what, bytes) in cases {
            let mut out = Vec::new();
            let r = expand_gzip_member(&mut &bytes[..], bytes.len() as u64, &mut out);
            // A corrupt stream may still decode (to other bytes): the
            // caller's check of the form finds it.
            if what == "corrupt" && r.is_ok() {
                assert!(out != crate::expand(&gz, &opts).unwrap());
                continue;
            }
            assert!(
                matches!(r, Err(StreamExpandError::NotOneMember(_))),
                "{what}: {r:?}"
            );
        }
    }

    use crate::cuts::tests::gnu_gzip;

    /// Runs [`analyze_gzip_member`] on `object` written to a file.
    fn streamed(
        object: &[u8],
        opts: &crate::Options,
    ) -> (Result<StreamedAnalysis, StreamExpandError>, Vec<u8>) {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(object).unwrap();
        let mut out = Vec::new();
        let len = object.len() as u64;
        let r = analyze_gzip_member(&file, len, &mut Trickle(object, 300_000), &mut out, opts);
        (r, out)
    }

    /// The streamed analysis of one gzip member gives `analyze`'s recipe,
    /// report and expanded form (check_streams off): GNU gzip at levels 6
    /// (cut) and 1, and zlib's gzip (flate2); the recipe rebuilds the
    /// object. What it does not reproduce without holding the stream is
    /// refused, never analysed otherwise.
    #[test]
    fn a_streamed_analysis_is_analyzes_or_none() {
        let dir = tempfile::tempdir().unwrap();
        let plain = crate::cuts::tests::corpus_tar(dir.path())
            .unwrap_or_else(|| crate::cuts::tests::text(10 << 20));
        let opts = crate::Options {
            check_streams: false,
            ..crate::Options::default()
        };
        let mut objects = vec![("zlib -6", gzip(&plain, 6, Some("layer.tar")))];
        for level in [6u8, 1] {
            match gnu_gzip(level, &plain) {
                Some(gz) => objects.push((if level == 6 { "gzip -6" } else { "gzip -1" }, gz)),
                None => eprintln!("skipped: no gzip to run"),
            }
        }
        for (what, object) in &objects {
            let whole = crate::analyze(object, &opts);
            let (r, out) = streamed(object, &opts);
            let r = r.unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(r.recipe, whole.recipe, "{what}");
            assert_eq!(r.report, whole.report, "{what}");
            assert_eq!(r.expanded_len, out.len() as u64, "{what}");
            assert!(out == whole.expanded, "{what}: the form differs");
            if *what == "gzip -6" {
                assert!(
                    matches!(r.recipe.segments[1], crate::Segment::ZlibCuts { .. }),
                    "{what}: not cut"
                );
            }
            let mut rebuilt = Vec::new();
            crate::rebuild(&r.recipe, &out, object.len() as u64, &mut rebuilt).unwrap();
            assert!(&rebuilt == object, "{what}: does not rebuild");
        }
        // Checking each stream needs the stream held.
        let (r, _) = streamed(&objects[0].1, &crate::Options::default());
        assert!(matches!(r, Err(StreamExpandError::NotReproduced(_))));
        // A stream no encoder of this build makes (zlib's, flushed in its
        // middle): `analyze` gives it to preflate-rs; refused here.
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        e.write_all(&plain[..1 << 20]).unwrap();
        e.flush().unwrap();
        e.write_all(&plain[1 << 20..3 << 20]).unwrap();
        let flushed = e.finish().unwrap();
        let (r, _) = streamed(&flushed, &opts);
        assert!(
            matches!(r, Err(StreamExpandError::NotReproduced(_))),
            "{r:?}"
        );
        // Two members are not one.
        let mut two = objects[0].1.clone();
        two.extend_from_slice(&gzip(b"second", 6, None));
        let (r, _) = streamed(&two, &opts);
        assert!(
            matches!(r, Err(StreamExpandError::NotOneMember(_))),
            "{r:?}"
        );
    }

    /// Where `expand` leaves a stream literal (its ratio past `max_ratio`),
    /// or might at one of its running checks, the streamed form is refused:
    /// it never differs from `expand`'s.
    #[test]
    fn near_the_ratio_bound_the_form_is_refused_not_made_otherwise() {
        let opts = crate::Options::default();
        // 8 MiB of zeros: about 1,030 to 1; `expand` leaves it literal.
        let zeros = gzip(&vec![0u8; 8 << 20], 9, None);
        assert!(crate::expand(&zeros, &opts).unwrap() == zeros);
        let r = expand_gzip_member(&mut &zeros[..], zeros.len() as u64, &mut Vec::new());
        assert!(
            matches!(r, Err(StreamExpandError::NotOneMember(_))),
            "{r:?}"
        );
        // 22 MiB of zeros (0.55 MiB past `consumed × max_ratio` at their
        // end), then random bytes: within every bound of `expand`, which
        // expands it, but within half a MiB of its running line here:
        // refused.
        let mut x = 7u64;
        let mut plain = vec![0u8; 22 << 20];
        plain.extend((0..(4 << 20)).map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            (x >> 56) as u8
        }));
        let gz = gzip(&plain, 9, None);
        let expanded = crate::expand(&gz, &opts).unwrap();
        assert_eq!(expanded.len(), 10 + plain.len() + 8);
        let r = expand_gzip_member(&mut &gz[..], gz.len() as u64, &mut Vec::new());
        assert!(
            matches!(r, Err(StreamExpandError::NotOneMember(_))),
            "{r:?}"
        );
        // `max_expanded` one byte short of the form (10 header bytes, 3 MiB,
        // 8 trailer bytes, and the object counted once): `expand` keeps the
        // object as it is, and the form is refused here; one byte more, and
        // both make the same form.
        let text: Vec<u8> = crate::zlib::sample()
            .iter()
            .copied()
            .cycle()
            .take(3 << 20)
            .collect();
        let gz = gzip(&text, 6, None);
        for extra in [9, 10] {
            let bound = crate::Options {
                max_expanded: (3 << 20) + extra,
                ..opts.clone()
            };
            let whole = crate::expand(&gz, &bound).unwrap();
            let mut out = Vec::new();
            let r = expand_member_with(&mut &gz[..], gz.len() as u64, &mut out, &bound);
            if extra == 9 {
                assert!(whole == gz);
                assert!(
                    matches!(r, Err(StreamExpandError::NotOneMember(_))),
                    "{r:?}"
                );
            } else {
                assert_eq!(whole.len(), text.len() + 18);
                assert!(r.is_ok() && out == whole);
            }
        }
    }
}
