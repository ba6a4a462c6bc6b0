//! `/metrics`: Prometheus's text exposition format 0.0.4, written by hand
//! (docs/serve.md, "Metrics").
//!
//! Counted here, per store (`registry` for `/v2/`, `files`, `apt` (with
//! `/apt-site/`), `yum`, `pypi`, `helm`, `cargo`, `npm`, `ferry` for `/`,
//! `/healthz`, `/ferry/health` and `/metrics`, `other` for any other path):
//! requests, the body bytes sent (counted as the body is polled, so a
//! client that hangs up mid-file counts what was sent), and 4xx and 5xx
//! responses. Read from the state directory on each scrape (`serve` never
//! opens the database): the applied sequence and the newest bundle's age
//! (`freshness.json`), the held bundles (`held/`), and the diode receiver's
//! counters (`diode-receive.json`, as `ferry-in receive` last wrote them).

use super::generation::Server;
use crate::layout::Layout;
use axum::body::{Body, Bytes, HttpBody};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use http_body::{Frame, SizeHint};
use std::fmt::Write as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

/// The `store` label's values, in the order they are written.
const STORES: [&str; 11] = [
    "registry", "files", "apt", "yum", "pypi", "helm", "cargo", "npm", "go", "ferry", "other",
];

/// The content type of the text format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Default)]
struct StoreCounters {
    requests: AtomicU64,
    bytes: Arc<AtomicU64>,
    client_errors: AtomicU64,
    server_errors: AtomicU64,
}

/// The request counters of one `serve` process, shared by every listener.
#[derive(Default)]
pub(super) struct Metrics {
    stores: [StoreCounters; STORES.len()],
}

/// Which store a (listener-rewritten) request path is in: an index of [`STORES`].
fn store_of(path: &str) -> usize {
    let other = STORES.len() - 1;
    let idx = |name: &str| STORES.iter().position(|s| *s == name).unwrap_or(other);
    if path == "/v2" || path.starts_with("/v2/") {
        return idx("registry");
    }
    if matches!(path, "/" | "/healthz" | "/ferry/health" | "/metrics") {
        return idx("ferry");
    }
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    match first {
        "apt-site" => idx("apt"),
        "files" | "apt" | "yum" | "pypi" | "helm" | "cargo" | "npm" | "go" => idx(first),
        _ => idx("other"),
    }
}

impl Metrics {
    /// Counts `response` to a request for `path`; its body counts the bytes
    /// it yields.
    pub(super) fn record(&self, path: &str, response: Response) -> Response {
        let c = &self.stores[store_of(path)];
        c.requests.fetch_add(1, Ordering::Relaxed);
        let status = response.status();
        if status.is_client_error() {
            c.client_errors.fetch_add(1, Ordering::Relaxed);
        } else if status.is_server_error() {
            c.server_errors.fetch_add(1, Ordering::Relaxed);
        }
        let counter = c.bytes.clone();
        response.map(|inner| Body::new(Counted { inner, counter }))
    }
}

/// A body that adds the length of every data frame to a counter.
struct Counted {
    inner: Body,
    counter: Arc<AtomicU64>,
}

impl HttpBody for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                self.counter.fetch_add(data.len() as u64, Ordering::Relaxed);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The `/metrics` response.
pub(super) fn response(server: &Server) -> Response {
    let body = render(
        &server.metrics,
        &server.layout,
        ferry_agent_common::now_unix(),
    );
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::OK;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    r
}

/// One metric family: its `# HELP` and `# TYPE` lines, then its samples.
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, String)]) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

/// The exposition text at `now` (Unix seconds).
fn render(m: &Metrics, layout: &Layout, now: u64) -> String {
    let mut out = String::new();
    let per_store = |f: &dyn Fn(&StoreCounters) -> u64| -> Vec<(String, String)> {
        STORES
            .iter()
            .zip(&m.stores)
            .map(|(s, c)| (format!("{{store=\"{s}\"}}"), f(c).to_string()))
            .collect()
    };
    family(
        &mut out,
        "ferry_serve_requests_total",
        "counter",
        "Requests answered, by store.",
        &per_store(&|c| c.requests.load(Ordering::Relaxed)),
    );
    family(
        &mut out,
        "ferry_serve_response_bytes_total",
        "counter",
        "Response body bytes sent, by store.",
        &per_store(&|c| c.bytes.load(Ordering::Relaxed)),
    );
    let mut errors = Vec::new();
    for (s, c) in STORES.iter().zip(&m.stores) {
        for (class, n) in [("4xx", &c.client_errors), ("5xx", &c.server_errors)] {
            errors.push((
                format!("{{store=\"{s}\",class=\"{class}\"}}"),
                n.load(Ordering::Relaxed).to_string(),
            ));
        }
    }
    family(
        &mut out,
        "ferry_serve_errors_total",
        "counter",
        "Responses with a 4xx or 5xx status, by store.",
        &errors,
    );
    state_metrics(&mut out, layout, now);
    diode_metrics(&mut out, layout);
    out
}

