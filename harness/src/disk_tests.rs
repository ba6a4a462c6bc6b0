//! The inside's disk once an import has finished: about the bytes it serves
//! (chunks are ranges of the served files, the previous generation is
//! dropped), every chunk of its catalog still held, and a rotten range never
//! used.

use crate::{random_bytes, Pair};
use agent_inside::ranges::RangeError;
use ferry_protocol::catalog::Encoding;
use std::collections::BTreeSet;

/// Room beyond 1.15x the served bytes for the state database, the site key
/// and the directories.
const ALLOWANCE: u64 = 2 << 20;

/// Serves about 10 MB: eight random files, a small text, and release 1.0
/// of a tool that the update replaces with 1.1 (shipped as a patch).
fn first_tree(p: &mut Pair) -> Vec<u8> {
    for i in 0..8u64 {
        let n = 1_000_000 + i as usize * 37_000;
        p.outside
            .write(&format!("pool/f{i}.bin"), &random_bytes(n, 100 + i));
    }
    p.outside.write("README", b"the tools of the site\n");
    let tool = random_bytes(1_500_000, 11);
    p.outside.write("pool/tool_1.0_amd64.bin", &tool);
    assert_eq!(p.drive(), 1);
    tool
}

/// An update: one file edited in the middle, one removed, one added that
/// repeats most of another, and the tool's next release.
fn update(p: &mut Pair, tool: &[u8]) {
    let mut f0 = random_bytes(1_000_000, 100);
    f0[500_000..500_200].fill(7);
    p.outside.write("pool/f0.bin", &f0);
    p.outside.remove("pool/f1.bin");
    let mut f8 = random_bytes(1_074_000, 102);
    f8.extend_from_slice(b"and a tail");
    p.outside.write("pool/f8.bin", &f8);
    let mut next = tool.to_vec();
    for i in (0..next.len()).step_by(250_000) {
        next[i..i + 16].copy_from_slice(b"release 1.1 edit");
    }
    p.outside.remove("pool/tool_1.0_amd64.bin");
    p.outside.write("pool/tool_1.1_amd64.bin", &next);
    assert_eq!(p.drive(), 1);
    p.assert_in_sync();
}

/// Every kept chunk of the inside's catalog is held (in the chunk store or
/// as a range of a served file that hashes to it): what the outside counts
/// on. A patch's chunks are not kept (bundle-format §5.6).
fn assert_holds_its_catalog(p: &Pair) {
    let catalog = p.inside.db().catalog().unwrap();
    let hex = |ids: &std::collections::HashSet<_>| -> BTreeSet<String> {
        ids.iter()
            .map(|c: &ferry_protocol::id::ChunkId| c.to_hex())
            .collect()
    };
    let want = hex(&catalog.held_chunk_ids());
    let held = p.inside.held_chunks();
    let missing: Vec<_> = want.difference(&held).collect();
    assert!(
        missing.is_empty(),
        "chunks of the catalog not held: {missing:?}"
    );
    let patch: BTreeSet<String> = hex(&catalog.chunk_ids())
        .difference(&want)
        .cloned()
        .collect();
    let kept: Vec<_> = patch.intersection(&held).collect();
    assert!(
        kept.is_empty(),
        "patch chunks kept after the apply: {kept:?}"
    );
}

#[test]
fn after_an_update_the_inside_takes_at_most_115_percent_of_what_it_serves() {
    let mut p = Pair::new();
    let tool = first_tree(&mut p);
    update(&mut p, &tool);
    let catalog = p.inside.db().catalog().unwrap();
    assert!(
        catalog
            .files()
            .any(|(_, f)| matches!(f.encoding, Encoding::Rebuilt(_))),
        "the tool's new release should travel as a patch"
    );
    assert_holds_its_catalog(&p);
    let (disk, served) = (p.inside.disk_bytes(), p.inside.served_bytes());
    eprintln!(
        "inside: {disk} bytes on disk for {served} served ({:.3}x)",
        disk as f64 / served as f64
    );
    assert!(
        disk as f64 <= 1.15 * served as f64 + ALLOWANCE as f64,
        "the inside takes {disk} bytes on disk for {served} bytes served ({:.2}x, over 1.15x \
         plus {ALLOWANCE}); generations {:?}, {} chunk files",
        disk as f64 / served as f64,
        p.inside.generations(),
        p.inside.chunk_files().len()
    );
    assert_eq!(p.inside.generations().len(), 1);
}

