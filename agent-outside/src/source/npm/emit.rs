//! What a scan lists: every kept tarball (downloaded when the exporter
//! opens it, checked against its integrity before it is read) and, per
//! package, its packument with only the kept versions; pinned versions
//! upstream dropped are kept from the last bundle.

use super::pins::Kept;
use super::select::Selected;
use super::NpmSource;
use crate::source::{Item, ItemKind, ScanCtx};
use crate::upstream::{prune_downloads, Expect, UpstreamError};
use anyhow::{Context, Result};
use ferry_formats::npm::{packument_path, tarball_path, Integrity, PackageVersion};
use ferry_formats::rpm::Checksum;
use serde_json::{json, Map, Value};
use std::collections::{BTreeSet, HashSet};

/// The file name a tarball is downloaded to in `downloads/`.
fn download_name(name: &str, version: &semver::Version) -> String {
    format!("{}-{version}.tgz", name.replace('/', "%2f"))
}

impl NpmSource {
    /// Lists the kept tarballs and the packument of each package, with the
    /// pinned versions upstream dropped (`kept`).
    pub(super) fn emit(
        &self,
        cx: &ScanCtx<'_>,
        selected: &Selected,
        kept: &Kept,
        sink: &mut dyn FnMut(Item) -> Result<()>,
    ) -> Result<()> {
        let names: BTreeSet<&String> = selected.keys().chain(kept.entries.keys()).collect();
        for name in names {
            let mut versions = Map::new();
            let mut time = Map::new();
            let mut tags = Map::new();
            if let Some(chosen) = selected.get(name) {
                let p = &chosen.packument;
                for v in &chosen.versions {
                    let pv = &p.versions[v];
                    versions.insert(v.to_string(), pv.raw.clone());
                    if let Some(t) = p.time.get(&v.to_string()) {
                        time.insert(v.to_string(), Value::String(t.clone()));
                    }
                    sink(self.tarball_item(cx, name, pv)?)?;
                }
                tags = p
                    .dist_tags
                    .iter()
                    .filter(|(_, v)| {
                        semver::Version::parse(v).is_ok_and(|v| chosen.versions.contains(&v))
                    })
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect();
            }
            for (v, record) in kept.entries.get(name).into_iter().flatten() {
                versions.insert(v.to_string(), record.raw.clone());
                if let Some(t) = &record.time {
                    time.insert(v.to_string(), Value::String(t.clone()));
                }
            }
            if selected.get(name).is_none() {
                // Only pins left: the newest is `latest`, as npm needs one.
                if let Some(v) = kept.entries.get(name).and_then(|e| e.keys().next_back()) {
                    tags.insert("latest".into(), Value::String(v.to_string()));
                }
            }
            let doc =
                json!({ "name": name, "dist-tags": tags, "versions": versions, "time": time });
            let mut bytes = serde_json::to_vec_pretty(&doc)?;
            bytes.push(b'\n');
            sink(Item::from_bytes(packument_path(name), bytes))?;
        }
        for path in &kept.paths {
            sink(Item {
                path: path.clone(),
                predecessor: None,
                kind: ItemKind::Keep,
            })?;
        }
        Ok(())
    }

    /// One tarball, checked against its integrity when opened.
    fn tarball_item(&self, cx: &ScanCtx<'_>, name: &str, pv: &PackageVersion) -> Result<Item> {
        let version = &pv.version;
        let url = self
            .registry
            .join(&pv.meta.dist.tarball)
            .with_context(|| format!("package {name} {version}: tarball URL"))?
            .to_string();
        let what = format!("package {name} {version} ({url})");
        let integrity = Integrity::of(&pv.meta.dist).with_context(|| what.clone())?;
        let checksum = Checksum::new(integrity.algorithm, &integrity.hex)
            .with_context(|| format!("{what}: {} digests are not checked", integrity.algorithm))?;
        let fingerprint = Some(format!("{}:{}", integrity.algorithm, integrity.hex));
        let expect = Expect {
            size: None,
            checksum: Some(checksum),
        };
        let cached = cx
            .cache_dir
            .join("downloads")
            .join(download_name(name, version));
        let client = self.client.clone();
        Ok(Item {
            path: tarball_path(name, &version.to_string()),
            predecessor: None,
            kind: ItemKind::File {
                executable: false,
                fingerprint,
                expected_sha256: None,
                open: Box::new(move || {
                    if let Some(d) = cached.parent() {
                        std::fs::create_dir_all(d)?;
                    }
                    client
                        .open_downloaded(&url, &cached, &expect)
                        .map_err(|e| explain(e, &what))
                }),
            },
        })
    }
}

/// Drops downloads no kept version needs any more.
pub(super) fn clean_downloads(cx: &ScanCtx<'_>, selected: &Selected) {
    let wanted: HashSet<String> = selected
        .iter()
        .flat_map(|(n, c)| c.versions.iter().map(move |v| download_name(n, v)))
        .collect();
    prune_downloads(&cx.cache_dir.join("downloads"), |f| wanted.contains(f));
}

/// A failed download; a mismatch names the package, version and digests.
fn explain(e: UpstreamError, what: &str) -> anyhow::Error {
    let why = match &e {
        UpstreamError::ChecksumMismatch { expected, got, .. } => format!(
            "{what}: the registry's integrity is {expected}, the download has {got} (tampered or corrupted upstream)"
        ),
        _ => what.to_string(),
    };
    anyhow::Error::new(e).context(why)
}
