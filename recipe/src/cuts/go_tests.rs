//! Cuts in real Go output (encoder 3, levels 4 to 9): the helper
//! `recipe/tests/goflate/main.go` built with the `go` on the PATH (no
//! network) deflates a tar of the corpus's crates and two debs (or
//! generated text without the corpus) and mixed bytes with incompressible
//! stretches (stored blocks); every clean block boundary of its output is
//! a working cut, the decoder reads the encoder's boundaries, the pieces
//! rebuild alone, one after another and at once, and wrong cuts are
//! refused. Without `go`, each test prints `skipped: ...` and returns.

use super::tests::{corpus_tar, rebuilt, text};
use super::*;
use crate::goflate::cut::boundaries;
use crate::goflate::tests::{go_deflate, helper};

fn go(level: u8) -> ZlibParams {
    ZlibParams {
        encoder: GO_FLATE_ENCODER,
        level,
    }
}

/// Go's raw deflate of `plain` at `level`, or `None` without `go`.
fn go_body(level: u8, plain: &[u8]) -> Option<Vec<u8>> {
    match helper() {
        Ok(exe) => Some(go_deflate(exe, i32::from(level), 0, plain)),
        Err(why) => {
            eprintln!("skipped: {why}");
            None
        }
    }
}

/// Text, runs, random stretches (stored blocks at Go's levels) and binary
/// with long matches, `len` bytes.
fn mixed(len: usize) -> Vec<u8> {
    let sample = crate::zlib::sample();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut out = Vec::with_capacity(len + 70_000);
    while out.len() < len {
        let r = next();
        match r % 64 {
            0 => out.extend((0..(r >> 8) % 70_000).map(|_| next() as u8)),
            1..=4 => out.extend(std::iter::repeat_n(
                (r >> 8) as u8,
                (r >> 16) as usize % 1000,
            )),
            5..=8 => {
                let back = 1 + (r >> 8) as usize % out.len().clamp(1, 40_000);
                let n = 4 + (r >> 32) as usize % 600;
                for _ in 0..n {
                    let b = out.get(out.len().wrapping_sub(back)).copied().unwrap_or(0);
                    out.push(b);
                }
            }
            _ => {
                let at = (r >> 8) as usize % (sample.len() - 2000);
                out.extend_from_slice(&sample[at..at + 10 + (r >> 32) as usize % 1500]);
            }
        }
    }
    out.truncate(len);
    out
}

/// The inputs: the corpus tar (or 10 MiB of text) and 6 MiB of mixed bytes.
fn inputs(dir: &std::path::Path) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("tar", corpus_tar(dir).unwrap_or_else(|| text(10 << 20))),
        ("mixed", mixed(6 << 20)),
    ]
}

fn cut_of(b: &Boundary) -> DeflateCut {
    DeflateCut {
        plain: b.plain,
        bit: b.bit,
        window: b.strstart,
        partial: b.partial,
    }
}

/// Every block boundary of real Go output at levels 4 to 9 that ended on a
/// match is a cut whose pieces (a block or two long) each rebuild their
/// bytes of the stream alone; the encoder's own stream is Go's.
#[test]
fn every_clean_go_boundary_is_a_working_cut() {
    let dir = tempfile::tempdir().unwrap();
    for (name, plain) in inputs(dir.path()) {
        for level in 4..=9u8 {
            let Some(body) = go_body(level, &plain) else {
                return;
            };
            let (ours, all) = boundaries(level, &plain);
            assert!(ours == body, "{name} level {level}: not Go's stream");
            let clean: Vec<DeflateCut> = all.iter().filter(|b| b.clean).map(cut_of).collect();
            eprintln!(
                "{name} level {level}: {} of {} block boundaries clean",
                clean.len(),
                all.len()
            );
            assert!(clean.len() >= 5, "{name} level {level}");
            let kept = checked(&go(level), &plain, &body, clean.clone()).expect("the cuts work");
            assert_eq!(kept.len(), clean.len(), "{name} level {level}");
        }
    }
}

/// The decoder reads Go's blocks: every block end it sees is a boundary
/// the encoder reported (same plain and bit offsets, same partial bits),
/// and every one that ended on a match (away from the stream's end and
/// from the bytes before a slide) is clean at the window position
/// [`window_at`] gives.
#[test]
fn the_decoder_sees_gos_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    for (name, plain) in inputs(dir.path()) {
        let plain_len = plain.len() as u64;
        for level in [4u8, 6, 9] {
            let Some(body) = go_body(level, &plain) else {
                return;
            };
            let (_, encoder) = boundaries(level, &plain);
            let mut decoder = Vec::new();
            let decoded = blocks::block_ends(&body, |e| decoder.push(*e));
            assert_eq!(decoded, Some(plain_len), "{name} level {level}");
            // Go ends its stream with an empty stored block, which the
            // decoder sees as one more block end (at the plain length).
            let decoder: Vec<_> = decoder.iter().filter(|e| e.plain < plain_len).collect();
            assert_eq!(decoder.len(), encoder.len(), "{name} level {level}");
            let (mut after_match, mut taken) = (0, 0);
            for (e, b) in decoder.iter().zip(&encoder) {
                assert_eq!(
                    (e.plain, e.bit, e.partial),
                    (b.plain, b.bit, b.partial),
                    "{name} level {level}"
                );
                if !e.after_match || e.plain + (1 << 16) >= plain_len {
                    continue;
                }
                after_match += 1;
                assert!(b.clean, "{name} level {level}: at {}", e.plain);
                if let Some(window) = window_at(GO_FLATE_ENCODER, e.plain) {
                    assert_eq!(window, b.strstart, "{name} level {level} at {}", e.plain);
                    taken += 1;
                }
            }
            eprintln!(
                "{name} level {level}: {} blocks, {after_match} ended on a match, {taken} usable",
                decoder.len()
            );
            assert!(taken >= 5, "{name} level {level}");
        }
    }
}

