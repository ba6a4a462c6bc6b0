//! The checksum database part of a go source (`sumdb/<name>/`, written by
//! the outside's `source::go::sumdb`), checked again once built: the key
//! parses and is named `<name>` (and is the key the previous generation
//! held); `latest` and every `heads/<size>` are tree heads signed by it;
//! every tile is a tile of `latest`'s tree whose hashes lead to its root;
//! every record is of its version, agrees with the version's `checksums`
//! and is included in `latest`'s tree; every head, and the `latest` of the
//! previous generation, is consistent with it; and every version the
//! source carries has its record. All proofs read the carried tiles only,
//! as the go command will read them from `serve`.

use super::Ctx;
use anyhow::Result;
use ferry_formats::go::gomod::parse_gosum;
use ferry_formats::go::sumdb::{parse_stored_record, parse_tree, SumdbError, Tree, VerifierKey};
use ferry_formats::go::tlog::{check_tiles, prove_consistency, prove_inclusion, Tile, TlogError};
use ferry_formats::go::{checksums_path, sumdb_path, SumdbFile};
use std::collections::BTreeMap;

/// Why a carried checksum database is refused.
#[derive(Debug, thiserror::Error)]
pub enum GoSumdbError {
    /// `key` or `latest` is missing while other files of the database are held.
    #[error("source {source_name}: checksum database {name}: {file} is not held")]
    Missing {
        /// The source.
        source_name: String,
        /// The database's name.
        name: String,
        /// `key` or `latest`.
        file: &'static str,
    },
    /// The key does not parse, is named otherwise, or is not the key the
    /// previous generation held.
    #[error("source {source_name}: checksum database {name}: bad verifier key: {reason}")]
    BadKey {
        /// The source.
        source_name: String,
        /// The database's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A tree head that is not signed by the key, or not a tree head.
    #[error("source {source_name}: checksum database {name}: {file}: {error}")]
    BadNote {
        /// The source.
        source_name: String,
        /// The database's name.
        name: String,
        /// The file.
        file: String,
        /// Why.
        error: SumdbError,
    },
    /// A record that is not one of its version or disagrees with the
    /// version's `checksums`.
    #[error("source {source_name}: checksum database {name}: module {module} {version}: {reason}")]
    BadRecord {
        /// The source.
        source_name: String,
        /// The database's name.
        name: String,
        /// The module.
        module: String,
        /// The version.
        version: String,
        /// What is wrong.
        reason: String,
    },
    /// A tile, inclusion or consistency proof that fails.
    #[error("source {source_name}: checksum database {name}: {what}: {error}")]
    Proof {
        /// The source.
        source_name: String,
        /// The database's name.
        name: String,
        /// What was being proved.
        what: String,
        /// Why it fails.
        error: TlogError,
    },
}

/// The files of one database of one source, by kind.
#[derive(Default)]
pub(super) struct Db {
    pub(super) key: bool,
    pub(super) latest: bool,
    pub(super) heads: Vec<u64>,
    pub(super) records: Vec<(String, String)>,
    pub(super) tiles: Vec<Tile>,
}

impl Db {
    pub(super) fn add(&mut self, file: &SumdbFile) {
        match file {
            SumdbFile::Key => self.key = true,
            SumdbFile::Latest => self.latest = true,
            SumdbFile::Head { size } => self.heads.push(*size),
            SumdbFile::Record { module, version } => {
                self.records.push((module.clone(), version.clone()))
            }
            SumdbFile::Tile(t) => self.tiles.push(*t),
        }
    }
}

/// Checks one database of one source; `versions` are the versions the
/// source carries (each needs a record).
pub(super) fn check(c: &Ctx<'_>, name: &str, db: &Db, versions: &[(String, String)]) -> Result<()> {
    let source = c.source.to_string();
    let path = |f: SumdbFile| sumdb_path(name, &f);
    for (ok, file) in [(db.key, "key"), (db.latest, "latest")] {
        if !ok {
            return Err(GoSumdbError::Missing {
                source_name: source,
                name: name.into(),
                file,
            }
            .into());
        }
    }
    let bad_key = |reason: String| GoSumdbError::BadKey {
        source_name: source.clone(),
        name: name.into(),
        reason,
    };
    let key_path = path(SumdbFile::Key);
    let key_text =
        String::from_utf8(c.read(&key_path)?).map_err(|_| bad_key("not UTF-8".into()))?;
    let key = VerifierKey::parse(key_text.trim_end()).map_err(|e| bad_key(e.to_string()))?;
    if key.name != name {
        return Err(bad_key(format!("it is the key of {:?}", key.name)).into());
    }
    if let Some(prev) = c.prev_file(&key_path) {
        if prev != key_text.as_bytes() {
            return Err(bad_key("it is not the key the previous generation held".into()).into());
        }
    }
    let note = |file: String, bytes: &[u8]| -> Result<Tree, GoSumdbError> {
        key.open(bytes)
            .and_then(parse_tree)
            .map_err(|error| GoSumdbError::BadNote {
                source_name: source.clone(),
                name: name.into(),
                file,
                error,
            })
    };
    let latest_path = path(SumdbFile::Latest);
    let latest = note(latest_path.clone(), &c.read(&latest_path)?)?;
    let mut fetch = |p: &str| -> Result<Vec<u8>, String> {
        let t = Tile::parse(p).ok_or_else(|| format!("{p} is not a tile"))?;
        if !db.tiles.contains(&t) {
            return Err(format!("{p} is not carried"));
        }
        std::fs::read(c.file(&path(SumdbFile::Tile(t)))).map_err(|e| e.to_string())
    };
    let (size, root) = (latest.size, latest.hash);
    let proof = |what: String, error: TlogError| GoSumdbError::Proof {
        source_name: source.clone(),
        name: name.into(),
        what,
        error,
    };
    check_tiles(size, &root, &db.tiles, &mut fetch)
        .map_err(|e| proof(format!("the tiles of {latest_path}"), e))?;
    // Every head carried, and the one served before, is consistent.
    let mut heads = BTreeMap::new();
    for s in &db.heads {
        let p = path(SumdbFile::Head { size: *s });
        heads.insert(p.clone(), c.read(&p)?);
    }
    if let Some(prev) = c.prev_file(&latest_path) {
        heads.insert(format!("{latest_path} of the previous generation"), prev);
    }
    for (p, bytes) in heads {
        let t = note(p.clone(), &bytes)?;
        prove_consistency(t.size, &t.hash, size, &root, &mut fetch)
            .map_err(|e| proof(format!("{p} against {latest_path}"), e))?;
    }
    // Every record included, and every version has one that agrees.
    let records: BTreeMap<_, _> = db.records.iter().map(|r| (r, ())).collect();
    for (module, version) in versions {
        let bad = |reason: String| GoSumdbError::BadRecord {
            source_name: source.clone(),
            name: name.into(),
            module: module.clone(),
            version: version.clone(),
            reason,
        };
        let rp = path(SumdbFile::Record {
            module: module.clone(),
            version: version.clone(),
        });
        if !records.contains_key(&(module.clone(), version.clone())) {
            return Err(bad(format!("{rp} is not held")).into());
        }
        let (id, record) =
            parse_stored_record(&c.read(&rp)?, module, version).map_err(|e| bad(e.to_string()))?;
        let lines = parse_gosum(record.as_bytes()).map_err(|e| bad(e.to_string()))?;
        let sums = parse_gosum(&c.read(&checksums_path(module, version))?)
            .map_err(|e| bad(e.to_string()))?;
        if let Some(l) = sums.iter().find(|l| !lines.contains(l)) {
            return Err(bad(format!(
                "the database's record does not hold {}",
                l.to_line().trim_end()
            ))
            .into());
        }
        prove_inclusion(record.as_bytes(), id, size, &root, &mut fetch)
            .map_err(|e| proof(format!("{rp}"), e))?;
    }
    if db.records.len() != versions.len() {
        let (m, v) = db
            .records
            .iter()
            .find(|r| !versions.contains(r))
            .expect("a record of no carried version");
        return Err(GoSumdbError::BadRecord {
            source_name: source,
            name: name.into(),
            module: m.clone(),
            version: v.clone(),
            reason: "a record of a version the source does not carry".into(),
        }
        .into());
    }
    Ok(())
}
