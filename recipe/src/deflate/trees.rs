//! The block side of deflate as GNU gzip's `trees.c` (gzip 1.6 to 1.13) and
//! zlib's (1.2.12 to 1.4) make it; the two differ only in where a block ends.
//! gzip tallies symbols into a buffer of at most `LIT_BUFSIZE - 1` (32 767)
//! literals and lengths, with its early-flush guess every 4096 symbols (from
//! level 3 up); zlib (memLevel 8) ends a block at 16 383 symbols, without a
//! guess. Either sends a block stored, with the fixed codes, or with dynamic
//! Huffman codes built by the same heap (ties broken by subtree depth),
//! bit-length limiting, and run-length coding of the code lengths, and
//! chooses among the three by the same sizes (the fixed codes when no longer
//! than the dynamic ones, stored when 4 bytes more are no longer still).

use super::Flavour;

const MAX_BITS: usize = 15;
const MAX_BL_BITS: usize = 7;
const LENGTH_CODES: usize = 29;
const LITERALS: usize = 256;
const END_BLOCK: usize = 256;
const L_CODES: usize = LITERALS + 1 + LENGTH_CODES;
const D_CODES: usize = 30;
const BL_CODES: usize = 19;
const HEAP_SIZE: usize = 2 * L_CODES + 1;
/// gzip's literal/length buffer (also its distance buffer): 32 Ki entries.
const LIT_BUFSIZE: usize = 0x8000;
const DIST_BUFSIZE: usize = LIT_BUFSIZE;
/// The symbols of a zlib block (memLevel 8: its `lit_bufsize` of 16 Ki, less
/// one).
const ZLIB_SYMBOLS: usize = (1 << 14) - 1;
const REP_3_6: usize = 16;
const REPZ_3_10: usize = 17;
const REPZ_11_138: usize = 18;

const EXTRA_LBITS: [u8; LENGTH_CODES] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const EXTRA_DBITS: [u8; D_CODES] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];
const EXTRA_BLBITS: [u8; BL_CODES] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3, 7];
const BL_ORDER: [usize; BL_CODES] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

/// One Huffman tree: per node its frequency, code, father and bit length
/// (gzip keeps freq/code and dad/len in unions; they never overlap in use).
struct Tree {
    freq: Vec<u32>,
    code: Vec<u16>,
    dad: Vec<u16>,
    len: Vec<u16>,
    /// The largest code with a nonzero frequency, once built.
    max_code: usize,
}

impl Tree {
    fn new(nodes: usize) -> Tree {
        Tree {
            freq: vec![0; nodes],
            code: vec![0; nodes],
            dad: vec![0; nodes],
            len: vec![0; nodes],
            max_code: 0,
        }
    }
}

/// Which tree `build_tree` works on: its leaves, extra bits and length limit.
#[derive(Clone, Copy)]
enum Which {
    Lit,
    Dist,
    Bl,
}

/// Static tables shared by every block.
struct Tables {
    length_code: [u8; 256],
    dist_code: [u8; 512],
    base_length: [u16; LENGTH_CODES],
    base_dist: [u16; D_CODES],
    static_ltree: Tree,
    static_dtree: Tree,
}

fn bi_reverse(mut code: u32, len: usize) -> u16 {
    let mut res = 0u32;
    for _ in 0..len {
        res = (res << 1) | (code & 1);
        code >>= 1;
    }
    res as u16
}

/// Canonical codes from bit lengths (gzip's `gen_codes`).
fn gen_codes(tree: &mut Tree, max_code: usize, bl_count: &[u16; MAX_BITS + 1]) {
    let mut next_code = [0u32; MAX_BITS + 1];
    let mut code = 0u32;
    for bits in 1..=MAX_BITS {
        code = (code + u32::from(bl_count[bits - 1])) << 1;
        next_code[bits] = code;
    }
    for n in 0..=max_code {
        let len = usize::from(tree.len[n]);
        if len == 0 {
            continue;
        }
        tree.code[n] = bi_reverse(next_code[len], len);
        next_code[len] += 1;
    }
}

