//! What a scan lists: every kept crate file (downloaded when the exporter
//! opens it, checked against the index's `cksum` before it is read) and, per
//! crate, its index file made of upstream's lines of the kept versions.

use super::registry::Registry;
use super::select::Selected;
use super::CargoSource;
use crate::source::{Item, ItemKind, ScanCtx};
use crate::upstream::{prune_downloads, Client, Expect, UpstreamError};
use anyhow::{Context, Result};
use ferry_formats::cargo::{crate_path, index_path};
use ferry_formats::rpm::Checksum;
use ferry_protocol::id::Sha256;
use std::collections::HashSet;
use std::io::Read;
use std::path::Path;

/// The file name a crate is downloaded to in `downloads/`.
fn download_name(name: &str, version: &str) -> String {
    format!("{name}-{version}.crate")
}

impl CargoSource {
    /// Lists the kept crates and the index file of each crate.
    pub(super) fn emit(
        &self,
        cx: &ScanCtx<'_>,
        registry: &Registry,
        selected: &Selected,
        sink: &mut dyn FnMut(Item) -> Result<()>,
    ) -> Result<()> {
        let downloads = cx.cache_dir.join("downloads");
        for chosen in selected.values() {
            let mut index = String::new();
            for e in chosen.entries.iter() {
                if !chosen.versions.contains(&e.version) {
                    continue;
                }
                index.push_str(&e.raw);
                index.push('\n');
                let (name, vers, cksum) = (&e.line.name, &e.line.vers, &e.line.cksum);
                // A relative `dl` (cargo itself wants an absolute one)
                // resolves against the index URL.
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
                let cached = downloads.join(download_name(name, vers));
                let client = self.client.clone();
                sink(Item {
                    path: crate_path(name, vers),
                    predecessor: None,
                    kind: ItemKind::File {
                        executable: false,
                        fingerprint: Some(format!("sha256:{cksum}")),
                        expected_sha256: Sha256::from_hex(cksum),
                        open: Box::new(move || open_crate(&client, &url, &cached, &expect, what)),
                    },
                })?;
            }
            let name = &chosen.entries[0].line.name;
            let bytes = index.into_bytes();
            sink(Item {
                path: index_path(name)?,
                predecessor: None,
                kind: ItemKind::File {
                    executable: false,
                    fingerprint: None,
                    expected_sha256: None,
                    open: Box::new(move || {
                        Ok(Box::new(std::io::Cursor::new(bytes)) as Box<dyn Read>)
                    }),
                },
            })?;
        }
        Ok(())
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
