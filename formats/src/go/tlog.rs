//! The checksum database's transparency log (golang.org/x/mod/sumdb/tlog):
//! a record's inclusion under a signed tree head, proved from the hash
//! tiles the database serves (`tile/8/<level>/<index>[.p/<width>]`).
//!
//! Leaves are `SHA-256(0x00 || record)`, interior nodes
//! `SHA-256(0x01 || left || right)`, the tree over records `[0, size)`
//! split as RFC 6962 splits it (the left part the largest power of two
//! smaller than the whole). A tile of height 8 at tile level `L` and index
//! `N` holds the hashes of tree level `8L` for indexes `256N ..`; hashes of
//! the 7 levels above are computed from them.

use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};
use thiserror::Error;

/// The tile height the databases use.
pub const TILE_HEIGHT: u32 = 8;
const TILE_WIDTH: u64 = 1 << TILE_HEIGHT;

/// A hash of the tree.
pub type Hash = [u8; 32];

/// Why an inclusion is not proved.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TlogError {
    /// A tile of the wrong size or that could not be read.
    #[error("tile {path}: {reason}")]
    BadTile {
        /// The tile's path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The hashes do not lead to the signed root: the record is not in the
    /// tree, or a tile lies.
    #[error("record {id} is not in the signed tree of {size} records (the root hash differs)")]
    NotIncluded {
        /// The record.
        id: u64,
        /// The tree size.
        size: u64,
    },
    /// The tiles do not make the signed root hash of the tree.
    #[error("the tiles do not make the signed root hash of the tree of {size} records")]
    RootMismatch {
        /// The tree size.
        size: u64,
    },
    /// The older tree is not the beginning of the newer one (a fork: the
    /// database showed two different histories).
    #[error("the tree of {old_size} records is not the beginning of the tree of {size} records (inconsistent tree heads)")]
    Inconsistent {
        /// The older tree's size.
        old_size: u64,
        /// The newer tree's size.
        size: u64,
    },
}

/// The hash of a record (a leaf).
pub fn record_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// A tile's path (`tile/8/<level>/<index in groups of 3 digits, x-prefixed>[.p/<width>]`).
pub fn tile_path(level: u32, index: u64, width: u64) -> String {
    let mut n = index;
    let mut s = format!("{:03}", n % 1000);
    while n >= 1000 {
        n /= 1000;
        s = format!("x{:03}/{s}", n % 1000);
    }
    let p = if width == TILE_WIDTH {
        String::new()
    } else {
        format!(".p/{width}")
    };
    format!("tile/{TILE_HEIGHT}/{level}/{s}{p}")
}

/// The largest power of two strictly smaller than `n` (`n` > 1).
fn split(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// A tile of a tree: its tile level, index and width (how many hashes it
/// holds, 256 but at the tree's right edge).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tile {
    /// The tile level (tree level `8 * level` at its bottom).
    pub level: u32,
    /// Its index at that level.
    pub index: u64,
    /// The hashes it holds (1 to 256).
    pub width: u64,
}

impl Tile {
    /// Its path ([`tile_path`]).
    pub fn path(&self) -> String {
        tile_path(self.level, self.index, self.width)
    }

    /// Parses a path of [`tile_path`]'s form (canonical only).
    pub fn parse(path: &str) -> Option<Tile> {
        let rest = path.strip_prefix(&format!("tile/{TILE_HEIGHT}/"))?;
        let (level, rest) = rest.split_once('/')?;
        let level: u32 = level.parse().ok().filter(|l| *l < 8)?;
        let (digits, width) = match rest.split_once(".p/") {
            Some((d, w)) => (
                d,
                w.parse::<u64>()
                    .ok()
                    .filter(|w| (1..TILE_WIDTH).contains(w))?,
            ),
            None => (rest, TILE_WIDTH),
        };
        let mut index: u64 = 0;
        for part in digits.split('/') {
            let d = part.strip_prefix('x').unwrap_or(part);
            if d.len() != 3 || !d.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            index = index.checked_mul(1000)?.checked_add(d.parse().ok()?)?;
        }
        let t = Tile {
            level,
            index,
            width,
        };
        (t.path() == path).then_some(t)
    }

    /// The tile of a tree of `size` records at `level` that holds the
    /// ancestor of record `position`, if the tree stores one.
    pub fn holding(size: u64, level: u32, position: u64) -> Option<Tile> {
        let shift = level * TILE_HEIGHT;
        if shift >= 64 {
            return None;
        }
        Tile::at(size, level, (position >> shift) / TILE_WIDTH)
    }

