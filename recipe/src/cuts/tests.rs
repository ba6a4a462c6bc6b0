//! Cuts found by the analysis in real `gzip -6` and `gzip -9` output (made
//! here by /bin/gzip over a tar of real files: the sources in the corpus's
//! crates and two of its debs) rebuild their pieces byte for byte, alone, one
//! after another and at once; a wrong cut is refused.

use std::path::Path;
use std::process::{Command, Stdio};

use super::*;

const CORPUS: &str = "/tmp/ferry-corpus/new";

/// A tar of the corpus's crates' files and two debs (about 10 MB), or `None`
/// without the corpus or tar (the tests then use 10 MB of [`text`]).
pub(crate) fn corpus_tar(dir: &Path) -> Option<Vec<u8>> {
    let crates = Path::new(CORPUS).join("crates");
    let debs = Path::new(CORPUS).join("debs");
    if !crates.is_dir() || !debs.is_dir() {
        eprintln!("no corpus at {CORPUS}: generated text instead");
        return None;
    }
    let tree = dir.join("tree");
    std::fs::create_dir_all(&tree).ok()?;
    let mut names: Vec<_> = std::fs::read_dir(&crates)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    names.sort();
    for c in &names {
        let ok = Command::new("tar")
            .arg("-xzf")
            .arg(c)
            .arg("-C")
            .arg(&tree)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("tar cannot extract {}: generated text instead", c.display());
            return None;
        }
    }
    let mut debs: Vec<_> = std::fs::read_dir(&debs)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    // The two smallest: some binary content (their xz data) beside the
    // crates' text, not a large package's incompressible megabytes, whose
    // blocks never end on a match (the first two by name, git's 7 MB
    // among them, left too few cuts in the tests that use this).
    debs.sort_by_key(|d| {
        (
            std::fs::metadata(d).map_or(u64::MAX, |m| m.len()),
            d.clone(),
        )
    });
    for d in debs.iter().take(2) {
        std::fs::copy(d, tree.join(d.file_name()?)).ok()?;
    }
    let out = Command::new("tar")
        .args(["--sort=name", "--mtime=@1700000000", "-cf", "-", "-C"])
        .arg(&tree)
        .arg(".")
        .output()
        .ok()?;
    out.status.success().then_some(out.stdout)
}

/// `gzip -level -n` of `plain` by /bin/gzip, whole (header and trailer),
/// or `None` without it.
pub(crate) fn gnu_gzip(level: u8, plain: &[u8]) -> Option<Vec<u8>> {
    let mut child = Command::new("gzip")
        .args([format!("-{level}"), "-n".into(), "-c".into()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let data = plain.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&data).is_ok());
    let out = child.wait_with_output().ok()?;
    (feeder.join().unwrap_or(false) && out.status.success()).then_some(out.stdout)
}

/// The raw deflate body of `gzip -level -n` of `plain`.
fn gzip_body(level: u8, plain: &[u8]) -> Option<Vec<u8>> {
    // No name, no extra: a 10-byte header and an 8-byte trailer.
    let out = gnu_gzip(level, plain)?;
    Some(out[10..out.len() - 8].to_vec())
}

fn gnu(level: u8) -> ZlibParams {
    ZlibParams {
        encoder: GNU_GZIP_ENCODER,
        level,
    }
}

pub(super) fn rebuilt(
    params: &ZlibParams,
    cuts: &[DeflateCut],
    plain: &[u8],
    compressed_len: u64,
    parallel: bool,
) -> Result<Vec<u8>, CutError> {
    let mut out = Vec::new();
    rebuild(
        params,
        cuts,
        plain.len() as u64,
        compressed_len,
        &mut &plain[..],
        &mut out,
        parallel,
        None,
    )?;
    Ok(out)
}

