//! The compact manifest body (format versions 3 and 4), written as the
//! changes go by, without the change list ever held. It is the one encoder
//! of those versions: [`Manifest::to_unsigned`] runs it over columns in
//! memory (`compact::encode`), the export over files.
//!
//! Each change pushed ([`ManifestWriter::push`], in the manifest's order:
//! puts in key order, then removals) is appended to its columns in a
//! [`Spill`] the caller gives (files, for the outside; memory, for tests).
//! A chunk ref is kept as it is (id and length) until [`ManifestWriter::finish`]
//! knows the chunk table; there the refs are resolved to table indices
//! (the next entry, else the first with that id), which also marks the entries that are
//! the whole of an object (version 4 lists them without ids), the chunk
//! table's columns are written, and the columns are streamed in wire order
//! through one zstd encoder into the file. What is held grows with the
//! chunk table (one byte an entry, and what the caller holds of it), not
//! with the change list.

use super::compact::{
    compress_columns, encode_chunk, encode_ref, front_code, put_varint, zigzag, ChunkColumns,
    HeadRef, Table, FILE, FILE_EXECUTABLE, OTHER, REMOVE,
};
use super::{Manifest, COMPACT_FROM, HEADER_LEN, MAGIC, UNSIGNED_MAGIC};
use crate::catalog::{Change, ChunkRef, Encoding, FileObject, Object};
use crate::id::ChunkId;
use crate::keys::SecretKey;
use crate::path::ObjectKey;
use std::io::{self, BufReader, Read, Write};

/// Where a [`ManifestWriter`] keeps its columns while the changes go by.
pub trait Spill {
    /// Appends to one column.
    type Writer: Write;
    /// Reads a column back.
    type Reader: Read;
    /// A new, empty column.
    fn create(&mut self) -> io::Result<Self::Writer>;
    /// The bytes written to `w`, from the start.
    fn read_back(&mut self, w: Self::Writer) -> io::Result<Self::Reader>;
}

/// Columns in memory (tests, and small manifests).
#[derive(Debug, Default)]
pub struct MemorySpill;

impl Spill for MemorySpill {
    type Writer = Vec<u8>;
    type Reader = io::Cursor<Vec<u8>>;

    fn create(&mut self) -> io::Result<Vec<u8>> {
        Ok(Vec::new())
    }

    fn read_back(&mut self, w: Vec<u8>) -> io::Result<io::Cursor<Vec<u8>>> {
        Ok(io::Cursor::new(w))
    }
}

/// Why a streamed manifest could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Writing or reading back a column failed.
    #[error("cannot keep the manifest's columns: {0}")]
    Spill(#[from] io::Error),
    /// Fewer than [`COMPACT_FROM`] changes and chunks, and no object that
    /// needs version 3: [`Manifest::to_unsigned`] writes such a manifest
    /// in an older version, from the change list in memory.
    #[error("{0} changes and chunks: written in memory, not streamed (fewer than {COMPACT_FROM})")]
    TooFew(u64),
    /// The head given to [`ManifestWriter::finish`] has changes of its own.
    #[error("the manifest head given to the writer has {0} changes of its own")]
    HeadWithChanges(usize),
}

/// The change columns, in wire order, then the refs as pushed.
const KINDS: usize = 0;
const KEY_LENS: usize = 1;
const KEY_BYTES: usize = 2;
const SIZES: usize = 3;
const DIGESTS: usize = 4;
const REF_COUNTS: usize = 5;
const OTHERS: usize = 6;
/// Per chunked file: the ref count, then each ref's id and length.
const RAW_REFS: usize = 7;
const PUSHED: usize = 8;

/// One column being written and its length so far.
struct Column<W> {
    w: W,
    len: u64,
}

impl<W: Write> Column<W> {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.len += bytes.len() as u64;
        self.w.write_all(bytes)
    }
}

