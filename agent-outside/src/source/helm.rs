//! `type = "helm"`: A Helm chart repository.
//!
//! Work in progress: this module is being written; until then the config
//! refuses the type.

use super::{Item, ScanCtx, Source};
use crate::config::SourceConfig;
use anyhow::{bail, Result};
use ferry_protocol::catalog::SourceKind;

/// A Helm chart repository.
pub struct HelmSource {
    name: String,
}

impl HelmSource {
    /// From its config entry.
    pub fn new(cfg: &SourceConfig) -> Result<Self> {
        bail!(
            "source {:?}: type = \"helm\" is not available in this build yet",
            cfg.name
        )
    }
}

impl Source for HelmSource {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> SourceKind {
        SourceKind::Helm
    }
    fn scan(&self, _cx: &ScanCtx<'_>, _sink: &mut dyn FnMut(Item) -> Result<()>) -> Result<()> {
        bail!(
            "source {:?}: type = \"helm\" is not available in this build yet",
            self.name
        )
    }
}
