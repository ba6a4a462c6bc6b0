//! GNU gzip's parse of a base stream reused where a new stream's plain bytes
//! equal the base's.
//!
//! GNU gzip's lazy matcher (levels 4 to 9) inserts every string into its hash
//! chains, and after it emits a match it has nothing pending: what it emits
//! next is a function of the 32 KiB before and the bytes ahead (a symbol's
//! choice reads at most `MAX_MATCH` bytes past the next string). So where a
//! new stream's plain bytes equal a stretch of its base's, from 32 KiB
//! before a point where both parses just emitted a match to a margin past
//! each symbol, the new parse is the base's: its symbols can be read off the
//! base's compressed stream (a Huffman decode, about ten times cheaper than
//! the match search) instead of searched for. Block ends are not copied:
//! the encoder tallies the copied symbols into its own blocks as its lazy
//! loop does, so its blocks, trees and bits are its own.
//!
//! Both sides find the stretches the same way from bytes both hold (the new
//! plain bytes and the base's): content-defined anchors (a gear hash's
//! rare values) of the base indexed by hash, looked up at the new bytes'
//! anchors, each hit extended both ways by comparing bytes ([`Base`],
//! [`Copier::new`]). The base's parse is then read from the nearest block
//! start before the stretch ([`crate::cuts::symbols`]), and copied from the first point
//! of the stretch, 32 KiB or more into it, where both parses are just after
//! a match ([`Copier::try_start`]); the strings older than 32 KiB before
//! where the copy ends are not inserted (no later search reaches them).
//!
//! This is not assumed to be right: gzip never matches the string at window
//! index 0, and its window slides at fixed offsets, which differ between the
//! two streams, so rarely the real parse differs from the copied one. The
//! output is checked (the caller's digest, each piece's bytes).

use std::borrow::Cow;
use std::collections::HashMap;

pub use crate::cuts::symbols::FileStream;
use crate::cuts::symbols::{Scan, Symbols};
use crate::cuts::{self, CutError};
use crate::deflate::{self, Flavour};
use crate::DeflateCut;

mod anchors;
use anchors::{anchors, index_anchors};
pub use anchors::{PlainIndex, PlainIndexer};

/// The window's reach: a copy starts this far or more into a stretch of
/// equal bytes.
const WSIZE: u64 = 32 << 10;
/// gzip's `MAX_DIST`: no match of gzip's is farther back.
const MAX_DIST: u16 = (32 << 10) - 262;
/// gzip's `TOO_FAR`: it emits no match of 3 bytes farther back.
const TOO_FAR: u16 = 4096;
/// Equal bytes past a symbol's start for its choice to be the base's: the
/// search at it and at the next string read `MAX_MATCH` bytes past them (and
/// an 8-byte word beyond), with room to spare.
const MARGIN: u64 = 1 + 258 + 8 + 32;
/// The fewest equal bytes a stretch is kept for: the window's reach and
/// 16 KiB to copy.
const MIN_STRETCH: u64 = WSIZE + (16 << 10);
/// Bytes compared finding a text's stretches, at most, per byte of it.
const COMPARE_BUDGET: usize = 4;
/// Plain bytes of the base's parse a copier reads to reach its copies'
/// starts, at most, per byte of its text (and 16 MiB): hostile block
/// starts (one at the stream's start) would have it read the base again
/// for each stretch.
const READ_BUDGET: u64 = 2;
/// Plain bytes of parse read ahead at once (its matches are held); a chunk
/// ends after a match, where the next one goes on.
const CHUNK: u64 = 1 << 20;
/// How many bytes `a` and `b` have in common from their starts.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut at = 0;
    while at + 64 <= n && a[at..at + 64] == b[at..at + 64] {
        at += 64;
    }
    at + a[at..]
        .iter()
        .zip(&b[at..])
        .take_while(|(x, y)| x == y)
        .count()
}

