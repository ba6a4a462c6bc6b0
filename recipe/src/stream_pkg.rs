//! A package (a deb, an ar archive; or an RPM) expanded or analysed as it
//! is read, never held: a large package is one xz stream of a few hundred
//! MB of plain bytes (Debian's firefox-esr: 80 MB of data.tar.xz, 309 MB
//! plain), which `expand` and `analyze` would hold with the object.
//!
//! The object is read once, front to back (the caller may hash it as it
//! passes). Each member header is parsed from a look-ahead and copied. A
//! member that is an xz stream of more than a MiB (data.tar.xz) is decoded
//! as it is read. Any other member of at most [`SMALL_MEMBER`] bytes
//! (debian-binary, control.tar.*) is read whole and walked by the whole
//! walk itself, carrying the object's projected size and encoder search,
//! so it is laid out as the whole walk lays it out. A larger one is copied
//! as it is when the whole walk would not look into it (a data.tar). An
//! RPM's lead and headers are copied and its payload is such a member. The result is `expand`'s (or
//! `analyze`'s, `check_streams` off) or nothing: a large member of another
//! kind (gzip, zstd, a nested archive), an xz stream that does not decode,
//! passes its bounds, or whose encoder the search does not find from its
//! first bytes, is refused, and the caller expands or analyses the object
//! whole.

use std::io::{Read, Write};

use crate::ahead::Ahead;
use crate::recipe::Segment;
use crate::report::{LiteralReason, Outcome, StreamKind, StreamReport};
use crate::stream_expand::{Holding, StreamExpandError, StreamedAnalysis};
use crate::walk::{Mode, Walker};
use crate::zlib::DeflateSearch;

/// Members up to this size are read whole and walked as the whole walk
/// walks them (unless they are an xz stream of more than
/// [`XZ_READ_AS_IT_GOES`] bytes).
pub(crate) const SMALL_MEMBER: u64 = 8 << 20;

/// An xz member larger than this is decoded as it is read (a deb's
/// data.tar.xz); a smaller one (control.tar.xz) is walked whole. Either
/// way gives the whole walk's result; the fuzz target (`streamed`), whose
/// inputs are small, reads every xz member as it goes.
const XZ_READ_AS_IT_GOES: u64 = if cfg!(fuzzing) { 0 } else { 1 << 20 };

/// The most a small member's form may grow past the member, so that what
/// is held stays bounded: the member is walked with an expansion limit this
/// far past the object's projected size, and one whose streams meet that
/// limit is refused (the whole walk, with the object's own limit, might
/// decode them).
const SMALL_GROWTH: u64 = 32 << 20;

/// Compressed bytes of a large xz stream held for the encoder search (which
/// compares what the first MiB of plain bytes encode to).
const HELD_XZ_COMPRESSED: usize = 4 << 20;

/// Plain bytes of a large xz stream held for the encoder search.
const HELD_XZ_PLAIN: usize = 2 << 20;

/// Plain bytes decoded at a time.
const STEP: usize = 256 << 10;

/// What the walk made besides the form: the recipe's segments and the
/// report's streams (both empty when expanding), and the form's length.
struct Walked {
    segments: Vec<Segment>,
    streams: Vec<StreamReport>,
    expanded_len: u64,
}

/// The walk's state between members.
struct State {
    mode: Mode,
    /// The form's projected size, as the whole walk projects it.
    projected: u64,
    deflate: DeflateSearch,
    walked: Walked,
}

impl State {
    /// Notes `n` literal bytes copied to the form.
    fn literal(&mut self, n: u64) {
        self.walked.expanded_len += n;
        if self.mode == Mode::Analyze {
            self.segment(Segment::Literal { len: n });
        }
    }

    /// Notes a segment of the recipe, a literal one merged with a literal
    /// before it as the whole walk merges them.
    fn segment(&mut self, segment: Segment) {
        match (segment, self.walked.segments.last_mut()) {
            (Segment::Literal { len: 0 }, _) => {}
            (Segment::Literal { len: n }, Some(Segment::Literal { len })) => *len += n,
            (other, _) => self.walked.segments.push(other),
        }
    }
}

