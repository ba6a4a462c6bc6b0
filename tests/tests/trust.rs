//! Trust on the command line: a key is bound to the streams it may sign
//! (issue 10, defect 9). The rules themselves are tested in memory in
//! harness/src/trust_tests.rs; this checks the commands and what they print.

use ferry_e2e::*;

#[test]
fn trust_binds_a_key_to_a_stream_and_bind_allows_another() {
    let mut env = Env::new();
    env.write_src("a.txt", b"one");
    env.export("m1").expect_ok();
    env.in_state = env.root().join("in-fresh");
    let key = env.out_state.join("signing.pub");
    let key = key.to_str().unwrap();
    // Saying neither which stream nor first use is an error.
    let r = env.inn(&["trust", "add", key]);
    assert!(!r.ok && r.stderr.contains("--stream"), "{}", r.stderr);

    // Bound to another stream: the fresh store does not adopt ours.
    let elsewhere = "0123456789abcdef0123456789abcdef";
    env.inn(&["trust", "add", key, "--stream", elsewhere])
        .expect_ok();
    let stream = env.stream();
    let r = env.import("m1");
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    for needle in ["bundle 1", "not for stream", &stream, "trust bind"] {
        assert!(r.stderr.contains(needle), "no {needle:?} in:\n{}", r.stderr);
    }
    assert_eq!(env.applied_sequence(), 0);

    env.inn(&["trust", "bind", key, "--stream", &stream])
        .expect_ok();
    env.import("m1").expect_ok();
    let list = env.inn(&["trust", "list"]).expect_ok().stdout;
    assert!(list.contains(&stream) && list.contains(elsewhere), "{list}");
    let status = env.inn(&["status"]).expect_ok().stdout;
    let public = std::fs::read_to_string(env.out_state.join("signing.pub")).unwrap();
    assert!(
        status.contains(&format!("signed by:  {}", public.trim())),
        "{status}"
    );
}

/// The short fingerprint of the public key in `path` (first 16 hex digits).
fn short_of(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    text.trim()
        .strip_prefix("ferry-ed25519-public ")
        .unwrap()
        .chars()
        .take(16)
        .collect()
}

#[test]
fn three_rotations_across_media_are_followed_and_a_retired_key_is_refused() {
    let mut env = Env::new();
    let pubfile = env.out_state.join("signing.pub");
    let mut keys = vec![short_of(&pubfile)];
    env.write_src("a.txt", b"one");
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();
    // A copy of the outside as it was with the first key, to sign with it later.
    let old_out = env.root().join("out-old");
    copy_tree(&env.out_state, &old_out);

    for (n, media) in ["m2", "m3", "m4"].iter().enumerate() {
        let r = env.out(&["key", "rotate"]).expect_ok();
        let new = short_of(&pubfile);
        assert!(r.stdout.contains(&new), "{}", r.stdout);
        assert!(!keys.contains(&new), "rotation {n} made an old key again");
        keys.push(new);
        env.write_src(&format!("f{n}.txt"), format!("file {n}").as_bytes());
        env.export(media).expect_ok();
        env.import(media).expect_ok();
        assert_eq!(env.applied_sequence(), n as u64 + 2);
    }
    // status and the history name each bundle's signer.
    let status = env.inn(&["status", "--json"]).expect_ok().stdout;
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    let signers: Vec<String> = v["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["signer"].as_str().unwrap()[21..37].to_string())
        .collect();
    assert_eq!(signers, keys);
    let list = env.inn(&["trust", "list"]).expect_ok().stdout;
    assert!(list.contains(&format!("rotated to {}", keys[1])), "{list}");

    // The first key, retired since bundle 2, signs a bundle 2: refused, named.
    env.write_src("evil.txt", b"from a retired key");
    let m = env.root().join("m-old");
    ferry_out(
        &old_out,
        &[
            "export",
            "--config",
            env.config.to_str().unwrap(),
            "--to",
            m.to_str().unwrap(),
        ],
    )
    .expect_ok();
    let r = env.import("m-old");
    assert_eq!(r.code, Some(1), "{}", r.all());
    for needle in [
        keys[0].as_str(),
        "retired",
        "from bundle 2",
        keys[1].as_str(),
    ] {
        assert!(r.stderr.contains(needle), "no {needle:?} in:\n{}", r.stderr);
    }
    assert_eq!(env.applied_sequence(), 4);
    assert!(!env.served("evil.txt").exists());

    // A fresh inside trusting only the first key follows the whole chain in
    // one import from one medium (each bundle after a rotation carries it).
    std::fs::create_dir_all(env.root().join("m-all")).unwrap();
    for m in ["m1", "m2", "m3", "m4"] {
        let b = env.only_bundle(m);
        copy_tree(&b, &env.root().join("m-all").join(b.file_name().unwrap()));
    }
    env.in_state = env.root().join("in-fresh");
    let first = env.root().join("first.pub");
    std::fs::write(
        &first,
        format!("ferry-ed25519-public {}", &signers_full(&v)[0]),
    )
    .unwrap();
    env.inn(&[
        "trust",
        "add",
        first.to_str().unwrap(),
        "--stream",
        &env.stream(),
    ])
    .expect_ok();
    env.import("m-all").expect_ok();
    assert_eq!(env.applied_sequence(), 4);
}

fn signers_full(status: &serde_json::Value) -> Vec<String> {
    status["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["signer"].as_str().unwrap()[21..].to_string())
        .collect()
}
