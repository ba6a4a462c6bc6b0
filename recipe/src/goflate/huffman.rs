//! Go's block writer (`huffman_bit_writer.go`, `huffman_code.go`): the
//! length-limited Huffman codes Go builds, the choice between stored, fixed
//! and dynamic blocks, the code-length run-length coding and the bit order.
//!
//! Tokens are Go's 32-bit tokens: a literal is its byte value (256 is the
//! end of block), a match is `MATCH | (length - 3) << 22 | (distance - 1)`.

/// The bit that marks a match token.
pub(super) const MATCH: u32 = 1 << 30;
/// The end-of-block symbol, as a token.
pub(crate) const END_BLOCK: u32 = 256;
/// Literal/length symbols (0 to 285).
pub(crate) const NUM_LIT: usize = 286;
/// Distance symbols.
pub(crate) const NUM_OFF: usize = 30;
/// Code-length symbols.
pub(crate) const NUM_CODEGEN: usize = 19;
/// The end marker of the code-length sequence.
pub(crate) const BAD: u8 = 255;
/// The largest stored block.
pub(super) const MAX_STORE: usize = 65_535;

/// Extra bits of length codes 257 to 285.
pub(crate) const LENGTH_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
/// The smallest `length - 3` of each length code.
pub(crate) const LENGTH_BASE: [u32; 29] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112, 128,
    160, 192, 224, 255,
];
/// Extra bits of distance codes.
pub(crate) const OFFSET_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];
/// The smallest `distance - 1` of each distance code.
pub(crate) const OFFSET_BASE: [u32; 30] = [
    0x0000, 0x0001, 0x0002, 0x0003, 0x0004, 0x0006, 0x0008, 0x000c, 0x0010, 0x0018, 0x0020, 0x0030,
    0x0040, 0x0060, 0x0080, 0x00c0, 0x0100, 0x0180, 0x0200, 0x0300, 0x0400, 0x0600, 0x0800, 0x0c00,
    0x1000, 0x1800, 0x2000, 0x3000, 0x4000, 0x6000,
];
/// The order in which code-length code lengths are written.
pub(crate) const CODEGEN_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

/// The length code (0 to 28) of each `length - 3`.
pub(crate) const LENGTH_CODES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 28 {
        let mut x = LENGTH_BASE[c];
        while x < LENGTH_BASE[c + 1] {
            t[x as usize] = c as u8;
            x += 1;
        }
        c += 1;
    }
    t[255] = 28;
    t
};

/// The distance code of each `distance - 1` below 256.
pub(crate) const OFFSET_CODES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 16 {
        let end = if c == 15 { 256 } else { OFFSET_BASE[c + 1] };
        let mut x = OFFSET_BASE[c];
        while x < end {
            t[x as usize] = c as u8;
            x += 1;
        }
        c += 1;
    }
    t
};

/// The distance code of `distance - 1` (Go's `offsetCode`).
pub(crate) fn offset_code(off: u32) -> usize {
    if off < 256 {
        usize::from(OFFSET_CODES[off as usize])
    } else if off >> 7 < 256 {
        usize::from(OFFSET_CODES[(off >> 7) as usize]) + 14
    } else {
        usize::from(OFFSET_CODES[(off >> 14) as usize]) + 28
    }
}

/// A code: its bits (already reversed, to be written low bit first) and length.
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct HCode {
    pub(crate) code: u16,
    pub(crate) len: u16,
}

/// The bit-reversed `len` low bits of `code`.
pub(crate) fn reverse(code: u16, len: u16) -> u16 {
    (code << (16 - len)).reverse_bits()
}

/// A symbol with a non-zero frequency.
#[derive(Clone, Copy)]
struct Node {
    literal: u16,
    freq: i32,
}

/// One Huffman code (Go's `huffmanEncoder`).
pub(crate) struct Encoder {
    pub(crate) codes: Vec<HCode>,
    list: Vec<Node>,
}

