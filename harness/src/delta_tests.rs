//! Patches against predecessors (format version 2), in one process.

use crate::{random_bytes, Pair};
use agent_inside::import::Report;
use ferry_protocol::catalog::{Change, Encoding, Expanded, Object, Rebuilt};
use ferry_protocol::manifest::{self, Manifest};
use std::path::Path;

const MANIFEST: &str = "manifest.ferry";

pub(crate) fn manifest_of(bundle: &Path) -> (u32, Manifest) {
    let bytes = std::fs::read(bundle.join(MANIFEST)).unwrap();
    let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
    let m = manifest::peek_unverified(&bytes).unwrap().1;
    (version, m.into_manifest().unwrap())
}

/// The protocol error in a failed import's report.
pub(crate) fn protocol_error(r: &Report) -> &ferry_protocol::Error {
    r.errors
        .iter()
        .find_map(|e| {
            e.chain()
                .find_map(|c| c.downcast_ref::<ferry_protocol::Error>())
        })
        .unwrap_or_else(|| panic!("no protocol error in {:?}", r.failed))
}

/// Edits every rebuilt object of the bundle on `media` and signs the
/// manifest again with the outside's own key: a hostile but trusted bundle.
pub(crate) fn edit_rebuilt(p: &Pair, media: &Path, mut edit: impl FnMut(&mut Rebuilt)) {
    let bundle = std::fs::read_dir(media)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join(MANIFEST).exists())
        .unwrap();
    let (_, mut m) = manifest_of(&bundle);
    for c in &mut m.changes {
        if let Change::Put {
            object: Object::File(f),
            ..
        } = c
        {
            if let Encoding::Rebuilt(r) = &mut f.encoding {
                edit(r);
            }
        }
    }
    std::fs::write(bundle.join(MANIFEST), m.sign(&p.outside.key)).unwrap();
}

/// Release 1.0 of a 1.5 MB "tool", and 1.1: the same with small edits.
fn releases() -> (Vec<u8>, Vec<u8>) {
    let old = random_bytes(1_500_000, 11);
    let mut new = old.clone();
    for i in (0..new.len()).step_by(250_000) {
        new[i..i + 16].copy_from_slice(b"release 1.1 edit");
    }
    (old, new)
}

/// A pair that serves release 1.0, then exports 1.1 in its place (a new
/// file name in the same directory, as package pools do).
fn upgraded(p: &mut Pair) -> (crate::Exported, std::path::PathBuf) {
    let (old, new) = releases();
    p.outside.write("pool/tool_1.0_amd64.bin", &old);
    p.outside.write("pool/other.txt", b"unchanged");
    assert_eq!(p.drive(), 1);
    p.outside.remove("pool/tool_1.0_amd64.bin");
    p.outside.write("pool/tool_1.1_amd64.bin", &new);
    p.export_to_media().expect("a second bundle")
}

