//! Upstream signatures checked again inside, from what the bundle carried:
//! `[upstream] cosign_keys = { SOURCE = ["/etc/ferry/vendor-cosign.pub"] }`
//! in ferry-in.toml. With keys for an OCI source, every tag of the new
//! generation must name a manifest whose cosign signature (its
//! `sha256-<hex>.sig` tag, signature manifest and payload blobs, carried by
//! the outside) verifies with one of them, or the bundle is refused
//! ([`UpstreamRefusal`], naming the image) and nothing is applied.
//!
//! The repository in the signed payload is not compared here (the outside
//! did, against the upstream name; an image may be served under another
//! name inside); the manifest digest and the key are.

use crate::layout::GEN_OCI;
use anyhow::{Context, Result};
use ferry_formats::cosign::{self, CosignError, PublicKey};
use ferry_formats::oci::{parse_path, parse_tag_file, tag_path, Digest, OciPath};
use ferry_protocol::catalog::{Catalog, Object, SourceKind};
use ferry_protocol::path::ObjectKey;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use thiserror::Error;

pub mod provenance;

/// `[upstream]` of ferry-in.toml.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpstreamSection {
    /// Source name -> cosign public key files (PEM).
    #[serde(default)]
    cosign_keys: BTreeMap<String, Vec<PathBuf>>,
}

/// The keys imports check upstream signatures with.
#[derive(Debug, Default)]
pub struct UpstreamKeys {
    /// Per OCI source.
    pub cosign: BTreeMap<String, Vec<PublicKey>>,
}

impl UpstreamSection {
    /// Reads every key file; an error names it.
    pub(crate) fn load(self) -> Result<UpstreamKeys> {
        let mut cosign = BTreeMap::new();
        for (source, paths) in self.cosign_keys {
            let keys = paths
                .iter()
                .map(|p| {
                    let pem = std::fs::read_to_string(p).with_context(|| {
                        format!("upstream.cosign_keys.{source}: cannot read {}", p.display())
                    })?;
                    Ok(PublicKey::from_pem(&pem, &p.display().to_string())?)
                })
                .collect::<Result<Vec<_>>>()?;
            if keys.is_empty() {
                anyhow::bail!("upstream.cosign_keys.{source}: names no key");
            }
            cosign.insert(source, keys);
        }
        Ok(UpstreamKeys { cosign })
    }
}

/// An image of a bundle whose carried signature does not verify.
#[derive(Debug, Error)]
#[error("source {name:?}: image {repo}:{tag} ({digest}): the carried cosign signature is refused: {reason}")]
pub struct UpstreamRefusal {
    /// The source.
    pub name: String,
    /// The repository as served inside.
    pub repo: String,
    /// The tag.
    pub tag: String,
    /// The tagged manifest.
    pub digest: String,
    /// Why (in the message, not a separate cause).
    pub reason: CosignError,
}

/// The generation being built: its catalog and where its files' bytes are.
type Gen<'a> = (&'a Catalog, &'a crate::objects::ObjectStore);

/// Reads file `path` of source `source` of the generation `gen`, at most `limit` bytes.
fn read(gen: Gen<'_>, source: &str, path: &str, limit: u64) -> Result<Vec<u8>, String> {
    let key = ObjectKey {
        source: source.to_string(),
        path: path.to_string(),
    };
    let Some(Object::File(f)) = gen.0.objects.get(&key) else {
        return Err(format!("{GEN_OCI}/{key}: not a file of the generation"));
    };
    let p = gen.1.path(&f.sha256);
    let mut bytes = Vec::new();
    std::fs::File::open(&p)
        .and_then(|f| f.take(limit).read_to_end(&mut bytes))
        .map_err(|e| format!("{}: {e}", p.display()))?;
    Ok(bytes)
}

/// Checks every image tag of the OCI sources `keys` names, in generation
/// built from catalog `next`, its files in `objects`.
pub fn check_generation(
    keys: &UpstreamKeys,
    next: &Catalog,
    objects: &crate::objects::ObjectStore,
) -> Result<(), Box<UpstreamRefusal>> {
    let gen = (next, objects);
    for key in next.objects.keys() {
        let Some(source_keys) = keys.cosign.get(&key.source) else {
            continue;
        };
        if next.sources.get(&key.source) != Some(&SourceKind::Oci) {
            continue;
        }
        let Some(OciPath::Tag { repo, tag }) = parse_path(&key.path) else {
            continue;
        };
        if ferry_formats::oci::is_artifact_tag(tag) {
            continue;
        }
        check_image(gen, &key.source, repo, tag, source_keys)?;
    }
    Ok(())
}

/// Checks one tagged image.
fn check_image(
    gen: Gen<'_>,
    source: &str,
    repo: &str,
    tag: &str,
    keys: &[PublicKey],
) -> Result<(), Box<UpstreamRefusal>> {
    let refuse = |digest: String, reason| {
        Box::new(UpstreamRefusal {
            name: source.to_string(),
            repo: repo.to_string(),
            tag: tag.to_string(),
            digest,
            reason,
        })
    };
    let unreadable = |digest: String, why: String| refuse(digest, CosignError::NotAManifest(why));
    let tag_digest = |path: &str| -> Result<Digest, String> {
        let bytes = read(gen, source, path, 80)?;
        parse_tag_file(&bytes)
            .and_then(Digest::from_hex)
            .ok_or_else(|| format!("tag file {path} holds no digest"))
    };
    let image = tag_digest(&tag_path(repo, tag)).map_err(|w| unreadable(String::new(), w))?;
    let sig_tag = cosign::signature_tag(&image);
    let sig_path = tag_path(repo, &sig_tag);
    let held = ObjectKey {
        source: source.to_string(),
        path: sig_path.clone(),
    };
    if !gen.0.objects.contains_key(&held) {
        return Err(refuse(
            image.to_string(),
            CosignError::Missing { tag: sig_tag },
        ));
    }
    let sig = tag_digest(&sig_path).map_err(|w| unreadable(image.to_string(), w))?;
    let manifest = read(
        gen,
        source,
        &sig.manifest_path(),
        ferry_formats::oci::MAX_MANIFEST_BYTES,
    )
    .map_err(|w| unreadable(image.to_string(), w))?;
    let mut payload = |l: &cosign::SignatureLayer| {
        read(
            gen,
            source,
            &l.digest.blob_path(),
            cosign::MAX_PAYLOAD_BYTES + 1,
        )
    };
    cosign::verify(&manifest, &mut payload, &image, None, keys)
        .map(drop)
        .map_err(|reason| refuse(image.to_string(), reason))
}
