//! The outside's copies of the objects the inside holds, kept so that the
//! next export can patch a new release against its predecessor.
//!
//! `STATE/objects/<sha256 hex>` holds the bytes of every object of the last
//! exported catalog that is small enough to patch against; a copy of at most
//! [`PACKED_MOST`] bytes is a record of a pack in `STATE/objects/packs/`
//! instead (`super::packs`: a file created per small object cost more than
//! the rest of a first export's work on it). A copy is checked
//! against its name before use (a rotten copy is dropped, and the object
//! then ships whole), and copies no longer in the catalog are removed after
//! each export. Copies are written without syncing (`write_cache_file`):
//! the check on read catches a copy a crash tore.
//!
//! A copy may also be a hard link to the source's own file (`link`: the
//! `files` source's `link_copies`), which costs no write. Such a copy
//! changes if the source's file is rewritten in place, so it is trusted no
//! more than a byte copy: [`References::get`] checks the bytes it read, and
//! [`References::open`] gives a copy shared with another name (more than one
//! link) as a private snapshot, whose bytes the caller checks, so nothing
//! read after a check can differ from what was checked.

use super::packs::{Packs, PACKED_MOST};
use anyhow::{Context, Result};
use ferry_protocol::id::Sha256;
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// The directory of kept objects.
#[derive(Clone)]
pub(crate) struct References {
    dir: PathBuf,
    /// Set once a link was refused (another filesystem, or not allowed):
    /// copies are then written.
    no_links: Arc<AtomicBool>,
    /// The directory's device, once looked up (created if need be).
    device: Arc<OnceLock<u64>>,
    /// The small copies.
    packs: Arc<Packs>,
}

/// What [`References::link`] did.
pub(crate) enum Link {
    /// Linked: the file as it was when linked (its change time aside, which
    /// the link itself changed).
    Made(Stamp),
    /// A copy of that digest is kept already: nothing done.
    Kept,
    /// Not linked (the file changed since it was listed, or links do not
    /// work here): the caller keeps a byte copy, or none.
    Refused,
}

/// What a linked file must still have for its listing after the link to
/// stand for the bytes read (`crate::export`'s fingerprints after links).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Stamp {
    size: u64,
    mtime: (i64, i64),
    ino: u64,
    dev: u64,
}

impl Stamp {
    /// The stamp of `md`.
    pub(crate) fn of(md: &std::fs::Metadata) -> Stamp {
        Stamp {
            size: md.size(),
            mtime: (md.mtime(), md.mtime_nsec()),
            ino: md.ino(),
            dev: md.dev(),
        }
    }
}

impl References {
    /// The store at `dir` (created on first write).
    pub(crate) fn new(dir: PathBuf) -> Self {
        References {
            packs: Packs::shared(dir.join("packs")),
            dir,
            no_links: Arc::default(),
            device: Arc::default(),
        }
    }

    /// Creates the directory if need be; its device.
    fn made(&self) -> Result<u64> {
        if let Some(d) = self.device.get() {
            return Ok(*d);
        }
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        let dev = std::fs::metadata(&self.dir)
            .with_context(|| format!("cannot read {}", self.dir.display()))?
            .dev();
        Ok(*self.device.get_or_init(|| dev))
    }

    /// Whether a copy of the file at `from` may be a link (the same
    /// filesystem, and no link refused so far).
    pub(crate) fn may_link(&self, from: &Path) -> Result<bool> {
        if self.no_links.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let dev = self.made()?;
        Ok(std::fs::symlink_metadata(from).is_ok_and(|m| m.dev() == dev))
    }

    /// Keeps the copy of object `sha` as a hard link to the file `from`,
    /// read for it, if that file still has the fingerprint it was listed
    /// with (`listed`, [`crate::source::file_fingerprint`]).
    pub(crate) fn link(&self, sha: &Sha256, from: &Path, listed: &str) -> Result<Link> {
        if self.no_links.load(Ordering::Relaxed) {
            return Ok(Link::Refused);
        }
        let path = self.path(sha);
        if std::fs::symlink_metadata(&path).is_ok() || self.packs.contains(sha)? {
            return Ok(Link::Kept);
        }
        let md = match std::fs::symlink_metadata(from) {
            Ok(md) if md.is_file() && crate::source::file_fingerprint(&md) == listed => md,
            _ => return Ok(Link::Refused),
        };
        self.made()?;
        match std::fs::hard_link(from, &path) {
            Ok(()) => Ok(Link::Made(Stamp::of(&md))),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(Link::Kept),
            Err(e) => {
                if !self.no_links.swap(true, Ordering::Relaxed) {
                    eprintln!(
                        "ferry-out: note: cannot link {} into {} ({e}); the copies kept for \
                         the next patches are written instead",
                        from.display(),
                        self.dir.display()
                    );
                }
                Ok(Link::Refused)
            }
        }
    }

