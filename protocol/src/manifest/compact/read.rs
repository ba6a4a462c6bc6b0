//! The reading side of format version 3 and 4 manifest bodies
//! (docs/bundle-format.md §5.10): the columns opened and checked
//! ([`Columns`]), the change list read back a change at a time
//! ([`ColumnChanges`]) or whole ([`decode`]), and the chunk table. What the
//! columns are is in the parent module, which writes them.

use super::*;

/// Reads one column.
#[derive(Clone)]
pub(super) struct Cursor<'a> {
    pub(super) name: &'static str,
    pub(super) bytes: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn bad(&self, why: &str) -> Error {
        Error::ManifestDecode(format!("version 3 column {}: {why}", self.name))
    }

    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if self.bytes.len() < n {
            return Err(self.bad("ends early"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    pub(super) fn varint(&mut self) -> Result<u64, Error> {
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
    pub(in crate::manifest) fn oldest_version(&self) -> u32 {
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
pub(super) struct Body {
    head: Head,
    columns: Vec<u8>,
    /// Each column's start and length in `columns`.
    spans: Vec<(usize, usize)>,
}

/// Decompresses a version-3 or version-4 body's columns and finds them.
pub(super) fn open_body(body: &[u8], version: u32) -> Result<Body, Error> {
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

pub(super) const NAMES: [&str; 14] = [
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
pub(in crate::manifest) fn decode(body: &[u8], version: u32) -> Result<Decoded, Error> {
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
pub(in crate::manifest) fn decode_keeping(body: &[u8], version: u32) -> Result<Decoded, Error> {
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

pub(super) fn no_whole(i: usize) -> Error {
    Error::ManifestDecode(format!(
        "version 4 chunk #{i} has no id and is not the whole of an object the bundle puts, so its id cannot be computed"
    ))
}

/// The id-less entries (`unnamed` marks them) with the first change each
/// is the whole of (`wholes`) and that object's SHA-256 (`sha256_of`).
pub(super) fn list_unnamed(
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
pub(super) fn pend(
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
pub(super) fn decode_chunks(
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
pub(super) struct ChangeColumns<'a> {
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
pub(super) struct ChangeReader<'a> {
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
pub(super) fn decode_changes(
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
