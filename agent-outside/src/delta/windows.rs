//! Windowed patches (format version 3, `Expanded::Windows`): an expanded form
//! larger than a window is cut into windows of about `DeltaOptions::window`
//! bytes, each encoded as its own zstd frame against a range of the base's
//! reference form, so that no zstd window (and, inside, no decoded buffer)
//! spans a whole expanded form.
//!
//! A reference form no longer than the range a window may get anyway (the
//! window and a margin on each side: 80 MiB for 48 MiB windows) is every
//! window's range, so that content which moved anywhere between releases is
//! found: numpy 2.1.3's wheel holds its members in about the reverse of
//! 2.1.2's order, which no ranges kept in order can follow.
//!
//! Otherwise a window's reference range is where its content most likely was
//! in the base. Its start is moved to a member header, and the first of its
//! member headers whose member is in the reference form gives the place:
//! where the expanded form holds a tar (a layer, a deb's data.tar), a ustar
//! header is looked up by its name field; where it holds a zip (a wheel, a
//! jar: local file headers stay literal bytes, each followed by its member's
//! decoded content), a local file header by its name. A window with no such
//! header falls back to its offset scaled by the two lengths. The range is
//! that place, widened by a margin on both sides, and kept in order (a
//! window's range never starts or ends before the previous one's), which lets
//! the inside read the reference form once, front to back.

use anyhow::{Context, Result};
use ferry_protocol::catalog::{Window, MAX_WINDOW, MAX_WINDOW_REFERENCE};
use ferry_protocol::path::ObjectKey;
use std::collections::HashMap;
use std::ops::Range;

/// A window made: its catalog entry without chunks, and where its zstd
/// frame is in its patch's frames file ([`Windows`]).
pub(crate) struct WindowPatch {
    pub(crate) len: u64,
    pub(crate) blake3: [u8; 32],
    pub(crate) reference: Range<u64>,
    /// The frame's bytes in the frames file.
    pub(crate) frame: Range<u64>,
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

    /// Its frame's length.
    pub(crate) fn frame_len(&self) -> u64 {
        self.frame.end - self.frame.start
    }
}

/// A patch's windows, their frames written one after another to an unlinked
/// file as they are made: together they are as large as the object's
/// change (118 MiB for a 173 MiB layer of another compiler's release), and
/// they wait there for the scan to cut them into chunks, never all held.
pub(crate) struct Windows {
    pub(crate) windows: Vec<WindowPatch>,
    frames: std::fs::File,
}

impl Windows {
    /// `len` bytes of window `w`'s frame from byte `at` of it.
    pub(crate) fn read_frame(&self, w: &WindowPatch, at: u64, len: usize) -> Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; len];
        let from = w.frame.start + at;
        if from + len as u64 > w.frame.end {
            anyhow::bail!("a read past a window's frame (a defect in ferry-out)");
        }
        self.frames
            .read_exact_at(&mut buf, from)
            .context("cannot read a patch's frames back")?;
        Ok(buf)
    }
}

/// An expanded form spilled to a file (so that the base's reference form,
/// computed next, is not held beside it), read back a window at a time.
pub(crate) struct Source {
    pub(crate) file: std::fs::File,
    pub(crate) len: u64,
}

impl Source {
    /// Its bytes `range` into `buf`, in place of what `buf` held (its
    /// memory is kept: a buffer read into window after window is not
    /// allocated, and its pages not touched for the first time, again).
    fn read_into(&self, range: Range<u64>, buf: &mut Vec<u8>) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        buf.clear();
        buf.resize((range.end - range.start) as usize, 0);
        self.file.read_exact_at(buf, range.start)
    }
}

/// A base's reference form spilled to a file, with the index of its member
/// headers: a window reads only its range, so the export holds a range (at
/// most `MAX_WINDOW_REFERENCE`) rather than the whole reference form (158
/// MB for a layer) beside the window and zstd's tables.
pub(crate) struct RefForm {
    file: Source,
    members: Members,
}

impl RefForm {
    /// Indexes `bytes` and writes them to an unnamed file in `dir`; the
    /// caller drops its copy.
    pub(crate) fn spill(dir: &std::path::Path, bytes: &[u8]) -> Result<RefForm> {
        Ok(RefForm {
            members: Members::of(bytes),
            file: Source {
                file: super::analysis::spill(dir, bytes)?,
                len: bytes.len() as u64,
            },
        })
    }
}