#[test]
fn cuts_in_real_gzip_output_rebuild_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let plain = corpus_tar(dir.path()).unwrap_or_else(|| text(10 << 20));
    assert!(
        plain.len() > 4 << 20,
        "the corpus tar is {} bytes",
        plain.len()
    );
    for level in [6u8, 9] {
        let Some(body) = gzip_body(level, &plain) else {
            eprintln!("skipped: no gzip");
            return;
        };
        let params = gnu(level);
        let cuts = find(&params, &plain, &body, 1 << 20, true, None).expect("cuts found");
        assert!(
            cuts.len() >= 3,
            "-{level}: {} cuts in {} plain bytes",
            cuts.len(),
            plain.len()
        );
        // Every cut the analysis chose worked: the check dropped none.
        assert_eq!(
            find(&params, &plain, &body, 1 << 20, false, None),
            Some(cuts.clone()),
            "-{level}"
        );
        // The ends read ahead over the stream and what follows it (a gzip
        // trailer, another member) give the same cuts.
        let mut longer = body.clone();
        longer.extend_from_slice(&[0xa5; 4096]);
        let ahead = blocks::read_ahead(&longer).expect("read ahead");
        assert!(ahead.end_bit <= 8 * body.len() as u64);
        assert_eq!(
            find(&params, &plain, &body, 1 << 20, false, Some(ahead)),
            Some(cuts.clone()),
            "-{level}"
        );
        for c in &cuts {
            assert!(u64::from(c.partial) < 1 << (c.bit % 8));
        }
        // Each piece alone, given only its text, is its bytes of the stream.
        for i in 0..=cuts.len() {
            let (s, e) = text_range(&cuts, i, plain.len() as u64);
            let (os, oe) = out_range(&cuts, i, body.len() as u64);
            let made = piece(
                &params,
                (&cuts, body.len() as u64),
                i,
                (&plain[s as usize..e as usize], s),
                None,
            )
            .unwrap();
            assert!(
                made[..] == body[os as usize..oe as usize],
                "-{level}: piece {i} differs"
            );
        }
        for parallel in [false, true] {
            let out = rebuilt(&params, &cuts, &plain, body.len() as u64, parallel).unwrap();
            assert!(out == body, "-{level}, parallel {parallel}: differs");
        }
    }
}

/// Every clean block boundary of real gzip output is a cut whose pieces
/// rebuild byte for byte (a piece a block or two long): what the analysis
/// records every 4 MiB is never a guess.
#[test]
fn every_clean_boundary_is_a_working_cut() {
    let dir = tempfile::tempdir().unwrap();
    let plain = corpus_tar(dir.path()).unwrap_or_else(|| text(10 << 20));
    for level in [6u8, 9] {
        let Some(body) = gzip_body(level, &plain) else {
            eprintln!("skipped: no gzip");
            return;
        };
        let (mut all, mut clean) = (0usize, Vec::new());
        assert!(deflate::boundaries(
            Flavour::Gnu,
            level,
            &plain,
            &body,
            |b| {
                all += 1;
                if b.clean {
                    clean.push(DeflateCut {
                        plain: b.plain,
                        bit: b.bit,
                        window: b.strstart,
                        partial: b.partial,
                    });
                }
            }
        ));
        eprintln!("-{level}: {} of {all} block boundaries clean", clean.len());
        assert!(clean.len() * 2 > all, "-{level}: {} of {all}", clean.len());
        let kept = checked(&gnu(level), &plain, &body, clean.clone()).expect("the cuts work");
        assert_eq!(
            kept.len(),
            clean.len(),
            "-{level}: some clean boundaries failed"
        );
    }
}

/// The decoder reads the encoder's blocks: every block end it sees is a
/// boundary gzip's encoder reported, at the same plain and bit offsets with
/// the same partial bits; and every one that ended on a match (away from
/// the stream's end and from the bytes before a window slide) is a clean
/// boundary, at the window position [`window_at`] gives: what [`find`]
/// takes from the decoder is what the encoder's pass would have given.
#[test]
fn the_decoder_sees_the_encoders_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let plain = corpus_tar(dir.path()).unwrap_or_else(|| text(10 << 20));
    let plain_len = plain.len() as u64;
    for level in [6u8, 9] {
        let Some(body) = gzip_body(level, &plain) else {
            eprintln!("skipped: no gzip");
            return;
        };
        let mut encoder = Vec::new();
        assert!(deflate::boundaries(
            Flavour::Gnu,
            level,
            &plain,
            &body,
            |b| encoder.push(*b)
        ));
        let mut decoder = Vec::new();
        let decoded = blocks::block_ends(&body, |e| decoder.push(*e));
        assert_eq!(decoded, Some(plain_len), "-{level}");
        assert_eq!(decoder.len(), encoder.len(), "-{level}: block count");
        let (mut after_match, mut taken) = (0, 0);
        for (e, b) in decoder.iter().zip(&encoder) {
            assert_eq!(
                (e.plain, e.bit, e.partial),
                (b.plain, b.bit, b.partial),
                "-{level}"
            );
            if !e.after_match || e.plain + (1 << 16) >= plain_len {
                continue;
            }
            after_match += 1;
            if let Some(window) = window_at(GNU_GZIP_ENCODER, e.plain) {
                assert_eq!(window, b.strstart, "-{level} at {}", e.plain);
                assert!(b.clean, "-{level}: a block ended on a match at {}", e.plain);
                taken += 1;
            }
        }
        eprintln!(
            "-{level}: {} blocks, {after_match} ended on a match, {taken} usable as cuts",
            decoder.len()
        );
        assert!(
            taken * 5 > decoder.len(),
            "-{level}: {taken} of {}",
            decoder.len()
        );
    }
}

