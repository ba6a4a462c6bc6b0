//! Measures bit-exact xz/zstd recompression on real files.
//!
//! ```text
//! cargo run --release -p ferry-recipe --example xz_zstd_measure -- [FILE|DIR]...
//! ```
//!
//! For every `.deb` (its `data.tar.*` and `control.tar.*` members), `.rpm`
//! (its payload), `.xz` and `.zst` file: whether each xz/zstd stream was
//! reproduced, with which parameters, how long `find_params` and `compress`
//! took and their throughput (MB/s of decompressed bytes, and of the
//! compressed upstream bytes). Without arguments it uses the benchmark corpus
//! of `tests/bench/corpus.py` under /tmp/corpus (`old/debs`, `new/debs`) if
//! present, else downloads 14 bookworm packages that have security/updates
//! versions into /tmp/ferry-xz-corpus with `apt-get download`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ferry_recipe::{xz, zstd};

const LIMIT: u64 = 4 << 30;
const DEBS: &[&str] = &[
    "openssl",
    "libssl3",
    "tzdata",
    "postgresql-15",
    "python3.11-minimal",
    "libpython3.11-stdlib",
    "bind9-libs",
    "libexpat1",
    "curl",
    "libcurl4",
    "libc6",
    "systemd",
    "git",
    "libxml2",
];

/// Parameters found for one stream.
enum Found {
    Xz(xz::XzParams),
    Zstd(zstd::ZstdParams),
}

#[derive(Default)]
struct Totals {
    streams: usize,
    reproduced: usize,
    upstream: u64,
    plain: u64,
    find_s: f64,
    compress_s: f64,
}

fn main() {
    let mut inputs: Vec<PathBuf> = std::env::args().skip(1).map(PathBuf::from).collect();
    if inputs.is_empty() {
        inputs = default_corpus();
    }
    let mut files = Vec::new();
    for input in &inputs {
        collect(input, &mut files);
    }
    files.sort();
    let mut totals = std::collections::BTreeMap::<String, Totals>::new();
    println!(
        "file\tstream\tcompressed\tplain\tresult\tfind_s\tcompress_s\tcompress_MB/s(plain)\tparams"
    );
    for file in &files {
        let bytes = std::fs::read(file).expect("read input");
        for (member, stream) in streams(file, &bytes) {
            let kind = member.rsplit('.').next().unwrap_or("").to_string();
            let t = totals
                .entry(format!("{}.{kind}", member.split('.').next().unwrap()))
                .or_default();
            measure(file, &member, stream, t);
        }
    }
    println!();
    for (what, t) in &totals {
        println!(
            "{what}: {}/{} reproduced; {:.1} MB upstream, {:.1} MB plain; find_params {:.2} MB/s plain ({:.2} MB/s upstream); compress {:.2} MB/s plain ({:.2} MB/s upstream)",
            t.reproduced, t.streams, mb(t.upstream), mb(t.plain),
            mb(t.plain) / t.find_s, mb(t.upstream) / t.find_s,
            mb(t.plain) / t.compress_s, mb(t.upstream) / t.compress_s,
        );
    }
}

fn mb(n: u64) -> f64 {
    n as f64 / 1e6
}