impl RefForm {
    /// The reference form of a base that is its own reference form (the
    /// walk does not look into it: a random blob, a plain tar), read from
    /// its kept copy `file` of `len` bytes a block at a time instead of held:
    /// its member index, and its BLAKE3; `None` if its SHA-256 is not
    /// `sha256` (a damaged copy).
    pub(crate) fn open(
        file: std::fs::File,
        len: u64,
        sha256: &ferry_protocol::id::Sha256,
    ) -> Result<Option<(RefForm, [u8; 32])>> {
        let mut sha = ferry_protocol::id::Sha256Hasher::new();
        let mut b3 = blake3::Hasher::new();
        let members = Members::of_file(&file, len, |own| {
            sha.update(own);
            b3.update(own);
        })
        .context("cannot read the kept copy of a patch's base")?;
        if sha.finish() != *sha256 {
            return Ok(None);
        }
        let form = RefForm {
            file: Source { file, len },
            members,
        };
        Ok(Some((form, *b3.finalize().as_bytes())))
    }

    /// A reference form spilled already (`len` bytes in `file`), indexed
    /// as it is read back a block at a time.
    pub(crate) fn index(file: std::fs::File, len: u64) -> Result<RefForm> {
        let members = Members::of_file(&file, len, |_| {})
            .context("cannot read a spilled reference form back")?;
        Ok(RefForm {
            file: Source { file, len },
            members,
        })
    }
}

/// Reads the next window of `src` from `start` into `bytes` (in place of
/// what it held): about `size` bytes (at most `MAX_WINDOW`), its end moved
/// forward to the next member header (tar or zip) when one starts within
/// an eighth of a window.
fn next_window(src: &Source, start: u64, size: u64, bytes: &mut Vec<u8>) -> std::io::Result<()> {
    let len = src.len;
    let end = (start + size).min(len);
    if end == len {
        return src.read_into(start..len, bytes);
    }
    let slack = size / 8;
    src.read_into(start..(end + slack + 1024).min(len), bytes)?;
    let from = (end - start) as usize;
    let cut = next_header(bytes, from, from + slack as usize).map_or(from, |(h, _)| h);
    bytes.truncate(cut);
    Ok(())
}

/// The kinds of member header a window is aligned on. Both stay literal
/// bytes in an expanded form: a tar's (a layer, a deb's data.tar) and a zip's
/// local file headers (a wheel, a jar), each naming its member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Header {
    /// A ustar header: its 100-byte name field is the key.
    Tar,
    /// A zip local file header (`PK 03 04`, 30 bytes, the name): the name is
    /// the key.
    Zip,
}

/// The zip local file header signature.
const ZIP_LOCAL: &[u8; 4] = b"PK\x03\x04";

/// The first member header (tar or zip) that starts in `data[from..to]`,
/// and its kind.
fn next_header(data: &[u8], from: usize, to: usize) -> Option<(usize, Header)> {
    let tar = next_tar_header(data, from, to).map(|h| (h, Header::Tar));
    let zip = next_zip_header(data, from, to).map(|h| (h, Header::Zip));
    match (tar, zip) {
        (Some(t), Some(z)) => Some(if z.0 < t.0 { z } else { t }),
        (t, z) => t.or(z),
    }
}

/// The offset of the first tar (ustar) member header that starts in
/// `data[from..to]`.
fn next_tar_header(data: &[u8], from: usize, to: usize) -> Option<usize> {
    let magic_from = from + 257;
    let magic_to = (to + 257).min(data.len());
    let hay = data.get(magic_from..magic_to.max(magic_from))?;
    memchr::memmem::find_iter(hay, b"ustar")
        .map(|i| from + i)
        .find(|&h| is_header(data, h))
}

/// The offset of the first zip local file header that starts in
/// `data[from..to]`.
fn next_zip_header(data: &[u8], from: usize, to: usize) -> Option<usize> {
    let hay = data.get(from..(to + 3).min(data.len()).max(from))?;
    memchr::memmem::find_iter(hay, ZIP_LOCAL)
        .map(|i| from + i)
        .find(|&h| zip_name(data, h).is_some())
}

