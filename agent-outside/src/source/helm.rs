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
//! Everything is fetched through the source's [`crate::upstream::Client`]
//! (the network keys `ca_file`, `timeout`, `retries` and credentials apply);
//! a chart is downloaded into the source's cache directory when the exporter
//! reads it (resumed with `Range` when a connection breaks) and removed once
//! read.
//!
//! A digest mismatch, a missing chart or an unparsable index fails the whole
//! export, naming the source, the chart, the expected and the actual digest.

use super::{Item, ItemKind, ScanCtx, Source};
use crate::config::SourceConfig;
use crate::upstream::{prune_downloads, Client, Expect};
use anyhow::{anyhow, bail, Context, Result};
use ferry_formats::helm::{chart_path, parse_index, write_index, Entry, INDEX};
use ferry_formats::rpm::Checksum;
use ferry_protocol::catalog::SourceKind;
use serde::Deserialize;
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
    client: Client,
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
            bail!("url {:?} must be an http:// or https:// URL", s.url);
        }
        let charts = s
            .charts
            .iter()
            .map(|(name, range)| {
                let req = semver::VersionReq::parse(range.trim())
                    .with_context(|| format!("chart {name:?}: {range:?} is not a semver range"))?;
                Ok((name.clone(), req))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(HelmSource {
            name: cfg.name.clone(),
            url: s.url.trim_end_matches('/').to_string(),
            charts,
            pin: s.pin,
            client: Client::new(&cfg.net, Some(&s.url))?,
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

impl HelmSource {
    /// Fetches and parses upstream's `index.yaml`.
    fn fetch_index(&self) -> Result<Vec<Entry>> {
        let index_url = format!("{}/index.yaml", self.url);
        let text = self
            .client
            .get_small(&index_url, MAX_INDEX)?
            .ok_or_else(|| anyhow!("{index_url}: HTTP 404"))?;
        parse_index(&text).with_context(|| index_url.clone())
    }

    /// The entries the settings select, each once, with safe file names.
    fn select(&self, upstream: &[Entry]) -> Result<Vec<Entry>> {
        let name = &self.name;
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
                    "chart {:?} version {:?} does not make a safe file name",
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
        Ok(selected)
    }

    /// Adds to `selected` the pins upstream dropped (chart from the last
    /// bundle, entry from the index this source wrote last), records the
    /// index for later exports, and returns the paths to keep.
    fn pin(&self, cx: &ScanCtx<'_>, selected: &mut Vec<Entry>) -> Result<Vec<String>> {
        let name = &self.name;
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
            let path = chart_path(pin);
            let had = cx.previous_paths().any(|(p, _)| p == path);
            match shipped.iter().find(|e| e.stem() == *pin) {
                Some(e) if had => {
                    eprintln!(
                        "ferry-out: source {name:?}: keeping pinned chart {pin} (upstream no longer has it)"
                    );
                    selected.push(e.clone());
                    kept.push(path);
                }
                _ => eprintln!(
                    "ferry-out: warning: source {name:?}: pinned chart {pin} is neither upstream nor in the last bundle"
                ),
            }
        }
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
        Ok(kept)
    }

    /// The item of one selected chart: kept, or downloaded into the cache
    /// when the exporter opens it and checked against the entry's digest.
    fn chart_item(&self, cx: &ScanCtx<'_>, e: &Entry, kept: &[String]) -> Result<Item> {
        let path = e.path();
        if kept.contains(&path) {
            return Ok(Item {
                path,
                predecessor: None,
                kind: ItemKind::Keep,
            });
        }
        let digest = e.digest.as_deref().ok_or_else(|| {
            anyhow!(
                "chart {} has no digest in index.yaml, so it cannot be verified",
                e.stem()
            )
        })?;
        let want = Checksum::new("sha256", digest)
            .with_context(|| format!("chart {}: digest in index.yaml", e.stem()))?;
        let first = e
            .urls
            .first()
            .ok_or_else(|| anyhow!("chart {} has no URL in index.yaml", e.stem()))?;
        let url = resolve_url(&self.url, first);
        let client = self.client.clone();
        let what = format!("chart {} ({url})", e.stem());
        let dest = cx.cache_dir.join(&want.hex);
        let fingerprint = Some(format!("sha256:{}", want.hex));
        let expect = Expect {
            size: None,
            checksum: Some(want),
        };
        Ok(Item {
            path,
            predecessor: None,
            kind: ItemKind::File {
                executable: false,
                fingerprint,
                expected_sha256: None,
                open: Box::new(move || {
                    client
                        .open_downloaded(&url, &dest, &expect)
                        .with_context(|| what)
                }),
            },
        })
    }
}

impl Source for HelmSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SourceKind {
        SourceKind::Helm
    }

    /// Fetch the index, select, pin, emit the index and the charts.
    fn scan(&self, cx: &ScanCtx<'_>, sink: &mut dyn FnMut(Item) -> Result<()>) -> Result<()> {
        let upstream = self.fetch_index()?;
        let mut selected = self.select(&upstream)?;
        let kept = self.pin(cx, &mut selected)?;
        let wanted: BTreeSet<String> = selected
            .iter()
            .filter_map(|e| e.digest.as_deref())
            .map(|d| d.trim().to_ascii_lowercase())
            .chain([SHIPPED_INDEX.to_string()])
            .collect();
        prune_downloads(&cx.cache_dir, |f| wanted.contains(f));
        let index = write_index(&selected)?;
        sink(Item {
            path: INDEX.into(),
            predecessor: None,
            kind: ItemKind::File {
                executable: false,
                fingerprint: None,
                expected_sha256: None,
                open: Box::new(move || Ok(Box::new(Cursor::new(index)) as Box<dyn Read>)),
            },
        })?;
        for e in &selected {
            sink(self.chart_item(cx, e, &kept)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
