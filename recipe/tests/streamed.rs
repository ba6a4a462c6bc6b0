//! A zlib segment is rebuilt from its plain bytes as the encoder reads them
//! (`rebuild_from` never holds the plain stream whole): the output does not
//! depend on how the reader hands the bytes over, and a reader that fails
//! or ends early is a read error.

mod common;

use std::io::{Read, Write};
use std::process::Command;

use common::{have, run, text};
use ferry_recipe::zlib::{ZlibParams, GNU_GZIP_ENCODER, ZLIB_ENCODER};
use ferry_recipe::{rebuild, rebuild_from, RebuildError, Recipe, Segment};

/// A reader that hands over a few bytes at a time (1 to 4,099, varying),
/// and fails with `fail_at` bytes given, if set.
struct Trickle<'a> {
    data: &'a [u8],
    at: usize,
    step: usize,
    fail_at: Option<usize>,
}

impl<'a> Trickle<'a> {
    fn new(data: &'a [u8]) -> Self {
        Trickle {
            data,
            at: 0,
            step: 1,
            fail_at: None,
        }
    }
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.fail_at.is_some_and(|f| self.at >= f) {
            return Err(std::io::Error::other("the disk went away"));
        }
        self.step = (self.step * 7 + 13) % 4099 + 1;
        let n = buf.len().min(self.step).min(self.data.len() - self.at);
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// A recipe of one raw deflate stream (`compressed_len` bytes) of
/// `plain_len` plain bytes, by `params`.
fn one_stream(params: ZlibParams, plain_len: usize, compressed_len: usize) -> Recipe {
    let recipe = Recipe {
        segments: vec![
            Segment::Literal { len: 3 },
            Segment::Zlib {
                plain_len: plain_len as u64,
                compressed_len: compressed_len as u64,
                params,
            },
        ],
    };
    Recipe::from_bytes(&recipe.to_bytes()).unwrap()
}

fn plain() -> Vec<u8> {
    let mut p = text(400_000, 11);
    // Some incompressible bytes too (stored blocks, long literal runs).
    let mut x = 0x2545_f491_4f6c_dd1du64;
    p.extend((0..150_000).map(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as u8
    }));
    p.extend(text(300_000, 12));
    p
}

/// Rebuilds `deflated` (by `params`) from `plain` both ways: from a slice
/// and through a reader that trickles; both must give it back.
fn both_ways(params: ZlibParams, plain: &[u8], deflated: &[u8]) {
    let recipe = one_stream(params, plain.len(), deflated.len());
    let mut expanded = b"hdr".to_vec();
    expanded.extend_from_slice(plain);
    let mut want = b"hdr".to_vec();
    want.extend_from_slice(deflated);
    let mut out = Vec::new();
    rebuild(&recipe, &expanded, want.len() as u64, &mut out).unwrap();
    assert!(out == want, "{params:?}: the slice rebuild differs");
    let mut out = Vec::new();
    let mut reader = Trickle::new(&expanded);
    let n = expanded.len() as u64;
    rebuild_from(&recipe, &mut reader, n, want.len() as u64, &mut out).unwrap();
    assert!(out == want, "{params:?}: the streamed rebuild differs");
}

#[test]
fn zlib_segments_rebuild_the_same_however_the_input_is_read() {
    let plain = plain();
    for level in [1u8, 6, 9] {
        let mut enc =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(level.into()));
        enc.write_all(&plain).unwrap();
        let deflated = enc.finish().unwrap();
        both_ways(
            ZlibParams {
                encoder: ZLIB_ENCODER,
                level,
            },
            &plain,
            &deflated,
        );
    }
}

#[test]
fn gnu_gzip_segments_rebuild_the_same_however_the_input_is_read() {
    if !have(
        "gzip",
        "gnu_gzip_segments_rebuild_the_same_however_the_input_is_read",
    ) {
        return;
    }
    let plain = plain();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("in");
    std::fs::write(&file, &plain).unwrap();
    for level in [1u8, 6, 9] {
        let gz = run(Command::new("gzip")
            .args([format!("-{level}"), "-n".into(), "-c".into()])
            .arg(&file));
        // Without gzip's 10-byte header and 8-byte trailer.
        both_ways(
            ZlibParams {
                encoder: GNU_GZIP_ENCODER,
                level,
            },
            &plain,
            &gz[10..gz.len() - 8],
        );
    }
}

#[test]
fn a_zlib_segment_whose_input_fails_or_ends_early_is_a_read_error() {
    let plain = plain();
    for encoder in [ZLIB_ENCODER, GNU_GZIP_ENCODER] {
        let params = ZlibParams { encoder, level: 6 };
        let mut expanded = b"hdr".to_vec();
        expanded.extend_from_slice(&plain);
        // Lengths that add up: the compressed length is not reached anyway.
        let recipe = one_stream(params, plain.len(), 2_000_000);
        let n = expanded.len() as u64;
        let mut reader = Trickle::new(&expanded);
        reader.fail_at = Some(200_000);
        let got = rebuild_from(&recipe, &mut reader, n, 2_000_003, &mut std::io::sink());
        assert!(
            matches!(&got, Err(RebuildError::Read { source: e, .. }) if e.to_string().contains("went away")),
            "{encoder}: {got:?}"
        );
        let mut short = &expanded[..expanded.len() - 1000];
        let got = rebuild_from(&recipe, &mut short, n, 2_000_003, &mut std::io::sink());
        assert!(
            matches!(&got, Err(RebuildError::Read { source: e, .. }) if e.kind() == std::io::ErrorKind::UnexpectedEof),
            "{encoder}: {got:?}"
        );
    }
}
