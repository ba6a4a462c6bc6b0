//! What a scan lists: every selected file (downloaded when the exporter
//! opens it, checked against the index's SHA-256 before it is read) and one
//! deterministic `simple/<project>/index.json` per project.

use super::index::{expect_sha256, explain};
use super::pins::Kept;
use super::select::Selected;
use super::PypiSource;
use crate::source::{Item, ItemKind, ScanCtx};
use crate::upstream::{prune_downloads, Client};
use anyhow::{Context, Result};
use ferry_formats::pypi::{file_path, index_path, IndexEntry, ProjectIndex};
use ferry_protocol::id::Sha256;
use std::collections::HashSet;
use std::io::Read;
use std::path::Path;

impl PypiSource {
    /// Lists the selected files and the index of every project (kept pins
    /// included).
    pub(super) fn emit(
        &self,
        cx: &ScanCtx<'_>,
        selected: &Selected,
        kept: Kept,
        sink: &mut dyn FnMut(Item) -> Result<()>,
    ) -> Result<()> {
        let src = &self.name;
        let downloads = cx.cache_dir.join("downloads");
        let mut projects = kept;
        for (project, files) in selected {
            for f in files.values() {
                let sha = f.sha256.clone().expect("checked by select_files");
                projects
                    .entry(project.clone())
                    .or_default()
                    .push(IndexEntry {
                        filename: f.filename.clone(),
                        sha256: sha.clone(),
                        requires_python: f.requires_python.clone(),
                        yanked: f.yanked.clone(),
                    });
                let (url, cached) = (f.url.clone(), downloads.join(&f.filename));
                let what = format!("source {src:?}: {} from {url}", f.filename);
                let want = sha.clone();
                let client = self.client.clone();
                sink(Item {
                    path: file_path(&f.filename),
                    predecessor: None,
                    kind: ItemKind::File {
                        executable: false,
                        fingerprint: Some(format!("sha256:{sha}")),
                        expected_sha256: Sha256::from_hex(&sha),
                        open: Box::new(move || open_file(&client, &url, &cached, &want, what)),
                    },
                })?;
            }
        }
        for (project, mut files) in projects {
            files.sort_by(|a, b| a.filename.cmp(&b.filename));
            let index = ProjectIndex {
                name: project.clone(),
                files,
            };
            let mut bytes = serde_json::to_vec_pretty(&index)?;
            bytes.push(b'\n');
            sink(Item::from_bytes(index_path(&project), bytes))?;
        }
        Ok(())
    }
}

/// Drops downloads (whole or `.part`) that nothing
/// selected refers to any more.
pub(super) fn clean_downloads(cx: &ScanCtx<'_>, selected: &Selected) {
    let wanted: HashSet<&str> = selected
        .values()
        .flat_map(|m| m.keys().map(String::as_str))
        .collect();
    prune_downloads(&cx.cache_dir.join("downloads"), |f| wanted.contains(f));
}

/// Opens a distribution file: the copy downloaded for its metadata if there
/// is one, else a fresh download into the cache; either way checked against
/// the index's SHA-256 before it is read, and removed once open.
fn open_file(
    client: &Client,
    url: &str,
    cached: &Path,
    sha256: &str,
    what: String,
) -> Result<Box<dyn Read>> {
    if let Some(dir) = cached.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let expect = expect_sha256(sha256, &what)?;
    client
        .open_downloaded(url, cached, &expect)
        .map_err(|e| explain(e, &what))
}
