use super::super::{export_at, ExportOptions};
use crate::delta::DeltaOptions;
use crate::layout::Layout;
use crate::ledger::Ledger;
use crate::source::{Item, ItemKind, ScanCtx, Source};
use crate::test_util::noise;
use anyhow::Result;
use ferry_protocol::catalog::SourceKind;
use ferry_protocol::keys::SecretKey;
use ferry_protocol::path::ObjectKey;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// A source of files held in memory; the file named `fail` (if any)
/// gives an error once `after` of its bytes are read.
struct Mem {
    files: Vec<(String, Vec<u8>)>,
    fail: Option<(String, usize)>,
    /// Each file's fingerprint, by path (else none).
    fingerprints: BTreeMap<String, String>,
}

/// Reads `data`, then fails (a disk or a network gone mid-read).
struct Failing {
    data: std::io::Cursor<Vec<u8>>,
}

impl Read for Failing {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.data.read(buf)? {
            0 => Err(std::io::Error::other("the upstream disk went away")),
            n => Ok(n),
        }
    }
}

impl Source for Mem {
    fn name(&self) -> &str {
        "s"
    }
    fn kind(&self) -> SourceKind {
        SourceKind::Files
    }
    fn scan(&self, _: &ScanCtx<'_>, sink: &mut dyn FnMut(Item) -> Result<()>) -> Result<()> {
        for (path, data) in &self.files {
            let data = data.clone();
            let fail = match &self.fail {
                Some((p, after)) if p == path => Some(*after),
                _ => None,
            };
            let open: crate::source::Opener = Box::new(move || {
                Ok(match fail {
                    Some(after) => Box::new(Failing {
                        data: std::io::Cursor::new(data[..after].to_vec()),
                    }) as Box<dyn Read>,
                    None => Box::new(std::io::Cursor::new(data)),
                })
            });
            sink(Item {
                path: path.clone(),
                predecessor: None,
                kind: ItemKind::File {
                    executable: false,
                    fingerprint: self.fingerprints.get(path).cloned(),
                    expected_sha256: None,
                    open,
                },
            })?;
        }
        Ok(())
    }
}

fn options(delta: DeltaOptions) -> ExportOptions {
    ExportOptions {
        volume_size: 64 << 20,
        level: 3,
        expires_in: 86_400,
        delta,
        // Runs of a few puts, merged: the path of large exports.
        puts_held: 5,
        media: None,
    }
}

/// Exports `files` into the state at `root` as bundle `now`'s.
fn export(
    root: &Path,
    files: &[(String, Vec<u8>)],
    fail: Option<(String, usize)>,
    delta: DeltaOptions,
) -> Result<Option<(std::path::PathBuf, crate::delta::DeltaReport)>> {
    export_with(root, files, fail, options(delta))
}

/// [`export`] with these options.
fn export_with(
    root: &Path,
    files: &[(String, Vec<u8>)],
    fail: Option<(String, usize)>,
    options: ExportOptions,
) -> Result<Option<(std::path::PathBuf, crate::delta::DeltaReport)>> {
    export_fingerprinted(root, files, fail, options, &BTreeMap::new())
}

/// [`export_with`], the files listed with these fingerprints.
fn export_fingerprinted(
    root: &Path,
    files: &[(String, Vec<u8>)],
    fail: Option<(String, usize)>,
    options: ExportOptions,
    fingerprints: &BTreeMap<String, String>,
) -> Result<Option<(std::path::PathBuf, crate::delta::DeltaReport)>> {
    let layout = Layout::new(root);
    let ledger = Ledger::open(&layout)?;
    let key = SecretKey::from_seed([7; 32]);
    let sources: Vec<Box<dyn Source>> = vec![Box::new(Mem {
        files: files.to_vec(),
        fail,
        fingerprints: fingerprints.clone(),
    })];
    let made = export_at(&layout, &ledger, &key, &sources, &options, 1_000)?;
    Ok(made.map(|e| (e.dir, e.delta)))
}