#[test]
fn a_new_release_ships_as_a_patch_against_its_predecessor() {
    let mut p = Pair::new();
    let (e, media) = upgraded(&mut p);
    assert_eq!(e.delta.patched, 1, "{:?}", e.delta);
    assert!(
        e.record.bytes < 50_000,
        "bundle is {} bytes for a 1.5 MB release with 96 changed bytes",
        e.record.bytes
    );
    let (version, m) = manifest_of(&e.dir);
    assert_eq!(version, 2, "a bundle with a patch is format version 2");
    let patched = m.changes.iter().find_map(|c| match c {
        Change::Put {
            key,
            object: Object::File(f),
        } if key.path == "pool/tool_1.1_amd64.bin" => Some(f.clone()),
        _ => None,
    });
    let f = patched.expect("the new release is in the delta");
    match &f.encoding {
        Encoding::Rebuilt(r) => match &r.expanded {
            Expanded::Patch { base, .. } => assert_eq!(base.key.path, "pool/tool_1.0_amd64.bin"),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
    let report = p.inside.import(&media).unwrap();
    assert!(report.ok(), "{:?}", report.failed);
    p.assert_in_sync();
    // A bundle without patches stays version 1, which older readers accept.
    p.outside
        .write("pool/notes.txt", b"new file, no predecessor");
    let (e3, _) = p.step().unwrap();
    assert_eq!(manifest_of(&e3.dir).0, 1);
    p.assert_in_sync();
}

#[test]
fn with_deltas_off_the_release_ships_whole() {
    let mut p = Pair::new();
    p.outside.opts.delta.level = None;
    let (e, media) = upgraded(&mut p);
    assert_eq!(e.delta.patched, 0);
    // Whole: the six 64 KiB-scale chunks around the edits, against a patch of a few KB.
    assert!(e.record.bytes > 200_000, "{} bytes", e.record.bytes);
    assert_eq!(manifest_of(&e.dir).0, 1);
    assert!(p.inside.import(&media).unwrap().ok());
    p.assert_in_sync();
}

#[test]
fn a_rotten_base_refuses_the_patch_and_keeps_the_served_generation() {
    let mut p = Pair::new();
    let (_, media) = upgraded(&mut p);
    // Bit rot in the inside's copy of release 1.0, its object (a new inode,
    // so nothing else sharing the old one is touched).
    let served = p.inside.object_of("pool/tool_1.0_amd64.bin");
    let mut bytes = std::fs::read(&served).unwrap();
    bytes[1000] ^= 1;
    std::fs::remove_file(&served).unwrap();
    std::fs::write(&served, &bytes).unwrap();

    let report = p.inside.import(&media).unwrap();
    assert!(!report.ok());
    assert!(
        matches!(protocol_error(&report), ferry_protocol::Error::MissingBase { base, .. } if base.ends_with("tool_1.0_amd64.bin")),
        "{:?}",
        report.failed
    );
    assert_eq!(p.inside.applied().sequence, 1);
    assert!(p.inside.served("pool/tool_1.0_amd64.bin").exists());
    assert!(!p.inside.served("pool/tool_1.1_amd64.bin").exists());
}

#[test]
fn a_patch_whose_expanded_form_differs_is_refused_with_nothing_applied() {
    let mut p = Pair::new();
    let (_, media) = upgraded(&mut p);
    // A signed manifest (the outside's own key) that declares another
    // expanded form: the rebuilt bytes cannot be trusted, so nothing moves.
    edit_rebuilt(&p, &media, |r| r.expanded_blake3[0] ^= 1);
    let report = p.inside.import(&media).unwrap();
    assert!(!report.ok());
    assert!(
        matches!(
            protocol_error(&report),
            ferry_protocol::Error::BadPatch { .. }
        ),
        "{:?}",
        report.failed
    );
    assert_eq!(p.inside.applied().sequence, 1);
    assert!(!p.inside.served("pool/tool_1.1_amd64.bin").exists());
}

#[test]
fn a_patch_against_a_base_the_catalog_lacks_is_refused() {
    let mut p = Pair::new();
    let (_, media) = upgraded(&mut p);
    edit_rebuilt(&p, &media, |r| {
        if let Expanded::Patch { base, .. } = &mut r.expanded {
            base.key.path = "pool/tool_0.9_amd64.bin".into();
        }
    });
    let report = p.inside.import(&media).unwrap();
    assert!(
        matches!(protocol_error(&report), ferry_protocol::Error::MissingBase { why, .. } if why.contains("does not hold")),
        "{:?}",
        report.failed
    );
    assert_eq!(p.inside.applied().sequence, 1);
}

#[test]
fn an_unchanged_object_read_again_keeps_its_patch_encoding() {
    // Files without a fingerprint (indexes a source makes each time) are read
    // and encoded again on every export: one that was patched last time and
    // did not change must not show up as a change.
    let mut p = Pair::new();
    let (_, media) = upgraded(&mut p);
    assert!(p.inside.import(&media).unwrap().ok());
    // The same bytes written again: a new fingerprint (times), so it is read
    // and encoded again.
    std::thread::sleep(std::time::Duration::from_millis(20));
    p.outside.write("pool/tool_1.1_amd64.bin", &releases().1);
    p.outside.write("pool/notes.txt", b"one new file");
    let (e, _) = p.step().unwrap();
    assert_eq!(e.record.changed, 0, "{:?}", e.record);
    assert_eq!(e.record.added, 1);
    p.assert_in_sync();
}

/// A source listing one file under a content-addressed name (as OCI blobs
/// are named, where no name rule finds a predecessor), with the predecessor
/// it names, if any.
struct Hinted {
    path: &'static str,
    data: Vec<u8>,
    predecessor: Option<&'static str>,
}

impl agent_outside::source::Source for Hinted {
    fn name(&self) -> &str {
        "blobs"
    }
    fn kind(&self) -> ferry_protocol::catalog::SourceKind {
        ferry_protocol::catalog::SourceKind::Files
    }
    fn scan(
        &self,
        _cx: &agent_outside::source::ScanCtx<'_>,
        sink: &mut dyn FnMut(agent_outside::source::Item) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let data = self.data.clone();
        sink(agent_outside::source::Item {
            path: self.path.into(),
            predecessor: self.predecessor.map(|p| ferry_protocol::path::ObjectKey {
                source: "blobs".into(),
                path: p.into(),
            }),
            kind: agent_outside::source::ItemKind::File {
                executable: false,
                fingerprint: None,
                expected_sha256: None,
                open: Box::new(move || Ok(Box::new(std::io::Cursor::new(data)))),
            },
        })
    }
}

#[test]
fn the_predecessor_a_source_names_is_patched_against() {
    let (old, new) = releases();
    for hint in [None, Some("blobs/3f9a")] {
        let mut p = Pair::new();
        let carry = |p: &mut Pair, item: Hinted| {
            let e = p
                .outside
                .export_sources(&[Box::new(item)])
                .unwrap()
                .unwrap();
            let media = p.new_media();
            p.outside.write_to_media(&e, &media).unwrap();
            let report = p.inside.import(&media).unwrap();
            assert!(report.ok(), "{:?}", report.failed);
            e
        };
        carry(
            &mut p,
            Hinted {
                path: "blobs/3f9a",
                data: old.clone(),
                predecessor: None,
            },
        );
        let e = carry(
            &mut p,
            Hinted {
                path: "blobs/c01d",
                data: new.clone(),
                predecessor: hint,
            },
        );
        // No name rule pairs the two: only the hint makes the patch.
        assert_eq!(e.delta.patched, u64::from(hint.is_some()), "{hint:?}");
        let served = crate::served_path(&p.inside.layout, "blobs", "blobs/c01d");
        assert_eq!(std::fs::read(served).unwrap(), new);
    }
}

/// A gzip'd text of `lines` lines, line `edit` (if any) changed.
fn gzipped_text(lines: usize, edit: Option<usize>) -> Vec<u8> {
    use std::io::Write;
    let mut text = String::new();
    for i in 0..lines {
        if Some(i) == edit {
            text.push_str("an edited line of release 1.1\n");
        } else {
            text.push_str(&format!(
                "line {i}: {}\n",
                i.wrapping_mul(2_654_435_761) % 1_000_003
            ));
        }
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    gz.write_all(text.as_bytes()).unwrap();
    gz.finish().unwrap()
}

#[test]
fn an_object_is_analysed_once_even_under_a_second_key() {
    let mut p = Pair::new();
    let (old, new) = (
        gzipped_text(60_000, None),
        gzipped_text(60_000, Some(30_000)),
    );
    p.outside.write("pool/tool-1.0.tar.gz", &old);
    p.outside.write("mirror/tool-1.0.tar.gz", &old);
    assert_eq!(p.drive(), 1);
    p.outside.remove("pool/tool-1.0.tar.gz");
    p.outside.write("pool/tool-1.1.tar.gz", &new);
    let (e, report) = p.step().unwrap();
    assert!(report.ok(), "{:?}", report.failed);
    assert_eq!((e.delta.patched, e.delta.reused), (1, 0), "{:?}", e.delta);
    // The same release appears in a second directory: its analysis (a
    // recipe with preflate corrections) is taken from the cache, checked
    // again by rebuilding it, and the patch is made against this
    // directory's own predecessor.
    p.outside.remove("mirror/tool-1.0.tar.gz");
    p.outside.write("mirror/tool-1.1.tar.gz", &new);
    let (e, report) = p.step().unwrap();
    assert!(report.ok(), "{:?}", report.failed);
    assert_eq!((e.delta.patched, e.delta.reused), (1, 1), "{:?}", e.delta);
    p.assert_in_sync();
}

#[test]
fn a_damaged_cached_analysis_is_ignored() {
    let mut p = Pair::new();
    let (old, new) = (gzipped_text(60_000, None), gzipped_text(60_000, Some(10)));
    p.outside.write("pool/tool-1.0.tar.gz", &old);
    p.outside.write("mirror/tool-1.0.tar.gz", &old);
    assert_eq!(p.drive(), 1);
    p.outside.remove("pool/tool-1.0.tar.gz");
    p.outside.write("pool/tool-1.1.tar.gz", &new);
    assert!(p.step().unwrap().1.ok());
    let analyses = p.outside.layout.analyses();
    let mut kept: Vec<_> = std::fs::read_dir(&analyses)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let path = kept.pop().unwrap();
    let mut recipe = std::fs::read(&path).unwrap();
    let last = recipe.len() - 1;
    recipe[last] ^= 0x55;
    std::fs::write(&path, recipe).unwrap();
    p.outside.remove("mirror/tool-1.0.tar.gz");
    p.outside.write("mirror/tool-1.1.tar.gz", &new);
    let (e, report) = p.step().unwrap();
    assert!(report.ok(), "{:?}", report.failed);
    assert_eq!((e.delta.patched, e.delta.reused), (1, 0), "{:?}", e.delta);
    p.assert_in_sync();
}

/// Text for zip members: words in a seeded order (deflate finds matches).
fn words(len: usize, seed: u64) -> Vec<u8> {
    const W: [&[u8]; 10] = [
        b"import ",
        b"def ",
        b"return ",
        b"self",
        b".value",
        b"(x)",
        b"\n    ",
        b"numpy ",
        b"0.25",
        b"# note\n",
    ];
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(W[(x % 10) as usize]);
    }
    out
}

/// A zip as pip's wheels are made (Python's zipfile) of (name, bytes, zlib
/// level) members; `None` (the test says it is skipped) without python3.
fn python_zip(members: &[(&str, &[u8], u32)]) -> Option<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let mut code = String::from(
        "import io, sys, zipfile, os\nb = io.BytesIO()\nwith zipfile.ZipFile(b, 'w') as z:\n",
    );
    for (name, bytes, level) in members {
        std::fs::write(dir.path().join(name), bytes).unwrap();
        code += &format!(
            "\tz.write(os.path.join(sys.argv[1], '{name}'), '{name}', zipfile.ZIP_DEFLATED, {level})\n"
        );
    }
    code += "sys.stdout.buffer.write(b.getvalue())";
    let out = std::process::Command::new("python3")
        .args(["-c", &code])
        .arg(dir.path())
        .output();
    match out {
        Ok(o) if o.status.success() => Some(o.stdout),
        _ => {
            eprintln!("skipped: python3 with zipfile is needed to make the wheels");
            None
        }
    }
}

/// The outside holds `old` at `old_path`, exported and imported, then
/// `new` at `new_path` in its place (not exported yet).
fn replace(p: &mut Pair, (old_path, old): (&str, &[u8]), (new_path, new): (&str, &[u8])) {
    p.outside.write(old_path, old);
    assert_eq!(p.drive(), 1);
    p.outside.remove(old_path);
    p.outside.write(new_path, new);
}

/// Imports `media`, and checks that the inside serves `new` at `path`
/// byte for byte and is in sync with the outside; `what` names the run.
fn import_serves(p: &Pair, media: &Path, (path, new): (&str, &[u8]), what: &str) {
    let report = p.inside.import(media).unwrap();
    assert!(report.ok(), "{what}: {:?}", report.failed);
    let served = p.inside.served(path);
    assert!(
        std::fs::read(served).unwrap() == new,
        "{what}: {path} served"
    );
    p.assert_in_sync();
}

/// Text that zlib deflates at level 7 to as many bytes as at level 6, but
/// not to the same bytes.
fn same_length_at_6_and_7() -> Vec<u8> {
    let deflate = |level, plain: &[u8]| {
        use std::io::Write;
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(level));
        e.write_all(plain).unwrap();
        e.finish().unwrap()
    };
    (0u64..)
        .map(|seed| words(500 + (seed as usize % 9) * 250, seed + 7))
        .find(|t| {
            let (six, seven) = (deflate(6, t), deflate(7, t));
            six != seven && six.len() == seven.len()
        })
        .expect("some text")
}

