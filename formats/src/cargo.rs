//! Cargo: the Rust registry's sparse index protocol and the catalog layout
//! of a `cargo` source.
//!
//! A sparse registry serves, under its base URL:
//!
//! - `config.json`: `{"dl": …, "api": …}` ([`RegistryConfig`]); `dl` is the
//!   download URL template ([`RegistryConfig::download_url`]);
//! - one *index file* per crate at its index path ([`index_path`]: `1/<n>`,
//!   `2/<n>`, `3/<c>/<n>`, `<ab>/<cd>/<name>`, lower case), one JSON object a
//!   line per published version ([`IndexLine`]: `name`, `vers`, `deps`,
//!   `cksum`, `features`, `features2`, `yanked`, `links`, `v`,
//!   `rust_version`).
//!
//! ferry-out (`source::cargo`) writes, per source, the index file of every
//! crate it carries, made of upstream's lines of the carried versions,
//! byte-exact and in upstream's order, and each crate at
//! [`crate_path`] (`crates/<name>/<name>-<version>.crate`). ferry-in
//! (`store::cargo`) parses those index files again ([`parse_index`]) and
//! checks every line against the crate held; `serve` writes `config.json`
//! itself, pointing at its own URL.

use semver::Version;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use thiserror::Error;

/// The longest crate name accepted (crates.io allows 64).
pub const MAX_NAME: usize = 64;

/// Why a crate name is refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum NameError {
    /// Empty, longer than [`MAX_NAME`], or with a character other than
    /// ASCII letters, digits, `-` and `_`.
    #[error("{name:?} is not a crate name (ASCII letters, digits, - and _, at most 64)")]
    Invalid {
        /// The name.
        name: String,
    },
}

/// Why an index file is refused. `line` counts from 1.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum IndexError {
    /// Not UTF-8.
    #[error("the index file is not UTF-8")]
    NotUtf8,
    /// A line that is not a JSON index entry (a missing field, a wrong type).
    #[error("line {line}{}: not an index entry: {reason}", at(version))]
    Malformed {
        /// The line.
        line: usize,
        /// Its `vers`, when it could be read.
        version: Option<String>,
        /// What the JSON parser said.
        reason: String,
    },
    /// A line naming another crate than the file's.
    #[error("line {line} (version {version}) names crate {named:?}, the file is {expected:?}'s")]
    WrongCrate {
        /// The line.
        line: usize,
        /// Its `vers`.
        version: String,
        /// The name it gives.
        named: String,
        /// The crate of the file.
        expected: String,
    },
    /// A crate name that is not one.
    #[error("line {0}: {1}")]
    BadName(usize, NameError),
    /// A `vers` that is not a semantic version.
    #[error("line {line}: version {version:?} is not a semantic version: {reason}")]
    BadVersion {
        /// The line.
        line: usize,
        /// The version.
        version: String,
        /// What the semver parser said.
        reason: String,
    },
    /// A `cksum` that is not 64 lower-case hex digits.
    #[error("line {line} (version {version}): cksum {cksum:?} is not a SHA-256 in hex")]
    BadChecksum {
        /// The line.
        line: usize,
        /// Its `vers`.
        version: String,
        /// The checksum given.
        cksum: String,
    },
    /// A version listed twice.
    #[error("version {version} is listed twice")]
    Duplicate {
        /// The version.
        version: String,
    },
}

fn at(version: &Option<String>) -> String {
    version
        .as_ref()
        .map(|v| format!(" (version {v})"))
        .unwrap_or_default()
}

/// Why `config.json` is refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// Not JSON with a string `dl`.
    #[error("config.json is not a registry configuration: {reason}")]
    Malformed {
        /// What the JSON parser said.
        reason: String,
    },
}

/// The kind of a dependency.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DepKind {
    /// `[dependencies]`.
    #[default]
    Normal,
    /// `[build-dependencies]`.
    Build,
    /// `[dev-dependencies]`.
    Dev,
}

/// One dependency of an index entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    /// The name the depending crate uses (the crate's own name unless
    /// [`Dependency::package`] renames it).
    pub name: String,
    /// The semver requirement.
    pub req: String,
    /// Features asked of it.
    #[serde(default)]
    pub features: Vec<String>,
    /// Whether only a feature turns it on.
    #[serde(default)]
    pub optional: bool,
    /// Whether its default features are on.
    #[serde(default = "yes")]
    pub default_features: bool,
    /// A `cfg(…)` or target triple it is limited to.
    #[serde(default)]
    pub target: Option<String>,
    /// Normal, build or dev (absent: normal).
    #[serde(default)]
    pub kind: Option<DepKind>,
    /// Another registry's index URL, when it is not this registry's.
    #[serde(default)]
    pub registry: Option<String>,
    /// The crate's real name when `name` renames it.
    #[serde(default)]
    pub package: Option<String>,
}

