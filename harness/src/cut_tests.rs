//! A gzip layer whose deflate stream is cut (recipe version 4; a Go-made
//! one, version 7): rebuilt in pieces at once by the inside, bit-exactly; a
//! crafted recipe with a wrong cut is refused with nothing applied.

use crate::delta_tests::{edit_rebuilt, manifest_of};
use crate::Pair;
use ferry_protocol::catalog::{Change, ChunkRef, Encoding, Object};
use ferry_recipe::{DeflateCut, Recipe, Segment};
use std::path::{Path, PathBuf};
use std::process::Command;

const LAYER: &str = "blobs/layer.tar.gz";
const CRAFTED: &str = "blobs/crafted.recipe";

/// `tar | gzip -6 -n` (the real tools: GNU gzip) of release `release` of a
/// tree of about 13 MB of text files under `dir`: over three of the
/// analysis's 4 MiB pieces.
fn layer(dir: &Path, release: u32) -> Vec<u8> {
    let tree = tree(dir, release);
    crate::window_tests::tar_gzip(&tree, &dir.join(format!("layer-{release}.tar.gz")))
}

/// Release `release` of the tree of [`layer`].
fn tree(dir: &Path, release: u32) -> PathBuf {
    let tree = dir.join(format!("tree-{release}"));
    for i in 0..40u32 {
        let mut text = String::new();
        for j in 0..9000u32 {
            let v = (i * 7919 + j * 104_729) % 1_000_003;
            let edit = release == 2 && i % 8 == 0 && j % 1000 == 7;
            text.push_str(&format!(
                "file {i} line {j} value {v} {} {}\n",
                v % 977,
                if edit { "edited" } else { "" }
            ));
        }
        let path = tree.join(format!("usr/share/doc{}/file{i:02}.txt", i % 4));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    tree
}

/// The Go helper of the recipe's tests (`recipe/tests/goflate/main.go`:
/// Go 1.19's `compress/gzip`), built offline with the `go` on the PATH
/// into `dir`, or `None` without `go`.
fn go_helper(dir: &Path) -> Option<PathBuf> {
    let exe = dir.join("goflate");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../recipe/tests/goflate");
    let built = Command::new("go")
        .args(["build", "-o"])
        .arg(&exe)
        .arg(".")
        .current_dir(&src)
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .env("GOCACHE", dir.join("gocache"))
        .status()
        .ok()?;
    assert!(built.success(), "go build of the helper failed: {built}");
    Some(exe)
}

/// The tar of [`layer`]'s tree gzipped by Go (`gzip.NewWriterLevel(w, 6)`,
/// as moby's `pkg/archive` writes Docker's layers).
fn go_layer(dir: &Path, release: u32, helper: &Path) -> Vec<u8> {
    let tree = tree(dir, release);
    let tar = Command::new("tar")
        .args(["--sort=name", "--mtime=@0", "--owner=0", "--group=0", "-C"])
        .arg(&tree)
        .args(["-cf", "-", "."])
        .output()
        .unwrap();
    assert!(tar.status.success(), "tar failed");
    let out = dir.join(format!("go-{release}.tar"));
    std::fs::write(&out, &tar.stdout).unwrap();
    let gz = Command::new(helper)
        .args(["-gzip", "6"])
        .stdin(std::fs::File::open(&out).unwrap())
        .output()
        .unwrap();
    assert!(gz.status.success(), "the Go helper failed");
    gz.stdout
}

/// The recipe the outside's analysis makes of `layer`, which must hold a
/// cut stream.
fn cut_recipe(layer: &[u8]) -> Recipe {
    let a = ferry_recipe::analyze(layer, &ferry_recipe::Options::default());
    assert!(
        a.recipe
            .segments
            .iter()
            .any(|s| matches!(s, Segment::ZlibCuts { cuts, .. } if cuts.len() >= 2)),
        "{:?}",
        a.recipe
    );
    a.recipe
}

/// The chunks of plain object `path` in the bundle at `bundle`.
fn chunks_of(bundle: &Path, path: &str) -> Vec<ChunkRef> {
    let (_, m) = manifest_of(bundle);
    m.changes
        .iter()
        .find_map(|c| match c {
            Change::Put {
                key,
                object: Object::File(f),
            } if key.path == path => match &f.encoding {
                Encoding::Chunks(c) => Some(c.clone()),
                other => panic!("{other:?}"),
            },
            _ => None,
        })
        .expect("in the bundle")
}

#[test]
fn a_cut_layer_round_trips_copying_its_base_s_parse_and_a_wrong_cut_is_refused_with_nothing_applied(
) {
    // The pieces copy the base's parse where the trees are the same: most
    // of the layer (a few lines of one file in eight are edited).
    let copied = round_trip_and_refuse(&layer);
    let plain = 40 * 9000 * 40;
    assert!(
        copied * 2 > plain,
        "{copied} of about {plain} plain bytes copied"
    );
}

/// The same for a layer gzipped by Go (encoder 3, recipe version 7).
#[test]
fn a_cut_go_layer_round_trips_and_a_wrong_cut_is_refused_with_nothing_applied() {
    let dir = tempfile::tempdir().unwrap();
    let Some(helper) = go_helper(dir.path()) else {
        eprintln!("skipped: no go on the PATH");
        return;
    };
    round_trip_and_refuse(&|work, release| {
        let gz = go_layer(work, release, &helper);
        let a = ferry_recipe::analyze(&gz, &ferry_recipe::Options::default());
        assert_eq!(a.recipe.to_bytes()[0], 7, "{:?}", a.recipe);
        gz
    });
}

/// Layer releases 1 and 2 from `layer` through a pair: a crafted wrong cut
/// refused with nothing applied, then the untouched bundle applied.
/// Gives the plain bytes the import copied from the base's parse (GNU
/// gzip's, levels 4 to 9; counted for the whole process, so other tests
/// copying meanwhile may add to it).
fn round_trip_and_refuse(layer: &dyn Fn(&Path, u32) -> Vec<u8>) -> u64 {
    type Change = fn(&mut DeflateCut);
    let wrong: [(&str, Change); 3] = [
        ("partial byte", |c| {
            c.partial ^= 1;
            if c.bit % 8 == 0 {
                c.bit += 1;
            }
        }),
        ("window position", |c| c.window -= 1),
        ("bit offset", |c| c.bit -= 8),
    ];
    for (what, change) in wrong {
        let mut p = Pair::new();
        let work = p.dir.path().join("layers");
        let (old, new) = (layer(&work, 1), layer(&work, 2));
        p.outside.write(LAYER, &old);
        assert_eq!(p.drive(), 1);
        // The bundle carries the layer as a cut recipe and, as a plain
        // file, the same recipe with one cut changed.
        let mut crafted = cut_recipe(&new);
        for s in &mut crafted.segments {
            if let Segment::ZlibCuts { cuts, .. } = s {
                change(&mut cuts[0]);
            }
        }
        p.outside.write(LAYER, &new);
        p.outside.write(CRAFTED, &crafted.to_bytes());
        let (e, media) = p.export_to_media().expect("a second bundle");
        assert_eq!(e.delta.patched, 1, "{:?}", e.delta);
        let crafted_chunks = chunks_of(&e.dir, CRAFTED);
        edit_rebuilt(&p, &media, |r| r.recipe = crafted_chunks.clone());
        let old_served = std::fs::read(p.inside.served(LAYER)).unwrap();
        let report = p.inside.import(&media).unwrap();
        assert!(!report.ok(), "{what}: applied");
        let why = format!("{:?}", report.errors);
        // Refused by the cut's own check (`RebuildError::Cuts`), not only
        // by the object's digest after other bytes were made.
        assert!(why.contains("cut deflate stream"), "{what}: {why}");
        eprintln!("{what}: refused: {why}");
        assert_eq!(p.inside.applied().sequence, 1, "{what}");
        assert_eq!(
            std::fs::read(p.inside.served(LAYER)).unwrap(),
            old_served,
            "{what}"
        );
        assert!(!p.inside.served(CRAFTED).exists(), "{what}");
    }
    // Untouched, the same bundle applies: the layer rebuilt in pieces.
    let mut p = Pair::new();
    let work = p.dir.path().join("layers");
    let (old, new) = (layer(&work, 1), layer(&work, 2));
    p.outside.write(LAYER, &old);
    assert_eq!(p.drive(), 1);
    p.outside.write(LAYER, &new);
    let (e, media) = p.export_to_media().expect("a second bundle");
    assert_eq!(e.delta.patched, 1, "{:?}", e.delta);
    let copied = ferry_recipe::reuse::copied_bytes();
    let report = p.inside.import(&media).unwrap();
    assert!(report.ok(), "{:?}", report.failed);
    assert_eq!(std::fs::read(p.inside.served(LAYER)).unwrap(), new);
    p.assert_in_sync();
    ferry_recipe::reuse::copied_bytes() - copied
}

/// Both agents spilling the base's reference form (a windowed patch: the
/// form made into a spill file as the base is read; the outside analysing
/// the layer as its copy is read, the inside keeping no form over 64 KiB in
/// memory) still copy the base's parse into the cut layer's pieces, read
/// from the base's copy and from the spill file: the outside's rebuild
/// check as the inside's rebuild, which serves the layer byte for byte.
#[test]
fn a_cut_layer_against_a_spilled_base_form_copies_its_parse_from_the_files() {
    let _counting = crate::COUNTING_STREAMED
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let mut p = Pair::new();
    p.outside.opts.delta.window = 1 << 20;
    p.outside.opts.delta.scan_held = 16 << 10;
    p.outside.opts.delta.streamed_min = 64 << 10;
    p.inside.apply.policy.reference_in_memory = 64 << 10;
    let work = p.dir.path().join("layers");
    let (old, new) = (layer(&work, 1), layer(&work, 2));
    let plain = 40 * 9000 * 40;
    p.outside.write(LAYER, &old);
    assert_eq!(p.drive(), 1);
    p.outside.write(LAYER, &new);
    let before = ferry_recipe::reuse::copied_bytes();
    let (e, media) = p.export_to_media().expect("a second bundle");
    let checked = ferry_recipe::reuse::copied_bytes() - before;
    assert!(
        checked * 2 > plain,
        "the check copied {checked} of about {plain} plain bytes"
    );
    assert_eq!(e.delta.patched, 1, "{:?}", e.delta);
    assert!(crate::window_tests::windows_of(&e.dir).len() > 2);
    let before = ferry_recipe::reuse::copied_bytes();
    let report = p.inside.import(&media).unwrap();
    assert!(report.ok(), "{:?}", report.failed);
    let copied = ferry_recipe::reuse::copied_bytes() - before;
    assert!(std::fs::read(p.inside.served(LAYER)).unwrap() == new);
    p.assert_in_sync();
    assert!(
        copied * 2 > plain,
        "{copied} of about {plain} plain bytes copied"
    );
}
