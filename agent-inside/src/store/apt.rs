//! The store of Debian (apt) repositories.
//!
//! Objects of `apt` sources are materialized at `GEN/apt/<source>/<path>`
//! and served under `/apt/<source>/<path>`: the upstream repository byte for
//! byte for what was selected (`dists/<suite>/InRelease`, `Release`,
//! `Release.gpg`, index files and their `by-hash/SHA256/<hex>` copies,
//! `pool/...` debs), which apt verifies with the upstream's own key.
//! `ferry/pinned/<suite>/<component>/binary-<arch>/Packages` holds stanzas
//! of pinned packages upstream no longer lists (written by ferry-out).
//!
//! Checks, besides the size and SHA-256 of every object (`materialize`):
//! before extraction ([`Store::check`]) every path is under `dists/`,
//! `pool/` or `ferry/pinned/`, a `by-hash/SHA256/<hex>` object's SHA-256 is
//! its name, and each source has a Release file; while building, every index
//! file under `dists/<suite>/` must be listed in that suite's Release with the
//! same size and SHA256, and every deb in `pool/` must be listed by a stanza
//! (upstream's or a pinned one) with the same `Size` and `SHA256`.
//!
//! The site-signed filtered view: for every source, `build` also writes
//! `GEN/apt-site/<source>/dists/<suite>/` with `<component>/binary-<arch>/Packages`
//! (and `.gz`) listing only the debs this generation holds (pinned ones
//! included), a `Release` with their hashes (Origin, Label, Suite, Codename,
//! Date and Valid-Until copied from upstream), and `InRelease` and
//! `Release.gpg` signed with the site key ([`crate::site_key`], created here
//! on first use). It is served under `/apt-site/<source>/`, where `pool/`
//! resolves to the same debs as `/apt/<source>/pool/`. Like everything in a
//! generation, indices and debs change together when `current` moves.

use super::{materialize, objects_of_kind, BuildCtx, Store};
use crate::site_key::SiteKey;
use anyhow::{anyhow, bail, Context, Result};
use ferry_formats::deb::{decompress, fields, paragraphs, Release, PACKAGES_VARIANTS};
use ferry_protocol::catalog::{Catalog, Object, SourceKind};
use ferry_protocol::id::Sha256;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The filtered, site-signed view inside a generation directory.
pub const GEN_APT_SITE: &str = "apt-site";

/// The store of Debian (apt) repositories.
pub struct AptStore;

/// The release files of a suite.
const RELEASE_FILES: [&str; 3] = ["InRelease", "Release", "Release.gpg"];

impl Store for AptStore {
    fn kind(&self) -> SourceKind {
        SourceKind::Apt
    }

    fn check(&self, next: &Catalog) -> Result<()> {
        let mut has_release: BTreeMap<&str, bool> = next
            .sources
            .iter()
            .filter(|(_, k)| **k == SourceKind::Apt)
            .map(|(s, _)| (s.as_str(), false))
            .collect();
        for (key, obj) in objects_of_kind(next, SourceKind::Apt) {
            let p = key.path.as_str();
            let Object::File(f) = obj else {
                bail!(
                    "apt source {:?}: {p} is a symbolic link; an apt repository has none",
                    key.source
                );
            };
            if !(p.starts_with("dists/")
                || p.starts_with("pool/")
                || p.starts_with("ferry/pinned/"))
            {
                bail!(
                    "apt source {:?}: {p} is neither under dists/, pool/ nor ferry/pinned/",
                    key.source
                );
            }
            if let Some((_, hex)) = p.split_once("/by-hash/SHA256/") {
                if hex != f.sha256.to_hex() {
                    bail!(
                        "apt source {:?}: {p} has SHA256 {}, not the one its name says",
                        key.source,
                        f.sha256
                    );
                }
            }
            let parts: Vec<&str> = p.split('/').collect();
            if parts.len() == 3
                && parts[0] == "dists"
                && (parts[2] == "InRelease" || parts[2] == "Release")
            {
                has_release.insert(&key.source, true);
            }
        }
        if let Some((s, _)) = has_release.iter().find(|(_, has)| !**has) {
            bail!("apt source {s:?} has no dists/<suite>/InRelease or Release");
        }
        Ok(())
    }

