//! `ferry-in serve` with a real client (curl): what was imported is served
//! byte-exact, with Range and ETag, and a new import is picked up live; and
//! with raw sockets: the serve flags bound header time, connections and
//! listing pages.

use ferry_e2e::*;
use std::io::ErrorKind;
use std::time::Duration;

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

    let (body, headers) = curl_response(&[&format!("{}/files/tools/pool/blob.bin", base)]);
    assert_eq!(body, blob);
    let sha = ferry_protocol::id::Sha256::of(&blob).to_hex();
    assert!(headers.contains(&format!("sha256:{sha}")), "{headers}");
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("content-length: 1500000"),
        "{headers}"
    );

    let (part, headers) = curl_response(&[
        "-r",
        "1000-1999",
        &format!("{}/files/tools/pool/blob.bin", base),
    ]);
    assert!(headers.starts_with("HTTP/1.1 206"), "{headers}");
    assert_eq!(part, &blob[1000..2000]);

    let (_, headers) = curl_response(&[
        "-H",
        &format!("If-None-Match: \"sha256:{sha}\""),
        &format!("{}/files/tools/pool/blob.bin", base),
    ]);
    assert!(headers.starts_with("HTTP/1.1 304"), "{headers}");

    let (_, headers) = curl_response(&[
        &format!("{}/files/tools/../../ferry-in.redb", base),
        "--path-as-is",
    ]);
    assert!(!headers.starts_with("HTTP/1.1 200"), "{headers}");

    // A new import is served without a restart.
    env.write_src("readme.txt", b"version 2\n");
    env.export("m2").expect_ok();
    env.import("m2").expect_ok();
    let (body, _) = curl_response(&[&format!("{}/files/tools/readme.txt", base)]);
    assert_eq!(body, b"version 2\n");
}

/// Starts `ferry-in serve` on a free loopback port with extra flags; the
/// address it serves on.
fn serve_with(env: &Env, flags: &[&str]) -> (KillOnDrop, std::net::SocketAddr) {
    let server = env.serve_with(flags);
    let addr = server.addr.parse().expect("an address");
    (server.process, addr)
}

/// Sends `request` on `s` and reads until the server closes it or `bound`
/// passes; what arrived, and whether it was closed.
fn exchange(s: &mut std::net::TcpStream, request: &[u8], bound: Duration) -> (String, bool) {
    use std::io::{Read, Write};
    s.set_read_timeout(Some(bound)).unwrap();
    let _ = s.write_all(request);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break false
            }
            Err(_) => break true,
        }
    };
    (String::from_utf8_lossy(&got).into_owned(), closed)
}

#[test]
fn serve_flags_bound_headers_connections_and_listings() {
    let env = Env::new();
    for i in 0..5 {
        env.write_src(&format!("dir/f{i}"), b"x");
    }
    env.write_src("readme.txt", b"hello\n");
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();
    let (_srv, addr) = serve_with(&env, &["--header-timeout", "1s", "--page-size", "2"]);
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").into_bytes();

    // A listing comes two entries a page, with a link to the next.
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    let (page, _) = exchange(&mut c, &get("/files/tools/dir/"), Duration::from_secs(5));
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(
        page.contains("link: </files/tools/dir/?marker=f1>; rel=\"next\""),
        "{page}"
    );
    // ... and the connection, left idle, is closed after the header timeout.
    let (_, closed) = exchange(&mut c, b"", Duration::from_secs(30));
    assert!(closed, "an idle connection outlived --header-timeout");

    // A partial header is closed too.
    let mut partial = std::net::TcpStream::connect(addr).unwrap();
    let (got, closed) = exchange(
        &mut partial,
        b"GET /files/ HTTP/1.1\r\nHo",
        Duration::from_secs(30),
    );
    assert!(closed && !got.contains(" 200 "), "{got}");

    // Four connections fill the cap; a fifth is refused; the four are served.
    let (_capped, addr) = serve_with(&env, &["--max-connections", "4"]);
    let mut open: Vec<_> = (0..4)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    let mut fifth = std::net::TcpStream::connect(addr).unwrap();
    let (got, closed) = exchange(
        &mut fifth,
        &get("/files/tools/readme.txt"),
        Duration::from_secs(30),
    );
    assert!(
        closed && (got.is_empty() || got.starts_with("HTTP/1.1 503")),
        "{got}"
    );
    for c in &mut open {
        let req = b"GET /files/tools/readme.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
        let (got, _) = exchange(c, req, Duration::from_secs(5));
        assert!(
            got.starts_with("HTTP/1.1 200") && got.ends_with("hello\n"),
            "{got}"
        );
    }
}
