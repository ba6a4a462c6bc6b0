//! The registry client: one agent per source, `GET`s under `/v2/`, the auth
//! challenge answered once per repository scope, manifests checked against
//! their digests, tag lists followed through their pages.

use super::auth::{basic_header, parse_challenge};
use anyhow::{anyhow, bail, Context, Result};
use ferry_formats::oci::{Digest, ACCEPT_MANIFESTS};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

/// Largest manifest (or tag list page, or referrers index) read from a
/// registry.
pub(super) const MAX_MANIFEST: u64 = 16 << 20;

/// A registry client: base URL, credentials, bearer tokens per scope.
pub struct Registry {
    pub(super) base: String,
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
    pub(super) fn request(
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
    pub fn manifest(&self, repo: &str, reference: &str) -> Result<(Vec<u8>, Digest)> {
        let mut resp = self.get(
            repo,
            &format!("{repo}/manifests/{reference}"),
            Some(ACCEPT_MANIFESTS),
        )?;
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
        let digest = Digest::of(&bytes);
        for claimed in [
            Some(reference.to_string()).filter(|r| r.starts_with("sha256:")),
            header,
        ]
        .into_iter()
        .flatten()
        {
            if claimed != digest.to_string() {
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
