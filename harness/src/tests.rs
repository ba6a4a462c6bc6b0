//! Export and import in one process: the core decisions, fast.

use crate::{random_bytes, tree_digest, Outside, Pair};
use agent_inside::apply;
use agent_inside::db::Bind;
use agent_inside::import::{Refusal, Report};
use agent_outside::source::{Item, ItemKind, ScanCtx, Source};
use ferry_protocol::catalog::SourceKind;
use ferry_protocol::id::ChunkId;
use ferry_protocol::manifest::{self, Manifest};
use ferry_protocol::volume;
use std::collections::HashSet;
use std::path::Path;

/// The manifest of a bundle directory (not verified: the test made it).
fn manifest_of(bundle: &Path) -> Manifest {
    let bytes = std::fs::read(bundle.join("manifest.ferry")).unwrap();
    manifest::peek_unverified(&bytes)
        .unwrap()
        .1
        .into_manifest()
        .unwrap()
}

/// The one refusal a report holds.
fn only_refusal(r: &Report) -> Refusal {
    let all: Vec<_> = r.refusals().cloned().collect();
    assert_eq!(all.len(), 1, "expected one refusal: {:?}", r.failed);
    all.into_iter().next().unwrap()
}

/// The chunk ids of every file of the catalog at `sequence`.
fn catalog_chunks(o: &Outside, sequence: u64) -> HashSet<ChunkId> {
    o.catalog(sequence).unwrap().chunk_ids()
}

/// The format version of a bundle directory's manifest.
fn version_of(bundle: &Path) -> u32 {
    let bytes = std::fs::read(bundle.join("manifest.ferry")).unwrap();
    u32::from_le_bytes(bytes[8..12].try_into().unwrap())
}

#[test]
fn a_bundle_of_many_objects_travels_in_format_version_4() {
    use std::os::unix::fs::PermissionsExt;
    let mut p = Pair::new();
    for i in 0..700 {
        p.outside.write(
            &format!("d{}/f{i:04}.txt", i / 100),
            format!("file {i}\n").as_bytes(),
        );
    }
    // Shared content (a chunk referred to twice), an executable, a link.
    p.outside.write("same-a", b"same");
    p.outside.write("same-b", b"same");
    p.outside.write("tool", b"#!/bin/sh\n");
    let tool = p.outside.src.join("tool");
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("d0", p.outside.src.join("link")).unwrap();
    let (e, report) = p.step().expect("a first bundle");
    assert!(report.ok(), "{:?}", report.failed);
    // Its one-chunk objects carry their chunks without ids.
    assert_eq!(version_of(&e.dir), 4, "{} changes", e.record.added);
    p.assert_in_sync();
    // A small delta stays version 1, readable by older readers.
    p.outside.write("d0/f0000.txt", b"changed\n");
    let (e, report) = p.step().expect("a delta");
    assert!(report.ok(), "{:?}", report.failed);
    assert_eq!(version_of(&e.dir), 1);
    p.assert_in_sync();
    // A large delta with removals is version 3 again.
    std::fs::remove_dir_all(p.outside.src.join("d6")).unwrap();
    for i in 0..600 {
        p.outside.write(
            &format!("d{}/f{i:04}.txt", i / 100),
            format!("again {i}\n").as_bytes(),
        );
    }
    let (e, report) = p.step().expect("a large delta");
    assert!(report.ok(), "{:?}", report.failed);
    assert_eq!(version_of(&e.dir), 4);
    assert!(e.record.removed > 0 && e.record.changed > 0);
    p.assert_in_sync();
}

/// 1,100 one-chunk files: a first export in format version 4.
fn many_small(p: &Pair) {
    for i in 0..1100 {
        p.outside.write(
            &format!("d{}/f{i:04}.txt", i / 100),
            format!("small file {i}\n").as_bytes(),
        );
    }
}

