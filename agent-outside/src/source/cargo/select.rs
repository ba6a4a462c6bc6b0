//! Selection and closure: the versions each requirement and lockfile keeps,
//! and (with `dependencies`) the versions their dependencies need, level by
//! level (each level's index files fetched at once) until nothing new
//! appears.

use super::lock::read_lockfile;
use super::registry::Registry;
use super::{CargoSource, Unsatisfiable, Versions};
use anyhow::Result;
use ferry_formats::cargo::{DepKind, Entry};
use semver::{Op, Version, VersionReq};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use thiserror::Error;

/// Why a cargo source refuses what upstream (or a lockfile) says. Each
/// names the crate and, where there is one, the version.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CargoError {
    /// A crate the settings name is not on the registry.
    #[error("crate {krate} is not on the registry")]
    NotOnRegistry {
        /// The crate.
        krate: String,
    },
    /// No version of a crate the settings name matches its requirement.
    #[error(
        "crate {krate}: no version matches {req:?} (yanked versions only for an exact =x.y.z)"
    )]
    NoMatch {
        /// The crate.
        krate: String,
        /// The requirement.
        req: String,
    },
    /// A dependency no version on the registry satisfies.
    #[error("crate {krate} {version} depends on {dep} {req:?} ({kind}), which no version on the registry satisfies")]
    Unsatisfiable {
        /// The depending crate.
        krate: String,
        /// Its version.
        version: String,
        /// The crate depended on.
        dep: String,
        /// The requirement.
        req: String,
        /// `normal`, `build` or `dev`.
        kind: String,
    },
    /// A dependency requirement that is not a semver requirement.
    #[error("crate {krate} {version}: malformed index entry: dependency {dep} has requirement {req:?}, not a semver requirement")]
    BadRequirement {
        /// The depending crate.
        krate: String,
        /// Its version.
        version: String,
        /// The crate depended on.
        dep: String,
        /// The requirement.
        req: String,
    },
    /// A locked version the registry does not list.
    #[error("lockfile {lockfile}: crate {krate} {version} is not on the registry")]
    LockedMissing {
        /// The lockfile.
        lockfile: String,
        /// The crate.
        krate: String,
        /// The version.
        version: String,
    },
    /// A lockfile's checksum that is not the index's.
    #[error("lockfile {lockfile}: crate {krate} {version} has checksum {locked}, the index's cksum is {index}")]
    LockChecksum {
        /// The lockfile.
        lockfile: String,
        /// The crate.
        krate: String,
        /// The version.
        version: String,
        /// The lockfile's checksum.
        locked: String,
        /// The index's.
        index: String,
    },
}

/// The versions kept of one crate, with its index file.
pub(super) struct Chosen {
    /// Upstream's entries, in its order.
    pub(super) entries: Arc<Vec<Entry>>,
    /// The versions kept.
    pub(super) versions: BTreeSet<Version>,
}

/// What a scan selected, by lower-case crate name.
pub(super) type Selected = BTreeMap<String, Chosen>;

/// Whether `req` names one exact version (`=1.2.3`).
fn is_exact(req: &VersionReq) -> bool {
    matches!(req.comparators.as_slice(), [c] if c.op == Op::Exact && c.patch.is_some())
}

/// The versions of `entries` matching `req`, newest first; yanked ones only
/// when `yanked_ok`.
fn matching<'e>(entries: &'e [Entry], req: &VersionReq, yanked_ok: bool) -> Vec<&'e Entry> {
    let mut m: Vec<&Entry> = entries
        .iter()
        .filter(|e| req.matches(&e.version) && (yanked_ok || !e.line.yanked))
        .collect();
    m.sort_by(|a, b| b.version.cmp(&a.version));
    m
}

