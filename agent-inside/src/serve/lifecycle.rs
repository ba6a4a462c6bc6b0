//! Start and stop: the runtime, the listening socket, the open-file limit,
//! and a stop on Ctrl-C or SIGTERM that lets open downloads finish for a
//! grace period (`conn`).

use super::conn::{accept_loop, Bound, REFUSAL_SLOTS};
use super::generation::Server;
use super::listeners::{scoped, Listen, Scope};
use super::response::tell;
use super::routes::{router_for, router_with};
use super::settings::{ServeSettings, DEFAULT_LISTEN};
use super::tls::Reloading;
use crate::layout::Layout;
use anyhow::Context as _;
use std::future::Future;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// File descriptors kept back from connections: the listener, the database,
/// catalogs being read, standard streams.
const RESERVED_FDS: u64 = 64;

/// Serves the store under `layout` on `listen` with the default settings
/// until Ctrl-C / SIGTERM (see [`run_with`]).
pub fn run(layout: &Layout, listen: &str) -> anyhow::Result<()> {
    let settings = ServeSettings {
        listen: vec![Listen {
            scope: Scope::All,
            addr: listen.to_string(),
        }],
        ..ServeSettings::default()
    };
    run_with(layout, &settings)
}

/// Serves the store under `layout` on every address of `settings.listen`
/// (or [`DEFAULT_LISTEN`]) until Ctrl-C / SIGTERM.
///
/// It first raises the soft open-file limit to the hard one, and lowers
/// `settings.max_connections` to what that limit allows (each connection may
/// hold a socket and a file being sent), saying so on stderr. Once the
/// sockets are bound it prints, first, a line
/// `ferry-in: serving <state dir> on http[s]://<bound addr>` per address (with
/// what it serves after it unless it serves everything), so a caller that
/// asked for port 0 can read the real address; then whether TLS is on.
pub fn run_with(layout: &Layout, settings: &ServeSettings) -> anyhow::Result<()> {
    let (open_files, warning) = raise_open_file_limit();
    let tls = match &settings.tls {
        Some(files) => Some(Arc::new(Reloading::new(files.clone()).with_context(
            || format!("cannot serve TLS with {}", files.cert.display()),
        )?)),
        None => None,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = rt.block_on(async {
        let listeners = bind_all(layout, settings, tls.is_some()).await?;
        tell_tls(layout, settings);
        if let Some(w) = warning {
            tell(format_args!("{w}"));
        }
        let mut settings = settings.clone();
        if let Some(limit) = open_files {
            let most = connections_allowed(limit);
            if settings.max_connections > most {
                tell(format_args!(
                    "serving at most {most} connections, not {}: the open-file \
                     limit is {limit}",
                    settings.max_connections
                ));
                settings.max_connections = most;
            }
        }
        let server = Arc::new(Server::new(layout.clone(), &settings));
        let bound = listeners
            .into_iter()
            .map(|(listener, scope)| Bound {
                listener,
                app: scoped(router_for(server.clone()), scope, server.clone()),
                tls: tls.clone(),
            })
            .collect();
        accept_loop(bound, &settings, stop_signal()).await
    });
    rt.shutdown_timeout(Duration::from_secs(1));
    result
}

/// Serves the store under `layout` on `listener` with `settings` until `stop`
/// completes; then stops accepting and lets open downloads finish for a
/// grace period. The caller owns the runtime (tests use this directly).
pub async fn serve_on(
    listener: TcpListener,
    layout: Layout,
    settings: &ServeSettings,
    stop: impl Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let bound = Bound {
        listener,
        app: router_with(layout, settings),
        tls: None,
    };
    accept_loop(vec![bound], settings, stop).await
}

/// Binds every address, telling each on stderr.
async fn bind_all(
    layout: &Layout,
    settings: &ServeSettings,
    tls: bool,
) -> anyhow::Result<Vec<(TcpListener, Scope)>> {
    let default = [Listen {
        scope: Scope::All,
        addr: DEFAULT_LISTEN.to_string(),
    }];
    let wanted = if settings.listen.is_empty() {
        &default[..]
    } else {
        &settings.listen[..]
    };
    let scheme = if tls { "https" } else { "http" };
    let mut out = Vec::with_capacity(wanted.len());
    let mut lines = String::new();
    for l in wanted {
        let listener = TcpListener::bind(&l.addr)
            .await
            .with_context(|| format!("cannot listen on {}", l.addr))?;
        let addr = listener
            .local_addr()
            .with_context(|| format!("cannot read the address bound for {}", l.addr))?;
        let what = match &l.scope {
            Scope::All => String::new(),
            s => format!(" ({s})"),
        };
        let root = layout.root.display();
        lines.push_str(&format!(
            "ferry-in: serving {root} on {scheme}://{addr}{what}\n"
        ));
        out.push((listener, l.scope.clone()));
    }
    let mut err = std::io::stderr().lock();
    // If stderr is gone there is nobody to tell; serving still works.
    let _ = err.write_all(lines.as_bytes());
    let _ = err.flush();
    Ok(out)
}

/// Says whether TLS is on, and which certificate.
fn tell_tls(layout: &Layout, settings: &ServeSettings) {
    match &settings.tls {
        Some(f) => tell(format_args!(
            "TLS with the certificate {} and key {} (loaded again when they change)",
            f.cert.display(),
            f.key.display()
        )),
        None if layout.tls_cert().exists() => tell(format_args!(
            "plain HTTP: {} exists; serve it with --tls",
            layout.tls_cert().display()
        )),
        None => tell(format_args!(
            "plain HTTP (`ferry-in tls init` and --tls serve HTTPS)"
        )),
    }
}

/// The connections an open-file limit of `limit` leaves room for: each may
/// hold its socket and one file, besides the reserved descriptors and the
/// connections being refused.
pub(super) fn connections_allowed(limit: u64) -> usize {
    let spare = limit.saturating_sub(RESERVED_FDS + REFUSAL_SLOTS as u64);
    usize::try_from(spare / 2).unwrap_or(usize::MAX).max(1)
}

/// Raises the soft `RLIMIT_NOFILE` to the hard one (the common soft default,
/// 1024, is far below what a busy server needs) and returns the soft limit
/// now in effect (`None`: unlimited), and why it could not be raised, if so.
pub fn raise_open_file_limit() -> (Option<u64>, Option<String>) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let now = getrlimit(Resource::Nofile);
    // An unlimited hard limit cannot be the soft one for open files on Linux.
    let want = now.maximum.unwrap_or(1 << 20);
    match now.current {
        Some(soft) if soft < want => {
            let raised = Rlimit {
                current: Some(want),
                maximum: now.maximum,
            };
            match setrlimit(Resource::Nofile, raised) {
                Ok(()) => (Some(want), None),
                Err(e) => (
                    Some(soft),
                    Some(format!(
                        "cannot raise the open-file limit from {soft} to {want}: {e}"
                    )),
                ),
            }
        }
        soft => (soft, None),
    }
}

/// Waits for Ctrl-C or SIGTERM.
async fn stop_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("cannot listen for Ctrl-C"),
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c()
            .await
            .context("cannot listen for Ctrl-C")
    }
}
