//! Format version 3 of the manifest body (docs/bundle-format.md §5.10): the
//! same [`Manifest`], laid out for a bundle of many objects. The small fields
//! stay postcard ([`Head`]); the change list and the chunk table become
//! columns (kinds, front-coded keys, sizes, digests, chunk references, chunk
//! ids, lengths, places), each a run of like values, compressed together as
//! one zstd frame. A chunk this bundle carries is referred to by its index in
//! the chunk table (usually the next one: one byte before compression), an
//! object's size by its difference from the sum of its chunks (0), a chunk's
//! offset by its difference from the end of the chunk before it (0).
//!
//! Every object that is not a plain chunked file (a symbolic link, a
//! `Rebuilt` object, any later encoding) is kept whole in postcard in the
//! `others` column, so new variants need nothing here.
//!
//! Version 4 (§5.10.1) adds a 14th column, `chunk names`: one byte an
//! entry, `1` for an entry listed without its id because it is the whole
//! of an object the bundle puts (the reader computes the id from the bytes,
//! which that object's SHA-256 binds), `0` for one whose id is in the
//! `chunk ids` column. A decoded version-4 body keeps its changes and chunk
//! table aside until those ids are known ([`super::Decoded`]).

use super::writer::{ManifestWriter, MemorySpill};
use super::{Decoded, Extension, Manifest, Pending, Totals, VolumeEntry};
use crate::catalog::{Change, ChunkRef, Encoding, FileObject, Object, SourceKind};
use crate::chunking::ChunkParams;
use crate::codec::Codec;
use crate::id::{ChunkId, ManifestHash, Sha256, StreamId};
use crate::manifest::ChunkEntry;
use crate::path::ObjectKey;
use crate::Error;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io::Read;

/// zstd level of the columns: the digests and ids (most of the bytes) do
/// not compress; the rest compresses as well at this level as at 19.
pub(super) const LEVEL: i32 = 9;
/// The columns may be at most this many times longer than their frame
/// (and at most [`MAX_COLUMNS`]): a bound on what a hostile frame makes a
/// reader allocate. Real columns expand about 2 to 3 times.
const MAX_RATIO: u64 = 64;
/// Largest decompressed columns.
const MAX_COLUMNS: u64 = 4 << 30;
/// The volume header, where the first chunk of a volume usually starts.
pub(super) const VOLUME_START: u64 = crate::volume::HEADER_LEN as u64;

/// Change kinds, the `kinds` column.
pub(super) const REMOVE: u8 = 0;
pub(super) const FILE: u8 = 1;
pub(super) const FILE_EXECUTABLE: u8 = 2;
pub(super) const OTHER: u8 = 3;

/// The fields outside the columns, in wire order (postcard).
#[derive(Serialize)]
pub(super) struct HeadRef<'a> {
    stream: &'a StreamId,
    sequence: u64,
    previous: &'a Option<ManifestHash>,
    created: u64,
    expires: u64,
    chunking: &'a ChunkParams,
    sources: &'a BTreeMap<String, SourceKind>,
    volumes: &'a [VolumeEntry],
    totals: &'a Totals,
    producer: &'a str,
    extensions: &'a [Extension],
    columns_len: u64,
}

impl<'a> HeadRef<'a> {
    /// The head of `m`, before columns of `columns_len` bytes.
    pub(super) fn of(m: &'a Manifest, columns_len: u64) -> Self {
        HeadRef {
            stream: &m.stream,
            sequence: m.sequence,
            previous: &m.previous,
            created: m.created,
            expires: m.expires,
            chunking: &m.chunking,
            sources: &m.sources,
            volumes: &m.volumes,
            totals: &m.totals,
            producer: &m.producer,
            extensions: &m.extensions,
            columns_len,
        }
    }
}

/// [`HeadRef`], decoded.
#[derive(Deserialize)]
struct Head {
    stream: StreamId,
    sequence: u64,
    previous: Option<ManifestHash>,
    created: u64,
    expires: u64,
    chunking: ChunkParams,
    sources: BTreeMap<String, SourceKind>,
    volumes: Vec<VolumeEntry>,
    totals: Totals,
    producer: String,
    extensions: Vec<Extension>,
    columns_len: u64,
}

/// An entry of the chunk table listed without its id, and the change that
/// puts the object it is the whole of.
#[derive(Clone, Copy, Debug)]
pub(super) struct Unnamed {
    pub(super) index: u32,
    pub(super) change: u32,
    /// The SHA-256 of that object (its chunk's bytes are checked against it).
    pub(super) sha256: Sha256,
}

