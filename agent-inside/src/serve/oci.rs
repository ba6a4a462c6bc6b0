//! The OCI distribution pull API under `/v2/` (read-only).
//!
//! Manifests, blobs, `tags/list` and `_catalog` come from the OCI store's
//! catalog paths (see `store::oci`). `GET /v2/<name>/referrers/<digest>`
//! answers an image index of the manifests held by the repository's source
//! whose `subject` is that digest, filtered by `?artifactType=`; the
//! subject map is built once per generation and source, on first use.

use super::file::{none_match_hits, serve_file};
use super::generation::{Generation, Server};
use super::request::{decode, query_number, query_param, BadRequest};
use super::response::{link_next, server_error, with_body, with_generation};
use crate::genread::{FileMeta, GenRead, GenReadError};
use crate::store::oci as oci_store;
use axum::body::Body;
use axum::http::header::{self, HeaderName};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use ferry_protocol::catalog::SourceKind;
use ferry_protocol::path::{check_key, ObjectKey};
use std::sync::Arc;

/// Sent with every `/v2/` response.
const DOCKER_API_VERSION: HeaderName = HeaderName::from_static("docker-distribution-api-version");
/// The digest of a manifest or blob served.
const DOCKER_CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");
/// A tag file is `sha256:<hex>` and a newline at most; anything larger is broken.
const MAX_TAG_FILE: u64 = 72;

/// Everything under `/v2/`: the read-only OCI distribution pull API.
pub(super) async fn v2(
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
    let decoded = match decode(uri.path(), rest) {
        Ok(d) => d,
        Err(e) => return oci_bad_request(&e),
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
        ("referrers", _) => "referrers",
        _ => {
            return oci_error(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                format!("not found: {}", uri.path()),
            )
        }
    };
    if !oci_store::valid_repo(&name) {
        return oci_error(
            StatusCode::BAD_REQUEST,
            "NAME_INVALID",
            format!("invalid repository name {name:?}"),
        );
    }
    let found = match find_repo(&g.files, &name) {
        Ok(f) => f,
        Err(e) => return read_failed(g, &e),
    };
    let Some(source) = found.as_deref() else {
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
        "referrers" => oci_referrers(g, source, reference, query).await,
        _ => oci_blob(g, source, reference, headers, head).await,
    }
}

/// The 500 answering a generation that cannot be read.
fn read_failed(g: &Generation, e: &GenReadError) -> Response {
    server_error(format!("generation {}: {e}", g.name))
}

/// The first OCI source (in name order) holding a tag of repository `name`.
fn find_repo(files: &GenRead, name: &str) -> Result<Option<String>, GenReadError> {
    let prefix = oci_store::tags_prefix(name);
    for s in files
        .sources()
        .iter()
        .filter(|(_, k)| **k == SourceKind::Oci)
        .map(|(s, _)| s)
    {
        if files
            .scan(s, &prefix, &prefix)
            .next()
            .transpose()?
            .is_some()
        {
            return Ok(Some(s.clone()));
        }
    }
    Ok(None)
}

/// The file at `path` of `source` in generation `g`, if it holds one there.
fn oci_file(
    g: &Generation,
    source: &str,
    path: String,
) -> Result<Option<(ObjectKey, FileMeta)>, GenReadError> {
    let key = ObjectKey {
        source: source.to_string(),
        path,
    };
    Ok(g.files.file(&key)?.map(|f| (key, f)))
}

