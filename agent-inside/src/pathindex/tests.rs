//! In-memory tests of the path index: round trips, lookups, scans, merges
//! against a `BTreeMap` model, and every refusal of a damaged file.

use super::*;
use std::collections::BTreeMap;

fn digest(n: u64) -> Sha256 {
    Sha256::of(&n.to_le_bytes())
}

fn file(n: u64) -> Entry {
    Entry::File {
        sha256: digest(n),
        size: n * 7,
        executable: n.is_multiple_of(5),
    }
}

fn key(source: &str, path: &str) -> Vec<u8> {
    key_of(&ObjectKey {
        source: source.into(),
        path: path.into(),
    })
}

/// A catalog-shaped map: `n` files in nested directories, and a link every
/// 97 files.
fn model(n: u64) -> BTreeMap<Vec<u8>, Entry> {
    let mut m = BTreeMap::new();
    for i in 0..n {
        let path = format!("pool/d{:02}/pkg-{i:05}.deb", i % 37);
        let e = if i % 97 == 0 {
            Entry::Symlink {
                target: format!("../d00/pkg-{:05}.deb", i + 1),
            }
        } else {
            file(i)
        };
        m.insert(key(if i % 3 == 0 { "apt" } else { "files" }, &path), e);
    }
    m
}

fn write<'a>(kind: Kind, entries: impl IntoIterator<Item = (&'a Vec<u8>, &'a Entry)>) -> Vec<u8> {
    let mut w = Writer::new(Vec::new(), kind).unwrap();
    for (k, e) in entries {
        w.push(k, e).unwrap();
    }
    let (bytes, summary) = w.finish().unwrap();
    assert_eq!(summary.bytes, bytes.len() as u64);
    bytes
}

fn items(
    m: &BTreeMap<Vec<u8>, Entry>,
) -> impl Iterator<Item = Result<(Vec<u8>, Entry), IndexError>> + '_ {
    m.iter().map(|(k, e)| Ok((k.clone(), e.clone())))
}

fn open(bytes: Vec<u8>) -> IndexFile<Vec<u8>> {
    IndexFile::open(bytes).unwrap()
}

fn empty_delta() -> IndexFile<Vec<u8>> {
    open(write(Kind::Delta, []))
}

#[test]
fn round_trip_lookup_and_scan() {
    let m = model(2000);
    let f = open(write(Kind::Base, &m));
    assert_eq!(f.kind(), Kind::Base);
    assert_eq!(f.entries(), 2000);
    assert!(f.blocks() > 10, "{} blocks", f.blocks());
    for (k, e) in &m {
        assert_eq!(f.get(k).unwrap().as_ref(), Some(e));
    }
    // Keys before the first, between two, and after the last.
    for missing in [
        key("a", "x"),
        key("apt", "pool/d00/pkg-00000.deb0"),
        key("zz", ""),
    ] {
        assert_eq!(f.get(&missing).unwrap(), None);
    }
    let all: Vec<_> = f.scan_from(b"").map(Result::unwrap).collect();
    assert_eq!(all, m.clone().into_iter().collect::<Vec<_>>());
    // A scan from the middle of a block starts at the first key after it.
    let (mid, _) = m.iter().nth(1234).unwrap();
    let mut after = mid.clone();
    after.push(0);
    let first = f.scan_from(&after).next().unwrap().unwrap();
    assert_eq!(&first.0, m.keys().nth(1235).unwrap());
}

#[test]
fn empty_files_are_valid() {
    let base = open(write(Kind::Base, []));
    assert_eq!(base.entries(), 0);
    assert_eq!(base.blocks(), 0);
    assert_eq!(base.get(&key("s", "a")).unwrap(), None);
    assert_eq!(base.scan_from(b"").count(), 0);
    let v = View::new(base, empty_delta()).unwrap();
    assert_eq!(v.iter().count(), 0);
}

#[test]
fn directory_listing_is_a_prefix_range() {
    let mut m = BTreeMap::new();
    for p in ["a-b", "a/b", "a/c/d", "a/c/e", "a0", "ab", "b/a"] {
        m.insert(key("s", p), file(p.len() as u64));
    }
    m.insert(key("s2", "a/x"), file(1));
    let v = View::new(open(write(Kind::Base, &m)), empty_delta()).unwrap();
    let prefix = dir_prefix("s", "a");
    let listed: Vec<_> = v
        .scan_prefix(&prefix, b"")
        .map(|r| String::from_utf8(r.unwrap().0).unwrap())
        .collect();
    assert_eq!(listed, ["s\0a/b", "s\0a/c/d", "s\0a/c/e"]);
    // From a page marker: keys after it only.
    let from = key("s", "a/c/d\0");
    let rest: Vec<_> = v
        .scan_prefix(&prefix, &from)
        .map(|r| r.unwrap().0)
        .collect();
    assert_eq!(rest, [key("s", "a/c/e")]);
    assert_eq!(v.scan_prefix(&dir_prefix("s", ""), b"").count(), 7);
}

