//! `type = "apt"`: a Debian (apt) repository, mirrored byte for byte for
//! what is selected.
//!
//! Per suite the source fetches `dists/<suite>/InRelease` and/or `Release`
//! with `Release.gpg`, and verifies every one present against the configured
//! keyring (rpgp; the primary key and every subkey of every certificate in
//! the file are tried). The verified Release then lists the index files: for
//! each selected component, the `binary-<arch>/` files of the selected
//! architectures and of `all` (`Packages`, `.gz`, `.xz`, `Release`, …), each
//! fetched and checked against the size and SHA256 the Release gives (a file
//! Release lists but upstream does not serve, such as Debian's uncompressed
//! `Packages`, is skipped). With `Acquire-By-Hash: yes` each is also carried
//! at `<dir>/by-hash/SHA256/<hex>`. The translations of `languages`, and
//! with `contents`/`dep11` the `Contents-<arch>` and DEP-11 files, are
//! carried the same way when the Release lists them. One variant of each `Packages` is parsed
//! for the package stanzas; the selection (everything, or the named packages
//! with the closure of their `Pre-Depends`, `Depends` and optionally
//! `Recommends` across every selected suite, component and architecture)
//! picks the `.deb` files, each fetched only when its SHA256 is new and
//! checked against its stanza's `Size` and `SHA256`.
//!
//! Catalog paths are upstream's own, relative to `url`: `dists/...` and
//! `pool/...`. Fingerprints are the SHA256 upstream publishes, so an
//! unchanged file is never downloaded again.
//!
//! Pins: the stanzas of pinned packages are remembered in the source's cache
//! directory (`pinned.json`); a pinned `.deb` upstream (or the selection) no
//! longer lists is kept from the previous bundle ([`ItemKind::Keep`]) and its
//! stanza shipped in `ferry/pinned/<suite>/<component>/binary-<arch>/Packages`
//! so the inside's site-signed view can list it.
//!
//! Everything is fetched through the source's [`crate::upstream::Client`]
//! (the network keys `ca_file`, `timeout`, `retries` and credentials apply;
//! a broken download resumes with `Range`), and signatures are checked with
//! [`crate::upstream::Keyring`].
//!
//! Any failed check fails the scan, naming the source, the file, what was
//! expected and what upstream sent; the export then writes nothing.

mod emit;
mod fetch;
mod index;
mod pins;
mod release;
mod select;

use super::{Item, ItemKind, ScanCtx, Source};
use crate::config::SourceConfig;
use crate::upstream::{Client, Keyring};
use anyhow::{bail, Context, Result};
use emit::{bytes_file, emit_all};
use ferry_protocol::catalog::SourceKind;
use ferry_protocol::id::Sha256;
use index::Stanza;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

/// The settings of a `type = "apt"` source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AptSettings {
    /// The repository's base URL (the directory holding `dists/` and `pool/`).
    pub url: String,
    /// Suites (distributions), e.g. `bookworm`, `stable`.
    pub suites: Vec<String>,
    /// Components, e.g. `main`.
    pub components: Vec<String>,
    /// Architectures, e.g. `amd64`; `all` packages always come along.
    pub architectures: Vec<String>,
    /// Package names to mirror with their dependency closure; empty: everything.
    #[serde(default)]
    pub packages: Vec<String>,
    /// Whether `Recommends` join the closure.
    #[serde(default)]
    pub recommends: bool,
    /// The OpenPGP public key(s) the Release files must be signed with
    /// (armored or binary, e.g. a `.gpg` keyring).
    pub keyring: PathBuf,
    /// Package names kept even when upstream or the selection drops them.
    #[serde(default)]
    pub pin: Vec<String>,
    /// Languages of the `i18n/Translation-<lang>` files carried, which a
    /// default apt asks for when the Release lists them.
    #[serde(default = "default_languages")]
    pub languages: Vec<String>,
    /// Whether `Contents-<arch>` files (apt-file) are carried.
    #[serde(default)]
    pub contents: bool,
    /// Whether the DEP-11 (AppStream) metadata under `<component>/dep11/` is carried.
    #[serde(default)]
    pub dep11: bool,
}

/// English: what a default apt asks for besides the locale's language.
fn default_languages() -> Vec<String> {
    vec!["en".to_string()]
}

/// An apt source.
pub struct AptSource {
    name: String,
    url: String,
    s: AptSettings,
    keyring: Keyring,
    client: Client,
}

