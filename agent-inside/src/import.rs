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
//!   gap fills, if it fits the held area's quota and free-space reserve
//!   (`[held]` in the config, [`crate::policy`]);
//! - signed by a trusted key not bound to the bundle's stream, made beyond
//!   the allowed clock skew, valid longer than allowed, or (to be held)
//!   expired: [`Decision::Refuse`].
//!
//! A held bundle that turns out refused (expired while waiting, or not
//! chaining onto the genuine bundle before it) is deleted from `held/` and
//! reported in [`Report::dropped`], so it cannot keep taking the space the
//! genuine next bundle needs.

use crate::apply::{self, ApplyOptions};
use crate::bundle::{self, Bundle};
use crate::db::{Applied, Db, Held, Use};
use crate::layout::Layout;
use anyhow::{bail, Context, Result};
use ferry_agent_common::units::human_bytes;
use ferry_agent_common::{format_time, media};
use ferry_protocol::catalog::{Catalog, Change, Object};
use ferry_protocol::id::StreamId;
use ferry_protocol::limits::ReceiverLimits;
use ferry_protocol::path::ObjectKey;
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
    /// Held bundles deleted from the held area because they were refused
    /// (expired, or not chaining onto the bundle applied before them).
    pub dropped: Vec<u64>,
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
    /// The signing key is trusted, but not for the bundle's stream.
    #[error("it is signed by key {key}, which is trusted here but not for stream {stream}; if that stream is expected, allow it with `ferry-in trust bind --stream {stream} KEYFILE`")]
    KeyNotForStream {
        /// The signer's short form.
        key: String,
        /// The bundle's stream.
        stream: StreamId,
    },
    /// The signing key was retired by a rotation before this bundle's sequence.
    #[error("it is signed by key {key}, retired for stream {stream} from bundle {from_sequence} on (rotated to key {by})")]
    RetiredKey {
        /// The signer's short form.
        key: String,
        /// The bundle's stream.
        stream: StreamId,
        /// The first sequence the key may no longer sign.
        from_sequence: u64,
        /// The key that replaced it.
        by: String,
    },
    /// The signing key was revoked before this bundle's sequence.
    #[error(
        "it is signed by key {key}, revoked for stream {stream} from bundle {from_sequence} on"
    )]
    RevokedKey {
        /// The signer's short form.
        key: String,
        /// The bundle's stream.
        stream: StreamId,
        /// The first sequence the key may no longer sign.
        from_sequence: u64,
    },
    /// The stream needs more distinct signatures (signer and co-signers
    /// allowed at that sequence) than the bundle has.
    #[error("bundle {sequence} has {have} valid signature(s) of keys trusted for stream {stream}, and the stream needs {need} (`ferry-out cosign` adds one)")]
    TooFewSignatures {
        /// The bundle's sequence.
        sequence: u64,
        /// Its stream.
        stream: StreamId,
        /// Distinct allowed signers found.
        have: u32,
        /// The stream's threshold.
        need: u32,
    },
    /// A trust statement the bundle carries is malformed or not signed as it must be.
    #[error("{0}")]
    BadStatement(ferry_protocol::trust::StatementError),
    /// A rotation statement that cannot be followed.
    #[error("it carries a key rotation that cannot be followed: {why}")]
    BadRotation {
        /// Why.
        why: String,
    },
    /// The bundle says it was made further in the future than the allowed clock skew.
    #[error(
        "bundle {sequence} says it was made at {}, more than {max_skew_secs}s after this clock's {}; check this machine's clock (or the outside's), or raise [trust] max_clock_skew",
        format_time(*.created),
        format_time(*.now)
    )]
    FromTheFuture {
        /// The bundle's sequence.
        sequence: u64,
        /// Its creation time (Unix seconds).
        created: u64,
        /// The local clock (Unix seconds).
        now: u64,
        /// The allowed skew (seconds).
        max_skew_secs: u64,
    },
    /// The bundle is valid for longer than this store accepts.
    #[error(
        "bundle {sequence} is valid for {} days (created {}, expires {} seconds later), longer than the {} days allowed here ([trust] max_validity; ferry-out's [export] expires)",
        .expires.saturating_sub(*.created) / 86_400,
        format_time(*.created),
        .expires.saturating_sub(*.created),
        .max_validity_secs / 86_400
    )]
    ValidTooLong {
        /// The bundle's sequence.
        sequence: u64,
        /// Its creation time (Unix seconds).
        created: u64,
        /// Its expiry time (Unix seconds).
        expires: u64,
        /// The longest validity allowed (seconds).
        max_validity_secs: u64,
    },
    /// A rebase snapshot at or before the applied sequence: it would move the
    /// store back.
    #[error("bundle {sequence} is a rebase snapshot, and bundle {applied} is applied already: a snapshot never moves a store back (a replay)")]
    RebaseReplay {
        /// The snapshot's sequence.
        sequence: u64,
        /// The applied sequence.
        applied: u64,
    },
    /// A rebase snapshot over a store that holds something, without
    /// `import --rebase`.
    #[error("bundle {sequence} is a rebase snapshot (the whole catalog), and this store holds bundle {applied}: to replace its catalog with the snapshot, import with `ferry-in import --rebase`; otherwise import the bundles after {applied}")]
    RebaseNotAsked {
        /// The snapshot's sequence.
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

impl Refusal {
    /// The variant's name, as a receipt carries it (`crate::failures`).
    pub fn name(&self) -> &'static str {
        match self {
            Refusal::UntrustedKey { .. } => "UntrustedKey",
            Refusal::OtherStream { .. } => "OtherStream",
            Refusal::ReplayedDifferent { .. } => "ReplayedDifferent",
            Refusal::NotNext { .. } => "NotNext",
            Refusal::BadPrevious { .. } => "BadPrevious",
            Refusal::KeyNotForStream { .. } => "KeyNotForStream",
            Refusal::RetiredKey { .. } => "RetiredKey",
            Refusal::RevokedKey { .. } => "RevokedKey",
            Refusal::TooFewSignatures { .. } => "TooFewSignatures",
            Refusal::BadStatement(_) => "BadStatement",
            Refusal::BadRotation { .. } => "BadRotation",
            Refusal::FromTheFuture { .. } => "FromTheFuture",
            Refusal::ValidTooLong { .. } => "ValidTooLong",
            Refusal::RebaseReplay { .. } => "RebaseReplay",
            Refusal::RebaseNotAsked { .. } => "RebaseNotAsked",
            Refusal::Expired { .. } => "Expired",
        }
    }
}

