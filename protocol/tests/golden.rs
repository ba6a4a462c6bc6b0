//! Golden vectors: bytes the format promises, checked against the spec's own
//! text (docs/bundle-format.md), so that neither the code nor the document can
//! drift without this test failing.

use ferry_protocol::catalog::SourceKind;
use ferry_protocol::chunking::{ChunkParams, Chunker};
use ferry_protocol::id::{ManifestHash, StreamId};
use ferry_protocol::keys::SecretKey;
use ferry_protocol::manifest::{Manifest, Totals};
use ferry_protocol::volume;
use std::collections::BTreeMap;

fn spec() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/bundle-format.md");
    std::fs::read_to_string(path).expect("docs/bundle-format.md")
}

/// The lines of the first ```text block after `heading`.
fn block_after(spec: &str, heading: &str) -> Vec<String> {
    let rest = &spec[spec.find(heading).expect("heading in the spec")..];
    let start = rest.find("```text\n").expect("a text block") + "```text\n".len();
    let body = &rest[start..];
    let end = body.find("```").expect("block end");
    body[..end].lines().map(str::to_string).collect()
}

/// Parses an `xxd`-style dump: offset, then hex byte pairs up to two spaces.
fn parse_dump(lines: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in lines {
        let (_, rest) = line.split_once(": ").expect("offset");
        let hex = rest.split("  ").next().unwrap();
        for pair in hex.split_whitespace() {
            out.push(u8::from_str_radix(pair, 16).expect("hex byte"));
        }
    }
    out
}

fn appendix_a_manifest() -> Manifest {
    Manifest {
        stream: StreamId([0x11; 16]),
        sequence: 1,
        previous: None,
        created: 1_700_000_000,
        expires: 1_700_086_400,
        chunking: ChunkParams::DEFAULT,
        sources: BTreeMap::from([("s".to_string(), SourceKind::Files)]),
        changes: vec![],
        chunks: vec![],
        volumes: vec![],
        totals: Totals {
            max_chunk: 0,
            chunk_raw_bytes: 0,
            volume_bytes: 0,
            max_object: 0,
            objects: 0,
            catalog_bytes: 0,
        },
        producer: "t".into(),
        extensions: vec![],
    }
}

#[test]
fn appendix_a_manifest_file_is_byte_exact() {
    let spec = spec();
    let want = parse_dump(&block_after(&spec, "## Appendix A."));
    assert_eq!(want.len(), 165, "the spec's dump is 165 bytes");
    let got = appendix_a_manifest().sign(&SecretKey::from_seed([0; 32]));
    assert_eq!(
        hex(&got),
        hex(&want),
        "manifest bytes drifted from Appendix A"
    );
    let hash = ManifestHash::of(&got).to_hex();
    assert!(
        spec.contains(&format!("`{hash}`")),
        "Appendix A names the manifest hash {hash}"
    );
}

#[test]
fn appendix_a_volume_header_is_byte_exact() {
    let h = volume::header(StreamId([0x11; 16]), 1, 0);
    let mut want = b"FERRYVOL".to_vec();
    want.extend([0x11; 16]);
    want.extend(1u64.to_le_bytes());
    want.extend(0u32.to_le_bytes());
    assert_eq!(h.to_vec(), want);
    assert_eq!(volume::file_name(0), "volume-00000.ferry");
}

/// The seeded input of Appendix B: xorshift64 (13, 7, 17) from the given
/// seed, each byte the state's bits 24..32 after a step.
fn appendix_b_input(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn appendix_b_chunk_cut_points_and_ids() {
    let data = appendix_b_input(1 << 20, 0x00c0_ffee);
    let mut chunker = Chunker::new(&data[..], ChunkParams::DEFAULT);
    let mut ends = Vec::new();
    let mut first_ids = Vec::new();
    let mut at = 0u64;
    while let Some(c) = chunker.next_chunk().unwrap() {
        at += c.data.len() as u64;
        ends.push(at.to_string());
        if first_ids.len() < 2 {
            first_ids.push(c.id.to_hex());
        }
    }
    let (size, sha) = chunker.finish();
    assert_eq!(size, 1 << 20);
    eprintln!(
        "chunk ends: {}\nfirst chunk id: {}\nsecond chunk id: {}\nsha256: {}",
        ends.join(" "),
        first_ids[0],
        first_ids[1],
        sha.to_hex()
    );
    let spec = spec();
    let block = block_after(&spec, "## Appendix B.");
    let line = |k: &str| {
        block
            .iter()
            .find_map(|l| l.strip_prefix(k))
            .unwrap_or_else(|| panic!("Appendix B has a `{k}` line"))
            .trim()
            .to_string()
    };
    assert_eq!(ends.join(" "), line("chunk ends:"), "cut points drifted");
    assert_eq!(first_ids[0], line("first chunk id:"));
    assert_eq!(first_ids[1], line("second chunk id:"));
    assert_eq!(sha.to_hex(), line("sha256:"));
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Appendix C's rotation statement: the stream of Appendix A hands over from
/// the all-zero seed's key to the all-one seed's key from bundle 2.
fn appendix_c_statements() -> Vec<u8> {
    use ferry_protocol::trust::{encode, SignedStatement, Statement};
    let (old, new) = (SecretKey::from_seed([0; 32]), SecretKey::from_seed([1; 32]));
    let s = Statement::Rotate {
        stream: StreamId([0x11; 16]),
        from_sequence: 2,
        old: old.public().0,
        new: new.public().0,
        created: 1_700_000_000,
    };
    encode(&[SignedStatement::sign(s, &[&old, &new])])
}

#[test]
fn appendix_c_statements_are_byte_exact() {
    let bytes = appendix_c_statements();
    if std::env::var_os("FERRY_PRINT_APPENDIX_C").is_some() {
        for (i, line) in bytes.chunks(16).enumerate() {
            let hexes: Vec<String> = line.iter().map(|b| format!("{b:02x}")).collect();
            println!("{:08x}: {}", i * 16, hexes.join(" "));
        }
    }
    let spec = spec();
    let dump = parse_dump(&block_after(&spec, "## Appendix C"));
    assert_eq!(dump, bytes, "Appendix C differs from the code");
    let list = ferry_protocol::trust::decode(&dump).unwrap();
    assert_eq!(
        list[0].authority(&[], &[]),
        Ok(ferry_protocol::trust::Authority::OldKey)
    );
}
