//! File responses: one file of a generation streamed from where
//! `GenRead::bytes_path` says its bytes are, with `Content-Length`, `ETag: "sha256:<hex>"`, one byte
//! range (`206`/`416`), `If-Range` and `If-None-Match` (`304`).

use super::generation::Generation;
use super::response::{server_error, tell, text};
use crate::genread::FileMeta;
use axum::body::{Body, Bytes, HttpBody};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use ferry_protocol::path::{check_key, ObjectKey};
use http_range_header::{EndPosition, StartPosition};
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};

/// Bytes read from a file at a time while streaming it.
pub(super) const READ_CHUNK: usize = 256 * 1024;

/// Serves the file `f` at `key` of generation `g` as `content_type`.
pub(super) async fn serve_file(
    g: &Generation,
    key: &ObjectKey,
    f: &FileMeta,
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
    let size = f.size;
    let plan = match plan_request(headers, &etag, size, head) {
        Ok(plan) => plan,
        Err(mut r) => {
            r.headers_mut().insert(header::ETAG, etag_value);
            return *r;
        }
    };
    let fs_path = g.files.bytes_path(key, f);
    let (status, start, len) = match plan {
        RangePlan::Part(start, end) => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        _ => (StatusCode::OK, 0, size),
    };
    let want = if head { 0 } else { len };
    // A small file sent whole and not verified yet is checked from the bytes
    // read to send it: one read and one trip to the blocking pool, where
    // `verify_once` would read it twice in two.
    let checked = head || g.verified.contains(&fs_path);
    let check = (!checked && want == size && want <= READ_CHUNK as u64).then_some(f);
    if !checked && check.is_none() {
        if let Err(r) = verify_once(g, key, f, &fs_path).await {
            return r;
        }
    }
    let body = match open_at(g, key, fs_path, (size, start, want), check).await {
        Ok(Opened::Read(bytes)) => Body::from(bytes),
        Ok(Opened::Stream(file, path)) => Body::new(FileBody {
            file: tokio::fs::File::from_std(file),
            remaining: len,
            buf: Vec::new(),
            path,
        }),
        Err(r) => return r,
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

/// What the conditional and range headers ask of a file with `etag` and
/// `size`: the part to send, or the answer instead of a body (`304`, `416`;
/// the caller adds the ETag).
fn plan_request(
    headers: &HeaderMap,
    etag: &str,
    size: u64,
    head: bool,
) -> Result<RangePlan, Box<Response>> {
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| none_match_hits(v, etag))
    {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        return Err(Box::new(r));
    }
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
        r.headers_mut().insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!("bytes */{size}")).expect("digits"),
        );
        return Err(Box::new(r));
    }
    Ok(plan)
}

/// What a 500 says of a stored file that is not the catalog's (`p`), with
/// its path when known.
fn not_the_catalogs(
    key: &ObjectKey,
    path: Option<&std::path::Path>,
    p: &crate::scrub::ObjectProblem,
) -> String {
    let at = path.map_or(String::new(), |p| format!(" ({})", p.display()));
    format!(
        "the stored file for {key}{at} is not the catalog's: {p}; not served. Run \
         `ferry-in scrub`; the next import rebuilds it from its chunks"
    )
}

/// Reads the stored file of `key` (not in `g.verified` when the caller
/// looked) and checks its size and SHA-256 against the catalog, unless
/// another request did meanwhile: streamed, on a blocking thread, a few at
/// once. A file that is not the catalog's is answered 500, never sent
/// under its ETag.
async fn verify_once(
    g: &Generation,
    key: &ObjectKey,
    f: &FileMeta,
    fs_path: &std::path::Path,
) -> Result<(), Response> {
    let _slot = g
        .verified
        .slots
        .acquire()
        .await
        .map_err(|e| server_error(format!("cannot verify the file for {key}: {e}")))?;
    // Another request may have verified it while this one waited.
    if g.verified.contains(fs_path) {
        return Ok(());
    }
    let path = fs_path.to_path_buf();
    let expected = *f;
    let problem =
        tokio::task::spawn_blocking(move || crate::scrub::check_file(&path, &expected, |_| {}))
            .await
            .map_err(|e| server_error(format!("verifying the file for {key} failed: {e}")))?;
    match problem {
        None => {
            g.verified.insert(fs_path);
            Ok(())
        }
        Some(p) => Err(server_error(format!(
            "generation {}: {}",
            g.name,
            not_the_catalogs(key, Some(fs_path), &p)
        ))),
    }
}