fn yes() -> bool {
    true
}

impl Dependency {
    /// The crate depended on (`package` when renamed, else `name`).
    pub fn crate_name(&self) -> &str {
        self.package.as_deref().unwrap_or(&self.name)
    }

    /// Its kind (normal when absent).
    pub fn kind(&self) -> DepKind {
        self.kind.unwrap_or_default()
    }
}

/// One line of an index file: a published version. Unknown fields (such as
/// `pubtime`) are allowed; ferry carries the line byte-exact anyway.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexLine {
    /// The crate's name (any case).
    pub name: String,
    /// The version.
    pub vers: String,
    /// Its dependencies.
    #[serde(default)]
    pub deps: Vec<Dependency>,
    /// SHA-256 of the `.crate` file, lower-case hex.
    pub cksum: String,
    /// Features.
    #[serde(default)]
    pub features: BTreeMap<String, Vec<String>>,
    /// Features using newer syntax (`dep:`, `?`), with `v: 2`.
    #[serde(default)]
    pub features2: Option<BTreeMap<String, Vec<String>>>,
    /// Yanked: not chosen by a fresh resolution.
    #[serde(default)]
    pub yanked: bool,
    /// The native library it links.
    #[serde(default)]
    pub links: Option<String>,
    /// The entry's schema version (1 when absent).
    #[serde(default)]
    pub v: Option<u32>,
    /// The minimum Rust version.
    #[serde(default)]
    pub rust_version: Option<String>,
}

/// A parsed line and the line itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The line as upstream wrote it (no newline).
    pub raw: String,
    /// Its fields.
    pub line: IndexLine,
    /// `vers`, parsed.
    pub version: Version,
}

/// Checks a crate name.
pub fn check_name(name: &str) -> Result<(), NameError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(NameError::Invalid {
            name: name.to_string(),
        })
    }
}

/// The directories before a crate's index file, in the name's own case:
/// `1`, `2`, `3/<c>` or `<ab>/<cd>` (the `{prefix}` of a `dl` template).
pub fn prefix(name: &str) -> String {
    match name.len() {
        1 => "1".into(),
        2 => "2".into(),
        3 => format!("3/{}", &name[..1]),
        _ => format!("{}/{}", &name[..2], &name[2..4]),
    }
}

/// A crate's index file path, lower case: `1/<n>`, `2/<n>`, `3/<c>/<n>` or
/// `<ab>/<cd>/<name>`.
pub fn index_path(name: &str) -> Result<String, NameError> {
    check_name(name)?;
    let lower = name.to_ascii_lowercase();
    Ok(format!("{}/{lower}", prefix(&lower)))
}

/// Where a `cargo` source keeps a crate: `crates/<name>/<name>-<version>.crate`.
pub fn crate_path(name: &str, version: &str) -> String {
    format!("crates/{name}/{name}-{version}.crate")
}

/// A path of a `cargo` source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CargoPath<'a> {
    /// An index file; the crate name, lower case.
    Index(&'a str),
    /// A `.crate` file.
    Crate {
        /// The crate's name.
        name: &'a str,
        /// Its version.
        version: &'a str,
    },
}

/// Reads a path of a `cargo` source; `None` for anything outside the layout.
pub fn parse_path(path: &str) -> Option<CargoPath<'_>> {
    if let Some(rest) = path.strip_prefix("crates/") {
        let (name, file) = rest.split_once('/')?;
        check_name(name).ok()?;
        let version = file
            .strip_prefix(name)?
            .strip_prefix('-')?
            .strip_suffix(".crate")?;
        Version::parse(version).ok()?;
        return Some(CargoPath::Crate { name, version });
    }
    let name = path.rsplit('/').next()?;
    (index_path(name).ok()? == path).then_some(CargoPath::Index(name))
}

/// Parses an index file of crate `expected` (any case): every non-empty line
/// an entry of that crate with a semver `vers`, a hex `cksum`, and no
/// version twice.
pub fn parse_index(bytes: &[u8], expected: &str) -> Result<Vec<Entry>, IndexError> {
    let text = std::str::from_utf8(bytes).map_err(|_| IndexError::NotUtf8)?;
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let entry = parse_line(raw, line, expected)?;
        if !seen.insert(entry.version.clone()) {
            return Err(IndexError::Duplicate {
                version: entry.line.vers,
            });
        }
        out.push(entry);
    }
    Ok(out)
}