impl CargoSource {
    /// Resolves the roots and the closure against `registry`.
    pub(super) fn resolve(&self, registry: &Registry) -> Result<Selected> {
        let mut selected = Selected::new();
        let mut level: Vec<(String, Version)> = Vec::new();
        let names: Vec<String> = self.crates.iter().map(|(n, _)| n.clone()).collect();
        registry.prefetch(&names)?;
        for (name, req) in &self.crates {
            let entries = registry
                .get(name)?
                .ok_or_else(|| CargoError::NotOnRegistry {
                    krate: name.clone(),
                })?;
            let found = matching(&entries, req, is_exact(req));
            let keep: Vec<&Entry> = match self.versions {
                Versions::Latest => found.into_iter().take(1).collect(),
                Versions::All => found,
            };
            if keep.is_empty() {
                return Err(CargoError::NoMatch {
                    krate: name.clone(),
                    req: req.to_string(),
                }
                .into());
            }
            for e in keep {
                if add(&mut selected, &entries, &e.version) {
                    level.push((name.to_ascii_lowercase(), e.version.clone()));
                }
            }
        }
        let pinned: Vec<String> = self.pins.iter().map(|(n, _)| n.clone()).collect();
        registry.prefetch(&pinned)?;
        for (name, version) in &self.pins {
            // A pin upstream lacks is kept from the last bundle (`pins`).
            let Some(entries) = registry.get(name)? else {
                continue;
            };
            if entries.iter().any(|e| e.version == *version)
                && add(&mut selected, &entries, version)
            {
                level.push((name.to_ascii_lowercase(), version.clone()));
            }
        }
        self.add_locked(registry, &mut selected)?;
        while self.dependencies && !level.is_empty() {
            level = self.next_level(registry, &mut selected, &level)?;
        }
        Ok(selected)
    }

    /// Every lockfile's registry packages, exactly.
    fn add_locked(&self, registry: &Registry, selected: &mut Selected) -> Result<()> {
        for file in &self.lockfiles {
            let lockfile = file.display().to_string();
            let src = &self.name;
            let locked = read_lockfile(file, &mut |name, source| {
                eprintln!(
                    "ferry-out: warning: source {src:?}: lockfile {lockfile}: {name} comes from {source}, not a registry; not carried"
                );
            })?;
            let names: Vec<String> = locked.iter().map(|l| l.name.clone()).collect();
            registry.prefetch(&names)?;
            for l in locked {
                let missing = || CargoError::LockedMissing {
                    lockfile: lockfile.clone(),
                    krate: l.name.clone(),
                    version: l.version.to_string(),
                };
                let entries = registry.get(&l.name)?.ok_or_else(missing)?;
                let entry = entries
                    .iter()
                    .find(|e| e.version == l.version)
                    .ok_or_else(missing)?;
                if let Some(sum) = l.checksum.as_deref().filter(|s| *s != entry.line.cksum) {
                    return Err(CargoError::LockChecksum {
                        lockfile: lockfile.clone(),
                        krate: l.name.clone(),
                        version: l.version.to_string(),
                        locked: sum.to_string(),
                        index: entry.line.cksum.clone(),
                    }
                    .into());
                }
                add(selected, &entries, &l.version);
            }
        }
        Ok(())
    }

