//! Objects carried as a recipe and an expanded form (format version 2):
//! the expanded form comes from chunks, or from a patch decoded against the
//! reference form of the base object this store already serves; the recipe
//! then recompresses it into upstream's exact bytes. The caller checks size
//! and SHA-256 before the object can enter a generation.
//!
//! Every step is checked on the way: the base's bytes against the digest the
//! patch was made against (a rotten or replaced base is named, never used),
//! its reference form against the declared length and BLAKE3, the expanded
//! form against its declared length and BLAKE3. Everything is bounded by the
//! receiver's `max_expanded_bytes` (the manifest check refuses more).

use super::BuildCtx;
use anyhow::{bail, Context, Result};
use ferry_protocol::catalog::{Base, BaseForm, ChunkRef, Expanded, FileObject, Rebuilt};
use ferry_protocol::id::Sha256;
use ferry_protocol::path::ObjectKey;
use ferry_protocol::Error;
use std::io::Write;
use std::path::Path;

/// Writes object `key` (encoded as `r`) to `out`: the expanded form is built
/// in memory (bounded by `max_expanded_bytes`), the object streams out of the
/// recipe. With `copy_known`, a zlib member the object shares with its base
/// (a wheel's unchanged file) is copied from the base instead of deflated
/// (`ferry_recipe::KnownStreams`); true when some could have been. The
/// caller checks size and SHA-256 of what was written, and if they are wrong
/// after a copy, writes the object again without.
pub(super) fn write_object(
    cx: &BuildCtx<'_>,
    dir: &str,
    key: &ObjectKey,
    f: &FileObject,
    (r, recipe): Encoded<'_>,
    out: &mut impl Write,
    copy_known: bool,
) -> Result<bool> {
    let lend = copy_known && recipe.is_some_and(ferry_recipe::Recipe::copies_base_parse);
    let (expanded, known, lent) = match &r.expanded {
        Expanded::Chunks(refs) => (gather(cx, key, refs)?, None, None),
        Expanded::Patch { base, patch } => {
            let (reference, known, lent) = reference_form(cx, dir, key, base, (copy_known, lend))?;
            let patch = gather(cx, key, patch)?;
            let expanded = ferry_protocol::delta::decode(
                &patch,
                &reference,
                r.expanded_len,
                &key.to_string(),
            )?;
            // The base's parse is read from its reference form's bytes.
            let lent = lent.map(|lent| (lent, reference));
            (expanded, known, lent)
        }
        Expanded::Windows { base, windows } => {
            let encoder = recipe.map_or(0, ferry_recipe::Recipe::rebuild_memory);
            // A zip whose streams the outside's check copied is held with
            // them, whatever `reference_in_memory` says
            // (`ferry_recipe::KNOWN_FORM_MOST`).
            let over = base.len > super::reference_in_memory(cx.reference_in_memory, encoder);
            let large = over && !(copy_known && knows_streams(cx, dir, key, base)?);
            // A large base's reference form is made into a spill file as the
            // base is read, and each window reads its range from it.
            // Its parse is lent read from the base's copy and the spill.
            if large {
                if let Some((reference, lent)) = spilled_reference(cx, dir, key, base, lend)? {
                    let parse = match (&reference, &lent) {
                        (Reference::File(form, _), Some((copy, lent))) => {
                            Some(lent.base(copy, form))
                        }
                        _ => None,
                    };
                    let from = ferry_recipe::FromBase {
                        known: None,
                        parse: parse.as_ref(),
                    };
                    let parts = (&reference, &windows[..], from);
                    super::windowed::write(cx, key, f, (r, recipe), parts, out)?;
                    return Ok(parse.is_some());
                }
            }
            // A large base that is not one gzip member, or a zip whose
            // streams are known, is held whole after all, beyond the
            // window's range the rebuild reserved (`held_to_rebuild`).
            let _whole = over.then(|| ferry_recipe::budget::reserve(base.len));
            let (reference, known, lent) = reference_form(cx, dir, key, base, (copy_known, lend))?;
            let parse = lent.as_ref().map(|lent| base_parse(lent, &reference));
            let from = ferry_recipe::FromBase {
                known: known.as_ref(),
                parse: parse.as_ref(),
            };
            let reference = Reference::Borrowed(&reference);
            let parts = (&reference, &windows[..], from);
            super::windowed::write(cx, key, f, (r, recipe), parts, out)?;
            return Ok(known.is_some() || parse.is_some());
        }
    };
    if expanded.len() as u64 != r.expanded_len
        || *blake3::hash(&expanded).as_bytes() != r.expanded_blake3
    {
        bail!(Error::BadPatch {
            key: key.to_string(),
            why: "the expanded form differs from the one the catalog declares".into(),
        });
    }
    let Some(recipe) = recipe else {
        out.write_all(&expanded)
            .with_context(|| format!("cannot write object {key}"))?;
        return Ok(false);
    };
    let parse = lent
        .as_ref()
        .map(|(lent, reference)| base_parse(lent, reference));
    let from = ferry_recipe::FromBase {
        known: known.as_ref(),
        parse: parse.as_ref(),
    };
    ferry_recipe::rebuild_with_base(recipe, &expanded, f.size, out, from)
        .with_context(|| format!("object {key}: its recipe does not rebuild it"))?;
    Ok(known.is_some() || parse.is_some())
}

