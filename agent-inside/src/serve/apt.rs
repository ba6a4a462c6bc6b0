//! `/apt-site/<source>/`: the site-signed filtered view of an apt source
//! (see `store::apt`). `dists/...` is read from `GEN/apt-site/<source>/`,
//! the small index and release files the store wrote for this generation;
//! `pool/...` is the source's own tree, answered like `/apt/<source>/pool/...`
//! (ranges, ETags), so both views hand out the same debs.
//!
//! The path is percent-decoded and checked with the protocol's path rules
//! before it touches the filesystem, as everywhere in `serve`.

use super::{not_found, server_error, text, tree, with_generation, Server};
use crate::store::apt::GEN_APT_SITE;
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use ferry_protocol::catalog::SourceKind;
use ferry_protocol::path::{check_path, check_source_name};

/// The URL prefix of the filtered views.
pub const PREFIX: &str = "/apt-site/";

/// Answers `GET`/`HEAD` of `raw` (which starts with [`PREFIX`]).
pub(super) async fn site(server: &Server, raw: &str, headers: &HeaderMap, head: bool) -> Response {
    let rest = &raw[PREFIX.len()..];
    let Some(decoded) = super::percent_decode(rest) else {
        return text(
            StatusCode::BAD_REQUEST,
            format!("bad path {raw}: invalid percent-encoding or not UTF-8"),
        );
    };
    let Some((source, path)) = decoded.split_once('/') else {
        return not_found(raw);
    };
    if let Err(e) = check_source_name(source) {
        return text(StatusCode::BAD_REQUEST, format!("bad path {raw}: {e}"));
    }
    if let Err(e) = check_path(path) {
        return text(StatusCode::BAD_REQUEST, format!("bad path {raw}: {e}"));
    }
    let g = match server.current().await {
        Ok(g) => g,
        Err(r) => return r,
    };
    if g.catalog.sources.get(source) != Some(&SourceKind::Apt) {
        return with_generation(not_found(raw), &g);
    }
    if path.starts_with("pool/") {
        return with_generation(
            tree(&g, SourceKind::Apt, rest, raw, headers, head).await,
            &g,
        );
    }
    if !path.starts_with("dists/") {
        return with_generation(not_found(raw), &g);
    }
    let file = g.dir.join(GEN_APT_SITE).join(source).join(path);
    let r = match tokio::fs::read(&file).await {
        Ok(bytes) => {
            let ct = if path.ends_with(".gz") {
                "application/gzip"
            } else {
                "text/plain; charset=utf-8"
            };
            let len = bytes.len();
            let mut r = Response::new(Body::from(bytes));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            r.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            r
        }
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                || e.kind() == std::io::ErrorKind::IsADirectory =>
        {
            not_found(raw)
        }
        Err(e) => server_error(format!(
            "generation {} cannot read {}: {e}",
            g.name,
            file.display()
        )),
    };
    with_generation(r, &g)
}
