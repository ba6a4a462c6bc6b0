//! The files kept for deltas (copies of objects, recipes): caches, written
//! without a sync and checked on every read.

use anyhow::{Context, Result};
use ferry_protocol::id::Sha256;

/// Writes `bytes` to `path` through a temporary file and a rename, without
/// syncing: the copies and recipes kept for deltas are caches, checked on
/// every read (SHA-256, or a rebuild), so a copy a crash tore is dropped, not
/// used. Syncing each of them made a first export of many small files wait
/// on the disk for every file.
pub(crate) fn write_cache_file(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    // A temporary name of its own per write: two threads may keep the same
    // content at once (the keeper and the scan thread), and each renames a
    // whole copy into place.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut tmp = ferry_agent_common::fsx::tmp_name(path).into_os_string();
    tmp.push(format!(".{n}"));
    let tmp = std::path::PathBuf::from(tmp);
    let written = std::fs::write(&tmp, bytes)
        .with_context(|| format!("cannot write {}", tmp.display()))
        .and_then(|()| {
            std::fs::rename(&tmp, path)
                .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))
        });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Removes the cache file `path`; a missing one is fine.
pub(crate) fn remove_cache_file(path: &std::path::Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
}

/// Removes every file of the cache directory `dir` whose digest (read from
/// its name by `digest_of`) is not in `keep`. A missing directory is empty;
/// a directory in it (the packs of small copies) is left alone.
pub(crate) fn prune_cache_dir(
    dir: &std::path::Path,
    keep: &std::collections::HashSet<Sha256>,
    digest_of: impl Fn(&str) -> Option<Sha256>,
) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let name = entry.file_name();
        let kept = name
            .to_str()
            .and_then(&digest_of)
            .is_some_and(|s| keep.contains(&s));
        if !kept {
            let path = entry.path();
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
        }
    }
    Ok(())
}
