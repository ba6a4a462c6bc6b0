//! The state every request shares, and the generation one request is
//! answered from: `store/current` is read once per request; the opened
//! generation (`crate::genread::GenRead`) is cached until the link moves.

use super::response::{server_error, text};
use super::settings::ServeSettings;
use crate::genread::GenRead;
use crate::layout::Layout;
use axum::http::StatusCode;
use axum::response::Response;
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use tokio::sync::{Mutex, Semaphore};

/// The answer before the first import.
pub(super) const NO_GENERATION: &str = "no bundle has been imported yet";

/// Shared by all requests.
pub(super) struct Server {
    pub(super) layout: Layout,
    /// At most this many entries on one page of a directory listing.
    pub(super) page_size: usize,
    /// Listings are built on blocking threads, this many at once (half the
    /// CPUs), so a storm of them queues here instead of starving file
    /// requests of CPU.
    pub(super) listing_slots: Semaphore,
    /// Files are verified (read and hashed) on blocking threads, this many
    /// at once, so first requests for large files queue here.
    verify_slots: Arc<Semaphore>,
    /// The generation last served, by name, and its files verified so far.
    cache: Mutex<Option<Generation>>,
    /// Serving HTTPS: URLs written into responses (a cargo registry's
    /// `config.json`, npm tarball links) say `https`.
    pub(super) https: bool,
    /// The request counters `/metrics` reports.
    pub(super) metrics: super::metrics::Metrics,
}

/// The files of one generation whose bytes have been read and found to be
/// the catalog's (size and SHA-256) since `serve` started: only those are
/// served (`serve::file`). Kept per generation, as a file is verified since
/// it was linked into the generation being served. A file is held as the
/// BLAKE3 of its path (32 bytes, not the path's 100 or so): the set grows
/// with the files served, up to every file of the mirror.
pub(super) struct Verified {
    paths: std::sync::Mutex<HashSet<[u8; 32]>>,
    /// Shared by all generations: bounds the verifications running at once.
    pub(super) slots: Arc<Semaphore>,
}

/// What [`Verified`] holds of the file at `path`.
fn path_id(path: &Path) -> [u8; 32] {
    use std::os::unix::ffi::OsStrExt;
    *blake3::hash(path.as_os_str().as_bytes()).as_bytes()
}

impl Verified {
    fn new(slots: Arc<Semaphore>) -> Self {
        Verified {
            paths: std::sync::Mutex::new(HashSet::new()),
            slots,
        }
    }

    /// Whether the file at `path` has been verified.
    pub(super) fn contains(&self, path: &Path) -> bool {
        let id = path_id(path);
        self.paths
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&id)
    }

    /// Records that the file at `path` has been verified.
    pub(super) fn insert(&self, path: &Path) {
        let id = path_id(path);
        self.paths
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id);
    }
}

/// The generation one request is answered from.
#[derive(Clone)]
pub(super) struct Generation {
    pub(super) name: String,
    /// How its files are read.
    pub(super) files: Arc<GenRead>,
    /// Its files verified so far.
    pub(super) verified: Arc<Verified>,
}

impl Server {
    pub(super) fn new(layout: Layout, settings: &ServeSettings) -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        Server {
            layout,
            page_size: settings.page_size.max(1),
            // Half the CPUs at most, so file requests always have the rest.
            listing_slots: Semaphore::new((cpus / 2).max(1)),
            verify_slots: Arc::new(Semaphore::new((cpus / 2).max(1))),
            cache: Mutex::new(None),
            https: settings.tls.is_some(),
            metrics: super::metrics::Metrics::default(),
        }
    }

    /// Reads `current` and returns its generation, or the response to send.
    /// A generation deleted between reading the link and opening it
    /// (an import switched and dropped it) is passed over for the new one.
    pub(super) async fn current(&self) -> Result<Generation, Response> {
        for _ in 0..3 {
            match self.current_once().await {
                Err((_, ref name))
                    if !name.is_empty()
                        && self.layout.current_gen_name().as_deref() != Some(name.as_str()) => {}
                other => return other.map_err(|(r, _)| r),
            }
        }
        self.current_once().await.map_err(|(r, _)| r)
    }

    /// [`Server::current`] once; an error comes with the generation it names
    /// (empty if none).
    async fn current_once(&self) -> Result<Generation, (Response, String)> {
        let failed = |r: Response| (r, String::new());
        let link = self.layout.current_link();
        let target = match std::fs::read_link(&link) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(failed(text(StatusCode::SERVICE_UNAVAILABLE, NO_GENERATION)));
            }
            Err(e) => {
                return Err(failed(server_error(format!(
                    "cannot read the link {}: {e}",
                    link.display()
                ))))
            }
        };
        let Some(name) = target.file_name().and_then(|n| n.to_str()) else {
            return Err(failed(server_error(format!(
                "{} points at {}, which is not a generation",
                link.display(),
                target.display()
            ))));
        };
        let name = name.to_string();

        let mut cache = self.cache.lock().await;
        if let Some(cached) = &*cache {
            if cached.name == name {
                return Ok(cached.clone());
            }
        }
        let (layout, n) = (self.layout.clone(), name.clone());
        let loaded = tokio::task::spawn_blocking(move || {
            GenRead::open(&layout, &n).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| format!("opening the generation failed: {e}"))
        .and_then(|r| r);
        match loaded {
            Ok(files) => {
                let verified = Arc::new(Verified::new(self.verify_slots.clone()));
                let g = Generation {
                    name,
                    files: Arc::new(files),
                    verified,
                };
                *cache = Some(g.clone());
                Ok(g)
            }
            Err(e) if self.layout.current_gen_name().as_deref() != Some(name.as_str()) => {
                // Replaced meanwhile: the caller tries the new one.
                Err((text(StatusCode::SERVICE_UNAVAILABLE, e), name))
            }
            Err(e) => Err((
                server_error(format!("cannot load generation {name}: {e}")),
                name,
            )),
        }
    }
}
