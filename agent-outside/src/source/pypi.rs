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
//! ```
//!
//! For each requirement (and each pin) the project's page is fetched from
//! `<index>/<normalized-name>/`, asking for PEP 691 JSON first and reading PEP
//! 503 HTML otherwise. A file is *wanted* when it is a wheel whose tags fit a
//! configured Python and platform (see [`wheel_fits`]) or, with `sdists`, a
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
//! Downloads made to read a wheel's `METADATA` are kept in the source's cache
//! directory until the export reads them; the metadata itself is cached by the
//! file's SHA-256, so a later export does not fetch it again.

use super::{Item, ItemKind, ScanCtx, Source};
use crate::config::SourceConfig;
use anyhow::{anyhow, bail, Context, Result};
use ferry_formats::pypi::{file_path, index_path, normalize, IndexEntry, ProjectIndex};
use ferry_protocol::catalog::{Object, SourceKind};
use ferry_protocol::id::{Sha256, Sha256Hasher};
use pep508_rs::pep440_rs::{Operator, Version, VersionSpecifiers};
use pep508_rs::{
    ExtraName, MarkerEnvironment, MarkerEnvironmentBuilder, Requirement, VersionOrUrl,
};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

/// What the client asks an index for: PEP 691 JSON first, HTML otherwise.
const ACCEPT: &str = "application/vnd.pypi.simple.v1+json, \
application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01";
/// The largest project page or metadata file read.
const MAX_PAGE: u64 = 64 << 20;

/// Which versions of a requirement to keep.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Versions {
    /// Only the newest version that has a wanted file.
    #[default]
    Latest,
    /// Every matching version.
    All,
}

/// The settings of a `type = "pypi"` source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PypiSettings {
    /// The simple API's base URL, such as `https://pypi.org/simple/`.
    pub index: String,
    /// PEP 508 requirements.
    #[serde(default)]
    pub requirements: Vec<String>,
    /// Python versions, `major.minor`.
    #[serde(default)]
    pub python: Vec<String>,
    /// Wheel platform tags (empty: every platform).
    #[serde(default)]
    pub platforms: Vec<String>,
    /// Keep source distributions too.
    #[serde(default)]
    pub sdists: bool,
    /// Follow `Requires-Dist`.
    #[serde(default = "yes")]
    pub dependencies: bool,
    /// `latest` or `all`.
    #[serde(default)]
    pub versions: Versions,
    /// Requirements kept even when upstream drops them.
    #[serde(default)]
    pub pin: Vec<String>,
    /// A PEM bundle of CA certificates to trust for `https://` instead of
    /// the built-in Mozilla roots (default: `$SSL_CERT_FILE` when set).
    pub ca_file: Option<PathBuf>,
}

fn yes() -> bool {
    true
}

/// One file of a project page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexFile {
    /// The file name.
    pub filename: String,
    /// Where to download it.
    pub url: String,
    /// The SHA-256 the index states (lower-case hex).
    pub sha256: Option<String>,
    /// `requires-python`, as given.
    pub requires_python: Option<String>,
    /// `Some(reason)` (maybe empty) when yanked.
    pub yanked: Option<String>,
    /// `Some(hash)` when the index offers a PEP 658 `.metadata` file
    /// (`Some(None)`: offered without a SHA-256).
    pub metadata: Option<Option<String>>,
}

/// A Python version and a platform the mirror serves.
struct Targets {
    /// `(major, minor)`.
    pythons: Vec<(u32, u32)>,
    /// Wheel platform tags; empty means all.
    platforms: Vec<String>,
    /// Marker environments, one per Python × platform family.
    envs: Vec<MarkerEnvironment>,
}

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
    agent: ureq::Agent,
}

