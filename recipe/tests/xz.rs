//! xz recompression against the real `xz` CLI, dpkg-deb and rpmbuild output.

#[path = "streams/mod.rs"]
mod common;

use common::{
    build_deb, build_rpm, deb_member, have, real_debian, rpm_payload, run, run_in, sample_data,
    skip,
};
use ferry_recipe::xz::{self, XzError, XzMode, XzParams};

/// Decodes `stream`, finds its parameters and checks the rebuild is identical.
fn reproduce(stream: &[u8]) -> Result<XzParams, XzError> {
    let (plain, used) = xz::decompress(stream, 1 << 30)?;
    assert_eq!(used, stream.len(), "decompress consumed the whole stream");
    let params = xz::find_params(stream, &plain)?;
    assert_eq!(
        xz::compress(&params, &plain)?,
        stream,
        "rebuild is byte-identical"
    );
    Ok(params)
}

#[test]
fn xz_cli_variants_reproduce() {
    if !have("xz") {
        return skip("xz CLI not installed");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data");
    std::fs::write(&file, sample_data(128 << 10)).unwrap();
    let variants: &[&[&str]] = &[
        &["-0"],
        &["-1"],
        &["-2"],
        &["-3"],
        &["-4"],
        &["-5"],
        &["-6"],
        &["-7"],
        &["-8"],
        &["-9"],
        &["-6", "-e"],
        &["-1", "-e"],
        &["-T1"],
        &["-T2"],
        &["-T2", "--block-size=64KiB"],
        &["-T2", "-9"],
        &["--check=crc32"],
        &["--check=crc64"],
        &["--check=sha256"],
        &["--check=none"],
        &["-T2", "--check=sha256"],
    ];
    for args in variants {
        let out = run(
            "xz",
            &[&["-c", "-k"], *args, &[file.to_str().unwrap()]].concat(),
            None,
        );
        let params = reproduce(&out).unwrap_or_else(|e| panic!("xz {args:?}: {e}"));
        println!("xz {args:?} (file): {params:?}");
    }
    // Through a pipe xz does not know the size.
    let data = std::fs::read(&file).unwrap();
    for args in [&["-6"][..], &["-T2"], &["-9", "-e"]] {
        let out = run("xz", &[&["-c"], args].concat(), Some(&data));
        let params = reproduce(&out).unwrap_or_else(|e| panic!("xz {args:?} (pipe): {e}"));
        println!("xz {args:?} (pipe): {params:?}");
    }
}

#[test]
fn the_prefix_search_picks_parameters_that_rebuild_the_stream() {
    if !have("xz") {
        return skip("xz CLI not installed");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data");
    // Longer than the prefix the search encodes (1 MiB).
    std::fs::write(&file, sample_data(3 << 19)).unwrap();
    let variants: &[&[&str]] = &[&["-6"], &["-6", "-e"], &["-1"], &["-9"], &["-T2"]];
    for args in variants {
        let out = run(
            "xz",
            &[&["-c", "-k"], *args, &[file.to_str().unwrap()]].concat(),
            None,
        );
        let (plain, _) = xz::decompress(&out, 1 << 30).unwrap();
        let quick =
            xz::find_params_by_prefix(&out, &plain).unwrap_or_else(|e| panic!("xz {args:?}: {e}"));
        assert_eq!(quick, xz::find_params(&out, &plain).unwrap(), "xz {args:?}");
        assert_eq!(xz::compress(&quick, &plain).unwrap(), out, "xz {args:?}");
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

#[test]
fn dpkg_deb_members_reproduce() {
    if !have("dpkg-deb") || !have("ar") {
        return skip("dpkg-deb or ar not installed");
    }
    let dir = tempfile::tempdir().unwrap();
    let payload = sample_data(512 << 10);
    for (name, args) in [
        ("dflt", &[][..]),
        ("xz9", &["-Zxz", "-z9"]),
        ("xz1", &["-Zxz", "-z1"]),
    ] {
        let deb = build_deb(dir.path(), name, &payload, args);
        for member in ["data.tar", "control.tar"] {
            let (file, bytes) = deb_member(&deb, member);
            assert!(file.ends_with(".xz"), "{name}: {file} is not xz");
            let params = reproduce(&bytes).unwrap_or_else(|e| panic!("{name} {file}: {e}"));
            println!("dpkg-deb {args:?} {file}: {params:?}");
            assert!(
                matches!(params.mode, XzMode::Multi { .. }),
                "dpkg-deb uses the MT encoder"
            );
        }
    }
}

#[test]
fn rpmbuild_xz_payload_reproduces() {
    if !have("rpmbuild") {
        return skip("rpmbuild not installed");
    }
    let dir = tempfile::tempdir().unwrap();
    let rpm = build_rpm(
        dir.path(),
        "ferryxz",
        &sample_data(1 << 20),
        Some("w6.xzdio"),
    );
    let bytes = std::fs::read(rpm).unwrap();
    let payload = rpm_payload(&bytes);
    let (plain, used) = xz::decompress(payload, 1 << 30).unwrap();
    assert_eq!(used, payload.len(), "the payload is one xz stream");
    let params = xz::find_params(payload, &plain).unwrap();
    assert_eq!(xz::compress(&params, &plain).unwrap(), payload);
    println!("rpmbuild w6.xzdio: {params:?}");
}

/// Real bookworm debs from the security and updates suites (downloads; set
/// FERRY_TEST_REAL_DEBIAN=1).
#[test]
fn real_debian_debs_reproduce() {
    if !real_debian() {
        return skip("real Debian debs: set FERRY_TEST_REAL_DEBIAN=1 to download and test them");
    }
    if !have("apt-get") || !have("ar") {
        return skip("apt-get or ar not installed");
    }
    let dir = tempfile::tempdir().unwrap();
    let pkgs = ["libexpat1", "curl", "libcurl4", "libxml2", "openssl"];
    run_in(
        "apt-get",
        &[&["download", "-q"][..], &pkgs].concat(),
        None,
        Some(dir.path()),
    );
    let mut debs = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let deb = entry.unwrap().path();
        for member in ["data.tar", "control.tar"] {
            let (file, bytes) = deb_member(&deb, member);
            if !file.ends_with(".xz") {
                println!("{}: {file} is not xz; not tested", deb.display());
                continue;
            }
            let params =
                reproduce(&bytes).unwrap_or_else(|e| panic!("{} {file}: {e}", deb.display()));
            println!("{} {file}: {params:?}", deb.display());
        }
        debs += 1;
    }
    assert_eq!(debs, pkgs.len(), "every package downloaded");
}

#[test]
fn hostile_params_are_refused() {
    let ok = XzParams {
        preset: 6,
        extreme: false,
        dict_size: 8 << 20,
        check: xz::XzCheck::Crc64,
        mode: XzMode::Single,
    };
    let bad = [
        XzParams {
            preset: 10,
            ..ok.clone()
        },
        XzParams {
            preset: u32::MAX,
            ..ok.clone()
        },
        XzParams {
            dict_size: 1 << 31,
            ..ok.clone()
        },
        XzParams {
            dict_size: 0,
            ..ok.clone()
        },
        XzParams {
            mode: XzMode::Multi {
                block_size: u64::MAX,
            },
            ..ok.clone()
        },
        XzParams {
            mode: XzMode::Multi { block_size: 0 },
            ..ok.clone()
        },
    ];
    for params in bad {
        let got = xz::compress(&params, b"hello");
        assert!(
            matches!(got, Err(XzError::BadParams(_))),
            "{params:?}: {got:?}"
        );
    }
    assert!(xz::compress(&ok, b"hello").is_ok());
}

#[test]
fn decompress_bounds_and_corruption() {
    let params = XzParams {
        preset: 1,
        extreme: false,
        dict_size: 1 << 20,
        check: xz::XzCheck::Crc64,
        mode: XzMode::Multi {
            block_size: 64 << 10,
        },
    };
    let plain = sample_data(160 << 10);
    let packed = xz::compress(&params, &plain).unwrap();
    // Exactly the content fits; one byte less does not.
    let (got, used) = xz::decompress(&packed, plain.len() as u64).unwrap();
    assert_eq!((got.len(), used), (plain.len(), packed.len()));
    let small = xz::decompress(&packed, plain.len() as u64 - 1);
    assert!(matches!(small, Err(XzError::TooLarge { .. })), "{small:?}");
    // Trailing bytes after the stream are not consumed.
    let mut longer = packed.clone();
    longer.extend_from_slice(b"trailing");
    assert_eq!(xz::decompress(&longer, 1 << 30).unwrap().1, packed.len());
    // A flipped byte in the data, a cut stream, and no magic at all.
    let mut flipped = packed.clone();
    flipped[packed.len() / 2] ^= 0x55;
    let cut = &packed[..packed.len() - 10];
    for (what, data) in [
        ("flipped", &flipped[..]),
        ("cut", cut),
        ("garbage", b"not xz at all"),
    ] {
        let got = xz::decompress(data, 1 << 30);
        assert!(matches!(got, Err(XzError::Corrupt(_))), "{what}: {got:?}");
        let got = xz::find_params(data, &plain);
        assert!(got.is_err(), "{what}: find_params accepted it");
    }
    // Right stream, wrong plain bytes: not reproduced, with the list tried.
    let mut other = plain.clone();
    other[1000] ^= 1;
    match xz::find_params(&packed, &other) {
        Err(XzError::NotReproduced { tried }) => assert!(!tried.is_empty()),
        got => panic!("{got:?}"),
    }
}
