//! The match finder of deflate as GNU gzip's `deflate.c` (gzip 1.6 to 1.13,
//! without `--rsyncable`) and zlib's (1.2.12 to 1.4; raw, 32 KiB window,
//! memLevel 8, default strategy) do it: a 64 KiB window slid by 32 KiB, a
//! 15-bit hash (shift 5) with chains, `deflate_fast` for levels 1 to 3 and
//! lazy matching for 4 to 9, each with the same configuration table.
//!
//! The [`Flavour`]s differ in a few places, each marked where it is made:
//! - reading: gzip reads its file a window's worth at a time, and stops
//!   filling the window (and sliding it) at the end of the input; zlib is
//!   handed `STEP` bytes at a time (as [`crate::zlib`] feeds the C zlib it
//!   replaces), fills only from what it was handed, stops to wait for more
//!   when it has less than `MIN_LOOKAHEAD` bytes ahead (before inserting or
//!   searching anything more), slides whenever its look-ahead runs short,
//!   even at the end, and sets its rolling hash again from the next two
//!   bytes after each read;
//! - at the end of the input: gzip hashes and inserts every string, with the
//!   zeros it put past the input; zlib inserts only strings with three
//!   bytes of input ahead, and its match search stops at a match reaching
//!   the end of the input (`nice_match` clamped to the look-ahead);
//! - `deflate_fast`: zlib inserts a match's strings only when three bytes of
//!   input remain after it.
//!
//! The window is emulated byte for byte, including what a read leaves past
//! the end of the input, since gzip's match search compares those bytes too.
//! zlib's search compares them as well, but never takes a match for them: a
//! match as long as the look-ahead ends its search.

mod copy;

use super::longer::{Longer, KEYS, LAGGED, LONGER_FROM};
use super::trees::Trees;
use super::{Flavour, STEP};
use crate::reuse::Copier;
use std::io::Read;

pub(super) const WSIZE: usize = 0x8000;
const WMASK: usize = WSIZE - 1;
pub(super) const WINDOW_SIZE: usize = 2 * WSIZE;
const HASH_BITS: usize = 15;
const HASH_SIZE: usize = 1 << HASH_BITS;
const HASH_MASK: usize = HASH_SIZE - 1;
const H_SHIFT: usize = 5;
const MIN_MATCH: usize = 3;
const MAX_MATCH: usize = 258;
const MIN_LOOKAHEAD: usize = MAX_MATCH + MIN_MATCH + 1;
const MAX_DIST: usize = WSIZE - MIN_LOOKAHEAD;
const TOO_FAR: usize = 4096;
/// Bytes past the window that the 8-byte match comparison may read.
pub(super) const PAD: usize = 8;
/// The window's array: a power of two, so that an index masked with
/// `ARRAY_MASK` is in it (and the 8 bytes from it, with `PAD` more) without a
/// bounds check; the bytes past `WINDOW_SIZE` stay zero.
pub(super) const ARRAY: usize = 2 * WINDOW_SIZE;
pub(super) const ARRAY_MASK: usize = ARRAY - 1;

/// The configuration table (gzip's and zlib's): (good, lazy, nice, chain)
/// per level 1 to 9.
const CONFIG: [(usize, usize, usize, usize); 9] = [
    (4, 4, 8, 4),
    (4, 5, 16, 8),
    (4, 6, 32, 32),
    (4, 4, 16, 16),
    (8, 16, 32, 32),
    (8, 16, 128, 128),
    (8, 32, 128, 256),
    (32, 128, 258, 1024),
    (32, 258, 258, 4096),
];

