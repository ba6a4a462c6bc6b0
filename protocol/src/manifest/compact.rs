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

/// Reads one column.
#[derive(Clone)]
struct Cursor<'a> {
    name: &'static str,
    bytes: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn bad(&self, why: &str) -> Error {
        Error::ManifestDecode(format!("version 3 column {}: {why}", self.name))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if self.bytes.len() < n {
            return Err(self.bad("ends early"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn varint(&mut self) -> Result<u64, Error> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.take(1)?[0];
            if i == 9 && b > 1 {
                return Err(self.bad("a varint overflows"));
            }
            v |= ((b & 0x7f) as u64) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.bad("a varint overflows"))
    }

    fn u32(&mut self) -> Result<u32, Error> {
        let v = self.varint()?;
        u32::try_from(v).map_err(|_| self.bad("a length overflows 32 bits"))
    }

    fn hash(&mut self) -> Result<[u8; 32], Error> {
        Ok(self.take(32)?.try_into().expect("32 bytes"))
    }

    fn done(&self) -> Result<(), Error> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(self.bad("has bytes left over"))
        }
    }
}

/// The change columns of a version-3 or version-4 body, decompressed and
/// kept: the change list read a change at a time ([`Columns::iter`]),
/// never held decoded (about 84 bytes an object against 180). Every change
/// was decoded once when the manifest was opened, so reading them again
/// cannot fail.
#[derive(Clone, Debug)]
pub struct Columns {
    bytes: Vec<u8>,
    /// Where each change column lies in `bytes` (start, length), in the
    /// order of [`ChangeColumns`].
    spans: [(usize, usize); 9],
    /// How many changes.
    count: usize,
    /// The newest format version an object of them needs.
    oldest: u32,
}

impl Columns {
    /// How many changes.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The newest format version one of its objects needs (1 if none).
    pub(super) fn oldest_version(&self) -> u32 {
        self.oldest
    }

    fn columns(&self) -> ChangeColumns<'_> {
        // The first nine columns of the body (`NAMES`) are the change list's.
        let mut c = NAMES[..9]
            .iter()
            .zip(self.spans)
            .map(|(name, (at, len))| Cursor {
                name,
                bytes: &self.bytes[at..at + len],
            });
        let mut next = || c.next().expect("9 columns");
        ChangeColumns {
            kinds: next(),
            key_lens: next(),
            key_bytes: next(),
            sizes: next(),
            digests: next(),
            ref_counts: next(),
            refs: next(),
            explicit: next(),
            others: next(),
        }
    }

    /// The changes in order, each decoded as it is reached, its chunk
    /// refs by index read from `chunks` (the manifest's named table).
    pub fn iter<'a>(&'a self, chunks: &'a [ChunkEntry]) -> ColumnChanges<'a> {
        ColumnChanges {
            reader: ChangeReader::new(self.columns(), chunks, &[]),
            at: Vec::new(),
        }
    }

    /// Every change, decoded into a list.
    pub fn decode_all(&self, chunks: &[ChunkEntry]) -> Vec<Change> {
        self.iter(chunks).collect()
    }

    /// The columns a version-3 body keeps of `changes` (in any order; their
    /// chunk refs explicit, no chunk table): for tests of their readers.
    pub fn of_changes(changes: Vec<Change>) -> Columns {
        let m = Manifest {
            stream: StreamId([0; 16]),
            sequence: 1,
            previous: None,
            created: 0,
            expires: 0,
            chunking: ChunkParams::DEFAULT,
            sources: BTreeMap::new(),
            changes,
            chunks: Vec::new(),
            volumes: Vec::new(),
            totals: Totals::default(),
            producer: String::new(),
            extensions: Vec::new(),
        };
        let mut d = decode_keeping(&encode(&m, 3), 3).expect("columns just written");
        d.take_columns()
            .expect("no id-less chunk")
            .expect("kept as columns")
    }
}

