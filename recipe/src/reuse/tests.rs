//! A base's parse copied into real `gzip -6`/`-9` output (made here by the
//! real `/bin/gzip`): the same stream, and a new one with edits, come out
//! byte for byte, whole and in pieces; a wrong or hostile base gives an
//! error or a different stream, never a panic.

use std::io::Write;

use super::anchors::*;
use super::*;

/// The raw deflate body of `gzip -level -n` of `plain`, or `None` without
/// gzip.
fn gzip_body(level: u8, plain: &[u8]) -> Option<Vec<u8>> {
    let gz = gzip_file(level, plain)?;
    Some(gz[10..gz.len() - 8].to_vec())
}

/// `gzip -level -n` of `plain`, whole (header and trailer), or `None`
/// without gzip.
fn gzip_file(level: u8, plain: &[u8]) -> Option<Vec<u8>> {
    crate::cuts::tests::gnu_gzip(level, plain)
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// "Files" like a layer's: edited text, runs, incompressible stretches.
fn files(n: usize, seed: u64) -> Vec<Vec<u8>> {
    let text = crate::zlib::sample();
    let mut r = Rng(seed);
    (0..n)
        .map(|_| {
            let len = 2000 + (r.next() % 300_000) as usize;
            let mut f = Vec::with_capacity(len + 3000);
            while f.len() < len {
                let x = r.next();
                match x % 8 {
                    0 => f.extend((0..(x >> 8) % 3000).map(|_| r.next() as u8)),
                    1 => f.extend(std::iter::repeat_n(
                        (x >> 8) as u8,
                        (x >> 16) as usize % 700,
                    )),
                    _ => {
                        let at = (x >> 8) as usize % (text.len() - 2000);
                        f.extend_from_slice(&text[at..at + 20 + (x >> 32) as usize % 1500]);
                    }
                }
            }
            f
        })
        .collect()
}

/// A base and a new version of it: some files edited (bytes changed,
/// inserted, cut), one dropped, one added, two swapped.
fn versions() -> (Vec<u8>, Vec<u8>) {
    let mut fs = files(40, 7);
    let base = fs.concat();
    let mut r = Rng(99);
    for f in fs.iter_mut().step_by(5) {
        let at = (r.next() as usize) % f.len();
        match r.next() % 3 {
            0 => f[at] ^= 0x55,
            1 => f
                .splice(at..at, b"an insertion here".iter().copied())
                .for_each(drop),
            _ => f.drain(at..(at + 100).min(f.len())).for_each(drop),
        }
    }
    fs.remove(11);
    fs.swap(20, 30);
    fs.push(files(1, 1234).concat());
    (base, fs.concat())
}

#[test]
fn the_same_stream_copied_is_its_bytes() {
    let (base, _) = versions();
    for level in [6u8, 9] {
        let Some(body) = gzip_body(level, &base) else {
            eprintln!("skipped: no gzip");
            return;
        };
        let b = Base::new(&body, &base).expect("indexed");
        let (out, stats) = deflate_gnu(level, &base, Some(&b));
        eprintln!("level {level}: {stats:?} of {}", base.len());
        assert!(out == body, "level {level}: the copied stream differs");
        assert!(stats.copied * 10 > base.len() as u64 * 9, "{stats:?}");
    }
}

#[test]
fn an_edited_stream_copied_is_its_bytes() {
    let (base, new) = versions();
    for level in [4u8, 6, 9] {
        let (Some(bbody), Some(nbody)) = (gzip_body(level, &base), gzip_body(level, &new)) else {
            eprintln!("skipped: no gzip");
            return;
        };
        let b = Base::new(&bbody, &base).expect("indexed");
        let (out, stats) = deflate_gnu(level, &new, Some(&b));
        eprintln!("level {level}: {stats:?} of {}", new.len());
        assert!(out == nbody, "level {level}: the copied stream differs");
        assert!(stats.copied * 2 > new.len() as u64, "{stats:?}");
        let (plain_out, _) = deflate_gnu(level, &new, None);
        assert!(plain_out == nbody, "level {level}: the encoder differs");
    }
}

/// The pieces of a cut stream (cuts as the analysis finds them) come out
/// byte for byte copying from a fully indexed base, and from one given
/// only the block starts its copiers seek to (what an outside would send).
#[test]
fn pieces_copied_are_their_bytes_with_an_index_or_its_seeds() {
    let (base, new) = versions();
    let level = 6u8;
    let (Some(bbody), Some(nbody)) = (gzip_body(level, &base), gzip_body(level, &new)) else {
        eprintln!("skipped: no gzip");
        return;
    };
    let params = crate::zlib::ZlibParams {
        encoder: crate::zlib::GNU_GZIP_ENCODER,
        level,
    };
    let cuts = crate::cuts::find(&params, &new, &nbody, 1 << 20, false, None).expect("cuts");
    assert!(cuts.len() >= 2, "{} cuts", cuts.len());
    let full = Base::new(&bbody, &base).expect("indexed");
    let mut seeds = Vec::new();
    for i in 0..=cuts.len() {
        let (s, e) = cuts::text_range(&cuts, i, new.len() as u64);
        seeds.extend(full.seeds_for(&new[s as usize..e as usize], s));
    }
    assert!(!seeds.is_empty());
    let seeded = Base::with_starts(&bbody, &base, seeds);
    for (name, b) in [("index", &full), ("seeds", &seeded)] {
        let (out, stats) =
            deflate_gnu_pieces(level, &new, &cuts, nbody.len() as u64, Some(b), 2).expect(name);
        eprintln!("{name}: {stats:?} of {}", new.len());
        assert!(out == nbody, "{name}: the pieces differ");
        assert!(stats.copied * 3 > new.len() as u64, "{name}: {stats:?}");
    }
}

/// A base that is not what its stream decodes to, or not deflate at all,
/// or block starts that are not its blocks', give an error or a stream
/// that differs (which the caller's check refuses), never a panic.
#[test]
fn a_wrong_or_hostile_base_is_an_error_or_a_different_stream() {
    let (base, new) = versions();
    let level = 6u8;
    let (Some(bbody), Some(nbody)) = (gzip_body(level, &base), gzip_body(level, &new)) else {
        eprintln!("skipped: no gzip");
        return;
    };
    // Malformed or truncated streams, and a plain length that is not theirs.
    assert!(Base::new(&bbody[..bbody.len() / 2], &base).is_err());
    assert!(Base::new(&bbody, &base[1..]).is_err());
    assert!(Base::new(&[0xff; 1000], &base).is_err());
    assert!(Base::new(&[], &[]).is_err());
    let mut r = Rng(5);
    let junk: Vec<u8> = (0..100_000).map(|_| r.next() as u8).collect();
    assert!(Base::new(&junk, &base).is_err());
    // The right stream with other plain bytes of its length: copies happen
    // where those bytes equal the new ones, and the parse is wrong there.
    let mut other = base.clone();
    for i in (0..other.len()).step_by(4096) {
        other[i] ^= 1;
    }
    let b = Base::new(&bbody, &other).expect("the stream decodes to that length");
    let (out, stats) = deflate_gnu(level, &new, Some(&b));
    eprintln!(
        "a base of other bytes: {stats:?}; same bytes: {}",
        out == nbody
    );
    // Garbage block starts: readers of garbage, and copies of garbage.
    let params = crate::zlib::ZlibParams {
        encoder: crate::zlib::GNU_GZIP_ENCODER,
        level,
    };
    let cuts = crate::cuts::find(&params, &new, &nbody, 1 << 20, false, None).expect("cuts");
    for seed in 0..20u64 {
        let mut r = Rng(seed + 1);
        let starts: Vec<BlockStart> = (0..30)
            .map(|_| {
                (
                    r.next() % base.len() as u64,
                    r.next() % (8 * bbody.len() as u64 + 64),
                    r.next().is_multiple_of(2),
                )
            })
            .collect();
        let b = Base::with_starts(&bbody, &base, starts);
        let (out, _) = deflate_gnu(level, &new, Some(&b));
        let _ = out == nbody;
        for piece in deflate_gnu_each_piece(level, &new, &cuts, nbody.len() as u64, Some(&b), 2) {
            if let Err(e) = piece {
                assert!(!e.to_string().is_empty());
            }
        }
    }
    // One block start, the stream's: each stretch behind the reader reads
    // the base from its start again, within the copier's budget; copying
    // is an option, so the stream still comes out right.
    let b = Base::with_starts(&bbody, &base, vec![(0, 0, false)]);
    let (out, stats) = deflate_gnu(level, &new, Some(&b));
    assert!(out == nbody, "one start: {stats:?}");
    // A base made by another deflate (zlib's level 1): nothing panics.
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(1));
    e.write_all(&base).unwrap();
    let zbody = e.finish().unwrap();
    let b = Base::new(&zbody, &base).expect("indexed");
    let (out, stats) = deflate_gnu(level, &new, Some(&b));
    eprintln!("zlib -1 base: {stats:?}; same bytes: {}", out == nbody);
}