/// The deflate state of one stream, reading `input` as its flavour does.
pub(super) struct Matcher<'a> {
    input: &'a mut dyn Read,
    /// Why reading `input` failed (the stream then ends there).
    pub(super) read_error: Option<std::io::Error>,
    window: Box<[u8; ARRAY + PAD]>,
    /// The hash chains' links (kept only when `longer` is not).
    prev: Box<[u16; WSIZE]>,
    head: Box<[u16; HASH_SIZE]>,
    /// Chains of the strings by their prefixes (levels 5 to 9).
    longer: Option<Longer>,
    ins_h: usize,
    strstart: usize,
    match_start: usize,
    lookahead: usize,
    eofile: bool,
    block_start: i64,
    prev_length: usize,
    good_match: usize,
    max_lazy: usize,
    nice_match: usize,
    max_chain: usize,
    level: u8,
    flavour: Flavour,
    /// zlib: the piece of input handed over last (`STEP` bytes, or fewer
    /// when the input ends in it), how much of it was read, and whether it
    /// is the last.
    piece: Vec<u8>,
    piece_read: usize,
    piece_last: bool,
    /// Offset in the stream's plain bytes of `window[0]`.
    origin: u64,
    /// Bytes of output handed to `block_out` so far.
    emitted: u64,
    pub(super) trees: Trees,
    /// A base stream's parse to copy where it is this stream's
    /// ([`crate::reuse`]); lazy matching only.
    pub(super) copier: Option<Copier<'a>>,
}

/// Where a block (not the last) ended, as [`Matcher::run`] reports it: what a
/// matcher resumed there ([`Matcher::resume`]) needs, if the state there is
/// one a resumed matcher has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Boundary {
    /// Offset of the next block's first plain byte in the stream's plain bytes.
    pub(crate) plain: u64,
    /// Offset in bits of the next block's first bit in the stream's output.
    pub(crate) bit: u64,
    /// Where `plain` is in the window (`strstart`).
    pub(crate) strstart: u32,
    /// The `bit % 8` bits of output before the next block in its first byte.
    pub(crate) partial: u8,
    /// Whether the state there is one [`Matcher::resume`] rebuilds: lazy
    /// matching (levels 4 to 9), the window full (the input did not end in
    /// it), and no match pending, or one pending whose search a resumed
    /// matcher makes the same: the block ended on a literal after a match
    /// shorter than `good_match` (the full chain length), so the search
    /// at the next string finds what it found.
    pub(crate) clean: bool,
}

