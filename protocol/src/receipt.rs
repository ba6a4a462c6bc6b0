//! Receipts: the inside's signed word on what it holds, carried back to the
//! outside by hand (a file on a stick, or a QR code on paper), since the link
//! itself has no way back.
//!
//! A receipt names the stream, the last bundle applied (sequence and
//! manifest hash), the bundles held back and why, and a digest of the
//! inventory (the catalog the inside serves), at a time. The inside signs it
//! with its own ed25519 key, which the outside trusts separately from any
//! bundle key (`ferry-out trust-inside`).
//!
//! File layout (`docs/bundle-format.md` §15):
//!
//! ```text
//! magic    8 bytes  "FERRYRCT"
//! version  1 byte   2 (1: no failures)
//! signer  32 bytes  the inside's ed25519 public key
//! body     n bytes  postcard of `Receipt`, then (version 2) of `Vec<Failure>`
//! sig     64 bytes  ed25519 over everything before it
//! ```
//!
//! The whole file is at most [`MAX_RECEIPT_BYTES`], so that its text form
//! ([`to_text`]) fits one QR code.

use crate::catalog::Catalog;
use crate::id::{ManifestHash, StreamId};
use crate::keys::{PublicKey, SecretKey};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// The file's first bytes.
pub const MAGIC: &[u8; 8] = b"FERRYRCT";
/// The version written: 2 adds the failures after the `Receipt`. Version 1
/// (no failures) is still read.
pub const VERSION: u8 = 2;
/// How many refused bundles a receipt lists at most (the latest).
pub const MAX_FAILURES_LISTED: usize = 4;
/// How long a failure's refusal name may be.
pub const MAX_REFUSAL_CHARS: usize = 32;
/// A receipt file is at most this long (its text form then fits a QR code
/// of version 40 at error correction level L in byte mode: 2,953 bytes).
pub const MAX_RECEIPT_BYTES: usize = 2_048;
/// How many held bundles a receipt lists at most, and how long each reason
/// may be: what does not fit is cut, and `held_more` says how many.
pub const MAX_HELD_LISTED: usize = 16;
/// See [`MAX_HELD_LISTED`].
pub const MAX_REASON_CHARS: usize = 60;
/// The prefix of the text form.
pub const TEXT_PREFIX: &str = "ferry-receipt:";

/// What the inside says it holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The stream it follows (none before the first bundle).
    pub stream: Option<StreamId>,
    /// The last sequence applied (0 before the first).
    pub applied: u64,
    /// Its manifest hash.
    pub applied_hash: Option<ManifestHash>,
    /// Bundles received but not applied (a gap before them, or refused).
    pub held: Vec<HeldBundle>,
    /// Held bundles not listed (beyond [`MAX_HELD_LISTED`]).
    pub held_more: u64,
    /// [`inventory_digest`] of the catalog served.
    pub inventory: [u8; 32],
    /// Objects in it.
    pub objects: u64,
    /// When the receipt was written (Unix seconds).
    pub created: u64,
}

/// A bundle the inside holds without having applied it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldBundle {
    /// Its sequence.
    pub sequence: u64,
    /// Why it waits (cut to [`MAX_REASON_CHARS`]).
    pub reason: String,
}

/// A bundle the inside refused (the latest few, newest last).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The bundle's sequence (0 when its manifest could not be read).
    pub sequence: u64,
    /// Its manifest hash (none when its manifest could not be read).
    pub hash: Option<ManifestHash>,
    /// Why: the refusal's variant, such as `BadPrevious` (cut to
    /// [`MAX_REFUSAL_CHARS`]).
    pub refusal: String,
    /// When (Unix seconds).
    pub at: u64,
}

/// Why a receipt file is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReceiptError {
    /// Longer than [`MAX_RECEIPT_BYTES`], or shorter than the fixed parts.
    #[error("a receipt is {min} to {max} bytes; this is {0}", min = MIN_BYTES, max = MAX_RECEIPT_BYTES)]
    Size(usize),
    /// Not a receipt.
    #[error("not a Ferry receipt (no FERRYRCT magic)")]
    Magic,
    /// A version this reader does not know.
    #[error("receipt version {0} is not supported (this reader knows versions 1 and 2)")]
    Version(u8),
    /// Signed by a key not trusted as an inside's.
    #[error("the receipt is signed by {0}, which is not a trusted inside key (`ferry-out trust-inside`)")]
    Untrusted(String),
    /// The signature does not verify.
    #[error("the receipt's signature does not verify: it was altered or damaged")]
    Signature,
    /// The body does not decode.
    #[error("the receipt's body does not decode: {0}")]
    Body(String),
    /// The text form is not `ferry-receipt:` and base64.
    #[error("not a receipt's text form (ferry-receipt: followed by base64url)")]
    Text,
}

