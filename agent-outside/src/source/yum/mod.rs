//! `type = "yum"`: an RPM (yum/dnf) repository.
//!
//! ```toml
//! [[source]]
//! name = "cuda"
//! type = "yum"
//! baseurl = "https://developer.download.nvidia.com/compute/cuda/repos/rhel9/x86_64"
//! packages = ["cuda-drivers"]   # names, with their Requires closure; empty = everything
//! keyring = "/etc/ferry/cuda.asc"  # optional: repomd.xml.asc must exist and verify
//! pin = ["cuda-drivers-550.54.15-1.x86_64"]  # kept inside even after upstream drops them
//! ```
//!
//! What is listed, at the paths the repository itself uses (relative to
//! `baseurl`), byte-exact, so that `dnf` verifies the metadata as it is:
//!
//! - `repodata/repomd.xml`, and `repodata/repomd.xml.asc` when upstream has
//!   one. With `keyring` set, the signature must exist and verify against one
//!   of the keyring's keys (primary key or subkey), or the export fails.
//! - every metadata file `repomd.xml` lists (primary, filelists, other, their
//!   sqlite forms, comps, updateinfo, modules, …), each checked against the
//!   size and checksum `repomd.xml` gives for it. Checksum types supported:
//!   `sha256` (createrepo_c's default), `sha1`/`sha`, `sha512`; any other
//!   type fails the export.
//! - the selected packages at their `location href`, each checked against the
//!   size and checksum primary metadata gives for it. Their fingerprint is
//!   that checksum, so a package shipped before is never downloaded again.
//!
//! Selection: with `packages` empty, every package primary lists (all
//! versions). Otherwise each named package (newest version per architecture)
//! and the closure of its `Requires` (source packages are not selected by
//! name): each requirement is resolved through
//! the `Provides` and the file lists in primary (a package providing it that
//! is already selected wins, else the newest provider, preferring one whose
//! name is the requirement); `rpmlib(…)` requirements are skipped, and a
//! requirement nothing in primary satisfies (such as a file only filelists
//! knows) is reported as a warning. Versions compare as rpm does (`rpmvercmp`).
//!
//! Pins: `pin` names packages by file name without `.rpm`
//! (`name-version-release.arch`). A pinned package upstream still has is
//! selected (with its closure) even when it is not the newest; one upstream
//! has dropped stays inside (carried unchanged from the last bundle). It is
//! then still served by its path, but the new upstream metadata no longer
//! lists it (metadata is carried byte-exact, never rewritten).
//!
//! Metadata files and packages are downloaded into the source's cache
//! directory when the exporter reads them, through the source's
//! [`crate::upstream::Client`] (resumed with `Range` when a connection
//! breaks, retried on 429 and 5xx; the network keys `ca_file`, `timeout`,
//! `retries` and credentials apply), and removed from it once read.
//!
//! Any mismatch fails the whole export, naming the source, the file, the
//! expected and the actual value; nothing is written to media.

mod primary;
mod select;

pub use primary::{parse_primary, rpmvercmp, Evr, Package};
pub use select::select;

use super::{Item, ItemKind, Opener, ScanCtx, Source};
use crate::config::SourceConfig;
use crate::upstream::{prune_downloads, Client, Expect, Keyring};
use anyhow::{anyhow, bail, Context, Result};
use ferry_formats::rpm::{parse_repomd, Checksum, RepomdEntry};
use ferry_protocol::catalog::SourceKind;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::io::{Cursor, Read};
use std::path::PathBuf;

/// Largest `repomd.xml` (or signature) accepted.
const MAX_REPOMD: u64 = 16 << 20;
/// Largest primary metadata file accepted.
const MAX_METADATA: u64 = 4 << 30;
/// Largest uncompressed primary metadata accepted.
const MAX_PRIMARY_XML: u64 = 8 << 30;
/// `repomd.xml`'s path.
const REPOMD: &str = "repodata/repomd.xml";
/// Its detached signature's path.
const REPOMD_ASC: &str = "repodata/repomd.xml.asc";

/// The settings of a `type = "yum"` source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct YumSettings {
    /// The repository's base URL (the directory holding `repodata/`).
    pub baseurl: String,
    /// Package names to mirror with their `Requires` closure; empty = all.
    #[serde(default)]
    pub packages: Vec<String>,
    /// An OpenPGP public key file (armored or binary) that must have signed
    /// `repodata/repomd.xml` (as `repodata/repomd.xml.asc`).
    pub keyring: Option<PathBuf>,
    /// Packages (`name-version-release.arch`) kept even when upstream drops them.
    #[serde(default)]
    pub pin: Vec<String>,
}

/// A yum source.
pub struct YumSource {
    name: String,
    base: String,
    packages: Vec<String>,
    keyring: Option<Keyring>,
    pin: Vec<String>,
    client: Client,
}

