//! `type = "npm"`: packages of an npm registry with their dependencies.
//!
//! ```toml
//! [[source]]
//! name = "npm"
//! type = "npm"
//! registry = "https://registry.npmjs.org/"   # the registry's base URL
//! packages = { "is-number" = "^7", "@types/node" = ">=20 <21" }   # name -> npm range
//! lockfiles = ["/srv/web/package-lock.json"] # lockfileVersion 2 or 3, carried exactly
//! versions = "latest"                        # or "all" matching versions
//! dependencies = true
//! optional_dependencies = true
//! peer_dependencies = true
//! unsatisfiable = "warn"                     # or "error"
//! pin = ["left-pad@1.3.0"]                   # kept inside after upstream unpublishes it
//! ```
//!
//! Each package's packument is read from `<registry>/<name>` (a scope's `/`
//! as `%2f`). A range keeps the `latest` dist-tag when it satisfies it, else
//! the newest matching version that is not deprecated (or, when all are,
//! the newest); `all` keeps every match. Lockfile packages are carried at
//! exactly their version. Dependencies (`dependencies`, and by the settings
//! `optionalDependencies` and `peerDependencies`) are followed the same way;
//! `npm:other@range` aliases follow `other`, a dist-tag follows that tag,
//! and git, file and URL specs are skipped with a warning.
//!
//! Items: `packuments/<name>.json` (upstream's packument with only the
//! carried versions, raw, their `dist-tags` and `time`: deprecations travel
//! in the version entries, and a version upstream unpublishes leaves at the
//! next export) and `tarballs/<name>/-/<base>-<version>.tgz`, each
//! downloaded through `crate::upstream` and checked against its
//! `dist.integrity` (sha512) or `dist.shasum` before it is read; that digest
//! is its fingerprint, so a tarball shipped before is never downloaded again.
//!
//! A pinned version is selected exactly (its dependencies followed) while
//! upstream lists it; once shipped, it stays after upstream unpublishes it
//! (`pins`): its tarball is kept from the last bundle and its packument
//! entry is the one recorded when it was last carried.

mod emit;
mod pins;
mod select;
mod settings;

use super::{Item, ScanCtx, Source};
use crate::upstream::Client;
use anyhow::Result;
use ferry_protocol::catalog::SourceKind;
use std::path::PathBuf;

pub use select::NpmError;
pub use settings::NpmSettings;

/// An npm registry source.
pub struct NpmSource {
    name: String,
    /// The registry's base URL, ending in `/`.
    registry: url::Url,
    packages: Vec<(String, Vec<semver::VersionReq>)>,
    lockfiles: Vec<PathBuf>,
    all_versions: bool,
    dependencies: bool,
    optional_dependencies: bool,
    peer_dependencies: bool,
    unsatisfiable_is_error: bool,
    /// `name@version` pins.
    pins: Vec<(String, semver::Version)>,
    client: Client,
}

impl Source for NpmSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SourceKind {
        SourceKind::Npm
    }

    fn scan(&self, cx: &ScanCtx<'_>, sink: &mut dyn FnMut(Item) -> Result<()>) -> Result<()> {
        let selected = self.resolve()?;
        emit::clean_downloads(cx, &selected);
        let kept = self.keep_pins(cx, &selected)?;
        self.emit(cx, &selected, &kept, sink)
    }
}
