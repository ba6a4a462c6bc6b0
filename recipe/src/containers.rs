//! The containers the walk knows, sniffed by magic: gzip (multi-member), zip
//! local entries, ar (debs), RPM, and bare xz and zstd streams.

use crate::codec::Codec;
use crate::report::StreamKind;
use crate::walk::{Place, Walker};
use crate::zlib::LevelHint;

pub(crate) const GZIP: &[u8] = &[0x1f, 0x8b, 0x08];
pub(crate) const ZIP_LOCAL: &[u8] = b"PK\x03\x04";
const ZIP_DESCRIPTOR: &[u8] = b"PK\x07\x08";
pub(crate) const AR: &[u8] = b"!<arch>\n";
pub(crate) const RPM_LEAD: &[u8] = &[0xed, 0xab, 0xee, 0xdb];
const RPM_HEADER: &[u8] = &[0x8e, 0xad, 0xe8, 0x01];
pub(crate) const XZ: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0x00];
pub(crate) const ZSTD: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

fn u16le(d: &[u8], at: usize) -> Option<usize> {
    Some(u16::from_le_bytes(d.get(at..at + 2)?.try_into().ok()?) as usize)
}

fn u32le(d: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(d.get(at..at + 4)?.try_into().ok()?))
}

fn u32be(d: &[u8], at: usize) -> Option<usize> {
    Some(u32::from_be_bytes(d.get(at..at + 4)?.try_into().ok()?) as usize)
}

fn u64le(d: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(d.get(at..at + 8)?.try_into().ok()?))
}

/// Whether the walk recognises a container or stream starting at `head`'s
/// first byte: if not, an object is its own expanded and reference form.
pub(crate) fn recognised(head: &[u8]) -> bool {
    [GZIP, ZIP_LOCAL, AR, RPM_LEAD, XZ, ZSTD]
        .iter()
        .any(|magic| head.starts_with(magic))
}

/// Whether `head` starts with a gzip member's magic.
pub(crate) fn is_gzip(head: &[u8]) -> bool {
    head.starts_with(GZIP)
}

/// Walks `data[start..end]` by its magic, `depth` containers deep.
pub(crate) fn walk(w: &mut Walker<'_>, start: usize, end: usize, depth: u32) {
    if depth > w.max_depth() || start >= end {
        return;
    }
    let head = &w.data[start..end];
    let bare = |kind, codec| Place {
        kind,
        codec,
        start,
        end,
        declared: None,
        hint: LevelHint::Unknown,
        read_ahead: false,
    };
    if head.starts_with(GZIP) {
        gzip(w, start, end);
    } else if head.starts_with(ZIP_LOCAL) {
        zip(w, start, end, depth);
    } else if head.starts_with(AR) {
        ar(w, start, end, depth);
    } else if head.starts_with(RPM_LEAD) {
        rpm(w, start, end, depth);
    } else if head.starts_with(XZ) {
        w.stream(bare(StreamKind::Xz, Codec::Xz));
    } else if head.starts_with(ZSTD) {
        w.stream(bare(StreamKind::Zstd, Codec::Zstd));
    }
}

/// The offset of the deflate data after the gzip member header at `at`.
pub(crate) fn gzip_header_end(d: &[u8], at: usize, end: usize) -> Option<usize> {
    let d = d.get(..end)?;
    if !d.get(at..)?.starts_with(GZIP) {
        return None;
    }
    let flags = *d.get(at + 3)?;
    if flags & 0xe0 != 0 {
        return None;
    }
    let mut p = at + 10;
    if flags & 0x04 != 0 {
        p += 2 + u16le(d, p)?;
    }
    for bit in [0x08, 0x10] {
        if flags & bit != 0 {
            p += d.get(p..)?.iter().position(|&b| b == 0)? + 1;
        }
    }
    if flags & 0x02 != 0 {
        p += 2;
    }
    (p <= end).then_some(p)
}

