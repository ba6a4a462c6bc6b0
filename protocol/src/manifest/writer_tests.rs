use super::*;
use crate::catalog::{Change, ChunkRef, Encoding, FileObject, Object};
use crate::limits::ReceiverLimits;
use crate::manifest::compact::tests::{first_export, varied};
use crate::manifest::{ChunkEntry, Totals, VolumeEntry};
use crate::path::ObjectKey;

/// `m`'s changes pushed one at a time into a writer over `spill`, finished
/// with the rest of `m`.
fn stream<S: Spill>(m: &Manifest, spill: S) -> Result<Written, WriteError> {
    let mut w = ManifestWriter::new(spill)?;
    for c in &m.changes {
        w.push(c)?;
    }
    let head = Manifest {
        changes: vec![],
        ..m.clone()
    };
    w.finish(&head)
}

/// The writer's file is [`Manifest::to_unsigned`]'s, byte for byte, in the
/// version [`Manifest::version`] picks.
fn same_bytes(m: &Manifest, what: &str) -> Written {
    let w = stream(m, MemorySpill).unwrap();
    assert_eq!(w.version, m.version(), "{what}: version");
    assert!(w.file == m.to_unsigned(), "{what}: the bytes differ");
    w
}

fn key(p: &str) -> ObjectKey {
    ObjectKey {
        source: "src".into(),
        path: p.into(),
    }
}

/// `n` files of `first_export` whose every chunk ref is followed by a held
/// chunk (no entry is a whole object: version 3).
fn two_chunk_files(n: u64) -> Manifest {
    let mut m = first_export(n);
    for c in &mut m.changes {
        if let Change::Put {
            object:
                Object::File(FileObject {
                    encoding: Encoding::Chunks(refs),
                    size,
                    ..
                }),
            ..
        } = c
        {
            refs.push(ChunkRef {
                id: ChunkId([7; 32]),
                len: 1000,
            });
            *size += 1000;
        }
    }
    m
}

#[test]
fn the_streamed_manifest_is_the_one_in_memory_byte_for_byte() {
    // Version 4: every chunk the whole of its object, columns of several
    // zstd blocks.
    let m = first_export(20_000);
    assert_eq!(same_bytes(&m, "first export").version, 4);
    // Version 3: no entry is a whole object.
    let m = two_chunk_files(3_000);
    assert_eq!(same_bytes(&m, "two chunks a file").version, 3);
    // Refs that are not the next entry (the index looked up), removals.
    let mut m = first_export(5_000);
    m.changes.reverse();
    m.changes.extend((0..500).map(|i| Change::Remove {
        key: key(&format!("gone/{i:05}")),
    }));
    same_bytes(&m, "refs out of order");
    // Every kind of change (links, a patch, a held chunk, a lie about a
    // length) among many files: version 2 objects made compact.
    let mut m = varied();
    let extra = first_export(1_100);
    let base = m.chunks.len();
    m.chunks.extend(extra.chunks.iter().map(|c| ChunkEntry {
        volume: 1,
        offset: c.offset + 600,
        ..*c
    }));
    m.changes.splice(2..2, extra.changes);
    assert!(m.chunks.len() > base);
    same_bytes(&m, "varied and many");
}

#[test]
fn signed_it_is_the_file_sign_writes_and_opens_to_the_same_manifest() {
    let key = SecretKey::from_seed([5; 32]);
    let mut m = first_export(3_000);
    // Volumes and totals that agree with the chunks, as a receiver checks.
    let end = m
        .chunks
        .iter()
        .map(|c| c.offset + c.stored_len as u64)
        .max();
    m.volumes = vec![VolumeEntry {
        size: end.unwrap(),
        blake3: [1; 32],
    }];
    let objects = m.changes.iter().filter_map(|c| match c {
        Change::Put { object, .. } => Some(object),
        Change::Remove { .. } => None,
    });
    m.totals = Totals::of_sums(crate::catalog::Sums::of(objects), &m.chunks, &m.volumes);
    let signed = stream(&m, MemorySpill).unwrap().sign(&key);
    assert!(signed == m.sign(&key), "the signed bytes differ");
    let limits = ReceiverLimits::default();
    let mut opened = Manifest::open(&signed, &[key.public()], &limits).unwrap();
    let ids: Vec<ChunkId> = opened
        .to_name()
        .iter()
        .map(|t| m.chunks[t.index as usize].id)
        .collect();
    opened.name(&ids).unwrap();
    assert_eq!(opened.manifest().unwrap(), &m);
    // Unsigned, `ferry-out sign` takes it as the writer's form.
    let written = stream(&m, MemorySpill).unwrap();
    let mut u = crate::manifest::UnsignedManifest::parse(&written.file, &limits).unwrap();
    u.name(&ids).unwrap();
    assert!(u.sign(&key).unwrap() == signed);
}

#[test]
fn a_small_manifest_is_left_to_the_writer_in_memory_and_a_bad_head_refused() {
    let m = varied();
    assert!(m.version() < 3);
    assert!(!ManifestWriter::<MemorySpill>::streams(
        m.changes.len(),
        m.chunks.len()
    ));
    assert!(matches!(
        stream(&m, MemorySpill),
        Err(WriteError::TooFew(n)) if n == (m.changes.len() + m.chunks.len()) as u64
    ));
    let w = ManifestWriter::new(MemorySpill).unwrap();
    assert!(matches!(
        w.finish(&m),
        Err(WriteError::HeadWithChanges(n)) if n == m.changes.len()
    ));
}

/// A spill whose columns fail after `room` bytes in all.
struct Full {
    room: std::rc::Rc<std::cell::Cell<usize>>,
}

struct FullWriter(std::rc::Rc<std::cell::Cell<usize>>, Vec<u8>);

impl Write for FullWriter {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        if b.len() > self.0.get() {
            return Err(io::Error::other("no space left"));
        }
        self.0.set(self.0.get() - b.len());
        self.1.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Spill for Full {
    type Writer = FullWriter;
    type Reader = io::Cursor<Vec<u8>>;
    fn create(&mut self) -> io::Result<FullWriter> {
        Ok(FullWriter(self.room.clone(), Vec::new()))
    }
    fn read_back(&mut self, w: FullWriter) -> io::Result<io::Cursor<Vec<u8>>> {
        Ok(io::Cursor::new(w.1))
    }
}

#[test]
fn a_failing_spill_is_an_error_naming_it() {
    let m = first_export(2_000);
    for room in [100, 100_000] {
        let full = Full {
            room: std::rc::Rc::new(std::cell::Cell::new(room)),
        };
        let e = stream(&m, full).unwrap_err();
        assert!(matches!(e, WriteError::Spill(_)), "{e}");
        assert!(e.to_string().contains("no space left"), "{e}");
    }
}
