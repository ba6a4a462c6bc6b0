//! The outside's copies of the objects the inside holds, kept so that the
//! next export can patch a new release against its predecessor.
//!
//! `STATE/objects/<sha256 hex>` holds the bytes of every object of the last
//! exported catalog that is small enough to patch against. A copy is checked
//! against its name before use (a rotten copy is dropped, and the object
//! then ships whole), and copies no longer in the catalog are removed after
//! each export. Copies are written without syncing (`write_cache_file`):
//! the check on read catches a copy a crash tore.

use anyhow::{Context, Result};
use ferry_protocol::id::Sha256;
use std::collections::HashSet;
use std::path::PathBuf;

/// The directory of kept objects.
#[derive(Clone)]
pub(crate) struct References {
    dir: PathBuf,
}

impl References {
    /// The store at `dir` (created on first write).
    pub(crate) fn new(dir: PathBuf) -> Self {
        References { dir }
    }

    /// Where the copies are.
    pub(crate) fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    fn path(&self, sha: &Sha256) -> PathBuf {
        self.dir.join(sha.to_hex())
    }

    /// The bytes of object `sha`, if kept and intact.
    pub(crate) fn get(&self, sha: &Sha256) -> Result<Option<Vec<u8>>> {
        let path = self.path(sha);
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        if Sha256::of(&data) != *sha {
            self.damaged(sha)?;
            return Ok(None);
        }
        Ok(Some(data))
    }

    /// The copy of object `sha`, opened for reading, if kept at its size
    /// `len` (a copy of another size is damaged: removed, as by [`get`]).
    /// Its digest is not checked here: the caller reads it whole and checks
    /// it, and calls [`References::damaged`] if it does not hold.
    ///
    /// [`get`]: References::get
    pub(crate) fn open(&self, sha: &Sha256, len: u64) -> Result<Option<std::fs::File>> {
        let path = self.path(sha);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let size = file
            .metadata()
            .with_context(|| format!("cannot read {}", path.display()))?
            .len();
        if size != len {
            self.damaged(sha)?;
            return Ok(None);
        }
        Ok(Some(file))
    }

    /// Removes the copy of `sha`, found damaged, with a warning.
    pub(crate) fn damaged(&self, sha: &Sha256) -> Result<()> {
        let path = self.path(sha);
        eprintln!(
            "ferry-out: warning: {} is damaged (its SHA-256 differs from its name); removed, \
             the objects patched against it ship whole",
            path.display()
        );
        self.drop_copy(sha)
    }

    /// Removes the copy of `sha` if there is one: a copy written only for
    /// the export that wrote it (an object too large to patch against).
    pub(crate) fn drop_copy(&self, sha: &Sha256) -> Result<()> {
        let path = self.path(sha);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
        }
    }

    /// Keeps a copy of `data`, whose SHA-256 is `sha`.
    pub(crate) fn put(&self, sha: &Sha256, data: &[u8]) -> Result<()> {
        let path = self.path(sha);
        if path.exists() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        super::write_cache_file(&path, data)
    }

    /// A copy to be filled as an object streams past (its digest is known
    /// only at the end): see [`Teed`]. At most `limit` bytes are kept; a
    /// larger object leaves no copy.
    pub(crate) fn tee<R: std::io::Read>(&self, inner: R, limit: u64) -> Result<Teed<R>> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        let tmp = self.dir.join(".streaming.tmp");
        let file = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        Ok(Teed {
            inner,
            out: Some(std::io::BufWriter::with_capacity(1 << 20, file)),
            tmp,
            written: 0,
            limit,
        })
    }

    /// Keeps the copy `teed` wrote as that of object `sha` (read whole by
    /// the caller, which computed `sha` from the same bytes).
    pub(crate) fn keep(&self, teed: Teed<impl std::io::Read>, sha: &Sha256) -> Result<()> {
        let Teed { out, tmp, .. } = teed;
        let Some(out) = out else {
            let _ = std::fs::remove_file(&tmp);
            return Ok(());
        };
        out.into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        let path = self.path(sha);
        std::fs::rename(&tmp, &path)
            .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))
    }

    /// Drops the copy `teed` was writing (the object did not stream
    /// through whole).
    pub(crate) fn discard(&self, teed: Teed<impl std::io::Read>) {
        let Teed { out, tmp, .. } = teed;
        drop(out);
        let _ = std::fs::remove_file(&tmp);
    }

    /// Removes the copy of `sha`, if kept.
    pub(crate) fn remove(&self, sha: &Sha256) -> Result<()> {
        super::remove_cache_file(&self.path(sha))
    }

    /// Removes every copy whose digest is not in `keep`.
    pub(crate) fn prune(&self, keep: &HashSet<Sha256>) -> Result<()> {
        super::prune_cache_dir(&self.dir, keep, Sha256::from_hex)
    }
}

/// A reader that writes what it reads into a copy (`References::tee`):
/// an object shipped whole is kept for the next patch as it streams through
/// the chunker, never held whole in memory.
pub(crate) struct Teed<R> {
    inner: R,
    out: Option<std::io::BufWriter<std::fs::File>>,
    tmp: PathBuf,
    written: u64,
    limit: u64,
}

impl<R: std::io::Read> std::io::Read for Teed<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::io::Write;
        let n = self.inner.read(buf)?;
        self.written += n as u64;
        if self.written > self.limit {
            // Too large to patch against: no copy.
            self.out = None;
        }
        if let Some(out) = &mut self.out {
            out.write_all(&buf[..n])?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn a_streamed_object_is_kept_whole_unless_over_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let refs = References::new(dir.path().join("objects"));
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let sha = Sha256::of(&data);
        let mut teed = refs.tee(&data[..], data.len() as u64).unwrap();
        let mut read = Vec::new();
        // Small reads, as a chunker makes them.
        let mut buf = [0u8; 7000];
        loop {
            let n = teed.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            read.extend_from_slice(&buf[..n]);
        }
        assert_eq!(read, data);
        refs.keep(teed, &sha).unwrap();
        assert_eq!(refs.get(&sha).unwrap(), Some(data.clone()));

        let other = Sha256::of(b"other");
        let mut teed = refs.tee(&data[..], data.len() as u64 - 1).unwrap();
        std::io::copy(&mut teed, &mut std::io::sink()).unwrap();
        refs.keep(teed, &other).unwrap();
        assert_eq!(refs.get(&other).unwrap(), None, "over the limit: no copy");
        let left: Vec<_> = std::fs::read_dir(refs.dir()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file left behind");
    }
}
