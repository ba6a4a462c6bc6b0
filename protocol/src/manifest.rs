//! The signed manifest: what a bundle is, where it fits in its stream, and
//! everything a reader needs to check it before using a byte of it.
//!
//! File layout (all integers little-endian):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `FERRYMAN` |
//! | 8 | 4 | format version, `1` to `4` |
//! | 12 | 4 | body length `B` |
//! | 16 | B | body: [`Manifest`] in postcard (versions 1 and 2), or in columns (versions 3 and 4, `compact`) |
//! | 16+B | 32 | signer's ed25519 public key |
//! | 48+B | 64 | ed25519 signature over `SIGNING_CONTEXT` followed by bytes `0..16+B` |
//!
//! Nothing follows the signature. The manifest hash ([`ManifestHash`]) is the
//! BLAKE3 of the whole file.

use crate::catalog::{Catalog, Change, SourceKind, Sums};
use crate::chunking::ChunkParams;
use crate::codec::Codec;
use crate::id::{ChunkId, ManifestHash, Sha256, StreamId};
use crate::keys::{PublicKey, SecretKey};
use crate::limits::{check, ReceiverLimits};
use crate::Error;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::collections::HashSet;

mod compact;
mod unsigned;
mod writer;
pub use compact::{ColumnChanges, Columns};
pub use unsigned::{strip_signature, UnsignedManifest};
pub use writer::{ManifestWriter, MemorySpill, Spill, WriteError, Written};

/// First bytes of a manifest file.
pub const MAGIC: &[u8; 8] = b"FERRYMAN";
/// First bytes of an unsigned manifest file: the header and body of a
/// manifest file, no signer and no signature ([`Manifest::to_unsigned`]).
/// A reader of signed manifests refuses it as [`Error::Unsigned`].
pub const UNSIGNED_MAGIC: &[u8; 8] = b"FERRYUNS";
/// The newest format version this crate writes and reads. A manifest is
/// written as version 4 when it is written in columns and a chunk it
/// carries is the whole of an object it puts (that chunk goes without its
/// id: [`Decoded`]); as version 3 (the columns of `compact`) from [`COMPACT_FROM`]
/// changes and chunks, or when an object needs it (one carried as
/// [`Expanded::Windows`](crate::catalog::Expanded::Windows)); a smaller one
/// as version 2 only when an object needs it (an
/// [`Encoding::Rebuilt`](crate::catalog::Encoding::Rebuilt) object),
/// otherwise as version 1, which readers of every version accept.
pub const FORMAT_VERSION: u32 = 4;
/// A manifest with at least this many changes and chunks (together) is
/// written as version 3: small bundles stay readable by older readers.
pub const COMPACT_FROM: usize = 1024;
/// The oldest format version this crate reads.
pub const OLDEST_FORMAT_VERSION: u32 = 1;
/// Domain separation for manifest signatures.
pub const SIGNING_CONTEXT: &[u8] = b"ferry bundle manifest v1\0";
const HEADER_LEN: usize = 16;
const TRAILER_LEN: usize = 32 + 64;

/// A chunk carried in this bundle, and where its stored bytes are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkEntry {
    /// BLAKE3 of the uncompressed bytes.
    pub id: ChunkId,
    /// Uncompressed length.
    pub raw_len: u32,
    /// Length of the stored bytes in the volume.
    pub stored_len: u32,
    /// Storage form.
    pub codec: Codec,
    /// Index of the volume that holds it.
    pub volume: u32,
    /// Offset of the stored bytes from the start of the volume file.
    pub offset: u64,
}

impl ChunkEntry {
    /// Where the entry's stored bytes are and what they decode to.
    pub fn place(&self) -> Place {
        Place {
            raw_len: self.raw_len,
            stored_len: self.stored_len,
            codec: self.codec,
            volume: self.volume,
            offset: self.offset,
        }
    }
}

/// A chunk-table entry but its id: where the stored bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Place {
    /// Uncompressed length.
    pub raw_len: u32,
    /// Length of the stored bytes in the volume.
    pub stored_len: u32,
    /// Storage form.
    pub codec: Codec,
    /// Index of the volume that holds it.
    pub volume: u32,
    /// Offset of the stored bytes from the start of the volume file.
    pub offset: u64,
}

/// How a chunk-table entry is named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Name {
    /// Its id, listed in the manifest (or computed already).
    Id(ChunkId),
    /// Listed without an id (version 4): its bytes are the whole of an
    /// object of this SHA-256, and its id is the BLAKE3 of those bytes,
    /// known once they are read ([`Decoded::name`]).
    Whole(Sha256),
}

/// A volume file of this bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeEntry {
    /// Exact size of the file.
    pub size: u64,
    /// BLAKE3 of the whole file.
    pub blake3: [u8; 32],
}