impl PypiSource {
    /// From its config entry.
    pub fn new(cfg: &SourceConfig) -> Result<Self> {
        let s: PypiSettings = cfg.settings()?;
        let name = &cfg.name;
        let mut base = s.index.clone();
        if !base.ends_with('/') {
            base.push('/');
        }
        let index = url::Url::parse(&base).with_context(|| {
            format!("source {name:?} (pypi): `index` {:?} is not a URL", s.index)
        })?;
        if !matches!(index.scheme(), "http" | "https") {
            bail!("source {name:?} (pypi): `index` must be an http:// or https:// URL");
        }
        if s.requirements.is_empty() && s.pin.is_empty() {
            bail!("source {name:?} (pypi) needs `requirements` (or `pin`)");
        }
        let parse = |list: &[String], what: &str| -> Result<Vec<Requirement>> {
            list.iter()
                .map(|r| {
                    let req = Requirement::from_str(r).map_err(|e| {
                        anyhow!("source {name:?} (pypi): {what} {r:?} is not a PEP 508 requirement: {e}")
                    })?;
                    if let Some(VersionOrUrl::Url(_)) = req.version_or_url {
                        bail!("source {name:?} (pypi): {what} {r:?} names a URL; only index requirements are mirrored");
                    }
                    Ok(req)
                })
                .collect()
        };
        let requirements = parse(&s.requirements, "requirement")?;
        let pins = parse(&s.pin, "pin")?;
        if s.python.is_empty() {
            bail!("source {name:?} (pypi): `python` must name at least one Python version, such as [\"3.12\"]");
        }
        let mut pythons = Vec::new();
        for p in &s.python {
            let v = p
                .split_once('.')
                .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
                .filter(|(a, _)| *a >= 2)
                .ok_or_else(|| {
                    anyhow!(
                        "source {name:?} (pypi): python {p:?} is not major.minor, such as \"3.12\""
                    )
                })?;
            pythons.push(v);
        }
        for p in &s.platforms {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                bail!("source {name:?} (pypi): platform {p:?} is not a wheel platform tag, such as \"manylinux_2_17_x86_64\"");
            }
        }
        let envs = marker_envs(&pythons, &s.platforms)?;
        let ca_file = s
            .ca_file
            .clone()
            .or_else(|| std::env::var_os("SSL_CERT_FILE").map(PathBuf::from));
        let agent = make_agent(ca_file.as_deref())
            .with_context(|| format!("source {name:?} (pypi): ca_file"))?;
        Ok(PypiSource {
            name: name.clone(),
            index,
            requirements,
            pins,
            targets: Targets {
                pythons,
                platforms: s.platforms,
                envs,
            },
            sdists: s.sdists,
            dependencies: s.dependencies,
            versions: s.versions,
            agent,
        })
    }

    /// Fetches and parses a project's page.
    fn page(&self, project: &str) -> Result<Vec<IndexFile>> {
        let url = self
            .index
            .join(&format!("{project}/"))
            .with_context(|| format!("cannot make a project URL for {project}"))?;
        let mut resp = self
            .agent
            .get(url.as_str())
            .header("Accept", ACCEPT)
            .call()
            .with_context(|| format!("cannot reach the index at {url}"))?;
        if resp.status() == 404 {
            bail!("project {project} is not on the index ({url}: 404 Not Found)");
        }
        if !resp.status().is_success() {
            bail!("{url}: HTTP {}", resp.status());
        }
        let ctype = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        // The final URL after redirects is what relative links resolve against.
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_PAGE)
            .read_to_vec()
            .with_context(|| format!("cannot read {url}"))?;
        if ctype.starts_with("application/vnd.pypi.simple.v1+json") {
            parse_json_page(&body, &url).with_context(|| format!("{url} (PEP 691 JSON)"))
        } else {
            let text = String::from_utf8_lossy(&body);
            parse_html_page(&text, &url).with_context(|| format!("{url} (PEP 503 HTML)"))
        }
    }

    /// Downloads `url` into `dest`, checking its SHA-256.
    fn download(&self, url: &str, sha256: &str, what: &str, dest: &Path) -> Result<()> {
        let resp = self
            .agent
            .get(url)
            .call()
            .with_context(|| format!("cannot fetch {url}"))?;
        if !resp.status().is_success() {
            bail!("{url}: HTTP {}", resp.status());
        }
        let tmp = dest.with_extension("part");
        let mut out = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        let mut reader = Verify::new(
            Box::new(resp.into_body().into_with_config().limit(u64::MAX).reader()),
            sha256,
            format!("source {:?}: {what} from {url}", self.name),
        )?;
        std::io::copy(&mut reader, &mut out).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            anyhow!(e)
        })?;
        std::fs::rename(&tmp, dest)
            .with_context(|| format!("cannot rename into {}", dest.display()))?;
        Ok(())
    }

    /// The core metadata of a wheel: cached, or the index's `.metadata`
    /// file, or `METADATA` from the wheel itself (downloaded into `downloads`).
    fn metadata(&self, f: &IndexFile, sha256: &str, cache: &Path) -> Result<String> {
        let meta_dir = cache.join("metadata");
        let cached = meta_dir.join(sha256);
        if let Ok(text) = std::fs::read_to_string(&cached) {
            return Ok(text);
        }
        std::fs::create_dir_all(&meta_dir)
            .with_context(|| format!("cannot create {}", meta_dir.display()))?;
        let text = match &f.metadata {
            Some(hash) => {
                let url = format!("{}.metadata", f.url.split('#').next().unwrap_or(&f.url));
                let mut resp = self
                    .agent
                    .get(&url)
                    .call()
                    .with_context(|| format!("cannot fetch {url}"))?;
                if !resp.status().is_success() {
                    bail!(
                        "{url}: HTTP {} (the index offers this metadata file)",
                        resp.status()
                    );
                }
                let bytes = resp
                    .body_mut()
                    .with_config()
                    .limit(MAX_PAGE)
                    .read_to_vec()?;
                if let Some(h) = hash {
                    let actual = Sha256::of(&bytes).to_hex();
                    if actual != *h {
                        bail!(
                            "source {:?}: {}.metadata from {url}: the index states SHA-256 {h}, the download has {actual}",
                            self.name, f.filename
                        );
                    }
                }
                String::from_utf8_lossy(&bytes).into_owned()
            }
            None => {
                let dl = cache.join("downloads");
                std::fs::create_dir_all(&dl)
                    .with_context(|| format!("cannot create {}", dl.display()))?;
                let path = dl.join(&f.filename);
                if !path.is_file() {
                    self.download(&f.url, sha256, &f.filename, &path)?;
                }
                wheel_metadata(&path).with_context(|| {
                    format!(
                        "source {:?}: cannot read METADATA from {}",
                        self.name, f.filename
                    )
                })?
            }
        };
        ferry_agent_common::fsx::write_atomic(&cached, text.as_bytes())?;
        Ok(text)
    }
}

/// An HTTP client that reports statuses as responses, trusting the CA
/// certificates of `ca_file` (a PEM bundle) when given.
fn make_agent(ca_file: Option<&Path>) -> Result<ureq::Agent> {
    let mut config = ureq::Agent::config_builder().http_status_as_error(false);
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let certs: Vec<_> = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        if certs.is_empty() {
            bail!("{} holds no PEM certificate", path.display());
        }
        config = config.tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::from(certs))
                .build(),
        );
    }
    Ok(config.build().into())
}

