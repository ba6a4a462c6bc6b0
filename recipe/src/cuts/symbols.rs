//! The LZ77 symbols of a raw deflate stream, read from any block start
//! (the base's parse that `crate::reuse` copies; the block starts and ends
//! the cut finder reads, `super::blocks`):
//! literals and length/distance pairs with the plain offset each ends at,
//! nothing written out. Two-level Huffman tables (10 bits first, an
//! 8 KiB table that stays in the L1 cache, then a sub-table per long code's
//! prefix) and a 64-bit bit buffer: this decoder reads the whole base once
//! to index its blocks and again where its parse is copied, so it must be
//! several times faster than the match search it saves. Every read is
//! bounded; a malformed stream ends the reader (`None`), never a panic.

const LEN_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LEN_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const DIST_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DIST_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];
/// The order of the code length code's lengths in a dynamic block header.
const CLEN_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

/// Where [`Symbols::scan`] stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scan {
    /// A match of `len` (3 to 258) bytes `dist` (1 to 32 768) back.
    Match { len: u16, dist: u16 },
    /// Before a symbol past the limit.
    Limit,
    /// A stored block of this many bytes: its parse is not in the stream.
    Stored(u32),
    /// The stream's end, or where it is malformed.
    End,
}

/// Where [`Symbols::in_block`] stopped.
enum InBlock {
    End,
    /// The window must be read on before the next symbol.
    More,
    Limit,
    Match(u16, u16),
    Bad,
}

/// Bits of the first-level table.
const FIRST: u32 = 10;
/// An entry that points to a sub-table.
const SUB: u32 = 0x80;

/// A canonical Huffman code: entries `symbol << 8 | length` (length 0: no
/// code there), or for a prefix of longer codes `offset << 8 | SUB | bits`,
/// its sub-table at `offset`, indexed by the next `bits` bits.
struct Code {
    first: Box<[u32; 1 << FIRST]>,
    sub: Vec<u32>,
}

impl Code {
    /// The code with these lengths (0: unused), or `None` when they
    /// over-subscribe the code space (an incomplete code is taken, its
    /// unused entries invalid).
    fn new(lengths: &[u8]) -> Option<Code> {
        let max = u32::from(lengths.iter().copied().max().unwrap_or(0));
        let mut count = [0u32; 16];
        for &l in lengths {
            *count.get_mut(usize::from(l))? += 1;
        }
        count[0] = 0;
        let mut next = [0u32; 16];
        let mut code = 0u32;
        for len in 1..16 {
            code = (code + count[len - 1]) << 1;
            next[len] = code;
            if code + count[len] > 1 << len {
                return None;
            }
        }
        let mut first = Box::new([0u32; 1 << FIRST]);
        let mut sub = Vec::new();
        let sub_bits = max.saturating_sub(FIRST);
        for (sym, &l) in lengths.iter().enumerate() {
            if l == 0 {
                continue;
            }
            let l = u32::from(l);
            let c = next[l as usize];
            next[l as usize] += 1;
            let rev = c.reverse_bits() >> (32 - l);
            let entry = (sym as u32) << 8 | l;
            if l <= FIRST {
                let mut at = rev as usize;
                while at < 1 << FIRST {
                    first[at] = entry;
                    at += 1 << l;
                }
            } else {
                let prefix = (rev & ((1 << FIRST) - 1)) as usize;
                if first[prefix] & SUB == 0 {
                    let offset = sub.len() as u32;
                    sub.resize(sub.len() + (1 << sub_bits), 0);
                    first[prefix] = offset << 8 | SUB | sub_bits;
                }
                let offset = (first[prefix] >> 8) as usize;
                let mut at = (rev >> FIRST) as usize;
                while at < 1 << sub_bits {
                    sub[offset + at] = entry;
                    at += 1 << (l - FIRST);
                }
            }
        }
        Some(Code { first, sub })
    }