/// The name of the zip local file header at `h`, if one plausibly starts
/// there: the signature, a method a zip writer uses (at most 99), a name of
/// 1 to 1024 bytes with no control character, all within `data`.
fn zip_name(data: &[u8], h: usize) -> Option<&[u8]> {
    let fixed = data.get(h..h + 30)?;
    if &fixed[..4] != ZIP_LOCAL {
        return None;
    }
    let method = u16::from_le_bytes([fixed[8], fixed[9]]);
    let name_len = usize::from(u16::from_le_bytes([fixed[26], fixed[27]]));
    if method > 99 || !(1..=1024).contains(&name_len) {
        return None;
    }
    let name = data.get(h + 30..h + 30 + name_len)?;
    (!name.iter().any(|&b| b < 0x20)).then_some(name)
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

/// Every member header of a reference form, by kind and name (a tar
/// header's 100-byte name field, a zip local header's name), each name's
/// offsets in order: found in one pass, then looked up per window.
struct Members(HashMap<(Header, Vec<u8>), Vec<usize>>);

impl Members {
    fn of(reference: &[u8]) -> Members {
        let mut members = Members(HashMap::new());
        members.index(reference, reference.len(), 0);
        members
    }

    /// The member headers of the `len` bytes of `file`, read a block at a
    /// time; each block's own bytes, in order, are also given to `each`.
    fn of_file(
        file: &std::fs::File,
        len: u64,
        mut each: impl FnMut(&[u8]),
    ) -> std::io::Result<Members> {
        use std::os::unix::fs::FileExt;
        // A header that starts in a block is read whole from the next
        // block's first bytes (a zip local header and its name: 1,054 bytes).
        const BLOCK: u64 = 4 << 20;
        const OVERLAP: u64 = 2048;
        let mut members = Members(HashMap::new());
        let mut buf = Vec::new();
        let mut at = 0u64;
        while at < len {
            let want = (BLOCK + OVERLAP).min(len - at);
            buf.resize(want as usize, 0);
            file.read_exact_at(&mut buf, at)?;
            let own = BLOCK.min(want) as usize;
            each(&buf[..own]);
            members.index(&buf, own, at as usize);
            at += own as u64;
        }
        Ok(members)
    }

    /// Adds the member headers that start in `block[..own]`, which lies at
    /// `offset` of the reference form (`block` may go on past `own`, so that
    /// a header starting there is read whole).
    fn index(&mut self, block: &[u8], own: usize, offset: usize) {
        let tars = memchr::memmem::find_iter(block, b"ustar")
            .filter_map(|m| m.checked_sub(257))
            .filter(|&h| h < own && is_header(block, h))
            .map(|h| (Header::Tar, h, &block[h..h + 100]));
        let zips = memchr::memmem::find_iter(block, ZIP_LOCAL)
            .filter(|&h| h < own)
            .filter_map(|h| zip_name(block, h).map(|name| (Header::Zip, h, name)));
        for (kind, h, name) in tars.chain(zips) {
            self.0
                .entry((kind, name.to_vec()))
                .or_default()
                .push(offset + h);
        }
    }

    /// Where the member whose header (of kind `kind`) is at `h` in
    /// `expanded` is in the reference form (at or after `from`): the first
    /// header of the same kind and name there.
    fn find(&self, expanded: &[u8], h: usize, kind: Header, from: usize) -> Option<usize> {
        let name = match kind {
            Header::Tar => expanded.get(h..h + 100)?,
            Header::Zip => zip_name(expanded, h)?,
        };
        let offsets = self.0.get(&(kind, name.to_vec()))?;
        offsets.get(offsets.partition_point(|&p| p < from)).copied()
    }
}

/// How many member headers of a window are looked up in the reference form
/// before its range falls back to the scaled offset (a member new in this
/// release is not there; the next one may be).
const HEADERS_TRIED: usize = 8;

/// Where the window `content` most likely was in the reference form (at or
/// after `from`): by the name of the first of its member headers found
/// there, shifted back by that header's offset in the window.
fn aligned_by_member(content: &[u8], members: &Members, from: usize) -> Option<u64> {
    let mut at = 0;
    for _ in 0..HEADERS_TRIED {
        let (h, kind) = next_header(content, at, content.len())?;
        if let Some(found) = members.find(content, h, kind, from) {
            return Some((found as u64).saturating_sub(h as u64));
        }
        at = h + 1;
    }
    None
}

/// The reference range of the window `content` at offset `at` of an
/// expanded form of `elen` bytes: aligned by member name where a member
/// header of the window is found in the reference, else by scaled offset;
/// widened by `margin` on each side; starting and ending no earlier than
/// `prev`; at most `MAX_WINDOW_REFERENCE` bytes.
fn range_for(
    content: &[u8],
    at: u64,
    elen: u64,
    (members, rlen): (&Members, u64),
    prev: &Range<u64>,
    margin: u64,
) -> Range<u64> {
    let aligned = aligned_by_member(content, members, prev.start as usize)
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

/// Where [`encode`] reserves each window's buffers while it holds them.
pub(crate) trait Hold {
    /// Bytes held now.
    fn bytes(&self) -> u64;
    /// Holds `extra` bytes more.
    fn grow(&mut self, extra: u64);
    /// Gives back all but `bytes`.
    fn shrink(&mut self, bytes: u64);
    /// Whether zstd's tables are reserved too, on this thread's holder
    /// (`ferry_recipe::budget`).
    fn tables(&self) -> bool;
    /// From now on the work holds at most `bytes` (a holder that reserves
    /// as it goes ignores it; one prepaid gives back the rest).
    fn needs_at_most(&mut self, _bytes: u64) {}
}

impl Hold for ferry_recipe::budget::Permit<'_> {
    fn bytes(&self) -> u64 {
        ferry_recipe::budget::Permit::bytes(self)
    }
    fn grow(&mut self, extra: u64) {
        ferry_recipe::budget::Permit::grow(self, extra);
    }
    fn shrink(&mut self, bytes: u64) {
        ferry_recipe::budget::Permit::shrink(self, bytes);
    }
    fn tables(&self) -> bool {
        true
    }
}

/// Windows encoded on a helper thread whose whole need (as guessed: the
/// base's reference form not yet made, [`peak`] against the longest range a
/// window may read) its caller reserved beforehand and shares with it
/// ([`ferry_recipe::budget::Permit::share`]): nothing more is reserved (a
/// second holder would wait for the first, which waits for it), and what
/// the guess reserved beyond the need is given back once the need is known
/// ([`Hold::needs_at_most`]).
pub(crate) struct Prepaid<'p>(pub(crate) ferry_recipe::budget::Share<'p>);

