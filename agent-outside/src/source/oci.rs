//! `type = "oci"`: container images from an OCI distribution registry.
//!
//! For each configured image it fetches the manifest (by tag or digest),
//! follows an index or manifest list to the selected platforms, and lists
//! every manifest and blob under the catalog layout the inside's registry
//! store serves (see `SourceKind::Oci`):
//!
//! - `manifests/sha256/<hex>` and `blobs/sha256/<hex>`, byte-exact, each
//!   checked against its digest (a mismatch fails the export and names the
//!   image and the digest);
//! - `repos/<repository>/_tags/<tag>`, holding the tagged manifest's digest.
//!
//! Blobs are content-addressed: a layer shared by ten images is listed once,
//! and its digest is its fingerprint, so a blob shipped before is never
//! downloaded again.
//!
//! Registries: `http://` or `https://` base URLs (a bare host means https);
//! anonymous access, the bearer-token challenge (Docker Hub, nvcr.io,
//! ghcr.io) and basic authentication (`username` and `password_file`).

use super::{Item, ItemKind, ScanCtx, Source};
use crate::config::SourceConfig;
use anyhow::{anyhow, bail, Context, Result};
use ferry_protocol::catalog::SourceKind;
use ferry_protocol::id::Sha256;
use ferry_protocol::id::Sha256Hasher;
use ferry_protocol::path::ObjectKey;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Manifest media types this client asks for.
const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// Largest manifest accepted.
const MAX_MANIFEST: u64 = 16 << 20;

/// An image to mirror.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef {
    /// Repository, such as `nvidia/driver`.
    pub repo: String,
    /// Tag, such as `470.82.01`, when given.
    pub tag: Option<String>,
    /// Digest, such as `sha256:…`, when given.
    pub digest: Option<String>,
}

impl ImageRef {
    /// Parses `repo:tag`, `repo@sha256:…` or `repo` (tag `latest`).
    pub fn parse(s: &str) -> Result<ImageRef> {
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(d.to_string())),
            None => (s, None),
        };
        let (repo, tag) = match rest.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r.to_string(), Some(t.to_string())),
            _ => (rest.to_string(), None),
        };
        let tag = if tag.is_none() && digest.is_none() {
            Some("latest".to_string())
        } else {
            tag
        };
        let ok_component = |c: &str| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && c.as_bytes()[0].is_ascii_alphanumeric()
        };
        if repo.is_empty() || !repo.split('/').all(ok_component) {
            bail!("image {s:?}: {repo:?} is not a repository name (lowercase letters, digits, '.', '_', '-', '/')");
        }
        if let Some(t) = &tag {
            let okt = !t.is_empty()
                && t.len() <= 128
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                && !t.starts_with(['.', '-']);
            if !okt {
                bail!("image {s:?}: {t:?} is not a tag");
            }
        }
        if let Some(d) = &digest {
            if digest_hex(d).is_none() {
                bail!("image {s:?}: {d:?} is not a sha256 digest");
            }
        }
        Ok(ImageRef { repo, tag, digest })
    }
}

