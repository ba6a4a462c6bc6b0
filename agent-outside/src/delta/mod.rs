//! Deltas through compression: a changed object is shipped as a patch
//! against its predecessor, which the inside already serves.
//!
//! Both releases are first *expanded* (`ferry_recipe`: literal bytes plus the
//! decompressed content of every compressed stream the recipe can recompress
//! bit-exactly), because a small change inside a compressed file scrambles
//! every compressed byte after it. The new expanded form is then encoded as a
//! zstd frame whose prefix is the predecessor's reference form
//! (`ferry_protocol::delta`). The inside rebuilds the expanded form from its
//! own copy of the predecessor, runs the recipe, and checks the SHA-256.
//!
//! Bit-exact or nothing: before a patch is shipped, the outside runs the
//! inside's steps with the same code: the recipe, decoded from its bytes,
//! rebuilds the object from the expanded form, whose SHA-256 must be the
//! object's, and the patch decodes to that expanded form (same BLAKE3). The
//! analysis itself runs preflate-rs once per stream (`check_streams` off),
//! so each deflate stream is analysed once and recompressed once; only an
//! object that fails the check is analysed again stream by stream. A patch
//! that does not pay (larger than the chunks the object would ship whole) is
//! not used.

mod predecessor;
mod recipes;
mod refs;
mod windows;

pub(crate) use predecessor::Families;
pub(crate) use recipes::Recipes;
pub(crate) use refs::{Link, References, Stamp};

use anyhow::{bail, Context, Result};
use ferry_protocol::catalog::{Base, BaseForm, FileObject};
use ferry_protocol::id::{Sha256, Sha256Hasher};
use ferry_protocol::path::ObjectKey;
use std::io::Write;

/// Writes `bytes` to `path` through a temporary file and a rename, without
/// syncing: the copies and recipes kept for deltas are caches, checked on
/// every read (SHA-256, or a rebuild), so a copy a crash tore is dropped, not
/// used. Syncing each of them made a first export of many small files wait
/// on the disk for every file.
pub(crate) fn write_cache_file(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    // A temporary name of its own per write: two threads may keep the same
    // content at once (the keeper and the scan thread), and each renames a
    // whole copy into place.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut tmp = ferry_agent_common::fsx::tmp_name(path).into_os_string();
    tmp.push(format!(".{n}"));
    let tmp = std::path::PathBuf::from(tmp);
    let written = std::fs::write(&tmp, bytes)
        .with_context(|| format!("cannot write {}", tmp.display()))
        .and_then(|()| {
            std::fs::rename(&tmp, path)
                .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))
        });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Removes the cache file `path`; a missing one is fine.
pub(crate) fn remove_cache_file(path: &std::path::Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
}

/// Removes every file of the cache directory `dir` whose digest (read from
/// its name by `digest_of`) is not in `keep`. A missing directory is empty.
pub(crate) fn prune_cache_dir(
    dir: &std::path::Path,
    keep: &std::collections::HashSet<Sha256>,
    digest_of: impl Fn(&str) -> Option<Sha256>,
) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let name = entry.file_name();
        let kept = name
            .to_str()
            .and_then(&digest_of)
            .is_some_and(|s| keep.contains(&s));
        if !kept {
            let path = entry.path();
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
        }
    }
    Ok(())
}

/// The zstd level of `fast` patches (scheduled exports).
pub const FAST: i32 = 3;
/// The zstd level of `high` patches (a slow diode, small media).
pub const HIGH: i32 = 19;
/// From this patch level on, xz streams are reproduced too (slow, and the
/// largest gain on debs and RPMs).
pub const SLOW_LEVELS: i32 = 10;

/// How an export encodes changed objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeltaOptions {
    /// zstd level of patches; `None` ships every object whole.
    pub level: Option<i32>,
    /// Largest object (and expanded form) analysed and patched; both are
    /// held in memory. Larger objects ship whole.
    pub max_object: u64,
    /// An expanded form larger than this is cut into windows of about this
    /// size (format version 3), each its own zstd frame against a range of
    /// the base's reference form ([`DEFAULT_WINDOW`]; at most 48 MiB).
    pub window: u64,
    /// Whether xz streams (debs, RPMs) are reproduced.
    pub xz: XzPolicy,
    /// The largest changed object (with a predecessor) the scan reads whole
    /// before its patch is made ([`SCAN_HELD`]); a larger one streams
    /// through the chunker into its kept copy, which its analysis reads
    /// under the memory budget.
    pub scan_held: u64,
}

/// Whether an export reproduces xz streams, so that a deb's or an RPM's
/// payload travels as a patch of its decompressed content. Rebuilding an xz
/// stream costs what compressing it costs (about 1.5 MB/s a core, on both
/// sides), so by default only the slow settings do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum XzPolicy {
    /// At patch levels of [`SLOW_LEVELS`] and up (`high`), not at `fast`.
    #[default]
    Auto,
    /// At every level: the fewest bytes, at xz's speed.
    Always,
    /// Never: xz streams travel as their compressed bytes.
    Never,
}

impl XzPolicy {
    /// Reads `[export] delta_xz` / `--delta-xz`: `auto`, `always` or `never`.
    pub fn parse(s: &str) -> Result<XzPolicy> {
        Ok(match s {
            "auto" => XzPolicy::Auto,
            "always" => XzPolicy::Always,
            "never" => XzPolicy::Never,
            _ => bail!("xz setting {s:?} is not auto, always or never"),
        })
    }

