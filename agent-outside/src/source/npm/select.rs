//! Selection and closure: packuments fetched once each, the versions each
//! range and lockfile keeps, and the dependencies they pull in, followed
//! until nothing new appears.

use super::NpmSource;
use anyhow::{Context, Result};
use ferry_formats::npm::{matches_any, parse_lockfile, parse_range, Packument};
use semver::{Version, VersionReq};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use thiserror::Error;

/// The largest packument read.
const MAX_PACKUMENT: u64 = 128 << 20;

/// Why an npm source refuses what upstream (or a lockfile) says.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum NpmError {
    /// A package the settings or a lockfile name is not on the registry.
    #[error("package {package} is not on the registry")]
    NotOnRegistry {
        /// The package.
        package: String,
    },
    /// No version of a package the settings name matches its range.
    #[error("package {package}: no version matches {range:?}")]
    NoMatch {
        /// The package.
        package: String,
        /// The range.
        range: String,
    },
    /// A dependency no version satisfies.
    #[error("package {package} {version} depends on {dep} {spec:?}, which no version on the registry satisfies")]
    Unsatisfiable {
        /// The depending package.
        package: String,
        /// Its version.
        version: String,
        /// The package depended on.
        dep: String,
        /// The spec.
        spec: String,
    },
    /// A locked version the registry does not list (unpublished).
    #[error("lockfile {lockfile}: package {package} {version} is not on the registry")]
    LockedMissing {
        /// The lockfile.
        lockfile: String,
        /// The package.
        package: String,
        /// The version.
        version: String,
    },
}

/// The versions kept of one package, with its packument.
pub(super) struct Chosen {
    pub(super) packument: Arc<Packument>,
    pub(super) versions: BTreeSet<Version>,
}

/// What a scan selected, by package name.
pub(super) type Selected = BTreeMap<String, Chosen>;

/// The version a range picks: the `latest` tag when it matches, else the
/// newest match not deprecated, else the newest match.
fn pick(p: &Packument, reqs: &[VersionReq]) -> Option<Version> {
    let latest = p
        .dist_tags
        .get("latest")
        .and_then(|v| Version::parse(v).ok())
        .filter(|v| p.versions.contains_key(v) && matches_any(reqs, v));
    if latest.is_some() {
        return latest;
    }
    let mut matching = p
        .versions
        .values()
        .rev()
        .filter(|v| matches_any(reqs, &v.version));
    let first = matching.clone().next().map(|v| v.version.clone());
    matching
        .find(|v| v.meta.deprecated.is_none())
        .map(|v| v.version.clone())
        .or(first)
}

/// A dependency spec as a package and the ranges it allows; `None` for a
/// spec that is not from the registry (git, file, URL).
fn spec_of(p: &Packument, spec: &str) -> Option<Vec<VersionReq>> {
    if let Ok(r) = parse_range(spec) {
        return Some(r);
    }
    let v = p.dist_tags.get(spec.trim())?;
    parse_range(&format!("={v}")).ok()
}

impl NpmSource {
    /// Fetches a packument (cached for the scan); `None` on 404.
    fn packument(
        &self,
        cache: &mut HashMap<String, Option<Arc<Packument>>>,
        name: &str,
    ) -> Result<Option<Arc<Packument>>> {
        if let Some(p) = cache.get(name) {
            return Ok(p.clone());
        }
        let url = self.registry.join(&name.replace('/', "%2f"))?;
        let got = self
            .client
            .get_small(url.as_str(), MAX_PACKUMENT)
            .with_context(|| format!("cannot read the packument of {name}"))?;
        let p = match got {
            None => None,
            Some(bytes) => Some(Arc::new(
                Packument::parse(&bytes, name)
                    .with_context(|| format!("package {name}: malformed packument {url}"))?,
            )),
        };
        cache.insert(name.to_string(), p.clone());
        Ok(p)
    }

