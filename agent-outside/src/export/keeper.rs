//! The copies of small new objects (the bases of the next export's
//! patches, `crate::delta::References`) written on a thread of their own.
//!
//! Writing a copy costs little CPU but a file creation, which on a busy
//! ext4 costs more than chunking and hashing a small object: measured on the
//! 17,000 files of `tests/bench/run.sh`, creating the copies took more CPU
//! than the rest of the scan. Here the scan thread hands the object's bytes
//! over (many small objects a message) and goes on chunking while the
//! keeper writes.
//!
//! A larger object streams through the chunker; its SHA-256 and its copy
//! are made by a [`Digest`] thread from the blocks the scan thread reads,
//! so that thread only cuts the object and hashes its chunks.
//!
//! The copy of a file the source lists as local ([`Linkable`]) is kept as
//! a hard link to it instead (no write), if it still has the fingerprint it
//! was listed with; the link changes the file's change time, so each file
//! linked is listed ([`Linked`]) for its fingerprint to be taken again once
//! every link is made (`super::links`).

use crate::delta::{Link, References, Stamp};
use anyhow::{anyhow, Context, Result};
use ferry_protocol::id::{Sha256, Sha256Hasher};
use ferry_protocol::path::ObjectKey;
use std::cell::Cell;
use std::io::Read;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

/// The largest object copied through the keeper; a larger one is copied by
/// the scan thread as it streams through the chunker (`References::tee`).
pub(super) const KEEP_AHEAD: u64 = 1 << 20;

/// Bytes of copies gathered before they go to the keeper in one message
/// (one wake-up of its thread for many small objects, not one each).
const BATCH_BYTES: usize = 1 << 20;

/// Batches waiting to be written, at most: with [`BATCH_BYTES`] and
/// [`KEEP_AHEAD`], at most 16 MiB besides the batch being gathered.
const QUEUE: usize = 8;

/// A local file whose kept copy may be a link to it.
pub(super) struct Linkable {
    /// The object's key.
    pub(super) key: ObjectKey,
    /// Where the file is.
    pub(super) path: PathBuf,
    /// Its fingerprint when listed.
    pub(super) fingerprint: String,
}

/// A file whose kept copy is a link to it, made by this export.
pub(super) struct Linked {
    pub(super) key: ObjectKey,
    pub(super) path: PathBuf,
    /// The file as it was when linked.
    pub(super) stamp: Stamp,
}

/// Copies to write: each object's digest and bytes, and the file they were
/// read from when its copy may be a link to it.
type Batch = Vec<(Sha256, Vec<u8>, Option<Linkable>)>;

/// Keeps the copy of `sha` (bytes `data`) as a link to `local` when it
/// may be, else as a copy of `data`; the link made, if any.
pub(super) fn keep_one(
    refs: &References,
    sha: &Sha256,
    data: &[u8],
    local: Option<Linkable>,
) -> Result<Option<Linked>> {
    if let Some(l) = local {
        match refs.link(sha, &l.path, &l.fingerprint)? {
            Link::Made(stamp) => {
                return Ok(Some(Linked {
                    key: l.key,
                    path: l.path,
                    stamp,
                }))
            }
            Link::Kept => return Ok(None),
            Link::Refused => {}
        }
    }
    refs.put(sha, data)?;
    Ok(None)
}

/// The keeper thread and the way to it.
pub(super) struct Keeper {
    tx: Option<mpsc::SyncSender<Batch>>,
    thread: Option<JoinHandle<Result<Vec<Linked>>>>,
    /// Copies not sent yet, and their bytes.
    batch: Batch,
    bytes: usize,
}

impl Keeper {
    /// Starts a keeper writing into `refs`.
    pub(super) fn start(refs: References) -> Result<Self> {
        let (tx, rx) = mpsc::sync_channel::<Batch>(QUEUE);
        let thread = std::thread::Builder::new()
            .name("ferry-keeper".into())
            .spawn(move || -> Result<Vec<Linked>> {
                let mut linked = Vec::new();
                for batch in rx {
                    for (sha, data, local) in batch {
                        linked.extend(keep_one(&refs, &sha, &data, local)?);
                    }
                }
                Ok(linked)
            })
            .context("cannot start the thread that keeps object copies")?;
        Ok(Keeper {
            tx: Some(tx),
            thread: Some(thread),
            batch: Vec::new(),
            bytes: 0,
        })
    }

    /// Queues the copy of object `sha`, whose bytes are `data` (a link to
    /// `local` if it may be).
    pub(super) fn keep(
        &mut self,
        sha: Sha256,
        data: Vec<u8>,
        local: Option<Linkable>,
    ) -> Result<()> {
        self.bytes += data.len();
        self.batch.push((sha, data, local));
        if self.bytes < BATCH_BYTES {
            return Ok(());
        }
        self.send()
    }

