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

mod analysis;
mod beside;
mod cache;
mod options;
mod packs;
mod predecessor;
mod recipes;
mod refs;
mod tally;
mod windows;

pub(crate) use cache::{prune_cache_dir, remove_cache_file, write_cache_file};
use options::window_for;
pub use options::{
    parse_level, DeltaOptions, XzPolicy, DEFAULT_WINDOW, ENCODER_WINDOW, FAST, HIGH, SCAN_HELD,
    SLOW_LEVELS, STREAMED_MIN,
};
pub(crate) use predecessor::Families;
pub(crate) use recipes::Recipes;
pub(crate) use refs::{file_streamed, Link, References, Stamp};
pub use tally::{StreamTally, REASONS};
pub(crate) use windows::{WindowPatch, Windows};

use analysis::{analyse_content, one_frame, Cx, Expanded, Held};
use anyhow::{Context, Result};
use ferry_protocol::catalog::{Base, BaseForm, FileObject};
use ferry_protocol::id::Sha256;
use ferry_protocol::path::ObjectKey;

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
    /// Windows (`Expanded::Windows`), their frames in a spill file.
    Windows(windows::Windows),
}

impl Patched {
    /// Bytes this encoding adds to the bundle, before chunk dedup.
    pub(crate) fn cost(&self) -> u64 {
        let patch = match &self.patch {
            Frames::One(f) => f.len() as u64,
            // Each window's catalog entry too (lengths, BLAKE3, range).
            Frames::Windows(w) => w.windows.iter().map(|w| w.frame_len() + 64).sum(),
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
    /// The compressed streams of the objects analysed afresh: rebuilt, or
    /// left compressed and why.
    pub streams: StreamTally,
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
///
/// An expanded form patched in windows is checked (the recipe rebuilds the
/// object) while the windows are encoded on a second thread: the check's
/// pieces and the windows then use every core. Nothing ships unless the
/// check passes; if it does not, the object is analysed again as before,
/// each step after the other (the check's failure may call for the
/// analysis stream by stream), which gives the same result as before.
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
    let kept = match &content {
        Content::Kept { len } => Some(*len),
        Content::Bytes(_) => None,
    };
    let args = (key, sha256, base_key, base, refs);
    match patch_inner(args, content, (opts, level), recipes, true)? {
        Attempt::Done(p) => Ok(p),
        Attempt::CheckFailed => {
            // The object's copy, read again (as a second analysis does).
            let content = match kept {
                Some(len) => Content::Kept { len },
                None => match refs.get(sha256)? {
                    Some(d) => Content::Bytes(d),
                    None => return Ok(None),
                },
            };
            match patch_inner(args, content, (opts, level), recipes, false)? {
                Attempt::Done(p) => Ok(p),
                Attempt::CheckFailed => Ok(None),
            }
        }
    }
}

/// What one try of [`patch_inner`] gave (moved once per object: its size
/// does not matter).
#[allow(clippy::large_enum_variant)]
enum Attempt {
    Done(Option<Patched>),
    /// The deferred rebuild check failed: nothing of this try is used.
    CheckFailed,
}

/// One try of [`patch_against`]; with `defer`, a windowed patch's rebuild
/// check runs beside its windows.
fn patch_inner(
    (key, sha256, base_key, base, refs): (
        &ObjectKey,
        &Sha256,
        &ObjectKey,
        &FileObject,
        &References,
    ),
    content: Content,
    (opts, level): (&DeltaOptions, i32),
    recipes: &Recipes,
    defer: bool,
) -> Result<Attempt> {
    let ropts = ferry_recipe::Options {
        reproduce_xz: opts.xz.reproduces(level),
        deflate_cuts: opts.deflate_cuts.then_some(ferry_recipe::DEFAULT_PIECE),
        max_recipe_version: opts.recipe_version,
        ..ferry_recipe::Options::default()
    };
    let known = known_streams(refs, base, &ropts)?;
    let cx = Cx {
        key,
        sha256,
        refs,
        window: opts.window,
        known: known.as_ref().map(|(k, _)| k),
        parse: None,
        defer,
        streamed_min: opts.streamed_min,
    };
    let Some((mut permit, walked, (recipe, expanded, reused))) =
        analyse_content(&cx, content, opts, &ropts, recipes)?
    else {
        return Ok(Attempt::Done(None));
    };
    let Expanded {
        held,
        len: expanded_len,
        blake3: expanded_blake3,
        check,
    } = expanded;
    let spilled = matches!(held, Held::Spilled(_));
    let Some(check) = check else {
        if expanded_len > opts.max_form(spilled) {
            return Ok(Attempt::Done(None));
        }
        return finish(
            (&cx, None),
            (key, base_key, base),
            (held, expanded_len, expanded_blake3),
            (recipe, reused, walked),
            (opts, level, &ropts),
            &mut permit,
        );
    };
    let file = match &held {
        Held::Spilled(file) => file
            .try_clone()
            .context("cannot reopen a spilled expanded form")?,
        Held::Memory(_) => unreachable!("only a spilled expanded form's check is deferred"),
    };
    let settle = |made: Option<Patched>| -> Attempt {
        if let Some(report) = &check.fresh {
            recipes.keep_fresh(key, sha256, ropts.reproduce_xz, check.recipe(), report);
        }
        Attempt::Done(made)
    };
    if expanded_len > opts.max_form(spilled) {
        // No patch; the analysis is kept for the next export if it checks.
        return Ok(match check.run(&cx, &file) {
            Ok(()) => settle(None),
            Err(_) => Attempt::CheckFailed,
        });
    }
    let made = finish(
        (&cx, Some((&check, &file))),
        (key, base_key, base),
        (held, expanded_len, expanded_blake3),
        (recipe, reused, walked),
        (opts, level, &ropts),
        &mut permit,
    )?;
    Ok(match made {
        Attempt::Done(p) => settle(p),
        Attempt::CheckFailed => Attempt::CheckFailed,
    })
}

/// The rest of [`patch_inner`] once the object is analysed: the base's
/// reference form and the patch; a spilled form's deferred check (if any)
/// runs beside the windows ([`beside`]).
#[allow(clippy::type_complexity)]
fn finish(
    (cx, check): (&Cx<'_>, Option<(&analysis::Deferred, &std::fs::File)>),
    (key, base_key, base): (&ObjectKey, &ObjectKey, &FileObject),
    (held, expanded_len, expanded_blake3): (Held, u64, [u8; 32]),
    (recipe, reused, walked): (Vec<u8>, bool, bool),
    (opts, level, ropts): (&DeltaOptions, i32, &ferry_recipe::Options),
    permit: &mut ferry_recipe::budget::Permit<'static>,
) -> Result<Attempt> {
    let refs = cx.refs;
    let opts = &DeltaOptions {
        window: window_for(&recipe, opts.window),
        ..*opts
    };
    // An object whose recipe rebuilds nothing (its expanded form is its
    // bytes: a deb whose xz streams are left as they are at `fast`) is
    // patched against its base's bytes, not against a reference form whose
    // streams are decoded: compressed bytes match compressed bytes.
    let as_is = recipe.is_empty();
    // A predecessor is most likely walked (or not) as the object is.
    let expansion = if walked && !as_is { EXPANSION } else { 0 };
    // A base the walk does not look into is its own reference form: for
    // windows, read from its kept copy a block at a time, never held whole.
    let expanded = match held {
        Held::Spilled(file) => match refs.open(&base.sha256, base.size)? {
            Some(copy) if as_is || !walked_copy(&copy)? => {
                let src = windows::Source {
                    file,
                    len: expanded_len,
                };
                permit.shrink(0);
                let prepaid = windows::peak(expanded_len, base.size, opts.window, level);
                return beside::beside_check(
                    (cx, check),
                    (prepaid, permit),
                    (recipe, reused, expanded_len, expanded_blake3),
                    |hold: &mut dyn windows::Hold| {
                        let to = (refs, copy);
                        windows_against_copy((key, base_key), base, to, &src, opts, level, hold)
                    },
                );
            }
            // The base's reference form made and spilled (beside the
            // deferred check, if any): windows read their ranges of it and
            // of the expanded form from files, neither held whole. With the
            // base's copy gone, the check still decides whether the
            // analysis is kept.
            _ => {
                let src = windows::Source {
                    file,
                    len: expanded_len,
                };
                return beside::form_beside_check(
                    (cx, check),
                    (key, base_key, base),
                    (src, expanded_blake3),
                    (recipe, reused, expansion),
                    (opts, level, ropts),
                    permit,
                );
            }
        },
        Held::Memory(expanded) => expanded,
    };
    debug_assert!(check.is_none(), "a deferred check runs beside the windows");
    // The base's copy, and its reference form (guessed until made).
    permit.grow(base.size + expansion * base.size);
    let Some((reference, form)) = reference_form(refs, base, ropts, as_is)? else {
        return Ok(Attempt::Done(None));
    };
    permit.resize(expanded.len() as u64 + reference.len() as u64);
    if reference.len() as u64 > opts.max_object {
        return Ok(Attempt::Done(None));
    }
    let based = Base {
        key: base_key.clone(),
        sha256: base.sha256,
        form,
        len: reference.len() as u64,
        blake3: *blake3::hash(&reference).as_bytes(),
    };
    let frame = one_frame(
        key,
        base_key,
        expanded,
        &reference,
        expanded_blake3,
        level,
        permit,
    )?;
    Ok(Attempt::Done(frame.map(|f| Patched {
        recipe,
        patch: Frames::One(f),
        expanded_len,
        expanded_blake3,
        base: based,
        reused,
    })))
}

/// What a base's reference form is guessed to take in memory while it is
/// made for windows ([`spilled_reference`]): a few MiB of buffers for a
/// large gzip, zip or deb base (its form is made into a file as it is read), else its
/// copy and [`EXPANSION`] (`expansion`) times it.
fn reference_guess(
    refs: &References,
    base: &FileObject,
    expansion: u64,
    opts: &DeltaOptions,
) -> u64 {
    if base.size >= opts.streamed_min && refs.starts_streamed(&base.sha256) {
        return 4 << 20;
    }
    base.size + expansion * base.size
}

/// The deflate streams of `base` (a zip: a wheel, a jar) that the rebuild
/// check copies when the object shares them, as the inside's rebuild does,
/// with the permit that holds them; `None` when the base is no zip, over
/// `ferry_recipe::KNOWN_MOST`, its reference form over
/// `ferry_recipe::KNOWN_FORM_MOST` (the inside may not know them), not
/// kept, or has fewer than two streams.
fn known_streams(
    refs: &References,
    base: &FileObject,
    ropts: &ferry_recipe::Options,
) -> Result<
    Option<(
        ferry_recipe::KnownStreams,
        ferry_recipe::budget::Permit<'static>,
    )>,
> {
    match refs.open(&base.sha256, base.size)? {
        Some(copy) if worth_knowing(&copy, base.size)? => {}
        _ => return Ok(None),
    }
    let mut permit = ferry_recipe::budget::reserve(base.size + EXPANSION * base.size);
    let Some(bytes) = refs.get(&base.sha256)? else {
        return Ok(None);
    };
    let Ok((expanded, known)) = ferry_recipe::expand_known(bytes, ropts) else {
        return Ok(None);
    };
    if expanded.len() as u64 > ferry_recipe::KNOWN_FORM_MOST {
        return Ok(None);
    }
    drop(expanded);
    permit.resize(known.held());
    Ok((!known.is_empty()).then_some((known, permit)))
}

/// Whether the kept copy `file`, of `len` bytes, is a base whose streams
/// are worth knowing (`ferry_recipe::known_streams_worth`, by its first
/// bytes).
fn worth_knowing(file: &std::fs::File, len: u64) -> Result<bool> {
    use std::os::unix::fs::FileExt;
    let mut head = [0u8; 4];
    match file.read_exact_at(&mut head, 0) {
        Ok(()) => Ok(ferry_recipe::known_streams_worth(&head, len)),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e).context("cannot read the kept copy of a patch's base"),
    }
}

/// The reference form of `base` made from its kept copy (`None` if none is
/// kept), and what it is: its bytes `as_is`, or when the walk does not look
/// into it.
fn reference_form(
    refs: &References,
    base: &FileObject,
    ropts: &ferry_recipe::Options,
    as_is: bool,
) -> Result<Option<(Vec<u8>, BaseForm)>> {
    let Some(bytes) = refs.get(&base.sha256)? else {
        return Ok(None);
    };
    if as_is || !ferry_recipe::is_walked(&bytes) {
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

/// A base's reference form spilled for windows, what it is, its length
/// and BLAKE3 ([`spilled_reference`]).
struct SpilledBase {
    form: windows::RefForm,
    what: BaseForm,
    len: u64,
    blake3: [u8; 32],
}

impl SpilledBase {
    /// The catalog's record of the base `key` (of object `base`) patched
    /// against.
    fn base(&self, key: &ObjectKey, base: &FileObject) -> Base {
        Base {
            key: key.clone(),
            sha256: base.sha256,
            form: self.what,
            len: self.len,
            blake3: self.blake3,
        }
    }
}

/// The reference form of `base` (one the walk looks into) spilled for
/// windows: made into the spill file as the base's kept copy is read when
/// that is a gzip member, a zip or a deb of at least `opts.streamed_min` bytes
/// (`ferry_agent_common::forms`: a layer's or wheel's form is never held), else made
/// whole ([`reference_form`]) and spilled. `None` if no intact copy is
/// kept, or the form is over `opts.max_object`.
fn spilled_reference(
    refs: &References,
    base: &FileObject,
    ropts: &ferry_recipe::Options,
    opts: &DeltaOptions,
) -> Result<Option<SpilledBase>> {
    match spill_base_form(refs, base, opts, false)? {
        Spilled::Made(made, _) => return indexed(made).map(Some),
        Spilled::Unusable => return Ok(None),
        Spilled::NotStreamed => {}
    }
    whole_spilled_reference(refs, base, ropts, opts)
}

/// What [`spill_base_form`] made of a base (moved once per object: its
/// size does not matter).
#[allow(clippy::large_enum_variant)]
enum Spilled {
    /// Its form, and with `lend` what it lends the check (its copy, and
    /// where its stream and parse are).
    Made(
        ferry_agent_common::forms::SpilledForm,
        Option<(std::fs::File, ferry_recipe::reuse::Lendable)>,
    ),
    /// Not made this way: the base is small, gone, or neither gzip, zip
    /// nor a package (the caller expands it whole).
    NotStreamed,
    /// Damaged, or its form too long: not patched against.
    Unusable,
}

/// A base's form made into a spill, with the index of its members the
/// windows look up (one more read of the spill).
fn indexed(made: ferry_agent_common::forms::SpilledForm) -> Result<SpilledBase> {
    Ok(SpilledBase {
        form: windows::RefForm::index(made.file, made.len)?,
        what: BaseForm::Expanded {
            version: ferry_recipe::EXPAND_VERSION,
        },
        len: made.len,
        blake3: made.blake3,
    })
}

/// The reference form of `base` made into a spill file as its kept copy is
/// read, when it is over `streamed_min`; with `lend`, a base that is one
/// gzip member of a MiB or more of plain bytes lends its parse too (as the
/// inside's does: `ferry_agent_common::forms::spill_form_lending`).
fn spill_base_form(
    refs: &References,
    base: &FileObject,
    opts: &DeltaOptions,
    lend: bool,
) -> Result<Spilled> {
    if base.size < opts.streamed_min {
        return Ok(Spilled::NotStreamed);
    }
    let Some(copy) = refs.open(&base.sha256, base.size)? else {
        return Ok(Spilled::NotStreamed);
    };
    if !analysis::streamed_copy(&copy)? {
        return Ok(Spilled::NotStreamed);
    }
    let what = format!("base {}", base.sha256.to_hex());
    let (dir, size) = (refs.dir(), base.size);
    let made = match lend {
        true => ferry_agent_common::forms::spill_form_lending(&copy, size, dir, &what)?,
        false => ferry_agent_common::forms::spill_form(&copy, size, dir, &what)?.map(|f| (f, None)),
    };
    let Some((made, lent)) = made else {
        return Ok(Spilled::NotStreamed);
    };
    if made.sha256 != base.sha256 {
        refs.damaged(&base.sha256)?;
        return Ok(Spilled::Unusable);
    }
    if made.len > opts.max_form(true) {
        return Ok(Spilled::Unusable);
    }
    let lent = lent.map(|l| (copy, l));
    Ok(Spilled::Made(made, lent))
}

/// [`spilled_reference`] of a base not made into a spill as it is read:
/// expanded whole, then spilled.
fn whole_spilled_reference(
    refs: &References,
    base: &FileObject,
    ropts: &ferry_recipe::Options,
    opts: &DeltaOptions,
) -> Result<Option<SpilledBase>> {
    if base.size > opts.max_object {
        // Never read whole: the object ships whole.
        return Ok(None);
    }
    let Some((reference, what)) = reference_form(refs, base, ropts, false)? else {
        return Ok(None);
    };
    let len = reference.len() as u64;
    if len > opts.max_object {
        return Ok(None);
    }
    Ok(Some(SpilledBase {
        blake3: *blake3::hash(&reference).as_bytes(),
        form: windows::RefForm::spill(refs.dir(), &reference)?,
        what,
        len,
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
    permit: &mut dyn windows::Hold,
) -> Result<Option<(Frames, Base)>> {
    let Some((spilled, blake3)) = windows::RefForm::open(copy, base.size, &base.sha256)? else {
        refs.damaged(&base.sha256)?;
        return Ok(None);
    };
    let Some(w) = windows::encode(key, src, &spilled, (opts.window, level), refs.dir(), permit)?
    else {
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

#[cfg(test)]
mod tests;
