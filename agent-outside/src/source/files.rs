//! `type = "files"`: a local directory tree and/or a list of URLs.
//!
//! Regular files and symbolic links are carried; a link whose target leaves
//! the tree (or is absolute), and anything else (sockets, devices, names that
//! are not UTF-8), is skipped with a warning on stderr.

use super::{Item, ItemKind, ScanCtx, Source};
use crate::config::{SourceConfig, UrlEntry};
use crate::upstream::{prune_downloads, Client, Expect};
use anyhow::{anyhow, bail, Context, Result};
use ferry_formats::rpm::{Checksum, ChecksumKind};
use ferry_protocol::catalog::SourceKind;
use ferry_protocol::id::Sha256;
use serde::Deserialize;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

/// The settings of a `type = "files"` source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesSettings {
    /// A local tree.
    pub path: Option<PathBuf>,
    /// URLs to fetch: strings, or tables `{ url, sha256, path }`.
    #[serde(default)]
    pub urls: Vec<UrlEntry>,
    /// Keep the copies of the tree's files that the next export patches
    /// against as hard links to them instead of byte copies, when the state
    /// is on the same filesystem. Only for a tree whose files are replaced
    /// (rsync without `--inplace`, `cp -al`, `tar x`), never rewritten in
    /// place: a file rewritten in place rewrites its kept copy too, which is
    /// then found wrong and its next version ships whole.
    #[serde(default)]
    pub link_copies: bool,
}

/// A files source.
pub struct FilesSource {
    name: String,
    root: Option<PathBuf>,
    urls: Vec<UrlEntry>,
    client: Client,
    link_copies: bool,
}

impl FilesSource {
    /// From its config entry.
    pub fn new(cfg: &SourceConfig) -> Result<Self> {
        let settings: FilesSettings = cfg.settings()?;
        if settings.path.is_none() && settings.urls.is_empty() {
            bail!("needs `path` or `urls`");
        }
        // Credentials go to one host only: the URLs' host when they share one.
        let mut hosts = settings
            .urls
            .iter()
            .map(|u| u.url().split('/').take(3).collect::<Vec<_>>().join("/"));
        let first = hosts.next();
        let one_host = match first {
            Some(h) if hosts.all(|x| x == h) => settings.urls.first().map(UrlEntry::url),
            _ => None,
        };
        let client = Client::new(&cfg.net, one_host)?;
        Ok(FilesSource {
            name: cfg.name.clone(),
            root: settings.path,
            urls: settings.urls,
            client,
            link_copies: settings.link_copies,
        })
    }

    fn scan_tree(
        &self,
        root: &std::path::Path,
        sink: &mut dyn FnMut(Item) -> Result<()>,
    ) -> Result<()> {
        if !root.is_dir() {
            bail!("{} is not a directory", root.display());
        }
        self.walk(root, "", sink)
    }

    /// Lists the tree under `dir` (at `prefix` in the source) depth first,
    /// each directory's entries in key order. Each file is looked up by its
    /// name in its open directory (`DirEntry::metadata`), not by its whole
    /// path from the root: a scan of an unchanged mirror is mostly these
    /// lookups.
    fn walk(
        &self,
        dir: &std::path::Path,
        prefix: &str,
        sink: &mut dyn FnMut(Item) -> Result<()>,
    ) -> Result<()> {
        let walk_err = || format!("cannot walk {}", dir.display());
        // In key order: a directory's keys are its name and a `/` then
        // more, so it sorts as its name with a `/` after it (`a.txt`, whose
        // `.` is below `/`, comes before the keys under `a/`). The scan's
        // `Seen` keeps the keys of a source listed in key order as a list.
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(dir).with_context(walk_err)? {
            let entry = entry.with_context(walk_err)?;
            let mut order = entry.file_name().into_encoded_bytes();
            if entry.file_type().with_context(walk_err)?.is_dir() {
                order.push(b'/');
            }
            entries.push((order, entry));
        }
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let looked_up = look_up_files(&entries);
        for ((_, entry), md) in entries.into_iter().zip(looked_up) {
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                eprintln!(
                    "ferry-out: warning: source {:?}: skipping {} (name is not UTF-8)",
                    self.name,
                    entry.path().display()
                );
                continue;
            };
            let path = match prefix {
                "" => name.to_string(),
                _ => format!("{prefix}/{name}"),
            };
            let ft = entry.file_type().with_context(walk_err)?;
            if ft.is_dir() {
                self.walk(&entry.path(), &path, sink)?;
            } else if ft.is_symlink() {
                self.link(&entry.path(), path, sink)?;
            } else if ft.is_file() {
                let md = md
                    .expect("a regular file is looked up")
                    .with_context(|| format!("cannot read {}", entry.path().display()))?;
                sink(file_item(path, entry.path(), &md, self.link_copies))?;
            } else {
                eprintln!(
                    "ferry-out: warning: source {:?}: skipping {path} (not a regular file)",
                    self.name
                );
            }
        }
        Ok(())
    }

    /// The item of the symbolic link `full`, at `path`; a link leaving the
    /// tree is skipped with a warning.
    fn link(
        &self,
        full: &std::path::Path,
        path: String,
        sink: &mut dyn FnMut(Item) -> Result<()>,
    ) -> Result<()> {
        let target = std::fs::read_link(full)
            .with_context(|| format!("cannot read link {}", full.display()))?;
        match target.to_str().and_then(|t| normalize_link(&path, t)) {
            Some(target) => sink(Item {
                path,
                predecessor: None,
                kind: ItemKind::Symlink { target },
            }),
            None => {
                eprintln!(
                    "ferry-out: warning: source {:?}: skipping link {path} -> {} (it leaves the tree or is absolute)",
                    self.name,
                    target.display()
                );
                Ok(())
            }
        }
    }
}

