//! The simple repository API over the PyPI sources, under `/pypi/<source>/`
//! (what `pip install --index-url http://HOST/pypi/<source>/simple/` reads).
//!
//! - `/pypi/<source>/simple/`: the project list.
//! - `/pypi/<source>/simple/<project>/`: the project's files, rendered from
//!   `simple/<project>/index.json` (`store::pypi`), links relative
//!   (`../../files/<filename>#sha256=<hex>`), with `requires-python` and
//!   `yanked` (PEP 592). A name that is not in normalized form, or a page
//!   asked for without its trailing `/`, is redirected (301) to the canonical
//!   URL, as PEP 503 asks.
//! - Both pages are PEP 691 JSON (`application/vnd.pypi.simple.v1+json`, API
//!   version 1.1: with `size` and `versions`) when the `Accept` header
//!   prefers it, else PEP 503 HTML (`application/vnd.pypi.simple.v1+html`
//!   when asked for, else `text/html`); `Vary: Accept` either way.
//! - `/pypi/<source>/files/<wheel>.metadata`: the wheel's core metadata
//!   (PEP 658, written at apply by `store::pypi_meta`), offered on the
//!   project pages with its SHA-256 (`data-core-metadata` and
//!   `data-dist-info-metadata` in HTML, `core-metadata` and
//!   `dist-info-metadata` in JSON, PEP 714).
//! - Everything else (`/pypi/<source>/files/<filename>`, listings) is the
//!   generic tree of files (`serve::tree`), with Range and ETag.

use super::generation::{Generation, Server};
use super::request::{source_name, Req};
use super::response::{href_encode, html_escape, not_found, redirect, server_error, with_body};
use super::tree::tree;
use crate::genread::{GenRead, GenReadError};
use crate::store::pypi_meta::{hashes_path, metadata_path, GEN_PYPI_META};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use ferry_formats::pypi::{self as store, ProjectIndex, PypiPath};
use ferry_protocol::catalog::SourceKind;
use ferry_protocol::path::{check_key, ObjectKey};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// PEP 691 JSON.
const JSON_TYPE: &str = "application/vnd.pypi.simple.v1+json";
/// PEP 691's name for PEP 503 HTML.
const HTML_TYPE: &str = "application/vnd.pypi.simple.v1+html";

/// Which form of a simple page to answer with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    Json,
    PypiHtml,
    Html,
}

/// Reads `Accept`: the form with the highest q-value; JSON wins ties, and
/// no header (or nothing known in it) means plain HTML.
fn negotiate(headers: &HeaderMap) -> Form {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Form::Html;
    };
    let mut best = (0.0f32, Form::Html);
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let mt = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let form = match mt.as_str() {
            JSON_TYPE => Form::Json,
            HTML_TYPE => Form::PypiHtml,
            "text/html" | "text/*" | "*/*" => Form::Html,
            _ => continue,
        };
        let better = q > best.0 || (q == best.0 && q > 0.0 && form == Form::Json);
        if q > 0.0 && better {
            best = (q, form);
        }
    }
    best.1
}

/// Everything under `/pypi/`; `decoded` is the percent-decoded path after
/// `/pypi/`.
pub(super) async fn route(
    server: &Server,
    g: &Generation,
    decoded: &str,
    req: Req<'_>,
) -> Response {
    let raw = req.path;
    let Some((source, path)) = decoded.split_once('/') else {
        return tree(server, g, SourceKind::Pypi, decoded, req).await;
    };
    if source_name(raw, source).is_err() || g.files.kind_of(source) != Some(SourceKind::Pypi) {
        return tree(server, g, SourceKind::Pypi, decoded, req).await;
    }
    if path == "simple" {
        return redirect(&format!("/pypi/{source}/simple/"));
    }
    let Some(sub) = path.strip_prefix("simple/") else {
        if let Some(r) = core_metadata(g, source, path).await {
            return r;
        }
        return tree(server, g, SourceKind::Pypi, decoded, req).await;
    };
    let form = negotiate(req.headers);
    if sub.is_empty() {
        return vary(project_list_off_workers(server, g, source, form).await);
    }
    let (name, slash) = match sub.strip_suffix('/') {
        Some(n) => (n, true),
        None => (sub, false),
    };
    if name.contains('/') || name.is_empty() {
        return not_found(raw);
    }
    let canonical = store::normalize(name);
    if canonical != name || !slash {
        if canonical.is_empty() {
            return not_found(raw);
        }
        return redirect(&format!(
            "/pypi/{source}/simple/{}/",
            href_encode(&canonical)
        ));
    }
    vary(project_page(g, source, name, form).await)
}

fn vary(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept"));
    r
}

/// The projects of `source`, in name order.
fn projects(files: &GenRead, source: &str) -> Result<Vec<String>, GenReadError> {
    let mut out = Vec::new();
    for item in files.scan(source, "simple/", "simple/") {
        let (k, _) = item?;
        if let Some(PypiPath::Index(p)) = store::parse_path(&k.path) {
            out.push(p.to_string());
        }
    }
    Ok(out)
}