    /// Where the copies are.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, sha: &Sha256) -> PathBuf {
        self.dir.join(sha.to_hex())
    }

    /// Whether the copy of `sha` is kept and starts as a gzip member or a
    /// zip (by its first bytes; its digest is checked when it is read).
    pub(crate) fn starts_streamed(&self, sha: &Sha256) -> bool {
        match self.packs.read(sha, Some(4)) {
            Ok(Some(head)) => ferry_recipe::stream_expand::is_streamed(&head),
            _ => file_streamed(&self.path(sha)),
        }
    }

    /// The packed copy of `sha`, if packed and intact (a damaged one is
    /// dropped).
    fn packed(&self, sha: &Sha256) -> Result<Option<Vec<u8>>> {
        match self.packs.read(sha, None)? {
            Some(data) if Sha256::of(&data) == *sha => Ok(Some(data)),
            Some(_) => {
                self.damaged(sha)?;
                Ok(None)
            }
            None => Ok(None),
        }
    }

    /// The bytes of object `sha`, if kept and intact.
    pub(crate) fn get(&self, sha: &Sha256) -> Result<Option<Vec<u8>>> {
        if let Some(data) = self.packed(sha)? {
            return Ok(Some(data));
        }
        let path = self.path(sha);
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return self.unreadable(sha, &e)
            }
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
    /// it, and calls [`References::damaged`] if it does not hold. A copy
    /// that is also another name's file (a link to the source's file) is
    /// given as a private snapshot, so that it cannot change between that
    /// check and the caller's later reads; so is a packed copy (checked).
    ///
    /// [`get`]: References::get
    pub(crate) fn open(&self, sha: &Sha256, len: u64) -> Result<Option<std::fs::File>> {
        if let Some(data) = self.packed(sha)? {
            if data.len() as u64 != len {
                return Ok(None);
            }
            let what = self.packs.dir().join(sha.to_hex());
            return self.snapshot(&mut &data[..], &what).map(Some);
        }
        let path = self.path(sha);
        let mut file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return self.unreadable(sha, &e)
            }
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let md = file
            .metadata()
            .with_context(|| format!("cannot read {}", path.display()))?;
        if md.nlink() > 1 && md.len() == len {
            file = self.snapshot(&mut file, &path)?;
        }
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

    /// A private copy of `file` (the copy at `path`, shared with another
    /// name, or packed), in an unnamed file of the directory.
    fn snapshot(&self, file: &mut impl std::io::Read, path: &Path) -> Result<std::fs::File> {
        use std::io::{Seek, SeekFrom};
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        self.made()?;
        let tmp = self
            .dir
            .join(format!(".snapshot.{}.{n}.tmp", std::process::id()));
        let mut copy = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        let _ = std::fs::remove_file(&tmp);
        std::io::copy(file, &mut copy)
            .and_then(|_| copy.seek(SeekFrom::Start(0)))
            .with_context(|| format!("cannot copy {} to {}", path.display(), tmp.display()))?;
        Ok(copy)
    }

    /// A copy this process may not read (a link to a file whose mode
    /// changed): dropped with a warning, as if not kept.
    fn unreadable<T>(&self, sha: &Sha256, e: &std::io::Error) -> Result<Option<T>> {
        let path = self.path(sha);
        eprintln!(
            "ferry-out: warning: cannot read {} ({e}); removed, the objects patched against \
             it ship whole",
            path.display()
        );
        self.drop_copy(sha)?;
        Ok(None)
    }

    /// Removes the copy of `sha`, found damaged, with a warning.
    pub(crate) fn damaged(&self, sha: &Sha256) -> Result<()> {
        let path = match self.packs.contains(sha)? {
            true => self.packs.dir().join(format!("(record {})", sha.to_hex())),
            false => self.path(sha),
        };
        eprintln!(
            "ferry-out: warning: {} is damaged (its SHA-256 differs from its name; a copy \
             kept as a link changes when its source's file is rewritten in place); removed, \
             the objects patched against it ship whole",
            path.display()
        );
        self.drop_copy(sha)
    }

    /// Removes the copy of `sha` if there is one: a copy written only for
    /// the export that wrote it (an object too large to patch against).
    pub(crate) fn drop_copy(&self, sha: &Sha256) -> Result<()> {
        self.packs.remove(sha)?;
        let path = self.path(sha);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
        }
    }

    /// Keeps a copy of `data`, whose SHA-256 is `sha`.
    /// A copy that is also another name's file (a link to a source's file)
    /// is kept if it still holds `data`, else replaced by a copy of its own.
    /// A copy of at most [`PACKED_MOST`] bytes is packed (a link then
    /// removed).
    pub(crate) fn put(&self, sha: &Sha256, data: &[u8]) -> Result<()> {
        let path = self.path(sha);
        match std::fs::metadata(&path) {
            Ok(m) if m.nlink() == 1 => return Ok(()),
            Ok(m)
                if m.len() == data.len() as u64
                    && std::fs::read(&path).is_ok_and(|kept| kept == data) =>
            {
                return Ok(())
            }
            Ok(_) if data.len() <= PACKED_MOST => super::remove_cache_file(&path)?,
            _ => {}
        }
        if data.len() <= PACKED_MOST {
            return self.packs.put(sha, data);
        }
        self.made()?;
        super::write_cache_file(&path, data)
    }

    /// A copy to be filled as an object streams past (its digest is known
    /// only at the end): see [`Teed`]. At most `limit.0` bytes are kept, or
    /// `limit.1` for an object that starts as a gzip member, a zip or a deb (a
    /// layer, a wheel: analysed as its copy is read); a larger object
    /// leaves no copy.
    pub(crate) fn tee<R: std::io::Read>(&self, inner: R, limit: (u64, u64)) -> Result<Teed<R>> {
        self.made()?;
        let tmp = self.dir.join(".streaming.tmp");
        let file = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        Ok(Teed {
            inner,
            out: Some(std::io::BufWriter::with_capacity(1 << 20, file)),
            tmp,
            written: 0,
            limit,
            head: Vec::new(),
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
        self.packs.remove(sha)?;
        super::remove_cache_file(&self.path(sha))
    }

    /// Removes every copy whose digest is not in `keep`.
    pub(crate) fn prune(&self, keep: &HashSet<Sha256>) -> Result<()> {
        self.packs.retain(keep)?;
        super::prune_cache_dir(&self.dir, keep, Sha256::from_hex)
    }
}

/// Whether the file at `path` starts as a gzip member, a zip or a deb (by its
/// first bytes; `false` if it cannot be read): what
/// `ferry_recipe::stream_expand` reads as it goes.
pub(crate) fn file_streamed(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| ferry_recipe::stream_expand::is_streamed(&head))
}

