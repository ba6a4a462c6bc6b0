//! The store of crate registries: objects of `cargo` sources at
//! `GEN/cargo/<source>/<path>`, served as a sparse registry under
//! `/cargo/<source>/` (`serve::cargo` adds `config.json`).
//!
//! Paths within a source (written by the outside's `source::cargo`; the
//! rules are [`ferry_formats::cargo`]'s):
//!
//! - `<index path>` (`1/a`, `2/ab`, `3/a/abc`, `se/rd/serde`, lower case):
//!   a crate's index file, upstream's JSON lines of the carried versions;
//! - `crates/<name>/<name>-<version>.crate`: a crate file, byte-exact.
//!
//! [`Store::check`] refuses, before anything is extracted, any other path
//! (`config.json` included: ferry-in writes it), symbolic links and
//! oversized index files. Once the generation is built, the index files are
//! parsed again and the generation refused unless each line names the
//! file's crate, no version is listed twice, each line's crate file is held
//! with the line's `cksum` as its SHA-256, and every crate file is listed by
//! a line (after a delta, only the index files its changes can affect are
//! read: the rest were checked when the previous generation was built). Cargo therefore never sees a version it cannot download, nor a
//! download that does not match its index.

use super::{materialize, objects_of_kind, BuildCtx, Store};
use anyhow::{bail, Context, Result};
use ferry_formats::cargo::{crate_path, index_path, parse_index, parse_path, CargoPath};
use ferry_protocol::catalog::{Catalog, Object, SourceKind};
use ferry_protocol::path::ObjectKey;
use std::collections::BTreeSet;

/// The directory of this store in a generation.
pub const GEN_CARGO: &str = "cargo";
/// The largest index file accepted.
pub const MAX_INDEX_BYTES: u64 = 64 << 20;

/// The store of crate registries.
pub struct CargoStore;

/// Checks one index file against `catalog`; returns the crate files it
/// lists.
pub fn check_index(
    catalog: &Catalog,
    key: &ObjectKey,
    name: &str,
    bytes: &[u8],
) -> Result<Vec<ObjectKey>> {
    let entries = parse_index(bytes, name).with_context(|| format!("object {key}"))?;
    let mut listed = Vec::new();
    for e in entries {
        let crate_key = ObjectKey {
            source: key.source.clone(),
            path: crate_path(&e.line.name, &e.line.vers),
        };
        match catalog.objects.get(&crate_key) {
            Some(Object::File(f)) if f.sha256.to_hex() == e.line.cksum => {}
            Some(Object::File(f)) => bail!(
                "object {key}: crate {} {} has cksum {}, but the store holds {} with SHA-256 {}",
                e.line.name,
                e.line.vers,
                e.line.cksum,
                crate_key.path,
                f.sha256
            ),
            _ => bail!(
                "object {key}: it lists crate {} {}, but source {} does not hold {}",
                e.line.name,
                e.line.vers,
                key.source,
                crate_key.path
            ),
        }
        listed.push(crate_key);
    }
    Ok(listed)
}

impl Store for CargoStore {
    fn kind(&self) -> SourceKind {
        SourceKind::Cargo
    }

