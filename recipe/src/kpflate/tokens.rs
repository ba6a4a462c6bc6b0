//! klauspost's token list (`token.go`): the tokens of one block and their
//! histograms, kept as the matchers add tokens, and the Shannon estimate of
//! a fresh table's size (`EstimatedBits`, in `f32` as Go computes it).
//!
//! A token is goflate's: a literal is its byte value (256 the end of
//! block), a match is `MATCH | (length - 3) << 22 | (distance - 1)`.

use crate::goflate::huffman::{offset_code, END_BLOCK, LENGTH_CODES, LENGTH_EXTRA, OFFSET_EXTRA};

/// The bit that marks a match token.
pub(super) const MATCH: u32 = 1 << 30;

/// One block's tokens and histograms (Go's `tokens`).
pub(super) struct Tokens {
    /// Literal bytes.
    pub(super) lit_hist: [i32; 256],
    /// Symbols 256 (end of block) to 287: the end of block and length codes.
    pub(super) extra_hist: [i32; 32],
    /// Distance codes.
    pub(super) off_hist: [i32; 32],
    /// The tokens.
    pub(super) toks: Vec<u32>,
}

impl Tokens {
    pub(super) fn new() -> Tokens {
        Tokens {
            lit_hist: [0; 256],
            extra_hist: [0; 32],
            off_hist: [0; 32],
            toks: Vec::with_capacity(super::MAX_STORE + 1),
        }
    }

    /// The number of tokens (Go's `n`).
    pub(super) fn n(&self) -> usize {
        self.toks.len()
    }

    pub(super) fn reset(&mut self) {
        self.toks.clear();
        self.lit_hist = [0; 256];
        self.extra_hist = [0; 32];
        self.off_hist = [0; 32];
    }

    #[inline]
    pub(super) fn add_literal(&mut self, lit: u8) {
        self.toks.push(u32::from(lit));
        self.lit_hist[usize::from(lit)] += 1;
    }

    pub(super) fn add_literals(&mut self, lits: &[u8]) {
        for &b in lits {
            self.add_literal(b);
        }
    }

    /// A match of `xlength` = length - 3 (at most 255) at `xoffset` =
    /// distance - 1 (Go's `AddMatch`).
    pub(super) fn add_match(&mut self, xlength: u32, xoffset: u32) {
        self.extra_hist[usize::from(LENGTH_CODES[xlength as usize]) + 1] += 1;
        self.off_hist[offset_code(xoffset)] += 1;
        self.toks.push(MATCH | xlength << 22 | xoffset);
    }

    /// A match of any length (at least 4), split into pieces of at most 258
    /// as Go's `AddMatchLong` splits it (never leaving a piece under 3).
    pub(super) fn add_match_long(&mut self, mut length: i32, xoffset: u32) {
        let oc = offset_code(xoffset);
        while length > 0 {
            let mut xl = length;
            if xl > 258 {
                xl = if xl > 258 + 3 { 258 } else { 258 - 3 };
            }
            length -= xl;
            let xl = (xl - 3) as u32;
            self.extra_hist[usize::from(LENGTH_CODES[xl as usize]) + 1] += 1;
            self.off_hist[oc] += 1;
            self.toks.push(MATCH | xl << 22 | xoffset);
        }
    }

    pub(super) fn add_eob(&mut self) {
        self.toks.push(END_BLOCK);
        self.extra_hist[0] += 1;
    }

    /// Go's `EstimatedBits`: an estimate of the block's bits with a table
    /// made for it (without the header), in Go's `f32` arithmetic.
    pub(super) fn estimated_bits(&self) -> i64 {
        let mut shannon = 0f32;
        let mut bits = 0i64;
        let mut matches = 0i64;
        let total = self.toks.len();
        if total > 0 {
            let inv = 1.0f32 / total as f32;
            for &v in &self.lit_hist {
                if v > 0 {
                    let n = v as f32;
                    shannon += at_least_one(-fast_log2(n * inv)) * n;
                }
            }
            shannon += 15.0;
            for (i, &v) in self.extra_hist[1..286 - 256].iter().enumerate() {
                if v > 0 {
                    let n = v as f32;
                    shannon += at_least_one(-fast_log2(n * inv)) * n;
                    bits += i64::from(LENGTH_EXTRA.get(i).copied().unwrap_or(0)) * i64::from(v);
                    matches += i64::from(v);
                }
            }
        }
        if matches > 0 {
            let inv = 1.0f32 / matches as f32;
            for (i, &v) in self.off_hist[..30].iter().enumerate() {
                if v > 0 {
                    let n = v as f32;
                    shannon += at_least_one(-fast_log2(n * inv)) * n;
                    bits += i64::from(OFFSET_EXTRA[i]) * i64::from(v);
                }
            }
        }
        shannon as i64 + bits
    }
}

/// Go's `atLeastOne`: clamped to 1..=15.
fn at_least_one(v: f32) -> f32 {
    v.clamp(1.0, 15.0)
}

/// Go's `mFastLog2`: a polynomial approximation of log2, bit for bit (no
/// fused multiply-add: Go on amd64 does not fuse these).
#[allow(clippy::excessive_precision)]
fn fast_log2(val: f32) -> f32 {
    let mut ux = val.to_bits() as i32;
    let mut log2 = (((ux >> 23) & 255) - 128) as f32;
    ux &= -0x7f80_0001;
    ux += 127 << 23;
    let uval = f32::from_bits(ux as u32);
    log2 += ((-0.344_848_43f32) * uval + 2.024_665_78f32) * uval - 0.674_877_59f32;
    log2
}