/// The changes of [`Columns`], in order, decoded one at a time.
#[derive(Clone)]
pub struct ColumnChanges<'a> {
    reader: ChangeReader<'a>,
    at: Vec<RefAt>,
}

impl Iterator for ColumnChanges<'_> {
    type Item = Change;

    fn next(&mut self) -> Option<Change> {
        self.at.clear();
        self.reader
            .read(&mut self.at)
            .expect("the change columns decoded when the manifest was opened")
    }
}

/// The head and the decompressed columns of a version-3 or version-4 body,
/// each column a cursor into `columns`.
struct Body {
    head: Head,
    columns: Vec<u8>,
    /// Each column's start and length in `columns`.
    spans: Vec<(usize, usize)>,
}

/// Decompresses a version-3 or version-4 body's columns and finds them.
fn open_body(body: &[u8], version: u32) -> Result<Body, Error> {
    let (head, frame) = postcard::take_from_bytes::<Head>(body)
        .map_err(|e| Error::ManifestDecode(format!("version 3 head: {e}")))?;
    let bound = (frame.len() as u64)
        .saturating_mul(MAX_RATIO)
        .saturating_add(1 << 16)
        .min(MAX_COLUMNS);
    if head.columns_len > bound {
        return Err(Error::ManifestDecode(format!(
            "version 3 columns declare {} bytes, more than {bound} for a frame of {}",
            head.columns_len,
            frame.len()
        )));
    }
    let mut columns = Vec::new();
    zstd::stream::read::Decoder::new(frame)
        .and_then(|d| d.take(head.columns_len + 1).read_to_end(&mut columns))
        .map_err(|e| Error::ManifestDecode(format!("version 3 columns: {e}")))?;
    if columns.len() as u64 != head.columns_len {
        return Err(Error::ManifestDecode(format!(
            "version 3 columns are {} bytes, the head declares {}",
            columns.len(),
            head.columns_len
        )));
    }
    let count = if version >= 4 { 14 } else { 13 };
    let mut spans = Vec::with_capacity(count);
    let mut all = Cursor {
        name: "lengths",
        bytes: &columns,
    };
    for _ in 0..count {
        let n = usize::try_from(all.varint()?).map_err(|_| all.bad("too long"))?;
        let at = columns.len() - all.bytes.len();
        all.take(n)?;
        spans.push((at, n));
    }
    all.done()?;
    Ok(Body {
        head,
        columns,
        spans,
    })
}

const NAMES: [&str; 14] = [
    "kinds",
    "key lengths",
    "key bytes",
    "sizes",
    "digests",
    "reference counts",
    "references",
    "explicit references",
    "others",
    "chunk ids",
    "chunk lengths",
    "chunk storage",
    "chunk places",
    "chunk names",
];

impl Body {
    fn cursor(&self, i: usize) -> Option<Cursor<'_>> {
        let &(at, len) = self.spans.get(i)?;
        Some(Cursor {
            name: NAMES[i],
            bytes: &self.columns[at..at + len],
        })
    }

    fn change_columns(&self) -> ChangeColumns<'_> {
        let c = |i| self.cursor(i).expect("13 columns");
        ChangeColumns {
            kinds: c(0),
            key_lens: c(1),
            key_bytes: c(2),
            sizes: c(3),
            digests: c(4),
            ref_counts: c(5),
            refs: c(6),
            explicit: c(7),
            others: c(8),
        }
    }

    fn chunks(&self) -> Result<(Vec<ChunkEntry>, Vec<bool>), Error> {
        let c = |i| self.cursor(i).expect("13 columns");
        decode_chunks(c(9), c(10), c(11), c(12), self.cursor(13))
    }

    /// The manifest of this head, without changes, with `chunks`.
    fn manifest(self, chunks: Vec<ChunkEntry>) -> (Manifest, Vec<u8>, Vec<(usize, usize)>) {
        let Body {
            head,
            columns,
            spans,
        } = self;
        let manifest = Manifest {
            stream: head.stream,
            sequence: head.sequence,
            previous: head.previous,
            created: head.created,
            expires: head.expires,
            chunking: head.chunking,
            sources: head.sources,
            changes: Vec::new(),
            chunks,
            volumes: head.volumes,
            totals: head.totals,
            producer: head.producer,
            extensions: head.extensions,
        };
        (manifest, columns, spans)
    }
}

