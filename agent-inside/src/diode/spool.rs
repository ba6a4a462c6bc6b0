//! The spool on disk: carries out the receiver's events on partial bundle
//! files, persists and restores progress.

use crate::policy::Quota;
use anyhow::{Context, Result};
use ferry_agent_common::{fsx, media};
use ferry_protocol::diode::{Abandon, BundleId, BundleProgress, Event, Receiver};
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const PROGRESS_FILE: &str = "progress.json";

/// A spool operation failed for one bundle.
pub(super) struct Failed {
    pub(super) bundle: BundleId,
    pub(super) error: anyhow::Error,
    /// The same bundle failed for want of room less than [`NO_ROOM_LOG_EVERY`]
    /// ago: drop it without another log line (each of its packets would
    /// otherwise log one).
    pub(super) quiet: bool,
}

/// How often a bundle that keeps not fitting the spool is logged.
const NO_ROOM_LOG_EVERY: Duration = Duration::from_secs(60);

/// The spool directory and the partial files open in it.
pub(super) struct Spool {
    dir: PathBuf,
    open: HashMap<(BundleId, u16), File>,
    /// Its quota and free-space reserve (`[spool]`).
    quota: Quota,
    /// Bytes in the spool as last counted, and when.
    counted: Option<(Instant, u64)>,
    /// Bundles that did not fit, and when that was last logged.
    no_room: HashMap<BundleId, Instant>,
}

fn file_name(index: u16) -> String {
    if index == 0 {
        media::MANIFEST_FILE.to_string()
    } else {
        ferry_protocol::volume::file_name(u32::from(index) - 1)
    }
}

impl Spool {
    pub(super) fn new(dir: PathBuf, quota: Quota) -> Self {
        Spool {
            dir,
            open: HashMap::new(),
            quota,
            counted: None,
            no_room: HashMap::new(),
        }
    }