impl Tables {
    fn new() -> Tables {
        let mut t = Tables {
            length_code: [0; 256],
            dist_code: [0; 512],
            base_length: [0; LENGTH_CODES],
            base_dist: [0; D_CODES],
            static_ltree: Tree::new(L_CODES + 2),
            static_dtree: Tree::new(D_CODES),
        };
        let mut length = 0usize;
        for (code, &extra) in EXTRA_LBITS[..LENGTH_CODES - 1].iter().enumerate() {
            t.base_length[code] = length as u16;
            for _ in 0..(1 << extra) {
                t.length_code[length] = code as u8;
                length += 1;
            }
        }
        // Length 258 is code 285, not 284 with 31 extra.
        t.length_code[255] = (LENGTH_CODES - 1) as u8;
        let mut dist = 0usize;
        for (code, &extra) in EXTRA_DBITS[..16].iter().enumerate() {
            t.base_dist[code] = dist as u16;
            for _ in 0..(1 << extra) {
                t.dist_code[dist] = code as u8;
                dist += 1;
            }
        }
        dist >>= 7;
        for (code, &extra) in EXTRA_DBITS.iter().enumerate().skip(16) {
            t.base_dist[code] = (dist << 7) as u16;
            for _ in 0..(1 << (extra - 7)) {
                t.dist_code[256 + dist] = code as u8;
                dist += 1;
            }
        }
        let mut bl_count = [0u16; MAX_BITS + 1];
        for n in 0..L_CODES + 2 {
            let len = match n {
                0..=143 => 8,
                144..=255 => 9,
                256..=279 => 7,
                _ => 8,
            };
            t.static_ltree.len[n] = len;
            bl_count[usize::from(len)] += 1;
        }
        gen_codes(&mut t.static_ltree, L_CODES + 1, &bl_count);
        for n in 0..D_CODES {
            t.static_dtree.len[n] = 5;
            t.static_dtree.code[n] = bi_reverse(n as u32, 5);
        }
        t
    }

    fn d_code(&self, dist: usize) -> usize {
        usize::from(if dist < 256 {
            self.dist_code[dist]
        } else {
            self.dist_code[256 + (dist >> 7)]
        })
    }
}

/// The bit writer: least significant bit first, as deflate wants.
#[derive(Default)]
pub(super) struct Bits {
    pub(super) out: Vec<u8>,
    buf: u64,
    valid: u32,
}

impl Bits {
    /// Appends the `len` (at most 32) low bits of `value` (which has no bits
    /// above them): at most 31 bits are pending between calls.
    #[inline]
    fn send(&mut self, value: u32, len: u32) {
        self.buf |= u64::from(value) << self.valid;
        self.valid += len;
        if self.valid >= 32 {
            self.out.extend_from_slice(&(self.buf as u32).to_le_bytes());
            self.buf >>= 32;
            self.valid -= 32;
        }
    }

    /// Starts the output with the `len` (at most 7) low bits of `bits`
    /// pending: the first byte written is that byte's rest.
    pub(super) fn prime(&mut self, bits: u8, len: u32) {
        let len = len.min(7);
        self.buf = u64::from(bits) & ((1u64 << len) - 1);
        self.valid = len;
    }

    /// The position after what was written, `emitted` bytes having been
    /// taken from `out` before: in bits, and the bits of its last byte
    /// so far (the `bit % 8` low bits).
    pub(super) fn position(&self, emitted: u64) -> (u64, u8) {
        let bit = (emitted + self.out.len() as u64) * 8 + u64::from(self.valid);
        let whole = self.valid / 8;
        let partial = ((self.buf >> (8 * whole)) & ((1u64 << (self.valid % 8)) - 1)) as u8;
        (bit, partial)
    }

    /// Moves the whole bytes pending into `out`; the bits of a partial byte
    /// stay (with how many).
    pub(super) fn whole_bytes(&mut self) -> (u8, u32) {
        while self.valid >= 8 {
            self.out.push(self.buf as u8);
            self.buf >>= 8;
            self.valid -= 8;
        }
        (self.buf as u8, self.valid)
    }