/// Totals a reader checks against its limits before doing any work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Largest uncompressed chunk carried.
    pub max_chunk: u32,
    /// Sum of the chunks' uncompressed lengths.
    pub chunk_raw_bytes: u64,
    /// Sum of all volume sizes.
    pub volume_bytes: u64,
    /// Largest object the resulting catalog holds.
    pub max_object: u64,
    /// Number of objects in the resulting catalog.
    pub objects: u64,
    /// Bytes of all regular files in the resulting catalog.
    pub catalog_bytes: u64,
}

impl Totals {
    /// The totals that tell the truth about a bundle carrying `chunks` in
    /// `volumes` whose catalog delta produces `next`. Sums saturate, so a
    /// test may compute them for hostile values too.
    pub fn of(next: &Catalog, chunks: &[ChunkEntry], volumes: &[VolumeEntry]) -> Totals {
        Totals::of_sums(Sums::of(next.objects.values()), chunks, volumes)
    }

    /// [`Totals::of`], from the sums of the next catalog (made without it:
    /// [`Catalog::objects_after`]).
    pub fn of_sums(next: Sums, chunks: &[ChunkEntry], volumes: &[VolumeEntry]) -> Totals {
        Totals {
            max_chunk: chunks.iter().map(|c| c.raw_len).max().unwrap_or(0),
            chunk_raw_bytes: chunks
                .iter()
                .fold(0u64, |a, c| a.saturating_add(c.raw_len as u64)),
            volume_bytes: volumes.iter().fold(0u64, |a, v| a.saturating_add(v.size)),
            max_object: next.max_object,
            objects: next.objects,
            catalog_bytes: next.bytes,
        }
    }
}

/// A record for later format growth (such as trust rotation). A reader that
/// meets an unknown `kind` ignores it unless `critical` is set, in which case
/// it refuses the bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extension {
    /// Registered kind number.
    pub kind: u32,
    /// Whether a reader that does not know `kind` must refuse the bundle.
    pub critical: bool,
    /// Kind-specific payload.
    pub data: Vec<u8>,
}

/// The manifest body. Field order is the wire order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The stream this bundle belongs to.
    pub stream: StreamId,
    /// Position in the stream, from 1.
    pub sequence: u64,
    /// Hash of the manifest of bundle `sequence - 1`; `None` only for sequence 1.
    pub previous: Option<ManifestHash>,
    /// Creation time, seconds since the Unix epoch (UTC).
    pub created: u64,
    /// After this time (seconds since the epoch) a receiver refuses the bundle.
    pub expires: u64,
    /// How the sender cut chunks.
    pub chunking: ChunkParams,
    /// Every source of the resulting catalog, with its kind.
    pub sources: BTreeMap<String, SourceKind>,
    /// The catalog delta from bundle `sequence - 1`.
    pub changes: Vec<Change>,
    /// The chunks this bundle carries.
    pub chunks: Vec<ChunkEntry>,
    /// The volume files, by index.
    pub volumes: Vec<VolumeEntry>,
    /// Totals for the reader's limits.
    pub totals: Totals,
    /// Free-form producer string, such as `ferry-out 0.1.0`.
    pub producer: String,
    /// Records for later growth.
    pub extensions: Vec<Extension>,
}

/// A manifest whose signature has been checked against a trusted key.
/// Its body is a [`Decoded`] (it derefs to one): every chunk id known, or
/// (version 4) some only once their bytes are read.
#[derive(Clone, Debug)]
pub struct VerifiedManifest {
    /// The body.
    pub body: Decoded,
    /// Who signed it.
    pub signer: PublicKey,
    /// Hash of the manifest file.
    pub hash: ManifestHash,
}

impl std::ops::Deref for VerifiedManifest {
    type Target = Decoded;
    fn deref(&self) -> &Decoded {
        &self.body
    }
}

impl std::ops::DerefMut for VerifiedManifest {
    fn deref_mut(&mut self) -> &mut Decoded {
        &mut self.body
    }
}

/// A decoded manifest body. A version-4 body may list chunks without their
/// ids ([`Name::Whole`]): until [`Decoded::name`] has filled them in from
/// the chunks' bytes, the change list and the chunk table (the parts that
/// hold chunk ids) are kept aside, so nothing can read an id that is not
/// known yet: [`Decoded::manifest`] is an error and [`Decoded::head`] has
/// neither changes nor chunks. Everything else (stream, sequence, times,
/// volumes, totals, extensions) is in the head from the start.
#[derive(Clone, Debug)]
pub struct Decoded {
    manifest: Manifest,
    pending: Option<Box<Pending>>,
    /// The change list kept as its columns ([`Manifest::open_keeping_columns`]):
    /// `changes` (the manifest's or the pending ones) are empty then.
    columns: Option<Box<Columns>>,
}

