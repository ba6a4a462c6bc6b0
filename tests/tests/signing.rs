//! Signing apart from the export (docs/threats.md, key compromise): `export
//! --unsigned` scans and writes the bundle without the key, `ferry-out sign`
//! (only the key and the bundle) checks and signs it, `publish` (or the next
//! export) moves it into the stream and onto media. An unsigned bundle is
//! never taken for a bundle inside.

use ferry_e2e::*;
use std::path::{Path, PathBuf};

/// Moves the signing key out of the outside's state directory (as on a host
/// whose export user cannot read it); returns where it went.
fn key_elsewhere(env: &Env) -> PathBuf {
    let dir = env.root().join("signer");
    std::fs::create_dir_all(&dir).unwrap();
    let to = dir.join("signing.key");
    std::fs::rename(env.out_state.join("signing.key"), &to).unwrap();
    to
}

fn export_unsigned(env: &Env, media: &str) -> Run {
    let m = env.root().join(media);
    env.out(&[
        "export",
        "--unsigned",
        "--config",
        env.config.to_str().unwrap(),
        "--to",
        m.to_str().unwrap(),
    ])
}

fn sign(env: &Env, dir: &Path, key: &Path) -> Run {
    env.out(&[
        "sign",
        "--key",
        key.to_str().unwrap(),
        dir.to_str().unwrap(),
    ])
}

fn publish(env: &Env, media: &str) -> Run {
    let m = env.root().join(media);
    env.out(&["publish", "--to", m.to_str().unwrap()])
}

/// The kept bundle directories of the outside.
fn kept(env: &Env) -> Vec<PathBuf> {
    dir_names(&env.out_state.join("bundles"))
        .into_iter()
        .filter(|n| !n.starts_with('.'))
        .map(|n| env.out_state.join("bundles").join(n))
        .collect()
}

#[test]
fn an_unsigned_export_signed_elsewhere_is_published_and_applied() {
    let env = Env::new();
    let key = key_elsewhere(&env);
    let blob = random_bytes(400_000, 11);
    env.write_src("a.bin", &blob);
    env.write_src("b.txt", b"bee\n");
    let r = export_unsigned(&env, "m1").expect_ok();
    assert!(r.stdout.contains("exported unsigned"), "{}", r.stdout);
    let dirs = kept(&env);
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let bundle = &dirs[0];
    assert!(bundle.join("manifest.unsigned").is_file());
    assert!(!bundle.join("manifest.ferry").exists());
    assert!(
        dir_names(&env.root().join("m1")).is_empty(),
        "nothing on media yet"
    );
    let st = env.out(&["status"]).expect_ok();
    assert!(st.stdout.contains("awaits its signature"), "{}", st.stdout);

    // Until it is signed, no other bundle can build on it.
    env.write_src("c.txt", b"sea\n");
    export_unsigned(&env, "m1").expect_fail(&["awaits its signature", "ferry-out sign"]);
    publish(&env, "m1").expect_fail(&["not signed yet"]);

    // The signing machine: a copy of the bundle and the key, nothing else.
    let elsewhere = env.root().join("signing-host");
    std::fs::create_dir(&elsewhere).unwrap();
    copy_tree(bundle, &elsewhere.join(bundle.file_name().unwrap()));
    let r = sign(&env, &elsewhere, &key).expect_ok();
    for want in ["signed bundle 1", "2 objects put", "sources: tools"] {
        assert!(r.stdout.contains(want), "lacks {want:?}:\n{}", r.stdout);
    }
    let signed = elsewhere
        .join(bundle.file_name().unwrap())
        .join("manifest.ferry");
    std::fs::copy(&signed, bundle.join("manifest.ferry")).unwrap();
    // Signing twice is refused; a directory of signed bundles has nothing to sign.
    let r = sign(&env, &elsewhere, &key).expect_ok();
    assert!(r.stdout.contains("nothing to sign"), "{}", r.stdout);
    let again = sign(&env, &elsewhere.join(bundle.file_name().unwrap()), &key);
    again.expect_fail(&["signed already"]);

    publish(&env, "m1").expect_ok();
    let again = publish(&env, "m1").expect_ok();
    assert!(
        again.stdout.contains("no bundle awaits publishing"),
        "{}",
        again.stdout
    );
    assert!(
        !bundle.join("manifest.unsigned").exists(),
        "the kept copy is the signed bundle"
    );
    env.import("m1").expect_ok();
    assert_eq!(env.applied_sequence(), 1);
    assert_eq!(std::fs::read(env.served("a.bin")).unwrap(), blob);
    assert!(!env.served("c.txt").exists());

    // Next round, signed in place; the next export publishes it first and
    // builds on it, so the chain holds.
    export_unsigned(&env, "m2").expect_ok();
    let r = sign(&env, &env.out_state.join("bundles"), &key).expect_ok();
    assert!(r.stdout.contains("signed bundle 2"), "{}", r.stdout);
    env.write_src("d.txt", b"dee\n");
    let r = export_unsigned(&env, "m2").expect_ok();
    assert!(r.stderr.contains("publishing it"), "{}", r.stderr);
    sign(&env, &env.out_state.join("bundles"), &key).expect_ok();
    publish(&env, "m2").expect_ok();
    let r = env.import("m2").expect_ok();
    assert_eq!(env.applied_sequence(), 3, "{}", r.all());
    assert_eq!(std::fs::read(env.served("d.txt")).unwrap(), b"dee\n");
    assert_eq!(std::fs::read(env.served("c.txt")).unwrap(), b"sea\n");
}

