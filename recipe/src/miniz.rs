//! Encoder 4 of [`Segment::Zlib`](crate::Segment::Zlib): miniz_oxide's
//! deflate, which Rust programs that write zips or gzip through flate2's
//! default backend use. Python wheels of Rust extensions are such zips:
//! maturin writes them with the `zip` crate, whose deflate is miniz_oxide's
//! at its default level (6); on the benchmark's pydantic_core wheel every
//! member is rebuilt by it (recipe 89 B, where preflate-rs's corrections
//! took 6,397 B; both rebuild at about 7 MB/s of upstream bytes a CPU
//! second, miniz_oxide's own speed).
//!
//! The crate is pinned (`miniz_oxide =0.9.1`) and, like the other encoders,
//! must give its known answers on the fixed sample before it analyses or
//! rebuilds anything: a build with a miniz_oxide whose output differs
//! refuses instead of rebuilding other bytes. The input is handed over a
//! [`STEP`] at a time without a flush; its output does not depend on how
//! (a test checks it against one whole call).

use std::io::Read;

use miniz_oxide::deflate::core::{
    compress, create_comp_flags_from_zip_params, CompressorOxide, TDEFLFlush, TDEFLStatus,
};

/// The encoder id of miniz_oxide's deflate in [`crate::zlib::ZlibParams`].
pub const MINIZ_OXIDE_ENCODER: u8 = 4;

/// Plain bytes handed to the encoder at a time.
const STEP: usize = 64 << 10;

/// (level, deflated length, CRC-32 of the deflated bytes) of
/// [`crate::zlib::sample`] as miniz_oxide 0.9.1 deflates it (raw).
pub(crate) const KNOWN_ANSWERS: [(u8, u64, u32); 9] = [
    (1, 64_982, 0x0e58_134f),
    (2, 59_782, 0xfa33_199b),
    (3, 52_132, 0x4426_2d4d),
    (4, 54_504, 0xe4d8_78b3),
    (5, 51_992, 0x4026_79e9),
    (6, 49_042, 0x3ede_673f),
    (7, 47_663, 0x8681_9c48),
    (8, 46_577, 0xdaf0_a08c),
    (9, 46_577, 0x8929_2b37),
];

/// Deflates what `plain` reads (raw, miniz_oxide at `level`, 1 to 9),
/// handing each piece of output to `sink` as it comes; stops at the sink's
/// first error (`Err(Ok)`) or a read error (`Err(Err)`).
pub(crate) fn deflate_to<E>(
    level: u8,
    plain: &mut dyn Read,
    mut sink: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), Result<E, String>> {
    // Raw deflate (negative window bits), default strategy.
    let flags = create_comp_flags_from_zip_params(i32::from(level), -15, 0);
    let mut c = CompressorOxide::new(flags);
    let mut input = vec![0u8; STEP];
    let mut out = vec![0u8; STEP + 1024];
    loop {
        let n = crate::zlib::read_full(plain, &mut input).map_err(|e| Err(e.to_string()))?;
        let flush = if n < STEP {
            TDEFLFlush::Finish
        } else {
            TDEFLFlush::None
        };
        let mut at = 0usize;
        loop {
            let (status, used, made) = compress(&mut c, &input[at..n], &mut out, flush);
            at += used;
            sink(&out[..made]).map_err(Ok)?;
            match status {
                TDEFLStatus::Done => return Ok(()),
                TDEFLStatus::Okay => {}
                s => return Err(Err(format!("miniz_oxide: {s:?}"))),
            }
            if at == n && made < out.len() {
                if flush == TDEFLFlush::Finish {
                    // Finish ends with Done; more output is still to come.
                    continue;
                }
                break;
            }
            if used == 0 && made == 0 {
                return Err(Err("miniz_oxide made no progress".into()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Prints the known answers (to pin a new miniz_oxide), and checks them.
    #[test]
    fn known_answers_hold_and_stepping_changes_nothing() {
        let plain = crate::zlib::sample();
        for level in 1..=9u8 {
            let (len, crc) =
                crate::zlib::answer(MINIZ_OXIDE_ENCODER, level, &plain).expect("deflates");
            println!("({level}, {len}, {crc:#010x}),");
            let whole = miniz_oxide::deflate::compress_to_vec(&plain, level);
            let mut stepped = Vec::new();
            deflate_to(level, &mut &plain[..], |b| {
                stepped.extend_from_slice(b);
                Ok::<(), ()>(())
            })
            .unwrap();
            assert!(
                stepped == whole,
                "level {level}: stepped output differs from one call"
            );
        }
        assert!(
            crate::zlib::encoder_ok(MINIZ_OXIDE_ENCODER),
            "miniz_oxide is not encoder 4"
        );
    }
}
