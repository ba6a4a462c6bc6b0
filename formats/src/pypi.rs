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
    }
}
