//! Tests of `ferry-in serve` against a hand-built store.

use super::*;
use crate::layout::GEN_FILES;
use ferry_protocol::catalog::{ChunkRef, Encoding};
use ferry_protocol::id::{ChunkId, Sha256};
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

async fn start(layout: &Layout) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(layout.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
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

#[tokio::test]
async fn get_serves_a_file_with_its_headers() {
    let (_s, addr) = served().await;
    let r = get(addr, "/files/src/hello.txt").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, HELLO);
    assert_eq!(r.header("content-length"), Some(&*HELLO.len().to_string()));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    let etag = format!("\"sha256:{}\"", Sha256::of(HELLO).to_hex());
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("x-ferry-generation"), Some("g1"));

    let r = get(addr, "/files/src/dir/file.json").await;
    assert_eq!(r.body, b"{\"a\":1}");
    assert_eq!(r.header("content-type"), Some("application/json"));

    let r = get(addr, "/files/src/with%20space.tar.gz").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/gzip"));

    let r = get(addr, "/files/src/empty").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-length"), Some("0"));
    assert!(r.body.is_empty());
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
}

#[tokio::test]
async fn head_has_the_headers_and_no_body() {
    let (_s, addr) = served().await;
    let r = send(addr, "HEAD", "/files/src/hello.txt", &[]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-length"), Some(&*HELLO.len().to_string()));
    assert!(r.body.is_empty());
    assert!(r.header("etag").is_some());

    let listing = get(addr, "/files/src/").await;
    let r = send(addr, "HEAD", "/files/src/", &[]).await;
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert_eq!(
        r.header("content-length"),
        Some(&*listing.body.len().to_string())
    );
}

#[tokio::test]
async fn large_files_stream_in_several_chunks() {
    let s = store();
    let data: Vec<u8> = (0..(READ_CHUNK * 3 + 12_345))
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    write_gen(&s.layout, "g1", &[("src", "big.iso", &data)], &[], false);
    set_current(&s.layout, "g1");
    let addr = start(&s.layout).await;
    let r = get(addr, "/files/src/big.iso").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/x-iso9660-image")
    );
    assert_eq!(r.body.len(), data.len());
    assert!(r.body == data);

    let (a, b) = (READ_CHUNK - 10, 2 * READ_CHUNK + 10);
    let r = send(
        addr,
        "GET",
        "/files/src/big.iso",
        &[("Range", &format!("bytes={a}-{b}"))],
    )
    .await;
    assert_eq!(r.status, 206);
    assert!(r.body == data[a..=b]);
}

#[tokio::test]
async fn byte_ranges() {
    let (_s, addr) = served().await;
    let n = HELLO.len();
    let path = "/files/src/hello.txt";

    let r = send(addr, "GET", path, &[("Range", "bytes=2-5")]).await;
    assert_eq!(r.status, 206, "{r:?}");
    assert_eq!(r.body, &HELLO[2..=5]);
    assert_eq!(r.header("content-range"), Some(&*format!("bytes 2-5/{n}")));
    assert_eq!(r.header("content-length"), Some("4"));

    let r = send(addr, "GET", path, &[("Range", "bytes=-3")]).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &HELLO[n - 3..]);
    assert_eq!(
        r.header("content-range"),
        Some(&*format!("bytes {}-{}/{n}", n - 3, n - 1))
    );

    let r = send(addr, "GET", path, &[("Range", "bytes=7-")]).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &HELLO[7..]);

    // An end past the file is cut at the last byte.
    let r = send(addr, "GET", path, &[("Range", "bytes=7-100000")]).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &HELLO[7..]);

    // A suffix longer than the file is the whole file.
    let r = send(addr, "GET", path, &[("Range", "bytes=-100000")]).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, HELLO);

    let r = send(addr, "GET", path, &[("Range", "bytes=1000-2000")]).await;
    assert_eq!(r.status, 416, "{r:?}");
    assert_eq!(r.header("content-range"), Some(&*format!("bytes */{n}")));

    // Several ranges, or nonsense: the whole file.
    for value in ["bytes=0-1,4-5", "bytes=5-2", "lines=1-2", "bytes=abc"] {
        let r = send(addr, "GET", path, &[("Range", value)]).await;
        assert_eq!(r.status, 200, "{value}: {r:?}");
        assert_eq!(r.body, HELLO, "{value}");
    }

    // HEAD ignores Range.
    let r = send(addr, "HEAD", path, &[("Range", "bytes=2-5")]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some(&*n.to_string()));
}

