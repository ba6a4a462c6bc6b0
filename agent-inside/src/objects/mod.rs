//! Objects stored once by SHA-256 (issue 15, docs/scale.md): the bytes of
//! every file of the served catalog live in `STATE/objects/ab/<sha256>`, one
//! file per digest, whatever the paths that name it.
//!
//! An object is written under a temporary name in its fan-out directory,
//! checked (size and SHA-256, by the writer that streams into it), and
//! renamed to its digest; the apply syncs the filesystem before its commit.
//! Once named, an object file never changes: an unchanged object is never
//! touched by an import. The database counts, per digest, the catalog keys
//! naming it (`object_refs`, `crate::db::objects`), changed by an apply's
//! changes only; a digest whose count falls to zero is *released* and its
//! file removed after the switch, once no kept generation names it.
//!
//! Object files are mode 0644: the mode a path serves with is in the
//! path index (`crate::genread`), not in the shared file.

use anyhow::{Context, Result};
use ferry_protocol::id::Sha256;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Prefix of an object being written (never served, swept by `recover`).
const TMP: &str = ".tmp-";

/// The object store under `STATE/objects/`.
#[derive(Clone, Debug)]
pub struct ObjectStore {
    root: PathBuf,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl ObjectStore {
    /// The object store rooted at `root` (`Layout::objects`).
    pub fn new(root: &Path) -> Self {
        ObjectStore {
            root: root.to_path_buf(),
        }
    }

    /// Its root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where object `sha` is (whether or not it is there).
    pub fn path(&self, sha: &Sha256) -> PathBuf {
        let hex = sha.to_hex();
        self.root.join(&hex[..2]).join(hex)
    }

    /// Whether a file of `size` bytes is at object `sha`'s path (a presence
    /// check; readers check the bytes against the digest as they read).
    pub fn holds(&self, sha: &Sha256, size: u64) -> bool {
        std::fs::symlink_metadata(self.path(sha)).is_ok_and(|m| m.is_file() && m.len() == size)
    }

    /// Creates a temporary file for object `sha`, in its fan-out directory;
    /// [`ObjectStore::publish`] names it once its bytes are checked.
    pub fn create_tmp(&self, sha: &Sha256) -> Result<(File, PathBuf)> {
        let dest = self.path(sha);
        let dir = dest.parent().expect("object paths have a parent");
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!("{TMP}{}-{}-{n}", sha.to_hex(), std::process::id()));
        let open = || {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)
        };
        // The fan-out directory is made when the first open finds it
        // missing (one call per object, not a look first).
        let f = match open() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
                open()
            }
            r => r,
        }
        .with_context(|| format!("cannot create {}", tmp.display()))?;
        Ok((f, tmp))
    }

    /// Writes object `sha` through `write` (the temporary file and its
    /// path; it checks the bytes it writes), gives it mode 0644 and names
    /// it. A failed write leaves no temporary file.
    pub fn write_object(
        &self,
        sha: &Sha256,
        write: impl FnOnce(File, &Path) -> Result<()>,
    ) -> Result<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        let (file, tmp) = self.create_tmp(sha)?;
        let written = write(file, &tmp).and_then(|()| {
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))
                .with_context(|| format!("cannot set mode of {}", tmp.display()))
        });
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        self.publish(&tmp, sha)
    }

    /// Names the checked temporary file `tmp` as object `sha` (replacing a
    /// file there: one `scrub` found rotten, or a leftover).
    pub fn publish(&self, tmp: &Path, sha: &Sha256) -> Result<PathBuf> {
        let dest = self.path(sha);
        std::fs::rename(tmp, &dest)
            .with_context(|| format!("cannot rename {} to {}", tmp.display(), dest.display()))?;
        Ok(dest)
    }

    /// Takes the file at `from` (a file of an older generation's tree,
    /// holding object `sha`) into the store by a hard link, if the store
    /// does not hold it yet: how the first import of this layout converts
    /// an older generation without copying its bytes.
    pub fn adopt_link(&self, from: &Path, sha: &Sha256) -> Result<()> {
        let dest = self.path(sha);
        let dir = dest.parent().expect("object paths have a parent");
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        match std::fs::hard_link(from, &dest) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e)
                .with_context(|| format!("cannot link {} to {}", from.display(), dest.display())),
        }
    }

    /// Removes object `sha` (absent is fine).
    pub fn remove(&self, sha: &Sha256) -> Result<()> {
        let p = self.path(sha);
        match std::fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("cannot remove {}", p.display())),
        }
    }

    /// Removes every temporary file and every object `keep` refuses (the
    /// whole store is listed: `recover` after an interrupted apply). Returns
    /// the files removed.
    pub fn sweep(&self, keep: impl Fn(&Sha256) -> bool) -> Result<u64> {
        self.sweep_where(|name| match Sha256::from_hex(name) {
            Some(sha) if name.len() == 64 => !keep(&sha),
            _ => true,
        })
    }

    /// Removes the temporary files only.
    pub fn sweep_temporary(&self) -> Result<u64> {
        self.sweep_where(|name| name.starts_with(TMP))
    }

    fn sweep_where(&self, remove: impl Fn(&str) -> bool) -> Result<u64> {
        let Ok(fans) = std::fs::read_dir(&self.root) else {
            return Ok(0);
        };
        let mut removed = 0;
        for fan in fans.flatten() {
            let Ok(rd) = std::fs::read_dir(fan.path()) else {
                continue;
            };
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if remove(&name) {
                    std::fs::remove_file(e.path())
                        .with_context(|| format!("cannot remove {}", e.path().display()))?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

/// Step 8 of an apply (and `recover`): removes the files of the digests the
/// database released (count fell to zero) that no kept generation names,
/// and forgets them; a digest named again since is only forgotten. With
/// `keep_previous`, a digest released by the apply of `sequence` stays for
/// the previous generation, until the next apply. Reads the released
/// digests only: O(change).
pub fn remove_released(
    store: &ObjectStore,
    db: &crate::db::Db,
    sequence: u64,
    keep_previous: bool,
) -> Result<()> {
    let mut forget = Vec::new();
    for (sha, released_by, refs) in db.released_with_refs()? {
        if refs > 0 {
            forget.push(sha);
        } else if !keep_previous || released_by < sequence {
            store.remove(&sha)?;
            forget.push(sha);
        }
    }
    db.forget_released(&forget)
}

/// After an interrupted apply: removes every temporary file and every
/// object the database neither counts nor keeps released (written by an
/// apply that did not commit). Lists the whole store.
pub fn sweep_unreferenced(store: &ObjectStore, db: &crate::db::Db) -> Result<u64> {
    let mut keep: std::collections::HashSet<Sha256> = db
        .object_ref_counts()?
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    keep.extend(db.released_objects()?.into_iter().map(|(s, _)| s));
    store.sweep(|sha| keep.contains(sha))
}

#[cfg(test)]
mod tests;
