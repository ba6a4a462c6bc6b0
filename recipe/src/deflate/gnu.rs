//! The encoder's GNU gzip flavour, whose output is GNU gzip's byte for byte:
//! encoder 2 of [`Segment::Zlib`](crate::Segment::Zlib).
//!
//! GNU gzip (`gzip -1` to `-9`, so `tar | gzip` layers, `helm package` charts
//! made with it, Debian's `.gz` files) does not deflate like zlib, although
//! both come from the same code: gzip cuts blocks at 32 Ki symbols (zlib at
//! 16 Ki), guesses every 4096 symbols whether to end a block early, hashes
//! with 15 bits, and slides a 64 KiB window. No zlib level reproduces its
//! streams. The encoder ([`super`]) rewrites that algorithm in Rust (gzip 1.6
//! to 1.13 give the same output; `--rsyncable` is not modelled): its matcher
//! finds the matches as gzip's `deflate.c` does, its trees encode blocks as
//! gzip's `trees.c` does. Only the raw deflate stream is made; the gzip
//! header and trailer are literal bytes of the recipe. Here: its known
//! answers.
//!
//! Like encoder 1, it is checked against known answers (made by the real
//! `/bin/gzip`) before it analyses or rebuilds anything (`zlib::encoder_ok`).

/// The encoder id of GNU gzip's deflate in [`crate::zlib::ZlibParams`].
pub const GNU_GZIP_ENCODER: u8 = 2;

/// (level, deflated length, CRC-32 of the deflated bytes) of
/// [`crate::zlib::sample`] as GNU gzip 1.12 deflates it (`gzip -N -n`, its
/// 10-byte header and 8-byte trailer removed).
pub(crate) const KNOWN_ANSWERS: [(u8, u64, u32); 4] = [
    (1, 62_156, 0x448e_6537),
    (3, 54_640, 0x86d9_dff7),
    (6, 49_064, 0xeb6d_9783),
    (9, 46_578, 0x1647_bc64),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deflate::{deflate_to, Flavour};

    /// Prints this encoder's answers on the sample (to compare with gzip's).
    #[test]
    fn known_answers_hold() {
        let plain = crate::zlib::sample();
        for (level, _, _) in KNOWN_ANSWERS {
            let (len, crc) =
                crate::zlib::answer(GNU_GZIP_ENCODER, level, &plain).expect("deflates");
            println!("({level}, {len}, {crc:#010x}),");
        }
        assert!(
            crate::zlib::encoder_ok(GNU_GZIP_ENCODER),
            "the encoder does not give gzip's known answers"
        );
    }

    /// A driver to measure the encoder (callgrind, perf): deflates the file
    /// named by `GNU_BENCH_FILE` at `GNU_BENCH_LEVEL` (6 unless given) and,
    /// with `GNU_BENCH_OUT`, writes the raw deflate stream there.
    ///
    ///     GNU_BENCH_FILE=x cargo test --release -p ferry-recipe --lib deflate::gnu::tests::bench -- --ignored
    #[test]
    #[ignore = "a measuring driver, run by hand"]
    fn bench() {
        let Ok(path) = std::env::var("GNU_BENCH_FILE") else {
            return;
        };
        let level = std::env::var("GNU_BENCH_LEVEL")
            .ok()
            .and_then(|l| l.parse().ok())
            .unwrap_or(6);
        let mut file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
        let mut out = Vec::new();
        deflate_to(Flavour::Gnu, level, &mut file, |b| {
            out.extend_from_slice(b);
            Ok::<(), ()>(())
        })
        .unwrap();
        println!("{} bytes deflated", out.len());
        if let Ok(to) = std::env::var("GNU_BENCH_OUT") {
            std::fs::write(to, &out).unwrap();
        }
    }
}
