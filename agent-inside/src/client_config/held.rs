//! What the current generation holds, as far as client configuration cares:
//! image repositories and their tags, apt suites with their components and
//! architectures, yum repositories and whether their metadata is signed, and
//! the names of the PyPI, Helm, cargo, npm, Go and plain-file sources.

use crate::genread::{GenRead, GenReadError};
use ferry_formats::go::{GoPath, SumdbFile};
use ferry_formats::oci::{parse_path, OciPath};
use ferry_protocol::catalog::SourceKind;
use ferry_protocol::path::ObjectKey;
use std::collections::{BTreeMap, BTreeSet};

/// An apt suite as held: its components and architectures (`all` aside).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Suite {
    pub(super) components: BTreeSet<String>,
    pub(super) architectures: BTreeSet<String>,
}

/// A yum repository as held.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct YumRepo {
    /// `repodata/repomd.xml.asc` is held: dnf can check the metadata.
    pub(super) signed_metadata: bool,
    /// `repodata/repomd.xml.key` is held: the vendor's key, served beside it.
    pub(super) key: bool,
}

/// What the current generation holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Held {
    /// Image repository -> its tags, over every OCI source.
    pub(super) images: BTreeMap<String, BTreeSet<String>>,
    /// apt source -> suite -> what it holds.
    pub(super) apt: BTreeMap<String, BTreeMap<String, Suite>>,
    /// yum source -> what it holds.
    pub(super) yum: BTreeMap<String, YumRepo>,
    /// PyPI sources.
    pub(super) pypi: Vec<String>,
    /// Helm sources.
    pub(super) helm: Vec<String>,
    /// Plain-file sources.
    pub(super) files: Vec<String>,
    /// Cargo registries.
    pub(super) cargo: Vec<String>,
    /// npm registries.
    pub(super) npm: Vec<String>,
    /// Go module proxies.
    pub(super) go: Vec<String>,
    /// Go source -> the path of its checksum database's key, if carried.
    pub(super) go_sumdb: BTreeMap<String, String>,
    /// Go source -> the module paths it carries.
    pub(super) go_modules: BTreeMap<String, BTreeSet<String>>,
}

impl Held {
    /// Reads generation `files`: the sources, and the keys of the parts
    /// of a source that say what it holds (tags, apt `dists/`, yum
    /// `repodata/`, Go modules).
    pub(super) fn of(files: &GenRead) -> Result<Held, GenReadError> {
        let mut h = Held::sources(files.sources());
        for (source, kind) in files.sources() {
            let prefix = match kind {
                SourceKind::Oci => "repos/",
                SourceKind::Apt => "dists/",
                SourceKind::Yum => "repodata/",
                SourceKind::Go => "",
                _ => continue,
            };
            for item in files.scan(source, prefix, prefix) {
                h.add(*kind, &item?.0);
            }
        }
        Ok(h)
    }

    /// What the sources alone say (names by kind).
    fn sources(sources: &BTreeMap<String, SourceKind>) -> Held {
        let mut h = Held::default();
        for (name, kind) in sources {
            match kind {
                SourceKind::Pypi => h.pypi.push(name.clone()),
                SourceKind::Helm => h.helm.push(name.clone()),
                SourceKind::Files => h.files.push(name.clone()),
                SourceKind::Cargo => h.cargo.push(name.clone()),
                SourceKind::Npm => h.npm.push(name.clone()),
                SourceKind::Go => h.go.push(name.clone()),
                SourceKind::Yum => {
                    h.yum.insert(name.clone(), YumRepo::default());
                }
                SourceKind::Apt | SourceKind::Oci => {}
            }
        }
        h
    }

    /// What `key`, of a source of `kind`, adds.
    fn add(&mut self, kind: SourceKind, key: &ObjectKey) {
        let h = self;
        match kind {
            SourceKind::Oci => {
                if let Some(OciPath::Tag { repo, tag }) = parse_path(&key.path) {
                    h.images
                        .entry(repo.to_string())
                        .or_default()
                        .insert(tag.to_string());
                }
            }
            SourceKind::Apt => h.apt_path(&key.source, &key.path),
            SourceKind::Go => match ferry_formats::go::parse_path(&key.path) {
                Some(GoPath::Checksums { module, .. }) => {
                    h.go_modules
                        .entry(key.source.clone())
                        .or_default()
                        .insert(module);
                }
                Some(GoPath::Sumdb {
                    file: SumdbFile::Key,
                    ..
                }) => {
                    h.go_sumdb.insert(key.source.clone(), key.path.clone());
                }
                _ => {}
            },
            SourceKind::Yum => {
                let r = h.yum.entry(key.source.clone()).or_default();
                r.signed_metadata |= key.path == "repodata/repomd.xml.asc";
                r.key |= key.path == "repodata/repomd.xml.key";
            }
            _ => {}
        }
    }

