//! What an operator may tune about `ferry-in serve`: the `[serve]` part of
//! the config file (`crate::config`) and the `serve` command's flags.

use super::listeners::Listen;
use super::tls::TlsFiles;
use std::time::Duration;

/// How `serve` guards itself against slow, idle and too many clients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServeSettings {
    /// A client must send a request's complete headers within this long of
    /// the server waiting for one: on a new connection, and on a kept-alive
    /// one after its previous response (so it also closes keep-alive
    /// connections idle that long). A partial header is closed after it.
    pub header_timeout: Duration,
    /// A connection on which no byte moves either way for this long (a
    /// stalled download or upload) is closed.
    pub idle_timeout: Duration,
    /// Open connections at most; one more is answered `503` and closed. The
    /// number is lowered at start to what the open-file limit allows.
    pub max_connections: usize,
    /// Entries on one page of a directory listing; more are reached with
    /// `?marker=`.
    pub page_size: usize,
    /// Where to listen and what each address serves; empty:
    /// [`DEFAULT_LISTEN`], everything.
    pub listen: Vec<Listen>,
    /// Serve HTTPS with this certificate and key (reloaded when they
    /// change); `None`: plain HTTP.
    pub tls: Option<TlsFiles>,
}

/// Where `serve` listens when told nowhere.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

impl Default for ServeSettings {
    fn default() -> Self {
        ServeSettings {
            header_timeout: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            max_connections: 4096,
            page_size: 1000,
            listen: Vec::new(),
            tls: None,
        }
    }
}