/// Walks the package read from `object` (`len` bytes) as the whole walk
/// walks it in `mode`, writing its form to `out` (see the module docs).
fn walk_package(
    object: &mut impl Read,
    len: u64,
    out: &mut impl Write,
    opts: &crate::Options,
    mode: Mode,
) -> Result<Walked, StreamExpandError> {
    let refuse = |why| Err(StreamExpandError::NotOneMember(why));
    if len > opts.max_expanded {
        return refuse("larger than the expansion limit");
    }
    if opts.max_depth < 1 {
        return refuse("members are not walked");
    }
    let mut a = Ahead::new(object);
    let mut st = State {
        mode,
        projected: len,
        deflate: DeflateSearch::new(opts.max_recipe_version),
        walked: Walked {
            segments: Vec::new(),
            streams: Vec::new(),
            expanded_len: 0,
        },
    };
    let head = a.peek(8)?;
    if head == crate::containers::AR {
        walk_ar(&mut a, len, out, opts, &mut st)?;
    } else if head.starts_with(crate::containers::RPM_LEAD) {
        walk_rpm(&mut a, len, out, opts, &mut st)?;
    } else {
        return refuse("neither an ar archive nor an RPM");
    }
    // Whatever follows: literal.
    let before = a.pos;
    a.copy_rest(out)?;
    st.literal(a.pos - before);
    if a.pos != len {
        return refuse("the package is not the length given");
    }
    Ok(st.walked)
}

/// The members of the ar archive (a deb) read from `a`, as the whole walk
/// walks them; the bytes after them are left to the caller.
fn walk_ar<R: Read>(
    a: &mut Ahead<R>,
    len: u64,
    out: &mut impl Write,
    opts: &crate::Options,
    st: &mut State,
) -> Result<(), StreamExpandError> {
    a.copy(8, out)?;
    st.literal(8);
    let mut at = 8u64;
    while at + 60 <= len {
        // The member header, as the whole walk reads it.
        let skip = at - a.pos;
        a.copy(skip, out)?;
        st.literal(skip);
        let header = a.peek(60)?;
        if header.len() < 60 || &header[58..60] != b"`\n" {
            break;
        }
        let Some(size) = std::str::from_utf8(&header[48..58])
            .ok()
            .and_then(|s| s.trim_end().parse::<u64>().ok())
        else {
            break;
        };
        let data_at = at + 60;
        let Some(data_end) = data_at.checked_add(size).filter(|&e| e <= len) else {
            break;
        };
        a.copy(60, out)?;
        st.literal(60);
        member(a, size, out, opts, st)?;
        debug_assert!(a.pos <= data_end);
        at = data_end + (size & 1);
    }
    Ok(())
}

/// The most an RPM's lead and headers may take to be read as it goes (a
/// package of many files has a header of a few MiB).
const RPM_HEADERS_MOST: usize = 32 << 20;

/// The RPM read from `a`: its lead, signature header (padded to 8) and
/// header copied, its payload (to the object's end) walked as a member is
/// ([`member`]), as the whole walk walks it. Headers that do not parse are
/// refused (the whole walk leaves such an RPM literal).
fn walk_rpm<R: Read>(
    a: &mut Ahead<R>,
    len: u64,
    out: &mut impl Write,
    opts: &crate::Options,
    st: &mut State,
) -> Result<(), StreamExpandError> {
    use crate::containers::rpm_header_end;
    let refuse = |why| Err(StreamExpandError::NotOneMember(why));
    let header_end = |a: &mut Ahead<R>, at: usize| -> Result<Option<usize>, StreamExpandError> {
        let fixed = a.peek(at + 16)?;
        let Some(sizes) = fixed.get(at + 8..at + 16) else {
            return Ok(None);
        };
        let entries = u32::from_be_bytes(sizes[..4].try_into().unwrap_or_default()) as usize;
        let store = u32::from_be_bytes(sizes[4..].try_into().unwrap_or_default()) as usize;
        let end = entries
            .saturating_mul(16)
            .saturating_add(store)
            .saturating_add(at + 16);
        if end > RPM_HEADERS_MOST {
            return Ok(None);
        }
        let d = a.peek(end)?;
        Ok(rpm_header_end(d, at))
    };
    let Some(sig_end) = header_end(a, 96)? else {
        return refuse("an RPM's signature header does not parse");
    };
    let header_at = sig_end + (8 - sig_end % 8) % 8;
    let Some(payload) = header_end(a, header_at)? else {
        return refuse("an RPM's header does not parse");
    };
    let payload = payload as u64;
    if payload > len {
        return refuse("an RPM's header passes its end");
    }
    a.copy(payload, out)?;
    st.literal(payload);
    member(a, len - payload, out, opts, st)
}

