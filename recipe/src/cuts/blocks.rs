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
//! Only the structure is decoded ([`super::symbols`], the reader the base's
//! parse is read with too): symbols are counted, never written out (the
//! caller decoded the stream already and compares the plain length this
//! reader counts with its own). Every read is bounded; a malformed stream
//! is `None`, never a panic.

use super::symbols::Symbols;

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

/// [`read_ahead`] of a stream read from a file a window at a time (a large
/// object's, never held whole): the stream is `stream.len` bytes, and no
/// bit past it is read.
pub(crate) fn read_ahead_in(stream: super::symbols::FileStream<'_>) -> Option<Ahead> {
    use std::os::unix::fs::FileExt;
    let mut s = Symbols::at_in(stream, 0, 0, None)?;
    if !s.record_to_end() {
        return None;
    }
    let end_bit = s.bit_offset();
    let starts = s.starts.take().unwrap_or_default();
    let mut ends = Vec::with_capacity(starts.len().saturating_sub(1));
    for &(plain, bit, after_match) in starts.iter().skip(1) {
        let mut byte = [0u8; 1];
        if bit % 8 != 0 {
            stream
                .file
                .read_exact_at(&mut byte, stream.start + bit / 8)
                .ok()?;
        }
        ends.push(BlockEnd {
            plain,
            bit,
            partial: byte[0] & ((1u8 << (bit % 8)) - 1),
            after_match,
        });
    }
    Some(Ahead {
        ends,
        plain: s.plain,
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

/// [`block_ends`], with the bit offset after the last block: the block
/// starts the symbol reader records ([`Symbols::index_to_end`]) after the
/// first, each the end of the block before it.
fn walk(compressed: &[u8], mut each: impl FnMut(&BlockEnd)) -> Option<(u64, u64)> {
    let (starts, plain, end) = Symbols::index_to_end(compressed)?;
    for &(plain, bit, after_match) in starts.iter().skip(1) {
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
    Some((plain, end))
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