/// A directory with at least this many entries has its regular files looked up
/// on every core: a scan of an unchanged mirror is mostly these lookups,
/// which `find` makes on one.
const PARALLEL_LOOKUPS_FROM: usize = 32;

/// The metadata of each regular file among `entries` (`None` for the
/// others), in their order, each looked up by name in its open directory.
fn look_up_files(
    entries: &[(Vec<u8>, std::fs::DirEntry)],
) -> Vec<Option<std::io::Result<std::fs::Metadata>>> {
    use rayon::prelude::*;
    let look_up = |(_, e): &(Vec<u8>, std::fs::DirEntry)| {
        e.file_type()
            .is_ok_and(|t| t.is_file())
            .then(|| e.metadata())
    };
    if entries.len() < PARALLEL_LOOKUPS_FROM {
        return entries.iter().map(look_up).collect();
    }
    entries.par_iter().map(look_up).collect()
}

/// The item of the regular file `full` (metadata `md`), at `path`: a
/// [`ItemKind::Local`] one when its kept copy may be a link (`link`).
fn file_item(path: String, full: PathBuf, md: &std::fs::Metadata, link: bool) -> Item {
    let fingerprint = super::file_fingerprint(md);
    let executable = md.permissions().mode() & 0o111 != 0;
    let kind = if link {
        ItemKind::Local {
            executable,
            fingerprint,
            path: full,
        }
    } else {
        ItemKind::File {
            executable,
            fingerprint: Some(fingerprint),
            expected_sha256: None,
            open: Box::new(move || {
                let f = std::fs::File::open(&full)
                    .with_context(|| format!("cannot open {}", full.display()))?;
                Ok(Box::new(f) as Box<dyn std::io::Read>)
            }),
        }
    };
    Item {
        path,
        predecessor: None,
        kind,
    }
}

impl Source for FilesSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SourceKind {
        SourceKind::Files
    }

    fn scan(&self, cx: &ScanCtx<'_>, sink: &mut dyn FnMut(Item) -> Result<()>) -> Result<()> {
        if let Some(root) = &self.root {
            self.scan_tree(root, sink)?;
        }
        let downloads = cx.cache_dir.join("downloads");
        if !self.urls.is_empty() {
            std::fs::create_dir_all(&downloads)
                .with_context(|| format!("cannot create {}", downloads.display()))?;
        }
        let mut wanted = std::collections::BTreeSet::new();
        for u in &self.urls {
            let (url, sha, path) = match u {
                UrlEntry::Plain(url) => (url.clone(), None, None),
                UrlEntry::Detailed { url, sha256, path } => {
                    (url.clone(), sha256.clone(), path.clone())
                }
            };
            let path = match path {
                Some(p) => p,
                None => url_file_name(&url).ok_or_else(|| {
                    anyhow!("cannot name a file after URL {url}; give it a `path`")
                })?,
            };
            let expected_sha256 = match sha {
                Some(h) => Some(
                    Sha256::from_hex(&h)
                        .ok_or_else(|| anyhow!("sha256 for {url} is not 64 hex digits"))?,
                ),
                None => None,
            };
            let expect = Expect {
                size: None,
                checksum: expected_sha256.map(|s| {
                    Checksum::of_kind(ChecksumKind::Sha256, &s.to_hex()).expect("64 hex digits")
                }),
            };
            // Named by content when it is known, else by URL.
            let key = expected_sha256.unwrap_or_else(|| Sha256::of(url.as_bytes()));
            wanted.insert(key.to_hex());
            let dest = downloads.join(key.to_hex());
            // No context here: the export names the source and the path.
            let client = self.client.clone();
            sink(Item {
                path,
                predecessor: None,
                kind: ItemKind::File {
                    executable: false,
                    fingerprint: None,
                    expected_sha256,
                    open: Box::new(move || Ok(client.open_downloaded(&url, &dest, &expect)?)),
                },
            })?;
        }
        if !self.urls.is_empty() {
            prune_downloads(&downloads, |f| wanted.contains(f));
        }
        Ok(())
    }
}

/// The last path segment of a URL, without query or fragment.
fn url_file_name(url: &str) -> Option<String> {
    let no_query = url.split(['?', '#']).next()?;
    let after_scheme = no_query.split_once("://").map(|x| x.1).unwrap_or(no_query);
    let (_, path) = after_scheme.split_once('/')?;
    let name = path.rsplit('/').next()?;
    (!name.is_empty() && name != "." && name != "..").then(|| name.to_string())
}