    /// Whether patches at zstd `level` reproduce xz streams.
    pub fn reproduces(self, level: i32) -> bool {
        match self {
            XzPolicy::Auto => level >= SLOW_LEVELS,
            XzPolicy::Always => true,
            XzPolicy::Never => false,
        }
    }
}

/// The default [`DeltaOptions::window`]: 48 MiB.
pub const DEFAULT_WINDOW: u64 = 48 << 20;

/// The default [`DeltaOptions::scan_held`]: 8 MiB. Objects up to this size
/// waiting for the analysis pool are held outside the memory budget (the
/// scan keeps about 48 MiB of them in flight, and one more).
pub const SCAN_HELD: u64 = 8 << 20;

impl Default for DeltaOptions {
    fn default() -> Self {
        DeltaOptions {
            level: Some(FAST),
            max_object: 256 << 20,
            window: DEFAULT_WINDOW,
            xz: XzPolicy::Auto,
            scan_held: SCAN_HELD,
        }
    }
}

/// Reads a delta setting: `off`, `fast`, `high` or a zstd level 1 to 22.
pub fn parse_level(s: &str) -> Result<Option<i32>> {
    Ok(match s {
        "off" => None,
        "fast" => Some(FAST),
        "high" => Some(HIGH),
        n => match n.parse::<i32>() {
            Ok(l) if (1..=22).contains(&l) => Some(l),
            _ => bail!("delta setting {s:?} is not off, fast, high or a zstd level 1 to 22"),
        },
    })
}

/// A changed object as a verified patch, before its pieces are cut into chunks.
pub(crate) struct Patched {
    /// The recipe's bytes (empty when the object is its own expanded form).
    pub(crate) recipe: Vec<u8>,
    /// The patch: one frame, or windows.
    pub(crate) patch: Frames,
    /// Length of the expanded form.
    pub(crate) expanded_len: u64,
    /// BLAKE3 of the expanded form.
    pub(crate) expanded_blake3: [u8; 32],
    /// The base the patch is made against.
    pub(crate) base: Base,
    /// Whether the recipe came from the analysis cache (no preflate analysis).
    pub(crate) reused: bool,
}

/// How a patch travels.
pub(crate) enum Frames {
    /// One zstd frame against the whole reference form (`Expanded::Patch`).
    One(Vec<u8>),
    /// Windows (`Expanded::Windows`).
    Windows(Vec<windows::WindowPatch>),
}

impl Patched {
    /// Bytes this encoding adds to the bundle, before chunk dedup.
    pub(crate) fn cost(&self) -> u64 {
        let patch = match &self.patch {
            Frames::One(f) => f.len() as u64,
            // Each window's catalog entry too (lengths, BLAKE3, range).
            Frames::Windows(w) => w.iter().map(|w| w.frame.len() as u64 + 64).sum(),
        };
        self.recipe.len() as u64 + patch
    }

    /// Bytes the `Rebuilt` encoding adds to the object's catalog entry over
    /// a whole object's (the base's key, its digests and the expanded
    /// form's, the lengths): what decides for an object of a few hundred
    /// bytes, such as an image config.
    pub(crate) fn entry_cost(&self) -> u64 {
        (self.base.key.source.len() + self.base.key.path.len() + 3 * 32 + 24) as u64
    }
}

/// What the export did with changed objects, for its report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeltaReport {
    /// Objects shipped as patches.
    pub patched: u64,
    /// Their bytes (as upstream publishes them).
    pub patched_bytes: u64,
    /// Bytes of their patches and recipes.
    pub patch_bytes: u64,
    /// Changed objects of a patchable size shipped whole: no predecessor, or
    /// the patch did not pay.
    pub whole: u64,
    /// Their bytes.
    pub whole_bytes: u64,
    /// Changed objects whose recipe came from the analysis cache (analysed
    /// by an earlier export, or earlier in this one).
    pub reused: u64,
}

/// How many times its size an object's expanded (or reference) form is
/// guessed to take before it is made, when it holds streams the walk decodes
/// (a deb's data.tar.xz expands about 3.3 times, a wheel 2 to 3 times): what
/// the object's share of the memory budget starts at. The share is set to the
/// real size once the form is made.
const EXPANSION: u64 = 4;

/// The bytes of a changed object, as the analysis gets them.
pub(crate) enum Content {
    /// Read whole by the scan (a small object).
    Bytes(Vec<u8>),
    /// Only in its kept copy (`References`), of `len` bytes: a larger object
    /// streamed through the chunker and the copy by the scan, never held
    /// whole there. The analysis reads it under its share of the budget
    /// (whole, when the walk looks into it), or not at all when it is its
    /// own expanded form: then the windows read their ranges of the copy.
    Kept {
        /// Its size.
        len: u64,
    },
}

impl Content {
    fn len(&self) -> u64 {
        match self {
            Content::Bytes(d) => d.len() as u64,
            Content::Kept { len } => *len,
        }
    }
}

