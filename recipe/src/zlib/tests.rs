use super::*;
use flate2::{Compress, Compression, FlushCompress, Status};

/// Plain bytes given to the C zlib at a time (the Rust encoder's zlib
/// flavour reads its input as if so handed it).
const STEP: usize = crate::deflate::STEP;

/// Deflates what `plain` reads with the C zlib linked in (raw, level
/// `level`), handing each piece of output to `sink` as it comes; stops at the
/// sink's first error. The input is read `STEP` bytes at a time and given to
/// zlib without a flush, the last (shorter) piece with `Z_FINISH`: the Rust
/// encoder's zlib flavour reads its input just so.
pub(crate) fn c_zlib_deflate_to<E>(
    level: u8,
    plain: &mut dyn Read,
    mut sink: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), Result<E, String>> {
    let mut c = Compress::new(Compression::new(u32::from(level)), false);
    let mut buf = vec![0u8; STEP + 1024];
    let mut input = vec![0u8; STEP];
    loop {
        let n = read_full(plain, &mut input).map_err(|e| Err(e.to_string()))?;
        // A short read is the end of the input.
        let flush = if n < STEP {
            FlushCompress::Finish
        } else {
            FlushCompress::None
        };
        let mut at = 0usize;
        loop {
            let (in0, out0) = (c.total_in(), c.total_out());
            let status = c
                .compress(&input[at..n], &mut buf, flush)
                .map_err(|e| Err(e.to_string()))?;
            let used = (c.total_in() - in0) as usize;
            let made = (c.total_out() - out0) as usize;
            at += used;
            sink(&buf[..made]).map_err(Ok)?;
            if status == Status::StreamEnd {
                return Ok(());
            }
            if flush == FlushCompress::None && at == n && made < buf.len() {
                break;
            }
            if used == 0 && made == 0 {
                return Err(Err("zlib made no progress".into()));
            }
        }
    }
}

/// `plain` deflated at `level` by the C zlib linked in (the oracle).
fn c_zlib(level: u8, plain: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    c_zlib_deflate_to(level, &mut &plain[..], |b| {
        out.extend_from_slice(b);
        Ok::<(), ()>(())
    })
    .unwrap();
    out
}

/// `plain` deflated at `level` by encoder 1 (the Rust encoder's zlib
/// flavour).
fn ours(level: u8, plain: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let params = ZlibParams {
        encoder: ZLIB_ENCODER,
        level,
    };
    encode_to(params, &mut &plain[..], |b| {
        out.extend_from_slice(b);
        Ok::<(), ()>(())
    })
    .unwrap();
    out
}

/// The known answers are the C zlib's, and encoder 1 gives them.
#[test]
fn known_answers_hold() {
    let plain = sample();
    for level in 1..=9 {
        let out = c_zlib(level, &plain);
        let mut sum = Crc::new();
        sum.update(&out);
        println!("({level}, {}, {:#010x}),", out.len(), sum.sum());
    }
    for (level, len, crc) in KNOWN_ANSWERS {
        let out = c_zlib(level, &plain);
        let mut sum = Crc::new();
        sum.update(&out);
        assert_eq!(
            (out.len() as u64, sum.sum()),
            (len, crc),
            "C zlib, level {level}"
        );
    }
    assert!(
        encoder_ok(ZLIB_ENCODER),
        "encoder 1 does not give its known answers"
    );
}

