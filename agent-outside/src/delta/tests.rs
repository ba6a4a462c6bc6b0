use super::analysis::within_version;
use super::*;
use crate::test_util::noise;
use ferry_protocol::catalog::Encoding;
use std::io::Write;

fn key(path: &str) -> ObjectKey {
    ObjectKey {
        source: "s".into(),
        path: path.into(),
    }
}

fn object(data: &[u8]) -> FileObject {
    FileObject {
        size: data.len() as u64,
        sha256: Sha256::of(data),
        executable: false,
        encoding: Encoding::Chunks(Vec::new()),
    }
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// The new release: `old` with a few bytes inserted near the start and
/// changed in the middle.
fn edited(old: &[u8]) -> Vec<u8> {
    let mut new = old[..1000].to_vec();
    new.extend_from_slice(b"inserted bytes");
    new.extend_from_slice(&old[1000..]);
    let mid = new.len() / 2;
    new[mid..mid + 100].fill(7);
    new
}

/// A fresh state holding copies of `old` (the base) and `new`.
struct Kept {
    dir: tempfile::TempDir,
    refs: References,
    recipes: Recipes,
    base: FileObject,
    sha: Sha256,
}

fn kept_pair(old: &[u8], new: &[u8]) -> Kept {
    let dir = tempfile::tempdir().unwrap();
    let refs = References::new(dir.path().join("objects"));
    let recipes = Recipes::new(dir.path().join("analyses"));
    let base = object(old);
    refs.put(&base.sha256, old).unwrap();
    let sha = Sha256::of(new);
    refs.put(&sha, new).unwrap();
    Kept {
        dir,
        refs,
        recipes,
        base,
        sha,
    }
}

impl Kept {
    /// Patches `new` (its bytes) against the base at FAST with `opts`.
    fn patch(&self, new: &[u8], opts: &DeltaOptions) -> Option<Patched> {
        patch_against(
            &key("new"),
            Content::Bytes(new.to_vec()),
            &self.sha,
            &key("old"),
            &self.base,
            &self.refs,
            opts,
            FAST,
            &self.recipes,
        )
        .unwrap()
    }
}

/// Patches `new` against `old` (kept in a fresh `References`) with
/// windows of `window` bytes.
fn patch(old: &[u8], new: Vec<u8>, window: u64) -> (Option<Patched>, tempfile::TempDir) {
    patch_as(old, new, window, false, FAST)
}

/// [`patch`] at `level`, the new object given as bytes or (`kept`) only
/// as its kept copy, as the scan hands over a large one it streamed.
fn patch_as(
    old: &[u8],
    new: Vec<u8>,
    window: u64,
    kept: bool,
    level: i32,
) -> (Option<Patched>, tempfile::TempDir) {
    let Kept {
        dir,
        refs,
        recipes,
        base,
        sha,
    } = kept_pair(old, &new);
    let opts = DeltaOptions {
        window,
        ..DeltaOptions::default()
    };
    let content = if kept {
        Content::Kept {
            len: new.len() as u64,
        }
    } else {
        Content::Bytes(new)
    };
    let made = patch_against(
        &key("new"),
        content,
        &sha,
        &key("old"),
        &base,
        &refs,
        &opts,
        level,
        &recipes,
    )
    .unwrap();
    (made, dir)
}

/// The expanded form the windows of `p` decode to against `reference`.
fn decode_windows(p: &Patched, reference: &[u8]) -> Vec<u8> {
    let Frames::Windows(windows) = &p.patch else {
        panic!("not windows");
    };
    let mut out = Vec::new();
    for w in &windows.windows {
        let range = w.reference.start as usize..w.reference.end as usize;
        let frame = windows.read_frame(w, 0, w.frame_len() as usize).unwrap();
        out.extend(ferry_protocol::delta::decode(&frame, &reference[range], w.len, "t").unwrap());
    }
    out
}

#[test]
fn a_large_plain_object_is_patched_in_windows_against_the_copy_of_its_base() {
    let old = noise(600_000, 1);
    let new = edited(&old);
    let (p, _dir) = patch(&old, new.clone(), 100_000);
    let p = p.expect("patched");
    assert!(p.recipe.is_empty(), "its own expanded form");
    assert_eq!(p.base.form, BaseForm::Bytes);
    assert_eq!(p.base.len, old.len() as u64);
    assert_eq!(p.base.blake3, *blake3::hash(&old).as_bytes());
    assert_eq!(p.expanded_len, new.len() as u64);
    assert_eq!(p.expanded_blake3, *blake3::hash(&new).as_bytes());
    assert_eq!(decode_windows(&p, &old), new);
    assert!(p.cost() < 20_000, "{} bytes", p.cost());
}

#[test]
fn a_damaged_copy_of_the_base_ships_the_object_whole() {
    let old = noise(300_000, 2);
    let new = edited(&old);
    let dir = tempfile::tempdir().unwrap();
    let refs = References::new(dir.path().join("objects"));
    let base = object(&old);
    // A copy of the right size whose bytes are not the base's.
    refs.put(&base.sha256, &noise(300_000, 3)).unwrap();
    let sha = Sha256::of(&new);
    let opts = DeltaOptions {
        window: 100_000,
        ..DeltaOptions::default()
    };
    let recipes = Recipes::new(dir.path().join("analyses"));
    let made = patch_against(
        &key("new"),
        Content::Bytes(new),
        &sha,
        &key("old"),
        &base,
        &refs,
        &opts,
        FAST,
        &recipes,
    )
    .unwrap();
    assert!(made.is_none());
    assert!(
        refs.open(&base.sha256, old.len() as u64).unwrap().is_none(),
        "the damaged copy is removed"
    );
}

#[test]
fn a_compressed_object_is_patched_on_its_expanded_form_in_memory_or_in_windows() {
    let old_plain = noise(200_000, 4).repeat(2);
    let old = gz(&old_plain);
    let new = gz(&edited(&old_plain));
    for window in [DEFAULT_WINDOW, 100_000] {
        let (p, _dir) = patch(&old, new.clone(), window);
        let p = p.expect("patched");
        assert!(!p.recipe.is_empty());
        assert!(matches!(p.base.form, BaseForm::Expanded { .. }));
        // The header and trailer literal, the deflate stream decoded.
        let reference = ferry_recipe::expand(&old, &ferry_recipe::Options::default()).unwrap();
        assert_eq!(reference.len(), old_plain.len() + 18);
        assert_eq!(p.base.len, reference.len() as u64);
        let expanded = match &p.patch {
            Frames::One(frame) => {
                ferry_protocol::delta::decode(frame, &reference, p.expanded_len, "t").unwrap()
            }
            Frames::Windows(_) => decode_windows(&p, &reference),
        };
        assert_eq!(window == DEFAULT_WINDOW, matches!(p.patch, Frames::One(_)));
        let recipe = ferry_recipe::Recipe::from_bytes(&p.recipe).unwrap();
        let mut rebuilt = Vec::new();
        ferry_recipe::rebuild(&recipe, &expanded, new.len() as u64, &mut rebuilt).unwrap();
        assert_eq!(rebuilt, new);
    }
}

/// A frame as shipped: its bytes, length, BLAKE3 and reference range.
type Frame = (Vec<u8>, u64, [u8; 32], std::ops::Range<u64>);

/// What a patch ships: its recipe, frames and each window's entry.
fn shipped(p: &Patched) -> (Vec<u8>, Vec<Frame>) {
    let frames = match &p.patch {
        Frames::One(f) => vec![(f.clone(), p.expanded_len, p.expanded_blake3, 0..0)],
        Frames::Windows(ws) => ws
            .windows
            .iter()
            .map(|w| {
                let frame = ws.read_frame(w, 0, w.frame_len() as usize).unwrap();
                (frame, w.len, w.blake3, w.reference.clone())
            })
            .collect(),
    };
    (p.recipe.clone(), frames)
}

#[test]
fn an_object_kept_only_in_its_copy_is_patched_as_if_read_whole() {
    // A plain object over a window (its copy is its expanded form, read
    // a range at a time), one under it, and a compressed one (read
    // whole from the copy under its share of the budget): the same
    // patch as from the bytes.
    let old = noise(600_000, 11);
    let old_gz_plain = noise(150_000, 12).repeat(2);
    let cases = [
        (old.clone(), edited(&old), 100_000),
        (old.clone(), edited(&old), DEFAULT_WINDOW),
        (gz(&old_gz_plain), gz(&edited(&old_gz_plain)), 100_000),
    ];
    for (i, (old, new, window)) in cases.into_iter().enumerate() {
        let (from_bytes, _d1) = patch_as(&old, new.clone(), window, false, FAST);
        let (from_copy, _d2) = patch_as(&old, new.clone(), window, true, FAST);
        let (a, b) = (from_bytes.expect("patched"), from_copy.expect("patched"));
        assert_eq!(shipped(&a), shipped(&b), "case {i}");
        assert_eq!(a.base.blake3, b.base.blake3, "case {i}");
        assert_eq!(a.base.form, b.base.form, "case {i}");
        assert_eq!(
            (a.expanded_len, a.expanded_blake3),
            (b.expanded_len, b.expanded_blake3)
        );
        if i == 0 {
            assert_eq!(decode_windows(&b, &old), new);
        }
    }
}

#[test]
fn a_damaged_or_missing_copy_of_a_kept_object_ships_it_whole() {
    let old = noise(300_000, 13);
    let new = edited(&old);
    let dir = tempfile::tempdir().unwrap();
    let refs = References::new(dir.path().join("objects"));
    let recipes = Recipes::new(dir.path().join("analyses"));
    let base = object(&old);
    refs.put(&base.sha256, &old).unwrap();
    let sha = Sha256::of(&new);
    let opts = DeltaOptions {
        window: 100_000,
        ..DeltaOptions::default()
    };
    let run = || {
        patch_against(
            &key("new"),
            Content::Kept {
                len: new.len() as u64,
            },
            &sha,
            &key("old"),
            &base,
            &refs,
            &opts,
            FAST,
            &recipes,
        )
        .unwrap()
    };
    assert!(run().is_none(), "no copy");
    // A copy of the right size whose bytes are not the object's.
    let mut bad = new.clone();
    bad[200_000] ^= 1;
    std::fs::write(dir.path().join("objects").join(sha.to_hex()), &bad).unwrap();
    assert!(run().is_none(), "a damaged copy");
    assert!(
        refs.open(&sha, new.len() as u64).unwrap().is_none(),
        "the damaged copy is removed"
    );
}

/// `gzip -6 -n` of `plain` (GNU gzip), or `None` without it.
fn gnu_gzip(plain: &[u8]) -> Option<Vec<u8>> {
    use std::process::{Command, Stdio};
    let mut child = Command::new("gzip")
        .args(["-6", "-n", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let data = plain.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&data).is_ok());
    let out = child.wait_with_output().ok()?;
    (feeder.join().unwrap_or(false) && out.status.success()).then_some(out.stdout)
}

/// Text-like bytes with repeats at every distance.
fn words(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(format!("w{} ", x % 5000).as_bytes());
        if x.is_multiple_of(11) {
            out.push(b'\n');
        }
    }
    out.truncate(len);
    out
}