#[test]
fn a_tampered_unsigned_bundle_is_not_signed() {
    let env = Env::new();
    let key = key_elsewhere(&env);
    env.write_src("a.bin", &random_bytes(300_000, 12));
    export_unsigned(&env, "m1").expect_ok();
    let bundle = kept(&env).remove(0);
    let vol = dir_names(&bundle)
        .into_iter()
        .find(|n| n.starts_with("vol"))
        .expect("a volume");
    let vol = bundle.join(vol);
    let good = std::fs::read(&vol).unwrap();
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x40;
    std::fs::write(&vol, &bad).unwrap();
    sign(&env, &bundle, &key).expect_fail(&["does not match its manifest", "volume 0"]);
    assert!(!bundle.join("manifest.ferry").exists());

    // A body altered (the volume's hash it lists) is refused too.
    std::fs::write(&vol, &good).unwrap();
    let m = bundle.join("manifest.unsigned");
    let body = std::fs::read(&m).unwrap();
    let hash = ferry_protocol::id::ChunkId::of(&good).0;
    let at = body
        .windows(32)
        .position(|w| w == hash)
        .expect("the body lists the volume's BLAKE3");
    let mut altered = body.clone();
    altered[at] ^= 0x01;
    std::fs::write(&m, &altered).unwrap();
    sign(&env, &bundle, &key).expect_fail(&["does not match its manifest", "volume 0"]);
    // Cut short, it is refused as truncated.
    std::fs::write(&m, &body[..body.len() - 1]).unwrap();
    sign(&env, &bundle, &key).expect_fail(&["truncated"]);
    assert!(!bundle.join("manifest.ferry").exists());

    // Whole again, signed by a key that is not this outside's: publish refuses.
    std::fs::write(&m, &body).unwrap();
    let stranger = env.root().join("stranger");
    ferry_out(&stranger, &["keygen"]).expect_ok();
    sign(&env, &bundle, &stranger.join("signing.key")).expect_ok();
    publish(&env, "m1").expect_fail(&["signed by key", "this outside's key"]);
    // Dropped, exported afresh, signed by the right key.
    env.out(&["discard"]).expect_ok();
    export_unsigned(&env, "m1").expect_ok();
    sign(&env, &env.out_state.join("bundles"), &key).expect_ok();
    publish(&env, "m1").expect_ok();
    env.import("m1").expect_ok();
    assert_eq!(env.applied_sequence(), 1);
}

#[test]
fn an_unsigned_bundle_offered_to_ferry_in_is_refused_naming_the_missing_signature() {
    let env = Env::new();
    key_elsewhere(&env);
    env.write_src("a.bin", &random_bytes(100_000, 13));
    export_unsigned(&env, "m1").expect_ok();
    let bundle = kept(&env).remove(0);
    let media = env.root().join("m1");
    let on_media = media.join(bundle.file_name().unwrap());
    std::fs::create_dir(&media).unwrap();
    copy_tree(&bundle, &on_media);
    env.import("m1").expect_fail(&["unsigned", "no signature"]);
    env.verify("m1").expect_fail(&["unsigned"]);
    // Renamed to look like a manifest, it is still an unsigned one.
    std::fs::rename(
        on_media.join("manifest.unsigned"),
        on_media.join("manifest.ferry"),
    )
    .unwrap();
    env.import("m1").expect_fail(&["unsigned", "no signature"]);
    assert_eq!(env.applied_sequence(), 0);
}

#[test]
fn export_unsigned_never_needs_the_key() {
    let env = Env::new();
    env.write_src("a.bin", b"alpha\n");
    // The key is not there to read at all: a signed export fails, an
    // unsigned one (flag or config) does not.
    let key = key_elsewhere(&env);
    env.export("m1").expect_fail(&["no signing key"]);
    std::fs::create_dir(env.out_state.join("signing.key")).unwrap();
    env.export("m1").expect_fail(&["signing key"]);
    export_unsigned(&env, "m1").expect_ok();
    sign(&env, &env.out_state.join("bundles"), &key).expect_ok();
    publish(&env, "m1").expect_ok();

    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        format!("[export]\nsign = \"separate\"\n{text}"),
    )
    .unwrap();
    env.write_src("b.txt", b"beta\n");
    let r = env.export("m1").expect_ok();
    assert!(r.stdout.contains("exported unsigned"), "{}", r.stdout);
    sign(&env, &env.out_state.join("bundles"), &key).expect_ok();
    publish(&env, "m1").expect_ok();
    env.import("m1").expect_ok();
    assert_eq!(env.applied_sequence(), 2);
    assert_eq!(std::fs::read(env.served("b.txt")).unwrap(), b"beta\n");

    // A config value that is neither is refused by name.
    std::fs::write(&env.config, format!("[export]\nsign = \"later\"\n{text}")).unwrap();
    env.export("m1").expect_fail(&["later"]);
}