#[test]
fn a_chunk_without_an_id_altered_in_its_volume_is_refused_and_nothing_is_applied() {
    let mut p = Pair::new();
    many_small(&p);
    let (e, media) = p.export_to_media().expect("a first bundle");
    assert_eq!(version_of(&e.dir), 4);
    let bundle = only_bundle(&media);
    let original = std::fs::read(bundle.join("manifest.ferry")).unwrap();
    let named = named_from_volumes(&bundle, &original);
    let (_, decoded) = manifest::peek_unverified(&original).unwrap();
    assert!(!decoded.is_named(), "ids are left out");
    assert!(
        decoded.manifest().is_err(),
        "and cannot be read before naming"
    );
    // The stored bytes of an id-less chunk, changed (its last byte: of the
    // content of a raw chunk, or of a zstd frame).
    let t = decoded.to_name()[500];
    let vol = bundle.join(volume::file_name(t.place.volume));
    let good = std::fs::read(&vol).unwrap();
    let mut bad = good.clone();
    bad[t.place.offset as usize + t.place.stored_len as usize - 1] ^= 0x01;
    std::fs::write(&vol, &bad).unwrap();
    let refused = |p: &Pair, what: &str| {
        let report = p.inside.import(&media).unwrap();
        let why = format!("{:?}", report.failed);
        assert!(!report.ok() && why.contains(what), "{why}");
        assert_eq!(p.inside.applied().sequence, 0, "nothing applied");
        assert!(p.inside.generations().is_empty());
        assert!(p.inside.held_chunks().is_empty());
        // The objects naming wrote before it met the bad chunk are swept.
        let objects = p.inside.layout.objects();
        let left = crate::volume_tests::files_under(&objects);
        assert!(left.is_empty(), "left in the object store: {left:?}");
    };
    // The volume's hash catches it first.
    refused(&p, "volume");
    // Signed again with the altered volume's hash (as if the signer had
    // shipped it): the object's SHA-256 refuses the computed id's bytes.
    let mut forged = named.clone();
    forged.volumes[t.place.volume as usize].blake3 = ChunkId::of(&bad).0;
    let forged = forged.sign(&p.outside.key);
    assert_eq!(version_of_bytes(&forged), 4);
    std::fs::write(bundle.join("manifest.ferry"), &forged).unwrap();
    refused(&p, "carried without an id");
    // Put back, it applies.
    std::fs::write(&vol, &good).unwrap();
    std::fs::write(bundle.join("manifest.ferry"), &original).unwrap();
    let report = p.inside.import(&media).unwrap();
    assert!(report.ok(), "{:?}", report.failed);
    p.assert_in_sync();
}

/// The one bundle directory in `media`.
fn only_bundle(media: &Path) -> std::path::PathBuf {
    std::fs::read_dir(media)
        .unwrap()
        .map(|d| d.unwrap().path())
        .find(|d| d.join("manifest.ferry").is_file())
        .unwrap()
}

fn version_of_bytes(file: &[u8]) -> u32 {
    u32::from_le_bytes(file[8..12].try_into().unwrap())
}

/// The manifest `file` of `bundle`, its id-less chunks named from the
/// volumes as a reader names them.
fn named_from_volumes(bundle: &Path, file: &[u8]) -> Manifest {
    let (_, mut d) = manifest::peek_unverified(file).unwrap();
    let ids: Vec<ChunkId> = d
        .to_name()
        .iter()
        .map(|t| {
            let vol = std::fs::read(bundle.join(volume::file_name(t.place.volume))).unwrap();
            let stored = &vol[t.place.offset as usize..][..t.place.stored_len as usize];
            let place = t.place;
            ferry_protocol::codec::decode_whole(
                &t.sha256,
                &t.key,
                place.codec,
                stored,
                place.raw_len,
            )
            .unwrap()
            .0
        })
        .collect();
    d.name(&ids).unwrap();
    d.into_manifest().unwrap()
}

