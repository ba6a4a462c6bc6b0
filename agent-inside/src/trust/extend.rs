//! Validity extensions (docs/trust.md, "Freshness"): `ferry-out resend`
//! writes `validity.ferry` beside a resent bundle, a statement signed by the
//! stream's current key (or its root) that names the bundle's stream,
//! sequence and manifest hash and gives it a later expiry. A bundle's bytes,
//! and so the chain, stay as they were.

use super::View;
use crate::bundle::Bundle;
use crate::db::Db;
use crate::policy::Policy;
use anyhow::Result;
use ferry_protocol::push::MAX_TRUST_FILE;
use ferry_protocol::trust::{self, Statement, VALIDITY_FILE};
use std::io::Read;

/// Why a validity extension is not taken (the bundle keeps its own expiry).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExtensionError {
    /// The file does not decode or its signatures do not verify, or it is
    /// not signed by a key of the stream.
    #[error(transparent)]
    Statement(#[from] trust::StatementError),
    /// It is not one extension naming this very bundle.
    #[error("it names another bundle (stream, sequence or manifest hash)")]
    OtherBundle,
    /// Made further in the future than the allowed clock skew, or valid longer than allowed.
    #[error("its times are not acceptable (made beyond the clock skew, or valid longer than [trust] max_validity)")]
    Times,
    /// The file cannot be read.
    #[error("cannot read it: {0}")]
    Read(String),
    /// Longer than a trust file may be ([`MAX_TRUST_FILE`]).
    #[error("it is longer than {MAX_TRUST_FILE} bytes")]
    TooLong,
}

/// `bytes`, unless longer than a trust file may be.
fn bounded(bytes: &[u8]) -> Result<&[u8], ExtensionError> {
    if bytes.len() > MAX_TRUST_FILE {
        return Err(ExtensionError::TooLong);
    }
    Ok(bytes)
}

/// The expiry the extension in `b`'s directory gives, checked against the
/// trust `view`, `policy` and `now`; `Ok(None)` when there is none.
pub fn check(
    b: &Bundle,
    view: &View,
    policy: &Policy,
    now: u64,
) -> Result<Option<u64>, ExtensionError> {
    match read_beside(b, VALIDITY_FILE)? {
        Some(bytes) => check_bytes(b, &bytes, view, policy, now),
        None => Ok(None),
    }
}

/// The file `name` beside `b` (at most [`MAX_TRUST_FILE`] bytes), none
/// without it.
fn read_beside(b: &Bundle, name: &str) -> Result<Option<Vec<u8>>, ExtensionError> {
    let Ok(f) = crate::bundle::open_regular(&b.dir.join(name)) else {
        return Ok(None);
    };
    let mut bytes = vec![];
    f.take(MAX_TRUST_FILE as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ExtensionError::Read(e.to_string()))?;
    bounded(&bytes)?;
    Ok(Some(bytes))
}

/// [`check`] of the extension `bytes` (from a medium, or a QUIC offer).
fn check_bytes(
    b: &Bundle,
    bytes: &[u8],
    view: &View,
    policy: &Policy,
    now: u64,
) -> Result<Option<u64>, ExtensionError> {
    let list = trust::decode(bytes)?;
    let [s] = list.as_slice() else {
        return Err(ExtensionError::OtherBundle);
    };
    let m = b.head();
    let Statement::Extend {
        stream,
        sequence,
        manifest,
        expires,
        created,
    } = s.statement
    else {
        return Err(ExtensionError::OtherBundle);
    };
    if (stream, sequence, manifest) != (m.stream, m.sequence, b.verified.hash) {
        return Err(ExtensionError::OtherBundle);
    }
    // The keys that could sign this bundle, and those that sign the stream now.
    let mut keys = view.current_keys(stream);
    keys.extend(
        view.keys
            .keys()
            .filter(|k| view.allows(k, stream, sequence).is_ok()),
    );
    s.authority(&view.ring.roots_for(stream), &keys)?;
    if created > now.saturating_add(policy.max_clock_skew_secs)
        || expires.saturating_sub(created) > policy.max_validity_secs
    {
        return Err(ExtensionError::Times);
    }
    Ok(Some(expires))
}

/// The keys whose co-signatures beside `b` verify; none without the file.
fn cosigners(b: &Bundle) -> Result<Vec<ferry_protocol::keys::PublicKey>, ExtensionError> {
    match read_beside(b, trust::COSIGN_FILE)? {
        Some(bytes) => Ok(trust::cosigners(&b.verified.hash, &bytes)?),
        None => Ok(vec![]),
    }
}

/// Checks the validity extension and the co-signatures of every bundle; a
/// bad one is named and ignored (the bundle keeps its own expiry, or counts
/// no co-signer).
pub fn extend_all(db: &Db, bundles: &mut [Bundle], policy: &Policy, now: u64) -> Result<()> {
    let view = db.view()?;
    for b in bundles {
        let cosigned = cosigners(b);
        let extended = check(b, &view, policy, now);
        take(b, cosigned, extended);
    }
    Ok(())
}

/// [`extend_all`] for one bundle whose co-signatures and extension came
/// with it over QUIC rather than beside it on a medium.
pub fn extend_offered(
    db: &Db,
    b: &mut Bundle,
    cosignatures: Option<&[u8]>,
    validity: Option<&[u8]>,
    policy: &Policy,
    now: u64,
) -> Result<()> {
    let view = db.view()?;
    let cosigned = match cosignatures.map(bounded) {
        Some(Ok(bytes)) => trust::cosigners(&b.verified.hash, bytes).map_err(ExtensionError::from),
        Some(Err(e)) => Err(e),
        None => Ok(vec![]),
    };
    let extended = match validity.map(bounded) {
        Some(Ok(bytes)) => check_bytes(b, bytes, &view, policy, now),
        Some(Err(e)) => Err(e),
        None => Ok(None),
    };
    take(b, cosigned, extended);
    Ok(())
}

/// Keeps what verified; names and ignores what did not.
fn take(
    b: &mut Bundle,
    cosigned: Result<Vec<ferry_protocol::keys::PublicKey>, ExtensionError>,
    extended: Result<Option<u64>, ExtensionError>,
) {
    match cosigned {
        Ok(keys) => b.cosigners = keys,
        Err(e) => eprintln!(
            "ferry-in: warning: the co-signatures of bundle {} ({}) are ignored: {e}",
            b.sequence(),
            b.dir.display()
        ),
    }
    match extended {
        Ok(until) => b.extended_until = until,
        Err(e) => eprintln!(
            "ferry-in: warning: the validity extension of bundle {} ({}) is ignored: {e}",
            b.sequence(),
            b.dir.display()
        ),
    }
}