    /// Sends the copies gathered to the keeper thread.
    fn send(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.bytes = 0;
        let batch = std::mem::take(&mut self.batch);
        let sent = self.tx.as_ref().map(|tx| tx.send(batch));
        match sent {
            Some(Ok(())) => Ok(()),
            // The keeper stopped: its own error says why.
            _ => Err(self
                .finish()
                .err()
                .unwrap_or_else(|| anyhow!("the thread that keeps object copies stopped"))),
        }
    }

    /// Waits until every queued copy is written; the links made.
    pub(super) fn finish(&mut self) -> Result<Vec<Linked>> {
        if self.tx.is_some() {
            self.send()?;
        }
        drop(self.tx.take());
        match self.thread.take().map(JoinHandle::join) {
            None => Ok(Vec::new()),
            Some(Ok(written)) => written,
            Some(Err(_)) => Err(anyhow!("the thread that keeps object copies panicked")),
        }
    }
}

/// The blocks an object streams in, to its digest thread.
const BLOCK: usize = 1 << 20;

/// Blocks waiting for the digest thread, at most.
const BLOCKS_QUEUED: usize = 4;

/// What the scan thread tells a digest thread.
enum Piece {
    /// The next bytes of the object.
    Block(Arc<Vec<u8>>),
    /// The object is complete.
    End,
}

/// The SHA-256 and the copy (`References::tee`) of an object streaming
/// through the chunker, made on a thread of their own while the scan thread
/// cuts it: the scan thread reads each block once and shares it.
pub(super) struct Digest {
    tx: Option<mpsc::SyncSender<Piece>>,
    thread: Option<JoinHandle<Result<Option<Sha256>>>>,
}

impl Digest {
    /// Starts the digest thread of one object, keeping its copy in `refs`
    /// unless it is over `limit` bytes (`limit.1` for a gzip member:
    /// [`References::tee`]).
    pub(super) fn start(refs: References, limit: (u64, u64)) -> Result<Self> {
        let (tx, rx) = mpsc::sync_channel::<Piece>(BLOCKS_QUEUED);
        let thread = std::thread::Builder::new()
            .name("ferry-digest".into())
            .spawn(move || -> Result<Option<Sha256>> {
                let ended = Rc::new(Cell::new(false));
                let blocks = Blocks {
                    rx,
                    block: Arc::default(),
                    at: 0,
                    ended: ended.clone(),
                };
                let mut teed = refs.tee(blocks, limit)?;
                let mut sha = Sha256Hasher::new();
                let mut buf = vec![0; BLOCK];
                let read = loop {
                    match teed.read(&mut buf) {
                        Ok(0) => break Ok(()),
                        Ok(n) => sha.update(&buf[..n]),
                        Err(e) => break Err(e),
                    }
                };
                if read.is_err() || !ended.get() {
                    // The scan stopped short, or the copy could not be
                    // written: no copy, and no temporary file left.
                    refs.discard(teed);
                    read.with_context(|| {
                        format!("cannot keep a copy in {}", refs.dir().display())
                    })?;
                    return Ok(None);
                }
                let sha = sha.finish();
                refs.keep(teed, &sha)?;
                Ok(Some(sha))
            })
            .context("cannot start the thread that digests objects")?;
        Ok(Digest {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// `inner`, read in blocks each of which the digest thread gets too.
    pub(super) fn reader<R: Read>(&self, inner: R) -> Split<'_, R> {
        Split {
            inner,
            tx: self.tx.as_ref().expect("not finished"),
            block: Arc::default(),
            at: 0,
        }
    }

    /// Waits for the digest thread: the object's SHA-256 once it has read
    /// the whole object (`complete`), `None` if the scan stopped short; the
    /// thread's error (a copy it could not write) if it failed.
    pub(super) fn finish(mut self, complete: bool) -> Result<Option<Sha256>> {
        if let Some(tx) = self.tx.take() {
            if complete {
                // A closed channel: the thread's own error says why.
                let _ = tx.send(Piece::End);
            }
        }
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(digest)) => digest,
            Some(Err(_)) => Err(anyhow!("the thread that digests objects panicked")),
            None => Ok(None),
        }
    }
}

impl Drop for Digest {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The scan thread's side of [`Digest`]: reads `inner` a block at a time,
/// sends each block to the digest thread and serves it to the chunker.
pub(super) struct Split<'a, R> {
    inner: R,
    tx: &'a mpsc::SyncSender<Piece>,
    block: Arc<Vec<u8>>,
    at: usize,
}

