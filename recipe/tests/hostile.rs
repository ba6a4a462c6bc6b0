//! Hostile input: garbage recipes, crafted recipes that would rebuild wrong or
//! oversized output, zip bombs, truncated and corrupt streams.

mod common;

use std::process::Command;

use common::{have, roundtrip, run, text};
use ferry_recipe::{
    analyze, expand, rebuild, LiteralReason, Options, Outcome, RebuildError, Recipe, RecipeError,
    Segment, StreamKind, MAX_RECIPE_BYTES,
};

/// gzip -5 of some text: header, one deflate body, trailer.
/// GNU gzip at level 5: its XFL byte (0) points the encoder search at levels
/// 6 and 9 only, so the stream is preflate-rs's (a `Segment::Deflate`).
fn gzip_of(plain: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f");
    std::fs::write(&p, plain).unwrap();
    run(Command::new("gzip").args(["-5", "-n", "-c"]).arg(&p))
}

#[test]
fn garbage_is_not_a_recipe() {
    assert!(matches!(Recipe::from_bytes(&[]), Err(RecipeError::Empty)));
    assert!(matches!(
        Recipe::from_bytes(&[8, 0]),
        Err(RecipeError::UnknownVersion { found: 8 })
    ));
    assert!(matches!(
        Recipe::from_bytes(&[1, 5, 0]),
        Err(RecipeError::Malformed(_))
    ));
    assert!(matches!(
        Recipe::from_bytes(&[1, 1, 9, 3]),
        Err(RecipeError::Malformed(_))
    ));
    let mut trailing = Recipe::identity(10).to_bytes();
    trailing.push(0);
    assert!(matches!(
        Recipe::from_bytes(&trailing),
        Err(RecipeError::TrailingBytes { count: 1 })
    ));
    let overflow = Recipe {
        segments: vec![
            Segment::Literal { len: u64::MAX },
            Segment::Literal { len: 1 },
        ],
    };
    assert!(matches!(
        Recipe::from_bytes(&overflow.to_bytes()),
        Err(RecipeError::LengthOverflow)
    ));
    let mut huge = vec![0u8; MAX_RECIPE_BYTES + 1];
    huge[0] = 1;
    assert!(matches!(
        Recipe::from_bytes(&huge),
        Err(RecipeError::TooLarge { .. })
    ));
}

#[test]
fn random_bytes_never_panic_and_valid_ones_reencode() {
    let mut x = 0x1234_5678_9abc_def1u64;
    for len in 0..4000usize {
        let mut b = Vec::with_capacity(len % 200);
        for _ in 0..len % 200 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b.push(x as u8);
        }
        if let Some(first) = b.first_mut() {
            *first = 1;
        }
        if let Ok(r) = Recipe::from_bytes(&b) {
            assert_eq!(Recipe::from_bytes(&r.to_bytes()).unwrap(), r);
        }
    }
}

/// A gzip object, its analysis, and the index of its deflate segment.
fn analysed_gzip() -> (Vec<u8>, ferry_recipe::Analysis, usize) {
    let data = gzip_of(&text(100_000, 1));
    let a = analyze(&data, &Options::default());
    let i = a
        .recipe
        .segments
        .iter()
        .position(|s| matches!(s, Segment::Deflate { .. }))
        .expect("deflate segment");
    (data, a, i)
}

#[test]
fn rebuild_refuses_wrong_lengths_before_writing() {
    let (data, a, _) = analysed_gzip();
    let mut out = Vec::new();
    let r = rebuild(&a.recipe, &a.expanded, data.len() as u64 + 1, &mut out);
    assert!(
        matches!(r, Err(RebuildError::OutputLenMismatch { .. })),
        "{r:?}"
    );
    let r = rebuild(&a.recipe, &a.expanded[1..], data.len() as u64, &mut out);
    assert!(
        matches!(r, Err(RebuildError::ExpandedLenMismatch { .. })),
        "{r:?}"
    );
    // A literal that claims more than the object: oversized output.
    let mut big = a.recipe.clone();
    big.segments.push(Segment::Literal { len: 1 << 20 });
    let mut expanded = a.expanded.clone();
    expanded.resize(expanded.len() + (1 << 20), 7);
    let r = rebuild(&big, &expanded, data.len() as u64, &mut out);
    assert!(
        matches!(r, Err(RebuildError::OutputLenMismatch { .. })),
        "{r:?}"
    );
    assert!(
        out.is_empty(),
        "bytes written before the lengths were checked"
    );
}

