//! The few S3 requests `publish` needs, signed by `rusty-s3` (SigV4,
//! presigned URLs: the payload is not signed) and sent by `ureq`.
//!
//! Every request is retried on a transport error, a 5xx or a 429 (with
//! 1, 2, 4 … s between tries, `retries` more tries); any other status is an
//! error at once. An error names the request, the key and the HTTP status,
//! with the start of the server's answer (S3 puts its `<Code>` there).
//! Uploads stream from the file (no object is held in memory); a file over
//! [`MULTIPART_OVER`] goes up in parts.

use anyhow::{anyhow, bail, Context, Result};
use ferry_protocol::id::{Sha256, Sha256Hasher, Sha256Reader};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Files larger than this are uploaded in parts (S3 allows 5 GiB in one PUT).
pub const MULTIPART_OVER: u64 = 64 << 20;
/// S3 allows at most this many parts.
const MAX_PARTS: u64 = 10_000;
/// How long a signed URL is valid (one try of one request).
const URL_VALID: Duration = Duration::from_secs(3600);
/// The largest small object (`current`, a manifest, a listing) read.
const SMALL: u64 = 64 << 20;

/// Where to publish: the bucket and how to reach it.
#[derive(Clone, Debug)]
pub struct Target {
    /// `http://host:port` or `https://host`.
    pub endpoint: String,
    /// The bucket (it must exist).
    pub bucket: String,
    /// Its region (SigV4 signs it; MinIO and moto take any).
    pub region: String,
    /// Keys start with this (empty, or ending in `/`).
    pub prefix: String,
    /// Virtual-host style URLs (`bucket.host`) instead of path style
    /// (`host/bucket`).
    pub virtual_host: bool,
    /// A PEM file of the CA certificates to trust for https (else the
    /// system's roots).
    pub ca: Option<PathBuf>,
    /// More tries of a request that failed in a way worth retrying.
    pub retries: u32,
    /// Files larger than this go up in parts of at least this size
    /// ([`MULTIPART_OVER`]; smaller in tests: S3 takes parts of 5 MiB or more).
    pub part_size: u64,
}

impl Target {
    /// A name for this bucket and prefix, for messages.
    pub fn describe(&self) -> String {
        format!(
            "{}/{}/{}",
            self.endpoint.trim_end_matches('/'),
            self.bucket,
            self.prefix
        )
    }
}

/// Requests sent, for the report.
#[derive(Debug, Default)]
pub struct Counters {
    /// PUT requests that succeeded (a multipart upload counts its parts).
    pub puts: AtomicU64,
    /// Bytes of the bodies of those PUTs.
    pub put_bytes: AtomicU64,
    /// DELETE requests that succeeded.
    pub deletes: AtomicU64,
    /// GET and LIST requests.
    pub gets: AtomicU64,
}

/// A bucket, with credentials and an HTTP agent.
pub struct Client {
    bucket: Bucket,
    creds: Option<Credentials>,
    agent: ureq::Agent,
    target: Target,
    /// What was sent.
    pub counters: Counters,
}

/// Why one try failed.
enum Try {
    /// Worth another try (transport error, 5xx, 429).
    Again(String),
    /// Not.
    Fail(anyhow::Error),
}

/// The status and start of the body of a response that is not a success.
fn refused(what: &str, resp: ureq::http::Response<ureq::Body>) -> Try {
    let status = resp.status().as_u16();
    let mut body = String::new();
    let _ = resp
        .into_body()
        .into_with_config()
        .limit(4096)
        .reader()
        .read_to_string(&mut body);
    let body: String = body.chars().take(400).collect();
    let why = format!("{what}: HTTP {status}: {}", body.trim());
    if status >= 500 || status == 429 {
        Try::Again(why)
    } else {
        Try::Fail(anyhow!(why))
    }
}

/// The body of a successful answer (at most `SMALL` bytes) as text, or why
/// not: a refusal (`refused`) or a read that broke off (worth another try).
fn small_answer(what: &str, resp: ureq::http::Response<ureq::Body>) -> Result<String, Try> {
    if !resp.status().is_success() {
        return Err(refused(what, resp));
    }
    resp.into_body()
        .into_with_config()
        .limit(SMALL)
        .read_to_string()
        .map_err(|e| Try::Again(format!("{what}: {e}")))
}

