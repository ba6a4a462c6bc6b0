//! `/apt-site/<source>/`: the site-signed filtered view of an apt source
//! (see `store::apt`). `dists/...` is read from `GEN/apt-site/<source>/`,
//! the small index and release files the store wrote for this generation;
//! `pool/...` is the source's own tree, answered like `/apt/<source>/pool/...`
//! (ranges, ETags), so both views hand out the same debs.
//!
//! The path is percent-decoded and checked with the protocol's path rules
//! before it touches the filesystem, as everywhere in `serve`.

use super::generation::Server;
use super::request::{decode, object_path, source_name, Req};
use super::response::{not_found, server_error, with_generation};
use super::tree::tree;
use crate::store::apt::GEN_APT_SITE;
use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use ferry_protocol::catalog::SourceKind;

/// The URL prefix of the filtered views.
pub(super) const PREFIX: &str = "/apt-site/";

/// Answers `GET`/`HEAD` of `req.path` (which starts with [`PREFIX`]).
pub(super) async fn site(server: &Server, req: Req<'_>) -> Response {
    let raw = req.path;
    let decoded = match decode(raw, &raw[PREFIX.len()..]) {
        Ok(d) => d,
        Err(e) => return e.response(),
    };
    let Some((source, path)) = decoded.split_once('/') else {
        return not_found(raw);
    };
    if let Err(e) = source_name(raw, source).and_then(|()| object_path(raw, path)) {
        return e.response();
    }
    let g = match server.current().await {
        Ok(g) => g,
        Err(r) => return r,
    };
    if g.files.kind_of(source) != Some(SourceKind::Apt) {
        return with_generation(not_found(raw), &g);
    }
    if path.starts_with("pool/") {
        return with_generation(tree(server, &g, SourceKind::Apt, &decoded, req).await, &g);
    }
    if !path.starts_with("dists/") {
        return with_generation(not_found(raw), &g);
    }
    let file = g.files.derived_path(GEN_APT_SITE, source, path);
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
