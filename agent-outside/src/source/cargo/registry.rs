//! The sparse index client, over the source's shared upstream client
//! (`crate::upstream`): `config.json` once, index files on demand (many at
//! once), each parsed and checked ([`ferry_formats::cargo::parse_index`]),
//! each fetched once per scan.

use super::CargoSource;
use crate::upstream::Client;
use anyhow::{anyhow, Context, Result};
use ferry_formats::cargo::{index_path, parse_index, Entry, RegistryConfig};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The largest `config.json` read.
const MAX_CONFIG: u64 = 1 << 20;
/// The largest index file read (crates.io's largest are a few MiB).
const MAX_INDEX_FILE: u64 = 64 << 20;
/// Index files fetched at once.
const PARALLEL: usize = 8;

/// A crate's index file: its entries, in upstream's order; `None` when the
/// registry has no such crate.
pub(super) type Crate = Option<Arc<Vec<Entry>>>;

/// What the scan knows of the registry.
pub(super) struct Registry {
    /// Its `config.json`.
    pub(super) config: RegistryConfig,
    base: url::Url,
    client: Client,
    /// Index files fetched so far, by lower-case name.
    crates: Mutex<HashMap<String, Crate>>,
}

impl CargoSource {
    /// Reads `config.json`.
    pub(super) fn registry(&self) -> Result<Registry> {
        let url = self.index.join("config.json")?;
        let bytes = self
            .client
            .get_small(url.as_str(), MAX_CONFIG)
            .context("cannot read the registry's config.json")?
            .ok_or_else(|| anyhow!("{url}: 404 Not Found (not a sparse registry index)"))?;
        let config = RegistryConfig::parse(&bytes).with_context(|| url.to_string())?;
        Ok(Registry {
            config,
            base: self.index.clone(),
            client: self.client.clone(),
            crates: Mutex::new(HashMap::new()),
        })
    }
}

impl Registry {
    /// The index file of `name` (fetched unless it was already).
    pub(super) fn get(&self, name: &str) -> Result<Crate> {
        let lower = name.to_ascii_lowercase();
        if let Some(c) = self.cached(&lower) {
            return Ok(c);
        }
        let c = self.fetch(name)?;
        self.lock().insert(lower, c.clone());
        Ok(c)
    }

    /// Fetches the index files of `names` not fetched yet, `PARALLEL` at a
    /// time; the first error wins.
    pub(super) fn prefetch(&self, names: &[String]) -> Result<()> {
        let mut todo: Vec<String> = names
            .iter()
            .map(|n| n.to_ascii_lowercase())
            .filter(|n| self.cached(n).is_none())
            .collect();
        todo.sort();
        todo.dedup();
        if todo.len() < 2 {
            return todo.iter().try_for_each(|n| self.get(n).map(drop));
        }
        let queue = Mutex::new(todo);
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..PARALLEL)
                .map(|_| {
                    s.spawn(|| -> Result<()> {
                        loop {
                            let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop();
                            let Some(name) = next else { return Ok(()) };
                            self.get(&name)?;
                        }
                    })
                })
                .collect();
            workers.into_iter().try_for_each(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(anyhow!("a fetch panicked")))
            })
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Crate>> {
        self.crates.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn cached(&self, lower: &str) -> Option<Crate> {
        self.lock().get(lower).cloned()
    }

    /// One index file, parsed; `None` on 404 or 410.
    fn fetch(&self, name: &str) -> Result<Crate> {
        let path = index_path(name)?;
        let url = self.base.join(&path)?;
        let Some(bytes) = self
            .client
            .get_small(url.as_str(), MAX_INDEX_FILE)
            .with_context(|| format!("cannot read the index file of crate {name}"))?
        else {
            return Ok(None);
        };
        let entries = parse_index(&bytes, name)
            .with_context(|| format!("crate {name}: malformed index file {url}"))?;
        Ok(Some(Arc::new(entries)))
    }
}
