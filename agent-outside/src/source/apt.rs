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
//! at `<dir>/by-hash/SHA256/<hex>`. One variant of each `Packages` is parsed
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
//! Any failed check fails the scan, naming the source, the file, what was
//! expected and what upstream sent; the export then writes nothing.

use super::{Item, ItemKind, ScanCtx, Source};
use crate::config::SourceConfig;
use anyhow::{anyhow, bail, Context, Result};
use ferry_formats::deb::{decompress, fields, paragraphs, Release, PACKAGES_VARIANTS};
use ferry_protocol::catalog::SourceKind;
use ferry_protocol::id::{Sha256, Sha256Hasher};
use pgp::composed::{CleartextSignedMessage, Deserializable, DetachedSignature, SignedPublicKey};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

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
}

/// An apt source.
pub struct AptSource {
    name: String,
    url: String,
    s: AptSettings,
    keys: Vec<SignedPublicKey>,
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
        ] {
            if v.is_empty() {
                bail!("source {name:?} (apt): `{what}` must name at least one");
            }
            if let Some(bad) = v.iter().find(|x| !safe_word(x)) {
                bail!("source {name:?} (apt): {what} entry {bad:?} is not a plain name");
            }
        }
        let keys = read_keyring(&s.keyring)
            .with_context(|| format!("source {name:?} (apt): keyring {}", s.keyring.display()))?;
        Ok(AptSource {
            url: s.url.trim_end_matches('/').to_string(),
            name,
            s,
            keys,
        })
    }

    fn url_of(&self, path: &str) -> String {
        format!("{}/{path}", self.url)
    }

    /// Verifies `sig` (what the signature covers is `data`) with any key of
    /// the keyring.
    fn verify_detached(&self, file: &str, data: &[u8], sig_armored: &[u8]) -> Result<()> {
        let sigs = parse_detached(sig_armored).map_err(|e| {
            anyhow!(
                "source {:?}: {file}: not an OpenPGP signature: {e}",
                self.name
            )
        })?;
        for sig in &sigs {
            for k in &self.keys {
                if sig.verify(k, data).is_ok()
                    || k.public_subkeys
                        .iter()
                        .any(|sk| sig.verify(&sk.key, data).is_ok())
                {
                    return Ok(());
                }
            }
        }
        bail!(
            "source {:?}: {file}: BAD SIGNATURE: no signature verifies with a key of {}",
            self.name,
            self.s.keyring.display()
        )
    }

    /// Verifies an InRelease and returns its signed text (LF line ends).
    fn verify_inrelease(&self, file: &str, bytes: &[u8]) -> Result<String> {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| anyhow!("source {:?}: {file} is not UTF-8", self.name))?;
        let (msg, _) = CleartextSignedMessage::from_string(text).map_err(|e| {
            anyhow!(
                "source {:?}: {file}: not an OpenPGP cleartext-signed message: {e}",
                self.name
            )
        })?;
        let ok = self.keys.iter().any(|k| {
            msg.verify(k).is_ok()
                || k.public_subkeys
                    .iter()
                    .any(|sk| msg.verify(&sk.key).is_ok())
        });
        if !ok {
            bail!(
                "source {:?}: {file}: BAD SIGNATURE: no signature verifies with a key of {}",
                self.name,
                self.s.keyring.display()
            );
        }
        Ok(msg.signed_text().replace("\r\n", "\n"))
    }

    /// Fetches one suite's release files, verified. Returns them (path,
    /// bytes) and the parsed Release.
    fn fetch_release(&self, suite: &str) -> Result<(Vec<ReleaseFile>, Release)> {
        let base = format!("dists/{suite}");
        let inrel_path = format!("{base}/InRelease");
        let rel_path = format!("{base}/Release");
        let gpg_path = format!("{base}/Release.gpg");
        let inrel = self.get_small(&inrel_path)?;
        let rel = self.get_small(&rel_path)?;
        let gpg = match rel {
            Some(_) => self.get_small(&gpg_path)?,
            None => None,
        };
        let mut files = Vec::new();
        let mut text = None;
        if let Some(b) = inrel {
            text = Some(self.verify_inrelease(&inrel_path, &b)?);
            files.push((inrel_path.clone(), b));
        }
        if let Some(r) = rel {
            match gpg {
                Some(g) => {
                    self.verify_detached(&gpg_path, &r, &g)?;
                    if text.is_none() {
                        text = Some(String::from_utf8(r.clone()).map_err(|_| {
                            anyhow!("source {:?}: {rel_path} is not UTF-8", self.name)
                        })?);
                    }
                    files.push((rel_path.clone(), r));
                    files.push((gpg_path, g));
                }
                None if text.is_some() => {
                    // An unsigned Release beside a signed InRelease: carried
                    // only if it says the same, so nothing unverified ships.
                    let same = std::str::from_utf8(&r)
                        .ok()
                        .is_some_and(|t| t.trim_end() == text.as_deref().unwrap_or("").trim_end());
                    if same {
                        files.push((rel_path.clone(), r));
                    } else {
                        eprintln!(
                            "ferry-out: warning: source {:?}: {rel_path} has no Release.gpg and differs from InRelease; not carried",
                            self.name
                        );
                    }
                }
                None => bail!(
                    "source {:?}: {base}: upstream has no InRelease and no Release.gpg beside Release; nothing to verify ({})",
                    self.name,
                    self.url_of(&gpg_path)
                ),
            }
        }
        let Some(text) = text else {
            bail!(
                "source {:?}: suite {suite:?}: neither {} nor {} exists upstream",
                self.name,
                self.url_of(&inrel_path),
                self.url_of(&rel_path)
            );
        };
        let release = Release::parse(&text)
            .with_context(|| format!("source {:?}: {base}/Release", self.name))?;
        Ok((files, release))
    }

    /// A small file (release files), or `None` on 404.
    fn get_small(&self, path: &str) -> Result<Option<Vec<u8>>> {
        let url = self.url_of(path);
        let resp = match ureq::get(&url).call() {
            Ok(r) => r,
            Err(ureq::Error::StatusCode(404)) => return Ok(None),
            Err(e) => return Err(anyhow!("source {:?}: cannot fetch {url}: {e}", self.name)),
        };
        let mut buf = Vec::new();
        resp.into_body()
            .into_reader()
            .take(MAX_RELEASE_BYTES + 1)
            .read_to_end(&mut buf)
            .with_context(|| format!("source {:?}: cannot read {url}", self.name))?;
        if buf.len() as u64 > MAX_RELEASE_BYTES {
            bail!(
                "source {:?}: {path} is larger than {MAX_RELEASE_BYTES} bytes",
                self.name
            );
        }
        Ok(Some(buf))
    }
}

