//! Pagination, timeouts, the connection cap, and the latency of a small
//! file while the server is loaded. Loopback only; every loop is bounded.

use super::*;
use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

/// Held by the tests that load the machine (a 48 MiB download, the listing
/// storm), so the latency test does not measure the other one.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A blocking GET on a new connection (`Connection: close`).
fn get_blocking(addr: SocketAddr, target: &str) -> Reply {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    parse_reply(&raw)
}

/// Reads from `s` until the server closes it (EOF or reset), at most `bound`
/// long; the bytes read and whether it was closed in that time.
async fn read_until_closed(s: &mut TcpStream, bound: Duration) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let closed = tokio::time::timeout(bound, async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    (got, closed)
}

/// A generation whose `big/` directory holds `n` files (catalog only: no
/// listing touches the files) and `small.txt`, a real file.
fn big_directory(s: &Store, n: usize) {
    write_gen(&s.layout, "g1", &[("src", "small.txt", HELLO)], &[], false);
    let index = s.layout.gen("g1").join(GEN_INDEX);
    let mut catalog = Catalog::from_bytes(&std::fs::read(&index).unwrap()).unwrap();
    let one = file_object(b"x");
    for i in 0..n {
        catalog
            .objects
            .insert(key("src", &format!("big/f{i:07}")), one.clone());
    }
    std::fs::write(&index, catalog.to_bytes()).unwrap();
    set_current(&s.layout, "g1");
}

#[tokio::test]
async fn listings_are_paginated_with_a_marker() {
    let s = store();
    let names = ["a", "b.txt", "c/x", "c/y/z", "c-d", "e", "f/g"];
    let files: Vec<(&str, &str, &[u8])> = names.iter().map(|n| ("src", *n, HELLO)).collect();
    write_gen(&s.layout, "g1", &files, &[("src", "l", "a")], false);
    set_current(&s.layout, "g1");
    let small = start(&s.layout).await;
    let whole = get(small, "/files/src/").await;
    assert_eq!(whole.status, 200);
    assert!(whole.header("link").is_none(), "{whole:?}");
    assert!(!whole.text().contains("next page"), "{}", whole.text());

    let paged = start_with(
        &s.layout,
        ServeSettings {
            page_size: 2,
            ..ServeSettings::default()
        },
    )
    .await;
    let mut seen = Vec::new();
    let mut target = "/files/src/".to_string();
    for _ in 0..10 {
        let r = get(paged, &target).await;
        assert_eq!(r.status, 200, "{target}: {r:?}");
        let html = r.text();
        let hrefs: Vec<String> = html
            .split("<li><a href=\"")
            .skip(1)
            .map(|l| l.split('"').next().unwrap().to_string())
            .filter(|h| h != "../")
            .collect();
        assert!(hrefs.len() <= 2, "{html}");
        seen.extend(hrefs);
        match r.header("link") {
            None => break,
            Some(link) => {
                assert!(html.contains("next page"), "{html}");
                target = link
                    .strip_prefix('<')
                    .and_then(|l| l.split_once('>'))
                    .map(|(t, _)| t.to_string())
                    .unwrap_or_else(|| panic!("Link {link:?}"));
                assert!(target.starts_with("/files/src/?marker="), "{target}");
            }
        }
    }
    // The pages together are the whole listing, in its order, each once.
    let all: Vec<String> = whole
        .text()
        .split("<li><a href=\"")
        .skip(1)
        .map(|l| l.split('"').next().unwrap().to_string())
        .filter(|h| h != "../")
        .collect();
    assert_eq!(seen, all);
    assert_eq!(seen.len(), 7, "{seen:?}");

    let r = get(paged, "/files/src/?marker=%ff").await;
    assert_eq!(r.status, 400, "{r:?}");
}