/// The trust view to commit with `b`, or the refusal of its signer (not
/// trusted, not for its stream, retired or revoked at its sequence) or of
/// the trust statements it carries ([`crate::trust::View::admit`]).
pub fn check_signer(
    db: &Db,
    b: &Bundle,
    applied: &Applied,
) -> Result<std::result::Result<crate::trust::View, Refusal>> {
    Ok(admit(&db.view()?, b, applied))
}

/// [`check_signer`] against a given trust `view` (`verify` follows the
/// chain, and the keys it rotates, in memory).
pub fn admit(
    view: &crate::trust::View,
    b: &Bundle,
    applied: &Applied,
) -> std::result::Result<crate::trust::View, Refusal> {
    let view = view.admit(b.head(), &b.verified.signer, applied.sequence)?;
    // An applied bundle is only recognised (skipped); the threshold is for new ones.
    if b.sequence() > applied.sequence {
        view.check_threshold(b.head(), &b.verified.signer, &b.cosigners)?;
    }
    Ok(view)
}

/// Decides what to do with `b` at time `now` (Unix seconds): skip, apply,
/// hold or refuse (by stream, the signer's binding, sequence, times, and
/// for a bundle to hold its expiry; [`crate::apply::check_follows`] checks
/// the chain link and the expiry of a bundle to apply).
pub fn decide(
    db: &Db,
    applied: &Applied,
    b: &Bundle,
    opts: ApplyOptions,
    now: u64,
) -> Result<Decision> {
    decide_in(db, &db.view()?, applied, b, opts, now)
}

