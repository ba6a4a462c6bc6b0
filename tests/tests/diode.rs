//! The one-way diode transport through a lossy relay on loopback: packets are
//! dropped (at random and in bursts), reordered and duplicated with a fixed
//! seed. A bundle arrives complete and verified whenever the repair overhead
//! covers the loss; where it does not, the receiver reports it incomplete
//! and applies nothing.

use ferry_e2e::*;
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How the relay mistreats packets.
#[derive(Clone, Copy)]
struct Loss {
    /// Probability of dropping a packet in the good state.
    drop: f64,
    /// Probability of entering a burst (every packet lost) per packet; bursts
    /// last `burst_len` packets.
    burst: f64,
    burst_len: u32,
    /// Probability a packet is held back and sent after later ones.
    reorder: f64,
    /// Probability a packet is sent twice.
    duplicate: f64,
    seed: u64,
}

impl Loss {
    fn none() -> Loss {
        Loss {
            drop: 0.0,
            burst: 0.0,
            burst_len: 0,
            reorder: 0.0,
            duplicate: 0.0,
            seed: 1,
        }
    }
}

struct Relay {
    addr: SocketAddr,
    forwarded: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
}

/// A relay from a fresh loopback port to `to`, running until the test ends.
fn relay(to: SocketAddr, loss: Loss) -> Relay {
    let sock = big_buffer_socket();
    let addr = sock.local_addr().unwrap();
    let out = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (forwarded, dropped) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (f, d) = (forwarded.clone(), dropped.clone());
    std::thread::spawn(move || {
        let mut x = loss.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut held: Vec<Vec<u8>> = Vec::new();
        let mut burst_left = 0;
        let mut buf = vec![0u8; 65536];
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        loop {
            let n = match sock.recv(&mut buf) {
                Ok(n) => n,
                Err(_) => {
                    for p in held.drain(..) {
                        let _ = out.send_to(&p, to);
                    }
                    continue;
                }
            };
            let pkt = buf[..n].to_vec();
            if burst_left == 0 && rnd() < loss.burst {
                burst_left = loss.burst_len;
            }
            if burst_left > 0 {
                burst_left -= 1;
                d.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if rnd() < loss.drop {
                d.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if rnd() < loss.reorder {
                held.push(pkt);
                continue;
            }
            let _ = out.send_to(&pkt, to);
            f.fetch_add(1, Ordering::Relaxed);
            if rnd() < loss.duplicate {
                let _ = out.send_to(&pkt, to);
            }
            if held.len() > 20 {
                let i = (rnd() * held.len() as f64) as usize % held.len();
                let p = held.swap_remove(i);
                let _ = out.send_to(&p, to);
            }
        }
    });
    Relay {
        addr,
        forwarded,
        dropped,
    }
}

/// A loopback UDP socket with an 8 MiB receive buffer (as far as the kernel allows).
fn big_buffer_socket() -> UdpSocket {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    let _ = s.set_recv_buffer_size(8 << 20);
    s.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    s.into()
}

fn free_udp_port() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// When a receiver stops.
#[derive(Clone, Copy)]
enum Stop {
    /// Once it applied this many bundles (`--exit-after`), the test's
    /// expected outcome; or, should they never come, a minute after the
    /// last packet, and the test fails on what it finds.
    Applied(u32),
    /// This long after the last packet (`--exit-when-idle`): for a receiver
    /// that is to end with a bundle incomplete. The sender sends a window's
    /// source symbols while it encodes its repair symbols, so it does not
    /// go quiet mid-file; should it, on a loaded machine, the receiver only
    /// stops earlier with the bundle still incomplete.
    Idle(&'static str),
}

/// Waits for the bundle a test sends to be applied.
const APPLIED: Stop = Stop::Applied(1);
/// For a bundle that is to stay incomplete: the sender is done by the time
/// the receiver has heard nothing for this long.
const INCOMPLETE: Stop = Stop::Idle("3s");

/// Starts `ferry-in receive --diode addr --import` with `stop`'s exit
/// option and waits until it has bound `addr`.
fn start_receiver(env: &Env, addr: SocketAddr, stop: Stop) -> Child {
    let exit = match stop {
        Stop::Applied(n) => vec![
            "--exit-after".to_string(),
            n.to_string(),
            "--exit-when-idle".to_string(),
            "60s".to_string(),
        ],
        Stop::Idle(idle) => vec!["--exit-when-idle".to_string(), idle.to_string()],
    };
    let child = Command::new(bin("ferry-in"))
        .arg("--state")
        .arg(&env.in_state)
        .args(["receive", "--diode", &addr.to_string(), "--import"])
        .args(&exit)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_udp_bound(addr.port(), "ferry-in receive --diode");
    child
}

fn finish(child: Child) -> Run {
    let o = child.wait_with_output().unwrap();
    Run {
        ok: o.status.success(),
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// The diode tests run one at a time, and never beside a heavy test: each
/// relays UDP at a fixed rate, and several at once on two cores would starve
/// the relays and lose packets the test did not mean to lose.
fn serial() -> std::sync::RwLockWriteGuard<'static, ()> {
    alone()
}

fn one_bundle_env(seed: u64) -> Env {
    let env = Env::new();
    env.write_src("big.bin", &random_bytes(1_200_000, seed));
    env.write_src("notes.txt", &text_bytes(400_000, seed + 1));
    env.export("media").expect_ok();
    env
}

fn send(env: &Env, to: SocketAddr, overhead: &str, repeat: u32) -> Run {
    env.out(&[
        "send",
        "--diode",
        &to.to_string(),
        "--rate",
        "40M",
        "--overhead",
        overhead,
        "--repeat",
        &repeat.to_string(),
        env.root().join("media").to_str().unwrap(),
    ])
    .expect_ok()
}

/// Sends one bundle through a relay with `loss`; returns the receiver's run.
fn through(loss: Loss, overhead: &str, stop: Stop) -> (Env, Run, Relay) {
    let _one_at_a_time = serial();
    let env = one_bundle_env(loss.seed);
    let rx_addr = free_udp_port();
    let r = relay(rx_addr, loss);
    let child = start_receiver(&env, rx_addr, stop);
    send(&env, r.addr, overhead, 0);
    (env, finish(child), r)
}

fn assert_applied(env: &Env, run: &Run, what: &str) {
    assert!(run.ok, "{what}: receiver failed:\n{}", run.all());
    assert_eq!(
        env.applied_sequence(),
        1,
        "{what}: not applied:\n{}",
        run.all()
    );
    assert_eq!(env.served_digest("tools"), tree_digest(&env.src), "{what}");
}

#[test]
fn lossless_link_delivers_and_applies() {
    let (env, run, r) = through(Loss::none(), "10%", APPLIED);
    assert_applied(&env, &run, "0% loss");
    assert_eq!(r.dropped.load(Ordering::Relaxed), 0);
}

#[test]
fn one_percent_loss_with_reordering_and_duplicates() {
    let loss = Loss {
        drop: 0.01,
        reorder: 0.05,
        duplicate: 0.02,
        seed: 2,
        ..Loss::none()
    };
    let (env, run, r) = through(loss, "10%", APPLIED);
    assert!(r.dropped.load(Ordering::Relaxed) > 0);
    assert_applied(&env, &run, "1% loss");
}

#[test]
fn five_percent_random_loss_under_ten_percent_overhead() {
    let loss = Loss {
        drop: 0.05,
        reorder: 0.02,
        seed: 3,
        ..Loss::none()
    };
    let (env, run, r) = through(loss, "10%", APPLIED);
    let (d, f) = (
        r.dropped.load(Ordering::Relaxed),
        r.forwarded.load(Ordering::Relaxed),
    );
    assert!(
        d * 100 / (d + f) >= 3,
        "the relay dropped only {d} of {}",
        d + f
    );
    assert_applied(&env, &run, "5% loss");
}

#[test]
fn twenty_percent_loss_in_bursts_under_forty_percent_overhead() {
    let loss = Loss {
        burst: 0.01,
        burst_len: 25,
        seed: 4,
        ..Loss::none()
    };
    let (env, run, r) = through(loss, "40%", APPLIED);
    let (d, f) = (
        r.dropped.load(Ordering::Relaxed),
        r.forwarded.load(Ordering::Relaxed),
    );
    assert!(
        d * 100 / (d + f) >= 12,
        "the relay dropped only {d} of {}",
        d + f
    );
    assert_applied(&env, &run, "20% burst loss");
}

#[test]
fn loss_beyond_the_overhead_is_reported_and_nothing_is_applied() {
    let loss = Loss {
        drop: 0.20,
        seed: 5,
        ..Loss::none()
    };
    let (env, run, _) = through(loss, "5%", INCOMPLETE);
    assert!(run.ok, "{}", run.all());
    assert!(
        run.stderr.contains("incomplete") && run.stderr.contains("nothing of it was applied"),
        "{}",
        run.stderr
    );
    assert_eq!(env.applied_sequence(), 0);
    assert!(!env.served("").exists());
    let st = env.inn(&["status", "--json"]).expect_ok();
    assert!(
        st.stdout.contains("\"segments_missing\"")
            || st.stdout.contains("\"segments_recoverable\""),
        "{}",
        st.stdout
    );
}

#[test]
fn a_late_or_restarted_receiver_completes_on_the_next_carousel_pass() {
    let _one_at_a_time = serial();
    let env = one_bundle_env(6);
    let rx_addr = free_udp_port();
    // First pass: the receiver sees only part of it (a long outage in the middle).
    let loss = Loss {
        burst: 0.02,
        burst_len: 200,
        seed: 6,
        ..Loss::none()
    };
    let r = relay(rx_addr, loss);
    let child = start_receiver(&env, rx_addr, INCOMPLETE);
    send(&env, r.addr, "5%", 0);
    let first = finish(child);
    assert!(
        first.stderr.contains("incomplete"),
        "the first pass should not complete:\n{}",
        first.all()
    );
    assert_eq!(env.applied_sequence(), 0);
    // A restarted receiver keeps what it rebuilt and completes on a clean carousel pass.
    let child = start_receiver(&env, rx_addr, APPLIED);
    let clean = relay(rx_addr, Loss::none());
    send(&env, clean.addr, "5%", 1);
    let second = finish(child);
    assert!(
        second.stderr.contains("resuming bundle 1"),
        "{}",
        second.all()
    );
    assert_applied(&env, &second, "restart and carousel");
}

#[test]
fn garbage_and_foreign_packets_are_dropped() {
    let _one_at_a_time = serial();
    let env = one_bundle_env(7);
    let rx_addr = free_udp_port();
    let child = start_receiver(&env, rx_addr, APPLIED);
    let junk = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..500u64 {
        let mut p = random_bytes(200 + (i as usize * 13) % 1300, i);
        if i % 2 == 0 {
            p[..4].copy_from_slice(b"FRYD");
            p[4] = 1;
            p[5] = 0;
        }
        junk.send_to(&p, rx_addr).unwrap();
    }
    send(&env, rx_addr, "10%", 0);
    let run = finish(child);
    assert_applied(&env, &run, "with garbage");
    let st = env.inn(&["status", "--json"]).expect_ok();
    let garbage_line = st
        .stdout
        .lines()
        .find(|l| l.contains("\"garbage\""))
        .expect("garbage counter");
    let n: u64 = garbage_line
        .trim()
        .trim_start_matches("\"garbage\":")
        .trim()
        .trim_end_matches(',')
        .parse()
        .unwrap();
    assert!(n >= 500, "only {n} garbage packets counted");
}

#[test]
fn export_straight_to_a_diode() {
    let _one_at_a_time = serial();
    let env = Env::new();
    env.write_src("tool.bin", &random_bytes(500_000, 8));
    let rx_addr = free_udp_port();
    let child = start_receiver(&env, rx_addr, APPLIED);
    let r = env
        .out(&[
            "export",
            "--config",
            env.config.to_str().unwrap(),
            "--to",
            &format!("diode://{rx_addr}"),
            "--rate",
            "40M",
        ])
        .expect_ok();
    assert!(
        r.stdout.contains("bundle 1 exported") && r.stdout.contains("sent 1 bundle"),
        "{}",
        r.all()
    );
    let run = finish(child);
    assert_applied(&env, &run, "export --to diode://");
}

/// The stream, file count and manifest size of the one bundle in `media`.
fn bundle_facts(env: &Env) -> (ferry_protocol::id::StreamId, u16, u64) {
    let dir = env.only_bundle("media");
    let bytes = std::fs::read(dir.join("manifest.ferry")).unwrap();
    let (_, m) = ferry_protocol::manifest::peek_unverified(&bytes).unwrap();
    let m = m.head();
    (m.stream, m.volumes.len() as u16 + 1, bytes.len() as u64)
}

/// A well-formed packet (it passes the unkeyed check) with forged fields.
#[allow(clippy::too_many_arguments)]
fn forged(
    stream: ferry_protocol::id::StreamId,
    sequence: u64,
    file_count: u16,
    file_size: u64,
    segment_size: u32,
    symbol_size: u16,
    symbol_id: u32,
    seed: u64,
) -> Vec<u8> {
    ferry_protocol::diode::Packet {
        stream,
        sequence,
        file: 0,
        file_count,
        file_size,
        segment: 0,
        segment_size,
        symbol_size,
        symbol_id,
        data: random_bytes(symbol_size as usize, seed),
    }
    .to_bytes()
}

fn counter(env: &Env, name: &str) -> u64 {
    let st = env.inn(&["status", "--json"]).expect_ok();
    let v: serde_json::Value = serde_json::from_str(&st.stdout).unwrap();
    v["diode"]["counters"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no counter {name} in {}", st.stdout))
}

#[test]
fn forged_packets_on_the_diode_network_neither_crash_nor_block_the_receiver() {
    let _one_at_a_time = serial();
    let env = one_bundle_env(9);
    let (stream, file_count, manifest_size) = bundle_facts(&env);
    let rx_addr = free_udp_port();
    let child = start_receiver(&env, rx_addr, APPLIED);
    let attacker = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut forgeries = Vec::new();
    // A 32 GiB file in 8-byte segments: used to crash the receiver (exit 101).
    forgeries.push(forged(stream, 1, 2, 1 << 35, 8, 8, 0, 1));
    // Eight bundles of its own fill every receive slot.
    for seq in 1000..1008 {
        forgeries.push(forged(stream, seq, 2, 65_536, 65_536, 1024, 0, seq));
    }
    // Symbols 0..4 of the real manifest's first segment, forged, arrive first.
    let t = ferry_protocol::diode::symbol_size_for_mtu(1500);
    // The sender's default segment size, 4 MiB, in whole symbols.
    let segment = ((4u32 << 20) / t as u32) * t as u32;
    for id in 0..4 {
        forgeries.push(forged(
            stream,
            1,
            file_count,
            manifest_size,
            segment,
            t,
            id,
            50 + id as u64,
        ));
    }
    for p in &forgeries {
        attacker.send_to(p, rx_addr).unwrap();
    }
    // The real sender: the first pass is poisoned, the carousel's second is clean.
    send(&env, rx_addr, "10%", 1);
    let run = finish(child);
    assert_applied(&env, &run, "forged packets alongside a real send");
    assert!(
        counter(&env, "over_limit") >= 1,
        "the 2^35 packet was not refused"
    );
    assert!(
        counter(&env, "poisoned_segments") >= 1,
        "the forged manifest symbols went unnoticed"
    );
    assert!(counter(&env, "evicted_bundles") >= 1);
    let spool = env.in_state.join("spool");
    assert!(
        dir_bytes(&spool) < 10 << 20,
        "the forged bundles left {} bytes in the spool",
        dir_bytes(&spool)
    );
}

#[test]
fn an_import_blocked_by_a_held_database_is_retried() {
    let _one_at_a_time = serial();
    let env = one_bundle_env(10);
    let rx_addr = free_udp_port();
    let child = start_receiver(&env, rx_addr, APPLIED);
    // Another process holds the state database open, as another ferry-in
    // command does (redb admits one process at a time).
    let db = redb::Database::create(env.in_state.join("ferry-in.redb")).unwrap();
    send(&env, rx_addr, "10%", 0);
    // Hold it until the receiver has the bundle complete (and tried to import it).
    let spool = env.in_state.join("spool");
    let complete = || {
        std::fs::read_dir(&spool)
            .unwrap()
            .flatten()
            .any(|e| !e.file_name().to_string_lossy().starts_with('.'))
    };
    for _ in 0..300 {
        if complete() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(complete(), "the bundle was not received");
    std::thread::sleep(Duration::from_secs(2));
    drop(db);
    let run = finish(child);
    assert!(
        run.stderr.contains("retrying"),
        "the import was not blocked:\n{}\n{}",
        run.all(),
        env.inn(&["status", "--json"]).all()
    );
    assert_applied(&env, &run, "import retried after the database was released");
    assert!(!env.in_state.join("spool").join(".refused").exists());
}

#[test]
fn a_receiver_killed_mid_bundle_resumes_after_a_restart() {
    let _one_at_a_time = serial();
    let env = one_bundle_env(11);
    let rx_addr = free_udp_port();
    let mut child = start_receiver(&env, rx_addr, Stop::Idle("30s"));
    let media = env.root().join("media");
    let sender = std::thread::spawn({
        let out_state = env.out_state.clone();
        move || {
            ferry_out(
                &out_state,
                &[
                    "send",
                    "--diode",
                    &rx_addr.to_string(),
                    "--rate",
                    "3M",
                    "--overhead",
                    "10%",
                    media.to_str().unwrap(),
                ],
            )
        }
    });
    // Progress is saved every second; kill -9 once some is on disk.
    let spool = env.in_state.join("spool");
    let mut saved = false;
    for _ in 0..100 {
        saved = std::fs::read_dir(&spool)
            .unwrap()
            .flatten()
            .any(|e| e.path().join("progress.json").is_file());
        if saved {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(saved, "no progress was saved");
    child.kill().unwrap();
    let killed = finish(child);
    assert!(!killed.ok);
    assert_eq!(env.applied_sequence(), 0);
    // The restarted receiver resumes from its saved progress, with whatever
    // the slow first send still sends and a second send.
    let child = start_receiver(&env, rx_addr, APPLIED);
    send(&env, rx_addr, "10%", 0);
    let run = finish(child);
    assert!(run.stderr.contains("resuming bundle 1"), "{}", run.all());
    assert_applied(&env, &run, "restart after kill -9");
    sender.join().unwrap().expect_ok();
}

#[test]
fn a_bundle_refused_after_the_diode_is_recorded_for_the_receipt() {
    let _one_at_a_time = serial();
    let mut env = one_bundle_env(12);
    // An inside that trusts another key for this stream: the bundle received
    // whole is refused as signed by an untrusted key.
    let other = env.root().join("other-key");
    ferry_out(&other, &["keygen"]).expect_ok();
    env.in_state = env.root().join("in-other");
    env.inn(&[
        "trust",
        "add",
        other.join("signing.pub").to_str().unwrap(),
        "--stream",
        &env.stream(),
    ])
    .expect_ok();
    let rx_addr = free_udp_port();
    let child = start_receiver(&env, rx_addr, INCOMPLETE);
    send(&env, rx_addr, "10%", 0);
    let run = finish(child);
    assert!(run.stderr.contains("was refused"), "{}", run.all());
    assert_eq!(env.applied_sequence(), 0);

    // Recorded as an import's refusal is, and carried out by the receipt.
    let v: serde_json::Value =
        serde_json::from_str(&env.inn(&["status", "--json"]).expect_ok().stdout).unwrap();
    let refused = v["refused"].as_array().unwrap();
    assert_eq!(refused.len(), 1, "{v}");
    assert_eq!(
        (
            refused[0]["sequence"].as_u64(),
            refused[0]["refusal"].as_str()
        ),
        (Some(1), Some("UntrustedKey"))
    );
    let stick = env.root().join("stick");
    env.inn(&["receipt", "--to", stick.to_str().unwrap()])
        .expect_ok();
    env.out(&[
        "trust-inside",
        env.in_state.join("inside.pub").to_str().unwrap(),
    ])
    .expect_ok();
    let file = dir_names(&stick)
        .into_iter()
        .find(|n| n.ends_with(".ferryrct"))
        .unwrap();
    env.out(&["receipt", "add", stick.join(file).to_str().unwrap()])
        .expect_ok();
    let status = env.out(&["status"]).expect_ok().stdout;
    assert!(
        status.contains("refused bundle 1") && status.contains("UntrustedKey"),
        "{status}"
    );
}