/// Decodes the body of a version-3 or version-4 manifest.
pub(super) fn decode(body: &[u8], version: u32) -> Result<Decoded, Error> {
    let body = open_body(body, version)?;
    let (chunks, unnamed) = body.chunks()?;
    let (changes, refs_at, wholes) = decode_changes(body.change_columns(), &chunks, &unnamed)?;
    let (mut manifest, _, _) = body.manifest(chunks);
    manifest.changes = changes;
    let wholes: Vec<Option<u32>> = wholes;
    let listed = list_unnamed(&unnamed, &wholes, |change| {
        match &manifest.changes[change as usize] {
            Change::Put {
                object: Object::File(f),
                ..
            } => f.sha256,
            _ => unreachable!("an id-less entry's change is a chunked file"),
        }
    })?;
    pend(manifest, listed, refs_at, None)
}

/// Decodes the body of a version-3 or version-4 manifest keeping its
/// change list as [`Columns`]: each change is decoded once (every error
/// [`decode`] finds, found here) and dropped.
pub(super) fn decode_keeping(body: &[u8], version: u32) -> Result<Decoded, Error> {
    let body = open_body(body, version)?;
    let (chunks, unnamed) = body.chunks()?;
    let mut reader = ChangeReader::new(body.change_columns(), &chunks, &unnamed);
    // For each id-less entry, the first change it is the whole of, and
    // that object's SHA-256.
    let mut seen = vec![false; chunks.len()];
    // At most one for each id-less entry: reserved at once, no doubling.
    let unnamed_count = unnamed.iter().filter(|&&u| u).count();
    let mut wholes: Vec<Unnamed> = Vec::with_capacity(unnamed_count);
    let (mut at, mut count, mut oldest) = (Vec::new(), 0usize, 1u32);
    while let Some(change) = reader.read(&mut at)? {
        if let Change::Put {
            object: Object::File(f),
            ..
        } = &change
        {
            oldest = oldest.max(f.format_version());
            if let (Encoding::Chunks(refs), [r]) = (&f.encoding, at.as_slice()) {
                if refs.len() == 1 && !std::mem::replace(&mut seen[r.entry as usize], true) {
                    wholes.push(Unnamed {
                        index: r.entry,
                        change: count as u32,
                        sha256: f.sha256,
                    });
                }
            }
        }
        at.clear();
        count += 1;
    }
    reader.finish()?;
    drop(reader);
    drop(seen);
    // Each id-less entry once (`seen`), none other (`at` records refs to
    // id-less entries only): in table order they are the list, unless one
    // is the whole of no object.
    wholes.sort_unstable_by_key(|u| u.index);
    let mut listed = wholes.iter().peekable();
    for (i, _) in unnamed.iter().enumerate().filter(|(_, &u)| u) {
        if listed.next_if(|u| u.index as usize == i).is_none() {
            return Err(no_whole(i));
        }
    }
    let listed = wholes;
    drop(unnamed);
    let (manifest, bytes, spans) = body.manifest(chunks);
    let spans: [(usize, usize); 9] = spans[..9].try_into().expect("9 change columns");
    let columns = Columns {
        bytes,
        spans,
        count,
        oldest,
    };
    pend(manifest, listed, Vec::new(), Some(columns))
}

fn no_whole(i: usize) -> Error {
    Error::ManifestDecode(format!(
        "version 4 chunk #{i} has no id and is not the whole of an object the bundle puts, so its id cannot be computed"
    ))
}

