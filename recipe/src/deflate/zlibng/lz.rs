//! zlib-ng's window, hash table and match finder (`deflate.c`'s
//! `fill_window`, `insert_string_tpl.h` and its rolling variant,
//! `match_tpl.h` with and without `LONGEST_MATCH_SLOW`), kept as zlib-ng keeps them: the output depends on
//! the window's bytes past the input's end (stale bytes of before a slide,
//! or zeros), and on when `fill_window` runs, so both are modelled as they
//! are, not only the data they stand for.

use std::io::Read;

use super::Version;
use crate::deflate::trees::Trees;

/// The window size (32 KiB, `windowBits` 15).
pub(super) const WSIZE: usize = 1 << 15;
const WMASK: usize = WSIZE - 1;
/// The buffer holding the window: twice its size.
pub(super) const WINDOW_SIZE: usize = 2 * WSIZE;
/// `STD_MAX_MATCH + STD_MIN_MATCH + 1`.
pub(super) const MIN_LOOKAHEAD: usize = 258 + 3 + 1;
/// The farthest match distance.
pub(super) const MAX_DIST: usize = WSIZE - MIN_LOOKAHEAD;
/// zlib-ng's shortest match worth emitting (`WANT_MIN_MATCH`).
pub(super) const WANT_MIN_MATCH: usize = 4;
/// Bytes zeroed past the data (`WIN_INIT`).
const WIN_INIT: usize = 258;
/// The hash table's entries (`HASH_SIZE`, 16 bits).
const HASH_SIZE: usize = 1 << 16;
/// The rolling hash's mask (level 9's, 15 bits).
const ROLL_MASK: u32 = (1 << 15) - 1;
/// Zeros past the window's end, never written: reads of a few bytes past a
/// string near the end stay in the buffer.
const PAD: usize = 64;

/// A zeroed array on the heap (not built on the stack first).
fn boxed<T: Copy + Default, const N: usize>() -> Box<[T; N]> {
    match vec![T::default(); N].into_boxed_slice().try_into() {
        Ok(b) => b,
        Err(_) => unreachable!("the vector has N elements"),
    }
}

/// The 8 bytes at `at`, little-endian.
#[inline(always)]
pub(super) fn load64(w: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(w[at..at + 8].try_into().unwrap_or([0; 8]))
}

/// The 4 bytes at `at`, little-endian.
#[inline(always)]
fn load32(w: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(w[at..at + 4].try_into().unwrap_or([0; 4]))
}

/// The 2 bytes at `at`, little-endian.
#[inline(always)]
pub(super) fn load16(w: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(w[at..at + 2].try_into().unwrap_or([0; 2]))
}

/// How many of the 256 bytes from `a` and from `b` agree (`compare256`).
#[inline(always)]
pub(super) fn compare256(w: &[u8], a: usize, b: usize) -> usize {
    let (x, y) = (&w[a..a + 256], &w[b..b + 256]);
    for (i, (p, q)) in x.chunks_exact(8).zip(y.chunks_exact(8)).enumerate() {
        let p = u64::from_le_bytes(p.try_into().unwrap_or([0; 8]));
        let q = u64::from_le_bytes(q.try_into().unwrap_or([0; 8]));
        let d = p ^ q;
        if d != 0 {
            return i * 8 + (d.trailing_zeros() / 8) as usize;
        }
    }
    256
}

/// `match_tpl.h`'s quick test of a candidate against the current best
/// length: 2, 4 or 8 bytes at the start and at the end of the string.
#[derive(Clone, Copy)]
struct Quick {
    off: usize,
    mask: u64,
    start: u64,
    end: u64,
}

impl Quick {
    #[inline(always)]
    fn new(w: &[u8], scan: usize, best: usize) -> Quick {
        let (off, mask) = match best {
            0..=3 => (best - 1, 0xffff),
            4..=7 => (best - 3, 0xffff_ffff),
            _ => (best - 7, u64::MAX),
        };
        Quick {
            off,
            mask,
            start: load64(w, scan) & mask,
            end: load64(w, scan + off) & mask,
        }
    }

    #[inline(always)]
    fn passes(&self, w: &[u8], cur: usize) -> bool {
        load64(w, cur + self.off) & self.mask == self.end
            && load64(w, cur) & self.mask == self.start
    }
}

/// A level's parameters (zlib-ng's `configuration_table`).
#[derive(Clone, Copy, Debug)]
pub(super) struct Config {
    pub(super) good: usize,
    /// `max_lazy_match`, also `max_insert_length`.
    pub(super) lazy: usize,
    pub(super) nice: usize,
    pub(super) chain: u32,
}

