//! The small kept copies, appended to a few pack files instead of a file
//! each (`References` keeps the larger ones, and the links, as files).
//!
//! A first export of a tree of many small files created a file per object
//! for its kept copy, and on ext4 creating a file costs more than chunking,
//! hashing and compressing a small one: on the 17,033 files of
//! `tests/bench/export_vs_tar.sh`, 23–30% of the export's CPU went to
//! allocating inodes (`ext4_create`). A copy of at most [`PACKED_MOST`] bytes
//! is now a record appended to the pack this process writes.
//!
//! **Layout** (directory `STATE/objects/packs/`):
//! - `<n>.pack`: [`PACK_MAGIC`], then records, each the object's SHA-256
//!   (32 bytes), its length (u64, little-endian) and its bytes.
//! - `<n>.idx`: the pack's live records. [`IDX_MAGIC`], then per record its
//!   SHA-256, the offset of its bytes and its length (u64 LE each: 48 bytes),
//!   then the BLAKE3 of all that. Written when the pack is closed and again
//!   after removals, through a temporary name and a rename.
//!
//! **Invariants.**
//! - One [`Packs`] per directory in a process ([`Packs::shared`]), and one
//!   process per state (the ledger's lock): nothing else writes a pack.
//! - A pack is appended to only by the process that created it, and never
//!   after it is closed.
//! - Like every copy, a record is a cache: nothing is synced, and every read
//!   is checked against the SHA-256 by its caller (`References`). A pack
//!   whose index is missing or does not check (a crash before it was
//!   written) is indexed again from its record headers, up to the first
//!   that does not fit in the file; an index that cannot be read, likewise.
//!   A pack that cannot be read (an I/O error) is left out with a warning,
//!   never failing the export: its objects ship whole when they next
//!   change, and new packs take ids past it. An index whose pack is gone
//!   is removed when the directory is read, so a reused id never meets it.
//! - A removal drops the record from the index only. When the pack's live
//!   bytes fall under half its length it is rewritten: its live records are
//!   appended to the pack being written, whose index is saved before the old
//!   pack is removed (a crash in between leaves a record twice, never none).

use anyhow::{Context, Result};
use ferry_protocol::id::Sha256;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// The largest copy kept in a pack; a larger one is a file of its own.
pub(crate) const PACKED_MOST: usize = 1 << 20;

/// The first bytes of a pack.
const PACK_MAGIC: &[u8; 8] = b"FERRYPK1";
/// The first bytes of a pack's index.
const IDX_MAGIC: &[u8; 8] = b"FERRYPX1";
/// A record's header: the SHA-256 and the length.
const HEADER: u64 = 40;
/// An index entry: SHA-256, offset, length.
const ENTRY: usize = 48;
/// A pack being written is closed and another started past this length.
const PACK_MOST: u64 = 256 << 20;
/// Bytes appended before they are written to the pack's file.
const BUFFERED: usize = 1 << 20;

/// Where a record's bytes are.
#[derive(Clone, Copy, Debug)]
struct Loc {
    pack: u32,
    offset: u64,
    len: u64,
}

/// A pack on disk.
struct Pack {
    file: Arc<File>,
    /// Its length in bytes (the pack being written: with its buffer).
    len: u64,
    /// The bytes of its live records, headers included.
    live: u64,
    /// Its index on disk is not that of its live records.
    dirty: bool,
}

/// The pack being written.
struct Writer {
    id: u32,
    /// Appended, not yet written to the file.
    buf: Vec<u8>,
    /// The file's length (without `buf`).
    written: u64,
}

/// What is known once the directory is read.
struct State {
    index: HashMap<Sha256, Loc>,
    packs: BTreeMap<u32, Pack>,
    writer: Option<Writer>,
    /// The id of the next pack: past every pack listed, those left out as
    /// unreadable included.
    next_id: u32,
}

/// The packs of one directory.
pub(crate) struct Packs {
    dir: PathBuf,
    /// `None` until first used (reading the indexes).
    state: Mutex<Option<State>>,
}

