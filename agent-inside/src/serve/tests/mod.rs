//! Tests of `ferry-in serve` against a hand-built store, by topic: `files`
//! (files, ranges, conditionals, links, safety, listings, generations), `oci`
//! (the `/v2/` pull API), `limits` (pagination, timeouts, the connection cap,
//! latency under load). The helpers here are shared.

use super::file::{content_type, plan_range, RangePlan, READ_CHUNK};
use super::generation::NO_GENERATION;
use super::request::percent_decode;
use super::response::{href_encode, html_escape};
use super::{run, serve_on, ServeSettings};
use crate::layout::{Layout, GEN_FILES, GEN_INDEX, GEN_OCI};
use ferry_protocol::catalog::{Catalog, FileObject, Object, SourceKind};
use ferry_protocol::catalog::{ChunkRef, Encoding};
use ferry_protocol::id::{ChunkId, Sha256};
use ferry_protocol::path::ObjectKey;
use std::net::SocketAddr;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

// ---- a fake store ------------------------------------------------------

struct Store {
    tmp: TempDir,
    layout: Layout,
}

fn store() -> Store {
    let tmp = TempDir::new().unwrap();
    let layout = Layout::new(&tmp.path().join("state"));
    std::fs::create_dir_all(layout.gens()).unwrap();
    // Something outside the store that must never be served.
    std::fs::write(tmp.path().join("secret.txt"), "TOP-SECRET").unwrap();
    Store { tmp, layout }
}

fn file_object(data: &[u8]) -> Object {
    Object::File(FileObject {
        size: data.len() as u64,
        sha256: Sha256::of(data),
        executable: false,
        encoding: Encoding::Chunks(if data.is_empty() {
            vec![]
        } else {
            vec![ChunkRef {
                id: ChunkId::of(data),
                len: data.len() as u32,
            }]
        }),
    })
}

fn key(source: &str, path: &str) -> ObjectKey {
    ObjectKey {
        source: source.into(),
        path: path.into(),
    }
}

/// Writes generation `name`: files `(source, path, bytes)` and links
/// `(source, path, target)`. The catalog is validated unless `unchecked`.
fn write_gen(
    layout: &Layout,
    name: &str,
    files: &[(&str, &str, &[u8])],
    links: &[(&str, &str, &str)],
    unchecked: bool,
) {
    let dir = layout.gen(name);
    let mut catalog = Catalog::default();
    for (source, path, data) in files {
        catalog
            .sources
            .insert(source.to_string(), SourceKind::Files);
        catalog.objects.insert(key(source, path), file_object(data));
        let p = dir.join(GEN_FILES).join(source).join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    for (source, path, target) in links {
        catalog
            .sources
            .insert(source.to_string(), SourceKind::Files);
        catalog.objects.insert(
            key(source, path),
            Object::Symlink {
                target: target.to_string(),
            },
        );
    }
    if !unchecked {
        catalog.validate().unwrap();
    }
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(GEN_INDEX), catalog.to_bytes()).unwrap();
}

/// Points `current` at generation `name`, atomically, as the importer does.
fn set_current(layout: &Layout, name: &str) {
    let tmp = layout.store().join("current.tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(format!("gens/{name}"), &tmp).unwrap();
    std::fs::rename(&tmp, layout.current_link()).unwrap();
}

/// Serves `layout` on a free loopback port with the default settings, for
/// the rest of the test.
async fn start(layout: &Layout) -> SocketAddr {
    start_with(layout, ServeSettings::default()).await
}

/// Serves `layout` on a free loopback port with `settings`, through the
/// same accept loop as `ferry-in serve`.
async fn start_with(layout: &Layout, settings: ServeSettings) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let layout = layout.clone();
    tokio::spawn(async move {
        let forever = std::future::pending::<anyhow::Result<()>>();
        serve_on(listener, layout, &settings, forever)
            .await
            .unwrap()
    });
    addr
}

// ---- a raw HTTP/1.1 client ---------------------------------------------

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn send(addr: SocketAddr, method: &str, target: &str, extra: &[(&str, &str)]) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    parse_reply(&raw)
}

async fn get(addr: SocketAddr, target: &str) -> Reply {
    send(addr, "GET", target, &[]).await
}

fn parse_reply(raw: &[u8]) -> Reply {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete header block");
    let head = std::str::from_utf8(&raw[..end]).unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body);
    }
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = raw.windows(2).position(|w| w == b"\r\n").unwrap();
        let size_text = std::str::from_utf8(&raw[..eol]).unwrap();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap(), 16).unwrap();
        raw = &raw[eol + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

fn assert_no_secret(r: &Reply, what: &str) {
    assert_ne!(r.status, 200, "{what}: {r:?}");
    let body = r.text();
    assert!(
        !body.contains("TOP-SECRET") && !body.contains("root:"),
        "{what}: {body}"
    );
}

const HELLO: &[u8] = b"hello, inside world\n";

/// A store with a few files and links in generation g1, served.
async fn served() -> (Store, SocketAddr) {
    let s = store();
    write_gen(
        &s.layout,
        "g1",
        &[
            ("src", "hello.txt", HELLO),
            ("src", "dir/file.json", b"{\"a\":1}"),
            ("src", "dir/sub/deep.bin", b"deep"),
            ("src", "<b>&'x\".txt", b"odd name"),
            ("src", "with space.tar.gz", b"gz"),
            ("src", "empty", b""),
            ("other", "x", b"x"),
        ],
        &[
            ("src", "link.txt", "hello.txt"),
            ("src", "dir/up", "../hello.txt"),
            ("src", "chain", "link.txt"),
            ("src", "latest", "dir"),
            ("src", "dangling", "nothing-here"),
            ("src", "loop1", "loop2"),
            ("src", "loop2", "loop1"),
        ],
        false,
    );
    set_current(&s.layout, "g1");
    let addr = start(&s.layout).await;
    (s, addr)
}

// ---- tests -------------------------------------------------------------

mod files;
mod limits;
mod oci;

#[test]
fn run_names_an_address_it_cannot_bind() {
    let s = store();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let e = run(&s.layout, &addr).unwrap_err();
    assert!(format!("{e:#}").contains(&addr), "{e:#}");
}

#[test]
fn helpers() {
    assert_eq!(percent_decode("a%20b%2F%2e").as_deref(), Some("a b/."));
    assert_eq!(percent_decode("%"), None);
    assert_eq!(percent_decode("%2"), None);
    assert_eq!(percent_decode("%+1"), None);
    assert_eq!(percent_decode("%ff"), None);
    assert_eq!(href_encode("a b:c/é"), "a%20b%3Ac%2F%C3%A9");
    assert_eq!(
        html_escape("<a href='x'>&\"</a>"),
        "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
    );
    assert_eq!(content_type("dir/X.WHL"), "application/zip");
    assert_eq!(content_type("a.tar.zst"), "application/zstd");
    assert_eq!(
        content_type("pkg.deb"),
        "application/vnd.debian.binary-package"
    );
    assert_eq!(content_type("v1.2/README"), "application/octet-stream");
    assert_eq!(plan_range("bytes=0-0", 10), RangePlan::Part(0, 0));
    assert_eq!(plan_range("bytes=10-", 10), RangePlan::Unsatisfiable);
    assert_eq!(plan_range("bytes=9-", 10), RangePlan::Part(9, 9));
    assert_eq!(plan_range("bytes=-1", 0), RangePlan::Full);
    assert_eq!(plan_range("bytes=0-", 0), RangePlan::Full);
}