impl AptSource {
    /// From its config entry; reads the keyring.
    pub fn new(cfg: &SourceConfig) -> Result<Self> {
        let s: AptSettings = cfg.settings()?;
        let name = cfg.name.clone();
        for (what, v) in [
            ("suites", &s.suites),
            ("components", &s.components),
            ("architectures", &s.architectures),
            ("languages", &s.languages),
        ] {
            if v.is_empty() && what != "languages" {
                bail!("`{what}` must name at least one");
            }
            if let Some(bad) = v.iter().find(|x| !safe_word(x)) {
                bail!("{what} entry {bad:?} is not a plain name");
            }
        }
        let keyring = Keyring::load(&s.keyring)
            .with_context(|| format!("keyring {}", s.keyring.display()))?;
        let client = Client::new(&cfg.net, Some(&s.url))?;
        Ok(AptSource {
            url: s.url.trim_end_matches('/').to_string(),
            name,
            s,
            keyring,
            client,
        })
    }

    fn url_of(&self, path: &str) -> String {
        format!("{}/{path}", self.url)
    }
}

/// A name that is safe as a path component.
fn safe_word(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'+' | b'~'))
}

/// Each selected `.deb` once, by path; an error when two stanzas give one
/// path different contents.
fn unique_debs<'a>(source: &str, selected: &[&'a Stanza]) -> Result<BTreeMap<&'a str, &'a Stanza>> {
    let mut debs: BTreeMap<&str, &Stanza> = BTreeMap::new();
    for st in selected {
        if let Some(other) = debs.insert(&st.filename, st) {
            if other.sha256 != st.sha256 || other.size != st.size {
                bail!(
                    "source {source:?}: {} is listed twice with different contents ({} in {}/{}/binary-{}, {} in {}/{}/binary-{})",
                    st.filename, other.sha256, other.suite, other.component, other.arch,
                    st.sha256, st.suite, st.component, st.arch
                );
            }
        }
    }
    Ok(debs)
}

/// Removes the files of `dir` whose names `keep` does not hold.
fn clean_dir(dir: &std::path::Path, keep: impl Fn(&str) -> bool) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if !keep(e.file_name().to_string_lossy().as_ref()) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

fn object_sha(o: &ferry_protocol::catalog::Object) -> Option<&Sha256> {
    match o {
        ferry_protocol::catalog::Object::File(f) => Some(&f.sha256),
        _ => None,
    }
}

impl Source for AptSource {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> SourceKind {
        SourceKind::Apt
    }

    fn signable(&self) -> Option<&'static str> {
        Some("keyring")
    }

    fn checks_signature(&self) -> bool {
        true
    }

    fn provenance(&self) -> Vec<ferry_protocol::provenance::Vouch> {
        vec![super::openpgp_vouch(
            &self.name,
            &self.keyring,
            &format!("InRelease/Release.gpg of {}", self.s.suites.join(", ")),
        )]
    }

    /// Fetch (release files and indices), select, pin, fetch the debs, emit.
    /// Everything is fetched and checked before the first item goes out.
    fn scan(&self, cx: &ScanCtx<'_>, sink: &mut dyn FnMut(Item) -> Result<()>) -> Result<()> {
        let name = self.name.as_str();
        let idx_cache = cx.cache_dir.join("indices");
        let deb_cache = cx.cache_dir.join("debs");
        for d in [&idx_cache, &deb_cache] {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
        }
        let mut indices = self.fetch_indices(&idx_cache)?;
        let selected = self.select(&indices.stanzas)?;
        let debs = unique_debs(name, &selected)?;
        let pins = self.pin(cx, &selected, &debs)?;
        let prev_sha: HashMap<&str, Option<&Sha256>> = cx
            .previous_paths()
            .map(|(p, o)| (p, object_sha(o)))
            .collect();
        // The debs that are new are fetched before anything is emitted, so a
        // mismatch fails the scan whole.
        self.fetch_debs(&prev_sha, &debs, &deb_cache, &mut indices.files)?;
        pins.save()?;
        // Drop cached indices no longer listed (debs are dropped once shipped).
        clean_dir(&idx_cache, |f| indices.used.contains(f));

        emit_all(indices.files, &self.client, name, sink)?;
        for path in &pins.keep {
            sink(Item {
                path: path.clone(),
                predecessor: None,
                kind: ItemKind::Keep,
            })?;
        }
        for (path, text) in pins.packages {
            sink(Item {
                path,
                predecessor: None,
                kind: bytes_file(text.into_bytes(), None, None),
            })?;
        }
        // Shipped debs need no cache: the ledger knows them by fingerprint.
        let want: BTreeSet<&str> = debs.values().map(|s| s.sha256.as_str()).collect();
        clean_dir(&deb_cache, |f| want.contains(f));
        Ok(())
    }
}
