//! A differential campaign: Ferry's zlib encoder (encoder 1, the Rust
//! deflate's zlib flavour) against the C zlib linked in (libz-sys, raw
//! deflate, memLevel 8, default strategy, handed 64 KiB at a time as the
//! recipe crate handed it), on generated inputs of many shapes and lengths
//! (`shared/inputs.rs`), at every level, for as long as asked. Prints each
//! input that differs (its seed, shape, length and level) and a count at the
//! end; exits 1 if any differed.
//!
//!     cargo run --release -p ferry-recipe --example zlib_vs_c -- [SECONDS] [FIRST_SEED]

use std::time::{Duration, Instant};

use ferry_recipe::zlib::{ZlibParams, ZLIB_ENCODER};
use ferry_recipe::{rebuild, Recipe, Segment};
use flate2::{Compress, Compression, FlushCompress, Status};

#[path = "shared/inputs.rs"]
mod inputs;
use inputs::input;

/// The C zlib's raw deflate of `plain` at `level`, handed 64 KiB at a time
/// without a flush, the last (shorter, maybe empty) piece with `Z_FINISH`.
fn c_zlib(level: u8, plain: &[u8]) -> Vec<u8> {
    const STEP: usize = 64 << 10;
    let mut c = Compress::new(Compression::new(u32::from(level)), false);
    let mut out = Vec::with_capacity(plain.len() / 2 + 1024);
    let mut at = 0;
    loop {
        let end = (at + STEP).min(plain.len());
        let flush = if end - at < STEP {
            FlushCompress::Finish
        } else {
            FlushCompress::None
        };
        loop {
            out.reserve(STEP);
            let before = c.total_in();
            let status = c
                .compress_vec(&plain[at..end], &mut out, flush)
                .expect("zlib deflates");
            at += (c.total_in() - before) as usize;
            if status == Status::StreamEnd {
                return out;
            }
            if flush == FlushCompress::None && at == end && out.len() < out.capacity() {
                break;
            }
        }
    }
}

/// Encoder 1's rebuild of `plain`, declared `compressed_len` long.
fn ours(level: u8, plain: &[u8], compressed_len: usize) -> Option<Vec<u8>> {
    let recipe = Recipe {
        segments: vec![Segment::Zlib {
            plain_len: plain.len() as u64,
            compressed_len: compressed_len as u64,
            params: ZlibParams {
                encoder: ZLIB_ENCODER,
                level,
            },
        }],
    };
    let mut out = Vec::new();
    rebuild(&recipe, plain, compressed_len as u64, &mut out).ok()?;
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
            let want = c_zlib(level, &plain);
            if ours(level, &plain, want.len()).as_deref() != Some(&want[..]) {
                differ += 1;
                println!(
                    "DIFFERS: seed {seed} ({shape}, {} bytes) at level {level}",
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
