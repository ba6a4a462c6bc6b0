//! Hostile and damaged input: every bad bundle is refused, the refusal names
//! the culprit (bundle, volume, chunk, object or path), and nothing already
//! held is lost: the applied sequence and the served tree stay as they were.
//!
//! Bundles are damaged on disk (flipped bytes, truncated or missing files) or
//! crafted with `ferry_protocol` and signed with the outside's trusted key, so
//! only the inside's own checks stand between them and the store.

use ferry_e2e::*;
use ferry_protocol::builder::{BundleBuilder, MemoryVolumes, PackOptions, Position};
use ferry_protocol::catalog::{Catalog, Change, ChunkRef, Encoding, FileObject, Object};
use ferry_protocol::chunking::ChunkParams;
use ferry_protocol::codec::{self, Codec};
use ferry_protocol::id::{ChunkId, ManifestHash, Sha256, StreamId};
use ferry_protocol::keys::{PublicKey, SecretKey};
use ferry_protocol::manifest::{self, ChunkEntry, Manifest, Totals, VolumeEntry};
use ferry_protocol::path::ObjectKey;
use ferry_protocol::volume;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

type Digest = BTreeMap<String, String>;

// ---------------------------------------------------------------------------
// Fixtures and checks
// ---------------------------------------------------------------------------

/// An inside that has applied a small bundle 1 (in media `m1`); returns the
/// setup and the digest of the served tree, which must survive every bad import.
fn applied_v1() -> (Env, Digest) {
    let env = Env::new();
    env.write_src("docs/readme.txt", &text_bytes(60_000, 1));
    env.write_src("bin/tool", &random_bytes(150_000, 2));
    env.write_src("a.txt", b"alpha\n");
    std::os::unix::fs::symlink("docs", env.src.join("docs-link")).unwrap();
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();
    assert_eq!(env.applied_sequence(), 1);
    let v1 = env.served_digest("tools");
    assert_eq!(v1, tree_digest(&env.src));
    (env, v1)
}

/// Asserts that the inside still has `seq` applied and serves `digest`.
fn assert_kept(env: &Env, seq: u64, digest: &Digest, what: &str) {
    assert_eq!(
        env.applied_sequence(),
        seq,
        "{what}: the applied sequence changed"
    );
    assert_eq!(
        &env.served_digest("tools"),
        digest,
        "{what}: the served tree changed"
    );
    let gens = env.in_state.join("store/gens");
    if let Ok(rd) = std::fs::read_dir(&gens) {
        for e in rd {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(
                !name.starts_with(".tmp"),
                "{what}: a half-built generation {name} was left in {}",
                gens.display()
            );
        }
    }
}

/// Asserts a run failed cleanly (exit code 1, not a signal or a panic) and
/// that stderr holds every needle.
fn assert_refused(r: &Run, needles: &[&str], what: &str) {
    assert!(
        !r.ok,
        "{what}: should have failed:\nstdout:\n{}\nstderr:\n{}",
        r.stdout, r.stderr
    );
    assert_eq!(
        r.code,
        Some(1),
        "{what}: did not exit cleanly (killed by a signal?):\n{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("panicked"),
        "{what}: panicked:\n{}",
        r.stderr
    );
    for n in needles {
        assert!(
            r.stderr.contains(n),
            "{what}: stderr lacks {n:?}:\n{}",
            r.stderr
        );
    }
}

/// Runs `ferry-in import` on a media directory given by absolute path, with extra flags.
fn import_with(env: &Env, media: &Path, flags: &[&str]) -> Run {
    let mut args = vec!["import", media.to_str().unwrap()];
    args.extend_from_slice(flags);
    env.inn(&args)
}

/// Copies the files of a bundle directory into `media/<same name>`; returns the copy.
fn copy_bundle(env: &Env, bundle: &Path, media: &str) -> PathBuf {
    let to = env.root().join(media).join(bundle.file_name().unwrap());
    std::fs::create_dir_all(&to).unwrap();
    for e in std::fs::read_dir(bundle).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
    to
}

/// XORs the byte at `offset` of a file with `mask`.
fn flip(path: &Path, offset: usize, mask: u8) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset] ^= mask;
    std::fs::write(path, bytes).unwrap();
}

/// The manifest of a bundle directory: its bytes and its (unverified) body.
fn read_manifest(bundle: &Path) -> (Vec<u8>, Manifest) {
    let bytes = std::fs::read(bundle.join("manifest.ferry")).unwrap();
    let (_, m) = manifest::peek_unverified(&bytes).unwrap();
    (bytes, m.into_manifest().unwrap())
}

/// The outside's (trusted) signing key.
fn trusted_key(env: &Env) -> SecretKey {
    SecretKey::from_text(&std::fs::read_to_string(env.out_state.join("signing.key")).unwrap())
        .unwrap()
}

/// The name the outside gives a bundle directory.
fn dir_name(stream: StreamId, sequence: u64) -> String {
    format!("bundle-{}-{sequence:08}", &stream.to_hex()[..8])
}

