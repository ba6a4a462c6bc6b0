//! A bundle on media or in the held area: reading and verifying it.
//!
//! Verification follows docs/bundle-format.md §9: the manifest first (size,
//! signature by a trusted key, consistency, limits), then each volume's size
//! and hash, then each chunk against its id as it is extracted.

use crate::chunkstore::ChunkStore;
use crate::import::Refusal;
use anyhow::{bail, Context, Result};
use ferry_agent_common::media::{MANIFEST_FILE, UNSIGNED_MANIFEST_FILE};
use ferry_protocol::codec;
use ferry_protocol::keys::PublicKey;
use ferry_protocol::limits::ReceiverLimits;
use ferry_protocol::manifest::{ChunkEntry, Manifest, VerifiedManifest};
use ferry_protocol::volume;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Where a bundle's chunks are.
#[derive(Clone, Debug)]
pub enum Payload {
    /// In its volume files (from media or a diode).
    Volumes,
    /// Received one by one (over QUIC) into a chunk directory; each was
    /// checked against its id on arrival and is checked again when used.
    Chunks(PathBuf),
}

/// A bundle whose manifest has been verified.
pub struct Bundle {
    /// The bundle directory.
    pub dir: PathBuf,
    /// Where its chunks are.
    pub payload: Payload,
    /// The verified manifest.
    pub verified: VerifiedManifest,
    /// Size of the manifest file.
    pub manifest_bytes: u64,
    /// A later expiry from a verified validity extension beside the bundle
    /// ([`crate::trust::check_extension`]); none until checked.
    pub extended_until: Option<u64>,
    /// Keys whose co-signatures beside the bundle verified
    /// ([`crate::trust::extend_all`]); empty until checked.
    pub cosigners: Vec<PublicKey>,
    /// Whether [`name_chunks`] checked every volume's size and hash already
    /// (so the apply does not read them twice).
    pub volumes_verified: bool,
    /// The chunk-table entries [`name_chunks`] read from the volumes and
    /// checked in full (decoded, SHA-256 of their object, BLAKE3 their id):
    /// `crate::carried` does not read them again for the check after the
    /// build.
    pub checked_by_naming: Vec<u32>,
}

impl Bundle {
    /// When it expires: its manifest's `expires`, or a later time a
    /// verified validity extension gives.
    pub fn expires(&self) -> u64 {
        self.head().expires.max(self.extended_until.unwrap_or(0))
    }

    /// The manifest's fields that hold no chunk id (stream, sequence,
    /// times, volumes, totals, extensions). Its `changes` and `chunks` are
    /// empty while a version-4 manifest's id-less chunks are not named:
    /// those are read through [`Bundle::named`].
    pub fn head(&self) -> &Manifest {
        self.verified.head()
    }

    /// The whole manifest, every chunk id known: after [`name_chunks`] (a
    /// manifest of version 1 to 3, or of version 4 without id-less chunks,
    /// is named from the start).
    pub fn named(&self) -> Result<&Manifest> {
        self.verified
            .manifest()
            .with_context(|| format!("bundle {}", self.sequence()))
    }

    /// The chunk table, every chunk id known (after [`name_chunks`]).
    pub fn chunks(&self) -> Result<&[ChunkEntry]> {
        self.verified
            .chunks()
            .with_context(|| format!("bundle {}", self.sequence()))
    }

    /// Sequence number.
    pub fn sequence(&self) -> u64 {
        self.verified.head().sequence
    }

    /// Total bytes on media.
    pub fn bytes(&self) -> u64 {
        self.manifest_bytes + self.head().totals.volume_bytes
    }

    /// Path of volume `index`.
    pub fn volume_path(&self, index: u32) -> PathBuf {
        self.dir.join(volume::file_name(index))
    }
}

