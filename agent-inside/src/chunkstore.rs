//! The content-addressed chunk store: `chunks/ab/abcdef…` (the id in hex,
//! fanned out by its first byte).
//!
//! A chunk file holds a 5-byte header (codec byte `0` raw or `1` zstd, raw
//! length as u32 little-endian) and the stored bytes as they came in the
//! bundle. Chunks enter only after their id has been checked, and every read
//! checks the id again, so a rotting disk is caught, not served.
//!
//! The store keeps the chunks of the current catalog that are not byte
//! ranges of a file of the current generation (`crate::ranges`): with those
//! ranges, it holds every chunk of the catalog, which the outside counts on
//! when it decides what to ship.

use anyhow::{bail, Context, Result};
use ferry_protocol::codec::{self, Codec};
use ferry_protocol::id::ChunkId;
use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The chunk store, optionally with a staging area in front of it.
///
/// While a bundle is applied the chunks it adds go to the staging area;
/// reads look in both. Only when the new generation has been built and
/// checked are the staged chunks moved into the store
/// ([`ChunkStore::commit_staged`]); a failed apply drops the staging area,
/// so the store never holds a chunk of a refused bundle. The store
/// remembers what it staged, so a read never looks for a file there.
pub struct ChunkStore {
    root: PathBuf,
    staging: Option<Staging>,
    max_chunk: u32,
}

/// A staging area and the chunks put there (by this value only: the apply
/// empties the area before it stages anything).
struct Staging {
    dir: PathBuf,
    ids: Mutex<HashSet<ChunkId>>,
}

impl Staging {
    fn holds(&self, id: &ChunkId) -> bool {
        self.ids.lock().expect("not poisoned").contains(id)
    }
}

fn chunk_path(root: &Path, id: &ChunkId) -> PathBuf {
    let h = id.to_hex();
    root.join(&h[..2]).join(&h)
}

impl ChunkStore {
    /// The store at `root`, refusing chunks over `max_chunk` bytes.
    pub fn new(root: &Path, max_chunk: u32) -> Self {
        ChunkStore {
            root: root.to_path_buf(),
            staging: None,
            max_chunk,
        }
    }

    /// The same store with new chunks written to `staging` instead; the
    /// staging area is empty or absent (the apply removes it first).
    pub fn with_staging(&self, staging: &Path) -> Self {
        ChunkStore {
            root: self.root.clone(),
            staging: Some(Staging {
                dir: staging.to_path_buf(),
                ids: Mutex::new(HashSet::new()),
            }),
            max_chunk: self.max_chunk,
        }
    }

    /// Where `id` is read from: the staging area when this store staged it
    /// (a staged copy is new, and replaces a rotten one in the store when
    /// committed), else the store. Nothing is looked up on disk.
    fn path(&self, id: &ChunkId) -> PathBuf {
        match &self.staging {
            Some(s) if s.holds(id) => chunk_path(&s.dir, id),
            _ => chunk_path(&self.root, id),
        }
    }

    /// How many chunks this store staged (and has not committed).
    pub fn staged(&self) -> usize {
        self.staging
            .as_ref()
            .map_or(0, |s| s.ids.lock().expect("not poisoned").len())
    }

    /// Whether the store (or its staging area) has a file for `id`; its
    /// bytes are not read. Where a decision would skip a copy of the chunk
    /// on offer (a bundle carries it, a peer offers it), use
    /// [`ChunkStore::holds_intact`], so a rotten copy is replaced instead.
    pub fn contains(&self, id: &ChunkId) -> bool {
        self.path(id).is_file()
    }

    /// Whether the store (or its staging area) holds `id` and its bytes,
    /// read now, still decode to `id`.
    pub fn holds_intact(&self, id: &ChunkId) -> bool {
        self.contains(id) && self.get(id).is_ok()
    }