/// How many bytes `a` and `b` have in common at their ends.
fn common_suffix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let (a, b) = (&a[a.len() - n..], &b[b.len() - n..]);
    let mut at = n;
    while at >= 64 && a[at - 64..at] == b[at - 64..at] {
        at -= 64;
    }
    n - at
        + a[..at]
            .iter()
            .rev()
            .zip(b[..at].iter().rev())
            .take_while(|(x, y)| x == y)
            .count()
}

/// A block start of a base stream: its plain offset, its bit offset, and
/// whether the block before it ended on a match.
pub type BlockStart = (u64, u64, bool);

/// The block starts of the first gzip member of `object`: where its raw
/// deflate stream starts in `object`, every block's start, and its plain
/// length; `None` if `object` does not start with a gzip member whose
/// deflate stream decodes. One pass of a Huffman decoder, which can run
/// beside the inflate that expands the same object (for
/// [`Base::with_starts`], once the stream's place and plain bytes are
/// known).
pub fn gzip_block_starts(object: &[u8]) -> Option<(usize, Vec<BlockStart>, u64)> {
    let start = crate::containers::gzip_header_end(object, 0, object.len())?;
    let (starts, plain) = Symbols::index(object.get(start..)?)?;
    Some((start, starts, plain))
}

/// [`gzip_block_starts`]' starts and plain length of a raw deflate stream
/// read from a file a window at a time (a base kept on disk, not held);
/// `None` if it does not decode to its end.
pub fn block_starts_in(stream: FileStream<'_>) -> Option<(Vec<BlockStart>, u64)> {
    Symbols::index_in(stream)
}

/// One piece's rebuilt bytes and what was copied into them, or why not.
pub type PieceResult = Result<(Vec<u8>, CopyStats), CutError>;

/// Why a base cannot be reused.
#[derive(Debug, thiserror::Error)]
pub enum ReuseError {
    /// The base's compressed stream does not decode to its plain bytes'
    /// length (or is not one raw deflate stream).
    #[error("the base's deflate stream is malformed or does not decode to its {0} plain bytes")]
    BaseStream(u64),
}

/// A base stream whose parse may be reused: its raw deflate bytes, its
/// plain bytes, every block's start, and its plain bytes' anchors.
pub struct Base<'a> {
    compressed: Compressed<'a>,
    plain: PlainBytes<'a>,
    /// (plain offset, bit offset, whether the block before ended on a
    /// match) of every block start, in order.
    starts: Vec<BlockStart>,
    /// Anchor hash to the plain offset just past its first anchor.
    anchors: Cow<'a, HashMap<u64, u64>>,
}

/// The fewest plain bytes a base stream lends its parse with: a smaller
/// one is rebuilt in one piece, and its index and block starts are not
/// worth making.
pub const LEND_MIN: u64 = 1 << 20;

/// What a base that is one gzip member lends a rebuild besides its form
/// ([`crate::stream_expand::expand_streamed_lending`]): where its deflate
/// stream is in it and its plain bytes in its form, the stream's block
/// starts, and the index of its plain bytes.
#[derive(Debug)]
pub struct Lendable {
    /// The stream's bytes in the object, its plain bytes in the form.
    pub stream: crate::DeflatedStream,
    /// Its block starts.
    pub starts: Vec<BlockStart>,
    /// The index of its plain bytes.
    pub index: PlainIndex,
}

