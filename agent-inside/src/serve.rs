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

use crate::layout::{Layout, GEN_FILES, GEN_INDEX, GEN_OCI};
use crate::store::oci;
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
        let mut response = v2(&server, &method, &uri, &headers, head).await;
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
        "/files" => redirect("/files/"),
        _ => match path.strip_prefix("/files/") {
            Some(rest) => match server.current().await {
                Ok(g) => with_generation(files(&g, rest, path, &headers, head).await, &g),
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

/// Everything under `/files/`; `rest` is the raw (still percent-encoded) path
/// after that prefix, `raw` the whole raw path.
async fn files(g: &Generation, rest: &str, raw: &str, headers: &HeaderMap, head: bool) -> Response {
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
            .filter(|(_, k)| **k == SourceKind::Files)
            .map(|(s, _)| Entry {
                name: s.clone(),
                kind: EntryKind::Dir,
            })
            .collect::<Vec<_>>();
        return listing("/files/", false, &entries);
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
    if g.catalog.sources.get(source) != Some(&SourceKind::Files) {
        return not_found(raw);
    }
    match resolve(&g.catalog, source, path) {
        Resolved::File(_, _) if want_dir => text(
            StatusCode::NOT_FOUND,
            format!("not found: {raw} (a file, not a directory)"),
        ),
        Resolved::File(key, f) => {
            let ct = content_type(&decoded);
            serve_file(g, &key, f, GEN_FILES, ct, headers, head).await
        }
        Resolved::Dir(dir) if want_dir => {
            let entries = children(&g.catalog, source, &dir);
            listing(&format!("/files/{decoded}"), true, &entries)
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

// ---- the OCI distribution pull API -------------------------------------------

/// Sent with every `/v2/` response.
const DOCKER_API_VERSION: HeaderName = HeaderName::from_static("docker-distribution-api-version");
/// The digest of a manifest or blob served.
const DOCKER_CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");
/// A tag file is `sha256:<hex>` and a newline at most; anything larger is broken.
const MAX_TAG_FILE: u64 = 72;

/// Everything under `/v2/`: the read-only OCI distribution pull API.
async fn v2(
    server: &Server,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    head: bool,
) -> Response {
    let mut r = if *method != Method::GET && !head {
        let mut r = oci_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            format!("method {method} is not supported: this registry is read-only"),
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        r
    } else {
        let rest = uri.path().strip_prefix("/v2").unwrap_or_default();
        match rest.strip_prefix('/').unwrap_or(rest) {
            "" => with_body(StatusCode::OK, "application/json", "{}".into()),
            rest => match server.current().await {
                Ok(g) => with_generation(oci_route(&g, rest, uri, headers, head).await, &g),
                Err(r) => r,
            },
        }
    };
    r.headers_mut()
        .insert(DOCKER_API_VERSION, HeaderValue::from_static("registry/2.0"));
    r
}

/// A route under `/v2/`; `rest` is the raw path after `/v2/`.
async fn oci_route(
    g: &Generation,
    rest: &str,
    uri: &Uri,
    headers: &HeaderMap,
    head: bool,
) -> Response {
    let Some(decoded) = percent_decode(rest) else {
        return oci_error(
            StatusCode::BAD_REQUEST,
            "NAME_INVALID",
            format!(
                "bad path {}: invalid percent-encoding or not UTF-8",
                uri.path()
            ),
        );
    };
    let query = uri.query();
    if decoded == "_catalog" {
        return oci_catalog(g, query);
    }
    let parts: Vec<&str> = decoded.split('/').collect();
    let n = parts.len();
    let route = if n >= 3 {
        (parts[n - 2], parts[n - 1])
    } else {
        ("", "")
    };
    let name = parts[..n.saturating_sub(2)].join("/");
    let kind = match route {
        ("tags", "list") => "tags",
        ("manifests", _) => "manifests",
        ("blobs", _) => "blobs",
        _ => {
            return oci_error(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                format!("not found: {}", uri.path()),
            )
        }
    };
    if !oci::valid_repo(&name) {
        return oci_error(
            StatusCode::BAD_REQUEST,
            "NAME_INVALID",
            format!("invalid repository name {name:?}"),
        );
    }
    let Some(source) = find_repo(&g.catalog, &name) else {
        return oci_error(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            format!("repository {name} is not known to this registry"),
        );
    };
    let reference = route.1;
    match kind {
        "tags" => oci_tags(g, source, &name, query),
        "manifests" => oci_manifest(g, source, &name, reference, headers).await,
        _ => oci_blob(g, source, reference, headers, head).await,
    }
}

/// The first OCI source (in name order) holding a tag of repository `name`.
fn find_repo<'c>(catalog: &'c Catalog, name: &str) -> Option<&'c str> {
    let prefix = oci::tags_prefix(name);
    catalog
        .sources
        .iter()
        .filter(|(_, k)| **k == SourceKind::Oci)
        .map(|(s, _)| s.as_str())
        .find(|s| {
            let from = ObjectKey {
                source: s.to_string(),
                path: prefix.clone(),
            };
            catalog
                .objects
                .range(from..)
                .next()
                .is_some_and(|(k, _)| k.source == *s && k.path.starts_with(&prefix))
        })
}

/// The file of `key` in generation `g`'s OCI store, if the catalog holds it.
fn oci_file<'c>(
    g: &'c Generation,
    source: &str,
    path: String,
) -> Option<(ObjectKey, &'c FileObject)> {
    let key = ObjectKey {
        source: source.to_string(),
        path,
    };
    match g.catalog.objects.get(&key) {
        Some(Object::File(f)) => Some((key, f)),
        _ => None,
    }
}

/// Reads a small file of generation `g`'s OCI store whole, checking its size
/// against the catalog (and `max`).
async fn read_oci_file(
    g: &Generation,
    key: &ObjectKey,
    f: &FileObject,
    max: u64,
) -> Result<Vec<u8>, Response> {
    if let Err(e) = check_key(key) {
        return Err(server_error(format!(
            "the catalog of generation {} holds an unsafe key: {e}",
            g.name
        )));
    }
    if f.size > max {
        return Err(server_error(format!(
            "generation {}: {key} is {} bytes, more than the {max} allowed",
            g.name, f.size
        )));
    }
    let fs_path = g.dir.join(GEN_OCI).join(&key.source).join(&key.path);
    match tokio::fs::read(&fs_path).await {
        Ok(bytes) if bytes.len() as u64 == f.size => Ok(bytes),
        Ok(bytes) => Err(server_error(format!(
            "generation {}: the stored file for {key} is {} bytes, the catalog says {}",
            g.name,
            bytes.len(),
            f.size
        ))),
        Err(e) => Err(server_error(format!(
            "generation {} cannot read its file for {key}: {e}",
            g.name
        ))),
    }
}

/// `GET/HEAD /v2/<name>/manifests/<reference>`.
async fn oci_manifest(
    g: &Generation,
    source: &str,
    name: &str,
    reference: &str,
    headers: &HeaderMap,
) -> Response {
    let unknown = |what: String| oci_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN", what);
    let hex = if reference.contains(':') {
        match oci::parse_digest(reference) {
            Some(hex) => hex.to_string(),
            None => {
                return oci_error(
                    StatusCode::BAD_REQUEST,
                    "DIGEST_INVALID",
                    format!("{reference:?} is not a digest this registry holds (sha256:<64 lower-case hex>)"),
                )
            }
        }
    } else if oci::valid_tag(reference) {
        let Some((key, f)) = oci_file(g, source, oci::tag_path(name, reference)) else {
            return unknown(format!("manifest unknown: {name} has no tag {reference}"));
        };
        let bytes = match read_oci_file(g, &key, f, MAX_TAG_FILE).await {
            Ok(b) => b,
            Err(r) => return r,
        };
        match oci::parse_tag_file(&bytes) {
            Some(hex) => hex.to_string(),
            None => {
                return server_error(format!(
                    "generation {}: {key} does not hold a digest",
                    g.name
                ))
            }
        }
    } else {
        return unknown(format!(
            "manifest unknown: {reference:?} is neither a tag nor a digest"
        ));
    };
    let Some((key, f)) = oci_file(g, source, oci::manifest_path(&hex)) else {
        return unknown(format!("manifest unknown: {name}@sha256:{hex}"));
    };
    let etag = format!("\"sha256:{hex}\"");
    let etag_value = HeaderValue::from_str(&etag).expect("hex in quotes is a valid header value");
    let digest = HeaderValue::from_str(&format!("sha256:{hex}")).expect("hex");
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| none_match_hits(v, &etag))
    {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r.headers_mut().insert(header::ETAG, etag_value);
        r.headers_mut().insert(DOCKER_CONTENT_DIGEST, digest);
        return r;
    }
    let bytes = match read_oci_file(g, &key, f, oci::MAX_MANIFEST_BYTES).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let media_type = match oci::media_type(&bytes).map(|t| HeaderValue::from_str(&t)) {
        Ok(Ok(t)) => t,
        Ok(Err(_)) => {
            return server_error(format!(
                "generation {}: {key} has a mediaType that is not a valid header value",
                g.name
            ))
        }
        Err(why) => return server_error(format!("generation {}: {key}: {why}", g.name)),
    };
    let len = bytes.len();
    let mut r = Response::new(Body::from(bytes));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, media_type);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::ETAG, etag_value);
    h.insert(DOCKER_CONTENT_DIGEST, digest);
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// `GET/HEAD /v2/<name>/blobs/<digest>`: a blob, or a manifest asked for as a blob.
async fn oci_blob(
    g: &Generation,
    source: &str,
    reference: &str,
    headers: &HeaderMap,
    head: bool,
) -> Response {
    let Some(hex) = oci::parse_digest(reference) else {
        return oci_error(
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
            format!(
                "{reference:?} is not a digest this registry holds (sha256:<64 lower-case hex>)"
            ),
        );
    };
    let Some((key, f)) = oci_file(g, source, oci::blob_path(hex))
        .or_else(|| oci_file(g, source, oci::manifest_path(hex)))
    else {
        return oci_error(
            StatusCode::NOT_FOUND,
            "BLOB_UNKNOWN",
            format!("blob unknown: sha256:{hex}"),
        );
    };
    let mut r = serve_file(
        g,
        &key,
        f,
        GEN_OCI,
        "application/octet-stream",
        headers,
        head,
    )
    .await;
    if r.status().is_success() || r.status() == StatusCode::NOT_MODIFIED {
        r.headers_mut().insert(
            DOCKER_CONTENT_DIGEST,
            HeaderValue::from_str(&format!("sha256:{hex}")).expect("hex"),
        );
    }
    r
}