#[tokio::test]
async fn conditional_requests() {
    let (_s, addr) = served().await;
    let path = "/files/src/hello.txt";
    let etag = format!("\"sha256:{}\"", Sha256::of(HELLO).to_hex());

    for inm in [
        etag.clone(),
        "*".to_string(),
        format!("W/{etag}"),
        format!("\"other\", {etag}"),
    ] {
        let r = send(addr, "GET", path, &[("If-None-Match", &inm)]).await;
        assert_eq!(r.status, 304, "{inm}: {r:?}");
        assert!(r.body.is_empty());
        assert_eq!(r.header("etag"), Some(etag.as_str()));
    }
    let r = send(addr, "GET", path, &[("If-None-Match", "\"sha256:00\"")]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, HELLO);

    let r = send(
        addr,
        "GET",
        path,
        &[("Range", "bytes=0-4"), ("If-Range", &etag)],
    )
    .await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &HELLO[..5]);
    let r = send(
        addr,
        "GET",
        path,
        &[("Range", "bytes=0-4"), ("If-Range", "\"sha256:00\"")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, HELLO);
    let r = send(
        addr,
        "GET",
        path,
        &[
            ("Range", "bytes=0-4"),
            ("If-Range", "Wed, 21 Oct 2015 07:28:00 GMT"),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn symlinks_are_resolved_in_the_catalog() {
    let (_s, addr) = served().await;
    for path in ["link.txt", "chain", "dir/up"] {
        let r = get(addr, &format!("/files/src/{path}")).await;
        assert_eq!(r.status, 200, "{path}: {r:?}");
        assert_eq!(r.body, HELLO, "{path}");
    }
    // A link standing for a directory, in the middle of a path.
    let r = get(addr, "/files/src/latest/sub/deep.bin").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, b"deep");
    let r = get(addr, "/files/src/latest").await;
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/files/src/latest/"));
    let r = get(addr, "/files/src/latest/").await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("file.json"), "{}", r.text());

    for path in ["dangling", "loop1", "latest/nothing", "link.txt/x"] {
        let r = get(addr, &format!("/files/src/{path}")).await;
        assert_eq!(r.status, 404, "{path}: {r:?}");
    }
}

#[tokio::test]
async fn nothing_outside_the_store_is_reachable() {
    let (s, addr) = served().await;
    for target in [
        "/files/src/../../etc/passwd",
        "/files/src/../../../../../../../../etc/passwd",
        "/files/src/../../../../secret.txt",
        "/files/src/%2e%2e/%2e%2e/%2e%2e/%2e%2e/secret.txt",
        "/files/src/%2E%2E%2F%2E%2E%2F%2E%2E%2F%2E%2E%2Fsecret.txt",
        "/files/src/..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/files/..%2f..%2f..%2fsecret.txt",
        "/files/%2e%2e/%2e%2e/secret.txt",
        "/files/src/%2Fetc%2Fpasswd",
        "/files/src//etc/passwd",
        "/files/src/dir/%00",
        "/files/src/..%5c..%5csecret.txt",
        "/files/src/%zz",
        "/files/src/%ff",
        "/files/../secret.txt",
        "/files/src/./hello.txt",
    ] {
        let r = get(addr, target).await;
        assert_no_secret(&r, target);
    }
    let r = get(addr, "/files/src/%2e%2e/%2e%2e/secret.txt").await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.text().contains("traversal"), "{}", r.text());

    // Even a bad catalog (never validated) cannot lead outside: a link
    // climbing above its source, and a key with `..` in it.
    write_gen(
        &s.layout,
        "bad",
        &[("src", "ok", b"ok")],
        &[
            ("src", "evil", "../../../../../secret.txt"),
            ("src", "abs", "/etc/passwd"),
        ],
        true,
    );
    let bad = s.layout.gen("bad");
    let mut catalog = Catalog::from_bytes(&std::fs::read(bad.join(GEN_INDEX)).unwrap()).unwrap();
    catalog.objects.insert(
        key("src", "x/../../../../../secret.txt"),
        file_object(b"TOP-SECRET"),
    );
    catalog.objects.insert(
        key("src", "esc"),
        Object::Symlink {
            target: "x/../../../../../secret.txt".into(),
        },
    );
    // A key the path rules refuse, reached through a link: refused again
    // before it is joined onto the filesystem.
    catalog
        .objects
        .insert(key("src", "a\\b"), file_object(b"backslash"));
    catalog.objects.insert(
        key("src", "bs"),
        Object::Symlink {
            target: "a\\b".into(),
        },
    );
    std::fs::write(bad.join(GEN_INDEX), catalog.to_bytes()).unwrap();
    set_current(&s.layout, "bad");
    for target in ["/files/src/evil", "/files/src/abs", "/files/src/esc"] {
        let r = get(addr, target).await;
        assert_no_secret(&r, target);
    }
    let r = get(addr, "/files/src/bs").await;
    assert_eq!(r.status, 500, "{r:?}");
    assert!(r.text().contains("unsafe key"), "{}", r.text());
    let r = get(addr, "/files/src/ok").await;
    assert_eq!(r.body, b"ok");
    assert!(s.tmp.path().join("secret.txt").exists());
}

