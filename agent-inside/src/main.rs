//! The `ferry-in` command line.

#![cfg_attr(not(test), warn(clippy::too_many_lines))]

use agent_inside::apply::ApplyOptions;
use agent_inside::db::{Bind, Db};
use agent_inside::layout::Layout;
use agent_inside::{import, serve, status};
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use ferry_agent_common::{docs_gen, paths};
use ferry_protocol::id::StreamId;
use ferry_protocol::keys::PublicKey;
use std::path::PathBuf;

/// Ferry's inside agent: verifies bundles, applies them atomically to the
/// local stores, and serves those stores to ordinary clients.
#[derive(Parser)]
#[command(name = "ferry-in", version)]
struct Cli {
    /// State directory (stores, chunk store, database).
    /// Default: /var/lib/ferry-in for root, else $XDG_STATE_HOME/ferry-in.
    #[arg(long, global = true, env = "FERRY_IN_STATE")]
    state: Option<PathBuf>,
    /// Configuration file (TOML) with [limits] on what bundles may ask of
    /// this agent, [trust] clock skew and validity, [held] and [spool]
    /// quotas; see deploy/ferry-in.toml. Default: built-in limits.
    #[arg(long, global = true, env = "FERRY_IN_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Manages the keys whose bundles are accepted.
    Trust {
        #[command(subcommand)]
        cmd: TrustCmd,
    },
    /// Checks every bundle in MEDIA_DIR completely; applies nothing. Exits
    /// non-zero if any bundle fails.
    Verify {
        /// Media directory (or a single bundle directory).
        media: PathBuf,
        /// Do not refuse bundles past their expiry time.
        #[arg(long)]
        allow_expired: bool,
    },
    /// Verifies and applies every pending bundle in MEDIA_DIR, in sequence order.
    Import {
        /// Media directory (or a single bundle directory).
        media: PathBuf,
        /// Do not refuse bundles past their expiry time.
        #[arg(long)]
        allow_expired: bool,
        /// Skip the free-space estimate (a full disk is still caught, and the
        /// previous generation kept, when a write fails).
        #[arg(long)]
        no_space_check: bool,
        /// Apply a rebase snapshot (`ferry-out export --rebase`) although
        /// this store holds bundles: its catalog is replaced by the
        /// snapshot's (docs/runbook.md, "a rebuilt inside").
        #[arg(long)]
        rebase: bool,
    },
    /// Imports automatically: watches DIR (a stick mounted there or under
    /// it), imports bundles once they stop changing, and writes a receipt.
    Watch(agent_inside::watch::WatchArgs),
    /// Inventories what this inside already holds outside Ferry (a
    /// registry, mirror and file trees) and writes an inventory signed by
    /// the inside key for `ferry-out receipt add`: the outside then ships
    /// none of that content, and imports take it from where it was found,
    /// checking every digest (docs/runbook.md, "moving an existing air gap").
    Adopt(agent_inside::adopt::AdoptArgs),
    /// Shows the applied sequence, held bundles and why, and store sizes.
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Only what upstream vouched for one object: SOURCE/PATH.
        #[arg(long, value_name = "SOURCE/PATH")]
        object: Option<String>,
    },
    /// Writes a receipt of what this inside holds, signed by its own key
    /// (STATE/inside.key, made on first use), for `ferry-out receipt add`:
    /// the stream, the last bundle applied, held bundles and why, and a
    /// digest of the inventory. Prints its text form unless --to or --qr.
    Receipt {
        /// Directory to write the receipt file into (a stick going out).
        #[arg(long)]
        to: Option<PathBuf>,
        /// Print it as a QR code, for sites where only paper may leave.
        #[arg(long)]
        qr: bool,
    },
    /// Receives bundles from a one-way data diode (UDP with forward error
    /// correction) into a spool directory; with --import, applies each one
    /// that arrives complete and passes full verification.
    Receive(ReceiveArgs),
    /// Makes this agent's QUIC identity (STATE/quic.crt and quic.key) for
    /// `listen`; prints the certificate's fingerprint.
    Cert(ferry_quic::CertArgs),
    /// Accepts bundles pushed over a two-way QUIC link (`ferry-out push`),
    /// asking only for the chunks it lacks, and applies each one.
    Listen {
        /// Address to listen on, such as 0.0.0.0:7443.
        #[arg(long)]
        quic: String,
        #[command(flatten)]
        peers: ferry_quic::PeerArgs,
        /// Do not refuse bundles past their expiry time.
        #[arg(long)]
        allow_expired: bool,
    },
    /// Copies the current images into an existing registry (Harbor, Zot,
    /// distribution): blobs it lacks, then manifests, then tags.
    Push {
        /// The registry, such as http://registry.local:5000.
        #[arg(long)]
        to: String,
    },
    /// Writes configuration for every client of what the store holds
    /// (containerd, podman/cri-o, the GPU Operator, apt, dnf, pip, helm),
    /// one file per client, printed or under --out DIR.
    ClientConfig(agent_inside::client_config::Args),
    /// Prints the public half of the site key (created on first use) that
    /// signs the apt store's filtered views under /apt-site/.
    SiteKey {
        /// Write a binary keyring (for apt's signed-by) instead of armored text.
        #[arg(long)]
        binary: bool,
        /// Write to FILE instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Reads and checks every object of the current generation (size and
    /// SHA-256) and every chunk (its id); moves what is rotten to
    /// STATE/quarantine/. Exits 1 if anything is bad.
    Scrub {
        /// Machine-readable report (for the outside to re-ship what is bad).
        #[arg(long)]
        json: bool,
    },
    /// Writes the current generation out as a plain directory tree,
    /// DIR/<store>/<source>/<path> (and DIR/apt-site/, DIR/pypi-meta/), for
    /// another web server or rsync: files are hard links to their objects
    /// when DIR is on the state's filesystem (do not edit them: that edits
    /// the store; use --copy), else copies; executables are copies, 0755.
    ExportTree {
        /// A new or empty directory.
        dir: PathBuf,
        /// Copy every file instead of hard-linking it.
        #[arg(long)]
        copy: bool,
    },
    /// Uploads the current generation to an S3-compatible bucket for a
    /// fleet of front ends (docs/publish.md): the objects the bucket lacks
    /// (objects/<aa>/<sha256>, never overwritten), the path index files,
    /// the generation's manifest, then the `current` pointer last. O(change)
    /// per publish: what was uploaded is recorded in STATE/publish/.
    /// Credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
    Publish(agent_inside::publish::PublishArgs),
    /// Resolves SOURCE/PATH through the bucket's `current`, manifest and
    /// path index, as a front end would, and checks the bytes (size and
    /// SHA-256); --output writes them.
    PublishGet(agent_inside::publish::get::GetArgs),
    /// Serves the current generation over HTTP or HTTPS (--tls). Endpoints:
    /// `/` (what is served), /files/<source>/, /apt/<source>/ (upstream's
    /// signed indices), /apt-site/<source>/ (the site-signed view), /yum/,
    /// /pypi/<source>/simple/ (PEP 503/691, with PEP 658 metadata),
    /// /helm/<source>/ (index.yaml and charts), /cargo/<source>/ (a sparse
    /// registry), /npm/<source>/ (packuments and tarballs), /go/<source>/ (a
    /// GOPROXY tree), the registry's pull API under /v2/, /healthz (alive),
    /// /ferry/health (the newest bundle's age; 503 when stale) and /metrics
    /// (Prometheus). Several --listen addresses may each
    /// serve one store at their root (--preset deepops: registry :5000, yum
    /// :8001, helm :8002, pypi :8003, files :8004). The flags below override
    /// `[serve]` in the config file.
    Serve(ServeArgs),
    /// The site's TLS certificates for `serve --tls`.
    Tls {
        #[command(subcommand)]
        cmd: agent_inside::site_tls::TlsCmd,
    },
    #[command(hide = true)]
    GenerateDocs { dir: PathBuf },
}

