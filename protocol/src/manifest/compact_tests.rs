use super::*;
use crate::catalog::{Base, BaseForm, Expanded, Rebuilt};
use crate::keys::SecretKey;
use crate::limits::ReceiverLimits;
use crate::manifest::{sign_body, Name, COMPACT_FROM};

fn key(p: &str) -> ObjectKey {
    ObjectKey {
        source: "src".into(),
        path: p.into(),
    }
}

/// A deterministic 32-byte value.
fn h(i: u64, salt: u8) -> [u8; 32] {
    *blake3::hash(&[&i.to_le_bytes()[..], &[salt]].concat()).as_bytes()
}

fn chunk(
    i: u64,
    raw_len: u32,
    codec: Codec,
    stored_len: u32,
    volume: u32,
    offset: u64,
) -> ChunkEntry {
    ChunkEntry {
        id: ChunkId(h(i, 1)),
        raw_len,
        stored_len,
        codec,
        volume,
        offset,
    }
}

fn file(size: u64, executable: bool, refs: Vec<ChunkRef>) -> Object {
    Object::File(FileObject {
        size,
        sha256: Sha256(h(size, 2)),
        executable,
        encoding: Encoding::Chunks(refs),
    })
}

/// A manifest with every kind of change and chunk placement.
pub(in crate::manifest) fn varied() -> Manifest {
    let chunks = vec![
        chunk(0, 100, Codec::Raw, 100, 0, 36),
        chunk(1, 5000, Codec::Zstd, 700, 0, 136),
        chunk(2, 70_000, Codec::Zstd, 9, 0, 836),
        chunk(3, 42, Codec::Raw, 42, 1, 36),
        // Not back to back, and back to an earlier volume.
        chunk(4, 10, Codec::Raw, 10, 1, 500),
        chunk(5, 10, Codec::Zstd, 3, 0, 845),
    ];
    let r = |c: &ChunkEntry| ChunkRef {
        id: c.id,
        len: c.raw_len,
    };
    let held = ChunkRef {
        id: ChunkId(h(99, 1)),
        len: 65_536,
    };
    let patch = Object::File(FileObject {
        size: 10,
        sha256: Sha256([5; 32]),
        executable: false,
        encoding: Encoding::Rebuilt(Box::new(Rebuilt {
            recipe: vec![],
            expanded_len: 10,
            expanded_blake3: [6; 32],
            expanded: Expanded::Patch {
                base: Base {
                    key: key("old"),
                    sha256: Sha256([7; 32]),
                    form: BaseForm::Expanded { version: 1 },
                    len: 9,
                    blake3: [8; 32],
                },
                patch: vec![r(&chunks[3])],
            },
        })),
    });
    let put = |k: &str, object: Object| Change::Put {
        key: key(k),
        object,
    };
    let changes = vec![
        put("a/one", file(100, false, vec![r(&chunks[0])])),
        put(
            "a/two",
            file(75_000, true, vec![r(&chunks[1]), r(&chunks[2])]),
        ),
        // A held chunk, a repeated one, a chunk of the table out of order.
        put(
            "a/three",
            file(
                65_546,
                false,
                vec![held, r(&chunks[4]), r(&chunks[0]), r(&chunks[5])],
            ),
        ),
        // A length that disagrees with the table: kept as it is (a reader refuses it later).
        put(
            "b/lie",
            file(
                7,
                false,
                vec![ChunkRef {
                    id: chunks[0].id,
                    len: 7,
                }],
            ),
        ),
        // A size that is not the sum of its chunks, the empty file.
        put("b/size", file(1 << 40, false, vec![r(&chunks[0])])),
        put("b/empty", file(0, false, vec![])),
        put(
            "c/link",
            Object::Symlink {
                target: "../a/one".into(),
            },
        ),
        put("new", patch),
        Change::Remove { key: key("gone") },
        Change::Remove {
            key: ObjectKey {
                source: "dropped".into(),
                path: "x/ü".into(),
            },
        },
    ];
    Manifest {
        stream: StreamId([1; 16]),
        sequence: 5,
        previous: Some(ManifestHash([9; 32])),
        created: 1_700_000_000,
        expires: 1_800_000_000,
        chunking: ChunkParams::DEFAULT,
        sources: [("src".to_string(), SourceKind::Files)]
            .into_iter()
            .collect(),
        changes,
        chunks,
        volumes: vec![
            VolumeEntry {
                size: 900,
                blake3: [3; 32],
            },
            VolumeEntry {
                size: 600,
                blake3: [4; 32],
            },
        ],
        totals: Totals::default(),
        producer: "compact test".into(),
        extensions: vec![Extension {
            kind: 3,
            critical: false,
            data: vec![1, 2, 3],
        }],
    }
}

