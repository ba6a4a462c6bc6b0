//! The zlib fast path: deflate streams made by zlib (Python's zipfile and gzip
//! modules) are rebuilt by deflating again with the pinned zlib, with no
//! preflate corrections; anything else falls back to preflate-rs; a recipe
//! naming another encoder, or a wrong level, is refused with a typed error.

mod common;

use std::process::Command;

use common::{have, roundtrip, run, text};
use ferry_recipe::zlib::{
    ZlibError, ZlibParams, GNU_GZIP_ENCODER, MINIZ_OXIDE_ENCODER, ZLIB_ENCODER,
};
use ferry_recipe::{
    analyze, Options, RebuildError, Recipe, RecipeError, Segment, StreamKind, RECIPE_VERSION_1,
    RECIPE_VERSION_2, RECIPE_VERSION_4, RECIPE_VERSION_5,
};

/// Runs a Python snippet with `argv[1]` a scratch directory; returns its stdout.
fn python(code: &str, test: &str) -> Option<Vec<u8>> {
    if !have("python3", test) {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), text(200_000, 3)).unwrap();
    std::fs::write(dir.path().join("b.txt"), text(50_000, 4)).unwrap();
    Some(run(Command::new("python3")
        .args(["-c", code])
        .arg(dir.path())))
}

/// A zip as Python's zipfile makes wheels: deflate at zlib's default level.
fn zipfile_zip(test: &str) -> Option<Vec<u8>> {
    python(
        "import io, sys, zipfile, os\n\
         b = io.BytesIO()\n\
         with zipfile.ZipFile(b, 'w', zipfile.ZIP_DEFLATED) as z:\n\
         \tfor n in ('a.txt', 'b.txt'): z.write(os.path.join(sys.argv[1], n), n)\n\
         sys.stdout.buffer.write(b.getvalue())",
        test,
    )
}

fn zlib_segments(recipe: &Recipe) -> Vec<ZlibParams> {
    recipe
        .segments
        .iter()
        .filter_map(|s| match s {
            Segment::Zlib { params, .. } => Some(*params),
            _ => None,
        })
        .collect()
}

#[test]
fn python_zip_is_rebuilt_by_zlib_without_corrections() {
    let Some(zip) = zipfile_zip("python_zip_is_rebuilt_by_zlib_without_corrections") else {
        return;
    };
    let a = roundtrip("python zip", &zip);
    let params = zlib_segments(&a.recipe);
    assert_eq!(params.len(), 2, "{:?}", a.recipe);
    assert!(params
        .iter()
        .all(|p| p.level == 6 && p.encoder == ZLIB_ENCODER));
    assert!(
        !a.recipe
            .segments
            .iter()
            .any(|s| matches!(s, Segment::Deflate { .. })),
        "no preflate segment left"
    );
    assert_eq!(a.recipe.to_bytes()[0], RECIPE_VERSION_2);
    let zips = a
        .report
        .streams
        .iter()
        .filter(|s| s.kind == StreamKind::ZipEntry);
    assert!(zips.clone().count() == 2 && zips.clone().all(|s| s.recipe_len == 2));
}

#[test]
fn python_gzip_level_9_is_found() {
    let Some(gz) = python(
        "import gzip, sys, os\n\
         d = open(os.path.join(sys.argv[1], 'a.txt'), 'rb').read()\n\
         sys.stdout.buffer.write(gzip.compress(d, 9, mtime=0))",
        "python_gzip_level_9_is_found",
    ) else {
        return;
    };
    let a = roundtrip("python gzip -9", &gz);
    let params = zlib_segments(&a.recipe);
    assert_eq!(params.len(), 1);
    assert_eq!(params[0].level, 9);
}