/// `receive`'s options.
#[derive(clap::Args)]
struct ReceiveArgs {
    /// Address to listen on, such as 0.0.0.0:7000.
    #[arg(long)]
    diode: String,
    /// Spool directory (default: STATE/spool).
    #[arg(long)]
    spool: Option<PathBuf>,
    /// Import every bundle that arrives complete.
    #[arg(long)]
    import: bool,
    /// Stop after this long without a packet, such as 30s (default: run forever).
    #[arg(long)]
    exit_when_idle: Option<String>,
    /// Stop once this many bundles were applied (with --import) or received
    /// complete (without) by this run.
    #[arg(long, value_name = "N")]
    exit_after: Option<u64>,
    /// Do not refuse bundles past their expiry time.
    #[arg(long)]
    allow_expired: bool,
    /// Drop a partial bundle none of whose segments was rebuilt for this
    /// long, such as 10m (also the most a forged bundle can hold a slot).
    #[arg(long, default_value = "10m")]
    stale_after: String,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Where to listen (repeatable; default 127.0.0.1:8080): ADDR serves
    /// every route; STORE=ADDR serves one store at the root (registry: only
    /// /v2/; files, apt, yum, pypi, helm: /<source>/… there is
    /// /STORE/<source>/…); STORE/SOURCE=ADDR serves one source at the root.
    #[arg(long, value_name = "[STORE[/SOURCE]=]ADDR")]
    listen: Vec<String>,
    /// A site layout's listeners: `deepops` (registry :5000, yum :8001,
    /// helm :8002, pypi :8003, files :8004, as DeepOps's mirrors serve
    /// them). A --listen on one of its addresses replaces that listener.
    #[arg(long, value_name = "NAME")]
    preset: Option<String>,
    /// The address the preset's listeners bind (default 0.0.0.0).
    #[arg(long, value_name = "HOST")]
    preset_host: Option<String>,
    /// Serve HTTPS with STATE/tls/server.pem and server.key (made by
    /// `ferry-in tls init`). Without --tls or --tls-cert, serve is plain HTTP.
    #[arg(long)]
    tls: bool,
    /// Serve HTTPS with this certificate chain (PEM); loaded again for new
    /// connections when it or the key changes on disk.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Time a client has to send a request's headers, also how long a
    /// kept-alive connection may wait for its next request, such as 20s.
    #[arg(long)]
    header_timeout: Option<String>,
    /// A connection on which no byte moves either way for this long is
    /// closed, such as 60s.
    #[arg(long)]
    idle_timeout: Option<String>,
    /// Open connections at most (lowered to what the open-file limit
    /// allows); more are answered 503 and closed.
    #[arg(long)]
    max_connections: Option<usize>,
    /// Entries on one page of a directory listing.
    #[arg(long)]
    page_size: Option<usize>,
}

