//! RPM (yum/dnf) repositories: `repodata/repomd.xml` and the checksums
//! repository metadata gives.
//!
//! Spec: the rpm-md format as createrepo_c writes it and dnf/libsolv read it
//! (<https://github.com/rpm-software-management/createrepo_c>). `repomd.xml`
//! has a `<repomd>` root with one `<data type="primary|filelists|…">` per
//! metadata file: `<location href="repodata/…"/>`, `<checksum type="…">hex`
//! of the file as stored, optional `<size>`. Checksum types are `sha1` (also
//! spelt `sha`), `sha256` and `sha512` ([`Checksum`], hashed with [`Hasher`]).
//!
//! ferry-out reads `repomd.xml` to find and verify the metadata it ships;
//! ferry-in reads it again to check every metadata file of a generation.
//! `xml:base` locations (metadata elsewhere) are refused.

/// Why a checksum from repository metadata is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChecksumError {
    /// A `type` other than `sha`/`sha1`, `sha256` or `sha512` (such as `md5`).
    #[error("checksum type {0:?} is not supported (sha1, sha256, sha512 are)")]
    UnsupportedKind(String),
    /// The digest is not the right number of hex digits for its type.
    #[error("{kind} checksum {hex:?} is not {want} hex digits")]
    BadHex {
        /// The checksum type.
        kind: ChecksumKind,
        /// The text given.
        hex: String,
        /// How many hex digits the type has.
        want: usize,
    },
}

/// The checksum types repository metadata may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChecksumKind {
    /// SHA-1 (`sha1`, also spelt `sha`).
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-512.
    Sha512,
}

impl ChecksumKind {
    /// From a `type` attribute; an unknown type is an error, never a default.
    pub fn parse(kind: &str) -> std::result::Result<ChecksumKind, ChecksumError> {
        match kind {
            "sha" | "sha1" => Ok(ChecksumKind::Sha1),
            "sha256" => Ok(ChecksumKind::Sha256),
            "sha512" => Ok(ChecksumKind::Sha512),
            other => Err(ChecksumError::UnsupportedKind(other.to_string())),
        }
    }

    /// The canonical name (`sha1`, `sha256`, `sha512`).
    pub fn name(self) -> &'static str {
        match self {
            ChecksumKind::Sha1 => "sha1",
            ChecksumKind::Sha256 => "sha256",
            ChecksumKind::Sha512 => "sha512",
        }
    }

    /// The number of hex digits of a digest of this type.
    pub fn hex_len(self) -> usize {
        match self {
            ChecksumKind::Sha1 => 40,
            ChecksumKind::Sha256 => 64,
            ChecksumKind::Sha512 => 128,
        }
    }
}

impl std::fmt::Display for ChecksumKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A checksum as repository metadata gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checksum {
    /// The type.
    pub kind: ChecksumKind,
    /// Lower-case hex.
    pub hex: String,
}

impl Checksum {
    /// From a `type` attribute and hex text; an error for unsupported types
    /// and for hex of the wrong length.
    pub fn new(kind: &str, hex: &str) -> std::result::Result<Checksum, ChecksumError> {
        Checksum::of_kind(ChecksumKind::parse(kind)?, hex)
    }

    /// From a known type and hex text; an error for hex of the wrong length.
    pub fn of_kind(kind: ChecksumKind, hex: &str) -> std::result::Result<Checksum, ChecksumError> {
        let hex = hex.trim().to_ascii_lowercase();
        let want = kind.hex_len();
        if hex.len() != want || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ChecksumError::BadHex { kind, hex, want });
        }
        Ok(Checksum { kind, hex })
    }

    /// The checksum of `data` of the same type.
    pub fn of(&self, data: &[u8]) -> String {
        let mut h = Hasher::new(self.kind);
        h.update(data);
        h.finish()
    }
}

impl std::fmt::Display for Checksum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.kind, self.hex)
    }
}

/// A streaming hasher of one of the supported types.
pub enum Hasher {
    /// SHA-1.
    Sha1(sha1::Sha1),
    /// SHA-256.
    Sha256(sha2::Sha256),
    /// SHA-512.
    Sha512(sha2::Sha512),
}

