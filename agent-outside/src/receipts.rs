//! Receipts from the inside (`ferry-in receipt`), checked and recorded:
//! `ferry-out trust-inside` names an inside's receipt key, `receipt add`
//! records what it holds, and with that `status` shows what was delivered,
//! `resend --missing` writes exactly the bundles an inside lacks, and
//! `prune` keeps every bundle not yet acknowledged.

use crate::layout::Layout;
use crate::ledger::{Compacted, Ledger};
use anyhow::{Context, Result};
use ferry_agent_common::format_time;
use ferry_protocol::id::StreamId;
use ferry_protocol::keys::PublicKey;
use ferry_protocol::receipt::{self, Failure, Receipt, ReceiptError};
use std::collections::BTreeSet;
use std::path::Path;

/// Why a receipt is not recorded.
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    /// The file itself is refused (size, magic, version, key, signature, body).
    #[error(transparent)]
    Receipt(#[from] ReceiptError),
    /// The inside follows another stream.
    #[error("the receipt is for stream {theirs}, but this ledger exports stream {ours}")]
    OtherStream {
        /// The receipt's stream, or "none" before its first bundle.
        theirs: String,
        /// This ledger's.
        ours: StreamId,
    },
    /// The inside claims a bundle this outside never exported.
    #[error("the receipt says bundle {applied} is applied, but this ledger's newest is {head}")]
    Ahead {
        /// The receipt's applied sequence.
        applied: u64,
        /// The ledger's head.
        head: u64,
    },
    /// The inside applied a bundle of that sequence with another hash.
    #[error("the receipt's bundle {0} has another manifest hash than the one exported: the inside applied a bundle this outside did not make")]
    OtherBundle(u64),
    /// An older receipt than the one recorded (a replay, or sticks crossed).
    #[error("the receipt (written at {written}) is older than the one recorded (written at {recorded}): nothing changed")]
    Older {
        /// This receipt's time.
        written: u64,
        /// The recorded one's.
        recorded: u64,
    },
}

/// What `add` recorded.
#[derive(Debug)]
pub struct Added {
    /// The inside's key.
    pub inside: PublicKey,
    /// Its receipt.
    pub receipt: Receipt,
    /// The bundles it says it refused lately (newest last).
    pub failures: Vec<Failure>,
    /// Whether its inventory is the catalog the outside exported at that
    /// sequence (false: the inside's store differs from what the bundles
    /// made; `None`: that catalog was compacted away by `prune`, so the
    /// inventory could not be checked).
    pub inventory_matches: Option<bool>,
}

/// Checks a receipt (its file, or its text form) against the trusted inside
/// keys and the ledger, and records it.
pub fn add(ledger: &Ledger, bytes: &[u8], now: u64) -> Result<Added> {
    let file = match std::str::from_utf8(bytes) {
        Ok(text) if text.trim_start().starts_with(receipt::TEXT_PREFIX) => {
            receipt::from_text(text).map_err(AddError::from)?
        }
        _ => bytes.to_vec(),
    };
    let insides = ledger.insides()?;
    let trusted: Vec<PublicKey> = insides.iter().map(|(k, _)| *k).collect();
    let (r, failures, key) =
        Receipt::open_with_failures(&file, &trusted).map_err(AddError::from)?;
    let ours = ledger.stream()?;
    if r.applied > 0 && r.stream != Some(ours) {
        let theirs = r.stream.map_or_else(|| "none".into(), |s| s.to_string());
        return Err(AddError::OtherStream { theirs, ours }.into());
    }
    let head = ledger.head()?.sequence;
    if r.applied > head {
        return Err(AddError::Ahead {
            applied: r.applied,
            head,
        }
        .into());
    }
    if r.applied > 0 {
        let exported = ledger
            .bundles()?
            .into_iter()
            .find(|b| b.sequence == r.applied)
            .map(|b| b.hash);
        if exported != r.applied_hash {
            return Err(AddError::OtherBundle(r.applied).into());
        }
    }
    let recorded = insides
        .iter()
        .find(|(k, _)| *k == key)
        .and_then(|(_, i)| i.receipt.as_ref());
    // Receipts are ordered by when they were written, then by how far the
    // inside had got (two written in the same second).
    let order = |r: &Receipt| (r.created, r.applied);
    if let Some((old, _)) = recorded.filter(|(old, _)| order(old) > order(&r)) {
        return Err(AddError::Older {
            written: r.created,
            recorded: old.created,
        }
        .into());
    }
    let inventory_matches = match ledger.catalog(r.applied) {
        Ok(catalog) => Some(receipt::inventory_digest(&catalog) == r.inventory),
        // An inside still at a bundle whose catalog `prune` compacted away
        // (restored from a backup, or pruned with --unacknowledged-too):
        // its receipt still says what it lacks.
        Err(e) if e.downcast_ref::<Compacted>().is_some() => None,
        Err(e) => return Err(e),
    };
    ledger.record_receipt(&key, &r, now)?;
    ledger.record_failures(&key, &failures)?;
    Ok(Added {
        inside: key,
        receipt: r,
        failures,
        inventory_matches,
    })
}

