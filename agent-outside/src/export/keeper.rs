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
//! are made by a [`Digest`] thread from the chunks the scan thread cuts
//! (shared, not copied), so that thread only cuts the object and hashes
//! its chunks.
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

/// Keeper threads: creating a file is most of a small copy's cost, and
/// two threads create files on both cores of a small machine while the
/// scan's cutting threads read ahead (a copy's name is its digest, so the
/// order they are written in does not matter; two writers of the same
/// content each rename a whole copy into place: `write_cache_file`).
const KEEPERS: usize = 2;

/// The keeper threads and the way to them (each batch to the next one).
pub(super) struct Keeper {
    tx: Vec<mpsc::SyncSender<Batch>>,
    threads: Vec<JoinHandle<Result<Vec<Linked>>>>,
    /// The thread the next batch goes to.
    next: usize,
    /// Copies not sent yet, and their bytes.
    batch: Batch,
    bytes: usize,
}

impl Keeper {
    /// Starts the keepers writing into `refs`.
    pub(super) fn start(refs: References) -> Result<Self> {
        let mut keeper = Keeper {
            tx: Vec::new(),
            threads: Vec::new(),
            next: 0,
            batch: Vec::new(),
            bytes: 0,
        };
        for i in 0..KEEPERS {
            let (tx, rx) = mpsc::sync_channel::<Batch>(QUEUE / KEEPERS);
            let refs = refs.clone();
            let thread = std::thread::Builder::new()
                .name(format!("ferry-keeper-{i}"))
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
            keeper.tx.push(tx);
            keeper.threads.push(thread);
        }
        Ok(keeper)
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
        let sent = match self.tx.is_empty() {
            true => None,
            false => {
                self.next = (self.next + 1) % self.tx.len();
                Some(self.tx[self.next].send(batch))
            }
        };
        match sent {
            Some(Ok(())) => Ok(()),
            // A keeper stopped: its own error says why.
            _ => Err(self
                .finish()
                .err()
                .unwrap_or_else(|| anyhow!("the thread that keeps object copies stopped"))),
        }
    }