#[test]
fn every_change_and_chunk_round_trips() {
    let m = varied();
    for version in [3, 4] {
        assert_eq!(round_trip(&m, version), m, "version {version}");
    }
    let empty = Manifest {
        changes: vec![],
        chunks: vec![],
        ..m
    };
    assert_eq!(round_trip(&empty, 3), empty);
    assert_eq!(round_trip(&empty, 4), empty);
}

/// `m` encoded in `version` and decoded; the chunks without ids (version 4)
/// named with the ids `m` gives them (a reader computes them from bytes).
fn round_trip(m: &Manifest, version: u32) -> Manifest {
    let mut d = decode(&encode(m, version), version).unwrap();
    let ids: Vec<ChunkId> = d
        .to_name()
        .iter()
        .map(|t| m.chunks[t.index as usize].id)
        .collect();
    d.name(&ids).unwrap();
    d.into_manifest().unwrap()
}

/// `n` one-chunk objects at paths shaped like a mirror's, each chunk carried
/// back to back in volumes of 1 GiB, as a first export makes them.
pub(in crate::manifest) fn first_export(n: u64) -> Manifest {
    let mut m = varied();
    m.changes.clear();
    m.chunks.clear();
    m.volumes.clear();
    let (mut volume, mut offset) = (0u32, 36u64);
    for i in 0..n {
        let size = 60 + (i * 7919) % 4000;
        let stored = (size / 3) as u32;
        if offset + stored as u64 > 1 << 30 {
            volume += 1;
            offset = 36;
        }
        let c = chunk(i, size as u32, Codec::Zstd, stored, volume, offset);
        offset += stored as u64;
        let path = format!("small/d{:04}/f{i:07}.txt", i / 1000);
        let r = ChunkRef {
            id: c.id,
            len: c.raw_len,
        };
        m.chunks.push(c);
        m.changes.push(Change::Put {
            key: key(&path),
            object: Object::File(FileObject {
                size,
                sha256: Sha256(h(i, 2)),
                executable: false,
                encoding: Encoding::Chunks(vec![r]),
            }),
        });
    }
    m
}

#[test]
fn a_first_export_costs_about_two_digests_an_object() {
    let n = 20_000;
    let m = first_export(n);
    assert_eq!(m.version(), 4);
    let v1 = postcard::to_stdvec(&m).unwrap().len() as f64 / n as f64;
    let v3 = encode(&m, 3).len() as f64 / n as f64;
    let v4 = encode(&m, 4).len() as f64 / n as f64;
    println!(
        "manifest bytes an object, {n} one-chunk objects: version 1 {v1:.1}, version 3 {v3:.1}, version 4 {v4:.1}"
    );
    // The SHA-256 and the chunk id (64 bytes) do not compress; the rest
    // almost vanishes. Version 4 leaves the chunk id out.
    assert!(v4 < 40.0, "{v4:.1} bytes an object");
    assert!(v3 < 70.0, "{v3:.1} bytes an object");
    assert!(v1 > 120.0, "{v1:.1} bytes an object");
}

