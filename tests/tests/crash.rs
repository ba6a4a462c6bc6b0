//! Crash safety.
//!
//! - `kill -9` at any instant of an import leaves the store serving the old
//!   generation or the new one, never a mix, and running the import again
//!   completes it and leaves nothing behind.
//! - `kill -9` at any instant of an export never leaves a bundle under its
//!   final name on the media that does not verify, and exporting again gets
//!   bundle 2 onto the media, also after a kill between the ledger commit
//!   and the end of the copy to the media (the ledger records whether each
//!   bundle was written out, and the next export writes an unwritten one first).

use ferry_e2e::*;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;

type Digest = BTreeMap<String, String>;

/// Version 1, about 23 MB: 30 text files, 6 random files of 3 MiB, a symlink, an empty file.
fn write_v1(env: &Env) {
    for i in 0..30u64 {
        env.write_src(&format!("text/t{i:02}.txt"), &text_bytes(150_000, 100 + i));
    }
    for i in 0..6u64 {
        write_random_file(&env.src.join(format!("bin/r{i}.bin")), 3 * MIB, 200 + i);
    }
    env.write_src("empty", b"");
    std::os::unix::fs::symlink("bin/r0.bin", env.src.join("latest")).unwrap();
}

/// Version 2: about 23 MB of new data. Two random files removed, two
/// rewritten, four added; ten text files rewritten, five removed, twenty
/// added; the symlink retargeted. `bin/r4`, `bin/r5` and fifteen text files
/// stay as they were (hard links into the new generation).
fn write_v2(env: &Env) {
    for i in 0..2 {
        std::fs::remove_file(env.src.join(format!("bin/r{i}.bin"))).unwrap();
    }
    for i in 2..4u64 {
        write_random_file(&env.src.join(format!("bin/r{i}.bin")), 3 * MIB, 300 + i);
    }
    for i in 6..10u64 {
        write_random_file(&env.src.join(format!("bin/r{i}.bin")), 3 * MIB, 400 + i);
    }
    for i in 0..10u64 {
        env.write_src(&format!("text/t{i:02}.txt"), &text_bytes(160_000, 500 + i));
    }
    for i in 25..30 {
        std::fs::remove_file(env.src.join(format!("text/t{i:02}.txt"))).unwrap();
    }
    for i in 0..20u64 {
        env.write_src(
            &format!("new/sub{}/n{i:02}.txt", i % 3),
            &text_bytes(150_000, 600 + i),
        );
    }
    std::fs::remove_file(env.src.join("latest")).unwrap();
    std::os::unix::fs::symlink("bin/r9.bin", env.src.join("latest")).unwrap();
}

/// Which paths differ between two digests, for a failure message.
fn diff(a: &Digest, b: &Digest) -> String {
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let d: Vec<String> = keys
        .into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| {
            let s = |x: Option<&String>| {
                x.map_or("absent".to_string(), |v| v.chars().take(16).collect())
            };
            format!("{k}: {} vs {}", s(a.get(k)), s(b.get(k)))
        })
        .collect();
    format!(
        "{} paths differ: {}",
        d.len(),
        d.iter().take(12).cloned().collect::<Vec<_>>().join("; ")
    )
}

/// The tree `state` serves, as version 1 or 2; panics if it is neither.
fn served_version(state: &Path, v1: &Digest, v2: &Digest, what: &str) -> u8 {
    assert!(
        state.join("store/current/index.meta").is_file(),
        "{what}: no generation is current (current -> {:?})",
        std::fs::read_link(state.join("store/current"))
    );
    let d = served_digest_of(state, "tools");
    if &d == v1 {
        1
    } else if &d == v2 {
        2
    } else {
        panic!(
            "{what}: the served tree is neither version 1 ({}) nor version 2 ({})",
            diff(&d, v1),
            diff(&d, v2)
        );
    }
}

/// Chunk file names in a state's chunk store (temporary files included).
fn chunk_names(state: &Path) -> BTreeSet<String> {
    fanned_names(&state.join("chunks"))
}

/// File names one level below the fan-out directories of `root`.
fn fanned_names(root: &Path) -> BTreeSet<String> {
    dir_names(root)
        .into_iter()
        .flat_map(|fan| dir_names(&root.join(fan)))
        .collect()
}