/// A measuring driver: the cost of indexing a base (`REUSE_BENCH_GZ`, one
/// gzip member): its symbols read whole, and its plain bytes hashed.
///
///     REUSE_BENCH_GZ=x.gz cargo test --release -p ferry-recipe --lib reuse::tests::bench_index -- --ignored --nocapture
#[test]
#[ignore = "a measuring driver, run by hand"]
fn bench_index() {
    use std::io::Read;
    let Ok(path) = std::env::var("REUSE_BENCH_GZ") else {
        return;
    };
    let gz = std::fs::read(path).unwrap();
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut plain)
        .unwrap();
    let name_end = 10 + gz[10..].iter().position(|&b| b == 0).unwrap() + 1;
    let raw = if gz[3] & 8 != 0 {
        &gz[name_end..]
    } else {
        &gz[10..]
    };
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let (starts, n) = crate::cuts::symbols::Symbols::index(raw).unwrap();
        let read = t.elapsed();
        let t = std::time::Instant::now();
        let b = Base::with_starts(raw, &plain, Vec::new());
        let hashed = t.elapsed();
        eprintln!(
            "{} blocks, {n} plain: symbols read in {read:?}, plain hashed in {hashed:?} ({} anchors)",
            starts.len(),
            b.anchors.len()
        );
    }
}

