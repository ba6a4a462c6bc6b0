//! Known streams: a zip member whose plain bytes are a base member's, of the
//! recipe's compressed length, is copied from the base instead of deflated;
//! a copy that is not upstream's bytes (the base made that member with
//! another level, to the same length) gives other bytes, which the caller's
//! digest check catches, and the same recipe without known streams gives
//! the object back.

mod common;

use std::io::Write;
use std::process::Command;

use common::{have, run, text};
use ferry_recipe::{
    analyze, analyze_sharing, expand, expand_known, rebuild_known, verified_streams, Options,
    Segment,
};

/// A zip made by Python's zipfile (as wheels are) of `members`: (name,
/// bytes, zlib level).
fn zip(members: &[(&str, &[u8], u32)]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let mut code = String::from(
        "import io, sys, zipfile, os\nb = io.BytesIO()\nwith zipfile.ZipFile(b, 'w') as z:\n",
    );
    for (name, bytes, level) in members {
        std::fs::write(dir.path().join(name), bytes).unwrap();
        code += &format!(
            "\tz.write(os.path.join(sys.argv[1], '{name}'), '{name}', zipfile.ZIP_DEFLATED, {level})\n"
        );
    }
    code += "sys.stdout.buffer.write(b.getvalue())";
    run(Command::new("python3").args(["-c", &code]).arg(dir.path()))
}

fn deflate(level: u32, plain: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(level));
    e.write_all(plain).unwrap();
    e.finish().unwrap()
}

/// Text that zlib deflates at level 7 to as many bytes as at level 6, but
/// not to the same bytes.
fn same_length_other_bytes() -> Vec<u8> {
    (0u64..)
        .map(|seed| text(600 + (seed as usize % 7) * 300, seed + 100))
        .find(|t| {
            let (six, seven) = (deflate(6, t), deflate(7, t));
            six != seven && six.len() == seven.len()
        })
        .expect("some text")
}

fn zlib_count(a: &ferry_recipe::Analysis) -> usize {
    a.recipe
        .segments
        .iter()
        .filter(|s| matches!(s, Segment::Zlib { .. }))
        .count()
}

#[test]
fn members_shared_with_the_base_are_copied_and_a_wrong_copy_is_caught() {
    if !have("python3", "members_shared_with_the_base_are_copied") {
        return;
    }
    let (a, b, c_old, c_new) = (
        text(300_000, 1),
        text(80_000, 2),
        text(120_000, 3),
        text(120_000, 4),
    );
    let odd = same_length_other_bytes();
    // The base: a and b as the new release has them, c in its old version,
    // and `odd` deflated at level 7 (to the new release's length at 6).
    let base = zip(&[
        ("a", &a, 6),
        ("b", &b, 6),
        ("c", &c_old, 6),
        ("odd", &odd, 7),
    ]);
    let new = zip(&[("a", &a, 6), ("b", &b, 6), ("c", &c_new, 6)]);
    let with_odd = zip(&[("a", &a, 6), ("odd", &odd, 6), ("c", &c_new, 6)]);
    let opts = Options::default();

    let (reference, known) = expand_known(base.clone(), &opts).unwrap();
    assert_eq!(
        reference,
        expand(&base, &opts).unwrap(),
        "the same reference form"
    );
    assert_eq!(known.len(), 4, "every member of the base is known");
    assert_eq!(known.held(), base.len() as u64);

    // Shared members copied, the changed one deflated: upstream's bytes.
    let an = analyze(&new, &opts);
    assert_eq!(zlib_count(&an), 3, "{:?}", an.recipe);
    let mut out = Vec::new();
    rebuild_known(
        &an.recipe,
        &an.expanded,
        new.len() as u64,
        &mut out,
        Some(&known),
    )
    .unwrap();
    assert!(out == new, "a zip with shared members rebuilds exactly");

    // A base member of the same plain bytes and length but other bytes is
    // copied (so the copy is what is written), and the object differs...
    let ao = analyze(&with_odd, &opts);
    assert_eq!(zlib_count(&ao), 3, "{:?}", ao.recipe);
    let mut wrong = Vec::new();
    rebuild_known(
        &ao.recipe,
        &ao.expanded,
        with_odd.len() as u64,
        &mut wrong,
        Some(&known),
    )
    .unwrap();
    assert_eq!(wrong.len(), with_odd.len());
    assert!(wrong != with_odd, "the level-7 copy was written");
    // ... and without known streams the recipe gives it back.
    let mut right = Vec::new();
    rebuild_known(
        &ao.recipe,
        &ao.expanded,
        with_odd.len() as u64,
        &mut right,
        None,
    )
    .unwrap();
    assert!(right == with_odd);

    // A single stream is never known: its object changed, so it did.
    let gz = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        e.write_all(&a).unwrap();
        e.finish().unwrap()
    };
    let (_, none) = expand_known(gz, &opts).unwrap();
    assert!(none.is_empty() && none.held() == 0);
}