/// The same holds for zlib's flavour of the encoder (encoder 1, not cut by
/// any recipe yet): its block ends that the decoder sees after a match are
/// clean boundaries at the window position [`window_at`] gives, and the
/// pieces between them rebuild byte for byte (`checked` with zlib's pieces).
#[test]
fn zlibs_boundaries_are_read_off_its_blocks_too() {
    let dir = tempfile::tempdir().unwrap();
    let plain = corpus_tar(dir.path()).unwrap_or_else(|| text(10 << 20));
    let plain_len = plain.len() as u64;
    for level in [4u8, 6, 9] {
        let mut body = Vec::new();
        deflate::deflate_to(Flavour::Zlib, level, &mut &plain[..], |b| {
            body.extend_from_slice(b);
            Ok::<(), ()>(())
        })
        .unwrap();
        let mut encoder = Vec::new();
        assert!(deflate::boundaries(
            Flavour::Zlib,
            level,
            &plain,
            &body,
            |b| encoder.push(*b)
        ));
        let mut decoder = Vec::new();
        assert_eq!(
            blocks::block_ends(&body, |e| decoder.push(*e)),
            Some(plain_len)
        );
        assert_eq!(decoder.len(), encoder.len(), "level {level}: block count");
        let mut cuts = Vec::new();
        for (e, b) in decoder.iter().zip(&encoder) {
            assert_eq!((e.plain, e.bit, e.partial), (b.plain, b.bit, b.partial));
            if !e.after_match || e.plain + (1 << 16) >= plain_len {
                continue;
            }
            if let Some(window) = window_at(GNU_GZIP_ENCODER, e.plain) {
                assert_eq!(window, b.strstart, "level {level} at {}", e.plain);
                assert!(
                    b.clean,
                    "level {level}: a block ended on a match at {}",
                    e.plain
                );
                cuts.push(DeflateCut {
                    plain: e.plain,
                    bit: e.bit,
                    window,
                    partial: e.partial,
                });
            }
        }
        eprintln!(
            "level {level}: {} blocks, {} usable as cuts",
            decoder.len(),
            cuts.len()
        );
        assert!(cuts.len() * 5 > decoder.len(), "level {level}");
        // Every piece rebuilds (a cut every block: the pieces are short).
        let (s, o) = (plain.as_slice(), body.as_slice());
        for i in 0..=cuts.len() {
            let (ts, te) = text_range(&cuts, i, plain_len);
            let (os, oe) = out_range(&cuts, i, body.len() as u64);
            let mut out = Vec::new();
            let from = i.checked_sub(1).map(|j| boundary(&cuts[j]));
            let to = cuts.get(i).map(boundary);
            deflate::piece(
                Flavour::Zlib,
                level,
                &s[ts as usize..te as usize],
                ts,
                from.as_ref(),
                to.as_ref(),
                &mut out,
            )
            .unwrap();
            assert!(
                out == o[os as usize..oe as usize],
                "level {level}: piece {i}"
            );
        }
    }
}

