//! PyPI: the catalog layout of a `pypi` source and the project index ferry
//! writes for it.
//!
//! ferry-out (`source::pypi`) reads upstream's simple repository API (PEP 503
//! HTML, PEP 691 JSON) and writes, per source:
//!
//! - `files/<filename>`: a distribution file (wheel or sdist), byte-exact;
//! - `simple/<project>/index.json`: a [`ProjectIndex`], `<project>` in PEP 503
//!   normalized form: `{"name": "<project>", "files": [{"filename", "sha256",
//!   "requires-python"?, "yanked"?}]}` (the fields of PEP 691 ferry keeps).
//!
//! ferry-in (`store::pypi`, `serve::pypi`) reads those indexes back, checks
//! them against the catalog and renders the simple API from them. Unknown
//! fields are refused when reading, so both sides agree on exactly this shape.
//!
//! Names: PEP 503 normalization ([`normalize`]); a project path holds only
//! the normalized form ([`is_normalized`]).

use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use thiserror::Error;

/// Why a project index is refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum IndexError {
    /// Not JSON of the [`ProjectIndex`] shape (unknown fields included).
    #[error("not a project index: {reason}")]
    NotIndex {
        /// What the JSON parser said.
        reason: String,
    },
    /// Its `name` is not the project of its path.
    #[error("the index names project {named:?}, its path {project:?}")]
    WrongProject {
        /// The name it gives.
        named: String,
        /// The project of its path.
        project: String,
    },
    /// A file name appears twice.
    #[error("{filename} is listed twice")]
    Duplicate {
        /// The file name.
        filename: String,
    },
    /// A file name that cannot be a path `files/<filename>`.
    #[error("{filename:?} is not a file name")]
    BadFilename {
        /// The file name.
        filename: String,
    },
}

/// One file of a project index.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IndexEntry {
    /// The file name; the file is at `files/<filename>`.
    pub filename: String,
    /// Lower-case hex SHA-256.
    pub sha256: String,
    /// `requires-python`, when the upstream index gave one.
    #[serde(
        rename = "requires-python",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub requires_python: Option<String>,
    /// The reason (maybe empty) when the file is yanked (PEP 592).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yanked: Option<String>,
}

/// `simple/<project>/index.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ProjectIndex {
    /// The normalized project name.
    pub name: String,
    /// The project's files, in file-name order as ferry-out writes them.
    pub files: Vec<IndexEntry>,
}

impl ProjectIndex {
    /// Reads `simple/<project>/index.json` and checks it is `project`'s:
    /// its name, file names unique, each a single path component.
    pub fn parse(bytes: &[u8], project: &str) -> Result<ProjectIndex, IndexError> {
        let index: ProjectIndex =
            serde_json::from_slice(bytes).map_err(|e| IndexError::NotIndex {
                reason: e.to_string(),
            })?;
        if index.name != project {
            return Err(IndexError::WrongProject {
                named: index.name,
                project: project.into(),
            });
        }
        let mut seen = HashSet::new();
        for f in &index.files {
            if !seen.insert(f.filename.as_str()) {
                return Err(IndexError::Duplicate {
                    filename: f.filename.clone(),
                });
            }
            if parse_path(&file_path(&f.filename)) != Some(PypiPath::File(&f.filename)) {
                return Err(IndexError::BadFilename {
                    filename: f.filename.clone(),
                });
            }
        }
        Ok(index)
    }
}

/// What an object path of a PyPI source stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PypiPath<'a> {
    /// `files/<filename>`.
    File(&'a str),
    /// `simple/<project>/index.json`.
    Index(&'a str),
}

/// Reads an object path of a PyPI source; `None` if it has neither form.
pub fn parse_path(path: &str) -> Option<PypiPath<'_>> {
    if let Some(f) = path.strip_prefix("files/") {
        return (!f.is_empty() && !f.contains('/')).then_some(PypiPath::File(f));
    }
    let project = path.strip_prefix("simple/")?.strip_suffix("/index.json")?;
    (is_normalized(project)).then_some(PypiPath::Index(project))
}

/// The path of a project's index: `simple/<project>/index.json`.
pub fn index_path(project: &str) -> String {
    format!("simple/{project}/index.json")
}

/// The path of a distribution file: `files/<filename>`.
pub fn file_path(filename: &str) -> String {
    format!("files/{filename}")
}

/// A PEP 503 normalized name: lower-case letters, digits, single `-`
/// between them.
pub fn is_normalized(name: &str) -> bool {
    !name.is_empty() && normalize(name) == name
}

/// PEP 503 normalization: runs of `-`, `_`, `.` become one `-`, lower case.
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// Why a wheel's core metadata cannot be read.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum WheelError {
    /// Not a zip archive, or a broken one.
    #[error("not a readable zip archive: {reason}")]
    NotZip {
        /// What the zip reader said.
        reason: String,
    },
    /// No `*.dist-info/METADATA` at its top level.
    #[error("no .dist-info/METADATA in the wheel")]
    NoMetadata,
    /// `METADATA` is larger than the limit.
    #[error("{name} is larger than {limit} bytes")]
    TooLarge {
        /// The entry.
        name: String,
        /// The limit.
        limit: u64,
    },
}