#[tokio::test]
async fn unknown_paths_methods_and_statuses() {
    let (_s, addr) = served().await;
    let r = get(addr, "/files/src/nope.txt").await;
    assert_eq!(r.status, 404);
    assert!(r.text().contains("/files/src/nope.txt"), "{}", r.text());
    assert_eq!(get(addr, "/files/nosource/x").await.status, 404);
    assert_eq!(get(addr, "/files/src/nodir/").await.status, 404);
    assert_eq!(get(addr, "/files/src/hello.txt/").await.status, 404);
    let r = get(addr, "/elsewhere").await;
    assert_eq!(r.status, 404);
    assert!(r.text().contains("/elsewhere"));

    let r = send(
        addr,
        "POST",
        "/files/src/hello.txt",
        &[("Content-Length", "0")],
    )
    .await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    assert_eq!(send(addr, "DELETE", "/", &[]).await.status, 405);

    let r = get(addr, "/healthz").await;
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));

    let r = get(addr, "/").await;
    assert_eq!(r.status, 200);
    let page = r.text();
    assert!(page.contains("generation: g1"), "{page}");
    assert!(page.contains("objects: 14"), "{page}");
    let total = HELLO.len() + 7 + 4 + 8 + 2 + 1;
    assert!(page.contains(&format!("bytes: {total}")), "{page}");
}