    /// Tile `index` at `level` of a tree of `size` records, if the tree
    /// stores one.
    pub fn at(size: u64, level: u32, index: u64) -> Option<Tile> {
        let shift = level * TILE_HEIGHT;
        if shift >= 64 {
            return None;
        }
        let count = size >> shift;
        let first = index.checked_mul(TILE_WIDTH)?;
        (first < count).then(|| Tile {
            level,
            index,
            width: (count - first).min(TILE_WIDTH),
        })
    }
}

/// The first records of the complete subtrees a tree of `size` records
/// splits into (largest first), whose hashes make its root.
fn subtree_starts(size: u64) -> Vec<u64> {
    let mut out = Vec::new();
    let mut start = 0;
    for level in (0..64).rev() {
        if size & (1 << level) != 0 {
            out.push(start);
            start += 1 << level;
        }
    }
    out
}

/// The tiles of a tree of `size` records a checksum database client reads
/// to prove `records` included and the trees of `old_sizes` records
/// consistent with it: at every tile level, the tile holding each record's
/// ancestor and each first record of the complete subtrees of `size` and of
/// every old size. That is O(log n) tiles per record and per old tree.
pub fn tiles_needed(size: u64, records: &[u64], old_sizes: &[u64]) -> BTreeSet<Tile> {
    let mut positions: BTreeSet<u64> = records.iter().copied().filter(|r| *r < size).collect();
    positions.extend(subtree_starts(size));
    for m in old_sizes.iter().filter(|m| **m <= size) {
        positions.extend(subtree_starts(*m));
    }
    let mut out = BTreeSet::new();
    for p in positions {
        for level in 0.. {
            match Tile::holding(size, level, p) {
                Some(t) => out.insert(t),
                None => break,
            };
        }
    }
    out
}

/// Reads the hashes of a tree of `size` records from tiles; every full
/// tile is checked against its parent tile's hash of it as it is read.
struct Tiles<'a, F> {
    size: u64,
    fetch: &'a mut F,
    tiles: HashMap<(u32, u64), Vec<Hash>>,
}

/// The hash of `hashes` (a power of two of them) as one subtree.
fn fold(hashes: &[Hash]) -> Hash {
    let mut level = hashes.to_vec();
    while level.len() > 1 {
        level = level
            .chunks_exact(2)
            .map(|p| node_hash(&p[0], &p[1]))
            .collect();
    }
    level[0]
}

impl<F: FnMut(&str) -> Result<Vec<u8>, String>> Tiles<'_, F> {
    /// Reads tile (`level`, `index`) and checks it against its parent.
    fn load(&mut self, level: u32, index: u64) -> Result<(), TlogError> {
        if self.tiles.contains_key(&(level, index)) {
            return Ok(());
        }
        let shift = level * TILE_HEIGHT;
        let count = self.size >> shift;
        let width = (count - index * TILE_WIDTH).min(TILE_WIDTH);
        let path = tile_path(level, index, width);
        let bytes = (self.fetch)(&path).map_err(|reason| TlogError::BadTile {
            path: path.clone(),
            reason,
        })?;
        if bytes.len() as u64 != width * 32 {
            return Err(TlogError::BadTile {
                path,
                reason: format!("{} bytes, not {}", bytes.len(), width * 32),
            });
        }
        let hashes: Vec<Hash> = bytes
            .chunks_exact(32)
            .map(|c| c.try_into().expect("32 bytes"))
            .collect();
        if width == TILE_WIDTH
            && shift + TILE_HEIGHT < 64
            && index < self.size >> (shift + TILE_HEIGHT)
        {
            self.load(level + 1, index / TILE_WIDTH)?;
            let parent =
                self.tiles[&(level + 1, index / TILE_WIDTH)][(index % TILE_WIDTH) as usize];
            if fold(&hashes) != parent {
                return Err(TlogError::BadTile {
                    path,
                    reason: "its hashes do not make the hash its parent tile holds".into(),
                });
            }
        }
        self.tiles.insert((level, index), hashes);
        Ok(())
    }

    /// The hash of the complete subtree at `level` and `index` (covering
    /// records `index << level ..`).
    fn hash(&mut self, level: u32, index: u64) -> Result<Hash, TlogError> {
        let tl = level / TILE_HEIGHT;
        let sub = level % TILE_HEIGHT;
        // The span at the tile's bottom level.
        let first = index << sub;
        let count = 1u64 << sub;
        let tile = first / TILE_WIDTH;
        self.load(tl, tile)?;
        let hashes = &self.tiles[&(tl, tile)];
        let start = (first - tile * TILE_WIDTH) as usize;
        Ok(fold(&hashes[start..start + count as usize]))
    }
    /// The hash of records `[lo, hi)` (`lo` aligned as the tree splits it).
    fn range(&mut self, lo: u64, hi: u64) -> Result<Hash, TlogError> {
        let mut parts = Vec::new();
        let mut lo = lo;
        while lo < hi {
            let level = 63 - (hi - lo).leading_zeros();
            let k = 1u64 << level;
            parts.push(self.hash(level, lo >> level)?);
            lo += k;
        }
        let mut h = parts.pop().expect("lo < hi");
        while let Some(l) = parts.pop() {
            h = node_hash(&l, &h);
        }
        Ok(h)
    }

    /// The root of `[lo, hi)` computed with `leaf` as record `id`'s hash.
    fn root_with(&mut self, lo: u64, hi: u64, id: u64, leaf: &Hash) -> Result<Hash, TlogError> {
        if hi - lo == 1 {
            return Ok(*leaf);
        }
        let k = split(hi - lo);
        if id < lo + k {
            let left = self.root_with(lo, lo + k, id, leaf)?;
            Ok(node_hash(&left, &self.range(lo + k, hi)?))
        } else {
            let left = self.range(lo, lo + k)?;
            Ok(node_hash(&left, &self.root_with(lo + k, hi, id, leaf)?))
        }
    }
}

