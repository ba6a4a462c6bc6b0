//! Applying one verified bundle, atomically, and recovering from a crash.
//!
//! Order of an apply (each step durable before the next):
//! 1. check the bundle follows the applied chain, is not expired, and that
//!    the disk has room;
//! 2. verify every volume's size and hash;
//! 3. of a bundle received one by one (QUIC), take its chunks into
//!    `staging/`, each checked against its id; a bundle with volumes keeps
//!    its chunks there (`crate::carried`);
//! 4. compute and validate the next catalog; check every chunk it needs is
//!    held: carried by the bundle, in the chunk store, in staging, or as a
//!    range of a file of the previous generation (`crate::ranges`);
//! 5. build the new generation under `gens/.tmp-…`: each object the object
//!    store (`crate::objects`) lacks is rebuilt from chunks (read from the
//!    bundle's volumes where they lie, else the store or a range; each
//!    checked against its id, the object's size and SHA-256 checked) into
//!    `objects/ab/<sha256>`, an object it holds is not touched (the
//!    generation has no tree of them: its path index says what each path
//!    is, beside the small derived files of some stores), rename it to its
//!    final name; check the carried chunks no object read; copy into
//!    staging, checked, the chunks the store must keep for the next catalog
//!    (not ranges of its files) that it lacks, and move them into the chunk
//!    store, drop the other staged chunks; sync the filesystem once
//!    (objects, index, rename and chunks; until the commit the new
//!    generation is not current, and `recover` removes it as a leftover);
//! 6. commit the database (applied sequence, catalog, generation) — the
//!    point of no return;
//! 7. swap the `current` link by rename;
//! 8. drop the previous generation (unless `[store] keep_previous`), older
//!    ones, the objects whose count the commit brought to zero, and the
//!    chunks of the store that are no longer needed (not in the
//!    catalog, or now ranges of a file of the new generation), among the
//!    chunks the apply touched (the database's chunk-use index says where
//!    each is; the rest of the store did not change).
//!
//! A failure before 6 removes what the attempt wrote. A crash before 6
//! leaves the old generation current and the database unchanged (leftovers,
//! staged or stray chunks and objects not counted included, are removed by
//! [`recover`], which prunes the chunk store and sweeps the object store
//! whole when the database says an apply began writing and did not finish:
//! `prune_pending`; a failed apply runs it at once). A crash after 6 leaves
//! the database ahead of the link; [`recover`] finishes steps 7 and 8.

mod needed;

use crate::bundle::{self, Bundle};
use crate::carried::Carried;
use crate::chunkstore::ChunkStore;
use crate::db::{Applied, CatalogUpdate, Db, HistoryEntry};
use crate::delta::Catalogs;
use crate::import::Refusal;
use crate::layout::Layout;
use crate::policy::Policy;
use crate::ranges::{self, ChunkSource};
use crate::store::{self, BuildCtx, Prev};
use anyhow::{bail, Context, Result};
use ferry_agent_common::{fsx, progress};
use ferry_protocol::catalog::{Catalog, Change, Object};
use ferry_protocol::id::ChunkId;
use ferry_protocol::limits::ReceiverLimits;
use ferry_protocol::path::ObjectKey;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::time::Instant;

/// Options of an apply.
#[derive(Clone, Copy, Debug, Default)]
pub struct ApplyOptions {
    /// Accept a bundle past its expiry time.
    pub allow_expired: bool,
    /// Skip the free-space estimate before applying, and the free-space
    /// reserve of the held area (for filesystems whose free-space report is
    /// wrong). A full disk is still caught when a write fails.
    pub no_space_check: bool,
    /// Clock skew, validity and disk quotas (`[trust]`, `[held]`, `[spool]`).
    pub policy: Policy,
    /// Apply a rebase snapshot over a store that holds something
    /// (`import --rebase`; `crate::rebase`).
    pub rebase: bool,
    /// Keys to check the carried upstream signatures with (`[upstream]`).
    pub upstream: Option<&'static crate::upstream::UpstreamKeys>,
}