/// `GET /v2/<name>/tags/list`, with `n` and `last`.
fn oci_tags(g: &Generation, source: &str, name: &str, query: Option<&str>) -> Response {
    let prefix = oci::tags_prefix(name);
    let from = ObjectKey {
        source: source.to_string(),
        path: prefix.clone(),
    };
    let tags = g
        .catalog
        .objects
        .range(from..)
        .take_while(|(k, _)| k.source == source && k.path.starts_with(&prefix))
        .map(|(k, _)| &k.path[prefix.len()..])
        .filter(|t| oci::valid_tag(t));
    let (page, next) = match paginate(tags, query) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let body = serde_json::json!({ "name": name, "tags": page }).to_string();
    let mut r = with_body(StatusCode::OK, "application/json", body);
    if let Some((n, last)) = next {
        link_next(&mut r, &format!("/v2/{name}/tags/list?n={n}&last={last}"));
    }
    r
}

/// `GET /v2/_catalog`, with `n` and `last`: every repository of every OCI source.
fn oci_catalog(g: &Generation, query: Option<&str>) -> Response {
    let mut repos = std::collections::BTreeSet::new();
    for (source, _) in g
        .catalog
        .sources
        .iter()
        .filter(|(_, k)| **k == SourceKind::Oci)
    {
        let from = ObjectKey {
            source: source.clone(),
            path: "repos/".into(),
        };
        for (k, _) in g
            .catalog
            .objects
            .range(from..)
            .take_while(|(k, _)| k.source == *source && k.path.starts_with("repos/"))
        {
            if let Some(oci::OciPath::Tag { repo, .. }) = oci::parse_path(&k.path) {
                repos.insert(repo);
            }
        }
    }
    let (page, next) = match paginate(repos.into_iter(), query) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    let body = serde_json::json!({ "repositories": page }).to_string();
    let mut r = with_body(StatusCode::OK, "application/json", body);
    if let Some((n, last)) = next {
        link_next(&mut r, &format!("/v2/_catalog?n={n}&last={last}"));
    }
    r
}