/// What the metadata step fetched: `repomd.xml`, its signature, the files
/// it lists, and primary's packages (primary's own bytes already checked).
struct Metadata {
    repomd: Vec<u8>,
    asc: Option<Vec<u8>>,
    entries: Vec<RepomdEntry>,
    primary_href: String,
    primary_bytes: Vec<u8>,
    pkgs: Vec<Package>,
}

impl YumSource {
    /// From its config entry.
    pub fn new(cfg: &SourceConfig) -> Result<Self> {
        let s: YumSettings = cfg.settings()?;
        if !(s.baseurl.starts_with("http://") || s.baseurl.starts_with("https://")) {
            bail!("baseurl {:?} must be an http:// or https:// URL", s.baseurl);
        }
        let keyring = match &s.keyring {
            Some(path) => Some(Keyring::load(path).context("keyring")?),
            None => None,
        };
        for p in &s.pin {
            if p.is_empty() || p.contains('/') {
                bail!("pin {p:?} is not a package file name (name-version-release.arch)");
            }
        }
        Ok(YumSource {
            name: cfg.name.clone(),
            base: s.baseurl.trim_end_matches('/').to_string(),
            packages: s.packages,
            keyring,
            pin: s.pin,
            client: Client::new(&cfg.net, Some(&s.baseurl))?,
        })
    }

    fn url(&self, href: &str) -> String {
        format!("{}/{href}", self.base)
    }

    fn verify_signature(&self, repomd: &[u8], asc: Option<&[u8]>) -> Result<()> {
        let Some(keyring) = &self.keyring else {
            return Ok(());
        };
        let Some(asc) = asc else {
            bail!(
                "`keyring` is set, but upstream has no {REPOMD_ASC} ({})",
                self.url(REPOMD_ASC)
            );
        };
        keyring
            .verify_detached(REPOMD, repomd, asc)
            .with_context(|| {
                format!(
                    "{REPOMD_ASC} does not verify {REPOMD} with the keyring {}",
                    keyring.path().display()
                )
            })
    }

    /// Fetches `repomd.xml` (verified when a keyring is set) and primary
    /// metadata (checked against `repomd.xml`), and parses primary. A bad
    /// primary stops everything before any download.
    fn fetch_metadata(&self) -> Result<Metadata> {
        let repomd = self
            .client
            .get_small(&self.url(REPOMD), MAX_REPOMD)?
            .ok_or_else(|| {
                anyhow!(
                    "{} does not exist (is baseurl the directory holding repodata/?)",
                    self.url(REPOMD)
                )
            })?;
        let asc = self.client.get_small(&self.url(REPOMD_ASC), MAX_REPOMD)?;
        self.verify_signature(&repomd, asc.as_deref())?;
        let entries = parse_repomd(&repomd)?;
        let primary = entries
            .iter()
            .find(|e| e.kind == "primary")
            .ok_or_else(|| anyhow!("repomd.xml lists no primary metadata"))?;
        let url = self.url(&primary.href);
        let primary_bytes = self
            .client
            .get_small(&url, MAX_METADATA)
            .with_context(|| primary.href.clone())?
            .ok_or_else(|| anyhow!("{url}: HTTP 404"))?;
        expect_of(&primary.checksum, primary.size)
            .check_bytes(&url, &primary_bytes)
            .with_context(|| primary.href.clone())?;
        let xml = primary::decompress(&primary.href, &primary_bytes, MAX_PRIMARY_XML)?;
        let xml = String::from_utf8(xml).map_err(|_| anyhow!("{} is not UTF-8", primary.href))?;
        let pkgs = parse_primary(&xml).with_context(|| primary.href.clone())?;
        Ok(Metadata {
            primary_href: primary.href.clone(),
            repomd,
            asc,
            entries,
            primary_bytes,
            pkgs,
        })
    }

    /// The packages to mirror: every one, or the selection's closure.
    fn choose(&self, pkgs: &[Package]) -> Result<BTreeSet<usize>> {
        if self.packages.is_empty() {
            return Ok((0..pkgs.len()).collect());
        }
        let (chosen, warnings) = select(pkgs, &self.packages, &self.pin)?;
        for w in warnings {
            eprintln!("ferry-out: warning: source {:?}: {w}", self.name);
        }
        Ok(chosen)
    }

    /// An item downloaded into the cache when the exporter opens it, checked
    /// against what the metadata promises.
    fn remote_item(
        &self,
        cx: &ScanCtx<'_>,
        href: &str,
        want: &Checksum,
        size: Option<u64>,
    ) -> Item {
        // No context here: the export names the source and the path.
        let (client, url) = (self.client.clone(), self.url(href));
        let dest = cx.cache_dir.join(cache_name(want));
        let expect = expect_of(want, size);
        file_item(
            href.to_string(),
            Some(format!("{want}:{}", size.unwrap_or(0))),
            Box::new(move || Ok(client.open_downloaded(&url, &dest, &expect)?)),
        )
    }