/// Opens a file of a bundle for reading, if it is a regular file. Media are
/// hostile: a FIFO would block the import (which holds the database) until
/// something writes to it, and a device may never end; both are refused by
/// name. The open itself does not block (`O_NONBLOCK`, which regular files
/// ignore), so a FIFO put in place after a check cannot hang it either.
pub(crate) fn open_regular(path: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let kind = f
        .metadata()
        .with_context(|| format!("cannot stat {}", path.display()))?
        .file_type();
    if !kind.is_file() {
        bail!(
            "{} is not a regular file (a FIFO, device or socket on the media); refused",
            path.display()
        );
    }
    Ok(f)
}

/// Reads a manifest file, at most `limit` bytes.
pub fn read_manifest_file(dir: &Path, limit: u64) -> Result<Vec<u8>> {
    let path = dir.join(MANIFEST_FILE);
    let f = open_regular(&path)?;
    let mut bytes = Vec::new();
    f.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(bytes)
}

/// Opens the bundle in `dir` and verifies its manifest. A signer not in
/// `trusted` is a [`Refusal::UntrustedKey`]; other faults are `ferry_protocol::Error`s.
///
/// A bundle exported unsigned (an `UNSIGNED_MANIFEST_FILE` and no
/// `MANIFEST_FILE`) is refused as [`ferry_protocol::Error::Unsigned`], as is
/// an unsigned manifest renamed to `MANIFEST_FILE`.
pub fn open(dir: &Path, trusted: &[PublicKey], limits: &ReceiverLimits) -> Result<Bundle> {
    let signed = dir.join(MANIFEST_FILE);
    let unsigned = dir.join(UNSIGNED_MANIFEST_FILE);
    if std::fs::symlink_metadata(&signed).is_err() && std::fs::symlink_metadata(&unsigned).is_ok() {
        return Err(
            anyhow::Error::new(ferry_protocol::Error::Unsigned).context(format!(
                "{} has {UNSIGNED_MANIFEST_FILE} and no {MANIFEST_FILE}",
                dir.display()
            )),
        );
    }
    let bytes = read_manifest_file(dir, limits.max_manifest_bytes)?;
    let verified = crate::trust::open_manifest_keeping_columns(&bytes, trusted, limits)
        .map_err(|e| match e {
            ferry_protocol::Error::UntrustedKey(key) => {
                anyhow::Error::new(Refusal::UntrustedKey { key })
            }
            e => anyhow::Error::new(e),
        })
        .with_context(|| format!("manifest {}", dir.join(MANIFEST_FILE).display()))?;
    Ok(Bundle {
        dir: dir.to_path_buf(),
        payload: Payload::Volumes,
        verified,
        manifest_bytes: bytes.len() as u64,
        extended_until: None,
        cosigners: vec![],
        volumes_verified: false,
        checked_by_naming: vec![],
    })
}

/// Checks every volume's size and hash; `on_bytes` is told progress.
pub fn verify_volumes(b: &Bundle, mut on_bytes: impl FnMut(u64)) -> Result<()> {
    for (i, entry) in b.head().volumes.iter().enumerate() {
        let path = b.volume_path(i as u32);
        if std::fs::symlink_metadata(&path).is_err() {
            bail!(
                "bundle {}: volume {i} ({}) is missing",
                b.sequence(),
                path.display()
            );
        }
        let f = open_regular(&path).with_context(|| format!("bundle {}", b.sequence()))?;
        volume::verify(
            std::io::BufReader::with_capacity(1 << 20, f),
            i as u32,
            entry,
        )
        .with_context(|| format!("bundle {}: {}", b.sequence(), path.display()))?;
        on_bytes(entry.size);
    }
    Ok(())
}

/// The directory where a bundle received over QUIC into the chunk
/// directory `received` (`incoming/<bundle>/chunks`) keeps, for each chunk
/// its manifest lists without an id, a file named by the chunk's index that
/// holds the id computed when it arrived (the chunk itself is among the
/// received chunks, under that id): `incoming/<bundle>/unnamed`.
pub fn unnamed_dir(received: &Path) -> PathBuf {
    received.parent().unwrap_or(received).join("unnamed")
}