/// Writes a manifest file and volume files as bundle `media/<dir_name>`
/// (`media/bundle-undecodable` for a body that does not decode).
fn write_bundle(env: &Env, media: &str, file: &[u8], volumes: &[Vec<u8>]) -> PathBuf {
    let name = match manifest::peek_unverified(file) {
        Ok((_, m)) => dir_name(m.head().stream, m.head().sequence),
        Err(_) => "bundle-undecodable".into(),
    };
    let dir = env.root().join(media).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("manifest.ferry"), file).unwrap();
    for (i, v) in volumes.iter().enumerate() {
        std::fs::write(dir.join(volume::file_name(i as u32)), v).unwrap();
    }
    dir
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Applies changes without any check (to compute the totals a crafted
/// manifest declares, honestly, even for objects the inside must refuse).
fn apply_unchecked(base: &Catalog, changes: &[Change]) -> Catalog {
    let mut next = base.clone();
    for c in changes {
        match c {
            Change::Put { key, object } => {
                next.objects.insert(key.clone(), object.clone());
            }
            Change::Remove { key } => {
                next.objects.remove(key);
            }
        }
    }
    next
}

/// What a forger with the trusted key needs to make the next bundle of a
/// stream: the stream, the last manifest's hash, and the catalog it left.
struct Chain {
    key: SecretKey,
    stream: StreamId,
    sequence: u64,
    previous: ManifestHash,
    base: Catalog,
}

impl Chain {
    /// The chain after the bundles in `dirs` (1, 2, … in order).
    fn after(env: &Env, dirs: &[PathBuf]) -> Chain {
        let mut base = Catalog::default();
        let mut last = None;
        for d in dirs {
            let (bytes, m) = read_manifest(d);
            base = base.apply(&m.sources, &m.changes).unwrap();
            last = Some((m.stream, m.sequence, ManifestHash::of(&bytes)));
        }
        let (stream, sequence, previous) = last.expect("at least one bundle");
        Chain {
            key: trusted_key(env),
            stream,
            sequence,
            previous,
            base,
        }
    }

    /// A key in the source the chain's objects live in.
    fn key(&self, path: &str) -> ObjectKey {
        ObjectKey {
            source: "tools".into(),
            path: path.into(),
        }
    }

    /// The next manifest, with honest totals.
    fn next(
        &self,
        changes: Vec<Change>,
        chunks: Vec<ChunkEntry>,
        volumes: Vec<VolumeEntry>,
    ) -> Manifest {
        let next = apply_unchecked(&self.base, &changes);
        let t = now();
        Manifest {
            stream: self.stream,
            sequence: self.sequence + 1,
            previous: Some(self.previous),
            created: t,
            expires: t + 86_400,
            chunking: ChunkParams::DEFAULT,
            sources: self.base.sources.clone(),
            totals: Totals::of(&next, &chunks, &volumes),
            changes,
            chunks,
            volumes,
            producer: "bad_input test".into(),
            extensions: vec![],
        }
    }

    /// A file object of the base catalog (its chunks are held inside).
    fn held_file(&self, path: &str) -> Object {
        self.base.objects[&self.key(path)].clone()
    }
}

/// Every path under `root` (not following links) whose file name is `name`.
fn find_named(root: &Path, name: &str) -> Vec<PathBuf> {
    let mut out = vec![];
    let Ok(rd) = std::fs::read_dir(root) else {
        return out;
    };
    for e in rd {
        let e = e.unwrap();
        let p = e.path();
        if e.file_name().to_string_lossy() == name {
            out.push(p.clone());
        }
        if e.file_type().unwrap().is_dir() {
            out.extend(find_named(&p, name));
        }
    }
    out
}

/// The chunk ids in the inside's chunk store.
fn chunk_store(env: &Env) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if let Ok(rd) = std::fs::read_dir(env.in_state.join("chunks")) {
        for fan in rd {
            for e in std::fs::read_dir(fan.unwrap().path()).unwrap() {
                out.insert(e.unwrap().file_name().to_string_lossy().into_owned());
            }
        }
    }
    out
}

/// The `"held": [...]` part of `ferry-in status --json`.
fn held_json(env: &Env) -> String {
    let r = env.inn(&["status", "--json"]).expect_ok();
    let start = r.stdout.find("\"held\": [").expect("held in status");
    let rest = &r.stdout[start..];
    let end = rest.find(']').expect("end of the held list");
    rest[..=end].to_string()
}

// ---------------------------------------------------------------------------
// 1. Damaged volumes
// ---------------------------------------------------------------------------

/// Exports a bundle 2 over three volumes (a 2.5 MB incompressible file with
/// 1 MiB volumes) into `m2`; returns its directory.
fn export_three_volumes(env: &Env) -> PathBuf {
    env.write_src("big/blob.bin", &random_bytes(2_500_000, 7));
    let m2 = env.root().join("m2");
    env.out(&[
        "export",
        "--config",
        env.config.to_str().unwrap(),
        "--to",
        m2.to_str().unwrap(),
        "--volume-size",
        "1M",
    ])
    .expect_ok();
    let b = env.only_bundle("m2");
    for i in 0..3 {
        assert!(
            b.join(volume::file_name(i)).is_file(),
            "expected 3 volumes in {}",
            b.display()
        );
    }
    b
}

#[test]
fn flipped_volume_byte_is_named_and_the_intact_copy_imports() {
    let (env, v1) = applied_v1();
    let good = export_three_volumes(&env);
    let vol = volume::file_name(1);
    let len = std::fs::metadata(good.join(&vol)).unwrap().len() as usize;
    for (label, offset) in [("start", 0), ("middle", len / 2), ("end", len - 1)] {
        let media = format!("bad-{label}");
        let bad = copy_bundle(&env, &good, &media);
        flip(&bad.join(&vol), offset, 0x01);
        let what = format!("volume 1 flipped at the {label}");
        let needles = [
            "bundle 2",
            "volume 1 is damaged",
            "does not match its hash",
            vol.as_str(),
        ];
        assert_refused(&env.import(&media), &needles, &what);
        assert_kept(&env, 1, &v1, &what);
        assert_refused(&env.verify(&media), &needles, &format!("verify: {what}"));
        assert_kept(&env, 1, &v1, &format!("verify: {what}"));
    }
    env.verify("m2").expect_ok();
    env.import("m2").expect_ok();
    assert_eq!(env.applied_sequence(), 2);
    assert_eq!(env.served_digest("tools"), tree_digest(&env.src));
}

// ---------------------------------------------------------------------------
// 2. Damaged manifests
// ---------------------------------------------------------------------------