/// [`project_list`] on a blocking thread, in a listing slot: the list of a
/// large index is long.
async fn project_list_off_workers(
    server: &Server,
    g: &Generation,
    source: &str,
    form: Form,
) -> Response {
    let Ok(_slot) = server.listing_slots.acquire().await else {
        return server_error("the listing slots are closed".into());
    };
    let (files, src) = (g.files.clone(), source.to_string());
    tokio::task::spawn_blocking(move || project_list(&files, &src, form))
        .await
        .unwrap_or_else(|e| server_error(format!("listing the projects of {source} failed: {e}")))
}

fn project_list(files: &GenRead, source: &str, form: Form) -> Response {
    let names = match projects(files, source) {
        Ok(n) => n,
        Err(e) => return server_error(format!("generation {}: {e}", files.name())),
    };
    if form == Form::Json {
        let body = serde_json::json!({
            "meta": {"api-version": "1.1"},
            "projects": names.iter().map(|n| serde_json::json!({"name": n})).collect::<Vec<_>>(),
        });
        return with_body(StatusCode::OK, JSON_TYPE, body.to_string());
    }
    let mut html = String::from(
        "<!DOCTYPE html>\n<html><head><meta name=\"pypi:repository-version\" content=\"1.1\">\
         <title>Simple index</title></head>\n<body>\n",
    );
    for n in names {
        let _ = writeln!(
            html,
            "<a href=\"{}/\">{}</a><br/>",
            html_escape(&href_encode(&n)),
            html_escape(&n)
        );
    }
    html.push_str("</body></html>\n");
    html_response(form, html)
}

fn html_response(form: Form, html: String) -> Response {
    let ct = if form == Form::PypiHtml {
        HTML_TYPE
    } else {
        "text/html; charset=utf-8"
    };
    with_body(StatusCode::OK, ct, html)
}

/// The version in a distribution file name (wheel or sdist), as written.
fn version_of(filename: &str) -> Option<&str> {
    if let Some(stem) = filename.strip_suffix(".whl") {
        return stem.split('-').nth(1);
    }
    let stem = filename
        .strip_suffix(".tar.gz")
        .or_else(|| filename.strip_suffix(".zip"))?;
    stem.rsplit_once('-').map(|(_, v)| v)
}

async fn project_page(g: &Generation, source: &str, project: &str, form: Form) -> Response {
    let key = ObjectKey {
        source: source.to_string(),
        path: store::index_path(project),
    };
    let f = match g.files.file(&key) {
        Ok(Some(f)) => f,
        Ok(None) => return not_found(&format!("/pypi/{source}/simple/{project}/")),
        Err(e) => return server_error(format!("generation {}: {e}", g.name)),
    };
    if let Err(e) = check_key(&key) {
        return server_error(format!(
            "the catalog of generation {} holds an unsafe key: {e}",
            g.name
        ));
    }
    let fs_path = g.files.bytes_path(&key, &f);
    let bytes = match tokio::fs::read(&fs_path).await {
        Ok(b) => b,
        Err(e) => {
            return server_error(format!(
                "generation {} cannot read {}: {e}",
                g.name,
                fs_path.display()
            ))
        }
    };
    let index: ProjectIndex = match serde_json::from_slice(&bytes) {
        Ok(i) => i,
        Err(e) => {
            return server_error(format!(
                "generation {}: {key} is not a project index: {e}",
                g.name
            ))
        }
    };
    let size_of = |filename: &str| -> u64 {
        let k = ObjectKey {
            source: source.to_string(),
            path: format!("files/{filename}"),
        };
        match g.files.file(&k) {
            Ok(Some(f)) => f.size,
            _ => 0,
        }
    };
    let meta = metadata_hashes(g, source, project).await;
    if form == Form::Json {
        return project_json(&index, &meta, size_of);
    }
    project_html(&index, &meta, form)
}

/// `files/<wheel>.metadata` (PEP 658), when the catalog holds the wheel but
/// no object of that name: the metadata `store::pypi_meta` wrote. `None`
/// leaves the path to the tree.
async fn core_metadata(g: &Generation, source: &str, path: &str) -> Option<Response> {
    let wheel = path.strip_prefix("files/")?.strip_suffix(".metadata")?;
    let key = |path: String| ObjectKey {
        source: source.to_string(),
        path,
    };
    let held = |k: &ObjectKey| g.files.get(k).map(|h| h.is_some());
    if wheel.contains('/') {
        return None;
    }
    match (
        held(&key(path.to_string())),
        held(&key(store::file_path(wheel))),
    ) {
        (Ok(false), Ok(true)) => {}
        (Err(e), _) | (_, Err(e)) => {
            return Some(server_error(format!("generation {}: {e}", g.name)))
        }
        _ => return None,
    }
    let file = g
        .files
        .derived_path(GEN_PYPI_META, source, &metadata_path(wheel));
    let text = tokio::fs::read_to_string(&file).await.ok()?;
    Some(with_body(StatusCode::OK, "text/plain; charset=utf-8", text))
}

