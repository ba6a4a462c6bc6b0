//! klauspost's levels 7 to 9 (`deflate.go`'s `deflateLazy`, `findMatch`,
//! `fillDeflate`, `fillWindow`): hash chains of 4-byte hashes (17 bits) in
//! a 64 KiB window slid by 32 KiB, lazy matching with a second look at the
//! end of the previous match, a skip ahead after long runs of literals, and
//! at level 9 (chain over 100) matches weighed by the bits a Huffman code
//! of the window's remaining bytes would spend on them. Blocks of 32,768
//! tokens go to `writer.rs`'s `write_block_dynamic` (tables reused across
//! blocks). klauspost 1.16.0 on (`v116`, `v1182`) weigh matches and look
//! at a match's end otherwise (see [`super::release`]).

use super::tokens::Tokens;
use super::writer::BitWriter;
use crate::goflate::huffman::{Encoder, LENGTH_CODES, LENGTH_EXTRA, OFFSET_CODES, OFFSET_EXTRA};

const WINDOW: usize = 1 << 15;
const MASK: usize = WINDOW - 1;
const MIN_MATCH: i64 = 4;
const MAX_MATCH: i64 = 258;
const HASH_BITS: u32 = 17;
const MAX_HASH_OFFSET: i64 = 1 << 28;
const MAX_BLOCK_TOKENS: usize = 1 << 15;
/// `blockStart` once its bytes left the window (Go's `math.MaxInt32`).
const GONE: i64 = i32::MAX as i64;

/// (good, lazy, nice, chain) of levels 7, 8 and 9.
const LEVELS: [(i64, i64, i64, i64); 3] = [(8, 12, 16, 24), (16, 30, 40, 64), (32, 258, 258, 1024)];

/// klauspost's `offsetCode` of a *distance* (as `findMatch` calls it, one
/// more than the token's): 32,768 wraps to code 14, as Go's `uint8` does.
fn offset_code(off: i64) -> usize {
    if off < 256 {
        usize::from(OFFSET_CODES[off as usize])
    } else {
        usize::from(OFFSET_CODES[usize::from((off >> 7) as u8)]) + 14
    }
}

#[inline]
fn hash4(b: &[u8]) -> usize {
    let u = u32::from_le_bytes(b[..4].try_into().expect("4 bytes"));
    (u.wrapping_mul(2_654_435_761) >> (32 - HASH_BITS)) as usize
}

/// Go's `compressor` state of levels 7 to 9.
pub(super) struct Lazy {
    lazy: i64,
    nice: i64,
    chain: i64,
    window: Vec<u8>,
    window_end: usize,
    block_start: i64,
    index: i64,
    hash_offset: i64,
    length: i64,
    offset: i64,
    max_insert: i64,
    chain_head: i64,
    ii: u16,
    byte_available: bool,
    head: Vec<u32>,
    prev: Vec<u32>,
    /// Level 9's code of the window's remaining bytes (`d.h`).
    h: Option<Encoder>,
    /// klauspost 1.16.0 on (#739): matches weighed from a gain of 4 at a
    /// base cost of 3 (not 0 and 6), and the look at the previous match's
    /// end hashes its last 4 bytes and extends the match back up to 2
    /// bytes, emitting the bytes it does not cover as literals.
    pub(super) v116: bool,
    /// klauspost 1.18.2 on (#1115): level 9's code is made from at most
    /// 32,768 of the window's remaining bytes.
    pub(super) v1182: bool,
}

impl Lazy {
    pub(super) fn new(level: u8) -> Lazy {
        let (_good, lazy, nice, chain) = LEVELS[usize::from(level.clamp(7, 9) - 7)];
        Lazy {
            lazy,
            nice,
            chain,
            window: vec![0; 2 * WINDOW],
            window_end: 0,
            block_start: 0,
            index: 0,
            hash_offset: 1,
            length: MIN_MATCH - 1,
            offset: 0,
            max_insert: 0,
            chain_head: -1,
            ii: 0,
            byte_available: false,
            head: vec![0; 1 << HASH_BITS],
            prev: vec![0; WINDOW],
            h: None,
            v116: false,
            v1182: false,
        }
    }