    /// Pads to a byte boundary (gzip's `bi_windup`).
    fn windup(&mut self) {
        while self.valid > 0 {
            self.out.push(self.buf as u8);
            self.buf >>= 8;
            self.valid = self.valid.saturating_sub(8);
        }
        self.buf = 0;
    }
}

/// The tally of the current block and the trees that encode it.
pub(super) struct Trees {
    t: &'static Tables,
    ltree: Tree,
    dtree: Tree,
    bltree: Tree,
    bl_count: [u16; MAX_BITS + 1],
    heap: Vec<usize>,
    heap_len: usize,
    heap_max: usize,
    depth: Vec<u8>,
    /// Literal bytes, or match lengths minus 3.
    l_buf: Vec<u8>,
    /// Match distances minus 1.
    d_buf: Vec<u16>,
    /// Per symbol: a match (true) or a literal.
    is_match: Vec<bool>,
    opt_len: u64,
    static_len: u64,
    level: u8,
    flavour: Flavour,
    pub(super) bits: Bits,
}

/// The static trees and code tables, built once for the process.
fn tables() -> &'static Tables {
    static TABLES: std::sync::OnceLock<Tables> = std::sync::OnceLock::new();
    TABLES.get_or_init(Tables::new)
}

impl Trees {
    pub(super) fn new(flavour: Flavour, level: u8) -> Trees {
        let mut trees = Trees {
            t: tables(),
            ltree: Tree::new(HEAP_SIZE),
            dtree: Tree::new(2 * D_CODES + 1),
            bltree: Tree::new(2 * BL_CODES + 1),
            bl_count: [0; MAX_BITS + 1],
            heap: vec![0; HEAP_SIZE],
            heap_len: 0,
            heap_max: 0,
            depth: vec![0; HEAP_SIZE],
            l_buf: Vec::with_capacity(LIT_BUFSIZE),
            d_buf: Vec::with_capacity(DIST_BUFSIZE),
            is_match: Vec::with_capacity(LIT_BUFSIZE),
            opt_len: 0,
            static_len: 0,
            level,
            flavour,
            bits: Bits::default(),
        };
        trees.init_block();
        trees
    }

    fn init_block(&mut self) {
        self.ltree.freq[..L_CODES].fill(0);
        self.dtree.freq[..D_CODES].fill(0);
        self.bltree.freq[..BL_CODES].fill(0);
        self.ltree.freq[END_BLOCK] = 1;
        self.opt_len = 0;
        self.static_len = 0;
        self.l_buf.clear();
        self.d_buf.clear();
        self.is_match.clear();
    }

    /// Tallies a literal byte; true when the block must be flushed now.
    #[inline]
    pub(super) fn tally_lit(&mut self, c: u8, strstart: usize, block_start: i64) -> bool {
        self.l_buf.push(c);
        self.is_match.push(false);
        self.ltree.freq[usize::from(c)] += 1;
        self.after_tally(strstart, block_start)
    }

    /// Tallies a match (`dist` >= 1, `lc` = length - 3); true when the block
    /// must be flushed now.
    #[inline]
    pub(super) fn tally_match(
        &mut self,
        dist: usize,
        lc: usize,
        strstart: usize,
        block_start: i64,
    ) -> bool {
        let dist = dist - 1;
        self.l_buf.push(lc as u8);
        self.is_match.push(true);
        self.ltree.freq[usize::from(self.t.length_code[lc]) + LITERALS + 1] += 1;
        let dc = self.t.d_code(dist);
        self.dtree.freq[dc] += 1;
        self.d_buf.push(dist as u16);
        self.after_tally(strstart, block_start)
    }