/// Applies `changes` to `model` as an import does: puts and removals.
fn apply(model: &mut BTreeMap<Vec<u8>, Entry>, changes: &BTreeMap<Vec<u8>, Entry>) {
    for (k, e) in changes {
        if *e == Entry::Tombstone {
            model.remove(k);
        } else {
            model.insert(k.clone(), e.clone());
        }
    }
}

#[test]
fn ten_changes_of_a_thousand_write_a_delta_of_ten() {
    let mut m = model(1000);
    let base = write(Kind::Base, &m);
    let mut changes = BTreeMap::new();
    for (i, k) in m.keys().step_by(100).enumerate() {
        let e = if i % 3 == 0 {
            Entry::Tombstone
        } else {
            file(10_000 + i as u64)
        };
        changes.insert(k.clone(), e);
    }
    assert_eq!(changes.len(), 10);
    let prev = empty_delta();
    let mut w = Writer::new(Vec::new(), Kind::Delta).unwrap();
    merge(prev.scan_from(b""), items(&changes), &mut w).unwrap();
    let (delta, summary) = w.finish().unwrap();
    assert_eq!(summary.entries, 10);
    apply(&mut m, &changes);
    let v = View::new(open(base), open(delta)).unwrap();
    let seen: BTreeMap<_, _> = v.iter().map(Result::unwrap).collect();
    assert_eq!(seen, m);
    for (k, e) in &changes {
        let want = (*e != Entry::Tombstone).then(|| e.clone());
        assert_eq!(v.get(k).unwrap(), want);
    }
}

/// A tiny deterministic generator (xorshift64*), so the test needs no crate.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Thirty imports of random puts and removals: each writes a new delta from
/// the previous one, and a new base when `needs_new_base` says so (with the
/// fraction forced down so several happen). The view always equals the model.
#[test]
fn generations_of_deltas_and_bases_match_a_model() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut m = model(500);
    let mut base = write(Kind::Base, &m);
    let mut delta = write(Kind::Delta, []);
    let mut new_bases = 0;
    for round in 0..30u64 {
        let mut changes = BTreeMap::new();
        for _ in 0..(rng.next() % 40) {
            let n = rng.next() % 700;
            let k = key(
                if n.is_multiple_of(3) { "apt" } else { "files" },
                &format!("pool/d{:02}/pkg-{n:05}.deb", n % 37),
            );
            let e = if rng.next().is_multiple_of(4) {
                Entry::Tombstone
            } else {
                file(round * 1000 + n)
            };
            changes.insert(k, e);
        }
        let prev = open(delta);
        let mut w = Writer::new(Vec::new(), Kind::Delta).unwrap();
        merge(prev.scan_from(b""), items(&changes), &mut w).unwrap();
        delta = w.finish().unwrap().0;
        apply(&mut m, &changes);
        if needs_new_base(base.len() as u64 / 4, delta.len() as u64) {
            let v = View::new(open(base), open(delta)).unwrap();
            let mut w = Writer::new(Vec::new(), Kind::Base).unwrap();
            for item in v.iter() {
                let (k, e) = item.unwrap();
                w.push(&k, &e).unwrap();
            }
            base = w.finish().unwrap().0;
            delta = write(Kind::Delta, []);
            new_bases += 1;
        }
        let v = View::new(open(base.clone()), open(delta.clone())).unwrap();
        let seen: BTreeMap<_, _> = v.iter().map(Result::unwrap).collect();
        assert_eq!(seen, m, "round {round}");
        let apt: Vec<_> = v
            .scan_prefix(&dir_prefix("apt", "pool"), b"")
            .map(|r| r.unwrap().0)
            .collect();
        let want: Vec<_> = m
            .keys()
            .filter(|k| k.starts_with(b"apt\0pool/"))
            .cloned()
            .collect();
        assert_eq!(apt, want, "round {round}");
    }
    assert!(new_bases >= 2, "{new_bases} new bases");
}

#[test]
fn new_base_from_merge_drops_tombstones() {
    let m = model(300);
    let base = open(write(Kind::Base, &m));
    let mut changes = BTreeMap::new();
    let gone = m.keys().next().unwrap().clone();
    changes.insert(gone.clone(), Entry::Tombstone);
    changes.insert(key("new", "x"), file(1));
    let mut w = Writer::new(Vec::new(), Kind::Base).unwrap();
    merge(base.scan_from(b""), items(&changes), &mut w).unwrap();
    let (bytes, summary) = w.finish().unwrap();
    assert_eq!(summary.entries, 300);
    let nb = open(bytes);
    assert_eq!(nb.get(&gone).unwrap(), None);
    assert!(nb.scan_from(b"").all(|r| r.unwrap().1 != Entry::Tombstone));
}

