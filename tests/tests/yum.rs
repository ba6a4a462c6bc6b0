//! yum/dnf repositories end to end with real components: packages built with
//! `rpmbuild`, a repository made with `createrepo_c` and served by a plain
//! HTTP server as the upstream, `ferry-out` exporting from it, `ferry-in`
//! importing and serving it, and `dnf download` fetching from `ferry-in
//! serve`. Packages (`rpmsign`) and metadata are signed with throwaway `gpg`
//! keys; dnf checks them with `gpgcheck=1`, `repo_gpgcheck=1`. Skipped, with a
//! message, when a tool is missing (scripts/test.sh installs them).

use ferry_e2e::*;
use std::path::{Path, PathBuf};
use std::process::Command;

pub(crate) const TOOLS: &[&str] = &["rpmbuild", "createrepo_c", "dnf", "gpg", "python3"];

/// Builds a noarch package into `repo/Packages/` and returns its path.
/// `payload` random bytes go to `/usr/share/<name>/data`; `bin` adds
/// `/usr/bin/<name>` (a file another package may require).
#[allow(clippy::too_many_arguments)]
pub(crate) fn rpm(
    work: &Path,
    repo: &Path,
    name: &str,
    version: &str,
    requires: &[&str],
    provides: &[&str],
    bin: bool,
    payload: usize,
) -> PathBuf {
    let spec = work.join(format!("{name}-{version}.spec"));
    let data = work.join(format!("{name}-{version}.data"));
    std::fs::write(
        &data,
        random_bytes(payload, name.len() as u64 * 1000 + version.len() as u64),
    )
    .unwrap();
    let mut s = format!(
        "Name: {name}\nVersion: {version}\nRelease: 1\nSummary: test package {name}\nLicense: MIT\nBuildArch: noarch\n"
    );
    for r in requires {
        s += &format!("Requires: {r}\n");
    }
    for p in provides {
        s += &format!("Provides: {p}\n");
    }
    s += &format!(
        "%description\ntest\n%install\nmkdir -p %{{buildroot}}/usr/share/{name} %{{buildroot}}/usr/bin\ncp {} %{{buildroot}}/usr/share/{name}/data\n",
        data.display()
    );
    if bin {
        s += &format!("echo '#!/bin/sh' > %{{buildroot}}/usr/bin/{name}\n");
    }
    s += &format!("%files\n/usr/share/{name}/data\n");
    if bin {
        s += &format!("/usr/bin/{name}\n");
    }
    std::fs::write(&spec, s).unwrap();
    rpmbuild(work, &repo.join("Packages"), &spec, "w1.gzdio");
    repo.join(format!("Packages/noarch/{name}-{version}-1.noarch.rpm"))
}

