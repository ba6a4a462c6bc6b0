//! A `files` source fed by URLs: fetched over HTTP, checked against the
//! configured SHA-256, and refused as a whole when one does not match.

use ferry_e2e::*;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

/// A tiny HTTP/1.0 server on loopback answering GET /<name> from a fixed set.
fn serve(files: Vec<(&'static str, Vec<u8>)>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut line = String::new();
            let mut r = BufReader::new(s.try_clone().unwrap());
            if r.read_line(&mut line).is_err() {
                continue;
            }
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
            }
            let path = line
                .split_whitespace()
                .nth(1)
                .unwrap_or("")
                .trim_start_matches('/')
                .to_string();
            match files.iter().find(|(n, _)| *n == path) {
                Some((_, body)) => {
                    let _ = write!(
                        s,
                        "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    );
                    let _ = s.write_all(body);
                }
                None => {
                    let _ = s.write_all(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n");
                }
            }
        }
    });
    format!("http://{addr}")
}

fn config(env: &Env, body: &str) {
    std::fs::write(
        &env.config,
        format!("[[source]]\nname = \"tools\"\ntype = \"files\"\n{body}"),
    )
    .unwrap();
}

#[test]
fn urls_are_fetched_checked_and_imported() {
    let a = random_bytes(300_000, 11);
    let b = text_bytes(50_000, 12);
    let base = serve(vec![("dl/a.bin", a.clone()), ("b.txt", b.clone())]);
    let env = Env::new();
    let sha_a = ferry_protocol::id::Sha256::of(&a).to_hex();
    config(
        &env,
        &format!(
            "urls = [{{ url = \"{base}/dl/a.bin\", sha256 = \"{sha_a}\" }}, {{ url = \"{base}/b.txt\", path = \"docs/b.txt\" }}]\n"
        ),
    );
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();
    assert_eq!(std::fs::read(env.served("a.bin")).unwrap(), a);
    assert_eq!(std::fs::read(env.served("docs/b.txt")).unwrap(), b);
}

#[test]
fn a_wrong_sha256_fails_the_export_and_ships_nothing() {
    let a = random_bytes(10_000, 13);
    let base = serve(vec![("a.bin", a)]);
    let env = Env::new();
    let wrong = "00".repeat(32);
    config(
        &env,
        &format!("urls = [{{ url = \"{base}/a.bin\", sha256 = \"{wrong}\" }}]\n"),
    );
    env.export("m1")
        .expect_fail(&["a.bin", "checksum mismatch", &wrong]);
    assert!(
        !env.root().join("m1").exists(),
        "a failed export wrote to the media"
    );
    let st = env.out(&["status"]).expect_ok();
    assert!(st.stdout.contains("0 exported"), "{}", st.stdout);
}

#[test]
fn an_unreachable_url_names_itself() {
    let base = serve(vec![]);
    let env = Env::new();
    config(&env, &format!("urls = [\"{base}/missing.iso\"]\n"));
    env.export("m1").expect_fail(&["missing.iso"]);
}