/// Held by the tests that count streamed analyses (a count for the whole
/// process), so that another test's analysis is not counted as theirs.
static COUNTING_STREAMED: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A GNU gzip layer kept only in its copy, at least `streamed_min` bytes,
/// is analysed as its copy is read and its base's reference form made the
/// same way (neither held whole): the patch, recipe and base record are
/// byte for byte those of the whole analysis, the windows decode to the
/// expanded form, and the recipe rebuilds the layer from it. A kept copy
/// with a flipped byte ships the layer whole.
#[test]
fn a_large_layer_is_analysed_as_its_copy_is_read_and_patched_as_if_read_whole() {
    let old_plain = words(10 << 20, 8);
    let mut new_plain = old_plain.clone();
    new_plain[5 << 20..(5 << 20) + 80].fill(b'y');
    new_plain.splice(100_000..100_000, b"a line inserted".iter().copied());
    let (Some(old), Some(new)) = (gnu_gzip(&old_plain), gnu_gzip(&new_plain)) else {
        eprintln!("skipped: no gzip");
        return;
    };
    let _counting = COUNTING_STREAMED.lock().unwrap_or_else(|e| e.into_inner());
    let run = |streamed_min: u64| {
        let kept = kept_pair(&old, &new);
        let opts = DeltaOptions {
            window: 1 << 20,
            streamed_min,
            ..DeltaOptions::default()
        };
        let before = ferry_recipe::stream_expand::streamed_analyses();
        let content = Content::Kept {
            len: new.len() as u64,
        };
        let (sha, refs) = (&kept.sha, &kept.refs);
        let p = patch_against(
            &key("new"),
            content,
            sha,
            &key("old"),
            &kept.base,
            refs,
            &opts,
            FAST,
            &kept.recipes,
        );
        let streamed = ferry_recipe::stream_expand::streamed_analyses() > before;
        (p.unwrap().expect("patched"), streamed, kept)
    };
    let (whole, streamed, _k1) = run(u64::MAX);
    assert!(!streamed, "analysed as read");
    let (read, streamed, kept) = run(1 << 20);
    assert!(streamed, "not analysed as read");
    assert_eq!(shipped(&whole), shipped(&read));
    assert_eq!(whole.base, read.base);
    assert_eq!(
        (whole.expanded_len, whole.expanded_blake3),
        (read.expanded_len, read.expanded_blake3)
    );
    let reference = ferry_recipe::expand(&old, &ferry_recipe::Options::default()).unwrap();
    let expanded = decode_windows(&read, &reference);
    let recipe = ferry_recipe::Recipe::from_bytes(&read.recipe).unwrap();
    assert!(matches!(
        recipe.segments[1],
        ferry_recipe::Segment::ZlibCuts { .. }
    ));
    let mut rebuilt = Vec::new();
    ferry_recipe::rebuild(&recipe, &expanded, new.len() as u64, &mut rebuilt).unwrap();
    assert!(rebuilt == new, "the recipe does not rebuild the layer");
    // Its kept analysis is used the next time, through the same path.
    let opts = DeltaOptions {
        window: 1 << 20,
        streamed_min: 1 << 20,
        ..DeltaOptions::default()
    };
    let again = |kept: &Kept| {
        let content = Content::Kept {
            len: new.len() as u64,
        };
        patch_against(
            &key("new"),
            content,
            &kept.sha,
            &key("old"),
            &kept.base,
            &kept.refs,
            &opts,
            FAST,
            &kept.recipes,
        )
        .unwrap()
    };
    let next = again(&kept).expect("patched");
    assert!(next.reused, "the kept analysis is not used");
    assert_eq!(shipped(&next), shipped(&read));
    // A copy with a flipped byte (its size right): the layer ships whole,
    // the copy is dropped.
    let mut bad = new.clone();
    bad[new.len() / 2] ^= 1;
    std::fs::write(
        kept.dir.path().join("objects").join(kept.sha.to_hex()),
        &bad,
    )
    .unwrap();
    assert!(again(&kept).is_none(), "a damaged copy is used");
    assert!(kept
        .refs
        .open(&kept.sha, new.len() as u64)
        .unwrap()
        .is_none());
}