impl<'a> Matcher<'a> {
    /// A matcher for `level` (1 to 9) at the start of a stream, its window
    /// and chains empty, nothing read yet (the configuration table).
    fn blank(flavour: Flavour, level: u8, input: &'a mut dyn Read) -> Matcher<'a> {
        let (good, lazy, nice, chain) = CONFIG[usize::from(level.clamp(1, 9)) - 1];
        Matcher {
            input,
            read_error: None,
            window: Box::new([0; ARRAY + PAD]),
            prev: Box::new([0; WSIZE]),
            head: Box::new([0; HASH_SIZE]),
            longer: None,
            ins_h: 0,
            strstart: 0,
            match_start: 0,
            lookahead: 0,
            eofile: false,
            block_start: 0,
            prev_length: 0,
            good_match: good,
            max_lazy: lazy,
            nice_match: nice,
            max_chain: chain,
            level,
            flavour,
            piece: Vec::new(),
            piece_read: 0,
            piece_last: false,
            origin: 0,
            emitted: 0,
            trees: Trees::new(flavour, level),
            copier: None,
        }
    }

    /// `lm_init` for `level` (1 to 9), with the first read of the input
    /// (gzip's: into the window; zlib's: the first `STEP` bytes handed over).
    pub(super) fn new(flavour: Flavour, level: u8, input: &'a mut dyn Read) -> Matcher<'a> {
        let mut m = Matcher::blank(flavour, level, input);
        if flavour == Flavour::Zlib {
            m.next_piece(STEP);
            // zlib starts with nothing in the window (`run` fills it).
            if level >= 5 && m.piece.len() == STEP {
                m.longer = Some(Longer::new(0));
            }
            return m;
        }
        m.lookahead = m.read(0, WINDOW_SIZE);
        // A short input (all of it in this read, less than the window) keeps
        // gzip's walk: the other chains take longer to set up (allocate and
        // clear) than they save there.
        if level >= 5 && m.lookahead >= LONGER_FROM {
            m.longer = Some(Longer::new(0));
        }
        if m.lookahead == 0 {
            m.eofile = true;
            return m;
        }
        while m.lookahead < MIN_LOOKAHEAD && !m.eofile {
            m.fill_window();
        }
        m.ins_h = 0;
        for j in 0..MIN_MATCH - 1 {
            m.update_hash(m.window[j]);
        }
        m
    }

    /// A matcher in the state `flavour`'s (at `level`, 4 to 9) is in at a
    /// [`Boundary`] whose `clean` is true: at offset `plain` of the stream,
    /// `strstart` into its window, after `dict` (the plain bytes before
    /// `plain`, at least `min(strstart, 32 KiB)` of them: only those are
    /// used), with the boundary's `partial` bits of output pending (`bit % 8`
    /// of them). It reads the stream from `plain` on from `input`; its output
    /// starts at byte `bit / 8` of the stream's. The window holds the bytes
    /// before `plain` that a match may reach, the hash chains every string
    /// starting there (lazy matching inserts every string), nothing pending.
    /// Whether it then deflates as the whole stream's matcher did is for the
    /// caller to check: the cut's bytes decide. zlib's flavour also takes up
    /// its piece of input where the window's end left it (pieces end at
    /// multiples of `STEP` in the stream; a clean boundary's window is full
    /// and ends at a multiple of 32 KiB).
    pub(super) fn resume(
        flavour: Flavour,
        level: u8,
        input: &'a mut dyn Read,
        dict: &[u8],
        at: &Boundary,
    ) -> Matcher<'a> {
        let strstart = (at.strstart as usize).min(WINDOW_SIZE - 1);
        let mut m = Matcher::blank(flavour, level, input);
        m.strstart = strstart;
        m.block_start = strstart as i64;
        m.prev_length = MIN_MATCH - 1;
        m.origin = at.plain.saturating_sub(strstart as u64);
        m.emitted = at.bit / 8;
        m.trees.bits.prime(at.partial, (at.bit % 8) as u32);
        let keep = dict.len().min(strstart).min(WSIZE);
        if level >= 5 {
            m.longer = Some(Longer::new(strstart - keep));
        }
        m.window[strstart - keep..strstart].copy_from_slice(&dict[dict.len() - keep..]);
        m.lookahead = m.read(strstart, WINDOW_SIZE - strstart);
        if flavour == Flavour::Zlib {
            // The window was full (a clean boundary): zlib's piece then was
            // read to the window's end, which is a multiple of 32 KiB.
            let end = m.origin + (strstart + m.lookahead) as u64;
            let into = (end % STEP as u64) as usize;
            if into == 0 {
                m.piece_last = false;
            } else {
                m.next_piece(STEP - into);
            }
        }
        // Every string before `plain` that the window holds, in order, as
        // lazy matching inserted them (the hash is of three bytes).
        for s in strstart - keep..strstart {
            m.ins_h = 0;
            for j in 0..MIN_MATCH - 1 {
                m.update_hash(m.window[s + j]);
            }
            m.insert_string(s);
        }
        // What the encoder does after the block's last symbol: slide if
        // due, read.
        m.refill();
        m.ins_h = 0;
        for j in 0..MIN_MATCH - 1 {
            m.update_hash(m.window[m.strstart + j]);
        }
        m
    }

    /// Reads up to `size` bytes of the input into the window at `at`, as a
    /// read(2) of a regular file does: all of them unless the input ends (or
    /// fails: the error is kept in `read_error` and the input ends there).
    fn read(&mut self, at: usize, size: usize) -> usize {
        let mut n = 0;
        while n < size && self.read_error.is_none() {
            match self.input.read(&mut self.window[at + n..at + size]) {
                Ok(0) => break,
                Ok(got) => n += got,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => self.read_error = Some(e),
            }
        }
        n
    }

    /// zlib: takes the next piece of input, `size` bytes (`STEP`, or the
    /// rest of one), fewer at the end (the last piece); a read error ends the
    /// input there, kept in `read_error`.
    fn next_piece(&mut self, size: usize) {
        self.piece.resize(size, 0);
        let mut n = 0;
        while n < size && self.read_error.is_none() {
            match self.input.read(&mut self.piece[n..]) {
                Ok(0) => break,
                Ok(got) => n += got,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => self.read_error = Some(e),
            }
        }
        self.piece.truncate(n);
        self.piece_read = 0;
        self.piece_last = n < size;
    }

    #[inline]
    fn update_hash(&mut self, c: u8) {
        self.ins_h = ((self.ins_h << H_SHIFT) ^ usize::from(c)) & HASH_MASK;
    }

    /// Inserts the string at `s` into the hash chains; returns the previous
    /// head of its chain.
    #[inline]
    fn insert_string(&mut self, s: usize) -> usize {
        self.update_hash(self.window[s + MIN_MATCH - 1]);
        let head = self.head[self.ins_h];
        self.head[self.ins_h] = s as u16;
        // With the other chains, gzip's own chains are not walked: its
        // heads give the ranks.
        if let Some(l) = &mut self.longer {
            l.rank[s & WMASK] = l.rank[usize::from(head) & WMASK].wrapping_add(1);
            let mut chain = |key: usize, at: usize| {
                let h = Longer::hash(Longer::prefix(&self.window, at, key));
                l.prev[key][at & WMASK] = l.head[key][h];
                l.head[key][h] = at as u16;
            };
            for key in 0..LAGGED {
                chain(key, s);
            }
            if s >= l.first + 2 {
                chain(LAGGED, s - 2);
            }
        } else {
            self.prev[s & WMASK] = head;
        }
        usize::from(head)
    }

    /// Makes sure of `MIN_LOOKAHEAD` bytes ahead unless the input ends
    /// before (at the top of each step of `deflate_fast` and of the lazy
    /// loop). gzip fills until then or the end of its input; zlib, whenever
    /// short of it, fills from the piece it was handed and, while still
    /// short, takes the next piece (its caller's next call), unless the
    /// piece was the last.
    #[inline]
    fn refill(&mut self) {
        if self.lookahead < MIN_LOOKAHEAD {
            self.refill_short();
        }
    }

    /// [`Matcher::refill`] when short of `MIN_LOOKAHEAD` (once in some 32 KiB:
    /// kept out of the loop's code).
    #[inline(never)]
    fn refill_short(&mut self) {
        match self.flavour {
            Flavour::Gnu => {
                while self.lookahead < MIN_LOOKAHEAD && !self.eofile {
                    self.fill_window();
                }
            }
            Flavour::Zlib => loop {
                self.zlib_fill_window();
                if self.lookahead >= MIN_LOOKAHEAD || self.piece_last {
                    break;
                }
                self.next_piece(STEP);
            },
        }
    }

    /// zlib's `fill_window`: slides the window when due (whether or not
    /// input remains), then copies what it can of the piece handed over,
    /// and sets the rolling hash from the next two bytes once three are
    /// there; again while short of `MIN_LOOKAHEAD` and the piece lasts.
    fn zlib_fill_window(&mut self) {
        loop {
            let mut more = WINDOW_SIZE - self.lookahead - self.strstart;
            if self.strstart >= WSIZE + MAX_DIST {
                self.slide();
                more += WSIZE;
            }
            let left = self.piece.len() - self.piece_read;
            if left == 0 {
                return;
            }
            let n = left.min(more);
            let at = self.strstart + self.lookahead;
            self.window[at..at + n]
                .copy_from_slice(&self.piece[self.piece_read..self.piece_read + n]);
            self.piece_read += n;
            self.lookahead += n;
            if self.lookahead >= MIN_MATCH {
                self.ins_h = usize::from(self.window[self.strstart]);
                self.update_hash(self.window[self.strstart + 1]);
            }
            if self.lookahead >= MIN_LOOKAHEAD || self.piece_read == self.piece.len() {
                return;
            }
        }
    }

    /// Moves the window's upper half down, and the chains with it (strings
    /// below the window drop off them).
    fn slide(&mut self) {
        self.window.copy_within(WSIZE..WINDOW_SIZE, 0);
        self.match_start = self.match_start.wrapping_sub(WSIZE);
        self.strstart -= WSIZE;
        self.block_start -= WSIZE as i64;
        self.origin += WSIZE as u64;
        let slide = |p: &mut u16| *p = p.saturating_sub(WSIZE as u16);
        self.head.iter_mut().for_each(slide);
        if let Some(l) = &mut self.longer {
            l.first = l.first.saturating_sub(WSIZE);
            for key in 0..KEYS.len() {
                l.head[key].iter_mut().for_each(slide);
                l.prev[key].iter_mut().for_each(slide);
            }
        } else {
            self.prev.iter_mut().for_each(slide);
        }
    }

    /// gzip's `fill_window`: slides the window when needed, then reads.
    fn fill_window(&mut self) {
        let mut more = WINDOW_SIZE - self.lookahead - self.strstart;
        if self.strstart >= WSIZE + MAX_DIST {
            self.slide();
            more += WSIZE;
        }
        if !self.eofile {
            let at = self.strstart + self.lookahead;
            let n = self.read(at, more);
            if n == 0 {
                self.eofile = true;
                self.window[at..at + MIN_MATCH - 1].fill(0);
            } else {
                self.lookahead += n;
            }
        }
    }

    /// The number of equal bytes of the strings at `a` and `b` from offset 3
    /// on, up to `MAX_MATCH - 3` (gzip assumes the third byte equal). Both
    /// are in the window (the masks only spare bounds checks).
    #[inline]
    fn extend(w: &[u8; ARRAY + PAD], a: usize, b: usize) -> usize {
        let word = |at: usize| {
            let at = at & ARRAY_MASK;
            u64::from_le_bytes(w[at..at + 8].try_into().unwrap_or([0; 8]))
        };
        let mut n = 3;
        while n < MAX_MATCH {
            let diff = word(a + n) ^ word(b + n);
            if diff != 0 {
                n += (diff.trailing_zeros() / 8) as usize;
                return n.min(MAX_MATCH);
            }
            n += 8;
        }
        MAX_MATCH
    }

    /// `longest_match`: the longest match longer than `prev_length` along
    /// the chain from `cur_match` (sets `match_start`); zlib's stops at one
    /// as long as the look-ahead.
    fn longest_match(&mut self, mut cur_match: usize) -> usize {
        let hash_head = cur_match;
        let mut chain_length = self.max_chain;
        let scan = self.strstart;
        let mut best_len = self.prev_length;
        let limit = self.strstart.saturating_sub(MAX_DIST);
        if self.prev_length >= self.good_match {
            chain_length >>= 2;
        }
        let max_chain = chain_length;
        let nice_match = match self.flavour {
            Flavour::Gnu => self.nice_match,
            Flavour::Zlib => self.nice_match.min(self.lookahead),
        };
        let w = &*self.window;
        let prev = &*self.prev;
        // Two bytes at a time: gzip compares match[best_len], match[best_len - 1],
        // match[0] and match[1] with the current string's before anything else.
        // Every position is below `ARRAY` (the mask spares the bounds check).
        let pair = |at: usize| {
            let at = at & ARRAY_MASK;
            u16::from_le_bytes([w[at], w[at + 1]])
        };
        let mut scan_end = pair(scan + best_len - 1);
        let mut found = None;
        if let Some(l) = &self.longer {
            // gzip's walk on the longer chains: the strings whose prefix is
            // the current string's, as long as gzip's walk would reach them
            // (its first string may be at `limit`, no other). A longer match
            // moves on to the chain of a longer prefix if there is one, from
            // below the strings already checked.
            let mut from = scan;
            let rank = l.rank[scan & WMASK];
            'chains: loop {
                let key = Longer::key_for(best_len);
                let chain = &*l.prev[key];
                let want = Longer::prefix(w, scan, key);
                // The 8-byte chain has the strings up to `scan - 2`: the one
                // before `scan` comes first, then the chain.
                let mut lagged = key == LAGGED;
                let mut m = if lagged {
                    scan - 1
                } else {
                    usize::from(chain[scan & WMASK])
                };
                while m != 0 && m >= limit {
                    let inserted = !lagged || m >= l.first;
                    let next = if lagged {
                        usize::from(l.head[key][Longer::hash(want)])
                    } else {
                        usize::from(chain[m & WMASK])
                    };
                    lagged = false;
                    if m < from && inserted && Longer::prefix(w, m, key) == want {
                        let at = usize::from(rank.wrapping_sub(l.rank[m & WMASK]));
                        if at > max_chain || (m == limit && m != hash_head) {
                            break 'chains;
                        }
                        if pair(m + best_len - 1) == scan_end {
                            let len = Self::extend(w, scan, m);
                            if len > best_len {
                                found = Some(m);
                                best_len = len;
                                if len >= nice_match {
                                    break 'chains;
                                }
                                scan_end = pair(scan + best_len - 1);
                                if Longer::key_for(best_len) != key {
                                    from = m;
                                    continue 'chains;
                                }
                            }
                        }
                    }
                    m = next;
                }
                break;
            }
        } else {
            let scan_start = pair(scan);
            loop {
                let m = cur_match;
                if pair(m + best_len - 1) == scan_end && pair(m) == scan_start {
                    let len = Self::extend(w, scan, m);
                    if len > best_len {
                        found = Some(cur_match);
                        best_len = len;
                        if len >= nice_match {
                            break;
                        }
                        scan_end = pair(scan + best_len - 1);
                    }
                }
                cur_match = usize::from(prev[cur_match & WMASK]);
                chain_length -= 1;
                if cur_match <= limit || chain_length == 0 {
                    break;
                }
            }
        }
        if let Some(at) = found {
            self.match_start = at;
        }
        best_len
    }