#[test]
fn flipped_manifest_byte_is_refused_and_nothing_applies() {
    let (env, v1) = applied_v1();
    env.write_src("docs/new.txt", &text_bytes(20_000, 9));
    env.export("m2").expect_ok();
    let good = env.only_bundle("m2");
    let file = std::fs::read(good.join("manifest.ferry")).unwrap();
    let body_len = u32::from_le_bytes(file[12..16].try_into().unwrap()) as usize;
    let key_at = 16 + body_len;
    let sig_at = key_at + 32;
    assert_eq!(file.len(), sig_at + 64);

    type Damage = Box<dyn Fn(&mut Vec<u8>)>;
    fn edit(f: impl Fn(&mut Vec<u8>) + 'static) -> Damage {
        Box::new(f)
    }
    let at = |i: usize, mask: u8| edit(move |f| f[i] ^= mask);
    let cases: Vec<(&str, Damage, &str)> = vec![
        ("magic", at(0, 0x20), "bad magic"),
        ("version", at(8, 0x01), "format version 0 is not supported"),
        ("body length", at(15, 0x80), "truncated"),
        ("body start", at(16, 0x01), "signature is invalid"),
        (
            "body middle",
            at(16 + body_len / 2, 0x10),
            "signature is invalid",
        ),
        ("body end", at(key_at - 1, 0x01), "signature is invalid"),
        ("signer key", at(key_at + 3, 0x01), "not trusted"),
        ("signature R", at(sig_at, 0x01), "signature is invalid"),
        ("signature S", at(sig_at + 40, 0x01), "signature is invalid"),
        (
            "signature end",
            at(file.len() - 1, 0x01),
            "signature is invalid",
        ),
        (
            "byte appended",
            edit(|f| f.push(0)),
            "bytes after the signature",
        ),
        (
            "last byte cut",
            edit(|f| f.truncate(f.len() - 1)),
            "truncated",
        ),
        (
            "cut inside the header",
            edit(|f| f.truncate(10)),
            "truncated",
        ),
    ];
    for (i, (label, damage, needle)) in cases.iter().enumerate() {
        let media = format!("bad-manifest-{i}");
        let bad = copy_bundle(&env, &good, &media);
        let mut f = file.clone();
        damage(&mut f);
        std::fs::write(bad.join("manifest.ferry"), &f).unwrap();
        let what = format!("manifest damaged: {label}");
        let shown = bad.join("manifest.ferry").display().to_string();
        assert_refused(&env.import(&media), &[needle, &shown], &what);
        assert_kept(&env, 1, &v1, &what);
        assert_refused(
            &env.verify(&media),
            &[needle, &shown],
            &format!("verify: {what}"),
        );
    }
    assert!(
        held_json(&env).contains("[]"),
        "a damaged manifest was held"
    );
    env.import("m2").expect_ok();
    assert_eq!(env.applied_sequence(), 2);
    assert_eq!(env.served_digest("tools"), tree_digest(&env.src));
}

// ---------------------------------------------------------------------------
// 3. Truncated, longer and missing volumes
// ---------------------------------------------------------------------------

#[test]
fn truncated_longer_and_missing_volumes_are_named() {
    let (env, v1) = applied_v1();
    let good = export_three_volumes(&env);

    let bad = copy_bundle(&env, &good, "truncated");
    let v2 = bad.join(volume::file_name(2));
    let len = std::fs::metadata(&v2).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&v2)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    let needles = [
        "bundle 2",
        "volume 2 is damaged",
        "truncated",
        "volume-00002.ferry",
    ];
    assert_refused(&env.import("truncated"), &needles, "truncated volume");
    assert_kept(&env, 1, &v1, "truncated volume");
    assert_refused(
        &env.verify("truncated"),
        &needles,
        "verify: truncated volume",
    );

    let bad = copy_bundle(&env, &good, "cut-to-header");
    std::fs::OpenOptions::new()
        .write(true)
        .open(bad.join(volume::file_name(0)))
        .unwrap()
        .set_len(10)
        .unwrap();
    let needles = ["volume 0 is damaged", "truncated", "volume-00000.ferry"];
    assert_refused(
        &env.import("cut-to-header"),
        &needles,
        "volume cut to 10 bytes",
    );
    assert_kept(&env, 1, &v1, "volume cut to 10 bytes");

    let bad = copy_bundle(&env, &good, "longer");
    let v0 = bad.join(volume::file_name(0));
    let mut bytes = std::fs::read(&v0).unwrap();
    bytes.push(0);
    std::fs::write(&v0, bytes).unwrap();
    let needles = ["volume 0 is damaged", "longer than", "volume-00000.ferry"];
    assert_refused(&env.import("longer"), &needles, "longer volume");
    assert_kept(&env, 1, &v1, "longer volume");

    let bad = copy_bundle(&env, &good, "missing");
    std::fs::remove_file(bad.join(volume::file_name(1))).unwrap();
    let needles = ["bundle 2", "volume 1", "is missing", "volume-00001.ferry"];
    assert_refused(&env.import("missing"), &needles, "missing volume");
    assert_kept(&env, 1, &v1, "missing volume");
    assert_refused(&env.verify("missing"), &needles, "verify: missing volume");

    env.import("m2").expect_ok();
    assert_eq!(env.applied_sequence(), 2);
    assert_eq!(env.served_digest("tools"), tree_digest(&env.src));
}

// ---------------------------------------------------------------------------
// 4. Untrusted signer
// ---------------------------------------------------------------------------

#[test]
fn bundle_signed_by_an_untrusted_key_is_refused() {
    let (env, v1) = applied_v1();
    // A second outside, with its own keygen, that this inside does not trust.
    let other = Env::new();
    other.write_src("x.txt", b"from elsewhere");
    other.export("m1").expect_ok();
    let other_key = PublicKey::from_text(
        &std::fs::read_to_string(other.out_state.join("signing.pub")).unwrap(),
    )
    .unwrap();
    let media = other.root().join("m1");
    let bundle = other.only_bundle("m1");
    let (short, shown) = (other_key.short(), bundle.display().to_string());
    let needles = ["not trusted", short.as_str(), shown.as_str()];
    assert_refused(&import_with(&env, &media, &[]), &needles, "untrusted key");
    assert_kept(&env, 1, &v1, "untrusted key");
    assert_refused(
        &env.inn(&["verify", media.to_str().unwrap()]),
        &needles,
        "verify: untrusted key",
    );

    // The outside's own bundle 2, re-signed by the untrusted key, too.
    env.write_src("b.txt", b"beta");
    env.export("m2").expect_ok();
    let (_, m) = read_manifest(&env.only_bundle("m2"));
    let stranger = SecretKey::from_text(
        &std::fs::read_to_string(other.out_state.join("signing.key")).unwrap(),
    )
    .unwrap();
    let vols: Vec<Vec<u8>> = (0..m.volumes.len() as u32)
        .map(|i| std::fs::read(env.only_bundle("m2").join(volume::file_name(i))).unwrap())
        .collect();
    write_bundle(&env, "resigned", &m.sign(&stranger), &vols);
    assert_refused(
        &env.import("resigned"),
        &["not trusted", &other_key.short()],
        "re-signed by an untrusted key",
    );
    assert_kept(&env, 1, &v1, "re-signed by an untrusted key");
    env.import("m2").expect_ok();
    assert_eq!(env.applied_sequence(), 2);
}

// ---------------------------------------------------------------------------
// 5. Replays and forks
// ---------------------------------------------------------------------------

/// `status --json` without what moves with the clock alone (ages in
/// seconds), for comparing a status before and after something.
fn status_without_clock(json: &str) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.retain(|k, _| !k.starts_with("age"));
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v: serde_json::Value = serde_json::from_str(json).expect("status --json is JSON");
    strip(&mut v);
    v
}