pub(crate) fn createrepo(repo: &Path) {
    let out = Command::new("createrepo_c")
        .args(["--update", "--quiet"])
        .arg(repo)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "createrepo_c: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The first repository: `app` requires `libfoo` by name, `virt-web` (a
/// virtual Provides of `webimpl`) and `/usr/bin/toolx` (a file of `toolx`);
/// `unrelated` is required by nothing.
pub(crate) fn first_repo(work: &Path, repo: &Path) {
    rpm(
        work,
        repo,
        "app",
        "1.0",
        &["libfoo", "virt-web", "/usr/bin/toolx"],
        &[],
        false,
        300_000,
    );
    rpm(work, repo, "libfoo", "1.0", &[], &[], false, 50_000);
    rpm(
        work,
        repo,
        "webimpl",
        "1.0",
        &[],
        &["virt-web"],
        false,
        1000,
    );
    rpm(work, repo, "toolx", "1.0", &[], &[], true, 1000);
    rpm(work, repo, "unrelated", "1.0", &[], &[], false, 1000);
    createrepo(repo);
}

pub(crate) fn setup(name: &str) -> Option<(Env, PathBuf, PathBuf)> {
    if !have_tools(name, TOOLS) {
        return None;
    }
    let env = Env::new();
    let work = env.root().join("work");
    let repo = env.root().join("upstream-repo");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(repo.join("Packages")).unwrap();
    Some((env, work, repo))
}

pub(crate) fn config(env: &Env, url: &str, extra: &str) {
    std::fs::write(
        &env.config,
        format!("[[source]]\nname = \"el\"\ntype = \"yum\"\nbaseurl = \"{url}/\"\n{extra}"),
    )
    .unwrap();
}

fn inside(env: &Env, path: &str) -> PathBuf {
    env.served_in("el", path)
}

fn media_is_empty(env: &Env, media: &str) {
    let m = env.root().join(media);
    let bundles: Vec<_> = std::fs::read_dir(&m)
        .map(|r| r.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(bundles.is_empty(), "nothing may reach media: {bundles:?}");
}

/// Closure selection, dnf against ferry-in serve, then an upstream update
/// (new versions, a removed version, a pinned package upstream dropped): the
/// delta carries only the new files, removed versions disappear inside, the
/// pin stays, and dnf resolves against the new metadata. Packages and
/// metadata are signed by the vendor and checked by dnf and rpm.
#[test]
fn closure_update_pin_and_dnf() {
    let Some((env, work, repo)) = setup("closure_update_pin_and_dnf") else {
        return;
    };
    if !have_tools("closure_update_pin_and_dnf", &["rpmsign"]) {
        return;
    }
    let (home, fpr, _) = gpg_key(env.root(), "vendor");
    let key = env.root().join("vendor.asc");
    std::fs::write(&key, gpg(&home, &["--armor", "--export", &fpr])).unwrap();
    first_repo(&work, &repo);
    sign_repo(&repo, &home, &fpr);
    let up = http_upstream(&repo);
    config(
        &env,
        &up.url,
        &format!(
            "packages = [\"app\"]\npin = [\"toolx-1.0-1.noarch\"]\nkeyring = \"{}\"\n",
            key.display()
        ),
    );
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();

    for p in ["app-1.0", "libfoo-1.0", "webimpl-1.0", "toolx-1.0"] {
        assert!(
            inside(&env, &format!("Packages/noarch/{p}-1.noarch.rpm")).is_file(),
            "{p} is in the closure of app"
        );
    }
    assert!(
        !inside(&env, "Packages/noarch/unrelated-1.0-1.noarch.rpm").exists(),
        "unrelated is not required by app"
    );
    // Metadata is byte-exact.
    assert_eq!(
        std::fs::read(inside(&env, "repodata/repomd.xml")).unwrap(),
        std::fs::read(repo.join("repodata/repomd.xml")).unwrap()
    );
    {
        let server = env.serve();
        let (_, got) = dnf_download_signed(&env, &server.addr, &["app"], "1", &key);
        assert_eq!(
            got,
            [
                "app-1.0-1.noarch.rpm",
                "libfoo-1.0-1.noarch.rpm",
                "toolx-1.0-1.noarch.rpm",
                "webimpl-1.0-1.noarch.rpm"
            ]
        );
        let a = env.root().join("dnf-1/dl/app-1.0-1.noarch.rpm");
        assert_eq!(
            std::fs::read(a).unwrap(),
            std::fs::read(repo.join("Packages/noarch/app-1.0-1.noarch.rpm")).unwrap()
        );
    }

    // Upstream update: libfoo 2.0 replaces 1.0, toolx 1.1 replaces the pinned 1.0.
    let before: std::collections::BTreeSet<String> = walk(&repo);
    std::fs::remove_file(repo.join("Packages/noarch/libfoo-1.0-1.noarch.rpm")).unwrap();
    std::fs::remove_file(repo.join("Packages/noarch/toolx-1.0-1.noarch.rpm")).unwrap();
    rpm(&work, &repo, "libfoo", "2.0", &[], &[], false, 60_000);
    rpm(&work, &repo, "toolx", "1.1", &[], &[], true, 1000);
    sign_repo(&repo, &home, &fpr);
    // An unchanged package that ferry-out fetched again would now fail its
    // checksum: this proves it is not downloaded a second time.
    let app = repo.join("Packages/noarch/app-1.0-1.noarch.rpm");
    let len = std::fs::metadata(&app).unwrap().len() as usize;
    std::fs::write(&app, vec![0u8; len]).unwrap();
    let new_files: u64 = walk(&repo)
        .difference(&before)
        .map(|p| std::fs::metadata(repo.join(p)).unwrap().len())
        .sum();

    env.export("m2").expect_ok();
    let bundle = dir_bytes(&env.only_bundle("m2"));
    assert!(
        bundle < new_files + 16 * 1024,
        "the delta ({bundle} bytes) carries only the new files ({new_files} bytes)"
    );
    env.import("m2").expect_ok();
    assert!(inside(&env, "Packages/noarch/libfoo-2.0-1.noarch.rpm").is_file());
    assert!(inside(&env, "Packages/noarch/toolx-1.1-1.noarch.rpm").is_file());
    assert!(
        !inside(&env, "Packages/noarch/libfoo-1.0-1.noarch.rpm").exists(),
        "a version upstream removed is removed inside"
    );
    assert!(
        inside(&env, "Packages/noarch/toolx-1.0-1.noarch.rpm").is_file(),
        "a pinned package stays"
    );
    let old_primary: Vec<String> = dir_names(&env.export_tree().join("yum/el/repodata"));
    assert!(
        old_primary
            .iter()
            .all(|n| repo.join("repodata").join(n).exists()),
        "only the new metadata is served: {old_primary:?}"
    );
    let server = env.serve();
    let (_, got) = dnf_download_signed(&env, &server.addr, &["app"], "2", &key);
    assert!(
        got.contains(&"libfoo-2.0-1.noarch.rpm".to_string()),
        "{got:?}"
    );
    assert!(
        got.contains(&"toolx-1.1-1.noarch.rpm".to_string()),
        "{got:?}"
    );
}

/// Signs every package of `repo` with the vendor's key (`home`, `fpr`),
/// runs createrepo_c afresh (`--update` would keep the checksums of the
/// unsigned files) and signs `repomd.xml`.
pub(crate) fn sign_repo(repo: &Path, home: &Path, fpr: &str) {
    let dir = repo.join("Packages/noarch");
    let rpms: Vec<PathBuf> = dir_names(&dir).iter().map(|n| dir.join(n)).collect();
    rpmsign(home, fpr, &rpms);
    std::fs::remove_dir_all(repo.join("repodata")).unwrap();
    createrepo(repo);
    sign_repomd(home, repo);
}

/// Every file under `dir`, relative.
fn walk(dir: &Path) -> std::collections::BTreeSet<String> {
    tree_digest(dir).into_keys().collect()
}

/// An export of `packages = []` mirrors everything; a second export with no
/// upstream change writes no bundle.
#[test]
fn everything_and_no_change() {
    let Some((env, work, repo)) = setup("everything_and_no_change") else {
        return;
    };
    first_repo(&work, &repo);
    let up = http_upstream(&repo);
    config(&env, &up.url, "");
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();
    assert!(inside(&env, "Packages/noarch/unrelated-1.0-1.noarch.rpm").is_file());
    let r = env.export("m2").expect_ok();
    assert!(r.stdout.contains("no changes"), "{}", r.stdout);
}

/// A package whose bytes do not match primary's checksum fails the export,
/// naming source, file, expected and actual; nothing reaches media.
#[test]
fn package_checksum_mismatch_fails_export() {
    let Some((env, work, repo)) = setup("package_checksum_mismatch_fails_export") else {
        return;
    };
    first_repo(&work, &repo);
    let lib = repo.join("Packages/noarch/libfoo-1.0-1.noarch.rpm");
    let mut bytes = std::fs::read(&lib).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 0xff;
    std::fs::write(&lib, bytes).unwrap();
    let up = http_upstream(&repo);
    config(&env, &up.url, "packages = [\"app\"]\n");
    env.export("m").expect_fail(&[
        "source \"el\"",
        "Packages/noarch/libfoo-1.0-1.noarch.rpm",
        "checksum mismatch: expected sha256:",
        "got sha256:",
    ]);
    media_is_empty(&env, "m");
    // A metadata file that does not match repomd.xml fails the same way.
    let filelists = dir_names(&repo.join("repodata"))
        .into_iter()
        .find(|n| n.ends_with("filelists.xml.gz"))
        .unwrap();
    std::fs::write(repo.join("repodata").join(&filelists), b"not gzip").unwrap();
    config(&env, &up.url, "packages = [\"webimpl\"]\n");
    env.export("m").expect_fail(&[&filelists, "expected"]);
    media_is_empty(&env, "m");
}

/// With `keyring`, repomd.xml.asc must exist and verify: a good signature
/// exports (and the signature is served inside), a missing one or one by
/// another key fails with a clear error and writes nothing.
#[test]
fn signed_repomd() {
    let Some((env, work, repo)) = setup("signed_repomd") else {
        return;
    };
    first_repo(&work, &repo);
    let good = gpg_key(env.root(), "good").0;
    let evil = gpg_key(env.root(), "evil").0;
    let key = env.root().join("repo-key.asc");
    std::fs::write(&key, gpg(&good, &["--armor", "--export"])).unwrap();
    let up = http_upstream(&repo);
    let extra = format!("packages = [\"libfoo\"]\nkeyring = \"{}\"\n", key.display());
    config(&env, &up.url, &extra);
    let repomd = repo.join("repodata/repomd.xml");
    let asc = repo.join("repodata/repomd.xml.asc");

    // No signature upstream.
    env.export("m").expect_fail(&["keyring", "repomd.xml.asc"]);
    media_is_empty(&env, "m");

    // Signed by another key.
    let sign = |home: &Path| sign_repomd(home, &repo);
    sign(&evil);
    env.export("m").expect_fail(&[
        "source \"el\"",
        "repomd.xml.asc does not verify",
        "repo-key.asc",
    ]);
    media_is_empty(&env, "m");

    // Good signature, but repomd.xml changed after signing.
    sign(&good);
    let original = std::fs::read(&repomd).unwrap();
    std::fs::write(&repomd, [original.as_slice(), b"\n"].concat()).unwrap();
    env.export("m").expect_fail(&["does not verify"]);
    media_is_empty(&env, "m");

    std::fs::write(&repomd, &original).unwrap();
    env.export("m").expect_ok();
    env.import("m").expect_ok();
    assert_eq!(
        std::fs::read(inside(&env, "repodata/repomd.xml.asc")).unwrap(),
        std::fs::read(&asc).unwrap()
    );
    // The provenance names the certificate that signed repomd.xml (cosign helper).
    let colons = String::from_utf8(gpg(&good, &["--with-colons", "--fingerprint"])).unwrap();
    let fpr = colons
        .lines()
        .find_map(|l| l.strip_prefix("fpr:"))
        .map(|l| l.trim_matches(':').to_string())
        .unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&env.inn(&["status", "--json"]).expect_ok().stdout).unwrap();
    let e = &v["provenance"]["vouches"][0];
    assert_eq!(
        (e["source"].as_str(), e["method"].as_str()),
        (Some("el"), Some("openpgp"))
    );
    assert_eq!(e["key"].as_str(), Some(fpr.as_str()), "{v:#}");
    let server = env.serve();
    let (_, got) = dnf_download(&env, &server.addr, &["libfoo"], "s");
    assert_eq!(got, ["libfoo-1.0-1.noarch.rpm"]);
}

fn sha256_hex(data: &[u8]) -> String {
    ferry_protocol::id::Sha256::of(data).to_hex()
}

/// ferry-in refuses a yum source whose metadata does not match its
/// repomd.xml (crafted bundles: the outside never writes one), applies
/// nothing and keeps no generation.
#[test]
fn inside_refuses_metadata_not_matching_repomd() {
    use ferry_protocol::catalog::SourceKind::Yum;
    let repomd = |sum: &str, size: usize| {
        format!(
            "<?xml version=\"1.0\"?>\n<repomd xmlns=\"http://linux.duke.edu/metadata/repo\">\
             <data type=\"primary\"><checksum type=\"sha256\">{sum}</checksum>\
             <location href=\"repodata/p-primary.xml.gz\"/><size>{size}</size></data></repomd>\n"
        )
    };
    let good = repomd(&sha256_hex(b"primary"), 7);
    for (objects, needle) in [
        (
            vec![
                ("el", Yum, "repodata/repomd.xml", good.as_bytes()),
                (
                    "el",
                    Yum,
                    "repodata/p-primary.xml.gz",
                    b"PRIMARY".as_slice(),
                ),
            ],
            "el\": repodata/p-primary.xml.gz has sha256:",
        ),
        (
            vec![
                ("el", Yum, "repodata/repomd.xml", good.as_bytes()),
                (
                    "el",
                    Yum,
                    "repodata/p-primary.xml.gz",
                    b"primary".as_slice(),
                ),
                ("el", Yum, "repodata/stale-other.xml.gz", b"x".as_slice()),
            ],
            "repodata/stale-other.xml.gz is not listed in repodata/repomd.xml",
        ),
        (
            vec![("el", Yum, "repodata/repomd.xml", good.as_bytes())],
            "lists repodata/p-primary.xml.gz, which the bundle does not hold",
        ),
        (
            vec![("el", Yum, "Packages/a.rpm", b"rpm".as_slice())],
            "yum source \"el\" has no repodata/repomd.xml",
        ),
    ] {
        let env = Env::new();
        craft_bundle(&env, "bad", &objects);
        let r = env.import("bad");
        assert!(!r.ok, "should have been refused:\n{}", r.all());
        assert!(
            r.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}",
            r.stderr
        );
        assert_eq!(env.applied_sequence(), 0);
        assert!(!env.in_state.join("store/current").exists());
    }
    // The same objects, consistent, are accepted.
    let env = Env::new();
    craft_bundle(
        &env,
        "ok",
        &[
            ("el", Yum, "repodata/repomd.xml", good.as_bytes()),
            ("el", Yum, "repodata/p-primary.xml.gz", b"primary"),
        ],
    );
    env.import("ok").expect_ok();
}