/// The outside's check gives every piece its flag: with the right base all
/// copy; with a base made by another encoder, the pieces whose copy
/// differs get theirs off, and the stream rebuilt with those flags is byte
/// for byte.
#[test]
fn pieces_that_copy_flags_the_pieces_that_come_out_right() {
    let (base, new) = versions();
    let level = 6u8;
    let (Some(bbody), Some(nbody)) = (gzip_body(level, &base), gzip_body(level, &new)) else {
        eprintln!("skipped: no gzip");
        return;
    };
    let params = crate::zlib::ZlibParams {
        encoder: crate::zlib::GNU_GZIP_ENCODER,
        level,
    };
    let cuts = crate::cuts::find(&params, &new, &nbody, 1 << 20, false, None).expect("cuts");
    let good = Base::new(&bbody, &base).expect("indexed");
    let flags = pieces_that_copy(level, &new, &nbody, &cuts, &good, 2);
    assert!(flags.iter().all(|&f| f), "{flags:?}");
    // A base made by another encoder (zlib's level 1): the same plain
    // bytes, another parse, wrong wherever it is copied.
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(1));
    e.write_all(&base).unwrap();
    let zbody = e.finish().unwrap();
    let bad = Base::new(&zbody, &base).expect("indexed");
    let flags = pieces_that_copy(level, &new, &nbody, &cuts, &bad, 2);
    eprintln!("flags with a wrong base: {flags:?}");
    assert!(flags.iter().any(|&f| !f), "{flags:?}");
    let rebuilt: Vec<u8> = deflate_gnu_each_piece_where(
        level,
        &new,
        &cuts,
        nbody.len() as u64,
        Some(&bad),
        &flags,
        2,
    )
    .into_iter()
    .flat_map(|p| p.expect("a flagged piece rebuilds").0)
    .collect();
    assert!(rebuilt == nbody, "the flagged pieces differ");
}

