//! The site key: an OpenPGP signing key of this ferry-in, for repository
//! views that ferry-in writes itself (the apt store's filtered indices, whose
//! upstream signature cannot cover them).
//!
//! It lives at `STATE/site-key.asc` (armored secret key, mode 0600, no
//! passphrase: it signs unattended at apply time). It is created on first
//! use, by `ferry-in site-key` or by the first apply that builds a view, and
//! never replaced: clients install its public half once (`ferry-in site-key
//! --binary --output FILE` writes a keyring apt's `signed-by` accepts).
//!
//! Keys are Ed25519 (v4), signatures SHA-256: what gpgv and sqv accept.

use crate::layout::Layout;
use anyhow::{anyhow, bail, Context, Result};
use pgp::composed::{
    ArmorOptions, CleartextSignedMessage, Deserializable, DetachedSignature, KeyType,
    SecretKeyParamsBuilder, SignedPublicKey, SignedSecretKey,
};
use pgp::crypto::hash::HashAlgorithm;
use pgp::ser::Serialize;
use pgp::types::Password;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

/// The file of the site key in the state directory.
pub fn path(layout: &Layout) -> PathBuf {
    layout.site_key()
}

/// The site key.
pub struct SiteKey {
    key: SignedSecretKey,
}

impl SiteKey {
    /// Loads the site key, or `None` if there is none yet.
    pub fn load(layout: &Layout) -> Result<Option<SiteKey>> {
        let p = path(layout);
        let text = match std::fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(anyhow!("cannot read the site key {}: {e}", p.display())),
        };
        let (key, _) = SignedSecretKey::from_string(&text).map_err(|e| {
            anyhow!(
                "the site key {} is not an OpenPGP secret key: {e}",
                p.display()
            )
        })?;
        Ok(Some(SiteKey { key }))
    }

    /// Loads the site key, creating it first if there is none.
    pub fn load_or_create(layout: &Layout) -> Result<SiteKey> {
        if let Some(k) = Self::load(layout)? {
            return Ok(k);
        }
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
        let uid = if host.is_empty() {
            "ferry-in site key".to_string()
        } else {
            format!("ferry-in site key ({host})")
        };
        let params = SecretKeyParamsBuilder::default()
            .key_type(KeyType::Ed25519Legacy)
            .can_certify(true)
            .can_sign(true)
            .primary_user_id(uid)
            .build()
            .map_err(|e| anyhow!("cannot set up the site key: {e}"))?;
        let key = params
            .generate(rand::thread_rng())
            .map_err(|e| anyhow!("cannot generate the site key: {e}"))?;
        let armored = key
            .to_armored_string(ArmorOptions::default())
            .map_err(|e| anyhow!("cannot encode the site key: {e}"))?;
        std::fs::create_dir_all(&layout.root)
            .with_context(|| format!("cannot create {}", layout.root.display()))?;
        let p = path(layout);
        let tmp = p.with_extension("asc.tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        f.write_all(armored.as_bytes())
            .and_then(|_| f.sync_all())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        // Never replace a key another process made meanwhile.
        match std::fs::hard_link(&tmp, &p) {
            Ok(()) => {
                let _ = std::fs::remove_file(&tmp);
                Ok(SiteKey { key })
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let _ = std::fs::remove_file(&tmp);
                Self::load(layout)?.ok_or_else(|| anyhow!("the site key vanished"))
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                bail!("cannot write the site key {}: {e}", p.display())
            }
        }
    }

    fn public(&self) -> SignedPublicKey {
        self.key.to_public_key()
    }

    /// The public key, armored.
    pub fn public_armored(&self) -> Result<String> {
        self.public()
            .to_armored_string(ArmorOptions::default())
            .map_err(|e| anyhow!("cannot encode the public site key: {e}"))
    }

    /// The public key as a binary keyring (what apt's `signed-by` reads from a `.gpg` file).
    pub fn public_binary(&self) -> Result<Vec<u8>> {
        self.public()
            .to_bytes()
            .map_err(|e| anyhow!("cannot encode the public site key: {e}"))
    }

    /// The key's fingerprint, in hex.
    pub fn fingerprint(&self) -> String {
        use pgp::types::KeyDetails;
        hex::encode(self.key.primary_key.fingerprint().as_bytes())
    }

    /// `text` as an OpenPGP cleartext-signed message (an apt `InRelease`).
    pub fn clearsign(&self, text: &str) -> Result<String> {
        let msg = CleartextSignedMessage::sign(
            rand::thread_rng(),
            text,
            &self.key.primary_key,
            &Password::empty(),
        )
        .map_err(|e| anyhow!("cannot sign with the site key: {e}"))?;
        msg.to_armored_string(ArmorOptions::default())
            .map_err(|e| anyhow!("cannot encode a signature: {e}"))
    }

    /// An armored detached signature of `data` (an apt `Release.gpg`).
    pub fn detached(&self, data: &[u8]) -> Result<String> {
        let sig = DetachedSignature::sign_binary_data(
            rand::thread_rng(),
            &self.key.primary_key,
            &Password::empty(),
            HashAlgorithm::Sha256,
            data,
        )
        .map_err(|e| anyhow!("cannot sign with the site key: {e}"))?;
        sig.to_armored_string(ArmorOptions::default())
            .map_err(|e| anyhow!("cannot encode a signature: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_once_sign_verify() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        assert!(SiteKey::load(&layout).unwrap().is_none());
        let k = SiteKey::load_or_create(&layout).unwrap();
        let again = SiteKey::load_or_create(&layout).unwrap();
        assert_eq!(k.fingerprint(), again.fingerprint());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path(&layout))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        let public = k.public();
        let signed = k.clearsign("Origin: x\nSHA256:\n").unwrap();
        let (msg, _) = CleartextSignedMessage::from_string(&signed).unwrap();
        msg.verify(&public).unwrap();
        let sig = k.detached(b"Release\n").unwrap();
        let (sig, _) = DetachedSignature::from_string(&sig).unwrap();
        sig.verify(&public, b"Release\n").unwrap();
        assert!(sig.verify(&public, b"Release!\n").is_err());
    }
}
