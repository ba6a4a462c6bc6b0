//! Encoder 3: Go's `compress/flate`, rewritten. Gzip members made by the
//! real Go (`compress/gzip`, the helper `tests/goflate/main.go` built with
//! the `go` on the PATH, no network) at levels 1 to 9 are found by
//! `analyze` as encoder 3 at their level and rebuilt byte for byte; a
//! recipe naming encoder 3 needs version 5; `Options::max_recipe_version` 4
//! leaves such streams to preflate-rs. A layer-sized Go stream at a lazy
//! level (4 to 9) is cut (recipe version 7) and rebuilt in pieces; below
//! version 7 it is one serial segment. Without `go`, the tests that need
//! it print `skipped: ...` and return.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{go_build, piped, text};
use ferry_recipe::zlib::{ZlibParams, GO_FLATE_ENCODER};
use ferry_recipe::{
    analyze, rebuild, rebuild_from, DeflateCut, Options, RebuildError, Recipe, RecipeError,
    Segment, RECIPE_VERSION, RECIPE_VERSION_4, RECIPE_VERSION_5, RECIPE_VERSION_6,
};

/// The Go helper, built once, or why not.
fn helper() -> Option<&'static Path> {
    static HELPER: OnceLock<Result<(tempfile::TempDir, PathBuf), String>> = OnceLock::new();
    match HELPER.get_or_init(|| go_build("goflate", &[("GOFLAGS", "-mod=mod")])) {
        Ok((_, exe)) => Some(exe.as_path()),
        Err(why) => {
            println!("skipped: {why}");
            None
        }
    }
}

/// Go's gzip member of `plain` at `level`.
fn go_gzip(exe: &Path, level: u8, plain: &[u8]) -> Vec<u8> {
    piped(exe, &["-gzip", &level.to_string()], plain)
}

/// A tar-like input: text files and binary-ish padding, about 600 KB.
fn layer_like() -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..6u64 {
        out.extend_from_slice(&[0u8; 512]);
        out.extend_from_slice(&text(80_000 + 7_000 * i as usize, 11 + i));
        let mut x = i + 1;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.push(if x % 3 == 0 { (x >> 40) as u8 } else { 0 });
        }
    }
    out
}

#[test]
fn go_gzip_members_are_encoder_3_at_their_level() {
    let Some(exe) = helper() else { return };
    let plain = layer_like();
    for level in 1..=9u8 {
        let gz = go_gzip(exe, level, &plain);
        let a = analyze(&gz, &Options::default());
        assert_eq!(
            a.recipe.zlib_params(),
            vec![ZlibParams {
                encoder: GO_FLATE_ENCODER,
                level
            }],
            "level {level}"
        );
        let bytes = a.recipe.to_bytes();
        assert_eq!(bytes[0], RECIPE_VERSION_5, "level {level}");
        let decoded = Recipe::from_bytes(&bytes).unwrap();
        let mut out = Vec::new();
        rebuild(&decoded, &a.expanded, gz.len() as u64, &mut out).unwrap();
        assert!(out == gz, "level {level}: rebuilt bytes differ");
        // A reader of version 4 refuses it.
        let mut as_v4 = bytes.clone();
        as_v4[0] = RECIPE_VERSION_4;
        assert!(matches!(
            Recipe::from_bytes(&as_v4),
            Err(RecipeError::SegmentNotInVersion)
        ));
    }
}

#[test]
fn below_recipe_version_5_go_streams_keep_recipes_within_version_4() {
    let Some(exe) = helper() else { return };
    let gz = go_gzip(exe, 6, &layer_like());
    let opts = Options {
        max_recipe_version: RECIPE_VERSION_4,
        ..Options::default()
    };
    let a = analyze(&gz, &opts);
    assert!(a
        .recipe
        .zlib_params()
        .iter()
        .all(|p| p.encoder != GO_FLATE_ENCODER));
    assert!(a.recipe.to_bytes()[0] <= RECIPE_VERSION_4);
    let mut out = Vec::new();
    rebuild(&a.recipe, &a.expanded, gz.len() as u64, &mut out).unwrap();
    assert!(out == gz);
}

#[test]
fn an_unknown_encoder_is_refused() {
    let plain = b"hello hello hello".to_vec();
    let recipe = Recipe {
        segments: vec![Segment::Zlib {
            plain_len: plain.len() as u64,
            compressed_len: 10,
            params: ZlibParams {
                encoder: 9,
                level: 6,
            },
        }],
    };
    let mut out = Vec::new();
    let e = rebuild(&recipe, &plain, 10, &mut out).unwrap_err();
    assert!(e.to_string().contains("unknown"), "{e}");
}

/// About 24 MiB of tar-like bytes: [`layer_like`]'s text and padding, and
/// runs of generated source.
fn layer_sized() -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..14u64 {
        out.extend(layer_like());
        out.extend(text(1_100_000, 200 + i));
    }
    out
}