#[tokio::test]
async fn directory_listings() {
    let (_s, addr) = served().await;
    let r = get(addr, "/files/").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let html = r.text();
    assert!(html.contains("href=\"other/\""), "{html}");
    assert!(html.contains("href=\"src/\""), "{html}");

    let r = get(addr, "/files").await;
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/files/"));
    let r = get(addr, "/files/src").await;
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/files/src/"));
    let r = get(addr, "/files/src/dir").await;
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/files/src/dir/"));

    let html = get(addr, "/files/src/").await.text();
    for want in [
        "href=\"hello.txt\"",
        "href=\"dir/\">dir/</a>",
        "href=\"latest\"",
        "href=\"with%20space.tar.gz\"",
        // The odd name, escaped as text and encoded as a link.
        "&lt;b&gt;&amp;&#39;x&quot;.txt</a>",
        "href=\"%3Cb%3E%26%27x%22.txt\"",
    ] {
        assert!(html.contains(want), "{want} in {html}");
    }
    assert!(!html.contains("<b>"), "{html}");
    assert!(!html.contains("deep.bin"), "only direct children: {html}");
    // Every name once.
    assert_eq!(html.matches("href=\"dir/\"").count(), 1, "{html}");

    let r = get(addr, "/files/src/%3Cb%3E%26%27x%22.txt").await;
    assert_eq!(r.body, b"odd name");

    let html = get(addr, "/files/src/dir/").await.text();
    assert!(html.contains("href=\"file.json\""), "{html}");
    assert!(html.contains("href=\"sub/\""), "{html}");
    assert!(html.contains("href=\"../\""), "{html}");
    assert!(!html.contains("href=\"hello.txt\""), "{html}");
    assert!(
        html.contains("href=\"up\">up</a> -&gt; ../hello.txt"),
        "{html}"
    );
}

#[tokio::test]
async fn unavailable_before_the_first_import() {
    let s = store();
    let addr = start(&s.layout).await;
    for path in ["/", "/files/", "/files/src/x"] {
        let r = get(addr, path).await;
        assert_eq!(r.status, 503, "{path}");
        assert_eq!(r.text(), NO_GENERATION);
    }
    assert_eq!(get(addr, "/healthz").await.status, 200);

    // The first import shows up without a restart.
    write_gen(&s.layout, "g1", &[("src", "a", b"A")], &[], false);
    set_current(&s.layout, "g1");
    assert_eq!(get(addr, "/files/src/a").await.body, b"A");
}

#[tokio::test]
async fn a_new_generation_is_served_as_soon_as_current_moves() {
    let s = store();
    write_gen(&s.layout, "g1", &[("src", "a.txt", b"one")], &[], false);
    write_gen(
        &s.layout,
        "g2",
        &[("src", "a.txt", b"two!"), ("src", "b.txt", b"new")],
        &[],
        false,
    );
    set_current(&s.layout, "g1");
    let addr = start(&s.layout).await;
    let r = get(addr, "/files/src/a.txt").await;
    assert_eq!(
        (r.body.as_slice(), r.header("x-ferry-generation")),
        (&b"one"[..], Some("g1"))
    );
    assert_eq!(get(addr, "/files/src/b.txt").await.status, 404);

    set_current(&s.layout, "g2");
    let r = get(addr, "/files/src/a.txt").await;
    assert_eq!(
        (r.body.as_slice(), r.header("x-ferry-generation")),
        (&b"two!"[..], Some("g2"))
    );
    assert_eq!(get(addr, "/files/src/b.txt").await.body, b"new");
    assert!(get(addr, "/").await.text().contains("generation: g2"));

    // And back.
    set_current(&s.layout, "g1");
    assert_eq!(get(addr, "/files/src/a.txt").await.body, b"one");
}

#[tokio::test]
async fn a_broken_generation_is_a_clear_500() {
    let s = store();
    std::fs::create_dir_all(s.layout.gen("g1")).unwrap();
    std::fs::write(s.layout.gen("g1").join(GEN_INDEX), b"\xff\xff garbage").unwrap();
    set_current(&s.layout, "g1");
    let addr = start(&s.layout).await;
    let r = get(addr, "/files/src/a").await;
    assert_eq!(r.status, 500);
    assert!(r.text().contains("g1"), "{}", r.text());

    // A catalog entry whose stored file is missing.
    write_gen(&s.layout, "g2", &[("src", "a", b"A")], &[], false);
    std::fs::remove_file(s.layout.gen("g2").join(GEN_FILES).join("src/a")).unwrap();
    set_current(&s.layout, "g2");
    let r = get(addr, "/files/src/a").await;
    assert_eq!(r.status, 500);
    assert!(r.text().contains("src/a"), "{}", r.text());
}

// ---- the OCI pull API --------------------------------------------------