#[test]
fn every_version_opens_to_the_same_manifest() {
    let key = SecretKey::from_seed([3; 32]);
    let lim = ReceiverLimits::default();
    // Without the Rebuilt object, the manifest fits every version.
    let mut m = varied();
    m.changes
        .retain(|c| !matches!(c, Change::Put { key, .. } if key.path == "new"));
    for version in 1..=3 {
        let file = m.sign_as(version, &key);
        assert_eq!(u32::from_le_bytes(file[8..12].try_into().unwrap()), version);
        let (_, peeked) = crate::manifest::peek_unverified(&file).unwrap();
        assert_eq!(peeked.manifest().unwrap(), &m, "version {version}");
        // `open` also checks the manifest (the totals of `varied` are not
        // true, so a reader's later checks refuse it; decoding is what counts).
        let e = Manifest::open(&file, &[key.public()], &lim);
        assert!(
            !matches!(e, Err(Error::ManifestDecode(_))),
            "version {version}: {e:?}"
        );
    }
    // A large manifest is written as version 3 and opens.
    let big = first_export(COMPACT_FROM as u64);
    let mut big = Manifest {
        volumes: vec![VolumeEntry {
            size: big
                .chunks
                .last()
                .map_or(36, |c| c.offset + c.stored_len as u64),
            blake3: [0; 32],
        }],
        ..big
    };
    big.totals = Totals {
        max_chunk: big.chunks.iter().map(|c| c.raw_len).max().unwrap(),
        chunk_raw_bytes: big.chunks.iter().map(|c| c.raw_len as u64).sum(),
        volume_bytes: big.volumes[0].size,
        ..Totals::default()
    };
    // Its chunks are the whole of their objects: version 4, without ids.
    let file = big.sign(&key);
    assert_eq!(u32::from_le_bytes(file[8..12].try_into().unwrap()), 4);
    let mut opened = Manifest::open(&file, &[key.public()], &lim).unwrap();
    assert!(
        opened.manifest().is_err(),
        "ids are not known before naming"
    );
    assert_eq!(opened.head().sequence, big.sequence);
    let ids: Vec<ChunkId> = opened
        .to_name()
        .iter()
        .map(|t| big.chunks[t.index as usize].id)
        .collect();
    assert_eq!(ids.len(), big.chunks.len());
    opened.name(&ids).unwrap();
    assert_eq!(opened.manifest().unwrap(), &big);
    // In version 3 it opens with every id at once.
    let v3 = big.sign_as(3, &key);
    assert_eq!(
        Manifest::open(&v3, &[key.public()], &lim)
            .unwrap()
            .manifest()
            .unwrap(),
        &big
    );
    let unsigned = big.to_unsigned();
    let mut u = crate::manifest::UnsignedManifest::parse(&unsigned, &lim).unwrap();
    assert!(
        u.sign(&key).is_err(),
        "not signed before its form is checked"
    );
    u.name(&ids).unwrap();
    assert_eq!(u.sign(&key).unwrap(), file);
    // The same manifest in version 2 is not the form the writer writes.
    let mut as_v2 = unsigned[..16].to_vec();
    as_v2[8..12].copy_from_slice(&2u32.to_le_bytes());
    let body = big.body(2);
    as_v2[12..16].copy_from_slice(&(body.len() as u32).to_le_bytes());
    as_v2.extend_from_slice(&body);
    assert!(matches!(
        crate::manifest::UnsignedManifest::parse(&as_v2, &lim),
        Err(Error::Inconsistent(_))
    ));
}

