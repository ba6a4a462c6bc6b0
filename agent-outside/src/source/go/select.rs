//! Which versions are carried: the `modules` queries and their `require`
//! closure, the `go.sum` versions exactly; each `.info` and `.mod` fetched,
//! parsed and its `go.mod` checked against the expected hash.

use super::sums::{Expected, GoSums};
use super::{GoSource, Op, Query};
use crate::source::ScanCtx;
use anyhow::Result;
use ferry_formats::go::gomod::GoMod;
use ferry_formats::go::hash::{go_mod_h1, MAX_GO_MOD};
use ferry_formats::go::{escape, GoVersion, Info};
use std::collections::{BTreeMap, VecDeque};

/// The largest `@v/list` or `.info` read.
const MAX_SMALL: u64 = 4 << 20;

/// Why a module version is not carried. Each names the module and version.
#[derive(Debug, thiserror::Error)]
pub enum GoError {
    /// The proxy knows no version of the module.
    #[error("module {module} is not on the proxy")]
    NotOnProxy {
        /// The module path.
        module: String,
    },
    /// No version of the module matches the query.
    #[error("module {module}: no version matches {query:?}")]
    NoMatch {
        /// The module path.
        module: String,
        /// The query.
        query: String,
    },
    /// A required version the proxy does not have.
    #[error("module {module} {version} (required by {required_by}) is not on the proxy")]
    Missing {
        /// The module path.
        module: String,
        /// The version.
        version: String,
        /// `module@version` requiring it.
        required_by: String,
    },
    /// A `.info`, `.mod` or zip that is not one.
    #[error("module {module} {version}: malformed {file}: {reason}")]
    Malformed {
        /// The module path.
        module: String,
        /// The version.
        version: String,
        /// `info`, `go.mod` or `zip`.
        file: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A hash that is not the expected one.
    #[error("module {module} {version}: {file} checksum mismatch: {against} says {expected}, {url} has {got} (tampered or corrupted upstream)")]
    Mismatch {
        /// The module path.
        module: String,
        /// The version.
        version: String,
        /// `zip` or `go.mod`.
        file: &'static str,
        /// Where the file came from.
        url: String,
        /// The hash expected.
        expected: String,
        /// The hash found.
        got: String,
        /// Where the expected hash comes from.
        against: String,
    },
    /// Neither a `go.sum` line nor a checksum database gives the hash.
    #[error(
        "module {module} {version}: no go.sum line or checksum database gives the {file}'s hash"
    )]
    NoChecksum {
        /// The module path.
        module: String,
        /// The version.
        version: String,
        /// `zip` or `go.mod`.
        file: &'static str,
    },
    /// The checksum database's tree head or tiles are missing or do not
    /// verify (a bad signature, a record outside the tree, a tile that
    /// does not lead to the signed root, a fork since the last export).
    #[error("checksum database {name}: {reason}")]
    SumdbTree {
        /// The database's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The checksum database's answer is missing or does not verify.
    #[error("module {module} {version}: checksum database: {reason}")]
    Sumdb {
        /// The module path.
        module: String,
        /// The version.
        version: String,
        /// What is wrong.
        reason: String,
    },
}

/// One carried version.
pub(super) struct Picked {
    /// The `.info` file as upstream sent it.
    pub(super) info: Vec<u8>,
    /// The `.mod` file.
    pub(super) go_mod: Vec<u8>,
    /// The zip's expected hash, when the zip is carried.
    pub(super) zip_h1: Option<String>,
    /// The `go.mod`'s hash (checked).
    pub(super) mod_h1: String,
}

/// Carried versions by module path, then version.
pub(super) type Selected = BTreeMap<String, BTreeMap<String, Picked>>;

/// A version to look at: carry its zip; follow its requires; who asked.
struct Want {
    module: String,
    version: String,
    zip: bool,
    follow: bool,
    required_by: Option<String>,
}

