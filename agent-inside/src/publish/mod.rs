//! `ferry-in publish`: copies the current generation to an S3-compatible
//! bucket for a fleet of front ends, O(change) per publish (docs/publish.md).
//!
//! The bucket's layout, under an optional key prefix:
//!
//! ```text
//! objects/<aa>/<sha256>   a file's bytes, by SHA-256 (aa: its first two hex
//!                         digits); written once, never overwritten
//! index/<sha256>          a path index file (base or delta,
//!                         docs/path-index.md), by the SHA-256 of its bytes
//! gens/<G>.json           generation G's manifest: its sources, its two
//!                         index files, its derived files (as objects)
//! current                 the generation to serve: written last
//! ```
//!
//! A publish uploads, in this order: the objects the generation names that
//! the bucket lacks, its index files if new, its derived files, its
//! manifest, then `current`. A reader that reads `current` then follows it
//! sees a whole generation: everything it names was written before it. The
//! record of what was uploaded (`record`) is kept beside the state, so the
//! objects to upload come from a diff of the last published generation's
//! index with the current one's (`diff`), not from asking the bucket.
//! Nothing is deleted unless asked (`--prune`), and then only what no kept
//! generation names, after `current` has moved.

pub mod diff;
pub mod get;
pub mod manifest;
pub mod record;
pub mod s3;

use crate::genread::{INDEX_BASE, INDEX_DELTA, INDEX_META};
use crate::layout::Layout;
use crate::objects::ObjectStore;
use crate::pathindex::{Entry, View};
use anyhow::{bail, Context, Result};
use ferry_protocol::catalog::SourceKind;
use ferry_protocol::id::{Sha256, Sha256Hasher};
use manifest::{Blob, Current, IndexFiles, Manifest};
use record::Record;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Where the bucket is: flags, or the environment; what neither gives comes
/// from the config's `[publish]` section ([`Section`]), then the defaults.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct BucketArgs {
    /// The S3 endpoint: https://host[:port] (TLS verified), or http://
    /// for a test server on a trusted network.
    #[arg(long, env = "FERRY_S3_ENDPOINT")]
    pub endpoint: Option<String>,
    /// The bucket (it must exist).
    #[arg(long, env = "FERRY_S3_BUCKET")]
    pub bucket: Option<String>,
    /// The bucket's region [default: us-east-1].
    #[arg(long, env = "FERRY_S3_REGION")]
    pub region: Option<String>,
    /// A key prefix ending in '/', to share a bucket (default: none).
    #[arg(long, env = "FERRY_S3_PREFIX")]
    pub prefix: Option<String>,
    /// Trust the CA certificates in this PEM file for https (default: the
    /// system's roots).
    #[arg(long, env = "FERRY_S3_CA")]
    pub ca: Option<PathBuf>,
    /// Virtual-host style requests (https://BUCKET.host/KEY) instead of
    /// path style (https://host/BUCKET/KEY).
    #[arg(long)]
    pub virtual_host: bool,
    /// More tries of a request that failed on the network, with a 5xx or a
    /// 429 (1, 2, 4 … s apart) [default: 4].
    #[arg(long)]
    pub retries: Option<u32>,
    /// Files over this many bytes go up in parts of this size (at least
    /// 5 MiB; more when a file would need over 10,000 parts).
    #[arg(long, hide = true)]
    pub part_size: Option<u64>,
}

/// The config's `[publish]` section: the bucket to publish to after every
/// import that applied a bundle, and the defaults of `ferry-in publish` and
/// `publish-get` (their flags and `FERRY_S3_*` variables override each key).
/// Credentials stay in the environment (`AWS_ACCESS_KEY_ID`, …), never in
/// the config.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    endpoint: Option<String>,
    bucket: Option<String>,
    region: Option<String>,
    prefix: Option<String>,
    ca: Option<PathBuf>,
    virtual_host: Option<bool>,
    retries: Option<u32>,
    jobs: Option<usize>,
    prune: Option<bool>,
    keep: Option<u64>,
}

impl Section {
    /// What a publish after an import does: this section alone.
    pub fn settings(&self) -> Result<Settings> {
        PublishArgs::default().settings(Some(self))
    }
}

