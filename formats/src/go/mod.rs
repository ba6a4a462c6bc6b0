//! Go modules: what the outside's `source::go` and the inside's `store::go`
//! both read.
//!
//! - Module paths and versions ([`check_path`], [`check_version`]) and
//!   their case-encoding in proxy URLs ([`escape`]: `A` as `!a`;
//!   [`unescape`]).
//! - Versions ordered as Go orders them ([`GoVersion`]: `v` + semver,
//!   `+incompatible` kept).
//! - [`gomod`]: the `module` and `require` directives of a `go.mod`, and
//!   the lines of a `go.sum`.
//! - [`hash`]: the `h1:` hashes `go.sum` and the checksum database hold
//!   (`dirhash` Hash1) of a module zip and of a `go.mod`, and the module
//!   zip's name rules.
//! - [`sumdb`]: the checksum database's signed notes (ed25519 note keys)
//!   and `/lookup` answers; [`tlog`]: a record's inclusion under a signed
//!   tree head, proved from the database's hash tiles.
//! - The catalog layout of a `go` source ([`GoPath`], [`parse_path`]): the
//!   GOPROXY tree itself (`<escaped module>/@v/list`, `@v/<version>.info`,
//!   `.mod`, `.zip`, `<escaped module>/@latest`) and
//!   `checksums/<escaped module>@<escaped version>`, the `go.sum` lines the
//!   version was checked against, and the checksum database's carried part
//!   ([`SumdbFile`] under `sumdb/<name>/`: key, tree heads, records, tiles).

pub mod gomod;
pub mod hash;
pub mod sumdb;
pub mod tlog;

use std::cmp::Ordering;
use thiserror::Error;

/// The longest module path accepted.
pub const MAX_PATH: usize = 500;

/// Why a module path or version is refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PathError {
    /// Not a module path: empty, too long, a character Go does not allow, an
    /// empty, `.` or `..` element, or a first element without a dot.
    #[error("{path:?} is not a module path ({reason})")]
    Module {
        /// The path.
        path: String,
        /// Which rule.
        reason: &'static str,
    },
    /// Not a canonical version (`v` + semver: `v1.2.3`, `v0.0.0-2024…-abc`,
    /// `v2.0.0+incompatible`).
    #[error("{version:?} is not a canonical Go module version")]
    Version {
        /// The version.
        version: String,
    },
    /// An escaped path or version that does not decode (`!` not followed by
    /// a lower-case letter, or an upper-case letter).
    #[error("{text:?} is not a case-encoded path or version")]
    Escape {
        /// The text.
        text: String,
    },
}

fn module_err(path: &str, reason: &'static str) -> PathError {
    PathError::Module {
        path: path.to_string(),
        reason,
    }
}

/// Checks a module path as the proxy protocol needs it: ASCII letters,
/// digits and `-._~/`, non-empty elements that are not `.` or `..` and do
/// not start or end with `.`, a first element with a dot and no upper case.
pub fn check_path(path: &str) -> Result<(), PathError> {
    if path.is_empty() || path.len() > MAX_PATH {
        return Err(module_err(path, "empty or too long"));
    }
    if !path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~/".contains(&b))
    {
        return Err(module_err(path, "a character Go does not allow"));
    }
    for (i, elem) in path.split('/').enumerate() {
        if elem.is_empty() || elem.starts_with('.') || elem.ends_with('.') {
            return Err(module_err(
                path,
                "an empty element or one starting or ending with a dot",
            ));
        }
        if i == 0 && (!elem.contains('.') || elem.bytes().any(|b| b.is_ascii_uppercase())) {
            return Err(module_err(
                path,
                "the first element needs a dot and no upper case",
            ));
        }
    }
    Ok(())
}

/// A module version: `v` and a semantic version (pseudo-versions are
/// pre-releases; `+incompatible` is build metadata Go keeps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoVersion {
    /// The version as written (`v1.2.3`).
    pub text: String,
    /// Its semver, for ordering.
    pub semver: semver::Version,
}