/// The input as the caller hands it to `deflate()`: the whole of it in one
/// call, or pieces of a fixed size (each a `deflate(Z_NO_FLUSH)` call).
pub(super) struct Input<'a> {
    reader: &'a mut dyn Read,
    buf: Vec<u8>,
    pos: usize,
    /// `None`: one call with everything (the buffer refills as it empties);
    /// `Some(n)`: calls of `n` bytes, loaded by [`Input::next_piece`].
    step: Option<usize>,
    ended: bool,
    pub(super) error: Option<std::io::Error>,
}

impl<'a> Input<'a> {
    pub(super) fn new(reader: &'a mut dyn Read, step: Option<usize>) -> Input<'a> {
        Input {
            reader,
            buf: Vec::new(),
            pos: 0,
            step,
            ended: false,
            error: None,
        }
    }

    fn load(&mut self, n: usize) {
        self.buf.resize(n, 0);
        match crate::zlib::read_full(self.reader, &mut self.buf) {
            Ok(got) => {
                self.buf.truncate(got);
                self.ended = got < n;
            }
            Err(e) => {
                self.buf.clear();
                self.ended = true;
                self.error = Some(e);
            }
        }
        self.pos = 0;
    }

    /// Whether the current call's input is not used up (`avail_in != 0`).
    fn avail(&mut self) -> bool {
        if self.pos == self.buf.len() && self.step.is_none() && !self.ended {
            self.load(64 << 10);
        }
        self.pos < self.buf.len()
    }

    /// Loads the next piece; false when the input has ended (piece mode).
    pub(super) fn next_piece(&mut self) -> bool {
        match self.step {
            Some(n) if !self.ended => {
                self.load(n);
                !self.buf.is_empty()
            }
            Some(_) => false,
            None => self.avail(),
        }
    }

    /// Copies up to `dst.len()` bytes of the call's input (`read_buf`).
    fn read(&mut self, dst: &mut [u8]) -> usize {
        let mut n = 0;
        while n < dst.len() && self.avail() {
            let take = (dst.len() - n).min(self.buf.len() - self.pos);
            dst[n..n + take].copy_from_slice(&self.buf[self.pos..self.pos + take]);
            self.pos += take;
            n += take;
        }
        n
    }
}

/// The deflate state a strategy works on.
pub(super) struct Lz<'a> {
    pub(super) window: Box<[u8; WINDOW_SIZE + PAD]>,
    head: Box<[u16; HASH_SIZE]>,
    prev: Box<[u16; WSIZE]>,
    pub(super) strstart: usize,
    pub(super) block_start: i64,
    pub(super) lookahead: usize,
    pub(super) insert: usize,
    pub(super) match_start: usize,
    pub(super) prev_length: usize,
    high_water: usize,
    /// Level 9's rolling hash (`ins_h`), and whether it is in use.
    ins_h: u32,
    pub(super) roll: bool,
    pub(super) level: u8,
    pub(super) cfg: Config,
    pub(super) version: Version,
    pub(super) input: Input<'a>,
    pub(super) trees: Trees,
    /// Takes the output as it comes; false stops the encoder.
    sink: &'a mut dyn FnMut(&[u8]) -> bool,
    /// The sink said stop.
    pub(super) stopped: bool,
    /// Bytes handed to the sink.
    emitted: u64,
    /// The caller's output buffer, its bytes at the current call's start,
    /// its size so far and how many times it grew.
    out_buf: OutBuf,
    call_start: u64,
    cap: u64,
    grown: usize,
}

/// How the caller sizes the output buffer of each call (`deflate_medium`
/// forgets its look-ahead match when the buffer fills at a block's end).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OutBuf {
    /// CPython 3.10 on (`_BlocksOutputBuffer`): 32 KiB, then blocks of 64
    /// KiB, 256 KiB, 1, 4, 8, 16, 16 MiB, 32 MiB four times, 64 MiB twice,
    /// 128 MiB twice, then 256 MiB.
    CPythonBlocks,
    /// CPython up to 3.9 and the `zlib-ng` Python package: 16 KiB,
    /// doubled each time it fills.
    Doubling16K,
}

