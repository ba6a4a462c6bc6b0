//! Upstream sources. Each ecosystem is one module behind the [`Source`] trait:
//! it lists what upstream holds now, as [`Item`]s; the exporter does the rest
//! (chunking, dedup against the ledger, volumes, manifest).

pub mod apt;
pub mod cargo;
pub mod files;
pub mod go;
pub mod helm;
pub mod npm;
pub mod oci;
pub mod pypi;
pub mod yum;

use anyhow::{Context, Result};
use ferry_protocol::catalog::{Catalog, Object, SourceKind};
use ferry_protocol::id::Sha256;
use ferry_protocol::path::ObjectKey;
use ferry_protocol::provenance::{Method, Vouch};
use std::io::Read;
use std::path::PathBuf;

/// Opens an item's content for reading.
pub type Opener = Box<dyn FnOnce() -> Result<Box<dyn Read>>>;

/// One object upstream holds.
pub struct Item {
    /// Path within the source (`/`-separated, relative).
    pub path: String,
    /// What it is.
    pub kind: ItemKind,
    /// The object of the last catalog this one most likely descends from,
    /// when the source knows it better than file names tell (an OCI layer:
    /// the layer at the same position of the previous manifest of its tag).
    /// The exporter tries it before its name rules (`delta::predecessor`)
    /// and patches a changed file against it; a wrong or stale hint costs
    /// bytes, never correctness (every patch is checked before it ships).
    /// Only an object of the same source can be a base: a hint into another
    /// source is ignored.
    pub predecessor: Option<ObjectKey>,
}

impl Item {
    /// A file whose bytes the source made in memory (an index it wrote),
    /// with no fingerprint, digest or predecessor hint.
    pub fn from_bytes(path: String, bytes: Vec<u8>) -> Item {
        Item {
            path,
            predecessor: None,
            kind: ItemKind::File {
                executable: false,
                fingerprint: None,
                expected_sha256: None,
                open: Box::new(move || Ok(Box::new(std::io::Cursor::new(bytes)) as Box<dyn Read>)),
            },
        }
    }
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
    /// A regular file of this host's filesystem that the exporter opens
    /// itself and whose copy for the next patch it may keep as a hard link
    /// to `path` instead of a byte copy (the `files` source's tree with
    /// `link_copies`). The fingerprint is [`file_fingerprint`] of the file
    /// when listed: the exporter links the file only while it still has it,
    /// and fingerprints it again after the link (which changes its ctime).
    Local {
        /// Served with mode 0755.
        executable: bool,
        /// [`file_fingerprint`] of the file when it was listed.
        fingerprint: String,
        /// Where the file is.
        path: PathBuf,
    },
    /// A symbolic link, already normalized to stay inside the source.
    Symlink {
        /// Relative target.
        target: String,
    },
    /// Keep the object the previous bundle had at this path, as it was,
    /// without reading anything (a pinned package upstream no longer has).
    /// Ignored, with a warning, when the previous bundle had nothing there.
    Keep,
}

/// The fingerprint of a local file from its metadata: size, modification
/// and change times, inode. Any write changes the change time, so a file
/// whose fingerprint is the one recorded is not read again.
pub fn file_fingerprint(md: &std::fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    format!(
        "{}:{}.{}:{}.{}:{}",
        md.size(),
        md.mtime(),
        md.mtime_nsec(),
        md.ctime(),
        md.ctime_nsec(),
        md.ino()
    )
}

/// What a source may use while scanning besides its settings.
pub struct ScanCtx<'a> {
    /// The catalog of the last bundle (every source's objects; see
    /// [`ScanCtx::previous_paths`]).
    pub previous: &'a Catalog,
    /// A directory of this source's own in the outside's state
    /// (`STATE/cache/<source>/`, created): for downloads that should survive
    /// an interrupted export, or upstream metadata a later export needs.
    pub cache_dir: PathBuf,
    /// The source's name.
    pub source: &'a str,
}

impl ScanCtx<'_> {
    /// The paths this source had in the last bundle, with their objects.
    pub fn previous_paths(&self) -> impl Iterator<Item = (&str, &Object)> {
        self.previous
            .objects
            .iter()
            .filter(move |(k, _)| k.source == self.source)
            .map(|(k, o)| (k.path.as_str(), o))
    }
}

