//! The analysis of one object against its predecessor: its recipe and
//! expanded form under the memory budget, checked by the rebuild the inside
//! will run, and the patch as one zstd frame.

use super::{walked_copy, windows, Content, DeltaOptions, Recipes, References, EXPANSION};
use anyhow::{bail, Context, Result};
use ferry_protocol::id::{Sha256, Sha256Hasher};
use ferry_protocol::path::ObjectKey;
use std::io::Write;

/// What the analysis of one object works with.
#[derive(Clone, Copy)]
pub(super) struct Cx<'a> {
    pub(super) key: &'a ObjectKey,
    pub(super) sha256: &'a Sha256,
    /// Where the object's copy is (read again if it must be analysed twice)
    /// and large forms are spilled.
    pub(super) refs: &'a References,
    /// An expanded form larger than this is spilled and patched in windows.
    pub(super) window: u64,
    /// The base's deflate streams, which the check copies when the object
    /// shares them, as the inside does.
    pub(super) known: Option<&'a ferry_recipe::KnownStreams>,
    /// The base's GNU gzip parse, which the check copies into the object's
    /// cut stream as the inside's rebuild does (a base that is one gzip
    /// member, its form made before the check: [`super::beside`]).
    pub(super) parse: Option<&'a ferry_recipe::reuse::Base<'a>>,
    /// Whether the rebuild check of an expanded form patched in windows is
    /// left to the caller ([`Expanded::check`]), which runs it while the
    /// windows are encoded.
    pub(super) defer: bool,
    /// `DeltaOptions::streamed_min`: a kept gzip object this large is
    /// analysed as its copy is read ([`streamed`]).
    pub(super) streamed_min: u64,
}

/// Where an expanded form waits while the reference form is made.
pub(super) enum Held {
    Memory(Vec<u8>),
    Spilled(std::fs::File),
}

/// An object's expanded form, checked (or with its check to run): where it
/// is, its length and BLAKE3.
pub(super) struct Expanded {
    pub(super) held: Held,
    pub(super) len: u64,
    pub(super) blake3: [u8; 32],
    /// The rebuild check still to run, when it was deferred (`Cx::defer`):
    /// nothing of the object ships before it passes.
    pub(super) check: Option<Deferred>,
}

/// A rebuild check left to the caller: the recipe, run on the spilled
/// expanded form, must give the object (see [`rebuilds_from`]).
pub(super) struct Deferred {
    recipe: Vec<u8>,
    /// Length of the expanded form.
    elen: u64,
    /// Length of the object.
    len: u64,
    /// The known streams the check copies (the base's merged with the
    /// object's verified ones), with the permit that holds them; `None`:
    /// the base's (`Cx::known`).
    known: Option<(
        ferry_recipe::KnownStreams,
        Option<ferry_recipe::budget::Permit<'static>>,
    )>,
    /// A fresh analysis's report (not one whose recipe came from the
    /// cache): once the check passes, the recipe is kept in the analysis
    /// cache and these streams are counted ([`Recipes::keep_fresh`]).
    pub(super) fresh: Option<ferry_recipe::Report>,
}

impl Deferred {
    /// Runs the check on the expanded form in `file` (read with positioned
    /// reads: other threads read it too). `cx` is the object's (its base's
    /// known streams).
    pub(super) fn run(&self, cx: &Cx<'_>, file: &std::fs::File) -> Result<()> {
        let known = match &self.known {
            Some((k, _)) => (!k.is_empty()).then_some(k),
            None => cx.known,
        };
        let with = Cx { known, ..*cx };
        let mut reader = std::io::BufReader::with_capacity(1 << 20, At { file, pos: 0 });
        rebuilds_from(&with, &self.recipe, &mut reader, self.elen, self.len)
    }

    /// What the check's largest encoder reserves from the budget
    /// (`Recipe::rebuild_memory`: an xz encoder's).
    pub(super) fn encoder_memory(&self) -> u64 {
        ferry_recipe::Recipe::from_bytes(&self.recipe).map_or(0, |r| r.rebuild_memory())
    }

