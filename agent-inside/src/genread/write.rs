//! Writing a generation's path index (`index.base`, `index.delta`,
//! `index.meta`) into its directory, as `apply` builds it.
//!
//! The delta is the previous generation's delta merged with the keys the
//! bundle changed (`changed`), the base is hard-linked from the previous
//! generation: O(changes since the base). A new base is written (from the
//! previous base and the new delta, two sorted streams) when the delta
//! outgrows it (`pathindex::needs_new_base`), and from the next catalog
//! when there is nothing to build on (the first import, a rebase, a change
//! of kind: `changed` is None; or a previous generation written before the
//! index existed).

use super::{Meta, INDEX_BASE, INDEX_DELTA, INDEX_META};
use crate::delta::Catalogs;
use crate::genread::Held;
use crate::pathindex::{self, Entry, IndexError, IndexFile, Kind, View, Writer};
use anyhow::{Context, Result};
use ferry_protocol::catalog::Object;
use ferry_protocol::path::ObjectKey;
use std::collections::BTreeSet;
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

fn entry(o: &Object) -> Entry {
    match o {
        Object::File(f) => Held::File(f.into()).to_entry(),
        Object::Symlink { target } => Entry::Symlink {
            target: target.clone(),
        },
    }
}

fn create(path: &Path, kind: Kind) -> Result<Writer<BufWriter<File>>> {
    let f = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    Writer::new(BufWriter::new(f), kind).with_context(|| format!("{}", path.display()))
}

fn open(path: &Path) -> Result<IndexFile<File>> {
    let f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    IndexFile::open(f).with_context(|| format!("{}", path.display()))
}

/// Writes the index files of the next catalog of `next` into the
/// generation directory `new` being built; `prev` is the previous
/// generation's directory.
pub fn write_index(
    prev: Option<&Path>,
    new: &Path,
    next: &Catalogs<'_>,
    changed: Option<&BTreeSet<ObjectKey>>,
) -> Result<()> {
    let sums = next.sums();
    let meta = Meta {
        sources: next.sources().clone(),
        objects: sums.objects,
        bytes: sums.bytes,
        object_store: true,
        treeless: true,
    };
    std::fs::write(new.join(INDEX_META), serde_json::to_vec(&meta)?)
        .with_context(|| format!("cannot write {}", new.join(INDEX_META).display()))?;
    let prev = prev.filter(|p| p.join(INDEX_BASE).is_file() && p.join(INDEX_DELTA).is_file());
    match (prev, changed) {
        (Some(prev), Some(changed)) => write_delta(prev, new, next, changed),
        _ => write_whole(new, next),
    }
}

/// A base of every object of `next`, and an empty delta.
fn write_whole(new: &Path, next: &Catalogs<'_>) -> Result<()> {
    let mut w = create(&new.join(INDEX_BASE), Kind::Base)?;
    next.for_each_from(None, &mut |k, o| {
        w.push(&pathindex::key_of(k), &entry(o))?;
        Ok(true)
    })?;
    w.finish()?;
    create(&new.join(INDEX_DELTA), Kind::Delta)?.finish()?;
    Ok(())
}

/// The previous delta merged with the changes; the base linked, or written
/// anew when the delta has outgrown it.
fn write_delta(
    prev: &Path,
    new: &Path,
    next: &Catalogs<'_>,
    changed: &BTreeSet<ObjectKey>,
) -> Result<()> {
    let prev_delta = open(&prev.join(INDEX_DELTA))?;
    let mut entries = Vec::with_capacity(changed.len());
    for k in changed {
        let e = next.get(k)?.as_ref().map_or(Entry::Tombstone, entry);
        entries.push((pathindex::key_of(k), e));
    }
    let changes = entries.into_iter().map(Ok::<_, IndexError>);
    let delta_path = new.join(INDEX_DELTA);
    let mut w = create(&delta_path, Kind::Delta)?;
    pathindex::merge(prev_delta.scan_from(b""), changes, &mut w).with_context(|| {
        format!(
            "cannot merge {} with the changes into {}",
            prev.join(INDEX_DELTA).display(),
            delta_path.display()
        )
    })?;
    let (_, summary) = w
        .finish()
        .with_context(|| format!("cannot finish {}", delta_path.display()))?;
    let prev_base = prev.join(INDEX_BASE);
    let base_bytes = std::fs::metadata(&prev_base)
        .with_context(|| format!("cannot read {}", prev_base.display()))?
        .len();
    if !pathindex::needs_new_base(base_bytes, summary.bytes) {
        std::fs::hard_link(&prev_base, new.join(INDEX_BASE))
            .with_context(|| format!("cannot link {}", prev_base.display()))?;
        return Ok(());
    }
    let new_base = new.join(INDEX_BASE);
    let what = || {
        format!(
            "cannot write {} from {} and {}",
            new_base.display(),
            prev_base.display(),
            delta_path.display()
        )
    };
    let view = View::new(open(&prev_base)?, open(&delta_path)?).with_context(what)?;
    let mut w = create(&new_base, Kind::Base)?;
    for item in view.iter() {
        let (k, e) = item.with_context(what)?;
        w.push(&k, &e).with_context(what)?;
    }
    w.finish().with_context(what)?;
    drop(view);
    create(&delta_path, Kind::Delta)?.finish()?;
    Ok(())
}