/// A release file: its path and bytes.
type ReleaseFile = (String, Vec<u8>);

/// The largest InRelease/Release/Release.gpg accepted.
const MAX_RELEASE_BYTES: u64 = 64 << 20;

/// Downloads `url` to `dest` checking `size` and `sha` on the way; `Ok(false)`
/// on 404 when `allow_missing`. The error names `source`, `file`, expected and actual.
fn download(
    source: &str,
    url: &str,
    file: &str,
    dest: &Path,
    size: u64,
    sha: &Sha256,
    allow_missing: bool,
) -> Result<bool> {
    let resp = match ureq::get(url).call() {
        Ok(r) => r,
        Err(ureq::Error::StatusCode(404)) if allow_missing => return Ok(false),
        Err(e) => return Err(anyhow!("source {source:?}: cannot fetch {url}: {e}")),
    };
    let tmp = dest.with_extension("part");
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?,
    );
    let mut reader = resp.into_body().into_reader().take(size + 1);
    let mut h = Sha256Hasher::new();
    let mut n = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let k = reader
            .read(&mut buf)
            .with_context(|| format!("source {source:?}: cannot read {url}"))?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
        out.write_all(&buf[..k])
            .with_context(|| format!("cannot write {}", tmp.display()))?;
    }
    out.flush()
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    drop(out);
    let got = h.finish();
    if n != size || got != *sha {
        let _ = std::fs::remove_file(&tmp);
        let more = if n > size { " or more" } else { "" };
        bail!(
            "source {source:?}: {file}: hash mismatch: expected {size} bytes with SHA256 {}, upstream sent {n}{more} bytes with SHA256 {got} ({url})",
            sha.to_hex()
        );
    }
    std::fs::rename(&tmp, dest).with_context(|| format!("cannot rename to {}", dest.display()))?;
    Ok(true)
}