/// Every gzip member from `start`: header and trailer literal, deflate body a stream.
fn gzip(w: &mut Walker<'_>, start: usize, end: usize) {
    let mut at = start;
    while let Some(body) = gzip_header_end(w.data, at, end) {
        let place = Place {
            kind: StreamKind::GzipMember,
            codec: Codec::Deflate,
            start: body,
            end,
            declared: None,
            hint: LevelHint::of_xfl(w.data[at + 8]),
            read_ahead: reads_ahead(w.data, at, end),
        };
        match w.stream(place) {
            Some(stream_end) => at = stream_end + 8,
            None => return,
        }
    }
}

/// Whether the block ends of the gzip member at `at` (its container ending
/// at `end`) are worth reading on another thread while it is inflated: a
/// stream that may be cut. GNU gzip writes OS 3 (Unix), Go's `compress/gzip`
/// 255 (unknown); level 1 (XFL 4) is never cut, and neither is
/// klauspost/pgzip's stream (OS 255 too), told by how it ends when it is
/// the container's last member (its usual place: a layer is one member).
fn reads_ahead(data: &[u8], at: usize, end: usize) -> bool {
    let pgzip = end
        .checked_sub(8)
        .and_then(|body_end| data.get(..body_end))
        .is_some_and(crate::zlib::ends_as_pgzip);
    matches!(data.get(at + 9), Some(3 | 255)) && data.get(at + 8) != Some(&4) && !pgzip
}

/// One zip local entry at `at`: (flags, method, compressed size if the header
/// says it, data offset).
pub(crate) fn zip_local(
    d: &[u8],
    at: usize,
    end: usize,
) -> Option<(u16, u16, Option<usize>, usize)> {
    let d = d.get(..end)?;
    if !d.get(at..)?.starts_with(ZIP_LOCAL) {
        return None;
    }
    let flags = u16le(d, at + 6)? as u16;
    let method = u16le(d, at + 8)? as u16;
    let csize = u32le(d, at + 18)?;
    let name_len = u16le(d, at + 26)?;
    let extra_len = u16le(d, at + 28)?;
    let extra_at = at + 30 + name_len;
    let data_at = extra_at + extra_len;
    if data_at > end {
        return None;
    }
    let declared = if csize == u32::MAX {
        zip64_csize(&d[extra_at..data_at])
    } else if flags & 0x08 != 0 && csize == 0 {
        None
    } else {
        Some(csize as usize)
    };
    Some((flags, method, declared, data_at))
}

/// The compressed size in a zip64 extra field (tag 1: uncompressed, then compressed size).
fn zip64_csize(extra: &[u8]) -> Option<usize> {
    let mut p = 0;
    while p + 4 <= extra.len() {
        let (tag, len) = (u16le(extra, p)?, u16le(extra, p + 2)?);
        if tag == 1 {
            return usize::try_from(u64le(extra, p + 12)?).ok();
        }
        p += 4 + len;
    }
    None
}

/// The end of the data descriptor that follows an entry's data at `at`, if it
/// is followed by another zip record.
pub(crate) fn zip_descriptor_end(d: &[u8], at: usize, end: usize) -> Option<usize> {
    let base = if d.get(at..end)?.starts_with(ZIP_DESCRIPTOR) {
        at + 4
    } else {
        at
    };
    [base + 12, base + 20]
        .into_iter()
        .find(|&p| p == end || d.get(p..end).is_some_and(|r| r.starts_with(b"PK")))
}