/// A plain text of `len` bytes with matches at every distance.
pub(crate) fn text(len: usize) -> Vec<u8> {
    let sample = crate::zlib::sample();
    let mut out = Vec::with_capacity(len);
    let mut i = 0u32;
    while out.len() < len {
        let at = (i.wrapping_mul(2_654_435_761) as usize) % (sample.len() - 5000);
        out.extend_from_slice(&sample[at..at + 3000 + (i as usize % 2000)]);
        out.extend_from_slice(format!("{i:08x}\n").as_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

#[test]
fn a_wrong_cut_is_refused() {
    let plain = text(5 << 20);
    let Some(body) = gzip_body(6, &plain) else {
        eprintln!("skipped: no gzip");
        return;
    };
    let params = gnu(6);
    let cuts = find(&params, &plain, &body, 1 << 20, true, None).expect("cuts found");
    assert!(cuts.len() >= 2);
    let good = rebuilt(&params, &cuts, &plain, body.len() as u64, true).unwrap();
    assert!(good == body);
    let len = body.len() as u64;
    type Change = fn(&mut DeflateCut);
    let wrong: [(&str, Change); 5] = [
        ("plain offset", |c| c.plain += 1),
        ("bit offset", |c| c.bit += 8),
        ("window position", |c| c.window -= 1),
        ("partial byte", |c| {
            c.partial ^= 1;
            if c.bit % 8 == 0 {
                c.bit += 1;
            }
        }),
        ("window past the plain offset", |c| {
            c.window = u32::try_from(c.plain + 1).unwrap_or(u32::MAX)
        }),
    ];
    for (what, change) in wrong {
        let mut bad = cuts.clone();
        change(&mut bad[1]);
        for parallel in [false, true] {
            match rebuilt(&params, &bad, &plain, len, parallel) {
                Err(e) => eprintln!("{what}: refused: {e}"),
                Ok(out) => panic!(
                    "{what}: a wrong cut rebuilt {} bytes (the same: {})",
                    out.len(),
                    out == body
                ),
            }
        }
    }
    // Out of order, or not GNU gzip's lazy levels.
    let mut swapped = cuts.clone();
    swapped.swap(0, 1);
    assert!(matches!(
        rebuilt(&params, &swapped, &plain, len, true),
        Err(CutError::Malformed { cut: 1, .. })
    ));
    for params in [
        gnu(3),
        ZlibParams {
            encoder: 1,
            level: 6,
        },
    ] {
        assert!(matches!(
            rebuilt(&params, &cuts, &plain, len, true),
            Err(CutError::Encoder(_))
        ));
    }
    // Plain bytes that end early.
    let short = &plain[..plain.len() - 10];
    let mut out = Vec::new();
    let r = rebuild(
        &params,
        &cuts,
        plain.len() as u64,
        len,
        &mut &short[..],
        &mut out,
        true,
        None,
    );
    assert!(matches!(r, Err(CutError::Read(_))), "{r:?}");
}

#[test]
fn no_cuts_where_none_fit() {
    let plain = text(3 << 20);
    let Some(body) = gzip_body(6, &plain) else {
        eprintln!("skipped: no gzip");
        return;
    };
    // Under two steps, a fast level, or other bytes than the encoder's.
    assert_eq!(find(&gnu(6), &plain, &body, 2 << 20, true, None), None);
    assert_eq!(find(&gnu(3), &plain, &body, 1 << 20, true, None), None);
    let mut other = body.clone();
    let n = other.len();
    other[n - 100] ^= 1;
    assert_eq!(find(&gnu(6), &plain, &other, 1 << 20, true, None), None);
    assert!(find(&gnu(6), &plain, &body, 1 << 20, true, None).is_some());
}

/// A cut stream with no cut, or a piece over [`MAX_PIECE`] of plain or
/// compressed bytes, is refused before anything is read: a hostile recipe
/// cannot make the rebuild hold a whole large stream.
#[test]
fn a_piece_too_long_is_refused_before_anything_is_read() {
    let cut = |plain: u64, bit: u64| DeflateCut {
        plain,
        bit,
        window: 0,
        partial: 0,
    };
    let big = 3 * MAX_PIECE;
    let cases: [(&[DeflateCut], u64, u64, usize); 4] = [
        (&[], 1 << 20, 1 << 19, 0),
        (&[cut(MIN_PIECE, 8 << 10)], big, big / 2, 1),
        (&[cut(MAX_PIECE + 1, 8 << 10)], big, big / 2, 0),
        // Short in plain bytes, long in compressed ones.
        (
            &[cut(MIN_PIECE, 8 * (2 * MAX_PIECE))],
            2 * MIN_PIECE,
            3 * MAX_PIECE,
            0,
        ),
    ];
    for (i, (cuts, plain_len, compressed_len, piece)) in cases.into_iter().enumerate() {
        // A reader that fails if read: nothing may be read before the check.
        struct Unread;
        impl std::io::Read for Unread {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                panic!("the plain bytes were read before the cuts were checked")
            }
        }
        let mut out = Vec::new();
        let r = rebuild(
            &gnu(6),
            cuts,
            plain_len,
            compressed_len,
            &mut Unread,
            &mut out,
            true,
            None,
        );
        match r {
            Err(e @ CutError::TooLong { piece: p, .. }) if p == piece => {
                assert!(e.to_string().contains("a piece may span at most"), "{e}")
            }
            other => panic!("case {i}: {other:?}"),
        }
    }
}
