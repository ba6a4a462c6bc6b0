//! A volume file: header parsing, and verification against a manifest entry
//! that declares exactly this file's size and hash, or a wrong hash.
#![no_main]
use ferry_protocol::id::ChunkId;
use ferry_protocol::manifest::VolumeEntry;
use ferry_protocol::volume;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = volume::parse_header(data);
    // A volume's hash is BLAKE3 of the whole file, as a chunk id is of a chunk.
    let blake3 = ChunkId::of(data).0;
    let size = data.len() as u64;
    volume::verify(data, 0, &VolumeEntry { size, blake3 }).expect("size and hash match");
    let mut wrong = blake3;
    wrong[0] ^= 1;
    let entry = VolumeEntry {
        size,
        blake3: wrong,
    };
    assert!(
        volume::verify(data, 0, &entry).is_err(),
        "a wrong hash passed"
    );
    let longer = VolumeEntry {
        size: size + 1,
        blake3,
    };
    assert!(
        volume::verify(data, 0, &longer).is_err(),
        "a truncated volume passed"
    );
});