impl BucketArgs {
    /// The target these flags name, completed from `config`'s `[publish]`.
    pub fn target(&self, config: Option<&Section>) -> Result<s3::Target> {
        let c = config.cloned().unwrap_or_default();
        let Some(endpoint) = self.endpoint.clone().or(c.endpoint) else {
            bail!(
                "no S3 endpoint: give --endpoint (or FERRY_S3_ENDPOINT), or `endpoint` under [publish] in --config"
            );
        };
        if !endpoint.starts_with("https://") && !endpoint.starts_with("http://") {
            bail!("the S3 endpoint must be https://host[:port] (or http:// for a test server), not {endpoint:?}");
        }
        let Some(bucket) = self.bucket.clone().or(c.bucket) else {
            bail!(
                "no bucket: give --bucket (or FERRY_S3_BUCKET), or `bucket` under [publish] in --config"
            );
        };
        let prefix = self.prefix.clone().or(c.prefix).unwrap_or_default();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            bail!("the key prefix {prefix:?} must end in '/' (or be empty)");
        }
        Ok(s3::Target {
            endpoint,
            bucket,
            region: self
                .region
                .clone()
                .or(c.region)
                .unwrap_or_else(|| "us-east-1".into()),
            prefix,
            virtual_host: self.virtual_host || c.virtual_host.unwrap_or(false),
            ca: self.ca.clone().or(c.ca),
            retries: self.retries.or(c.retries).unwrap_or(4),
            part_size: self.part_size.unwrap_or(s3::MULTIPART_OVER).max(5 << 20),
        })
    }
}

/// `ferry-in publish`'s flags.
#[derive(clap::Args, Debug, Default)]
pub struct PublishArgs {
    #[command(flatten)]
    pub bucket: BucketArgs,
    /// Uploads at once [default: 4].
    #[arg(long)]
    pub jobs: Option<usize>,
    /// After publishing, delete what no kept generation names (objects,
    /// index files, manifests).
    #[arg(long)]
    pub prune: bool,
    /// Generations whose files `--prune` keeps: the current one and the
    /// ones published just before it (front ends still reading them)
    /// [default: 2].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub keep: Option<u64>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

impl PublishArgs {
    /// What to do: these flags, completed from `config`'s `[publish]`.
    pub fn settings(&self, config: Option<&Section>) -> Result<Settings> {
        let c = config.cloned().unwrap_or_default();
        let jobs = self.jobs.or(c.jobs).unwrap_or(4);
        let keep = self.keep.or(c.keep).unwrap_or(2);
        if jobs == 0 {
            bail!("publish jobs must be at least 1");
        }
        if keep == 0 {
            bail!("publish keep must be at least 1 (the current generation)");
        }
        Ok(Settings {
            target: self.bucket.target(config)?,
            jobs,
            prune: self.prune || c.prune.unwrap_or(false),
            keep,
        })
    }
}

/// A publish's settings, from flags and the config.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The bucket.
    pub target: s3::Target,
    /// Uploads at once.
    pub jobs: usize,
    /// Delete, after `current` moved, what no kept generation names.
    pub prune: bool,
    /// Generations `prune` keeps.
    pub keep: u64,
}

/// What a publish did.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Report {
    /// The generation `current` names now.
    pub generation: String,
    /// It was already the last published one: nothing uploaded.
    pub already: bool,
    /// Keys whose entry changed since the last publish.
    pub changed_keys: u64,
    /// Objects uploaded (files' and derived files' bytes).
    pub objects_uploaded: u64,
    /// Their bytes.
    pub object_bytes: u64,
    /// Objects the generation names that were there already.
    pub objects_skipped: u64,
    /// Index files uploaded (0 to 2).
    pub index_files_uploaded: u64,
    /// PUT requests (a multipart upload counts its parts), the manifest
    /// and `current` included.
    pub puts: u64,
    /// Bytes of all PUT bodies.
    pub put_bytes: u64,
    /// Objects seeded into a new record from a listing of the bucket.
    pub seeded: u64,
    /// What `--prune` deleted: objects, index files, manifests.
    pub pruned_objects: u64,
    /// Index files deleted.
    pub pruned_index_files: u64,
    /// Manifests deleted.
    pub pruned_manifests: u64,
}