/// One line of [`parse_index`].
fn parse_line(raw: &str, line: usize, expected: &str) -> Result<Entry, IndexError> {
    let value: serde_json::Value =
        serde_json::from_str(raw).map_err(|e| IndexError::Malformed {
            line,
            version: None,
            reason: e.to_string(),
        })?;
    let version = value.get("vers").and_then(|v| v.as_str()).map(String::from);
    let parsed: IndexLine = serde_json::from_value(value).map_err(|e| IndexError::Malformed {
        line,
        version: version.clone(),
        reason: e.to_string(),
    })?;
    check_name(&parsed.name).map_err(|e| IndexError::BadName(line, e))?;
    if !parsed.name.eq_ignore_ascii_case(expected) {
        return Err(IndexError::WrongCrate {
            line,
            version: parsed.vers,
            named: parsed.name,
            expected: expected.to_string(),
        });
    }
    let semver = Version::parse(&parsed.vers).map_err(|e| IndexError::BadVersion {
        line,
        version: parsed.vers.clone(),
        reason: e.to_string(),
    })?;
    let hex_ok = parsed.cksum.len() == 64
        && parsed
            .cksum
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !hex_ok {
        return Err(IndexError::BadChecksum {
            line,
            version: parsed.vers,
            cksum: parsed.cksum,
        });
    }
    Ok(Entry {
        raw: raw.to_string(),
        line: parsed,
        version: semver,
    })
}

/// A registry's `config.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryConfig {
    /// The download URL, or template (`{crate}`, `{version}`, `{prefix}`,
    /// `{lowerprefix}`, `{sha256-checksum}`).
    pub dl: String,
    /// The web API's base URL (publishing, search), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    /// Whether every request needs a token.
    #[serde(
        rename = "auth-required",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub auth_required: bool,
}

/// The markers a `dl` template may hold.
const MARKERS: [&str; 5] = [
    "{crate}",
    "{version}",
    "{prefix}",
    "{lowerprefix}",
    "{sha256-checksum}",
];

impl RegistryConfig {
    /// Parses `config.json`.
    pub fn parse(bytes: &[u8]) -> Result<RegistryConfig, ConfigError> {
        serde_json::from_slice(bytes).map_err(|e| ConfigError::Malformed {
            reason: e.to_string(),
        })
    }