/// The core metadata of a wheel (PEP 658: the `.metadata` file an index
/// serves is exactly this): its top-level `*.dist-info/METADATA`, at most
/// `limit` bytes.
pub fn wheel_metadata<R: std::io::Read + std::io::Seek>(
    wheel: R,
    limit: u64,
) -> Result<Vec<u8>, WheelError> {
    use std::io::Read;
    let broken = |e: &dyn std::fmt::Display| WheelError::NotZip {
        reason: e.to_string(),
    };
    let mut zip = zip::ZipArchive::new(wheel).map_err(|e| broken(&e))?;
    let name = zip
        .file_names()
        .filter_map(|n| n.ok().map(|n| n.to_string()))
        .find(|n| n.ends_with(".dist-info/METADATA") && n.matches('/').count() == 1)
        .ok_or(WheelError::NoMetadata)?;
    let entry = zip.by_name(&name).map_err(|e| broken(&e))?;
    let mut bytes = Vec::new();
    entry
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| broken(&e))?;
    if bytes.len() as u64 > limit {
        return Err(WheelError::TooLarge { name, limit });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(normalize("Foo.Bar__baz-"), "foo-bar-baz");
        assert_eq!(normalize("zope.interface"), "zope-interface");
        assert!(is_normalized("zope-interface"));
        assert!(!is_normalized("Zope_Interface"));
        assert!(!is_normalized(""));
    }

    #[test]
    fn paths() {
        assert_eq!(
            parse_path("files/a-1.0-py3-none-any.whl"),
            Some(PypiPath::File("a-1.0-py3-none-any.whl"))
        );
        assert_eq!(
            parse_path("simple/zope-interface/index.json"),
            Some(PypiPath::Index("zope-interface"))
        );
        assert_eq!(parse_path(&index_path("a")), Some(PypiPath::Index("a")));
        assert_eq!(
            parse_path(&file_path("a.whl")),
            Some(PypiPath::File("a.whl"))
        );
        for bad in [
            "files/",
            "files/a/b.whl",
            "simple/Zope_Interface/index.json",
            "simple/a/other.json",
            "simple//index.json",
            "other",
        ] {
            assert_eq!(parse_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn index_round_trip_and_unknown_fields() {
        let idx = ProjectIndex {
            name: "a".into(),
            files: vec![IndexEntry {
                filename: "a-1.0.tar.gz".into(),
                sha256: "0".repeat(64),
                requires_python: Some(">=3.8".into()),
                yanked: None,
            }],
        };
        let text = serde_json::to_string(&idx).unwrap();
        assert!(text.contains("\"requires-python\":\">=3.8\""), "{text}");
        assert!(!text.contains("yanked"), "{text}");
        assert_eq!(serde_json::from_str::<ProjectIndex>(&text).unwrap(), idx);
        let extra = text.replace("\"name\"", "\"extra\":1,\"name\"");
        assert!(serde_json::from_str::<ProjectIndex>(&extra).is_err());
        assert_eq!(ProjectIndex::parse(text.as_bytes(), "a").unwrap(), idx);
        assert!(matches!(
            ProjectIndex::parse(extra.as_bytes(), "a"),
            Err(IndexError::NotIndex { .. })
        ));
    }

    #[test]
    fn index_rules() {
        let entry = |f: &str| IndexEntry {
            filename: f.into(),
            sha256: "0".repeat(64),
            requires_python: None,
            yanked: None,
        };
        let bytes = |files: Vec<IndexEntry>| {
            serde_json::to_vec(&ProjectIndex {
                name: "a".into(),
                files,
            })
            .unwrap()
        };
        assert_eq!(
            ProjectIndex::parse(&bytes(vec![entry("a-1.whl")]), "b"),
            Err(IndexError::WrongProject {
                named: "a".into(),
                project: "b".into()
            })
        );
        assert_eq!(
            ProjectIndex::parse(&bytes(vec![entry("a-1.whl"), entry("a-1.whl")]), "a"),
            Err(IndexError::Duplicate {
                filename: "a-1.whl".into()
            })
        );
        for bad in ["x/a-1.whl", ""] {
            assert_eq!(
                ProjectIndex::parse(&bytes(vec![entry(bad)]), "a"),
                Err(IndexError::BadFilename {
                    filename: bad.into()
                }),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn wheel_metadata_is_the_top_level_dist_info_metadata() {
        use std::io::{Cursor, Write};
        let wheel = |entries: &[(&str, &[u8])]| {
            let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
            for (name, data) in entries {
                w.start_file(*name, zip::write::SimpleFileOptions::default())
                    .unwrap();
                w.write_all(data).unwrap();
            }
            w.finish().unwrap().into_inner()
        };
        let meta = b"Metadata-Version: 2.1\nName: a\n";
        let good = wheel(&[
            ("a/__init__.py", b""),
            ("a/x.dist-info/METADATA", b"nested"),
            ("a-1.0.dist-info/METADATA", meta),
        ]);
        assert_eq!(wheel_metadata(Cursor::new(&good), 100).unwrap(), meta);
        assert!(matches!(
            wheel_metadata(Cursor::new(&good), 10),
            Err(WheelError::TooLarge { limit: 10, .. })
        ));
        let none = wheel(&[("a/__init__.py", b"")]);
        assert_eq!(
            wheel_metadata(Cursor::new(&none), 100),
            Err(WheelError::NoMetadata)
        );
        assert!(matches!(
            wheel_metadata(Cursor::new(b"not a zip".to_vec()), 100),
            Err(WheelError::NotZip { .. })
        ));
    }
}
