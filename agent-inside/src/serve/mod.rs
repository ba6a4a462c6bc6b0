//! `ferry-in serve`: the current generation of the inside store over HTTP.
//!
//! Routes, for GET and HEAD (any other method gets `405 Method Not Allowed`;
//! under `/v2/` with an `UNSUPPORTED` JSON error, as the registry is read-only):
//!
//! - `/`: a short plain-text page: the generation served, how many objects it
//!   holds and how many bytes its files add up to.
//! - `/healthz`: `200 ok`, whether or not a bundle has been imported.
//! - `/files/`: an HTML listing of the sources.
//! - `/files/<source>/` and `/files/<source>/<dir>/`: an HTML listing of the
//!   direct children of a directory (directories end in `/`). A directory
//!   asked for without its trailing `/` is redirected (301) to it.
//! - `/files/<source>/<path>`: the object at that key. Files are streamed from
//!   the generation's plain-file store with `Content-Length`,
//!   `Accept-Ranges: bytes`, `ETag: "sha256:<hex>"` and a `Content-Type`
//!   guessed from the extension. One byte range (`bytes=a-b`, `a-`, `-n`) is
//!   answered with 206 (or 416 when it cannot be satisfied); several ranges
//!   get the whole file with 200. `If-Range` (entity-tag form) and
//!   `If-None-Match` (answered with 304) are honoured. Symbolic links,
//!   including links standing for directories in the middle of a path, are
//!   resolved within the catalog, lexically, at most 8 of them per request; a
//!   dangling or looping link is 404.
//! - `/v2/`: the OCI distribution spec's pull API over the OCI sources
//!   (`store::oci`), every response with
//!   `Docker-Distribution-API-Version: registry/2.0`: `/v2/` itself (`{}`);
//!   `/v2/<name>/manifests/<tag or sha256:hex>` (the exact bytes, their media
//!   type, `Docker-Content-Digest`, an ETag); `/v2/<name>/blobs/sha256:<hex>`
//!   (streamed as files are, with Range); `/v2/<name>/tags/list` and
//!   `/v2/_catalog`, both paginated with `n` and `last` and a `Link` header
//!   to the next page. A repository is looked up in every OCI source, the
//!   first in source-name order that tags it wins; its manifests and blobs
//!   are those of that source. Errors are the spec's JSON bodies
//!   (`NAME_UNKNOWN`, `MANIFEST_UNKNOWN`, `BLOB_UNKNOWN`, `NAME_INVALID`,
//!   `DIGEST_INVALID`, `UNSUPPORTED`). `/files/` shows `files` sources only.
//! - `/apt/`, `/yum/`, `/pypi/`, `/helm/`: the package repository stores,
//!   each served as `/files/` is (listings, Range, ETag, links), with only
//!   the sources of that kind under it, so a client changes only its base
//!   URL: `/apt/<source>/dists/…`, `/yum/<source>/repodata/repomd.xml`, ….
//!   `/pypi/<source>/simple/` is the simple repository API (PEP 503 HTML and
//!   PEP 691 JSON, `serve::pypi`), rendered from the store's project indexes.
//! - anything else: 404.
//!
//! Generations: `store/current` is read once per request, and the whole
//! request is answered from that one generation, named in the
//! `X-Ferry-Generation` header; its decoded catalog is cached until the link
//! moves. Before the first import every route but `/healthz` answers 503.
//!
//! Safety: the URL path is percent-decoded, then checked with
//! [`ferry_protocol::path`]'s rules before anything else; only a key the
//! catalog holds, checked again, is ever joined onto the filesystem. Errors
//! are short plain-text bodies naming what is wrong.

use crate::layout::{Layout, GEN_INDEX, GEN_OCI};
use crate::store::oci as oci_store;
use anyhow::Context as _;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::State;
use axum::http::header::{self, HeaderName};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use ferry_protocol::catalog::{Catalog, FileObject, Object, SourceKind};
use ferry_protocol::path::{check_key, check_path, check_source_name, ObjectKey};
use http_range_header::{EndPosition, StartPosition};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncSeekExt, ReadBuf};

mod apt;
mod oci;
mod pypi;