/// `ferry-in serve`: the settings from the config file and the flags.
fn serve_cmd(layout: &Layout, config: Option<&std::path::Path>, a: ServeArgs) -> Result<i32> {
    let flags = agent_inside::config::ServeFlags {
        header_timeout: a.header_timeout,
        idle_timeout: a.idle_timeout,
        max_connections: a.max_connections,
        page_size: a.page_size,
        listen: a.listen,
        preset: a.preset,
        preset_host: a.preset_host,
        tls: a.tls,
        tls_cert: a.tls_cert,
        tls_key: a.tls_key,
    };
    let settings = agent_inside::config::load_serve_settings(config, &flags, layout)?;
    serve::run_with(layout, &settings)?;
    Ok(0)
}

/// `ferry-in scrub`: the report on stdout (JSON or text); 1 when anything is bad.
fn scrub_cmd(
    layout: &Layout,
    limits: &ferry_protocol::limits::ReceiverLimits,
    json: bool,
) -> Result<i32> {
    let r = agent_inside::scrub::scrub(layout, limits.max_chunk_bytes)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", r.summary());
    }
    Ok(if r.ok() { 0 } else { 1 })
}

#[derive(Subcommand)]
enum TrustCmd {
    /// Trusts the public key in PUBKEY_FILE (written by `ferry-out keygen`)
    /// for one stream: give the outside's stream id (`ferry-out status`
    /// prints it) with --stream, or say --first-use to bind the key to the
    /// stream of the first bundle it signs that is applied.
    Add {
        /// The public key file.
        pubkey_file: PathBuf,
        /// The stream (32 hex digits) this key may sign.
        #[arg(
            long,
            required_unless_present = "first_use",
            conflicts_with = "first_use"
        )]
        stream: Option<String>,
        /// Bind the key to the stream of the first bundle it signs that is
        /// applied (trust on first use, explicitly).
        #[arg(long)]
        first_use: bool,
        /// The outside's root public key (`ferry-out root init`), trusted for
        /// the same stream: its revocations and rotations are followed.
        #[arg(long, value_name = "ROOT_PUB")]
        root: Option<PathBuf>,
    },
    /// Makes a stream need NEED distinct signatures per bundle (the signer
    /// and `ferry-out cosign` co-signers, each a key trusted for the stream);
    /// 1 goes back to one.
    Threshold {
        /// The stream (32 hex digits).
        #[arg(long)]
        stream: String,
        /// How many keys must sign each new bundle.
        need: u32,
    },
    /// Revokes a key by hand: it signs nothing from the next sequence on
    /// (held bundles it signed are dropped at the next import).
    Revoke {
        /// The public key file.
        pubkey_file: PathBuf,
    },
    /// Lets a trusted key sign one more stream. A store follows one stream:
    /// this lets a fresh store (or a new key) accept that stream; a store
    /// that has applied another stream still refuses it.
    Bind {
        /// The public key file of a trusted key.
        pubkey_file: PathBuf,
        /// The stream (32 hex digits).
        #[arg(long)]
        stream: String,
    },
    /// Stops trusting the public key in PUBKEY_FILE (a signing or root key).
    Remove {
        /// The public key file.
        pubkey_file: PathBuf,
    },
    /// Lists trusted keys and the streams each may sign.
    List,
}

