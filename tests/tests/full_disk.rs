//! A full disk under the held area and the diode spool (issue 10, defect 7
//! and the campaign's full-disk bullet): each write that does not fit fails
//! with an error naming the limit and the numbers, leaves no temporary
//! directory, and the previous generation stays served. (A full disk under
//! an apply is in bad_input.rs.) Each test mounts a small tmpfs (root
//! needed) and unmounts it after; where it cannot, it says it is skipped.

use ferry_e2e::*;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Field order matters: the tmpfs is unmounted before the temporary
/// directory holding it is removed.
struct Setup {
    disk: Tmpfs,
    env: Env,
    /// `current`'s target and the bytes of `small.txt` with bundle 1 applied.
    served: (PathBuf, Vec<u8>),
    config: PathBuf,
}

/// An inside on a `size_mib` tmpfs with bundle 1 (a small file) applied;
/// its config keeps no free-space reserve (`reserve = "0"`), so what is
/// caught is the disk itself.
fn setup(test: &str, size_mib: u64) -> Option<Setup> {
    let mut env = Env::new();
    let disk = Tmpfs::mount(test, &env.root().join("disk"), size_mib)?;
    env.in_state = disk.dir.join("in-state");
    env.trust_own_key();
    env.write_src("small.txt", &text_bytes(50_000, 1));
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();
    let config = env.root().join("ferry-in.toml");
    std::fs::write(
        &config,
        "[held]\nreserve = \"0\"\n[spool]\nreserve = \"0\"\n",
    )
    .unwrap();
    let served = served_now(&env);
    Some(Setup {
        disk,
        env,
        served,
        config,
    })
}

fn served_now(env: &Env) -> (PathBuf, Vec<u8>) {
    let link = std::fs::read_link(env.in_state.join("store/current")).unwrap();
    (link, std::fs::read(env.served("small.txt")).unwrap())
}

/// Entries of `dir` whose names start with a dot (temporary copies, partial bundles).
fn dot_entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

fn assert_failed_cleanly(r: &Run, needles: &[&str], what: &str) {
    assert_eq!(r.code, Some(1), "{what}: exit code\n{}", r.stderr);
    assert!(
        !r.stderr.contains("panicked"),
        "{what}: panicked\n{}",
        r.stderr
    );
    for n in needles {
        assert!(r.stderr.contains(n), "{what}: no {n:?} in:\n{}", r.stderr);
    }
}

#[test]
fn a_held_copy_beyond_the_free_space_fails_cleanly() {
    let Some(s) = setup("a_held_copy_beyond_the_free_space_fails_cleanly", 48) else {
        return;
    };
    let (env, cfg) = (&s.env, s.config.to_str().unwrap());
    env.write_src("two.txt", b"two");
    env.export("m2").expect_ok();
    env.write_src("big.bin", &random_bytes(8 << 20, 3));
    env.export("m3").expect_ok();
    let m3 = env.root().join("m3");
    let held = env.in_state.join("held");
    let filler = s.disk.fill_to("filler", 3 << 20);

    // (a) The free-space check refuses to copy, naming the numbers.
    let r = env.inn(&["--config", cfg, "import", m3.to_str().unwrap()]);
    assert_failed_cleanly(
        &r,
        &["bundle 3", "was not held", "free", "[held] reserve"],
        "held, space check",
    );
    // (b) Without it, the copy itself hits ENOSPC and removes what it wrote.
    let r = env.inn(&[
        "--config",
        cfg,
        "import",
        m3.to_str().unwrap(),
        "--no-space-check",
    ]);
    assert_failed_cleanly(
        &r,
        &["bundle 3", "was not held", "No space left"],
        "held, copy",
    );
    assert!(dot_entries(&held).is_empty(), "{:?}", dot_entries(&held));
    assert!(dir_names(&held).is_empty(), "{:?}", dir_names(&held));
    assert_eq!(env.applied_sequence(), 1);
    assert_eq!(served_now(env), s.served, "the served generation changed");

    // Room again: 3 is held, then 2 arrives and both apply.
    std::fs::remove_file(filler).unwrap();
    env.inn(&["--config", cfg, "import", m3.to_str().unwrap()])
        .expect_ok();
    assert_eq!(dir_names(&held).len(), 1);
    env.import("m2").expect_ok();
    assert_eq!(env.applied_sequence(), 3);
    assert_eq!(env.served_digest("tools"), tree_digest(&env.src));
}

