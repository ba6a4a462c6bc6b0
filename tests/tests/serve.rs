//! `ferry-in serve` with a real client (curl): what was imported is served
//! byte-exact, with Range and ETag, and a new import is picked up live.

use ferry_e2e::*;
use std::process::Command;

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
    let srv = env.serve();
    let base = format!("http://{}", srv.addr);

    let (body, headers) = curl(&[&format!("{}/files/tools/pool/blob.bin", base)]);
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
        &format!("{}/files/tools/pool/blob.bin", base),
    ]);
    assert!(headers.starts_with("HTTP/1.1 206"), "{headers}");
    assert_eq!(part, &blob[1000..2000]);

    let (_, headers) = curl(&[
        "-H",
        &format!("If-None-Match: \"sha256:{sha}\""),
        &format!("{}/files/tools/pool/blob.bin", base),
    ]);
    assert!(headers.starts_with("HTTP/1.1 304"), "{headers}");

    let (_, headers) = curl(&[
        &format!("{}/files/tools/../../ferry-in.redb", base),
        "--path-as-is",
    ]);
    assert!(!headers.starts_with("HTTP/1.1 200"), "{headers}");

    // A new import is served without a restart.
    env.write_src("readme.txt", b"version 2\n");
    env.export("m2").expect_ok();
    env.import("m2").expect_ok();
    let (body, _) = curl(&[&format!("{}/files/tools/readme.txt", base)]);
    assert_eq!(body, b"version 2\n");
}
