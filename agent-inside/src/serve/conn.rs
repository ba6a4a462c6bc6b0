//! The accept loop: every connection is served by hyper's HTTP/1 server
//! directly (not `axum::serve`), so that it gets
//!
//! - a header-read timeout (hyper's own: from the moment the connection waits
//!   for a request until its headers are complete, which also closes kept-
//!   alive connections left idle that long);
//! - an idle timeout: no byte moving either way for that long (a stalled
//!   download or upload) closes the connection;
//! - a place under the connection cap: a connection over it is answered
//!   `503 Service Unavailable` with `Connection: close` and closed, so the
//!   connections already open keep their file descriptors and their speed;
//! - over TLS on an address that has it, the handshake bounded by the
//!   header-read timeout;
//! - a graceful stop: when asked, accepting stops, every connection finishes
//!   the response under way, and the stop waits for them for a grace period.

use super::response::tell;
use super::settings::ServeSettings;
use super::tls::Reloading;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// How long a stop waits for downloads still running.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Connections over the cap being answered `503` at once, at most; more are
/// closed without an answer. Counted in the file-descriptor budget.
pub(super) const REFUSAL_SLOTS: usize = 64;
/// How long a refused connection may take to read its `503`.
const REFUSAL_TIME: Duration = Duration::from_secs(2);
/// What a refused connection is told.
const BUSY: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Length: 52\r\nRetry-After: 1\r\nConnection: close\r\n\r\n\
too many open connections to this server; try again\n";
/// A pause after a failed accept (such as running out of descriptors), so a
/// persistent failure does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// The least time between two reports of refused connections.
const REFUSAL_REPORT_EVERY: Duration = Duration::from_secs(60);

/// One bound address: what it serves, and its TLS configuration if any.
pub(super) struct Bound {
    pub(super) listener: TcpListener,
    pub(super) app: Router,
    pub(super) tls: Option<Arc<Reloading>>,
}

/// What every accept loop shares: one connection cap for all addresses.
struct Shared {
    cap: usize,
    slots: Arc<Semaphore>,
    refusals: Arc<Semaphore>,
    refused: std::sync::Mutex<Refused>,
    header_timeout: Duration,
    idle_timeout: Duration,
    closing: watch::Receiver<bool>,
}

/// Serves every address of `bound` with `settings` until `stop` completes
/// (or fails: its error is returned after the connections are closed).
pub(super) async fn accept_loop(
    bound: Vec<Bound>,
    settings: &ServeSettings,
    stop: impl Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let cap = settings.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let (closing, closing_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        cap,
        slots: Arc::new(Semaphore::new(cap)),
        refusals: Arc::new(Semaphore::new(REFUSAL_SLOTS)),
        refused: std::sync::Mutex::new(Refused::default()),
        header_timeout: settings.header_timeout,
        idle_timeout: settings.idle_timeout,
        closing: closing_rx,
    });
    let accepting: Vec<_> = bound
        .into_iter()
        .map(|b| tokio::spawn(accept_on(b, shared.clone())))
        .collect();
    let stopped = stop.await;
    // Stop accepting, let running downloads finish, but not forever.
    let _ = closing.send(true);
    for a in accepting {
        let _ = a.await;
    }
    tell(format_args!(
        "stopping; waiting up to {} s for open downloads",
        SHUTDOWN_GRACE.as_secs()
    ));
    let all = u32::try_from(cap).unwrap_or(u32::MAX);
    if tokio::time::timeout(SHUTDOWN_GRACE, shared.slots.acquire_many(all))
        .await
        .is_err()
    {
        tell(format_args!("closing the downloads still open"));
    }
    stopped
}

