//! `ferry-in watch DIR`: imports bundles as they appear in DIR (a stick
//! mounted there or just under it), then writes a receipt (docs/runbook.md,
//! "Importing automatically").
//!
//! DIR is polled every `--interval`. Its media directories are DIR itself
//! and each direct subdirectory that is not a bundle (a stick mounted at
//! `DIR/<label>`). A media directory's bundles are fingerprinted (every
//! file's path, size and modification time); once the fingerprint is the
//! same on two polls in a row (a copy into it has stopped) and differs
//! from the one imported last, the directory is imported as `ferry-in
//! import` would, then a receipt is written into `--receipts`, or into the
//! media directory itself so that it leaves on the stick. A refused
//! bundle or a receipt that cannot be written is logged on stderr and
//! watching goes on; that directory is imported again only when its bundles
//! change. An import that fails as a whole (the database held by another
//! `ferry-in` command, an I/O error) is tried again after a delay that
//! doubles from 2 s to 5 min, [`MAX_ATTEMPTS`] times. `--once` imports what
//! is there now and exits (for a systemd path unit).

use crate::apply::ApplyOptions;
use crate::layout::Layout;
use anyhow::{Context, Result};
use ferry_agent_common::media;
use ferry_protocol::limits::ReceiverLimits;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, UNIX_EPOCH};

/// Tries of an import that fails as a whole before waiting for a change.
pub const MAX_ATTEMPTS: u32 = 8;
/// The delay before the first retry; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(2);
/// The longest delay between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// The longest `--interval`.
const MAX_INTERVAL: f64 = 3600.0;

/// `ferry-in watch`'s options.
#[derive(clap::Args, Debug)]
pub struct WatchArgs {
    /// The directory a stick is mounted at (or under).
    pub dir: PathBuf,
    /// Where receipts go (default: the media directory the bundles came
    /// from, so the receipt leaves on the stick).
    #[arg(long, value_name = "DIR")]
    pub receipts: Option<PathBuf>,
    /// Seconds between two looks at DIR.
    #[arg(long, default_value_t = 2.0)]
    pub interval: f64,
    /// Import what is there now, write the receipt, and exit (1 if a bundle
    /// failed).
    #[arg(long)]
    pub once: bool,
    /// Do not refuse bundles past their expiry time.
    #[arg(long)]
    pub allow_expired: bool,
}

/// What a media directory's bundles look like now: every file's path,
/// size and modification time (nanoseconds).
type Fingerprint = Vec<(PathBuf, u64, u128)>;

/// The media directories under `dir`: itself, and each direct
/// subdirectory that is not a bundle.
fn media_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut subs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            p.is_dir()
                && !name.is_some_and(|n| n.starts_with(media::BUNDLE_DIR_PREFIX))
                && !p.join(media::MANIFEST_FILE).exists()
        })
        .collect();
    subs.sort();
    out.extend(subs);
    out
}

/// The fingerprint of the bundles in `media`; `None` when it holds none.
fn fingerprint(media_dir: &Path) -> Option<Fingerprint> {
    let bundles = media::find_bundles(media_dir).ok()?;
    if bundles.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for b in bundles {
        let Ok(entries) = std::fs::read_dir(&b) else {
            continue;
        };
        for e in entries.filter_map(Result::ok) {
            let Ok(m) = e.metadata() else { continue };
            let mtime = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            out.push((e.path(), m.len(), mtime));
        }
    }
    out.sort();
    Some(out)
}

/// What one look at the media directories decides.
#[derive(Default)]
struct Watcher {
    /// The fingerprint seen at the previous look, per media directory.
    seen: BTreeMap<PathBuf, Fingerprint>,
    /// The fingerprint imported last, per media directory.
    done: BTreeMap<PathBuf, Fingerprint>,
    /// Imports that failed as a whole: tries so far, and when to try again.
    retry: BTreeMap<PathBuf, (u32, Instant)>,
}

/// How one import of a media directory went.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Imported; whether every bundle was accepted.
    Imported(bool),
    /// The import failed as a whole (the store could not be worked on).
    Failed,
}

impl Watcher {
    /// The media directories to import now: those whose bundles are
    /// unchanged since the last look (or, `now`, at once) and not yet
    /// imported as they are.
    fn ready(&mut self, dir: &Path, now: bool) -> Vec<PathBuf> {
        let mut ready = Vec::new();
        let mut seen = BTreeMap::new();
        for m in media_dirs(dir) {
            let Some(fp) = fingerprint(&m) else { continue };
            let stable = now || self.seen.get(&m) == Some(&fp);
            let waiting = self
                .retry
                .get(&m)
                .is_some_and(|(_, at)| Instant::now() < *at);
            if stable && !waiting && self.done.get(&m) != Some(&fp) {
                self.done.insert(m.clone(), fp.clone());
                ready.push(m.clone());
            }
            seen.insert(m, fp);
        }
        // A stick taken out and put back is imported again.
        self.done.retain(|m, _| seen.contains_key(m));
        self.retry.retain(|m, _| seen.contains_key(m));
        self.seen = seen;
        ready
    }

