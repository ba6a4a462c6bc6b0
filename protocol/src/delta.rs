//! Patches: an object's expanded form encoded against a reference the
//! receiver already holds (its predecessor's reference form).
//!
//! A patch is one zstd frame compressed with the reference as its *prefix*
//! (`ZSTD_CCtx_refPrefix`, what `zstd --patch-from` does): matches may point
//! back into the reference, so the bytes a new release shares with the old
//! one cost a few bits each. The window covers reference and content, and
//! long-distance matching finds repeats far apart.
//!
//! Decoding is bounded: the frame's window may not exceed what the declared
//! lengths need, the patch is exactly one frame, output goes into a buffer of
//! exactly the declared length (an overlong patch is an error, never a larger
//! allocation), and the caller checks the result against the BLAKE3 the
//! catalog declares. Both directions are one-shot, so neither holds a window
//! buffer besides the content itself.

use crate::Error;
use zstd::stream::raw::{CParameter, DParameter};

/// The zstd window log that lets a frame of `len` bytes reach back over a
/// `reference` of `reference` bytes: at least 2^10, at most 2^31.
fn window_log(reference: u64, len: u64) -> u32 {
    let span = reference.saturating_add(len).max(1);
    (64 - (span - 1).leading_zeros()).clamp(10, 31)
}

/// The largest hash log a patch sets: a 2^25-entry table (128 MiB) that
/// lets zstd index a reference of up to 256 MiB.
const HASH_LOG_MAX: u32 = 25;

/// The hash log of a patch at `level` against a `reference` of that many
/// bytes, where it must exceed the level's own (22 at levels 16 to 19 on
/// large inputs). zstd (since 1.5.5) indexes only the last
/// 2^max(hashLog + 3, chainLog + 1) bytes of a prefix: 32 MiB at those
/// levels. Their optimal parser (btopt, btultra2) then finds little of an
/// older part of the reference, and long-distance matching does not make up
/// for it as it does at the faster levels: numpy 2.1.2 -> 2.1.3's wheel (56
/// MiB expanded, two windows) cost 1.33 MB at level 19 against 0.47 MB at
/// level 3, 0.30 MB once the whole reference is indexed.
fn hash_log(level: i32, reference: u64) -> Option<u32> {
    let need = (64 - reference.saturating_sub(1).leading_zeros()).saturating_sub(3);
    (slow(level) && need > 22).then_some(need.min(HASH_LOG_MAX))
}

/// The chain log of a patch at levels 16 to 19: 2^20 entries (4 MiB)
/// instead of the level's 2^24 (64 MiB). At these levels the chain table is
/// a binary tree over the last 2^(chainLog - 1) positions; a patch's matches
/// lie in the reference form, mostly further back than that, and are found
/// through the hash table ([`hash_log`]), so the smaller tree costs little
/// (see docs/compression.md, session 11).
const SLOW_CHAIN_LOG: u32 = 20;

/// The long-distance matcher's hash log at levels 16 to 19: 2^20 entries of
/// 8 bytes (8 MiB). zstd's own choice there is the window log minus 4 (64
/// MiB for a 128 MiB window), for matches the optimal parser mostly finds
/// anyway.
const SLOW_LDM_HASH_LOG: u32 = 20;

/// Whether `level` is one of zstd's slow levels (16 to 19: btopt and
/// btultra, whose tables the patch parameters bound).
fn slow(level: i32) -> bool {
    (16..=19).contains(&level)
}

/// About how many bytes zstd's match tables take to encode `len` bytes
/// against a `reference` of that many bytes at `level` (the hash, chain and
/// long-distance tables; not the content, reference or output): for a
/// caller that bounds how many encoders run at once.
pub fn encoder_memory(level: i32, reference: u64, len: u64) -> u64 {
    let wlog = window_log(reference, len);
    if !slow(level) {
        // Level 3's tables are small; the long-distance matcher's hash is
        // 2^(wlog - 7) entries of 8 bytes.
        return (8u64 << wlog.saturating_sub(7)) + (4 << 20);
    }
    let hash = hash_log(level, reference).unwrap_or(22).min(wlog + 1);
    let chain = SLOW_CHAIN_LOG.min(wlog + 1);
    (4u64 << hash) + (4u64 << chain) + (8u64 << SLOW_LDM_HASH_LOG) + (8 << 20)
}

/// A zstd error code as an I/O error.
fn zstd_error(code: zstd::zstd_safe::ErrorCode) -> std::io::Error {
    std::io::Error::other(zstd::zstd_safe::get_error_name(code))
}