    /// The dependencies of one level of newly kept versions: returns the
    /// versions they newly add.
    fn next_level(
        &self,
        registry: &Registry,
        selected: &mut Selected,
        level: &[(String, Version)],
    ) -> Result<Vec<(String, Version)>> {
        let mut wanted = Vec::new();
        for (name, version) in level {
            let chosen = &selected[name];
            let entry = chosen
                .entries
                .iter()
                .find(|e| e.version == *version)
                .expect("a kept version is in its index file");
            for d in &entry.line.deps {
                if !self.follows(&entry.line.name, version, d) {
                    continue;
                }
                let req = VersionReq::parse(&d.req).map_err(|_| CargoError::BadRequirement {
                    krate: entry.line.name.clone(),
                    version: version.to_string(),
                    dep: d.crate_name().to_string(),
                    req: d.req.clone(),
                })?;
                wanted.push((entry.line.name.clone(), version.clone(), d.clone(), req));
            }
        }
        let names: Vec<String> = wanted
            .iter()
            .map(|(_, _, d, _)| d.crate_name().to_string())
            .collect();
        registry.prefetch(&names)?;
        let mut next = Vec::new();
        for (krate, version, d, req) in wanted {
            let entries = registry.get(d.crate_name())?;
            let best = entries
                .as_ref()
                .and_then(|es| matching(es, &req, false).first().map(|e| e.version.clone()));
            match (entries, best) {
                (Some(es), Some(v)) => {
                    if add(selected, &es, &v) {
                        next.push((d.crate_name().to_ascii_lowercase(), v));
                    }
                }
                _ => self.unsatisfied(CargoError::Unsatisfiable {
                    krate,
                    version: version.to_string(),
                    dep: d.crate_name().to_string(),
                    req: d.req.clone(),
                    kind: format!("{:?}", d.kind()).to_lowercase(),
                })?,
            }
        }
        Ok(next)
    }

    /// Whether dependency `d` of `krate` `version` is followed.
    fn follows(
        &self,
        krate: &str,
        version: &Version,
        d: &ferry_formats::cargo::Dependency,
    ) -> bool {
        if d.kind() == DepKind::Dev && !self.dev_dependencies {
            return false;
        }
        if d.optional && !self.optional_dependencies {
            return false;
        }
        if let Some(other) = &d.registry {
            eprintln!(
                "ferry-out: warning: source {:?}: crate {krate} {version} depends on {} from another registry ({other}); not followed",
                self.name,
                d.crate_name()
            );
            return false;
        }
        true
    }

    /// A dependency nothing satisfies: a warning, or the error.
    fn unsatisfied(&self, e: CargoError) -> Result<()> {
        match self.unsatisfiable {
            Unsatisfiable::Warn => {
                eprintln!("ferry-out: warning: source {:?}: {e}", self.name);
                Ok(())
            }
            Unsatisfiable::Error => Err(e.into()),
        }
    }
}

/// Keeps `version` of the crate whose index file is `entries`; whether it is
/// new.
fn add(selected: &mut Selected, entries: &Arc<Vec<Entry>>, version: &Version) -> bool {
    let name = entries
        .first()
        .map(|e| e.line.name.to_ascii_lowercase())
        .unwrap_or_default();
    selected
        .entry(name)
        .or_insert_with(|| Chosen {
            entries: entries.clone(),
            versions: BTreeSet::new(),
        })
        .versions
        .insert(version.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_formats::cargo::parse_index;

    fn line(vers: &str, yanked: bool) -> String {
        format!(
            r#"{{"name":"a","vers":"{vers}","deps":[],"cksum":"{}","features":{{}},"yanked":{yanked}}}"#,
            "0".repeat(64)
        )
    }

    #[test]
    fn newest_unyanked_match_first_and_yanked_only_when_asked() {
        let text = [
            line("1.0.0", false),
            line("1.2.0", true),
            line("1.1.0", false),
            line("2.0.0-rc.1", false),
        ]
        .join("\n");
        let es = parse_index(text.as_bytes(), "a").unwrap();
        let req = VersionReq::parse("1").unwrap();
        let got: Vec<String> = matching(&es, &req, false)
            .iter()
            .map(|e| e.version.to_string())
            .collect();
        assert_eq!(got, ["1.1.0", "1.0.0"]);
        assert_eq!(matching(&es, &req, true)[0].version.to_string(), "1.2.0");
        assert!(is_exact(&VersionReq::parse("=1.2.0").unwrap()));
        assert!(!is_exact(&VersionReq::parse("=1.2").unwrap()));
        assert!(!is_exact(&req));
        let pre = VersionReq::parse(">=1.5").unwrap();
        assert!(
            matching(&es, &pre, false).is_empty(),
            "no pre-release unless asked"
        );
    }
}