/// A GNU gzip layer is cut (recipe version 4) unless the setting says the
/// insides read version 3 at most; a kept analysis made with cuts is given
/// in its serial form then.
#[test]
fn cut_streams_follow_the_recipe_version_setting() {
    let old_plain = words(9 << 20, 5);
    let mut new_plain = old_plain.clone();
    new_plain[4 << 20..(4 << 20) + 50].fill(b'x');
    let (Some(old), Some(new)) = (gnu_gzip(&old_plain), gnu_gzip(&new_plain)) else {
        eprintln!("skipped: no gzip");
        return;
    };
    let kept = kept_pair(&old, &new);
    let (recipes, sha) = (&kept.recipes, kept.sha);
    for (cuts, version) in [(true, 4u8), (false, 3), (true, 4)] {
        if !cuts {
            // What is given serially is the kept analysis, made with cuts.
            let kept = recipes.get(&sha, false).or_else(|| recipes.get(&sha, true));
            assert_eq!(kept.map(|r| r[0]), Some(4), "the kept analysis has cuts");
        }
        let opts = DeltaOptions {
            deflate_cuts: cuts,
            ..DeltaOptions::default()
        };
        let p = kept.patch(&new, &opts).expect("patched");
        assert_eq!(p.recipe[0], version, "cuts {cuts}");
        let recipe = ferry_recipe::Recipe::from_bytes(&p.recipe).unwrap();
        let cut = recipe
            .segments
            .iter()
            .any(|s| matches!(s, ferry_recipe::Segment::ZlibCuts { .. }));
        assert_eq!(cut, cuts);
        // The kept analysis stays the one with cuts (not made again).
        let kept = recipes.get(&sha, false).or_else(|| recipes.get(&sha, true));
        assert_eq!(kept.map(|r| r[0]), Some(4), "cuts {cuts}");
    }
}

