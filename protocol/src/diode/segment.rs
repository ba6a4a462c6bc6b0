//! Rebuilding one segment from its symbols, and refusing to trust a rebuild
//! that some received symbol contradicts.
//!
//! The packet check is unkeyed, so anyone on the diode network can send
//! well-formed symbols. RaptorQ rebuilds a segment from any `K` symbols, and a
//! forged one among them yields wrong bytes without complaint. So a rebuilt
//! segment is accepted only once at least one symbol more than `K` has
//! arrived and every received symbol agrees with the rebuilt bytes (the
//! segment is encoded again and each symbol compared by digest). When one
//! disagrees, every symbol of the segment is dropped and decoding starts over
//! from later packets: a forged symbol costs a retransmission, never a
//! wrong segment marked done.

use crate::diode::plan;
use crate::diode::wire::{oti, source_symbols};
use raptorq::{EncodingPacket, PayloadId, SourceBlockDecoder};
use std::collections::HashMap;

/// Symbols beyond `K` that must agree with a rebuilt segment before it is
/// accepted. The sender always adds two repair symbols on top of its
/// overhead; this spends one of them.
pub const CONFIRM_SYMBOLS: u32 = 1;

/// What adding one symbol did.
#[derive(Debug, PartialEq, Eq)]
pub enum Added {
    /// Kept; more symbols are needed.
    Pending,
    /// This symbol id was already received with the same bytes (or the
    /// symbol has the wrong length): ignored.
    Duplicate,
    /// This symbol id was already received with other bytes: one of the two
    /// is forged or damaged. Ignored; the consistency check settles it.
    Conflicting,
    /// The segment, rebuilt and consistent with every symbol received.
    Rebuilt(Vec<u8>),
    /// Enough symbols are in to try a rebuild ([`SegmentDecoder::store`]
    /// only; [`SegmentDecoder::add`] tries it at once).
    Ready,
    /// The rebuilt bytes contradict a received symbol (or the segment got far
    /// more symbols than an honest sender sends): all its symbols were dropped
    /// and the decoder starts over.
    Inconsistent,
}

impl Added {
    /// The rebuilt segment, if this symbol completed it.
    pub fn rebuilt(self) -> Option<Vec<u8>> {
        match self {
            Added::Rebuilt(d) => Some(d),
            _ => None,
        }
    }
}

/// Rebuilds one segment from symbols in any order.
pub struct SegmentDecoder {
    /// Symbols received and not yet given to the RaptorQ decoder.
    held: Vec<EncodingPacket>,
    /// The RaptorQ decoder, once a rebuild was tried and needed more
    /// symbols (it keeps those it was given).
    inner: Option<SourceBlockDecoder>,
    len: u64,
    symbol_size: u16,
    /// Digest of every symbol received, by symbol id.
    seen: HashMap<u32, u64>,
    /// Lowest and highest symbol id received (for the loss estimate).
    ids: Option<(u32, u32)>,
}

fn digest(data: &[u8]) -> u64 {
    let h = blake3::hash(data);
    u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"))
}

impl SegmentDecoder {
    /// A decoder for a segment of `len` bytes with symbols of `symbol_size`.
    /// The caller has checked the sizes ([`crate::diode::Packet::from_bytes`] does).
    pub fn new(len: u64, symbol_size: u16) -> Self {
        SegmentDecoder {
            held: Vec::new(),
            inner: None,
            len,
            symbol_size,
            seen: HashMap::new(),
            ids: None,
        }
    }

    /// Symbol ids from the lowest to the highest received, and how many of
    /// them never arrived: the loss on the way, as far as this segment saw
    /// it (the sender sends a segment's ids in order).
    pub fn span(&self) -> (u64, u64) {
        match self.ids {
            Some((lo, hi)) => {
                let span = u64::from(hi - lo) + 1;
                (span, span.saturating_sub(self.seen.len() as u64))
            }
            None => (0, 0),
        }
    }