#[test]
fn replay_is_skipped_and_a_different_bundle_with_an_applied_sequence_is_refused() {
    let (env, _) = applied_v1();
    env.write_src("b.txt", b"beta");
    env.export("m2").expect_ok();
    env.import("m2").expect_ok();
    assert_eq!(env.applied_sequence(), 2);
    let v2 = env.served_digest("tools");
    let status_before = env.inn(&["status", "--json"]).expect_ok().stdout;

    // The same bundles again: skipped, not an error, nothing changes.
    for media in ["m1", "m2"] {
        let r = env.import(media).expect_ok();
        assert!(
            r.stderr.contains("already applied; skipped"),
            "{}",
            r.stderr
        );
        assert_kept(&env, 2, &v2, &format!("replay of {media}"));
    }
    let r = env.verify("m1").expect_ok();
    assert!(r.stdout.contains("already applied"), "{}", r.stdout);
    assert_eq!(
        status_without_clock(&env.inn(&["status", "--json"]).expect_ok().stdout),
        status_without_clock(&status_before),
        "a replay changed the status"
    );

    // Bundle 2, modified and re-signed with the trusted key: another history.
    let good = env.only_bundle("m2");
    let (_, mut m) = read_manifest(&good);
    m.created += 1;
    let bad = copy_bundle(&env, &good, "forged");
    std::fs::write(bad.join("manifest.ferry"), m.sign(&trusted_key(&env))).unwrap();
    let shown = bad.display().to_string();
    let needles = [
        "bundle 2",
        "already applied with different content",
        shown.as_str(),
    ];
    assert_refused(&env.import("forged"), &needles, "re-signed bundle 2");
    assert_kept(&env, 2, &v2, "re-signed bundle 2");
    assert_refused(
        &env.verify("forged"),
        &["already applied with different content"],
        "verify: re-signed bundle 2",
    );

    // A second outside state whose key the inside also trusts: its bundles
    // 1 and 2 collide with the applied ones, its bundle 3 would be "next",
    // and its bundle 4 lies beyond a gap; all belong to another stream.
    let other = Env::new();
    env.inn(&[
        "trust",
        "add",
        other.out_state.join("signing.pub").to_str().unwrap(),
        "--stream",
        &other.stream(),
    ])
    .expect_ok();
    for (i, name) in ["o1", "o2", "o3", "o4"].iter().enumerate() {
        other.write_src(&format!("f{i}.txt"), name.as_bytes());
        other.export(name).expect_ok();
    }
    let (_, o1) = read_manifest(&other.only_bundle("o1"));
    let other_stream = o1.stream.to_hex();
    for (media, seq) in [("o1", 1), ("o2", 2), ("o3", 3), ("o4", 4)] {
        let what = format!("other stream's bundle {seq}");
        let r = import_with(&env, &other.root().join(media), &[]);
        let shown = other.only_bundle(media).display().to_string();
        assert_refused(&r, &[&format!("bundle {seq}"), &shown], &what);
        // Refused as another history: for a sequence already applied, as a
        // different bundle with that sequence; otherwise, by its stream.
        assert!(
            r.stderr.contains(&other_stream)
                || (seq <= 2 && r.stderr.contains("already applied with different content")),
            "{what}: the refusal does not say why:\n{}",
            r.stderr
        );
        assert_kept(&env, 2, &v2, &what);
    }
    assert!(
        held_json(&env).contains("[]"),
        "a bundle of another stream was held: {}",
        held_json(&env)
    );
}

// ---------------------------------------------------------------------------
// 6. Gaps
// ---------------------------------------------------------------------------

/// Exports bundles 1, 2, 3 into m1, m2, m3.
fn three_bundles() -> Env {
    let env = Env::new();
    env.write_src("a.txt", &text_bytes(30_000, 1));
    env.export("m1").expect_ok();
    env.write_src("b.bin", &random_bytes(200_000, 2));
    env.export("m2").expect_ok();
    env.write_src("a.txt", &text_bytes(31_000, 3));
    env.write_src("c/d.txt", b"three");
    env.export("m3").expect_ok();
    env
}

#[test]
fn gap_is_held_until_the_missing_bundle_arrives() {
    let env = three_bundles();
    env.import("m1").expect_ok();
    let v1 = env.served_digest("tools");

    let r = env.import("m3").expect_ok();
    assert!(
        r.stderr.contains("bundle 3 held") && r.stderr.contains("waiting for bundle 2"),
        "{}",
        r.stderr
    );
    assert_kept(&env, 1, &v1, "bundle 3 before bundle 2");
    let held = held_json(&env);
    assert!(held.contains("\"sequence\": 3"), "{held}");
    assert!(
        held.contains("\"reason\": \"waiting for bundle 2"),
        "{held}"
    );
    let text = env.inn(&["status"]).expect_ok().stdout;
    assert!(text.contains("bundle 3: waiting for bundle 2"), "{text}");

    // The stick with bundle 3 is gone; bundle 2 arrives alone.
    std::fs::remove_dir_all(env.root().join("m3")).unwrap();
    let r = env.import("m2").expect_ok();
    assert!(r.stdout.contains("applied bundle 2"), "{}", r.stdout);
    let held_dir = env.in_state.join("held").display().to_string();
    assert!(
        r.stdout
            .lines()
            .any(|l| l.contains("applied bundle 3 from") && l.contains(&held_dir)),
        "bundle 3 was not applied from the held area:\n{}",
        r.stdout
    );
    assert_eq!(env.applied_sequence(), 3);
    assert_eq!(env.served_digest("tools"), tree_digest(&env.src));
    assert!(held_json(&env).contains("[]"), "{}", held_json(&env));
    assert!(
        find_named(&env.in_state.join("held"), "manifest.ferry").is_empty(),
        "the held copy was not removed"
    );
}

