//! The receiver state machine against hostile packets: no files, no clock.

use super::*;
use crate::id::StreamId;
use crate::limits::DiodeLimits;
use std::collections::HashMap;

const STREAM: StreamId = StreamId([7; 16]);

fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Datagrams of one carousel pass of a bundle, as the sender makes them.
fn pass(
    files: &[Vec<u8>],
    stream: StreamId,
    seq: u64,
    seg: u32,
    t: u16,
    pass: u32,
) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (fi, data) in files.iter().enumerate() {
        let size = data.len() as u64;
        for s in 0..segment_count(size, seg).unwrap() {
            let start = (s as u64 * seg as u64) as usize;
            let chunk = &data[start..start + segment_len(size, seg, s) as usize];
            let k = source_symbols(chunk.len() as u64, t);
            let r = repair_count(k, 0.1);
            let symbols = if pass == 0 {
                encode_segment(chunk, t, true, 0, r)
            } else {
                encode_segment(chunk, t, false, r + (pass - 1) * (k + r), k + r)
            };
            for (id, sym) in symbols {
                let p = Packet {
                    stream,
                    sequence: seq,
                    file: fi as u16,
                    file_count: files.len() as u16,
                    file_size: size,
                    segment: s,
                    segment_size: seg,
                    symbol_size: t,
                    symbol_id: id,
                    data: sym,
                };
                out.push(p.to_bytes());
            }
        }
    }
    out
}

/// A file's size and the writes into it.
type SparseFile = (u64, Vec<(u64, Vec<u8>)>);

/// Carries out the receiver's events in memory, as the agent does on disk
/// (sparsely: a forged size may be huge).
#[derive(Default)]
struct Disk {
    files: HashMap<(BundleId, u16), SparseFile>,
    complete: Vec<BundleId>,
    abandoned: Vec<(BundleId, Abandon)>,
}

impl Disk {
    fn drain(&mut self, rx: &mut Receiver) {
        while let Some(e) = rx.poll_event() {
            match e {
                Event::FileStarted { bundle, file, size } => {
                    self.files.entry((bundle, file)).or_default().0 = size;
                }
                Event::Write {
                    bundle,
                    file,
                    offset,
                    data,
                } => {
                    let f = self.files.get_mut(&(bundle, file)).expect("started");
                    assert!(offset + data.len() as u64 <= f.0, "write beyond the file");
                    f.1.push((offset, data));
                }
                Event::Complete { bundle, .. } => self.complete.push(bundle),
                Event::Abandoned { bundle, why } => {
                    self.files.retain(|(b, _), _| *b != bundle);
                    self.abandoned.push((bundle, why));
                }
            }
        }
    }

    fn file(&self, seq: u64, file: u16) -> Vec<u8> {
        let id = BundleId {
            stream: STREAM,
            sequence: seq,
        };
        let (size, writes) = &self.files[&(id, file)];
        let mut out = vec![0; *size as usize];
        for (o, d) in writes {
            out[*o as usize..*o as usize + d.len()].copy_from_slice(d);
        }
        out
    }
}

fn feed(rx: &mut Receiver, disk: &mut Disk, now: u64, dgrams: &[Vec<u8>]) {
    for d in dgrams {
        rx.handle(now, d);
        disk.drain(rx);
    }
}

fn real_bundle(seed: u64) -> Vec<Vec<u8>> {
    vec![bytes(3_000, seed), bytes(20_000, seed + 1)]
}

fn id(seq: u64) -> BundleId {
    BundleId {
        stream: STREAM,
        sequence: seq,
    }
}

fn forged(
    seq: u64,
    file_size: u64,
    segment_size: u32,
    symbol_size: u16,
    file_count: u16,
) -> Vec<u8> {
    Packet {
        stream: STREAM,
        sequence: seq,
        file: 0,
        file_count,
        file_size,
        segment: 0,
        segment_size,
        symbol_size,
        symbol_id: 0,
        data: vec![0xAA; symbol_size as usize],
    }
    .to_bytes()
}

