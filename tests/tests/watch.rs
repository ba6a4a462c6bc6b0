//! `ferry-in watch DIR`: bundles copied onto a "stick" under DIR are
//! imported once they stop changing, and a receipt is written; a corrupt
//! bundle is refused and logged while watching goes on; `--once` imports
//! what is there and exits, the receipt on the stick (the path unit's way).

use ferry_e2e::*;
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Waits up to 60 s for `cond`, panicking with `what` and the log.
fn wait_for(what: &str, log: &Mutex<String>, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "{what} within 60 s; watch said:\n{}",
            log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn receipts(dir: &Path) -> Vec<String> {
    dir_names(dir)
        .into_iter()
        .filter(|n| n.ends_with(".ferryrct"))
        .collect()
}

#[test]
fn watch_imports_what_a_stick_brings_and_writes_receipts() {
    let env = Env::new();
    env.write_src("a.bin", &random_bytes(200_000, 1));
    env.export("m1").expect_ok();
    env.write_src("b.bin", &random_bytes(100_000, 2));
    env.export("m2").expect_ok();
    env.write_src("c.bin", &random_bytes(50_000, 3));
    env.export("m3").expect_ok();
    let mnt = env.root().join("mnt");
    let out = env.root().join("receipts");
    std::fs::create_dir_all(&mnt).unwrap();

    let mut child = Command::new(bin("ferry-in"))
        .arg("--state")
        .arg(&env.in_state)
        .arg("watch")
        .arg(&mnt)
        .args(["--interval", "0.2", "--receipts"])
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let sink = log.clone();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            sink.lock().unwrap().push_str(&format!("{line}\n"));
        }
    });
    let mut watch = KillOnDrop(child);

    // A stick mounted under DIR with bundle 1.
    let b1 = env.only_bundle("m1");
    std::fs::create_dir_all(mnt.join("stick")).unwrap();
    copy_tree(&b1, &mnt.join("stick").join(b1.file_name().unwrap()));
    wait_for("bundle 1 applied and a receipt written", &log, || {
        receipts(&out).len() == 1
    });
    assert_eq!(env.applied_sequence(), 1);
    assert!(
        receipts(&out)[0].ends_with("-00000001.ferryrct"),
        "{:?}",
        receipts(&out)
    );

    // Bundle 2 arrives damaged: refused and logged, watch goes on.
    let b2 = env.only_bundle("m2");
    let bad = mnt.join("stick2").join(b2.file_name().unwrap());
    std::fs::create_dir_all(mnt.join("stick2")).unwrap();
    copy_tree(&b2, &bad);
    let volume = dir_names(&bad)
        .into_iter()
        .map(|n| bad.join(n))
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&volume).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&volume, bytes).unwrap();
    wait_for("the damaged bundle refused", &log, || {
        log.lock().unwrap().contains("refused:")
    });
    assert!(
        watch.0.try_wait().unwrap().is_none(),
        "watch stopped:\n{}",
        log.lock().unwrap()
    );
    assert_eq!(env.applied_sequence(), 1);
    assert_eq!(receipts(&out).len(), 1, "no receipt for a refused bundle");

    // The good copy replaces it: imported, a second receipt.
    std::fs::remove_dir_all(&bad).unwrap();
    copy_tree(&b2, &bad);
    wait_for("bundle 2 applied", &log, || receipts(&out).len() == 2);
    assert_eq!(env.applied_sequence(), 2);
    drop(watch);

    // --once, as the path unit runs it: bundle 3, the receipt on the stick.
    let b3 = env.only_bundle("m3");
    let stick3 = mnt.join("stick3");
    std::fs::create_dir_all(&stick3).unwrap();
    copy_tree(&b3, &stick3.join(b3.file_name().unwrap()));
    let r = env
        .inn(&["watch", "--once", mnt.to_str().unwrap()])
        .expect_ok();
    assert_eq!(env.applied_sequence(), 3, "{}", r.all());
    assert_eq!(receipts(&stick3).len(), 1, "{}", r.all());
    // The refused copy was replaced; the stick with bundle 2 is skipped as applied.
    assert!(r.stderr.contains("receipt"), "{}", r.all());
}
