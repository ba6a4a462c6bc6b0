//! One way to reach upstream, for every source.
//!
//! Sources do not build HTTP clients of their own. A source's constructor
//! takes the network keys of its `[[source]]` table ([`NetSettings`], parsed
//! once by [`crate::config`]) and builds one [`Client`] from them; its scan
//! and its openers then use that client for everything they fetch:
//!
//! - [`Client::get_small`]: a whole small file (a `Release`, `repomd.xml`,
//!   `index.yaml`) into memory, bounded, `None` on 404;
//! - [`Client::download`]: a file into the source's cache directory, through
//!   a `.part` file resumed with `Range` when a connection breaks (in this
//!   export or the next), checked against the size and checksum upstream's
//!   metadata promises ([`Expect`]) before it is renamed into place;
//! - [`Keyring`]: the OpenPGP keys a repository's metadata must be signed
//!   with (detached and cleartext signatures), for apt and yum.
//!
//! The client is built from the settings restic's HTTP transport takes: a CA
//! file (instead of the system's roots), proxies from `HTTPS_PROXY`,
//! `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` (named in connection errors),
//! authentication (basic, bearer, or a docker `config.json`) sent only to the
//! source's own host, timeouts, and retries with exponential backoff for
//! connection errors, 429 and 5xx (every request here is an idempotent GET).
//!
//! Every operation fails with an [`UpstreamError`], whose variants a source
//! (or a test) matches: the connection, an HTTP status, a checksum or size
//! mismatch, a size limit, a bad signature. Each names the URL (or file) and,
//! for a mismatch, what was expected and what upstream sent.

mod auth;
mod client;
mod download;
mod error;
mod openpgp;
mod settings;

pub use auth::docker_config_auth;
pub use client::Client;
pub use download::{prune_downloads, Expect};
pub use error::UpstreamError;
pub use openpgp::Keyring;
pub use settings::{read_ca_file, NetSettings, NET_KEYS};