impl GoVersion {
    /// Parses a canonical version (`v1.2.3`, `v1.2.3-pre`, `v2.0.0+incompatible`).
    pub fn parse(text: &str) -> Result<GoVersion, PathError> {
        let bad = || PathError::Version {
            version: text.to_string(),
        };
        let rest = text.strip_prefix('v').ok_or_else(bad)?;
        let semver = semver::Version::parse(rest).map_err(|_| bad())?;
        if !semver.build.is_empty() && semver.build.as_str() != "incompatible" {
            return Err(bad());
        }
        if !text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.+".contains(&b))
        {
            return Err(bad());
        }
        Ok(GoVersion {
            text: text.to_string(),
            semver,
        })
    }

    /// Whether it is a release (no pre-release part, so no pseudo-version).
    pub fn is_release(&self) -> bool {
        self.semver.pre.is_empty()
    }
}

impl PartialOrd for GoVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for GoVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.semver
            .cmp_precedence(&other.semver)
            .then_with(|| self.text.cmp(&other.text))
    }
}

/// Checks a canonical version.
pub fn check_version(version: &str) -> Result<(), PathError> {
    GoVersion::parse(version).map(drop)
}

/// The case-encoding of proxy URLs and file names: each upper-case letter
/// as `!` and its lower case.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_uppercase() {
            out.push('!');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Decodes [`escape`]; an upper-case letter or a `!` not followed by a
/// lower-case letter is an error.
pub fn unescape(s: &str) -> Result<String, PathError> {
    let bad = || PathError::Escape {
        text: s.to_string(),
    };
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '!' => match chars.next() {
                Some(n) if n.is_ascii_lowercase() => out.push(n.to_ascii_uppercase()),
                _ => return Err(bad()),
            },
            c if c.is_ascii_uppercase() => return Err(bad()),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// The directory of a module's files in a proxy tree (`<escaped>/@v/`).
pub fn version_dir(module: &str) -> String {
    format!("{}/@v", escape(module))
}

/// A version file's path: `<escaped module>/@v/<escaped version>.<ext>`
/// (`ext` is `info`, `mod` or `zip`).
pub fn version_file(module: &str, version: &str, ext: &str) -> String {
    format!("{}/{}.{ext}", version_dir(module), escape(version))
}

/// A module's `@v/list` path.
pub fn list_path(module: &str) -> String {
    format!("{}/list", version_dir(module))
}

/// A module's `@latest` path.
pub fn latest_path(module: &str) -> String {
    format!("{}/@latest", escape(module))
}

/// The path of the checked `go.sum` lines of a version.
pub fn checksums_path(module: &str, version: &str) -> String {
    format!("checksums/{}@{}", escape(module), escape(version))
}

/// The kinds of a version file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// `.info`: `{"Version": …, "Time": …}`.
    Info,
    /// `.mod`: the version's `go.mod`.
    Mod,
    /// `.zip`: the module zip.
    Zip,
}

/// A file of the checksum database a `go` source carries, under
/// `sumdb/<name>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SumdbFile {
    /// `key`: the verifier key (`<name>+<hash>+<key>`).
    Key,
    /// `latest`: the signed tree head of the export.
    Latest,
    /// `heads/<size>`: a signed tree head carried by this or an earlier
    /// export, proved consistent with `latest` from the carried tiles.
    Head {
        /// The tree size it signs.
        size: u64,
    },
    /// `records/<module>@<version>`: the version's record and its id
    /// ([`sumdb::stored_record`]).
    Record {
        /// The module path.
        module: String,
        /// The version.
        version: String,
    },
    /// `tile/8/<level>/<index>[.p/<width>]`: a hash tile of `latest`'s tree.
    Tile(tlog::Tile),
}