    /// Moves the staged chunks for which `keep` is true into the store (the
    /// others go with the staging area). Not synced: the caller syncs the
    /// filesystem before committing.
    pub fn commit_staged(&self, keep: impl Fn(&ChunkId) -> bool) -> Result<u64> {
        let Some(staging) = &self.staging else {
            return Ok(0);
        };
        let mut ids = staging.ids.lock().expect("not poisoned");
        let mut n = 0;
        for id in ids.iter().filter(|id| keep(id)) {
            let dest = chunk_path(&self.root, id);
            let fan = dest.parent().expect("chunk paths have a parent");
            std::fs::create_dir_all(fan)
                .with_context(|| format!("cannot create {}", fan.display()))?;
            std::fs::rename(chunk_path(&staging.dir, id), &dest)
                .with_context(|| format!("cannot move chunk into {}", dest.display()))?;
            n += 1;
        }
        // What was not kept goes with the staging area.
        ids.clear();
        Ok(n)
    }

    /// Stores a chunk whose stored bytes have already been checked against `id`
    /// (in the staging area when there is one); the caller has checked that
    /// the store lacks it or holds it rotten (then this copy replaces it). Not synced: the caller syncs the filesystem before
    /// committing.
    pub fn put(&self, id: &ChunkId, codec: Codec, raw_len: u32, stored: &[u8]) -> Result<()> {
        let mut bytes = Vec::with_capacity(5 + stored.len());
        bytes.push(match codec {
            Codec::Raw => 0,
            Codec::Zstd => 1,
        });
        bytes.extend_from_slice(&raw_len.to_le_bytes());
        bytes.extend_from_slice(stored);
        let write = |path: &Path| -> std::io::Result<()> {
            match std::fs::write(path, &bytes) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    std::fs::create_dir_all(path.parent().expect("chunk paths have a parent"))?;
                    std::fs::write(path, &bytes)
                }
                r => r,
            }
        };
        match &self.staging {
            // The staging area is private and wiped on any failure or crash,
            // so a chunk can go straight to its name there.
            Some(s) => {
                let path = chunk_path(&s.dir, id);
                write(&path).with_context(|| format!("cannot write chunk {}", path.display()))?;
                s.ids.lock().expect("not poisoned").insert(*id);
                Ok(())
            }
            None => {
                let path = chunk_path(&self.root, id);
                let tmp = path.with_file_name(format!(".{}.tmp", id.to_hex()));
                write(&tmp)
                    .and_then(|_| std::fs::rename(&tmp, &path))
                    .with_context(|| format!("cannot write chunk {}", path.display()))
                    .inspect_err(|_| {
                        let _ = std::fs::remove_file(&tmp);
                    })
            }
        }
    }

    /// The largest chunk this store accepts.
    pub fn max_chunk(&self) -> u32 {
        self.max_chunk
    }

    /// Reads a chunk's stored form, after checking that it decodes to its id:
    /// `(codec, raw length, stored bytes)`.
    pub fn get_stored(&self, id: &ChunkId) -> Result<(Codec, u32, Vec<u8>)> {
        let (codec, raw_len, bytes) = self.read_file(id)?;
        codec::decode(id, codec, &bytes[5..], raw_len)
            .with_context(|| format!("chunk store file {} is corrupt", self.path(id).display()))?;
        Ok((codec, raw_len, bytes[5..].to_vec()))
    }

    fn read_file(&self, id: &ChunkId) -> Result<(Codec, u32, Vec<u8>)> {
        let path = self.path(id);
        let f = std::fs::File::open(&path)
            .with_context(|| format!("chunk {id} is missing from the chunk store"))?;
        self.read_open(f, &path)
    }

    fn read_open(&self, f: std::fs::File, path: &Path) -> Result<(Codec, u32, Vec<u8>)> {
        let mut bytes = Vec::new();
        f.take(5 + self.max_chunk as u64 * 2 + 1024)
            .read_to_end(&mut bytes)
            .with_context(|| format!("cannot read chunk {}", path.display()))?;
        if bytes.len() < 5 {
            bail!("chunk file {} is truncated", path.display());
        }
        let codec = match bytes[0] {
            0 => Codec::Raw,
            1 => Codec::Zstd,
            c => bail!("chunk file {} has unknown codec {c}", path.display()),
        };
        let raw_len = u32::from_le_bytes(bytes[1..5].try_into().expect("4 bytes"));
        if raw_len > self.max_chunk {
            bail!(
                "chunk file {} claims {raw_len} bytes, over the limit",
                path.display()
            );
        }
        Ok((codec, raw_len, bytes))
    }

    /// Reads a chunk and checks it against its id. A chunk whose bytes no
    /// longer match its id is an error naming it and the repair.
    pub fn get(&self, id: &ChunkId) -> Result<Vec<u8>> {
        let (codec, raw_len, bytes) = self.read_file(id)?;
        self.decode_read(id, codec, raw_len, &bytes)
    }

    /// Like [`ChunkStore::get`], but a chunk the store (and staging) does
    /// not hold is `None`, found by opening it (no look first).
    pub fn get_if_held(&self, id: &ChunkId) -> Result<Option<Vec<u8>>> {
        let path = self.path(id);
        let f = match std::fs::File::open(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            r => r.with_context(|| format!("cannot open chunk {}", path.display()))?,
        };
        let (codec, raw_len, bytes) = self.read_open(f, &path)?;
        self.decode_read(id, codec, raw_len, &bytes).map(Some)
    }

    fn decode_read(
        &self,
        id: &ChunkId,
        codec: Codec,
        raw_len: u32,
        bytes: &[u8],
    ) -> Result<Vec<u8>> {
        codec::decode(id, codec, &bytes[5..], raw_len).with_context(|| {
            format!(
                "chunk {id} in the chunk store ({}) is corrupt (bit rot?): run `ferry-in scrub` \
                 to quarantine it, and have the outside re-ship it",
                self.path(id).display()
            )
        })
    }

    /// The ids of the chunks in the store proper (not its staging area), in
    /// no particular order; stray files are skipped.
    pub fn ids(&self) -> Vec<ChunkId> {
        let mut out = Vec::new();
        for fan in std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
        {
            for e in std::fs::read_dir(fan.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                if let Some(id) = ChunkId::from_hex(&e.file_name().to_string_lossy()) {
                    out.push(id);
                }
            }
        }
        out
    }

    /// Moves chunk `id` out of the store into the directory `to`, so the
    /// store no longer claims to hold it. Returns where it went.
    pub fn quarantine(&self, id: &ChunkId, to: &Path) -> Result<PathBuf> {
        let from = chunk_path(&self.root, id);
        std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
        let dest = to.join(id.to_hex());
        std::fs::rename(&from, &dest)
            .with_context(|| format!("cannot move {} to {}", from.display(), dest.display()))?;
        Ok(dest)
    }

    /// Removes the temporary files an interrupted write left in the store
    /// proper (`.<id>.tmp`); lists the store, reads no chunk.
    pub fn sweep_temporary(&self) -> Result<u64> {
        let mut n = 0;
        let Ok(rd) = std::fs::read_dir(&self.root) else {
            return Ok(0);
        };
        for fan in rd.flatten() {
            if !fan.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            for e in std::fs::read_dir(fan.path())?.flatten() {
                if e.file_name().to_string_lossy().starts_with('.') {
                    std::fs::remove_file(e.path())
                        .with_context(|| format!("cannot remove {}", e.path().display()))?;
                    n += 1;
                }
            }
        }
        Ok(n)
    }

    /// Removes the chunks `ids` from the store proper, those it holds.
    /// Returns how many it removed.
    pub fn discard<'a>(&self, ids: impl Iterator<Item = &'a ChunkId>) -> Result<u64> {
        let mut n = 0;
        for id in ids {
            let p = chunk_path(&self.root, id);
            match std::fs::remove_file(&p) {
                Ok(()) => n += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(
                        anyhow::Error::new(e).context(format!("cannot remove {}", p.display()))
                    )
                }
            }
        }
        Ok(n)
    }

    /// Removes every chunk not in `keep`, and stray temporary files.
    /// Returns (chunks kept, bytes kept, chunks removed).
    pub fn retain(&self, keep: &HashSet<ChunkId>) -> Result<(u64, u64, u64)> {
        let (mut kept, mut bytes, mut removed) = (0, 0, 0);
        let Ok(rd) = std::fs::read_dir(&self.root) else {
            return Ok((0, 0, 0));
        };
        for fan in rd {
            let fan = fan?;
            if !fan.file_type()?.is_dir() {
                continue;
            }
            for e in std::fs::read_dir(fan.path())? {
                let e = e?;
                let name = e.file_name();
                let name = name.to_string_lossy();
                match ChunkId::from_hex(&name) {
                    Some(id) if keep.contains(&id) => {
                        kept += 1;
                        bytes += e.metadata()?.len();
                    }
                    _ => {
                        std::fs::remove_file(e.path())
                            .with_context(|| format!("cannot remove {}", e.path().display()))?;
                        removed += 1;
                    }
                }
            }
        }
        Ok((kept, bytes, removed))
    }

    /// (chunks, bytes) held.
    pub fn usage(&self) -> (u64, u64) {
        let mut n = 0;
        let mut b = 0;
        for e in walk_files(&self.root) {
            n += 1;
            b += e;
        }
        (n, b)
    }
}

