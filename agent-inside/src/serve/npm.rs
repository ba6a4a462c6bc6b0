//! The npm registry API over the npm sources, under `/npm/<source>/` (what
//! `npm install --registry http://HOST/npm/<source>/` reads):
//!
//! - `/npm/<source>/<name>` (`@scope/name` or `@scope%2fname`): the
//!   package's packument as carried (`store::npm`), every version's
//!   `dist.tarball` rewritten to
//!   `<base>/npm/<source>/tarballs/<name>/-/<base>-<version>.tgz`, `<base>`
//!   from the request's `Host` (as `serve::cargo` does). With `Accept:
//!   application/vnd.npm.install-v1+json` the abbreviated form (`name`,
//!   `dist-tags`, `modified`, and per version only what an install needs),
//!   with that content type; `Vary: Accept` either way.
//! - Everything else (the tarballs) is the generic tree of files.

use super::cargo::public_base;
use super::generation::{Generation, Server};
use super::request::Req;
use super::response::{not_found, server_error, text, with_body};
use super::tree::tree;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use ferry_formats::npm::{check_name, packument_path, tarball_path};
use ferry_protocol::catalog::SourceKind;
use ferry_protocol::path::{check_key, ObjectKey};
use serde_json::{Map, Value};

/// The abbreviated metadata's media type.
const ABBREVIATED: &str = "application/vnd.npm.install-v1+json";
/// The fields of a version the abbreviated form keeps.
const INSTALL_FIELDS: [&str; 16] = [
    "name",
    "version",
    "dependencies",
    "optionalDependencies",
    "peerDependencies",
    "peerDependenciesMeta",
    "bundleDependencies",
    "bundledDependencies",
    "bin",
    "directories",
    "engines",
    "os",
    "cpu",
    "dist",
    "deprecated",
    "hasInstallScript",
];

/// Everything under `/npm/`; `decoded` is the percent-decoded path after
/// `/npm/`.
pub(super) async fn route(
    server: &Server,
    g: &Generation,
    decoded: &str,
    req: Req<'_>,
) -> Response {
    if let Some((source, name)) = decoded.split_once('/') {
        let is_npm = g.files.kind_of(source) == Some(SourceKind::Npm);
        if is_npm && check_name(name).is_ok() {
            return packument(g, source, name, req, server.https).await;
        }
    }
    tree(server, g, SourceKind::Npm, decoded, req).await
}

async fn packument(
    g: &Generation,
    source: &str,
    name: &str,
    req: Req<'_>,
    https: bool,
) -> Response {
    let key = ObjectKey {
        source: source.to_string(),
        path: packument_path(name),
    };
    let f = match g.files.file(&key) {
        Ok(Some(f)) if check_key(&key).is_ok() => f,
        Ok(_) => return not_found(req.path),
        Err(e) => return server_error(format!("generation {}: {e}", g.name)),
    };
    let Some(base) = public_base(req.headers, https) else {
        return text(
            StatusCode::BAD_REQUEST,
            "a packument needs a Host header naming this server",
        );
    };
    let fs_path = g.files.bytes_path(&key, &f);
    let doc: Value = match tokio::fs::read(&fs_path)
        .await
        .map(|b| serde_json::from_slice(&b))
    {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => {
            return server_error(format!("generation {}: {key} is not JSON: {e}", g.name))
        }
        Err(e) => {
            return server_error(format!(
                "generation {} cannot read {}: {e}",
                g.name,
                fs_path.display()
            ))
        }
    };
    let abbreviated = req
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains(ABBREVIATED));
    let body = rewrite(doc, &format!("{base}/npm/{source}"), name, abbreviated);
    let ctype = if abbreviated {
        ABBREVIATED
    } else {
        "application/json"
    };
    let mut r = with_body(StatusCode::OK, ctype, body.to_string());
    r.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept"));
    r
}

/// The packument with tarball URLs under `prefix`, abbreviated if asked.
fn rewrite(mut doc: Value, prefix: &str, name: &str, abbreviated: bool) -> Value {
    if let Some(versions) = doc.get_mut("versions").and_then(Value::as_object_mut) {
        for (v, entry) in versions.iter_mut() {
            if let Some(dist) = entry.get_mut("dist").and_then(Value::as_object_mut) {
                let url = format!("{prefix}/{}", tarball_path(name, v));
                dist.insert("tarball".into(), Value::String(url));
            }
            if abbreviated {
                if let Some(obj) = entry.as_object_mut() {
                    obj.retain(|k, _| INSTALL_FIELDS.contains(&k.as_str()));
                }
            }
        }
    }
    if !abbreviated {
        return doc;
    }
    let mut out = Map::new();
    for k in ["name", "dist-tags", "versions"] {
        if let Some(v) = doc.get(k) {
            out.insert(k.into(), v.clone());
        }
    }
    if let Some(m) = doc.pointer("/time/modified") {
        out.insert("modified".into(), m.clone());
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tarballs_point_here_and_abbreviation_keeps_what_install_needs() {
        let doc = serde_json::json!({"name":"@s/a","dist-tags":{"latest":"1.0.0"},
            "versions":{"1.0.0":{"name":"@s/a","version":"1.0.0","readme":"long","deprecated":"old",
              "dist":{"tarball":"https://up/x.tgz","integrity":"sha512-AA=="}}},
            "time":{"1.0.0":"t","modified":"m"}});
        let full = rewrite(doc.clone(), "http://h/npm/s", "@s/a", false);
        assert_eq!(
            full.pointer("/versions/1.0.0/dist/tarball").unwrap(),
            "http://h/npm/s/tarballs/@s/a/-/a-1.0.0.tgz"
        );
        assert_eq!(full.pointer("/versions/1.0.0/readme").unwrap(), "long");
        let short = rewrite(doc, "http://h/npm/s", "@s/a", true);
        assert!(short.pointer("/versions/1.0.0/readme").is_none());
        assert_eq!(short.pointer("/versions/1.0.0/deprecated").unwrap(), "old");
        assert_eq!(short["modified"], "m");
        assert!(short.get("time").is_none());
    }
}