fn measure(file: &Path, member: &str, stream: &[u8], t: &mut Totals) {
    let name = file.file_name().unwrap().to_string_lossy();
    let is_xz = member.ends_with(".xz");
    let decoded = if is_xz {
        xz::decompress(stream, LIMIT).map_err(|e| e.to_string())
    } else {
        zstd::decompress(stream, LIMIT).map_err(|e| e.to_string())
    };
    let (plain, used) = match decoded {
        Ok(d) => d,
        Err(e) => return println!("{name}\t{member}\t{}\t-\tdecode error: {e}", stream.len()),
    };
    let stream = &stream[..used];
    let start = Instant::now();
    let found = if is_xz {
        xz::find_params(stream, &plain)
            .map(Found::Xz)
            .map_err(|e| e.to_string())
    } else {
        zstd::find_params(stream, &plain)
            .map(Found::Zstd)
            .map_err(|e| e.to_string())
    };
    let find_s = start.elapsed().as_secs_f64();
    t.streams += 1;
    let found = match found {
        Ok(p) => p,
        Err(e) => {
            return println!(
                "{name}\t{member}\t{}\t{}\tNOT reproduced: {e}\t{find_s:.2}",
                stream.len(),
                plain.len()
            )
        }
    };
    let start = Instant::now();
    let (again, params) = match &found {
        Found::Xz(p) => (xz::compress(p, &plain).unwrap(), format!("{p:?}")),
        Found::Zstd(p) => (zstd::compress(p, &plain).unwrap(), format!("{p:?}")),
    };
    let compress_s = start.elapsed().as_secs_f64().max(1e-6);
    assert_eq!(again, stream, "{name} {member}: rebuild differs");
    t.reproduced += 1;
    t.upstream += stream.len() as u64;
    t.plain += plain.len() as u64;
    t.find_s += find_s;
    t.compress_s += compress_s;
    println!(
        "{name}\t{member}\t{}\t{}\treproduced\t{find_s:.2}\t{compress_s:.2}\t{:.2}\t{params}",
        stream.len(),
        plain.len(),
        mb(plain.len() as u64) / compress_s
    );
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).expect("read dir") {
            collect(&entry.expect("dir entry").path(), out);
        }
    } else if ["deb", "rpm", "xz", "zst"]
        .iter()
        .any(|e| path.extension().is_some_and(|x| x == *e))
    {
        out.push(path.to_path_buf());
    }
}

/// The xz/zstd streams in a file, by member name.
fn streams<'a>(file: &Path, bytes: &'a [u8]) -> Vec<(String, &'a [u8])> {
    let ext = file
        .extension()
        .unwrap_or_default()
        .to_string_lossy()
        .to_string();
    let keep = |n: &str| n.ends_with(".xz") || n.ends_with(".zst");
    match ext.as_str() {
        "deb" => ar_members(bytes)
            .into_iter()
            .filter(|(n, _)| keep(n))
            .collect(),
        "rpm" => {
            let payload = rpm_payload(bytes);
            if payload.starts_with(&[0xFD, b'7', b'z', b'X', b'Z', 0]) {
                vec![("payload.xz".into(), payload)]
            } else if payload.starts_with(&[0x28, 0xB5, 0x2F, 0xFD]) {
                vec![("payload.zst".into(), payload)]
            } else {
                Vec::new()
            }
        }
        "xz" => vec![("file.xz".into(), bytes)],
        _ => vec![("file.zst".into(), bytes)],
    }
}

/// Members of an `ar` archive (a deb): 8-byte magic, then 60-byte headers
/// (name 16, size at 48..58 in decimal) each followed by data padded to 2.
fn ar_members(bytes: &[u8]) -> Vec<(String, &[u8])> {
    let mut out = Vec::new();
    let mut pos = 8;
    while pos + 60 <= bytes.len() {
        let head = &bytes[pos..pos + 60];
        let name = String::from_utf8_lossy(&head[..16])
            .trim()
            .trim_end_matches('/')
            .to_string();
        let size: usize = String::from_utf8_lossy(&head[48..58])
            .trim()
            .parse()
            .expect("ar size");
        let start = pos + 60;
        out.push((name, &bytes[start..(start + size).min(bytes.len())]));
        pos = start + size + size % 2;
    }
    out
}

fn rpm_payload(rpm: &[u8]) -> &[u8] {
    let header_len = |at: usize| {
        let nindex = u32::from_be_bytes(rpm[at + 8..at + 12].try_into().unwrap()) as usize;
        let hsize = u32::from_be_bytes(rpm[at + 12..at + 16].try_into().unwrap()) as usize;
        16 + 16 * nindex + hsize
    };
    let main = 96 + header_len(96).div_ceil(8) * 8;
    &rpm[main + header_len(main)..]
}

fn default_corpus() -> Vec<PathBuf> {
    let bench = Path::new("/tmp/corpus");
    if bench.join("new/debs").is_dir() {
        return vec![bench.join("old/debs"), bench.join("new/debs")];
    }
    let dir = PathBuf::from("/tmp/ferry-xz-corpus");
    std::fs::create_dir_all(&dir).expect("create /tmp/ferry-xz-corpus");
    let status = std::process::Command::new("apt-get")
        .arg("download")
        .args(DEBS)
        .current_dir(&dir)
        .status()
        .expect("run apt-get");
    assert!(status.success(), "apt-get download failed");
    vec![dir]
}
