//! Volume files: the chunk payloads of one bundle, split into files of a
//! bounded size so a bundle fits the media it travels on.
//!
//! Layout: a 36-byte header, then stored chunk bytes back to back at the
//! offsets the manifest gives. Header (little-endian):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `FERRYVOL` |
//! | 8 | 16 | stream id |
//! | 24 | 8 | bundle sequence |
//! | 32 | 4 | volume index |
//!
//! The manifest lists each volume's size and BLAKE3, which bind the header
//! and every payload byte; the header itself only lets a tool say which
//! bundle a stray volume belongs to.

use crate::id::StreamId;
use crate::manifest::VolumeEntry;
use crate::Error;
use std::io::{Read, Write};

/// First bytes of a volume file.
pub const MAGIC: &[u8; 8] = b"FERRYVOL";
/// Length of the volume header.
pub const HEADER_LEN: usize = 36;

/// The name of volume `index` of a bundle, relative to the bundle directory.
pub fn file_name(index: u32) -> String {
    format!("volume-{index:05}.ferry")
}

/// Builds the header of a volume.
pub fn header(stream: StreamId, sequence: u64, index: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(MAGIC);
    h[8..24].copy_from_slice(&stream.0);
    h[24..32].copy_from_slice(&sequence.to_le_bytes());
    h[32..36].copy_from_slice(&index.to_le_bytes());
    h
}

/// Parses a volume header: `(stream, sequence, index)`.
pub fn parse_header(h: &[u8]) -> Option<(StreamId, u64, u32)> {
    if h.len() < HEADER_LEN || &h[..8] != MAGIC {
        return None;
    }
    Some((
        StreamId(h[8..24].try_into().ok()?),
        u64::from_le_bytes(h[24..32].try_into().ok()?),
        u32::from_le_bytes(h[32..36].try_into().ok()?),
    ))
}

/// Writes one volume: header, then chunks, hashing as it goes.
pub struct VolumeWriter<W: Write> {
    out: W,
    len: u64,
    chunks: usize,
    hasher: blake3::Hasher,
}

impl<W: Write> VolumeWriter<W> {
    /// Starts volume `index` of bundle `sequence` in `stream`.
    pub fn new(mut out: W, stream: StreamId, sequence: u64, index: u32) -> std::io::Result<Self> {
        let h = header(stream, sequence, index);
        out.write_all(&h)?;
        let mut hasher = blake3::Hasher::new();
        hasher.update(&h);
        Ok(VolumeWriter {
            out,
            len: HEADER_LEN as u64,
            chunks: 0,
            hasher,
        })
    }

    /// Appends stored chunk bytes; returns their offset.
    pub fn append(&mut self, stored: &[u8]) -> std::io::Result<u64> {
        let offset = self.len;
        self.out.write_all(stored)?;
        self.hasher.update(stored);
        self.len += stored.len() as u64;
        self.chunks += 1;
        Ok(offset)
    }

    /// Bytes written so far, header included.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no chunk has been appended yet.
    pub fn is_empty(&self) -> bool {
        self.chunks == 0
    }

    /// Ends the volume; returns the writer and the manifest entry.
    pub fn finish(self) -> (W, VolumeEntry) {
        (
            self.out,
            VolumeEntry {
                size: self.len,
                blake3: *self.hasher.finalize().as_bytes(),
            },
        )
    }
}

/// Reads a whole volume from `r` and checks it against its manifest entry.
/// Reads at most `entry.size + 1` bytes.
pub fn verify<R: Read>(r: R, index: u32, entry: &VolumeEntry) -> Result<(), Error> {
    let mut hasher = blake3::Hasher::new();
    let mut limited = r.take(entry.size.saturating_add(1));
    let mut buf = vec![0u8; 1 << 20];
    let mut n_total = 0u64;
    loop {
        let n = limited.read(&mut buf).map_err(|e| Error::BadVolume {
            index,
            why: format!("read failed: {e}"),
        })?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        n_total += n as u64;
    }
    let bad = |why: String| Err(Error::BadVolume { index, why });
    if n_total < entry.size {
        return bad(format!("truncated: {n_total} of {} bytes", entry.size));
    }
    if n_total > entry.size {
        return bad(format!(
            "longer than the {} bytes the manifest lists",
            entry.size
        ));
    }
    if hasher.finalize().as_bytes() != &entry.blake3 {
        return bad("content does not match its hash in the manifest (altered or corrupt)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_verify() {
        let mut w = VolumeWriter::new(Vec::new(), StreamId([5; 16]), 3, 1).unwrap();
        assert!(w.is_empty());
        let off = w.append(b"chunk-one").unwrap();
        assert_eq!(off, HEADER_LEN as u64);
        w.append(b"chunk-two").unwrap();
        let (bytes, entry) = w.finish();
        assert_eq!(entry.size, bytes.len() as u64);
        verify(&bytes[..], 1, &entry).unwrap();
        assert_eq!(parse_header(&bytes), Some((StreamId([5; 16]), 3, 1)));

        let e = verify(&bytes[..bytes.len() - 1], 1, &entry)
            .unwrap_err()
            .to_string();
        assert!(e.contains("volume 1") && e.contains("truncated"), "{e}");
        let mut flipped = bytes.clone();
        flipped[40] ^= 1;
        let e = verify(&flipped[..], 1, &entry).unwrap_err().to_string();
        assert!(e.contains("does not match"), "{e}");
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(verify(&longer[..], 1, &entry).is_err());
    }
}