/// Names the chunks a version-4 manifest lists without ids (bundle-format
/// §5.10.1): each one's bytes, read from its volume (after every volume's
/// size and hash are checked: §9 step 12) or from the chunks received over
/// QUIC, must be the whole of the object that refers to it (its SHA-256,
/// which the signature covers); its id is their BLAKE3. A bundle already
/// named is left as it is.
///
/// With `place` (an apply, not a dry run), each chunk read from a volume
/// whose object that store lacks is also written into it as that object,
/// from the bytes just checked against its SHA-256 (mode 0644; synced with
/// the rest before the commit; a failed apply's `recover` sweeps it): the
/// build then finds the object held and does not read, decode and hash the
/// chunk a second time. The caller records the prune as pending first.
pub fn name_chunks(
    b: &mut Bundle,
    on_bytes: impl FnMut(u64),
    place: Option<&crate::objects::ObjectStore>,
) -> Result<()> {
    if b.verified.is_named() {
        return Ok(());
    }
    let seq = b.sequence();
    if matches!(b.payload, Payload::Volumes) && !b.volumes_verified {
        verify_volumes(b, on_bytes)?;
        b.volumes_verified = true;
    }
    // In parts: a part's entries and ids are held at a time, not every
    // id-less entry's.
    let total = b.verified.unnamed_count();
    let mut checked = Vec::new();
    let mut first = 0;
    while first < total {
        let end = total.min(first + NAME_PART);
        let ids = name_part(b, first..end, place)?;
        if matches!(b.payload, Payload::Volumes) {
            let part = b.verified.to_name_range(first..end);
            checked.extend(part.iter().map(|t| t.index));
        }
        b.verified.name_part(first, &ids);
        first = end;
    }
    b.verified
        .finish_naming()
        .with_context(|| format!("bundle {seq}"))?;
    b.checked_by_naming = checked;
    Ok(())
}

/// How many id-less chunks are named at a time.
const NAME_PART: usize = 16_384;

/// The ids of the id-less chunks `range` of `b` (their places among
/// them): each read and checked against its object ([`name_chunks`]).
fn name_part(
    b: &Bundle,
    range: std::ops::Range<usize>,
    place: Option<&crate::objects::ObjectStore>,
) -> Result<Vec<ferry_protocol::id::ChunkId>> {
    use rayon::prelude::*;
    let seq = b.sequence();
    let to_name = b.verified.to_name_range(range);
    let ids = match &b.payload {
        Payload::Volumes => to_name
            .par_chunks(64)
            .map(|run| -> Result<Vec<ferry_protocol::id::ChunkId>> {
                let mut open: Option<(u32, std::fs::File)> = None;
                let mut out = Vec::with_capacity(run.len());
                for t in run {
                    let path = b.volume_path(t.place.volume);
                    if open.as_ref().is_none_or(|(v, _)| *v != t.place.volume) {
                        open = Some((t.place.volume, open_regular(&path)?));
                    }
                    let (_, f) = open.as_ref().expect("just opened");
                    let mut buf = vec![0; t.place.stored_len as usize];
                    f.read_exact_at(&mut buf, t.place.offset).with_context(|| {
                        format!("cannot read chunk #{} from {}", t.index, path.display())
                    })?;
                    let (id, data) = codec::decode_whole(
                        &t.sha256,
                        &t.key,
                        t.place.codec,
                        &buf,
                        t.place.raw_len,
                    )
                    .with_context(|| {
                        format!("bundle {seq}: chunk #{} of {}", t.index, path.display())
                    })?;
                    if let Some(store) = place {
                        place_object(store, &t.sha256, &data)
                            .with_context(|| format!("bundle {seq}: object {}", t.key))?;
                    }
                    out.push(id);
                }
                Ok(out)
            })
            .collect::<Result<Vec<_>>>()?
            .concat(),
        Payload::Chunks(dir) => {
            let received = ChunkStore::new(dir, b.head().totals.max_chunk.max(1));
            let names = unnamed_dir(dir);
            to_name
                .par_iter()
                .map(|t| -> Result<ferry_protocol::id::ChunkId> {
                    let missing = || {
                        format!(
                            "bundle {seq}: chunk #{} (the whole of {}) was not received",
                            t.index, t.key
                        )
                    };
                    let id = std::fs::read(names.join(t.index.to_string()))
                        .ok()
                        .and_then(|b| <[u8; 32]>::try_from(b).ok())
                        .map(ferry_protocol::id::ChunkId)
                        .with_context(missing)?;
                    let (codec, raw_len, stored) =
                        received.get_stored(&id).with_context(missing)?;
                    let (computed, _) =
                        codec::decode_whole(&t.sha256, &t.key, codec, &stored, raw_len)
                            .with_context(|| {
                                format!("bundle {seq}: received chunk #{}", t.index)
                            })?;
                    if computed != id || raw_len != t.place.raw_len {
                        bail!(
                            "bundle {seq}: received chunk #{} is not the one recorded for it",
                            t.index
                        );
                    }
                    Ok(id)
                })
                .collect::<Result<Vec<_>>>()?
        }
    };
    Ok(ids)
}

