//! OCI images: digests, repository names and tags, manifests, and the
//! catalog layout of an `oci` source.
//!
//! Specs: the OCI image spec (<https://github.com/opencontainers/image-spec>:
//! descriptors, manifests, indexes, media types) and the distribution spec
//! (<https://github.com/opencontainers/distribution-spec>: repository name
//! and tag grammar).
//!
//! ferry-out (`source::oci`) pulls manifests and blobs from a registry and
//! writes, per source:
//!
//! - `blobs/sha256/<hex>`: a blob (config or layer), byte-exact
//!   ([`blob_path`]);
//! - `manifests/sha256/<hex>`: a manifest or an index, byte-exact JSON
//!   ([`manifest_path`]);
//! - `repos/<repository>/_tags/<tag>`: the tagged manifest's digest,
//!   `sha256:<hex>` and optionally one newline ([`tag_path`], [`tag_file`]).
//!
//! ferry-in (`store::oci`, `serve`, `registry_push`) reads the same layout
//! back ([`parse_path`], [`parse_tag_file`]) and serves or pushes it. Only
//! SHA-256 digests are held; a digest is written `sha256:<64 lower-case
//! hex>` ([`Digest`]).

use ferry_protocol::id::Sha256;
use serde::Deserialize;
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// The media type of an OCI image index.
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// The media type of an OCI image manifest.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// The media type of a Docker manifest list (an index).
pub const DOCKER_LIST_MEDIA_TYPE: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
/// The media type of a Docker image manifest, schema 2.
pub const DOCKER_MANIFEST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// The `Accept` header a client sends for a manifest: every type above.
pub const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// The largest manifest a store holds (registries commonly accept 4 MiB).
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;
/// The directory of a repository's tags.
pub const TAGS_DIR: &str = "_tags";
/// Every blob path starts with this.
pub const BLOBS_PREFIX: &str = "blobs/sha256/";
/// Every manifest path starts with this.
pub const MANIFESTS_PREFIX: &str = "manifests/sha256/";

/// Why a text is not a digest.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DigestError {
    /// Not `sha256:…`: another algorithm, or no algorithm at all.
    #[error("{digest:?} is not a sha256 digest (sha256:<64 lower-case hex>)")]
    Algorithm {
        /// The text.
        digest: String,
    },
    /// `sha256:` followed by something other than 64 lower-case hex digits.
    #[error("{digest:?}: a sha256 digest has 64 lower-case hex digits")]
    Hex {
        /// The text.
        digest: String,
    },
}

/// Why a repository name or a tag is refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum NameError {
    /// Not `[a-z0-9]+([._-][a-z0-9]+)*` components joined by `/`, or longer
    /// than 255 bytes.
    #[error(
        "{name:?} is not a repository name (lowercase letters and digits, \
         '.', '_' or '-' between them, components joined by '/', at most 255 bytes)"
    )]
    Repository {
        /// The name.
        name: String,
    },
    /// Not `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
    #[error(
        "{tag:?} is not a tag (letters, digits, '_', '.', '-', not starting with \
         '.' or '-', at most 128)"
    )]
    Tag {
        /// The tag.
        tag: String,
    },
}

/// Why bytes are not a manifest ferry can read.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ManifestError {
    /// Not JSON at all.
    #[error("not JSON: {reason}")]
    NotJson {
        /// What the JSON parser said.
        reason: String,
    },
    /// JSON, but not an object.
    #[error("not a JSON object")]
    NotObject,
    /// A JSON object, but a field a manifest has is missing or of the wrong
    /// type.
    #[error("not a manifest: {reason}")]
    Shape {
        /// What the JSON parser said.
        reason: String,
    },
    /// `mediaType` is there but is not a string.
    #[error("its mediaType is not a string")]
    MediaTypeNotString,
    /// `schemaVersion` is not 2.
    #[error("it has schemaVersion {found} (only 2 is supported)")]
    SchemaVersion {
        /// The version found (0 when missing).
        found: u32,
    },
}