#[test]
fn a_clean_pass_delivers_a_bundle() {
    let files = real_bundle(1);
    let mut rx = Receiver::new(DiodeLimits::default(), None, 0);
    let mut disk = Disk::default();
    feed(
        &mut rx,
        &mut disk,
        1000,
        &pass(&files, STREAM, 1, 4096, 512, 0),
    );
    assert_eq!(disk.complete, vec![id(1)]);
    assert_eq!(disk.file(1, 0), files[0]);
    assert_eq!(disk.file(1, 1), files[1]);
    assert_eq!(rx.decoding(), (0, 0));
    // Later packets of a complete bundle are late, not a new bundle.
    feed(
        &mut rx,
        &mut disk,
        1000,
        &pass(&files, STREAM, 1, 4096, 512, 1),
    );
    assert_eq!(disk.complete.len(), 1);
    assert!(rx.counters().duplicate_or_late > 0);
}

#[test]
fn a_file_size_of_2_pow_35_in_8_byte_segments_is_refused_before_anything() {
    let mut rx = Receiver::new(DiodeLimits::default(), None, 0);
    let mut disk = Disk::default();
    // 2^32 segments: the count does not fit a segment index (it used to wrap to 0 and panic).
    feed(&mut rx, &mut disk, 1, &[forged(1, 1 << 35, 8, 8, 2)]);
    assert_eq!(rx.counters().over_limit, 1);
    assert!(disk.files.is_empty(), "a file was started");
    assert!(rx.reports().is_empty(), "a slot was taken");
}

#[test]
fn forged_huge_geometry_is_refused_before_anything() {
    let limits = DiodeLimits {
        max_files: 10,
        max_manifest_bytes: 1 << 20,
        max_bundle_bytes: 1 << 30,
        max_segments: 1000,
        ..DiodeLimits::default()
    };
    let mut rx = Receiver::new(limits, None, 0);
    let mut disk = Disk::default();
    let dgrams = [
        forged(1, 1000, 1024, 8, 11),          // too many files
        forged(2, 2 << 20, 1 << 20, 1024, 2),  // manifest over its limit
        forged(3, u64::MAX, 1 << 20, 1024, 2), // absurd size
        forged(4, 1 << 20, 1024, 1024, 2),     // 1024 segments > 1000
    ];
    feed(&mut rx, &mut disk, 1, &dgrams);
    assert_eq!(rx.counters().over_limit, 4);
    assert!(disk.files.is_empty());
    // The bundle total counts across files: file 1 of 1 GiB on top of a 1 MiB manifest.
    let mut second = Packet::from_bytes(&forged(5, 1 << 20, 1 << 20, 1024, 2)).unwrap();
    feed(&mut rx, &mut disk, 1, &[second.to_bytes()]);
    assert_eq!(disk.files.len(), 1);
    second.file = 1;
    second.file_size = 1 << 30;
    feed(&mut rx, &mut disk, 1, &[second.to_bytes()]);
    assert_eq!(rx.counters().over_limit, 5);
    assert_eq!(disk.files.len(), 1);
}

#[test]
fn garbage_never_panics_and_a_bundle_still_arrives() {
    let mut rx = Receiver::new(DiodeLimits::default(), None, 0);
    let mut disk = Disk::default();
    for seed in 0..3000u64 {
        let mut b = bytes(((seed * 7) % 1500) as usize, seed);
        if seed % 2 == 0 && b.len() > 8 {
            b[..6].copy_from_slice(b"FRYD\x01\x00");
        }
        rx.handle(5, &b);
        // Well-formed packets with random fields: pass the check, then the limits.
        let r = bytes(64, seed + 99_999);
        let t = 8 * (1 + (r[0] as u16 % 16));
        let seg = t as u32 * (1 + r[1] as u32);
        let p = Packet {
            stream: STREAM,
            sequence: 1 + r[2] as u64 % 20,
            file: r[3] as u16 % 3,
            file_count: 3,
            file_size: u64::from_le_bytes(r[8..16].try_into().unwrap()) >> (r[4] % 64),
            segment: u32::from_le_bytes(r[16..20].try_into().unwrap()) >> (r[5] % 32),
            segment_size: seg,
            symbol_size: t,
            symbol_id: u32::from_le_bytes(r[20..24].try_into().unwrap()) >> 8,
            data: bytes(t as usize, seed),
        };
        rx.handle(5, &p.to_bytes());
        disk.drain(&mut rx);
    }
    assert!(rx.counters().garbage >= 3000);
    let files = real_bundle(2);
    feed(
        &mut rx,
        &mut disk,
        6,
        &pass(&files, STREAM, 21, 4096, 512, 0),
    );
    assert!(disk.complete.contains(&id(21)), "{:?}", rx.counters());
    assert_eq!(disk.file(21, 1), files[1]);
}

