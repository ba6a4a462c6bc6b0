//! Pins: files of pinned versions the last bundle had and upstream no
//! longer lists are kept as they were ([`ItemKind::Keep`]) and stay in their
//! project's index (their `requires-python` and yanked state forgotten).

use super::select::Selected;
use super::tags::parse_filename;
use super::PypiSource;
use crate::source::{Item, ItemKind, ScanCtx};
use anyhow::Result;
use ferry_formats::pypi::{normalize, IndexEntry};
use ferry_protocol::catalog::Object;
use pep508_rs::pep440_rs::Version;
use pep508_rs::VersionOrUrl;
use std::collections::BTreeMap;
use std::str::FromStr;

/// Index entries of kept files, by project.
pub(super) type Kept = BTreeMap<String, Vec<IndexEntry>>;

impl PypiSource {
    /// Keeps the last bundle's files of pinned versions that `selected`
    /// lacks; returns their index entries.
    pub(super) fn keep_pins(
        &self,
        cx: &ScanCtx<'_>,
        selected: &Selected,
        sink: &mut dyn FnMut(Item) -> Result<()>,
    ) -> Result<Kept> {
        let mut kept = Kept::new();
        for (path, obj) in cx.previous_paths() {
            let Some(filename) = path.strip_prefix("files/") else {
                continue;
            };
            let Some(d) = parse_filename(filename) else {
                continue;
            };
            if selected
                .get(&d.project)
                .is_some_and(|m| m.contains_key(filename))
            {
                continue;
            }
            let Ok(v) = Version::from_str(d.version) else {
                continue;
            };
            let Object::File(f) = obj else { continue };
            if !self.pinned(&d.project, &v) {
                continue;
            }
            eprintln!(
                "ferry-out: source {:?}: keeping pinned {filename} (no longer selected upstream)",
                self.name
            );
            sink(Item {
                path: path.to_string(),
                predecessor: None,
                kind: ItemKind::Keep,
            })?;
            kept.entry(d.project.clone()).or_default().push(IndexEntry {
                filename: filename.to_string(),
                sha256: f.sha256.to_hex(),
                requires_python: None,
                yanked: None,
            });
        }
        Ok(kept)
    }

    /// Whether version `v` of `project` is pinned.
    fn pinned(&self, project: &str, v: &Version) -> bool {
        self.pins.iter().any(|p| {
            normalize(p.name.as_ref()) == project
                && match &p.version_or_url {
                    Some(VersionOrUrl::VersionSpecifier(s)) => s.contains(v),
                    _ => true,
                }
        })
    }
}
