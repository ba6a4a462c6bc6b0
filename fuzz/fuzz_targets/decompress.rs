//! The bounded decompressor both agents use for upstream indices: any input,
//! under any of the names it dispatches on, stays within the limit.
#![no_main]
use ferry_formats::compress::decompress;
use libfuzzer_sys::fuzz_target;

const LIMIT: u64 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    for name in ["Packages.gz", "Packages.xz", "primary.xml.zst", "Packages"] {
        if let Ok(out) = decompress(name, data, LIMIT) {
            assert!(out.len() as u64 <= LIMIT, "{name}: output past the limit");
        }
    }
});