    /// Whether the block ends after the symbol just tallied: for zlib at
    /// `ZLIB_SYMBOLS`; for gzip by its guess, or at its buffer limits.
    #[inline]
    fn after_tally(&mut self, strstart: usize, block_start: i64) -> bool {
        let last_lit = self.l_buf.len();
        if self.flavour == Flavour::Zlib {
            return last_lit == ZLIB_SYMBOLS;
        }
        let last_dist = self.d_buf.len();
        if self.level > 2 && last_lit & 0xfff == 0 {
            let mut out_length = last_lit as u64 * 8;
            let in_length = (strstart as i64 - block_start) as u64;
            for (dcode, &extra) in EXTRA_DBITS.iter().enumerate() {
                out_length += u64::from(self.dtree.freq[dcode]) * (5 + u64::from(extra));
            }
            out_length >>= 3;
            if last_dist < last_lit / 2 && out_length < in_length / 2 {
                return true;
            }
        }
        last_lit == LIT_BUFSIZE - 1 || last_dist == DIST_BUFSIZE
    }

    /// Whether `n` sorts before `m` in the heap.
    #[inline]
    fn smaller(tree: &Tree, depth: &[u8], n: usize, m: usize) -> bool {
        tree.freq[n] < tree.freq[m] || (tree.freq[n] == tree.freq[m] && depth[n] <= depth[m])
    }

    fn pqdownheap(&mut self, which: Which, mut k: usize) {
        let tree = match which {
            Which::Lit => &self.ltree,
            Which::Dist => &self.dtree,
            Which::Bl => &self.bltree,
        };
        let heap = &mut self.heap;
        let v = heap[k];
        let mut j = k << 1;
        while j <= self.heap_len {
            if j < self.heap_len && Self::smaller(tree, &self.depth, heap[j + 1], heap[j]) {
                j += 1;
            }
            if Self::smaller(tree, &self.depth, v, heap[j]) {
                break;
            }
            heap[k] = heap[j];
            k = j;
            j <<= 1;
        }
        heap[k] = v;
    }

    fn tree_mut(&mut self, which: Which) -> &mut Tree {
        match which {
            Which::Lit => &mut self.ltree,
            Which::Dist => &mut self.dtree,
            Which::Bl => &mut self.bltree,
        }
    }

    /// Builds one Huffman tree from its frequencies (gzip's `build_tree`).
    fn build_tree(&mut self, which: Which) {
        let (elems, has_static) = match which {
            Which::Lit => (L_CODES, true),
            Which::Dist => (D_CODES, true),
            Which::Bl => (BL_CODES, false),
        };
        self.heap_len = 0;
        self.heap_max = HEAP_SIZE;
        let mut max_code: isize = -1;
        for n in 0..elems {
            if self.tree_mut(which).freq[n] != 0 {
                self.heap_len += 1;
                self.heap[self.heap_len] = n;
                max_code = n as isize;
                self.depth[n] = 0;
            } else {
                self.tree_mut(which).len[n] = 0;
            }
        }
        while self.heap_len < 2 {
            let new = if max_code < 2 {
                max_code += 1;
                max_code as usize
            } else {
                0
            };
            self.heap_len += 1;
            self.heap[self.heap_len] = new;
            self.tree_mut(which).freq[new] = 1;
            self.depth[new] = 0;
            self.opt_len = self.opt_len.wrapping_sub(1);
            if has_static {
                let slen = match which {
                    Which::Lit => self.t.static_ltree.len[new],
                    _ => self.t.static_dtree.len[new],
                };
                self.static_len = self.static_len.wrapping_sub(u64::from(slen));
            }
        }
        let max_code = max_code as usize;
        self.tree_mut(which).max_code = max_code;
        for n in (1..=self.heap_len / 2).rev() {
            self.pqdownheap(which, n);
        }
        let mut node = elems;
        loop {
            let n = self.heap[1];
            self.heap[1] = self.heap[self.heap_len];
            self.heap_len -= 1;
            self.pqdownheap(which, 1);
            let m = self.heap[1];
            self.heap_max -= 1;
            self.heap[self.heap_max] = n;
            self.heap_max -= 1;
            self.heap[self.heap_max] = m;
            let depth = self.depth[n].max(self.depth[m]) + 1;
            let tree = self.tree_mut(which);
            tree.freq[node] = tree.freq[n] + tree.freq[m];
            tree.dad[n] = node as u16;
            tree.dad[m] = node as u16;
            self.depth[node] = depth;
            self.heap[1] = node;
            node += 1;
            self.pqdownheap(which, 1);
            if self.heap_len < 2 {
                break;
            }
        }
        self.heap_max -= 1;
        self.heap[self.heap_max] = self.heap[1];
        self.gen_bitlen(which, max_code);
        let bl_count = self.bl_count;
        gen_codes(self.tree_mut(which), max_code, &bl_count);
    }

