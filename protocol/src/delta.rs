//! Patches: an object's expanded form encoded against a reference the
//! receiver already holds (its predecessor's reference form).
//!
//! A patch is one zstd frame compressed with the reference as its *prefix*
//! (`ZSTD_CCtx_refPrefix`, what `zstd --patch-from` does): matches may point
//! back into the reference, so the bytes a new release shares with the old
//! one cost a few bits each. The window covers reference and content, and
//! long-distance matching finds repeats far apart.
//!
//! Decoding is bounded: the decoder's window may not exceed what the
//! declared lengths need, output stops one byte past the declared length
//! (an overlong patch is an error, never a larger allocation), and the
//! caller checks the result against the BLAKE3 the catalog declares.

use crate::Error;
use std::io::{Read, Write};
use zstd::stream::raw::{CParameter, DParameter};

/// The zstd window log that lets a frame of `len` bytes reach back over a
/// `reference` of `reference` bytes: at least 2^10, at most 2^31.
fn window_log(reference: u64, len: u64) -> u32 {
    let span = reference.saturating_add(len).max(1);
    (64 - (span - 1).leading_zeros()).clamp(10, 31)
}

/// Encodes `content` against `reference` at zstd `level` (1..=19 useful;
/// the ultra levels 20..=22 are allowed).
pub fn encode(content: &[u8], reference: &[u8], level: i32) -> Result<Vec<u8>, Error> {
    let wlog = window_log(reference.len() as u64, content.len() as u64);
    let mut enc = zstd::stream::write::Encoder::with_ref_prefix(
        Vec::with_capacity(content.len() / 8 + 64),
        level,
        reference,
    )?;
    enc.set_parameter(CParameter::WindowLog(wlog))?;
    enc.set_parameter(CParameter::EnableLongDistanceMatching(true))?;
    enc.set_parameter(CParameter::ChecksumFlag(false))?;
    enc.set_pledged_src_size(Some(content.len() as u64))?;
    enc.write_all(content)?;
    Ok(enc.finish()?)
}

/// Decodes `patch` against `reference`; the result must be exactly `len`
/// bytes. `key` names the object in errors.
pub fn decode(patch: &[u8], reference: &[u8], len: u64, key: &str) -> Result<Vec<u8>, Error> {
    let bad = |why: String| Error::BadPatch {
        key: key.to_string(),
        why,
    };
    let cap = usize::try_from(len).map_err(|_| bad(format!("declares {len} bytes")))?;
    let mut dec = zstd::stream::read::Decoder::with_ref_prefix(patch, reference)
        .map_err(|e| bad(format!("cannot start the zstd decoder: {e}")))?;
    dec.set_parameter(DParameter::WindowLogMax(window_log(
        reference.len() as u64,
        len,
    )))
    .map_err(|e| bad(format!("cannot bound the zstd window: {e}")))?;
    let mut out = Vec::with_capacity(cap);
    dec.take(len.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| bad(format!("zstd data does not decode: {e}")))?;
    if out.len() as u64 != len {
        return Err(bad(format!(
            "decodes to {}{} bytes, the catalog declares {len}",
            out.len(),
            if out.len() as u64 > len {
                " or more"
            } else {
                ""
            }
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::noise;

    #[test]
    fn a_small_change_costs_little_and_round_trips() {
        let old = noise(2_000_000, 4);
        let mut new = old.clone();
        for i in (0..new.len()).step_by(100_000) {
            new[i] ^= 0x5a;
        }
        new.extend_from_slice(b"a new tail");
        let patch = encode(&new, &old, 3).unwrap();
        assert!(patch.len() < 20_000, "patch is {} bytes", patch.len());
        assert_eq!(decode(&patch, &old, new.len() as u64, "k").unwrap(), new);
    }

    #[test]
    fn the_wrong_reference_or_length_is_an_error() {
        let old = noise(300_000, 5);
        let mut new = old.clone();
        new[1000] = !new[1000];
        let patch = encode(&new, &old, 3).unwrap();
        let other = noise(300_000, 6);
        // A wrong reference decodes to other bytes (the caller's BLAKE3
        // check refuses them) or fails; it never yields `new`.
        if let Ok(out) = decode(&patch, &other, new.len() as u64, "k") {
            assert_ne!(out, new);
        }
        let short = decode(&patch, &old, new.len() as u64 - 1, "k").unwrap_err();
        assert!(matches!(short, Error::BadPatch { .. }), "{short}");
        let long = decode(&patch, &old, new.len() as u64 + 1, "k").unwrap_err();
        assert!(matches!(long, Error::BadPatch { .. }), "{long}");
        let garbage = decode(b"not a zstd frame", &old, 10, "k").unwrap_err();
        assert!(matches!(garbage, Error::BadPatch { .. }), "{garbage}");
    }

    #[test]
    fn a_frame_asking_for_a_larger_window_than_the_lengths_need_is_refused() {
        // Encoded with a 2^27 window (128 MiB) for tiny data: the receiver
        // only grants what the declared lengths need.
        let data = noise(5_000, 7);
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        enc.set_parameter(CParameter::WindowLog(27)).unwrap();
        enc.set_pledged_src_size(None).unwrap();
        enc.include_contentsize(false).unwrap();
        enc.write_all(&data).unwrap();
        let frame = enc.finish().unwrap();
        let e = decode(&frame, b"", data.len() as u64, "k").unwrap_err();
        assert!(matches!(e, Error::BadPatch { .. }), "{e}");
    }

    #[test]
    fn window_logs_cover_the_span() {
        assert_eq!(window_log(0, 0), 10);
        assert_eq!(window_log(1 << 20, 1 << 20), 21);
        assert_eq!(window_log((1 << 20) + 1, 1 << 20), 22);
        assert_eq!(window_log(u64::MAX, 1), 31);
    }
}