/// The hex of a `sha256:<64 hex>` digest.
fn digest_hex(d: &str) -> Option<&str> {
    let h = d.strip_prefix("sha256:")?;
    (h.len() == 64
        && h.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
    .then_some(h)
}

/// A registry client: base URL, credentials, bearer tokens per scope.
pub struct Registry {
    base: String,
    agent: ureq::Agent,
    basic: Option<(String, String)>,
    tokens: Mutex<HashMap<String, String>>,
    /// Said when a connection fails: the proxy from the environment, if any.
    via: String,
}

#[derive(Deserialize)]
struct TokenReply {
    token: Option<String>,
    access_token: Option<String>,
}

impl Registry {
    /// A client for `registry` (`host[:port]` means https), trusting the
    /// system's roots or, given, only `ca` (PEM certificates). Proxies come
    /// from `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY`, bypassed for `NO_PROXY`.
    pub fn new(
        registry: &str,
        basic: Option<(String, String)>,
        ca: Option<Vec<ureq::tls::Certificate<'static>>>,
    ) -> Registry {
        let base = if registry.starts_with("http://") || registry.starts_with("https://") {
            registry.trim_end_matches('/').to_string()
        } else if registry == "docker.io" {
            "https://registry-1.docker.io".to_string()
        } else {
            format!("https://{}", registry.trim_end_matches('/'))
        };
        let proxy = ureq::Proxy::try_from_env();
        let via = match &proxy {
            Some(p) => format!(
                " (through the proxy {}://{}:{} unless NO_PROXY exempts it)",
                p.protocol().to_string().to_lowercase(),
                p.host(),
                p.port()
            ),
            None => String::new(),
        };
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(proxy);
        if let Some(certs) = ca {
            config = config.tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
                    .build(),
            );
        }
        let agent: ureq::Agent = config.build().into();
        Registry {
            base,
            agent,
            basic,
            tokens: Mutex::new(HashMap::new()),
            via,
        }
    }

    /// GETs `path` (under `/v2/`) for `repo`, answering an auth challenge
    /// once; any status but 401 is returned to the caller.
    fn request(
        &self,
        repo: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<ureq::http::Response<ureq::Body>> {
        let url = format!("{}/v2/{path}", self.base);
        let scope = format!("repository:{repo}:pull");
        for attempt in 0..2 {
            let mut req = self.agent.get(&url);
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            if let Some(t) = self.tokens.lock().expect("token cache").get(&scope) {
                req = req.header("Authorization", &format!("Bearer {t}"));
            } else if let Some((u, p)) = &self.basic {
                req = req.header("Authorization", &basic_header(u, p));
            }
            let resp = req
                .call()
                .with_context(|| format!("cannot reach {url}{}", self.via))?;
            if resp.status() == 401 && attempt == 0 {
                let challenge = resp
                    .headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                if let Some(rest) = challenge.strip_prefix("Bearer ") {
                    let token = self.token(rest, &scope)?;
                    self.tokens
                        .lock()
                        .expect("token cache")
                        .insert(scope.clone(), token);
                    continue;
                }
                bail!("{url}: 401 Unauthorized ({challenge}); set `username` and `password_file` for this source");
            }
            if resp.status() == 401 {
                bail!("{url}: still unauthorized after authenticating");
            }
            return Ok(resp);
        }
        bail!("{url}: still unauthorized after authenticating")
    }

    /// GETs `path` (under `/v2/`) for `repo`; anything but a success is an error.
    fn get(
        &self,
        repo: &str,
        path: &str,
        accept: Option<&str>,
    ) -> Result<ureq::http::Response<ureq::Body>> {
        let headers: Vec<(&str, &str)> = accept.map(|a| ("Accept", a)).into_iter().collect();
        let resp = self.request(repo, path, &headers)?;
        if !resp.status().is_success() {
            bail!("{}/v2/{path}: HTTP {}", self.base, resp.status());
        }
        Ok(resp)
    }

    /// Fetches a bearer token for the challenge's realm.
    fn token(&self, challenge: &str, scope: &str) -> Result<String> {
        let params = parse_challenge(challenge);
        let realm = params
            .get("realm")
            .ok_or_else(|| anyhow!("auth challenge without a realm: {challenge}"))?;
        let mut req = self.agent.get(realm).query("scope", scope);
        if let Some(s) = params.get("service") {
            req = req.query("service", s);
        }
        if let Some((u, p)) = &self.basic {
            req = req.header("Authorization", &basic_header(u, p));
        }
        let mut resp = req
            .call()
            .with_context(|| format!("cannot reach token service {realm}"))?;
        if !resp.status().is_success() {
            bail!("token service {realm}: HTTP {}", resp.status());
        }
        let reply: TokenReply = serde_json::from_slice(&resp.body_mut().read_to_vec()?)
            .with_context(|| {
                format!("token service {realm} answered something else than a token")
            })?;
        reply
            .token
            .or(reply.access_token)
            .ok_or_else(|| anyhow!("token service {realm} returned no token"))
    }

    /// Fetches a manifest; returns its bytes and digest (checked when the
    /// reference is a digest, and against `Docker-Content-Digest`).
    pub fn manifest(&self, repo: &str, reference: &str) -> Result<(Vec<u8>, String)> {
        let mut resp = self.get(repo, &format!("{repo}/manifests/{reference}"), Some(ACCEPT))?;
        let header = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(MAX_MANIFEST)
            .read_to_vec()?;
        let digest = format!("sha256:{}", Sha256::of(&bytes).to_hex());
        for claimed in [
            Some(reference.to_string()).filter(|r| r.starts_with("sha256:")),
            header,
        ]
        .into_iter()
        .flatten()
        {
            if claimed != digest {
                bail!("manifest {repo}@{reference}: the registry sent content with digest {digest}, not {claimed}");
            }
        }
        Ok((bytes, digest))
    }

    /// Every tag of a repository, following `Link` pagination.
    pub fn tags(&self, repo: &str) -> Result<Vec<String>> {
        #[derive(Deserialize)]
        struct TagList {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let mut out = Vec::new();
        let mut path = format!("{repo}/tags/list?n=1000");
        for _ in 0..10_000 {
            let mut resp = self.get(repo, &path, None)?;
            let next = resp
                .headers()
                .get("link")
                .and_then(|l| l.to_str().ok())
                .and_then(|l| l.split(';').next())
                .map(|u| {
                    u.trim()
                        .trim_start_matches('<')
                        .trim_end_matches('>')
                        .to_string()
                });
            let list: TagList = serde_json::from_slice(
                &resp
                    .body_mut()
                    .with_config()
                    .limit(MAX_MANIFEST)
                    .read_to_vec()?,
            )
            .with_context(|| format!("{repo}: the tag list is not JSON"))?;
            out.extend(list.tags.unwrap_or_default());
            match next.and_then(|n| n.split_once("/v2/").map(|(_, p)| p.to_string())) {
                Some(p) => path = p,
                None => return Ok(out),
            }
        }
        bail!("{repo}: the tag list does not end")
    }

    /// Downloads blob `digest` of `repo` into `dir` as `<hex>` and returns
    /// its path. The bytes go to `<hex>.part` first; a `.part` an interrupted
    /// run left is resumed with a Range request (started over when the
    /// registry answers the whole blob instead). The digest is checked before
    /// the rename, so a `<hex>` file is always whole and right.
    pub fn fetch_blob(&self, repo: &str, digest: &str, dir: &Path) -> Result<PathBuf> {
        let hex = digest_hex(digest).ok_or_else(|| anyhow!("{digest:?} is not a sha256 digest"))?;
        let done = dir.join(hex);
        if done.is_file() {
            return Ok(done);
        }
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let part = dir.join(format!("{hex}.part"));
        let have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
        let range = format!("bytes={have}-");
        let headers: Vec<(&str, &str)> = if have > 0 {
            vec![("Range", range.as_str())]
        } else {
            Vec::new()
        };
        let url = format!("{}/v2/{repo}/blobs/{digest}", self.base);
        let resp = self.request(repo, &format!("{repo}/blobs/{digest}"), &headers)?;
        let status = resp.status().as_u16();
        let resumed_from = match status {
            206 => {
                let cr = resp
                    .headers()
                    .get("content-range")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if !cr.starts_with(&format!("bytes {have}-")) {
                    bail!("{url}: asked for bytes from {have}, the registry answered the range {cr:?}");
                }
                Some(have)
            }
            200 => None,
            416 if have > 0 => Some(have),
            _ => bail!("{url}: HTTP {status}"),
        };
        {
            let mut file = match resumed_from {
                Some(_) => std::fs::OpenOptions::new().append(true).open(&part),
                None => std::fs::File::create(&part),
            }
            .with_context(|| format!("cannot write {}", part.display()))?;
            if status != 416 {
                let expected: Option<u64> = resp
                    .headers()
                    .get("content-length")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok());
                let mut body = resp.into_body().into_with_config().limit(u64::MAX).reader();
                let mut got = 0u64;
                let mut buf = vec![0u8; 1 << 16];
                loop {
                    let n = match body.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            let _ = file.flush();
                            return Err(anyhow!(e).context(format!(
                                "{url}: the download stopped after {} bytes ({got} in this run); \
                                 they are kept in {} and the next export resumes from there",
                                resumed_from.unwrap_or(0) + got,
                                part.display()
                            )));
                        }
                    };
                    file.write_all(&buf[..n])
                        .with_context(|| format!("cannot write {}", part.display()))?;
                    got += n as u64;
                }
                file.flush()
                    .with_context(|| format!("cannot write {}", part.display()))?;
                if expected.is_some_and(|e| got < e) {
                    bail!(
                        "{url}: the connection ended after {got} of {} bytes; they are kept in {} \
                         and the next export resumes from there",
                        expected.unwrap_or(0),
                        part.display()
                    );
                }
            }
        }
        let mut hasher = Sha256Hasher::new();
        let mut f = std::fs::File::open(&part)
            .with_context(|| format!("cannot read {}", part.display()))?;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = f
                .read(&mut buf)
                .with_context(|| format!("cannot read {}", part.display()))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let actual = hasher.finish().to_hex();
        if actual != hex {
            let _ = std::fs::remove_file(&part);
            bail!("{url}: the registry sent content with SHA-256 {actual}, not the blob's digest {digest}");
        }
        std::fs::rename(&part, &done)
            .with_context(|| format!("cannot rename {} to {}", part.display(), done.display()))?;
        Ok(done)
    }
}