/// The analysis's cuts in Go's streams: the check drops none, the ends
/// read ahead give the same, each piece alone is its bytes, and the serial
/// and parallel rebuilds are the stream.
#[test]
fn go_cuts_rebuild_exactly() {
    let dir = tempfile::tempdir().unwrap();
    for (name, plain) in inputs(dir.path()) {
        for level in [4u8, 6, 9] {
            let Some(body) = go_body(level, &plain) else {
                return;
            };
            let params = go(level);
            let cuts = find(&params, &plain, &body, 1 << 20, true, None).expect("cuts found");
            assert!(cuts.len() >= 2, "{name} level {level}: {}", cuts.len());
            assert_eq!(
                find(&params, &plain, &body, 1 << 20, false, None),
                Some(cuts.clone()),
                "{name} level {level}"
            );
            let mut longer = body.clone();
            longer.extend_from_slice(&[0x5a; 4096]);
            let ahead = blocks::read_ahead(&longer).expect("read ahead");
            assert_eq!(
                find(&params, &plain, &body, 1 << 20, false, Some(ahead)),
                Some(cuts.clone()),
                "{name} level {level}"
            );
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
                    "{name} level {level}: piece {i} differs"
                );
            }
            for parallel in [false, true] {
                let out = rebuilt(&params, &cuts, &plain, body.len() as u64, parallel).unwrap();
                assert!(out == body, "{name} level {level}, parallel {parallel}");
            }
        }
    }
}

#[test]
fn a_wrong_go_cut_is_refused() {
    let plain = mixed(5 << 20);
    let Some(body) = go_body(6, &plain) else {
        return;
    };
    let params = go(6);
    let cuts = find(&params, &plain, &body, 1 << 20, true, None).expect("cuts found");
    assert!(cuts.len() >= 2);
    let len = body.len() as u64;
    assert!(rebuilt(&params, &cuts, &plain, len, true).unwrap() == body);
    type Change = fn(&mut DeflateCut);
    let wrong: [(&str, Change); 9] = [
        ("plain offset", |c| c.plain += 1),
        ("plain offset a block back", |c| c.plain -= 20_000),
        // Hostile window positions: refused, no panic.
        ("window position 0", |c| c.window = 0),
        ("window position 65,535", |c| c.window = 65_535),
        ("bit offset", |c| c.bit += 8),
        ("one bit", |c| c.bit += 1),
        ("window position", |c| c.window -= 1),
        ("window position slid", |c| c.window -= 32 << 10),
        ("partial byte", |c| {
            c.partial ^= 1;
            if c.bit % 8 == 0 {
                c.bit += 1;
            }
        }),
    ];
    for (what, change) in wrong {
        for at in [0, 1] {
            let mut bad = cuts.clone();
            change(&mut bad[at]);
            for parallel in [false, true] {
                match rebuilt(&params, &bad, &plain, len, parallel) {
                    // The piece that ends at the wrong cut, or the one
                    // that starts there, is named.
                    Err(CutError::Piece { piece, source }) => {
                        assert!(piece == at || piece == at + 1, "{what}: piece {piece}");
                        eprintln!("{what}, cut {at}: piece {piece}: {source}");
                    }
                    Err(e @ CutError::Malformed { .. }) => eprintln!("{what}: {e}"),
                    Err(e) => panic!("{what}: refused as {e}"),
                    Ok(out) => panic!(
                        "{what}: a wrong cut rebuilt {} bytes (the same: {})",
                        out.len(),
                        out == body
                    ),
                }
            }
        }
    }
    // The piece that starts at a wrong cut (resumed from it), alone: it
    // is refused, or (never seen) makes the stream's own bytes. (A wrong
    // partial byte only changes the piece's first byte: the piece before,
    // which ends there, is the one refused, as above.)
    for (what, change) in wrong.into_iter().filter(|w| w.0 != "partial byte") {
        let mut bad = cuts.clone();
        change(&mut bad[0]);
        if validate(&params, &bad, plain.len() as u64, len).is_err() {
            continue;
        }
        let (s, e) = text_range(&bad, 1, plain.len() as u64);
        let (os, oe) = out_range(&bad, 1, len);
        match piece(
            &params,
            (&bad, len),
            1,
            (&plain[s as usize..e as usize], s),
            None,
        ) {
            Err(e) => eprintln!("{what}, resumed there: {e}"),
            Ok(made) => assert!(made[..] == body[os as usize..oe as usize], "{what}"),
        }
    }
    let mut swapped = cuts.clone();
    swapped.swap(0, 1);
    assert!(matches!(
        rebuilt(&params, &swapped, &plain, len, true),
        Err(CutError::Malformed { cut: 1, .. })
    ));
    // Go's greedy levels (2, 3) and level 1 are not cut.
    for level in [1u8, 2, 3] {
        assert!(matches!(
            rebuilt(&go(level), &cuts, &plain, len, true),
            Err(CutError::Encoder(_))
        ));
        assert_eq!(find(&go(level), &plain, &body, 1 << 20, true, None), None);
    }
    // The same cuts are not GNU gzip's.
    assert!(rebuilt(
        &ZlibParams {
            encoder: GNU_GZIP_ENCODER,
            level: 6
        },
        &cuts,
        &plain,
        len,
        true
    )
    .is_err());
}
