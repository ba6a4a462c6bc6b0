//! klauspost's block writer (`huffman_bit_writer.go`): unlike Go's
//! standard library it may keep a dynamic table across blocks (a block
//! written without a sync flush leaves its table open, and the next block
//! reuses it when the estimate says a fresh table would not be smaller by
//! `1 >> log_new_table_penalty`), writes a table for all 286 + 30 symbols
//! when it may be reused, ends a stream with an empty *fixed* final block
//! (`03 00`), and stores a Huffman-only block whose byte histogram looks
//! flat. The Huffman codes themselves are built as Go's standard library
//! builds them (goflate's `Encoder`, the same algorithm and tie order).
//!
//! Only the bit stream is modelled, not how Go's buffer hands bytes to its
//! writer (which does not change them).

use super::tokens::{Tokens, MATCH};
use crate::goflate::huffman::{
    fixed_literal, offset_code, reverse, run_length_codegen, Encoder, HCode, BAD, CODEGEN_ORDER,
    END_BLOCK, LENGTH_BASE, LENGTH_CODES, LENGTH_EXTRA, NUM_CODEGEN, NUM_LIT, NUM_OFF, OFFSET_BASE,
    OFFSET_EXTRA,
};

/// Blocks of fewer tokens may be written with the fixed code.
const MAX_PREDEFINED_TOKENS: usize = 250;

/// How many code lengths a dynamic block's header sends, by release.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Sizes {
    /// klauspost 1.15.12 to 1.18.0: a block left open (no flush) sends all
    /// 286 + 30 lengths (`indexTokens(tokens, !sync)`), so that the next
    /// block may reuse its table; a flushed block only those it uses.
    Full,
    /// klauspost 1.18.1 (#1103, "exact sizes"): every block sends only the
    /// lengths it uses, counted without its end of block
    /// (`indexTokens(tokens, false)`); the end of block gets its code when
    /// a table is made.
    Exact,
    /// klauspost 1.18.2 to 1.19.1 (#1115): the same, with the end of block
    /// counted before sizing (`indexTokens(tokens, true)`), which also
    /// makes it part of the cost of reusing the open table.
    ExactEob,
}

/// Go's `huffmanBitWriter`.
pub(super) struct BitWriter {
    /// Whole bytes written and not yet handed over.
    pub(super) out: Vec<u8>,
    bits: u64,
    nbits: u32,
    /// The open table was made for literals only (`lastHuffMan`).
    last_huffman: bool,
    /// The open table's header size in bits, 0 when no table is open
    /// (`lastHeader`: then an end of block is owed).
    last_header: i64,
    /// `logNewTablePenalty`.
    pub(super) penalty: u32,
    /// Go 1.27's `compress/flate` writer rather than klauspost 1.15.12's:
    /// a block left open counts its end of block (`extraHist[0] = 1`) and
    /// sends only the code lengths it uses, and a flat histogram test of
    /// `abs >= max` (see [`super::go127`]).
    pub(super) go127: bool,
    /// Which table sizes a block sends (see [`Sizes`]).
    pub(super) sizes: Sizes,
    literal_freq: [i32; NUM_LIT],
    offset_freq: [i32; NUM_OFF],
    codegen: Vec<u8>,
    codegen_freq: [i32; NUM_CODEGEN],
    literal: Encoder,
    tmp_literal: Encoder,
    offset: Encoder,
    codegen_enc: Encoder,
    fixed_literal: Vec<HCode>,
    fixed_offset: Vec<HCode>,
    huff_offset: Encoder,
}

impl BitWriter {
    pub(super) fn new(penalty: u32) -> BitWriter {
        let mut huff_offset = Encoder::new(NUM_OFF);
        let mut one = [0i32; NUM_OFF];
        one[0] = 1;
        huff_offset.generate(&one, 15);
        BitWriter {
            out: Vec::with_capacity(1 << 17),
            bits: 0,
            nbits: 0,
            last_huffman: false,
            last_header: 0,
            penalty,
            go127: false,
            sizes: Sizes::Full,
            literal_freq: [0; NUM_LIT],
            offset_freq: [0; NUM_OFF],
            codegen: vec![0; NUM_LIT + NUM_OFF + 1],
            codegen_freq: [0; NUM_CODEGEN],
            literal: Encoder::new(NUM_LIT),
            tmp_literal: Encoder::new(NUM_LIT),
            offset: Encoder::new(NUM_OFF),
            codegen_enc: Encoder::new(NUM_CODEGEN),
            fixed_literal: fixed_literal(),
            fixed_offset: (0..NUM_OFF as u16)
                .map(|ch| HCode {
                    code: reverse(ch, 5),
                    len: 5,
                })
                .collect(),
            huff_offset,
        }
    }

