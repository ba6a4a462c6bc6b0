//! Writing an index file from a sorted stream of entries, and merging two
//! sorted streams (a delta with an import's changes, or a base with its
//! delta) into a third.

use super::format::{self, BlockMeta, Trailer};
use super::{Entry, IndexError, Kind, BLOCK_TARGET, MAX_KEY};
use std::io::Write;

/// What a finished index file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Entries written (tombstones included).
    pub entries: u64,
    /// Blocks written.
    pub blocks: u64,
    /// The file's length in bytes.
    pub bytes: u64,
}

/// Writes one index file, entries pushed in strictly increasing key order.
/// Holds one block (about 4 KiB) and the block index in memory.
pub struct Writer<W: Write> {
    out: W,
    kind: Kind,
    /// Bytes written so far (the offset of the next block).
    offset: u64,
    block: Vec<u8>,
    block_first: Vec<u8>,
    block_entries: u64,
    prev: Option<Vec<u8>>,
    metas: Vec<BlockMeta>,
    entries: u64,
}

fn lossy(k: &[u8]) -> String {
    String::from_utf8_lossy(k).replace('\0', "/")
}

impl<W: Write> Writer<W> {
    /// Starts a file of `kind` on `out` (written through, block by block;
    /// give it a `BufWriter` over a file, or a `Vec<u8>`).
    pub fn new(mut out: W, kind: Kind) -> Result<Self, IndexError> {
        out.write_all(&format::header(kind))?;
        Ok(Writer {
            out,
            kind,
            offset: format::HEADER_LEN,
            block: Vec::with_capacity(BLOCK_TARGET * 2),
            block_first: Vec::new(),
            block_entries: 0,
            prev: None,
            metas: Vec::new(),
            entries: 0,
        })
    }

    /// Appends `key` → `entry`. `key` must be greater than every key before
    /// it; a base takes no tombstones.
    pub fn push(&mut self, key: &[u8], entry: &Entry) -> Result<(), IndexError> {
        if key.len() > MAX_KEY {
            return Err(IndexError::TooLong(key.len()));
        }
        if let Entry::Symlink { target } = entry {
            if target.len() > MAX_KEY {
                return Err(IndexError::TooLong(target.len()));
            }
        }
        if self.kind == Kind::Base && *entry == Entry::Tombstone {
            return Err(IndexError::TombstoneInBase(lossy(key)));
        }
        let shared = match &self.prev {
            Some(p) if key <= p.as_slice() => {
                return Err(IndexError::OutOfOrder {
                    prev: lossy(p),
                    key: lossy(key),
                })
            }
            Some(p) if self.block_entries > 0 => {
                p.iter().zip(key).take_while(|(a, b)| a == b).count()
            }
            _ => 0,
        };
        if self.block_entries == 0 {
            self.block_first = key.to_vec();
        }
        format::put_varint(&mut self.block, shared as u64);
        format::put_varint(&mut self.block, (key.len() - shared) as u64);
        self.block.extend_from_slice(&key[shared..]);
        format::put_entry(&mut self.block, entry);
        self.block_entries += 1;
        self.entries += 1;
        let prev = self.prev.get_or_insert_with(Vec::new);
        prev.clear();
        prev.extend_from_slice(key);
        if self.block.len() >= BLOCK_TARGET {
            self.close_block()?;
        }
        Ok(())
    }

    fn close_block(&mut self) -> Result<(), IndexError> {
        if self.block_entries == 0 {
            return Ok(());
        }
        self.out.write_all(&self.block)?;
        self.metas.push(BlockMeta {
            first_key: std::mem::take(&mut self.block_first),
            offset: self.offset,
            len: self.block.len() as u64,
            entries: self.block_entries,
            hash: format::block_hash(&self.block),
        });
        self.offset += self.block.len() as u64;
        self.block.clear();
        self.block_entries = 0;
        Ok(())
    }

