//! A zip (a wheel, a jar) expanded or analysed as it is read, one entry
//! after another, never held: a GPU wheel is one deflated library of a few
//! hundred MB (nvidia-nccl-cu12's `libnccl.so.2`: 176 MB deflated, 233 MB
//! plain), which `expand` and `analyze` would hold with its form.
//!
//! The object is read once, front to back (the caller may hash it as it
//! passes): each local header is parsed from a look-ahead buffer and
//! copied, each deflated entry inflated into the form as it is read. The
//! result is `expand`'s (or `analyze`'s, `check_streams` off) or nothing:
//! whatever the whole walk would leave literal or walk into (a stream that
//! does not decode or is past its bounds or near them, an entry whose end
//! its header does not give, a stored entry holding a container, an entry
//! the encoder search does not reproduce from its first bytes) is refused,
//! and the caller expands or analyses the object whole.

use std::io::{Read, Write};

use crate::ahead::Ahead;
use crate::stream_expand::{
    inflate_stream, Held, Holding, StreamExpandError, StreamedAnalysis, Tapped,
};

/// The most a local header takes (30 bytes, a name and an extra field of
/// at most 64 KiB each): what the look-ahead holds to parse one.
const HEADER_MOST: usize = 30 + 2 * 65_535;

/// One deflated entry the walk met, for the analysis.
pub(crate) struct Entry {
    /// Its raw deflate bytes' offset in the object, and length.
    pub(crate) offset: u64,
    pub(crate) compressed_len: u64,
    /// Its plain length.
    pub(crate) plain_len: u64,
    /// Its local header's general-purpose flags (the level hint).
    pub(crate) flags: u16,
    /// Its first plain and compressed bytes and last compressed bytes.
    pub(crate) held: Held,
}

/// Walks the zip read from `object` (`len` bytes) as `expand` walks it,
/// writing its form to `out`: literal bytes, and each deflated entry's
/// plain bytes, of which the first `caps.0` and the first `caps.1`
/// compressed bytes are kept for `each`, which sees every deflated entry
/// before the next is read. Refused where the whole walk would leave a
/// stream literal or walk into an entry (see the module docs).
pub(crate) fn walk_zip(
    object: &mut impl Read,
    len: u64,
    out: &mut impl Write,
    opts: &crate::Options,
    caps: (usize, usize),
    mut each: impl FnMut(Entry) -> Result<(), StreamExpandError>,
) -> Result<(), StreamExpandError> {
    use crate::containers::{recognised, zip_descriptor_end, zip_local};
    let refuse = |why| Err(StreamExpandError::NotOneMember(why));
    if len > opts.max_expanded {
        return refuse("larger than the expansion limit");
    }
    let mut a = Ahead::new(object);
    // The size the form will have, as the whole walk projects it.
    let mut projected = len;
    loop {
        let window = a.peek(HEADER_MOST)?;
        let Some((flags, method, declared, data_at)) = zip_local(window, 0, window.len()) else {
            break;
        };
        let here = a.pos;
        let data_at_abs = here + data_at as u64;
        let data_end = declared
            .and_then(|n| data_at_abs.checked_add(n as u64))
            .filter(|&e| e <= len);
        let next = match (method, data_end) {
            (8, Some(data_end)) => {
                a.copy(data_at as u64, out)?;
                let region = data_end - data_at_abs;
                let limit = crate::walk::bounds(opts, projected, region).limit;
                let mut held = Held::default();
                let mut left = a.take(region);
                let (used, plain_len, kept) = {
                    let mut input = Tapped {
                        inner: &mut left,
                        held: &mut held,
                        cap: caps.1,
                    };
                    let mut plain = Holding {
                        out: &mut *out,
                        kept: Vec::new(),
                        cap: caps.0,
                    };
                    let (used, plain_len, _) =
                        inflate_stream(&mut input, limit, opts.max_ratio, &mut plain)?;
                    (used, plain_len, plain.kept)
                };
                let rest = left.left;
                held.plain = kept;
                if used != region || rest != 0 {
                    return refuse("an entry's stream is not the length its header gives");
                }
                projected = projected - used + plain_len;
                each(Entry {
                    offset: data_at_abs,
                    compressed_len: used,
                    plain_len,
                    flags,
                    held,
                })?;
                data_end
            }
            (8, None) => return refuse("a deflated entry whose end its header does not give"),
            (0, Some(data_end)) => {
                // The whole walk walks into a stored entry: one that holds
                // a container is refused, anything else stays literal.
                a.copy(data_at as u64, out)?;
                let stored = (data_end - data_at_abs) as usize;
                let head = a.peek(16)?;
                if stored > 0 && recognised(&head[..head.len().min(stored)]) {
                    return refuse("a stored entry holds a container");
                }
                a.copy(data_end - data_at_abs, out)?;
                data_end
            }
            (_, Some(data_end)) => {
                a.copy(data_end - here, out)?;
                data_end
            }
            (_, None) => break,
        };
        debug_assert_eq!(a.pos, next);
        if flags & 0x08 != 0 {
            let after = a.peek(64)?;
            let end = after.len();
            match zip_descriptor_end(after, 0, end) {
                Some(p) => a.copy(p as u64, out)?,
                None => break,
            }
        }
    }
    // The central directory and anything after the entries: literal.
    a.copy_rest(out)?;
    if a.pos != len {
        return refuse("the zip is not the length given");
    }
    Ok(())
}

