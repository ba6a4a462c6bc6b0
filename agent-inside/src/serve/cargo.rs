//! The sparse registry protocol over the cargo sources, under
//! `/cargo/<source>/` (what `registry = "sparse+http://HOST/cargo/<source>/"`
//! reads; `store::cargo::cargo_config_toml` writes that client setting).
//!
//! - `/cargo/<source>/config.json`: written here, per request:
//!   `{"dl": "<base>/cargo/<source>/crates/{crate}/{crate}-{version}.crate",
//!   "api": "<base>/cargo/<source>"}`, `<base>` being `<scheme>://<Host>`
//!   of the request (`https` when serve speaks TLS or `X-Forwarded-Proto`
//!   says so behind a proxy, else `http`), so downloads come back to the name and port the client
//!   used. A request without a usable `Host` gets 400.
//! - Everything else (index files such as `/cargo/<source>/se/rd/serde`, the
//!   crate files under `crates/`) is the generic tree of files
//!   (`serve::tree`), with `ETag` and conditional requests, which cargo's
//!   sparse protocol uses to revalidate its index cache; a crate the store
//!   lacks is 404, which cargo reads as "no such crate".

use super::generation::{Generation, Server};
use super::request::{source_name, Req};
use super::response::{text, with_body};
use super::tree::tree;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use ferry_formats::cargo::RegistryConfig;
use ferry_protocol::catalog::SourceKind;

/// Everything under `/cargo/`; `decoded` is the percent-decoded path after
/// `/cargo/`.
pub(super) async fn route(
    server: &Server,
    g: &Generation,
    decoded: &str,
    req: Req<'_>,
) -> Response {
    if let Some((source, "config.json")) = decoded.split_once('/') {
        if source_name(req.path, source).is_ok()
            && g.files.kind_of(source) == Some(SourceKind::Cargo)
        {
            return config_json(source, req.headers, server.https);
        }
    }
    tree(server, g, SourceKind::Cargo, decoded, req).await
}

/// `config.json` for `source`, pointing at the URL the client used.
fn config_json(source: &str, headers: &HeaderMap, https: bool) -> Response {
    let Some(base) = public_base(headers, https) else {
        return text(
            StatusCode::BAD_REQUEST,
            "config.json needs a Host header naming this server (host or host:port)",
        );
    };
    let config = RegistryConfig {
        dl: format!("{base}/cargo/{source}/crates/{{crate}}/{{crate}}-{{version}}.crate"),
        api: Some(format!("{base}/cargo/{source}")),
        auth_required: false,
    };
    let body = serde_json::to_string(&config).expect("a registry config serializes");
    with_body(StatusCode::OK, "application/json", body)
}

/// `<scheme>://<host[:port]>` from the request: `Host` (letters, digits,
/// `.`, `-`, `:`, `[`, `]` only), and `https` when serve speaks it
/// (`https`) or `X-Forwarded-Proto` says so behind a proxy; else `http`.
pub(super) fn public_base(headers: &HeaderMap, https: bool) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?.trim();
    let host_ok = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    if !host_ok {
        return None;
    }
    let scheme = match headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
    {
        Some(p) if p == "https" => "https",
        _ if https => "https",
        _ => "http",
    };
    Some(format!("{scheme}://{host}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_base_url_comes_from_host_and_forwarded_proto() {
        let mut h = HeaderMap::new();
        assert_eq!(public_base(&h, false), None);
        h.insert(header::HOST, HeaderValue::from_static("ferry.example:8080"));
        assert_eq!(
            public_base(&h, false).as_deref(),
            Some("http://ferry.example:8080")
        );
        assert_eq!(
            public_base(&h, true).as_deref(),
            Some("https://ferry.example:8080"),
            "serving TLS"
        );
        h.insert("x-forwarded-proto", HeaderValue::from_static("HTTPS"));
        assert_eq!(
            public_base(&h, false).as_deref(),
            Some("https://ferry.example:8080")
        );
        h.insert(header::HOST, HeaderValue::from_static("[::1]:80"));
        assert_eq!(public_base(&h, false).as_deref(), Some("https://[::1]:80"));
        h.insert(header::HOST, HeaderValue::from_static("evil\"/x"));
        assert_eq!(public_base(&h, false), None);
    }
}