impl Lendable {
    /// The base to copy the parse of: its stream read from `object` (the
    /// base's copy), its plain bytes from `form` (its reference form, made
    /// with this), neither held.
    pub fn base<'a>(&'a self, object: &'a std::fs::File, form: &'a std::fs::File) -> Base<'a> {
        let s = &self.stream;
        let plain = FileStream {
            file: form,
            start: s.plain.0 as u64,
            len: (s.plain.1 - s.plain.0) as u64,
        };
        Base::in_files(
            self.compressed(object),
            plain,
            self.starts.clone(),
            &self.index,
        )
    }

    /// [`Lendable::base`] with the base's reference form held (`form`):
    /// the same copies.
    pub fn base_held<'a>(&'a self, object: &'a std::fs::File, form: &'a [u8]) -> Base<'a> {
        let plain = form
            .get(self.stream.plain.0..self.stream.plain.1)
            .unwrap_or_default();
        Base::with_index_in(
            self.compressed(object),
            plain,
            self.starts.clone(),
            &self.index,
        )
    }

    /// Its deflate stream in `object`, the base's copy.
    fn compressed<'a>(&self, object: &'a std::fs::File) -> FileStream<'a> {
        let s = &self.stream;
        FileStream {
            file: object,
            start: s.compressed.0 as u64,
            len: (s.compressed.1 - s.compressed.0) as u64,
        }
    }
}

/// Where a base's plain bytes are: held, or in a file (a base's reference
/// form spilled), read where a stretch is looked for.
#[derive(Clone, Copy, Debug)]
pub enum PlainBytes<'a> {
    /// In memory.
    Held(&'a [u8]),
    /// `len` bytes of `file` from `start`.
    File(FileStream<'a>),
}

impl PlainBytes<'_> {
    fn len(&self) -> usize {
        match self {
            PlainBytes::Held(b) => b.len(),
            PlainBytes::File(f) => usize::try_from(f.len).unwrap_or(usize::MAX),
        }
    }

    /// How many bytes `text` and the plain bytes from `at` on have in
    /// common from their starts (a file that cannot be read has none).
    fn common_prefix(&self, text: &[u8], at: usize, buf: &mut Vec<u8>) -> usize {
        let f = match self {
            PlainBytes::Held(b) => return common_prefix(text, &b[at..]),
            PlainBytes::File(f) => f,
        };
        let n = text.len().min(self.len() - at);
        let mut done = 0;
        let mut step = FIRST_READ;
        while done < n {
            let k = step.min(n - done);
            if !read_plain(f, at + done, k, buf) {
                return done;
            }
            let same = common_prefix(&text[done..done + k], buf);
            done += same;
            if same < k {
                break;
            }
            step = (step * 4).min(LAST_READ);
        }
        done
    }

    /// How many bytes `text` and the plain bytes before `end` have in
    /// common at their ends.
    fn common_suffix(&self, text: &[u8], end: usize, buf: &mut Vec<u8>) -> usize {
        let f = match self {
            PlainBytes::Held(b) => return common_suffix(text, &b[..end]),
            PlainBytes::File(f) => f,
        };
        let n = text.len().min(end);
        let mut done = 0;
        let mut step = FIRST_READ;
        while done < n {
            let k = step.min(n - done);
            if !read_plain(f, end - done - k, k, buf) {
                return done;
            }
            let t = text.len() - done;
            let same = common_suffix(&text[t - k..t], buf);
            done += same;
            if same < k {
                break;
            }
            step = (step * 4).min(LAST_READ);
        }
        done
    }
}

/// Plain bytes read from a file at once to extend a stretch: the first
/// read is short (most anchor hits extend little), the next ones longer.
const FIRST_READ: usize = 4 << 10;
const LAST_READ: usize = 256 << 10;

/// Reads `len` plain bytes from `at` of `f` into `buf`; false if it cannot.
fn read_plain(f: &FileStream<'_>, at: usize, len: usize, buf: &mut Vec<u8>) -> bool {
    buf.resize(len, 0);
    std::os::unix::fs::FileExt::read_exact_at(f.file, buf, f.start + at as u64).is_ok()
}

