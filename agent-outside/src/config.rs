//! The outside configuration file (TOML).
//!
//! ```toml
//! [export]
//! expires = "90d"          # how long a bundle stays acceptable inside
//! compression_level = 3    # zstd level for chunks
//! delta = "fast"           # patches against predecessors: off, fast (zstd 3), high (zstd 19,
//!                          # xz streams reproduced too) or a zstd level (10 and up: as high)
//! delta_max_object = "256M" # larger objects ship whole (analysis holds them in memory)
//! delta_max_streamed = "1G" # but a gzip layer, a zip (wheel, jar), a deb or an RPM up to this is
//!                          # patched: analysed as it is read, never held
//! delta_xz = "auto"        # reproduce xz streams (debs, RPMs): auto (at high only), always
//!                          # (fewest bytes at any level; xz's speed, ~1.5 MB/s a core, on
//!                          # both sides) or never
//! sign = "now"             # or "separate": export never reads signing.key, `ferry-out sign`
//!                          # signs (crate::signing); `export --unsigned` does the same
//!
//! [[source]]
//! name = "tools"
//! type = "files"
//! path = "/srv/upstream/tools"       # a local tree, or
//! # urls = ["https://host/a.tar.gz"] # or tables: { url = "...", sha256 = "..." }
//! ca_file = "/etc/ferry/ca.pem"      # network keys every type accepts:
//! timeout = "30s"                    # see `crate::upstream::NetSettings`
//! retries = 3
//! ```

use crate::upstream::{NetSettings, NET_KEYS};
use anyhow::{bail, Context, Result};
use ferry_protocol::catalog::SourceKind;
use serde::Deserialize;
use std::path::Path;

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
    /// Site rules (`crate::policy`).
    #[serde(default)]
    pub policy: crate::policy::PolicyConfig,
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
    /// How changed objects are patched against their predecessors: `off`,
    /// `fast`, `high` or a zstd level (`crate::delta`).
    #[serde(default = "default_delta")]
    pub delta: String,
    /// Largest object patched, such as `256M`.
    #[serde(default = "default_delta_max")]
    pub delta_max_object: String,
    /// Largest object patched when it is one gzip member (an image layer)
    /// or a zip (a wheel, a jar), analysed as it is read and never held,
    /// such as `1G`.
    #[serde(default = "default_delta_max_streamed")]
    pub delta_max_streamed: String,
    /// Whether xz streams are reproduced: `auto` (at `high` only),
    /// `always` or `never` (`crate::delta::XzPolicy`).
    #[serde(default = "default_delta_xz")]
    pub delta_xz: String,
    /// The newest recipe version the insides read: 7 (the default) lets a
    /// large Go-made gzip stream (Docker's layers, levels 4 to 9) be cut so
    /// that the inside rebuilds it on every core; 6 adds
    /// encoders 5 and 7 (klauspost's pgzip and `flate`: podman's, buildah's
    /// and skopeo's layers), 6 (zlib-ng's deflate: pillow's wheels, cargo's
    /// crates) and 8 (Go 1.27's `compress/flate`, modelled); 5 adds encoders 3 (Go's) and 4 (miniz_oxide's deflate: Rust-built wheels rebuilt without
    /// preflate-rs); 4 lets a large GNU gzip stream be cut so that the
    /// inside rebuilds it on every core; 3 for an inside built before
    /// recipe version 4. An inside refuses a recipe newer than it reads.
    #[serde(default = "default_delta_recipe_version")]
    pub delta_recipe_version: u8,
    /// When the manifest is signed: `now` (by export) or `separate` (by
    /// `ferry-out sign`; export never reads the key).
    #[serde(default)]
    pub sign: SignMode,
}

/// When an export's manifest is signed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignMode {
    /// By export, with `STATE/signing.key`.
    #[default]
    Now,
    /// By `ferry-out sign`, apart (crate::signing).
    Separate,
}

impl Default for ExportConfig {
    fn default() -> Self {
        ExportConfig {
            expires: default_expires(),
            compression_level: default_level(),
            delta: default_delta(),
            delta_max_object: default_delta_max(),
            delta_max_streamed: default_delta_max_streamed(),
            delta_xz: default_delta_xz(),
            delta_recipe_version: default_delta_recipe_version(),
            sign: SignMode::Now,
        }
    }
}

