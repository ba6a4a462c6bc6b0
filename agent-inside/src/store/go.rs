//! The store of Go module proxies: objects of `go` sources at
//! `GEN/go/<source>/<path>`, served as a GOPROXY tree under `/go/<source>/`.
//!
//! Paths within a source (written by the outside's `source::go`; the rules
//! are [`ferry_formats::go`]'s, module paths and versions case-encoded):
//! `<module>/@v/<version>.info`, `.mod`, `.zip`, `<module>/@v/list`,
//! `<module>/@latest` and `checksums/<module>@<version>` (the `go.sum` lines
//! the outside checked the version against).
//!
//! [`Store::check`] refuses any other path, symbolic links and files over
//! their size limit before anything is extracted. Once built: every
//! version's `checksums` lines must be of that version; its `.info` must
//! name it, its `.mod` (always) and its zip (when new or changed, or when
//! its lines are) must have the `h1:` hash the lines give; a `.info`,
//! `.mod` or zip without `checksums`, a zip without a line, a `list` naming
//! a version whose zip is not held and an `@latest` naming one are refused.
//! After a delta only the versions with a changed file, and the `list` and
//! `@latest` of their modules, are read again (`check_changed`).

mod sumdb;

use super::{materialize, objects_of_kind, BuildCtx, Store};
use anyhow::{bail, Context, Result};
use ferry_formats::go::gomod::parse_gosum;
use ferry_formats::go::hash::{go_mod_h1, zip_h1, MAX_GO_MOD, MAX_ZIP_UNCOMPRESSED};
use ferry_formats::go::{
    checksums_path, latest_path, list_path, parse_path, version_file, FileKind, GoPath, Info,
    SumdbFile,
};
use ferry_protocol::catalog::{Catalog, Object, SourceKind};
use ferry_protocol::path::ObjectKey;
use std::collections::{BTreeMap, BTreeSet};

pub use sumdb::GoSumdbError;

/// The directory of this store in a generation.
pub const GEN_GO: &str = "go";
/// The largest `.info`, `list`, `@latest` or `checksums` file accepted.
pub const MAX_SMALL: u64 = 4 << 20;

/// The store of Go module proxies.
pub struct GoStore;

/// The size limit of a path's kind.
fn limit(p: &GoPath) -> u64 {
    match p {
        GoPath::Version {
            kind: FileKind::Zip,
            ..
        } => MAX_ZIP_UNCOMPRESSED,
        GoPath::Version {
            kind: FileKind::Mod,
            ..
        } => MAX_GO_MOD,
        GoPath::Sumdb {
            file: SumdbFile::Tile(_),
            ..
        } => 256 * 32,
        GoPath::Sumdb { .. } => 64 << 10,
        _ => MAX_SMALL,
    }
}

/// What one version's checks need.
struct Ctx<'a> {
    cx: &'a BuildCtx<'a>,
    source: &'a str,
}

impl Ctx<'_> {
    fn key(&self, path: String) -> ObjectKey {
        ObjectKey {
            source: self.source.to_string(),
            path,
        }
    }

    fn held(&self, path: &str) -> bool {
        matches!(
            self.cx.next.objects.get(&self.key(path.to_string())),
            Some(Object::File(_))
        )
    }

    fn changed(&self, path: &str) -> bool {
        let k = self.key(path.to_string());
        self.cx.prev.get(&k) != self.cx.next.objects.get(&k)
    }

    fn file(&self, path: &str) -> std::path::PathBuf {
        self.cx.new_path(GEN_GO, &self.key(path.to_string()))
    }

    /// The file at `path` of this source in the previous generation.
    /// (Its size and SHA-256 checked, as [`BuildCtx::prev_bytes`] does.)
    fn prev_file(&self, path: &str) -> Option<Vec<u8>> {
        self.cx.prev_bytes(GEN_GO, &self.key(path.to_string()))
    }

    fn read(&self, path: &str) -> Result<Vec<u8>> {
        std::fs::read(self.file(path))
            .with_context(|| format!("object {}: cannot read it", self.key(path.to_string())))
    }

    /// Checks one version against its `checksums` file; returns the files
    /// it vouches for.
    fn version(&self, sums_path: &str, module: &str, version: &str) -> Result<Vec<String>> {
        let what = format!("source {}: module {module} {version}", self.source);
        let lines = parse_gosum(&self.read(sums_path)?).with_context(|| what.clone())?;
        if lines
            .iter()
            .any(|l| l.module != module || l.version != version)
        {
            bail!("{what}: {sums_path} holds lines of another version");
        }
        let sums_changed = self.changed(sums_path);
        let mut vouched = vec![version_file(module, version, "info")];
        let info = self.read(&vouched[0])?;
        Info::parse(&info, Some(version)).with_context(|| what.clone())?;
        for l in &lines {
            let (ext, file) = if l.go_mod {
                ("mod", "go.mod")
            } else {
                ("zip", "zip")
            };
            let path = version_file(module, version, ext);
            if !self.held(&path) {
                bail!("{what}: {sums_path} has the {file}'s hash, but {path} is not held");
            }
            let got = if l.go_mod {
                go_mod_h1(&self.read(&path)?)
            } else if sums_changed || self.changed(&path) {
                let f = std::fs::File::open(self.file(&path))
                    .with_context(|| format!("{what}: cannot open {path}"))?;
                zip_h1(std::io::BufReader::new(f), module, version).with_context(|| what.clone())?
            } else {
                l.hash.clone()
            };
            if got != l.hash {
                bail!(
                    "{what}: the {file} has {got}, its checksums say {} (h1 mismatch)",
                    l.hash
                );
            }
            vouched.push(path);
        }
        Ok(vouched)
    }
}