/// Encodes `content` (object `key`, of SHA-256 `sha256`) against object
/// `base_key` of the last catalog (`base`, its copy read from `refs`), and
/// checks that the inside's steps give the object back. `None` when a copy
/// is missing, an expanded form is over the size bound or the check fails.
/// Each buffer lives only while it is needed (the expanded forms are the
/// largest): the object until it is expanded, the base's copy, read only
/// once the object is dropped, until it is expanded. An object kept only in
/// its copy ([`Content::Kept`]) that the walk does not look into is never
/// read into memory when it is over a window: its copy is its expanded form.
///
/// The buffers are held under the process's memory budget
/// (`ferry_recipe::budget`), together with the encoders the analysis, the
/// check and the patch make on this thread: each is reserved (or, for a form
/// whose size is known only once made, guessed with [`EXPANSION`] and then
/// set) before it is allocated, so that objects are analysed on every core
/// while they fit, and one at a time when they are large.
#[allow(clippy::too_many_arguments)]
pub(crate) fn patch_against(
    key: &ObjectKey,
    content: Content,
    sha256: &Sha256,
    base_key: &ObjectKey,
    base: &FileObject,
    refs: &References,
    opts: &DeltaOptions,
    level: i32,
    recipes: &Recipes,
) -> Result<Option<Patched>> {
    let ropts = ferry_recipe::Options {
        reproduce_xz: opts.xz.reproduces(level),
        ..ferry_recipe::Options::default()
    };
    let cx = Cx {
        key,
        sha256,
        refs,
        window: opts.window,
    };
    let Some((mut permit, walked, (recipe, expanded, reused))) =
        analyse_content(&cx, content, opts, &ropts, recipes)?
    else {
        return Ok(None);
    };
    // A predecessor is most likely walked (or not) as the object is.
    let expansion = if walked { EXPANSION } else { 0 };
    let Expanded {
        held,
        len: expanded_len,
        blake3: expanded_blake3,
    } = expanded;
    if expanded_len > opts.max_object {
        return Ok(None);
    }
    // A base the walk does not look into is its own reference form: for
    // windows, read from its kept copy a block at a time, never held whole.
    let held = match held {
        Held::Spilled(file) => match refs.open(&base.sha256, base.size)? {
            Some(copy) if !walked_copy(&copy)? => {
                let src = windows::Source {
                    file,
                    len: expanded_len,
                };
                permit.shrink(0);
                let made = windows_against_copy(
                    (key, base_key),
                    base,
                    (refs, copy),
                    &src,
                    opts,
                    level,
                    &mut permit,
                )?;
                return Ok(made.map(|(patch, base)| Patched {
                    recipe,
                    patch,
                    expanded_len,
                    expanded_blake3,
                    base,
                    reused,
                }));
            }
            _ => Held::Spilled(file),
        },
        memory => memory,
    };
    // The base's copy, and its reference form (guessed until made).
    permit.grow(base.size + expansion * base.size);
    let Some((reference, form)) = reference_form(refs, base, &ropts)? else {
        return Ok(None);
    };
    let in_memory = match &held {
        Held::Memory(e) => e.len() as u64,
        Held::Spilled(_) => 0,
    };
    permit.resize(in_memory + reference.len() as u64);
    if reference.len() as u64 > opts.max_object {
        return Ok(None);
    }
    let base_len = reference.len() as u64;
    let base_blake3 = *blake3::hash(&reference).as_bytes();
    let Some(patch) = encode_patch(
        (key, base_key),
        (held, expanded_len, expanded_blake3),
        reference,
        refs,
        (opts, level),
        &mut permit,
    )?
    else {
        return Ok(None);
    };
    Ok(Some(Patched {
        recipe,
        patch,
        expanded_len,
        expanded_blake3,
        base: Base {
            key: base_key.clone(),
            sha256: base.sha256,
            form,
            len: base_len,
            blake3: base_blake3,
        },
        reused,
    }))
}

/// The patch of the expanded form `held` against `reference`: windows if it
/// was spilled, else one frame.
fn encode_patch(
    (key, base_key): (&ObjectKey, &ObjectKey),
    (held, expanded_len, expanded_blake3): (Held, u64, [u8; 32]),
    reference: Vec<u8>,
    refs: &References,
    (opts, level): (&DeltaOptions, i32),
    permit: &mut ferry_recipe::budget::Permit<'_>,
) -> Result<Option<Frames>> {
    Ok(Some(match held {
        Held::Spilled(file) => {
            let src = windows::Source {
                file,
                len: expanded_len,
            };
            // Windows read their ranges of it from a file: the whole of it
            // is not held beside a window and zstd's tables.
            let spilled = windows::RefForm::spill(refs.dir(), &reference)?;
            drop(reference);
            permit.shrink(0);
            match windows::encode(key, &src, &spilled, opts.window, level, permit)? {
                Some(w) => Frames::Windows(w),
                None => return Ok(None),
            }
        }
        Held::Memory(expanded) => {
            let frame = one_frame(
                key,
                base_key,
                expanded,
                &reference,
                expanded_blake3,
                level,
                permit,
            )?;
            match frame {
                Some(f) => Frames::One(f),
                None => return Ok(None),
            }
        }
    }))
}

/// The reference form of `base` made from its kept copy (`None` if none is
/// kept), and what it is.
fn reference_form(
    refs: &References,
    base: &FileObject,
    ropts: &ferry_recipe::Options,
) -> Result<Option<(Vec<u8>, BaseForm)>> {
    let Some(bytes) = refs.get(&base.sha256)? else {
        return Ok(None);
    };
    if !ferry_recipe::is_walked(&bytes) {
        return Ok(Some((bytes, BaseForm::Bytes)));
    }
    Ok(Some(match ferry_recipe::expand(&bytes, ropts) {
        Ok(r) => {
            let form = BaseForm::Expanded {
                version: ferry_recipe::EXPAND_VERSION,
            };
            (r, form)
        }
        Err(_) => (bytes, BaseForm::Bytes),
    }))
}

