//! An npm packument (what the inside parses from a bundle and serves
//! rewritten), its integrity strings, npm ranges, lockfiles and paths.
#![no_main]
use ferry_formats::npm::{self, Integrity, Packument};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Packument::parse(data, "pkg") {
        for v in p.versions.values() {
            assert_eq!(v.version.to_string(), v.meta.version);
            let _ = Integrity::of(&v.meta.dist);
        }
    }
    let _ = npm::parse_lockfile(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = npm::parse_range(text);
        let _ = npm::parse_path(text);
        let _ = npm::check_name(text);
    }
});
