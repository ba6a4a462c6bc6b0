//! The settings of a `type = "cargo"` source and how they are checked.

use super::CargoSource;
use crate::config::SourceConfig;
use crate::upstream::Client;
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Which versions of a requirement to keep.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Versions {
    /// The newest matching version that is not yanked.
    #[default]
    Latest,
    /// Every matching version (yanked ones only for an exact requirement).
    All,
}

/// What a dependency that nothing satisfies does to the export.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Unsatisfiable {
    /// A warning; the rest is carried.
    #[default]
    Warn,
    /// The export fails.
    Error,
}

/// The settings of a `type = "cargo"` source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CargoSettings {
    /// The sparse index's base URL (`sparse+` prefix allowed).
    #[serde(default = "crates_io")]
    pub index: String,
    /// Crate name -> semver requirement (`"1"`, `">=1.40"`, `"=0.4.3"`).
    #[serde(default)]
    pub crates: BTreeMap<String, String>,
    /// `Cargo.lock` files whose registry packages are carried exactly.
    #[serde(default)]
    pub lockfiles: Vec<PathBuf>,
    /// `latest` or `all`.
    #[serde(default)]
    pub versions: Versions,
    /// Follow the dependency closure of the `crates` requirements.
    #[serde(default = "yes")]
    pub dependencies: bool,
    /// Follow dev-dependencies too.
    #[serde(default)]
    pub dev_dependencies: bool,
    /// Follow optional dependencies (every feature's).
    #[serde(default = "yes")]
    pub optional_dependencies: bool,
    /// `warn` or `error`.
    #[serde(default)]
    pub unsatisfiable: Unsatisfiable,
    /// `name@version`: selected whatever `crates` says, and kept inside
    /// after upstream drops them.
    #[serde(default)]
    pub pin: Vec<String>,
}

fn yes() -> bool {
    true
}

fn crates_io() -> String {
    "https://index.crates.io/".into()
}

impl CargoSource {
    /// From its config entry.
    pub fn new(cfg: &SourceConfig) -> Result<Self> {
        let s: CargoSettings = cfg.settings()?;
        let raw = s.index.strip_prefix("sparse+").unwrap_or(&s.index);
        let mut base = raw.to_string();
        if !base.ends_with('/') {
            base.push('/');
        }
        let index = url::Url::parse(&base)
            .with_context(|| format!("`index` {:?} is not a URL", s.index))?;
        if !matches!(index.scheme(), "http" | "https") {
            bail!("`index` must be an http:// or https:// sparse index URL (git indexes are not read)");
        }
        if s.crates.is_empty() && s.lockfiles.is_empty() && s.pin.is_empty() {
            bail!("needs `crates` (or `lockfiles`, or `pin`)");
        }
        let pins = s
            .pin
            .iter()
            .map(|p| {
                let (name, version) = p.split_once('@').with_context(|| {
                    format!("pin {p:?} is not name@version, such as \"serde@1.0.200\"")
                })?;
                ferry_formats::cargo::check_name(name).with_context(|| format!("pin {p:?}"))?;
                let v = semver::Version::parse(version)
                    .with_context(|| format!("pin {p:?}: {version:?} is not a semantic version"))?;
                Ok((name.to_string(), v))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut crates = Vec::new();
        for (name, req) in &s.crates {
            ferry_formats::cargo::check_name(name).context("`crates`")?;
            let parsed = semver::VersionReq::parse(req.trim()).with_context(|| {
                format!("crate {name:?}: {req:?} is not a semver requirement (such as \"1\" or \">=1.40\")")
            })?;
            crates.push((name.clone(), parsed));
        }
        for f in &s.lockfiles {
            if !f.is_file() {
                bail!("lockfile {} does not exist", f.display());
            }
        }
        let client = Client::new(&cfg.net, Some(index.as_str()))?;
        Ok(CargoSource {
            name: cfg.name.clone(),
            index,
            crates,
            lockfiles: s.lockfiles,
            versions: s.versions,
            dependencies: s.dependencies,
            dev_dependencies: s.dev_dependencies,
            optional_dependencies: s.optional_dependencies,
            unsatisfiable: s.unsatisfiable,
            pins,
            client,
        })
    }
}