/// Kills `child` with SIGKILL (a no-op if it has exited) and reaps it.
/// Returns whether the kill is what ended it.
fn kill9(mut child: Child) -> (bool, ExitStatus) {
    child.kill().unwrap();
    let status = child.wait().unwrap();
    (status.signal() == Some(9), status)
}

/// Kills `child` and counts the trial: `interrupted` when the kill landed,
/// `completed` when the process had already exited, which it must have done
/// successfully (`what` names the trial and process for that failure).
/// Returns whether the kill landed.
fn kill9_counted(child: Child, what: &str, interrupted: &mut u32, completed: &mut u32) -> bool {
    let (killed, status) = kill9(child);
    if killed {
        *interrupted += 1;
    } else {
        assert!(status.success(), "{what} failed on its own: {status:?}");
        *completed += 1;
    }
    killed
}

/// How a killed trial's process ended, for messages.
fn ended(killed: bool) -> &'static str {
    if killed {
        "killed"
    } else {
        "had exited"
    }
}

/// A directory for the state copies the trials make and kill processes in:
/// under /dev/shm when it exists (a RAM filesystem, so copies, deletions and
/// the importer's syncfs do not queue behind other jobs' disk writes; a
/// SIGKILL leaves the same kernel state either way), else the system's
/// temporary directory.
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::Builder::new()
            .prefix("ferry-crash-")
            .tempdir_in(shm)
        {
            return d;
        }
    }
    tempfile::tempdir().unwrap()
}

/// Everything the import tests share: two versions exported, bundle 1
/// imported (the pristine state), and a clean import of bundle 2 (the
/// reference).
struct Fixture {
    env: Env,
    /// Where the state copies go.
    scratch: tempfile::TempDir,
    v1: Digest,
    v2: Digest,
    media2: PathBuf,
    /// Inside state with bundle 1 applied; only ever copied.
    pristine: PathBuf,
    /// Generation serving bundle 1 in the pristine state.
    g1: String,
    pristine_chunks: usize,
    /// Inside state after a clean import of bundle 2 into a copy of the pristine state.
    reference: PathBuf,
    reference_chunks: BTreeSet<String>,
    /// How long a clean import takes (median of three).
    import_time: Duration,
}

impl Fixture {
    fn new() -> Fixture {
        let env = Env::new();
        write_v1(&env);
        let v1_src = env.root().join("v1-src");
        copy_tree(&env.src, &v1_src);
        env.export("media1").expect_ok();
        write_v2(&env);
        let v2_src = env.root().join("v2-src");
        copy_tree(&env.src, &v2_src);
        env.export("media2").expect_ok();
        let v1 = tree_digest(&v1_src);
        let v2 = tree_digest(&v2_src);
        assert_ne!(v1, v2);

        env.import("media1").expect_ok();
        let scratch = scratch();
        let pristine = scratch.path().join("pristine-in");
        copy_tree(&env.in_state, &pristine);
        let st = status_of(&pristine);
        assert_eq!(st.applied_sequence, 1);
        let g1 = st.generation.clone().expect("a generation after bundle 1");
        assert_eq!(st.serving_generation.as_deref(), Some(g1.as_str()));
        assert_eq!(served_version(&pristine, &v1, &v2, "pristine"), 1);
        let pristine_chunks = chunk_names(&pristine).len();
        let media2 = env.root().join("media2");

        let mut fx = Fixture {
            env,
            scratch,
            v1,
            v2,
            media2,
            pristine,
            g1,
            pristine_chunks,
            reference: PathBuf::new(),
            reference_chunks: BTreeSet::new(),
            import_time: Duration::ZERO,
        };
        // The median of three clean runs (the last is kept as the
        // reference), so a burst of load from elsewhere does not skew the
        // kill spread.
        let mut times = Vec::new();
        let mut reference = PathBuf::new();
        for i in 0..3 {
            reference = fx.fresh_copy(&format!("clean-{i}"));
            let t0 = Instant::now();
            let st = fx.import_cmd(&reference).status().unwrap();
            times.push(t0.elapsed());
            assert!(st.success(), "a clean import failed");
            if i < 2 {
                std::fs::remove_dir_all(&reference).unwrap();
            }
        }
        times.sort();
        fx.import_time = times[1];
        assert_eq!(served_version(&reference, &fx.v1, &fx.v2, "reference"), 2);
        let st = status_of(&reference);
        assert_eq!(st.applied_sequence, 2);
        assert_eq!(st.generation, st.serving_generation);
        fx.reference_chunks = chunk_names(&reference);
        fx.reference = reference;
        fx
    }

