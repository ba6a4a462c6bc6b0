//! Content-defined chunking.
//!
//! Content is cut with FastCDC (the 2020 variant, normalization level 1) so
//! that an insertion near the start of a file moves only the chunks around
//! it; every later chunk keeps its id and is not shipped again.
//!
//! The parameters are part of the format: both sides must cut the same way for
//! deltas to find shared chunks, so they are recorded in each manifest.

use crate::id::{ChunkId, Sha256, Sha256Hasher};
use serde::{Deserialize, Serialize};
use std::io::Read;

/// FastCDC sizes, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkParams {
    /// Smallest chunk (but the last of an object).
    pub min: u32,
    /// Target average.
    pub avg: u32,
    /// Largest chunk.
    pub max: u32,
}

impl ChunkParams {
    /// The sizes Ferry uses: 16 KiB / 64 KiB / 256 KiB.
    ///
    /// Measured on the mixed 1 GiB benchmark corpus (`tests/bench`), this keeps
    /// the chunk count near 16 per MiB, so an outside catalog of a 50 GB mirror
    /// stays under 30 MB, while a 1 MiB edit still ships only a few chunks.
    pub const DEFAULT: ChunkParams = ChunkParams {
        min: 16 * 1024,
        avg: 64 * 1024,
        max: 256 * 1024,
    };
}

/// One chunk cut from a stream.
pub struct Chunk {
    /// BLAKE3 of `data`.
    pub id: ChunkId,
    /// The chunk's bytes.
    pub data: Vec<u8>,
}

/// Cuts a stream into chunks and computes the SHA-256 of the whole stream on
/// the way, in one pass.
///
/// Memory use is bounded by `params.max` plus one chunk.
pub struct Chunker<R: Read> {
    inner: fastcdc::v2020::StreamCDC<R>,
    sha: Option<Sha256Hasher>,
    size: u64,
}

impl<R: Read> Chunker<R> {
    /// Chunks `reader` with `params`.
    pub fn new(reader: R, params: ChunkParams) -> Self {
        Chunker {
            inner: fastcdc::v2020::StreamCDC::new(
                reader,
                params.min as usize,
                params.avg as usize,
                params.max as usize,
            ),
            sha: Some(Sha256Hasher::new()),
            size: 0,
        }
    }

    /// The next chunk, `None` at the end of the stream.
    pub fn next_chunk(&mut self) -> std::io::Result<Option<Chunk>> {
        match self.inner.next() {
            None => Ok(None),
            Some(Err(fastcdc::v2020::Error::IoError(e))) => Err(e),
            Some(Err(e)) => Err(std::io::Error::other(e.to_string())),
            Some(Ok(c)) => {
                if let Some(sha) = self.sha.as_mut() {
                    sha.update(&c.data);
                }
                self.size += c.length as u64;
                Ok(Some(Chunk {
                    id: ChunkId::of(&c.data),
                    data: c.data,
                }))
            }
        }
    }

    /// Size and SHA-256 of everything read. Call after `next_chunk` returned `None`.
    pub fn finish(mut self) -> (u64, Sha256) {
        (self.size, self.sha.take().unwrap_or_default().finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    fn ids(data: &[u8]) -> Vec<ChunkId> {
        let mut c = Chunker::new(data, ChunkParams::DEFAULT);
        let mut out = vec![];
        while let Some(ch) = c.next_chunk().unwrap() {
            out.push(ch.id);
        }
        out
    }

    #[test]
    fn whole_digest_and_size() {
        let data = pseudo_random(700_000, 1);
        let mut c = Chunker::new(&data[..], ChunkParams::DEFAULT);
        let mut joined = vec![];
        while let Some(ch) = c.next_chunk().unwrap() {
            assert!(ch.data.len() <= ChunkParams::DEFAULT.max as usize);
            joined.extend_from_slice(&ch.data);
        }
        assert_eq!(c.finish(), (700_000, Sha256::of(&data)));
        assert_eq!(joined, data);
    }

    #[test]
    fn insertion_at_start_keeps_later_chunks() {
        let data = pseudo_random(4 << 20, 7);
        let mut edited = b"a few inserted bytes".to_vec();
        edited.extend_from_slice(&data);
        let before = ids(&data);
        let after = ids(&edited);
        let shared = after.iter().filter(|id| before.contains(id)).count();
        assert!(
            shared + 2 >= before.len(),
            "only {shared} of {} chunks survived an insertion",
            before.len()
        );
    }

    #[test]
    fn empty_stream() {
        let mut c = Chunker::new(&b""[..], ChunkParams::DEFAULT);
        assert!(c.next_chunk().unwrap().is_none());
        assert_eq!(c.finish(), (0, Sha256::of(b"")));
    }
}
