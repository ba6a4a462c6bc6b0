//! Encoders 5 and 7 against the real Go: a helper
//! (`recipe/tests/kpflate/main.go`) is built in GOPATH mode against
//! Debian's `golang-github-klauspost-compress-dev` and
//! `golang-github-klauspost-pgzip-dev` (`/usr/share/gocode`, no network)
//! into a temporary directory, and its output compared byte for byte with
//! this module's. Without `go` or the packages, each such test prints
//! `skipped: ...` and returns.

use flate2::Crc;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::*;
use crate::goflate::tests::{inputs, Rng};

/// Where Debian puts Go sources.
const GOPATH: &str = "/usr/share/gocode";

/// The built helper, or why not.
pub(crate) fn helper() -> Result<&'static Path, &'static str> {
    static HELPER: OnceLock<Result<(tempfile::TempDir, PathBuf), String>> = OnceLock::new();
    HELPER
        .get_or_init(|| {
            for pkg in ["klauspost/compress/flate", "klauspost/pgzip"] {
                let dir = Path::new(GOPATH).join("src/github.com").join(pkg);
                if !dir.is_dir() {
                    return Err(format!(
                        "{} is missing (apt-get install golang-github-klauspost-compress-dev golang-github-klauspost-pgzip-dev)",
                        dir.display()
                    ));
                }
            }
            let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            let exe = dir.path().join("kpflate");
            let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kpflate");
            let built = Command::new("go")
                .args(["build", "-o"])
                .arg(&exe)
                .arg(".")
                .current_dir(&src)
                .env("GO111MODULE", "off")
                .env("GOPATH", GOPATH)
                .env("GOFLAGS", "")
                .env("GOPROXY", "off")
                .env("GOCACHE", dir.path().join("cache"))
                .status()
                .map_err(|e| format!("no go on the PATH ({e})"))?;
            // With a `go` and the packages that fail to build it, fail
            // rather than skip.
            assert!(built.success(), "go build of the helper failed: {built}");
            Ok((dir, exe))
        })
        .as_ref()
        .map(|(_, exe)| exe.as_path())
        .map_err(String::as_str)
}

/// What the helper writes for `input` in `mode` ("pgzip", "gzip" or
/// "flate") at `level`, handed over `chunk` bytes per `Write`.
pub(crate) fn go_output(exe: &Path, mode: &str, level: i32, chunk: i64, input: &[u8]) -> Vec<u8> {
    let mut cmd = Command::new(exe);
    cmd.args([mode, &level.to_string(), &chunk.to_string()]);
    crate::goflate::tests::piped(&mut cmd, input, "the Go helper")
}

/// The raw deflate of a gzip member the helper wrote (no name, no extra).
pub(crate) fn body(member: &[u8]) -> &[u8] {
    assert_eq!(member[3], 0, "no optional gzip fields");
    &member[10..member.len() - 8]
}

/// Go's raw deflate for `input`: pgzip's (`pgzip`) or one flate stream's.
fn go_raw(exe: &Path, pgzip: bool, level: u8, chunk: i64, input: &[u8]) -> Vec<u8> {
    if pgzip {
        body(&go_output(exe, "pgzip", i32::from(level), chunk, input)).to_vec()
    } else {
        go_output(exe, "flate", i32::from(level), chunk, input)
    }
}

/// This module's raw deflate.
fn ours(pgzip: bool, level: u8, input: &[u8], threads: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let sink = |b: &[u8]| {
        out.extend_from_slice(b);
        Ok::<(), ()>(())
    };
    if pgzip {
        pgzip_to(level, &mut &input[..], threads, sink).unwrap();
    } else {
        deflate_to(level, &mut &input[..], sink).unwrap();
    }
    out
}

/// Compares one input; describes a difference.
fn compare(exe: &Path, pgzip: bool, level: u8, input: &[u8]) -> Result<(), String> {
    let want = go_raw(exe, pgzip, level, 0, input);
    let got = ours(pgzip, level, input, 2);
    if want == got {
        return Ok(());
    }
    let at = want.iter().zip(&got).take_while(|(a, b)| a == b).count();
    Err(format!(
        "{} level {level}, input {} bytes: Go made {} bytes, we {}, first difference at {at}",
        if pgzip { "pgzip" } else { "flate" },
        input.len(),
        want.len(),
        got.len()
    ))
}

