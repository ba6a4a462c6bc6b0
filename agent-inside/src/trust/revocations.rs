//! `revocations.ferry` at the top of a medium (bundle-format §16.7): root
//! revocations that reach an inside without a bundle (`ferry-out root revoke
//! --to MEDIA`). Each must be a `Revoke` signed by a root key trusted for its
//! stream; a good one ends the key's window at once (as `trust revoke`
//! does by hand, but from the sequence the statement names), before any
//! bundle of the medium is decided. A bad one is named and ignored.

use crate::db::Db;
use anyhow::{Context, Result};
use ferry_protocol::trust::{self, Statement};
use std::io::Read;
use std::path::Path;

/// The most of the file read (the limit of every trust file).
const MAX_BYTES: u64 = ferry_protocol::push::MAX_TRUST_FILE as u64;

/// Applies the revocations in `media/revocations.ferry`, if any; returns how
/// many changed the keyring.
pub fn apply_file(db: &Db, media: &Path) -> Result<usize> {
    let path = media.join(trust::REVOCATIONS_FILE);
    if !path.exists() {
        return Ok(0);
    }
    // A FIFO or device under this name is not read (it could hang); like
    // a bad statement, an unreadable file is named and ignored.
    let mut bytes = Vec::new();
    let read = crate::bundle::open_regular(&path).and_then(|f| {
        f.take(MAX_BYTES + 1)
            .read_to_end(&mut bytes)
            .with_context(|| format!("cannot read {}", path.display()))
    });
    if let Err(e) = read {
        eprintln!("ferry-in: WARNING: {} is ignored: {e:#}", path.display());
        return Ok(0);
    }
    apply_bytes(db, &bytes, &path.display().to_string())
}

/// Applies the revocations file `bytes`, which came from `source` (a path,
/// or a QUIC push); returns how many changed the keyring.
pub fn apply_bytes(db: &Db, bytes: &[u8], source: &str) -> Result<usize> {
    let path = source;
    let ignored = |why: String| {
        eprintln!("ferry-in: WARNING: {path} is ignored: {why}");
        Ok(0)
    };
    if bytes.len() as u64 > MAX_BYTES {
        return ignored(format!("longer than {MAX_BYTES} bytes"));
    }
    let list = match trust::decode(bytes) {
        Ok(l) => l,
        Err(e) => return ignored(e.to_string()),
    };
    let applied = db.applied()?.sequence;
    let mut view = db.view()?;
    let mut changed = 0;
    for s in &list {
        let Statement::Revoke {
            key, from_sequence, ..
        } = &s.statement
        else {
            eprintln!("ferry-in: WARNING: {path}: a statement that is not a revocation is ignored");
            continue;
        };
        let before = view.ring.clone();
        match view.apply(s, applied) {
            Ok(()) if view.ring != before => {
                changed += 1;
                eprintln!(
                    "ferry-in: key {} revoked for stream {} from bundle {from_sequence} on, by the root ({path})",
                    ferry_protocol::keys::PublicKey(*key).short(),
                    s.statement.stream(),
                );
            }
            Ok(()) => {}
            Err(e) => eprintln!("ferry-in: WARNING: {path}: a revocation is ignored: {e}"),
        }
    }
    if changed > 0 {
        db.commit_ring(&view.ring)?;
    }
    Ok(changed)
}
