//! Receiving bundles from a one-way data diode.
//!
//! The receiver's logic (slots, segments, RaptorQ decoding, limits, expiry)
//! is [`ferry_protocol::diode::Receiver`], a state machine without I/O. This
//! module does the I/O around it: the UDP socket, the spool files its events
//! ask for, `progress.json` persistence, and imports.
//!
//! Partial bundles live in `SPOOL/.partial-<bundle dir>/`; a complete one is
//! renamed to `SPOOL/<bundle dir>/` and, with `--import`, imported — which
//! verifies it completely, exactly as from media, before anything is applied.
//! Each partial bundle keeps a progress file listing its finished segments,
//! and a receiver started late or restarted picks up the rest on the
//! sender's next carousel pass (unless that progress is older than the
//! expiry time). Progress for `ferry-in status` goes to
//! `STATE/diode-receive.json`.

mod importer;
mod socket;
mod spool;

use crate::apply::ApplyOptions;
use crate::db::Db;
use crate::layout::Layout;
use anyhow::{Context, Result};
use ferry_agent_common::fsx;
use ferry_protocol::diode::{BundleId, Receiver};
use ferry_protocol::limits::{DiodeLimits, ReceiverLimits};
use importer::{Importer, Outcome};
use spool::Spool;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Settings of a receiver.
#[derive(Clone, Debug)]
pub struct ReceiveOptions {
    /// Address to listen on.
    pub listen: String,
    /// Spool directory for bundles being received and complete.
    pub spool: PathBuf,
    /// Import each complete bundle.
    pub import: bool,
    /// Stop after this long without a packet (once one has arrived).
    pub exit_when_idle: Option<Duration>,
    /// Stop once this many bundles were applied (with `import`) or received
    /// complete (without) by this run.
    pub exit_after: Option<u64>,
    /// What the receiver holds for bundles being rebuilt: slots, decoders,
    /// geometry limits, expiry.
    pub diode: DiodeLimits,
    /// Limits for imports.
    pub limits: ReceiverLimits,
    /// Apply options for imports.
    pub apply: ApplyOptions,
    /// What follows each import that applied a bundle (`[push]`,
    /// `[publish]` in the config).
    pub after: crate::after_import::AfterImport,
}

/// Where complete bundles go to be imported (with their id, when known).
type ImportQueue = mpsc::Sender<(Option<BundleId>, PathBuf)>;

/// The receiver's status file in the state directory.
pub const STATUS_FILE: &str = "diode-receive.json";

/// Milliseconds since the Unix epoch: the receiver's notion of now.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The receiving loop's state around the protocol's state machine.
struct Session {
    opts: ReceiveOptions,
    layout: Layout,
    rx: Receiver,
    spool: Spool,
    /// Reports of bundles completed in this run.
    completed: Vec<serde_json::Value>,
    decode_secs: f64,
    import_log: Arc<Mutex<Vec<serde_json::Value>>>,
    to_import: Option<ImportQueue>,
    outcomes: Option<mpsc::Receiver<Outcome>>,
    /// Bundles applied by this run's imports.
    applied_here: u64,
    /// Datagrams dropped because the socket thread's queue was full.
    queue_full: Arc<AtomicU64>,
    /// Bytes received, on a terminal (nothing on a pipe).
    pb: indicatif::ProgressBar,
}

impl Session {
    /// Feeds one datagram to the state machine and carries out its events.
    fn datagram(&mut self, dgram: &[u8]) {
        let t = Instant::now();
        self.pb.inc(dgram.len() as u64);
        self.rx.handle(now_ms(), dgram);
        self.decode_secs += t.elapsed().as_secs_f64();
        self.events();
    }

    /// Rebuilds the segments waiting with enough symbols in.
    fn solve(&mut self) {
        if self.rx.has_ready() {
            let t = Instant::now();
            self.rx.solve_ready(now_ms());
            self.decode_secs += t.elapsed().as_secs_f64();
            self.events();
        }
    }

    fn events(&mut self) {
        while let Some(ev) = self.rx.poll_event() {
            match self.spool.apply(ev) {
                Ok(Some((id, dir, mut report))) => {
                    report["complete"] = serde_json::json!(true);
                    report["dir"] = serde_json::json!(dir.display().to_string());
                    self.completed.push(report);
                    if let Some(tx) = &self.to_import {
                        let _ = tx.send((Some(id), dir));
                    }
                }
                Ok(None) => {}
                Err(spool::Failed {
                    bundle,
                    error,
                    quiet,
                }) => {
                    if !quiet {
                        eprintln!(
                        "ferry-in: dropping bundle {} being received: {}; it starts over from later packets (the same failure to make its files again is logged once a minute)",
                        bundle.sequence,
                        ferry_agent_common::one_line(&error)
                    );
                    }
                    self.rx.abandon(bundle);
                    self.rx.forget(bundle);
                    self.spool.remove_partial(bundle);
                }
            }
        }
    }

    /// Takes in what the importer reports.
    fn outcomes(&mut self) {
        let Some(outcomes) = &self.outcomes else {
            return;
        };
        let got: Vec<Outcome> = outcomes.try_iter().collect();
        for o in got {
            match o {
                Outcome::Applied(stream, seq, n) => {
                    self.applied_here += n;
                    self.rx.set_applied(stream, seq);
                }
                Outcome::Refused(id) => self.rx.forget(id),
            }
        }
        self.events();
    }

    /// Persists progress and the status file; errors are reported, not fatal.
    fn save(&mut self) {
        for p in self.rx.take_dirty() {
            if let Err(e) = self.spool.save_progress(&p) {
                eprintln!(
                    "ferry-in: cannot save progress of bundle {}: {}",
                    p.sequence,
                    ferry_agent_common::one_line(&e)
                );
            }
        }
        if let Err(e) = self.save_status() {
            eprintln!(
                "ferry-in: cannot write the status file: {}",
                ferry_agent_common::one_line(&e)
            );
        }
    }