#[test]
fn the_held_quota_names_its_limit() {
    let Some(s) = setup("the_held_quota_names_its_limit", 48) else {
        return;
    };
    let env = &s.env;
    std::fs::write(&s.config, "[held]\nmax_bytes = \"1M\"\nreserve = \"0\"\n").unwrap();
    env.write_src("two.txt", b"two");
    env.export("m2").expect_ok();
    env.write_src("big.bin", &random_bytes(2 << 20, 4));
    env.export("m3").expect_ok();
    let m3 = env.root().join("m3");
    let r = env.inn(&[
        "--config",
        s.config.to_str().unwrap(),
        "import",
        m3.to_str().unwrap(),
    ]);
    assert_failed_cleanly(
        &r,
        &[
            "bundle 3",
            "was not held",
            "limit of 1.0 MiB",
            "[held] max_bytes",
        ],
        "held quota",
    );
    assert!(dir_names(&env.in_state.join("held")).is_empty());
    assert_eq!(served_now(env), s.served);
}

#[test]
fn a_full_spool_drops_the_bundle_being_received_cleanly() {
    let Some(s) = setup("a_full_spool_drops_the_bundle_being_received_cleanly", 48) else {
        return;
    };
    let env = &s.env;
    env.write_src("big.bin", &random_bytes(4 << 20, 5));
    env.export("media").expect_ok();
    let spool = s.disk.dir.join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let _filler = s.disk.fill_to("filler", 2 << 20);

    let addr: SocketAddr = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    // Its messages go to a file: one line per packet of a dropped bundle
    // would fill a pipe nobody reads yet.
    let log = env.root().join("receive.log");
    let child = Command::new(bin("ferry-in"))
        .arg("--state")
        .arg(&env.in_state)
        .args(["--config", s.config.to_str().unwrap()])
        .args(["receive", "--diode", &addr.to_string(), "--import"])
        .arg("--spool")
        .arg(&spool)
        // The bundle is to stay incomplete: the receiver stops once the
        // sender is quiet (it sends a window's source symbols while it
        // encodes the repair symbols, so it does not pause mid-file).
        .args(["--exit-when-idle", "3s"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    // Ready when the status file is written (within a second of starting).
    for _ in 0..200 {
        if env.in_state.join("diode-receive.json").is_file() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    env.out(&[
        "send",
        "--diode",
        &addr.to_string(),
        "--rate",
        "40M",
        env.root().join("media").to_str().unwrap(),
    ])
    .expect_ok();
    let status = child.0.wait().unwrap();
    let stderr = std::fs::read_to_string(&log).unwrap();
    let drops = stderr.matches("dropping bundle 2 being received").count();
    eprintln!(
        "receiver log: {} lines, {drops} of them drops of the bundle that does not fit",
        stderr.lines().count(),
    );
    // Each of its ~3,000 packets restarts it; the log says so once a minute,
    // not once a packet.
    assert!((1..100).contains(&drops), "{drops} drop lines");
    assert!(status.success(), "the receiver failed:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("dropping bundle 2 being received")
            && stderr.contains("[spool] reserve")
            && stderr.contains("free"),
        "the receiver does not say the spool is full:\n{stderr}\nstatus: {}",
        std::fs::read_to_string(env.in_state.join("diode-receive.json")).unwrap_or_default()
    );
    // What later packets restarted holds the manifest at most: the volume
    // that did not fit was never made, and nothing filled the disk.
    let mut made = Vec::new();
    for d in dot_entries(&spool) {
        made.extend(dir_names(&spool.join(d)));
    }
    assert!(
        made.iter()
            .all(|n| n == "manifest.ferry" || n == "progress.json"),
        "{made:?}"
    );
    assert!(s.disk.free() > 1 << 20, "the spool filled the disk");
    assert_eq!(env.applied_sequence(), 1);
    assert_eq!(served_now(env), s.served, "the served generation changed");
}

#[test]
fn an_import_too_big_for_the_disk_fails_cleanly() {
    let Some(s) = setup("an_import_too_big_for_the_disk_fails_cleanly", 48) else {
        return;
    };
    let env = &s.env;
    env.write_src("big.bin", &random_bytes(8 << 20, 6));
    env.export("m2").expect_ok();
    let m2 = env.root().join("m2");
    let filler = s.disk.fill_to("filler", 3 << 20);
    for flags in [&[][..], &["--no-space-check"][..]] {
        let mut args = vec!["import", m2.to_str().unwrap()];
        args.extend_from_slice(flags);
        let r = env.inn(&args);
        let why = if flags.is_empty() {
            "needs about"
        } else {
            "No space left"
        };
        assert_failed_cleanly(&r, &["bundle 2", "still serves bundle 1", why], "import");
        assert!(!env.in_state.join("staging").exists(), "staging was left");
        let gens = env.in_state.join("store/gens");
        assert!(dot_entries(&gens).is_empty(), "{:?}", dot_entries(&gens));
        assert_eq!(env.applied_sequence(), 1);
        assert_eq!(served_now(env), s.served, "the served generation changed");
    }
    std::fs::remove_file(filler).unwrap();
    env.import("m2").expect_ok();
    assert_eq!(env.applied_sequence(), 2);
}