/// `xz -6` of `plain` (liblzma, as dpkg-deb makes a deb's members).
fn xz(plain: &[u8]) -> Vec<u8> {
    let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
    e.write_all(plain).unwrap();
    e.finish().unwrap()
}

/// A deb's layout: an ar archive of `debian-binary` and the members given.
fn ar(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = b"!<arch>\n".to_vec();
    let binary: &[u8] = b"2.0\n";
    for (name, data) in std::iter::once(&("debian-binary", binary)).chain(members) {
        let header = format!(
            "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
            name,
            0,
            0,
            0,
            100644,
            data.len()
        );
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            out.push(b'\n');
        }
    }
    out
}

/// At `fast` a deb's xz members are left as they are (their recipe rebuilds
/// nothing), so its patch is made against its base's bytes: the unchanged
/// xz member is found there, not in a reference form whose streams are
/// decoded. A deb whose xz members are reproduced (`high`) is still patched
/// against its base's reference form.
#[test]
fn an_object_left_as_it_is_is_patched_against_its_bases_bytes() {
    let data = xz(&words(600_000, 5));
    let old = ar(&[
        ("control.tar.xz", &xz(b"old control")),
        ("data.tar.xz", &data),
    ]);
    let new = ar(&[
        ("control.tar.xz", &xz(b"new control!")),
        ("data.tar.xz", &data),
    ]);
    let (p, _dir) = patch(&old, new.clone(), DEFAULT_WINDOW);
    let p = p.expect("patched");
    assert!(p.recipe.is_empty(), "nothing is reproduced at fast");
    assert_eq!(p.base.form, BaseForm::Bytes);
    assert_eq!(p.base.len, old.len() as u64);
    let Frames::One(frame) = &p.patch else {
        panic!("one frame expected");
    };
    assert!(
        frame.len() * 20 < new.len(),
        "the unchanged member was not found: a {} byte patch of {} bytes",
        frame.len(),
        new.len()
    );
    let decoded = ferry_protocol::delta::decode(frame, &old, p.expanded_len, "t").unwrap();
    assert_eq!(decoded, new);

    // Reproduced at `high`: its reference form, the streams decoded.
    let (p, _dir) = patch_as(&old, new, DEFAULT_WINDOW, false, HIGH);
    let p = p.expect("patched");
    assert!(
        !p.recipe.is_empty(),
        "the xz members are reproduced at high"
    );
    assert!(matches!(p.base.form, BaseForm::Expanded { .. }));
}