    /// The recipe checked.
    pub(super) fn recipe(&self) -> &[u8] {
        &self.recipe
    }
}

/// A file read with positioned reads from its own offset.
struct At<'f> {
    file: &'f std::fs::File,
    pos: u64,
}

impl std::io::Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl std::io::Seek for At<'_> {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        let pos = match to {
            std::io::SeekFrom::Start(p) => Some(p),
            std::io::SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            std::io::SeekFrom::End(_) => None,
        };
        self.pos = pos.ok_or_else(|| std::io::Error::other("seek outside the expanded form"))?;
        Ok(self.pos)
    }
}

/// Writes `bytes` to an unnamed file in `dir` (created, then unlinked at
/// once, so a crash leaves nothing behind) and returns it for reading.
pub(super) fn spill(dir: &std::path::Path, bytes: &[u8]) -> Result<std::fs::File> {
    let mut file = ferry_agent_common::fsx::unlinked_file(dir, "expanded")?;
    file.write_all(bytes)
        .with_context(|| format!("cannot write a spill file in {}", dir.display()))?;
    Ok(file)
}

/// `expanded` as one zstd frame against `reference`, decoded again and
/// checked (length and BLAKE3) as the inside will; `None` (with a warning)
/// if it does not decode to what it encodes. The decoded copy is reserved
/// on `permit` (which holds the expanded form and the reference form).
pub(super) fn one_frame(
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
pub(super) fn analyse_content(
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
        (Content::Kept { len }, Some(file))
            if cx.defer && len >= cx.streamed_min && streamed_copy(&file)? =>
        {
            let mut permit = ferry_recipe::budget::reserve(STREAMED_HELD);
            match streamed(cx, &file, len, ropts, recipes, &mut permit)? {
                Some(analysed) => (permit, analysed),
                None => {
                    drop(permit);
                    whole(cx, Content::Kept { len }, (opts, ropts), expansion, recipes)?
                }
            }
        }
        (content, _) => whole(cx, content, (opts, ropts), expansion, recipes)?,
    };
    Ok(analysed.map(|a| (permit, walked, a)))
}