    fn build(&self, cx: &BuildCtx<'_>) -> Result<u64> {
        let written = materialize(cx, self.kind(), self.kind().name())?;
        let sources: Vec<&String> = cx
            .next
            .sources
            .iter()
            .filter(|(_, k)| **k == SourceKind::Apt)
            .map(|(s, _)| s)
            .collect();
        if sources.is_empty() {
            return Ok(written);
        }
        let key = SiteKey::load_or_create(cx.layout)?;
        for source in sources {
            let at = |path: &str| {
                let key = ferry_protocol::path::ObjectKey {
                    source: source.clone(),
                    path: path.to_string(),
                };
                cx.new_path(SourceKind::Apt.name(), &key)
            };
            let repo = Repo::read(cx.next, source, &at)?;
            repo.check(source)?;
            repo.write_site_view(source, &cx.new_gen.join(GEN_APT_SITE).join(source), &key)?;
        }
        Ok(written)
    }
}

/// One suite as this generation holds it.
#[derive(Default)]
struct Suite {
    /// Its Release: fields by lower-case name, and the SHA256 list.
    release: Release,
    /// Index files held: path relative to the suite -> (size, SHA256).
    held: BTreeMap<String, (u64, Sha256)>,
    /// `<component>/binary-<arch>` -> stanzas (upstream's, then pinned ones).
    stanzas: BTreeMap<String, Vec<Stanza>>,
}

struct Stanza {
    filename: String,
    size: u64,
    sha256: String,
    text: String,
}

/// An apt source of the generation being built.
struct Repo {
    suites: BTreeMap<String, Suite>,
    /// `pool/` objects: path -> (size, SHA256).
    debs: BTreeMap<String, (u64, Sha256)>,
}

impl Repo {
    /// The repository of `source` in `catalog`, its files read where `at`
    /// says (a path of the source to its bytes' file).
    fn read(catalog: &Catalog, source: &str, at: &dyn Fn(&str) -> PathBuf) -> Result<Repo> {
        let mut repo = Repo {
            suites: BTreeMap::new(),
            debs: BTreeMap::new(),
        };
        let mut pinned = Vec::new();
        for (key, obj) in
            objects_of_kind(catalog, SourceKind::Apt).filter(|(k, _)| k.source == source)
        {
            let Object::File(f) = obj else { continue };
            let p = key.path.as_str();
            if p.starts_with("pool/") {
                repo.debs.insert(p.to_string(), (f.size, f.sha256));
            } else if let Some(rest) = p.strip_prefix("dists/") {
                let (suite, rel) = rest
                    .split_once('/')
                    .ok_or_else(|| anyhow!("apt source {source:?}: {p} is not in a suite"))?;
                let s = repo.suites.entry(suite.to_string()).or_default();
                if !RELEASE_FILES.contains(&rel) {
                    s.held.insert(rel.to_string(), (f.size, f.sha256));
                }
            } else if let Some(rest) = p.strip_prefix("ferry/pinned/") {
                pinned.push((rest.to_string(), p.to_string()));
            }
        }
        for (name, suite) in repo.suites.iter_mut() {
            let text = release_text(at, name)
                .with_context(|| format!("apt source {source:?}: suite {name}"))?;
            suite.release = Release::parse(&text)
                .with_context(|| format!("apt source {source:?}: dists/{name}/Release"))?;
            let dirs: BTreeSet<String> = suite
                .held
                .keys()
                .filter(|r| !r.contains("/by-hash/"))
                .filter_map(|r| r.rsplit_once('/').map(|(d, _)| d.to_string()))
                .filter(|d| d.contains("/binary-"))
                .collect();
            for d in dirs {
                let Some(v) = PACKAGES_VARIANTS
                    .iter()
                    .find(|v| suite.held.contains_key(&format!("{d}/{v}")))
                else {
                    continue;
                };
                let file = format!("dists/{name}/{d}/{v}");
                let text = read_index(&at(&file), v)
                    .with_context(|| format!("apt source {source:?}: {file}"))?;
                let st = parse_stanzas(&text)
                    .with_context(|| format!("apt source {source:?}: {file}"))?;
                suite.stanzas.insert(d, st);
            }
        }
        for (rest, p) in pinned {
            // <suite>/<component>/binary-<arch>/Packages
            let Some((suite, tail)) = rest.split_once('/') else {
                bail!("apt source {source:?}: {p} is not ferry/pinned/<suite>/<component>/binary-<arch>/Packages");
            };
            let Some(dir) = tail.strip_suffix("/Packages") else {
                bail!("apt source {source:?}: {p} is not ferry/pinned/<suite>/<component>/binary-<arch>/Packages");
            };
            let text = std::fs::read_to_string(at(&p))
                .with_context(|| format!("apt source {source:?}: cannot read {p}"))?;
            let st = parse_stanzas(&text).with_context(|| format!("apt source {source:?}: {p}"))?;
            let s = repo.suites.get_mut(suite).ok_or_else(|| {
                anyhow!("apt source {source:?}: {p} names suite {suite:?}, which the bundle does not have")
            })?;
            s.stanzas.entry(dir.to_string()).or_default().extend(st);
        }
        Ok(repo)
    }