    pub(super) fn full(&self) -> bool {
        self.window_end == self.window.len()
    }

    /// Go's `fillWindow` after a reset: `dict` (its last 32 KiB) as window,
    /// every position hashed. `blockStart` stays 0, as in Go.
    pub(super) fn fill_window(&mut self, dict: &[u8]) {
        let b = &dict[dict.len().saturating_sub(WINDOW)..];
        let n = b.len();
        self.window[self.window_end..self.window_end + n].copy_from_slice(b);
        for di in 0..n.saturating_sub(3) {
            self.insert(di as i64);
        }
        self.window_end += n;
        self.index = n as i64;
    }

    /// Go's `fillDeflate`.
    pub(super) fn fill(&mut self, b: &[u8]) -> usize {
        if self.index >= 2 * WINDOW as i64 - (MIN_MATCH + MAX_MATCH) {
            self.window.copy_within(WINDOW.., 0);
            self.index -= WINDOW as i64;
            self.window_end -= WINDOW;
            if self.block_start >= WINDOW as i64 {
                self.block_start -= WINDOW as i64;
            } else {
                self.block_start = GONE;
            }
            self.hash_offset += WINDOW as i64;
            if self.hash_offset > MAX_HASH_OFFSET {
                let delta = self.hash_offset - 1;
                self.hash_offset -= delta;
                self.chain_head -= delta;
                for v in self.prev.iter_mut().chain(self.head.iter_mut()) {
                    *v = if i64::from(*v) > delta {
                        (i64::from(*v) - delta) as u32
                    } else {
                        0
                    };
                }
            }
        }
        let n = b.len().min(self.window.len() - self.window_end);
        self.window[self.window_end..self.window_end + n].copy_from_slice(&b[..n]);
        self.window_end += n;
        n
    }

    /// Puts position `i` at the head of its hash chain.
    #[inline]
    fn insert(&mut self, i: i64) {
        let h = hash4(&self.window[i as usize..]);
        self.prev[i as usize & MASK] = self.head[h];
        self.head[h] = (i + self.hash_offset) as u32;
    }

    /// Go's `writeBlock` of the compressor: the tokens up to `index`.
    fn write_block(&mut self, w: &mut BitWriter, tokens: &mut Tokens, sync: bool) {
        let index = self.index;
        if index > 0 {
            let input = (self.block_start <= index)
                .then(|| &self.window[self.block_start as usize..index as usize]);
            self.block_start = index;
            w.write_block_dynamic(tokens, false, input, sync);
        }
        tokens.reset();
    }

    /// Go's `findMatch`: a match at `pos` longer than 3 among the chain from
    /// `prev_head`, as (length, distance).
    fn find_match(&self, pos: i64, prev_head: i64, lookahead: i64) -> Option<(i64, i64)> {
        let look = MAX_MATCH.min(lookahead);
        let win = &self.window[..(pos + look) as usize];
        let nice = (win.len() as i64 - pos).min(self.nice);
        let mut tries = self.chain;
        let mut length = MIN_MATCH - 1;
        let w_pos = &win[pos as usize..];
        let mut w_end = win[(pos + length) as usize];
        let min_index = (pos - WINDOW as i64).max(0);
        let mut found = None;
        let (mut gain, base_cost) = if self.v116 { (4, 3) } else { (0, 6) };
        let mut i = prev_head;
        while tries > 0 {
            if w_end == win[(i + length) as usize] {
                let a = &win[i as usize..(i + look) as usize];
                let n = super::fast::match_len(a, w_pos) as i64;
                if n > length {
                    let better = match &self.h {
                        Some(h) if self.chain >= 100 => {
                            let raw: i64 = w_pos[..n as usize]
                                .iter()
                                .map(|&b| i64::from(h.codes[usize::from(b)].len))
                                .sum();
                            let new_gain = raw
                                - i64::from(OFFSET_EXTRA[offset_code(pos - i)])
                                - base_cost
                                - i64::from(
                                    LENGTH_EXTRA
                                        [usize::from(LENGTH_CODES[((n - 3) & 255) as usize])],
                                );
                            (new_gain > gain).then_some(new_gain)
                        }
                        _ => Some(0),
                    };
                    if let Some(g) = better {
                        gain = g;
                        length = n;
                        found = Some((n, pos - i));
                        if n >= nice {
                            break;
                        }
                        w_end = win[(pos + n) as usize];
                    }
                }
            }
            if i <= min_index {
                break;
            }
            i = i64::from(self.prev[i as usize & MASK]) - self.hash_offset;
            if i < min_index {
                break;
            }
            tries -= 1;
        }
        found
    }