#[test]
fn a_slot_flood_is_evicted_by_a_real_bundle() {
    let mut rx = Receiver::new(DiodeLimits::default(), None, 0);
    let mut disk = Disk::default();
    let flood: Vec<_> = (100..108)
        .map(|s| forged(s, 1 << 20, 1 << 20, 1024, 2))
        .collect();
    feed(&mut rx, &mut disk, 10, &flood);
    assert_eq!(rx.reports().len(), 8);
    let files = real_bundle(3);
    feed(
        &mut rx,
        &mut disk,
        11,
        &pass(&files, STREAM, 1, 4096, 512, 0),
    );
    assert_eq!(disk.complete, vec![id(1)]);
    assert_eq!(disk.file(1, 1), files[1]);
    assert!(disk
        .abandoned
        .iter()
        .all(|(b, why)| b.sequence >= 100 && *why == Abandon::Evicted));
    assert_eq!(rx.counters().evicted_bundles, 1);
}

#[test]
fn slots_that_keep_decoding_hold_until_they_expire() {
    let limits = DiodeLimits {
        stale_after_ms: 60_000,
        ..DiodeLimits::default()
    };
    let mut rx = Receiver::new(limits, None, 0);
    let mut disk = Disk::default();
    // The attacker rebuilds one segment (of two) of eight bundles of its own.
    for s in 100..108 {
        let fake = vec![bytes(4096 + 100, s)];
        let dgrams = pass(&fake, STREAM, s, 4096, 512, 0);
        let k = source_symbols(4096, 512) as usize + 2;
        feed(&mut rx, &mut disk, 1000, &dgrams[..k]);
    }
    assert_eq!(rx.reports().len(), 8);
    assert!(rx.reports().iter().all(|r| r.segments_received == 1));
    let files = real_bundle(4);
    feed(
        &mut rx,
        &mut disk,
        30_000,
        &pass(&files, STREAM, 1, 4096, 512, 0),
    );
    assert!(
        disk.complete.is_empty(),
        "a progressing slot was taken over"
    );
    assert!(rx.counters().over_capacity > 0);
    // The attacker stops; a minute later its slots expire and the next pass completes.
    feed(
        &mut rx,
        &mut disk,
        61_001,
        &pass(&files, STREAM, 1, 4096, 512, 1),
    );
    assert_eq!(disk.complete, vec![id(1)]);
    assert_eq!(disk.file(1, 0), files[0]);
    assert_eq!(rx.counters().expired_bundles, 8);
}

#[test]
fn two_poisoned_symbols_then_a_clean_pass() {
    let files = vec![bytes(30_000, 5)];
    let (seg, t) = (1 << 16, 1024);
    let k = source_symbols(30_000, t);
    let mut rx = Receiver::new(DiodeLimits::default(), None, 0);
    let mut disk = Disk::default();
    // Two forged symbols under ids the sender is about to use arrive first.
    for (sid, seed) in [(2, 50), (k + 1, 51)] {
        let mut p = Packet::from_bytes(&pass(&files, STREAM, 1, seg, t, 0)[0]).unwrap();
        p.symbol_id = sid;
        p.data = bytes(t as usize, seed);
        rx.handle(1, &p.to_bytes());
    }
    feed(&mut rx, &mut disk, 2, &pass(&files, STREAM, 1, seg, t, 0));
    assert!(rx.counters().poisoned_segments >= 1, "{:?}", rx.counters());
    assert!(disk.complete.is_empty(), "a poisoned rebuild was accepted");
    feed(&mut rx, &mut disk, 3, &pass(&files, STREAM, 1, seg, t, 1));
    assert_eq!(disk.complete, vec![id(1)]);
    assert_eq!(disk.file(1, 0), files[0]);
}

