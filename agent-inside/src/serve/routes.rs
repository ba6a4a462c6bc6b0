//! Routing: which handler answers a request (see the module docs of
//! `serve` for the routes), and what every response gets on the way out.

use super::generation::{Generation, Server};
use super::request::{decode, Req};
use super::response::{not_found, redirect, text, with_generation, X_FERRY_GENERATION};
use super::settings::ServeSettings;
use super::{apt, cargo, go, npm, oci, pypi, tree};
use crate::layout::Layout;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use ferry_protocol::catalog::SourceKind;
use std::sync::Arc;

/// The HTTP routes serving the store under `layout` (see the module docs),
/// with the default settings.
pub fn router(layout: Layout) -> Router {
    router_with(layout, &ServeSettings::default())
}

/// The HTTP routes serving the store under `layout`, with `settings`.
pub fn router_with(layout: Layout, settings: &ServeSettings) -> Router {
    router_for(Arc::new(Server::new(layout, settings)))
}

/// The HTTP routes over `server`'s state (shared by several listeners).
pub(super) fn router_for(server: Arc<Server>) -> Router {
    Router::new().fallback(handle).with_state(server)
}

/// How many times a request is answered again when the generation it was
/// answered from was replaced (and deleted) meanwhile.
const SWITCH_RETRIES: usize = 3;

async fn handle(
    State(server): State<Arc<Server>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    // An import deletes the generation before the current one once it has
    // switched `current` (unless `[store] keep_previous`): a request answered
    // from it may find its files gone. Files already open are read to the
    // end (Linux keeps unlinked files), and a file is only sent once opened,
    // so no body is ever wrong; an error or 404 from a generation that is no
    // longer current is answered again from the new one.
    for _ in 0..SWITCH_RETRIES {
        let r = answer(&server, &method, &uri, &headers).await;
        if !answered_from_replaced(&server, &r) {
            return server.metrics.record(uri.path(), r);
        }
    }
    let mut r = text(
        StatusCode::SERVICE_UNAVAILABLE,
        "the store switched generations while answering this request; try again",
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    server.metrics.record(uri.path(), r)
}

/// Whether `r` is a failure (404 or 5xx) answered from a generation that
/// `current` no longer names: it may have been deleted mid-request.
fn answered_from_replaced(server: &Server, r: &Response) -> bool {
    let failed = r.status() == StatusCode::NOT_FOUND || r.status().is_server_error();
    let Some(g) = r.headers().get(X_FERRY_GENERATION) else {
        return false;
    };
    failed && server.layout.current_gen_name().as_deref() != g.to_str().ok()
}

async fn answer(server: &Server, method: &Method, uri: &Uri, headers: &HeaderMap) -> Response {
    let head = method == Method::HEAD;
    let path = uri.path();
    if path == "/v2" || path.starts_with("/v2/") {
        let mut response = oci::v2(server, method, uri, headers, head).await;
        if head {
            *response.body_mut() = Body::empty();
        }
        return response;
    }
    if method != Method::GET && !head {
        let mut r = text(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method {method} is not allowed here; use GET or HEAD"),
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let req = Req {
        path,
        query: uri.query(),
        headers,
        head,
    };
    let mut response = route(server, req).await;
    if head {
        // Headers (Content-Length included) stay as they would be for GET.
        *response.body_mut() = Body::empty();
    }
    response
}

/// A GET or HEAD outside `/v2/`.
async fn route(server: &Server, req: Req<'_>) -> Response {
    let path = req.path;
    match path {
        "/healthz" => text(StatusCode::OK, "ok"),
        "/ferry/health" => health(server),
        "/metrics" => super::metrics::response(server),
        "/" => match server.current().await {
            Ok(g) => with_generation(summary(&g), &g),
            Err(r) => r,
        },
        _ if path.starts_with(apt::PREFIX) => apt::site(server, req).await,
        _ => match tree_route(path) {
            Some((kind, None)) => redirect(&format!("/{}/", kind.name())),
            Some((kind, Some(rest))) => {
                let g = match server.current().await {
                    Ok(g) => g,
                    Err(r) => return r,
                };
                let decoded = match decode(path, rest) {
                    Ok(d) => d,
                    Err(e) => return with_generation(e.response(), &g),
                };
                let r = match kind {
                    SourceKind::Pypi => pypi::route(server, &g, &decoded, req).await,
                    SourceKind::Cargo => cargo::route(server, &g, &decoded, req).await,
                    SourceKind::Npm => npm::route(server, &g, &decoded, req).await,
                    SourceKind::Go => go::route(server, &g, &decoded, req).await,
                    _ => tree::tree(server, &g, kind, &decoded, req).await,
                };
                with_generation(r, &g)
            }
            None => not_found(path),
        },
    }
}

/// `/ferry/health`: the newest bundle's age (crate::freshness); `503` when stale.
fn health(server: &Server) -> Response {
    let (ok, v) = crate::freshness::health(&server.layout, ferry_agent_common::now_unix());
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    super::response::with_body(status, "application/json", format!("{v}\n"))
}

/// The `/` page.
fn summary(g: &Generation) -> Response {
    let f = &g.files;
    let sources: Vec<&str> = f.sources().keys().map(String::as_str).collect();
    let body = format!(
        "ferry-in store\ngeneration: {}\nobjects: {}\nbytes: {}\nsources: {}\n",
        g.name,
        f.objects(),
        f.total_bytes(),
        sources.join(", "),
    );
    text(StatusCode::OK, body)
}

/// The kinds of store served as trees of files, each under `/<kind>/`.
const TREE_KINDS: [SourceKind; 8] = [
    SourceKind::Files,
    SourceKind::Apt,
    SourceKind::Yum,
    SourceKind::Pypi,
    SourceKind::Helm,
    SourceKind::Cargo,
    SourceKind::Npm,
    SourceKind::Go,
];

/// Which tree a path is in: `(kind, None)` for `/<kind>` alone, `(kind,
/// Some(rest))` for `/<kind>/<rest>`.
pub(super) fn tree_route(path: &str) -> Option<(SourceKind, Option<&str>)> {
    let p = path.strip_prefix('/')?;
    TREE_KINDS.into_iter().find_map(|k| {
        let after = p.strip_prefix(k.name())?;
        match after {
            "" => Some((k, None)),
            _ => after.strip_prefix('/').map(|r| (k, Some(r))),
        }
    })
}
