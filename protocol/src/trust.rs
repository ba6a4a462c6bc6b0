//! Trust statements: key rotation, revocation and validity extension, the
//! records that let a stream change its signing key over a one-way link
//! (`docs/bundle-format.md` §16, `docs/trust.md`).
//!
//! A [`SignedStatement`] is a [`Statement`] and the signatures over it. The
//! signed message is [`STATEMENT_CONTEXT`] followed by the postcard encoding
//! of the statement. Statements ride in a manifest as one critical
//! [`Extension`] of kind [`EXTENSION_KIND`] whose data is
//! [`STATEMENTS_VERSION`] followed by the postcard encoding of a
//! `Vec<SignedStatement>` ([`encode`], [`decode`]); a validity extension
//! rides beside a bundle in its own file ([`VALIDITY_FILE`], the same bytes).
//!
//! Who must sign ([`SignedStatement::authority`]):
//! - [`Statement::Rotate`]: the new key, and the old key or a root key;
//! - [`Statement::Revoke`]: a root key;
//! - [`Statement::Extend`]: a signing key of the stream or a root key (the
//!   reader decides which keys count; this module checks signatures only).

use crate::id::{ManifestHash, StreamId};
use crate::keys::{PublicKey, SecretKey};
use crate::manifest::{Extension, Manifest};
use serde::{Deserialize, Serialize};

/// Domain separation for statement signatures.
pub const STATEMENT_CONTEXT: &[u8] = b"ferry trust statement v1\0";
/// The manifest extension kind that carries statements.
pub const EXTENSION_KIND: u32 = 1;
/// The first byte of the statements encoding.
pub const STATEMENTS_VERSION: u8 = 1;
/// The file beside a bundle's manifest that may carry a validity extension.
pub const VALIDITY_FILE: &str = "validity.ferry";
/// The file of root revocations at the top of a medium (bundle-format §16.7).
pub const REVOCATIONS_FILE: &str = "revocations.ferry";
/// Most statements one extension or file may carry.
pub const MAX_STATEMENTS: usize = 16;
/// Most signatures one statement may carry.
pub const MAX_SIGNATURES: usize = 4;

/// What a statement says. Field order is the wire order; variant indices
/// never change meaning.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Statement {
    /// From bundle `from_sequence` of `stream` on, `new` signs instead of
    /// `old`; `old` signs nothing from that sequence on.
    Rotate {
        /// The stream.
        stream: StreamId,
        /// The first sequence `new` signs.
        from_sequence: u64,
        /// The retiring key.
        old: [u8; 32],
        /// The new key.
        new: [u8; 32],
        /// When the statement was made (Unix seconds).
        created: u64,
    },
    /// `key` signs nothing of `stream` from `from_sequence` on.
    Revoke {
        /// The stream.
        stream: StreamId,
        /// The first sequence it may no longer sign.
        from_sequence: u64,
        /// The revoked key.
        key: [u8; 32],
        /// When the statement was made (Unix seconds).
        created: u64,
    },
    /// The bundle `sequence` of `stream` whose manifest hash is `manifest`
    /// is good until `expires` (a resend of an expired bundle).
    Extend {
        /// The stream.
        stream: StreamId,
        /// The bundle's sequence.
        sequence: u64,
        /// The bundle's manifest hash.
        manifest: ManifestHash,
        /// The new expiry (Unix seconds).
        expires: u64,
        /// When the extension was made (Unix seconds).
        created: u64,
    },
}

impl Statement {
    /// The stream the statement speaks for.
    pub fn stream(&self) -> StreamId {
        match self {
            Statement::Rotate { stream, .. }
            | Statement::Revoke { stream, .. }
            | Statement::Extend { stream, .. } => *stream,
        }
    }

    fn message(&self) -> Vec<u8> {
        let mut m = STATEMENT_CONTEXT.to_vec();
        m.extend(postcard::to_stdvec(self).expect("a statement always serializes"));
        m
    }
}

/// One Ed25519 signature over a statement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementSignature {
    /// The signer's public key.
    pub key: [u8; 32],
    /// Signature bytes 0..32 (R).
    pub r: [u8; 32],
    /// Signature bytes 32..64 (S).
    pub s: [u8; 32],
}

/// A statement and its signatures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedStatement {
    /// What is said.
    pub statement: Statement,
    /// Who says it.
    pub signatures: Vec<StatementSignature>,
}

/// Which key vouched for a statement besides those it names as signers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Authority {
    /// A rotation signed by the old key (and the new one).
    OldKey,
    /// A root key.
    Root(PublicKey),
    /// A key of the stream (an extension; the reader checks which).
    Key(PublicKey),
}

