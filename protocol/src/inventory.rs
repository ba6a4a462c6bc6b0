//! Inventories: an inside's signed list of the objects it already holds
//! outside Ferry (`ferry-in adopt`: a registry, mirror trees), by SHA-256 and
//! size, carried out by hand like a receipt. The outside that loads one
//! (`ferry-out receipt add`) ships those objects' content no more: their
//! catalog entries go out as usual, and the inside takes their bytes from
//! where it found them, checking every digest (bundle-format §18).
//!
//! File layout:
//!
//! ```text
//! magic    8 bytes  "FERRYINV"
//! version  1 byte   1
//! signer  32 bytes  the inside's ed25519 public key
//! body     n bytes  postcard of `Inventory`
//! sig     64 bytes  ed25519 over everything before it
//! ```

use crate::id::{Sha256, StreamId};
use crate::keys::{PublicKey, SecretKey};
use serde::{Deserialize, Serialize};

/// The file's first bytes.
pub const MAGIC: &[u8; 8] = b"FERRYINV";
/// The only version.
pub const VERSION: u8 = 1;
/// An inventory file is at most this long: 64 MiB, about 1.5 million objects.
pub const MAX_INVENTORY_BYTES: usize = 64 << 20;
/// At most this many objects.
pub const MAX_OBJECTS: usize = 1_500_000;

/// What an inside says it holds outside Ferry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    /// The stream it follows, if any yet.
    pub stream: Option<StreamId>,
    /// When it was made (Unix seconds).
    pub created: u64,
    /// Every object found: SHA-256 and size, sorted by digest, each once.
    pub objects: Vec<(Sha256, u64)>,
}

/// Why an inventory file is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InventoryError {
    /// Longer than [`MAX_INVENTORY_BYTES`], or shorter than the fixed parts.
    #[error("an inventory is {min} to {max} bytes; this is {0}", min = MIN_BYTES, max = MAX_INVENTORY_BYTES)]
    Size(usize),
    /// Not an inventory.
    #[error("not a Ferry inventory (no FERRYINV magic)")]
    Magic,
    /// A version this reader does not know.
    #[error("inventory version {0} is not supported (this reader knows version 1)")]
    Version(u8),
    /// Signed by a key not trusted as an inside's.
    #[error("the inventory is signed by {0}, which is not a trusted inside key (`ferry-out trust-inside`)")]
    Untrusted(String),
    /// The signature does not verify.
    #[error("the inventory's signature does not verify: it was altered or damaged")]
    Signature,
    /// The body does not decode, or breaks a rule.
    #[error("the inventory's body is malformed: {0}")]
    Body(String),
}

const MIN_BYTES: usize = crate::signed_file::OVERHEAD;

impl Inventory {
    /// An inventory of `objects` (sorted and deduplicated here).
    pub fn new(stream: Option<StreamId>, created: u64, mut objects: Vec<(Sha256, u64)>) -> Self {
        objects.sort();
        objects.dedup();
        Inventory {
            stream,
            created,
            objects,
        }
    }

    /// The signed file.
    pub fn sign(&self, key: &SecretKey) -> Vec<u8> {
        let body = postcard::to_stdvec(self).expect("an inventory always serializes");
        crate::signed_file::seal(MAGIC, VERSION, key, &body)
    }

    /// Checks an inventory file: size, magic, version, a signer among
    /// `trusted`, the signature, then the body (at most [`MAX_OBJECTS`],
    /// sorted, no digest twice). Returns it and its signer.
    pub fn open(
        file: &[u8],
        trusted: &[PublicKey],
    ) -> Result<(Inventory, PublicKey), InventoryError> {
        use crate::signed_file::Refused;
        let (_, signer, body) =
            crate::signed_file::open(file, MAGIC, &[VERSION], MAX_INVENTORY_BYTES, trusted)
                .map_err(|e| match e {
                    Refused::Size(n) => InventoryError::Size(n),
                    Refused::Magic => InventoryError::Magic,
                    Refused::Version(v) => InventoryError::Version(v),
                    Refused::Untrusted(k) => InventoryError::Untrusted(k),
                    Refused::Signature => InventoryError::Signature,
                })?;
        let inv: Inventory =
            postcard::from_bytes(body).map_err(|e| InventoryError::Body(e.to_string()))?;
        if inv.objects.len() > MAX_OBJECTS {
            return Err(InventoryError::Body(format!(
                "{} objects, more than {MAX_OBJECTS}",
                inv.objects.len()
            )));
        }
        if inv.objects.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(InventoryError::Body(
                "objects not sorted by digest, or a digest twice".into(),
            ));
        }
        Ok((inv, signer))
    }
}

/// Whether `file` looks like an inventory (its magic), to tell it from a receipt.
pub fn is_inventory(file: &[u8]) -> bool {
    file.starts_with(MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inventory_round_trips_and_bad_ones_are_refused_by_variant() {
        let key = SecretKey::from_seed([1; 32]);
        let other = SecretKey::from_seed([2; 32]);
        let objects = vec![
            (Sha256::of(b"b"), 1),
            (Sha256::of(b"a"), 1),
            (Sha256::of(b"a"), 1),
        ];
        let inv = Inventory::new(None, 5, objects);
        assert_eq!(inv.objects.len(), 2);
        let file = inv.sign(&key);
        assert!(is_inventory(&file));
        assert_eq!(Inventory::open(&file, &[key.public()]).unwrap().0, inv);
        assert_eq!(
            Inventory::open(&file, &[other.public()]),
            Err(InventoryError::Untrusted(key.public().to_text()))
        );
        let mut altered = file.clone();
        altered[45] ^= 1;
        assert_eq!(
            Inventory::open(&altered, &[key.public()]),
            Err(InventoryError::Signature)
        );
        let mut version = file.clone();
        version[8] = 9;
        assert_eq!(
            Inventory::open(&version, &[key.public()]),
            Err(InventoryError::Version(9))
        );
        // Unsorted, properly signed.
        let mut unsorted = inv.clone();
        unsorted.objects.reverse();
        assert!(matches!(
            Inventory::open(&unsorted.sign(&key), &[key.public()]),
            Err(InventoryError::Body(_))
        ));
    }
}
