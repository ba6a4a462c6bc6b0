//! Inside stores. Each ecosystem is one store behind the [`Store`] trait: it
//! builds its part of a new generation directory from the next catalog,
//! reusing the previous generation where objects did not change.

pub mod files;

use crate::chunkstore::ChunkStore;
use anyhow::Result;
use ferry_protocol::catalog::{Catalog, SourceKind};
use std::path::Path;

/// What a store needs to build its part of a generation.
pub struct BuildCtx<'a> {
    /// The generation being replaced, if any.
    pub prev_gen: Option<&'a Path>,
    /// The directory of the generation being built.
    pub new_gen: &'a Path,
    /// The catalog of the previous generation.
    pub prev: &'a Catalog,
    /// The catalog of the new generation.
    pub next: &'a Catalog,
    /// Where chunks are read from.
    pub chunks: &'a ChunkStore,
    /// Told the bytes written or linked.
    pub progress: &'a indicatif::ProgressBar,
}

/// One inside store.
pub trait Store {
    /// The source kind whose objects this store holds.
    fn kind(&self) -> SourceKind;
    /// Builds this store's part of `cx.new_gen`. Returns bytes newly written
    /// (objects linked from the previous generation do not count).
    fn build(&self, cx: &BuildCtx<'_>) -> Result<u64>;
}

/// Every store this build knows.
pub fn all() -> Vec<Box<dyn Store>> {
    vec![Box::new(files::FilesStore)]
}