fn main() {
    // First, before any thread: large buffers freed go back to the system.
    ferry_malloc::release_large_blocks();
    ferry_recipe::budget::set_process_limit(agent_inside::store::REBUILD_BUDGET);
    ferry_agent_common::quiet_on_closed_stdout();
    let cli = Cli::parse();
    let state = cli
        .state
        .clone()
        .unwrap_or_else(|| paths::default_state_dir("ferry-in"));
    match run(&Layout::new(&state), cli.config.as_deref(), cli.cmd) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("ferry-in: error: {}", ferry_agent_common::one_line(&e));
            std::process::exit(1);
        }
    }
}

fn read_key(path: &PathBuf) -> Result<PublicKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    PublicKey::from_text(&text).with_context(|| format!("key file {}", path.display()))
}

fn run(layout: &Layout, config: Option<&std::path::Path>, cmd: Cmd) -> Result<i32> {
    let limits = agent_inside::config::load_limits(config)?;
    let after = agent_inside::after_import::AfterImport::load(config)?;
    let policy = agent_inside::config::load_policy(config)?;
    let upstream = agent_inside::config::load_upstream(config)?;
    let apply = |allow_expired, no_space_check| ApplyOptions {
        allow_expired,
        no_space_check,
        policy,
        rebase: false,
        upstream,
    };
    match cmd {
        Cmd::Trust { cmd } => trust_cmd(layout, cmd),
        Cmd::Verify {
            media,
            allow_expired,
        } => verify_cmd(layout, &media, &limits, apply(allow_expired, false)),
        Cmd::Import {
            media,
            allow_expired,
            no_space_check,
            rebase,
        } => import_cmd(
            layout,
            &media,
            &limits,
            ApplyOptions {
                rebase,
                ..apply(allow_expired, no_space_check)
            },
            &after,
        ),
        Cmd::Status {
            json,
            object: Some(o),
        } => agent_inside::upstream::provenance::object_cmd(layout, &o, json),
        Cmd::Status { json, .. } => {
            let v = status::gather(layout, &limits, &policy)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                status::print(&v);
            }
            Ok(0)
        }
        Cmd::Watch(a) => {
            let opts = apply(a.allow_expired, false);
            agent_inside::watch::run(layout, &limits, opts, &after, &a)
        }
        Cmd::Receipt { to, qr } => receipt_cmd(layout, to.as_deref(), qr),
        Cmd::Adopt(args) => agent_inside::adopt::adopt_cmd(layout, &args).map(|_| 0),
        Cmd::Receive(args) => {
            let opts = apply(args.allow_expired, false);
            receive_cmd(layout, limits, opts, after, args)
        }
        Cmd::Cert(args) => {
            args.run(&layout.root, "ferry-out push")?;
            Ok(0)
        }
        Cmd::Listen {
            quic,
            peers,
            allow_expired,
        } => {
            let opts = agent_inside::listen::ListenOptions {
                listen: quic,
                peers: peers.auth()?,
                limits,
                apply: apply(allow_expired, false),
                after,
            };
            agent_inside::listen::run(layout, opts)?;
            Ok(0)
        }
        Cmd::Push { to } => {
            let r = agent_inside::registry_push::push(layout, &to)?;
            println!("{}", r.summary(&to));
            Ok(0)
        }
        Cmd::ClientConfig(a) => agent_inside::client_config::run(layout, &a),
        Cmd::SiteKey { binary, output } => site_key_cmd(layout, binary, output),
        Cmd::Scrub { json } => scrub_cmd(layout, &limits, json),
        Cmd::ExportTree { dir, copy } => export_tree_cmd(layout, &dir, copy),
        Cmd::Publish(a) => {
            let section = agent_inside::config::load_publish(config)?;
            publish_cmd(layout, &a, a.settings(section.as_ref())?)
        }
        Cmd::PublishGet(a) => {
            let section = agent_inside::config::load_publish(config)?;
            publish_get_cmd(&a, a.bucket.target(section.as_ref())?)
        }
        Cmd::Serve(a) => serve_cmd(layout, config, a),
        Cmd::Tls { cmd } => agent_inside::site_tls::run(layout, cmd),
        Cmd::GenerateDocs { dir } => {
            docs_gen::run(<Cli as clap::CommandFactory>::command(), &dir).map(|()| 0)
        }
    }
}