fn default_expires() -> String {
    "90d".into()
}
fn default_level() -> i32 {
    3
}
fn default_delta() -> String {
    "fast".into()
}
fn default_delta_recipe_version() -> u8 {
    ferry_recipe::RECIPE_VERSION
}
fn default_delta_xz() -> String {
    "auto".into()
}
fn default_delta_max() -> String {
    "256M".into()
}

fn default_delta_max_streamed() -> String {
    "1G".into()
}

/// One upstream source: its name and type, the network keys every type
/// shares ([`NetSettings`]), and the settings its type's module reads (each
/// source module owns its settings struct, which refuses unknown keys).
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Name, unique in the config; becomes the first path component inside.
    pub name: String,
    /// Kind of source (the `type` key).
    pub kind: SourceKind,
    /// How the source reaches upstream: `ca_file`, `timeout`, `retries` and
    /// credentials, the same keys for every type.
    pub net: NetSettings,
    /// Every other key of the `[[source]]` table.
    pub settings: toml::Table,
    /// `unsigned_ok = "why"`: shipped without an upstream signature under
    /// `[policy] require_upstream_signatures` (`crate::policy`).
    pub unsigned_ok: Option<String>,
}

impl<'de> Deserialize<'de> for SourceConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error;
        let mut settings = toml::Table::deserialize(d)?;
        let name = match settings.remove("name") {
            Some(toml::Value::String(s)) => s,
            Some(_) => return Err(D::Error::custom("a source's `name` must be a string")),
            None => return Err(D::Error::custom("every [[source]] needs a `name`")),
        };
        let kind = match settings.remove("type") {
            Some(toml::Value::String(t)) => parse_kind(&t).ok_or_else(|| {
                D::Error::custom(format!(
                    "source {name:?}: `type`: unknown type {t:?} (one of: {})",
                    SourceKind::ALL.map(SourceKind::name).join(", ")
                ))
            })?,
            Some(_) => {
                return Err(D::Error::custom(format!(
                    "source {name:?}: `type` must be a string"
                )))
            }
            None => return Err(D::Error::custom(format!("source {name:?} needs a `type`"))),
        };
        let unsigned_ok = match settings.remove("unsigned_ok") {
            Some(toml::Value::String(s)) => Some(s),
            Some(_) => {
                return Err(D::Error::custom(format!(
                    "source {name:?}: `unsigned_ok` must be a string giving the reason"
                )))
            }
            None => None,
        };
        let net: toml::Table = settings
            .iter()
            .filter(|(k, _)| NET_KEYS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let net: NetSettings = toml::Value::Table(net)
            .try_into()
            .map_err(|e| D::Error::custom(format!("source {name:?}: {e}")))?;
        Ok(SourceConfig {
            name,
            kind,
            net,
            settings,
            unsigned_ok,
        })
    }
}

/// The source kind a config `type` names.
fn parse_kind(t: &str) -> Option<SourceKind> {
    SourceKind::ALL.into_iter().find(|k| k.name() == t)
}

