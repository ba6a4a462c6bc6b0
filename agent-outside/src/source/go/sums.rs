//! The hashes each version is checked against: the `go.sum` files given,
//! else the checksum database (`/lookup`, its signed note verified and the
//! record's inclusion proved from the database's tiles, kept in
//! `STATE/cache/<source>/sumdb/` once verified).

use super::select::GoError;
use super::GoSource;
use crate::source::ScanCtx;
use anyhow::{Context, Result};
use ferry_formats::go::escape;
use ferry_formats::go::gomod::parse_gosum;
use ferry_formats::go::sumdb::{
    parse_lookup, parse_stored_record, record_lines, stored_record, MAX_LOOKUP,
};
use ferry_formats::go::tlog::prove_inclusion;

use std::collections::BTreeMap;

/// The largest tile read (256 hashes).
const MAX_TILE: u64 = 256 * 32;

/// The expected hashes of one version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Expected {
    /// The zip's `h1:`.
    pub(super) zip: Option<String>,
    /// The `go.mod`'s `h1:`.
    pub(super) go_mod: Option<String>,
    /// Where they come from (`go.sum FILE`, `checksum database NAME`).
    pub(super) from: String,
}

/// The `go.sum` lines of every file given, by (module, version).
pub(super) type GoSums = BTreeMap<(String, String), Expected>;

impl GoSource {
    /// Reads the `go.sum` files; two different hashes for one file of one
    /// version are an error.
    pub(super) fn read_gosums(&self) -> Result<GoSums> {
        let mut out = GoSums::new();
        for f in &self.gosums {
            let bytes = std::fs::read(f).with_context(|| format!("cannot read {}", f.display()))?;
            let lines = parse_gosum(&bytes).with_context(|| f.display().to_string())?;
            for l in lines {
                let e = out
                    .entry((l.module.clone(), l.version.clone()))
                    .or_default();
                if e.from.is_empty() {
                    e.from = format!("go.sum {}", f.display());
                }
                let slot = if l.go_mod { &mut e.go_mod } else { &mut e.zip };
                if let Some(old) = slot.as_ref().filter(|o| **o != l.hash) {
                    return Err(GoError::Mismatch {
                        module: l.module,
                        version: l.version,
                        file: if l.go_mod { "go.mod" } else { "zip" },
                        url: f.display().to_string(),
                        expected: old.clone(),
                        got: l.hash,
                        against: format!("another go.sum line ({})", f.display()),
                    }
                    .into());
                }
                *slot = Some(l.hash);
            }
        }
        Ok(out)
    }

    /// The checksum database's hashes of a version (cached once verified).
    pub(super) fn lookup(&self, cx: &ScanCtx<'_>, module: &str, version: &str) -> Result<Expected> {
        let Some((key, _)) = &self.sumdb else {
            return Ok(Expected::default());
        };
        let (_, record) = self.db_record(cx, module, version)?;
        let mut e = Expected {
            from: format!("checksum database {}", key.name),
            ..Expected::default()
        };
        for l in record_lines(&record, module, version)? {
            if l.go_mod {
                e.go_mod = Some(l.hash);
            } else {
                e.zip = Some(l.hash);
            }
        }
        Ok(e)
    }

    /// A version's record in the checksum database and its id: from
    /// `/lookup`, its note verified and the record's inclusion in the note's
    /// tree proved from tiles; kept in `STATE/cache/<source>/sumdb/<key>/`
    /// once verified.
    pub(super) fn db_record(
        &self,
        cx: &ScanCtx<'_>,
        module: &str,
        version: &str,
    ) -> Result<(u64, String)> {
        let (key, base) = self.sumdb.as_ref().expect("a checksum database");
        let name = format!("{}@{}", escape(module), escape(version));
        let cached = cx.cache_dir.join("sumdb").join(key.tag()).join(&name);
        if let Some(r) = std::fs::read(&cached)
            .ok()
            .and_then(|b| parse_stored_record(&b, module, version).ok())
        {
            return Ok(r);
        }
        let url = base.join(&format!("lookup/{name}"))?;
        let sumdb_err = |reason: String| GoError::Sumdb {
            module: module.to_string(),
            version: version.to_string(),
            reason,
        };
        let answer = self
            .sumdb_client
            .get_small(url.as_str(), MAX_LOOKUP)
            .map_err(|e| sumdb_err(e.to_string()))?
            .ok_or_else(|| sumdb_err(format!("{url}: not in the checksum database")))?;
        let l = parse_lookup(&answer, key, module, version)
            .map_err(|e| sumdb_err(format!("{url}: {e}")))?;
        let mut fetch = |path: &str| self.db_tile(path);
        prove_inclusion(
            l.record.as_bytes(),
            l.id,
            l.tree.size,
            &l.tree.hash,
            &mut fetch,
        )
        .map_err(|e| sumdb_err(format!("{url}: {e}")))?;
        if let Some(d) = cached.parent() {
            std::fs::create_dir_all(d)?;
        }
        // A cache that cannot be written is looked up again next time.
        let _ = ferry_agent_common::fsx::write_atomic(
            &cached,
            stored_record(l.id, &l.record).as_bytes(),
        );
        Ok((l.id, l.record))
    }

    /// A tile of the checksum database.
    pub(super) fn db_tile(&self, path: &str) -> Result<Vec<u8>, String> {
        let (_, base) = self.sumdb.as_ref().expect("a checksum database");
        let u = base.join(path).map_err(|e| e.to_string())?;
        self.sumdb_client
            .get_small(u.as_str(), MAX_TILE)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{u}: not found"))
    }
}