/// Proves that `record` is record `id` of the tree of `size` records whose
/// root is `root`, reading tiles with `fetch(path)`.
pub fn prove_inclusion<F>(
    record: &[u8],
    id: u64,
    size: u64,
    root: &Hash,
    fetch: &mut F,
) -> Result<(), TlogError>
where
    F: FnMut(&str) -> Result<Vec<u8>, String>,
{
    let not = TlogError::NotIncluded { id, size };
    if id >= size {
        return Err(not);
    }
    let mut tiles = Tiles {
        size,
        fetch,
        tiles: HashMap::new(),
    };
    let got = tiles.root_with(0, size, id, &record_hash(record))?;
    if got == *root {
        Ok(())
    } else {
        Err(not)
    }
}

/// Proves that the tree of `old_size` records whose root is `old_root` is
/// the beginning of the tree of `size` records whose root is `root`, from
/// the tiles of the larger tree (as the go command proves a newer tree
/// head consistent with one it cached).
pub fn prove_consistency<F>(
    old_size: u64,
    old_root: &Hash,
    size: u64,
    root: &Hash,
    fetch: &mut F,
) -> Result<(), TlogError>
where
    F: FnMut(&str) -> Result<Vec<u8>, String>,
{
    if size == 0 || old_size > size {
        return Err(TlogError::Inconsistent { old_size, size });
    }
    let mut tiles = Tiles {
        size,
        fetch,
        tiles: HashMap::new(),
    };
    if tiles.range(0, size)? != *root {
        return Err(TlogError::RootMismatch { size });
    }
    if old_size > 0 && tiles.range(0, old_size)? != *old_root {
        return Err(TlogError::Inconsistent { old_size, size });
    }
    Ok(())
}