    #[inline]
    fn write_bits(&mut self, b: u32, nb: u32) {
        self.bits |= u64::from(b) << self.nbits;
        self.nbits += nb;
        if self.nbits >= 32 {
            self.out
                .extend_from_slice(&(self.bits as u32).to_le_bytes());
            self.bits >>= 32;
            self.nbits -= 32;
        }
    }

    #[inline]
    fn write_code(&mut self, c: HCode) {
        self.write_bits(u32::from(c.code), u32::from(c.len));
    }

    /// The end of block owed by an open table, if any.
    fn close_open(&mut self) {
        if self.last_header > 0 {
            self.write_code(self.literal.codes[END_BLOCK as usize]);
            self.last_header = 0;
        }
    }

    /// Go's `flush`: the owed end of block, then zeros to a whole byte.
    pub(super) fn flush(&mut self) {
        self.close_open();
        while self.nbits > 0 {
            self.out.push(self.bits as u8);
            self.bits >>= 8;
            self.nbits = self.nbits.saturating_sub(8);
        }
        self.bits = 0;
    }

    /// Go's `writeStoredHeader` (an empty final block is a fixed one).
    pub(super) fn write_stored_header(&mut self, length: usize, eof: bool) {
        self.close_open();
        if length == 0 && eof {
            self.write_bits(3, 3);
            self.write_bits(0, 7);
            self.flush();
            return;
        }
        self.write_bits(u32::from(eof), 3);
        self.flush();
        self.write_bits(length as u32 & 0xffff, 16);
        self.write_bits(!(length as u32) & 0xffff, 16);
    }

    fn write_fixed_header(&mut self, eof: bool) {
        self.close_open();
        self.write_bits(if eof { 3 } else { 2 }, 3);
    }

    /// A stored block of `input`.
    pub(super) fn write_stored(&mut self, input: &[u8], eof: bool) {
        self.write_stored_header(input.len(), eof);
        debug_assert_eq!(self.nbits % 8, 0);
        self.flush();
        self.out.extend_from_slice(input);
    }

    /// Go's `indexTokens`: the histograms into the writer's; with `filled`,
    /// every symbol is sent (286 and 30); with `eob`, the end of block is
    /// counted (1.18.2's `alwaysEOB`).
    fn index_tokens(&mut self, t: &Tokens, filled: bool, eob: bool) -> (usize, usize) {
        self.literal_freq[..256].copy_from_slice(&t.lit_hist);
        self.literal_freq[256..].copy_from_slice(&t.extra_hist[..NUM_LIT - 256]);
        self.offset_freq.copy_from_slice(&t.off_hist[..NUM_OFF]);
        if t.n() == 0 {
            return (0, 0);
        }
        if filled {
            return (NUM_LIT, NUM_OFF);
        }
        if eob {
            self.literal_freq[END_BLOCK as usize] = 1;
        }
        let mut num_lit = NUM_LIT;
        while num_lit > 1 && self.literal_freq[num_lit - 1] == 0 {
            num_lit -= 1;
        }
        // 1.18.1 could count fewer than 257 (an open block of literals
        // only, which levels 1 to 6 Huffman-code instead): Go would then
        // write a broken header, which no valid stream holds.
        let num_lit = num_lit.max(257);
        let mut num_off = NUM_OFF;
        while num_off > 0 && self.offset_freq[num_off - 1] == 0 {
            num_off -= 1;
        }
        if num_off == 0 {
            self.offset_freq[0] = 1;
            num_off = 1;
        }
        (num_lit, num_off)
    }

