//! Keys over time, inside (docs/trust.md): which key may sign which
//! sequences of a stream, and what the statements bundles carry change.
//!
//! The trusted keys and their stream bindings stay in the database's
//! `trusted_keys` and `key_streams` tables; a [`Keyring`] (one record in the
//! database) adds, per key and stream, a [`Window`] of sequences it may sign
//! (a key without a window for a stream it is bound to may sign all of
//! them), and the root keys with the streams they speak for.
//!
//! A bundle is checked by [`View::admit`]: its rotation and revocation
//! statements (`ferry_protocol::trust`) are applied to a copy of the view,
//! then its signer must be allowed at its sequence. The copy is committed
//! with the apply, in the same transaction ([`crate::db::Db::commit_apply_with`]).

pub mod cmd;
mod extend;
pub mod revocations;
pub use extend::{check as check_extension, extend_all, extend_offered, ExtensionError};

use crate::db::{Bind, KeyBinding};
use crate::import::Refusal;
use ferry_protocol::id::StreamId;
use ferry_protocol::keys::PublicKey;
use ferry_protocol::manifest::{Manifest, VerifiedManifest};
use ferry_protocol::trust::{self, Authority, SignedStatement, Statement};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How a key's window ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ended {
    /// A rotation to `by`.
    Rotated {
        /// The key that replaced it.
        by: [u8; 32],
    },
    /// A revocation by a root key (`Some`) or by hand (`ferry-in trust revoke`).
    Revoked {
        /// The root key that said so, if any.
        root: Option<[u8; 32]>,
    },
}

/// The sequences of `stream` a key may sign: `from .. until`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// The key.
    pub key: [u8; 32],
    /// The stream.
    pub stream: StreamId,
    /// The first sequence it may sign.
    pub from: u64,
    /// The first sequence it may no longer sign, if it ended.
    pub until: Option<u64>,
    /// Why it ended.
    pub ended: Option<Ended>,
}

/// A root key and the streams it speaks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Root {
    /// The key.
    pub key: [u8; 32],
    /// Its streams (first use: the stream first applied).
    pub binding: KeyBinding,
}

/// What the database keeps beside the trusted keys.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keyring {
    /// Windows of keys, per stream.
    pub windows: Vec<Window>,
    /// Root keys.
    pub roots: Vec<Root>,
    /// Streams that need more than one signature: (stream, how many).
    pub thresholds: Vec<(StreamId, u32)>,
}

/// The trust in force: trusted keys with their bindings, and the keyring.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct View {
    /// Trusted signing keys and the streams each may sign.
    pub keys: BTreeMap<PublicKey, KeyBinding>,
    /// Windows and roots.
    pub ring: Keyring,
}

impl Keyring {
    /// The window of `key` for `stream`.
    pub fn window(&self, key: &PublicKey, stream: StreamId) -> Option<&Window> {
        self.windows
            .iter()
            .find(|w| w.key == key.0 && w.stream == stream)
    }

    fn window_mut(&mut self, key: &PublicKey, stream: StreamId) -> &mut Window {
        let i = match self
            .windows
            .iter()
            .position(|w| w.key == key.0 && w.stream == stream)
        {
            Some(i) => i,
            None => {
                self.windows.push(Window {
                    key: key.0,
                    stream,
                    from: 1,
                    until: None,
                    ended: None,
                });
                self.windows.len() - 1
            }
        };
        &mut self.windows[i]
    }

    /// Ends `key`'s window for `stream` at `until` (an earlier end stays).
    pub fn end(&mut self, key: &PublicKey, stream: StreamId, until: u64, why: Ended) {
        let w = self.window_mut(key, stream);
        if w.until.is_none_or(|u| until < u) {
            w.until = Some(until);
            w.ended = Some(why);
        }
    }

    /// Adds a root key bound as `bind` says.
    pub fn add_root(&mut self, key: &PublicKey, bind: Bind) {
        let i = match self.roots.iter().position(|r| r.key == key.0) {
            Some(i) => i,
            None => {
                self.roots.push(Root {
                    key: key.0,
                    binding: KeyBinding::default(),
                });
                self.roots.len() - 1
            }
        };
        let b = &mut self.roots[i].binding;
        match bind {
            Bind::Stream(s) if !b.streams.contains(&s) => b.streams.push(s),
            Bind::Stream(_) => {}
            Bind::FirstUse => b.first_use = true,
        }
    }

    /// Binds first-use roots to `stream` (the first stream applied).
    pub fn bind_first_use_roots(&mut self, stream: StreamId) {
        for r in &mut self.roots {
            if r.binding.first_use && r.binding.streams.is_empty() {
                r.binding.streams.push(stream);
            }
        }
    }

