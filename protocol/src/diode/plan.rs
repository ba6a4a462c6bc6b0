//! RaptorQ encoders built from cached encoding plans.
//!
//! Building a segment's encoder (its intermediate symbols) is most of the
//! cost of encoding it, on the sender, and of the receiver's consistency
//! check ([`crate::diode::segment`]). The matrix work depends only on the
//! source symbol count `K`, and nearly every segment of a bundle has the same
//! `K` (all but the last of each file), so a plan made once for that `K`
//! makes each later encoder two to three times cheaper; its symbols are the
//! same.
//!
//! A plan is made for a `K` the second time it is seen (a one-off `K` is not
//! worth one), for `K` up to [`MAX_PLANNED_SYMBOLS`], and at most
//! [`MAX_PLANS`] are kept: the cache is bounded whatever `K`s a forger sends.

use crate::diode::wire::oti;
use raptorq::{SourceBlockEncoder, SourceBlockEncodingPlan};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Largest `K` a plan is kept for (a plan's size grows with `K`).
pub const MAX_PLANNED_SYMBOLS: u32 = 8192;
/// Most plans kept at once.
pub const MAX_PLANS: usize = 4;
/// Most distinct `K`s counted while waiting for a second sighting.
const MAX_SEEN: usize = 64;

#[derive(Default)]
struct Plans {
    plans: HashMap<u32, Arc<SourceBlockEncodingPlan>>,
    seen: HashMap<u32, u32>,
}

static PLANS: Mutex<Option<Plans>> = Mutex::new(None);

/// The plan for `k` source symbols, if one is kept or now worth making.
fn plan_for(k: u32) -> Option<Arc<SourceBlockEncodingPlan>> {
    if k == 0 || k > MAX_PLANNED_SYMBOLS {
        return None;
    }
    {
        let mut guard = PLANS.lock().unwrap_or_else(|e| e.into_inner());
        let p = guard.get_or_insert_with(Plans::default);
        if let Some(plan) = p.plans.get(&k) {
            return Some(plan.clone());
        }
        if p.seen.len() >= MAX_SEEN && !p.seen.contains_key(&k) {
            p.seen.clear();
        }
        let n = p.seen.entry(k).or_insert(0);
        *n += 1;
        if *n < 2 {
            return None;
        }
    }
    // Made outside the lock: other threads keep encoding meanwhile (two may
    // make the same plan once; both are the same).
    let plan = Arc::new(SourceBlockEncodingPlan::generate(k as u16));
    let mut guard = PLANS.lock().unwrap_or_else(|e| e.into_inner());
    let p = guard.get_or_insert_with(Plans::default);
    if p.plans.len() >= MAX_PLANS && !p.plans.contains_key(&k) {
        // Keep the cache bounded: drop an arbitrary plan (a bundle's segments
        // share one `K`, so the working set is small).
        if let Some(&old) = p.plans.keys().next() {
            p.plans.remove(&old);
        }
    }
    p.seen.remove(&k);
    p.plans.insert(k, plan.clone());
    Some(plan)
}

/// An encoder for one segment of `len` bytes whose source symbols (padded
/// to `k` whole symbols of `symbol_size`) are `block`.
pub(crate) fn encoder(len: u64, symbol_size: u16, k: u32, block: &[u8]) -> SourceBlockEncoder {
    let config = oti(len, symbol_size);
    match plan_for(k) {
        Some(plan) => SourceBlockEncoder::with_encoding_plan(0, &config, block, &plan),
        None => SourceBlockEncoder::new(0, &config, block),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::noise;

    #[test]
    fn planned_encoders_give_the_same_symbols() {
        let t = 256u16;
        let k = 37u32;
        let block = noise(k as usize * t as usize, 5);
        let plain = SourceBlockEncoder::new(0, &oti(block.len() as u64, t), &block);
        // The first sighting builds without a plan, the second makes one.
        for _ in 0..3 {
            let e = encoder(block.len() as u64, t, k, &block);
            let a: Vec<_> = e.repair_packets(3, 5);
            let b: Vec<_> = plain.repair_packets(3, 5);
            assert_eq!(a, b);
        }
    }

    #[test]
    fn the_cache_stays_bounded() {
        for k in 1..200u32 {
            let _ = plan_for(k);
            let _ = plan_for(k);
        }
        let _ = plan_for(MAX_PLANNED_SYMBOLS + 1);
        let guard = PLANS.lock().unwrap();
        let p = guard.as_ref().unwrap();
        assert!(p.plans.len() <= MAX_PLANS);
        assert!(p.seen.len() <= MAX_SEEN);
        assert!(!p.plans.contains_key(&(MAX_PLANNED_SYMBOLS + 1)));
    }
}