#[test]
fn rebuild_refuses_a_segment_that_produces_other_than_it_declares() {
    let (data, a, i) = analysed_gzip();
    let mut crafted = a.recipe.clone();
    // The deflate segment claims one byte more, the trailer one byte less: the
    // totals still match the object.
    if let Segment::Deflate {
        compressed_len,
        chunks,
        ..
    } = &mut crafted.segments[i]
    {
        *compressed_len += 1;
        chunks.last_mut().unwrap().compressed_len += 1;
    }
    if let Segment::Literal { len } = &mut crafted.segments[i + 1] {
        *len -= 1;
    }
    let mut out = Vec::new();
    let r = rebuild(
        &crafted,
        &a.expanded[..a.expanded.len() - 1],
        data.len() as u64,
        &mut out,
    );
    assert!(
        matches!(r, Err(RebuildError::ChunkLenMismatch { segment, .. }) if segment == i),
        "{r:?}"
    );
    assert!(out.len() < data.len());
}

#[test]
fn rebuild_refuses_broken_corrections() {
    let (data, a, i) = analysed_gzip();
    let mut crafted = a.recipe.clone();
    if let Segment::Deflate { chunks, .. } = &mut crafted.segments[i] {
        chunks[0].corrections.clear();
    }
    let mut out = Vec::new();
    let r = rebuild(&crafted, &a.expanded, data.len() as u64, &mut out);
    assert!(
        matches!(r, Err(RebuildError::Deflate { segment, .. }) if segment == i),
        "{r:?}"
    );
    // Flipped correction bytes: a typed error, or exactly the declared length
    // (some bits do not matter; wrong bytes are for the caller's digest check).
    for at in [0usize, 3, 10] {
        let mut crafted = a.recipe.clone();
        if let Segment::Deflate { chunks, .. } = &mut crafted.segments[i] {
            let n = chunks[0].corrections.len();
            chunks[0].corrections[at.min(n - 1)] ^= 0x5a;
        }
        let mut out = Vec::new();
        match rebuild(&crafted, &a.expanded, data.len() as u64, &mut out) {
            Ok(()) => assert_eq!(out.len(), data.len()),
            Err(e) => assert!(!matches!(e, RebuildError::Write(_)), "{e:?}"),
        }
        assert!(out.len() <= data.len());
    }
}

#[test]
fn rebuild_refuses_chunks_that_do_not_add_up() {
    let (data, a, i) = analysed_gzip();
    let mut crafted = a.recipe.clone();
    if let Segment::Deflate { chunks, .. } = &mut crafted.segments[i] {
        chunks[0].plain_len += 1;
    }
    let mut out = Vec::new();
    let r = rebuild(&crafted, &a.expanded, data.len() as u64, &mut out);
    assert!(
        matches!(r, Err(RebuildError::ChunksInconsistent { segment }) if segment == i),
        "{r:?}"
    );
}

#[test]
fn a_stream_cut_into_many_chunks_rebuilds() {
    // Machine code chunks well; preflate-rs estimates its parameters on the
    // first chunk only, and on some inputs a later chunk then fails (the
    // walk then tries the stream as one chunk, which is right but not what
    // this test is about): the first of a few programs that chunks is used.
    let opts = Options {
        preflate_chunk: 256 << 10,
        ..Options::default()
    };
    let programs = [
        std::env::current_exe().unwrap(),
        "/bin/bash".into(),
        "/usr/bin/perl".into(),
    ];
    let mut tried = Vec::new();
    for program in programs {
        let Ok(exe) = std::fs::read(&program) else {
            continue;
        };
        let data = gzip_of(&exe[..exe.len().min(3 << 20)]);
        let a = analyze(&data, &opts);
        let deflate = a
            .recipe
            .segments
            .iter()
            .find(|s| matches!(s, Segment::Deflate { .. }));
        let chunks = match deflate {
            Some(Segment::Deflate { chunks, .. }) => chunks.len(),
            _ => 0,
        };
        // Whatever the analysis made of it, it rebuilds.
        let mut out = Vec::new();
        rebuild(&a.recipe, &a.expanded, data.len() as u64, &mut out).unwrap();
        assert!(out == data, "{}", program.display());
        if chunks > 5 {
            return;
        }
        tried.push(format!("{}: {chunks} chunks", program.display()));
    }
    panic!("no program was cut into more than 5 chunks: {tried:?}");
}

