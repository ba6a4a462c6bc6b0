//! The content-defined anchors both sides find stretches by: a gear hash's
//! rare values, at least [`ANCHOR_GAP`] bytes apart; and the index of a
//! base's anchors ([`PlainIndex`]), made at once (on every core for a large
//! base) or as the base's plain bytes pass ([`PlainIndexer`]).

use std::collections::HashMap;

/// A gear hash value whose top `ANCHOR_BITS` bits are zero is an anchor
/// (one in 8 KiB), at least `ANCHOR_GAP` bytes after the one before.
pub(super) const ANCHOR_BITS: u32 = 13;
pub(super) const ANCHOR_GAP: usize = 256;

/// The gear hash's table: 256 fixed pseudo-random words (splitmix64).
pub(super) const GEAR: [u64; 256] = {
    let mut t = [0u64; 256];
    let mut x = 0x5eed_fe11_u64.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut i = 0;
    while i < 256 {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        t[i] = z ^ (z >> 31);
        i += 1;
    }
    t
};

/// Calls `each(end, hash)` at each anchor of `data` from `from` on: `end`
/// is the offset just past the anchor's last byte, `hash` the gear hash of
/// the 64 bytes before it. The caller may move on by returning a new offset
/// to go on from (past the current one), hashing afresh there.
pub(super) fn anchors(
    data: &[u8],
    mut from: usize,
    mut each: impl FnMut(usize, u64) -> Option<usize>,
) {
    'outer: while from < data.len() {
        let mut h = 0u64;
        let mut allowed = from + 64;
        let mut i = from;
        while i < data.len() {
            h = (h << 1).wrapping_add(GEAR[usize::from(data[i])]);
            i += 1;
            if i >= allowed && h >> (64 - ANCHOR_BITS) == 0 {
                allowed = i + ANCHOR_GAP;
                if let Some(next) = each(i, h) {
                    if next > i {
                        from = next;
                        continue 'outer;
                    }
                }
            }
        }
        return;
    }
}

/// A base's plain bytes indexed by their anchors: what [`Base::with_starts_in`]
/// computes first, one pass over the plain bytes. A caller with a core to
/// spare makes it beside other work ([`PlainIndex::of`]) and gives it to
/// [`Base::with_index_in`].
#[derive(Debug)]
pub struct PlainIndex {
    pub(super) anchors: HashMap<u64, u64>,
    /// Length of the plain bytes indexed.
    pub(super) len: usize,
}

impl PlainIndex {
    /// The index of `plain`.
    pub fn of(plain: &[u8]) -> PlainIndex {
        PlainIndex {
            anchors: index_anchors(plain),
            len: plain.len(),
        }
    }
}

/// Anchors an index holds at most: hostile plain bytes can put one every
/// [`ANCHOR_GAP`] bytes (a 1 GiB base, four million), and the index is
/// held beside the rebuild; ordinary bytes have one in 8 KiB, so this
/// covers about 4 GiB of them. Anchors past it are not indexed (their
/// stretches are not found, and nothing is copied there).
pub(super) const MAX_ANCHORS: usize = 1 << 19;

/// Anchor hash to the plain offset just past its first anchor, in `plain`:
/// on every core for a large base (a layer's 158 MB took a core for 0.1 s
/// at the start of its rebuild, while the other waited for it).
pub(super) fn index_anchors(plain: &[u8]) -> HashMap<u64, u64> {
    let pieces = crate::cuts::threads().min(plain.len() / PARALLEL_INDEX_PIECE);
    if pieces > 1 {
        // Ordinary bytes have a candidate place in 8 KiB; a piece may have
        // 16 times as many.
        let most = plain.len() / pieces / 512 + 4096;
        if let Some(anchors) = index_anchors_in_pieces(plain, pieces, MAX_ANCHORS, most) {
            return anchors;
        }
    }
    index_anchors_at_most(plain, MAX_ANCHORS)
}

/// The least plain bytes a piece of [`index_anchors`] on several cores has.
const PARALLEL_INDEX_PIECE: usize = 4 << 20;

