//! Debian repositories: the deb822 control format, `Release` files and
//! compressed index files.
//!
//! Specs: the Debian repository format
//! (<https://wiki.debian.org/DebianRepository/Format>) and deb822(5).
//!
//! - A deb822 text is a list of paragraphs separated by blank lines
//!   ([`paragraphs`]); a paragraph is `Field: value` lines, a line starting
//!   with a space or tab continuing the field above ([`fields`]: names are
//!   case-insensitive and returned lower-case).
//! - `dists/<suite>/Release` (or the signed text of `InRelease`) is one
//!   paragraph; its `SHA256` field lists ` <hex> <size> <path>` lines, the
//!   index files of the suite, relative to it ([`Release`]).
//! - Index files (`Packages`, …) come plain, `.gz` or `.xz`; [`decompress`]
//!   picks by the file name. `Packages` paragraphs are the binary package
//!   stanzas (`Package`, `Filename`, `Size`, `SHA256`, …); each agent reads the
//!   fields it needs from [`fields`].
//!
//! Signatures are not checked here: ferry-out verifies them against the
//! configured keyring before it ships a Release.

use crate::compress::DecompressError;
use ferry_protocol::id::Sha256;
use std::collections::{BTreeMap, HashMap};
use thiserror::Error;

/// Why a Release text is refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ReleaseError {
    /// No paragraph at all.
    #[error("empty Release file")]
    Empty,
    /// No `SHA256` field: ferry checks every index by SHA-256.
    #[error("the Release file has no SHA256 list")]
    NoSha256List,
    /// A line of the `SHA256` list is not `<hex> <size> <path>`, or its hex
    /// is not a SHA-256.
    #[error("bad SHA256 line {line:?}")]
    BadLine {
        /// The line.
        line: String,
    },
    /// A line's size is not a number.
    #[error("bad size in SHA256 line {line:?}")]
    BadSize {
        /// The line.
        line: String,
    },
}

/// Why an index file cannot be read as text.
#[derive(Debug, Error)]
pub enum IndexError {
    /// Decompressing failed or went past [`MAX_INDEX`].
    #[error(transparent)]
    Decompress(#[from] DecompressError),
    /// The (decompressed) content is not UTF-8.
    #[error("{name} is not UTF-8")]
    NotUtf8 {
        /// The file name.
        name: String,
    },
}

/// The `Packages` variants apt may fetch, in the order both agents read them.
pub const PACKAGES_VARIANTS: [&str; 3] = ["Packages", "Packages.xz", "Packages.gz"];

/// The paragraphs (stanzas) of a deb822 text, without trailing blank lines.
pub fn paragraphs(text: &str) -> impl Iterator<Item = &str> {
    text.split("\n\n")
        .map(|p| p.trim_matches('\n'))
        .filter(|p| !p.trim().is_empty())
}

/// A paragraph's fields, names lower-cased, continuation lines joined with
/// `\n` (each keeping its leading white space).
pub fn fields(para: &str) -> HashMap<String, String> {
    let mut out: HashMap<String, String> = HashMap::new();
    let mut cur: Option<String> = None;
    for line in para.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(v) = cur.as_ref().and_then(|k| out.get_mut(k)) {
                v.push('\n');
                v.push_str(line);
            }
        } else if let Some((k, v)) = line.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            out.insert(k.clone(), v.trim().to_string());
            cur = Some(k);
        }
    }
    out
}

/// What a Release file says.
#[derive(Debug, Default, Clone)]
pub struct Release {
    /// Every field but `SHA256`, by lower-case name (`origin`, `suite`,
    /// `valid-until`, …).
    pub fields: HashMap<String, String>,
    /// `Acquire-By-Hash: yes`.
    pub by_hash: bool,
    /// The `SHA256` list: path (relative to the suite) -> (size, digest).
    pub sha256: BTreeMap<String, (u64, Sha256)>,
}