/// The path of a checksum database file of database `name`.
pub fn sumdb_path(name: &str, file: &SumdbFile) -> String {
    let f = match file {
        SumdbFile::Key => "key".to_string(),
        SumdbFile::Latest => "latest".to_string(),
        SumdbFile::Head { size } => format!("heads/{size}"),
        SumdbFile::Record { module, version } => {
            format!("records/{}@{}", escape(module), escape(version))
        }
        SumdbFile::Tile(t) => t.path(),
    };
    format!("sumdb/{name}/{f}")
}

fn parse_sumdb(rest: &str) -> Option<GoPath> {
    let (name, f) = rest.split_once('/')?;
    if !sumdb::is_path_name(name) {
        return None;
    }
    let file = match f {
        "key" => SumdbFile::Key,
        "latest" => SumdbFile::Latest,
        _ => {
            if let Some(size) = f.strip_prefix("heads/") {
                let n: u64 = size.parse().ok()?;
                (n.to_string() == size).then_some(SumdbFile::Head { size: n })?
            } else if let Some(r) = f.strip_prefix("records/") {
                let (m, v) = r.rsplit_once('@')?;
                SumdbFile::Record {
                    module: module_of(m)?,
                    version: version_of(v)?,
                }
            } else {
                SumdbFile::Tile(tlog::Tile::parse(f)?)
            }
        }
    };
    Some(GoPath::Sumdb {
        name: name.to_string(),
        file,
    })
}

/// What a path of a `go` source is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GoPath {
    /// `<module>/@v/list`.
    List {
        /// The module path (decoded).
        module: String,
    },
    /// `<module>/@latest`.
    Latest {
        /// The module path.
        module: String,
    },
    /// `<module>/@v/<version>.<ext>`.
    Version {
        /// The module path.
        module: String,
        /// The version.
        version: String,
        /// Which file.
        kind: FileKind,
    },
    /// `checksums/<module>@<version>`.
    Checksums {
        /// The module path.
        module: String,
        /// The version.
        version: String,
    },
    /// `sumdb/<name>/…`: the checksum database's carried part.
    Sumdb {
        /// The database's name.
        name: String,
        /// Which file.
        file: SumdbFile,
    },
}

/// Decodes an escaped module path and checks it.
fn module_of(escaped: &str) -> Option<String> {
    let m = unescape(escaped).ok()?;
    check_path(&m).ok()?;
    (escape(&m) == escaped).then_some(m)
}

fn version_of(escaped: &str) -> Option<String> {
    let v = unescape(escaped).ok()?;
    check_version(&v).ok()?;
    Some(v)
}

/// What a path within a `go` source is; `None` for any other path.
pub fn parse_path(path: &str) -> Option<GoPath> {
    if let Some(rest) = path.strip_prefix("sumdb/") {
        return parse_sumdb(rest);
    }
    if let Some(rest) = path.strip_prefix("checksums/") {
        let (m, v) = rest.rsplit_once('@')?;
        return Some(GoPath::Checksums {
            module: module_of(m)?,
            version: version_of(v)?,
        });
    }
    if let Some(m) = path.strip_suffix("/@latest") {
        return Some(GoPath::Latest {
            module: module_of(m)?,
        });
    }
    let (m, file) = path.rsplit_once("/@v/")?;
    let module = module_of(m)?;
    if file == "list" {
        return Some(GoPath::List { module });
    }
    let (v, ext) = file.rsplit_once('.')?;
    let kind = match ext {
        "info" => FileKind::Info,
        "mod" => FileKind::Mod,
        "zip" => FileKind::Zip,
        _ => return None,
    };
    Some(GoPath::Version {
        module,
        version: version_of(v)?,
        kind,
    })
}

/// A version's `.info` file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct Info {
    /// The canonical version.
    #[serde(rename = "Version")]
    pub version: String,
    /// The commit time (RFC 3339), when given.
    #[serde(rename = "Time", default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
}

