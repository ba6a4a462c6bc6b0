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
//! Any mismatch fails the whole export, naming the source, the file, the
//! expected and the actual value; nothing is written to media.

use super::checked::Checked;
use super::{Item, ItemKind, ScanCtx, Source};
use crate::config::SourceConfig;
use anyhow::{anyhow, bail, Context, Result};
use ferry_formats::rpm::{parse_repomd, Checksum};
use ferry_protocol::catalog::SourceKind;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Cursor, Read};
use std::path::PathBuf;

/// Largest `repomd.xml` (or signature) accepted.
const MAX_REPOMD: u64 = 16 << 20;
/// Largest metadata file accepted.
const MAX_METADATA: u64 = 4 << 30;
/// Largest uncompressed primary metadata accepted.
const MAX_PRIMARY_XML: u64 = 8 << 30;

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
    keys: Option<Vec<pgp::composed::SignedPublicKey>>,
    keyring: Option<PathBuf>,
    pin: Vec<String>,
    agent: ureq::Agent,
}

impl YumSource {
    /// From its config entry.
    pub fn new(cfg: &SourceConfig) -> Result<Self> {
        let s: YumSettings = cfg.settings()?;
        if !(s.baseurl.starts_with("http://") || s.baseurl.starts_with("https://")) {
            bail!(
                "source {:?} (yum): baseurl {:?} must be an http:// or https:// URL",
                cfg.name,
                s.baseurl
            );
        }
        let keys = match &s.keyring {
            Some(path) => Some(
                read_keyring(path)
                    .with_context(|| format!("source {:?} (yum): keyring", cfg.name))?,
            ),
            None => None,
        };
        for p in &s.pin {
            if p.is_empty() || p.contains('/') {
                bail!(
                    "source {:?} (yum): pin {p:?} is not a package file name (name-version-release.arch)",
                    cfg.name
                );
            }
        }
        Ok(YumSource {
            name: cfg.name.clone(),
            base: s.baseurl.trim_end_matches('/').to_string(),
            packages: s.packages,
            keys,
            keyring: s.keyring,
            pin: s.pin,
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into(),
        })
    }

    fn url(&self, href: &str) -> String {
        format!("{}/{href}", self.base)
    }

    /// GETs `href` whole (at most `limit` bytes); `None` on 404.
    fn get_small(&self, href: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        let url = self.url(href);
        let mut resp = self
            .agent
            .get(&url)
            .call()
            .with_context(|| format!("cannot fetch {url}"))?;
        if resp.status() == 404 {
            return Ok(None);
        }
        if !resp.status().is_success() {
            bail!("{url}: HTTP {}", resp.status());
        }
        let body = resp
            .body_mut()
            .with_config()
            .limit(limit)
            .read_to_vec()
            .with_context(|| format!("cannot read {url}"))?;
        Ok(Some(body))
    }

    /// Opens `href` for streaming.
    fn open(agent: &ureq::Agent, url: &str) -> Result<Box<dyn Read>> {
        let resp = agent
            .get(url)
            .call()
            .with_context(|| format!("cannot fetch {url}"))?;
        if !resp.status().is_success() {
            bail!("{url}: HTTP {}", resp.status());
        }
        Ok(Box::new(
            resp.into_body().into_with_config().limit(u64::MAX).reader(),
        ))
    }

    fn verify_signature(&self, repomd: &[u8], asc: Option<&[u8]>) -> Result<()> {
        let Some(keys) = &self.keys else {
            return Ok(());
        };
        let keyring = self.keyring.as_ref().expect("keys come from a keyring");
        let Some(asc) = asc else {
            bail!(
                "source {:?}: `keyring` is set, but upstream has no repodata/repomd.xml.asc ({})",
                self.name,
                self.url("repodata/repomd.xml.asc")
            );
        };
        verify_detached(keys, repomd, asc).map_err(|why| {
            anyhow!(
                "source {:?}: repodata/repomd.xml.asc does not verify repodata/repomd.xml with the keyring {}: {why}",
                self.name,
                keyring.display()
            )
        })
    }
}

