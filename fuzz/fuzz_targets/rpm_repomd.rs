//! repomd.xml from an upstream yum repository.
#![no_main]
use ferry_formats::rpm::parse_repomd;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_repomd(data);
});