#[test]
fn held_bundle_is_verified_again_when_the_gap_fills() {
    let env = three_bundles();
    env.import("m1").expect_ok();
    env.import("m3").expect_ok();
    assert_eq!(env.applied_sequence(), 1);
    // Damage the held copy of bundle 3 while it waits.
    let held = find_named(&env.in_state.join("held"), "volume-00000.ferry");
    assert_eq!(held.len(), 1, "{held:?}");
    let len = std::fs::metadata(&held[0]).unwrap().len() as usize;
    flip(&held[0], len / 2, 0x04);
    std::fs::remove_dir_all(env.root().join("m3")).unwrap();

    let r = env.import("m2");
    assert_refused(
        &r,
        &["bundle 3", "volume 0 is damaged", "volume-00000.ferry"],
        "damaged held bundle",
    );
    assert!(r.stdout.contains("applied bundle 2"), "{}", r.stdout);
    let v2 = env.served_digest("tools");
    assert_kept(&env, 2, &v2, "damaged held bundle");

    // A good copy of bundle 3 still applies.
    env.out(&[
        "resend",
        "--from",
        "3",
        "--to",
        env.root().join("again").to_str().unwrap(),
    ])
    .expect_ok();
    env.import("again").expect_ok();
    assert_eq!(env.applied_sequence(), 3);
    assert_eq!(env.served_digest("tools"), tree_digest(&env.src));
}

// ---------------------------------------------------------------------------
// 7. Expiry
// ---------------------------------------------------------------------------

#[test]
fn expired_bundle_is_refused_unless_allowed() {
    let (env, v1) = applied_v1();
    let cfg = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(&env.config, format!("[export]\nexpires = \"1s\"\n\n{cfg}")).unwrap();
    env.write_src("late.txt", b"too late");
    env.export("m2").expect_ok();
    std::thread::sleep(Duration::from_millis(2100));

    let needles = ["bundle 2", "expired", "--allow-expired"];
    assert_refused(&env.import("m2"), &needles, "expired bundle");
    assert_kept(&env, 1, &v1, "expired bundle");
    assert_refused(&env.verify("m2"), &needles, "verify: expired bundle");
    env.inn(&[
        "verify",
        env.root().join("m2").to_str().unwrap(),
        "--allow-expired",
    ])
    .expect_ok();

    import_with(&env, &env.root().join("m2"), &["--allow-expired"]).expect_ok();
    assert_eq!(env.applied_sequence(), 2);
    assert_eq!(env.served_digest("tools"), tree_digest(&env.src));
}

// ---------------------------------------------------------------------------
// 8. Paths that leave the store
// ---------------------------------------------------------------------------

#[test]
fn crafted_paths_that_leave_the_store_are_refused() {
    let (env, v1) = applied_v1();
    let chain = Chain::after(&env, &[env.only_bundle("m1")]);
    let file = chain.held_file("a.txt");
    let put = |path: &str, object: &Object| Change::Put {
        key: chain.key(path),
        object: object.clone(),
    };
    let link = |target: &str| Object::Symlink {
        target: target.into(),
    };
    let abs = env.root().join("ferry-abs-escape").display().to_string();

    // (label, changes, what stderr must name, sentinel file name that must never appear)
    let cases: Vec<(&str, Vec<Change>, String, &str)> = vec![
        (
            "dot-dot",
            vec![put("../ferry-escape-1", &file)],
            "../ferry-escape-1".into(),
            "ferry-escape-1",
        ),
        (
            "deep dot-dot",
            vec![put("../../../../../ferry-escape-2", &file)],
            "../../../../../ferry-escape-2".into(),
            "ferry-escape-2",
        ),
        (
            "absolute",
            vec![put(&abs, &file)],
            abs.clone(),
            "ferry-abs-escape",
        ),
        (
            "dot-dot inside",
            vec![put("a/../../ferry-escape-3", &file)],
            "a/../../ferry-escape-3".into(),
            "ferry-escape-3",
        ),
        (
            "escaping symlink",
            vec![put("ferry-link-1", &link("../../../etc/passwd"))],
            "../../../etc/passwd".into(),
            "ferry-link-1",
        ),
        (
            "escaping symlink in a directory",
            vec![put("d/ferry-link-2", &link("../../ferry-escape"))],
            "../../ferry-escape".into(),
            "ferry-link-2",
        ),
        (
            "absolute symlink",
            vec![put("ferry-link-3", &link("/etc"))],
            "/etc".into(),
            "ferry-link-3",
        ),
        (
            "symlink with '..' after a name",
            vec![put("d/ferry-link-4", &link("docs/../../../x"))],
            "docs/../../../x".into(),
            "ferry-link-4",
        ),
        (
            "object under a symlink of the same bundle",
            vec![
                put("ferry-link-5", &link("docs")),
                put("ferry-link-5/ferry-under-1", &file),
            ],
            "tools/ferry-link-5/ferry-under-1".into(),
            "ferry-under-1",
        ),
        (
            "object under a symlink already applied",
            vec![put("docs-link/ferry-under-2", &file)],
            "tools/docs-link/ferry-under-2".into(),
            "ferry-under-2",
        ),
        (
            "object under a file already applied",
            vec![put("a.txt/ferry-under-3", &file)],
            "tools/a.txt/ferry-under-3".into(),
            "ferry-under-3",
        ),
    ];
    for (i, (label, changes, named, sentinel)) in cases.into_iter().enumerate() {
        let m = chain.next(changes, vec![], vec![]);
        let media = format!("evil-{i}");
        write_bundle(&env, &media, &m.sign(&chain.key), &[]);
        let what = format!("crafted path: {label}");
        assert_refused(
            &env.import(&media),
            &["bundle 2", "unsafe path", &named],
            &what,
        );
        assert_kept(&env, 1, &v1, &what);
        assert_refused(&env.verify(&media), &["unsafe path", &named], &what);
        let found = find_named(env.root(), sentinel);
        assert!(found.is_empty(), "{what}: written: {found:?}");
    }

    // A source whose name climbs out of the store.
    let mut m = chain.next(vec![], vec![], vec![]);
    m.sources.insert("../ferry-src".into(), m.sources["tools"]);
    m.changes = vec![Change::Put {
        key: ObjectKey {
            source: "../ferry-src".into(),
            path: "ferry-escape-4".into(),
        },
        object: file.clone(),
    }];
    m.totals = Totals::of(&apply_unchecked(&chain.base, &m.changes), &[], &[]);
    write_bundle(&env, "evil-src", &m.sign(&chain.key), &[]);
    assert_refused(
        &env.import("evil-src"),
        &["unsafe path", "../ferry-src"],
        "crafted source name",
    );
    assert_kept(&env, 1, &v1, "crafted source name");
    assert!(find_named(env.root(), "ferry-escape-4").is_empty());
    assert!(find_named(env.root(), "ferry-src").is_empty());

    // None of it stuck: the real bundle 2 applies.
    env.write_src("b.txt", b"beta");
    env.export("m2").expect_ok();
    env.import("m2").expect_ok();
    assert_eq!(env.applied_sequence(), 2);
    assert_eq!(env.served_digest("tools"), tree_digest(&env.src));
}