/// What the inside does: the new gzip object's recipe rebuilt with the
/// base's parse, the base's stream read from its file (`Base::with_starts_in`,
/// its block starts read beside its expansion by `gzip_block_starts`),
/// gives the object's bytes and copies most of them; a base of the same
/// plain bytes made by another deflate (zlib's level 1, level 9) gives the
/// object's bytes too, its wrong copies deflated again piece by piece.
#[test]
fn a_recipe_rebuilt_with_a_base_read_from_its_file_is_the_object() {
    let (base, new) = versions();
    let level = 6u8;
    let (Some(bgz), Some(ngz)) = (gzip_file(level, &base), gzip_file(level, &new)) else {
        eprintln!("skipped: no gzip");
        return;
    };
    let opts = crate::Options {
        deflate_cuts: Some(1 << 20),
        ..crate::Options::default()
    };
    let a = crate::analyze(&ngz, &opts);
    assert!(
        a.recipe
            .segments
            .iter()
            .any(|s| matches!(s, crate::Segment::ZlibCuts { cuts, .. } if cuts.len() >= 2)),
        "{:?}",
        a.report
    );
    let mut zlib1 = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(1));
    zlib1.write_all(&base).unwrap();
    let mut zlib9 = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(9));
    zlib9.write_all(&base).unwrap();
    let wrap = |body: Vec<u8>| {
        let mut gz = bgz[..10].to_vec();
        gz.extend_from_slice(&body);
        gz.extend_from_slice(&bgz[bgz.len() - 8..]);
        gz
    };
    let bases = [
        ("gzip -6", bgz.clone(), true),
        ("zlib -1", wrap(zlib1.finish().unwrap()), false),
        ("zlib -9", wrap(zlib9.finish().unwrap()), false),
    ];
    for (name, bgz, copies) in bases {
        let (start, starts, plain_len) = gzip_block_starts(&bgz).expect("a gzip member");
        let (reference, streams) = crate::expand_deflated(&bgz, &opts).unwrap();
        assert_eq!(streams.len(), 1);
        assert_eq!(streams[0].compressed.0, start);
        assert_eq!(plain_len, base.len() as u64);
        // Behind the stream, bytes that are not its own.
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&[0x5a; 777]).unwrap();
        file.write_all(&bgz).unwrap();
        let stream = FileStream {
            file: &file,
            start: 777 + start as u64,
            len: (streams[0].compressed.1 - start) as u64,
        };
        let plain = &reference[streams[0].plain.0..streams[0].plain.1];
        // Indexed here, indexed beforehand (as the inside does, beside the
        // base's digest), and given the index of other bytes (made again).
        let (index, other) = (PlainIndex::of(plain), PlainIndex::of(&plain[1..]));
        // Its plain bytes in a file too, indexed as they were written (in
        // pieces of odd sizes), its block starts read from the file: what
        // a spilled base gives; the same starts, the same index.
        let mut plain_file = tempfile::tempfile().unwrap();
        plain_file.write_all(&[0xa5; 123]).unwrap();
        plain_file.write_all(plain).unwrap();
        let mut indexer = PlainIndexer::new();
        for piece in plain.chunks(4093) {
            indexer.feed(piece);
        }
        let streamed = indexer.finish();
        assert_eq!(streamed.anchors, index.anchors, "{name}");
        assert_eq!(streamed.len, index.len, "{name}");
        let (file_starts, file_plain) = block_starts_in(stream).expect("decodes from its file");
        assert_eq!((&file_starts, file_plain), (&starts, plain_len), "{name}");
        let plain_in = FileStream {
            file: &plain_file,
            start: 123,
            len: plain.len() as u64,
        };
        let mut copies_made = Vec::new();
        let ways = [
            (
                "indexed here",
                Base::with_starts_in(stream, plain, starts.clone()),
            ),
            (
                "indexed before",
                Base::with_index_in(stream, plain, starts.clone(), &index),
            ),
            (
                "index of other bytes",
                Base::with_index_in(stream, plain, starts.clone(), &other),
            ),
            (
                "plain bytes in a file",
                Base::in_files(stream, plain_in, file_starts, &streamed),
            ),
        ];
        for (how, b) in ways {
            let before = copied_bytes();
            let mut out = Vec::new();
            let from = crate::FromBase {
                known: None,
                parse: Some(&b),
            };
            crate::rebuild_with_base(&a.recipe, &a.expanded, ngz.len() as u64, &mut out, from)
                .unwrap_or_else(|e| panic!("{name}, {how}: {e}"));
            let copied = copied_bytes() - before;
            eprintln!(
                "{name}, {how}: {copied} of {} plain bytes copied",
                new.len()
            );
            assert!(out == ngz, "{name}, {how}: the rebuilt object differs");
            copies_made.push(copied);
            if copies {
                assert!(
                    copied * 2 > new.len() as u64,
                    "{name}, {how}: {copied} copied"
                );
            }
        }
        // Read from files, the base copies what it copies held.
        assert_eq!(copies_made[3], copies_made[1], "{name}");
        // Given the index of other plain bytes, it copies nothing.
        let none = Base::in_files(stream, plain_in, starts, &other);
        assert!(none.anchors.is_empty(), "{name}");
    }
}