    /// Whether the open table has a code for every symbol of `t`.
    fn can_reuse(&self, t: &Tokens) -> bool {
        let offsets = t.off_hist[..NUM_OFF].iter().zip(&self.offset.codes);
        let lengths = t.extra_hist[..NUM_LIT - 256]
            .iter()
            .zip(&self.literal.codes[256..]);
        let literals = t.lit_hist.iter().zip(&self.literal.codes[..256]);
        !offsets
            .chain(lengths)
            .chain(literals)
            .any(|(&f, c)| f != 0 && c.len == 0)
    }

    /// Go's `generateCodegen` of `lit`'s first `num_lit` lengths and
    /// `off`'s first `num_off`.
    fn generate_codegen(&mut self, num_lit: usize, num_off: usize, lit: &[HCode], off: &[HCode]) {
        self.codegen_freq = [0; NUM_CODEGEN];
        let cg = &mut self.codegen;
        for (to, c) in cg
            .iter_mut()
            .zip(lit[..num_lit].iter().chain(&off[..num_off]))
        {
            *to = c.len as u8;
        }
        cg[num_lit + num_off] = BAD;
        run_length_codegen(cg, &mut self.codegen_freq);
    }

    /// The codegen of the literal table and `off` (the block's own distance
    /// table, or the Huffman-only one), and its code.
    fn codegen_of(&mut self, num_lit: usize, num_off: usize, huff: bool) {
        let lit = std::mem::take(&mut self.literal.codes);
        let off = if huff {
            std::mem::take(&mut self.huff_offset.codes)
        } else {
            std::mem::take(&mut self.offset.codes)
        };
        self.generate_codegen(num_lit, num_off, &lit, &off);
        self.literal.codes = lit;
        if huff {
            self.huff_offset.codes = off;
        } else {
            self.offset.codes = off;
        }
        self.codegen_enc.generate(&self.codegen_freq, 7);
    }

    fn num_codegens(&self) -> usize {
        let mut n = NUM_CODEGEN;
        while n > 4 && self.codegen_freq[CODEGEN_ORDER[n - 1]] == 0 {
            n -= 1;
        }
        n
    }

    /// Go's `headerSize`, in bits.
    fn header_size(&self) -> i64 {
        3 + 5
            + 5
            + 4
            + 3 * self.num_codegens() as i64
            + self.codegen_enc.bit_length(&self.codegen_freq)
            + i64::from(self.codegen_freq[16]) * 2
            + i64::from(self.codegen_freq[17]) * 3
            + i64::from(self.codegen_freq[18]) * 7
    }

    /// Go's `extraBitSize`.
    fn extra_bit_size(&self) -> i64 {
        let lengths = self.literal_freq[257..]
            .iter()
            .zip(&LENGTH_EXTRA)
            .map(|(&n, &e)| i64::from(n) * i64::from(e));
        let offsets = self
            .offset_freq
            .iter()
            .zip(&OFFSET_EXTRA)
            .map(|(&n, &e)| i64::from(n) * i64::from(e));
        lengths.chain(offsets).sum()
    }

    /// Go's `fixedSize`.
    fn fixed_size(&self, extra_bits: i64) -> i64 {
        3 + bits_of(&self.fixed_literal, &self.literal_freq)
            + bits_of(&self.fixed_offset, &self.offset_freq)
            + extra_bits
    }

    /// Go's `writeDynamicHeader`.
    fn write_dynamic_header(&mut self, num_lit: usize, num_off: usize, eof: bool) {
        let num_codegens = self.num_codegens();
        self.write_bits(if eof { 5 } else { 4 }, 3);
        self.write_bits((num_lit - 257) as u32, 5);
        self.write_bits((num_off - 1) as u32, 5);
        self.write_bits((num_codegens - 4) as u32, 4);
        for &o in &CODEGEN_ORDER[..num_codegens] {
            let len = self.codegen_enc.codes[o].len;
            self.write_bits(u32::from(len), 3);
        }
        let mut i = 0;
        loop {
            let word = self.codegen[i];
            i += 1;
            if word == BAD {
                break;
            }
            let c = self.codegen_enc.codes[usize::from(word)];
            self.write_code(c);
            let extra = match word {
                16 => 2,
                17 => 3,
                18 => 7,
                _ => continue,
            };
            let v = u32::from(self.codegen[i]);
            self.write_bits(v, extra);
            i += 1;
        }
    }