/// Marker environments for every Python × platform family configured.
fn marker_envs(pythons: &[(u32, u32)], platforms: &[String]) -> Result<Vec<MarkerEnvironment>> {
    // (sys_platform, platform_system, os_name, platform_machine)
    let mut families: Vec<(&str, &str, &str, String)> = Vec::new();
    for p in platforms {
        let fam = if let Some(arch) = linux_arch(p) {
            Some(("linux", "Linux", "posix", arch.to_string()))
        } else if let Some((_, arch)) = macos_tag(p) {
            let arch = if arch == "universal2" || arch == "universal" {
                "arm64"
            } else {
                arch
            };
            Some(("darwin", "Darwin", "posix", arch.to_string()))
        } else {
            match p.as_str() {
                "win_amd64" => Some(("win32", "Windows", "nt", "AMD64".into())),
                "win32" => Some(("win32", "Windows", "nt", "x86".into())),
                "win_arm64" => Some(("win32", "Windows", "nt", "ARM64".into())),
                _ => None,
            }
        };
        if let Some(f) = fam {
            if !families.contains(&f) {
                families.push(f);
            }
        }
    }
    if families.is_empty() {
        families = vec![
            ("linux", "Linux", "posix", "x86_64".into()),
            ("darwin", "Darwin", "posix", "arm64".into()),
            ("win32", "Windows", "nt", "AMD64".into()),
        ];
    }
    let mut out = Vec::new();
    for (maj, min) in pythons {
        let full = format!("{maj}.{min}.0");
        let short = format!("{maj}.{min}");
        for (sys, system, os, machine) in &families {
            out.push(
                MarkerEnvironment::try_from(MarkerEnvironmentBuilder {
                    implementation_name: "cpython",
                    implementation_version: &full,
                    os_name: os,
                    platform_machine: machine,
                    platform_python_implementation: "CPython",
                    platform_release: "",
                    platform_system: system,
                    platform_version: "",
                    python_full_version: &full,
                    python_version: &short,
                    sys_platform: sys,
                })
                .map_err(|e| anyhow!("python {short}: {e}"))?,
            );
        }
    }
    Ok(out)
}

/// What a distribution file name says.
#[derive(Debug, PartialEq, Eq)]
pub struct Dist<'a> {
    /// Normalized project name.
    pub project: String,
    /// The version, as written.
    pub version: &'a str,
    /// `(python, abi, platform)` tags of a wheel; `None` for an sdist.
    pub tags: Option<(&'a str, &'a str, &'a str)>,
}

/// Reads a wheel (`name-ver[-build]-py-abi-plat.whl`) or sdist
/// (`name-ver.tar.gz` / `.zip`) file name.
pub fn parse_filename(f: &str) -> Option<Dist<'_>> {
    if let Some(stem) = f.strip_suffix(".whl") {
        let parts: Vec<&str> = stem.split('-').collect();
        if parts.len() != 5 && parts.len() != 6 {
            return None;
        }
        let n = parts.len();
        return Some(Dist {
            project: normalize(parts[0]),
            version: parts[1],
            tags: Some((parts[n - 3], parts[n - 2], parts[n - 1])),
        });
    }
    let stem = f
        .strip_suffix(".tar.gz")
        .or_else(|| f.strip_suffix(".zip"))?;
    let (name, version) = stem.rsplit_once('-')?;
    (!name.is_empty() && !version.is_empty()).then(|| Dist {
        project: normalize(name),
        version,
        tags: None,
    })
}

