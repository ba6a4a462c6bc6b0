//! Encoders 5 and 7: klauspost/pgzip and klauspost/compress `flate`,
//! rewritten. Gzip members made by the real Go (the helper
//! `tests/kpflate/main.go`, built in GOPATH mode against Debian's
//! packages, no network) are found by `analyze` as encoder 5 (pgzip) or 6
//! (klauspost's `compress/gzip`) at their level and rebuilt byte for byte;
//! such a recipe needs version 6; `Options::max_recipe_version` 5 leaves
//! them to the older encoders and preflate-rs. Without `go` or the
//! packages, the tests that need them print `skipped: ...` and return.

mod common;

use std::path::{Path, PathBuf};

use std::sync::OnceLock;

use common::{go_build, piped, text};
use ferry_recipe::zlib::{ZlibParams, KP_FLATE_ENCODER, PGZIP_ENCODER};
use ferry_recipe::{
    analyze, rebuild, Options, Recipe, RecipeError, RECIPE_VERSION_5, RECIPE_VERSION_6,
};

const GOPATH: &str = "/usr/share/gocode";

/// The Go helper, built once, or why not.
fn helper() -> Option<&'static Path> {
    static HELPER: OnceLock<Result<(tempfile::TempDir, PathBuf), String>> = OnceLock::new();
    let got = HELPER.get_or_init(|| {
        let pgzip = Path::new(GOPATH).join("src/github.com/klauspost/pgzip");
        if !pgzip.is_dir() {
            return Err(format!("{} is missing", pgzip.display()));
        }
        let env = [("GO111MODULE", "off"), ("GOPATH", GOPATH), ("GOFLAGS", "")];
        go_build("kpflate", &env)
    });
    match got {
        Ok((_, exe)) => Some(exe.as_path()),
        Err(why) => {
            println!("skipped: {why}");
            None
        }
    }
}

/// The helper's gzip member of `plain` (`mode` "pgzip" or "gzip").
fn go_gzip(exe: &Path, mode: &str, level: i32, plain: &[u8]) -> Vec<u8> {
    piped(exe, &[mode, &level.to_string()], plain)
}

/// A tar-like input of 2.6 MB (three pgzip blocks): text files and sparse
/// binary.
fn layer_like() -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..8u64 {
        out.extend_from_slice(&[0u8; 512]);
        out.extend_from_slice(&text(250_000 + 7_000 * i as usize, 11 + i));
        let mut x = i + 1;
        for _ in 0..60_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.push(if x % 3 == 0 { (x >> 40) as u8 } else { 0 });
        }
    }
    out
}

fn rebuilt(a: &ferry_recipe::Analysis, len: usize) -> Vec<u8> {
    let decoded = Recipe::from_bytes(&a.recipe.to_bytes()).unwrap();
    let mut out = Vec::new();
    rebuild(&decoded, &a.expanded, len as u64, &mut out).unwrap();
    out
}

#[test]
fn pgzip_members_are_encoder_5_at_their_level() {
    let Some(exe) = helper() else { return };
    let plain = layer_like();
    // -1 (DefaultCompression, what podman and skopeo use) is level 5.
    for (go_level, level) in [(-1, 5u8), (1, 1), (9, 9), (6, 6), (7, 7)] {
        let gz = go_gzip(exe, "pgzip", go_level, &plain);
        let a = analyze(&gz, &Options::default());
        assert_eq!(
            a.recipe.zlib_params(),
            vec![ZlibParams {
                encoder: PGZIP_ENCODER,
                level
            }],
            "level {go_level}"
        );
        let bytes = a.recipe.to_bytes();
        assert_eq!(bytes[0], RECIPE_VERSION_6, "level {go_level}");
        assert!(bytes.len() < 40, "a tiny recipe: {} bytes", bytes.len());
        assert!(rebuilt(&a, gz.len()) == gz, "level {go_level}: differs");
        // A reader of version 5 refuses it.
        let mut as_v5 = bytes.clone();
        as_v5[0] = RECIPE_VERSION_5;
        assert!(matches!(
            Recipe::from_bytes(&as_v5),
            Err(RecipeError::SegmentNotInVersion)
        ));
    }
}

#[test]
fn klauspost_gzip_members_are_encoder_6() {
    let Some(exe) = helper() else { return };
    let plain = layer_like();
    for level in [5u8, 1, 9] {
        let gz = go_gzip(exe, "gzip", i32::from(level), &plain);
        let a = analyze(&gz, &Options::default());
        assert_eq!(
            a.recipe.zlib_params(),
            vec![ZlibParams {
                encoder: KP_FLATE_ENCODER,
                level
            }],
            "level {level}"
        );
        assert!(rebuilt(&a, gz.len()) == gz, "level {level}: differs");
    }
}

#[test]
fn below_recipe_version_6_pgzip_streams_keep_recipes_within_version_5() {
    let Some(exe) = helper() else { return };
    let gz = go_gzip(exe, "pgzip", -1, &layer_like());
    let opts = Options {
        max_recipe_version: RECIPE_VERSION_5,
        ..Options::default()
    };
    let a = analyze(&gz, &opts);
    assert!(a
        .recipe
        .zlib_params()
        .iter()
        .all(|p| p.encoder != PGZIP_ENCODER && p.encoder != KP_FLATE_ENCODER));
    assert!(a.recipe.to_bytes()[0] <= RECIPE_VERSION_5);
    let mut out = Vec::new();
    rebuild(&a.recipe, &a.expanded, gz.len() as u64, &mut out).unwrap();
    assert!(out == gz);
}