impl<'a> Base<'a> {
    /// Indexes a base: `compressed` is its raw deflate stream (no gzip
    /// header), `plain` what it decodes to. Reads the stream's blocks (one
    /// pass of a Huffman decoder) and hashes the plain bytes once.
    pub fn new(compressed: &'a [u8], plain: &'a [u8]) -> Result<Base<'a>, ReuseError> {
        let starts = match Symbols::index(compressed) {
            Some((starts, total)) if total == plain.len() as u64 => starts,
            _ => return Err(ReuseError::BaseStream(plain.len() as u64)),
        };
        Ok(Base {
            compressed: Compressed::Bytes(compressed),
            plain: PlainBytes::Held(plain),
            starts,
            anchors: Cow::Owned(index_anchors(plain)),
        })
    }

    /// A base whose block starts are given (`starts`: plain offset, bit
    /// offset, whether the block before ended on a match; e.g. those
    /// [`Base::seeds_for`] picked from a full index elsewhere), so that its
    /// stream is not read whole here; only its plain bytes are hashed. The
    /// starts are taken in plain order; a wrong one makes its reader read
    /// garbage (a malformed stream, or matches that are not the base's),
    /// which the caller's check of the output finds: never a panic.
    pub fn with_starts(compressed: &'a [u8], plain: &'a [u8], starts: Vec<BlockStart>) -> Base<'a> {
        Base::given(
            Compressed::Bytes(compressed),
            PlainBytes::Held(plain),
            starts,
            Cow::Owned(index_anchors(plain)),
        )
    }

    /// [`Base::with_starts`] of a base whose compressed stream is read from
    /// a file as its copiers need it (a window of a few hundred KiB each),
    /// not held.
    pub fn with_starts_in(
        compressed: FileStream<'a>,
        plain: &'a [u8],
        starts: Vec<BlockStart>,
    ) -> Base<'a> {
        Base::given(
            Compressed::File(compressed),
            PlainBytes::Held(plain),
            starts,
            Cow::Owned(index_anchors(plain)),
        )
    }

    /// [`Base::with_starts_in`] with the index of `plain` made already
    /// (`index`, of these plain bytes; an index of other bytes, by its
    /// length, is made again here).
    pub fn with_index_in(
        compressed: FileStream<'a>,
        plain: &'a [u8],
        starts: Vec<BlockStart>,
        index: &'a PlainIndex,
    ) -> Base<'a> {
        let anchors = if index.len == plain.len() {
            Cow::Borrowed(&index.anchors)
        } else {
            Cow::Owned(index_anchors(plain))
        };
        Base::given(
            Compressed::File(compressed),
            PlainBytes::Held(plain),
            starts,
            anchors,
        )
    }

    /// [`Base::with_index_in`] of a base whose plain bytes are read from a
    /// file too, where a stretch is looked for (a few KiB to a few hundred
    /// at a time), never held: `index` must be theirs (made as they were
    /// written, [`PlainIndexer`]); an index of another length gives a base
    /// with no anchors, which copies nothing.
    pub fn in_files(
        compressed: FileStream<'a>,
        plain: FileStream<'a>,
        starts: Vec<BlockStart>,
        index: &'a PlainIndex,
    ) -> Base<'a> {
        let anchors = if index.len as u64 == plain.len {
            Cow::Borrowed(&index.anchors)
        } else {
            Cow::Owned(HashMap::new())
        };
        Base::given(
            Compressed::File(compressed),
            PlainBytes::File(plain),
            starts,
            anchors,
        )
    }

    /// A base of these parts, its starts in order.
    fn given(
        compressed: Compressed<'a>,
        plain: PlainBytes<'a>,
        mut starts: Vec<BlockStart>,
        anchors: Cow<'a, HashMap<u64, u64>>,
    ) -> Base<'a> {
        starts.sort_unstable();
        starts.dedup();
        Base {
            compressed,
            plain,
            starts,
            anchors,
        }
    }

    /// The block starts a copier of `text` (from `text_at`) seeks to: the
    /// last start at or before each stretch's first possible copy. With
    /// these alone ([`Base::with_starts`]) a copier copies what it copies
    /// with the full index (it reads on from them as it would have).
    pub fn seeds_for(&self, text: &[u8], text_at: u64) -> Vec<BlockStart> {
        let mut seeds: Vec<_> = self
            .stretches(text, text_at)
            .iter()
            .filter_map(|s| {
                let q = s.to_base(s.start + WSIZE);
                let i = self.starts.partition_point(|&(p, _, _)| p <= q);
                i.checked_sub(1).and_then(|i| self.starts.get(i)).copied()
            })
            .collect();
        seeds.dedup();
        seeds
    }

    /// The stretches of `text` (plain bytes of the new stream from offset
    /// `text_at`) equal to some of the base's, each at least
    /// [`MIN_STRETCH`] long, in order and apart.
    fn stretches(&self, text: &[u8], text_at: u64) -> Vec<Stretch> {
        let mut out = Vec::new();
        let mut covered = 0usize;
        // Bytes compared at most: hostile bytes could make every anchor
        // a hit that extends almost to a stretch and fails.
        let mut budget = COMPARE_BUDGET * text.len() + (1 << 20);
        let mut buf = Vec::new();
        anchors(text, 0, |x, h| {
            let &y = self.anchors.get(&h)?;
            let y = (y as usize).min(self.plain.len());
            let back = self.plain.common_suffix(&text[covered..x], y, &mut buf);
            let fwd = self.plain.common_prefix(&text[x..], y, &mut buf);
            budget = budget.saturating_sub(back + fwd + 64);
            if budget == 0 {
                return Some(text.len());
            }
            if ((back + fwd) as u64) < MIN_STRETCH {
                return None;
            }
            let (start, end) = (x - back, x + fwd);
            out.push(Stretch {
                start: text_at + start as u64,
                end: text_at + end as u64,
                base: (y - back) as u64,
            });
            covered = end;
            Some(end)
        });
        out
    }
}

