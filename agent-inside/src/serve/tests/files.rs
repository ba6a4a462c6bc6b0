//! Files, ranges, conditional requests, links, safety, listings and
//! generations.

use super::*;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_generation_deleted_mid_request_is_answered_from_the_new_one_never_wrongly() {
    // What an import does without `[store] keep_previous`: switch `current`
    // to the new generation, then delete the one before, while clients read.
    let body = |n: usize| format!("generation {n:04}\n").repeat(20_000).into_bytes();
    let s = store();
    write_gen(
        &s.layout,
        "g0000",
        &[("src", "a.txt", &body(0))],
        &[],
        false,
    );
    set_current(&s.layout, "g0000");
    let addr = start(&s.layout).await;
    let layout = s.layout.clone();
    let switches = 40;
    let switcher = tokio::task::spawn_blocking(move || {
        for n in 1..=switches {
            let name = format!("g{n:04}");
            write_gen(&layout, &name, &[("src", "a.txt", &body(n))], &[], false);
            set_current(&layout, &name);
            std::fs::remove_dir_all(layout.gen(&format!("g{:04}", n - 1))).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    });
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(tokio::spawn(async move {
            let (mut ok, mut retry) = (0, 0);
            for _ in 0..60 {
                let r = get(addr, "/files/src/a.txt").await;
                match r.status {
                    200 => {
                        let g = r.header("x-ferry-generation").expect("a generation");
                        let n: usize = g[1..].parse().unwrap();
                        assert!(r.body == body(n), "generation {g} sent another body");
                        ok += 1;
                    }
                    503 => {
                        assert_eq!(r.header("retry-after"), Some("1"));
                        retry += 1;
                    }
                    s => panic!("status {s}: {}", r.text()),
                }
            }
            (ok, retry)
        }));
    }
    let mut ok = 0;
    for c in clients {
        ok += c.await.unwrap().0;
    }
    switcher.await.unwrap();
    assert!(ok > 0);
}
