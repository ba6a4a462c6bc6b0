//! `import` and `verify`: find the bundles on media (and those held from
//! earlier), decide for each what it is, and apply what can be applied, in
//! sequence order.
//!
//! For each bundle found, after its manifest verifies:
//! - sequence already applied, same manifest hash: skipped, "already applied";
//! - sequence already applied, different hash: refused (a fork or a forgery);
//! - the next sequence: applied (or, for `verify`, fully checked);
//! - beyond the next: held in `STATE/held/` and reported until the gap fills.

use crate::apply::{self, ApplyOptions};
use crate::bundle::{self, Bundle};
use crate::db::{Applied, Db, Held};
use crate::layout::Layout;
use anyhow::{bail, Result};
use ferry_agent_common::media;
use ferry_agent_common::units::human_bytes;
use ferry_protocol::catalog::Catalog;
use ferry_protocol::limits::ReceiverLimits;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// What happened to each bundle.
#[derive(Default, Debug)]
pub struct Report {
    /// Sequences applied.
    pub applied: Vec<u64>,
    /// Sequences held (waiting for a gap).
    pub held: Vec<u64>,
    /// Sequences skipped as already applied.
    pub skipped: Vec<u64>,
    /// Bundles that failed, with the error.
    pub failed: Vec<String>,
}

impl Report {
    /// Whether nothing failed.
    pub fn ok(&self) -> bool {
        self.failed.is_empty()
    }
}

fn fail(report: &mut Report, msg: String) {
    eprintln!("ferry-in: error: {msg}");
    report.failed.push(msg);
}

/// Opens every bundle under `media` and in the held area; failures go to the report.
fn discover(
    layout: &Layout,
    db: &Db,
    media_dir: Option<&Path>,
    limits: &ReceiverLimits,
    report: &mut Report,
) -> Result<Vec<Bundle>> {
    let trusted = db.trusted()?;
    if trusted.is_empty() {
        bail!("no trusted signing key yet; add the outside's public key with `ferry-in trust add signing.pub`");
    }
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(m) = media_dir {
        dirs.extend(media::find_bundles(m)?);
        if dirs.is_empty() {
            eprintln!("ferry-in: no bundle found in {}", m.display());
        }
    }
    if layout.held().is_dir() {
        dirs.extend(media::find_bundles(&layout.held())?);
    }
    let mut out: Vec<Bundle> = Vec::new();
    let mut seen = HashSet::new();
    for d in dirs {
        match bundle::open(&d, &trusted, limits) {
            Ok(b) => {
                if seen.insert(b.verified.hash) {
                    out.push(b);
                }
            }
            Err(e) => fail(
                report,
                format!(
                    "bundle {}: {}",
                    d.display(),
                    ferry_agent_common::one_line(&e)
                ),
            ),
        }
    }
    out.sort_by_key(|b| (b.sequence(), b.dir.starts_with(layout.held())));
    Ok(out)
}

/// How a bundle relates to what has been applied.
pub enum Place {
    /// Another stream than the one this store follows.
    WrongStream,
    /// Applied already, same manifest hash.
    AlreadyApplied,
    /// A sequence already applied, with different content.
    Conflicts,
    /// The next bundle.
    Next,
    /// Beyond the next bundle.
    Gap,
}

pub fn place(db: &Db, applied: &Applied, b: &Bundle) -> Result<Place> {
    let seq = b.sequence();
    if applied.stream.is_some_and(|s| s != b.manifest().stream) {
        return Ok(Place::WrongStream);
    }
    if seq <= applied.sequence {
        let same = db
            .history_entry(seq)?
            .is_some_and(|h| h.hash == b.verified.hash);
        return Ok(if same {
            Place::AlreadyApplied
        } else {
            Place::Conflicts
        });
    }
    Ok(if seq == applied.sequence + 1 {
        Place::Next
    } else {
        Place::Gap
    })
}

fn hold(
    layout: &Layout,
    db: &Db,
    applied: &Applied,
    b: &Bundle,
    report: &mut Report,
) -> Result<()> {
    let seq = b.sequence();
    let name = media::bundle_dir_name(b.manifest().stream, seq);
    let dest = layout.held().join(&name);
    if !b.dir.starts_with(layout.held()) {
        std::fs::create_dir_all(layout.held())?;
        bundle::copy_bundle(b, &dest)?;
    }
    let reason = format!(
        "waiting for bundle {} (bundles must apply in order)",
        applied.sequence + 1
    );
    db.hold(
        seq,
        &Held {
            dir_name: name,
            hash: b.verified.hash,
            reason: reason.clone(),
        },
    )?;
    eprintln!("ferry-in: bundle {seq} held: {reason}");
    report.held.push(seq);
    Ok(())
}

/// Removes the held copy of `b`, if there is one, and its record.
fn drop_held_copy(layout: &Layout, db: &Db, b: &Bundle) -> Result<()> {
    let held = layout
        .held()
        .join(media::bundle_dir_name(b.manifest().stream, b.sequence()));
    ferry_agent_common::fsx::remove_dir_if_exists(&held)?;
    db.unhold(b.sequence())
}

/// The message for a bundle of another stream.
pub fn wrong_stream(applied: &Applied, b: &Bundle) -> String {
    format!(
        "bundle {} ({}) is refused: it belongs to stream {}, but this store follows stream {}",
        b.sequence(),
        b.dir.display(),
        b.manifest().stream,
        applied.stream.map(|s| s.to_hex()).unwrap_or_default()
    )
}