// ---------------------------------------------------------------------------
// 9. Absurd sizes
// ---------------------------------------------------------------------------

#[test]
fn absurd_declared_sizes_are_refused_quickly() {
    let (env, v1) = applied_v1();
    let chain = Chain::after(&env, &[env.only_bundle("m1")]);
    let held_chunk = match chain.held_file("bin/tool") {
        Object::File(f) => f.chunks().next().expect("a chunk").id,
        Object::Symlink { .. } => unreachable!(),
    };
    let odd = ChunkId::of(b"an absurd chunk");
    let odd_hex = odd.to_hex();
    let entry = |raw_len: u32| ChunkEntry {
        id: odd,
        raw_len,
        stored_len: 16,
        codec: Codec::Zstd,
        volume: 0,
        offset: volume::HEADER_LEN as u64,
    };
    let vol = |size: u64| VolumeEntry {
        size,
        blake3: [0; 32],
    };
    let empty = chain.next(vec![], vec![], vec![]);

    let mut cases: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![];
    let mut m = empty.clone();
    m.totals.max_object = 1 << 60;
    cases.push((
        "max_object 2^60",
        m.sign(&chain.key),
        vec!["largest object", "over the limit"],
    ));

    let mut m = empty.clone();
    m.totals.objects = 1 << 40;
    cases.push((
        "objects 2^40",
        m.sign(&chain.key),
        vec!["object count", "over the limit"],
    ));

    let m = chain.next(vec![], vec![entry(1 << 31)], vec![vol(36 + 16)]);
    cases.push((
        "chunk raw_len 2^31",
        m.sign(&chain.key),
        vec!["largest chunk", "over the limit"],
    ));

    let mut m = chain.next(vec![], vec![entry(1 << 31)], vec![vol(36 + 16)]);
    m.totals.max_chunk = 65_536;
    cases.push((
        "chunk raw_len 2^31 under a small max_chunk",
        m.sign(&chain.key),
        vec!["inconsistent", odd_hex.as_str(), "2147483648"],
    ));

    let m = chain.next(vec![], vec![], vec![vol(u64::MAX)]);
    cases.push((
        "volume size u64::MAX",
        m.sign(&chain.key),
        vec!["bundle size on media", "over the limit"],
    ));

    let mut m = chain.next(vec![], vec![], vec![vol(u64::MAX), vol(2)]);
    m.totals.volume_bytes = 1;
    cases.push((
        "volume sizes that overflow",
        m.sign(&chain.key),
        vec!["inconsistent", "overflow"],
    ));

    let m = chain.next(vec![], vec![entry(1000)], vec![vol(40)]);
    cases.push((
        "chunk beyond its volume",
        m.sign(&chain.key),
        vec!["inconsistent", odd_hex.as_str(), "outside volume 0"],
    ));

    let mut m = empty.clone();
    m.totals.chunk_raw_bytes = u64::MAX;
    cases.push((
        "chunk_raw_bytes u64::MAX",
        m.sign(&chain.key),
        vec!["over the limit"],
    ));

    // A 2 GiB object made of one (held) chunk that claims to be 2 GiB long.
    let huge = Object::File(FileObject {
        size: 1 << 31,
        sha256: Sha256([0; 32]),
        executable: false,
        encoding: Encoding::Chunks(vec![ChunkRef {
            id: held_chunk,
            len: 1 << 31,
        }]),
    });
    let m = chain.next(
        vec![Change::Put {
            key: chain.key("huge"),
            object: huge.clone(),
        }],
        vec![],
        vec![],
    );
    cases.push((
        "chunk ref of 2^31 bytes",
        m.sign(&chain.key),
        vec!["tools/huge", "over the limit"],
    ));

    // The same object with totals that hide it.
    let mut m = m.clone();
    m.totals = empty.totals;
    cases.push((
        "object hidden from the totals",
        m.sign(&chain.key),
        vec!["inconsistent", "declares"],
    ));

    // A body whose `changes` list declares 2^40 elements and then ends.
    let mut m = empty.clone();
    m.totals = Totals::default();
    m.sources.clear();
    m.producer = "p".into();
    let signed = m.sign(&chain.key);
    let body = signed[16..signed.len() - 96].to_vec();
    // Tail: changes 00, chunks 00, volumes 00, totals 6 × 00, producer 01 'p', extensions 00.
    let at = body.len() - 12;
    assert_eq!(&body[at..], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 1, b'p', 0]);
    let mut huge_count = body[..at].to_vec();
    huge_count.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x20]);
    huge_count.extend_from_slice(&body[at + 1..]);
    cases.push((
        "a list of 2^40 changes",
        manifest::sign_body(&huge_count, 1, &chain.key),
        vec!["does not decode"],
    ));

    for (i, (label, file, needles)) in cases.iter().enumerate() {
        let media = format!("absurd-{i}");
        write_bundle(&env, &media, file, &[]);
        let what = format!("absurd size: {label}");
        let r = env.import(&media);
        let mut all = needles.clone();
        all.push("bundle");
        assert_refused(&r, &all, &what);
        assert_kept(&env, 1, &v1, &what);
        assert_refused(&env.verify(&media), needles, &format!("verify: {what}"));
    }

    // A volume within the limits (1 TiB) but far beyond its file: refused
    // up front for space, and, without the space check, as truncated.
    let header = volume::header(chain.stream, chain.sequence + 1, 0).to_vec();
    let m = chain.next(vec![], vec![], vec![vol(1 << 40)]);
    let dir = write_bundle(&env, "tera", &m.sign(&chain.key), &[header]);
    assert_refused(
        &env.import("tera"),
        &["bundle 2", "needs about", "free", "nothing was changed"],
        "1 TiB volume",
    );
    assert_kept(&env, 1, &v1, "1 TiB volume");
    assert_refused(
        &import_with(&env, &dir, &["--no-space-check"]),
        &["bundle 2", "volume 0 is damaged", "truncated"],
        "1 TiB volume without the space check",
    );
    assert_kept(&env, 1, &v1, "1 TiB volume without the space check");
}

// ---------------------------------------------------------------------------
// 10. A chunk that is not what its id says
// ---------------------------------------------------------------------------

