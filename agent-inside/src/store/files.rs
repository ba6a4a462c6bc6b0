//! The plain-file store: objects of `files` sources at
//! `GEN/files/<source>/<path>`, served under `/files/<source>/<path>`.

use super::{BuildCtx, Store};
use crate::layout::GEN_FILES;
use anyhow::{bail, Context, Result};
use ferry_protocol::catalog::{FileObject, Object, SourceKind};
use ferry_protocol::id::Sha256Hasher;
use ferry_protocol::path::ObjectKey;
use std::io::{BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The plain-file store.
pub struct FilesStore;

impl Store for FilesStore {
    fn kind(&self) -> SourceKind {
        SourceKind::Files
    }

    fn build(&self, cx: &BuildCtx<'_>) -> Result<u64> {
        use rayon::prelude::*;
        let mine: Vec<_> = cx
            .next
            .objects
            .iter()
            .filter(|(k, _)| cx.next.sources.get(&k.source) == Some(&SourceKind::Files))
            .collect();
        // Links and unchanged files first, on this thread; then the files to
        // rebuild, on all cores.
        let mut rebuild_list = Vec::new();
        for (key, obj) in mine {
            let rel = Path::new(GEN_FILES).join(&key.source).join(&key.path);
            let dest = cx.new_gen.join(&rel);
            let parent = dest.parent().expect("object paths have a parent");
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
            match obj {
                Object::Symlink { target } => std::os::unix::fs::symlink(target, &dest)
                    .with_context(|| format!("cannot create link {}", dest.display()))?,
                Object::File(f) => {
                    let unchanged = cx.prev.objects.get(key) == Some(obj);
                    let linked = unchanged
                        && cx
                            .prev_gen
                            .is_some_and(|g| std::fs::hard_link(g.join(&rel), &dest).is_ok());
                    if linked {
                        cx.progress.inc(f.size);
                    } else {
                        rebuild_list.push((key, f, dest));
                    }
                }
            }
        }
        rebuild_list
            .par_iter()
            .try_for_each(|(key, f, dest)| rebuild(cx, key, f, dest))?;
        Ok(rebuild_list.iter().map(|(_, f, _)| f.size).sum())
    }
}

/// Writes an object from its chunks, checking its size and SHA-256.
fn rebuild(cx: &BuildCtx<'_>, key: &ObjectKey, f: &FileObject, dest: &Path) -> Result<()> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dest)
        .with_context(|| format!("cannot create {}", dest.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut sha = Sha256Hasher::new();
    let mut size = 0u64;
    for r in f.chunks() {
        let data = cx
            .chunks
            .get(&r.id)
            .with_context(|| format!("object {key}"))?;
        if data.len() != r.len as usize {
            bail!(
                "object {key}: chunk {} has {} bytes, the catalog says {}",
                r.id,
                data.len(),
                r.len
            );
        }
        sha.update(&data);
        size += data.len() as u64;
        out.write_all(&data)
            .with_context(|| format!("cannot write {}", dest.display()))?;
        cx.progress.inc(data.len() as u64);
    }
    out.flush()
        .with_context(|| format!("cannot write {}", dest.display()))?;
    let actual = sha.finish();
    if size != f.size || actual != f.sha256 {
        bail!(ferry_protocol::Error::BadObject {
            key: key.to_string(),
            why: format!(
                "rebuilt {size} bytes with SHA-256 {actual}, expected {} bytes with {}",
                f.size, f.sha256
            ),
        });
    }
    let mode = if f.executable { 0o755 } else { 0o644 };
    std::fs::set_permissions(dest, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set mode of {}", dest.display()))?;
    Ok(())
}
