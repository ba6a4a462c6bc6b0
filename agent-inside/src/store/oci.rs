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
//!
//! The layout and its rules (paths, digests, repository names, tags, media
//! types) are [`ferry_formats::oci`]'s, the same code the outside's source
//! writes with; they are re-exported here for `serve`.

use super::{materialize, objects_of_kind, BuildCtx, Store};
use crate::layout::GEN_OCI;
use anyhow::{bail, Context, Result};
use ferry_protocol::catalog::{Catalog, Object, SourceKind};
use ferry_protocol::path::ObjectKey;

pub use ferry_formats::oci::{
    blob_path, manifest_path, media_type, parse_digest, parse_path, parse_tag_file, tag_path,
    tags_prefix, valid_repo, valid_tag, OciPath, INDEX_MEDIA_TYPE, MANIFEST_MEDIA_TYPE,
    MAX_MANIFEST_BYTES, TAGS_DIR,
};

/// The OCI store.
pub struct OciStore;

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
            let fs_path = cx.new_path(GEN_OCI, key);
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
                Some(OciPath::Manifest(_)) if cx.prev.get(key) != Some(obj) => {
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