#[test]
fn a_version_3_bundle_of_the_same_manifest_is_still_read() {
    let mut p = Pair::new();
    many_small(&p);
    let (e, media) = p.export_to_media().expect("a first bundle");
    assert_eq!(version_of(&e.dir), 4);
    let bundle = only_bundle(&media);
    let v4 = std::fs::read(bundle.join("manifest.ferry")).unwrap();
    // Named from the volumes as a reader would, and signed as version 3.
    let m = named_from_volumes(&bundle, &v4);
    let v3 = m.sign_as(3, &p.outside.key);
    // The ids left out are most of the difference.
    assert!(
        v3.len() > v4.len() + 1100 * 25,
        "{} against {}",
        v3.len(),
        v4.len()
    );
    std::fs::write(bundle.join("manifest.ferry"), &v3).unwrap();
    let report = p.inside.import(&media).unwrap();
    assert!(report.ok(), "{:?}", report.failed);
    assert_eq!(version_of(&bundle), 3);
    p.assert_in_sync();
}

#[test]
fn first_export_and_import_serve_the_source_tree() {
    let mut p = Pair::new();
    p.outside.write("docs/readme.txt", b"hello, inside\n");
    p.outside.write("bin/blob", &random_bytes(700_000, 1));
    std::os::unix::fs::symlink("docs", p.outside.src.join("docs-link")).unwrap();

    let (e, report) = p.step().expect("a first bundle");
    assert!(report.ok(), "{:?}", report.failed);
    assert_eq!(report.applied, vec![1]);
    assert_eq!(e.record.sequence, 1);
    assert_eq!(e.record.added, 3);
    assert_eq!(p.inside.applied().sequence, 1);
    p.assert_in_sync();
    // Every chunk shipped is held, as a checked range of the file it
    // belongs to, and nothing else: the chunk store keeps no copy.
    let shipped: Vec<String> = manifest_of(&e.dir)
        .chunks
        .iter()
        .map(|c| c.id.to_hex())
        .collect();
    let shipped_set: std::collections::BTreeSet<String> = shipped.iter().cloned().collect();
    assert_eq!(p.inside.held_chunks(), shipped_set);
    assert!(p.inside.chunk_files().is_empty());
    assert_eq!(e.record.chunks as usize, shipped.len());
    // Nothing changed: no second bundle.
    assert!(p.step().is_none());
}

#[test]
fn a_delta_ships_only_the_changed_chunks() {
    let mut p = Pair::new();
    let mut big = random_bytes(2_000_000, 7);
    p.outside.write("big.bin", &big);
    p.outside.write("other.bin", &random_bytes(300_000, 8));
    assert_eq!(p.drive(), 1);
    let before = catalog_chunks(&p.outside, 1);

    // Change 100 bytes in the middle of the big file.
    for b in &mut big[1_000_000..1_000_100] {
        *b ^= 0x5a;
    }
    p.outside.write("big.bin", &big);
    let (e, report) = p.step().expect("a second bundle");
    assert!(report.ok(), "{:?}", report.failed);
    p.assert_in_sync();

    let after = catalog_chunks(&p.outside, 2);
    let new: HashSet<_> = after.difference(&before).copied().collect();
    let m = manifest_of(&e.dir);
    let carried: HashSet<_> = m.chunks.iter().map(|c| c.id).collect();
    assert_eq!(carried, new, "the bundle carries exactly the new chunks");
    // A 100-byte edit touches one or two chunks (three if a cut point moved).
    assert!(
        (1..=3).contains(&m.chunks.len()),
        "{} chunks carried for a 100-byte edit",
        m.chunks.len()
    );
    assert_eq!(e.record.changed, 1);
    assert_eq!(e.record.added + e.record.removed, 0);
    assert!(
        e.record.bytes < 1_000_000,
        "bundle 2 is {} bytes",
        e.record.bytes
    );
    // The inside holds exactly the kept chunks of its catalog again (as
    // ranges of its files; the edit travelled as a patch, whose chunks are
    // not kept: bundle-format §5.6).
    let kept = p.outside.catalog(2).unwrap().held_chunk_ids();
    assert!(
        kept.len() < after.len(),
        "the edit should travel as a patch"
    );
    let want: std::collections::BTreeSet<String> = kept.iter().map(|c| c.to_hex()).collect();
    assert_eq!(p.inside.held_chunks(), want);
    assert!(p.inside.chunk_files().iter().all(|c| want.contains(c)));
}

