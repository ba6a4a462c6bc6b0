//! Signing keys, their text forms, and the set of keys a receiver trusts.
//!
//! Text forms (one line each, as written to key files):
//! - public key: `ferry-ed25519-public <64 hex digits>`
//! - secret key: `ferry-ed25519-secret <64 hex digits of the 32-byte seed>`

use crate::Error;
use ed25519_dalek::Signer;

const PUBLIC_PREFIX: &str = "ferry-ed25519-public ";
const SECRET_PREFIX: &str = "ferry-ed25519-secret ";

/// An ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// The one-line text form.
    pub fn to_text(&self) -> String {
        format!("{PUBLIC_PREFIX}{}", hex::encode(self.0))
    }

    /// Parses the text form (surrounding white space allowed).
    pub fn from_text(text: &str) -> Result<Self, Error> {
        let t = text.trim();
        let hexpart = t.strip_prefix(PUBLIC_PREFIX).ok_or_else(|| {
            Error::BadKey(format!(
                "a public key starts with {:?}",
                PUBLIC_PREFIX.trim()
            ))
        })?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(hexpart.trim(), &mut out)
            .map_err(|e| Error::BadKey(format!("public key is not 64 hex digits: {e}")))?;
        ed25519_dalek::VerifyingKey::from_bytes(&out)
            .map_err(|_| Error::BadKey("not a valid ed25519 point".into()))?;
        Ok(PublicKey(out))
    }

    /// A short fingerprint for messages: the first 16 hex digits.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..8])
    }

    /// Verifies `signature` over `message`, strictly (no malleable forms).
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> Result<(), Error> {
        let vk =
            ed25519_dalek::VerifyingKey::from_bytes(&self.0).map_err(|_| Error::BadSignature)?;
        let sig = ed25519_dalek::Signature::from_bytes(signature);
        vk.verify_strict(message, &sig)
            .map_err(|_| Error::BadSignature)
    }
}

/// An ed25519 signing key.
pub struct SecretKey(ed25519_dalek::SigningKey);

impl SecretKey {
    /// The key for this 32-byte seed. The caller supplies the randomness.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        SecretKey(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }

    /// Signs `message` (deterministic: same key and message, same signature).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }

    /// The one-line text form, to be stored with mode 0600.
    pub fn to_text(&self) -> String {
        format!("{SECRET_PREFIX}{}", hex::encode(self.0.to_bytes()))
    }

    /// Parses the text form.
    pub fn from_text(text: &str) -> Result<Self, Error> {
        let hexpart = text.trim().strip_prefix(SECRET_PREFIX).ok_or_else(|| {
            Error::BadKey(format!(
                "a secret key starts with {:?}",
                SECRET_PREFIX.trim()
            ))
        })?;
        let mut seed = [0u8; 32];
        hex::decode_to_slice(hexpart.trim(), &mut seed)
            .map_err(|e| Error::BadKey(format!("secret key is not 64 hex digits: {e}")))?;
        Ok(Self::from_seed(seed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_round_trip_and_sign() {
        let sk = SecretKey::from_seed([7; 32]);
        let pk = PublicKey::from_text(&sk.public().to_text()).unwrap();
        assert_eq!(pk, sk.public());
        let sk2 = SecretKey::from_text(&sk.to_text()).unwrap();
        let sig = sk2.sign(b"msg");
        pk.verify(b"msg", &sig).unwrap();
        assert!(pk.verify(b"msh", &sig).is_err());
        let mut bad = sig;
        bad[5] ^= 1;
        assert!(pk.verify(b"msg", &bad).is_err());
    }

    #[test]
    fn bad_texts() {
        assert!(PublicKey::from_text("ssh-ed25519 AAAA").is_err());
        assert!(PublicKey::from_text("ferry-ed25519-public 1234").is_err());
        assert!(SecretKey::from_text("ferry-ed25519-public 00").is_err());
    }
}