/// The change list and chunk table of a body whose id-less chunks are not
/// named yet. The ids of those entries, and of the chunk refs that name them
/// by index, are not set (never shown outside this module).
#[derive(Clone, Debug)]
struct Pending {
    changes: Vec<Change>,
    chunks: Vec<ChunkEntry>,
    /// The id-less entries, in table order.
    unnamed: Vec<compact::Unnamed>,
    /// Every chunk ref that names an id-less entry.
    refs: Vec<compact::RefAt>,
    /// How many of the id-less entries (the first ones) have their id
    /// recorded already ([`Decoded::name_part`]).
    named: usize,
}

/// An id-less chunk to name: read its stored bytes at `place`, decode them
/// and check them against the object's `sha256`
/// ([`crate::codec::decode_whole`]); its id is their BLAKE3.
#[derive(Clone, Copy, Debug)]
pub struct ToName<'a> {
    /// Its index in the chunk table.
    pub index: u32,
    /// Where its stored bytes are.
    pub place: Place,
    /// The SHA-256 of the object it is the whole of.
    pub sha256: Sha256,
    /// That object's key (for messages).
    pub key: KeyOf<'a>,
}

/// The key of the object an id-less chunk is the whole of ([`ToName`]):
/// in a decoded change list, or (a change list kept as [`Columns`]) read
/// from the columns when asked for, which only a message does.
#[derive(Clone, Copy, Debug)]
pub struct KeyOf<'a>(KeyAt<'a>);

#[derive(Clone, Copy, Debug)]
enum KeyAt<'a> {
    Key(&'a crate::path::ObjectKey),
    Change {
        columns: &'a Columns,
        chunks: &'a [ChunkEntry],
        change: u32,
    },
}

impl<'a> KeyOf<'a> {
    /// The key.
    pub fn key(&self) -> std::borrow::Cow<'a, crate::path::ObjectKey> {
        match self.0 {
            KeyAt::Key(k) => std::borrow::Cow::Borrowed(k),
            KeyAt::Change {
                columns,
                chunks,
                change,
            } => {
                let c = columns.iter(chunks).nth(change as usize);
                std::borrow::Cow::Owned(c.expect("the change of an id-less chunk").key().clone())
            }
        }
    }
}

impl std::fmt::Display for KeyOf<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.key().fmt(f)
    }
}

impl Decoded {
    /// A body with every id known.
    pub fn named(manifest: Manifest) -> Decoded {
        Decoded {
            manifest,
            pending: None,
            columns: None,
        }
    }

    /// Whether the change list is kept as its columns (not decoded).
    pub fn has_columns(&self) -> bool {
        self.columns.is_some()
    }

    /// Decodes the change list kept as columns into the manifest (every
    /// change held from here on, as [`Manifest::open`] holds them).
    pub fn decode_columns(&mut self) {
        let Some(columns) = self.columns.take() else {
            return;
        };
        match &mut self.pending {
            None => self.manifest.changes = columns.decode_all(&self.manifest.chunks),
            Some(p) => p.changes = columns.decode_all(&p.chunks),
        }
    }

    /// Takes the change list kept as columns out, once every chunk id is
    /// known (`None` if it was decoded): its refs by index are read from
    /// the chunk table ([`Decoded::chunks`]) as it is read.
    pub fn take_columns(&mut self) -> Result<Option<Columns>, Error> {
        match &self.pending {
            None => Ok(self.columns.take().map(|c| *c)),
            Some(p) => Err(not_named(p)),
        }
    }

    /// The chunk table, once every chunk id is known.
    pub fn chunks(&self) -> Result<&[ChunkEntry], Error> {
        match &self.pending {
            None => Ok(&self.manifest.chunks),
            Some(p) => Err(not_named(p)),
        }
    }

    /// Whether every chunk id is known.
    pub fn is_named(&self) -> bool {
        self.pending.is_none()
    }

    /// The manifest but, while some ids are unknown, its changes and chunks
    /// (both empty then): for the fields that do not hold chunk ids.
    pub fn head(&self) -> &Manifest {
        &self.manifest
    }

    /// The whole manifest, once every chunk id is known.
    pub fn manifest(&self) -> Result<&Manifest, Error> {
        if self.columns.is_some() {
            return Err(kept_as_columns());
        }
        match &self.pending {
            None => Ok(&self.manifest),
            Some(p) => Err(not_named(p)),
        }
    }

    /// The whole manifest, once every chunk id is known.
    pub fn into_manifest(mut self) -> Result<Manifest, Error> {
        self.decode_columns();
        match self.pending {
            None => Ok(self.manifest),
            Some(p) => Err(not_named(&p)),
        }
    }