/// `cp311` -> (3, Some(11)); `py3` -> (3, None).
fn interp_version(tag: &str, prefix: &str) -> Option<(u32, Option<u32>)> {
    let digits = tag.strip_prefix(prefix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let major = digits[..1].parse().ok()?;
    let minor = if digits.len() > 1 {
        Some(digits[1..].parse().ok()?)
    } else {
        None
    };
    Some((major, minor))
}

/// Whether one python tag and one abi tag run on CPython `maj.min` (the tags
/// pip generates: `cpXY-cpXY`, `cpXY-abi3` for Y up to min, `cpXY-none`,
/// `pyX-none`, `pyXY-none` for Y up to min).
fn interp_fits(py: &str, abi: &str, maj: u32, min: u32) -> bool {
    if let Some((m, n)) = interp_version(py, "cp") {
        let Some(n) = n else { return false };
        if m != maj {
            return false;
        }
        return (n == min && (abi == format!("cp{maj}{min}") || abi == "none"))
            || (abi == "abi3" && n <= min);
    }
    if let Some((m, n)) = interp_version(py, "py") {
        return m == maj && abi == "none" && n.is_none_or(|n| n <= min);
    }
    false
}

/// `manylinux_2_17_x86_64` (and the legacy aliases), `musllinux_1_2_aarch64`:
/// `(family, major, minor, arch)`.
fn glibc_tag(t: &str) -> Option<(&'static str, u32, u32, &str)> {
    for (legacy, (a, b)) in [
        ("manylinux1_", (2, 5)),
        ("manylinux2010_", (2, 12)),
        ("manylinux2014_", (2, 17)),
    ] {
        if let Some(arch) = t.strip_prefix(legacy) {
            return Some(("manylinux", a, b, arch));
        }
    }
    for fam in ["manylinux", "musllinux"] {
        if let Some(rest) = t.strip_prefix(fam).and_then(|r| r.strip_prefix('_')) {
            let mut it = rest.splitn(3, '_');
            let a = it.next()?.parse().ok()?;
            let b = it.next()?.parse().ok()?;
            let arch = it.next()?;
            return Some((
                if fam == "manylinux" {
                    "manylinux"
                } else {
                    "musllinux"
                },
                a,
                b,
                arch,
            ));
        }
    }
    None
}

/// The architecture of a Linux platform tag.
fn linux_arch(t: &str) -> Option<&str> {
    glibc_tag(t)
        .map(|(_, _, _, a)| a)
        .or_else(|| t.strip_prefix("linux_"))
}

/// `macosx_11_0_arm64` -> ((11, 0), "arm64").
fn macos_tag(t: &str) -> Option<((u32, u32), &str)> {
    let rest = t.strip_prefix("macosx_")?;
    let mut it = rest.splitn(3, '_');
    let a = it.next()?.parse().ok()?;
    let b = it.next()?.parse().ok()?;
    Some(((a, b), it.next()?))
}

/// Whether a wheel's platform tag runs on configured platform `want`:
/// equal; `manylinux`/`musllinux` of the same architecture and a libc no
/// newer (legacy `manylinux1`/`2010`/`2014` read as 2.5/2.12/2.17); macOS of
/// the same architecture (or `universal2`) and a version no newer.
pub fn platform_fits(wheel: &str, want: &str) -> bool {
    if wheel == want || wheel == "any" {
        return true;
    }
    if let (Some((wf, wa, wb, warch)), Some((cf, ca, cb, carch))) =
        (glibc_tag(wheel), glibc_tag(want))
    {
        return wf == cf && warch == carch && (wa, wb) <= (ca, cb);
    }
    if let (Some((wv, warch)), Some((cv, carch))) = (macos_tag(wheel), macos_tag(want)) {
        let arch_ok = warch == carch
            || (warch == "universal2" && matches!(carch, "x86_64" | "arm64"))
            || (matches!(warch, "intel" | "universal") && carch == "x86_64");
        return arch_ok && wv <= cv;
    }
    false
}

impl Targets {
    /// Whether a wheel with these (compressed) tags fits a configured
    /// Python and a configured platform.
    fn wheel_fits(&self, py: &str, abi: &str, plat: &str) -> bool {
        wheel_fits(py, abi, plat, &self.pythons, &self.platforms)
    }

    /// Whether `requires-python` admits a configured Python (as `X.Y.0` or
    /// a late `X.Y.99`). An unreadable value admits everything.
    fn python_ok(&self, requires: Option<&str>) -> bool {
        let Some(r) = requires.map(str::trim).filter(|r| !r.is_empty()) else {
            return true;
        };
        let Ok(spec) = VersionSpecifiers::from_str(r) else {
            return true;
        };
        self.pythons.iter().any(|(a, b)| {
            [0, 99].iter().any(|micro| {
                Version::from_str(&format!("{a}.{b}.{micro}")).is_ok_and(|v| spec.contains(&v))
            })
        })
    }
}

/// Whether a wheel's tags (each maybe a `.`-separated set) fit one of
/// `pythons` and one of `platforms` (all platforms when that is empty).
pub fn wheel_fits(
    py: &str,
    abi: &str,
    plat: &str,
    pythons: &[(u32, u32)],
    platforms: &[String],
) -> bool {
    let interp = py.split('.').any(|p| {
        abi.split('.').any(|a| {
            pythons
                .iter()
                .any(|(maj, min)| interp_fits(p, a, *maj, *min))
        })
    });
    let platform = platforms.is_empty()
        || plat
            .split('.')
            .any(|w| w == "any" || platforms.iter().any(|c| platform_fits(w, c)));
    interp && platform
}

/// Parses a PEP 691 JSON project page.
pub fn parse_json_page(body: &[u8], base: &url::Url) -> Result<Vec<IndexFile>> {
    let v: serde_json::Value = serde_json::from_slice(body).context("not JSON")?;
    let files = v
        .get("files")
        .and_then(|f| f.as_array())
        .ok_or_else(|| anyhow!("no `files` array"))?;
    let mut out = Vec::new();
    for f in files {
        let filename = f
            .get("filename")
            .and_then(|x| x.as_str())
            .ok_or_else(|| anyhow!("a file without `filename`"))?
            .to_string();
        let href = f
            .get("url")
            .and_then(|x| x.as_str())
            .ok_or_else(|| anyhow!("{filename}: no `url`"))?;
        let url = base
            .join(href)
            .with_context(|| format!("{filename}: bad url {href:?}"))?;
        let sha256 = f
            .get("hashes")
            .and_then(|h| h.get("sha256"))
            .and_then(|x| x.as_str())
            .map(str::to_ascii_lowercase);
        let requires_python = f
            .get("requires-python")
            .and_then(|x| x.as_str())
            .map(str::to_string);
        let yanked = match f.get("yanked") {
            Some(serde_json::Value::Bool(true)) => Some(String::new()),
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            _ => None,
        };
        let meta = f
            .get("core-metadata")
            .or_else(|| f.get("dist-info-metadata"));
        let metadata = match meta {
            Some(serde_json::Value::Bool(true)) => Some(None),
            Some(serde_json::Value::Object(m)) => Some(
                m.get("sha256")
                    .and_then(|x| x.as_str())
                    .map(str::to_ascii_lowercase),
            ),
            _ => None,
        };
        let mut url = url;
        url.set_fragment(None);
        out.push(IndexFile {
            filename,
            url: url.to_string(),
            sha256,
            requires_python,
            yanked,
            metadata,
        });
    }
    Ok(out)
}

/// Decodes the HTML character references a simple page uses.
fn html_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';').filter(|e| *e <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let ent = &rest[1..end];
        let c = match ent {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => ent
                .strip_prefix("#x")
                .or_else(|| ent.strip_prefix("#X"))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| ent.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match c {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The attributes of a start tag's inside (after the tag name), names
/// lower-cased, values unescaped; a bare attribute has an empty value.
fn parse_attrs(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'=' && b[i] != b'/' {
            i += 1;
        }
        if start == i {
            break;
        }
        let name = s[start..i].to_ascii_lowercase();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < b.len() && b[i] == b'=' {
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                let q = b[i];
                let vstart = i + 1;
                i = vstart;
                while i < b.len() && b[i] != q {
                    i += 1;
                }
                value = html_unescape(&s[vstart..i.min(b.len())]);
                i += 1;
            } else {
                let vstart = i;
                while i < b.len() && !b[i].is_ascii_whitespace() {
                    i += 1;
                }
                value = html_unescape(&s[vstart..i]);
            }
        }
        out.entry(name).or_insert(value);
    }
    out
}

/// Parses a PEP 503 HTML project page: every `<a href>`, its text the file
/// name, `#sha256=` in the URL, `data-requires-python`, `data-yanked`,
/// `data-core-metadata` / `data-dist-info-metadata`.
pub fn parse_html_page(html: &str, base: &url::Url) -> Result<Vec<IndexFile>> {
    let lower = html.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(i) = lower[pos..].find("<a") {
        let at = pos + i;
        let after = lower.as_bytes().get(at + 2).copied();
        if !after.is_some_and(|c| c.is_ascii_whitespace()) {
            pos = at + 2;
            continue;
        }
        let Some(gt) = html[at..].find('>') else {
            break;
        };
        let attrs = parse_attrs(&html[at + 2..at + gt]);
        let text_start = at + gt + 1;
        let text_end = lower[text_start..]
            .find("</a")
            .map(|e| text_start + e)
            .unwrap_or(html.len());
        pos = text_end;
        let Some(href) = attrs.get("href") else {
            continue;
        };
        let mut url = base
            .join(href)
            .with_context(|| format!("bad link {href:?}"))?;
        let sha256 = url
            .fragment()
            .and_then(|f| f.strip_prefix("sha256=").map(|h| h.to_ascii_lowercase()));
        url.set_fragment(None);
        let text = html_unescape(html[text_start..text_end].trim());
        let filename = if text.is_empty() {
            url.path_segments()
                .and_then(|mut s| s.next_back().map(str::to_string))
                .unwrap_or_default()
        } else {
            text
        };
        let meta = attrs
            .get("data-core-metadata")
            .or_else(|| attrs.get("data-dist-info-metadata"));
        let metadata = match meta.map(String::as_str) {
            None | Some("false") => None,
            Some(v) => Some(v.strip_prefix("sha256=").map(|h| h.to_ascii_lowercase())),
        };
        out.push(IndexFile {
            filename,
            url: url.to_string(),
            sha256,
            requires_python: attrs.get("data-requires-python").cloned(),
            yanked: attrs.get("data-yanked").cloned(),
            metadata,
        });
    }
    Ok(out)
}

/// `METADATA` of a wheel file: the `*.dist-info/METADATA` at its top level.
fn wheel_metadata(path: &Path) -> Result<String> {
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut zip = zip::ZipArchive::new(f).context("not a zip archive")?;
    let name = zip
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.to_string()))
        .find(|n| n.ends_with(".dist-info/METADATA") && n.matches('/').count() == 1)
        .ok_or_else(|| anyhow!("no .dist-info/METADATA in the wheel"))?;
    let mut entry = zip.by_name(&name)?;
    let mut text = String::new();
    entry
        .by_ref()
        .take(MAX_PAGE)
        .read_to_string(&mut text)
        .with_context(|| format!("{name} is not UTF-8"))?;
    Ok(text)
}

