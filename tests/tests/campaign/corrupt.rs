//! The corruption campaign: random damage to copies of real bundle 2s (of
//! every source type) offered to an inside that has bundle 1 applied. Every
//! damaged copy must be refused with a clean error (exit 1, no panic), and
//! nothing may change: the applied sequence, `store/current`'s target and
//! the bytes of a served file.

use super::sources::Built;
use ferry_e2e::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A small seeded generator (SplitMix64): the same seed gives the same campaign.
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The kinds of damage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// One to three bytes of the manifest XORed with a random non-zero mask.
    FlipManifest,
    /// One to three bytes of one volume XORed.
    FlipVolume,
    /// The manifest cut at a random length.
    TruncateManifest,
    /// A volume cut at a random length.
    TruncateVolume,
    /// 1 to 16 random bytes inserted into the manifest (or appended).
    InsertManifest,
    /// 1 to 16 random bytes inserted into a volume (or appended).
    InsertVolume,
    /// A volume replaced by a volume of another bundle (bundle 1 of the same
    /// source or bundle 2 of another source type).
    ForeignVolume,
    /// Two volumes of the bundle swapped.
    SwapVolumes,
    /// A volume file deleted.
    DeleteVolume,
    /// The manifest deleted (the directory stays, holding only volumes).
    DeleteManifest,
}

/// Every kind, drawn with equal weight.
pub const KINDS: [Kind; 10] = [
    Kind::FlipManifest,
    Kind::FlipVolume,
    Kind::TruncateManifest,
    Kind::TruncateVolume,
    Kind::InsertManifest,
    Kind::InsertVolume,
    Kind::ForeignVolume,
    Kind::SwapVolumes,
    Kind::DeleteVolume,
    Kind::DeleteManifest,
];

/// The volume files of a bundle directory, in order.
fn volumes(dir: &Path) -> Vec<PathBuf> {
    (0u32..)
        .map(|i| dir.join(ferry_protocol::volume::file_name(i)))
        .take_while(|p| p.is_file())
        .collect()
}

fn pick<'a>(rng: &mut Rng, v: &'a [PathBuf]) -> &'a PathBuf {
    &v[rng.below(v.len() as u64) as usize]
}

/// Damages the bundle copy in `dir` as `kind` says; `foreign` are volume
/// files of other bundles. Returns a description to reproduce it by eye.
pub fn damage(rng: &mut Rng, kind: Kind, dir: &Path, foreign: &[PathBuf]) -> String {
    let manifest = dir.join("manifest.ferry");
    let vols = volumes(dir);
    let target = match kind {
        Kind::FlipManifest | Kind::TruncateManifest | Kind::InsertManifest => manifest.clone(),
        _ => pick(rng, &vols).clone(),
    };
    let name = target.file_name().unwrap().to_string_lossy().into_owned();
    match kind {
        Kind::FlipManifest | Kind::FlipVolume => {
            let mut b = std::fs::read(&target).unwrap();
            let mut at = Vec::new();
            for _ in 0..=rng.below(3) {
                let i = rng.below(b.len() as u64) as usize;
                b[i] ^= (rng.below(255) + 1) as u8;
                at.push(i);
            }
            std::fs::write(&target, b).unwrap();
            format!("{name}: bytes {at:?} flipped")
        }
        Kind::TruncateManifest | Kind::TruncateVolume => {
            let mut b = std::fs::read(&target).unwrap();
            let len = rng.below(b.len() as u64) as usize;
            b.truncate(len);
            std::fs::write(&target, b).unwrap();
            format!("{name}: truncated to {len} bytes")
        }
        Kind::InsertManifest | Kind::InsertVolume => {
            let mut b = std::fs::read(&target).unwrap();
            let at = rng.below(b.len() as u64 + 1) as usize;
            let n = rng.below(16) as usize + 1;
            let ins: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            b.splice(at..at, ins);
            std::fs::write(&target, b).unwrap();
            format!("{name}: {n} bytes inserted at {at}")
        }
        Kind::ForeignVolume => {
            let from = pick(rng, foreign);
            std::fs::copy(from, &target).unwrap();
            format!("{name}: replaced by {}", from.display())
        }
        Kind::SwapVolumes => {
            let a = rng.below(vols.len() as u64) as usize;
            let b = (a + 1 + rng.below(vols.len() as u64 - 1) as usize) % vols.len();
            let tmp = dir.join("swap.tmp");
            std::fs::rename(&vols[a], &tmp).unwrap();
            std::fs::rename(&vols[b], &vols[a]).unwrap();
            std::fs::rename(&tmp, &vols[b]).unwrap();
            format!("volumes {a} and {b} swapped")
        }
        Kind::DeleteVolume => {
            std::fs::remove_file(&target).unwrap();
            format!("{name} deleted")
        }
        Kind::DeleteManifest => {
            std::fs::remove_file(&manifest).unwrap();
            "manifest.ferry deleted".into()
        }
    }
}

