//! The store of Debian (apt) repositories: objects of `apt` sources at
//! `GEN/apt/<source>/<path>`, served under `/apt/<source>/<path>`.

use super::{materialize, BuildCtx, Store};
use anyhow::Result;
use ferry_protocol::catalog::SourceKind;

/// The store of Debian (apt) repositories.
pub struct AptStore;

impl Store for AptStore {
    fn kind(&self) -> SourceKind {
        SourceKind::Apt
    }

    fn build(&self, cx: &BuildCtx<'_>) -> Result<u64> {
        materialize(cx, self.kind(), self.kind().name())
    }
}