#[test]
fn a_flipped_byte_of_a_version_3_file_is_caught() {
    let key = SecretKey::from_seed([3; 32]);
    let file = varied().sign_as(3, &key);
    let lim = ReceiverLimits::default();
    // The file opens as far as its signature (its totals are not true, so a
    // later check refuses it); a flipped byte past the header fails there,
    // or at the signer's key when it falls in it.
    let untouched = Manifest::open(&file, &[key.public()], &lim);
    assert!(
        !matches!(untouched, Err(Error::BadSignature)),
        "{untouched:?}"
    );
    for i in (16..file.len()).step_by(3) {
        let mut f = file.clone();
        f[i] ^= 0x10;
        let e = Manifest::open(&f, &[key.public()], &lim);
        assert!(
            matches!(e, Err(Error::BadSignature | Error::UntrustedKey(_))),
            "flip at byte {i}: {e:?}"
        );
    }
    // Signed again after the flip, a body byte changed never decodes to the
    // manifest it was made from: every byte of the columns is read. The one
    // exception is 0x10 of the zstd frame header descriptor, the "unused
    // bit" RFC 8878 §3.1.1.1.1 tells decoders not to interpret.
    let body = encode(&varied(), 3);
    let (_, frame) = postcard::take_from_bytes::<Head>(&body).unwrap();
    let descriptor = body.len() - frame.len() + 4;
    for i in (0..body.len()).filter(|&i| i != descriptor) {
        let mut b = body.clone();
        b[i] ^= 0x10;
        let decoded = crate::manifest::peek_unverified(&sign_body(&b, 3, &key));
        assert!(
            !matches!(decoded, Ok((_, ref m)) if m.manifest().ok() == Some(&varied())),
            "flip at body byte {i} went unnoticed"
        );
    }
}

/// Signs `body` (a version-3 body a test made by hand) with the trusted key.
/// Opened keeping its columns too, it gives the same error or the same
/// changes.
fn open_body(body: &[u8]) -> Result<VerifiedManifest, Error> {
    let key = SecretKey::from_seed([3; 32]);
    let file = sign_body(body, 3, &key);
    let limits = ReceiverLimits::default();
    let opened = Manifest::open(&file, &[key.public()], &limits);
    let kept = Manifest::open_keeping_columns(&file, &[key.public()], &limits);
    match (&opened, kept) {
        (Ok(o), Ok(mut k)) => {
            assert!(k.has_columns());
            assert_eq!(
                k.body.take_changes().unwrap(),
                o.manifest().unwrap().changes
            );
        }
        (Err(o), Err(k)) => assert_eq!(o.to_string(), k.to_string()),
        (o, k) => panic!("open gave {o:?}, kept as columns {k:?}"),
    }
    opened
}

use super::super::VerifiedManifest;

/// `varied()`'s body with its columns changed by `edit`.
fn body_with(edit: impl FnOnce(&mut Vec<Vec<u8>>)) -> Vec<u8> {
    let m = varied();
    let body = encode(&m, 3);
    let (head, frame) = postcard::take_from_bytes::<Head>(&body).unwrap();
    let columns = zstd::bulk::decompress(frame, head.columns_len as usize).unwrap();
    let mut c = Cursor {
        name: "t",
        bytes: &columns,
    };
    let mut cols: Vec<Vec<u8>> = (0..13)
        .map(|_| {
            let n = c.varint().unwrap() as usize;
            c.take(n).unwrap().to_vec()
        })
        .collect();
    edit(&mut cols);
    let out = join_columns(cols.iter().map(Vec::as_slice));
    let head = HeadRef::of(&m, out.len() as u64);
    let mut body = postcard::to_stdvec(&head).unwrap();
    body.extend_from_slice(&zstd::bulk::compress(&out, 3).unwrap());
    body
}

