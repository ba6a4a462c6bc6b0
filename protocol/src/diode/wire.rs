//! The one-way (data diode) wire format: bundle files cut into segments,
//! each segment protected by RaptorQ (RFC 6330) forward error correction,
//! and carried in self-describing UDP packets. Encoding and decoding of
//! packets, segment geometry, and the sender's encoder.
//!
//! No packet ever comes back, so every packet says exactly what it carries:
//! stream, bundle sequence, which file of the bundle (0 is the manifest,
//! `i + 1` is volume `i`), that file's size, the segment and the RaptorQ
//! symbol. A receiver can start at any time, drop what it cannot use, and
//! rebuild a segment from any `K` (or slightly more) of its symbols, whatever
//! their order.
//!
//! Packet layout (little-endian), 56-byte header, symbol, 8-byte check:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `FRYD` |
//! | 4 | 1 | version, `1` |
//! | 5 | 1 | kind, `0` = symbol |
//! | 6 | 16 | stream id |
//! | 22 | 8 | bundle sequence |
//! | 30 | 2 | file index (0 manifest, i+1 volume i) |
//! | 32 | 2 | number of files in the bundle |
//! | 34 | 8 | file size |
//! | 42 | 4 | segment index |
//! | 46 | 4 | segment size (all segments of the file but the last) |
//! | 50 | 2 | symbol size `T` |
//! | 52 | 4 | RaptorQ payload id (source block number, encoding symbol id) |
//! | 56 | T | the symbol |
//! | 56+T | 8 | first 8 bytes of BLAKE3 over bytes `0..56+T` |
//!
//! Each segment is one RaptorQ source block with one sub-block and symbol
//! alignment 8. The check only separates garbage from packets; integrity
//! comes from the signed manifest and the volume hashes, verified in full
//! before anything is applied.

use crate::id::StreamId;
use raptorq::{EncodingPacket, ObjectTransmissionInformation, PayloadId};

/// First bytes of every diode packet.
pub const MAGIC: &[u8; 4] = b"FRYD";
/// Wire version.
pub const VERSION: u8 = 1;
/// Header length.
pub const HEADER_LEN: usize = 56;
/// Trailer (check) length.
pub const CHECK_LEN: usize = 8;
/// Largest segment a receiver accepts.
pub const MAX_SEGMENT: u32 = 16 << 20;
/// Symbol alignment used for every segment.
pub const ALIGNMENT: u8 = 8;
/// RaptorQ's largest source block, in symbols (RFC 6330 K'max).
pub const MAX_SYMBOLS: u64 = 56_403;
/// Largest number of files in one bundle (manifest plus volumes).
pub const MAX_FILES: u16 = u16::MAX;

/// The symbol size for a link MTU: the largest multiple of 8 that fits one
/// IPv4/UDP datagram with the header and check.
pub fn symbol_size_for_mtu(mtu: u16) -> u16 {
    let room = (mtu as usize).saturating_sub(20 + 8 + HEADER_LEN + CHECK_LEN);
    ((room / ALIGNMENT as usize) * ALIGNMENT as usize)
        .clamp(ALIGNMENT as usize, u16::MAX as usize & !7) as u16
}

/// What one packet carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Stream of the bundle.
    pub stream: StreamId,
    /// Bundle sequence.
    pub sequence: u64,
    /// File index: 0 is the manifest, `i + 1` is volume `i`.
    pub file: u16,
    /// Number of files in the bundle.
    pub file_count: u16,
    /// Size of the file.
    pub file_size: u64,
    /// Segment index within the file.
    pub segment: u32,
    /// Segment size of this file.
    pub segment_size: u32,
    /// RaptorQ symbol size.
    pub symbol_size: u16,
    /// RaptorQ encoding symbol id.
    pub symbol_id: u32,
    /// The symbol.
    pub data: Vec<u8>,
}

/// Why a datagram was dropped.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Garbage {
    /// Too short, wrong magic, version or kind.
    #[error("not a Ferry diode packet")]
    NotOurs,
    /// The check does not match: damaged in transit.
    #[error("check mismatch (damaged packet)")]
    Damaged,
    /// Fields out of range.
    #[error("fields out of range: {0}")]
    OutOfRange(&'static str),
}

