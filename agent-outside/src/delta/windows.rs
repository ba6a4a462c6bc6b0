//! Windowed patches (format version 3, `Expanded::Windows`): an expanded form
//! larger than a window is cut into windows of about `DeltaOptions::window`
//! bytes, each encoded as its own zstd frame against a range of the base's
//! reference form, so that no zstd window (and, inside, no decoded buffer)
//! spans a whole expanded form.
//!
//! A window's reference range is where its content most likely was in the
//! base: where the expanded form holds a tar (a layer, a deb's data.tar), the
//! first member header of the window is looked up by its name field in the
//! reference form; else the offset is scaled by the two lengths. The range
//! is that place, widened by a margin on both sides, and kept in order (a
//! window's range never starts or ends before the previous one's), which lets
//! the inside read the reference form once, front to back.

use anyhow::{Context, Result};
use ferry_protocol::catalog::{Window, MAX_WINDOW, MAX_WINDOW_REFERENCE};
use ferry_protocol::path::ObjectKey;
use std::ops::Range;

/// A window made: its catalog entry without chunks, and its zstd frame.
pub(crate) struct WindowPatch {
    pub(crate) len: u64,
    pub(crate) blake3: [u8; 32],
    pub(crate) reference: Range<u64>,
    pub(crate) frame: Vec<u8>,
}

impl WindowPatch {
    /// Its catalog entry, with the chunks its frame was cut into.
    pub(crate) fn entry(&self, patch: Vec<ferry_protocol::catalog::ChunkRef>) -> Window {
        Window {
            len: self.len,
            blake3: self.blake3,
            reference_start: self.reference.start,
            reference_len: self.reference.end - self.reference.start,
            patch,
        }
    }
}

/// An expanded form spilled to a file (so that the base's reference form,
/// computed next, is not held beside it), read back a window at a time.
pub(crate) struct Source {
    pub(crate) file: std::fs::File,
    pub(crate) len: u64,
}

impl Source {
    fn read(&self, range: Range<u64>) -> std::io::Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; (range.end - range.start) as usize];
        self.file.read_exact_at(&mut buf, range.start)?;
        Ok(buf)
    }
}

/// The next window of `src` from `start`: about `size` bytes (at most
/// `MAX_WINDOW`), its end moved forward to the next tar member header when
/// one starts within an eighth of a window. Returns the window's bytes.
fn next_window(src: &Source, start: u64, size: u64) -> std::io::Result<Vec<u8>> {
    let len = src.len;
    let end = (start + size).min(len);
    if end == len {
        return src.read(start..len);
    }
    let slack = size / 8;
    let mut bytes = src.read(start..(end + slack + 1024).min(len))?;
    let from = (end - start) as usize;
    let cut = next_header(&bytes, from, from + slack as usize).unwrap_or(from);
    bytes.truncate(cut);
    Ok(bytes)
}

/// The offset of the first tar (ustar) member header that starts in
/// `data[from..to]`.
fn next_header(data: &[u8], from: usize, to: usize) -> Option<usize> {
    let magic_from = from + 257;
    let magic_to = (to + 257).min(data.len());
    let hay = data.get(magic_from..magic_to.max(magic_from))?;
    let mut at = 0usize;
    while let Some(i) = hay[at..].windows(5).position(|w| w == b"ustar") {
        let h = from + at + i;
        if is_header(data, h) {
            return Some(h);
        }
        at += i + 1;
    }
    None
}

/// Whether a tar header (ustar magic, a name, a header checksum that holds)
/// starts at `h`.
fn is_header(data: &[u8], h: usize) -> bool {
    let Some(block) = data.get(h..h + 512) else {
        return false;
    };
    if &block[257..262] != b"ustar" || block[0] == 0 {
        return false;
    }
    let stored = std::str::from_utf8(&block[148..156])
        .ok()
        .map(|s| s.trim_matches(|c: char| c == '\0' || c == ' '))
        .and_then(|s| u32::from_str_radix(s, 8).ok());
    let sum: u32 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(b)
            }
        })
        .sum();
    stored == Some(sum)
}

/// Where the member whose header is at `h` in `expanded` is in `reference`
/// (at or after `from`): its 100-byte name field looked up there.
fn find_member(expanded: &[u8], h: usize, reference: &[u8], from: usize) -> Option<usize> {
    let name = expanded.get(h..h + 100)?;
    let hay = reference.get(from..)?;
    memchr::memmem::find_iter(hay, name)
        .find(|&p| is_header(hay, p))
        .map(|p| from + p)
}