/// A name that is safe as a path component.
fn safe_word(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'+' | b'~'))
}

/// Reads every certificate in an armored or binary key file.
pub fn read_keyring(path: &Path) -> Result<Vec<SignedPublicKey>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let keys: Vec<SignedPublicKey> = if bytes.starts_with(b"-----BEGIN") {
        let (it, _) = SignedPublicKey::from_armor_many(&bytes[..])
            .map_err(|e| anyhow!("not an armored OpenPGP key: {e}"))?;
        it.collect::<std::result::Result<_, _>>()
            .map_err(|e| anyhow!("not an armored OpenPGP key: {e}"))?
    } else {
        SignedPublicKey::from_bytes_many(&bytes[..])
            .map_err(|e| anyhow!("not an OpenPGP keyring: {e}"))?
            .filter_map(|k| k.ok())
            .collect()
    };
    if keys.is_empty() {
        bail!("holds no OpenPGP public key");
    }
    Ok(keys)
}

fn parse_detached(bytes: &[u8]) -> Result<Vec<DetachedSignature>, String> {
    if bytes.starts_with(b"-----BEGIN") {
        let (it, _) = DetachedSignature::from_armor_many(bytes).map_err(|e| e.to_string())?;
        it.collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())
    } else {
        DetachedSignature::from_bytes_many(bytes)
            .map_err(|e| e.to_string())?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())
    }
}

/// One binary package stanza.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Stanza {
    package: String,
    filename: String,
    size: u64,
    sha256: String,
    /// Where it was listed: suite, component, architecture directory.
    suite: String,
    component: String,
    arch: String,
    /// The stanza as upstream wrote it.
    text: String,
    #[serde(skip)]
    deps: Vec<Vec<String>>,
    #[serde(skip)]
    recommends: Vec<Vec<String>>,
    #[serde(skip)]
    provides: Vec<String>,
}

/// Dependency field: alternatives groups of package names (versions and
/// architecture qualifiers dropped).
fn dep_groups(v: &str) -> Vec<Vec<String>> {
    v.split(',')
        .map(|g| {
            g.split('|')
                .filter_map(|alt| {
                    let n = alt.trim().split([' ', '(', '[', '<']).next()?.trim();
                    let n = n.split(':').next().unwrap_or(n);
                    (!n.is_empty()).then(|| n.to_string())
                })
                .collect::<Vec<_>>()
        })
        .filter(|g| !g.is_empty())
        .collect()
}

fn parse_stanzas(
    source: &str,
    file: &str,
    text: &str,
    (suite, component, arch): (&str, &str, &str),
) -> Result<Vec<Stanza>> {
    let mut out = Vec::new();
    for para in paragraphs(text) {
        let f = fields(para);
        let get = |k: &str| {
            f.get(k).cloned().ok_or_else(|| {
                anyhow!(
                    "source {source:?}: {file}: a stanza ({}) has no {k} field",
                    f.get("package").map(String::as_str).unwrap_or("no Package")
                )
            })
        };
        let filename = get("filename")?;
        if ferry_protocol::path::check_path(&filename).is_err() || !filename.starts_with("pool/") {
            bail!("source {source:?}: {file}: Filename {filename:?} is not a path under pool/");
        }
        let size = get("size")?
            .parse()
            .map_err(|_| anyhow!("source {source:?}: {file}: bad Size for {filename}"))?;
        let sha256 = get("sha256")?;
        if Sha256::from_hex(&sha256).is_none() {
            bail!("source {source:?}: {file}: bad SHA256 for {filename}");
        }
        let mut deps = dep_groups(f.get("pre-depends").map(String::as_str).unwrap_or(""));
        deps.extend(dep_groups(
            f.get("depends").map(String::as_str).unwrap_or(""),
        ));
        out.push(Stanza {
            package: get("package")?,
            filename,
            size,
            sha256,
            suite: suite.into(),
            component: component.into(),
            arch: arch.into(),
            text: format!("{para}\n"),
            deps,
            recommends: dep_groups(f.get("recommends").map(String::as_str).unwrap_or("")),
            provides: dep_groups(f.get("provides").map(String::as_str).unwrap_or(""))
                .into_iter()
                .flatten()
                .collect(),
        });
    }
    Ok(out)
}

