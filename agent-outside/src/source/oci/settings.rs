//! The settings of a `type = "oci"` source and how they are checked. The
//! network keys (`ca_file`, credentials: `username` and `password_file`,
//! `token_file` or a docker `config.json` in `auth_file`; `timeout`,
//! `retries`) are every source's, read by `crate::upstream::NetSettings`.

use super::reference::{ImageRef, TagPattern};
use super::registry::Registry;
use super::signatures::{Cosign, CosignPolicy};
use super::OciSource;
use crate::config::SourceConfig;
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

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
    pub tags: BTreeMap<String, String>,
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
    pub rename: BTreeMap<String, String>,
    /// Cosign public keys (PEM): every image's manifest must carry a
    /// signature (tag `sha256-<hex>.sig`) that verifies with one of them.
    #[serde(default)]
    pub cosign_keys: Vec<PathBuf>,
    /// What an image without a valid signature does: `refuse-export`
    /// (default: the export fails) or `refuse-image` (left out, warned).
    #[serde(default)]
    pub cosign_policy: Option<CosignPolicy>,
}

impl OciSettings {
    /// `images` and `pin`, parsed; a pin must be `repository:tag`.
    fn images_and_pins(&self, source: &str) -> Result<(Vec<ImageRef>, Vec<ImageRef>)> {
        let images = self
            .images
            .iter()
            .map(|i| ImageRef::parse(i).with_context(|| format!("source {source:?}")))
            .collect::<Result<Vec<_>>>()?;
        let pins = self
            .pin
            .iter()
            .map(|i| {
                let r = ImageRef::parse(i).with_context(|| format!("source {source:?}: pin"))?;
                if r.digest.is_some() || !i.contains(':') {
                    bail!(
                        "source {source:?}: pin {i:?} must be repository:tag (an image by digest never moves)"
                    );
                }
                Ok(r)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((images, pins))
    }

    /// `tags`, parsed: repository -> pattern.
    fn patterns(&self, source: &str) -> Result<Vec<(String, TagPattern)>> {
        self.tags
            .iter()
            .map(|(repo, p)| {
                ImageRef::parse(repo).with_context(|| format!("source {source:?}: tags"))?;
                Ok((
                    repo.clone(),
                    TagPattern::parse(p)
                        .with_context(|| format!("source {source:?}: tags for {repo}"))?,
                ))
            })
            .collect()
    }

    /// `prefix` (without surrounding `/`) and `rename`, checked: every name
    /// a repository name, no two repositories renamed to one.
    fn served_names(&self, source: &str) -> Result<Option<String>> {
        let prefix = self.prefix.as_deref().map(|p| p.trim_matches('/'));
        if let Some(p) = prefix {
            ImageRef::parse(&format!("{p}/x"))
                .with_context(|| format!("source {source:?}: prefix {p:?}"))?;
        }
        let mut targets = BTreeMap::new();
        for (from, to) in &self.rename {
            for name in [from, to] {
                ImageRef::parse(name)
                    .with_context(|| format!("source {source:?}: rename {from:?} = {to:?}"))?;
            }
            if let Some(other) = targets.insert(to, from) {
                bail!(
                    "source {source:?}: rename gives {other:?} and {from:?} the same name {to:?}"
                );
            }
        }
        Ok(prefix.map(str::to_string))
    }
}

impl OciSource {
    /// From its config entry.
    pub fn new(cfg: &SourceConfig) -> Result<Self> {
        let settings: OciSettings = cfg.settings()?;
        let name = &cfg.name;
        if settings.images.is_empty() && settings.tags.is_empty() && settings.pin.is_empty() {
            bail!("needs `images`, `tags` or `pin`");
        }
        let (images, pins) = settings.images_and_pins(name)?;
        let patterns = settings.patterns(name)?;
        let prefix = settings.served_names(name)?;
        let cosign = match (settings.cosign_keys.is_empty(), settings.cosign_policy) {
            (true, Some(_)) => bail!("`cosign_policy` needs `cosign_keys`"),
            (true, None) => None,
            (false, policy) => Some(Cosign::load(
                &settings.cosign_keys,
                policy.unwrap_or_default(),
            )?),
        };
        Ok(OciSource {
            name: name.clone(),
            registry: Arc::new(Registry::new(&settings.registry, &cfg.net)?),
            images,
            patterns,
            platforms: settings.platforms,
            referrers: settings.referrers,
            pins,
            prefix,
            rename: settings.rename,
            cosign,
            vouches: Mutex::new(Vec::new()),
        })
    }
}
