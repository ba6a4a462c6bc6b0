//! The checksum database's part of an export, so that ferry-in can serve
//! it to the go command (`GOSUMDB` on): under `sumdb/<name>/` the verifier
//! key, the database's signed tree head (`latest`, read after every lookup),
//! every carried version's record with its id, the heads carried before
//! (`heads/<size>`), and the tiles of `latest`'s tree that prove every
//! record included and every earlier head consistent with it
//! ([`ferry_formats::go::tlog::tiles_needed`]). Everything is proved here
//! from exactly the tiles carried before it is listed.

use super::select::{GoError, Selected};
use super::GoSource;
use crate::source::{Item, ScanCtx};
use anyhow::Result;
use ferry_formats::go::sumdb::{parse_tree, record_lines, stored_record, Tree};
use ferry_formats::go::tlog::{
    check_tiles, prove_consistency, prove_inclusion, tiles_needed, Tile,
};
use ferry_formats::go::{parse_path, sumdb_path, GoPath, SumdbFile};
use std::collections::BTreeMap;
use std::path::Path;

/// The largest signed note read.
const MAX_NOTE: u64 = 64 << 10;

/// Records and their ids by (module, version).
type Records = BTreeMap<(String, String), (u64, String)>;

/// A signed tree head: the note and its tree.
struct Head {
    note: Vec<u8>,
    tree: Tree,
}

impl GoSource {
    /// Lists the checksum database's part (nothing without a database).
    pub(super) fn emit_sumdb(
        &self,
        cx: &ScanCtx<'_>,
        selected: &Selected,
        sink: &mut dyn FnMut(Item) -> Result<()>,
    ) -> Result<()> {
        let Some((key, base)) = &self.sumdb else {
            return Ok(());
        };
        let name = key.name.as_str();
        let db_err = |reason: String| GoError::SumdbTree {
            name: name.to_string(),
            reason,
        };
        let records = self.carried_records(cx, selected)?;
        // The head, read after the lookups, so it holds every record.
        let url = base.join("latest")?;
        let (note, tree) = self.db_latest(&url).map_err(db_err)?;
        let latest = Head { note, tree };
        if let Some(((m, v), (id, _))) = records.iter().find(|(_, (id, _))| *id >= latest.tree.size)
        {
            return Err(db_err(format!(
                "{url}: the tree of {} records does not hold record {id} ({m} {v})",
                latest.tree.size
            ))
            .into());
        }
        let heads_dir = cx.cache_dir.join("sumdb").join(key.tag()).join("heads");
        let old = self.old_heads(cx, &heads_dir, name)?;
        let ids: Vec<u64> = records.values().map(|(id, _)| *id).collect();
        let sizes: Vec<u64> = old.iter().map(|h| h.tree.size).collect();
        let needed: Vec<Tile> = tiles_needed(latest.tree.size, &ids, &sizes)
            .into_iter()
            .collect();
        // Full tiles never change: kept once proved, read back after.
        let tile_cache = cx.cache_dir.join("sumdb").join(key.tag()).join("tiles");
        let mut tiles = BTreeMap::new();
        for t in &needed {
            let data = match std::fs::read(tile_cache.join(t.path())) {
                Ok(d) if t.width == 256 => d,
                _ => self.db_tile(&t.path()).map_err(db_err)?,
            };
            tiles.insert(t.path(), data);
        }
        // Proved from exactly the tiles carried.
        let mut fetch = |p: &str| {
            tiles
                .get(p)
                .cloned()
                .ok_or_else(|| format!("{p} is not carried"))
        };
        let (size, root) = (latest.tree.size, latest.tree.hash);
        if let Err(e) = check_tiles(size, &root, &needed, &mut fetch) {
            // A bad cached tile must not fail every later export.
            let _ = std::fs::remove_dir_all(&tile_cache);
            return Err(db_err(e.to_string()).into());
        }
        for ((m, v), (id, record)) in &records {
            prove_inclusion(record.as_bytes(), *id, size, &root, &mut fetch)
                .map_err(|e| db_err(format!("{m} {v}: {e}")))?;
        }
        for h in &old {
            prove_consistency(h.tree.size, &h.tree.hash, size, &root, &mut fetch).map_err(|e| {
                db_err(format!(
                    "{e}: the database forked since the head of {} records carried before",
                    h.tree.size
                ))
            })?;
        }
        for t in needed.iter().filter(|t| t.width == 256) {
            let f = tile_cache.join(t.path());
            if !f.is_file() {
                std::fs::create_dir_all(f.parent().expect("a tile path has a parent"))?;
                ferry_agent_common::fsx::write_atomic(&f, &tiles[&t.path()])?;
            }
        }
        std::fs::create_dir_all(&heads_dir)?;
        ferry_agent_common::fsx::write_atomic(&heads_dir.join(size.to_string()), &latest.note)?;

        let path = |f: SumdbFile| sumdb_path(name, &f);
        sink(Item::from_bytes(
            path(SumdbFile::Key),
            key.text().into_bytes(),
        ))?;
        sink(Item::from_bytes(
            path(SumdbFile::Latest),
            latest.note.clone(),
        ))?;
        let old = old.into_iter().filter(|h| h.tree.size != size);
        for h in old.chain([latest]) {
            sink(Item::from_bytes(
                path(SumdbFile::Head { size: h.tree.size }),
                h.note,
            ))?;
        }
        for ((module, version), (id, record)) in records {
            let f = SumdbFile::Record { module, version };
            sink(Item::from_bytes(
                path(f),
                stored_record(id, &record).into_bytes(),
            ))?;
        }
        for t in needed {
            let data = tiles.remove(&t.path()).expect("fetched");
            sink(Item::from_bytes(path(SumdbFile::Tile(t)), data))?;
        }
        Ok(())
    }