    /// Go's `deflateLazy`.
    pub(super) fn step(&mut self, sync: bool, w: &mut BitWriter, tokens: &mut Tokens) {
        let end = self.window_end as i64;
        if end - self.index < MIN_MATCH + MAX_MATCH && !sync {
            return;
        }
        if end != self.index && self.chain > 100 {
            let mut tmp = [0u16; 256];
            let mut to_index = &self.window[self.index as usize..self.window_end];
            if self.v1182 {
                to_index = &to_index[..to_index.len().min(MAX_BLOCK_TOKENS)];
            }
            for &v in to_index {
                tmp[usize::from(v)] = tmp[usize::from(v)].wrapping_add(1);
            }
            let freq: Vec<i32> = tmp.iter().map(|&f| i32::from(f)).collect();
            self.h
                .get_or_insert_with(|| Encoder::new(256))
                .generate(&freq, 15);
        }
        self.max_insert = end - (MIN_MATCH - 1);
        loop {
            let lookahead = end - self.index;
            if lookahead < MIN_MATCH + MAX_MATCH {
                if !sync {
                    return;
                }
                if lookahead == 0 {
                    if self.byte_available {
                        tokens.add_literal(self.window[self.index as usize - 1]);
                        self.byte_available = false;
                    }
                    if tokens.n() > 0 {
                        self.write_block(w, tokens, sync);
                    }
                    return;
                }
            }
            self.insert_at_index();
            let mut prev_length = self.length;
            let mut prev_offset = self.offset;
            self.length = MIN_MATCH - 1;
            self.offset = 0;
            let min_index = (self.index - WINDOW as i64).max(0);
            if self.chain_head - self.hash_offset >= min_index
                && lookahead > prev_length
                && prev_length < self.lazy
            {
                if let Some((l, o)) =
                    self.find_match(self.index, self.chain_head - self.hash_offset, lookahead)
                {
                    self.length = l;
                    self.offset = o;
                }
            }
            let take = prev_length >= MIN_MATCH && self.length <= prev_length;
            if take && self.v116 {
                (prev_length, prev_offset) =
                    self.better_at_end(prev_length, prev_offset, lookahead, sync, w, tokens);
            } else if take {
                // A longer match ending where the previous one ends.
                let prev_index = self.index - 1;
                if prev_index + prev_length + 2 < self.max_insert {
                    let end_at = prev_index + lookahead.min(MAX_MATCH);
                    let idx = prev_index + prev_length - 2;
                    let h = hash4(&self.window[idx as usize..]);
                    let ch2 = i64::from(self.head[h]) - self.hash_offset - prev_length + 2;
                    if ch2 > min_index {
                        let a = &self.window[prev_index as usize..end_at as usize];
                        let length =
                            i64::from(super::fast::match_len(a, &self.window[ch2 as usize..]));
                        if length > prev_length {
                            prev_length = length;
                            prev_offset = prev_index - ch2;
                        }
                    }
                }
            }
            if take {
                tokens.add_match((prev_length - 3) as u32, (prev_offset - 1) as u32);
                let new_index = self.index + prev_length - 1;
                let stop = new_index.min(self.max_insert) + MIN_MATCH - 1;
                let start = (self.index + 1).min(self.max_insert);
                for di in start..stop - (MIN_MATCH - 1) {
                    self.insert(di);
                }
                self.index = new_index;
                self.byte_available = false;
                self.length = MIN_MATCH - 1;
                if tokens.n() == MAX_BLOCK_TOKENS {
                    self.write_block(w, tokens, sync);
                }
                self.ii = 0;
            } else {
                self.literal(end, sync, w, tokens);
            }
        }
    }