/// A reader that writes what it reads into a copy (`References::tee`):
/// an object shipped whole is kept for the next patch as it streams through
/// the chunker, never held whole in memory.
pub(crate) struct Teed<R> {
    inner: R,
    out: Option<std::io::BufWriter<std::fs::File>>,
    tmp: PathBuf,
    written: u64,
    /// The most bytes kept, and the most for an object that starts as a
    /// gzip member, a zip or a deb.
    limit: (u64, u64),
    /// The object's first bytes (up to 4: gzip's and zip's magic).
    head: Vec<u8>,
}

impl<R: std::io::Read> std::io::Read for Teed<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::io::Write;
        let n = self.inner.read(buf)?;
        if self.head.len() < 4 {
            let more = (4 - self.head.len()).min(n);
            self.head.extend_from_slice(&buf[..more]);
        }
        self.written += n as u64;
        let limit = if ferry_recipe::stream_expand::is_streamed(&self.head) {
            self.limit.0.max(self.limit.1)
        } else {
            self.limit.0
        };
        if self.written > limit {
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
    fn a_linked_copy_is_opened_as_a_snapshot_and_checked_by_get() {
        use std::os::unix::fs::FileExt;
        let dir = tempfile::tempdir().unwrap();
        let refs = References::new(dir.path().join("objects"));
        let file = dir.path().join("f");
        let data = vec![7u8; 100_000];
        std::fs::write(&file, &data).unwrap();
        let sha = Sha256::of(&data);
        let listed = crate::source::file_fingerprint(&std::fs::metadata(&file).unwrap());
        assert!(matches!(
            refs.link(&sha, &file, &listed).unwrap(),
            Link::Made(_)
        ));
        assert!(matches!(
            refs.link(&sha, &file, &listed).unwrap(),
            Link::Kept
        ));
        // Opened: a snapshot, which the file rewritten in place leaves as it was.
        let copy = refs.open(&sha, data.len() as u64).unwrap().unwrap();
        std::fs::write(&file, vec![8u8; 100_000]).unwrap();
        let mut read = vec![0u8; data.len()];
        copy.read_exact_at(&mut read, 0).unwrap();
        assert_eq!(read, data);
        // `put` of the right bytes replaces the wrong link with its own copy.
        refs.put(&sha, &data).unwrap();
        assert_eq!(refs.get(&sha).unwrap(), Some(data.clone()));
        // A link rewritten in place is found wrong by `get` and removed.
        let other = vec![9u8; 50_000];
        std::fs::write(&file, &other).unwrap();
        let listed = crate::source::file_fingerprint(&std::fs::metadata(&file).unwrap());
        let sha2 = Sha256::of(&other);
        assert!(matches!(
            refs.link(&sha2, &file, &listed).unwrap(),
            Link::Made(_)
        ));
        std::fs::write(&file, vec![1u8; 50_000]).unwrap();
        assert_eq!(refs.get(&sha2).unwrap(), None);
        assert!(!refs.dir().join(sha2.to_hex()).exists());
        // No snapshot or temporary file left.
        let left: Vec<_> = std::fs::read_dir(refs.dir()).unwrap().collect();
        assert_eq!(left.len(), 1, "{left:?}");
    }

    #[test]
    fn a_small_copy_is_a_packed_record_checked_as_a_file_is() {
        let dir = tempfile::tempdir().unwrap();
        let objects = dir.path().join("objects");
        let mut gz = vec![0x1f, 0x8b, 8, 0];
        gz.extend((0..50_000u32).map(|i| (i % 13) as u8));
        let (sha, len) = (Sha256::of(&gz), gz.len() as u64);
        let other = vec![5u8; 2000];
        let other_sha = Sha256::of(&other);
        {
            let refs = References::new(objects.clone());
            refs.put(&sha, &gz).unwrap();
            refs.put(&other_sha, &other).unwrap();
            // No file of its own.
            assert!(!objects.join(sha.to_hex()).exists());
            assert!(refs.starts_streamed(&sha));
            assert_eq!(refs.get(&sha).unwrap(), Some(gz.clone()));
            let mut read = Vec::new();
            let mut f = refs.open(&sha, len).unwrap().unwrap();
            f.read_to_end(&mut read).unwrap();
            assert_eq!(read, gz);
        }
        // Found again by the next export; pruned as a file is.
        let refs = References::new(objects.clone());
        assert_eq!(refs.get(&other_sha).unwrap(), Some(other.clone()));
        refs.prune(&HashSet::from([sha])).unwrap();
        assert_eq!(refs.get(&other_sha).unwrap(), None);
        drop(refs);
        // A record rotten on disk is found by its digest and dropped.
        let pack = objects.join("packs/0.pack");
        let mut bytes = std::fs::read(&pack).unwrap();
        bytes[100] ^= 0xff;
        std::fs::write(&pack, bytes).unwrap();
        let refs = References::new(objects.clone());
        assert!(refs.open(&sha, len).unwrap().is_none());
        assert_eq!(refs.get(&sha).unwrap(), None);
        // Nothing left but the packs' directory: no snapshot, no copy.
        let left: Vec<_> = std::fs::read_dir(&objects).unwrap().collect();
        assert_eq!(left.len(), 1, "{left:?}");
    }

    #[test]
    fn a_streamed_object_is_kept_whole_unless_over_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let refs = References::new(dir.path().join("objects"));
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let sha = Sha256::of(&data);
        let len = data.len() as u64;
        let mut teed = refs.tee(&data[..], (len, len)).unwrap();
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
        let mut teed = refs.tee(&data[..], (len - 1, len)).unwrap();
        std::io::copy(&mut teed, &mut std::io::sink()).unwrap();
        refs.keep(teed, &other).unwrap();
        assert_eq!(refs.get(&other).unwrap(), None, "over the limit: no copy");
        let left: Vec<_> = std::fs::read_dir(refs.dir()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file left behind");

        // An object that starts as a gzip member (its magic split over the
        // first two reads) is kept up to the second limit, not over it.
        let mut gz = vec![0x1f, 0x8b, 8];
        gz.extend_from_slice(&data);
        let gz_sha = Sha256::of(&gz);
        let glen = gz.len() as u64;
        for (limits, kept) in [((len, glen), true), ((len, glen - 1), false)] {
            let reader = std::io::Read::chain(&gz[..2], &gz[2..]);
            let mut teed = refs.tee(reader, limits).unwrap();
            std::io::copy(&mut teed, &mut std::io::sink()).unwrap();
            refs.keep(teed, &gz_sha).unwrap();
            assert_eq!(refs.get(&gz_sha).unwrap().is_some(), kept, "{limits:?}");
            refs.remove(&gz_sha).unwrap();
        }
    }
}