#[test]
fn hostile_columns_are_decode_errors() {
    let decode_error = |body: Vec<u8>| matches!(open_body(&body), Err(Error::ManifestDecode(_)));
    // Sanity: the body rebuilt unchanged is not a decode error.
    assert!(!decode_error(body_with(|_| {})));
    // A reference past the chunk table.
    assert!(decode_error(body_with(|c| c[6][0] = 0x7e)));
    // An unknown change kind.
    assert!(decode_error(body_with(|c| c[0][0] = 9)));
    // A column with a byte left over, and one cut short.
    assert!(decode_error(body_with(|c| c[3].push(0))));
    assert!(decode_error(body_with(|c| {
        c[4].pop();
    })));
    // Chunk ids that are not whole.
    assert!(decode_error(body_with(|c| c[9].push(1))));
    // A volume index past i64 (volume 1, then a step of i64::MAX): refused,
    // not an overflow.
    assert!(decode_error(body_with(|c| {
        let mut places = Vec::new();
        for step in [1, 0, i64::MAX, 0] {
            put_varint(&mut places, zigzag(step));
        }
        c[12] = places;
    })));
    // A key sharing more than the key before it has.
    assert!(decode_error(body_with(|c| c[1][0] = 100)));
    // Columns longer than the head declares; a frame cut short; a bomb.
    let mut body = body_with(|_| {});
    let good = body.clone();
    body.truncate(body.len() - 4);
    assert!(decode_error(body));
    let m = varied();
    let huge = vec![0u8; 10 << 20];
    let mut bomb = postcard::to_stdvec(&HeadRef::of(&m, huge.len() as u64)).unwrap();
    bomb.extend_from_slice(&zstd::bulk::compress(&huge, 19).unwrap());
    assert!(decode_error(bomb));
    assert!(!decode_error(good));
}

/// `m`'s version-4 columns changed by `edit`, decoded as version 4.
fn decode_v4_with(m: &Manifest, edit: impl FnOnce(&mut Vec<Vec<u8>>)) -> Result<Decoded, Error> {
    let body = encode(m, 4);
    let (head, frame) = postcard::take_from_bytes::<Head>(&body).unwrap();
    let columns = zstd::bulk::decompress(frame, head.columns_len as usize).unwrap();
    let mut c = Cursor {
        name: "t",
        bytes: &columns,
    };
    let mut cols: Vec<Vec<u8>> = (0..14)
        .map(|_| {
            let n = c.varint().unwrap() as usize;
            c.take(n).unwrap().to_vec()
        })
        .collect();
    assert!(c.bytes.is_empty(), "14 columns in version 4");
    edit(&mut cols);
    let out = join_columns(cols.iter().map(Vec::as_slice));
    let mut body = postcard::to_stdvec(&HeadRef::of(m, out.len() as u64)).unwrap();
    body.extend_from_slice(&zstd::bulk::compress(&out, 3).unwrap());
    let decoded = decode(&body, 4);
    match (&decoded, decode_keeping(&body, 4)) {
        (Ok(d), Ok(k)) => same_to_name(d, &k),
        (Err(d), Err(k)) => assert_eq!(d.to_string(), k.to_string()),
        (d, k) => panic!("decode gave {d:?}, kept as columns {k:?}"),
    }
    decoded
}

/// Two decodings of one body (a change list decoded, and kept as
/// columns) name the same id-less entries, of the same objects.
fn same_to_name(d: &Decoded, k: &Decoded) {
    assert!(k.has_columns() && !d.has_columns());
    let (a, b) = (d.to_name(), k.to_name());
    assert_eq!(a.len(), b.len());
    for (a, b) in a.iter().zip(&b) {
        assert_eq!((a.index, a.place, a.sha256), (b.index, b.place, b.sha256));
        assert_eq!(a.key.key(), b.key.key());
        assert_eq!(a.key.to_string(), b.key.to_string());
    }
    assert!(d.entries().eq(k.entries()));
}