const MIN_BYTES: usize = crate::signed_file::OVERHEAD;

/// The digest of an inventory: BLAKE3 of the catalog's encoding. Both sides
/// compute it the same way (the outside from its ledger's catalog).
pub fn inventory_digest(catalog: &Catalog) -> [u8; 32] {
    *blake3::hash(&catalog.to_bytes()).as_bytes()
}

impl Receipt {
    /// Cuts the held list and reasons to the limits, so the receipt fits.
    pub fn trimmed(mut self) -> Receipt {
        if self.held.len() > MAX_HELD_LISTED {
            self.held_more += (self.held.len() - MAX_HELD_LISTED) as u64;
            self.held.truncate(MAX_HELD_LISTED);
        }
        for h in &mut self.held {
            if h.reason.chars().count() > MAX_REASON_CHARS {
                h.reason = h.reason.chars().take(MAX_REASON_CHARS - 1).collect();
                h.reason.push('…');
            }
        }
        self
    }

    /// The signed file, with no failures. The receipt is trimmed to the
    /// limits first.
    pub fn sign(self, key: &SecretKey) -> Vec<u8> {
        self.sign_with(Vec::new(), key)
    }

    /// The signed file with `failures` (the latest [`MAX_FAILURES_LISTED`]
    /// kept, names cut). The receipt is trimmed to the limits first.
    pub fn sign_with(self, mut failures: Vec<Failure>, key: &SecretKey) -> Vec<u8> {
        let cut = failures.len().saturating_sub(MAX_FAILURES_LISTED);
        failures.drain(..cut);
        for f in &mut failures {
            f.refusal = f.refusal.chars().take(MAX_REFUSAL_CHARS).collect();
        }
        let mut body = postcard::to_stdvec(&self.trimmed()).expect("a receipt always serializes");
        body.extend(postcard::to_stdvec(&failures).expect("failures always serialize"));
        crate::signed_file::seal(MAGIC, VERSION, key, &body)
    }

    /// Checks a receipt file: size, magic, version, a signer among
    /// `trusted`, the signature, then the body. Returns the receipt and its
    /// signer.
    pub fn open(file: &[u8], trusted: &[PublicKey]) -> Result<(Receipt, PublicKey), ReceiptError> {
        Self::open_with_failures(file, trusted).map(|(r, _, k)| (r, k))
    }

    /// [`Receipt::open`], with the failures it lists (none in version 1).
    pub fn open_with_failures(
        file: &[u8],
        trusted: &[PublicKey],
    ) -> Result<(Receipt, Vec<Failure>, PublicKey), ReceiptError> {
        use crate::signed_file::Refused;
        let (version, signer, signed_body) =
            crate::signed_file::open(file, MAGIC, &[1, VERSION], MAX_RECEIPT_BYTES, trusted)
                .map_err(|e| match e {
                    Refused::Size(n) => ReceiptError::Size(n),
                    Refused::Magic => ReceiptError::Magic,
                    Refused::Version(v) => ReceiptError::Version(v),
                    Refused::Untrusted(k) => ReceiptError::Untrusted(k),
                    Refused::Signature => ReceiptError::Signature,
                })?;
        let body = |e: postcard::Error| ReceiptError::Body(e.to_string());
        let (receipt, rest): (Receipt, _) = postcard::take_from_bytes(signed_body).map_err(body)?;
        let (failures, rest) = match version {
            1 => (Vec::new(), rest),
            _ => postcard::take_from_bytes::<Vec<Failure>>(rest).map_err(body)?,
        };
        if !rest.is_empty() {
            return Err(ReceiptError::Body("bytes after the body".into()));
        }
        if failures.len() > MAX_FAILURES_LISTED {
            return Err(ReceiptError::Body("too many failures listed".into()));
        }
        Ok((receipt, failures, signer))
    }
}

/// The text form of a receipt file, for a QR code or a terminal:
/// `ferry-receipt:` and the file in unpadded base64url.
pub fn to_text(file: &[u8]) -> String {
    format!(
        "{TEXT_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(file)
    )
}

