//! The plain-file store: objects of `files` sources at
//! `GEN/files/<source>/<path>`, served under `/files/<source>/<path>`.

use super::{materialize, BuildCtx, Store};
use crate::layout::GEN_FILES;
use anyhow::Result;
use ferry_protocol::catalog::SourceKind;

/// The plain-file store.
pub struct FilesStore;

impl Store for FilesStore {
    fn kind(&self) -> SourceKind {
        SourceKind::Files
    }

    fn reads_catalog(&self) -> bool {
        false
    }

    fn build(&self, cx: &BuildCtx<'_>) -> Result<u64> {
        materialize(cx, SourceKind::Files, GEN_FILES)
    }
}
