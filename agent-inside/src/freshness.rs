//! How old the newest applied bundle is (docs/trust.md, "Freshness"): a
//! withheld stick is a silent freeze attack unless someone watches this.
//!
//! `status` reads the database; `serve` never opens it, so each apply also
//! writes `STATE/freshness.json` ([`Record`]) after its commit, and
//! `/ferry/health` reads that file. Its `warn_after_secs` is the importing
//! run's `[trust] warn_after`.

use crate::layout::Layout;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The file under the state directory.
pub const FILE: &str = "freshness.json";

/// What `serve` needs to judge freshness.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    /// The stream (hex).
    pub stream: String,
    /// The applied sequence.
    pub sequence: u64,
    /// When the outside made that bundle (Unix seconds).
    pub created: u64,
    /// When it was applied.
    pub applied_at: u64,
    /// The key that signed it (text form).
    pub signer: String,
    /// `[trust] warn_after`, seconds.
    pub warn_after_secs: u64,
}

/// Writes the record (atomically).
pub fn write(layout: &Layout, r: &Record) -> Result<()> {
    ferry_agent_common::fsx::write_atomic(&layout.root.join(FILE), &serde_json::to_vec(r)?)
}

/// Reads the record; none before the first apply (or if unreadable).
pub fn read(layout: &Layout) -> Option<Record> {
    let b = std::fs::read(layout.root.join(FILE)).ok()?;
    serde_json::from_slice(&b).ok()
}

/// The freshness report: the newest bundle's creation time, its age at
/// `now`, the threshold and whether it is past it (`stale`). With nothing
/// applied, `stale` is true (nothing fresh is served).
pub fn assess(created: Option<u64>, now: u64, warn_after_secs: u64) -> serde_json::Value {
    let age = created.map(|c| now.saturating_sub(c));
    json!({
        "newest_created": created,
        "age_secs": age,
        "warn_after_secs": warn_after_secs,
        "stale": age.is_none_or(|a| a > warn_after_secs),
    })
}

/// A duration for people: `3d 4h`, `5h 2m`, `40s`.
pub fn human_age(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

/// The body and whether healthy, for `/ferry/health` at `now`.
pub fn health(layout: &Layout, now: u64) -> (bool, serde_json::Value) {
    let r = read(layout);
    let warn = r.as_ref().map_or(7 * 86_400, |r| r.warn_after_secs);
    let mut v = assess(r.as_ref().map(|r| r.created), now, warn);
    let stale = v["stale"].as_bool() == Some(true);
    v["status"] = json!(if stale { "stale" } else { "ok" });
    if let Some(r) = r {
        v["stream"] = json!(r.stream);
        v["applied_sequence"] = json!(r.sequence);
        v["applied_at"] = json!(r.applied_at);
        v["signer"] = json!(r.signer);
    }
    (!stale, v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_past_the_threshold_or_with_nothing_applied() {
        assert_eq!(assess(Some(100), 150, 60)["stale"], false);
        assert_eq!(assess(Some(100), 161, 60)["stale"], true);
        assert_eq!(assess(Some(100), 161, 60)["age_secs"], 61);
        assert_eq!(assess(None, 161, 60)["stale"], true);
        assert_eq!(human_age(3 * 86_400 + 4 * 3600 + 5), "3d 4h");
        assert_eq!(human_age(40), "40s");
    }
}