/// The id-less entries (`unnamed` marks them) with the first change each
/// is the whole of (`wholes`) and that object's SHA-256 (`sha256_of`).
fn list_unnamed(
    unnamed: &[bool],
    wholes: &[Option<u32>],
    sha256_of: impl Fn(u32) -> Sha256,
) -> Result<Vec<Unnamed>, Error> {
    let mut listed = Vec::new();
    for (i, _) in unnamed.iter().enumerate().filter(|(_, &u)| u) {
        let change = wholes[i].ok_or_else(|| no_whole(i))?;
        listed.push(Unnamed {
            index: i as u32,
            change,
            sha256: sha256_of(change),
        });
    }
    Ok(listed)
}

/// `manifest` as decoded: named, or with its changes (or `columns`) and
/// chunks kept aside until the entries `listed` are named (`refs`: the
/// refs by index to them in a decoded change list).
fn pend(
    mut manifest: Manifest,
    listed: Vec<Unnamed>,
    refs: Vec<RefAt>,
    columns: Option<Columns>,
) -> Result<Decoded, Error> {
    let columns = columns.map(Box::new);
    if listed.is_empty() {
        return Ok(Decoded {
            manifest,
            pending: None,
            columns,
        });
    }
    let pending = Pending {
        changes: std::mem::take(&mut manifest.changes),
        chunks: std::mem::take(&mut manifest.chunks),
        unnamed: listed,
        refs,
        named: 0,
    };
    Ok(Decoded {
        manifest,
        pending: Some(Box::new(pending)),
        columns,
    })
}

/// The chunk table, and which entries have no id (version 4: `names`).
/// An entry without an id holds a zero id, never shown outside this
/// module until the reader names it.
fn decode_chunks(
    mut ids: Cursor<'_>,
    mut lens: Cursor<'_>,
    mut stored: Cursor<'_>,
    mut places: Cursor<'_>,
    names: Option<Cursor<'_>>,
) -> Result<(Vec<ChunkEntry>, Vec<bool>), Error> {
    if !ids.bytes.len().is_multiple_of(32) {
        return Err(ids.bad("is not a whole number of ids"));
    }
    let unnamed: Vec<bool> = match &names {
        None => vec![false; ids.bytes.len() / 32],
        Some(names) => names
            .bytes
            .iter()
            .map(|&b| match b {
                0 => Ok(false),
                1 => Ok(true),
                _ => Err(names.bad("an entry is neither listed (0) nor id-less (1)")),
            })
            .collect::<Result<_, _>>()?,
    };
    let listed = unnamed.iter().filter(|&&u| !u).count();
    if listed != ids.bytes.len() / 32 {
        return Err(ids.bad(&format!(
            "holds {} ids, the chunk names list {listed}",
            ids.bytes.len() / 32
        )));
    }
    let n = unnamed.len();
    let mut out = Vec::with_capacity(n);
    let mut end: Option<(u32, u64)> = None;
    for &without_id in &unnamed {
        let id = if without_id {
            ChunkId([0; 32])
        } else {
            ChunkId(ids.hash()?)
        };
        let raw_len = lens.u32()?;
        let codec = codec_of(stored.varint()?).ok_or_else(|| stored.bad("an unknown codec"))?;
        let stored_len = match codec {
            Codec::Raw => raw_len,
            Codec::Zstd => stored.u32()?,
        };
        let (prev_volume, expected) = match end {
            Some((v, at)) => (v, at),
            None => (0, VOLUME_START),
        };
        let volume = i64::from(prev_volume)
            .checked_add(unzigzag(places.varint()?))
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| places.bad("a volume index overflows"))?;
        let expected = if end.is_some() && volume != prev_volume {
            VOLUME_START
        } else {
            expected
        };
        let offset = expected.wrapping_add(unzigzag(places.varint()?) as u64);
        end = Some((volume, offset.wrapping_add(stored_len as u64)));
        out.push(ChunkEntry {
            id,
            raw_len,
            stored_len,
            codec,
            volume,
            offset,
        });
    }
    for c in [&ids, &lens, &stored, &places] {
        c.done()?;
    }
    Ok((out, unnamed))
}

