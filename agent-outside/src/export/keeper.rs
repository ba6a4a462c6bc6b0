//! The copies of small new objects (the bases of the next export's
//! patches, `crate::delta::References`) written on a thread of their own.
//!
//! Writing a copy costs little CPU but a file creation, which on a busy
//! ext4 costs more than chunking and hashing a small object: measured on the
//! 17,000 files of `tests/bench/run.sh`, creating the copies took more CPU
//! than the rest of the scan. Here the scan thread hands the object's bytes
//! over and goes on chunking while the keeper writes.

use crate::delta::References;
use anyhow::{anyhow, Context, Result};
use ferry_protocol::id::Sha256;
use std::sync::mpsc;
use std::thread::JoinHandle;

/// The largest object copied through the keeper; a larger one is copied by
/// the scan thread as it streams through the chunker (`References::tee`).
pub(super) const KEEP_AHEAD: u64 = 1 << 20;

/// Copies waiting to be written, at most: with [`KEEP_AHEAD`], 16 MiB.
const QUEUE: usize = 16;

/// The keeper thread and the way to it.
pub(super) struct Keeper {
    tx: Option<mpsc::SyncSender<(Sha256, Vec<u8>)>>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl Keeper {
    /// Starts a keeper writing into `refs`.
    pub(super) fn start(refs: References) -> Result<Self> {
        let (tx, rx) = mpsc::sync_channel::<(Sha256, Vec<u8>)>(QUEUE);
        let thread = std::thread::Builder::new()
            .name("ferry-keeper".into())
            .spawn(move || -> Result<()> {
                for (sha, data) in rx {
                    refs.put(&sha, &data)?;
                }
                Ok(())
            })
            .context("cannot start the thread that keeps object copies")?;
        Ok(Keeper {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Queues the copy of object `sha`, whose bytes are `data`.
    pub(super) fn keep(&mut self, sha: Sha256, data: Vec<u8>) -> Result<()> {
        let sent = self.tx.as_ref().map(|tx| tx.send((sha, data)));
        match sent {
            Some(Ok(())) => Ok(()),
            // The keeper stopped: its own error says why.
            _ => Err(self
                .finish()
                .err()
                .unwrap_or_else(|| anyhow!("the thread that keeps object copies stopped"))),
        }
    }

    /// Waits until every queued copy is written.
    pub(super) fn finish(&mut self) -> Result<()> {
        drop(self.tx.take());
        match self.thread.take().map(JoinHandle::join) {
            None => Ok(()),
            Some(Ok(written)) => written,
            Some(Err(_)) => Err(anyhow!("the thread that keeps object copies panicked")),
        }
    }
}