    /// Takes the change list out of the manifest, once every chunk id is
    /// known (the inside's apply moves it into the next catalog instead of
    /// copying it: a first import's change list is the whole catalog); the
    /// manifest's `changes` are empty after, so its checks of the result are
    /// made with [`Manifest::check_result_of`] and the moved puts.
    pub fn take_changes(&mut self) -> Result<Vec<Change>, Error> {
        match &self.pending {
            None => {
                self.decode_columns();
                Ok(std::mem::take(&mut self.manifest.changes))
            }
            Some(p) => Err(not_named(p)),
        }
    }

    /// The number of entries of the chunk table.
    pub fn chunk_count(&self) -> usize {
        self.chunks_any().len()
    }

    /// Entry `index` of the chunk table: how it is named and where it is.
    pub fn entry(&self, index: usize) -> Option<(Name, Place)> {
        let e = self.chunks_any().get(index)?;
        Some((self.name_of(index, e), e.place()))
    }

    /// Every entry of the chunk table, in order.
    pub fn entries(&self) -> impl Iterator<Item = (Name, Place)> + '_ {
        self.chunks_any()
            .iter()
            .enumerate()
            .map(|(i, e)| (self.name_of(i, e), e.place()))
    }

    /// The id-less entries, in table order (none once named).
    pub fn to_name(&self) -> Vec<ToName<'_>> {
        self.to_name_range(0..self.unnamed_count())
    }

    /// How many entries are listed without their id (none once named).
    pub fn unnamed_count(&self) -> usize {
        self.pending.as_ref().map_or(0, |p| p.unnamed.len())
    }

    /// The id-less entries `range` (their places among the id-less
    /// entries, in table order): [`Decoded::to_name`] in parts, so that a
    /// reader holds one part and its ids at a time.
    pub fn to_name_range(&self, range: std::ops::Range<usize>) -> Vec<ToName<'_>> {
        let Some(p) = &self.pending else {
            return vec![];
        };
        p.unnamed[range]
            .iter()
            .map(|u| {
                let key = match &self.columns {
                    None => KeyAt::Key(compact::whole_of(&p.changes, u).0),
                    Some(columns) => KeyAt::Change {
                        columns,
                        chunks: &p.chunks,
                        change: u.change,
                    },
                };
                ToName {
                    index: u.index,
                    place: p.chunks[u.index as usize].place(),
                    sha256: u.sha256,
                    key: KeyOf(key),
                }
            })
            .collect()
    }

    /// Fills in the ids of the id-less entries, `ids[i]` for `to_name()[i]`
    /// (each the BLAKE3 of that chunk's bytes, checked against its object by
    /// [`crate::codec::decode_whole`]), then checks what needed them: no id
    /// twice in the table.
    pub fn name(&mut self, ids: &[ChunkId]) -> Result<(), Error> {
        if self.pending.is_none() {
            return Ok(());
        }
        assert_eq!(
            ids.len(),
            self.unnamed_count(),
            "one id for each id-less chunk"
        );
        self.name_part(0, ids);
        self.finish_naming()
    }

    /// Records the ids of the id-less entries `first..first + ids.len()`
    /// (their places among them, as [`Decoded::to_name_range`] gives
    /// them), in order: `first` is the number recorded so far. Nothing
    /// reads them before [`Decoded::finish_naming`].
    pub fn name_part(&mut self, first: usize, ids: &[ChunkId]) {
        let Some(p) = &mut self.pending else {
            return;
        };
        assert_eq!(first, p.named, "the id-less chunks are named in order");
        for (u, id) in p.unnamed[first..first + ids.len()].iter().zip(ids) {
            p.chunks[u.index as usize].id = *id;
        }
        p.named += ids.len();
    }

    /// Once every id-less entry's id is recorded ([`Decoded::name_part`]):
    /// sets the chunk refs that name them, then checks what needed the
    /// ids: no id twice in the table (found by sorting the entries' places
    /// by id, not with a set of every id).
    pub fn finish_naming(&mut self) -> Result<(), Error> {
        let Some(p) = self.pending.take() else {
            return Ok(());
        };
        let Pending {
            mut changes,
            chunks,
            unnamed,
            refs,
            named,
        } = *p;
        assert_eq!(named, unnamed.len(), "one id for each id-less chunk");
        for r in &refs {
            compact::set_ref(&mut changes, r, chunks[r.entry as usize].id);
        }
        let mut order: Vec<u32> = (0..chunks.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| chunks[a as usize].id.cmp(&chunks[b as usize].id));
        let id = |i: u32| chunks[i as usize].id;
        if let Some(w) = order.windows(2).find(|w| id(w[0]) == id(w[1])) {
            return Err(Error::Inconsistent(format!(
                "chunk {} is listed twice (once without its id)",
                id(w[0])
            )));
        }
        self.manifest.changes = changes;
        self.manifest.chunks = chunks;
        Ok(())
    }

    fn chunks_any(&self) -> &[ChunkEntry] {
        match &self.pending {
            None => &self.manifest.chunks,
            Some(p) => &p.chunks,
        }
    }

    fn name_of(&self, index: usize, e: &ChunkEntry) -> Name {
        let Some(p) = &self.pending else {
            return Name::Id(e.id);
        };
        match p.unnamed.binary_search_by_key(&(index as u32), |u| u.index) {
            Ok(i) => Name::Whole(p.unnamed[i].sha256),
            Err(_) => Name::Id(e.id),
        }
    }
}