impl Packs {
    /// The packs of `dir`, shared with every other user of that directory
    /// in this process.
    pub(crate) fn shared(dir: PathBuf) -> Arc<Packs> {
        static OPEN: Mutex<Vec<(PathBuf, Weak<Packs>)>> = Mutex::new(Vec::new());
        let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
        open.retain(|(_, w)| w.strong_count() > 0);
        if let Some(p) = open
            .iter()
            .find(|(d, _)| *d == dir)
            .and_then(|(_, w)| w.upgrade())
        {
            return p;
        }
        let packs = Arc::new(Packs {
            dir: dir.clone(),
            state: Mutex::new(None),
        });
        open.push((dir, Arc::downgrade(&packs)));
        packs
    }

    /// The directory of the packs.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn state(&self) -> Result<MutexGuard<'_, Option<State>>> {
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            *guard = Some(load(&self.dir)?);
        }
        Ok(guard)
    }

    /// Whether a copy of `sha` is packed.
    pub(crate) fn contains(&self, sha: &Sha256) -> Result<bool> {
        Ok(live(&mut self.state()?).index.contains_key(sha))
    }

    /// Appends the copy of `sha`, unless one is packed already.
    pub(crate) fn put(&self, sha: &Sha256, data: &[u8]) -> Result<()> {
        let mut guard = self.state()?;
        let st = live(&mut guard);
        if st.index.contains_key(sha) {
            return Ok(());
        }
        let full = |w: &Writer| w.written + w.buf.len() as u64 >= PACK_MOST;
        if st.writer.as_ref().is_some_and(full) {
            close_writer(&self.dir, st)?;
        }
        append(&self.dir, st, sha, data)
    }

    /// The packed bytes of `sha` (not checked here), and its first
    /// `at_most` bytes only if `at_most` is given.
    pub(crate) fn read(&self, sha: &Sha256, at_most: Option<u64>) -> Result<Option<Vec<u8>>> {
        let (file, loc) = {
            let mut guard = self.state()?;
            let st = live(&mut guard);
            let Some(loc) = st.index.get(sha).copied() else {
                return Ok(None);
            };
            if st.writer.as_ref().is_some_and(|w| w.id == loc.pack) {
                flush(&self.dir, st)?;
            }
            (Arc::clone(&st.packs[&loc.pack].file), loc)
        };
        let len = at_most.map_or(loc.len, |m| m.min(loc.len));
        let mut bytes = vec![0u8; len as usize];
        match file.read_exact_at(&mut bytes, loc.offset) {
            Ok(()) => Ok(Some(bytes)),
            // Cut short under it (a crash tore it): as if not kept.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                self.remove(sha)?;
                Ok(None)
            }
            Err(e) => Err(e).with_context(|| {
                format!("cannot read {}", pack_path(&self.dir, loc.pack).display())
            }),
        }
    }

    /// Drops the copy of `sha`, if packed.
    pub(crate) fn remove(&self, sha: &Sha256) -> Result<()> {
        let mut guard = self.state()?;
        let st = live(&mut guard);
        if let Some(loc) = st.index.remove(sha) {
            drop_record(st, loc);
        }
        Ok(())
    }

    /// Drops every copy whose digest is not in `keep`.
    pub(crate) fn retain(&self, keep: &HashSet<Sha256>) -> Result<()> {
        let mut guard = self.state()?;
        let st = live(&mut guard);
        let gone: Vec<Loc> = st
            .index
            .iter()
            .filter(|(sha, _)| !keep.contains(*sha))
            .map(|(_, loc)| *loc)
            .collect();
        st.index.retain(|sha, _| keep.contains(sha));
        for loc in gone {
            drop_record(st, loc);
        }
        Ok(())
    }

    /// Closes the pack being written and saves every index that changed,
    /// rewriting the packs mostly dropped (see the module's invariants).
    pub(crate) fn save(&self) -> Result<()> {
        let mut guard = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some(st) = guard.as_mut() else {
            return Ok(());
        };
        let writing = st.writer.as_ref().map(|w| w.id);
        let sparse: Vec<u32> = st
            .packs
            .iter()
            .filter(|(id, p)| Some(**id) != writing && p.live * 2 < p.len)
            .map(|(id, _)| *id)
            .collect();
        for id in &sparse {
            let mut moved: Vec<(Sha256, Loc)> = st
                .index
                .iter()
                .filter(|(_, l)| l.pack == *id)
                .map(|(s, l)| (*s, *l))
                .collect();
            moved.sort_by_key(|(_, l)| l.offset);
            let file = Arc::clone(&st.packs[id].file);
            for (sha, loc) in moved {
                let mut bytes = vec![0u8; loc.len as usize];
                if file.read_exact_at(&mut bytes, loc.offset).is_err() {
                    st.index.remove(&sha);
                    continue;
                }
                st.index.remove(&sha);
                append(&self.dir, st, &sha, &bytes)?;
            }
        }
        close_writer(&self.dir, st)?;
        for id in sparse {
            st.packs.remove(&id);
            remove_pack(&self.dir, id)?;
        }
        let ids: Vec<u32> = st.packs.keys().copied().collect();
        for id in ids {
            let pack = &st.packs[&id];
            if pack.live == 0 {
                st.packs.remove(&id);
                remove_pack(&self.dir, id)?;
            } else if pack.dirty {
                write_index(&self.dir, id, &st.index)?;
                st.packs.get_mut(&id).expect("listed").dirty = false;
            }
        }
        Ok(())
    }
}