/// Accepts on one address until the server stops; the listener is then dropped.
async fn accept_on(b: Bound, shared: Arc<Shared>) {
    let mut closing = shared.closing.clone();
    loop {
        let tcp = tokio::select! {
            () = async { let _ = closing.wait_for(|c| *c).await; } => return,
            r = b.listener.accept() => match r {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    tell(format_args!("cannot accept a connection: {e}"));
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let tls = b.tls.as_ref().map(|t| t.current());
        match shared.slots.clone().try_acquire_owned() {
            Ok(slot) => {
                let conn = Connection {
                    app: b.app.clone(),
                    header_timeout: shared.header_timeout,
                    idle_timeout: shared.idle_timeout,
                    closing: shared.closing.clone(),
                    _slot: slot,
                };
                tokio::spawn(conn.serve(tcp, tls));
            }
            Err(_) => {
                refuse(tcp, tls, &shared.refusals);
                let mut r = shared.refused.lock().unwrap_or_else(|e| e.into_inner());
                r.count(shared.cap);
            }
        }
    }
}

/// Tells the operator about refused connections, at most once a minute.
#[derive(Default)]
struct Refused {
    since_report: u64,
    reported: Option<Instant>,
}

impl Refused {
    fn count(&mut self, cap: usize) {
        self.since_report += 1;
        if self
            .reported
            .is_none_or(|t| t.elapsed() >= REFUSAL_REPORT_EVERY)
        {
            tell(format_args!(
                "refused {} connection(s): {cap} are open, the most allowed \
                 ([serve] max_connections)",
                self.since_report
            ));
            self.since_report = 0;
            self.reported = Some(Instant::now());
        }
    }
}

/// Answers a connection over the cap with [`BUSY`] (over TLS on a TLS
/// address) and closes it, reading what the client sent meanwhile so the
/// close does not reset the answer.
fn refuse(tcp: TcpStream, tls: Option<Arc<ServerConfig>>, refusals: &Arc<Semaphore>) {
    let Ok(slot) = refusals.clone().try_acquire_owned() else {
        return; // dropped: closed without an answer
    };
    tokio::spawn(async move {
        let _slot = slot;
        let _ = tokio::time::timeout(REFUSAL_TIME, async {
            match tls {
                None => busy(tcp).await,
                Some(c) => busy(TlsAcceptor::from(c).accept(tcp).await?).await,
            }
        })
        .await;
    });
}

async fn busy(mut io: impl AsyncRead + AsyncWrite + Unpin) -> io::Result<()> {
    io.write_all(BUSY).await?;
    io.shutdown().await?;
    let mut buf = [0u8; 4096];
    while io.read(&mut buf).await? > 0 {}
    Ok(())
}

/// One accepted connection, holding its place under the cap until dropped.
struct Connection {
    app: Router,
    header_timeout: Duration,
    idle_timeout: Duration,
    /// Becomes `true` when the server stops.
    closing: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
}

impl Connection {
    async fn serve(self, tcp: TcpStream, tls: Option<Arc<ServerConfig>>) {
        // Small answers go out at once rather than waiting on Nagle.
        let _ = tcp.set_nodelay(true);
        let activity = Arc::new(Activity::new());
        let tracked = Tracked {
            inner: tcp,
            activity: activity.clone(),
        };
        match tls {
            None => self.http(tracked, &activity).await,
            Some(config) => {
                // The handshake has the header timeout too: a client that
                // stalls in it is closed as one stalling in its headers.
                let accept = TlsAcceptor::from(config).accept(tracked);
                if let Ok(Ok(stream)) = tokio::time::timeout(self.header_timeout, accept).await {
                    self.http(stream, &activity).await;
                }
            }
        }
    }

    async fn http(
        mut self,
        io: impl AsyncRead + AsyncWrite + Unpin + Send + 'static,
        activity: &Activity,
    ) {
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout);
        let conn =
            builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(self.app.clone()));
        let mut conn = std::pin::pin!(conn);
        let mut tick =
            tokio::time::interval((self.idle_timeout / 4).max(Duration::from_millis(10)));
        let mut stopping = false;
        loop {
            tokio::select! {
                // Errors are the client's doing (reset, timeout, bad request
                // line), answered by hyper where HTTP allows it.
                _ = conn.as_mut() => return,
                _ = self.closing.changed(), if !stopping => {
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
                _ = tick.tick() => {
                    if activity.idle_for() >= self.idle_timeout {
                        return; // dropped: the socket is closed
                    }
                }
            }
        }
    }
}

/// When a connection last moved a byte.
struct Activity {
    start: Instant,
    /// Milliseconds after `start`.
    last: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            start: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        self.start
            .elapsed()
            .saturating_sub(Duration::from_millis(self.last.load(Ordering::Relaxed)))
    }
}

/// A TCP stream that notes in [`Activity`] every read or write that moved bytes.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