/// Where a base's compressed stream is read from.
#[derive(Clone, Copy)]
enum Compressed<'a> {
    /// Held.
    Bytes(&'a [u8]),
    /// Read as needed.
    File(FileStream<'a>),
}

/// New plain bytes `start..end` equal the base's from `base` on.
#[derive(Clone, Copy, Debug)]
struct Stretch {
    start: u64,
    end: u64,
    base: u64,
}

impl Stretch {
    /// The base's plain offset of new offset `p`.
    fn to_base(self, p: u64) -> u64 {
        p - self.start + self.base
    }
    fn to_new(self, q: u64) -> u64 {
        q - self.base + self.start
    }
}

/// Plain bytes whose symbols pieces of cut streams rebuilt in this process
/// copied from a base's parse (and kept: a piece that came out wrong and
/// was deflated again does not count), for reports and tests.
pub fn copied_bytes() -> u64 {
    COPIED.load(std::sync::atomic::Ordering::Relaxed)
}

static COPIED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub(crate) fn count_copied(n: u64) {
    COPIED.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
}

/// What the copying did (for measurements).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CopyStats {
    /// Stretches of equal bytes found.
    pub stretches: u64,
    /// Their bytes.
    pub stretch_bytes: u64,
    /// Plain bytes whose symbols were copied.
    pub copied: u64,
    /// Copies started (a chunk read ahead counts once).
    pub copies: u64,
}

/// The base's parse, read ahead for one stream (or piece) as its encoder
/// goes: the encoder asks at each point where it has nothing pending
/// ([`Copier::try_start`]) and then takes the queued matches
/// ([`Copier::take_at`]) until `until`.
pub(crate) struct Copier<'a> {
    base: &'a Base<'a>,
    stretches: Vec<Stretch>,
    /// The stretch tried now.
    current: usize,
    reader: Option<Symbols<'a>>,
    /// The stretch the reader was placed for.
    reader_for: usize,
    /// Matches to copy: (new plain offset, length, distance), in order.
    queue: Vec<(u64, u16, u16)>,
    head: usize,
    /// The end of the last queued match (new plain offset).
    pub(crate) until: u64,
    /// The encoder need not ask before this new plain offset.
    pub(crate) next_try: u64,
    /// Plain bytes of the base's parse it may still read to reach a copy.
    read_left: u64,
    pub(crate) stats: CopyStats,
}