/// [`crate::analyze`] of a zip of `len` bytes with `opts.check_streams`
/// off, writing its expanded form to `out` as it is read from `object`
/// (the bytes of `file` from its start, read again only for the block
/// ends of a stream that may be cut): the same recipe, report and form,
/// holding at most a stream's first 32 MiB of plain and 9 MiB of
/// compressed bytes. Refused as [`walk_zip`] refuses, and where an entry's
/// encoder is not found from those bytes.
pub(crate) fn analyze_zip(
    file: &std::fs::File,
    len: u64,
    object: &mut impl Read,
    out: &mut impl Write,
    opts: &crate::Options,
) -> Result<StreamedAnalysis, StreamExpandError> {
    use crate::cuts::symbols::FileStream;
    use crate::recipe::Segment;
    use crate::report::{Outcome, StreamKind, StreamReport};
    use crate::stream_expand::{member_segment, HELD_COMPRESSED, HELD_PLAIN};
    use crate::zlib::{DeflateSearch, LevelHint, StreamView};
    if opts.check_streams {
        return Err(StreamExpandError::NotReproduced(
            "each stream is to be checked on its own",
        ));
    }
    let mut search = DeflateSearch::new(opts.max_recipe_version);
    let mut segments = Vec::new();
    let mut streams = Vec::new();
    let mut expanded_len = 0u64;
    // The object offset after the last stream.
    let mut emitted = 0u64;
    let literal = |segments: &mut Vec<Segment>, n: u64| {
        if n > 0 {
            segments.push(Segment::Literal { len: n });
        }
    };
    walk_zip(object, len, out, opts, (HELD_PLAIN, HELD_COMPRESSED), |e| {
        literal(&mut segments, e.offset - emitted);
        expanded_len += e.offset - emitted;
        let compressed = StreamView {
            head: &e.held.head,
            tail: &e.held.tail,
            len: e.compressed_len as usize,
        };
        let stream = FileStream {
            file,
            start: e.offset,
            len: e.compressed_len,
        };
        let hint = (LevelHint::of_zip_flags(e.flags), &mut search);
        let plain = (&e.held.plain[..], e.plain_len);
        let segment = member_segment((compressed, stream), plain, hint, None, opts)?;
        streams.push(StreamReport {
            kind: StreamKind::ZipEntry,
            offset: e.offset,
            compressed_len: e.compressed_len,
            plain_len: Some(e.plain_len),
            recipe_len: crate::walk::recipe_data_len(&segment),
            outcome: Outcome::Reproduced,
        });
        segments.push(segment);
        expanded_len += e.plain_len;
        emitted = e.offset + e.compressed_len;
        Ok(())
    })?;
    literal(&mut segments, len - emitted);
    expanded_len += len - emitted;
    crate::stream_expand::ANALYSED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(StreamedAnalysis {
        recipe: crate::Recipe { segments },
        report: crate::Report {
            input_len: len,
            streams,
        },
        expanded_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A zip made by Python's `zipfile` (what `pip`'s wheel writer uses)
    /// of `files` (name, bytes, stored), or `None` without python3.
    fn python_zip(files: &[(&str, Vec<u8>, bool)]) -> Option<Vec<u8>> {
        let dir = tempfile::tempdir().ok()?;
        let mut script = String::from("import zipfile,sys\nz=zipfile.ZipFile(sys.argv[1],'w')\n");
        for (i, (name, data, stored)) in files.iter().enumerate() {
            let path = dir.path().join(format!("f{i}"));
            std::fs::write(&path, data).ok()?;
            let method = if *stored {
                "ZIP_STORED"
            } else {
                "ZIP_DEFLATED"
            };
            script.push_str(&format!(
                "z.write({:?}, {:?}, zipfile.{method})\n",
                path.display().to_string(),
                name
            ));
        }
        script.push_str("z.close()\n");
        let out = dir.path().join("out.zip");
        let ok = std::process::Command::new("python3")
            .arg("-c")
            .arg(&script)
            .arg(&out)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipped: no python3 to make a zip");
            return None;
        }
        std::fs::read(out).ok()
    }

    fn text(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        let words = [
            "lib", "so", "ferry", "layer", "cuda", "nccl", "wheel", "\n", " ",
        ];
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            out.extend_from_slice(words[(x >> 59) as usize % words.len()].as_bytes());
        }
        out.truncate(len);
        out
    }

    /// An analysis and the expanded form it wrote.
    type Analysed = (StreamedAnalysis, Vec<u8>);

    /// What the streamed walk makes of `zip`: (form, analysis), each
    /// `None` if refused.
    fn streamed(zip: &[u8]) -> (Option<Vec<u8>>, Option<Analysed>) {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(zip).unwrap();
        let len = zip.len() as u64;
        let mut form = Vec::new();
        let expanded = crate::stream_expand::expand_streamed(&file, len, &mut &zip[..], &mut form);
        let opts = crate::Options {
            check_streams: false,
            ..crate::Options::default()
        };
        let mut out = Vec::new();
        let analysed =
            crate::stream_expand::analyze_streamed(&file, len, &mut &zip[..], &mut out, &opts);
        (
            expanded.ok().map(|()| form),
            analysed.ok().map(|a| (a, out)),
        )
    }

    /// A zip as Python writes a wheel (deflated text, an empty member, a
    /// stored one, a large one over the held bytes) and every wheel of the
    /// corpus: the streamed form is `expand`'s, the streamed analysis is
    /// `analyze`'s (`check_streams` off) and rebuilds the zip.
    #[test]
    fn a_zip_read_as_it_goes_is_expanded_and_analysed_as_whole() {
        let Some(made) = python_zip(&[
            ("pkg/__init__.py", Vec::new(), false),
            ("pkg/data.txt", text(300_000, 1), false),
            ("pkg/stored.bin", text(5000, 2), true),
            ("pkg/lib.so", text(40 << 20, 3), false),
            ("pkg-1.0.dist-info/RECORD", text(900, 4), false),
        ]) else {
            return;
        };
        let mut zips = vec![("python", made)];
        for gen in ["old", "new"] {
            let dir = std::path::Path::new("/tmp/ferry-corpus")
                .join(gen)
                .join("wheels");
            let Ok(list) = std::fs::read_dir(&dir) else {
                eprintln!("no corpus at {}: its wheels not tried", dir.display());
                continue;
            };
            for e in list.flatten() {
                if let Ok(bytes) = std::fs::read(e.path()) {
                    zips.push(("corpus wheel", bytes));
                }
            }
        }
        let opts = crate::Options {
            check_streams: false,
            ..crate::Options::default()
        };
        let mut analysed = 0;
        for (what, zip) in &zips {
            let (form, analysis) = streamed(zip);
            let whole_form = crate::expand(zip, &crate::Options::default()).unwrap();
            assert!(
                form.as_ref().is_some_and(|f| *f == whole_form),
                "{what}: form"
            );
            let whole = crate::analyze(zip, &opts);
            let all_zlib = whole.recipe.segments.iter().all(|s| {
                matches!(
                    s,
                    crate::Segment::Literal { .. } | crate::Segment::Zlib { .. }
                )
            });
            match analysis {
                Some((a, out)) => {
                    assert_eq!(a.recipe, whole.recipe, "{what}");
                    assert_eq!(a.report, whole.report, "{what}");
                    assert!(out == whole.expanded, "{what}: expanded form");
                    assert_eq!(a.expanded_len, out.len() as u64);
                    let mut rebuilt = Vec::new();
                    crate::rebuild(&a.recipe, &out, zip.len() as u64, &mut rebuilt).unwrap();
                    assert!(rebuilt == *zip, "{what}: not rebuilt");
                    analysed += 1;
                }
                // Refused only where the whole analysis needed more than
                // the encoder search (preflate-rs, or a literal stream).
                None => assert!(!all_zlib, "{what}: refused, yet all zlib"),
            }
        }
        assert!(analysed >= 1, "nothing analysed as it was read");
    }

    /// What the whole walk leaves literal or walks into is refused: a
    /// stored entry holding a gzip stream (which `expand` decodes), a
    /// deflated entry cut short, a zip whose central directory is cut.
    #[test]
    fn what_the_whole_walk_treats_otherwise_is_refused() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        gz.write_all(&text(100_000, 5)).unwrap();
        let gz = gz.finish().unwrap();
        let Some(nested) = python_zip(&[
            ("a.txt", text(10_000, 6), false),
            ("inner.tar.gz", gz, true),
        ]) else {
            return;
        };
        let whole = crate::expand(&nested, &crate::Options::default()).unwrap();
        assert!(
            whole.len() > nested.len() + 50_000,
            "expand decodes the stored gzip"
        );
        let (form, analysis) = streamed(&nested);
        assert!(form.is_none() && analysis.is_none());

        let Some(zip) = python_zip(&[("a.txt", text(200_000, 7), false)]) else {
            return;
        };
        // The entry's stream damaged in its middle: `expand` keeps it
        // literal (or decodes other bytes, which a caller's BLAKE3 finds).
        let mut bad = zip.clone();
        bad[30 + 5 + 1000] ^= 0x55;
        let (form, _) = streamed(&bad);
        let whole = crate::expand(&bad, &crate::Options::default()).unwrap();
        assert!(form.is_none() || form.as_ref() == Some(&whole));
        // Cut anywhere: never a panic, and a form only if `expand`'s.
        for cut in [10, 40, 2000, zip.len() - 30, zip.len() - 1] {
            let (form, _) = streamed(&zip[..cut]);
            let whole = crate::expand(&zip[..cut], &crate::Options::default()).unwrap();
            assert!(
                form.is_none() || form.as_ref() == Some(&whole),
                "cut at {cut}"
            );
        }
    }
}
