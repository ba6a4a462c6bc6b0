//! `type = "pypi"`: a Python package index (the simple repository API, PEP 503
//! HTML and PEP 691 JSON).
//!
//! ```toml
//! [[source]]
//! name = "pypi"
//! type = "pypi"
//! index = "https://pypi.org/simple/"        # the simple API's base URL
//! requirements = ["numpy>=2.1,<3", "requests==2.32.3"]   # PEP 508
//! python = ["3.11", "3.12"]                 # required: the interpreters to serve
//! platforms = ["manylinux_2_17_x86_64"]     # wheel platform tags (default: all)
//! versions = "latest"                       # or "all" matching versions
//! dependencies = true                       # follow Requires-Dist
//! sdists = false                            # also keep source distributions
//! pin = ["urllib3==2.2.3"]                  # kept even when upstream drops them
//! ca_file = "/etc/ssl/certs/ca-certificates.crt"  # default: $SSL_CERT_FILE, else Mozilla's roots
//! # and the other network keys every source takes (crate::upstream::NetSettings)
//! ```
//!
//! For each requirement (and each pin) the project's page is fetched from
//! `<index>/<normalized-name>/`, asking for PEP 691 JSON first and reading PEP
//! 503 HTML otherwise. A file is *wanted* when it is a wheel whose tags fit a
//! configured Python and platform (see `tags::wheel_fits`) or, with `sdists`, a
//! source distribution, and its `requires-python` admits a configured Python.
//! Among the versions the requirement's specifiers allow (pre-releases only
//! when a specifier names one), `versions = "latest"` keeps the newest that
//! has a wanted, non-yanked file (a yanked one only for an exact `==` pin, as
//! PEP 592 says); `"all"` keeps every one, yanked included. All wanted files
//! of a kept version are mirrored; yanked ones stay marked yanked.
//!
//! With `dependencies`, the `Requires-Dist` of each kept version (from its
//! first wheel: the PEP 658/714 `.metadata` file when the index offers one,
//! else `METADATA` read from the downloaded wheel) are followed when their
//! marker holds for at least one configured Python × platform (with the
//! extras asked for); a dependency no file satisfies is a warning.
//!
//! Catalog layout (the inside renders the index from it, `store::pypi`):
//!
//! - `files/<filename>`: a distribution file, byte-exact. Its fingerprint is
//!   the index's SHA-256, so it is downloaded once; every download is checked
//!   against that SHA-256 (a mismatch fails the export and names the file,
//!   URL and both digests). A file the index gives no SHA-256 for is refused.
//! - `simple/<project>/index.json`: written here, deterministically:
//!   `{"name": …, "files": [{"filename", "sha256", "size"?, "requires-python"?,
//!   "yanked"?}]}`, files in name order; `yanked` (the reason, maybe empty)
//!   only on yanked files.
//!
//! Pins: a file of a pinned version that upstream no longer lists is kept as
//! it was ([`ItemKind::Keep`]) and stays in its project's index (its
//! `requires-python` and yanked state are then forgotten).
//!
//! Files are downloaded (through `crate::upstream`: resumed with `Range`,
//! checked against the index's SHA-256 before use) into the source's cache
//! directory, `downloads/`, and removed once the export has opened them; a
//! wheel downloaded to read its `METADATA` waits there for the export. The
//! metadata itself is cached by the file's SHA-256, so a later export does
//! not fetch it again.
//!
//! A scan is a pipeline: resolve (`select`: fetch each project's page,
//! `page`, through the index client, `index`; choose versions and files by
//! their tags, `tags`; follow dependencies through the wheels' metadata,
//! `metadata`), keep the pins upstream dropped (`pins`), then list files and
//! indexes (`emit`).
//!
//! [`ItemKind::Keep`]: crate::source::ItemKind::Keep

mod emit;
mod index;
mod metadata;
pub mod page;
mod pins;
mod select;
mod settings;
pub mod tags;

use super::{Item, ScanCtx, Source};
use crate::upstream::Client;
use anyhow::Result;
use ferry_protocol::catalog::SourceKind;
use pep508_rs::Requirement;
use tags::Targets;

pub use settings::{PypiSettings, Versions};

/// A Python package index source.
pub struct PypiSource {
    name: String,
    index: url::Url,
    requirements: Vec<Requirement>,
    pins: Vec<Requirement>,
    targets: Targets,
    sdists: bool,
    dependencies: bool,
    versions: Versions,
    client: Client,
}

impl Source for PypiSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SourceKind {
        SourceKind::Pypi
    }

    fn scan(&self, cx: &ScanCtx<'_>, sink: &mut dyn FnMut(Item) -> Result<()>) -> Result<()> {
        let selected = self.resolve(cx)?;
        let kept = self.keep_pins(cx, &selected, sink)?;
        emit::clean_downloads(cx, &selected);
        self.emit(cx, &selected, kept, sink)
    }
}
