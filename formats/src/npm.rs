//! npm: what the outside's `source::npm` and the inside's `store::npm` and
//! `serve::npm` both read.
//!
//! - [`Packument`]: a registry's package document (`name`, `dist-tags`,
//!   `versions` with their `dist` and dependency maps, `time`), each version
//!   also kept as raw JSON so a server can rewrite `dist.tarball` and keep
//!   every other field.
//! - [`Integrity`]: the strongest digest of a version's `dist.integrity`
//!   (Subresource Integrity, `sha512-<base64>`) or its `dist.shasum`, as hex.
//! - [`parse_range`]: npm's semver ranges (`^1.2`, `~1.2.3`, `1.x`,
//!   `>=1 <2`, `1.2.3 - 2`, `a || b`, bare versions meaning `=`) as a list
//!   of [`semver::VersionReq`], any of which matching is a match.
//! - [`parse_lockfile`]: the registry packages of a `package-lock.json`
//!   (lockfile versions 2 and 3: the `packages` map).
//! - Names ([`check_name`], scoped `@scope/name`) and the catalog paths
//!   [`packument_path`] and [`tarball_path`].

use base64::Engine as _;
use semver::{Version, VersionReq};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use thiserror::Error;

/// The longest package name npm accepts.
pub const MAX_NAME: usize = 214;

/// Why a package name is refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum NameError {
    /// Empty, too long, starting with `.` or `_`, or with a character npm
    /// does not allow in a name (a scope is `@scope/name`).
    #[error("{name:?} is not an npm package name")]
    Invalid {
        /// The name.
        name: String,
    },
}

/// Why a packument is refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PackumentError {
    /// Not JSON of a packument's shape.
    #[error("not a packument: {reason}")]
    Malformed {
        /// What the JSON parser said.
        reason: String,
    },
    /// Its `name` is not the package asked for.
    #[error("the packument names {named:?}, not {expected:?}")]
    WrongPackage {
        /// The name it gives.
        named: String,
        /// The package asked for.
        expected: String,
    },
    /// A version entry that is not one (a key that is not semver, a
    /// `version` field that differs from its key, no `dist.tarball`).
    #[error("version {version:?}: {reason}")]
    BadVersion {
        /// The key.
        version: String,
        /// What is wrong.
        reason: String,
    },
}

/// Why an integrity string is refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum IntegrityError {
    /// Neither a usable `sha512-`/`sha384-`/`sha256-`/`sha1-` entry nor a
    /// 40-hex `shasum`.
    #[error("no usable digest in integrity {integrity:?} / shasum {shasum:?}")]
    None {
        /// `dist.integrity`.
        integrity: Option<String>,
        /// `dist.shasum`.
        shasum: Option<String>,
    },
}

/// Why a range is refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RangeError {
    /// Not an npm semver range (a tag, a URL, a `file:` or git spec).
    #[error("{range:?} is not a semver range: {reason}")]
    Invalid {
        /// The range.
        range: String,
        /// What is wrong.
        reason: String,
    },
}

/// Why a lockfile is refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum LockfileError {
    /// Not JSON of a lockfile's shape.
    #[error("not a package-lock.json: {reason}")]
    Malformed {
        /// What the JSON parser said.
        reason: String,
    },
    /// `lockfileVersion` 1 (no `packages` map), or one newer than 3.
    #[error("lockfileVersion {version} is not read (2 and 3 are)")]
    Version {
        /// The version given.
        version: u64,
    },
    /// A package entry without a semver `version`.
    #[error("package {key:?}: version {version:?} is not a semantic version")]
    BadVersion {
        /// Its key in `packages`.
        key: String,
        /// The version given.
        version: String,
    },
}

/// A version's `dist`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Dist {
    /// The tarball's URL.
    pub tarball: String,
    /// Subresource Integrity (`sha512-…`).
    #[serde(default)]
    pub integrity: Option<String>,
    /// SHA-1 in hex.
    #[serde(default)]
    pub shasum: Option<String>,
}

/// The fields of one version a mirror reads.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct VersionMeta {
    /// Its version.
    pub version: String,
    /// Where its tarball is and its digests.
    pub dist: Dist,
    /// `dependencies`.
    #[serde(default)]
    pub dependencies: BTreeMap<String, String>,
    /// `optionalDependencies`.
    #[serde(default, rename = "optionalDependencies")]
    pub optional_dependencies: BTreeMap<String, String>,
    /// `peerDependencies`.
    #[serde(default, rename = "peerDependencies")]
    pub peer_dependencies: BTreeMap<String, String>,
    /// `deprecated`: the message, when deprecated.
    #[serde(default, deserialize_with = "deprecation")]
    pub deprecated: Option<String>,
}

