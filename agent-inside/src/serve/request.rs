//! Decode or 400: the one place a request's path and query are
//! percent-decoded and checked before any handler uses them.
//!
//! Every handler takes its path through [`decode`] and then [`source_name`] /
//! [`object_path`] (or [`tree_path`], which does both for the trees), and its
//! query parameters through [`query_param`] / [`query_number`]. What does not
//! decode or breaks [`ferry_protocol::path`]'s rules is a [`BadRequest`],
//! answered with 400 (plain text, or the registry's JSON error under `/v2/`)
//! before anything is looked up.

use super::response::text;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use ferry_protocol::path::{check_path, check_source_name};

/// What one handler reads of a request: the raw (still percent-encoded)
/// path, the raw query, the headers, and whether it is a HEAD.
#[derive(Clone, Copy)]
pub(super) struct Req<'a> {
    pub(super) path: &'a str,
    pub(super) query: Option<&'a str>,
    pub(super) headers: &'a HeaderMap,
    pub(super) head: bool,
}

/// Why a request's path or query cannot be used: the 400 to send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum BadRequest {
    /// A `%XX` escape is broken, or the bytes are not UTF-8.
    #[error("bad path {raw}: invalid percent-encoding or not UTF-8")]
    PathEncoding { raw: String },
    /// A source name or object path breaks the protocol's path rules.
    #[error("bad path {raw}: {reason}")]
    UnsafePath { raw: String, reason: String },
    /// A query parameter's value does not decode.
    #[error("bad query parameter {name}: invalid percent-encoding or not UTF-8")]
    QueryEncoding { name: String },
    /// A query parameter that must be a number is not one.
    #[error("{name}={value:?} is not a number")]
    NotANumber { name: String, value: String },
}

impl BadRequest {
    /// The plain-text 400.
    pub(super) fn response(&self) -> Response {
        text(StatusCode::BAD_REQUEST, self.to_string())
    }

    /// The distribution spec's error code for this problem under `/v2/`.
    pub(super) fn oci_code(&self) -> &'static str {
        match self {
            BadRequest::PathEncoding { .. } | BadRequest::UnsafePath { .. } => "NAME_INVALID",
            BadRequest::QueryEncoding { .. } => "UNSUPPORTED",
            BadRequest::NotANumber { .. } => "PAGINATION_NUMBER_INVALID",
        }
    }
}

/// Percent-decodes `part`, a piece of the request path `raw`.
pub(super) fn decode(raw: &str, part: &str) -> Result<String, BadRequest> {
    percent_decode(part).ok_or_else(|| BadRequest::PathEncoding { raw: raw.into() })
}

/// Checks a decoded source name from request path `raw`.
pub(super) fn source_name(raw: &str, name: &str) -> Result<(), BadRequest> {
    check_source_name(name).map_err(|e| unsafe_path(raw, e))
}

/// Checks a decoded object path from request path `raw`.
pub(super) fn object_path(raw: &str, path: &str) -> Result<(), BadRequest> {
    check_path(path).map_err(|e| unsafe_path(raw, e))
}

fn unsafe_path(raw: &str, reason: impl std::fmt::Display) -> BadRequest {
    BadRequest::UnsafePath {
        raw: raw.into(),
        reason: reason.to_string(),
    }
}

/// A checked `<source>[/<path>][/]` under a tree such as `/files/`.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct TreePath<'a> {
    pub(super) source: &'a str,
    /// `""` for the source's root.
    pub(super) path: &'a str,
    /// The request ended in `/` (or named the source root as `<source>/`).
    pub(super) want_dir: bool,
}

/// Splits a decoded, non-empty tree path and checks its parts.
pub(super) fn tree_path<'a>(raw: &str, decoded: &'a str) -> Result<TreePath<'a>, BadRequest> {
    let (source, path, want_dir) = match decoded.split_once('/') {
        None => (decoded, "", false),
        Some((s, p)) => match p.strip_suffix('/') {
            Some(p) => (s, p, true),
            None => (s, p, p.is_empty()),
        },
    };
    source_name(raw, source)?;
    if !path.is_empty() {
        object_path(raw, path)?;
    }
    Ok(TreePath {
        source,
        path,
        want_dir,
    })
}

/// The value of `name` in a query string, percent-decoded (`+` is kept as
/// is); `None` when the parameter is absent.
pub(super) fn query_param(query: Option<&str>, name: &str) -> Result<Option<String>, BadRequest> {
    let Some(query) = query else { return Ok(None) };
    let found = query
        .split('&')
        .map(|kv| kv.split_once('=').unwrap_or((kv, "")))
        .find(|(k, _)| *k == name);
    match found {
        None => Ok(None),
        Some((_, v)) => percent_decode(v)
            .map(Some)
            .ok_or_else(|| BadRequest::QueryEncoding { name: name.into() }),
    }
}

/// A query parameter that must be a whole number.
pub(super) fn query_number(query: Option<&str>, name: &str) -> Result<Option<usize>, BadRequest> {
    match query_param(query, name)? {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| BadRequest::NotANumber {
            name: name.into(),
            value: v,
        }),
    }
}

/// Decodes `%XX` escapes; `None` for a bad escape or bytes that are not UTF-8.
pub(super) fn percent_decode(s: &str) -> Option<String> {
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