    /// The next symbol's entry (`symbol << 8 | length`, length 0 when no
    /// code matches) from the low bits of `bits`.
    #[inline]
    fn lookup(&self, bits: u64) -> u32 {
        let e = self.first[(bits & ((1 << FIRST) - 1)) as usize];
        if e & SUB == 0 {
            return e;
        }
        let at = (bits >> FIRST) as usize & ((1 << (e & 15)) - 1);
        self.sub.get((e >> 8) as usize + at).copied().unwrap_or(0)
    }
}

/// The fixed codes (block type 1).
fn fixed() -> Option<(Code, Code)> {
    let mut lit = [0u8; 288];
    lit[..144].fill(8);
    lit[144..256].fill(9);
    lit[256..280].fill(7);
    lit[280..].fill(8);
    Some((Code::new(&lit)?, Code::new(&[5u8; 30])?))
}

/// The stream's bits, least significant first, from `data` (a slice, or a
/// window of a stream read from a file).
struct BitIn<D> {
    data: D,
    /// The next byte to load into `buf`.
    at: usize,
    buf: u64,
    /// Valid bits in `buf`.
    held: u32,
}

/// A raw deflate stream read by positioned reads of a file (`len` bytes
/// from `start`), a window at a time, so that a reader of a large base
/// holds a few hundred KiB of it, not the whole stream.
#[derive(Clone, Copy, Debug)]
pub struct FileStream<'a> {
    /// The file.
    pub file: &'a std::fs::File,
    /// Where the stream starts in it.
    pub start: u64,
    /// The stream's length.
    pub len: u64,
}

/// The bytes a reader reads at once from a [`FileStream`].
const WINDOW: usize = 256 << 10;
/// Bytes a window holds past the reader before a symbol (the longest is
/// 48 bits) or a block header (a dynamic header is under 300 bytes) is
/// read; a window this short is read on.
const SYMBOL_AHEAD: usize = 16;
const HEADER_AHEAD: usize = 1 << 10;

/// Where a reader's bytes come from beyond its window.
struct Windowed<'a> {
    stream: FileStream<'a>,
    /// The stream offset of the window's first byte.
    origin: u64,
    /// The bytes read at once.
    window: usize,
}

/// A reader of a stream's symbols from one of its block starts.
pub(crate) struct Symbols<'a> {
    bits: BitIn<std::borrow::Cow<'a, [u8]>>,
    /// The file the window is read from; `None`: `bits.data` is the whole
    /// stream.
    windowed: Option<Windowed<'a>>,
    /// The current block's codes; `None` between blocks.
    codes: Option<(Code, Code)>,
    /// Whether the current (or, between blocks, the previous) block is the
    /// stream's last.
    last: bool,
    /// The stream ended, or turned out malformed.
    done: bool,
    /// Whether it ended after its last block's end code.
    pub(crate) finished: bool,
    /// Plain offset after the last symbol read.
    pub(crate) plain: u64,
    /// Whether the last symbol read was a match.
    pub(crate) after_match: bool,
    /// When recording: every block start passed (plain offset, bit offset,
    /// whether the block before ended on a match).
    pub(crate) starts: Option<Vec<crate::reuse::BlockStart>>,
    /// Whether [`Symbols::scan`] stops at each match (a copier reads them);
    /// a pass that only records block starts ([`Symbols::record_to_end`]) reads
    /// through them.
    stops: bool,
}