/// Whether `base`'s streams are known to the rebuild: a zip worth knowing
/// (`ferry_recipe::known_streams_worth`, by its first bytes and size)
/// whose reference form is at most `ferry_recipe::KNOWN_FORM_MOST`. The
/// outside's check copied its streams then, so this rebuild must too.
fn knows_streams(cx: &BuildCtx<'_>, dir: &str, key: &ObjectKey, base: &Base) -> Result<bool> {
    if base.len > ferry_recipe::KNOWN_FORM_MOST {
        return Ok(false);
    }
    let missing = missing_base(key, base);
    let path = base_path(cx, dir, base, &missing)?;
    let mut head = [0u8; 4];
    let read = std::fs::File::open(&path).and_then(|f| {
        let len = f.metadata()?.len();
        std::os::unix::fs::FileExt::read_exact_at(&f, &mut head, 0)?;
        Ok(len)
    });
    // A base that cannot be read is the reference form's to report.
    Ok(read.is_ok_and(|len| ferry_recipe::known_streams_worth(&head, len)))
}

/// The base's parse of its deflate stream (read from its file, its plain
/// bytes in `reference`, its block starts and index given). A file changed
/// since it was checked gives copies that are not this object's, which its
/// digest finds.
fn base_parse<'a>((file, lent): &'a Lent, reference: &'a [u8]) -> ferry_recipe::reuse::Base<'a> {
    lent.base_held(file, reference)
}

/// The concatenated bytes of `refs`, each chunk checked.
pub(super) fn gather(cx: &BuildCtx<'_>, key: &ObjectKey, refs: &[ChunkRef]) -> Result<Vec<u8>> {
    let total: u64 = refs.iter().map(|r| r.len as u64).sum();
    let mut out = Vec::with_capacity(total as usize);
    for r in refs {
        out.extend_from_slice(&super::chunk(cx, key, r)?);
    }
    Ok(out)
}

/// A rebuilt object's encoding, and its recipe decoded (`None`: the object
/// is its own expanded form).
pub(super) type Encoded<'a> = (&'a Rebuilt, Option<&'a ferry_recipe::Recipe>);

/// `r`'s recipe, read from its chunks and decoded; `None` when it has none
/// (the object is its own expanded form).
pub(super) fn recipe(
    cx: &BuildCtx<'_>,
    key: &ObjectKey,
    r: &Rebuilt,
) -> Result<Option<ferry_recipe::Recipe>> {
    if r.recipe.is_empty() {
        return Ok(None);
    }
    let bytes = gather(cx, key, &r.recipe)?;
    let recipe = ferry_recipe::Recipe::from_bytes(&bytes)
        .with_context(|| format!("object {key}: its recipe does not decode"))?;
    Ok(Some(recipe))
}

/// What a base lends a rebuild besides its reference form: its file (read
/// again by the copiers of its parse, a window at a time: the bytes read to
/// expand it are not kept), and where its gzip member's deflate stream
/// is, that stream's block starts and its plain index.
type Lent = (std::fs::File, ferry_recipe::reuse::Lendable);

