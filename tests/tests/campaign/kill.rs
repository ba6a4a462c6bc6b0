//! The kill -9 campaign: `ferry-in import`, `ferry-in receive --diode
//! --import` (fed by `ferry-out send` over loopback) and `ferry-in listen`
//! (fed by `ferry-out push` over QUIC) are killed with SIGKILL at random
//! instants while bringing bundle 2 to an inside that has bundle 1. After
//! each kill the store is not torn (`ferry-in scrub` finds every object and
//! chunk as the catalog says, and the served tree is version 1 or 2, as the
//! database says), and running the same job again finishes it (bundle 2 is
//! applied and scrubs clean).

use super::corrupt::Rng;
use ferry_e2e::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

type Digest = BTreeMap<String, String>;

/// What is killed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    /// `ferry-in import MEDIA`.
    Import,
    /// `ferry-in receive --diode ADDR --import`, with `ferry-out send --diode`.
    Receive,
    /// `ferry-in listen --quic ADDR`, with `ferry-out push`.
    Listen,
}

/// Bundle 1 and 2 of a `files` source, and an inside with bundle 1 applied
/// (copied for every trial).
pub struct Fixture {
    env: Env,
    scratch: tempfile::TempDir,
    pristine: PathBuf,
    media2: PathBuf,
    v1: Digest,
    v2: Digest,
}

/// A scratch directory on /dev/shm when it exists (copies and syncfs do not
/// queue behind other jobs' disk writes), else the temporary directory.
fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ferry-campaign-")
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap()
}

impl Fixture {
    /// Exports version 1 (about 1.2 MB) and version 2 (about 1 MB more, some
    /// files changed, some removed), imports bundle 1, makes QUIC identities.
    pub fn new() -> Fixture {
        let env = Env::new();
        for i in 0..8u64 {
            env.write_src(&format!("t/{i}.txt"), &text_bytes(50_000, i));
            env.write_src(&format!("r/{i}.bin"), &random_bytes(100_000, 10 + i));
        }
        env.export("media1").expect_ok();
        let v1 = tree_digest(&env.src);
        for i in 0..4u64 {
            env.write_src(&format!("t/{i}.txt"), &text_bytes(60_000, 20 + i));
            env.write_src(&format!("n/{i}.bin"), &random_bytes(200_000, 30 + i));
            std::fs::remove_file(env.src.join(format!("r/{i}.bin"))).unwrap();
        }
        env.export("media2").expect_ok();
        let v2 = tree_digest(&env.src);
        env.import("media1").expect_ok();
        env.out(&["cert"]).expect_ok();
        env.inn(&["cert"]).expect_ok();
        let scratch = scratch();
        let pristine = scratch.path().join("pristine");
        copy_tree(&env.in_state, &pristine);
        let media2 = env.root().join("media2");
        Fixture {
            env,
            scratch,
            pristine,
            media2,
            v1,
            v2,
        }
    }

    /// Starts the job on the inside state `state`; returns the inside
    /// process and, for the two links, the outside's sender thread.
    fn start(&self, target: Target, state: &Path) -> (Child, Option<Link>) {
        // The inside's stderr goes to a file next to its state (a pipe
        // nobody reads could fill and stall it).
        let log = log_of(state);
        let inside = |args: &[&str]| {
            let out = std::fs::File::create(&log).unwrap();
            let err = out.try_clone().unwrap();
            Command::new(bin("ferry-in"))
                .arg("--state")
                .arg(state)
                .args(args)
                .stdout(out)
                .stderr(err)
                .spawn()
                .unwrap()
        };
        let out_state = self.env.out_state.clone();
        let media2 = self.media2.to_str().unwrap().to_string();
        match target {
            Target::Import => (inside(&["import", &media2]), None),
            Target::Receive => {
                // Port 0: the receiver binds a free port itself and names it
                // (a port picked here could be taken by a parallel test
                // before the receiver binds it).
                let mut child = inside(&["receive", "--diode", "127.0.0.1:0", "--import"]);
                let line = wait_for_log(&log, "receiving on udp://", &mut child);
                let addr = line
                    .split("udp://")
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .expect("the receiver names its address")
                    .to_string();
                let send = Link::start(
                    &out_state,
                    &[
                        "send",
                        "--diode",
                        &addr,
                        "--rate",
                        "40M",
                        "--overhead",
                        "10%",
                        &media2,
                    ],
                );
                (child, Some(send))
            }
            Target::Listen => {
                let peer_cert = self.env.out_state.join("quic.crt");
                let mut child = inside(&[
                    "listen",
                    "--quic",
                    "127.0.0.1:0",
                    "--peer-cert",
                    peer_cert.to_str().unwrap(),
                ]);
                let line = wait_for_log(&log, "listening on ", &mut child);
                let url = line
                    .split("listening on ")
                    .nth(1)
                    .unwrap()
                    .trim()
                    .to_string();
                let peer = state.join("quic.crt");
                let push = Link::start(
                    &out_state,
                    &["push", &url, "--peer-cert", peer.to_str().unwrap()],
                );
                (child, Some(push))
            }
        }
    }