/// A xorshift generator for the inputs below.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Inputs of the shapes where the two encoders could part: search
/// limits (small alphabets: long chains; records with shared prefixes
/// of every length: the lazy and nice limits), runs, matches at the
/// TOO_FAR edge, tiny and empty inputs, lengths at and around multiples
/// of the block and input step sizes, incompressible data, text.
fn inputs() -> Vec<(String, Vec<u8>)> {
    let mut r = Rng(0x2545_f491_4f6c_dd1d);
    let mut v: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), Vec::new()),
        ("one byte".into(), b"x".to_vec()),
        ("two bytes".into(), b"xy".to_vec()),
        ("three bytes".into(), b"xyz".to_vec()),
        ("a repeat of 3".into(), b"abcabc".to_vec()),
        ("a repeat of 4".into(), b"abcdabcdab".to_vec()),
    ];
    for alphabet in [2u64, 3, 4, 16] {
        let plain = (0..200_000).map(|_| b'a' + (r.next() % alphabet) as u8);
        v.push((format!("alphabet of {alphabet}"), plain.collect()));
    }
    for prefix in [3usize, 4, 5, 6, 7, 8, 9, 12, 40] {
        let heads: Vec<Vec<u8>> = (0..7)
            .map(|_| (0..prefix).map(|_| b'A' + (r.next() % 26) as u8).collect())
            .collect();
        let mut plain: Vec<u8> = Vec::new();
        while plain.len() < 150_000 {
            let x = r.next();
            if x.is_multiple_of(5) && plain.len() > 5000 {
                let from = (r.next() as usize) % (plain.len() - 4000);
                let len = 3 + (r.next() as usize) % 300;
                let copy = plain[from..from + len].to_vec();
                plain.extend_from_slice(&copy);
            } else {
                plain.extend_from_slice(&heads[(x >> 8) as usize % heads.len()]);
                for _ in 0..(x >> 16) % 6 {
                    plain.push(b'0' + (r.next() % 10) as u8);
                }
            }
        }
        v.push((format!("records with {prefix}-byte prefixes"), plain));
    }
    let mut runs = Vec::new();
    for len in 1..600usize {
        runs.extend(std::iter::repeat_n(b'a' + (len % 7) as u8, len));
        runs.extend_from_slice(&(r.next() as u32).to_le_bytes());
    }
    v.push(("runs".into(), runs));
    let mut far = Vec::new();
    while far.len() < 200_000 {
        far.extend_from_slice(b"xyz");
        let gap = 4090 + (r.next() % 12) as usize;
        far.extend((0..gap).map(|_| r.next() as u8));
    }
    v.push(("3-byte matches around 4 KiB back".into(), far));
    let noise: Vec<u8> = (0..300_000).map(|_| (r.next() >> 24) as u8).collect();
    v.push(("incompressible".into(), noise.clone()));
    let text = sample();
    // Lengths at the input step (64 KiB) and window edges, and past
    // them: the end of the input where the look-ahead runs short.
    for len in [
        258,
        259,
        262,
        263,
        4096,
        32 << 10,
        (32 << 10) + 1,
        (64 << 10) - 262,
        (64 << 10) - 1,
        64 << 10,
        (64 << 10) + 1,
        (64 << 10) + 3,
        (96 << 10) - 261,
        128 << 10,
        (128 << 10) + 2,
        192 << 10,
    ] {
        v.push((format!("text of {len}"), text[..len].to_vec()));
        v.push((format!("noise of {len}"), noise[..len].to_vec()));
        v.push((format!("zeros of {len}"), vec![0; len]));
    }
    // Mostly single symbols: blocks end at the symbol count, not the
    // window (16 383 literals, then matches of 258).
    let mut blocky = noise[..16_383].to_vec();
    blocky.extend(std::iter::repeat_n(7u8, 258 * 16_383 / 4));
    blocky.extend_from_slice(&noise[..20_000]);
    v.push(("a block of literals, then runs".into(), blocky));
    // Zeros to the end of the first 64 KiB step, then bytes seen before.
    for start in [65_000usize, 65_274, 65_275, 65_280, 65_535] {
        let mut z = noise[..start].to_vec();
        z.resize(64 << 10, 0);
        z.extend_from_slice(&noise[100..400]);
        z.extend(std::iter::repeat_n(0u8, 9));
        z.extend_from_slice(&noise[100..200]);
        z.extend_from_slice(&text[..3000]);
        v.push((format!("zeros from {start} to the step's end"), z));
    }
    let mut long = Vec::new();
    while long.len() < 3 << 20 {
        let x = r.next();
        let at = (x as usize) % (text.len() - 600);
        long.extend_from_slice(&text[at..at + 50 + (x >> 40) as usize % 500]);
        long.extend((0..(x >> 50) % 40).map(|_| r.next() as u8));
    }
    v.push(("3 MiB of edited text".into(), long));
    v
}

/// Encoder 1 (Rust) deflates as the C zlib at every level.
#[test]
fn same_as_c_zlib_at_every_level() {
    let mut differ = Vec::new();
    for (name, plain) in inputs() {
        for level in 1..=9u8 {
            let want = c_zlib(level, &plain);
            let got = ours(level, &plain);
            if got != want {
                let at = got.iter().zip(&want).take_while(|(a, b)| a == b).count();
                differ.push(format!(
                    "{name} ({} bytes) at level {level}: {} bytes, zlib's {}, first difference at {at}",
                    plain.len(),
                    got.len(),
                    want.len()
                ));
            }
        }
    }
    assert!(differ.is_empty(), "{}", differ.join("\n"));
}

