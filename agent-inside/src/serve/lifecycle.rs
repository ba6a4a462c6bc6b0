//! Start and stop: the runtime, the listening socket, the open-file limit,
//! and a stop on Ctrl-C or SIGTERM that lets open downloads finish for a
//! grace period (`conn`).

use super::conn::{accept_loop, REFUSAL_SLOTS};
use super::response::tell;
use super::routes::router_with;
use super::settings::ServeSettings;
use crate::layout::Layout;
use anyhow::Context as _;
use std::future::Future;
use std::io::Write as _;
use std::time::Duration;
use tokio::net::TcpListener;

/// File descriptors kept back from connections: the listener, the database,
/// catalogs being read, standard streams.
const RESERVED_FDS: u64 = 64;

/// Serves the store under `layout` on `listen` with the default settings
/// until Ctrl-C / SIGTERM (see [`run_with`]).
pub fn run(layout: &Layout, listen: &str) -> anyhow::Result<()> {
    run_with(layout, listen, &ServeSettings::default())
}

/// Serves the store under `layout` on `listen` until Ctrl-C / SIGTERM.
///
/// It first raises the soft open-file limit to the hard one, and lowers
/// `settings.max_connections` to what that limit allows (each connection may
/// hold a socket and a file being sent), saying so on stderr. Once the socket
/// is bound it prints `ferry-in: serving <state dir> on http://<bound addr>`
/// to stderr, first, so a caller that asked for port 0 can read the real
/// address.
pub fn run_with(layout: &Layout, listen: &str, settings: &ServeSettings) -> anyhow::Result<()> {
    let (open_files, warning) = raise_open_file_limit();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = rt.block_on(async {
        let listener = bind(layout, listen).await?;
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
        serve_on(listener, layout.clone(), &settings, stop_signal()).await
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
    accept_loop(listener, router_with(layout, settings), settings, stop).await
}

async fn bind(layout: &Layout, listen: &str) -> anyhow::Result<TcpListener> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener
        .local_addr()
        .with_context(|| format!("cannot read the address bound for {listen}"))?;
    let mut err = std::io::stderr().lock();
    // If stderr is gone there is nobody to tell; serving still works.
    let _ = writeln!(
        err,
        "ferry-in: serving {} on http://{addr}",
        layout.root.display()
    );
    let _ = err.flush();
    Ok(listener)
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