    /// Distinct symbols received so far.
    pub fn received(&self) -> u32 {
        self.seen.len() as u32
    }

    /// Source symbols needed (at least).
    pub fn needed(&self) -> u32 {
        source_symbols(self.len, self.symbol_size)
    }

    /// Bytes of symbols this decoder holds (an upper bound).
    pub fn held_bytes(&self) -> u64 {
        self.seen.len() as u64 * self.symbol_size as u64
    }

    /// Most distinct symbols one segment may collect before it is started
    /// over: twice what it needs, plus slack. An honest carousel rebuilds it
    /// long before; a flood of forged ids does not grow memory without end.
    fn max_symbols(&self) -> usize {
        self.needed() as usize * 2 + 64
    }

    fn reset(&mut self) {
        self.held = Vec::new();
        self.inner = None;
        self.seen.clear();
        self.ids = None;
    }

    /// Adds a symbol, and rebuilds the segment when enough are in.
    pub fn add(&mut self, symbol_id: u32, data: Vec<u8>) -> Added {
        match self.store(symbol_id, data) {
            Added::Ready => self.solve(),
            other => other,
        }
    }

    /// Adds a symbol without rebuilding: [`Added::Ready`] when enough are in
    /// for [`SegmentDecoder::solve`], which may then run on another thread.
    pub fn store(&mut self, symbol_id: u32, data: Vec<u8>) -> Added {
        if data.len() != self.symbol_size as usize {
            return Added::Duplicate;
        }
        let d = digest(&data);
        if let Some(&old) = self.seen.get(&symbol_id) {
            return if old == d {
                Added::Duplicate
            } else {
                Added::Conflicting
            };
        }
        if self.seen.len() >= self.max_symbols() {
            self.reset();
            return Added::Inconsistent;
        }
        self.seen.insert(symbol_id, d);
        self.ids = Some(match self.ids {
            Some((lo, hi)) => (lo.min(symbol_id), hi.max(symbol_id)),
            None => (symbol_id, symbol_id),
        });
        self.held
            .push(EncodingPacket::new(PayloadId::new(0, symbol_id), data));
        if self.ready() {
            Added::Ready
        } else {
            Added::Pending
        }
    }

    /// Whether enough symbols are in to try a rebuild: one more than `K`,
    /// so that one of them confirms it.
    pub fn ready(&self) -> bool {
        self.received() >= self.needed() + CONFIRM_SYMBOLS
    }

    /// Tries to rebuild the segment from the symbols in: [`Added::Rebuilt`]
    /// when every one of them agrees with the result, [`Added::Inconsistent`]
    /// (all dropped) when one does not, [`Added::Pending`] when RaptorQ
    /// needs more (the next symbol tries again).
    pub fn solve(&mut self) -> Added {
        if !self.ready() {
            return Added::Pending;
        }
        let (len, t) = (self.len, self.symbol_size);
        let block = u64::from(self.needed()) * u64::from(t);
        let dec = self
            .inner
            .get_or_insert_with(|| SourceBlockDecoder::new(0, &oti(len, t), block));
        let Some(mut out) = dec.decode(std::mem::take(&mut self.held)) else {
            return Added::Pending;
        };
        out.truncate(len as usize);
        // The decoder's symbols are no longer needed: free them now.
        self.inner = None;
        if self.consistent(&out) {
            Added::Rebuilt(out)
        } else {
            self.reset();
            Added::Inconsistent
        }
    }

