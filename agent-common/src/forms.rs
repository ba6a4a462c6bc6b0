//! A kept object's reference form, made into a spill file as the object is
//! read when it is a gzip member or a zip: both agents need the form of a
//! large base (a layer or a wheel of a few hundred MB) without holding it,
//! the outside to patch against it and the inside to rebuild from it.

use anyhow::{Context, Result};
use ferry_protocol::id::{Blake3Writer, Sha256, Sha256Hasher, Sha256Reader};
use ferry_recipe::stream_expand::{expand_streamed, StreamExpandError};
use std::fs::File;
use std::io::Write;
use std::path::Path;

/// A reference form in an unlinked file, with what was read and written.
pub struct SpilledForm {
    /// The form (unlinked: gone when closed).
    pub file: File,
    /// Its length.
    pub len: u64,
    /// Its BLAKE3.
    pub blake3: [u8; 32],
    /// The SHA-256 of the object read (the caller checks it is the base's).
    pub sha256: Sha256,
}

/// The reference form of the object read from `copy` (`len` bytes), made
/// into an unlinked file in `dir` as it is read, when the object is one
/// gzip member or a zip (`ferry_recipe::stream_expand::expand_streamed`:
/// the same bytes as `ferry_recipe::expand`); `None` otherwise (the caller
/// expands it whole). Errors are reading the copy and writing the spill.
pub fn spill_form(copy: &File, len: u64, dir: &Path) -> Result<Option<SpilledForm>> {
    let spill = crate::fsx::unlinked_file(dir, "reference")?;
    let mut reader = Sha256Reader::new(
        std::io::BufReader::with_capacity(1 << 20, copy),
        Sha256Hasher::new(),
    );
    let mut writer = Blake3Writer::new(std::io::BufWriter::with_capacity(1 << 20, &spill));
    let made = match expand_streamed(copy, len, &mut reader, &mut writer) {
        Ok(_) => writer.flush().map(|()| true),
        Err(StreamExpandError::Io(e)) => Err(e),
        Err(_) => Ok(false),
    }
    .with_context(|| format!("cannot make a reference form in {}", dir.display()))?;
    if !made {
        return Ok(None);
    }
    let (len, blake3) = (writer.written, *writer.hasher.finalize().as_bytes());
    drop(writer);
    Ok(Some(SpilledForm {
        file: spill,
        len,
        blake3,
        sha256: reader.hasher.finish(),
    }))
}
