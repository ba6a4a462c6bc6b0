//! Reading an index file: the trailer and block index once, then one block
//! per lookup, checked against its BLAKE3.

use super::format::{self, BlockMeta, Cursor, Trailer};
use super::{Entry, IndexError, Kind};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Decoded blocks kept per open file (about 8 KiB each decoded): `serve`
/// looks up a few keys a request, mostly in the same blocks.
const CACHED_BLOCKS: usize = 2048;

/// A decoded block, shared by the lookups and scans that read it.
type Block = Arc<Vec<(Vec<u8>, Entry)>>;

/// Positional reads: a file (`pread`, shared by threads without a seek
/// position) or bytes in memory (tests, an index copied whole).
pub trait ReadAt {
    /// Fills `buf` from `offset`; fails with `UnexpectedEof` past the end.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()>;
    /// The length in bytes.
    fn size(&self) -> std::io::Result<u64>;
}

impl ReadAt for std::fs::File {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, offset)
    }
    fn size(&self) -> std::io::Result<u64> {
        Ok(self.metadata()?.len())
    }
}

impl ReadAt for Vec<u8> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        let eof = || std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
        let start = usize::try_from(offset).map_err(|_| eof())?;
        let end = start.checked_add(buf.len()).ok_or_else(eof)?;
        buf.copy_from_slice(self.get(start..end).ok_or_else(eof)?);
        Ok(())
    }
    fn size(&self) -> std::io::Result<u64> {
        Ok(self.len() as u64)
    }
}

impl<T: ReadAt + ?Sized> ReadAt for std::sync::Arc<T> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        (**self).read_exact_at(buf, offset)
    }
    fn size(&self) -> std::io::Result<u64> {
        (**self).size()
    }
}

/// Decoded blocks by number, at most `cap`, the least recently used
/// evicted first.
pub(super) struct Lru {
    cap: usize,
    tick: u64,
    blocks: HashMap<usize, (Block, u64)>,
    by_use: std::collections::BTreeMap<u64, usize>,
}

impl Lru {
    pub(super) fn new(cap: usize) -> Self {
        Lru {
            cap: cap.max(1),
            tick: 0,
            blocks: HashMap::new(),
            by_use: std::collections::BTreeMap::new(),
        }
    }

    /// Block `n`, marked as just used.
    pub(super) fn get(&mut self, n: usize) -> Option<Block> {
        self.tick += 1;
        let (b, used) = self.blocks.get_mut(&n)?;
        self.by_use.remove(used);
        *used = self.tick;
        self.by_use.insert(self.tick, n);
        Some(b.clone())
    }

    /// Keeps block `n`, evicting the least recently used one when full.
    pub(super) fn insert(&mut self, n: usize, b: Block) {
        self.tick += 1;
        if let Some((_, used)) = self.blocks.insert(n, (b, self.tick)) {
            self.by_use.remove(&used);
        } else if self.blocks.len() > self.cap {
            if let Some((_, old)) = self.by_use.pop_first() {
                self.blocks.remove(&old);
            }
        }
        self.by_use.insert(self.tick, n);
    }

    /// Whether block `n` is cached (tests).
    #[cfg(test)]
    pub(super) fn contains(&self, n: usize) -> bool {
        self.blocks.contains_key(&n)
    }
}

/// An open index file: its block index in memory, its blocks read on
/// demand.
pub struct IndexFile<R> {
    src: R,
    kind: Kind,
    entries: u64,
    bytes: u64,
    blocks: Vec<BlockMeta>,
    /// Blocks read and checked, by number (the least recently used one
    /// evicted when full).
    cache: Mutex<Lru>,
}

impl<R: ReadAt> IndexFile<R> {
    /// Opens `src`: checks header and trailer, reads the block index and
    /// checks it against its BLAKE3 and the file's bounds.
    pub fn open(src: R) -> Result<Self, IndexError> {
        let bytes = src.size()?;
        if bytes < format::HEADER_LEN + format::TRAILER_LEN {
            return Err(IndexError::BadMagic);
        }
        let mut header = [0u8; format::HEADER_LEN as usize];
        src.read_exact_at(&mut header, 0)?;
        let kind = format::parse_header(&header)?;
        let mut t = [0u8; format::TRAILER_LEN as usize];
        src.read_exact_at(&mut t, bytes - format::TRAILER_LEN)?;
        let trailer = Trailer::parse(&t)?;
        let index_end = trailer
            .index_offset
            .checked_add(trailer.index_len)
            .ok_or(IndexError::Trailer("index offset overflows"))?;
        if trailer.index_offset < format::HEADER_LEN || index_end != bytes - format::TRAILER_LEN {
            return Err(IndexError::Trailer("index is not just before the trailer"));
        }
        // Each block's index record is at least 20 bytes.
        if trailer.blocks > trailer.index_len / 20 + 1 {
            return Err(IndexError::Trailer("more blocks than the index can hold"));
        }
        let mut index = vec![0u8; trailer.index_len as usize];
        src.read_exact_at(&mut index, trailer.index_offset)?;
        if *blake3::hash(&index).as_bytes() != trailer.index_hash {
            return Err(IndexError::BlockIndex("BLAKE3 mismatch"));
        }
        let blocks = parse_index(&index, &trailer)?;
        Ok(IndexFile {
            src,
            kind,
            entries: trailer.entries,
            bytes,
            blocks,
            cache: Mutex::new(Lru::new(CACHED_BLOCKS)),
        })
    }