/// A content digest, `sha256:<hex>`. Parsing accepts only the canonical
/// form (lower-case hex), the one registries compute and paths hold.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Digest(Sha256);

impl Digest {
    /// Parses `sha256:<64 lower-case hex>`.
    pub fn parse(s: &str) -> Result<Digest, DigestError> {
        let Some(hex) = s.strip_prefix("sha256:") else {
            return Err(DigestError::Algorithm { digest: s.into() });
        };
        Digest::from_hex(hex).ok_or_else(|| DigestError::Hex { digest: s.into() })
    }

    /// From 64 lower-case hex digits.
    pub fn from_hex(hex: &str) -> Option<Digest> {
        if !is_hex64(hex) {
            return None;
        }
        Sha256::from_hex(hex).map(Digest)
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(Sha256::of(bytes))
    }

    /// The SHA-256 it names.
    pub fn sha256(&self) -> Sha256 {
        self.0
    }

    /// The lower-case hex, without `sha256:`.
    pub fn hex(&self) -> String {
        self.0.to_hex()
    }

    /// The catalog path of the blob with this digest.
    pub fn blob_path(&self) -> String {
        blob_path(&self.hex())
    }

    /// The catalog path of the manifest with this digest.
    pub fn manifest_path(&self) -> String {
        manifest_path(&self.hex())
    }
}

impl From<Sha256> for Digest {
    fn from(s: Sha256) -> Digest {
        Digest(s)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.0.to_hex())
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Digest, DigestError> {
        Digest::parse(s)
    }
}

/// 64 lower-case hex digits.
pub fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whether `tag` is one of cosign's or the referrers fallback's own tags
/// (`sha256-<64 hex>`, with or without a suffix such as `.sig`): those are
/// artifacts attached to an image, not images.
pub fn is_artifact_tag(tag: &str) -> bool {
    tag.strip_prefix("sha256-")
        .is_some_and(|rest| is_hex64(rest.split('.').next().unwrap_or("")))
}

/// The hex of `sha256:<64 lower-case hex>`, borrowed; `None` for anything
/// else (see [`Digest::parse`] for the reason).
pub fn parse_digest(s: &str) -> Option<&str> {
    s.strip_prefix("sha256:").filter(|h| is_hex64(h))
}

/// What an object path of an OCI source stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OciPath<'a> {
    /// `blobs/sha256/<hex>`.
    Blob(&'a str),
    /// `manifests/sha256/<hex>`.
    Manifest(&'a str),
    /// `repos/<repo>/_tags/<tag>`.
    Tag {
        /// The repository name.
        repo: &'a str,
        /// The tag.
        tag: &'a str,
    },
}

/// Reads an object path of an OCI source; `None` if it has none of the forms.
pub fn parse_path(path: &str) -> Option<OciPath<'_>> {
    if let Some(hex) = path.strip_prefix(BLOBS_PREFIX) {
        return is_hex64(hex).then_some(OciPath::Blob(hex));
    }
    if let Some(hex) = path.strip_prefix(MANIFESTS_PREFIX) {
        return is_hex64(hex).then_some(OciPath::Manifest(hex));
    }
    let rest = path.strip_prefix("repos/")?;
    let (repo, tag) = rest.split_once(&format!("/{TAGS_DIR}/"))?;
    (valid_repo(repo) && valid_tag(tag)).then_some(OciPath::Tag { repo, tag })
}

/// The path of blob `hex`.
pub fn blob_path(hex: &str) -> String {
    format!("{BLOBS_PREFIX}{hex}")
}

/// The path of manifest `hex`.
pub fn manifest_path(hex: &str) -> String {
    format!("{MANIFESTS_PREFIX}{hex}")
}

/// The path of `tag` in `repo`.
pub fn tag_path(repo: &str, tag: &str) -> String {
    format!("repos/{repo}/{TAGS_DIR}/{tag}")
}

