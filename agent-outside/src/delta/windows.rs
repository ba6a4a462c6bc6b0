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

/// Where the window of `expanded` at `range` cuts: the windows of `expanded`
/// (about `size` bytes each, at most `MAX_WINDOW`), each cut moved forward to
/// the next tar member header when one is within an eighth of a window.
pub(crate) fn cuts(expanded: &[u8], size: u64) -> Vec<Range<usize>> {
    let size = size.clamp(1 << 10, MAX_WINDOW * 3 / 4) as usize;
    let mut out = Vec::new();
    let mut start = 0usize;
    while start < expanded.len() {
        let mut end = (start + size).min(expanded.len());
        if end < expanded.len() {
            let slack = (end + size / 8).min(expanded.len());
            if let Some(h) = next_header(expanded, end, slack) {
                end = h;
            }
        }
        out.push(start..end);
        start = end;
    }
    out
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
    let first = name[0];
    let hay = reference.get(from..)?;
    let mut at = 0usize;
    while at + 512 <= hay.len() {
        let i = hay[at..].iter().position(|&b| b == first)?;
        let p = at + i;
        if hay.get(p..p + 100) == Some(name) && is_header(hay, p) {
            return Some(from + p);
        }
        at = p + 1;
    }
    None
}

/// The reference range of each window in `cuts`: aligned by tar member name
/// where a member header starts in the window, else by scaled offset;
/// widened by `margin` on each side; in order; at most `MAX_WINDOW_REFERENCE`.
pub(crate) fn ranges(
    expanded: &[u8],
    reference: &[u8],
    cuts: &[Range<usize>],
    margin: u64,
) -> Vec<Range<u64>> {
    let (elen, rlen) = (expanded.len() as u64, reference.len() as u64);
    let mut out: Vec<Range<u64>> = Vec::with_capacity(cuts.len());
    for cut in cuts {
        let (prev_start, prev_end) = out.last().map_or((0, 0), |r| (r.start, r.end));
        // Where the window's start most likely was in the reference form.
        let aligned = next_header(expanded, cut.start, cut.end)
            .and_then(|h| {
                let found = find_member(expanded, h, reference, prev_start as usize)?;
                Some((found as u64).saturating_sub((h - cut.start) as u64))
            })
            .unwrap_or_else(|| (cut.start as u64).saturating_mul(rlen) / elen.max(1));
        let len = (cut.end - cut.start) as u64;
        let mut start = aligned.saturating_sub(margin).max(prev_start).min(rlen);
        let mut end = aligned
            .saturating_add(len)
            .saturating_add(margin)
            .clamp(prev_end, rlen)
            .max(start);
        if end - start > MAX_WINDOW_REFERENCE {
            // Keep the end (in order) and as much before it as allowed.
            start = end - MAX_WINDOW_REFERENCE;
            if start < prev_start {
                start = prev_start;
                end = start + MAX_WINDOW_REFERENCE;
            }
        }
        out.push(start..end);
    }
    out
}

/// Encodes `expanded` as windows against `reference` at zstd `level`, each
/// decoded again and checked (length and BLAKE3) the way the inside will.
/// `None` (with a warning) if a window does not decode to what it encodes.
pub(crate) fn encode(
    key: &ObjectKey,
    expanded: &[u8],
    reference: &[u8],
    size: u64,
    level: i32,
) -> Result<Option<Vec<WindowPatch>>> {
    let cuts = cuts(expanded, size);
    let margin = (size / 3).min((MAX_WINDOW_REFERENCE - MAX_WINDOW) / 2);
    let ranges = ranges(expanded, reference, &cuts, margin);
    let mut out = Vec::with_capacity(cuts.len());
    for (i, (cut, range)) in cuts.into_iter().zip(ranges).enumerate() {
        let content = &expanded[cut];
        let prefix = &reference[range.start as usize..range.end as usize];
        let frame = ferry_protocol::delta::encode(content, prefix, level)
            .with_context(|| format!("cannot encode window {i} of {key}"))?;
        let blake3 = *blake3::hash(content).as_bytes();
        let len = content.len() as u64;
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
        let cuts = cuts(&new, 200_000);
        assert!(cuts.len() >= 3, "{} windows", cuts.len());
        assert_eq!(cuts.first().unwrap().start, 0);
        assert_eq!(cuts.last().unwrap().end, new.len());
        // (The last window may start in the last member: none follows it.)
        for c in &cuts[1..cuts.len() - 1] {
            assert!(
                is_header(&new, c.start),
                "a cut at {} is not a member",
                c.start
            );
        }
        let ranges = ranges(&new, &old, &cuts, 10_000);
        for w in ranges.windows(2) {
            assert!(w[0].start <= w[1].start && w[0].end <= w[1].end);
        }
        for (cut, range) in cuts.iter().zip(&ranges) {
            // Each window's content lies inside its reference range.
            let hay = &old[range.start as usize..range.end as usize];
            let piece = &new[cut.start..cut.start + 512];
            assert!(
                hay.windows(512).any(|w| w == piece),
                "window at {} misaligned",
                cut.start
            );
        }
        let key = ObjectKey {
            source: "s".into(),
            path: "layer".into(),
        };
        let made = encode(&key, &new, &old, 200_000, 3).unwrap().unwrap();
        assert_eq!(made.len(), cuts.len());
        let frames: usize = made.iter().map(|w| w.frame.len()).sum();
        assert!(
            frames < new.len() / 50,
            "{frames} bytes of patches for {}",
            new.len()
        );
    }
}
