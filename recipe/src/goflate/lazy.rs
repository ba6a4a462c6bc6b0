//! Go's matcher for levels 2 to 9 (`compressor.deflate` and `findMatch` in
//! `deflate.go`): a 64 KiB window slid by 32 KiB, hash chains over 4-byte
//! big-endian hashes (17 bits), matches of at least 4 bytes (4 only within
//! 4096 bytes), greedy at levels 2 and 3 (long matches not hashed) and lazy
//! at 4 to 9, blocks of 16,384 tokens.

use super::huffman::{BlockWriter, MATCH};

const WINDOW: isize = 1 << 15;
const WINDOW_MASK: isize = WINDOW - 1;
const MIN_MATCH: isize = 4;
const MAX_MATCH: isize = 258;
const HASH_BITS: u32 = 17;
const HASH_SIZE: usize = 1 << HASH_BITS;
const MAX_HASH_OFFSET: isize = 1 << 24;
const MAX_BLOCK_TOKENS: usize = 1 << 14;
const SKIP_NEVER: isize = i32::MAX as isize;
/// Go's `math.MaxInt32` for "the block's start has left the window".
const GONE: isize = i32::MAX as isize;

/// (good, lazy, nice, chain, fastSkipHashing) of levels 2 to 9.
const LEVELS: [(isize, isize, isize, isize, isize); 8] = [
    (4, 0, 16, 8, 5),
    (4, 0, 32, 32, 6),
    (4, 4, 16, 16, SKIP_NEVER),
    (8, 16, 32, 32, SKIP_NEVER),
    (8, 16, 128, 128, SKIP_NEVER),
    (8, 32, 128, 256, SKIP_NEVER),
    (32, 128, 258, 1024, SKIP_NEVER),
    (32, 258, 258, 4096, SKIP_NEVER),
];

/// Go's hash of the 4 bytes at `b` (big-endian, 17 bits).
#[inline]
fn hash4(b: &[u8]) -> usize {
    let v = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (v.wrapping_mul(0x1e35_a7bd) >> (32 - HASH_BITS)) as usize
}

/// How many of the first `max` bytes of `a` and `b` are equal.
#[inline]
fn match_len(a: &[u8], b: &[u8], max: usize) -> usize {
    let (a, b) = (&a[..max], &b[..max]);
    let mut n = 0;
    while n + 8 <= max {
        let x = u64::from_le_bytes(a[n..n + 8].try_into().unwrap_or_default())
            ^ u64::from_le_bytes(b[n..n + 8].try_into().unwrap_or_default());
        if x != 0 {
            return n + (x.trailing_zeros() / 8) as usize;
        }
        n += 8;
    }
    while n < max && a[n] == b[n] {
        n += 1;
    }
    n
}

/// The state of Go's `compressor` at levels 2 to 9.
pub(super) struct Lazy {
    good: isize,
    lazy: isize,
    nice: isize,
    chain: isize,
    fast_skip: isize,
    window: Vec<u8>,
    window_end: isize,
    index: isize,
    block_start: isize,
    byte_available: bool,
    hash_head: Vec<u32>,
    hash_prev: Vec<u32>,
    hash_offset: isize,
    chain_head: isize,
    tokens: Vec<u32>,
    length: isize,
    offset: isize,
    max_insert_index: isize,
    /// Plain offset of window position 0 (32 KiB more at every slide).
    base: u64,
    /// The first block boundary at or past this plain offset stops
    /// [`Lazy::step`] (a piece of a cut stream ends there).
    stop_at: u64,
    /// The boundary it stopped at, once it has.
    pub(super) stopped: Option<Mark>,
    /// Every block boundary, when they are wanted (the tests' cuts).
    pub(super) marks: Option<Vec<Mark>>,
}

/// A block boundary of the lazy matcher, and its state there.
#[derive(Clone, Copy, Debug)]
pub(super) struct Mark {
    /// Plain offset of the next block's first byte.
    pub(super) plain: u64,
    /// Where that is in the window (Go's `d.index`).
    pub(super) window: u32,
    /// Whether the block ended on a match (nothing pending: the state is
    /// the window's plain bytes, their position and the writer's bits).
    pub(super) clean: bool,
    /// The writer's whole bytes not yet handed over, and its pending bits
    /// (`nbits`, and the `nbits % 8` of them past its whole bytes).
    pub(super) out_len: usize,
    pub(super) nbits: u32,
    pub(super) partial: u8,
}

impl Lazy {
    pub(super) fn new(level: u8) -> Lazy {
        let (good, lazy, nice, chain, fast_skip) = LEVELS[usize::from(level.clamp(2, 9)) - 2];
        Lazy {
            good,
            lazy,
            nice,
            chain,
            fast_skip,
            window: vec![0; 2 * WINDOW as usize],
            window_end: 0,
            index: 0,
            block_start: 0,
            byte_available: false,
            hash_head: vec![0; HASH_SIZE],
            hash_prev: vec![0; WINDOW as usize],
            hash_offset: 1,
            chain_head: -1,
            tokens: Vec::with_capacity(MAX_BLOCK_TOKENS + 1),
            length: MIN_MATCH - 1,
            offset: 0,
            max_insert_index: 0,
            base: 0,
            stop_at: u64::MAX,
            stopped: None,
            marks: None,
        }
    }