    /// Bit lengths from the tree, limited to the tree's maximum (gzip's
    /// `gen_bitlen`), adding the block's cost to `opt_len` and `static_len`.
    fn gen_bitlen(&mut self, which: Which, max_code: usize) {
        let (extra, base, max_length): (&[u8], usize, usize) = match which {
            Which::Lit => (&EXTRA_LBITS, LITERALS + 1, MAX_BITS),
            Which::Dist => (&EXTRA_DBITS, 0, MAX_BITS),
            Which::Bl => (&EXTRA_BLBITS, 0, MAX_BL_BITS),
        };
        let stree = match which {
            Which::Lit => Some(&self.t.static_ltree),
            Which::Dist => Some(&self.t.static_dtree),
            Which::Bl => None,
        };
        let tree = match which {
            Which::Lit => &mut self.ltree,
            Which::Dist => &mut self.dtree,
            Which::Bl => &mut self.bltree,
        };
        self.bl_count = [0; MAX_BITS + 1];
        let mut overflow = 0i32;
        tree.len[self.heap[self.heap_max]] = 0;
        for h in self.heap_max + 1..HEAP_SIZE {
            let n = self.heap[h];
            let mut bits = usize::from(tree.len[usize::from(tree.dad[n])]) + 1;
            if bits > max_length {
                bits = max_length;
                overflow += 1;
            }
            tree.len[n] = bits as u16;
            if n > max_code {
                continue;
            }
            self.bl_count[bits] += 1;
            let xbits = if n >= base {
                u64::from(extra[n - base])
            } else {
                0
            };
            let f = u64::from(tree.freq[n]);
            self.opt_len = self.opt_len.wrapping_add(f * (bits as u64 + xbits));
            if let Some(s) = stree {
                self.static_len = self
                    .static_len
                    .wrapping_add(f * (u64::from(s.len[n]) + xbits));
            }
        }
        if overflow == 0 {
            return;
        }
        while overflow > 0 {
            let mut bits = max_length - 1;
            while self.bl_count[bits] == 0 {
                bits -= 1;
            }
            self.bl_count[bits] -= 1;
            self.bl_count[bits + 1] += 2;
            self.bl_count[max_length] -= 1;
            overflow -= 2;
        }
        let mut h = HEAP_SIZE;
        for bits in (1..=max_length).rev() {
            let mut n = self.bl_count[bits];
            while n != 0 {
                h -= 1;
                let m = self.heap[h];
                if m > max_code {
                    continue;
                }
                if usize::from(tree.len[m]) != bits {
                    let delta = (bits as i64 - i64::from(tree.len[m])) * i64::from(tree.freq[m]);
                    self.opt_len = self.opt_len.wrapping_add(delta as u64);
                    tree.len[m] = bits as u16;
                }
                n -= 1;
            }
        }
    }

