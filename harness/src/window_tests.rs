//! Windowed patches (format version 3): a gzip layer made by tar and gzip,
//! whose expanded form spans several windows, in one process.

use crate::delta_tests::{edit_rebuilt, manifest_of, protocol_error};
use crate::Pair;
use ferry_protocol::catalog::{Change, Encoding, Expanded, Object, Window};
use std::path::Path;
use std::process::Command;

const LAYER: &str = "blobs/layer.tar.gz";

/// Writes release `release` of a tree of text files under `dir` and returns
/// `tar | gzip -6 -n` of it, made by the real tools (GNU gzip: its deflate
/// is rebuilt by preflate-rs).
fn layer(dir: &Path, release: u32) -> Vec<u8> {
    let tree = dir.join(format!("tree-{release}"));
    for i in 0..48u32 {
        let mut text = String::new();
        for j in 0..900u32 {
            let v = (i * 7919 + j * 104_729) % 1_000_003;
            // Release 2 changes a few lines in every sixth file.
            let edit = release == 2 && i % 6 == 0 && j % 300 == 7;
            text.push_str(&format!(
                "file {i} line {j} value {v} {}\n",
                if edit { "edited" } else { "" }
            ));
        }
        let path = tree.join(format!("usr/share/doc{}/file{i:02}.txt", i % 4));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    tar_gzip(&tree, &dir.join(format!("layer-{release}.tar.gz")))
}

/// `tar | gzip -6 -n` of `tree` (sorted, no times or owners: the same
/// bytes each run) into `out`, made by the real tools; returns its bytes.
pub(crate) fn tar_gzip(tree: &Path, out: &Path) -> Vec<u8> {
    let script = format!(
        "tar --sort=name --mtime=@0 --owner=0 --group=0 -C {} -cf - . | gzip -6 -n > {}",
        tree.display(),
        out.display()
    );
    let ok = Command::new("sh").arg("-c").arg(&script).status().unwrap();
    assert!(ok.success(), "tar | gzip failed (both are needed)");
    std::fs::read(out).unwrap()
}

/// A pair that serves release 1 of the layer, then exports release 2 in its
/// place with 256 KiB windows (the 2 MB tar spans several).
fn upgraded(p: &mut Pair) -> (crate::Exported, std::path::PathBuf, Vec<u8>) {
    let work = p.dir.path().join("layers");
    let (old, new) = (layer(&work, 1), layer(&work, 2));
    assert_ne!(old, new);
    p.outside.opts.delta.window = 256 << 10;
    p.outside.write(LAYER, &old);
    assert_eq!(p.drive(), 1);
    p.outside.write(LAYER, &new);
    let (e, media) = p.export_to_media().expect("a second bundle");
    (e, media, new)
}

/// The windows of the layer in the bundle at `dir`.
pub(crate) fn windows_of(dir: &Path) -> Vec<Window> {
    let (version, m) = manifest_of(dir);
    assert_eq!(version, 3, "a bundle with windows is format version 3");
    m.changes
        .iter()
        .find_map(|c| match c {
            Change::Put {
                key,
                object: Object::File(f),
            } if key.path == LAYER => match &f.encoding {
                Encoding::Rebuilt(r) => match &r.expanded {
                    Expanded::Windows { windows, .. } => Some(windows.clone()),
                    other => panic!("{other:?}"),
                },
                other => panic!("{other:?}"),
            },
            _ => None,
        })
        .expect("the layer is in the delta")
}

#[test]
fn a_layer_over_several_windows_round_trips_bit_exactly() {
    let mut p = Pair::new();
    let (e, media, new) = upgraded(&mut p);
    assert_eq!(e.delta.patched, 1, "{:?}", e.delta);
    let windows = windows_of(&e.dir);
    assert!(windows.len() > 2, "{} windows", windows.len());
    assert!(
        e.record.bytes < new.len() as u64 / 10,
        "bundle is {} bytes for a {}-byte layer with a few edited lines",
        e.record.bytes,
        new.len()
    );
    let report = p.inside.import(&media).unwrap();
    assert!(report.ok(), "{:?}", report.failed);
    assert_eq!(std::fs::read(p.inside.served(LAYER)).unwrap(), new);
    p.assert_in_sync();
}

#[test]
fn a_tampered_window_is_refused_with_nothing_applied() {
    type Edit = fn(&mut Vec<Window>);
    let edits: [(&str, Edit); 2] = [
        ("swapped patches", |w| {
            let first = w[0].patch.clone();
            w[0].patch = w[1].patch.clone();
            w[1].patch = first;
        }),
        ("another BLAKE3", |w| w[1].blake3[0] ^= 1),
    ];
    for (what, edit) in edits {
        let mut p = Pair::new();
        let (_, media, _) = upgraded(&mut p);
        let old = std::fs::read(p.inside.served(LAYER)).unwrap();
        edit_rebuilt(&p, &media, |r| {
            if let Expanded::Windows { windows, .. } = &mut r.expanded {
                edit(windows);
            }
        });
        let report = p.inside.import(&media).unwrap();
        assert!(!report.ok(), "{what}: applied");
        assert!(
            matches!(
                protocol_error(&report),
                ferry_protocol::Error::BadPatch { .. }
            ),
            "{what}: {:?}",
            report.failed
        );
        assert_eq!(p.inside.applied().sequence, 1, "{what}");
        assert_eq!(
            std::fs::read(p.inside.served(LAYER)).unwrap(),
            old,
            "{what}"
        );
    }
}

/// An outside that analyses a kept gzip layer over 64 KiB as its copy is
/// read (`streamed_min`), and makes its base's reference form the same way,
/// ships the same bundle as one that holds them: the inside applies it
/// and serves the layer byte for byte, with the inside holding its base's
/// form or spilling it.
#[test]
fn a_layer_analysed_as_it_is_read_round_trips_bit_exactly() {
    let _counting = crate::COUNTING_STREAMED
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let mut bundles = Vec::new();
    let runs = [
        (u64::MAX, false, u64::MAX),
        (64 << 10, false, u64::MAX),
        (64 << 10, true, u64::MAX),
        // Over `delta_max_object`: patched all the same, as a layer
        // (`delta_max_streamed`), its copies kept by both exports.
        (64 << 10, false, 64 << 10),
    ];
    for (streamed_min, spilled_inside, max_object) in runs {
        let mut p = Pair::new();
        // Handed over as its kept copy (not read whole by the scan).
        p.outside.opts.delta.scan_held = 16 << 10;
        p.outside.opts.delta.streamed_min = streamed_min;
        p.outside.opts.delta.max_object = max_object;
        if spilled_inside {
            p.inside.apply.policy.reference_in_memory = 64 << 10;
        }
        let before = ferry_recipe::stream_expand::streamed_analyses();
        let (e, media, new) = upgraded(&mut p);
        let streamed = ferry_recipe::stream_expand::streamed_analyses() > before;
        assert_eq!(streamed, streamed_min != u64::MAX, "{streamed_min}");
        assert_eq!(e.delta.patched, 1, "{:?}", e.delta);
        assert!(windows_of(&e.dir).len() > 2);
        bundles.push(manifest_of(&e.dir).1.changes);
        let report = p.inside.import(&media).unwrap();
        assert!(report.ok(), "{:?}", report.failed);
        assert_eq!(std::fs::read(p.inside.served(LAYER)).unwrap(), new);
        p.assert_in_sync();
    }
    assert!(
        bundles[0] == bundles[1],
        "the streamed analysis ships another patch"
    );
    assert!(bundles[1] == bundles[3]);

    // Over `delta_max_streamed` too, or not one gzip member (the layer's tar
    // itself, over `delta_max_object`): shipped whole, never read whole.
    let mut p = Pair::new();
    p.outside.opts.delta.scan_held = 16 << 10;
    p.outside.opts.delta.streamed_min = 64 << 10;
    p.outside.opts.delta.max_object = 64 << 10;
    p.outside.opts.delta.max_streamed = 64 << 10;
    let (e, media, new) = upgraded(&mut p);
    assert_eq!(e.delta.patched, 0, "{:?}", e.delta);
    assert!(p.inside.import(&media).unwrap().ok());
    assert_eq!(std::fs::read(p.inside.served(LAYER)).unwrap(), new);
    let mut p = Pair::new();
    p.outside.opts.delta.window = 256 << 10;
    p.outside.opts.delta.scan_held = 16 << 10;
    p.outside.opts.delta.max_object = 64 << 10;
    let work = p.dir.path().join("layers");
    let (old, new) = (layer(&work, 1), layer(&work, 2));
    let tar = |gz: &[u8]| ferry_recipe::expand(gz, &ferry_recipe::Options::default()).unwrap();
    const TAR: &str = "blobs/layer.tar";
    p.outside.write(TAR, &tar(&old));
    assert_eq!(p.drive(), 1);
    p.outside.write(TAR, &tar(&new));
    let (e, media) = p.export_to_media().expect("a second bundle");
    assert_eq!(e.delta.patched, 0, "{:?}", e.delta);
    assert!(p.inside.import(&media).unwrap().ok());
    assert!(std::fs::read(p.inside.served(TAR)).unwrap() == tar(&new));
}

/// An inside that holds no base reference form longer than 64 KiB in
/// memory makes the layer's base's form into a spill file as it reads the
/// base, and each window reads its range from it: the layer round-trips
/// bit-exactly; a tampered window is still refused with nothing applied;
/// and a base with bit rot is named, never used.
#[test]
fn a_layer_against_a_spilled_reference_form_round_trips_and_bad_inputs_are_refused() {
    let spilled = |p: &mut Pair| p.inside.apply.policy.reference_in_memory = 64 << 10;
    let mut p = Pair::new();
    spilled(&mut p);
    let (e, media, new) = upgraded(&mut p);
    assert!(windows_of(&e.dir).len() > 2);
    let report = p.inside.import(&media).unwrap();
    assert!(report.ok(), "{:?}", report.failed);
    assert_eq!(std::fs::read(p.inside.served(LAYER)).unwrap(), new);
    p.assert_in_sync();

    // The layer's tar itself, not gzipped (a base that is not one gzip
    // member): its form is held whole after all, and it round-trips too.
    let mut p = Pair::new();
    spilled(&mut p);
    p.outside.opts.delta.window = 256 << 10;
    let work = p.dir.path().join("layers");
    let (old, new) = (layer(&work, 1), layer(&work, 2));
    let tar = |gz: &[u8]| ferry_recipe::expand(gz, &ferry_recipe::Options::default()).unwrap();
    const TAR: &str = "blobs/layer.tar";
    p.outside.write(TAR, &tar(&old));
    assert_eq!(p.drive(), 1);
    p.outside.write(TAR, &tar(&new));
    let (e, media) = p.export_to_media().expect("a second bundle");
    assert_eq!(e.delta.patched, 1, "{:?}", e.delta);
    let report = p.inside.import(&media).unwrap();
    assert!(report.ok(), "{:?}", report.failed);
    assert!(std::fs::read(p.inside.served(TAR)).unwrap() == tar(&new));

    let mut p = Pair::new();
    spilled(&mut p);
    let (_, media, _) = upgraded(&mut p);
    let old = std::fs::read(p.inside.served(LAYER)).unwrap();
    edit_rebuilt(&p, &media, |r| {
        if let Expanded::Windows { windows, .. } = &mut r.expanded {
            windows[1].blake3[0] ^= 1;
        }
    });
    let report = p.inside.import(&media).unwrap();
    assert!(!report.ok(), "a tampered window was applied");
    assert!(
        matches!(
            protocol_error(&report),
            ferry_protocol::Error::BadPatch { .. }
        ),
        "{:?}",
        report.failed
    );
    assert_eq!(std::fs::read(p.inside.served(LAYER)).unwrap(), old);

    // Bit rot in the base's plain text (its stream still decodes) and in
    // its header: the base is named, and the served layer is kept.
    for at in [old.len() / 2, 3] {
        let mut p = Pair::new();
        spilled(&mut p);
        let (_, media, _) = upgraded(&mut p);
        let served = p.inside.object_of(LAYER);
        let mut bytes = std::fs::read(&served).unwrap();
        bytes[at] ^= 1;
        std::fs::remove_file(&served).unwrap();
        std::fs::write(&served, &bytes).unwrap();
        let report = p.inside.import(&media).unwrap();
        assert!(!report.ok(), "byte {at}: applied");
        assert!(
            matches!(protocol_error(&report), ferry_protocol::Error::MissingBase { base, .. } if base.ends_with("layer.tar.gz")),
            "byte {at}: {:?}",
            report.failed
        );
        assert_eq!(p.inside.applied().sequence, 1, "byte {at}");
    }
}