/// A page of a listing, and `(n, last item)` when more remain.
type Page<'a> = (Vec<&'a str>, Option<(usize, String)>);

/// A page of `items` (sorted ascending) after the `last` of the query, at
/// most its `n`. An error is the 400 to send.
fn paginate<'a>(
    items: impl Iterator<Item = &'a str>,
    query: Option<&str>,
) -> Result<Page<'a>, Box<Response>> {
    let n = match query_param(query, "n") {
        None => None,
        Some(v) => match v.parse::<usize>() {
            Ok(n) => Some(n),
            Err(_) => {
                return Err(Box::new(oci_error(
                    StatusCode::BAD_REQUEST,
                    "PAGINATION_NUMBER_INVALID",
                    format!("n={v:?} is not a number"),
                )))
            }
        },
    };
    let last = query_param(query, "last");
    let mut after = items.skip_while(|i| last.as_deref().is_some_and(|l| *i <= l));
    let Some(n) = n else {
        return Ok((after.collect(), None));
    };
    let page: Vec<&str> = after.by_ref().take(n).collect();
    let more = n > 0 && after.next().is_some();
    let next = match page.last() {
        Some(l) if more => Some((n, l.to_string())),
        _ => None,
    };
    Ok((page, next))
}

/// The value of `name` in a query string, percent-decoded.
fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| percent_decode(v))
}