    /// Checks that a file of `size` bytes (a new bundle when `new_bundle`)
    /// fits the spool's quota and leaves the free-space reserve. The spool
    /// is counted again at most once a second; sizes started since are added.
    fn check_room(&mut self, size: u64, new_bundle: bool) -> Result<()> {
        let used = match self.counted {
            Some((at, n)) if at.elapsed() < Duration::from_secs(1) => n,
            _ => crate::policy::dir_bytes(&self.dir),
        };
        let count = std::fs::read_dir(&self.dir)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| {
                        let n = e.file_name().to_string_lossy().into_owned();
                        (n.starts_with(".partial-") || !n.starts_with('.'))
                            && e.file_type().is_ok_and(|t| t.is_dir())
                    })
                    .count() as u64
            })
            .unwrap_or(0);
        let free = crate::apply::available_space(&self.dir)?;
        self.quota.check(
            "spool",
            self.dir.clone(),
            (used, count),
            size,
            new_bundle,
            Some(free),
        )?;
        self.counted = Some((Instant::now(), used + size));
        Ok(())
    }

    fn partial_dir(&self, id: BundleId) -> PathBuf {
        self.dir.join(format!(
            ".partial-{}",
            media::bundle_dir_name(id.stream, id.sequence)
        ))
    }

    /// Carries out one event; a completed bundle comes back with its final
    /// directory and report.
    pub(super) fn apply(
        &mut self,
        ev: Event,
    ) -> Result<Option<(BundleId, PathBuf, serde_json::Value)>, Failed> {
        let bundle = match &ev {
            Event::FileStarted { bundle, .. }
            | Event::Write { bundle, .. }
            | Event::Complete { bundle, .. }
            | Event::Abandoned { bundle, .. } => *bundle,
        };
        let failed = |error| Failed {
            bundle,
            error,
            quiet: false,
        };
        match ev {
            Event::FileStarted { file, size, .. } => {
                if let Err(error) = self.start_file(bundle, file, size) {
                    return Err(self.no_room_failure(bundle, error));
                }
            }
            Event::Write {
                file, offset, data, ..
            } => {
                let path = self.partial_dir(bundle).join(file_name(file));
                let f = self.file(bundle, file).map_err(failed)?;
                f.write_all_at(&data, offset)
                    .with_context(|| format!("cannot write to {}", path.display()))
                    .map_err(failed)?;
            }
            Event::Complete { report, .. } => {
                let dest = self.finish(bundle, report.loss()).map_err(failed)?;
                let report = serde_json::to_value(report).unwrap_or_default();
                return Ok(Some((bundle, dest, report)));
            }
            Event::Abandoned { why, .. } => {
                let reason = match why {
                    Abandon::Expired => "no segment of it was rebuilt for the expiry time",
                    Abandon::Evicted => "it rebuilt nothing yet and gave way (its slot was needed, or its packets announced another geometry)",
                    Abandon::AlreadyApplied => "it is applied already",
                };
                eprintln!(
                    "ferry-in: dropping partial bundle {}: {reason}",
                    bundle.sequence
                );
                self.remove_partial(bundle);
            }
        }
        Ok(None)
    }

    /// The failure of a file that did not fit (or could not be made), quiet
    /// when the same bundle was logged for that recently.
    fn no_room_failure(&mut self, bundle: BundleId, error: anyhow::Error) -> Failed {
        let now = Instant::now();
        let quiet = self
            .no_room
            .get(&bundle)
            .is_some_and(|t| now.duration_since(*t) < NO_ROOM_LOG_EVERY);
        if !quiet {
            self.no_room
                .retain(|_, t| now.duration_since(*t) < NO_ROOM_LOG_EVERY);
            self.no_room.insert(bundle, now);
        }
        Failed {
            bundle,
            error,
            quiet,
        }
    }

    fn start_file(&mut self, bundle: BundleId, file: u16, size: u64) -> Result<()> {
        let dir = self.partial_dir(bundle);
        self.check_room(size, !dir.is_dir())?;
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let f = self.file(bundle, file)?;
        f.set_len(size)
            .with_context(|| format!("cannot size {} in {}", file_name(file), dir.display()))
    }

    fn file(&mut self, bundle: BundleId, file: u16) -> Result<&File> {
        let path = self.partial_dir(bundle).join(file_name(file));
        let f = match self.open.entry((bundle, file)) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(&path)
                    .with_context(|| format!("cannot open {}", path.display()))?,
            ),
        };
        Ok(f)
    }

    fn close(&mut self, bundle: BundleId) -> Vec<File> {
        let keys: Vec<_> = self
            .open
            .keys()
            .filter(|k| k.0 == bundle)
            .copied()
            .collect();
        keys.iter().filter_map(|k| self.open.remove(k)).collect()
    }

    /// Syncs a complete bundle and renames it to its final name.
    fn finish(&mut self, bundle: BundleId, loss: Option<f64>) -> Result<PathBuf> {
        for f in self.close(bundle) {
            f.sync_all().context("cannot sync the spool")?;
        }
        let dir = self.partial_dir(bundle);
        std::fs::remove_file(dir.join(PROGRESS_FILE)).ok();
        let dest = self
            .dir
            .join(media::bundle_dir_name(bundle.stream, bundle.sequence));
        fsx::remove_dir_if_exists(&dest)?;
        std::fs::rename(&dir, &dest)
            .with_context(|| format!("cannot rename into {}", dest.display()))?;
        fsx::sync_dir(&self.dir)?;
        let loss = match loss {
            Some(l) => format!(
                " ({:.2}% of its packets were lost on the way; the sender's --loss sizes repair to such a figure)",
                l * 100.0
            ),
            None => String::new(),
        };
        eprintln!(
            "ferry-in: received bundle {} completely into {}{loss}",
            bundle.sequence,
            dest.display()
        );
        Ok(dest)
    }

    /// Deletes a partial bundle's files.
    pub(super) fn remove_partial(&mut self, bundle: BundleId) {
        self.close(bundle);
        let _ = fsx::remove_dir_if_exists(&self.partial_dir(bundle));
    }

    /// Writes a bundle's `progress.json` (atomically).
    pub(super) fn save_progress(&self, p: &BundleProgress) -> Result<()> {
        let Some(stream) = ferry_protocol::id::StreamId::from_hex(&p.stream) else {
            return Ok(());
        };
        let bundle = BundleId {
            stream,
            sequence: p.sequence,
        };
        let dir = self.partial_dir(bundle);
        if !dir.is_dir() {
            return Ok(());
        }
        // The segments it lists are on disk first (so a power cut never
        // leaves progress claiming what was lost), and the sync when the
        // bundle is complete has only the last second's writes left.
        for ((b, _), f) in &self.open {
            if *b == bundle {
                f.sync_data().context("cannot sync the spool")?;
            }
        }
        fsx::write_atomic(&dir.join(PROGRESS_FILE), &serde_json::to_vec(p)?)
    }

    /// Hands partial bundles a previous run left to the receiver; drops the
    /// ones it refuses (expired, over limits, unreadable progress).
    pub(super) fn restore(&mut self, rx: &mut Receiver, now_ms: u64) -> Result<()> {
        let entries = std::fs::read_dir(&self.dir)
            .with_context(|| format!("cannot read spool {}", self.dir.display()))?;
        for e in entries {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with(".partial-") {
                continue;
            }
            let path = e.path();
            let progress: Option<BundleProgress> = std::fs::read(path.join(PROGRESS_FILE))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            let refused = match progress {
                None => "nothing finished was recorded".to_string(),
                Some(p) => match rx.restore(now_ms, &p) {
                    Ok(_) => {
                        eprintln!(
                            "ferry-in: resuming bundle {} from {}",
                            p.sequence,
                            path.display()
                        );
                        continue;
                    }
                    Err(why) => why.to_string(),
                },
            };
            eprintln!(
                "ferry-in: starting over the partial bundle in {}: {refused}",
                path.display()
            );
            fsx::remove_dir_if_exists(&path)?;
        }
        Ok(())
    }

    /// Complete bundle directories an earlier run left unimported.
    pub(super) fn complete_bundles(&self) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.dir)
            .with_context(|| format!("cannot read spool {}", self.dir.display()))?
        {
            let e = e?;
            let p = e.path();
            if !e.file_name().to_string_lossy().starts_with('.')
                && p.join(media::MANIFEST_FILE).is_file()
            {
                out.push(p);
            }
        }
        out.sort();
        Ok(out)
    }
}
