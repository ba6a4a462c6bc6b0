//! Directory listings of the trees (`/files/`, `/apt/`, …): the direct
//! children of a directory, read from the catalog a page at a time, rendered
//! as HTML.
//!
//! A page holds at most `page_size` entries ([`super::settings::ServeSettings`]);
//! when more remain, the page ends with a `next page` link and the response
//! carries `Link: <…?marker=…>; rel="next"`. The marker is the last entry of
//! the page as its link reads (a directory with its `/`), so each page costs
//! one catalog lookup per entry, however large the directory. Pages are built
//! on a blocking thread, a few at a time (`Server::listing_slots`), never on
//! the async workers.

use super::generation::Server;
use super::response::{href_encode, html_escape, link_next, server_error, with_body};
use crate::genread::{GenRead, GenReadError, Held};
use axum::http::StatusCode;
use axum::response::Response;
use std::fmt::Write as _;
use std::sync::Arc;

/// One line of a directory listing.
pub(super) struct Entry {
    pub(super) name: String,
    pub(super) kind: EntryKind,
}

pub(super) enum EntryKind {
    Dir,
    File(u64),
    Link(String),
}

impl Entry {
    /// The entry as the marker of the page it ends: a directory with its `/`.
    fn marker(&self) -> String {
        match self.kind {
            EntryKind::Dir => format!("{}/", self.name),
            _ => self.name.clone(),
        }
    }
}

/// One page of a directory's children.
pub(super) struct Page {
    pub(super) entries: Vec<Entry>,
    /// The marker of the next page, when more entries follow.
    pub(super) next: Option<String>,
}

/// At most `max` direct children of `dir` (`""`: the root) of `source`, in
/// key order, after `marker` when given. Each step is one range lookup in
/// the generation's index: a subdirectory is skipped over whole.
pub(super) fn children_from(
    files: &GenRead,
    source: &str,
    dir: &str,
    marker: Option<&str>,
    max: usize,
) -> Result<Vec<Entry>, GenReadError> {
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    let mut out = Vec::new();
    let mut from = match marker {
        // `0` follows `/`: the first path after everything in `child/`.
        Some(m) => match m.strip_suffix('/') {
            Some(child) => format!("{prefix}{child}0"),
            None => format!("{prefix}{m}\0"),
        },
        None => prefix.clone(),
    };
    while out.len() < max {
        let Some(next) = files.scan(source, &prefix, &from).next() else {
            break;
        };
        let (key, object) = next?;
        let rest = &key.path[prefix.len()..];
        match rest.split_once('/') {
            Some((child, _)) => {
                out.push(Entry {
                    name: child.to_string(),
                    kind: EntryKind::Dir,
                });
                from = format!("{prefix}{child}0");
            }
            None => {
                out.push(Entry {
                    name: rest.to_string(),
                    kind: match object {
                        Held::File(f) => EntryKind::File(f.size),
                        Held::Link(target) => EntryKind::Link(target),
                    },
                });
                // The first path after this one.
                from = format!("{}\0", key.path);
            }
        }
    }
    Ok(out)
}

/// One page of `dir`'s children: one more than a page is read to learn
/// whether a next page exists.
fn page(
    files: &GenRead,
    source: &str,
    dir: &str,
    marker: Option<&str>,
    size: usize,
) -> Result<Page, GenReadError> {
    let mut entries = children_from(files, source, dir, marker, size.saturating_add(1))?;
    let next = if entries.len() > size {
        entries.truncate(size);
        entries.last().map(Entry::marker)
    } else {
        None
    };
    Ok(Page { entries, next })
}

/// Reads one page of `dir` in `source` on a blocking thread, waiting for a
/// listing slot first.
pub(super) async fn read_page(
    server: &Server,
    files: &Arc<GenRead>,
    source: &str,
    dir: &str,
    marker: Option<String>,
) -> Result<Page, Response> {
    let _slot = server
        .listing_slots
        .acquire()
        .await
        .map_err(|_| server_error("the listing slots are closed".into()))?;
    let files = files.clone();
    let (src, path, size) = (source.to_string(), dir.to_string(), server.page_size);
    tokio::task::spawn_blocking(move || page(&files, &src, &path, marker.as_deref(), size))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
        .map_err(|e| server_error(format!("building a listing of {source}/{dir} failed: {e}")))
}

/// An HTML directory listing titled `title` (already decoded). `next` is the
/// URL of the next page, if any (`raw` path and query, so a valid header).
pub(super) fn listing(
    title: &str,
    with_parent: bool,
    entries: &[Entry],
    next: Option<&str>,
) -> Response {
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
    html.push_str("</ul>\n");
    if let Some(next) = next {
        // Relative (the query alone), so it holds on an address that serves
        // this tree at another path (`serve::listeners`).
        let query = next.find('?').map_or(next, |i| &next[i..]);
        let _ = writeln!(
            html,
            "<p><a rel=\"next\" href=\"{}\">next page</a></p>",
            html_escape(query)
        );
    }
    html.push_str("</body></html>\n");
    let mut r = with_body(StatusCode::OK, "text/html; charset=utf-8", html);
    if let Some(next) = next {
        link_next(&mut r, next);
    }
    r
}

/// The URL of the page after `marker` of the listing at raw path `raw`.
pub(super) fn next_url(raw: &str, marker: &str) -> String {
    format!("{raw}?marker={}", href_encode(marker))
}
