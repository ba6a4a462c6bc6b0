//! Selection and closure: which versions of each requirement to keep, their
//! wanted files, and (with `dependencies`) the requirements their
//! `Requires-Dist` adds, followed until nothing new appears.

use super::page::IndexFile;
use super::tags::parse_filename;
use super::{PypiSource, Versions};
use crate::source::ScanCtx;
use anyhow::{bail, Context, Result};
use ferry_formats::pypi::normalize;
use ferry_protocol::id::Sha256;
use pep508_rs::pep440_rs::{Operator, Version, VersionSpecifiers};
use pep508_rs::{ExtraName, Requirement, VersionOrUrl};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::str::FromStr;
use std::sync::Arc;

/// What a scan selected: project -> file name -> file.
pub(super) type Selected = BTreeMap<String, BTreeMap<String, IndexFile>>;

/// Whether a specifier set is an exact pin (`==X` without a wildcard, or `===`).
fn is_exact(spec: Option<&VersionSpecifiers>) -> bool {
    spec.is_some_and(|s| {
        s.iter()
            .any(|v| matches!(v.operator(), Operator::Equal | Operator::ExactEqual))
    })
}

/// Why a requirement is looked at.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Why {
    /// From `requirements`: it must resolve.
    Requirement,
    /// From `pin`: upstream may have dropped it.
    Pin,
    /// From a `Requires-Dist`: a warning when it does not resolve.
    Dependency,
}

impl Why {
    fn as_str(self) -> &'static str {
        match self {
            Why::Requirement => "requirement",
            Why::Pin => "pin",
            Why::Dependency => "dependency",
        }
    }
}

/// A version chosen for a project, with the files kept.
pub(super) struct Chosen {
    files: Vec<IndexFile>,
}

impl PypiSource {
    /// Picks the versions of `req` to keep from `page`; returns the files of
    /// each kept version, newest first.
    fn choose(&self, req: &Requirement, page: &[IndexFile]) -> Vec<(Version, Chosen)> {
        let spec = match &req.version_or_url {
            Some(VersionOrUrl::VersionSpecifier(s)) => Some(s),
            _ => None,
        };
        let allow_pre = spec.is_some_and(|s| s.iter().any(|v| v.version().any_prerelease()));
        let exact = is_exact(spec);
        let mut by_version: BTreeMap<Version, Vec<IndexFile>> = BTreeMap::new();
        for f in page {
            let Some(d) = parse_filename(&f.filename) else {
                continue;
            };
            let wanted = match d.tags {
                Some((py, abi, plat)) => self.targets.wheel_fits(py, abi, plat),
                None => self.sdists,
            };
            if !wanted || !self.targets.python_ok(f.requires_python.as_deref()) {
                continue;
            }
            let Ok(v) = Version::from_str(d.version) else {
                continue;
            };
            if v.any_prerelease() && !allow_pre {
                continue;
            }
            if spec.is_some_and(|s| !s.contains(&v)) {
                continue;
            }
            by_version.entry(v).or_default().push(f.clone());
        }
        let mut out = Vec::new();
        for (v, files) in by_version.into_iter().rev() {
            let usable = exact || files.iter().any(|f| f.yanked.is_none());
            match self.versions {
                Versions::All => out.push((v, Chosen { files })),
                Versions::Latest if usable => {
                    out.push((v, Chosen { files }));
                    break;
                }
                Versions::Latest => {}
            }
        }
        out
    }

    /// Resolves `requirements` and `pin` (and, with `dependencies`, the
    /// closure of their `Requires-Dist`) into the files to mirror. A
    /// requirement that cannot be met fails the scan; a pin or a dependency
    /// is a warning.
    pub(super) fn resolve(&self, cx: &ScanCtx<'_>) -> Result<Selected> {
        let mut pages: HashMap<String, Arc<Vec<IndexFile>>> = HashMap::new();
        let mut queue: VecDeque<(Requirement, Why)> = VecDeque::new();
        queue.extend(
            self.requirements
                .iter()
                .map(|r| (r.clone(), Why::Requirement)),
        );
        queue.extend(self.pins.iter().map(|r| (r.clone(), Why::Pin)));
        let mut done: HashSet<String> = HashSet::new();
        let mut selected = Selected::new();
        while let Some((req, why)) = queue.pop_front() {
            let project = normalize(req.name.as_ref());
            if !done.insert(requirement_key(&project, &req)) {
                continue;
            }
            let Some(page) = self.cached_page(&project, &req, why, &mut pages)? else {
                continue;
            };
            let chosen = self.choose(&req, &page);
            if chosen.is_empty() {
                self.nothing_fits(&project, &req, why)?;
                continue;
            }
            for (version, c) in chosen {
                self.select_files(&project, &c, &mut selected)?;
                if self.dependencies {
                    let deps = self.dependencies_of(cx, &project, &version, &req, &c)?;
                    queue.extend(deps.into_iter().map(|d| (d, Why::Dependency)));
                }
            }
        }
        Ok(selected)
    }

