//! klauspost's matchers of levels 1 to 6 (`fast_encoder.go`,
//! `level1.go` to `level6.go`): each encodes one block of at most 65,535
//! bytes at a time, finding matches in the block and in the 32 KiB of
//! history before it (`hist`), by hash tables of 4- to 7-byte prefixes
//! that are not cleared between blocks (positions are offset by `cur`).
//! This file has the shared state and levels 1 to 3; `better.rs` has 4 to 6.

use super::tokens::Tokens;

/// The largest match distance.
pub(super) const MAX_OFFSET: i32 = 1 << 15;
/// The history kept (Go's `allocHistory`): five blocks.
const ALLOC_HISTORY: usize = super::MAX_STORE * 5;
/// When `cur` is this large the tables are shifted down (Go's
/// `bufferReset`).
const BUFFER_RESET: i32 = i32::MAX - ALLOC_HISTORY as i32 - super::MAX_STORE as i32;
/// Bytes at the end of a block not searched for matches.
pub(super) const INPUT_MARGIN: i32 = 12 - 1;
/// Shorter blocks are not matched at all.
const MIN_NON_LITERAL_BLOCK: usize = 1 + 1 + INPUT_MARGIN as usize;

const PRIME4: u32 = 2_654_435_761;
const PRIME5: u64 = 889_523_592_379;
const PRIME7: u64 = 58_295_818_150_454_627;

#[inline]
pub(super) fn load32(b: &[u8], i: i32) -> u32 {
    let i = i as usize;
    u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"))
}

#[inline]
pub(super) fn load64(b: &[u8], i: i32) -> u64 {
    let i = i as usize;
    u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"))
}

/// Go's `hashLen` of the low 4 bytes, `bits` wide.
#[inline]
pub(super) fn hash4(u: u64, bits: u32) -> usize {
    ((u as u32).wrapping_mul(PRIME4) >> (32 - bits)) as usize
}

/// Go's `hashLen` of the low 5 bytes.
#[inline]
fn hash5(u: u64, bits: u32) -> usize {
    ((u << 24).wrapping_mul(PRIME5) >> (64 - bits)) as usize
}

/// Go's `hash7`.
#[inline]
pub(super) fn hash7(u: u64, bits: u32) -> usize {
    ((u << 8).wrapping_mul(PRIME7) >> (64 - bits)) as usize
}

/// Go's `matchLen`: how many leading bytes of `a` equal `b`'s.
#[inline]
pub(super) fn match_len(a: &[u8], b: &[u8]) -> i32 {
    let mut n = 0usize;
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        let diff = u64::from_le_bytes(x.try_into().expect("8"))
            ^ u64::from_le_bytes(y.try_into().expect("8"));
        if diff != 0 {
            return (n + (diff.trailing_zeros() as usize >> 3)) as i32;
        }
        n += 8;
    }
    (n + a[n..]
        .iter()
        .zip(&b[n..])
        .take_while(|(x, y)| x == y)
        .count()) as i32
}

/// Go's `fastGen.matchlen`: at most 254 bytes from `s` against `t`.
#[inline]
pub(super) fn match_short(s: i32, t: i32, src: &[u8]) -> i32 {
    let end = (s as usize + 258 - 4).min(src.len());
    match_len(&src[s as usize..end], &src[t as usize..])
}

/// Go's `fastGen.matchlenLong`.
#[inline]
pub(super) fn match_long(s: i32, t: i32, src: &[u8]) -> i32 {
    match_len(&src[s as usize..], &src[t as usize..])
}

/// The hash tables of a level (positions plus `cur`; 0 is empty).
pub(super) struct Tables {
    /// The short table (levels 1, 2, 4 to 6).
    pub(super) table: Vec<i32>,
    /// The long table's newest entries (level 3's only table; 4 to 6).
    pub(super) long: Vec<i32>,
    /// The long table's previous entries (levels 3, 5 and 6).
    pub(super) prev: Vec<i32>,
}

/// One level's matcher (Go's `fastGen` and `fastEncL1`..`fastEncL6`).
pub(super) struct Fast {
    level: u8,
    /// Level 4 as klauspost 1.18.0 to 1.19.1 write it (see
    /// [`super::better::level4`]).
    pub(super) l4_118: bool,
    hist: Vec<u8>,
    cur: i32,
    t: Tables,
}

