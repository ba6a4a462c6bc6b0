//! Bit rot inside: `ferry-in scrub` finds rotten objects and chunks (in the
//! chunk store, or byte ranges of the served files) and quarantines them;
//! `serve` never sends a rotten file under its ETag; the next import rebuilds
//! a rotten object from good copies of its chunks, and refuses, naming the
//! chunk, a bundle that relies on a rotten one.

use ferry_e2e::*;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Flips every bit of the byte at `at` of the file at `path`, in place.
fn flip_byte(path: &Path, at: u64) {
    use std::io::{Seek, SeekFrom};
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(at)).unwrap();
    f.read_exact(&mut b).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&[!b[0]]).unwrap();
}

/// `ferry-in scrub --json`: the exit code and the parsed report.
fn scrub(env: &Env) -> (Option<i32>, serde_json::Value) {
    let r = env.inn(&["scrub", "--json"]);
    let v = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("scrub --json is not JSON ({e}):\n{}", r.all()));
    (r.code, v)
}

/// A GET over a raw socket: (status code, body).
fn get(addr: &str, path: &str) -> (u16, Vec<u8>) {
    get_with(addr, path, "")
}

/// A GET with `headers` (each ending in `\r\n`): (status code, body).
fn get_with(addr: &str, path: &str, headers: &str) -> (u16, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect to serve");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut all = vec![];
    s.read_to_end(&mut all).unwrap();
    let end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&all[..end]).into_owned();
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    (code, all[end + 4..].to_vec())
}

/// Random bytes of at least `len` (`blob`) and other bytes holding every
/// chunk of them, as ferry-out cuts (`copy`): a longer random stream is cut,
/// `blob` is its start up to one of its cuts, `copy` the whole stream.
/// Objects are stored once by SHA-256, so only a file with other bytes is
/// another copy of a chunk.
fn blob_and_chunk_copy(len: usize, seed: u64) -> (Vec<u8>, Vec<u8>) {
    use ferry_protocol::chunking::{ChunkParams, Chunker};
    let ids = |data: &[u8]| {
        let mut c = Chunker::new(data, ChunkParams::DEFAULT);
        let mut out = Vec::new();
        while let Some(ch) = c.next_chunk().unwrap() {
            out.push((ch.id, ch.data.len()));
        }
        out
    };
    let copy = random_bytes(len + 600_000, seed);
    let mut end = 0;
    for (_, n) in ids(&copy) {
        end += n;
        if end < len || end == copy.len() {
            continue;
        }
        let blob = copy[..end].to_vec();
        let of_copy = ids(&copy);
        if ids(&blob).iter().all(|c| of_copy.contains(c)) {
            return (blob, copy);
        }
    }
    panic!("no cut of the stream gives a blob whose chunks it holds");
}

#[test]
fn a_clean_store_scrubs_clean_with_counts() {
    let env = Env::new();
    env.write_src("a.bin", &random_bytes(300_000, 1));
    env.write_src("dir/b.txt", b"hello\n");
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();
    let (code, v) = scrub(&env);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["objects_checked"], 2, "{v}");
    assert_eq!(v["object_bytes"], 300_006, "{v}");
    // Plain files keep their chunks as ranges of themselves, not as copies.
    assert_eq!(v["chunks_checked"], 0, "{v}");
    assert!(env.chunk_files().is_empty());
    assert!(v["ranges_checked"].as_u64().unwrap() >= 2, "{v}");
    assert_eq!(v["bad_objects"].as_array().unwrap().len(), 0, "{v}");
    assert_eq!(v["bad_chunks"].as_array().unwrap().len(), 0, "{v}");
    // The text form says the same.
    let r = env.inn(&["scrub"]).expect_ok();
    assert!(r.stdout.contains("2 objects"), "{}", r.stdout);
    assert!(
        r.stdout.contains("0 bad objects, 0 bad chunks"),
        "{}",
        r.stdout
    );
}