/// At most this many symbolic links are followed for one request.
const MAX_LINK_HOPS: usize = 8;
/// Bytes read from a file at a time while streaming it.
const READ_CHUNK: usize = 256 * 1024;
/// How long a stop waits for downloads still running.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// The answer before the first import.
const NO_GENERATION: &str = "no bundle has been imported yet";
/// Names the generation a response comes from.
const X_FERRY_GENERATION: HeaderName = HeaderName::from_static("x-ferry-generation");

/// Serves the store under `layout` on `listen` until Ctrl-C / SIGTERM.
///
/// Once the socket is bound it prints
/// `ferry-in: serving <state dir> on http://<bound addr>` to stderr, so a
/// caller that asked for port 0 can read the real address.
pub fn run(layout: &Layout, listen: &str) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = rt.block_on(serve_until_stopped(layout.clone(), listen));
    rt.shutdown_timeout(Duration::from_secs(1));
    result
}

/// The HTTP routes serving the store under `layout` (see the module docs).
pub fn router(layout: Layout) -> Router {
    let server = Arc::new(Server {
        layout,
        cache: tokio::sync::Mutex::new(None),
    });
    Router::new().fallback(handle).with_state(server)
}

async fn serve_until_stopped(layout: Layout, listen: &str) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener
        .local_addr()
        .with_context(|| format!("cannot read the address bound for {listen}"))?;
    {
        let mut err = std::io::stderr().lock();
        // If stderr is gone there is nobody to tell; serving still works.
        let _ = writeln!(
            err,
            "ferry-in: serving {} on http://{addr}",
            layout.root.display()
        );
        let _ = err.flush();
    }

    let stop = Arc::new(tokio::sync::Notify::new());
    let stopped = stop.clone();
    let server = std::future::IntoFuture::into_future(
        axum::serve(listener, router(layout))
            .with_graceful_shutdown(async move { stopped.notified().await }),
    );
    let mut server = std::pin::pin!(server);
    tokio::select! {
        r = &mut server => return r.context("the HTTP server failed"),
        r = stop_signal() => r?,
    }
    // Stop accepting, let running downloads finish, but not forever.
    stop.notify_one();
    eprintln!(
        "ferry-in: stopping; waiting up to {} s for open downloads",
        SHUTDOWN_GRACE.as_secs()
    );
    let (give_up, gave_up) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        std::thread::sleep(SHUTDOWN_GRACE);
        let _ = give_up.send(());
    });
    tokio::select! {
        r = &mut server => r.context("the HTTP server failed"),
        _ = gave_up => {
            eprintln!("ferry-in: closing the downloads still open");
            Ok(())
        }
    }
}

/// Waits for Ctrl-C or SIGTERM.
async fn stop_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("cannot listen for Ctrl-C"),
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c()
            .await
            .context("cannot listen for Ctrl-C")
    }
}

/// Shared by all requests.
struct Server {
    layout: Layout,
    /// The catalog of the generation last served, by generation name.
    cache: tokio::sync::Mutex<Option<(String, Arc<Catalog>)>>,
}

/// The generation one request is answered from.
struct Generation {
    name: String,
    dir: PathBuf,
    catalog: Arc<Catalog>,
}