/// [`index_anchors_at_most`] on `pieces` threads: each finds the places in
/// its piece where the gear hash has an anchor's value (the hash depends on
/// the last 64 bytes only: a piece starts with them), then one pass over
/// those places in order keeps the anchors the serial walk does (an anchor
/// at least [`ANCHOR_GAP`] after the last kept). The same index; `None`
/// when a piece has more than `most` candidate places (hostile bytes can be
/// made to have far more than ordinary ones): the serial walk then holds no
/// list of them.
pub(super) fn index_anchors_in_pieces(
    plain: &[u8],
    pieces: usize,
    cap: usize,
    most: usize,
) -> Option<HashMap<u64, u64>> {
    let step = plain.len().div_ceil(pieces.max(1)).max(1);
    let found: Vec<Option<Vec<(usize, u64)>>> = std::thread::scope(|s| {
        let running: Vec<_> = (0..plain.len())
            .step_by(step)
            .map(|from| {
                let to = (from + step).min(plain.len());
                s.spawn(move || anchor_candidates(plain, from..to, most))
            })
            .collect();
        running
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut anchors = HashMap::new();
    let mut allowed = 64;
    for found in found {
        for (i, h) in found? {
            if i >= allowed {
                allowed = i + ANCHOR_GAP;
                if anchors.len() < cap {
                    anchors.entry(h).or_insert(i as u64);
                }
            }
        }
    }
    Some(anchors)
}

/// Where in `range` of `plain` the gear hash, as [`PlainIndexer::feed`]
/// computes it over all of `plain`, has an anchor's value: (bytes up to
/// and including it, hash), in order; `None` past `most` of them.
fn anchor_candidates(
    plain: &[u8],
    range: std::ops::Range<usize>,
    most: usize,
) -> Option<Vec<(usize, u64)>> {
    let mut h = 0u64;
    for &b in &plain[range.start.saturating_sub(64)..range.start] {
        h = (h << 1).wrapping_add(GEAR[usize::from(b)]);
    }
    let mut out = Vec::new();
    for (k, &b) in plain[range.clone()].iter().enumerate() {
        h = (h << 1).wrapping_add(GEAR[usize::from(b)]);
        if h >> (64 - ANCHOR_BITS) == 0 {
            if out.len() == most {
                return None;
            }
            out.push((range.start + k + 1, h));
        }
    }
    Some(out)
}

/// [`index_anchors`], at most `cap` of them: the indexer fed `plain` at
/// once, so a held base and one indexed as it is written get one index.
pub(super) fn index_anchors_at_most(plain: &[u8], cap: usize) -> HashMap<u64, u64> {
    let mut indexer = PlainIndexer::at_most(cap);
    indexer.feed(plain);
    indexer.anchors
}

/// A base's plain bytes indexed as they pass, in pieces of any size (a
/// base inflated into a spill file is indexed as it is written): the
/// anchors [`anchors`] finds from offset 0, the first of each hash kept.
/// [`PlainIndex::of`] is this fed the bytes at once.
#[derive(Debug, Default)]
pub struct PlainIndexer {
    pub(super) anchors: HashMap<u64, u64>,
    /// Bytes fed so far.
    len: usize,
    /// The gear hash of the bytes fed.
    h: u64,
    /// The first offset an anchor may end at.
    allowed: usize,
    /// Anchors indexed at most.
    cap: usize,
}

impl PlainIndexer {
    /// An indexer of no bytes yet.
    pub fn new() -> PlainIndexer {
        PlainIndexer::at_most(MAX_ANCHORS)
    }

    /// An indexer of at most `cap` anchors.
    pub(super) fn at_most(cap: usize) -> PlainIndexer {
        PlainIndexer {
            allowed: 64,
            cap,
            ..PlainIndexer::default()
        }
    }

    /// Indexes the next bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        let (mut h, mut allowed, mut i) = (self.h, self.allowed, self.len);
        for &b in bytes {
            h = (h << 1).wrapping_add(GEAR[usize::from(b)]);
            i += 1;
            if i >= allowed && h >> (64 - ANCHOR_BITS) == 0 {
                allowed = i + ANCHOR_GAP;
                if self.anchors.len() < self.cap {
                    self.anchors.entry(h).or_insert(i as u64);
                }
            }
        }
        (self.h, self.allowed, self.len) = (h, allowed, i);
    }

    /// The index of every byte fed.
    pub fn finish(self) -> PlainIndex {
        PlainIndex {
            anchors: self.anchors,
            len: self.len,
        }
    }
}

impl std::io::Write for PlainIndexer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.feed(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