fn kept_as_columns() -> Error {
    Error::Inconsistent(
        "this manifest's change list is kept as columns (a reader's bug: decode_columns first)"
            .into(),
    )
}

fn not_named(p: &Pending) -> Error {
    Error::Inconsistent(format!(
        "{} chunks of this version-4 manifest have no id until their bytes are read (a reader's bug: ids used before naming)",
        p.unnamed.len()
    ))
}

/// A manifest carries an extension kind more than once (each kind may appear
/// at most once).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExtensionTwice;

impl Manifest {
    /// The one extension of `kind`, if any; two of the same kind are an error.
    pub fn extension(&self, kind: u32) -> Result<Option<&Extension>, ExtensionTwice> {
        let mut found = self.extensions.iter().filter(|e| e.kind == kind);
        match (found.next(), found.next()) {
            (_, Some(_)) => Err(ExtensionTwice),
            (one, None) => Ok(one),
        }
    }

    /// Encodes (in [`Manifest::version`]) and signs; returns the manifest
    /// file's bytes.
    pub fn sign(&self, key: &SecretKey) -> Vec<u8> {
        self.sign_as(self.version(), key)
    }

    /// Encodes in format `version` and signs. A writer uses
    /// [`Manifest::sign`]; this is for tests of readers (a small manifest in
    /// version 3, say). `version` must be able to express the manifest
    /// (see [`Manifest::body`]).
    pub fn sign_as(&self, version: u32, key: &SecretKey) -> Vec<u8> {
        sign_body(&self.body(version), version, key)
    }

    /// The body in format `version`: postcard for 1 and 2, columns for 3
    /// and 4 (4: a chunk that is the whole of an object goes without its id).
    /// (A version-1 body of a manifest that needs version 2 is what a reader
    /// refuses: tests write one on purpose.)
    pub fn body(&self, version: u32) -> Vec<u8> {
        if version >= 3 {
            compact::encode(self, version)
        } else {
            postcard::to_stdvec(self).expect("a manifest always serializes")
        }
    }

    /// Decodes a body of format `version`; with `keep`, a body in columns
    /// keeps its change list as [`Columns`].
    fn decode_body(version: u32, body: &[u8], keep: bool) -> Result<Decoded, Error> {
        if version >= 3 && keep {
            compact::decode_keeping(body, version)
        } else if version >= 3 {
            compact::decode(body, version)
        } else {
            postcard::from_bytes(body)
                .map(Decoded::named)
                .map_err(|e| Error::ManifestDecode(e.to_string()))
        }
    }

    /// The unsigned manifest file: [`UNSIGNED_MAGIC`], the version, the body
    /// length and the body, exactly the bytes a signature will cover but
    /// for the magic. [`UnsignedManifest::sign`] turns it into the file
    /// [`Manifest::sign`] writes, byte for byte.
    pub fn to_unsigned(&self) -> Vec<u8> {
        let version = self.version();
        frame(UNSIGNED_MAGIC, &self.body(version), version)
    }

    /// The format version this manifest is written in: 3 from
    /// [`COMPACT_FROM`] changes and chunks, else [`Manifest::oldest_version`]
    /// (so older readers still read small bundles); and 4 instead of 3 when
    /// a carried chunk is the whole of an object the manifest puts (its id
    /// is then left out: version 4 saves something).
    pub fn version(&self) -> u32 {
        let oldest = self.oldest_version();
        let v = if oldest < 3 && self.changes.len() + self.chunks.len() >= COMPACT_FROM {
            3
        } else {
            oldest
        };
        if v == 3 && compact::has_whole(self) {
            4
        } else {
            v
        }
    }

    /// The oldest format version that can carry this manifest: the newest
    /// any object it puts needs (`FileObject::format_version`: 3 for
    /// windows, 2 for another rebuilt object), else 1.
    pub fn oldest_version(&self) -> u32 {
        oldest_version_of(&self.changes)
    }

