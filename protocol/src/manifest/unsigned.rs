//! The unsigned manifest file (`manifest.unsigned`): what `ferry-out export
//! --unsigned` writes and `ferry-out sign` signs (docs/bundle-format.md §3).

use super::{
    sign_body, signed_message, split, Decoded, Manifest, FORMAT_VERSION, HEADER_LEN,
    OLDEST_FORMAT_VERSION, UNSIGNED_MAGIC,
};
use crate::id::{ChunkId, ManifestHash};
use crate::keys::{PublicKey, SecretKey};
use crate::limits::ReceiverLimits;
use crate::Error;

/// An unsigned manifest file, parsed and checked as a receiver checks a
/// signed one (but for the signature): what `ferry-out sign` signs.
/// A version-4 body with id-less chunks is checked to be in the writer's
/// form only once they are named ([`UnsignedManifest::name`]), and cannot be
/// signed before.
#[derive(Clone, Debug)]
pub struct UnsignedManifest {
    /// The body.
    pub manifest: Decoded,
    /// The unsigned file's bytes.
    file: Vec<u8>,
}

impl UnsignedManifest {
    /// Parses an unsigned manifest file: size, magic, version, length, then
    /// the body, its version and [`Manifest::check`] against `limits`.
    pub fn parse(file: &[u8], limits: &ReceiverLimits) -> Result<UnsignedManifest, Error> {
        if file.len() as u64 > limits.max_manifest_bytes {
            return Err(Error::ManifestTooLarge {
                size: file.len() as u64,
                limit: limits.max_manifest_bytes,
            });
        }
        if file.len() < HEADER_LEN {
            return Err(Error::TruncatedManifest("shorter than its header"));
        }
        if &file[..8] != UNSIGNED_MAGIC {
            return Err(Error::BadManifestMagic);
        }
        let version = u32::from_le_bytes(file[8..12].try_into().expect("4 bytes"));
        if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
            return Err(Error::UnsupportedFormat(version, FORMAT_VERSION));
        }
        let body_len = u32::from_le_bytes(file[12..16].try_into().expect("4 bytes")) as usize;
        match file.len().cmp(&(HEADER_LEN + body_len)) {
            std::cmp::Ordering::Less => {
                return Err(Error::TruncatedManifest("shorter than its declared length"))
            }
            std::cmp::Ordering::Greater => {
                return Err(Error::Inconsistent("bytes after the body".into()))
            }
            std::cmp::Ordering::Equal => {}
        }
        let manifest = Manifest::decode_body(version, &file[HEADER_LEN..], false)?;
        manifest.check_version(version)?;
        manifest.check(limits)?;
        let u = UnsignedManifest {
            manifest,
            file: file.to_vec(),
        };
        if u.manifest.is_named() {
            u.check_form()?;
        }
        Ok(u)
    }

    /// Names the id-less chunks ([`Decoded::name`]), then checks the body is
    /// in the form the sender writes.
    pub fn name(&mut self, ids: &[ChunkId]) -> Result<(), Error> {
        self.manifest.name(ids)?;
        self.check_form()
    }

    /// The body is exactly what the writer makes of the manifest it holds.
    fn check_form(&self) -> Result<(), Error> {
        let m = self.manifest.manifest()?;
        let version = u32::from_le_bytes(self.file[8..12].try_into().expect("4 bytes"));
        if m.version() != version || m.to_unsigned() != self.file {
            return Err(Error::Inconsistent(
                "the body is not in the form the sender writes (re-encoded, or a version it would not write)".into(),
            ));
        }
        Ok(())
    }

    /// The hash of the unsigned file (what the ledger records while the
    /// bundle awaits its signature).
    pub fn hash(&self) -> ManifestHash {
        ManifestHash::of(&self.file)
    }

    /// Signs: the manifest file, the same bytes [`Manifest::sign`] writes.
    /// An error while chunks are not named (the form is not checked yet).
    pub fn sign(&self, key: &SecretKey) -> Result<Vec<u8>, Error> {
        self.manifest.manifest()?;
        let version = u32::from_le_bytes(self.file[8..12].try_into().expect("4 bytes"));
        Ok(sign_body(&self.file[HEADER_LEN..], version, key))
    }
}

/// The unsigned file a signed manifest file was made from (its header and
/// body under [`UNSIGNED_MAGIC`]), after checking that the signature
/// verifies against the key the file names. Returns that key too.
pub fn strip_signature(file: &[u8]) -> Result<(Vec<u8>, PublicKey), Error> {
    let (signed, signer, sig) = split(file)?;
    signer.verify(&signed_message(signed), &sig)?;
    let mut out = signed.to_vec();
    out[..8].copy_from_slice(UNSIGNED_MAGIC);
    Ok((out, signer))
}
