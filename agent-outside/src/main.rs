//! The `ferry-out` command line.

#![cfg_attr(not(test), warn(clippy::too_many_lines))]

use agent_outside::config::{Config, SignMode};
use agent_outside::export::{self, ExportOptions};
use agent_outside::layout::Layout;
use agent_outside::ledger::{BundleRecord, Ledger};
use agent_outside::receipts;
use agent_outside::signing;
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use ferry_agent_common::units::{human_bytes, parse_duration_secs, parse_size};
use ferry_agent_common::{docs_gen, format_time, fsx, paths};
use ferry_protocol::keys::SecretKey;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Ferry's outside agent: tracks upstream sources and writes signed,
/// chunk-deduplicated delta bundles for an air-gapped network.
#[derive(Parser)]
#[command(name = "ferry-out", version)]
struct Cli {
    /// State directory (ledger, signing key, kept bundles).
    /// Default: /var/lib/ferry-out for root, else $XDG_STATE_HOME/ferry-out.
    #[arg(long, global = true, env = "FERRY_OUT_STATE")]
    state: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

/// Settings of a diode send (also for `export --to diode://HOST:PORT`).
#[derive(clap::Args, Clone)]
struct DiodeArgs {
    /// Line rate in bits per second, such as 500M or 10G: overrunning a diode is loss.
    #[arg(long, default_value = "100M")]
    rate: String,
    /// Repair symbols on top of the data, such as 10% (the default unless
    /// --loss is given).
    #[arg(long)]
    overhead: Option<String>,
    /// The link's expected loss, such as 1% (what `ferry-in receive` reports
    /// as measured): each segment gets the repair that covers it with a
    /// failure chance below one in a billion, or --overhead's if more.
    #[arg(long)]
    loss: Option<String>,
    /// Send everything this many more times, as fresh repair symbols (a carousel).
    #[arg(long, default_value_t = 0)]
    repeat: u32,
    /// Link MTU: 1500, or 9000 for jumbo frames.
    #[arg(long, default_value_t = 1500)]
    mtu: u16,
}

impl DiodeArgs {
    fn options(&self) -> Result<agent_outside::diode::SendOptions> {
        if !(576..=65_000).contains(&self.mtu) {
            bail!("--mtu must be between 576 and 65000");
        }
        Ok(agent_outside::diode::SendOptions {
            rate_bps: agent_outside::diode::parse_rate(&self.rate)?,
            overhead: match (&self.overhead, &self.loss) {
                (Some(o), _) => agent_outside::diode::parse_overhead(o)?,
                (None, Some(_)) => 0.0,
                (None, None) => 0.1,
            },
            loss: self
                .loss
                .as_deref()
                .map(agent_outside::diode::parse_loss)
                .transpose()?,
            repeat: self.repeat,
            mtu: self.mtu,
            ..Default::default()
        })
    }
}

/// `receipt` subcommands.
#[derive(Subcommand)]
enum ReceiptCmd {
    /// Checks a receipt (its file, or a file holding its text form) against
    /// the trusted inside keys and the ledger, and records what the inside
    /// holds: its bundles count as delivered.
    Add {
        /// The receipt file.
        file: PathBuf,
    },
}

/// The arguments of `export`.
#[derive(clap::Args)]
struct ExportArgs {
    /// Configuration file (TOML).
    #[arg(long)]
    config: PathBuf,
    /// Media directory to write the bundle into.
    #[arg(long)]
    to: PathBuf,
    /// Largest volume file, such as 4G or 700M.
    #[arg(long, default_value = "4G")]
    volume_size: String,
    /// Patches against predecessors: off, fast, high or a zstd level
    /// (default: the config's `[export] delta`, itself `fast`).
    #[arg(long)]
    delta: Option<String>,
    /// Reproduce xz streams (debs, RPMs): auto (at high only), always or
    /// never (default: the config's `[export] delta_xz`, itself `auto`).
    #[arg(long)]
    delta_xz: Option<String>,
    /// Leave the manifest unsigned for `ferry-out sign` (never reads
    /// signing.key); as `[export] sign = "separate"`.
    #[arg(long)]
    unsigned: bool,
    /// A `ferry-in scrub --json` report: ship again the chunks and objects
    /// it found bad (even when nothing else changed).
    #[arg(long, value_name = "REPORT")]
    reship: Option<PathBuf>,
    /// Write a rebase snapshot of the last bundle instead (every object,
    /// for a new or rebuilt inside; docs/runbook.md "a rebuilt inside").
    /// With --unsigned it waits in STATE/bundles for `sign` and `publish`.
    #[arg(long, conflicts_with = "reship")]
    rebase: bool,
    #[command(flatten)]
    diode: DiodeArgs,
}

#[derive(Subcommand)]
enum Cmd {
    /// Creates a new ed25519 signing key; prints the public key and writes STATE/signing.pub.
    Keygen {
        /// Replace an existing key (the inside must then trust the new public key).
        #[arg(long)]
        force: bool,
    },
    /// Rotates the signing key in band (docs/trust.md).
    Key {
        #[command(subcommand)]
        cmd: agent_outside::keys::KeyCmd,
    },
    /// The offline root key: revokes keys, replaces a lost signing key (docs/trust.md).
    Root {
        #[command(subcommand)]
        cmd: agent_outside::keys::RootCmd,
    },
    /// Exports everything new since the last bundle into MEDIA_DIR.
    Export(ExportArgs),
    /// Signs bundles exported with `export --unsigned`: checks each against
    /// its manifest, shows what it signs, writes its signed manifest. Needs
    /// only the key and the bundle (runnable on another machine). DIR is a
    /// bundle directory, or a directory of them (such as STATE/bundles).
    Sign {
        /// The secret signing key file (as `keygen` writes STATE/signing.key).
        #[arg(long)]
        key: PathBuf,
        /// A bundle directory, or a directory holding bundle directories.
        dir: PathBuf,
    },
    /// Adds a co-signature beside signed bundles, for an inside that needs
    /// more than one signature per bundle (`ferry-in trust threshold`). DIR
    /// is a bundle directory or a directory of them (media, or STATE/bundles
    /// before `publish`).
    Cosign {
        /// The secret key file of the co-signer.
        #[arg(long)]
        key: PathBuf,
        /// A bundle directory, or a directory holding bundle directories.
        dir: PathBuf,
    },
    /// Moves the bundle that awaited its signature, once signed, into the
    /// stream and writes it to MEDIA_DIR (the next `export` does this too).
    Publish {
        /// Media directory to write the bundle into.
        #[arg(long)]
        to: PathBuf,
    },
    /// Drops the bundle that awaits its signature (its sequence is exported afresh).
    Discard,
    /// Streams the bundles in MEDIA_DIR across a one-way data diode (UDP with
    /// forward error correction; nothing ever comes back).
    Send {
        /// Receiver address, HOST:PORT.
        #[arg(long)]
        diode: String,
        #[command(flatten)]
        opts: DiodeArgs,
        /// Media directory holding the bundles (or one bundle directory).
        media: PathBuf,
    },
    /// Writes already exported bundles again (for a lost or damaged stick):
    /// byte-identical, so the chain is unbroken.
    Resend {
        /// First sequence number to write again.
        #[arg(long, required_unless_present = "missing", conflicts_with = "missing")]
        from: Option<u64>,
        /// Exactly the bundles a trusted inside lacks, by its last receipt
        /// (`receipt add`): not applied and not held there.
        #[arg(long)]
        missing: bool,
        /// Last sequence number (default: the latest).
        #[arg(long)]
        through: Option<u64>,
        /// Media directory.
        #[arg(long)]
        to: PathBuf,
        /// A bundle that expires sooner than this from now gets a validity
        /// extension beside it (validity.ferry, signed with signing.key)
        /// good for this long, so the inside takes it without --allow-expired.
        #[arg(long, default_value = "7d")]
        valid_for: String,
    },
    /// Deletes kept copies of old bundles from the state directory (they can
    /// then no longer be re-sent), and the ledger's catalog history before
    /// them. Bundles never written to media are kept, and so are the
    /// catalogs of kept bundles and of what each trusted inside applied.
    Prune {
        /// How many of the newest bundles to keep.
        #[arg(long)]
        keep: u64,
        /// Also delete bundles a trusted inside has not acknowledged yet
        /// (by default they are kept, whatever --keep says).
        #[arg(long)]
        unacknowledged_too: bool,
    },
    /// Trusts an inside's receipt key (the `inside.pub` that `ferry-in
    /// receipt` makes), so its receipts can be recorded.
    TrustInside {
        /// The inside's public key file.
        pubkey_file: PathBuf,
    },
    /// Receipts from the inside (`ferry-in receipt`).
    Receipt {
        #[command(subcommand)]
        cmd: ReceiptCmd,
    },
    /// Makes this agent's QUIC identity (STATE/quic.crt and quic.key) for
    /// `push`; prints the certificate's fingerprint.
    Cert(ferry_quic::CertArgs),
    /// Pushes every kept bundle the inside lacks over a two-way QUIC link,
    /// sending only the chunks it asks for; resumes after a dropped connection.
    Push {
        /// The inside's listener, quic://HOST:PORT.
        url: String,
        #[command(flatten)]
        peers: ferry_quic::PeerArgs,
        /// A bundle that expires sooner than this from now goes with a
        /// validity extension (signed with signing.key) good for this long.
        #[arg(long, default_value = "7d")]
        valid_for: String,
    },
    /// Shows the stream, its key and every bundle exported.
    Status,
    #[command(hide = true)]
    GenerateDocs { dir: PathBuf },
}

fn main() {
    // First, before any thread: large buffers freed go back to the system.
    ferry_malloc::release_large_blocks();
    ferry_agent_common::quiet_on_closed_stdout();
    let cli = Cli::parse();
    let state = cli
        .state
        .clone()
        .unwrap_or_else(|| paths::default_state_dir("ferry-out"));
    if let Err(e) = run(&Layout::new(&state), cli.cmd) {
        eprintln!("ferry-out: error: {}", ferry_agent_common::one_line(&e));
        std::process::exit(1);
    }
}

fn load_key(layout: &Layout) -> Result<SecretKey> {
    let p = layout.signing_key();
    let text = std::fs::read_to_string(&p).with_context(|| {
        format!(
            "no signing key at {} (run `ferry-out --state {} keygen` first)",
            p.display(),
            layout.root.display()
        )
    })?;
    SecretKey::from_text(&text).with_context(|| format!("signing key {}", p.display()))
}

fn run(layout: &Layout, cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Keygen { force } => keygen(layout, force),
        Cmd::Send { diode, opts, media } => {
            let dirs = ferry_agent_common::media::find_bundles(&media)?;
            if dirs.is_empty() {
                bail!("no bundle found in {}", media.display());
            }
            diode_send(&dirs, &diode, &opts)
        }
        Cmd::Export(args) => export_cmd(layout, &args),
        Cmd::Sign { key, dir } => sign_cmd(&key, &dir),
        Cmd::Publish { to } => publish_cmd(layout, &to),
        Cmd::Discard => {
            let ledger = Ledger::open(layout)?;
            match signing::discard(layout, &ledger)? {
                Some(seq) => println!("bundle {seq} discarded; the next export builds it afresh"),
                None => println!("no bundle awaits a signature"),
            }
            Ok(())
        }
        Cmd::Resend {
            from,
            missing,
            through,
            to,
            valid_for,
        } => resend_cmd(layout, from, missing, through, &to, &valid_for),
        Cmd::TrustInside { pubkey_file } => receipts::trust_inside_cmd(layout, &pubkey_file),
        Cmd::Receipt {
            cmd: ReceiptCmd::Add { file },
        } => receipts::receipt_add_cmd(layout, &file),
        Cmd::Prune {
            keep,
            unacknowledged_too,
        } => {
            let p = agent_outside::prune::prune(layout, keep, unacknowledged_too)?;
            if let Some(acked) = p.held_for_insides {
                println!(
                    "keeping the bundles after {acked}: a trusted inside has not \
                     acknowledged them (--unacknowledged-too deletes them)"
                );
            }
            println!(
                "pruned {} kept bundle(s), {} freed; the newest {keep} stay re-sendable",
                p.bundles,
                human_bytes(p.bundle_bytes)
            );
            if let Some(h) = &p.history {
                println!(
                    "compacted the catalog history before bundle {}: {} catalog(s), {}; \
                     the ledger went from {} to {}",
                    h.from,
                    h.sequences,
                    human_bytes(h.bytes),
                    human_bytes(p.ledger_bytes.0),
                    human_bytes(p.ledger_bytes.1)
                );
            }
            Ok(())
        }
        Cmd::Cert(args) => args.run(&layout.root, "ferry-in listen"),
        Cmd::Push {
            url,
            peers,
            valid_for,
        } => agent_outside::push::run(layout, &url, peers.auth()?, &valid_for),
        Cmd::Status => status(layout),
        Cmd::Key { cmd } => agent_outside::keys::run_key(layout, cmd),
        Cmd::Cosign { key, dir } => agent_outside::keys::run_cosign(&key, &dir),
        Cmd::Root { cmd } => agent_outside::keys::run_root(layout, cmd),
        Cmd::GenerateDocs { dir } => docs_gen::run(<Cli as clap::CommandFactory>::command(), &dir),
    }
}

