//! What a scan lists: every kept crate file (downloaded when the exporter
//! opens it, checked against the index's `cksum` before it is read) and, per
//! crate, its index file made of upstream's lines of the kept versions.

use super::pins::Kept;
use super::registry::Registry;
use super::select::Selected;
use super::CargoSource;
use crate::source::{Item, ItemKind, ScanCtx};
use crate::upstream::{prune_downloads, Client, Expect, UpstreamError};
use anyhow::{Context, Result};
use ferry_formats::cargo::{crate_path, index_path, Entry};
use ferry_formats::rpm::Checksum;
use ferry_protocol::id::Sha256;
use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::path::Path;

/// The file name a crate is downloaded to in `downloads/`.
fn download_name(name: &str, version: &str) -> String {
    format!("{name}-{version}.crate")
}

impl CargoSource {
    /// Lists the kept crates, the pins kept from the last bundle, and the
    /// index file of each crate.
    pub(super) fn emit(
        &self,
        registry: &Registry,
        selected: &Selected,
        kept: &Kept,
        cx: &ScanCtx<'_>,
        sink: &mut dyn FnMut(Item) -> Result<()>,
    ) -> Result<()> {
        let mut index_files: BTreeMap<String, (String, String)> = BTreeMap::new();
        for (lower, chosen) in selected {
            let (_, text) = index_files
                .entry(lower.clone())
                .or_insert_with(|| (chosen.entries[0].line.name.clone(), String::new()));
            for e in chosen.entries.iter() {
                if chosen.versions.contains(&e.version) {
                    text.push_str(&e.raw);
                    text.push('\n');
                    sink(self.crate_item(cx, registry, e)?)?;
                }
            }
        }
        for (lower, entries) in &kept.lines {
            let (_, text) = index_files
                .entry(lower.clone())
                .or_insert_with(|| (entries[0].line.name.clone(), String::new()));
            for e in entries {
                text.push_str(&e.raw);
                text.push('\n');
            }
        }
        for path in &kept.paths {
            sink(Item {
                path: path.clone(),
                predecessor: None,
                kind: ItemKind::Keep,
            })?;
        }
        for (name, text) in index_files.into_values() {
            let bytes = text.into_bytes();
            sink(Item::from_bytes(index_path(&name)?, bytes))?;
        }
        Ok(())
    }

    /// The item of one kept version: downloaded into the cache when the
    /// exporter opens it, checked against the index's `cksum`.
    fn crate_item(&self, cx: &ScanCtx<'_>, registry: &Registry, e: &Entry) -> Result<Item> {
        let (name, vers, cksum) = (&e.line.name, &e.line.vers, &e.line.cksum);
        // A relative `dl` (cargo itself wants an absolute one) resolves
        // against the index URL.
        let dl = registry.config.download_url(name, vers, cksum);
        let url = self
            .index
            .join(&dl)
            .with_context(|| format!("crate {name} {vers}: download URL {dl:?}"))?
            .to_string();
        let what = format!("crate {name} {vers} ({url})");
        let expect = Expect {
            size: None,
            checksum: Some(Checksum::new("sha256", cksum).with_context(|| what.clone())?),
        };
        let cached = cx
            .cache_dir
            .join("downloads")
            .join(download_name(name, vers));
        let client = self.client.clone();
        Ok(Item {
            path: crate_path(name, vers),
            predecessor: None,
            kind: ItemKind::File {
                executable: false,
                fingerprint: Some(format!("sha256:{cksum}")),
                expected_sha256: Sha256::from_hex(cksum),
                open: Box::new(move || open_crate(&client, &url, &cached, &expect, what)),
            },
        })
    }
}

/// Drops downloads (whole or `.part`) no kept version needs any more.
pub(super) fn clean_downloads(cx: &ScanCtx<'_>, selected: &Selected) {
    let wanted: HashSet<String> = selected
        .values()
        .flat_map(|c| {
            c.entries
                .iter()
                .filter(|e| c.versions.contains(&e.version))
                .map(|e| download_name(&e.line.name, &e.line.vers))
        })
        .collect();
    prune_downloads(&cx.cache_dir.join("downloads"), |f| wanted.contains(f));
}

/// Downloads a crate into the cache (resumed with `Range`), checked against
/// the index's `cksum`, opened and removed.
fn open_crate(
    client: &Client,
    url: &str,
    cached: &Path,
    expect: &Expect,
    what: String,
) -> Result<Box<dyn Read>> {
    if let Some(dir) = cached.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    client
        .open_downloaded(url, cached, expect)
        .map_err(|e| explain(e, &what))
}

/// A failed download, as a registry operator reads it: a checksum mismatch
/// names the crate, its version and both digests; the error stays typed.
fn explain(e: UpstreamError, what: &str) -> anyhow::Error {
    let why = match &e {
        UpstreamError::ChecksumMismatch { expected, got, .. } => format!(
            "{what}: the index's cksum is {}, the download has {} (tampered or corrupted upstream)",
            expected.trim_start_matches("sha256:"),
            got.trim_start_matches("sha256:")
        ),
        _ => what.to_string(),
    };
    anyhow::Error::new(e).context(why)
}