/// Why statements are refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StatementError {
    /// The bytes do not decode, or carry an unknown version.
    #[error("trust statements do not decode: {0}")]
    Decode(String),
    /// More statements or signatures than allowed.
    #[error("trust statements: {0}")]
    TooMany(&'static str),
    /// A signature does not verify.
    #[error("a trust statement carries an invalid signature by key {0}")]
    BadSignature(String),
    /// A required signature is missing.
    #[error("a trust statement lacks the signature of {0}")]
    Unsigned(String),
    /// A statement that does not fit the bundle carrying it.
    #[error("a trust statement does not fit its bundle: {0}")]
    Misplaced(String),
}

impl SignedStatement {
    /// Signs `statement` with each of `keys`.
    pub fn sign(statement: Statement, keys: &[&SecretKey]) -> SignedStatement {
        let msg = statement.message();
        let signatures = keys
            .iter()
            .map(|k| {
                let sig = k.sign(&msg);
                StatementSignature {
                    key: k.public().0,
                    r: sig[..32].try_into().expect("32 bytes"),
                    s: sig[32..].try_into().expect("32 bytes"),
                }
            })
            .collect();
        SignedStatement {
            statement,
            signatures,
        }
    }

    /// Checks every signature; an invalid one is an error (never skipped).
    pub fn verify_signatures(&self) -> Result<(), StatementError> {
        if self.signatures.len() > MAX_SIGNATURES {
            return Err(StatementError::TooMany("more than 4 signatures"));
        }
        let msg = self.statement.message();
        for s in &self.signatures {
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(&s.r);
            sig[32..].copy_from_slice(&s.s);
            let key = PublicKey(s.key);
            key.verify(&msg, &sig)
                .map_err(|_| StatementError::BadSignature(key.short()))?;
        }
        Ok(())
    }

    /// Whether a valid signature by `key` is present (call
    /// [`SignedStatement::verify_signatures`] first).
    pub fn signed_by(&self, key: &PublicKey) -> bool {
        self.signatures.iter().any(|s| s.key == key.0)
    }

    /// Checks the signatures and who signed: a rotation needs its new key
    /// and its old key or one of `roots`; a revocation one of `roots`; an
    /// extension one of `keys` or `roots`.
    pub fn authority(
        &self,
        roots: &[PublicKey],
        keys: &[PublicKey],
    ) -> Result<Authority, StatementError> {
        self.verify_signatures()?;
        let root = roots.iter().find(|r| self.signed_by(r)).copied();
        match &self.statement {
            Statement::Rotate { old, new, .. } => {
                let (old, new) = (PublicKey(*old), PublicKey(*new));
                if !self.signed_by(&new) {
                    return Err(StatementError::Unsigned(format!(
                        "the new key {}",
                        new.short()
                    )));
                }
                if self.signed_by(&old) {
                    Ok(Authority::OldKey)
                } else {
                    root.map(Authority::Root).ok_or_else(|| {
                        StatementError::Unsigned(format!(
                            "the old key {} or a trusted root key",
                            old.short()
                        ))
                    })
                }
            }
            Statement::Revoke { .. } => root
                .map(Authority::Root)
                .ok_or_else(|| StatementError::Unsigned("a trusted root key".into())),
            Statement::Extend { .. } => {
                if let Some(k) = keys.iter().find(|k| self.signed_by(k)) {
                    return Ok(Authority::Key(*k));
                }
                root.map(Authority::Root).ok_or_else(|| {
                    StatementError::Unsigned("a signing or root key of the stream".into())
                })
            }
        }
    }
}

/// The statements encoding: [`STATEMENTS_VERSION`], then postcard.
pub fn encode(statements: &[SignedStatement]) -> Vec<u8> {
    versioned(statements)
}

/// [`STATEMENTS_VERSION`], then the postcard encoding of `list`.
fn versioned<T: Serialize>(list: &[T]) -> Vec<u8> {
    let mut out = vec![STATEMENTS_VERSION];
    out.extend(postcard::to_stdvec(list).expect("statements and signatures always serialize"));
    out
}