/// Exports a bundle 2 that adds a 400 kB file, then forges a copy in media
/// `forged` where the last chunk of the volume claims another id (in the
/// chunk list and in the file's chunk refs), re-signed with the trusted key.
/// Returns (forged id, real id).
fn forge_chunk_id(env: &Env) -> (ChunkId, ChunkId) {
    env.write_src("new.bin", &random_bytes(400_000, 11));
    env.export("m2").expect_ok();
    let good = env.only_bundle("m2");
    let (_, mut m) = read_manifest(&good);
    assert!(m.chunks.len() >= 3, "{} chunks", m.chunks.len());
    let last = m
        .chunks
        .iter_mut()
        .max_by_key(|c| (c.volume, c.offset))
        .unwrap();
    let real = last.id;
    let forged = ChunkId::of(b"the bytes this chunk claims to be");
    last.id = forged;
    let mut refs_changed = 0;
    for c in &mut m.changes {
        if let Change::Put {
            object: Object::File(f),
            ..
        } = c
        {
            let Encoding::Chunks(refs) = &mut f.encoding else {
                panic!("this bundle's objects are whole (format version 1)");
            };
            for r in refs.iter_mut().filter(|r| r.id == real) {
                r.id = forged;
                refs_changed += 1;
            }
        }
    }
    assert_eq!(refs_changed, 1);
    let bad = copy_bundle(env, &good, "forged");
    std::fs::write(bad.join("manifest.ferry"), m.sign(&trusted_key(env))).unwrap();
    (forged, real)
}

#[test]
fn chunk_whose_content_does_not_match_its_id_is_refused() {
    let (env, v1) = applied_v1();
    let (forged, real) = forge_chunk_id(&env);
    let (claim, actual) = (
        format!("chunk {forged} is damaged"),
        format!("content hashes to {real}"),
    );
    let needles = ["bundle 2", "volume 0", claim.as_str(), actual.as_str()];
    assert_refused(&env.import("forged"), &needles, "forged chunk id");
    assert_kept(&env, 1, &v1, "forged chunk id");
    assert!(
        !chunk_store(&env).contains(&forged.to_hex()),
        "the forged chunk entered the chunk store"
    );
    assert_refused(&env.verify("forged"), &needles, "verify: forged chunk id");

    env.import("m2").expect_ok();
    assert_eq!(env.applied_sequence(), 2);
    assert_eq!(env.served_digest("tools"), tree_digest(&env.src));
}

#[test]
fn failed_import_adds_nothing_to_the_chunk_store() {
    // docs/bundle-format.md §9: nothing from a bundle may become visible in
    // the chunk store later bundles rely on before every check has passed.
    let (env, v1) = applied_v1();
    let before = chunk_store(&env);
    forge_chunk_id(&env);
    assert_refused(&env.import("forged"), &["is damaged"], "forged chunk id");
    assert_kept(&env, 1, &v1, "forged chunk id");
    let after = chunk_store(&env);
    let added: Vec<_> = after.difference(&before).collect();
    assert!(
        added.is_empty(),
        "a refused bundle left {} chunk(s) in the chunk store: {added:?}",
        added.len()
    );
}

// ---------------------------------------------------------------------------
// 11. Decompression bombs
// ---------------------------------------------------------------------------

/// A bundle 2 adding `bomb.bin`: one chunk stored as a zstd frame of
/// `frame_of` zero bytes, declared (chunk entry, chunk ref, file size) as
/// 64 KiB of zeros. Written to media `media`; returns the chunk id.
fn write_bomb(env: &Env, chain: &Chain, media: &str, frame_of: usize) -> ChunkId {
    const RAW: usize = 64 << 10;
    let zeros = vec![0u8; frame_of.max(RAW)];
    let (codec, stored) = codec::encode(&zeros[..frame_of], 3);
    assert_eq!(codec, Codec::Zstd);
    let id = ChunkId::of(&zeros[..RAW]);
    let position = Position {
        stream: chain.stream,
        sequence: chain.sequence + 1,
        previous: Some(chain.previous),
    };
    let opts = PackOptions {
        volume_size: u64::MAX,
        level: 3,
    };
    let mut b = BundleBuilder::new(position, opts, MemoryVolumes::default());
    // The stored frame is declared as the 64 KiB chunk, whatever it decodes to.
    b.add_stored(id, RAW as u32, Codec::Zstd, &stored).unwrap();
    let (chunks, volumes, sink) = b.into_parts().unwrap();
    let object = Object::File(FileObject {
        size: RAW as u64,
        sha256: Sha256::of(&zeros[..RAW]),
        executable: false,
        encoding: Encoding::Chunks(vec![ChunkRef {
            id,
            len: RAW as u32,
        }]),
    });
    let m = chain.next(
        vec![Change::Put {
            key: chain.key("bomb.bin"),
            object,
        }],
        chunks,
        volumes,
    );
    write_bundle(env, media, &m.sign(&chain.key), &sink.volumes);
    id
}

#[test]
fn decompression_bomb_is_refused_quickly() {
    let (env, v1) = applied_v1();
    let chain = Chain::after(&env, &[env.only_bundle("m1")]);
    let id = write_bomb(&env, &chain, "bomb", 64 << 20);
    let short = write_bomb(&env, &chain, "short", 1024);
    assert_eq!(id, short);
    for (media, why) in [
        ("bomb", "does not decode within 65536 bytes"),
        ("short", "decodes to 1024 bytes, manifest says 65536"),
    ] {
        let what = format!("zstd frame in {media}");
        let claim = format!("chunk {id} is damaged");
        let needles = ["bundle 2", "volume 0", claim.as_str(), why];
        assert_refused(&env.import(media), &needles, &what);
        assert_kept(&env, 1, &v1, &what);
        assert!(
            !chunk_store(&env).contains(&id.to_hex()),
            "{what}: the chunk entered the chunk store"
        );
        assert_refused(&env.verify(media), &needles, &format!("verify: {what}"));
    }
    // The honest 64 KiB frame applies: the bundle was refused for its frame only.
    write_bomb(&env, &chain, "honest", 64 << 10);
    env.import("honest").expect_ok();
    assert_eq!(env.applied_sequence(), 2);
    assert_eq!(
        std::fs::read(env.served("bomb.bin")).unwrap(),
        vec![0u8; 64 << 10]
    );
}

// ---------------------------------------------------------------------------
// 12. Full disk
// ---------------------------------------------------------------------------

/// An inside whose state lives on a small tmpfs. Field order matters: the
/// tmpfs is unmounted before the temporary directory holding it is removed.
struct SmallDisk {
    disk: Tmpfs,
    env: Env,
    v1: Digest,
}