/// Reads an OpenPGP public keyring, armored or binary.
fn read_keyring(path: &std::path::Path) -> Result<Vec<pgp::composed::SignedPublicKey>> {
    use pgp::composed::{Deserializable, SignedPublicKey};
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let keys: Vec<SignedPublicKey> = if bytes.starts_with(b"-----BEGIN") {
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| anyhow!("{} is armored but not text", path.display()))?;
        SignedPublicKey::from_string_many(text)
            .map_err(|e| anyhow!("{} is not an OpenPGP public key: {e}", path.display()))?
            .0
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| anyhow!("{} is not an OpenPGP public key: {e}", path.display()))?
    } else {
        SignedPublicKey::from_bytes_many(Cursor::new(bytes))
            .map_err(|e| anyhow!("{} is not an OpenPGP public key: {e}", path.display()))?
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| anyhow!("{} is not an OpenPGP public key: {e}", path.display()))?
    };
    if keys.is_empty() {
        bail!("{} holds no OpenPGP public key", path.display());
    }
    Ok(keys)
}

/// Verifies an armored (or binary) detached signature over `data` with any
/// key of `keys` (primary keys and subkeys).
fn verify_detached(
    keys: &[pgp::composed::SignedPublicKey],
    data: &[u8],
    sig: &[u8],
) -> std::result::Result<(), String> {
    use pgp::composed::{Deserializable, DetachedSignature};
    let sig = if sig.starts_with(b"-----BEGIN") {
        let text = std::str::from_utf8(sig).map_err(|_| "the signature is not text".to_string())?;
        DetachedSignature::from_string(text)
            .map_err(|e| format!("not an OpenPGP signature: {e}"))?
            .0
    } else {
        DetachedSignature::from_bytes(Cursor::new(sig))
            .map_err(|e| format!("not an OpenPGP signature: {e}"))?
    };
    let mut last = String::from("no key in the keyring");
    for k in keys {
        match sig.verify(&k.primary_key, data) {
            Ok(()) => return Ok(()),
            Err(e) => last = e.to_string(),
        }
        for sub in &k.public_subkeys {
            match sig.verify(&sub.key, data) {
                Ok(()) => return Ok(()),
                Err(e) => last = e.to_string(),
            }
        }
    }
    Err(format!("no key of the keyring made it ({last})"))
}

/// An `(epoch, version, release)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evr {
    /// Epoch (0 when absent).
    pub epoch: u64,
    /// Version.
    pub ver: String,
    /// Release.
    pub rel: String,
}

impl Evr {
    /// Compares as rpm does: epoch, then version, then release with `rpmvercmp`.
    pub fn cmp_rpm(&self, other: &Evr) -> std::cmp::Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| rpmvercmp(&self.ver, &other.ver))
            .then_with(|| rpmvercmp(&self.rel, &other.rel))
    }
}

/// rpm's version comparison: alternating runs of digits and letters compared
/// segment by segment (numbers numerically, and a number beats letters), `~`
/// sorts before anything (even the end), `^` after the end but before anything
/// else, other characters only separate.
pub fn rpmvercmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    if a == b {
        return Equal;
    }
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    let sep = |c: u8| !c.is_ascii_alphanumeric() && c != b'~' && c != b'^';
    loop {
        while !a.is_empty() && sep(a[0]) {
            a = &a[1..];
        }
        while !b.is_empty() && sep(b[0]) {
            b = &b[1..];
        }
        match (a.first(), b.first()) {
            (Some(b'~'), Some(b'~')) => {
                a = &a[1..];
                b = &b[1..];
                continue;
            }
            (Some(b'~'), _) => return Less,
            (_, Some(b'~')) => return Greater,
            (Some(b'^'), Some(b'^')) => {
                a = &a[1..];
                b = &b[1..];
                continue;
            }
            (Some(b'^'), None) => return Greater,
            (None, Some(b'^')) => return Less,
            (Some(b'^'), _) => return Less,
            (_, Some(b'^')) => return Greater,
            (None, None) => return Equal,
            (None, _) => return Less,
            (_, None) => return Greater,
            _ => {}
        }
        let numeric = a[0].is_ascii_digit();
        let take = |s: &[u8]| -> usize {
            s.iter()
                .take_while(|c| {
                    if numeric {
                        c.is_ascii_digit()
                    } else {
                        c.is_ascii_alphabetic()
                    }
                })
                .count()
        };
        let (la, lb) = (take(a), take(b));
        if lb == 0 {
            // Different kinds of segment: a number is newer than letters.
            return if numeric { Greater } else { Less };
        }
        let (sa, sb) = (&a[..la], &b[..lb]);
        let ord = if numeric {
            let ta = trim_zeros(sa);
            let tb = trim_zeros(sb);
            ta.len().cmp(&tb.len()).then_with(|| ta.cmp(tb))
        } else {
            sa.cmp(sb)
        };
        if ord != Equal {
            return ord;
        }
        a = &a[la..];
        b = &b[lb..];
    }
}