/// An upstream source.
pub trait Source {
    /// The source's name from the config.
    fn name(&self) -> &str;
    /// Which inside store its objects go to.
    fn kind(&self) -> SourceKind;
    /// Lists every item upstream holds now, in any order.
    fn scan(&self, cx: &ScanCtx<'_>, sink: &mut dyn FnMut(Item) -> Result<()>) -> Result<()>;
    /// The setting that makes this source check an upstream signature, when
    /// its ecosystem has one (such as `keyring`), and `None` when it has
    /// none; `[policy] require_upstream_signatures` needs it set
    /// (`crate::policy`).
    fn signable(&self) -> Option<&'static str> {
        None
    }
    /// Whether that setting is set (an upstream signature is checked).
    fn checks_signature(&self) -> bool {
        false
    }
    /// What upstream vouched for this source's objects in the last scan
    /// (bundle-format §19): by default, digests from the index only.
    fn provenance(&self) -> Vec<Vouch> {
        vec![Vouch {
            source: self.name().to_string(),
            object: None,
            method: Method::DigestsOnly,
            key: None,
            detail: digests_only(self.kind()).to_string(),
        }]
    }
}

/// The provenance of a source whose index an OpenPGP keyring verified:
/// the certificates that signed in the last scan.
pub(crate) fn openpgp_vouch(
    source: &str,
    keyring: &crate::upstream::Keyring,
    what: &str,
) -> ferry_protocol::provenance::Vouch {
    let used = keyring.take_used();
    ferry_protocol::provenance::Vouch {
        source: source.to_string(),
        object: None,
        method: ferry_protocol::provenance::Method::OpenPgp,
        key: (!used.is_empty()).then(|| used.join(",")),
        detail: format!(
            "{what} signed by {} (keyring {}); every file by its digest in the signed index",
            if used.is_empty() {
                "no key seen this scan".to_string()
            } else {
                used.join(", ")
            },
            keyring.path().display()
        ),
    }
}

/// What a source without an upstream signature checked.
fn digests_only(kind: SourceKind) -> &'static str {
    match kind {
        SourceKind::Files => "local files; no upstream signature",
        SourceKind::Pypi => "sha256 from the index over TLS only; PyPI has no signature to check",
        SourceKind::Helm => {
            "digests from index.yaml over TLS only; chart .prov files are not checked"
        }
        SourceKind::Cargo => "cksum from the sparse index over TLS only; the index is not signed",
        SourceKind::Npm => {
            "integrity from the packument over TLS only; registry signatures are not checked"
        }
        SourceKind::Go => "h1: hashes from the configured go.sum files; no checksum database",
        _ => "digests from the upstream index over TLS only; no upstream signature checked",
    }
}

/// Builds the source a config entry describes. An error names the source
/// and its type once (`source "NAME" (TYPE): ...`); the modules' own
/// messages do not repeat it.
pub fn from_config(cfg: &crate::config::SourceConfig) -> Result<Box<dyn Source>> {
    let src = build(cfg).with_context(|| format!("source {:?} ({})", cfg.name, cfg.kind.name()))?;
    Ok(match &cfg.unsigned_ok {
        Some(reason) => Box::new(Excused {
            inner: src,
            reason: reason.clone(),
        }),
        None => src,
    })
}

/// A source marked `unsigned_ok = "why"`: its provenance says so.
struct Excused {
    inner: Box<dyn Source>,
    reason: String,
}

impl Source for Excused {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn kind(&self) -> SourceKind {
        self.inner.kind()
    }
    fn scan(&self, cx: &ScanCtx<'_>, sink: &mut dyn FnMut(Item) -> Result<()>) -> Result<()> {
        self.inner.scan(cx, sink)
    }
    fn signable(&self) -> Option<&'static str> {
        self.inner.signable()
    }
    fn checks_signature(&self) -> bool {
        self.inner.checks_signature()
    }
    fn provenance(&self) -> Vec<Vouch> {
        let mut v = self.inner.provenance();
        for e in v.iter_mut().filter(|e| e.method == Method::DigestsOnly) {
            e.detail = format!("{} (unsigned_ok: {})", e.detail, self.reason);
        }
        v
    }
}

/// [`from_config`] without the context.
fn build(cfg: &crate::config::SourceConfig) -> Result<Box<dyn Source>> {
    Ok(match cfg.kind {
        SourceKind::Files => Box::new(files::FilesSource::new(cfg)?),
        SourceKind::Oci => Box::new(oci::OciSource::new(cfg)?),
        SourceKind::Apt => Box::new(apt::AptSource::new(cfg)?),
        SourceKind::Yum => Box::new(yum::YumSource::new(cfg)?),
        SourceKind::Pypi => Box::new(pypi::PypiSource::new(cfg)?),
        SourceKind::Helm => Box::new(helm::HelmSource::new(cfg)?),
        SourceKind::Cargo => Box::new(cargo::CargoSource::new(cfg)?),
        SourceKind::Npm => Box::new(npm::NpmSource::new(cfg)?),
        SourceKind::Go => Box::new(go::GoSource::new(cfg)?),
    })
}