/// Writes the manifest of changes pushed one at a time; see the module
/// documentation.
pub struct ManifestWriter<S: Spill> {
    spill: S,
    cols: Vec<Column<S::Writer>>,
    /// The key before's text, and scratch space.
    prev: Vec<u8>,
    text: Vec<u8>,
    a: Vec<u8>,
    b: Vec<u8>,
    changes: u64,
    /// Chunked files pushed (each has its refs in `RAW_REFS`).
    files: u64,
    /// [`Manifest::oldest_version`] of the changes pushed.
    oldest: u32,
}

/// A streamed manifest: the unsigned file ([`Manifest::to_unsigned`]'s bytes).
#[derive(Debug)]
pub struct Written {
    /// Its format version.
    pub version: u32,
    /// The unsigned manifest file.
    pub file: Vec<u8>,
}

impl Written {
    /// Signs: the bytes [`Manifest::sign`] writes for the same manifest,
    /// made from the unsigned file in place.
    pub fn sign(self, key: &SecretKey) -> Vec<u8> {
        let mut file = self.file;
        file[..8].copy_from_slice(MAGIC);
        let sig = key.sign(&super::signed_message(&file));
        file.reserve_exact(super::TRAILER_LEN);
        file.extend_from_slice(&key.public().0);
        file.extend_from_slice(&sig);
        file
    }
}

impl<S: Spill> ManifestWriter<S> {
    /// A writer keeping its columns in `spill`.
    pub fn new(mut spill: S) -> Result<Self, WriteError> {
        let cols = (0..PUSHED)
            .map(|_| {
                Ok(Column {
                    w: spill.create()?,
                    len: 0,
                })
            })
            .collect::<io::Result<_>>()?;
        Ok(ManifestWriter {
            spill,
            cols,
            prev: Vec::new(),
            text: Vec::new(),
            a: Vec::new(),
            b: Vec::new(),
            changes: 0,
            files: 0,
            oldest: 1,
        })
    }

    /// Whether a manifest of `changes` changes and `chunks` chunks is
    /// written in the compact form whatever its objects (so this writer can
    /// write it).
    pub fn streams(changes: usize, chunks: usize) -> bool {
        changes + chunks >= COMPACT_FROM
    }

    /// Appends the next change of the manifest's list.
    pub fn push(&mut self, change: &Change) -> Result<(), WriteError> {
        match change {
            Change::Put { key, object } => self.push_put(key, object),
            Change::Remove { key } => self.push_remove(key),
        }
    }

    /// Appends the removal of `key` (the removals come after the puts).
    pub fn push_remove(&mut self, key: &ObjectKey) -> Result<(), WriteError> {
        self.push_key(key)?;
        Ok(self.cols[KINDS].put(&[REMOVE])?)
    }

    /// The key of the next change, front-coded after the one before.
    fn push_key(&mut self, key: &ObjectKey) -> Result<(), WriteError> {
        self.a.clear();
        self.b.clear();
        front_code(
            key,
            (&mut self.prev, &mut self.text),
            &mut self.a,
            &mut self.b,
        );
        self.cols[KEY_LENS].put(&self.a)?;
        self.cols[KEY_BYTES].put(&self.b)?;
        self.changes += 1;
        Ok(())
    }

    /// Appends the put of `object` at `key` (the puts come in key order).
    pub fn push_put(&mut self, key: &ObjectKey, object: &Object) -> Result<(), WriteError> {
        self.push_key(key)?;
        if let Object::File(f) = object {
            self.oldest = self.oldest.max(f.format_version());
        }
        let (f, refs) = match object {
            Object::File(
                f @ FileObject {
                    encoding: Encoding::Chunks(refs),
                    ..
                },
            ) => (f, refs),
            other => {
                self.cols[KINDS].put(&[OTHER])?;
                let bytes = postcard::to_stdvec(other).expect("an object serializes");
                return Ok(self.cols[OTHERS].put(&bytes)?);
            }
        };
        self.files += 1;
        self.cols[KINDS].put(&[if f.executable { FILE_EXECUTABLE } else { FILE }])?;
        self.cols[DIGESTS].put(&f.sha256.0)?;
        self.a.clear();
        put_varint(&mut self.a, refs.len() as u64);
        self.cols[REF_COUNTS].put(&self.a)?;
        self.cols[RAW_REFS].put(&self.a)?;
        let mut sum = 0u64;
        for r in refs {
            sum = sum.wrapping_add(r.len as u64);
            self.a.clear();
            self.a.extend_from_slice(&r.id.0);
            put_varint(&mut self.a, r.len as u64);
            self.cols[RAW_REFS].put(&self.a)?;
        }
        self.a.clear();
        put_varint(&mut self.a, zigzag(f.size.wrapping_sub(sum) as i64));
        Ok(self.cols[SIZES].put(&self.a)?)
    }