/// A chunk ref (its change, its position there) that names the id-less
/// entry `entry` by index.
#[derive(Clone, Copy, Debug)]
pub(super) struct RefAt {
    change: u32,
    pos: u32,
    pub(super) entry: u32,
}

/// The key and SHA-256 of the object `u` is the whole of.
pub(super) fn whole_of<'c>(changes: &'c [Change], u: &Unnamed) -> (&'c ObjectKey, Sha256) {
    match &changes[u.change as usize] {
        Change::Put {
            key,
            object: Object::File(f),
        } => (key, f.sha256),
        _ => unreachable!("an id-less entry's change is a chunked file"),
    }
}

/// Sets the id of the chunk ref at `r`.
pub(super) fn set_ref(changes: &mut [Change], r: &RefAt, id: ChunkId) {
    match &mut changes[r.change as usize] {
        Change::Put {
            object:
                Object::File(FileObject {
                    encoding: Encoding::Chunks(refs),
                    ..
                }),
            ..
        } => refs[r.pos as usize].id = id,
        _ => unreachable!("a ref by index is in a chunked file"),
    }
}

pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(super) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// The text a key is front-coded as: the source's length (varint), the
/// source, the path. Keys sorted as [`ObjectKey`] share long prefixes.
fn key_text(key: &ObjectKey, out: &mut Vec<u8>) {
    out.clear();
    put_varint(out, key.source.len() as u64);
    out.extend_from_slice(key.source.as_bytes());
    out.extend_from_slice(key.path.as_bytes());
}

/// Front-codes `key` after the key whose text is `prev` (then `prev` is
/// this key's text; `text` is scratch): the length shared and the length
/// of the rest into `lens`, the rest into `bytes`.
pub(super) fn front_code(
    key: &ObjectKey,
    (prev, text): (&mut Vec<u8>, &mut Vec<u8>),
    lens: &mut Vec<u8>,
    bytes: &mut Vec<u8>,
) {
    key_text(key, text);
    let shared = prev
        .iter()
        .zip(text.iter())
        .take_while(|(a, b)| a == b)
        .count();
    put_varint(lens, shared as u64);
    put_varint(lens, (text.len() - shared) as u64);
    bytes.extend_from_slice(&text[shared..]);
    std::mem::swap(prev, text);
}

/// Encodes the body of a version-3 or version-4 manifest: the streaming
/// writer over columns in memory, so the manifest written from a change
/// list in memory and the one written as the changes go by are the same
/// bytes by construction.
pub(super) fn encode(m: &Manifest, version: u32) -> Vec<u8> {
    let in_memory = "a manifest's columns in memory cannot fail";
    let mut w = ManifestWriter::new(MemorySpill).expect(in_memory);
    for change in &m.changes {
        w.push(change).expect(in_memory);
    }
    w.body_after(Vec::new(), m, Some(version))
        .expect(in_memory)
        .1
}

/// Appends to `out` the one zstd frame of columns `columns_len` bytes long,
/// which `feed` writes into the encoder. A streaming encoder's frame
/// depends only on the bytes fed, not on how they are cut into writes (its
/// blocks are cut at fixed sizes of what it has buffered), so the writer
/// that streams its columns from a spill (`super::writer`) and [`encode`]
/// write the same bytes. (zstd's one-shot compression cuts blocks by
/// looking ahead in the whole input, which a stream cannot do.)
pub(super) fn compress_columns(
    out: Vec<u8>,
    columns_len: u64,
    feed: impl FnOnce(&mut zstd::stream::write::Encoder<'static, Vec<u8>>) -> std::io::Result<()>,
) -> std::io::Result<Vec<u8>> {
    let mut z = zstd::stream::write::Encoder::new(out, LEVEL)?;
    z.set_pledged_src_size(Some(columns_len))?;
    feed(&mut z)?;
    z.finish()
}

/// A codec's number in the chunk table's column: its postcard variant index
/// (§5.6), so version 3 numbers codecs as versions 1 and 2 do.
fn codec_index(codec: Codec) -> u64 {
    match codec {
        Codec::Raw => 0,
        Codec::Zstd => 1,
    }
}

/// The codec numbered `i` by [`codec_index`].
fn codec_of(i: u64) -> Option<Codec> {
    [Codec::Raw, Codec::Zstd]
        .into_iter()
        .find(|&c| codec_index(c) == i)
}

/// Which entries of `chunks` are the whole of an object `changes` put: a
/// chunked file whose only chunk ref names the entry by index (as
/// the writer resolves it). Version 4 lists those without ids.
fn whole_marks(changes: &[Change], chunks: &[ChunkEntry]) -> Vec<bool> {
    let mut marks = vec![false; chunks.len()];
    let mut table = Table {
        chunks,
        index: None,
    };
    let mut next_chunk = 0u64;
    for change in changes {
        let Change::Put {
            object:
                Object::File(FileObject {
                    encoding: Encoding::Chunks(refs),
                    ..
                }),
            ..
        } = change
        else {
            continue;
        };
        for r in refs {
            if let Some(i) = table.find(r, next_chunk) {
                next_chunk = i + 1;
                if refs.len() == 1 {
                    marks[i as usize] = true;
                }
            }
        }
    }
    marks
}

/// Whether version 4 would save something for `m`: a carried chunk is the
/// whole of an object it puts.
pub(super) fn has_whole(m: &Manifest) -> bool {
    !m.chunks.is_empty() && whole_marks(&m.changes, &m.chunks).contains(&true)
}

/// The chunk table's columns, appended to one entry at a time.
pub(super) struct ChunkColumns<'a> {
    pub(super) ids: &'a mut Vec<u8>,
    pub(super) names: &'a mut Vec<u8>,
    pub(super) lens: &'a mut Vec<u8>,
    pub(super) stored: &'a mut Vec<u8>,
    pub(super) places: &'a mut Vec<u8>,
}

