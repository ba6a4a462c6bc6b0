//! Step 4 of an apply: where the chunks the build needs are (the bundle's
//! volumes, the chunk store and staging, ranges of the previous
//! generation's files, adopted locations), and, after the build, the
//! chunks the store must keep copied into staging.

use crate::carried::Carried;
use crate::chunkstore::ChunkStore;
use crate::db::Db;
use crate::delta::Catalogs;
use crate::layout::Layout;
use crate::ranges::{self, ChunkSource, RangeIndex};
use crate::store;
use anyhow::{bail, Result};
use ferry_protocol::id::ChunkId;
use ferry_protocol::path::ObjectKey;
use std::collections::HashSet;
use std::path::Path;

/// Step 4: every chunk the build of `next` may read that the bundle's
/// volumes (`carried`), the store and staging lack must be a range of a file of the previous generation
/// `prev_gen` (serving `prev`); returns where those lie, and the chunks
/// found nowhere, each with an object that needs it. The chunks of an
/// unchanged file are not needed when its object is held (as
/// `store::materialize` decides: in the object store, held unless `scrub`
/// recorded it `missing`; in an older generation's tree, a presence
/// check); an unchanged patched file is never rebuilt from its patch
/// otherwise, since its patch chunks are not kept (bundle-format §5.6).
/// Also returns the chunks of the unchanged files that are rebuilt.
pub(super) fn index_needed(
    snap: &crate::db::Snapshot,
    catalogs: &Catalogs<'_>,
    (prev_gen, objects_root): (Option<&Path>, &Path),
    (carried, chunks, missing): (
        Option<&Carried<'_>>,
        &ChunkStore,
        &HashSet<ferry_protocol::id::Sha256>,
    ),
) -> Result<Needed> {
    let objects = crate::objects::ObjectStore::new(objects_root);
    let files = gen_files(prev_gen, &objects)?;
    let in_objects = matches!(files, Some(ranges::Files::Objects(_)));
    let sources = catalogs.sources();
    let mut wanted: HashSet<ChunkId> = HashSet::new();
    let mut needed_by = Vec::new();
    let mut relinked = HashSet::new();
    store::files_to_look(catalogs, None, (in_objects, missing), &mut |key, f, h| {
        let unchanged = match h {
            store::Holding::Held => return Ok(()),
            store::Holding::InTree => {
                let in_tree = || {
                    files
                        .and_then(|at| at.path(sources, &key, &f.sha256))
                        .and_then(|p| p.metadata().ok())
                        .is_some_and(|m| m.is_file() && m.len() == f.size)
                };
                if objects.holds(&f.sha256, f.size) || in_tree() {
                    return Ok(());
                }
                true
            }
            store::Holding::Look { unchanged } => unchanged,
        };
        if unchanged {
            relinked.extend(f.chunks().map(|r| r.id));
        }
        for r in f.chunks() {
            if !held_here(carried, chunks, &r.id) && wanted.insert(r.id) {
                needed_by.push((key.clone().into_owned(), r.id));
            }
        }
        Ok(())
    })?;
    let index = match files {
        Some(at) => RangeIndex::from_snapshot(snap, at, &wanted)?,
        None => RangeIndex::empty(),
    };
    let wanting = needed_by
        .into_iter()
        .filter(|(_, id)| !index.contains(id))
        .collect();
    Ok(Needed {
        ranges: index,
        wanting,
        relinked,
    })
}

/// Whether the bundle carries `id` (nothing read) or the store or staging
/// holds it (a file is looked for only when the bundle does not carry it).
fn held_here(carried: Option<&Carried<'_>>, chunks: &ChunkStore, id: &ChunkId) -> bool {
    carried.is_some_and(|c| c.contains(id)) || chunks.contains(id)
}

/// Where the files of the generation in `gen` (if any) are.
pub(super) fn gen_files<'a>(
    gen: Option<&'a Path>,
    objects: &'a crate::objects::ObjectStore,
) -> Result<Option<ranges::Files<'a>>> {
    Ok(gen.map(|g| ranges::Files::of_gen(g, objects)).transpose()?)
}

/// What [`index_needed`] found.
pub(super) struct Needed {
    /// Where the chunks the build needs lie in the previous generation.
    pub ranges: RangeIndex,
    /// Chunks nothing holds, with an object needing each (for adopt).
    pub wanting: Vec<(ObjectKey, ChunkId)>,
    /// The chunks of unchanged files rebuilt rather than linked.
    pub relinked: HashSet<ChunkId>,
}

/// Step 4, continued: the objects whose chunks nothing holds are taken from
/// where `ferry-in adopt` found them (`crate::adopt::stage`, each checked);
/// any other is an error naming the object and the chunk.
pub(super) fn stage_adopted(
    layout: &Layout,
    catalogs: &Catalogs<'_>,
    wanting: &[(ObjectKey, ChunkId)],
    chunks: &crate::chunkstore::ChunkStore,
) -> Result<()> {
    let mut keys: Vec<&ObjectKey> = wanting.iter().map(|(k, _)| k).collect();
    keys.dedup();
    if keys.is_empty() {
        return Ok(());
    }
    let next = catalogs.next_at(keys.iter().copied())?;
    let left = crate::adopt::stage::stage(layout, &next, &keys, chunks)?;
    if let Some((key, id)) = wanting.iter().find(|(k, _)| left.contains(k)) {
        bail!(
            "object {key} needs chunk {id}, which neither the chunk store nor the bundle holds, \
             nor a file of the current generation, nor an adopted location (if `ferry-in scrub` \
             quarantined it, have the outside re-ship it)"
        );
    }
    Ok(())
}

