//! Objects built straight from a bundle's verified volumes
//! (`agent_inside::carried`): chunks read where they lie, each checked
//! against its id when the build reads it; only the chunks the store must
//! keep are copied into it; every bad volume or chunk refused with nothing
//! applied.

use crate::{random_bytes, tree_digest, Pair};
use agent_inside::bundle;
use ferry_protocol::catalog::{Change, Encoding, Object};
use ferry_protocol::id::ChunkId;
use ferry_protocol::manifest::Manifest;
use ferry_protocol::volume;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The one bundle directory in `media`.
fn only_bundle(media: &Path) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(media)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.pop().unwrap()
}

/// The manifest of the bundle in `dir`, every chunk named (a version-4
/// manifest's id-less chunks from their bytes, as an apply names them).
fn named_manifest(p: &Pair, dir: &Path) -> Manifest {
    let mut b = bundle::open(dir, &[p.outside.key.public()], &p.inside.limits).unwrap();
    bundle::name_chunks(&mut b, |_| {}, None).unwrap();
    b.verified.manifest().expect("named").clone()
}

/// What an import must leave when it refuses a bundle: the same applied
/// bundle and generation, the same files served, the same chunks and
/// objects, no staging area and no half-built generation.
struct Before {
    applied: (u64, Option<String>),
    served: BTreeMap<String, String>,
    chunks: Vec<String>,
    objects: Vec<String>,
}

/// The names of the files under `dir`, sorted (none if it does not exist).
pub(crate) fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

impl Before {
    fn of(p: &Pair) -> Before {
        let a = p.inside.applied();
        Before {
            applied: (a.sequence, a.generation),
            served: p.inside.served_digest(),
            chunks: p.inside.chunk_files(),
            objects: files_under(&p.inside.layout.objects()),
        }
    }

    fn assert_kept(&self, p: &Pair, what: &str) {
        let a = p.inside.applied();
        assert_eq!((a.sequence, a.generation), self.applied, "{what}");
        assert_eq!(p.inside.served_digest(), self.served, "{what}");
        assert_eq!(p.inside.chunk_files(), self.chunks, "{what}: chunk store");
        assert_eq!(
            files_under(&p.inside.layout.objects()),
            self.objects,
            "{what}: object store"
        );
        assert!(!p.inside.layout.staging().exists(), "{what}: staging left");
        assert!(
            p.inside
                .generations()
                .iter()
                .all(|g| !g.starts_with(".tmp-")),
            "{what}: a half-built generation left: {:?}",
            p.inside.generations()
        );
    }
}

/// Refuses with a `ferry_protocol::Error` matching `is`, nothing applied.
fn assert_refused(
    p: &Pair,
    media: &Path,
    before: &Before,
    what: &str,
    is: impl Fn(&ferry_protocol::Error) -> bool,
) {
    let r = p.inside.import(media).unwrap();
    assert!(r.applied.is_empty(), "{what}: applied {:?}", r.applied);
    assert_eq!(r.errors.len(), 1, "{what}: {:?}", r.failed);
    let e = &r.errors[0];
    let found = e
        .chain()
        .filter_map(|c| c.downcast_ref::<ferry_protocol::Error>())
        .any(is);
    assert!(found, "{what}: {e:#}");
    before.assert_kept(p, what);
}

#[test]
fn objects_are_built_from_the_volumes_with_no_chunk_file() {
    let mut p = Pair::new();
    p.outside.opts.volume_size = 128 << 10;
    let a = random_bytes(700_000, 1);
    p.outside.write("a.bin", &a);
    // The same bytes under another name: its chunks used by two objects.
    p.outside.write("copy-of-a.bin", &a);
    // New bytes, then most of a's: its first chunks lie in later volumes
    // than the chunks it shares with a.
    let mut b = random_bytes(300_000, 2);
    b.extend_from_slice(&a[..600_000]);
    p.outside.write("b.bin", &b);
    // Small files, each its own one chunk (listed without an id in a
    // version-4 manifest), one of them twice.
    for i in 0..12 {
        let text = format!("small file {i}\n").repeat(i + 1);
        p.outside.write(&format!("small/{i}.txt"), text.as_bytes());
    }
    p.outside.write("small/again.txt", b"small file 0\n");
    let (_, media) = p.export_to_media().unwrap();

    // What the test relies on is there: objects across volumes, and a
    // chunk of an object in an earlier volume than the object's first.
    let m = named_manifest(&p, &only_bundle(&media));
    assert!(m.volumes.len() > 4, "{} volumes", m.volumes.len());
    let volume_of: HashMap<ChunkId, u32> = m.chunks.iter().map(|c| (c.id, c.volume)).collect();
    let (mut spans, mut earlier, mut uses) = (false, false, HashMap::<ChunkId, u32>::new());
    for c in &m.changes {
        let Change::Put {
            object: Object::File(f),
            ..
        } = c
        else {
            continue;
        };
        let Encoding::Chunks(refs) = &f.encoding else {
            continue;
        };
        let vols: Vec<u32> = refs.iter().map(|r| volume_of[&r.id]).collect();
        spans |= vols.iter().any(|v| *v != vols[0]);
        earlier |= vols.iter().any(|v| *v < vols[0]);
        for r in refs {
            *uses.entry(r.id).or_default() += 1;
        }
    }
    assert!(spans && earlier, "spans {spans}, earlier {earlier}");
    assert!(uses.values().any(|n| *n > 1), "no chunk used twice");

    let r = p.inside.import(&media).unwrap();
    assert!(r.ok(), "{:?}", r.failed);
    assert_eq!(r.applied, vec![1]);
    assert_eq!(p.inside.served_digest(), tree_digest(&p.outside.src));
    // Every chunk is a range of a served file: nothing was staged.
    assert!(
        p.inside.chunk_files().is_empty(),
        "{:?}",
        p.inside.chunk_files()
    );
    assert!(!p.inside.layout.staging().exists());

    // A delta: a file made of held chunks, one new, one removed.
    p.outside.write("another-copy.bin", &a);
    p.outside.write("new.bin", &random_bytes(500_000, 3));
    p.outside.remove("copy-of-a.bin");
    let (_, report) = p.step().unwrap();
    assert!(report.ok(), "{:?}", report.failed);
    p.assert_in_sync();
    assert!(p.inside.chunk_files().is_empty());
}