    /// A block written with the fixed code.
    fn write_fixed(&mut self, tokens: &mut Tokens, eof: bool, sync: bool) {
        self.write_fixed_header(eof);
        if !sync {
            tokens.add_eob();
        }
        let (lit, off) = (
            std::mem::take(&mut self.fixed_literal),
            std::mem::take(&mut self.fixed_offset),
        );
        self.write_tokens(&tokens.toks, &lit, &off);
        self.fixed_literal = lit;
        self.fixed_offset = off;
    }

    /// Go's `writeBlockDynamic`: `tokens` (made from `input`, which is
    /// `None` when the block's bytes left the window) with the open table,
    /// a new one, the fixed code or stored; without `sync` (or `eof`) a new
    /// table is left open for the next block.
    pub(super) fn write_block_dynamic(
        &mut self,
        tokens: &mut Tokens,
        eof: bool,
        input: Option<&[u8]>,
        sync: bool,
    ) {
        let sync = sync || eof;
        if sync {
            tokens.add_eob();
        } else if self.go127 {
            // Go 1.27: "Ensure we can always write EOB."
            tokens.extra_hist[0] = 1;
        }
        if (self.last_huffman || eof) && self.last_header > 0 {
            self.close_open();
            self.last_huffman = false;
        }
        if self.last_header > 0 && !self.can_reuse(tokens) {
            self.close_open();
        }
        let filled = !sync && !self.go127 && self.sizes == Sizes::Full;
        let (num_lit, num_off) = self.index_tokens(tokens, filled, self.sizes == Sizes::ExactEob);
        let stored = input.filter(|i| i.len() <= super::MAX_STORE);
        let ssize = stored.map_or(0, |i| (i.len() as i64 + 5) * 8);
        let extra_bits = if stored.is_some() || self.last_header > 0 {
            self.extra_bit_size()
        } else {
            0
        };
        if self.last_header > 0 {
            let mut new_size = self.last_header + tokens.estimated_bits();
            new_size +=
                i64::from(self.literal.codes[END_BLOCK as usize].len) + (new_size >> self.penalty);
            let reuse_size = self.literal.bit_length(&self.literal_freq)
                + self.offset.bit_length(&self.offset_freq)
                + extra_bits;
            let size = if new_size < reuse_size {
                self.close_open();
                new_size
            } else {
                reuse_size
            };
            if tokens.n() < MAX_PREDEFINED_TOKENS && self.fixed_size(extra_bits) + 7 < size {
                if let Some(input) = stored.filter(|_| ssize <= size) {
                    self.write_stored(input, eof);
                    return;
                }
                self.write_fixed(tokens, eof, sync);
                return;
            }
            if let Some(input) = stored.filter(|_| ssize <= size) {
                self.write_stored(input, eof);
                return;
            }
        }
        if self.last_header == 0 {
            self.literal_freq[END_BLOCK as usize] = 1;
            self.literal.generate(&self.literal_freq, 15);
            self.offset.generate(&self.offset_freq, 15);
            self.codegen_of(num_lit, num_off, false);
            let size = self.header_size()
                + self.literal.bit_length(&self.literal_freq)
                + self.offset.bit_length(&self.offset_freq)
                + extra_bits;
            if tokens.n() < MAX_PREDEFINED_TOKENS {
                let pre_size = self.fixed_size(extra_bits);
                if pre_size <= size {
                    if let Some(input) = stored.filter(|_| ssize <= pre_size) {
                        self.write_stored(input, eof);
                        return;
                    }
                    self.write_fixed(tokens, eof, sync);
                    return;
                }
            }
            if let Some(input) = stored.filter(|_| ssize <= size) {
                self.write_stored(input, eof);
                return;
            }
            self.write_dynamic_header(num_lit, num_off, eof);
            if !sync {
                self.last_header = self.header_size();
            }
            self.last_huffman = false;
        }
        if sync {
            self.last_header = 0;
        }
        let (lit, off) = (
            std::mem::take(&mut self.literal.codes),
            std::mem::take(&mut self.offset.codes),
        );
        self.write_tokens(&tokens.toks, &lit, &off);
        self.literal.codes = lit;
        self.offset.codes = off;
    }

