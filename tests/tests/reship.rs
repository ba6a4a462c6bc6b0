//! The repair loop (docs/scrub.md): the inside's `scrub --json` report,
//! carried out, makes `ferry-out export --reship REPORT` ship again what
//! rotted; the import repairs the store and the stream flows again.

use ferry_e2e::*;
use std::path::{Path, PathBuf};

/// Flips the byte in the middle of the file at `path`.
fn rot(path: &Path) {
    let mut b = std::fs::read(path).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0xff;
    // Through a new inode would break hard links; write in place.
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, &b))
        .unwrap();
}

/// `ferry-in scrub --json` into `report.json` in the temporary root; the
/// exit code and the parsed report.
fn scrub(env: &Env) -> (Option<i32>, serde_json::Value, PathBuf) {
    let r = env.inn(&["scrub", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("scrub --json is not JSON ({e}):\n{}", r.all()));
    let path = env.root().join("report.json");
    std::fs::write(&path, &r.stdout).unwrap();
    (r.code, v, path)
}

#[test]
fn a_rotten_chunk_is_shipped_again_and_the_stream_flows_on() {
    let env = Env::new();
    let blob = random_bytes(400_000, 21);
    env.write_src("a.bin", &blob);
    env.write_src("b.txt", b"bee\n");
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();
    // The served file is the only copy of its chunks: rot one of them.
    rot(&env.served("a.bin"));
    let (code, v, report) = scrub(&env);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v["bad_objects"][0]["path"], "a.bin", "{v}");
    assert_eq!(v["bad_chunks"].as_array().unwrap().len(), 1, "{v}");

    // Nothing changed upstream: the bundle is made for the chunk alone.
    let r = env.export_reship(&report, "m2", &[]).expect_ok();
    assert!(r.stderr.contains("chunk(s) to ship again"), "{}", r.stderr);
    assert!(r.stdout.contains("bundle 2 written"), "{}", r.stdout);
    assert!(
        r.stdout.contains("0 added, 0 changed, 0 removed"),
        "{}",
        r.stdout
    );
    env.import("m2").expect_ok();
    assert_eq!(env.applied_sequence(), 2);
    assert_eq!(std::fs::read(env.served("a.bin")).unwrap(), blob);
    let (code, v, _) = scrub(&env);
    assert_eq!(code, Some(0), "scrub is clean again: {v}");

    // The request is spent: the next export is an ordinary one again.
    let r = env.export("m3").expect_ok();
    assert!(r.stdout.contains("no changes"), "{}", r.stdout);
    env.write_src("copy.bin", &blob); // rebuilt inside from the re-shipped chunk
    env.write_src("c.txt", b"sea\n");
    env.export("m3").expect_ok();
    env.import("m3").expect_ok();
    assert_eq!(env.applied_sequence(), 3);
    assert_eq!(std::fs::read(env.served("copy.bin")).unwrap(), blob);
    assert_eq!(scrub(&env).0, Some(0));
}

#[test]
fn a_rotten_object_and_all_its_chunks_come_back_whole() {
    let env = Env::new();
    let blob = random_bytes(300_000, 22);
    env.write_src("a.bin", &blob);
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();
    // Every 16 KiB (the smallest chunk) flipped: every range is rotten.
    let served = env.served("a.bin");
    let mut b = std::fs::read(&served).unwrap();
    for i in (0..b.len()).step_by(16 * 1024) {
        b[i] ^= 0xff;
    }
    std::fs::write(&served, &b).unwrap();
    let (code, v, report) = scrub(&env);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v["bad_objects"][0]["path"], "a.bin", "{v}");
    assert!(v["bad_chunks"].as_array().unwrap().len() > 1, "{v}");
    // An ordinary export has nothing to send, and a bundle that needed
    // the chunks would be refused inside; the reship carries them.
    assert!(env.export("m2").expect_ok().stdout.contains("no changes"));
    env.export_reship(&report, "m2", &[]).expect_ok();
    env.import("m2").expect_ok();
    assert_eq!(std::fs::read(env.served("a.bin")).unwrap(), blob);
    assert_eq!(scrub(&env).0, Some(0));
}

