//! Encoder 3 against the real Go: a helper (`recipe/tests/goflate/main.go`)
//! is built with the `go` on the PATH into a temporary directory (no
//! network: `GOPROXY=off`) and its output compared byte for byte with this
//! module's. Without `go`, each such test prints `skipped: ...` and returns.

use flate2::Crc;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::*;

/// The built helper, or why not.
pub(crate) fn helper() -> Result<&'static Path, &'static str> {
    static HELPER: OnceLock<Result<(tempfile::TempDir, PathBuf), String>> = OnceLock::new();
    HELPER
        .get_or_init(|| {
            let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            let exe = dir.path().join("goflate");
            let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/goflate");
            let built = Command::new("go")
                .args(["build", "-o"])
                .arg(&exe)
                .arg(".")
                .current_dir(&src)
                .env("GOFLAGS", "-mod=mod")
                .env("GOPROXY", "off")
                .env("GOCACHE", dir.path().join("cache"))
                .status()
                .map_err(|e| format!("no go on the PATH ({e})"))?;
            // With a `go` that fails to build it, fail rather than skip.
            assert!(built.success(), "go build of the helper failed: {built}");
            Ok((dir, exe))
        })
        .as_ref()
        .map(|(_, exe)| exe.as_path())
        .map_err(String::as_str)
}

/// What Go's `flate.NewWriter(w, level)` writes for `input` handed over
/// `chunk` bytes per `Write` (0: one `Write`; negative: pseudo-random
/// sizes seeded by it), then `Close`.
pub(crate) fn go_deflate(exe: &Path, level: i32, chunk: i64, input: &[u8]) -> Vec<u8> {
    let mut cmd = Command::new(exe);
    cmd.arg(level.to_string()).arg(chunk.to_string());
    piped(&mut cmd, input, "the Go helper")
}

/// What `cmd` writes to stdout when fed `input` on stdin (written by a
/// thread, so that large inputs and outputs do not deadlock); it must
/// succeed. `what` names it in a failure. Shared by the encoders' oracle
/// tests.
pub(crate) fn piped(cmd: &mut Command, input: &[u8], what: &str) -> Vec<u8> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what} does not run: {e}"));
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("{what}'s output: {e}"));
    feeder
        .join()
        .expect("feeder")
        .unwrap_or_else(|e| panic!("{what} was not fed: {e}"));
    assert!(out.status.success(), "{what} failed");
    out.stdout
}

/// This module's output.
fn ours(level: u8, input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    deflate_to(level, &mut &input[..], |b| {
        out.extend_from_slice(b);
        Ok::<(), ()>(())
    })
    .unwrap();
    out
}

/// The Go level of one of ours.
fn go_level(level: u8) -> i32 {
    if level == HUFFMAN_ONLY {
        -2
    } else {
        i32::from(level)
    }
}

/// Compares one input at one level and chunking; describes a difference.
fn compare(exe: &Path, level: u8, chunk: i64, input: &[u8]) -> Result<(), String> {
    let want = go_deflate(exe, go_level(level), chunk, input);
    let got = ours(level, input);
    if want == got {
        return Ok(());
    }
    let at = want.iter().zip(&got).take_while(|(a, b)| a == b).count();
    Err(format!(
        "level {level}, chunk {chunk}, input {} bytes: Go made {} bytes, we {}, first difference at {at}",
        input.len(),
        want.len(),
        got.len()
    ))
}

pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Inputs of many shapes and lengths (named).
pub(crate) fn inputs() -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = Vec::new();
    let mut r = Rng(0x1234_5678_9abc_def1);
    v.push(("empty".into(), Vec::new()));
    v.push(("1 byte".into(), vec![b'x']));
    v.push(("tiny".into(), b"hello, hello, hello world\n".to_vec()));
    for n in [3usize, 4, 16, 17, 127, 128, 300] {
        v.push((format!("{n} zeros"), vec![0; n]));
        v.push((
            format!("{n} random"),
            (0..n).map(|_| r.next() as u8).collect(),
        ));
    }
    v.push(("run 1 MiB".into(), vec![b'a'; 1 << 20]));
    let random: Vec<u8> = (0..(1 << 20) + 12_345).map(|_| r.next() as u8).collect();
    v.push(("random 1 MiB+".into(), random.clone()));
    let sample = crate::zlib::sample();
    v.push(("sample".into(), sample.clone()));
    // Text with edits: copies of the sample's words with noise.
    let mut text = Vec::new();
    while text.len() < 3 << 20 {
        let at = (r.next() % (sample.len() as u64 - 5000)) as usize;
        let n = (r.next() % 5000) as usize;
        text.extend_from_slice(&sample[at..at + n]);
        for _ in 0..r.next() % 4 {
            text.push(r.next() as u8);
        }
    }
    v.push(("edited text 3 MiB".into(), text.clone()));
    // Binary with long matches far apart, and incompressible stretches
    // between (stored blocks next to Huffman blocks).
    let mut bin = Vec::new();
    while bin.len() < 2 << 20 {
        match r.next() % 3 {
            0 => {
                let at = (r.next() % (random.len() as u64 - 70_000)) as usize;
                bin.extend_from_slice(&random[at..at + (r.next() % 70_000) as usize]);
            }
            1 if bin.len() > 40_000 => {
                let back = 1 + (r.next() % 40_000) as usize;
                let from = bin.len() - back;
                let n = (r.next() % 600) as usize;
                for i in 0..n {
                    bin.push(bin[from + i]);
                }
            }
            _ => bin.extend(std::iter::repeat_n(
                (r.next() % 3) as u8,
                (r.next() % 300) as usize,
            )),
        }
    }
    v.push(("binary 2 MiB".into(), bin));
    // Exactly Go's buffer sizes, and one off.
    for n in [
        65_535usize,
        65_536,
        65_537,
        65_274,
        131_070,
        131_072,
        32_768,
    ] {
        v.push((format!("text {n}"), text[..n].to_vec()));
        v.push((format!("random {n}"), random[..n].to_vec()));
    }
    // Blocks ending by token count: 16,384 literals (random), then matches.
    v.push(("literal tokens".into(), random[..16_384 * 3 + 7].to_vec()));
    // Few symbols: one distance code, two literals.
    let mut two = Vec::new();
    while two.len() < 200_000 {
        two.extend_from_slice(if r.next().is_multiple_of(2) {
            b"ab"
        } else {
            b"ba"
        });
    }
    v.push(("two symbols".into(), two));
    v
}