impl Hold for Prepaid<'_> {
    fn bytes(&self) -> u64 {
        0
    }
    fn grow(&mut self, _: u64) {}
    fn shrink(&mut self, _: u64) {}
    fn tables(&self) -> bool {
        false
    }
    fn needs_at_most(&mut self, bytes: u64) {
        self.0.shrink(bytes);
    }
}

/// The most [`encode`] holds at once (what it reserves for a window at
/// most, and zstd's tables) for an expanded form of `elen` bytes against a
/// reference form of `rlen` bytes, in windows of about `size` bytes.
pub(crate) fn peak(elen: u64, rlen: u64, size: u64, level: i32) -> u64 {
    let size = size.clamp(1 << 10, MAX_WINDOW * 3 / 4);
    let most = (size + size / 8 + 1024).min(elen);
    let range = rlen.min(MAX_WINDOW_REFERENCE);
    most + range + ferry_protocol::delta::encoder_memory(level, range, most)
}

/// Encodes the expanded form in `src` as windows of about `size` bytes
/// against `reference` at zstd `level`, one window in memory at a time, each
/// decoded again and checked (length and BLAKE3) the way the inside will.
/// `None` (with a warning) if a window does not decode to what it encodes.
/// Each window's buffers (its content, its reference range, the decoded
/// copy) are reserved on `permit` while they are held.
pub(crate) fn encode(
    key: &ObjectKey,
    src: &Source,
    reference: &RefForm,
    (size, level): (u64, i32),
    spill_dir: &std::path::Path,
    permit: &mut (impl Hold + ?Sized),
) -> Result<Option<Windows>> {
    let size = size.clamp(1 << 10, MAX_WINDOW * 3 / 4);
    let margin = (size / 3).min((MAX_WINDOW_REFERENCE - MAX_WINDOW) / 2);
    let elen = src.len;
    // A reference form no longer than the range a window may get anyway is
    // every window's range: content that moved anywhere between releases
    // (a zip's members reordered) is found, at no more memory.
    let rlen = reference.file.len;
    let whole = rlen <= size + 2 * margin;
    // The reference form is made: a holder prepaid for a guess of it gives
    // back what the windows do not need (numpy's windows were prepaid a
    // 128 MiB range and the form's guess, and ran alone).
    permit.needs_at_most(peak(elen, rlen, size, level));
    let mut out: Vec<WindowPatch> = Vec::new();
    let mut frames = ferry_agent_common::fsx::unlinked_file(spill_dir, "frames")?;
    let mut written = 0u64;
    let mut at = 0u64;
    let kept = permit.bytes();
    // One buffer for every window (with the slack it may be moved by; its
    // decoded copy is made in it once it is encoded) and one for every
    // reference range, reserved for the whole loop: known bounds, reserved
    // before they are read, and reused window after window.
    permit.grow((size + size / 8 + 1024).min(elen) + rlen.min(MAX_WINDOW_REFERENCE));
    let (mut content, mut prefix) = (Vec::new(), Vec::new());
    while at < elen {
        let i = out.len();
        next_window(src, at, size, &mut content)
            .with_context(|| format!("cannot read the expanded form of {key}"))?;
        let range = if whole {
            0..rlen
        } else {
            let prev = out.last().map_or(0..0, |w| w.reference.clone());
            range_for(
                &content,
                at,
                elen,
                (&reference.members, rlen),
                &prev,
                margin,
            )
        };
        reference
            .file
            .read_into(range.clone(), &mut prefix)
            .with_context(|| format!("cannot read the reference form of {key}'s base"))?;
        let frame = if permit.tables() {
            encode_bounded(&content, &prefix, level)
        } else {
            ferry_protocol::delta::encode(&content, &prefix, level)
        };
        let frame = frame.with_context(|| format!("cannot encode window {i} of {key}"))?;
        let blake3 = *blake3::hash(&content).as_bytes();
        let len = content.len() as u64;
        // Decoded into the window's buffer, as the inside will decode it.
        ferry_protocol::delta::decode_into(&frame, &prefix, len, &key.to_string(), &mut content)?;
        if *blake3::hash(&content).as_bytes() != blake3 {
            eprintln!("ferry-out: warning: {key}: window {i} decodes to other bytes than it encodes (a defect in zstd or ferry: please report it); {key} ships whole");
            return Ok(None);
        }
        std::io::Write::write_all(&mut frames, &frame)
            .with_context(|| format!("cannot write a spill file in {}", spill_dir.display()))?;
        let frame = written..written + frame.len() as u64;
        written = frame.end;
        out.push(WindowPatch {
            len,
            blake3,
            reference: range,
            frame,
        });
        at += len;
    }
    drop((content, prefix));
    permit.shrink(kept);
    Ok(Some(Windows {
        windows: out,
        frames,
    }))
}

