//! Rebuild speed of encoder 6 (zlib-ng) against encoder 1 (zlib) on the
//! same files, per CPU second of the process (one thread): each file is
//! deflated whole by each (encoder, level byte) given, and the figures are
//! MB of plain bytes per CPU second.
//!
//!     cargo run --release -p ferry-recipe --example zlibng_speed -- FILE_OR_DIR...
//!
//! The default settings: zlib level 6, zlib-ng level 6 in profiles 0
//! (2.2.2, whole input) and 1 (2.2.2, 8 KiB calls), zlib levels 1 and 8
//! against zlib-ng's levels 1, 2 and 8. `ZLIBNG_SPEED=enc:level,...`
//! (level in hex for zlib-ng) picks others.

use std::path::PathBuf;
use std::time::Duration;

use ferry_recipe::zlib::{ZlibParams, ZLIB_ENCODER, ZLIB_NG_ENCODER};
use ferry_recipe::{rebuild, Recipe, Segment};

/// CPU time this process has used (clock ticks of 10 ms).
fn cpu_time() -> Duration {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 1..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
            Some(Duration::from_millis(ticks * 10))
        })
        .unwrap_or(Duration::ZERO)
}

/// The rebuild's output length (the declared length is too long on
/// purpose: the encoder runs to the end, then the rebuild says so).
fn deflate(encoder: u8, level: u8, plain: &[u8]) -> usize {
    let recipe = Recipe {
        segments: vec![Segment::Zlib {
            plain_len: plain.len() as u64,
            compressed_len: u64::MAX / 2,
            params: ZlibParams { encoder, level },
        }],
    };
    let mut out = Vec::new();
    let _ = rebuild(&recipe, plain, u64::MAX / 2, &mut out);
    out.len()
}

fn main() {
    let mut files: Vec<PathBuf> = Vec::new();
    for arg in std::env::args().skip(1) {
        let p = PathBuf::from(arg);
        if p.is_dir() {
            let mut v: Vec<_> = std::fs::read_dir(&p)
                .expect("a readable directory")
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            v.sort();
            files.extend(v);
        } else {
            files.push(p);
        }
    }
    let plains: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(f).expect("a readable file"))
        .collect();
    let total: usize = plains.iter().map(Vec::len).sum();
    let settings: Vec<(u8, u8)> = match std::env::var("ZLIBNG_SPEED") {
        Ok(s) => s
            .split(',')
            .filter_map(|p| {
                let (e, l) = p.split_once(':')?;
                let e: u8 = e.parse().ok()?;
                let l = if e == ZLIB_NG_ENCODER {
                    u8::from_str_radix(l, 16).ok()?
                } else {
                    l.parse().ok()?
                };
                Some((e, l))
            })
            .collect(),
        Err(_) => vec![
            (ZLIB_ENCODER, 6),
            (ZLIB_NG_ENCODER, 0x06),
            (ZLIB_NG_ENCODER, 0x16),
            (ZLIB_ENCODER, 1),
            (ZLIB_NG_ENCODER, 0x01),
            (ZLIB_NG_ENCODER, 0x02),
            (ZLIB_ENCODER, 8),
            (ZLIB_NG_ENCODER, 0x08),
        ],
    };
    // The first use of an encoder checks its known answers: timed apart.
    for encoder in 1..=7 {
        let start = cpu_time();
        deflate(encoder, 6, b"warm");
        let cpu = cpu_time().saturating_sub(start);
        println!(
            "encoder {encoder}: known answers (zlib-ng: level 6's) checked in {:.2} CPU s",
            cpu.as_secs_f64()
        );
    }
    println!("{} files, {:.1} MB", files.len(), total as f64 / 1e6);
    for (encoder, level) in settings {
        let start = cpu_time();
        let out: usize = plains.iter().map(|p| deflate(encoder, level, p)).sum();
        let cpu = cpu_time().saturating_sub(start);
        println!(
            "encoder {encoder} level {level:#04x}: {:6.1} MB/s per CPU second ({:.2} s), {out} bytes out",
            total as f64 / 1e6 / cpu.as_secs_f64().max(1e-9),
            cpu.as_secs_f64()
        );
    }
}