/// A kept analysis is used only within the recipe version the insides read:
/// a cut stream given serially to readers of version 3, and a recipe naming
/// encoder 4 (version 5) not at all to readers of version 4 (analysed again).
#[test]
fn a_kept_recipe_is_used_within_the_insides_recipe_version() {
    use ferry_recipe::zlib::{ZlibParams, GNU_GZIP_ENCODER, MINIZ_OXIDE_ENCODER};
    use ferry_recipe::{DeflateCut, Options, Recipe, Segment};
    let zlib = |encoder| Segment::Zlib {
        plain_len: 10,
        compressed_len: 5,
        params: ZlibParams { encoder, level: 6 },
    };
    let miniz = Recipe {
        segments: vec![zlib(MINIZ_OXIDE_ENCODER), Segment::Literal { len: 3 }],
    }
    .to_bytes();
    let cut = Recipe {
        segments: vec![Segment::ZlibCuts {
            plain_len: 200_000,
            compressed_len: 90_000,
            params: ZlibParams {
                encoder: GNU_GZIP_ENCODER,
                level: 6,
            },
            cuts: vec![DeflateCut {
                plain: 100_000,
                bit: 360_000,
                window: 40_000,
                partial: 0,
            }],
        }],
    }
    .to_bytes();
    assert_eq!((miniz[0], cut[0]), (5, 4));
    let reading = |version: u8| Options {
        max_recipe_version: version,
        deflate_cuts: (version >= 4).then_some(ferry_recipe::DEFAULT_PIECE),
        ..Options::default()
    };
    assert_eq!(
        within_version(miniz.clone(), &reading(5)),
        Some(miniz.clone())
    );
    assert_eq!(within_version(miniz.clone(), &reading(4)), None);
    assert_eq!(within_version(cut.clone(), &reading(4)), Some(cut.clone()));
    let cut_again = cut.clone();
    let serial = within_version(cut, &reading(3)).expect("given serially");
    assert_eq!(serial[0], 3);
    assert!(matches!(
        Recipe::from_bytes(&serial).unwrap().segments[..],
        [Segment::Zlib { .. }]
    ));
    // A cut Go stream (version 7) is given serially (version 5) to readers
    // of version 6, with a GNU gzip stream's cuts kept (version 4).
    let go_cut = Recipe {
        segments: vec![
            Segment::ZlibCuts {
                plain_len: 200_000,
                compressed_len: 90_000,
                params: ZlibParams {
                    encoder: ferry_recipe::zlib::GO_FLATE_ENCODER,
                    level: 6,
                },
                cuts: vec![DeflateCut {
                    plain: 100_000,
                    bit: 360_000,
                    window: 34_464,
                    partial: 0,
                }],
            },
            Recipe::from_bytes(&cut_again).unwrap().segments[0].clone(),
        ],
    }
    .to_bytes();
    assert_eq!(go_cut[0], 7);
    assert_eq!(
        within_version(go_cut.clone(), &reading(7)),
        Some(go_cut.clone())
    );
    let v6 = within_version(go_cut.clone(), &reading(6)).expect("given serially");
    assert_eq!(v6[0], 5);
    assert!(matches!(
        Recipe::from_bytes(&v6).unwrap().segments[..],
        [Segment::Zlib { .. }, Segment::ZlibCuts { .. }]
    ));
    assert_eq!(within_version(go_cut, &reading(4)), None);
}

