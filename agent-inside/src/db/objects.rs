//! Reference counts of the object store (`crate::objects`): per SHA-256,
//! how many keys of the applied catalog name it (`object_refs`), changed in
//! the apply's transaction by its changes only; and the digests whose count
//! fell to zero (`objects_released`, with the sequence that released them),
//! whose files go after the switch once no kept generation names them.
//!
//! A database from before the object store is counted whole once, on open
//! (`migrate`).

use super::{ctx, META};
use anyhow::Result;
use ferry_protocol::catalog::Object;
use ferry_protocol::id::Sha256;
use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

pub(crate) const REFS: TableDefinition<&[u8; 32], u64> = TableDefinition::new("object_refs");
pub(super) const RELEASED: TableDefinition<&[u8; 32], u64> =
    TableDefinition::new("objects_released");
/// Set once the counts match the catalog (absent: count it whole).
pub(crate) const COUNTED: &str = "object_refs_counted";

/// The open tables an apply's catalog write changes counts in.
pub(super) struct Counts<'t> {
    refs: redb::Table<'t, &'static [u8; 32], u64>,
    released: redb::Table<'t, &'static [u8; 32], u64>,
    sequence: u64,
}

impl<'t> Counts<'t> {
    /// Opens the tables in `txn`; digests released are tagged `sequence`.
    pub(super) fn open(txn: &'t WriteTransaction, sequence: u64) -> Result<Self> {
        Ok(Counts {
            refs: txn.open_table(REFS).map_err(ctx("open"))?,
            released: txn.open_table(RELEASED).map_err(ctx("open"))?,
            sequence,
        })
    }

    /// One more key names `o`'s digest (a file).
    pub(super) fn add(&mut self, o: &Object) -> Result<()> {
        if let Object::File(f) = o {
            let n = self.count(&f.sha256)?;
            self.refs.insert(&f.sha256.0, n + 1).map_err(ctx("write"))?;
        }
        Ok(())
    }

    /// One key less names `o`'s digest; at zero the digest is released.
    pub(super) fn drop_ref(&mut self, o: &Object) -> Result<()> {
        if let Object::File(f) = o {
            match self.count(&f.sha256)? {
                0 | 1 => {
                    self.refs.remove(&f.sha256.0).map_err(ctx("write"))?;
                    self.released
                        .insert(&f.sha256.0, self.sequence)
                        .map_err(ctx("write"))?;
                }
                n => {
                    self.refs.insert(&f.sha256.0, n - 1).map_err(ctx("write"))?;
                }
            }
        }
        Ok(())
    }

    fn count(&self, sha: &Sha256) -> Result<u64> {
        Ok(self
            .refs
            .get(&sha.0)
            .map_err(ctx("read"))?
            .map_or(0, |v| v.value()))
    }
}

/// Counts the stored catalog whole when the database has no counts yet (a
/// database from before the object store), in `txn`.
pub(super) fn migrate(txn: &WriteTransaction) -> Result<()> {
    {
        let m = txn.open_table(META).map_err(ctx("open"))?;
        if m.get(COUNTED).map_err(ctx("read"))?.is_some() {
            return Ok(());
        }
    }
    txn.delete_table(REFS).map_err(ctx("clear"))?;
    {
        let t = txn
            .open_table(super::catalog::OBJECTS)
            .map_err(ctx("open"))?;
        let mut counts = Counts::open(txn, 0)?;
        for r in t.iter().map_err(ctx("read"))? {
            let (_, v) = r.map_err(ctx("read"))?;
            counts.add(&super::catalog::decode_object(v.value())?)?;
        }
    }
    let mut m = txn.open_table(META).map_err(ctx("open"))?;
    m.insert(COUNTED, [1u8].as_slice()).map_err(ctx("write"))?;
    Ok(())
}

impl super::Db {
    /// How many keys of the applied catalog name object `sha` (0: none).
    pub fn object_refs(&self, sha: &Sha256) -> Result<u64> {
        let txn = self.db.begin_read().map_err(ctx("begin"))?;
        let t = txn.open_table(REFS).map_err(ctx("open"))?;
        let n = t.get(&sha.0).map_err(ctx("read"))?.map_or(0, |v| v.value());
        Ok(n)
    }

