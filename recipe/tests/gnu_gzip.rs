//! Encoder 2: GNU gzip's deflate, rewritten. Real `gzip -1` to `-9` outputs
//! (made here by /bin/gzip) of varied inputs are rebuilt byte for byte from
//! their plain bytes, `tar | gzip` layers and tar+gzip charts round-trip
//! through `analyze` and `rebuild` with no preflate corrections, and a recipe
//! naming encoder 2 needs version 3.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{have, roundtrip, run, text, write};
use ferry_recipe::zlib::{ZlibParams, GNU_GZIP_ENCODER, ZLIB_ENCODER};
use ferry_recipe::{
    analyze, rebuild, rebuild_from, DeflateCut, Options, Outcome, RebuildError, Recipe,
    RecipeError, Segment, StreamKind, RECIPE_VERSION_2, RECIPE_VERSION_3, RECIPE_VERSION_4,
};

/// Deterministic bytes that look like a binary: runs, small integers, noise.
fn binary(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        match x % 4 {
            0 => out.extend_from_slice(&(x as u32 & 0xffff).to_le_bytes()),
            1 => out.extend(std::iter::repeat_n(0u8, (x >> 8) as usize % 40)),
            2 => out.extend_from_slice(&x.to_be_bytes()[..(x >> 20) as usize % 8]),
            _ => out.push((x >> 32) as u8),
        }
    }
    out.truncate(len);
    out
}

/// Incompressible bytes.
fn noise(len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| (i.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17) >> 56) as u8)
        .collect()
}

/// A tar of a few .deb files built by dpkg-deb (xz inside: mostly
/// incompressible, as in an image layer made of packages), or of text files
/// when dpkg-deb is missing.
fn tar_of_debs(dir: &Path) -> Vec<u8> {
    let debs = dir.join("debs");
    std::fs::create_dir_all(&debs).unwrap();
    for i in 0..3u64 {
        let root = dir.join(format!("pkg{i}"));
        write(
            &root,
            "DEBIAN/control",
            format!("Package: p{i}\nVersion: 1.{i}\nArchitecture: all\nMaintainer: t <t@example.org>\nDescription: p\n").as_bytes(),
        );
        write(&root, "usr/share/p/data", &text(60_000, 30 + i));
        write(&root, "usr/lib/p/bin", &binary(80_000, 40 + i));
        let made = Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zxz", "--build"])
            .arg(&root)
            .arg(debs.join(format!("p{i}.deb")))
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !made {
            write(&debs, &format!("p{i}.txt"), &text(100_000, 50 + i));
        }
    }
    run(Command::new("tar")
        .args(["--sort=name", "--mtime=@1700000000", "-cf", "-", "-C"])
        .arg(&debs)
        .arg("."))
}

/// Zeros from `start` to the end of gzip's first window (64 KiB), after bytes
/// with no zero, then bytes that come again later after 7 zeros, once after
/// other 7 zeros before. gzip's matches of 258 in the zeros end 6 bytes
/// before the window's end from `start` 64 755 and 64 756 (the bytes past it
/// are not read yet): a matcher that chained those strings by more than their
/// first 6 bytes then chained them by bytes it had not read.
fn zeros_to_the_window_end(start: usize) -> Vec<u8> {
    let nonzero = |len: usize, seed: u64| -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8 | 1
            })
            .collect()
    };
    let tail = nonzero(30, 1);
    let mut out = nonzero(start, 2);
    out.resize(64 << 10, 0);
    out.push(b'X');
    out.extend_from_slice(&tail);
    out.extend(nonzero(50, 3));
    out.extend_from_slice(b"Y\0\0\0\0\0\0\0Z");
    out.extend(nonzero(50, 4));
    out.extend_from_slice(b"W\0\0\0\0\0\0\0X");
    out.extend_from_slice(&tail);
    out.extend(nonzero(2000, 5));
    out
}