    /// The unsigned manifest file of `head` (every field but the changes,
    /// which must be empty: they are the ones pushed).
    pub fn finish(self, head: &Manifest) -> Result<Written, WriteError> {
        if !head.changes.is_empty() {
            return Err(WriteError::HeadWithChanges(head.changes.len()));
        }
        let mut out = Vec::new();
        out.extend_from_slice(UNSIGNED_MAGIC);
        // The version and the body's length, known once it is written.
        out.extend_from_slice(&[0; 8]);
        let (version, mut file) = self.body_after(out, head, None)?;
        let body_len = u32::try_from(file.len() - HEADER_LEN)
            .map_err(|_| io::Error::other("the manifest body is over 4 GiB"))?;
        file[8..12].copy_from_slice(&version.to_le_bytes());
        file[12..16].copy_from_slice(&body_len.to_le_bytes());
        Ok(Written { version, file })
    }

    /// Appends to `out` the compact body of the changes pushed and of
    /// `head`'s other fields (its own changes are not read): in format
    /// `version` when one is given (3 or 4: `Manifest::body`, which tests
    /// also use to write a small manifest in version 3), else in the one
    /// [`Manifest::version`] picks for the same manifest. Returns the
    /// version and the bytes.
    pub(super) fn body_after(
        mut self,
        out: Vec<u8>,
        head: &Manifest,
        version: Option<u32>,
    ) -> Result<(u32, Vec<u8>), WriteError> {
        let count = self.changes + head.chunks.len() as u64;
        let mut cols: Vec<Column<S::Writer>> = std::mem::take(&mut self.cols);
        let raw = cols.pop().expect("the raw refs column");
        let (refs, explicit, marks) = self.resolve(raw, &head.chunks)?;
        let version = match version {
            Some(v) => v,
            None => {
                let v = if self.oldest < 3 && count >= COMPACT_FROM as u64 {
                    3
                } else {
                    self.oldest
                };
                if v < 3 {
                    return Err(WriteError::TooFew(count));
                }
                if v == 3 && marks.contains(&true) {
                    4
                } else {
                    v
                }
            }
        };
        let chunk_cols = self.chunk_columns(&head.chunks, (version >= 4).then_some(&marks))?;
        // Wire order: kinds, key lengths, key bytes, sizes, digests,
        // reference counts, references, explicit references, others, then
        // the chunk table (ids, lengths, storage, places, and in version 4
        // names).
        let others = cols.pop().expect("the others column");
        let mut order = cols;
        order.push(refs);
        order.push(explicit);
        order.push(others);
        let [ids, lens, stored, places, names] = chunk_cols;
        order.extend([ids, lens, stored, places]);
        if version >= 4 {
            order.push(names);
        }
        let columns_len: u64 = order.iter().map(|c| varint_len(c.len) + c.len).sum();
        let mut out = out;
        let head_bytes = postcard::to_stdvec(&HeadRef::of(head, columns_len))
            .expect("a manifest head always serializes");
        out.extend_from_slice(&head_bytes);
        let body = compress_columns(out, columns_len, |z| {
            let mut len = Vec::new();
            for col in order {
                len.clear();
                put_varint(&mut len, col.len);
                z.write_all(&len)?;
                let reader = self.spill.read_back(col.w)?;
                let copied = io::copy(&mut reader.take(col.len), z)?;
                if copied != col.len {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("a spilled column read back {copied} bytes of {}", col.len),
                    ));
                }
            }
            Ok(())
        })?;
        Ok((version, body))
    }

    /// The `references` and `explicit references` columns of the refs
    /// pushed, resolved against the chunk table `chunks` (each
    /// the index of the next entry, else of the first with that id), and
    /// which entries are the whole of an object (the ones
    /// `compact::whole_marks` finds to pick the version).
    #[allow(clippy::type_complexity)]
    fn resolve(
        &mut self,
        raw: Column<S::Writer>,
        chunks: &[crate::manifest::ChunkEntry],
    ) -> Result<(Column<S::Writer>, Column<S::Writer>, Vec<bool>), WriteError> {
        let mut refs = Column {
            w: self.spill.create()?,
            len: 0,
        };
        let mut explicit = Column {
            w: self.spill.create()?,
            len: 0,
        };
        let mut marks = vec![false; chunks.len()];
        let mut table = Table {
            chunks,
            index: None,
        };
        let mut next_chunk = 0u64;
        let mut input =
            BufReader::with_capacity(1 << 16, self.spill.read_back(raw.w)?.take(raw.len));
        for _ in 0..self.files {
            let n = read_varint(&mut input)?;
            for _ in 0..n {
                let mut id = [0u8; 32];
                input.read_exact(&mut id)?;
                let len = u32::try_from(read_varint(&mut input)?)
                    .map_err(|_| io::Error::other("a spilled chunk length is over 32 bits"))?;
                let r = ChunkRef {
                    id: ChunkId(id),
                    len,
                };
                self.a.clear();
                self.b.clear();
                let found = encode_ref(&r, &mut table, &mut next_chunk, &mut self.a, &mut self.b);
                if let (1, Some(i)) = (n, found) {
                    marks[i as usize] = true;
                }
                refs.put(&self.a)?;
                explicit.put(&self.b)?;
            }
        }
        Ok((refs, explicit, marks))
    }

    /// The chunk table's columns (ids, lengths, storage, places, names),
    /// `wholes` the entries without ids in version 4.
    fn chunk_columns(
        &mut self,
        chunks: &[crate::manifest::ChunkEntry],
        wholes: Option<&Vec<bool>>,
    ) -> Result<[Column<S::Writer>; 5], WriteError> {
        let mut out: Vec<Column<S::Writer>> = (0..5)
            .map(|_| {
                Ok(Column {
                    w: self.spill.create()?,
                    len: 0,
                })
            })
            .collect::<io::Result<_>>()?;
        let mut scratch: [Vec<u8>; 5] = Default::default();
        let mut end = None;
        for (i, e) in chunks.iter().enumerate() {
            scratch.iter_mut().for_each(Vec::clear);
            let [ids, lens, stored, places, names] = &mut scratch;
            let mut c = ChunkColumns {
                ids,
                names,
                lens,
                stored,
                places,
            };
            encode_chunk(e, wholes.map(|w| w[i]), &mut end, &mut c);
            for (col, bytes) in out.iter_mut().zip(&scratch) {
                col.put(bytes)?;
            }
        }
        Ok(out.try_into().ok().expect("five columns"))
    }
}

/// Bytes of `v` as a varint.
fn varint_len(v: u64) -> u64 {
    let mut n = 1;
    let mut v = v >> 7;
    while v > 0 {
        n += 1;
        v >>= 7;
    }
    n
}

/// A varint written by `put_varint`, read back from a spilled column.
fn read_varint(r: &mut impl Read) -> io::Result<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let mut b = [0u8; 1];
        r.read_exact(&mut b)?;
        v |= ((b[0] & 0x7f) as u64) << shift;
        if b[0] & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(io::Error::other("a spilled varint is longer than 64 bits"))
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