/// Emits `src[from..to]` as literals.
#[inline]
pub(super) fn literals(dst: &mut Tokens, src: &[u8], from: i32, to: i32) {
    if from < to {
        dst.add_literals(&src[from as usize..to as usize]);
    }
}

/// The literals after the last match, unless the block made no token.
pub(super) fn remainder(dst: &mut Tokens, src: &[u8], next_emit: i32) {
    if (next_emit as usize) < src.len() && dst.n() != 0 {
        dst.add_literals(&src[next_emit as usize..]);
    }
}

impl Fast {
    pub(super) fn new(level: u8) -> Fast {
        let (short, long, prev) = match level {
            1 => (1 << 15, 0, 0),
            2 => (1 << 17, 0, 0),
            3 => (0, 1 << 16, 1 << 16),
            4 => (1 << 15, 1 << 15, 0),
            _ => (1 << 15, 1 << 15, 1 << 15),
        };
        Fast {
            level,
            l4_118: false,
            hist: Vec::with_capacity(ALLOC_HISTORY),
            cur: super::MAX_STORE as i32,
            t: Tables {
                table: vec![0; short],
                long: vec![0; long],
                prev: vec![0; prev],
            },
        }
    }

    /// Go's `Reset`: everything in the tables out of reach.
    pub(super) fn reset(&mut self) {
        if self.cur <= BUFFER_RESET {
            self.cur += MAX_OFFSET + self.hist.len() as i32;
        }
        self.hist.clear();
    }

    /// Go's protection against `cur` wrapping: the tables shifted down.
    fn protect(&mut self) {
        if self.cur < BUFFER_RESET {
            return;
        }
        let t = &mut self.t;
        if self.hist.is_empty() {
            for v in t.table.iter_mut().chain(&mut t.long).chain(&mut t.prev) {
                *v = 0;
            }
            self.cur = MAX_OFFSET;
            return;
        }
        let cur = self.cur;
        let min_off = cur + self.hist.len() as i32 - MAX_OFFSET;
        let shift = |v: i32| {
            if v <= min_off {
                0
            } else {
                v - cur + MAX_OFFSET
            }
        };
        for v in t.table.iter_mut() {
            *v = shift(*v);
        }
        // Levels 5 and 6 drop an entry's previous one with it; level 3
        // shifts both on their own.
        let tied = self.level >= 5;
        for (c, p) in t.long.iter_mut().zip(t.prev.iter_mut()) {
            let gone = *c <= min_off;
            *c = shift(*c);
            *p = if tied && gone { 0 } else { shift(*p) };
        }
        if t.prev.is_empty() {
            for v in t.long.iter_mut() {
                *v = shift(*v);
            }
        }
        self.cur = MAX_OFFSET;
    }

    /// Go's `addBlock`: `src` after the history (moved down to its last
    /// 32 KiB when full); returns where `src` starts.
    fn add_block(&mut self, src: &[u8]) -> i32 {
        if self.hist.len() + src.len() > ALLOC_HISTORY {
            let offset = self.hist.len() - MAX_OFFSET as usize;
            self.hist.copy_within(offset.., 0);
            self.cur += offset as i32;
            self.hist.truncate(MAX_OFFSET as usize);
        }
        let s = self.hist.len() as i32;
        self.hist.extend_from_slice(src);
        s
    }

    /// Go's `Encode`: the tokens of `src` into `dst` (none when `src` is
    /// too short: the caller then stores or Huffman-codes it).
    pub(super) fn encode(&mut self, dst: &mut Tokens, src: &[u8]) {
        self.protect();
        let s = self.add_block(src);
        if src.len() < MIN_NON_LITERAL_BLOCK {
            return;
        }
        let (hist, cur, t) = (&self.hist[..], self.cur, &mut self.t);
        match self.level {
            1 => level1(hist, cur, t, s, dst),
            2 => level2(hist, cur, t, s, dst),
            3 => level3(hist, cur, t, s, dst),
            4 => super::better::level4(hist, cur, t, s, dst, self.l4_118),
            5 => super::better::level5(hist, cur, t, s, dst),
            _ => super::better::level6(hist, cur, t, s, dst),
        }
    }
}

