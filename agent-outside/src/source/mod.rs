//! Upstream sources. Each ecosystem is one module behind the [`Source`] trait:
//! it lists what upstream holds now, as [`Item`]s; the exporter does the rest
//! (chunking, dedup against the ledger, volumes, manifest).

pub mod files;
pub mod oci;

use anyhow::Result;
use ferry_protocol::catalog::SourceKind;
use ferry_protocol::id::Sha256;
use std::io::Read;

/// Opens an item's content for reading.
pub type Opener = Box<dyn FnOnce() -> Result<Box<dyn Read>>>;

/// One object upstream holds.
pub struct Item {
    /// Path within the source (`/`-separated, relative).
    pub path: String,
    /// What it is.
    pub kind: ItemKind,
}

/// What an item is.
pub enum ItemKind {
    /// A regular file.
    File {
        /// Served with mode 0755.
        executable: bool,
        /// A cheap fingerprint of the content (size, times, inode); when it
        /// matches the one recorded at the last export, the file is not read again.
        fingerprint: Option<String>,
        /// The SHA-256 upstream promises, checked after reading.
        expected_sha256: Option<Sha256>,
        /// Opens the content.
        open: Opener,
    },
    /// A symbolic link, already normalized to stay inside the source.
    Symlink {
        /// Relative target.
        target: String,
    },
}

/// An upstream source.
pub trait Source {
    /// The source's name from the config.
    fn name(&self) -> &str;
    /// Which inside store its objects go to.
    fn kind(&self) -> SourceKind;
    /// Lists every item upstream holds now, in any order.
    fn scan(&self, sink: &mut dyn FnMut(Item) -> Result<()>) -> Result<()>;
}

/// Builds the source a config entry describes.
pub fn from_config(cfg: &crate::config::SourceConfig) -> Result<Box<dyn Source>> {
    match cfg.kind {
        crate::config::SourceType::Files => Ok(Box::new(files::FilesSource::new(cfg)?)),
        crate::config::SourceType::Oci => Ok(Box::new(oci::OciSource::new(cfg)?)),
    }
}