impl Encoder {
    pub(crate) fn new(size: usize) -> Encoder {
        Encoder {
            codes: vec![HCode::default(); size],
            list: Vec::with_capacity(NUM_LIT + 1),
        }
    }

    /// The bits `freq` costs with this code.
    pub(crate) fn bit_length(&self, freq: &[i32]) -> i64 {
        freq.iter()
            .zip(&self.codes)
            .filter(|(&f, _)| f != 0)
            .map(|(&f, c)| i64::from(f) * i64::from(c.len))
            .sum()
    }

    /// Go's `generate`: the code of `freq`, at most `max_bits` long. One or
    /// two used symbols get length 1 each (so one symbol makes an
    /// incomplete code, as Go writes it).
    pub(crate) fn generate(&mut self, freq: &[i32], max_bits: i32) {
        self.list.clear();
        for (i, &f) in freq.iter().enumerate() {
            if f != 0 {
                self.list.push(Node {
                    literal: i as u16,
                    freq: f,
                });
            } else {
                self.codes[i].len = 0;
            }
        }
        if self.list.len() <= 2 {
            for (i, node) in self.list.iter().enumerate() {
                self.codes[usize::from(node.literal)] = HCode {
                    code: i as u16,
                    len: 1,
                };
            }
            return;
        }
        // (freq, literal) is a total order: any sort gives Go's order.
        self.list.sort_unstable_by_key(|n| (n.freq, n.literal));
        let (counts, levels) = bit_counts(&self.list, max_bits);
        self.assign(&counts[..=levels]);
    }

    /// Go's `assignEncodingAndSize`: the most frequent symbols get the
    /// shortest codes, and codes of one length go in symbol order.
    fn assign(&mut self, bit_count: &[i32]) {
        let mut code: u16 = 0;
        let mut end = self.list.len();
        for (n, &bits) in bit_count.iter().enumerate() {
            code <<= 1;
            if n == 0 || bits == 0 {
                continue;
            }
            let chunk = &mut self.list[end - bits as usize..end];
            chunk.sort_unstable_by_key(|n| n.literal);
            for node in chunk.iter() {
                self.codes[usize::from(node.literal)] = HCode {
                    code: reverse(code, n as u16),
                    len: n as u16,
                };
                code = code.wrapping_add(1);
            }
            end -= bits as usize;
        }
    }
}

/// Go's `bitCounts` (its package-merge variant): how many symbols get each
/// length, for `list` sorted by increasing frequency (at least 3 symbols);
/// returns the counts and the largest length used as index.
fn bit_counts(list: &[Node], mut max_bits: i32) -> ([i32; 17], usize) {
    #[derive(Clone, Copy, Default)]
    struct Level {
        last_freq: i32,
        next_char_freq: i32,
        next_pair_freq: i32,
        needed: i32,
    }
    let n = list.len() as i32;
    let freq = |i: i32| list.get(i as usize).map_or(i32::MAX, |node| node.freq);
    if max_bits > n - 1 {
        max_bits = n - 1;
    }
    let top = max_bits as usize;
    let mut levels = [Level::default(); 17];
    let mut leaf_counts = [[0i32; 17]; 17];
    for level in 1..=top {
        levels[level] = Level {
            last_freq: freq(1),
            next_char_freq: freq(2),
            next_pair_freq: if level == 1 {
                i32::MAX
            } else {
                freq(0).wrapping_add(freq(1))
            },
            needed: 0,
        };
        leaf_counts[level][level] = 2;
    }
    levels[top].needed = 2 * n - 4;
    let mut level = top;
    loop {
        let l = &mut levels[level];
        if l.next_pair_freq == i32::MAX && l.next_char_freq == i32::MAX {
            l.needed = 0;
            levels[level + 1].next_pair_freq = i32::MAX;
            level += 1;
            continue;
        }
        let prev_freq = l.last_freq;
        if l.next_char_freq < l.next_pair_freq {
            let next = leaf_counts[level][level] + 1;
            l.last_freq = l.next_char_freq;
            leaf_counts[level][level] = next;
            l.next_char_freq = freq(next);
        } else {
            l.last_freq = l.next_pair_freq;
            let below = leaf_counts[level - 1];
            leaf_counts[level][..level].copy_from_slice(&below[..level]);
            levels[level - 1].needed = 2;
        }
        let l = &mut levels[level];
        l.needed -= 1;
        if l.needed == 0 {
            if level == top {
                break;
            }
            let sum = prev_freq.wrapping_add(l.last_freq);
            levels[level + 1].next_pair_freq = sum;
            level += 1;
        } else {
            while levels[level - 1].needed > 0 {
                level -= 1;
            }
        }
    }
    assert_eq!(leaf_counts[top][top], n, "Go's bitCounts invariant");
    let mut counts = [0i32; 17];
    let c = &leaf_counts[top];
    for (bits, level) in (1..=top).rev().enumerate() {
        counts[bits + 1] = c[level] - c[level - 1];
    }
    (counts, top)
}