/// Reads a small file of generation `g`'s OCI store whole, checking its size
/// against the catalog (and `max`).
async fn read_oci_file(
    g: &Generation,
    key: &ObjectKey,
    f: &FileMeta,
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
    let fs_path = g.files.bytes_path(key, f);
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
        match oci_store::parse_digest(reference) {
            Some(hex) => hex.to_string(),
            None => {
                return oci_error(
                    StatusCode::BAD_REQUEST,
                    "DIGEST_INVALID",
                    format!("{reference:?} is not a digest this registry holds (sha256:<64 lower-case hex>)"),
                )
            }
        }
    } else if oci_store::valid_tag(reference) {
        let tag = match oci_file(g, source, oci_store::tag_path(name, reference)) {
            Ok(t) => t,
            Err(e) => return read_failed(g, &e),
        };
        let Some((key, f)) = tag else {
            return unknown(format!("manifest unknown: {name} has no tag {reference}"));
        };
        let bytes = match read_oci_file(g, &key, &f, MAX_TAG_FILE).await {
            Ok(b) => b,
            Err(r) => return r,
        };
        match oci_store::parse_tag_file(&bytes) {
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
    let manifest = match oci_file(g, source, oci_store::manifest_path(&hex)) {
        Ok(m) => m,
        Err(e) => return read_failed(g, &e),
    };
    let Some((key, f)) = manifest else {
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
    let bytes = match read_oci_file(g, &key, &f, oci_store::MAX_MANIFEST_BYTES).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let media_type = match oci_store::media_type(&bytes).map(|t| HeaderValue::from_str(&t)) {
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
    let Some(hex) = oci_store::parse_digest(reference) else {
        return oci_error(
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
            format!(
                "{reference:?} is not a digest this registry holds (sha256:<64 lower-case hex>)"
            ),
        );
    };
    let blob = match oci_file(g, source, oci_store::blob_path(hex)) {
        Ok(None) => oci_file(g, source, oci_store::manifest_path(hex)),
        other => other,
    };
    let blob = match blob {
        Ok(b) => b,
        Err(e) => return read_failed(g, &e),
    };
    let Some((key, f)) = blob else {
        return oci_error(
            StatusCode::NOT_FOUND,
            "BLOB_UNKNOWN",
            format!("blob unknown: sha256:{hex}"),
        );
    };
    let mut r = serve_file(g, &key, &f, "application/octet-stream", headers, head).await;
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
    let prefix = oci_store::tags_prefix(name);
    let mut tags = Vec::new();
    for item in g.files.scan(source, &prefix, &prefix) {
        match item {
            Ok((k, _)) => tags.push(k.path[prefix.len()..].to_string()),
            Err(e) => return read_failed(g, &e),
        }
    }
    let tags = tags
        .iter()
        .map(String::as_str)
        .filter(|t| oci_store::valid_tag(t));
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
        .files
        .sources()
        .iter()
        .filter(|(_, k)| **k == SourceKind::Oci)
    {
        for item in g.files.scan(source, "repos/", "repos/") {
            let k = match item {
                Ok((k, _)) => k,
                Err(e) => return read_failed(g, &e),
            };
            if let Some(oci_store::OciPath::Tag { repo, .. }) = oci_store::parse_path(&k.path) {
                repos.insert(repo.to_string());
            }
        }
    }
    let (page, next) = match paginate(repos.iter().map(String::as_str), query) {
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
    let bad = |e: BadRequest| Box::new(oci_bad_request(&e));
    let n = query_number(query, "n").map_err(bad)?;
    let last = query_param(query, "last").map_err(bad)?;
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

/// An error as the distribution spec has them: `{"errors":[{"code","message"}]}`.
fn oci_error(status: StatusCode, code: &str, message: String) -> Response {
    let body = serde_json::json!({ "errors": [{ "code": code, "message": message }] }).to_string();
    with_body(status, "application/json", body)
}

/// A request the decode-or-400 helper turned down, as a registry error.
fn oci_bad_request(e: &BadRequest) -> Response {
    oci_error(StatusCode::BAD_REQUEST, e.oci_code(), e.to_string())
}

/// Descriptors of the manifests held by one source, by the hex of their subject.
type ReferrerMap = std::collections::HashMap<String, Vec<serde_json::Value>>;

/// A referrer map's key: the generation's name and the source.
type ReferrerKey = (String, String);

/// The referrer maps built so far. Only the current generation's are kept.
static REFERRERS: std::sync::Mutex<Vec<(ReferrerKey, Arc<ReferrerMap>)>> =
    std::sync::Mutex::new(Vec::new());

/// The referrer map of `source` in generation `g`, built on first use by
/// reading every manifest the source holds.
async fn referrer_map(g: &Generation, source: &str) -> Result<Arc<ReferrerMap>, Response> {
    let id = (g.name.clone(), source.to_string());
    {
        let cache = REFERRERS.lock().expect("referrers cache");
        if let Some((_, m)) = cache.iter().find(|(k, _)| *k == id) {
            return Ok(m.clone());
        }
    }
    let prefix = ferry_formats::oci::MANIFESTS_PREFIX;
    let mut manifests = Vec::new();
    for item in g.files.scan(source, prefix, prefix) {
        let (key, held) = item.map_err(|e| read_failed(g, &e))?;
        if let Some(f) = held.file() {
            manifests.push((key, f));
        }
    }
    let mut map = ReferrerMap::new();
    for (key, f) in &manifests {
        let Some(oci_store::OciPath::Manifest(hex)) = oci_store::parse_path(&key.path) else {
            continue;
        };
        let bytes = read_oci_file(g, key, f, oci_store::MAX_MANIFEST_BYTES).await?;
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            continue;
        };
        let Some(subject) = v
            .pointer("/subject/digest")
            .and_then(|d| d.as_str())
            .and_then(oci_store::parse_digest)
        else {
            continue;
        };
        let media_type = oci_store::media_type(&bytes).unwrap_or_default();
        let mut d = serde_json::json!({
            "mediaType": media_type,
            "digest": format!("sha256:{hex}"),
            "size": f.size,
        });
        let artifact_type = v
            .get("artifactType")
            .or_else(|| v.pointer("/config/mediaType"))
            .and_then(|t| t.as_str());
        if let Some(t) = artifact_type {
            d["artifactType"] = t.into();
        }
        if let Some(a) = v.get("annotations").filter(|a| a.is_object()) {
            d["annotations"] = a.clone();
        }
        map.entry(subject.to_string()).or_default().push(d);
    }
    let map = Arc::new(map);
    let mut cache = REFERRERS.lock().expect("referrers cache");
    cache.retain(|((name, _), _)| *name == g.name);
    cache.push((id, map.clone()));
    Ok(map)
}

/// `GET /v2/<name>/referrers/<digest>`, with `artifactType`.
async fn oci_referrers(
    g: &Generation,
    source: &str,
    reference: &str,
    query: Option<&str>,
) -> Response {
    let Some(hex) = oci_store::parse_digest(reference) else {
        return oci_error(
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
            format!("{reference:?} is not a digest (sha256:<64 lower-case hex>)"),
        );
    };
    let map = match referrer_map(g, source).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    let filter = match query_param(query, "artifactType") {
        Ok(f) => f,
        Err(e) => return oci_bad_request(&e),
    };
    let manifests: Vec<&serde_json::Value> = map
        .get(hex)
        .into_iter()
        .flatten()
        .filter(|d| {
            filter
                .as_deref()
                .is_none_or(|t| d.get("artifactType").and_then(|a| a.as_str()) == Some(t))
        })
        .collect();
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": oci_store::INDEX_MEDIA_TYPE,
        "manifests": manifests,
    })
    .to_string();
    let mut r = with_body(StatusCode::OK, oci_store::INDEX_MEDIA_TYPE, body);
    if filter.is_some() {
        r.headers_mut().insert(
            HeaderName::from_static("oci-filters-applied"),
            HeaderValue::from_static("artifactType"),
        );
    }
    r
}
