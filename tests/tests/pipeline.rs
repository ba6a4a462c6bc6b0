//! The export's pipeline: chunks encoded on every core and object copies
//! written on a thread of their own, with bundle bytes that depend only on
//! the tree, never on the threads' timing.

use ferry_e2e::*;

/// Small and large files, text (stored as zstd) and noise (stored raw).
fn fill(env: &Env) {
    for i in 0..40u64 {
        let n = 5_000 + 3_000 * i as usize;
        env.write_src(&format!("small/{i:02}.txt"), &text_bytes(n, i));
    }
    env.write_src("big/text.txt", &text_bytes(3_000_000, 70));
    env.write_src("big/noise.bin", &random_bytes(3_000_000, 80));
    let mut mixed = text_bytes(1_500_000, 90);
    mixed.extend_from_slice(&random_bytes(1_500_000, 91));
    env.write_src("big/mixed.bin", &mixed);
}

/// The volumes of the one bundle in `media`, without their headers (which
/// name the stream, different per outside key).
fn payloads(env: &Env, media: &str) -> Vec<Vec<u8>> {
    let dir = env.only_bundle(media);
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".ferry"))
        .filter(|p| !p.ends_with("manifest.ferry"))
        .collect();
    names.sort();
    names
        .iter()
        .map(|p| std::fs::read(p).unwrap()[ferry_protocol::volume::HEADER_LEN..].to_vec())
        .collect()
}

fn export_small_volumes(env: &Env, media: &str) {
    env.export_with(media, &["--volume-size", "1M"]).expect_ok();
}

#[test]
fn two_exports_of_one_tree_store_the_same_bytes_and_keep_every_copy() {
    let (a, b) = (Env::new(), Env::new());
    fill(&a);
    fill(&b);
    export_small_volumes(&a, "m1");
    export_small_volumes(&b, "m1");
    let (pa, pb) = (payloads(&a, "m1"), payloads(&b, "m1"));
    assert!(pa.len() >= 4, "{} volumes", pa.len());
    assert!(pa == pb, "two exports of one tree differ in their volumes");
    // Every object (43) has its copy, the base of the next patch.
    assert_eq!(copies(&a).len(), 43);
    a.import("m1").expect_ok();
    assert_eq!(tree_digest(&a.src), a.served_digest("tools"));

    // A small file edited: exported against the copies, imported right.
    let mut edited = b"a new first line\n".to_vec();
    edited.extend_from_slice(&text_bytes(5_000 + 3_000 * 30, 30));
    a.write_src("small/30.txt", &edited);
    a.export("m2").expect_ok();
    a.import("m2").expect_ok();
    assert_eq!(tree_digest(&a.src), a.served_digest("tools"));
}

/// The SHA-256s (hex) of the kept copies: the files of `STATE/objects`
/// (temporaries and the `packs` directory left out) and the records listed
/// by the indexes of `STATE/objects/packs` (magic, then 48-byte entries
/// starting with the SHA-256, then a 32-byte BLAKE3; see
/// `agent-outside/src/delta/packs.rs`).
fn copies(env: &Env) -> std::collections::BTreeSet<String> {
    let objects = env.out_state.join("objects");
    let mut names: std::collections::BTreeSet<String> = std::fs::read_dir(&objects)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    let Ok(packs) = std::fs::read_dir(objects.join("packs")) else {
        return names;
    };
    for entry in packs {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "idx") {
            continue;
        }
        let idx = std::fs::read(&path).unwrap();
        assert_eq!(&idx[..8], b"FERRYPX1", "{}", path.display());
        let body = &idx[8..idx.len() - 32];
        assert_eq!(body.len() % 48, 0, "{}", path.display());
        for entry in body.chunks(48) {
            let hex: String = entry[..32].iter().map(|b| format!("{b:02x}")).collect();
            assert!(names.insert(hex), "a copy kept twice: {}", path.display());
        }
    }
    names
}

#[test]
fn a_delta_removes_the_copies_of_the_objects_it_replaced_or_removed_only() {
    let env = Env::new();
    fill(&env);
    // Two files with the same bytes share one copy.
    env.write_src("small/twin.txt", &text_bytes(5_000, 0));
    env.export("m1").expect_ok();
    let first = copies(&env);
    assert_eq!(first.len(), 43);
    let digest = |data: &[u8]| ferry_protocol::id::Sha256::of(data).to_hex();
    let old_30 = digest(&text_bytes(5_000 + 3_000 * 30, 30));
    let old_00 = digest(&text_bytes(5_000, 0));
    assert!(first.contains(&old_30) && first.contains(&old_00));
    // 30 replaced, 00 removed (its twin keeps the digest), 31 removed.
    let mut edited = b"a new first line\n".to_vec();
    edited.extend_from_slice(&text_bytes(5_000 + 3_000 * 30, 30));
    env.write_src("small/30.txt", &edited);
    std::fs::remove_file(env.src.join("small/00.txt")).unwrap();
    std::fs::remove_file(env.src.join("small/31.txt")).unwrap();
    env.export("m2").expect_ok();
    let second = copies(&env);
    let old_31 = digest(&text_bytes(5_000 + 3_000 * 31, 31));
    assert!(!second.contains(&old_30), "the replaced object's copy goes");
    assert!(!second.contains(&old_31), "the removed object's copy goes");
    assert!(second.contains(&old_00), "a digest another file has stays");
    assert!(second.contains(&digest(&edited)), "the new object's copy");
    assert_eq!(second.len(), 42);
    // The twin goes too, and with it the last file of that digest.
    std::fs::remove_file(env.src.join("small/twin.txt")).unwrap();
    env.export("m3").expect_ok();
    let third = copies(&env);
    assert!(!third.contains(&old_00));
    assert_eq!(third.len(), 41);
    env.import("m1").expect_ok();
    env.import("m2").expect_ok();
    env.import("m3").expect_ok();
    assert_eq!(tree_digest(&env.src), env.served_digest("tools"));
}