    /// The lengths of `tree`'s codes as runs (gzip's `scan_tree` and
    /// `send_tree`): calls `emit(code, extra bits value, extra bits)` in order.
    fn runs(len: &mut [u16], max_code: usize, mut emit: impl FnMut(usize, u32, u32)) {
        let mut prevlen: i32 = -1;
        let mut nextlen = i32::from(len[0]);
        let mut count = 0u32;
        let (mut max_count, mut min_count) = if nextlen == 0 { (138, 3) } else { (7, 4) };
        len[max_code + 1] = 0xffff;
        for n in 0..=max_code {
            let curlen = nextlen;
            nextlen = i32::from(len[n + 1]);
            count += 1;
            if count < max_count && curlen == nextlen {
                continue;
            } else if count < min_count {
                for _ in 0..count {
                    emit(curlen as usize, 0, 0);
                }
            } else if curlen != 0 {
                if curlen != prevlen {
                    emit(curlen as usize, 0, 0);
                    count -= 1;
                }
                emit(REP_3_6, count - 3, 2);
            } else if count <= 10 {
                emit(REPZ_3_10, count - 3, 3);
            } else {
                emit(REPZ_11_138, count - 11, 7);
            }
            count = 0;
            prevlen = curlen;
            (max_count, min_count) = if nextlen == 0 {
                (138, 3)
            } else if curlen == nextlen {
                (6, 3)
            } else {
                (7, 4)
            };
        }
    }

    /// Builds the bit-length tree; returns the index in `BL_ORDER` of the last
    /// code length to send.
    fn build_bl_tree(&mut self) -> usize {
        for which in [Which::Lit, Which::Dist] {
            let (tree, bl) = match which {
                Which::Lit => (&mut self.ltree, &mut self.bltree),
                _ => (&mut self.dtree, &mut self.bltree),
            };
            // gzip's scan_tree: one count per run, the repeat codes counted once.
            Self::runs(&mut tree.len, tree.max_code, |code, _, _| {
                bl.freq[code] += 1
            });
        }
        self.build_tree(Which::Bl);
        let mut max_blindex = BL_CODES - 1;
        while max_blindex >= 3 && self.bltree.len[BL_ORDER[max_blindex]] == 0 {
            max_blindex -= 1;
        }
        self.opt_len = self
            .opt_len
            .wrapping_add(3 * (max_blindex as u64 + 1) + 5 + 5 + 4);
        max_blindex
    }

    fn send_all_trees(&mut self, lcodes: usize, dcodes: usize, blcodes: usize) {
        let bits = &mut self.bits;
        bits.send((lcodes - 257) as u32, 5);
        bits.send((dcodes - 1) as u32, 5);
        bits.send((blcodes - 4) as u32, 4);
        for &code in &BL_ORDER[..blcodes] {
            bits.send(u32::from(self.bltree.len[code]), 3);
        }
        let bl = &self.bltree;
        for (len, max_code) in [
            (&mut self.ltree.len, lcodes - 1),
            (&mut self.dtree.len, dcodes - 1),
        ] {
            Self::runs(len, max_code, |code, value, extra| {
                bits.send(u32::from(bl.code[code]), u32::from(bl.len[code]));
                if extra > 0 {
                    bits.send(value, extra);
                }
            });
        }
    }

    /// Sends the tallied symbols with the given trees, then end of block.
    fn compress_block(&mut self, fixed: bool) {
        let (lt, dt) = if fixed {
            (&self.t.static_ltree, &self.t.static_dtree)
        } else {
            (&self.ltree, &self.dtree)
        };
        let bits = &mut self.bits;
        let mut dx = 0;
        for (&lc, &is_match) in self.l_buf.iter().zip(&self.is_match) {
            let lc = usize::from(lc);
            if !is_match {
                bits.send(u32::from(lt.code[lc]), u32::from(lt.len[lc]));
                continue;
            }
            // Each code with its extra bits after it, sent at once (the
            // same bits: at most 15 + 5 and 15 + 13 of them).
            let code = usize::from(self.t.length_code[lc]);
            let sym = code + LITERALS + 1;
            // (The last code's base is 0 in gzip's tables, as it leaves
            // it: the difference is masked to the code's extra bits.)
            let len = u32::from(lt.len[sym]);
            let ebits = u32::from(EXTRA_LBITS[code]);
            let extra = (lc - usize::from(self.t.base_length[code])) as u32 & ((1 << ebits) - 1);
            bits.send(u32::from(lt.code[sym]) | extra << len, len + ebits);
            let dist = usize::from(self.d_buf[dx]);
            dx += 1;
            let code = self.t.d_code(dist);
            let len = u32::from(dt.len[code]);
            let extra = (dist - usize::from(self.t.base_dist[code])) as u32;
            bits.send(
                u32::from(dt.code[code]) | extra << len,
                len + u32::from(EXTRA_DBITS[code]),
            );
        }
        bits.send(u32::from(lt.code[END_BLOCK]), u32::from(lt.len[END_BLOCK]));
    }

