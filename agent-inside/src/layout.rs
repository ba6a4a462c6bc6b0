//! Where ferry-in keeps things in its state directory.
//!
//! ```text
//! STATE/
//!   ferry-in.redb            applied sequence, chain, trust, history (redb)
//!   chunks/ab/abcdef…        content-addressed chunk store: the chunks that are not byte
//!                            ranges of a served file (crate::ranges)
//!   objects/ab/<sha256>      every served file's bytes, once per SHA-256
//!                            (crate::objects; counted in the database)
//!   staging/ab/abcdef…       chunks of the bundle being applied, until it passes every check
//!   held/bundle-…/           verified-signature bundles waiting for a gap to fill
//!   incoming/bundle-…/       chunks of a bundle being pushed over QUIC (resumable)
//!   spool/                   bundles being received from a diode (default place)
//!   site-key.asc             the site's OpenPGP key for the filtered apt view (0600)
//!   inside.key, inside.pub   the inside's own ed25519 key, signing receipts (crate::receipt)
//!   tls/ca.pem, ca.key       the site CA of `ferry-in tls init` (key 0600)
//!   tls/server.pem, .key     the server certificate it issued for `serve --tls` (key 0600)
//!   store/
//!     current -> gens/G      symlink, swapped atomically by rename
//!     gens/G/index.base      the generation's path index (crate::pathindex,
//!     gens/G/index.delta     docs/path-index.md) and its sources and totals,
//!     gens/G/index.meta      read by `serve` through crate::genread
//!     gens/G/index.ferry     the whole catalog, in generations of older
//!                            ferry-in only (read until the next import)
//!     gens/G/apt-site/SRC/…  derived files of some stores (the site-signed apt
//!     gens/G/pypi-meta/SRC/… view, PEP 658 metadata): small, per generation
//!     gens/G/files/SRC/PATH  the tree of a generation of an older ferry-in
//!                            (a store's directory per kind); none now
//!     gens/.tmp-…            a generation being built (never served)
//! ```
//!
//! A generation directory is complete and immutable once it has its final
//! name. It has no tree of its files (docs/scale.md): what each path is
//! (digest, size, mode, or a link) is its path index, and the bytes are the
//! objects under `objects/`, which every reader goes through
//! (`crate::genread`, the stores' checks, `scrub`, `ranges`;
//! `ferry-in export-tree` writes a plain tree out for other tools). Once an
//! import has finished, `gens/` holds the current generation only (and the
//! one before it with `[store] keep_previous`).

use std::path::{Path, PathBuf};

/// Paths inside one ferry-in state directory.
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
    /// The redb database.
    pub fn db(&self) -> PathBuf {
        self.root.join("ferry-in.redb")
    }
    /// The chunk store.
    pub fn chunks(&self) -> PathBuf {
        self.root.join("chunks")
    }
    /// The object store: files by SHA-256 (`crate::objects`).
    pub fn objects(&self) -> PathBuf {
        self.root.join("objects")
    }
    /// Chunks of the bundle being applied, before it has passed every check.
    pub fn staging(&self) -> PathBuf {
        self.root.join("staging")
    }
    /// Held bundles.
    pub fn held(&self) -> PathBuf {
        self.root.join("held")
    }
    /// Chunks of bundles being pushed over QUIC, one directory per bundle.
    pub fn incoming(&self) -> PathBuf {
        self.root.join("incoming")
    }
    /// The default spool of the diode receiver.
    pub fn spool(&self) -> PathBuf {
        self.root.join("spool")
    }
    /// The site's OpenPGP key (armored secret key).
    pub fn site_key(&self) -> PathBuf {
        self.root.join("site-key.asc")
    }
    /// The inside's own signing key (receipts), mode 0600.
    pub fn inside_key(&self) -> PathBuf {
        self.root.join("inside.key")
    }
    /// Its public half, for `ferry-out trust-inside`.
    pub fn inside_pub(&self) -> PathBuf {
        self.root.join("inside.pub")
    }
    /// The site's TLS files (`ferry-in tls init`).
    pub fn tls_dir(&self) -> PathBuf {
        self.root.join("tls")
    }
    /// The site CA's certificate (PEM): what clients trust.
    pub fn tls_ca(&self) -> PathBuf {
        self.tls_dir().join("ca.pem")
    }
    /// The site CA's private key (PEM, mode 0600).
    pub fn tls_ca_key(&self) -> PathBuf {
        self.tls_dir().join("ca.key")
    }
    /// The server certificate `serve --tls` presents (PEM).
    pub fn tls_cert(&self) -> PathBuf {
        self.tls_dir().join("server.pem")
    }
    /// The server certificate's private key (PEM, mode 0600).
    pub fn tls_key(&self) -> PathBuf {
        self.tls_dir().join("server.key")
    }
    /// The store root.
    pub fn store(&self) -> PathBuf {
        self.root.join("store")
    }
    /// The `current` symlink.
    pub fn current_link(&self) -> PathBuf {
        self.store().join("current")
    }
    /// All generations.
    pub fn gens(&self) -> PathBuf {
        self.store().join("gens")
    }
    /// One generation.
    pub fn gen(&self, name: &str) -> PathBuf {
        self.gens().join(name)
    }
    /// The generation `current` points at, by name, if any.
    pub fn current_gen_name(&self) -> Option<String> {
        let target = std::fs::read_link(self.current_link()).ok()?;
        Some(target.file_name()?.to_string_lossy().into_owned())
    }
}

/// The catalog file of a generation written by an older ferry-in (read by
/// `genread` when the generation has no path index; no longer written).
pub const GEN_INDEX: &str = "index.ferry";
/// The plain-file store's directory in a generation of an older ferry-in's
/// tree (and in `export-tree`'s).
pub const GEN_FILES: &str = "files";
/// The OCI store's directory, as [`GEN_FILES`].
pub const GEN_OCI: &str = "oci";
