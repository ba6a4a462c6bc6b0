//! Building a bundle: the sender's half of the format, without I/O.
//!
//! A [`BundleBuilder`] takes chunks (or whole objects, which it cuts into
//! chunks), stores each once, packs the stored bytes into volumes of a
//! bounded size, and at the end writes the manifest for a catalog delta and
//! signs it: [`BundleBuilder::finish`], or in two steps,
//! [`BundleBuilder::finish_unsigned`] then [`Unsigned::sign`] (which may run
//! elsewhere, from the unsigned manifest file alone: `ferry-out sign`). It never opens a file and never reads a clock: volumes go to a
//! [`VolumeSink`] the caller provides (files for `ferry-out export`,
//! [`MemoryVolumes`] for tests), and the creation and expiry times are
//! arguments.
//!
//! The order of calls decides the bytes: chunks are stored in the order they
//! are added, a volume is closed when the next chunk would take it over the
//! volume size (a volume always holds at least one chunk), and volume `i`
//! is named by [`crate::volume::file_name`]. The same calls give the same
//! bundle, byte for byte, which is what lets `ferry-out resend` promise
//! byte-identical copies and tests compare bundles.

use crate::catalog::{Catalog, Change, Changes, ChunkRef, Encoding, FileObject, SourceKind, Sums};
use crate::chunking::{ChunkParams, Chunker};
use crate::codec::{self, Codec};
use crate::id::{ChunkId, ManifestHash, StreamId};
use crate::keys::SecretKey;
use crate::limits::ReceiverLimits;
use crate::manifest::{ChunkEntry, Manifest, Totals, VolumeEntry};
use crate::volume::VolumeWriter;
use std::collections::{BTreeMap, HashSet};
use std::io::{self, Read, Write};

/// Where the volume files of a bundle go.
///
/// The builder calls [`VolumeSink::create`] for volume 0, 1, … in order,
/// writes through the writer it gets, and hands the writer back to
/// [`VolumeSink::close`] once the volume is complete (before creating the
/// next one). An error from either ends the build.
pub trait VolumeSink {
    /// The writer of one volume.
    type Writer: Write;
    /// Starts volume `index`.
    fn create(&mut self, index: u32) -> io::Result<Self::Writer>;
    /// Ends volume `index`: flush, and make it durable if the sink can.
    fn close(&mut self, index: u32, writer: Self::Writer) -> io::Result<()>;
}

/// Volumes kept in memory, by index.
#[derive(Debug, Default)]
pub struct MemoryVolumes {
    /// The complete volumes' bytes.
    pub volumes: Vec<Vec<u8>>,
}

impl VolumeSink for MemoryVolumes {
    type Writer = Vec<u8>;

    fn create(&mut self, _index: u32) -> io::Result<Vec<u8>> {
        Ok(Vec::new())
    }

    fn close(&mut self, index: u32, writer: Vec<u8>) -> io::Result<()> {
        debug_assert_eq!(index as usize, self.volumes.len());
        self.volumes.push(writer);
        Ok(())
    }
}

/// Where a bundle fits in its stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// The stream.
    pub stream: StreamId,
    /// The bundle's sequence number, from 1.
    pub sequence: u64,
    /// The manifest hash of bundle `sequence - 1` (`None` for bundle 1).
    pub previous: Option<ManifestHash>,
}

/// How chunks are stored.
#[derive(Clone, Copy, Debug)]
pub struct PackOptions {
    /// Largest volume file, in bytes (a single chunk larger than this still
    /// gets a volume of its own).
    pub volume_size: u64,
    /// zstd level.
    pub level: i32,
}

/// When a bundle was made, until when it is good, and by what.
#[derive(Clone, Debug)]
pub struct Stamp {
    /// Creation time, seconds since the Unix epoch.
    pub created: u64,
    /// Expiry time, seconds since the Unix epoch.
    pub expires: u64,
    /// Producer string, such as `ferry-out 0.1.0`.
    pub producer: String,
    /// Extension records (trust statements: `crate::trust::extension`).
    pub extensions: Vec<crate::manifest::Extension>,
}