    /// Ends the current block at `strstart` (gzip's `FLUSH_BLOCK`).
    fn flush(&mut self, eof: bool) {
        let len = (self.strstart as i64 - self.block_start) as u64;
        let stored = usize::try_from(self.block_start)
            .ok()
            .map(|b| &self.window[b..self.strstart]);
        self.trees.flush_block(stored, len, eof);
        self.block_start = self.strstart as i64;
    }

    /// Whether a match may be searched from `hash_head` now (zlib's window
    /// always has the room that gzip's last condition asks for: it slides
    /// whenever its look-ahead runs short).
    #[inline]
    fn searchable(&self, hash_head: usize) -> bool {
        hash_head != 0
            && self.strstart.wrapping_sub(hash_head) <= MAX_DIST
            && self.strstart <= WINDOW_SIZE - MIN_LOOKAHEAD
    }

    /// Runs deflate to the end of the input, handing each block's output to
    /// `block_out`; stops early when `block_out` returns false.
    pub(super) fn run(
        &mut self,
        mut block_out: impl FnMut(&mut Vec<u8>, Option<Boundary>) -> bool,
    ) {
        if self.level <= 3 {
            self.deflate_fast(&mut block_out);
        } else {
            self.deflate_lazy(&mut block_out);
        }
    }

