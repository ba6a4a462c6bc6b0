//! Pins: a pinned `name@version` is selected exactly while upstream lists
//! it, and once shipped it stays inside after upstream unpublishes it (the
//! version, or the whole package). Its tarball is then carried unchanged
//! from the last bundle ([`ItemKind::Keep`]) and its packument entry is the
//! one recorded when it was last carried
//! (`STATE/cache/<source>/shipped-pins.json`).
//!
//! [`ItemKind::Keep`]: crate::source::ItemKind::Keep

use super::select::Selected;
use super::NpmSource;
use crate::source::ScanCtx;
use anyhow::{Context, Result};
use ferry_formats::npm::tarball_path;
use ferry_protocol::path::ObjectKey;
use semver::Version;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The file recording the packument entries of pinned versions.
const SHIPPED_PINS: &str = "shipped-pins.json";

/// What is recorded of a pinned version when it is carried.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct PinRecord {
    /// Its packument entry, as upstream wrote it.
    pub(super) raw: Value,
    /// Its `time` stamp, if upstream gave one.
    pub(super) time: Option<String>,
}

/// Pinned versions upstream no longer lists, kept from the last bundle.
#[derive(Default)]
pub(super) struct Kept {
    /// Their recorded entries, by package name and version.
    pub(super) entries: BTreeMap<String, BTreeMap<Version, PinRecord>>,
    /// Their tarball paths.
    pub(super) paths: Vec<String>,
}

/// Parses a `pin` entry: `name@version`, the name possibly scoped
/// (`@scope/name@1.2.3`).
pub(super) fn parse_pin(p: &str) -> Result<(String, Version)> {
    let (name, version) = p
        .rsplit_once('@')
        .filter(|(n, _)| !n.is_empty())
        .with_context(|| format!("pin {p:?} is not name@version, such as \"is-number@7.0.0\""))?;
    ferry_formats::npm::check_name(name).with_context(|| format!("pin {p:?}"))?;
    let v = Version::parse(version)
        .with_context(|| format!("pin {p:?}: {version:?} is not a semantic version"))?;
    Ok((name.to_string(), v))
}

impl NpmSource {
    /// Records the entries of the pins carried now, and finds the pins
    /// `selected` lacks that the last bundle carried.
    pub(super) fn keep_pins(&self, cx: &ScanCtx<'_>, selected: &Selected) -> Result<Kept> {
        let src = &self.name;
        let file = cx.cache_dir.join(SHIPPED_PINS);
        let mut shipped: BTreeMap<String, PinRecord> = match std::fs::read(&file) {
            Ok(b) => serde_json::from_slice(&b).with_context(|| {
                format!(
                    "{} is damaged (delete it to forget the pins' records)",
                    file.display()
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
        };
        let mut kept = Kept::default();
        for (name, version) in &self.pins {
            let key = format!("{name}@{version}");
            let carried = selected
                .get(name)
                .filter(|c| c.versions.contains(version))
                .map(|c| &c.packument);
            if let Some(p) = carried {
                let raw = p.versions[version].raw.clone();
                let time = p.time.get(&version.to_string()).cloned();
                shipped.insert(key, PinRecord { raw, time });
                continue;
            }
            let path = tarball_path(name, &version.to_string());
            let held = cx.previous.objects.contains_key(&ObjectKey {
                source: cx.source.to_string(),
                path: path.clone(),
            });
            match shipped.get(&key) {
                Some(record) if held => {
                    eprintln!(
                        "ferry-out: source {src:?}: keeping pinned package {name} {version} (upstream no longer lists it)"
                    );
                    kept.entries
                        .entry(name.clone())
                        .or_default()
                        .insert(version.clone(), record.clone());
                    kept.paths.push(path);
                }
                _ => eprintln!(
                    "ferry-out: warning: source {src:?}: pinned package {name} {version} is neither upstream nor in the last bundle"
                ),
            }
        }
        shipped.retain(|k, _| self.pins.iter().any(|(n, v)| *k == format!("{n}@{v}")));
        // Written even if the export fails later: only read for pins whose
        // tarball the last bundle holds.
        let json = serde_json::to_vec_pretty(&shipped)?;
        ferry_agent_common::fsx::write_atomic(&file, &json)
            .with_context(|| format!("cannot write {}", file.display()))?;
        Ok(kept)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_pin;

    #[test]
    fn pins_are_name_at_version_scoped_or_not() {
        let (n, v) = parse_pin("is-number@7.0.0").unwrap();
        assert_eq!((n.as_str(), v.to_string().as_str()), ("is-number", "7.0.0"));
        let (n, v) = parse_pin("@types/node@20.1.2").unwrap();
        assert_eq!(
            (n.as_str(), v.to_string().as_str()),
            ("@types/node", "20.1.2")
        );
        for bad in [
            "is-number",
            "@types/node",
            "is-number@^7",
            "@7.0.0",
            "Bad Name@1.0.0",
        ] {
            assert!(parse_pin(bad).is_err(), "{bad}");
        }
    }
}