    /// How many distinct keys must sign a bundle of `stream` (1 unless set).
    pub fn threshold(&self, stream: StreamId) -> u32 {
        self.thresholds
            .iter()
            .find(|(s, _)| *s == stream)
            .map_or(1, |(_, n)| *n)
    }

    /// The root keys that speak for `stream`.
    pub fn roots_for(&self, stream: StreamId) -> Vec<PublicKey> {
        self.roots
            .iter()
            .filter(|r| r.binding.allows(stream))
            .map(|r| PublicKey(r.key))
            .collect()
    }
}

impl View {
    /// Whether `key` may sign bundle `sequence` of `stream`; the refusal names the key.
    pub fn allows(&self, key: &PublicKey, stream: StreamId, sequence: u64) -> Result<(), Refusal> {
        let Some(binding) = self.keys.get(key) else {
            return Err(Refusal::UntrustedKey { key: key.short() });
        };
        let not_for_stream = || Refusal::KeyNotForStream {
            key: key.short(),
            stream,
        };
        let Some(w) = self.ring.window(key, stream) else {
            return if binding.allows(stream) {
                Ok(())
            } else {
                Err(not_for_stream())
            };
        };
        if sequence < w.from {
            return Err(not_for_stream());
        }
        match (w.until, &w.ended) {
            (Some(until), Some(Ended::Rotated { by })) if sequence >= until => {
                Err(Refusal::RetiredKey {
                    key: key.short(),
                    stream,
                    from_sequence: until,
                    by: PublicKey(*by).short(),
                })
            }
            (Some(until), _) if sequence >= until => Err(Refusal::RevokedKey {
                key: key.short(),
                stream,
                from_sequence: until,
            }),
            _ if !binding.allows(stream) => Err(not_for_stream()),
            _ => Ok(()),
        }
    }

    /// The keys that may sign `stream` now and later (no end to their window).
    pub fn current_keys(&self, stream: StreamId) -> Vec<PublicKey> {
        self.keys
            .iter()
            .filter(|(k, b)| {
                b.allows(stream)
                    && self
                        .ring
                        .window(k, stream)
                        .is_none_or(|w| w.until.is_none())
            })
            .map(|(k, _)| *k)
            .collect()
    }

    /// Applies one statement of a bundle of `stream` to this view, given the
    /// applied sequence. An already applied statement changes nothing.
    pub fn apply(&mut self, s: &SignedStatement, applied: u64) -> Result<(), Refusal> {
        let stream = s.statement.stream();
        let roots = self.ring.roots_for(stream);
        let authority = s.authority(&roots, &[]).map_err(Refusal::BadStatement)?;
        match s.statement {
            Statement::Rotate {
                from_sequence,
                old,
                new,
                ..
            } => self.rotate(
                stream,
                from_sequence,
                PublicKey(old),
                PublicKey(new),
                authority,
                applied,
            ),
            Statement::Revoke {
                from_sequence, key, ..
            } => {
                let Authority::Root(root) = authority else {
                    unreachable!("a revocation is only authorised by a root key")
                };
                self.ring.end(
                    &PublicKey(key),
                    stream,
                    from_sequence,
                    Ended::Revoked { root: Some(root.0) },
                );
                Ok(())
            }
            Statement::Extend { .. } => Err(Refusal::BadStatement(
                trust::StatementError::Misplaced("a validity extension inside a manifest".into()),
            )),
        }
    }

    fn rotate(
        &mut self,
        stream: StreamId,
        from: u64,
        old: PublicKey,
        new: PublicKey,
        authority: Authority,
        applied: u64,
    ) -> Result<(), Refusal> {
        let done = self.ring.window(&old, stream).is_some_and(|w| {
            w.until == Some(from) && w.ended == Some(Ended::Rotated { by: new.0 })
        }) && self
            .ring
            .window(&new, stream)
            .is_some_and(|w| w.from == from);
        if done {
            return Ok(());
        }
        let bad = |why: String| Err(Refusal::BadRotation { why });
        if from <= applied {
            return bad(format!(
                "a rotation from {} to {} from bundle {from}, which is already applied",
                old.short(),
                new.short()
            ));
        }
        if authority == Authority::OldKey {
            // Only a current key hands over: a retired or revoked key
            // cannot name a successor.
            self.allows(&old, stream, from)?;
            if self
                .ring
                .window(&old, stream)
                .is_some_and(|w| w.until.is_some())
            {
                return bad(format!("key {} is no longer current", old.short()));
            }
        }
        self.ring
            .end(&old, stream, from, Ended::Rotated { by: new.0 });
        let binding = self.keys.entry(new).or_default();
        if !binding.streams.contains(&stream) {
            binding.streams.push(stream);
        }
        let w = self.ring.window_mut(&new, stream);
        w.from = from;
        Ok(())
    }