/// A wheel over `streamed_min` (a GPU wheel's one large library, made
/// small here) is analysed as its copy is read and its predecessor's form
/// made the same way, on both sides: the bundle is the one the whole
/// analysis ships, also over `delta_max_object` (up to
/// `delta_max_streamed`), and the inside serves the wheel byte for byte
/// with its base's form spilled.
#[test]
fn a_large_wheel_analysed_as_it_is_read_ships_the_same_patch_and_rebuilds() {
    let lib = words(3 << 20, 11);
    let mut lib_new = lib.clone();
    lib_new[1 << 20..(1 << 20) + 64].fill(b'#');
    let Some(old) = python_zip(&[("lib.so", &lib, 6), ("a.py", &words(9000, 12), 6)]) else {
        return;
    };
    let new = python_zip(&[("lib.so", &lib_new, 6), ("a.py", &words(9000, 13), 6)])
        .expect("python3 ran once");
    let _counting = crate::COUNTING_STREAMED
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let mut changes = Vec::new();
    for (streamed_min, max_object) in [
        (u64::MAX, u64::MAX),
        (64 << 10, u64::MAX),
        (64 << 10, 64 << 10),
    ] {
        let mut p = Pair::new();
        p.outside.opts.delta.window = 256 << 10;
        p.outside.opts.delta.scan_held = 16 << 10;
        p.outside.opts.delta.streamed_min = streamed_min;
        p.outside.opts.delta.max_object = max_object;
        p.inside.apply.policy.reference_in_memory = 64 << 10;
        let path = "simple/gpu/gpu-1.1-py3-none-any.whl";
        replace(
            &mut p,
            ("simple/gpu/gpu-1.0-py3-none-any.whl", &old),
            (path, &new),
        );
        let before = ferry_recipe::stream_expand::streamed_analyses();
        let (e, media) = p.export_to_media().expect("a second bundle");
        let streamed = ferry_recipe::stream_expand::streamed_analyses() > before;
        assert_eq!(streamed, streamed_min != u64::MAX);
        assert_eq!(e.delta.patched, 1, "{:?}", e.delta);
        assert!(
            e.record.bytes < new.len() as u64 / 5,
            "{} bytes",
            e.record.bytes
        );
        changes.push(manifest_of(&e.dir).1.changes);
        import_serves(
            &p,
            &media,
            (path, &new),
            &format!("streamed_min {streamed_min}"),
        );
    }
    assert!(changes[0] == changes[1] && changes[1] == changes[2]);
}

