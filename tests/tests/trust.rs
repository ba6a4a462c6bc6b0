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
    // `verify` follows the rotations in memory, as an import would.
    let r = env.verify("m-all").expect_ok();
    assert_eq!(
        r.stdout.matches("verified; it would apply").count(),
        4,
        "{}",
        r.stdout
    );
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

/// `ferry-out --state STATE export` of `env`'s config into `media`.
pub(crate) fn export_from(env: &Env, state: &std::path::Path, media: &str) -> Run {
    let m = env.root().join(media);
    ferry_out(
        state,
        &[
            "export",
            "--config",
            env.config.to_str().unwrap(),
            "--to",
            m.to_str().unwrap(),
        ],
    )
}

/// An outside with a root key, an inside told both keys and holding bundle
/// 1, and the signing key leaked: its short name, a copy of its public
/// half, and the thief's copy of the outside state.
pub(crate) struct Leak {
    pub(crate) env: Env,
    pub(crate) out: std::path::PathBuf,
    pub(crate) leaked: String,
    pub(crate) leaked_pub: std::path::PathBuf,
    pub(crate) thief: std::path::PathBuf,
}

pub(crate) fn leak() -> Leak {
    let env = Env::new();
    let out = env.out_state.clone();
    env.out(&["root", "init"]).expect_ok();
    // The inside is told the root key with its signing key.
    let stream = env.stream();
    env.inn(&[
        "trust",
        "add",
        out.join("signing.pub").to_str().unwrap(),
        "--stream",
        &stream,
        "--root",
        out.join("root.pub").to_str().unwrap(),
    ])
    .expect_ok();
    env.write_src("a.txt", b"one");
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();
    let leaked = short_of(&out.join("signing.pub"));
    let leaked_pub = env.root().join("leaked.pub");
    std::fs::copy(out.join("signing.pub"), &leaked_pub).unwrap();
    // The thief's copy of the outside, with the key.
    let thief = env.root().join("out-thief");
    copy_tree(&out, &thief);
    Leak {
        env,
        out,
        leaked,
        leaked_pub,
        thief,
    }
}

#[test]
fn a_leaked_key_is_revoked_by_the_root_or_by_hand_and_what_it_signs_after_is_refused() {
    let Leak {
        env,
        out,
        leaked,
        leaked_pub,
        thief,
    } = leak();
    // A second inside that hears of the leak by phone: revoked by hand.
    let by_hand = env.root().join("in-by-hand");
    copy_tree(&env.in_state, &by_hand);
    let r = ferry_in(&by_hand, &["trust", "revoke", leaked_pub.to_str().unwrap()]).expect_ok();
    assert!(r.stdout.contains("from bundle 2"), "{}", r.stdout);

    // The owner revokes the key with the root and replaces it.
    env.out(&["root", "revoke", leaked_pub.to_str().unwrap()])
        .expect_ok();
    env.out(&["root", "rotate"]).expect_ok();
    let new = short_of(&out.join("signing.pub"));
    assert_ne!(new, leaked);
    let status = env.out(&["status"]).expect_ok().stdout;
    assert!(
        status.contains(&format!("revocation of key {leaked} from bundle 2"))
            && status.contains(&format!("rotation from key {leaked} to {new}")),
        "{status}"
    );
    env.write_src("b.txt", b"two");
    env.export("m2").expect_ok();
    env.import("m2").expect_ok();
    let list = env.inn(&["trust", "list"]).expect_ok().stdout;
    assert!(list.contains("revoked by root"), "{list}");

    // The thief's bundle 2 (and 3): refused by both insides, naming the key.
    env.write_src("evil.txt", b"evil");
    export_from(&env, &thief, "m-thief").expect_ok();
    for state in [&env.in_state, &by_hand] {
        let r = ferry_in(
            state,
            &["import", env.root().join("m-thief").to_str().unwrap()],
        );
        assert_eq!(r.code, Some(1), "{}", r.all());
        for needle in [leaked.as_str(), "revoked", "from bundle 2"] {
            assert!(r.stderr.contains(needle), "no {needle:?} in:\n{}", r.stderr);
        }
    }
    assert_eq!(env.applied_sequence(), 2);
    assert!(!env.served("evil.txt").exists());
    // The inside revoked by hand still follows the owner's new key.
    ferry_in(
        &by_hand,
        &["import", env.root().join("m2").to_str().unwrap()],
    )
    .expect_ok();
    // The human status names the key of each applied bundle.
    let status = env.inn(&["status"]).expect_ok().stdout;
    assert!(
        status.contains(&format!("bundle 1 signed by {leaked}"))
            && status.contains(&format!("bundle 2 signed by {new}")),
        "{status}"
    );
}

