//! Encoder 6 against the real zlib-ng, run by `tests/zlibng/oracle.py`:
//! 2.2.5 and 2.3.3 from the `zlib-ng` Python packages (1.0.0 and 1.1.0),
//! installed into a venv under a temp dir from the package registry pip is
//! configured with (or the venv named by `FERRY_ZLIBNG_225_VENV` /
//! `FERRY_ZLIBNG_233_VENV`); 2.2.2, which has no package, from a zlib-ng
//! `--zlib-compat` build named by `FERRY_ZLIBNG_222_LIB` (a directory with
//! its `libz.so.1`, loaded into Python's `zlib`). Without an oracle a test
//! prints `skipped: ...` and returns (the pillow wheel test in
//! `tests/zlib_ng.rs` pins 2.2.2 without one).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::{deflate_to, Feed, OutBuf, Version};

/// A way to run the oracle script: the python, and its library path.
struct Oracle {
    python: PathBuf,
    lib: Option<PathBuf>,
    _dir: Option<tempfile::TempDir>,
}

/// A venv with `zlib-ng==package` installed, or why not.
fn venv(env: &str, package: &str) -> Result<Oracle, String> {
    if let Some(dir) = std::env::var_os(env) {
        return Ok(Oracle {
            python: Path::new(&dir).join("bin/python"),
            lib: None,
            _dir: None,
        });
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(dir.path())
        .status();
    if !matches!(made, Ok(s) if s.success()) {
        return Err("python3 -m venv failed".into());
    }
    let python = dir.path().join("bin/python");
    let pip = Command::new(&python)
        .args(["-m", "pip", "install", "-q", "--only-binary", ":all:"])
        .arg(format!("zlib-ng=={package}"))
        .stdout(Stdio::null())
        .status();
    if !matches!(pip, Ok(s) if s.success()) {
        return Err(format!("pip install zlib-ng=={package} failed"));
    }
    Ok(Oracle {
        python,
        lib: None,
        _dir: Some(dir),
    })
}

/// The oracle of `version`, made once, or `None` (after printing why).
fn oracle(version: Version) -> Option<&'static Oracle> {
    static OR: [OnceLock<Result<Oracle, String>>; 3] = [const { OnceLock::new() }; 3];
    fn v222() -> Result<Oracle, String> {
        match std::env::var_os("FERRY_ZLIBNG_222_LIB") {
            Some(lib) => Ok(Oracle {
                python: "python3".into(),
                lib: Some(lib.into()),
                _dir: None,
            }),
            None => {
                Err("FERRY_ZLIBNG_222_LIB (a zlib-ng 2.2.2 --zlib-compat build) is not set".into())
            }
        }
    }
    fn v225() -> Result<Oracle, String> {
        venv("FERRY_ZLIBNG_225_VENV", "1.0.0")
    }
    fn v233() -> Result<Oracle, String> {
        venv("FERRY_ZLIBNG_233_VENV", "1.1.0")
    }
    let (i, got): (usize, fn() -> Result<Oracle, String>) = match version {
        Version::V2_2_2 => (0, v222),
        Version::V2_2_5 => (1, v225),
        Version::V2_3 => (2, v233),
    };
    match OR[i].get_or_init(got) {
        Ok(o) => Some(o),
        Err(why) => {
            println!("skipped: no zlib-ng {version:?} oracle: {why}");
            None
        }
    }
}

/// The oracle's streams of `inputs` for each (input index, level, feed).
fn run(o: &Oracle, inputs: &[Vec<u8>], jobs: &[(usize, u8, Feed)]) -> (String, Vec<Vec<u8>>) {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (i, data) in inputs.iter().enumerate() {
        let p = dir.path().join(format!("in{i}"));
        std::fs::write(&p, data).unwrap();
        files.push(p);
    }
    let feed_name = |f: Feed| match f {
        Feed::Whole => "whole",
        Feed::Pieces8K => "8k",
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/zlibng/oracle.py");
    let mut cmd = Command::new(&o.python);
    cmd.arg(script).arg(dir.path()).args(&files);
    if let Some(lib) = &o.lib {
        cmd.env("LD_LIBRARY_PATH", lib);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines: String = jobs
        .iter()
        .map(|&(i, level, feed)| format!("{i} {level} {}\n", feed_name(feed)))
        .collect();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), lines.as_bytes()).unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the oracle failed");
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let streams = jobs
        .iter()
        .map(|&(i, level, feed)| {
            std::fs::read(dir.path().join(format!("{i}-{level}-{}", feed_name(feed)))).unwrap()
        })
        .collect();
    (version, streams)
}

