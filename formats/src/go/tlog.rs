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
use std::collections::HashMap;
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

/// Reads the hashes of a tree of `size` records from tiles.
struct Tiles<'a, F> {
    size: u64,
    fetch: &'a mut F,
    tiles: HashMap<(u32, u64), Vec<Hash>>,
}

impl<F: FnMut(&str) -> Result<Vec<u8>, String>> Tiles<'_, F> {
    /// The hash of the complete subtree at `level` and `index` (covering
    /// records `index << level ..`).
    fn hash(&mut self, level: u32, index: u64) -> Result<Hash, TlogError> {
        let tl = level / TILE_HEIGHT;
        let sub = level % TILE_HEIGHT;
        // The span at the tile's bottom level.
        let first = index << sub;
        let count = 1u64 << sub;
        let tile = first / TILE_WIDTH;
        let bottom = tl * TILE_HEIGHT;
        let width = ((self.size >> bottom) - tile * TILE_WIDTH).min(TILE_WIDTH);
        if !self.tiles.contains_key(&(tl, tile)) {
            let path = tile_path(tl, tile, width);
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
            let hashes = bytes
                .chunks_exact(32)
                .map(|c| c.try_into().expect("32 bytes"))
                .collect();
            self.tiles.insert((tl, tile), hashes);
        }
        let hashes = &self.tiles[&(tl, tile)];
        let start = (first - tile * TILE_WIDTH) as usize;
        let mut level_hashes: Vec<Hash> = hashes[start..start + count as usize].to_vec();
        while level_hashes.len() > 1 {
            level_hashes = level_hashes
                .chunks_exact(2)
                .map(|p| node_hash(&p[0], &p[1]))
                .collect();
        }
        Ok(level_hashes[0])
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
        assert_eq!(tile_path(1, 2, 17), "tile/8/1/002.p/17");
    }
}
