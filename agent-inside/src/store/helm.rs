//! The store of Helm chart repositories: objects of `helm` sources at
//! `GEN/helm/<source>/<path>`, served under `/helm/<source>/<path>`, so
//! `http://HOST/helm/<source>` is a repository URL for `helm repo add`.
//!
//! Layout within a source (written by ferry-out's helm source):
//!
//! - `index.yaml`: the chart index, its `urls` relative (`charts/<file>`);
//! - `charts/<name>-<version>.tgz`: the chart archives.
//!
//! Rules, checked before a generation becomes current: [`Store::check`]
//! refuses any other path, links, and a source without `index.yaml`; after
//! the files are built, every entry of `index.yaml` must point at a relative
//! `charts/…` URL the bundle holds, and that archive's SHA-256 must be the
//! entry's `digest`.

use super::{materialize, objects_of_kind, BuildCtx, Store};
use anyhow::{bail, Context, Result};
use ferry_formats::helm::{is_chart_path, parse_index, INDEX};
use ferry_protocol::catalog::{Catalog, Object, SourceKind};
use ferry_protocol::path::ObjectKey;
use std::collections::{BTreeMap, BTreeSet};

/// The store of Helm chart repositories.
pub struct HelmStore;

fn check_built(cx: &BuildCtx<'_>) -> Result<()> {
    let mut sources: BTreeMap<&str, BTreeMap<&str, &Object>> = BTreeMap::new();
    for (key, obj) in objects_of_kind(cx.next, SourceKind::Helm) {
        sources
            .entry(key.source.as_str())
            .or_default()
            .insert(key.path.as_str(), obj);
    }
    for (source, objects) in sources {
        let path = cx.new_path(
            SourceKind::Helm.name(),
            &ObjectKey {
                source: source.to_string(),
                path: INDEX.to_string(),
            },
        );
        let text = std::fs::read(&path)
            .with_context(|| format!("helm source {source:?}: cannot read {INDEX}"))?;
        let entries = parse_index(&text).with_context(|| format!("helm source {source:?}"))?;
        for e in &entries {
            let what = format!(
                "helm source {source:?}: {INDEX}: chart {} {}",
                e.name, e.version
            );
            let url = e
                .urls
                .first()
                .with_context(|| format!("{what} has no URL"))?;
            let Some(Object::File(f)) = objects.get(url.as_str()).filter(|_| is_chart_path(url))
            else {
                bail!("{what} points at {url:?}, which is not a chart the bundle holds");
            };
            let digest = e.digest.as_deref().unwrap_or("");
            if !digest.eq_ignore_ascii_case(&f.sha256.to_hex()) {
                bail!(
                    "{what}: {url} has SHA-256 {}, but the index says {digest:?}",
                    f.sha256
                );
            }
        }
    }
    Ok(())
}

impl Store for HelmStore {
    fn kind(&self) -> SourceKind {
        SourceKind::Helm
    }

    fn check(&self, next: &Catalog) -> Result<()> {
        let mut all = BTreeSet::new();
        let mut indexed = BTreeSet::new();
        for (key, obj) in objects_of_kind(next, SourceKind::Helm) {
            if !matches!(obj, Object::File(_)) {
                bail!("object {key}: a helm source holds files only, not symbolic links");
            }
            all.insert(key.source.as_str());
            if key.path == INDEX {
                indexed.insert(key.source.as_str());
            } else if !is_chart_path(&key.path) {
                bail!("object {key}: not a path of a helm source ({INDEX} or charts/<file>.tgz)");
            }
        }
        if let Some(s) = all.difference(&indexed).next() {
            bail!("helm source {s:?} has no {INDEX}");
        }
        Ok(())
    }

    fn build(&self, cx: &BuildCtx<'_>) -> Result<u64> {
        let written = materialize(cx, self.kind(), self.kind().name())?;
        check_built(cx)?;
        Ok(written)
    }
}