/// `ferry_protocol::delta::encode`, once zstd's tables fit the process's
/// encoder budget (`ferry_recipe::budget`): at the slow levels they are
/// tens of MiB, and every core encodes.
pub(crate) fn encode_bounded(
    content: &[u8],
    reference: &[u8],
    level: i32,
) -> Result<Vec<u8>, ferry_protocol::Error> {
    let tables =
        ferry_protocol::delta::encoder_memory(level, reference.len() as u64, content.len() as u64);
    let _permit = ferry_recipe::budget::reserve(tables);
    ferry_protocol::delta::encode(content, reference, level)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::noise;

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
        let made = encode(
            &key,
            &src,
            &reference(&old),
            (200_000, 3),
            &std::env::temp_dir(),
            &mut ferry_recipe::budget::reserve(0),
        )
        .unwrap()
        .unwrap()
        .windows;
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
        let frames: u64 = made.iter().map(|w| w.frame_len()).sum();
        assert!(
            frames < (new.len() / 50) as u64,
            "{frames} bytes of patches for {}",
            new.len()
        );
    }

    /// A zip's expanded form as `analyze` makes it of `files` (name,
    /// content), deflated entries: each local header literal, then the
    /// member's decoded content (the central directory left out).
    fn zip_expanded(files: &[(String, Vec<u8>)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, data) in files {
            let mut h = [0u8; 30];
            h[..4].copy_from_slice(ZIP_LOCAL);
            h[4] = 20;
            h[8] = 8;
            h[18..22].copy_from_slice(&(data.len() as u32 / 3).to_le_bytes());
            h[22..26].copy_from_slice(&(data.len() as u32).to_le_bytes());
            h[26..28].copy_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&h);
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(data);
        }
        out
    }

    fn key() -> ObjectKey {
        ObjectKey {
            source: "s".into(),
            path: "numpy.whl".into(),
        }
    }

    fn source(bytes: &[u8]) -> Source {
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, bytes).unwrap();
        Source {
            file,
            len: bytes.len() as u64,
        }
    }

    fn reference(bytes: &[u8]) -> RefForm {
        RefForm::spill(&std::env::temp_dir(), bytes).unwrap()
    }

    fn member(i: usize) -> (String, Vec<u8>) {
        (format!("numpy/_core/mod{i:02}.so"), noise(20_000, i as u64))
    }

    #[test]
    fn a_zip_window_finds_its_member_by_name() {
        let old = zip_expanded(&(0..40).map(member).collect::<Vec<_>>());
        // A window starting at member 25, which sits 200 kB further in the
        // reference form; then one starting at a member the reference lacks.
        let new = zip_expanded(&(25..30).map(member).collect::<Vec<_>>());
        let at = old.len() / 2;
        let members = Members::of(&old);
        let found = aligned_by_member(&new, &members, 0).unwrap() as usize;
        assert_eq!(&old[found..found + 1000], &new[..1000]);
        let fresh = zip_expanded(&[("numpy/new.py".into(), noise(3000, 99)), member(31)]);
        let found = aligned_by_member(&fresh, &members, at).unwrap() as usize;
        // Aligned so that member 31 (the window's second) lines up.
        let second = 30 + "numpy/new.py".len() + 3000;
        assert_eq!(
            &old[found + second..found + second + 1000],
            &fresh[second..second + 1000]
        );
        // Not found before where the previous window's range starts.
        assert_eq!(aligned_by_member(&new, &members, old.len() - 10), None);
    }

    #[test]
    fn zip_windows_follow_a_grown_member_and_lost_ones() {
        // The new release lost its first 10 members and member 15 grew by
        // 60 kB: its content sits far from where a scaled offset puts it.
        let files: Vec<_> = (10..40)
            .map(|i| {
                let (name, mut data) = member(i);
                if i == 15 {
                    data.extend(noise(60_000, 1000));
                }
                (name, data)
            })
            .collect();
        let old = zip_expanded(&(0..40).map(member).collect::<Vec<_>>());
        let new = zip_expanded(&files);
        let made = encode(
            &key(),
            &source(&new),
            &reference(&old),
            (200_000, 3),
            &std::env::temp_dir(),
            &mut ferry_recipe::budget::reserve(0),
        )
        .unwrap()
        .unwrap()
        .windows;
        assert!(made.len() >= 3, "{} windows", made.len());
        // Not every window gets the whole reference form (800 kB).
        assert!(made
            .iter()
            .all(|w| w.reference.end - w.reference.start < old.len() as u64));
        let mut at = 0usize;
        for (i, w) in made.iter().enumerate() {
            if i > 0 && i + 1 < made.len() {
                assert!(
                    zip_name(&new, at).is_some(),
                    "a cut at {at} is not a member"
                );
            }
            let hay = &old[w.reference.start as usize..w.reference.end as usize];
            let piece = &new[at + 64..at + 576];
            assert!(
                hay.windows(512).any(|h| h == piece),
                "window {i} at {at} misaligned"
            );
            at += w.len as usize;
        }
        assert_eq!(at, new.len());
        // The 60 kB of new noise, and little more.
        let frames: u64 = made.iter().map(|w| w.frame_len()).sum();
        assert!(
            frames < (60_000 + new.len() / 50) as u64,
            "{frames} bytes of patches"
        );
    }

    #[test]
    fn a_reordered_zip_small_enough_is_patched_against_all_of_its_reference() {
        // numpy 2.1.3's wheel holds its members in the reverse of 2.1.2's
        // order: ranges kept in order cannot follow that, the whole
        // reference form (no longer than a window's range may be) does.
        let old = zip_expanded(&(0..8).map(member).collect::<Vec<_>>());
        let new = zip_expanded(&(0..8).rev().map(member).collect::<Vec<_>>());
        let made = encode(
            &key(),
            &source(&new),
            &reference(&old),
            (100_000, 3),
            &std::env::temp_dir(),
            &mut ferry_recipe::budget::reserve(0),
        )
        .unwrap()
        .unwrap()
        .windows;
        assert!(made.len() >= 2, "{} windows", made.len());
        for w in &made {
            assert_eq!(w.reference, 0..old.len() as u64);
        }
        let frames: u64 = made.iter().map(|w| w.frame_len()).sum();
        assert!(
            frames < (new.len() / 50) as u64,
            "{frames} bytes of patches"
        );
    }
}