#[test]
fn a_replayed_bundle_is_skipped() {
    let mut p = Pair::new();
    p.outside.write("a.txt", b"one");
    let (_, m1) = p.export_to_media().unwrap();
    p.inside.import(&m1).unwrap();
    p.outside.write("a.txt", b"two");
    let (_, m2) = p.export_to_media().unwrap();
    p.inside.import(&m2).unwrap();
    let applied = p.inside.applied();

    for media in [&m1, &m2] {
        let r = p.inside.import(media).unwrap();
        assert!(r.ok(), "{:?}", r.failed);
        assert_eq!(r.applied, Vec::<u64>::new());
        assert_eq!(r.skipped.len(), 1);
    }
    let again = p.inside.applied();
    assert_eq!(
        (again.sequence, again.hash, again.generation),
        (applied.sequence, applied.hash, applied.generation),
        "a replay changed what is applied"
    );
    p.assert_in_sync();
}

#[test]
fn a_fork_is_refused_at_an_applied_sequence_and_by_its_previous_hash() {
    let mut p = Pair::new();
    p.outside.write("a.txt", b"one");
    assert_eq!(p.drive(), 1);
    let fork = p.outside.fork(&p.dir.path().join("fork")).unwrap();

    // Both histories make a bundle 2 of the same stream, with other content.
    p.outside.write("a.txt", b"two, main");
    fork.write("a.txt", b"two, fork");
    let (main2, main_media) = p.export_to_media().unwrap();
    let fork2 = fork.export().unwrap().unwrap();
    let fork_media = p.new_media();
    fork.write_to_media(&fork2, &fork_media).unwrap();
    assert_eq!(main2.record.sequence, 2);
    assert_eq!(fork2.record.sequence, 2);
    assert_ne!(main2.record.hash, fork2.record.hash);

    // The main bundle 2 applies; the fork's is refused as another history.
    assert!(p.inside.import(&main_media).unwrap().ok());
    let r = p.inside.import(&fork_media).unwrap();
    assert_eq!(only_refusal(&r), Refusal::ReplayedDifferent { sequence: 2 });
    assert_eq!(p.inside.applied().sequence, 2);
    p.assert_in_sync();

    // The fork's bundle 3 names the fork's bundle 2: it does not chain.
    fork.write("b.txt", b"three");
    let fork3 = fork.export().unwrap().unwrap();
    let media = p.new_media();
    fork.write_to_media(&fork3, &media).unwrap();
    let r = p.inside.import(&media).unwrap();
    assert_eq!(
        only_refusal(&r),
        Refusal::BadPrevious {
            sequence: 3,
            applied: 2
        }
    );
    assert_eq!(p.inside.applied().sequence, 2);
    p.assert_in_sync();
}

#[test]
fn a_gap_is_held_and_applied_when_it_fills() {
    let mut p = Pair::new();
    let mut media = vec![];
    for (i, content) in ["one", "two", "three"].iter().enumerate() {
        p.outside.write(&format!("f{i}.txt"), content.as_bytes());
        media.push(p.export_to_media().unwrap().1);
    }
    assert!(p.inside.import(&media[0]).unwrap().ok());

    let r = p.inside.import(&media[2]).unwrap();
    assert!(r.ok(), "{:?}", r.failed);
    assert_eq!(r.held, vec![3]);
    assert!(r.applied.is_empty());
    assert_eq!(p.inside.applied().sequence, 1);
    let held = p.inside.db().held().unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].0, 3);
    assert!(held[0].1.reason.contains("waiting for bundle 2"));

    // Bundle 3's media is gone; bundle 2 arrives, and 3 follows from the held area.
    std::fs::remove_dir_all(&media[2]).unwrap();
    let r = p.inside.import(&media[1]).unwrap();
    assert!(r.ok(), "{:?}", r.failed);
    assert_eq!(r.applied, vec![2, 3]);
    assert!(p.inside.db().held().unwrap().is_empty());
    assert_eq!(p.inside.applied().sequence, 3);
    p.assert_in_sync();
}

