//! A directory tree, adopted: every regular file in it (symbolic links are
//! not followed), hashed. Mirror trees (apt, yum, PyPI, Helm) need nothing
//! more: the outside matches objects by content, not by path.

use super::{hash_all, Adopted, Index, Location};
use anyhow::{Context, Result};
use std::path::Path;

/// Adds every regular file under `dir` to `index`; returns how many.
pub(super) fn inventory(dir: &Path, index: &mut Index) -> Result<u64> {
    let dir =
        std::fs::canonicalize(dir).with_context(|| format!("no directory {}", dir.display()))?;
    let mut n = 0;
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        let rd = std::fs::read_dir(&d).with_context(|| format!("cannot read {}", d.display()))?;
        for e in rd {
            let e = e?;
            let ft = e.file_type()?;
            let path = e.path();
            if ft.is_dir() {
                stack.push(path);
            } else if ft.is_file() {
                let f = std::fs::File::open(&path)
                    .with_context(|| format!("cannot open {}", path.display()))?;
                let (sha, size) =
                    hash_all(f).with_context(|| format!("cannot read {}", path.display()))?;
                index.entry(sha.to_hex()).or_insert(Adopted {
                    size,
                    location: Location::File(path),
                });
                n += 1;
            }
        }
    }
    Ok(n)
}
