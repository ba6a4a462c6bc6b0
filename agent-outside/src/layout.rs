//! Where ferry-out keeps things in its state directory.
//!
//! ```text
//! STATE/
//!   ferry-out.redb          the ledger (redb): stream, bundles, catalogs, catalog rows
//!   signing.key             the ed25519 secret key (mode 0600)
//!   signing.pub             its public half, for `ferry-in trust add`
//!   quic.crt, quic.key      the QUIC identity for `push` (written by ferry-quic)
//!   bundles/bundle-…/       every bundle exported, kept for `resend` and `push`
//!   bundles/.tmp-export/    the bundle being exported (never read)
//!   cache/<source>/         a source's own downloads and metadata
//!   objects/<sha256>        copies of the last catalog's objects, the bases of the next patches
//! ```

use std::path::{Path, PathBuf};

/// Paths inside one ferry-out state directory.
#[derive(Clone, Debug)]
pub struct Layout {
    /// The state directory.
    pub root: PathBuf,
}

impl Layout {
    /// The layout rooted at `root`.
    pub fn new(root: &Path) -> Self {
        Layout {
            root: root.to_path_buf(),
        }
    }
    /// The ledger database.
    pub fn ledger(&self) -> PathBuf {
        self.root.join("ferry-out.redb")
    }
    /// The secret signing key.
    pub fn signing_key(&self) -> PathBuf {
        self.root.join("signing.key")
    }
    /// The public signing key.
    pub fn signing_pub(&self) -> PathBuf {
        self.root.join("signing.pub")
    }
    /// Where bundles are kept for re-sending.
    pub fn bundles(&self) -> PathBuf {
        self.root.join("bundles")
    }
    /// One kept bundle, by directory name.
    pub fn bundle(&self, dir_name: &str) -> PathBuf {
        self.bundles().join(dir_name)
    }
    /// The bundle an export is writing.
    pub fn export_tmp(&self) -> PathBuf {
        self.bundles().join(".tmp-export")
    }
    /// Copies of the objects of the last exported catalog (`crate::delta`).
    pub fn objects(&self) -> PathBuf {
        self.root.join("objects")
    }
    /// Recipes of analysed objects, by digest (`crate::delta`'s analysis cache).
    pub fn analyses(&self) -> PathBuf {
        self.root.join("analyses")
    }
    /// The directory a source may keep downloads and metadata in between exports.
    pub fn cache(&self, source: &str) -> PathBuf {
        self.root.join("cache").join(source)
    }
}
