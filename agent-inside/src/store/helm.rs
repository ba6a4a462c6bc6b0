//! The store of Helm chart repositories: objects of `helm` sources at
//! `GEN/helm/<source>/<path>`, served under `/helm/<source>/<path>`.

use super::{materialize, BuildCtx, Store};
use anyhow::Result;
use ferry_protocol::catalog::SourceKind;

/// The store of Helm chart repositories.
pub struct HelmStore;

impl Store for HelmStore {
    fn kind(&self) -> SourceKind {
        SourceKind::Helm
    }

    fn build(&self, cx: &BuildCtx<'_>) -> Result<u64> {
        materialize(cx, self.kind(), self.kind().name())
    }
}
