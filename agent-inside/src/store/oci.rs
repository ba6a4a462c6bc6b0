//! The OCI store: objects of `oci` sources at `GEN/oci/<source>/<path>`,
//! served by the OCI distribution pull API under `/v2/` (see `serve`).
//!
//! Paths within a source (docs/bundle-format.md §5.3):
//!
//! - `blobs/sha256/<hex>`: a blob (config or layer);
//! - `manifests/sha256/<hex>`: a manifest or an index, byte-exact JSON;
//! - `repos/<repository>/_tags/<tag>`: `sha256:<hex>` of the tagged manifest,
//!   optionally followed by a newline.
//!
//! A blob's or manifest's SHA-256 must be the hex of its path; a tag must name
//! a manifest of the same source. [`Store::check`] refuses anything else
//! before the bundle's chunks are even extracted; the build then checks what
//! only the bytes can tell (tag contents, manifests being JSON).

use super::{materialize, objects_of_kind, BuildCtx, Store};
use crate::layout::GEN_OCI;
use anyhow::{bail, Context, Result};
use ferry_protocol::catalog::{Catalog, Object, SourceKind};
use ferry_protocol::path::ObjectKey;

/// The media type of an image index.
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// The media type of an image manifest.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// The largest manifest held (registries commonly accept 4 MiB).
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;
/// The directory of repositories' tags within a repository.
pub const TAGS_DIR: &str = "_tags";

/// The OCI store.
pub struct OciStore;

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
    if let Some(hex) = path.strip_prefix("blobs/sha256/") {
        return is_hex64(hex).then_some(OciPath::Blob(hex));
    }
    if let Some(hex) = path.strip_prefix("manifests/sha256/") {
        return is_hex64(hex).then_some(OciPath::Manifest(hex));
    }
    let rest = path.strip_prefix("repos/")?;
    let (repo, tag) = rest.split_once(&format!("/{TAGS_DIR}/"))?;
    (valid_repo(repo) && valid_tag(tag)).then_some(OciPath::Tag { repo, tag })
}

/// The path of blob `hex`.
pub fn blob_path(hex: &str) -> String {
    format!("blobs/sha256/{hex}")
}

/// The path of manifest `hex`.
pub fn manifest_path(hex: &str) -> String {
    format!("manifests/sha256/{hex}")
}

/// The path of `tag` in `repo`.
pub fn tag_path(repo: &str, tag: &str) -> String {
    format!("repos/{repo}/{TAGS_DIR}/{tag}")
}

/// Every tag path of `repo` starts with this.
pub fn tags_prefix(repo: &str) -> String {
    format!("repos/{repo}/{TAGS_DIR}/")
}

