//! A differential campaign: Ferry's Go deflate encoder (encoder 3) against
//! the real Go (`compress/gzip` over `compress/flate`, the `go` on the
//! PATH builds the helper `recipe/tests/goflate/main.go` into a temporary
//! directory, no network), on the generated inputs `gnu_vs_gzip` uses, at
//! every level 1 to 9, for as long as asked. Every other input is handed to
//! Go's writer in pseudo-random pieces (1 to 100,000 bytes a `Write`)
//! instead of one `Write`, to check that the output does not depend on
//! them. Each gzip member is rebuilt by `rebuild` from a recipe naming
//! encoder 3 (header and trailer literal). Prints each input that differs
//! (its seed, shape, length, level and pieces) and a count at the end;
//! exits 1 if any differed.
//!
//!     cargo run --release -p ferry-recipe --example goflate_vs_go -- [SECONDS] [FIRST_SEED]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ferry_recipe::zlib::GO_FLATE_ENCODER;

#[path = "shared/inputs.rs"]
mod inputs;
use inputs::{input, piped, rebuilt_gzip};

/// Builds the Go helper into `dir`.
fn build_helper(dir: &Path) -> std::path::PathBuf {
    let exe = dir.join("goflate");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/goflate");
    let ok = Command::new("go")
        .args(["build", "-o"])
        .arg(&exe)
        .arg(".")
        .current_dir(src)
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .env("GOCACHE", dir.join("cache"))
        .status()
        .expect("go runs")
        .success();
    assert!(ok, "go build failed");
    exe
}

/// Go's gzip member of `plain` at `level`, written in `chunk` pieces (see
/// the helper).
fn go_gzip(exe: &Path, level: u8, chunk: i64, plain: &[u8]) -> Vec<u8> {
    piped(
        Command::new(exe).args(["-gzip".to_string(), level.to_string(), chunk.to_string()]),
        plain,
    )
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seconds: u64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(60);
    let mut seed: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1);
    let first = seed;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let exe = build_helper(dir.path());
    let end = Instant::now() + Duration::from_secs(seconds);
    let (mut inputs, mut bytes, mut differ) = (0u64, 0u64, 0u64);
    while Instant::now() < end {
        let (shape, plain) = input(seed);
        // One Write, or pseudo-random pieces seeded by the seed.
        let chunk = if seed.is_multiple_of(2) {
            0
        } else {
            -(seed as i64)
        };
        for level in 1..=9u8 {
            let gz = go_gzip(&exe, level, chunk, &plain);
            if rebuilt_gzip(GO_FLATE_ENCODER, level, &plain, &gz).as_deref() != Some(&gz[..]) {
                differ += 1;
                println!(
                    "DIFFERS: seed {seed} ({shape}, {} bytes) at level {level}, pieces {chunk}",
                    plain.len()
                );
            }
        }
        inputs += 1;
        bytes += plain.len() as u64;
        seed += 1;
    }
    println!(
        "seeds {first} to {}: {inputs} inputs ({:.1} MB), every level 1 to 9: {differ} differ; next seed {seed}",
        seed - 1,
        bytes as f64 / 1e6
    );
    std::process::exit(i32::from(differ > 0));
}
