//! The trees of files (`/files/`, `/apt/`, `/yum/`, `/pypi/`, `/helm/`): a
//! path of a source is resolved in the catalog (links included) and answered
//! with the file, a listing of the directory, or a redirect to its `/`.

use super::file::{content_type, serve_file};
use super::generation::{Generation, Server};
use super::listing::{children_from, listing, next_url, read_page, Entry, EntryKind};
use super::request::{query_param, tree_path, Req};
use super::response::{not_found, redirect, server_error, text};
use crate::genread::{FileMeta, GenRead, GenReadError, Held};
use axum::http::StatusCode;
use axum::response::Response;
use ferry_protocol::catalog::SourceKind;
use ferry_protocol::path::ObjectKey;

/// At most this many symbolic links are followed for one request.
const MAX_LINK_HOPS: usize = 8;

/// Everything under `/<kind>/` for a kind served as a tree of files;
/// `decoded` is the percent-decoded path after that prefix.
pub(super) async fn tree(
    server: &Server,
    g: &Generation,
    kind: SourceKind,
    decoded: &str,
    req: Req<'_>,
) -> Response {
    let raw = req.path;
    if decoded.is_empty() {
        let entries = g
            .files
            .sources()
            .iter()
            .filter(|(_, k)| **k == kind)
            .map(|(s, _)| Entry {
                name: s.clone(),
                kind: EntryKind::Dir,
            })
            .collect::<Vec<_>>();
        return listing(&format!("/{}/", kind.name()), false, &entries, None);
    }
    let p = match tree_path(raw, decoded) {
        Ok(p) => p,
        Err(e) => return e.response(),
    };
    if g.files.kind_of(p.source) != Some(kind) {
        return not_found(raw);
    }
    let resolved = match resolve(&g.files, p.source, p.path) {
        Ok(r) => r,
        Err(e) => return server_error(format!("generation {}: {e}", g.name)),
    };
    match resolved {
        Resolved::File(_, _) if p.want_dir => text(
            StatusCode::NOT_FOUND,
            format!("not found: {raw} (a file, not a directory)"),
        ),
        Resolved::File(key, f) => {
            let ct = content_type(decoded);
            serve_file(g, &key, &f, ct, req.headers, req.head).await
        }
        Resolved::Dir(dir) if p.want_dir => {
            let marker = match query_param(req.query, "marker") {
                Ok(m) => m,
                Err(e) => return e.response(),
            };
            let page = match read_page(server, &g.files, p.source, &dir, marker).await {
                Ok(page) => page,
                Err(r) => return r,
            };
            let next = page.next.map(|m| next_url(raw, &m));
            let title = format!("/{}/{decoded}", kind.name());
            listing(&title, true, &page.entries, next.as_deref())
        }
        Resolved::Dir(_) => redirect(&format!("{raw}/")),
        Resolved::Missing => not_found(raw),
    }
}

/// What a path in a source stands for, once links are followed.
pub enum Resolved {
    /// A regular file, under its real key.
    File(ObjectKey, FileMeta),
    /// A directory: a prefix of some objects' paths (`""` is the source root).
    Dir(String),
    /// Nothing, a dangling link, a link loop, or a path through a file.
    Missing,
}

/// Walks `path` in `source` component by component, replacing every symbolic
/// link met (at the end or in the middle) by its target, read relative to the
/// link's directory. Works on the generation's index alone: `..` can never
/// climb above the source root.
pub fn resolve(files: &GenRead, source: &str, path: &str) -> Result<Resolved, GenReadError> {
    let mut key = ObjectKey {
        source: source.to_string(),
        path: String::with_capacity(path.len()),
    };
    // For each component in `key.path`, the length of `key.path` before it.
    let mut lens: Vec<usize> = Vec::new();
    // Components still to walk, last first.
    let mut todo: Vec<String> = path.split('/').rev().map(String::from).collect();
    let mut hops = 0;
    while let Some(comp) = todo.pop() {
        match comp.as_str() {
            "" | "." => {}
            ".." => match lens.pop() {
                Some(len) => key.path.truncate(len),
                None => return Ok(Resolved::Missing),
            },
            name => {
                lens.push(key.path.len());
                if !key.path.is_empty() {
                    key.path.push('/');
                }
                key.path.push_str(name);
                match files.get(&key)? {
                    None => {}
                    Some(Held::File(f)) => {
                        return Ok(if todo.is_empty() {
                            Resolved::File(key, f)
                        } else {
                            Resolved::Missing
                        });
                    }
                    Some(Held::Link(target)) => {
                        hops += 1;
                        if hops > MAX_LINK_HOPS || target.starts_with('/') {
                            return Ok(Resolved::Missing);
                        }
                        if let Some(len) = lens.pop() {
                            key.path.truncate(len);
                        }
                        todo.extend(target.split('/').rev().map(String::from));
                    }
                }
            }
        }
    }
    if key.path.is_empty() || !children_from(files, source, &key.path, None, 1)?.is_empty() {
        Ok(Resolved::Dir(key.path))
    } else {
        Ok(Resolved::Missing)
    }
}