impl Server {
    /// Reads `current` and returns its generation, or the response to send.
    async fn current(&self) -> Result<Generation, Response> {
        let link = self.layout.current_link();
        let target = match std::fs::read_link(&link) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(text(StatusCode::SERVICE_UNAVAILABLE, NO_GENERATION));
            }
            Err(e) => {
                return Err(server_error(format!(
                    "cannot read the link {}: {e}",
                    link.display()
                )))
            }
        };
        let Some(name) = target.file_name().and_then(|n| n.to_str()) else {
            return Err(server_error(format!(
                "{} points at {}, which is not a generation",
                link.display(),
                target.display()
            )));
        };
        let name = name.to_string();
        let dir = self.layout.gen(&name);

        let mut cache = self.cache.lock().await;
        if let Some((cached, catalog)) = &*cache {
            if *cached == name {
                return Ok(Generation {
                    name,
                    dir,
                    catalog: catalog.clone(),
                });
            }
        }
        let index = dir.join(GEN_INDEX);
        let loaded = tokio::task::spawn_blocking(move || {
            let bytes = std::fs::read(&index)
                .map_err(|e| format!("cannot read {}: {e}", index.display()))?;
            Catalog::from_bytes(&bytes).map_err(|e| format!("{}: {e}", index.display()))
        })
        .await
        .map_err(|e| format!("loading the catalog failed: {e}"))
        .and_then(|r| r);
        match loaded {
            Ok(catalog) => {
                let catalog = Arc::new(catalog);
                *cache = Some((name.clone(), catalog.clone()));
                Ok(Generation { name, dir, catalog })
            }
            Err(e) => Err(server_error(format!("cannot load generation {name}: {e}"))),
        }
    }
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
    let mut response = match path {
        "/healthz" => text(StatusCode::OK, "ok"),
        "/" => match server.current().await {
            Ok(g) => with_generation(summary(&g), &g),
            Err(r) => r,
        },
        _ if path.starts_with(apt::PREFIX) => apt::site(&server, path, &headers, head).await,
        _ => match tree_route(path) {
            Some((kind, None)) => redirect(&format!("/{}/", kind.name())),
            Some((kind, Some(rest))) => match server.current().await {
                Ok(g) if kind == SourceKind::Pypi => {
                    with_generation(pypi::route(&g, rest, path, &headers, head).await, &g)
                }
                Ok(g) => with_generation(tree(&g, kind, rest, path, &headers, head).await, &g),
                Err(r) => r,
            },
            None => not_found(path),
        },
    };
    if head {
        // Headers (Content-Length included) stay as they would be for GET.
        *response.body_mut() = Body::empty();
    }
    response
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
fn tree_route(path: &str) -> Option<(SourceKind, Option<&str>)> {
    let p = path.strip_prefix('/')?;
    TREE_KINDS.into_iter().find_map(|k| {
        let after = p.strip_prefix(k.name())?;
        match after {
            "" => Some((k, None)),
            _ => after.strip_prefix('/').map(|r| (k, Some(r))),
        }
    })
}

/// Everything under `/<kind>/` for a kind served as a tree of files (see
/// [`TREE_KINDS`]); `rest` is the raw (still percent-encoded) path after that
/// prefix, `raw` the whole raw path.
async fn tree(
    g: &Generation,
    kind: SourceKind,
    rest: &str,
    raw: &str,
    headers: &HeaderMap,
    head: bool,
) -> Response {
    let Some(decoded) = percent_decode(rest) else {
        return text(
            StatusCode::BAD_REQUEST,
            format!("bad path {raw}: invalid percent-encoding or not UTF-8"),
        );
    };
    if decoded.is_empty() {
        let entries = g
            .catalog
            .sources
            .iter()
            .filter(|(_, k)| **k == kind)
            .map(|(s, _)| Entry {
                name: s.clone(),
                kind: EntryKind::Dir,
            })
            .collect::<Vec<_>>();
        return listing(&format!("/{}/", kind.name()), false, &entries);
    }
    let (source, path, want_dir) = match decoded.split_once('/') {
        None => (decoded.as_str(), "", false),
        Some((s, p)) => match p.strip_suffix('/') {
            Some(p) => (s, p, true),
            None => (s, p, p.is_empty()),
        },
    };
    if let Err(e) = check_source_name(source) {
        return text(StatusCode::BAD_REQUEST, format!("bad path {raw}: {e}"));
    }
    if !path.is_empty() {
        if let Err(e) = check_path(path) {
            return text(StatusCode::BAD_REQUEST, format!("bad path {raw}: {e}"));
        }
    }
    if g.catalog.sources.get(source) != Some(&kind) {
        return not_found(raw);
    }
    match resolve(&g.catalog, source, path) {
        Resolved::File(_, _) if want_dir => text(
            StatusCode::NOT_FOUND,
            format!("not found: {raw} (a file, not a directory)"),
        ),
        Resolved::File(key, f) => {
            let ct = content_type(&decoded);
            serve_file(g, &key, f, kind.name(), ct, headers, head).await
        }
        Resolved::Dir(dir) if want_dir => {
            let entries = children(&g.catalog, source, &dir);
            listing(&format!("/{}/{decoded}", kind.name()), true, &entries)
        }
        Resolved::Dir(_) => redirect(&format!("{raw}/")),
        Resolved::Missing => not_found(raw),
    }
}