/// The inputs every level is checked on.
fn inputs(dir: &Path) -> Vec<(&'static str, Vec<u8>)> {
    let mut repetitive = b"abc".repeat(100_000);
    repetitive.extend(vec![0u8; 300_000]);
    vec![
        ("empty", Vec::new()),
        ("one byte", b"x".to_vec()),
        ("two bytes", b"xy".to_vec()),
        ("text", text(700_000, 1)),
        ("binary", binary(500_000, 2)),
        ("incompressible", noise(200_000)),
        ("repetitive", repetitive),
        ("tar of debs", tar_of_debs(dir)),
        ("zeros to the window's end", zeros_to_the_window_end(64_755)),
        (
            "zeros to the window's end + 1",
            zeros_to_the_window_end(64_756),
        ),
    ]
}

/// `gzip -level -n` of `plain`, fed through a pipe as `tar | gzip` does.
fn gzip_pipe(level: u8, plain: &[u8]) -> Vec<u8> {
    let mut child = Command::new("gzip")
        .args([format!("-{level}"), "-n".to_string(), "-c".to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("gzip runs");
    let mut stdin = child.stdin.take().unwrap();
    let plain = plain.to_vec();
    let feeder = std::thread::spawn(move || {
        use std::io::Write;
        // Small writes, so gzip's reads come back short.
        for piece in plain.chunks(7_919) {
            stdin.write_all(piece).unwrap();
        }
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert!(out.status.success());
    out.stdout
}

/// Rebuilds a gzip file (no name, no extra: a 10-byte header) from its plain
/// bytes with a hand-made recipe naming encoder 2 at `level`.
fn rebuilt_by_encoder_2(level: u8, plain: &[u8], gz: &[u8]) -> Vec<u8> {
    let body = gz.len() - 18;
    let recipe = Recipe {
        segments: vec![
            Segment::Literal { len: 10 },
            Segment::Zlib {
                plain_len: plain.len() as u64,
                compressed_len: body as u64,
                params: ZlibParams {
                    encoder: GNU_GZIP_ENCODER,
                    level,
                },
            },
            Segment::Literal { len: 8 },
        ],
    };
    let recipe = Recipe::from_bytes(&recipe.to_bytes()).unwrap();
    let mut expanded = gz[..10].to_vec();
    expanded.extend_from_slice(plain);
    expanded.extend_from_slice(&gz[gz.len() - 8..]);
    let mut out = Vec::new();
    match rebuild(&recipe, &expanded, gz.len() as u64, &mut out) {
        Ok(()) => out,
        Err(e) => panic!("level {level}: {e}"),
    }
}

#[test]
fn every_level_of_real_gzip_is_rebuilt_byte_for_byte() {
    if !have("gzip", "every_level_of_real_gzip_is_rebuilt_byte_for_byte") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, plain) in inputs(dir.path()) {
        same_as_gzip(name, &plain, dir.path(), true);
    }
}

/// Encoder 2 at every level gives `gzip -N -n` of `plain` (a file in
/// `dir`); with `piped`, gzip fed through a pipe gives the same bytes.
fn same_as_gzip(name: &str, plain: &[u8], dir: &Path, piped: bool) {
    let file = dir.join("in");
    std::fs::write(&file, plain).unwrap();
    for level in 1..=9u8 {
        let gz = run(Command::new("gzip")
            .args([format!("-{level}"), "-n".into(), "-c".into()])
            .arg(&file));
        let again = rebuilt_by_encoder_2(level, plain, &gz);
        assert!(again == gz, "{name}, gzip -{level} (file): differs");
        if piped {
            let through = gzip_pipe(level, plain);
            assert!(through == gz, "{name}, gzip -{level}: pipe and file differ");
        }
    }
}

/// Asserts every gzip member was reproduced by encoder 2 at `level` (or, with
/// `level` `None`, by encoder 1 or 2: a small stream of one block is often the
/// same bytes from both), none by preflate.
fn by_encoder_2(name: &str, data: &[u8], members: usize, level: Option<u8>) {
    let a = roundtrip(name, data);
    let streams: Vec<_> = a.report.streams.iter().collect();
    assert_eq!(streams.len(), members, "{name}: {streams:?}");
    assert!(
        streams
            .iter()
            .all(|s| s.kind == StreamKind::GzipMember && s.outcome == Outcome::Reproduced),
        "{name}: {streams:?}"
    );
    let params = a.recipe.zlib_params();
    assert_eq!(params.len(), members, "{name}: {:?}", a.recipe);
    let Some(level) = level else {
        return;
    };
    assert!(
        params
            .iter()
            .all(|p| p.encoder == GNU_GZIP_ENCODER && p.level == level),
        "{name}: {params:?}"
    );
    assert_eq!(a.recipe.to_bytes()[0], RECIPE_VERSION_3, "{name}");
}

#[test]
fn tar_piped_to_gzip_layers_need_no_preflate() {
    if !have("gzip", "tar_piped_to_gzip_layers_need_no_preflate") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tar = tar_of_debs(dir.path());
    // The levels the XFL byte and the default point at: 6 (XFL 0), 9 (XFL 2), 1 (XFL 4).
    for level in [6u8, 9, 1] {
        let layer = gzip_pipe(level, &tar);
        by_encoder_2(&format!("layer gzip -{level}"), &layer, 1, Some(level));
    }
    // Multi-member: two gzip runs concatenated.
    let mut two = gzip_pipe(6, &tar[..tar.len() / 2]);
    two.extend(gzip_pipe(6, &text(90_000, 9)));
    by_encoder_2("two members", &two, 2, Some(6));
}

#[test]
fn chart_made_by_tar_and_gzip_needs_no_preflate() {
    if !have("gzip", "chart_made_by_tar_and_gzip_needs_no_preflate") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let chart = dir.path().join("mychart");
    write(
        &chart,
        "Chart.yaml",
        b"apiVersion: v2\nname: mychart\nversion: 0.1.0\n",
    );
    write(&chart, "values.yaml", &text(4_000, 20));
    write(&chart, "templates/deployment.yaml", &text(12_000, 21));
    write(&chart, "templates/service.yaml", &text(3_000, 22));
    // helm package writes with Go's gzip (not GNU gzip): only tar czf here.
    let tgz = dir.path().join("mychart-0.1.0.tgz");
    run(Command::new("tar")
        .args(["--sort=name", "--mtime=@1700000000", "-czf"])
        .arg(&tgz)
        .arg("-C")
        .arg(dir.path())
        .arg("mychart"));
    let data = std::fs::read(&tgz).unwrap();
    by_encoder_2("chart", &data, 1, None);
    // A chart with more in it: past gzip's first block, only encoder 2 fits.
    write(&chart, "templates/configmap.yaml", &binary(400_000, 23));
    write(&chart, "files/notes.txt", &text(300_000, 24));
    std::fs::remove_file(&tgz).unwrap();
    run(Command::new("tar")
        .args(["--sort=name", "--mtime=@1700000000", "-czf"])
        .arg(&tgz)
        .arg("-C")
        .arg(dir.path())
        .arg("mychart"));
    let data = std::fs::read(&tgz).unwrap();
    by_encoder_2("larger chart", &data, 1, Some(6));
}

#[test]
fn zlib_made_streams_stay_with_zlib() {
    // flate2 links the pinned zlib: its output is encoder 1's.
    use std::io::Write;
    let plain = text(300_000, 3);
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(&plain).unwrap();
    let gz = e.finish().unwrap();
    let a = analyze(&gz, &Options::default());
    let params = a.recipe.zlib_params();
    assert_eq!(
        params,
        vec![ZlibParams {
            encoder: ZLIB_ENCODER,
            level: 6
        }]
    );
    assert_eq!(a.recipe.to_bytes()[0], RECIPE_VERSION_2);
}

#[test]
fn encoder_2_needs_recipe_version_3() {
    let r = Recipe {
        segments: vec![Segment::Zlib {
            plain_len: 1,
            compressed_len: 3,
            params: ZlibParams {
                encoder: GNU_GZIP_ENCODER,
                level: 6,
            },
        }],
    };
    let mut bytes = r.to_bytes();
    assert_eq!(bytes[0], RECIPE_VERSION_3);
    assert_eq!(Recipe::from_bytes(&bytes).unwrap(), r);
    for old in [1, RECIPE_VERSION_2] {
        bytes[0] = old;
        assert!(matches!(
            Recipe::from_bytes(&bytes),
            Err(RecipeError::SegmentNotInVersion)
        ));
    }
}

#[test]
fn unchecked_analysis_compares_a_prefix_and_the_rebuild_checks_the_rest() {
    if !have("gzip", "unchecked_analysis_compares_a_prefix") {
        return;
    }
    let mut plain = noise(1_500_000);
    plain.extend(binary(3_000_000, 60));
    plain.extend(text(3_000_000, 61));
    let gz = gzip_pipe(6, &plain);
    assert!(
        gz.len() > 3 << 19,
        "{} bytes: not past the prefix",
        gz.len()
    );
    let opts = Options {
        check_streams: false,
        ..Options::default()
    };
    let a = analyze(&gz, &opts);
    assert_eq!(
        a.recipe.zlib_params(),
        vec![ZlibParams {
            encoder: GNU_GZIP_ENCODER,
            level: 6
        }]
    );
    let mut out = Vec::new();
    rebuild(&a.recipe, &a.expanded, gz.len() as u64, &mut out).unwrap();
    assert!(out == gz);
}

/// A layer of more than two pieces: its stream is cut (recipe version 4),
/// the recipe survives its encoding, rebuilds the layer from memory and
/// streaming, with and without the check of every piece at analysis; its
/// serial form (for a reader of version 3) rebuilds the same bytes; and
/// with `deflate_cuts` off the analysis gives the serial form.
#[test]
fn a_large_layer_is_cut_and_rebuilds_in_pieces() {
    if !have("gzip", "a_large_layer_is_cut_and_rebuilds_in_pieces") {
        return;
    }
    let mut plain = Vec::new();
    for i in 0..6u64 {
        plain.extend(text(1_200_000, 70 + i));
        plain.extend(binary(600_000, 80 + i));
    }
    plain.extend(noise(300_000));
    let gz = gzip_pipe(6, &plain);
    for check_streams in [true, false] {
        let opts = Options {
            check_streams,
            deflate_cuts: Some(1 << 20),
            ..Options::default()
        };
        let a = analyze(&gz, &opts);
        let cuts: Vec<&DeflateCut> = a
            .recipe
            .segments
            .iter()
            .flat_map(|s| match s {
                Segment::ZlibCuts { cuts, .. } => cuts.iter().collect(),
                _ => Vec::new(),
            })
            .collect();
        assert!(cuts.len() >= 4, "{check_streams}: {:?}", a.recipe);
        let bytes = a.recipe.to_bytes();
        assert_eq!(bytes[0], RECIPE_VERSION_4);
        let decoded = Recipe::from_bytes(&bytes).unwrap();
        assert_eq!(decoded, a.recipe);
        let mut out = Vec::new();
        rebuild(&decoded, &a.expanded, gz.len() as u64, &mut out).unwrap();
        assert!(out == gz, "{check_streams}: rebuilt from memory differs");
        let mut streamed = Vec::new();
        rebuild_from(
            &decoded,
            &mut &a.expanded[..],
            a.expanded.len() as u64,
            gz.len() as u64,
            &mut streamed,
        )
        .unwrap();
        assert!(streamed == gz, "{check_streams}: rebuilt streaming differs");
        // A reader of version 3 refuses version 4; the serial form it reads.
        let mut as_v3 = bytes.clone();
        as_v3[0] = RECIPE_VERSION_3;
        assert!(matches!(
            Recipe::from_bytes(&as_v3),
            Err(RecipeError::SegmentNotInVersion)
        ));
        let serial = a.recipe.serial();
        assert_eq!(serial.to_bytes()[0], RECIPE_VERSION_3);
        let mut out = Vec::new();
        rebuild(&serial, &a.expanded, gz.len() as u64, &mut out).unwrap();
        assert!(out == gz, "{check_streams}: the serial form differs");
        // What the cuts cost: a few bytes each.
        let per_cut = (bytes.len() - serial.to_bytes().len()) as f64 / cuts.len() as f64;
        assert!(per_cut < 20.0, "{per_cut} bytes a cut");
    }
    let off = Options {
        deflate_cuts: None,
        ..Options::default()
    };
    let a = analyze(&gz, &off);
    assert_eq!(a.recipe.to_bytes()[0], RECIPE_VERSION_3);
    assert_eq!(a.recipe.serial(), a.recipe);
}

/// A recipe crafted with a wrong cut (a partial byte, a bit offset, a
/// window position) is refused with an error naming the segment and the
/// cut: never other bytes.
#[test]
fn a_crafted_wrong_cut_is_refused() {
    if !have("gzip", "a_crafted_wrong_cut_is_refused") {
        return;
    }
    let mut plain = Vec::new();
    for i in 0..4u64 {
        plain.extend(text(1_000_000, 90 + i));
    }
    let gz = gzip_pipe(9, &plain);
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
    let wrong: [fn(&mut DeflateCut); 3] = [
        |c| c.partial ^= 1 << (c.bit % 8).saturating_sub(1),
        |c| c.bit -= 8,
        |c| c.window += 1,
    ];
    for change in wrong {
        let mut bad = a.recipe.clone();
        if let Segment::ZlibCuts { cuts, .. } = &mut bad.segments[at] {
            change(&mut cuts[0]);
        }
        let bad = Recipe::from_bytes(&bad.to_bytes()).unwrap();
        let mut out = Vec::new();
        match rebuild(&bad, &a.expanded, gz.len() as u64, &mut out) {
            Err(e @ RebuildError::Cuts { segment, .. }) => {
                assert_eq!(segment, at);
                eprintln!("refused: {e}");
            }
            // Refused by the cut's own check, never by something else and
            // never rebuilt into other bytes.
            Err(e) => panic!("refused, but not as a wrong cut: {e}"),
            Ok(()) => panic!(
                "a wrong cut rebuilt {} bytes (the same: {})",
                out.len(),
                out == gz
            ),
        }
    }
}

/// Inputs where gzip's search limits decide: long hash chains of strings
/// that share their first 3 to 9 bytes and then differ (small alphabets,
/// records with common prefixes), matches of exactly 3 bytes far back, runs
/// that end at every length. The encoder must still be gzip byte for byte
/// at every level: a matcher that finds other (even longer) matches than
/// gzip's chain walk would make other bytes.
#[test]
fn search_limits_are_gzips_on_inputs_with_long_chains() {
    if !have("gzip", "search_limits_are_gzips_on_inputs_with_long_chains") {
        return;
    }
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut inputs: Vec<(String, Vec<u8>)> = Vec::new();
    for alphabet in [2u64, 3, 4, 16] {
        let plain = (0..200_000)
            .map(|_| b'a' + (next() % alphabet) as u8)
            .collect();
        inputs.push((format!("alphabet of {alphabet}"), plain));
    }
    for prefix in [3usize, 4, 5, 6, 7, 8, 9, 12] {
        // Records: one of a few shared prefixes of `prefix` bytes, then a
        // short random tail, sometimes a repeat of an earlier record.
        let heads: Vec<Vec<u8>> = (0..7)
            .map(|_| (0..prefix).map(|_| b'A' + (next() % 26) as u8).collect())
            .collect();
        let mut plain: Vec<u8> = Vec::new();
        while plain.len() < 150_000 {
            let r = next();
            if r % 5 == 0 && plain.len() > 5000 {
                let from = (next() as usize) % (plain.len() - 4000);
                let len = 3 + (next() as usize) % 300;
                let copy = plain[from..from + len].to_vec();
                plain.extend_from_slice(&copy);
            } else {
                plain.extend_from_slice(&heads[(r >> 8) as usize % heads.len()]);
                for _ in 0..(r >> 16) % 6 {
                    plain.push(b'0' + (next() % 10) as u8);
                }
            }
        }
        inputs.push((format!("records with {prefix}-byte prefixes"), plain));
    }
    // Runs of every length, and 3-byte matches beyond 4 KiB (gzip drops
    // those: TOO_FAR).
    let mut runs = Vec::new();
    for len in 1..600usize {
        runs.extend(std::iter::repeat_n(b'a' + (len % 7) as u8, len));
        runs.extend_from_slice(&(next() as u32).to_le_bytes());
    }
    inputs.push(("runs".into(), runs));
    let mut far = Vec::new();
    while far.len() < 200_000 {
        far.extend_from_slice(b"xyz");
        far.extend((0..5000).map(|_| next() as u8));
    }
    inputs.push(("3-byte matches far back".into(), far));

    let dir = tempfile::tempdir().unwrap();
    for (name, plain) in inputs {
        same_as_gzip(&name, &plain, dir.path(), false);
    }
}
