//! Small response builders every handler shares: in-memory bodies, plain-text
//! errors, redirects, the generation header, and the escaping HTML pages need.

use super::generation::Generation;
use axum::body::Body;
use axum::http::header::{self, HeaderName};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use std::fmt::Write as _;

/// Names the generation a response comes from.
pub(super) const X_FERRY_GENERATION: HeaderName = HeaderName::from_static("x-ferry-generation");

/// A response with a body held in memory and its exact length.
pub(super) fn with_body(status: StatusCode, content_type: &'static str, body: String) -> Response {
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

/// A short plain-text response.
pub(super) fn text(status: StatusCode, body: impl Into<String>) -> Response {
    with_body(status, "text/plain; charset=utf-8", body.into())
}

/// `404 not found: <path>`.
pub(super) fn not_found(path: &str) -> Response {
    text(StatusCode::NOT_FOUND, format!("not found: {path}"))
}

/// A 500, also told to the operator on stderr.
pub(super) fn server_error(msg: String) -> Response {
    tell(format_args!("{msg}"));
    text(StatusCode::INTERNAL_SERVER_ERROR, msg)
}

/// Tells the operator `ferry-in: <what>` on stderr. Unlike `eprintln!`, a
/// closed stderr (a supervisor that went away) is ignored rather than a
/// panic that would stop the server.
pub(super) fn tell(what: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "ferry-in: {what}");
}

/// A 301 to `location`, a path taken from the request, so a valid header value.
pub(super) fn redirect(location: &str) -> Response {
    let mut r = text(
        StatusCode::MOVED_PERMANENTLY,
        format!("moved to {location}"),
    );
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// Adds `Link: <target>; rel="next"`.
pub(super) fn link_next(r: &mut Response, target: &str) {
    if let Ok(v) = HeaderValue::from_str(&format!("<{target}>; rel=\"next\"")) {
        r.headers_mut().insert(header::LINK, v);
    }
}

/// Names generation `g` in the `X-Ferry-Generation` header.
pub(super) fn with_generation(mut r: Response, g: &Generation) -> Response {
    if let Ok(v) = HeaderValue::from_str(&g.name) {
        r.headers_mut().insert(X_FERRY_GENERATION, v);
    }
    r
}

/// Percent-encodes everything but unreserved characters, for a relative href.
pub(super) fn href_encode(name: &str) -> String {
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

/// Escapes text for HTML content and attribute values.
pub(super) fn html_escape(s: &str) -> String {
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