/// Checks a `list` or `@latest` of the built generation.
fn check_index(c: &Ctx<'_>, path: &str, p: &GoPath) -> Result<()> {
    let key = c.key(path.to_string());
    let (module, versions) = match p {
        GoPath::List { module } => {
            let text = String::from_utf8(c.read(path)?)
                .with_context(|| format!("object {key}: not UTF-8"))?;
            (module, text.lines().map(str::to_string).collect::<Vec<_>>())
        }
        GoPath::Latest { module } => {
            let i = Info::parse(&c.read(path)?, None).with_context(|| format!("object {key}"))?;
            (module, vec![i.version])
        }
        _ => return Ok(()),
    };
    for v in versions {
        if !c.held(&version_file(module, &v, "zip")) {
            bail!("object {key}: it names {module} {v}, whose zip is not held");
        }
    }
    Ok(())
}

impl Store for GoStore {
    fn kind(&self) -> SourceKind {
        SourceKind::Go
    }

    fn check(&self, next: &Catalog) -> Result<()> {
        for (key, obj) in objects_of_kind(next, SourceKind::Go) {
            let Object::File(f) = obj else {
                bail!("object {key}: a go source holds files only, not symbolic links");
            };
            let Some(p) = parse_path(&key.path) else {
                bail!(
                    "object {key}: not a path of a go source (<module>/@v/<version>.info|.mod|.zip, \
                     <module>/@v/list, <module>/@latest, checksums/<module>@<version>)"
                );
            };
            if f.size > limit(&p) {
                bail!(
                    "object {key}: {} bytes is larger than the {} allowed",
                    f.size,
                    limit(&p)
                );
            }
        }
        Ok(())
    }

    fn build(&self, cx: &BuildCtx<'_>) -> Result<u64> {
        self.check(cx.next)?;
        let written = materialize(cx, SourceKind::Go, GEN_GO)?;
        let any_change = match cx.changed_of_kind(SourceKind::Go) {
            Some(changed) => {
                check_changed(cx, &changed)?;
                !changed.is_empty()
            }
            None => {
                check_every(cx)?;
                true
            }
        };
        // The carried checksum databases are checked whole whenever a go
        // object changed: a record must exist for every carried version and
        // no other, which a look at the changed keys alone cannot prove.
        if any_change {
            check_sumdbs(cx)?;
        }
        Ok(written)
    }
}

/// Checks each source's carried checksum database ([`sumdb::check`]) against
/// the versions the source carries.
fn check_sumdbs(cx: &BuildCtx<'_>) -> Result<()> {
    // source -> database name -> its files; source -> versions.
    let mut dbs: BTreeMap<&str, BTreeMap<String, sumdb::Db>> = BTreeMap::new();
    let mut versions: BTreeMap<&str, Vec<(String, String)>> = BTreeMap::new();
    for (key, _) in objects_of_kind(cx.next, SourceKind::Go) {
        match parse_path(&key.path) {
            Some(GoPath::Checksums { module, version }) => versions
                .entry(&key.source)
                .or_default()
                .push((module, version)),
            Some(GoPath::Sumdb { name, file }) => dbs
                .entry(&key.source)
                .or_default()
                .entry(name)
                .or_default()
                .add(&file),
            _ => {}
        }
    }
    for (source, by_name) in &dbs {
        if by_name.len() > 1 {
            bail!("source {source}: carries more than one checksum database");
        }
        let c = Ctx { cx, source };
        for (name, db) in by_name {
            let vs = versions.get(source).map(Vec::as_slice).unwrap_or_default();
            sumdb::check(&c, name, db, vs)?;
        }
    }
    Ok(())
}

