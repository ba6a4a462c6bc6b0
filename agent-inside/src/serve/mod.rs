//! `ferry-in serve`: the current generation of the inside store over HTTP,
//! or HTTPS (`serve::tls`), on one address or several, each serving all of
//! the store or one store at its root (`serve::listeners`; docs/serve.md).
//!
//! Routes, for GET and HEAD (any other method gets `405 Method Not Allowed`;
//! under `/v2/` with an `UNSUPPORTED` JSON error, as the registry is read-only):
//!
//! - `/`: a short plain-text page: the generation served, how many objects it
//!   holds and how many bytes its files add up to.
//! - `/healthz`: `200 ok`, whether or not a bundle has been imported.
//! - `/metrics`: Prometheus text format 0.0.4 (`serve::metrics`): requests,
//!   body bytes and 4xx/5xx by store, the applied sequence, the newest
//!   bundle's age, held bundles, the diode receiver's counters.
//! - `/ferry/health`: JSON on the newest applied bundle's age
//!   (`crate::freshness`): `200` while fresh, `503` past `[trust] warn_after`
//!   or before the first import.
//! - `/files/`: an HTML listing of the sources.
//! - `/files/<source>/` and `/files/<source>/<dir>/`: an HTML listing of the
//!   direct children of a directory (directories end in `/`), at most
//!   `page_size` entries a page; a longer one ends with a `next page` link
//!   and `Link: <…?marker=…>; rel="next"` (`serve::listing`). A directory
//!   asked for without its trailing `/` is redirected (301) to it.
//! - `/files/<source>/<path>`: the object at that key. Files are streamed from
//!   the generation's plain-file store, once their bytes have been found to
//!   be the catalog's (size and SHA-256, checked on the first GET of each
//!   file of a generation; a rotten file is 500, see docs/scrub.md), with
//!   `Content-Length`,
//!   `Accept-Ranges: bytes`, `ETag: "sha256:<hex>"` and a `Content-Type`
//!   guessed from the extension. One byte range (`bytes=a-b`, `a-`, `-n`) is
//!   answered with 206 (or 416 when it cannot be satisfied); several ranges
//!   get the whole file with 200. `If-Range` (entity-tag form) and
//!   `If-None-Match` (answered with 304) are honoured. Symbolic links,
//!   including links standing for directories in the middle of a path, are
//!   resolved within the catalog, lexically, at most 8 of them per request; a
//!   dangling or looping link is 404.
//! - `/v2/`: the OCI distribution spec's pull API over the OCI sources
//!   (`store::oci`), every response with
//!   `Docker-Distribution-API-Version: registry/2.0`: `/v2/` itself (`{}`);
//!   `/v2/<name>/manifests/<tag or sha256:hex>` (the exact bytes, their media
//!   type, `Docker-Content-Digest`, an ETag); `/v2/<name>/blobs/sha256:<hex>`
//!   (streamed as files are, with Range); `/v2/<name>/tags/list` and
//!   `/v2/_catalog`, both paginated with `n` and `last` and a `Link` header
//!   to the next page. A repository is looked up in every OCI source, the
//!   first in source-name order that tags it wins; its manifests and blobs
//!   are those of that source. Errors are the spec's JSON bodies
//!   (`NAME_UNKNOWN`, `MANIFEST_UNKNOWN`, `BLOB_UNKNOWN`, `NAME_INVALID`,
//!   `DIGEST_INVALID`, `UNSUPPORTED`). `/files/` shows `files` sources only.
//! - `/apt/`, `/yum/`, `/pypi/`, `/helm/`: the package repository stores,
//!   each served as `/files/` is (listings, Range, ETag, links), with only
//!   the sources of that kind under it, so a client changes only its base
//!   URL: `/apt/<source>/dists/…`, `/yum/<source>/repodata/repomd.xml`, ….
//!   `/pypi/<source>/simple/` is the simple repository API (PEP 503 HTML and
//!   PEP 691 JSON, `serve::pypi`), rendered from the store's project indexes.
//! - `/cargo/<source>/`: a sparse crate registry (`serve::cargo`):
//!   `config.json` written per request pointing at the URL the client used,
//!   index files and `crates/…` served as files.
//! - `/npm/<source>/<name>`: an npm registry's packuments (`serve::npm`), tarball
//!   URLs pointing at the URL the client used; abbreviated metadata on request.
//! - `/go/<source>/`: a Go module proxy (GOPROXY protocol): the store's tree
//!   as files (`<module>/@v/list`, `.info`, `.mod`, `.zip`, `@latest`).
//! - anything else: 404.
//!
//! Generations: `store/current` is read once per request, and the whole
//! request is answered from that one generation, named in the
//! `X-Ferry-Generation` header; its decoded catalog is cached until the link
//! moves. Before the first import every route but `/healthz` answers 503.
//!
//! Safety: the URL path and query are percent-decoded, then checked with
//! [`ferry_protocol::path`]'s rules before anything else, in one place
//! (`serve::request`, decode or 400); only a key the catalog holds, checked
//! again, is ever joined onto the filesystem. Errors are short plain-text
//! bodies naming what is wrong.
//!
//! Exhaustion: connections are served by hyper directly (`serve::conn`) with
//! a header-read timeout, an idle timeout and a cap on open connections below
//! the open-file limit (raised to its hard value at start); one over the cap
//! is answered `503` and closed, and the connections already open are not
//! disturbed. Listings are built a page at a time on blocking threads, a few
//! at once. The settings are [`ServeSettings`], from `[serve]` in the config
//! file or the `serve` command's flags.
//!
//! Where things are:
//!
//! | file | what it holds |
//! |---|---|
//! | `lifecycle.rs` | `run`: runtime, bind, open-file limit, stop on Ctrl-C/SIGTERM with a grace period |
//! | `conn.rs` | the accept loops: connection cap, timeouts, TLS handshakes, graceful close |
//! | `tls.rs` | certificate and key into rustls, reloaded when the files change |
//! | `listeners.rs` | `--listen STORE[/SOURCE]=ADDR`, presets, an address's view of the routes |
//! | `generation.rs` | shared state, the generation of a request and its cached catalog |
//! | `routes.rs` | the router: which handler answers which path |
//! | `request.rs` | decode or 400: path and query decoding and checking |
//! | `tree.rs` | the trees of files: resolving paths and links in the catalog |
//! | `listing.rs` | directory listings, paginated, built off the async workers |
//! | `file.rs` | file bodies, byte ranges, ETag and conditional requests |
//! | `response.rs` | small response builders and HTML escaping |
//! | `metrics.rs` | `/metrics`: request counters, and the state's figures read on each scrape |
//! | `oci.rs`, `apt.rs`, `pypi.rs`, `cargo.rs`, `npm.rs` | `/v2/`, `/apt-site/`, the PyPI simple API, the sparse registry's `config.json`, npm packuments |

mod apt;
mod cargo;
mod conn;
mod file;
mod generation;
mod go;
mod lifecycle;
mod listeners;
mod listing;
mod metrics;
mod npm;
mod oci;
mod pypi;
mod request;
mod response;
mod routes;
mod settings;
mod tls;
mod tree;

pub use lifecycle::{raise_open_file_limit, run, run_with, serve_on};
pub use listeners::{combine, preset, Listen, ListenError, Scope};
pub use routes::{router, router_with};
pub use settings::{ServeSettings, DEFAULT_LISTEN};
pub use tls::{load as load_tls, TlsError, TlsFiles};
pub use tree::{resolve, Resolved};

#[cfg(all(test, unix))]
mod tests;
