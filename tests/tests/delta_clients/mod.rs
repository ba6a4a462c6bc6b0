//! Deltas through compression as clients see them: an upstream update whose
//! new artifact (a gzip image layer, a wheel, an RPM, a Helm chart), made by
//! its real tool, travels as a patch against the release the inside already
//! holds, and the real client (`skopeo`, `pip`, `dnf`, `helm` or `tar`) gets
//! upstream's exact bytes from `ferry-in serve`. Skipped, with a message,
//! when a tool is missing (scripts/test.sh installs them).

mod dnf;
mod helm;
mod oci;
mod pip;

use ferry_e2e::*;
use std::path::Path;
use std::process::Command;

/// Prepends `[export] delta = "high"` to the export config: patches at the
/// high setting, xz streams reproduced.
fn delta_high(env: &Env) {
    let config = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        format!("[export]\ndelta = \"high\"\n\n{config}"),
    )
    .unwrap();
}

/// `tar` of `dir`'s content (sorted, times and owners fixed) piped through
/// `gzip -n`: a `.tar.gz` as image builders and `helm package` lay them out.
fn tar_gz(dir: &Path, prefix: Option<&str>) -> Vec<u8> {
    let mut tar = Command::new("tar");
    tar.args(["--sort=name", "--mtime=@0", "--owner=0", "--group=0"])
        .args(["--numeric-owner", "-cf", "-", "-C"]);
    match prefix {
        Some(p) => tar.arg(dir.parent().unwrap()).arg(p),
        None => tar.arg(dir).arg("."),
    };
    let tarball = sh(&mut tar);
    let mut gz = Command::new("gzip")
        .args(["-n", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = gz.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        stdin.write_all(&tarball).unwrap();
    });
    let out = gz.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "gzip failed");
    out.stdout
}

/// Copies real text files (the Python standard library's `json`, `email`,
/// `http` and `logging` packages) under `dest`: content that a release
/// changes a little.
fn real_files(dest: &Path) {
    stdlib_packages(dest, &["json", "email", "http", "logging"]);
}

/// Copies the modules of the Python standard library's packages `pkgs`
/// under `dest/<pkg>/`.
fn stdlib_packages(dest: &Path, pkgs: &[&str]) {
    let stdlib = sh(Command::new("python3").args([
        "-c",
        "import os, json; print(os.path.dirname(os.path.dirname(json.__file__)))",
    ]));
    let stdlib = Path::new(String::from_utf8(stdlib).unwrap().trim()).to_path_buf();
    for pkg in pkgs {
        let from = stdlib.join(pkg);
        for e in std::fs::read_dir(&from).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".py") {
                std::fs::create_dir_all(dest.join(pkg)).unwrap();
                std::fs::copy(e.path(), dest.join(pkg).join(&name)).unwrap();
            }
        }
    }
}

/// Appends a line to `file` (a release that changes one file a little).
fn touch_up(file: &Path, line: &str) {
    let mut text = std::fs::read_to_string(file).unwrap();
    text.push_str(line);
    text.push('\n');
    std::fs::write(file, text).unwrap();
}

/// The export's line on patches (`patched N changed objects …`), or "".
fn patched_line(run: &Run) -> String {
    line_with(run, "patched ")
}

/// The export's line on the compressed streams its analyses found
/// (`streams in N objects analysed: …`), or "".
fn streams_line(run: &Run) -> String {
    line_with(run, " analysed: ")
}

fn line_with(run: &Run, what: &str) -> String {
    run.all()
        .lines()
        .find(|l| l.contains(what))
        .unwrap_or("")
        .to_string()
}