/// What a path in a source stands for, once links are followed.
enum Resolved<'c> {
    /// A regular file, under its real key.
    File(ObjectKey, &'c FileObject),
    /// A directory: a prefix of some objects' paths (`""` is the source root).
    Dir(String),
    /// Nothing, a dangling link, a link loop, or a path through a file.
    Missing,
}

/// Walks `path` in `source` component by component, replacing every symbolic
/// link met (at the end or in the middle) by its target, read relative to the
/// link's directory. Works on the catalog alone: nothing touches the
/// filesystem, and `..` can never climb above the source root.
fn resolve<'c>(catalog: &'c Catalog, source: &str, path: &str) -> Resolved<'c> {
    let mut key = ObjectKey {
        source: source.to_string(),
        path: String::with_capacity(path.len()),
    };
    // For each component in `key.path`, the length of `key.path` before it.
    let mut lens: Vec<usize> = Vec::new();
    // Components still to walk, last first.
    let mut todo: Vec<&str> = path.split('/').rev().collect();
    let mut hops = 0;
    while let Some(comp) = todo.pop() {
        match comp {
            "" | "." => {}
            ".." => match lens.pop() {
                Some(len) => key.path.truncate(len),
                None => return Resolved::Missing,
            },
            name => {
                lens.push(key.path.len());
                if !key.path.is_empty() {
                    key.path.push('/');
                }
                key.path.push_str(name);
                match catalog.objects.get(&key) {
                    None => {}
                    Some(Object::File(f)) => {
                        return if todo.is_empty() {
                            Resolved::File(key, f)
                        } else {
                            Resolved::Missing
                        };
                    }
                    Some(Object::Symlink { target }) => {
                        hops += 1;
                        if hops > MAX_LINK_HOPS || target.starts_with('/') {
                            return Resolved::Missing;
                        }
                        if let Some(len) = lens.pop() {
                            key.path.truncate(len);
                        }
                        todo.extend(target.split('/').rev());
                    }
                }
            }
        }
    }
    if key.path.is_empty() || !children_from(catalog, source, &key.path, 1).is_empty() {
        Resolved::Dir(key.path)
    } else {
        Resolved::Missing
    }
}

/// One line of a directory listing.
struct Entry {
    name: String,
    kind: EntryKind,
}

enum EntryKind {
    Dir,
    File(u64),
    Link(String),
}

/// The direct children of directory `dir` (`""`: the root) of `source`.
fn children(catalog: &Catalog, source: &str, dir: &str) -> Vec<Entry> {
    children_from(catalog, source, dir, usize::MAX)
}

/// At most `max` direct children of `dir`, in key order. Each step is one
/// lookup in the catalog: a subdirectory is skipped over whole.
fn children_from(catalog: &Catalog, source: &str, dir: &str, max: usize) -> Vec<Entry> {
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    let mut out = Vec::new();
    let mut from = ObjectKey {
        source: source.to_string(),
        path: prefix.clone(),
    };
    while out.len() < max {
        let Some((key, object)) = catalog.objects.range(&from..).next() else {
            break;
        };
        if key.source != source || !key.path.starts_with(&prefix) {
            break;
        }
        let rest = &key.path[prefix.len()..];
        match rest.split_once('/') {
            Some((child, _)) => {
                out.push(Entry {
                    name: child.to_string(),
                    kind: EntryKind::Dir,
                });
                // `0` follows `/`: the first path after everything in `child/`.
                from.path = format!("{prefix}{child}0");
            }
            None => {
                out.push(Entry {
                    name: rest.to_string(),
                    kind: match object {
                        Object::File(f) => EntryKind::File(f.size),
                        Object::Symlink { target } => EntryKind::Link(target.clone()),
                    },
                });
                // The first path after this one.
                from.path = format!("{}\0", key.path);
            }
        }
    }
    out
}

