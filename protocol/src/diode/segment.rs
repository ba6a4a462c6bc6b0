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

use crate::diode::wire::{oti, source_symbols};
use raptorq::{EncodingPacket, PayloadId, SourceBlockEncoder};
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
    /// The RaptorQ decoder, until a candidate is rebuilt.
    inner: Option<raptorq::Decoder>,
    /// Rebuilt bytes waiting for a confirming symbol.
    candidate: Option<Vec<u8>>,
    len: u64,
    symbol_size: u16,
    /// Digest of every symbol received, by symbol id.
    seen: HashMap<u32, u64>,
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
            inner: Some(raptorq::Decoder::new(oti(len, symbol_size))),
            candidate: None,
            len,
            symbol_size,
            seen: HashMap::new(),
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
        match &self.candidate {
            Some(c) => c.len() as u64,
            None => self.seen.len() as u64 * self.symbol_size as u64,
        }
    }

    /// Most distinct symbols one segment may collect before it is started
    /// over: twice what it needs, plus slack. An honest carousel rebuilds it
    /// long before; a flood of forged ids does not grow memory without end.
    fn max_symbols(&self) -> usize {
        self.needed() as usize * 2 + 64
    }

    fn reset(&mut self) {
        self.inner = Some(raptorq::Decoder::new(oti(self.len, self.symbol_size)));
        self.candidate = None;
        self.seen.clear();
    }

    /// Adds a symbol.
    pub fn add(&mut self, symbol_id: u32, data: Vec<u8>) -> Added {
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
        if let Some(dec) = &mut self.inner {
            let packet = EncodingPacket::new(PayloadId::new(0, symbol_id), data);
            if let Some(mut out) = dec.decode(packet) {
                out.truncate(self.len as usize);
                self.candidate = Some(out);
                // The decoder's symbols are no longer needed: free them now.
                self.inner = None;
            }
        }
        if self.candidate.is_none() || self.received() < self.needed() + CONFIRM_SYMBOLS {
            return Added::Pending;
        }
        let candidate = self.candidate.take().expect("checked above");
        if self.consistent(&candidate) {
            Added::Rebuilt(candidate)
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
                let enc = encoder.get_or_insert_with(|| {
                    SourceBlockEncoder::new(0, &oti(self.len, self.symbol_size), &block)
                });
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