/// The SHA-256 of each wheel's metadata file of `project` (empty when
/// none was written).
async fn metadata_hashes(g: &Generation, source: &str, project: &str) -> BTreeMap<String, String> {
    let file = g
        .files
        .derived_path(GEN_PYPI_META, source, &hashes_path(project));
    match tokio::fs::read(&file).await {
        Ok(b) => serde_json::from_slice(&b).unwrap_or_default(),
        Err(_) => BTreeMap::new(),
    }
}

/// A project's page as PEP 691 JSON; `meta` gives the SHA-256 of a wheel's
/// metadata file, `size_of` a file's size.
fn project_json(
    index: &ProjectIndex,
    meta: &BTreeMap<String, String>,
    size_of: impl Fn(&str) -> u64,
) -> Response {
    let mut versions: Vec<&str> = index
        .files
        .iter()
        .filter_map(|f| version_of(&f.filename))
        .collect();
    versions.sort_unstable();
    versions.dedup();
    let files: Vec<serde_json::Value> = index
        .files
        .iter()
        .map(|f| {
            let yanked = match &f.yanked {
                None => serde_json::Value::Bool(false),
                Some(r) if r.is_empty() => serde_json::Value::Bool(true),
                Some(r) => serde_json::Value::String(r.clone()),
            };
            let mut o = serde_json::json!({
                "filename": f.filename,
                "url": format!("../../files/{}", href_encode(&f.filename)),
                "hashes": {"sha256": f.sha256},
                "size": size_of(&f.filename),
                "yanked": yanked,
            });
            if let Some(rp) = &f.requires_python {
                o["requires-python"] = serde_json::Value::String(rp.clone());
            }
            if let Some(h) = meta.get(&f.filename) {
                // PEP 714's name, and PEP 658's for clients before it.
                o["core-metadata"] = serde_json::json!({"sha256": h});
                o["dist-info-metadata"] = serde_json::json!({"sha256": h});
            }
            o
        })
        .collect();
    let body = serde_json::json!({
        "meta": {"api-version": "1.1"},
        "name": index.name,
        "files": files,
        "versions": versions,
    });
    with_body(StatusCode::OK, JSON_TYPE, body.to_string())
}

/// A project's page as PEP 503 HTML; `meta` as for [`project_json`].
fn project_html(index: &ProjectIndex, meta: &BTreeMap<String, String>, form: Form) -> Response {
    let title = html_escape(&index.name);
    let mut html = format!(
        "<!DOCTYPE html>\n<html><head><meta name=\"pypi:repository-version\" content=\"1.1\">\
         <title>Links for {title}</title></head>\n<body>\n<h1>Links for {title}</h1>\n"
    );
    for f in &index.files {
        let href = html_escape(&format!(
            "../../files/{}#sha256={}",
            href_encode(&f.filename),
            f.sha256
        ));
        let mut attrs = String::new();
        if let Some(rp) = &f.requires_python {
            let _ = write!(attrs, " data-requires-python=\"{}\"", html_escape(rp));
        }
        if let Some(reason) = &f.yanked {
            let _ = write!(attrs, " data-yanked=\"{}\"", html_escape(reason));
        }
        if let Some(h) = meta.get(&f.filename) {
            let _ = write!(
                attrs,
                " data-core-metadata=\"sha256={h}\" data-dist-info-metadata=\"sha256={h}\""
            );
        }
        let _ = writeln!(
            html,
            "<a href=\"{href}\"{attrs}>{}</a><br/>",
            html_escape(&f.filename)
        );
    }
    html.push_str("</body></html>\n");
    html_response(form, html)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn content_negotiation() {
        assert_eq!(negotiate(&HeaderMap::new()), Form::Html);
        // What pip sends.
        assert_eq!(
            negotiate(&accept(
                "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01"
            )),
            Form::Json
        );
        assert_eq!(
            negotiate(&accept("application/vnd.pypi.simple.v1+html")),
            Form::PypiHtml
        );
        assert_eq!(
            negotiate(&accept(
                "application/vnd.pypi.simple.v1+json;q=0.2, text/html"
            )),
            Form::Html
        );
        assert_eq!(
            negotiate(&accept("application/vnd.pypi.simple.v1+json;q=0")),
            Form::Html
        );
    }

    #[test]
    fn versions_from_file_names() {
        assert_eq!(version_of("a_b-1.0-py3-none-any.whl"), Some("1.0"));
        assert_eq!(version_of("a-b-2.0rc1.tar.gz"), Some("2.0rc1"));
        assert_eq!(version_of("x.txt"), None);
    }
}