/// An HTML directory listing titled `title` (already decoded).
fn listing(title: &str, with_parent: bool, entries: &[Entry]) -> Response {
    let title = html_escape(title);
    let mut html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}</title></head>\n\
         <body>\n<h1>Index of {title}</h1>\n<ul>\n"
    );
    if with_parent {
        html.push_str("<li><a href=\"../\">../</a></li>\n");
    }
    for e in entries {
        let href = html_escape(&href_encode(&e.name));
        let name = html_escape(&e.name);
        let _ = match &e.kind {
            EntryKind::Dir => writeln!(html, "<li><a href=\"{href}/\">{name}/</a></li>"),
            EntryKind::File(size) => {
                writeln!(html, "<li><a href=\"{href}\">{name}</a> {size} bytes</li>")
            }
            EntryKind::Link(target) => writeln!(
                html,
                "<li><a href=\"{href}\">{name}</a> -&gt; {}</li>",
                html_escape(target)
            ),
        };
    }
    html.push_str("</ul>\n</body></html>\n");
    with_body(StatusCode::OK, "text/html; charset=utf-8", html)
}

/// Serves one file of generation `g`, stored under `GEN/<store_dir>/`, as
/// `content_type`.
async fn serve_file(
    g: &Generation,
    key: &ObjectKey,
    f: &FileObject,
    store_dir: &str,
    content_type: &'static str,
    headers: &HeaderMap,
    head: bool,
) -> Response {
    if let Err(e) = check_key(key) {
        return server_error(format!(
            "the catalog of generation {} holds an unsafe key: {e}",
            g.name
        ));
    }
    let etag = format!("\"sha256:{}\"", f.sha256.to_hex());
    let etag_value = HeaderValue::from_str(&etag).expect("hex in quotes is a valid header value");

    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| none_match_hits(v, &etag))
    {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r.headers_mut().insert(header::ETAG, etag_value);
        return r;
    }

    let size = f.size;
    let mut plan = RangePlan::Full;
    // Ranges are defined for GET only; a failed If-Range means "send it all".
    if !head {
        if let Some(range) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
            let if_range_ok = headers
                .get(header::IF_RANGE)
                .is_none_or(|v| v.to_str().is_ok_and(|v| v.trim() == etag));
            if if_range_ok {
                plan = plan_range(range, size);
            }
        }
    }
    if let RangePlan::Unsatisfiable = plan {
        let mut r = text(
            StatusCode::RANGE_NOT_SATISFIABLE,
            format!("range not satisfiable: the file is {size} bytes"),
        );
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!("bytes */{size}")).expect("digits"),
        );
        h.insert(header::ETAG, etag_value);
        return r;
    }

    let fs_path = g.dir.join(store_dir).join(&key.source).join(&key.path);
    let mut file = match tokio::fs::File::open(&fs_path).await {
        Ok(file) => file,
        Err(e) => {
            return server_error(format!(
                "generation {} cannot open its file for {key}: {e}",
                g.name
            ))
        }
    };
    match file.metadata().await {
        Ok(m) if m.is_file() && m.len() == size => {}
        Ok(m) => {
            return server_error(format!(
                "generation {}: the stored file for {key} is {} bytes, the catalog says {size}",
                g.name,
                m.len()
            ))
        }
        Err(e) => {
            return server_error(format!(
                "generation {} cannot stat its file for {key}: {e}",
                g.name
            ))
        }
    }

    let (status, start, len) = match plan {
        RangePlan::Part(start, end) => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        _ => (StatusCode::OK, 0, size),
    };
    if start > 0 {
        if let Err(e) = file.seek(std::io::SeekFrom::Start(start)).await {
            return server_error(format!("cannot seek in the file for {key}: {e}"));
        }
    }
    let body = if head || len == 0 {
        Body::empty()
    } else {
        Body::new(FileBody {
            file,
            remaining: len,
            buf: Vec::new(),
            path: fs_path,
        })
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::ETAG, etag_value);
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let RangePlan::Part(start, end) = plan {
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!("bytes {start}-{end}/{size}")).expect("digits"),
        );
    }
    r
}

/// Whether an `If-None-Match` value matches `etag` (weak comparison).
fn none_match_hits(value: &HeaderValue, etag: &str) -> bool {
    let Ok(value) = value.to_str() else {
        return false;
    };
    value.trim() == "*"
        || value.split(',').any(|tag| {
            let tag = tag.trim();
            tag.strip_prefix("W/").unwrap_or(tag) == etag
        })
}

/// What part of a file to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RangePlan {
    /// All of it, with 200.
    Full,
    /// Bytes `start..=end`, with 206.
    Part(u64, u64),
    /// Nothing: 416.
    Unsatisfiable,
}