    /// Takes in how the import of `m` went: a failed one is tried again
    /// later, at most [`MAX_ATTEMPTS`] times.
    fn imported(&mut self, m: &Path, outcome: &Outcome) {
        if *outcome != Outcome::Failed {
            self.retry.remove(m);
            return;
        }
        let tries = self.retry.get(m).map_or(0, |(n, _)| *n) + 1;
        if tries >= MAX_ATTEMPTS {
            eprintln!(
                "ferry-in watch: {}: gave up after {tries} tries; it is imported again when its bundles change",
                m.display()
            );
            self.retry.remove(m);
            return;
        }
        let delay = FIRST_BACKOFF
            .saturating_mul(1u32 << (tries - 1).min(16))
            .min(MAX_BACKOFF);
        eprintln!(
            "ferry-in watch: {}: trying again in {}s",
            m.display(),
            delay.as_secs()
        );
        self.done.remove(m);
        self.retry
            .insert(m.to_path_buf(), (tries, Instant::now() + delay));
    }
}

/// Runs `ferry-in watch`; returns the exit code (`--once`: 1 if a bundle
/// failed; otherwise it runs until killed).
pub fn run(
    layout: &Layout,
    limits: &ReceiverLimits,
    opts: ApplyOptions,
    after: &crate::after_import::AfterImport,
    args: &WatchArgs,
) -> Result<i32> {
    anyhow::ensure!(
        args.interval > 0.0 && args.interval <= MAX_INTERVAL,
        "--interval must be a number of seconds above 0 and at most {MAX_INTERVAL}, not {}",
        args.interval
    );
    std::fs::metadata(&args.dir).with_context(|| format!("cannot watch {}", args.dir.display()))?;
    let mut w = Watcher::default();
    if args.once {
        let mut ok = true;
        for m in w.ready(&args.dir, true) {
            ok &= import_one(layout, &m, limits, opts, after, args) == Outcome::Imported(true);
        }
        return Ok(if ok { 0 } else { 1 });
    }
    eprintln!(
        "ferry-in watch: watching {} every {}s",
        args.dir.display(),
        args.interval
    );
    loop {
        for m in w.ready(&args.dir, false) {
            let outcome = import_one(layout, &m, limits, opts, after, args);
            w.imported(&m, &outcome);
        }
        std::thread::sleep(Duration::from_secs_f64(args.interval));
    }
}

/// Imports `media_dir`, logs the outcome, writes the receipt when anything
/// was applied or held.
fn import_one(
    layout: &Layout,
    media_dir: &Path,
    limits: &ReceiverLimits,
    opts: ApplyOptions,
    after: &crate::after_import::AfterImport,
    args: &WatchArgs,
) -> Outcome {
    let at = media_dir.display();
    eprintln!("ferry-in watch: importing from {at}");
    let report = match crate::import::import(layout, media_dir, limits, opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "ferry-in watch: {at}: import failed: {}",
                ferry_agent_common::one_line(&e)
            );
            return Outcome::Failed;
        }
    };
    for f in &report.failed {
        eprintln!("ferry-in watch: {at}: refused: {f}");
    }
    eprintln!(
        "ferry-in watch: {at}: applied {:?}, held {:?}, already applied {:?}, failed {}",
        report.applied,
        report.held,
        report.skipped,
        report.failed.len()
    );
    after.run(layout, report.applied.len());
    if !report.applied.is_empty() || !report.held.is_empty() {
        let dir = args.receipts.as_deref().unwrap_or(media_dir);
        match crate::receipt::write(layout, dir, ferry_agent_common::now_unix()) {
            Ok((path, _)) => eprintln!("ferry-in watch: receipt {}", path.display()),
            Err(e) => eprintln!(
                "ferry-in watch: cannot write the receipt into {}: {}",
                dir.display(),
                ferry_agent_common::one_line(&e)
            ),
        }
    }
    Outcome::Imported(report.ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_media_directory_is_ready_once_its_bundles_stop_changing() {
        let root = std::env::temp_dir().join(format!("ferry-watch-{}", std::process::id()));
        let stick = root.join("stick");
        let bundle = stick.join("bundle-0011aabb-00000001");
        std::fs::create_dir_all(&bundle).unwrap();
        let mut w = Watcher::default();
        assert!(w.ready(&root, false).is_empty(), "no bundle yet");
        std::fs::write(bundle.join(media::MANIFEST_FILE), b"m").unwrap();
        assert!(w.ready(&root, false).is_empty(), "just appeared");
        assert_eq!(w.ready(&root, false), vec![stick.clone()]);
        assert!(w.ready(&root, false).is_empty(), "imported already");
        std::fs::write(bundle.join("vol-0001.ferry"), b"more").unwrap();
        assert!(w.ready(&root, false).is_empty(), "still changing");
        assert_eq!(w.ready(&root, false), vec![stick.clone()]);
        // A failed import is tried again once its delay has passed.
        w.imported(&stick, &Outcome::Failed);
        assert!(w.ready(&root, false).is_empty(), "waiting");
        w.retry.insert(stick.clone(), (1, Instant::now()));
        assert_eq!(w.ready(&root, false), vec![stick.clone()]);
        w.imported(&stick, &Outcome::Imported(false));
        assert!(w.retry.is_empty() && w.ready(&root, false).is_empty());
        std::fs::remove_dir_all(&stick).unwrap();
        assert!(w.ready(&root, false).is_empty());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