/// Ferry's stream.
fn ours(version: Version, level: u8, feed: Feed, plain: &[u8]) -> Vec<u8> {
    // The system python (3.10 on) runs 2.2.2; the zlib-ng package the others.
    let out_buf = match version {
        Version::V2_2_2 => OutBuf::CPythonBlocks,
        _ => OutBuf::Doubling16K,
    };
    let mut out = Vec::new();
    deflate_to(version, level, feed, out_buf, &mut &plain[..], |b| {
        out.extend_from_slice(b);
        Ok::<(), ()>(())
    })
    .unwrap();
    out
}

fn xorshift(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Varied inputs: text, random, repetitive, binary-like, tiny, sizes at
/// the window, block and piece limits.
pub(crate) fn inputs() -> Vec<Vec<u8>> {
    let sample = crate::zlib::sample();
    let mut v = vec![
        Vec::new(),
        b"a".to_vec(),
        b"abcabcabcabc".to_vec(),
        sample.clone(),
        xorshift(100_000, 7),
        vec![0u8; 300_000],
        b"ab".repeat(70_000),
    ];
    for n in [32_767, 32_768, 32_769, 65_535, 65_536, 65_537, 8_192, 8_193] {
        v.push(sample[..n].to_vec());
    }
    // Text with long repeats (matches of 258) and random spans between.
    let mut mixed = Vec::new();
    for i in 0..40u32 {
        mixed.extend_from_slice(&sample[(i as usize * 3001) % 200_000..][..5000]);
        mixed.extend_from_slice(&xorshift(700, i + 1));
        mixed.extend_from_slice(&vec![b'x'; (i as usize * 37) % 900]);
    }
    v.push(mixed);
    // Bytes with few symbols (a binary-like table).
    v.push(xorshift(200_000, 3).iter().map(|b| b & 0x0f).collect());
    // Two symbols: long chains that level 9's `longest_match_slow` walks
    // otherwise than `longest_match` (none of the above tells them apart).
    v.push(xorshift(200_000, 5).iter().map(|b| b & 1).collect());
    v
}

/// Compares every input at `levels`, whole and in 8 KiB pieces.
fn compare(version: Version, levels: &[u8]) {
    let Some(o) = oracle(version) else { return };
    let inputs = inputs();
    let mut jobs = Vec::new();
    for i in 0..inputs.len() {
        for &level in levels {
            for feed in [Feed::Whole, Feed::Pieces8K] {
                jobs.push((i, level, feed));
            }
        }
    }
    let (name, want) = run(o, &inputs, &jobs);
    println!("oracle: zlib-ng {name}");
    let mut bad = Vec::new();
    for (&(i, level, feed), want) in jobs.iter().zip(&want) {
        let got = ours(version, level, feed, &inputs[i]);
        if &got != want {
            let at = got.iter().zip(want).take_while(|(a, b)| a == b).count();
            bad.push(format!(
                "input {i} ({} B) level {level} {feed:?}: {} B vs {} B, first difference at {at}",
                inputs[i].len(),
                got.len(),
                want.len()
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "{} of {} differ:\n{}",
        bad.len(),
        jobs.len(),
        bad.join("\n")
    );
}

/// No registry has zlib-ng 2.2.2, so its oracle is a local build named by
/// `FERRY_ZLIBNG_222_LIB` (run with `--ignored`); CI checks 2.2.2 through
/// the known answers and pillow 11.1.0's wheel (tests/zlibng_wheel.rs).
#[test]
#[ignore = "needs a zlib-ng 2.2.2 build in FERRY_ZLIBNG_222_LIB"]
fn v2_2_2_matches_the_real_zlib_ng() {
    compare(Version::V2_2_2, &[1, 2, 3, 4, 5, 6, 7, 8, 9]);
}

#[test]
fn v2_2_5_matches_the_real_zlib_ng() {
    compare(Version::V2_2_5, &[1, 2, 3, 4, 5, 6, 7, 8, 9]);
}

#[test]
fn v2_3_matches_the_real_zlib_ng() {
    compare(Version::V2_3, &[1, 2, 3, 4, 5, 6, 7, 8, 9]);
}

/// Ferry's encoder gives the real zlib-ng's known answers on the sample
/// (a differing build refuses encoder 6), and no level 10.
#[test]
fn known_answers_hold() {
    assert!(
        crate::zlib::encoder_ok(super::ZLIB_NG_ENCODER),
        "zlib-ng's known answers differ"
    );
    assert!(super::decode(0x0a).is_none() && super::decode(0x86).is_none());
    assert_eq!(
        super::decode(0x16),
        Some((Version::V2_2_2, Feed::Pieces8K, OutBuf::CPythonBlocks, 6))
    );
}
