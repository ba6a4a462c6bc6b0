//! `type = "apt"`: A Debian (apt) repository.
//!
//! Work in progress: this module is being written; until then the config
//! refuses the type.

use super::{Item, ScanCtx, Source};
use crate::config::SourceConfig;
use anyhow::{bail, Result};
use ferry_protocol::catalog::SourceKind;

/// A Debian (apt) repository.
pub struct AptSource {
    name: String,
}

impl AptSource {
    /// From its config entry.
    pub fn new(cfg: &SourceConfig) -> Result<Self> {
        bail!(
            "source {:?}: type = \"apt\" is not available in this build yet",
            cfg.name
        )
    }
}

impl Source for AptSource {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> SourceKind {
        SourceKind::Apt
    }
    fn scan(&self, _cx: &ScanCtx<'_>, _sink: &mut dyn FnMut(Item) -> Result<()>) -> Result<()> {
        bail!(
            "source {:?}: type = \"apt\" is not available in this build yet",
            self.name
        )
    }
}