/// A stored file opened for a response.
enum Opened {
    /// The `want` bytes, read at once (a small file, or none wanted).
    Read(Bytes),
    /// The file at the start of the part to send, for [`FileBody`] (and its
    /// path, for error messages).
    Stream(std::fs::File, PathBuf),
}

/// Opens the stored file of `key`, checks it is the `size` the catalog says,
/// and seeks to `start`; up to [`READ_CHUNK`] `want`ed bytes are read at once.
/// All on one blocking thread: a small file costs one trip to the blocking
/// pool, not one for the open, one for the stat and one per read. With
/// `check`, the whole file is read and checked against it (size and
/// SHA-256), and recorded verified when it is good.
async fn open_at(
    g: &Generation,
    key: &ObjectKey,
    fs_path: PathBuf,
    (size, start, want): (u64, u64, u64),
    check: Option<&FileMeta>,
) -> Result<Opened, Response> {
    let path = check.map(|_| fs_path.clone());
    let expected = check.copied();
    let opened = tokio::task::spawn_blocking(move || {
        let opened = open_blocking(fs_path, size, start, want)?;
        if let (Some(f), Opened::Read(bytes)) = (&expected, &opened) {
            let sha = ferry_protocol::id::Sha256::of(bytes);
            if let Some(p) = crate::scrub::problem_of(bytes.len() as u64, sha, f) {
                return Err(OpenError::Bad(p));
            }
        }
        Ok(opened)
    })
    .await
    .map_err(|e| server_error(format!("opening the file for {key} failed: {e}")))?;
    if let (Some(path), Ok(_)) = (&path, &opened) {
        g.verified.insert(path);
    }
    opened.map_err(|e| {
        let what = match e {
            OpenError::Open(e) => format!("cannot open its file for {key}: {e}"),
            OpenError::Stat(e) => format!("cannot stat its file for {key}: {e}"),
            OpenError::Size(len) => {
                format!("the stored file for {key} is {len} bytes, the catalog says {size}")
            }
            OpenError::Seek(e) => format!("cannot seek in its file for {key}: {e}"),
            OpenError::Read(e) => format!("cannot read its file for {key}: {e}"),
            OpenError::Bad(p) => not_the_catalogs(key, path.as_deref(), &p),
        };
        server_error(format!("generation {}: {what}", g.name))
    })
}

/// Why [`open_blocking`] failed.
enum OpenError {
    Open(std::io::Error),
    Stat(std::io::Error),
    /// Not a regular file of the catalog's size: its length.
    Size(u64),
    Seek(std::io::Error),
    Read(std::io::Error),
    /// Read whole to be checked, and not the catalog's.
    Bad(crate::scrub::ObjectProblem),
}

fn open_blocking(path: PathBuf, size: u64, start: u64, want: u64) -> Result<Opened, OpenError> {
    use std::io::{Read, Seek};
    let mut file = std::fs::File::open(&path).map_err(OpenError::Open)?;
    let m = file.metadata().map_err(OpenError::Stat)?;
    if !m.is_file() || m.len() != size {
        return Err(OpenError::Size(m.len()));
    }
    if start > 0 {
        file.seek(std::io::SeekFrom::Start(start))
            .map_err(OpenError::Seek)?;
    }
    match usize::try_from(want) {
        Ok(n) if n <= READ_CHUNK => {
            let mut buf = vec![0; n];
            file.read_exact(&mut buf).map_err(OpenError::Read)?;
            Ok(Opened::Read(Bytes::from(buf)))
        }
        _ => Ok(Opened::Stream(file, path)),
    }
}

/// Whether an `If-None-Match` value matches `etag` (weak comparison).
pub(super) fn none_match_hits(value: &HeaderValue, etag: &str) -> bool {
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
pub(super) enum RangePlan {
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
pub(super) fn plan_range(value: &str, size: u64) -> RangePlan {
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
                tell(format_args!("reading {}: {e}", this.path.display()));
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
                    tell(format_args!("{e}"));
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
pub(super) fn content_type(name: &str) -> &'static str {
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