    /// Parses a manifest file, checks its signature against `trusted`, and
    /// checks its declared sizes against `limits` and against each other.
    ///
    /// The order is: size limit, magic, version, length, signer trusted,
    /// signature valid, and only then decode the body.
    pub fn open(
        file: &[u8],
        trusted: &[PublicKey],
        limits: &ReceiverLimits,
    ) -> Result<VerifiedManifest, Error> {
        Manifest::open_as(file, trusted, limits, false)
    }

    /// [`Manifest::open`], keeping a change list in columns (versions 3
    /// and 4) as [`Columns`]: each change is decoded and checked once,
    /// none held ([`Decoded::take_columns`] gives them to read again a
    /// change at a time; [`Decoded::take_changes`] decodes them whole).
    pub fn open_keeping_columns(
        file: &[u8],
        trusted: &[PublicKey],
        limits: &ReceiverLimits,
    ) -> Result<VerifiedManifest, Error> {
        Manifest::open_as(file, trusted, limits, true)
    }

    fn open_as(
        file: &[u8],
        trusted: &[PublicKey],
        limits: &ReceiverLimits,
        keep: bool,
    ) -> Result<VerifiedManifest, Error> {
        check(
            "manifest size",
            file.len() as u64,
            limits.max_manifest_bytes,
        )
        .map_err(|_| Error::ManifestTooLarge {
            size: file.len() as u64,
            limit: limits.max_manifest_bytes,
        })?;
        let (signed, signer, sig) = split(file)?;
        if !trusted.contains(&signer) {
            return Err(Error::UntrustedKey(signer.short()));
        }
        signer.verify(&signed_message(signed), &sig)?;
        let version = u32::from_le_bytes(signed[8..12].try_into().expect("4 bytes"));
        let body = Manifest::decode_body(version, &signed[HEADER_LEN..], keep)?;
        body.check_version(version)?;
        body.check(limits)?;
        Ok(VerifiedManifest {
            body,
            signer,
            hash: ManifestHash::of(file),
        })
    }

    /// Checks the manifest's internal consistency and its sizes against limits.
    pub fn check(&self, limits: &ReceiverLimits) -> Result<(), Error> {
        self.check_parts(&self.chunks, &[], limits)
    }

    /// [`Manifest::check`] of a head and its chunk table `chunks`, where the
    /// entries `unnamed` (indices, ascending) have no id yet: their ids are
    /// checked for repeats once known ([`Decoded::name`]).
    fn check_parts(
        &self,
        chunks: &[ChunkEntry],
        unnamed: &[u32],
        limits: &ReceiverLimits,
    ) -> Result<(), Error> {
        let bad = |s: String| Err(Error::Inconsistent(s));
        if self.sequence == 0 {
            return bad("sequence 0 (sequences start at 1)".into());
        }
        if (self.sequence == 1) != self.previous.is_none() {
            return bad("only bundle 1 may lack a previous manifest hash".into());
        }
        if let Some(e) = self.extensions.iter().find(|e| {
            e.critical
                && e.kind != crate::trust::EXTENSION_KIND
                && e.kind != crate::rebase::EXTENSION_KIND
        }) {
            return Err(Error::UnknownCriticalExtension(e.kind));
        }
        crate::trust::statements(self)?;
        crate::rebase::rebase(self)?;
        let t = &self.totals;
        check(
            "largest chunk",
            t.max_chunk as u64,
            limits.max_chunk_bytes as u64,
        )?;
        check(
            "bundle size on media",
            t.volume_bytes,
            limits.max_bundle_bytes,
        )?;
        check(
            "bundle uncompressed size",
            t.chunk_raw_bytes,
            limits.max_bundle_raw_bytes,
        )?;
        check("largest object", t.max_object, limits.max_object_bytes)?;
        check("object count", t.objects, limits.max_objects)?;
        check(
            "volume count",
            self.volumes.len() as u64,
            limits.max_volumes as u64,
        )?;

        let volume_sum = self
            .volumes
            .iter()
            .try_fold(0u64, |a, v| a.checked_add(v.size))
            .ok_or_else(|| Error::Inconsistent("volume sizes overflow".into()))?;
        if volume_sum != t.volume_bytes {
            return bad(format!(
                "volumes add up to {volume_sum} bytes, totals say {}",
                t.volume_bytes
            ));
        }
        let mut raw_sum = 0u64;
        let mut seen = HashSet::with_capacity(chunks.len());
        let mut unnamed = unnamed.iter().peekable();
        for (i, c) in chunks.iter().enumerate() {
            // An id-less entry is named by its index until its id is known.
            let name = if unnamed.next_if(|&&u| u as usize == i).is_some() {
                format!("#{i} (listed without its id)")
            } else if !seen.insert(c.id) {
                return bad(format!("chunk {} is listed twice", c.id));
            } else {
                c.id.to_string()
            };
            if c.raw_len > t.max_chunk || c.raw_len == 0 {
                return bad(format!(
                    "chunk {name} has length {} (largest declared {})",
                    c.raw_len, t.max_chunk
                ));
            }
            if c.codec == Codec::Raw && c.stored_len != c.raw_len {
                return bad(format!(
                    "raw chunk {name} stores {} bytes for {}",
                    c.stored_len, c.raw_len
                ));
            }
            let vol = self.volumes.get(c.volume as usize).ok_or_else(|| {
                Error::Inconsistent(format!(
                    "chunk {name} is in volume {}, which is not listed",
                    c.volume
                ))
            })?;
            let end = c.offset.checked_add(c.stored_len as u64);
            if c.offset < crate::volume::HEADER_LEN as u64 || end.is_none_or(|e| e > vol.size) {
                return bad(format!("chunk {name} lies outside volume {}", c.volume));
            }
            raw_sum += c.raw_len as u64;
        }
        if raw_sum != t.chunk_raw_bytes {
            return bad(format!(
                "chunks add up to {raw_sum} bytes, totals say {}",
                t.chunk_raw_bytes
            ));
        }
        Ok(())
    }