/// Zip local entries from `start`: deflated entries are streams, stored entries
/// are walked as containers of their own; the central directory stays literal.
fn zip(w: &mut Walker<'_>, start: usize, end: usize, depth: u32) {
    let mut at = start;
    while let Some((flags, method, declared, data_at)) = zip_local(w.data, at, end) {
        let data_end = declared
            .and_then(|n| data_at.checked_add(n))
            .filter(|&e| e <= end);
        let next = match (method, data_end) {
            (8, _) => {
                let place = Place {
                    kind: StreamKind::ZipEntry,
                    codec: Codec::Deflate,
                    start: data_at,
                    end: data_end.unwrap_or(end),
                    declared,
                    hint: LevelHint::of_zip_flags(flags),
                    read_ahead: false,
                };
                w.stream(place).or(data_end)
            }
            (0, Some(data_end)) => {
                walk(w, data_at, data_end, depth + 1);
                Some(data_end)
            }
            (_, data_end) => data_end,
        };
        let Some(next) = next else { return };
        at = if flags & 0x08 != 0 {
            match zip_descriptor_end(w.data, next, end) {
                Some(p) => p,
                None => return,
            }
        } else {
            next
        };
    }
}

/// ar members (a deb's debian-binary, control.tar.*, data.tar.*), each walked.
fn ar(w: &mut Walker<'_>, start: usize, end: usize, depth: u32) {
    let mut at = start + AR.len();
    while at + 60 <= end {
        let header = &w.data[at..at + 60];
        if &header[58..60] != b"`\n" {
            return;
        }
        let Some(size) = std::str::from_utf8(&header[48..58])
            .ok()
            .and_then(|s| s.trim_end().parse::<usize>().ok())
        else {
            return;
        };
        let data_at = at + 60;
        let Some(data_end) = data_at.checked_add(size).filter(|&e| e <= end) else {
            return;
        };
        walk(w, data_at, data_end, depth + 1);
        at = data_end + (size & 1);
    }
}

/// The end of the RPM header structure at `at` (magic, index, data store).
pub(crate) fn rpm_header_end(d: &[u8], at: usize) -> Option<usize> {
    if !d.get(at..)?.starts_with(RPM_HEADER) {
        return None;
    }
    let entries = u32be(d, at + 8)?;
    let store = u32be(d, at + 12)?;
    let end = entries
        .checked_mul(16)?
        .checked_add(store)?
        .checked_add(at + 16)?;
    (end <= d.len()).then_some(end)
}

/// An RPM: lead, signature header (padded to 8) and header literal, the payload walked.
fn rpm(w: &mut Walker<'_>, start: usize, end: usize, depth: u32) {
    let d = &w.data[..end];
    let Some(sig_end) = rpm_header_end(d, start + 96) else {
        return;
    };
    let header_at = sig_end + (8 - (sig_end - start) % 8) % 8;
    let Some(payload) = rpm_header_end(d, header_at) else {
        return;
    };
    walk(w, payload, end, depth + 1);
}

#[cfg(test)]
mod tests {
    use super::reads_ahead;

    /// A gzip member: header (XFL `xfl`, OS `os`), `body`, an 8-byte trailer.
    fn member(xfl: u8, os: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, os];
        m.extend_from_slice(body);
        m.extend_from_slice(&[0; 8]);
        m
    }

    #[test]
    fn block_ends_are_read_ahead_only_for_streams_that_may_be_cut() {
        // A body ending as GNU gzip's or Go's may (any last bytes but pgzip's).
        let body = [0x4b, 0x4c, 0x4a, 0x06, 0x00];
        for os in [3, 255] {
            let m = member(0, os, &body);
            assert!(reads_ahead(&m, 0, m.len()), "OS {os}");
            // Level 1 (XFL 4) is never cut.
            let m = member(4, os, &body);
            assert!(!reads_ahead(&m, 0, m.len()), "OS {os}, level 1");
        }
        // Another OS (zlib's gzip writes 3 too; Windows' 11): not read ahead.
        let m = member(0, 11, &body);
        assert!(!reads_ahead(&m, 0, m.len()));
        // pgzip's end (a sync flush, then an empty fixed final block).
        let m = member(0, 255, &[0x4b, 0x4c, 0, 0, 0xff, 0xff, 3, 0]);
        assert!(!reads_ahead(&m, 0, m.len()));
        // A truncated member never panics.
        assert!(!reads_ahead(&m[..9], 0, 9));
        assert!(!reads_ahead(&[], 0, 0));
    }
}
