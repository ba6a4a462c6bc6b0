//! The LZ77 symbols of a raw deflate stream, read from any block start:
//! literals and length/distance pairs with the plain offset each ends at,
//! nothing written out. Built on the structure-only decoder of
//! [`crate::cuts::blocks`] (its bit reader and Huffman tables); every read is
//! bounded and a malformed stream is `None`, never a panic.

use crate::cuts::blocks::{
    dynamic_tables, fixed_tables, Bits, Table, DIST_EXTRA, LEN_BASE, LEN_EXTRA,
};

const DIST_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];

/// One symbol of the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sym {
    /// A literal byte (its value is the plain byte: not kept).
    Lit,
    /// A match of `len` (3 to 258) bytes `dist` (1 to 32 768) back.
    Match { len: u16, dist: u16 },
    /// A stored block of this many bytes: its parse is not in the stream.
    Stored(u32),
}

/// A reader of a stream's symbols from one of its block starts.
pub(crate) struct Symbols<'a> {
    bits: Bits<'a>,
    /// The current block's codes; `None` between blocks.
    codes: Option<(Table, Table)>,
    /// Whether the current (or, between blocks, the previous) block is the
    /// stream's last.
    last: bool,
    /// The stream ended, or turned out malformed.
    done: bool,
    /// Plain offset after the last symbol read.
    pub(crate) plain: u64,
}

impl<'a> Symbols<'a> {
    /// A reader of `compressed` (one raw deflate stream) at the block that
    /// starts at bit `bit`, plain offset `plain`; `None` if that bit is not
    /// in the stream.
    pub(crate) fn at(compressed: &'a [u8], bit: u64, plain: u64) -> Option<Symbols<'a>> {
        let byte = usize::try_from(bit / 8).ok()?;
        let mut bits = Bits::new(compressed.get(byte..)?);
        bits.take((bit % 8) as u32)?;
        Some(Symbols {
            bits,
            codes: None,
            last: false,
            done: false,
            plain,
        })
    }

    /// The next symbol (block headers are read on the way), or `None` at the
    /// stream's end or where it is malformed (then always `None`).
    pub(crate) fn next_sym(&mut self) -> Option<Sym> {
        let s = self.step();
        if s.is_none() {
            self.done = true;
            self.codes = None;
        }
        s
    }

    fn step(&mut self) -> Option<Sym> {
        if self.done {
            return None;
        }
        loop {
            let Some((lit, dist)) = &self.codes else {
                if self.last {
                    return None;
                }
                self.last = self.bits.take(1)? == 1;
                match self.bits.take(2)? {
                    0 => {
                        self.bits.align();
                        let len = self.bits.take(16)?;
                        let nlen = self.bits.take(16)?;
                        if len != !nlen & 0xffff {
                            return None;
                        }
                        self.bits.skip_bytes(len as usize)?;
                        self.plain += u64::from(len);
                        return Some(Sym::Stored(len));
                    }
                    1 => self.codes = Some(fixed_tables()?),
                    2 => self.codes = Some(dynamic_tables(&mut self.bits)?),
                    _ => return None,
                }
                continue;
            };
            let sym = lit.decode(&mut self.bits)?;
            match sym {
                0..=255 => {
                    self.plain += 1;
                    return Some(Sym::Lit);
                }
                256 => {
                    self.codes = None;
                    continue;
                }
                257..=285 => {
                    let i = usize::from(sym - 257);
                    let len = LEN_BASE[i] + self.bits.take(LEN_EXTRA[i])? as u16;
                    let d = usize::from(dist.decode(&mut self.bits)?);
                    let dist = DIST_BASE.get(d)? + self.bits.take(*DIST_EXTRA.get(d)?)? as u16;
                    if u64::from(dist) > self.plain {
                        return None;
                    }
                    self.plain += u64::from(len);
                    return Some(Sym::Match { len, dist });
                }
                _ => return None,
            }
        }
    }
}
