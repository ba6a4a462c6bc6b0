//! The insides this outside feeds, each known by its receipt key
//! (`ferry-out trust-inside`), and the last receipt each sent back
//! (`ferry-out receipt add`).

use super::{ctx, Delivery, Ledger, BUNDLES, DELIVERED};
use anyhow::{Context, Result};
use ferry_protocol::id::Sha256;
use ferry_protocol::keys::PublicKey;
use ferry_protocol::receipt::{Failure, Receipt};
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Inside receipt key -> [`Inside`] (postcard).
const INSIDES: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("insides");

/// What the ledger knows of one inside.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Inside {
    /// When it was trusted (Unix seconds).
    pub trusted_at: u64,
    /// Its newest receipt, and when it was recorded.
    pub receipt: Option<(Receipt, u64)>,
}

impl Ledger {
    /// Trusts `key` as an inside's receipt key; false if it already was.
    pub fn trust_inside(&self, key: &PublicKey, now: u64) -> Result<bool> {
        let txn = self.db.begin_write().map_err(ctx("begin"))?;
        let added = {
            let mut t = txn.open_table(INSIDES).map_err(ctx("open"))?;
            if t.get(&key.0).map_err(ctx("read"))?.is_some() {
                false
            } else {
                let inside = Inside {
                    trusted_at: now,
                    receipt: None,
                };
                t.insert(&key.0, postcard::to_stdvec(&inside)?.as_slice())
                    .map_err(ctx("write"))?;
                true
            }
        };
        txn.commit().map_err(ctx("commit"))?;
        Ok(added)
    }

    /// Every trusted inside, by key.
    pub fn insides(&self) -> Result<Vec<(PublicKey, Inside)>> {
        let txn = self.db.begin_read().map_err(ctx("begin"))?;
        let t = match txn.open_table(INSIDES) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(vec![]),
            Err(e) => return Err(ctx("open")(e)),
        };
        let mut out = vec![];
        for r in t.iter().map_err(ctx("read"))? {
            let (k, v) = r.map_err(ctx("read"))?;
            let inside = postcard::from_bytes(v.value()).context("ledger: bad inside record")?;
            out.push((PublicKey(*k.value()), inside));
        }
        Ok(out)
    }

    /// Records `receipt` as the newest from the inside `key` (already
    /// checked by the caller), and every bundle it has applied as delivered
    /// (`via` "receipt"), in one transaction.
    pub fn record_receipt(&self, key: &PublicKey, receipt: &Receipt, now: u64) -> Result<()> {
        let txn = self.db.begin_write().map_err(ctx("begin"))?;
        {
            let mut t = txn.open_table(INSIDES).map_err(ctx("open"))?;
            let mut inside: Inside = match t.get(&key.0).map_err(ctx("read"))? {
                Some(v) => postcard::from_bytes(v.value()).context("ledger: bad inside record")?,
                None => anyhow::bail!("{} is not a trusted inside key", key.to_text()),
            };
            inside.receipt = Some((receipt.clone(), now));
            t.insert(&key.0, postcard::to_stdvec(&inside)?.as_slice())
                .map_err(ctx("write"))?;
            let bundles = txn.open_table(BUNDLES).map_err(ctx("open"))?;
            let mut delivered = txn.open_table(DELIVERED).map_err(ctx("open"))?;
            let by_receipt = postcard::to_stdvec(&Delivery {
                at: now,
                via: "receipt".into(),
            })?;
            for r in bundles.range(1..=receipt.applied).map_err(ctx("read"))? {
                let (seq, _) = r.map_err(ctx("read"))?;
                let seq = seq.value();
                if delivered.get(seq).map_err(ctx("read"))?.is_none() {
                    delivered
                        .insert(seq, by_receipt.as_slice())
                        .map_err(ctx("write"))?;
                }
            }
        }
        txn.commit().map_err(ctx("commit"))?;
        Ok(())
    }
}

/// Inside receipt key -> its latest inventory's objects (postcard of
/// `Vec<(Sha256, u64)>`, sorted): what `ferry-in adopt` found there.
const INVENTORIES: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("inventories");

impl Ledger {
    /// Records the objects of an inventory (checked by the caller) as held
    /// by the inside `key`, replacing its earlier inventory.
    pub fn record_inventory(&self, key: &PublicKey, objects: &[(Sha256, u64)]) -> Result<()> {
        let txn = self.db.begin_write().map_err(ctx("begin"))?;
        {
            let t = txn.open_table(INSIDES).map_err(ctx("open"))?;
            if t.get(&key.0).map_err(ctx("read"))?.is_none() {
                anyhow::bail!("{} is not a trusted inside key", key.to_text());
            }
            let mut inv = txn.open_table(INVENTORIES).map_err(ctx("open"))?;
            inv.insert(&key.0, postcard::to_stdvec(objects)?.as_slice())
                .map_err(ctx("write"))?;
        }
        txn.commit().map_err(ctx("commit"))?;
        Ok(())
    }

    /// The objects every trusted inside holds by its inventory (digest ->
    /// size): a bundle may name them without their content. Empty unless
    /// every trusted inside sent one, since one bundle serves them all.
    pub fn adopted(&self) -> Result<HashMap<Sha256, u64>> {
        let insides = self.insides()?;
        if insides.is_empty() {
            return Ok(HashMap::new());
        }
        let txn = self.db.begin_read().map_err(ctx("begin"))?;
        let t = match txn.open_table(INVENTORIES) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(HashMap::new()),
            Err(e) => return Err(ctx("open")(e)),
        };
        let mut common: Option<HashMap<Sha256, u64>> = None;
        for (key, _) in insides {
            let Some(v) = t.get(&key.0).map_err(ctx("read"))? else {
                return Ok(HashMap::new());
            };
            let list: Vec<(Sha256, u64)> =
                postcard::from_bytes(v.value()).context("ledger: bad inventory")?;
            common = Some(match common {
                None => list.into_iter().collect(),
                Some(c) => list
                    .into_iter()
                    .filter(|(s, n)| c.get(s) == Some(n))
                    .collect(),
            });
        }
        Ok(common.unwrap_or_default())
    }
}

/// Inside receipt key -> the refusals its newest receipt listed (postcard
/// of `Vec<Failure>`).
const FAILURES: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("inside_failures");

impl Ledger {
    /// Records the refusals the newest receipt of `key` listed.
    pub fn record_failures(&self, key: &PublicKey, failures: &[Failure]) -> Result<()> {
        let txn = self.db.begin_write().map_err(ctx("begin"))?;
        {
            let mut t = txn.open_table(FAILURES).map_err(ctx("open"))?;
            t.insert(&key.0, postcard::to_stdvec(failures)?.as_slice())
                .map_err(ctx("write"))?;
        }
        txn.commit().map_err(ctx("commit"))?;
        Ok(())
    }

    /// The refusals the newest receipt of `key` listed.
    pub fn failures(&self, key: &PublicKey) -> Result<Vec<Failure>> {
        let txn = self.db.begin_read().map_err(ctx("begin"))?;
        let t = match txn.open_table(FAILURES) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(vec![]),
            Err(e) => return Err(ctx("open")(e)),
        };
        let v = t.get(&key.0).map_err(ctx("read"))?;
        Ok(match v {
            Some(v) => postcard::from_bytes(v.value()).context("ledger: bad failures")?,
            None => vec![],
        })
    }
}
