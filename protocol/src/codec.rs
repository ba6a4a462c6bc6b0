//! How one chunk is stored in a volume, and how it is checked on the way back.
//!
//! A chunk is stored zstd-compressed (one zstd frame) when that saves at least
//! 1/32 of its size, and raw otherwise, so incompressible data costs no CPU on
//! the inside. Decoding never produces more than the chunk's declared raw
//! length (a decompression bomb stops at that bound) and always ends by
//! checking the bytes against the chunk id.

use crate::id::{ChunkId, Sha256};
use crate::Error;
use serde::{Deserialize, Serialize};

/// Storage form of a chunk. Encoded as a postcard enum: `0` raw, `1` zstd.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Codec {
    /// The chunk's bytes as they are.
    Raw,
    /// One zstd frame that decompresses to exactly the chunk's bytes.
    Zstd,
}

thread_local! {
    /// One zstd decompression context per thread: creating one per chunk
    /// costs more than decoding a small chunk.
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

thread_local! {
    /// One zstd compression context per thread, with the level it was last
    /// set to: creating one per chunk costs about a fifth of compressing it.
    /// A context reused gives the same frame as a new one (each call is a
    /// whole frame; the parameters are set again when the level changes).
    static COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
}

/// Compresses `data` at `level` as one zstd frame, with this thread's context.
fn compress(data: &[u8], level: i32) -> std::io::Result<Vec<u8>> {
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        match c.as_mut() {
            Some((l, z)) if *l == level => z.compress(data),
            _ => {
                let (_, z) = c.insert((level, zstd::bulk::Compressor::new(level)?));
                z.compress(data)
            }
        }
    })
}

/// Whether a zstd frame `z` of `raw` bytes is worth storing: it saves more
/// than 1/32 of them. The bundle bytes depend on this rule.
fn pays(z: &[u8], raw: usize) -> bool {
    z.len() + raw / 32 < raw
}

/// Compresses one chunk at `level`, falling back to raw where zstd does not pay.
pub fn encode(data: &[u8], level: i32) -> (Codec, Vec<u8>) {
    match compress(data, level) {
        Ok(z) if pays(&z, data.len()) => (Codec::Zstd, z),
        _ => (Codec::Raw, data.to_vec()),
    }
}

/// [`encode`] of a chunk the caller owns: a chunk stored raw is `data`
/// itself, not a copy.
pub fn encode_owned(data: Vec<u8>, level: i32) -> (Codec, Vec<u8>) {
    match compress(&data, level) {
        Ok(z) if pays(&z, data.len()) => (Codec::Zstd, z),
        _ => (Codec::Raw, data),
    }
}

/// Decodes a stored chunk and checks it against `id`.
///
/// `raw_len` is the length the manifest declares; the caller has already
/// bounded it by its limits. Nothing larger than `raw_len` is ever allocated.
pub fn decode(id: &ChunkId, codec: Codec, stored: &[u8], raw_len: u32) -> Result<Vec<u8>, Error> {
    let data =
        decode_bytes(codec, stored, raw_len).map_err(|why| Error::BadChunk { id: *id, why })?;
    let actual = ChunkId::of(&data);
    if actual != *id {
        return Err(Error::BadChunk {
            id: *id,
            why: format!("content hashes to {actual}"),
        });
    }
    Ok(data)
}

/// Decodes a stored chunk that the manifest lists without an id (format
/// version 4, docs/bundle-format.md §5.10.1): its bytes are the whole of
/// the object `key`, so they must hash to that object's `sha256`. Returns
/// the chunk's id, the BLAKE3 of the decoded bytes, and the bytes.
pub fn decode_whole(
    sha256: &Sha256,
    key: &dyn std::fmt::Display,
    codec: Codec,
    stored: &[u8],
    raw_len: u32,
) -> Result<(ChunkId, Vec<u8>), Error> {
    let bad = |why: String| Error::BadObject {
        key: key.to_string(),
        why: format!("its one chunk, carried without an id, {why}"),
    };
    let data = decode_bytes(codec, stored, raw_len).map_err(&bad)?;
    let actual = Sha256::of(&data);
    if actual != *sha256 {
        return Err(bad(format!(
            "hashes to SHA-256 {actual}, the manifest says {sha256} (the volume or the received chunk was altered or damaged)"
        )));
    }
    Ok((ChunkId::of(&data), data))
}