/// Why a bundle could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The sink failed to create, write or close a volume.
    #[error("cannot write volume {index}: {source}")]
    Volume {
        /// The volume's index.
        index: u32,
        /// The sink's error.
        #[source]
        source: io::Error,
    },
    /// An object's content could not be read (the reader's error, as it is).
    #[error(transparent)]
    Read(io::Error),
    /// The same chunk was added twice.
    #[error("chunk {0} is added twice")]
    DuplicateChunk(ChunkId),
    /// The manifest built does not pass the checks a receiver makes
    /// (a limit of [`ReceiverLimits::default`], say); a bug or an object
    /// too large for any receiver.
    #[error("the manifest just built does not pass its own checks: {0}")]
    SelfCheck(#[source] crate::Error),
}

/// A finished bundle.
#[derive(Debug)]
pub struct Built<S> {
    /// The manifest body.
    pub manifest: Manifest,
    /// The signed manifest file.
    pub file: Vec<u8>,
    /// Its hash, the link the next bundle names.
    pub hash: ManifestHash,
    /// The sink, with every volume closed.
    pub sink: S,
}

/// A finished bundle whose manifest is not signed yet.
#[derive(Debug)]
pub struct Unsigned<S> {
    /// The manifest body, checked as a receiver would.
    pub manifest: Manifest,
    /// The unsigned manifest file ([`Manifest::to_unsigned`]).
    pub file: Vec<u8>,
    /// The sink, with every volume closed.
    pub sink: S,
}

impl<S> Unsigned<S> {
    /// Signs with `key`: the same bundle [`BundleBuilder::finish`] makes.
    pub fn sign(self, key: &SecretKey) -> Built<S> {
        let Unsigned {
            manifest,
            file,
            sink,
        } = self;
        // The unsigned file is not held beside the signed one.
        drop(file);
        let file = manifest.sign(key);
        Built {
            hash: ManifestHash::of(&file),
            manifest,
            file,
            sink,
        }
    }
}

/// Builds one bundle; see the module documentation.
pub struct BundleBuilder<S: VolumeSink> {
    position: Position,
    opts: PackOptions,
    sink: S,
    current: Option<(u32, VolumeWriter<S::Writer>)>,
    chunks: Vec<ChunkEntry>,
    /// The ids added (`None`: not kept, see
    /// [`BundleBuilder::without_id_set`]).
    carried: Option<HashSet<ChunkId>>,
    volumes: Vec<VolumeEntry>,
}

impl<S: VolumeSink> BundleBuilder<S> {
    /// A builder for the bundle at `position`, writing volumes to `sink`.
    pub fn new(position: Position, opts: PackOptions, sink: S) -> Self {
        BundleBuilder {
            position,
            opts,
            sink,
            current: None,
            chunks: Vec::new(),
            carried: Some(HashSet::new()),
            volumes: Vec::new(),
        }
    }

    /// The builder keeps no set of the ids added: a caller that adds each
    /// chunk once, and knows which it added (an export at a million chunks
    /// holds such a set already; a second one is some 70 MB). Adding an id
    /// twice is then not refused, and [`BundleBuilder::carries`] looks
    /// through the chunk table (for tests: slow on a large bundle). The
    /// bytes written are the same.
    pub fn without_id_set(mut self) -> Self {
        self.carried = None;
        self
    }

    /// Where the bundle fits in its stream.
    pub fn position(&self) -> Position {
        self.position
    }

    /// Whether chunk `id` has been added.
    pub fn carries(&self, id: &ChunkId) -> bool {
        match &self.carried {
            Some(set) => set.contains(id),
            None => self.chunks.iter().any(|e| e.id == *id),
        }
    }

    /// The chunks added so far, in order.
    pub fn chunks(&self) -> &[ChunkEntry] {
        &self.chunks
    }

    /// Stores chunk `id` (whose uncompressed bytes are `raw`) raw or as
    /// zstd, whichever is smaller, in the current volume.
    pub fn add_chunk(&mut self, id: ChunkId, raw: &[u8]) -> Result<(), BuildError> {
        let (codec, stored) = codec::encode(raw, self.opts.level);
        self.add_stored(id, raw.len() as u32, codec, &stored)
    }