/// Encodes `content` against `reference` at zstd `level` (1..=19 useful;
/// the ultra levels 20..=22 are allowed). One-shot (`ZSTD_compress2`): zstd
/// reads `content` where it lies instead of copying it into a window buffer,
/// so encoding holds the content, the reference, the patch and zstd's match
/// tables, nothing the size of the window.
pub fn encode(content: &[u8], reference: &[u8], level: i32) -> Result<Vec<u8>, Error> {
    let wlog = window_log(reference.len() as u64, content.len() as u64);
    let mut cctx = zstd::zstd_safe::CCtx::create();
    let params = [
        CParameter::CompressionLevel(level),
        CParameter::WindowLog(wlog),
        CParameter::EnableLongDistanceMatching(true),
        CParameter::ChecksumFlag(false),
        CParameter::ContentSizeFlag(true),
    ];
    let hash = hash_log(level, reference.len() as u64).map(CParameter::HashLog);
    let bounded = [
        CParameter::ChainLog(SLOW_CHAIN_LOG.min(wlog + 1)),
        CParameter::LdmHashLog(SLOW_LDM_HASH_LOG),
    ];
    let bounded = bounded.into_iter().filter(|_| slow(level));
    for p in params.into_iter().chain(hash).chain(bounded) {
        cctx.set_parameter(p).map_err(zstd_error)?;
    }
    cctx.ref_prefix(reference).map_err(zstd_error)?;
    let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(content.len()));
    cctx.compress2(&mut out, content).map_err(zstd_error)?;
    out.shrink_to_fit();
    Ok(out)
}

/// The window size a zstd frame header asks for (`None`: not a zstd frame
/// header, or a single-segment frame, whose window is its content).
fn frame_window(frame: &[u8]) -> Option<u64> {
    if frame.get(..4)? != [0x28, 0xb5, 0x2f, 0xfd] {
        return None;
    }
    let descriptor = *frame.get(4)?;
    if descriptor & 0x20 != 0 {
        return None;
    }
    let wd = *frame.get(5)?;
    let log = 10 + u32::from(wd >> 3);
    let base = 1u64 << log;
    Some(base + (base / 8) * u64::from(wd & 7))
}

/// Decodes `patch` against `reference`; the result must be exactly `len`
/// bytes. `key` names the object in errors. One-shot (`ZSTD_decompressDCtx`)
/// into a buffer of exactly `len` bytes: a patch that would decode to more
/// stops there, and no window buffer is allocated besides the output.
pub fn decode(patch: &[u8], reference: &[u8], len: u64, key: &str) -> Result<Vec<u8>, Error> {
    let (mut dctx, cap) = decoder(patch, reference, len, key)?;
    let mut out = Vec::with_capacity(cap);
    let done = dctx.decompress(&mut out, patch).map(|_| ());
    let full = out.capacity() == cap;
    decoded(done, (out.len(), full), len, key)?;
    Ok(out)
}

/// [`decode`] into `out`, whose bytes it replaces and whose memory it
/// keeps: a caller that decodes one window after another reuses one
/// buffer instead of a new one (and its first touch) each time.
pub fn decode_into(
    patch: &[u8],
    reference: &[u8],
    len: u64,
    key: &str,
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    let (mut dctx, cap) = decoder(patch, reference, len, key)?;
    out.clear();
    out.resize(cap, 0);
    let done = dctx.decompress(&mut out[..], patch);
    out.truncate(*done.as_ref().unwrap_or(&0));
    decoded(done.map(|_| ()), (out.len(), true), len, key)
}

/// The checks of [`decode`] before it decodes, and its decoder, bound to
/// `reference`, with the output's capacity (`len`).
fn decoder<'a>(
    patch: &[u8],
    reference: &'a [u8],
    len: u64,
    key: &str,
) -> Result<(zstd::zstd_safe::DCtx<'a>, usize), Error> {
    let bad = |why: String| Error::BadPatch {
        key: key.to_string(),
        why,
    };
    let cap = usize::try_from(len).map_err(|_| bad(format!("declares {len} bytes")))?;
    let most = 1u64 << window_log(reference.len() as u64, len);
    if let Some(window) = frame_window(patch).filter(|&w| w > most) {
        return Err(bad(format!(
            "its zstd frame asks for a {window}-byte window, more than the {most} bytes its lengths need"
        )));
    }
    match zstd::zstd_safe::find_frame_compressed_size(patch) {
        Ok(n) if n == patch.len() => {}
        Ok(_) => return Err(bad("holds more than one zstd frame".into())),
        Err(e) => {
            return Err(bad(format!(
                "zstd data does not decode: {}",
                zstd::zstd_safe::get_error_name(e)
            )))
        }
    }
    let mut dctx = zstd::zstd_safe::DCtx::create();
    dctx.set_parameter(DParameter::WindowLogMax(window_log(
        reference.len() as u64,
        len,
    )))
    .map_err(|e| {
        bad(format!(
            "cannot bound the zstd window: {}",
            zstd::zstd_safe::get_error_name(e)
        ))
    })?;
    dctx.ref_prefix(reference).map_err(|e| {
        bad(format!(
            "cannot start the zstd decoder: {}",
            zstd::zstd_safe::get_error_name(e)
        ))
    })?;
    Ok((dctx, cap))
}