impl Packet {
    /// Length of this segment.
    pub fn segment_len(&self) -> u64 {
        segment_len(self.file_size, self.segment_size, self.segment)
    }

    /// Encodes the packet.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(HEADER_LEN + self.data.len() + CHECK_LEN);
        b.extend_from_slice(MAGIC);
        b.push(VERSION);
        b.push(0);
        b.extend_from_slice(&self.stream.0);
        b.extend_from_slice(&self.sequence.to_le_bytes());
        b.extend_from_slice(&self.file.to_le_bytes());
        b.extend_from_slice(&self.file_count.to_le_bytes());
        b.extend_from_slice(&self.file_size.to_le_bytes());
        b.extend_from_slice(&self.segment.to_le_bytes());
        b.extend_from_slice(&self.segment_size.to_le_bytes());
        b.extend_from_slice(&self.symbol_size.to_le_bytes());
        b.extend_from_slice(&PayloadId::new(0, self.symbol_id).serialize());
        b.extend_from_slice(&self.data);
        let check = blake3::hash(&b);
        b.extend_from_slice(&check.as_bytes()[..CHECK_LEN]);
        b
    }

    /// Decodes and checks a datagram. Never panics, whatever the bytes.
    pub fn from_bytes(b: &[u8]) -> Result<Packet, Garbage> {
        if b.len() < HEADER_LEN + CHECK_LEN || &b[..4] != MAGIC || b[4] != VERSION || b[5] != 0 {
            return Err(Garbage::NotOurs);
        }
        let body = &b[..b.len() - CHECK_LEN];
        if blake3::hash(body).as_bytes()[..CHECK_LEN] != b[b.len() - CHECK_LEN..] {
            return Err(Garbage::Damaged);
        }
        let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"));
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
        let pid = PayloadId::deserialize(b[52..56].try_into().expect("4 bytes"));
        let p = Packet {
            stream: StreamId(b[6..22].try_into().expect("16 bytes")),
            sequence: u64_at(22),
            file: u16_at(30),
            file_count: u16_at(32),
            file_size: u64_at(34),
            segment: u32_at(42),
            segment_size: u32_at(46),
            symbol_size: u16_at(50),
            symbol_id: pid.encoding_symbol_id(),
            data: body[HEADER_LEN..].to_vec(),
        };
        let bad = |why| Err(Garbage::OutOfRange(why));
        if pid.source_block_number() != 0 {
            return bad("source block number is not 0");
        }
        if p.sequence == 0 || p.file >= p.file_count {
            return bad("sequence or file index");
        }
        if p.symbol_size == 0
            || !p.symbol_size.is_multiple_of(ALIGNMENT as u16)
            || p.data.len() != p.symbol_size as usize
        {
            return bad("symbol size");
        }
        if p.segment_size == 0
            || p.segment_size > MAX_SEGMENT
            || !p.segment_size.is_multiple_of(p.symbol_size as u32)
        {
            return bad("segment size");
        }
        if (p.segment as u64) * (p.segment_size as u64) >= p.file_size.max(1) {
            return bad("segment beyond the end of the file");
        }
        if p.segment_len().div_ceil(p.symbol_size as u64) > MAX_SYMBOLS {
            return bad("too many symbols in a segment");
        }
        Ok(p)
    }
}

/// Length of segment `segment` of a file of `file_size` bytes.
pub fn segment_len(file_size: u64, segment_size: u32, segment: u32) -> u64 {
    let start = segment as u64 * segment_size as u64;
    file_size.saturating_sub(start).min(segment_size as u64)
}

/// Number of segments of a file (an empty file has one, empty, segment), or
/// `None` when the segment size is 0 or the count does not fit a segment index.
pub fn segment_count(file_size: u64, segment_size: u32) -> Option<u32> {
    if segment_size == 0 {
        return None;
    }
    u32::try_from(file_size.div_ceil(segment_size as u64).max(1)).ok()
}

pub(crate) fn oti(len: u64, symbol_size: u16) -> ObjectTransmissionInformation {
    ObjectTransmissionInformation::new(len.max(1), symbol_size, 1, 1, ALIGNMENT)
}