/// A base expanded as it is read lends what a base held would: the same
/// form, block starts and index, its stream where `expand_deflated` puts it,
/// and a rebuild copying from its files copies as one from memory does;
/// another object is what `expand_streamed` makes of it, and a gzip member
/// cut short is refused.
#[test]
fn a_base_expanded_as_it_is_read_lends_what_it_would_held() {
    let (base, new) = versions();
    let (Some(bgz), Some(ngz)) = (gzip_file(6, &base), gzip_file(6, &new)) else {
        eprintln!("skipped: no gzip");
        return;
    };
    let opts = crate::Options {
        deflate_cuts: Some(1 << 20),
        ..crate::Options::default()
    };
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(&bgz).unwrap();
    let mut form = Vec::new();
    let lent = crate::stream_expand::expand_streamed_lending(
        &file,
        bgz.len() as u64,
        &mut &bgz[..],
        &mut form,
    )
    .expect("expands")
    .expect("one gzip member lends");
    let (reference, streams) = crate::expand_deflated(&bgz, &opts).unwrap();
    assert!(form == reference, "the form differs from expand's");
    assert_eq!(lent.stream, streams[0]);
    let (_, starts, _) = gzip_block_starts(&bgz).unwrap();
    assert_eq!(lent.starts, starts);
    let plain = &reference[streams[0].plain.0..streams[0].plain.1];
    assert_eq!(lent.index.anchors, PlainIndex::of(plain).anchors);

    // The form in its own file, as a spilled reference form is.
    let mut form_file = tempfile::tempfile().unwrap();
    form_file.write_all(&form).unwrap();
    let a = crate::analyze(&ngz, &opts);
    let held = Base::with_starts(&bgz[streams[0].compressed.0..], plain, starts);
    let in_files = lent.base(&file, &form_file);
    let mut copied = Vec::new();
    for b in [&held, &in_files] {
        let before = copied_bytes();
        let mut out = Vec::new();
        let from = crate::FromBase {
            known: None,
            parse: Some(b),
        };
        crate::rebuild_with_base(&a.recipe, &a.expanded, ngz.len() as u64, &mut out, from)
            .expect("rebuilds");
        assert!(out == ngz, "the rebuilt object differs");
        copied.push(copied_bytes() - before);
    }
    assert!(copied[0] * 2 > new.len() as u64, "{copied:?}");
    assert_eq!(copied[1], copied[0]);

    // Not a gzip member: what `expand_streamed` gives (here its refusal),
    // nothing lent.
    let mut other = tempfile::tempfile().unwrap();
    other.write_all(&base[..100_000]).unwrap();
    let r = crate::stream_expand::expand_streamed_lending(
        &other,
        100_000,
        &mut &base[..100_000],
        &mut Vec::new(),
    );
    assert!(matches!(
        r,
        Err(crate::stream_expand::StreamExpandError::NotOneMember(_))
    ));

    // A member cut short: refused, as `expand_streamed` refuses it.
    let cut = &bgz[..bgz.len() / 2];
    let mut cfile = tempfile::tempfile().unwrap();
    cfile.write_all(cut).unwrap();
    let r = crate::stream_expand::expand_streamed_lending(
        &cfile,
        cut.len() as u64,
        &mut &cut[..],
        &mut Vec::new(),
    );
    assert!(r.is_err(), "a cut member is refused");
}

