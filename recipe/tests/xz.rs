//! xz recompression against the real `xz` CLI, dpkg-deb and rpmbuild output.

mod common;

use common::{have, run, sample_data, skip};
use ferry_recipe::xz::{self, XzError, XzMode, XzParams};

/// Decodes `stream`, finds its parameters and checks the rebuild is identical.
fn reproduce(stream: &[u8]) -> Result<XzParams, XzError> {
    let (plain, used) = xz::decompress(stream, 1 << 30)?;
    assert_eq!(used, stream.len(), "decompress consumed the whole stream");
    let params = xz::find_params(stream, &plain)?;
    assert_eq!(xz::compress(&params, &plain)?, stream, "rebuild is byte-identical");
    Ok(params)
}

#[test]
fn xz_cli_variants_reproduce() {
    if !have("xz") {
        return skip("xz CLI not installed");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data");
    std::fs::write(&file, sample_data(3 << 20)).unwrap();
    let variants: &[&[&str]] = &[
        &["-0"], &["-1"], &["-2"], &["-3"], &["-4"], &["-5"], &["-6"], &["-7"], &["-8"],
        &["-9"], &["-6", "-e"], &["-1", "-e"], &["-T1"], &["-T2"], &["-T2", "--block-size=1MiB"],
        &["-T2", "-9"], &["--check=crc32"], &["--check=crc64"], &["--check=sha256"],
        &["--check=none"], &["-T2", "--check=sha256"],
    ];
    for args in variants {
        let out = run("xz", &[&["-c", "-k"], *args, &[file.to_str().unwrap()]].concat(), None);
        let params = reproduce(&out).unwrap_or_else(|e| panic!("xz {args:?}: {e}"));
        println!("xz {args:?} (file): {params:?}");
        // The same through a pipe: xz does not know the size then.
        let data = std::fs::read(&file).unwrap();
        let out = run("xz", &[&["-c"], *args].concat(), Some(&data));
        let params = reproduce(&out).unwrap_or_else(|e| panic!("xz {args:?} (pipe): {e}"));
        println!("xz {args:?} (pipe): {params:?}");
    }
}

#[test]
fn small_file_shrunk_dictionary_reproduces() {
    if !have("xz") {
        return skip("xz CLI not installed");
    }
    let data = sample_data(100 << 10);
    for preset in ["-0", "-6", "-9"] {
        let out = run("xz", &["-c", preset], Some(&data));
        reproduce(&out).unwrap_or_else(|e| panic!("xz {preset} small: {e}"));
    }
}