    /// The matcher of `level` (4 to 9: lazy matching, every position
    /// hashed) resumed at a block boundary that ended on a match, at plain
    /// offset `plain` and window position `window`: `before` is the plain
    /// bytes before it (at least the 32 KiB its window reaches back, or
    /// all of them), `ahead` the bytes from it on (what fits of them is
    /// put in the window; the caller [`Lazy::fill`]s the rest). Every
    /// position of `before` within the window is in the hash chains, as
    /// the whole stream's matcher had them (Go hashes every position at
    /// these levels, so its chains are those of the window's bytes); the
    /// block starts there, nothing is pending. It stops at the first block
    /// boundary at or past `stop_at`. Gives how many bytes of `ahead` it
    /// took (as many as fit: the caller steps it before it fills more).
    pub(super) fn resume(
        level: u8,
        before: &[u8],
        ahead: &[u8],
        (plain, window): (u64, u32),
        stop_at: u64,
    ) -> (Lazy, usize) {
        let mut m = Lazy::new(level);
        m.stop_at = stop_at;
        let p = (window as usize).min(2 * WINDOW as usize - 1);
        let kept = before.len().min(p).min(WINDOW as usize);
        m.window[p - kept..p].copy_from_slice(&before[before.len() - kept..]);
        m.index = p as isize;
        m.block_start = p as isize;
        m.base = plain.saturating_sub(p as u64);
        // The window as the boundary found it: filled (no slide here: the
        // whole stream's matcher goes on stepping at the boundary, and
        // slides only once fewer than 262 bytes are ahead).
        let took = ahead.len().min(m.window.len() - p);
        m.window[p..p + took].copy_from_slice(&ahead[..took]);
        m.window_end = (p + took) as isize;
        let stop = (p as isize).min(m.window_end - (MIN_MATCH - 1));
        for i in (p - kept) as isize..stop {
            m.insert(i);
        }
        (m, took)
    }

    /// A matcher at the stream's start that stops at the first block
    /// boundary at or past `stop_at`, or records every boundary (`marks`).
    pub(super) fn stopping(level: u8, stop_at: u64, marks: bool) -> Lazy {
        let mut m = Lazy::new(level);
        m.stop_at = stop_at;
        m.marks = marks.then(Vec::new);
        m
    }

    /// Whether the window is full (Go's `fill` would copy nothing).
    pub(super) fn full(&self) -> bool {
        self.window_end == 2 * WINDOW
    }

    /// Go's `fillDeflate`: slides the window by 32 KiB when the position
    /// has passed 64 KiB - 262, then copies what fits of `b`; returns how
    /// much it took.
    pub(super) fn fill(&mut self, b: &[u8]) -> usize {
        if self.index >= 2 * WINDOW - (MIN_MATCH + MAX_MATCH) {
            let w = WINDOW as usize;
            self.window.copy_within(w..2 * w, 0);
            self.index -= WINDOW;
            self.window_end -= WINDOW;
            self.base += WINDOW as u64;
            if self.block_start >= WINDOW {
                self.block_start -= WINDOW;
            } else {
                self.block_start = GONE;
            }
            self.hash_offset += WINDOW;
            if self.hash_offset > MAX_HASH_OFFSET {
                let delta = self.hash_offset - 1;
                self.hash_offset -= delta;
                self.chain_head -= delta;
                for v in self.hash_prev.iter_mut().chain(self.hash_head.iter_mut()) {
                    *v = if *v as isize > delta {
                        (*v as isize - delta) as u32
                    } else {
                        0
                    };
                }
            }
        }
        let end = self.window_end as usize;
        let n = b.len().min(self.window.len() - end);
        self.window[end..end + n].copy_from_slice(&b[..n]);
        self.window_end += n as isize;
        n
    }

    /// Go's `writeBlock` of the compressor: the tokens as a block ending at
    /// window position `index`, with its plain bytes when they are still in
    /// the window.
    /// Gives whether it is where the matcher stops (`stop_at`); `clean`:
    /// the block ends on a match, with nothing pending.
    fn write_block(&mut self, w: &mut BlockWriter, index: isize, clean: bool) -> bool {
        if index > 0 {
            let input = (self.block_start <= index)
                .then(|| &self.window[self.block_start as usize..index as usize]);
            self.block_start = index;
            w.write_block(&mut self.tokens, input);
        }
        self.tokens.clear();
        let plain = self.base + index as u64;
        if plain < self.stop_at && self.marks.is_none() {
            return false;
        }
        let (out_len, nbits, partial) = w.position();
        let mark = Mark {
            plain,
            window: index as u32,
            clean,
            out_len,
            nbits,
            partial,
        };
        if let Some(marks) = &mut self.marks {
            marks.push(mark);
        }
        if plain >= self.stop_at {
            self.stopped = Some(mark);
            return true;
        }
        false
    }