    /// Whether `--exit-after` is reached.
    fn done(&self) -> bool {
        let done = if self.opts.import {
            self.applied_here
        } else {
            self.completed.len() as u64
        };
        self.opts.exit_after.is_some_and(|n| done >= n)
    }

    fn save_status(&self) -> Result<()> {
        let mut counters = serde_json::to_value(self.rx.counters())?;
        counters["decode_secs"] = serde_json::json!(self.decode_secs);
        counters["queue_full"] = serde_json::json!(self.queue_full.load(Ordering::Relaxed));
        // The link's loss as measured (a figure for the sender's --loss).
        counters["loss"] = serde_json::json!(self.rx.counters().loss());
        let status = serde_json::json!({
            "listen": self.opts.listen,
            "spool": self.opts.spool.display().to_string(),
            "updated": ferry_agent_common::now_unix(),
            "counters": counters,
            "receiving": self.rx.reports(),
            "received": &self.completed,
            "imports": &*self.import_log.lock().expect("import log"),
        });
        fsx::write_atomic(
            &self.layout.root.join(STATUS_FILE),
            &serde_json::to_vec_pretty(&status)?,
        )
    }
}

fn start_importer(
    layout: &Layout,
    opts: &ReceiveOptions,
    log: Arc<Mutex<Vec<serde_json::Value>>>,
) -> (
    ImportQueue,
    mpsc::Receiver<Outcome>,
    std::thread::JoinHandle<()>,
) {
    let (tx, rx) = mpsc::channel();
    let (out_tx, out_rx) = mpsc::channel();
    let imp = Importer {
        layout: layout.clone(),
        spool: opts.spool.clone(),
        limits: opts.limits,
        apply: opts.apply,
        after: opts.after.clone(),
        log,
    };
    let h = std::thread::spawn(move || imp.run(rx, out_tx));
    (tx, out_rx, h)
}

/// Runs the receiver until the idle timeout (or forever).
pub fn receive(layout: &Layout, opts: ReceiveOptions) -> Result<()> {
    std::fs::create_dir_all(&opts.spool)
        .with_context(|| format!("cannot create spool {}", opts.spool.display()))?;
    let applied = Db::open(&layout.db())?.applied()?;
    let sock = socket::bind(&opts.listen)?;
    eprintln!(
        "ferry-in: receiving on udp://{} into {}",
        sock.local_addr()?,
        opts.spool.display()
    );
    let queue_full = Arc::new(AtomicU64::new(0));
    let mut reader = socket::Reader::start(sock, queue_full.clone())?;
    let import_log = Arc::new(Mutex::new(Vec::new()));
    let (to_import, outcomes, importer) = if opts.import {
        let (tx, out, h) = start_importer(layout, &opts, import_log.clone());
        (Some(tx), Some(out), Some(h))
    } else {
        (None, None, None)
    };
    let mut rx = Receiver::new(opts.diode, applied.stream, applied.sequence);
    // Segments of a window complete together: rebuild them on every core.
    rx.set_threads(std::thread::available_parallelism().map_or(1, |n| n.get()));
    let mut s = Session {
        rx,
        spool: Spool::new(opts.spool.clone(), opts.apply.policy.spool),
        opts,
        layout: layout.clone(),
        completed: Vec::new(),
        decode_secs: 0.0,
        import_log,
        to_import,
        outcomes,
        applied_here: 0,
        queue_full,
        pb: ferry_agent_common::progress::spinner("receiving"),
    };
    s.spool.restore(&mut s.rx, now_ms())?;
    s.events();
    if let Some(tx) = &s.to_import {
        for dir in s.spool.complete_bundles()? {
            eprintln!(
                "ferry-in: importing {} left complete by an earlier run",
                dir.display()
            );
            let _ = tx.send((None, dir));
        }
    }
    run_loop(&mut s, &mut reader)?;
    s.pb.finish_and_clear();
    drop(reader);
    s.solve();
    s.save();
    drop(s.to_import.take());
    if let Some(h) = importer {
        let _ = h.join();
    }
    s.outcomes();
    s.save();
    for r in s.rx.reports() {
        eprintln!(
            "ferry-in: bundle {} incomplete: {} segments received, {} recoverable with more symbols, {} missing, {} of {} files seen; nothing of it was applied",
            r.sequence, r.segments_received, r.segments_recoverable, r.segments_missing, r.files_seen, r.files
        );
    }
    Ok(())
}

fn run_loop(s: &mut Session, reader: &mut socket::Reader) -> Result<()> {
    let mut last_packet: Option<Instant> = None;
    let mut last_save = Instant::now();
    loop {
        // With segments waiting to be rebuilt, a quiet moment of 2 ms
        // rebuilds them (not the usual 200 ms).
        let wait = Duration::from_millis(if s.rx.has_ready() { 2 } else { 200 });
        match reader.next(wait)? {
            Some(d) => {
                last_packet = Some(Instant::now());
                s.datagram(&d);
            }
            None => {
                // A quiet moment: rebuild what waits, and take in finished
                // imports now, so `--exit-after` stops as soon as its
                // bundles are applied.
                s.solve();
                s.outcomes();
            }
        }
        if last_save.elapsed() > Duration::from_secs(1) {
            s.solve();
            s.rx.expire(now_ms());
            s.events();
            s.outcomes();
            s.save();
            last_save = Instant::now();
        }
        if s.done() {
            return Ok(());
        }
        if let (Some(idle), Some(t)) = (s.opts.exit_when_idle, last_packet) {
            if t.elapsed() > idle {
                return Ok(());
            }
        }
    }
}