#[tokio::test]
async fn a_partial_header_is_closed_after_the_header_timeout() {
    let s = store();
    write_gen(&s.layout, "g1", &[("src", "a", b"A")], &[], false);
    set_current(&s.layout, "g1");
    let settings = ServeSettings {
        header_timeout: Duration::from_millis(300),
        ..ServeSettings::default()
    };
    let addr = start_with(&s.layout, settings).await;
    let mut partial = TcpStream::connect(addr).await.unwrap();
    partial
        .write_all(b"GET /files/src/a HTTP/1.1\r\nHost: te")
        .await
        .unwrap();
    let mut silent = TcpStream::connect(addr).await.unwrap();
    // Far beyond the timeout, far short of forever.
    let (got, closed) = read_until_closed(&mut partial, Duration::from_secs(20)).await;
    assert!(closed, "a partial header stayed open: {got:?}");
    assert!(!String::from_utf8_lossy(&got).contains(" 200 "), "{got:?}");
    let (_, closed) = read_until_closed(&mut silent, Duration::from_secs(20)).await;
    assert!(closed, "a silent connection stayed open");
    // A whole request is still answered.
    assert_eq!(get(addr, "/files/src/a").await.body, b"A");
}

#[tokio::test]
async fn a_stalled_download_is_closed_after_the_idle_timeout() {
    let _heavy = HEAVY.lock().await;
    let s = store();
    let big = vec![7u8; 48 << 20];
    write_gen(&s.layout, "g1", &[("src", "big", &big)], &[], false);
    set_current(&s.layout, "g1");
    let settings = ServeSettings {
        idle_timeout: Duration::from_millis(300),
        ..ServeSettings::default()
    };
    let addr = start_with(&s.layout, settings).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"GET /files/src/big HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    // Not reading: the socket buffers fill and the server's writes stall
    // well before 48 MiB, for longer than the idle timeout.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (got, closed) = read_until_closed(&mut c, Duration::from_secs(60)).await;
    assert!(closed);
    assert!(
        got.len() < big.len(),
        "the whole file arrived ({} bytes): the stalled connection was kept",
        got.len()
    );
}