    /// `ferry-in --state STATE import MEDIA2`, quiet.
    fn import_cmd(&self, state: &Path) -> Command {
        let mut c = Command::new(bin("ferry-in"));
        c.arg("--state")
            .arg(state)
            .arg("import")
            .arg(&self.media2)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    }

    /// A fresh copy of the pristine state.
    fn fresh_copy(&self, name: &str) -> PathBuf {
        let copy = self.scratch.path().join(name);
        copy_tree(&self.pristine, &copy);
        copy
    }

    /// Where an import was when it was killed, judged from what it left.
    fn phase(&self, state: &Path, st: &Status) -> &'static str {
        let gens = dir_names(&state.join("store/gens"));
        let chunks = chunk_names(state).len();
        // Chunks are extracted into `staging/` and join the store after the build.
        let staged = fanned_names(&state.join("staging")).len();
        if st.applied_sequence == 2 {
            if st.serving_generation.as_deref() == Some(self.g1.as_str()) {
                "committed, link not switched"
            } else if gens.len() > 1 || chunks != self.reference_chunks.len() {
                "switched, cleanup unfinished"
            } else {
                "switched and cleaned up"
            }
        } else if gens.iter().any(|g| g.starts_with("00000002-")) {
            "generation renamed, not committed"
        } else if gens.iter().any(|g| g.starts_with(".tmp-")) {
            "building generation"
        } else if staged > 0 || chunks > self.pristine_chunks {
            "extracting chunks"
        } else {
            "before extraction"
        }
    }

    /// The checks right after a kill: one version or the other is served,
    /// `status` works, and the database agrees with what is served (or is
    /// ahead of it: committed, link not yet switched). Returns the version
    /// served and the applied sequence.
    fn check_after_kill(&self, state: &Path, what: &str) -> (u8, Status) {
        let version = served_version(state, &self.v1, &self.v2, what);
        let st = status_of(state);
        match (version, st.applied_sequence) {
            (2, 2) | (1, 2) => {}
            (1, 1) => {
                assert_eq!(
                    st.generation.as_deref(),
                    Some(self.g1.as_str()),
                    "{what}: {st:?}"
                );
                assert_eq!(
                    st.serving_generation.as_deref(),
                    Some(self.g1.as_str()),
                    "{what}: {st:?}"
                );
            }
            (v, a) => panic!("{what}: version {v} is served but the database says {a}: {st:?}"),
        }
        (version, st)
    }

    /// Runs the import again: it succeeds, version 2 is served, and only the
    /// current generation (the previous one is dropped after the switch) and
    /// the reference's chunks remain.
    fn check_rerun(&self, state: &Path, what: &str) {
        let rerun = ferry_in(state, &["import", self.media2.to_str().unwrap()]);
        assert!(
            rerun.ok,
            "{what}: the second import failed:\n{}",
            rerun.all()
        );
        let st = status_of(state);
        assert_eq!(
            st.applied_sequence, 2,
            "{what}: after the second import: {st:?}"
        );
        assert_eq!(
            st.generation, st.serving_generation,
            "{what}: after the second import: {st:?}"
        );
        assert_eq!(
            served_version(
                state,
                &self.v1,
                &self.v2,
                &format!("{what}, after the second import")
            ),
            2,
            "{what}: after the second import the store still serves version 1"
        );
        let gens = dir_names(&state.join("store/gens"));
        let want = vec![st.generation.clone().unwrap()];
        assert_eq!(
            gens, want,
            "{what}: generations left after the second import (want the current one only)"
        );
        assert_eq!(
            dir_names(&state.join("store")),
            ["current", "gens"],
            "{what}: leftovers in store/"
        );
        assert_eq!(
            chunk_names(state),
            self.reference_chunks,
            "{what}: the chunk store differs from a clean import's"
        );
        assert!(
            !state.join("staging").exists(),
            "{what}: the staging area is left after the second import: {:?}",
            dir_names(&state.join("staging"))
        );
    }
}