impl Release {
    /// Parses a Release text (InRelease's signed text, or Release). Refuses
    /// an empty text, a missing `SHA256` list and a malformed line of it.
    pub fn parse(text: &str) -> Result<Release, ReleaseError> {
        let para = paragraphs(text).next().ok_or(ReleaseError::Empty)?;
        let mut fields = fields(para);
        let by_hash = fields
            .get("acquire-by-hash")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("yes"));
        let list = fields.remove("sha256").ok_or(ReleaseError::NoSha256List)?;
        let mut sha256 = BTreeMap::new();
        for line in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let bad_line = || ReleaseError::BadLine { line: line.into() };
            let mut it = line.split_whitespace();
            let (Some(hex), Some(size), Some(path), None) =
                (it.next(), it.next(), it.next(), it.next())
            else {
                return Err(bad_line());
            };
            let sha = Sha256::from_hex(hex).ok_or_else(bad_line)?;
            let size = size
                .parse()
                .map_err(|_| ReleaseError::BadSize { line: line.into() })?;
            sha256.insert(path.to_string(), (size, sha));
        }
        Ok(Release {
            fields,
            by_hash,
            sha256,
        })
    }
}

/// Decompresses an index file by its name (see [`crate::compress`]; at most
/// [`MAX_INDEX`] bytes) into text.
pub fn decompress(name: &str, bytes: Vec<u8>) -> Result<String, IndexError> {
    let out = if crate::compress::is_compressed(name) {
        crate::compress::decompress(name, &bytes, MAX_INDEX)?
    } else {
        bytes
    };
    String::from_utf8(out).map_err(|_| IndexError::NotUtf8 { name: name.into() })
}

/// The largest index file accepted once decompressed (Debian's whole `main`
/// for one architecture is under 100 MiB). It is also the memory one index
/// may take while it is decompressed and parsed, on either side.
pub const MAX_INDEX: u64 = 512 << 20;

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn paragraphs_and_fields() {
        let text = "Package: a\nDescription: x\n y\n\tz\n\n\n\nPackage: b\nSIZE: 4\n\n";
        let p: Vec<&str> = paragraphs(text).collect();
        assert_eq!(p.len(), 2);
        let f = fields(p[0]);
        assert_eq!(f["package"], "a");
        assert_eq!(f["description"], "x\n y\n\tz");
        assert_eq!(fields(p[1])["size"], "4");
    }

    #[test]
    fn release_parse() {
        let zero = "0".repeat(64);
        let r = Release::parse(&format!(
            "Origin: x\nAcquire-By-Hash: yes\nSHA256:\n {zero} 12 main/binary-amd64/Packages\n"
        ))
        .unwrap();
        assert!(r.by_hash);
        assert_eq!(r.sha256["main/binary-amd64/Packages"].0, 12);
        assert_eq!(r.fields["origin"], "x");
        assert!(!r.fields.contains_key("sha256"));
        assert_eq!(
            Release::parse("Origin: x\n").unwrap_err(),
            ReleaseError::NoSha256List
        );
        assert_eq!(Release::parse("\n\n").unwrap_err(), ReleaseError::Empty);
        assert!(matches!(
            Release::parse(&format!("SHA256:\n {zero} twelve p\n")),
            Err(ReleaseError::BadSize { .. })
        ));
        assert!(matches!(
            Release::parse(&format!("SHA256:\n {zero} 1 p extra\n")),
            Err(ReleaseError::BadLine { .. })
        ));
        assert!(matches!(
            Release::parse("SHA256:\n abcd 1 p\n"),
            Err(ReleaseError::BadLine { .. })
        ));
    }

    #[test]
    fn decompress_by_name() {
        let text = "Package: a\n";
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(text.as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 6);
        xz.write_all(text.as_bytes()).unwrap();
        let xz = xz.finish().unwrap();
        assert_eq!(decompress("Packages.gz", gz.clone()).unwrap(), text);
        assert_eq!(decompress("Packages.xz", xz).unwrap(), text);
        assert_eq!(decompress("Packages", text.into()).unwrap(), text);
        assert!(matches!(
            decompress("Packages.xz", gz),
            Err(IndexError::Decompress(DecompressError::Corrupt { .. }))
        ));
        assert!(matches!(
            decompress("Packages", vec![0xff, 0xfe]),
            Err(IndexError::NotUtf8 { .. })
        ));
    }
}