fn basic_header(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// `realm="…",service="…"` into a map.
fn parse_challenge(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = s.trim();
    while let Some((k, v)) = rest.split_once('=') {
        let k = k.trim().trim_start_matches(',').trim().to_string();
        let v = v.trim_start();
        let (value, after) = if let Some(q) = v.strip_prefix('"') {
            match q.split_once('"') {
                Some((val, after)) => (val.to_string(), after),
                None => (q.to_string(), ""),
            }
        } else {
            match v.split_once(',') {
                Some((val, after)) => (val.trim().to_string(), after),
                None => (v.trim().to_string(), ""),
            }
        };
        out.insert(k, value);
        rest = after.trim_start_matches(',');
    }
    out
}

#[derive(Deserialize)]
struct Descriptor {
    digest: String,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Platform {
    os: String,
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
}

#[derive(Deserialize)]
struct AnyManifest {
    #[serde(default, rename = "schemaVersion")]
    schema_version: u32,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    /// An (early draft) OCI artifact manifest's blobs.
    #[serde(default)]
    blobs: Option<Vec<Descriptor>>,
}

/// The cosign tag suffixes mirrored with `referrers = true`.
const COSIGN_SUFFIXES: [&str; 3] = ["sig", "att", "sbom"];

/// How deep referrers of referrers are followed (a signature of an attestation).
const MAX_REFERRER_DEPTH: usize = 3;

/// An OCI source.
pub struct OciSource {
    name: String,
    registry: std::sync::Arc<Registry>,
    images: Vec<ImageRef>,
    patterns: Vec<(String, TagPattern)>,
    platforms: Vec<String>,
    referrers: bool,
    pins: Vec<ImageRef>,
    prefix: Option<String>,
    rename: std::collections::BTreeMap<String, String>,
}

/// What one scan has listed so far.
struct ScanState {
    /// Catalog paths already listed.
    seen: HashSet<String>,
    /// Tag lists fetched, per repository (for cosign and fallback tags).
    tag_lists: HashMap<String, HashSet<String>>,
    /// Manifests whose referrers were looked up.
    referred: HashSet<String>,
    /// `STATE/cache/<source>/blobs`: downloads, kept across runs.
    blob_dir: PathBuf,
    /// `STATE/cache/<source>/manifests`: every manifest seen, for pins.
    manifest_dir: PathBuf,
}

/// Which tags of a repository to mirror.
pub enum TagPattern {
    /// Tags matching this regular expression in full.
    Regex(regex::Regex),
    /// Tags that parse as a semantic version (a leading `v` allowed) within this range.
    Semver(semver::VersionReq),
}

impl TagPattern {
    /// Parses a pattern: `semver:<range>` or a regular expression.
    pub fn parse(s: &str) -> Result<TagPattern> {
        match s.strip_prefix("semver:") {
            Some(r) => Ok(TagPattern::Semver(
                semver::VersionReq::parse(r.trim())
                    .with_context(|| format!("{r:?} is not a semver range"))?,
            )),
            None => Ok(TagPattern::Regex(
                regex::Regex::new(&format!("^(?:{s})$"))
                    .with_context(|| format!("{s:?} is not a regular expression"))?,
            )),
        }
    }

    /// Whether `tag` is selected.
    pub fn matches(&self, tag: &str) -> bool {
        match self {
            TagPattern::Regex(r) => r.is_match(tag),
            TagPattern::Semver(req) => semver::Version::parse(tag.strip_prefix('v').unwrap_or(tag))
                .map(|v| req.matches(&v))
                .unwrap_or(false),
        }
    }
}

/// The settings of a `type = "oci"` source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OciSettings {
    /// The registry, `host[:port]` (https) or an `http://`/`https://` URL.
    pub registry: String,
    /// Images, as `repository:tag`, `repository@sha256:…` or both.
    #[serde(default)]
    pub images: Vec<String>,
    /// Tag patterns per repository: a regular expression matched against the
    /// whole tag, or `semver:<range>` (such as `semver:>=1.9, <2`).
    #[serde(default)]
    pub tags: std::collections::BTreeMap<String, String>,
    /// Platforms to keep from an index, such as `linux/amd64` (default: all).
    #[serde(default)]
    pub platforms: Vec<String>,
    /// Also mirror what refers to each manifest: cosign's
    /// `sha256-<hex>.{sig,att,sbom}` tags and the OCI referrers API (or its
    /// `sha256-<hex>` tag fallback).
    #[serde(default)]
    pub referrers: bool,
    /// `repository:tag`s that stay inside, as last shipped, even when they
    /// leave `images`/`tags` or vanish upstream.
    #[serde(default)]
    pub pin: Vec<String>,
    /// Serve every repository under this prefix inside, such as `nvcr.io`
    /// (`nvidia/driver` is then served as `nvcr.io/nvidia/driver`).
    pub prefix: Option<String>,
    /// Serve an upstream repository under another name inside, such as
    /// `{ "nvidia/driver" = "gpu/driver" }` (applied before `prefix`).
    #[serde(default)]
    pub rename: std::collections::BTreeMap<String, String>,
    /// User name for basic authentication (or for the token service).
    pub username: Option<String>,
    /// File holding the password or token for `username`.
    pub password_file: Option<std::path::PathBuf>,
    /// A docker `config.json` whose `auths.<registry host>.auth` (base64
    /// `user:password`) or `username`/`password` are used.
    pub auth_file: Option<std::path::PathBuf>,
    /// PEM file of the certificate authorities to trust for this registry
    /// (instead of the system's).
    pub ca_file: Option<std::path::PathBuf>,
}

/// The host (and port) of a registry setting, as docker config.json keys it.
fn registry_host(registry: &str) -> &str {
    let r = registry
        .strip_prefix("https://")
        .or_else(|| registry.strip_prefix("http://"))
        .unwrap_or(registry);
    r.split('/').next().unwrap_or(r)
}

/// Credentials for `registry` from a docker `config.json`.
pub fn docker_config_auth(file: &Path, registry: &str) -> Result<(String, String)> {
    #[derive(Deserialize)]
    struct DockerConfig {
        #[serde(default)]
        auths: HashMap<String, DockerAuth>,
    }
    #[derive(Deserialize)]
    struct DockerAuth {
        auth: Option<String>,
        username: Option<String>,
        password: Option<String>,
        identitytoken: Option<String>,
    }
    let text = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let cfg: DockerConfig = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a docker config.json", file.display()))?;
    let host = registry_host(registry);
    let wanted: Vec<String> = if host == "docker.io" || host == "registry-1.docker.io" {
        vec![
            "https://index.docker.io/v1/".into(),
            "index.docker.io".into(),
            "docker.io".into(),
        ]
    } else {
        vec![host.to_string()]
    };
    let entry = cfg
        .auths
        .iter()
        .find(|(k, _)| wanted.iter().any(|w| registry_host(k) == w || *k == w))
        .map(|(_, v)| v)
        .ok_or_else(|| {
            anyhow!(
                "{}: no entry for {host} under \"auths\" (it has: {})",
                file.display(),
                cfg.auths.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })?;
    if let Some(a) = &entry.auth {
        use base64::Engine;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(a.trim())
            .with_context(|| format!("{}: auths.{host}.auth is not base64", file.display()))?;
        let raw = String::from_utf8(raw)
            .with_context(|| format!("{}: auths.{host}.auth is not UTF-8", file.display()))?;
        let (u, p) = raw.split_once(':').ok_or_else(|| {
            anyhow!(
                "{}: auths.{host}.auth is not base64 of user:password",
                file.display()
            )
        })?;
        return Ok((u.to_string(), p.to_string()));
    }
    if let (Some(u), Some(p)) = (&entry.username, &entry.password) {
        return Ok((u.clone(), p.clone()));
    }
    if entry.identitytoken.is_some() {
        bail!(
            "{}: auths.{host} has only an identitytoken (an OAuth refresh token), which this source does not use; \
             log in with a password or token instead",
            file.display()
        );
    }
    bail!(
        "{}: auths.{host} has no auth or username/password",
        file.display()
    )
}

/// The certificates of a PEM file.
pub fn read_ca_file(file: &Path) -> Result<Vec<ureq::tls::Certificate<'static>>> {
    let pem = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        if let ureq::tls::PemItem::Certificate(c) =
            item.with_context(|| format!("{}: bad PEM", file.display()))?
        {
            certs.push(c);
        }
    }
    if certs.is_empty() {
        bail!("{}: no PEM certificate in it", file.display());
    }
    Ok(certs)
}