impl<'a> Symbols<'a> {
    /// A reader of `compressed` (one raw deflate stream) at the block that
    /// starts at bit `bit`, plain offset `plain`; `None` if that bit is not
    /// in the stream.
    pub(crate) fn at(compressed: &'a [u8], bit: u64, plain: u64) -> Option<Symbols<'a>> {
        let byte = usize::try_from(bit / 8).ok()?;
        if byte >= compressed.len() {
            return None;
        }
        let data = std::borrow::Cow::Borrowed(compressed);
        let mut s = Symbols::new(data, byte, None, plain);
        s.bits.take((bit % 8) as u32)?;
        Some(s)
    }

    /// [`Symbols::at`] of a stream read from a file, `window` bytes at a
    /// time (at least 4 KiB; [`WINDOW`] unless a test asks for less).
    pub(crate) fn at_in(
        stream: FileStream<'a>,
        bit: u64,
        plain: u64,
        window: Option<usize>,
    ) -> Option<Symbols<'a>> {
        let byte = bit / 8;
        if byte >= stream.len {
            return None;
        }
        let windowed = Windowed {
            stream,
            origin: byte,
            window: window.unwrap_or(WINDOW).max(4 << 10),
        };
        let mut s = Symbols::new(
            std::borrow::Cow::Owned(Vec::new()),
            0,
            Some(windowed),
            plain,
        );
        s.slide()?;
        s.bits.take((bit % 8) as u32)?;
        Some(s)
    }

    /// A reader at byte `at` of `data` (its window's first, when windowed),
    /// before any block's header.
    fn new(
        data: std::borrow::Cow<'a, [u8]>,
        at: usize,
        windowed: Option<Windowed<'a>>,
        plain: u64,
    ) -> Symbols<'a> {
        Symbols {
            bits: BitIn {
                data,
                at,
                buf: 0,
                held: 0,
            },
            windowed,
            codes: None,
            last: false,
            done: false,
            finished: false,
            plain,
            after_match: false,
            starts: None,
            stops: true,
        }
    }

    /// The stream offset, in bits, of the next bit to be read.
    pub(crate) fn bit_offset(&self) -> u64 {
        let origin = self.windowed.as_ref().map_or(0, |w| w.origin);
        (origin + self.bits.at as u64) * 8 - u64::from(self.bits.held)
    }

    /// Whether the window must be read on before `ahead` more bytes are
    /// read from it.
    #[inline]
    fn short(&self, ahead: usize) -> bool {
        self.window_ends_early() && self.bits.at + ahead > self.bits.data.len()
    }

    /// Whether the stream goes on past the window.
    #[inline]
    fn window_ends_early(&self) -> bool {
        self.windowed
            .as_ref()
            .is_some_and(|w| w.origin + (self.bits.data.len() as u64) < w.stream.len)
    }

    /// Reads the window on from the next byte not yet in the bit buffer
    /// (which may be past the window, after a stored block); `None` past
    /// the stream's end or if the file cannot be read.
    #[cold]
    fn slide(&mut self) -> Option<()> {
        let w = self.windowed.as_mut()?;
        let from = w.origin + self.bits.at as u64;
        if from > w.stream.len {
            return None;
        }
        let n = (w.stream.len - from).min(w.window as u64) as usize;
        let mut data = match std::mem::take(&mut self.bits.data) {
            std::borrow::Cow::Owned(v) => v,
            std::borrow::Cow::Borrowed(_) => Vec::new(),
        };
        data.resize(n, 0);
        std::os::unix::fs::FileExt::read_exact_at(w.stream.file, &mut data, w.stream.start + from)
            .ok()?;
        w.origin = from;
        self.bits.data = std::borrow::Cow::Owned(data);
        self.bits.at = 0;
        Some(())
    }
}

impl<D: AsRef<[u8]>> BitIn<D> {
    #[inline]
    fn refill(&mut self) {
        let data = self.data.as_ref();
        if let Some(eight) = data.get(self.at..self.at + 8) {
            let v = u64::from_le_bytes(eight.try_into().unwrap_or([0; 8]));
            self.buf |= v << self.held;
            let n = (63 - self.held) / 8;
            self.at += n as usize;
            self.held += n * 8;
            return;
        }
        while self.held <= 56 {
            let Some(&b) = data.get(self.at) else {
                return;
            };
            self.buf |= u64::from(b) << self.held;
            self.at += 1;
            self.held += 8;
        }
    }