/// Why a `.info` file is refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum InfoError {
    /// Not JSON with a `Version`.
    #[error("not a version .info file: {reason}")]
    Malformed {
        /// What the parser said.
        reason: String,
    },
    /// It names another version.
    #[error("the .info file names version {named:?}, not {expected:?}")]
    WrongVersion {
        /// What it says.
        named: String,
        /// The version asked for.
        expected: String,
    },
}

impl Info {
    /// Parses a `.info` file and checks it names `expected` (when given).
    pub fn parse(bytes: &[u8], expected: Option<&str>) -> Result<Info, InfoError> {
        let info: Info = serde_json::from_slice(bytes).map_err(|e| InfoError::Malformed {
            reason: e.to_string(),
        })?;
        check_version(&info.version).map_err(|e| InfoError::Malformed {
            reason: e.to_string(),
        })?;
        match expected {
            Some(v) if v != info.version => Err(InfoError::WrongVersion {
                named: info.version,
                expected: v.to_string(),
            }),
            _ => Ok(info),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_round_trips_and_refuses_upper_case() {
        assert_eq!(escape("github.com/Azure/Go"), "github.com/!azure/!go");
        assert_eq!(
            unescape("github.com/!azure/!go").unwrap(),
            "github.com/Azure/Go"
        );
        assert!(matches!(unescape("a/B"), Err(PathError::Escape { .. })));
        assert!(matches!(unescape("a/!1"), Err(PathError::Escape { .. })));
    }

    #[test]
    fn paths_and_versions() {
        check_path("example.com/a/v2").unwrap();
        assert!(check_path("nodot/a").is_err());
        assert!(check_path("a.com/../b").is_err());
        assert!(check_path("a.com/b c").is_err());
        let v = |s| GoVersion::parse(s).unwrap();
        assert!(v("v1.10.0") > v("v1.9.0"));
        assert!(v("v1.0.0") > v("v1.0.0-20240101000000-abcdefabcdef"));
        assert!(!v("v0.0.0-20240101000000-abcdefabcdef").is_release());
        v("v2.0.0+incompatible");
        assert!(GoVersion::parse("1.0.0").is_err());
        assert!(GoVersion::parse("v1.0.0+meta").is_err());
    }

    #[test]
    fn catalog_paths() {
        let m = "example.com/Big/x";
        assert_eq!(
            parse_path(&version_file(m, "v1.0.0", "zip")),
            Some(GoPath::Version {
                module: m.into(),
                version: "v1.0.0".into(),
                kind: FileKind::Zip
            })
        );
        assert_eq!(
            parse_path(&list_path(m)),
            Some(GoPath::List { module: m.into() })
        );
        assert_eq!(
            parse_path(&latest_path(m)),
            Some(GoPath::Latest { module: m.into() })
        );
        assert_eq!(
            parse_path(&checksums_path(m, "v1.0.0")),
            Some(GoPath::Checksums {
                module: m.into(),
                version: "v1.0.0".into()
            })
        );
        for f in [
            SumdbFile::Key,
            SumdbFile::Latest,
            SumdbFile::Head { size: 12 },
            SumdbFile::Record {
                module: m.into(),
                version: "v1.0.0".into(),
            },
            SumdbFile::Tile(tlog::Tile::parse("tile/8/1/x002/003.p/7").unwrap()),
        ] {
            let p = sumdb_path("sum.golang.org", &f);
            assert_eq!(
                parse_path(&p),
                Some(GoPath::Sumdb {
                    name: "sum.golang.org".into(),
                    file: f
                }),
                "{p}"
            );
        }
        for bad in [
            "sumdb/a/heads/01",
            "sumdb/.a/key",
            "sumdb/a/tile/8/0/1",
            "sumdb/a/other",
        ] {
            assert_eq!(parse_path(bad), None, "{bad}");
        }
        assert_eq!(parse_path("example.com/x/@v/v1.0.0.tgz"), None);
        assert_eq!(parse_path("example.com/Big/@v/list"), None);
        assert_eq!(parse_path("x/@v/list"), None);
    }
}
