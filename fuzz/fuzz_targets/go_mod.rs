//! Go modules: a `go.mod` and `go.sum` (what the outside parses from a
//! proxy, the inside from a bundle), a checksum database's lookup answer
//! and signed note, a module zip's h1: hash, and catalog paths.
#![no_main]
use ferry_formats::go::{self, gomod, hash, sumdb};
use libfuzzer_sys::fuzz_target;

/// The key of sum.golang.org (no note here verifies: the parser is fuzzed).
const KEY: &str = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8";

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = gomod::GoMod::parse(data, None) {
        for r in &m.requires {
            assert!(go::check_path(&r.path).is_ok());
            assert!(go::check_version(&r.version).is_ok());
        }
    }
    if let Ok(lines) = gomod::parse_gosum(data) {
        for l in &lines {
            assert_eq!(gomod::parse_gosum(l.to_line().as_bytes()).unwrap(), vec![l.clone()]);
        }
    }
    let key = sumdb::VerifierKey::parse(KEY).unwrap();
    let _ = key.open(data);
    let _ = sumdb::parse_lookup(data, &key, "example.com/m", "v1.0.0");
    // Tiles of any bytes: the proof must fail or hold, never panic.
    let mut fetch = |_: &str| -> Result<Vec<u8>, String> { Ok(data.to_vec()) };
    let _ = go::tlog::prove_inclusion(data, data.len() as u64 % 7, 1 + data.len() as u64 % 300, &[0; 32], &mut fetch);
    let size = 1 + data.len() as u64 * 977;
    let _ = go::tlog::prove_consistency(data.len() as u64 % 300, &[0; 32], size, &[0; 32], &mut fetch);
    let needed: Vec<go::tlog::Tile> = go::tlog::tiles_needed(size, &[size / 2], &[size / 3]).into_iter().collect();
    let _ = go::tlog::check_tiles(size, &[0; 32], &needed, &mut fetch);
    let _ = sumdb::parse_stored_record(data, "example.com/m", "v1.0.0");
    let _ = go::Info::parse(data, None);
    let _ = hash::zip_h1(std::io::Cursor::new(data), "example.com/m", "v1.0.0");
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = sumdb::VerifierKey::parse(text);
        let _ = sumdb::parse_tree(text);
        let _ = go::parse_path(text);
        if let Some(t) = go::tlog::Tile::parse(text) {
            assert_eq!(t.path(), text);
        }
        if let Ok(u) = go::unescape(text) {
            assert_eq!(go::unescape(&go::escape(&u)).unwrap(), u);
        }
    }
});
