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
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
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

/// Builds a deb with `dpkg-deb --build` and the extra `args` (compression
/// options) from a package holding `payload`, returning its path.
pub fn build_deb(dir: &Path, name: &str, payload: &[u8], args: &[&str]) -> std::path::PathBuf {
    let root = dir.join(format!("{name}-root"));
    std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(root.join(format!("usr/share/{name}"))).unwrap();
    std::fs::write(
        root.join("DEBIAN/control"),
        format!(
            "Package: {name}\nVersion: 1.0\nArchitecture: all\nMaintainer: Ferry <ferry@example.org>\nDescription: test package\n"
        ),
    )
    .unwrap();
    std::fs::write(root.join(format!("usr/share/{name}/data")), payload).unwrap();
    std::fs::write(root.join(format!("usr/share/{name}/README")), b"hello\n").unwrap();
    let deb = dir.join(format!("{name}.deb"));
    let mut full = vec!["--root-owner-group"];
    full.extend_from_slice(args);
    full.extend(["--build", root.to_str().unwrap(), deb.to_str().unwrap()]);
    run("dpkg-deb", &full, None);
    deb
}

/// Builds a noarch RPM with `rpmbuild -bb` holding `payload`, its payload
/// compressed as `payload_macro` (`w19.zstdio`, `w6.xzdio`) or rpmbuild's
/// default when `None`; returns its path.
pub fn build_rpm(
    dir: &Path,
    name: &str,
    payload: &[u8],
    payload_macro: Option<&str>,
) -> std::path::PathBuf {
    let data = dir.join(format!("{name}.data"));
    std::fs::write(&data, payload).unwrap();
    let spec = dir.join(format!("{name}.spec"));
    std::fs::write(
        &spec,
        format!(
            "Name: {name}\nVersion: 1.0\nRelease: 1\nSummary: test\nLicense: MIT\nBuildArch: noarch\n\
             %description\ntest\n%install\nmkdir -p %{{buildroot}}/usr/share/{name}\n\
             cp {} %{{buildroot}}/usr/share/{name}/data\n%files\n/usr/share/{name}/data\n",
            data.display()
        ),
    )
    .unwrap();
    let top = format!("_topdir {}", dir.join("rpmbuild").display());
    let rpmdir = format!("_rpmdir {}", dir.join("rpms").display());
    let mut args = vec![
        "-bb",
        "--define",
        &top,
        "--define",
        &rpmdir,
        "--define",
        "_build_id_links none",
        "--define",
        "__os_install_post %{nil}",
    ];
    let payload_def = payload_macro.map(|m| format!("_binary_payload {m}"));
    if let Some(def) = &payload_def {
        args.extend(["--define", def]);
    }
    args.push(spec.to_str().unwrap());
    run("rpmbuild", &args, None);
    dir.join(format!("rpms/noarch/{name}-1.0-1.noarch.rpm"))
}

/// The compressed payload of an RPM: after the 96-byte lead, the signature
/// header (padded to 8 bytes) and the main header.
pub fn rpm_payload(rpm: &[u8]) -> &[u8] {
    let header_len = |at: usize| {
        assert_eq!(&rpm[at..at + 3], &[0x8E, 0xAD, 0xE8], "RPM header magic");
        let nindex = u32::from_be_bytes(rpm[at + 8..at + 12].try_into().unwrap()) as usize;
        let hsize = u32::from_be_bytes(rpm[at + 12..at + 16].try_into().unwrap()) as usize;
        16 + 16 * nindex + hsize
    };
    let sig = 96;
    let main = sig + header_len(sig).div_ceil(8) * 8;
    &rpm[main + header_len(main)..]
}

/// Whether the real-Debian tests should run (they download packages).
pub fn real_debian() -> bool {
    std::env::var("FERRY_TEST_REAL_DEBIAN").is_ok_and(|v| v == "1")
}
