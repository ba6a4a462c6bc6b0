//! Rebase snapshots (`ferry-out export --rebase`, bundle-format §17): a new
//! or rebuilt inside joins an old stream from one snapshot, then follows it.

use ferry_e2e::*;
use std::path::{Path, PathBuf};

/// Three bundles `m1`..`m3`, the third changing a file the second added (a
/// patch when the delta finds one), then the rebase snapshot of bundle 3
/// in `r3`.
fn three_bundles_and_a_snapshot() -> Env {
    let env = Env::new();
    env.write_src("a/one.txt", &text_bytes(300_000, 1));
    env.export("m1").expect_ok();
    env.write_src("b/two.bin", &random_bytes(200_000, 2));
    env.export("m2").expect_ok();
    let mut changed = text_bytes(300_000, 1);
    changed[1_000..1_100].copy_from_slice(&[b'x'; 100]);
    changed.extend_from_slice(b"a new tail\n");
    env.write_src("a/one.txt", &changed);
    std::fs::remove_file(env.src.join("b/two.bin")).unwrap();
    env.write_src("c/three.txt", b"three\n");
    env.export("m3").expect_ok();
    rebase(&env, "r3").expect_ok();
    env
}

fn rebase(env: &Env, media: &str) -> Run {
    let m = env.root().join(media);
    env.out(&[
        "export",
        "--rebase",
        "--config",
        env.config.to_str().unwrap(),
        "--to",
        m.to_str().unwrap(),
    ])
}

/// A second, fresh inside trusting the outside's key for its stream.
fn fresh_inside(env: &Env) -> PathBuf {
    let state = env.root().join("in-new");
    ferry_in(
        &state,
        &[
            "trust",
            "add",
            env.out_state.join("signing.pub").to_str().unwrap(),
            "--stream",
            &env.stream(),
        ],
    )
    .expect_ok();
    state
}

fn import(state: &Path, env: &Env, media: &str, extra: &[&str]) -> Run {
    let m = env.root().join(media);
    let mut args = vec!["import"];
    args.extend_from_slice(extra);
    args.push(m.to_str().unwrap());
    ferry_in(state, &args)
}

fn applied(state: &Path) -> u64 {
    status_of(state).applied_sequence
}

fn served(state: &Path) -> std::collections::BTreeMap<String, String> {
    served_digest_of(state, "tools")
}

#[test]
fn a_fresh_inside_joins_from_a_snapshot_then_follows_the_stream_and_a_replay_is_refused() {
    let env = three_bundles_and_a_snapshot();
    let fresh = fresh_inside(&env);
    let r = import(&fresh, &env, "r3", &[]).expect_ok();
    assert!(r.all().contains("1 applied"), "{}", r.all());
    assert_eq!(applied(&fresh), 3);
    assert_eq!(served(&fresh), tree_digest(&env.src));

    // The stream's own bundle 3 is the same link: skipped as applied.
    let r = import(&fresh, &env, "m3", &[]).expect_ok();
    assert!(r.all().contains("1 skipped"), "{}", r.all());
    // Bundle 4 follows the snapshot as it follows bundle 3.
    env.write_src("d/four.txt", b"four\n");
    env.export("m4").expect_ok();
    import(&fresh, &env, "m4", &[]).expect_ok();
    assert_eq!(applied(&fresh), 4);
    assert_eq!(served(&fresh), tree_digest(&env.src));

    // The snapshot again, asked or not, never moves the store back.
    for extra in [&[][..], &["--rebase"][..]] {
        import(&fresh, &env, "r3", extra)
            .expect_fail(&["rebase snapshot", "never moves a store back"]);
        assert_eq!(applied(&fresh), 4);
        assert_eq!(served(&fresh), tree_digest(&env.src));
    }
}

#[test]
fn a_populated_inside_takes_a_snapshot_only_when_told() {
    let env = three_bundles_and_a_snapshot();
    // The main inside got bundle 1 only; 2 and 3 were lost.
    env.import("m1").expect_ok();
    let before = served(&env.in_state);
    env.import("r3")
        .expect_fail(&["rebase snapshot", "ferry-in import --rebase"]);
    assert_eq!(env.applied_sequence(), 1);
    assert_eq!(served(&env.in_state), before, "nothing applied");

    let r = import(&env.in_state, &env, "r3", &["--rebase"]).expect_ok();
    assert!(r.all().contains("1 applied"), "{}", r.all());
    assert_eq!(env.applied_sequence(), 3);
    assert_eq!(served(&env.in_state), tree_digest(&env.src));
    assert!(
        !env.served("b/two.bin").exists(),
        "an object the snapshot lacks is gone"
    );
    env.write_src("d/four.txt", b"four\n");
    env.export("m4").expect_ok();
    env.import("m4").expect_ok();
    assert_eq!(env.applied_sequence(), 4);
    assert_eq!(served(&env.in_state), tree_digest(&env.src));
}