impl GoSource {
    /// Resolves the queries and the closure, fetching and checking each
    /// version's `.info` and `.mod`.
    pub(super) fn resolve(&self, cx: &ScanCtx<'_>) -> Result<Selected> {
        let gosums = self.read_gosums()?;
        let mut queue = VecDeque::new();
        for ((module, version), e) in &gosums {
            queue.push_back(Want {
                module: module.clone(),
                version: version.clone(),
                zip: e.zip.is_some(),
                follow: false,
                required_by: None,
            });
        }
        for (module, text, query) in &self.modules {
            let version = self.pick(module, text, query)?;
            queue.push_back(Want {
                module: module.clone(),
                version,
                zip: true,
                follow: true,
                required_by: None,
            });
        }
        let mut selected = Selected::new();
        let mut followed = std::collections::HashSet::new();
        while let Some(w) = queue.pop_front() {
            let have = selected.get(&w.module).and_then(|m| m.get(&w.version));
            let need_zip = w.zip && have.is_none_or(|p| p.zip_h1.is_none());
            if have.is_none() || need_zip {
                let Some(p) = self.fetch(cx, &gosums, &w)? else {
                    continue;
                };
                let entry = selected.entry(w.module.clone()).or_default();
                match entry.get_mut(&w.version) {
                    Some(old) => old.zip_h1 = old.zip_h1.take().or(p.zip_h1),
                    None => {
                        entry.insert(w.version.clone(), p);
                    }
                }
            }
            if w.follow
                && self.dependencies
                && followed.insert((w.module.clone(), w.version.clone()))
            {
                let p = &selected[&w.module][&w.version];
                let m = GoMod::parse(&p.go_mod, Some(&w.module))
                    .map_err(|e| malformed(&w, "go.mod", e))?;
                for r in m.requires {
                    queue.push_back(Want {
                        module: r.path,
                        version: r.version,
                        zip: true,
                        follow: true,
                        required_by: Some(format!("{}@{}", w.module, w.version)),
                    });
                }
            }
        }
        Ok(selected)
    }