/// Emits the match `s`..`s + l` at `t`, extended backwards first; returns
/// the new `s` (after the match).
#[inline]
pub(super) fn emit_match(
    dst: &mut Tokens,
    src: &[u8],
    next_emit: i32,
    mut s: i32,
    mut t: i32,
    mut l: i32,
) -> (i32, i32, i32) {
    while t > 0 && s > next_emit && src[(t - 1) as usize] == src[(s - 1) as usize] {
        s -= 1;
        t -= 1;
        l += 1;
    }
    literals(dst, src, next_emit, s);
    dst.add_match_long(l, (s - t - 1) as u32);
    (s, t, l)
}

fn level1(src: &[u8], cur: i32, tb: &mut Tables, mut s: i32, dst: &mut Tokens) {
    let h = |u: u64| hash5(u, 15);
    let table = &mut tb.table;
    let mut next_emit = s;
    let s_limit = src.len() as i32 - INPUT_MARGIN;
    let mut cv = load64(src, s);
    'blocks: loop {
        let mut next_s;
        let mut candidate;
        loop {
            let mut next_hash = h(cv);
            candidate = table[next_hash];
            next_s = s + 2 + ((s - next_emit) >> 5);
            if next_s > s_limit {
                break 'blocks;
            }
            let mut now = load64(src, next_s);
            table[next_hash] = s + cur;
            next_hash = h(now);
            if s - (candidate - cur) < MAX_OFFSET && cv as u32 == load32(src, candidate - cur) {
                table[next_hash] = next_s + cur;
                break;
            }
            cv = now;
            s = next_s;
            next_s += 1;
            candidate = table[next_hash];
            now >>= 8;
            table[next_hash] = s + cur;
            if s - (candidate - cur) < MAX_OFFSET && cv as u32 == load32(src, candidate - cur) {
                table[next_hash] = next_s + cur;
                break;
            }
            cv = now;
            s = next_s;
        }
        loop {
            let t = candidate - cur;
            let l = match_long(s + 4, t + 4, src) + 4;
            let (s2, _, l) = emit_match(dst, src, next_emit, s, t, l);
            s = s2 + l;
            next_emit = s;
            if next_s >= s {
                s = next_s + 1;
            }
            if s >= s_limit {
                if ((s + l + 8) as usize) < src.len() {
                    cv = load64(src, s);
                    table[h(cv)] = s + cur;
                }
                break 'blocks;
            }
            let x = load64(src, s - 2);
            let o = cur + s - 2;
            table[h(x)] = o;
            let x = x >> 16;
            let curr = h(x);
            candidate = table[curr];
            table[curr] = o + 2;
            if s - (candidate - cur) > MAX_OFFSET || x as u32 != load32(src, candidate - cur) {
                cv = x >> 8;
                s += 1;
                break;
            }
        }
    }
    remainder(dst, src, next_emit);
}

fn level2(src: &[u8], cur: i32, tb: &mut Tables, mut s: i32, dst: &mut Tokens) {
    let h = |u: u64| hash5(u, 17);
    let table = &mut tb.table;
    let mut next_emit = s;
    let s_limit = src.len() as i32 - INPUT_MARGIN;
    let mut cv = load64(src, s);
    'blocks: loop {
        let mut next_s = s;
        let mut candidate;
        loop {
            let mut next_hash = h(cv);
            s = next_s;
            next_s = s + 2 + ((s - next_emit) >> 5);
            if next_s > s_limit {
                break 'blocks;
            }
            candidate = table[next_hash];
            let mut now = load64(src, next_s);
            table[next_hash] = s + cur;
            next_hash = h(now);
            if s - (candidate - cur) < MAX_OFFSET && cv as u32 == load32(src, candidate - cur) {
                table[next_hash] = next_s + cur;
                break;
            }
            cv = now;
            s = next_s;
            next_s += 1;
            candidate = table[next_hash];
            now >>= 8;
            table[next_hash] = s + cur;
            if s - (candidate - cur) < MAX_OFFSET && cv as u32 == load32(src, candidate - cur) {
                break;
            }
            cv = now;
        }
        loop {
            let t = candidate - cur;
            let l = match_long(s + 4, t + 4, src) + 4;
            let (s2, _, l) = emit_match(dst, src, next_emit, s, t, l);
            s = s2 + l;
            next_emit = s;
            if next_s >= s {
                s = next_s + 1;
            }
            if s >= s_limit {
                if ((s + l + 8) as usize) < src.len() {
                    cv = load64(src, s);
                    table[h(cv)] = s + cur;
                }
                break 'blocks;
            }
            let mut i = s - l + 2;
            while i < s - 5 {
                let x = load64(src, i);
                table[h(x)] = cur + i;
                table[h(x >> 16)] = cur + i + 2;
                table[h(x >> 32)] = cur + i + 4;
                i += 7;
            }
            let x = load64(src, s - 2);
            let o = cur + s - 2;
            table[h(x)] = o;
            table[h(x >> 8)] = o + 1;
            let curr = h(x >> 16);
            candidate = table[curr];
            table[curr] = o + 2;
            if s - (candidate - cur) > MAX_OFFSET
                || (x >> 16) as u32 != load32(src, candidate - cur)
            {
                cv = x >> 24;
                s += 1;
                break;
            }
        }
    }
    remainder(dst, src, next_emit);
}