impl SourceConfig {
    /// Reads this source's own settings into its module's settings struct
    /// (which should `deny_unknown_fields`); the error does not name the
    /// source: [`crate::source::from_config`] adds that. The
    /// network keys ([`NET_KEYS`]) are not among them: they are in
    /// [`SourceConfig::net`].
    pub fn settings<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        let mut table = self.settings.clone();
        table.retain(|k, _| !NET_KEYS.contains(&k));
        toml::Value::Table(table)
            .try_into()
            .map_err(anyhow::Error::from)
    }
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
            // Each module checks its own settings (and refuses unknown keys).
            // (Its errors name the source.)
            let src = crate::source::from_config(s)?;
            self.policy.check(s, &*src)?;
        }
        ferry_agent_common::units::parse_duration_secs(&self.export.expires)
            .context("[export] expires")?;
        crate::delta::parse_level(&self.export.delta).context("[export] delta")?;
        crate::delta::XzPolicy::parse(&self.export.delta_xz).context("[export] delta_xz")?;
        if !(3..=ferry_recipe::RECIPE_VERSION).contains(&self.export.delta_recipe_version) {
            bail!(
                "[export] delta_recipe_version is {}: it must be 3, 4, 5, 6 (insides that read recipe versions up to that) or {}",
                self.export.delta_recipe_version,
                ferry_recipe::RECIPE_VERSION
            );
        }
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
        let files: crate::source::files::FilesSettings = cfg.sources[1].settings().unwrap();
        assert_eq!(files.urls[1].url(), "https://host/b");
        assert_eq!(cfg.sources[0].kind, SourceKind::Files);
    }

    #[test]
    fn network_keys_are_parsed_once_for_every_type() {
        let cfg: Config = toml::from_str(
            r#"
            [[source]]
            name = "dl"
            type = "files"
            urls = ["https://host/a.tar.gz"]
            timeout = "2m"
            retries = 5
            "#,
        )
        .unwrap();
        cfg.check().unwrap();
        let s = &cfg.sources[0];
        assert_eq!(s.net.timeout.as_deref(), Some("2m"));
        assert_eq!(s.net.retries, Some(5));
        // The source's own struct, which refuses unknown keys, never sees them.
        let _: crate::source::files::FilesSettings = s.settings().unwrap();
        for bad in [
            "retries = \"many\"",
            "timeout = \"0s\"",
            "ca_file = \"/nonexistent/ca.pem\"",
            "username = \"u\"",
        ] {
            let text = format!(
                "[[source]]\nname = \"d\"\ntype = \"files\"\nurls = [\"https://h/a\"]\n{bad}\n"
            );
            let parsed: Result<Config, _> = toml::from_str(&text);
            assert!(parsed.map(|c| c.check().is_err()).unwrap_or(true), "{bad}");
        }
    }

    #[test]
    fn rejects_bad_configs() {
        for bad in [
            "[[source]]\nname = \"a\"\ntype = \"files\"\n",
            "[[source]]\nname = \"../x\"\ntype = \"files\"\npath = \"/x\"\n",
            "[[source]]\nname = \"a\"\ntype = \"ftp\"\npath = \"/x\"\n",
            "[[source]]\nname = \"a\"\ntype = \"files\"\npath = \"/x\"\nregistry = \"r\"\n",
            "[[source]]\ntype = \"files\"\npath = \"/x\"\n",
            "[[source]]\nname = \"a\"\ntype = \"files\"\npath = \"/x\"\n[[source]]\nname = \"a\"\ntype = \"files\"\npath = \"/y\"\n",
            "[export]\ndelta_xz = \"sometimes\"\n[[source]]\nname = \"a\"\ntype = \"files\"\npath = \"/x\"\n",
            "[export]\ndelta_recipe_version = 2\n[[source]]\nname = \"a\"\ntype = \"files\"\npath = \"/x\"\n",
            "[export]\ndelta_recipe_version = 8\n[[source]]\nname = \"a\"\ntype = \"files\"\npath = \"/x\"\n",
        ] {
            let parsed: Result<Config, _> = toml::from_str(bad);
            assert!(parsed.map(|c| c.check().is_err()).unwrap_or(true), "{bad}");
        }
    }

    #[test]
    fn xz_reproduction_is_a_setting_apart_from_the_level() {
        use crate::delta::{parse_level, XzPolicy};
        let fast = parse_level("fast").unwrap().unwrap();
        let high = parse_level("high").unwrap().unwrap();
        let auto = XzPolicy::parse(&ExportConfig::default().delta_xz).unwrap();
        assert_eq!(auto, XzPolicy::Auto);
        assert!(!auto.reproduces(fast) && auto.reproduces(high));
        let always = XzPolicy::parse("always").unwrap();
        assert!(always.reproduces(fast) && always.reproduces(high));
        let never = XzPolicy::parse("never").unwrap();
        assert!(!never.reproduces(fast) && !never.reproduces(high));
        let err = XzPolicy::parse("yes").unwrap_err().to_string();
        assert!(
            err.contains("\"yes\"") && err.contains("auto, always or never"),
            "{err}"
        );
    }
}