fn walk_files(root: &Path) -> Vec<u64> {
    let mut out = vec![];
    if let Ok(rd) = std::fs::read_dir(root) {
        for fan in rd.flatten() {
            if let Ok(inner) = std::fs::read_dir(fan.path()) {
                for e in inner.flatten() {
                    if let Ok(m) = e.metadata() {
                        out.push(m.len());
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(data: &[u8]) -> (ChunkId, Codec, u32, Vec<u8>) {
        let (codec, bytes) = codec::encode(data, 3);
        (ChunkId::of(data), codec, data.len() as u32, bytes)
    }

    #[test]
    fn put_then_get_checks_the_id_both_codecs() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ChunkStore::new(&tmp.path().join("chunks"), 1 << 20);
        let text = b"ferry ".repeat(2000);
        let noise: Vec<u8> = (0..5000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for data in [&text[..], &noise[..]] {
            let (id, codec, raw_len, bytes) = stored(data);
            assert!(!store.contains(&id));
            store.put(&id, codec, raw_len, &bytes).unwrap();
            assert!(store.contains(&id));
            assert_eq!(store.get(&id).unwrap(), data);
            assert_eq!(store.get_stored(&id).unwrap(), (codec, raw_len, bytes));
        }
        assert_eq!(stored(&text).1, Codec::Zstd);
        assert_eq!(store.usage().0, 2);
    }

    #[test]
    fn a_rotten_chunk_file_is_caught_on_read() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ChunkStore::new(tmp.path(), 1 << 20);
        let (id, codec, raw_len, bytes) = stored(&[7u8; 3000]);
        store.put(&id, codec, raw_len, &bytes).unwrap();
        let path = chunk_path(tmp.path(), &id);
        let mut file = std::fs::read(&path).unwrap();
        let last = file.len() - 1;
        file[last] ^= 0x40;
        std::fs::write(&path, file).unwrap();
        let e = store.get(&id).unwrap_err();
        let bad = e
            .chain()
            .find_map(|c| c.downcast_ref::<ferry_protocol::Error>());
        assert!(
            matches!(bad, Some(ferry_protocol::Error::BadChunk { id: i, .. }) if *i == id),
            "{e:#}"
        );
        std::fs::write(&path, [9u8, 0, 0]).unwrap();
        assert!(store.get(&id).is_err());
    }

    #[test]
    fn staged_chunks_join_the_store_only_when_committed() {
        let tmp = tempfile::tempdir().unwrap();
        let base = ChunkStore::new(&tmp.path().join("chunks"), 1 << 20);
        let staged = base.with_staging(&tmp.path().join("staging"));
        let (id, codec, raw_len, bytes) = stored(b"a staged chunk");
        staged.put(&id, codec, raw_len, &bytes).unwrap();
        assert!(staged.contains(&id), "the staged view sees it");
        assert!(!base.contains(&id), "the store does not, yet");
        let (other, codec2, raw_len2, bytes2) = stored(b"a staged range");
        staged.put(&other, codec2, raw_len2, &bytes2).unwrap();
        assert_eq!(staged.commit_staged(|c| *c == id).unwrap(), 1);
        assert!(
            !base.contains(&other),
            "only the chunks kept join the store"
        );
        assert!(base.contains(&id));
        assert_eq!(base.get(&id).unwrap(), b"a staged chunk");
    }

    #[test]
    fn retain_keeps_exactly_the_chunks_asked_for() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ChunkStore::new(tmp.path(), 1 << 20);
        let chunks: Vec<_> = (0..4u8).map(|i| stored(&[i; 100])).collect();
        for (id, codec, raw_len, bytes) in &chunks {
            store.put(id, *codec, *raw_len, bytes).unwrap();
        }
        let keep: HashSet<ChunkId> = chunks[..2].iter().map(|c| c.0).collect();
        let (kept, _, removed) = store.retain(&keep).unwrap();
        assert_eq!((kept, removed), (2, 2));
        for (i, c) in chunks.iter().enumerate() {
            assert_eq!(store.contains(&c.0), i < 2);
        }
    }

    fn flip_last_byte(path: &Path) {
        let mut b = std::fs::read(path).unwrap();
        let n = b.len() - 1;
        b[n] ^= 0xff;
        std::fs::write(path, b).unwrap();
    }

    #[test]
    fn a_rotten_chunk_is_not_intact_and_a_staged_copy_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::new(&dir.path().join("chunks"), 1 << 20);
        let data = b"some chunk bytes".to_vec();
        let id = ChunkId::of(&data);
        store
            .put(&id, Codec::Raw, data.len() as u32, &data)
            .unwrap();
        assert!(store.holds_intact(&id));
        flip_last_byte(&chunk_path(&dir.path().join("chunks"), &id));
        assert!(store.contains(&id));
        assert!(!store.holds_intact(&id));
        let e = format!("{:#}", store.get(&id).unwrap_err());
        assert!(
            e.contains(&id.to_hex()) && e.contains("ferry-in scrub"),
            "{e}"
        );

        // A bundle carrying it again: the staged copy is read, then replaces it.
        let staged = store.with_staging(&dir.path().join("staging"));
        assert!(!staged.holds_intact(&id));
        staged
            .put(&id, Codec::Raw, data.len() as u32, &data)
            .unwrap();
        assert_eq!(staged.get(&id).unwrap(), data);
        assert_eq!(staged.commit_staged(|_| true).unwrap(), 1);
        assert_eq!(store.get(&id).unwrap(), data);
    }

    #[test]
    fn quarantine_moves_a_chunk_out_of_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = ChunkStore::new(&dir.path().join("chunks"), 1 << 20);
        let data = b"other bytes".to_vec();
        let id = ChunkId::of(&data);
        store
            .put(&id, Codec::Raw, data.len() as u32, &data)
            .unwrap();
        assert_eq!(store.ids(), vec![id]);
        let to = store.quarantine(&id, &dir.path().join("q")).unwrap();
        assert!(to.is_file());
        assert!(!store.contains(&id));
        assert!(store.ids().is_empty());
    }
}
