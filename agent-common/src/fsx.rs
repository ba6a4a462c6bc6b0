//! Durable, atomic writes.
//!
//! The rule everywhere: write under a temporary name, fsync the data, rename
//! into place, fsync the directory. A reader (or a stick pulled early) sees
//! the old state or the new one, never a half-written file under its final name.

use anyhow::{Context, Result};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Fsyncs a directory, so renames and creations in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot sync directory {}", dir.display()))
}

/// A new file in `dir` (made if missing) named from `stem`, unlinked at
/// once: read and written through its handle, gone when it is closed (or
/// the process dies), so a spill never outlives its use.
pub fn unlinked_file(dir: &Path, stem: &str) -> Result<File> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!(".{stem}-{}-{n}.tmp", std::process::id()));
        match fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => {
                fs::remove_file(&path)
                    .with_context(|| format!("cannot unlink {}", path.display()))?;
                return Ok(f);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", path.display())),
        }
    }
}

/// The parent of `path`, or `.`.
pub fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Writes `bytes` to `path` atomically and durably.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_name(path);
    let res = (|| -> Result<()> {
        let mut f =
            File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        f.write_all(bytes)
            .and_then(|_| f.sync_all())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        fs::rename(&tmp, path).with_context(|| format!("cannot rename into {}", path.display()))?;
        sync_dir(parent(path))
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

/// Writes a secret (mode 0600 from the start) atomically and durably.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = tmp_name(path);
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    sync_dir(parent(path))
}

/// A temporary sibling name for `path`: `.NAME.tmp`.
pub fn tmp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    parent(path).join(format!(".{name}.tmp"))
}

/// Copies a file durably: to a temporary name, fsync, rename, fsync the directory.
pub fn copy_atomic(from: &Path, to: &Path) -> Result<u64> {
    let tmp = tmp_name(to);
    let res = (|| -> Result<u64> {
        let n = fs::copy(from, &tmp)
            .with_context(|| format!("cannot copy {} to {}", from.display(), tmp.display()))?;
        File::open(&tmp)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("cannot sync {}", tmp.display()))?;
        fs::rename(&tmp, to).with_context(|| format!("cannot rename into {}", to.display()))?;
        Ok(n)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

/// Removes a directory tree if it exists.
pub fn remove_dir_if_exists(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", dir.display())),
    }
}

/// Copies every regular file of `from` (one level) into a new directory `to`,
/// atomically: into a temporary sibling first, synced, then renamed into place.
/// An existing `to` is replaced.
pub fn copy_dir_atomic(from: &Path, to: &Path, mut on_bytes: impl FnMut(u64)) -> Result<u64> {
    let tmp = tmp_name(to);
    remove_dir_if_exists(&tmp)?;
    fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut total = 0;
    let mut entries: Vec<_> = fs::read_dir(from)
        .with_context(|| format!("cannot read {}", from.display()))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        if !e.file_type()?.is_file() {
            continue;
        }
        let dst = tmp.join(e.file_name());
        let n = fs::copy(e.path(), &dst)
            .with_context(|| format!("cannot copy {} to {}", e.path().display(), dst.display()))?;
        File::open(&dst)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("cannot sync {}", dst.display()))?;
        total += n;
        on_bytes(n);
    }
    sync_dir(&tmp)?;
    remove_dir_if_exists(to)?;
    fs::rename(&tmp, to).with_context(|| format!("cannot rename into {}", to.display()))?;
    sync_dir(parent(to))?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_and_copy() {
        let d = std::env::temp_dir().join(format!("ferry-fsx-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(d.join("src")).unwrap();
        write_atomic(&d.join("src/a"), b"hello").unwrap();
        write_atomic(&d.join("src/a"), b"hello2").unwrap();
        assert_eq!(fs::read(d.join("src/a")).unwrap(), b"hello2");
        assert!(!tmp_name(&d.join("src/a")).exists());
        copy_atomic(&d.join("src/a"), &d.join("b")).unwrap();
        assert_eq!(fs::read(d.join("b")).unwrap(), b"hello2");
        let n = copy_dir_atomic(&d.join("src"), &d.join("dst"), |_| {}).unwrap();
        assert_eq!(n, 6);
        assert_eq!(fs::read(d.join("dst/a")).unwrap(), b"hello2");
        fs::remove_dir_all(&d).unwrap();
    }
}