    /// Stores bytes already in their stored form, as they are. The builder
    /// does not check that they decode to `id`: a test may store a lie.
    pub fn add_stored(
        &mut self,
        id: ChunkId,
        raw_len: u32,
        codec: Codec,
        stored: &[u8],
    ) -> Result<(), BuildError> {
        if let Some(set) = &mut self.carried {
            if !set.insert(id) {
                return Err(BuildError::DuplicateChunk(id));
            }
        }
        if let Some((_, w)) = &self.current {
            if !w.is_empty() && w.len() + stored.len() as u64 > self.opts.volume_size {
                self.close_volume()?;
            }
        }
        if self.current.is_none() {
            let index = self.volumes.len() as u32;
            let vol = |source| BuildError::Volume { index, source };
            let out = self.sink.create(index).map_err(vol)?;
            let p = self.position;
            let w = VolumeWriter::new(out, p.stream, p.sequence, index).map_err(vol)?;
            self.current = Some((index, w));
        }
        let (index, w) = self.current.as_mut().expect("just opened");
        let index = *index;
        let offset = w
            .append(stored)
            .map_err(|source| BuildError::Volume { index, source })?;
        self.chunks.push(ChunkEntry {
            id,
            raw_len,
            stored_len: stored.len() as u32,
            codec,
            volume: index,
            offset,
        });
        Ok(())
    }

    /// Cuts `content` into chunks with the default parameters, adds each
    /// chunk that is neither in `held` (the receiver has it) nor added
    /// already, and returns the object.
    pub fn add_file<R: Read>(
        &mut self,
        content: R,
        executable: bool,
        held: &HashSet<ChunkId>,
    ) -> Result<FileObject, BuildError> {
        cut_file(content, executable, |id, data| {
            if !held.contains(id) && !self.carries(id) {
                self.add_chunk(*id, &data)?;
            }
            Ok(())
        })
    }

    fn close_volume(&mut self) -> Result<(), BuildError> {
        if let Some((index, w)) = self.current.take() {
            let (out, entry) = w.finish();
            self.sink
                .close(index, out)
                .map_err(|source| BuildError::Volume { index, source })?;
            self.volumes.push(entry);
        }
        Ok(())
    }

    /// Closes the last volume and returns the chunk list, the volume list and
    /// the sink, for a caller that writes its own manifest (a test crafting
    /// a hostile one).
    pub fn into_parts(mut self) -> Result<(Vec<ChunkEntry>, Vec<VolumeEntry>, S), BuildError> {
        self.close_volume()?;
        Ok((self.chunks, self.volumes, self.sink))
    }

    /// Closes the last volume and writes the manifest of the delta from
    /// `previous` to `next` (the catalogs of bundles `sequence - 1` and
    /// `sequence`), unchecked and unsigned.
    pub fn manifest(
        self,
        previous: &Catalog,
        next: &Catalog,
        stamp: Stamp,
    ) -> Result<(Manifest, S), BuildError> {
        let sums = Sums::of(next.objects.values());
        self.manifest_of(next.sources.clone(), previous.diff(next), sums, stamp)
    }

    /// The manifest of the changes `list` to a catalog of `sources` and `sums`.
    fn manifest_of(
        self,
        sources: BTreeMap<String, SourceKind>,
        list: Vec<Change>,
        sums: Sums,
        stamp: Stamp,
    ) -> Result<(Manifest, S), BuildError> {
        let position = self.position;
        let (chunks, volumes, sink) = self.into_parts()?;
        let manifest = Manifest {
            stream: position.stream,
            sequence: position.sequence,
            previous: position.previous,
            created: stamp.created,
            expires: stamp.expires,
            chunking: ChunkParams::DEFAULT,
            sources,
            changes: list,
            totals: Totals::of_sums(sums, &chunks, &volumes),
            chunks,
            volumes,
            producer: stamp.producer,
            extensions: stamp.extensions,
        };
        Ok((manifest, sink))
    }

    /// [`BundleBuilder::finish_unsigned`] from the changes themselves (an
    /// export that found them as it scanned, not by comparing two whole
    /// catalogs), to a catalog of `sums` ([`crate::catalog::Catalog::objects_after`]).
    pub fn finish_unsigned_changes(
        self,
        changes: Changes,
        sums: Sums,
        stamp: Stamp,
    ) -> Result<Unsigned<S>, BuildError> {
        let sources = changes.sources.clone();
        let (manifest, sink) = self.manifest_of(sources, changes.into_list(), sums, stamp)?;
        Self::checked(manifest, sink)
    }

    /// Closes the last volume and returns the manifest of a change list
    /// written apart ([`crate::manifest::ManifestWriter`], which takes this
    /// head: every field but the changes) to a catalog of `sources` and
    /// `sums`, checked as a receiver with default limits would (no check
    /// reads the changes).
    pub fn finish_head(
        self,
        sources: BTreeMap<String, SourceKind>,
        sums: Sums,
        stamp: Stamp,
    ) -> Result<(Manifest, S), BuildError> {
        let (head, sink) = self.manifest_of(sources, Vec::new(), sums, stamp)?;
        head.check(&ReceiverLimits::default())
            .map_err(BuildError::SelfCheck)?;
        Ok((head, sink))
    }