    fn check(&self, next: &Catalog) -> Result<()> {
        for (key, obj) in objects_of_kind(next, SourceKind::Cargo) {
            let Object::File(f) = obj else {
                bail!("object {key}: a cargo source holds files only, not symbolic links");
            };
            match parse_path(&key.path) {
                None => bail!(
                    "object {key}: not a path of a cargo source (an index file such as \
                     se/rd/serde, or crates/<name>/<name>-<version>.crate)"
                ),
                Some(CargoPath::Index(_)) if f.size > MAX_INDEX_BYTES => bail!(
                    "object {key}: an index file of {} bytes is larger than the {} allowed",
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
        let written = materialize(cx, SourceKind::Cargo, GEN_CARGO)?;
        check_indexes(cx)?;
        Ok(written)
    }
}

/// Checks the index files of the generation built at `cx.new_gen` against
/// the next catalog, and that every crate file is listed by a line; returns
/// the index files read. With the apply's changes known
/// ([`BuildCtx::changed`]), only what they can affect is read: the changed
/// index files and those of changed crate files' crates, new and previous
/// versions (the crate files the previous one listed must still be listed,
/// or be gone). Every other index file and crate file is as it was when the
/// previous generation was checked.
fn check_indexes(cx: &BuildCtx<'_>) -> Result<usize> {
    if let Some(changed) = cx.changed_of_kind(SourceKind::Cargo) {
        if let Some(read) = check_changed(cx, &changed)? {
            return Ok(read);
        }
    }
    // Every index file: a crate an unchanged index file names may have
    // changed.
    let mut listed = BTreeSet::new();
    let mut read = 0;
    for (key, _) in objects_of_kind(cx.next, SourceKind::Cargo) {
        let Some(CargoPath::Index(name)) = parse_path(&key.path) else {
            continue;
        };
        listed.extend(read_index(cx, key, name)?);
        read += 1;
    }
    for (key, _) in objects_of_kind(cx.next, SourceKind::Cargo) {
        if matches!(parse_path(&key.path), Some(CargoPath::Crate { .. })) && !listed.contains(key) {
            bail!("object {key}: a crate file no index line lists");
        }
    }
    Ok(read)
}

/// Reads index file `key` (of crate `name`) of the generation being built
/// and checks it ([`check_index`]); returns the crate files it lists.
fn read_index(cx: &BuildCtx<'_>, key: &ObjectKey, name: &str) -> Result<Vec<ObjectKey>> {
    let fs_path = cx.new_path(GEN_CARGO, key);
    let bytes =
        std::fs::read(&fs_path).with_context(|| format!("cannot read {}", fs_path.display()))?;
    check_index(cx.next, key, name, &bytes)
}

/// [`check_indexes`] over the index files `changed` can affect; `None` when
/// the previous version of one cannot be read back intact from the previous
/// generation (then every index file is checked).
fn check_changed(cx: &BuildCtx<'_>, changed: &[&ObjectKey]) -> Result<Option<usize>> {
    let mut indexes = BTreeSet::new();
    let mut must_list = BTreeSet::new();
    for key in changed {
        match parse_path(&key.path) {
            Some(CargoPath::Index(_)) => {
                indexes.insert((*key).clone());
            }
            Some(CargoPath::Crate { name, .. }) => {
                if let Ok(path) = index_path(name) {
                    let source = key.source.clone();
                    indexes.insert(ObjectKey { source, path });
                }
                if cx.next.objects.contains_key(key) {
                    must_list.insert((*key).clone());
                }
            }
            None => {}
        }
    }
    let mut listed = BTreeSet::new();
    let mut read = 0;
    for key in &indexes {
        let Some(CargoPath::Index(name)) = parse_path(&key.path) else {
            continue;
        };
        if cx.prev.contains_key(key) {
            let old = cx.prev_bytes(GEN_CARGO, key);
            let Some(Ok(entries)) = old.map(|b| parse_index(&b, name)) else {
                return Ok(None);
            };
            read += 1;
            for e in entries {
                let source = key.source.clone();
                let path = crate_path(&e.line.name, &e.line.vers);
                let crate_key = ObjectKey { source, path };
                if cx.next.objects.contains_key(&crate_key) {
                    must_list.insert(crate_key);
                }
            }
        }
        if cx.next.objects.contains_key(key) {
            listed.extend(read_index(cx, key, name)?);
            read += 1;
        }
    }
    if let Some(key) = must_list.iter().find(|k| !listed.contains(*k)) {
        bail!("object {key}: a crate file no index line lists");
    }
    Ok(Some(read))
}

/// The `.cargo/config.toml` that makes cargo take every crates.io crate
/// from source `source` of the ferry-in serving at `base_url` (such as
/// `http://ferry-in.example:8080`), for `ferry-in client-config`.
pub fn cargo_config_toml(base_url: &str, source: &str) -> String {
    let base = base_url.trim_end_matches('/');
    format!(
        "# ~/.cargo/config.toml (or .cargo/config.toml in a project): crates.io from ferry-in\n\
         [source.crates-io]\n\
         replace-with = \"ferry-{source}\"\n\
         \n\
         [source.ferry-{source}]\n\
         registry = \"sparse+{base}/cargo/{source}/\"\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{changed, key, with_ctx, Files};
    use ferry_protocol::catalog::{Encoding, FileObject};
    use ferry_protocol::id::Sha256;

    fn catalog(data: &[u8]) -> Catalog {
        let mut c = Catalog::default();
        c.sources.insert("rs".into(), SourceKind::Cargo);
        c.objects.insert(
            ObjectKey {
                source: "rs".into(),
                path: "crates/itoa/itoa-1.0.0.crate".into(),
            },
            Object::File(FileObject {
                size: data.len() as u64,
                sha256: Sha256::of(data),
                executable: false,
                encoding: Encoding::Chunks(vec![]),
            }),
        );
        c
    }

    #[test]
    fn index_files_are_checked_against_the_catalog() {
        let data = b"crate bytes";
        let c = catalog(data);
        let key = ObjectKey {
            source: "rs".into(),
            path: "it/oa/itoa".into(),
        };
        let line = format!(
            r#"{{"name":"itoa","vers":"1.0.0","deps":[],"cksum":"{}","features":{{}},"yanked":false}}"#,
            Sha256::of(data)
        );
        let listed = check_index(&c, &key, "itoa", line.as_bytes()).unwrap();
        assert_eq!(listed.len(), 1);
        let wrong = line.replace(&Sha256::of(data).to_hex(), &"0".repeat(64));
        let e = check_index(&c, &key, "itoa", wrong.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("cksum"), "{e}");
        let missing = line.replace("1.0.0", "1.0.1");
        let e = check_index(&c, &key, "itoa", missing.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("does not hold"), "{e}");
        let e = check_index(&c, &key, "other", line.as_bytes()).unwrap_err();
        assert!(
            matches!(
                e.downcast_ref::<ferry_formats::cargo::IndexError>(),
                Some(ferry_formats::cargo::IndexError::WrongCrate { .. })
            ),
            "{e:#}"
        );
    }

    /// A registry of `n` crates `c0000`…, each with versions `versions(i)`.
    fn registry(n: usize, versions: impl Fn(usize) -> Vec<&'static str>) -> Files {
        let mut files = Files::new();
        for i in 0..n {
            let name = format!("c{i:04}");
            let mut lines = String::new();
            for v in versions(i) {
                let data = format!("{name} {v}").into_bytes();
                lines += &format!(
                    "{{\"name\":\"{name}\",\"vers\":\"{v}\",\"deps\":[],\"cksum\":\"{}\",\"features\":{{}},\"yanked\":false}}\n",
                    Sha256::of(&data)
                );
                files.insert(key("s", &crate_path(&name, v)), data);
            }
            files.insert(key("s", &index_path(&name).unwrap()), lines.into_bytes());
        }
        files
    }

    #[test]
    fn a_delta_reads_only_the_index_files_it_touches() {
        let dir = tempfile::tempdir().unwrap();
        let prev = registry(1000, |_| vec!["1.0.0"]);
        // 10 crates get a new version: a new crate file and its index line.
        let next = registry(1000, |i| {
            if i % 100 == 7 {
                vec!["1.0.0", "1.0.1"]
            } else {
                vec!["1.0.0"]
            }
        });
        let changed = changed(&prev, &next);
        assert_eq!(changed.len(), 20);
        let files = (&prev, &next);
        let kind = SourceKind::Cargo;
        // The 10 index files, new and previous versions.
        let read = with_ctx(dir.path(), GEN_CARGO, files, kind, Some(&changed), |cx| {
            check_indexes(cx).unwrap()
        });
        assert_eq!(read, 20);
        let all = with_ctx(dir.path(), GEN_CARGO, files, kind, None, check_indexes).unwrap();
        assert_eq!(all, 1000);
    }

    #[test]
    fn a_delta_breaking_an_unchanged_index_is_refused() {
        let prev = registry(100, |_| vec!["1.0.0"]);
        let run = |next: &Files| {
            let dir = tempfile::tempdir().unwrap();
            let changed = changed(&prev, next);
            with_ctx(
                dir.path(),
                GEN_CARGO,
                (&prev, next),
                SourceKind::Cargo,
                Some(&changed),
                check_indexes,
            )
        };
        let crate_key = key("s", &crate_path("c0042", "1.0.0"));
        // A crate file changed under an unchanged index line.
        let mut next = prev.clone();
        next.insert(crate_key.clone(), b"other bytes".to_vec());
        let e = run(&next).unwrap_err();
        assert!(e.to_string().contains("cksum"), "{e:#}");
        // A crate file removed, its index line left.
        let mut next = prev.clone();
        next.remove(&crate_key);
        let e = run(&next).unwrap_err();
        assert!(e.to_string().contains("does not hold"), "{e:#}");
        // A crate file added that no line lists.
        let mut next = prev.clone();
        next.insert(key("s", &crate_path("c0042", "2.0.0")), b"x".to_vec());
        let e = run(&next).unwrap_err();
        assert!(e.to_string().contains("no index line lists"), "{e:#}");
        // An index file dropping a line whose crate file stays.
        let mut next = prev.clone();
        next.insert(key("s", &index_path("c0042").unwrap()), Vec::new());
        let e = run(&next).unwrap_err();
        assert!(e.to_string().contains("no index line lists"), "{e:#}");
        run(&prev).unwrap();
    }

    #[test]
    fn paths_outside_the_layout_are_refused() {
        let mut c = catalog(b"x");
        CargoStore.check(&c).unwrap();
        c.objects.insert(
            ObjectKey {
                source: "rs".into(),
                path: "config.json".into(),
            },
            Object::File(FileObject {
                size: 2,
                sha256: Sha256::of(b"{}"),
                executable: false,
                encoding: Encoding::Chunks(vec![]),
            }),
        );
        let e = CargoStore.check(&c).unwrap_err();
        assert!(
            e.to_string().contains("not a path of a cargo source"),
            "{e}"
        );
    }

    #[test]
    fn the_client_config_replaces_crates_io() {
        let t = cargo_config_toml("http://h:8080/", "rs");
        let v: toml::Table = toml::from_str(&t).unwrap();
        assert_eq!(
            v["source"]["crates-io"]["replace-with"].as_str(),
            Some("ferry-rs")
        );
        assert_eq!(
            v["source"]["ferry-rs"]["registry"].as_str(),
            Some("sparse+http://h:8080/cargo/rs/")
        );
    }
}
