//! The store of npm registries: objects of `npm` sources at
//! `GEN/npm/<source>/<path>`, served under `/npm/<source>/` (`serve::npm`
//! answers packuments with tarball URLs pointing at ferry-in).
//!
//! Paths within a source (written by the outside's `source::npm`; the rules
//! are [`ferry_formats::npm`]'s): `packuments/<name>.json` (the carried
//! versions of upstream's packument) and
//! `tarballs/<name>/-/<base>-<version>.tgz`.
//!
//! [`Store::check`] refuses any other path and symbolic links before
//! anything is extracted. Once built, every packument must parse, name its
//! own package, and every version's tarball must be held; a tarball that is
//! new or changed, or whose packument is, is read and checked against the
//! version's `dist.integrity` (sha512, …) or `shasum`.

use super::{materialize, objects_of_kind, BuildCtx, Store};
use anyhow::{bail, Context, Result};
use ferry_formats::npm::{parse_path, tarball_path, Integrity, NpmPath, Packument};
use ferry_formats::rpm::{Checksum, Hasher};
use ferry_protocol::catalog::{Catalog, Object, SourceKind};
use ferry_protocol::path::ObjectKey;
use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;

/// The directory of this store in a generation.
pub const GEN_NPM: &str = "npm";
/// The largest packument accepted.
pub const MAX_PACKUMENT_BYTES: u64 = 128 << 20;

/// The store of npm registries.
pub struct NpmStore;

/// Hashes a file with `algorithm`, in hex.
fn digest_of(path: &Path, checksum: &Checksum) -> Result<String> {
    let mut h = Hasher::new(checksum.kind);
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut buf = vec![0u8; 1 << 20];
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

/// Checks one packument of the built generation; returns the tarballs it
/// lists.
fn check_packument(cx: &BuildCtx<'_>, key: &ObjectKey, name: &str) -> Result<Vec<ObjectKey>> {
    let dir = cx.new_gen.join(GEN_NPM).join(&key.source);
    let bytes = std::fs::read(dir.join(&key.path))
        .with_context(|| format!("object {key}: cannot read it"))?;
    let p = Packument::parse(&bytes, name).with_context(|| format!("object {key}"))?;
    if let Some(e) = p.skipped.first() {
        bail!("object {key}: {e}");
    }
    let packument_changed = cx.prev.objects.get(key) != cx.next.objects.get(key);
    let mut listed = Vec::new();
    for (v, pv) in &p.versions {
        let tk = ObjectKey {
            source: key.source.clone(),
            path: tarball_path(name, &v.to_string()),
        };
        if !matches!(cx.next.objects.get(&tk), Some(Object::File(_))) {
            bail!(
                "object {key}: it lists {name} {v}, but source {} does not hold {}",
                key.source,
                tk.path
            );
        }
        let changed = packument_changed || cx.prev.objects.get(&tk) != cx.next.objects.get(&tk);
        if changed {
            let what = format!("object {key}: {name} {v}");
            let i = Integrity::of(&pv.meta.dist).with_context(|| what.clone())?;
            let want = Checksum::new(i.algorithm, &i.hex).with_context(|| what.clone())?;
            let got = digest_of(&dir.join(&tk.path), &want)?;
            if got != want.hex {
                bail!(
                    "{what}: {} has {} {got}, the packument says {}",
                    tk.path,
                    i.algorithm,
                    want.hex
                );
            }
        }
        listed.push(tk);
    }
    Ok(listed)
}

impl Store for NpmStore {
    fn kind(&self) -> SourceKind {
        SourceKind::Npm
    }

    fn check(&self, next: &Catalog) -> Result<()> {
        for (key, obj) in objects_of_kind(next, SourceKind::Npm) {
            let Object::File(f) = obj else {
                bail!("object {key}: an npm source holds files only, not symbolic links");
            };
            match parse_path(&key.path) {
                None => bail!(
                    "object {key}: not a path of an npm source (packuments/<name>.json or \
                     tarballs/<name>/-/<file>.tgz)"
                ),
                Some(NpmPath::Packument(_)) if f.size > MAX_PACKUMENT_BYTES => bail!(
                    "object {key}: a packument of {} bytes is larger than the {} allowed",
                    f.size,
                    MAX_PACKUMENT_BYTES
                ),
                Some(_) => {}
            }
        }
        Ok(())
    }

    fn build(&self, cx: &BuildCtx<'_>) -> Result<u64> {
        self.check(cx.next)?;
        let written = materialize(cx, SourceKind::Npm, GEN_NPM)?;
        let mut listed = BTreeSet::new();
        for (key, _) in objects_of_kind(cx.next, SourceKind::Npm) {
            if let Some(NpmPath::Packument(name)) = parse_path(&key.path) {
                listed.extend(check_packument(cx, key, name)?);
            }
        }
        for (key, _) in objects_of_kind(cx.next, SourceKind::Npm) {
            if matches!(parse_path(&key.path), Some(NpmPath::Tarball { .. }))
                && !listed.contains(key)
            {
                bail!("object {key}: a tarball no packument lists");
            }
        }
        Ok(written)
    }
}

/// The `.npmrc` line that makes npm take every package from source
/// `source` of the ferry-in serving at `base_url`, for `ferry-in client-config`.
pub fn npmrc(base_url: &str, source: &str) -> String {
    format!(
        "registry={}/npm/{source}/\n",
        base_url.trim_end_matches('/')
    )
}