    /// `dists/<suite>/<component>/binary-<arch>/<file>` adds to its suite.
    fn apt_path(&mut self, source: &str, path: &str) {
        let Some(rest) = path.strip_prefix("dists/") else {
            return;
        };
        let Some((suite, rel)) = rest.split_once('/') else {
            return;
        };
        let Some((comp, tail)) = rel.split_once("/binary-") else {
            return;
        };
        let Some((arch, _)) = tail.split_once('/') else {
            return;
        };
        if comp.contains("/by-hash") || arch.is_empty() {
            return;
        }
        let s = self
            .apt
            .entry(source.to_string())
            .or_default()
            .entry(suite.to_string())
            .or_default();
        s.components.insert(comp.to_string());
        if arch != "all" {
            s.architectures.insert(arch.to_string());
        }
    }

    /// Whether nothing a client could be pointed at is held.
    pub(super) fn is_empty(&self) -> bool {
        self.images.is_empty()
            && self.apt.is_empty()
            && self.yum.is_empty()
            && self.pypi.is_empty()
            && self.helm.is_empty()
            && self.files.is_empty()
            && self.cargo.is_empty()
            && self.npm.is_empty()
            && self.go.is_empty()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use ferry_protocol::catalog::{Catalog, Object};

    /// What `c` holds, as `Held::of` reads a generation.
    fn of_catalog(c: &Catalog) -> Held {
        let mut h = Held::sources(&c.sources);
        for k in c.objects.keys() {
            if let Some(kind) = c.sources.get(&k.source) {
                h.add(*kind, k);
            }
        }
        h
    }

    /// A catalog with `objects` (source, path) of sources `sources`.
    pub(in crate::client_config) fn catalog(
        sources: &[(&str, SourceKind)],
        objects: &[(&str, &str)],
    ) -> Catalog {
        let mut c = Catalog::default();
        for (n, k) in sources {
            c.sources.insert(n.to_string(), *k);
        }
        for (s, p) in objects {
            c.objects.insert(
                ObjectKey {
                    source: s.to_string(),
                    path: p.to_string(),
                },
                Object::Symlink { target: "x".into() },
            );
        }
        c
    }

    #[test]
    fn reads_what_each_store_holds() {
        let c = catalog(
            &[
                ("img", SourceKind::Oci),
                ("deb", SourceKind::Apt),
                ("cuda", SourceKind::Yum),
                ("py", SourceKind::Pypi),
            ],
            &[
                ("img", "repos/nvidia/driver/_tags/550.54.15-ubuntu22.04"),
                ("img", "blobs/sha256/00"),
                ("deb", "dists/jammy/InRelease"),
                ("deb", "dists/jammy/main/binary-amd64/Packages.gz"),
                ("deb", "dists/jammy/main/binary-all/Packages.gz"),
                ("deb", "dists/jammy/universe/binary-amd64/by-hash/SHA256/ab"),
                ("deb", "dists/jammy/main/i18n/Translation-en"),
                ("deb", "pool/main/h/hello.deb"),
                ("cuda", "repodata/repomd.xml"),
                ("cuda", "repodata/repomd.xml.asc"),
            ],
        );
        let h = of_catalog(&c);
        assert_eq!(
            h.images["nvidia/driver"].iter().collect::<Vec<_>>(),
            ["550.54.15-ubuntu22.04"]
        );
        let jammy = &h.apt["deb"]["jammy"];
        assert_eq!(
            jammy.components.iter().collect::<Vec<_>>(),
            ["main", "universe"]
        );
        assert_eq!(jammy.architectures.iter().collect::<Vec<_>>(), ["amd64"]);
        assert!(h.yum["cuda"].signed_metadata && !h.yum["cuda"].key);
        assert_eq!(h.pypi, ["py"]);
        assert!(!h.is_empty());
        assert!(of_catalog(&Catalog::default()).is_empty());
    }
}