    /// Resolves the packages, the lockfiles and the closure.
    pub(super) fn resolve(&self) -> Result<Selected> {
        let mut cache = HashMap::new();
        let mut selected = Selected::new();
        let mut queue = VecDeque::new();
        for (name, reqs) in &self.packages {
            let p = self
                .packument(&mut cache, name)?
                .ok_or_else(|| NpmError::NotOnRegistry {
                    package: name.clone(),
                })?;
            let keep: Vec<Version> = if self.all_versions {
                p.versions
                    .keys()
                    .filter(|v| matches_any(reqs, v))
                    .cloned()
                    .collect()
            } else {
                pick(&p, reqs).into_iter().collect()
            };
            if keep.is_empty() {
                let range = reqs
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" || ");
                return Err(NpmError::NoMatch {
                    package: name.clone(),
                    range,
                }
                .into());
            }
            for v in keep {
                if add(&mut selected, &p, &v) {
                    queue.push_back((name.clone(), v));
                }
            }
        }
        for (name, version) in &self.pins {
            let listed = self
                .packument(&mut cache, name)?
                .filter(|p| p.versions.contains_key(version));
            // A pin upstream no longer lists is kept by `pins`, not here.
            if let Some(p) = listed {
                if add(&mut selected, &p, version) {
                    queue.push_back((name.clone(), version.clone()));
                }
            }
        }
        self.add_locked(&mut cache, &mut selected)?;
        while let Some((name, version)) = queue.pop_front() {
            if !self.dependencies {
                break;
            }
            let meta = selected[&name].packument.versions[&version].meta.clone();
            let mut deps: Vec<(&String, &String)> = meta.dependencies.iter().collect();
            if self.optional_dependencies {
                deps.extend(meta.optional_dependencies.iter());
            }
            if self.peer_dependencies {
                deps.extend(meta.peer_dependencies.iter());
            }
            for (dep, spec) in deps {
                let (dep, spec) = match spec.strip_prefix("npm:").and_then(|a| a.rsplit_once('@')) {
                    Some((real, range)) if !real.is_empty() => {
                        (real.to_string(), range.to_string())
                    }
                    _ => (dep.clone(), spec.clone()),
                };
                let p = self.packument(&mut cache, &dep)?;
                let Some(reqs) = p.as_ref().map(|p| spec_of(p, &spec)) else {
                    self.unsatisfied(NpmError::Unsatisfiable {
                        package: name.clone(),
                        version: version.to_string(),
                        dep,
                        spec,
                    })?;
                    continue;
                };
                let Some(reqs) = reqs else {
                    eprintln!(
                        "ferry-out: warning: source {:?}: package {name} {version} depends on {dep} {spec:?}, not from the registry; not followed",
                        self.name
                    );
                    continue;
                };
                let p = p.expect("checked above");
                match pick(&p, &reqs) {
                    Some(v) => {
                        if add(&mut selected, &p, &v) {
                            queue.push_back((dep, v));
                        }
                    }
                    None => self.unsatisfied(NpmError::Unsatisfiable {
                        package: name.clone(),
                        version: version.to_string(),
                        dep,
                        spec,
                    })?,
                }
            }
        }
        Ok(selected)
    }

    /// Every lockfile's registry packages, exactly.
    fn add_locked(
        &self,
        cache: &mut HashMap<String, Option<Arc<Packument>>>,
        selected: &mut Selected,
    ) -> Result<()> {
        for file in &self.lockfiles {
            let lockfile = file.display().to_string();
            let bytes = std::fs::read(file).with_context(|| format!("cannot read {lockfile}"))?;
            let locked = parse_lockfile(&bytes).with_context(|| format!("lockfile {lockfile}"))?;
            for l in locked {
                let missing = || NpmError::LockedMissing {
                    lockfile: lockfile.clone(),
                    package: l.name.clone(),
                    version: l.version.to_string(),
                };
                let p = self.packument(cache, &l.name)?.ok_or_else(missing)?;
                if !p.versions.contains_key(&l.version) {
                    return Err(missing().into());
                }
                add(selected, &p, &l.version);
            }
        }
        Ok(())
    }

    fn unsatisfied(&self, e: NpmError) -> Result<()> {
        if self.unsatisfiable_is_error {
            return Err(e.into());
        }
        eprintln!("ferry-out: warning: source {:?}: {e}", self.name);
        Ok(())
    }
}

/// Keeps `version` of `p`; whether it is new.
fn add(selected: &mut Selected, p: &Arc<Packument>, version: &Version) -> bool {
    selected
        .entry(p.name.clone())
        .or_insert_with(|| Chosen {
            packument: p.clone(),
            versions: BTreeSet::new(),
        })
        .versions
        .insert(version.clone())
}
