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
use std::collections::{BTreeMap, BTreeSet};

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
    pub(super) records: BTreeSet<(String, String)>,
    pub(super) tiles: BTreeSet<Tile>,
}

impl Db {
    pub(super) fn add(&mut self, file: &SumdbFile) {
        match file {
            SumdbFile::Key => self.key = true,
            SumdbFile::Latest => self.latest = true,
            SumdbFile::Head { size } => self.heads.push(*size),
            SumdbFile::Record { module, version } => {
                self.records.insert((module.clone(), version.clone()));
            }
            SumdbFile::Tile(t) => {
                self.tiles.insert(*t);
            }
        }
    }
}

/// Checks one database of one source; `versions` are the versions the
/// source carries (each needs a record).
pub(super) fn check(c: &Ctx<'_>, name: &str, db: &Db, versions: &[(String, String)]) -> Result<()> {
    let source = c.source.to_string();
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
    let key = checked_key(c, name)?;
    let k = Checker {
        c,
        name,
        db,
        key,
        size: 0,
        root: [0; 32],
        read: Default::default(),
    };
    let latest_path = sumdb_path(name, &SumdbFile::Latest);
    let latest = k.note(&latest_path, &c.read(&latest_path)?)?;
    let k = Checker {
        size: latest.size,
        root: latest.hash,
        ..k
    };
    let tiles: Vec<Tile> = db.tiles.iter().copied().collect();
    check_tiles(k.size, &k.root, &tiles, &mut |p| k.fetch(p))
        .map_err(|e| k.proof(format!("the tiles of {latest_path}"), e))?;
    // Every head carried, and the one served before, is consistent.
    let mut heads = BTreeMap::new();
    for s in &db.heads {
        let p = sumdb_path(name, &SumdbFile::Head { size: *s });
        heads.insert(p.clone(), c.read(&p)?);
    }
    if let Some(prev) = c.prev_file(&latest_path) {
        heads.insert(format!("{latest_path} of the previous generation"), prev);
    }
    for (p, bytes) in heads {
        let t = k.note(&p, &bytes)?;
        prove_consistency(t.size, &t.hash, k.size, &k.root, &mut |p| k.fetch(p))
            .map_err(|e| k.proof(format!("{p} against {latest_path}"), e))?;
    }
    k.records(versions)
}

/// The key, checked: it parses, is named `name`, and is the key the
/// previous generation held.
fn checked_key(c: &Ctx<'_>, name: &str) -> Result<VerifierKey, GoSumdbError> {
    let bad_key = |reason: String| GoSumdbError::BadKey {
        source_name: c.source.to_string(),
        name: name.into(),
        reason,
    };
    let key_path = sumdb_path(name, &SumdbFile::Key);
    let bytes = c.read(&key_path).map_err(|e| bad_key(format!("{e:#}")))?;
    let key_text = String::from_utf8(bytes).map_err(|_| bad_key("not UTF-8".into()))?;
    let key = VerifierKey::parse(key_text.trim_end()).map_err(|e| bad_key(e.to_string()))?;
    if key.name != name {
        return Err(bad_key(format!("it is the key of {:?}", key.name)));
    }
    if let Some(prev) = c.prev_file(&key_path) {
        if prev != key_text.as_bytes() {
            return Err(bad_key(
                "it is not the key the previous generation held".into(),
            ));
        }
    }
    Ok(key)
}

/// One database's checks, against its `latest` tree (`size`, `root`).
struct Checker<'a> {
    c: &'a Ctx<'a>,
    name: &'a str,
    db: &'a Db,
    key: VerifierKey,
    size: u64,
    root: [u8; 32],
    /// The tiles above level 0 read so far: each proof asks again for the
    /// tiles near the tree's top, which are read from disk once (level-0
    /// tiles, one or two a record, are not kept: a large database would
    /// make that cache as large as the records).
    read: std::cell::RefCell<BTreeMap<Tile, Vec<u8>>>,
}

impl Checker<'_> {
    /// A carried tile (only those).
    fn fetch(&self, p: &str) -> Result<Vec<u8>, String> {
        let t = Tile::parse(p).ok_or_else(|| format!("{p} is not a tile"))?;
        if !self.db.tiles.contains(&t) {
            return Err(format!("{p} is not carried"));
        }
        if let Some(bytes) = self.read.borrow().get(&t) {
            return Ok(bytes.clone());
        }
        let bytes = std::fs::read(self.c.file(&sumdb_path(self.name, &SumdbFile::Tile(t))))
            .map_err(|e| e.to_string())?;
        if t.level > 0 {
            self.read.borrow_mut().insert(t, bytes.clone());
        }
        Ok(bytes)
    }

    /// A tree head signed by the key.
    fn note(&self, file: &str, bytes: &[u8]) -> Result<Tree, GoSumdbError> {
        self.key
            .open(bytes)
            .and_then(parse_tree)
            .map_err(|error| GoSumdbError::BadNote {
                source_name: self.c.source.to_string(),
                name: self.name.into(),
                file: file.to_string(),
                error,
            })
    }

    fn proof(&self, what: String, error: TlogError) -> GoSumdbError {
        GoSumdbError::Proof {
            source_name: self.c.source.to_string(),
            name: self.name.into(),
            what,
            error,
        }
    }

    /// Every version has a record that agrees with its `checksums` and is
    /// included; no record is of another version.
    fn records(&self, versions: &[(String, String)]) -> Result<()> {
        let bad = |(module, version): &(String, String), reason: String| GoSumdbError::BadRecord {
            source_name: self.c.source.to_string(),
            name: self.name.into(),
            module: module.clone(),
            version: version.clone(),
            reason,
        };
        let carried: BTreeSet<&(String, String)> = versions.iter().collect();
        if let Some(r) = self.db.records.iter().find(|r| !carried.contains(r)) {
            let why = "a record of a version the source does not carry";
            return Err(bad(r, why.into()).into());
        }
        for v in versions {
            let (module, version) = v;
            let rp = sumdb_path(
                self.name,
                &SumdbFile::Record {
                    module: module.clone(),
                    version: version.clone(),
                },
            );
            if !self.db.records.contains(v) {
                return Err(bad(v, format!("{rp} is not held")).into());
            }
            let (id, record) = parse_stored_record(&self.c.read(&rp)?, module, version)
                .map_err(|e| bad(v, e.to_string()))?;
            let lines = parse_gosum(record.as_bytes()).map_err(|e| bad(v, e.to_string()))?;
            let sums = parse_gosum(&self.c.read(&checksums_path(module, version))?)
                .map_err(|e| bad(v, e.to_string()))?;
            if let Some(l) = sums.iter().find(|l| !lines.contains(l)) {
                let line = l.to_line();
                let why = format!("the database's record does not hold {}", line.trim_end());
                return Err(bad(v, why).into());
            }
            prove_inclusion(record.as_bytes(), id, self.size, &self.root, &mut |p| {
                self.fetch(p)
            })
            .map_err(|e| self.proof(rp.clone(), e))?;
        }
        Ok(())
    }
}