/// Checks every version, `list` and `@latest` of the built generation;
/// returns the `checksums`, `list` and `@latest` files read.
fn check_every(cx: &BuildCtx<'_>) -> Result<usize> {
    let mut vouched = BTreeSet::new();
    let mut read = 0;
    let objects: Vec<_> = objects_of_kind(cx.next, SourceKind::Go)
        .filter_map(|(k, _)| Some((k, parse_path(&k.path)?)))
        .collect();
    for (key, p) in &objects {
        let c = Ctx {
            cx,
            source: &key.source,
        };
        match p {
            GoPath::Checksums { module, version } => {
                read += 1;
                for f in c.version(&key.path, module, version)? {
                    vouched.insert(c.key(f));
                }
            }
            GoPath::List { .. } | GoPath::Latest { .. } => {
                read += 1;
                check_index(&c, &key.path, p)?;
            }
            GoPath::Version { .. } | GoPath::Sumdb { .. } => {}
        }
    }
    for (key, p) in &objects {
        if matches!(p, GoPath::Version { .. }) && !vouched.contains(*key) {
            bail!("object {key}: no checksums line of its version vouches for it");
        }
    }
    Ok(read)
}

/// [`check_every`] after a delta ([`BuildCtx::changed`]): only the versions
/// with a changed file (their `checksums` included), and the `list` and
/// `@latest` of their modules and of the modules whose `list` or `@latest`
/// changed. Every other version and module is as it was checked when the
/// previous generation was built.
fn check_changed(cx: &BuildCtx<'_>, changed: &[&ObjectKey]) -> Result<usize> {
    let mut versions = BTreeSet::new();
    let mut modules = BTreeSet::new();
    for k in changed {
        let source = k.source.as_str();
        match parse_path(&k.path) {
            Some(
                GoPath::Checksums { module, version }
                | GoPath::Version {
                    module, version, ..
                },
            ) => {
                versions.insert((source, module.clone(), version));
                modules.insert((source, module));
            }
            Some(GoPath::List { module } | GoPath::Latest { module }) => {
                modules.insert((source, module));
            }
            Some(GoPath::Sumdb { .. }) | None => {}
        }
    }
    let mut read = 0;
    for (source, module, version) in &versions {
        let c = Ctx { cx, source };
        let sums = checksums_path(module, version);
        let mut vouched = BTreeSet::new();
        if c.held(&sums) {
            read += 1;
            vouched.extend(c.version(&sums, module, version)?);
        }
        for ext in ["info", "mod", "zip"] {
            let path = version_file(module, version, ext);
            if c.held(&path) && !vouched.contains(&path) {
                let key = c.key(path);
                bail!("object {key}: no checksums line of its version vouches for it");
            }
        }
    }
    for (source, module) in modules {
        let c = Ctx { cx, source };
        let list = (
            list_path(&module),
            GoPath::List {
                module: module.clone(),
            },
        );
        let latest = (latest_path(&module), GoPath::Latest { module });
        for (path, p) in [list, latest] {
            if c.held(&path) {
                read += 1;
                check_index(&c, &path, &p)?;
            }
        }
    }
    Ok(read)
}

/// A go source as `go.env` needs it.
pub struct GoEnvSource {
    /// The source's name.
    pub name: String,
    /// Its checksum database's verifier key, when it carries one.
    pub key: Option<String>,
    /// The module paths it carries.
    pub modules: BTreeSet<String>,
}