    /// Ends the current block (not the last) and hands its output over with
    /// where the next block starts (`clean` says whether [`Matcher::resume`]
    /// rebuilds the state there); false when `block_out` wants no more.
    fn block_done(
        &mut self,
        block_out: &mut impl FnMut(&mut Vec<u8>, Option<Boundary>) -> bool,
        clean: bool,
    ) -> bool {
        self.flush(false);
        let (bit, partial) = self.trees.bits.position(self.emitted);
        let at = Boundary {
            plain: self.origin + self.strstart as u64,
            bit,
            strstart: self.strstart as u32,
            partial,
            clean: clean
                && self.level >= 4
                && !self.eofile
                && self.strstart + self.lookahead == WINDOW_SIZE,
        };
        self.emitted += self.trees.bits.out.len() as u64;
        block_out(&mut self.trees.bits.out, Some(at))
    }

    /// Ends the last block and hands its output over.
    fn last_block(&mut self, block_out: &mut impl FnMut(&mut Vec<u8>, Option<Boundary>) -> bool) {
        self.flush(true);
        self.emitted += self.trees.bits.out.len() as u64;
        block_out(&mut self.trees.bits.out, None);
    }

    /// Whether the string at `strstart` is inserted (and searched from): by
    /// gzip always, by zlib with three bytes of input ahead.
    #[inline]
    fn insertable(&self) -> bool {
        self.flavour == Flavour::Gnu || self.lookahead >= MIN_MATCH
    }

