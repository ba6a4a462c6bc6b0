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

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const SHAPES: [&str; 6] = [
    "alphabet",
    "records",
    "runs",
    "binary",
    "edited text",
    "copies",
];

fn input(seed: u64) -> (&'static str, Vec<u8>) {
    let mut r = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let len = match r.below(4) {
        // Around the window's edges, or anything up to 2 MiB.
        0 => (65536 + r.below(1024)) as usize - 512,
        1 => (32768 * (1 + r.below(6)) + r.below(600)) as usize - 300,
        _ => r.below(2 << 20) as usize,
    };
    let shape = SHAPES[r.below(SHAPES.len() as u64) as usize];
    let mut out: Vec<u8> = Vec::with_capacity(len + 64);
    match shape {
        "alphabet" => {
            let k = 2 + r.below(6);
            while out.len() < len {
                out.push(b'a' + r.below(k) as u8);
            }
        }
        "records" => {
            let prefix = 3 + r.below(10) as usize;
            let heads: Vec<Vec<u8>> = (0..2 + r.below(8))
                .map(|_| (0..prefix).map(|_| b'A' + r.below(26) as u8).collect())
                .collect();
            while out.len() < len {
                let h = &heads[r.below(heads.len() as u64) as usize];
                out.extend_from_slice(h);
                for _ in 0..r.below(8) {
                    out.push(b'0' + r.below(10) as u8);
                }
            }
        }
        "runs" => {
            while out.len() < len {
                let b = r.below(4) as u8;
                let n = 1 + r.below(700) as usize;
                out.extend(std::iter::repeat_n(b, n));
                if r.below(3) == 0 {
                    out.push(r.next() as u8);
                }
            }
        }
        "binary" => {
            while out.len() < len {
                match r.below(4) {
                    0 => out.extend_from_slice(&(r.next() as u32 & 0xffff).to_le_bytes()),
                    1 => out.extend(std::iter::repeat_n(0u8, r.below(40) as usize)),
                    2 => out.extend_from_slice(&r.next().to_be_bytes()[..r.below(8) as usize]),
                    _ => out.push(r.next() as u8),
                }
            }
        }
        "edited text" => {
            let words: Vec<String> = (0..300).map(|i| format!("w{i}")).collect();
            while out.len() < len {
                out.extend_from_slice(words[r.below(words.len() as u64) as usize].as_bytes());
                out.push(if r.below(9) == 0 { b'\n' } else { b' ' });
            }
        }
        _ => {
            // Copies of earlier bytes at every distance, with noise between.
            while out.len() < len {
                if out.len() > 300 && r.below(2) == 0 {
                    let back = 1 + r.below(out.len().min(70_000) as u64) as usize;
                    let from = out.len() - back;
                    let n = (3 + r.below(300) as usize).min(back);
                    let copy = out[from..from + n].to_vec();
                    out.extend_from_slice(&copy);
                } else {
                    out.push(r.next() as u8);
                }
            }
        }
    }
    out.truncate(len);
    (shape, out)
}

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
