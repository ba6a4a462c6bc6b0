//! `import` and `verify`: find the bundles on media (and those held from
//! earlier), decide for each what it is, and apply what can be applied, in
//! sequence order.
//!
//! For each bundle found, after its manifest verifies, [`decide`] returns a
//! [`Decision`]:
//! - sequence already applied, same manifest hash: [`Decision::Skip`];
//! - another stream, or a sequence already applied with a different hash:
//!   [`Decision::Refuse`] with a [`Refusal`] naming the rule broken;
//! - the next sequence: [`Decision::Apply`] (or, for `verify`, fully checked),
//!   after [`crate::apply::check_follows`] (chain link, expiry);
//! - beyond the next: [`Decision::Hold`] in `STATE/held/`, reported until the
//!   gap fills.

use crate::apply::{self, ApplyOptions};
use crate::bundle::{self, Bundle};
use crate::db::{Applied, Db, Held};
use crate::layout::Layout;
use anyhow::{bail, Result};
use ferry_agent_common::units::human_bytes;
use ferry_agent_common::{format_time, media};
use ferry_protocol::catalog::Catalog;
use ferry_protocol::id::StreamId;
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
    /// Bundles that failed, with the error, as one line each.
    pub failed: Vec<String>,
    /// The same failures as errors, in the same order, for callers that
    /// look at their type (a [`Refusal`], a `ferry_protocol::Error`, …).
    pub errors: Vec<anyhow::Error>,
}

impl Report {
    /// Whether nothing failed.
    pub fn ok(&self) -> bool {
        self.failed.is_empty()
    }

    /// The refusals among the failures.
    pub fn refusals(&self) -> impl Iterator<Item = &Refusal> {
        self.errors
            .iter()
            .filter_map(|e| e.chain().find_map(|c| c.downcast_ref::<Refusal>()))
    }
}

fn fail(report: &mut Report, e: anyhow::Error) {
    let msg = ferry_agent_common::one_line(&e);
    eprintln!("ferry-in: error: {msg}");
    report.failed.push(msg);
    report.errors.push(e);
}

/// What import does with a bundle whose manifest verified, given what has
/// been applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The same bundle (same manifest hash) is applied already: skip it.
    Skip,
    /// The next bundle of the chain: apply it (or, for `verify`, check it all).
    Apply,
    /// Beyond the next: hold it in `STATE/held/` until bundle `waiting_for`
    /// has been applied.
    Hold {
        /// The sequence that must come first.
        waiting_for: u64,
    },
    /// Refuse it.
    Refuse(Refusal),
}

/// Why a bundle is refused: one variant per rule it breaks. Decided by
/// [`decide`], [`crate::apply::check_follows`] and [`crate::bundle::open`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The manifest is signed by a key this store does not trust.
    #[error("manifest is signed by key {key}, which is not trusted here (add it with `ferry-in trust add`)")]
    UntrustedKey {
        /// The signer's short form.
        key: String,
    },
    /// The bundle belongs to another stream than the one this store follows.
    #[error("it belongs to stream {found}, but this store follows stream {expected}")]
    OtherStream {
        /// The stream this store follows.
        expected: StreamId,
        /// The bundle's stream.
        found: StreamId,
    },
    /// A different bundle (another manifest hash) at a sequence already applied.
    #[error("bundle {sequence} was already applied with different content (a replay of another history, or a forgery)")]
    ReplayedDifferent {
        /// The sequence.
        sequence: u64,
    },
    /// Not the bundle after the applied one (a gap, or one applied already).
    #[error("bundle {sequence} does not follow the applied bundle {applied}")]
    NotNext {
        /// The bundle's sequence.
        sequence: u64,
        /// The applied sequence.
        applied: u64,
    },
    /// The bundle names another predecessor than the applied bundle.
    #[error("bundle {sequence} does not chain onto the applied bundle {applied}: it names a different predecessor (a fork, or a bundle from another export history)")]
    BadPrevious {
        /// The bundle's sequence.
        sequence: u64,
        /// The applied sequence.
        applied: u64,
    },
    /// The bundle is past its expiry time.
    #[error(
        "bundle {sequence} expired at {} (created {}); ask for a fresh export, or import with --allow-expired",
        format_time(*.expires),
        format_time(*.created)
    )]
    Expired {
        /// The bundle's sequence.
        sequence: u64,
        /// Its expiry time (Unix seconds).
        expires: u64,
        /// Its creation time (Unix seconds).
        created: u64,
    },
}