/// A receipt file from its text form (white space around it allowed).
pub fn from_text(text: &str) -> Result<Vec<u8>, ReceiptError> {
    let b64 = text
        .trim()
        .strip_prefix(TEXT_PREFIX)
        .ok_or(ReceiptError::Text)?;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(b64)
        .map_err(|_| ReceiptError::Text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(held: usize) -> Receipt {
        Receipt {
            stream: Some(StreamId([3; 16])),
            applied: 41,
            applied_hash: Some(ManifestHash([9; 32])),
            held: (0..held as u64)
                .map(|i| HeldBundle {
                    sequence: 43 + i,
                    reason: "waits for bundle 42, which has not arrived; the chain \
                             must be applied in order"
                        .into(),
                })
                .collect(),
            held_more: 0,
            inventory: [5; 32],
            objects: 1_000_000,
            created: 1_800_000_000,
        }
    }

    #[test]
    fn a_signed_receipt_opens_with_its_key_and_its_text_form_round_trips() {
        let key = SecretKey::from_seed([1; 32]);
        let file = receipt(2).sign(&key);
        let (r, signer) = Receipt::open(&file, &[key.public()]).unwrap();
        assert_eq!(signer, key.public());
        assert_eq!(r.applied, 41);
        assert_eq!(r.held.len(), 2);
        assert_eq!(from_text(&to_text(&file)).unwrap(), file);
        assert_eq!(from_text("ferry-receipt:%%"), Err(ReceiptError::Text));
    }

    fn failures(n: u64) -> Vec<Failure> {
        (0..n)
            .map(|i| Failure {
                sequence: 40 + i,
                hash: Some(ManifestHash([i as u8; 32])),
                refusal: "ReplayedDifferentAndAVeryLongNameIndeed".into(),
                at: 1_800_000_000 + i,
            })
            .collect()
    }

    #[test]
    fn failures_ride_in_version_2_and_version_1_is_still_read() {
        let key = SecretKey::from_seed([1; 32]);
        let file = receipt(1).sign_with(failures(10), &key);
        assert_eq!(file[8], 2);
        let (_, f, _) = Receipt::open_with_failures(&file, &[key.public()]).unwrap();
        assert_eq!(f.len(), MAX_FAILURES_LISTED);
        assert_eq!(f.last().unwrap().sequence, 49, "the latest are kept");
        assert_eq!(f[0].refusal.chars().count(), MAX_REFUSAL_CHARS);
        // A version-1 file: the receipt alone.
        let mut v1 = MAGIC.to_vec();
        v1.push(1);
        v1.extend_from_slice(&key.public().0);
        v1.extend(postcard::to_stdvec(&receipt(1)).unwrap());
        let sig = key.sign(&v1);
        v1.extend_from_slice(&sig);
        let (r, f, _) = Receipt::open_with_failures(&v1, &[key.public()]).unwrap();
        assert_eq!((r, f), (receipt(1), vec![]));
    }

    #[test]
    fn a_receipt_with_many_held_bundles_still_fits_one_qr_code() {
        let key = SecretKey::from_seed([1; 32]);
        let file = receipt(500).sign_with(failures(100), &key);
        assert!(file.len() <= MAX_RECEIPT_BYTES, "{} bytes", file.len());
        assert!(
            to_text(&file).len() <= 2_953,
            "the text form fits a QR code"
        );
        let (r, _) = Receipt::open(&file, &[key.public()]).unwrap();
        assert_eq!(r.held.len(), MAX_HELD_LISTED);
        assert_eq!(r.held_more, 500 - MAX_HELD_LISTED as u64);
        assert!(r.held[0].reason.chars().count() <= MAX_REASON_CHARS);
    }

    #[test]
    fn altered_foreign_truncated_and_unknown_receipts_are_refused() {
        let key = SecretKey::from_seed([1; 32]);
        let other = SecretKey::from_seed([2; 32]);
        let file = receipt(1).sign(&key);
        let trusted = [key.public()];

        let mut altered = file.clone();
        altered[50] ^= 1;
        assert_eq!(
            Receipt::open(&altered, &trusted),
            Err(ReceiptError::Signature)
        );
        assert_eq!(
            Receipt::open(&receipt(1).sign(&other), &trusted),
            Err(ReceiptError::Untrusted(other.public().to_text()))
        );
        assert_eq!(
            Receipt::open(&file[..60], &trusted),
            Err(ReceiptError::Size(60))
        );
        let mut magic = file.clone();
        magic[0] = b'X';
        assert_eq!(Receipt::open(&magic, &trusted), Err(ReceiptError::Magic));
        let mut version = file.clone();
        version[8] = 3;
        assert_eq!(
            Receipt::open(&version, &trusted),
            Err(ReceiptError::Version(3))
        );
        // A body that does not decode, properly signed.
        let mut bogus = file[..41].to_vec();
        bogus.extend_from_slice(&[0xff; 4]);
        let sig = key.sign(&bogus);
        bogus.extend_from_slice(&sig);
        assert!(matches!(
            Receipt::open(&bogus, &trusted),
            Err(ReceiptError::Body(_))
        ));
    }
}