    /// Whether every received symbol is what `candidate` encodes to.
    fn consistent(&self, candidate: &[u8]) -> bool {
        let t = self.symbol_size as usize;
        let k = self.needed();
        let mut block = candidate.to_vec();
        block.resize(k as usize * t, 0);
        let mut encoder = None;
        self.seen.iter().all(|(&id, &want)| {
            let got = if id < k {
                digest(&block[id as usize * t..(id as usize + 1) * t])
            } else {
                let enc = encoder
                    .get_or_insert_with(|| plan::encoder(self.len, self.symbol_size, k, &block));
                match enc.repair_packets(id - k, 1).first() {
                    Some(p) => digest(p.data()),
                    None => return false,
                }
            };
            got == want
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diode::wire::{encode_segment, repair_count};
    use crate::test_util::noise as bytes;

    #[test]
    fn a_rebuild_waits_for_one_confirming_symbol() {
        let data = bytes(10_000, 1);
        let t = 512;
        let k = source_symbols(data.len() as u64, t);
        let mut packets = encode_segment(&data, t, true, 0, 2).into_iter();
        let mut d = SegmentDecoder::new(data.len() as u64, t);
        for _ in 0..k {
            let (id, s) = packets.next().unwrap();
            assert_eq!(d.add(id, s), Added::Pending);
        }
        let (id, s) = packets.next().unwrap();
        assert_eq!(d.add(id, s).rebuilt().as_deref(), Some(&data[..]));
        assert_eq!(d.span(), (u64::from(k) + 1, 0));
    }

    #[test]
    fn the_span_counts_the_symbols_lost_on_the_way() {
        let data = bytes(20_000, 3);
        let t = 256;
        let k = source_symbols(data.len() as u64, t);
        let mut d = SegmentDecoder::new(data.len() as u64, t);
        assert_eq!(d.span(), (0, 0));
        let mut got = None;
        // Every tenth symbol lost, one duplicated.
        for (id, s) in encode_segment(&data, t, true, 0, repair_count(k, 0.2)) {
            if id % 10 == 4 {
                continue;
            }
            if id == 6 {
                let _ = d.add(id, s.clone());
            }
            if let Some(out) = d.add(id, s).rebuilt() {
                got = Some(out);
                break;
            }
        }
        assert_eq!(got.as_deref(), Some(&data[..]));
        let (span, lost) = d.span();
        assert_eq!(span - lost, u64::from(k) + 1);
        assert_eq!(lost, (0..span).filter(|x| x % 10 == 4).count() as u64);
    }

    #[test]
    fn forged_symbols_are_detected_and_a_fresh_pass_rebuilds() {
        let data = bytes(30_000, 2);
        let t = 1024;
        let k = source_symbols(data.len() as u64, t);
        let r = repair_count(k, 0.1);
        let pass0 = encode_segment(&data, t, true, 0, r);
        let mut d = SegmentDecoder::new(data.len() as u64, t);
        // Two forged symbols arrive first, under ids the sender uses.
        assert_eq!(d.add(3, bytes(t as usize, 77)), Added::Pending);
        assert_eq!(d.add(k + 1, bytes(t as usize, 78)), Added::Pending);
        let mut outcomes = Vec::new();
        for (id, s) in pass0 {
            outcomes.push(d.add(id, s));
        }
        assert!(outcomes.contains(&Added::Conflicting));
        assert!(outcomes.contains(&Added::Inconsistent));
        assert!(
            !outcomes
                .iter()
                .any(|o| matches!(o, Added::Rebuilt(b) if b != &data)),
            "a wrong rebuild was accepted"
        );
        // The next carousel pass (fresh repair symbols) rebuilds it.
        let pass1 = encode_segment(&data, t, false, r, k + r);
        let out = pass1.into_iter().find_map(|(id, s)| d.add(id, s).rebuilt());
        assert_eq!(out.as_deref(), Some(&data[..]));
    }

    #[test]
    fn a_flood_of_distinct_ids_is_bounded() {
        let t = 64;
        let mut d = SegmentDecoder::new(640, t);
        let mut restarts = 0;
        for id in 0..10_000u32 {
            if d.add(id + 100, bytes(t as usize, id as u64)) == Added::Inconsistent {
                restarts += 1;
            }
            assert!(d.received() as usize <= d.max_symbols());
        }
        assert!(restarts > 0);
    }
}