/// `deprecated` is a message, but some registries wrote `false`.
fn deprecation<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        _ => None,
    })
}

/// One version of a packument: its fields and its raw JSON.
#[derive(Clone, Debug, PartialEq)]
pub struct PackageVersion {
    /// Its version, parsed.
    pub version: Version,
    /// The fields read.
    pub meta: VersionMeta,
    /// The whole entry as upstream wrote it.
    pub raw: Value,
}

/// A registry's document for one package.
#[derive(Clone, Debug, PartialEq)]
pub struct Packument {
    /// The package's name.
    pub name: String,
    /// `dist-tags` (`latest`, …): tag → version.
    pub dist_tags: BTreeMap<String, String>,
    /// The versions, by version.
    pub versions: BTreeMap<Version, PackageVersion>,
    /// `time`: version (and `created`, `modified`) → time stamp.
    pub time: BTreeMap<String, String>,
    /// Version entries left out, with why: a key that is not semver (old
    /// packages have `1.0.0beta`), a `version` unlike its key, no `dist`.
    /// npm cannot install them either; a store refuses a packument with any.
    pub skipped: Vec<PackumentError>,
}

impl Packument {
    /// Parses the packument of `expected` (full or abbreviated form); a
    /// version entry that is not usable is left out, in `skipped`.
    pub fn parse(bytes: &[u8], expected: &str) -> Result<Packument, PackumentError> {
        let malformed = |reason: String| PackumentError::Malformed { reason };
        let doc: Value = serde_json::from_slice(bytes).map_err(|e| malformed(e.to_string()))?;
        let name = doc
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed("no string `name`".into()))?;
        if name != expected {
            return Err(PackumentError::WrongPackage {
                named: name.into(),
                expected: expected.into(),
            });
        }
        let strings = |key: &str| -> BTreeMap<String, String> {
            doc.get(key)
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut versions = BTreeMap::new();
        let mut skipped = Vec::new();
        if let Some(vs) = doc.get("versions").and_then(Value::as_object) {
            for (key, raw) in vs {
                match version_entry(key, raw) {
                    Ok(pv) => {
                        versions.insert(pv.version.clone(), pv);
                    }
                    Err(e) => skipped.push(e),
                }
            }
        }
        Ok(Packument {
            name: name.into(),
            dist_tags: strings("dist-tags"),
            versions,
            time: strings("time"),
            skipped,
        })
    }
}

/// One entry of `versions`.
fn version_entry(key: &str, raw: &Value) -> Result<PackageVersion, PackumentError> {
    let bad = |reason: String| PackumentError::BadVersion {
        version: key.to_string(),
        reason,
    };
    let version = Version::parse(key).map_err(|e| bad(e.to_string()))?;
    let meta: VersionMeta = serde_json::from_value(raw.clone()).map_err(|e| bad(e.to_string()))?;
    if meta.version != key {
        return Err(bad(format!("its `version` is {:?}", meta.version)));
    }
    Ok(PackageVersion {
        version,
        meta,
        raw: raw.clone(),
    })
}

/// The strongest digest a version's `dist` gives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Integrity {
    /// `sha512`, `sha384`, `sha256` or `sha1`.
    pub algorithm: &'static str,
    /// The digest in lower-case hex.
    pub hex: String,
}

impl Integrity {
    /// From `dist.integrity` (strongest algorithm first) or `dist.shasum`.
    pub fn of(dist: &Dist) -> Result<Integrity, IntegrityError> {
        let sri = dist.integrity.as_deref().unwrap_or("");
        for algorithm in ["sha512", "sha384", "sha256", "sha1"] {
            let found = sri.split_whitespace().find_map(|e| {
                let b64 = e.strip_prefix(algorithm)?.strip_prefix('-')?;
                let b64 = b64.split('?').next().unwrap_or(b64);
                base64::engine::general_purpose::STANDARD.decode(b64).ok()
            });
            if let Some(bytes) = found {
                return Ok(Integrity {
                    algorithm,
                    hex: hex::encode(bytes),
                });
            }
        }
        match dist.shasum.as_deref() {
            Some(s) if s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit()) => Ok(Integrity {
                algorithm: "sha1",
                hex: s.to_ascii_lowercase(),
            }),
            _ => Err(IntegrityError::None {
                integrity: dist.integrity.clone(),
                shasum: dist.shasum.clone(),
            }),
        }
    }
}

