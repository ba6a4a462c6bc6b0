//! The store of RPM (yum/dnf) repositories: objects of `yum` sources at
//! `GEN/yum/<source>/<path>`, served under `/yum/<source>/<path>`.

use super::{materialize, BuildCtx, Store};
use anyhow::Result;
use ferry_protocol::catalog::SourceKind;

/// The store of RPM (yum/dnf) repositories.
pub struct YumStore;

impl Store for YumStore {
    fn kind(&self) -> SourceKind {
        SourceKind::Yum
    }

    fn build(&self, cx: &BuildCtx<'_>) -> Result<u64> {
        materialize(cx, self.kind(), self.kind().name())
    }
}