#[test]
fn an_expired_bundle_resent_with_a_signed_extension_applies_and_staleness_is_reported() {
    let env = Env::new();
    let mut cfg = std::fs::read_to_string(&env.config).unwrap();
    cfg.push_str("[export]\nexpires = \"2s\"\n");
    std::fs::write(&env.config, cfg).unwrap();
    env.write_src("a.txt", b"one");
    env.export("m1").expect_ok();
    env.write_src("b.txt", b"two");
    env.export("m2").expect_ok();
    std::thread::sleep(std::time::Duration::from_secs(3));
    let r = env.import("m1");
    assert_eq!(r.code, Some(1), "{}", r.all());
    assert!(r.stderr.contains("expired"), "{}", r.stderr);

    // Resent: each expired bundle gets a validity extension beside it.
    let re = env.root().join("m-re");
    let r = env
        .out(&["resend", "--from", "1", "--to", re.to_str().unwrap()])
        .expect_ok();
    assert_eq!(
        r.stdout.matches("validity extension").count(),
        2,
        "{}",
        r.stdout
    );
    // An extension is for one bundle only: moved beside another, it is ignored.
    let b1 = env.only_bundle("m1");
    let mut re_bundles = dir_names(&re);
    re_bundles.sort();
    std::fs::copy(
        re.join(&re_bundles[1]).join("validity.ferry"),
        b1.join("validity.ferry"),
    )
    .unwrap();
    let r = env.import("m1");
    assert_eq!(r.code, Some(1), "{}", r.all());
    assert!(
        r.stderr.contains("is ignored") && r.stderr.contains("another bundle"),
        "{}",
        r.stderr
    );
    // The resend applies without --allow-expired.
    env.import("m-re").expect_ok();
    assert_eq!(env.applied_sequence(), 2);

    // Freshness: the newest bundle is 3 s old.
    let conf = env.root().join("in.toml");
    let status = |warn: &str| {
        std::fs::write(&conf, format!("[trust]\nwarn_after = \"{warn}\"\n")).unwrap();
        env.inn(&["--config", conf.to_str().unwrap(), "status", "--json"])
            .expect_ok()
            .stdout
    };
    let v: serde_json::Value = serde_json::from_str(&status("1d")).unwrap();
    assert_eq!(v["freshness"]["stale"], false, "{v}");
    assert!(v["freshness"]["age_secs"].as_u64().unwrap() >= 3, "{v}");
    let v: serde_json::Value = serde_json::from_str(&status("1s")).unwrap();
    assert_eq!(v["freshness"]["stale"], true, "{v}");
    let human = env
        .inn(&["--config", conf.to_str().unwrap(), "status"])
        .expect_ok()
        .stdout;
    assert!(
        human.contains("WARNING") && human.contains("warn_after"),
        "{human}"
    );

    // The served health endpoint: fresh under the import's default 7 days.
    let server = env.serve();
    let body = curl(&[&format!("http://{}/ferry/health", server.addr)]);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (v["status"].as_str(), v["applied_sequence"].as_u64()),
        (Some("ok"), Some(2))
    );
}

#[test]
fn the_health_endpoint_is_unavailable_when_the_newest_bundle_is_stale() {
    let env = Env::new();
    env.write_src("a.txt", b"one");
    env.export("m1").expect_ok();
    let conf = env.root().join("in.toml");
    std::fs::write(&conf, "[trust]\nwarn_after = \"1s\"\n").unwrap();
    let m1 = env.root().join("m1");
    env.inn(&[
        "--config",
        conf.to_str().unwrap(),
        "import",
        m1.to_str().unwrap(),
    ])
    .expect_ok();
    std::thread::sleep(std::time::Duration::from_secs(2));
    let server = env.serve();
    let (body, headers) = curl_response(&[&format!("http://{}/ferry/health", server.addr)]);
    assert!(headers.starts_with("HTTP/1.1 503"), "{headers}");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["status"], "stale", "{v}");
    assert_eq!(v["warn_after_secs"], 1, "{v}");
}