/// The reference form of `base`, from the previous generation's copy, and
/// with `copy_known` its deflate streams when they are worth knowing
/// (`ferry_recipe::known_streams_worth`) and it has two or more; with
/// `lend`, its bytes and its deflate stream when it is a gzip member of a
/// MiB or more.
fn reference_form(
    cx: &BuildCtx<'_>,
    dir: &str,
    key: &ObjectKey,
    base: &Base,
    (copy_known, lend): (bool, bool),
) -> Result<(Vec<u8>, Option<ferry_recipe::KnownStreams>, Option<Lent>)> {
    let missing = missing_base(key, base);
    let path = base_path(cx, dir, base, &missing)?;
    let bytes = read_base(&path, &missing)?;
    let zip = copy_known && ferry_recipe::known_streams_worth(&bytes, bytes.len() as u64);
    let cannot = |e: ferry_recipe::ExpandError| {
        missing(format!("its reference form cannot be computed: {e}"))
    };
    let mut lent = None;
    // The form's BLAKE3, when it was taken beside other work.
    let mut hashed = None;
    let (reference, known) = match base.form {
        BaseForm::Bytes => {
            check_base(&path, &bytes, base, &missing)?;
            (bytes, None)
        }
        BaseForm::Expanded { version } if version == ferry_recipe::EXPAND_VERSION && zip => {
            check_base(&path, &bytes, base, &missing)?;
            let (reference, known) =
                ferry_recipe::expand_known(bytes, &ferry_recipe::Options::default())
                    .map_err(cannot)?;
            (reference, (!known.is_empty()).then_some(known))
        }
        BaseForm::Expanded { version } if version == ferry_recipe::EXPAND_VERSION => {
            // The digest is checked on another core while the base expands
            // (a layer's inflate is the serial start of its rebuild); the
            // expansion is used only once the digest is right.
            // With `lend`, the block starts of a gzip base's stream are
            // read on that core too (for the copiers of its parse), while
            // this one makes the form; then the form's BLAKE3 and the index
            // of its stream's plain bytes are taken, on both cores once the
            // other is done.
            let ((checked, starts), reference) = rayon::join(
                || {
                    let checked = check_base(&path, &bytes, base, &missing);
                    let starts = lend.then(|| ferry_recipe::reuse::gzip_block_starts(&bytes));
                    (checked, starts.flatten())
                },
                || {
                    let made =
                        ferry_recipe::expand_deflated(&bytes, &ferry_recipe::Options::default());
                    made.map(|(reference, streams)| {
                        // Both read the form: on two cores when the digest
                        // and the block starts are done (they take less
                        // time than the inflate).
                        let (blake3, index) = rayon::join(
                            || *blake3::hash(&reference).as_bytes(),
                            || {
                                streams
                                    .first()
                                    .filter(|_| lend)
                                    .and_then(|s| reference.get(s.plain.0..s.plain.1))
                                    .map(ferry_recipe::reuse::PlainIndex::of)
                            },
                        );
                        (reference, streams, blake3, index)
                    })
                },
            );
            checked?;
            let (reference, streams, blake3, index) = reference.map_err(cannot)?;
            hashed = Some(blake3);
            lent = starts.and_then(|(start, starts, plain_len)| {
                let stream = streams.into_iter().next()?;
                let fits = stream.compressed.0 == start
                    && (stream.plain.1 - stream.plain.0) as u64 == plain_len
                    && plain_len >= ferry_recipe::reuse::LEND_MIN;
                fits.then_some(())?;
                let lent = ferry_recipe::reuse::Lendable {
                    stream,
                    starts,
                    index: index?,
                };
                Some((std::fs::File::open(&path).ok()?, lent))
            });
            (reference, None)
        }
        BaseForm::Expanded { version } => bail!(missing(format!(
            "the patch needs reference form version {version}, this ferry-in computes version {}",
            ferry_recipe::EXPAND_VERSION
        ))),
    };
    let blake3 = hashed.unwrap_or_else(|| *blake3::hash(&reference).as_bytes());
    if reference.len() as u64 != base.len || blake3 != base.blake3 {
        bail!(missing(format!(
            "its reference form here ({} bytes) is not the one the patch was made against ({} bytes)",
            reference.len(),
            base.len
        )));
    }
    Ok((reference, known, lent))
}

/// A base's reference form, as the windows read their ranges of it.
pub(super) enum Reference<'a> {
    /// In memory, held by the caller (the base's parse reads it too).
    Borrowed(&'a [u8]),
    /// In a spill file (unlinked: it goes when it is closed).
    File(std::fs::File, u64),
}

