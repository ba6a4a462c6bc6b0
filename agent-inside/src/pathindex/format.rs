//! The bytes of an index file: varints, entries, the block index and the
//! trailer (layout in the module docs of `pathindex`).

use super::{Entry, IndexError, Kind, MAX_KEY};
use ferry_protocol::id::Sha256;

/// The first and last 8 bytes of every index file.
pub(super) const MAGIC: &[u8; 8] = b"FERRYPIX";
/// The format version written.
pub(super) const VERSION: u8 = 1;
/// The header's length.
pub(super) const HEADER_LEN: u64 = 16;
/// The trailer's length.
pub(super) const TRAILER_LEN: u64 = 72;
/// Bytes of a block's BLAKE3 kept in the block index.
pub(super) const BLOCK_HASH_LEN: usize = 16;
/// A block is refused above this length (a writer closes one at
/// `BLOCK_TARGET`, so only one entry with a key and target near `MAX_KEY`
/// runs over).
pub(super) const MAX_BLOCK: u64 = 4 * MAX_KEY as u64;

const TAG_TOMBSTONE: u8 = 0;
const TAG_FILE: u8 = 1;
const TAG_EXEC: u8 = 2;
const TAG_LINK: u8 = 3;

pub(super) fn kind_byte(kind: Kind) -> u8 {
    match kind {
        Kind::Base => 1,
        Kind::Delta => 2,
    }
}

pub(super) fn header(kind: Kind) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(MAGIC);
    h[8] = VERSION;
    h[9] = kind_byte(kind);
    h
}

/// The kind a header names, after its magic and version are checked.
pub(super) fn parse_header(h: &[u8]) -> Result<Kind, IndexError> {
    if h.len() < HEADER_LEN as usize || &h[..8] != MAGIC {
        return Err(IndexError::BadMagic);
    }
    if h[8] != VERSION {
        return Err(IndexError::Version(h[8]));
    }
    match h[9] {
        1 => Ok(Kind::Base),
        2 => Ok(Kind::Delta),
        k => Err(IndexError::UnknownKind(k)),
    }
}

/// The trailer's fields.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Trailer {
    pub(super) index_offset: u64,
    pub(super) index_len: u64,
    pub(super) entries: u64,
    pub(super) blocks: u64,
    pub(super) index_hash: [u8; 32],
}

impl Trailer {
    pub(super) fn to_bytes(&self) -> [u8; TRAILER_LEN as usize] {
        let mut t = [0u8; TRAILER_LEN as usize];
        t[0..8].copy_from_slice(&self.index_offset.to_le_bytes());
        t[8..16].copy_from_slice(&self.index_len.to_le_bytes());
        t[16..24].copy_from_slice(&self.entries.to_le_bytes());
        t[24..32].copy_from_slice(&self.blocks.to_le_bytes());
        t[32..64].copy_from_slice(&self.index_hash);
        t[64..72].copy_from_slice(MAGIC);
        t
    }

    pub(super) fn parse(t: &[u8]) -> Result<Trailer, IndexError> {
        if t.len() != TRAILER_LEN as usize || &t[64..72] != MAGIC {
            return Err(IndexError::BadMagic);
        }
        let u = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&t[i..i + 8]);
            u64::from_le_bytes(b)
        };
        let mut index_hash = [0u8; 32];
        index_hash.copy_from_slice(&t[32..64]);
        Ok(Trailer {
            index_offset: u(0),
            index_len: u(8),
            entries: u(16),
            blocks: u(24),
            index_hash,
        })
    }
}

pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A cursor over bytes being decoded; every read is bounds-checked and
/// fails as `what` names.
pub(super) struct Cursor<'a> {
    pub(super) buf: &'a [u8],
    pub(super) pos: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    pub(super) fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub(super) fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = *self.buf.get(self.pos)?;
            self.pos += 1;
            if i == 9 && b > 1 {
                return None;
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    pub(super) fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let b = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(b)
    }

    pub(super) fn byte(&mut self) -> Option<u8> {
        Some(self.bytes(1)?[0])
    }
}