/// Every tag path of `repo` starts with this.
pub fn tags_prefix(repo: &str) -> String {
    format!("repos/{repo}/{TAGS_DIR}/")
}

/// An OCI repository name: components `[a-z0-9]+([._-][a-z0-9]+)*` joined by
/// `/` (at most 255 bytes in all).
pub fn valid_repo(name: &str) -> bool {
    !name.is_empty() && name.len() <= 255 && name.split('/').all(valid_component)
}

fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    // A separator is always between two alphanumerics.
    b.windows(2).all(|w| alnum(w[0]) || alnum(w[1]))
        && b.iter()
            .all(|&x| alnum(x) || matches!(x, b'.' | b'_' | b'-'))
}

/// A tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&x| x.is_ascii_alphanumeric() || matches!(x, b'.' | b'_' | b'-'))
}

/// [`valid_repo`], as a `Result`.
pub fn check_repo(name: &str) -> Result<(), NameError> {
    if valid_repo(name) {
        Ok(())
    } else {
        Err(NameError::Repository { name: name.into() })
    }
}

/// [`valid_tag`], as a `Result`.
pub fn check_tag(tag: &str) -> Result<(), NameError> {
    if valid_tag(tag) {
        Ok(())
    } else {
        Err(NameError::Tag { tag: tag.into() })
    }
}

/// The content of a tag file naming `digest`: `sha256:<hex>\n`.
pub fn tag_file(digest: &Digest) -> Vec<u8> {
    format!("{digest}\n").into_bytes()
}

/// The manifest digest a tag file holds: `sha256:<hex>`, optionally followed
/// by one newline. Returns the hex.
pub fn parse_tag_file(bytes: &[u8]) -> Option<&str> {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    parse_digest(std::str::from_utf8(bytes).ok()?)
}

/// The media type of a manifest: its `mediaType`, else an index if it has a
/// `manifests` array, else an image manifest.
pub fn media_type(manifest: &[u8]) -> Result<String, ManifestError> {
    let v: serde_json::Value =
        serde_json::from_slice(manifest).map_err(|e| ManifestError::NotJson {
            reason: e.to_string(),
        })?;
    let Some(obj) = v.as_object() else {
        return Err(ManifestError::NotObject);
    };
    match obj.get("mediaType") {
        Some(serde_json::Value::String(t)) => return Ok(t.clone()),
        Some(_) => return Err(ManifestError::MediaTypeNotString),
        None => {}
    }
    Ok(if obj.get("manifests").is_some_and(|m| m.is_array()) {
        INDEX_MEDIA_TYPE
    } else {
        MANIFEST_MEDIA_TYPE
    }
    .to_string())
}

/// A descriptor: what a manifest says of another manifest or a blob. Only
/// the fields ferry reads; the digest is kept as written.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Descriptor {
    /// The content's digest, as written (see [`Digest::parse`]).
    pub digest: String,
    /// The platform of an index entry.
    #[serde(default)]
    pub platform: Option<Platform>,
}

/// The platform of an index entry.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Platform {
    /// Such as `linux`.
    pub os: String,
    /// Such as `amd64`.
    pub architecture: String,
    /// Such as `v8`.
    #[serde(default)]
    pub variant: Option<String>,
}

impl Platform {
    /// `os/architecture[/variant]`, as docker and skopeo write it.
    pub fn full(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}/{}/{v}", self.os, self.architecture),
            None => self.os_arch(),
        }
    }

    /// `os/architecture`.
    pub fn os_arch(&self) -> String {
        format!("{}/{}", self.os, self.architecture)
    }
}