#[test]
fn a_windowed_patch_whose_deferred_check_fails_is_made_again_in_turn() {
    use ferry_recipe::Segment;
    let old_plain = noise(200_000, 5).repeat(2);
    let old = gz(&old_plain);
    let new = gz(&edited(&old_plain));
    let kept = kept_pair(&old, &new);
    let (recipes, sha) = (&kept.recipes, kept.sha);
    // A kept recipe that expands the object but rebuilds other bytes (its
    // stream's level changed): its check, deferred beside the windows,
    // fails, and the object is analysed again.
    let mut wrong = ferry_recipe::analyze(&new, &ferry_recipe::Options::default()).recipe;
    let mut changed = false;
    for s in &mut wrong.segments {
        if let Segment::Zlib { params, .. } = s {
            params.level = if params.level == 1 { 9 } else { 1 };
            changed = true;
        }
    }
    assert!(changed, "{:?}", wrong.segments);
    let wrong = wrong.to_bytes();
    recipes.put(&sha, false, &wrong).unwrap();
    let opts = DeltaOptions {
        window: 100_000,
        ..DeltaOptions::default()
    };
    let p = kept
        .patch(&new, &opts)
        .expect("patched once analysed again");
    assert!(!p.reused);
    assert_ne!(p.recipe, wrong);
    assert!(matches!(p.patch, Frames::Windows(_)));
    let reference = ferry_recipe::expand(&old, &ferry_recipe::Options::default()).unwrap();
    let expanded = decode_windows(&p, &reference);
    let recipe = ferry_recipe::Recipe::from_bytes(&p.recipe).unwrap();
    let mut rebuilt = Vec::new();
    ferry_recipe::rebuild(&recipe, &expanded, new.len() as u64, &mut rebuilt).unwrap();
    assert_eq!(rebuilt, new);
    // The analysis kept is the one that checked.
    assert_eq!(recipes.get(&sha, false), Some(p.recipe.clone()));
}

