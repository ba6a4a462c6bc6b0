//! Helpers shared by the xz and zstd tests: real tools, skips, sample data.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// Whether `tool` runs here.
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Says loudly that a test did not run.
pub fn skip(reason: &str) {
    println!("skipped: {reason}");
    eprintln!("skipped: {reason}");
}

/// Runs `tool args`, feeding `stdin`, and returns its stdout; panics on failure.
pub fn run(tool: &str, args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
    run_in(tool, args, stdin, None)
}

/// [`run`] in directory `dir`.
pub fn run_in(tool: &str, args: &[&str], stdin: Option<&[u8]>, dir: Option<&Path>) -> Vec<u8> {
    let mut cmd = Command::new(tool);
    cmd.args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{tool}: {e}"));
    let feeder = stdin.map(|data| {
        let mut pipe = child.stdin.take().unwrap();
        let data = data.to_vec();
        std::thread::spawn(move || pipe.write_all(&data).unwrap())
    });
    let out = child.wait_with_output().unwrap();
    if let Some(f) = feeder {
        f.join().unwrap();
    }
    assert!(
        out.status.success(),
        "{tool} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `len` bytes of real, compressible-as-usual content: system binaries and
/// text concatenated (what a package's data.tar holds).
pub fn sample_data(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let sources = [
        "/usr/bin/dpkg",
        "/usr/share/common-licenses/GPL-3",
        "/usr/bin/tar",
        "/usr/share/common-licenses/Apache-2.0",
        "/usr/bin/xz",
        "/usr/bin/perl",
        "/usr/share/common-licenses/GPL-2",
    ];
    while out.len() < len {
        for src in sources {
            if let Ok(bytes) = std::fs::read(src) {
                out.extend_from_slice(&bytes);
            }
        }
        assert!(!out.is_empty(), "no sample files found");
    }
    out.truncate(len);
    out
}

/// Extracts member `name` (a prefix such as `data.tar`) of the deb at `deb`
/// with `ar`, returning its file name and bytes.
pub fn deb_member(deb: &Path, prefix: &str) -> (String, Vec<u8>) {
    let list = String::from_utf8(run("ar", &["t", deb.to_str().unwrap()], None)).unwrap();
    let name = list
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix}* in {}", deb.display()))
        .to_string();
    let bytes = run("ar", &["p", deb.to_str().unwrap(), &name], None);
    (name, bytes)
}