#[test]
fn same_as_go() {
    let exe = match helper() {
        Ok(exe) => exe,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let mut failed = Vec::new();
    let (mut compared, mut bytes) = (0, 0);
    for (name, input) in inputs() {
        for level in [1, 2, 3, 4, 5, 6, 7, 8, 9, HUFFMAN_ONLY] {
            if let Err(e) = compare(exe, level, 0, &input) {
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

/// Go's output does not depend on how the input is split into `Write`s
/// (pieces of 1, 100, 4096, 32 KiB, 64 KiB bytes, and pseudo-random sizes).
#[test]
fn same_as_go_in_pieces() {
    let exe = match helper() {
        Ok(exe) => exe,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let all = inputs();
    let picked = [
        "sample",
        "edited text 3 MiB",
        "random 1 MiB+",
        "binary 2 MiB",
        "text 131072",
    ];
    let mut failed = Vec::new();
    let mut compared = 0;
    for (name, input) in all.iter().filter(|(n, _)| picked.contains(&n.as_str())) {
        let input = &input[..input.len().min(1 << 20)];
        for chunk in [1i64, 100, 4096, 32_768, 65_536, -7, -12_345] {
            for level in [1, 2, 3, 4, 5, 6, 7, 8, 9, HUFFMAN_ONLY] {
                let want = go_deflate(exe, go_level(level), chunk, input);
                compared += 1;
                if want != ours(level, input) {
                    failed.push(format!("{name}: level {level}, pieces {chunk}"));
                }
            }
        }
    }
    println!("{compared} streams written in pieces compared with Go's");
    for f in &failed {
        println!("{f}");
    }
    assert!(failed.is_empty(), "{} differences", failed.len());
}

/// The known answers are Go's (when `go` is here), and this encoder's.
#[test]
fn known_answers_hold() {
    let plain = crate::zlib::sample();
    match helper() {
        Ok(exe) => {
            for (level, len, crc) in KNOWN_ANSWERS {
                let go = go_deflate(exe, i32::from(level), 0, &plain);
                let mut sum = Crc::new();
                sum.update(&go);
                println!("Go: ({level}, {}, {:#010x}),", go.len(), sum.sum());
                assert_eq!((go.len() as u64, sum.sum()), (len, crc), "Go's answer");
            }
        }
        Err(why) => println!("skipped (Go's answers not checked): {why}"),
    }
    for (level, _, _) in KNOWN_ANSWERS {
        let (len, crc) = crate::zlib::answer(GO_FLATE_ENCODER, level, &plain).expect("deflates");
        println!("ours: ({level}, {len}, {crc:#010x}),");
    }
    assert!(
        crate::zlib::encoder_ok(GO_FLATE_ENCODER),
        "the encoder does not give Go's known answers"
    );
}

/// A driver to measure the encoder: deflates the file named by
/// `GO_BENCH_FILE` at `GO_BENCH_LEVEL` (6 unless given) and, with
/// `GO_BENCH_OUT`, writes the raw deflate stream there.
///
///     GO_BENCH_FILE=x cargo test --release -p ferry-recipe --lib goflate::tests::bench -- --ignored
#[test]
#[ignore = "a measuring driver, run by hand"]
fn bench() {
    let Ok(path) = std::env::var("GO_BENCH_FILE") else {
        return;
    };
    let level = std::env::var("GO_BENCH_LEVEL")
        .ok()
        .and_then(|l| l.parse().ok())
        .unwrap_or(6);
    let mut file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    let mut out = Vec::new();
    let t = std::time::Instant::now();
    deflate_to(level, &mut file, |b| {
        out.extend_from_slice(b);
        Ok::<(), ()>(())
    })
    .unwrap();
    println!("{} bytes deflated in {:?}", out.len(), t.elapsed());
    if let Ok(to) = std::env::var("GO_BENCH_OUT") {
        std::fs::write(to, &out).unwrap();
    }
}
