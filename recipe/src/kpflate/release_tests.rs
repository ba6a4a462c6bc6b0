//! Encoders 5 and 7 at klauspost/compress releases 1.18.0 to 1.19.1 (see
//! [`super::release`]). CI has only Debian's klauspost 1.15.12, so the
//! releases are pinned by golden vectors (`release_golden.rs`): per
//! deterministic input, mode (pgzip's raw deflate body, or one `flate`
//! stream), release and level, the length and CRC-32 of what the real
//! klauspost/compress 1.18.0, 1.18.1 and 1.18.2 wrote (built from their
//! tags with Go 1.19 in GOPATH mode, pgzip 1.2.5 over them, the helper
//! `tests/kpflate/main.go`). When `FERRY_KP_ORACLES` names a directory
//! holding those helpers as `bin-v1.18.0`, `bin-v1.18.1`, `bin-v1.18.2`
//! (and optionally `bin-v1.19.1`), the encoders are also compared with them
//! byte for byte; otherwise that test prints `skipped: ...`.

use flate2::Crc;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::release::Release;
use super::release_golden::GOLDEN;
use crate::goflate::tests::Rng;
use crate::zlib::{ZlibParams, KP_FLATE_ENCODER, PGZIP_ENCODER};

/// Encoder 5's or 7's raw deflate stream of `input` at level byte `byte`.
fn ours(pgzip: bool, byte: u8, input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let sink = |b: &[u8]| {
        out.extend_from_slice(b);
        Ok::<(), ()>(())
    };
    if pgzip {
        super::pgzip_to(byte, &mut &input[..], 2, sink).expect("deflates");
    } else {
        super::deflate_to(byte, &mut &input[..], sink).expect("deflates");
    }
    out
}

/// `gz`, analysed as `a`, rebuilds exactly; a version-5 search (for an
/// inside built before recipe version 6) leaves it to other encoders than
/// `encoders`.
pub(super) fn rebuilds_and_needs_version_6(gz: &[u8], a: &crate::Analysis, encoders: &[u8]) {
    let mut out = Vec::new();
    crate::rebuild(&a.recipe, &a.expanded, gz.len() as u64, &mut out).expect("rebuilds");
    assert_eq!(out, gz);
    let opts = crate::Options {
        max_recipe_version: crate::RECIPE_VERSION_5,
        ..crate::Options::default()
    };
    let a5 = crate::analyze(gz, &opts);
    assert!(
        a5.recipe
            .zlib_params()
            .iter()
            .all(|p| !encoders.contains(&p.encoder)),
        "{:?}",
        a5.recipe.zlib_params()
    );
}

/// CRC-32 of `b`.
pub(super) fn crc(b: &[u8]) -> u32 {
    let mut c = Crc::new();
    c.update(b);
    c.sum()
}

/// A gzip member around the raw deflate stream `deflated` of `plain`, with
/// extra flags `xfl` and OS 255, as Go's and klauspost's writers frame it.
pub(super) fn gzip_member(xfl: u8, deflated: &[u8], plain: &[u8]) -> Vec<u8> {
    let mut gz = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255];
    gz.extend_from_slice(deflated);
    gz.extend(crc(plain).to_le_bytes());
    gz.extend((plain.len() as u32).to_le_bytes());
    gz
}

/// The golden inputs: text, binary-like records, random bytes, a run,
/// sizes at the 65,535-byte windows and the 1 MiB pgzip blocks, one byte,
/// nothing, and a 2.5 MiB mix of all.
pub(super) fn golden_inputs() -> Vec<(&'static str, Vec<u8>)> {
    let sample = crate::zlib::sample();
    let mut r = Rng(0x51ed_2701_9a3c_44b5);
    let mut text = Vec::new();
    while text.len() < (1 << 20) + 1 {
        let at = (r.next() % (sample.len() as u64 - 4000)) as usize;
        let n = (r.next() % 4000) as usize;
        text.extend_from_slice(&sample[at..at + n]);
        for _ in 0..r.next() % 3 {
            text.push(r.next() as u8);
        }
    }
    let mut binary = Vec::new();
    while binary.len() < 300_000 {
        let x = r.next();
        // Records of small integers, offsets and zero padding.
        binary.extend_from_slice(&((x % 4096) as u32).to_le_bytes());
        binary.extend_from_slice(&((x >> 20) as u16 & 0x1ff).to_le_bytes());
        binary.extend(std::iter::repeat_n(0u8, (x >> 40) as usize % 9));
        binary.push((x >> 50) as u8);
    }
    let random: Vec<u8> = (0..200_000).map(|_| r.next() as u8).collect();
    let mut mix = text[..700_000].to_vec();
    mix.extend(std::iter::repeat_n(0u8, 150_000));
    mix.extend_from_slice(&random);
    mix.extend_from_slice(&binary);
    mix.extend_from_slice(&text[300_000..]);
    mix.extend_from_slice(&binary[..100_000]);
    mix.extend(std::iter::repeat_n(b'-', 70_000));
    vec![
        ("empty", Vec::new()),
        ("1 byte", vec![7]),
        ("40 bytes", text[..40].to_vec()),
        ("text 65535", text[..65_535].to_vec()),
        ("text 65536", text[..65_536].to_vec()),
        ("text 1MiB-1", text[..(1 << 20) - 1].to_vec()),
        ("text 1MiB", text[..1 << 20].to_vec()),
        ("text 1MiB+1", text[..(1 << 20) + 1].to_vec()),
        ("binary 300k", binary),
        ("random 200k", random),
        ("run 300k", vec![b'r'; 300_000]),
        ("mix 2.5M", mix),
    ]
}

