//! `ferry-in serve`'s `/metrics`, scraped as Prometheus would (text format
//! 0.0.4, parsed here line by line): request, byte and error counters move
//! with the requests made, by store, on the main address and on a store's
//! own listener; the applied sequence, the newest bundle's age and the held
//! bundles follow imports.

use ferry_e2e::*;
use std::collections::BTreeMap;

/// `series{labels} value` lines of a scrape, by series; panics on a line
/// that is neither a comment nor a sample.
fn scrape(url: &str) -> BTreeMap<String, f64> {
    let (body, head) = curl_response(&[url]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    let text = String::from_utf8(body).unwrap();
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix('#') {
            assert!(
                rest.starts_with(" HELP ") || rest.starts_with(" TYPE "),
                "{line}"
            );
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a value: {line}"));
        assert!(out.insert(series.to_string(), v).is_none(), "twice: {line}");
    }
    out
}

fn get(m: &BTreeMap<String, f64>, series: &str) -> f64 {
    *m.get(series)
        .unwrap_or_else(|| panic!("no {series} in {m:#?}"))
}

#[test]
fn metrics_count_requests_bytes_errors_and_follow_imports() {
    if !have_tools(&current_test(), &["curl"]) {
        return;
    }
    let env = Env::new();
    let blob = random_bytes(300_000, 5);
    env.write_src("blob.bin", &blob);
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();
    let (_p, addrs, log) = spawn_serve(
        &env.in_state,
        &["--listen", "127.0.0.1:0", "--listen", "files=127.0.0.1:0"],
    );
    assert_eq!(addrs.len(), 2, "{}", log.lock().unwrap());
    let (main, files) = (
        format!("http://{}", addrs[0]),
        format!("http://{}", addrs[1]),
    );

    let before = scrape(&format!("{main}/metrics"));
    assert_eq!(get(&before, "ferry_applied_sequence"), 1.0);
    assert_eq!(get(&before, "ferry_held_bundles"), 0.0);
    let age = get(&before, "ferry_newest_bundle_age_seconds");
    assert!((0.0..600.0).contains(&age), "{age}");

    assert_eq!(curl(&[&format!("{main}/files/tools/blob.bin")]), blob);
    assert_eq!(curl(&[&format!("{files}/tools/blob.bin")]), blob);
    let (_, head) = curl_response(&[&format!("{main}/files/tools/missing")]);
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    let (_, head) = curl_response(&[&format!("{main}/v2/nothing/manifests/x")]);
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");

    // The store's own listener answers /metrics too: one set of counters.
    let after = scrape(&format!("{files}/metrics"));
    let moved = |series: &str| get(&after, series) - get(&before, series);
    assert_eq!(moved("ferry_serve_requests_total{store=\"files\"}"), 3.0);
    assert_eq!(
        moved("ferry_serve_errors_total{store=\"files\",class=\"4xx\"}"),
        1.0
    );
    assert_eq!(
        moved("ferry_serve_errors_total{store=\"files\",class=\"5xx\"}"),
        0.0
    );
    let bytes = moved("ferry_serve_response_bytes_total{store=\"files\"}");
    assert!(bytes >= 2.0 * blob.len() as f64, "{bytes}");
    assert_eq!(moved("ferry_serve_requests_total{store=\"registry\"}"), 1.0);
    assert_eq!(
        moved("ferry_serve_errors_total{store=\"registry\",class=\"4xx\"}"),
        1.0
    );
    // The first scrape counts as a request of ferry's own.
    assert!(moved("ferry_serve_requests_total{store=\"ferry\"}") >= 1.0);

    // A gap: bundle 3 without bundle 2 is held, and the scrape says so.
    env.write_src("blob.bin", b"two");
    env.export("m2").expect_ok();
    env.write_src("blob.bin", b"three");
    env.export("m3").expect_ok();
    env.import("m3").expect_ok();
    let held = scrape(&format!("{main}/metrics"));
    assert_eq!(get(&held, "ferry_held_bundles"), 1.0);
    assert_eq!(get(&held, "ferry_applied_sequence"), 1.0);
    env.import("m2").expect_ok();
    let caught_up = scrape(&format!("{main}/metrics"));
    assert_eq!(get(&caught_up, "ferry_applied_sequence"), 3.0);
    assert_eq!(get(&caught_up, "ferry_held_bundles"), 0.0);
}