/// Every file under `dir` and its bytes.
fn files_of(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let name = p.strip_prefix(dir).unwrap().display().to_string();
                out.insert(name, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn copy_dir(from: &Path, to: &Path) {
    for (name, bytes) in files_of(from) {
        let p = to.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
}

/// `old` with bytes inserted near the start and a run changed in the
/// middle.
fn edited(old: &[u8], seed: u8) -> Vec<u8> {
    let mut new = old[..1000].to_vec();
    new.extend_from_slice(&[seed; 37]);
    new.extend_from_slice(&old[1000..]);
    let mid = new.len() / 2;
    new[mid..mid + 300].fill(seed);
    new
}

fn gz(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Small settings, so that small objects take the large objects' paths:
/// objects over 64 KiB stream, windows of 300 kB, objects over 3 MB are
/// not patched.
fn small(scan_held: u64) -> DeltaOptions {
    DeltaOptions {
        window: 300_000,
        max_object: 3_000_000,
        scan_held,
        ..DeltaOptions::default()
    }
}

/// Files listed in no key order (as several sources and patches give
/// their puts).
fn unordered(n: u32) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|i| (i * 7919) % n)
        .map(|i| {
            (
                format!("d{}/f{i:05}", i % 13),
                format!("{i}\n").repeat(3).into_bytes(),
            )
        })
        .collect()
}

#[test]
fn puts_held_or_written_out_in_runs_make_the_same_bundles_and_ledger() {
    let tmp = tempfile::tempdir().unwrap();
    let (held, runs) = (tmp.path().join("held"), tmp.path().join("runs"));
    // One stream: the same state copied before its first export.
    drop(Ledger::open(&Layout::new(&held)).unwrap());
    copy_dir(&held, &runs);
    let first = unordered(1_500);
    let mut second = unordered(1_510);
    second.retain(|(p, _)| p != "d3/f00003" && p != "d7/f01000");
    second[4].1 = b"changed".to_vec();
    for (files, seq) in [(&first, 1), (&second, 2)] {
        let in_memory = ExportOptions {
            puts_held: super::super::PUTS_HELD,
            ..options(DeltaOptions::default())
        };
        let a = export_with(&held, files, None, in_memory).unwrap().unwrap();
        let b = export_with(&runs, files, None, options(DeltaOptions::default()))
            .unwrap()
            .unwrap();
        let (a, b) = (files_of(&a.0), files_of(&b.0));
        assert!(a.contains_key(ferry_agent_common::media::MANIFEST_FILE));
        assert!(a == b, "bundle {seq} differs");
        let catalog = |root: &Path| Ledger::open(&Layout::new(root)).unwrap().catalog(seq);
        let c = catalog(&held).unwrap();
        assert_eq!(c.objects.len(), files.len());
        assert_eq!(catalog(&runs).unwrap(), c);
    }
}

#[test]
fn fingerprints_carried_in_runs_or_held_write_the_same_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let (held, runs) = (tmp.path().join("held"), tmp.path().join("runs"));
    drop(Ledger::open(&Layout::new(&held)).unwrap());
    copy_dir(&held, &runs);
    let first = unordered(1_500);
    let mut fps: BTreeMap<String, String> = first
        .iter()
        .map(|(p, _)| (p.clone(), format!("a-{p}")))
        .collect();
    let fps1 = fps.clone();
    // The delta: two removed, ten added, one changed (a new
    // fingerprint), one read again (a new fingerprint, the same bytes:
    // its object is not put, its fingerprint is written all the same),
    // the others unchanged (not read; their rows keep theirs).
    let mut second = unordered(1_510);
    second.retain(|(p, _)| p != "d3/f00003" && p != "d7/f01000");
    second[4].1 = b"changed".to_vec();
    let (changed, touched) = (second[4].0.clone(), second[5].0.clone());
    for (p, _) in &second {
        fps.entry(p.clone()).or_insert_with(|| format!("a-{p}"));
    }
    fps.insert(changed.clone(), format!("b-{changed}"));
    fps.insert(touched.clone(), format!("t-{touched}"));
    fps.retain(|p, _| second.iter().any(|(q, _)| q == p));
    for (files, fps, seq) in [(&first, &fps1, 1), (&second, &fps, 2)] {
        let in_memory = ExportOptions {
            puts_held: super::super::PUTS_HELD,
            ..options(DeltaOptions::default())
        };
        let a = export_fingerprinted(&held, files, None, in_memory, fps)
            .unwrap()
            .unwrap();
        let b = export_fingerprinted(&runs, files, None, options(DeltaOptions::default()), fps)
            .unwrap()
            .unwrap();
        assert!(files_of(&a.0) == files_of(&b.0), "bundle {seq} differs");
        for root in [&held, &runs] {
            let ledger = Ledger::open(&Layout::new(root)).unwrap();
            let last = ledger.last(seq).unwrap();
            assert_eq!(last.row_count().unwrap(), files.len() as u64);
            for (path, fp) in fps {
                let key = ObjectKey {
                    source: "s".into(),
                    path: path.clone(),
                };
                let row = last.row(&key).unwrap().unwrap();
                assert_eq!(row.fingerprint.as_ref(), Some(fp), "{root:?} {seq}: {path}");
            }
        }
        // The same files again: none is read, nothing is exported.
        if seq == 2 {
            let report =
                export_fingerprinted(&runs, files, None, options(DeltaOptions::default()), fps)
                    .unwrap();
            assert!(report.is_none(), "nothing changed, nothing exported");
        }
    }
}

#[test]
fn a_delta_that_removes_the_largest_file_finds_the_next_largest_beside_the_puts() {
    let tmp = tempfile::tempdir().unwrap();
    let mut v1 = unordered(30);
    v1.push(("z/big".into(), noise(5_000, 1)));
    v1.push(("a/second".into(), noise(3_000, 2)));
    v1.push(("k/third".into(), noise(2_000, 3)));
    export(tmp.path(), &v1, None, DeltaOptions::default())
        .unwrap()
        .unwrap();
    // The largest gone, the next largest kept; one put larger than
    // the third but smaller than the second, and the third rewritten.
    let mut v2 = unordered(30);
    v2[3].1 = b"changed".to_vec();
    v2.push(("a/second".into(), noise(3_000, 2)));
    v2.push(("k/third".into(), noise(2_000, 4)));
    v2.push(("m/new".into(), noise(2_500, 5)));
    let (dir, _) = export(tmp.path(), &v2, None, DeltaOptions::default())
        .unwrap()
        .unwrap();
    let file = std::fs::read(dir.join(ferry_agent_common::media::MANIFEST_FILE)).unwrap();
    let key = SecretKey::from_seed([7; 32]);
    let limits = ferry_protocol::limits::ReceiverLimits::default();
    let opened = ferry_protocol::manifest::Manifest::open(&file, &[key.public()], &limits).unwrap();
    let m = opened.manifest().unwrap();
    assert_eq!(m.totals.max_object, 3_000);
    let ledger = Ledger::open(&Layout::new(tmp.path())).unwrap();
    let next = ledger
        .catalog(1)
        .unwrap()
        .apply(&m.sources, &m.changes)
        .unwrap();
    assert_eq!(ledger.catalog(2).unwrap(), next);
    m.check_result(&next, &limits).unwrap();
}

#[test]
fn two_items_at_one_path_are_refused_held_or_in_different_runs() {
    for (held, gap) in [(super::super::PUTS_HELD, 2), (5, 2), (5, 20)] {
        let tmp = tempfile::tempdir().unwrap();
        let mut files = unordered(40);
        files.insert(gap, files[0].clone());
        let opts = ExportOptions {
            puts_held: held,
            ..options(DeltaOptions::default())
        };
        let e = export_with(tmp.path(), &files, None, opts).unwrap_err();
        let msg = format!("{e:#}");
        let want = format!("source \"s\": two items at path {:?}", files[0].0);
        assert!(msg.contains(&want), "held {held}, gap {gap}: {msg}");
        let ledger = Ledger::open(&Layout::new(tmp.path())).unwrap();
        assert_eq!(ledger.head().unwrap().sequence, 0);
        let bundles = Layout::new(tmp.path()).bundles();
        assert!(files_of(&bundles).is_empty(), "{:?}", files_of(&bundles));
    }
}

#[test]
fn a_first_export_of_many_objects_streams_a_manifest_that_opens_to_its_catalog() {
    // Over 1,024 changes: the manifest goes through `ManifestWriter`.
    let files: Vec<(String, Vec<u8>)> = (0..1_500u32)
        .map(|i| {
            (
                format!("d{}/f{i:05}", i / 100),
                format!("file {i}\n")
                    .repeat(1 + i as usize % 7)
                    .into_bytes(),
            )
        })
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = export(tmp.path(), &files, None, DeltaOptions::default())
        .unwrap()
        .unwrap();
    let file = std::fs::read(dir.join(ferry_agent_common::media::MANIFEST_FILE)).unwrap();
    let key = SecretKey::from_seed([7; 32]);
    let limits = ferry_protocol::limits::ReceiverLimits::default();
    let mut opened =
        ferry_protocol::manifest::Manifest::open(&file, &[key.public()], &limits).unwrap();
    assert_eq!(u32::from_le_bytes(file[8..12].try_into().unwrap()), 4);
    // Each small file is one chunk, listed without its id: named from its bytes.
    let bytes: BTreeMap<&str, &[u8]> = files
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_slice()))
        .collect();
    let ids: Vec<_> = opened
        .to_name()
        .iter()
        .map(|t| {
            ferry_protocol::id::ChunkId(*blake3::hash(bytes[t.key.key().path.as_str()]).as_bytes())
        })
        .collect();
    opened.name(&ids).unwrap();
    let m = opened.manifest().unwrap();
    assert_eq!(m.changes.len(), files.len());
    // The in-memory writer makes the same file of the same manifest.
    assert!(
        m.sign(&key) == file,
        "the streamed manifest is not the writer's form"
    );
    // Its catalog is the one the ledger committed.
    let next = ferry_protocol::catalog::Catalog::default()
        .apply(&m.sources, &m.changes)
        .unwrap();
    let ledger = Ledger::open(&Layout::new(tmp.path())).unwrap();
    assert_eq!(ledger.catalog(1).unwrap(), next);
    m.check_result(&next, &limits).unwrap();
    // A delta after it (a few changes: written in memory) commits on.
    let mut changed = files.clone();
    changed[3].1 = b"changed".to_vec();
    changed.pop();
    drop(ledger);
    export(tmp.path(), &changed, None, DeltaOptions::default())
        .unwrap()
        .unwrap();
    let ledger = Ledger::open(&Layout::new(tmp.path())).unwrap();
    assert_eq!(ledger.catalog(2).unwrap().objects.len(), files.len() - 1);
}