    /// Writes the last block, the block index and the trailer; returns the
    /// output (flushed, not synced: the caller syncs the file) and what was
    /// written.
    pub fn finish(mut self) -> Result<(W, Summary), IndexError> {
        self.close_block()?;
        let mut index = Vec::new();
        for m in &self.metas {
            format::put_block_meta(&mut index, m);
        }
        let trailer = Trailer {
            index_offset: self.offset,
            index_len: index.len() as u64,
            entries: self.entries,
            blocks: self.metas.len() as u64,
            index_hash: *blake3::hash(&index).as_bytes(),
        };
        self.out.write_all(&index)?;
        self.out.write_all(&trailer.to_bytes())?;
        self.out.flush()?;
        let summary = Summary {
            entries: self.entries,
            blocks: self.metas.len() as u64,
            bytes: self.offset + index.len() as u64 + format::TRAILER_LEN,
        };
        Ok((self.out, summary))
    }
}

type Item = Result<(Vec<u8>, Entry), IndexError>;

/// Two sorted streams merged into one: on equal keys the newer entry wins;
/// with `drop_tombstones`, a tombstone hides the older entry and is not
/// yielded. A stream out of order is an error. Stops after the first error.
pub(super) struct Merged<A: Iterator<Item = Item>, B: Iterator<Item = Item>> {
    older: std::iter::Peekable<A>,
    newer: std::iter::Peekable<B>,
    drop_tombstones: bool,
    prev: Option<Vec<u8>>,
    failed: bool,
}

impl<A: Iterator<Item = Item>, B: Iterator<Item = Item>> Merged<A, B> {
    pub(super) fn new(older: A, newer: B, drop_tombstones: bool) -> Self {
        Merged {
            older: older.peekable(),
            newer: newer.peekable(),
            drop_tombstones,
            prev: None,
            failed: false,
        }
    }

    /// The next entry of the merge, tombstones included.
    fn next_any(&mut self) -> Option<Item> {
        use std::cmp::Ordering;
        let order = match (self.older.peek(), self.newer.peek()) {
            (None, None) => return None,
            (Some(Err(_)), _) | (Some(_), None) => Ordering::Less,
            (_, Some(Err(_))) | (None, Some(_)) => Ordering::Greater,
            (Some(Ok((a, _))), Some(Ok((b, _)))) => a.cmp(b),
        };
        match order {
            Ordering::Less => self.older.next(),
            Ordering::Greater => self.newer.next(),
            Ordering::Equal => {
                self.older.next();
                self.newer.next()
            }
        }
    }
}

impl<A: Iterator<Item = Item>, B: Iterator<Item = Item>> Iterator for Merged<A, B> {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        if self.failed {
            return None;
        }
        loop {
            let item = self.next_any()?;
            let (key, entry) = match item {
                Ok(kv) => kv,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            };
            if let Some(p) = &self.prev {
                if key <= *p {
                    self.failed = true;
                    return Some(Err(IndexError::OutOfOrder {
                        prev: lossy(p),
                        key: lossy(&key),
                    }));
                }
            }
            self.prev = Some(key.clone());
            if self.drop_tombstones && entry == Entry::Tombstone {
                continue;
            }
            return Some(Ok((key, entry)));
        }
    }
}

/// Writes the merge of `older` and `newer` (each sorted by key; the newer
/// entry wins on a key both hold) into `out`. A new delta is the previous
/// delta merged with an import's changes, tombstones kept (the base still
/// holds the keys they remove); a new base is a base merged with its delta,
/// tombstones dropped (`out` of kind [`Kind::Base`] drops them). Holds one
/// entry of each stream and one output block in memory.
pub fn merge<W: Write>(
    older: impl Iterator<Item = Item>,
    newer: impl Iterator<Item = Item>,
    out: &mut Writer<W>,
) -> Result<(), IndexError> {
    let drop = out.kind == Kind::Base;
    for item in Merged::new(older, newer, drop) {
        let (key, entry) = item?;
        out.push(&key, &entry)?;
    }
    Ok(())
}