#[test]
fn a_snapshot_is_refused_when_the_sources_moved_on_or_nothing_was_exported() {
    let env = Env::new();
    env.write_src("one.txt", b"one\n");
    rebase(&env, "r0").expect_fail(&["nothing has been exported yet"]);
    env.export("m1").expect_ok();
    env.write_src("one.txt", b"one, changed\n");
    rebase(&env, "r1").expect_fail(&["sources changed since bundle 1", "ferry-out export"]);
    env.export("m2").expect_ok();
    rebase(&env, "r2").expect_ok();
    assert_eq!(dir_names(&env.root().join("r2")).len(), 1);
}

#[test]
fn a_snapshot_exported_unsigned_is_signed_on_another_host_published_and_taken() {
    let env = Env::new();
    env.write_src("a/one.txt", &text_bytes(100_000, 3));
    env.export("m1").expect_ok();
    env.write_src("b/two.txt", b"two\n");
    env.export("m2").expect_ok();
    // The signing key leaves the export host.
    let key = env.root().join("signing-host-key");
    std::fs::rename(env.out_state.join("signing.key"), &key).unwrap();
    let r3 = env.root().join("r3");
    let r = env
        .out(&[
            "export",
            "--rebase",
            "--unsigned",
            "--config",
            env.config.to_str().unwrap(),
            "--to",
            r3.to_str().unwrap(),
        ])
        .expect_ok();
    assert!(r.stdout.contains("exported unsigned"), "{}", r.stdout);
    assert!(
        dir_names(&r3).is_empty(),
        "nothing on media before it is signed"
    );
    let name = dir_names(&env.out_state.join("bundles"))
        .into_iter()
        .find(|n| n.starts_with("rebase-"))
        .unwrap();
    let kept = env.out_state.join("bundles").join(&name);
    assert!(kept.join("manifest.unsigned").is_file() && !kept.join("manifest.ferry").exists());

    // The signing host: another state directory, a copy of the snapshot.
    let host = env.root().join("signing-host");
    std::fs::create_dir_all(&host).unwrap();
    copy_tree(&kept, &host.join(&name));
    ferry_out(
        &host,
        &[
            "sign",
            "--key",
            key.to_str().unwrap(),
            host.to_str().unwrap(),
        ],
    )
    .expect_ok();
    // Publishing before the signature came back writes nothing.
    let r = env
        .out(&["publish", "--to", r3.to_str().unwrap()])
        .expect_ok();
    assert!(
        !r.stdout.contains("rebase snapshot published"),
        "{}",
        r.stdout
    );
    // A signature of another body is refused by name.
    let signed = std::fs::read(host.join(&name).join("manifest.ferry")).unwrap();
    let mut forged = signed.clone();
    forged[40] ^= 1;
    std::fs::write(kept.join("manifest.ferry"), &forged).unwrap();
    env.out(&["publish", "--to", r3.to_str().unwrap()])
        .expect_fail(&["does not verify"]);
    assert!(dir_names(&r3).is_empty());
    std::fs::write(kept.join("manifest.ferry"), &signed).unwrap();
    let r = env
        .out(&["publish", "--to", r3.to_str().unwrap()])
        .expect_ok();
    assert!(
        r.stdout.contains("rebase snapshot published"),
        "{}",
        r.stdout
    );
    assert_eq!(dir_names(&r3), std::slice::from_ref(&name));
    assert!(!r3.join(&name).join("manifest.unsigned").exists());
    // Published once: a later publish does not write it again.
    let r = env
        .out(&["publish", "--to", r3.to_str().unwrap()])
        .expect_ok();
    assert!(
        !r.stdout.contains("rebase snapshot published"),
        "{}",
        r.stdout
    );

    let fresh = fresh_inside(&env);
    let r = import(&fresh, &env, "r3", &[]).expect_ok();
    assert!(r.all().contains("1 applied"), "{}", r.all());
    assert_eq!(applied(&fresh), 2);
    assert_eq!(served(&fresh), tree_digest(&env.src));
}
