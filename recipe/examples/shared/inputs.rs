//! The differential campaigns' inputs (`gnu_vs_gzip`, `zlib_vs_c`,
//! `goflate_vs_go`), and their helpers: one
//! per seed, of many shapes and lengths (small alphabets, records with
//! shared prefixes, runs, binary-like bytes, text with edits, copies at
//! every distance; lengths around the 32 and 64 KiB window and input-step
//! edges, or anything up to 2 MiB).
// Each campaign uses some of these.
#![allow(dead_code)]

pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

pub const SHAPES: [&str; 6] = [
    "alphabet",
    "records",
    "runs",
    "binary",
    "edited text",
    "copies",
];

pub fn input(seed: u64) -> (&'static str, Vec<u8>) {
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

/// What `cmd` writes on its standard output for `plain` on its standard
/// input (fed from a thread, so that neither side waits for the other).
pub fn piped(cmd: &mut std::process::Command, plain: &[u8]) -> Vec<u8> {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the tool runs");
    let mut stdin = child.stdin.take().expect("stdin");
    let data = plain.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&data).is_ok());
    let out = child.wait_with_output().expect("the tool ends");
    assert!(feeder.join().unwrap_or(false) && out.status.success());
    out.stdout
}

/// The gzip member `gz` (a 10-byte header, no name) rebuilt from `plain` by
/// `encoder` at `level` through a recipe, as the inside rebuilds it.
pub fn rebuilt_gzip(encoder: u8, level: u8, plain: &[u8], gz: &[u8]) -> Option<Vec<u8>> {
    use ferry_recipe::zlib::ZlibParams;
    use ferry_recipe::{rebuild, Recipe, Segment};
    let recipe = Recipe {
        segments: vec![
            Segment::Literal { len: 10 },
            Segment::Zlib {
                plain_len: plain.len() as u64,
                compressed_len: (gz.len() - 18) as u64,
                params: ZlibParams { encoder, level },
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
