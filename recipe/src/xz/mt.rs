//! The bytes of liblzma's multi-threaded stream encoder
//! (`lzma_stream_encoder_mt`, what `xz -T0` and dpkg-deb use), made on one
//! thread without its buffers.
//!
//! liblzma's encoder cuts the input into blocks of `block_size` bytes and
//! encodes each with a fresh LZMA2 encoder into an output buffer, then writes
//! the block's header in front of it, sizes included. Its output does not
//! depend on the thread count, but even on one thread it holds a whole
//! block of input and an output buffer of the largest block's size beside
//! the match finder: 166 MiB by its own estimate at preset 6, 134 MiB
//! measured, against the match finder's 94 MiB. Two rebuilds of a deb's
//! `data.tar.xz` could then not run side by side within an agent's memory.
//!
//! Here each block's plain bytes go through a raw LZMA2 encoder as they are
//! read (the same LZMA2 data as the block encoder's) and only the block's
//! compressed bytes are held until its header can be written. The container
//! around them is written as liblzma writes it (the `.xz` file format,
//! version 1.2.1):
//! - the stream header: magic, stream flags (the check's id), their CRC32;
//! - each block: a header whose size is worked out from the *largest* sizes
//!   the block may have (the output buffer's bound and `block_size`), then
//!   filled in with the real ones and zero-padded to that size; the LZMA2
//!   data; zero padding to a multiple of four; the check of the block's
//!   plain bytes;
//! - the index (each block's unpadded and plain size), the stream footer.
//!
//! liblzma falls back to uncompressed LZMA2 chunks when a block's output
//! fills its buffer; LZMA2's own output never does (it stores a chunk that
//! does not compress), so that case is refused here as an error, never
//! written differently. The tests compare every byte with liblzma's encoder.

use super::{filters, StreamError, XzCheck, XzError, XzParams, FOOTER_MAGIC, HEADER_MAGIC, STEP};
use liblzma::stream::{Action, Status, Stream};

/// liblzma's `LZMA_VLI_BYTES_MAX` and `LZMA_CHECK_SIZE_MAX`.
const VLI_BYTES_MAX: u64 = 9;
const CHECK_SIZE_MAX: u64 = 64;
/// An LZMA2 chunk's largest plain size, and the header of a stored chunk.
const LZMA2_CHUNK_MAX: u64 = 1 << 16;
const LZMA2_HEADER_UNCOMPRESSED: u64 = 3;
/// liblzma's bound on a block's header and check (`HEADERS_BOUND`).
const HEADERS_BOUND: u64 = (1 + 1 + 2 * VLI_BYTES_MAX + 3 + 4 + CHECK_SIZE_MAX + 3) & !3;
/// The LZMA2 filter's id in a block header.
const LZMA2_FILTER_ID: u8 = 0x21;

/// liblzma's `lzma_block_buffer_bound64`: the most bytes a block of
/// `plain` bytes takes, header and check included (its output buffer).
pub(super) fn block_bound(plain: u64) -> u64 {
    let lzma2 = plain + plain.div_ceil(LZMA2_CHUNK_MAX) * LZMA2_HEADER_UNCOMPRESSED + 1;
    HEADERS_BOUND + ((lzma2 + 3) & !3)
}

/// The bytes an encoder of this module holds besides the raw LZMA2
/// encoder: one block's compressed bytes, at most `most` (the stream's
/// bound, when the caller knows it).
pub(super) fn held(block_size: u64, most: u64) -> u64 {
    block_bound(block_size).min(most.saturating_add(1))
}