#[test]
fn keep_previous_keeps_the_generation_before_the_current_one() {
    let mut p = Pair::new();
    p.inside.apply.policy.keep_previous = true;
    let tool = first_tree(&mut p);
    let first = p.inside.applied().generation.unwrap();
    let old_f0 = std::fs::read(p.inside.served("pool/f0.bin")).unwrap();
    update(&mut p, &tool);
    let second = p.inside.applied().generation.unwrap();
    let mut both = vec![first.clone(), second.clone()];
    both.sort();
    assert_eq!(p.inside.generations(), both);
    // The previous generation is whole and still has the old bytes.
    let old = agent_inside::genread::GenRead::open(&p.inside.layout, &first).unwrap();
    let key = ferry_protocol::path::ObjectKey {
        source: crate::SOURCE.into(),
        path: "pool/f0.bin".into(),
    };
    let f = old.file(&key).unwrap().unwrap();
    assert_eq!(std::fs::read(old.bytes_path(&key, &f)).unwrap(), old_f0);
    assert_holds_its_catalog(&p);
    // Only the one before: a third bundle drops the first generation.
    p.outside.write("README", b"the tools of the site, again\n");
    assert_eq!(p.drive(), 1);
    let third = p.inside.applied().generation.unwrap();
    let mut both = vec![second, third];
    both.sort();
    assert_eq!(p.inside.generations(), both);

    // Turned off, the next import keeps the current generation only.
    p.inside.apply.policy.keep_previous = false;
    p.outside
        .write("README", b"the tools of the site, once more\n");
    assert_eq!(p.drive(), 1);
    assert_eq!(
        p.inside.generations(),
        vec![p.inside.applied().generation.unwrap()]
    );
}

#[test]
fn a_rotten_file_range_is_refused_as_a_chunk_source() {
    let mut p = Pair::new();
    let blob = random_bytes(300_000, 4);
    p.outside.write("a.bin", &blob);
    assert_eq!(p.drive(), 1);
    // Rot in the served object: the chunk that is that range is gone.
    let served = p.inside.object_of("a.bin");
    let mut bytes = std::fs::read(&served).unwrap();
    bytes[150_000] ^= 0xff;
    std::fs::write(&served, &bytes).unwrap();

    // a.bin with another ending (a new object: an identical copy would be
    // the same object, read from no range), shipped as chunks: the bundle
    // carries its last chunk only, the inside must build the rest from
    // a.bin's ranges, one of which is rotten.
    p.outside.opts.delta.level = None;
    let mut copy = blob.clone();
    copy.extend_from_slice(b"and another ending");
    p.outside.write("copy.bin", &copy);
    let (e, report) = p.step().expect("a second bundle");
    assert!(
        e.record.chunks <= 1,
        "the copy needs its last chunk only, not {}",
        e.record.chunks
    );
    assert_eq!(report.applied, Vec::<u64>::new(), "{:?}", report.failed);
    let err = report
        .errors
        .iter()
        .find_map(|e| e.chain().find_map(|c| c.downcast_ref::<RangeError>()))
        .unwrap_or_else(|| panic!("no range error in {:?}", report.failed));
    assert!(
        matches!(err, RangeError::Rotten { offset, len, .. } if (*offset..*offset + *len as u64).contains(&150_000)),
        "{err}"
    );
    assert!(
        report.failed[0].contains("ferry-in scrub"),
        "{:?}",
        report.failed
    );
    // Nothing applied: bundle 1's generation is still served, alone.
    assert_eq!(p.inside.applied().sequence, 1);
    assert!(!p.inside.served("copy.bin").exists());
    assert_eq!(p.inside.generations().len(), 1);
}
