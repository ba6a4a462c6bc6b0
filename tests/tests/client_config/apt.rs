//! apt-get with the `.sources` file `client-config` writes and nothing else
//! (no `Acquire::Languages`, no DEP-11 switch: only the options a private
//! root needs), against an upstream whose Release lists translations as
//! Debian's and Ubuntu's do.

use crate::apt::{fixture, Apt, TOOLS};
use ferry_e2e::*;
use ferry_protocol::id::Sha256;
use std::path::Path;
use std::process::Command;

/// Adds `main/i18n/Translation-en` and `Translation-en.gz` to the suite's
/// Release (its SHA256 list), as Debian and Ubuntu list them, and signs it
/// again with the key in `home` (InRelease and Release.gpg).
fn add_translations(repo: &Path, home: &Path) {
    let dists = repo.join("dists/stable");
    let i18n = dists.join("main/i18n");
    std::fs::create_dir_all(&i18n).unwrap();
    let text = "Package: app\nDescription-md5: 0123456789abcdef0123456789abcdef\nDescription-en: ferry test package app\n\n";
    std::fs::write(i18n.join("Translation-en"), text).unwrap();
    sh(Command::new("gzip")
        .args(["-n", "-k", "-f"])
        .arg(i18n.join("Translation-en")));
    let release = std::fs::read_to_string(dists.join("Release")).unwrap();
    let mut lines = String::new();
    for name in ["Translation-en", "Translation-en.gz"] {
        let bytes = std::fs::read(i18n.join(name)).unwrap();
        lines += &format!(
            " {} {:>16} main/i18n/{name}\n",
            Sha256::of(&bytes).to_hex(),
            bytes.len()
        );
    }
    assert!(release.contains("\nSHA256:\n"), "{release}");
    let release = release.replacen("\nSHA256:\n", &format!("\nSHA256:\n{lines}"), 1);
    std::fs::write(dists.join("Release"), release).unwrap();
    for f in ["InRelease", "Release.gpg"] {
        let _ = std::fs::remove_file(dists.join(f));
    }
    let rel = dists.join("Release");
    let rel = rel.to_str().unwrap();
    let inrelease = dists.join("InRelease");
    gpg(
        home,
        &["--clearsign", "--output", inrelease.to_str().unwrap(), rel],
    );
    let detached = dists.join("Release.gpg");
    gpg(
        home,
        &[
            "--armor",
            "--detach-sign",
            "--output",
            detached.to_str().unwrap(),
            rel,
        ],
    );
}

/// Whether apt-get's output has a warning or an error line.
fn complains(r: &Run) -> bool {
    let all = r.all();
    all.starts_with("W:") || all.starts_with("E:") || all.contains("\nW:") || all.contains("\nE:")
}

#[test]
fn apt_get_with_only_the_written_sources_and_default_settings() {
    let test = "apt_get_with_only_the_written_sources_and_default_settings";
    if !have_tools(test, &TOOLS) || !have_tools(test, &["gzip"]) {
        return;
    }
    let fx = fixture("[\"app\"]", "[]");
    let env = &fx.env;
    add_translations(&fx.repo.dir, &fx.work.join("gnupg-upstream"));
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();
    assert!(env
        .served_in("deb", "dists/stable/main/i18n/Translation-en.gz")
        .is_file());
    let server = env.serve();
    let url = format!("http://{}", server.addr);

    // The site view: the site key where the file says clients keep it.
    let keyring = fx.work.join("keyrings/ferry-site.asc");
    let out = client_config(
        env,
        &url,
        "site",
        &["--apt-keyring", keyring.to_str().unwrap()],
    );
    std::fs::create_dir_all(keyring.parent().unwrap()).unwrap();
    std::fs::copy(out.join("apt/ferry-site.asc"), &keyring).unwrap();
    let sources = std::fs::read_to_string(out.join("apt/ferry.sources")).unwrap();
    assert!(
        sources.contains(&format!("URIs: {url}/apt-site/deb/\n")),
        "{sources}"
    );
    let apt = Apt::with_sources(&fx.work.join("apt-site"), &sources);
    apt.update();
    let r = apt.run(&["install", "-y", "--download-only", "app"]);
    assert!(r.ok && !complains(&r), "apt-get install:\n{}", r.all());
    for (name, file) in [
        ("app", "app_1.0_amd64.deb"),
        ("libpre", "libpre_1.0_amd64.deb"),
        ("libbase", "libbase_1.0_all.deb"),
        ("provider", "provider_1.0_all.deb"),
    ] {
        let got = std::fs::read(fx.work.join("apt-site/var/cache/apt/archives").join(file))
            .unwrap_or_else(|e| panic!("apt-get did not fetch {file}: {e}"));
        assert_eq!(got, std::fs::read(&fx.debs[name]).unwrap(), "{file}");
    }

    // The byte-exact view, upstream's key: apt asks for the translations
    // the Release lists, and gets them.
    let signed_by = format!("deb={}", fx.upstream_key.display());
    let out = client_config(
        env,
        &url,
        "exact",
        &["--apt-view", "upstream", "--apt-signed-by", &signed_by],
    );
    let sources = std::fs::read_to_string(out.join("apt/ferry.sources")).unwrap();
    let exact = Apt::with_sources(&fx.work.join("apt-exact"), &sources);
    exact.update();
    let lists = dir_names(&fx.work.join("apt-exact/var/lib/apt/lists"));
    assert!(
        lists
            .iter()
            .any(|n| n.ends_with("_main_i18n_Translation-en")),
        "no translation fetched: {lists:?}"
    );

    // Without the translations carried, the same client fails as it did
    // before ferry carried them.
    let config = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(&env.config, format!("{config}languages = []\n")).unwrap();
    env.export("m2").expect_ok();
    env.import("m2").expect_ok();
    let bare = Apt::with_sources(&fx.work.join("apt-bare"), &sources);
    let r = bare.run(&["update"]);
    assert!(
        complains(&r) && r.all().contains("Translation-en"),
        "apt-get update without translations:\n{}",
        r.all()
    );
}