fn trim_zeros(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&c| c == b'0').count();
    &s[n..]
}

/// A package as primary metadata describes it.
#[derive(Debug, Clone)]
pub struct Package {
    /// Name.
    pub name: String,
    /// Architecture (`noarch`, `x86_64`, `src`, …).
    pub arch: String,
    /// Epoch, version, release.
    pub evr: Evr,
    /// `location href`, relative to the base URL.
    pub href: String,
    /// Checksum of the `.rpm`.
    pub checksum: Checksum,
    /// Size of the `.rpm` (`<size package=…>`).
    pub size: Option<u64>,
    /// Names it provides (`rpm:provides`), and file paths primary lists.
    pub provides: Vec<String>,
    /// Names (or file paths) it requires.
    pub requires: Vec<String>,
}

impl Package {
    /// `name-version-release.arch`, the `.rpm` file name without extension.
    pub fn nvra(&self) -> String {
        format!(
            "{}-{}-{}.{}",
            self.name, self.evr.ver, self.evr.rel, self.arch
        )
    }
}

/// Parses uncompressed primary metadata.
pub fn parse_primary(xml: &str) -> Result<Vec<Package>> {
    let doc = roxmltree::Document::parse_with_options(
        xml,
        roxmltree::ParsingOptions {
            allow_dtd: false,
            nodes_limit: u32::MAX,
            ..Default::default()
        },
    )
    .context("primary metadata is not XML")?;
    let mut out = Vec::new();
    for p in doc
        .root_element()
        .children()
        .filter(|n| n.has_tag_name("package"))
    {
        if p.attribute("type") != Some("rpm") {
            continue;
        }
        let child = |name: &str| p.children().find(|n| n.has_tag_name(name));
        let name = child("name")
            .and_then(|n| n.text())
            .ok_or_else(|| anyhow!("primary: a <package> has no <name>"))?
            .to_string();
        let arch = child("arch")
            .and_then(|n| n.text())
            .unwrap_or("")
            .to_string();
        let v =
            child("version").ok_or_else(|| anyhow!("primary: package {name} has no <version>"))?;
        let evr = Evr {
            epoch: v
                .attribute("epoch")
                .unwrap_or("0")
                .parse()
                .with_context(|| format!("primary: package {name}: epoch"))?,
            ver: v.attribute("ver").unwrap_or("").to_string(),
            rel: v.attribute("rel").unwrap_or("").to_string(),
        };
        let loc = child("location")
            .ok_or_else(|| anyhow!("primary: package {name} has no <location>"))?;
        if loc.attribute("xml:base").is_some() || loc.attribute("base").is_some() {
            bail!("primary: package {name} has an xml:base location, which is not supported");
        }
        let href = loc
            .attribute("href")
            .ok_or_else(|| anyhow!("primary: package {name} has no location href"))?
            .to_string();
        let ck = child("checksum")
            .ok_or_else(|| anyhow!("primary: package {name} has no <checksum>"))?;
        let checksum = Checksum::new(ck.attribute("type").unwrap_or(""), ck.text().unwrap_or(""))
            .with_context(|| format!("primary: package {href}"))?;
        let size = child("size")
            .and_then(|n| n.attribute("package"))
            .and_then(|s| s.parse().ok());
        let mut provides = Vec::new();
        let mut requires = Vec::new();
        if let Some(fmt) = child("format") {
            for sec in fmt.children() {
                match sec.tag_name().name() {
                    "provides" | "requires" => {
                        let list = if sec.tag_name().name() == "provides" {
                            &mut provides
                        } else {
                            &mut requires
                        };
                        for e in sec.children().filter(|n| n.has_tag_name("entry")) {
                            if let Some(n) = e.attribute("name") {
                                list.push(n.to_string());
                            }
                        }
                    }
                    "file" => {
                        if let Some(t) = sec.text() {
                            provides.push(t.to_string());
                        }
                    }
                    _ => {}
                }
            }
        }
        out.push(Package {
            name,
            arch,
            evr,
            href,
            checksum,
            size,
            provides,
            requires,
        });
    }
    Ok(out)
}