/// Parses an npm range into requirements any of which may match: `||`
/// separates alternatives; within one, space-separated comparators all
/// hold; `a - b` is `>=a <=b`; a bare version means exactly it (`1.2` is
/// `1.2.x`); `x`, `X` and `*` are wildcards; a leading `v` is dropped.
pub fn parse_range(range: &str) -> Result<Vec<VersionReq>, RangeError> {
    let invalid = |reason: String| RangeError::Invalid {
        range: range.into(),
        reason,
    };
    let mut out = Vec::new();
    for alt in range.split("||") {
        let tokens = comparators(alt.trim());
        let joined = if tokens.is_empty() {
            "*".to_string()
        } else {
            tokens.join(", ")
        };
        out.push(VersionReq::parse(&joined).map_err(|e| invalid(format!("{joined:?}: {e}")))?);
    }
    Ok(out)
}

/// The comparators of one alternative, in Rust `semver` syntax.
fn comparators(alt: &str) -> Vec<String> {
    let words: Vec<&str> = alt.split_whitespace().collect();
    if let [a, "-", b] = words.as_slice() {
        return vec![format!(">={}", bare(a)), format!("<={}", bare(b))];
    }
    let mut out = Vec::new();
    let mut pending_op: Option<&str> = None;
    for w in words {
        let op_len = w
            .bytes()
            .take_while(|b| matches!(b, b'<' | b'>' | b'=' | b'~' | b'^'))
            .count();
        let (op, ver) = w.split_at(op_len);
        if ver.is_empty() {
            pending_op = Some(op);
            continue;
        }
        let op = pending_op.take().unwrap_or(op);
        let ver = bare(ver);
        let wildcard = ver.split('.').any(|c| matches!(c, "x" | "X" | "*"));
        out.push(match op {
            "" if wildcard => ver.to_string(),
            "" => format!("={ver}"),
            _ => format!("{op}{ver}"),
        });
    }
    out
}

/// A version without its leading `v` or `=`.
fn bare(v: &str) -> &str {
    v.trim_start_matches('=').trim_start_matches('v')
}

/// Whether `version` satisfies any of `reqs`.
pub fn matches_any(reqs: &[VersionReq], version: &Version) -> bool {
    reqs.iter().any(|r| r.matches(version))
}

/// Checks a package name: `name` or `@scope/name`, each part non-empty, of
/// URL-safe characters (`a-z`, `A-Z` for old packages, `0-9`, `-._~`), not
/// starting with `.` or `_`, at most [`MAX_NAME`] bytes.
pub fn check_name(name: &str) -> Result<(), NameError> {
    let part_ok = |p: &str| {
        !p.is_empty()
            && !p.starts_with('.')
            && !p.starts_with('_')
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
    };
    let ok = name.len() <= MAX_NAME
        && match name.strip_prefix('@') {
            Some(scoped) => scoped
                .split_once('/')
                .is_some_and(|(s, n)| part_ok(s) && part_ok(n)),
            None => part_ok(name),
        };
    if ok {
        Ok(())
    } else {
        Err(NameError::Invalid { name: name.into() })
    }
}

/// Where an `npm` source keeps a package's packument:
/// `packuments/<name>.json` (`packuments/@scope/name.json` when scoped).
pub fn packument_path(name: &str) -> String {
    format!("packuments/{name}.json")
}

/// Where an `npm` source keeps a tarball: `tarballs/<name>/-/<base>-<version>.tgz`,
/// `<base>` being the name without its scope (the registry's own layout).
pub fn tarball_path(name: &str, version: &str) -> String {
    let base = name.rsplit('/').next().unwrap_or(name);
    format!("tarballs/{name}/-/{base}-{version}.tgz")
}

/// A path of an `npm` source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NpmPath<'a> {
    /// `packuments/<name>.json`.
    Packument(&'a str),
    /// `tarballs/<name>/-/<file>.tgz`.
    Tarball {
        /// The package.
        name: &'a str,
        /// The file name.
        file: &'a str,
    },
}

/// Reads a path of an `npm` source; `None` for anything outside the layout.
pub fn parse_path(path: &str) -> Option<NpmPath<'_>> {
    if let Some(rest) = path.strip_prefix("packuments/") {
        let name = rest.strip_suffix(".json")?;
        check_name(name).ok()?;
        return Some(NpmPath::Packument(name));
    }
    let rest = path.strip_prefix("tarballs/")?;
    let (name, file) = rest.rsplit_once("/-/")?;
    check_name(name).ok()?;
    let ok = file.ends_with(".tgz") && !file.contains('/') && !file.starts_with('.');
    ok.then_some(NpmPath::Tarball { name, file })
}