/// [`decide`] with the trust `view` given.
fn decide_in(
    db: &Db,
    view: &crate::trust::View,
    applied: &Applied,
    b: &Bundle,
    opts: ApplyOptions,
    now: u64,
) -> Result<Decision> {
    let seq = b.sequence();
    let m = b.head();
    if let Some(expected) = applied.stream.filter(|s| *s != m.stream) {
        return Ok(Decision::Refuse(Refusal::OtherStream {
            expected,
            found: m.stream,
        }));
    }
    if let Err(why) = admit(view, b, applied) {
        return Ok(Decision::Refuse(why));
    }
    if crate::rebase::snapshot_of(b).is_some() {
        // Its own rules (`crate::rebase`); the rest is `check_follows`'s.
        if let Some(why) = crate::rebase::refusal(b, applied, opts) {
            return Ok(Decision::Refuse(why));
        }
        return Ok(match apply::check_follows(b, applied, opts, now) {
            Ok(()) => Decision::Apply,
            Err(why) => Decision::Refuse(why),
        });
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
    if let Err(why) = apply::check_times(b, &opts.policy, now) {
        return Ok(Decision::Refuse(why));
    }
    if seq == applied.sequence + 1 {
        return Ok(Decision::Apply);
    }
    if now > b.expires() && !opts.allow_expired {
        return Ok(Decision::Refuse(Refusal::Expired {
            sequence: seq,
            expires: b.expires(),
            created: m.created,
        }));
    }
    Ok(Decision::Hold {
        waiting_for: applied.sequence + 1,
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

/// What `import` and `verify` read from `media_dir`: its root-signed
/// revocations applied first, then its bundles found and checked
/// ([`discover`]), with their co-signatures and validity extensions.
fn from_media(
    layout: &Layout,
    db: &Db,
    media_dir: &Path,
    limits: &ReceiverLimits,
    opts: &ApplyOptions,
    report: &mut Report,
) -> Result<Vec<Bundle>> {
    crate::trust::revocations::apply_file(db, media_dir)?;
    let mut bundles = discover(layout, db, Some(media_dir), limits, report)?;
    crate::trust::extend_all(
        db,
        &mut bundles,
        &opts.policy,
        ferry_agent_common::now_unix(),
    )?;
    Ok(bundles)
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
        bail!("no trusted signing key yet; add the outside's public key with `ferry-in trust add signing.pub --stream ID` (the stream id `ferry-out status` prints)");
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
            Err(e) => fail(report, crate::failures::unopenable(layout, &d, limits, e)),
        }
    }
    // A rebase snapshot before the stream's bundle of the same sequence: a
    // fresh store then skips that bundle as applied instead of holding it.
    out.sort_by_key(|b| {
        (
            b.sequence(),
            crate::rebase::snapshot_of(b).is_none(),
            b.dir.starts_with(layout.held()),
        )
    });
    Ok(out)
}

/// Checks that a copy of `b` into `dest` fits the held area's quota and
/// the free-space reserve.
fn check_held_room(layout: &Layout, b: &Bundle, dest: &Path, opts: ApplyOptions) -> Result<()> {
    let held = layout.held();
    let replaced = dest.is_dir();
    let used = crate::policy::dir_bytes(&held).saturating_sub(if replaced {
        crate::policy::dir_bytes(dest)
    } else {
        0
    });
    let count = std::fs::read_dir(&held)
        .map(|rd| {
            rd.flatten()
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .count() as u64
        })
        .unwrap_or(0);
    let free = if opts.no_space_check {
        None
    } else {
        Some(apply::available_space(&held)?)
    };
    opts.policy
        .held
        .check("held", held, (used, count), b.bytes(), !replaced, free)?;
    Ok(())
}

fn hold(
    layout: &Layout,
    db: &Db,
    waiting_for: u64,
    b: &Bundle,
    opts: ApplyOptions,
    report: &mut Report,
) -> Result<()> {
    let seq = b.sequence();
    let name = media::bundle_dir_name(b.head().stream, seq);
    let dest = layout.held().join(&name);
    if !b.dir.starts_with(layout.held()) {
        std::fs::create_dir_all(layout.held())
            .with_context(|| format!("cannot create {}", layout.held().display()))?;
        check_held_room(layout, b, &dest, opts)?;
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

/// Holds `b`; a failure (the quota, a full disk) is the bundle's, reported.
fn hold_or_fail(
    layout: &Layout,
    db: &Db,
    waiting_for: u64,
    b: &Bundle,
    opts: ApplyOptions,
    report: &mut Report,
) {
    if let Err(e) = hold(layout, db, waiting_for, b, opts, report) {
        let e = e.context(format!(
            "bundle {} ({}) was not held; import it again once bundle {waiting_for} has been applied",
            b.sequence(),
            b.dir.display()
        ));
        fail(report, e);
    }
}

/// Removes the held copy of `b`, if there is one, and its record.
fn drop_held_copy(layout: &Layout, db: &Db, b: &Bundle) -> Result<()> {
    let held = layout
        .held()
        .join(media::bundle_dir_name(b.head().stream, b.sequence()));
    ferry_agent_common::fsx::remove_dir_if_exists(&held)?;
    db.unhold(b.sequence())
}

/// Deletes a refused bundle from the held area (the copy is `b` itself), so
/// it no longer takes space; says so.
fn drop_refused_held(layout: &Layout, db: &Db, b: &Bundle, report: &mut Report) -> Result<()> {
    if !b.dir.starts_with(layout.held()) {
        return Ok(());
    }
    ferry_agent_common::fsx::remove_dir_if_exists(&b.dir)?;
    if db
        .held()?
        .iter()
        .any(|(s, h)| *s == b.sequence() && h.hash == b.verified.hash)
    {
        db.unhold(b.sequence())?;
    }
    eprintln!(
        "ferry-in: held bundle {} ({}) was refused and is deleted from the held area",
        b.sequence(),
        b.dir.display()
    );
    report.dropped.push(b.sequence());
    Ok(())
}

/// Removes temporary copies a failed or interrupted hold left in `held/`.
fn sweep_held_leftovers(layout: &Layout) -> Result<()> {
    let Ok(rd) = std::fs::read_dir(layout.held()) else {
        return Ok(());
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.ends_with(".tmp") {
            eprintln!(
                "ferry-in: removing {}, left by an interrupted copy into the held area",
                e.path().display()
            );
            ferry_agent_common::fsx::remove_dir_if_exists(&e.path())?;
        }
    }
    Ok(())
}

/// Imports every pending bundle found in `media_dir` (and the held area).
pub fn import(
    layout: &Layout,
    media_dir: &Path,
    limits: &ReceiverLimits,
    opts: ApplyOptions,
) -> Result<Report> {
    let db = Db::open(&layout.db())?;
    apply::recover(layout, &db, limits, &opts.policy)?;
    sweep_held_leftovers(layout)?;
    let mut report = Report::default();
    let mut bundles = from_media(layout, &db, media_dir, limits, &opts, &mut report)?;
    let mut stop_after_failure = false;
    for b in &mut bundles {
        let applied = db.applied()?;
        let now = ferry_agent_common::now_unix();
        match decide(&db, &applied, b, opts, now)? {
            Decision::Refuse(why) => {
                crate::failures::record_bundle(layout, b, why.name().to_string());
                drop_refused_held(layout, &db, b, &mut report)?;
                fail(&mut report, refused(b, why));
            }
            Decision::Skip => {
                eprintln!(
                    "ferry-in: bundle {} was already applied; skipped",
                    b.sequence()
                );
                report.skipped.push(b.sequence());
                drop_held_copy(layout, &db, b)?;
            }
            Decision::Hold { waiting_for } => {
                hold_or_fail(layout, &db, waiting_for, b, opts, &mut report)
            }
            Decision::Apply if stop_after_failure => {
                hold_or_fail(layout, &db, applied.sequence + 1, b, opts, &mut report)
            }
            Decision::Apply => {
                stop_after_failure = !apply_one(layout, &db, b, limits, opts, &mut report)?;
            }
        }
    }
    let applied = db.applied()?;
    println!(
        "applied sequence is now {}; {} applied, {} skipped, {} held, {} dropped from held, {} failed",
        applied.sequence,
        report.applied.len(),
        report.skipped.len(),
        report.held.len(),
        report.dropped.len(),
        report.failed.len()
    );
    Ok(report)
}

/// Applies `b`; false when it failed (reported). A held bundle refused
/// (by its chain link or expiry) is deleted from the held area.
fn apply_one(
    layout: &Layout,
    db: &Db,
    b: &mut Bundle,
    limits: &ReceiverLimits,
    opts: ApplyOptions,
    report: &mut Report,
) -> Result<bool> {
    let seq = b.sequence();
    let applied = apply::apply(layout, db, b, limits, opts);
    let b: &Bundle = b;
    match applied {
        Ok(o) => {
            print_applied(b, &o);
            report.applied.push(seq);
            drop_held_copy(layout, db, b)?;
            Ok(true)
        }
        Err(e) => {
            crate::failures::record_bundle(layout, b, crate::failures::name_of(&e));
            if e.chain().any(|c| c.downcast_ref::<Refusal>().is_some()) {
                drop_refused_held(layout, db, b, report)?;
            }
            fail(
                report,
                e.context(format!("bundle {seq} ({})", b.dir.display())),
            );
            Ok(false)
        }
    }
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
    let mut bundles = from_media(layout, &db, media_dir, limits, &opts, &mut report)?;
    // Follow the chain in memory from what is applied, as an import would.
    let mut applied = db.applied()?;
    let snap = db.snapshot()?;
    let mut catalog: Catalog = snap.catalog()?;
    // The changes of the bundles verified so far, one per key.
    let mut since_db: Vec<Change> = Vec::new();
    let chunks = apply::chunk_store(layout, limits);
    let mut carried_so_far = HashSet::new();
    let mut view = db.view()?;
    for b in bundles
        .iter_mut()
        .filter(|b| !b.dir.starts_with(layout.held()))
    {
        let seq = b.sequence();
        let res = (|| -> Result<&'static str> {
            match decide_in(
                &db,
                &view,
                &applied,
                b,
                opts,
                ferry_agent_common::now_unix(),
            )? {
                Decision::Refuse(why) => return Err(why.into()),
                Decision::Skip => return Ok("already applied"),
                Decision::Hold { .. } | Decision::Apply => {}
            }
            let pb = ferry_agent_common::progress::bytes(b.head().totals.volume_bytes, "verifying");
            bundle::verify_volumes(b, |n| pb.inc(n))?;
            b.volumes_verified = true;
            bundle::name_chunks(b, |_| {}, None)?;
            b.verified.decode_columns();
            pb.finish_and_clear();
            let b: &Bundle = b;
            check_chunks(b)?;
            if seq != applied.sequence + 1 {
                return Ok("verified; it would be held until the bundles before it arrive");
            }
            apply::check_follows(b, &applied, opts, ferry_agent_common::now_unix())?;
            let m = b.named()?;
            let next = catalog.apply(&m.sources, &m.changes)?;
            m.check_result(&next, limits)?;
            crate::store::check_all(&next)?;
            carried_so_far.extend(m.chunks.iter().map(|c| c.id));
            // An object this bundle puts is built from all its chunks; one
            // it leaves alone keeps what it has (the store holds each kept
            // chunk that is not a range: `crate::ranges`). Chunks of files
            // carried as chunks are ranges of those files once applied,
            // looked up in the stored index changed by the bundles before.
            let overlay =
                crate::ranges::Overlay::of(since_db.iter().map(|c| (c.key(), c.object())));
            for c in &m.changes {
                let Change::Put {
                    key,
                    object: Object::File(f),
                } = c
                else {
                    continue;
                };
                for r in f.chunks() {
                    if carried_so_far.contains(&r.id) || chunks.contains(&r.id) {
                        continue;
                    }
                    let uses = overlay.uses(&snap, &r.id)?;
                    if !uses.iter().any(|u| matches!(u, Use::Range { .. })) {
                        bail!(
                            "object {key} needs chunk {}, which neither the store nor the bundles hold",
                            r.id
                        );
                    }
                }
            }
            merge_changes(&mut since_db, &m.changes);
            catalog = next;
            view = admit(&view, b, &applied)?;
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

/// Adds `changes` to `acc`, the last change of each key winning.
fn merge_changes(acc: &mut Vec<Change>, changes: &[Change]) {
    let new: HashSet<&ObjectKey> = changes.iter().map(|c| c.key()).collect();
    acc.retain(|c| !new.contains(c.key()));
    acc.extend(changes.iter().cloned());
}

/// Decodes every chunk of a bundle and checks it against its id, storing nothing.
fn check_chunks(b: &Bundle) -> Result<()> {
    bundle::for_each_chunk(b, |_| true, |_, _| Ok(()), |_| {})
}