/// Adds OCI objects `(source, path, bytes)` to generation `name` (written
/// by `write_gen` before).
fn add_oci(layout: &Layout, name: &str, objects: &[(&str, &str, &[u8])]) {
    let dir = layout.gen(name);
    let mut catalog = Catalog::from_bytes(&std::fs::read(dir.join(GEN_INDEX)).unwrap()).unwrap();
    for (source, path, data) in objects {
        catalog.sources.insert(source.to_string(), SourceKind::Oci);
        catalog.objects.insert(key(source, path), file_object(data));
        let p = dir.join(GEN_OCI).join(source).join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    catalog.validate().unwrap();
    std::fs::write(dir.join(GEN_INDEX), catalog.to_bytes()).unwrap();
}

fn hex_of(data: &[u8]) -> String {
    Sha256::of(data).to_hex()
}

const MANIFEST: &[u8] =
    br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}"#;
const BARE_MANIFEST: &[u8] = br#"{"schemaVersion":2,"layers":[]}"#;
const BARE_INDEX: &[u8] = br#"{"schemaVersion":2,"manifests":[]}"#;
const BLOB: &[u8] = b"a layer's bytes, more or less";

/// A store with a files source and two OCI sources, served.
async fn served_oci() -> (Store, SocketAddr) {
    let s = store();
    write_gen(&s.layout, "g1", &[("src", "hello.txt", HELLO)], &[], false);
    let tag = |d: &[u8]| format!("sha256:{}\n", hex_of(d)).into_bytes();
    let (m, bm, bi) = (tag(MANIFEST), tag(BARE_MANIFEST), tag(BARE_INDEX));
    let paths = [
        format!("manifests/sha256/{}", hex_of(MANIFEST)),
        format!("manifests/sha256/{}", hex_of(BARE_MANIFEST)),
        format!("manifests/sha256/{}", hex_of(BARE_INDEX)),
        format!("blobs/sha256/{}", hex_of(BLOB)),
    ];
    add_oci(
        &s.layout,
        "g1",
        &[
            ("a-reg", &paths[0], MANIFEST),
            ("a-reg", &paths[1], BARE_MANIFEST),
            ("a-reg", &paths[2], BARE_INDEX),
            ("a-reg", &paths[3], BLOB),
            ("a-reg", "repos/library/demo/_tags/v1", &m),
            ("a-reg", "repos/library/demo/_tags/bare", &bm),
            ("a-reg", "repos/library/demo/_tags/index", &bi),
            ("a-reg", "repos/library/demo/sub/_tags/x", &m),
            ("a-reg", "repos/zeta/_tags/t", &m),
            // Also in a later source: the first source wins.
            ("b-reg", &paths[1], BARE_MANIFEST),
            ("b-reg", "repos/library/demo/_tags/v1", &bm),
            ("b-reg", "repos/other/_tags/latest", &bm),
        ],
    );
    set_current(&s.layout, "g1");
    let addr = start(&s.layout).await;
    (s, addr)
}