impl Report {
    /// What a publish to `target` with `settings` did, in lines for an
    /// operator.
    pub fn summary(&self, settings: &Settings) -> String {
        let what = settings.target.describe();
        let mut text = if self.already {
            format!(
                "generation {} is already published to {what}",
                self.generation
            )
        } else {
            format!(
                "published generation {} to {what}: {} keys changed, {} objects uploaded ({} bytes), {} already there, {} index files; {} PUTs, {} bytes",
                self.generation,
                self.changed_keys,
                self.objects_uploaded,
                self.object_bytes,
                self.objects_skipped,
                self.index_files_uploaded,
                self.puts,
                self.put_bytes
            )
        };
        if settings.prune {
            text.push_str(&format!(
                "\nferry-in: pruned {} objects, {} index files, {} manifests (kept the last {} generations)",
                self.pruned_objects, self.pruned_index_files, self.pruned_manifests, settings.keep
            ));
        }
        text
    }
}

/// The publish configured to follow every import that applied a bundle
/// (`[publish]` in `--config`): publishes the current generation and
/// prints what it did. A failure is printed, naming the bucket and how to
/// retry, and returned as `false`; it never undoes the import, which stays
/// applied and served (the next publish uploads everything since the last
/// one that completed).
pub fn after_import(layout: &Layout, settings: &Settings) -> bool {
    let what = settings.target.describe();
    eprintln!("ferry-in: publishing to {what} ([publish] in the config)");
    match publish(layout, settings) {
        Ok(r) => {
            eprintln!("ferry-in: {}", r.summary(settings));
            true
        }
        Err(e) => {
            eprintln!(
                "ferry-in: error: the import is applied, but the publish to {what} failed: {}; \
                 the next import publishes again, or retry with `ferry-in publish`",
                ferry_agent_common::one_line(&e)
            );
            false
        }
    }
}

/// The directory of the record of `target`: `STATE/publish/<id>`, `id` a
/// digest of the endpoint, bucket and prefix.
pub fn record_dir(layout: &Layout, target: &s3::Target) -> PathBuf {
    let id = blake3::hash(
        format!(
            "{}\n{}\n{}",
            target.endpoint.trim_end_matches('/'),
            target.bucket,
            target.prefix
        )
        .as_bytes(),
    );
    layout
        .root
        .join("publish")
        .join(&id.to_hex().as_str()[..16])
}

/// What `index.meta` says, as far as publishing goes.
#[derive(Deserialize)]
struct Meta {
    sources: BTreeMap<String, SourceKind>,
    objects: u64,
    bytes: u64,
    #[serde(default)]
    object_store: bool,
}

/// The SHA-256 and size of the file at `path`, read through.
fn hash_file(path: &Path) -> Result<Blob> {
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut h = Sha256Hasher::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok(Blob {
        sha256: h.finish(),
        size,
    })
}

/// Hard-links `from` to `to` (a copy across filesystems).
fn link(from: &Path, to: &Path) -> Result<()> {
    if std::fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    std::fs::copy(from, to)
        .map(|_| ())
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))
}

/// Links the derived files under `from` into `to`, recording each by its
/// path relative to the generation (`area/source/path`).
fn snap_derived(from: &Path, to: &Path, rel: &str, out: &mut Derived) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    let rd = std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))?;
    let mut entries: Vec<_> = rd
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("cannot read {}", from.display()))?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for e in entries {
        let name = e.file_name();
        let name = name
            .to_str()
            .with_context(|| format!("{}: a name that is not UTF-8", e.path().display()))?;
        let (src, dst, r) = (e.path(), to.join(name), format!("{rel}/{name}"));
        if std::fs::metadata(&src)
            .with_context(|| format!("cannot stat {}", src.display()))?
            .is_dir()
        {
            snap_derived(&src, &dst, &r, out)?;
        } else {
            link(&src, &dst)?;
            out.insert(r, (hash_file(&dst)?, dst));
        }
    }
    Ok(())
}

/// A snapshot of the generation being published, in the record's
/// directory: its index files and derived files, linked, so that an import
/// removing the generation does not pull them from under the publish (and
/// the next publish can diff against them).
struct Snap {
    dir: PathBuf,
    meta: Meta,
    derived: Derived,
}