/// Windows of the expanded form in `src` against a base that is its own
/// reference form, read from its kept copy `copy` (see [`patch_against`]).
fn windows_against_copy(
    (key, base_key): (&ObjectKey, &ObjectKey),
    base: &FileObject,
    (refs, copy): (&References, std::fs::File),
    src: &windows::Source,
    opts: &DeltaOptions,
    level: i32,
    permit: &mut ferry_recipe::budget::Permit<'_>,
) -> Result<Option<(Frames, Base)>> {
    let Some((spilled, blake3)) = windows::RefForm::open(copy, base.size, &base.sha256)? else {
        refs.damaged(&base.sha256)?;
        return Ok(None);
    };
    let Some(w) = windows::encode(key, src, &spilled, opts.window, level, permit)? else {
        return Ok(None);
    };
    let base = Base {
        key: base_key.clone(),
        sha256: base.sha256,
        form: BaseForm::Bytes,
        len: base.size,
        blake3,
    };
    Ok(Some((Frames::Windows(w), base)))
}

/// Whether the walk looks into the object whose copy is `file` (by its
/// first bytes).
fn walked_copy(file: &std::fs::File) -> Result<bool> {
    use std::os::unix::fs::FileExt;
    let mut head = [0u8; 16];
    let mut n = 0;
    while n < head.len() {
        match file.read_at(&mut head[n..], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).context("cannot read the kept copy of a patch's base"),
        }
    }
    Ok(ferry_recipe::is_walked(&head[..n]))
}

/// What the analysis of one object works with.
struct Cx<'a> {
    key: &'a ObjectKey,
    sha256: &'a Sha256,
    /// Where the object's copy is (read again if it must be analysed twice)
    /// and large forms are spilled.
    refs: &'a References,
    /// An expanded form larger than this is spilled and patched in windows.
    window: u64,
}

/// Where an expanded form waits while the reference form is made.
enum Held {
    Memory(Vec<u8>),
    Spilled(std::fs::File),
}

/// An object's expanded form, checked: where it is, its length and BLAKE3.
struct Expanded {
    held: Held,
    len: u64,
    blake3: [u8; 32],
}

/// Writes `bytes` to an unnamed file in `dir` (created, then unlinked at
/// once, so a crash leaves nothing behind) and returns it for reading.
fn spill(dir: &std::path::Path, bytes: &[u8]) -> Result<std::fs::File> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!(".expanded-{}-{n}.tmp", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let _ = std::fs::remove_file(&path);
    file.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(file)
}

/// `expanded` as one zstd frame against `reference`, decoded again and
/// checked (length and BLAKE3) as the inside will; `None` (with a warning)
/// if it does not decode to what it encodes. The decoded copy is reserved
/// on `permit` (which holds the expanded form and the reference form).
fn one_frame(
    key: &ObjectKey,
    base_key: &ObjectKey,
    expanded: Vec<u8>,
    reference: &[u8],
    expanded_blake3: [u8; 32],
    level: i32,
    permit: &mut ferry_recipe::budget::Permit<'_>,
) -> Result<Option<Vec<u8>>> {
    let expanded_len = expanded.len() as u64;
    let patch = windows::encode_bounded(&expanded, reference, level)
        .with_context(|| format!("cannot encode {key} against {base_key}"))?;
    drop(expanded);
    // The decoded copy takes the expanded form's place.
    permit.shrink(reference.len() as u64);
    permit.grow(expanded_len);
    // The inside's first step: the patch must give back the expanded form the
    // recipe was just checked on (same length and BLAKE3, as the inside checks).
    let decoded = ferry_protocol::delta::decode(&patch, reference, expanded_len, &key.to_string())?;
    if *blake3::hash(&decoded).as_bytes() != expanded_blake3 {
        eprintln!("ferry-out: warning: {key}: the patch decodes to other bytes than it encodes (a defect in zstd or ferry: please report it); {key} ships whole");
        return Ok(None);
    }
    Ok(Some(patch))
}

/// The analysis of [`patch_against`]'s object, under the memory budget: its
/// recipe, expanded form and whether the recipe was reused, with the permit
/// that holds them and whether the walk looks into the object; `None` when
/// it cannot be patched (its copy gone, or the rebuild check failed).
#[allow(clippy::type_complexity)]
fn analyse_content(
    cx: &Cx<'_>,
    content: Content,
    opts: &DeltaOptions,
    ropts: &ferry_recipe::Options,
    recipes: &Recipes,
) -> Result<
    Option<(
        ferry_recipe::budget::Permit<'static>,
        bool,
        (Vec<u8>, Expanded, bool),
    )>,
