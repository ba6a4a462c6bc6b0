//! Receipts close the loop across a one-way link by hand: `ferry-in
//! receipt` says what the inside holds, `ferry-out receipt add` records it,
//! and `resend --missing` and `prune` act on it.

use ferry_e2e::*;
use std::path::{Path, PathBuf};

/// Three bundles exported (`m1`..`m3`); the inside got 1 and 3, so it
/// applied 1 and holds 3 until 2 arrives. The outside trusts its receipts.
fn one_stick_lost() -> Env {
    let env = Env::new();
    for n in 1..=3 {
        env.write_src(&format!("f{n}.txt"), format!("release {n}\n").as_bytes());
        env.export(&format!("m{n}")).expect_ok();
    }
    env.import("m1").expect_ok();
    env.import("m3").expect_ok();
    assert_eq!(env.applied_sequence(), 1);
    let inside_pub = env.in_state.join("inside.pub");
    env.inn(&[
        "receipt",
        "--to",
        env.root().join("stick").to_str().unwrap(),
    ])
    .expect_ok();
    env.out(&["trust-inside", inside_pub.to_str().unwrap()])
        .expect_ok();
    env
}

/// The receipt files in `dir` of the temporary root.
fn receipts_in(env: &Env, dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(env.root().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ferryrct"))
        .collect();
    v.sort();
    v
}

/// Asserts that `r`'s standard output holds every needle.
fn says(r: &Run, needles: &[&str]) {
    for n in needles {
        assert!(r.stdout.contains(n), "{n:?} not in:\n{}", r.stdout);
    }
}

fn add(env: &Env, file: &Path) -> Run {
    env.out(&["receipt", "add", file.to_str().unwrap()])
}

#[test]
fn a_receipt_tells_the_outside_what_to_resend_and_what_not_to_prune() {
    let env = one_stick_lost();
    let stick = receipts_in(&env, "stick");
    assert_eq!(stick.len(), 1, "{stick:?}");
    let added = add(&env, &stick[0]).expect_ok();
    says(&added, &["bundle 1 applied", "1 held", "3: "]);
    // The inventory digest matches the catalog of the applied bundle.
    assert!(
        !added.stderr.contains("inventory differs"),
        "{}",
        added.stderr
    );
    let status = env.out(&["status"]).expect_ok();
    says(&status, &["via receipt", "bundle 1 applied, 1 held"]);

    // Exactly the bundle the inside lacks: not 1 (applied), not 3 (held).
    let again = env.root().join("again");
    env.out(&["resend", "--missing", "--to", again.to_str().unwrap()])
        .expect_ok();
    let written = dir_names(&again);
    assert_eq!(written.len(), 1, "{written:?}");
    assert!(written[0].ends_with("00000002"), "{written:?}");

    // prune keeps what the inside has not acknowledged, whatever --keep says.
    env.out(&["prune", "--keep", "0"]).expect_ok();
    let kept = dir_names(&env.out_state.join("bundles"));
    assert_eq!(kept.len(), 2, "bundles 2 and 3 stay: {kept:?}");

    // The gap filled, the held bundle follows; a new receipt says so.
    env.import("again").expect_ok();
    assert_eq!(env.applied_sequence(), 3);
    env.inn(&[
        "receipt",
        "--to",
        env.root().join("stick2").to_str().unwrap(),
    ])
    .expect_ok();
    says(
        &add(&env, &receipts_in(&env, "stick2")[0]).expect_ok(),
        &["bundle 3 applied", "0 held"],
    );
    says(
        &env.out(&["resend", "--missing", "--to", again.to_str().unwrap()])
            .expect_ok(),
        &["no inside lacks a bundle"],
    );
    // An old receipt again changes nothing.
    add(&env, &stick[0]).expect_fail(&["older than the one recorded"]);
}

#[test]
fn the_text_form_is_accepted_and_bad_receipts_are_refused_by_name() {
    let env = one_stick_lost();
    // The printed text form (what a QR code carries), saved to a file.
    let text = env.inn(&["receipt"]).expect_ok().stdout;
    assert!(text.starts_with("ferry-receipt:"), "{text}");
    let as_text = env.root().join("receipt.txt");
    std::fs::write(&as_text, &text).unwrap();
    add(&env, &as_text).expect_ok();
    let qr = env.inn(&["receipt", "--qr"]).expect_ok().stdout;
    assert!(qr.lines().count() > 20, "a QR code is printed:\n{qr}");

    let good = std::fs::read(&receipts_in(&env, "stick")[0]).unwrap();
    let mut tampered = good.clone();
    tampered[60] ^= 1;
    let t = env.root().join("tampered.ferryrct");
    std::fs::write(&t, tampered).unwrap();
    add(&env, &t).expect_fail(&["does not verify"]);
    let short = env.root().join("short.ferryrct");
    std::fs::write(&short, &good[..50]).unwrap();
    add(&env, &short).expect_fail(&["a receipt is"]);

    // Another inside, not trusted: refused, naming its key.
    let other = env.root().join("other-in");
    ferry_in(
        &other,
        &[
            "receipt",
            "--to",
            env.root().join("other").to_str().unwrap(),
        ],
    )
    .expect_ok();
    add(&env, &receipts_in(&env, "other")[0]).expect_fail(&["not a trusted inside key"]);

    // Trusted, but it follows no stream and holds nothing: it lacks everything.
    env.out(&["trust-inside", other.join("inside.pub").to_str().unwrap()])
        .expect_ok();
    says(
        &add(&env, &receipts_in(&env, "other")[0]).expect_ok(),
        &["bundle 0 applied"],
    );
    let all = env.root().join("all");
    env.out(&["resend", "--missing", "--to", all.to_str().unwrap()])
        .expect_ok();
    assert_eq!(dir_names(&all).len(), 3, "the new inside lacks all three");
    // Each inside has its own receipts: prune keeps what either has not
    // acknowledged (the first applied bundle 1, the new one nothing).
    env.out(&["prune", "--keep", "0"]).expect_ok();
    let kept = dir_names(&env.out_state.join("bundles"));
    assert_eq!(
        kept.len(),
        3,
        "the new inside acknowledged nothing: {kept:?}"
    );
}

#[test]
fn refused_bundles_are_recorded_inside_and_shown_outside_from_the_receipt() {
    let env = Env::new();
    // A second history of the same stream and key: its bundle 1 differs.
    let fork = env.root().join("out-fork");
    copy_tree(&env.out_state, &fork);
    env.write_src("a.txt", b"the real release\n");
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();
    env.write_src("a.txt", b"another history\n");
    let media = env.root().join("forked");
    ferry_out(
        &fork,
        &[
            "export",
            "--config",
            env.config.to_str().unwrap(),
            "--to",
            media.to_str().unwrap(),
        ],
    )
    .expect_ok();
    env.import("forked")
        .expect_fail(&["already applied with different content"]);

    let status = env.inn(&["status"]).expect_ok();
    says(&status, &["refused:    bundle 1", "ReplayedDifferent"]);
    let json = env.inn(&["status", "--json"]).expect_ok();
    says(&json, &["\"refusal\": \"ReplayedDifferent\""]);

    env.inn(&[
        "receipt",
        "--to",
        env.root().join("stick").to_str().unwrap(),
    ])
    .expect_ok();
    env.out(&[
        "trust-inside",
        env.in_state.join("inside.pub").to_str().unwrap(),
    ])
    .expect_ok();
    says(
        &add(&env, &receipts_in(&env, "stick")[0]).expect_ok(),
        &["refused bundle 1", "ReplayedDifferent"],
    );
    says(
        &env.out(&["status"]).expect_ok(),
        &["refused bundle 1", "ReplayedDifferent"],
    );
}

/// `prune` compacts the ledger's catalog history too, but never past what
/// a trusted inside applied or a kept bundle needs: the kept bundles are
/// re-sent, a rebase snapshot is made, receipts are recorded. An inside
/// found later at a bundle whose catalog is gone (restored from a backup)
/// is recorded with a warning, and joins again from a snapshot.
#[test]
fn prune_compacts_the_catalog_history_but_not_what_an_inside_applied() {
    // One more than the ledger's checkpoint interval (64) and a few: the
    // history has a checkpoint to cut at (sequence 65).
    let last = 70u64;
    let env = Env::new();
    for n in 1..=last {
        env.write_src(
            &format!("f{}.txt", n % 4),
            format!("release {n}\n").as_bytes(),
        );
        env.export(&format!("m{n}")).expect_ok();
    }
    // The inside applies 1 and sends a receipt; a backup of it is taken.
    env.import("m1").expect_ok();
    env.inn(&["receipt", "--to", env.root().join("r1").to_str().unwrap()])
        .expect_ok();
    let backup = env.root().join("in-backup");
    copy_tree(&env.in_state, &backup);
    env.out(&[
        "trust-inside",
        env.in_state.join("inside.pub").to_str().unwrap(),
    ])
    .expect_ok();
    add(&env, &receipts_in(&env, "r1")[0]).expect_ok();

    // It acknowledged bundle 1 only: its copy goes, nothing of the history.
    let p = env.out(&["prune", "--keep", "3"]).expect_ok();
    says(&p, &["keeping the bundles after 1", "pruned 1 kept"]);
    assert!(!p.stdout.contains("compacted"), "{}", p.stdout);

    // It catches up (69 bundles) and says so: the history before the
    // checkpoint at or before the oldest kept bundle (68) goes.
    for n in 2..=last {
        env.import(&format!("m{n}")).expect_ok();
    }
    assert_eq!(env.applied_sequence(), last);
    env.inn(&["receipt", "--to", env.root().join("r70").to_str().unwrap()])
        .expect_ok();
    says(
        &add(&env, &receipts_in(&env, "r70")[0]).expect_ok(),
        &["bundle 70 applied"],
    );
    let p = env.out(&["prune", "--keep", "3"]).expect_ok();
    says(
        &p,
        &[
            "pruned 66 kept",
            "compacted the catalog history before bundle 65: 64 catalog(s)",
        ],
    );
    // Again: nothing more to do.
    let again = env.out(&["prune", "--keep", "3"]).expect_ok();
    says(&again, &["pruned 0 kept"]);
    assert!(!again.stdout.contains("compacted"), "{}", again.stdout);

    // The kept bundles are re-sent, the pruned ones are refused by name,
    // status reads the head's catalog, and a rebase snapshot is made.
    let resent = env.root().join("resent");
    env.out(&["resend", "--from", "68", "--to", resent.to_str().unwrap()])
        .expect_ok();
    assert_eq!(dir_names(&resent).len(), 3);
    env.out(&["resend", "--from", "60", "--to", resent.to_str().unwrap()])
        .expect_fail(&["bundle 60", "no longer kept"]);
    says(
        &env.out(&["status"]).expect_ok(),
        &["source tools: 4 objects"],
    );
    env.export_with("snap", &["--rebase"]).expect_ok();

    // The stream goes on after the prune.
    env.write_src("f9.txt", b"after the prune\n");
    env.export("m71").expect_ok();
    env.import("m71").expect_ok();
    assert_eq!(env.applied_sequence(), last + 1);

    // The inside is restored from its backup (bundle 1, whose catalog is
    // gone): its receipt is recorded, with a warning that its inventory
    // was not checked, and what it lacks is known.
    let restored = env.root().join("in-restored");
    copy_tree(&backup, &restored);
    // Receipts are ordered by the second they were written in: this one
    // must come after the live inside's.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    ferry_in(
        &restored,
        &["receipt", "--to", env.root().join("rb").to_str().unwrap()],
    )
    .expect_ok();
    let r = add(&env, &receipts_in(&env, "rb")[0]).expect_ok();
    says(&r, &["bundle 1 applied"]);
    assert!(
        r.stderr.contains("inventory was not checked") && r.stderr.contains("catalog of bundle 1"),
        "{}",
        r.stderr
    );
    env.out(&["resend", "--missing", "--to", resent.to_str().unwrap()])
        .expect_fail(&["no longer kept"]);
    // It joins again from the snapshot of the head.
    env.export_with("snap71", &["--rebase"]).expect_ok();
    let snap71 = env.root().join("snap71");
    ferry_in(&restored, &["import", "--rebase", snap71.to_str().unwrap()]).expect_ok();
    assert_eq!(status_of(&restored).applied_sequence, last + 1);
    assert_eq!(served_digest_of(&restored, "tools"), tree_digest(&env.src));
}