/// Decides what to do with `b`: skip, apply, hold or refuse (by stream and
/// sequence; [`crate::apply::check_follows`] checks the chain link and the
/// expiry of a bundle to apply).
pub fn decide(db: &Db, applied: &Applied, b: &Bundle) -> Result<Decision> {
    let seq = b.sequence();
    let found = b.manifest().stream;
    if let Some(expected) = applied.stream.filter(|s| *s != found) {
        return Ok(Decision::Refuse(Refusal::OtherStream { expected, found }));
    }
    if seq <= applied.sequence {
        let same = db
            .history_entry(seq)?
            .is_some_and(|h| h.hash == b.verified.hash);
        return Ok(if same {
            Decision::Skip
        } else {
            Decision::Refuse(Refusal::ReplayedDifferent { sequence: seq })
        });
    }
    Ok(if seq == applied.sequence + 1 {
        Decision::Apply
    } else {
        Decision::Hold {
            waiting_for: applied.sequence + 1,
        }
    })
}

/// A refusal of `b`, as the error import reports: it names the bundle and its directory.
pub fn refused(b: &Bundle, why: Refusal) -> anyhow::Error {
    anyhow::Error::new(why).context(format!(
        "bundle {} ({}) is refused",
        b.sequence(),
        b.dir.display()
    ))
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
            Err(e) => fail(report, e.context(format!("bundle {}", d.display()))),
        }
    }
    out.sort_by_key(|b| (b.sequence(), b.dir.starts_with(layout.held())));
    Ok(out)
}

fn hold(layout: &Layout, db: &Db, waiting_for: u64, b: &Bundle, report: &mut Report) -> Result<()> {
    let seq = b.sequence();
    let name = media::bundle_dir_name(b.manifest().stream, seq);
    let dest = layout.held().join(&name);
    if !b.dir.starts_with(layout.held()) {
        std::fs::create_dir_all(layout.held())?;
        bundle::copy_bundle(b, &dest)?;
    }
    let reason = format!("waiting for bundle {waiting_for} (bundles must apply in order)");
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
        match decide(&db, &applied, b)? {
            Decision::Refuse(why) => fail(&mut report, refused(b, why)),
            Decision::Skip => {
                eprintln!("ferry-in: bundle {seq} was already applied; skipped");
                report.skipped.push(seq);
                drop_held_copy(layout, &db, b)?;
            }
            Decision::Hold { waiting_for } => hold(layout, &db, waiting_for, b, &mut report)?,
            Decision::Apply if stop_after_failure => {
                hold(layout, &db, applied.sequence + 1, b, &mut report)?
            }
            Decision::Apply => match apply::apply(layout, &db, b, limits, opts) {
                Ok(o) => {
                    print_applied(b, &o);
                    report.applied.push(seq);
                    drop_held_copy(layout, &db, b)?;
                }
                Err(e) => {
                    fail(
                        &mut report,
                        e.context(format!("bundle {seq} ({})", b.dir.display())),
                    );
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

fn print_applied(b: &Bundle, o: &apply::Outcome) {
    println!(
        "applied bundle {} from {}: {} added, {} changed, {} removed; {} chunks new, {} written; generation {}",
        b.sequence(),
        b.dir.display(),
        o.added,
        o.changed,
        o.removed,
        o.chunks_added,
        human_bytes(o.bytes_written),
        o.generation
    );
    let [v, x, bld, c] = o.timings;
    println!(
        "  took {:.1}s: verify {v:.1}s, extract {x:.1}s, build {bld:.1}s, commit {c:.1}s",
        v + x + bld + c
    );
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
            match decide(&db, &applied, b)? {
                Decision::Refuse(why) => return Err(why.into()),
                Decision::Skip => return Ok("already applied"),
                Decision::Hold { .. } | Decision::Apply => {}
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
                e.context(format!("bundle {seq} ({})", b.dir.display())),
            ),
        }
    }
    Ok(report)
}

/// Decodes every chunk of a bundle and checks it against its id, storing nothing.
fn check_chunks(b: &Bundle) -> Result<()> {
    bundle::for_each_chunk(b, |_| true, |_, _| Ok(()), |_| {})
}