/// A change list kept as columns, named (in parts, as an apply names
/// it), reads as the decoded list, at versions 3 and 4; decoded whole
/// from the columns it is that list too.
#[test]
fn a_change_list_kept_as_columns_reads_as_the_decoded_one() {
    for m in [varied(), first_export(1000)] {
        for version in [3, 4] {
            let body = encode(&m, version);
            let decoded = decode(&body, version).unwrap();
            let mut kept = decode_keeping(&body, version).unwrap();
            same_to_name(&decoded, &kept);
            assert!(
                kept.manifest().is_err(),
                "the changes are not in the manifest"
            );
            let n = kept.unnamed_count();
            let mut first = 0;
            while first < n {
                let end = n.min(first + 77);
                let ids: Vec<ChunkId> = kept
                    .to_name_range(first..end)
                    .iter()
                    .map(|t| m.chunks[t.index as usize].id)
                    .collect();
                kept.name_part(first, &ids);
                first = end;
            }
            kept.finish_naming().unwrap();
            assert_eq!(kept.chunks().unwrap(), m.chunks.as_slice());
            let mut whole = kept.clone();
            let columns = kept.take_columns().unwrap().unwrap();
            assert_eq!(columns.len(), m.changes.len());
            let chunks = kept.chunks().unwrap();
            assert!(columns.iter(chunks).eq(m.changes.iter().cloned()));
            assert_eq!(columns.decode_all(chunks), m.changes);
            // Decoded back into the manifest, it is the manifest.
            whole.decode_columns();
            assert_eq!(whole.into_manifest().unwrap(), m);
        }
    }
}

#[test]
fn version_4_lists_without_ids_exactly_the_chunks_that_are_whole_objects() {
    let m = varied();
    let marks = whole_marks(&m.changes, &m.chunks);
    assert!(marks.contains(&true) && marks.contains(&false), "{marks:?}");
    let d = decode_v4_with(&m, |_| {}).unwrap();
    let unnamed: Vec<usize> = d.to_name().iter().map(|t| t.index as usize).collect();
    let want: Vec<usize> = (0..marks.len()).filter(|&i| marks[i]).collect();
    assert_eq!(unnamed, want);
    // Each names the object it is the whole of, by SHA-256.
    for t in d.to_name() {
        let object = m.changes.iter().find_map(|c| match c {
            Change::Put {
                key,
                object: Object::File(f),
            } if *key == *t.key.key() => Some(f.sha256),
            _ => None,
        });
        assert_eq!(object, Some(t.sha256));
        assert_eq!(d.entry(t.index as usize).unwrap().0, Name::Whole(t.sha256));
    }
    // The head is there at once; the ids only once named.
    assert_eq!(d.head().sequence, m.sequence);
    assert!(d.head().changes.is_empty() && d.head().chunks.is_empty());
    assert!(d.manifest().is_err());
    // Named with an id already listed: a chunk listed twice.
    let mut twice = d.clone();
    let listed = m.chunks[marks.iter().position(|&w| !w).unwrap()].id;
    let ids = vec![listed; twice.to_name().len()];
    assert!(matches!(twice.name(&ids), Err(Error::Inconsistent(_))));
    // A manifest with no whole object is written as version 3.
    let mut none = m.clone();
    none.changes.clear();
    assert!(!has_whole(&none));
}

/// Named in parts ([`Decoded::name_part`], as a reader holding one part
/// of the ids at a time names them), a version-4 manifest is the one named
/// at once; a part naming an id already listed is found at the end.
#[test]
fn naming_in_parts_names_as_naming_at_once() {
    let m = first_export(1000);
    let whole = round_trip(&m, 4);
    assert_eq!(whole, m);
    let d = decode(&encode(&m, 4), 4).unwrap();
    let n = d.unnamed_count();
    assert!(n > 900, "{n} id-less chunks");
    let ids_of = |d: &Decoded, r: std::ops::Range<usize>| -> Vec<ChunkId> {
        d.to_name_range(r)
            .iter()
            .map(|t| m.chunks[t.index as usize].id)
            .collect()
    };
    let mut parts = d.clone();
    let mut first = 0;
    while first < n {
        let end = n.min(first + 77);
        let ids = ids_of(&parts, first..end);
        assert!(parts.manifest().is_err(), "not named before the end");
        parts.name_part(first, &ids);
        first = end;
    }
    parts.finish_naming().unwrap();
    assert_eq!(parts.into_manifest().unwrap(), m);
    // The last part names its last chunk with the id of the first.
    let mut twice = d.clone();
    let mut ids = ids_of(&twice, 0..n);
    ids[n - 1] = ids[0];
    twice.name_part(0, &ids[..n / 2]);
    twice.name_part(n / 2, &ids[n / 2..]);
    let e = twice.finish_naming().unwrap_err();
    assert!(e.to_string().contains("listed twice"), "{e}");
}