impl Source for AptSource {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> SourceKind {
        SourceKind::Apt
    }

    fn scan(&self, cx: &ScanCtx<'_>, sink: &mut dyn FnMut(Item) -> Result<()>) -> Result<()> {
        let name = self.name.clone();
        let idx_cache = cx.cache_dir.join("indices");
        let deb_cache = cx.cache_dir.join("debs");
        for d in [&idx_cache, &deb_cache] {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
        }
        // Everything is fetched and checked before the first item goes out.
        let mut files: Vec<(String, FileSrc)> = Vec::new();
        let mut stanzas: Vec<Stanza> = Vec::new();
        let mut used_idx: BTreeSet<String> = BTreeSet::new();
        let arches: BTreeSet<&str> = self
            .s
            .architectures
            .iter()
            .map(String::as_str)
            .chain(["all"])
            .collect();
        for suite in &self.s.suites {
            let (rel_files, release) = self.fetch_release(suite)?;
            for (p, b) in rel_files {
                files.push((p, FileSrc::Bytes(b)));
            }
            for comp in &self.s.components {
                let mut found_any = false;
                for arch in &arches {
                    let dir = format!("{comp}/binary-{arch}/");
                    let listed: Vec<(&String, &(u64, Sha256))> = release
                        .sha256
                        .iter()
                        .filter(|(p, _)| p.starts_with(&dir) && !p[dir.len()..].contains('/'))
                        .collect();
                    let mut parsed = false;
                    let mut present: BTreeMap<String, PathBuf> = BTreeMap::new();
                    for (rel, (size, sha)) in &listed {
                        let path = format!("dists/{suite}/{rel}");
                        let hex = sha.to_hex();
                        let cached = idx_cache.join(&hex);
                        if !cached.is_file()
                            && !download(
                                &name,
                                &self.url_of(&path),
                                &path,
                                &cached,
                                *size,
                                sha,
                                true,
                            )?
                        {
                            continue; // listed but not served upstream
                        }
                        used_idx.insert(hex.clone());
                        present.insert(
                            rel.rsplit('/').next().unwrap_or(rel).to_string(),
                            cached.clone(),
                        );
                        let fp = Some(format!("sha256:{hex}:{size}"));
                        files.push((
                            path.clone(),
                            FileSrc::Cached {
                                file: cached.clone(),
                                sha: *sha,
                                fp: fp.clone(),
                            },
                        ));
                        if release.by_hash {
                            let d = &rel[..rel.rfind('/').unwrap_or(0)];
                            files.push((
                                format!("dists/{suite}/{d}/by-hash/SHA256/{hex}"),
                                FileSrc::Cached {
                                    file: cached,
                                    sha: *sha,
                                    fp,
                                },
                            ));
                        }
                    }
                    for v in PACKAGES_VARIANTS {
                        if parsed {
                            break;
                        }
                        if let Some(f) = present.get(v) {
                            let file = format!("dists/{suite}/{dir}{v}");
                            let bytes = std::fs::read(f)?;
                            let text = decompress(v, bytes).with_context(|| {
                                format!("source {name:?}: cannot decompress {file}")
                            })?;
                            stanzas.extend(parse_stanzas(
                                &name,
                                &file,
                                &text,
                                (suite, comp, arch),
                            )?);
                            parsed = true;
                        }
                    }
                    if !listed.is_empty() && !parsed {
                        bail!(
                            "source {name:?}: dists/{suite}/{dir}: Release lists no Packages file upstream serves"
                        );
                    }
                    found_any |= parsed;
                }
                if !found_any {
                    bail!(
                        "source {name:?}: dists/{suite}/Release lists no Packages for component {comp:?} and architectures {:?}",
                        self.s.architectures
                    );
                }
            }
        }

        let selected = self.select(&stanzas)?;
        let mut debs: BTreeMap<&str, &Stanza> = BTreeMap::new();
        for st in &selected {
            if let Some(other) = debs.insert(&st.filename, st) {
                if other.sha256 != st.sha256 || other.size != st.size {
                    bail!(
                        "source {name:?}: {} is listed twice with different contents ({} in {}/{}/binary-{}, {} in {}/{}/binary-{})",
                        st.filename, other.sha256, other.suite, other.component, other.arch,
                        st.sha256, st.suite, st.component, st.arch
                    );
                }
            }
        }

        // Pins: remember the stanzas of pinned packages; keep the ones gone.
        let pin_file = cx.cache_dir.join("pinned.json");
        let mut pinned: BTreeMap<String, Stanza> = match std::fs::read(&pin_file) {
            Ok(b) => serde_json::from_slice(&b)
                .with_context(|| format!("cannot read {}", pin_file.display()))?,
            Err(_) => BTreeMap::new(),
        };
        pinned.retain(|_, st| self.s.pin.contains(&st.package));
        for st in &selected {
            if self.s.pin.contains(&st.package) {
                pinned.insert(st.filename.clone(), (*st).clone());
            }
        }
        let prev: BTreeSet<&str> = cx.previous_paths().map(|(p, _)| p).collect();
        let mut kept: BTreeMap<String, String> = BTreeMap::new();
        for (fname, st) in &pinned {
            if !debs.contains_key(fname.as_str()) && prev.contains(fname.as_str()) {
                kept.entry(format!(
                    "ferry/pinned/{}/{}/binary-{}/Packages",
                    st.suite, st.component, st.arch
                ))
                .or_default()
                .push_str(&format!("{}\n", st.text));
            }
        }

        let prev_sha: HashMap<&str, Option<&Sha256>> = cx
            .previous_paths()
            .map(|(p, o)| (p, object_sha(o)))
            .collect();
        // Fetch the debs that are new (by SHA256) before anything is emitted,
        // so a mismatch fails the scan whole.
        for st in debs.values() {
            let sha = Sha256::from_hex(&st.sha256).expect("checked when parsed");
            let fp = format!("sha256:{}:{}", st.sha256, st.size);
            let unchanged = prev_sha.get(st.filename.as_str()) == Some(&Some(&sha));
            if unchanged {
                files.push((
                    st.filename.clone(),
                    FileSrc::Remote {
                        url: self.url_of(&st.filename),
                        sha,
                        fp,
                    },
                ));
                continue;
            }
            let cached = deb_cache.join(&st.sha256);
            if !cached.is_file() {
                download(
                    &name,
                    &self.url_of(&st.filename),
                    &st.filename,
                    &cached,
                    st.size,
                    &sha,
                    false,
                )?;
            }
            files.push((
                st.filename.clone(),
                FileSrc::Cached {
                    file: cached,
                    sha,
                    fp: Some(fp),
                },
            ));
        }

        let tmp = pin_file.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&pinned)?)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &pin_file)
            .with_context(|| format!("cannot write {}", pin_file.display()))?;
        // Drop cached indices no longer listed (debs are dropped once shipped).
        if let Ok(rd) = std::fs::read_dir(&idx_cache) {
            for e in rd.flatten() {
                if !used_idx.contains(&e.file_name().to_string_lossy().to_string()) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }

        for (path, src) in files {
            let item = match src {
                FileSrc::Bytes(b) => {
                    let sha = Sha256::of(&b);
                    ItemKind::File {
                        executable: false,
                        fingerprint: None,
                        expected_sha256: Some(sha),
                        open: Box::new(move || {
                            Ok(Box::new(std::io::Cursor::new(b)) as Box<dyn Read>)
                        }),
                    }
                }
                FileSrc::Cached { file, sha, fp } => ItemKind::File {
                    executable: false,
                    fingerprint: fp,
                    expected_sha256: Some(sha),
                    open: Box::new(move || {
                        let f = std::fs::File::open(&file)
                            .with_context(|| format!("cannot open {}", file.display()))?;
                        Ok(Box::new(f) as Box<dyn Read>)
                    }),
                },
                FileSrc::Remote { url, sha, fp } => {
                    let src_name = name.clone();
                    let file = path.clone();
                    ItemKind::File {
                        executable: false,
                        fingerprint: Some(fp),
                        expected_sha256: Some(sha),
                        open: Box::new(move || {
                            let resp = ureq::get(&url).call().map_err(|e| {
                                anyhow!("source {src_name:?}: {file}: cannot fetch {url}: {e}")
                            })?;
                            Ok(Box::new(resp.into_body().into_reader()) as Box<dyn Read>)
                        }),
                    }
                }
            };
            sink(Item { path, kind: item })?;
        }
        for fname in pinned.keys() {
            if !debs.contains_key(fname.as_str()) && prev.contains(fname.as_str()) {
                sink(Item {
                    path: fname.clone(),
                    kind: ItemKind::Keep,
                })?;
            }
        }
        for (path, text) in kept {
            sink(Item {
                path,
                kind: ItemKind::File {
                    executable: false,
                    fingerprint: None,
                    expected_sha256: None,
                    open: Box::new(move || {
                        Ok(Box::new(std::io::Cursor::new(text.into_bytes())) as Box<dyn Read>)
                    }),
                },
            })?;
        }
        // Shipped debs need no cache: the ledger knows them by fingerprint.
        if let Ok(rd) = std::fs::read_dir(&deb_cache) {
            let want: BTreeSet<&str> = debs.values().map(|s| s.sha256.as_str()).collect();
            for e in rd.flatten() {
                if !want.contains(e.file_name().to_string_lossy().as_ref()) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Ok(())
    }
}

fn object_sha(o: &ferry_protocol::catalog::Object) -> Option<&Sha256> {
    match o {
        ferry_protocol::catalog::Object::File(f) => Some(&f.sha256),
        _ => None,
    }
}

/// Where an item's bytes come from.
enum FileSrc {
    /// Already in memory (release files).
    Bytes(Vec<u8>),
    /// Downloaded and checked into the cache.
    Cached {
        file: PathBuf,
        sha: Sha256,
        fp: Option<String>,
    },
    /// Unchanged since the last bundle: fetched only if the ledger lost it.
    Remote {
        url: String,
        sha: Sha256,
        fp: String,
    },
}

impl AptSource {
    /// The stanzas the selection takes: all, or the closure of `packages`.
    fn select<'a>(&self, all: &'a [Stanza]) -> Result<Vec<&'a Stanza>> {
        let mut pins_and_named: Vec<&String> = self.s.packages.iter().collect();
        if self.s.packages.is_empty() {
            return Ok(all.iter().collect());
        }
        let mut by_name: HashMap<&str, Vec<&Stanza>> = HashMap::new();
        let mut providers: HashMap<&str, Vec<&str>> = HashMap::new();
        for st in all {
            by_name.entry(&st.package).or_default().push(st);
            for p in &st.provides {
                providers.entry(p).or_default().push(&st.package);
            }
        }
        for p in &self.s.packages {
            if !by_name.contains_key(p.as_str()) {
                bail!(
                    "source {:?}: package {p:?} is in no Packages index of suites {:?}, components {:?}, architectures {:?}",
                    self.name, self.s.suites, self.s.components, self.s.architectures
                );
            }
        }
        // Pinned packages upstream still has are selected too.
        pins_and_named.extend(
            self.s
                .pin
                .iter()
                .filter(|p| by_name.contains_key(p.as_str())),
        );
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        let mut todo: Vec<&str> = pins_and_named.iter().map(|s| s.as_str()).collect();
        while let Some(n) = todo.pop() {
            if !seen.insert(n) {
                continue;
            }
            for st in by_name.get(n).into_iter().flatten() {
                let groups = st.deps.iter().chain(if self.s.recommends {
                    &st.recommends[..]
                } else {
                    &[]
                });
                for g in groups {
                    // The first alternative that exists, real or virtual.
                    let pick = g.iter().find_map(|alt| {
                        if by_name.contains_key(alt.as_str()) {
                            Some(vec![alt.as_str()])
                        } else {
                            providers.get(alt.as_str()).cloned()
                        }
                    });
                    match pick {
                        Some(names) => todo.extend(names),
                        None => eprintln!(
                            "ferry-out: warning: source {:?}: {} needs {}, which no selected index has",
                            self.name,
                            st.package,
                            g.join(" | ")
                        ),
                    }
                }
            }
        }
        Ok(all
            .iter()
            .filter(|st| seen.contains(st.package.as_str()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deps_parse() {
        assert_eq!(
            dep_groups("libc6 (>= 2.3), foo | bar:any [amd64], python3:any (>= 3)"),
            vec![
                vec!["libc6".to_string()],
                vec!["foo".to_string(), "bar".to_string()],
                vec!["python3".to_string()]
            ]
        );
        assert!(dep_groups("").is_empty());
    }
}