/// The `Requires-Dist` values of a core metadata file (headers only,
/// continuation lines joined).
pub fn requires_dist(metadata: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut in_req = false;
    for line in metadata.lines() {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if in_req {
                if let Some(last) = out.last_mut() {
                    last.push(' ');
                    last.push_str(line.trim());
                }
            }
            continue;
        }
        in_req = false;
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("Requires-Dist") {
                out.push(v.trim().to_string());
                in_req = true;
            }
        }
    }
    out
}

/// A reader that checks the SHA-256 of what passes through and fails at the
/// end, naming `what`, when it is not the one expected.
struct Verify {
    inner: Box<dyn Read>,
    hasher: Option<Sha256Hasher>,
    want: Sha256,
    what: String,
}

impl Verify {
    fn new(inner: Box<dyn Read>, want_hex: &str, what: String) -> Result<Verify> {
        let want = Sha256::from_hex(want_hex).ok_or_else(|| {
            anyhow!("{what}: the index's sha256 {want_hex:?} is not 64 hex digits")
        })?;
        Ok(Verify {
            inner,
            hasher: Some(Sha256Hasher::new()),
            want,
            what,
        })
    }
}

impl Read for Verify {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            if let Some(h) = &mut self.hasher {
                h.update(&buf[..n]);
            }
        } else if let Some(h) = self.hasher.take() {
            let actual = h.finish();
            if actual != self.want {
                return Err(std::io::Error::other(format!(
                    "{}: the index states SHA-256 {}, the download has {actual} (tampered or corrupted upstream)",
                    self.what, self.want
                )));
            }
        }
        Ok(n)
    }
}

/// Whether a specifier set is an exact pin (`==X` without a wildcard, or `===`).
fn is_exact(spec: Option<&VersionSpecifiers>) -> bool {
    spec.is_some_and(|s| {
        s.iter()
            .any(|v| matches!(v.operator(), Operator::Equal | Operator::ExactEqual))
    })
}

/// Why a requirement is looked at.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Why {
    /// From `requirements`: it must resolve.
    Requirement,
    /// From `pin`: upstream may have dropped it.
    Pin,
    /// From a `Requires-Dist`: a warning when it does not resolve.
    Dependency,
}

impl Why {
    fn as_str(self) -> &'static str {
        match self {
            Why::Requirement => "requirement",
            Why::Pin => "pin",
            Why::Dependency => "dependency",
        }
    }
}

