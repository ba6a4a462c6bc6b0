//! Cosign signatures of images (`cosign_keys`, `cosign_policy`): before an
//! image is listed, its manifest digest must carry a signature that verifies
//! with one of the source's keys ([`ferry_formats::cosign`]). The signature
//! manifest (tag `sha256-<hex>.sig`) and its payload blobs are then carried
//! with the image, so the inside can check them again and serve the tag.

use super::registry::Registry;
use super::OciSource;
use anyhow::{Context, Result};
use ferry_formats::cosign::{self, CosignError, PublicKey, Verified};
use ferry_formats::oci::Digest;
use ferry_protocol::provenance::{Method, Vouch};
use serde::Deserialize;
use std::io::Read;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// What happens to an image without a valid signature.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum CosignPolicy {
    /// The export fails, naming the image ([`SignatureRefused`]).
    #[default]
    RefuseExport,
    /// The image is left out of the bundle with a warning naming it; the
    /// rest of the source is exported.
    RefuseImage,
}

/// The keys and policy of a source.
pub(super) struct Cosign {
    pub(super) keys: Vec<PublicKey>,
    pub(super) policy: CosignPolicy,
}

impl Cosign {
    /// Reads every key file (PEM SubjectPublicKeyInfo); an error names the file.
    pub(super) fn load(paths: &[PathBuf], policy: CosignPolicy) -> Result<Cosign> {
        let keys = paths
            .iter()
            .map(|p| {
                let pem = std::fs::read_to_string(p)
                    .with_context(|| format!("cosign_keys: cannot read {}", p.display()))?;
                Ok(PublicKey::from_pem(&pem, &p.display().to_string())?)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Cosign { keys, policy })
    }
}

/// An image refused for its signature: the export fails with it under
/// `cosign_policy = "refuse-export"`, and it is the warning under
/// `"refuse-image"`.
#[derive(Debug, Error)]
#[error("image {repo}:{tag} ({digest}) refused: {reason}")]
pub struct SignatureRefused {
    /// The upstream repository.
    pub repo: String,
    /// The tag asked for (or the digest, for an image by digest).
    pub tag: String,
    /// The image's manifest digest.
    pub digest: Digest,
    /// Why (in the message, not a separate cause).
    pub reason: CosignError,
}

/// A signature that verified: what to carry and record.
pub(super) struct Signed {
    pub(super) tag: String,
    pub(super) manifest: Vec<u8>,
    pub(super) digest: Digest,
    pub(super) verified: Verified,
}

/// Reads blob `digest` of `repo` (through the blob cache): `size` bytes as
/// the signature manifest declares (checked against
/// [`cosign::MAX_PAYLOAD_BYTES`] before the call), read back at most that.
fn payload(
    registry: &Registry,
    repo: &str,
    (digest, size): (&Digest, u64),
    dir: &Path,
) -> std::result::Result<Vec<u8>, String> {
    let file = registry
        .fetch_blob_sized(repo, digest, dir, Some(size))
        .map_err(|e| format!("{e:#}"))?;
    let mut bytes = Vec::new();
    std::fs::File::open(&file)
        .and_then(|f| {
            f.take(cosign::MAX_PAYLOAD_BYTES + 1)
                .read_to_end(&mut bytes)
        })
        .map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(bytes)
}

impl OciSource {
    /// Checks the cosign signature of manifest `digest` of `repo`, found at
    /// its `.sig` tag (`tags`: the repository's tags). `Ok(Err(_))` is a
    /// refusal the policy decides on; `Err` a registry failure.
    pub(super) fn check_signature(
        &self,
        cosign: &Cosign,
        repo: &str,
        digest: &Digest,
        has_tag: bool,
        blob_dir: &Path,
    ) -> Result<Result<Signed, CosignError>> {
        let tag = cosign::signature_tag(digest);
        if !has_tag {
            return Ok(Err(CosignError::Missing { tag }));
        }
        let (manifest, sig_digest) = self
            .registry
            .manifest(repo, &tag)
            .with_context(|| format!("{repo}: cosign tag {tag}"))?;
        let mut fetch = |l: &cosign::SignatureLayer| {
            payload(&self.registry, repo, (&l.digest, l.size), blob_dir)
        };
        Ok(
            cosign::verify(&manifest, &mut fetch, digest, Some(repo), &cosign.keys).map(
                |verified| Signed {
                    tag,
                    manifest,
                    digest: sig_digest,
                    verified,
                },
            ),
        )
    }

    /// The record of an image that verified: its tag (or manifest) path
    /// inside, the key that signed it.
    pub(super) fn vouch(&self, object: String, repo: &str, reference: &str, s: &Signed) -> Vouch {
        Vouch {
            source: self.name.clone(),
            object: Some(object),
            method: Method::Cosign,
            key: Some(s.verified.key_id.clone()),
            detail: format!(
                "{repo}:{reference} signed by cosign key {} ({})",
                s.verified.key_id, s.verified.key_name
            ),
        }
    }
}