    /// Go's `writeBlockHuff`: `input` as literals with the open table, a new
    /// one (left open without `sync`), or stored when that looks as small.
    pub(super) fn write_block_huff(&mut self, eof: bool, input: &[u8], sync: bool) {
        self.literal_freq = [0; NUM_LIT];
        for &b in input {
            self.literal_freq[usize::from(b)] += 1;
        }
        let storable = input.len() <= super::MAX_STORE;
        let ssize = (input.len() as i64 + 5) * 8;
        if storable && input.len() > 1024 {
            // Go's test for a flat histogram, in f64 as Go computes it.
            let mut abs = 0f64;
            let avg = input.len() as f64 / 256.0;
            let max = (input.len() * 2) as f64;
            for &v in &self.literal_freq[..256] {
                let diff = f64::from(v) - avg;
                abs += diff * diff;
                if abs > max || (self.go127 && abs >= max) {
                    break;
                }
            }
            if abs < max {
                self.write_stored(input, eof);
                return;
            }
        }
        self.literal_freq[END_BLOCK as usize] = 1;
        self.tmp_literal.generate(&self.literal_freq[..257], 15);
        let mut est = bits_of(&self.tmp_literal.codes, &self.literal_freq[..257]);
        est += self.last_header;
        if self.last_header == 0 {
            est += 70 * 8;
        }
        est += est >> self.penalty;
        if storable && ssize <= est {
            self.write_stored(input, eof);
            return;
        }
        if self.last_header > 0 {
            let reuse = reuse_bits(&self.literal.codes, &self.literal_freq[..256]);
            if est < reuse {
                self.close_open();
            }
        }
        if self.last_header == 0 {
            std::mem::swap(&mut self.literal, &mut self.tmp_literal);
            self.codegen_of(257, 1, true);
            self.write_dynamic_header(257, 1, eof);
            self.last_huffman = true;
            self.last_header = self.header_size();
        }
        let codes = std::mem::take(&mut self.literal.codes);
        for &b in input {
            self.write_code(codes[usize::from(b)]);
        }
        self.literal.codes = codes;
        if eof || sync {
            self.write_code(self.literal.codes[END_BLOCK as usize]);
            self.last_header = 0;
            self.last_huffman = false;
        }
    }

    /// Go's `writeTokens` (an end of block among them is written with
    /// `lit`'s code).
    fn write_tokens(&mut self, tokens: &[u32], lit: &[HCode], off: &[HCode]) {
        for &t in tokens {
            if t < MATCH {
                self.write_code(lit[t as usize]);
                continue;
            }
            let length = (t - MATCH) >> 22;
            let code = usize::from(LENGTH_CODES[length as usize]);
            self.write_code(lit[257 + code]);
            let extra = u32::from(LENGTH_EXTRA[code]);
            if extra > 0 {
                self.write_bits(length - LENGTH_BASE[code], extra);
            }
            let offset = t & ((1 << 22) - 1);
            let code = offset_code(offset);
            self.write_code(off[code]);
            let extra = u32::from(OFFSET_EXTRA[code]);
            if extra > 0 {
                self.write_bits(offset - OFFSET_BASE[code], extra);
            }
        }
    }
}

/// The bits `freq` costs with `codes` (Go's `bitLength`).
fn bits_of(codes: &[HCode], freq: &[i32]) -> i64 {
    freq.iter()
        .zip(codes)
        .map(|(&f, c)| i64::from(f) * i64::from(c.len))
        .sum()
}

/// Go's `canReuseBits`: the bits, or `i32::MAX` when a used symbol has no
/// code.
fn reuse_bits(codes: &[HCode], freq: &[i32]) -> i64 {
    let mut total = 0;
    for (&f, c) in freq.iter().zip(codes) {
        if f != 0 {
            if c.len == 0 {
                return i64::from(i32::MAX);
            }
            total += i64::from(f) * i64::from(c.len);
        }
    }
    total
}
