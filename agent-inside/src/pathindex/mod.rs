//! The path index of a generation (issue 15, docs/path-index.md): sorted,
//! immutable files mapping an object key to what `serve` needs to answer
//! for it (a file's SHA-256, size and mode, or a link's target), so that a
//! generation is a small record naming two of these files instead of a
//! directory tree of every object.
//!
//! # Keys
//!
//! A key is the bytes `source \0 path` of an [`ObjectKey`] ([`key_of`]),
//! the row key of the state database's catalog table: source names hold no
//! NUL, so byte order is `ObjectKey` order, and the objects under a
//! directory `d/` of a source are the contiguous range of keys starting
//! with `source \0 d/` ([`dir_prefix`]).
//!
//! # Base and delta
//!
//! A generation's index is a **base** (every key of some earlier
//! generation, no tombstones) and a **delta** (every key put or removed
//! since that base; a removal is an [`Entry::Tombstone`]). Both use the
//! same file format ([`Kind`] in the header tells which). An import writes
//! a new delta by merging the previous delta with its changes ([`merge`]),
//! costing O(changes since the base); once [`needs_new_base`] says the
//! delta has outgrown its base, it also writes a new base by merging the
//! two (tombstones dropped) and starts an empty delta. Both merges are of
//! two sorted streams: nothing holds a whole index in memory.
//!
//! A lookup ([`View::get`]) is a binary search in the delta, then (when the
//! delta does not name the key) in the base; a directory listing
//! ([`View::scan_prefix`]) is a merged range scan of both.
//!
//! # File format
//!
//! All integers little-endian; `varint` is unsigned LEB128 (7 bits a byte,
//! low first, at most 10 bytes).
//!
//! ```text
//! header   16 bytes   "FERRYPIX" | version u8 = 1 | kind u8 (1 base, 2 delta) | 6 zero bytes
//! blocks              each a run of entries, about BLOCK_TARGET (4 KiB) long
//! index               for each block: first key (varint len + bytes) | offset varint |
//!                     length varint | entries varint | BLAKE3 of the block, first 16 bytes
//! trailer  72 bytes   index offset u64 | index length u64 | entries u64 | blocks u64 |
//!                     BLAKE3 of the index (32 bytes) | "FERRYPIX"
//! ```
//!
//! An entry in a block: `shared varint` (bytes of the previous key in the
//! same block it starts with; 0 for a block's first entry, so every block
//! decodes alone), `suffix length varint`, the suffix, then a tag byte and
//! its value: `0` tombstone (nothing), `1` file, `2` executable file (both:
//! SHA-256, 32 bytes, then size varint), `3` symbolic link (target length
//! varint, then the target, UTF-8). Keys are strictly increasing across the
//! whole file.
//!
//! Opening a file reads the trailer and the index (checked against its
//! BLAKE3) into memory: about 60 bytes a block, 2 MB for a million
//! objects. Each block read is checked against its BLAKE3 prefix, so a
//! damaged block is an error ([`IndexError::Corrupt`]), never a wrong
//! answer.

mod format;
mod read;
mod write;

#[cfg(test)]
mod tests;

pub use read::{IndexFile, ReadAt, Scan};
pub use write::{merge, Summary, Writer};

use ferry_protocol::id::Sha256;
use ferry_protocol::path::ObjectKey;

/// What a key stands for in one index file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A regular file.
    File {
        /// SHA-256 of its bytes: where it is in the object store.
        sha256: Sha256,
        /// Its size in bytes.
        size: u64,
        /// Served executable (0755) rather than 0644.
        executable: bool,
    },
    /// A symbolic link, with its target relative to the link's directory.
    Symlink {
        /// The target.
        target: String,
    },
    /// Removed since the base (only in a delta).
    Tombstone,
}

/// Which of a generation's two files an index file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Every key of a generation; no tombstones.
    Base,
    /// The keys put or removed since a base.
    Delta,
}