/// The refusal reason of a failed import: the error line of stderr with
/// paths, numbers and digests blanked, so that like refusals count together.
pub fn reason(stderr: &str) -> String {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.contains("error") || l.contains("refused") || l.contains("failed"))
        .unwrap_or("(no error line)");
    // The cause: what follows the last segment that names a path (the
    // bundle, the manifest or the volume), or that segment when it is the last.
    let parts: Vec<&str> = line.split(": ").collect();
    let from = parts
        .iter()
        .rposition(|p| p.contains('/'))
        .map_or(0, |i| (i + 1).min(parts.len() - 1));
    let cause = parts[from..].join(": ");
    let mut out = String::new();
    for word in cause.split_whitespace() {
        let w = if word.contains('/') {
            "PATH"
        } else if word.chars().any(|c| c.is_ascii_digit()) {
            "N"
        } else {
            word
        };
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(w);
    }
    out.chars().take(100).collect()
}

/// What the inside looks like from outside: applied sequence, current's
/// target, and the bytes of one served file.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    applied: u64,
    current: PathBuf,
    served: Vec<u8>,
}

/// The first regular file under `dir` (depth first, sorted), to watch.
fn first_file(dir: &Path) -> PathBuf {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in &entries {
        let m = std::fs::symlink_metadata(p).unwrap();
        if m.is_file() && m.len() > 0 {
            return p.clone();
        }
    }
    for p in entries {
        if std::fs::symlink_metadata(&p).unwrap().is_dir() {
            return first_file(&p);
        }
    }
    panic!("no file under {}", dir.display())
}

fn snapshot(state: &Path, watched: &Path) -> Snapshot {
    Snapshot {
        applied: status_of(state).applied_sequence,
        current: std::fs::read_link(state.join("store/current")).unwrap(),
        served: std::fs::read(watched).unwrap(),
    }
}

/// The campaign's figures.
#[derive(Default, Debug)]
pub struct Figures {
    /// Trials per kind.
    pub by_kind: BTreeMap<Kind, u64>,
    /// Trials per source type.
    pub by_source: BTreeMap<&'static str, u64>,
    /// Refusals per reason.
    pub by_reason: BTreeMap<String, u64>,
    /// Failures: a description of each (with the seed and trial number).
    pub failures: Vec<String>,
}

