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
//! links. The build then reads every index and refuses the generation unless each file
//! it names is held at `files/<filename>` with exactly the SHA-256 it states,
//! its `name` is its directory's, and its file names are unique. A client
//! therefore never sees an index naming a file the store lacks; indexes and
//! files change together, with the generation. The wheels' core metadata
//! (PEP 658) is written beside them (`store::pypi_meta`).

use super::{materialize, objects_of_kind, BuildCtx, Store};
use anyhow::{bail, Context, Result};
use ferry_formats::pypi::{parse_path, ProjectIndex, PypiPath};
use ferry_protocol::catalog::{Catalog, Object, SourceKind};
use ferry_protocol::path::ObjectKey;

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
        // Every index is read and checked: they are small, and a file an
        // unchanged index names may have changed.
        for (key, _) in objects_of_kind(cx.next, SourceKind::Pypi) {
            let Some(PypiPath::Index(project)) = parse_path(&key.path) else {
                continue;
            };
            let fs_path = cx.new_gen.join(GEN_PYPI).join(&key.source).join(&key.path);
            let bytes = std::fs::read(&fs_path)
                .with_context(|| format!("cannot read {}", fs_path.display()))?;
            let index = check_index(cx.next, key, project, &bytes)?;
            super::pypi_meta::write(cx, &key.source, &index)?;
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_formats::pypi::{index_path, IndexError};
    use ferry_protocol::catalog::{Encoding, FileObject};
    use ferry_protocol::id::Sha256;

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
}