impl<'a> Copier<'a> {
    /// A copier for the new stream's plain bytes `text` from offset
    /// `text_at` (a piece's, with its 32 KiB before: the stretches found in
    /// it are the same wherever it is rebuilt).
    pub(crate) fn new(base: &'a Base<'a>, text: &[u8], text_at: u64) -> Copier<'a> {
        let stretches = base.stretches(text, text_at);
        let stats = CopyStats {
            stretches: stretches.len() as u64,
            stretch_bytes: stretches.iter().map(|s| s.end - s.start).sum(),
            ..CopyStats::default()
        };
        let next_try = stretches.first().map_or(u64::MAX, |s| s.start + WSIZE);
        Copier {
            base,
            stretches,
            current: 0,
            reader: None,
            reader_for: usize::MAX,
            queue: Vec::new(),
            head: 0,
            until: 0,
            next_try,
            read_left: READ_BUDGET * text.len() as u64 + (16 << 20),
            stats,
        }
    }

    /// The encoder is at new plain offset `pos` with nothing pending (it
    /// just emitted a match, or starts): true when the base's parse is just
    /// after a match at the same point of a stretch of equal bytes, 32 KiB
    /// or more into it, and matches were queued to copy from `pos` on (to
    /// `until`). Otherwise sets `next_try` to the next offset worth asking.
    pub(crate) fn try_start(&mut self, pos: u64) -> bool {
        let s = loop {
            let Some(s) = self.stretches.get(self.current).copied() else {
                self.next_try = u64::MAX;
                return false;
            };
            if pos + MARGIN + 258 >= s.end {
                self.current += 1;
                continue;
            }
            if pos < s.start + WSIZE {
                self.next_try = s.start + WSIZE;
                return false;
            }
            break s;
        };
        let q = s.to_base(pos);
        // Place the reader at or before `q`.
        // The nearest known block start at or before `q`: the reader goes
        // there unless it is between that start and `q` already (or past
        // `q` in this stretch: then the encoder catches up).
        let i = self.base.starts.partition_point(|&(p, _, _)| p <= q);
        let seed = i
            .checked_sub(1)
            .and_then(|i| self.base.starts.get(i))
            .copied();
        let placed = self.reader.as_ref().map(|r| r.plain);
        let jump = match (placed, seed) {
            (Some(at), _) if at > q => self.reader_for != self.current,
            (Some(at), Some((p, _, _))) => p > at,
            (Some(_), None) => false,
            (None, _) => true,
        };
        if jump {
            let Some((plain, bit, after)) = seed else {
                self.next_try = u64::MAX;
                return false;
            };
            self.reader = match self.base.compressed {
                Compressed::Bytes(bytes) => Symbols::at(bytes, bit, plain),
                Compressed::File(stream) => Symbols::at_in(stream, bit, plain, None),
            };
            if let Some(r) = &mut self.reader {
                r.after_match = after;
            }
        }
        self.reader_for = self.current;
        let Some(reader) = &mut self.reader else {
            self.give_up();
            return false;
        };
        // On to the first point at or after `q` just after a match.
        let from = reader.plain;
        while reader.plain < q || !reader.after_match {
            if reader.scan(u64::MAX) == Scan::End || reader.plain - from > self.read_left {
                self.reader = None;
                self.give_up();
                return false;
            }
        }
        self.read_left -= reader.plain - from;
        if reader.plain != q {
            self.next_try = s.to_new(reader.plain);
            return false;
        }
        self.fill(s, pos);
        if self.head == self.queue.len() {
            self.next_try = pos + 1;
            return false;
        }
        self.stats.copies += 1;
        true
    }

    /// No more copying in this stream (its base's parse is unreadable).
    fn give_up(&mut self) {
        self.current = self.stretches.len();
        self.next_try = u64::MAX;
    }

    /// Queues the base's matches from new offset `pos` (where the reader is,
    /// just after a match) while each symbol has `MARGIN` equal bytes past
    /// its start in the stretch, up to about [`CHUNK`] bytes, ending after a
    /// match: literals between them are implied.
    fn fill(&mut self, s: Stretch, pos: u64) {
        self.queue.clear();
        self.head = 0;
        self.until = pos;
        let Some(reader) = &mut self.reader else {
            return;
        };
        // The last base offset a symbol may start at.
        let Some(limit) = s.end.checked_sub(MARGIN).map(|e| s.to_base(e.max(s.start))) else {
            return;
        };
        loop {
            match reader.scan(limit) {
                Scan::Match { len, dist } => {
                    let at = s.to_new(reader.plain) - u64::from(len);
                    if dist > MAX_DIST
                        || (len == 3 && dist > TOO_FAR)
                        || at < s.start + u64::from(dist)
                    {
                        // Not gzip's, or from before the stretch: copying
                        // stops before it.
                        return;
                    }
                    self.queue.push((at, len, dist));
                    self.until = at + u64::from(len);
                    if self.until >= pos + CHUNK {
                        return;
                    }
                }
                Scan::Limit | Scan::Stored(_) => return,
                Scan::End => {
                    self.reader = None;
                    return;
                }
            }
        }
    }

    /// The queued match at new offset `pos`, if it starts there (length,
    /// distance); a queue the encoder passed without taking its match (not
    /// the base's parse after all) is dropped.
    #[inline]
    pub(crate) fn take_at(&mut self, pos: u64) -> Option<(usize, usize)> {
        let &(at, len, dist) = self.queue.get(self.head)?;
        if at == pos {
            self.head += 1;
            return Some((usize::from(len), usize::from(dist)));
        }
        if at < pos {
            self.queue.clear();
            self.head = 0;
            self.until = pos;
        }
        None
    }

    /// Whether matches remain queued.
    #[inline]
    pub(crate) fn queued(&self) -> bool {
        self.head < self.queue.len()
    }
}