impl Reference<'_> {
    /// Its bytes `start..end`, if it has them.
    pub(super) fn range(&self, start: u64, end: u64) -> Result<Option<std::borrow::Cow<'_, [u8]>>> {
        let within = |len: u64| start <= end && end <= len;
        Ok(match self {
            Reference::Borrowed(v) => slice(v, start, end).map(std::borrow::Cow::Borrowed),
            Reference::File(file, len) if within(*len) => {
                let mut bytes = vec![0u8; (end - start) as usize];
                std::os::unix::fs::FileExt::read_exact_at(file, &mut bytes, start)
                    .context("cannot read the base's spilled reference form")?;
                Some(std::borrow::Cow::Owned(bytes))
            }
            Reference::File(..) => None,
        })
    }
}

/// `v[start..end]`, if it has those bytes.
fn slice(v: &[u8], start: u64, end: u64) -> Option<&[u8]> {
    v.get(usize::try_from(start).ok()?..usize::try_from(end).ok()?)
}

/// The reference form of `base` made into a spill file under the state's
/// staging directory as the base's copy is read (a MiB at a time), when the
/// base is one gzip member, a zip or a deb (`ferry_agent_common::forms`): its SHA-256 is
/// checked as it is read, and the form against the length and BLAKE3 the
/// patch was made against. `None` when the base is neither or
/// its form made this way is not the one expected (the caller then expands
/// it whole, as `ferry_recipe::expand` does). With `lend`, a base that is
/// one gzip member of a MiB or more of plain bytes lends its parse too (its
/// copy, and where its stream and block starts are), as a base held does.
fn spilled_reference(
    cx: &BuildCtx<'_>,
    dir: &str,
    key: &ObjectKey,
    base: &Base,
    lend: bool,
) -> Result<Option<SpilledReference>> {
    let missing = missing_base(key, base);
    if base.form
        != (BaseForm::Expanded {
            version: ferry_recipe::EXPAND_VERSION,
        })
    {
        return Ok(None);
    }
    let path = base_path(cx, dir, base, &missing)?;
    let copy = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) => bail!(missing(format!("cannot read {}: {e}", path.display()))),
    };
    let len = copy.metadata().map(|m| m.len()).unwrap_or(0);
    let what = format!("base {} of {key}", base.key);
    let staging = cx.layout.staging();
    let made = if lend {
        ferry_agent_common::forms::spill_form_lending(&copy, len, &staging, &what)?
    } else {
        ferry_agent_common::forms::spill_form(&copy, len, &staging, &what)?.map(|f| (f, None))
    };
    let Some((form, lent)) = made else {
        return Ok(None);
    };
    if form.sha256 != base.sha256 {
        bail!(missing(damaged(&path)));
    }
    if form.len != base.len || form.blake3 != base.blake3 {
        return Ok(None);
    }
    let lent = lent.map(|l| (copy, l));
    Ok(Some((Reference::File(form.file, base.len), lent)))
}

/// A base's reference form in a spill file, and what it lends: its copy
/// (its stream is read from it) and its parse's place and index.
type SpilledReference = (
    Reference<'static>,
    Option<(std::fs::File, ferry_recipe::reuse::Lendable)>,
);

/// The error naming `base` (of object `key`) and why it cannot be used.
fn missing_base<'a>(key: &'a ObjectKey, base: &'a Base) -> impl Fn(String) -> Error + Sync + 'a {
    move |why| Error::MissingBase {
        key: key.to_string(),
        base: base.key.to_string(),
        why,
    }
}

/// Where the previous generation holds `base`.
fn base_path(
    cx: &BuildCtx<'_>,
    dir: &str,
    base: &Base,
    missing: &dyn Fn(String) -> Error,
) -> Result<std::path::PathBuf> {
    match cx.prev_path(dir, &base.key, &base.sha256) {
        Some(path) => Ok(path),
        None => bail!(missing("this store serves no generation yet".into())),
    }
}

/// Why a base whose bytes at `path` are not its digest's is not used.
fn damaged(path: &Path) -> String {
    format!(
        "{} does not match its digest (damaged? `ferry-in scrub` finds and quarantines such files)",
        path.display()
    )
}

/// Reads the base's served copy.
fn read_base(path: &Path, missing: &dyn Fn(String) -> Error) -> Result<Vec<u8>> {
    match std::fs::read(path) {
        Ok(b) => Ok(b),
        Err(e) => bail!(missing(format!("cannot read {}: {e}", path.display()))),
    }
}

/// Checks the base's bytes (read from `path`) against its digest.
fn check_base(
    path: &Path,
    bytes: &[u8],
    base: &Base,
    missing: &(dyn Fn(String) -> Error + Sync),
) -> Result<()> {
    if Sha256::of(bytes) != base.sha256 {
        bail!(missing(damaged(path)));
    }
    Ok(())
}