/// `ferry-in export-tree`: what was written.
fn export_tree_cmd(layout: &Layout, dir: &std::path::Path, copy: bool) -> Result<i32> {
    let w = agent_inside::export_tree::export(layout, dir, copy)?;
    eprintln!(
        "ferry-in: wrote {}: {} files linked to their objects, {} copied, {} symbolic links, {} derived files",
        dir.display(),
        w.linked,
        w.copied,
        w.symlinks,
        w.derived
    );
    Ok(0)
}

/// `ferry-in publish`: the report, as a line or JSON.
fn publish_cmd(
    layout: &Layout,
    a: &agent_inside::publish::PublishArgs,
    settings: agent_inside::publish::Settings,
) -> Result<i32> {
    let r = agent_inside::publish::publish(layout, &settings)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        eprintln!("ferry-in: {}", r.summary(&settings));
    }
    Ok(0)
}

/// `ferry-in publish-get`: the resolution on stderr, the bytes to --output.
fn publish_get_cmd(
    a: &agent_inside::publish::get::GetArgs,
    target: agent_inside::publish::s3::Target,
) -> Result<i32> {
    use std::io::Write;
    let r = agent_inside::publish::get::resolve(a, &target)?;
    eprintln!(
        "ferry-in: {} in generation {}: {} ({} bytes, sha256 {}{}), checked",
        a.what,
        r.generation,
        r.key,
        r.size,
        r.sha256,
        if r.executable { ", executable" } else { "" }
    );
    match a.output.as_deref() {
        Some(p) if p == std::path::Path::new("-") => {
            std::io::stdout().write_all(&r.bytes)?;
        }
        Some(p) => {
            std::fs::write(p, &r.bytes).with_context(|| format!("cannot write {}", p.display()))?;
        }
        None => {}
    }
    Ok(0)
}