/// The analysis of an object read whole (see [`analyze_verified`]), under
/// a share of the budget for it and its expanded form (`expansion` times
/// it); `None` for an object over `max_object`, never read whole (a layer
/// that was not analysed as it was read ships whole).
#[allow(clippy::type_complexity)]
fn whole(
    cx: &Cx<'_>,
    content: Content,
    (opts, ropts): (&DeltaOptions, &ferry_recipe::Options),
    expansion: u64,
    recipes: &Recipes,
) -> Result<(
    ferry_recipe::budget::Permit<'static>,
    Option<(Vec<u8>, Expanded, bool)>,
)> {
    let len = content.len();
    let mut permit = ferry_recipe::budget::reserve(0);
    if len > opts.max_object {
        return Ok((permit, None));
    }
    permit.grow(len + expansion * len);
    let data = match content {
        Content::Bytes(data) => data,
        // Read under the share just reserved, not by the scan.
        Content::Kept { .. } => match cx.refs.get(cx.sha256)? {
            Some(data) => data,
            None => return Ok((permit, None)),
        },
    };
    let analysed = analyze_verified(cx, data, ropts, recipes, &mut permit)?;
    Ok((permit, analysed))
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
/// it back as the rebuild goes: the check's encoders (an xz stream's holds
/// its match finder) are never held beside both. `permit` holds the object's
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
    if let Some(recipe) = recipes
        .get(sha256, ropts.reproduce_xz)
        .and_then(|r| within_version(r, ropts))
    {
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

/// A kept recipe as these settings make it: with cuts off (an inside that
/// reads recipe version 3 at most), a cut stream's serial form; for an
/// inside that reads version 6 at most, a cut Go stream's serial form (its
/// cuts need version 7). An entry that does not decode, or needs a newer
/// version than the insides read (an encoder they lack), is left as it
/// is: its check fails, or it is not used, and the object is analysed
/// again.
pub(super) fn within_version(recipe: Vec<u8>, ropts: &ferry_recipe::Options) -> Option<Vec<u8>> {
    let Some(&version) = recipe.first() else {
        return Some(recipe);
    };
    if version <= ropts.max_recipe_version
        && (ropts.deflate_cuts.is_some() || version < ferry_recipe::RECIPE_VERSION_4)
    {
        return Some(recipe);
    }
    let serial = match ferry_recipe::Recipe::from_bytes(&recipe) {
        Ok(r) if ropts.deflate_cuts.is_none() => r.serial(),
        Ok(r) => r.serial_above(ropts.max_recipe_version),
        Err(_) => return Some(recipe),
    };
    (serial.version() <= ropts.max_recipe_version).then(|| serial.to_bytes())
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
        let object = data.as_deref().expect("read");
        // Members shared with the base are not searched: the check copies
        // them from the base (`cx.known`), as the inside does.
        let analysis = ferry_recipe::analyze_sharing(object, &opts, cx.known);
        let recipe = if analysis.recipe.is_identity() {
            Vec::new()
        } else {
            analysis.recipe.to_bytes()
        };
        // The members whose whole output the search compared are copied by
        // the check, with the base's known streams: each member's encoder
        // output is then checked once, not twice.
        // Their copies (at most the object), held until the check is done
        // (the budget's thread holds this beside `permit`).
        let mut copies = ferry_recipe::budget::reserve(len);
        let verified = ferry_recipe::verified_streams(&analysis, object);
        copies.shrink(verified.held());
        let known = match cx.known {
            Some(base) => base.merged(&verified),
            None => verified,
        };
        permit.resize(len + analysis.expanded.len() as u64);
        let with = Cx {
            known: (!known.is_empty()).then_some(&known),
            ..*cx
        };
        match checked(&with, &recipe, analysis.expanded, len, &mut data, permit)? {
            Ok(mut e) => {
                if let Some(d) = &mut e.check {
                    // Checked by the caller; kept (and its streams counted)
                    // once it checks.
                    d.known = Some((known, Some(copies)));
                    d.fresh = Some(analysis.report);
                    return Ok(Some((recipe, e, false)));
                }
                recipes.keep_fresh(key, sha256, ropts.reproduce_xz, &recipe, &analysis.report);
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
    if elen <= cx.window.min(SPILL_FOR_CHECK) {
        let blake3 = *blake3::hash(&expanded).as_bytes();
        permit.resize(elen);
        return Ok(rebuilds(cx, recipe, &expanded, len).map(|()| Expanded {
            held: Held::Memory(expanded),
            len: elen,
            blake3,
            check: None,
        }));
    }
    // Hashed on another core while it is written out (a layer's expanded
    // form: about 0.3 s of writes and 0.07 s of BLAKE3).
    let (blake3, file) = std::thread::scope(|s| {
        let hashed = s.spawn(|| *blake3::hash(&expanded).as_bytes());
        let file = spill(cx.refs.dir(), &expanded);
        (hashed.join(), file)
    });
    let blake3 = blake3.unwrap_or_else(|p| std::panic::resume_unwind(p));
    let file = file?;
    drop(expanded);
    checked_spilled(cx, recipe, (file, elen, blake3), len, permit)
}

/// The rest of [`checked`] once the expanded form is in `file` (`elen`
/// bytes of BLAKE3 `blake3`): the check, deferred or run here, reading it
/// back; the form read back into memory if under a window.
fn checked_spilled(
    cx: &Cx<'_>,
    recipe: &[u8],
    (file, elen, blake3): (std::fs::File, u64, [u8; 32]),
    len: u64,
    permit: &mut ferry_recipe::budget::Permit<'_>,
) -> Result<std::result::Result<Expanded, anyhow::Error>> {
    permit.shrink(0);
    if cx.defer && elen > cx.window {
        return Ok(Ok(Expanded {
            held: Held::Spilled(file),
            len: elen,
            blake3,
            check: Some(Deferred {
                recipe: recipe.to_vec(),
                elen,
                len,
                known: None,
                fresh: None,
            }),
        }));
    }
    let mut reader = std::io::BufReader::with_capacity(1 << 20, &file);
    let rebuilt = rebuilds_from(cx, recipe, &mut reader, elen, len);
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
        check: None,
    }))
}

/// What the streamed analysis holds (`ferry_recipe::stream_expand`'s 32 MiB
/// of plain and 9 MiB of compressed bytes for the encoder search, its read
/// and write buffers).
const STREAMED_HELD: u64 = 48 << 20;

/// Whether the kept copy `file` starts as a gzip member, a zip or a package
/// (a deb, an RPM): what `ferry_recipe::stream_expand` reads as it goes.
pub(super) fn streamed_copy(file: &std::fs::File) -> Result<bool> {
    use std::os::unix::fs::FileExt;
    let mut head = [0u8; 4];
    match file.read_exact_at(&mut head, 0) {
        Ok(()) => Ok(ferry_recipe::stream_expand::is_streamed(&head)),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e).context("cannot read the kept copy of a changed object"),
    }
}