/// Checks that every one of `tiles` is a tile of the tree of `size` records
/// whose root is `root`: of its width there, and its hashes leading to the
/// root (through its parent tiles, read with `fetch`).
pub fn check_tiles<F>(
    size: u64,
    root: &Hash,
    tiles: &[Tile],
    fetch: &mut F,
) -> Result<(), TlogError>
where
    F: FnMut(&str) -> Result<Vec<u8>, String>,
{
    if size == 0 {
        return Err(TlogError::RootMismatch { size });
    }
    let mut t = Tiles {
        size,
        fetch,
        tiles: HashMap::new(),
    };
    if t.range(0, size)? != *root {
        return Err(TlogError::RootMismatch { size });
    }
    for tile in tiles {
        if Tile::at(size, tile.level, tile.index) != Some(*tile) {
            return Err(TlogError::BadTile {
                path: tile.path(),
                reason: format!("not a tile of the tree of {size} records"),
            });
        }
        t.load(tile.level, tile.index)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tiles of a tree of `leaves`, as a database would serve them.
    fn serve(leaves: &[Hash]) -> HashMap<String, Vec<u8>> {
        let size = leaves.len() as u64;
        let mut levels = vec![leaves.to_vec()];
        while levels.last().unwrap().len() > 1 {
            let up: Vec<Hash> = levels
                .last()
                .unwrap()
                .chunks_exact(2)
                .map(|p| node_hash(&p[0], &p[1]))
                .collect();
            levels.push(up);
        }
        let mut out = HashMap::new();
        for tl in 0..=(levels.len() as u32 / TILE_HEIGHT) {
            let bottom = (tl * TILE_HEIGHT) as usize;
            let Some(hs) = levels.get(bottom) else {
                continue;
            };
            let n = (size >> bottom) as usize;
            for (i, chunk) in hs[..n].chunks(TILE_WIDTH as usize).enumerate() {
                let bytes: Vec<u8> = chunk.iter().flatten().copied().collect();
                out.insert(tile_path(tl, i as u64, chunk.len() as u64), bytes);
            }
        }
        out
    }

    /// RFC 6962's tree hash, directly.
    fn mth(leaves: &[Hash]) -> Hash {
        if leaves.len() == 1 {
            return leaves[0];
        }
        let k = split(leaves.len() as u64) as usize;
        node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
    }

    #[test]
    fn inclusion_is_proved_from_tiles_and_lies_are_caught() {
        for size in [1u64, 2, 3, 7, 256, 257, 300, 70_000] {
            let records: Vec<Vec<u8>> = (0..size).map(|i| format!("r{i}\n").into_bytes()).collect();
            let leaves: Vec<Hash> = records.iter().map(|r| record_hash(r)).collect();
            let root = mth(&leaves);
            let tiles = serve(&leaves);
            let mut fetch = |p: &str| tiles.get(p).cloned().ok_or_else(|| format!("no {p}"));
            for id in [0, size / 2, size - 1] {
                prove_inclusion(&records[id as usize], id, size, &root, &mut fetch)
                    .unwrap_or_else(|e| panic!("size {size} id {id}: {e}"));
                assert!(prove_inclusion(b"forged\n", id, size, &root, &mut fetch).is_err());
            }
        }
        assert_eq!(tile_path(0, 1_234_067, 256), "tile/8/0/x001/x234/067");
        let t = Tile::parse("tile/8/0/x001/x234/067").unwrap();
        assert_eq!((t.level, t.index, t.width), (0, 1_234_067, 256));
        assert_eq!(Tile::parse("tile/8/1/002.p/17").unwrap().width, 17);
        for bad in [
            "tile/8/1/002.p/256",
            "tile/8/1/02",
            "tile/8/0/001/002",
            "tile/8/0/x000/002",
        ] {
            assert_eq!(Tile::parse(bad), None, "{bad}");
        }
        assert_eq!(tile_path(1, 2, 17), "tile/8/1/002.p/17");
    }

    #[test]
    fn the_needed_tiles_prove_inclusion_and_consistency_and_forged_tiles_fail() {
        let records: Vec<Vec<u8>> = (0..70_000u64)
            .map(|i| format!("r{i}\n").into_bytes())
            .collect();
        let leaves: Vec<Hash> = records.iter().map(|r| record_hash(r)).collect();
        for (old, size) in [
            (1u64, 2u64),
            (3, 300),
            (256, 257),
            (300, 70_000),
            (65_536, 65_537),
            (69_999, 70_000),
        ] {
            let root = mth(&leaves[..size as usize]);
            let old_root = mth(&leaves[..old as usize]);
            let ids = [0, old - 1, size / 3, size - 1];
            let needed = tiles_needed(size, &ids, &[old]);
            let all = serve(&leaves[..size as usize]);
            // Only the needed tiles are served: they suffice.
            let mut only = |p: &str| {
                let t = Tile::parse(p).ok_or("not a tile path")?;
                if !needed.contains(&t) {
                    return Err(format!("{p} was not carried"));
                }
                all.get(p).cloned().ok_or_else(|| format!("no {p}"))
            };
            for id in ids {
                prove_inclusion(&records[id as usize], id, size, &root, &mut only)
                    .unwrap_or_else(|e| panic!("{old} {size} {id}: {e}"));
            }
            prove_consistency(old, &old_root, size, &root, &mut only)
                .unwrap_or_else(|e| panic!("{old} {size}: {e}"));
            assert_eq!(
                prove_consistency(old, &leaves[0], size, &root, &mut only),
                if old == 1 {
                    Ok(())
                } else {
                    Err(TlogError::Inconsistent {
                        old_size: old,
                        size,
                    })
                }
            );
            // A flipped byte in any needed tile is caught.
            for t in &needed {
                let mut forged = all.clone();
                forged.get_mut(&t.path()).unwrap()[5] ^= 1;
                let mut fetch = |p: &str| forged.get(p).cloned().ok_or_else(|| format!("no {p}"));
                let inc = ids.iter().all(|id| {
                    prove_inclusion(&records[*id as usize], *id, size, &root, &mut fetch).is_ok()
                });
                let con = prove_consistency(old, &old_root, size, &root, &mut fetch).is_ok();
                let all: Vec<Tile> = needed.iter().copied().collect();
                let tiles = check_tiles(size, &root, &all, &mut fetch).is_ok();
                assert!(
                    !(inc && con && tiles),
                    "{old} {size}: forged {} went unnoticed",
                    t.path()
                );
            }
        }
    }
}