    /// Pinned packages upstream no longer lists: the paths to keep from the
    /// last bundle.
    fn kept_pins(
        &self,
        cx: &ScanCtx<'_>,
        pkgs: &[Package],
        listed: &BTreeSet<String>,
    ) -> Vec<String> {
        let name = &self.name;
        let mut out = Vec::new();
        for pin in &self.pin {
            let fname = format!("{pin}.rpm");
            if pkgs.iter().any(|p| p.nvra() == *pin) {
                continue;
            }
            let kept: Vec<String> = cx
                .previous_paths()
                .filter(|(p, _)| p.rsplit('/').next() == Some(fname.as_str()))
                .map(|(p, _)| p.to_string())
                .filter(|p| !listed.contains(p))
                .collect();
            if kept.is_empty() {
                eprintln!(
                    "ferry-out: warning: source {name:?}: pinned package {pin} is neither upstream nor in the last bundle"
                );
            }
            for p in kept {
                eprintln!(
                    "ferry-out: source {name:?}: keeping pinned {p} (upstream no longer has it)"
                );
                out.push(p);
            }
        }
        out
    }
}

/// The name of a download in the cache.
fn cache_name(checksum: &Checksum) -> String {
    format!("{}-{}", checksum.kind, checksum.hex)
}

/// What the metadata promises about a file.
fn expect_of(checksum: &Checksum, size: Option<u64>) -> Expect {
    Expect {
        size,
        checksum: Some(checksum.clone()),
    }
}

/// A regular file item without a SHA-256 promise (the checksum upstream
/// gives is checked on download instead).
fn file_item(path: String, fingerprint: Option<String>, open: Opener) -> Item {
    Item {
        path,
        predecessor: None,
        kind: ItemKind::File {
            executable: false,
            fingerprint,
            expected_sha256: None,
            open,
        },
    }
}

/// An item whose bytes are in memory.
fn bytes_item(path: &str, fingerprint: Option<String>, bytes: Vec<u8>) -> Item {
    file_item(
        path.to_string(),
        fingerprint,
        Box::new(move || Ok(Box::new(Cursor::new(bytes)) as Box<dyn Read>)),
    )
}

impl Source for YumSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SourceKind {
        SourceKind::Yum
    }

    fn signable(&self) -> Option<&'static str> {
        Some("keyring")
    }

    fn checks_signature(&self) -> bool {
        self.keyring.is_some()
    }

    fn provenance(&self) -> Vec<ferry_protocol::provenance::Vouch> {
        use ferry_protocol::provenance::{Method, Vouch};
        vec![match &self.keyring {
            Some(k) => super::openpgp_vouch(&self.name, k, REPOMD),
            None => Vouch {
                source: self.name.clone(),
                object: None,
                method: Method::DigestsOnly,
                key: None,
                detail: format!("checksums from {REPOMD} over TLS only; no keyring configured"),
            },
        }]
    }

    /// Fetch the metadata, select, emit metadata and packages, keep pins.
    fn scan(&self, cx: &ScanCtx<'_>, sink: &mut dyn FnMut(Item) -> Result<()>) -> Result<()> {
        let md = self.fetch_metadata()?;
        let chosen = self.choose(&md.pkgs)?;

        sink(bytes_item(REPOMD, None, md.repomd))?;
        if let Some(asc) = md.asc {
            sink(bytes_item(REPOMD_ASC, None, asc))?;
        }
        let wanted: BTreeSet<String> = md
            .entries
            .iter()
            .map(|e| &e.checksum)
            .chain(chosen.iter().map(|&i| &md.pkgs[i].checksum))
            .map(cache_name)
            .collect();
        prune_downloads(&cx.cache_dir, |f| wanted.contains(f));
        let mut primary_bytes = Some(md.primary_bytes);
        for e in &md.entries {
            if e.href == md.primary_href {
                if let Some(b) = primary_bytes.take() {
                    let fp = Some(format!("{}:{}", e.checksum, e.size.unwrap_or(0)));
                    sink(bytes_item(&e.href, fp, b))?;
                    continue;
                }
            }
            sink(self.remote_item(cx, &e.href, &e.checksum, e.size))?;
        }
        let mut listed = BTreeSet::new();
        for &i in &chosen {
            let p = &md.pkgs[i];
            if listed.insert(p.href.clone()) {
                sink(self.remote_item(cx, &p.href, &p.checksum, p.size))?;
            }
        }
        for path in self.kept_pins(cx, &md.pkgs, &listed) {
            sink(Item {
                path,
                predecessor: None,
                kind: ItemKind::Keep,
            })?;
        }
        Ok(())
    }
}
