//! `type = "cargo"`: a Rust crate registry, read through the sparse index
//! protocol (crates.io's `https://index.crates.io/`, or a private registry).
//!
//! ```toml
//! [[source]]
//! name = "crates"
//! type = "cargo"
//! index = "https://index.crates.io/"     # sparse index base URL (`sparse+` allowed)
//! crates = { serde = "1", tokio = ">=1.40" }   # name -> semver requirement
//! lockfiles = ["/srv/app/Cargo.lock"]     # packages carried exactly
//! versions = "latest"                     # or "all" matching versions
//! dependencies = true                     # follow the closure
//! dev_dependencies = false                # also dev-dependencies
//! optional_dependencies = true            # every feature's optional dependencies
//! unsatisfiable = "warn"                  # or "error": a dependency nothing satisfies
//! pin = ["serde@1.0.200"]                 # kept inside after upstream drops it
//! # and the network keys every source takes (crate::upstream::NetSettings)
//! ```
//!
//! The scan reads `<index>/config.json` (its `dl` says where crates are
//! downloaded) and each crate's index file (`<index>/<index path>`,
//! [`ferry_formats::cargo`]). Roots: each `crates` requirement keeps the
//! newest matching version that is not yanked (`latest`) or every matching
//! one (`all`); a yanked version only when the requirement is exact
//! (`=1.2.3`). Each lockfile's registry packages are carried exactly, yanked
//! or not, and their `checksum` must be the index's `cksum`. With
//! `dependencies`, every kept version's normal and build dependencies (dev
//! ones with `dev_dependencies`; optional ones, i.e. every feature's, with
//! `optional_dependencies`; every target's) are followed: the newest
//! non-yanked version matching each requirement, as a fresh `cargo
//! generate-lockfile` would pick it. Locked packages are not followed: a
//! lockfile is a closure already. A dependency no version satisfies (or a
//! crate the registry lacks) is a warning, or with `unsatisfiable = "error"`
//! fails the export naming the crate, version and requirement
//! ([`CargoError`]).
//!
//! Pins (`name@version`) are roots of exactly that version (yanked or not).
//! When upstream no longer lists one, its crate is carried unchanged from
//! the last bundle ([`ItemKind::Keep`]) and its index line is taken from
//! `STATE/cache/<source>/shipped-pins.json`, where each export records the
//! lines of the pinned versions it carries (`pins`).
//!
//! Items (the inside serves them as a sparse registry, `store::cargo`):
//!
//! - `<index path>` (`se/rd/serde`, …): upstream's lines of the carried
//!   versions, byte-exact, in upstream's order;
//! - `crates/<name>/<name>-<version>.crate`: the crate file, downloaded
//!   (through `crate::upstream`: resumed with `Range`) into the source's
//!   cache directory when the exporter reads it, checked against the
//!   index's `cksum` before it is read. Its fingerprint is that `cksum`,
//!   so a crate shipped before is never downloaded again, and a new version
//!   ships only its own crate file and its crate's index file.
//!
//! A scan is a pipeline: fetch (`registry`: `config.json` and index files,
//! many at once), resolve (`select`, with `lock` for lockfiles), keep the
//! pins upstream dropped (`pins`), emit (`emit`).
//!
//! [`ItemKind::Keep`]: crate::source::ItemKind::Keep

mod emit;
mod lock;
mod pins;
mod registry;
mod select;
mod settings;

use super::{Item, ScanCtx, Source};
use crate::upstream::Client;
use anyhow::Result;
use ferry_protocol::catalog::SourceKind;
use std::path::PathBuf;

pub use select::CargoError;
pub use settings::{CargoSettings, Unsatisfiable, Versions};

/// A crate registry source.
pub struct CargoSource {
    name: String,
    /// The sparse index's base URL, ending in `/`.
    index: url::Url,
    /// Root requirements: crate name and requirement.
    crates: Vec<(String, semver::VersionReq)>,
    lockfiles: Vec<PathBuf>,
    versions: Versions,
    dependencies: bool,
    dev_dependencies: bool,
    optional_dependencies: bool,
    unsatisfiable: Unsatisfiable,
    /// `name@version` pins.
    pins: Vec<(String, semver::Version)>,
    client: Client,
}

impl Source for CargoSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SourceKind {
        SourceKind::Cargo
    }

    fn scan(&self, cx: &ScanCtx<'_>, sink: &mut dyn FnMut(Item) -> Result<()>) -> Result<()> {
        let registry = self.registry()?;
        let selected = self.resolve(&registry)?;
        let kept = self.keep_pins(cx, &selected)?;
        emit::clean_downloads(cx, &selected);
        self.emit(&registry, &selected, &kept, cx, sink)
    }
}
