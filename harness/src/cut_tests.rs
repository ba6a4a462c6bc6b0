//! A gzip layer whose deflate stream is cut (recipe version 4): rebuilt in
//! pieces at once by the inside, bit-exactly; a crafted recipe with a wrong
//! cut is refused with nothing applied.

use crate::delta_tests::{edit_rebuilt, manifest_of};
use crate::Pair;
use ferry_protocol::catalog::{Change, ChunkRef, Encoding, Object};
use ferry_recipe::{DeflateCut, Recipe, Segment};
use std::path::Path;

const LAYER: &str = "blobs/layer.tar.gz";
const CRAFTED: &str = "blobs/crafted.recipe";

/// `tar | gzip -6 -n` (the real tools: GNU gzip) of release `release` of a
/// tree of about 13 MB of text files under `dir`: over three of the
/// analysis's 4 MiB pieces.
fn layer(dir: &Path, release: u32) -> Vec<u8> {
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
    crate::window_tests::tar_gzip(&tree, &dir.join(format!("layer-{release}.tar.gz")))
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
fn a_cut_layer_round_trips_and_a_wrong_cut_is_refused_with_nothing_applied() {
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
    let report = p.inside.import(&media).unwrap();
    assert!(report.ok(), "{:?}", report.failed);
    assert_eq!(std::fs::read(p.inside.served(LAYER)).unwrap(), new);
    p.assert_in_sync();
}