/// Source symbols of a segment of `len` bytes.
pub fn source_symbols(len: u64, symbol_size: u16) -> u32 {
    len.max(1).div_ceil(symbol_size as u64) as u32
}

/// Encodes one segment: its source symbols (when `with_source`) and
/// `repair` repair symbols starting at repair index `repair_start`.
/// Returns `(symbol id, symbol)` pairs.
pub fn encode_segment(
    data: &[u8],
    symbol_size: u16,
    with_source: bool,
    repair_start: u32,
    repair: u32,
) -> Vec<(u32, Vec<u8>)> {
    let k = source_symbols(data.len() as u64, symbol_size);
    let mut out = Vec::new();
    if with_source {
        // A systematic code: the source symbols are the data itself.
        out.extend((0..k).map(|id| {
            let start = (id as usize * symbol_size as usize).min(data.len());
            let end = (start + symbol_size as usize).min(data.len());
            let mut s = data[start..end].to_vec();
            s.resize(symbol_size as usize, 0);
            (id, s)
        }));
    }
    if repair > 0 {
        let mut block = data.to_vec();
        block.resize(k as usize * symbol_size as usize, 0);
        let enc = crate::diode::plan::encoder(data.len() as u64, symbol_size, k, &block);
        out.extend(
            enc.repair_packets(repair_start, repair)
                .into_iter()
                .map(split),
        );
    }
    out
}

fn split(p: EncodingPacket) -> (u32, Vec<u8>) {
    let (pid, data) = p.split();
    (pid.encoding_symbol_id(), data)
}

/// Repair symbols to send for `k` source symbols at `overhead` (0.1 = 10%),
/// plus two, which takes RaptorQ's decoding failure rate below 1 in 10^6.
pub fn repair_count(k: u32, overhead: f64) -> u32 {
    ((k as f64 * overhead).ceil() as u32).saturating_add(2)
}

/// Chance of a segment failing to rebuild that [`repair_for_loss`] sizes
/// for: one in a billion.
pub const LOSS_TARGET: f64 = 1e-9;