impl<R: Read> Read for Split<'_, R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.block.len() {
            let mut block = Vec::with_capacity(BLOCK);
            (&mut self.inner)
                .take(BLOCK as u64)
                .read_to_end(&mut block)?;
            if block.is_empty() {
                return Ok(0);
            }
            self.block = Arc::new(block);
            self.at = 0;
            self.tx
                .send(Piece::Block(self.block.clone()))
                .map_err(|_| std::io::Error::other("the thread that digests objects stopped"))?;
        }
        let n = out.len().min(self.block.len() - self.at);
        out[..n].copy_from_slice(&self.block[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// The digest thread's side: the blocks as one stream, ending at
/// [`Piece::End`] (`ended` set) or when the scan thread hangs up.
struct Blocks {
    rx: mpsc::Receiver<Piece>,
    block: Arc<Vec<u8>>,
    at: usize,
    ended: Rc<Cell<bool>>,
}

impl Read for Blocks {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.block.len() {
            match self.rx.recv() {
                Ok(Piece::Block(b)) => {
                    self.block = b;
                    self.at = 0;
                }
                Ok(Piece::End) => {
                    self.ended.set(true);
                    return Ok(0);
                }
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.block.len() - self.at);
        out[..n].copy_from_slice(&self.block[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::noise;

    /// Reads `data` through a digest's split reader in reads of `step`.
    fn stream(d: &Digest, data: &[u8], step: usize) -> Vec<u8> {
        let mut split = d.reader(data);
        let mut got = Vec::new();
        let mut buf = vec![0; step];
        loop {
            let n = split.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        got
    }

    #[test]
    fn a_digest_thread_keeps_the_copy_of_a_whole_object_only() {
        let dir = tempfile::tempdir().unwrap();
        let refs = References::new(dir.path().join("objects"));
        let data = noise(3 * BLOCK + 12_345, 5);
        let d = Digest::start(refs.clone(), (u64::MAX, u64::MAX)).unwrap();
        assert_eq!(stream(&d, &data, 70_000), data);
        let sha = Sha256::of(&data);
        assert_eq!(d.finish(true).unwrap(), Some(sha));
        assert_eq!(refs.get(&sha).unwrap(), Some(data.clone()));

        // Stopped short: no digest, no copy.
        let d = Digest::start(refs.clone(), (u64::MAX, u64::MAX)).unwrap();
        let half = &data[..BLOCK + 1];
        assert_eq!(stream(&d, half, 4096), half);
        assert_eq!(d.finish(false).unwrap(), None);
        assert_eq!(refs.get(&Sha256::of(half)).unwrap(), None);

        // Over the limit: the digest, no copy.
        let d = Digest::start(refs.clone(), (BLOCK as u64, BLOCK as u64)).unwrap();
        assert_eq!(stream(&d, half, BLOCK), half);
        assert_eq!(d.finish(true).unwrap(), Some(Sha256::of(half)));
        assert_eq!(refs.get(&Sha256::of(half)).unwrap(), None);

        // An empty object.
        let d = Digest::start(refs.clone(), (u64::MAX, u64::MAX)).unwrap();
        assert!(stream(&d, b"", 10).is_empty());
        assert_eq!(d.finish(true).unwrap(), Some(Sha256::of(b"")));
    }

    #[test]
    fn a_digest_thread_that_cannot_keep_its_copy_says_why() {
        let dir = tempfile::tempdir().unwrap();
        // The copies' directory is a file: no copy can be made there.
        let blocked = dir.path().join("objects");
        std::fs::write(&blocked, b"not a directory").unwrap();
        let e = Digest::start(References::new(blocked.clone()), (u64::MAX, u64::MAX))
            .and_then(|d| {
                let mut sink = Vec::new();
                let read = d.reader(&noise(2 * BLOCK, 1)[..]).read_to_end(&mut sink);
                let finished = d.finish(read.is_ok());
                finished.map(|_| ())
            })
            .unwrap_err();
        // The cause names the blocked directory, not only "the thread that
        // digests objects stopped".
        assert!(
            format!("{e:#}").contains(&blocked.display().to_string()),
            "{e:#}"
        );
    }

    #[test]
    fn copies_kept_in_batches_are_all_written_by_finish() {
        let dir = tempfile::tempdir().unwrap();
        let refs = References::new(dir.path().join("objects"));
        let mut keeper = Keeper::start(refs.clone()).unwrap();
        // Many small copies (batched) and a few large ones (each fills a batch).
        let objects: Vec<Vec<u8>> = (0..300)
            .map(|i| {
                noise(
                    if i % 100 == 7 {
                        BATCH_BYTES + 1
                    } else {
                        3000 + i
                    },
                    i as u64 + 1,
                )
            })
            .collect();
        for o in &objects {
            keeper.keep(Sha256::of(o), o.clone(), None).unwrap();
        }
        keeper.finish().unwrap();
        for o in &objects {
            assert_eq!(refs.get(&Sha256::of(o)).unwrap().as_ref(), Some(o));
        }
    }
}
