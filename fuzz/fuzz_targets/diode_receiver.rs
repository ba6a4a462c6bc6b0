//! A sequence of well-formed (checked) diode packets with hostile fields,
//! fed to the receiver's state machine: it must never panic, whatever the
//! geometry, ids, symbols and order, rebuilding inline or on threads.
#![no_main]
use ferry_protocol::diode::{Packet, Receiver};
use ferry_protocol::id::StreamId;
use ferry_protocol::limits::DiodeLimits;
use libfuzzer_sys::fuzz_target;

/// Bytes one packet record takes from the input.
const RECORD: usize = 14;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, records)) = data.split_first() else {
        return;
    };
    let limits = DiodeLimits {
        max_bundles: 3,
        max_decoders: 8,
        max_pending_bytes: 1 << 20,
        ..DiodeLimits::default()
    };
    let mut rx = Receiver::new(limits, None, u64::from(mode >> 4));
    rx.set_threads(usize::from(mode & 3));
    let mut now = 1_000_000u64;
    for r in records.chunks_exact(RECORD) {
        // Small fields, so that packets often agree with each other.
        let symbol_size = u16::from(r[6] % 4 + 1) * 8;
        let segment_size = u32::from(r[7] % 8 + 1) * u32::from(symbol_size);
        let file_count = u16::from(r[2] % 3 + 1);
        let p = Packet {
            stream: StreamId([r[0] % 2; 16]),
            sequence: u64::from(r[1] % 4) + 1,
            file: u16::from(r[3]) % (file_count + 1),
            file_count,
            file_size: u64::from(u16::from_le_bytes([r[4], r[5]])),
            segment: u32::from(r[8] % 8),
            segment_size,
            symbol_size,
            symbol_id: u32::from(u16::from_le_bytes([r[9], r[10]])) % 64,
            data: vec![r[11]; symbol_size as usize],
        };
        let mut bytes = p.to_bytes();
        if r[12] == 0xFF {
            // Now and then, a damaged one.
            let i = usize::from(r[13]) % bytes.len();
            bytes[i] ^= 1;
        }
        now += u64::from(r[13]) * 1000;
        rx.handle(now, &bytes);
        if r[12] % 16 == 1 {
            rx.solve_ready(now);
        }
        while rx.poll_event().is_some() {}
    }
    rx.solve_ready(now);
    while rx.poll_event().is_some() {}
    let _ = rx.take_dirty();
    let _ = rx.reports();
});