/// Appends `entry`'s tag and value.
pub(super) fn put_entry(out: &mut Vec<u8>, entry: &Entry) {
    match entry {
        Entry::Tombstone => out.push(TAG_TOMBSTONE),
        Entry::File {
            sha256,
            size,
            executable,
        } => {
            out.push(if *executable { TAG_EXEC } else { TAG_FILE });
            out.extend_from_slice(&sha256.0);
            put_varint(out, *size);
        }
        Entry::Symlink { target } => {
            out.push(TAG_LINK);
            put_varint(out, target.len() as u64);
            out.extend_from_slice(target.as_bytes());
        }
    }
}

/// Reads a tag and value.
pub(super) fn get_entry(c: &mut Cursor<'_>) -> Result<Entry, &'static str> {
    match c.byte().ok_or("entry tag cut short")? {
        TAG_TOMBSTONE => Ok(Entry::Tombstone),
        tag @ (TAG_FILE | TAG_EXEC) => {
            let mut d = [0u8; 32];
            d.copy_from_slice(c.bytes(32).ok_or("digest cut short")?);
            let size = c.varint().ok_or("bad size")?;
            Ok(Entry::File {
                sha256: Sha256(d),
                size,
                executable: tag == TAG_EXEC,
            })
        }
        TAG_LINK => {
            let n = c.varint().ok_or("bad link target length")?;
            if n > MAX_KEY as u64 {
                return Err("link target over the limit");
            }
            let t = c.bytes(n as usize).ok_or("link target cut short")?;
            let target = std::str::from_utf8(t).map_err(|_| "link target is not UTF-8")?;
            Ok(Entry::Symlink {
                target: target.to_string(),
            })
        }
        _ => Err("unknown entry tag"),
    }
}

/// Decodes a whole block into its entries, checking that keys increase.
pub(super) fn decode_block(block: &[u8]) -> Result<Vec<(Vec<u8>, Entry)>, &'static str> {
    let mut c = Cursor::new(block);
    let mut out: Vec<(Vec<u8>, Entry)> = Vec::new();
    let mut prev: Vec<u8> = Vec::new();
    while !c.done() {
        let shared = c.varint().ok_or("bad shared length")?;
        let n = c.varint().ok_or("bad suffix length")?;
        if shared > prev.len() as u64 || (out.is_empty() && shared != 0) {
            return Err("shared prefix longer than the previous key");
        }
        if shared.saturating_add(n) > MAX_KEY as u64 {
            return Err("key over the limit");
        }
        let suffix = c.bytes(n as usize).ok_or("key cut short")?;
        let mut key = prev[..shared as usize].to_vec();
        key.extend_from_slice(suffix);
        if !out.is_empty() && key <= prev {
            return Err("keys out of order");
        }
        let entry = get_entry(&mut c)?;
        prev.clone_from(&key);
        out.push((key, entry));
    }
    Ok(out)
}

/// One block as the block index describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct BlockMeta {
    pub(super) first_key: Vec<u8>,
    pub(super) offset: u64,
    pub(super) len: u64,
    pub(super) entries: u64,
    pub(super) hash: [u8; BLOCK_HASH_LEN],
}

pub(super) fn block_hash(block: &[u8]) -> [u8; BLOCK_HASH_LEN] {
    let mut h = [0u8; BLOCK_HASH_LEN];
    h.copy_from_slice(&blake3::hash(block).as_bytes()[..BLOCK_HASH_LEN]);
    h
}

pub(super) fn put_block_meta(out: &mut Vec<u8>, m: &BlockMeta) {
    put_varint(out, m.first_key.len() as u64);
    out.extend_from_slice(&m.first_key);
    put_varint(out, m.offset);
    put_varint(out, m.len);
    put_varint(out, m.entries);
    out.extend_from_slice(&m.hash);
}

pub(super) fn get_block_meta(c: &mut Cursor<'_>) -> Result<BlockMeta, &'static str> {
    let n = c.varint().ok_or("bad key length")?;
    if n > MAX_KEY as u64 {
        return Err("key over the limit");
    }
    let first_key = c.bytes(n as usize).ok_or("key cut short")?.to_vec();
    let offset = c.varint().ok_or("bad block offset")?;
    let len = c.varint().ok_or("bad block length")?;
    let entries = c.varint().ok_or("bad entry count")?;
    let mut hash = [0u8; BLOCK_HASH_LEN];
    hash.copy_from_slice(c.bytes(BLOCK_HASH_LEN).ok_or("hash cut short")?);
    Ok(BlockMeta {
        first_key,
        offset,
        len,
        entries,
        hash,
    })
}