/// `xz -6 -T2` of `plain` (liblzma's multi-threaded mode, as dpkg-deb
/// writes a deb's members): its block header records sizes.
fn xz_threaded(plain: &[u8]) -> Vec<u8> {
    xz_threaded_at(plain, 6)
}

/// [`xz_threaded`] at `preset`.
fn xz_threaded_at(plain: &[u8], preset: u32) -> Vec<u8> {
    let stream = liblzma::stream::MtStreamBuilder::new()
        .preset(preset)
        .threads(2)
        .check(liblzma::stream::Check::Crc64)
        .encoder()
        .unwrap();
    let mut e = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
    e.write_all(plain).unwrap();
    e.finish().unwrap()
}

/// A deb whose xz member's encoder (preset 7's match finder, about 186
/// MiB) does not fit in the budget beside the windows' zstd tables at
/// `high`: its deferred check runs before the windows, not beside them, and
/// the patch is made and decodes to the expanded form its recipe rebuilds
/// the deb from.
#[test]
fn a_check_whose_encoder_does_not_fit_beside_the_windows_runs_first() {
    let old_plain = words(700_000, 11);
    let mut new_plain = old_plain.clone();
    new_plain[350_000..350_020].copy_from_slice(b"a changed line here!");
    let old = ar(&[
        ("control.tar.xz", &xz_threaded(b"old control")),
        ("data.tar.xz", &xz_threaded_at(&old_plain, 7)),
    ]);
    let new = ar(&[
        ("control.tar.xz", &xz_threaded(b"new control!")),
        ("data.tar.xz", &xz_threaded_at(&new_plain, 7)),
    ]);
    let recipe = ferry_recipe::analyze(&new, &ferry_recipe::Options::default()).recipe;
    let encoder = recipe.rebuild_memory();
    assert!(
        encoder > ferry_recipe::budget::BUDGET - (16 << 20),
        "the encoder reserves {encoder} bytes"
    );
    let (p, _dir) = patch_as(&old, new.clone(), 200_000, false, HIGH);
    let p = p.expect("patched");
    assert!(matches!(p.patch, Frames::Windows(_)), "windowed");
    let reference = ferry_recipe::expand(&old, &ferry_recipe::Options::default()).unwrap();
    let expanded = decode_windows(&p, &reference);
    let recipe = ferry_recipe::Recipe::from_bytes(&p.recipe).unwrap();
    let mut rebuilt = Vec::new();
    ferry_recipe::rebuild(&recipe, &expanded, new.len() as u64, &mut rebuilt).unwrap();
    assert!(rebuilt == new, "the deb rebuilt differs");

    // A kept recipe that rebuilds other bytes (its data member's preset
    // changed to a fast one: preset 6 with this dictionary would be 7):
    // the check, run first, fails, and the deb is analysed again.
    let kept = kept_pair(&old, &new);
    let mut wrong = recipe.clone();
    let mut changed = false;
    for s in &mut wrong.segments {
        if let ferry_recipe::Segment::Xz { params, .. } = s {
            params.preset = if params.preset == 7 { 1 } else { params.preset };
            changed = true;
        }
    }
    assert!(changed);
    kept.recipes
        .put(&kept.sha, true, &wrong.to_bytes())
        .unwrap();
    let opts = DeltaOptions {
        window: 200_000,
        ..DeltaOptions::default()
    };
    let p = patch_against(
        &key("new"),
        Content::Bytes(new.clone()),
        &kept.sha,
        &key("old"),
        &kept.base,
        &kept.refs,
        &opts,
        HIGH,
        &kept.recipes,
    )
    .unwrap()
    .expect("patched once analysed again");
    assert!(!p.reused);
    assert_eq!(p.recipe, recipe.to_bytes());
}