    /// A project's page, fetched once per scan. `None` (with a warning) when
    /// a pin's or a dependency's page cannot be read.
    fn cached_page(
        &self,
        project: &str,
        req: &Requirement,
        why: Why,
        pages: &mut HashMap<String, Arc<Vec<IndexFile>>>,
    ) -> Result<Option<Arc<Vec<IndexFile>>>> {
        if let Some(p) = pages.get(project) {
            return Ok(Some(p.clone()));
        }
        let src = &self.name;
        let p = match self.page(project) {
            Ok(p) => Arc::new(p),
            Err(e) if why == Why::Requirement => {
                return Err(e.context(format!("source {src:?}: requirement {req}")))
            }
            Err(e) => {
                eprintln!(
                    "ferry-out: warning: source {src:?}: {} {req}: {e:#}",
                    why.as_str()
                );
                return Ok(None);
            }
        };
        pages.insert(project.to_string(), p.clone());
        Ok(Some(p))
    }

    /// No version of `req` has a wanted file: an error for a requirement, a
    /// warning for a dependency; a pin upstream dropped is kept later, from
    /// the last bundle.
    fn nothing_fits(&self, project: &str, req: &Requirement, why: Why) -> Result<()> {
        let src = &self.name;
        let msg = format!(
            "no release of {project} on {} matches {req:?} with a file for python {:?} and platforms {:?}{}",
            self.index,
            self.targets
                .pythons
                .iter()
                .map(|(a, b)| format!("{a}.{b}"))
                .collect::<Vec<_>>(),
            self.targets.platforms,
            if self.sdists { " (or an sdist)" } else { "" }
        );
        match why {
            Why::Requirement => bail!("source {src:?}: {msg}"),
            Why::Pin => {}
            Why::Dependency => eprintln!("ferry-out: warning: source {src:?}: {msg}"),
        }
        Ok(())
    }

    /// Adds the files of a chosen version to `selected`; each must have a
    /// SHA-256 on the index, or nothing could verify it.
    fn select_files(&self, project: &str, c: &Chosen, selected: &mut Selected) -> Result<()> {
        let src = &self.name;
        for f in &c.files {
            let Some(sha) = &f.sha256 else {
                bail!(
                    "source {src:?}: the index gives no SHA-256 for {} ({}); ferry mirrors only files it can verify",
                    f.filename,
                    f.url
                );
            };
            if Sha256::from_hex(sha).is_none() {
                bail!(
                    "source {src:?}: the index's SHA-256 for {} is not 64 hex digits: {sha:?}",
                    f.filename
                );
            }
            selected
                .entry(project.to_string())
                .or_default()
                .insert(f.filename.clone(), f.clone());
        }
        Ok(())
    }

    /// The `Requires-Dist` of a chosen version (read from its first wheel,
    /// one with a `.metadata` file first) whose marker holds for a
    /// configured Python × platform with `req`'s extras.
    fn dependencies_of(
        &self,
        cx: &ScanCtx<'_>,
        project: &str,
        version: &Version,
        req: &Requirement,
        c: &Chosen,
    ) -> Result<Vec<Requirement>> {
        let src = &self.name;
        let mut wheels: Vec<&IndexFile> = c
            .files
            .iter()
            .filter(|f| f.filename.ends_with(".whl"))
            .collect();
        wheels.sort_by_key(|f| (f.metadata.is_none(), f.filename.clone()));
        let Some(w) = wheels.first() else {
            eprintln!(
                "ferry-out: warning: source {src:?}: {project} {version} has no wheel kept; its dependencies are not followed"
            );
            return Ok(Vec::new());
        };
        let sha = w.sha256.clone().expect("checked by select_files");
        let meta = self
            .metadata(w, &sha, &cx.cache_dir)
            .with_context(|| format!("source {src:?}: dependencies of {}", w.filename))?;
        let extras: Vec<ExtraName> = req.extras.clone();
        let mut out = Vec::new();
        for line in super::metadata::requires_dist(&meta) {
            let dep = match Requirement::from_str(&line) {
                Ok(d) => d,
                Err(e) => {
                    eprintln!("ferry-out: warning: source {src:?}: {}: cannot read Requires-Dist {line:?}: {e}", w.filename);
                    continue;
                }
            };
            if matches!(dep.version_or_url, Some(VersionOrUrl::Url(_))) {
                eprintln!(
                    "ferry-out: warning: source {src:?}: {}: skipping URL dependency {line:?}",
                    w.filename
                );
                continue;
            }
            if self
                .targets
                .envs
                .iter()
                .any(|env| dep.marker.evaluate(env, &extras))
            {
                out.push(dep);
            }
        }
        Ok(out)
    }
}

/// What makes two requirements the same for the closure: project, sorted
/// extras, specifiers.
fn requirement_key(project: &str, req: &Requirement) -> String {
    let mut extras: Vec<String> = req.extras.iter().map(|e| e.to_string()).collect();
    extras.sort();
    let spec = match &req.version_or_url {
        Some(VersionOrUrl::VersionSpecifier(s)) => s.to_string(),
        _ => String::new(),
    };
    format!("{project}[{}]{spec}", extras.join(","))
}