fn level3(src: &[u8], cur: i32, tb: &mut Tables, mut s: i32, dst: &mut Tokens) {
    let h = |u: u64| hash5(u, 16);
    let (table, prev) = (&mut tb.long, &mut tb.prev);
    let mut next_emit = s;
    let s_limit = src.len() as i32 - INPUT_MARGIN;
    let mut cv = load64(src, s);
    'blocks: loop {
        let mut next_s = s;
        let mut candidate;
        loop {
            let next_hash = h(cv);
            s = next_s;
            next_s = s + 1 + ((s - next_emit) >> 7);
            if next_s > s_limit {
                break 'blocks;
            }
            let (c_cur, c_prev) = (table[next_hash], prev[next_hash]);
            let now = load64(src, next_s);
            let min_offset = cur + s - (MAX_OFFSET - 4);
            prev[next_hash] = c_cur;
            table[next_hash] = s + cur;
            candidate = c_cur;
            if candidate < min_offset {
                cv = now;
                continue;
            }
            if cv as u32 == load32(src, candidate - cur) {
                if c_prev < min_offset || cv as u32 != load32(src, c_prev - cur) {
                    break;
                }
                let l1 = match_long(s + 4, candidate - cur + 4, src);
                let l2 = match_long(s + 4, c_prev - cur + 4, src);
                if l2 > l1 {
                    candidate = c_prev;
                }
                break;
            }
            candidate = c_prev;
            if candidate > min_offset && cv as u32 == load32(src, candidate - cur) {
                break;
            }
            cv = now;
        }
        loop {
            let t = candidate - cur;
            let l = match_long(s + 4, t + 4, src) + 4;
            let (s2, t, l) = emit_match(dst, src, next_emit, s, t, l);
            s = s2 + l;
            next_emit = s;
            if next_s >= s {
                s = next_s + 1;
            }
            let mut insert = |i: i32, u: u64| {
                let hh = h(u);
                prev[hh] = table[hh];
                table[hh] = cur + i;
            };
            if s >= s_limit {
                let t = t + l;
                if ((t + 8) as usize) < src.len() && t > 0 {
                    insert(t, load64(src, t));
                }
                break 'blocks;
            }
            let mut i = s - l + 2;
            while i < s - 5 {
                insert(i, load64(src, i));
                i += 6;
            }
            let x = load64(src, s - 2);
            insert(s - 2, x);
            insert(s - 1, x >> 8);
            let x = x >> 16;
            let curr = h(x);
            let (c_cur, c_prev) = (table[curr], prev[curr]);
            cv = x;
            prev[curr] = c_cur;
            table[curr] = s + cur;
            let min_offset = cur + s - (MAX_OFFSET - 4);
            if c_cur > min_offset {
                if cv as u32 == load32(src, c_cur - cur) {
                    candidate = c_cur;
                    continue;
                }
                if c_prev > min_offset && cv as u32 == load32(src, c_prev - cur) {
                    candidate = c_prev;
                    continue;
                }
            }
            cv = x >> 8;
            s += 1;
            break;
        }
    }
    remainder(dst, src, next_emit);
}
