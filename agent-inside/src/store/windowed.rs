//! Objects whose expanded form travels as windows (format version 3,
//! `Expanded::Windows`): each window is its own zstd frame, decoded against
//! its range of the base's reference form only when the recipe reaches it,
//! checked (length and BLAKE3) before the recipe reads a byte of it, and
//! dropped once read: at most one window (at most `MAX_WINDOW` bytes) is
//! held here. The recipe may hold more: `ferry_recipe::rebuild_from` reads
//! a zstd segment's plain bytes whole before encoding them; zlib (a layer
//! that is one gzip stream), xz (a deb's data.tar.xz) and preflate
//! (`Deflate`) segments stream, and an xz encoder waits for its share of
//! `ferry_recipe::budget`.

use super::BuildCtx;
use anyhow::{bail, Context, Result};
use ferry_protocol::catalog::{FileObject, Window};
use ferry_protocol::path::ObjectKey;
use ferry_protocol::Error;
use std::io::{Read, Write};

/// Writes object `key` (its expanded form carried as `windows` against
/// `reference`, the base's checked reference form) to `out`, streaming the
/// windows through the recipe, which takes what it can `from` the base
/// (the streams the object shares with it, its parse). The caller checks size and SHA-256.
pub(super) fn write(
    cx: &BuildCtx<'_>,
    key: &ObjectKey,
    f: &FileObject,
    (r, recipe): super::rebuilt::Encoded<'_>,
    (reference, windows, from): (
        &super::rebuilt::Reference<'_>,
        &[Window],
        ferry_recipe::FromBase<'_>,
    ),
    out: &mut impl Write,
) -> Result<()> {
    let mut reader = Windows {
        cx,
        key,
        reference,
        windows,
        next: 0,
        buf: Vec::new(),
        at: 0,
        hasher: blake3::Hasher::new(),
        failed: None,
    };
    let written = match recipe {
        None => std::io::copy(&mut reader, out)
            .map(drop)
            .map_err(anyhow::Error::from),
        Some(recipe) => ferry_recipe::rebuild_from_base(
            recipe,
            &mut reader,
            (r.expanded_len, f.size),
            out,
            from,
        )
        .with_context(|| format!("object {key}: its recipe does not rebuild it")),
    };
    // A window that failed its checks is the cause, whatever the recipe saw.
    if let Some(e) = reader.failed.take() {
        return Err(e);
    }
    written?;
    if reader.next != windows.len()
        || reader.at != reader.buf.len()
        || *reader.hasher.finalize().as_bytes() != r.expanded_blake3
    {
        bail!(Error::BadPatch {
            key: key.to_string(),
            why: "the expanded form differs from the one the catalog declares".into(),
        });
    }
    Ok(())
}

/// The expanded form, read window after window.
struct Windows<'a> {
    cx: &'a BuildCtx<'a>,
    key: &'a ObjectKey,
    reference: &'a super::rebuilt::Reference<'a>,
    windows: &'a [Window],
    /// The next window to decode.
    next: usize,
    /// The current window's bytes, and how far they were read.
    buf: Vec<u8>,
    at: usize,
    /// BLAKE3 of the whole expanded form, as it is read.
    hasher: blake3::Hasher,
    /// Why a window did not decode (the read error only says that one did not).
    failed: Option<anyhow::Error>,
}

impl Windows<'_> {
    /// Decodes window `self.next` and checks it.
    fn decode_next(&mut self) -> Result<Vec<u8>> {
        let i = self.next;
        let w = &self.windows[i];
        let bad = |why: String| Error::BadPatch {
            key: self.key.to_string(),
            why: format!("window {i}: {why}"),
        };
        // The catalog checked the range against the reference form's length.
        let range = self
            .reference
            .range(w.reference_start, w.reference_end())?
            .ok_or_else(|| bad("its reference range is outside the reference form".into()))?;
        let patch = super::rebuilt::gather(self.cx, self.key, &w.patch)?;
        let bytes = ferry_protocol::delta::decode(&patch, &range, w.len, &self.key.to_string())
            .map_err(|e| match e {
                // decode names the object already; say only which window.
                Error::BadPatch { why, .. } => bad(why),
                e => bad(e.to_string()),
            })?;
        if *blake3::hash(&bytes).as_bytes() != w.blake3 {
            bail!(bad(
                "decodes to other bytes than the catalog declares".into()
            ));
        }
        Ok(bytes)
    }
}

impl Read for Windows<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.failed.is_some() {
            return Err(std::io::Error::other("a window did not decode"));
        }
        if self.at == self.buf.len() {
            if self.next == self.windows.len() {
                return Ok(0);
            }
            self.buf = Vec::new();
            match self.decode_next() {
                Ok(bytes) => {
                    self.hasher.update(&bytes);
                    self.buf = bytes;
                    self.at = 0;
                    self.next += 1;
                }
                Err(e) => {
                    let msg = format!("{e:#}");
                    self.failed = Some(e);
                    return Err(std::io::Error::other(msg));
                }
            }
        }
        let n = out.len().min(self.buf.len() - self.at);
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}
