//! Which object of the last catalog a new object most likely descends from.
//!
//! The source's hint first, when it names a file of the last catalog
//! ([`crate::source::Item::predecessor`]: an OCI layer, whose path is its
//! digest, descends from the layer at the same position of the previous
//! manifest of its tag). Then the same key (an index rewritten in place).
//! Otherwise an
//! object of the same source and directory whose file name differs only in
//! its digits: `openssl_3.0.11-1~deb12u2_amd64.deb` and
//! `openssl_3.0.13-1~deb12u1_amd64.deb`, `numpy-1.26.3-cp311-…whl` and
//! `numpy-1.26.4-cp311-…whl`, `serde-1.0.190.crate` and `serde-1.0.193.crate`.
//! Failing that, one whose name has the same *stem* (what comes before its
//! first digit) and extension (`tzdata_2024a-0+deb12u1_all.deb` and
//! `tzdata_2026f-0+deb12u1_all.deb`, whose versions differ in letters too).
//! Among several, the one whose name shares the longest prefix, then the
//! closest in size. The match is only a guess: a poor one costs bytes, never
//! correctness (the patch is checked, and the object ships whole when it
//! does not pay).

use anyhow::Result;
use ferry_protocol::catalog::{Catalog, FileObject, Object};
use ferry_protocol::path::ObjectKey;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// The last catalog as [`Families`] reads it: a file by key, and the files
/// of one directory. An export reads the ledger's rows
/// ([`crate::ledger::Last`]); tests, a catalog.
pub(crate) trait LastFiles {
    /// The file at `key` (none if absent or a symlink).
    fn file(&self, key: &ObjectKey) -> Result<Option<FileObject>>;
    /// The files directly in directory `dir` of source `source` (`""` for
    /// its top): name and size, in key order.
    fn dir_files(&self, source: &str, dir: &str) -> Result<Vec<(String, u64)>>;
}

impl LastFiles for Catalog {
    fn file(&self, key: &ObjectKey) -> Result<Option<FileObject>> {
        Ok(match self.objects.get(key) {
            Some(Object::File(f)) => Some(f.clone()),
            _ => None,
        })
    }

    fn dir_files(&self, source: &str, dir: &str) -> Result<Vec<(String, u64)>> {
        Ok(self
            .files()
            .filter(|(k, _)| k.source == source && split(&k.path).0 == dir)
            .map(|(k, f)| (split(&k.path).1.to_string(), f.size))
            .collect())
    }
}

impl LastFiles for crate::ledger::Last {
    fn file(&self, key: &ObjectKey) -> Result<Option<FileObject>> {
        Ok(match self.object(key)? {
            Some(Object::File(f)) => Some(f),
            _ => None,
        })
    }

    fn dir_files(&self, source: &str, dir: &str) -> Result<Vec<(String, u64)>> {
        crate::ledger::Last::dir_files(self, source, dir)
    }
}

/// The last catalog's files, grouped by name family (and by stem, for the
/// fallback) one directory at a time, when a lookup first needs that
/// directory (an export of unchanged or same-key files never does; one of a
/// few new files reads the rows of their directories only).
pub(crate) struct Families<'a, L: ?Sized> {
    last: &'a L,
    dirs: RefCell<HashMap<(String, String), Rc<Index>>>,
}

/// Files of one directory (name and size) by family or stem.
type Groups = HashMap<String, Vec<(String, u64)>>;

#[derive(Default)]
struct Index {
    groups: Groups,
    stems: Groups,
}

/// A file name's stem and extension: what comes before its first digit,
/// and after its last dot (`tzdata_` and `deb`). `None` for a name without
/// a digit (nothing to tell releases apart by) or an empty stem.
pub(crate) fn stem(name: &str) -> Option<String> {
    let first_digit = name.find(|c: char| c.is_ascii_digit())?;
    let ext = name.rsplit_once('.').map_or("", |(_, e)| e);
    (first_digit > 0).then(|| format!("{}*.{ext}", &name[..first_digit]))
}

/// A file name with every run of digits replaced by `#`.
pub(crate) fn family(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_digits = false;
    for c in name.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('#');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    out
}

