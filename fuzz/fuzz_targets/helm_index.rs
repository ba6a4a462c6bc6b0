//! A Helm chart repository's index.yaml; what parses must also write.
#![no_main]
use ferry_formats::helm::{parse_index, write_index};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(entries) = parse_index(data) {
        let _ = write_index(&entries);
    }
});