/// `len` bytes no encoder shrinks.
fn noise(len: usize, mut x: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 56) as u8
        })
        .collect()
}

#[test]
fn members_shared_with_the_base_are_not_searched_and_rebuild_only_from_it() {
    if !have("python3", "members_shared_with_the_base_are_not_searched") {
        return;
    }
    let (a, b, c_old, c_new, d) = (
        text(200_000, 21),
        text(90_000, 22),
        text(120_000, 23),
        text(120_000, 24),
        text(150_000, 25),
    );
    let big = noise(300_000, 0x5eed);
    let base = zip(&[
        ("a", &a, 6),
        ("b", &b, 6),
        ("c", &c_old, 6),
        ("d", &d, 9),
        ("big", &big, 6),
    ]);
    let new = zip(&[
        ("a", &a, 6),
        ("b", &b, 6),
        ("c", &c_new, 6),
        ("d", &d, 9),
        ("big", &big, 6),
    ]);
    assert!(deflate(9, &d) != deflate(6, &d), "d's level shows");
    let opts = Options {
        check_streams: false,
        ..Options::default()
    };
    let (_, known) = expand_known(base, &opts).unwrap();
    let whole = analyze(&new, &opts);
    let an = analyze_sharing(&new, &opts, Some(&known));
    assert!(an.expanded == whole.expanded, "the same expanded form");
    assert_eq!(an.recipe.segments.len(), whole.recipe.segments.len());
    let zlib: Vec<usize> = (0..an.recipe.segments.len())
        .filter(|&i| matches!(an.recipe.segments[i], Segment::Zlib { .. }))
        .collect();
    assert_eq!(zlib.len(), 5, "{:?}", an.recipe);
    // `a` is the first stream (nothing before it to take params from), `c`
    // changed: both searched. `b`, `d` and `big` are the base's bytes.
    assert_eq!(an.shared, vec![zlib[1], zlib[3], zlib[4]]);
    let level = |a: &ferry_recipe::Analysis, i: usize| match &a.recipe.segments[i] {
        Segment::Zlib { params, .. } => params.level,
        s => panic!("{s:?}"),
    };
    // `d` took the params of the stream before it (level 6), untested;
    // `big`, over 64 KiB, the first whose output starts as its does.
    assert_eq!(level(&whole, zlib[3]), 9);
    assert_eq!(level(&an, zlib[3]), 6);
    // The check copies none of the shared members as its own: they are the
    // base's to copy.
    assert_eq!(verified_streams(&an, &new).len(), 2);
    assert_eq!(verified_streams(&whole, &new).len(), 5);

    // Copied from the base, the object is upstream's bytes...
    let mut out = Vec::new();
    rebuild_known(
        &an.recipe,
        &an.expanded,
        new.len() as u64,
        &mut out,
        Some(&known),
    )
    .unwrap();
    assert!(out == new, "rebuilt with the base's streams");
    // ... and without the base it is not: `d` is deflated at level 6 (so a
    // check against another base fails, and the object is analysed again).
    let mut out = Vec::new();
    let without = rebuild_known(&an.recipe, &an.expanded, new.len() as u64, &mut out, None);
    assert!(without.is_err() || out != new);
    // Every other member's params are right: with `d`'s level mended, the
    // recipe rebuilds the object without the base.
    let mut mended = an.recipe.clone();
    if let Segment::Zlib { params, .. } = &mut mended.segments[zlib[3]] {
        params.level = 9;
    }
    let mut out = Vec::new();
    rebuild_known(&mended, &an.expanded, new.len() as u64, &mut out, None).unwrap();
    assert!(out == new, "the other params rebuild their members");

    // Checked stream by stream, nothing is taken on trust.
    let checked = Options {
        check_streams: true,
        ..Options::default()
    };
    let every = analyze_sharing(&new, &checked, Some(&known));
    assert!(every.shared.is_empty());
    assert_eq!(level(&every, zlib[3]), 9);
}