#[test]
fn a_stream_that_needs_two_signatures_takes_a_bundle_once_cosigned() {
    let env = Env::new();
    let stream = env.stream();
    // A second signer (its own key, on another machine), and a stranger.
    let (second, stranger) = (env.root().join("out-b"), env.root().join("out-c"));
    for s in [&second, &stranger] {
        ferry_out(s, &["keygen"]).expect_ok();
    }
    let b_pub = second.join("signing.pub");
    env.inn(&["trust", "add", b_pub.to_str().unwrap(), "--stream", &stream])
        .expect_ok();
    env.inn(&["trust", "threshold", "--stream", &stream, "2"])
        .expect_ok();
    env.write_src("a.txt", b"one");
    env.export("m1").expect_ok();
    let r = env.import("m1");
    assert_eq!(r.code, Some(1), "{}", r.all());
    assert!(
        r.stderr.contains("has 1 valid signature") && r.stderr.contains("needs 2"),
        "{}",
        r.stderr
    );

    // A co-signature by a key not trusted for the stream does not count.
    let m1 = env.root().join("m1");
    ferry_out(
        &env.out_state,
        &[
            "cosign",
            "--key",
            stranger.join("signing.key").to_str().unwrap(),
            m1.to_str().unwrap(),
        ],
    )
    .expect_ok();
    let r = env.import("m1");
    assert_eq!(r.code, Some(1), "{}", r.all());
    ferry_out(
        &env.out_state,
        &[
            "cosign",
            "--key",
            second.join("signing.key").to_str().unwrap(),
            m1.to_str().unwrap(),
        ],
    )
    .expect_ok();
    env.import("m1").expect_ok();
    assert_eq!(env.applied_sequence(), 1);
    // A co-signature copied onto another bundle does not verify: named, not counted.
    env.write_src("b.txt", b"two");
    env.export("m2").expect_ok();
    std::fs::copy(
        env.only_bundle("m1").join("cosignatures.ferry"),
        env.only_bundle("m2").join("cosignatures.ferry"),
    )
    .unwrap();
    let r = env.import("m2");
    assert_eq!(r.code, Some(1), "{}", r.all());
    assert!(
        r.stderr.contains("co-signatures of bundle 2") && r.stderr.contains("ignored"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_revocation_from_an_applied_sequence_names_the_bundles_to_distrust() {
    let env = Env::new();
    let out = env.out_state.clone();
    env.out(&["root", "init"]).expect_ok();
    env.inn(&[
        "trust",
        "add",
        out.join("signing.pub").to_str().unwrap(),
        "--stream",
        &env.stream(),
        "--root",
        out.join("root.pub").to_str().unwrap(),
    ])
    .expect_ok();
    for (n, m) in ["m1", "m2"].iter().enumerate() {
        env.write_src(&format!("f{n}"), b"x");
        env.export(m).expect_ok();
        env.import(m).expect_ok();
    }
    // The key leaked before bundle 2 was made: revoked from 2, replaced.
    let leaked = env.root().join("leaked.pub");
    std::fs::copy(out.join("signing.pub"), &leaked).unwrap();
    env.out(&["root", "revoke", leaked.to_str().unwrap(), "--from", "2"])
        .expect_ok();
    env.out(&["root", "rotate"]).expect_ok();
    env.write_src("f3", b"y");
    env.export("m3").expect_ok();
    let r = env.import("m3").expect_ok();
    assert!(
        r.stderr
            .contains("bundle 2, applied earlier, was signed by key")
            && r.stderr.contains(&short_of(&leaked)),
        "{}",
        r.stderr
    );
    let v: serde_json::Value =
        serde_json::from_str(&env.inn(&["status", "--json"]).expect_ok().stdout).unwrap();
    let suspects = v["signed_after_revocation"].as_array().unwrap();
    assert_eq!(suspects.len(), 1, "{v}");
    assert_eq!(suspects[0]["sequence"], 2);
}

#[test]
fn a_root_revocation_on_the_medium_reaches_the_inside_without_a_bundle() {
    let Leak {
        env,
        out: _,
        leaked,
        leaked_pub,
        thief,
    } = leak();

    // The revocation alone, on a stick; a forged copy is ignored, by name.
    let stick = env.root().join("stick");
    env.out(&[
        "root",
        "revoke",
        leaked_pub.to_str().unwrap(),
        "--to",
        stick.to_str().unwrap(),
    ])
    .expect_ok();
    let file = stick.join("revocations.ferry");
    let good = std::fs::read(&file).unwrap();
    let forged_dir = env.root().join("forged");
    std::fs::create_dir_all(&forged_dir).unwrap();
    let mut forged = good.clone();
    let n = forged.len();
    forged[n - 10] ^= 1;
    std::fs::write(forged_dir.join("revocations.ferry"), &forged).unwrap();
    let r = env.import("forged");
    assert!(r.stderr.contains("ignored"), "{}", r.all());
    assert!(!env
        .inn(&["trust", "list"])
        .expect_ok()
        .stdout
        .contains("revoked by root"));

    let r = env.import("stick");
    assert!(
        r.stderr.contains(&format!("key {leaked} revoked")),
        "{}",
        r.all()
    );
    let list = env.inn(&["trust", "list"]).expect_ok().stdout;
    assert!(list.contains("revoked by root"), "{list}");

    // What the leaked key signs next is refused.
    env.write_src("evil.txt", b"evil");
    export_from(&env, &thief, "m-thief").expect_ok();
    let r = env.import("m-thief");
    assert_eq!(r.code, Some(1), "{}", r.all());
    assert!(r.stderr.contains("revoked"), "{}", r.stderr);
    assert_eq!(env.applied_sequence(), 1);
}
