//! PEP 658 core metadata of the held wheels, written beside the PyPI store
//! at apply (like the apt site view, it is derived from verified objects and
//! is not in the catalog):
//!
//! - `GEN/pypi-meta/<source>/files/<wheel>.metadata`: the wheel's top-level
//!   `*.dist-info/METADATA`, byte for byte (what PEP 658 serves);
//! - `GEN/pypi-meta/<source>/simple/<project>.json`: `{"<wheel>": "<sha256>"}`,
//!   the SHA-256 of each metadata file, which `serve::pypi` offers on the
//!   project page (`core-metadata`, `data-core-metadata`).
//!
//! A wheel whose metadata cannot be read (not a zip, no METADATA, over
//! [`MAX_METADATA_BYTES`], not UTF-8) gets none: pip then reads the wheel.
//! An unchanged wheel's metadata is linked from the previous generation.

use super::pypi::GEN_PYPI;
use super::BuildCtx;
use anyhow::{Context, Result};
use ferry_formats::pypi::{file_path, wheel_metadata, ProjectIndex};
use ferry_protocol::catalog::Object;
use ferry_protocol::id::Sha256;
use ferry_protocol::path::ObjectKey;
use std::collections::BTreeMap;
use std::path::Path;

/// The directory of the metadata files in a generation.
pub const GEN_PYPI_META: &str = "pypi-meta";
/// The largest METADATA offered.
pub const MAX_METADATA_BYTES: u64 = 4 << 20;

/// The path of a project's metadata hashes within a source's directory.
pub fn hashes_path(project: &str) -> String {
    format!("simple/{project}.json")
}

/// The path of a file's metadata within a source's directory.
pub fn metadata_path(filename: &str) -> String {
    format!("files/{filename}.metadata")
}

/// Whether `filename` of `source` is the same object in both catalogs.
fn unchanged(cx: &BuildCtx<'_>, source: &str, filename: &str) -> bool {
    let key = ObjectKey {
        source: source.to_string(),
        path: file_path(filename),
    };
    match (cx.prev.objects.get(&key), cx.next.objects.get(&key)) {
        (Some(Object::File(a)), Some(Object::File(b))) => a.sha256 == b.sha256,
        _ => false,
    }
}

/// The metadata of one wheel at `dest`: linked from the previous generation
/// when the wheel did not change, else read from the wheel; `None` when it
/// has none that can be offered.
fn one(cx: &BuildCtx<'_>, source: &str, filename: &str, dest: &Path) -> Result<Option<Vec<u8>>> {
    let rel = metadata_path(filename);
    if let Some(prev) = cx.prev_gen {
        let old = prev.join(GEN_PYPI_META).join(source).join(&rel);
        if unchanged(cx, source, filename) && std::fs::hard_link(&old, dest).is_ok() {
            let bytes =
                std::fs::read(dest).with_context(|| format!("cannot read {}", dest.display()))?;
            return Ok(Some(bytes));
        }
    }
    let wheel = cx
        .new_gen
        .join(GEN_PYPI)
        .join(source)
        .join(file_path(filename));
    let f =
        std::fs::File::open(&wheel).with_context(|| format!("cannot open {}", wheel.display()))?;
    let bytes = match wheel_metadata(std::io::BufReader::new(f), MAX_METADATA_BYTES) {
        Ok(b) if std::str::from_utf8(&b).is_ok() => b,
        _ => return Ok(None),
    };
    std::fs::write(dest, &bytes).with_context(|| format!("cannot write {}", dest.display()))?;
    Ok(Some(bytes))
}

/// Writes the metadata of every wheel `index` lists, and its hashes.
pub(super) fn write(cx: &BuildCtx<'_>, source: &str, index: &ProjectIndex) -> Result<()> {
    let dir = cx.new_gen.join(GEN_PYPI_META).join(source);
    let files = dir.join("files");
    std::fs::create_dir_all(&files)
        .with_context(|| format!("cannot create {}", files.display()))?;
    let mut hashes: BTreeMap<&str, String> = BTreeMap::new();
    for f in index.files.iter().filter(|f| f.filename.ends_with(".whl")) {
        let dest = dir.join(metadata_path(&f.filename));
        if let Some(bytes) = one(cx, source, &f.filename, &dest)? {
            hashes.insert(&f.filename, Sha256::of(&bytes).to_hex());
        }
    }
    let path = dir.join(hashes_path(&index.name));
    std::fs::create_dir_all(ferry_agent_common::fsx::parent(&path))?;
    std::fs::write(&path, serde_json::to_vec(&hashes)?)
        .with_context(|| format!("cannot write {}", path.display()))
}