#[test]
fn changed_objects_streamed_make_the_bundle_they_make_read_whole() {
    // A plain object over a window (patched in windows read from its
    // copy), one under a window, a compressed one, one over the delta
    // size bound (ships whole, its chunks read back from its copy), one
    // whose patch does not pay (new noise: ships whole), and small ones.
    let plain = noise(1_000_000, 1);
    let small_plain = noise(200_000, 2);
    let text = noise(40_000, 3).repeat(8);
    let huge = noise(3_500_000, 4);
    let fresh = noise(500_000, 5);
    let v1: Vec<(String, Vec<u8>)> = vec![
        ("big.bin".into(), plain.clone()),
        ("mid.bin".into(), small_plain.clone()),
        ("pkg.gz".into(), gz(&text)),
        ("huge.iso".into(), huge.clone()),
        ("other.bin".into(), fresh.clone()),
        ("tiny.txt".into(), b"hello".to_vec()),
    ];
    let v2: Vec<(String, Vec<u8>)> = vec![
        ("big.bin".into(), edited(&plain, 9)),
        ("mid.bin".into(), edited(&small_plain, 8)),
        ("pkg.gz".into(), gz(&edited(&text, 7))),
        ("huge.iso".into(), edited(&huge, 6)),
        ("other.bin".into(), noise(500_000, 55)),
        ("tiny.txt".into(), b"hello again".to_vec()),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let (read, streamed) = (tmp.path().join("read"), tmp.path().join("streamed"));
    export(&read, &v1, None, small(u64::MAX)).unwrap().unwrap();
    copy_dir(&read, &streamed);
    // The same second export from the same state, the changed objects
    // read whole by the scan, then streamed.
    let a = export(&read, &v2, None, small(u64::MAX)).unwrap().unwrap();
    let b = export(&streamed, &v2, None, small(64 << 10))
        .unwrap()
        .unwrap();
    // Patched: the two plain ones and the compressed one; whole: the
    // one whose patch does not pay and the tiny one (the huge one is
    // not counted).
    assert_eq!((b.1.patched, b.1.whole), (3, 2), "{:?}", b.1);
    assert_eq!(a.1, b.1);
    let (a, b) = (files_of(&a.0), files_of(&b.0));
    assert!(a.len() >= 2, "{:?}", a.keys());
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, bytes) in &a {
        assert!(b[name] == *bytes, "{name} differs");
    }
    // Patches, not whole objects: the bundle holds much less than the
    // 1.7 MB of changed patchable objects (the huge one ships whole).
    let total: usize = b.values().map(Vec::len).sum();
    assert!(total < 3_500_000 + 500_000 + 200_000, "{total} bytes");
    // The copy of the object too large to patch is not kept; the others'
    // are (the next export's bases).
    let objects = files_of(&Layout::new(&streamed).objects());
    let sha = |d: &[u8]| ferry_protocol::id::Sha256::of(d).to_hex();
    assert!(!objects.contains_key(&sha(&edited(&huge, 6))));
    assert_eq!(
        objects.get(&sha(&edited(&plain, 9))),
        Some(&edited(&plain, 9))
    );
    assert!(
        objects.keys().all(|k| !k.starts_with('.')),
        "{:?}",
        objects.keys()
    );
}