fn snapshot(layout: &Layout, rec_dir: &Path, name: &str) -> Result<Snap> {
    let gen = layout.gen(name);
    let dir = rec_dir.join("snap").join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("cannot remove the leftover {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let gone = || {
        format!(
            "generation {name} went away while being published (an import replaced it): run publish again"
        )
    };
    let meta_bytes = match std::fs::read(gen.join(INDEX_META)) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !gen.exists() => bail!(gone()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "generation {name} was written by an older ferry-in (no path index): import a bundle first, then publish"
        ),
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read {}", gen.join(INDEX_META).display()))
        }
    };
    let meta: Meta = serde_json::from_slice(&meta_bytes)
        .with_context(|| format!("{} does not decode", gen.join(INDEX_META).display()))?;
    if !meta.object_store {
        bail!(
            "generation {name} keeps its files in a tree (an older ferry-in): import a bundle first, then publish"
        );
    }
    for f in [INDEX_BASE, INDEX_DELTA] {
        link(&gen.join(f), &dir.join(f)).with_context(gone)?;
    }
    let mut derived = BTreeMap::new();
    for area in [
        crate::store::apt::GEN_APT_SITE,
        crate::store::pypi_meta::GEN_PYPI_META,
    ] {
        let from = gen.join(area);
        if from.is_dir() {
            snap_derived(&from, &dir.join("derived").join(area), area, &mut derived)
                .with_context(gone)?;
        }
    }
    Ok(Snap { dir, meta, derived })
}

/// A generation's derived files: path → (digest and size, its snapshot link).
type Derived = BTreeMap<String, (Blob, PathBuf)>;

/// One upload: an object's digest, size and file.
type Job = (Sha256, u64, PathBuf);

/// Uploads `jobs` on `n` threads, recording each object once uploaded
/// (committed in batches, so that a failure keeps what went up).
fn upload_all(client: &s3::Client, record: &Record, jobs: Vec<Job>, n: usize) -> Result<()> {
    if jobs.is_empty() {
        return Ok(());
    }
    let total: u64 = jobs.iter().map(|j| j.1).sum();
    let count = jobs.len();
    let pb = ferry_agent_common::progress::bytes(total, "publishing");
    let queue = Mutex::new(jobs.into_iter());
    let stop = AtomicBool::new(false);
    let (tx, rx) = std::sync::mpsc::channel::<Result<(Sha256, u64)>>();
    let mut first_error = None;
    std::thread::scope(|s| {
        for _ in 0..n.clamp(1, 64) {
            let tx = tx.clone();
            let (queue, stop, pb) = (&queue, &stop, &pb);
            s.spawn(move || loop {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let Some((sha, size, path)) = queue.lock().expect("queue").next() else {
                    return;
                };
                let r = client
                    .put_file(&manifest::object_key(&sha), &path, size, &sha, &|b| {
                        pb.inc(b)
                    })
                    .map(|()| (sha, size));
                if r.is_err() {
                    stop.store(true, Ordering::Relaxed);
                }
                if tx.send(r).is_err() {
                    return;
                }
            });
        }
        drop(tx);
        let mut batch = Vec::new();
        let mut last_commit = std::time::Instant::now();
        for r in rx {
            match r {
                Ok(done) => batch.push(done),
                Err(e) => {
                    if first_error.is_none() {
                        first_error = Some(e);
                    }
                }
            }
            if batch.len() >= 1000 || last_commit.elapsed().as_secs() >= 5 {
                if let Err(e) = record.add_objects(&batch) {
                    stop.store(true, Ordering::Relaxed);
                    first_error.get_or_insert(e);
                }
                batch.clear();
                last_commit = std::time::Instant::now();
            }
        }
        if let Err(e) = record.add_objects(&batch) {
            first_error.get_or_insert(e);
        }
    });
    pb.finish_and_clear();
    match first_error {
        Some(e) => Err(e.context(format!(
            "publish stopped; `current` in the bucket still names the generation published before \
             (the objects uploaded so far are recorded: the next publish sends the rest of the {count})"
        ))),
        None => Ok(()),
    }
}

/// On a new record, takes what the bucket already holds under `objects/`
/// (one LIST a thousand keys) instead of uploading it again.
fn seed(client: &s3::Client, record: &Record) -> Result<u64> {
    let mut done = Vec::new();
    for (key, size) in client.list("objects/")? {
        let hex = key.rsplit('/').next().unwrap_or("");
        if let Some(sha) = Sha256::from_hex(hex).filter(|_| hex.len() == 64) {
            if manifest::object_key(&sha) == key {
                done.push((sha, size));
            }
        }
    }
    record.add_objects(&done)?;
    Ok(done.len() as u64)
}

/// Adds `d` to the count of `sha` in `changes`.
fn count(changes: &mut BTreeMap<Sha256, i64>, sha: Sha256, d: i64) {
    *changes.entry(sha).or_insert(0) += d;
}

