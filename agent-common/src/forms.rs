//! A kept object's reference form (or expanded form), made into a spill
//! file as the object is read when it is a gzip member, a zip or a deb: all
//! agents need the form of a large base (a layer or a wheel of a few hundred
//! MB) without holding it, the outside to patch against it and the inside
//! to rebuild from it; the outside analyses a large changed object the same
//! way.

use anyhow::{Context, Result};
use ferry_protocol::id::{Blake3Writer, Sha256, Sha256Hasher, Sha256Reader};
use ferry_recipe::stream_expand::{expand_streamed, StreamExpandError};
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

/// A form in an unlinked file, with what was read and written.
pub struct SpilledForm {
    /// The form (unlinked: gone when closed).
    pub file: File,
    /// Its length.
    pub len: u64,
    /// Its BLAKE3.
    pub blake3: [u8; 32],
    /// The SHA-256 of the object read (the caller checks it is the
    /// object's), all `len` bytes of it.
    pub sha256: Sha256,
}

/// The reference form of the object in `copy` (`len` bytes), made into an
/// unlinked file in `dir` as it is read, when the object is one gzip member
/// or a zip (`ferry_recipe::stream_expand::expand_streamed`: the same bytes
/// as `ferry_recipe::expand`); `None` otherwise (the caller expands it
/// whole). `what` names the object in errors (reading the copy, writing
/// the spill).
pub fn spill_form(copy: &File, len: u64, dir: &Path, what: &str) -> Result<Option<SpilledForm>> {
    let made = spill_made(copy, len, dir, what, |mut object, mut out| {
        expand_streamed(copy, len, &mut object, &mut out)
    })?;
    Ok(made.map(|(form, ())| form))
}

/// [`spill_form`], with what a base that is one gzip member lends a
/// rebuild that copies its parse
/// (`ferry_recipe::stream_expand::expand_streamed_lending`: its stream's
/// place, block starts and plain index, made as it is read).
pub fn spill_form_lending(
    copy: &File,
    len: u64,
    dir: &Path,
    what: &str,
) -> Result<Option<(SpilledForm, Option<ferry_recipe::reuse::Lendable>)>> {
    spill_made(copy, len, dir, what, |mut object, mut out| {
        ferry_recipe::stream_expand::expand_streamed_lending(copy, len, &mut object, &mut out)
    })
}

/// The form `make` writes of the object in `copy` (`len` bytes) as it
/// reads it, from its first byte (positioned reads: the file's cursor is
/// not used), made into an unlinked file in `dir`, its BLAKE3 and the
/// object's SHA-256 taken as they pass; with what `make` gave. `None` when
/// `make` refuses the object (anything but an I/O error) or did not read it
/// to its end. `what` names the object in errors.
pub fn spill_made<T>(
    copy: &File,
    len: u64,
    dir: &Path,
    what: &str,
    make: impl FnOnce(&mut dyn Read, &mut dyn Write) -> Result<T, StreamExpandError>,
) -> Result<Option<(SpilledForm, T)>> {
    let spill = crate::fsx::unlinked_file(dir, "form")?;
    let mut reader = Sha256Reader::new(
        std::io::BufReader::with_capacity(1 << 20, From0 { file: copy, pos: 0 }),
        Sha256Hasher::new(),
    );
    let mut writer = Blake3Writer::new(std::io::BufWriter::with_capacity(1 << 20, &spill));
    let made = match make(&mut reader, &mut writer) {
        Ok(made) => writer.flush().map(|()| Some(made)),
        Err(StreamExpandError::Io(e)) => Err(e),
        Err(_) => Ok(None),
    }
    .with_context(|| format!("cannot make the form of {what} in {}", dir.display()))?;
    let Some(made) = made.filter(|_| reader.read == len) else {
        return Ok(None);
    };
    let (written, blake3) = (writer.written, *writer.hasher.finalize().as_bytes());
    drop(writer);
    let form = SpilledForm {
        file: spill,
        len: written,
        blake3,
        sha256: reader.hasher.finish(),
    };
    Ok(Some((form, made)))
}

/// A file read with positioned reads from its start.
struct From0<'f> {
    file: &'f File,
    pos: u64,
}

impl Read for From0<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = std::os::unix::fs::FileExt::read_at(self.file, buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}