/// `verify`: 1 when any bundle fails.
fn verify_cmd(
    layout: &Layout,
    media: &std::path::Path,
    limits: &ferry_protocol::limits::ReceiverLimits,
    opts: ApplyOptions,
) -> Result<i32> {
    let r = import::verify(layout, media, limits, opts)?;
    if r.ok() {
        println!("all bundles in {} verified", media.display());
        Ok(0)
    } else {
        eprintln!("ferry-in: {} bundle(s) failed verification", r.failed.len());
        Ok(1)
    }
}

/// `import`: 1 when a bundle failed, 3 when the push or publish after it
/// failed.
fn import_cmd(
    layout: &Layout,
    media: &std::path::Path,
    limits: &ferry_protocol::limits::ReceiverLimits,
    opts: ApplyOptions,
    after: &agent_inside::after_import::AfterImport,
) -> Result<i32> {
    let r = import::import(layout, media, limits, opts)?;
    let pushed = after.run(layout, r.applied.len());
    Ok(if !r.ok() {
        1
    } else if !pushed {
        3
    } else {
        0
    })
}

fn parse_stream(text: &str) -> Result<StreamId> {
    StreamId::from_hex(text.trim()).with_context(|| {
        format!(
            "--stream {text:?} is not a stream id (32 hex digits, as `ferry-out status` prints)"
        )
    })
}

/// `trust add|bind|remove|list`.
fn trust_cmd(layout: &Layout, cmd: TrustCmd) -> Result<i32> {
    let db = Db::open(&layout.db())?;
    match cmd {
        TrustCmd::Threshold { stream, need } => {
            agent_inside::trust::cmd::threshold(&db, parse_stream(&stream)?, need)?
        }
        TrustCmd::Revoke { pubkey_file } => {
            agent_inside::trust::cmd::revoke(&db, &read_key(&pubkey_file)?)?
        }
        TrustCmd::Add {
            pubkey_file,
            stream,
            first_use,
            root,
        } => {
            let k = read_key(&pubkey_file)?;
            let bind = match (stream, first_use) {
                (Some(s), _) => Bind::Stream(parse_stream(&s)?),
                (None, true) => Bind::FirstUse,
                (None, false) => {
                    bail!("say which stream the key signs: --stream ID or --first-use")
                }
            };
            let new = db.trust(&k, bind)?;
            if let Some(r) = root {
                agent_inside::trust::cmd::add_root(&db, &read_key(&r)?, bind)?;
            }
            let what = match bind {
                Bind::Stream(s) => format!("for stream {s}"),
                Bind::FirstUse => "for the stream of the first bundle it signs".to_string(),
            };
            if new {
                println!("trusted {} {what}", k.to_text());
            } else {
                println!("already trusted {what}: {}", k.to_text());
            }
        }
        TrustCmd::Bind {
            pubkey_file,
            stream,
        } => {
            let k = read_key(&pubkey_file)?;
            let s = parse_stream(&stream)?;
            if db.bind(&k, s)? {
                println!("{} may now sign stream {s}", k.to_text());
            } else {
                println!("{} could already sign stream {s}", k.to_text());
            }
        }
        TrustCmd::Remove { pubkey_file } => {
            let k = read_key(&pubkey_file)?;
            let root = db.untrust_root(&k)?;
            if !db.untrust(&k)? && !root {
                bail!("{} was not trusted", k.to_text());
            }
            println!("no longer trusted: {}", k.to_text());
        }
        TrustCmd::List => {
            for (k, b) in db.trusted_bindings()? {
                println!("{} {}", k.to_text(), binding_text(&b));
            }
            agent_inside::trust::cmd::list(&db)?;
        }
    }
    Ok(0)
}