impl OutBuf {
    /// The buffer's size after growing `n` times.
    fn size(self, n: usize) -> u64 {
        const KB: u64 = 1 << 10;
        const MB: u64 = 1 << 20;
        match self {
            OutBuf::CPythonBlocks => {
                const BLOCKS: [u64; 17] = [
                    32 * KB,
                    64 * KB,
                    256 * KB,
                    MB,
                    4 * MB,
                    8 * MB,
                    16 * MB,
                    16 * MB,
                    32 * MB,
                    32 * MB,
                    32 * MB,
                    32 * MB,
                    64 * MB,
                    64 * MB,
                    128 * MB,
                    128 * MB,
                    256 * MB,
                ];
                BLOCKS[..=n.min(16)].iter().sum::<u64>() + (n.saturating_sub(16) as u64) * 256 * MB
            }
            OutBuf::Doubling16K => (16 * KB) << n.min(40),
        }
    }
}

impl<'a> Lz<'a> {
    pub(super) fn new(
        level: u8,
        cfg: Config,
        version: Version,
        input: Input<'a>,
        out_buf: OutBuf,
        sink: &'a mut dyn FnMut(&[u8]) -> bool,
    ) -> Lz<'a> {
        Lz {
            window: boxed(),
            head: boxed(),
            prev: boxed(),
            strstart: 0,
            block_start: 0,
            lookahead: 0,
            insert: 0,
            match_start: 0,
            prev_length: 0,
            high_water: 0,
            ins_h: 0,
            roll: cfg.chain > 1024,
            level,
            cfg,
            version,
            input,
            trees: Trees::new(crate::deflate::Flavour::Zlib, level),
            sink,
            stopped: false,
            emitted: 0,
            out_buf,
            call_start: 0,
            cap: out_buf.size(0),
            grown: 0,
        }
    }

    /// The hash of the string at `str` and the table it goes in: the
    /// multiplicative hash of 4 bytes, or level 9's rolling one.
    #[inline]
    fn hash(&mut self, str: usize) -> usize {
        if self.roll {
            self.ins_h = ((self.ins_h << 5) ^ u32::from(self.window[str + 2])) & ROLL_MASK;
            return self.ins_h as usize;
        }
        let val = load32(&self.window[..], str);
        (val.wrapping_mul(2_654_435_761) >> 16) as usize & (HASH_SIZE - 1)
    }

    /// Inserts the string at `str`; returns the chain's previous head
    /// (`quick_insert_string`).
    #[inline]
    pub(super) fn quick_insert(&mut self, str: usize) -> usize {
        let h = self.hash(str);
        let head = self.head[h];
        if usize::from(head) != str {
            self.prev[str & WMASK] = head;
            self.head[h] = str as u16;
        }
        usize::from(head)
    }

    /// Inserts the `count` strings from `str` (`insert_string`).
    pub(super) fn insert_strings(&mut self, str: usize, count: usize) {
        for idx in str..str + count {
            self.quick_insert(idx);
        }
    }

    /// The rolling hash's value at `str` (`update_hash` of two bytes).
    pub(super) fn roll_hash(&self, h: u32, c: u8) -> u32 {
        ((h << 5) ^ u32::from(c)) & ROLL_MASK
    }

    fn slide_hash(&mut self) {
        // Two loops (one over a chain of both does not vectorise).
        for p in self.head.iter_mut() {
            *p = p.saturating_sub(WSIZE as u16);
        }
        for p in self.prev.iter_mut() {
            *p = p.saturating_sub(WSIZE as u16);
        }
    }

    /// Slides the window when needed and reads input (`fill_window`).
    pub(super) fn fill_window(&mut self) {
        loop {
            let mut more = WINDOW_SIZE - self.lookahead - self.strstart;
            if self.strstart >= WSIZE + MAX_DIST {
                self.window.copy_within(WSIZE..WINDOW_SIZE, 0);
                if self.match_start >= WSIZE {
                    self.match_start -= WSIZE;
                } else {
                    self.match_start = 0;
                    self.prev_length = 0;
                }
                self.strstart -= WSIZE;
                self.block_start -= WSIZE as i64;
                self.insert = self.insert.min(self.strstart);
                self.slide_hash();
                more += WSIZE;
            }
            if !self.input.avail() {
                break;
            }
            let at = self.strstart + self.lookahead;
            let n = self.input.read(&mut self.window[at..at + more]);
            self.lookahead += n;
            if self.lookahead + self.insert >= 3 {
                let str = self.strstart - self.insert;
                if self.roll {
                    self.ins_h = self.roll_hash(u32::from(self.window[str]), self.window[str + 1]);
                } else if str >= 1 {
                    self.quick_insert(str - 1);
                }
                let mut count = self.insert;
                if self.lookahead == 1 {
                    count -= 1;
                }
                if count > 0 {
                    self.insert_strings(str, count);
                    self.insert -= count;
                }
            }
            if self.lookahead >= MIN_LOOKAHEAD || !self.input.avail() {
                break;
            }
        }
        let curr = self.strstart + self.lookahead;
        if self.high_water < WINDOW_SIZE {
            if self.high_water < curr {
                let init = (WINDOW_SIZE - curr).min(WIN_INIT);
                self.window[curr..curr + init].fill(0);
                self.high_water = curr + init;
            } else if self.high_water < curr + WIN_INIT {
                let init = (curr + WIN_INIT - self.high_water).min(WINDOW_SIZE - self.high_water);
                self.window[self.high_water..self.high_water + init].fill(0);
                self.high_water += init;
            }
        }
    }

    /// How many of the 256 bytes after `a` and `b` agree (`compare256`).
    #[inline]
    pub(super) fn compare256(&self, a: usize, b: usize) -> usize {
        compare256(&self.window[..], a, b)
    }

    /// Where both match searches start: the length to beat (the previous
    /// match's, or 2), the chain steps (a quarter past a good match), and
    /// the length that ends the search (2.3 stops at a match reaching the
    /// input's end, earlier versions only past it).
    #[inline]
    fn search_start(&self) -> (usize, u32, usize) {
        let best = if self.prev_length > 0 {
            self.prev_length
        } else {
            2
        };
        let mut chain = self.cfg.chain;
        if best >= self.cfg.good {
            chain >>= 2;
        }
        let end = match self.version {
            Version::V2_3 => self.lookahead,
            _ => self.lookahead + 1,
        };
        (best, chain, end)
    }

    /// `longest_match`: the longest match from the chain at `cur`, longer
    /// than `prev_length` (or 2); sets `match_start`.
    pub(super) fn longest_match(&mut self, mut cur: usize) -> usize {
        let strstart = self.strstart;
        let (mut best, mut chain, end) = self.search_start();
        let limit = strstart.saturating_sub(MAX_DIST);
        let early_exit = self.level < 5;
        let nice = self.cfg.nice;
        let w = &self.window[..];
        let prev = &*self.prev;
        let mut quick = Quick::new(w, strstart, best);
        let mut found = None;
        while cur < strstart {
            if quick.passes(w, cur) {
                let len = compare256(w, strstart + 2, cur + 2) + 2;
                if len > best {
                    found = Some(cur);
                    if len >= end {
                        best = self.lookahead;
                        break;
                    }
                    best = len;
                    if best >= nice {
                        break;
                    }
                    quick = Quick::new(w, strstart, best);
                } else if early_exit {
                    break;
                }
            }
            chain -= 1;
            if chain == 0 {
                break;
            }
            cur = usize::from(prev[cur & WMASK]);
            if cur <= limit {
                break;
            }
        }
        if let Some(at) = found {
            self.match_start = at;
        }
        best
    }

    /// `longest_match_slow` (level 9, with the rolling hash): as
    /// [`Lz::longest_match`], but it walks the chain of whichever string of
    /// the current best match has the most distant predecessor, and after
    /// each longer match moves to such a chain again (`match_offset`: the
    /// chain is the one of the string that far after `strstart`).
    pub(super) fn longest_match_slow(&mut self, mut cur: usize) -> usize {
        let strstart = self.strstart;
        let lookahead = self.lookahead;
        let (mut best, mut chain, end) = self.search_start();
        let nice = self.cfg.nice;
        let roll = |h: u32, c: u8| ((h << 5) ^ u32::from(c)) & ROLL_MASK;
        let limit_base = strstart.saturating_sub(MAX_DIST);
        let mut limit = limit_base;
        let mut match_offset = 0usize;
        let w = &self.window[..];
        let prev = &*self.prev;
        let head = &*self.head;
        let mut found = None;
        // `Err`: zlib-ng's `break_matching` (the best so far, at most the
        // look-ahead); `Ok`: a plain return.
        let result: Result<usize, ()> = 'search: {
            if best >= 3 {
                // Continuing a lazy search: start on the most distant chain
                // of the strings of the previous match.
                let mut hash = roll(roll(0, w[strstart + 1]), w[strstart + 2]);
                for i in 3..=best {
                    hash = roll(hash, w[strstart + i]);
                    let pos = usize::from(head[hash as usize]);
                    if pos < cur {
                        match_offset = i - 2;
                        cur = pos;
                    }
                }
                limit = limit_base + match_offset;
                if cur <= limit {
                    break 'search Err(());
                }
            }
            let mut quick = Quick::new(w, strstart, best);
            loop {
                if cur >= strstart {
                    break 'search Ok(best);
                }
                let cand = cur - match_offset;
                if quick.passes(w, cand) {
                    let len = compare256(w, strstart + 2, cand + 2) + 2;
                    if len > best {
                        found = Some(cand);
                        if len >= end {
                            break 'search Ok(lookahead);
                        }
                        best = len;
                        if best >= nice {
                            break 'search Ok(best);
                        }
                        quick = Quick::new(w, strstart, best);
                        if len > 3 && cand + len < strstart {
                            // Look for a better string offset.
                            let Some(at) = self.farthest_chain(cand, len, limit_base) else {
                                break 'search Err(());
                            };
                            (cur, match_offset) = at;
                            limit = limit_base + match_offset;
                            continue;
                        }
                    }
                }
                chain -= 1;
                if chain == 0 {
                    break 'search Ok(best);
                }
                cur = usize::from(prev[cur & WMASK]);
                if cur <= limit {
                    break 'search Ok(best);
                }
            }
        };
        if let Some(at) = found {
            self.match_start = at;
        }
        match result {
            Ok(len) => len,
            Err(()) => best.min(lookahead),
        }
    }

    /// `longest_match_slow`'s move after a longer match at `start` of
    /// `len` bytes: the most distant chain of the strings in it, or of the
    /// string 4 bytes before its end, as (chain position, its offset in
    /// the match); `None` where that string's predecessor is out of reach
    /// (`break_matching`).
    fn farthest_chain(
        &self,
        start: usize,
        len: usize,
        limit_base: usize,
    ) -> Option<(usize, usize)> {
        let (w, prev, head) = (&self.window[..], &*self.prev, &*self.head);
        let mut match_offset = 0;
        let mut next_pos = start;
        for i in 0..=len - 3 {
            let pos = usize::from(prev[(start + i) & WMASK]);
            if pos < next_pos {
                if pos <= limit_base + i {
                    return None;
                }
                next_pos = pos;
                match_offset = i;
            }
        }
        let mut cur = next_pos;
        let e = self.strstart + len - 4;
        let hash = [w[e], w[e + 1], w[e + 2]]
            .into_iter()
            .fold(0, |h, c| self.roll_hash(h, c));
        let pos = usize::from(head[hash as usize]);
        if pos < cur {
            match_offset = len - 4;
            if pos <= limit_base + match_offset {
                return None;
            }
            cur = pos;
        }
        Some((cur, match_offset))
    }

    /// Ends the current block (`FLUSH_BLOCK_ONLY`).
    pub(super) fn flush_block(&mut self, last: bool) {
        let len = (self.strstart as i64 - self.block_start) as u64;
        let stored = usize::try_from(self.block_start)
            .ok()
            .map(|b| &self.window[b..self.strstart]);
        self.trees.flush_block(stored, len, last);
        self.block_start = self.strstart as i64;
        self.emit();
    }

    /// The output of the current call so far, in whole bytes.
    fn made(&self) -> u64 {
        self.trees.bits.position(self.emitted).0 / 8 - self.call_start
    }

    /// Starts a call of the caller's (a new output buffer).
    pub(super) fn start_call(&mut self) {
        self.call_start += self.made();
        self.grown = 0;
        self.cap = self.out_buf.size(0);
    }

    /// Whether the output buffer is full after a block's end (`deflate()`
    /// returns; the caller grows the buffer and calls again).
    pub(super) fn out_full(&self) -> bool {
        self.made() >= self.cap
    }

    /// Grows the output buffer as the caller does until it has room.
    pub(super) fn grow(&mut self) {
        while self.made() >= self.cap {
            self.grown += 1;
            self.cap = self.out_buf.size(self.grown);
        }
    }

    /// Hands the whole bytes written so far to the sink.
    pub(super) fn emit(&mut self) {
        self.emitted += self.trees.bits.out.len() as u64;
        if !self.stopped && !(self.sink)(&self.trees.bits.out) {
            self.stopped = true;
        }
        self.trees.bits.out.clear();
    }

    /// Tallies a literal; true when the block is full.
    #[inline]
    pub(super) fn tally_lit(&mut self, c: u8) -> bool {
        self.trees.tally_lit(c, self.strstart, self.block_start)
    }

    /// Tallies a match; true when the block is full.
    #[inline]
    pub(super) fn tally_match(&mut self, dist: usize, len: usize) -> bool {
        self.trees
            .tally_match(dist, len - 3, self.strstart, self.block_start)
    }
}