#[test]
fn a_bundle_of_another_stream_is_refused() {
    let mut p = Pair::new();
    p.outside.write("a.txt", b"ours");
    assert_eq!(p.drive(), 1);
    let other = Outside::new(&p.dir.path().join("other"), 2).unwrap();
    p.inside.trust(&other.key, Bind::FirstUse);
    other.write("x.txt", b"theirs");
    let e = other.export().unwrap().unwrap();
    let media = p.new_media();
    other.write_to_media(&e, &media).unwrap();
    let ours = p.inside.applied().stream.unwrap();
    let theirs = manifest_of(&e.dir).stream;

    // Their bundle 1 meets our applied bundle 1: refused by its stream.
    let r = p.inside.import(&media).unwrap();
    assert_eq!(
        only_refusal(&r),
        Refusal::OtherStream {
            expected: ours,
            found: theirs
        }
    );
    assert_eq!(p.inside.applied().sequence, 1);
    p.assert_in_sync();
}

#[test]
fn a_bundle_signed_by_an_untrusted_key_is_refused() {
    let mut p = Pair::new();
    let stranger = Outside::new(&p.dir.path().join("stranger"), 9).unwrap();
    stranger.write("x.txt", b"from elsewhere");
    let e = stranger.export().unwrap().unwrap();
    let media = p.new_media();
    stranger.write_to_media(&e, &media).unwrap();
    let r = p.inside.import(&media).unwrap();
    assert_eq!(
        only_refusal(&r),
        Refusal::UntrustedKey {
            key: stranger.key.public().short()
        }
    );
    assert_eq!(p.inside.applied().sequence, 0);
    assert!(p.inside.chunk_files().is_empty());
}

#[test]
fn a_tampered_volume_is_refused_and_nothing_is_applied() {
    let mut p = Pair::new();
    p.outside.write("a.bin", &random_bytes(200_000, 3));
    assert_eq!(p.drive(), 1);
    let served = p.inside.served_digest();
    let chunks = p.inside.chunk_files();
    let generation = p.inside.applied().generation;

    p.outside.write("b.bin", &random_bytes(300_000, 4));
    let (_, media) = p.export_to_media().unwrap();
    let bundle = std::fs::read_dir(&media)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let vol = bundle.join(volume::file_name(0));
    let mut bytes = std::fs::read(&vol).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&vol, bytes).unwrap();

    let r = p.inside.import(&media).unwrap();
    assert_eq!(r.errors.len(), 1, "{:?}", r.failed);
    let bad = r.errors[0]
        .chain()
        .find_map(|c| c.downcast_ref::<ferry_protocol::Error>());
    assert!(
        matches!(bad, Some(ferry_protocol::Error::BadVolume { index: 0, .. })),
        "{:?}",
        r.failed
    );
    assert!(r.applied.is_empty());
    let applied = p.inside.applied();
    assert_eq!((applied.sequence, applied.generation), (1, generation));
    assert_eq!(p.inside.served_digest(), served);
    assert_eq!(p.inside.chunk_files(), chunks, "the chunk store changed");
    assert!(!p.inside.layout.staging().exists(), "staging was left");

    // `verify` says the same, and the intact bundle (from the outside's copy) applies.
    let r = p.inside.verify(&media).unwrap();
    assert_eq!(r.errors.len(), 1, "{:?}", r.failed);
    let kept = p.outside.layout.bundles();
    let r = p.inside.import(&kept).unwrap();
    assert!(r.ok(), "{:?}", r.failed);
    assert_eq!(r.applied, vec![2]);
    p.assert_in_sync();
}