/// The chunks `scrub` recorded missing ([`Db::missing`]) that the next
/// catalog (`snap` changed by the changes of `catalogs`) keeps, not as a range of a file,
/// must be carried by the bundle or in the store or staging again (shipped
/// again): otherwise the apply is refused, naming the chunk and an object
/// keeping it. Returns the recorded chunks this apply resolves (held again,
/// or no longer kept).
pub(super) fn check_missing(
    db: &Db,
    snap: &crate::db::Snapshot,
    catalogs: &Catalogs<'_>,
    (carried, chunks): (Option<&Carried<'_>>, &ChunkStore),
) -> Result<Vec<ChunkId>> {
    let mut resolved = Vec::new();
    let missing = db.missing()?;
    let ids: HashSet<ChunkId> = missing.iter().copied().collect();
    // The uses of those chunks only (usually none: no overlay at all).
    let overlay = ranges::Overlay::of_among(snap, &ids, catalogs.changes(), |k| {
        catalogs.puts().contains_key(k) || catalogs.removes().binary_search(k).is_ok()
    })?;
    for id in missing {
        let uses = overlay.uses(snap, &id)?;
        if held_here(carried, chunks, &id) || uses.is_empty() {
            resolved.push(id);
            continue;
        }
        if let Some(u) = uses
            .iter()
            .find(|u| matches!(u, crate::db::Use::Held { .. }))
        {
            bail!(
                "object {} needs chunk {id}, which neither the chunk store nor the bundle holds \
                 (`ferry-in scrub` found it missing or rotten; have the outside re-ship it: \
                 `ferry-out export --reship`)",
                u.key()
            );
        }
    }
    Ok(resolved)
}

/// After the build: checks the carried chunks no object read (every chunk
/// of the bundle is checked before anything of it becomes visible), then
/// stages and moves into the store the chunks it must keep for the next
/// catalog (`snap` changed by the changes of `catalogs`) that it lacks.
/// The store changes only for the chunks the changes touch (`extra`: the
/// chunks of unchanged files rebuilt, ranges again; those `scrub` found
/// missing that the bundle brings again). Returns the touched chunks step 8
/// prunes among (those the catalog before used: the store holds no other,
/// but the ones that join it now, kept) and how many chunks joined it.
///
/// Over an empty catalog (a first import) no chunk was used before, so
/// none is pruned, and the chunks to keep are found from the puts alone
/// (`ranges::store_only_of_puts`): neither the touched chunks nor an
/// overlay of the change (the whole catalog) is held.
pub(super) fn keep_chunks(
    (snap, catalogs): (&crate::db::Snapshot, &Catalogs<'_>),
    extra: HashSet<ChunkId>,
    source: &ChunkSource<'_>,
) -> Result<(HashSet<ChunkId>, u64)> {
    if let Some(c) = source.carried {
        c.check_unread()?;
    }
    if catalogs.is_delta() || !catalogs.prev_is_empty()? {
        return keep_chunks_of_delta((snap, catalogs), extra, source);
    }
    // `extra` (chunks of unchanged files, chunks `scrub` found missing)
    // adds nothing here: no file is unchanged, and a chunk counts only
    // through a use by the puts.
    let keep = ranges::store_only_of_puts(catalogs.puts().iter());
    copy_kept(source, &keep)?;
    let added = source.store.commit_staged(|id| keep.contains(id))?;
    Ok((HashSet::new(), added))
}

/// [`keep_chunks`] of a delta (or of a rebase snapshot), among the chunks
/// its changes touch.
fn keep_chunks_of_delta(
    (snap, catalogs): (&crate::db::Snapshot, &Catalogs<'_>),
    extra: HashSet<ChunkId>,
    source: &ChunkSource<'_>,
) -> Result<(HashSet<ChunkId>, u64)> {
    let overlay = ranges::Overlay::of(catalogs.changes());
    let mut touched = ranges::touched_chunks(snap, catalogs.changes())?;
    touched.extend(extra);
    let keep = ranges::store_only_among(snap, &overlay, &touched, None)?;
    let prune_among = ranges::used_in(snap, &touched)?;
    copy_kept(source, &keep)?;
    let added = source.store.commit_staged(|id| keep.contains(id))?;
    Ok((prune_among, added))
}

/// Copies into staging, checked, each chunk of `keep` (the chunks the
/// store must hold for the next catalog) that neither the store nor staging
/// holds: one the bundle's volumes carry (as stored there; a copy in the
/// store that no longer checks is replaced), or one that was only a range
/// of a file of the previous generation. Returns how many it copied.
fn copy_kept(source: &ChunkSource<'_>, keep: &HashSet<ChunkId>) -> Result<u64> {
    use rayon::prelude::*;
    let copied = std::sync::atomic::AtomicU64::new(0);
    keep.par_iter().try_for_each(|id| -> Result<()> {
        let carried = source.carried.filter(|c| c.contains(id));
        let held = match carried {
            Some(_) => source.store.holds_intact(id),
            None => source.store.contains(id),
        };
        if held {
            return Ok(());
        }
        let (codec, raw_len, stored) = match carried.and_then(|c| c.get_stored(id)) {
            Some(read) => read?,
            None => {
                let data = source.get(id)?;
                let (codec, stored) = ferry_protocol::codec::encode(&data, 3);
                (codec, data.len() as u32, stored)
            }
        };
        source.store.put(id, codec, raw_len, &stored)?;
        copied.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    })?;
    Ok(copied.into_inner())
}