> {
    let len = content.len();
    // The copy of an object kept only there, and whether the walk looks
    // into it (by its first bytes).
    let copy = match &content {
        Content::Bytes(_) => None,
        Content::Kept { len } => match cx.refs.open(cx.sha256, *len)? {
            Some(file) => Some(file),
            None => return Ok(None),
        },
    };
    let walked = match (&content, &copy) {
        (Content::Bytes(data), _) => ferry_recipe::is_walked(data),
        (_, Some(file)) => walked_copy(file)?,
        (Content::Kept { .. }, None) => unreachable!("opened above"),
    };
    // A predecessor is most likely walked (or not) as the object is.
    let expansion = if walked { EXPANSION } else { 0 };
    let (permit, analysed) = match (content, copy) {
        (Content::Kept { len }, Some(file)) if !walked && len > opts.window => {
            // Its own expanded form, spilled already: its copy.
            let permit = ferry_recipe::budget::reserve(0);
            (permit, own_form_kept(cx, file, len)?)
        }
        (content, _) => {
            let mut permit = ferry_recipe::budget::reserve(len + expansion * len);
            let data = match content {
                Content::Bytes(data) => data,
                // Read under the share just reserved, not by the scan.
                Content::Kept { .. } => match cx.refs.get(cx.sha256)? {
                    Some(data) => data,
                    None => return Ok(None),
                },
            };
            let analysed = analyze_verified(cx, data, ropts, recipes, &mut permit)?;
            (permit, analysed)
        }
    };
    Ok(analysed.map(|a| (permit, walked, a)))
}

/// Analyses `data` and checks the result as the inside will: the recipe, as
/// encoded, run by `ferry_recipe::rebuild` on the expanded form, must give
/// bytes of SHA-256 `sha256` (hashed as they stream out, never held). A recipe
/// kept in `recipes` for this digest is tried first (its expanded form is
/// decoded again by the recipe, without preflate-rs). Otherwise the first
/// analysis does not rebuild each stream on its own (that would run
/// preflate-rs's recompression twice); if the whole object does not check,
/// it is analysed again with every stream checked, which keeps a stream
/// preflate-rs does not reproduce literal. The recipe's bytes (empty when
/// the object is its own expanded form), the expanded form and whether the
/// recipe was reused, or `None` (with a warning) when nothing checks.
///
/// An object the walk does not look into is its own expanded form: used as
/// it is, not copied. Otherwise `data` is dropped once expanded (the check
/// does not need it; a second analysis reads the object's copy again), and
/// an expanded form over a window is spilled before the check, which reads
/// it back as the rebuild goes: the check's encoders (an xz stream's holds a
/// block of input) are never held beside both. `permit` holds the object's
/// share of the memory budget and is set to what stays in memory.
fn analyze_verified(
    cx: &Cx<'_>,
    data: Vec<u8>,
    ropts: &ferry_recipe::Options,
    recipes: &Recipes,
    permit: &mut ferry_recipe::budget::Permit<'_>,
) -> Result<Option<(Vec<u8>, Expanded, bool)>> {
    let (sha256, len) = (cx.sha256, data.len() as u64);
    if !ferry_recipe::is_walked(&data) {
        let expanded = hold(cx, data, permit)?;
        return Ok(Some((Vec::new(), expanded, false)));
    }
    if let Some(recipe) = recipes.get(sha256, ropts.reproduce_xz) {
        let expanded = if recipe.is_empty() {
            Some(data.clone())
        } else {
            ferry_recipe::Recipe::from_bytes(&recipe)
                .ok()
                .and_then(|r| ferry_recipe::expand_by(&r, &data, ropts).ok())
        };
        if let Some(expanded) = expanded {
            permit.resize(len + expanded.len() as u64);
            let mut held = Some(data);
            if let Ok(e) = checked(cx, &recipe, expanded, len, &mut held, permit)? {
                return Ok(Some((recipe, e, true)));
            }
            // Dropped for the check: read again for a fresh analysis.
            let Some(again) = cx.refs.get(sha256)? else {
                return Ok(None);
            };
            permit.resize(len + EXPANSION * len);
            return fresh(cx, again, ropts, recipes, permit);
        }
    }
    fresh(cx, data, ropts, recipes, permit)
}

/// [`analyze_verified`] without a kept recipe.
fn fresh(
    cx: &Cx<'_>,
    data: Vec<u8>,
    ropts: &ferry_recipe::Options,
    recipes: &Recipes,
    permit: &mut ferry_recipe::budget::Permit<'_>,
) -> Result<Option<(Vec<u8>, Expanded, bool)>> {
    let (key, sha256) = (cx.key, cx.sha256);
    let len = data.len() as u64;
    let mut data = Some(data);
    let mut last = None;
    for check_streams in [false, true] {
        let opts = ferry_recipe::Options {
            check_streams,
            ..ropts.clone()
        };
        if data.is_none() {
            // Dropped for the first check: the object's copy, read again.
            let Some(again) = cx.refs.get(sha256)? else {
                return Ok(None);
            };
            permit.resize(len + EXPANSION * len);
            data = Some(again);
        }
        let analysis = ferry_recipe::analyze(data.as_deref().expect("read"), &opts);
        let recipe = if analysis.recipe.is_identity() {
            Vec::new()
        } else {
            analysis.recipe.to_bytes()
        };
        permit.resize(len + analysis.expanded.len() as u64);
        match checked(cx, &recipe, analysis.expanded, len, &mut data, permit)? {
            Ok(e) => {
                if let Err(e) = recipes.put(sha256, ropts.reproduce_xz, &recipe) {
                    eprintln!("ferry-out: warning: cannot keep the analysis of {key}: {e:#}");
                }
                return Ok(Some((recipe, e, false)));
            }
            Err(e) => last = Some(e),
        }
    }
    if let Some(e) = last {
        eprintln!("ferry-out: warning: {e:#}; {key} ships whole");
    }
    Ok(None)
}

