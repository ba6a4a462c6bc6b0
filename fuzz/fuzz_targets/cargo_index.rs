//! A crate's sparse index file (what the inside parses from a bundle and
//! the outside from a registry), the path rules of a `cargo` source and a
//! registry's `config.json`.
#![no_main]
use ferry_formats::cargo::{self, RegistryConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(entries) = cargo::parse_index(data, "serde") {
        for e in entries {
            assert!(e.line.name.eq_ignore_ascii_case("serde"));
            assert_eq!(e.line.cksum.len(), 64);
            let _ = cargo::crate_path(&e.line.name, &e.line.vers);
        }
    }
    if let Ok(c) = RegistryConfig::parse(data) {
        let _ = c.download_url("serde", "1.0.0", "00");
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(cargo::CargoPath::Index(name)) = cargo::parse_path(text) {
            assert_eq!(cargo::index_path(name).as_deref(), Ok(text), "index paths round-trip");
        }
        let _ = cargo::index_path(text);
    }
});
