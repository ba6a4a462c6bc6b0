//! The store of Python package indexes: objects of `pypi` sources at
//! `GEN/pypi/<source>/<path>`, served under `/pypi/<source>/<path>`.

use super::{materialize, BuildCtx, Store};
use anyhow::Result;
use ferry_protocol::catalog::SourceKind;

/// The store of Python package indexes.
pub struct PypiStore;

impl Store for PypiStore {
    fn kind(&self) -> SourceKind {
        SourceKind::Pypi
    }

    fn build(&self, cx: &BuildCtx<'_>) -> Result<u64> {
        materialize(cx, self.kind(), self.kind().name())
    }
}
