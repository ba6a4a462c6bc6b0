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
//! Bit-exact or nothing: before a patch is shipped, the outside decodes it
//! and runs the recipe with the same code the inside runs, and compares the
//! result with the object's bytes. A patch that does not pay (larger than
//! the chunks the object would ship whole) is not used.

mod predecessor;
mod refs;

pub(crate) use predecessor::Families;
pub(crate) use refs::References;

use anyhow::{bail, Context, Result};
use ferry_protocol::catalog::{Base, BaseForm, FileObject};
use ferry_protocol::path::ObjectKey;

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
}

impl Default for DeltaOptions {
    fn default() -> Self {
        DeltaOptions {
            level: Some(FAST),
            max_object: 256 << 20,
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
    /// The patch frame.
    pub(crate) patch: Vec<u8>,
    /// Length of the expanded form.
    pub(crate) expanded_len: u64,
    /// BLAKE3 of the expanded form.
    pub(crate) expanded_blake3: [u8; 32],
    /// The base the patch is made against.
    pub(crate) base: Base,
}

impl Patched {
    /// Bytes this encoding adds to the bundle, before chunk dedup.
    pub(crate) fn cost(&self) -> u64 {
        (self.recipe.len() + self.patch.len()) as u64
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
}

/// Encodes `data` (object `key`) against `base_bytes` (object `base_key`
/// of the last catalog, `base`), and checks that the inside's steps give
/// `data` back. `None` when an expanded form is over the size bound.
pub(crate) fn patch_against(
    key: &ObjectKey,
    data: &[u8],
    base_key: &ObjectKey,
    base: &FileObject,
    base_bytes: &[u8],
    opts: &DeltaOptions,
    level: i32,
) -> Result<Option<Patched>> {
    let ropts = ferry_recipe::Options {
        // Rebuilding an xz stream costs what compressing it costs (about
        // 1.5 MB/s a core): only the slow settings reproduce them.
        reproduce_xz: level >= SLOW_LEVELS,
        ..ferry_recipe::Options::default()
    };
    let analysis = ferry_recipe::analyze(data, &ropts);
    let (reference, form) = match ferry_recipe::expand(base_bytes, &ropts) {
        Ok(r) => (
            r,
            BaseForm::Expanded {
                version: ferry_recipe::EXPAND_VERSION,
            },
        ),
        Err(_) => (base_bytes.to_vec(), BaseForm::Bytes),
    };
    let expanded = &analysis.expanded;
    if expanded.len() as u64 > opts.max_object || reference.len() as u64 > opts.max_object {
        return Ok(None);
    }
    let patch = ferry_protocol::delta::encode(expanded, &reference, level)
        .with_context(|| format!("cannot encode {key} against {base_key}"))?;
    let recipe = if analysis.recipe.is_identity() {
        Vec::new()
    } else {
        analysis.recipe.to_bytes()
    };
    if let Err(e) = verify(
        key,
        data,
        &recipe,
        &patch,
        &reference,
        expanded.len() as u64,
    ) {
        eprintln!("ferry-out: warning: {e:#}; {key} ships whole");
        return Ok(None);
    }
    Ok(Some(Patched {
        recipe,
        patch,
        expanded_len: expanded.len() as u64,
        expanded_blake3: *blake3::hash(expanded).as_bytes(),
        base: Base {
            key: base_key.clone(),
            sha256: base.sha256,
            form,
            len: reference.len() as u64,
            blake3: *blake3::hash(&reference).as_bytes(),
        },
    }))
}

/// Runs the inside's steps (decode the patch, run the recipe) and compares
/// the result with the object's bytes.
fn verify(
    key: &ObjectKey,
    data: &[u8],
    recipe: &[u8],
    patch: &[u8],
    reference: &[u8],
    expanded_len: u64,
) -> Result<()> {
    let expanded = ferry_protocol::delta::decode(patch, reference, expanded_len, &key.to_string())?;
    let rebuilt = if recipe.is_empty() {
        expanded
    } else {
        let recipe = ferry_recipe::Recipe::from_bytes(recipe)
            .with_context(|| format!("{key}: the recipe just written does not decode"))?;
        let mut out = Vec::with_capacity(data.len());
        ferry_recipe::rebuild(&recipe, &expanded, data.len() as u64, &mut out)
            .with_context(|| format!("{key}: the recipe does not rebuild the object"))?;
        out
    };
    if rebuilt != data {
        bail!("{key}: the patch and recipe rebuild other bytes than upstream's (a defect in ferry-recipe: please report it)");
    }
    Ok(())
}