    /// Runs the job to its end on `state`; returns whether it succeeded and its output.
    fn run(&self, target: Target, state: &Path) -> (bool, String) {
        let (child, link) = self.start(target, state);
        match target {
            Target::Import => {
                let mut child = child;
                let ok = child.wait().unwrap().success();
                (
                    ok,
                    std::fs::read_to_string(log_of(state)).unwrap_or_default(),
                )
            }
            Target::Receive => {
                // The receiver runs on: once the sender is done, wait for
                // the import to report, then stop it.
                let send = link.unwrap().join();
                let mut child = KillOnDrop(child);
                let t0 = Instant::now();
                let log = log_of(state);
                let ok = loop {
                    let text = std::fs::read_to_string(&log).unwrap_or_default();
                    if text.contains("applied bundle 2 ") {
                        break true;
                    }
                    if t0.elapsed() > Duration::from_secs(60)
                        || child.0.try_wait().unwrap().is_some()
                    {
                        break false;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                };
                let _ = child.0.kill();
                let _ = child.0.wait();
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                (ok, format!("{text}{}", send.all()))
            }
            Target::Listen => {
                let push = link.unwrap().join();
                let _ = KillOnDrop(child);
                (push.ok, push.all())
            }
        }
    }

    /// The served tree's version (1 or 2) and the applied sequence; panics
    /// (with `what`) on a torn store.
    fn check_store(&self, state: &Path, what: &str) -> Result<(u8, u64), String> {
        let scrub = ferry_in(state, &["scrub"]);
        if !scrub.ok {
            return Err(format!("{what}: scrub found damage:\n{}", scrub.all()));
        }
        let d = served_digest_of(state, "tools");
        let version = if d == self.v1 {
            1
        } else if d == self.v2 {
            2
        } else {
            return Err(format!(
                "{what}: the served tree is neither version 1 nor 2"
            ));
        };
        let applied = status_of(state).applied_sequence;
        if (version, applied) == (2, 1) || !(1..=2).contains(&applied) {
            return Err(format!(
                "{what}: version {version} served, applied {applied}"
            ));
        }
        Ok((version, applied))
    }
}

/// The outside's side of a link (`ferry-out send` or `push`), run to its
/// end on a thread; its process can be killed.
struct Link {
    thread: std::thread::JoinHandle<Run>,
    pid: std::sync::Arc<std::sync::atomic::AtomicU32>,
}

impl Link {
    fn start(out_state: &Path, args: &[&str]) -> Link {
        let mut cmd = Command::new(bin("ferry-out"));
        cmd.arg("--state")
            .arg(out_state)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let pid = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let shared = pid.clone();
        let thread = std::thread::spawn(move || {
            let child = cmd.spawn().expect("start ferry-out");
            shared.store(child.id(), std::sync::atomic::Ordering::SeqCst);
            Run::from(child.wait_with_output().expect("wait for ferry-out"))
        });
        Link { thread, pid }
    }

    fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Sends SIGKILL to the process (if it started and has not been reaped).
    fn kill(&self) {
        let pid = self.pid.load(std::sync::atomic::Ordering::SeqCst);
        if pid != 0 && !self.thread.is_finished() {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }

    fn join(self) -> Run {
        self.thread.join().expect("the link's thread")
    }
}

/// Waits (up to 30 s, while `child` runs) for a line holding `needle` in
/// the log file `log`; returns the line.
fn wait_for_log(log: &Path, needle: &str, child: &mut Child) -> String {
    let t0 = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        // Whole lines only: stderr is unbuffered, so a line may be read
        // while the rest of it (the address after "udp://") is being written.
        if let Some(line) = text
            .split_inclusive('\n')
            .find(|l| l.ends_with('\n') && l.contains(needle))
        {
            return line.trim_end().to_string();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30) && child.try_wait().unwrap().is_none(),
            "the inside did not print {needle:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Where the inside's stderr goes for a state directory.
fn log_of(state: &Path) -> PathBuf {
    state.with_extension("stderr.log")
}

/// The campaign's figures.
#[derive(Default, Debug)]
pub struct Figures {
    /// Trials per target.
    pub trials: BTreeMap<Target, u64>,
    /// Trials per target where the kill landed while the job was under way.
    pub interrupted: BTreeMap<Target, u64>,
    /// (target, served version, applied sequence) after the kill -> count.
    pub states: BTreeMap<(Target, u8, u64), u64>,
    /// Failures, each with the seed and trial to repeat it.
    pub failures: Vec<String>,
}

/// How long each target's job takes when left alone, to spread kills over.
fn clean_times(fx: &Fixture) -> BTreeMap<Target, Duration> {
    let mut out = BTreeMap::new();
    for t in [Target::Import, Target::Receive, Target::Listen] {
        // The quickest of a few runs (one for the slow diode), so that the
        // kills land inside the job rather than after it.
        let runs = if t == Target::Receive { 1 } else { 3 };
        for _ in 0..runs {
            let copy = fx.scratch.path().join("clean");
            copy_tree(&fx.pristine, &copy);
            let t0 = Instant::now();
            let (ok, text) = fx.run(t, &copy);
            let took = t0.elapsed();
            assert!(ok, "a clean {t:?} failed:\n{text}");
            assert_eq!(
                fx.check_store(&copy, "clean run"),
                Ok((2, 2)),
                "a clean {t:?} did not apply bundle 2:\n{text}"
            );
            let e = out.entry(t).or_insert(took);
            *e = (*e).min(took);
            std::fs::remove_dir_all(&copy).unwrap();
            let _ = std::fs::remove_file(log_of(&copy));
        }
    }
    out
}

/// Runs `n` trials seeded with `seed`, targets in turn.
pub fn campaign(fx: &Fixture, n: u64, seed: u64) -> Figures {
    let mut rng = Rng::new(seed);
    let times = clean_times(fx);
    eprintln!("clean runs: {times:?}");
    let mut fig = Figures::default();
    // Two in five trials kill an import, two a QUIC listener, one a diode
    // receiver (the slowest: the sender's RaptorQ encoding dominates).
    let targets = [
        Target::Import,
        Target::Listen,
        Target::Receive,
        Target::Import,
        Target::Listen,
    ];
    let t0 = Instant::now();
    for trial in 0..n {
        if trial > 0 && trial % 20 == 0 {
            eprintln!(
                "  {trial} of {n} trials, {} failures, {:.0?}",
                fig.failures.len(),
                t0.elapsed()
            );
        }
        let target = targets[(trial % 5) as usize];
        // Kill anywhere in 0..T, T the clean run's time.
        let span = times[&target].as_micros() as u64;
        let after = Duration::from_micros(rng.below(span.max(1)));
        let copy = fx.scratch.path().join(format!("trial-{trial}"));
        copy_tree(&fx.pristine, &copy);
        let (mut child, link) = fx.start(target, &copy);
        std::thread::sleep(after);
        // Whether the job was still under way at the kill: the import still
        // running; the receiver not yet through importing bundle 2; the push
        // not yet finished.
        let under_way = match target {
            Target::Import => child.try_wait().unwrap().is_none(),
            Target::Receive => !std::fs::read_to_string(log_of(&copy))
                .unwrap_or_default()
                .contains("applied bundle 2 "),
            Target::Listen => !link.as_ref().unwrap().is_finished(),
        };
        let _ = child.kill();
        let _ = child.wait();
        if let Some(l) = link {
            // A push whose listener died would wait out QUIC's 30 s idle
            // timeout before failing; what it does then is not this
            // campaign's subject (the inside's store is), so it is stopped.
            // A diode sender never waits for its receiver.
            if target == Target::Listen {
                l.kill();
            }
            let _ = l.join();
        }
        *fig.trials.entry(target).or_default() += 1;
        if under_way {
            *fig.interrupted.entry(target).or_default() += 1;
        }
        let what = format!("seed {seed} trial {trial} ({target:?} killed after {after:?})");
        let after_kill = fx.check_store(&copy, &what);
        match &after_kill {
            Ok((v, a)) => *fig.states.entry((target, *v, *a)).or_default() += 1,
            Err(e) => fig.failures.push(e.clone()),
        }
        // A receiver killed after it applied bundle 2 has finished the job:
        // run again, it would drop every packet of that bundle as applied and
        // never report it, so only the store is checked again.
        let (ok, text) = if target == Target::Receive && after_kill == Ok((2, 2)) {
            (true, String::new())
        } else {
            fx.run(target, &copy)
        };
        match fx.check_store(&copy, &format!("{what}, after the rerun")) {
            Ok((2, 2)) if ok => {}
            Ok(st) => fig.failures.push(format!(
                "{what}: the rerun did not finish the job (ok {ok}, version and sequence {st:?}):\n{text}"
            )),
            Err(e) => fig.failures.push(e),
        }
        std::fs::remove_dir_all(&copy).unwrap();
        let _ = std::fs::remove_file(log_of(&copy));
    }
    fig
}

/// Prints the figures.
pub fn print(fig: &Figures, seed: u64, elapsed: Duration) {
    eprintln!("kill -9 campaign: seed {seed}, {elapsed:.1?}");
    for (t, n) in &fig.trials {
        eprintln!(
            "  {t:?}: {n} trials, {} killed while the job was under way",
            fig.interrupted.get(t).copied().unwrap_or(0)
        );
    }
    for ((t, v, a), n) in &fig.states {
        eprintln!("  after the kill, {t:?}: serving version {v}, applied {a}: {n}");
    }
    eprintln!("  failures: {}", fig.failures.len());
    for f in fig.failures.iter().take(20) {
        eprintln!("  FAILURE {f}");
    }
}