/// Bundle 1 (a.bin) applied, bundle 2 adding a 400 kB file exported to
/// media; returns the media and bundle 2's manifest, named.
fn second_bundle(p: &mut Pair) -> (PathBuf, Manifest) {
    p.outside.opts.volume_size = 128 << 10;
    p.outside.write("a.bin", &random_bytes(300_000, 5));
    let (_, r) = p.step().unwrap();
    assert!(r.ok(), "{:?}", r.failed);
    p.outside.write("n.bin", &random_bytes(400_000, 6));
    let (_, media) = p.export_to_media().unwrap();
    let m = named_manifest(p, &only_bundle(&media));
    (media, m)
}

#[test]
fn a_chunk_whose_bytes_do_not_match_its_id_is_refused() {
    let mut p = Pair::new();
    let (media, mut m) = second_bundle(&mut p);
    let before = Before::of(&p);
    // The last chunk claims another id, in the table and in its object's
    // refs; the manifest signed again with the trusted key.
    let last = m
        .chunks
        .iter_mut()
        .max_by_key(|c| (c.volume, c.offset))
        .unwrap();
    let real = last.id;
    let forged = ChunkId::of(b"the bytes this chunk claims to be");
    last.id = forged;
    for c in &mut m.changes {
        if let Change::Put {
            object: Object::File(f),
            ..
        } = c
        {
            if let Encoding::Chunks(refs) = &mut f.encoding {
                refs.iter_mut()
                    .filter(|r| r.id == real)
                    .for_each(|r| r.id = forged);
            }
        }
    }
    let dir = only_bundle(&media);
    std::fs::write(dir.join("manifest.ferry"), m.sign(&p.outside.key)).unwrap();
    assert_refused(
        &p,
        &media,
        &before,
        "forged id",
        |e| matches!(e, ferry_protocol::Error::BadChunk { id, .. } if *id == forged),
    );

    let r = p.inside.import(&p.outside.layout.bundles()).unwrap();
    assert!(r.ok(), "{:?}", r.failed);
    p.assert_in_sync();
}

#[test]
fn a_tampered_chunk_in_a_volume_whose_hash_was_made_to_match_is_refused() {
    let mut p = Pair::new();
    let (media, mut m) = second_bundle(&mut p);
    let before = Before::of(&p);
    let dir = only_bundle(&media);
    // A byte inside a chunk changed, and the volume's size and hash in the
    // signed manifest made to match: the chunk's own check must catch it.
    let c = m.chunks[m.chunks.len() / 2].clone();
    let path = dir.join(volume::file_name(c.volume));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[(c.offset + c.stored_len as u64 / 2) as usize] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    m.volumes[c.volume as usize].blake3 = ChunkId::of(&bytes).0;
    std::fs::write(dir.join("manifest.ferry"), m.sign(&p.outside.key)).unwrap();
    assert_refused(
        &p,
        &media,
        &before,
        "tampered chunk",
        |e| matches!(e, ferry_protocol::Error::BadChunk { id, .. } if *id == c.id),
    );
}

#[test]
fn a_truncated_volume_is_refused() {
    let mut p = Pair::new();
    let (media, m) = second_bundle(&mut p);
    let before = Before::of(&p);
    let last = m.volumes.len() as u32 - 1;
    let path = only_bundle(&media).join(volume::file_name(last));
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
    assert_refused(
        &p,
        &media,
        &before,
        "truncated volume",
        |e| matches!(e, ferry_protocol::Error::BadVolume { index, .. } if *index == last),
    );
    let r = p.inside.import(&p.outside.layout.bundles()).unwrap();
    assert!(r.ok(), "{:?}", r.failed);
    p.assert_in_sync();
}