    /// The version a query picks, from `@v/list` (or `@latest`).
    fn pick(&self, module: &str, text: &str, query: &Query) -> Result<String> {
        if let Query::Exact(v) = query {
            return Ok(v.clone());
        }
        let base = self.proxy.join(&format!("{}/", escape(module)))?;
        let list = self
            .client
            .get_small(base.join("@v/list")?.as_str(), MAX_SMALL)?;
        let mut versions: Vec<GoVersion> = list
            .as_deref()
            .map(String::from_utf8_lossy)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| GoVersion::parse(l.trim()).ok())
            .collect();
        versions.sort();
        let release = |v: &&GoVersion| v.is_release();
        let found = match query {
            Query::Exact(_) => unreachable!("handled above"),
            Query::Latest => versions
                .iter()
                .rfind(release)
                .or(versions.last())
                .map(|v| v.text.clone()),
            Query::Prefix(p) => versions
                .iter()
                .filter(release)
                .rfind(|v| v.text == *p || v.text.starts_with(&format!("{p}.")))
                .map(|v| v.text.clone()),
            Query::Compare(c) => versions
                .iter()
                .filter(release)
                .rfind(|v| c.iter().all(|(op, b)| compare(*op, &v.semver, b)))
                .map(|v| v.text.clone()),
        };
        if let Some(v) = found {
            return Ok(v);
        }
        if matches!(query, Query::Latest) {
            if let Some(b) = self
                .client
                .get_small(base.join("@latest")?.as_str(), MAX_SMALL)?
            {
                if let Ok(i) = Info::parse(&b, None) {
                    return Ok(i.version);
                }
            }
            if list.is_none() {
                return Err(GoError::NotOnProxy {
                    module: module.to_string(),
                }
                .into());
            }
        }
        Err(GoError::NoMatch {
            module: module.to_string(),
            query: text.to_string(),
        }
        .into())
    }

    /// Fetches and checks a version's `.info` and `.mod`; `None` when a
    /// required version is missing and that is only a warning.
    fn fetch(&self, cx: &ScanCtx<'_>, gosums: &GoSums, w: &Want) -> Result<Option<Picked>> {
        let dir = self.proxy.join(&format!("{}/@v/", escape(&w.module)))?;
        let ev = escape(&w.version);
        let go_mod = self
            .client
            .get_small(dir.join(&format!("{ev}.mod"))?.as_str(), MAX_GO_MOD)?;
        let info = self
            .client
            .get_small(dir.join(&format!("{ev}.info"))?.as_str(), MAX_SMALL)?;
        let (Some(go_mod), Some(info)) = (go_mod, info) else {
            let e = match &w.required_by {
                Some(by) => GoError::Missing {
                    module: w.module.clone(),
                    version: w.version.clone(),
                    required_by: by.clone(),
                },
                None => GoError::NoMatch {
                    module: w.module.clone(),
                    query: w.version.clone(),
                },
            };
            if w.required_by.is_some() && !self.unsatisfiable_is_error {
                eprintln!("warning: source {:?}: {e}; not carried", self.name);
                return Ok(None);
            }
            return Err(e.into());
        };
        Info::parse(&info, Some(&w.version)).map_err(|e| malformed(w, "info", e))?;
        GoMod::parse(&go_mod, Some(&w.module)).map_err(|e| malformed(w, "go.mod", e))?;
        let mut expected = gosums
            .get(&(w.module.clone(), w.version.clone()))
            .cloned()
            .unwrap_or_default();
        if expected.go_mod.is_none() || (w.zip && expected.zip.is_none()) {
            let db = self.lookup(cx, &w.module, &w.version)?;
            if expected.go_mod.is_none() {
                expected = Expected {
                    zip: expected.zip.or(db.zip.clone()),
                    ..db
                };
            } else {
                expected.zip = db.zip;
            }
        }
        let mod_url = dir.join(&format!("{ev}.mod"))?;
        let mod_h1 = check(
            w,
            ("go.mod", mod_url.as_str()),
            expected.go_mod.as_deref(),
            &go_mod_h1(&go_mod),
            &expected.from,
        )?;
        let zip_h1 = match (w.zip, expected.zip) {
            (false, _) => None,
            (true, Some(h)) => Some(h),
            (true, None) => {
                return Err(GoError::NoChecksum {
                    module: w.module.clone(),
                    version: w.version.clone(),
                    file: "zip",
                }
                .into())
            }
        };
        Ok(Some(Picked {
            info,
            go_mod,
            zip_h1,
            mod_h1,
        }))
    }
}

/// The hash `got`, if it is the one expected.
fn check(
    w: &Want,
    (file, url): (&'static str, &str),
    expected: Option<&str>,
    got: &str,
    from: &str,
) -> Result<String> {
    match expected {
        None => Err(GoError::NoChecksum {
            module: w.module.clone(),
            version: w.version.clone(),
            file,
        }
        .into()),
        Some(e) if e != got => Err(GoError::Mismatch {
            module: w.module.clone(),
            version: w.version.clone(),
            file,
            url: url.to_string(),
            expected: e.to_string(),
            got: got.to_string(),
            against: from.to_string(),
        }
        .into()),
        Some(e) => Ok(e.to_string()),
    }
}

fn malformed(w: &Want, file: &'static str, e: impl std::fmt::Display) -> GoError {
    GoError::Malformed {
        module: w.module.clone(),
        version: w.version.clone(),
        file,
        reason: e.to_string(),
    }
}

fn compare(op: Op, v: &semver::Version, b: &semver::Version) -> bool {
    match op {
        Op::Lt => v < b,
        Op::Le => v <= b,
        Op::Gt => v > b,
        Op::Ge => v >= b,
    }
}
