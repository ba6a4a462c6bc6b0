//! The two-way QUIC link: a push over loopback applies bundles and sends only
//! the chunks the inside lacks; a push killed half-way resumes and completes;
//! a peer with a certificate that is not pinned is refused; what media carry
//! beside bundles (co-signatures, validity extensions, root revocations)
//! goes over QUIC too, and the inside records what it refuses for receipts.

use ferry_e2e::*;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Listener(Child);

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Makes both identities and starts the inside listener; returns it and the URL.
fn listen(env: &Env) -> (Listener, String) {
    env.out(&["cert"]).expect_ok();
    env.inn(&["cert"]).expect_ok();
    let port = free_port();
    (listener_on(env, port), format!("quic://127.0.0.1:{port}"))
}

fn push(env: &Env, url: &str) -> Run {
    env.out(&[
        "push",
        url,
        "--peer-cert",
        env.in_state.join("quic.crt").to_str().unwrap(),
    ])
}

#[test]
fn push_applies_bundles_and_sends_only_missing_chunks() {
    let env = Env::new();
    env.write_src("a.bin", &random_bytes(600_000, 1));
    env.write_src("b.txt", &text_bytes(200_000, 2));
    env.export("m1").expect_ok();
    env.write_src("c.bin", &random_bytes(300_000, 3));
    env.export("m2").expect_ok();
    let (_l, url) = listen(&env);
    // Written to media is not delivered: nothing has confirmed it yet.
    assert_eq!(deliveries(&env), ["unconfirmed", "unconfirmed"]);

    let r = push(&env, &url).expect_ok();
    assert!(r.stdout.contains("2 applied"), "{}", r.all());
    assert_eq!(env.applied_sequence(), 2);
    assert_eq!(env.served_digest("tools"), tree_digest(&env.src));
    // The inside had none of the chunks, so it asked for every one, once.
    let counts = kept_chunk_counts(&env);
    assert_eq!(needs(&r), [(counts[0], counts[0]), (counts[1], counts[1])]);
    // The ledger records the delivery, on the inside's word.
    assert_eq!(deliveries(&env), ["quic", "quic"]);

    // Nothing new: nothing sent.
    let r = push(&env, &url).expect_ok();
    assert!(r.stderr.contains("nothing to push"), "{}", r.all());
    assert!(needs(&r).is_empty());

    // A later bundle goes alone; a copy of a file the inside has costs no chunk.
    env.write_src("copy-of-a.bin", &random_bytes(600_000, 1));
    let d = text_bytes(50_000, 4);
    env.write_src("d.txt", &d);
    env.export("m3").expect_ok();
    let r = push(&env, &url).expect_ok();
    assert!(r.stdout.contains("1 applied"), "{}", r.all());
    let only_d = chunk_count(&d);
    assert_eq!(kept_chunk_counts(&env)[2], only_d);
    assert_eq!(needs(&r), [(only_d, only_d)], "{}", r.all());
    assert_eq!(env.served_digest("tools"), tree_digest(&env.src));
    assert_eq!(deliveries(&env), ["quic", "quic", "quic"]);
}

#[test]
fn a_version_4_bundle_with_chunks_without_ids_is_pushed_and_applied() {
    let env = Env::new();
    for i in 0..1100 {
        env.write_src(
            &format!("d{}/f{i:04}.txt", i / 100),
            format!("small {i}\n").as_bytes(),
        );
    }
    env.export("m1").expect_ok();
    let dir = std::fs::read_dir(env.out_state.join("bundles"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|d| d.join("manifest.ferry").is_file())
        .unwrap();
    let bytes = std::fs::read(dir.join("manifest.ferry")).unwrap();
    assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), 4);
    let (_, m) = ferry_protocol::manifest::peek_unverified(&bytes).unwrap();
    assert!(!m.is_named(), "its one-chunk files' chunks go without ids");
    let (_l, url) = listen(&env);
    let r = push(&env, &url).expect_ok();
    assert!(r.stdout.contains("1 applied"), "{}", r.all());
    assert_eq!(env.applied_sequence(), 1);
    // Every chunk asked for by index, once.
    let n = m.chunk_count();
    assert_eq!(needs(&r), [(n, n)], "{}", r.all());
    assert_eq!(env.served_digest("tools"), tree_digest(&env.src));
}