    /// Defence in depth: index files against Release, debs against stanzas.
    fn check(&self, source: &str) -> Result<()> {
        for (name, s) in &self.suites {
            for (rel, (size, sha)) in &s.held {
                if rel.contains("/by-hash/SHA256/") {
                    continue; // named by their SHA-256, checked before extraction
                }
                match s.release.sha256.get(rel) {
                    Some((ls, lsha)) if ls == size && lsha == sha => {}
                    Some((ls, lsha)) => bail!(
                        "apt source {source:?}: dists/{name}/{rel}: Release lists {ls} bytes with SHA256 {lsha}, the bundle holds {size} bytes with {sha}"
                    ),
                    None => bail!(
                        "apt source {source:?}: dists/{name}/{rel} is not listed in dists/{name}/Release"
                    ),
                }
            }
        }
        let mut listed: HashMap<&str, Vec<(u64, &str)>> = HashMap::new();
        for s in self.suites.values() {
            for st in s.stanzas.values().flatten() {
                listed
                    .entry(&st.filename)
                    .or_default()
                    .push((st.size, &st.sha256));
            }
        }
        for (p, (size, sha)) in &self.debs {
            let hex = sha.to_hex();
            match listed.get(p.as_str()) {
                Some(v) if v.iter().any(|(s, h)| s == size && *h == hex) => {}
                Some(v) => bail!(
                    "apt source {source:?}: {p}: the index lists {} bytes with SHA256 {}, the bundle holds {size} bytes with {hex}",
                    v[0].0,
                    v[0].1
                ),
                None => bail!("apt source {source:?}: {p} is listed in no Packages index"),
            }
        }
        Ok(())
    }