impl Drop for Packs {
    fn drop(&mut self) {
        if let Err(e) = self.save() {
            eprintln!(
                "ferry-out: warning: cannot save the index of the copies packed in {} ({e:#}); \
                 the next export reads them again",
                self.dir.display()
            );
        }
    }
}

/// The loaded state (`Packs::state` loads it).
fn live<'a>(guard: &'a mut MutexGuard<'_, Option<State>>) -> &'a mut State {
    guard.as_mut().expect("loaded")
}

fn pack_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("{id}.pack"))
}

fn idx_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("{id}.idx"))
}

/// A record gone from the index: its pack's live bytes.
fn drop_record(st: &mut State, loc: Loc) {
    if let Some(p) = st.packs.get_mut(&loc.pack) {
        p.live = p.live.saturating_sub(HEADER + loc.len);
        p.dirty = true;
    }
}

/// Appends the record of `sha` (not indexed) to the pack being written.
fn append(dir: &Path, st: &mut State, sha: &Sha256, data: &[u8]) -> Result<()> {
    if st.writer.is_none() {
        open_writer(dir, st)?;
    }
    let w = st.writer.as_mut().expect("a pack is being written");
    let at = w.written + w.buf.len() as u64;
    w.buf.extend_from_slice(&sha.0);
    w.buf.extend_from_slice(&(data.len() as u64).to_le_bytes());
    w.buf.extend_from_slice(data);
    let id = w.id;
    let rec = HEADER + data.len() as u64;
    st.index.insert(
        *sha,
        Loc {
            pack: id,
            offset: at + HEADER,
            len: data.len() as u64,
        },
    );
    let pack = st
        .packs
        .get_mut(&id)
        .expect("the pack being written is listed");
    pack.len = at + rec;
    pack.live += rec;
    pack.dirty = true;
    if w.buf.len() >= BUFFERED {
        flush(dir, st)?;
    }
    Ok(())
}

/// Starts a new pack (named one past the highest).
fn open_writer(dir: &Path, st: &mut State) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let id = st.next_id;
    st.next_id = id.saturating_add(1);
    let path = pack_path(dir, id);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all_at(PACK_MAGIC, 0)
        .with_context(|| format!("cannot write {}", path.display()))?;
    let len = PACK_MAGIC.len() as u64;
    st.packs.insert(
        id,
        Pack {
            file: Arc::new(file),
            len,
            live: 0,
            dirty: true,
        },
    );
    st.writer = Some(Writer {
        id,
        buf: Vec::with_capacity(BUFFERED + PACKED_MOST + HEADER as usize),
        written: len,
    });
    Ok(())
}

/// Writes the pack being written's buffer to its file.
fn flush(dir: &Path, st: &mut State) -> Result<()> {
    let Some(w) = st.writer.as_mut() else {
        return Ok(());
    };
    if w.buf.is_empty() {
        return Ok(());
    }
    st.packs[&w.id]
        .file
        .write_all_at(&w.buf, w.written)
        .with_context(|| format!("cannot write {}", pack_path(dir, w.id).display()))?;
    w.written += w.buf.len() as u64;
    w.buf.clear();
    Ok(())
}

