//! An RPM update, both releases built by `rpmbuild` from real files, one
//! file changed: with an xz payload (`w2.xzdio`, as RHEL builds them) it
//! ships as a patch of the decompressed payload; with a zstd payload
//! (`w19.zstdio`, as Fedora builds them) the recompression is not modelled
//! (ferry-recipe reports `Zstd NotModelled` for rpm's zstd stream), so it
//! ships without a patch through compression, and still round-trips. Either
//! way `dnf download` gets upstream's exact bytes from `ferry-in serve`,
//! packages signed by the vendor (`rpmsign`) and `repomd.xml` too, checked
//! with `gpgcheck=1`, `repo_gpgcheck=1` and the vendor's key.

use super::{delta_high, patched_line, real_files, streams_line, touch_up};
use ferry_e2e::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const TOOLS: &[&str] = &[
    "rpmbuild",
    "rpmsign",
    "createrepo_c",
    "dnf",
    "gpg",
    "python3",
];

/// Builds `tool-<version>-1.noarch.rpm` of the files under `src` into
/// `repo/Packages/` with payload compressor `payload`; returns its path.
fn rpm(work: &Path, repo: &Path, src: &Path, version: &str, payload: &str) -> PathBuf {
    let spec = work.join("tool.spec");
    std::fs::write(
        &spec,
        format!(
            "Name: tool\nVersion: {version}\nRelease: 1\nSummary: test\nLicense: MIT\nBuildArch: noarch\n\
             %description\ntest\n%install\nmkdir -p %{{buildroot}}/usr/lib/tool\n\
             cp -r {}/. %{{buildroot}}/usr/lib/tool/\n%files\n/usr/lib/tool\n",
            src.display()
        ),
    )
    .unwrap();
    rpmbuild(work, &repo.join("Packages"), &spec, payload);
    repo.join(format!("Packages/noarch/tool-{version}-1.noarch.rpm"))
}

/// Signs `rpm` with the vendor's key (`home`, `fpr`), runs createrepo_c
/// (`--update` after the first) and signs `repomd.xml`.
fn publish(repo: &Path, rpm: &Path, (home, fpr): (&Path, &str), update: bool) {
    rpmsign(home, fpr, &[rpm.to_path_buf()]);
    let mut c = Command::new("createrepo_c");
    if update {
        c.arg("--update");
    }
    sh(c.arg("--quiet").arg(repo));
    sign_repomd(home, repo);
}

/// Mirrors tool 1.0, then 1.1 at delta = high; returns the update bundle's
/// size, the new RPM's size and the export's patch line, after checking
/// that dnf downloads the new RPM's exact bytes.
fn update(payload: &str) -> Option<(u64, u64, String, String)> {
    if !have_tools(&current_test(), TOOLS) {
        return None;
    }
    let env = Env::new();
    let work = env.root().join("work");
    let repo = env.root().join("upstream-repo");
    let src = work.join("src");
    real_files(&src);
    let (home, fpr, _) = gpg_key(env.root(), "vendor");
    let key = env.root().join("vendor.asc");
    std::fs::write(&key, gpg(&home, &["--armor", "--export", &fpr])).unwrap();
    let v1 = rpm(&work, &repo, &src, "1.0", payload);
    publish(&repo, &v1, (&home, &fpr), false);
    let up = http_upstream(&repo);
    std::fs::write(
        &env.config,
        format!(
            "[[source]]\nname = \"el\"\ntype = \"yum\"\nbaseurl = \"{}/\"\npackages = [\"tool\"]\nkeyring = \"{}\"\n",
            up.url,
            key.display()
        ),
    )
    .unwrap();
    delta_high(&env);
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();

    touch_up(&src.join("json/decoder.py"), "# changed in 1.1");
    let v2 = rpm(&work, &repo, &src, "1.1", payload);
    publish(&repo, &v2, (&home, &fpr), true);
    let r = env.export("m2").expect_ok();
    let bundle = dir_bytes(&env.only_bundle("m2"));
    let size = std::fs::metadata(&v2).unwrap().len();
    let line = patched_line(&r);
    let streams = streams_line(&r);
    eprintln!("{payload}: update bundle {bundle} bytes for a {size}-byte RPM; {line}\n{streams}");
    env.import("m2").expect_ok();
    let srv = env.serve();
    let (dir, _) = dnf_download_signed(&env, &srv.addr, &["tool"], "delta", &key);
    assert_eq!(
        std::fs::read(dir.join("tool-1.1-1.noarch.rpm")).expect("dnf downloaded the new package"),
        std::fs::read(&v2).unwrap(),
        "dnf got other bytes than upstream's RPM"
    );
    Some((bundle, size, line, streams))
}

#[test]
fn an_rpm_with_an_xz_payload_ships_as_a_patch_and_dnf_downloads_its_bytes() {
    let Some((bundle, rpm, line, streams)) = update("w2.xzdio") else {
        return;
    };
    assert!(!line.is_empty(), "nothing was patched");
    // The report counts the payload's xz stream among those rebuilt, and
    // no xz or zstd stream left compressed.
    assert!(
        streams.contains("rebuilt from their content")
            && !streams.contains(" xz not tried")
            && !streams.contains("xz or zstd that"),
        "the export's report on streams: {streams:?}"
    );
    assert!(
        bundle * 10 < rpm,
        "update bundle {bundle} bytes for a {rpm}-byte RPM: not a patch of its payload"
    );
}

#[test]
fn an_rpm_with_a_zstd_payload_ships_without_reproduction_and_dnf_downloads_its_bytes() {
    let Some((bundle, rpm, _, streams)) = update("w19.zstdio") else {
        return;
    };
    // The report names the zstd payload left compressed, and why.
    assert!(
        streams.contains("left compressed")
            && streams.contains("xz or zstd that no known encoder settings reproduce"),
        "the export's report on streams: {streams:?}"
    );
    // rpm's zstd stream is not reproduced: what ships is of the order of
    // the compressed bytes after the change, not a patch of the payload.
    assert!(
        bundle * 4 > rpm,
        "update bundle {bundle} bytes for a {rpm}-byte zstd RPM: the payload was reproduced \
         after all; make this test assert the patch"
    );
}
