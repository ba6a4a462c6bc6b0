//! Cosign's key-based image signatures, as a registry stores them
//! (sigstore/cosign `specs/SIGNATURE_SPEC.md`), checked from bytes.
//!
//! The signatures of manifest `sha256:H` of a repository are the manifest
//! tagged `sha256-H.sig` in the same repository (or found through the OCI
//! referrers API). Each of its layers of media type
//! [`SIMPLESIGNING_MEDIA_TYPE`] is one signature: the layer blob is the
//! "simple signing" JSON payload, whose `critical.image.docker-manifest-digest`
//! names the signed manifest, and the layer's annotation
//! [`SIGNATURE_ANNOTATION`] holds the base64 of an ECDSA P-256 signature
//! (ASN.1 DER) over the SHA-256 of the payload bytes. Public keys are PEM
//! SubjectPublicKeyInfo (`cosign generate-key-pair`'s `cosign.pub`).
//!
//! The crypto is RustCrypto's `p256`; this module only spells the format.

use crate::oci::Digest;
use base64::Engine;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::{DecodePublicKey, EncodePublicKey};
use serde::Deserialize;
use sha2::Digest as _;
use std::collections::BTreeMap;
use thiserror::Error;

/// The media type of a signature layer (its blob is the payload).
pub const SIMPLESIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// `critical.type` of an image signature payload.
pub const CRITICAL_TYPE: &str = "cosign container image signature";
/// The largest payload read (cosign's are a few hundred bytes).
pub const MAX_PAYLOAD_BYTES: u64 = 64 << 10;
/// The most signature layers looked at in one signature manifest.
pub const MAX_LAYERS: usize = 64;

/// The tag cosign stores the signatures of `digest` under.
pub fn signature_tag(digest: &Digest) -> String {
    format!("sha256-{}.sig", digest.hex())
}

/// Why a public key file is refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum KeyError {
    /// Not a PEM `PUBLIC KEY` holding a P-256 key.
    #[error("{name}: not a PEM ECDSA P-256 public key (SubjectPublicKeyInfo): {reason}")]
    NotP256 {
        /// The key's name (its file).
        name: String,
        /// What the parser said.
        reason: String,
    },
}

/// A cosign public key.
#[derive(Clone, Debug)]
pub struct PublicKey {
    key: VerifyingKey,
    id: String,
    name: String,
}

impl PublicKey {
    /// Reads a PEM SubjectPublicKeyInfo (`-----BEGIN PUBLIC KEY-----`);
    /// `name` names it in errors and reports (its file).
    pub fn from_pem(pem: &str, name: &str) -> Result<PublicKey, KeyError> {
        let key = VerifyingKey::from_public_key_pem(pem.trim()).map_err(|e| KeyError::NotP256 {
            name: name.to_string(),
            reason: e.to_string(),
        })?;
        let der = key.to_public_key_der().map_err(|e| KeyError::NotP256 {
            name: name.to_string(),
            reason: e.to_string(),
        })?;
        let id = format!(
            "SHA256:{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(sha2::Sha256::digest(der))
        );
        Ok(PublicKey {
            key,
            id,
            name: name.to_string(),
        })
    }

    /// `SHA256:<base64, no padding>` of the key's DER SubjectPublicKeyInfo
    /// (the form `ssh-keygen -l` uses for its keys).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The name given when it was read.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// One signature layer of a signature manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureLayer {
    /// The payload blob's digest.
    pub digest: Digest,
    /// Its declared size.
    pub size: u64,
    /// The annotation's base64 signature (`None` when the layer has none).
    pub signature: Option<String>,
}