/// What an apply did.
#[derive(Debug)]
pub struct Outcome {
    /// The sequence applied.
    pub sequence: u64,
    /// Objects added, changed, removed.
    pub added: usize,
    /// See `added`.
    pub changed: usize,
    /// See `added`.
    pub removed: usize,
    /// Chunks newly stored.
    pub chunks_added: u64,
    /// Bytes of objects written (not linked).
    pub bytes_written: u64,
    /// Name of the new generation.
    pub generation: String,
    /// Seconds spent in each step, one after the other: verifying (the
    /// signer, the chunk ids, the change list, the volumes), extracting
    /// chunks, building the generation (objects and sync), and committing
    /// and switching. Each is the time between two marks of one clock, so
    /// none is negative and they add up to the whole apply.
    pub timings: [f64; 4],
}

/// The chunk store of `layout` with `limits`.
pub fn chunk_store(layout: &Layout, limits: &ReceiverLimits) -> ChunkStore {
    ChunkStore::new(&layout.chunks(), limits.max_chunk_bytes)
}

/// Checks the times of `b` against the clock `now` (Unix seconds) and
/// `policy`: made no later than the allowed clock skew, valid no longer
/// than the maximum validity.
pub fn check_times(b: &Bundle, policy: &Policy, now: u64) -> Result<(), Refusal> {
    let m = b.head();
    if m.created > now.saturating_add(policy.max_clock_skew_secs) {
        return Err(Refusal::FromTheFuture {
            sequence: m.sequence,
            created: m.created,
            now,
            max_skew_secs: policy.max_clock_skew_secs,
        });
    }
    if m.expires.saturating_sub(m.created) > policy.max_validity_secs {
        return Err(Refusal::ValidTooLong {
            sequence: m.sequence,
            created: m.created,
            expires: m.expires,
            max_validity_secs: policy.max_validity_secs,
        });
    }
    Ok(())
}

/// Checks that `b` is the next bundle of the applied chain (same stream,
/// next sequence, naming the applied bundle's manifest hash as its
/// predecessor), that its times pass [`check_times`] and, unless allowed,
/// that it is not expired at `now` (Unix seconds).
pub fn check_follows(
    b: &Bundle,
    applied: &Applied,
    opts: ApplyOptions,
    now: u64,
) -> Result<(), Refusal> {
    let m = b.head();
    if let Some(expected) = applied.stream.filter(|s| *s != m.stream) {
        return Err(Refusal::OtherStream {
            expected,
            found: m.stream,
        });
    }
    let (sequence, applied_seq) = (m.sequence, applied.sequence);
    if crate::rebase::snapshot_of(b).is_some() {
        if let Some(why) = crate::rebase::refusal(b, applied, opts) {
            return Err(why);
        }
    } else if sequence != applied_seq + 1 {
        return Err(Refusal::NotNext {
            sequence,
            applied: applied_seq,
        });
    } else if m.previous != applied.hash {
        return Err(Refusal::BadPrevious {
            sequence,
            applied: applied_seq,
        });
    }
    check_times(b, &opts.policy, now)?;
    if now > b.expires() && !opts.allow_expired {
        return Err(Refusal::Expired {
            sequence,
            expires: b.expires(),
            created: m.created,
        });
    }
    Ok(())
}

