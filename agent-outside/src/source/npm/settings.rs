//! The settings of a `type = "npm"` source and how they are checked.

use super::NpmSource;
use crate::config::SourceConfig;
use crate::upstream::Client;
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The settings of a `type = "npm"` source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NpmSettings {
    /// The registry's base URL.
    #[serde(default = "npmjs")]
    pub registry: String,
    /// Package name -> npm range.
    #[serde(default)]
    pub packages: BTreeMap<String, String>,
    /// `package-lock.json` files (lockfileVersion 2 or 3).
    #[serde(default)]
    pub lockfiles: Vec<PathBuf>,
    /// `latest` or `all`.
    #[serde(default = "latest")]
    pub versions: String,
    /// Follow `dependencies`.
    #[serde(default = "yes")]
    pub dependencies: bool,
    /// Follow `optionalDependencies`.
    #[serde(default = "yes")]
    pub optional_dependencies: bool,
    /// Follow `peerDependencies`.
    #[serde(default = "yes")]
    pub peer_dependencies: bool,
    /// `warn` or `error`.
    #[serde(default = "warn")]
    pub unsatisfiable: String,
    /// `name@version`: selected exactly while upstream lists it, and kept
    /// inside after upstream unpublishes it.
    #[serde(default)]
    pub pin: Vec<String>,
}

fn npmjs() -> String {
    "https://registry.npmjs.org/".into()
}
fn latest() -> String {
    "latest".into()
}
fn warn() -> String {
    "warn".into()
}
fn yes() -> bool {
    true
}

impl NpmSource {
    /// From its config entry.
    pub fn new(cfg: &SourceConfig) -> Result<Self> {
        let s: NpmSettings = cfg.settings()?;
        let mut base = s.registry.clone();
        if !base.ends_with('/') {
            base.push('/');
        }
        let registry = url::Url::parse(&base)
            .with_context(|| format!("`registry` {:?} is not a URL", s.registry))?;
        if !matches!(registry.scheme(), "http" | "https") {
            bail!("`registry` must be an http:// or https:// URL");
        }
        if s.packages.is_empty() && s.lockfiles.is_empty() && s.pin.is_empty() {
            bail!("needs `packages` (or `lockfiles`, or `pin`)");
        }
        let pins = s
            .pin
            .iter()
            .map(|p| super::pins::parse_pin(p))
            .collect::<Result<Vec<_>>>()?;
        let all_versions = match s.versions.as_str() {
            "latest" => false,
            "all" => true,
            v => bail!("`versions` is \"latest\" or \"all\", not {v:?}"),
        };
        let unsatisfiable_is_error = match s.unsatisfiable.as_str() {
            "warn" => false,
            "error" => true,
            v => bail!("`unsatisfiable` is \"warn\" or \"error\", not {v:?}"),
        };
        let mut packages = Vec::new();
        for (name, range) in &s.packages {
            ferry_formats::npm::check_name(name).context("`packages`")?;
            let reqs = ferry_formats::npm::parse_range(range)
                .with_context(|| format!("package {name:?}"))?;
            packages.push((name.clone(), reqs));
        }
        for f in &s.lockfiles {
            if !f.is_file() {
                bail!("lockfile {} does not exist", f.display());
            }
        }
        let client = Client::new(&cfg.net, Some(registry.as_str()))?;
        Ok(NpmSource {
            name: cfg.name.clone(),
            registry,
            packages,
            lockfiles: s.lockfiles,
            all_versions,
            dependencies: s.dependencies,
            optional_dependencies: s.optional_dependencies,
            peer_dependencies: s.peer_dependencies,
            unsatisfiable_is_error,
            pins,
            client,
        })
    }
}