/// Reads a `Range` value against a file of `size` bytes. A value that does
/// not parse is ignored, as are several ranges (the whole file is sent) and
/// ranges on an empty file.
fn plan_range(value: &str, size: u64) -> RangePlan {
    let Ok(parsed) = http_range_header::parse_range_header(value.trim()) else {
        return RangePlan::Full;
    };
    let [one] = parsed.ranges.as_slice() else {
        return RangePlan::Full;
    };
    if size == 0 {
        return RangePlan::Full;
    }
    match (one.start, one.end) {
        // A reversed range is invalid syntax, so ignored.
        (StartPosition::Index(s), EndPosition::Index(e)) if e < s => return RangePlan::Full,
        // A suffix longer than the file means the whole file.
        (StartPosition::FromLast(n), _) if n > size => return RangePlan::Part(0, size - 1),
        _ => {}
    }
    match parsed.validate(size).as_deref() {
        Ok([r]) => RangePlan::Part(*r.start(), *r.end()),
        _ => RangePlan::Unsatisfiable,
    }
}

/// A file streamed as a response body, `READ_CHUNK` bytes at a time.
struct FileBody {
    file: tokio::fs::File,
    /// Bytes still to send.
    remaining: u64,
    /// The buffer being read into.
    buf: Vec<u8>,
    /// For error messages.
    path: PathBuf,
}

impl HttpBody for FileBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        let this = &mut *self;
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = usize::try_from(this.remaining).map_or(READ_CHUNK, |r| r.min(READ_CHUNK));
        if this.buf.len() < want {
            this.buf.resize(want, 0);
        }
        let mut read = ReadBuf::new(&mut this.buf[..want]);
        match Pin::new(&mut this.file).poll_read(cx, &mut read) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => {
                eprintln!("ferry-in: reading {}: {e}", this.path.display());
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(Ok(())) => {
                let n = read.filled().len();
                if n == 0 {
                    let e = std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!(
                            "{} ended {} bytes early",
                            this.path.display(),
                            this.remaining
                        ),
                    );
                    eprintln!("ferry-in: {e}");
                    return Poll::Ready(Some(Err(e)));
                }
                this.remaining -= n as u64;
                let mut chunk = std::mem::take(&mut this.buf);
                chunk.truncate(n);
                Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from(chunk)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}

/// A content type for a file name, from its extension.
fn content_type(name: &str) -> &'static str {
    let base = name.rsplit('/').next().unwrap_or(name);
    let ext = base
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "txt" => "text/plain; charset=utf-8",
        "html" | "htm" => "text/html; charset=utf-8",
        "json" => "application/json",
        "xml" => "application/xml",
        "tar" => "application/x-tar",
        "gz" | "tgz" => "application/gzip",
        "zst" => "application/zstd",
        "xz" => "application/x-xz",
        "bz2" => "application/x-bzip2",
        "deb" => "application/vnd.debian.binary-package",
        "rpm" => "application/x-rpm",
        "whl" | "zip" => "application/zip",
        "iso" => "application/x-iso9660-image",
        _ => "application/octet-stream",
    }
}

/// Decodes `%XX` escapes; `None` for a bad escape or bytes that are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = hex(*bytes.get(i + 1)?)?;
            let lo = hex(*bytes.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encodes everything but unreserved characters, for a relative href.
fn href_encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A response with a body held in memory and its exact length.
fn with_body(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let len = body.len();
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    with_body(status, "text/plain; charset=utf-8", body.into())
}

fn not_found(path: &str) -> Response {
    text(StatusCode::NOT_FOUND, format!("not found: {path}"))
}

/// A 500, also told to the operator on stderr.
fn server_error(msg: String) -> Response {
    eprintln!("ferry-in: {msg}");
    text(StatusCode::INTERNAL_SERVER_ERROR, msg)
}

/// `location` is a path taken from the request, so a valid header value.
fn redirect(location: &str) -> Response {
    let mut r = text(
        StatusCode::MOVED_PERMANENTLY,
        format!("moved to {location}"),
    );
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn with_generation(mut r: Response, g: &Generation) -> Response {
    if let Ok(v) = HeaderValue::from_str(&g.name) {
        r.headers_mut().insert(X_FERRY_GENERATION, v);
    }
    r
}

#[cfg(all(test, unix))]
mod tests;