/// Free bytes for an unprivileged writer on the filesystem holding `path`.
pub fn available_space(path: &Path) -> Result<u64> {
    let st = rustix::fs::statvfs(path)
        .with_context(|| format!("cannot stat filesystem of {}", path.display()))?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Applies `b`. The caller holds the database and has verified the manifest.
///
/// On failure before the commit, everything the attempt wrote is removed and
/// the error says that the previous bundle is still served.
pub fn apply(
    layout: &Layout,
    db: &Db,
    b: &mut Bundle,
    limits: &ReceiverLimits,
    opts: ApplyOptions,
) -> Result<Outcome> {
    let seq = b.sequence();
    let applied = db.applied()?;
    let t = Instant::now();
    let committed = prepare_and_commit(layout, db, b, limits, opts, &applied, t);
    let (mut outcome, new_applied, touched, built) = match committed {
        Ok(c) => c,
        Err(e) => {
            let _ = fsx::remove_dir_if_exists(&layout.staging());
            // Objects (and chunks) the attempt wrote go with its leftovers.
            if db.prune_pending().unwrap_or(true) {
                let _ = recover(layout, db, limits, &opts.policy);
            }
            return Err(e.context(format!(
                "bundle {seq} was not applied; the store still serves bundle {}",
                applied.sequence
            )));
        }
    };
    // 7 and 8. A rebase snapshot replaced the whole catalog: objects it
    // dropped are in no change, so the whole store is pruned.
    let prune = match crate::rebase::snapshot_of(b) {
        Some(_) => Prune::All,
        None => Prune::Among(&touched),
    };
    finish(layout, db, &new_applied, prune, limits, &opts.policy).with_context(|| {
        format!("bundle {seq} was applied, but switching to its generation did not finish; run import again to complete it")
    })?;
    outcome.timings[3] = secs_between(built, Instant::now());
    Ok(outcome)
}

/// Step 1a: names a version-4 manifest's id-less chunks. From a bundle
/// with volumes, each such chunk's object is written as it is checked (the
/// build then finds it held): the object store may hold files the database
/// does not account for from here on, so the prune is recorded as pending
/// first (a failed apply's `recover` sweeps them).
fn name_ids(layout: &Layout, db: &Db, b: &mut Bundle) -> Result<()> {
    if b.verified.is_named() {
        return Ok(());
    }
    let objects = crate::objects::ObjectStore::new(&layout.objects());
    let place = matches!(b.payload, bundle::Payload::Volumes);
    if place {
        db.set_prune_pending()?;
    }
    let pb = progress::bytes(b.head().totals.volume_bytes, "verifying");
    bundle::name_chunks(b, |n| pb.inc(n), place.then_some(&objects))?;
    pb.finish_and_clear();
    Ok(())
}

/// The seconds from `from` to `to` (0 if `to` is not later).
fn secs_between(from: Instant, to: Instant) -> f64 {
    to.saturating_duration_since(from).as_secs_f64()
}

/// Steps 1 to 6, begun at `started`. Returns, with the outcome, the chunks
/// whose place the apply may have changed ([`ranges::touched_chunks`]), for
/// step 8, and when the build ended (the commit's time is counted from it).
fn prepare_and_commit(
    layout: &Layout,
    db: &Db,
    b: &mut Bundle,
    limits: &ReceiverLimits,
    opts: ApplyOptions,
    applied: &Applied,
    started: Instant,
) -> Result<(Outcome, Applied, HashSet<ChunkId>, Instant)> {
    check_follows(b, applied, opts, ferry_agent_common::now_unix())?;
    let view = crate::import::check_signer(db, b, applied)?.map_err(anyhow::Error::new)?;
    // 1a. The ids of chunks a version-4 manifest lists without them, from
    // their bytes (checking the volumes first), before anything uses ids.
    name_ids(layout, db, b)?;
    // The change list moves into the next catalog (held once: a first
    // import's is the whole catalog); the changes are read from it after.
    // Kept as the manifest's columns, it is read a change at a time.
    let columns = b.verified.take_columns().context("its manifest")?;
    let changes = match columns {
        Some(c) => Listed::Columns(c),
        None => Listed::Decoded(b.verified.take_changes().context("its manifest")?),
    };
    let b: &Bundle = b;
    let snap = db.snapshot()?;
    let catalogs = next_catalog(layout, &snap, b, changes, limits, opts)?;
    let chunks = chunk_store(layout, limits).with_staging(&layout.staging());
    let (verified, extracted) = stage_chunks(layout, b, &chunks)?;
    // A bundle with volumes: its chunks are read where they lie.
    let carried = Carried::of(b)?;
    // 4. Where the chunks the build needs are.
    let prev_gen = applied.generation.as_ref().map(|g| layout.gen(g));
    // Objects `scrub` moved out: the only unchanged ones the build looks
    // for (every other one its count names is held).
    let missing_objects = db.missing_objects()?;
    let needed::Needed {
        ranges,
        wanting,
        relinked,
    } = needed::index_needed(
        &snap,
        &catalogs,
        (prev_gen.as_deref(), &layout.objects()),
        (carried.as_ref(), &chunks, &missing_objects),
    )?;
    needed::stage_adopted(layout, &catalogs, &wanting, &chunks)?;
    let source = ChunkSource {
        carried: carried.as_ref(),
        store: &chunks,
        ranges: &ranges,
    };
    let found_again = needed::check_missing(db, &snap, &catalogs, (carried.as_ref(), &chunks))?;

    // 5. The new generation, then the chunks that are not ranges of its
    // files join the store.
    let mut rnd = [0u8; 4];
    getrandom::fill(&mut rnd).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let name = format!("{:08}-{}", b.sequence(), hex::encode(rnd));
    let tmp = layout.gens().join(format!(".tmp-{name}"));
    // What the stores check again: what the changes can affect, unless the
    // whole catalog was replaced or a source changed kind.
    // Without a previous generation (a first import) everything is checked
    // anyway: no copy of every key.
    let changed: Option<BTreeSet<ObjectKey>> = (prev_gen.is_some()
        && crate::rebase::snapshot_of(b).is_none()
        && store::same_kinds(catalogs.prev_sources(), catalogs.sources()))
    .then(|| catalogs.changes().map(|(k, _)| k.into_owned()).collect());
    let into = (tmp.as_path(), name.as_str());
    // From here the object store (and then the chunk store) may hold files
    // the database does not account for until the commit: a crash or a
    // failure makes `recover` sweep them whole.
    db.set_prune_pending()?;
    let bytes_written = build_generation(
        layout,
        applied,
        (&catalogs, changed.as_ref()),
        (&source, &missing_objects),
        into,
        opts,
    )
    .inspect_err(|_| {
        let _ = fsx::remove_dir_if_exists(&tmp);
    })?;
    let (touched, chunks_added) = {
        let mut extra = relinked;
        extra.extend(found_again.iter().copied());
        needed::keep_chunks((&snap, &catalogs), extra, &source)?
    };
    sync_filesystem(&layout.root)?;
    fsx::remove_dir_if_exists(&layout.staging())?;
    let built = Instant::now();

    let (stats, new_applied) = commit(db, b, applied, &catalogs, &name, &view)?;
    db.forget_missing(&found_again)?;
    forget_rebuilt(db, layout, &catalogs, &missing_objects)?;
    // For `serve`'s /ferry/health (it never opens the database); the
    // database stays the truth, so a failure here only warns.
    let record = crate::freshness::Record {
        stream: b.head().stream.to_hex(),
        sequence: b.sequence(),
        created: b.head().created,
        applied_at: ferry_agent_common::now_unix(),
        signer: b.verified.signer.to_text(),
        warn_after_secs: opts.policy.warn_after_secs,
    };
    if let Err(e) = crate::freshness::write(layout, &record) {
        eprintln!("ferry-in: warning: cannot write the freshness record: {e:#}");
    }
    crate::upstream::provenance::record(layout, b);
    for (seq, key) in crate::trust::signed_after_revocation(db, &view, &new_applied)? {
        eprintln!(
            "ferry-in: WARNING: bundle {seq}, applied earlier, was signed by key {} at or after its revocation point; distrust what it brought (docs/runbook.md, \"a key leaked\")",
            key.short()
        );
    }
    let outcome = Outcome {
        sequence: b.sequence(),
        added: stats.added,
        changed: stats.changed,
        removed: stats.removed,
        chunks_added,
        bytes_written,
        generation: name,
        timings: [
            secs_between(started, verified),
            secs_between(verified, extracted),
            secs_between(extracted, built),
            0.0,
        ],
    };
    Ok((outcome, new_applied, touched, built))
}

/// After the commit: forgets the objects `scrub` recorded missing that are
/// held again (rebuilt, at the size `next` names) or no longer named.
fn forget_rebuilt(
    db: &Db,
    layout: &Layout,
    catalogs: &Catalogs<'_>,
    missing: &HashSet<ferry_protocol::id::Sha256>,
) -> Result<()> {
    if missing.is_empty() {
        return Ok(());
    }
    let objects = crate::objects::ObjectStore::new(&layout.objects());
    // One pass over the next catalog, only after a scrub found objects
    // missing.
    let mut sizes = HashMap::new();
    catalogs.for_each_from(None, &mut |_, o| {
        if let Object::File(f) = o {
            if missing.contains(&f.sha256) {
                sizes.insert(f.sha256, f.size);
            }
        }
        Ok(true)
    })?;
    let mut forget = Vec::new();
    for sha in missing {
        let held = sizes.get(sha).is_some_and(|&size| objects.holds(sha, size));
        if held || db.object_refs(sha)? == 0 {
            forget.push(*sha);
        }
    }
    db.forget_missing_objects(&forget)
}

/// Step 1: the applied and the next catalog, and room for the next one:
/// new chunks plus rebuilt objects, with 1% and 16 MiB to spare. The next
/// catalog is the applied one's rows changed by the delta, read by key
/// (`crate::delta`), except for a rebase snapshot (a delta from the empty
/// catalog, held whole; the applied rows still give the files held).
fn next_catalog<'s>(
    layout: &Layout,
    snap: &'s crate::db::Snapshot,
    b: &'s Bundle,
    changes: Listed,
    limits: &ReceiverLimits,
    opts: ApplyOptions,
) -> Result<Catalogs<'s>> {
    let m = b.head();
    let catalogs = match (crate::rebase::snapshot_of(b), changes) {
        (Some(_), Listed::Decoded(changes)) => Catalogs::rebase(snap, &m.sources, &changes),
        (Some(_), Listed::Columns(c)) => {
            Catalogs::rebase(snap, &m.sources, &c.decode_all(b.chunks()?))
        }
        (None, Listed::Decoded(changes)) => Catalogs::absorb(snap, &m.sources, changes),
        (None, Listed::Columns(c)) => Catalogs::absorb_columns(snap, &m.sources, c, b.chunks()?),
    }
    .context("its catalog delta does not fit the applied catalog")?;
    // The manifest's change list was moved into `catalogs`: its puts are
    // checked against the limits from there.
    m.check_result_of(catalogs.sums(), catalogs.puts(), limits)?;
    store::check_catalogs(&catalogs)?;
    let mut rebuilt = 0;
    let prev_empty = catalogs.prev_is_empty()?;
    for (key, o) in catalogs.puts() {
        if let Object::File(f) = &*o {
            if prev_empty || !matches!(catalogs.prev_get(&key)?, Some(Object::File(p)) if p == *f) {
                rebuilt += f.size;
            }
        }
    }
    let need = m.totals.volume_bytes + rebuilt;
    std::fs::create_dir_all(layout.gens())
        .with_context(|| format!("cannot create {}", layout.gens().display()))?;
    let free = available_space(&layout.root)?;
    if !opts.no_space_check && need + need / 100 + (16 << 20) > free {
        bail!(
            "it needs about {} free in {}, but only {} is available; nothing was changed",
            ferry_agent_common::units::human_bytes(need + need / 100 + (16 << 20)),
            layout.root.display(),
            ferry_agent_common::units::human_bytes(free)
        );
    }
    Ok(catalogs)
}