/// The (release, level) pairs pinned: 1.18.0's levels 4 and 7 to 9,
/// 1.18.1's and 1.18.2's levels 1 to 9.
fn pinned() -> Vec<(Release, u8)> {
    let mut v = vec![(Release::V1_18_0, 4)];
    v.extend((7..=9).map(|l| (Release::V1_18_0, l)));
    for r in [Release::V1_18_1, Release::V1_18_2] {
        v.extend((1..=9).map(|l| (r, l)));
    }
    v
}

#[test]
fn golden_vectors_hold() {
    let inputs = golden_inputs();
    // But 1.18.1's level 9 of the run, in both modes (invalid streams).
    assert_eq!(
        GOLDEN.len(),
        inputs.len() * 2 * pinned().len() - 2,
        "a golden vector per input, mode, release and level"
    );
    let mut bad = Vec::new();
    for &(name, pgzip, byte, len, sum) in GOLDEN {
        let input = &inputs.iter().find(|i| i.0 == name).expect("named input").1;
        let got = ours(pgzip, byte, input);
        if (got.len(), crc(&got)) != (len, sum) {
            bad.push(format!("{name} pgzip {pgzip} level byte {byte:#04x}"));
        }
    }
    assert!(bad.is_empty(), "golden vectors differ: {bad:#?}");
}

/// The releases differ where the tables say: 1.18.0's level 4 is not
/// 1.15.12's, 1.18.2's level 5 (its writer) is not either, nor 1.18.2's
/// level 4 1.18.0's. (1.18.1 and
/// 1.18.2 differ only where the cost of reusing an open table comes within
/// an end of block of a new one's: none of the golden inputs, but 3 MB of
/// text before a Go binary did, checked by [`same_as_oracles`] with
/// `FERRY_KP_FILES`.)
#[test]
fn releases_differ_where_they_should() {
    let plain = crate::zlib::sample();
    let sum = |pgzip: bool, byte: u8| {
        let out = ours(pgzip, byte, &plain);
        (out.len(), crc(&out))
    };
    for pgzip in [true, false] {
        assert_ne!(sum(pgzip, 4), sum(pgzip, 0x14), "pgzip {pgzip}");
        assert_ne!(sum(pgzip, 5), sum(pgzip, 0x35), "pgzip {pgzip}");
        assert_ne!(sum(pgzip, 0x14), sum(pgzip, 0x34), "pgzip {pgzip}");
    }
}

/// The helper of release `tag` in `FERRY_KP_ORACLES`, if there.
fn oracle(tag: &str) -> Option<PathBuf> {
    let p = Path::new(&std::env::var_os("FERRY_KP_ORACLES")?).join(format!("bin-v{tag}"));
    p.is_file().then_some(p)
}

/// The helper's raw deflate stream (pgzip's body without the gzip header
/// and trailer).
fn oracle_raw(exe: &Path, pgzip: bool, level: u8, input: &[u8]) -> Vec<u8> {
    let mode = if pgzip { "pgzip" } else { "flate" };
    let mut cmd = Command::new(exe);
    cmd.args([mode, &level.to_string()]);
    let mut s = crate::goflate::tests::piped(&mut cmd, input, "the oracle");
    if pgzip {
        assert_eq!(s[3], 0, "pgzip writes no optional header fields");
        s.truncate(s.len() - 8);
        s.drain(..10);
    }
    s
}

/// Whether a raw deflate stream inflates.
fn inflates(raw: &[u8]) -> bool {
    use std::io::Read;
    let mut d = flate2::read::DeflateDecoder::new(raw);
    std::io::copy(&mut d.by_ref(), &mut std::io::sink()).is_ok()
}