#[test]
fn an_expired_bundle_is_refused_unless_allowed() {
    let mut p = Pair::new();
    p.outside.opts.expires_in = 86_400;
    p.outside.write("a.txt", b"stale");
    let long_ago = ferry_agent_common::now_unix() - 10 * 86_400;
    let e = p.outside.export_at(long_ago).unwrap().unwrap();
    let media = p.new_media();
    p.outside.write_to_media(&e, &media).unwrap();

    let r = p.inside.import(&media).unwrap();
    assert_eq!(
        only_refusal(&r),
        Refusal::Expired {
            sequence: 1,
            expires: long_ago + 86_400,
            created: long_ago
        }
    );
    assert_eq!(p.inside.applied().sequence, 0);
    // The refused bundle is not held: it is the next one, it just expired.
    assert!(p.inside.db().held().unwrap().is_empty());

    p.inside.apply.allow_expired = true;
    let r = p.inside.import(&media).unwrap();
    assert_eq!(r.applied, vec![1], "{:?}", r.failed);
    p.assert_in_sync();
}

#[test]
fn check_follows_names_each_broken_rule() {
    let mut p = Pair::new();
    p.outside.write("a.txt", b"one");
    let (_, m1) = p.export_to_media().unwrap();
    let db = p.inside.db();
    let trusted = db.trusted().unwrap();
    let bundle = std::fs::read_dir(&m1)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let b = agent_inside::bundle::open(&bundle, &trusted, &p.inside.limits).unwrap();
    let fresh = agent_inside::db::Applied::default();
    let opts = p.inside.apply;
    let now = b.head().created;
    assert_eq!(apply::check_follows(&b, &fresh, opts, now), Ok(()));
    // Not next: the store is at 1 already.
    let at_one = agent_inside::db::Applied {
        sequence: 1,
        ..fresh.clone()
    };
    assert_eq!(
        apply::check_follows(&b, &at_one, opts, now),
        Err(Refusal::NotNext {
            sequence: 1,
            applied: 1
        })
    );
    // Expired, one second after its expiry.
    let late = b.head().expires + 1;
    assert!(matches!(
        apply::check_follows(&b, &fresh, opts, late),
        Err(Refusal::Expired { sequence: 1, .. })
    ));
    // Another stream.
    let elsewhere = agent_inside::db::Applied {
        stream: Some(ferry_protocol::id::StreamId([0xee; 16])),
        ..fresh
    };
    assert!(matches!(
        apply::check_follows(&b, &elsewhere, opts, now),
        Err(Refusal::OtherStream { .. })
    ));
    // The message an operator sees names the bundle and what to do.
    let late_msg = apply::check_follows(&b, &agent_inside::db::Applied::default(), opts, late)
        .unwrap_err()
        .to_string();
    assert!(
        late_msg.contains("bundle 1 expired") && late_msg.contains("--allow-expired"),
        "{late_msg}"
    );
}

#[test]
fn recover_finishes_a_switch_the_crash_interrupted() {
    let mut p = Pair::new();
    // Generation 1 is kept past the switch, as it is between the commit and
    // the cleanup of an apply.
    p.inside.apply.policy.keep_previous = true;
    p.outside.write("a.txt", b"one");
    assert_eq!(p.drive(), 1);
    let gen1 = p.inside.applied().generation.unwrap();
    p.outside.write("a.txt", b"two");
    assert_eq!(p.drive(), 1);
    let gen2 = p.inside.applied().generation.unwrap();
    assert_ne!(gen1, gen2);

    // A crash after the database commit, before `current` moved: the link
    // still names generation 1 while the database says 2.
    let link = p.inside.layout.current_link();
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(Path::new("gens").join(&gen1), &link).unwrap();
    assert_eq!(std::fs::read(p.inside.served("a.txt")).unwrap(), b"one");

    let db = p.inside.db();
    let policy = agent_inside::policy::Policy::default();
    apply::recover(&p.inside.layout, &db, &p.inside.limits, &policy).unwrap();
    assert_eq!(p.inside.layout.current_gen_name(), Some(gen2.clone()));
    assert_eq!(std::fs::read(p.inside.served("a.txt")).unwrap(), b"two");
    // The switch done, generation 1 is dropped.
    assert_eq!(p.inside.generations(), vec![gen2]);
}