/// A bundle's change list: decoded, or kept as the manifest's columns.
enum Listed {
    Decoded(Vec<Change>),
    Columns(ferry_protocol::manifest::Columns),
}

/// Steps 2 and 3: verify the volumes; of a bundle whose chunks were
/// received one by one, take them into staging. (A bundle with volumes
/// keeps its chunks there: the build reads them where they lie,
/// `crate::carried`.) Returns when the verification ended and when the
/// extraction did.
fn stage_chunks(layout: &Layout, b: &Bundle, chunks: &ChunkStore) -> Result<(Instant, Instant)> {
    let m = b.head();
    // 2. Volumes (unless naming the chunks checked them already). (Chunks
    // received one by one have no volumes; each is checked against its id
    // in step 3, which is what the volume hashes protect anyway.)
    if matches!(b.payload, bundle::Payload::Volumes) && !b.volumes_verified {
        let pb = progress::bytes(m.totals.volume_bytes, "verifying");
        bundle::verify_volumes(b, |n| pb.inc(n))?;
        pb.finish_and_clear();
    }
    let verified = Instant::now();
    // 3. The staging area starts empty (`ChunkStore::with_staging`).
    fsx::remove_dir_if_exists(&layout.staging())?;
    if matches!(b.payload, bundle::Payload::Chunks(_)) {
        let pb = progress::bytes(m.totals.volume_bytes, "extracting");
        bundle::extract_chunks(b, chunks, |n| pb.inc(n))?;
        pb.finish_and_clear();
    }
    Ok((verified, Instant::now()))
}

