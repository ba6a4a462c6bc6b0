//! `type = "yum"`: An RPM (yum/dnf) repository.
//!
//! Work in progress: this module is being written; until then the config
//! refuses the type.

use super::{Item, ScanCtx, Source};
use crate::config::SourceConfig;
use anyhow::{bail, Result};
use ferry_protocol::catalog::SourceKind;

/// An RPM (yum/dnf) repository.
pub struct YumSource {
    name: String,
}

impl YumSource {
    /// From its config entry.
    pub fn new(cfg: &SourceConfig) -> Result<Self> {
        bail!(
            "source {:?}: type = \"yum\" is not available in this build yet",
            cfg.name
        )
    }
}

impl Source for YumSource {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> SourceKind {
        SourceKind::Yum
    }
    fn scan(&self, _cx: &ScanCtx<'_>, _sink: &mut dyn FnMut(Item) -> Result<()>) -> Result<()> {
        bail!(
            "source {:?}: type = \"yum\" is not available in this build yet",
            self.name
        )
    }
}