/// Byte for byte against the real releases (and 1.18.0 at levels other
/// than 4 against release 0, 1.19.1 against release 3), on the golden
/// inputs, goflate's and the files `FERRY_KP_FILES` names; with
/// `FERRY_KP_PRINT_GOLDEN` set, prints the golden table (golden inputs
/// only). A stream the oracle wrote that does not inflate (1.18.1's level
/// 9 of runs of one byte value, fixed by 1.18.2's #1115) is not compared:
/// no artifact holds one.
#[test]
fn same_as_oracles() {
    let (Some(o180), Some(o181), Some(o182)) =
        (oracle("1.18.0"), oracle("1.18.1"), oracle("1.18.2"))
    else {
        println!("skipped: FERRY_KP_ORACLES unset or without bin-v1.18.{{0,1,2}}");
        return;
    };
    let o191 = oracle("1.19.1");
    let o160 = oracle("1.16.0");
    // FERRY_KP_LEVELS="7-9" (say) compares only those levels.
    let levels = match std::env::var("FERRY_KP_LEVELS").ok().as_deref() {
        Some("1-6") => 1..=6u8,
        Some("7-9") => 7..=9u8,
        _ => 1..=9u8,
    };
    let print = std::env::var_os("FERRY_KP_PRINT_GOLDEN").is_some();
    let mut all: Vec<(String, Vec<u8>)> = golden_inputs()
        .into_iter()
        .map(|(n, v)| (n.to_string(), v))
        .collect();
    let golden = all.len();
    all.extend(crate::goflate::tests::inputs());
    // Files of the developer's choice (`:`-separated paths).
    if let Some(files) = std::env::var_os("FERRY_KP_FILES") {
        for f in std::env::split_paths(&files) {
            let data = std::fs::read(&f).expect("FERRY_KP_FILES names readable files");
            all.push((f.display().to_string(), data));
        }
    }
    let mut bad = Vec::new();
    let mut n = 0;
    let mut invalid = 0;
    for (i, (name, input)) in all.iter().enumerate() {
        if print && i >= golden {
            break;
        }
        for pgzip in [true, false] {
            let mut cases: Vec<(&Path, u8)> = Vec::new();
            for level in levels.clone() {
                cases.push((&o181, Release::V1_18_1.byte(level)));
                cases.push((&o182, Release::V1_18_2.byte(level)));
                let r = if level == 4 || level >= 7 {
                    Release::V1_18_0
                } else {
                    Release::V1_15
                };
                cases.push((&o180, r.byte(level)));
                if let Some(o) = &o191 {
                    cases.push((o, Release::V1_18_2.byte(level)));
                }
                if let Some(o) = &o160 {
                    // 1.16.0: 1.15.12 at levels 1 to 6, 1.18.0 at 7 to 9.
                    let r = if level >= 7 {
                        Release::V1_18_0
                    } else {
                        Release::V1_15
                    };
                    cases.push((o, r.byte(level)));
                }
            }
            for (exe, byte) in cases {
                let go = oracle_raw(exe, pgzip, byte & 15, input);
                n += 1;
                if !inflates(&go) {
                    // 1.18.1's level 9 of a one-byte-value input (#1115).
                    invalid += 1;
                    continue;
                }
                if go != ours(pgzip, byte, input) {
                    bad.push(format!(
                        "{name} pgzip {pgzip} {} {byte:#04x}",
                        exe.display()
                    ));
                }
                let pin = pinned().iter().any(|&(r, l)| r.byte(l) == byte);
                let extra = [&o191, &o160].iter().any(|o| o.as_deref() == Some(exe));
                if print && i < golden && pin && !extra {
                    println!(
                        "    ({name:?}, {pgzip}, {byte:#04x}, {}, {:#010x}),",
                        go.len(),
                        crc(&go)
                    );
                }
            }
        }
    }
    println!(
        "{n} streams compared, {invalid} the oracle wrote invalid (not compared), {} differ",
        bad.len()
    );
    assert!(bad.is_empty(), "differ from the oracles: {bad:#?}");
}

/// A pgzip member of a current release (1.18.2 on: default level 5, 1,
/// 9; 1.18.0's level 4) is found as encoder 5 with its release in the
/// level byte and rebuilds; a
/// version-5 search leaves it to others; an unknown release is refused.
#[test]
fn pgzip_member_of_1_18_is_found_and_rebuilds() {
    let plain = &golden_inputs()[11].1;
    for (byte, xfl) in [(0x35u8, 0u8), (0x31, 4), (0x14, 0), (0x39, 2)] {
        let gz = gzip_member(xfl, &ours(true, byte, plain), plain);
        let a = crate::analyze(&gz, &crate::Options::default());
        let params = a.recipe.zlib_params();
        assert_eq!(
            params,
            vec![ZlibParams {
                encoder: PGZIP_ENCODER,
                level: byte
            }],
            "level byte {byte:#04x}"
        );
        rebuilds_and_needs_version_6(&gz, &a, &[PGZIP_ENCODER]);
    }
}

#[test]
fn unknown_releases_and_levels_are_refused() {
    let plain = b"klauspost".repeat(100);
    for encoder in [PGZIP_ENCODER, KP_FLATE_ENCODER] {
        // Release 4 is unknown; no release has levels 0 or 10 to 15.
        for level in [0x45u8, 0x3a, 0x1f, 0x30, 0, 0xf5] {
            assert!(
                crate::zlib::answer(encoder, level, &plain).is_none(),
                "encoder {encoder} level byte {level:#04x}"
            );
            let mut out = Vec::new();
            let err = crate::zlib::rebuild(
                &ZlibParams { encoder, level },
                &mut &plain[..],
                100,
                &mut out,
            )
            .expect_err("refused");
            assert!(
                matches!(err, crate::zlib::ZlibError::BadLevel(l) if l == level),
                "{err}"
            );
        }
        assert!(crate::zlib::encoder_ok(encoder));
    }
}