fn diode_send(dirs: &[PathBuf], target: &str, args: &DiodeArgs) -> Result<()> {
    let opts = args.options()?;
    let addr = agent_outside::diode::resolve(target)?;
    let st = agent_outside::diode::send(dirs, addr, &opts)?;
    println!(
        "sent {} bundle(s), {} of bundle data, to {target}: {} packets, {} on the wire ({:.1}% more, {} pass(es)) in {:.2}s; {:.1} MB/s of bundle data, encoding took {:.2}s; first packet after {:.0} ms, {:.3}s of sending lost behind the line rate, {:.3}s waiting for encoding",
        st.bundles,
        human_bytes(st.payload_bytes),
        st.packets,
        human_bytes(st.wire_bytes),
        (st.wire_bytes as f64 / st.payload_bytes.max(1) as f64 - 1.0) * 100.0,
        opts.repeat + 1,
        st.secs,
        st.payload_bytes as f64 / 1e6 / st.secs.max(1e-6),
        st.encode_secs,
        st.first_packet_secs * 1e3,
        st.behind_secs,
        st.starved_secs
    );
    Ok(())
}

/// Copies a kept bundle to media and records that it was written.
fn write_out(layout: &Layout, ledger: &Ledger, r: &BundleRecord, to: &Path) -> Result<u64> {
    let n = export::copy_to_media(layout, r, to).with_context(|| {
        format!(
            "bundle {} is exported and kept in {}, but could not be written to {}; \
             the next export writes it first, or run `ferry-out resend --from {} --to DIR`",
            r.sequence,
            layout.bundle(&r.dir_name).display(),
            to.display(),
            r.sequence
        )
    })?;
    ledger.mark_written(r.sequence)?;
    Ok(n)
}