    /// 1.16.0's look for a longer match ending where the previous one
    /// (`prev_length` at distance `prev_offset`, from `index - 1`) ends:
    /// the match that the hash of its end points to, compared from 2 bytes
    /// in and extended back; the bytes before it become literals (and move
    /// `index`). Returns the match to emit.
    fn better_at_end(
        &mut self,
        mut prev_length: i64,
        mut prev_offset: i64,
        lookahead: i64,
        sync: bool,
        w: &mut BitWriter,
        tokens: &mut Tokens,
    ) -> (i64, i64) {
        const CHECK_OFF: i64 = 2;
        let min_index = (self.index - WINDOW as i64).max(0);
        let prev_index = self.index - 1;
        if prev_length >= MAX_MATCH - CHECK_OFF || prev_index + prev_length >= self.max_insert {
            return (prev_length, prev_offset);
        }
        let end = prev_index + lookahead.min(MAX_MATCH + CHECK_OFF);
        let h = hash4(&self.window[(prev_index + prev_length) as usize..]);
        let ch2 = i64::from(self.head[h]) - self.hash_offset - prev_length;
        if prev_index - ch2 == prev_offset || ch2 <= min_index + CHECK_OFF {
            return (prev_length, prev_offset);
        }
        let a = &self.window[(prev_index + CHECK_OFF) as usize..end as usize];
        let length = i64::from(super::fast::match_len(
            a,
            &self.window[(ch2 + CHECK_OFF) as usize..],
        ));
        if length <= prev_length {
            return (prev_length, prev_offset);
        }
        prev_length = length;
        prev_offset = prev_index - ch2;
        for i in (0..CHECK_OFF).rev() {
            let (x, y) = ((prev_index + i) as usize, (ch2 + i) as usize);
            if prev_length >= MAX_MATCH || self.window[x] != self.window[y] {
                // The bytes before the match, owed as literals.
                for j in 0..=i {
                    tokens.add_literal(self.window[(prev_index + j) as usize]);
                    if tokens.n() == MAX_BLOCK_TOKENS {
                        self.write_block(w, tokens, sync);
                    }
                    self.index += 1;
                    self.insert_at_index();
                }
                break;
            }
            prev_length += 1;
        }
        (prev_length, prev_offset)
    }

    /// Inserts the string at `index` into the hash chains (while it is
    /// below `max_insert`), remembering the chain it heads.
    #[inline]
    fn insert_at_index(&mut self) {
        if self.index < self.max_insert {
            let h = hash4(&self.window[self.index as usize..]);
            let ch = self.head[h];
            self.chain_head = i64::from(ch);
            self.prev[self.index as usize & MASK] = ch;
            self.head[h] = (self.index + self.hash_offset) as u32;
        }
    }

    /// The no-match step of `deflateLazy`: the pending byte as a literal
    /// (and, after long runs of literals, a few more without searching).
    fn literal(&mut self, end: i64, sync: bool, w: &mut BitWriter, tokens: &mut Tokens) {
        if self.length >= MIN_MATCH {
            self.ii = 0;
        }
        if self.byte_available {
            self.ii = self.ii.wrapping_add(1);
            tokens.add_literal(self.window[self.index as usize - 1]);
            if tokens.n() == MAX_BLOCK_TOKENS {
                self.write_block(w, tokens, sync);
            }
            self.index += 1;
            let over = i64::from(self.ii) - self.chain;
            if over > 0 {
                let n = 1 + (over >> 6);
                for _ in 0..n {
                    if self.index >= end - 1 {
                        break;
                    }
                    tokens.add_literal(self.window[self.index as usize - 1]);
                    if tokens.n() == MAX_BLOCK_TOKENS {
                        self.write_block(w, tokens, sync);
                    }
                    self.insert_at_index();
                    self.index += 1;
                }
                tokens.add_literal(self.window[self.index as usize - 1]);
                self.byte_available = false;
                if tokens.n() == MAX_BLOCK_TOKENS {
                    self.write_block(w, tokens, sync);
                }
            }
        } else {
            self.index += 1;
            self.byte_available = true;
        }
    }
}