/// A deb made by dpkg-deb (`-Zxz`: liblzma's multi-threaded encoder, as
/// Debian's are) holding `data` as `usr/share/big/data`, at `version`;
/// `None` (the test says it is skipped) without dpkg-deb.
fn dpkg_deb(version: &str, data: &[u8]) -> Option<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pkg");
    std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(root.join("usr/share/big")).unwrap();
    std::fs::write(
        root.join("DEBIAN/control"),
        format!(
            "Package: big\nVersion: {version}\nArchitecture: all\n\
             Maintainer: t <t@example.org>\nDescription: big\n"
        ),
    )
    .unwrap();
    std::fs::write(root.join("usr/share/big/data"), data).unwrap();
    let deb = dir.path().join("big.deb");
    let ok = std::process::Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zxz", "--build"])
        .arg(&root)
        .arg(&deb)
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipped: dpkg-deb is needed to make the debs");
        return None;
    }
    Some(std::fs::read(deb).unwrap())
}

/// A deb over `streamed_min` whose data.tar.xz is reproduced (`delta_xz =
/// always`) is analysed as its copy is read and its predecessor's form made
/// the same way, on both sides: the bundle is the one the whole analysis
/// ships, also over `delta_max_object`, and the inside serves the deb byte
/// for byte with its base's form spilled.
#[test]
fn a_large_deb_analysed_as_it_is_read_ships_the_same_patch_and_rebuilds() {
    let data = words(6 << 20, 21);
    let mut data_new = data.clone();
    data_new[3 << 20..(3 << 20) + 64].fill(b'#');
    let Some(old) = dpkg_deb("1.0", &data) else {
        return;
    };
    let new = dpkg_deb("1.1", &data_new).expect("dpkg-deb ran once");
    let _counting = crate::COUNTING_STREAMED
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let mut changes = Vec::new();
    for (streamed_min, max_object) in [
        (u64::MAX, u64::MAX),
        (64 << 10, u64::MAX),
        (64 << 10, 64 << 10),
    ] {
        let mut p = Pair::new();
        p.outside.opts.delta.window = 1 << 20;
        p.outside.opts.delta.scan_held = 16 << 10;
        p.outside.opts.delta.streamed_min = streamed_min;
        p.outside.opts.delta.max_object = max_object;
        p.outside.opts.delta.xz = agent_outside::delta::XzPolicy::Always;
        p.inside.apply.policy.reference_in_memory = 64 << 10;
        let path = "pool/main/b/big/big_1.1_all.deb";
        replace(
            &mut p,
            ("pool/main/b/big/big_1.0_all.deb", &old),
            (path, &new),
        );
        let before = ferry_recipe::stream_expand::streamed_analyses();
        let (e, media) = p.export_to_media().expect("a second bundle");
        let streamed = ferry_recipe::stream_expand::streamed_analyses() > before;
        assert_eq!(streamed, streamed_min != u64::MAX);
        assert_eq!(e.delta.patched, 1, "{:?}", e.delta);
        assert!(
            e.record.bytes < new.len() as u64 / 5,
            "{} bytes",
            e.record.bytes
        );
        changes.push(manifest_of(&e.dir).1.changes);
        import_serves(
            &p,
            &media,
            (path, &new),
            &format!("streamed_min {streamed_min}"),
        );
    }
    assert!(changes[0] == changes[1] && changes[1] == changes[2]);
}