impl Hasher {
    /// A hasher of type `kind`.
    pub fn new(kind: ChecksumKind) -> Hasher {
        use sha2::Digest;
        match kind {
            ChecksumKind::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            ChecksumKind::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            ChecksumKind::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }
    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        use sha2::Digest;
        match self {
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }
    /// The hex digest.
    pub fn finish(self) -> String {
        use sha2::Digest;
        match self {
            Hasher::Sha1(h) => hex::encode(h.finalize()),
            Hasher::Sha256(h) => hex::encode(h.finalize()),
            Hasher::Sha512(h) => hex::encode(h.finalize()),
        }
    }
}

/// A metadata file `repomd.xml` lists.
#[derive(Debug, Clone)]
pub struct RepomdEntry {
    /// `primary`, `filelists`, …
    pub kind: String,
    /// `repodata/…`.
    pub href: String,
    /// Checksum of the file as stored.
    pub checksum: Checksum,
    /// Size as stored, when given.
    pub size: Option<u64>,
}

/// Why `repomd.xml` is refused.
#[derive(Debug, thiserror::Error)]
pub enum RepomdError {
    /// The bytes are not UTF-8.
    #[error("repomd.xml is not UTF-8")]
    NotUtf8,
    /// The text is not XML.
    #[error("repomd.xml is not XML: {0}")]
    NotXml(String),
    /// The root element is not `<repomd>`.
    #[error("repomd.xml: the root element is <{0}>, not <repomd>")]
    WrongRoot(String),
    /// A `<data>` element lacks a child or attribute it needs.
    #[error("repomd.xml: <data type={kind:?}> has no {missing}")]
    Missing {
        /// The `type` of the `<data>` element.
        kind: String,
        /// What is missing (`<location>`, `location href`, `<checksum>`).
        missing: &'static str,
    },
    /// A location with `xml:base` (metadata elsewhere), which is refused.
    #[error("repomd.xml: <data type={0:?}> has an xml:base location, which is not supported")]
    XmlBase(String),
    /// A checksum of an unsupported type or malformed.
    #[error("repomd.xml: {href}: {source}")]
    Checksum {
        /// The metadata file.
        href: String,
        /// Why.
        source: ChecksumError,
    },
    /// A `<size>` that is not a number.
    #[error("repomd.xml: {href}: size {text:?} is not a number")]
    BadSize {
        /// The metadata file.
        href: String,
        /// The text given.
        text: String,
    },
}

/// Parses `repomd.xml`.
pub fn parse_repomd(xml: &[u8]) -> std::result::Result<Vec<RepomdEntry>, RepomdError> {
    let text = std::str::from_utf8(xml).map_err(|_| RepomdError::NotUtf8)?;
    let doc = roxmltree::Document::parse(text).map_err(|e| RepomdError::NotXml(e.to_string()))?;
    let root = doc.root_element();
    if root.tag_name().name() != "repomd" {
        return Err(RepomdError::WrongRoot(root.tag_name().name().to_string()));
    }
    let mut out = Vec::new();
    for data in root.children().filter(|n| n.has_tag_name("data")) {
        let kind = data.attribute("type").unwrap_or("").to_string();
        let child = |name: &str| data.children().find(|n| n.has_tag_name(name));
        let missing = |missing| RepomdError::Missing {
            kind: kind.clone(),
            missing,
        };
        let loc = child("location").ok_or_else(|| missing("<location>"))?;
        if loc.attribute("xml:base").is_some() || loc.attribute("base").is_some() {
            return Err(RepomdError::XmlBase(kind));
        }
        let href = loc
            .attribute("href")
            .ok_or_else(|| missing("location href"))?
            .to_string();
        let ck = child("checksum").ok_or_else(|| missing("<checksum>"))?;
        let checksum = Checksum::new(ck.attribute("type").unwrap_or(""), ck.text().unwrap_or(""))
            .map_err(|source| RepomdError::Checksum {
            href: href.clone(),
            source,
        })?;
        let size = child("size")
            .and_then(|n| n.text())
            .map(|t| {
                t.trim().parse::<u64>().map_err(|_| RepomdError::BadSize {
                    href: href.clone(),
                    text: t.to_string(),
                })
            })
            .transpose()?;
        out.push(RepomdEntry {
            kind,
            href,
            checksum,
            size,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums() {
        assert_eq!(
            Checksum::new("md5", "00"),
            Err(ChecksumError::UnsupportedKind("md5".into()))
        );
        assert_eq!(
            ChecksumKind::parse("sha384"),
            Err(ChecksumError::UnsupportedKind("sha384".into()))
        );
        let e = Checksum::new("sha256", "abc").unwrap_err();
        assert!(matches!(e, ChecksumError::BadHex { want: 64, .. }), "{e}");
        assert!(e.to_string().contains("64 hex digits"), "{e}");
        let c = Checksum::new("sha", &"A".repeat(40)).unwrap();
        assert_eq!(c.kind, ChecksumKind::Sha1);
        assert_eq!(c.hex, "a".repeat(40));
        let c = Checksum::new("sha256", &"0".repeat(64)).unwrap();
        assert_eq!(
            c.of(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(c.to_string(), format!("sha256:{}", "0".repeat(64)));
        let mut h = Hasher::new(ChecksumKind::Sha1);
        h.update(b"a");
        h.update(b"bc");
        assert_eq!(h.finish(), "a9993e364706816aba3e25717850c26c9cd0d89d");
    }

    #[test]
    fn repomd() {
        let xml = format!(
            r#"<?xml version="1.0"?><repomd xmlns="http://linux.duke.edu/metadata/repo">
<data type="primary"><checksum type="sha256">{}</checksum>
<location href="repodata/p.xml.gz"/><size>12</size></data>
<data type="other"><checksum type="sha">{}</checksum>
<location href="repodata/o.xml.gz"/></data></repomd>"#,
            "a".repeat(64),
            "b".repeat(40)
        );
        let e = parse_repomd(xml.as_bytes()).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].kind, "primary");
        assert_eq!(e[0].href, "repodata/p.xml.gz");
        assert_eq!(e[0].size, Some(12));
        assert_eq!(e[1].checksum.kind, ChecksumKind::Sha1);
        assert_eq!(e[1].size, None);
        let bad = xml.replace("<size>12</size>", "<size>x</size>");
        let err = parse_repomd(bad.as_bytes()).unwrap_err();
        assert!(
            matches!(&err, RepomdError::BadSize { href, .. } if href == "repodata/p.xml.gz"),
            "{err}"
        );
        let err = parse_repomd(b"<other/>").unwrap_err();
        assert!(
            matches!(&err, RepomdError::WrongRoot(r) if r == "other"),
            "{err}"
        );
        assert!(matches!(
            parse_repomd(b"not xml"),
            Err(RepomdError::NotXml(_))
        ));
        let md5 = xml.replace(r#"type="sha""#, r#"type="md5""#);
        assert!(matches!(
            parse_repomd(md5.as_bytes()),
            Err(RepomdError::Checksum {
                source: ChecksumError::UnsupportedKind(_),
                ..
            })
        ));
        let based = xml.replace(
            r#"<location href"#,
            r#"<location xml:base="http://x/" href"#,
        );
        assert!(matches!(
            parse_repomd(based.as_bytes()),
            Err(RepomdError::XmlBase(_))
        ));
    }
}