/// A version chosen for a project, with the files kept.
struct Chosen {
    files: Vec<IndexFile>,
}

impl PypiSource {
    /// Picks the versions of `req` to keep from `page`; returns the files of
    /// each kept version, newest first.
    fn choose(&self, req: &Requirement, page: &[IndexFile]) -> Vec<(Version, Chosen)> {
        let spec = match &req.version_or_url {
            Some(VersionOrUrl::VersionSpecifier(s)) => Some(s),
            _ => None,
        };
        let allow_pre = spec.is_some_and(|s| s.iter().any(|v| v.version().any_prerelease()));
        let exact = is_exact(spec);
        let mut by_version: BTreeMap<Version, Vec<IndexFile>> = BTreeMap::new();
        for f in page {
            let Some(d) = parse_filename(&f.filename) else {
                continue;
            };
            let wanted = match d.tags {
                Some((py, abi, plat)) => self.targets.wheel_fits(py, abi, plat),
                None => self.sdists,
            };
            if !wanted || !self.targets.python_ok(f.requires_python.as_deref()) {
                continue;
            }
            let Ok(v) = Version::from_str(d.version) else {
                continue;
            };
            if v.any_prerelease() && !allow_pre {
                continue;
            }
            if spec.is_some_and(|s| !s.contains(&v)) {
                continue;
            }
            by_version.entry(v).or_default().push(f.clone());
        }
        let mut out = Vec::new();
        for (v, files) in by_version.into_iter().rev() {
            let usable = exact || files.iter().any(|f| f.yanked.is_none());
            match self.versions {
                Versions::All => out.push((v, Chosen { files })),
                Versions::Latest if usable => {
                    out.push((v, Chosen { files }));
                    break;
                }
                Versions::Latest => {}
            }
        }
        out
    }
}

