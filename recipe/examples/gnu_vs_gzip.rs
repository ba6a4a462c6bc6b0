//! A differential campaign: Ferry's GNU gzip encoder (encoder 2) against the
//! real `/bin/gzip`, on generated inputs of many shapes and lengths (small
//! alphabets, records with shared prefixes, runs, binary-like bytes, text
//! with edits, lengths around the 32 and 64 KiB window edges), at every
//! level, for as long as asked. Prints each input that differs (its seed,
//! shape, length and level) and a count at the end; exits 1 if any differed.
//!
//!     cargo run --release -p ferry-recipe --example gnu_vs_gzip -- [SECONDS] [FIRST_SEED]

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferry_recipe::zlib::{ZlibParams, GNU_GZIP_ENCODER};

use ferry_recipe::{rebuild, Recipe, Segment};

#[path = "shared/inputs.rs"]
mod inputs;
use inputs::input;

fn gzip(level: u8, plain: &[u8]) -> Vec<u8> {
    let mut child = Command::new("gzip")
        .args([format!("-{level}"), "-n".into(), "-c".into()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("gzip runs");
    let mut stdin = child.stdin.take().expect("stdin");
    let data = plain.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&data).is_ok());
    let out = child.wait_with_output().expect("gzip ends");
    assert!(feeder.join().unwrap_or(false) && out.status.success());
    out.stdout
}

fn ours(level: u8, plain: &[u8], gz: &[u8]) -> Option<Vec<u8>> {
    let recipe = Recipe {
        segments: vec![
            Segment::Literal { len: 10 },
            Segment::Zlib {
                plain_len: plain.len() as u64,
                compressed_len: (gz.len() - 18) as u64,
                params: ZlibParams {
                    encoder: GNU_GZIP_ENCODER,
                    level,
                },
            },
            Segment::Literal { len: 8 },
        ],
    };
    let mut expanded = gz[..10].to_vec();
    expanded.extend_from_slice(plain);
    expanded.extend_from_slice(&gz[gz.len() - 8..]);
    let mut out = Vec::new();
    rebuild(&recipe, &expanded, gz.len() as u64, &mut out).ok()?;
    Some(out)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seconds: u64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(60);
    let mut seed: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1);
    let end = Instant::now() + Duration::from_secs(seconds);
    let (mut inputs, mut bytes, mut differ) = (0u64, 0u64, 0u64);
    while Instant::now() < end {
        let (shape, plain) = input(seed);
        for level in 1..=9u8 {
            let gz = gzip(level, &plain);
            if ours(level, &plain, &gz).as_deref() != Some(&gz[..]) {
                differ += 1;
                println!(
                    "DIFFERS: seed {seed} ({shape}, {} bytes) at -{level}",
                    plain.len()
                );
            }
        }
        inputs += 1;
        bytes += plain.len() as u64;
        seed += 1;
    }
    println!(
        "{inputs} inputs ({:.1} MB), every level: {differ} differ; next seed {seed}",
        bytes as f64 / 1e6
    );
    std::process::exit(i32::from(differ > 0));
}