/// Writes `data`, checked against `sha256` already, as that object of
/// `store` unless the store holds a file of its size there.
fn place_object(
    store: &crate::objects::ObjectStore,
    sha256: &ferry_protocol::id::Sha256,
    data: &[u8],
) -> Result<()> {
    use std::io::Write;
    if store.holds(sha256, data.len() as u64) {
        return Ok(());
    }
    store.write_object(sha256, |mut file, tmp| {
        file.write_all(data)
            .with_context(|| format!("cannot write {}", tmp.display()))
    })?;
    Ok(())
}

/// Reads every carried chunk for which `wanted` is true, checks it against
/// its id, and hands its stored bytes to `take`. Runs on all cores, each
/// worker on runs of neighbouring chunks so reads stay mostly sequential.
pub fn for_each_chunk(
    b: &Bundle,
    wanted: impl Fn(&ChunkEntry) -> bool + Sync,
    take: impl Fn(&ChunkEntry, &[u8]) -> Result<()> + Sync,
    on_bytes: impl Fn(u64) + Sync,
) -> Result<()> {
    use rayon::prelude::*;
    let mut order: Vec<_> = b.chunks()?.iter().collect();
    order.sort_by_key(|c| (c.volume, c.offset));
    order.par_chunks(64).try_for_each(|run| -> Result<()> {
        let mut open: Option<(u32, std::fs::File)> = None;
        let mut buf = Vec::new();
        for c in run {
            on_bytes(c.stored_len as u64);
            if !wanted(c) {
                continue;
            }
            let path = b.volume_path(c.volume);
            if open.as_ref().is_none_or(|(v, _)| *v != c.volume) {
                let f = open_regular(&path)?;
                open = Some((c.volume, f));
            }
            let (_, f) = open.as_ref().expect("just opened");
            buf.resize(c.stored_len as usize, 0);
            f.read_exact_at(&mut buf, c.offset)
                .with_context(|| format!("cannot read chunk {} from {}", c.id, path.display()))?;
            codec::decode(&c.id, c.codec, &buf, c.raw_len).with_context(|| {
                format!(
                    "bundle {}: volume {} ({})",
                    b.sequence(),
                    c.volume,
                    path.display()
                )
            })?;
            take(c, &buf)?;
        }
        Ok(())
    })
}