/// The fixed literal/length code.
pub(crate) fn fixed_literal() -> Vec<HCode> {
    (0..NUM_LIT as u16)
        .map(|ch| {
            let (bits, len) = match ch {
                0..144 => (ch + 48, 8),
                144..256 => (ch + 400 - 144, 9),
                256..280 => (ch - 256, 7),
                _ => (ch + 192 - 280, 8),
            };
            HCode {
                code: reverse(bits, len),
                len,
            }
        })
        .collect()
}

/// Go's `huffmanBitWriter`: the output so far (whole bytes in `out`, the
/// rest in `bits`), and the block encoder's tables.
pub(super) struct BlockWriter {
    /// Whole bytes written and not yet handed over.
    pub(super) out: Vec<u8>,
    bits: u64,
    nbits: u32,
    literal_freq: [i32; NUM_LIT],
    offset_freq: [i32; NUM_OFF],
    codegen: Vec<u8>,
    codegen_freq: [i32; NUM_CODEGEN],
    literal: Encoder,
    offset: Encoder,
    codegen_enc: Encoder,
    fixed_literal: Encoder,
    fixed_offset: Encoder,
    /// The distance code of a block of literals only.
    huff_offset: Encoder,
}

impl BlockWriter {
    pub(super) fn new() -> BlockWriter {
        let mut huff_offset = Encoder::new(NUM_OFF);
        let mut one = [0i32; NUM_OFF];
        one[0] = 1;
        huff_offset.generate(&one, 15);
        let mut fixed_literal_enc = Encoder::new(NUM_LIT);
        fixed_literal_enc.codes = fixed_literal();
        let mut fixed_offset = Encoder::new(NUM_OFF);
        for (ch, c) in fixed_offset.codes.iter_mut().enumerate() {
            *c = HCode {
                code: reverse(ch as u16, 5),
                len: 5,
            };
        }
        BlockWriter {
            out: Vec::with_capacity(1 << 17),
            bits: 0,
            nbits: 0,
            literal_freq: [0; NUM_LIT],
            offset_freq: [0; NUM_OFF],
            codegen: vec![0; NUM_LIT + NUM_OFF + 1],
            codegen_freq: [0; NUM_CODEGEN],
            literal: Encoder::new(NUM_LIT),
            offset: Encoder::new(NUM_OFF),
            codegen_enc: Encoder::new(NUM_CODEGEN),
            fixed_literal: fixed_literal_enc,
            fixed_offset,
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

    /// Where the output is: the whole bytes not yet handed over, the
    /// pending bits, and the `nbits % 8` of them past their whole bytes
    /// (the partial byte a cut records), in the low bits.
    pub(super) fn position(&self) -> (usize, u32, u8) {
        let whole = self.nbits / 8 * 8;
        let mask = (1u16 << (self.nbits % 8)) - 1;
        let partial = (self.bits >> whole) as u16 & mask;
        (self.out.len(), self.nbits, partial as u8)
    }

    /// Starts after the `n` (0 to 7) bits of `partial` (a piece of a cut
    /// stream: the previous piece's last bits, in its first byte).
    pub(super) fn resume(&mut self, partial: u8, n: u32) {
        let n = n.min(7);
        self.bits = u64::from(partial) & ((1 << n) - 1);
        self.nbits = n;
    }

    /// Moves the pending whole bytes to `out`; gives the bits left (fewer
    /// than 8) and how many.
    pub(super) fn whole_bytes(&mut self) -> (u8, u32) {
        while self.nbits >= 8 {
            self.out.push(self.bits as u8);
            self.bits >>= 8;
            self.nbits -= 8;
        }
        (self.bits as u8, self.nbits)
    }

    /// Pads the bits to a whole byte with zeros (Go's `flush`).
    pub(super) fn flush(&mut self) {
        while self.nbits > 0 {
            self.out.push(self.bits as u8);
            self.bits >>= 8;
            self.nbits = self.nbits.saturating_sub(8);
        }
        self.bits = 0;
    }

    /// Go's `writeStoredHeader`.
    pub(super) fn write_stored_header(&mut self, length: usize, eof: bool) {
        self.write_bits(u32::from(eof), 3);
        self.flush();
        self.write_bits(length as u32 & 0xffff, 16);
        self.write_bits(!(length as u32) & 0xffff, 16);
    }

    /// Go's `writeBytes` (after a stored header: the bits are whole bytes).
    fn write_bytes(&mut self, bytes: &[u8]) {
        debug_assert_eq!(self.nbits % 8, 0);
        self.flush();
        self.out.extend_from_slice(bytes);
    }

    /// A stored block of `input` (Go's `writeStoredBlock`).
    pub(super) fn write_stored(&mut self, input: &[u8]) {
        self.write_stored_header(input.len(), false);
        self.write_bytes(input);
    }

    /// Counts the tokens' symbols (Go's `indexTokens`) and builds both codes;
    /// returns the numbers of literal/length and distance codes to send.
    fn index_tokens(&mut self, tokens: &[u32]) -> (usize, usize) {
        self.literal_freq = [0; NUM_LIT];
        self.offset_freq = [0; NUM_OFF];
        for &t in tokens {
            if t < MATCH {
                self.literal_freq[t as usize] += 1;
            } else {
                let length = (t - MATCH) >> 22;
                self.literal_freq[257 + usize::from(LENGTH_CODES[length as usize])] += 1;
                self.offset_freq[offset_code(t & ((1 << 22) - 1))] += 1;
            }
        }
        let mut num_lit = NUM_LIT;
        while self.literal_freq[num_lit - 1] == 0 {
            num_lit -= 1;
        }
        let mut num_off = NUM_OFF;
        while num_off > 0 && self.offset_freq[num_off - 1] == 0 {
            num_off -= 1;
        }
        if num_off == 0 {
            self.offset_freq[0] = 1;
            num_off = 1;
        }
        self.literal.generate(&self.literal_freq, 15);
        self.offset.generate(&self.offset_freq, 15);
        (num_lit, num_off)
    }

    /// Go's `generateCodegen`: the run-length coded code lengths of the
    /// block's two codes (`offsets`: the distance code used) into
    /// `codegen`, and their frequencies.
    fn generate_codegen(&mut self, num_lit: usize, num_off: usize, offsets: &[HCode]) {
        self.codegen_freq = [0; NUM_CODEGEN];
        let cg = &mut self.codegen;
        let lens = self.literal.codes[..num_lit]
            .iter()
            .chain(&offsets[..num_off]);
        for (to, c) in cg.iter_mut().zip(lens) {
            *to = c.len as u8;
        }
        cg[num_lit + num_off] = BAD;
        run_length_codegen(cg, &mut self.codegen_freq);
    }

    /// Go's `dynamicSize`: the bits of a dynamic block (`offsets`: its
    /// distance code), and how many code-length code lengths it sends.
    fn dynamic_size(&self, offsets: &Encoder, extra_bits: i64) -> (i64, usize) {
        let mut num_codegens = NUM_CODEGEN;
        while num_codegens > 4 && self.codegen_freq[CODEGEN_ORDER[num_codegens - 1]] == 0 {
            num_codegens -= 1;
        }
        let header = 3
            + 5
            + 5
            + 4
            + 3 * num_codegens as i64
            + self.codegen_enc.bit_length(&self.codegen_freq)
            + i64::from(self.codegen_freq[16]) * 2
            + i64::from(self.codegen_freq[17]) * 3
            + i64::from(self.codegen_freq[18]) * 7;
        let size = header
            + self.literal.bit_length(&self.literal_freq)
            + offsets.bit_length(&self.offset_freq)
            + extra_bits;
        (size, num_codegens)
    }

    /// Go's `writeDynamicHeader` (`offsets`: the distance code used).
    fn write_dynamic_header(&mut self, num_lit: usize, num_off: usize, num_codegens: usize) {
        self.write_bits(4, 3);
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

    /// Go's `writeBlock` (never the last block: Go ends its streams with an
    /// empty stored block): `tokens` (the end of block is appended here) as
    /// the smallest of fixed, dynamic and, when `input` (the block's plain
    /// bytes) is given and at most 65,535 bytes, stored.
    pub(super) fn write_block(&mut self, tokens: &mut Vec<u32>, input: Option<&[u8]>) {
        tokens.push(END_BLOCK);
        let (num_lit, num_off) = self.index_tokens(tokens);
        let stored = input.filter(|i| i.len() <= MAX_STORE);
        let mut extra_bits = 0i64;
        if stored.is_some() {
            for code in 257 + 8..num_lit {
                extra_bits +=
                    i64::from(self.literal_freq[code]) * i64::from(LENGTH_EXTRA[code - 257]);
            }
            for (&f, &extra) in self.offset_freq[..num_off]
                .iter()
                .zip(&OFFSET_EXTRA)
                .skip(4)
            {
                extra_bits += i64::from(f) * i64::from(extra);
            }
        }
        let mut size = 3
            + self.fixed_literal.bit_length(&self.literal_freq)
            + self.fixed_offset.bit_length(&self.offset_freq)
            + extra_bits;
        let offsets = std::mem::take(&mut self.offset.codes);
        self.generate_codegen(num_lit, num_off, &offsets);
        self.offset.codes = offsets;
        self.codegen_enc.generate(&self.codegen_freq, 7);
        let (dynamic_size, num_codegens) = self.dynamic_size(&self.offset, extra_bits);
        let dynamic = dynamic_size < size;
        if dynamic {
            size = dynamic_size;
        }
        if let Some(input) = stored {
            if ((input.len() as i64) + 5) * 8 < size {
                self.write_stored(input);
                return;
            }
        }
        if dynamic {
            self.write_dynamic_header(num_lit, num_off, num_codegens);
            self.write_tokens_with(tokens, false);
        } else {
            self.write_bits(2, 3);
            self.write_tokens_with(tokens, true);
        }
    }

    /// Go's `writeBlockDynamic` (level 1): dynamic, or stored when that
    /// saves less than 1/16 (`input` is at most 65,535 bytes).
    pub(super) fn write_block_dynamic(&mut self, tokens: &mut Vec<u32>, input: &[u8]) {
        tokens.push(END_BLOCK);
        let (num_lit, num_off) = self.index_tokens(tokens);
        let offsets = std::mem::take(&mut self.offset.codes);
        self.generate_codegen(num_lit, num_off, &offsets);
        self.offset.codes = offsets;
        self.codegen_enc.generate(&self.codegen_freq, 7);
        let (size, num_codegens) = self.dynamic_size(&self.offset, 0);
        if input.len() <= MAX_STORE && ((input.len() as i64) + 5) * 8 < size + (size >> 4) {
            self.write_stored(input);
            return;
        }
        self.write_dynamic_header(num_lit, num_off, num_codegens);
        self.write_tokens_with(tokens, false);
    }

    /// Go's `writeBlockHuff`: `input` as literals in a dynamic block, or
    /// stored when that saves less than 1/16.
    pub(super) fn write_block_huff(&mut self, input: &[u8]) {
        self.literal_freq = [0; NUM_LIT];
        for &b in input {
            self.literal_freq[usize::from(b)] += 1;
        }
        self.literal_freq[END_BLOCK as usize] = 1;
        // Only entry 0 is set: Go leaves the others as the last block had
        // them, and they cost nothing with `huff_offset` (length 0).
        self.offset_freq[0] = 1;
        self.literal.generate(&self.literal_freq, 15);
        let offsets = std::mem::take(&mut self.huff_offset.codes);
        self.generate_codegen(257, 1, &offsets);
        self.huff_offset.codes = offsets;
        self.codegen_enc.generate(&self.codegen_freq, 7);
        let (size, num_codegens) = self.dynamic_size(&self.huff_offset, 0);
        if input.len() <= MAX_STORE && ((input.len() as i64) + 5) * 8 < size + (size >> 4) {
            self.write_stored(input);
            return;
        }
        self.write_dynamic_header(257, 1, num_codegens);
        let codes = std::mem::take(&mut self.literal.codes);
        for &b in input {
            self.write_code(codes[usize::from(b)]);
        }
        self.write_code(codes[END_BLOCK as usize]);
        self.literal.codes = codes;
    }

    /// The literal/length and distance codes: the block's own, or the fixed ones.
    fn codes(&mut self, fixed: bool) -> (&mut Vec<HCode>, &mut Vec<HCode>) {
        if fixed {
            (&mut self.fixed_literal.codes, &mut self.fixed_offset.codes)
        } else {
            (&mut self.literal.codes, &mut self.offset.codes)
        }
    }

    /// [`Self::write_tokens`] with the block's own codes, or the fixed ones.
    fn write_tokens_with(&mut self, tokens: &[u32], fixed: bool) {
        let (lit, off) = self.codes(fixed);
        let (lit, off) = (std::mem::take(lit), std::mem::take(off));
        self.write_tokens(tokens, &lit, &off);
        let (lit_to, off_to) = self.codes(fixed);
        (*lit_to, *off_to) = (lit, off);
    }

    /// Go's `writeTokens`.
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

    /// Ends the stream as Go's `Close` does: an empty final stored block.
    pub(super) fn finish(&mut self) {
        self.write_stored_header(0, true);
        self.flush();
    }
}

/// Go's `generateCodegen` after the lengths are in place: `cg` holds the
/// code lengths of both codes followed by [`BAD`]; they are replaced, in
/// place, by their run-length coding (codes 16, 17 and 18 each followed by
/// its repeat count), ended by [`BAD`], and each code's uses are counted
/// in `freq`. Shared by this module and `kpflate`'s writer.
pub(crate) fn run_length_codegen(cg: &mut [u8], freq: &mut [i32; NUM_CODEGEN]) {
    let mut size = cg[0];
    let mut count: i32 = 1;
    let mut out = 0usize;
    let mut input = 1usize;
    while size != BAD {
        let next = cg[input];
        input += 1;
        if next == size {
            count += 1;
            continue;
        }
        if size != 0 {
            cg[out] = size;
            out += 1;
            freq[usize::from(size)] += 1;
            count -= 1;
            while count >= 3 {
                let n = count.min(6);
                cg[out] = 16;
                cg[out + 1] = (n - 3) as u8;
                out += 2;
                freq[16] += 1;
                count -= n;
            }
        } else {
            while count >= 11 {
                let n = count.min(138);
                cg[out] = 18;
                cg[out + 1] = (n - 11) as u8;
                out += 2;
                freq[18] += 1;
                count -= n;
            }
            if count >= 3 {
                cg[out] = 17;
                cg[out + 1] = (count - 3) as u8;
                out += 2;
                freq[17] += 1;
                count = 0;
            }
        }
        count -= 1;
        while count >= 0 {
            cg[out] = size;
            out += 1;
            freq[usize::from(size)] += 1;
            count -= 1;
        }
        size = next;
        count = 1;
    }
    cg[out] = BAD;
}
