//! The store of Python package indexes: objects of `pypi` sources at
//! `GEN/pypi/<source>/<path>`, served under `/pypi/<source>/` (the simple
//! repository API is rendered by `serve::pypi`).
//!
//! Paths within a source (written by the outside's `source::pypi`):
//!
//! - `files/<filename>`: a distribution file (wheel or sdist), byte-exact;
//! - `simple/<project>/index.json`: the project's files, `<project>` in PEP
//!   503 normalized form (the type and path rules are in
//!   [`ferry_formats::pypi`]).
//!
//! [`Store::check`] refuses, before anything is extracted, any other path, a
//! project name that is not normalized, a file name with a `/`, and symbolic
//! links. The build then reads the indexes and refuses the generation unless each file
//! it names is held at `files/<filename>` with exactly the SHA-256 it states,
//! its `name` is its directory's, and its file names are unique (after a
//! delta, only the indexes its changes can affect: `check_indexes`). A client
//! therefore never sees an index naming a file the store lacks; indexes and
//! files change together, with the generation. The wheels' core metadata
//! (PEP 658) is written beside them (`store::pypi_meta`).

use super::{materialize, objects_of_kind, objects_under, pypi_meta, BuildCtx, Store};
use anyhow::{bail, Context, Result};
use ferry_formats::pypi::{index_path, normalize, parse_path, ProjectIndex, PypiPath};
use ferry_protocol::catalog::{Catalog, Object, SourceKind};
use ferry_protocol::path::ObjectKey;
use std::collections::BTreeSet;

/// The directory of this store in a generation.
pub const GEN_PYPI: &str = "pypi";
/// The largest project index read.
pub const MAX_INDEX_BYTES: u64 = 32 << 20;

/// Parses and checks a project index against `catalog`: the name matches,
/// file names are unique, every file is held with the SHA-256 stated.
pub fn check_index(
    catalog: &Catalog,
    key: &ObjectKey,
    project: &str,
    bytes: &[u8],
) -> Result<ProjectIndex> {
    let index = ProjectIndex::parse(bytes, project).with_context(|| format!("object {key}"))?;
    for f in &index.files {
        let file_key = ObjectKey {
            source: key.source.clone(),
            path: ferry_formats::pypi::file_path(&f.filename),
        };
        if ferry_protocol::path::check_key(&file_key).is_err() {
            bail!("object {key}: {:?} is not a file name", f.filename);
        }
        match catalog.objects.get(&file_key) {
            Some(Object::File(obj)) if obj.sha256.to_hex() == f.sha256 => {}
            Some(Object::File(obj)) => bail!(
                "object {key}: it lists {} with SHA-256 {}, but the store holds it with {}",
                f.filename,
                f.sha256,
                obj.sha256
            ),
            _ => bail!(
                "object {key}: it lists {}, which source {} does not hold",
                f.filename,
                key.source
            ),
        }
    }
    Ok(index)
}

/// The store of Python package indexes.
pub struct PypiStore;

impl Store for PypiStore {
    fn kind(&self) -> SourceKind {
        SourceKind::Pypi
    }

    fn check(&self, next: &Catalog) -> Result<()> {
        for (key, obj) in objects_of_kind(next, SourceKind::Pypi) {
            let Object::File(f) = obj else {
                bail!("object {key}: a PyPI source holds files only, not symbolic links");
            };
            match parse_path(&key.path) {
                None => bail!(
                    "object {key}: not a path of a PyPI source (files/<filename> or \
                     simple/<normalized project>/index.json)"
                ),
                Some(PypiPath::Index(_)) if f.size > MAX_INDEX_BYTES => bail!(
                    "object {key}: a project index of {} bytes is larger than the {} allowed",
                    f.size,
                    MAX_INDEX_BYTES
                ),
                Some(_) => {}
            }
        }
        Ok(())
    }

    fn build(&self, cx: &BuildCtx<'_>) -> Result<u64> {
        self.check(cx.next)?;
        let written = materialize(cx, SourceKind::Pypi, GEN_PYPI)?;
        check_indexes(cx)?;
        Ok(written)
    }
}

/// The projects a distribution file name can belong to: the normalized
/// prefixes of `filename` that end before a `-` (a wheel's is the first,
/// an old sdist's name may itself hold `-`).
pub fn projects_of(filename: &str) -> BTreeSet<String> {
    filename
        .match_indices('-')
        .map(|(i, _)| normalize(&filename[..i]))
        .filter(|p| !p.is_empty())
        .collect()
}