/// The analysis of a large object kept only in its copy `file` (`len`
/// bytes) that is one gzip member (a layer), a zip (a wheel) or a deb, made as the
/// copy is read (`ferry_recipe::stream_expand::analyze_streamed`): its expanded form
/// goes to a spill file, hashed as it is written, and is never held; the
/// copy's SHA-256 is checked as it is read. A recipe kept for the object is
/// tried first, its form made the same way. The check is [`checked`]'s,
/// from the spill. `None` when the object is not analysed this way (not
/// one member, an encoder found only by preflate-rs, or a check that
/// fails): the caller analyses it whole, as before (or ships it whole).
#[allow(clippy::type_complexity)]
fn streamed(
    cx: &Cx<'_>,
    file: &std::fs::File,
    len: u64,
    ropts: &ferry_recipe::Options,
    recipes: &Recipes,
    permit: &mut ferry_recipe::budget::Permit<'_>,
) -> Result<Option<Option<(Vec<u8>, Expanded, bool)>>> {
    use ferry_agent_common::forms::spill_made;
    let (key, dir) = (cx.key, cx.refs.dir());
    let what = key.to_string();
    if let Some(recipe) = recipes
        .get(cx.sha256, ropts.reproduce_xz)
        .and_then(|r| within_version(r, ropts))
    {
        let Some(form) = ferry_agent_common::forms::spill_form(file, len, dir, &what)? else {
            return Ok(None);
        };
        if form.sha256 != *cx.sha256 {
            cx.refs.damaged(cx.sha256)?;
            return Ok(Some(None));
        }
        let spilled = (form.file, form.len, form.blake3);
        if let Ok(e) = checked_spilled(cx, &recipe, spilled, len, permit)? {
            return Ok(Some(Some((recipe, e, true))));
        }
        // Not this form's recipe: analysed afresh below.
    }
    let opts = ferry_recipe::Options {
        check_streams: false,
        ..ropts.clone()
    };
    let made = spill_made(file, len, dir, &what, |mut object, mut out| {
        ferry_recipe::stream_expand::analyze_streamed(file, len, &mut object, &mut out, &opts)
    })?;
    let Some((form, analysis)) = made else {
        return Ok(None);
    };
    if form.sha256 != *cx.sha256 {
        cx.refs.damaged(cx.sha256)?;
        return Ok(Some(None));
    }
    let (spill, elen, blake3) = (form.file, form.len, form.blake3);
    debug_assert_eq!(elen, analysis.expanded_len);
    let recipe = analysis.recipe.to_bytes();
    match checked_spilled(cx, &recipe, (spill, elen, blake3), len, permit)? {
        Ok(mut e) => {
            match &mut e.check {
                // Kept (and its stream counted) once the caller's check passes.
                Some(d) => d.fresh = Some(analysis.report),
                None => recipes.keep_fresh(
                    key,
                    cx.sha256,
                    ropts.reproduce_xz,
                    &recipe,
                    &analysis.report,
                ),
            }
            Ok(Some(Some((recipe, e, false))))
        }
        // Analysed again whole, stream by stream.
        Err(_) => Ok(None),
    }
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
    Ok(Expanded {
        held,
        len,
        blake3,
        check: None,
    })
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
        check: None,
    };
    Ok(Some((Vec::new(), expanded, false)))
}

