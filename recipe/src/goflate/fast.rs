//! Go's level 1, BestSpeed (`deflatefast.go`, `encSpeed` in `deflate.go`):
//! Snappy's matcher over blocks of 65,535 bytes, a 14-bit table of
//! (4 bytes, position) entries, matches into the previous block, and each
//! block written dynamic (or Huffman-only when matching saved less than
//! 1/16, or stored).

use super::huffman::{BlockWriter, MATCH, MAX_STORE};

const TABLE_BITS: u32 = 14;
const TABLE_SIZE: usize = 1 << TABLE_BITS;
const MAX_OFFSET: i32 = 1 << 15;
const MAX_MATCH: i32 = 258;
const BUFFER_RESET: i32 = i32::MAX - (MAX_STORE as i32) * 2;
const INPUT_MARGIN: i32 = 16 - 1;
const MIN_NON_LITERAL_BLOCK: usize = 1 + 1 + INPUT_MARGIN as usize;

fn load32(b: &[u8], i: i32) -> u32 {
    let i = i as usize;
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

fn load64(b: &[u8], i: i32) -> u64 {
    let i = i as usize;
    u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or_default())
}

fn hash(u: u32) -> usize {
    (u.wrapping_mul(0x1e35_a7bd) >> (32 - TABLE_BITS)) as usize
}

/// A table entry: the 4 bytes at a position, and the position.
#[derive(Clone, Copy, Default)]
struct Entry {
    val: u32,
    offset: i32,
}

/// Go's `deflateFast`.
struct DeflateFast {
    table: Vec<Entry>,
    prev: Vec<u8>,
    cur: i32,
}

fn literals(dst: &mut Vec<u32>, lit: &[u8]) {
    dst.extend(lit.iter().map(|&b| u32::from(b)));
}

/// How many bytes of `a` and `b` are equal from the start.
fn common(a: &[u8], b: &[u8]) -> i32 {
    a.iter().zip(b).take_while(|(x, y)| x == y).count() as i32
}

impl DeflateFast {
    fn new() -> DeflateFast {
        DeflateFast {
            table: vec![Entry::default(); TABLE_SIZE],
            prev: Vec::with_capacity(MAX_STORE),
            cur: MAX_STORE as i32,
        }
    }