/// A deb kept only in its copy, at least `streamed_min` bytes, whose
/// data.tar.xz is reproduced (`delta_xz = always`): analysed as its copy is
/// read, its base's reference form made the same way, and the patch,
/// recipe and base record are those of the whole analysis; the windows
/// decode to the expanded form the recipe rebuilds the deb from. Its recipe
/// holds a large encoder, so its windows would be at most
/// [`super::ENCODER_WINDOW`] long, whatever the setting.
#[test]
fn a_large_deb_is_analysed_as_its_copy_is_read_and_patched_as_if_read_whole() {
    let old_plain = words(6 << 20, 21);
    let mut new_plain = old_plain.clone();
    new_plain[3 << 20..(3 << 20) + 40].fill(b'z');
    let old = ar(&[
        ("control.tar.xz", &xz_threaded(b"old control")),
        ("data.tar.xz", &xz_threaded(&old_plain)),
    ]);
    let new = ar(&[
        ("control.tar.xz", &xz_threaded(b"new control!")),
        ("data.tar.xz", &xz_threaded(&new_plain)),
    ]);
    assert!(
        new.len() > (1 << 20) + 8192,
        "the data member ({} bytes) is read as it goes",
        new.len()
    );
    let kept = kept_pair(&old, &new);
    let _counting = COUNTING_STREAMED.lock().unwrap_or_else(|e| e.into_inner());
    let run = |streamed_min: u64, window: u64| {
        let opts = DeltaOptions {
            window,
            streamed_min,
            xz: XzPolicy::Always,
            ..DeltaOptions::default()
        };
        let before = ferry_recipe::stream_expand::streamed_analyses();
        let content = Content::Kept {
            len: new.len() as u64,
        };
        let fresh = Recipes::new(kept.dir.path().join(format!("analyses-{streamed_min}")));
        let p = patch_against(
            &key("new"),
            content,
            &kept.sha,
            &key("old"),
            &kept.base,
            &kept.refs,
            &opts,
            FAST,
            &fresh,
        );
        let streamed = ferry_recipe::stream_expand::streamed_analyses() > before;
        (p.unwrap().expect("patched"), streamed)
    };
    let (whole, streamed) = run(u64::MAX, 1 << 20);
    assert!(!streamed, "analysed as read");
    let (read, streamed) = run(1 << 20, 1 << 20);
    assert!(streamed, "not analysed as read");
    assert_eq!(shipped(&whole), shipped(&read));
    assert_eq!(whole.base, read.base);
    assert_eq!(
        (whole.expanded_len, whole.expanded_blake3),
        (read.expanded_len, read.expanded_blake3)
    );
    let recipe = ferry_recipe::Recipe::from_bytes(&read.recipe).unwrap();
    assert!(recipe
        .segments
        .iter()
        .any(|s| matches!(s, ferry_recipe::Segment::Xz { .. })));
    let reference = ferry_recipe::expand(&old, &ferry_recipe::Options::default()).unwrap();
    let expanded = decode_windows(&read, &reference);
    let mut rebuilt = Vec::new();
    ferry_recipe::rebuild(&recipe, &expanded, new.len() as u64, &mut rebuilt).unwrap();
    assert!(rebuilt == new, "the recipe does not rebuild the deb");
    // Its windows would be at most 16 MiB, whatever the setting; a
    // recipe without a large encoder keeps the setting's.
    assert_eq!(
        super::window_for(&read.recipe, super::DEFAULT_WINDOW),
        super::ENCODER_WINDOW
    );
    assert_eq!(super::window_for(&read.recipe, 1 << 20), 1 << 20);
    let layer = ferry_recipe::analyze(&gz(&words(100_000, 3)), &ferry_recipe::Options::default());
    let layer = layer.recipe.to_bytes();
    assert_eq!(
        super::window_for(&layer, super::DEFAULT_WINDOW),
        super::DEFAULT_WINDOW
    );
    assert_eq!(
        super::window_for(&[], super::DEFAULT_WINDOW),
        super::DEFAULT_WINDOW
    );
}