#[test]
fn a_wheel_sharing_members_with_its_predecessor_is_patched_and_rebuilt() {
    // The new release keeps `lib.so` and `a.py`, changes `b.py`, and has
    // `odd.py` with the plain bytes the old release deflated at level 7 to
    // the same length: the copy of that member is wrong, caught by the
    // object's digest on both sides, and rebuilt by deflating.
    let (lib, a) = (words(400_000, 1), words(60_000, 2));
    let (b_old, b_new) = (words(90_000, 3), words(90_000, 4));
    let odd = same_length_at_6_and_7();
    let Some(old) = python_zip(&[
        ("lib.so", &lib, 6),
        ("a.py", &a, 6),
        ("b.py", &b_old, 6),
        ("odd.py", &odd, 7),
    ]) else {
        return;
    };
    let new = python_zip(&[
        ("lib.so", &lib, 6),
        ("a.py", &a, 6),
        ("b.py", &b_new, 6),
        ("odd.py", &odd, 6),
    ])
    .expect("python3 ran once");
    let mut p = Pair::new();
    p.outside
        .write("simple/tool/tool-1.0-py3-none-any.whl", &old);
    assert_eq!(p.drive(), 1);
    p.outside.remove("simple/tool/tool-1.0-py3-none-any.whl");
    p.outside
        .write("simple/tool/tool-1.1-py3-none-any.whl", &new);
    let (e, media) = p.export_to_media().expect("a second bundle");
    assert_eq!(e.delta.patched, 1, "{:?}", e.delta);
    let report = p.inside.import(&media).unwrap();
    assert!(report.ok(), "{:?}", report.failed);
    p.assert_in_sync();
    // A release whose shared members are all copied: no odd one among them.
    let newer = python_zip(&[
        ("lib.so", &lib, 6),
        ("a.py", &a, 6),
        ("b.py", &words(90_000, 5), 6),
        ("odd.py", &odd, 6),
    ])
    .expect("python3 ran once");
    p.outside.remove("simple/tool/tool-1.1-py3-none-any.whl");
    p.outside
        .write("simple/tool/tool-1.2-py3-none-any.whl", &newer);
    let (e, media) = p.export_to_media().expect("a third bundle");
    assert_eq!(e.delta.patched, 1, "{:?}", e.delta);
    let report = p.inside.import(&media).unwrap();
    assert!(report.ok(), "{:?}", report.failed);
    p.assert_in_sync();
}