    /// The download URL of one crate version, as cargo makes it: the
    /// markers of `dl` replaced, or `<dl>/<crate>/<version>/download` when
    /// it has none.
    pub fn download_url(&self, name: &str, version: &str, cksum: &str) -> String {
        if !MARKERS.iter().any(|m| self.dl.contains(m)) {
            return format!(
                "{}/{name}/{version}/download",
                self.dl.trim_end_matches('/')
            );
        }
        self.dl
            .replace("{crate}", name)
            .replace("{version}", version)
            .replace("{prefix}", &prefix(name))
            .replace("{lowerprefix}", &prefix(&name.to_ascii_lowercase()))
            .replace("{sha256-checksum}", cksum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERDE_LINE: &str = r#"{"name":"serde","vers":"1.0.200","deps":[{"name":"serde_derive","req":"=1.0.200","features":[],"optional":true,"default_features":true,"target":null,"kind":"normal"},{"name":"serde_derive","req":"^1","features":[],"optional":false,"default_features":true,"target":null,"kind":"dev"}],"cksum":"ddc6f9cc94d67c0e21aaf7eda3a010fd3af78ebf6e096aa6e2e13c79749cce4f","features":{"default":["std"],"derive":["serde_derive"],"std":[]},"yanked":false,"links":null}"#;

    #[test]
    fn index_paths_follow_cargo() {
        assert_eq!(index_path("a").unwrap(), "1/a");
        assert_eq!(index_path("ab").unwrap(), "2/ab");
        assert_eq!(index_path("abc").unwrap(), "3/a/abc");
        assert_eq!(index_path("Serde").unwrap(), "se/rd/serde");
        assert_eq!(index_path("cargo").unwrap(), "ca/rg/cargo");
        assert!(matches!(index_path(""), Err(NameError::Invalid { .. })));
        assert!(index_path("a/b").is_err());
        assert!(index_path(&"a".repeat(65)).is_err());
        assert_eq!(parse_path("se/rd/serde"), Some(CargoPath::Index("serde")));
        assert_eq!(parse_path("3/a/abc"), Some(CargoPath::Index("abc")));
        assert_eq!(parse_path("se/rd/Serde"), None);
        assert_eq!(parse_path("xx/rd/serde"), None);
        assert_eq!(parse_path("config.json"), None);
        assert_eq!(
            parse_path("crates/serde/serde-1.0.200.crate"),
            Some(CargoPath::Crate {
                name: "serde",
                version: "1.0.200"
            })
        );
        assert_eq!(
            parse_path("crates/wasi/wasi-0.11.0+wasi-snapshot-preview1.crate"),
            Some(CargoPath::Crate {
                name: "wasi",
                version: "0.11.0+wasi-snapshot-preview1"
            })
        );
        assert_eq!(parse_path("crates/serde/other-1.0.0.crate"), None);
        assert_eq!(parse_path("crates/serde/serde-1.0.crate"), None);
        assert_eq!(parse_path("crates/serde/serde-1.0.0.tgz"), None);
    }

    #[test]
    fn lines_parse_with_their_fields() {
        let text = format!(
            "{SERDE_LINE}\n\n{}\n",
            SERDE_LINE
                .replace(
                    "1.0.200\",\"deps",
                    "1.0.201\",\"yanked\":true,\"x\":1,\"deps"
                )
                .replace("\"yanked\":false,", "")
        );
        let entries = parse_index(text.as_bytes(), "serde").unwrap();
        assert_eq!(entries.len(), 2);
        let e = &entries[0];
        assert_eq!(e.raw, SERDE_LINE);
        assert_eq!(e.version, Version::new(1, 0, 200));
        assert_eq!(e.line.deps.len(), 2);
        assert!(e.line.deps[0].optional);
        assert_eq!(e.line.deps[1].kind(), DepKind::Dev);
        assert_eq!(e.line.features["derive"], vec!["serde_derive"]);
        assert!(!e.line.yanked);
        assert!(entries[1].line.yanked);
    }

    #[test]
    fn bad_lines_are_typed() {
        let bad = |text: &str| parse_index(text.as_bytes(), "serde").unwrap_err();
        assert!(matches!(
            bad("{not json"),
            IndexError::Malformed {
                line: 1,
                version: None,
                ..
            }
        ));
        let no_cksum = SERDE_LINE.replace("\"cksum\"", "\"sum\"");
        assert!(matches!(
            bad(&no_cksum),
            IndexError::Malformed { version: Some(v), .. } if v == "1.0.200"
        ));
        assert!(matches!(
            bad(&SERDE_LINE.replace("\"name\":\"serde\"", "\"name\":\"other\"")),
            IndexError::WrongCrate { .. }
        ));
        assert!(matches!(
            bad(&SERDE_LINE.replace("1.0.200\",\"deps", "1.0\",\"deps")),
            IndexError::BadVersion { .. }
        ));
        assert!(matches!(
            bad(&SERDE_LINE.replace("ddc6", "DDC6")),
            IndexError::BadChecksum { .. }
        ));
        assert!(matches!(
            bad(&format!("{SERDE_LINE}\n{SERDE_LINE}")),
            IndexError::Duplicate { .. }
        ));
        assert!(matches!(bad("\u{0}\u{ff}"), IndexError::Malformed { .. }));
        assert!(matches!(
            parse_index(&[0xff, 0xfe], "serde"),
            Err(IndexError::NotUtf8)
        ));
    }

    #[test]
    fn download_urls_follow_the_template() {
        let c = RegistryConfig::parse(
            br#"{"dl":"https://static.crates.io/crates","api":"https://crates.io"}"#,
        )
        .unwrap();
        assert_eq!(
            c.download_url("serde", "1.0.0", "ab"),
            "https://static.crates.io/crates/serde/1.0.0/download"
        );
        let c = RegistryConfig {
            dl: "http://h/{prefix}/{lowerprefix}/{crate}/{crate}-{version}.crate?{sha256-checksum}"
                .into(),
            api: None,
            auth_required: false,
        };
        assert_eq!(
            c.download_url("Inflector", "0.11.4", "ab"),
            "http://h/In/fl/in/fl/Inflector/Inflector-0.11.4.crate?ab"
        );
        assert!(matches!(
            RegistryConfig::parse(b"{}"),
            Err(ConfigError::Malformed { .. })
        ));
        let json = serde_json::to_string(&c).unwrap();
        assert!(
            !json.contains("auth-required") && !json.contains("api"),
            "{json}"
        );
    }
}
