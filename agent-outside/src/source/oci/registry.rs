//! The registry client: the source's upstream client, `GET`s under `/v2/`, the auth
//! challenge answered once per repository scope, manifests checked against
//! their digests, tag lists followed through their pages.

use super::auth::parse_challenge;
use crate::upstream::{Client, NetSettings};
use anyhow::{anyhow, bail, Context, Result};
use ferry_formats::oci::{Digest, ACCEPT_MANIFESTS};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Mutex;

/// Largest manifest (or tag list page, or referrers index) read from a
/// registry.
pub(super) const MAX_MANIFEST: u64 = 16 << 20;

/// A registry client: base URL, the source's shared upstream client (CA
/// file, proxy, timeouts, retries, credentials), bearer tokens per scope.
pub struct Registry {
    pub(super) base: String,
    pub(super) client: Client,
    tokens: Mutex<HashMap<String, String>>,
}

#[derive(Deserialize)]
struct TokenReply {
    token: Option<String>,
    access_token: Option<String>,
}

impl Registry {
    /// A client for `registry` (`host[:port]` means https; `docker.io` is
    /// `registry-1.docker.io`), reached as the network settings say.
    pub fn new(registry: &str, net: &NetSettings) -> Result<Registry> {
        let base = if registry.starts_with("http://") || registry.starts_with("https://") {
            registry.trim_end_matches('/').to_string()
        } else if registry == "docker.io" {
            "https://registry-1.docker.io".to_string()
        } else {
            format!("https://{}", registry.trim_end_matches('/'))
        };
        let client = Client::new(net, Some(&format!("{base}/v2/")))?;
        Ok(Registry {
            base,
            client,
            tokens: Mutex::new(HashMap::new()),
        })
    }

    /// `Authorization: Bearer …` for `repo`'s pull scope, when a token was
    /// fetched for it; the source's own credentials are sent otherwise.
    pub(super) fn bearer(&self, repo: &str) -> Option<String> {
        let tokens = self.tokens.lock().expect("token cache");
        tokens.get(&scope(repo)).map(|t| format!("Bearer {t}"))
    }

    /// Forgets `repo`'s token (it expired) and answers the challenge again.
    pub(super) fn reauthorize(&self, repo: &str) -> Result<()> {
        self.tokens
            .lock()
            .expect("token cache")
            .remove(&scope(repo));
        self.request(repo, &format!("{repo}/tags/list?n=1"), &[])
            .map(drop)
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
        for attempt in 0..2 {
            let bearer = self.bearer(repo);
            let mut with_auth = headers.to_vec();
            if let Some(b) = &bearer {
                with_auth.push(("Authorization", b));
            }
            let resp = self.client.get_response(&url, &with_auth)?;
            if resp.status() != 401 {
                return Ok(resp);
            }
            let challenge = resp
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            match challenge.strip_prefix("Bearer ") {
                Some(rest) if attempt == 0 => {
                    let token = self.token(rest, &scope(repo))?;
                    let mut tokens = self.tokens.lock().expect("token cache");
                    tokens.insert(scope(repo), token);
                }
                Some(_) => break,
                None => bail!(
                    "{url}: 401 Unauthorized ({challenge}); set `username` and `password_file` \
                     (or `auth_file`) for this source"
                ),
            }
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

    /// Fetches a bearer token for the challenge's realm, presenting the
    /// source's basic credentials (the token service may be another host).
    fn token(&self, challenge: &str, scope: &str) -> Result<String> {
        let params = parse_challenge(challenge);
        let realm = params
            .get("realm")
            .ok_or_else(|| anyhow!("auth challenge without a realm: {challenge}"))?;
        let mut url = url::Url::parse(realm)
            .with_context(|| format!("auth challenge with a realm that is not a URL: {realm}"))?;
        url.query_pairs_mut().append_pair("scope", scope);
        if let Some(s) = params.get("service") {
            url.query_pairs_mut().append_pair("service", s);
        }
        let headers: Vec<(&str, &str)> = self
            .client
            .authorization()
            .filter(|a| a.starts_with("Basic "))
            .map(|a| ("Authorization", a))
            .into_iter()
            .collect();
        let mut resp = self
            .client
            .get_response(url.as_str(), &headers)
            .with_context(|| format!("token service {realm}"))?;
        if !resp.status().is_success() {
            bail!("token service {realm}: HTTP {}", resp.status());
        }
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_MANIFEST)
            .read_to_vec()
            .with_context(|| format!("token service {realm}"))?;
        let reply: TokenReply = serde_json::from_slice(&body).with_context(|| {
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

/// The token scope for pulling from `repo`.
fn scope(repo: &str) -> String {
    format!("repository:{repo}:pull")
}