#[tokio::test]
async fn connections_over_the_cap_are_refused_and_the_others_still_served() {
    let s = store();
    write_gen(&s.layout, "g1", &[("src", "a", b"A")], &[], false);
    set_current(&s.layout, "g1");
    let cap = 20;
    let settings = ServeSettings {
        max_connections: cap,
        ..ServeSettings::default()
    };
    let addr = start_with(&s.layout, settings).await;
    let mut open = Vec::new();
    for _ in 0..cap {
        open.push(TcpStream::connect(addr).await.unwrap());
    }
    for _ in 0..10 {
        let mut extra = TcpStream::connect(addr).await.unwrap();
        let _ = extra
            .write_all(b"GET /files/src/a HTTP/1.1\r\nHost: t\r\n\r\n")
            .await;
        let (got, closed) = read_until_closed(&mut extra, Duration::from_secs(20)).await;
        assert!(closed, "a connection over the cap was kept");
        let got = String::from_utf8_lossy(&got);
        assert!(got.is_empty() || got.starts_with("HTTP/1.1 503 "), "{got}");
    }
    // Every connection under the cap is still served, twice (kept alive).
    for c in &mut open {
        for _ in 0..2 {
            c.write_all(b"GET /files/src/a HTTP/1.1\r\nHost: t\r\n\r\n")
                .await
                .unwrap();
            let mut buf = vec![0u8; 4096];
            let mut got = Vec::new();
            while !got.ends_with(b"\r\n\r\nA") {
                let n = c.read(&mut buf).await.unwrap();
                assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
                got.extend_from_slice(&buf[..n]);
            }
            assert!(got.starts_with(b"HTTP/1.1 200 "), "{got:?}");
        }
    }
    // A place freed is taken again.
    drop(open.pop());
    let mut served = false;
    for _ in 0..100 {
        if get(addr, "/files/src/a").await.status == 200 {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "a freed place was never given to a new connection");
}

/// GETs a listing page and returns the next page's target, if any, reading
/// no more of the page than it must (the listing clients should load the
/// server, not the CPU the server shares with them).
fn next_page(addr: SocketAddr, target: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let head = String::from_utf8_lossy(&raw[..raw.len().min(1024)]).into_owned();
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    let link = head.split("\r\n").find_map(|l| l.strip_prefix("link: <"))?;
    Some(link[..link.find('>')?].to_string())
}

/// The median time of `n` small-file GETs, each on a new connection.
fn median_latency(addr: SocketAddr, n: usize) -> Duration {
    let mut times: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            let r = get_blocking(addr, "/files/src/small.txt");
            let took = t.elapsed();
            assert_eq!(r.body, HELLO, "{r:?}");
            took
        })
        .collect();
    times.sort();
    times[n / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_file_stays_fast_under_idle_connections_and_a_listing_storm() {
    const IDLE: usize = 1000;
    const STORM: usize = 32;
    let (limit, _) = super::super::raise_open_file_limit();
    if limit.is_some_and(|l| l < 2 * IDLE as u64 + 400) {
        println!("skipped: the open-file limit ({limit:?}) is too low for {IDLE} connections");
        return;
    }
    let _heavy = HEAVY.lock().await;
    let s = store();
    big_directory(&s, 200_000);
    let addr = start(&s.layout).await;
    let (base, loaded, page) = tokio::task::spawn_blocking(move || {
        // Warm: the catalog is loaded once.
        assert_eq!(get_blocking(addr, "/files/src/big/").status, 200);
        let base = median_latency(addr, 31);

        let idle: Vec<std::net::TcpStream> = (0..IDLE)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let storm: Vec<_> = (0..STORM)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut target = "/files/src/big/".to_string();
                    for _ in 0..200 {
                        if stop.load(std::sync::atomic::Ordering::Relaxed) {
                            break;
                        }
                        target = next_page(addr, &target)
                            .unwrap_or_else(|| "/files/src/big/".to_string());
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        let loaded = median_latency(addr, 31);
        // What a listing page (the work of the storm) takes meanwhile: a
        // file queued behind listings would take at least that long.
        let mut pages: Vec<Duration> = (0..11)
            .map(|_| {
                let t = Instant::now();
                assert!(next_page(addr, "/files/src/big/").is_some());
                t.elapsed()
            })
            .collect();
        pages.sort();
        let page = pages[pages.len() / 2];
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in storm {
            t.join().unwrap();
        }
        // The idle connections were all kept, and still answer.
        let mut first = &idle[0];
        write!(first, "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let mut buf = [0u8; 12];
        first.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"HTTP/1.1 200");
        drop(idle);
        // Unloaded again, after: the baseline is the slower of the two, so
        // what the rest of the machine does meanwhile is not counted as load.
        let base = base.max(median_latency(addr, 31));
        (base, loaded, page)
    })
    .await
    .unwrap();
    println!("small file: {base:?} unloaded, {loaded:?} with {IDLE} idle connections and {STORM} listing clients (a listing page {page:?})");
    // Fast as unloaded, or, on a machine busy with other work (the test
    // suite runs beside it), still well under a listing page: not queued
    // behind the storm.
    assert!(
        loaded < base * 20 || loaded * 4 < page,
        "a small file took {loaded:?} under load against {base:?} unloaded \
         and {page:?} for a listing page meanwhile"
    );
}

#[test]
fn the_connection_cap_leaves_room_for_a_file_per_connection() {
    assert_eq!(super::super::lifecycle::connections_allowed(1024), 448);
    for limit in [0, 10, 1024, 20_000] {
        let n = super::super::lifecycle::connections_allowed(limit) as u64;
        assert!(n >= 1);
        assert!(limit < 200 || 2 * n + 128 <= limit, "{limit}: {n}");
    }
}