#[test]
fn a_patched_object_that_rotted_comes_back_whole() {
    let env = Env::new();
    // Two versions of a file: the second ships as a patch.
    let v1 = random_bytes(600_000, 23);
    let mut v2 = v1.clone();
    v2[300_000..300_020].copy_from_slice(b"a small change here.");
    let gz = |d: &[u8]| d.to_vec();
    env.write_src("pkg-1.0.bin", &gz(&v1));
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();
    std::fs::remove_file(env.src.join("pkg-1.0.bin")).unwrap();
    env.write_src("pkg-1.1.bin", &gz(&v2));
    let r = env.export("m2").expect_ok();
    assert!(r.stdout.contains("patched 1"), "{}", r.stdout);
    env.import("m2").expect_ok();
    for c in env.chunk_files() {
        rot(&c);
    }
    rot(&env.served("pkg-1.1.bin"));
    let (code, v, report) = scrub(&env);
    assert_eq!(code, Some(1), "{v}");
    env.export_reship(&report, "m3", &[]).expect_ok();
    env.import("m3").expect_ok();
    assert_eq!(std::fs::read(env.served("pkg-1.1.bin")).unwrap(), gz(&v2));
    assert_eq!(scrub(&env).0, Some(0));
}

#[test]
fn a_malformed_or_foreign_report_is_refused_and_nothing_is_exported() {
    let env = Env::new();
    env.write_src("a.bin", &random_bytes(100_000, 24));
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();
    let path = env.root().join("bad.json");
    let cases: [(&str, &[&str]); 5] = [
        ("{ not json", &["not a `ferry-in scrub --json` report"]),
        (
            r#"{"generation":null,"bad_objects":[]}"#,
            &["not a `ferry-in scrub --json` report", "bad_chunks"],
        ),
        (
            r#"{"generation":null,"bad_objects":[],"bad_chunks":[{"id":"xyz"}]}"#,
            &["bad_chunks[0].id", "not a chunk id"],
        ),
        (
            r#"{"generation":"00000009-ab","bad_objects":[{"source":"tools","path":"a.bin"}],"bad_chunks":[]}"#,
            &["bundle 9", "up to 1"],
        ),
        (
            r#"{"generation":"00000001-ab","bad_objects":[{"source":"tools","path":"nope"}],"bad_chunks":[]}"#,
            &["tools/nope", "not in this outside's catalog"],
        ),
    ];
    for (text, needles) in cases {
        std::fs::write(&path, text).unwrap();
        env.export_reship(&path, "m2", &[]).expect_fail(needles);
    }
    env.export_reship(&env.root().join("absent.json"), "m2", &[])
        .expect_fail(&["cannot read"]);
    assert!(dir_names(&env.root().join("m2")).is_empty());
    let st = env.out(&["status"]).expect_ok();
    assert!(st.stdout.contains("bundles: 1 exported"), "{}", st.stdout);
    assert!(!st.stdout.contains("reship:"), "{}", st.stdout);
}

#[test]
fn a_reship_waits_through_an_unsigned_export_until_it_is_signed() {
    let env = Env::new();
    env.write_src("a.bin", &random_bytes(200_000, 25));
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();
    rot(&env.served("a.bin"));
    let (_, _, report) = scrub(&env);
    let m = env.root().join("m2");
    env.export_reship(&report, "m2", &["--unsigned"])
        .expect_ok();
    let st = env.out(&["status"]).expect_ok();
    assert!(st.stdout.contains("reship:  "), "{}", st.stdout);
    let key = env.out_state.join("signing.key");
    let bundles = env.out_state.join("bundles");
    env.out(&[
        "sign",
        "--key",
        key.to_str().unwrap(),
        bundles.to_str().unwrap(),
    ])
    .expect_ok();
    env.out(&["publish", "--to", m.to_str().unwrap()])
        .expect_ok();
    let st = env.out(&["status"]).expect_ok();
    assert!(!st.stdout.contains("reship:"), "{}", st.stdout);
    env.import("m2").expect_ok();
    assert_eq!(scrub(&env).0, Some(0));
}