#[test]
fn recover_removes_what_an_interrupted_apply_left() {
    let mut p = Pair::new();
    p.outside.write("a.bin", &random_bytes(100_000, 5));
    assert_eq!(p.drive(), 1);
    let served = p.inside.served_digest();
    let chunks = p.inside.chunk_files();
    let layout = p.inside.layout.clone();

    // A crash mid-apply: a half-built generation, staged chunks, a stray
    // chunk in the store (from before chunks were staged), a partial push.
    let tmp_gen = layout.gens().join(".tmp-00000002-deadbeef");
    std::fs::create_dir_all(tmp_gen.join("files/tools")).unwrap();
    std::fs::write(tmp_gen.join("files/tools/half"), b"half").unwrap();
    std::fs::create_dir_all(layout.staging().join("ab")).unwrap();
    std::fs::write(layout.staging().join("ab/abcd"), b"staged").unwrap();
    let stray = ChunkId::of(b"stray").to_hex();
    let stray_dir = layout.chunks().join(&stray[..2]);
    std::fs::create_dir_all(&stray_dir).unwrap();
    std::fs::write(stray_dir.join(&stray), b"stray").unwrap();
    let incoming = layout.incoming().join("bundle-00000000-00000001");
    std::fs::create_dir_all(&incoming).unwrap();

    let db = p.inside.db();
    apply::recover(&layout, &db, &p.inside.limits, &p.inside.apply.policy).unwrap();
    drop(db);
    assert!(
        !tmp_gen.exists(),
        "the half-built generation is still there"
    );
    assert!(!layout.staging().exists(), "staging is still there");
    assert_eq!(
        p.inside.chunk_files(),
        chunks,
        "the stray chunk is still there"
    );
    assert!(
        !incoming.exists(),
        "chunks pushed for an applied bundle are still there"
    );
    assert_eq!(p.inside.served_digest(), served);

    // And the next bundle applies on top.
    p.outside.write("b.txt", b"next");
    assert_eq!(p.drive(), 1);
    p.assert_in_sync();
}

/// A source that lists one good file and then fails, to see how export
/// reports a source's error.
struct Failing;

impl Source for Failing {
    fn name(&self) -> &str {
        "flaky"
    }
    fn kind(&self) -> SourceKind {
        SourceKind::Files
    }
    fn scan(
        &self,
        _cx: &ScanCtx<'_>,
        sink: &mut dyn FnMut(Item) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        sink(Item {
            path: "ok.txt".into(),
            predecessor: None,
            kind: ItemKind::File {
                executable: false,
                fingerprint: None,
                expected_sha256: None,
                open: Box::new(|| Ok(Box::new(&b"fine"[..]))),
            },
        })?;
        sink(Item {
            path: "gone.txt".into(),
            predecessor: None,
            kind: ItemKind::File {
                executable: false,
                fingerprint: None,
                expected_sha256: None,
                open: Box::new(|| anyhow::bail!("upstream answered 404")),
            },
        })
    }
}

#[test]
fn export_names_the_failing_source_once_and_writes_nothing() {
    let p = Pair::new();
    let err = p
        .outside
        .export_sources(&[Box::new(Failing)])
        .err()
        .expect("the export fails");
    let msg = ferry_agent_common::one_line(&err);
    assert_eq!(msg, "source \"flaky\": gone.txt: upstream answered 404");
    let kept: Vec<_> = std::fs::read_dir(p.outside.layout.bundles())
        .unwrap()
        .collect();
    assert!(kept.is_empty(), "the failed export left {kept:?}");
    // The ledger did not move.
    assert!(p.outside.catalog(1).is_err());
}