/// A member of `size` bytes (an ar member's data, an RPM's payload), one
/// container deep: an xz stream over [`XZ_READ_AS_IT_GOES`] decoded as it
/// is read, anything else up to [`SMALL_MEMBER`] walked whole, a larger
/// one copied when the whole walk would not look into it and refused
/// otherwise.
fn member<R: Read>(
    a: &mut Ahead<R>,
    size: u64,
    out: &mut impl Write,
    opts: &crate::Options,
    st: &mut State,
) -> Result<(), StreamExpandError> {
    let head = a.peek(16)?;
    let head = &head[..head.len().min(size as usize)];
    if head.starts_with(crate::containers::XZ) && size > XZ_READ_AS_IT_GOES {
        xz_member(a, size, out, opts, st)
    } else if size <= SMALL_MEMBER {
        small_member(a, size, out, opts, st)
    } else if crate::containers::recognised(head) {
        Err(StreamExpandError::NotOneMember(
            "a large member that is not an xz stream is walked into",
        ))
    } else {
        // Not looked into by the whole walk (a data.tar): literal.
        a.copy(size, out)?;
        st.literal(size);
        Ok(())
    }
}

/// A member of `size` bytes read whole and walked by the whole walk, one
/// container deep; its form written to `out`. Walked with the expansion
/// limit at most [`SMALL_GROWTH`] past the projected size: if no stream
/// met it, the walk with the object's limit lays the member out the same.
fn small_member<R: Read>(
    a: &mut Ahead<R>,
    size: u64,
    out: &mut impl Write,
    opts: &crate::Options,
    st: &mut State,
) -> Result<(), StreamExpandError> {
    let member_at = a.pos;
    let data = a.peek(size as usize)?.to_vec();
    if data.len() as u64 != size {
        return Err(StreamExpandError::NotOneMember("a member ends early"));
    }
    a.consume(data.len());
    let bounded = crate::Options {
        max_expanded: opts
            .max_expanded
            .min(st.projected.saturating_add(SMALL_GROWTH)),
        ..opts.clone()
    };
    let deflate = std::mem::replace(&mut st.deflate, DeflateSearch::new(0));
    let mut w = Walker::within(&data, &bounded, st.mode, (st.projected, deflate));
    crate::containers::walk(&mut w, 0, data.len(), 1);
    w.finish();
    // (A stream kept literal by its ratio is kept so under either limit.)
    let met = |r: &StreamReport| r.outcome == Outcome::Literal(LiteralReason::TooLarge);
    if bounded.max_expanded < opts.max_expanded && w.streams.iter().any(met) {
        return Err(StreamExpandError::NotOneMember(
            "a small member decodes past what is held",
        ));
    }
    out.write_all(&w.expanded)?;
    st.walked.expanded_len += w.expanded.len() as u64;
    st.projected = w.projected;
    st.deflate = w.deflate;
    for segment in w.segments {
        st.segment(segment);
    }
    for mut stream in w.streams {
        stream.offset += member_at;
        st.walked.streams.push(stream);
    }
    Ok(())
}