/// A member the new release shares with its predecessor is not searched:
/// it takes the params of the member before it (here wrong: `v9.py` was
/// deflated at level 9, the member before it at 6), and both sides copy it
/// from the base. The inside holds a zip base's form with its streams even
/// when its `reference_in_memory` would spill it (a windowed patch), else
/// it would deflate that member at level 6 and refuse the object.
#[test]
fn a_shared_member_taking_wrong_params_is_copied_by_the_inside_whatever_it_spills() {
    let (a, v9) = (words(300_000, 31), words(200_000, 32));
    let (b_old, b_new) = (words(300_000, 33), words(300_000, 34));
    let Some(old) = python_zip(&[("a.py", &a, 6), ("b.py", &b_old, 6), ("v9.py", &v9, 9)]) else {
        return;
    };
    let new = python_zip(&[("a.py", &a, 6), ("b.py", &b_new, 6), ("v9.py", &v9, 9)])
        .expect("python3 ran once");
    for spill in [false, true] {
        let mut p = Pair::new();
        // Windowed: the expanded form (800 KB) is over the window.
        p.outside.opts.delta.window = 256 << 10;
        if spill {
            p.inside.apply.policy.reference_in_memory = 64 << 10;
        }
        let path = "simple/tool/tool-1.1-py3-none-any.whl";
        replace(
            &mut p,
            ("simple/tool/tool-1.0-py3-none-any.whl", &old),
            (path, &new),
        );
        let (e, media) = p.export_to_media().expect("a second bundle");
        assert_eq!(e.delta.patched, 1, "{:?}", e.delta);
        import_serves(&p, &media, (path, &new), &format!("spill {spill}"));
    }
}
