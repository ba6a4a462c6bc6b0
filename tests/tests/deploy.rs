//! The systemd units in deploy/: they parse, start the real binaries with
//! arguments those binaries accept, and run without privileges.

use ferry_e2e::{bin, skip};
use std::path::{Path, PathBuf};
use std::process::Command;

fn units() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/systemd");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "service"))
        .collect();
    v.sort();
    assert!(
        v.len() >= 5,
        "expected the deploy units in {}",
        dir.display()
    );
    v
}

fn settings(text: &str, key: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .map(str::to_string)
        .collect()
}

/// The ExecStart line of a unit, with the installed binary path replaced by
/// the one just built and `%I` by a media path.
fn exec_start(text: &str) -> Vec<String> {
    let line = settings(text, "ExecStart");
    assert_eq!(line.len(), 1, "one ExecStart per unit");
    line[0]
        .split_whitespace()
        .map(|w| {
            let w = w.replace("/%I", "/media/stick");
            match w.strip_prefix("/usr/local/bin/") {
                Some(name) => bin(name).display().to_string(),
                None => w,
            }
        })
        .collect()
}

#[test]
fn every_unit_runs_unprivileged_and_confined() {
    for unit in units() {
        let text = std::fs::read_to_string(&unit).unwrap();
        let name = unit.file_name().unwrap().to_string_lossy();
        let user = settings(&text, "User");
        assert!(
            user.iter()
                .any(|u| ["ferry-in", "ferry-out", "ferry-sign"].contains(&u.as_str())),
            "{name}: runs as its own user, not root"
        );
        for (key, want) in [
            ("NoNewPrivileges", "yes"),
            ("ProtectSystem", "strict"),
            ("PrivateTmp", "yes"),
        ] {
            assert_eq!(settings(&text, key), [want], "{name}: {key}={want}");
        }
        let nofile = settings(&text, "LimitNOFILE");
        assert!(
            nofile.len() == 1 && nofile[0].parse::<u64>().unwrap() >= 4096,
            "{name}: LimitNOFILE set"
        );
        // Only serve may hold a capability, and only the one to bind port 80.
        let caps = settings(&text, "CapabilityBoundingSet");
        if name == "ferry-in-serve.service" {
            assert_eq!(caps, ["CAP_NET_BIND_SERVICE"]);
        } else {
            assert_eq!(caps, [""], "{name}: no capabilities");
            assert!(settings(&text, "AmbientCapabilities").is_empty());
        }
    }
}

#[test]
fn only_the_sign_unit_can_reach_the_signing_key() {
    let read = |n: &str| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/systemd");
        std::fs::read_to_string(dir.join(n)).unwrap()
    };
    let sign = read("ferry-out-sign.service");
    let args = exec_start(&sign);
    let key = &args[args.iter().position(|a| a == "--key").expect("--key") + 1];
    let key_dir = Path::new(key)
        .parent()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(settings(&sign, "User"), ["ferry-sign"]);
    assert_eq!(
        settings(&sign, "PrivateNetwork"),
        ["yes"],
        "the signer has no network"
    );
    for unit in units() {
        let name = unit.file_name().unwrap().to_string_lossy().into_owned();
        if name == "ferry-out-sign.service" || !name.starts_with("ferry-out") {
            continue;
        }
        let text = std::fs::read_to_string(&unit).unwrap();
        assert_eq!(settings(&text, "User"), ["ferry-out"], "{name}");
        assert!(
            settings(&text, "InaccessiblePaths").contains(&format!("-{key_dir}")),
            "{name}: the key directory {key_dir} is not hidden"
        );
        assert!(!text.contains(key), "{name} names the key");
    }
    let export = exec_start(&read("ferry-out-export.service"));
    assert!(export.iter().any(|a| a == "--unsigned"), "{export:?}");
}

#[test]
fn every_unit_starts_the_binary_with_arguments_it_accepts() {
    for unit in units() {
        let text = std::fs::read_to_string(&unit).unwrap();
        let mut args = exec_start(&text);
        // clap parses everything before `--help`: a renamed flag or
        // subcommand fails here instead of on the site's first start.
        args.push("--help".into());
        let out = Command::new(&args[0]).args(&args[1..]).output().unwrap();
        assert!(
            out.status.success(),
            "{}: `{}` is refused:\n{}",
            unit.display(),
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn units_pass_systemd_analyze_verify() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        skip(
            "units_pass_systemd_analyze_verify",
            "systemd-analyze is not installed (the systemd package has it)",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/systemd");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let mut name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let text = text
            .replace(
                "/usr/local/bin/ferry-in",
                &bin("ferry-in").display().to_string(),
            )
            .replace(
                "/usr/local/bin/ferry-out",
                &bin("ferry-out").display().to_string(),
            );
        // A template is verified as one of its instances.
        if name.ends_with("@.service") {
            name = name.replace("@.service", "@media-stick.service");
        }
        std::fs::write(dir.path().join(&name), text).unwrap();
        names.push(name);
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(names.iter().map(|n| dir.path().join(n)))
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
