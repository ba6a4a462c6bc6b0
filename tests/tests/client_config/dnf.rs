//! dnf with the `.repo` file `client-config` writes and nothing else, as a
//! site runs it: packages signed by the vendor (`rpmsign`), `repomd.xml`
//! signed beside them (`repomd.xml.asc`), `gpgcheck=1` and
//! `repo_gpgcheck=1` with the vendor's key, an install into a root of its own.

use crate::yum::{config, first_repo, setup, sign_repo};
use ferry_e2e::*;
use std::path::Path;
use std::process::Command;

/// `dnf install PKGS` into `root` with `repos` as the only repository
/// directory (and no plugin: the host's `local` plugin would add a
/// repository of its own).
fn dnf_install(root: &Path, repos: &Path, pkgs: &[&str]) -> Run {
    let o = Command::new("dnf")
        .args(["-y", "--releasever=1", "--noplugins"])
        .arg(format!("--installroot={}", root.join("root").display()))
        .arg(format!("--setopt=reposdir={}", repos.display()))
        .arg(format!(
            "--setopt=cachedir={}",
            root.join("cache").display()
        ))
        .arg("install")
        .args(pkgs)
        .output()
        .expect("run dnf");
    Run::from(o)
}

#[test]
fn dnf_with_only_the_written_repo_checks_vendor_signatures() {
    let test = "dnf_with_only_the_written_repo_checks_vendor_signatures";
    let Some((env, work, repo)) = setup(test) else {
        return;
    };
    if !have_tools(test, &["rpmsign"]) {
        return;
    }
    first_repo(&work, &repo);
    let (home, fpr, _) = gpg_key(env.root(), "vendor");
    sign_repo(&repo, &home, &fpr);
    let key = env.root().join("vendor.asc");
    std::fs::write(&key, gpg(&home, &["--armor", "--export", &fpr])).unwrap();
    let up = http_upstream(&repo);
    config(
        &env,
        &up.url,
        &format!("packages = [\"app\"]\nkeyring = \"{}\"\n", key.display()),
    );
    env.export("m").expect_ok();
    env.import("m").expect_ok();
    let server = env.serve();
    let url = format!("http://{}", server.addr);

    let gpgkey = format!("el=file://{}", key.display());
    let out = client_config(&env, &url, "dnf", &["--gpgkey", &gpgkey]);
    let repo_file = std::fs::read_to_string(out.join("yum/ferry.repo")).unwrap();
    for line in [
        "gpgcheck=1",
        "repo_gpgcheck=1",
        &format!("baseurl={url}/yum/el/"),
    ] {
        assert!(
            repo_file.lines().any(|l| l == line),
            "no {line}:\n{repo_file}"
        );
    }
    let client = env.root().join("dnf-vendor");
    let r = dnf_install(&client, &out.join("yum"), &["app"]);
    assert!(r.ok, "dnf install with the vendor's key:\n{}", r.all());
    for (pkg, file) in [("app", "data"), ("libfoo", "data"), ("toolx", "data")] {
        let got = client.join("root/usr/share").join(pkg).join(file);
        assert!(got.is_file(), "{pkg} not installed:\n{}", r.all());
    }

    // The same file naming another key: dnf refuses the repository.
    let (evil_home, evil_fpr, _) = gpg_key(env.root(), "evil");
    let evil = env.root().join("evil.asc");
    std::fs::write(&evil, gpg(&evil_home, &["--armor", "--export", &evil_fpr])).unwrap();
    let gpgkey = format!("el=file://{}", evil.display());
    let out = client_config(&env, &url, "dnf-evil", &["--gpgkey", &gpgkey]);
    let r = dnf_install(&env.root().join("dnf-evil"), &out.join("yum"), &["app"]);
    assert!(
        !r.ok && r.all().contains("repomd.xml GPG signature"),
        "dnf read metadata signed by another key:\n{}",
        r.all()
    );
    // And with the metadata unchecked, the packages' own signatures.
    let file = std::fs::read_to_string(out.join("yum/ferry.repo")).unwrap();
    let unchecked = env.root().join("repos-unchecked");
    std::fs::create_dir_all(&unchecked).unwrap();
    std::fs::write(
        unchecked.join("ferry.repo"),
        file.replace("repo_gpgcheck=1", "repo_gpgcheck=0"),
    )
    .unwrap();
    let r = dnf_install(&env.root().join("dnf-unchecked"), &unchecked, &["app"]);
    assert!(
        !r.ok && r.all().contains("GPG") && !r.all().contains("repomd.xml GPG"),
        "dnf installed packages signed by another key:\n{}",
        r.all()
    );
}