/// The files of the generation directory `gen`, relative, sorted.
fn files_in(gen: &Path) -> Vec<String> {
    let mut out: Vec<String> = tree_digest(gen).into_keys().collect();
    out.sort();
    out
}

#[test]
fn a_generation_is_its_index_and_export_tree_writes_it_out_with_modes() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mut p = Pair::new();
    for i in 0..50 {
        p.outside.write(
            &format!("d{}/f{i}.txt", i / 10),
            format!("file {i}").as_bytes(),
        );
    }
    p.outside.write("tool", b"#!/bin/sh\necho hi\n");
    let tool = p.outside.src.join("tool");
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("d0", p.outside.src.join("link")).unwrap();
    assert_eq!(p.drive(), 1);
    p.assert_in_sync();
    let gen = p.inside.layout.gen(&p.inside.applied().generation.unwrap());
    assert_eq!(
        files_in(&gen),
        ["index.base", "index.delta", "index.meta"],
        "a generation holds its index, no tree"
    );

    let out = p.inside.layout.root.join("../exported");
    let w = agent_inside::export_tree::export(&p.inside.layout, &out, false).unwrap();
    assert_eq!((w.linked, w.copied, w.symlinks), (50, 1, 1));
    let tree = out.join("files").join(crate::SOURCE);
    assert_eq!(tree_digest(&tree), tree_digest(&p.outside.src));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&tree.join("tool")), 0o755, "served executable");
    assert_eq!(mode(&tree.join("d1/f10.txt")), 0o644);
    assert_eq!(
        std::fs::metadata(tree.join("d1/f10.txt")).unwrap().ino(),
        std::fs::metadata(p.inside.object_of("d1/f10.txt"))
            .unwrap()
            .ino(),
        "a file is a hard link to its object"
    );
    // Not over a tree that holds something.
    let again = agent_inside::export_tree::export(&p.inside.layout, &out, false);
    assert!(again.unwrap_err().to_string().contains("is not empty"));
}

#[test]
fn a_generation_of_an_older_tree_serves_and_the_next_import_drops_the_tree() {
    let mut p = Pair::new();
    for i in 0..30 {
        p.outside.write(
            &format!("d{}/f{i}.txt", i / 10),
            format!("file {i}").as_bytes(),
        );
    }
    assert_eq!(p.drive(), 1);
    // What an older ferry-in left: the generation's files as a tree, an
    // `index.meta` without the object store, no object store.
    let layout = p.inside.layout.clone();
    let gen = layout.gen(&p.inside.applied().generation.unwrap());
    let out = layout.root.join("../old-tree");
    agent_inside::export_tree::export(&layout, &out, true).unwrap();
    std::fs::rename(out.join("files"), gen.join("files")).unwrap();
    let meta_path = gen.join(agent_inside::genread::INDEX_META);
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
    meta.as_object_mut().unwrap().remove("object_store");
    meta.as_object_mut().unwrap().remove("treeless");
    std::fs::write(&meta_path, serde_json::to_vec(&meta).unwrap()).unwrap();
    std::fs::remove_dir_all(layout.objects()).unwrap();
    let old = agent_inside::genread::GenRead::open_current(&layout)
        .unwrap()
        .unwrap();
    assert!(old.has_tree());
    assert!(
        p.inside.served("d1/f10.txt").starts_with(&gen),
        "read from its tree"
    );
    p.assert_in_sync();

    p.outside.write("d0/f0.txt", b"changed");
    assert_eq!(p.drive(), 1);
    p.assert_in_sync();
    let gen = layout.gen(&p.inside.applied().generation.unwrap());
    assert_eq!(
        files_in(&gen),
        ["index.base", "index.delta", "index.meta"],
        "the next import writes a generation without a tree"
    );
    assert!(p.inside.served("d1/f10.txt").starts_with(layout.objects()));
}
