//! `type = "helm"`: a Helm chart repository.
//!
//! ```toml
//! [[source]]
//! name = "nvidia"
//! type = "helm"
//! url = "https://helm.ngc.nvidia.com/nvidia"
//! charts = { "gpu-operator" = ">=23.9, <25", "network-operator" = "*" }
//! pin = ["gpu-operator-v23.9.1"]   # <name>-<version>: kept after upstream drops it
//! ```
//!
//! The source fetches `<url>/index.yaml`, keeps the entries of the named
//! charts whose version (semver, a leading `v` allowed) is within the range
//! (`"*"`: every version; an empty `charts` table: every chart and version),
//! plus pinned ones, downloads each selected chart from its first URL (a
//! relative URL resolves against the repository URL, as Helm does) and checks
//! it against the entry's `digest` (SHA-256; an entry without one is refused).
//! The fingerprint is that digest, so a chart shipped before is not
//! downloaded again.
//!
//! Items:
//!
//! - `charts/<name>-<version>.tgz`, byte-exact;
//! - `index.yaml`, written here: `apiVersion: v1`, the selected entries as
//!   upstream gave them (every field kept) but with `urls` set to
//!   `[charts/<name>-<version>.tgz]`, which Helm resolves against the
//!   repository URL, so the index works whatever host name serves it.
//!   Entries are sorted by name, then by version, newest first; the output is
//!   a function of the selected entries only (same input, same bytes), so an
//!   unchanged selection ships no new index.
//!
//! Pins (`<name>-<version>`) select that version whatever the ranges say; when
//! upstream drops it, its chart is carried unchanged from the last bundle and
//! its entry is taken from the index this source last wrote (kept in the
//! source's cache directory), so Helm still finds it inside.
//!
//! A digest mismatch, a missing chart or an unparsable index fails the whole
//! export, naming the source, the chart, the expected and the actual digest.

use super::{Item, ItemKind, ScanCtx, Source};
use crate::config::SourceConfig;
use crate::source::yum::{Checked, Checksum};
use anyhow::{anyhow, bail, Context, Result};
use ferry_protocol::catalog::SourceKind;
use serde::Deserialize;
use serde_norway::{Mapping, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Cursor, Read};

/// Largest `index.yaml` accepted.
const MAX_INDEX: u64 = 256 << 20;
/// The file in the cache directory holding the index last written.
const SHIPPED_INDEX: &str = "shipped-index.yaml";

/// The settings of a `type = "helm"` source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HelmSettings {
    /// The repository URL (the directory holding `index.yaml`).
    pub url: String,
    /// Chart names and semver ranges (`"*"`: all versions). Empty: everything.
    #[serde(default)]
    pub charts: BTreeMap<String, String>,
    /// `<name>-<version>` of charts to keep after upstream drops them.
    #[serde(default)]
    pub pin: Vec<String>,
}

/// A Helm source.
pub struct HelmSource {
    name: String,
    url: String,
    charts: Vec<(String, semver::VersionReq)>,
    pin: Vec<String>,
    agent: ureq::Agent,
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
        format!("charts/{}.tgz", self.stem())
    }
    /// The version as semver (a leading `v` allowed).
    pub fn semver(&self) -> Option<semver::Version> {
        semver::Version::parse(self.version.strip_prefix('v').unwrap_or(&self.version)).ok()
    }
}