/// 64 lower-case hex digits.
pub fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `sha256:<64 lower-case hex>`: the hex.
pub fn parse_digest(s: &str) -> Option<&str> {
    s.strip_prefix("sha256:").filter(|h| is_hex64(h))
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

/// The manifest digest a tag file holds: `sha256:<hex>`, optionally followed
/// by one newline. Returns the hex.
pub fn parse_tag_file(bytes: &[u8]) -> Option<&str> {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    parse_digest(std::str::from_utf8(bytes).ok()?)
}

/// The media type of a manifest: its `mediaType`, else an index if it has a
/// `manifests` array, else an image manifest. An error if it is not a JSON
/// object or its `mediaType` is not a string.
pub fn media_type(manifest: &[u8]) -> Result<String, String> {
    let v: serde_json::Value =
        serde_json::from_slice(manifest).map_err(|e| format!("not JSON: {e}"))?;
    let Some(obj) = v.as_object() else {
        return Err("not a JSON object".into());
    };
    match obj.get("mediaType") {
        Some(serde_json::Value::String(t)) => return Ok(t.clone()),
        Some(_) => return Err("its mediaType is not a string".into()),
        None => {}
    }
    Ok(if obj.get("manifests").is_some_and(|m| m.is_array()) {
        INDEX_MEDIA_TYPE
    } else {
        MANIFEST_MEDIA_TYPE
    }
    .to_string())
}

impl Store for OciStore {
    fn kind(&self) -> SourceKind {
        SourceKind::Oci
    }

    fn check(&self, next: &Catalog) -> Result<()> {
        for (key, obj) in objects_of_kind(next, SourceKind::Oci) {
            let Object::File(f) = obj else {
                bail!("object {key}: an OCI source holds files only, not symbolic links");
            };
            match parse_path(&key.path) {
                None => bail!(
                    "object {key}: not a path of an OCI source (blobs/sha256/<hex>, \
                     manifests/sha256/<hex> or repos/<repository>/{TAGS_DIR}/<tag>)"
                ),
                Some(OciPath::Blob(hex) | OciPath::Manifest(hex)) => {
                    if f.sha256.to_hex() != hex {
                        bail!(ferry_protocol::Error::BadObject {
                            key: key.to_string(),
                            why: format!(
                                "its SHA-256 is {}, but its path names the digest sha256:{hex}",
                                f.sha256
                            ),
                        });
                    }
                    if matches!(parse_path(&key.path), Some(OciPath::Manifest(_)))
                        && f.size > MAX_MANIFEST_BYTES
                    {
                        bail!(
                            "object {key}: a manifest of {} bytes is larger than the {} allowed",
                            f.size,
                            MAX_MANIFEST_BYTES
                        );
                    }
                }
                Some(OciPath::Tag { .. }) => {
                    if !(71..=72).contains(&f.size) {
                        bail!(
                            "object {key}: a tag holds sha256:<hex> (71 or 72 bytes), not {} bytes",
                            f.size
                        );
                    }
                }
            }
        }
        Ok(())
    }

    fn build(&self, cx: &BuildCtx<'_>) -> Result<u64> {
        self.check(cx.next)?;
        let written = materialize(cx, SourceKind::Oci, GEN_OCI)?;
        for (key, obj) in objects_of_kind(cx.next, SourceKind::Oci) {
            let fs_path = cx.new_gen.join(GEN_OCI).join(&key.source).join(&key.path);
            match parse_path(&key.path) {
                Some(OciPath::Tag { .. }) => {
                    let bytes = std::fs::read(&fs_path)
                        .with_context(|| format!("cannot read {}", fs_path.display()))?;
                    let Some(hex) = parse_tag_file(&bytes) else {
                        bail!("object {key}: a tag must hold sha256:<64 lower-case hex>");
                    };
                    let target = ObjectKey {
                        source: key.source.clone(),
                        path: manifest_path(hex),
                    };
                    if !cx.next.objects.contains_key(&target) {
                        bail!(
                            "object {key}: it tags manifest sha256:{hex}, which source {} does not hold",
                            key.source
                        );
                    }
                }
                Some(OciPath::Manifest(_)) if cx.prev.objects.get(key) != Some(obj) => {
                    let bytes = std::fs::read(&fs_path)
                        .with_context(|| format!("cannot read {}", fs_path.display()))?;
                    if let Err(why) = media_type(&bytes) {
                        bail!("object {key}: a manifest must be a JSON object: {why}");
                    }
                }
                _ => {}
            }
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

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
        assert!(valid_repo("a.b_c-d/e9"));
        assert!(!valid_repo("a..b"));
        assert!(!valid_repo("_a"));
        assert!(valid_tag("_x"));
        assert!(valid_tag(&"a".repeat(128)));
        assert!(!valid_tag(&"a".repeat(129)));
        assert!(!valid_tag("-x"));
    }

    #[test]
    fn tag_files_and_media_types() {
        assert_eq!(parse_tag_file(format!("sha256:{H}").as_bytes()), Some(H));
        assert_eq!(parse_tag_file(format!("sha256:{H}\n").as_bytes()), Some(H));
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
        assert!(media_type(b"[]").is_err());
        assert!(media_type(b"{").is_err());
        assert!(media_type(br#"{"mediaType":1}"#).is_err());
    }
}