fn error_code(r: &Reply) -> String {
    let v: serde_json::Value =
        serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {r:?}"));
    v["errors"][0]["code"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn oci_base_and_read_only() {
    let (_s, addr) = served_oci().await;
    for target in ["/v2/", "/v2"] {
        let r = get(addr, target).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.text(), "{}");
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(
            r.header("docker-distribution-api-version"),
            Some("registry/2.0")
        );
    }
    for method in ["PUT", "POST", "PATCH", "DELETE"] {
        for target in [
            "/v2/",
            "/v2/library/demo/manifests/v1",
            "/v2/library/demo/blobs/uploads/",
        ] {
            let r = send(addr, method, target, &[("Content-Length", "0")]).await;
            assert_eq!(r.status, 405, "{method} {target}: {r:?}");
            assert_eq!(error_code(&r), "UNSUPPORTED");
            assert!(r.text().contains("read-only"), "{}", r.text());
        }
    }
    // Files are still served; the OCI sources are not files sources.
    assert_eq!(get(addr, "/files/src/hello.txt").await.body, HELLO);
    let html = get(addr, "/files/").await.text();
    assert!(html.contains("src/") && !html.contains("a-reg"), "{html}");
    let p = format!("/files/a-reg/blobs/sha256/{}", hex_of(BLOB));
    assert_eq!(get(addr, &p).await.status, 404);
    assert_eq!(get(addr, "/v2/nothing/here").await.status, 404);
}

#[tokio::test]
async fn oci_manifests_by_tag_and_digest() {
    let (_s, addr) = served_oci().await;
    let digest = format!("sha256:{}", hex_of(MANIFEST));
    for target in [
        "/v2/library/demo/manifests/v1".to_string(),
        format!("/v2/library/demo/manifests/{digest}"),
        "/v2/library/demo/sub/manifests/x".to_string(),
    ] {
        let r = get(addr, &target).await;
        assert_eq!(r.status, 200, "{target}: {r:?}");
        assert_eq!(r.body, MANIFEST);
        assert_eq!(
            r.header("content-type"),
            Some(crate::store::oci::MANIFEST_MEDIA_TYPE)
        );
        assert_eq!(r.header("docker-content-digest"), Some(digest.as_str()));
        assert_eq!(
            r.header("content-length"),
            Some(&*MANIFEST.len().to_string())
        );
        assert_eq!(r.header("etag"), Some(&*format!("\"{digest}\"")));
        assert_eq!(r.header("x-ferry-generation"), Some("g1"));
    }
    let r = send(addr, "HEAD", "/v2/library/demo/manifests/v1", &[]).await;
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert_eq!(r.header("docker-content-digest"), Some(digest.as_str()));
    assert_eq!(
        r.header("content-length"),
        Some(&*MANIFEST.len().to_string())
    );
    let r = send(
        addr,
        "GET",
        "/v2/library/demo/manifests/v1",
        &[("If-None-Match", &format!("\"{digest}\""))],
    )
    .await;
    assert_eq!(r.status, 304);

    // Media types from the JSON when it has no mediaType.
    let r = get(addr, "/v2/library/demo/manifests/bare").await;
    assert_eq!(r.body, BARE_MANIFEST);
    assert_eq!(
        r.header("content-type"),
        Some(crate::store::oci::MANIFEST_MEDIA_TYPE)
    );
    let r = get(addr, "/v2/library/demo/manifests/index").await;
    assert_eq!(r.body, BARE_INDEX);
    assert_eq!(
        r.header("content-type"),
        Some(crate::store::oci::INDEX_MEDIA_TYPE)
    );

    // A repository in a later source too: the first source's tag wins;
    // one only in the later source is found there.
    assert_eq!(
        get(addr, "/v2/other/manifests/latest").await.body,
        BARE_MANIFEST
    );

    for (target, status, code) in [
        ("/v2/library/demo/manifests/nope", 404, "MANIFEST_UNKNOWN"),
        ("/v2/library/demo/manifests/-bad", 404, "MANIFEST_UNKNOWN"),
        ("/v2/nobody/manifests/v1", 404, "NAME_UNKNOWN"),
        ("/v2/library/manifests/v1", 404, "NAME_UNKNOWN"),
        ("/v2/Library/demo/manifests/v1", 400, "NAME_INVALID"),
        (
            "/v2/library/demo/manifests/sha256:abc",
            400,
            "DIGEST_INVALID",
        ),
    ] {
        let r = get(addr, target).await;
        assert_eq!(
            (r.status, error_code(&r).as_str()),
            (status, code),
            "{target}"
        );
        assert_eq!(
            r.header("docker-distribution-api-version"),
            Some("registry/2.0")
        );
    }
    let missing = format!("/v2/library/demo/manifests/sha256:{}", hex_of(b"nothing"));
    assert_eq!(error_code(&get(addr, &missing).await), "MANIFEST_UNKNOWN");
    // A blob is not a manifest.
    let blob = format!("/v2/library/demo/manifests/sha256:{}", hex_of(BLOB));
    assert_eq!(get(addr, &blob).await.status, 404);
}

#[tokio::test]
async fn oci_blobs_with_ranges() {
    let (_s, addr) = served_oci().await;
    let digest = format!("sha256:{}", hex_of(BLOB));
    let target = format!("/v2/library/demo/blobs/{digest}");
    let r = get(addr, &target).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, BLOB);
    assert_eq!(r.header("docker-content-digest"), Some(digest.as_str()));
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    let r = send(addr, "GET", &target, &[("Range", "bytes=2-6")]).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &BLOB[2..=6]);
    assert_eq!(r.header("docker-content-digest"), Some(digest.as_str()));
    let r = send(addr, "HEAD", &target, &[]).await;
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert_eq!(r.header("content-length"), Some(&*BLOB.len().to_string()));

    // A manifest can be fetched as a blob.
    let m = format!("/v2/library/demo/blobs/sha256:{}", hex_of(MANIFEST));
    assert_eq!(get(addr, &m).await.body, MANIFEST);

    let missing = format!("/v2/library/demo/blobs/sha256:{}", hex_of(b"nothing"));
    let r = get(addr, &missing).await;
    assert_eq!((r.status, error_code(&r).as_str()), (404, "BLOB_UNKNOWN"));
    let r = send(addr, "HEAD", &missing, &[]).await;
    assert_eq!(r.status, 404);
    let r = get(addr, "/v2/library/demo/blobs/md5:00").await;
    assert_eq!(error_code(&r), "DIGEST_INVALID");
    // A blob of a source that does not hold the repository.
    let r = get(addr, &format!("/v2/other/blobs/{digest}")).await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn oci_tags_and_catalog_paginate() {
    let (_s, addr) = served_oci().await;
    let json = |r: &Reply| -> serde_json::Value { serde_json::from_slice(&r.body).unwrap() };
    let r = get(addr, "/v2/library/demo/tags/list").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        json(&r),
        serde_json::json!({"name": "library/demo", "tags": ["bare", "index", "v1"]})
    );
    assert_eq!(r.header("link"), None);

    let r = get(addr, "/v2/library/demo/tags/list?n=2").await;
    assert_eq!(json(&r)["tags"], serde_json::json!(["bare", "index"]));
    assert_eq!(
        r.header("link"),
        Some("</v2/library/demo/tags/list?n=2&last=index>; rel=\"next\"")
    );
    let r = get(addr, "/v2/library/demo/tags/list?n=2&last=index").await;
    assert_eq!(json(&r)["tags"], serde_json::json!(["v1"]));
    assert_eq!(r.header("link"), None);
    let r = get(addr, "/v2/library/demo/tags/list?n=0").await;
    assert_eq!(json(&r)["tags"], serde_json::json!([]));
    let r = get(addr, "/v2/library/demo/tags/list?n=x").await;
    assert_eq!(r.status, 400);
    let r = get(addr, "/v2/nobody/tags/list").await;
    assert_eq!(error_code(&r), "NAME_UNKNOWN");

    let r = get(addr, "/v2/_catalog").await;
    assert_eq!(
        json(&r),
        serde_json::json!({"repositories": ["library/demo", "library/demo/sub", "other", "zeta"]})
    );
    let r = get(addr, "/v2/_catalog?n=3").await;
    assert_eq!(
        json(&r)["repositories"],
        serde_json::json!(["library/demo", "library/demo/sub", "other"])
    );
    assert_eq!(
        r.header("link"),
        Some("</v2/_catalog?n=3&last=other>; rel=\"next\"")
    );
    let r = get(addr, "/v2/_catalog?n=3&last=other").await;
    assert_eq!(json(&r)["repositories"], serde_json::json!(["zeta"]));
    assert_eq!(r.header("link"), None);
}

#[tokio::test]
async fn oci_before_the_first_import() {
    let s = store();
    let addr = start(&s.layout).await;
    assert_eq!(get(addr, "/v2/").await.status, 200);
    assert_eq!(get(addr, "/v2/a/manifests/v1").await.status, 503);
}

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