impl Source for PypiSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SourceKind {
        SourceKind::Pypi
    }

    fn scan(&self, cx: &ScanCtx<'_>, sink: &mut dyn FnMut(Item) -> Result<()>) -> Result<()> {
        let src = &self.name;
        let mut pages: HashMap<String, Arc<Vec<IndexFile>>> = HashMap::new();
        let mut queue: VecDeque<(Requirement, Why)> = VecDeque::new();
        for r in &self.requirements {
            queue.push_back((r.clone(), Why::Requirement));
        }
        for r in &self.pins {
            queue.push_back((r.clone(), Why::Pin));
        }
        let mut done: HashSet<String> = HashSet::new();
        // project -> filename -> file
        let mut selected: BTreeMap<String, BTreeMap<String, IndexFile>> = BTreeMap::new();
        while let Some((req, why)) = queue.pop_front() {
            let project = normalize(req.name.as_ref());
            let mut extras: Vec<String> = req.extras.iter().map(|e| e.to_string()).collect();
            extras.sort();
            let spec = match &req.version_or_url {
                Some(VersionOrUrl::VersionSpecifier(s)) => s.to_string(),
                _ => String::new(),
            };
            if !done.insert(format!("{project}[{}]{spec}", extras.join(","))) {
                continue;
            }
            let page = match pages.get(&project) {
                Some(p) => p.clone(),
                None => {
                    let p = match self.page(&project) {
                        Ok(p) => Arc::new(p),
                        Err(e) if why == Why::Requirement => {
                            return Err(e.context(format!("source {src:?}: requirement {req}")))
                        }
                        Err(e) => {
                            eprintln!(
                                "ferry-out: warning: source {src:?}: {} {req}: {e:#}",
                                why.as_str()
                            );
                            continue;
                        }
                    };
                    pages.insert(project.clone(), p.clone());
                    p
                }
            };
            let chosen = self.choose(&req, &page);
            if chosen.is_empty() {
                let msg = format!(
                    "no release of {project} on {} matches {req:?} with a file for python {:?} and platforms {:?}{}",
                    self.index,
                    self.targets
                        .pythons
                        .iter()
                        .map(|(a, b)| format!("{a}.{b}"))
                        .collect::<Vec<_>>(),
                    self.targets.platforms,
                    if self.sdists { " (or an sdist)" } else { "" }
                );
                match why {
                    Why::Requirement => bail!("source {src:?}: {msg}"),
                    // A pin upstream dropped is kept below, from the last bundle.
                    Why::Pin => {}
                    Why::Dependency => eprintln!("ferry-out: warning: source {src:?}: {msg}"),
                }
                continue;
            }
            for (version, c) in chosen {
                for f in &c.files {
                    let Some(sha) = &f.sha256 else {
                        bail!(
                            "source {src:?}: the index gives no SHA-256 for {} ({}); ferry mirrors only files it can verify",
                            f.filename,
                            f.url
                        );
                    };
                    if Sha256::from_hex(sha).is_none() {
                        bail!("source {src:?}: the index's SHA-256 for {} is not 64 hex digits: {sha:?}", f.filename);
                    }
                    selected
                        .entry(project.clone())
                        .or_default()
                        .insert(f.filename.clone(), f.clone());
                }
                if !self.dependencies {
                    continue;
                }
                let mut wheels: Vec<&IndexFile> = c
                    .files
                    .iter()
                    .filter(|f| f.filename.ends_with(".whl"))
                    .collect();
                wheels.sort_by_key(|f| (f.metadata.is_none(), f.filename.clone()));
                let Some(w) = wheels.first() else {
                    eprintln!(
                        "ferry-out: warning: source {src:?}: {project} {version} has no wheel kept; its dependencies are not followed"
                    );
                    continue;
                };
                let sha = w.sha256.clone().expect("checked above");
                let meta = self
                    .metadata(w, &sha, &cx.cache_dir)
                    .with_context(|| format!("source {src:?}: dependencies of {}", w.filename))?;
                let extras: Vec<ExtraName> = req.extras.clone();
                for line in requires_dist(&meta) {
                    let dep = match Requirement::from_str(&line) {
                        Ok(d) => d,
                        Err(e) => {
                            eprintln!("ferry-out: warning: source {src:?}: {}: cannot read Requires-Dist {line:?}: {e}", w.filename);
                            continue;
                        }
                    };
                    if matches!(dep.version_or_url, Some(VersionOrUrl::Url(_))) {
                        eprintln!("ferry-out: warning: source {src:?}: {}: skipping URL dependency {line:?}", w.filename);
                        continue;
                    }
                    if self
                        .targets
                        .envs
                        .iter()
                        .any(|env| dep.marker.evaluate(env, &extras))
                    {
                        queue.push_back((dep, Why::Dependency));
                    }
                }
            }
        }

        // Pins: files of pinned versions the last bundle had, upstream has no more.
        let mut kept: BTreeMap<String, Vec<IndexEntry>> = BTreeMap::new();
        for (path, obj) in cx.previous_paths() {
            let Some(filename) = path.strip_prefix("files/") else {
                continue;
            };
            let Some(d) = parse_filename(filename) else {
                continue;
            };
            if selected
                .get(&d.project)
                .is_some_and(|m| m.contains_key(filename))
            {
                continue;
            }
            let Ok(v) = Version::from_str(d.version) else {
                continue;
            };
            let pinned = self.pins.iter().any(|p| {
                normalize(p.name.as_ref()) == d.project
                    && match &p.version_or_url {
                        Some(VersionOrUrl::VersionSpecifier(s)) => s.contains(&v),
                        _ => true,
                    }
            });
            let Object::File(f) = obj else { continue };
            if !pinned {
                continue;
            }
            eprintln!("ferry-out: source {src:?}: keeping pinned {filename} (no longer selected upstream)");
            sink(Item {
                path: path.to_string(),
                kind: ItemKind::Keep,
            })?;
            kept.entry(d.project.clone()).or_default().push(IndexEntry {
                filename: filename.to_string(),
                sha256: f.sha256.to_hex(),
                requires_python: None,
                yanked: None,
            });
        }

        // Drop downloads nothing refers to any more.
        let downloads = cx.cache_dir.join("downloads");
        let wanted: HashSet<&str> = selected
            .values()
            .flat_map(|m| m.keys().map(String::as_str))
            .collect();
        if let Ok(rd) = std::fs::read_dir(&downloads) {
            for e in rd.flatten() {
                let n = e.file_name();
                if !n.to_str().is_some_and(|n| wanted.contains(n)) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }

        let mut projects: BTreeMap<String, Vec<IndexEntry>> = kept;
        for (project, files) in &selected {
            for f in files.values() {
                projects
                    .entry(project.clone())
                    .or_default()
                    .push(IndexEntry {
                        filename: f.filename.clone(),
                        sha256: f.sha256.clone().expect("checked"),
                        requires_python: f.requires_python.clone(),
                        yanked: f.yanked.clone(),
                    });
                let sha = f.sha256.clone().expect("checked");
                let (url, cached) = (f.url.clone(), downloads.join(&f.filename));
                let what = format!("source {src:?}: {} from {url}", f.filename);
                let want = sha.clone();
                let agent = self.agent.clone();
                sink(Item {
                    path: file_path(&f.filename),
                    kind: ItemKind::File {
                        executable: false,
                        fingerprint: Some(format!("sha256:{sha}")),
                        expected_sha256: Sha256::from_hex(&sha),
                        open: Box::new(move || open_file(&agent, &url, &cached, &want, what)),
                    },
                })?;
            }
        }
        for (project, mut files) in projects {
            files.sort_by(|a, b| a.filename.cmp(&b.filename));
            let index = ProjectIndex {
                name: project.clone(),
                files,
            };
            let mut bytes = serde_json::to_vec_pretty(&index)?;
            bytes.push(b'\n');
            sink(Item {
                path: index_path(&project),
                kind: ItemKind::File {
                    executable: false,
                    fingerprint: None,
                    expected_sha256: None,
                    open: Box::new(move || {
                        Ok(Box::new(std::io::Cursor::new(bytes)) as Box<dyn Read>)
                    }),
                },
            })?;
        }
        Ok(())
    }
}