    /// Base or delta.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The number of entries (tombstones included).
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// The file's length in bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The number of blocks.
    pub fn blocks(&self) -> usize {
        self.blocks.len()
    }

    /// Block `n`, from the cache or read, checked and decoded.
    fn block(&self, n: usize) -> Result<Block, IndexError> {
        let lock = || self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = lock().get(n) {
            return Ok(b);
        }
        let b = Arc::new(self.read_block(n)?);
        lock().insert(n, b.clone());
        Ok(b)
    }

    /// Reads and decodes block `n`.
    fn read_block(&self, n: usize) -> Result<Vec<(Vec<u8>, Entry)>, IndexError> {
        let m = &self.blocks[n];
        let mut buf = vec![0u8; m.len as usize];
        self.src.read_exact_at(&mut buf, m.offset)?;
        let corrupt = |what| IndexError::Corrupt { block: n, what };
        if format::block_hash(&buf) != m.hash {
            return Err(corrupt("BLAKE3 mismatch"));
        }
        let entries = format::decode_block(&buf).map_err(corrupt)?;
        if entries.len() as u64 != m.entries {
            return Err(corrupt("entry count differs from the index"));
        }
        if entries.first().map(|(k, _)| k) != Some(&m.first_key) {
            return Err(corrupt("first key differs from the index"));
        }
        if let Some(next) = self.blocks.get(n + 1) {
            if entries.last().is_some_and(|(k, _)| *k >= next.first_key) {
                return Err(corrupt("last key not before the next block's"));
            }
        }
        Ok(entries)
    }

    /// The block that would hold `key`: the last whose first key is at most
    /// `key` (None when `key` sorts before every block).
    fn block_for(&self, key: &[u8]) -> Option<usize> {
        self.blocks
            .partition_point(|b| b.first_key.as_slice() <= key)
            .checked_sub(1)
    }

    /// What this file says of `key` (a tombstone included), or None.
    pub fn get(&self, key: &[u8]) -> Result<Option<Entry>, IndexError> {
        let Some(n) = self.block_for(key) else {
            return Ok(None);
        };
        let entries = self.block(n)?;
        Ok(entries
            .binary_search_by(|(k, _)| k.as_slice().cmp(key))
            .ok()
            .map(|i| entries[i].1.clone()))
    }

    /// Every entry from the first key at or after `start`, in order.
    pub fn scan_from(&self, start: &[u8]) -> Scan<'_, R> {
        let n = self.block_for(start).unwrap_or(0);
        Scan {
            file: self,
            next_block: n,
            current: Arc::new(Vec::new()),
            pos: 0,
            start: Some(start.to_vec()),
            failed: false,
        }
    }
}

fn parse_index(index: &[u8], trailer: &Trailer) -> Result<Vec<BlockMeta>, IndexError> {
    let mut c = Cursor::new(index);
    let mut blocks: Vec<BlockMeta> = Vec::with_capacity(trailer.blocks as usize);
    let mut expect_offset = format::HEADER_LEN;
    let mut total = 0u64;
    while !c.done() {
        let m = format::get_block_meta(&mut c).map_err(IndexError::BlockIndex)?;
        if m.offset != expect_offset || m.len == 0 || m.len > format::MAX_BLOCK {
            return Err(IndexError::BlockIndex("blocks do not follow each other"));
        }
        if blocks.last().is_some_and(|p| p.first_key >= m.first_key) {
            return Err(IndexError::BlockIndex("first keys out of order"));
        }
        expect_offset += m.len;
        total = total
            .checked_add(m.entries)
            .ok_or(IndexError::BlockIndex("entry counts overflow"))?;
        blocks.push(m);
    }
    if blocks.len() as u64 != trailer.blocks
        || total != trailer.entries
        || expect_offset != trailer.index_offset
    {
        return Err(IndexError::BlockIndex("counts differ from the trailer"));
    }
    Ok(blocks)
}

/// The entries of an index file in key order, from a start key; reads one
/// block at a time. Stops after the first error.
pub struct Scan<'a, R> {
    file: &'a IndexFile<R>,
    next_block: usize,
    current: Block,
    pos: usize,
    /// Entries before this key are skipped (first block only).
    start: Option<Vec<u8>>,
    failed: bool,
}

impl<R: ReadAt> Iterator for Scan<'_, R> {
    type Item = Result<(Vec<u8>, Entry), IndexError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        loop {
            if let Some(kv) = self.current.get(self.pos) {
                self.pos += 1;
                if let Some(s) = &self.start {
                    if kv.0 < *s {
                        continue;
                    }
                    self.start = None;
                }
                return Some(Ok(kv.clone()));
            }
            if self.next_block >= self.file.blocks.len() {
                return None;
            }
            match self.file.block(self.next_block) {
                Ok(entries) => {
                    self.current = entries;
                    self.pos = 0;
                }
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
            self.next_block += 1;
        }
    }
}