impl OciSource {
    /// From its config entry.
    pub fn new(cfg: &SourceConfig) -> Result<Self> {
        let settings: OciSettings = cfg.settings()?;
        if settings.images.is_empty() && settings.tags.is_empty() && settings.pin.is_empty() {
            bail!(
                "source {:?} (oci) needs `images`, `tags` or `pin`",
                cfg.name
            );
        }
        let registry = settings.registry.as_str();
        let basic = match (
            &settings.username,
            &settings.password_file,
            &settings.auth_file,
        ) {
            (Some(u), Some(f), None) => {
                let p = std::fs::read_to_string(f)
                    .with_context(|| format!("cannot read {}", f.display()))?;
                Some((u.clone(), p.trim_end().to_string()))
            }
            (None, None, Some(f)) => Some(
                docker_config_auth(f, registry)
                    .with_context(|| format!("source {:?}: auth_file", cfg.name))?,
            ),
            (None, None, None) => None,
            (_, _, Some(_)) => bail!(
                "source {:?}: give `auth_file` or `username` and `password_file`, not both",
                cfg.name
            ),
            _ => bail!(
                "source {:?}: give both `username` and `password_file`, or neither",
                cfg.name
            ),
        };
        let ca = settings
            .ca_file
            .as_deref()
            .map(read_ca_file)
            .transpose()
            .with_context(|| format!("source {:?}: ca_file", cfg.name))?;
        let images = settings
            .images
            .iter()
            .map(|i| ImageRef::parse(i).with_context(|| format!("source {:?}", cfg.name)))
            .collect::<Result<Vec<_>>>()?;
        let pins = settings
            .pin
            .iter()
            .map(|i| {
                let r = ImageRef::parse(i).with_context(|| format!("source {:?}: pin", cfg.name))?;
                if r.digest.is_some() || !i.contains(':') {
                    bail!(
                        "source {:?}: pin {i:?} must be repository:tag (an image by digest never moves)",
                        cfg.name
                    );
                }
                Ok(r)
            })
            .collect::<Result<Vec<_>>>()?;
        let patterns = settings
            .tags
            .iter()
            .map(|(repo, p)| {
                ImageRef::parse(repo).with_context(|| format!("source {:?}: tags", cfg.name))?;
                Ok((
                    repo.clone(),
                    TagPattern::parse(p)
                        .with_context(|| format!("source {:?}: tags for {repo}", cfg.name))?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let prefix = settings.prefix.as_deref().map(|p| p.trim_matches('/'));
        if let Some(p) = prefix {
            ImageRef::parse(&format!("{p}/x"))
                .with_context(|| format!("source {:?}: prefix {p:?}", cfg.name))?;
        }
        for (from, to) in &settings.rename {
            for name in [from, to] {
                ImageRef::parse(name)
                    .with_context(|| format!("source {:?}: rename {from:?} = {to:?}", cfg.name))?;
            }
        }
        let mut targets = std::collections::BTreeMap::new();
        for (from, to) in &settings.rename {
            if let Some(other) = targets.insert(to, from) {
                bail!(
                    "source {:?}: rename gives {other:?} and {from:?} the same name {to:?}",
                    cfg.name
                );
            }
        }
        Ok(OciSource {
            patterns,
            name: cfg.name.clone(),
            registry: std::sync::Arc::new(Registry::new(registry, basic, ca)),
            images,
            platforms: settings.platforms.clone(),
            referrers: settings.referrers,
            pins,
            prefix: prefix.map(str::to_string),
            rename: settings.rename.clone(),
        })
    }

    /// The name upstream repository `repo` is served under inside.
    fn served(&self, repo: &str) -> String {
        let renamed = self.rename.get(repo).map(String::as_str).unwrap_or(repo);
        match &self.prefix {
            Some(p) => format!("{p}/{renamed}"),
            None => renamed.to_string(),
        }
    }

    fn wants(&self, p: &Option<Platform>) -> bool {
        if self.platforms.is_empty() {
            return true;
        }
        let Some(p) = p else { return false };
        let full = match &p.variant {
            Some(v) => format!("{}/{}/{}", p.os, p.architecture, v),
            None => format!("{}/{}", p.os, p.architecture),
        };
        self.platforms
            .iter()
            .any(|w| *w == full || *w == format!("{}/{}", p.os, p.architecture))
    }

    /// Lists `repo`'s tag `tag` naming manifest `digest`.
    fn emit_tag(
        &self,
        repo: &str,
        tag: &str,
        digest: &str,
        st: &mut ScanState,
        sink: &mut dyn FnMut(Item) -> Result<()>,
    ) -> Result<()> {
        let path = format!("repos/{}/_tags/{tag}", self.served(repo));
        if !st.seen.insert(path.clone()) {
            return Ok(());
        }
        let content = format!("{digest}\n").into_bytes();
        sink(Item {
            path,
            kind: ItemKind::File {
                executable: false,
                fingerprint: Some(digest.to_string()),
                expected_sha256: None,
                open: Box::new(
                    move || Ok(Box::new(Cursor::new(content)) as Box<dyn std::io::Read>),
                ),
            },
        })
    }

    /// Lists a manifest and everything it refers to; with `all`, every
    /// manifest of an index (not only the wanted platforms). Returns the
    /// digests of the manifests listed.
    #[allow(clippy::too_many_arguments)]
    fn walk(
        &self,
        repo: &str,
        bytes: Vec<u8>,
        digest: &str,
        all: bool,
        st: &mut ScanState,
        walked: &mut Vec<String>,
        sink: &mut dyn FnMut(Item) -> Result<()>,
    ) -> Result<()> {
        let hex = digest_hex(digest)
            .expect("digests are computed here")
            .to_string();
        let m: AnyManifest = serde_json::from_slice(&bytes)
            .with_context(|| format!("image {repo}: manifest {digest} is not JSON"))?;
        if m.schema_version != 2 {
            bail!(
                "image {repo}: manifest {digest} has schemaVersion {} (only 2 is supported)",
                m.schema_version
            );
        }
        let mut children = Vec::new();
        let mut blobs = Vec::new();
        if let Some(list) = m.manifests {
            let had = !list.is_empty();
            for d in list.into_iter().filter(|d| all || self.wants(&d.platform)) {
                children.push(d.digest);
            }
            if children.is_empty() && had {
                bail!(
                    "image {repo}: index {digest} has no manifest for platforms {:?}",
                    self.platforms
                );
            }
        } else {
            blobs.extend(m.config.map(|c| c.digest));
            blobs.extend(m.layers.unwrap_or_default().into_iter().map(|l| l.digest));
            blobs.extend(m.blobs.unwrap_or_default().into_iter().map(|l| l.digest));
        }
        let cached = st.manifest_dir.join(&hex);
        if !cached.is_file() {
            let tmp = st.manifest_dir.join(format!("{hex}.tmp"));
            std::fs::write(&tmp, &bytes)
                .and_then(|()| std::fs::rename(&tmp, &cached))
                .with_context(|| format!("cannot write {}", cached.display()))?;
        }
        if st.seen.insert(format!("manifests/sha256/{hex}")) {
            walked.push(digest.to_string());
            sink(Item {
                path: format!("manifests/sha256/{hex}"),
                kind: ItemKind::File {
                    executable: false,
                    fingerprint: Some(digest.to_string()),
                    expected_sha256: Sha256::from_hex(&hex),
                    open: Box::new(move || {
                        Ok(Box::new(Cursor::new(bytes)) as Box<dyn std::io::Read>)
                    }),
                },
            })?;
        }
        for b in blobs {
            let bhex = digest_hex(&b)
                .ok_or_else(|| {
                    anyhow!("image {repo}: manifest {digest} names blob {b:?}, not a sha256 digest")
                })?
                .to_string();
            let path = format!("blobs/sha256/{bhex}");
            if !st.seen.insert(path.clone()) {
                continue;
            }
            let (registry, repo, blob, dir) = (
                self.registry.clone(),
                repo.to_string(),
                b.clone(),
                st.blob_dir.clone(),
            );
            sink(Item {
                path,
                kind: ItemKind::File {
                    executable: false,
                    fingerprint: Some(b.clone()),
                    expected_sha256: Sha256::from_hex(&bhex),
                    open: Box::new(move || {
                        let file = registry
                            .fetch_blob(&repo, &blob, &dir)
                            .with_context(|| format!("image {repo}: blob {blob}"))?;
                        Ok(Box::new(
                            std::fs::File::open(&file)
                                .with_context(|| format!("cannot read {}", file.display()))?,
                        ) as Box<dyn std::io::Read>)
                    }),
                },
            })?;
        }
        for c in children {
            let (cbytes, cdigest) = self
                .registry
                .manifest(repo, &c)
                .with_context(|| format!("image {repo}"))?;
            self.walk(repo, cbytes, &cdigest, all, st, walked, sink)?;
        }
        Ok(())
    }

    /// The tags of `repo`, fetched once per scan.
    fn tag_list<'s>(&self, repo: &str, st: &'s mut ScanState) -> Result<&'s HashSet<String>> {
        if !st.tag_lists.contains_key(repo) {
            let tags = self.registry.tags(repo)?;
            st.tag_lists
                .insert(repo.to_string(), tags.into_iter().collect());
        }
        Ok(&st.tag_lists[repo])
    }

    /// Lists what refers to manifest `digest` of `repo`: the OCI referrers
    /// API (or, when the registry answers 404, the `sha256-<hex>` fallback
    /// tag) and cosign's `sha256-<hex>.{sig,att,sbom}` tags.
    fn referrers(
        &self,
        repo: &str,
        digest: &str,
        depth: usize,
        st: &mut ScanState,
        sink: &mut dyn FnMut(Item) -> Result<()>,
    ) -> Result<()> {
        if depth > MAX_REFERRER_DEPTH || !st.referred.insert(format!("{repo}@{digest}")) {
            return Ok(());
        }
        let hex = digest_hex(digest).expect("digests are computed here");
        let mut found: Vec<String> = Vec::new();
        let mut resp = self.registry.request(
            repo,
            &format!("{repo}/referrers/{digest}"),
            &[("Accept", "application/vnd.oci.image.index.v1+json")],
        )?;
        let status = resp.status().as_u16();
        match status {
            200 => {
                let bytes = resp
                    .body_mut()
                    .with_config()
                    .limit(MAX_MANIFEST)
                    .read_to_vec()?;
                let index: AnyManifest = serde_json::from_slice(&bytes).with_context(|| {
                    format!("{repo}: the referrers of {digest} are not an image index")
                })?;
                found.extend(index.manifests.unwrap_or_default().into_iter().map(|d| d.digest));
            }
            404 => {
                let fallback = format!("sha256-{hex}");
                if self.tag_list(repo, st)?.contains(&fallback) {
                    let (bytes, idigest) = self.registry.manifest(repo, &fallback)?;
                    self.emit_tag(repo, &fallback, &idigest, st, sink)?;
                    let index: AnyManifest = serde_json::from_slice(&bytes).with_context(|| {
                        format!("{repo}: tag {fallback} (referrers of {digest}) is not an image index")
                    })?;
                    found.extend(index.manifests.unwrap_or_default().into_iter().map(|d| d.digest));
                    self.walk(repo, bytes, &idigest, true, st, &mut Vec::new(), sink)?;
                }
            }
            _ => bail!(
                "{repo}: the referrers API answered HTTP {status} for {digest} (expected 200, or 404 when unsupported)"
            ),
        }
        for suffix in COSIGN_SUFFIXES {
            let tag = format!("sha256-{hex}.{suffix}");
            if self.tag_list(repo, st)?.contains(&tag) {
                let (bytes, mdigest) = self
                    .registry
                    .manifest(repo, &tag)
                    .with_context(|| format!("{repo}: cosign tag {tag}"))?;
                self.emit_tag(repo, &tag, &mdigest, st, sink)?;
                let mut walked = Vec::new();
                self.walk(repo, bytes, &mdigest, true, st, &mut walked, sink)?;
                found.push(mdigest);
            }
        }
        for r in found {
            if !st.seen.contains(&format!(
                "manifests/sha256/{}",
                digest_hex(&r).unwrap_or_default()
            )) {
                let (bytes, rdigest) = self
                    .registry
                    .manifest(repo, &r)
                    .with_context(|| format!("{repo}: referrer {r} of {digest}"))?;
                self.walk(repo, bytes, &rdigest, true, st, &mut Vec::new(), sink)?;
            }
            self.referrers(repo, &r, depth + 1, st, sink)?;
        }
        Ok(())
    }

    /// Keeps pinned images the scan did not list, as the last bundle had
    /// them: the tag, its manifests (read back from the manifest cache) and
    /// their blobs.
    fn keep_pins(
        &self,
        cx: &ScanCtx<'_>,
        st: &mut ScanState,
        sink: &mut dyn FnMut(Item) -> Result<()>,
    ) -> Result<()> {
        for pin in &self.pins {
            let tag = pin.tag.as_deref().expect("pins have tags");
            let tag_path = format!("repos/{}/_tags/{tag}", self.served(&pin.repo));
            if st.seen.contains(&tag_path) {
                continue;
            }
            let key = ObjectKey {
                source: self.name.clone(),
                path: tag_path.clone(),
            };
            let Some(ferry_protocol::catalog::Object::File(f)) = cx.previous.objects.get(&key)
            else {
                eprintln!(
                    "ferry-out: warning: source {:?}: pin {}:{tag} is neither selected nor in the last bundle; nothing to keep",
                    self.name, pin.repo
                );
                continue;
            };
            // The tag file is `sha256:<hex>\n`: find the manifest whose tag file has its SHA-256.
            let hex = cx
                .previous_paths()
                .filter_map(|(p, _)| p.strip_prefix("manifests/sha256/"))
                .find(|h| Sha256::of(format!("sha256:{h}\n").as_bytes()) == f.sha256)
                .map(str::to_string)
                .ok_or_else(|| {
                    anyhow!(
                        "source {:?}: pin {}:{tag}: the last bundle's tag names no manifest it holds",
                        self.name,
                        pin.repo
                    )
                })?;
            st.seen.insert(tag_path.clone());
            sink(Item {
                path: tag_path,
                kind: ItemKind::Keep,
            })?;
            let mut stack = vec![hex];
            while let Some(h) = stack.pop() {
                let mpath = format!("manifests/sha256/{h}");
                if !st.seen.insert(mpath.clone()) {
                    continue;
                }
                let file = st.manifest_dir.join(&h);
                let bytes = std::fs::read(&file).with_context(|| {
                    format!(
                        "source {:?}: pin {}:{tag}: manifest sha256:{h} is not in the cache ({}), so its blobs are unknown",
                        self.name,
                        pin.repo,
                        file.display()
                    )
                })?;
                let m: AnyManifest = serde_json::from_slice(&bytes)
                    .with_context(|| format!("{} is not a manifest", file.display()))?;
                sink(Item {
                    path: mpath,
                    kind: ItemKind::Keep,
                })?;
                let held = |p: &str| {
                    cx.previous.objects.contains_key(&ObjectKey {
                        source: self.name.clone(),
                        path: p.to_string(),
                    })
                };
                for d in m.manifests.unwrap_or_default() {
                    if let Some(ch) = digest_hex(&d.digest) {
                        if held(&format!("manifests/sha256/{ch}")) {
                            stack.push(ch.to_string());
                        }
                    }
                }
                let blobs = m
                    .config
                    .into_iter()
                    .chain(m.layers.unwrap_or_default())
                    .chain(m.blobs.unwrap_or_default());
                for b in blobs {
                    let Some(bh) = digest_hex(&b.digest) else {
                        continue;
                    };
                    let bpath = format!("blobs/sha256/{bh}");
                    if st.seen.insert(bpath.clone()) {
                        sink(Item {
                            path: bpath,
                            kind: ItemKind::Keep,
                        })?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Deletes cached downloads the last bundle already holds.
fn clean_cache(cx: &ScanCtx<'_>, blob_dir: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(blob_dir) else {
        return Ok(());
    };
    let shipped: HashSet<&str> = cx
        .previous_paths()
        .filter_map(|(p, _)| p.strip_prefix("blobs/sha256/"))
        .collect();
    for e in entries {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let hex = name.strip_suffix(".part").unwrap_or(&name);
        if shipped.contains(hex) {
            std::fs::remove_file(e.path())
                .with_context(|| format!("cannot remove {}", e.path().display()))?;
        }
    }
    Ok(())
}

impl Source for OciSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SourceKind {
        SourceKind::Oci
    }

    fn scan(&self, cx: &ScanCtx<'_>, sink: &mut dyn FnMut(Item) -> Result<()>) -> Result<()> {
        let mut st = ScanState {
            seen: HashSet::new(),
            tag_lists: HashMap::new(),
            referred: HashSet::new(),
            blob_dir: cx.cache_dir.join("blobs"),
            manifest_dir: cx.cache_dir.join("manifests"),
        };
        for d in [&st.blob_dir, &st.manifest_dir] {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
        }
        clean_cache(cx, &st.blob_dir)?;
        let mut images = self.images.clone();
        for (repo, pattern) in &self.patterns {
            let tags = self
                .tag_list(repo, &mut st)
                .with_context(|| format!("source {:?}", self.name))?;
            let mut picked: Vec<_> = tags
                .iter()
                .filter(|t| pattern.matches(t))
                .cloned()
                .collect();
            picked.sort();
            if picked.is_empty() {
                eprintln!(
                    "ferry-out: warning: source {:?}: no tag of {repo} matches its pattern",
                    self.name
                );
            }
            for tag in picked {
                let image = ImageRef {
                    repo: repo.clone(),
                    tag: Some(tag),
                    digest: None,
                };
                if !images.contains(&image) {
                    images.push(image);
                }
            }
        }
        for image in &images {
            let reference = image
                .digest
                .clone()
                .or(image.tag.clone())
                .expect("a tag or a digest");
            let (bytes, digest) = self
                .registry
                .manifest(&image.repo, &reference)
                .with_context(|| {
                    format!("source {:?}: image {}:{reference}", self.name, image.repo)
                })?;
            if let (Some(want), Some(_)) = (&image.digest, &image.tag) {
                if *want != digest {
                    bail!("image {}: tag and digest disagree", image.repo);
                }
            }
            if let Some(tag) = &image.tag {
                self.emit_tag(&image.repo, tag, &digest, &mut st, sink)?;
            }
            let mut walked = Vec::new();
            self.walk(
                &image.repo,
                bytes,
                &digest,
                false,
                &mut st,
                &mut walked,
                sink,
            )
            .with_context(|| format!("source {:?}", self.name))?;
            if self.referrers {
                for m in walked {
                    self.referrers(&image.repo, &m, 0, &mut st, sink)
                        .with_context(|| format!("source {:?}: referrers", self.name))?;
                }
            }
        }
        self.keep_pins(cx, &mut st, sink)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references() {
        let r = ImageRef::parse("nvidia/gpu-operator:v1.9.0").unwrap();
        assert_eq!(
            (r.repo.as_str(), r.tag.as_deref()),
            ("nvidia/gpu-operator", Some("v1.9.0"))
        );
        let r = ImageRef::parse("library/busybox").unwrap();
        assert_eq!(r.tag.as_deref(), Some("latest"));
        let d = format!("sha256:{}", "a".repeat(64));
        let r = ImageRef::parse(&format!("nvidia/k8s-device-plugin@{d}")).unwrap();
        assert_eq!((r.tag, r.digest), (None, Some(d)));
        for bad in ["Upper/case:1", "x:bad tag", "x@sha256:12", "", "a//b:1"] {
            assert!(ImageRef::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tag_patterns() {
        let p = TagPattern::parse(r"11\.4\..*-base-ubi8").unwrap();
        assert!(p.matches("11.4.2-base-ubi8"));
        assert!(!p.matches("11.4.2-base-ubi8-extra"));
        assert!(!p.matches("11.5.0-base-ubi8"));
        let s = TagPattern::parse("semver:>=1.9, <2").unwrap();
        assert!(s.matches("v1.9.0") && s.matches("1.10.3"));
        assert!(!s.matches("v2.0.0") && !s.matches("latest") && !s.matches("1.8.9"));
        assert!(TagPattern::parse("semver:not a range").is_err());
        assert!(TagPattern::parse("(unclosed").is_err());
    }

    #[test]
    fn challenges_and_basic_auth() {
        let c = parse_challenge(
            r#"realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ubuntu:pull""#,
        );
        assert_eq!(c["realm"], "https://auth.docker.io/token");
        assert_eq!(c["service"], "registry.docker.io");
        assert_eq!(
            basic_header("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(basic_header("a", "b"), "Basic YTpi");
    }

    #[test]
    fn docker_config_json() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("config.json");
        std::fs::write(
            &f,
            r#"{"auths":{"reg.example:5000":{"auth":"dXNlcjpwYTpzcw=="},"https://index.docker.io/v1/":{"username":"d","password":"p"},"tok.example":{"identitytoken":"x"}}}"#,
        )
        .unwrap();
        assert_eq!(
            docker_config_auth(&f, "https://reg.example:5000").unwrap(),
            ("user".to_string(), "pa:ss".to_string())
        );
        assert_eq!(
            docker_config_auth(&f, "docker.io").unwrap(),
            ("d".to_string(), "p".to_string())
        );
        let e = format!("{:#}", docker_config_auth(&f, "tok.example").unwrap_err());
        assert!(e.contains("identitytoken"), "{e}");
        let e = format!("{:#}", docker_config_auth(&f, "other.example").unwrap_err());
        assert!(e.contains("no entry for other.example"), "{e}");
    }
}
