//! What a scan lists: every kept tarball (downloaded when the exporter
//! opens it, checked against its integrity before it is read) and, per
//! package, its packument with only the kept versions.

use super::select::Selected;
use super::NpmSource;
use crate::source::{Item, ItemKind, ScanCtx};
use crate::upstream::{prune_downloads, Expect, UpstreamError};
use anyhow::{Context, Result};
use ferry_formats::npm::{packument_path, tarball_path, Integrity, PackageVersion};
use ferry_formats::rpm::Checksum;
use serde_json::{json, Map, Value};
use std::collections::HashSet;

/// The file name a tarball is downloaded to in `downloads/`.
fn download_name(name: &str, version: &semver::Version) -> String {
    format!("{}-{version}.tgz", name.replace('/', "%2f"))
}

impl NpmSource {
    /// Lists the kept tarballs and the packument of each package.
    pub(super) fn emit(
        &self,
        cx: &ScanCtx<'_>,
        selected: &Selected,
        sink: &mut dyn FnMut(Item) -> Result<()>,
    ) -> Result<()> {
        for (name, chosen) in selected {
            let p = &chosen.packument;
            let mut versions = Map::new();
            let mut time = Map::new();
            for v in &chosen.versions {
                let pv = &p.versions[v];
                versions.insert(v.to_string(), pv.raw.clone());
                if let Some(t) = p.time.get(&v.to_string()) {
                    time.insert(v.to_string(), Value::String(t.clone()));
                }
                sink(self.tarball_item(cx, name, pv)?)?;
            }
            let tags: Map<String, Value> = p
                .dist_tags
                .iter()
                .filter(|(_, v)| {
                    semver::Version::parse(v).is_ok_and(|v| chosen.versions.contains(&v))
                })
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            let doc =
                json!({ "name": name, "dist-tags": tags, "versions": versions, "time": time });
            let mut bytes = serde_json::to_vec_pretty(&doc)?;
            bytes.push(b'\n');
            sink(Item::from_bytes(packument_path(name), bytes))?;
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
