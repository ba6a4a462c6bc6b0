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
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::io::Cursor;
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
}

#[derive(Deserialize)]
struct TokenReply {
    token: Option<String>,
    access_token: Option<String>,
}

impl Registry {
    /// A client for `registry` (`host[:port]` means https).
    pub fn new(registry: &str, basic: Option<(String, String)>) -> Registry {
        let base = if registry.starts_with("http://") || registry.starts_with("https://") {
            registry.trim_end_matches('/').to_string()
        } else if registry == "docker.io" {
            "https://registry-1.docker.io".to_string()
        } else {
            format!("https://{}", registry.trim_end_matches('/'))
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Registry {
            base,
            agent,
            basic,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// GETs `path` (under `/v2/`) for `repo`, answering an auth challenge once.
    fn get(
        &self,
        repo: &str,
        path: &str,
        accept: Option<&str>,
    ) -> Result<ureq::http::Response<ureq::Body>> {
        let url = format!("{}/v2/{path}", self.base);
        let scope = format!("repository:{repo}:pull");
        for attempt in 0..2 {
            let mut req = self.agent.get(&url);
            if let Some(a) = accept {
                req = req.header("Accept", a);
            }
            if let Some(t) = self.tokens.lock().expect("token cache").get(&scope) {
                req = req.header("Authorization", &format!("Bearer {t}"));
            } else if let Some((u, p)) = &self.basic {
                req = req.header("Authorization", &basic_header(u, p));
            }
            let resp = req.call().with_context(|| format!("cannot reach {url}"))?;
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
            if !resp.status().is_success() {
                bail!("{url}: HTTP {}", resp.status());
            }
            return Ok(resp);
        }
        bail!("{url}: still unauthorized after authenticating")
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

    /// Opens a blob for reading.
    pub fn blob(&self, repo: &str, digest: &str) -> Result<Box<dyn std::io::Read>> {
        let resp = self.get(repo, &format!("{repo}/blobs/{digest}"), None)?;
        Ok(Box::new(
            resp.into_body().into_with_config().limit(u64::MAX).reader(),
        ))
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
}

/// An OCI source.
pub struct OciSource {
    name: String,
    registry: std::sync::Arc<Registry>,
    images: Vec<ImageRef>,
    patterns: Vec<(String, TagPattern)>,
    platforms: Vec<String>,
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
    /// User name for basic authentication (or for the token service).
    pub username: Option<String>,
    /// File holding the password or token for `username`.
    pub password_file: Option<std::path::PathBuf>,
}

impl OciSource {
    /// From its config entry.
    pub fn new(cfg: &SourceConfig) -> Result<Self> {
        let settings: OciSettings = cfg.settings()?;
        if settings.images.is_empty() && settings.tags.is_empty() {
            bail!("source {:?} (oci) needs `images` or `tags`", cfg.name);
        }
        let registry = settings.registry.as_str();
        let basic = match (&settings.username, &settings.password_file) {
            (Some(u), Some(f)) => {
                let p = std::fs::read_to_string(f)
                    .with_context(|| format!("cannot read {}", f.display()))?;
                Some((u.clone(), p.trim_end().to_string()))
            }
            (None, None) => None,
            _ => bail!(
                "source {:?}: give both `username` and `password_file`, or neither",
                cfg.name
            ),
        };
        let images = settings
            .images
            .iter()
            .map(|i| ImageRef::parse(i).with_context(|| format!("source {:?}", cfg.name)))
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
        Ok(OciSource {
            patterns,
            name: cfg.name.clone(),
            registry: std::sync::Arc::new(Registry::new(registry, basic)),
            images,
            platforms: settings.platforms.clone(),
        })
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

    /// Lists a manifest and everything it refers to.
    fn walk(
        &self,
        image: &ImageRef,
        bytes: Vec<u8>,
        digest: &str,
        seen: &mut HashSet<String>,
        sink: &mut dyn FnMut(Item) -> Result<()>,
    ) -> Result<()> {
        let hex = digest_hex(digest)
            .expect("digests are computed here")
            .to_string();
        let m: AnyManifest = serde_json::from_slice(&bytes)
            .with_context(|| format!("image {}: manifest {digest} is not JSON", image.repo))?;
        if m.schema_version != 2 {
            bail!(
                "image {}: manifest {digest} has schemaVersion {} (only 2 is supported)",
                image.repo,
                m.schema_version
            );
        }
        let mut children = Vec::new();
        let mut blobs = Vec::new();
        if let Some(list) = m.manifests {
            for d in list.into_iter().filter(|d| self.wants(&d.platform)) {
                children.push(d.digest);
            }
            if children.is_empty() {
                bail!(
                    "image {}: index {digest} has no manifest for platforms {:?}",
                    image.repo,
                    self.platforms
                );
            }
        } else {
            blobs.extend(m.config.map(|c| c.digest));
            blobs.extend(m.layers.unwrap_or_default().into_iter().map(|l| l.digest));
        }
        if seen.insert(format!("manifests/sha256/{hex}")) {
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
                    anyhow!(
                        "image {}: manifest {digest} names blob {b:?}, not a sha256 digest",
                        image.repo
                    )
                })?
                .to_string();
            let path = format!("blobs/sha256/{bhex}");
            if !seen.insert(path.clone()) {
                continue;
            }
            let (registry, repo, agent_digest) =
                (self.registry.clone(), image.repo.clone(), b.clone());
            sink(Item {
                path,
                kind: ItemKind::File {
                    executable: false,
                    fingerprint: Some(b.clone()),
                    expected_sha256: Sha256::from_hex(&bhex),
                    open: Box::new(move || {
                        registry
                            .blob(&repo, &agent_digest)
                            .with_context(|| format!("image {repo}: blob {agent_digest}"))
                    }),
                },
            })?;
        }
        for c in children {
            let (cbytes, cdigest) = self
                .registry
                .manifest(&image.repo, &c)
                .with_context(|| format!("image {}", image.repo))?;
            self.walk(image, cbytes, &cdigest, seen, sink)?;
        }
        Ok(())
    }
}

impl Source for OciSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SourceKind {
        SourceKind::Oci
    }

    fn scan(&self, _cx: &ScanCtx<'_>, sink: &mut dyn FnMut(Item) -> Result<()>) -> Result<()> {
        let mut seen = HashSet::new();
        let mut images = self.images.clone();
        for (repo, pattern) in &self.patterns {
            let tags = self
                .registry
                .tags(repo)
                .with_context(|| format!("source {:?}", self.name))?;
            let picked: Vec<_> = tags.into_iter().filter(|t| pattern.matches(t)).collect();
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
                let path = format!("repos/{}/_tags/{tag}", image.repo);
                if seen.insert(path.clone()) {
                    let content = format!("{digest}\n").into_bytes();
                    sink(Item {
                        path,
                        kind: ItemKind::File {
                            executable: false,
                            fingerprint: Some(digest.clone()),
                            expected_sha256: None,
                            open: Box::new(move || {
                                Ok(Box::new(Cursor::new(content)) as Box<dyn std::io::Read>)
                            }),
                        },
                    })?;
                }
            }
            self.walk(image, bytes, &digest, &mut seen, sink)
                .with_context(|| format!("source {:?}", self.name))?;
        }
        Ok(())
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
}