    /// Waits until every queued copy is written; the links made.
    pub(super) fn finish(&mut self) -> Result<Vec<Linked>> {
        if !self.tx.is_empty() {
            self.send()?;
        }
        self.tx.clear();
        let mut linked = Vec::new();
        let mut failed = None;
        for thread in self.threads.drain(..) {
            match thread.join() {
                Ok(Ok(made)) => linked.extend(made),
                Ok(Err(e)) => failed = failed.or(Some(e)),
                Err(_) => {
                    failed = failed.or(Some(anyhow!(
                        "the thread that keeps object copies panicked"
                    )))
                }
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(linked),
        }
    }
}

/// The reads the digest thread makes of the pieces (the copy's writes).
const BLOCK: usize = 1 << 20;

/// The pieces (chunks) an object streams in, waiting for its digest
/// thread, at most: with chunks of at most 256 KiB, 16 MiB (about 4 MiB
/// at the average chunk).
const PIECES_QUEUED: usize = 64;

/// What the scan thread tells a digest thread.
enum Piece {
    /// The next bytes of the object.
    Block(Arc<Vec<u8>>),
    /// The object is complete.
    End,
}

/// The SHA-256 and the copy (`References::tee`) of an object streaming
/// through the chunker, made on a thread of their own while the scan thread
/// cuts it: the scan thread shares each chunk it cuts ([`Digest::give`]),
/// the same bytes it sends to the volumes, so no block is copied for it.
pub(super) struct Digest {
    tx: Option<mpsc::SyncSender<Piece>>,
    thread: Option<JoinHandle<Result<Option<Sha256>>>>,
}

impl Digest {
    /// Starts the digest thread of one object, keeping its copy in `refs`
    /// unless it is over `limit` bytes.
    pub(super) fn start(refs: References, limit: u64) -> Result<Self> {
        let (tx, rx) = mpsc::sync_channel::<Piece>(PIECES_QUEUED);
        let thread = std::thread::Builder::new()
            .name("ferry-digest".into())
            .spawn(move || -> Result<Option<Sha256>> {
                let ended = Rc::new(Cell::new(false));
                let blocks = Blocks {
                    rx,
                    block: Arc::default(),
                    at: 0,
                    ended: ended.clone(),
                    closed: false,
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

    /// Gives the digest thread the object's next bytes (a chunk just cut).
    pub(super) fn give(&self, piece: Arc<Vec<u8>>) -> std::io::Result<()> {
        if piece.is_empty() {
            return Ok(());
        }
        self.tx
            .as_ref()
            .expect("not finished")
            .send(Piece::Block(piece))
            .map_err(|_| std::io::Error::other("the thread that digests objects stopped"))
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

/// The digest thread's side: the pieces as one stream, ending at
/// [`Piece::End`] (`ended` set) or when the scan thread hangs up
/// (`closed`). A read gathers pieces until `out` is full, so the copy is
/// written in large writes.
struct Blocks {
    rx: mpsc::Receiver<Piece>,
    block: Arc<Vec<u8>>,
    at: usize,
    ended: Rc<Cell<bool>>,
    closed: bool,
}

impl Read for Blocks {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let mut n = 0;
        while n < out.len() {
            if self.at == self.block.len() {
                if self.ended.get() || self.closed {
                    break;
                }
                match self.rx.recv() {
                    Ok(Piece::Block(b)) => {
                        self.block = b;
                        self.at = 0;
                    }
                    Ok(Piece::End) => {
                        self.ended.set(true);
                        break;
                    }
                    Err(_) => {
                        self.closed = true;
                        break;
                    }
                }
                continue;
            }
            let k = (out.len() - n).min(self.block.len() - self.at);
            out[n..n + k].copy_from_slice(&self.block[self.at..self.at + k]);
            self.at += k;
            n += k;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::noise;

    /// Gives `data` to a digest thread in pieces of `step` bytes; the bytes given.
    fn stream(d: &Digest, data: &[u8], step: usize) -> Vec<u8> {
        let mut got = Vec::new();
        for piece in data.chunks(step) {
            d.give(Arc::new(piece.to_vec())).unwrap();
            got.extend_from_slice(piece);
        }
        got
    }

    #[test]
    fn a_digest_thread_keeps_the_copy_of_a_whole_object_only() {
        let dir = tempfile::tempdir().unwrap();
        let refs = References::new(dir.path().join("objects"));
        let data = noise(3 * BLOCK + 12_345, 5);
        let d = Digest::start(refs.clone(), u64::MAX).unwrap();
        assert_eq!(stream(&d, &data, 70_000), data);
        let sha = Sha256::of(&data);
        assert_eq!(d.finish(true).unwrap(), Some(sha));
        assert_eq!(refs.get(&sha).unwrap(), Some(data.clone()));

        // Stopped short: no digest, no copy.
        let d = Digest::start(refs.clone(), u64::MAX).unwrap();
        let half = &data[..BLOCK + 1];
        assert_eq!(stream(&d, half, 4096), half);
        assert_eq!(d.finish(false).unwrap(), None);
        assert_eq!(refs.get(&Sha256::of(half)).unwrap(), None);

        // Over the limit: the digest, no copy.
        let d = Digest::start(refs.clone(), BLOCK as u64).unwrap();
        assert_eq!(stream(&d, half, BLOCK), half);
        assert_eq!(d.finish(true).unwrap(), Some(Sha256::of(half)));
        assert_eq!(refs.get(&Sha256::of(half)).unwrap(), None);

        // An empty object.
        let d = Digest::start(refs.clone(), u64::MAX).unwrap();
        assert!(stream(&d, b"", 10).is_empty());
        assert_eq!(d.finish(true).unwrap(), Some(Sha256::of(b"")));
    }

    #[test]
    fn a_digest_thread_that_cannot_keep_its_copy_says_why() {
        let dir = tempfile::tempdir().unwrap();
        // The copies' directory is a file: no copy can be made there.
        let blocked = dir.path().join("objects");
        std::fs::write(&blocked, b"not a directory").unwrap();
        let e = Digest::start(References::new(blocked.clone()), u64::MAX)
            .and_then(|d| {
                let given = noise(2 * BLOCK, 1)
                    .chunks(256 << 10)
                    .try_for_each(|p| d.give(Arc::new(p.to_vec())));
                let finished = d.finish(given.is_ok());
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
