//! A real wheel deflated by zlib-ng: pillow 11.1.0's manylinux wheel for
//! CPython 3.11, whose members zlib-ng 2.2.2 wrote (pillow's wheel build
//! swaps the image's zlib for it). zlib-ng 2.2.2 has no package on any
//! registry this machine reaches, so this wheel is the known answer of that
//! release beyond the module's known answers.
//!
//! It needs PyPI: it runs when `FERRY_TEST_PYPI` is set (scripts/test.sh
//! sets it) and otherwise says it was skipped. The wheel is fetched with
//! `pip download` into a temporary directory.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{assert_reproduced, roundtrip, run};
use ferry_recipe::zlib::ZLIB_NG_ENCODER;
use ferry_recipe::{analyze, Options, StreamKind, RECIPE_VERSION_5};

/// pillow 11.1.0's wheel, downloaded into `dir`, or `None` (skipped).
fn pillow_wheel(dir: &std::path::Path, test: &str) -> Option<PathBuf> {
    if std::env::var_os("FERRY_TEST_PYPI").is_none() {
        eprintln!("skipped: {test}: FERRY_TEST_PYPI is not set (it needs PyPI)");
        return None;
    }
    run(Command::new("python3")
        .args(["-m", "pip", "download", "-q", "--no-deps"])
        .args([
            "--only-binary",
            ":all:",
            "--platform",
            "manylinux2014_x86_64",
        ])
        .args(["--python-version", "3.11", "-d"])
        .arg(dir)
        .arg("pillow==11.1.0"));
    let found = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"));
    Some(found.expect("pip download wrote no wheel"))
}

#[test]
fn pillow_11_1_wheel_members_are_zlib_ng_and_rebuild() {
    let test = "pillow_11_1_wheel_members_are_zlib_ng_and_rebuild";
    let dir = tempfile::tempdir().unwrap();
    let Some(whl) = pillow_wheel(dir.path(), test) else {
        return;
    };
    let data = std::fs::read(&whl).unwrap();
    let a = roundtrip("pillow 11.1.0", &data);
    // Every deflated member (132 in this wheel) is reproduced: before
    // encoder 6, 20 of them (2.7 MB) were literal.
    assert_reproduced("pillow 11.1.0", &a, StreamKind::ZipEntry, 130);
    assert!(
        a.report.literal().next().is_none(),
        "{:?}",
        a.report.streams
    );
    // The large members are zlib-ng's own output (the small ones may also be
    // zlib's: both encoders agree on them).
    let params = a.recipe.zlib_params();
    let ng = params
        .iter()
        .filter(|p| p.encoder == ZLIB_NG_ENCODER)
        .count();
    assert!(ng >= 20, "{ng} of {} streams are zlib-ng's", params.len());
    assert_eq!(a.recipe.to_bytes()[0], ferry_recipe::RECIPE_VERSION_6);

    // A site whose insides read recipe version 5 gets no zlib-ng recipe:
    // those members fall back to what version 5 can do.
    let opts = Options {
        max_recipe_version: RECIPE_VERSION_5,
        ..Options::default()
    };
    let old = analyze(&data, &opts);
    assert!(old
        .recipe
        .zlib_params()
        .iter()
        .all(|p| p.encoder != ZLIB_NG_ENCODER));
    assert!(old.recipe.to_bytes()[0] <= RECIPE_VERSION_5);
}