/// Flushes and closes the pack being written, saving its index.
fn close_writer(dir: &Path, st: &mut State) -> Result<()> {
    flush(dir, st)?;
    if let Some(w) = st.writer.take() {
        write_index(dir, w.id, &st.index)?;
        if let Some(p) = st.packs.get_mut(&w.id) {
            p.dirty = false;
        }
    }
    Ok(())
}

/// Writes the index of pack `id`: its records in `index`.
fn write_index(dir: &Path, id: u32, index: &HashMap<Sha256, Loc>) -> Result<()> {
    let mut entries: Vec<(&Sha256, &Loc)> = index.iter().filter(|(_, l)| l.pack == id).collect();
    entries.sort_by_key(|(_, l)| l.offset);
    let mut out = Vec::with_capacity(IDX_MAGIC.len() + entries.len() * ENTRY + 32);
    out.extend_from_slice(IDX_MAGIC);
    for (sha, loc) in entries {
        out.extend_from_slice(&sha.0);
        out.extend_from_slice(&loc.offset.to_le_bytes());
        out.extend_from_slice(&loc.len.to_le_bytes());
    }
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    super::write_cache_file(&idx_path(dir, id), &out)
}

/// Removes pack `id` and its index (the index first: a pack without one
/// is read again, an index without its pack is ignored).
fn remove_pack(dir: &Path, id: u32) -> Result<()> {
    super::remove_cache_file(&idx_path(dir, id))?;
    super::remove_cache_file(&pack_path(dir, id))
}

/// Reads the packs of `dir` and their indexes.
fn load(dir: &Path) -> Result<State> {
    let mut st = State {
        index: HashMap::new(),
        packs: BTreeMap::new(),
        writer: None,
        next_id: 0,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(st),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
    };
    let mut ids = Vec::new();
    let mut indexes = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let id_of = |suffix: &str| {
            name.strip_suffix(suffix)
                .and_then(|n| n.parse::<u32>().ok())
        };
        match (id_of(".pack"), id_of(".idx")) {
            (Some(id), _) => ids.push(id),
            (None, Some(id)) => indexes.push(id),
            // A temporary file an interrupted save left.
            (None, None) if name.starts_with('.') => {
                super::remove_cache_file(&entry.path())?;
            }
            (None, None) => {}
        }
    }
    ids.sort_unstable();
    st.next_id = ids.last().map_or(0, |n| n.saturating_add(1));
    // An index whose pack is gone (a removal cut short) would describe
    // another pack that reused its id.
    for id in indexes {
        if ids.binary_search(&id).is_err() {
            super::remove_cache_file(&idx_path(dir, id))?;
        }
    }
    for id in ids {
        let path = pack_path(dir, id);
        // A pack that cannot be read is left out, not the others with it:
        // its copies are a cache, their objects ship whole when they next
        // change.
        let Opened {
            file,
            len,
            records,
            dirty,
        } = match open_pack(dir, id, &path) {
            Ok(Some(opened)) => opened,
            Ok(None) => continue,
            Err(e) => {
                eprintln!(
                    "ferry-out: warning: {e:#}; the copies in it are left out (the objects \
                     they are the bases of ship whole when they next change)"
                );
                continue;
            }
        };
        let mut live = 0;
        for (sha, offset, rlen) in records {
            // A record also in an earlier pack (a rewrite a crash cut
            // short): the earlier one stands, this one is dead.
            if st.index.contains_key(&sha) {
                continue;
            }
            live += HEADER + rlen;
            st.index.insert(
                sha,
                Loc {
                    pack: id,
                    offset,
                    len: rlen,
                },
            );
        }
        st.packs.insert(
            id,
            Pack {
                file: Arc::new(file),
                len,
                live,
                dirty,
            },
        );
    }
    Ok(st)
}

type Record = (Sha256, u64, u64);

/// A pack opened by [`load`].
struct Opened {
    file: File,
    len: u64,
    records: Vec<Record>,
    /// Its index must be written again.
    dirty: bool,
}