    /// Drops `n` bits (at most the 56 a refill holds); `None` past the end.
    #[inline]
    fn drop_bits(&mut self, n: u32) -> Option<()> {
        if n > self.held {
            return None;
        }
        self.buf = self.buf.checked_shr(n).unwrap_or(0);
        self.held -= n;
        Some(())
    }

    /// The next `n` bits (at most 32) of those held, without a refill.
    #[inline]
    fn held_bits(&mut self, n: u32) -> Option<u32> {
        if n > self.held {
            return None;
        }
        let v = (self.buf & ((1u64 << n) - 1)) as u32;
        self.buf >>= n;
        self.held -= n;
        Some(v)
    }

    /// The next `n` bits (at most 32).
    #[inline]
    fn take(&mut self, n: u32) -> Option<u32> {
        if self.held < n {
            self.refill();
        }
        let v = (self.buf & ((1u64 << n) - 1)) as u32;
        self.drop_bits(n)?;
        Some(v)
    }
}

impl<'a> Symbols<'a> {
    /// A dynamic block's codes.
    fn dynamic(&mut self) -> Option<(Code, Code)> {
        let nlit = self.bits.take(5)? as usize + 257;
        let ndist = self.bits.take(5)? as usize + 1;
        let nclen = self.bits.take(4)? as usize + 4;
        if nlit > 286 || ndist > 30 {
            return None;
        }
        let mut clen = [0u8; 19];
        for &i in &CLEN_ORDER[..nclen] {
            clen[i] = self.bits.take(3)? as u8;
        }
        let clen = Code::new(&clen)?;
        let mut lens = [0u8; 286 + 30];
        let mut n = 0;
        while n < nlit + ndist {
            if self.bits.held < 16 {
                self.bits.refill();
            }
            let e = clen.lookup(self.bits.buf);
            self.bits.drop_bits(match e & 15 {
                0 => return None,
                l => l,
            })?;
            let (value, repeat) = match e >> 8 {
                len @ 0..=15 => (len as u8, 1),
                16 => (
                    *lens.get(n.checked_sub(1)?)?,
                    3 + self.bits.take(2)? as usize,
                ),
                17 => (0, 3 + self.bits.take(3)? as usize),
                18 => (0, 11 + self.bits.take(7)? as usize),
                _ => return None,
            };
            lens.get_mut(n..n + repeat)?.fill(value);
            n += repeat;
        }
        if n != nlit + ndist || lens[256] == 0 {
            return None;
        }
        Some((Code::new(&lens[..nlit])?, Code::new(&lens[nlit..n])?))
    }

    /// Reads on to the next match, passing literals (and block headers)
    /// quickly: the match (its end is `plain` now, `after_match` true); or
    /// [`Scan::Limit`] before a symbol that starts past `limit` (nothing of
    /// it read); or a stored block (passed whole: its parse is not in the
    /// stream); or the stream's end ([`Scan::End`]: `finished` says whether
    /// it ended well; the reader reads nothing more).
    pub(crate) fn scan(&mut self, limit: u64) -> Scan {
        match self.scan_inner(limit) {
            Some(s) => s,
            None => {
                self.done = true;
                self.codes = None;
                Scan::End
            }
        }
    }

    #[inline]
    fn scan_inner(&mut self, limit: u64) -> Option<Scan> {
        loop {
            if self.plain > limit {
                return Some(Scan::Limit);
            }
            let Some(codes) = self.codes.take() else {
                if let Some(stored) = self.header()? {
                    self.after_match = false;
                    return Some(Scan::Stored(stored));
                }
                continue;
            };
            match self.in_block(&codes, limit) {
                InBlock::End => continue,
                InBlock::More => {
                    self.codes = Some(codes);
                    self.slide()?;
                }
                InBlock::Limit => {
                    self.codes = Some(codes);
                    return Some(Scan::Limit);
                }
                InBlock::Match(len, dist) => {
                    self.codes = Some(codes);
                    return Some(Scan::Match { len, dist });
                }
                InBlock::Bad => return None,
            }
        }
    }