fn keygen(layout: &Layout, force: bool) -> Result<()> {
    let state = &layout.root;
    std::fs::create_dir_all(state)
        .with_context(|| format!("cannot create state directory {}", state.display()))?;
    let kp = layout.signing_key();
    if kp.exists() && !force {
        bail!(
            "{} already exists; use --force to replace it (the inside must then trust the new key)",
            kp.display()
        );
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no randomness for a key: {e}"))?;
    let key = SecretKey::from_seed(seed);
    fsx::write_private(&kp, format!("{}\n", key.to_text()).as_bytes())?;
    let public = key.public().to_text();
    fsx::write_atomic(&layout.signing_pub(), format!("{public}\n").as_bytes())?;
    fsx::sync_dir(state)?;
    println!("{public}");
    eprintln!(
        "ferry-out: wrote {} (secret, mode 0600) and {}; copy signing.pub inside and run `ferry-in trust add signing.pub --stream ID` with the stream id `ferry-out status` prints",
        kp.display(),
        layout.signing_pub().display()
    );
    Ok(())
}

fn status(layout: &Layout) -> Result<()> {
    let ledger = Ledger::open(layout)?;
    println!("state:   {}", layout.root.display());
    println!("stream:  {}", ledger.stream()?);
    let public = std::fs::read_to_string(layout.signing_pub()).ok();
    match (load_key(layout), public) {
        (Ok(k), _) => println!("key:     {}", k.public().to_text()),
        (Err(_), Some(p)) => println!("key:     {} (signed apart: `ferry-out sign`)", p.trim()),
        (Err(_), None) => println!("key:     none (run keygen)"),
    }
    if let Some(r) = ledger.awaiting_signature()? {
        let dir = layout.bundle(&r.dir_name);
        let what = if dir.join(ferry_agent_common::media::MANIFEST_FILE).exists() {
            "is signed and awaits `ferry-out publish`"
        } else {
            "awaits its signature (`ferry-out sign`, then `publish`)"
        };
        println!("waiting: bundle {} ({}) {what}", r.sequence, dir.display());
    }
    for line in agent_outside::keys::status_lines(layout)? {
        println!("{line}");
    }
    let reship = ledger.reship()?.len();
    if reship > 0 {
        println!("reship:  {reship} chunk(s) to ship again in the next bundle");
    }
    let bundles = ledger.bundles()?;
    println!(
        "bundles: {} exported, {} distinct chunks shipped",
        bundles.len(),
        ledger.shipped_chunks()?
    );
    if let Some(last) = bundles.last() {
        let cat = ledger.catalog(last.sequence)?;
        for (src, (n, bytes)) in export::source_summary(&cat) {
            println!("  source {src}: {n} objects, {}", human_bytes(bytes));
        }
    }
    if !bundles.is_empty() {
        println!(
            "{:>6}  {:<20}  {:>10}  {:>7}  {:>17}  {:<4}  delivered",
            "seq", "created (UTC)", "on media", "chunks", "added/chg/removed", "kept"
        );
    }
    for b in &bundles {
        let kept = layout.bundle(&b.dir_name).is_dir();
        // Delivered only on the inside's word (a push's confirmation); a
        // bundle written to media is not known to have arrived.
        let delivered = match ledger.delivery(b.sequence)? {
            Some(d) => format!("{} via {}", format_time(d.at), d.via),
            None => "unconfirmed".to_string(),
        };
        println!(
            "{:>6}  {:<20}  {:>10}  {:>7}  {:>17}  {:<4}  {}",
            b.sequence,
            format_time(b.created),
            human_bytes(b.bytes),
            b.chunks,
            format!("{}/{}/{}", b.added, b.changed, b.removed),
            if kept { "yes" } else { "no" },
            delivered
        );
    }
    receipts::print_insides(&ledger)
}

/// The export's delta settings: the command line's, else the config's.
fn delta_options(cfg: &Config, args: &ExportArgs) -> Result<agent_outside::delta::DeltaOptions> {
    Ok(agent_outside::delta::DeltaOptions {
        level: agent_outside::delta::parse_level(
            args.delta.as_deref().unwrap_or(&cfg.export.delta),
        )
        .context("--delta")?,
        max_object: parse_size(&cfg.export.delta_max_object)
            .context("[export] delta_max_object")?,
        max_streamed: parse_size(&cfg.export.delta_max_streamed)
            .context("[export] delta_max_streamed")?,
        xz: agent_outside::delta::XzPolicy::parse(
            args.delta_xz.as_deref().unwrap_or(&cfg.export.delta_xz),
        )
        .context("--delta-xz")?,
        deflate_cuts: cfg.export.delta_recipe_version >= 4,
        recipe_version: cfg.export.delta_recipe_version,
        ..Default::default()
    })
}

/// `export`: scan the sources, write the delta bundle to media (or send it
/// across a diode), after writing out any bundle a killed export left and
/// publishing a bundle signed since the last export.
fn export_cmd(layout: &Layout, args: &ExportArgs) -> Result<()> {
    let diode_target = args
        .to
        .to_str()
        .and_then(|t| t.strip_prefix("diode://"))
        .map(str::to_string);
    if let Some(t) = &diode_target {
        args.diode.options()?;
        agent_outside::diode::resolve(t)?;
    }
    if diode_target.is_none() {
        export::media_outside_state(layout, &args.to)?;
    }
    let cfg = Config::load(&args.config)?;
    let volume_size = parse_size(&args.volume_size).context("--volume-size")?;
    if volume_size < 1 << 20 {
        bail!("--volume-size must be at least 1M");
    }
    let separate = args.unsigned || cfg.export.sign == SignMode::Separate;
    // With signing apart, this process never opens the key.
    let key = if separate {
        None
    } else {
        Some(load_key(layout)?)
    };
    let ledger = Ledger::open(layout)?;
    let sources = cfg
        .sources
        .iter()
        .map(agent_outside::source::from_config)
        .collect::<Result<Vec<_>>>()?;
    let opts = ExportOptions {
        volume_size,
        level: cfg.export.compression_level,
        expires_in: parse_duration_secs(&cfg.export.expires)?,
        delta: delta_options(&cfg, args)?,
        puts_held: export::PUTS_HELD,
        // Signed and to media: written there as it is built.
        media: (diode_target.is_none() && !separate).then(|| args.to.clone()),
    };
    if args.rebase {
        return export::rebase::rebase_cmd(
            layout,
            &ledger,
            key.as_ref(),
            &sources,
            &opts,
            &args.to,
        );
    }
    if let Some(report) = &args.reship {
        ask_reship(&ledger, report)?;
    }
    write_pending(
        layout,
        &ledger,
        &args.to,
        diode_target.as_deref(),
        &args.diode,
    )?;
    let t0 = Instant::now();
    let signing = match &key {
        Some(k) => export::Signing::Now(k),
        None => export::Signing::Separate,
    };
    let now = ferry_agent_common::now_unix();
    let Some(out) = export::export_with(layout, &ledger, signing, &sources, &opts, now)? else {
        let head = ledger.head()?;
        println!(
            "no changes since bundle {}; no bundle written",
            head.sequence
        );
        return Ok(());
    };
    let built = t0.elapsed();
    let r = &out.record;
    if !out.signed {
        println!(
            "bundle {} exported unsigned in {} ({} chunks); sign it with `ferry-out sign {} --key FILE`, then `ferry-out publish --to DIR` (or the next export) writes it out",
            r.sequence,
            out.dir.display(),
            r.chunks,
            out.dir.display()
        );
        return Ok(());
    }
    if let Some(t) = &diode_target {
        println!(
            "bundle {} exported ({} on media)",
            r.sequence,
            human_bytes(r.bytes)
        );
        return diode_send(std::slice::from_ref(&out.dir), t, &args.diode);
    }
    let copied = to_media(layout, &ledger, &out, &args.to)?;
    print_export_summary(&out, &args.to, copied, built, t0.elapsed());
    Ok(())
}

/// Puts a signed bundle on media: the copy written there as it was built is
/// published, or, without one or when it failed, the bundle is copied
/// whole. Returns the bundle's bytes on media.
fn to_media(layout: &Layout, ledger: &Ledger, out: &export::Exported, to: &Path) -> Result<u64> {
    let r = &out.record;
    match out.media.as_ref().map(|m| m.publish(&out.dir)) {
        Some(Ok(n)) => {
            ledger.mark_written(r.sequence)?;
            Ok(n)
        }
        Some(Err(e)) => {
            eprintln!(
                "ferry-out: warning: the copy of bundle {} written to {} as it was built \
                 failed ({e:#}); copying it again",
                r.sequence,
                to.display()
            );
            write_out(layout, ledger, r, to)
        }
        None => write_out(layout, ledger, r, to),
    }
}

/// Before an export: a bundle signed since the last export is published
/// (to media or the diode), and a bundle committed to the ledger but never
/// written out (an export killed during its copy to media) goes out first.
fn write_pending(
    layout: &Layout,
    ledger: &Ledger,
    to: &Path,
    diode_target: Option<&str>,
    diode: &DiodeArgs,
) -> Result<()> {
    if let Some(r) = signing::publish_if_signed(layout, ledger)? {
        eprintln!(
            "ferry-out: bundle {} was signed since the last export; publishing it",
            r.sequence
        );
        if let Some(t) = diode_target {
            diode_send(&[layout.bundle(&r.dir_name)], t, diode)?;
        }
    }
    // (Bundles sent over a diode are never marked written: no receipt comes back.)
    if diode_target.is_none() {
        for r in ledger.bundles()?.iter().filter(|r| !r.written) {
            eprintln!(
                "ferry-out: bundle {} was exported but never completely written to media; writing it now",
                r.sequence
            );
            write_out(layout, ledger, r, to)?;
        }
    }
    Ok(())
}

/// `export --reship REPORT`: asks the ledger to ship again what the
/// inside's scrub found bad.
fn ask_reship(ledger: &Ledger, report: &Path) -> Result<()> {
    let parsed = agent_outside::reship::ScrubReport::load(report)?;
    let ids = agent_outside::reship::chunks_to_reship(&parsed, ledger)?;
    let n = ledger.request_reship(&ids)?;
    eprintln!(
        "ferry-out: scrub report {}: {} bad chunk(s), {} bad object(s): {} chunk(s) to ship again ({n} newly asked)",
        report.display(),
        parsed.bad_chunks.len(),
        parsed.bad_objects.len(),
        ids.len()
    );
    Ok(())
}

/// `publish`: the signed bundle into the stream and onto `to`; with none
/// waiting, the newest bundle if it was never written completely (a
/// publish killed during its copy).
fn publish_cmd(layout: &Layout, to: &Path) -> Result<()> {
    let ledger = Ledger::open(layout)?;
    for name in export::rebase::publish_snapshots(layout, to)? {
        println!("rebase snapshot published to {}", to.join(name).display());
    }
    let record = match signing::publish(layout, &ledger)? {
        Some(r) => r,
        None => match ledger.bundles()?.pop().filter(|r| !r.written) {
            Some(r) => r,
            None => {
                println!("no bundle awaits publishing");
                return Ok(());
            }
        },
    };
    let n = write_out(layout, &ledger, &record, to)?;
    println!(
        "bundle {} published to {} ({})",
        record.sequence,
        to.join(&record.dir_name).display(),
        human_bytes(n)
    );
    Ok(())
}

/// `sign`: signs every bundle awaiting a signature in `dir`.
fn sign_cmd(key: &Path, dir: &Path) -> Result<()> {
    let key = signing::load_key(key)?;
    let dirs = signing::unsigned_bundles(dir)?;
    if dirs.is_empty() {
        println!("nothing to sign in {}", dir.display());
        return Ok(());
    }
    for d in dirs {
        let signed = signing::sign(&d, &key)?;
        println!("{}", signed.describe());
    }
    Ok(())
}

/// What an export to media prints: where the bundle went, what changed,
/// and how fast the sources were read.
fn print_export_summary(
    out: &export::Exported,
    to: &Path,
    copied: u64,
    built: std::time::Duration,
    total: std::time::Duration,
) {
    let r = &out.record;
    let secs = total.as_secs_f64();
    println!(
        "bundle {} written to {}: {} on media ({} chunks, {} uncompressed new data)",
        r.sequence,
        to.join(&r.dir_name).display(),
        human_bytes(copied),
        r.chunks,
        human_bytes(r.chunk_raw_bytes)
    );
    println!(
        "  objects: {} added, {} changed, {} removed; catalog now {} objects, {}",
        r.added,
        r.changed,
        r.removed,
        r.objects,
        human_bytes(r.catalog_bytes)
    );
    let d = &out.delta;
    if d.patched > 0 {
        println!(
            "  patched {} changed objects ({}) against their predecessors in {}; {} shipped whole ({})",
            d.patched,
            human_bytes(d.patched_bytes),
            human_bytes(d.patch_bytes),
            d.whole,
            human_bytes(d.whole_bytes)
        );
    }
    if let Some(line) = d.streams.line() {
        println!("{line}");
    }
    println!(
        "  read {} from sources in {:.1}s ({:.0} MB/s), total {:.1}s; expires {}",
        human_bytes(out.bytes_read),
        built.as_secs_f64(),
        out.bytes_read as f64 / 1e6 / built.as_secs_f64().max(1e-6),
        secs,
        format_time(r.expires)
    );
}

/// `resend`: writes kept bundles again, a range of them or (`--missing`)
/// exactly those a trusted inside lacks.
fn resend_cmd(
    layout: &Layout,
    from: Option<u64>,
    missing: bool,
    through: Option<u64>,
    to: &Path,
    valid_for: &str,
) -> Result<()> {
    let valid_for = parse_duration_secs(valid_for).context("--valid-for")?;
    let ledger = Ledger::open(layout)?;
    let bundles = ledger.bundles()?;
    let last = through.unwrap_or_else(|| bundles.last().map(|b| b.sequence).unwrap_or(0));
    let wanted = if missing {
        if ledger.insides()?.is_empty() {
            bail!("--missing needs a trusted inside (`ferry-out trust-inside`) and its receipts");
        }
        receipts::missing(&ledger)?
    } else {
        (from.unwrap_or(1)..=last).collect()
    };
    let picked: Vec<_> = bundles
        .iter()
        .filter(|b| wanted.contains(&b.sequence) && b.sequence <= last)
        .collect();
    if picked.is_empty() {
        if missing {
            println!("no inside lacks a bundle, by their receipts");
            return Ok(());
        }
        bail!(
            "no exported bundle between {} and {last}",
            from.unwrap_or(1)
        );
    }
    for r in picked {
        let n = write_out(layout, &ledger, r, to)?;
        println!(
            "bundle {} written again to {} ({})",
            r.sequence,
            to.join(&r.dir_name).display(),
            human_bytes(n)
        );
        let now = ferry_agent_common::now_unix();
        let key = layout.signing_key();
        if let Some(t) = agent_outside::keys::extend_resent(&ledger, r, to, &key, valid_for, now)? {
            println!("  valid until {} (validity extension)", format_time(t));
        }
    }
    Ok(())
}