fn split(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

impl<'a, L: LastFiles + ?Sized> Families<'a, L> {
    /// The families of the files of `last` (each directory indexed when
    /// first needed).
    pub(crate) fn new(last: &'a L) -> Self {
        Families {
            last,
            dirs: RefCell::new(HashMap::new()),
        }
    }

    fn index(&self, source: &str, dir: &str) -> Result<Rc<Index>> {
        let at = (source.to_string(), dir.to_string());
        if let Some(i) = self.dirs.borrow().get(&at) {
            return Ok(i.clone());
        }
        let mut index = Index::default();
        for (name, size) in self.last.dir_files(source, dir)? {
            if let Some(stem) = stem(&name) {
                index
                    .stems
                    .entry(stem)
                    .or_default()
                    .push((name.clone(), size));
            }
            index
                .groups
                .entry(family(&name))
                .or_default()
                .push((name, size));
        }
        let index = Rc::new(index);
        self.dirs.borrow_mut().insert(at, index.clone());
        Ok(index)
    }

    /// The most likely predecessor of a `size`-byte object at `key`, whose
    /// source guessed `hint` (ignored when of another source).
    pub(crate) fn predecessor(
        &self,
        key: &ObjectKey,
        hint: Option<&ObjectKey>,
        size: u64,
    ) -> Result<Option<(ObjectKey, FileObject)>> {
        // A base is of the object's own source (docs/bundle-format.md §5.5).
        let hint = hint.filter(|h| h.source == key.source);
        for k in hint.into_iter().chain([key]) {
            if let Some(f) = self.last.file(k)? {
                return Ok(Some((k.clone(), f)));
            }
        }
        let (dir, name) = split(&key.path);
        let source = key.source.as_str();
        let index = self.index(source, dir)?;
        let candidates = match index.groups.get(&family(name)) {
            Some(c) => c,
            None => match stem(name).and_then(|s| index.stems.get(&s)) {
                Some(c) => c,
                None => return Ok(None),
            },
        };
        let best = candidates.iter().max_by_key(|(other, other_size)| {
            let common = other
                .bytes()
                .zip(name.bytes())
                .take_while(|(a, b)| a == b)
                .count();
            (common, std::cmp::Reverse(other_size.abs_diff(size)))
        });
        let Some((other, _)) = best else {
            return Ok(None);
        };
        let k = ObjectKey {
            source: source.to_string(),
            path: if dir.is_empty() {
                other.clone()
            } else {
                format!("{dir}/{other}")
            },
        };
        Ok(self.last.file(&k)?.map(|f| (k, f)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl<L: LastFiles + ?Sized> Families<'_, L> {
        fn predecessor_t(
            &self,
            key: &ObjectKey,
            hint: Option<&ObjectKey>,
            size: u64,
        ) -> Option<(ObjectKey, FileObject)> {
            self.predecessor(key, hint, size).unwrap()
        }
    }
    use ferry_protocol::catalog::{Encoding, SourceKind};
    use ferry_protocol::id::Sha256;

    fn catalog(paths: &[(&str, u64)]) -> Catalog {
        let mut c = Catalog::default();
        c.sources.insert("s".into(), SourceKind::Files);
        for (p, size) in paths {
            c.objects.insert(
                ObjectKey {
                    source: "s".into(),
                    path: p.to_string(),
                },
                Object::File(FileObject {
                    size: *size,
                    sha256: Sha256([0; 32]),
                    executable: false,
                    encoding: Encoding::Chunks(vec![]),
                }),
            );
        }
        c
    }

    fn key(p: &str) -> ObjectKey {
        ObjectKey {
            source: "s".into(),
            path: p.into(),
        }
    }

    #[test]
    fn stems_stop_at_the_first_digit_and_keep_the_extension() {
        assert_eq!(
            stem("tzdata_2024a-0_all.deb").as_deref(),
            Some("tzdata_*.deb")
        );
        assert_eq!(stem("README"), None);
        assert_eq!(stem("2024-report.pdf"), None);
    }

    #[test]
    fn families_ignore_digits_only() {
        assert_eq!(
            family("openssl_3.0.11-1~deb12u2_amd64.deb"),
            "openssl_#.#.#-#~deb#u#_amd#.deb"
        );
        assert_eq!(family("serde-1.0.190.crate"), family("serde-1.0.193.crate"));
        assert_ne!(
            family("serde-1.0.190.crate"),
            family("serde_json-1.0.108.crate")
        );
    }

    #[test]
    fn the_same_key_wins_then_the_closest_name_in_the_same_directory() {
        let prev = catalog(&[
            ("pool/o/openssl_3.0.11-1_amd64.deb", 1000),
            ("pool/o/openssl_3.0.9-1_amd64.deb", 1000),
            ("pool/o/libssl3_3.0.11-1_amd64.deb", 2000),
            ("other/openssl_3.0.12-1_amd64.deb", 1000),
            ("dists/Packages.xz", 10),
        ]);
        let f = Families::new(&prev);
        let (k, _) = f
            .predecessor_t(&key("dists/Packages.xz"), None, 12)
            .unwrap();
        assert_eq!(k.path, "dists/Packages.xz");
        let (k, _) = f
            .predecessor_t(&key("pool/o/openssl_3.0.13-1_amd64.deb"), None, 1000)
            .unwrap();
        assert_eq!(k.path, "pool/o/openssl_3.0.11-1_amd64.deb");
        let (k, _) = f
            .predecessor_t(&key("pool/o/libssl3_3.0.13-1_amd64.deb"), None, 2100)
            .unwrap();
        assert_eq!(k.path, "pool/o/libssl3_3.0.11-1_amd64.deb");
        assert!(f
            .predecessor_t(&key("pool/o/new-thing_1.0.deb"), None, 5)
            .is_none());
        // Versions that differ in letters too: the same stem and extension.
        let prev = catalog(&[("pool/t/tzdata_2024a-0+deb12u1_all.deb", 9)]);
        let f = Families::new(&prev);
        let (k, _) = f
            .predecessor_t(&key("pool/t/tzdata_2026f-0+deb12u1_all.deb"), None, 9)
            .unwrap();
        assert_eq!(k.path, "pool/t/tzdata_2024a-0+deb12u1_all.deb");
        assert!(f
            .predecessor_t(&key("pool/t/tzdata_2026f-0+deb12u1_all.rpm"), None, 9)
            .is_none());
        assert!(f
            .predecessor_t(&key("elsewhere/openssl_3.0.13-1_amd64.deb"), None, 5)
            .is_none());
    }

    #[test]
    fn a_hint_naming_a_file_of_the_last_catalog_comes_first() {
        let prev = catalog(&[
            ("blobs/sha256/aaaa", 1000),
            ("blobs/sha256/bbbb", 1000),
            ("pool/o/openssl_3.0.11-1_amd64.deb", 1000),
        ]);
        let f = Families::new(&prev);
        // Blob paths are digests: no name rule finds their predecessor.
        assert!(f
            .predecessor_t(&key("blobs/sha256/cccc"), None, 1000)
            .is_none());
        let (k, _) = f
            .predecessor_t(
                &key("blobs/sha256/cccc"),
                Some(&key("blobs/sha256/bbbb")),
                1000,
            )
            .unwrap();
        assert_eq!(k.path, "blobs/sha256/bbbb");
        // Before the name rules, too.
        let (k, _) = f
            .predecessor_t(
                &key("pool/o/openssl_3.0.13-1_amd64.deb"),
                Some(&key("blobs/sha256/aaaa")),
                1000,
            )
            .unwrap();
        assert_eq!(k.path, "blobs/sha256/aaaa");
        // A hint the last catalog lacks falls back to the rules.
        let (k, _) = f
            .predecessor_t(
                &key("pool/o/openssl_3.0.13-1_amd64.deb"),
                Some(&key("blobs/sha256/gone")),
                1000,
            )
            .unwrap();
        assert_eq!(k.path, "pool/o/openssl_3.0.11-1_amd64.deb");
        // A hint into another source is never a base.
        let mut c = prev.clone();
        let other = ObjectKey {
            source: "t".into(),
            path: "blobs/sha256/bbbb".into(),
        };
        let obj = c.objects[&key("blobs/sha256/bbbb")].clone();
        c.objects.insert(other.clone(), obj);
        let f = Families::new(&c);
        assert!(f
            .predecessor_t(&key("blobs/sha256/cccc"), Some(&other), 1000)
            .is_none());
    }
}
