//! Placeholder of the recipe crate's interface (identity recipes only); the
//! real crate replaces this file when it is merged.
#![warn(unreachable_pub)]

/// Version of [`expand`]'s output.
pub const EXPAND_VERSION: u32 = 1;

/// Analysis knobs.
#[derive(Clone, Debug, Default)]
pub struct Options {}

/// What analysis found.
#[derive(Debug, Default)]
pub struct Report {}

/// An analysed object.
pub struct Analysis {
    /// How to rebuild.
    pub recipe: Recipe,
    /// The expanded form.
    pub expanded: Vec<u8>,
    /// What was found.
    pub report: Report,
}

/// How to rebuild an object from its expanded form.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Recipe {
    len: u64,
}

/// A recipe that does not decode.
#[derive(Debug, thiserror::Error)]
#[error("recipe does not decode: {0}")]
pub struct RecipeError(String);

/// A rebuild that fails.
#[derive(Debug, thiserror::Error)]
#[error("rebuild failed: {0}")]
pub struct RebuildError(String);

/// An expansion that fails.
#[derive(Debug, thiserror::Error)]
#[error("expand failed")]
pub struct ExpandError;

impl Recipe {
    /// Encodes.
    pub fn to_bytes(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("serializes")
    }
    /// Decodes.
    pub fn from_bytes(b: &[u8]) -> Result<Recipe, RecipeError> {
        postcard::from_bytes(b).map_err(|e| RecipeError(e.to_string()))
    }
    /// Bytes of the expanded form.
    pub fn expanded_len(&self) -> u64 {
        self.len
    }
    /// Bytes of the output.
    pub fn output_len(&self) -> Option<u64> {
        Some(self.len)
    }
    /// Whether nothing is reproduced.
    pub fn is_identity(&self) -> bool {
        true
    }
}

/// Analyses an object.
pub fn analyze(data: &[u8], _opts: &Options) -> Analysis {
    Analysis {
        recipe: Recipe {
            len: data.len() as u64,
        },
        expanded: data.to_vec(),
        report: Report {},
    }
}

/// The reference form of an object.
pub fn expand(data: &[u8], _opts: &Options) -> Result<Vec<u8>, ExpandError> {
    Ok(data.to_vec())
}

/// Rebuilds.
pub fn rebuild(
    recipe: &Recipe,
    expanded: &[u8],
    out_len: u64,
    out: &mut impl std::io::Write,
) -> Result<(), RebuildError> {
    if expanded.len() as u64 != recipe.len || out_len != recipe.len {
        return Err(RebuildError("length".into()));
    }
    out.write_all(expanded)
        .map_err(|e| RebuildError(e.to_string()))
}