/// An expanded form larger than this is spilled before the rebuild check
/// even when it is under a window (and read back after it for a one-frame
/// patch): the check's encoder (an xz stream's holds about 94 MiB of match
/// finder and, in multi-threaded mode, a block of 24 MiB in and out at
/// preset 6) is then never held beside it. With a 46 MiB expanded form in
/// memory (a git deb's data.tar.xz) the two came to about 190 MiB, over the
/// whole budget, so the object ran alone over it.
const SPILL_FOR_CHECK: u64 = 16 << 20;

/// Checks `recipe` on `expanded` (see [`rebuilds`]) and gives the expanded
/// form back as held for the patch. `data` is dropped first, and an expanded
/// form over [`SPILL_FOR_CHECK`] spilled first (the check then reads it
/// back), so that the check's encoders are not held beside them; one under
/// a window is read back into memory after the check. `Ok(Err(why))` when
/// the recipe does not rebuild the object.
fn checked(
    cx: &Cx<'_>,
    recipe: &[u8],
    expanded: Vec<u8>,
    len: u64,
    data: &mut Option<Vec<u8>>,
    permit: &mut ferry_recipe::budget::Permit<'_>,
) -> Result<std::result::Result<Expanded, anyhow::Error>> {
    *data = None;
    let elen = expanded.len() as u64;
    let blake3 = *blake3::hash(&expanded).as_bytes();
    if elen <= cx.window.min(SPILL_FOR_CHECK) {
        permit.resize(elen);
        return Ok(
            rebuilds(cx.key, recipe, &expanded, len, cx.sha256).map(|()| Expanded {
                held: Held::Memory(expanded),
                len: elen,
                blake3,
            }),
        );
    }
    let file = spill(cx.refs.dir(), &expanded)?;
    drop(expanded);
    permit.shrink(0);
    let mut reader = std::io::BufReader::with_capacity(1 << 20, &file);
    std::io::Seek::rewind(&mut reader)
        .with_context(|| format!("cannot read the expanded form of {} back", cx.key))?;
    let rebuilt = rebuilds_from(cx.key, recipe, &mut reader, elen, len, cx.sha256);
    drop(reader);
    if let Err(e) = rebuilt {
        return Ok(Err(e));
    }
    let held = if elen <= cx.window {
        // Under a window: patched as one frame, from memory, as before.
        permit.resize(elen);
        Held::Memory(read_back(cx.key, &file, elen)?)
    } else {
        Held::Spilled(file)
    };
    Ok(Ok(Expanded {
        held,
        len: elen,
        blake3,
    }))
}

/// The `len` bytes of the spilled expanded form `file` of `key`, read back.
fn read_back(key: &ObjectKey, file: &std::fs::File, len: u64) -> Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut bytes = vec![0u8; len as usize];
    file.read_exact_at(&mut bytes, 0)
        .with_context(|| format!("cannot read the expanded form of {key} back"))?;
    Ok(bytes)
}

/// An object that is its own expanded form, held for the patch: spilled if
/// over a window (`data` is dropped then), in memory otherwise.
fn hold(
    cx: &Cx<'_>,
    data: Vec<u8>,
    permit: &mut ferry_recipe::budget::Permit<'_>,
) -> Result<Expanded> {
    let len = data.len() as u64;
    let blake3 = *blake3::hash(&data).as_bytes();
    let held = if len > cx.window {
        let file = spill(cx.refs.dir(), &data)?;
        drop(data);
        permit.shrink(0);
        Held::Spilled(file)
    } else {
        Held::Memory(data)
    };
    Ok(Expanded { held, len, blake3 })
}

/// An object kept only in its copy `file` (of `len` bytes) that is its own
/// expanded form, held as that copy: the windows read their ranges of it.
/// Read once, a block at a time, for its BLAKE3 and to check its SHA-256
/// (`None`, the copy removed, if it is not the object's).
fn own_form_kept(
    cx: &Cx<'_>,
    file: std::fs::File,
    len: u64,
) -> Result<Option<(Vec<u8>, Expanded, bool)>> {
    use std::os::unix::fs::FileExt;
    const BLOCK: usize = 1 << 20;
    let mut sha = Sha256Hasher::new();
    let mut b3 = blake3::Hasher::new();
    let mut buf = vec![0u8; BLOCK];
    let mut at = 0u64;
    while at < len {
        let n = BLOCK.min((len - at) as usize);
        file.read_exact_at(&mut buf[..n], at)
            .with_context(|| format!("cannot read the kept copy of {}", cx.key))?;
        sha.update(&buf[..n]);
        b3.update(&buf[..n]);
        at += n as u64;
    }
    if sha.finish() != *cx.sha256 {
        cx.refs.damaged(cx.sha256)?;
        return Ok(None);
    }
    let expanded = Expanded {
        held: Held::Spilled(file),
        len,
        blake3: *b3.finalize().as_bytes(),
    };
    Ok(Some((Vec::new(), expanded, false)))
}

/// [`rebuilds`] from an expanded form read from `expanded` as the rebuild
/// goes.
fn rebuilds_from(
    key: &ObjectKey,
    recipe: &[u8],
    expanded: &mut impl std::io::Read,
    expanded_len: u64,
    len: u64,
    sha256: &Sha256,
) -> Result<()> {
    let mut out = HashingSink::default();
    if recipe.is_empty() {
        std::io::copy(
            &mut std::io::Read::take(&mut *expanded, expanded_len),
            &mut out,
        )
        .with_context(|| format!("cannot read the expanded form of {key} back"))?;
    } else {
        let recipe = ferry_recipe::Recipe::from_bytes(recipe)
            .with_context(|| format!("{key}: the recipe just written does not decode"))?;
        ferry_recipe::rebuild_from(&recipe, expanded, expanded_len, len, &mut out)
            .with_context(|| format!("{key}: the recipe does not rebuild the object"))?;
    }
    if out.len != len || out.hasher.finish() != *sha256 {
        bail!("{key}: the recipe rebuilds other bytes than upstream's (a defect in ferry-recipe: please report it)");
    }
    Ok(())
}