    /// Every digest the applied catalog names, with its count (for the
    /// whole-store sweep of `recover`, and tests).
    pub fn object_ref_counts(&self) -> Result<Vec<(Sha256, u64)>> {
        self.digest_table(REFS)
    }

    /// The released digests (count fell to zero), with the sequence whose
    /// apply released each.
    pub fn released_objects(&self) -> Result<Vec<(Sha256, u64)>> {
        self.digest_table(RELEASED)
    }

    /// The released digests, each with the sequence whose apply released it
    /// and how many keys of the applied catalog name it again (0: none),
    /// read in one transaction.
    pub fn released_with_refs(&self) -> Result<Vec<(Sha256, u64, u64)>> {
        let txn = self.db.begin_read().map_err(ctx("begin"))?;
        let released = txn.open_table(RELEASED).map_err(ctx("open"))?;
        let refs = txn.open_table(REFS).map_err(ctx("open"))?;
        let mut out = Vec::new();
        for r in released.iter().map_err(ctx("read"))? {
            let (k, v) = r.map_err(ctx("read"))?;
            let n = refs
                .get(k.value())
                .map_err(ctx("read"))?
                .map_or(0, |n| n.value());
            out.push((Sha256(*k.value()), v.value(), n));
        }
        Ok(out)
    }

    /// Every row of a digest -> number table, in digest order.
    fn digest_table(&self, table: TableDefinition<&[u8; 32], u64>) -> Result<Vec<(Sha256, u64)>> {
        let txn = self.db.begin_read().map_err(ctx("begin"))?;
        let t = txn.open_table(table).map_err(ctx("open"))?;
        let mut out = Vec::new();
        for r in t.iter().map_err(ctx("read"))? {
            let (k, v) = r.map_err(ctx("read"))?;
            out.push((Sha256(*k.value()), v.value()));
        }
        Ok(out)
    }

    /// Forgets released digests whose files are gone (or named again).
    pub fn forget_released(&self, shas: &[Sha256]) -> Result<()> {
        if shas.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin_write().map_err(ctx("begin"))?;
        {
            let mut t = txn.open_table(RELEASED).map_err(ctx("open"))?;
            for s in shas {
                t.remove(&s.0).map_err(ctx("write"))?;
            }
        }
        txn.commit().map_err(ctx("commit"))?;
        Ok(())
    }
}

/// Objects `ferry-in scrub` found missing or rotten (and moved out of the
/// object store) while the catalog names them: an import does not look
/// for the object of an unchanged file (its count says it is held), so
/// these are the ones it rebuilds; forgotten once held again or no longer
/// named.
const MISSING: TableDefinition<&[u8; 32], u8> = TableDefinition::new("objects_missing");

impl super::Db {
    /// Records objects `scrub` found missing or rotten.
    pub fn record_missing_objects(&self, shas: impl Iterator<Item = Sha256>) -> Result<()> {
        let txn = self.db.begin_write().map_err(ctx("begin"))?;
        {
            let mut t = txn.open_table(MISSING).map_err(ctx("open"))?;
            for s in shas {
                t.insert(&s.0, 1).map_err(ctx("write"))?;
            }
        }
        txn.commit().map_err(ctx("commit"))?;
        Ok(())
    }

    /// The objects [`super::Db::record_missing_objects`] recorded that no
    /// apply has rebuilt since.
    pub fn missing_objects(&self) -> Result<std::collections::HashSet<Sha256>> {
        let txn = self.db.begin_read().map_err(ctx("begin"))?;
        let t = match txn.open_table(MISSING) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Default::default()),
            Err(e) => return Err(ctx("open")(e)),
        };
        let mut out = std::collections::HashSet::new();
        for r in t.iter().map_err(ctx("read"))? {
            out.insert(Sha256(*r.map_err(ctx("read"))?.0.value()));
        }
        Ok(out)
    }

    /// Forgets missing objects that are held again or no longer named.
    pub fn forget_missing_objects(&self, shas: &[Sha256]) -> Result<()> {
        if shas.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin_write().map_err(ctx("begin"))?;
        {
            let mut t = txn.open_table(MISSING).map_err(ctx("open"))?;
            for s in shas {
                t.remove(&s.0).map_err(ctx("write"))?;
            }
        }
        txn.commit().map_err(ctx("commit"))?;
        Ok(())
    }
}