/// Pack `id` at `path` opened, with its length and records; `None` if it
/// is gone.
fn open_pack(dir: &Path, id: u32, path: &Path) -> Result<Option<Opened>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read pack {}", path.display())),
    };
    let len = file
        .metadata()
        .with_context(|| format!("cannot read pack {}", path.display()))?
        .len();
    // An index that cannot be read is made again from the pack.
    let index = read_index(dir, id, len).unwrap_or_else(|e| {
        eprintln!("ferry-out: warning: {e:#}; indexing its pack again");
        None
    });
    let (records, dirty) = match index {
        Some(r) => (r, false),
        None => (scan(&file, len, path)?, true),
    };
    Ok(Some(Opened {
        file,
        len,
        records,
        dirty,
    }))
}

/// The records the index of pack `id` (of `len` bytes) lists, if it checks
/// and each lies within the pack.
fn read_index(dir: &Path, id: u32, len: u64) -> Result<Option<Vec<Record>>> {
    let path = idx_path(dir, id);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let body = bytes.len().wrapping_sub(32 + IDX_MAGIC.len());
    if bytes.len() < 32 + IDX_MAGIC.len() || body % ENTRY != 0 || !bytes.starts_with(IDX_MAGIC) {
        return Ok(None);
    }
    let (content, sum) = bytes.split_at(bytes.len() - 32);
    if blake3::hash(content).as_bytes() != sum {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(body / ENTRY);
    for e in content[IDX_MAGIC.len()..].chunks_exact(ENTRY) {
        let sha = Sha256(e[..32].try_into().expect("32 bytes"));
        let offset = u64::from_le_bytes(e[32..40].try_into().expect("8 bytes"));
        let rlen = u64::from_le_bytes(e[40..48].try_into().expect("8 bytes"));
        if offset < PACK_MAGIC.len() as u64 + HEADER
            || offset.checked_add(rlen).is_none_or(|end| end > len)
        {
            return Ok(None);
        }
        out.push((sha, offset, rlen));
    }
    Ok(Some(out))
}

/// The records of a pack read from their headers, up to the first that
/// does not fit in its `len` bytes (a crash's torn end).
fn scan(file: &File, len: u64, path: &Path) -> Result<Vec<Record>> {
    let mut magic = [0u8; 8];
    if len < PACK_MAGIC.len() as u64
        || file.read_exact_at(&mut magic, 0).is_err()
        || &magic != PACK_MAGIC
    {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let mut at = PACK_MAGIC.len() as u64;
    let mut head = [0u8; HEADER as usize];
    while at + HEADER <= len {
        file.read_exact_at(&mut head, at)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let rlen = u64::from_le_bytes(head[32..40].try_into().expect("8 bytes"));
        let Some(end) = (at + HEADER).checked_add(rlen).filter(|e| *e <= len) else {
            break;
        };
        if rlen > PACKED_MOST as u64 {
            break;
        }
        out.push((
            Sha256(head[..32].try_into().expect("32 bytes")),
            at + HEADER,
            rlen,
        ));
        at = end;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(i: u32, len: usize) -> (Sha256, Vec<u8>) {
        let data: Vec<u8> = (0..len as u32)
            .map(|j| (j.wrapping_mul(31) ^ i) as u8)
            .collect();
        (Sha256::of(&data), data)
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn copies_are_read_back_after_the_pack_is_closed_and_from_its_headers_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("packs");
        let objs: Vec<_> = (0..50).map(|i| obj(i, 1000 + 997 * i as usize)).collect();
        {
            let packs = Packs::shared(dir.clone());
            for (sha, data) in &objs {
                packs.put(sha, data).unwrap();
                // Read while still buffered.
                assert_eq!(packs.read(sha, None).unwrap().as_ref(), Some(data));
            }
            // The same directory shares one state.
            assert!(Packs::shared(dir.clone()).contains(&objs[3].0).unwrap());
        }
        assert_eq!(names(&dir), ["0.idx", "0.pack"]);
        let packs = Packs::shared(dir.clone());
        for (sha, data) in &objs {
            assert_eq!(packs.read(sha, None).unwrap().as_ref(), Some(data));
        }
        assert_eq!(
            packs.read(&objs[7].0, Some(4)).unwrap().unwrap(),
            objs[7].1[..4]
        );
        drop(packs);

        // No index (a crash before it was written), and the pack's last
        // record cut short: the others are found from their headers.
        std::fs::remove_file(dir.join("0.idx")).unwrap();
        let pack = dir.join("0.pack");
        let len = std::fs::metadata(&pack).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&pack).unwrap();
        f.set_len(len - 10).unwrap();
        drop(f);
        let packs = Packs::shared(dir.clone());
        for (sha, data) in &objs[..49] {
            assert_eq!(packs.read(sha, None).unwrap().as_ref(), Some(data));
        }
        assert!(!packs.contains(&objs[49].0).unwrap());
        drop(packs);
        assert!(dir.join("0.idx").exists(), "the index is written again");

        // An index that does not check is not believed.
        let idx = dir.join("0.idx");
        let mut bytes = std::fs::read(&idx).unwrap();
        bytes[20] ^= 1;
        std::fs::write(&idx, bytes).unwrap();
        let packs = Packs::shared(dir.clone());
        assert_eq!(
            packs.read(&objs[5].0, None).unwrap().as_ref(),
            Some(&objs[5].1)
        );
    }

    #[test]
    fn a_pack_mostly_removed_is_rewritten_with_what_is_left() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("packs");
        let objs: Vec<_> = (0..20).map(|i| obj(i, 5000)).collect();
        {
            let packs = Packs::shared(dir.clone());
            for (sha, data) in &objs {
                packs.put(sha, data).unwrap();
            }
        }
        // A few removed: the pack stays, its index shorter.
        {
            let packs = Packs::shared(dir.clone());
            packs.remove(&objs[0].0).unwrap();
            packs.remove(&objs[1].0).unwrap();
        }
        assert_eq!(names(&dir), ["0.idx", "0.pack"]);
        let packs = Packs::shared(dir.clone());
        assert!(!packs.contains(&objs[0].0).unwrap());
        assert!(packs.contains(&objs[2].0).unwrap());
        // Most gone: what is left moves to a new pack, the old one goes.
        let keep: HashSet<Sha256> = objs[15..].iter().map(|(s, _)| *s).collect();
        packs.retain(&keep).unwrap();
        drop(packs);
        assert_eq!(names(&dir), ["1.idx", "1.pack"]);
        let packs = Packs::shared(dir.clone());
        for (i, (sha, data)) in objs.iter().enumerate() {
            let got = packs.read(sha, None).unwrap();
            assert_eq!(got.as_ref(), (i >= 15).then_some(data), "object {i}");
        }
        let len = std::fs::metadata(dir.join("1.pack")).unwrap().len();
        assert_eq!(len, 8 + 5 * (40 + 5000));
        // All gone: no pack left.
        packs.retain(&HashSet::new()).unwrap();
        drop(packs);
        assert!(names(&dir).is_empty(), "{:?}", names(&dir));
    }

    #[test]
    fn an_unreadable_pack_is_left_out_and_an_orphan_index_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("packs");
        let objs: Vec<_> = (0..6).map(|i| obj(i, 3000)).collect();
        {
            let packs = Packs::shared(dir.clone());
            for (sha, data) in &objs[..3] {
                packs.put(sha, data).unwrap();
            }
        }
        assert_eq!(names(&dir), ["0.idx", "0.pack"]);
        // Pack 1 cannot be opened (a symbolic link to itself: ELOOP), its
        // index is an orphan of pack 2, gone; pack 0's index is unreadable.
        std::os::unix::fs::symlink("1.pack", dir.join("1.pack")).unwrap();
        std::fs::write(dir.join("2.idx"), b"an index of a pack removed").unwrap();
        std::fs::remove_file(dir.join("0.idx")).unwrap();
        std::fs::create_dir(dir.join("0.idx")).unwrap();
        {
            let packs = Packs::shared(dir.clone());
            for (sha, data) in &objs[..3] {
                assert_eq!(packs.read(sha, None).unwrap().as_ref(), Some(data));
            }
            // New copies go to a pack past the one left out.
            for (sha, data) in &objs[3..] {
                packs.put(sha, data).unwrap();
            }
        }
        // The orphan index was removed; 2.idx is the new pack's.
        assert!(dir.join("2.pack").is_file());
        assert!(std::fs::read(dir.join("2.idx"))
            .unwrap()
            .starts_with(IDX_MAGIC));
        let packs = Packs::shared(dir.clone());
        for (sha, data) in &objs {
            assert_eq!(packs.read(sha, None).unwrap().as_ref(), Some(data));
        }
    }
}
