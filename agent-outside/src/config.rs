//! The outside configuration file (TOML).
//!
//! ```toml
//! [export]
//! expires = "90d"          # how long a bundle stays acceptable inside
//! compression_level = 3    # zstd level for chunks
//!
//! [[source]]
//! name = "tools"
//! type = "files"
//! path = "/srv/upstream/tools"       # a local tree, or
//! # urls = ["https://host/a.tar.gz"] # or tables: { url = "...", sha256 = "..." }
//! ```

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The whole configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Export settings.
    #[serde(default)]
    pub export: ExportConfig,
    /// The upstream sources.
    #[serde(default, rename = "source")]
    pub sources: Vec<SourceConfig>,
}

/// Export settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    /// How long a bundle stays acceptable to the inside, such as `90d`.
    #[serde(default = "default_expires")]
    pub expires: String,
    /// zstd level for chunks (1 fastest, 19 smallest).
    #[serde(default = "default_level")]
    pub compression_level: i32,
}

impl Default for ExportConfig {
    fn default() -> Self {
        ExportConfig {
            expires: default_expires(),
            compression_level: default_level(),
        }
    }
}

fn default_expires() -> String {
    "90d".into()
}
fn default_level() -> i32 {
    3
}

/// One upstream source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Name, unique in the config; becomes the first path component inside.
    pub name: String,
    /// Kind of source.
    #[serde(rename = "type")]
    pub kind: SourceType,
    /// `files`: a local tree.
    pub path: Option<PathBuf>,
    /// `files`: URLs to fetch.
    #[serde(default)]
    pub urls: Vec<UrlEntry>,
    /// `oci`: the registry, `host[:port]` (https) or an `http://`/`https://` URL.
    pub registry: Option<String>,
    /// `oci`: images, as `repository:tag`, `repository@sha256:…` or both.
    #[serde(default)]
    pub images: Vec<String>,
    /// `oci`: tag patterns per repository: a regular expression matched
    /// against the whole tag, or `semver:<range>` (such as `semver:>=1.9, <2`).
    #[serde(default)]
    pub tags: std::collections::BTreeMap<String, String>,
    /// `oci`: platforms to keep from an index, such as `linux/amd64` (default: all).
    #[serde(default)]
    pub platforms: Vec<String>,
    /// `oci`: user name for basic authentication (or for the token service).
    pub username: Option<String>,
    /// `oci`: file holding the password or token for `username`.
    pub password_file: Option<PathBuf>,
}

/// The kinds of source this build knows.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SourceType {
    /// Plain files.
    Files,
    /// Container images from an OCI distribution registry.
    Oci,
}

/// A URL to fetch, with an optional expected SHA-256.
#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
pub enum UrlEntry {
    /// Just the URL.
    Plain(String),
    /// URL with details.
    Detailed {
        /// The URL.
        url: String,
        /// Expected SHA-256 (hex).
        sha256: Option<String>,
        /// Path to store it under (default: the URL's last segment).
        path: Option<String>,
    },
}

impl UrlEntry {
    /// The URL.
    pub fn url(&self) -> &str {
        match self {
            UrlEntry::Plain(u) | UrlEntry::Detailed { url: u, .. } => u,
        }
    }
}

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        let cfg: Config = toml::from_str(&text)
            .with_context(|| format!("config {} is not valid", path.display()))?;
        cfg.check()
            .with_context(|| format!("config {}", path.display()))?;
        Ok(cfg)
    }

    fn check(&self) -> Result<()> {
        let mut names = std::collections::HashSet::new();
        for s in &self.sources {
            ferry_protocol::path::check_source_name(&s.name)
                .map_err(|e| anyhow::anyhow!("source {:?}: {e}", s.name))?;
            if !names.insert(&s.name) {
                bail!("source name {:?} is used twice", s.name);
            }
            match s.kind {
                SourceType::Files => {
                    if s.path.is_none() && s.urls.is_empty() {
                        bail!("source {:?} (files) needs `path` or `urls`", s.name);
                    }
                }
                SourceType::Oci => {
                    if s.registry.is_none() || (s.images.is_empty() && s.tags.is_empty()) {
                        bail!(
                            "source {:?} (oci) needs `registry` and `images` or `tags`",
                            s.name
                        );
                    }
                }
            }
        }
        ferry_agent_common::units::parse_duration_secs(&self.export.expires)
            .context("[export] expires")?;
        if !(1..=22).contains(&self.export.compression_level) {
            bail!("[export] compression_level must be 1 to 22");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_form() {
        let cfg: Config = toml::from_str(
            r#"
            [[source]]
            name = "tools"
            type = "files"
            path = "/srv/upstream/tools"

            [[source]]
            name = "dl"
            type = "files"
            urls = ["https://host/a.tar.gz", { url = "https://host/b", sha256 = "00" }]
            "#,
        )
        .unwrap();
        cfg.check().unwrap();
        assert_eq!(cfg.sources.len(), 2);
        assert_eq!(cfg.sources[1].urls[1].url(), "https://host/b");
    }

    #[test]
    fn rejects_bad_configs() {
        for bad in [
            "[[source]]\nname = \"a\"\ntype = \"files\"\n",
            "[[source]]\nname = \"../x\"\ntype = \"files\"\npath = \"/x\"\n",
            "[[source]]\nname = \"a\"\ntype = \"ftp\"\npath = \"/x\"\n",
            "[[source]]\nname = \"a\"\ntype = \"files\"\npath = \"/x\"\n[[source]]\nname = \"a\"\ntype = \"files\"\npath = \"/y\"\n",
        ] {
            let parsed: Result<Config, _> = toml::from_str(bad);
            assert!(parsed.map(|c| c.check().is_err()).unwrap_or(true), "{bad}");
        }
    }
}