/// Checks the project indexes of the generation built at `cx.new_gen`
/// ([`check_index`]) and writes their wheels' metadata
/// (`store::pypi_meta`); returns the indexes read. With the apply's changes
/// known ([`BuildCtx::changed`]), only the indexes they can affect are read:
/// the changed ones, those of the projects a changed file's name can belong
/// to ([`projects_of`]), and those of the projects whose index lists a file
/// named after another project (kept per source in the generation,
/// `pypi_meta::FOREIGN`). Every other index lists only unchanged files, as
/// when the previous generation was checked; its metadata is linked.
fn check_indexes(cx: &BuildCtx<'_>) -> Result<usize> {
    let plan = cx
        .changed_of_kind(SourceKind::Pypi)
        .and_then(|changed| recheck_plan(cx, &changed));
    let mut read = 0;
    let sources = cx.next.sources.iter();
    for source in sources
        .filter(|(_, k)| **k == SourceKind::Pypi)
        .map(|(s, _)| s)
    {
        let mut foreign = BTreeSet::new();
        for (key, _) in objects_under(cx.next, source, "simple/") {
            let Some(PypiPath::Index(project)) = parse_path(&key.path) else {
                continue;
            };
            let recheck = plan.as_ref().is_none_or(|p| p.recheck.contains(key));
            if !recheck && pypi_meta::link_unchanged(cx, source, project)? {
                if plan.as_ref().is_some_and(|p| p.foreign.contains(key)) {
                    foreign.insert(project.to_string());
                }
                continue;
            }
            let fs_path = cx.new_path(GEN_PYPI, key);
            let bytes = std::fs::read(&fs_path)
                .with_context(|| format!("cannot read {}", fs_path.display()))?;
            read += 1;
            let index = check_index(cx.next, key, project, &bytes)?;
            if index
                .files
                .iter()
                .any(|f| !projects_of(&f.filename).contains(project))
            {
                foreign.insert(project.to_string());
            }
            pypi_meta::write(cx, source, &index)?;
        }
        pypi_meta::write_foreign(cx, source, &foreign)?;
    }
    Ok(read)
}

/// Which indexes [`check_indexes`] reads after a delta.
struct Plan {
    /// The indexes to read and check.
    recheck: BTreeSet<ObjectKey>,
    /// The indexes of the previous generation listing a file named after
    /// another project.
    foreign: BTreeSet<ObjectKey>,
}