    /// Starts a block sent with the fixed codes as it goes, not tallied
    /// (zlib-ng's level 1): its 3-bit header.
    pub(super) fn start_fixed(&mut self, last: bool) {
        self.bits.send(2 + u32::from(last), 3);
    }

    /// Sends a literal with the fixed codes (in a block of [`Self::start_fixed`]).
    #[inline]
    pub(super) fn fixed_lit(&mut self, c: u8) {
        let lt = &self.t.static_ltree;
        let c = usize::from(c);
        self.bits.send(u32::from(lt.code[c]), u32::from(lt.len[c]));
    }

    /// Sends a match (`dist` >= 1, `lc` = length - 3) with the fixed codes.
    #[inline]
    pub(super) fn fixed_match(&mut self, dist: usize, lc: usize) {
        let (lt, dt) = (&self.t.static_ltree, &self.t.static_dtree);
        let code = usize::from(self.t.length_code[lc]);
        let sym = code + LITERALS + 1;
        self.bits
            .send(u32::from(lt.code[sym]), u32::from(lt.len[sym]));
        let extra = u32::from(EXTRA_LBITS[code]);
        if extra != 0 {
            self.bits
                .send((lc - usize::from(self.t.base_length[code])) as u32, extra);
        }
        let dist = dist - 1;
        let code = self.t.d_code(dist);
        self.bits
            .send(u32::from(dt.code[code]), u32::from(dt.len[code]));
        let extra = u32::from(EXTRA_DBITS[code]);
        if extra != 0 {
            self.bits
                .send((dist - usize::from(self.t.base_dist[code])) as u32, extra);
        }
    }

    /// Ends a block of [`Self::start_fixed`]; the last one pads to a byte.
    pub(super) fn end_fixed(&mut self, last: bool) {
        let lt = &self.t.static_ltree;
        self.bits
            .send(u32::from(lt.code[END_BLOCK]), u32::from(lt.len[END_BLOCK]));
        if last {
            self.bits.windup();
        }
    }

    /// Ends the current block (gzip's `flush_block`, zlib's `_tr_flush_block`): `stored` is the block's
    /// input when it is still in the window (for a stored block), `stored_len`
    /// its length; `eof` marks the last block.
    pub(super) fn flush_block(&mut self, stored: Option<&[u8]>, stored_len: u64, eof: bool) {
        self.build_tree(Which::Lit);
        self.build_tree(Which::Dist);
        let max_blindex = self.build_bl_tree();
        let mut opt_lenb = (self.opt_len.wrapping_add(3 + 7)) >> 3;
        let static_lenb = (self.static_len.wrapping_add(3 + 7)) >> 3;
        if static_lenb <= opt_lenb {
            opt_lenb = static_lenb;
        }
        let eof_bit = u32::from(eof);
        match stored {
            Some(buf) if stored_len + 4 <= opt_lenb => {
                self.bits.send(eof_bit, 3);
                self.bits.windup();
                let len = buf.len() as u16;
                self.bits.out.extend_from_slice(&len.to_le_bytes());
                self.bits.out.extend_from_slice(&(!len).to_le_bytes());
                self.bits.out.extend_from_slice(buf);
            }
            _ if static_lenb == opt_lenb => {
                self.bits.send(2 + eof_bit, 3);
                self.compress_block(true);
            }
            _ => {
                self.bits.send(4 + eof_bit, 3);
                let (l, d) = (self.ltree.max_code + 1, self.dtree.max_code + 1);
                self.send_all_trees(l, d, max_blindex + 1);
                self.compress_block(false);
            }
        }
        self.init_block();
        if eof {
            self.bits.windup();
        }
    }
}
