//! OpenPGP verification of repository metadata (apt's `InRelease` and
//! `Release.gpg`, yum's `repomd.xml.asc`), with rpgp.

use super::error::UpstreamError;
use anyhow::{anyhow, bail, Context, Result};
use pgp::composed::{CleartextSignedMessage, Deserializable, DetachedSignature, SignedPublicKey};
use pgp::types::KeyDetails;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The public keys a source's metadata must be signed with. A signature
/// verifies when the primary key or any subkey of any certificate in the
/// file made it.
pub struct Keyring {
    path: PathBuf,
    keys: Vec<SignedPublicKey>,
    /// Fingerprints (upper-case hex) of the certificates whose keys made a
    /// signature that verified, for the bundle's provenance record.
    used: Mutex<BTreeSet<String>>,
}

impl Keyring {
    /// Reads every certificate of an armored or binary key file (such as a
    /// `.asc` export or a `/usr/share/keyrings/*.gpg` keyring; packets of a
    /// binary keyring rpgp cannot read are skipped). An error when the file
    /// cannot be read or holds no key.
    pub fn load(path: &Path) -> Result<Keyring> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let keys: Vec<SignedPublicKey> = if bytes.starts_with(b"-----BEGIN") {
            let (it, _) = SignedPublicKey::from_armor_many(&bytes[..])
                .map_err(|e| anyhow!("{}: not an armored OpenPGP key: {e}", path.display()))?;
            it.collect::<std::result::Result<_, _>>()
                .map_err(|e| anyhow!("{}: not an armored OpenPGP key: {e}", path.display()))?
        } else {
            SignedPublicKey::from_bytes_many(&bytes[..])
                .map_err(|e| anyhow!("{}: not an OpenPGP keyring: {e}", path.display()))?
                .filter_map(|k| k.ok())
                .collect()
        };
        if keys.is_empty() {
            bail!("{} holds no OpenPGP public key", path.display());
        }
        Ok(Keyring {
            path: path.to_path_buf(),
            keys,
            used: Mutex::new(BTreeSet::new()),
        })
    }

    /// Notes that certificate `k` verified a signature.
    fn note(&self, k: &SignedPublicKey) {
        let fpr = hex::encode_upper(k.primary_key.fingerprint().as_bytes());
        self.used.lock().expect("keyring").insert(fpr);
    }

    /// The fingerprints of the certificates that verified a signature since
    /// the last call (primary key fingerprints, upper-case hex); forgets them.
    pub fn take_used(&self) -> Vec<String> {
        std::mem::take(&mut *self.used.lock().expect("keyring"))
            .into_iter()
            .collect()
    }

    /// The key file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Verifies a detached signature `sig` (armored or binary, one or more
    /// signature packets) over `data`; `what` names the signed file in the
    /// [`UpstreamError::Signature`] returned when no signature verifies.
    pub fn verify_detached(
        &self,
        what: &str,
        data: &[u8],
        sig: &[u8],
    ) -> Result<(), UpstreamError> {
        let bad = |reason: String| UpstreamError::Signature {
            what: what.to_string(),
            reason,
        };
        let sigs =
            parse_detached(sig).map_err(|e| bad(format!("not an OpenPGP signature: {e}")))?;
        let mut last = String::from("no signature in it");
        for s in &sigs {
            for k in &self.keys {
                match s.verify(&k.primary_key, data) {
                    Ok(()) => {
                        self.note(k);
                        return Ok(());
                    }
                    Err(e) => last = e.to_string(),
                }
                for sub in &k.public_subkeys {
                    match s.verify(&sub.key, data) {
                        Ok(()) => {
                            self.note(k);
                            return Ok(());
                        }
                        Err(e) => last = e.to_string(),
                    }
                }
            }
        }
        Err(bad(format!(
            "no signature verifies with a key of {} ({last})",
            self.path.display()
        )))
    }

    /// Verifies a cleartext-signed message (such as `InRelease`) and returns
    /// the signed text with LF line ends.
    pub fn verify_cleartext(&self, what: &str, bytes: &[u8]) -> Result<String, UpstreamError> {
        let bad = |reason: String| UpstreamError::Signature {
            what: what.to_string(),
            reason,
        };
        let text = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8".into()))?;
        let (msg, _) = CleartextSignedMessage::from_string(text)
            .map_err(|e| bad(format!("not an OpenPGP cleartext-signed message: {e}")))?;
        let by = self.keys.iter().find(|k| {
            msg.verify(*k).is_ok()
                || k.public_subkeys
                    .iter()
                    .any(|sk| msg.verify(&sk.key).is_ok())
        });
        if let Some(k) = by {
            self.note(k);
        } else {
            return Err(bad(format!(
                "no signature verifies with a key of {}",
                self.path.display()
            )));
        }
        Ok(msg.signed_text().replace("\r\n", "\n"))
    }
}

fn parse_detached(bytes: &[u8]) -> Result<Vec<DetachedSignature>, String> {
    if bytes.starts_with(b"-----BEGIN") {
        let (it, _) = DetachedSignature::from_armor_many(bytes).map_err(|e| e.to_string())?;
        it.collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())
    } else {
        DetachedSignature::from_bytes_many(bytes)
            .map_err(|e| e.to_string())?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())
    }
}
