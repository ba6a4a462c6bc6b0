//! Encoder 3: Go's `compress/flate`, rewritten. Gzip members made by the
//! real Go (`compress/gzip`, the helper `tests/goflate/main.go` built with
//! the `go` on the PATH, no network) at levels 1 to 9 are found by
//! `analyze` as encoder 3 at their level and rebuilt byte for byte; a
//! recipe naming encoder 3 needs version 5; `Options::max_recipe_version` 4
//! leaves such streams to preflate-rs. Without `go`, the tests that need
//! it print `skipped: ...` and return.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{go_build, piped, text};
use ferry_recipe::zlib::{ZlibParams, GO_FLATE_ENCODER};
use ferry_recipe::{
    analyze, rebuild, Options, Recipe, RecipeError, Segment, RECIPE_VERSION_4, RECIPE_VERSION_5,
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
