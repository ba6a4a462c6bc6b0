//! `ferry-in adopt`: moving an existing air gap to Ferry (docs/runbook.md).
//!
//! The inside already holds content that was carried by hand: a registry
//! filled by skopeo, apt/yum/PyPI/Helm mirror trees, plain file trees. Adopt
//! lists it by SHA-256 and size (`tree`: every regular file of a directory,
//! hashed; `registry`: every manifest of every tag over the `/v2/` API, and
//! the blobs they name), keeps where each object lies in
//! `STATE/adopted.json`, and writes an inventory signed by the inside key
//! (`ferry_protocol::inventory`) for `ferry-out receipt add`. The outside
//! then ships those objects' catalog entries without their content, and an
//! apply takes their bytes from the adopted locations (`stage`), checking
//! size and SHA-256 before any of it is used: a mismatch is
//! [`AdoptError::Mismatch`], naming the location, and nothing is applied.

use crate::layout::Layout;
use anyhow::{Context, Result};
use ferry_agent_common::fsx;
use ferry_protocol::id::Sha256;
use ferry_protocol::inventory::Inventory;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

mod registry;
pub mod stage;
mod tree;

/// Where an adopted object's bytes are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Location {
    /// A regular file.
    File(PathBuf),
    /// A blob or manifest of a registry: `GET {base}/v2/{repo}/{kind}/sha256:{hex}`.
    Registry {
        /// `http(s)://host:port`.
        base: String,
        /// A repository holding it.
        repo: String,
        /// `blobs` or `manifests`.
        kind: String,
        /// A CA file to verify the registry's certificate with (https).
        ca: Option<PathBuf>,
    },
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::File(p) => write!(f, "{}", p.display()),
            Location::Registry {
                base, repo, kind, ..
            } => write!(f, "{base}/v2/{repo}/{kind}"),
        }
    }
}

/// An adopted object: its size and where it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adopted {
    /// Size in bytes (as found, or as a registry's manifest declares it).
    pub size: u64,
    /// Where.
    pub location: Location,
}

/// Why adopted content is refused.
#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    /// The bytes at an adopted location are not the object the catalog names.
    #[error("adopted {location} is not what the inventory said (the catalog wants {want_size} bytes with SHA-256 {want}; found {found_size} bytes with SHA-256 {found}): it changed after `ferry-in adopt`; nothing was applied. Restore it, or run `ferry-in adopt` again and carry the new inventory out")]
    Mismatch {
        /// Where.
        location: String,
        /// The catalog's digest.
        want: Sha256,
        /// The catalog's size.
        want_size: u64,
        /// What was read.
        found: Sha256,
        /// Bytes read.
        found_size: u64,
    },
    /// An adopted location cannot be read.
    #[error("adopted {location} cannot be read: {why}; nothing was applied")]
    Unreadable {
        /// Where.
        location: String,
        /// Why.
        why: String,
    },
    /// A registry answered something unusable.
    #[error("registry {base}: {why}")]
    Registry {
        /// The registry.
        base: String,
        /// What went wrong.
        why: String,
    },
}

/// The adoption index, by SHA-256 (hex).
pub type Index = BTreeMap<String, Adopted>;

/// `STATE/adopted.json`.
pub fn index_path(layout: &Layout) -> PathBuf {
    layout.root.join("adopted.json")
}

/// The adoption index (empty when nothing was adopted).
pub fn load_index(layout: &Layout) -> Result<Index> {
    let path = index_path(layout);
    match std::fs::read(&path) {
        Ok(b) => {
            serde_json::from_slice(&b).with_context(|| format!("cannot parse {}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Index::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// What to adopt.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct AdoptArgs {
    /// A registry's base URL (`http://127.0.0.1:5000`, or https): every
    /// manifest of every tag of every repository, and the blobs they name.
    #[arg(long, value_name = "URL")]
    pub registry: Vec<String>,
    /// CA certificate (PEM) to verify an https registry with (default: the
    /// system's roots).
    #[arg(long, value_name = "FILE")]
    pub registry_ca: Option<PathBuf>,
    /// A directory tree (an apt or yum mirror, a PyPI simple tree, a Helm
    /// repository, plain files): every regular file in it, hashed.
    #[arg(long, value_name = "DIR")]
    pub tree: Vec<PathBuf>,
    /// Directory to write the signed inventory into (a stick going out).
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
}

/// `ferry-in adopt`: inventories what is given, keeps where each object is,
/// writes the signed inventory into `args.to`. Returns its path.
pub fn adopt_cmd(layout: &Layout, args: &AdoptArgs) -> Result<PathBuf> {
    if args.registry.is_empty() && args.tree.is_empty() {
        anyhow::bail!("nothing to adopt: give --registry URL or --tree DIR (each may repeat)");
    }
    let mut index = Index::new();
    for dir in &args.tree {
        let n = tree::inventory(dir, &mut index)
            .with_context(|| format!("cannot inventory {}", dir.display()))?;
        println!("{}: {n} files", dir.display());
    }
    for base in &args.registry {
        let n = registry::inventory(base, args.registry_ca.as_deref(), &mut index)?;
        println!("{base}: {n} manifests and blobs");
    }
    std::fs::create_dir_all(&layout.root)
        .with_context(|| format!("cannot create {}", layout.root.display()))?;
    fsx::write_atomic(&index_path(layout), &serde_json::to_vec(&index)?)?;
    let key = crate::receipt::inside_key(layout)?;
    let stream = crate::db::Db::open(&layout.db())?.applied()?.stream;
    let objects = index
        .iter()
        .filter_map(|(hex, a)| Sha256::from_hex(hex).map(|s| (s, a.size)))
        .collect();
    let inv = Inventory::new(stream, ferry_agent_common::now_unix(), objects);
    let file = inv.sign(&key);
    std::fs::create_dir_all(&args.to)
        .with_context(|| format!("cannot create {}", args.to.display()))?;
    let out = args.to.join(format!(
        "inventory-{}.ferryinv",
        hex::encode(&key.public().0[..8])
    ));
    fsx::write_atomic(&out, &file)?;
    println!(
        "inventory of {} objects written to {} ({} bytes); load it outside with `ferry-out receipt add`",
        inv.objects.len(),
        out.display(),
        file.len()
    );
    Ok(out)
}

/// Hashes `reader` to its end: SHA-256 and bytes read.
fn hash_all(mut reader: impl std::io::Read) -> std::io::Result<(Sha256, u64)> {
    let mut h = ferry_protocol::id::Sha256Hasher::default();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = reader.read(&mut buf)?;
        if k == 0 {
            return Ok((h.finish(), n));
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
}