#[test]
fn a_large_shared_member_alone_outside_a_batch_is_copied_too() {
    if !have("python3", "a_large_shared_member_alone_outside_a_batch") {
        return;
    }
    // Two members of 26 MB: more than a batch holds together, so each is
    // rebuilt alone (numpy's OpenBLAS, 22 MB, is so); each deflates to
    // more than a MiB.
    let (old, new_first, big) = (text(26 << 20, 31), text(26 << 20, 32), text(26 << 20, 33));
    let base = zip(&[("first", &old, 6), ("big", &big, 6)]);
    let new = zip(&[("first", &new_first, 6), ("big", &big, 6)]);
    let opts = Options {
        check_streams: false,
        ..Options::default()
    };
    let (_, known) = expand_known(base, &opts).unwrap();
    let an = analyze_sharing(&new, &opts, Some(&known));
    let zlib: Vec<usize> = (0..an.recipe.segments.len())
        .filter(|&i| matches!(an.recipe.segments[i], Segment::Zlib { .. }))
        .collect();
    assert_eq!(an.shared, vec![zlib[1]], "{:?}", an.recipe);
    let Segment::Zlib { compressed_len, .. } = an.recipe.segments[zlib[1]] else {
        unreachable!()
    };
    assert!(compressed_len > 1 << 20, "{compressed_len}");
    // With its level changed, the recipe still gives the object when the
    // member is copied from the base, and not when it is deflated.
    let mut wrong = an.recipe.clone();
    if let Segment::Zlib { params, .. } = &mut wrong.segments[zlib[1]] {
        params.level = 1;
    }
    let mut out = Vec::new();
    rebuild_known(
        &wrong,
        &an.expanded,
        new.len() as u64,
        &mut out,
        Some(&known),
    )
    .unwrap();
    assert!(out == new, "the large member was copied from the base");
    let mut out = Vec::new();
    let without = rebuild_known(&wrong, &an.expanded, new.len() as u64, &mut out, None);
    assert!(without.is_err() || out != new, "deflated at level 1");
}

#[test]
fn members_the_search_compared_whole_are_verified_and_rebuild_the_object() {
    if !have("python3", "members_the_search_compared_whole_are_verified") {
        return;
    }
    // Two small members, one whose deflated form is over the MiB the
    // search compares of a gzip stream but under the 8 MiB it compares of a
    // zip member, and one over that.
    let zip = zip(&[
        ("a", &text(50_000, 7), 6),
        ("b", &text(90_000, 8), 6),
        ("medium", &noise(3_000_000, 0x9e37_79b9_7f4a_7c15), 6),
        ("big", &noise(9_000_000, 0x51), 6),
    ]);
    let mut opts = Options {
        check_streams: false,
        ..Options::default()
    };
    let a = analyze(&zip, &opts);
    assert_eq!(zlib_count(&a), 4, "{:?}", a.recipe);
    let verified = verified_streams(&a, &zip);
    assert_eq!(
        verified.len(),
        3,
        "the big member was compared for its first MiB only"
    );
    let mut out = Vec::new();
    rebuild_known(
        &a.recipe,
        &a.expanded,
        zip.len() as u64,
        &mut out,
        Some(&verified),
    )
    .unwrap();
    assert!(out == zip);
    // Checked stream by stream, every member was compared whole.
    opts.check_streams = true;
    let a = analyze(&zip, &opts);
    assert_eq!(verified_streams(&a, &zip).len(), 4);
    // Merged with a base's streams, both are known.
    let (_, base) = expand_known(zip.clone(), &opts).unwrap();
    assert_eq!(base.merged(&verified).len(), 4);
}

#[test]
fn a_single_stream_the_search_compared_whole_is_verified_and_copied() {
    if !have(
        "gzip",
        "a_single_stream_the_search_compared_whole_is_verified",
    ) {
        return;
    }
    // A crate, a chart: one gzip stream, under the MiB the search compares.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain");
    std::fs::write(&path, text(300_000, 11)).unwrap();
    let gz = run(Command::new("gzip").args(["-6", "-n", "-c"]).arg(&path));
    let opts = Options {
        check_streams: false,
        ..Options::default()
    };
    let a = analyze(&gz, &opts);
    assert_eq!(zlib_count(&a), 1, "{:?}", a.recipe);
    let verified = verified_streams(&a, &gz);
    assert_eq!(verified.len(), 1, "its one stream was compared whole");
    let mut out = Vec::new();
    rebuild_known(
        &a.recipe,
        &a.expanded,
        gz.len() as u64,
        &mut out,
        Some(&verified),
    )
    .unwrap();
    assert!(out == gz);
    // The check copies it: with its level changed, the recipe still gives
    // the object with the stream known, and not without.
    let mut wrong = a.recipe.clone();
    for s in &mut wrong.segments {
        if let Segment::Zlib { params, .. } = s {
            params.level = if params.level == 1 { 9 } else { 1 };
        }
    }
    let mut out = Vec::new();
    rebuild_known(
        &wrong,
        &a.expanded,
        gz.len() as u64,
        &mut out,
        Some(&verified),
    )
    .unwrap();
    assert!(out == gz, "the known stream was copied");
    let mut out = Vec::new();
    let without = rebuild_known(&wrong, &a.expanded, gz.len() as u64, &mut out, None);
    assert!(
        without.is_err() || out != gz,
        "deflated again, at another level"
    );
}
