//! The keyring record (windows and root keys, [`crate::trust`]) and the
//! trust changes an apply, `trust add --root` or `trust revoke` commit.

use super::{ctx, read_binding, Bind, Db, BINDINGS, META, TRUST};
use crate::trust::{Ended, Keyring, View};
use anyhow::{Context, Result};
use ferry_protocol::id::StreamId;
use ferry_protocol::keys::PublicKey;
use redb::{ReadableDatabase, ReadableTable};

const KEYRING: &str = "keyring";

fn read_ring<T: ReadableTable<&'static str, &'static [u8]>>(t: &T) -> Result<Keyring> {
    match t.get(KEYRING).map_err(ctx("read"))? {
        Some(v) => postcard::from_bytes(v.value()).context("state database: bad keyring record"),
        None => Ok(Keyring::default()),
    }
}

/// Writes `view` (new keys trusted, bindings, the keyring) in `txn`; binds
/// first-use roots to `stream`.
pub(super) fn write_view(
    txn: &redb::WriteTransaction,
    view: &View,
    stream: Option<StreamId>,
) -> Result<()> {
    let mut t = txn.open_table(TRUST).map_err(ctx("open"))?;
    let mut b = txn.open_table(BINDINGS).map_err(ctx("open"))?;
    for (k, binding) in &view.keys {
        if t.get(&k.0).map_err(ctx("read"))?.is_none() {
            t.insert(&k.0, ferry_agent_common::now_unix())
                .map_err(ctx("write"))?;
        }
        if &read_binding(&b, k)? != binding {
            b.insert(&k.0, postcard::to_stdvec(binding)?.as_slice())
                .map_err(ctx("write"))?;
        }
    }
    let mut ring = view.ring.clone();
    if let Some(s) = stream {
        ring.bind_first_use_roots(s);
    }
    let mut m = txn.open_table(META).map_err(ctx("open"))?;
    m.insert(KEYRING, postcard::to_stdvec(&ring)?.as_slice())
        .map_err(ctx("write"))?;
    Ok(())
}

impl Db {
    /// The keyring: windows and root keys.
    pub fn keyring(&self) -> Result<Keyring> {
        let txn = self.db.begin_read().map_err(ctx("begin"))?;
        let t = txn.open_table(META).map_err(ctx("open"))?;
        read_ring(&t)
    }

    /// The trust in force: trusted keys, bindings, windows and roots.
    pub fn view(&self) -> Result<View> {
        Ok(View {
            keys: self.trusted_bindings()?.into_iter().collect(),
            ring: self.keyring()?,
        })
    }

    fn update_ring(&self, f: impl FnOnce(&mut Keyring) -> Result<bool>) -> Result<bool> {
        let txn = self.db.begin_write().map_err(ctx("begin"))?;
        let changed = {
            let mut t = txn.open_table(META).map_err(ctx("open"))?;
            let mut ring = read_ring(&t)?;
            let before = ring.clone();
            f(&mut ring)?;
            if ring != before {
                t.insert(KEYRING, postcard::to_stdvec(&ring)?.as_slice())
                    .map_err(ctx("write"))?;
            }
            ring != before
        };
        txn.commit().map_err(ctx("commit"))?;
        Ok(changed)
    }

    /// Replaces the keyring with `ring` (revocations from a medium,
    /// `crate::trust::revocations`, checked by the caller).
    pub fn commit_ring(&self, ring: &Keyring) -> Result<bool> {
        self.update_ring(|r| {
            *r = ring.clone();
            Ok(true)
        })
    }

    /// Trusts `root` as a root key bound as `bind` says; false if it already was.
    pub fn trust_root(&self, root: &PublicKey, bind: Bind) -> Result<bool> {
        self.update_ring(|r| {
            r.add_root(root, bind);
            Ok(true)
        })
    }

    /// `trust revoke`: `key` signs nothing from the next sequence of the
    /// applied stream on (`applied + 1`), nor anything of the other streams
    /// it is bound to. Returns the streams and sequences it ended at.
    pub fn revoke(&self, key: &PublicKey) -> Result<Vec<(StreamId, u64)>> {
        let applied = self.applied()?;
        let mut streams = self.binding(key)?.streams;
        if let Some(s) = applied.stream.filter(|s| !streams.contains(s)) {
            streams.push(s);
        }
        let mut out = vec![];
        self.update_ring(|r| {
            for s in &streams {
                let until = if Some(*s) == applied.stream {
                    applied.sequence + 1
                } else {
                    1
                };
                r.end(key, *s, until, Ended::Revoked { root: None });
                out.push((*s, until));
            }
            Ok(true)
        })?;
        Ok(out)
    }
}

impl Db {
    /// Forgets `key` as a root key; false if it was none.
    pub fn untrust_root(&self, key: &PublicKey) -> Result<bool> {
        self.update_ring(|r| {
            r.roots.retain(|root| root.key != key.0);
            Ok(true)
        })
    }
}

impl Db {
    /// Sets how many distinct keys must sign a bundle of `stream` (1: one).
    pub fn set_threshold(&self, stream: StreamId, need: u32) -> Result<bool> {
        self.update_ring(|r| {
            r.thresholds.retain(|(s, _)| *s != stream);
            if need > 1 {
                r.thresholds.push((stream, need));
            }
            Ok(true)
        })
    }
}
