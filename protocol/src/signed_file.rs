//! The envelope receipts and inventories share (bundle-format §15, §18):
//! an 8-byte magic, a version byte, the signer's 32-byte public key, the
//! body, and an Ed25519 signature over everything before it.

use crate::keys::{PublicKey, SecretKey};

/// Magic, version and key before the body, the signature after it.
pub(crate) const OVERHEAD: usize = 8 + 1 + 32 + 64;

/// Why an envelope was refused (each file type names these its own way).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Not `OVERHEAD..=max` bytes long.
    Size(usize),
    /// Another magic.
    Magic,
    /// A version not in the accepted list.
    Version(u8),
    /// Signed by a key not among the trusted ones (its text form).
    Untrusted(String),
    /// The signature does not verify.
    Signature,
}

/// `magic`, `version`, `key`'s public half and `body`, signed by `key`.
pub(crate) fn seal(magic: &[u8; 8], version: u8, key: &SecretKey, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(OVERHEAD + body.len());
    out.extend_from_slice(magic);
    out.push(version);
    out.extend_from_slice(&key.public().0);
    out.extend_from_slice(body);
    let sig = key.sign(&out);
    out.extend_from_slice(&sig);
    out
}

/// Checks, in this order, the size (at most `max`), the magic, the version
/// (one of `versions`), that the signer is among `trusted`, and the
/// signature; returns the version, the signer and the body, unparsed.
pub(crate) fn open<'a>(
    file: &'a [u8],
    magic: &[u8; 8],
    versions: &[u8],
    max: usize,
    trusted: &[PublicKey],
) -> Result<(u8, PublicKey, &'a [u8]), Refused> {
    if !(OVERHEAD..=max).contains(&file.len()) {
        return Err(Refused::Size(file.len()));
    }
    if &file[..8] != magic {
        return Err(Refused::Magic);
    }
    let version = file[8];
    if !versions.contains(&version) {
        return Err(Refused::Version(version));
    }
    let signer = PublicKey(file[9..41].try_into().expect("32 bytes"));
    if !trusted.contains(&signer) {
        return Err(Refused::Untrusted(signer.to_text()));
    }
    let (signed, sig) = file.split_at(file.len() - 64);
    signer
        .verify(signed, sig.try_into().expect("64 bytes"))
        .map_err(|_| Refused::Signature)?;
    Ok((version, signer, &signed[41..]))
}
