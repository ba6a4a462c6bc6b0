//! The block boundaries of a raw deflate stream, read off its bits.
//!
//! [`find`](super::find) needs to know where the blocks of a stream end (in
//! plain bytes and in bits) and which of them end on a match: those are the
//! boundaries where GNU gzip's lazy matcher has nothing pending, so a
//! matcher resumed there behaves as the whole stream's did. A decoder sees
//! all of that without deflating anything, so the cuts cost a pass of a
//! Huffman decoder (hundreds of MB/s) instead of a pass of the encoder (tens
//! of MB/s); that the cuts work is then shown by rebuilding the pieces, on
//! every core (see the parent module).
//!
//! Only the structure is decoded: symbols are counted, never written out,
//! and distances are skipped (the caller decoded the stream already and
//! compares the plain length this reader counts with its own). Every read
//! is bounded; a malformed stream is `None`, never a panic.

/// How a block that is not the stream's last ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BlockEnd {
    /// Plain bytes before the next block.
    pub(crate) plain: u64,
    /// Offset in bits of the next block's first bit.
    pub(crate) bit: u64,
    /// The `bit % 8` bits of the stream before the next block in its first
    /// byte, in the low bits.
    pub(crate) partial: u8,
    /// Whether the block's last symbol before its end code was a match (a
    /// stored block, or one without symbols, did not end on a match).
    pub(crate) after_match: bool,
}

/// Reads the blocks of `compressed` (one raw deflate stream), calling
/// `each` at the end of every block but the last; gives the plain length
/// the stream decodes to, or `None` if it is malformed or truncated.
pub(crate) fn block_ends(compressed: &[u8], each: impl FnMut(&BlockEnd)) -> Option<u64> {
    walk(compressed, each).map(|(plain, _)| plain)
}

/// Every block end of the raw deflate stream at the start of `compressed`
/// (which may go on past it), read ahead while the stream is inflated: the
/// ends, the plain length and the bit offset where the stream ends. Given
/// the same stream cut at its end, [`block_ends`] reads the same bits and
/// gives the same ends, since no bit past the stream's end is taken.
pub(crate) fn read_ahead(compressed: &[u8]) -> Option<Ahead> {
    let mut ends = Vec::new();
    let (plain, end_bit) = walk(compressed, |e| ends.push(*e))?;
    Some(Ahead {
        ends,
        plain,
        end_bit,
    })
}

/// What [`read_ahead`] read.
#[derive(Debug)]
pub(crate) struct Ahead {
    pub(crate) ends: Vec<BlockEnd>,
    pub(crate) plain: u64,
    pub(crate) end_bit: u64,
}

/// [`block_ends`], with the bit offset after the last block.
fn walk(compressed: &[u8], mut each: impl FnMut(&BlockEnd)) -> Option<(u64, u64)> {
    let mut bits = Bits::new(compressed);
    let mut plain = 0u64;
    let (fixed_lit, fixed_dist) = fixed_tables()?;
    loop {
        let last = bits.take(1)? == 1;
        let after_match = match bits.take(2)? {
            0 => {
                bits.align();
                let len = bits.take(16)?;
                let nlen = bits.take(16)?;
                if len != !nlen & 0xffff {
                    return None;
                }
                bits.skip_bytes(len as usize)?;
                plain += u64::from(len);
                false
            }
            1 => symbols(&mut bits, &fixed_lit, &fixed_dist, &mut plain)?,
            2 => {
                let (lit, dist) = dynamic_tables(&mut bits)?;
                symbols(&mut bits, &lit, &dist, &mut plain)?
            }
            _ => return None,
        };
        if last {
            return Some((plain, bits.position()));
        }
        let bit = bits.position();
        let partial = compressed
            .get((bit / 8) as usize)
            .map_or(0, |b| b & ((1u8 << (bit % 8)) - 1));
        each(&BlockEnd {
            plain,
            bit,
            partial,
            after_match,
        });
    }
}

