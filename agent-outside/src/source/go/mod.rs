//! `type = "go"`: Go modules from a module proxy (GOPROXY protocol), with
//! the modules they require, checked against a checksum database or `go.sum`.
//!
//! ```toml
//! [[source]]
//! name = "gomods"
//! type = "go"
//! proxy = "https://proxy.golang.org/"          # a GOPROXY base URL
//! modules = { "golang.org/x/text" = "v0.14.0", "github.com/spf13/cobra" = "latest" }
//! gosum = ["/srv/app/go.sum"]                  # carried exactly, checked against it
//! sumdb = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"  # or "off"
//! sumdb_url = "https://sum.golang.org/"        # default https://<name>/
//! dependencies = true                          # follow go.mod requires
//! unsatisfiable = "warn"                       # or "error"
//! ```
//!
//! A query is an exact version (`v1.2.3`, a pseudo-version), `latest` (the
//! newest release of `@v/list`, else its newest pre-release, else
//! `@latest`), a prefix (`v1`, `v1.2`: the newest release in it) or
//! comparisons (`>=v1.2.0 <v2`: the newest release satisfying all). Every
//! version of a `go.sum` is carried, with its `.zip` unless only its
//! `/go.mod` line is there; `go.sum` versions are not followed further (the
//! file already names the whole module graph). From the `modules`, every
//! `require` of every carried `go.mod` is followed, each at exactly the
//! version it names (no MVS: every version a module graph names is what
//! `go mod download` may ask for). A required version the proxy does not
//! have is a warning or an error (`unsatisfiable`).
//!
//! Checks: each `go.mod` and zip's `h1:` hash (`ferry_formats::go::hash`)
//! must equal the `go.sum` line when one is given, else the checksum
//! database's record: `/lookup/<module>@<version>` from `sumdb_url`, whose
//! signed tree note must verify with the `sumdb` key and whose record must
//! be included in that tree, proved from the database's tiles
//! (`ferry_formats::go::{sumdb, tlog}`; consistency between tree heads is
//! not checked). A version with neither is refused. A zip is downloaded when
//! the exporter opens it (resumable, into `STATE/cache/<source>/`), its hash
//! computed and compared before it is read; its fingerprint is that hash,
//! so a zip shipped before is never downloaded again.
//!
//! Items: the proxy tree (`<module>/@v/<version>.info`, `.mod`, `.zip`,
//! `<module>/@v/list` of the versions with a zip, `<module>/@latest`),
//! module paths and versions case-encoded (`!a` for `A`), and
//! `checksums/<module>@<version>`: the `go.sum` lines checked, which the
//! inside checks the files against again.

mod emit;
mod select;
mod settings;
mod sumdb;
mod sums;

use super::{Item, ScanCtx, Source};
use crate::upstream::Client;
use anyhow::Result;
use ferry_formats::go::sumdb::VerifierKey;
use ferry_protocol::catalog::SourceKind;
use std::path::PathBuf;

pub use select::GoError;
pub use settings::{GoSettings, SUM_GOLANG_ORG};

/// How a module is asked for.
#[derive(Debug, Clone)]
pub(crate) enum Query {
    /// Exactly this version.
    Exact(String),
    /// The newest release (or pre-release, or `@latest`).
    Latest,
    /// The newest release whose version starts with this (`v1`, `v1.2`)
    /// followed by `.` or the end.
    Prefix(String),
    /// The newest release satisfying every comparison.
    Compare(Vec<(Op, semver::Version)>),
}

/// A comparison of a [`Query::Compare`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Lt,
    Le,
    Gt,
    Ge,
}

/// A Go module proxy source.
pub struct GoSource {
    name: String,
    /// The proxy's base URL, ending in `/`.
    proxy: url::Url,
    /// Module path, query as written, query.
    modules: Vec<(String, String, Query)>,
    gosums: Vec<PathBuf>,
    /// The checksum database, when one is used.
    sumdb: Option<(VerifierKey, url::Url)>,
    dependencies: bool,
    unsatisfiable_is_error: bool,
    client: Client,
    sumdb_client: Client,
}

impl Source for GoSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SourceKind {
        SourceKind::Go
    }

    fn signable(&self) -> Option<&'static str> {
        Some("sumdb")
    }

    fn checks_signature(&self) -> bool {
        self.sumdb.is_some()
    }

    fn provenance(&self) -> Vec<ferry_protocol::provenance::Vouch> {
        use ferry_protocol::provenance::{Method, Vouch};
        let (method, key, detail) = match &self.sumdb {
            Some((k, url)) => (
                Method::GoSumdb,
                Some(k.name.clone()),
                format!("every module's h1: hashes in the checksum database {url} (signed tree head, inclusion proof)"),
            ),
            None => (
                Method::DigestsOnly,
                None,
                "h1: hashes from the configured go.sum files; no checksum database".to_string(),
            ),
        };
        vec![Vouch {
            source: self.name.clone(),
            object: None,
            method,
            key,
            detail,
        }]
    }

    fn scan(&self, cx: &ScanCtx<'_>, sink: &mut dyn FnMut(Item) -> Result<()>) -> Result<()> {
        let selected = self.resolve(cx)?;
        emit::clean_downloads(cx, &selected);
        self.emit(cx, &selected, sink)?;
        self.emit_sumdb(cx, &selected, sink)
    }
}