    /// [`Symbols::scan`] inside a block, its state in locals (registers)
    /// while literals pass.
    #[inline]
    fn in_block(&mut self, (lit, dist): &(Code, Code), limit: u64) -> InBlock {
        // A window is read on before a symbol that might need bytes past it.
        let more = self.window_ends_early();
        let mut bits = BitIn {
            data: &self.bits.data[..],
            at: self.bits.at,
            buf: self.bits.buf,
            held: self.bits.held,
        };
        let mut plain = self.plain;
        let mut after = self.after_match;
        let stops = self.stops;
        let found = loop {
            if plain > limit {
                break InBlock::Limit;
            }
            if bits.held < 48 {
                if more && bits.at + SYMBOL_AHEAD > bits.data.len() {
                    break InBlock::More;
                }
                bits.refill();
            }
            let e = lit.lookup(bits.buf);
            let l = e & 15;
            if l == 0 || l > bits.held {
                break InBlock::Bad;
            }
            bits.buf >>= l;
            bits.held -= l;
            let sym = e >> 8;
            if sym < 256 {
                plain += 1;
                after = false;
                continue;
            }
            if sym == 256 {
                break InBlock::End;
            }
            let i = (sym - 257) as usize;
            let (Some(&base), Some(&extra)) = (LEN_BASE.get(i), LEN_EXTRA.get(i)) else {
                break InBlock::Bad;
            };
            // A refill holds 48 bits or more (but at the stream's end):
            // enough for a length code and its extra bits.
            let Some(x) = bits.held_bits(u32::from(extra)) else {
                break InBlock::Bad;
            };
            let len = base + x as u16;
            if bits.held < 28 {
                bits.refill();
            }
            let e = dist.lookup(bits.buf);
            let l = e & 15;
            if l == 0 || l > bits.held {
                break InBlock::Bad;
            }
            bits.buf >>= l;
            bits.held -= l;
            let d = (e >> 8) as usize;
            let (Some(&base), Some(&extra)) = (DIST_BASE.get(d), DIST_EXTRA.get(d)) else {
                break InBlock::Bad;
            };
            let Some(x) = bits.held_bits(u32::from(extra)) else {
                break InBlock::Bad;
            };
            let dist = base + x as u16;
            if u64::from(dist) > plain {
                break InBlock::Bad;
            }
            plain += u64::from(len);
            after = true;
            if !stops {
                continue;
            }
            break InBlock::Match(len, dist);
        };
        let (at, buf, held) = (bits.at, bits.buf, bits.held);
        self.bits.at = at;
        self.bits.buf = buf;
        self.bits.held = held;
        self.plain = plain;
        self.after_match = after;
        found
    }

    /// Between blocks: reads the next block's header; a stored block is
    /// passed whole (its length given). `None` at the stream's end (after
    /// the last block: `finished`) or where it is malformed.
    #[cold]
    fn header(&mut self) -> Option<Option<u32>> {
        if self.done {
            return None;
        }
        if self.last {
            self.finished = true;
            return None;
        }
        if self.short(HEADER_AHEAD) {
            self.slide()?;
        }
        if self.starts.is_some() {
            let start = (self.plain, self.bit_offset(), self.after_match);
            self.starts.as_mut()?.push(start);
        }
        let in_file = self.windowed.as_ref().map(|w| w.stream.len - w.origin);
        let bits = &mut self.bits;
        self.last = bits.take(1)? == 1;
        match bits.take(2)? {
            0 => {
                let drop = bits.held % 8;
                bits.drop_bits(drop)?;
                let len = bits.take(16)?;
                let nlen = bits.take(16)?;
                if len != !nlen & 0xffff {
                    return None;
                }
                // Whole bytes held go first, then the rest of the data.
                let held_bytes = (bits.held / 8) as usize;
                let n = len as usize;
                if n <= held_bytes {
                    bits.drop_bits(n as u32 * 8)?;
                } else {
                    let rest = n - held_bytes;
                    // In a window, the bytes past it are the file's.
                    let end = in_file.unwrap_or(bits.data.len() as u64);
                    if (bits.at + rest) as u64 > end {
                        return None;
                    }
                    bits.at += rest;
                    bits.buf = 0;
                    bits.held = 0;
                }
                self.plain += u64::from(len);
                Some(Some(len))
            }
            // A block "ends on a match" by its own last symbol: one with no
            // symbols does not (as a stored block does not).
            1 => {
                self.codes = Some(fixed()?);
                self.after_match = false;
                Some(None)
            }
            2 => {
                self.codes = Some(self.dynamic()?);
                self.after_match = false;
                Some(None)
            }
            _ => None,
        }
    }