/// Why an image's cosign signature is refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CosignError {
    /// The registry has no `sha256-H.sig` manifest for the image.
    #[error("no cosign signature (no tag {tag})")]
    Missing {
        /// The tag looked for.
        tag: String,
    },
    /// The signature manifest does not parse as an image manifest.
    #[error("the signature manifest is not an image manifest: {0}")]
    NotAManifest(String),
    /// It has no simple-signing layer.
    #[error("the signature manifest has no {SIMPLESIGNING_MEDIA_TYPE} layer")]
    NoSignatureLayer,
    /// A payload larger than [`MAX_PAYLOAD_BYTES`].
    #[error("signature payload {digest} declares {size} bytes (at most {MAX_PAYLOAD_BYTES})")]
    PayloadTooLarge {
        /// The layer's digest.
        digest: String,
        /// Its declared size.
        size: u64,
    },
    /// The payload blob could not be fetched.
    #[error("signature payload {digest} cannot be had: {reason}")]
    PayloadUnavailable {
        /// The layer's digest.
        digest: String,
        /// What the fetch said.
        reason: String,
    },
    /// The payload blob's bytes do not hash to the layer's digest.
    #[error("signature payload blob does not match its digest {digest}")]
    PayloadDigest {
        /// The layer's digest.
        digest: String,
    },
    /// A layer without a signature annotation, or one that is not base64 DER.
    #[error("signature layer {digest}: {reason}")]
    Malformed {
        /// The layer's digest.
        digest: String,
        /// What is wrong.
        reason: String,
    },
    /// No signature verifies with any configured key.
    #[error("no signature verifies with the configured keys ({keys})")]
    NoKeyVerifies {
        /// The key ids tried, comma-separated.
        keys: String,
    },
    /// A signature verifies, but its payload is no image signature.
    #[error("signed payload {digest} is not a cosign image signature: {reason}")]
    Payload {
        /// The layer's digest.
        digest: String,
        /// What is wrong.
        reason: String,
    },
    /// A valid signature for another manifest (a signature copied or a
    /// manifest swapped).
    #[error("the signature is for manifest {signed}, not {image}")]
    DigestMismatch {
        /// What the payload names.
        signed: String,
        /// The image's manifest digest.
        image: String,
    },
    /// A valid signature for another repository.
    #[error("the signature is for {signed:?}, not repository {repo:?}")]
    WrongReference {
        /// The payload's `docker-reference`.
        signed: String,
        /// The image's repository.
        repo: String,
    },
}