    /// The unsigned file of `manifest`, once checked as a receiver with
    /// default limits would.
    fn checked(manifest: Manifest, sink: S) -> Result<Unsigned<S>, BuildError> {
        manifest
            .check(&ReceiverLimits::default())
            .map_err(BuildError::SelfCheck)?;
        Ok(Unsigned {
            file: manifest.to_unsigned(),
            manifest,
            sink,
        })
    }

    /// [`BundleBuilder::manifest`], then checks the manifest as a receiver
    /// with default limits would; the unsigned manifest file, for
    /// [`Unsigned::sign`] now or `ferry-out sign` later.
    pub fn finish_unsigned(
        self,
        previous: &Catalog,
        next: &Catalog,
        stamp: Stamp,
    ) -> Result<Unsigned<S>, BuildError> {
        let (manifest, sink) = self.manifest(previous, next, stamp)?;
        Self::checked(manifest, sink)
    }

    /// [`BundleBuilder::finish_unsigned`], signed with `key`.
    pub fn finish(
        self,
        previous: &Catalog,
        next: &Catalog,
        stamp: Stamp,
        key: &SecretKey,
    ) -> Result<Built<S>, BuildError> {
        Ok(self.finish_unsigned(previous, next, stamp)?.sign(key))
    }
}

/// Cuts `content` into chunks with the default parameters, hands each chunk
/// (all of them, shared ones too, in order) to `on_chunk`, and returns the
/// object they make. The one place an object's chunk list is computed.
pub fn cut_file<R: Read, E: From<BuildError>>(
    content: R,
    executable: bool,
    on_chunk: impl FnMut(&ChunkId, Vec<u8>) -> Result<(), E>,
) -> Result<FileObject, E> {
    let (refs, size, sha256) = cut_chunks(content, on_chunk)?;
    Ok(FileObject {
        size,
        sha256,
        executable,
        encoding: Encoding::Chunks(refs),
    })
}

/// [`cut_file`]'s cutting: the chunk references, the length and the SHA-256
/// of `content` (also for the pieces of a `Rebuilt` object: a recipe, a patch).
pub fn cut_chunks<R: Read, E: From<BuildError>>(
    content: R,
    on_chunk: impl FnMut(&ChunkId, Vec<u8>) -> Result<(), E>,
) -> Result<(Vec<ChunkRef>, u64, crate::id::Sha256), E> {
    let mut chunker = Chunker::new(content, ChunkParams::DEFAULT);
    let refs = cut_all(&mut chunker, on_chunk)?;
    let (size, sha256) = chunker.finish();
    Ok((refs, size, sha256))
}

/// [`cut_chunks`] without the SHA-256 (the caller computes it apart, on
/// another thread): the chunk references and the length of `content`.
pub fn cut_chunks_undigested<R: Read, E: From<BuildError>>(
    content: R,
    on_chunk: impl FnMut(&ChunkId, Vec<u8>) -> Result<(), E>,
) -> Result<(Vec<ChunkRef>, u64), E> {
    let mut chunker = Chunker::without_digest(content, ChunkParams::DEFAULT);
    let refs = cut_all(&mut chunker, on_chunk)?;
    Ok((refs, chunker.size()))
}

