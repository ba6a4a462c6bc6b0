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

/// How many bytes the chunker reads ahead: several chunks, so that a file of
/// a few hundred KiB is read in one call and the unread tail is moved once
/// per window, not once per chunk.
const WINDOW: usize = 1 << 20;

thread_local! {
    /// The read-ahead buffer of the last chunker dropped on this thread: a
    /// scan of many small files allocates it once, not once per file.
    static SPARE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Cuts a stream into chunks and computes the SHA-256 of the whole stream on
/// the way, in one pass.
///
/// The cut points are FastCDC 2020's (normalization level 1, the standard
/// gear table), as `fastcdc::v2020::StreamCDC` makes them: each cut looks at
/// most `params.max` bytes ahead, so reading further ahead changes nothing.
/// Memory use is bounded by one window of [`WINDOW`] bytes (or `params.max`
/// if larger) plus one chunk.
pub struct Chunker<R: Read> {
    reader: R,
    params: ChunkParams,
    masks: (u64, u64),
    /// Read but not yet cut: `buf[at..]`.
    buf: Vec<u8>,
    at: usize,
    eof: bool,
    sha: Option<Sha256Hasher>,
    size: u64,
}

impl<R: Read> Chunker<R> {
    /// Chunks `reader` with `params`.
    pub fn new(reader: R, params: ChunkParams) -> Self {
        let mut c = Chunker::without_digest(reader, params);
        c.sha = Some(Sha256Hasher::new());
        c
    }

    /// Chunks `reader` with `params` without computing its SHA-256 (the
    /// caller computes it elsewhere, on another thread say): end with
    /// [`Chunker::size`], not [`Chunker::finish`].
    pub fn without_digest(reader: R, params: ChunkParams) -> Self {
        let masks = fastcdc::v2020::select_masks(
            params.avg as usize,
            fastcdc::v2020::Normalization::Level1,
        );
        let mut buf = SPARE.with(|s| std::mem::take(&mut *s.borrow_mut()));
        buf.clear();
        Chunker {
            reader,
            params,
            masks,
            buf,
            at: 0,
            eof: false,
            sha: None,
            size: 0,
        }
    }

    /// Reads until at least `params.max` bytes are uncut or the stream ends.
    fn fill(&mut self) -> std::io::Result<()> {
        let want = WINDOW.max(self.params.max as usize);
        if self.eof || self.buf.len() - self.at >= self.params.max as usize {
            return Ok(());
        }
        self.buf.drain(..self.at);
        self.at = 0;
        while !self.eof && self.buf.len() < want {
            let room = (want - self.buf.len()) as u64;
            let n = (&mut self.reader).take(room).read_to_end(&mut self.buf)?;
            self.eof = n == 0 || (n as u64) < room;
        }
        Ok(())
    }

    /// The next chunk, `None` at the end of the stream.
    pub fn next_chunk(&mut self) -> std::io::Result<Option<Chunk>> {
        self.fill()?;
        let rest = &self.buf[self.at..];
        if rest.is_empty() {
            return Ok(None);
        }
        let p = self.params;
        let (mask_s, mask_l) = self.masks;
        let (_, n) = fastcdc::v2020::cut(
            rest,
            p.min as usize,
            p.avg as usize,
            p.max as usize,
            mask_s,
            mask_l,
            mask_s << 1,
            mask_l << 1,
        );
        let data = rest[..n].to_vec();
        self.at += n;
        if let Some(sha) = self.sha.as_mut() {
            sha.update(&data);
        }
        self.size += n as u64;
        Ok(Some(Chunk {
            id: ChunkId::of(&data),
            data,
        }))
    }

    /// Size and SHA-256 of everything read. Call after `next_chunk` returned
    /// `None`, on a chunker made by [`Chunker::new`].
    pub fn finish(mut self) -> (u64, Sha256) {
        (self.size, self.sha.take().unwrap_or_default().finish())
    }

    /// Bytes cut so far (all of them once `next_chunk` returned `None`).
    pub fn size(&self) -> u64 {
        self.size
    }
}

impl<R: Read> Drop for Chunker<R> {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        SPARE.with(|s| *s.borrow_mut() = buf);
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

    /// The cuts are those of `fastcdc::v2020::StreamCDC`, whatever the
    /// reader's read sizes and the stream's length.
    #[test]
    fn cuts_match_fastcdc_stream_cdc() {
        /// A reader that returns at most `step` bytes per call.
        struct Dribble<'a>(&'a [u8], usize);
        impl Read for Dribble<'_> {
            fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
                let n = self.0.len().min(self.1).min(out.len());
                out[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let p = ChunkParams::DEFAULT;
        let mut data = pseudo_random(3 << 20, 11);
        // Long runs of one byte: the max-size cuts.
        data[1 << 20..(1 << 20) + 700_000].fill(0);
        for len in [0, 1, 16 * 1024, 16 * 1024 + 1, 300_000, 1 << 20, 3 << 20] {
            let want: Vec<Vec<u8>> = fastcdc::v2020::StreamCDC::new(
                &data[..len],
                p.min as usize,
                p.avg as usize,
                p.max as usize,
            )
            .map(|c| c.unwrap().data)
            .collect();
            for step in [len.max(1), 4096, 100_003] {
                let mut c = Chunker::new(Dribble(&data[..len], step), p);
                let mut got = vec![];
                while let Some(ch) = c.next_chunk().unwrap() {
                    assert_eq!(ch.id, ChunkId::of(&ch.data));
                    got.push(ch.data);
                }
                assert_eq!(got, want, "length {len}, reads of {step}");
                assert_eq!(c.finish(), (len as u64, Sha256::of(&data[..len])));
            }
        }
    }

    #[test]
    fn without_digest_the_same_chunks_and_size() {
        let data = pseudo_random(1_500_000, 3);
        let mut c = Chunker::without_digest(&data[..], ChunkParams::DEFAULT);
        let mut got = vec![];
        while let Some(ch) = c.next_chunk().unwrap() {
            got.push(ch.id);
        }
        assert_eq!(got, ids(&data));
        assert_eq!(c.size(), data.len() as u64);
    }

    #[test]
    fn empty_stream() {
        let mut c = Chunker::new(&b""[..], ChunkParams::DEFAULT);
        assert!(c.next_chunk().unwrap().is_none());
        assert_eq!(c.finish(), (0, Sha256::of(b"")));
    }
}