/// Publishes the current generation of `layout`.
pub fn publish(layout: &Layout, args: &Settings) -> Result<Report> {
    let target = &args.target;
    let client = s3::Client::new(target)?;
    let Some(name) = layout.current_gen_name() else {
        bail!("no bundle has been applied: there is no generation to publish");
    };
    let rec_dir = record_dir(layout, target);
    std::fs::create_dir_all(&rec_dir)
        .with_context(|| format!("cannot create {}", rec_dir.display()))?;
    let record = Record::open(&rec_dir.join("record.redb"))?;
    let mut report = Report {
        generation: name.clone(),
        ..Report::default()
    };
    let last = record.last()?;
    if last.is_none() && record.objects()? == 0 {
        report.seeded = seed(&client, &record)?;
    }
    if last.as_ref().is_some_and(|l| l.manifest.generation == name) {
        report.already = true;
    } else {
        publish_new(
            layout,
            &client,
            &record,
            &rec_dir,
            &name,
            last,
            args,
            &mut report,
        )?;
    }
    if args.prune {
        prune(&client, &record, args.keep, &mut report)?;
    }
    report.puts = client.counters.puts.load(Ordering::Relaxed);
    report.put_bytes = client.counters.put_bytes.load(Ordering::Relaxed);
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
fn publish_new(
    layout: &Layout,
    client: &s3::Client,
    record: &Record,
    rec_dir: &Path,
    name: &str,
    last: Option<record::Published>,
    args: &Settings,
    report: &mut Report,
) -> Result<()> {
    let snap = snapshot(layout, rec_dir, name)?;
    let new_view = diff::open_view(&snap.dir.join(INDEX_BASE), &snap.dir.join(INDEX_DELTA))?;
    let last_dir = last
        .as_ref()
        .map(|l| rec_dir.join("snap").join(&l.manifest.generation));
    if let Some(d) = &last_dir {
        if !d.join(INDEX_BASE).is_file() {
            bail!(
                "the record of the last publish lacks {}: remove {} to start the record anew \
                 (the next publish then lists the bucket and uploads only what it lacks)",
                d.join(INDEX_BASE).display(),
                rec_dir.display()
            );
        }
    }
    let old_view = match &last_dir {
        Some(d) => Some(diff::open_view(&d.join(INDEX_BASE), &d.join(INDEX_DELTA))?),
        None => None,
    };
    let ino = |p: &Path| std::fs::metadata(p).map(|m| (m.dev(), m.ino())).ok();
    let same_base = last_dir.as_ref().is_some_and(|d| {
        let a = ino(&d.join(INDEX_BASE));
        a.is_some() && a == ino(&snap.dir.join(INDEX_BASE))
    });

    let store = ObjectStore::new(&layout.objects());
    let old_derived = last
        .as_ref()
        .map(|l| l.manifest.derived.clone())
        .unwrap_or_default();
    let (jobs, changes) = plan(
        &store,
        record,
        (old_view.as_ref(), &new_view, same_base),
        (&old_derived, &snap.derived),
        report,
    )?;
    report.objects_uploaded = jobs.len() as u64;
    report.object_bytes = jobs.iter().map(|j| j.1).sum();
    upload_all(client, record, jobs, args.jobs)?;

    // The index files (by content: an unchanged base is not sent again).
    let base = match (&last, same_base) {
        (Some(l), true) => l.manifest.index.base.clone(),
        _ => hash_file(&snap.dir.join(INDEX_BASE))?,
    };
    let delta = hash_file(&snap.dir.join(INDEX_DELTA))?;
    for (blob, file) in [(&base, INDEX_BASE), (&delta, INDEX_DELTA)] {
        if !record.has_index(&blob.sha256)? {
            client.put_file(
                &manifest::index_key(&blob.sha256),
                &snap.dir.join(file),
                blob.size,
                &blob.sha256,
                &|_| {},
            )?;
            record.add_index(&blob.sha256)?;
            report.index_files_uploaded += 1;
        }
    }

    // The manifest, then `current`.
    let m = Manifest {
        format: manifest::FORMAT,
        generation: name.to_string(),
        sources: snap.meta.sources.clone(),
        objects: snap.meta.objects,
        bytes: snap.meta.bytes,
        index: IndexFiles { base, delta },
        derived: snap
            .derived
            .iter()
            .map(|(p, (b, _))| (p.clone(), b.clone()))
            .collect(),
    };
    let m_bytes = serde_json::to_vec_pretty(&m)?;
    client.put_bytes(&manifest::manifest_key(name), &m_bytes, "application/json")?;
    let cur = Current {
        format: manifest::FORMAT,
        generation: name.to_string(),
        manifest: manifest::manifest_key(name),
        manifest_sha256: Sha256::of(&m_bytes),
    };
    client.put_bytes(
        manifest::CURRENT,
        &serde_json::to_vec_pretty(&cur)?,
        "application/json",
    )?;
    record.commit_published(&m, &changes)?;

    // Only the snapshot of the generation now published is kept.
    drop(old_view);
    let snaps = rec_dir.join("snap");
    for e in std::fs::read_dir(&snaps)
        .with_context(|| format!("cannot read {}", snaps.display()))?
        .flatten()
    {
        if e.file_name().to_str() != Some(name) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
    Ok(())
}

/// The files the change names that the record lacks (to upload), and the
/// reference changes from the last published generation to this one.
fn plan(
    store: &ObjectStore,
    record: &Record,
    (old_view, new_view, same_base): (Option<&View<File>>, &View<File>, bool),
    (old_derived, derived): (&BTreeMap<String, Blob>, &Derived),
    report: &mut Report,
) -> Result<(Vec<Job>, BTreeMap<Sha256, i64>)> {
    let mut jobs: Vec<Job> = Vec::new();
    let mut queued = BTreeSet::new();
    let mut changes = BTreeMap::new();
    diff::each_change(old_view, new_view, same_base, |(_, a, b)| {
        report.changed_keys += 1;
        if let Some(Entry::File { sha256, .. }) = a {
            count(&mut changes, sha256, -1);
        }
        if let Some(Entry::File { sha256, size, .. }) = b {
            count(&mut changes, sha256, 1);
            if !queued.contains(&sha256) {
                if record.has_object(&sha256)? {
                    report.objects_skipped += 1;
                } else {
                    jobs.push((sha256, size, store.path(&sha256)));
                }
                queued.insert(sha256);
            }
        }
        Ok(())
    })?;
    for (path, (blob, file)) in derived {
        if old_derived.get(path) == Some(blob) {
            continue;
        }
        count(&mut changes, blob.sha256, 1);
        if queued.insert(blob.sha256) && !record.has_object(&blob.sha256)? {
            jobs.push((blob.sha256, blob.size, file.clone()));
        }
    }
    for (path, blob) in old_derived {
        if derived.get(path).map(|d| &d.0) != Some(blob) {
            count(&mut changes, blob.sha256, -1);
        }
    }
    Ok((jobs, changes))
}

/// Deletes what no kept generation names: the manifests of the
/// generations published before the `keep` last ones, the index files
/// only they named, then the objects only they named.
fn prune(client: &s3::Client, record: &Record, keep: u64, report: &mut Report) -> Result<()> {
    let published = record.published()?;
    if published.len() as u64 <= keep {
        return Ok(());
    }
    let oldest_kept = published[published.len() - keep as usize].seq;
    let kept_names: BTreeSet<&str> = published
        .iter()
        .filter(|p| p.seq >= oldest_kept)
        .map(|p| p.manifest.generation.as_str())
        .collect();
    for p in published.iter().filter(|p| p.seq < oldest_kept) {
        if !kept_names.contains(p.manifest.generation.as_str()) {
            client.delete(&manifest::manifest_key(&p.manifest.generation))?;
            report.pruned_manifests += 1;
        }
    }
    record.forget_gens_before(oldest_kept)?;
    let index = record.index_files_before(oldest_kept)?;
    for sha in &index {
        client.delete(&manifest::index_key(sha))?;
    }
    record.forget_index_files(&index)?;
    report.pruned_index_files = index.len() as u64;
    let orphans = record.orphans_through(oldest_kept)?;
    let pb = ferry_agent_common::progress::bytes(orphans.len() as u64, "pruning");
    for chunk in orphans.chunks(1000) {
        for sha in chunk {
            client.delete(&manifest::object_key(sha))?;
            pb.inc(1);
        }
        record.forget_objects(chunk)?;
        report.pruned_objects += chunk.len() as u64;
    }
    pb.finish_and_clear();
    Ok(())
}