    /// Every carried version's record and id, agreeing with the hashes the
    /// version was checked against.
    fn carried_records(&self, cx: &ScanCtx<'_>, selected: &Selected) -> Result<Records> {
        let (key, base) = self.sumdb.as_ref().expect("a checksum database");
        let mut records = Records::new();
        for (module, versions) in selected {
            for (version, p) in versions {
                let (id, record) = self.db_record(cx, module, version)?;
                for l in record_lines(&record, module, version)? {
                    let (ours, file) = match l.go_mod {
                        true => (Some(&p.mod_h1), "go.mod"),
                        false => (p.zip_h1.as_ref(), "zip"),
                    };
                    if let Some(h) = ours.filter(|h| **h != l.hash) {
                        return Err(GoError::Mismatch {
                            module: module.clone(),
                            version: version.clone(),
                            file,
                            url: base.join("lookup/")?.to_string(),
                            expected: l.hash,
                            got: h.clone(),
                            against: format!("checksum database {}", key.name),
                        }
                        .into());
                    }
                }
                records.insert((module.clone(), version.clone()), (id, record));
            }
        }
        Ok(records)
    }

    /// The database's signed tree head, verified.
    fn db_latest(&self, url: &url::Url) -> Result<(Vec<u8>, Tree), String> {
        let (key, _) = self.sumdb.as_ref().expect("a checksum database");
        let note = self
            .sumdb_client
            .get_small(url.as_str(), MAX_NOTE)
            .map_err(|e| format!("{url}: {e}"))?
            .ok_or_else(|| format!("{url}: not found"))?;
        let tree = key
            .open(&note)
            .and_then(parse_tree)
            .map_err(|e| format!("{url}: {e}"))?;
        Ok((note, tree))
    }

    /// The heads the last export carried (`heads/<size>`), read back from
    /// the cache; one the cache lost is dropped with a warning (a client
    /// that cached it then has to start afresh), one that no longer
    /// verifies is an error.
    fn old_heads(&self, cx: &ScanCtx<'_>, dir: &Path, name: &str) -> Result<Vec<Head>> {
        let (key, _) = self.sumdb.as_ref().expect("a checksum database");
        let mut out: Vec<Head> = Vec::new();
        for (path, _) in cx.previous_paths() {
            let Some(GoPath::Sumdb {
                name: n,
                file: SumdbFile::Head { size },
            }) = parse_path(path)
            else {
                continue;
            };
            if n != name {
                continue;
            }
            let Ok(note) = std::fs::read(dir.join(size.to_string())) else {
                eprintln!(
                    "warning: source {:?}: the tree head of {size} records of checksum database \
                     {name} carried before is not in the cache any more; not carried again",
                    self.name
                );
                continue;
            };
            let tree = key
                .open(&note)
                .and_then(parse_tree)
                .map_err(|e| GoError::SumdbTree {
                    name: name.to_string(),
                    reason: format!("the cached head of {size} records: {e}"),
                })?;
            if tree.size == size && out.iter().all(|h| h.tree.size != size) {
                out.push(Head { note, tree });
            }
        }
        Ok(out)
    }
}