/// The columns of the change list.
#[derive(Clone)]
struct ChangeColumns<'a> {
    kinds: Cursor<'a>,
    key_lens: Cursor<'a>,
    key_bytes: Cursor<'a>,
    sizes: Cursor<'a>,
    digests: Cursor<'a>,
    ref_counts: Cursor<'a>,
    refs: Cursor<'a>,
    explicit: Cursor<'a>,
    others: Cursor<'a>,
}

impl ChangeColumns<'_> {
    /// The next key, front-coded against `text` (the one before), which
    /// becomes this one.
    fn key(&mut self, text: &mut Vec<u8>) -> Result<ObjectKey, Error> {
        let shared = self.key_lens.varint()?;
        let suffix = self.key_lens.varint()?;
        if shared > text.len() as u64 {
            return Err(self.key_lens.bad("shares more than the key before"));
        }
        text.truncate(shared as usize);
        let suffix = usize::try_from(suffix).map_err(|_| self.key_lens.bad("too long"))?;
        text.extend_from_slice(self.key_bytes.take(suffix)?);
        let mut k = Cursor {
            name: "key bytes",
            bytes: text,
        };
        let source_len = usize::try_from(k.varint()?).map_err(|_| k.bad("too long"))?;
        let source = k.take(source_len)?;
        let utf8 = |b: &[u8]| {
            String::from_utf8(b.to_vec())
                .map_err(|_| Error::ManifestDecode("a key is not UTF-8".into()))
        };
        Ok(ObjectKey {
            source: utf8(source)?,
            path: utf8(k.bytes)?,
        })
    }

    /// The chunk references of a chunked file, the `change`th; a ref by
    /// index to an id-less entry (`unnamed`) is recorded in `at`.
    fn refs(
        &mut self,
        (chunks, unnamed): (&[ChunkEntry], &[bool]),
        next: &mut u64,
        change: u32,
        at: &mut Vec<RefAt>,
    ) -> Result<Vec<ChunkRef>, Error> {
        let n = self.ref_counts.varint()?;
        if n > self.refs.bytes.len() as u64 {
            return Err(self.ref_counts.bad("counts more references than there are"));
        }
        let mut out = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let code = self.refs.varint()?;
            if code == 0 {
                let id = ChunkId(self.explicit.hash()?);
                let len = self.explicit.u32()?;
                out.push(ChunkRef { id, len });
                continue;
            }
            let i = (*next as i64).wrapping_add(unzigzag(code - 1));
            let c = usize::try_from(i)
                .ok()
                .and_then(|i| chunks.get(i))
                .ok_or_else(|| self.refs.bad("names a chunk the table does not have"))?;
            *next = i as u64 + 1;
            if unnamed.get(i as usize).copied().unwrap_or(false) {
                at.push(RefAt {
                    change,
                    pos: out.len() as u32,
                    entry: i as u32,
                });
            }
            out.push(ChunkRef {
                id: c.id,
                len: c.raw_len,
            });
        }
        Ok(out)
    }
}

/// Reads the change columns a change at a time.
#[derive(Clone)]
struct ChangeReader<'a> {
    c: ChangeColumns<'a>,
    kinds: &'a [u8],
    /// The index of the next change.
    at: usize,
    /// The text of the key before.
    text: Vec<u8>,
    /// The table entry after the last one referred to by index.
    next: u64,
    chunks: &'a [ChunkEntry],
    /// Which entries are id-less (empty: none recorded).
    unnamed: &'a [bool],
}

