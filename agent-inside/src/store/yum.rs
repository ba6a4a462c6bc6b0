//! The store of RPM (yum/dnf) repositories: objects of `yum` sources at
//! `GEN/yum/<source>/<path>`, served under `/yum/<source>/<path>`, so
//! `http://HOST/yum/<source>/` is a `baseurl` dnf accepts.
//!
//! Layout within a source: the upstream repository's own paths, byte-exact:
//! `repodata/repomd.xml` (with `repodata/repomd.xml.asc` when upstream signs
//! it), the metadata files under `repodata/`, and the packages at their
//! `location href`.
//!
//! Rules, checked before a generation becomes current:
//!
//! - [`Store::check`] (before extraction): every object is a regular file; a
//!   source with any object has `repodata/repomd.xml`.
//! - after the files are built: `repodata/repomd.xml` parses, every file it
//!   lists is present with the size and checksum it gives (sha1, sha256 or
//!   sha512), and every other file under `repodata/` is listed (except
//!   `repomd.xml.asc` and `repomd.xml.key`). So the indices a client sees
//!   always describe exactly the metadata beside them; since the whole
//!   generation switches at once, indices and packages change together.

use super::{materialize, objects_of_kind, BuildCtx, Store};
use anyhow::{bail, Context, Result};
use ferry_formats::rpm::{parse_repomd, ChecksumKind, Hasher};
use ferry_protocol::catalog::{Catalog, Object, SourceKind};
use std::collections::{BTreeMap, BTreeSet};

/// The store of RPM (yum/dnf) repositories.
pub struct YumStore;

/// The index every yum source must hold.
pub const REPOMD: &str = "repodata/repomd.xml";

/// Files under `repodata/` that `repomd.xml` does not list.
const UNLISTED: [&str; 2] = ["repodata/repomd.xml.asc", "repodata/repomd.xml.key"];

/// The hex digest of the file at `path` with checksum type `kind` (one
/// [`ferry_formats::rpm::Checksum`] accepted).
fn file_digest(kind: ChecksumKind, path: &std::path::Path) -> Result<String> {
    use std::io::Read;
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut buf = vec![0u8; 1 << 16];
    let mut h = Hasher::new(kind);
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finish())
}

/// Checks the built repositories (see the module docs).
fn check_built(cx: &BuildCtx<'_>) -> Result<()> {
    let mut sources: BTreeMap<&str, BTreeMap<&str, &Object>> = BTreeMap::new();
    for (key, obj) in objects_of_kind(cx.next, SourceKind::Yum) {
        sources
            .entry(key.source.as_str())
            .or_default()
            .insert(key.path.as_str(), obj);
    }
    for (source, objects) in sources {
        let at = |path: &str| {
            let key = ferry_protocol::path::ObjectKey {
                source: source.to_string(),
                path: path.to_string(),
            };
            cx.new_path(SourceKind::Yum.name(), &key)
        };
        let repomd = std::fs::read(at(REPOMD))
            .with_context(|| format!("yum source {source:?}: cannot read {REPOMD}"))?;
        let listed = parse_repomd(&repomd)
            .with_context(|| format!("yum source {source:?}: {REPOMD} is not valid"))?;
        let mut names = BTreeSet::new();
        for l in &listed {
            names.insert(l.href.as_str());
            let Some(Object::File(f)) = objects.get(l.href.as_str()) else {
                bail!(
                    "yum source {source:?}: {REPOMD} lists {}, which the bundle does not hold",
                    l.href
                );
            };
            if let Some(size) = l.size.filter(|&s| s != f.size) {
                bail!(
                    "yum source {source:?}: {} has {} bytes, but {REPOMD} says {size}",
                    l.href,
                    f.size
                );
            }
            // SHA-256 was checked against the catalog when the file was built.
            let actual = if l.checksum.kind == ChecksumKind::Sha256 {
                f.sha256.to_hex()
            } else {
                file_digest(l.checksum.kind, &at(&l.href))?
            };
            if actual != l.checksum.hex {
                bail!(
                    "yum source {source:?}: {} has {}:{actual}, but {REPOMD} says {}",
                    l.href,
                    l.checksum.kind,
                    l.checksum
                );
            }
        }
        for path in objects.keys() {
            if path.starts_with("repodata/")
                && *path != REPOMD
                && !UNLISTED.contains(path)
                && !names.contains(path)
            {
                bail!("yum source {source:?}: {path} is not listed in {REPOMD}");
            }
        }
    }
    Ok(())
}

impl Store for YumStore {
    fn kind(&self) -> SourceKind {
        SourceKind::Yum
    }

    fn check(&self, next: &Catalog) -> Result<()> {
        let mut with_repomd = BTreeSet::new();
        let mut all = BTreeSet::new();
        for (key, obj) in objects_of_kind(next, SourceKind::Yum) {
            if !matches!(obj, Object::File(_)) {
                bail!("object {key}: a yum source holds files only, not symbolic links");
            }
            all.insert(key.source.as_str());
            if key.path == REPOMD {
                with_repomd.insert(key.source.as_str());
            }
        }
        if let Some(s) = all.difference(&with_repomd).next() {
            bail!("yum source {s:?} has no {REPOMD}");
        }
        Ok(())
    }

    fn build(&self, cx: &BuildCtx<'_>) -> Result<u64> {
        let written = materialize(cx, self.kind(), self.kind().name())?;
        check_built(cx)?;
        Ok(written)
    }
}