/// The bundles some trusted inside lacks: after its applied sequence, not
/// held by it, up to the head. An inside with no receipt yet lacks
/// everything. Empty when no inside is trusted.
pub fn missing(ledger: &Ledger) -> Result<BTreeSet<u64>> {
    let head = ledger.head()?.sequence;
    let mut out = BTreeSet::new();
    for (_, inside) in ledger.insides()? {
        let (applied, held) = match &inside.receipt {
            Some((r, _)) => (
                r.applied,
                r.held.iter().map(|h| h.sequence).collect::<BTreeSet<_>>(),
            ),
            None => (0, BTreeSet::new()),
        };
        out.extend((applied + 1..=head).filter(|s| !held.contains(s)));
    }
    Ok(out)
}

/// The newest sequence every trusted inside has acknowledged applying
/// (`None` when no inside is trusted): bundles after it must stay
/// re-sendable.
pub fn acknowledged_by_all(ledger: &Ledger) -> Result<Option<u64>> {
    Ok(ledger
        .insides()?
        .iter()
        .map(|(_, i)| i.receipt.as_ref().map_or(0, |(r, _)| r.applied))
        .min())
}

/// `trust-inside`: trusts an inside's receipt key.
pub fn trust_inside_cmd(layout: &Layout, pubkey_file: &Path) -> Result<()> {
    let text = std::fs::read_to_string(pubkey_file)
        .with_context(|| format!("cannot read {}", pubkey_file.display()))?;
    let key = PublicKey::from_text(&text)
        .with_context(|| format!("inside key {}", pubkey_file.display()))?;
    let ledger = Ledger::open(layout)?;
    if ledger.trust_inside(&key, ferry_agent_common::now_unix())? {
        println!("trusting receipts signed by {}", key.to_text());
    } else {
        println!("{} was already trusted", key.to_text());
    }
    Ok(())
}

/// `receipt add`: records an inside's receipt.
pub fn receipt_add_cmd(layout: &Layout, file: &Path) -> Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let ledger = Ledger::open(layout)?;
    if ferry_protocol::inventory::is_inventory(&bytes) {
        return crate::adopted::add_cmd(&ledger, &bytes)
            .with_context(|| format!("inventory {}", file.display()));
    }
    let added = add(&ledger, &bytes, ferry_agent_common::now_unix())
        .with_context(|| format!("receipt {}", file.display()))?;
    let r = &added.receipt;
    println!(
        "inside {}: bundle {} applied, {} object(s), {} held{}; written {}",
        added.inside.short(),
        r.applied,
        r.objects,
        r.held.len() as u64 + r.held_more,
        if r.held.is_empty() {
            String::new()
        } else {
            format!(
                " ({})",
                r.held
                    .iter()
                    .map(|h| format!("{}: {}", h.sequence, h.reason))
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        },
        format_time(r.created)
    );
    print_failures(&added.failures);
    match added.inventory_matches {
        Some(true) => {}
        Some(false) => eprintln!(
            "ferry-out: warning: the inside's inventory differs from the catalog of bundle {}: \
             its store is not what the bundles made (run `ferry-in scrub` there)",
            r.applied
        ),
        None => eprintln!(
            "ferry-out: warning: the inside's inventory was not checked: `ferry-out prune` \
             compacted away the catalog of bundle {} it applied (if the bundles it lacks \
             were pruned too, `export --rebase` makes a snapshot of the head for it, imported \
             there with `ferry-in import --rebase`)",
            r.applied
        ),
    }
    Ok(())
}

/// The refusals an inside reported, one line each.
fn print_failures(failures: &[Failure]) {
    for f in failures {
        println!(
            "         refused bundle {} ({}): {} at {}",
            f.sequence,
            f.hash
                .map_or_else(|| "?".into(), |h| h.to_hex()[..16].to_string()),
            f.refusal,
            format_time(f.at)
        );
    }
}

/// The trusted insides and what each said it holds in its last receipt.
pub fn print_insides(ledger: &Ledger) -> Result<()> {
    for (key, inside) in ledger.insides()? {
        match &inside.receipt {
            Some((r, recorded)) => println!(
                "inside:  {}: bundle {} applied, {} held (receipt written {}, recorded {})",
                key.short(),
                r.applied,
                r.held.len() as u64 + r.held_more,
                format_time(r.created),
                format_time(*recorded)
            ),
            None => println!("inside:  {}: no receipt yet", key.short()),
        }
        print_failures(&ledger.failures(&key)?);
    }
    Ok(())
}