/// The reference range of the window `content` at offset `at` of an
/// expanded form of `elen` bytes: aligned by tar member name where a member
/// header starts in the window, else by scaled offset; widened by `margin` on
/// each side; starting and ending no earlier than `prev`; at most
/// `MAX_WINDOW_REFERENCE` bytes.
fn range_for(
    content: &[u8],
    at: u64,
    elen: u64,
    reference: &[u8],
    prev: &Range<u64>,
    margin: u64,
) -> Range<u64> {
    let rlen = reference.len() as u64;
    // Where the window's start most likely was in the reference form.
    let aligned = next_header(content, 0, content.len())
        .and_then(|h| {
            let found = find_member(content, h, reference, prev.start as usize)?;
            Some((found as u64).saturating_sub(h as u64))
        })
        .unwrap_or_else(|| at.saturating_mul(rlen) / elen.max(1));
    let len = content.len() as u64;
    let mut start = aligned.saturating_sub(margin).max(prev.start).min(rlen);
    let mut end = aligned
        .saturating_add(len)
        .saturating_add(margin)
        .clamp(prev.end, rlen)
        .max(start);
    if end - start > MAX_WINDOW_REFERENCE {
        // Keep the end (in order) and as much before it as allowed.
        start = end - MAX_WINDOW_REFERENCE;
        if start < prev.start {
            start = prev.start;
            end = start + MAX_WINDOW_REFERENCE;
        }
    }
    start..end
}

/// Encodes the expanded form in `src` as windows of about `size` bytes
/// against `reference` at zstd `level`, one window in memory at a time, each
/// decoded again and checked (length and BLAKE3) the way the inside will.
/// `None` (with a warning) if a window does not decode to what it encodes.
pub(crate) fn encode(
    key: &ObjectKey,
    src: &Source,
    reference: &[u8],
    size: u64,
    level: i32,
) -> Result<Option<Vec<WindowPatch>>> {
    let size = size.clamp(1 << 10, MAX_WINDOW * 3 / 4);
    let margin = (size / 3).min((MAX_WINDOW_REFERENCE - MAX_WINDOW) / 2);
    let elen = src.len;
    let mut out: Vec<WindowPatch> = Vec::new();
    let mut at = 0u64;
    while at < elen {
        let i = out.len();
        let content = next_window(src, at, size)
            .with_context(|| format!("cannot read the expanded form of {key}"))?;
        let prev = out.last().map_or(0..0, |w| w.reference.clone());
        let range = range_for(&content, at, elen, reference, &prev, margin);
        let prefix = &reference[range.start as usize..range.end as usize];
        let frame = ferry_protocol::delta::encode(&content, prefix, level)
            .with_context(|| format!("cannot encode window {i} of {key}"))?;
        let blake3 = *blake3::hash(&content).as_bytes();
        let len = content.len() as u64;
        drop(content);
        let decoded = ferry_protocol::delta::decode(&frame, prefix, len, &key.to_string())?;
        if *blake3::hash(&decoded).as_bytes() != blake3 {
            eprintln!("ferry-out: warning: {key}: window {i} decodes to other bytes than it encodes (a defect in zstd or ferry: please report it); {key} ships whole");
            return Ok(None);
        }
        out.push(WindowPatch {
            len,
            blake3,
            reference: range,
            frame,
        });
        at += len;
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ustar archive of `files` (name, content), as `tar` writes it.
    fn tar(files: &[(String, Vec<u8>)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, data) in files {
            let mut h = [0u8; 512];
            h[..name.len()].copy_from_slice(name.as_bytes());
            h[100..107].copy_from_slice(b"0000644");
            h[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
            h[156] = b'0';
            h[257..263].copy_from_slice(b"ustar\0");
            h[263..265].copy_from_slice(b"00");
            h[148..156].copy_from_slice(b"        ");
            let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
            h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
            out.extend_from_slice(&h);
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        out.resize(out.len() + 1024, 0);
        out
    }

    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn windows_align_on_tar_members_and_stay_in_order() {
        let files = |skip: usize| -> Vec<(String, Vec<u8>)> {
            (skip..40)
                .map(|i| (format!("usr/lib/file{i:02}"), noise(20_000, i as u64)))
                .collect()
        };
        // The new tar lost its first 10 members: its content sits 200 kB
        // earlier than in the old one.
        let (old, new) = (tar(&files(0)), tar(&files(10)));
        // An eighth of a window (25 kB) always reaches the next member.
        let key = ObjectKey {
            source: "s".into(),
            path: "layer".into(),
        };
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, &new).unwrap();
        let src = Source {
            file,
            len: new.len() as u64,
        };
        let made = encode(&key, &src, &old, 200_000, 3).unwrap().unwrap();
        assert!(made.len() >= 3, "{} windows", made.len());
        let mut at = 0usize;
        for (i, w) in made.iter().enumerate() {
            // Every window but the first starts at a member (the last may
            // start in the last member: none follows it).
            if i > 0 && i + 1 < made.len() {
                assert!(is_header(&new, at), "a cut at {at} is not a member");
            }
            if let Some(next) = made.get(i + 1) {
                assert!(w.reference.start <= next.reference.start);
                assert!(w.reference.end <= next.reference.end);
            }
            // Each window's content lies inside its reference range.
            let hay = &old[w.reference.start as usize..w.reference.end as usize];
            let piece = &new[at..at + 512];
            assert!(
                hay.windows(512).any(|h| h == piece),
                "window at {at} misaligned"
            );
            at += w.len as usize;
        }
        assert_eq!(at, new.len());
        let frames: usize = made.iter().map(|w| w.frame.len()).sum();
        assert!(
            frames < new.len() / 50,
            "{frames} bytes of patches for {}",
            new.len()
        );
    }
}