/// Repair symbols to send for `k` source symbols so that, when every packet
/// is lost independently with probability `loss`, a segment still gets its
/// `k` symbols plus the two extra of [`repair_count`] with a chance of
/// failure below [`LOSS_TARGET`] (a binomial tail). `loss` is clamped to
/// `0.0..=0.5`.
pub fn repair_for_loss(k: u32, loss: f64) -> u32 {
    let p = if loss.is_finite() {
        loss.clamp(0.0, 0.5)
    } else {
        0.5
    };
    if p == 0.0 {
        return 2;
    }
    // Smallest q with P(more than q of the k + q + 2 packets lost) <= target;
    // that chance falls as q grows, so search by doubling, then bisection.
    let fails = |q: u64| binomial_tail_ln(u64::from(k) + q + 2, p, q) > LOSS_TARGET.ln();
    let (mut lo, mut hi) = (0u64, u64::from(k).max(16));
    while fails(hi) {
        lo = hi;
        hi *= 2;
    }
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if fails(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    u32::try_from(lo).unwrap_or(u32::MAX).saturating_add(2)
}

/// ln P(X > q) for X ~ Binomial(n, p), 0 < p < 1, summed in log space.
fn binomial_tail_ln(n: u64, p: f64, q: u64) -> f64 {
    if q >= n {
        return f64::NEG_INFINITY;
    }
    let x0 = q + 1;
    // ln C(n, x0) + x0 ln p + (n - x0) ln (1 - p)
    let ln_c: f64 = (1..=x0)
        .map(|i| ((n - x0 + i) as f64 / i as f64).ln())
        .sum();
    let odds = (p / (1.0 - p)).ln();
    let mut term = ln_c + x0 as f64 * p.ln() + (n - x0) as f64 * (1.0 - p).ln();
    let mut sum = term;
    let mean = n as f64 * p;
    let mut x = x0;
    while x < n {
        term += ((n - x) as f64 / (x + 1) as f64).ln() + odds;
        x += 1;
        let (hi, lo) = if term > sum { (term, sum) } else { (sum, term) };
        sum = hi + (lo - hi).exp().ln_1p();
        if x as f64 > mean && term < sum - 50.0 {
            break;
        }
    }
    sum
}

/// Round-robin interleaving of several packet lists, so a burst of lost
/// packets costs each segment only a few symbols.
pub fn interleave<T>(lists: Vec<Vec<T>>) -> Vec<T> {
    let total = lists.iter().map(Vec::len).sum();
    let mut iters: Vec<_> = lists.into_iter().map(Vec::into_iter).collect();
    let mut out = Vec::with_capacity(total);
    while out.len() < total {
        for it in iters.iter_mut() {
            if let Some(x) = it.next() {
                out.push(x);
            }
        }
    }
    out
}

/// Share of a window over which the sender spreads the ends of its
/// segments ([`taper_order`]).
pub const TAPER: f64 = 0.25;

/// The order in which a window's packets go out: `counts[i]` packets of
/// segment `i` (each segment's in its own order), given as (segment, index)
/// pairs.
///
/// Each segment's packets are spread evenly over its own span of the
/// window and interleaved with the others', but the spans do not all end
/// with the window: on a scale where the window runs from 0 to 1, segment
/// `i` of `n` ends at `1 - (n-1-i)·taper/n` (the last at 1), and packets go
/// out in the order of those times. The segments of a window then become
/// decodable one after another (with `taper` 0.25 and 8 equal segments, at
/// 88%, 91%, 94%, 96%, 98%, 99%, 99.6% and 100% of its packets), and the
/// receiver rebuilds each while the rest still arrive instead of all of
/// them after the window's last packet.
///
/// The price is burst protection near the end of a window, where fewer
/// segments are left: 100 packets lost in a row cost each of 8 equal
/// segments at most 13 symbols with round-robin interleaving; here at
/// most 17 in the first 90% of a window, 22 in the first 95%, and in the
/// last 1% (where the last segment is nearly alone) up to 98 of 100 for
/// the last segment. `tests` pins these figures.
///
/// With `taper` 0 and equal counts this is round-robin interleaving.
pub fn taper_order(counts: &[u32], taper: f64) -> Vec<(u32, u32)> {
    taper_keys(counts, taper)
        .into_iter()
        .map(|(_, i, j)| (i, j))
        .collect()
}

/// [`taper_order`] with each packet's time on the window's scale (0 to 1),
/// as (time, segment, index): a sender overlapping windows merges the end
/// of one with the start of the next by these times.
pub fn taper_keys(counts: &[u32], taper: f64) -> Vec<(f64, u32, u32)> {
    let n = counts.len();
    let taper = if taper.is_finite() {
        taper.clamp(0.0, 0.9)
    } else {
        0.0
    };
    let total: usize = counts.iter().map(|&c| c as usize).sum();
    let mut keyed: Vec<(f64, u32, u32)> = Vec::with_capacity(total);
    for (i, &c) in counts.iter().enumerate() {
        let end = 1.0 - (n - 1 - i) as f64 * taper / n as f64;
        keyed.extend((0..c).map(|j| ((j + 1) as f64 / c as f64 * end, i as u32, j)));
    }
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    keyed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diode::segment::SegmentDecoder;
    use crate::test_util::noise as bytes;

    fn packet(data: Vec<u8>) -> Packet {
        Packet {
            stream: StreamId([7; 16]),
            sequence: 3,
            file: 1,
            file_count: 2,
            file_size: 100_000,
            segment: 0,
            segment_size: 65_536,
            symbol_size: 1024,
            symbol_id: 5,
            data,
        }
    }

    #[test]
    fn packet_round_trip_and_garbage() {
        let p = packet(bytes(1024, 1));
        let b = p.to_bytes();
        assert_eq!(Packet::from_bytes(&b).unwrap(), p);
        for i in [0, 10, 40, 60, 600, b.len() - 1] {
            let mut c = b.clone();
            c[i] ^= 1;
            assert!(Packet::from_bytes(&c).is_err(), "flip at {i} accepted");
        }
        assert_eq!(Packet::from_bytes(b"hello"), Err(Garbage::NotOurs));
        assert!(Packet::from_bytes(&b[..b.len() - 1]).is_err());
        let mut q = packet(bytes(1024, 1));
        q.segment = 9; // 9 * 65536 > 100000
        assert!(matches!(
            Packet::from_bytes(&q.to_bytes()),
            Err(Garbage::OutOfRange(_))
        ));
        let mut q = packet(bytes(1000, 1));
        q.symbol_size = 1000;
        assert!(Packet::from_bytes(&q.to_bytes()).is_err());
    }

    #[test]
    fn random_datagrams_never_panic() {
        for seed in 0..2000u64 {
            let mut b = bytes((seed as usize * 7) % 1500, seed);
            if seed % 2 == 0 && b.len() > 8 {
                b[..4].copy_from_slice(MAGIC);
                b[4] = VERSION;
                b[5] = 0;
            }
            let _ = Packet::from_bytes(&b);
        }
    }

    #[test]
    fn segment_survives_loss_within_overhead() {
        let data = bytes(300_000, 9);
        let t = 1400;
        let k = source_symbols(data.len() as u64, t);
        let packets = encode_segment(&data, t, true, 0, repair_count(k, 0.10));
        // Drop 8% of packets, the source ones first (worst case for a systematic code).
        let drop = (packets.len() as f64 * 0.08) as usize;
        let mut d = SegmentDecoder::new(data.len() as u64, t);
        let mut out = None;
        for (id, sym) in packets.into_iter().skip(drop) {
            if let Some(o) = d.add(id, sym).rebuilt() {
                out = Some(o);
                break;
            }
        }
        assert_eq!(out.as_deref(), Some(&data[..]));
    }

    #[test]
    fn too_much_loss_is_not_decoded() {
        let data = bytes(100_000, 2);
        let t = 1024;
        let k = source_symbols(data.len() as u64, t);
        let packets = encode_segment(&data, t, true, 0, repair_count(k, 0.05));
        let mut d = SegmentDecoder::new(data.len() as u64, t);
        let keep = k as usize - 5;
        let mut got = None;
        for (id, sym) in packets.into_iter().take(keep) {
            got = got.or(d.add(id, sym).rebuilt());
        }
        assert!(got.is_none());
        assert_eq!(d.received(), keep as u32);
    }

    #[test]
    fn repair_symbols_alone_rebuild_a_segment() {
        // A receiver that starts late gets only the carousel's fresh repair symbols.
        let data = bytes(50_000, 4);
        let t = 512;
        let k = source_symbols(data.len() as u64, t);
        let packets = encode_segment(&data, t, false, 1000, k + 4);
        let mut d = SegmentDecoder::new(data.len() as u64, t);
        let out = packets
            .into_iter()
            .find_map(|(id, s)| d.add(id, s).rebuilt());
        assert_eq!(out.as_deref(), Some(&data[..]));
    }

    #[test]
    fn tiny_and_empty_segments() {
        for len in [0usize, 1, 7, 8, 9] {
            let data = bytes(len, 3);
            let packets = encode_segment(&data, 64, true, 0, 2);
            let mut d = SegmentDecoder::new(len as u64, 64);
            let out = packets
                .into_iter()
                .find_map(|(id, s)| d.add(id, s).rebuilt());
            assert_eq!(out.as_deref(), Some(&data[..]), "len {len}");
        }
        assert_eq!(segment_count(0, 1024), Some(1));
        assert_eq!(segment_count(2048, 1024), Some(2));
        // 2^35 bytes in 8-byte segments is 2^32 segments: no u32 index for the last.
        assert_eq!(segment_count(1 << 35, 8), None);
        assert_eq!(segment_count(1 << 34, 8), Some(1 << 31));
        assert_eq!(segment_count(10, 0), None);
        assert_eq!(segment_len(2500, 1024, 2), 452);
    }

    #[test]
    fn repair_sized_to_the_loss() {
        // No loss: just the two extra symbols.
        assert_eq!(repair_for_loss(745, 0.0), 2);
        // 1% loss of a 4 MiB segment of 1408-byte symbols (mean 30 lost):
        // a margin of about seven standard deviations.
        let r = repair_for_loss(2979, 0.01);
        assert!((60..=80).contains(&r), "{r}");
        // More loss, more repair; a larger segment needs less in proportion.
        assert!(repair_for_loss(2979, 0.05) > r);
        let small = repair_for_loss(745, 0.01);
        assert!(small as f64 / 745.0 > r as f64 / 2979.0);
        // Checked against the tail itself: r - 2 losses are enough at the target.
        let n = 2979 + r as u64;
        assert!(binomial_tail_ln(n, 0.01, r as u64 - 2) <= LOSS_TARGET.ln());
        assert!(binomial_tail_ln(n - 1, 0.01, r as u64 - 3) > LOSS_TARGET.ln());
        // Nonsense in, bounded out.
        assert!(repair_for_loss(100, f64::NAN) >= repair_for_loss(100, 0.25));
        assert!(repair_for_loss(1, 0.5) >= 2);
    }

    #[test]
    fn taper_order_without_taper_is_round_robin() {
        let order = taper_order(&[3, 3, 3], 0.0);
        let rr = interleave(vec![
            vec![(0, 0), (0, 1), (0, 2)],
            vec![(1, 0), (1, 1), (1, 2)],
            vec![(2, 0), (2, 1), (2, 2)],
        ]);
        assert_eq!(order, rr);
        assert!(taper_order(&[], TAPER).is_empty());
        assert_eq!(taper_order(&[0, 2], TAPER), vec![(1, 0), (1, 1)]);
    }

    #[test]
    fn taper_order_staggers_the_ends_and_spreads_bursts() {
        let counts = [3049u32; 8];
        let order = taper_order(&counts, TAPER);
        let total = order.len();
        assert_eq!(total, 8 * 3049);
        // Every packet once, each segment's in its own order.
        let mut next = [0u32; 8];
        let mut last = [0usize; 8];
        for (pos, &(i, j)) in order.iter().enumerate() {
            assert_eq!(j, next[i as usize]);
            next[i as usize] += 1;
            last[i as usize] = pos;
        }
        assert_eq!(next, counts);
        // The segments end one after another, the first at 88% of the window.
        let ends: Vec<usize> = last.iter().map(|&p| p * 1000 / total).collect();
        assert_eq!(ends, [882, 913, 938, 959, 975, 988, 996, 999]);
        // The most a burst of 100 costs each segment, anywhere, and away
        // from the last 2% of the window.
        let worst = |upto: usize| {
            let mut hit = [0usize; 8];
            let mut most = [0usize; 8];
            for (pos, &(i, _)) in order[..upto].iter().enumerate() {
                hit[i as usize] += 1;
                if pos >= 100 {
                    hit[order[pos - 100].0 as usize] -= 1;
                }
                for (m, h) in most.iter_mut().zip(hit) {
                    *m = (*m).max(h);
                }
            }
            most
        };
        assert_eq!(worst(total), [15, 17, 19, 22, 27, 35, 51, 98]);
        assert_eq!(worst(total * 9 / 10), [15, 17, 16, 15, 15, 14, 14, 14]);
        assert!(worst(total * 95 / 100).iter().all(|&m| m <= 22));
        // Round-robin for comparison: 13 each.
        let rr = taper_order(&counts, 0.0);
        let mut hit = [0usize; 8];
        for (pos, &(i, _)) in rr.iter().enumerate() {
            hit[i as usize] += 1;
            if pos >= 100 {
                hit[rr[pos - 100].0 as usize] -= 1;
            }
            assert!(hit.iter().all(|&h| h <= 13));
        }
    }

    #[test]
    fn interleave_round_robin() {
        assert_eq!(
            interleave(vec![vec![1, 4], vec![2], vec![3, 5, 6]]),
            vec![1, 2, 3, 4, 5, 6]
        );
    }

    #[test]
    fn mtu_symbol_sizes() {
        assert_eq!(symbol_size_for_mtu(1500), 1408);
        assert_eq!(symbol_size_for_mtu(9000), 8904);
        assert_eq!(symbol_size_for_mtu(10) % 8, 0);
    }
}