/// Step 6, the point of no return: the database records the new applied
/// bundle (with its signer), catalog and generation `name`.
fn commit(
    db: &Db,
    b: &Bundle,
    applied: &Applied,
    catalogs: &Catalogs,
    name: &str,
    view: &crate::trust::View,
) -> Result<(ferry_protocol::catalog::DeltaStats, Applied)> {
    let m = b.head();
    // A rebase snapshot records the hash of the bundle it snapshots: the
    // link the next bundle names. Its changes are from the empty catalog,
    // so the stored catalog is replaced whole.
    let stats = catalogs.delta_stats()?;
    let (hash, update) = match (crate::rebase::snapshot_of(b), catalogs.next_whole()) {
        (Some(of), Some(next)) => (of, CatalogUpdate::Whole(next)),
        (Some(_), None) => bail!("a rebase snapshot's next catalog is not held whole"),
        (None, _) => (
            b.verified.hash,
            CatalogUpdate::Checked {
                sources: catalogs.sources(),
                puts: catalogs.puts(),
                removes: catalogs.removes(),
                sums: catalogs.sums(),
            },
        ),
    };
    let new_applied = Applied {
        stream: Some(m.stream),
        sequence: m.sequence,
        hash: Some(hash),
        generation: Some(name.to_string()),
        previous_generation: applied.generation.clone(),
    };
    let entry = HistoryEntry {
        hash,
        applied_at: ferry_agent_common::now_unix(),
        created: m.created,
        bundle_bytes: b.bytes(),
        added: stats.added as u64,
        changed: stats.changed as u64,
        removed: stats.removed as u64,
    };
    db.commit_apply_with(
        &new_applied,
        update,
        &entry,
        Some(&b.verified.signer),
        Some(view),
    )?;
    Ok((stats, new_applied))
}

