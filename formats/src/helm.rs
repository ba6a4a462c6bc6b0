//! Helm chart repositories: `index.yaml` and the layout ferry gives a `helm`
//! source.
//!
//! Spec: Helm's chart repository guide
//! (<https://helm.sh/docs/topics/chart_repository/>). `index.yaml` is YAML
//! with `apiVersion` and `entries`: chart name -> list of chart versions, each
//! a mapping with at least `name`, `version`, `urls` and (for ferry) a
//! `digest`, the SHA-256 hex of the chart archive. [`parse_index`] reads one
//! into [`Entry`]s, keeping every field as upstream gave it.
//!
//! A ferry `helm` source holds [`INDEX`] and `charts/<name>-<version>.tgz`
//! ([`chart_path`], [`is_chart_path`]). ferry-out writes the index with
//! [`write_index`], its `urls` relative (`charts/<file>`), so it works
//! whatever host serves it; ferry-in parses it again to check every entry
//! against the chart archives of the generation.

use serde_norway::{Mapping, Value};
use std::collections::BTreeMap;
use thiserror::Error;

/// Why an `index.yaml` is refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum IndexError {
    /// Not YAML at all.
    #[error("index.yaml is not YAML: {reason}")]
    NotYaml {
        /// What the YAML parser said.
        reason: String,
    },
    /// No `entries` key.
    #[error("index.yaml has no `entries`")]
    NoEntries,
    /// `entries` is neither a mapping nor empty.
    #[error("index.yaml: `entries` is not a mapping")]
    EntriesNotMapping,
    /// A key of `entries` is not a string.
    #[error("index.yaml: a chart name is not a string")]
    NameNotString,
    /// A chart's value is not a list of versions.
    #[error("index.yaml: entries of {chart:?} are not a list")]
    VersionsNotList {
        /// The chart name.
        chart: String,
    },
    /// A version of a chart is not a mapping.
    #[error("index.yaml: an entry of {chart:?} is not a mapping")]
    EntryNotMapping {
        /// The chart name.
        chart: String,
    },
    /// A version of a chart has no `version` (string or number).
    #[error("index.yaml: an entry of {chart:?} has no version")]
    NoVersion {
        /// The chart name.
        chart: String,
    },
    /// An entry's `name` is not the chart it is listed under.
    #[error("index.yaml: an entry under {chart:?} is named {named:?}")]
    NameMismatch {
        /// The chart it is listed under.
        chart: String,
        /// The name it gives.
        named: String,
    },
    /// Writing the index failed (a value YAML cannot hold).
    #[error("cannot write index.yaml: {reason}")]
    Write {
        /// What the YAML writer said.
        reason: String,
    },
}

/// The index every helm source holds.
pub const INDEX: &str = "index.yaml";

/// The path of a chart archive in a source: `charts/<stem>.tgz`, the stem
/// being `<name>-<version>`.
pub fn chart_path(stem: &str) -> String {
    format!("charts/{stem}.tgz")
}

/// Whether `p` has the form of a chart archive path (`charts/<file>.tgz`).
pub fn is_chart_path(p: &str) -> bool {
    p.strip_prefix("charts/")
        .is_some_and(|f| !f.contains('/') && f.ends_with(".tgz"))
}

/// One chart version of an index: its fields, and what this source reads.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Chart name.
    pub name: String,
    /// Chart version as written.
    pub version: String,
    /// SHA-256 hex of the chart archive.
    pub digest: Option<String>,
    /// The chart's URLs.
    pub urls: Vec<String>,
    /// Every field, as upstream gave them.
    pub fields: Mapping,
}

impl Entry {
    /// `<name>-<version>`.
    pub fn stem(&self) -> String {
        format!("{}-{}", self.name, self.version)
    }
    /// The path inside: `charts/<name>-<version>.tgz`.
    pub fn path(&self) -> String {
        chart_path(&self.stem())
    }
    /// The version as semver (a leading `v` allowed).
    pub fn semver(&self) -> Option<semver::Version> {
        semver::Version::parse(self.version.strip_prefix('v').unwrap_or(&self.version)).ok()
    }
}

/// Parses an `index.yaml` into its entries.
pub fn parse_index(text: &[u8]) -> Result<Vec<Entry>, IndexError> {
    let v: Value = serde_norway::from_slice(text).map_err(|e| IndexError::NotYaml {
        reason: e.to_string(),
    })?;
    let entries = v.get("entries").ok_or(IndexError::NoEntries)?;
    let Value::Mapping(entries) = entries else {
        if entries.is_null() {
            return Ok(Vec::new());
        }
        return Err(IndexError::EntriesNotMapping);
    };
    let mut out = Vec::new();
    for (name, list) in entries {
        let name = name.as_str().ok_or(IndexError::NameNotString)?;
        let chart = || name.to_string();
        let Value::Sequence(list) = list else {
            return Err(IndexError::VersionsNotList { chart: chart() });
        };
        for item in list {
            let Value::Mapping(fields) = item else {
                return Err(IndexError::EntryNotMapping { chart: chart() });
            };
            let s = |k: &str| fields.get(k).and_then(|v| v.as_str()).map(str::to_string);
            let version = match fields.get("version") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => return Err(IndexError::NoVersion { chart: chart() }),
            };
            let entry_name = s("name").unwrap_or_else(chart);
            if entry_name != name {
                return Err(IndexError::NameMismatch {
                    chart: chart(),
                    named: entry_name,
                });
            }
            let urls = match fields.get("urls") {
                Some(Value::Sequence(u)) => u
                    .iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect(),
                _ => Vec::new(),
            };
            out.push(Entry {
                name: name.to_string(),
                version,
                digest: s("digest"),
                urls,
                fields: fields.clone(),
            });
        }
    }
    Ok(out)
}