/// A malformed or misused index file. Variants, not text, say what broke.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// Reading or writing failed.
    #[error("path index I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The file does not start or end with the magic.
    #[error("not a path index file (no FERRYPIX magic)")]
    BadMagic,
    /// A format version this build does not know.
    #[error("path index format version {0} is not supported")]
    Version(u8),
    /// A kind byte that is neither base nor delta.
    #[error("path index kind {0} is unknown")]
    UnknownKind(u8),
    /// The trailer's offsets do not fit the file.
    #[error("path index trailer does not fit the file ({0})")]
    Trailer(&'static str),
    /// The block index does not match its BLAKE3 or does not decode.
    #[error("path index: the block index is damaged ({0})")]
    BlockIndex(&'static str),
    /// A block does not match its BLAKE3 or does not decode.
    #[error("path index: block {block} is damaged ({what})")]
    Corrupt {
        /// The block's number.
        block: usize,
        /// What was found wrong.
        what: &'static str,
    },
    /// A key pushed to a writer (or yielded by a merged stream) is not
    /// greater than the key before it.
    #[error("path index keys out of order: {key:?} after {prev:?}")]
    OutOfOrder {
        /// The previous key.
        prev: String,
        /// The key out of place.
        key: String,
    },
    /// A key or link target longer than [`MAX_KEY`] bytes.
    #[error("path index: a key or link target of {0} bytes is over the limit")]
    TooLong(usize),
    /// A tombstone written into a base.
    #[error("path index: a base holds no tombstones ({0:?})")]
    TombstoneInBase(String),
    /// A view's base is not a base, or its delta not a delta.
    #[error("path index: expected a {expected:?} file, found a {found:?}")]
    WrongKind {
        /// The kind wanted.
        expected: Kind,
        /// The kind found.
        found: Kind,
    },
}

/// The longest key or link target an index holds (bytes).
pub const MAX_KEY: usize = 64 * 1024;

/// A block is closed once it is at least this long.
pub const BLOCK_TARGET: usize = 4096;

/// The key of `key`: `source \0 path`.
pub fn key_of(key: &ObjectKey) -> Vec<u8> {
    crate::db::key_bytes(key)
}

/// The prefix of every key under the directory `dir` of `source` (`dir` is
/// `""` for the source root, else a path without a trailing `/`).
pub fn dir_prefix(source: &str, dir: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(source.len() + dir.len() + 2);
    v.extend_from_slice(source.as_bytes());
    v.push(0);
    if !dir.is_empty() {
        v.extend_from_slice(dir.as_bytes());
        v.push(b'/');
    }
    v
}

/// Whether an import should write a new base instead of a longer delta:
/// when the delta is over 1/16 of the base, or over 64 MiB. Each entry is
/// then copied into a new base about once per 16 changes it survives, so a
/// change costs O(1) amortized.
pub fn needs_new_base(base_bytes: u64, delta_bytes: u64) -> bool {
    delta_bytes > base_bytes / 16 || delta_bytes > 64 << 20
}

/// A generation's index: its base and its delta, read together.
pub struct View<R> {
    base: IndexFile<R>,
    delta: IndexFile<R>,
}

impl<R: ReadAt> View<R> {
    /// The view of `base` overlaid by `delta`.
    pub fn new(base: IndexFile<R>, delta: IndexFile<R>) -> Result<Self, IndexError> {
        for (f, expected) in [(&base, Kind::Base), (&delta, Kind::Delta)] {
            if f.kind() != expected {
                return Err(IndexError::WrongKind {
                    expected,
                    found: f.kind(),
                });
            }
        }
        Ok(View { base, delta })
    }

    /// The base.
    pub fn base(&self) -> &IndexFile<R> {
        &self.base
    }

    /// The delta.
    pub fn delta(&self) -> &IndexFile<R> {
        &self.delta
    }

    /// What `key` is in this generation (never a tombstone).
    pub fn get(&self, key: &[u8]) -> Result<Option<Entry>, IndexError> {
        match self.delta.get(key)? {
            Some(Entry::Tombstone) => Ok(None),
            Some(e) => Ok(Some(e)),
            None => self.base.get(key),
        }
    }

    /// Every live key starting with `prefix`, in order, from the first key
    /// at or after `from` (a listing's page marker; pass `prefix` to start
    /// at the beginning).
    pub fn scan_prefix<'a>(
        &'a self,
        prefix: &[u8],
        from: &[u8],
    ) -> impl Iterator<Item = Result<(Vec<u8>, Entry), IndexError>> + 'a {
        let start = if from > prefix { from } else { prefix };
        let prefix = prefix.to_vec();
        let merged = write::Merged::new(
            self.base.scan_from(start),
            self.delta.scan_from(start),
            true,
        );
        merged.take_while(move |r| match r {
            Ok((k, _)) => k.starts_with(&prefix),
            Err(_) => true,
        })
    }

    /// Every live entry, in order: what a new base is written from.
    pub fn iter(&self) -> impl Iterator<Item = Result<(Vec<u8>, Entry), IndexError>> + '_ {
        write::Merged::new(self.base.scan_from(b""), self.delta.scan_from(b""), true)
    }
}