/// What verified: which key, through which payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The key's id ([`PublicKey::id`]).
    pub key_id: String,
    /// The key's name ([`PublicKey::name`]).
    pub key_name: String,
    /// The payload blob that verified.
    pub payload: Digest,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    #[serde(default)]
    layers: Vec<RawLayer>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawLayer {
    #[serde(default)]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// The simple-signing layers of a signature manifest (at most
/// [`MAX_LAYERS`]; others are ignored).
pub fn signature_layers(manifest: &[u8]) -> Result<Vec<SignatureLayer>, CosignError> {
    let m: RawManifest =
        serde_json::from_slice(manifest).map_err(|e| CosignError::NotAManifest(e.to_string()))?;
    let mut out = Vec::new();
    for l in m
        .layers
        .into_iter()
        .filter(|l| l.media_type == SIMPLESIGNING_MEDIA_TYPE)
        .take(MAX_LAYERS)
    {
        let digest = Digest::parse(&l.digest)
            .map_err(|e| CosignError::NotAManifest(format!("layer digest: {e}")))?;
        out.push(SignatureLayer {
            digest,
            size: l.size,
            signature: l.annotations.get(SIGNATURE_ANNOTATION).cloned(),
        });
    }
    if out.is_empty() {
        return Err(CosignError::NoSignatureLayer);
    }
    Ok(out)
}

#[derive(Deserialize)]
struct Payload {
    critical: Critical,
}

#[derive(Deserialize)]
struct Critical {
    identity: Identity,
    image: Image,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Identity {
    docker_reference: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Image {
    docker_manifest_digest: String,
}

/// Whether `reference` (cosign writes `host[:port]/repository`, without tag)
/// names repository `repo`: equal, or `repo` after a registry host.
fn names_repo(reference: &str, repo: &str) -> bool {
    let bare = reference.split('@').next().unwrap_or(reference);
    // A tag after the last path element.
    let bare = match bare.rsplit_once(':') {
        Some((head, tag)) if !tag.contains('/') => head,
        _ => bare,
    };
    bare == repo
        || bare
            .strip_suffix(repo)
            .is_some_and(|host| host.ends_with('/'))
        || bare
            .strip_suffix(&format!("library/{repo}"))
            .is_some_and(|host| host.ends_with('/'))
}

/// Checks one layer: the payload's digest, the signature against each key,
/// then the payload's claims.
fn verify_layer(
    layer: &SignatureLayer,
    payload: &[u8],
    image: &Digest,
    repo: Option<&str>,
    keys: &[PublicKey],
) -> Result<Verified, CosignError> {
    let digest = layer.digest.to_string();
    if Digest::of(payload) != layer.digest {
        return Err(CosignError::PayloadDigest { digest });
    }
    let malformed = |reason: &str| CosignError::Malformed {
        digest: digest.clone(),
        reason: reason.to_string(),
    };
    let b64 = layer
        .signature
        .as_deref()
        .ok_or_else(|| malformed("no signature annotation"))?;
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| malformed("the signature is not base64"))?;
    let sig = Signature::from_der(&der).map_err(|_| malformed("not an ASN.1 DER signature"))?;
    let key = keys
        .iter()
        .find(|k| k.key.verify(payload, &sig).is_ok())
        .ok_or_else(|| CosignError::NoKeyVerifies {
            keys: keys
                .iter()
                .map(|k| k.id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    let p: Payload = serde_json::from_slice(payload).map_err(|e| CosignError::Payload {
        digest: digest.clone(),
        reason: e.to_string(),
    })?;
    if p.critical.kind != CRITICAL_TYPE {
        return Err(CosignError::Payload {
            digest,
            reason: format!("critical.type is {:?}", p.critical.kind),
        });
    }
    if p.critical.image.docker_manifest_digest != image.to_string() {
        return Err(CosignError::DigestMismatch {
            signed: p.critical.image.docker_manifest_digest,
            image: image.to_string(),
        });
    }
    if let Some(repo) = repo.filter(|r| !names_repo(&p.critical.identity.docker_reference, r)) {
        return Err(CosignError::WrongReference {
            signed: p.critical.identity.docker_reference,
            repo: repo.to_string(),
        });
    }
    Ok(Verified {
        key_id: key.id.clone(),
        key_name: key.name.clone(),
        payload: layer.digest,
    })
}

/// Verifies the signatures of image manifest `image` of repository `repo`
/// (`None`: the payload's repository is not checked, for a reader that
/// serves images under other names):
/// `manifest` is the signature manifest, `payload` gives a layer's blob (or
/// why it cannot be had). The image is vouched for when one layer
/// verifies with one of `keys`. Otherwise the error of the first layer that
/// got furthest (a valid signature over a wrong claim says more than a
/// signature no key made).
pub fn verify(
    manifest: &[u8],
    payload: &mut dyn FnMut(&SignatureLayer) -> Result<Vec<u8>, String>,
    image: &Digest,
    repo: Option<&str>,
    keys: &[PublicKey],
) -> Result<Verified, CosignError> {
    let mut first: Option<CosignError> = None;
    for layer in signature_layers(manifest)? {
        let result = if layer.size > MAX_PAYLOAD_BYTES {
            Err(CosignError::PayloadTooLarge {
                digest: layer.digest.to_string(),
                size: layer.size,
            })
        } else {
            match payload(&layer) {
                Ok(bytes) => verify_layer(&layer, &bytes, image, repo, keys),
                Err(reason) => Err(CosignError::PayloadUnavailable {
                    digest: layer.digest.to_string(),
                    reason,
                }),
            }
        };
        match result {
            Ok(v) => return Ok(v),
            Err(e) => {
                let better = matches!(
                    e,
                    CosignError::DigestMismatch { .. }
                        | CosignError::WrongReference { .. }
                        | CosignError::Payload { .. }
                );
                if first.is_none() || better {
                    first = Some(e);
                }
            }
        }
    }
    Err(first.unwrap_or(CosignError::NoSignatureLayer))
}

#[cfg(test)]
mod tests;