/// Decompresses metadata by its file name: `.gz`, `.xz`, `.zst`, or plain XML.
fn decompress(href: &str, data: &[u8], limit: u64) -> Result<Vec<u8>> {
    if !ferry_formats::compress::is_compressed(href) && !href.ends_with(".xml") {
        bail!("{href}: unsupported compression (gz, xz, zst and plain XML are)");
    }
    Ok(ferry_formats::compress::decompress(href, data, limit)?)
}

/// Picks the packages to mirror: `wanted` names (newest per architecture) and
/// `pinned` file names, with the closure of their requirements. Returns the
/// indexes into `pkgs`, and warnings (unresolved requirements).
pub fn select(
    pkgs: &[Package],
    wanted: &[String],
    pinned: &[String],
) -> Result<(BTreeSet<usize>, Vec<String>)> {
    let mut by_name: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut providers: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, p) in pkgs.iter().enumerate() {
        by_name.entry(&p.name).or_default().push(i);
        providers.entry(&p.name).or_default().push(i);
        for pr in &p.provides {
            providers.entry(pr).or_default().push(i);
        }
    }
    let newest_per_arch = |ix: &[usize]| -> Vec<usize> {
        let mut best: BTreeMap<&str, usize> = BTreeMap::new();
        for &i in ix
            .iter()
            .filter(|&&i| !matches!(pkgs[i].arch.as_str(), "src" | "nosrc"))
        {
            let e = best.entry(&pkgs[i].arch).or_insert(i);
            if pkgs[i].evr.cmp_rpm(&pkgs[*e].evr) == std::cmp::Ordering::Greater {
                *e = i;
            }
        }
        best.into_values().collect()
    };
    let mut chosen = BTreeSet::new();
    let mut queue = Vec::new();
    for w in wanted {
        let ix = by_name
            .get(w.as_str())
            .ok_or_else(|| anyhow!("package {w:?} is not in the repository"))?;
        for i in newest_per_arch(ix) {
            if chosen.insert(i) {
                queue.push(i);
            }
        }
    }
    for pin in pinned {
        for (i, p) in pkgs.iter().enumerate() {
            if p.nvra() == *pin && chosen.insert(i) {
                queue.push(i);
            }
        }
    }
    let mut warnings = BTreeSet::new();
    while let Some(i) = queue.pop() {
        for req in &pkgs[i].requires {
            if req.starts_with("rpmlib(") {
                continue;
            }
            let Some(cands) = providers.get(req.as_str()) else {
                warnings.insert(format!(
                    "{}: requirement {req:?} is provided by nothing in primary metadata",
                    pkgs[i].nvra()
                ));
                continue;
            };
            if cands.iter().any(|c| chosen.contains(c)) {
                continue;
            }
            // The newest provider, preferring one named as the requirement,
            // then the same architecture (or noarch), then by name.
            let arch = &pkgs[i].arch;
            let best = cands
                .iter()
                .copied()
                .max_by(|&x, &y| {
                    let (px, py) = (&pkgs[x], &pkgs[y]);
                    (px.name == *req)
                        .cmp(&(py.name == *req))
                        .then_with(|| {
                            (px.arch == *arch || px.arch == "noarch")
                                .cmp(&(py.arch == *arch || py.arch == "noarch"))
                        })
                        .then_with(|| py.name.cmp(&px.name))
                        .then_with(|| px.evr.cmp_rpm(&py.evr))
                })
                .expect("non-empty");
            if chosen.insert(best) {
                queue.push(best);
            }
        }
    }
    Ok((chosen, warnings.into_iter().collect()))
}

