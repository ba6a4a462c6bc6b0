//! The settings of a `type = "pypi"` source and how they are checked.

use super::tags::{marker_envs, Targets};
use super::PypiSource;
use crate::config::SourceConfig;
use crate::upstream::Client;
use anyhow::{anyhow, bail, Context, Result};
use pep508_rs::{Requirement, VersionOrUrl};
use serde::Deserialize;
use std::str::FromStr;

/// Which versions of a requirement to keep.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Versions {
    /// Only the newest version that has a wanted file.
    #[default]
    Latest,
    /// Every matching version.
    All,
}

/// The settings of a `type = "pypi"` source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PypiSettings {
    /// The simple API's base URL, such as `https://pypi.org/simple/`.
    pub index: String,
    /// PEP 508 requirements.
    #[serde(default)]
    pub requirements: Vec<String>,
    /// Python versions, `major.minor`.
    #[serde(default)]
    pub python: Vec<String>,
    /// Wheel platform tags (empty: every platform).
    #[serde(default)]
    pub platforms: Vec<String>,
    /// Keep source distributions too.
    #[serde(default)]
    pub sdists: bool,
    /// Follow `Requires-Dist`.
    #[serde(default = "yes")]
    pub dependencies: bool,
    /// `latest` or `all`.
    #[serde(default)]
    pub versions: Versions,
    /// Requirements kept even when upstream drops them.
    #[serde(default)]
    pub pin: Vec<String>,
}

fn yes() -> bool {
    true
}

impl PypiSource {
    /// From its config entry.
    pub fn new(cfg: &SourceConfig) -> Result<Self> {
        let s: PypiSettings = cfg.settings()?;
        let name = &cfg.name;
        let mut base = s.index.clone();
        if !base.ends_with('/') {
            base.push('/');
        }
        let index = url::Url::parse(&base)
            .with_context(|| format!("`index` {:?} is not a URL", s.index))?;
        if !matches!(index.scheme(), "http" | "https") {
            bail!("`index` must be an http:// or https:// URL");
        }
        if s.requirements.is_empty() && s.pin.is_empty() {
            bail!("needs `requirements` (or `pin`)");
        }
        let parse = |list: &[String], what: &str| -> Result<Vec<Requirement>> {
            list.iter()
                .map(|r| {
                    let req = Requirement::from_str(r)
                        .map_err(|e| anyhow!("{what} {r:?} is not a PEP 508 requirement: {e}"))?;
                    if let Some(VersionOrUrl::Url(_)) = req.version_or_url {
                        bail!("{what} {r:?} names a URL; only index requirements are mirrored");
                    }
                    Ok(req)
                })
                .collect()
        };
        let requirements = parse(&s.requirements, "requirement")?;
        let pins = parse(&s.pin, "pin")?;
        if s.python.is_empty() {
            bail!("`python` must name at least one Python version, such as [\"3.12\"]");
        }
        let mut pythons = Vec::new();
        for p in &s.python {
            let v = p
                .split_once('.')
                .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
                .filter(|(a, _)| *a >= 2)
                .ok_or_else(|| anyhow!("python {p:?} is not major.minor, such as \"3.12\""))?;
            pythons.push(v);
        }
        for p in &s.platforms {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                bail!(
                    "platform {p:?} is not a wheel platform tag, such as \"manylinux_2_17_x86_64\""
                );
            }
        }
        let envs = marker_envs(&pythons, &s.platforms)?;
        let client = Client::new(&cfg.net, Some(index.as_str()))?;
        Ok(PypiSource {
            name: name.clone(),
            index,
            requirements,
            pins,
            targets: Targets {
                pythons,
                platforms: s.platforms,
                envs,
            },
            sdists: s.sdists,
            dependencies: s.dependencies,
            versions: s.versions,
            client,
        })
    }
}