#[test]
fn writer_refuses_misuse() {
    let mut w = Writer::new(Vec::new(), Kind::Base).unwrap();
    w.push(&key("s", "b"), &file(1)).unwrap();
    assert!(matches!(
        w.push(&key("s", "a"), &file(2)),
        Err(IndexError::OutOfOrder { .. })
    ));
    assert!(matches!(
        w.push(&key("s", "b"), &file(2)),
        Err(IndexError::OutOfOrder { .. })
    ));
    assert!(matches!(
        w.push(&key("s", "c"), &Entry::Tombstone),
        Err(IndexError::TombstoneInBase(_))
    ));
    let long = vec![b'x'; MAX_KEY + 1];
    assert!(matches!(
        w.push(&long, &file(3)),
        Err(IndexError::TooLong(_))
    ));
    let target = String::from_utf8(long).unwrap();
    assert!(matches!(
        w.push(&key("s", "d"), &Entry::Symlink { target }),
        Err(IndexError::TooLong(_))
    ));
}

#[test]
fn merge_refuses_an_unsorted_stream() {
    let changes = vec![Ok((key("s", "b"), file(1))), Ok((key("s", "a"), file(2)))];
    let mut w = Writer::new(Vec::new(), Kind::Delta).unwrap();
    let r = merge(std::iter::empty(), changes.into_iter(), &mut w);
    assert!(matches!(r, Err(IndexError::OutOfOrder { .. })), "{r:?}");
}

#[test]
fn view_refuses_swapped_files() {
    let b = || open(write(Kind::Base, []));
    assert!(matches!(
        View::new(empty_delta(), empty_delta()),
        Err(IndexError::WrongKind {
            expected: Kind::Base,
            ..
        })
    ));
    assert!(matches!(
        View::new(b(), b()),
        Err(IndexError::WrongKind {
            expected: Kind::Delta,
            ..
        })
    ));
}

#[test]
fn damage_is_refused_never_misread() {
    let m = model(600);
    let good = write(Kind::Base, &m);
    let f = open(good.clone());
    let blocks = f.blocks();
    assert!(blocks > 3);

    // A flipped byte in a block: opening works, reading that block fails.
    let mut bad = good.clone();
    bad[format::HEADER_LEN as usize + 5000] ^= 1;
    let f = open(bad);
    let errors = f.scan_from(b"").filter_map(Result::err).collect::<Vec<_>>();
    assert!(
        matches!(errors[..], [IndexError::Corrupt { block: 1, .. }]),
        "{errors:?}"
    );
    let k = m
        .keys()
        .find(|k| f.get(k).is_err())
        .expect("a lookup in the bad block fails");
    assert!(matches!(
        f.get(k),
        Err(IndexError::Corrupt { block: 1, .. })
    ));

    // A flipped byte in the block index.
    let mut bad = good.clone();
    let at = bad.len() - format::TRAILER_LEN as usize - 3;
    bad[at] ^= 1;
    assert!(matches!(
        IndexFile::open(bad),
        Err(IndexError::BlockIndex(_))
    ));

    // Truncated, wrong magic, wrong version, unknown kind.
    assert!(matches!(
        IndexFile::open(good[..good.len() - 1].to_vec()),
        Err(IndexError::BadMagic)
    ));
    assert!(matches!(
        IndexFile::open(good[..20].to_vec()),
        Err(IndexError::BadMagic)
    ));
    let mut bad = good.clone();
    bad[0] = b'X';
    assert!(matches!(IndexFile::open(bad), Err(IndexError::BadMagic)));
    let mut bad = good.clone();
    bad[8] = 9;
    assert!(matches!(IndexFile::open(bad), Err(IndexError::Version(9))));
    let mut bad = good.clone();
    bad[9] = 7;
    assert!(matches!(
        IndexFile::open(bad),
        Err(IndexError::UnknownKind(7))
    ));

    // A trailer whose offsets do not fit.
    let mut bad = good.clone();
    let t = bad.len() - format::TRAILER_LEN as usize;
    bad[t] ^= 0x40;
    assert!(matches!(IndexFile::open(bad), Err(IndexError::Trailer(_))));
}

#[test]
fn a_real_file_reads_like_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("base.pix");
    let m = model(100);
    std::fs::write(&path, write(Kind::Base, &m)).unwrap();
    let f = IndexFile::open(std::fs::File::open(&path).unwrap()).unwrap();
    for (k, e) in &m {
        assert_eq!(f.get(k).unwrap().as_ref(), Some(e));
    }
}

#[test]
fn new_base_policy() {
    assert!(!needs_new_base(16 << 20, 1 << 20));
    assert!(needs_new_base(16 << 20, (1 << 20) + 1));
    assert!(needs_new_base(u64::MAX, (64 << 20) + 1));
    assert!(needs_new_base(0, 1));
}

#[test]
fn the_block_cache_evicts_the_least_recently_used_block() {
    use super::read::Lru;
    let block = || std::sync::Arc::new(Vec::new());
    let mut lru = Lru::new(3);
    for n in 0..3 {
        lru.insert(n, block());
    }
    assert!(lru.get(0).is_some(), "0 is used again: 1 is now the oldest");
    lru.insert(3, block());
    assert!(lru.contains(0) && !lru.contains(1) && lru.contains(2) && lru.contains(3));
    lru.insert(4, block());
    assert!(lru.contains(0) && !lru.contains(2) && lru.contains(3) && lru.contains(4));
    // Inserting a cached block again does not evict another.
    lru.insert(4, block());
    assert!(lru.contains(0) && lru.contains(3) && lru.contains(4));
}