    /// Go's `encode`: the tokens of block `src`.
    fn encode(&mut self, dst: &mut Vec<u32>, src: &[u8]) {
        if self.cur >= BUFFER_RESET {
            self.shift_offsets();
        }
        if src.len() < MIN_NON_LITERAL_BLOCK {
            self.cur += MAX_STORE as i32;
            self.prev.clear();
            literals(dst, src);
            return;
        }
        let s_limit = src.len() as i32 - INPUT_MARGIN;
        let mut next_emit = 0i32;
        let mut s = 0i32;
        let mut cv = load32(src, s);
        let mut next_hash = hash(cv);
        'outer: loop {
            let mut skip = 32i32;
            let mut next_s = s;
            let mut candidate;
            loop {
                s = next_s;
                let between = skip >> 5;
                next_s = s + between;
                skip += between;
                if next_s > s_limit {
                    break 'outer;
                }
                candidate = self.table[next_hash];
                let now = load32(src, next_s);
                self.table[next_hash] = Entry {
                    offset: s + self.cur,
                    val: cv,
                };
                next_hash = hash(now);
                let offset = s - (candidate.offset - self.cur);
                if offset > MAX_OFFSET || cv != candidate.val {
                    cv = now;
                    continue;
                }
                break;
            }
            literals(dst, &src[next_emit as usize..s as usize]);
            loop {
                s += 4;
                let t = candidate.offset - self.cur + 4;
                let l = self.match_len(s, t, src);
                dst.push(MATCH | ((l + 4 - 3) as u32) << 22 | (s - t - 1) as u32);
                s += l;
                next_emit = s;
                if s >= s_limit {
                    break 'outer;
                }
                let mut x = load64(src, s - 1);
                let prev_hash = hash(x as u32);
                self.table[prev_hash] = Entry {
                    offset: self.cur + s - 1,
                    val: x as u32,
                };
                x >>= 8;
                let curr_hash = hash(x as u32);
                candidate = self.table[curr_hash];
                self.table[curr_hash] = Entry {
                    offset: self.cur + s,
                    val: x as u32,
                };
                let offset = s - (candidate.offset - self.cur);
                if offset > MAX_OFFSET || x as u32 != candidate.val {
                    cv = (x >> 8) as u32;
                    next_hash = hash(cv);
                    s += 1;
                    break;
                }
            }
        }
        if (next_emit as usize) < src.len() {
            literals(dst, &src[next_emit as usize..]);
        }
        self.cur += src.len() as i32;
        self.prev.clear();
        self.prev.extend_from_slice(src);
    }

    /// Go's `matchLen`: how far `src[s..]` matches `src[t..]` (beyond the 4
    /// bytes already known), `t` negative reaching into the previous block.
    fn match_len(&self, s: i32, t: i32, src: &[u8]) -> i32 {
        let s1 = ((s + MAX_MATCH - 4) as usize).min(src.len());
        let s = s as usize;
        if t >= 0 {
            let t = t as usize;
            return common(&src[s..s1], &src[t..t + (s1 - s)]);
        }
        let tp = self.prev.len() as i32 + t;
        if tp < 0 {
            return 0;
        }
        let a = &src[s..s1];
        let b = &self.prev[tp as usize..];
        let k = a.len().min(b.len());
        let n = common(&a[..k], &b[..k]);
        if (n as usize) < k {
            return n;
        }
        if s + k == s1 {
            return n;
        }
        let a = &src[s + k..s1];
        n + common(a, &src[..a.len()])
    }

    /// Go's `reset`: no matches into what came before.
    fn reset(&mut self) {
        self.prev.clear();
        self.cur += MAX_OFFSET;
        if self.cur >= BUFFER_RESET {
            self.shift_offsets();
        }
    }

    /// Go's `shiftOffsets`.
    fn shift_offsets(&mut self) {
        if self.prev.is_empty() {
            self.table.fill(Entry::default());
        } else {
            for e in &mut self.table {
                e.offset = (e.offset - self.cur + MAX_OFFSET + 1).max(0);
            }
        }
        self.cur = MAX_OFFSET + 1;
    }
}

/// Go's compressor at level 1 (and at -2, Huffman only): a 65,535-byte
/// window encoded whole.
pub(super) struct Fast {
    window: Vec<u8>,
    window_end: usize,
    tokens: Vec<u32>,
    matcher: Option<DeflateFast>,
}

impl Fast {
    /// Level 1 (`huffman_only`: level -2, every block `writeBlockHuff`).
    pub(super) fn new(huffman_only: bool) -> Fast {
        Fast {
            window: vec![0; MAX_STORE],
            window_end: 0,
            tokens: Vec::with_capacity(MAX_STORE),
            matcher: (!huffman_only).then(DeflateFast::new),
        }
    }

    /// Go's `fillStore`.
    pub(super) fn fill(&mut self, b: &[u8]) -> usize {
        let n = b.len().min(MAX_STORE - self.window_end);
        self.window[self.window_end..self.window_end + n].copy_from_slice(&b[..n]);
        self.window_end += n;
        n
    }

    /// Whether the window is full.
    pub(super) fn full(&self) -> bool {
        self.window_end == MAX_STORE
    }

    /// Go's `encSpeed` (or `storeHuff`): encodes the window when it is
    /// full, or with `sync` whatever it holds.
    pub(super) fn step(&mut self, sync: bool, w: &mut BlockWriter) {
        let end = self.window_end;
        let Some(matcher) = self.matcher.as_mut() else {
            if end == MAX_STORE || sync && end > 0 {
                w.write_block_huff(&self.window[..end]);
                self.window_end = 0;
            }
            return;
        };
        if end < MAX_STORE {
            if !sync {
                return;
            }
            if end < 128 {
                match end {
                    0 => return,
                    1..=16 => w.write_stored(&self.window[..end]),
                    _ => w.write_block_huff(&self.window[..end]),
                }
                self.window_end = 0;
                matcher.reset();
                return;
            }
        }
        self.tokens.clear();
        matcher.encode(&mut self.tokens, &self.window[..end]);
        if self.tokens.len() > end - (end >> 4) {
            w.write_block_huff(&self.window[..end]);
        } else {
            w.write_block_dynamic(&mut self.tokens, &self.window[..end]);
        }
        self.window_end = 0;
    }
}