/// One registry package of a lockfile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Locked {
    /// Its name (from its `node_modules/…` key, or its `name` field).
    pub name: String,
    /// Its exact version.
    pub version: Version,
    /// `resolved`: the tarball URL it was installed from.
    pub resolved: Option<String>,
    /// `integrity`.
    pub integrity: Option<String>,
}

/// The registry packages of a `package-lock.json` (lockfileVersion 2 or 3):
/// every `packages` entry under `node_modules/` that is not a link and has a
/// version (one with a `resolved` that is not an http(s) URL, such as a git
/// or `file:` package, is left out). Each name and version once.
pub fn parse_lockfile(bytes: &[u8]) -> Result<Vec<Locked>, LockfileError> {
    let malformed = |reason: String| LockfileError::Malformed { reason };
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| malformed(e.to_string()))?;
    let version = doc
        .get("lockfileVersion")
        .and_then(Value::as_u64)
        .ok_or_else(|| malformed("no numeric `lockfileVersion`".into()))?;
    let packages = doc.get("packages").and_then(Value::as_object);
    let packages = match (version, packages) {
        (2 | 3, Some(p)) => p,
        _ => return Err(LockfileError::Version { version }),
    };
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for (key, p) in packages {
        let Some(at) = key.rfind("node_modules/") else {
            continue;
        };
        let field = |f: &str| p.get(f).and_then(Value::as_str).map(String::from);
        if p.get("link").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        let resolved = field("resolved");
        if resolved
            .as_deref()
            .is_some_and(|r| !(r.starts_with("http://") || r.starts_with("https://")))
        {
            continue;
        }
        let name = field("name").unwrap_or_else(|| key[at + "node_modules/".len()..].to_string());
        let Some(v) = field("version") else { continue };
        let version = Version::parse(&v).map_err(|_| LockfileError::BadVersion {
            key: key.clone(),
            version: v.clone(),
        })?;
        if seen.insert((name.clone(), version.clone())) {
            out.push(Locked {
                name,
                version,
                resolved,
                integrity: field("integrity"),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(range: &str, v: &str) -> bool {
        matches_any(&parse_range(range).unwrap(), &Version::parse(v).unwrap())
    }

    #[test]
    fn npm_ranges_mean_what_npm_means() {
        assert!(
            req("1.2.3", "1.2.3") && !req("1.2.3", "1.2.4"),
            "bare is exact"
        );
        assert!(req("1.2", "1.2.9") && !req("1.2", "1.3.0"));
        assert!(req("^1.2.3", "1.9.0") && !req("^1.2.3", "2.0.0"));
        assert!(req("~1.2.3", "1.2.9") && !req("~1.2.3", "1.3.0"));
        assert!(req("1.x", "1.5.0") && req("1.2.X", "1.2.7") && !req("1.x", "2.0.0"));
        assert!(req("*", "9.9.9") && req("", "0.1.0") && req("x", "3.0.0"));
        assert!(req(">=1.0.0 <2", "1.5.0") && !req(">=1.0.0 <2", "2.0.0"));
        assert!(
            req(">= 1.0.0 < 2", "1.5.0"),
            "operators apart from versions"
        );
        assert!(req("1.2.3 - 2.3", "2.3.9") && !req("1.2.3 - 2.3", "2.4.0"));
        assert!(req("^1 || ^3", "3.1.0") && !req("^1 || ^3", "2.0.0"));
        assert!(req("v1.2.3", "1.2.3") && req("=v1.2.3", "1.2.3"));
        assert!(!req("^1", "1.5.0-beta.1"), "no pre-release unless named");
        assert!(req(">=1.5.0-beta.0", "1.5.0-beta.1"));
        for bad in ["latest", "git+https://x", "file:../a", "^1.2.3.4"] {
            assert!(
                matches!(parse_range(bad), Err(RangeError::Invalid { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn packuments_parse_and_keep_raw_versions() {
        let doc = br#"{"name":"is-number","dist-tags":{"latest":"7.0.0"},
          "versions":{"7.0.0":{"name":"is-number","version":"7.0.0","custom":1,
            "dependencies":{"a":"^1"},"deprecated":"use b",
            "dist":{"tarball":"https://r/is-number/-/is-number-7.0.0.tgz","shasum":"7535345b896734d5f80c4d06c50955527a14f12b",
              "integrity":"sha512-41Cifkg6e8TylSpdtTpeLVMqvSBEVzTttHvERD741+pnZ8ANv0004MRL43QKPDlK9cGvNp6NZWZUBlbGXYxxng=="}}},
          "time":{"7.0.0":"2018-07-04T15:08:58.238Z"}}"#;
        let p = Packument::parse(doc, "is-number").unwrap();
        assert_eq!(p.dist_tags["latest"], "7.0.0");
        let v = &p.versions[&Version::new(7, 0, 0)];
        assert_eq!(v.meta.dependencies["a"], "^1");
        assert_eq!(v.meta.deprecated.as_deref(), Some("use b"));
        assert_eq!(v.raw["custom"], 1);
        let i = Integrity::of(&v.meta.dist).unwrap();
        assert_eq!(i.algorithm, "sha512");
        assert_eq!(i.hex.len(), 128);
        assert!(i.hex.starts_with("e350a27e"));
        let sha1 = Dist {
            tarball: String::new(),
            integrity: None,
            shasum: Some("7535345B896734d5f80c4d06c50955527a14f12b".into()),
        };
        assert_eq!(Integrity::of(&sha1).unwrap().algorithm, "sha1");
        assert!(matches!(
            Integrity::of(&Dist::default()),
            Err(IntegrityError::None { .. })
        ));
        assert!(matches!(
            Packument::parse(doc, "other"),
            Err(PackumentError::WrongPackage { .. })
        ));
        let wrong =
            String::from_utf8_lossy(doc).replace("\"version\":\"7.0.0\"", "\"version\":\"7.0.1\"");
        let p = Packument::parse(wrong.as_bytes(), "is-number").unwrap();
        assert!(p.versions.is_empty());
        assert!(matches!(p.skipped[..], [PackumentError::BadVersion { .. }]));
        assert!(matches!(
            Packument::parse(b"[]", "x"),
            Err(PackumentError::Malformed { .. })
        ));
    }

    #[test]
    fn names_and_paths() {
        for ok in ["is-number", "@types/node", "JSONStream", "a.b_c~d"] {
            check_name(ok).unwrap();
        }
        for bad in [
            "", ".hidden", "_x", "@scope", "@/x", "a/b", "a b", "../x", "@s/../x",
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert_eq!(packument_path("@types/node"), "packuments/@types/node.json");
        assert_eq!(
            tarball_path("@types/node", "20.1.0"),
            "tarballs/@types/node/-/node-20.1.0.tgz"
        );
        assert_eq!(tarball_path("a", "1.0.0"), "tarballs/a/-/a-1.0.0.tgz");
        assert_eq!(
            parse_path("tarballs/@types/node/-/node-20.1.0.tgz"),
            Some(NpmPath::Tarball {
                name: "@types/node",
                file: "node-20.1.0.tgz"
            })
        );
        assert_eq!(
            parse_path("packuments/@types/node.json"),
            Some(NpmPath::Packument("@types/node"))
        );
        for bad in [
            "packuments/a",
            "tarballs/a/a-1.tgz",
            "tarballs/a/-/x/y.tgz",
            "config.json",
        ] {
            assert_eq!(parse_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn lockfiles_give_registry_packages() {
        let lock = br#"{"name":"app","lockfileVersion":3,"packages":{
          "":{"name":"app","dependencies":{"a":"^1"}},
          "node_modules/a":{"version":"1.0.0","resolved":"https://r/a/-/a-1.0.0.tgz","integrity":"sha512-AA=="},
          "node_modules/a/node_modules/@s/b":{"version":"2.0.0","resolved":"https://r/@s/b/-/b-2.0.0.tgz"},
          "node_modules/c":{"version":"1.0.0","resolved":"git+ssh://x/c.git#abc"},
          "node_modules/d":{"resolved":"../d","link":true},
          "node_modules/e":{"version":"1.0.0","resolved":"https://r/a/-/a-1.0.0.tgz"}}}"#;
        let got = parse_lockfile(lock).unwrap();
        let names: Vec<String> = got
            .iter()
            .map(|l| format!("{}@{}", l.name, l.version))
            .collect();
        assert_eq!(names, ["a@1.0.0", "@s/b@2.0.0", "e@1.0.0"]);
        assert_eq!(got[0].integrity.as_deref(), Some("sha512-AA=="));
        assert!(matches!(
            parse_lockfile(br#"{"lockfileVersion":1,"dependencies":{}}"#),
            Err(LockfileError::Version { version: 1 })
        ));
        assert!(matches!(
            parse_lockfile(
                br#"{"lockfileVersion":3,"packages":{"node_modules/a":{"version":"1.0"}}}"#
            ),
            Err(LockfileError::BadVersion { .. })
        ));
    }
}