#[test]
fn a_bundle_that_fails_verification_is_received_again_after_forget() {
    // A whole forged bundle is self-consistent: only verification of the
    // signed manifest catches it; the agent then forgets it.
    let fake = real_bundle(6);
    let real = real_bundle(7);
    let mut rx = Receiver::new(DiodeLimits::default(), None, 0);
    let mut disk = Disk::default();
    feed(&mut rx, &mut disk, 1, &pass(&fake, STREAM, 1, 4096, 512, 0));
    assert_eq!(disk.complete, vec![id(1)]);
    feed(&mut rx, &mut disk, 2, &pass(&real, STREAM, 1, 4096, 512, 1));
    assert_eq!(disk.complete.len(), 1, "late packets started it over");
    rx.forget(id(1));
    disk.files.clear();
    feed(&mut rx, &mut disk, 3, &pass(&real, STREAM, 1, 4096, 512, 2));
    assert_eq!(disk.complete, vec![id(1), id(1)]);
    assert_eq!(disk.file(1, 1), real[1]);
}

#[test]
fn restored_progress_resumes_or_expires() {
    let limits = DiodeLimits {
        stale_after_ms: 60_000,
        ..DiodeLimits::default()
    };
    let files = real_bundle(8);
    let first = pass(&files, STREAM, 1, 4096, 512, 0);
    let mut rx = Receiver::new(limits, None, 0);
    let mut disk = Disk::default();
    feed(&mut rx, &mut disk, 1_000, &first[..first.len() / 2]);
    let saved = rx.take_dirty();
    assert_eq!(saved.len(), 1);
    assert!(rx.take_dirty().is_empty());
    let encoded = postcard::to_allocvec(&saved[0]).unwrap();
    let progress: BundleProgress = postcard::from_bytes(&encoded).unwrap();
    let done: usize = progress.files.values().map(|f| f.done.len()).sum();
    assert!(done > 0);

    // Restored too late: refused.
    let mut late = Receiver::new(limits, None, 0);
    assert!(matches!(
        late.restore(62_000, &progress),
        Err(RestoreRefused::Stale { .. })
    ));
    // Restored in time: resumes, and the next pass completes it.
    let mut again = Receiver::new(limits, None, 0);
    assert_eq!(again.restore(30_000, &progress), Ok(id(1)));
    disk.complete.clear();
    disk.drain(&mut again);
    assert_eq!(again.reports()[0].segments_received, done as u64);
    // ... and it obeys the same expiry as any slot.
    let mut idle = Receiver::new(limits, None, 0);
    idle.restore(30_000, &progress).unwrap();
    idle.expire(61_001);
    assert_eq!(idle.counters().expired_bundles, 1);
    feed(
        &mut again,
        &mut disk,
        31_000,
        &pass(&files, STREAM, 1, 4096, 512, 1),
    );
    assert_eq!(disk.complete, vec![id(1)]);
    assert_eq!(disk.file(1, 1), files[1]);
    // Hostile progress files are bounded like packets.
    let mut bad = progress.clone();
    bad.files.get_mut(&1).unwrap().size = 1 << 35;
    bad.files.get_mut(&1).unwrap().segment_size = 8;
    bad.files.get_mut(&1).unwrap().symbol_size = 8;
    assert!(matches!(
        Receiver::new(limits, None, 0).restore(30_000, &bad),
        Err(RestoreRefused::OverLimit(_))
    ));
}

#[test]
fn applied_and_foreign_bundles_are_dropped() {
    let files = real_bundle(9);
    let mut rx = Receiver::new(DiodeLimits::default(), Some(STREAM), 5);
    let mut disk = Disk::default();
    feed(
        &mut rx,
        &mut disk,
        1,
        &pass(&files, STREAM, 5, 4096, 512, 0)[..3],
    );
    feed(
        &mut rx,
        &mut disk,
        1,
        &pass(&files, StreamId([8; 16]), 6, 4096, 512, 0)[..3],
    );
    assert_eq!(rx.counters().already_applied, 3);
    assert_eq!(rx.counters().other_stream, 3);
    feed(
        &mut rx,
        &mut disk,
        1,
        &pass(&files, STREAM, 6, 4096, 512, 0)[..3],
    );
    assert_eq!(rx.reports().len(), 1);
    rx.set_applied(Some(STREAM), 6);
    disk.drain(&mut rx);
    assert_eq!(disk.abandoned, vec![(id(6), Abandon::AlreadyApplied)]);
    assert_eq!(rx.decoding(), (0, 0));
}

