//! `ferry-in serve` with a real client (curl): what was imported is served
//! byte-exact, with Range and ETag, and a new import is picked up live.

use ferry_e2e::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(env: &Env) -> Server {
    let mut child = Command::new(bin("ferry-in"))
        .arg("--state")
        .arg(&env.in_state)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .split("http://")
        .nth(1)
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .trim()
        .to_string();
    Server {
        child,
        base: format!("http://{base}"),
    }
}

fn curl(args: &[&str]) -> (Vec<u8>, String) {
    let out = Command::new("curl")
        .args(["-sS", "-D", "/dev/stderr"])
        .args(args)
        .output()
        .expect("curl is installed by scripts/test.sh");
    (
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn imported_files_are_served_with_range_and_etag() {
    let env = Env::new();
    let blob = random_bytes(1_500_000, 21);
    env.write_src("pool/blob.bin", &blob);
    env.write_src("readme.txt", b"version 1\n");
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();
    let srv = start(&env);

    let (body, headers) = curl(&[&format!("{}/files/tools/pool/blob.bin", srv.base)]);
    assert_eq!(body, blob);
    let sha = ferry_protocol::id::Sha256::of(&blob).to_hex();
    assert!(headers.contains(&format!("sha256:{sha}")), "{headers}");
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("content-length: 1500000"),
        "{headers}"
    );

    let (part, headers) = curl(&[
        "-r",
        "1000-1999",
        &format!("{}/files/tools/pool/blob.bin", srv.base),
    ]);
    assert!(headers.starts_with("HTTP/1.1 206"), "{headers}");
    assert_eq!(part, &blob[1000..2000]);

    let (_, headers) = curl(&[
        "-H",
        &format!("If-None-Match: \"sha256:{sha}\""),
        &format!("{}/files/tools/pool/blob.bin", srv.base),
    ]);
    assert!(headers.starts_with("HTTP/1.1 304"), "{headers}");

    let (_, headers) = curl(&[
        &format!("{}/files/tools/../../ferry-in.redb", srv.base),
        "--path-as-is",
    ]);
    assert!(!headers.starts_with("HTTP/1.1 200"), "{headers}");

    // A new import is served without a restart.
    env.write_src("readme.txt", b"version 2\n");
    env.export("m2").expect_ok();
    env.import("m2").expect_ok();
    let (body, _) = curl(&[&format!("{}/files/tools/readme.txt", srv.base)]);
    assert_eq!(body, b"version 2\n");
}