#[test]
fn zip_bomb_member_stays_literal() {
    if !have("python3", "zip_bomb_member_stays_literal") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bomb = dir.path().join("bomb.zip");
    // 1 GiB of zeros, deflated at level 9 (about 1 MB), written in pieces.
    let script = r#"
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
    z.writestr("small.txt", "hello\n" * 100)
    with z.open("zeros.bin", "w", force_zip64=True) as f:
        block = bytes(1 << 20)
        for _ in range(1024):
            f.write(block)
"#;
    run(Command::new("python3").args(["-c", script]).arg(&bomb));
    let data = std::fs::read(&bomb).unwrap();
    assert!(data.len() < 4 << 20);
    let a = roundtrip("zip bomb", &data);
    let zeros = &a.report.streams[1];
    assert_eq!(zeros.kind, StreamKind::ZipEntry);
    assert!(
        matches!(
            zeros.outcome,
            Outcome::Literal(LiteralReason::Ratio | LiteralReason::TooLarge)
        ),
        "{zeros:?}"
    );
    assert_eq!(a.report.streams[0].outcome, Outcome::Reproduced);
    assert!(a.expanded.len() < 4 << 20);
}

#[test]
fn gzip_bomb_hits_the_budget_or_the_ratio() {
    let data = gzip_of(&vec![0u8; 100 << 20]);
    let a = analyze(&data, &Options::default());
    assert_eq!(
        a.report.streams[0].outcome,
        Outcome::Literal(LiteralReason::Ratio)
    );
    let small = Options {
        max_expanded: 10 << 20,
        ..Options::default()
    };
    let a = analyze(&data, &small);
    assert_eq!(
        a.report.streams[0].outcome,
        Outcome::Literal(LiteralReason::TooLarge)
    );
    assert!(a.recipe.is_identity());
    assert!(expand(&data, &small).unwrap() == data);
    let tiny = Options {
        max_expanded: 1000,
        ..Options::default()
    };
    assert!(expand(&data, &tiny).is_err());
}

#[test]
fn truncated_and_corrupt_streams_stay_literal() {
    let data = gzip_of(&text(100_000, 2));
    let truncated = &data[..data.len() / 2];
    let a = roundtrip("truncated gzip", truncated);
    assert_eq!(a.report.streams.len(), 1);
    assert_eq!(
        a.report.streams[0].outcome,
        Outcome::Literal(LiteralReason::Corrupt)
    );
    assert!(a.recipe.is_identity());
    assert!(a.expanded == truncated);
    // Corrupt bytes in the middle: whatever the decoder makes of them, the
    // object still round-trips.
    for at in [20usize, 500, data.len() / 2] {
        let mut bad = data.clone();
        bad[at] ^= 0xff;
        roundtrip("corrupt gzip", &bad);
    }
    // Not a container at all.
    let noise: Vec<u8> = (0..5000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let a = roundtrip("noise", &noise);
    assert!(a.recipe.is_identity() && a.report.streams.is_empty());
}

#[test]
fn stored_jar_inside_a_zip_is_walked() {
    if !have("python3", "stored_jar_inside_a_zip_is_walked") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let outer = dir.path().join("outer.jar");
    let script = r#"
import io, sys, zipfile
inner = io.BytesIO()
with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as z:
    z.writestr("A.class", ("class A { int x; }\n" * 500) + sys.argv[2])
with zipfile.ZipFile(sys.argv[1], "w") as z:
    z.writestr("BOOT-INF/lib/inner.jar", inner.getvalue(), zipfile.ZIP_STORED)
    z.writestr("B.class", "class B {}\n" * 300, zipfile.ZIP_DEFLATED)
"#;
    let t = String::from_utf8(text(3000, 3)).unwrap();
    run(Command::new("python3")
        .args(["-c", script])
        .arg(&outer)
        .arg(t));
    let data = std::fs::read(&outer).unwrap();
    let a = roundtrip("nested jar", &data);
    assert_eq!(a.report.streams.len(), 2, "{:?}", a.report.streams);
    assert!(a.report.reproduced().count() == 2);
}