/// An inside whose state lives on a small tmpfs, with bundle 1 applied and a
/// bundle 2 (an 8 MiB incompressible file) exported into `m2`.
fn on_small_disk() -> Option<SmallDisk> {
    let mut env = Env::new();
    let disk = Tmpfs::mount(&current_test(), &env.root().join("disk"), 48)?;
    env.in_state = disk.dir.join("in-state");
    env.trust_own_key();
    env.write_src("small.txt", &text_bytes(50_000, 1));
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();
    let v1 = env.served_digest("tools");
    env.write_src("big.bin", &random_bytes(8 << 20, 5));
    env.export("m2").expect_ok();
    Some(SmallDisk { disk, env, v1 })
}

impl SmallDisk {
    /// Room again: the filler goes, the disk grows, and a plain re-run
    /// applies bundle 2 completely.
    fn room_again_applies_bundle_2(&self, filler: PathBuf) {
        std::fs::remove_file(filler).unwrap();
        self.disk.resize(96);
        self.env.import("m2").expect_ok();
        assert_eq!(self.env.applied_sequence(), 2);
        assert_eq!(self.env.served_digest("tools"), tree_digest(&self.env.src));
    }
}

#[test]
fn full_disk_is_refused_up_front_or_caught_mid_apply() {
    let Some(sd) = on_small_disk() else {
        return;
    };
    let (env, disk, v1) = (&sd.env, &sd.disk, &sd.v1);
    // 6 MiB free: no room for the 8 MiB file (a bundle with volumes writes
    // its chunks only into the rebuilt file: with 12 MiB free it fits).
    let filler = disk.fill_to("filler", 6 << 20);

    // (a) The estimate refuses before anything is written.
    let chunks_before = chunk_store(env);
    assert_refused(
        &env.import("m2"),
        &["bundle 2", "needs about", "free", "nothing was changed"],
        "full disk, space check",
    );
    assert_kept(env, 1, v1, "full disk, space check");
    assert_eq!(
        chunk_store(env),
        chunks_before,
        "the space check let chunks in"
    );

    // (b) Without the estimate, the real ENOSPC while building the generation.
    let m2 = env.root().join("m2");
    assert_refused(
        &import_with(env, &m2, &["--no-space-check"]),
        &[
            "bundle 2",
            "No space left",
            "still serves bundle 1",
            "big.bin",
        ],
        "full disk, no space check",
    );
    assert_kept(env, 1, v1, "full disk, no space check");

    sd.room_again_applies_bundle_2(filler);
}

#[test]
fn full_disk_while_extracting_chunks_keeps_bundle_1() {
    let Some(sd) = on_small_disk() else {
        return;
    };
    let (env, disk, v1) = (&sd.env, &sd.disk, &sd.v1);
    // 3 MiB free: the 8 MiB of chunks do not fit.
    let filler = disk.fill_to("filler", 3 << 20);
    let m2 = env.root().join("m2");
    assert_refused(
        &import_with(env, &m2, &["--no-space-check"]),
        &["bundle 2", "No space left"],
        "full disk while extracting",
    );
    assert_kept(env, 1, v1, "full disk while extracting");

    sd.room_again_applies_bundle_2(filler);
}

#[test]
fn full_disk_while_extracting_chunks_reports_like_any_failed_apply() {
    let Some(sd) = on_small_disk() else {
        return;
    };
    let (env, disk, v1) = (&sd.env, &sd.disk, &sd.v1);
    let before = chunk_store(env);
    let _filler = disk.fill_to("filler", 3 << 20);
    let m2 = env.root().join("m2");
    assert_refused(
        &import_with(env, &m2, &["--no-space-check"]),
        &["bundle 2", "No space left", "still serves bundle 1"],
        "full disk while extracting",
    );
    assert_kept(env, 1, v1, "full disk while extracting");
    assert_eq!(
        chunk_store(env),
        before,
        "a failed apply left chunks in the chunk store"
    );
}

/// A FIFO on the media in place of a bundle file used to hang `import`
/// forever while it held the database. Now it is refused at once, by name.
#[test]
fn a_fifo_on_the_media_is_refused_not_waited_on() {
    if !have_tools("a_fifo_on_the_media_is_refused_not_waited_on", &["mkfifo"]) {
        return;
    }
    for file in ["volume-00000.ferry", "manifest.ferry"] {
        let env = Env::new();
        env.write_src("a.txt", &text_bytes(40_000, 7));
        env.export("m1").expect_ok();
        let target = env.only_bundle("m1").join(file);
        std::fs::remove_file(&target).unwrap();
        let ok = std::process::Command::new("mkfifo")
            .arg(&target)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mkfifo {}", target.display());
        let mut child = std::process::Command::new(bin("ferry-in"))
            .arg("--state")
            .arg(&env.in_state)
            .arg("import")
            .arg(env.root().join("m1"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("import is still waiting on a FIFO ({file}) after 120 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "a FIFO {file} was accepted");
        assert!(
            stderr.contains("not a regular file") && stderr.contains(file),
            "{file}: {stderr}"
        );
        assert_eq!(env.applied_sequence(), 0);
    }
}

/// Media inside the state directory is refused before anything is read:
/// publishing there would replace the state's own bundle.
#[test]
fn media_inside_the_state_directory_is_refused() {
    let env = Env::new();
    env.write_src("a.txt", b"one\n");
    env.export("m1").expect_ok();
    let kept = std::fs::read_dir(env.out_state.join("bundles"))
        .unwrap()
        .count();
    env.write_src("a.txt", b"two\n");
    for inside in [
        env.out_state.join("bundles"),
        env.out_state.join("new/../bundles/media"),
        env.out_state.clone(),
    ] {
        let to = inside.to_str().unwrap();
        let config = env.config.to_str().unwrap();
        env.out(&["export", "--config", config, "--to", to])
            .expect_fail(&["is inside the state directory", to]);
        env.out(&["resend", "--from", "1", "--to", to])
            .expect_fail(&["is inside the state directory"]);
    }
    assert_eq!(
        std::fs::read_dir(env.out_state.join("bundles"))
            .unwrap()
            .count(),
        kept,
        "nothing was exported"
    );
    env.export("m2").expect_ok();
    env.import("m1").expect_ok();
    env.import("m2").expect_ok();
    assert_eq!(
        std::fs::read(env.served("a.txt")).unwrap(),
        b"two\n",
        "the next export to real media works"
    );
}