/// The levels of `ZLIB_LEVELS` (1,6,9 unless given), for the drivers below.
fn levels_asked() -> Vec<u8> {
    std::env::var("ZLIB_LEVELS")
        .unwrap_or_else(|_| "1,6,9".into())
        .split(',')
        .map(|l| {
            l.parse()
                .expect("ZLIB_LEVELS: levels 1 to 9, comma-separated")
        })
        .collect()
}

/// A driver to compare encoder 1 with the C zlib on real files, or to
/// time one of them: every file of `ZLIB_COMPARE` (a file, or a
/// directory's files) at each level of `ZLIB_LEVELS` (1,6,9 unless
/// given); with `ZLIB_ONLY=c` or `rust`, only that encoder runs.
///
///     ZLIB_COMPARE=x cargo test --release -p ferry-recipe --lib zlib::tests::compare_files -- --ignored --nocapture
#[test]
#[ignore = "a comparing and measuring driver, run by hand"]
fn compare_files() {
    let Ok(path) = std::env::var("ZLIB_COMPARE") else {
        return;
    };
    let levels = levels_asked();
    let only = std::env::var("ZLIB_ONLY").ok();
    let path = std::path::Path::new(&path);
    let mut files: Vec<_> = if path.is_dir() {
        std::fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    } else {
        vec![path.to_path_buf()]
    };
    files.sort();
    let plains: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    let total: usize = plains.iter().map(Vec::len).sum();
    for level in levels {
        let (mut c_time, mut rust_time) = (0f64, 0f64);
        let (mut differ, mut out_len) = (0usize, 0usize);
        for (file, plain) in files.iter().zip(&plains) {
            let mut want = None;
            if only.as_deref() != Some("rust") {
                let t = std::time::Instant::now();
                want = Some(c_zlib(level, plain));
                c_time += t.elapsed().as_secs_f64();
            }
            if only.as_deref() != Some("c") {
                let t = std::time::Instant::now();
                let got = ours(level, plain);
                rust_time += t.elapsed().as_secs_f64();
                out_len += got.len();
                if want.as_ref().is_some_and(|w| *w != got) {
                    differ += 1;
                    println!("DIFFERS: {} at level {level}", file.display());
                }
            }
        }
        println!(
            "level {level}: {} files, {total} bytes -> {out_len}; C zlib {c_time:.2} s, Rust {rust_time:.2} s; {differ} differ",
            files.len()
        );
    }
}

/// A driver counting the real streams each encoder reproduces: every
/// `N.raw` (a raw deflate stream, e.g. a wheel's member) with its
/// `N.plain` in the directory `ZLIB_STREAMS`, at each level of
/// `ZLIB_LEVELS` (1,6,9 unless given), by the C zlib and by encoder 1.
///
///     ZLIB_STREAMS=dir cargo test --release -p ferry-recipe --lib zlib::tests::real_streams -- --ignored --nocapture
#[test]
#[ignore = "a comparing driver, run by hand"]
fn real_streams() {
    let Ok(dir) = std::env::var("ZLIB_STREAMS") else {
        return;
    };
    let levels = levels_asked();
    let mut raws: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "raw"))
        .collect();
    raws.sort();
    let streams: Vec<(Vec<u8>, Vec<u8>)> = raws
        .iter()
        .map(|r| {
            let plain = std::fs::read(r.with_extension("plain")).unwrap();
            (std::fs::read(r).unwrap(), plain)
        })
        .collect();
    for level in levels {
        let (mut by_c, mut by_rust, mut disagree) = (0, 0, 0);
        for (raw, plain) in &streams {
            let c = c_zlib(level, plain) == *raw;
            let rust = ours(level, plain) == *raw;
            by_c += usize::from(c);
            by_rust += usize::from(rust);
            disagree += usize::from(c != rust);
        }
        println!(
            "level {level}: of {} streams, C zlib reproduces {by_c}, encoder 1 {by_rust}; {disagree} disagree",
            streams.len()
        );
    }
}
