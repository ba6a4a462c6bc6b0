//! Routing: which handler answers a request (see the module docs of
//! `serve` for the routes), and what every response gets on the way out.

use super::generation::{Generation, Server};
use super::request::{decode, Req};
use super::response::{not_found, redirect, text, with_generation};
use super::settings::ServeSettings;
use super::{apt, oci, pypi, tree};
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
    let server = Arc::new(Server::new(layout, settings));
    Router::new().fallback(handle).with_state(server)
}

async fn handle(
    State(server): State<Arc<Server>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let head = method == Method::HEAD;
    let path = uri.path();
    if path == "/v2" || path.starts_with("/v2/") {
        let mut response = oci::v2(&server, &method, &uri, &headers, head).await;
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
        headers: &headers,
        head,
    };
    let mut response = route(&server, req).await;
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
                let r = if kind == SourceKind::Pypi {
                    pypi::route(server, &g, &decoded, req).await
                } else {
                    tree::tree(server, &g, kind, &decoded, req).await
                };
                with_generation(r, &g)
            }
            None => not_found(path),
        },
    }
}

/// The `/` page.
fn summary(g: &Generation) -> Response {
    let c = &g.catalog;
    let sources: Vec<&str> = c.sources.keys().map(String::as_str).collect();
    let body = format!(
        "ferry-in store\ngeneration: {}\nobjects: {}\nbytes: {}\nsources: {}\n",
        g.name,
        c.objects.len(),
        c.total_bytes(),
        sources.join(", "),
    );
    text(StatusCode::OK, body)
}

/// The kinds of store served as trees of files, each under `/<kind>/`.
const TREE_KINDS: [SourceKind; 5] = [
    SourceKind::Files,
    SourceKind::Apt,
    SourceKind::Yum,
    SourceKind::Pypi,
    SourceKind::Helm,
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
