//! Importing bundles the diode receiver completed, on a thread of its own,
//! retrying while the store is busy.
//!
//! A failed import is one of two things. Either the store could not be
//! opened or worked on (another `ferry-in` command holds the database, a
//! passing I/O error): the bundle stays in the spool and the import is tried
//! again with a growing delay, a bounded number of times. Or the bundle was
//! refused (bad signature, another stream, a forgery): it is moved aside to
//! `SPOOL/.refused-<name>` and the receiver forgets it, so the next carousel
//! pass is received afresh.

use crate::apply::ApplyOptions;
use crate::db::Db;
use crate::layout::Layout;
use ferry_agent_common::fsx;
use ferry_protocol::diode::BundleId;
use ferry_protocol::id::StreamId;
use ferry_protocol::limits::ReceiverLimits;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Import attempts before a bundle is left in the spool for the operator.
pub(super) const MAX_ATTEMPTS: u32 = 10;
/// First delay between attempts; it doubles up to [`MAX_BACKOFF`].
pub(super) const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest delay between attempts.
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Refused bundles kept aside for inspection (older ones are deleted).
const KEEP_REFUSED: usize = 4;

/// What became of an import, for the receiving loop.
pub(super) enum Outcome {
    /// The store now stands at this stream and sequence, after this import
    /// applied the given number of bundles (0 when it was held for a gap).
    Applied(Option<StreamId>, u64, u64),
    /// This bundle was refused: receive it again.
    Refused(BundleId),
}

/// What the importer thread needs.
pub(super) struct Importer {
    /// State directory.
    pub layout: Layout,
    /// Spool directory (refused bundles go aside in it).
    pub spool: PathBuf,
    /// Limits for imports.
    pub limits: ReceiverLimits,
    /// Apply options.
    pub apply: ApplyOptions,
    /// What follows an import that applied something (`[push]`,
    /// `[publish]` in the config).
    pub after: crate::after_import::AfterImport,
    /// Import results, for the status file.
    pub log: Arc<Mutex<Vec<serde_json::Value>>>,
}

struct Pending {
    id: Option<BundleId>,
    dir: PathBuf,
    attempts: u32,
    due: Instant,
}

fn backoff(attempts: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1u32 << attempts.saturating_sub(1).min(16))
        .min(MAX_BACKOFF)
}

impl Importer {
    /// Imports what arrives on `rx` until it closes and nothing is pending.
    pub(super) fn run(self, rx: Receiver<(Option<BundleId>, PathBuf)>, out: Sender<Outcome>) {
        let mut queue: Vec<Pending> = Vec::new();
        let mut closed = false;
        loop {
            let now = Instant::now();
            let wait = queue
                .iter()
                .map(|p| p.due.saturating_duration_since(now))
                .min()
                .unwrap_or(Duration::from_secs(3600));
            if closed {
                if queue.is_empty() {
                    return;
                }
                std::thread::sleep(wait);
            } else {
                match rx.recv_timeout(wait) {
                    Ok((id, dir)) => queue.push(Pending {
                        id,
                        dir,
                        attempts: 0,
                        due: Instant::now(),
                    }),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => closed = true,
                }
            }
            let now = Instant::now();
            let (due, later): (Vec<_>, Vec<_>) = queue.drain(..).partition(|p| p.due <= now);
            queue = later;
            for p in due {
                if let Some(retry) = self.attempt(p, &out) {
                    queue.push(retry);
                }
            }
        }
    }

    /// One import attempt; the bundle back when it is to be tried again.
    fn attempt(&self, mut p: Pending, out: &Sender<Outcome>) -> Option<Pending> {
        let dir_text = p.dir.display().to_string();
        let res = crate::import::import(&self.layout, &p.dir, &self.limits, self.apply);
        p.attempts += 1;
        let entry = match res {
            Ok(r) if r.ok() => {
                self.after.run(&self.layout, r.applied.len());
                let _ = fsx::remove_dir_if_exists(&p.dir);
                if let Ok(a) = Db::open(&self.layout.db()).and_then(|db| db.applied()) {
                    let n = r.applied.len() as u64;
                    let _ = out.send(Outcome::Applied(a.stream, a.sequence, n));
                }
                serde_json::json!({"dir": dir_text, "applied": r.applied, "held": r.held})
            }
            Ok(r) => {
                let aside = self.set_aside(&p.dir);
                eprintln!(
                    "ferry-in: the bundle received in {dir_text} was refused ({}); {}; a later carousel pass will be received afresh",
                    r.failed.join("; "),
                    match &aside {
                        Some(a) => format!("moved aside to {}", a.display()),
                        None => "deleted".to_string(),
                    }
                );
                if let Some(id) = p.id {
                    let _ = out.send(Outcome::Refused(id));
                }
                serde_json::json!({"dir": dir_text, "failed": r.failed, "refused": true})
            }
            Err(e) if p.attempts < MAX_ATTEMPTS => {
                let delay = backoff(p.attempts);
                eprintln!(
                    "ferry-in: import of {dir_text} failed (attempt {} of {MAX_ATTEMPTS}): {}; retrying in {:.1}s",
                    p.attempts,
                    ferry_agent_common::one_line(&e),
                    delay.as_secs_f64()
                );
                p.due = Instant::now() + delay;
                return Some(p);
            }
            Err(e) => {
                let msg = ferry_agent_common::one_line(&e);
                eprintln!(
                    "ferry-in: import of {dir_text} failed {MAX_ATTEMPTS} times, giving up: {msg}; the bundle stays there: import it with `ferry-in import {dir_text}`"
                );
                serde_json::json!({"dir": dir_text, "failed": [msg], "attempts": p.attempts})
            }
        };
        self.log.lock().expect("import log").push(entry);
        None
    }

    /// Moves a refused bundle to `SPOOL/.refused-<name>`, keeping only the
    /// few most recent; deletes it when that fails.
    fn set_aside(&self, dir: &Path) -> Option<PathBuf> {
        let name = dir.file_name()?.to_string_lossy().into_owned();
        let aside = self.spool.join(format!(".refused-{name}"));
        let moved =
            fsx::remove_dir_if_exists(&aside).is_ok() && std::fs::rename(dir, &aside).is_ok();
        if !moved {
            let _ = fsx::remove_dir_if_exists(dir);
            return None;
        }
        let mut refused: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&self.spool)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".refused-"))
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        refused.sort();
        let excess = refused.len().saturating_sub(KEEP_REFUSED);
        for (_, old) in refused.into_iter().take(excess) {
            let _ = fsx::remove_dir_if_exists(&old);
        }
        Some(aside)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), FIRST_BACKOFF);
        assert_eq!(backoff(2), FIRST_BACKOFF * 2);
        assert_eq!(backoff(30), MAX_BACKOFF);
        let total: Duration = (1..MAX_ATTEMPTS).map(backoff).sum();
        assert!(total < Duration::from_secs(300));
    }
}