/// What [`decode`] says of its decoder's result `done`, which wrote
/// `written` bytes (`full`: into a buffer of exactly `len` bytes).
fn decoded(
    done: Result<(), zstd::zstd_safe::ErrorCode>,
    (written, full): (usize, bool),
    len: u64,
    key: &str,
) -> Result<(), Error> {
    let bad = |why: String| Error::BadPatch {
        key: key.to_string(),
        why,
    };
    if let Err(e) = done {
        let name = zstd::zstd_safe::get_error_name(e);
        return Err(bad(if full && name.contains("small") {
            format!("decodes to more than the {len} bytes the catalog declares")
        } else {
            format!("zstd data does not decode: {name}")
        }));
    }
    if written as u64 != len {
        return Err(bad(format!(
            "decodes to {written} bytes, the catalog declares {len}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::noise;
    use std::io::Write;

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
    fn a_reused_buffer_decodes_as_a_new_one_and_refuses_the_same() {
        let old = noise(400_000, 10);
        let mut new = old.clone();
        new[5000] = !new[5000];
        let patch = encode(&new, &old, 3).unwrap();
        let len = new.len() as u64;
        // A buffer larger than the window, holding other bytes.
        let mut out = noise(1_000_000, 11);
        decode_into(&patch, &old, len, "k", &mut out).unwrap();
        assert!(out == new);
        // A length one short: the larger buffer does not let it decode
        // further than declared, and the error is decode's.
        let short = decode_into(&patch, &old, len - 1, "k", &mut out).unwrap_err();
        let whole = decode(&patch, &old, len - 1, "k").unwrap_err();
        assert_eq!(short.to_string(), whole.to_string());
        assert!(
            short.to_string().contains("decodes to more than"),
            "{short}"
        );
        let long = decode_into(&patch, &old, len + 1, "k", &mut out).unwrap_err();
        assert_eq!(
            long.to_string(),
            decode(&patch, &old, len + 1, "k").unwrap_err().to_string()
        );
        let garbage = decode_into(b"not a zstd frame", &old, 10, "k", &mut out).unwrap_err();
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
    fn a_patch_of_two_frames_is_refused() {
        let old = noise(100_000, 8);
        let new = noise(50_000, 9);
        let mut patch = encode(&new, &old, 3).unwrap();
        let len = new.len() as u64;
        assert_eq!(decode(&patch, &old, len, "k").unwrap(), new);
        patch.extend_from_slice(&zstd::bulk::compress(b"more", 3).unwrap());
        let e = decode(&patch, &old, len + 4, "k").unwrap_err();
        assert!(matches!(e, Error::BadPatch { .. }), "{e}");
    }

    #[test]
    fn the_slow_levels_index_the_whole_reference() {
        // zstd indexes the last 2^(hashLog + 3) bytes of a prefix (the
        // chain log at these levels is at most 24): a larger reference needs
        // a larger hash log, up to HASH_LOG_MAX.
        let covers = |level, reference: u64| {
            hash_log(level, reference).is_some_and(|h| 1u64 << (h + 3) >= reference)
        };
        assert!(covers(19, 56_030_333)); // numpy 2.1.2's expanded wheel
        assert!(covers(16, 128 << 20)); // MAX_WINDOW_REFERENCE
        assert!(covers(19, (32 << 20) + 1));
        assert_eq!(hash_log(19, u64::MAX), Some(HASH_LOG_MAX));
        // Within zstd's own reach, and at the other levels, zstd decides.
        assert_eq!(hash_log(19, 32 << 20), None);
        assert_eq!(hash_log(3, 1 << 30), None);
        assert_eq!(hash_log(15, 1 << 30), None);
        assert_eq!(hash_log(22, 1 << 30), None);
    }

    #[test]
    fn window_logs_cover_the_span() {
        assert_eq!(window_log(0, 0), 10);
        assert_eq!(window_log(1 << 20, 1 << 20), 21);
        assert_eq!(window_log((1 << 20) + 1, 1 << 20), 22);
        assert_eq!(window_log(u64::MAX, 1), 31);
    }
}
