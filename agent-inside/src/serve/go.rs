//! The Go module proxy over the go sources, under `/go/<source>/`: the
//! GOPROXY tree as carried (the generic tree of files), and the checksum
//! database proxied from what was carried (`store::go`'s `sumdb/<name>/`),
//! as the go command asks for it through its GOPROXY:
//!
//! - `/go/<source>/sumdb/<name>/supported`: `200` when the source carries
//!   database `<name>` (else `404`, and the go command would go to the
//!   database itself);
//! - `/go/<source>/sumdb/<name>/lookup/<module>@<version>`: the carried
//!   record with its id, a blank line and the carried `latest` tree head
//!   (the database's `/lookup` answer, proved in that head by the carried
//!   tiles);
//! - `latest` and `tile/8/<level>/<index>[.p/<width>]` are files of the tree.

use super::generation::{Generation, Server};
use super::request::Req;
use super::response::{not_found, server_error, text, with_body};
use super::tree::tree;
use crate::genread::{FileMeta, GenReadError};
use axum::http::StatusCode;
use axum::response::Response;
use ferry_formats::go::{parse_path, sumdb_path, GoPath, SumdbFile};
use ferry_protocol::catalog::SourceKind;
use ferry_protocol::path::ObjectKey;

/// Everything under `/go/`; `decoded` is the percent-decoded path after
/// `/go/`.
pub(super) async fn route(
    server: &Server,
    g: &Generation,
    decoded: &str,
    req: Req<'_>,
) -> Response {
    let sumdb = decoded
        .split_once('/')
        .filter(|(s, _)| g.files.kind_of(s) == Some(SourceKind::Go))
        .and_then(|(s, rest)| Some((s, rest.strip_prefix("sumdb/")?)))
        .and_then(|(s, rest)| Some((s, rest.split_once('/')?)));
    if let Some((source, (name, file))) = sumdb {
        let held = |path: &str| -> Result<Option<(ObjectKey, FileMeta)>, GenReadError> {
            let key = ObjectKey {
                source: source.to_string(),
                path: path.to_string(),
            };
            Ok(g.files.file(&key)?.map(|f| (key, f)))
        };
        let failed = |e: GenReadError| server_error(format!("generation {}: {e}", g.name));
        let latest = match held(&sumdb_path(name, &SumdbFile::Latest)) {
            Ok(l) => l,
            Err(e) => return failed(e),
        };
        if file == "supported" {
            return match latest {
                Some(_) => text(StatusCode::OK, ""),
                None => not_found(req.path),
            };
        }
        if let Some(version) = file.strip_prefix("lookup/") {
            let record = format!("sumdb/{name}/records/{version}");
            let ok = matches!(
                parse_path(&record),
                Some(GoPath::Sumdb {
                    file: SumdbFile::Record { .. },
                    ..
                })
            );
            if !ok {
                return not_found(req.path);
            }
            let (Some(record), Some(latest)) = (
                match held(&record) {
                    Ok(r) => r,
                    Err(e) => return failed(e),
                },
                latest,
            ) else {
                return not_found(req.path);
            };
            return lookup(g, source, &record, &latest).await;
        }
    }
    tree(server, g, SourceKind::Go, decoded, req).await
}

/// A `/lookup` answer: the record file, a newline, the tree head.
async fn lookup(
    g: &Generation,
    source: &str,
    (record, rf): &(ObjectKey, FileMeta),
    (latest, lf): &(ObjectKey, FileMeta),
) -> Response {
    let read = |k, f| tokio::fs::read(g.files.bytes_path(k, f));
    match (read(record, rf).await, read(latest, lf).await) {
        (Ok(mut r), Ok(note)) => {
            r.push(b'\n');
            r.extend_from_slice(&note);
            match String::from_utf8(r) {
                Ok(body) => with_body(StatusCode::OK, "text/plain; charset=utf-8", body),
                Err(_) => server_error(format!("{record} of source {source} is not UTF-8")),
            }
        }
        (Err(e), _) | (_, Err(e)) => server_error(format!(
            "generation {} cannot read {record} or {latest} of source {source}: {e}",
            g.name
        )),
    }
}