/// One entry of the chunk table: `whole` is `None` in version 3, else
/// whether the entry goes without its id (version 4); `end` is where the
/// entry before ended (volume, offset), updated.
pub(super) fn encode_chunk(
    e: &ChunkEntry,
    whole: Option<bool>,
    end: &mut Option<(u32, u64)>,
    c: &mut ChunkColumns<'_>,
) {
    match whole {
        None => c.ids.extend_from_slice(&e.id.0),
        Some(true) => c.names.push(1),
        Some(false) => {
            c.names.push(0);
            c.ids.extend_from_slice(&e.id.0);
        }
    }
    put_varint(c.lens, e.raw_len as u64);
    put_varint(c.stored, codec_index(e.codec));
    if e.codec != Codec::Raw {
        put_varint(c.stored, e.stored_len as u64);
    }
    let (prev_volume, expected) = match *end {
        Some((v, at)) if v == e.volume => (v, at),
        Some((v, _)) => (v, VOLUME_START),
        None => (0, VOLUME_START),
    };
    put_varint(c.places, zigzag(e.volume as i64 - prev_volume as i64));
    put_varint(c.places, zigzag(e.offset.wrapping_sub(expected) as i64));
    *end = Some((e.volume, e.offset.wrapping_add(e.stored_len as u64)));
}

/// Where a chunk ref is in the chunk table: the next entry (the usual
/// case, looked at first), else the first entry with its id, looked up in
/// an index made only when first needed.
pub(super) struct Table<'a> {
    pub(super) chunks: &'a [ChunkEntry],
    pub(super) index: Option<HashMap<ChunkId, (u64, u32)>>,
}

impl Table<'_> {
    pub(super) fn find(&mut self, r: &ChunkRef, next: u64) -> Option<u64> {
        let at = self.chunks.get(next as usize);
        if at.is_some_and(|c| c.id == r.id && c.raw_len == r.len) {
            return Some(next);
        }
        let chunks = self.chunks;
        let index = self.index.get_or_insert_with(|| {
            let mut index = HashMap::with_capacity(chunks.len());
            for (i, e) in chunks.iter().enumerate() {
                index.entry(e.id).or_insert((i as u64, e.raw_len));
            }
            index
        });
        match index.get(&r.id) {
            Some(&(i, len)) if len == r.len => Some(i),
            _ => None,
        }
    }
}

/// One chunk ref: by its index in the chunk table (relative to the next
/// entry, `next_chunk`, which it moves on), else explicit (id and length).
/// Returns the index found.
pub(super) fn encode_ref(
    r: &ChunkRef,
    table: &mut Table<'_>,
    next_chunk: &mut u64,
    refs: &mut Vec<u8>,
    explicit: &mut Vec<u8>,
) -> Option<u64> {
    let found = table.find(r, *next_chunk);
    match found {
        Some(i) => {
            put_varint(refs, zigzag(i as i64 - *next_chunk as i64) + 1);
            *next_chunk = i + 1;
        }
        None => {
            put_varint(refs, 0);
            explicit.extend_from_slice(&r.id.0);
            put_varint(explicit, r.len as u64);
        }
    }
    found
}

mod read;
#[cfg(test)]
use read::*;
pub(super) use read::{decode, decode_keeping};
pub use read::{ColumnChanges, Columns};

#[cfg(test)]
#[path = "compact_tests.rs"]
pub(super) mod tests;