#[test]
fn hostile_version_4_names_are_decode_errors() {
    let m = varied();
    let marks = whole_marks(&m.changes, &m.chunks);
    let decode_error = |r: Result<Decoded, Error>| matches!(r, Err(Error::ManifestDecode(_)));
    assert!(!decode_error(decode_v4_with(&m, |_| {})));
    // A name byte that is neither 0 nor 1.
    assert!(decode_error(decode_v4_with(&m, |c| c[13][0] = 2)));
    // More or fewer names than ids account for.
    assert!(decode_error(decode_v4_with(&m, |c| c[13].push(0))));
    assert!(decode_error(decode_v4_with(&m, |c| c[13].push(1))));
    // An entry that is not the whole of any object, listed without its id.
    let not_whole = marks.iter().position(|&w| !w).unwrap();
    let listed_before = marks[..not_whole].iter().filter(|&&w| !w).count();
    assert!(decode_error(decode_v4_with(&m, |c| {
        c[13][not_whole] = 1;
        c[9].drain(listed_before * 32..listed_before * 32 + 32);
    })));
}

/// The bytes of compact bodies, pinned: a change to the encoder that moves
/// a single byte of what today's writers write fails here (a reader cannot
/// tell two valid encodings apart, so the round-trip tests would not
/// notice). The digests were taken from the encoder of format versions 3
/// and 4 as specified in docs/bundle-format.md §5.10, with the zstd of
/// Cargo.lock; a new zstd that cuts its blocks differently would change
/// them too (and a reader would still read both).
#[test]
fn compact_bodies_are_pinned_byte_for_byte() {
    use sha2::{Digest, Sha256 as Sha};
    let digest = |b: &[u8]| hex::encode(Sha::digest(b));
    let mut out_of_order = first_export(3_000);
    out_of_order.changes.reverse();
    let cases = [
        ("varied v3", encode(&varied(), 3)),
        ("varied v4", encode(&varied(), 4)),
        ("first export v3", encode(&first_export(5_000), 3)),
        ("first export v4", encode(&first_export(5_000), 4)),
        ("refs out of order v4", encode(&out_of_order, 4)),
    ];
    let got: Vec<String> = cases
        .iter()
        .map(|(what, body)| format!("{what}: {}", digest(body)))
        .collect();
    let want = [
        "varied v3: f57b4c472f5bc1b42e9b7703e7511c0f46c63cc76d8c21146e8666daf827339b",
        "varied v4: 820995ab9dbfa5271278a11e7a319f093cbec81f6d4d97fbc8d84ec245101c3e",
        "first export v3: ad6dca8ba6fb6947150e8cccf144d006335d5f227714350e27541a4fca2b6db3",
        "first export v4: fb484571ec125d448a43ba8d76c2b2c5d62c50e85f3f2b3e137b3f768449e62a",
        "refs out of order v4: 22d1e1a927fa5ea184277d432a5f942a43a70a212d1981def27bbab8504d2e09",
    ];
    assert_eq!(got, want);
}

/// Columns laid end to end, each after its varint length (the tests'
/// hostile bodies are made of columns edited by hand).
fn join_columns<'c>(cols: impl IntoIterator<Item = &'c [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for col in cols {
        put_varint(&mut out, col.len() as u64);
        out.extend_from_slice(col);
    }
    out
}