/// Opens a distribution file: the copy downloaded for its metadata if there
/// is one (removed once open), else a fresh download; either way checked
/// against the index's SHA-256 as it is read.
fn open_file(
    agent: &ureq::Agent,
    url: &str,
    cached: &Path,
    sha256: &str,
    what: String,
) -> Result<Box<dyn Read>> {
    let inner: Box<dyn Read> = match std::fs::File::open(cached) {
        Ok(f) => {
            let _ = std::fs::remove_file(cached);
            Box::new(f)
        }
        Err(_) => {
            let resp = agent
                .get(url)
                .call()
                .with_context(|| format!("cannot fetch {url}"))?;
            if !resp.status().is_success() {
                bail!("{url}: HTTP {}", resp.status());
            }
            Box::new(resp.into_body().into_with_config().limit(u64::MAX).reader())
        }
    };
    Ok(Box::new(Verify::new(inner, sha256, what)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_filenames() {
        let d = parse_filename("Foo_Bar-1.0-1-cp311-abi3-manylinux_2_17_x86_64.whl").unwrap();
        assert_eq!(d.project, "foo-bar");
        assert_eq!(d.version, "1.0");
        assert_eq!(d.tags, Some(("cp311", "abi3", "manylinux_2_17_x86_64")));
        let s = parse_filename("foo-bar-2.0.tar.gz").unwrap();
        assert_eq!(
            (s.project.as_str(), s.version, s.tags),
            ("foo-bar", "2.0", None)
        );
        assert!(parse_filename("x.whl").is_none());
    }

    #[test]
    fn tags() {
        let py = [(3, 11)];
        let lin = vec!["manylinux_2_17_x86_64".to_string()];
        assert!(wheel_fits("py3", "none", "any", &py, &lin));
        assert!(wheel_fits("py2.py3", "none", "any", &py, &lin));
        assert!(wheel_fits(
            "cp311",
            "cp311",
            "manylinux2014_x86_64",
            &py,
            &lin
        ));
        assert!(wheel_fits(
            "cp311",
            "cp311",
            "manylinux_2_5_x86_64.manylinux1_x86_64",
            &py,
            &lin
        ));
        assert!(!wheel_fits(
            "cp311",
            "cp311",
            "manylinux_2_28_x86_64",
            &py,
            &lin
        ));
        assert!(!wheel_fits(
            "cp311",
            "cp311",
            "manylinux_2_17_aarch64",
            &py,
            &lin
        ));
        assert!(!wheel_fits("cp311", "cp311", "win_amd64", &py, &lin));
        assert!(!wheel_fits(
            "cp312",
            "cp312",
            "manylinux_2_17_x86_64",
            &py,
            &lin
        ));
        assert!(wheel_fits(
            "cp38",
            "abi3",
            "manylinux_2_17_x86_64",
            &py,
            &lin
        ));
        assert!(!wheel_fits(
            "cp312",
            "abi3",
            "manylinux_2_17_x86_64",
            &py,
            &lin
        ));
        assert!(wheel_fits("py310", "none", "any", &py, &lin));
        assert!(!wheel_fits("py2", "none", "any", &py, &lin));
        assert!(wheel_fits("cp311", "cp311", "win_amd64", &py, &[]));
        assert!(platform_fits("macosx_10_9_universal2", "macosx_11_0_arm64"));
        assert!(!platform_fits("macosx_12_0_arm64", "macosx_11_0_arm64"));
        assert!(!platform_fits(
            "musllinux_1_1_x86_64",
            "manylinux_2_17_x86_64"
        ));
    }

    #[test]
    fn html_pages() {
        let base = url::Url::parse("http://h/simple/foo/").unwrap();
        let html = r#"<!DOCTYPE html><html><body>
<a href="../../files/foo-1.0-py3-none-any.whl#sha256=ABCD" data-requires-python="&gt;=3.8">foo-1.0-py3-none-any.whl</a><br/>
<A HREF='https://x/foo-0.9.tar.gz#sha256=ee' data-yanked="bad &amp; broken" data-core-metadata="sha256=12">foo-0.9.tar.gz</A>
<a href="foo-2.0-py3-none-any.whl" data-dist-info-metadata="true" data-yanked>foo-2.0-py3-none-any.whl</a>
</body></html>"#;
        let files = parse_html_page(html, &base).unwrap();
        assert_eq!(files.len(), 3);
        assert_eq!(files[0].url, "http://h/files/foo-1.0-py3-none-any.whl");
        assert_eq!(files[0].sha256.as_deref(), Some("abcd"));
        assert_eq!(files[0].requires_python.as_deref(), Some(">=3.8"));
        assert_eq!(files[0].yanked, None);
        assert_eq!(files[1].yanked.as_deref(), Some("bad & broken"));
        assert_eq!(files[1].metadata, Some(Some("12".into())));
        assert_eq!(files[2].yanked.as_deref(), Some(""));
        assert_eq!(files[2].metadata, Some(None));
        assert_eq!(files[2].url, "http://h/simple/foo/foo-2.0-py3-none-any.whl");
    }

    #[test]
    fn json_pages() {
        let base = url::Url::parse("http://h/simple/foo/").unwrap();
        let body = br#"{"meta":{"api-version":"1.1"},"name":"foo","files":[
          {"filename":"foo-1.0-py3-none-any.whl","url":"/f/foo-1.0-py3-none-any.whl","hashes":{"sha256":"aa"},
           "requires-python":">=3.9","yanked":"oops","core-metadata":{"sha256":"bb"}},
          {"filename":"foo-1.1.tar.gz","url":"foo-1.1.tar.gz","hashes":{},"yanked":false,"dist-info-metadata":true}]}"#;
        let files = parse_json_page(body, &base).unwrap();
        assert_eq!(files[0].url, "http://h/f/foo-1.0-py3-none-any.whl");
        assert_eq!(files[0].yanked.as_deref(), Some("oops"));
        assert_eq!(files[0].metadata, Some(Some("bb".into())));
        assert_eq!(files[1].sha256, None);
        assert_eq!(files[1].yanked, None);
        assert_eq!(files[1].metadata, Some(None));
    }

    #[test]
    fn metadata_requirements() {
        let m = "Metadata-Version: 2.1\nName: a\nRequires-Dist: b>=1\nRequires-Dist: c;\n  extra == \"x\"\nSummary: s\n\nRequires-Dist: not-a-header\n";
        assert_eq!(requires_dist(m), vec!["b>=1", "c; extra == \"x\""]);
    }

    #[test]
    fn verify_reader_names_the_file() {
        let want = Sha256::of(b"good").to_hex();
        let mut ok = Verify::new(Box::new(&b"good"[..]), &want, "f".into()).unwrap();
        std::io::copy(&mut ok, &mut std::io::sink()).unwrap();
        let mut bad = Verify::new(Box::new(&b"evil"[..]), &want, "x.whl from u".into()).unwrap();
        let e = std::io::copy(&mut bad, &mut std::io::sink())
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.whl from u") && e.contains(&want), "{e}");
    }
}
