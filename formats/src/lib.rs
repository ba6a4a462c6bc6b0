//! The package-ecosystem formats both agents read.
//!
//! ferry-out's sources (`agent-outside/src/source/`) parse upstream
//! repositories and write their catalogs; ferry-in's stores
//! (`agent-inside/src/store/`) parse the same files again to check a
//! generation before it becomes current. Whatever both sides read lives here,
//! once: the types, the parsers and the catalog path conventions.
//!
//! Rules: parsing and types only. No network, no filesystem, no clock; input
//! is bytes or text, output is values or a typed error (a `thiserror` enum per
//! operation, one variant per broken rule) whose message names the file and
//! what is wrong; callers add the source name, and `?` turns it into their
//! `anyhow::Error`.
//! Logic only one side needs (selection, downloads, serving, site signing)
//! stays with that side.
//!
//! - [`cargo`]: the Rust registry's sparse index (index lines, index paths,
//!   `config.json`) and the catalog layout of a `cargo` source.
//! - [`compress`]: gz/xz/zst metadata, decompressed with a bound.
//! - [`deb`]: Debian repositories: deb822 paragraphs and fields, `Release`,
//!   compressed index files.
//! - [`go`]: Go modules: paths and versions, `go.mod`, `go.sum`, the `h1:`
//!   hash, the checksum database's notes, and the catalog layout of a `go` source.
//! - [`rpm`]: RPM (yum/dnf) repositories: `repomd.xml` and its checksums.
//! - [`pypi`]: the project index ferry writes for a PyPI source,
//!   `simple/<project>/index.json`, and PEP 503 names.
//! - [`helm`]: Helm chart repository `index.yaml`.
//! - [`npm`]: packuments, integrity, npm semver ranges, `package-lock.json`,
//!   and the catalog layout of an `npm` source.
//! - [`oci`]: OCI images: digests, repository names and tags, manifests and
//!   media types, and the catalog layout of an `oci` source.

#![forbid(unsafe_code)]
#![warn(unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::too_many_lines))]

pub mod cargo;
pub mod compress;
pub mod cosign;
pub mod deb;
pub mod go;
pub mod helm;
pub mod npm;
pub mod oci;
pub mod pypi;
pub mod rpm;