/// Decodes one block's symbols up to its end code, adding the plain bytes
/// they stand for; true when the last symbol before the end was a match.
fn symbols(bits: &mut Bits<'_>, lit: &Table, dist: &Table, plain: &mut u64) -> Option<bool> {
    let mut after_match = false;
    loop {
        let sym = lit.decode(bits)?;
        match sym {
            0..=255 => {
                *plain += 1;
                after_match = false;
            }
            256 => return Some(after_match),
            257..=285 => {
                let i = usize::from(sym - 257);
                let extra = bits.take(LEN_EXTRA[i])?;
                *plain += u64::from(LEN_BASE[i]) + u64::from(extra);
                let d = usize::from(dist.decode(bits)?);
                bits.take(*DIST_EXTRA.get(d)?)?;
                after_match = true;
            }
            _ => return None,
        }
    }
}

pub(crate) const LEN_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
pub(crate) const LEN_EXTRA: [u32; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
pub(crate) const DIST_EXTRA: [u32; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];
/// The order of the code length code's lengths in a dynamic block header.
const CLEN_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

pub(crate) fn fixed_tables() -> Option<(Table, Table)> {
    let mut lit = [0u8; 288];
    lit[..144].fill(8);
    lit[144..256].fill(9);
    lit[256..280].fill(7);
    lit[280..].fill(8);
    Some((Table::new(&lit)?, Table::new(&[5u8; 30])?))
}

/// A dynamic block's header: its literal/length and distance codes.
pub(crate) fn dynamic_tables(bits: &mut Bits<'_>) -> Option<(Table, Table)> {
    let nlit = bits.take(5)? as usize + 257;
    let ndist = bits.take(5)? as usize + 1;
    let nclen = bits.take(4)? as usize + 4;
    if nlit > 286 || ndist > 30 {
        return None;
    }
    let mut clen = [0u8; 19];
    for &i in &CLEN_ORDER[..nclen] {
        clen[i] = bits.take(3)? as u8;
    }
    let clen = Table::new(&clen)?;
    let mut lens = [0u8; 286 + 30];
    let mut n = 0;
    while n < nlit + ndist {
        let (value, repeat) = match clen.decode(bits)? {
            len @ 0..=15 => (len as u8, 1),
            16 => (*lens.get(n.checked_sub(1)?)?, 3 + bits.take(2)? as usize),
            17 => (0, 3 + bits.take(3)? as usize),
            18 => (0, 11 + bits.take(7)? as usize),
            _ => return None,
        };
        lens.get_mut(n..n + repeat)?.fill(value);
        n += repeat;
    }
    if n != nlit + ndist || lens[256] == 0 {
        return None;
    }
    Some((Table::new(&lens[..nlit])?, Table::new(&lens[nlit..n])?))
}

/// Bits of a code looked up at once: a code no longer than this is found
/// in one step. Longer codes (up to 15 bits) take a second step, in the
/// subtable of their first `ROOT` bits. The root table then stays small
/// enough for the first-level cache (a table of all 15 bits, 64 KiB for a
/// literal/length code, did not: the lookups were the reader's cost).
const ROOT: u32 = 10;

/// A canonical Huffman code as tables indexed by the next bits of the
/// stream (codes are sent most significant bit first, into a stream read
/// least significant bit first, hence the reversal).
pub(crate) struct Table {
    /// Indexed by the next `min(max, ROOT)` bits: `symbol << 8 | length`
    /// for a code that short, `start << 8 | SUB` for the first bits of a
    /// longer one (its subtable starts at `sub[start]`), 0 where no code
    /// starts.
    root: Vec<u32>,
    /// The subtables, each indexed by the `max - ROOT` bits after the root's:
    /// `symbol << 8 | length`, or 0.
    sub: Vec<u32>,
    max: u32,
}

/// Marks a root entry that points into the subtables.
const SUB: u32 = 0x80;

impl Table {
    /// The code with these lengths (0: symbol unused), or `None` when the
    /// lengths over-subscribe the code space. An incomplete code is taken
    /// (a distance code of one symbol is one), its unused entries invalid.
    fn new(lengths: &[u8]) -> Option<Table> {
        let max = u32::from(lengths.iter().copied().max().unwrap_or(0));
        if max == 0 {
            // No symbols (a distance code when the block has no matches).
            return Some(Table {
                root: vec![0; 1],
                sub: Vec::new(),
                max: 0,
            });
        }
        let mut count = [0u32; 16];
        for &l in lengths {
            count[usize::from(l)] += 1;
        }
        count[0] = 0;
        let mut next = [0u32; 16];
        let mut code = 0u32;
        for len in 1..16 {
            code = (code + count[len - 1]) << 1;
            next[len] = code;
            if code + count[len] > 1 << len {
                return None;
            }
        }
        let root_bits = max.min(ROOT);
        let sub_bits = max - root_bits;
        let mut root = vec![0u32; 1 << root_bits];
        let mut sub = Vec::new();
        for (sym, &l) in lengths.iter().enumerate() {
            if l == 0 {
                continue;
            }
            let l = u32::from(l);
            let c = next[l as usize];
            next[l as usize] += 1;
            let rev = c.reverse_bits() >> (32 - l);
            let entry = (sym as u32) << 8 | l;
            if l <= root_bits {
                let mut at = rev as usize;
                while at < root.len() {
                    root[at] = entry;
                    at += 1 << l;
                }
                continue;
            }
            // A long code: its first `root_bits` bits pick the subtable,
            // the rest (`l - root_bits` of them) its entries.
            let first = (rev & ((1 << root_bits) - 1)) as usize;
            if root[first] & SUB == 0 {
                root[first] = (sub.len() as u32) << 8 | SUB;
                sub.resize(sub.len() + (1 << sub_bits), 0);
            }
            let start = (root[first] >> 8) as usize;
            let rest = l - root_bits;
            let mut at = (rev >> root_bits) as usize;
            while at < 1 << sub_bits {
                sub[start + at] = entry;
                at += 1 << rest;
            }
        }
        Some(Table { root, sub, max })
    }

    #[inline]
    pub(crate) fn decode(&self, bits: &mut Bits<'_>) -> Option<u16> {
        let peek = bits.peek(self.max);
        let mut e = self.root[peek as usize & (self.root.len() - 1)];
        if e & SUB != 0 {
            let sub_bits = self.max - ROOT;
            let at = (e >> 8) as usize + ((peek >> ROOT) & ((1 << sub_bits) - 1)) as usize;
            e = *self.sub.get(at)?;
        }
        let len = e & 15;
        if len == 0 {
            return None;
        }
        bits.drop(len)?;
        Some((e >> 8) as u16)
    }
}

/// The stream's bits, least significant first.
pub(crate) struct Bits<'a> {
    data: &'a [u8],
    /// The next byte to load.
    at: usize,
    buf: u64,
    held: u32,
}