/// The environment that makes the go command take every module from the
/// go sources of the ferry-in serving at `base_url` (for `ferry-in
/// client-config`): all of them in `GOPROXY`; `GOSUMDB` the key of the
/// first source carrying a checksum database (ferry-in proxies it under
/// `GOPROXY/sumdb/<name>/`, so the go command verifies every module as it
/// would outside); `GONOSUMDB` exactly the module paths of the sources
/// carried without that database (checked outside against a `go.sum` only,
/// or against another database, which the go command cannot use at the
/// same time). Without any database `GOSUMDB` is left at its default: the
/// carried modules are in `GONOSUMDB`, any other module is not served.
pub fn go_env(base_url: &str, sources: &[GoEnvSource]) -> String {
    let base = base_url.trim_end_matches('/');
    let proxies: Vec<String> = sources
        .iter()
        .map(|s| format!("{base}/go/{}/", s.name))
        .collect();
    let mut out = format!("GOPROXY={}\n", proxies.join(","));
    let key = sources.iter().find_map(|s| s.key.as_deref());
    if let Some(k) = key {
        out.push_str(&format!("GOSUMDB={k}\n"));
    }
    let verified: BTreeSet<&String> = sources
        .iter()
        .filter(|s| key.is_some() && s.key.as_deref() == key)
        .flat_map(|s| &s.modules)
        .collect();
    let unverified: BTreeSet<&String> = sources
        .iter()
        .filter(|s| key.is_none() || s.key.as_deref() != key)
        .flat_map(|s| &s.modules)
        .filter(|m| !verified.contains(m))
        .collect();
    if !unverified.is_empty() {
        let list: Vec<&str> = unverified.iter().map(|m| m.as_str()).collect();
        out.push_str(&format!("GONOSUMDB={}\n", list.join(",")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_env_keeps_the_database_on_and_names_only_unverified_modules() {
        let src = |name: &str, key: Option<&str>, mods: &[&str]| GoEnvSource {
            name: name.into(),
            key: key.map(String::from),
            modules: mods.iter().map(|m| m.to_string()).collect(),
        };
        let k = "db.test+01234567+AQ";
        assert_eq!(
            go_env("https://h/", &[src("a", Some(k), &["x.com/a"])]),
            format!("GOPROXY=https://h/go/a/\nGOSUMDB={k}\n")
        );
        assert_eq!(
            go_env(
                "https://h",
                &[
                    src("a", Some(k), &["x.com/a"]),
                    src("b", None, &["x.com/a", "x.com/b", "y.org/c"]),
                    src("c", Some("other+01234567+AQ"), &["z.net/d"]),
                ]
            ),
            format!(
                "GOPROXY=https://h/go/a/,https://h/go/b/,https://h/go/c/\nGOSUMDB={k}\n\
                 GONOSUMDB=x.com/b,y.org/c,z.net/d\n"
            )
        );
        assert_eq!(
            go_env("http://h", &[src("b", None, &["x.com/b"])]),
            "GOPROXY=http://h/go/b/\nGONOSUMDB=x.com/b\n"
        );
    }

    use crate::store::testing::{changed, key, with_ctx, Files};

    /// A proxy of `n` modules `example.com/m0000`…, each with versions
    /// `versions(i)` (a `.info`, a `.mod` and its `checksums` line; no zip).
    fn proxy(n: usize, versions: impl Fn(usize) -> Vec<&'static str>) -> Files {
        let mut files = Files::new();
        for i in 0..n {
            let module = format!("example.com/m{i:04}");
            for v in versions(i) {
                let gomod = format!("module {module}\n").into_bytes();
                let sums = format!("{module} {v}/go.mod {}\n", go_mod_h1(&gomod));
                let info = format!("{{\"Version\":\"{v}\"}}");
                files.insert(key("s", &version_file(&module, v, "mod")), gomod);
                files.insert(
                    key("s", &version_file(&module, v, "info")),
                    info.into_bytes(),
                );
                files.insert(key("s", &checksums_path(&module, v)), sums.into_bytes());
            }
        }
        files
    }

    fn delta(prev: &Files, next: &Files) -> Result<usize> {
        let dir = tempfile::tempdir().unwrap();
        let changed = changed(prev, next);
        let files = (prev, next);
        with_ctx(
            dir.path(),
            GEN_GO,
            files,
            SourceKind::Go,
            Some(&changed),
            |cx| check_changed(cx, &changed.iter().collect::<Vec<_>>()),
        )
    }

    #[test]
    fn a_delta_reads_only_the_versions_it_touches() {
        let prev = proxy(300, |_| vec!["v1.0.0"]);
        let next = proxy(300, |i| {
            if i % 30 == 1 {
                vec!["v1.0.0", "v1.1.0"]
            } else {
                vec!["v1.0.0"]
            }
        });
        assert_eq!(changed(&prev, &next).len(), 30);
        assert_eq!(delta(&prev, &next).unwrap(), 10);
        let dir = tempfile::tempdir().unwrap();
        let all = with_ctx(
            dir.path(),
            GEN_GO,
            (&prev, &next),
            SourceKind::Go,
            None,
            check_every,
        );
        assert_eq!(all.unwrap(), 310);
    }

    #[test]
    fn a_delta_breaking_an_unchanged_version_is_refused() {
        let prev = proxy(10, |_| vec!["v1.0.0"]);
        let module = "example.com/m0003";
        let mut next = prev.clone();
        next.insert(
            key("s", &version_file(module, "v1.0.0", "mod")),
            b"module x\n".to_vec(),
        );
        let e = delta(&prev, &next).unwrap_err();
        assert!(e.to_string().contains("h1 mismatch"), "{e:#}");
        let mut next = prev.clone();
        next.remove(&key("s", &checksums_path(module, "v1.0.0")));
        let e = delta(&prev, &next).unwrap_err();
        assert!(e.to_string().contains("vouches"), "{e:#}");
        assert_eq!(delta(&prev, &prev).unwrap(), 0);
    }
}