/// Bytes of a variable-length integer of the `.xz` format.
fn vli_len(mut v: u64) -> u64 {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn put_vli(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The LZMA2 properties byte liblzma writes for a dictionary of `dict`
/// bytes: the smallest size of the form 2^n or 2^n + 2^(n-1) (at least
/// 4 KiB) that holds it.
pub(super) fn lzma2_props(dict: u32) -> u8 {
    let dict = dict.max(4096);
    (0..40u8)
        .find(|&p| (2u64 | u64::from(p & 1)) << (p / 2 + 11) >= u64::from(dict))
        .unwrap_or(40)
}

/// The CRC-64 of the `.xz` format (ECMA-182's polynomial, reflected).
const CRC64_TABLE: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u64;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xC96C_5795_D787_0F42
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// A block's check of its plain bytes, as they pass.
enum Check {
    None,
    Crc32(crc32fast::Hasher),
    Crc64(u64),
    Sha256(Box<sha2::Sha256>),
}

impl Check {
    fn new(check: XzCheck) -> Check {
        use sha2::Digest;
        match check {
            XzCheck::None => Check::None,
            XzCheck::Crc32 => Check::Crc32(crc32fast::Hasher::new()),
            XzCheck::Crc64 => Check::Crc64(!0),
            XzCheck::Sha256 => Check::Sha256(Box::new(sha2::Sha256::new())),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        use sha2::Digest;
        match self {
            Check::None => {}
            Check::Crc32(h) => h.update(bytes),
            Check::Crc64(c) => {
                for &b in bytes {
                    *c = CRC64_TABLE[((*c ^ u64::from(b)) & 0xFF) as usize] ^ (*c >> 8);
                }
            }
            Check::Sha256(h) => h.update(bytes),
        }
    }

    fn finish(self, out: &mut Vec<u8>) {
        use sha2::Digest;
        match self {
            Check::None => {}
            Check::Crc32(h) => out.extend_from_slice(&h.finalize().to_le_bytes()),
            Check::Crc64(c) => out.extend_from_slice(&(!c).to_le_bytes()),
            Check::Sha256(h) => out.extend_from_slice(&h.finalize()),
        }
    }
}

/// Writes what the multi-threaded encoder writes for the plain bytes
/// `plain` reads, with `params` (whose mode gives `block_size`), into
/// `out`, never more than `most` bytes; returns how many it wrote. The
/// caller has validated `params` and reserved the memory.
pub(super) fn compress_to(
    params: &XzParams,
    block_size: u64,
    plain: &mut dyn std::io::Read,
    most: u64,
    out: &mut dyn std::io::Write,
) -> Result<u64, StreamError> {
    let id = params.check.id();
    let mut written = 0u64;
    let mut emit = |bytes: &[u8]| -> Result<(), StreamError> {
        written += bytes.len() as u64;
        if written > most {
            return Err(StreamError::TooLong { most });
        }
        out.write_all(bytes).map_err(StreamError::Write)
    };

    // Stream header.
    let mut head = HEADER_MAGIC.to_vec();
    head.extend_from_slice(&[0, id]);
    head.extend_from_slice(&crc32fast::hash(&[0, id]).to_le_bytes());
    emit(&head)?;

    // The header's size, from the largest sizes a block may have.
    let bound = block_bound(block_size);
    let header_len = (1 + 1 + 4 + vli_len(bound) + vli_len(block_size) + 3 + 3) & !3;
    let props = lzma2_props(params.dict_size);
    let mut index: Vec<(u64, u64)> = Vec::new();
    let mut blocks = Blocks {
        params,
        block_size,
        most_data: bound - header_len - params.check.len() - 3,
        input: vec![0u8; STEP.min(block_size as usize)],
        piece: Vec::with_capacity(STEP),
        block: Vec::new(),
    };
    while let Some((taken, check)) = blocks.next(plain)? {
        let block = &blocks.block;
        // The header, with the real sizes, padded to the size reserved.
        let mut header = Vec::with_capacity(header_len as usize);
        header.push((header_len / 4 - 1) as u8);
        header.push(0x40 | 0x80);
        put_vli(&mut header, block.len() as u64);
        put_vli(&mut header, taken);
        header.extend_from_slice(&[LZMA2_FILTER_ID, 1, props]);
        header.resize(header_len as usize - 4, 0);
        let crc = crc32fast::hash(&header);
        header.extend_from_slice(&crc.to_le_bytes());
        emit(&header)?;
        emit(block)?;
        let mut tail = vec![0u8; (4 - block.len() % 4) % 4];
        check.finish(&mut tail);
        emit(&tail)?;
        let unpadded = header_len + block.len() as u64 + params.check.len();
        index.push((unpadded, taken));
        if taken < block_size {
            break;
        }
    }
    emit(&index_and_footer(&index, id))?;
    Ok(written)
}

/// The blocks of a stream being made: each next one's compressed bytes.
struct Blocks<'p> {
    params: &'p XzParams,
    block_size: u64,
    /// The most LZMA2 bytes a block may take before liblzma would store it.
    most_data: u64,
    input: Vec<u8>,
    piece: Vec<u8>,
    /// The last block's LZMA2 bytes.
    block: Vec<u8>,
}

impl Blocks<'_> {
    /// Encodes the next block (up to `block_size` plain bytes, through a
    /// fresh encoder) into `self.block`; its plain length and check, or
    /// `None` when the input has ended.
    fn next(&mut self, plain: &mut dyn std::io::Read) -> Result<Option<(u64, Check)>, StreamError> {
        let xz = |e: String| StreamError::Xz(XzError::Lzma(e));
        let filters = filters(self.params).map_err(StreamError::Xz)?;
        let mut stream = Stream::new_raw_encoder(&filters).map_err(|e| xz(e.to_string()))?;
        let mut check = Check::new(self.params.check);
        self.block.clear();
        let mut taken = 0u64;
        loop {
            let want = (self.block_size - taken).min(self.input.len() as u64) as usize;
            let input = &mut self.input[..want];
            let n = crate::zlib::read_full(plain, input).map_err(StreamError::Read)?;
            if n == 0 && taken == 0 {
                return Ok(None);
            }
            taken += n as u64;
            check.update(&input[..n]);
            let finish = n < want || taken == self.block_size;
            let action = if finish { Action::Finish } else { Action::Run };
            let mut at = 0usize;
            loop {
                self.piece.clear();
                let before = stream.total_in();
                let status = stream
                    .process_vec(&input[at..n], &mut self.piece, action)
                    .map_err(|e| xz(e.to_string()))?;
                at += (stream.total_in() - before) as usize;
                self.block.extend_from_slice(&self.piece);
                if self.block.len() as u64 >= self.most_data {
                    return Err(xz(format!(
                        "an xz block outgrew liblzma's buffer ({} compressed bytes \
                         after {taken} plain ones), where liblzma would store it",
                        self.most_data
                    )));
                }
                if status == Status::StreamEnd {
                    return Ok(Some((taken, check)));
                }
                if !finish && at == n && self.piece.len() < self.piece.capacity() {
                    break;
                }
            }
        }
    }
}

/// The index of a stream of blocks of these (unpadded, plain) sizes, and
/// its footer, whose stream flags carry check `id`.
fn index_and_footer(index: &[(u64, u64)], id: u8) -> Vec<u8> {
    let mut out = vec![0u8];
    put_vli(&mut out, index.len() as u64);
    for (unpadded, plain_len) in index {
        put_vli(&mut out, *unpadded);
        put_vli(&mut out, *plain_len);
    }
    out.resize(out.len().next_multiple_of(4), 0);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    let mut flagged = (out.len() as u32 / 4 - 1).to_le_bytes().to_vec();
    flagged.extend_from_slice(&[0, id]);
    out.extend_from_slice(&crc32fast::hash(&flagged).to_le_bytes());
    out.extend_from_slice(&flagged);
    out.extend_from_slice(FOOTER_MAGIC);
    out
}

#[cfg(test)]
mod tests {
    use super::super::{compress, XzMode};
    use super::*;
    use liblzma::stream::MtStreamBuilder;

    /// What liblzma's multi-threaded encoder writes, with `threads` threads.
    fn liblzma_mt(params: &XzParams, block_size: u64, threads: u32, plain: &[u8]) -> Vec<u8> {
        let mut stream = MtStreamBuilder::new()
            .filters(filters(params).unwrap())
            .check(params.check.lzma())
            .block_size(block_size)
            .threads(threads)
            .encoder()
            .unwrap();
        let mut out = Vec::with_capacity(plain.len() + (1 << 16));
        let mut at = 0;
        loop {
            if out.len() == out.capacity() {
                out.reserve(1 << 20);
            }
            let before = stream.total_in();
            let status = stream
                .process_vec(&plain[at..], &mut out, Action::Finish)
                .unwrap();
            at += (stream.total_in() - before) as usize;
            if status == Status::StreamEnd {
                return out;
            }
        }
    }

    /// Bytes that compress some (words from a small vocabulary, with a
    /// few random runs), from a seed.
    fn sample(len: usize, seed: u64, random_share: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let words = [
            "ferry ", "diode ", "bundle ", "chunk ", "\n", "xz ", "0123 ",
        ];
        let mut out = Vec::with_capacity(len + 16);
        while out.len() < len {
            if next() % 100 < random_share {
                for _ in 0..(next() % 300) {
                    out.push(next() as u8);
                }
            } else {
                out.extend_from_slice(words[(next() % words.len() as u64) as usize].as_bytes());
            }
        }
        out.truncate(len);
        out
    }

    #[test]
    fn the_bytes_are_liblzmas_multi_threaded_encoders() {
        let checks = [
            XzCheck::Crc64,
            XzCheck::Crc32,
            XzCheck::None,
            XzCheck::Sha256,
        ];
        let cases: &[(u32, bool, u64, usize, u64)] = &[
            // (preset, extreme, block size, plain length, random share %)
            (0, false, 1 << 16, 0, 10),
            (0, false, 1 << 16, 1, 10),
            (1, false, 1 << 16, (1 << 16) - 1, 10),
            (1, false, 1 << 16, 1 << 16, 10),
            (1, false, 1 << 16, (1 << 16) + 1, 10),
            (0, false, 100_000, 350_000, 5),
            (2, true, 300_000, 300_000, 30),
            (1, false, 1 << 20, 3 * (1 << 20) + 17, 20),
            // Incompressible: LZMA2 stores its chunks.
            (0, false, 200_000, 450_000, 100),
            // A block larger than the input, as a deb's one block.
            (6, false, 24 << 20, 700_000, 15),
        ];
        for (i, &(preset, extreme, block_size, len, random)) in cases.iter().enumerate() {
            let plain = sample(len, i as u64 + 1, random);
            let params = XzParams {
                preset,
                extreme,
                dict_size: super::super::PRESET_DICT[preset as usize],
                check: checks[i % checks.len()],
                mode: XzMode::Multi { block_size },
            };
            let ours = compress(&params, &plain).unwrap();
            let theirs = liblzma_mt(&params, block_size, 1, &plain);
            assert!(
                ours == theirs,
                "case {i} ({params:?}, {len} bytes): {} against liblzma's {} bytes",
                ours.len(),
                theirs.len()
            );
            if len > block_size as usize {
                assert_eq!(
                    theirs,
                    liblzma_mt(&params, block_size, 2, &plain),
                    "threads"
                );
            }
        }
    }

    #[test]
    fn the_index_gives_the_plain_size() {
        use super::super::indexed_plain_len;
        let plain = sample(300_000, 4, 10);
        for mode in [
            XzMode::Single,
            XzMode::Multi {
                block_size: 100_000,
            },
        ] {
            let params = XzParams {
                preset: 0,
                extreme: false,
                dict_size: 256 << 10,
                check: XzCheck::Crc64,
                mode,
            };
            let mut xz = compress(&params, &plain).unwrap();
            assert_eq!(indexed_plain_len(&xz), Some(300_000), "{mode:?}");
            // The last bytes are enough; stream padding after the footer is skipped.
            assert_eq!(indexed_plain_len(&xz[xz.len() - 64..]), Some(300_000));
            xz.extend_from_slice(&[0; 8]);
            assert_eq!(indexed_plain_len(&xz), Some(300_000));
            // Cut short of the index, or one bit flipped in it: no size.
            let n = xz.len();
            assert_eq!(indexed_plain_len(&xz[n - 8 - 14..]), None);
            xz[n - 8 - 14] ^= 1;
            assert_eq!(indexed_plain_len(&xz), None);
            assert_eq!(indexed_plain_len(b"YZ"), None);
        }
    }

    #[test]
    fn a_stream_over_the_bound_stops() {
        let params = XzParams {
            preset: 0,
            extreme: false,
            dict_size: 256 << 10,
            check: XzCheck::Crc64,
            mode: XzMode::Multi {
                block_size: 1 << 16,
            },
        };
        let plain = sample(200_000, 9, 100);
        let mut out = Vec::new();
        let got = super::super::compress_to(&params, &mut &plain[..], 1000, &mut out);
        assert!(
            matches!(got, Err(StreamError::TooLong { most: 1000 })),
            "{got:?}"
        );
        assert!(out.len() <= 1000);
    }

    #[test]
    fn props_are_liblzmas() {
        // 8 MiB (preset 6) is 0x16; 4 KiB and below 0; 12 MiB 0x17;
        // 12 MiB + 1 rounds up to 16 MiB (0x18).
        assert_eq!(lzma2_props(8 << 20), 0x16);
        assert_eq!(lzma2_props(4096), 0);
        assert_eq!(lzma2_props(1), 0);
        assert_eq!(lzma2_props(12 << 20), 0x17);
        assert_eq!(lzma2_props((12 << 20) + 1), 0x18);
        assert_eq!(lzma2_props(64 << 20), 0x1C);
    }

    #[test]
    fn crc64_is_the_xz_one() {
        // The check value of CRC-64/XZ for "123456789".
        let mut c = Check::new(XzCheck::Crc64);
        c.update(b"123456789");
        let mut out = Vec::new();
        c.finish(&mut out);
        assert_eq!(out, 0x995D_C9BB_DF19_39FAu64.to_le_bytes());
    }

    #[test]
    fn the_bound_is_liblzmas() {
        // `lzma_block_buffer_bound(0)` = 92 + 4; 64 KiB: 92 + (65536 + 3 + 1 padded).
        assert_eq!(block_bound(0), 96);
        assert_eq!(block_bound(65536), 92 + 65540);
        assert_eq!(vli_len(0x7F), 1);
        assert_eq!(vli_len(0x80), 2);
    }
}