/// Every chunk of `chunker` handed to `on_chunk`, in order; their references.
fn cut_all<R: Read, E: From<BuildError>>(
    chunker: &mut Chunker<R>,
    mut on_chunk: impl FnMut(&ChunkId, Vec<u8>) -> Result<(), E>,
) -> Result<Vec<ChunkRef>, E> {
    let mut refs = Vec::new();
    while let Some(c) = chunker.next_chunk().map_err(BuildError::Read)? {
        refs.push(ChunkRef {
            id: c.id,
            len: c.data.len() as u32,
        });
        on_chunk(&c.id, c.data)?;
    }
    // A change list holds every object's refs (a first export's, the whole
    // catalog's): a vector grown by one push has room for 4 (144 bytes for
    // the usual one chunk).
    refs.shrink_to_fit();
    Ok(refs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Object;
    use crate::path::ObjectKey;
    use crate::test_util::noise;
    use crate::volume;

    fn position() -> Position {
        Position {
            stream: StreamId([7; 16]),
            sequence: 1,
            previous: None,
        }
    }

    fn stamp() -> Stamp {
        Stamp {
            created: 1_700_000_000,
            expires: 1_700_086_400,
            producer: "builder test".into(),
            extensions: vec![],
        }
    }

    fn key() -> SecretKey {
        SecretKey::from_seed([3; 32])
    }

    /// Builds a bundle of `files` (path, content) into a catalog.
    fn build(files: &[(&str, &[u8])], volume_size: u64) -> Built<MemoryVolumes> {
        build_with(files, volume_size, true)
    }

    /// [`build`], the builder keeping its set of ids or not.
    fn build_with(files: &[(&str, &[u8])], volume_size: u64, set: bool) -> Built<MemoryVolumes> {
        let opts = PackOptions {
            volume_size,
            level: 3,
        };
        let mut b = BundleBuilder::new(position(), opts, MemoryVolumes::default());
        if !set {
            b = b.without_id_set();
        }
        let mut next = Catalog::default();
        next.sources
            .insert("src".into(), crate::catalog::SourceKind::Files);
        for (path, data) in files {
            let f = b.add_file(*data, false, &HashSet::new()).unwrap();
            let key = ObjectKey {
                source: "src".into(),
                path: path.to_string(),
            };
            next.objects.insert(key, Object::File(f));
        }
        b.finish(&Catalog::default(), &next, stamp(), &key())
            .unwrap()
    }

    #[test]
    fn a_bundle_opens_and_every_chunk_is_where_the_manifest_says() {
        let big = noise(700_000, 1);
        let built = build(&[("a", b"hello"), ("big", &big)], 300_000);
        let v = Manifest::open(&built.file, &[key().public()], &ReceiverLimits::default()).unwrap();
        assert_eq!(v.hash, built.hash);
        let m = v.manifest().unwrap();
        assert!(m.volumes.len() >= 2, "{} volumes", m.volumes.len());
        assert_eq!(m.volumes.len(), built.sink.volumes.len());
        for (i, (bytes, entry)) in built.sink.volumes.iter().zip(&m.volumes).enumerate() {
            volume::verify(&bytes[..], i as u32, entry).unwrap();
            assert!(
                entry.size <= 300_000
                    || m.chunks.iter().filter(|c| c.volume == i as u32).count() == 1
            );
        }
        for c in &m.chunks {
            let vol = &built.sink.volumes[c.volume as usize];
            let stored = &vol[c.offset as usize..c.offset as usize + c.stored_len as usize];
            codec::decode(&c.id, c.codec, stored, c.raw_len).unwrap();
        }
        let next = Catalog::default().apply(&m.sources, &m.changes).unwrap();
        m.check_result(&next, &ReceiverLimits::default()).unwrap();
        assert_eq!(m.totals.objects, 2);
        assert_eq!(m.totals.catalog_bytes, 700_005);
    }

    #[test]
    fn the_same_calls_give_the_same_bytes() {
        let data = noise(200_000, 9);
        let a = build(&[("x", &data), ("y", b"why")], 100_000);
        let b = build(&[("x", &data), ("y", b"why")], 100_000);
        assert_eq!(a.file, b.file);
        assert_eq!(a.sink.volumes, b.sink.volumes);
        let c = build(&[("x", &data), ("y", b"whY")], 100_000);
        assert_ne!(a.file, c.file);
        // Without its set of ids (a chunk shared by "x" and "z" found in
        // the chunk table instead), the same bytes.
        let files: [(&str, &[u8]); 3] = [("x", &data), ("y", b"why"), ("z", &data[..150_000])];
        let with = build_with(&files, 100_000, true);
        let without = build_with(&files, 100_000, false);
        assert_eq!(with.file, without.file);
        assert_eq!(with.sink.volumes, without.sink.volumes);
    }

    #[test]
    fn a_builder_without_its_set_of_ids_answers_carries_from_its_table() {
        let opts = PackOptions {
            volume_size: 1 << 20,
            level: 3,
        };
        let mut with = BundleBuilder::new(position(), opts, MemoryVolumes::default());
        let mut without =
            BundleBuilder::new(position(), opts, MemoryVolumes::default()).without_id_set();
        let (x, y) = (ChunkId::of(b"x"), ChunkId::of(b"y"));
        for b in [&mut with, &mut without] {
            assert!(!b.carries(&x));
            b.add_chunk(x, b"x").unwrap();
            assert!(b.carries(&x) && !b.carries(&y));
        }
        // Its caller adds each chunk once: a second is not refused.
        assert!(with.add_chunk(x, b"x").is_err());
        without.add_chunk(x, b"x").unwrap();
        assert_eq!(without.chunks().len(), 2);
    }

    #[test]
    fn shared_chunks_are_stored_once_and_held_ones_not_at_all() {
        let data = noise(300_000, 5);
        let built = build(&[("one", &data), ("two", &data)], u64::MAX);
        let refs = match &built.manifest.changes[0] {
            crate::catalog::Change::Put {
                object: Object::File(f),
                ..
            } => f.chunks().count(),
            other => panic!("{other:?}"),
        };
        assert_eq!(built.manifest.chunks.len(), refs);
        assert_eq!(built.sink.volumes.len(), 1);

        let opts = PackOptions {
            volume_size: u64::MAX,
            level: 3,
        };
        let held: HashSet<ChunkId> = built.manifest.chunks.iter().map(|c| c.id).collect();
        let mut b = BundleBuilder::new(position(), opts, MemoryVolumes::default());
        b.add_file(&data[..], false, &held).unwrap();
        let (chunks, volumes, sink) = b.into_parts().unwrap();
        assert!(chunks.is_empty() && volumes.is_empty() && sink.volumes.is_empty());
    }

    #[test]
    fn built_unsigned_then_signed_is_the_bundle_finish_makes() {
        let data = noise(150_000, 4);
        let signed = build(&[("x", &data)], 1 << 20);
        let opts = PackOptions {
            volume_size: 1 << 20,
            level: 3,
        };
        let mut b = BundleBuilder::new(position(), opts, MemoryVolumes::default());
        let f = b.add_file(&data[..], false, &HashSet::new()).unwrap();
        let mut next = Catalog::default();
        next.sources
            .insert("src".into(), crate::catalog::SourceKind::Files);
        let key_x = ObjectKey {
            source: "src".into(),
            path: "x".into(),
        };
        next.objects.insert(key_x, Object::File(f));
        let unsigned = b
            .finish_unsigned(&Catalog::default(), &next, stamp())
            .unwrap();
        // The unsigned file is refused where a manifest is expected ...
        let e = Manifest::open(
            &unsigned.file,
            &[key().public()],
            &ReceiverLimits::default(),
        );
        assert!(matches!(e, Err(crate::Error::Unsigned)), "{e:?}");
        // ... parses as what it is, and signs into the same bytes.
        let parsed =
            crate::manifest::UnsignedManifest::parse(&unsigned.file, &ReceiverLimits::default())
                .unwrap();
        assert_eq!(parsed.manifest.manifest().unwrap(), &signed.manifest);
        assert_eq!(parsed.sign(&key()).unwrap(), signed.file);
        let (stripped, signer) = crate::manifest::strip_signature(&signed.file).unwrap();
        assert_eq!((stripped, signer), (unsigned.file.clone(), key().public()));
        let built = unsigned.sign(&key());
        assert_eq!((built.file, built.hash), (signed.file, signed.hash));
        assert_eq!(built.sink.volumes, signed.sink.volumes);
    }

    #[test]
    fn a_chunk_added_twice_and_a_failing_sink_are_errors() {
        let opts = PackOptions {
            volume_size: 1 << 20,
            level: 3,
        };
        let mut b = BundleBuilder::new(position(), opts, MemoryVolumes::default());
        let id = ChunkId::of(b"x");
        b.add_chunk(id, b"x").unwrap();
        assert!(matches!(
            b.add_chunk(id, b"x"),
            Err(BuildError::DuplicateChunk(d)) if d == id
        ));

        #[derive(Debug)]
        struct Full;
        impl VolumeSink for Full {
            type Writer = Vec<u8>;
            fn create(&mut self, _: u32) -> io::Result<Vec<u8>> {
                Ok(Vec::new())
            }
            fn close(&mut self, _: u32, _: Vec<u8>) -> io::Result<()> {
                Err(io::Error::other("disk full"))
            }
        }
        let mut b = BundleBuilder::new(position(), opts, Full);
        b.add_chunk(id, b"x").unwrap();
        let e = b.into_parts().unwrap_err();
        assert!(matches!(e, BuildError::Volume { index: 0, .. }), "{e}");
    }
}
