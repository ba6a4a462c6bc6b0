//! Inventories from `ferry-in adopt` (bundle-format §18): `receipt add`
//! of an inventory file records the objects an inside already holds outside
//! Ferry; exports then name those objects without carrying their content
//! (`Ledger::adopted`, used by the export's scanner).

use crate::ledger::Ledger;
use anyhow::Result;
use ferry_protocol::inventory::Inventory;

/// Why an inventory is refused.
#[derive(Debug, thiserror::Error)]
pub enum InventoryAddError {
    /// The inside follows another stream.
    #[error("the inventory is of an inside following stream {found}, not this stream {expected}")]
    OtherStream {
        /// This outside's stream.
        expected: String,
        /// The inventory's.
        found: String,
    },
}

/// Checks an inventory file against the trusted inside keys and this
/// stream, and records it. Returns the inside's key and how many objects.
pub fn add(ledger: &Ledger, file: &[u8]) -> Result<(ferry_protocol::keys::PublicKey, usize)> {
    let trusted: Vec<_> = ledger.insides()?.into_iter().map(|(k, _)| k).collect();
    let (inv, key) = Inventory::open(file, &trusted)?;
    let stream = ledger.stream()?;
    if let Some(found) = inv.stream.filter(|s| *s != stream) {
        return Err(InventoryAddError::OtherStream {
            expected: stream.to_hex(),
            found: found.to_hex(),
        }
        .into());
    }
    ledger.record_inventory(&key, &inv.objects)?;
    Ok((key, inv.objects.len()))
}

/// `ferry-out receipt add` of an inventory file: prints what was recorded.
pub fn add_cmd(ledger: &Ledger, file: &[u8]) -> Result<()> {
    let (key, n) = add(ledger, file)?;
    let common = ledger.adopted()?.len();
    println!(
        "inside {}: inventory of {n} object(s) recorded; {common} held by every trusted inside will be named, not carried, by the next export",
        key.short()
    );
    Ok(())
}