/// The applied bundle's sequence and age, and the held bundles.
fn state_metrics(out: &mut String, layout: &Layout, now: u64) {
    let one = |v: String| vec![(String::new(), v)];
    if let Some(r) = crate::freshness::read(layout) {
        family(
            out,
            "ferry_applied_sequence",
            "gauge",
            "The sequence of the bundle applied last.",
            &one(r.sequence.to_string()),
        );
        family(
            out,
            "ferry_newest_bundle_created_timestamp_seconds",
            "gauge",
            "When the outside made the bundle applied last (Unix time).",
            &one(r.created.to_string()),
        );
        family(
            out,
            "ferry_newest_bundle_age_seconds",
            "gauge",
            "How old the bundle applied last is.",
            &one(now.saturating_sub(r.created).to_string()),
        );
        family(
            out,
            "ferry_bundle_warn_after_seconds",
            "gauge",
            "[trust] warn_after: the age past which /ferry/health answers 503.",
            &one(r.warn_after_secs.to_string()),
        );
    }
    let held = std::fs::read_dir(layout.held())
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("bundle-"))
                .count()
        })
        .unwrap_or(0);
    family(
        out,
        "ferry_held_bundles",
        "gauge",
        "Bundles held in STATE/held/ waiting for a gap to fill.",
        &one(held.to_string()),
    );
}

/// The diode receiver's counters, as `ferry-in receive` last wrote them.
fn diode_metrics(out: &mut String, layout: &Layout) {
    let Some(v) = std::fs::read(layout.root.join(crate::diode::STATUS_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
    else {
        return;
    };
    let one = |v: String| vec![(String::new(), v)];
    if let Some(counters) = v["counters"].as_object() {
        for (key, value) in counters {
            let name = key
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect::<String>();
            match (key.as_str(), value.as_u64(), value.as_f64()) {
                ("loss", _, Some(f)) => family(
                    out,
                    "ferry_diode_loss_ratio",
                    "gauge",
                    "The share of datagrams the link lost, as measured.",
                    &one(f.to_string()),
                ),
                ("decode_secs", _, Some(f)) => family(
                    out,
                    "ferry_diode_decode_seconds_total",
                    "counter",
                    "Time spent rebuilding segments.",
                    &one(f.to_string()),
                ),
                (_, Some(n), _) => family(
                    out,
                    &format!("ferry_diode_{name}_total"),
                    "counter",
                    &format!("The diode receiver's {key} counter (ferry-in receive)."),
                    &one(n.to_string()),
                ),
                _ => {}
            }
        }
    }
    let len = |k: &str| v[k].as_array().map_or(0, Vec::len).to_string();
    family(
        out,
        "ferry_diode_receiving_bundles",
        "gauge",
        "Bundles the diode receiver holds partly.",
        &one(len("receiving")),
    );
    family(
        out,
        "ferry_diode_received_bundles",
        "gauge",
        "Bundles the running diode receiver has completed.",
        &one(len("received")),
    );
    if let Some(u) = v["updated"].as_u64() {
        family(
            out,
            "ferry_diode_status_updated_timestamp_seconds",
            "gauge",
            "When ferry-in receive last wrote its status (Unix time).",
            &one(u.to_string()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_fall_into_their_store() {
        let name = |p: &str| STORES[store_of(p)];
        assert_eq!(name("/v2/"), "registry");
        assert_eq!(name("/v2/a/blobs/sha256:00"), "registry");
        assert_eq!(name("/apt-site/deb/dists/x/Release"), "apt");
        assert_eq!(name("/yum/el/repodata/repomd.xml"), "yum");
        assert_eq!(name("/go/mods/sumdb/db.test/latest"), "go");
        assert_eq!(name("/metrics"), "ferry");
        assert_eq!(name("/yummy"), "other");
    }

    #[test]
    fn every_sample_line_is_name_labels_value() {
        let dir = std::env::temp_dir().join(format!("ferry-metrics-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("held/bundle-7")).unwrap();
        // As `ferry-in receive` writes it (diode::Receive::save_status).
        std::fs::write(
            dir.join(crate::diode::STATUS_FILE),
            r#"{"updated": 5, "counters": {"packets": 10, "garbage": 1, "loss": 0.25,
               "decode_secs": 1.5}, "receiving": [{"sequence": 3}], "received": []}"#,
        )
        .unwrap();
        let layout = Layout::new(&dir);
        let m = Metrics::default();
        let _ = m.record("/yum/el/x", Response::new(Body::empty()));
        let text = render(&m, &layout, 0);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(text.contains("ferry_serve_requests_total{store=\"yum\"} 1\n"));
        for line in [
            "ferry_diode_packets_total 10",
            "ferry_diode_garbage_total 1",
            "ferry_diode_loss_ratio 0.25",
            "ferry_diode_decode_seconds_total 1.5",
            "ferry_diode_receiving_bundles 1",
            "ferry_diode_received_bundles 0",
            "ferry_diode_status_updated_timestamp_seconds 5",
        ] {
            assert!(text.contains(&format!("{line}\n")), "no {line}:\n{text}");
        }
        assert!(text.contains("ferry_held_bundles 1\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (series, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
            assert!(series.starts_with("ferry_"), "{line}");
        }
    }
}
