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
//! - `GEN/pypi-meta/<source>/foreign.json`: the projects whose index lists
//!   a file named after another project (`store::pypi::projects_of`), so
//!   that a delta changing such a file checks their index again.
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
/// The list of projects listing foreign files, in a source's directory.
pub const FOREIGN: &str = "foreign.json";
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
    match (cx.prev.get(&key), cx.next.objects.get(&key)) {
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
    let wheel = cx.new_path(
        GEN_PYPI,
        &ferry_protocol::path::ObjectKey {
            source: source.to_string(),
            path: file_path(filename),
        },
    );
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

/// Links the metadata of `project`'s wheels, and its hashes, from the
/// previous generation, for an index that did not change and lists no
/// changed file. `false` when the previous generation lacks them (the
/// caller then reads the index and [`write`]s them).
pub(super) fn link_unchanged(cx: &BuildCtx<'_>, source: &str, project: &str) -> Result<bool> {
    let Some(prev) = cx.prev_gen else {
        return Ok(false);
    };
    let old = prev.join(GEN_PYPI_META).join(source);
    let Ok(bytes) = std::fs::read(old.join(hashes_path(project))) else {
        return Ok(false);
    };
    let Ok(hashes) = serde_json::from_slice::<BTreeMap<String, String>>(&bytes) else {
        return Ok(false);
    };
    let dir = cx.new_gen.join(GEN_PYPI_META).join(source);
    let path = dir.join(hashes_path(project));
    std::fs::create_dir_all(ferry_agent_common::fsx::parent(&path))?;
    std::fs::create_dir_all(dir.join("files"))?;
    for wheel in hashes.keys() {
        let rel = metadata_path(wheel);
        if wheel.contains('/') {
            return Ok(false);
        }
        match std::fs::hard_link(old.join(&rel), dir.join(&rel)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(_) => return Ok(false),
        }
    }
    std::fs::write(&path, &bytes).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(true)
}

/// Writes the projects of `source` whose index lists a foreign file.
pub(super) fn write_foreign(
    cx: &BuildCtx<'_>,
    source: &str,
    projects: &std::collections::BTreeSet<String>,
) -> Result<()> {
    let dir = cx.new_gen.join(GEN_PYPI_META).join(source);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(FOREIGN);
    std::fs::write(&path, serde_json::to_vec(projects)?)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The projects of `source` whose index lists a foreign file, as the
/// previous generation recorded them; `None` if it did not (built by an
/// older ferry-in) or the record cannot be read.
pub(super) fn read_foreign(cx: &BuildCtx<'_>, source: &str) -> Option<Vec<String>> {
    let path = cx.prev_gen?.join(GEN_PYPI_META).join(source).join(FOREIGN);
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}
