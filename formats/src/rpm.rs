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

use anyhow::{anyhow, bail, Context, Result};

/// A checksum as repository metadata gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checksum {
    /// `sha256`, `sha1` or `sha512`.
    pub kind: String,
    /// Lower-case hex.
    pub hex: String,
}

impl Checksum {
    /// From a `type` attribute and hex text; an error for unsupported types.
    pub fn new(kind: &str, hex: &str) -> Result<Checksum> {
        let kind = match kind {
            "sha" | "sha1" => "sha1",
            "sha256" => "sha256",
            "sha512" => "sha512",
            other => bail!("checksum type {other:?} is not supported (sha1, sha256, sha512 are)"),
        };
        let hex = hex.trim().to_ascii_lowercase();
        let want = match kind {
            "sha1" => 40,
            "sha256" => 64,
            _ => 128,
        };
        if hex.len() != want || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("{kind} checksum {hex:?} is not {want} hex digits");
        }
        Ok(Checksum {
            kind: kind.to_string(),
            hex,
        })
    }

    /// The checksum of `data` of the same type.
    pub fn of(&self, data: &[u8]) -> String {
        let mut h = Hasher::new(&self.kind);
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
    /// For a type [`Checksum::new`] accepted.
    pub fn new(kind: &str) -> Hasher {
        use sha2::Digest;
        match kind {
            "sha1" => Hasher::Sha1(sha1::Sha1::new()),
            "sha512" => Hasher::Sha512(sha2::Sha512::new()),
            _ => Hasher::Sha256(sha2::Sha256::new()),
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

/// Parses `repomd.xml`.
pub fn parse_repomd(xml: &[u8]) -> Result<Vec<RepomdEntry>> {
    let text = std::str::from_utf8(xml).context("repomd.xml is not UTF-8")?;
    let doc = roxmltree::Document::parse(text).context("repomd.xml is not XML")?;
    let root = doc.root_element();
    if root.tag_name().name() != "repomd" {
        bail!(
            "repomd.xml: the root element is <{}>, not <repomd>",
            root.tag_name().name()
        );
    }
    let mut out = Vec::new();
    for data in root.children().filter(|n| n.has_tag_name("data")) {
        let kind = data.attribute("type").unwrap_or("").to_string();
        let child = |name: &str| data.children().find(|n| n.has_tag_name(name));
        let loc = child("location")
            .ok_or_else(|| anyhow!("repomd.xml: <data type={kind:?}> has no <location>"))?;
        if loc.attribute("xml:base").is_some() || loc.attribute("base").is_some() {
            bail!(
                "repomd.xml: <data type={kind:?}> has an xml:base location, which is not supported"
            );
        }
        let href = loc
            .attribute("href")
            .ok_or_else(|| anyhow!("repomd.xml: <data type={kind:?}> has no location href"))?
            .to_string();
        let ck = child("checksum")
            .ok_or_else(|| anyhow!("repomd.xml: <data type={kind:?}> has no <checksum>"))?;
        let checksum = Checksum::new(ck.attribute("type").unwrap_or(""), ck.text().unwrap_or(""))
            .with_context(|| format!("repomd.xml: {href}"))?;
        let size = child("size")
            .and_then(|n| n.text())
            .map(|t| {
                t.trim()
                    .parse::<u64>()
                    .with_context(|| format!("repomd.xml: {href}: size {t:?} is not a number"))
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
        assert!(Checksum::new("md5", "00").is_err());
        let e = Checksum::new("sha256", "abc").unwrap_err();
        assert!(e.to_string().contains("64 hex digits"), "{e}");
        let c = Checksum::new("sha", &"A".repeat(40)).unwrap();
        assert_eq!(c.kind, "sha1");
        assert_eq!(c.hex, "a".repeat(40));
        let c = Checksum::new("sha256", &"0".repeat(64)).unwrap();
        assert_eq!(
            c.of(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(c.to_string(), format!("sha256:{}", "0".repeat(64)));
        let mut h = Hasher::new("sha1");
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
        assert_eq!(e[1].checksum.kind, "sha1");
        assert_eq!(e[1].size, None);
        let bad = xml.replace("<size>12</size>", "<size>x</size>");
        let err = format!("{:#}", parse_repomd(bad.as_bytes()).unwrap_err());
        assert!(
            err.contains("repodata/p.xml.gz") && err.contains("not a number"),
            "{err}"
        );
        let err = parse_repomd(b"<other/>").unwrap_err();
        assert!(err.to_string().contains("<other>"), "{err}");
        assert!(parse_repomd(b"not xml").is_err());
        let based = xml.replace(
            r#"<location href"#,
            r#"<location xml:base="http://x/" href"#,
        );
        assert!(parse_repomd(based.as_bytes()).is_err());
    }
}
