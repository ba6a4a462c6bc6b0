//! `type = "pypi"`: A Python package index (PEP 503 / PEP 691).
//!
//! Work in progress: this module is being written; until then the config
//! refuses the type.

use super::{Item, ScanCtx, Source};
use crate::config::SourceConfig;
use anyhow::{bail, Result};
use ferry_protocol::catalog::SourceKind;

/// A Python package index (PEP 503 / PEP 691).
pub struct PypiSource {
    name: String,
}

impl PypiSource {
    /// From its config entry.
    pub fn new(cfg: &SourceConfig) -> Result<Self> {
        bail!(
            "source {:?}: type = \"pypi\" is not available in this build yet",
            cfg.name
        )
    }
}

impl Source for PypiSource {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> SourceKind {
        SourceKind::Pypi
    }
    fn scan(&self, _cx: &ScanCtx<'_>, _sink: &mut dyn FnMut(Item) -> Result<()>) -> Result<()> {
        bail!(
            "source {:?}: type = \"pypi\" is not available in this build yet",
            self.name
        )
    }
}