/// A manifest, an index or an (early draft) artifact manifest: the
/// descriptors it holds, whichever kind it is.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    /// `schemaVersion` (0 when missing).
    #[serde(default, rename = "schemaVersion")]
    pub schema_version: u32,
    /// An index's manifests.
    #[serde(default)]
    pub manifests: Option<Vec<Descriptor>>,
    /// An image manifest's config.
    #[serde(default)]
    pub config: Option<Descriptor>,
    /// An image manifest's layers.
    #[serde(default)]
    pub layers: Option<Vec<Descriptor>>,
    /// An artifact manifest's blobs.
    #[serde(default)]
    pub blobs: Option<Vec<Descriptor>>,
}

impl Manifest {
    /// Reads the descriptors of a manifest or an index, whatever its
    /// `schemaVersion`.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        serde_json::from_slice(bytes).map_err(|e| {
            if e.is_syntax() || e.is_eof() {
                ManifestError::NotJson {
                    reason: e.to_string(),
                }
            } else {
                ManifestError::Shape {
                    reason: e.to_string(),
                }
            }
        })
    }

    /// [`Manifest::parse`], refusing any `schemaVersion` but 2.
    pub fn parse_v2(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let m = Manifest::parse(bytes)?;
        if m.schema_version != 2 {
            return Err(ManifestError::SchemaVersion {
                found: m.schema_version,
            });
        }
        Ok(m)
    }

    /// The blobs it refers to: config, layers, then an artifact's blobs.
    pub fn blob_descriptors(&self) -> impl Iterator<Item = &Descriptor> {
        self.config
            .iter()
            .chain(self.layers.iter().flatten())
            .chain(self.blobs.iter().flatten())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn artifact_tags_are_sha256_dash_hex_with_or_without_a_suffix() {
        assert!(is_artifact_tag(&format!("sha256-{H}.sig")));
        assert!(is_artifact_tag(&format!("sha256-{H}")));
        assert!(!is_artifact_tag("sha256-ab.sig"));
        assert!(!is_artifact_tag(&format!("v1-{H}")));
        assert!(!is_artifact_tag("latest"));
    }

    #[test]
    fn paths() {
        assert_eq!(parse_path(&blob_path(H)), Some(OciPath::Blob(H)));
        assert_eq!(parse_path(&manifest_path(H)), Some(OciPath::Manifest(H)));
        assert_eq!(
            parse_path("repos/library/demo/_tags/v1.0"),
            Some(OciPath::Tag {
                repo: "library/demo",
                tag: "v1.0"
            })
        );
        assert_eq!(
            parse_path(&tag_path("a/b", "v1")),
            Some(OciPath::Tag {
                repo: "a/b",
                tag: "v1"
            })
        );
        assert!(tag_path("a", "v1").starts_with(&tags_prefix("a")));
        for bad in [
            "blobs/sha256/abc",
            &format!("blobs/sha256/{}", H.to_uppercase()),
            &format!("blobs/sha512/{H}"),
            &format!("blobs/sha256/{H}/x"),
            "manifests/x",
            "repos/Library/_tags/v1",
            "repos/a//b/_tags/v1",
            "repos/_tags/v1",
            "repos/a/_tags/.v1",
            "repos/a/_tags/",
            "repos/a/_tags/v1/x",
            "repos/a-/_tags/v1",
            "other",
        ] {
            assert_eq!(parse_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn names_and_tags() {
        assert!(valid_repo("a.b_c-d/e9"));
        assert!(!valid_repo("a..b"));
        assert!(!valid_repo("_a"));
        assert!(!valid_repo(&"a".repeat(256)));
        assert!(valid_tag("_x"));
        assert!(valid_tag(&"a".repeat(128)));
        assert!(!valid_tag(&"a".repeat(129)));
        assert!(!valid_tag("-x"));
        assert_eq!(check_repo("ok/name"), Ok(()));
        assert_eq!(
            check_repo("Upper"),
            Err(NameError::Repository {
                name: "Upper".into()
            })
        );
        assert_eq!(check_tag(".x"), Err(NameError::Tag { tag: ".x".into() }));
    }

    #[test]
    fn digests() {
        let d = Digest::parse(&format!("sha256:{H}")).unwrap();
        assert_eq!(d.hex(), H);
        assert_eq!(d.to_string(), format!("sha256:{H}"));
        assert_eq!(d.blob_path(), blob_path(H));
        assert_eq!(d.manifest_path(), manifest_path(H));
        assert_eq!(format!("sha256:{H}").parse::<Digest>(), Ok(d));
        assert_eq!(Digest::of(b"x").sha256(), Sha256::of(b"x"));
        assert!(matches!(
            Digest::parse(&format!("sha512:{H}")),
            Err(DigestError::Algorithm { .. })
        ));
        assert!(matches!(
            Digest::parse(H),
            Err(DigestError::Algorithm { .. })
        ));
        for bad in ["sha256:12", &format!("sha256:{}", H.to_uppercase())] {
            assert!(
                matches!(Digest::parse(bad), Err(DigestError::Hex { .. })),
                "{bad}"
            );
        }
        assert_eq!(parse_digest(&format!("sha256:{H}")), Some(H));
        assert_eq!(parse_digest("sha256:12"), None);
    }

    #[test]
    fn tag_files_and_media_types() {
        let d = Digest::from_hex(H).unwrap();
        assert_eq!(parse_tag_file(&tag_file(&d)), Some(H));
        assert_eq!(parse_tag_file(format!("sha256:{H}").as_bytes()), Some(H));
        assert_eq!(parse_tag_file(format!("sha256:{H}\n\n").as_bytes()), None);
        assert_eq!(parse_tag_file(format!("sha512:{H}").as_bytes()), None);
        assert_eq!(
            media_type(br#"{"mediaType":"application/x"}"#).unwrap(),
            "application/x"
        );
        assert_eq!(
            media_type(br#"{"manifests":[]}"#).unwrap(),
            INDEX_MEDIA_TYPE
        );
        assert_eq!(
            media_type(br#"{"layers":[]}"#).unwrap(),
            MANIFEST_MEDIA_TYPE
        );
        assert_eq!(media_type(b"[]"), Err(ManifestError::NotObject));
        assert!(matches!(
            media_type(b"{"),
            Err(ManifestError::NotJson { .. })
        ));
        assert_eq!(
            media_type(br#"{"mediaType":1}"#),
            Err(ManifestError::MediaTypeNotString)
        );
    }

    #[test]
    fn manifests() {
        let index = br#"{"schemaVersion":2,"manifests":[
            {"digest":"sha256:aa","platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
            {"digest":"sha256:bb"}]}"#;
        let m = Manifest::parse_v2(index).unwrap();
        let list = m.manifests.as_ref().unwrap();
        assert_eq!(list[0].platform.as_ref().unwrap().full(), "linux/arm64/v8");
        assert_eq!(list[0].platform.as_ref().unwrap().os_arch(), "linux/arm64");
        assert_eq!(list[1].platform, None);
        assert_eq!(m.blob_descriptors().count(), 0);
        let image = br#"{"schemaVersion":2,"config":{"digest":"c"},"layers":[{"digest":"l1"},{"digest":"l2"}]}"#;
        let image = Manifest::parse_v2(image).unwrap();
        let blobs: Vec<&str> = image
            .blob_descriptors()
            .map(|d| d.digest.as_str())
            .collect();
        assert_eq!(blobs, ["c", "l1", "l2"]);
        assert_eq!(
            Manifest::parse_v2(br#"{"schemaVersion":1}"#),
            Err(ManifestError::SchemaVersion { found: 1 })
        );
        assert!(Manifest::parse(br#"{"layers":[]}"#).is_ok());
        assert!(matches!(
            Manifest::parse(b"not json"),
            Err(ManifestError::NotJson { .. })
        ));
        assert!(matches!(
            Manifest::parse(br#"{"layers":[{"size":1}]}"#),
            Err(ManifestError::Shape { .. })
        ));
    }
}
