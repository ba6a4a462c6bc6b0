//! The `ferry-in trust` commands this module adds: `--root`, `revoke`, and
//! the windows and roots `trust list` shows.

use super::Ended;
use crate::db::{Bind, Db};
use anyhow::Result;
use ferry_protocol::keys::PublicKey;

/// `trust add --root ROOT_PUB`.
pub fn add_root(db: &Db, root: &PublicKey, bind: Bind) -> Result<()> {
    db.trust_root(root, bind)?;
    println!("trusted root key {}", root.to_text());
    Ok(())
}

/// `trust threshold --stream ID NEED`.
pub fn threshold(db: &Db, stream: ferry_protocol::id::StreamId, need: u32) -> Result<()> {
    if need == 0 {
        anyhow::bail!("a stream needs at least 1 signature");
    }
    db.set_threshold(stream, need)?;
    println!("stream {stream} needs {need} signature(s) per bundle");
    Ok(())
}

/// `trust revoke KEY`.
pub fn revoke(db: &Db, key: &PublicKey) -> Result<()> {
    let ended = db.revoke(key)?;
    if ended.is_empty() {
        anyhow::bail!(
            "{} is bound to no stream and none is applied; nothing to revoke (`trust remove` forgets a key)",
            key.to_text()
        );
    }
    for (stream, from) in ended {
        println!(
            "key {} revoked for stream {stream} from bundle {from} on",
            key.short()
        );
    }
    Ok(())
}

/// Prints the windows and root keys (after the trusted keys).
pub fn list(db: &Db) -> Result<()> {
    let ring = db.keyring()?;
    for w in &ring.windows {
        let k = PublicKey(w.key).short();
        let end = match (&w.until, &w.ended) {
            (Some(u), Some(Ended::Rotated { by })) => {
                format!("until {u} (rotated to {})", PublicKey(*by).short())
            }
            (Some(u), Some(Ended::Revoked { root: Some(r) })) => {
                format!("until {u} (revoked by root {})", PublicKey(*r).short())
            }
            (Some(u), _) => format!("until {u} (revoked by hand)"),
            (None, _) => "on".to_string(),
        };
        println!(
            "  key {k} signs stream {} from bundle {} {end}",
            w.stream, w.from
        );
    }
    for (s, n) in &ring.thresholds {
        println!("stream {s} needs {n} signatures per bundle");
    }
    for r in &ring.roots {
        let streams: Vec<String> = r.binding.streams.iter().map(|s| s.to_hex()).collect();
        let first = if r.binding.first_use && r.binding.streams.is_empty() {
            "first use (not bound yet)".to_string()
        } else {
            streams.join(", ")
        };
        println!("root {} streams: {first}", PublicKey(r.key).to_text());
    }
    Ok(())
}