/// Parses an `index.yaml` into its entries.
pub fn parse_index(text: &[u8]) -> Result<Vec<Entry>> {
    let v: Value = serde_norway::from_slice(text).context("index.yaml is not YAML")?;
    let entries = v
        .get("entries")
        .ok_or_else(|| anyhow!("index.yaml has no `entries`"))?;
    let Value::Mapping(entries) = entries else {
        if entries.is_null() {
            return Ok(Vec::new());
        }
        bail!("index.yaml: `entries` is not a mapping");
    };
    let mut out = Vec::new();
    for (name, list) in entries {
        let name = name
            .as_str()
            .ok_or_else(|| anyhow!("index.yaml: a chart name is not a string"))?;
        let Value::Sequence(list) = list else {
            bail!("index.yaml: entries of {name:?} are not a list");
        };
        for item in list {
            let Value::Mapping(fields) = item else {
                bail!("index.yaml: an entry of {name:?} is not a mapping");
            };
            let s = |k: &str| fields.get(k).and_then(|v| v.as_str()).map(str::to_string);
            let version = match fields.get("version") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => bail!("index.yaml: an entry of {name:?} has no version"),
            };
            let entry_name = s("name").unwrap_or_else(|| name.to_string());
            if entry_name != name {
                bail!("index.yaml: an entry under {name:?} is named {entry_name:?}");
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
pub fn write_index(entries: &[Entry]) -> Result<Vec<u8>> {
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
    let text = serde_norway::to_string(&Value::Mapping(top)).context("cannot write index.yaml")?;
    Ok(text.into_bytes())
}

/// Resolves a chart URL against the repository URL as Helm does: absolute
/// URLs stay, `/path` is relative to the host, anything else to the
/// repository directory.
pub fn resolve_url(repo: &str, chart: &str) -> String {
    if chart.contains("://") {
        return chart.to_string();
    }
    let repo = repo.trim_end_matches('/');
    if let Some(abs) = chart.strip_prefix('/') {
        let host_end = repo
            .find("://")
            .map(|i| i + 3)
            .and_then(|s| repo[s..].find('/').map(|j| s + j))
            .unwrap_or(repo.len());
        return format!("{}/{abs}", &repo[..host_end]);
    }
    format!("{repo}/{}", chart.trim_start_matches("./"))
}

impl HelmSource {
    /// From its config entry.
    pub fn new(cfg: &SourceConfig) -> Result<Self> {
        let s: HelmSettings = cfg.settings()?;
        if !(s.url.starts_with("http://") || s.url.starts_with("https://")) {
            bail!(
                "source {:?} (helm): url {:?} must be an http:// or https:// URL",
                cfg.name,
                s.url
            );
        }
        let charts = s
            .charts
            .iter()
            .map(|(name, range)| {
                let req = semver::VersionReq::parse(range.trim()).with_context(|| {
                    format!(
                        "source {:?} (helm): chart {name:?}: {range:?} is not a semver range",
                        cfg.name
                    )
                })?;
                Ok((name.clone(), req))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(HelmSource {
            name: cfg.name.clone(),
            url: s.url.trim_end_matches('/').to_string(),
            charts,
            pin: s.pin,
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into(),
        })
    }

    fn wants(&self, e: &Entry) -> bool {
        if self.pin.contains(&e.stem()) {
            return true;
        }
        if self.charts.is_empty() {
            return true;
        }
        self.charts
            .iter()
            .any(|(n, req)| *n == e.name && e.semver().is_some_and(|v| req.matches(&v)))
    }
}

impl Source for HelmSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SourceKind {
        SourceKind::Helm
    }

    fn scan(&self, cx: &ScanCtx<'_>, sink: &mut dyn FnMut(Item) -> Result<()>) -> Result<()> {
        let name = &self.name;
        let index_url = format!("{}/index.yaml", self.url);
        let mut resp = self
            .agent
            .get(&index_url)
            .call()
            .with_context(|| format!("source {name:?}: cannot fetch {index_url}"))?;
        if !resp.status().is_success() {
            bail!("source {name:?}: {index_url}: HTTP {}", resp.status());
        }
        let text = resp
            .body_mut()
            .with_config()
            .limit(MAX_INDEX)
            .read_to_vec()
            .with_context(|| format!("source {name:?}: cannot read {index_url}"))?;
        let upstream =
            parse_index(&text).with_context(|| format!("source {name:?}: {index_url}"))?;

        let mut selected: Vec<Entry> = Vec::new();
        let mut seen = BTreeSet::new();
        for e in upstream.iter().filter(|e| self.wants(e)) {
            if !seen.insert(e.path()) {
                eprintln!(
                    "ferry-out: warning: source {name:?}: {} is listed twice upstream; keeping the first",
                    e.stem()
                );
                continue;
            }
            if ferry_protocol::path::check_path(&e.path()).is_err() {
                bail!(
                    "source {name:?}: chart {:?} version {:?} does not make a safe file name",
                    e.name,
                    e.version
                );
            }
            selected.push(e.clone());
        }
        for (chart, req) in &self.charts {
            if !selected.iter().any(|e| e.name == *chart) {
                eprintln!(
                    "ferry-out: warning: source {name:?}: no version of chart {chart:?} matches {req}"
                );
            }
        }

        // Pins upstream dropped: chart from the last bundle, entry from the
        // index this source wrote last.
        let mut kept = Vec::new();
        let shipped_path = cx.cache_dir.join(SHIPPED_INDEX);
        let shipped = match std::fs::read(&shipped_path) {
            Ok(b) => parse_index(&b).with_context(|| format!("{}", shipped_path.display()))?,
            Err(_) => Vec::new(),
        };
        for pin in &self.pin {
            if selected.iter().any(|e| e.stem() == *pin) {
                continue;
            }
            let path = format!("charts/{pin}.tgz");
            let had = cx.previous_paths().any(|(p, _)| p == path);
            match shipped.iter().find(|e| e.stem() == *pin) {
                Some(e) if had => {
                    eprintln!(
                        "ferry-out: source {name:?}: keeping pinned chart {pin} (upstream no longer has it)"
                    );
                    let e = e.clone();
                    selected.push(e);
                    kept.push(path);
                }
                _ => eprintln!(
                    "ferry-out: warning: source {name:?}: pinned chart {pin} is neither upstream nor in the last bundle"
                ),
            }
        }

        let index = write_index(&selected)?;
        // Remember what this export lists, for pins in later exports. (Written
        // even if the export later fails: it is only read for pinned entries
        // whose chart the last bundle has.)
        let all_shipped = {
            let mut v = selected.clone();
            for e in shipped {
                if self.pin.contains(&e.stem()) && !v.iter().any(|x| x.stem() == e.stem()) {
                    v.push(e);
                }
            }
            write_index(&v)?
        };
        ferry_agent_common::fsx::write_atomic(&shipped_path, &all_shipped)
            .with_context(|| format!("cannot write {}", shipped_path.display()))?;

        sink(Item {
            path: "index.yaml".into(),
            kind: ItemKind::File {
                executable: false,
                fingerprint: None,
                expected_sha256: None,
                open: Box::new(move || Ok(Box::new(Cursor::new(index)) as Box<dyn Read>)),
            },
        })?;
        for e in &selected {
            let path = e.path();
            if kept.contains(&path) {
                sink(Item {
                    path,
                    kind: ItemKind::Keep,
                })?;
                continue;
            }
            let digest = e.digest.as_deref().ok_or_else(|| {
                anyhow!(
                    "source {name:?}: chart {} has no digest in index.yaml, so it cannot be verified",
                    e.stem()
                )
            })?;
            let want = Checksum::new("sha256", digest).with_context(|| {
                format!("source {name:?}: chart {}: digest in index.yaml", e.stem())
            })?;
            let first = e.urls.first().ok_or_else(|| {
                anyhow!(
                    "source {name:?}: chart {} has no URL in index.yaml",
                    e.stem()
                )
            })?;
            let url = resolve_url(&self.url, first);
            let agent = self.agent.clone();
            let what = format!("source {name:?}: chart {} ({url})", e.stem());
            sink(Item {
                path,
                kind: ItemKind::File {
                    executable: false,
                    fingerprint: Some(format!("sha256:{}", want.hex)),
                    expected_sha256: None,
                    open: Box::new(move || {
                        let resp = agent
                            .get(&url)
                            .call()
                            .with_context(|| format!("cannot fetch {url}"))?;
                        if !resp.status().is_success() {
                            bail!("{url}: HTTP {}", resp.status());
                        }
                        let body = resp.into_body().into_with_config().limit(u64::MAX).reader();
                        Ok(Box::new(Checked::new(Box::new(body), want, None, what))
                            as Box<dyn Read>)
                    }),
                },
            })?;
        }
        Ok(())
    }
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
    fn chart_urls_resolve_like_helm() {
        let r = "http://h:8/repo/sub";
        assert_eq!(resolve_url(r, "a.tgz"), "http://h:8/repo/sub/a.tgz");
        assert_eq!(
            resolve_url(r, "charts/a.tgz"),
            "http://h:8/repo/sub/charts/a.tgz"
        );
        assert_eq!(resolve_url(r, "/x/a.tgz"), "http://h:8/x/a.tgz");
        assert_eq!(resolve_url(r, "https://o/a.tgz"), "https://o/a.tgz");
    }
}