/// Rewrites a link target into the normal form the format requires (leading
/// `..` components, then names), or `None` if it leaves the tree, is absolute,
/// or points at the tree's root.
pub fn normalize_link(link_path: &str, target: &str) -> Option<String> {
    if target.starts_with('/') {
        return None;
    }
    let base: Vec<&str> =
        link_path.split('/').collect::<Vec<_>>()[..link_path.split('/').count() - 1].to_vec();
    let mut stack = base.clone();
    for comp in target.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                stack.pop()?;
            }
            c => stack.push(c),
        }
    }
    if stack.is_empty() {
        return None; // the source's root: a loop for anything that walks the tree
    }
    let common = base.iter().zip(&stack).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<&str> = std::iter::repeat_n("..", base.len() - common).collect();
    parts.extend(&stack[common..]);
    let out = parts.join("/");
    (!out.is_empty() && ferry_protocol::path::check_symlink_target(link_path, &out).is_ok())
        .then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `files` source over the tree at `root`.
    fn tree_source(root: &std::path::Path) -> FilesSource {
        FilesSource {
            name: "s".into(),
            root: Some(root.into()),
            urls: Vec::new(),
            client: Client::new(&Default::default(), None).unwrap(),
            link_copies: false,
        }
    }

    #[test]
    fn the_walk_lists_paths_in_key_order() {
        let tmp = tempfile::tempdir().unwrap();
        for dir in ["a", "a/b", "a-", "c"] {
            std::fs::create_dir(tmp.path().join(dir)).unwrap();
        }
        for file in ["a.txt", "a/x", "a/b/y", "a/b.z", "a-/q", "a0", "b", "c/d"] {
            std::fs::write(tmp.path().join(file), file).unwrap();
        }
        let source = tree_source(tmp.path());
        let mut paths = Vec::new();
        source
            .walk(tmp.path(), "", &mut |item| {
                paths.push(item.path);
                Ok(())
            })
            .unwrap();
        let mut sorted = paths.clone();
        sorted.sort_unstable();
        assert_eq!(paths, sorted, "byte order of the paths, as the rows'");
        assert_eq!(paths.len(), 8);
    }

    /// A directory large enough to be looked up on every core, with a
    /// subdirectory, a link and a name that is not UTF-8 (skipped) among
    /// its files: each file's item has its own size and executable bit.
    #[test]
    fn a_large_directory_is_looked_up_in_parallel_in_order() {
        use std::os::unix::ffi::OsStrExt;
        let tmp = tempfile::tempdir().unwrap();
        let n = 3 * PARALLEL_LOOKUPS_FROM;
        for i in 0..n {
            let f = tmp.path().join(format!("f{i:03}"));
            std::fs::write(&f, vec![b'x'; i]).unwrap();
            let mode = if i % 5 == 0 { 0o755 } else { 0o644 };
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let odd = std::ffi::OsStr::from_bytes(b"f050\xff");
        std::fs::write(tmp.path().join(odd), b"not listed").unwrap();
        std::fs::create_dir(tmp.path().join("f040.d")).unwrap();
        std::fs::write(tmp.path().join("f040.d/inner"), b"12345").unwrap();
        std::os::unix::fs::symlink("f001", tmp.path().join("f060.link")).unwrap();
        let source = tree_source(tmp.path());
        let mut seen = Vec::new();
        source
            .walk(tmp.path(), "", &mut |item| {
                let what = match item.kind {
                    ItemKind::File {
                        executable,
                        fingerprint: Some(fp),
                        ..
                    } => {
                        let size = fp.split(':').next().unwrap().to_string();
                        format!("{size} {executable}")
                    }
                    ItemKind::Symlink { target } => format!("-> {target}"),
                    _ => panic!("{}: an unexpected kind", item.path),
                };
                seen.push(format!("{} {what}", item.path));
                Ok(())
            })
            .unwrap();
        let mut want: Vec<String> = (0..n)
            .map(|i| format!("f{i:03} {i} {}", i % 5 == 0))
            .collect();
        want.push("f040.d/inner 5 false".into());
        want.push("f060.link -> f001".into());
        want.sort_unstable();
        assert_eq!(seen, want);
    }

    #[test]
    fn link_normalization() {
        assert_eq!(normalize_link("a/b/l", "../c").as_deref(), Some("../c"));
        assert_eq!(normalize_link("a/b/l", "./x/../y").as_deref(), Some("y"));
        assert_eq!(normalize_link("a/l", "../a/z").as_deref(), Some("z"));
        assert_eq!(normalize_link("l", "../x"), None);
        assert_eq!(normalize_link("l", "/etc/passwd"), None);
        assert_eq!(normalize_link("a/l", ".."), None);
    }

    #[test]
    fn url_names() {
        assert_eq!(
            url_file_name("https://h/x/a.tar.gz?x=1").as_deref(),
            Some("a.tar.gz")
        );
        assert_eq!(url_file_name("https://h/"), None);
        assert_eq!(url_file_name("https://h"), None);
    }
}
