//! The diode socket, drained by a thread of its own into a bounded queue.
//!
//! The segments of a window complete together, and rebuilding them takes
//! longer than the kernel's socket buffer lasts at a high rate on a busy
//! machine: datagrams read meanwhile wait in memory here instead of being
//! dropped by the kernel. The queue holds at most [`QUEUE_BYTES`]; beyond
//! that datagrams are dropped and counted, like any loss.

use anyhow::{Context, Result};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

/// Bytes of datagrams the queue holds at most.
pub(super) const QUEUE_BYTES: u64 = 256 << 20;

/// Binds the diode socket with a large receive buffer (warning when the
/// kernel grants less).
pub(super) fn bind(listen: &str) -> Result<UdpSocket> {
    let addr: SocketAddr = listen
        .parse()
        .with_context(|| format!("cannot read address {listen}"))?;
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    let _ = sock.set_recv_buffer_size(32 << 20);
    // Linux reports twice the size it grants (the rest is its bookkeeping).
    let got = sock.recv_buffer_size().unwrap_or(0) / 2;
    if got < 16 << 20 {
        eprintln!(
            "ferry-in: warning: the UDP receive buffer is only {} (the kernel's net.core.rmem_max); \
             at high rates packets will be lost before ferry-in sees them: raise it with \
             `sysctl -w net.core.rmem_max=33554432`",
            ferry_agent_common::units::human_bytes(got as u64)
        );
    }
    sock.bind(&addr.into())
        .with_context(|| format!("cannot listen on {addr}"))?;
    let sock: UdpSocket = sock.into();
    sock.set_read_timeout(Some(Duration::from_millis(200)))?;
    Ok(sock)
}

/// The thread reading the socket, and its queue.
pub(super) struct Reader {
    rx: mpsc::Receiver<Vec<u8>>,
    queued: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Result<()>>>,
}

impl Reader {
    /// Starts reading `sock`; datagrams dropped for a full queue are
    /// counted in `dropped`.
    pub(super) fn start(sock: UdpSocket, dropped: Arc<AtomicU64>) -> Result<Reader> {
        let (tx, rx) = mpsc::channel();
        let queued = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (q, s) = (queued.clone(), stop.clone());
        let handle = std::thread::Builder::new()
            .name("diode-socket".into())
            .spawn(move || read(&sock, &tx, &q, &s, &dropped))
            .context("cannot start the socket thread")?;
        Ok(Reader {
            rx,
            queued,
            stop,
            handle: Some(handle),
        })
    }

    /// The next datagram, waiting at most `wait` (`None` when none came);
    /// the socket's error if reading it failed.
    pub(super) fn next(&mut self, wait: Duration) -> Result<Option<Vec<u8>>> {
        match self.rx.recv_timeout(wait) {
            Ok(d) => {
                self.queued.fetch_sub(d.len() as u64, Ordering::Relaxed);
                Ok(Some(d))
            }
            Err(mpsc::RecvTimeoutError::Timeout) => Ok(None),
            Err(mpsc::RecvTimeoutError::Disconnected) => match self.handle.take().map(|h| h.join())
            {
                Some(Ok(Err(e))) => Err(e),
                _ => anyhow::bail!("the diode socket thread stopped"),
            },
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn read(
    sock: &UdpSocket,
    tx: &mpsc::Sender<Vec<u8>>,
    queued: &AtomicU64,
    stop: &AtomicBool,
    dropped: &AtomicU64,
) -> Result<()> {
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::Relaxed) {
        match sock.recv(&mut buf) {
            Ok(n) => {
                if queued.load(Ordering::Relaxed) + n as u64 > QUEUE_BYTES {
                    dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                queued.fetch_add(n as u64, Ordering::Relaxed);
                if tx.send(buf[..n].to_vec()).is_err() {
                    return Ok(());
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                        | std::io::ErrorKind::ConnectionRefused
                ) => {}
            Err(e) => return Err(e).context("cannot receive from the diode socket"),
        }
    }
    Ok(())
}
