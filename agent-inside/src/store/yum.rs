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
use ferry_protocol::catalog::{Catalog, Object, SourceKind};
use std::collections::{BTreeMap, BTreeSet};

/// The store of RPM (yum/dnf) repositories.
pub struct YumStore;

/// The index every yum source must hold.
pub const REPOMD: &str = "repodata/repomd.xml";

/// Files under `repodata/` that `repomd.xml` does not list.
const UNLISTED: [&str; 2] = ["repodata/repomd.xml.asc", "repodata/repomd.xml.key"];

/// A metadata file `repomd.xml` lists: path, checksum type and hex, size.
struct Listed {
    href: String,
    kind: String,
    hex: String,
    size: Option<u64>,
}

fn parse_repomd(xml: &[u8]) -> Result<Vec<Listed>> {
    let text = std::str::from_utf8(xml).context("it is not UTF-8")?;
    let doc = roxmltree::Document::parse(text).context("it is not XML")?;
    if doc.root_element().tag_name().name() != "repomd" {
        bail!("its root element is not <repomd>");
    }
    let mut out = Vec::new();
    for data in doc
        .root_element()
        .children()
        .filter(|n| n.has_tag_name("data"))
    {
        let child = |name: &str| data.children().find(|n| n.has_tag_name(name));
        let kind_attr = data.attribute("type").unwrap_or("?");
        let href = child("location")
            .and_then(|l| l.attribute("href"))
            .with_context(|| format!("<data type={kind_attr:?}> has no location href"))?;
        let ck = child("checksum").with_context(|| format!("{href} has no checksum"))?;
        let kind = match ck.attribute("type").unwrap_or("") {
            "sha" | "sha1" => "sha1",
            "sha256" => "sha256",
            "sha512" => "sha512",
            t => bail!("{href}: checksum type {t:?} is not supported"),
        };
        out.push(Listed {
            href: href.to_string(),
            kind: kind.to_string(),
            hex: ck.text().unwrap_or("").trim().to_ascii_lowercase(),
            size: child("size")
                .and_then(|s| s.text())
                .and_then(|t| t.trim().parse().ok()),
        });
    }
    Ok(out)
}

fn file_digest(kind: &str, path: &std::path::Path) -> Result<String> {
    use sha2::Digest;
    use std::io::Read;
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut buf = vec![0u8; 1 << 16];
    macro_rules! run {
        ($h:expr) => {{
            let mut h = $h;
            loop {
                let n = f
                    .read(&mut buf)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            hex::encode(h.finalize())
        }};
    }
    Ok(match kind {
        "sha1" => run!(sha1::Sha1::new()),
        "sha512" => run!(sha2::Sha512::new()),
        _ => run!(sha2::Sha256::new()),
    })
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
        let root = cx.new_gen.join(SourceKind::Yum.name()).join(source);
        let repomd = std::fs::read(root.join(REPOMD))
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
            let actual = if l.kind == "sha256" {
                f.sha256.to_hex()
            } else {
                file_digest(&l.kind, &root.join(&l.href))?
            };
            if actual != l.hex {
                bail!(
                    "yum source {source:?}: {} has {}:{actual}, but {REPOMD} says {}:{}",
                    l.href,
                    l.kind,
                    l.kind,
                    l.hex
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