/// The cuts of an analysis's recipe.
fn cuts_of(recipe: &Recipe) -> Vec<DeflateCut> {
    recipe
        .segments
        .iter()
        .flat_map(|s| match s {
            Segment::ZlibCuts { cuts, .. } => cuts.clone(),
            _ => Vec::new(),
        })
        .collect()
}

/// A Go-made layer-sized gzip member at levels 4 and 6 is cut (recipe
/// version 7: a version-6 reader refuses it), with and without the check
/// of every piece; it rebuilds from memory and streaming, and its serial
/// form (for readers of version 6) the same bytes; with
/// `max_recipe_version` 6 the analysis gives that serial form.
#[test]
fn a_go_layer_is_cut_and_rebuilds_in_pieces() {
    let Some(exe) = helper() else { return };
    let plain = layer_sized();
    for level in [4u8, 6] {
        let gz = go_gzip(exe, level, &plain);
        let mut cut = None;
        for check_streams in [true, false] {
            let opts = Options {
                check_streams,
                ..Options::default()
            };
            let a = analyze(&gz, &opts);
            assert_eq!(
                a.recipe.zlib_params(),
                vec![ZlibParams {
                    encoder: GO_FLATE_ENCODER,
                    level
                }]
            );
            let cuts = cuts_of(&a.recipe);
            assert!(cuts.len() >= 3, "level {level}, {check_streams}: {cuts:?}");
            let bytes = a.recipe.to_bytes();
            assert_eq!(bytes[0], RECIPE_VERSION);
            let decoded = Recipe::from_bytes(&bytes).unwrap();
            let mut out = Vec::new();
            rebuild(&decoded, &a.expanded, gz.len() as u64, &mut out).unwrap();
            assert!(out == gz, "level {level}, {check_streams}: rebuilt differs");
            let mut streamed = Vec::new();
            rebuild_from(
                &decoded,
                &mut &a.expanded[..],
                a.expanded.len() as u64,
                gz.len() as u64,
                &mut streamed,
            )
            .unwrap();
            assert!(streamed == gz, "level {level}, {check_streams}: streamed");
            // A reader of version 6 refuses it; its serial form it reads.
            let mut as_v6 = bytes.clone();
            as_v6[0] = RECIPE_VERSION_6;
            assert!(matches!(
                Recipe::from_bytes(&as_v6),
                Err(RecipeError::SegmentNotInVersion)
            ));
            let serial = a.recipe.serial_above(RECIPE_VERSION_6);
            assert_eq!(serial, a.recipe.serial());
            assert_eq!(serial.to_bytes()[0], RECIPE_VERSION_5);
            let mut out = Vec::new();
            rebuild(&serial, &a.expanded, gz.len() as u64, &mut out).unwrap();
            assert!(out == gz, "level {level}, {check_streams}: serial form");
            match &cut {
                None => cut = Some(cuts),
                Some(c) => assert_eq!(c, &cuts, "level {level}: the check dropped a cut"),
            }
        }
        let v6 = Options {
            max_recipe_version: RECIPE_VERSION_6,
            ..Options::default()
        };
        let a = analyze(&gz, &v6);
        assert!(cuts_of(&a.recipe).is_empty());
        assert_eq!(a.recipe.to_bytes()[0], RECIPE_VERSION_5);
    }
}

/// A recipe crafted with a wrong cut in a Go stream is refused, naming
/// the segment and the piece; never other bytes.
#[test]
fn a_crafted_wrong_go_cut_is_refused() {
    let Some(exe) = helper() else { return };
    let plain = layer_sized();
    let gz = go_gzip(exe, 6, &plain[..plain.len() / 2]);
    let opts = Options {
        deflate_cuts: Some(1 << 20),
        ..Options::default()
    };
    let a = analyze(&gz, &opts);
    let at = a
        .recipe
        .segments
        .iter()
        .position(|s| matches!(s, Segment::ZlibCuts { .. }))
        .expect("a cut stream");
    let wrong: [fn(&mut DeflateCut); 4] = [
        |c| c.partial ^= 1 << (c.bit % 8).saturating_sub(1),
        |c| c.bit -= 8,
        |c| c.window += 1,
        |c| c.plain -= 1,
    ];
    for change in wrong {
        let mut bad = a.recipe.clone();
        if let Segment::ZlibCuts { cuts, .. } = &mut bad.segments[at] {
            change(&mut cuts[1]);
        }
        let bad = Recipe::from_bytes(&bad.to_bytes()).unwrap();
        let mut out = Vec::new();
        match rebuild(&bad, &a.expanded, gz.len() as u64, &mut out) {
            Err(e @ RebuildError::Cuts { segment, .. }) => {
                assert_eq!(segment, at);
                assert!(e.to_string().contains("piece 1 of the stream"), "{e}");
                eprintln!("refused: {e}");
            }
            Err(e) => panic!("refused, but not as a wrong cut: {e}"),
            Ok(()) => panic!(
                "a wrong cut rebuilt {} bytes (the same: {})",
                out.len(),
                out == gz
            ),
        }
    }
}