impl<'a> Bits<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Bits<'a> {
        Bits {
            data,
            at: 0,
            buf: 0,
            held: 0,
        }
    }

    #[inline]
    fn refill(&mut self) {
        if let Some(eight) = self.data.get(self.at..self.at + 8) {
            // Loads whole bytes up to 56 bits or more; the bits above
            // `held` are the next bytes' and are loaded again as they are.
            let v = u64::from_le_bytes(eight.try_into().unwrap_or([0; 8]));
            self.buf |= v << self.held;
            let n = (63 - self.held) / 8;
            self.at += n as usize;
            self.held += n * 8;
            return;
        }
        while self.held < 56 {
            let Some(&b) = self.data.get(self.at) else {
                return;
            };
            self.buf |= u64::from(b) << self.held;
            self.at += 1;
            self.held += 8;
        }
    }

    /// The next `n` bits (at most 32) without taking them; zeros past the end.
    #[inline]
    fn peek(&mut self, n: u32) -> u32 {
        if self.held < n {
            self.refill();
        }
        (self.buf & ((1u64 << n) - 1)) as u32
    }

    /// Takes `n` bits already peeked; `None` past the stream's end.
    #[inline]
    fn drop(&mut self, n: u32) -> Option<()> {
        if n > self.held {
            return None;
        }
        self.buf = self.buf.checked_shr(n).unwrap_or(0);
        self.held -= n;
        Some(())
    }

    /// Takes the next `n` bits (at most 32).
    #[inline]
    pub(crate) fn take(&mut self, n: u32) -> Option<u32> {
        let v = self.peek(n);
        self.drop(n)?;
        Some(v)
    }

    /// Skips to the next byte boundary.
    pub(crate) fn align(&mut self) {
        let n = self.held % 8;
        self.buf >>= n;
        self.held -= n;
    }

    /// Skips `n` whole bytes (the bit position is on a byte boundary).
    pub(crate) fn skip_bytes(&mut self, n: usize) -> Option<()> {
        let buffered = (self.held / 8) as usize;
        if n <= buffered {
            return self.drop(n as u32 * 8);
        }
        let rest = n - buffered;
        if self.at + rest > self.data.len() {
            return None;
        }
        self.at += rest;
        self.buf = 0;
        self.held = 0;
        Some(())
    }

    /// Bits taken so far.
    pub(crate) fn position(&self) -> u64 {
        self.at as u64 * 8 - u64::from(self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::DeflateEncoder;
    use flate2::Compression;
    use std::io::Write;

    fn deflate(level: u32, plain: &[u8]) -> Vec<u8> {
        let mut e = DeflateEncoder::new(Vec::new(), Compression::new(level));
        e.write_all(plain).expect("deflate");
        e.finish().expect("deflate")
    }

    fn text(len: usize) -> Vec<u8> {
        let mut x = 12345u64;
        (0..len)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                b"abcdefgh \n"[(x >> 60) as usize % 10]
            })
            .collect()
    }

    #[test]
    fn counts_the_plain_bytes_of_every_kind_of_block() {
        let plain = text(3 << 20);
        // Level 0: stored blocks; 1: fixed and dynamic; 9: dynamic.
        for level in [0, 1, 6, 9] {
            let z = deflate(level, &plain);
            let mut ends = Vec::new();
            let total = block_ends(&z, |e| ends.push(*e));
            assert_eq!(total, Some(plain.len() as u64), "level {level}");
            assert!(!ends.is_empty(), "level {level}: no block ends seen");
            assert!(ends
                .windows(2)
                .all(|w| w[0].plain < w[1].plain && w[0].bit < w[1].bit));
        }
        // Fixed codes only (a short stream).
        let z = deflate(6, b"hello hello hello");
        assert_eq!(block_ends(&z, |_| {}), Some(17));
    }

    #[test]
    fn a_truncated_or_garbled_stream_is_none_not_a_panic() {
        let plain = text(1 << 20);
        let mut x = 99u64;
        // Stored, fixed and dynamic blocks, and a stream of tiny blocks.
        let mut streams: Vec<Vec<u8>> = [0, 1, 6].iter().map(|&l| deflate(l, &plain)).collect();
        streams.push(deflate(6, b"hello hello hello"));
        for z in &streams {
            for cut in [0, 1, 2, 100, z.len() / 2, z.len() - 1] {
                let cut = cut.min(z.len() - 1);
                assert_eq!(block_ends(&z[..cut], |_| {}), None, "cut at {cut}");
            }
            for _ in 0..3000 {
                let mut bad = z[..70_000.min(z.len())].to_vec();
                for _ in 0..1 + (x >> 60) % 3 {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    let at = (x >> 33) as usize % bad.len();
                    bad[at] ^= 1 << ((x >> 20) % 8);
                }
                let at = (x >> 40) as usize % bad.len();
                let _ = block_ends(&bad, |_| {});
                let _ = block_ends(&bad[..at], |_| {});
            }
        }
        // Random bytes.
        for len in [1usize, 5, 64, 1000, 100_000] {
            for _ in 0..200 {
                let junk: Vec<u8> = (0..len)
                    .map(|_| {
                        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                        (x >> 56) as u8
                    })
                    .collect();
                let _ = block_ends(&junk, |_| {});
            }
        }
    }
}