/// goflate's inputs, and some around pgzip's block boundaries.
fn all_inputs() -> Vec<(String, Vec<u8>)> {
    let mut v = inputs();
    let text = v
        .iter()
        .find(|(n, _)| n == "edited text 3 MiB")
        .map(|(_, t)| t.clone())
        .expect("goflate's inputs have text");
    let mut r = Rng(0x0bad_cafe_1234_5678);
    for n in [
        PGZIP_BLOCK - 1,
        PGZIP_BLOCK,
        PGZIP_BLOCK + 1,
        PGZIP_BLOCK + TAIL,
        PGZIP_BLOCK + TAIL + 1,
        2 * PGZIP_BLOCK,
    ] {
        v.push((format!("text {n}"), text[..n].to_vec()));
    }
    // Five MiB: text, a run, random bytes, text again (matches across
    // blocks through the 16 KiB dictionary).
    let mut mix = text.clone();
    mix.extend(std::iter::repeat_n(b'z', 700_000));
    mix.extend((0..900_000).map(|_| r.next() as u8));
    mix.extend_from_slice(&text[..700_000]);
    v.push(("mix 5.4 MiB".into(), mix));
    v
}

fn run(pgzip: bool, levels: &[u8]) {
    let exe = match helper() {
        Ok(exe) => exe,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let mut failed = Vec::new();
    let (mut compared, mut bytes) = (0, 0);
    for (name, input) in all_inputs() {
        for &level in levels {
            if let Err(e) = compare(exe, pgzip, level, &input) {
                failed.push(format!("{name}: {e}"));
            }
            compared += 1;
            bytes += input.len();
        }
    }
    println!("{compared} streams ({bytes} plain bytes) compared with Go's");
    for f in &failed {
        println!("{f}");
    }
    assert!(failed.is_empty(), "{} differences", failed.len());
}

#[test]
fn pgzip_same_as_go_default_fast_best() {
    run(true, &[5, 1, 9]);
}

#[test]
fn pgzip_same_as_go_other_levels() {
    run(true, &[2, 3, 4, 6, 7, 8]);
}

#[test]
fn flate_same_as_go() {
    run(false, &[1, 2, 3, 4, 5, 6, 7, 8, 9]);
}

/// Go's default level is level 5, and the output does not depend on how
/// the input is split into `Write`s.
#[test]
fn same_as_go_default_and_in_pieces() {
    let exe = match helper() {
        Ok(exe) => exe,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let all = all_inputs();
    let input = &all.iter().find(|(n, _)| n == "mix 5.4 MiB").expect("mix").1;
    let default = body(&go_output(exe, "pgzip", -1, 0, input)).to_vec();
    assert_eq!(
        default,
        ours(true, 5, input, 1),
        "pgzip's default is level 5"
    );
    for chunk in [1i64, 4096, 65_536, -7] {
        for level in [1u8, 5, 9] {
            for pgzip in [true, false] {
                let piece = &input[..input.len().min(if chunk == 1 { 1 << 19 } else { 3 << 20 })];
                let want = go_raw(exe, pgzip, level, chunk, piece);
                assert!(
                    want == ours(pgzip, level, piece, 1),
                    "pgzip {pgzip}, level {level}, pieces {chunk}"
                );
            }
        }
    }
}

/// klauspost's gzip writes a member whose body is one flate stream.
#[test]
fn klauspost_gzip_is_one_flate_stream() {
    let exe = match helper() {
        Ok(exe) => exe,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let input = crate::zlib::sample();
    for level in [1u8, 5, 6, 9] {
        let member = go_output(exe, "gzip", i32::from(level), 0, &input);
        assert_eq!(
            body(&member),
            ours(false, level, &input, 1),
            "level {level}"
        );
    }
}

/// The known answers are Go's (when the helper builds), and this encoder's.
#[test]
fn known_answers_hold() {
    let plain = crate::zlib::sample();
    for (pgzip, answers, encoder) in [
        (true, &PGZIP_KNOWN_ANSWERS[..], PGZIP_ENCODER),
        (false, &KP_FLATE_KNOWN_ANSWERS[..], KP_FLATE_ENCODER),
    ] {
        match helper() {
            Ok(exe) => {
                for level in 1..=9u8 {
                    let go = go_raw(exe, pgzip, level, 0, &plain);
                    let mut sum = Crc::new();
                    sum.update(&go);
                    println!(
                        "Go {encoder}: ({level}, {}, {:#010x}),",
                        go.len(),
                        sum.sum()
                    );
                    if let Some(&(_, len, crc)) = answers.iter().find(|a| a.0 == level) {
                        assert_eq!((go.len() as u64, sum.sum()), (len, crc), "Go's answer");
                    }
                }
            }
            Err(why) => println!("skipped (Go's answers not checked): {why}"),
        }
        for level in 1..=9u8 {
            let (len, crc) = crate::zlib::answer(encoder, level, &plain).expect("deflates");
            println!("ours {encoder}: ({level}, {len}, {crc:#010x}),");
        }
        assert!(!answers.is_empty(), "encoder {encoder} has known answers");
        assert!(
            crate::zlib::encoder_ok(encoder),
            "encoder {encoder} does not give Go's known answers"
        );
    }
}