/// Runs the inside's last steps (decode the recipe, rebuild from the expanded
/// form, hash what comes out) and compares the size and SHA-256.
fn rebuilds(
    key: &ObjectKey,
    recipe: &[u8],
    expanded: &[u8],
    len: u64,
    sha256: &Sha256,
) -> Result<()> {
    let mut out = HashingSink::default();
    if recipe.is_empty() {
        out.write_all(expanded)?;
    } else {
        let recipe = ferry_recipe::Recipe::from_bytes(recipe)
            .with_context(|| format!("{key}: the recipe just written does not decode"))?;
        ferry_recipe::rebuild(&recipe, expanded, len, &mut out)
            .with_context(|| format!("{key}: the recipe does not rebuild the object"))?;
    }
    if out.len != len || out.hasher.finish() != *sha256 {
        bail!("{key}: the recipe rebuilds other bytes than upstream's (a defect in ferry-recipe: please report it)");
    }
    Ok(())
}

/// A writer that only counts and hashes.
#[derive(Default)]
struct HashingSink {
    hasher: Sha256Hasher,
    len: u64,
}

impl Write for HashingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.hasher.update(buf);
        self.len += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::noise;
    use ferry_protocol::catalog::Encoding;

    fn key(path: &str) -> ObjectKey {
        ObjectKey {
            source: "s".into(),
            path: path.into(),
        }
    }

    fn object(data: &[u8]) -> FileObject {
        FileObject {
            size: data.len() as u64,
            sha256: Sha256::of(data),
            executable: false,
            encoding: Encoding::Chunks(Vec::new()),
        }
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// The new release: `old` with a few bytes inserted near the start and
    /// changed in the middle.
    fn edited(old: &[u8]) -> Vec<u8> {
        let mut new = old[..1000].to_vec();
        new.extend_from_slice(b"inserted bytes");
        new.extend_from_slice(&old[1000..]);
        let mid = new.len() / 2;
        new[mid..mid + 100].fill(7);
        new
    }

    /// Patches `new` against `old` (kept in a fresh `References`) with
    /// windows of `window` bytes.
    fn patch(old: &[u8], new: Vec<u8>, window: u64) -> (Option<Patched>, tempfile::TempDir) {
        patch_as(old, new, window, false)
    }

    /// [`patch`], the new object given as bytes or (`kept`) only as its
    /// kept copy, as the scan hands over a large one it streamed.
    fn patch_as(
        old: &[u8],
        new: Vec<u8>,
        window: u64,
        kept: bool,
    ) -> (Option<Patched>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let refs = References::new(dir.path().join("objects"));
        let recipes = Recipes::new(dir.path().join("analyses"));
        let base = object(old);
        refs.put(&base.sha256, old).unwrap();
        let sha = Sha256::of(&new);
        refs.put(&sha, &new).unwrap();
        let opts = DeltaOptions {
            window,
            ..DeltaOptions::default()
        };
        let content = if kept {
            Content::Kept {
                len: new.len() as u64,
            }
        } else {
            Content::Bytes(new)
        };
        let made = patch_against(
            &key("new"),
            content,
            &sha,
            &key("old"),
            &base,
            &refs,
            &opts,
            FAST,
            &recipes,
        )
        .unwrap();
        (made, dir)
    }

    /// The expanded form the windows of `p` decode to against `reference`.
    fn decode_windows(p: &Patched, reference: &[u8]) -> Vec<u8> {
        let Frames::Windows(windows) = &p.patch else {
            panic!("not windows");
        };
        let mut out = Vec::new();
        for w in windows {
            let range = w.reference.start as usize..w.reference.end as usize;
            out.extend(
                ferry_protocol::delta::decode(&w.frame, &reference[range], w.len, "t").unwrap(),
            );
        }
        out
    }

    #[test]
    fn a_large_plain_object_is_patched_in_windows_against_the_copy_of_its_base() {
        let old = noise(600_000, 1);
        let new = edited(&old);
        let (p, _dir) = patch(&old, new.clone(), 100_000);
        let p = p.expect("patched");
        assert!(p.recipe.is_empty(), "its own expanded form");
        assert_eq!(p.base.form, BaseForm::Bytes);
        assert_eq!(p.base.len, old.len() as u64);
        assert_eq!(p.base.blake3, *blake3::hash(&old).as_bytes());
        assert_eq!(p.expanded_len, new.len() as u64);
        assert_eq!(p.expanded_blake3, *blake3::hash(&new).as_bytes());
        assert_eq!(decode_windows(&p, &old), new);
        assert!(p.cost() < 20_000, "{} bytes", p.cost());
    }

    #[test]
    fn a_damaged_copy_of_the_base_ships_the_object_whole() {
        let old = noise(300_000, 2);
        let new = edited(&old);
        let dir = tempfile::tempdir().unwrap();
        let refs = References::new(dir.path().join("objects"));
        let base = object(&old);
        // A copy of the right size whose bytes are not the base's.
        refs.put(&base.sha256, &noise(300_000, 3)).unwrap();
        let sha = Sha256::of(&new);
        let opts = DeltaOptions {
            window: 100_000,
            ..DeltaOptions::default()
        };
        let recipes = Recipes::new(dir.path().join("analyses"));
        let made = patch_against(
            &key("new"),
            Content::Bytes(new),
            &sha,
            &key("old"),
            &base,
            &refs,
            &opts,
            FAST,
            &recipes,
        )
        .unwrap();
        assert!(made.is_none());
        assert!(
            refs.open(&base.sha256, old.len() as u64).unwrap().is_none(),
            "the damaged copy is removed"
        );
    }

    #[test]
    fn a_compressed_object_is_patched_on_its_expanded_form_in_memory_or_in_windows() {
        let old_plain = noise(200_000, 4).repeat(2);
        let old = gz(&old_plain);
        let new = gz(&edited(&old_plain));
        for window in [DEFAULT_WINDOW, 100_000] {
            let (p, _dir) = patch(&old, new.clone(), window);
            let p = p.expect("patched");
            assert!(!p.recipe.is_empty());
            assert!(matches!(p.base.form, BaseForm::Expanded { .. }));
            // The header and trailer literal, the deflate stream decoded.
            let reference = ferry_recipe::expand(&old, &ferry_recipe::Options::default()).unwrap();
            assert_eq!(reference.len(), old_plain.len() + 18);
            assert_eq!(p.base.len, reference.len() as u64);
            let expanded = match &p.patch {
                Frames::One(frame) => {
                    ferry_protocol::delta::decode(frame, &reference, p.expanded_len, "t").unwrap()
                }
                Frames::Windows(_) => decode_windows(&p, &reference),
            };
            assert_eq!(window == DEFAULT_WINDOW, matches!(p.patch, Frames::One(_)));
            let recipe = ferry_recipe::Recipe::from_bytes(&p.recipe).unwrap();
            let mut rebuilt = Vec::new();
            ferry_recipe::rebuild(&recipe, &expanded, new.len() as u64, &mut rebuilt).unwrap();
            assert_eq!(rebuilt, new);
        }
    }

    /// A frame as shipped: its bytes, length, BLAKE3 and reference range.
    type Frame = (Vec<u8>, u64, [u8; 32], std::ops::Range<u64>);

    /// What a patch ships: its recipe, frames and each window's entry.
    fn shipped(p: &Patched) -> (Vec<u8>, Vec<Frame>) {
        let frames = match &p.patch {
            Frames::One(f) => vec![(f.clone(), p.expanded_len, p.expanded_blake3, 0..0)],
            Frames::Windows(w) => w
                .iter()
                .map(|w| (w.frame.clone(), w.len, w.blake3, w.reference.clone()))
                .collect(),
        };
        (p.recipe.clone(), frames)
    }

    #[test]
    fn an_object_kept_only_in_its_copy_is_patched_as_if_read_whole() {
        // A plain object over a window (its copy is its expanded form, read
        // a range at a time), one under it, and a compressed one (read
        // whole from the copy under its share of the budget): the same
        // patch as from the bytes.
        let old = noise(600_000, 11);
        let old_gz_plain = noise(150_000, 12).repeat(2);
        let cases = [
            (old.clone(), edited(&old), 100_000),
            (old.clone(), edited(&old), DEFAULT_WINDOW),
            (gz(&old_gz_plain), gz(&edited(&old_gz_plain)), 100_000),
        ];
        for (i, (old, new, window)) in cases.into_iter().enumerate() {
            let (from_bytes, _d1) = patch_as(&old, new.clone(), window, false);
            let (from_copy, _d2) = patch_as(&old, new.clone(), window, true);
            let (a, b) = (from_bytes.expect("patched"), from_copy.expect("patched"));
            assert_eq!(shipped(&a), shipped(&b), "case {i}");
            assert_eq!(a.base.blake3, b.base.blake3, "case {i}");
            assert_eq!(a.base.form, b.base.form, "case {i}");
            assert_eq!(
                (a.expanded_len, a.expanded_blake3),
                (b.expanded_len, b.expanded_blake3)
            );
            if i == 0 {
                assert_eq!(decode_windows(&b, &old), new);
            }
        }
    }

    #[test]
    fn a_damaged_or_missing_copy_of_a_kept_object_ships_it_whole() {
        let old = noise(300_000, 13);
        let new = edited(&old);
        let dir = tempfile::tempdir().unwrap();
        let refs = References::new(dir.path().join("objects"));
        let recipes = Recipes::new(dir.path().join("analyses"));
        let base = object(&old);
        refs.put(&base.sha256, &old).unwrap();
        let sha = Sha256::of(&new);
        let opts = DeltaOptions {
            window: 100_000,
            ..DeltaOptions::default()
        };
        let run = || {
            patch_against(
                &key("new"),
                Content::Kept {
                    len: new.len() as u64,
                },
                &sha,
                &key("old"),
                &base,
                &refs,
                &opts,
                FAST,
                &recipes,
            )
            .unwrap()
        };
        assert!(run().is_none(), "no copy");
        // A copy of the right size whose bytes are not the object's.
        let mut bad = new.clone();
        bad[200_000] ^= 1;
        std::fs::write(dir.path().join("objects").join(sha.to_hex()), &bad).unwrap();
        assert!(run().is_none(), "a damaged copy");
        assert!(
            refs.open(&sha, new.len() as u64).unwrap().is_none(),
            "the damaged copy is removed"
        );
    }
}
