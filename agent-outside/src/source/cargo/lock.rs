//! `Cargo.lock`: the registry packages a lockfile names (versions 1 to 4),
//! with their `checksum` when it has one.

use anyhow::{Context, Result};
use serde::Deserialize;
use std::path::Path;

/// One registry package of a lockfile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Locked {
    /// The crate's name.
    pub(super) name: String,
    /// Its exact version.
    pub(super) version: semver::Version,
    /// SHA-256 of its `.crate`, when the lockfile gives one.
    pub(super) checksum: Option<String>,
}

#[derive(Deserialize)]
struct LockFile {
    #[serde(default)]
    package: Vec<Package>,
}

#[derive(Deserialize)]
struct Package {
    name: String,
    version: String,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    checksum: Option<String>,
}

/// Reads a lockfile's registry packages; `skipped` is told, for each git
/// package, its name and source (path packages, the workspace's own, are
/// passed over silently).
pub(super) fn read_lockfile(
    path: &Path,
    skipped: &mut dyn FnMut(&str, &str),
) -> Result<Vec<Locked>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read lockfile {}", path.display()))?;
    parse_lockfile(&text, skipped).with_context(|| format!("lockfile {}", path.display()))
}

/// [`read_lockfile`] on text.
pub(super) fn parse_lockfile(
    text: &str,
    skipped: &mut dyn FnMut(&str, &str),
) -> Result<Vec<Locked>> {
    let lock: LockFile = toml::from_str(text).context("not a Cargo.lock")?;
    let mut out = Vec::new();
    for p in lock.package {
        let Some(source) = p.source else { continue };
        if !(source.starts_with("registry+") || source.starts_with("sparse+")) {
            skipped(&p.name, &source);
            continue;
        }
        ferry_formats::cargo::check_name(&p.name)?;
        let version = semver::Version::parse(&p.version).with_context(|| {
            format!("package {} has version {:?}, not semver", p.name, p.version)
        })?;
        out.push(Locked {
            name: p.name,
            version,
            checksum: p.checksum,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_packages_are_read_and_others_passed_over() {
        let text = r#"
version = 4

[[package]]
name = "app"
version = "0.1.0"
dependencies = ["itoa"]

[[package]]
name = "itoa"
version = "1.0.18"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "aa"

[[package]]
name = "mine"
version = "0.2.0"
source = "sparse+https://my.example/index/"

[[package]]
name = "gitdep"
version = "0.3.0"
source = "git+https://example.org/x#abc"
"#;
        let mut skipped = Vec::new();
        let got = parse_lockfile(text, &mut |n, s| skipped.push(format!("{n} {s}"))).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].name, "itoa");
        assert_eq!(got[0].version, semver::Version::new(1, 0, 18));
        assert_eq!(got[0].checksum.as_deref(), Some("aa"));
        assert_eq!(got[1].checksum, None);
        assert_eq!(skipped, vec!["gitdep git+https://example.org/x#abc"]);
        assert!(parse_lockfile("[[package]]\nname = 1\n", &mut |_, _| {}).is_err());
        let bad = text.replace("1.0.18", "1.0");
        assert!(parse_lockfile(&bad, &mut |_, _| {}).is_err());
    }
}