#[test]
fn a_read_error_midway_through_a_streamed_object_commits_nothing() {
    let plain = noise(1_000_000, 1);
    let v1: Vec<(String, Vec<u8>)> = vec![("big.bin".into(), plain.clone())];
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    export(root, &v1, None, small(64 << 10)).unwrap().unwrap();
    let layout = Layout::new(root);
    let (bundles, objects) = (files_of(&layout.bundles()), files_of(&layout.objects()));
    let v2: Vec<(String, Vec<u8>)> = vec![("big.bin".into(), edited(&plain, 3))];
    for after in [0, 100_000, 700_000] {
        let e = export(root, &v2, Some(("big.bin".into(), after)), small(64 << 10)).unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("the upstream disk went away"), "{msg}");
        assert!(msg.contains("big.bin"), "{msg}");
        // Nothing committed, no bundle, no copy or temporary file.
        let ledger = Ledger::open(&layout).unwrap();
        assert_eq!(ledger.head().unwrap().sequence, 1);
        drop(ledger);
        assert!(files_of(&layout.bundles()) == bundles, "after {after}");
        assert!(files_of(&layout.objects()) == objects, "after {after}");
    }
    // The next export reads it whole and ships it.
    assert!(export(root, &v2, None, small(64 << 10)).unwrap().is_some());
}