/// Decodes [`versioned`]'s bytes: the version, a list of `what` (at most
/// [`MAX_STATEMENTS`]), nothing after it.
fn unversioned<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    what: &'static str,
    too_many: &'static str,
) -> Result<Vec<T>, StatementError> {
    let (&version, body) = bytes
        .split_first()
        .ok_or_else(|| StatementError::Decode("empty".into()))?;
    if version != STATEMENTS_VERSION {
        return Err(StatementError::Decode(format!(
            "version {version}, this reader knows {STATEMENTS_VERSION}"
        )));
    }
    let (list, rest): (Vec<T>, _) =
        postcard::take_from_bytes(body).map_err(|e| StatementError::Decode(e.to_string()))?;
    if !rest.is_empty() {
        return Err(StatementError::Decode(format!("bytes after the {what}")));
    }
    if list.len() > MAX_STATEMENTS {
        return Err(StatementError::TooMany(too_many));
    }
    Ok(list)
}

/// Decodes [`encode`]'s bytes, bounded; signatures are not checked here.
pub fn decode(bytes: &[u8]) -> Result<Vec<SignedStatement>, StatementError> {
    let list: Vec<SignedStatement> = unversioned(bytes, "statements", "more than 16 statements")?;
    if list.iter().any(|s| s.signatures.len() > MAX_SIGNATURES) {
        return Err(StatementError::TooMany("more than 4 signatures"));
    }
    Ok(list)
}

/// The extension that carries `statements` in a manifest.
pub fn extension(statements: &[SignedStatement]) -> Extension {
    Extension {
        kind: EXTENSION_KIND,
        critical: true,
        data: encode(statements),
    }
}

/// The rotation and revocation statements a manifest carries, checked to fit
/// it: the manifest's stream, a sequence no later than the manifest's, and
/// no extension statements (those ride beside a bundle, never inside). At
/// most one statement extension. Signatures are not checked here.
pub fn statements(m: &Manifest) -> Result<Vec<SignedStatement>, StatementError> {
    let Some(ext) = m
        .extension(EXTENSION_KIND)
        .map_err(|_| StatementError::Misplaced("two trust statement extensions".into()))?
    else {
        return Ok(vec![]);
    };
    let list = decode(&ext.data)?;
    for s in &list {
        let from = match &s.statement {
            Statement::Rotate { from_sequence, .. } | Statement::Revoke { from_sequence, .. } => {
                *from_sequence
            }
            Statement::Extend { .. } => {
                return Err(StatementError::Misplaced(
                    "a validity extension inside a manifest".into(),
                ))
            }
        };
        if s.statement.stream() != m.stream {
            return Err(StatementError::Misplaced(format!(
                "a statement for stream {} in a bundle of stream {}",
                s.statement.stream(),
                m.stream
            )));
        }
        if from == 0 || from > m.sequence {
            return Err(StatementError::Misplaced(format!(
                "a statement from sequence {from} in bundle {}",
                m.sequence
            )));
        }
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SecretKey {
        SecretKey::from_seed([n; 32])
    }

    fn rotate(old: &SecretKey, new: &SecretKey) -> Statement {
        Statement::Rotate {
            stream: StreamId([1; 16]),
            from_sequence: 3,
            old: old.public().0,
            new: new.public().0,
            created: 1_700_000_000,
        }
    }

    #[test]
    fn a_rotation_needs_the_new_key_and_the_old_key_or_a_root() {
        let (old, new, root) = (key(1), key(2), key(9));
        let roots = [root.public()];
        let both = SignedStatement::sign(rotate(&old, &new), &[&old, &new]);
        assert_eq!(both.authority(&roots, &[]), Ok(Authority::OldKey));
        let by_root = SignedStatement::sign(rotate(&old, &new), &[&root, &new]);
        assert_eq!(
            by_root.authority(&roots, &[]),
            Ok(Authority::Root(root.public()))
        );
        let only_old = SignedStatement::sign(rotate(&old, &new), &[&old]);
        assert!(matches!(
            only_old.authority(&roots, &[]),
            Err(StatementError::Unsigned(_))
        ));
        let only_new = SignedStatement::sign(rotate(&old, &new), &[&new]);
        assert!(matches!(
            only_new.authority(&[], &[]),
            Err(StatementError::Unsigned(_))
        ));
        // A signature moved onto another statement does not verify.
        let mut moved = both.clone();
        if let Statement::Rotate { from_sequence, .. } = &mut moved.statement {
            *from_sequence = 4;
        }
        assert!(matches!(
            moved.authority(&roots, &[]),
            Err(StatementError::BadSignature(_))
        ));
    }

    #[test]
    fn revocation_needs_a_root_and_extension_a_named_key() {
        let (k, root) = (key(1), key(9));
        let revoke = Statement::Revoke {
            stream: StreamId([1; 16]),
            from_sequence: 5,
            key: k.public().0,
            created: 1,
        };
        let by_key = SignedStatement::sign(revoke.clone(), &[&k]);
        assert!(by_key.authority(&[root.public()], &[k.public()]).is_err());
        let by_root = SignedStatement::sign(revoke, &[&root]);
        assert_eq!(
            by_root.authority(&[root.public()], &[]),
            Ok(Authority::Root(root.public()))
        );
        let extend = SignedStatement::sign(
            Statement::Extend {
                stream: StreamId([1; 16]),
                sequence: 2,
                manifest: ManifestHash([3; 32]),
                expires: 10,
                created: 5,
            },
            &[&k],
        );
        assert_eq!(
            extend.authority(&[], &[k.public()]),
            Ok(Authority::Key(k.public()))
        );
        assert!(extend.authority(&[root.public()], &[]).is_err());
    }

    #[test]
    fn encoding_round_trips_and_refuses_garbage() {
        let (old, new) = (key(1), key(2));
        let list = vec![SignedStatement::sign(rotate(&old, &new), &[&old, &new])];
        let bytes = encode(&list);
        assert_eq!(bytes[0], STATEMENTS_VERSION);
        assert_eq!(decode(&bytes).unwrap(), list);
        assert!(matches!(decode(&[]), Err(StatementError::Decode(_))));
        assert!(matches!(decode(&[2, 0]), Err(StatementError::Decode(_))));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(decode(&longer), Err(StatementError::Decode(_))));
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_err());
        }
        let many = vec![list[0].clone(); MAX_STATEMENTS + 1];
        assert!(matches!(
            decode(&encode(&many)),
            Err(StatementError::TooMany(_))
        ));
    }
}