    /// Checks the catalog that results from applying this manifest against
    /// the totals it declares and the receiver's limits, and every chunk
    /// reference of a changed object against the chunk list where it is carried.
    pub fn check_result(
        &self,
        next: &crate::catalog::Catalog,
        limits: &ReceiverLimits,
    ) -> Result<(), Error> {
        self.check_result_sums(Sums::of(next.objects.values()), limits)
    }

    /// [`Manifest::check_result`] of a resulting catalog known by its
    /// [`Sums`] (a receiver keeping them beside its catalog's rows).
    pub fn check_result_sums(&self, sums: Sums, limits: &ReceiverLimits) -> Result<(), Error> {
        let puts = self
            .changes
            .iter()
            .filter_map(|c| Some((c.key(), c.object()?)));
        self.check_result_of(sums, puts, limits)
    }

    /// [`Manifest::check_result_sums`] with the objects the manifest puts
    /// given by the caller: a receiver that moved the change list out
    /// ([`Decoded::take_changes`]) gives them from where it moved them, so
    /// every put's chunk refs and rebuilt parts are still checked against
    /// the limits.
    pub fn check_result_of<K, O>(
        &self,
        sums: Sums,
        puts: impl IntoIterator<Item = (K, O)>,
        limits: &ReceiverLimits,
    ) -> Result<(), Error>
    where
        K: std::borrow::Borrow<crate::path::ObjectKey>,
        O: std::borrow::Borrow<crate::catalog::Object>,
    {
        let t = &self.totals;
        let Sums {
            objects,
            bytes,
            max_object,
        } = sums;
        if (objects, max_object, bytes) != (t.objects, t.max_object, t.catalog_bytes) {
            return Err(Error::Inconsistent(format!(
                "resulting catalog has {objects} objects, largest {max_object} bytes, {bytes} bytes in all; \
                 the manifest declares {}, {}, {}",
                t.objects, t.max_object, t.catalog_bytes
            )));
        }
        check("largest object", max_object, limits.max_object_bytes)?;
        check("object count", objects, limits.max_objects)?;
        let carried: std::collections::HashMap<_, _> =
            self.chunks.iter().map(|c| (c.id, c.raw_len)).collect();
        for (key, object) in puts {
            let (key, object) = (key.borrow(), object.borrow());
            if let crate::catalog::Object::File(f) = object {
                if let crate::catalog::Encoding::Rebuilt(r) = &f.encoding {
                    // Every part a reader holds in memory to rebuild the
                    // object; repeating a chunk ref must not make one huge.
                    let sum = |c: &mut dyn Iterator<Item = &crate::catalog::ChunkRef>| {
                        c.fold(0u64, |a, c| a.saturating_add(c.len as u64))
                    };
                    let parts = [
                        ("expanded form", r.expanded_len),
                        ("reference form", f.base().map_or(0, |b| b.len)),
                        ("recipe", sum(&mut r.recipe.iter())),
                        ("expanded chunks or patch", sum(&mut r.expanded_chunks())),
                    ];
                    for (what, value) in parts {
                        check(
                            &format!("{what} of {key}"),
                            value,
                            limits.max_expanded_bytes,
                        )?;
                    }
                }
                for r in f.chunks() {
                    if r.len > limits.max_chunk_bytes {
                        return Err(Error::OverLimit {
                            what: format!("chunk of {key}"),
                            value: r.len as u64,
                            limit: limits.max_chunk_bytes as u64,
                        });
                    }
                    if carried.get(&r.id).is_some_and(|&len| len != r.len) {
                        return Err(Error::Inconsistent(format!(
                            "{key} refers to chunk {} with length {}, the bundle carries it with another length",
                            r.id, r.len
                        )));
                    }
                }
            }
        }
        Ok(())
    }
}

