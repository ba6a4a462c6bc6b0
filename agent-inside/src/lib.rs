//! ferry-in: the agent inside the air gap.
//!
//! It verifies bundles completely before using a byte of them, applies them
//! to its stores atomically (a client sees the previous generation or the new
//! one, never a mix), and serves the current generation over HTTP.

#![forbid(unsafe_code)]
#![warn(unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::too_many_lines))]

pub mod adopt;
pub mod after_import;
pub mod apply;
pub mod bundle;
pub mod carried;
pub mod chunkstore;
pub mod client_config;
pub mod config;
pub mod db;
pub mod delta;
pub mod diode;
pub mod export_tree;
pub mod failures;
pub mod freshness;
pub mod genread;
pub mod import;
pub mod layout;
pub mod listen;
pub mod objects;
pub mod pathindex;
pub mod policy;
pub mod publish;
pub mod ranges;
pub mod rebase;
pub mod receipt;
pub mod registry_push;
pub mod scrub;
pub mod serve;
pub mod site_key;
pub mod site_tls;
pub mod status;
pub mod store;
pub mod trust;
pub mod upstream;
pub mod watch;