    /// Reads to the stream's end recording every block start (without
    /// stopping at each match, as a copier's reading does: the whole pass
    /// over a stream reads about 1.4 times faster); whether it ended well.
    pub(crate) fn record_to_end(&mut self) -> bool {
        self.starts = Some(Vec::new());
        self.stops = false;
        while !matches!(self.scan(u64::MAX), Scan::End) {}
        self.stops = true;
        self.finished
    }

    /// Reads to the stream's end recording every block start: the starts
    /// and the plain length, or `None` if the stream is malformed.
    pub(crate) fn index(compressed: &'a [u8]) -> Option<(Vec<crate::reuse::BlockStart>, u64)> {
        Symbols::index_to_end(compressed).map(|(starts, plain, _)| (starts, plain))
    }

    /// [`Symbols::index`] of a stream read from a file.
    pub(crate) fn index_in(stream: FileStream<'a>) -> Option<(Vec<crate::reuse::BlockStart>, u64)> {
        let mut s = Symbols::at_in(stream, 0, 0, None)?;
        if !s.record_to_end() {
            return None;
        }
        Some((s.starts.take().unwrap_or_default(), s.plain))
    }

    /// [`Symbols::index`], with the offset in bits where the stream ends
    /// (after its last block): the cut finder's reading of a stream
    /// (`cuts::blocks`), which may be given bytes past the stream's end.
    pub(crate) fn index_to_end(
        compressed: &'a [u8],
    ) -> Option<(Vec<crate::reuse::BlockStart>, u64, u64)> {
        let mut s = Symbols::at(compressed, 0, 0)?;
        if !s.record_to_end() {
            return None;
        }
        let end = s.bit_offset();
        Some((s.starts.take().unwrap_or_default(), s.plain, end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`Symbols::index`] read the way a copier reads, a match at a time:
    /// the whole pass that reads through the matches must find the same.
    fn stopping_at_each_match(z: &[u8]) -> Option<(Vec<crate::reuse::BlockStart>, u64)> {
        let mut s = Symbols::at(z, 0, 0)?;
        s.starts = Some(Vec::new());
        while s.scan(u64::MAX) != Scan::End {}
        s.finished
            .then(|| (s.starts.take().unwrap_or_default(), s.plain))
    }

    #[test]
    fn symbols_decode_the_plain_length_and_refuse_garbage() {
        let text = crate::zlib::sample();
        for level in [0u32, 1, 6, 9] {
            let mut e =
                flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(level));
            std::io::Write::write_all(&mut e, &text).unwrap();
            let z = e.finish().unwrap();
            let (starts, plain) = Symbols::index(&z).expect("decodes");
            assert_eq!(plain, text.len() as u64, "level {level}");
            assert_eq!(
                stopping_at_each_match(&z),
                Some((starts.clone(), plain)),
                "level {level}"
            );
            // The stream's start, then every later block's, in order (the
            // cut finder's block ends are these; its tests hold them to the
            // encoders' own block boundaries).
            assert_eq!(starts.first(), Some(&(0, 0, false)), "level {level}");
            assert!(starts
                .windows(2)
                .all(|w| w[0].0 <= w[1].0 && w[0].1 < w[1].1));
            if level > 0 {
                assert!(starts.len() > 1, "level {level}: one block only");
            }
            // Every block start read again gives the same end.
            for &(p, bit, _) in &starts {
                let mut s = Symbols::at(&z, bit, p).unwrap();
                while s.scan(u64::MAX) != Scan::End {}
                assert!(s.finished);
                assert_eq!(s.plain, text.len() as u64);
            }
            let mut x = 7u64;
            for _ in 0..2000 {
                let mut bad = z.clone();
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                let at = (x >> 33) as usize % bad.len();
                bad[at] ^= 1 << ((x >> 20) % 8);
                assert_eq!(
                    Symbols::index(&bad),
                    stopping_at_each_match(&bad),
                    "level {level}, bit flipped at byte {at}"
                );
                assert_eq!(
                    Symbols::index(&bad[..at]),
                    stopping_at_each_match(&bad[..at])
                );
                if let Some(mut s) = Symbols::at(&bad, x % (8 * bad.len() as u64), 0) {
                    while s.scan(u64::MAX) != Scan::End {}
                }
            }
        }
    }

    /// A reader of a stream read from a file a window at a time (4 KiB, so
    /// that symbols, block headers and stored blocks cross windows) reads
    /// what a reader of the whole stream does, from every block start:
    /// the same matches, stored blocks, block starts and end.
    #[test]
    fn a_stream_read_a_window_at_a_time_is_read_as_whole() {
        use std::io::Write as _;
        let text = crate::zlib::sample();
        let mut r = 99u64;
        let mut plain = Vec::new();
        for i in 0..40usize {
            // Text, then bytes no deflate compresses (stored blocks).
            let at = (i * 7919) % (text.len() - 30_000);
            plain.extend_from_slice(&text[at..at + 20_000 + i * 300]);
            for _ in 0..(i % 3) * 30_000 {
                r = r.wrapping_mul(6364136223846793005).wrapping_add(1);
                plain.push((r >> 33) as u8);
            }
        }
        for level in [0u32, 1, 6, 9] {
            let mut e =
                flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(level));
            e.write_all(&plain).unwrap();
            let z = e.finish().unwrap();
            let mut file = tempfile::tempfile().unwrap();
            file.write_all(b"not the stream").unwrap();
            file.write_all(&z).unwrap();
            file.write_all(b"nor this").unwrap();
            let stream = FileStream {
                file: &file,
                start: 14,
                len: z.len() as u64,
            };
            let (starts, total) = Symbols::index(&z).expect("decodes");
            assert_eq!(total, plain.len() as u64);
            let stored = |s: &Scan| matches!(s, Scan::Stored(_));
            let mut saw_stored = false;
            for &(p, bit, _) in &starts {
                let mut whole = Symbols::at(&z, bit, p).unwrap();
                let mut windowed = Symbols::at_in(stream, bit, p, Some(4096)).unwrap();
                whole.starts = Some(Vec::new());
                windowed.starts = Some(Vec::new());
                loop {
                    let (a, b) = (whole.scan(u64::MAX), windowed.scan(u64::MAX));
                    assert_eq!(a, b, "level {level}, from bit {bit}");
                    assert_eq!(whole.plain, windowed.plain);
                    saw_stored |= stored(&a);
                    if a == Scan::End {
                        break;
                    }
                }
                assert!(windowed.finished, "level {level}");
                assert_eq!(whole.starts, windowed.starts, "level {level}");
                assert_eq!(whole.bit_offset(), windowed.bit_offset(), "level {level}");
            }
            assert!(saw_stored || level > 0, "level {level}: no stored block");
            // A stream cut short in its file ends the reader, never a panic.
            let short = FileStream {
                len: z.len() as u64 / 2,
                ..stream
            };
            let mut s = Symbols::at_in(short, 0, 0, Some(4096)).unwrap();
            while s.scan(u64::MAX) != Scan::End {}
            assert!(!s.finished, "level {level}");
        }
    }
}
