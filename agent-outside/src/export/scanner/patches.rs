//! The scan's changed objects: whether each ships whole or as a patch
//! against its predecessor, the patches made on the analysis pool, and
//! their results taken back in scan order.

use super::{Encoded, Pending, Plan, ScanSlot, Scanner, INFLIGHT_BYTES};
use crate::delta;
use anyhow::{anyhow, Context, Result};
use ferry_protocol::catalog::{Encoding, Expanded, FileObject, Object, Rebuilt};
use ferry_protocol::id::ChunkId;
use ferry_protocol::path::ObjectKey;
use std::ops::Range;
use std::sync::mpsc;

impl Scanner<'_> {
    /// What to do with a changed object once cut (`whole`, with the chunks
    /// shipping it whole would add): keep the last bundle's object when it
    /// is unchanged (an index without a fingerprint, read again), name an
    /// adopted one (held by every inside outside Ferry), patch it against
    /// its predecessor, or ship it whole (counted in the report).
    pub(super) fn plan_cut(
        &mut self,
        key: &ObjectKey,
        hint: Option<&ObjectKey>,
        whole: &FileObject,
        new_chunks: &[(ChunkId, Range<usize>)],
    ) -> Result<Plan> {
        if let Some(last) = self.last.object(key)? {
            if let Object::File(prev) = &last {
                let same = prev.sha256 == whole.sha256 && prev.executable == whole.executable;
                if same && self.chunks_known(&last) {
                    return Ok(Plan::Done(prev.clone()));
                }
            }
        }
        if self.adopted.get(&whole.sha256) == Some(&whole.size) {
            return Ok(Plan::Done(whole.clone()));
        }
        let whole_cost: u64 = new_chunks.iter().map(|(_, r)| r.len() as u64).sum();
        match self.families.predecessor(key, hint, whole.size)? {
            Some((k, b)) if b.sha256 != whole.sha256 && whole_cost > 0 => Ok(Plan::Patch((k, b))),
            _ => {
                self.report.whole += 1;
                self.report.whole_bytes += whole.size;
                Ok(Plan::Whole)
            }
        }
    }

    /// Starts the patch of `content` (object `key`, `whole` as shipped
    /// whole) against `base` on the analysis pool.
    pub(super) fn start_patch(
        &mut self,
        key: &ObjectKey,
        base: (ObjectKey, FileObject),
        content: delta::Content,
        whole: FileObject,
        new_chunks: Vec<(ChunkId, Range<usize>)>,
        level: i32,
    ) -> Encoded {
        let (tx, rx) = mpsc::sync_channel(1);
        let (refs, recipes) = (self.refs.clone(), self.recipes.clone());
        let (opts, key) = (self.delta, key.clone());
        let (size, sha256) = (whole.size, whole.sha256);
        self.analysis.spawn(move || {
            let patched = delta::patch_against(
                &key, content, &sha256, &base.0, &base.1, &refs, &opts, level, &recipes,
            );
            let _ = tx.send(patched);
        });
        let whole_cost = new_chunks.iter().map(|(_, r)| r.len() as u64).sum();
        Encoded::Pending(Box::new(Pending {
            whole,
            new_chunks,
            whole_cost,
            size,
            patched: rx,
        }))
    }

    /// Sends the chunks `new_chunks` of an object shipped whole, read back
    /// from its kept copy (each checked against its id) a chunk at a time.
    pub(super) fn send_kept(
        &mut self,
        key: &ObjectKey,
        whole: &FileObject,
        new_chunks: Vec<(ChunkId, Range<usize>)>,
    ) -> Result<()> {
        use std::os::unix::fs::FileExt;
        if new_chunks.is_empty() {
            return Ok(());
        }
        let dir = self.refs.dir().display().to_string();
        let lost = || {
            anyhow!("the copy of {key} kept in {dir} vanished or was damaged during the export; export again")
        };
        let copy = self
            .refs
            .open(&whole.sha256, whole.size)?
            .ok_or_else(lost)?;
        for (id, range) in new_chunks {
            let mut bytes = vec![0u8; range.len()];
            copy.read_exact_at(&mut bytes, range.start as u64)
                .with_context(|| format!("cannot read the copy of {key} kept in {dir}"))?;
            if ChunkId::of(&bytes) != id {
                return Err(lost());
            }
            self.send(id, bytes)?;
        }
        Ok(())
    }

    /// Queues an object whose patch is being made; settles the oldest ones
    /// while too many objects (or bytes) are in flight.
    pub(super) fn queue(
        &mut self,
        key: ObjectKey,
        p: Pending,
        scan: Option<ScanSlot>,
    ) -> Result<()> {
        self.inflight_bytes += p.size;
        self.pending_keys.insert(key.clone());
        self.pending.push_back((key, p, scan));
        let most = 2 * self.analysis.current_num_threads();
        while self.pending.len() > most
            || (self.pending.len() > 1 && self.inflight_bytes > INFLIGHT_BYTES)
        {
            self.settle_one()?;
        }
        Ok(())
    }

    /// Waits for every object in flight and records it.
    pub(super) fn settle_all(&mut self) -> Result<()> {
        while !self.pending.is_empty() {
            self.settle_one()?;
        }
        Ok(())
    }

    /// Waits for the oldest object in flight: ships it as its patch if that
    /// costs less than its new chunks, else whole; records it.
    pub(super) fn settle_one(&mut self) -> Result<()> {
        let Some((key, p, scan)) = self.pending.pop_front() else {
            return Ok(());
        };
        self.inflight_bytes -= p.size;
        self.pending_keys.remove(&key);
        let patched = p
            .patched
            .recv()
            .map_err(|_| anyhow!("the analysis of {key} stopped"))??;
        if patched.as_ref().is_some_and(|p| p.reused) {
            self.report.reused += 1;
        }
        let object = match patched {
            Some(patch) if patch.cost() + patch.entry_cost() < p.whole_cost => {
                self.report.patched += 1;
                self.report.patched_bytes += p.whole.size;
                self.report.patch_bytes += patch.cost();
                self.ship_patched(p.whole, patch)?
            }
            _ => {
                self.report.whole += 1;
                self.report.whole_bytes += p.whole.size;
                self.send_kept(&key, &p.whole, p.new_chunks)?;
                p.whole
            }
        };
        self.record(key, Object::File(object), scan)
    }

    /// Cuts a patch's recipe and frames into chunks, sends the new ones, and
    /// returns the object with its `Rebuilt` encoding.
    pub(super) fn ship_patched(
        &mut self,
        whole: FileObject,
        p: delta::Patched,
    ) -> Result<FileObject> {
        let recipe = self.cut_bytes(&p.recipe)?;
        let expanded = match &p.patch {
            delta::Frames::One(frame) => Expanded::Patch {
                base: p.base,
                patch: self.cut_frame(frame)?,
            },
            delta::Frames::Windows(windows) => {
                let mut entries = Vec::with_capacity(windows.windows.len());
                for w in &windows.windows {
                    let chunks = self.cut_spilled_frame(windows, w)?;
                    entries.push(w.entry(chunks));
                }
                Expanded::Windows {
                    base: p.base,
                    windows: entries,
                }
            }
        };
        Ok(FileObject {
            encoding: Encoding::Rebuilt(Box::new(Rebuilt {
                recipe,
                expanded_len: p.expanded_len,
                expanded_blake3: p.expanded_blake3,
                expanded,
            })),
            ..whole
        })
    }
}