/// A member that is an xz stream of more than [`XZ_READ_AS_IT_GOES`]
/// bytes: decoded into `out` as it is read, within the whole walk's
/// bounds, and (analysing) its encoder found from its first bytes; the
/// bytes after the stream (its padding) literal.
fn xz_member<R: Read>(
    a: &mut Ahead<R>,
    region: u64,
    out: &mut impl Write,
    opts: &crate::Options,
    st: &mut State,
) -> Result<(), StreamExpandError> {
    use liblzma::stream::{Action, Status, Stream};
    let refuse = |why| Err(StreamExpandError::NotOneMember(why));
    let offset = a.pos;
    if st.mode == Mode::Analyze && !opts.reproduce_xz {
        // The whole walk leaves it literal, not even decoded; its index
        // (in its last bytes) says what it holds, for the report.
        let tail = region.min(64 << 10);
        a.copy(region - tail, out)?;
        let plain_len = crate::xz::indexed_plain_len(a.peek(tail as usize)?);
        st.walked.streams.push(StreamReport {
            kind: StreamKind::Xz,
            offset,
            compressed_len: region,
            plain_len,
            recipe_len: 0,
            outcome: Outcome::Literal(LiteralReason::Skipped),
        });
        a.copy(tail, out)?;
        st.literal(region);
        return Ok(());
    }
    let limit = crate::walk::bounds(opts, st.projected, region).limit;
    let Ok(mut stream) = Stream::new_stream_decoder(crate::xz::DECODER_MEMLIMIT, 0) else {
        return refuse("the xz decoder cannot start");
    };
    let analyse = st.mode == Mode::Analyze;
    let mut held_compressed = Vec::new();
    let mut plain = Holding {
        out: &mut *out,
        kept: Vec::new(),
        cap: if analyse { HELD_XZ_PLAIN } else { 0 },
    };
    let mut buf = vec![0u8; STEP];
    loop {
        let left = region - stream.total_in();
        let input = a.peek(left.min(1 << 20) as usize)?;
        let (in_before, out_before) = (stream.total_in(), stream.total_out());
        let status = stream.process(input, &mut buf, Action::Run);
        let used = (stream.total_in() - in_before) as usize;
        let made = (stream.total_out() - out_before) as usize;
        if analyse {
            let room = HELD_XZ_COMPRESSED.saturating_sub(held_compressed.len());
            held_compressed.extend_from_slice(&input[..used.min(room)]);
        }
        let stalled = used == 0 && made == 0;
        let ended_input = input.is_empty();
        a.consume(used);
        plain.write_all(&buf[..made])?;
        if stream.total_out() > limit {
            return refuse("an xz stream passes the expansion's bounds");
        }
        match status {
            Ok(Status::StreamEnd) => break,
            Ok(_) if stalled && ended_input => return refuse("an xz stream is cut short"),
            Ok(_) => {}
            Err(_) => return refuse("an xz stream does not decode"),
        }
    }
    let (used, plain_len) = (stream.total_in(), stream.total_out());
    if plain_len > used.saturating_mul(opts.max_ratio) {
        return refuse("an xz stream passes the expansion's ratio");
    }
    if analyse {
        let params = crate::xz::find_params_held(
            (&held_compressed, used as usize),
            (&plain.kept, plain_len as usize),
        )
        .map_err(|_| {
            StreamExpandError::NotReproduced("no xz encoder found from the stream's first bytes")
        })?;
        let segment = Segment::Xz {
            plain_len,
            compressed_len: used,
            params,
        };
        st.walked.streams.push(StreamReport {
            kind: StreamKind::Xz,
            offset,
            compressed_len: used,
            plain_len: Some(plain_len),
            recipe_len: crate::walk::recipe_data_len(&segment),
            outcome: Outcome::Reproduced,
        });
        st.walked.segments.push(segment);
    }
    st.walked.expanded_len += plain_len;
    st.projected = st.projected - used + plain_len;
    // The member's bytes after the stream (stream padding): literal.
    let rest = region - used;
    a.copy(rest, out)?;
    st.literal(rest);
    Ok(())
}

/// The reference form of a package (a deb or an RPM) read from `object`
/// (`len` bytes), written to `out` as it is read: exactly what
/// [`crate::expand`] makes of it with `opts`, or refused (the caller
/// expands it whole).
pub(crate) fn expand_package(
    object: &mut impl Read,
    len: u64,
    out: &mut impl Write,
    opts: &crate::Options,
) -> Result<(), StreamExpandError> {
    walk_package(object, len, out, opts, Mode::Expand).map(|_| ())
}