    /// Fills the look-ahead and inserts the string at `strstart` if it may
    /// be: the head of its hash chain before it (0 when not inserted), or
    /// `None` once the input is done.
    #[inline]
    fn next_string(&mut self) -> Option<usize> {
        self.refill();
        if self.lookahead == 0 {
            return None;
        }
        Some(if self.insertable() {
            self.insert_string(self.strstart)
        } else {
            0
        })
    }

    /// `deflate_fast` (levels 1 to 3): no lazy evaluation; strings in a
    /// match are inserted only when it is at most `max_lazy` long (and, in
    /// zlib, three bytes of input follow it).
    fn deflate_fast(&mut self, block_out: &mut impl FnMut(&mut Vec<u8>, Option<Boundary>) -> bool) {
        let mut match_length = 0usize;
        self.prev_length = MIN_MATCH - 1;
        while let Some(hash_head) = self.next_string() {
            if self.searchable(hash_head) {
                match_length = self.longest_match(hash_head).min(self.lookahead);
            }
            let flush;
            if match_length >= MIN_MATCH {
                let dist = self.strstart - self.match_start;
                flush = self.trees.tally_match(
                    dist,
                    match_length - MIN_MATCH,
                    self.strstart,
                    self.block_start,
                );
                self.lookahead -= match_length;
                if match_length <= self.max_lazy && self.insertable() {
                    for _ in 1..match_length {
                        self.strstart += 1;
                        self.insert_string(self.strstart);
                    }
                    self.strstart += 1;
                } else {
                    self.strstart += match_length;
                    self.ins_h = usize::from(self.window[self.strstart]);
                    self.update_hash(self.window[self.strstart + 1]);
                }
                match_length = 0;
            } else {
                let c = self.window[self.strstart];
                flush = self.trees.tally_lit(c, self.strstart, self.block_start);
                self.lookahead -= 1;
                self.strstart += 1;
            }
            if flush && !self.block_done(block_out, false) {
                return;
            }
        }
        self.last_block(block_out);
    }