/// Writes an index of `entries` with `urls` pointing at `charts/…`: sorted by
/// name, newest version first; the same entries give the same bytes.
pub fn write_index(entries: &[Entry]) -> Result<Vec<u8>, IndexError> {
    let mut by_name: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
    for e in entries {
        by_name.entry(&e.name).or_default().push(e);
    }
    let mut out = Mapping::new();
    for (name, mut list) in by_name {
        list.sort_by(|a, b| match (a.semver(), b.semver()) {
            (Some(x), Some(y)) => y.cmp(&x),
            _ => b.version.cmp(&a.version),
        });
        let mut seq = Vec::new();
        for e in list {
            let mut f = e.fields.clone();
            f.insert(
                Value::String("urls".into()),
                Value::Sequence(vec![Value::String(e.path())]),
            );
            seq.push(Value::Mapping(f));
        }
        out.insert(Value::String(name.to_string()), Value::Sequence(seq));
    }
    let mut top = Mapping::new();
    top.insert("apiVersion".into(), "v1".into());
    top.insert("entries".into(), Value::Mapping(out));
    let text = serde_norway::to_string(&Value::Mapping(top)).map_err(|e| IndexError::Write {
        reason: e.to_string(),
    })?;
    Ok(text.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX: &str = r#"
apiVersion: v1
entries:
  web:
  - name: web
    version: 1.2.0
    digest: "aa"
    urls: ["https://charts.example/web-1.2.0.tgz"]
    created: "2024-01-01T00:00:00Z"
  - name: web
    version: 1.10.0
    appVersion: "3"
    urls: ["web-1.10.0.tgz"]
  db:
  - name: db
    version: v0.1.0
    urls: ["/x/db-v0.1.0.tgz"]
generated: "2024-01-02T00:00:00Z"
"#;

    #[test]
    fn index_round_trip_is_sorted_relative_and_deterministic() {
        let entries = parse_index(INDEX.as_bytes()).unwrap();
        assert_eq!(entries.len(), 3);
        let out = write_index(&entries).unwrap();
        let mut rev = entries.clone();
        rev.reverse();
        assert_eq!(
            out,
            write_index(&rev).unwrap(),
            "order of input must not matter"
        );
        let back = parse_index(&out).unwrap();
        let stems: Vec<String> = back.iter().map(|e| e.stem()).collect();
        assert_eq!(stems, ["db-v0.1.0", "web-1.10.0", "web-1.2.0"]);
        assert_eq!(back[1].urls, ["charts/web-1.10.0.tgz"]);
        assert_eq!(
            back[1].fields.get("appVersion").and_then(|v| v.as_str()),
            Some("3")
        );
        assert!(String::from_utf8(out)
            .unwrap()
            .starts_with("apiVersion: v1\n"));
    }

    #[test]
    fn bad_indexes_are_refused_by_name() {
        assert!(parse_index(b"apiVersion: v1\nentries:\n")
            .unwrap()
            .is_empty());
        assert_eq!(
            parse_index(b"apiVersion: v1\n").unwrap_err(),
            IndexError::NoEntries
        );
        assert_eq!(
            parse_index(b"entries:\n  a:\n  - name: b\n    version: 1.0.0\n").unwrap_err(),
            IndexError::NameMismatch {
                chart: "a".into(),
                named: "b".into()
            }
        );
        assert_eq!(
            parse_index(b"entries:\n  a:\n  - name: a\n").unwrap_err(),
            IndexError::NoVersion { chart: "a".into() }
        );
        assert_eq!(
            parse_index(b"entries: [1]\n").unwrap_err(),
            IndexError::EntriesNotMapping
        );
        assert_eq!(
            parse_index(b"entries:\n  a: 1\n").unwrap_err(),
            IndexError::VersionsNotList { chart: "a".into() }
        );
        assert_eq!(
            parse_index(b"entries:\n  a: [1]\n").unwrap_err(),
            IndexError::EntryNotMapping { chart: "a".into() }
        );
        assert!(matches!(
            parse_index(b": : :"),
            Err(IndexError::NotYaml { .. })
        ));
    }

    #[test]
    fn chart_paths() {
        assert_eq!(chart_path("web-1.0.0"), "charts/web-1.0.0.tgz");
        assert!(is_chart_path("charts/web-1.0.0.tgz"));
        assert!(!is_chart_path("charts/a/web-1.0.0.tgz"));
        assert!(!is_chart_path("charts/web-1.0.0.tar"));
        assert!(!is_chart_path("index.yaml"));
    }
}