impl Client {
    /// A client of `target`, with credentials from `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`) when set; else
    /// requests go unsigned (a bucket open to writes).
    pub fn new(target: &Target) -> Result<Client> {
        let endpoint: url::Url = target.endpoint.parse().with_context(|| {
            format!(
                "S3 endpoint {:?} is not a URL (give http(s)://host:port)",
                target.endpoint
            )
        })?;
        if !matches!(endpoint.scheme(), "http" | "https") {
            bail!(
                "S3 endpoint {} must start with https:// (or http:// for a test server)",
                target.endpoint
            );
        }
        if target.bucket.is_empty() {
            bail!("no S3 bucket given (--bucket or FERRY_S3_BUCKET)");
        }
        if !target.prefix.is_empty() && !target.prefix.ends_with('/') {
            bail!(
                "S3 key prefix {:?} must end with '/' (or be empty)",
                target.prefix
            );
        }
        let style = if target.virtual_host {
            UrlStyle::VirtualHost
        } else {
            UrlStyle::Path
        };
        let bucket = Bucket::new(
            endpoint,
            style,
            target.bucket.clone(),
            target.region.clone(),
        )
        .map_err(|e| anyhow!("S3 bucket {} at {}: {e}", target.bucket, target.endpoint))?;
        let creds = match (
            std::env::var("AWS_ACCESS_KEY_ID"),
            std::env::var("AWS_SECRET_ACCESS_KEY"),
        ) {
            (Ok(k), Ok(s)) => Some(match std::env::var("AWS_SESSION_TOKEN") {
                Ok(t) => Credentials::new_with_token(k, s, t),
                Err(_) => Credentials::new(k, s),
            }),
            (Err(_), Err(_)) => None,
            _ => bail!(
                "set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or neither, for a bucket open to anonymous writes)"
            ),
        };
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(300)))
            .timeout_recv_body(Some(Duration::from_secs(300)));
        if let Some(file) = &target.ca {
            let pem =
                std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
            let certs: Vec<_> = ureq::tls::parse_pem(&pem)
                .filter_map(|i| match i {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                bail!("{}: no PEM certificate in it", file.display());
            }
            config = config.tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
                    .build(),
            );
        }
        Ok(Client {
            bucket,
            creds,
            agent: config.build().into(),
            target: target.clone(),
            counters: Counters::default(),
        })
    }

    /// The bucket's key of `key` (the prefix added).
    pub fn key(&self, key: &str) -> String {
        format!("{}{key}", self.target.prefix)
    }

    /// Runs `one` until it succeeds, fails for good, or the tries run out.
    fn tries<T>(&self, mut one: impl FnMut() -> Result<T, Try>) -> Result<T> {
        let mut wait = Duration::from_secs(1);
        let mut tried = 0;
        loop {
            match one() {
                Ok(t) => return Ok(t),
                Err(Try::Fail(e)) => return Err(e),
                Err(Try::Again(why)) if tried >= self.target.retries => {
                    bail!(
                        "{why} (gave up after {} tries; bucket {})",
                        tried + 1,
                        self.target.describe()
                    )
                }
                Err(Try::Again(why)) => {
                    eprintln!("publish: {why}; trying again in {} s", wait.as_secs());
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(30));
                    tried += 1;
                }
            }
        }
    }

    /// PUTs `bytes` at `key`.
    pub fn put_bytes(&self, key: &str, bytes: &[u8], content_type: &str) -> Result<()> {
        let full = self.key(key);
        let what = format!("PUT {full}");
        self.tries(|| {
            let url = self
                .bucket
                .put_object(self.creds.as_ref(), &full)
                .sign(URL_VALID);
            let resp = self
                .agent
                .put(url.as_str())
                .header("Content-Type", content_type)
                .send(bytes)
                .map_err(|e| Try::Again(format!("{what}: {e}")))?;
            if !resp.status().is_success() {
                return Err(refused(&what, resp));
            }
            Ok(())
        })?;
        self.counters.puts.fetch_add(1, Ordering::Relaxed);
        self.counters
            .put_bytes
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Uploads the file `path` at `key`, streamed; its bytes must have
    /// `size` and SHA-256 `sha` (checked as they are sent: a file that
    /// does not match is deleted from the bucket again and is an error).
    /// `progress` is told of the bytes as they go.
    pub fn put_file(
        &self,
        key: &str,
        path: &Path,
        size: u64,
        sha: &Sha256,
        progress: &dyn Fn(u64),
    ) -> Result<()> {
        let full = self.key(key);
        let got = if size > self.target.part_size {
            self.put_multipart(&full, path, size, progress)?
        } else {
            self.put_whole(&full, path, size, progress)?
        };
        if got != *sha {
            let _ = self.delete(key);
            bail!(
                "{} is not what the generation names (SHA-256 {got}, expected {sha}): \
                 it is rotten on disk; nothing was published under {full}. \
                 Run `ferry-in scrub` and the next import rebuilds it",
                path.display()
            );
        }
        Ok(())
    }

    /// One PUT of the whole file; the SHA-256 of what was sent.
    fn put_whole(
        &self,
        full: &str,
        path: &Path,
        size: u64,
        progress: &dyn Fn(u64),
    ) -> Result<Sha256> {
        let what = format!("PUT {full}");
        let sha = self.tries(|| {
            let file = std::fs::File::open(path)
                .with_context(|| format!("cannot open {}", path.display()))
                .map_err(Try::Fail)?;
            let mut body = Sha256Reader::new(file.take(size), Sha256Hasher::new());
            let url = self
                .bucket
                .put_object(self.creds.as_ref(), full)
                .sign(URL_VALID);
            let resp = self
                .agent
                .put(url.as_str())
                .header("Content-Length", size.to_string())
                .header("Content-Type", "application/octet-stream")
                .send(ureq::SendBody::from_reader(&mut body))
                .map_err(|e| Try::Again(format!("{what}: {e}")))?;
            if !resp.status().is_success() {
                return Err(refused(&what, resp));
            }
            if body.read != size {
                return Err(Try::Fail(anyhow!(
                    "{}: {} bytes read, the generation says {size}",
                    path.display(),
                    body.read
                )));
            }
            Ok(body.hasher.finish())
        })?;
        self.counters.puts.fetch_add(1, Ordering::Relaxed);
        self.counters.put_bytes.fetch_add(size, Ordering::Relaxed);
        progress(size);
        Ok(sha)
    }

    /// A multipart upload of the file, in parts of at least 64 MiB; aborted
    /// on any error (no part is left behind, if the abort gets through).
    fn put_multipart(
        &self,
        full: &str,
        path: &Path,
        size: u64,
        progress: &dyn Fn(u64),
    ) -> Result<Sha256> {
        let part = self.target.part_size.max(size.div_ceil(MAX_PARTS));
        let what = format!("multipart PUT {full}");
        let upload_id = self.tries(|| {
            let url = self
                .bucket
                .create_multipart_upload(self.creds.as_ref(), full)
                .sign(URL_VALID);
            let resp = self
                .agent
                .post(url.as_str())
                .send_empty()
                .map_err(|e| Try::Again(format!("{what}: {e}")))?;
            let text = small_answer(&what, resp)?;
            rusty_s3::actions::CreateMultipartUpload::parse_response(&text)
                .map(|r| r.upload_id().to_string())
                .map_err(|e| Try::Fail(anyhow!("{what}: the answer does not parse: {e}")))
        })?;
        let result = self.put_parts(full, path, size, part, &upload_id, progress);
        if result.is_err() {
            let url = self
                .bucket
                .abort_multipart_upload(self.creds.as_ref(), full, &upload_id)
                .sign(URL_VALID);
            let _ = self.agent.delete(url.as_str()).call();
        }
        result
    }

    fn put_parts(
        &self,
        full: &str,
        path: &Path,
        size: u64,
        part: u64,
        upload_id: &str,
        progress: &dyn Fn(u64),
    ) -> Result<Sha256> {
        let mut file =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let mut hasher = Sha256Hasher::new();
        let mut etags = Vec::new();
        let mut offset = 0u64;
        let mut number = 1u16;
        while offset < size {
            let len = part.min(size - offset);
            let what = format!("PUT {full} part {number}");
            let (etag, h) = self.tries(|| {
                file.seek(SeekFrom::Start(offset))
                    .with_context(|| format!("cannot read {}", path.display()))
                    .map_err(Try::Fail)?;
                let mut body = Sha256Reader::new((&mut file).take(len), hasher.clone());
                let url = self
                    .bucket
                    .upload_part(self.creds.as_ref(), full, number, upload_id)
                    .sign(URL_VALID);
                let resp = self
                    .agent
                    .put(url.as_str())
                    .header("Content-Length", len.to_string())
                    .send(ureq::SendBody::from_reader(&mut body))
                    .map_err(|e| Try::Again(format!("{what}: {e}")))?;
                if !resp.status().is_success() {
                    return Err(refused(&what, resp));
                }
                if body.read != len {
                    return Err(Try::Fail(anyhow!(
                        "{}: shorter than the generation says ({size} bytes)",
                        path.display()
                    )));
                }
                let etag = resp
                    .headers()
                    .get("etag")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
                    .ok_or_else(|| Try::Fail(anyhow!("{what}: the answer has no ETag")))?;
                Ok((etag, body.hasher))
            })?;
            hasher = h;
            etags.push(etag);
            self.counters.puts.fetch_add(1, Ordering::Relaxed);
            self.counters.put_bytes.fetch_add(len, Ordering::Relaxed);
            progress(len);
            offset += len;
            number += 1;
        }
        let what = format!("complete multipart PUT {full}");
        self.tries(|| {
            let action = self.bucket.complete_multipart_upload(
                self.creds.as_ref(),
                full,
                upload_id,
                etags.iter().map(String::as_str),
            );
            let url = action.sign(URL_VALID);
            let body = action.body();
            let resp = self
                .agent
                .post(url.as_str())
                .send(body.as_bytes())
                .map_err(|e| Try::Again(format!("{what}: {e}")))?;
            // S3 may answer 200 with an error in the body.
            let text = small_answer(&what, resp)?;
            if text.contains("<Error>") {
                return Err(Try::Again(format!("{what}: {}", text.trim())));
            }
            Ok(())
        })?;
        Ok(hasher.finish())
    }

    /// GETs `key`: None when the bucket has no such key.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let full = self.key(key);
        let what = format!("GET {full}");
        let got = self.tries(|| {
            let url = self
                .bucket
                .get_object(self.creds.as_ref(), &full)
                .sign(URL_VALID);
            let resp = self
                .agent
                .get(url.as_str())
                .call()
                .map_err(|e| Try::Again(format!("{what}: {e}")))?;
            if resp.status() == 404 {
                return Ok(None);
            }
            if !resp.status().is_success() {
                return Err(refused(&what, resp));
            }
            let mut out = Vec::new();
            resp.into_body()
                .into_with_config()
                .limit(u64::MAX)
                .reader()
                .read_to_end(&mut out)
                .map_err(|e| Try::Again(format!("{what}: {e}")))?;
            Ok(Some(out))
        })?;
        self.counters.gets.fetch_add(1, Ordering::Relaxed);
        Ok(got)
    }

    /// DELETEs `key` (S3 answers 204 whether or not it was there).
    pub fn delete(&self, key: &str) -> Result<()> {
        let full = self.key(key);
        let what = format!("DELETE {full}");
        self.tries(|| {
            let url = self
                .bucket
                .delete_object(self.creds.as_ref(), &full)
                .sign(URL_VALID);
            let resp = self
                .agent
                .delete(url.as_str())
                .call()
                .map_err(|e| Try::Again(format!("{what}: {e}")))?;
            if !resp.status().is_success() && resp.status() != 404 {
                return Err(refused(&what, resp));
            }
            Ok(())
        })?;
        self.counters.deletes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Every key under `under` (after the prefix), with its size, in
    /// pages of 1,000.
    pub fn list(&self, under: &str) -> Result<Vec<(String, u64)>> {
        let full = self.key(under);
        let what = format!("LIST {full}");
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self.tries(|| {
                let mut action = self.bucket.list_objects_v2(self.creds.as_ref());
                action.with_prefix(full.as_str());
                if let Some(t) = &token {
                    action.with_continuation_token(t.as_str());
                }
                let url = action.sign(URL_VALID);
                let resp = self
                    .agent
                    .get(url.as_str())
                    .call()
                    .map_err(|e| Try::Again(format!("{what}: {e}")))?;
                let text = small_answer(&what, resp)?;
                rusty_s3::actions::ListObjectsV2::parse_response(&text)
                    .map_err(|e| Try::Fail(anyhow!("{what}: the answer does not parse: {e}")))
            })?;
            self.counters.gets.fetch_add(1, Ordering::Relaxed);
            let strip = self.target.prefix.len();
            out.extend(page.contents.into_iter().filter_map(|c| {
                let key = c.key.get(strip..)?.to_string();
                Some((key, c.size.unwrap_or(0)))
            }));
            match page.next_continuation_token {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
    }
}