/// Adds `Link: <target>; rel="next"`.
fn link_next(r: &mut Response, target: &str) {
    if let Ok(v) = HeaderValue::from_str(&format!("<{target}>; rel=\"next\"")) {
        r.headers_mut().insert(header::LINK, v);
    }
}

/// An error as the distribution spec has them: `{"errors":[{"code","message"}]}`.
fn oci_error(status: StatusCode, code: &str, message: String) -> Response {
    let body = serde_json::json!({ "errors": [{ "code": code, "message": message }] }).to_string();
    with_body(status, "application/json", body)
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
mod tests {
    use super::*;
    use ferry_protocol::catalog::{ChunkRef, Encoding};
    use ferry_protocol::id::{ChunkId, Sha256};
    use std::net::SocketAddr;
    use tempfile::TempDir;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    // ---- a fake store ------------------------------------------------------

    struct Store {
        tmp: TempDir,
        layout: Layout,
    }

    fn store() -> Store {
        let tmp = TempDir::new().unwrap();
        let layout = Layout::new(&tmp.path().join("state"));
        std::fs::create_dir_all(layout.gens()).unwrap();
        // Something outside the store that must never be served.
        std::fs::write(tmp.path().join("secret.txt"), "TOP-SECRET").unwrap();
        Store { tmp, layout }
    }

    fn file_object(data: &[u8]) -> Object {
        Object::File(FileObject {
            size: data.len() as u64,
            sha256: Sha256::of(data),
            executable: false,
            encoding: Encoding::Chunks(if data.is_empty() {
                vec![]
            } else {
                vec![ChunkRef {
                    id: ChunkId::of(data),
                    len: data.len() as u32,
                }]
            }),
        })
    }

    fn key(source: &str, path: &str) -> ObjectKey {
        ObjectKey {
            source: source.into(),
            path: path.into(),
        }
    }

    /// Writes generation `name`: files `(source, path, bytes)` and links
    /// `(source, path, target)`. The catalog is validated unless `unchecked`.
    fn write_gen(
        layout: &Layout,
        name: &str,
        files: &[(&str, &str, &[u8])],
        links: &[(&str, &str, &str)],
        unchecked: bool,
    ) {
        let dir = layout.gen(name);
        let mut catalog = Catalog::default();
        for (source, path, data) in files {
            catalog
                .sources
                .insert(source.to_string(), SourceKind::Files);
            catalog.objects.insert(key(source, path), file_object(data));
            let p = dir.join(GEN_FILES).join(source).join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, data).unwrap();
        }
        for (source, path, target) in links {
            catalog
                .sources
                .insert(source.to_string(), SourceKind::Files);
            catalog.objects.insert(
                key(source, path),
                Object::Symlink {
                    target: target.to_string(),
                },
            );
        }
        if !unchecked {
            catalog.validate().unwrap();
        }
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(GEN_INDEX), catalog.to_bytes()).unwrap();
    }

    /// Points `current` at generation `name`, atomically, as the importer does.
    fn set_current(layout: &Layout, name: &str) {
        let tmp = layout.store().join("current.tmp");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(format!("gens/{name}"), &tmp).unwrap();
        std::fs::rename(&tmp, layout.current_link()).unwrap();
    }

    async fn start(layout: &Layout) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = router(layout.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    }

    // ---- a raw HTTP/1.1 client ---------------------------------------------

    #[derive(Debug)]
    struct Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Reply {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.body).into_owned()
        }
    }

    async fn send(addr: SocketAddr, method: &str, target: &str, extra: &[(&str, &str)]) -> Reply {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut req = format!("{method} {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
        for (k, v) in extra {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.unwrap();
        parse_reply(&raw)
    }

    async fn get(addr: SocketAddr, target: &str) -> Reply {
        send(addr, "GET", target, &[]).await
    }

    fn parse_reply(raw: &[u8]) -> Reply {
        let end = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a complete header block");
        let head = std::str::from_utf8(&raw[..end]).unwrap();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        let status = status_line
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap_or_else(|_| panic!("status line {status_line:?}"));
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (k, v) = l.split_once(':').unwrap();
                (k.trim().to_string(), v.trim().to_string())
            })
            .collect();
        let mut body = raw[end + 4..].to_vec();
        let chunked = headers.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
        });
        if chunked {
            body = dechunk(&body);
        }
        Reply {
            status,
            headers,
            body,
        }
    }

    fn dechunk(mut raw: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let eol = raw.windows(2).position(|w| w == b"\r\n").unwrap();
            let size_text = std::str::from_utf8(&raw[..eol]).unwrap();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap(), 16).unwrap();
            raw = &raw[eol + 2..];
            if size == 0 {
                return out;
            }
            out.extend_from_slice(&raw[..size]);
            raw = &raw[size + 2..];
        }
    }

    fn assert_no_secret(r: &Reply, what: &str) {
        assert_ne!(r.status, 200, "{what}: {r:?}");
        let body = r.text();
        assert!(
            !body.contains("TOP-SECRET") && !body.contains("root:"),
            "{what}: {body}"
        );
    }

    const HELLO: &[u8] = b"hello, inside world\n";

    /// A store with a few files and links in generation g1, served.
    async fn served() -> (Store, SocketAddr) {
        let s = store();
        write_gen(
            &s.layout,
            "g1",
            &[
                ("src", "hello.txt", HELLO),
                ("src", "dir/file.json", b"{\"a\":1}"),
                ("src", "dir/sub/deep.bin", b"deep"),
                ("src", "<b>&'x\".txt", b"odd name"),
                ("src", "with space.tar.gz", b"gz"),
                ("src", "empty", b""),
                ("other", "x", b"x"),
            ],
            &[
                ("src", "link.txt", "hello.txt"),
                ("src", "dir/up", "../hello.txt"),
                ("src", "chain", "link.txt"),
                ("src", "latest", "dir"),
                ("src", "dangling", "nothing-here"),
                ("src", "loop1", "loop2"),
                ("src", "loop2", "loop1"),
            ],
            false,
        );
        set_current(&s.layout, "g1");
        let addr = start(&s.layout).await;
        (s, addr)
    }

    // ---- tests -------------------------------------------------------------

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
        let mut catalog =
            Catalog::from_bytes(&std::fs::read(bad.join(GEN_INDEX)).unwrap()).unwrap();
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

    // ---- the OCI pull API --------------------------------------------------

    /// Adds OCI objects `(source, path, bytes)` to generation `name` (written
    /// by `write_gen` before).
    fn add_oci(layout: &Layout, name: &str, objects: &[(&str, &str, &[u8])]) {
        let dir = layout.gen(name);
        let mut catalog =
            Catalog::from_bytes(&std::fs::read(dir.join(GEN_INDEX)).unwrap()).unwrap();
        for (source, path, data) in objects {
            catalog.sources.insert(source.to_string(), SourceKind::Oci);
            catalog.objects.insert(key(source, path), file_object(data));
            let p = dir.join(GEN_OCI).join(source).join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, data).unwrap();
        }
        catalog.validate().unwrap();
        std::fs::write(dir.join(GEN_INDEX), catalog.to_bytes()).unwrap();
    }

    fn hex_of(data: &[u8]) -> String {
        Sha256::of(data).to_hex()
    }

    const MANIFEST: &[u8] =
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}"#;
    const BARE_MANIFEST: &[u8] = br#"{"schemaVersion":2,"layers":[]}"#;
    const BARE_INDEX: &[u8] = br#"{"schemaVersion":2,"manifests":[]}"#;
    const BLOB: &[u8] = b"a layer's bytes, more or less";

    /// A store with a files source and two OCI sources, served.
    async fn served_oci() -> (Store, SocketAddr) {
        let s = store();
        write_gen(&s.layout, "g1", &[("src", "hello.txt", HELLO)], &[], false);
        let tag = |d: &[u8]| format!("sha256:{}\n", hex_of(d)).into_bytes();
        let (m, bm, bi) = (tag(MANIFEST), tag(BARE_MANIFEST), tag(BARE_INDEX));
        let paths = [
            format!("manifests/sha256/{}", hex_of(MANIFEST)),
            format!("manifests/sha256/{}", hex_of(BARE_MANIFEST)),
            format!("manifests/sha256/{}", hex_of(BARE_INDEX)),
            format!("blobs/sha256/{}", hex_of(BLOB)),
        ];
        add_oci(
            &s.layout,
            "g1",
            &[
                ("a-reg", &paths[0], MANIFEST),
                ("a-reg", &paths[1], BARE_MANIFEST),
                ("a-reg", &paths[2], BARE_INDEX),
                ("a-reg", &paths[3], BLOB),
                ("a-reg", "repos/library/demo/_tags/v1", &m),
                ("a-reg", "repos/library/demo/_tags/bare", &bm),
                ("a-reg", "repos/library/demo/_tags/index", &bi),
                ("a-reg", "repos/library/demo/sub/_tags/x", &m),
                ("a-reg", "repos/zeta/_tags/t", &m),
                // Also in a later source: the first source wins.
                ("b-reg", &paths[1], BARE_MANIFEST),
                ("b-reg", "repos/library/demo/_tags/v1", &bm),
                ("b-reg", "repos/other/_tags/latest", &bm),
            ],
        );
        set_current(&s.layout, "g1");
        let addr = start(&s.layout).await;
        (s, addr)
    }

    fn error_code(r: &Reply) -> String {
        let v: serde_json::Value =
            serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {r:?}"));
        v["errors"][0]["code"].as_str().unwrap().to_string()
    }

    #[tokio::test]
    async fn oci_base_and_read_only() {
        let (_s, addr) = served_oci().await;
        for target in ["/v2/", "/v2"] {
            let r = get(addr, target).await;
            assert_eq!(r.status, 200, "{r:?}");
            assert_eq!(r.text(), "{}");
            assert_eq!(r.header("content-type"), Some("application/json"));
            assert_eq!(
                r.header("docker-distribution-api-version"),
                Some("registry/2.0")
            );
        }
        for method in ["PUT", "POST", "PATCH", "DELETE"] {
            for target in [
                "/v2/",
                "/v2/library/demo/manifests/v1",
                "/v2/library/demo/blobs/uploads/",
            ] {
                let r = send(addr, method, target, &[("Content-Length", "0")]).await;
                assert_eq!(r.status, 405, "{method} {target}: {r:?}");
                assert_eq!(error_code(&r), "UNSUPPORTED");
                assert!(r.text().contains("read-only"), "{}", r.text());
            }
        }
        // Files are still served; the OCI sources are not files sources.
        assert_eq!(get(addr, "/files/src/hello.txt").await.body, HELLO);
        let html = get(addr, "/files/").await.text();
        assert!(html.contains("src/") && !html.contains("a-reg"), "{html}");
        let p = format!("/files/a-reg/blobs/sha256/{}", hex_of(BLOB));
        assert_eq!(get(addr, &p).await.status, 404);
        assert_eq!(get(addr, "/v2/nothing/here").await.status, 404);
    }

    #[tokio::test]
    async fn oci_manifests_by_tag_and_digest() {
        let (_s, addr) = served_oci().await;
        let digest = format!("sha256:{}", hex_of(MANIFEST));
        for target in [
            "/v2/library/demo/manifests/v1".to_string(),
            format!("/v2/library/demo/manifests/{digest}"),
            "/v2/library/demo/sub/manifests/x".to_string(),
        ] {
            let r = get(addr, &target).await;
            assert_eq!(r.status, 200, "{target}: {r:?}");
            assert_eq!(r.body, MANIFEST);
            assert_eq!(
                r.header("content-type"),
                Some(super::oci::MANIFEST_MEDIA_TYPE)
            );
            assert_eq!(r.header("docker-content-digest"), Some(digest.as_str()));
            assert_eq!(
                r.header("content-length"),
                Some(&*MANIFEST.len().to_string())
            );
            assert_eq!(r.header("etag"), Some(&*format!("\"{digest}\"")));
            assert_eq!(r.header("x-ferry-generation"), Some("g1"));
        }
        let r = send(addr, "HEAD", "/v2/library/demo/manifests/v1", &[]).await;
        assert_eq!(r.status, 200);
        assert!(r.body.is_empty());
        assert_eq!(r.header("docker-content-digest"), Some(digest.as_str()));
        assert_eq!(
            r.header("content-length"),
            Some(&*MANIFEST.len().to_string())
        );
        let r = send(
            addr,
            "GET",
            "/v2/library/demo/manifests/v1",
            &[("If-None-Match", &format!("\"{digest}\""))],
        )
        .await;
        assert_eq!(r.status, 304);

        // Media types from the JSON when it has no mediaType.
        let r = get(addr, "/v2/library/demo/manifests/bare").await;
        assert_eq!(r.body, BARE_MANIFEST);
        assert_eq!(
            r.header("content-type"),
            Some(super::oci::MANIFEST_MEDIA_TYPE)
        );
        let r = get(addr, "/v2/library/demo/manifests/index").await;
        assert_eq!(r.body, BARE_INDEX);
        assert_eq!(r.header("content-type"), Some(super::oci::INDEX_MEDIA_TYPE));

        // A repository in a later source too: the first source's tag wins;
        // one only in the later source is found there.
        assert_eq!(
            get(addr, "/v2/other/manifests/latest").await.body,
            BARE_MANIFEST
        );

        for (target, status, code) in [
            ("/v2/library/demo/manifests/nope", 404, "MANIFEST_UNKNOWN"),
            ("/v2/library/demo/manifests/-bad", 404, "MANIFEST_UNKNOWN"),
            ("/v2/nobody/manifests/v1", 404, "NAME_UNKNOWN"),
            ("/v2/library/manifests/v1", 404, "NAME_UNKNOWN"),
            ("/v2/Library/demo/manifests/v1", 400, "NAME_INVALID"),
            (
                "/v2/library/demo/manifests/sha256:abc",
                400,
                "DIGEST_INVALID",
            ),
        ] {
            let r = get(addr, target).await;
            assert_eq!(
                (r.status, error_code(&r).as_str()),
                (status, code),
                "{target}"
            );
            assert_eq!(
                r.header("docker-distribution-api-version"),
                Some("registry/2.0")
            );
        }
        let missing = format!("/v2/library/demo/manifests/sha256:{}", hex_of(b"nothing"));
        assert_eq!(error_code(&get(addr, &missing).await), "MANIFEST_UNKNOWN");
        // A blob is not a manifest.
        let blob = format!("/v2/library/demo/manifests/sha256:{}", hex_of(BLOB));
        assert_eq!(get(addr, &blob).await.status, 404);
    }

    #[tokio::test]
    async fn oci_blobs_with_ranges() {
        let (_s, addr) = served_oci().await;
        let digest = format!("sha256:{}", hex_of(BLOB));
        let target = format!("/v2/library/demo/blobs/{digest}");
        let r = get(addr, &target).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.body, BLOB);
        assert_eq!(r.header("docker-content-digest"), Some(digest.as_str()));
        assert_eq!(r.header("content-type"), Some("application/octet-stream"));
        assert_eq!(r.header("accept-ranges"), Some("bytes"));
        let r = send(addr, "GET", &target, &[("Range", "bytes=2-6")]).await;
        assert_eq!(r.status, 206);
        assert_eq!(r.body, &BLOB[2..=6]);
        assert_eq!(r.header("docker-content-digest"), Some(digest.as_str()));
        let r = send(addr, "HEAD", &target, &[]).await;
        assert_eq!(r.status, 200);
        assert!(r.body.is_empty());
        assert_eq!(r.header("content-length"), Some(&*BLOB.len().to_string()));

        // A manifest can be fetched as a blob.
        let m = format!("/v2/library/demo/blobs/sha256:{}", hex_of(MANIFEST));
        assert_eq!(get(addr, &m).await.body, MANIFEST);

        let missing = format!("/v2/library/demo/blobs/sha256:{}", hex_of(b"nothing"));
        let r = get(addr, &missing).await;
        assert_eq!((r.status, error_code(&r).as_str()), (404, "BLOB_UNKNOWN"));
        let r = send(addr, "HEAD", &missing, &[]).await;
        assert_eq!(r.status, 404);
        let r = get(addr, "/v2/library/demo/blobs/md5:00").await;
        assert_eq!(error_code(&r), "DIGEST_INVALID");
        // A blob of a source that does not hold the repository.
        let r = get(addr, &format!("/v2/other/blobs/{digest}")).await;
        assert_eq!(r.status, 404);
    }

    #[tokio::test]
    async fn oci_tags_and_catalog_paginate() {
        let (_s, addr) = served_oci().await;
        let json = |r: &Reply| -> serde_json::Value { serde_json::from_slice(&r.body).unwrap() };
        let r = get(addr, "/v2/library/demo/tags/list").await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(
            json(&r),
            serde_json::json!({"name": "library/demo", "tags": ["bare", "index", "v1"]})
        );
        assert_eq!(r.header("link"), None);

        let r = get(addr, "/v2/library/demo/tags/list?n=2").await;
        assert_eq!(json(&r)["tags"], serde_json::json!(["bare", "index"]));
        assert_eq!(
            r.header("link"),
            Some("</v2/library/demo/tags/list?n=2&last=index>; rel=\"next\"")
        );
        let r = get(addr, "/v2/library/demo/tags/list?n=2&last=index").await;
        assert_eq!(json(&r)["tags"], serde_json::json!(["v1"]));
        assert_eq!(r.header("link"), None);
        let r = get(addr, "/v2/library/demo/tags/list?n=0").await;
        assert_eq!(json(&r)["tags"], serde_json::json!([]));
        let r = get(addr, "/v2/library/demo/tags/list?n=x").await;
        assert_eq!(r.status, 400);
        let r = get(addr, "/v2/nobody/tags/list").await;
        assert_eq!(error_code(&r), "NAME_UNKNOWN");

        let r = get(addr, "/v2/_catalog").await;
        assert_eq!(
            json(&r),
            serde_json::json!({"repositories": ["library/demo", "library/demo/sub", "other", "zeta"]})
        );
        let r = get(addr, "/v2/_catalog?n=3").await;
        assert_eq!(
            json(&r)["repositories"],
            serde_json::json!(["library/demo", "library/demo/sub", "other"])
        );
        assert_eq!(
            r.header("link"),
            Some("</v2/_catalog?n=3&last=other>; rel=\"next\"")
        );
        let r = get(addr, "/v2/_catalog?n=3&last=other").await;
        assert_eq!(json(&r)["repositories"], serde_json::json!(["zeta"]));
        assert_eq!(r.header("link"), None);
    }

    #[tokio::test]
    async fn oci_before_the_first_import() {
        let s = store();
        let addr = start(&s.layout).await;
        assert_eq!(get(addr, "/v2/").await.status, 200);
        assert_eq!(get(addr, "/v2/a/manifests/v1").await.status, 503);
    }

    #[test]
    fn run_names_an_address_it_cannot_bind() {
        let s = store();
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        let e = run(&s.layout, &addr).unwrap_err();
        assert!(format!("{e:#}").contains(&addr), "{e:#}");
    }

    #[test]
    fn helpers() {
        assert_eq!(percent_decode("a%20b%2F%2e").as_deref(), Some("a b/."));
        assert_eq!(percent_decode("%"), None);
        assert_eq!(percent_decode("%2"), None);
        assert_eq!(percent_decode("%+1"), None);
        assert_eq!(percent_decode("%ff"), None);
        assert_eq!(href_encode("a b:c/é"), "a%20b%3Ac%2F%C3%A9");
        assert_eq!(
            html_escape("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
        assert_eq!(content_type("dir/X.WHL"), "application/zip");
        assert_eq!(content_type("a.tar.zst"), "application/zstd");
        assert_eq!(
            content_type("pkg.deb"),
            "application/vnd.debian.binary-package"
        );
        assert_eq!(content_type("v1.2/README"), "application/octet-stream");
        assert_eq!(plan_range("bytes=0-0", 10), RangePlan::Part(0, 0));
        assert_eq!(plan_range("bytes=10-", 10), RangePlan::Unsatisfiable);
        assert_eq!(plan_range("bytes=9-", 10), RangePlan::Part(9, 9));
        assert_eq!(plan_range("bytes=-1", 0), RangePlan::Full);
        assert_eq!(plan_range("bytes=0-", 0), RangePlan::Full);
    }
}