/// [`crate::analyze`] of a package (a deb or an RPM) of `len` bytes with `opts.check_streams`
/// off, writing its expanded form to `out` as it is read from `object`:
/// the same recipe, report and form, holding at most a member of
/// [`SMALL_MEMBER`] bytes (with its form) or an xz stream's first 2 MiB of
/// plain and 4 MiB of compressed bytes. Refused as the walk refuses.
pub(crate) fn analyze_package(
    object: &mut impl Read,
    len: u64,
    out: &mut impl Write,
    opts: &crate::Options,
) -> Result<StreamedAnalysis, StreamExpandError> {
    if opts.check_streams {
        return Err(StreamExpandError::NotReproduced(
            "each stream is to be checked on its own",
        ));
    }
    let walked = walk_package(object, len, out, opts, Mode::Analyze)?;
    crate::stream_expand::ANALYSED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(StreamedAnalysis {
        recipe: crate::Recipe {
            segments: walked.segments,
        },
        report: crate::Report {
            input_len: len,
            streams: walked.streams,
        },
        expanded_len: walked.expanded_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Text that xz compresses about 4:1, as a package's files do.
    fn text(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        let words = [
            "usr", "lib", "share", "ferry", "deb", "java", "\n", " ", "=", "0x1f",
        ];
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            out.extend_from_slice(words[(x >> 59) as usize % words.len()].as_bytes());
            if x & 0x300 == 0 {
                out.push((x >> 20) as u8);
            }
        }
        out.truncate(len);
        out
    }

    /// A deb made by dpkg-deb with `-Z<compression>` holding `files`, or
    /// `None` without dpkg-deb.
    fn dpkg_deb(compression: &str, files: &[(&str, Vec<u8>)]) -> Option<Vec<u8>> {
        let dir = tempfile::tempdir().ok()?;
        let root = dir.path().join("pkg");
        std::fs::create_dir_all(root.join("DEBIAN")).ok()?;
        std::fs::write(
            root.join("DEBIAN/control"),
            "Package: ferrybig\nVersion: 1.0\nArchitecture: all\n\
             Maintainer: t <t@example.org>\nDescription: big\n",
        )
        .ok()?;
        for (name, data) in files {
            let path = root.join(name);
            std::fs::create_dir_all(path.parent()?).ok()?;
            std::fs::write(path, data).ok()?;
        }
        let deb = dir.path().join("p.deb");
        let ok = std::process::Command::new("dpkg-deb")
            .args(["--root-owner-group", &format!("-Z{compression}"), "--build"])
            .arg(&root)
            .arg(&deb)
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipped: no dpkg-deb to make a deb");
            return None;
        }
        std::fs::read(deb).ok()
    }

    /// An analysis and the expanded form it wrote.
    type Analysed = (StreamedAnalysis, Vec<u8>);

    /// An RPM made by rpmbuild with payload `payload` (`w6.xzdio`: xz at
    /// preset 6, as RHEL's are; `w9.gzdio`: gzip) holding `data`, or
    /// `None` without rpmbuild.
    fn rpmbuild(payload: &str, data: &[u8]) -> Option<Vec<u8>> {
        let dir = tempfile::tempdir().ok()?;
        let file = dir.path().join("data.txt");
        std::fs::write(&file, data).ok()?;
        let spec = dir.path().join("t.spec");
        std::fs::write(
            &spec,
            format!(
                "Name: ferrybig\nVersion: 1.0\nRelease: 1\nSummary: big\nLicense: MIT\n\
                 BuildArch: noarch\n%description\nbig\n%install\n\
                 mkdir -p %{{buildroot}}/usr/share/ferrybig\n\
                 cp {} %{{buildroot}}/usr/share/ferrybig/data\n\
                 %files\n/usr/share/ferrybig/data\n",
                file.display()
            ),
        )
        .ok()?;
        let ok = std::process::Command::new("rpmbuild")
            .arg("-bb")
            .arg("--define")
            .arg(format!("_topdir {}", dir.path().join("top").display()))
            .arg("--define")
            .arg(format!("_rpmdir {}", dir.path().join("rpms").display()))
            .args(["--define", "_build_id_links none"])
            .args(["--define", "__os_install_post %{nil}"])
            .args(["--define", &format!("_binary_payload {payload}")])
            .arg(&spec)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipped: no rpmbuild to make an RPM");
            return None;
        }
        std::fs::read(dir.path().join("rpms/noarch/ferrybig-1.0-1.noarch.rpm")).ok()
    }

    /// What the walk makes of `deb` read as it goes: (form, analysis and
    /// the form it wrote), each `None` if refused.
    fn streamed(deb: &[u8], opts: &crate::Options) -> (Option<Vec<u8>>, Option<Analysed>) {
        let mut form = Vec::new();
        let expanded = expand_package(&mut &deb[..], deb.len() as u64, &mut form, opts);
        let mut out = Vec::new();
        let analysed = analyze_package(&mut &deb[..], deb.len() as u64, &mut out, opts);
        (
            expanded.ok().map(|()| form),
            analysed.ok().map(|a| (a, out)),
        )
    }

    /// `analyze`'s result (`check_streams` off) and `expand`'s form of a
    /// package are what the walk makes as it reads: for the corpus's debs
    /// and for those of dpkg-deb and RPMs of rpmbuild with an xz member or
    /// payload over a MiB (decoded as it is read, at `high` and at `fast`,
    /// where xz streams are not even decoded) or small members and
    /// payloads (walked whole), and the recipe rebuilds the package.
    #[test]
    fn a_package_read_as_it_goes_is_expanded_and_analysed_as_whole() {
        let mut debs = Vec::new();
        if let Some(d) = dpkg_deb(
            "xz",
            &[
                ("usr/share/big/a.txt", text(6 << 20, 1)),
                ("usr/share/big/b.txt", text(300_000, 2)),
            ],
        ) {
            debs.push(("dpkg-deb -Zxz, large", d));
        }
        if let Some(d) = dpkg_deb("none", &[("usr/share/big/a.txt", text(9 << 20, 3))]) {
            debs.push(("dpkg-deb -Znone, large", d));
        }
        if let Some(d) = dpkg_deb("gzip", &[("usr/share/s.txt", text(100_000, 4))]) {
            debs.push(("dpkg-deb -Zgzip, small", d));
        }
        if let Some(r) = rpmbuild("w6.xzdio", &text(6 << 20, 5)) {
            debs.push(("rpmbuild w6.xzdio, large", r));
        }
        if let Some(r) = rpmbuild("w9.gzdio", &text(200_000, 6)) {
            debs.push(("rpmbuild w9.gzdio, small", r));
        }
        let dir = std::path::Path::new("/tmp/ferry-corpus/new/debs");
        let corpus = match std::fs::read_dir(dir) {
            Ok(list) => {
                for e in list.flatten() {
                    if let Ok(bytes) = std::fs::read(e.path()) {
                        debs.push(("corpus deb", bytes));
                    }
                }
                1
            }
            Err(_) => {
                eprintln!("no corpus at {}: its debs not tried", dir.display());
                0
            }
        };
        if debs.is_empty() {
            return;
        }
        let mut large_xz = 0;
        for reproduce_xz in [true, false] {
            let opts = crate::Options {
                check_streams: false,
                reproduce_xz,
                ..crate::Options::default()
            };
            // (The corpus at `high` only: each pass decodes its xz thrice.)
            for (what, deb) in debs
                .iter()
                .filter(|(w, _)| reproduce_xz || !w.starts_with("corpus"))
            {
                let what = format!("{what} (xz reproduced: {reproduce_xz})");
                let (form, analysis) = streamed(deb, &opts);
                let whole_form = crate::expand(deb, &opts).unwrap();
                assert!(form == Some(whole_form), "{what}: form");
                let whole = crate::analyze(deb, &opts);
                let (a, out) = analysis.unwrap_or_else(|| panic!("{what}: refused"));
                assert_eq!(a.recipe, whole.recipe, "{what}");
                assert_eq!(a.report, whole.report, "{what}");
                assert!(out == whole.expanded, "{what}: expanded form");
                assert_eq!(a.expanded_len, out.len() as u64, "{what}");
                // The recipe is `analyze`'s, which rebuilds the corpus's
                // debs elsewhere; rebuilding them here (their xz) would take
                // minutes.
                if !what.starts_with("corpus") {
                    let mut rebuilt = Vec::new();
                    crate::rebuild(&a.recipe, &out, deb.len() as u64, &mut rebuilt).unwrap();
                    assert!(rebuilt == *deb, "{what}: not rebuilt");
                }
                large_xz += a
                    .report
                    .streams
                    .iter()
                    .filter(|s| s.kind == StreamKind::Xz && s.compressed_len > XZ_READ_AS_IT_GOES)
                    .filter(|s| s.outcome == Outcome::Reproduced)
                    .count();
            }
        }
        // The dpkg-deb's and rpmbuild's xz over a MiB and the corpus's
        // data.tar.xz, at `high`.
        let made = debs
            .iter()
            .filter(|(w, _)| w.contains("Zxz") || w.contains("xzdio"))
            .count();
        assert!(large_xz >= made + corpus, "no large xz member reproduced");
    }

    /// What the walk does not read as it goes is refused, never laid out
    /// otherwise than the whole walk: a large gzip member, a deb cut at
    /// any of several places, a member damaged in its xz stream, a small
    /// member that decodes to more than is held.
    #[test]
    fn what_is_not_read_as_it_goes_is_refused() {
        let opts = crate::Options {
            check_streams: false,
            ..crate::Options::default()
        };
        let mut x = 5u64;
        let noise: Vec<u8> = (0..9 << 20)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                (x >> 56) as u8
            })
            .collect();
        if let Some(deb) = dpkg_deb("gzip", &[("a.bin", noise)]) {
            let (form, analysis) = streamed(&deb, &opts);
            assert!(form.is_none() && analysis.is_none(), "large gzip member");
        }
        let Some(deb) = dpkg_deb("xz", &[("a.txt", text(6 << 20, 6))]) else {
            return;
        };
        assert!(
            deb.len() > 1 << 20,
            "the data member is decoded as it is read"
        );
        for cut in [4, 8, 30, 68, 200, 5000, deb.len() / 2, deb.len() - 1] {
            let part = &deb[..cut];
            let (form, analysis) = streamed(part, &opts);
            let whole = crate::expand(part, &opts).unwrap();
            assert!(form.is_none() || form == Some(whole), "cut at {cut}");
            if let Some((a, out)) = analysis {
                assert_eq!(a.recipe, crate::analyze(part, &opts).recipe, "cut at {cut}");
                assert_eq!(a.expanded_len, out.len() as u64);
            }
        }
        let mut bad = deb.clone();
        let at = deb.len() / 2;
        bad[at] ^= 0x40;
        let (form, analysis) = streamed(&bad, &opts);
        assert!(form.is_none() && analysis.is_none(), "damaged xz stream");

        // A member of a few hundred KiB of xz that decodes to 40 MiB
        // (zeros and a few random bytes every KiB, within the ratio): the
        // whole walk decodes it; read as it goes, it is refused rather
        // than held.
        let mut x = 7u64;
        let sparse: Vec<u8> = (0..40usize << 20)
            .map(|i| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                if i % 1024 < 8 {
                    (x >> 56) as u8
                } else {
                    0
                }
            })
            .collect();
        let params = crate::xz::XzParams {
            preset: 0,
            extreme: false,
            dict_size: 256 << 10,
            check: crate::xz::XzCheck::Crc64,
            mode: crate::xz::XzMode::Single,
        };
        let sparse = crate::xz::compress(&params, &sparse).unwrap();
        assert!(sparse.len() < 1 << 20);
        let mut bomb = b"!<arch>\n".to_vec();
        bomb.extend_from_slice(
            format!(
                "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
                "data.tar.xz/",
                0,
                0,
                0,
                100644,
                sparse.len()
            )
            .as_bytes(),
        );
        bomb.extend_from_slice(&sparse);
        assert!(crate::expand(&bomb, &opts).unwrap().len() > 40 << 20);
        let (form, analysis) = streamed(&bomb, &opts);
        assert!(
            form.is_none() && analysis.is_none(),
            "small member past what is held"
        );
    }
}