    /// Checks bundle `m` signed by `signer` against this view: applies its
    /// statements to a copy, then asks whether the signer may sign it.
    /// Returns the view to commit with the apply.
    pub fn admit(&self, m: &Manifest, signer: &PublicKey, applied: u64) -> Result<View, Refusal> {
        let mut next = self.clone();
        let statements = trust::statements(m).map_err(Refusal::BadStatement)?;
        for s in &statements {
            next.apply(s, applied)?;
        }
        next.allows(signer, m.stream, m.sequence)?;
        Ok(next)
    }
}

impl View {
    /// Checks the threshold of `m`'s stream: `signer` and `cosigners`
    /// (already verified) count once each when allowed at `m`'s sequence.
    pub fn check_threshold(
        &self,
        m: &Manifest,
        signer: &PublicKey,
        cosigners: &[PublicKey],
    ) -> Result<(), Refusal> {
        let need = self.ring.threshold(m.stream);
        let mut keys: Vec<PublicKey> = std::iter::once(*signer)
            .chain(cosigners.iter().copied())
            .filter(|k| self.allows(k, m.stream, m.sequence).is_ok())
            .collect();
        keys.sort();
        keys.dedup();
        if (keys.len() as u64) < need as u64 {
            return Err(Refusal::TooFewSignatures {
                sequence: m.sequence,
                stream: m.stream,
                have: keys.len() as u32,
                need,
            });
        }
        Ok(())
    }
}

/// Whether `m` introduces its own signer: it carries a rotation to it.
pub fn introduces_signer(m: &VerifiedManifest) -> bool {
    trust::statements(m.head()).is_ok_and(|l| {
        l.iter()
            .any(|s| matches!(s.statement, Statement::Rotate { new, .. } if new == m.signer.0))
    })
}

/// Opens a manifest file signed by a trusted key, or by a key a rotation
/// statement in it introduces (its signature is checked against that key
/// before the body is decoded; [`View::admit`] then decides whether the
/// rotation is authorised). Any other signer, or a manifest that does not
/// verify under the key it names, is `Error::UntrustedKey`.
pub fn open_manifest(
    file: &[u8],
    trusted: &[PublicKey],
    limits: &ferry_protocol::limits::ReceiverLimits,
) -> Result<VerifiedManifest, ferry_protocol::Error> {
    open_manifest_as(file, trusted, limits, Manifest::open)
}

/// [`open_manifest`], a change list in columns kept as columns
/// ([`Manifest::open_keeping_columns`]: decoded a change at a time, as a
/// bundle's apply reads it).
pub fn open_manifest_keeping_columns(
    file: &[u8],
    trusted: &[PublicKey],
    limits: &ferry_protocol::limits::ReceiverLimits,
) -> Result<VerifiedManifest, ferry_protocol::Error> {
    open_manifest_as(file, trusted, limits, Manifest::open_keeping_columns)
}

type Open = fn(
    &[u8],
    &[PublicKey],
    &ferry_protocol::limits::ReceiverLimits,
) -> Result<VerifiedManifest, ferry_protocol::Error>;

fn open_manifest_as(
    file: &[u8],
    trusted: &[PublicKey],
    limits: &ferry_protocol::limits::ReceiverLimits,
    open: Open,
) -> Result<VerifiedManifest, ferry_protocol::Error> {
    match open(file, trusted, limits) {
        Err(ferry_protocol::Error::UntrustedKey(short)) => {
            // Anything short of a valid rotation to this signer leaves it
            // what it was: an untrusted key.
            let signer = ferry_protocol::manifest::signer_of(file)?;
            match open(file, &[signer], limits) {
                Ok(v) if introduces_signer(&v) => Ok(v),
                _ => Err(ferry_protocol::Error::UntrustedKey(short)),
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests;

/// The applied bundles of `applied`'s stream that a key signed at or after
/// the end of its window (a revocation that arrived after them): the
/// bundles to distrust. Warned about after each apply and by `status`.
pub fn signed_after_revocation(
    db: &crate::db::Db,
    view: &View,
    applied: &crate::db::Applied,
) -> anyhow::Result<Vec<(u64, PublicKey)>> {
    let Some(stream) = applied.stream else {
        return Ok(vec![]);
    };
    let mut out = vec![];
    for w in view.ring.windows.iter().filter(|w| w.stream == stream) {
        let (Some(until), Some(Ended::Revoked { .. })) = (w.until, &w.ended) else {
            continue;
        };
        for seq in until..=applied.sequence {
            if db.signer(seq)?.is_some_and(|k| k.0 == w.key) {
                out.push((seq, PublicKey(w.key)));
            }
        }
    }
    Ok(out)
}