/// Imports every pending bundle found in `media_dir` (and the held area).
pub fn import(
    layout: &Layout,
    media_dir: &Path,
    limits: &ReceiverLimits,
    opts: ApplyOptions,
) -> Result<Report> {
    let db = Db::open(&layout.db())?;
    apply::recover(layout, &db, limits)?;
    let mut report = Report::default();
    let bundles = discover(layout, &db, Some(media_dir), limits, &mut report)?;
    let mut stop_after_failure = false;
    for b in &bundles {
        let seq = b.sequence();
        let applied = db.applied()?;
        match place(&db, &applied, b)? {
            Place::WrongStream => fail(&mut report, wrong_stream(&applied, b)),
            Place::AlreadyApplied => {
                eprintln!("ferry-in: bundle {seq} was already applied; skipped");
                report.skipped.push(seq);
                drop_held_copy(layout, &db, b)?;
            }
            Place::Conflicts => fail(
                &mut report,
                format!(
                    "bundle {seq} ({}) is refused: bundle {seq} was already applied with different content (a replay of another history, or a forgery)",
                    b.dir.display()
                ),
            ),
            Place::Gap => hold(layout, &db, &applied, b, &mut report)?,
            Place::Next if stop_after_failure => hold(layout, &db, &applied, b, &mut report)?,
            Place::Next => match apply::apply(layout, &db, b, limits, opts) {
                Ok(o) => {
                    println!(
                        "applied bundle {seq} from {}: {} added, {} changed, {} removed; {} chunks new, {} written; generation {}",
                        b.dir.display(),
                        o.added,
                        o.changed,
                        o.removed,
                        o.chunks_added,
                        human_bytes(o.bytes_written),
                        o.generation
                    );
                    let [v, x, bld, c] = o.timings;
                    println!("  took {:.1}s: verify {v:.1}s, extract {x:.1}s, build {bld:.1}s, commit {c:.1}s", v + x + bld + c);
                    report.applied.push(seq);
                    drop_held_copy(layout, &db, b)?;
                }
                Err(e) => {
                    fail(&mut report, format!("bundle {seq} ({}): {}", b.dir.display(), ferry_agent_common::one_line(&e)));
                    stop_after_failure = true;
                }
            },
        }
    }
    let applied = db.applied()?;
    println!(
        "applied sequence is now {}; {} applied, {} skipped, {} held, {} failed",
        applied.sequence,
        report.applied.len(),
        report.skipped.len(),
        report.held.len(),
        report.failed.len()
    );
    Ok(report)
}

/// Checks every bundle in `media_dir` completely and applies nothing.
pub fn verify(
    layout: &Layout,
    media_dir: &Path,
    limits: &ReceiverLimits,
    opts: ApplyOptions,
) -> Result<Report> {
    let db = Db::open(&layout.db())?;
    let mut report = Report::default();
    let bundles = discover(layout, &db, Some(media_dir), limits, &mut report)?;
    // Follow the chain in memory from what is applied, as an import would.
    let mut applied = db.applied()?;
    let mut catalog: Catalog = db.catalog()?;
    let chunks = apply::chunk_store(layout, limits);
    let mut carried_so_far = HashSet::new();
    for b in bundles.iter().filter(|b| !b.dir.starts_with(layout.held())) {
        let seq = b.sequence();
        let res = (|| -> Result<&'static str> {
            match place(&db, &applied, b)? {
                Place::WrongStream => bail!(wrong_stream(&applied, b)),
                Place::AlreadyApplied => return Ok("already applied"),
                Place::Conflicts => bail!("bundle {seq} was already applied with different content; an import would refuse it"),
                Place::Gap | Place::Next => {}
            }
            bundle::verify_volumes(b, |_| {})?;
            check_chunks(b)?;
            if seq != applied.sequence + 1 {
                return Ok("verified; it would be held until the bundles before it arrive");
            }
            apply::check_follows(b, &applied, opts, ferry_agent_common::now_unix())?;
            let m = b.manifest();
            let next = catalog.apply(&m.sources, &m.changes)?;
            m.check_result(&next, limits)?;
            crate::store::check_all(&next)?;
            carried_so_far.extend(m.chunks.iter().map(|c| c.id));
            for (key, f) in next.files() {
                if let Some(r) = f
                    .chunks()
                    .iter()
                    .find(|r| !carried_so_far.contains(&r.id) && !chunks.contains(&r.id))
                {
                    bail!(
                        "object {key} needs chunk {}, which neither the store nor the bundles hold",
                        r.id
                    );
                }
            }
            catalog = next;
            applied = Applied {
                stream: Some(m.stream),
                sequence: seq,
                hash: Some(b.verified.hash),
                ..applied.clone()
            };
            Ok("verified; it would apply")
        })();
        match res {
            Ok(what) => println!("bundle {seq} ({}): {what}", b.dir.display()),
            Err(e) => fail(
                &mut report,
                format!(
                    "bundle {seq} ({}): {}",
                    b.dir.display(),
                    ferry_agent_common::one_line(&e)
                ),
            ),
        }
    }
    Ok(report)
}

/// Decodes every chunk of a bundle and checks it against its id, storing nothing.
fn check_chunks(b: &Bundle) -> Result<()> {
    bundle::for_each_chunk(b, |_| true, |_, _| Ok(()), |_| {})
}
