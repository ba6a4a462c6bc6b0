//! The bundles this inside refused, the latest [`KEEP`] (`STATE/failures.json`,
//! newest last): `ferry-in status` shows them, and a receipt carries the latest
//! few back to the outside (bundle-format §15), whose `status` shows them.

use crate::layout::Layout;
use anyhow::{Context, Result};
use ferry_agent_common::fsx;
pub use ferry_protocol::receipt::Failure;
use std::path::PathBuf;

/// How many refusals are kept.
pub const KEEP: usize = 16;

fn path(layout: &Layout) -> PathBuf {
    layout.root.join("failures.json")
}

/// The refusals kept, oldest first.
pub fn load(layout: &Layout) -> Result<Vec<Failure>> {
    let p = path(layout);
    match std::fs::read(&p) {
        Ok(b) => {
            serde_json::from_slice(&b).with_context(|| format!("cannot parse {}", p.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![]),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", p.display())),
    }
}

/// Records `b` refused for `refusal`, now (see [`record`]).
pub fn record_bundle(layout: &Layout, b: &crate::bundle::Bundle, refusal: String) {
    record(
        layout,
        Failure {
            sequence: b.sequence(),
            hash: Some(b.verified.hash),
            refusal,
            at: ferry_agent_common::now_unix(),
        },
    );
}

/// Records a bundle refused before its manifest verified (an untrusted
/// signer, a bad signature, damage): `manifest` is its manifest file's
/// bytes when they could be read, whose hash and claimed sequence are kept.
pub fn record_unopened(layout: &Layout, manifest: Option<&[u8]>, refusal: String) {
    let sequence = manifest
        .and_then(|m| ferry_protocol::manifest::peek_unverified(m).ok())
        .map_or(0, |(_, m)| m.head().sequence);
    record(
        layout,
        Failure {
            sequence,
            hash: manifest.map(ferry_protocol::id::ManifestHash::of),
            refusal,
            at: ferry_agent_common::now_unix(),
        },
    );
}

/// Records the bundle in `dir` that `bundle::open` refused with `e`
/// ([`record_unopened`] of its manifest file, if readable); returns `e`
/// naming the directory, for the import's report.
pub fn unopenable(
    layout: &Layout,
    dir: &std::path::Path,
    limits: &ferry_protocol::limits::ReceiverLimits,
    e: anyhow::Error,
) -> anyhow::Error {
    let manifest = crate::bundle::read_manifest_file(dir, limits.max_manifest_bytes).ok();
    record_unopened(layout, manifest.as_deref(), name_of_unopened(&e));
    e.context(format!("bundle {}", dir.display()))
}

/// The name a receipt gives a bundle that could not be opened: its
/// refusal's variant (`UntrustedKey`), else `BadManifest`.
pub fn name_of_unopened(e: &anyhow::Error) -> String {
    e.chain()
        .find_map(|c| c.downcast_ref::<crate::import::Refusal>())
        .map_or("BadManifest", |r| r.name())
        .to_string()
}

/// Records a refusal; a failure to record it only warns (the import's own
/// report stands).
pub fn record(layout: &Layout, failure: Failure) {
    let saved = (|| -> Result<()> {
        let mut list = load(layout).unwrap_or_default();
        // The same bundle refused again for the same reason: once, newest.
        list.retain(|f| !(f.hash == failure.hash && f.refusal == failure.refusal));
        list.push(failure);
        let cut = list.len().saturating_sub(KEEP);
        list.drain(..cut);
        fsx::write_atomic(&path(layout), &serde_json::to_vec(&list)?)
    })();
    if let Err(e) = saved {
        eprintln!("ferry-in: warning: cannot record the refusal: {e:#}");
    }
}

/// The name a receipt gives the failure `e` of an apply: the refusal's
/// variant, or what kind of failure it was.
pub fn name_of(e: &anyhow::Error) -> String {
    for c in e.chain() {
        if let Some(r) = c.downcast_ref::<crate::import::Refusal>() {
            return r.name().to_string();
        }
        if let Some(a) = c.downcast_ref::<crate::adopt::AdoptError>() {
            return match a {
                crate::adopt::AdoptError::Mismatch { .. } => "AdoptedMismatch",
                crate::adopt::AdoptError::Unreadable { .. } => "AdoptedUnreadable",
                crate::adopt::AdoptError::Registry { .. } => "AdoptedRegistry",
            }
            .to_string();
        }
    }
    "ApplyFailed".to_string()
}
