//! `ferry-in export-tree DIR`: writes the current generation out as a plain
//! directory tree, `DIR/<store>/<source>/<path>` (and the stores' derived
//! files, `DIR/apt-site/`, `DIR/pypi-meta/`), for a tool that wants files
//! at paths (another web server, `rsync`, a comparison).
//!
//! A generation has no tree of its own (docs/scale.md): its path index says
//! what each path is and the object store holds the bytes once by SHA-256.
//! A file becomes a hard link to its object when `DIR` is on the same
//! filesystem (no bytes copied), else a copy; a path served executable is
//! always a copy with mode 0755 (objects are 0644 and shared); a symbolic
//! link becomes one. The database stays open (locked) while the tree is
//! written, so no import drops the objects under it. The tree is the
//! operator's: editing a hard-linked file edits the object (`scrub` would
//! find it rotten), so copy (`--copy`) when the tree is to be changed.

use crate::db::Db;
use crate::genread::{GenRead, Held};
use crate::layout::Layout;
use anyhow::{bail, Context, Result};
use ferry_protocol::catalog::SourceKind;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// What [`export`] wrote.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// Files hard-linked to their object.
    pub linked: u64,
    /// Files copied.
    pub copied: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// Derived files (apt site view, PEP 658 metadata).
    pub derived: u64,
}

/// Writes the current generation of `layout` into `dir` (created; it must
/// not exist, or be empty). `copy`: copy every file, never link.
pub fn export(layout: &Layout, dir: &Path, copy: bool) -> Result<Written> {
    let db = Db::open(&layout.db())?;
    let Some(gen) = GenRead::open_current(layout)? else {
        bail!("no bundle has been applied: there is no generation to write out");
    };
    if std::fs::read_dir(dir).is_ok_and(|mut rd| rd.next().is_some()) {
        bail!(
            "{} is not empty: give a new or empty directory",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let pb = ferry_agent_common::progress::bytes(gen.total_bytes(), "writing the tree");
    let mut w = Written::default();
    let sources: Vec<(String, SourceKind)> =
        gen.sources().iter().map(|(s, k)| (s.clone(), *k)).collect();
    for (source, kind) in &sources {
        for item in gen.scan(source, "", "") {
            let (key, held) = item?;
            let dest = dir.join(kind.name()).join(&key.source).join(&key.path);
            let parent = dest.parent().expect("object paths have a parent");
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
            match held {
                Held::Link(target) => {
                    std::os::unix::fs::symlink(&target, &dest)
                        .with_context(|| format!("cannot create link {}", dest.display()))?;
                    w.symlinks += 1;
                }
                Held::File(f) => {
                    let from = gen.bytes_path(&key, &f);
                    if !copy && !f.executable && std::fs::hard_link(&from, &dest).is_ok() {
                        w.linked += 1;
                    } else {
                        std::fs::copy(&from, &dest).with_context(|| {
                            format!("cannot copy {} to {}", from.display(), dest.display())
                        })?;
                        let mode = if f.executable { 0o755 } else { 0o644 };
                        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(mode))
                            .with_context(|| format!("cannot set mode of {}", dest.display()))?;
                        w.copied += 1;
                    }
                    pb.inc(f.size);
                }
            }
        }
    }
    for area in [
        crate::store::apt::GEN_APT_SITE,
        crate::store::pypi_meta::GEN_PYPI_META,
    ] {
        let from = gen.dir().join(area);
        if from.is_dir() {
            w.derived += copy_tree(&from, &dir.join(area))?;
        }
    }
    pb.finish_and_clear();
    drop(db);
    Ok(w)
}

/// Copies the directory tree `from` to `to` (files and symbolic links).
fn copy_tree(from: &Path, to: &Path) -> Result<u64> {
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    let mut n = 0;
    let rd = std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))?;
    for e in rd {
        let e = e.with_context(|| format!("cannot read {}", from.display()))?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let ty = e
            .file_type()
            .with_context(|| format!("cannot stat {}", src.display()))?;
        if ty.is_dir() {
            n += copy_tree(&src, &dst)?;
        } else if ty.is_symlink() {
            let target = std::fs::read_link(&src)
                .with_context(|| format!("cannot read link {}", src.display()))?;
            std::os::unix::fs::symlink(target, &dst)
                .with_context(|| format!("cannot create link {}", dst.display()))?;
            n += 1;
        } else {
            std::fs::copy(&src, &dst)
                .with_context(|| format!("cannot copy {} to {}", src.display(), dst.display()))?;
            n += 1;
        }
    }
    Ok(n)
}