/// A key's binding for people: `streams: A, B`, `first use`.
fn binding_text(b: &agent_inside::db::KeyBinding) -> String {
    let mut parts: Vec<String> = b.streams.iter().map(|s| s.to_hex()).collect();
    if b.first_use && b.streams.is_empty() {
        parts.push("first use (not bound yet)".into());
    }
    format!("streams: {}", parts.join(", "))
}

/// `receive`: the diode receiver, importing what arrives with --import.
fn receive_cmd(
    layout: &Layout,
    limits: ferry_protocol::limits::ReceiverLimits,
    apply: ApplyOptions,
    after: agent_inside::after_import::AfterImport,
    args: ReceiveArgs,
) -> Result<i32> {
    let ReceiveArgs {
        diode,
        spool,
        import,
        exit_when_idle,
        exit_after,
        allow_expired: _,
        stale_after,
    } = args;
    let exit_when_idle = match exit_when_idle {
        Some(d) => Some(std::time::Duration::from_secs(
            ferry_agent_common::units::parse_duration_secs(&d).context("--exit-when-idle")?,
        )),
        None => None,
    };
    let opts = agent_inside::diode::ReceiveOptions {
        listen: diode,
        spool: spool.unwrap_or_else(|| layout.spool()),
        import,
        exit_when_idle,
        exit_after,
        diode: ferry_protocol::limits::DiodeLimits {
            stale_after_ms: ferry_agent_common::units::parse_duration_secs(&stale_after)
                .context("--stale-after")?
                .saturating_mul(1000),
            ..ferry_protocol::limits::DiodeLimits::from_receiver(&limits)
        },
        limits,
        apply,
        after,
    };
    agent_inside::diode::receive(layout, opts)?;
    Ok(0)
}

/// `site-key`: the public half of the site key, armored or binary.
fn site_key_cmd(layout: &Layout, binary: bool, output: Option<PathBuf>) -> Result<i32> {
    let key = agent_inside::site_key::SiteKey::load_or_create(layout)?;
    let bytes = if binary {
        key.public_binary()?
    } else {
        key.public_armored()?.into_bytes()
    };
    match output {
        Some(p) => {
            std::fs::write(&p, &bytes).with_context(|| format!("cannot write {}", p.display()))?;
            eprintln!(
                "ferry-in: site key {} written to {}",
                key.fingerprint(),
                p.display()
            );
        }
        None if binary => bail!("--binary writes bytes; give --output FILE"),
        None => print!("{}", String::from_utf8_lossy(&bytes)),
    }
    Ok(0)
}

/// `receipt`: writes (or prints) the inside's signed receipt.
fn receipt_cmd(layout: &Layout, to: Option<&std::path::Path>, qr: bool) -> Result<i32> {
    let now = ferry_agent_common::now_unix();
    let file = match to {
        Some(dir) => {
            let (path, file) = agent_inside::receipt::write(layout, dir, now)?;
            eprintln!(
                "ferry-in: receipt written to {} ({} bytes)",
                path.display(),
                file.len()
            );
            file
        }
        None => {
            let key = agent_inside::receipt::inside_key(layout)?;
            agent_inside::receipt::gather(layout, now)?
                .sign_with(agent_inside::failures::load(layout)?, &key)
        }
    };
    if qr {
        println!("{}", agent_inside::receipt::qr(&file)?);
    } else if to.is_none() {
        println!("{}", ferry_protocol::receipt::to_text(&file));
    }
    Ok(0)
}
