//! Real artifacts made by their real tools round-trip bit for bit through
//! analyze → rebuild, with their deflate streams reproduced (not literal).
//! A test whose tool is missing says it was skipped (scripts/test.sh installs them).

mod common;

use std::path::Path;
use std::process::Command;

use common::{assert_reproduced, have, roundtrip, run, text, write};
use ferry_recipe::{expand, Options, StreamKind};

/// A Python with setuptools and wheel (the system one if pyenv's lacks them).
fn python_with_wheel() -> Option<&'static str> {
    ["python3", "/usr/bin/python3"].into_iter().find(|p| {
        Command::new(p)
            .args(["-c", "import setuptools, wheel"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

fn tiny_python_project(dir: &Path) {
    write(
        dir,
        "setup.py",
        b"from setuptools import setup\nsetup(name='ferrytiny', version='1.0', packages=['ferrytiny'])\n",
    );
    write(dir, "ferrytiny/__init__.py", &text(20_000, 1));
    write(dir, "ferrytiny/core.py", &text(60_000, 2));
    write(dir, "ferrytiny/empty.py", b"");
}

#[test]
fn wheel_built_by_pip() {
    let Some(python) = python_with_wheel() else {
        eprintln!("skipped: wheel_built_by_pip: no python3 with setuptools and wheel (apt-get install python3-setuptools python3-wheel)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    tiny_python_project(&src);
    let out = dir.path().join("out");
    run(Command::new(python)
        .args([
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
        ])
        .arg(&out)
        .arg(&src));
    let whl = std::fs::read_dir(&out)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let data = std::fs::read(&whl).unwrap();
    let a = roundtrip("wheel", &data);
    assert_reproduced("wheel", &a, StreamKind::ZipEntry, 3);
}

#[test]
fn jar_like_zip_by_python_zipfile() {
    if !have("python3", "jar_like_zip_by_python_zipfile") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "Main.class", &text(50_000, 3));
    write(dir.path(), "Util.class", &text(9_000, 4));
    let jar = dir.path().join("app.jar");
    let script = r#"
import sys, zipfile
d, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(out, "w") as z:
    z.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\nMain-Class: Main\n" * 20, zipfile.ZIP_DEFLATED)
    z.write(d + "/Main.class", "com/example/Main.class", zipfile.ZIP_DEFLATED, 9)
    z.write(d + "/Util.class", "com/example/Util.class", zipfile.ZIP_DEFLATED, 1)
    z.writestr("stored.txt", "kept as it is\n" * 100, zipfile.ZIP_STORED)
"#;
    run(Command::new("python3")
        .args(["-c", script])
        .arg(dir.path())
        .arg(&jar));
    let data = std::fs::read(&jar).unwrap();
    let a = roundtrip("jar", &data);
    assert_reproduced("jar", &a, StreamKind::ZipEntry, 3);
}

#[test]
fn crate_by_cargo_package() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "Cargo.toml",
        b"[package]\nname = \"ferrytiny\"\nversion = \"0.1.0\"\nedition = \"2021\"\nlicense = \"MIT\"\ndescription = \"tiny\"\n\n[workspace]\n",
    );
    write(dir.path(), "src/lib.rs", b"pub fn f() {}\n");
    write(dir.path(), "data/notes.txt", &text(40_000, 5));
    run(Command::new("cargo")
        .args(["package", "--offline", "--no-verify", "--allow-dirty", "-q"])
        .current_dir(dir.path())
        .env("CARGO_TARGET_DIR", dir.path().join("target")));
    let path = dir.path().join("target/package/ferrytiny-0.1.0.crate");
    let data = std::fs::read(path).unwrap();
    let a = roundtrip("crate", &data);
    assert_reproduced("crate", &a, StreamKind::GzipMember, 1);
}

fn tree(dir: &Path) {
    write(dir, "etc/app.conf", &text(5_000, 6));
    write(dir, "usr/lib/app/main.py", &text(150_000, 7));
    write(dir, "usr/share/doc/app/README", &text(30_000, 8));
}

#[test]
fn layer_by_tar_and_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    tree(&root);
    let tar = run(Command::new("tar")
        .args([
            "--sort=name",
            "--owner=0",
            "--group=0",
            "--mtime=@1700000000",
            "-cf",
            "-",
            "-C",
        ])
        .arg(&root)
        .arg("."));
    let tar_path = dir.path().join("layer.tar");
    std::fs::write(&tar_path, &tar).unwrap();
    let data = run(Command::new("gzip").args(["-6", "-n", "-c"]).arg(&tar_path));
    let a = roundtrip("layer", &data);
    assert_reproduced("layer", &a, StreamKind::GzipMember, 1);
    // The expanded form is the tar itself, framed by the gzip header and trailer.
    assert_eq!(a.expanded.len(), 10 + tar.len() + 8);
    assert!(a.expanded[10..10 + tar.len()] == tar[..]);
}

#[test]
fn multi_member_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let mut data = Vec::new();
    for (i, level) in ["-1", "-6", "-9"].into_iter().enumerate() {
        let p = dir.path().join(format!("part{i}"));
        std::fs::write(&p, text(40_000 + i * 1000, 10 + i as u64)).unwrap();
        data.extend(run(Command::new("gzip").args([level, "-c"]).arg(&p)));
    }
    let a = roundtrip("multi-member gzip", &data);
    assert_reproduced("multi-member gzip", &a, StreamKind::GzipMember, 3);
}

#[test]
fn chart_tgz() {
    let dir = tempfile::tempdir().unwrap();
    let chart = dir.path().join("mychart");
    write(
        &chart,
        "Chart.yaml",
        b"apiVersion: v2\nname: mychart\nversion: 0.1.0\n",
    );
    write(&chart, "values.yaml", &text(4_000, 20));
    write(&chart, "templates/deployment.yaml", &text(12_000, 21));
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let path = if Command::new("helm").arg("version").output().is_ok() {
        run(Command::new("helm")
            .arg("package")
            .arg(&chart)
            .arg("-d")
            .arg(&out));
        out.join("mychart-0.1.0.tgz")
    } else {
        eprintln!("chart_tgz: helm is not installed; the chart is made with tar czf");
        let p = out.join("mychart-0.1.0.tgz");
        run(Command::new("tar")
            .arg("czf")
            .arg(&p)
            .arg("-C")
            .arg(dir.path())
            .arg("mychart"));
        p
    };
    let data = std::fs::read(path).unwrap();
    let a = roundtrip("chart", &data);
    assert_reproduced("chart", &a, StreamKind::GzipMember, 1);
}

/// A binary package tree for dpkg-deb.
fn deb_tree(dir: &Path) {
    write(
        dir,
        "DEBIAN/control",
        b"Package: ferrytiny\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@example.org>\nDescription: tiny\n",
    );
    tree(dir);
}

fn dpkg_deb(compression: &str) -> Option<Vec<u8>> {
    if !have("dpkg-deb", "deb_by_dpkg_deb") {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pkg");
    deb_tree(&root);
    let deb = dir.path().join("p.deb");
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", &format!("-Z{compression}"), "--build"])
        .arg(&root)
        .arg(&deb));
    Some(std::fs::read(deb).unwrap())
}

#[test]
fn deb_by_dpkg_deb_gzip() {
    let Some(data) = dpkg_deb("gzip") else { return };
    let a = roundtrip("deb (gzip)", &data);
    // control.tar.gz and data.tar.gz, found through the ar walk.
    assert_reproduced("deb (gzip)", &a, StreamKind::GzipMember, 2);
    assert!(a.report.streams.iter().all(|s| s.offset >= 8 + 60));
}

#[test]
fn deb_by_dpkg_deb_xz_is_walked() {
    let Some(data) = dpkg_deb("xz") else { return };
    let a = roundtrip("deb (xz)", &data);
    let xz = a
        .report
        .streams
        .iter()
        .filter(|s| s.kind == StreamKind::Xz)
        .count();
    assert!(xz >= 1, "no xz member found: {:?}", a.report.streams);
    // The reference form decodes the xz members whether reproduced or not.
    let reference = expand(&data, &Options::default()).unwrap();
    assert!(reference.len() > data.len());
}

fn rpmbuild(payload: &str) -> Option<Vec<u8>> {
    if !have("rpmbuild", "rpm_by_rpmbuild") {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let data_file = dir.path().join("data.txt");
    std::fs::write(&data_file, text(80_000, 30)).unwrap();
    let spec = dir.path().join("t.spec");
    let s = format!(
        "Name: ferrytiny\nVersion: 1.0\nRelease: 1\nSummary: tiny\nLicense: MIT\nBuildArch: noarch\n%description\ntiny\n%install\nmkdir -p %{{buildroot}}/usr/share/ferrytiny\ncp {} %{{buildroot}}/usr/share/ferrytiny/data\n%files\n/usr/share/ferrytiny/data\n",
        data_file.display()
    );
    std::fs::write(&spec, s).unwrap();
    let mut cmd = Command::new("rpmbuild");
    cmd.arg("-bb")
        .arg("--define")
        .arg(format!("_topdir {}", dir.path().join("top").display()))
        .arg("--define")
        .arg(format!("_rpmdir {}", dir.path().join("rpms").display()))
        .args([
            "--define",
            "_build_id_links none",
            "--define",
            "__os_install_post %{nil}",
        ]);
    if !payload.is_empty() {
        cmd.args(["--define", &format!("_binary_payload {payload}")]);
    }
    run(cmd.arg(&spec));
    Some(std::fs::read(dir.path().join("rpms/noarch/ferrytiny-1.0-1.noarch.rpm")).unwrap())
}

#[test]
fn rpm_by_rpmbuild_gzip_payload() {
    let Some(data) = rpmbuild("w9.gzdio") else {
        return;
    };
    let a = roundtrip("rpm (gzip)", &data);
    assert_reproduced("rpm (gzip)", &a, StreamKind::GzipMember, 1);
    assert!(a.report.streams[0].offset > 96);
}

#[test]
fn rpm_by_rpmbuild_default_payload_is_walked() {
    let Some(data) = rpmbuild("") else { return };
    let a = roundtrip("rpm (default payload)", &data);
    assert_eq!(a.report.streams.len(), 1, "{:?}", a.report.streams);
    assert!(a.report.streams[0].offset > 96);
}

#[test]
fn bare_xz_and_zstd_expand_to_their_content() {
    let dir = tempfile::tempdir().unwrap();
    let plain = text(200_000, 40);
    let p = dir.path().join("f");
    std::fs::write(&p, &plain).unwrap();
    for (tool, kind) in [("xz", StreamKind::Xz), ("zstd", StreamKind::Zstd)] {
        if !have(tool, "bare_xz_and_zstd_expand_to_their_content") {
            continue;
        }
        let data = run(Command::new(tool).args(["-c", "-q"]).arg(&p));
        let a = roundtrip(tool, &data);
        assert_eq!(a.report.streams.len(), 1);
        assert_eq!(a.report.streams[0].kind, kind);
        assert_eq!(a.report.streams[0].compressed_len, data.len() as u64);
        assert_eq!(a.report.streams[0].plain_len, Some(plain.len() as u64));
        assert!(expand(&data, &Options::default()).unwrap() == plain);
    }
}