fn build_generation(
    layout: &Layout,
    applied: &Applied,
    (catalogs, changed): (&Catalogs<'_>, Option<&BTreeSet<ObjectKey>>),
    (chunks, missing): (&ChunkSource<'_>, &HashSet<ferry_protocol::id::Sha256>),
    (tmp, name): (&Path, &str),
    opts: ApplyOptions,
) -> Result<u64> {
    fsx::remove_dir_if_exists(tmp)?;
    std::fs::create_dir_all(tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let prev_gen = applied.generation.as_ref().map(|g| layout.gen(g));
    let prev_in_objects = match prev_gen.as_deref() {
        Some(g) => crate::genread::in_object_store(g)?,
        None => false,
    };
    let pb = progress::bytes(
        store::bytes_to_look(catalogs, prev_in_objects, missing),
        "applying",
    );
    let objects = crate::objects::ObjectStore::new(&layout.objects());
    let mut written = 0;
    for s in store::all() {
        // A store reads its kind's objects; none without a source of it.
        let kind = s.kind();
        let has = |sources: &std::collections::BTreeMap<_, _>| sources.values().any(|k| *k == kind);
        let reads = s.reads_catalog();
        let (prev, next) = if reads && (has(catalogs.prev_sources()) || has(catalogs.sources())) {
            (catalogs.prev_of_kind(kind)?, catalogs.next_of_kind(kind)?)
        } else {
            let only_sources = |sources: &std::collections::BTreeMap<_, _>| Catalog {
                sources: sources.clone(),
                ..Catalog::default()
            };
            (
                only_sources(catalogs.prev_sources()),
                only_sources(catalogs.sources()),
            )
        };
        let cx = BuildCtx {
            layout,
            prev_gen: prev_gen.as_deref(),
            new_gen: tmp,
            objects: &objects,
            missing,
            prev_in_objects,
            prev: Prev(&prev),
            next: &next,
            catalogs,
            chunks,
            progress: &pb,
            changed,
            reference_in_memory: opts.policy.reference_in_memory,
        };
        written += s.build(&cx)?;
    }
    if let Some(keys) = opts.upstream {
        let next = catalogs.next_of_kind(ferry_protocol::catalog::SourceKind::Oci)?;
        crate::upstream::check_generation(keys, &next, &objects)?;
    }
    pb.finish_and_clear();
    crate::genread::write_index(prev_gen.as_deref(), tmp, catalogs, changed)?;
    // One `syncfs` after the chunks join the store covers the objects, the
    // index and this rename before the commit: until then the generation
    // is a leftover `recover` removes (it is not current, and
    // `prune_pending` is set).
    let dest = layout.gen(name);
    std::fs::rename(tmp, &dest)
        .with_context(|| format!("cannot rename generation into {}", dest.display()))?;
    Ok(written)
}

/// Makes everything written to the filesystem of `path` durable (syncfs).
pub fn sync_filesystem(path: &Path) -> Result<()> {
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    rustix::fs::syncfs(&f)
        .with_context(|| format!("cannot sync the filesystem of {}", path.display()))
}

/// Points `current` at generation `name`, atomically.
fn switch_current(layout: &Layout, name: &str) -> Result<()> {
    let store = layout.store();
    let tmp = store.join(".current.tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(Path::new("gens").join(name), &tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    std::fs::rename(&tmp, layout.current_link())
        .with_context(|| format!("cannot switch {}", layout.current_link().display()))?;
    fsx::sync_dir(&store)
}

/// Which chunks of the store step 8 looks at.
#[derive(Clone, Copy, Debug)]
enum Prune<'a> {
    /// None: the store is as the database says.
    Nothing,
    /// Those an apply touched ([`ranges::touched_chunks`]) that the store
    /// may hold (a use in the catalog before it, `ranges::used_in`): the
    /// rest of the store did not change, and holds no chunk the catalog
    /// before did not use. The files of the catalog are all there.
    Among(&'a HashSet<ChunkId>),
    /// Every chunk of the store, against the whole catalog (after a crash).
    All,
}

/// Steps 7 and 8: link, then drop what nothing refers to: every generation
/// but the current one (and the previous one with `[store] keep_previous`),
/// and every chunk of the store (among those `prune` names) that the
/// catalog does not need there.
fn finish(
    layout: &Layout,
    db: &Db,
    applied: &Applied,
    prune: Prune<'_>,
    limits: &ReceiverLimits,
    policy: &Policy,
) -> Result<()> {
    if let Some(g) = &applied.generation {
        if layout.current_gen_name().as_deref() != Some(g.as_str()) {
            if !layout.gen(g).is_dir() {
                bail!(
                    "state is inconsistent: the database names generation {g}, which is missing from {}",
                    layout.gens().display()
                );
            }
            switch_current(layout, g)?;
        }
    }
    let keep: HashSet<&str> = [
        applied.generation.as_deref(),
        applied
            .previous_generation
            .as_deref()
            .filter(|_| policy.keep_previous),
    ]
    .into_iter()
    .flatten()
    .collect();
    if let Ok(rd) = std::fs::read_dir(layout.gens()) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !keep.contains(name.as_str()) {
                fsx::remove_dir_if_exists(&e.path())?;
            }
        }
    }
    fsx::remove_dir_if_exists(&layout.staging())?;
    let current = applied.generation.as_ref().map(|g| layout.gen(g));
    let store = chunk_store(layout, limits);
    let objects = crate::objects::ObjectStore::new(&layout.objects());
    crate::objects::remove_released(&objects, db, applied.sequence, policy.keep_previous)?;
    let files = needed::gen_files(current.as_deref(), &objects)?;
    match prune {
        Prune::Nothing => {
            store.sweep_temporary()?;
        }
        Prune::Among(touched) => {
            // Right after the build, every file of the catalog is in the
            // object store (each one rebuilt and checked, or held by its
            // count): a range counts without a look at its file.
            let snap = db.snapshot()?;
            let none = ranges::Overlay::none();
            let keep = ranges::store_only_among(&snap, &none, touched, None)?;
            store.discard(touched.iter().filter(|id| !keep.contains(id)))?;
        }
        Prune::All => {
            crate::objects::sweep_unreferenced(&objects, db)?;
            let catalog = db.catalog()?;
            store.retain(&ranges::store_only(&catalog, files))?;
        }
    }
    db.clear_prune_pending()?;
    // Chunks pushed over QUIC for bundles now applied (by any route).
    if let Ok(rd) = std::fs::read_dir(layout.incoming()) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let seq = name.rsplit('-').next().and_then(|s| s.parse::<u64>().ok());
            if seq.is_some_and(|s| s <= applied.sequence) {
                fsx::remove_dir_if_exists(&e.path())?;
            }
        }
    }
    Ok(())
}

/// Brings the store in line with the database after a crash: finishes an
/// interrupted switch and removes leftovers. Safe to run at any time.
///
/// The chunk store is pruned whole only after an interrupted apply (a
/// staging area or a `.tmp-` generation left, or the database's
/// `prune_pending`: it stopped between moving staged chunks into the store
/// and finishing): otherwise every apply pruned it already.
pub fn recover(layout: &Layout, db: &Db, limits: &ReceiverLimits, policy: &Policy) -> Result<()> {
    let applied = db.applied()?;
    let half_built = std::fs::read_dir(layout.gens()).is_ok_and(|rd| {
        rd.flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
    });
    let interrupted = half_built || layout.staging().exists() || db.prune_pending()?;
    let prune = if interrupted {
        Prune::All
    } else {
        Prune::Nothing
    };
    finish(layout, db, &applied, prune, limits, policy)
}
