//! A stored chunk: whatever the stored bytes and the declared length, decoding
//! never allocates past the declared length and never returns bytes whose id
//! differs from the one asked for.
#![no_main]
use ferry_protocol::codec::{decode, Codec};
use ferry_protocol::id::ChunkId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 5 {
        return;
    }
    let codec = if data[0] & 1 == 0 {
        Codec::Raw
    } else {
        Codec::Zstd
    };
    let raw_len = u32::from_le_bytes(data[1..5].try_into().unwrap()) % (1 << 20);
    let stored = &data[5..];
    // The id of a short prefix: sometimes right for small raw inputs.
    let id = ChunkId::of(&stored[..stored.len().min(raw_len as usize)]);
    if let Ok(out) = decode(&id, codec, stored, raw_len) {
        assert_eq!(out.len(), raw_len as usize);
        assert_eq!(ChunkId::of(&out), id);
    }
});
