//! A deflate encoder whose output is GNU gzip's, byte for byte: encoder 2 of
//! [`Segment::Zlib`](crate::Segment::Zlib).
//!
//! GNU gzip (`gzip -1` to `-9`, so `tar | gzip` layers, `helm package` charts
//! made with it, Debian's `.gz` files) does not deflate like zlib, although
//! both come from the same code: gzip cuts blocks at 32 Ki symbols (zlib at
//! 16 Ki), guesses every 4096 symbols whether to end a block early, hashes
//! with 15 bits, and slides a 64 KiB window. No zlib level reproduces its
//! streams. This module is a Rust rewrite of that algorithm (gzip 1.6 to 1.13
//! give the same output; `--rsyncable` is not modelled): [`matcher`] finds the
//! matches as gzip's `deflate.c` does, [`trees`] encodes blocks as its
//! `trees.c` does. Only the raw deflate stream is made here; the gzip header
//! and trailer are literal bytes of the recipe.
//!
//! Like zlib, it is checked against known answers (made by the real
//! `/bin/gzip`) before it analyses or rebuilds anything ([`encoder_ok`]).

mod matcher;
mod trees;

use std::sync::OnceLock;

use flate2::Crc;
use std::io::Read;

/// The encoder id of GNU gzip's deflate in [`crate::zlib::ZlibParams`].
pub const GNU_GZIP_ENCODER: u8 = 2;

/// (level, deflated length, CRC-32 of the deflated bytes) of
/// [`crate::zlib::sample`] as GNU gzip 1.12 deflates it (`gzip -N -n`, its
/// 10-byte header and 8-byte trailer removed).
const KNOWN_ANSWERS: [(u8, u64, u32); 4] = [
    (1, 62_156, 0x448e_6537),
    (3, 54_640, 0x86d9_dff7),
    (6, 49_064, 0xeb6d_9783),
    (9, 46_578, 0x1647_bc64),
];

/// Deflates what `plain` reads as `gzip -level` does (level 1 to 9), handing
/// the output to `sink` block by block (the input is read as gzip reads a
/// file, a window's worth at a time: the output does not depend on how
/// `plain` hands it over); stops at the sink's first error (`Err(Ok)`), or at a read error
/// (`Err(Err)`, once the output up to there was handed over).
pub(crate) fn deflate_to<E>(
    level: u8,
    plain: &mut dyn Read,
    mut sink: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), Result<E, std::io::Error>> {
    let mut m = matcher::Matcher::new(level, plain);
    let mut failed = None;
    m.run(|out| {
        let r = sink(out);
        out.clear();
        match r {
            Ok(()) => true,
            Err(e) => {
                failed = Some(e);
                false
            }
        }
    });
    match (failed, m.read_error.take()) {
        (Some(e), _) => Err(Ok(e)),
        (None, Some(e)) => Err(Err(e)),
        (None, None) => Ok(()),
    }
}

/// The deflated stream and its CRC-32.
fn deflated(level: u8, plain: &[u8]) -> (u64, u32) {
    let mut len = 0u64;
    let mut sum = Crc::new();
    let _ = deflate_to(level, &mut &plain[..], |b| {
        sum.update(b);
        len += b.len() as u64;
        Ok::<(), ()>(())
    });
    (len, sum.sum())
}

/// Whether this build's encoder gives GNU gzip's known answers (computed once).
pub(crate) fn encoder_ok() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        let plain = crate::zlib::sample();
        KNOWN_ANSWERS
            .iter()
            .all(|&(level, len, crc)| deflated(level, &plain) == (len, crc))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Prints this encoder's answers on the sample (to compare with gzip's).
    #[test]
    fn known_answers_hold() {
        let plain = crate::zlib::sample();
        for (level, _, _) in KNOWN_ANSWERS {
            let (len, crc) = deflated(level, &plain);
            println!("({level}, {len}, {crc:#010x}),");
        }
        assert!(
            encoder_ok(),
            "the encoder does not give gzip's known answers"
        );
    }
}