/// The file beside a bundle's manifest that carries co-signatures for a
/// stream that needs more than one signature (bundle-format §16.6).
pub const COSIGN_FILE: &str = "cosignatures.ferry";
/// Domain separation for co-signatures.
pub const COSIGN_CONTEXT: &[u8] = b"ferry bundle cosignature v1\0";

fn cosign_message(manifest: &ManifestHash) -> Vec<u8> {
    let mut m = COSIGN_CONTEXT.to_vec();
    m.extend_from_slice(&manifest.0);
    m
}

/// A co-signature by `key` of the bundle whose manifest hash is `manifest`.
pub fn cosign(manifest: &ManifestHash, key: &SecretKey) -> StatementSignature {
    let sig = key.sign(&cosign_message(manifest));
    StatementSignature {
        key: key.public().0,
        r: sig[..32].try_into().expect("32 bytes"),
        s: sig[32..].try_into().expect("32 bytes"),
    }
}

/// The co-signatures encoding: [`STATEMENTS_VERSION`], then postcard.
pub fn encode_cosignatures(sigs: &[StatementSignature]) -> Vec<u8> {
    versioned(sigs)
}

/// Decodes the co-signatures encoding (bounded: at most
/// [`MAX_STATEMENTS`]); signatures are not checked here.
pub fn decode_cosignatures(bytes: &[u8]) -> Result<Vec<StatementSignature>, StatementError> {
    unversioned(bytes, "signatures", "more than 16 co-signatures")
}

/// Decodes co-signatures of the bundle `manifest` and checks every one
/// (an invalid one is an error, never skipped); returns their keys.
pub fn cosigners(manifest: &ManifestHash, bytes: &[u8]) -> Result<Vec<PublicKey>, StatementError> {
    let msg = cosign_message(manifest);
    decode_cosignatures(bytes)?
        .iter()
        .map(|s| {
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(&s.r);
            sig[32..].copy_from_slice(&s.s);
            let key = PublicKey(s.key);
            key.verify(&msg, &sig)
                .map(|()| key)
                .map_err(|_| StatementError::BadSignature(key.short()))
        })
        .collect()
}

#[cfg(test)]
mod cosign_tests {
    use super::*;

    #[test]
    fn cosignatures_verify_only_for_their_bundle() {
        let (a, b) = (SecretKey::from_seed([1; 32]), SecretKey::from_seed([2; 32]));
        let h = ManifestHash([7; 32]);
        let bytes = encode_cosignatures(&[cosign(&h, &a), cosign(&h, &b)]);
        assert_eq!(cosigners(&h, &bytes), Ok(vec![a.public(), b.public()]));
        assert!(matches!(
            cosigners(&ManifestHash([8; 32]), &bytes),
            Err(StatementError::BadSignature(_))
        ));
        for n in 0..bytes.len() {
            assert!(cosigners(&h, &bytes[..n]).is_err());
        }
    }
}