/// When a trial kills the import.
enum Kill {
    /// This long after the spawn.
    After(Duration),
    /// As soon as an entry whose name starts with this appears in `store/gens`.
    OnGen(&'static str),
    /// As soon as `store/current` no longer points at bundle 1's generation.
    OnSwitch,
}

#[test]
fn kill9_during_import_leaves_old_or_new_generation_and_rerun_completes() {
    let _heavy = heavy();
    let t_all = Instant::now();
    let fx = Fixture::new();
    let t = fx.import_time;
    eprintln!(
        "bundle 2: {:.1} MB on media; a clean import of it takes {t:?} (setup {:?})",
        dir_bytes(&fx.env.only_bundle("media2")) as f64 / 1e6,
        t_all.elapsed()
    );

    // A few very early kills, an even spread over 0..1.2 T, and three aimed
    // at moments: a generation directory appears (build start, rename), and
    // `current` is switched.
    let mut kills: Vec<Kill> = [1, 5, 15]
        .iter()
        .map(|&ms| Kill::After(Duration::from_millis(ms)))
        .collect();
    let spread = 22;
    kills.extend(
        (0..spread).map(|i| Kill::After(t.mul_f64(1.2 * (i as f64 + 0.5) / spread as f64))),
    );
    kills.push(Kill::OnGen(".tmp-"));
    kills.push(Kill::OnGen("00000002-"));
    kills.push(Kill::OnSwitch);

    let mut interrupted = 0u32;
    let mut completed = 0u32;
    let mut phases: BTreeMap<&str, usize> = BTreeMap::new();
    for (n, kill) in kills.iter().enumerate() {
        let copy = fx.fresh_copy(&format!("trial-{n:02}"));
        let gens = copy.join("store/gens");
        let t0 = Instant::now();
        let mut child = fx.import_cmd(&copy).spawn().unwrap();
        let when = match kill {
            Kill::After(d) => {
                std::thread::sleep(*d);
                format!("kill after {d:?}")
            }
            Kill::OnGen(prefix) => {
                while child.try_wait().unwrap().is_none()
                    && !dir_names(&gens).iter().any(|g| g.starts_with(prefix))
                {}
                format!("kill when {prefix}* appeared, {:?}", t0.elapsed())
            }
            Kill::OnSwitch => {
                let link = copy.join("store/current");
                let g1 = Path::new("gens").join(&fx.g1);
                while child.try_wait().unwrap().is_none()
                    && std::fs::read_link(&link).is_ok_and(|l| l == g1)
                {}
                format!("kill when current switched, {:?}", t0.elapsed())
            }
        };
        let killed = kill9_counted(
            child,
            &format!("trial {n}: the import"),
            &mut interrupted,
            &mut completed,
        );
        let what = format!("trial {n} ({when}, {})", ended(killed));

        let (version, st) = fx.check_after_kill(&copy, &what);
        let ph = if killed {
            fx.phase(&copy, &st)
        } else {
            "completed"
        };
        *phases.entry(ph).or_default() += 1;
        eprintln!(
            "{what}: serving version {version}, applied {}: {ph}",
            st.applied_sequence
        );
        fx.check_rerun(&copy, &what);
        std::fs::remove_dir_all(&copy).unwrap();
    }

    eprintln!(
        "import kill spread over {} trials (clean import {t:?}): {interrupted} interrupted, \
         {completed} after the import had exited; by phase: {phases:?}; total {:?}",
        kills.len(),
        t_all.elapsed()
    );
    assert!(
        interrupted >= 5,
        "only {interrupted} of {} kills landed before the import exited: the test proves little",
        kills.len()
    );
}

/// The states a crash leaves at the instants the kill spread rarely hits
/// (they last microseconds), built by hand from the reference run, and the
/// next import recovers each.
#[test]
fn states_between_apply_steps_are_recovered_by_the_next_import() {
    let _heavy = heavy();
    let fx = Fixture::new();
    let st2 = status_of(&fx.reference);
    let g2 = st2.generation.clone().unwrap();
    let merge_dir = |from: &Path, into: &Path, dir: &str| {
        if !from.join(dir).exists() {
            return;
        }
        std::fs::create_dir_all(into.join(dir)).unwrap();
        // `cp -a SRC/. DST` merges SRC's tree into DST.
        let st = Command::new("cp")
            .arg("-a")
            .arg(from.join(dir).join("."))
            .arg(into.join(dir))
            .status()
            .unwrap();
        assert!(st.success());
    };
    let merge_chunks = |from: &Path, into: &Path| merge_dir(from, into, "chunks");
    // A generation is its index over objects: the objects of the one that
    // is not the copy's go with it (written before the commit; dropped only
    // after the switch).
    let merge_objects = |from: &Path, into: &Path| merge_dir(from, into, "objects");

    // Killed between the commit (6) and the switch of `current` (7): the
    // database names bundle 2 and its generation, `current` still points at
    // bundle 1's, which serves version 1 until the next import.
    let a = fx.scratch.path().join("between-commit-and-switch");
    copy_tree(&fx.reference, &a);
    // Bundle 1's generation is dropped only after the switch.
    copy_tree(
        &fx.pristine.join("store/gens").join(&fx.g1),
        &a.join("store/gens").join(&fx.g1),
    );
    let tmp_link = a.join("store/.current.tmp");
    std::os::unix::fs::symlink(Path::new("gens").join(&fx.g1), &tmp_link).unwrap();
    std::fs::rename(&tmp_link, a.join("store/current")).unwrap();
    merge_chunks(&fx.pristine, &a); // bundle 1's chunks are not pruned yet
    merge_objects(&fx.pristine, &a); // nor its objects
    let (version, st) = fx.check_after_kill(&a, "between commit and switch");
    assert_eq!((version, st.applied_sequence), (1, 2));
    assert_eq!(st.generation.as_deref(), Some(g2.as_str()));
    assert_eq!(st.serving_generation.as_deref(), Some(fx.g1.as_str()));
    fx.check_rerun(&a, "between commit and switch");
    assert_eq!(status_of(&a).generation.as_deref(), Some(g2.as_str()));

    // Killed between the rename of the new generation (5) and the commit (6):
    // a complete generation under its final name that the database does not
    // name, and every new chunk extracted.
    let b = fx.fresh_copy("between-rename-and-commit");
    copy_tree(
        &fx.reference.join("store/gens").join(&g2),
        &b.join("store/gens").join(&g2),
    );
    merge_chunks(&fx.reference, &b);
    merge_objects(&fx.reference, &b);
    let (version, st) = fx.check_after_kill(&b, "between rename and commit");
    assert_eq!((version, st.applied_sequence), (1, 1));
    fx.check_rerun(&b, "between rename and commit");

    // Killed while extracting (3) and building (5): staged chunks, a
    // half-written chunk under its temporary name, a half-built `.tmp-`
    // generation, and a `.current.tmp` link from an earlier interrupted switch.
    let c = fx.fresh_copy("while-building");
    // A chunk of bundle 2 as extraction stages it (raw codec, then its length).
    let r6 = random_bytes(100_000, 1);
    let some_chunk = &ferry_protocol::id::ChunkId::of(&r6).to_hex();
    let staged = c.join("staging").join(&some_chunk[..2]);
    std::fs::create_dir_all(&staged).unwrap();
    let mut stored = vec![0u8];
    stored.extend_from_slice(&(r6.len() as u32).to_le_bytes());
    stored.extend_from_slice(&r6);
    std::fs::write(staged.join(some_chunk), stored).unwrap();
    std::fs::write(staged.join(format!(".{some_chunk}.tmp")), b"\x01half").unwrap();
    let fan = c.join("chunks").join(&some_chunk[..2]);
    std::fs::create_dir_all(&fan).unwrap();
    std::fs::write(fan.join(format!(".{some_chunk}.tmp")), b"\x01half").unwrap();
    let tmp_gen = c.join("store/gens/.tmp-00000002-0badf00d/files/tools/bin");
    std::fs::create_dir_all(&tmp_gen).unwrap();
    std::fs::write(tmp_gen.join("r6.bin"), &r6).unwrap();
    std::os::unix::fs::symlink("gens/.tmp-00000002-0badf00d", c.join("store/.current.tmp"))
        .unwrap();
    let (version, st) = fx.check_after_kill(&c, "while building");
    assert_eq!((version, st.applied_sequence), (1, 1));
    fx.check_rerun(&c, "while building");
}

/// The inside and outside states the export tests start from: bundle 1
/// exported and imported, version 2 written to the source but not exported.
fn export_fixture() -> (Env, Digest, tempfile::TempDir) {
    let env = Env::new();
    write_v1(&env);
    env.export("media1").expect_ok();
    env.import("media1").expect_ok();
    write_v2(&env);
    let v2 = tree_digest(&env.src);
    (env, v2, scratch())
}

/// `ferry-out --state STATE export --config CONFIG --to MEDIA`, quiet.
fn export_cmd(env: &Env, state: &Path, media: &Path) -> Command {
    let mut c = Command::new(bin("ferry-out"));
    c.arg("--state")
        .arg(state)
        .args(["export", "--config", env.config.to_str().unwrap(), "--to"])
        .arg(media)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

/// Every non-dot entry of `media` must be a bundle directory that verifies
/// against the inside state `inside`. Returns those bundle directories.
fn assert_media_holds_only_good_bundles(media: &Path, inside: &Path, what: &str) -> Vec<PathBuf> {
    let mut good = Vec::new();
    for name in dir_names(media) {
        if name.starts_with('.') {
            continue; // an unfinished write, which readers skip
        }
        let p = media.join(&name);
        assert!(
            p.join("manifest.ferry").is_file(),
            "{what}: {} is on the media under a final name but holds no manifest ({:?})",
            p.display(),
            dir_names(&p)
        );
        let r = ferry_in(inside, &["verify", p.to_str().unwrap()]);
        assert!(
            r.ok,
            "{what}: {} does not verify:\n{}",
            p.display(),
            r.all()
        );
        good.push(p);
    }
    good
}

/// Imports `media` into a copy of `env`'s inside state and checks version 2 is served.
fn assert_imports_v2(env: &Env, media: &Path, v2: &Digest, copy: &Path, what: &str) {
    copy_tree(&env.in_state, copy);
    ferry_in(copy, &["import", media.to_str().unwrap()]).expect_ok();
    assert_eq!(status_of(copy).applied_sequence, 2, "{what}");
    assert_eq!(&served_digest_of(copy, "tools"), v2, "{what}");
}

#[test]
fn kill9_during_export_never_leaves_a_broken_bundle_on_media() {
    let _heavy = heavy();
    let t_all = Instant::now();
    let (env, v2, scratch) = export_fixture();
    let scratch = scratch.path();

    // A clean run, for its duration.
    let reference = scratch.join("reference-out");
    copy_tree(&env.out_state, &reference);
    let t0 = Instant::now();
    assert!(export_cmd(&env, &reference, &scratch.join("media-ref"))
        .status()
        .unwrap()
        .success());
    let t = t0.elapsed();
    let bundles = assert_media_holds_only_good_bundles(
        &scratch.join("media-ref"),
        &env.in_state,
        "reference",
    );
    assert_eq!(bundles.len(), 1);
    let bundle_name = bundles[0].file_name().unwrap().to_owned();
    eprintln!(
        "a clean export of bundle 2 takes {t:?} (setup {:?})",
        t_all.elapsed()
    );

    let mut delays: Vec<Duration> = [1, 5].iter().map(|&ms| Duration::from_millis(ms)).collect();
    let spread = 10;
    delays.extend((0..spread).map(|i| t.mul_f64(1.2 * (i as f64 + 0.5) / spread as f64)));
    let (mut interrupted, mut completed, mut partial_on_media) = (0u32, 0u32, 0);
    let mut committed_not_on_media = Vec::new();
    for (n, delay) in delays.iter().enumerate() {
        let state = scratch.join(format!("out-{n:02}"));
        let media = scratch.join(format!("media-{n:02}"));
        copy_tree(&env.out_state, &state);
        let child = export_cmd(&env, &state, &media).spawn().unwrap();
        std::thread::sleep(*delay);
        let killed = kill9_counted(
            child,
            &format!("trial {n}: the export"),
            &mut interrupted,
            &mut completed,
        );
        let what = format!("export trial {n} (kill after {delay:?}, {})", ended(killed));
        let on_media = dir_names(&media);
        if on_media.iter().any(|n| n.starts_with('.')) {
            partial_on_media += 1;
        }
        let good = assert_media_holds_only_good_bundles(&media, &env.in_state, &what);

        // Export again: it succeeds, and the media still holds only good bundles.
        let rerun = ferry_out(
            &state,
            &[
                "export",
                "--config",
                env.config.to_str().unwrap(),
                "--to",
                media.to_str().unwrap(),
            ],
        );
        assert!(
            rerun.ok,
            "{what}: the second export failed:\n{}",
            rerun.all()
        );
        let again = format!("{what}, after the second export");
        let good_after = assert_media_holds_only_good_bundles(&media, &env.in_state, &again);
        eprintln!(
            "{what}: media held {on_media:?}; the second export said {:?}",
            rerun.stdout.lines().next().unwrap_or("")
        );
        if rerun.stderr.contains("never completely written to media") {
            // The kill landed after the ledger commit, before the copy to the
            // media finished: the second export wrote the bundle out first.
            committed_not_on_media.push(n);
        }
        assert!(
            !good_after.is_empty(),
            "{again}: no bundle on the media:\n{}",
            rerun.all()
        );
        // Exactly bundle 2, and no temporary leftovers.
        assert_eq!(
            dir_names(&media),
            [bundle_name.to_str().unwrap()],
            "{again}"
        );
        if !good.is_empty() {
            assert_eq!(good, good_after, "{again}");
        }
        let inside = scratch.join(format!("in-{n:02}"));
        assert_imports_v2(&env, &media, &v2, &inside, &again);
        for d in [&state, &media, &inside] {
            std::fs::remove_dir_all(d).unwrap();
        }
    }
    eprintln!(
        "export kill spread over {} trials (clean export {t:?}): {interrupted} interrupted, \
         {completed} after exit, {partial_on_media} left an unfinished (dot) copy on the media, \
         trials {committed_not_on_media:?} committed bundle 2 without it reaching the media \
         (the second export wrote it first); total {:?}",
        delays.len(),
        t_all.elapsed()
    );
    assert!(
        interrupted >= 4,
        "only {interrupted} kills landed before the export exited"
    );
}

#[test]
fn export_again_after_kill9_during_the_media_copy_writes_the_bundle() {
    let _heavy = heavy();
    let (env, v2, scratch) = export_fixture();
    let scratch = scratch.path();
    let media = scratch.join("media2");
    let mut caught = false;
    for attempt in 0..3 {
        let state = scratch.join(format!("out-{attempt}"));
        let _ = std::fs::remove_dir_all(&state);
        let _ = std::fs::remove_dir_all(&media);
        copy_tree(&env.out_state, &state);
        let mut child = export_cmd(&env, &state, &media).spawn().unwrap();
        // The copy to the media starts with a dot directory, after the ledger commit.
        while child.try_wait().unwrap().is_none()
            && !dir_names(&media).iter().any(|n| n.starts_with('.'))
        {}
        let (killed, _) = kill9(child);
        if !killed {
            continue;
        }
        caught = true;
        eprintln!(
            "killed during the media copy; the media holds {:?}",
            dir_names(&media)
        );
        let rerun = ferry_out(
            &state,
            &[
                "export",
                "--config",
                env.config.to_str().unwrap(),
                "--to",
                media.to_str().unwrap(),
            ],
        )
        .expect_ok();
        let good =
            assert_media_holds_only_good_bundles(&media, &env.in_state, "after the second export");
        assert_eq!(
            good.len(),
            1,
            "exporting again after the kill left no bundle 2 on the media ({:?}); it said:\n{}",
            dir_names(&media),
            rerun.all()
        );
        assert_imports_v2(
            &env,
            &media,
            &v2,
            &scratch.join("in"),
            "after the second export",
        );
        break;
    }
    assert!(
        caught,
        "no attempt killed the export during its copy to the media"
    );
}