#[test]
fn gnu_gzip_at_a_level_no_hint_names_falls_back_to_preflate() {
    if !have(
        "gzip",
        "gnu_gzip_at_a_level_no_hint_names_falls_back_to_preflate",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f");
    std::fs::write(&p, text(300_000, 5)).unwrap();
    // XFL 0 points at levels 6 and 9 only: -4 is left to preflate-rs.
    let gz = run(Command::new("gzip").args(["-4", "-n", "-c"]).arg(&p));
    let a = roundtrip("gnu gzip -4", &gz);
    assert!(zlib_segments(&a.recipe).is_empty(), "{:?}", a.recipe);
    assert!(a
        .recipe
        .segments
        .iter()
        .any(|s| matches!(s, Segment::Deflate { .. })));
    assert_eq!(a.recipe.to_bytes()[0], RECIPE_VERSION_1);
}

/// Rebuilds `recipe` from `expanded`, expecting a zlib error.
fn zlib_refusal(recipe: &Recipe, expanded: &[u8], len: u64) -> ZlibError {
    let mut out = Vec::new();
    match ferry_recipe::rebuild(recipe, expanded, len, &mut out) {
        Err(RebuildError::Zlib { source, .. }) => source,
        other => panic!("expected a zlib refusal, got {other:?}"),
    }
}

#[test]
fn another_encoder_or_a_wrong_level_is_refused() {
    let Some(zip) = zipfile_zip("another_encoder_or_a_wrong_level_is_refused") else {
        return;
    };
    let a = analyze(&zip, &Options::default());
    let len = zip.len() as u64;
    let with = |f: &dyn Fn(&mut ZlibParams)| {
        let mut r = a.recipe.clone();
        for s in &mut r.segments {
            if let Segment::Zlib { params, .. } = s {
                f(params);
            }
        }
        // Through the encoding: a reader sees what a bundle carries.
        Recipe::from_bytes(&r.to_bytes()).unwrap()
    };
    let other = with(&|p| p.encoder = 9);
    assert!(matches!(
        zlib_refusal(&other, &a.expanded, len),
        ZlibError::UnknownEncoder { found: 9 }
    ));
    // GNU gzip's encoder, known but not what made these streams.
    let gnu = with(&|p| p.encoder = GNU_GZIP_ENCODER);
    assert!(matches!(
        zlib_refusal(&gnu, &a.expanded, len),
        ZlibError::TooShort { .. } | ZlibError::TooLong { .. }
    ));
    let bad = with(&|p| p.level = 0);
    assert!(matches!(
        zlib_refusal(&bad, &a.expanded, len),
        ZlibError::BadLevel(0)
    ));
    // Level 1 makes a longer stream than level 6: refused as it passes its length.
    let wrong = with(&|p| p.level = 1);
    assert!(matches!(
        zlib_refusal(&wrong, &a.expanded, len),
        ZlibError::TooLong { .. }
    ));
    // Level 9 makes a shorter one.
    let short = with(&|p| p.level = 9);
    assert!(matches!(
        zlib_refusal(&short, &a.expanded, len),
        ZlibError::TooShort { .. } | ZlibError::TooLong { .. }
    ));
}

#[test]
fn version_1_recipes_hold_no_zlib_segment() {
    let r = Recipe {
        segments: vec![Segment::Zlib {
            plain_len: 1,
            compressed_len: 3,
            params: ZlibParams {
                encoder: ZLIB_ENCODER,
                level: 6,
            },
        }],
    };
    let mut bytes = r.to_bytes();
    assert_eq!(bytes[0], RECIPE_VERSION_2);
    assert_eq!(Recipe::from_bytes(&bytes).unwrap(), r);
    bytes[0] = RECIPE_VERSION_1;
    assert!(matches!(
        Recipe::from_bytes(&bytes),
        Err(RecipeError::SegmentNotInVersion)
    ));
    // Without a zlib segment the recipe is still written as version 1.
    assert_eq!(Recipe::identity(5).to_bytes()[0], RECIPE_VERSION_1);
}

/// A zip's members are deflated at once, on every core, and written in
/// order: the same bytes as one after another, from memory or read as they
/// go; and a member whose recipe is wrong is the error, named by its
/// segment, after the members before it were written (and nothing of it).
#[test]
fn a_zips_members_deflated_at_once_are_written_in_order() {
    let Some(zip) = python(
        "import io, sys, zipfile, os\n\
         b = io.BytesIO()\n\
         a = open(os.path.join(sys.argv[1], 'a.txt'), 'rb').read()\n\
         with zipfile.ZipFile(b, 'w', zipfile.ZIP_DEFLATED) as z:\n\
         \tfor i in range(9): z.writestr(f'm{i}.txt', a[i * 7000:] + bytes([i]) * (i * 3000))\n\
         sys.stdout.buffer.write(b.getvalue())",
        "a_zips_members_deflated_at_once_are_written_in_order",
    ) else {
        return;
    };
    let a = roundtrip("zip of nine members", &zip);
    let len = zip.len() as u64;
    assert_eq!(zlib_segments(&a.recipe).len(), 9, "{:?}", a.recipe);
    let mut streamed = Vec::new();
    ferry_recipe::rebuild_from(
        &a.recipe,
        &mut &a.expanded[..],
        a.expanded.len() as u64,
        len,
        &mut streamed,
    )
    .unwrap();
    assert!(streamed == zip, "read as it goes: other bytes");
    // The fourth member at another level.
    let (index, start) = {
        let mut zlib = 0;
        let mut out = 0u64;
        let mut found = None;
        for (i, s) in a.recipe.segments.iter().enumerate() {
            if let Segment::Zlib { .. } = s {
                zlib += 1;
                if zlib == 4 {
                    found = Some((i, out));
                    break;
                }
            }
            out += s.output_len();
        }
        found.expect("a fourth member")
    };
    let mut bad = a.recipe.clone();
    if let Segment::Zlib { params, .. } = &mut bad.segments[index] {
        params.level = 1;
    }
    let mut out = Vec::new();
    let r = ferry_recipe::rebuild(&bad, &a.expanded, len, &mut out);
    assert!(
        matches!(r, Err(RebuildError::Zlib { segment, .. }) if segment == index),
        "{r:?}"
    );
    assert_eq!(out.len() as u64, start, "written before the refusal");
    assert!(out[..] == zip[..start as usize]);
}

/// A zip whose members are deflated by miniz_oxide at `level` (as the `zip`
/// crate, which maturin builds Rust-extension wheels with, deflates them),
/// with its central directory.
fn miniz_zip(members: &[(&str, &[u8])], level: u8) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, plain) in members {
        let deflated = miniz_oxide::deflate::compress_to_vec(plain, level);
        let mut crc = flate2::Crc::new();
        crc.update(plain);
        let at = out.len() as u32;
        let fields = |sig: &[u8], central: bool| {
            let mut h = sig.to_vec();
            if central {
                h.extend_from_slice(&20u16.to_le_bytes());
            }
            h.extend_from_slice(&20u16.to_le_bytes()); // version needed
            h.extend_from_slice(&0u16.to_le_bytes()); // flags
            h.extend_from_slice(&8u16.to_le_bytes()); // deflate
            h.extend_from_slice(&[0, 0, 0x21, 0]); // time, date
            h.extend_from_slice(&crc.sum().to_le_bytes());
            h.extend_from_slice(&(deflated.len() as u32).to_le_bytes());
            h.extend_from_slice(&(plain.len() as u32).to_le_bytes());
            h.extend_from_slice(&(name.len() as u16).to_le_bytes());
            h.extend_from_slice(&0u16.to_le_bytes()); // extra
            if central {
                h.extend_from_slice(&[0; 8]); // comment, disk, attributes
                h.extend_from_slice(&[0; 4]); // external attributes
                h.extend_from_slice(&at.to_le_bytes());
            }
            h.extend_from_slice(name.as_bytes());
            h
        };
        out.extend_from_slice(&fields(b"PK\x03\x04", false));
        out.extend_from_slice(&deflated);
        central.extend_from_slice(&fields(b"PK\x01\x02", true));
    }
    let (cd_at, cd_len) = (out.len() as u32, central.len() as u32);
    out.extend_from_slice(&central);
    out.extend_from_slice(b"PK\x05\x06");
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(members.len() as u16).to_le_bytes());
    out.extend_from_slice(&(members.len() as u16).to_le_bytes());
    out.extend_from_slice(&cd_len.to_le_bytes());
    out.extend_from_slice(&cd_at.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

#[test]
fn a_zip_deflated_by_miniz_oxide_is_rebuilt_by_encoder_4_in_recipe_version_5() {
    let (a, b) = (text(200_000, 21), text(70_000, 22));
    let zip = miniz_zip(&[("lib.so", &a), ("mod.py", &b)], 6);
    let an = roundtrip("miniz zip", &zip);
    let params = zlib_segments(&an.recipe);
    assert_eq!(params.len(), 2, "{:?}", an.recipe);
    assert!(params
        .iter()
        .all(|p| p.encoder == MINIZ_OXIDE_ENCODER && p.level == 6));
    assert_eq!(an.recipe.to_bytes()[0], RECIPE_VERSION_5);
    // For a reader of version 4, encoder 4 is not tried: preflate-rs's
    // corrections instead, never a version 5 recipe.
    let opts = Options {
        max_recipe_version: RECIPE_VERSION_4,
        ..Options::default()
    };
    let old = analyze(&zip, &opts);
    assert!(zlib_segments(&old.recipe).is_empty(), "{:?}", old.recipe);
    assert!(old.recipe.to_bytes()[0] < RECIPE_VERSION_5);
    let mut out = Vec::new();
    ferry_recipe::rebuild(&old.recipe, &old.expanded, zip.len() as u64, &mut out).unwrap();
    assert!(out == zip);
}