/// The decoded bytes of a stored chunk of `raw_len` bytes, or why not.
fn decode_bytes(codec: Codec, stored: &[u8], raw_len: u32) -> Result<Vec<u8>, String> {
    match codec {
        Codec::Raw => {
            if stored.len() != raw_len as usize {
                return Err(format!(
                    "stored {} bytes raw, manifest says {raw_len}",
                    stored.len()
                ));
            }
            Ok(stored.to_vec())
        }
        Codec::Zstd => {
            let mut out = Vec::with_capacity(raw_len as usize);
            DECOMPRESSOR
                .with(|d| {
                    let mut d = d.borrow_mut();
                    if d.is_none() {
                        *d = Some(zstd::bulk::Decompressor::new()?);
                    }
                    d.as_mut()
                        .expect("just set")
                        .decompress_to_buffer(stored, &mut out)
                })
                .map_err(|e| format!("zstd data does not decode within {raw_len} bytes: {e}"))?;
            if out.len() != raw_len as usize {
                return Err(format!(
                    "decodes to {} bytes, manifest says {raw_len}",
                    out.len()
                ));
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_both_codecs() {
        let text = b"the quick brown fox ".repeat(1000);
        let (codec, stored) = encode(&text, 3);
        assert_eq!(codec, Codec::Zstd);
        assert!(stored.len() < text.len() / 10);
        let id = ChunkId::of(&text);
        assert_eq!(
            decode(&id, codec, &stored, text.len() as u32).unwrap(),
            text
        );

        let mut x = 0x9E3779B97F4A7C15u64;
        let noise: Vec<u8> = (0..5000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        let (codec, stored) = encode(&noise, 3);
        assert_eq!(codec, Codec::Raw);
        assert_eq!(stored, noise);
    }

    /// A context reused across chunks and levels makes the frames a new
    /// context makes (the bundle bytes depend only on the chunks).
    #[test]
    fn a_reused_context_gives_the_frames_of_a_new_one() {
        let text = b"the quick brown fox jumps over the lazy dog ".repeat(3000);
        let mut x = 7u64;
        let mixed: Vec<u8> = (0..200_000u32)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if i % 3 == 0 {
                    (x >> 40) as u8
                } else {
                    b'a' + (i % 7) as u8
                }
            })
            .collect();
        for level in [3, 1, 3, 19, -1, 3] {
            for data in [&text[..], &mixed[..], &text[..5000], b""] {
                let fresh = zstd::bulk::compress(data, level).unwrap();
                assert_eq!(compress(data, level).unwrap(), fresh, "level {level}");
                let (codec, stored) = encode_owned(data.to_vec(), level);
                assert_eq!((codec, stored), encode(data, level));
            }
        }
    }

    #[test]
    fn bomb_stops_at_declared_length() {
        let big = vec![0u8; 10 << 20];
        let (codec, stored) = encode(&big, 3);
        assert!(stored.len() < 4096);
        let id = ChunkId::of(&big);
        let err = decode(&id, codec, &stored, 64 * 1024).unwrap_err();
        assert!(
            err.to_string().contains("does not decode within 65536"),
            "{err}"
        );
    }

    #[test]
    fn content_mismatch_is_named() {
        let data = b"hello world".to_vec();
        let wrong = ChunkId::of(b"other");
        let err = decode(&wrong, Codec::Raw, &data, data.len() as u32).unwrap_err();
        assert!(err.to_string().contains(&wrong.to_hex()));
        assert!(err.to_string().contains("content hashes to"));
    }

    #[test]
    fn garbage_zstd_is_an_error_not_a_panic() {
        let id = ChunkId::of(b"x");
        assert!(decode(&id, Codec::Zstd, b"not zstd at all", 100).is_err());
        assert!(decode(&id, Codec::Raw, b"xx", 1).is_err());
    }
}