impl<'a> ChangeReader<'a> {
    fn new(mut c: ChangeColumns<'a>, chunks: &'a [ChunkEntry], unnamed: &'a [bool]) -> Self {
        let kinds = c.kinds.bytes;
        c.kinds.bytes = &[];
        ChangeReader {
            c,
            kinds,
            at: 0,
            text: Vec::new(),
            next: 0,
            chunks,
            unnamed,
        }
    }

    /// The next change (`None` after the last); a ref by index to an
    /// id-less entry is recorded in `at`.
    fn read(&mut self, at: &mut Vec<RefAt>) -> Result<Option<Change>, Error> {
        let Some(&kind) = self.kinds.get(self.at) else {
            return Ok(None);
        };
        let change = u32::try_from(self.at).map_err(|_| {
            Error::ManifestDecode("version 3 column kinds: more than 2^32 changes".into())
        })?;
        self.at += 1;
        let c = &mut self.c;
        let key = c.key(&mut self.text)?;
        let object = match kind {
            REMOVE => return Ok(Some(Change::Remove { key })),
            OTHER => {
                let (o, rest) = postcard::take_from_bytes::<Object>(c.others.bytes)
                    .map_err(|e| c.others.bad(&e.to_string()))?;
                c.others.bytes = rest;
                o
            }
            FILE | FILE_EXECUTABLE => {
                let sha256 = Sha256(c.digests.hash()?);
                let refs = c.refs((self.chunks, self.unnamed), &mut self.next, change, at)?;
                let sum = refs.iter().fold(0u64, |a, r| a.wrapping_add(r.len as u64));
                let size = sum.wrapping_add(unzigzag(c.sizes.varint()?) as u64);
                Object::File(FileObject {
                    size,
                    sha256,
                    executable: kind == FILE_EXECUTABLE,
                    encoding: Encoding::Chunks(refs),
                })
            }
            _ => {
                return Err(Error::ManifestDecode(
                    "version 3 column kinds: an unknown change kind".into(),
                ))
            }
        };
        Ok(Some(Change::Put { key, object }))
    }

    /// After the last change: no column has bytes left over.
    fn finish(&self) -> Result<(), Error> {
        let c = &self.c;
        for col in [
            &c.key_lens,
            &c.key_bytes,
            &c.sizes,
            &c.digests,
            &c.ref_counts,
            &c.refs,
            &c.explicit,
            &c.others,
        ] {
            col.done()?;
        }
        Ok(())
    }
}

/// The changes; the refs by index to id-less entries (`unnamed`); for each
/// id-less entry, the first change that puts a file it is the whole of.
#[allow(clippy::type_complexity)]
fn decode_changes(
    c: ChangeColumns<'_>,
    chunks: &[ChunkEntry],
    unnamed: &[bool],
) -> Result<(Vec<Change>, Vec<RefAt>, Vec<Option<u32>>), Error> {
    let mut at = Vec::new();
    let mut wholes: Vec<Option<u32>> = vec![None; chunks.len()];
    // Reserved by what the columns can hold (every change has two bytes of
    // key lengths at least), not by the kinds column alone: this runs on
    // unverified manifests too (`peek_unverified`).
    let mut out = Vec::with_capacity(c.kinds.bytes.len().min(c.key_lens.bytes.len() / 2));
    let mut reader = ChangeReader::new(c, chunks, unnamed);
    loop {
        let before = at.len();
        let Some(change) = reader.read(&mut at)? else {
            break;
        };
        if let Change::Put {
            object:
                Object::File(FileObject {
                    encoding: Encoding::Chunks(refs),
                    ..
                }),
            ..
        } = &change
        {
            if refs.len() == 1 && at.len() == before + 1 {
                wholes[at[before].entry as usize].get_or_insert(out.len() as u32);
            }
        }
        out.push(change);
    }
    reader.finish()?;
    Ok((out, at, wholes))
}

#[cfg(test)]
#[path = "compact_tests.rs"]
pub(super) mod tests;