    /// Go's `findMatch` (the previous length is always 3 there): the
    /// longest match at `pos` along the chain from `prev_head`.
    fn find_match(&self, pos: isize, prev_head: isize, lookahead: isize) -> Option<(isize, isize)> {
        let win = &self.window;
        let min_look = MAX_MATCH.min(lookahead);
        let nice = min_look.min(self.nice);
        let mut tries = self.chain;
        let mut length = MIN_MATCH - 1;
        if length >= self.good {
            tries >>= 2;
        }
        let mut found = None;
        let mut w_end = win[(pos + length) as usize];
        let min_index = pos - WINDOW;
        let mut i = prev_head;
        let here = &win[pos as usize..(pos + min_look) as usize];
        while tries > 0 {
            if w_end == win[(i + length) as usize] {
                let n = match_len(&win[i as usize..], here, min_look as usize) as isize;
                if n > length && (n > MIN_MATCH || pos - i <= 4096) {
                    length = n;
                    found = Some((n, pos - i));
                    if n >= nice {
                        break;
                    }
                    w_end = win[(pos + n) as usize];
                }
            }
            if i == min_index {
                break;
            }
            i = self.hash_prev[(i & WINDOW_MASK) as usize] as isize - self.hash_offset;
            if i < min_index || i < 0 {
                break;
            }
            tries -= 1;
        }
        found
    }

    /// Inserts position `index` into the hash chains.
    #[inline]
    fn insert(&mut self, index: isize) {
        let h = hash4(&self.window[index as usize..]);
        self.hash_prev[(index & WINDOW_MASK) as usize] = self.hash_head[h];
        self.hash_head[h] = (index + self.hash_offset) as u32;
    }

    /// Go's `deflate` step: matches while at least 262 bytes are ahead (all
    /// of the window with `sync`, then the last block), writing a block at
    /// every 16,384 tokens.
    pub(super) fn step(&mut self, sync: bool, w: &mut BlockWriter) {
        if self.stopped.is_some() {
            return;
        }
        if self.window_end - self.index < MIN_MATCH + MAX_MATCH && !sync {
            return;
        }
        let fast = self.fast_skip != SKIP_NEVER;
        self.max_insert_index = self.window_end - (MIN_MATCH - 1);
        loop {
            let lookahead = self.window_end - self.index;
            if lookahead < MIN_MATCH + MAX_MATCH {
                if !sync {
                    break;
                }
                if lookahead == 0 {
                    if self.byte_available {
                        let b = self.window[self.index as usize - 1];
                        self.tokens.push(u32::from(b));
                        self.byte_available = false;
                    }
                    if !self.tokens.is_empty() {
                        self.write_block(w, self.index, false);
                    }
                    break;
                }
            }
            let index = self.index;
            if index < self.max_insert_index {
                let h = hash4(&self.window[index as usize..]);
                self.chain_head = self.hash_head[h] as isize;
                self.hash_prev[(index & WINDOW_MASK) as usize] = self.chain_head as u32;
                self.hash_head[h] = (index + self.hash_offset) as u32;
            }
            let prev_length = self.length;
            let prev_offset = self.offset;
            self.length = MIN_MATCH - 1;
            self.offset = 0;
            let min_index = (index - WINDOW).max(0);
            let head = self.chain_head - self.hash_offset;
            if head >= min_index
                && (fast && lookahead > MIN_MATCH - 1
                    || !fast && lookahead > prev_length && prev_length < self.lazy)
            {
                if let Some((l, o)) = self.find_match(index, head, lookahead) {
                    self.length = l;
                    self.offset = o;
                }
            }
            if fast && self.length >= MIN_MATCH
                || !fast && prev_length >= MIN_MATCH && self.length <= prev_length
            {
                let (l, o) = if fast {
                    (self.length, self.offset)
                } else {
                    (prev_length, prev_offset)
                };
                self.tokens
                    .push(MATCH | ((l - 3) as u32) << 22 | (o - 1) as u32);
                if self.length <= self.fast_skip {
                    let new_index = if fast {
                        index + self.length
                    } else {
                        index + prev_length - 1
                    };
                    let stop = new_index.min(self.max_insert_index);
                    for i in index + 1..stop {
                        self.insert(i);
                    }
                    self.index = new_index;
                    if !fast {
                        self.byte_available = false;
                        self.length = MIN_MATCH - 1;
                    }
                } else {
                    self.index += self.length;
                }
                if self.tokens.len() == MAX_BLOCK_TOKENS && self.write_block(w, self.index, !fast) {
                    return;
                }
            } else {
                if fast || self.byte_available {
                    let i = if fast { index } else { index - 1 };
                    self.tokens.push(u32::from(self.window[i as usize]));
                    if self.tokens.len() == MAX_BLOCK_TOKENS && self.write_block(w, i + 1, false) {
                        self.index += 1;
                        if !fast {
                            self.byte_available = true;
                        }
                        return;
                    }
                }
                self.index += 1;
                if !fast {
                    self.byte_available = true;
                }
            }
        }
    }
}