/// The (needed, offered) chunk counts of each bundle a push offered, from its
/// "bundle N: the inside needs N of M chunks" lines.
fn needs(r: &Run) -> Vec<(usize, usize)> {
    r.stderr
        .lines()
        .filter_map(|l| l.split("needs ").nth(1))
        .map(|rest| {
            let n: Vec<usize> = rest
                .split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect();
            (n[0], n[1])
        })
        .collect()
}

/// Chunks each kept bundle carries, by sequence.
fn kept_chunk_counts(env: &Env) -> Vec<usize> {
    let mut dirs: Vec<_> = std::fs::read_dir(env.out_state.join("bundles"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    dirs.iter()
        .map(|d| {
            let bytes = std::fs::read(d.join("manifest.ferry")).unwrap();
            let (_, m) = ferry_protocol::manifest::peek_unverified(&bytes).unwrap();
            m.chunk_count()
        })
        .collect()
}

/// Chunks of one file's content, cut as ferry-out cuts.
fn chunk_count(data: &[u8]) -> usize {
    use ferry_protocol::chunking::{ChunkParams, Chunker};
    let mut c = Chunker::new(data, ChunkParams::DEFAULT);
    let mut n = 0;
    while c.next_chunk().unwrap().is_some() {
        n += 1;
    }
    n
}

/// The delivered column of `ferry-out status`, per bundle: "quic" when the
/// inside confirmed it over QUIC, else "unconfirmed".
fn deliveries(env: &Env) -> Vec<String> {
    let st = env.out(&["status"]).expect_ok();
    st.stdout
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("seq"))
        .skip(1)
        .map(|l| {
            if l.ends_with("via quic") {
                "quic".to_string()
            } else if l.ends_with("unconfirmed") {
                "unconfirmed".to_string()
            } else {
                panic!("a status line without a delivered column: {l}")
            }
        })
        .collect()
}

/// Starts the inside listener on `port` (identities already made).
fn listener_on(env: &Env, port: u16) -> Listener {
    let child = Command::new(bin("ferry-in"))
        .arg("--state")
        .arg(&env.in_state)
        .args([
            "listen",
            "--quic",
            &format!("127.0.0.1:{port}"),
            "--peer-cert",
        ])
        .arg(env.out_state.join("quic.crt"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let listener = Listener(child);
    wait_udp_bound(port, "ferry-in listen");
    listener
}

#[test]
fn a_push_killed_half_way_resumes_and_completes() {
    // The link drops half-way: the inside end is killed while chunks arrive
    // (on loopback a killed sender has often flushed everything already, so
    // killing the receiver is what reliably cuts a transfer in the middle).
    let env = Env::new();
    for i in 0..4u64 {
        env.write_src(&format!("big{i}.bin"), &random_bytes(8_000_000, 10 + i));
    }
    env.export("m1").expect_ok();
    env.out(&["cert"]).expect_ok();
    env.inn(&["cert"]).expect_ok();
    let port = free_port();
    let url = format!("quic://127.0.0.1:{port}");
    let incoming = env.in_state.join("incoming");
    let total = {
        let dir = env.only_bundle("m1");
        let bytes = std::fs::read(dir.join("manifest.ferry")).unwrap();
        ferry_protocol::manifest::peek_unverified(&bytes)
            .unwrap()
            .1
            .chunk_count()
    };

    let mut l = listener_on(&env, port);
    let mut pusher = Command::new(bin("ferry-out"))
        .arg("--state")
        .arg(&env.out_state)
        .args(["push", &url, "--peer-cert"])
        .arg(env.in_state.join("quic.crt"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while walk_count(&incoming) < 20 && t0.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let _ = l.0.kill();
    let _ = l.0.wait();
    let got = finished_chunks(&incoming);
    assert!(
        got > 0 && got < total,
        "the cut did not land mid-transfer: {got} of {total} chunks"
    );
    // The sender would notice after the idle timeout; end it now.
    let _ = pusher.kill();
    let _ = pusher.wait();
    assert_eq!(env.applied_sequence(), 0);

    let _l = listener_on(&env, port);
    let r = push(&env, &url).expect_ok();
    let needed = r
        .stderr
        .lines()
        .find(|l| l.contains("needs"))
        .unwrap_or_else(|| panic!("no 'needs' line:\n{}", r.all()))
        .to_string();
    // "bundle 1: the inside needs N of M chunks (…)"
    let n: Vec<u64> = needed
        .split("needs ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(
        n.len() == 2 && n[0] < n[1],
        "a resumed push resent everything: {needed}"
    );
    assert!(
        n[0] as usize <= total - got,
        "{needed}, but {got} had arrived"
    );
    assert_eq!(env.applied_sequence(), 1);
    assert_eq!(env.served_digest("tools"), tree_digest(&env.src));
    assert_eq!(
        walk_count(&incoming),
        0,
        "the incoming chunks were not cleaned up"
    );
}

/// Chunk files fully received (not the manifest, not a temporary file cut short).
fn finished_chunks(incoming: &std::path::Path) -> usize {
    let mut n = 0;
    for bundle in std::fs::read_dir(incoming).into_iter().flatten().flatten() {
        for fan in std::fs::read_dir(bundle.path().join("chunks"))
            .into_iter()
            .flatten()
            .flatten()
        {
            n += std::fs::read_dir(fan.path())
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .count();
        }
    }
    n
}

fn walk_count(d: &std::path::Path) -> usize {
    let Ok(rd) = std::fs::read_dir(d) else {
        return 0;
    };
    rd.flatten()
        .map(|e| {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                walk_count(&e.path())
            } else {
                1
            }
        })
        .sum()
}

#[test]
fn a_peer_with_an_unpinned_certificate_is_refused() {
    let env = Env::new();
    env.write_src("a.txt", b"hello");
    env.export("m1").expect_ok();
    let (_l, url) = listen(&env);
    // Another identity for the outside: the inside pinned the first one.
    env.out(&["cert", "--force"]).expect_ok();
    push(&env, &url).expect_fail(&["not pinned"]);
    assert_eq!(env.applied_sequence(), 0);

    // And the outside refuses an inside whose certificate it did not pin.
    let other = env.root().join("other.crt");
    std::fs::write(
        &other,
        std::fs::read(env.out_state.join("quic.crt")).unwrap(),
    )
    .unwrap();
    env.out(&["push", &url, "--peer-cert", other.to_str().unwrap()])
        .expect_fail(&["not pinned"]);
}

#[test]
fn a_private_ca_authenticates_both_ends() {
    let env = Env::new();
    env.write_src("a.txt", &text_bytes(30_000, 9));
    env.export("m1").expect_ok();
    let ca = env.root().join("ca");
    let ca_arg = ca.to_str().unwrap();
    env.out(&["cert", "--ca-dir", ca_arg, "--name", "outside"])
        .expect_ok();
    env.inn(&["cert", "--ca-dir", ca_arg, "--name", "127.0.0.1"])
        .expect_ok();
    let ca_crt = ca.join("ca.crt");
    let port = free_port();
    let _l = Listener(
        Command::new(bin("ferry-in"))
            .arg("--state")
            .arg(&env.in_state)
            .args(["listen", "--quic", &format!("127.0.0.1:{port}"), "--ca"])
            .arg(&ca_crt)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_udp_bound(port, "ferry-in listen --ca");
    let url = format!("quic://127.0.0.1:{port}");

    // A self-signed outside identity is not from the CA: refused. The
    // stranger is a full copy of the outside (ledger, key, kept bundles), so
    // the certificate is the only thing that can make its push fail.
    let stranger = env.root().join("stranger");
    copy_tree(&env.out_state, &stranger);
    ferry_out(&stranger, &["cert", "--force"]).expect_ok();
    let r = ferry_out(&stranger, &["push", &url, "--ca", ca_crt.to_str().unwrap()]);
    assert!(!r.ok, "a certificate from outside the CA was accepted");
    assert!(!r.stderr.contains("nothing to push"), "{}", r.all());
    assert_eq!(env.applied_sequence(), 0);

    // The same stranger with an identity the CA issued: accepted.
    ferry_out(
        &stranger,
        &["cert", "--force", "--ca-dir", ca_arg, "--name", "outside"],
    )
    .expect_ok();
    let r = ferry_out(&stranger, &["push", &url, "--ca", ca_crt.to_str().unwrap()]).expect_ok();
    assert!(r.stdout.contains("1 applied"), "{}", r.all());
    assert_eq!(env.served_digest("tools"), tree_digest(&env.src));
}

#[test]
fn bundles_the_inside_must_refuse_are_refused_over_quic() {
    let env = Env::new();
    env.write_src("a.txt", &text_bytes(30_000, 5));
    env.export("m1").expect_ok();
    let (_l, url) = listen(&env);
    push(&env, &url).expect_ok();
    assert_eq!(env.applied_sequence(), 1);
    let served = env.served_digest("tools");

    // The same outside history signed by a key the inside does not trust:
    // a copy of the outside state with another signing key.
    let stranger = env.root().join("stranger");
    copy_tree(&env.out_state, &stranger);
    let other_key = env.root().join("other-key");
    ferry_out(&other_key, &["keygen"]).expect_ok();
    for f in ["signing.key", "signing.pub"] {
        std::fs::copy(other_key.join(f), stranger.join(f)).unwrap();
    }
    let config = env.root().join("ferry-out.toml");
    env.write_src("stranger.txt", b"not from a trusted key");
    let m = env.root().join("m-stranger");
    export_from(&stranger, &config, &m);
    std::fs::remove_file(env.src.join("stranger.txt")).unwrap();
    push_from(&stranger, &env, &url).expect_fail(&["refused", "not trusted"]);

    // The trusted key, but another stream (a fresh ledger): the outside
    // learns the inside's stream first and offers nothing.
    let fork = env.root().join("fork");
    std::fs::create_dir_all(&fork).unwrap();
    for f in ["signing.key", "signing.pub", "quic.crt", "quic.key"] {
        std::fs::copy(env.out_state.join(f), fork.join(f)).unwrap();
    }
    let m = env.root().join("m-fork");
    export_from(&fork, &config, &m);
    push_from(&fork, &env, &url).expect_fail(&["follows stream"]);

    // An expired bundle of the right stream.
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[export]\nexpires = \"1s\"\n");
    std::fs::write(&config, text).unwrap();
    env.write_src("b.txt", b"later");
    env.export("m2").expect_ok();
    std::thread::sleep(Duration::from_millis(2_100));
    // Without the signing key at hand (signing apart), no validity extension.
    let key = env.out_state.join("signing.key");
    std::fs::rename(&key, env.root().join("signing.key.away")).unwrap();
    push(&env, &url).expect_fail(&["refused", "expired"]);

    assert_eq!(env.applied_sequence(), 1, "nothing refused was applied");
    assert_eq!(env.served_digest("tools"), served);
}

/// Exports with the config of `Env` from another outside state, into `media`.
fn export_from(state: &Path, config: &Path, media: &Path) {
    ferry_out(
        state,
        &[
            "export",
            "--config",
            config.to_str().unwrap(),
            "--to",
            media.to_str().unwrap(),
        ],
    )
    .expect_ok();
}

/// Pushes from another outside state, pinning the inside's certificate.
fn push_from(state: &std::path::Path, env: &Env, url: &str) -> Run {
    ferry_out(
        state,
        &[
            "push",
            url,
            "--peer-cert",
            env.in_state.join("quic.crt").to_str().unwrap(),
        ],
    )
}

#[test]
fn a_chunk_the_inside_lost_is_shipped_again_over_quic() {
    // The repair loop over the two-way link: the ledger the push reads is
    // the one `export --reship` updates, and the inside asks for the chunk
    // it lacks.
    let env = Env::new();
    env.write_src("a.bin", &random_bytes(500_000, 31));
    env.export("m1").expect_ok();
    let (l, url) = listen(&env);
    push(&env, &url).expect_ok();
    drop(l);
    // The served file is the only copy of its chunks (ranges): rot one.
    let served = env.served("a.bin");
    let mut bytes = std::fs::read(&served).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&served, &bytes).unwrap();
    let r = env.inn(&["scrub", "--json"]);
    assert_eq!(r.code, Some(1), "{}", r.all());
    let report = env.root().join("report.json");
    std::fs::write(&report, &r.stdout).unwrap();
    env.export_reship(&report, "m2", &[]).expect_ok();
    let port = url.rsplit(':').next().unwrap().parse().unwrap();
    let l2 = listener_on(&env, port);
    let r = push(&env, &url).expect_ok();
    // The bundle lists every chunk of the rotten file; the inside, which
    // salvaged the good ranges when it scrubbed, asks for the lost one.
    let n = needs(&r);
    assert_eq!(n.len(), 1, "{}", r.all());
    assert_eq!(n[0].0, 1, "{}", r.all());
    assert!(n[0].1 > 1, "{}", r.all());
    assert_eq!(env.applied_sequence(), 2);
    drop(l2);
    let r = env.inn(&["scrub", "--json"]);
    assert_eq!(r.code, Some(0), "{}", r.all());
}

/// The refusals `ferry-in status --json` lists, as (sequence, refusal).
fn refusals(state: &Path) -> Vec<(u64, String)> {
    let v: serde_json::Value =
        serde_json::from_str(&ferry_in(state, &["status", "--json"]).expect_ok().stdout).unwrap();
    v["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["sequence"].as_u64().unwrap(),
                f["refusal"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The inside writes a receipt to `stick`; the outside trusts the inside's
/// key and adds it; returns `ferry-out status`.
fn receipt_round_trip(env: &Env, stick: &str) -> Run {
    let stick = env.root().join(stick);
    env.inn(&["receipt", "--to", stick.to_str().unwrap()])
        .expect_ok();
    env.out(&[
        "trust-inside",
        env.in_state.join("inside.pub").to_str().unwrap(),
    ])
    .expect_ok();
    let file = std::fs::read_dir(&stick)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "ferryrct"))
        .unwrap();
    env.out(&["receipt", "add", file.to_str().unwrap()])
        .expect_ok();
    env.out(&["status"]).expect_ok()
}

#[test]
fn a_stream_that_needs_two_signatures_takes_a_pushed_bundle_once_cosigned() {
    let env = Env::new();
    let stream = env.stream();
    let second = env.root().join("out-b");
    ferry_out(&second, &["keygen"]).expect_ok();
    let b_pub = second.join("signing.pub");
    env.inn(&["trust", "add", b_pub.to_str().unwrap(), "--stream", &stream])
        .expect_ok();
    env.inn(&["trust", "threshold", "--stream", &stream, "2"])
        .expect_ok();
    env.write_src("a.txt", &text_bytes(20_000, 7));
    env.export("m1").expect_ok();
    let (_l, url) = listen(&env);
    push(&env, &url).expect_fail(&["refused", "needs 2"]);
    assert_eq!(env.applied_sequence(), 0);
    // The refusal is recorded as an import's is, and the receipt carries it.
    assert_eq!(
        refusals(&env.in_state),
        [(1, "TooFewSignatures".to_string())]
    );
    let status = receipt_round_trip(&env, "stick").stdout;
    assert!(
        status.contains("refused bundle 1") && status.contains("TooFewSignatures"),
        "{status}"
    );

    // The second signer co-signs the kept bundle (STATE/bundles); the push
    // carries its co-signature.
    ferry_out(
        &env.out_state,
        &[
            "cosign",
            "--key",
            second.join("signing.key").to_str().unwrap(),
            env.out_state.join("bundles").to_str().unwrap(),
        ],
    )
    .expect_ok();
    let r = push(&env, &url).expect_ok();
    assert!(r.stdout.contains("1 applied"), "{}", r.all());
    assert_eq!(env.applied_sequence(), 1);
    assert_eq!(env.served_digest("tools"), tree_digest(&env.src));
}

#[test]
fn an_expired_bundle_pushed_again_goes_with_a_validity_extension() {
    let env = Env::new();
    let mut cfg = std::fs::read_to_string(&env.config).unwrap();
    cfg.push_str("[export]\nexpires = \"2s\"\n");
    std::fs::write(&env.config, cfg).unwrap();
    env.write_src("a.txt", b"one");
    env.export("m1").expect_ok();
    env.write_src("b.txt", b"two");
    env.export("m2").expect_ok();
    std::thread::sleep(Duration::from_secs(3));
    let (_l, url) = listen(&env);
    let r = push(&env, &url).expect_ok();
    assert!(r.stdout.contains("2 applied"), "{}", r.all());
    assert_eq!(
        r.stderr.matches("goes with a validity extension").count(),
        2,
        "{}",
        r.stderr
    );
    assert_eq!(env.applied_sequence(), 2);
    assert_eq!(env.served_digest("tools"), tree_digest(&env.src));
    assert!(refusals(&env.in_state).is_empty());
}

#[test]
fn a_root_revocation_pushed_over_quic_takes_effect_without_a_bundle() {
    let crate::trust::Leak {
        env,
        out: _,
        leaked,
        leaked_pub,
        thief,
    } = crate::trust::leak();
    let (_l, url) = listen(&env);
    env.out(&["root", "revoke", leaked_pub.to_str().unwrap()])
        .expect_ok();
    // Nothing new to push: the revocation alone goes.
    let r = push(&env, &url).expect_ok();
    assert!(r.stderr.contains("nothing to push"), "{}", r.all());
    let list = env.inn(&["trust", "list"]).expect_ok().stdout;
    assert!(list.contains("revoked by root"), "{list}");

    // What the leaked key signs next is refused, recorded and named.
    env.write_src("evil.txt", b"evil");
    crate::trust::export_from(&env, &thief, "m-thief").expect_ok();
    let r = env.import("m-thief");
    assert_eq!(r.code, Some(1), "{}", r.all());
    assert!(
        r.stderr.contains("revoked") && r.stderr.contains(&leaked),
        "{}",
        r.stderr
    );
    assert_eq!(env.applied_sequence(), 1);
    assert_eq!(refusals(&env.in_state), [(2, "RevokedKey".to_string())]);
}

#[test]
fn a_bundle_from_an_untrusted_key_pushed_over_quic_is_recorded_for_the_receipt() {
    let env = Env::new();
    env.write_src("a.txt", b"one");
    env.export("m1").expect_ok();
    let (_l, url) = listen(&env);
    push(&env, &url).expect_ok();
    // A copy of the outside's history signed with a key the inside does not trust.
    let thief = env.root().join("thief");
    copy_tree(&env.out_state, &thief);
    let other = env.root().join("other-key");
    ferry_out(&other, &["keygen"]).expect_ok();
    for f in ["signing.key", "signing.pub"] {
        std::fs::copy(other.join(f), thief.join(f)).unwrap();
    }
    env.write_src("b.txt", b"two");
    export_from(&thief, &env.config, &env.root().join("m-thief"));
    push_from(&thief, &env, &url).expect_fail(&["refused", "not trusted"]);
    assert_eq!(refusals(&env.in_state), [(2, "UntrustedKey".to_string())]);
    let status = receipt_round_trip(&env, "stick").stdout;
    assert!(
        status.contains("refused bundle 2") && status.contains("UntrustedKey"),
        "{status}"
    );
}