/// Deflates `plain` as `gzip -level` does (encoder 2, levels 4 to 9 copy;
/// other levels deflate as usual), copying `base`'s parse where it is this
/// stream's; the raw deflate stream and what was copied.
pub fn deflate_gnu(level: u8, plain: &[u8], base: Option<&Base<'_>>) -> (Vec<u8>, CopyStats) {
    let mut out = Vec::new();
    let copier = base.map(|b| Copier::new(b, plain, 0));
    let stats = deflate::piece_copying(Flavour::Gnu, level, plain, 0, None, None, &mut out, copier)
        .unwrap_or_default();
    (out, stats)
}

/// Rebuilds a GNU gzip stream cut as a [`Segment::ZlibCuts`] records
/// (`cuts`, `compressed_len`) from its whole `plain` bytes, the pieces on up
/// to `workers` threads, each copying `base`'s parse where it is the
/// stream's (each piece's stretches found in its own plain bytes, as a
/// rebuild that reads them piece by piece finds them). Each piece must reach
/// its end cut as recorded and be as long as the cuts say; the caller checks
/// the bytes.
///
/// [`Segment::ZlibCuts`]: crate::Segment::ZlibCuts
pub fn deflate_gnu_pieces(
    level: u8,
    plain: &[u8],
    cuts: &[DeflateCut],
    compressed_len: u64,
    base: Option<&Base<'_>>,
    workers: usize,
) -> Result<(Vec<u8>, CopyStats), CutError> {
    let mut out = Vec::new();
    let mut total = CopyStats::default();
    for r in deflate_gnu_each_piece(level, plain, cuts, compressed_len, base, workers) {
        let (bytes, st) = r?;
        out.extend_from_slice(&bytes);
        total.stretches += st.stretches;
        total.stretch_bytes += st.stretch_bytes;
        total.copied += st.copied;
        total.copies += st.copies;
    }
    Ok((out, total))
}