/// An index holds at most its cap of anchors, the first ones, held or
/// streamed alike (hostile bytes could put one every 256 bytes).
#[test]
fn a_plain_index_holds_at_most_its_cap() {
    let (base, _) = versions();
    let all = index_anchors(&base);
    assert!(all.len() > 40, "{}", all.len());
    let capped = index_anchors_at_most(&base, 25);
    assert_eq!(capped.len(), 25);
    let last = capped.values().max().copied().unwrap();
    // The first 25 anchors: each capped entry is the full index's.
    for (h, at) in &capped {
        assert_eq!(all.get(h), Some(at));
    }
    assert!(all.values().filter(|&&at| at <= last).count() >= 25);
    let mut streamed = PlainIndexer::at_most(25);
    for piece in base.chunks(1000) {
        streamed.feed(piece);
    }
    assert_eq!(streamed.finish().anchors, capped);
}

/// The index made on several threads is the serial walk's, wherever the
/// pieces end (a piece shorter than the 64 bytes the hash depends on
/// included), with the cap; a piece with more candidate places than it may
/// hold (hostile bytes) gives none, and the serial walk is taken.
#[test]
fn the_index_in_pieces_is_the_serial_index() {
    const MOST: usize = 1 << 20;
    let plain: Vec<u8> = files(40, 7).concat();
    let serial = index_anchors_at_most(&plain, MAX_ANCHORS);
    assert!(serial.len() > 100, "{}", serial.len());
    for pieces in [2, 3, 7, 64] {
        let made = index_anchors_in_pieces(&plain, pieces, MAX_ANCHORS, MOST);
        assert_eq!(made.as_ref(), Some(&serial), "{pieces} pieces");
    }
    // Pieces of 40 bytes, each hash begun in the pieces before.
    let small = &plain[..40_000];
    let small_serial = index_anchors_at_most(small, MAX_ANCHORS);
    assert!(!small_serial.is_empty());
    assert_eq!(
        index_anchors_in_pieces(small, 1000, MAX_ANCHORS, MOST),
        Some(small_serial)
    );
    let capped = index_anchors_at_most(&plain, 50);
    assert_eq!(capped.len(), 50);
    assert_eq!(index_anchors_in_pieces(&plain, 5, 50, MOST), Some(capped));
    assert_eq!(index_anchors(&plain), serial);
    // Fewer candidate places allowed than a piece has: none.
    let fewer = serial.len() / 4;
    assert_eq!(index_anchors_in_pieces(&plain, 2, MAX_ANCHORS, fewer), None);
}
