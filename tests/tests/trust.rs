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
