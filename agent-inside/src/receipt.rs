//! `ferry-in receipt`: the inside's signed word on what it holds, written to
//! a directory (a stick going out) or printed as a QR code for sites where
//! only paper may leave. The outside reads it with `ferry-out receipt add`.
//!
//! The receipt is signed with the inside's own key (`STATE/inside.key`,
//! made on first use), never with a key that can sign bundles: a receipt
//! vouches only for what this inside says it holds.

use crate::db::Db;
use crate::layout::Layout;
use anyhow::{Context, Result};
use ferry_agent_common::fsx;
use ferry_protocol::keys::SecretKey;
use ferry_protocol::receipt::{self, HeldBundle, Receipt};
use std::path::{Path, PathBuf};

/// The inside's receipt key, made (with its public half beside it) if there
/// is none yet.
pub fn inside_key(layout: &Layout) -> Result<SecretKey> {
    let path = layout.inside_key();
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            SecretKey::from_text(&text).with_context(|| format!("inside key {}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed)
                .map_err(|e| anyhow::anyhow!("no randomness for the inside key: {e}"))?;
            let key = SecretKey::from_seed(seed);
            std::fs::create_dir_all(&layout.root)
                .with_context(|| format!("cannot create {}", layout.root.display()))?;
            fsx::write_private(&path, format!("{}\n", key.to_text()).as_bytes())?;
            let public = format!("{}\n", key.public().to_text());
            fsx::write_atomic(&layout.inside_pub(), public.as_bytes())?;
            fsx::sync_dir(&layout.root)?;
            eprintln!(
                "ferry-in: made the inside's receipt key {}; the outside trusts it with \
                 `ferry-out trust-inside {}`",
                path.display(),
                layout.inside_pub().display()
            );
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// The receipt of what the state under `layout` holds, at `now`.
pub fn gather(layout: &Layout, now: u64) -> Result<Receipt> {
    let db = Db::open(&layout.db())?;
    let applied = db.applied()?;
    let catalog = db.catalog()?;
    let held = db
        .held()?
        .into_iter()
        .map(|(sequence, h)| HeldBundle {
            sequence,
            reason: h.reason,
        })
        .collect();
    Ok(Receipt {
        stream: applied.stream,
        applied: applied.sequence,
        applied_hash: applied.hash,
        held,
        held_more: 0,
        inventory: receipt::inventory_digest(&catalog),
        objects: catalog.objects.len() as u64,
        created: now,
    })
}

/// Writes the signed receipt into `dir` as
/// `receipt-<inside key>-<applied sequence>.ferryrct` (two insides fed from
/// one stream write apart); returns its path and bytes.
pub fn write(layout: &Layout, dir: &Path, now: u64) -> Result<(PathBuf, Vec<u8>)> {
    let key = inside_key(layout)?;
    let r = gather(layout, now)?;
    let name = format!("receipt-{}-{:08}.ferryrct", key.public().short(), r.applied);
    let file = r.sign_with(crate::failures::load(layout)?, &key);
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(name);
    fsx::write_atomic(&path, &file)?;
    fsx::sync_dir(dir)?;
    Ok((path, file))
}

/// The receipt's text form as a QR code drawn with Unicode half blocks, for
/// a terminal (dark modules on a light background).
pub fn qr(file: &[u8]) -> Result<String> {
    let text = receipt::to_text(file);
    let code = qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::L)
        .context("the receipt does not fit one QR code")?;
    Ok(code
        .render::<qrcode::render::unicode::Dense1x2>()
        .dark_color(qrcode::render::unicode::Dense1x2::Light)
        .light_color(qrcode::render::unicode::Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}