    /// gzip's `deflate`, zlib's `deflate_slow` (levels 4 to 9): a match is
    /// kept only if the match at the next byte is not longer.
    fn deflate_lazy(&mut self, block_out: &mut impl FnMut(&mut Vec<u8>, Option<Boundary>) -> bool) {
        let mut match_available = false;
        let mut match_length = MIN_MATCH - 1;
        while let Some(hash_head) = self.next_string() {
            // Nothing pending: the base's parse may be copied from here.
            if !match_available && match_length == MIN_MATCH - 1 {
                if let Some(c) = &mut self.copier {
                    let pos = self.origin + self.strstart as u64;
                    if pos >= c.next_try && c.try_start(pos) {
                        if !self.copy_steps(block_out, &mut match_available, &mut match_length) {
                            return;
                        }
                        continue;
                    }
                }
            }
            self.prev_length = match_length;
            let prev_match = self.match_start;
            match_length = MIN_MATCH - 1;
            if self.prev_length < self.max_lazy && self.searchable(hash_head) {
                match_length = self.longest_match(hash_head).min(self.lookahead);
                // match_start may be stale here (gzip's comment says so):
                // unsigned arithmetic, as in gzip.
                if match_length == MIN_MATCH
                    && self.strstart.wrapping_sub(self.match_start) > TOO_FAR
                {
                    match_length -= 1;
                }
            }
            let mut flush = false;
            if self.prev_length >= MIN_MATCH && match_length <= self.prev_length {
                // zlib inserts no string with fewer than 3 bytes of input.
                let max_insert = match self.flavour {
                    Flavour::Gnu => usize::MAX,
                    Flavour::Zlib => (self.strstart + self.lookahead).saturating_sub(MIN_MATCH),
                };
                let dist = self.strstart - 1 - prev_match;
                flush = self.trees.tally_match(
                    dist,
                    self.prev_length - MIN_MATCH,
                    self.strstart,
                    self.block_start,
                );
                self.lookahead -= self.prev_length - 1;
                for _ in 0..self.prev_length - 2 {
                    self.strstart += 1;
                    if self.strstart <= max_insert {
                        self.insert_string(self.strstart);
                    }
                }
                match_available = false;
                match_length = MIN_MATCH - 1;
                self.strstart += 1;
            } else if match_available {
                // gzip flushes before moving on here, after it for a match.
                let c = self.window[self.strstart - 1];
                // A matcher resumed here (no match pending) searches the
                // next string as this one does unless the pending match's
                // length shortened this one's search (gzip's `good_match`).
                let clean = self.prev_length < self.good_match;
                if self.trees.tally_lit(c, self.strstart, self.block_start)
                    && !self.block_done(block_out, clean)
                {
                    return;
                }
                self.strstart += 1;
                self.lookahead -= 1;
            } else {
                match_available = true;
                self.strstart += 1;
                self.lookahead -= 1;
            }
            if flush && !self.block_done(block_out, true) {
                return;
            }
        }
        if match_available {
            let c = self.window[self.strstart - 1];
            self.trees.tally_lit(c, self.strstart, self.block_start);
        }
        self.last_block(block_out);
    }
}