/// The oldest format version that can carry `changes` ([`Manifest::oldest_version`]).
fn oldest_version_of(changes: &[Change]) -> u32 {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::Put {
                object: crate::catalog::Object::File(f),
                ..
            } => Some(f.format_version()),
            _ => None,
        })
        .max()
        .unwrap_or(1)
}

impl Decoded {
    fn changes_any(&self) -> &[Change] {
        match &self.pending {
            None => &self.manifest.changes,
            Some(p) => &p.changes,
        }
    }

    /// A version-`version` body carries no object encoding of a later version.
    fn check_version(&self, version: u32) -> Result<(), Error> {
        let oldest = match &self.columns {
            Some(c) => c.oldest_version(),
            None => oldest_version_of(self.changes_any()),
        };
        if oldest > version {
            return Err(Error::Inconsistent(format!(
                "a version {version} manifest carries an object encoding of version {oldest}"
            )));
        }
        Ok(())
    }

    /// [`Manifest::check`], the ids of id-less entries aside.
    pub fn check(&self, limits: &ReceiverLimits) -> Result<(), Error> {
        match &self.pending {
            None => self.manifest.check(limits),
            Some(p) => {
                let unnamed: Vec<u32> = p.unnamed.iter().map(|u| u.index).collect();
                self.manifest.check_parts(&p.chunks, &unnamed, limits)
            }
        }
    }
}

/// The key a manifest file names as its signer, from its framing alone
/// (the header checks of [`Manifest::open`], no signature, no decoding).
pub fn signer_of(file: &[u8]) -> Result<PublicKey, Error> {
    Ok(split(file)?.1)
}

/// Reads the signer and the manifest body without checking the signature, for
/// a status report on a bundle that failed verification. Never trust the result.
pub fn peek_unverified(file: &[u8]) -> Result<(PublicKey, Decoded), Error> {
    let (signed, signer, _) = split(file)?;
    let version = u32::from_le_bytes(signed[8..12].try_into().expect("4 bytes"));
    Ok((
        signer,
        Manifest::decode_body(version, &signed[HEADER_LEN..], false)?,
    ))
}

/// Frames `body` (header, body, signer, signature) and signs it: the
/// manifest file for that body. [`Manifest::sign`] uses it; a test may sign a
/// body that does not decode.
pub fn sign_body(body: &[u8], version: u32, key: &SecretKey) -> Vec<u8> {
    let mut out = frame(MAGIC, body, version);
    out.reserve_exact(TRAILER_LEN);
    let sig = key.sign(&signed_message(&out));
    out.extend_from_slice(&key.public().0);
    out.extend_from_slice(&sig);
    out
}

/// The header (`magic`, version, body length) and the body.
fn frame(magic: &[u8; 8], body: &[u8], version: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len() + TRAILER_LEN);
    out.extend_from_slice(magic);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
    out
}

fn signed_message(signed: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGNING_CONTEXT.len() + signed.len());
    m.extend_from_slice(SIGNING_CONTEXT);
    m.extend_from_slice(signed);
    m
}

fn split(file: &[u8]) -> Result<(&[u8], PublicKey, [u8; 64]), Error> {
    if file.len() < HEADER_LEN {
        return Err(Error::TruncatedManifest("shorter than its header"));
    }
    if &file[..8] == UNSIGNED_MAGIC {
        return Err(Error::Unsigned);
    }
    if &file[..8] != MAGIC {
        return Err(Error::BadManifestMagic);
    }
    let version = u32::from_le_bytes(file[8..12].try_into().expect("4 bytes"));
    if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
        return Err(Error::UnsupportedFormat(version, FORMAT_VERSION));
    }
    let body_len = u32::from_le_bytes(file[12..16].try_into().expect("4 bytes")) as usize;
    let expected = HEADER_LEN + body_len + TRAILER_LEN;
    if file.len() < expected {
        return Err(Error::TruncatedManifest("shorter than its declared length"));
    }
    if file.len() > expected {
        return Err(Error::Inconsistent("bytes after the signature".into()));
    }
    let signed = &file[..HEADER_LEN + body_len];
    let signer = PublicKey(
        file[HEADER_LEN + body_len..HEADER_LEN + body_len + 32]
            .try_into()
            .expect("32 bytes"),
    );
    let sig: [u8; 64] = file[expected - 64..].try_into().expect("64 bytes");
    Ok((signed, signer, sig))
}

#[cfg(test)]
mod tests;