    /// Writes the filtered view of one source at `dest` (`.../apt-site/<source>`).
    fn write_site_view(&self, source: &str, dest: &Path, key: &SiteKey) -> Result<()> {
        for (name, s) in &self.suites {
            let suite_dir = dest.join("dists").join(name);
            let mut sums = String::new();
            let mut comps = BTreeSet::new();
            let mut arches = BTreeSet::new();
            for (dir, stanzas) in &s.stanzas {
                let Some((comp, arch)) = dir.split_once("/binary-") else {
                    continue;
                };
                comps.insert(comp.to_string());
                arches.insert(arch.to_string());
                let mut text = String::new();
                let mut seen = BTreeSet::new();
                for st in stanzas {
                    let held = self
                        .debs
                        .get(&st.filename)
                        .is_some_and(|(size, sha)| *size == st.size && sha.to_hex() == st.sha256);
                    if held && seen.insert((&st.filename, &st.sha256)) {
                        text.push_str(st.text.trim_end_matches('\n'));
                        text.push_str("\n\n");
                    }
                }
                let gz = gzip(text.as_bytes())?;
                let d = suite_dir.join(dir);
                std::fs::create_dir_all(&d)
                    .with_context(|| format!("cannot create {}", d.display()))?;
                for (fname, bytes) in [("Packages", text.as_bytes()), ("Packages.gz", &gz[..])] {
                    std::fs::write(d.join(fname), bytes)
                        .with_context(|| format!("cannot write {}", d.join(fname).display()))?;
                    let _ = writeln!(
                        sums,
                        " {} {} {dir}/{fname}",
                        Sha256::of(bytes).to_hex(),
                        bytes.len()
                    );
                }
            }
            let mut rel = String::new();
            for f in [
                "origin",
                "label",
                "suite",
                "codename",
                "version",
                "date",
                "valid-until",
            ] {
                if let Some(v) = s.release.fields.get(f) {
                    let _ = writeln!(rel, "{}: {v}", header_name(f));
                }
            }
            let _ = writeln!(
                rel,
                "Architectures: {}",
                arches.into_iter().collect::<Vec<_>>().join(" ")
            );
            let _ = writeln!(
                rel,
                "Components: {}",
                comps.into_iter().collect::<Vec<_>>().join(" ")
            );
            let _ = writeln!(
                rel,
                "Description: ferry-in view of {source} listing only the packages mirrored, signed with the site key"
            );
            rel.push_str("SHA256:\n");
            rel.push_str(&sums);
            let write = |f: &str, b: &[u8]| {
                std::fs::write(suite_dir.join(f), b)
                    .with_context(|| format!("cannot write {}", suite_dir.join(f).display()))
            };
            std::fs::create_dir_all(&suite_dir)
                .with_context(|| format!("cannot create {}", suite_dir.display()))?;
            write("Release", rel.as_bytes())?;
            write("Release.gpg", key.detached(rel.as_bytes())?.as_bytes())?;
            write("InRelease", key.clearsign(&rel)?.as_bytes())?;
        }
        Ok(())
    }
}

/// `Valid-Until` from `valid-until`.
fn header_name(lower: &str) -> String {
    lower
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-")
}

use std::fmt::Write as _;

/// The Release text of a suite: InRelease's signed text, else Release.
/// (The signature was verified outside, against the configured keyring.)
fn release_text(at: &dyn Fn(&str) -> PathBuf, suite: &str) -> Result<String> {
    match std::fs::read_to_string(at(&format!("dists/{suite}/InRelease"))) {
        Ok(t) => {
            let (msg, _) = pgp::composed::CleartextSignedMessage::from_string(&t)
                .map_err(|e| anyhow!("InRelease is not a cleartext-signed message: {e}"))?;
            Ok(msg.signed_text().replace("\r\n", "\n"))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::read_to_string(at(&format!("dists/{suite}/Release")))
                .map_err(|e| anyhow!("neither InRelease nor a readable Release: {e}"))
        }
        Err(e) => Err(anyhow!("cannot read InRelease: {e}")),
    }
}

fn read_index(path: &Path, name: &str) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(decompress(name, bytes)?)
}

fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data)?;
    Ok(e.finish()?)
}

fn parse_stanzas(text: &str) -> Result<Vec<Stanza>> {
    paragraphs(text)
        .map(|para| {
            let f = fields(para);
            let get = |k: &str| {
                f.get(k)
                    .cloned()
                    .ok_or_else(|| anyhow!("a stanza has no {k} field"))
            };
            Ok(Stanza {
                filename: get("filename")?,
                size: get("size")?
                    .parse()
                    .map_err(|_| anyhow!("a stanza has a bad Size"))?,
                sha256: get("sha256")?,
                text: para.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names() {
        assert_eq!(header_name("valid-until"), "Valid-Until");
        assert_eq!(header_name("origin"), "Origin");
    }

    #[test]
    fn stanzas() {
        let st = parse_stanzas("Package: a\nFilename: pool/a.deb\nSize: 3\nSHA256: ab\nDescription: x\n y\n\nPackage: b\nFilename: pool/b.deb\nSize: 4\nSHA256: cd\n").unwrap();
        assert_eq!(st.len(), 2);
        assert_eq!(st[1].filename, "pool/b.deb");
        assert!(st[0].text.contains("\n y"));
        assert!(parse_stanzas("Package: a\n").is_err());
    }
}