#[test]
fn a_forged_geometry_gives_way_to_one_that_decodes() {
    let files = real_bundle(10);
    let mut rx = Receiver::new(DiodeLimits::default(), None, 0);
    let mut disk = Disk::default();
    // The attacker announces bundle 1 first, with 3 files and another size.
    feed(&mut rx, &mut disk, 1, &[forged(1, 5000, 4096, 512, 3)]);
    let real = pass(&files, STREAM, 1, 4096, 512, 0);
    feed(&mut rx, &mut disk, 2, &real);
    assert_eq!(disk.complete, vec![id(1)]);
    assert_eq!(disk.file(1, 0), files[0]);
    assert!(rx.counters().conflicting >= 1);
    // Once a segment is rebuilt, the geometry holds against later forgeries.
    let mut rx = Receiver::new(DiodeLimits::default(), None, 0);
    let mut disk = Disk::default();
    let half = real.len() / 2;
    feed(&mut rx, &mut disk, 1, &real[..half]);
    assert!(rx.reports()[0].segments_received > 0);
    feed(&mut rx, &mut disk, 2, &[forged(1, 5000, 4096, 512, 3)]);
    feed(&mut rx, &mut disk, 3, &real[half..]);
    assert_eq!(disk.complete, vec![id(1)]);
}

#[test]
fn rebuilding_on_threads_gives_the_same_bundle_and_measures_the_loss() {
    let files = vec![bytes(3_000, 21), bytes(60_000, 22)];
    let mut rx = Receiver::new(DiodeLimits::default(), None, 0);
    rx.set_threads(3);
    let mut disk = Disk::default();
    // Two forged symbols for a real segment arrive first; one packet in 30 is lost.
    let mut first = vec![
        forged_symbol(1, &files, 3, 77),
        forged_symbol(1, &files, 9, 78),
    ];
    first.extend(
        pass(&files, STREAM, 1, 4096, 512, 0)
            .into_iter()
            .enumerate()
            .filter(|(i, _)| i % 30 != 7)
            .map(|(_, d)| d),
    );
    feed(&mut rx, &mut disk, 1000, &first);
    // Segments wait for a batch of three; the rest when asked.
    rx.solve_ready(1000);
    disk.drain(&mut rx);
    assert!(!rx.has_ready());
    assert!(rx.counters().poisoned_segments >= 1);
    if disk.complete.is_empty() {
        // The poisoned segment is rebuilt from the next carousel pass.
        feed(
            &mut rx,
            &mut disk,
            1000,
            &pass(&files, STREAM, 1, 4096, 512, 1),
        );
        rx.solve_ready(1000);
        disk.drain(&mut rx);
    }
    assert_eq!(disk.complete, vec![id(1)]);
    assert_eq!(disk.file(1, 0), files[0]);
    assert_eq!(disk.file(1, 1), files[1]);
    assert_eq!(rx.decoding(), (0, 0));
    let loss = rx.counters().loss().expect("measured");
    assert!((0.01..0.06).contains(&loss), "loss {loss}");
}

/// A forged symbol `id` for segment 0 of file 1 of a real bundle.
fn forged_symbol(seq: u64, files: &[Vec<u8>], id: u32, seed: u64) -> Vec<u8> {
    Packet {
        stream: STREAM,
        sequence: seq,
        file: 1,
        file_count: files.len() as u16,
        file_size: files[1].len() as u64,
        segment: 0,
        segment_size: 4096,
        symbol_size: 512,
        symbol_id: id,
        data: bytes(512, seed),
    }
    .to_bytes()
}

#[test]
fn a_ready_segment_waits_for_company_only_briefly() {
    let files = real_bundle(31);
    let packets = pass(&files, STREAM, 1, 4096, 512, 0);
    let mut rx = Receiver::new(DiodeLimits::default(), None, 0);
    // More threads than segments: a batch never fills.
    rx.set_threads(16);
    let mut disk = Disk::default();
    feed(&mut rx, &mut disk, 1000, &packets);
    assert!(rx.has_ready());
    assert!(disk.complete.is_empty());
    // Packets keep coming (a duplicate here): the wait is not over yet...
    let wait = receiver::READY_WAIT_MS;
    feed(&mut rx, &mut disk, 1000 + wait - 1, &packets[..1]);
    assert!(disk.complete.is_empty());
    // ... and now it is: everything ready is rebuilt.
    feed(&mut rx, &mut disk, 1000 + wait, &packets[..1]);
    assert!(!rx.has_ready());
    assert_eq!(disk.complete, vec![id(1)]);
    assert_eq!(disk.file(1, 1), files[1]);
}