impl Source for YumSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SourceKind {
        SourceKind::Yum
    }

    fn scan(&self, cx: &ScanCtx<'_>, sink: &mut dyn FnMut(Item) -> Result<()>) -> Result<()> {
        let name = self.name.clone();
        let repomd = self
            .get_small("repodata/repomd.xml", MAX_REPOMD)
            .with_context(|| format!("source {name:?}"))?
            .ok_or_else(|| {
                anyhow!(
                    "source {name:?}: {} does not exist (is baseurl the directory holding repodata/?)",
                    self.url("repodata/repomd.xml")
                )
            })?;
        let asc = self
            .get_small("repodata/repomd.xml.asc", MAX_REPOMD)
            .with_context(|| format!("source {name:?}"))?;
        self.verify_signature(&repomd, asc.as_deref())?;
        let entries = parse_repomd(&repomd).with_context(|| format!("source {name:?}"))?;

        let file = |path: String, fingerprint: Option<String>, open: super::Opener| Item {
            path,
            kind: ItemKind::File {
                executable: false,
                fingerprint,
                expected_sha256: None,
                open,
            },
        };
        let bytes_item = |path: &str, bytes: Vec<u8>| {
            file(
                path.to_string(),
                None,
                Box::new(move || Ok(Box::new(Cursor::new(bytes)) as Box<dyn Read>)),
            )
        };

        // Primary first: it decides the packages, and a bad one stops
        // everything before any download.
        let primary = entries
            .iter()
            .find(|e| e.kind == "primary")
            .ok_or_else(|| anyhow!("source {name:?}: repomd.xml lists no primary metadata"))?;
        let mut primary_bytes = Vec::new();
        Checked::new(
            Self::open(&self.agent, &self.url(&primary.href))
                .with_context(|| format!("source {name:?}"))?,
            primary.checksum.clone(),
            primary.size,
            format!("source {name:?}: {}", primary.href),
        )
        .take(MAX_METADATA + 1)
        .read_to_end(&mut primary_bytes)
        .with_context(|| format!("source {name:?}: cannot read {}", primary.href))?;
        let xml = decompress(&primary.href, &primary_bytes, MAX_PRIMARY_XML)
            .with_context(|| format!("source {name:?}"))?;
        let xml = String::from_utf8(xml)
            .map_err(|_| anyhow!("source {name:?}: {} is not UTF-8", primary.href))?;
        let pkgs =
            parse_primary(&xml).with_context(|| format!("source {name:?}: {}", primary.href))?;
        drop(xml);
        let chosen: BTreeSet<usize> = if self.packages.is_empty() {
            (0..pkgs.len()).collect()
        } else {
            let (chosen, warnings) = select(&pkgs, &self.packages, &self.pin)
                .with_context(|| format!("source {name:?}"))?;
            for w in warnings {
                eprintln!("ferry-out: warning: source {name:?}: {w}");
            }
            chosen
        };

        sink(bytes_item("repodata/repomd.xml", repomd))?;
        if let Some(asc) = asc {
            sink(bytes_item("repodata/repomd.xml.asc", asc))?;
        }
        for e in &entries {
            let fp = Some(format!("{}:{}", e.checksum, e.size.unwrap_or(0)));
            if e.href == primary.href {
                sink(file(
                    e.href.clone(),
                    fp,
                    Box::new({
                        let b = std::mem::take(&mut primary_bytes);
                        move || Ok(Box::new(Cursor::new(b)) as Box<dyn Read>)
                    }),
                ))?;
                continue;
            }
            let (agent, url, want, size, what) = (
                self.agent.clone(),
                self.url(&e.href),
                e.checksum.clone(),
                e.size,
                format!("source {name:?}: {}", e.href),
            );
            sink(file(
                e.href.clone(),
                fp,
                Box::new(move || {
                    Ok(
                        Box::new(Checked::new(Self::open(&agent, &url)?, want, size, what))
                            as Box<dyn Read>,
                    )
                }),
            ))?;
        }
        let mut listed = BTreeSet::new();
        for &i in &chosen {
            let p = &pkgs[i];
            if !listed.insert(p.href.clone()) {
                continue;
            }
            let (agent, url, want, size, what) = (
                self.agent.clone(),
                self.url(&p.href),
                p.checksum.clone(),
                p.size,
                format!("source {name:?}: {}", p.href),
            );
            sink(file(
                p.href.clone(),
                Some(format!("{}:{}", p.checksum, p.size.unwrap_or(0))),
                Box::new(move || {
                    Ok(
                        Box::new(Checked::new(Self::open(&agent, &url)?, want, size, what))
                            as Box<dyn Read>,
                    )
                }),
            ))?;
        }
        // Pinned packages upstream no longer lists: keep what was shipped.
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
                sink(Item {
                    path: p,
                    kind: ItemKind::Keep,
                })?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering::*;

    #[test]
    fn version_comparison_follows_rpm() {
        for (a, b, o) in [
            ("1.0", "1.0", Equal),
            ("1.0", "1.1", Less),
            ("1.10", "1.9", Greater),
            ("1.0a", "1.0", Greater),
            ("1.0", "1.0.1", Less),
            ("2.0", "2a", Greater),
            ("1.0~rc1", "1.0", Less),
            ("1.0~rc1", "1.0~rc2", Less),
            ("1.0^git1", "1.0", Greater),
            ("1.0^git1", "1.0.1", Less),
            ("001", "1", Equal),
            ("1_0", "1.0", Equal),
            ("a", "1", Less),
        ] {
            assert_eq!(rpmvercmp(a, b), o, "{a} vs {b}");
            assert_eq!(rpmvercmp(b, a), o.reverse(), "{b} vs {a}");
        }
    }

    fn pkg(name: &str, ver: &str, provides: &[&str], requires: &[&str]) -> Package {
        Package {
            name: name.into(),
            arch: "noarch".into(),
            evr: Evr {
                epoch: 0,
                ver: ver.into(),
                rel: "1".into(),
            },
            href: format!("Packages/{name}-{ver}-1.noarch.rpm"),
            checksum: Checksum::new("sha256", &"0".repeat(64)).unwrap(),
            size: None,
            provides: provides.iter().map(|s| s.to_string()).collect(),
            requires: requires.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn closure_through_names_virtual_provides_and_files() {
        let pkgs = vec![
            pkg(
                "app",
                "1.0",
                &[],
                &["lib", "virt-thing", "/usr/bin/tool", "rpmlib(X)"],
            ),
            pkg("app", "2.0", &[], &["lib", "virt-thing", "/usr/bin/tool"]),
            pkg("lib", "1.0", &[], &[]),
            pkg("lib", "1.5", &[], &[]),
            pkg("impl", "1.0", &["virt-thing"], &[]),
            pkg("tool", "1.0", &["/usr/bin/tool"], &["missing-dep"]),
            pkg("unrelated", "1.0", &[], &[]),
        ];
        let (chosen, warnings) = select(&pkgs, &["app".into()], &[]).unwrap();
        let names: Vec<String> = chosen.iter().map(|&i| pkgs[i].nvra()).collect();
        assert_eq!(
            names,
            [
                "app-2.0-1.noarch",
                "lib-1.5-1.noarch",
                "impl-1.0-1.noarch",
                "tool-1.0-1.noarch"
            ]
        );
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("missing-dep"));
        let (chosen, _) = select(&pkgs, &["lib".into()], &["app-1.0-1.noarch".into()]).unwrap();
        assert!(chosen.contains(&0) && chosen.contains(&3) && !chosen.contains(&1));
        assert!(select(&pkgs, &["nope".into()], &[]).is_err());
    }

    #[test]
    fn checked_reader_names_expected_and_actual() {
        let data = b"hello".to_vec();
        let good = Checksum::new(
            "sha256",
            &Checksum::new("sha256", &"0".repeat(64)).unwrap().of(&data),
        )
        .unwrap();
        let mut out = Vec::new();
        Checked::new(
            Box::new(Cursor::new(data.clone())),
            good.clone(),
            Some(5),
            "x".into(),
        )
        .read_to_end(&mut out)
        .unwrap();
        let bad = Checksum::new("sha1", &"1".repeat(40)).unwrap();
        let e = Checked::new(
            Box::new(Cursor::new(data.clone())),
            bad,
            None,
            "src: f".into(),
        )
        .read_to_end(&mut out)
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("src: f") && e.contains("expected sha1:1111") && e.contains("got sha1:"),
            "{e}"
        );
        let e = Checked::new(Box::new(Cursor::new(data)), good, Some(6), "f".into())
            .read_to_end(&mut out)
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected 6 bytes, got 5"), "{e}");
        assert!(Checksum::new("md5", "00").is_err());
    }
}
