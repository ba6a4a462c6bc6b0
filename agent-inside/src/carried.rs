//! The chunks a bundle's volume files carry, read where they lie.
//!
//! An apply of a bundle that came with volumes (from media, the held area,
//! `watch` or the diode's spool) builds its objects straight from the
//! verified volumes: each chunk is read from its volume at the place the
//! manifest's chunk table gives (volume, offset, stored length, codec),
//! decoded (bounded by its declared length) and checked against its id
//! (BLAKE3) when the build reads it, as extracting it into a file of its
//! own checked it before. Only the chunks the chunk store must keep are
//! copied into it (`crate::apply`). A bundle whose chunks were received
//! one by one (QUIC) has no volumes and keeps its chunks in files.
//!
//! The volumes' sizes and hashes are checked before anything here is read
//! (`bundle::verify_volumes`, bundle-format §9); every read is checked
//! again against the chunk's id, so media changed after that check (or a
//! chunk whose bytes do not hash to the id the signed manifest gives) is an
//! error naming the bundle, the volume and the chunk, and nothing is
//! applied.

use crate::bundle::{open_regular, Bundle, Payload};
use anyhow::{Context, Result};
use ferry_protocol::codec::{self, Codec};
use ferry_protocol::id::ChunkId;
use ferry_protocol::manifest::ChunkEntry;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// The chunks a bundle's volumes carry, by id: 4 bytes a chunk beside the
/// manifest's chunk table, each volume opened once, on first use.
pub struct Carried<'a> {
    sequence: u64,
    dir: PathBuf,
    table: &'a [ChunkEntry],
    /// Indices into `table`, sorted by chunk id.
    by_id: Vec<u32>,
    volumes: Vec<OnceLock<File>>,
    /// Whether each entry of `table` was read and checked.
    checked: Vec<AtomicBool>,
}

impl<'a> Carried<'a> {
    /// The chunks of `b`, whose ids are all known ([`Bundle::named`]);
    /// `None` for a bundle whose chunks were received one by one.
    pub fn of(b: &'a Bundle) -> Result<Option<Carried<'a>>> {
        if !matches!(b.payload, Payload::Volumes) {
            return Ok(None);
        }
        let table = b.chunks()?;
        let mut by_id: Vec<u32> = (0..table.len() as u32).collect();
        by_id.sort_unstable_by(|&x, &y| table[x as usize].id.cmp(&table[y as usize].id));
        Ok(Some(Carried {
            sequence: b.sequence(),
            dir: b.dir.clone(),
            table,
            by_id,
            volumes: (0..b.head().volumes.len())
                .map(|_| OnceLock::new())
                .collect(),
            checked: {
                // Read and checked in full when they were named: not read
                // again for the check after the build.
                let mut checked: Vec<AtomicBool> =
                    (0..table.len()).map(|_| AtomicBool::new(false)).collect();
                for &i in &b.checked_by_naming {
                    *checked[i as usize].get_mut() = true;
                }
                checked
            },
        }))
    }

    fn entry(&self, id: &ChunkId) -> Option<(usize, &'a ChunkEntry)> {
        let table = self.table;
        let at = self
            .by_id
            .binary_search_by(|&i| table[i as usize].id.cmp(id))
            .ok()?;
        let index = self.by_id[at] as usize;
        Some((index, &table[index]))
    }

    /// Whether the bundle carries chunk `id` (nothing is read).
    pub fn contains(&self, id: &ChunkId) -> bool {
        self.entry(id).is_some()
    }

    /// The number of chunks carried.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether the bundle carries no chunk.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    fn volume_path(&self, index: u32) -> PathBuf {
        self.dir.join(ferry_protocol::volume::file_name(index))
    }

    fn volume(&self, index: u32) -> Result<&File> {
        let slot = self
            .volumes
            .get(index as usize)
            .with_context(|| format!("volume {index} is not listed"))?;
        if let Some(f) = slot.get() {
            return Ok(f);
        }
        let f = open_regular(&self.volume_path(index))?;
        // Two threads may open it at once: one copy is kept.
        let _ = slot.set(f);
        Ok(slot.get().expect("just set"))
    }

    /// Reads the stored bytes of `c` and decodes them (bounded by its
    /// declared length), checking them against its id: `(decoded, stored)`.
    fn read(&self, (index, c): (usize, &ChunkEntry)) -> Result<(Vec<u8>, Vec<u8>)> {
        let path = self.volume_path(c.volume);
        let where_ = || {
            format!(
                "bundle {}: volume {} ({})",
                self.sequence,
                c.volume,
                path.display()
            )
        };
        let f = self.volume(c.volume).with_context(where_)?;
        let mut stored = vec![0u8; c.stored_len as usize];
        f.read_exact_at(&mut stored, c.offset)
            .with_context(|| format!("cannot read chunk {} at offset {}", c.id, c.offset))
            .with_context(where_)?;
        let data = codec::decode(&c.id, c.codec, &stored, c.raw_len).with_context(where_)?;
        self.checked[index].store(true, Ordering::Relaxed);
        Ok((data, stored))
    }

    /// Chunk `id`'s bytes, checked against its id; `None` when the bundle
    /// does not carry it.
    pub fn get(&self, id: &ChunkId) -> Option<Result<Vec<u8>>> {
        let e = self.entry(id)?;
        Some(self.read(e).map(|(data, _)| data))
    }

    /// Chunk `id` as stored in its volume, `(codec, raw length, stored
    /// bytes)`, after checking that it decodes to its id; `None` when the
    /// bundle does not carry it. What the chunk store keeps.
    pub fn get_stored(&self, id: &ChunkId) -> Option<Result<(Codec, u32, Vec<u8>)>> {
        let e = self.entry(id)?;
        Some(
            self.read(e)
                .map(|(_, stored)| (e.1.codec, e.1.raw_len, stored)),
        )
    }

    /// Reads and checks every carried chunk not read yet (one no object
    /// the build wrote needed, and not one a version-4 manifest lists
    /// without its id: naming it read and checked it, `bundle::name_chunks`),
    /// so that every chunk of the bundle is checked before anything of it
    /// becomes visible (bundle-format §9, step 13). Returns how many it read.
    pub fn check_unread(&self) -> Result<usize> {
        use rayon::prelude::*;
        let mut unread: Vec<usize> = (0..self.table.len())
            .filter(|&i| !self.checked[i].load(Ordering::Relaxed))
            .collect();
        unread.sort_by_key(|&i| (self.table[i].volume, self.table[i].offset));
        unread
            .par_iter()
            .try_for_each(|&i| self.read((i, &self.table[i])).map(|_| ()))?;
        Ok(unread.len())
    }
}