/// Extracts every carried chunk the store lacks, checking each against its id.
/// Returns the number of chunks added.
pub fn extract_chunks(
    b: &Bundle,
    store: &ChunkStore,
    on_bytes: impl Fn(u64) + Sync,
) -> Result<u64> {
    if let Payload::Chunks(dir) = &b.payload {
        return move_received(b, dir, store, on_bytes);
    }
    let added = std::sync::atomic::AtomicU64::new(0);
    for_each_chunk(
        b,
        // A chunk the store holds rotten is taken from the bundle again.
        |c| !store.holds_intact(&c.id),
        |c, stored| {
            added.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            store.put(&c.id, c.codec, c.raw_len, stored)
        },
        on_bytes,
    )?;
    Ok(added.into_inner())
}

/// Takes the chunks a bundle received one by one into `store`, checking
/// each again; a chunk neither received nor held already is an error.
fn move_received(
    b: &Bundle,
    dir: &Path,
    store: &ChunkStore,
    on_bytes: impl Fn(u64) + Sync,
) -> Result<u64> {
    use rayon::prelude::*;
    let received = ChunkStore::new(dir, store.max_chunk());
    let added = std::sync::atomic::AtomicU64::new(0);
    b.chunks()?.par_iter().try_for_each(|c| -> Result<()> {
        on_bytes(c.stored_len as u64);
        if store.holds_intact(&c.id) {
            return Ok(());
        }
        let (codec, raw_len, stored) = received
            .get_stored(&c.id)
            .with_context(|| format!("bundle {}: chunk {} was not received", b.sequence(), c.id))?;
        store.put(&c.id, codec, raw_len, &stored)?;
        added.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    })?;
    Ok(added.into_inner())
}

/// Copies a bundle directory (manifest and the volumes it lists, nothing
/// else) to `to`, atomically. A failed copy (a full disk) removes its
/// temporary directory.
pub fn copy_bundle(b: &Bundle, to: &Path) -> Result<()> {
    use ferry_agent_common::fsx;
    let tmp = fsx::tmp_name(to);
    fsx::remove_dir_if_exists(&tmp)?;
    let copied = (|| -> Result<()> {
        std::fs::create_dir_all(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        let mut names = vec![MANIFEST_FILE.to_string()];
        names.extend((0..b.head().volumes.len() as u32).map(volume::file_name));
        for extra in [
            ferry_protocol::trust::VALIDITY_FILE,
            ferry_protocol::trust::COSIGN_FILE,
        ] {
            if b.dir.join(extra).is_file() {
                names.push(extra.to_string());
            }
        }
        for name in names {
            let from = b.dir.join(&name);
            if !from.is_file() {
                bail!("bundle {}: {} is missing", b.sequence(), from.display());
            }
            fsx::copy_atomic(&from, &tmp.join(&name))?;
        }
        fsx::sync_dir(&tmp)
    })();
    if let Err(e) = copied {
        let _ = fsx::remove_dir_if_exists(&tmp);
        return Err(e.context(format!(
            "cannot copy bundle {} to {}",
            b.sequence(),
            to.display()
        )));
    }
    fsx::remove_dir_if_exists(to)?;
    std::fs::rename(&tmp, to).with_context(|| format!("cannot rename into {}", to.display()))?;
    fsx::sync_dir(fsx::parent(to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unsigned_bundle_is_refused_as_unsigned_even_renamed() {
        let dir = tempfile::tempdir().unwrap();
        let limits = ReceiverLimits::default();
        let unsigned = b"FERRYUNS\x01\x00\x00\x00\x00\x00\x00\x00".to_vec();
        std::fs::write(dir.path().join(UNSIGNED_MANIFEST_FILE), &unsigned).unwrap();
        let is_unsigned = |e: anyhow::Error| {
            matches!(
                e.downcast_ref::<ferry_protocol::Error>(),
                Some(ferry_protocol::Error::Unsigned)
            )
        };
        assert!(is_unsigned(open(dir.path(), &[], &limits).err().unwrap()));
        std::fs::rename(
            dir.path().join(UNSIGNED_MANIFEST_FILE),
            dir.path().join(MANIFEST_FILE),
        )
        .unwrap();
        assert!(is_unsigned(open(dir.path(), &[], &limits).err().unwrap()));
    }
}
