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
//! version's `dist.integrity` (sha512, …) or `shasum`; every tarball must be
//! listed by its package's packument. After a delta only the packages it
//! touches (a changed packument or tarball) are read again.

use super::{materialize, objects_of_kind, objects_under, BuildCtx, Store};
use anyhow::{bail, Context, Result};
use ferry_formats::npm::{packument_path, parse_path, tarball_path, Integrity, NpmPath, Packument};
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
    let bytes = std::fs::read(cx.new_path(GEN_NPM, key))
        .with_context(|| format!("object {key}: cannot read it"))?;
    let p = Packument::parse(&bytes, name).with_context(|| format!("object {key}"))?;
    if let Some(e) = p.skipped.first() {
        bail!("object {key}: {e}");
    }
    let packument_changed = cx.prev.get(key) != cx.next.objects.get(key);
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
        let changed = packument_changed || cx.prev.get(&tk) != cx.next.objects.get(&tk);
        if changed {
            let what = format!("object {key}: {name} {v}");
            let i = Integrity::of(&pv.meta.dist).with_context(|| what.clone())?;
            let want = Checksum::new(i.algorithm, &i.hex).with_context(|| what.clone())?;
            let got = digest_of(&cx.new_path(GEN_NPM, &tk), &want)?;
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
        check_packuments(cx)?;
        Ok(written)
    }
}

/// Checks the packuments of the generation built at `cx.new_gen`
/// ([`check_packument`]) and that every tarball is listed by its package's
/// packument; returns the packuments read. With the apply's changes known
/// ([`BuildCtx::changed`]), only the packages they touch are read (a changed
/// packument or tarball): every other package is as it was when the
/// previous generation was checked.
fn check_packuments(cx: &BuildCtx<'_>) -> Result<usize> {
    let Some(changed) = cx.changed_of_kind(SourceKind::Npm) else {
        let mut read = 0;
        let mut listed = BTreeSet::new();
        for (key, _) in objects_of_kind(cx.next, SourceKind::Npm) {
            if let Some(NpmPath::Packument(name)) = parse_path(&key.path) {
                listed.extend(check_packument(cx, key, name)?);
                read += 1;
            }
        }
        for (key, _) in objects_of_kind(cx.next, SourceKind::Npm) {
            if matches!(parse_path(&key.path), Some(NpmPath::Tarball { .. }))
                && !listed.contains(key)
            {
                bail!("object {key}: a tarball no packument lists");
            }
        }
        return Ok(read);
    };
    // The packages touched, by source and name.
    let mut packages = BTreeSet::new();
    for key in changed {
        match parse_path(&key.path) {
            Some(NpmPath::Packument(name) | NpmPath::Tarball { name, .. }) => {
                packages.insert((key.source.as_str(), name));
            }
            None => {}
        }
    }
    let mut read = 0;
    for (source, name) in packages {
        let key = ObjectKey {
            source: source.to_string(),
            path: packument_path(name),
        };
        let listed: BTreeSet<ObjectKey> = if cx.next.objects.contains_key(&key) {
            read += 1;
            check_packument(cx, &key, name)?.into_iter().collect()
        } else {
            BTreeSet::new()
        };
        let prefix = format!("tarballs/{name}/-/");
        for (tk, _) in objects_under(cx.next, source, &prefix) {
            let ours =
                matches!(parse_path(&tk.path), Some(NpmPath::Tarball { name: n, .. }) if n == name);
            if ours && !listed.contains(tk) {
                bail!("object {tk}: a tarball no packument lists");
            }
        }
    }
    Ok(read)
}

/// The `.npmrc` line that makes npm take every package from source
/// `source` of the ferry-in serving at `base_url`, for `ferry-in client-config`.
pub fn npmrc(base_url: &str, source: &str) -> String {
    format!(
        "registry={}/npm/{source}/\n",
        base_url.trim_end_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{changed, key, with_ctx, Files};
    use ferry_formats::rpm::ChecksumKind;

    /// A registry of `n` packages `p0000`…, each with versions `versions(i)`.
    fn registry(n: usize, versions: impl Fn(usize) -> Vec<&'static str>) -> Files {
        let mut files = Files::new();
        for i in 0..n {
            let name = format!("p{i:04}");
            let mut vs = serde_json::Map::new();
            for v in versions(i) {
                let data = format!("{name} {v}").into_bytes();
                let mut h = Hasher::new(ChecksumKind::Sha1);
                h.update(&data);
                let dist = serde_json::json!({"tarball": "x", "shasum": h.finish()});
                vs.insert(
                    v.to_string(),
                    serde_json::json!({"name": name, "version": v, "dist": dist}),
                );
                files.insert(key("s", &tarball_path(&name, v)), data);
            }
            let doc = serde_json::json!({"name": name, "versions": vs});
            files.insert(
                key("s", &packument_path(&name)),
                doc.to_string().into_bytes(),
            );
        }
        files
    }

    #[test]
    fn a_delta_reads_only_the_packuments_it_touches() {
        let dir = tempfile::tempdir().unwrap();
        let prev = registry(200, |_| vec!["1.0.0"]);
        let next = registry(200, |i| {
            if i % 20 == 3 {
                vec!["1.0.0", "1.1.0"]
            } else {
                vec!["1.0.0"]
            }
        });
        let changed = changed(&prev, &next);
        assert_eq!(changed.len(), 20);
        let files = (&prev, &next);
        let read = with_ctx(
            dir.path(),
            GEN_NPM,
            files,
            SourceKind::Npm,
            Some(&changed),
            |cx| check_packuments(cx).unwrap(),
        );
        assert_eq!(read, 10);
        let all = with_ctx(
            dir.path(),
            GEN_NPM,
            files,
            SourceKind::Npm,
            None,
            check_packuments,
        );
        assert_eq!(all.unwrap(), 200);
    }

    #[test]
    fn a_delta_breaking_an_unchanged_packument_is_refused() {
        let prev = registry(20, |_| vec!["1.0.0"]);
        let run = |next: &Files| {
            let dir = tempfile::tempdir().unwrap();
            let changed = changed(&prev, next);
            let files = (&prev, next);
            with_ctx(
                dir.path(),
                GEN_NPM,
                files,
                SourceKind::Npm,
                Some(&changed),
                check_packuments,
            )
        };
        let tarball = key("s", &tarball_path("p0004", "1.0.0"));
        let mut next = prev.clone();
        next.insert(tarball.clone(), b"other bytes".to_vec());
        let e = run(&next).unwrap_err();
        assert!(e.to_string().contains("the packument says"), "{e:#}");
        let mut next = prev.clone();
        next.remove(&tarball);
        let e = run(&next).unwrap_err();
        assert!(e.to_string().contains("does not hold"), "{e:#}");
        let mut next = prev.clone();
        next.insert(key("s", &tarball_path("p0004", "2.0.0")), b"x".to_vec());
        let e = run(&next).unwrap_err();
        assert!(e.to_string().contains("no packument lists"), "{e:#}");
        let mut next = prev.clone();
        next.remove(&key("s", &packument_path("p0004")));
        let e = run(&next).unwrap_err();
        assert!(e.to_string().contains("no packument lists"), "{e:#}");
        assert_eq!(run(&prev).unwrap(), 0);
    }
}