/// [`deflate_gnu_pieces`], each piece's output or error apart, in order.
pub fn deflate_gnu_each_piece(
    level: u8,
    plain: &[u8],
    cuts: &[DeflateCut],
    compressed_len: u64,
    base: Option<&Base<'_>>,
    workers: usize,
) -> Vec<PieceResult> {
    let all = vec![true; cuts.len() + 1];
    deflate_gnu_each_piece_where(level, plain, cuts, compressed_len, base, &all, workers)
}

/// [`deflate_gnu_each_piece`], copying `base`'s parse only into the pieces
/// whose `copy` flag is true (a missing flag is false).
pub fn deflate_gnu_each_piece_where(
    level: u8,
    plain: &[u8],
    cuts: &[DeflateCut],
    compressed_len: u64,
    base: Option<&Base<'_>>,
    copy: &[bool],
    workers: usize,
) -> Vec<PieceResult> {
    let pieces = cuts.len() + 1;
    let plain_len = plain.len() as u64;
    let next = std::sync::atomic::AtomicUsize::new(0);
    let one = |i: usize| -> PieceResult {
        let (s, e) = cuts::text_range(cuts, i, plain_len);
        let text = plain
            .get(s as usize..e as usize)
            .ok_or(CutError::Malformed {
                cut: i.saturating_sub(1),
                why: "outside the plain bytes",
            })?;
        let from = i.checked_sub(1).map(|j| cuts::boundary(&cuts[j]));
        let to = cuts.get(i).map(cuts::boundary);
        let copier = base
            .filter(|_| copy.get(i).copied().unwrap_or(false))
            .map(|b| Copier::new(b, text, s));
        let mut out = Vec::new();
        let stats = deflate::piece_copying(
            Flavour::Gnu,
            level,
            text,
            s,
            from.as_ref(),
            to.as_ref(),
            &mut out,
            copier,
        )
        .map_err(|source| CutError::Piece { piece: i, source })?;
        let (os, oe) = cuts::out_range(cuts, i, compressed_len);
        if out.len() as u64 != oe - os {
            return Err(CutError::PieceLen {
                piece: i,
                declared: oe - os,
                produced: out.len() as u64,
            });
        }
        Ok((out, stats))
    };
    let made: Vec<Vec<(usize, PieceResult)>> = std::thread::scope(|sc| {
        let running: Vec<_> = (0..workers.clamp(1, pieces))
            .map(|_| {
                sc.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= pieces {
                            return mine;
                        }
                        mine.push((i, one(i)));
                    }
                })
            })
            .collect();
        running
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut all: Vec<_> = made.into_iter().flatten().collect();
    all.sort_by_key(|(i, _)| *i);
    (0..pieces)
        .map(|i| match all.get_mut(i) {
            Some((j, r)) if *j == i => std::mem::replace(
                r,
                Err(CutError::Piece {
                    piece: i,
                    source: crate::PieceError::Lost,
                }),
            ),
            _ => Err(CutError::Piece {
                piece: i,
                source: crate::PieceError::Lost,
            }),
        })
        .collect()
}

/// The check an outside runs before it records reuse for a cut stream:
/// which pieces of `compressed` (the stream `plain` deflates to, cut at
/// `cuts`) come out byte for byte with `base`'s parse copied. A piece whose
/// copy differs (the base's parse is not this stream's there, or the base is
/// not what it claims) is rebuilt without it: pieces are independent, so the
/// flags need no second round.
pub fn pieces_that_copy(
    level: u8,
    plain: &[u8],
    compressed: &[u8],
    cuts: &[DeflateCut],
    base: &Base<'_>,
    workers: usize,
) -> Vec<bool> {
    deflate_gnu_each_piece(
        level,
        plain,
        cuts,
        compressed.len() as u64,
        Some(base),
        workers,
    )
    .into_iter()
    .enumerate()
    .map(|(i, piece)| {
        let (os, oe) = cuts::out_range(cuts, i, compressed.len() as u64);
        piece.is_ok_and(|(bytes, _)| compressed.get(os as usize..oe as usize) == Some(&bytes[..]))
    })
    .collect()
}

#[cfg(test)]
mod tests;