/// Runs `n` corruptions seeded with `seed` over `built`; returns the figures.
pub fn campaign(built: &[Built], n: u64, seed: u64, scratch: &Path) -> Figures {
    let mut rng = Rng::new(seed);
    let mut fig = Figures::default();
    // Every bundle's volumes, to draw foreign volumes from.
    let all_vols: Vec<(usize, PathBuf)> = built
        .iter()
        .enumerate()
        .flat_map(|(i, b)| {
            let mut v: Vec<(usize, PathBuf)> = volumes(&b.b1)
                .into_iter()
                .map(|p| (usize::MAX, p))
                .collect();
            // Bundle 1's volumes are foreign to every bundle 2; tag them by
            // owner only for bundle 2s.
            v.extend(volumes(&b.b2).into_iter().map(|p| (i, p)));
            v
        })
        .collect();
    let watched: Vec<PathBuf> = built
        .iter()
        .map(|b| first_file(&b.env.in_state.join("objects")))
        .collect();
    let before: Vec<Snapshot> = built
        .iter()
        .zip(&watched)
        .map(|(b, w)| snapshot(&b.env.in_state, w))
        .collect();
    let t0 = std::time::Instant::now();
    for trial in 0..n {
        if trial > 0 && trial % 1000 == 0 {
            eprintln!(
                "  {trial} of {n} corruptions, {} failures, {:.0?}",
                fig.failures.len(),
                t0.elapsed()
            );
        }
        let i = rng.below(built.len() as u64) as usize;
        let b = &built[i];
        let kind = KINDS[rng.below(KINDS.len() as u64) as usize];
        let media = scratch.join("media");
        let _ = std::fs::remove_dir_all(&media);
        let copy = media.join(b.b2.file_name().unwrap());
        std::fs::create_dir_all(&copy).unwrap();
        for v in volumes(&b.b2).iter().chain([&b.b2.join("manifest.ferry")]) {
            std::fs::copy(v, copy.join(v.file_name().unwrap())).unwrap();
        }
        let foreign: Vec<PathBuf> = all_vols
            .iter()
            .filter(|(owner, _)| *owner != i)
            .map(|(_, p)| p.clone())
            .collect();
        let what = damage(&mut rng, kind, &copy, &foreign);
        *fig.by_kind.entry(kind).or_default() += 1;
        *fig.by_source.entry(b.kind).or_default() += 1;
        let r = ferry_in(&b.env.in_state, &["import", media.to_str().unwrap()]);
        let tag = format!("seed {seed} trial {trial}: {} {kind:?} ({what})", b.kind);
        let after = snapshot(&b.env.in_state, &watched[i]);
        if r.ok || r.code != Some(1) || r.stderr.contains("panicked") {
            fig.failures.push(format!(
                "{tag}: import {} (code {:?}):\n{}",
                if r.ok {
                    "ACCEPTED it"
                } else {
                    "did not fail cleanly"
                },
                r.code,
                r.all()
            ));
        } else {
            *fig.by_reason.entry(reason(&r.stderr)).or_default() += 1;
        }
        if after != before[i] {
            fig.failures.push(format!(
                "{tag}: the inside changed: applied {} -> {}, current {:?} -> {:?}, watched file {}",
                before[i].applied,
                after.applied,
                before[i].current,
                after.current,
                if after.served == before[i].served { "same" } else { "CHANGED" }
            ));
            return fig; // the state is no longer bundle 1's: stop here
        }
    }
    let _ = std::fs::remove_dir_all(scratch.join("media"));
    fig
}

/// Prints the figures.
pub fn print(fig: &Figures, seed: u64, n: u64, elapsed: std::time::Duration) {
    eprintln!("corruption campaign: seed {seed}, {n} corruptions in {elapsed:.1?}");
    eprintln!("  by source type: {:?}", fig.by_source);
    for (k, c) in &fig.by_kind {
        eprintln!("  {k:?}: {c}");
    }
    eprintln!("  refusal reasons:");
    let mut reasons: Vec<_> = fig.by_reason.iter().collect();
    reasons.sort_by(|a, b| b.1.cmp(a.1));
    for (r, c) in reasons {
        eprintln!("    {c:6}  {r}");
    }
    eprintln!("  failures: {}", fig.failures.len());
    for f in fig.failures.iter().take(20) {
        eprintln!("  FAILURE {f}");
    }
}