/// The [`Plan`] for `changed`; `None` (read every index) when a source's
/// list of foreign indexes cannot be read from the previous generation.
fn recheck_plan(cx: &BuildCtx<'_>, changed: &[&ObjectKey]) -> Option<Plan> {
    let key = |source: &str, project: &str| ObjectKey {
        source: source.to_string(),
        path: index_path(project),
    };
    let mut foreign = BTreeSet::new();
    for (source, kind) in &cx.next.sources {
        if *kind == SourceKind::Pypi && cx.prev.sources().contains_key(source) {
            let projects = pypi_meta::read_foreign(cx, source)?;
            foreign.extend(projects.iter().map(|p| key(source, p)));
        }
    }
    let mut recheck = BTreeSet::new();
    let mut files_changed = BTreeSet::new();
    for k in changed {
        match parse_path(&k.path) {
            Some(PypiPath::Index(_)) => {
                recheck.insert((*k).clone());
            }
            Some(PypiPath::File(filename)) => {
                files_changed.insert(k.source.as_str());
                recheck.extend(projects_of(filename).iter().map(|p| key(&k.source, p)));
            }
            None => {}
        }
    }
    // A changed file may be listed by any foreign index of its source.
    recheck.extend(
        foreign
            .iter()
            .filter(|k| files_changed.contains(k.source.as_str()))
            .cloned(),
    );
    Some(Plan { recheck, foreign })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{self, Files};
    use ferry_formats::pypi::{index_path, IndexError};
    use ferry_protocol::catalog::{Encoding, FileObject};
    use ferry_protocol::id::Sha256;
    use std::path::Path;

    #[test]
    fn indexes_are_checked_against_the_catalog() {
        let mut c = Catalog::default();
        c.sources.insert("py".into(), SourceKind::Pypi);
        let data = b"wheel";
        c.objects.insert(
            ObjectKey {
                source: "py".into(),
                path: "files/a-1.0-py3-none-any.whl".into(),
            },
            Object::File(FileObject {
                size: 5,
                sha256: Sha256::of(data),
                executable: false,
                encoding: Encoding::Chunks(vec![]),
            }),
        );
        let key = ObjectKey {
            source: "py".into(),
            path: index_path("a"),
        };
        let good = format!(
            r#"{{"name":"a","files":[{{"filename":"a-1.0-py3-none-any.whl","sha256":"{}"}}]}}"#,
            Sha256::of(data)
        );
        check_index(&c, &key, "a", good.as_bytes()).unwrap();
        let wrong_hash = good.replace(&Sha256::of(data).to_hex(), &"0".repeat(64));
        let e = check_index(&c, &key, "a", wrong_hash.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("SHA-256"), "{e}");
        let missing = good.replace("a-1.0", "a-2.0");
        let e = check_index(&c, &key, "a", missing.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("does not hold"), "{e}");
        let e = check_index(&c, &key, "b", good.as_bytes()).unwrap_err();
        assert!(
            matches!(
                e.downcast_ref::<IndexError>(),
                Some(IndexError::WrongProject { .. })
            ),
            "{e:#}"
        );
    }

    /// A PyPI source of `n` projects `p0000`…, each with versions
    /// `versions(i)` as sdists; project `p0000` also lists `zzz-1.0.tar.gz`
    /// (a file named after another project).
    fn source(n: usize, versions: impl Fn(usize) -> Vec<&'static str>) -> Files {
        let mut files = Files::new();
        for i in 0..n {
            let name = format!("p{i:04}");
            let mut names: Vec<String> = versions(i)
                .iter()
                .map(|v| format!("{name}-{v}.tar.gz"))
                .collect();
            if i == 0 {
                names.push("zzz-1.0.tar.gz".into());
            }
            let mut entries = Vec::new();
            for f in names {
                let data = format!("sdist {f}").into_bytes();
                entries
                    .push(serde_json::json!({"filename": f, "sha256": Sha256::of(&data).to_hex()}));
                files.insert(testing::key("s", &ferry_formats::pypi::file_path(&f)), data);
            }
            let doc = serde_json::json!({"name": name, "files": entries});
            files.insert(
                testing::key("s", &index_path(&name)),
                doc.to_string().into_bytes(),
            );
        }
        files
    }

    /// Builds the previous generation (every index checked) in `root`,
    /// then checks `next` as a delta over it; returns the indexes read.
    fn delta(root: &Path, prev: &Files, next: &Files) -> Result<usize> {
        let kind = SourceKind::Pypi;
        let full = testing::with_ctx(root, GEN_PYPI, (prev, prev), kind, None, check_indexes)?;
        assert_eq!(
            full,
            prev.keys()
                .filter(|k| k.path.starts_with("simple/"))
                .count()
        );
        std::fs::remove_dir_all(root.join("prev")).unwrap();
        std::fs::rename(root.join("next"), root.join("prev")).unwrap();
        let changed = testing::changed(prev, next);
        testing::with_ctx(
            root,
            GEN_PYPI,
            (prev, next),
            kind,
            Some(&changed),
            check_indexes,
        )
    }

    #[test]
    fn a_delta_reads_only_the_indexes_it_can_affect() {
        let dir = tempfile::tempdir().unwrap();
        let prev = source(200, |_| vec!["1.0"]);
        let next = source(200, |i| {
            if i % 20 == 3 {
                vec!["1.0", "1.1"]
            } else {
                vec!["1.0"]
            }
        });
        assert_eq!(testing::changed(&prev, &next).len(), 20);
        // The 10 changed indexes, and p0000's, which lists a foreign file
        // (read again whenever a file of its source changes).
        assert_eq!(delta(dir.path(), &prev, &next).unwrap(), 11);
        let hashes = dir
            .path()
            .join("next/pypi-meta/s")
            .join(pypi_meta::hashes_path("p0100"));
        assert!(
            hashes.exists(),
            "an unchanged project's metadata hashes are linked"
        );
    }

    #[test]
    fn a_delta_breaking_an_unchanged_index_is_refused() {
        let prev = source(20, |_| vec!["1.0"]);
        let run = |change: &dyn Fn(&mut Files)| {
            let dir = tempfile::tempdir().unwrap();
            let mut next = prev.clone();
            change(&mut next);
            delta(dir.path(), &prev, &next)
        };
        let file = |f: &str| testing::key("s", &ferry_formats::pypi::file_path(f));
        // A file named after its project, changed under an unchanged index.
        let e = run(&|n| {
            n.insert(file("p0004-1.0.tar.gz"), b"other".to_vec());
        })
        .unwrap_err();
        assert!(e.to_string().contains("SHA-256"), "{e:#}");
        // A file named after another project, removed: its index is found
        // through the previous generation's foreign list.
        let e = run(&|n| {
            n.remove(&file("zzz-1.0.tar.gz"));
        })
        .unwrap_err();
        assert!(e.to_string().contains("does not hold"), "{e:#}");
        assert_eq!(run(&|_| {}).unwrap(), 0);
    }
}
