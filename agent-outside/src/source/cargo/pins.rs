//! Pins: a pinned version upstream no longer lists is carried unchanged
//! from the last bundle ([`ItemKind::Keep`]), with the index line recorded
//! when it was last carried (`STATE/cache/<source>/shipped-pins.json`).
//!
//! [`ItemKind::Keep`]: crate::source::ItemKind::Keep

use super::select::Selected;
use super::CargoSource;
use crate::source::ScanCtx;
use anyhow::{Context, Result};
use ferry_formats::cargo::{crate_path, parse_index, Entry};
use std::collections::BTreeMap;

/// The file recording the index lines of pinned versions.
const SHIPPED_PINS: &str = "shipped-pins.json";

/// Pinned versions kept from the last bundle.
#[derive(Default)]
pub(super) struct Kept {
    /// Their index entries, by lower-case crate name.
    pub(super) lines: BTreeMap<String, Vec<Entry>>,
    /// Their crate paths.
    pub(super) paths: Vec<String>,
}

impl CargoSource {
    /// Finds the pins `selected` lacks that the last bundle carried, and
    /// records the lines of the pins carried now for later exports.
    pub(super) fn keep_pins(&self, cx: &ScanCtx<'_>, selected: &Selected) -> Result<Kept> {
        let src = &self.name;
        let file = cx.cache_dir.join(SHIPPED_PINS);
        let mut shipped: BTreeMap<String, String> = std::fs::read(&file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let mut kept = Kept::default();
        for (name, version) in &self.pins {
            let lower = name.to_ascii_lowercase();
            let key = format!("{lower}@{version}");
            let carried = selected
                .get(&lower)
                .filter(|c| c.versions.contains(version))
                .and_then(|c| c.entries.iter().find(|e| e.version == *version));
            if let Some(e) = carried {
                shipped.insert(key, e.raw.clone());
                continue;
            }
            let entry = shipped
                .get(&key)
                .and_then(|raw| parse_index(raw.as_bytes(), name).ok())
                .and_then(|mut es| es.pop());
            let path = entry
                .as_ref()
                .map(|e| crate_path(&e.line.name, &e.line.vers));
            match (entry, path) {
                (Some(e), Some(path)) if cx.previous_paths().any(|(p, _)| p == path) => {
                    eprintln!(
                        "ferry-out: source {src:?}: keeping pinned crate {name} {version} (upstream no longer lists it)"
                    );
                    kept.lines.entry(lower).or_default().push(e);
                    kept.paths.push(path);
                }
                _ => eprintln!(
                    "ferry-out: warning: source {src:?}: pinned crate {name} {version} is neither upstream nor in the last bundle"
                ),
            }
        }
        shipped.retain(|k, _| {
            self.pins
                .iter()
                .any(|(n, v)| *k == format!("{}@{v}", n.to_ascii_lowercase()))
        });
        // Written even if the export fails later: only read for pins whose
        // crate the last bundle holds.
        let json = serde_json::to_vec_pretty(&shipped)?;
        ferry_agent_common::fsx::write_atomic(&file, &json)
            .with_context(|| format!("cannot write {}", file.display()))?;
        Ok(kept)
    }
}
