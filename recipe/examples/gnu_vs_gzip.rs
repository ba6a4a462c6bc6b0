//! A differential campaign: Ferry's GNU gzip encoder (encoder 2) against the
//! real `/bin/gzip`, on generated inputs of many shapes and lengths (small
//! alphabets, records with shared prefixes, runs, binary-like bytes, text
//! with edits, lengths around the 32 and 64 KiB window edges), at every
//! level, for as long as asked. Prints each input that differs (its seed,
//! shape, length and level) and a count at the end; exits 1 if any differed.
//!
//!     cargo run --release -p ferry-recipe --example gnu_vs_gzip -- [SECONDS] [FIRST_SEED]

use std::process::Command;
use std::time::{Duration, Instant};

use ferry_recipe::zlib::GNU_GZIP_ENCODER;

#[path = "shared/inputs.rs"]
mod inputs;
use inputs::{input, piped, rebuilt_gzip};

fn gzip(level: u8, plain: &[u8]) -> Vec<u8> {
    piped(
        Command::new("gzip").args([format!("-{level}"), "-n".into(), "-c".into()]),
        plain,
    )
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
            if rebuilt_gzip(GNU_GZIP_ENCODER, level, &plain, &gz).as_deref() != Some(&gz[..]) {
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