#[test]
fn a_rotten_object_is_reported_refused_by_serve_and_rebuilt_from_good_copies_of_its_chunks() {
    let env = Env::new();
    let (blob, copy) = blob_and_chunk_copy(300_000, 2);
    env.write_src("a.bin", &blob);
    // Not the same bytes (identical files are one object, one copy), but
    // every chunk of a.bin.
    env.write_src("copy/a.bin", &copy);
    env.write_src("b.txt", b"fine\n");
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();
    flip_byte(&env.served("a.bin"), 150_000);

    // serve checks a file before it first sends it.
    let srv = env.serve();
    let (code, body) = get(&srv.addr, "/files/tools/a.bin");
    assert_eq!(code, 500, "{}", String::from_utf8_lossy(&body));
    assert!(
        String::from_utf8_lossy(&body).contains("not the catalog's"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    // Asked again, still refused (a failed check is not remembered as good).
    assert_eq!(get(&srv.addr, "/files/tools/a.bin").0, 500);
    assert_eq!(
        get(&srv.addr, "/files/tools/b.txt"),
        (200, b"fine\n".to_vec())
    );

    let (code, v) = scrub(&env);
    assert_eq!(code, Some(1), "{v}");
    let bad = v["bad_objects"].as_array().unwrap();
    assert_eq!(bad.len(), 1, "{v}");
    assert_eq!(bad[0]["source"], "tools");
    assert_eq!(bad[0]["path"], "a.bin");
    assert_eq!(bad[0]["problem"], "digest");
    let want = format!("sha256:{}", ferry_protocol::id::Sha256::of(&blob).to_hex());
    assert_eq!(bad[0]["expected"], want.as_str());
    assert_ne!(bad[0]["got"], want.as_str());
    // Its rotten range is a chunk copy/a.bin still holds: no chunk is lost.
    assert_eq!(v["bad_chunks"].as_array().unwrap().len(), 0, "{v}");
    // Quarantined: out of the generation, kept for a post-mortem.
    assert!(!env.served("a.bin").exists());
    let q = PathBuf::from(bad[0]["quarantined_to"].as_str().unwrap());
    assert!(q.starts_with(env.in_state.join("quarantine")), "{q:?}");
    assert!(q.is_file());
    assert_eq!(get(&srv.addr, "/files/tools/a.bin").0, 500);

    // The next bundle rebuilds it from the (good) ranges of copy/a.bin.
    env.write_src("c.txt", b"new\n");
    env.export("m2").expect_ok();
    env.import("m2").expect_ok();
    assert_eq!(std::fs::read(env.served("a.bin")).unwrap(), blob);
    assert_eq!(get(&srv.addr, "/files/tools/a.bin"), (200, blob));
    let (code, v) = scrub(&env);
    assert_eq!(code, Some(0), "{v}");
}

/// A small file (read whole to be sent) is checked from the bytes read to
/// send it: a rotten one is refused whole, in part and asked again, and a
/// good one is sent, whole and in part, again and again.
#[test]
fn a_rotten_small_file_is_refused_by_serve_whole_or_in_part() {
    let env = Env::new();
    let small = text(7, 2_000);
    assert!(small.len() < 256 * 1024, "{}", small.len());
    env.write_src("small.txt", &small);
    env.write_src("good.txt", b"good bytes\n");
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();
    flip_byte(&env.served("small.txt"), small.len() as u64 / 2);

    let srv = env.serve();
    for headers in ["", "Range: bytes=0-99\r\n", "Range: bytes=0-\r\n", ""] {
        let (code, body) = get_with(&srv.addr, "/files/tools/small.txt", headers);
        let body = String::from_utf8_lossy(&body);
        assert_eq!(code, 500, "{headers:?}: {body}");
        assert!(body.contains("not the catalog's"), "{headers:?}: {body}");
        assert!(body.contains("SHA-256 is sha256:"), "{headers:?}: {body}");
    }
    for _ in 0..2 {
        assert_eq!(
            get(&srv.addr, "/files/tools/good.txt"),
            (200, b"good bytes\n".to_vec())
        );
        assert_eq!(
            get_with(&srv.addr, "/files/tools/good.txt", "Range: bytes=5-\r\n"),
            (206, b"bytes\n".to_vec())
        );
    }
}

#[test]
fn a_rotten_range_of_the_only_copy_is_reported_and_the_next_import_that_needs_it_is_refused() {
    let env = Env::new();
    let blob = random_bytes(300_000, 3);
    env.write_src("a.bin", &blob);
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();
    flip_byte(&env.served("a.bin"), 150_000);

    let (code, v) = scrub(&env);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v["bad_objects"][0]["path"], "a.bin", "{v}");
    let bad = v["bad_chunks"].as_array().unwrap();
    assert_eq!(bad.len(), 1, "{v}");
    assert_eq!(bad[0]["problem"], "corrupt");
    let id = bad[0]["id"].as_str().unwrap().to_string();
    let error = bad[0]["error"].as_str().unwrap();
    assert!(
        error.contains("a.bin") && error.contains("corrupt"),
        "{error}"
    );
    // Its good ranges were copied into the chunk store before the file went.
    let salvaged = v["chunks_salvaged"].as_u64().unwrap();
    assert!(salvaged >= 1, "{v}");
    assert_eq!(env.chunk_files().len() as u64, salvaged);
    assert!(!env
        .chunk_files()
        .iter()
        .any(|c| c.file_name().unwrap() == id.as_str()));

    // The outside believes the inside holds the chunk, so the next bundle
    // does not carry it: the import, which must rebuild a.bin, is refused,
    // naming it.
    env.write_src("b.txt", b"more\n");
    env.export("m2").expect_ok();
    env.import("m2").expect_fail(&[&id]);
    assert_eq!(env.applied_sequence(), 1);
    // Scrub now reports the object missing and that chunk still bad.
    let (code, v) = scrub(&env);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v["bad_objects"][0]["problem"], "missing", "{v}");
    assert_eq!(v["bad_chunks"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["bad_chunks"][0]["id"], id.as_str());
    assert_eq!(v["bad_chunks"][0]["problem"], "missing");
}

/// `gzip -n` of `data` (made by the real tool, so the recipe that rebuilds
/// it carries deflate corrections).
fn gzip(data: &[u8]) -> Vec<u8> {
    let mut child = std::process::Command::new("gzip")
        .args(["-n", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip runs");
    let mut stdin = child.stdin.take().unwrap();
    let input = data.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert!(out.status.success());
    out.stdout
}

/// Text that deflate compresses with real Huffman blocks.
fn text(seed: u64, lines: usize) -> Vec<u8> {
    let words = [
        "ferry", "chunk", "patch", "base", "recipe", "inside", "outside", "diode",
    ];
    let mut x = seed | 1;
    let mut out = Vec::new();
    for i in 0..lines {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let w = words[(x % words.len() as u64) as usize];
        out.extend_from_slice(format!("{i} {w} {}\n", x % 1000).as_bytes());
    }
    out
}

#[test]
fn a_rotten_chunk_is_quarantined_and_the_next_import_that_needs_it_is_refused() {
    if !have_tools("a_rotten_chunk_is_quarantined", &["gzip"]) {
        return;
    }
    let env = Env::new();
    // Release 1.1 of a gzip file travels as a patch against 1.0. The patch's
    // chunks are not kept once applied (bundle-format §5.6); its recipe's
    // are, in the chunk store (they are no range of a served file).
    let old = text(3, 20_000);
    env.write_src("tool.gz", &gzip(&old));
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();
    let mut new = old.clone();
    new[100_000..100_016].copy_from_slice(b"release 1.1 edit");
    env.write_src("tool.gz", &gzip(&new));
    let r = env.export("m2").expect_ok();
    assert!(r.stdout.contains("patched 1"), "{}", r.stdout);
    env.import("m2").expect_ok();
    let chunks = env.chunk_files();
    assert!(!chunks.is_empty(), "the recipe's chunks are kept");
    let rotten = &chunks[0];
    let id = rotten.file_name().unwrap().to_string_lossy().into_owned();
    let len = std::fs::metadata(rotten).unwrap().len();
    flip_byte(rotten, len / 2);

    let (code, v) = scrub(&env);
    assert_eq!(code, Some(1), "{v}");
    let bad = v["bad_chunks"].as_array().unwrap();
    assert_eq!(bad.len(), 1, "{v}");
    assert_eq!(bad[0]["id"], id.as_str());
    assert_eq!(bad[0]["problem"], "corrupt");
    assert!(!rotten.exists(), "the store no longer claims the chunk");
    assert!(env.in_state.join("quarantine/chunks").join(&id).is_file());
    // The object file itself is still good.
    assert_eq!(v["bad_objects"].as_array().unwrap().len(), 0, "{v}");

    // The outside believes the inside holds the chunk, so the next bundle
    // does not carry it, and the inside, which keeps every chunk of its
    // catalog but a patch's, refuses to apply until it is shipped again
    // (`ferry-out export --reship`), naming it.
    env.write_src("b.txt", b"more\n");
    env.export("m3").expect_ok();
    env.import("m3").expect_fail(&[&id]);
    assert_eq!(env.applied_sequence(), 2);
    assert_eq!(std::fs::read(env.served("tool.gz")).unwrap(), gzip(&new));
    let (code, v) = scrub(&env);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v["bad_chunks"][0]["id"], id.as_str());
    assert_eq!(v["bad_chunks"][0]["problem"], "missing");
}

#[test]
fn a_rotten_range_is_caught_when_an_import_relies_on_it_even_without_a_scrub() {
    let env = Env::new();
    let (blob, copy) = blob_and_chunk_copy(300_000, 4);
    env.write_src("a.bin", &blob);
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();
    flip_byte(&env.served("a.bin"), 150_000);
    // Every chunk of a.bin, not its bytes (an exact copy would be the same
    // object): the bundle carries no chunk for it, the inside rebuilds it
    // from a.bin's ranges, one of which is rotten.
    env.write_src("copy.bin", &copy);
    env.export("m2").expect_ok();
    env.import("m2")
        .expect_fail(&["corrupt", "ferry-in scrub", "re-ship"]);
    assert_eq!(env.applied_sequence(), 1);
}

#[test]
fn a_truncated_object_with_a_good_copy_is_rebuilt_by_the_next_import_after_a_scrub() {
    let env = Env::new();
    let (blob, copy) = blob_and_chunk_copy(200_000, 5);
    env.write_src("a.bin", &blob);
    // Every chunk of a.bin, not the same bytes (those would be one object).
    env.write_src("copy/a.bin", &copy);
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(env.served("a.bin"))
        .unwrap();
    f.set_len(1000).unwrap();
    drop(f);
    // An import does not look at an unchanged file's object (its count
    // says it is held): `scrub` finds it, and the next import rebuilds it.
    let (code, report) = scrub(&env);
    assert_eq!(code, Some(1), "{report}");
    env.write_src("b.txt", b"next\n");
    env.export("m2").expect_ok();
    env.import("m2").expect_ok();
    assert_eq!(std::fs::read(env.served("a.bin")).unwrap(), blob);
}