/// [`rebuilds`] from an expanded form read from `expanded` (rewound and
/// read again when the known streams' copy did not check) as the rebuild
/// goes.
fn rebuilds_from(
    cx: &Cx<'_>,
    recipe: &[u8],
    expanded: &mut (impl std::io::Read + std::io::Seek),
    expanded_len: u64,
    len: u64,
) -> Result<()> {
    let key = cx.key;
    if recipe.is_empty() {
        let mut out = HashingSink::default();
        std::io::Seek::rewind(expanded)
            .with_context(|| format!("cannot read the expanded form of {key} back"))?;
        std::io::copy(
            &mut std::io::Read::take(&mut *expanded, expanded_len),
            &mut out,
        )
        .with_context(|| format!("cannot read the expanded form of {key} back"))?;
        return out.is(cx, len);
    }
    let recipe = ferry_recipe::Recipe::from_bytes(recipe)
        .with_context(|| format!("{key}: the recipe just written does not decode"))?;
    with_base_then_without(cx, len, |out, from| {
        std::io::Seek::rewind(expanded)
            .with_context(|| format!("cannot read the expanded form of {key} back"))?;
        ferry_recipe::rebuild_from_base(&recipe, expanded, (expanded_len, len), out, from)
            .with_context(|| format!("{key}: the recipe does not rebuild the object"))
    })
}

/// Runs the inside's last steps (decode the recipe, rebuild from the expanded
/// form, hash what comes out) and compares the size and SHA-256.
fn rebuilds(cx: &Cx<'_>, recipe: &[u8], expanded: &[u8], len: u64) -> Result<()> {
    if recipe.is_empty() {
        let mut out = HashingSink::default();
        out.write_all(expanded)?;
        return out.is(cx, len);
    }
    let recipe = ferry_recipe::Recipe::from_bytes(recipe)
        .with_context(|| format!("{}: the recipe just written does not decode", cx.key))?;
    with_base_then_without(cx, len, |out, from| {
        ferry_recipe::rebuild_with_base(&recipe, expanded, len, out, from)
            .with_context(|| format!("{}: the recipe does not rebuild the object", cx.key))
    })
}

/// Rebuilds with `rebuild` into a hashing sink, copying the base's known
/// streams and its parse, and if that does not give the object (a base
/// stream of the same plain bytes and length but other bytes, a parse
/// copied where the object's is not the base's), again without them: the
/// inside's steps, in the inside's order.
fn with_base_then_without(
    cx: &Cx<'_>,
    len: u64,
    mut rebuild: impl FnMut(&mut HashingSink, ferry_recipe::FromBase<'_>) -> Result<()>,
) -> Result<()> {
    let from = ferry_recipe::FromBase {
        known: cx.known,
        parse: cx.parse,
    };
    if from.known.is_some() || from.parse.is_some() {
        let mut out = HashingSink::default();
        if rebuild(&mut out, from).is_ok() && out.is(cx, len).is_ok() {
            return Ok(());
        }
    }
    let mut out = HashingSink::default();
    rebuild(&mut out, ferry_recipe::FromBase::default())?;
    out.is(cx, len)
}

/// A writer that only counts and hashes.
#[derive(Default)]
struct HashingSink {
    hasher: Sha256Hasher,
    len: u64,
}

impl HashingSink {
    /// Whether what was written is the object: its size and SHA-256.
    fn is(self, cx: &Cx<'_>, len: u64) -> Result<()> {
        if self.len != len || self.hasher.finish() != *cx.sha256 {
            bail!("{}: the recipe rebuilds other bytes than upstream's (a defect in ferry-recipe: please report it)", cx.key);
        }
        Ok(())
    }
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
