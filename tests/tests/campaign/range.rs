//! GET and Range requests against `ferry-in serve` while imports switch the
//! served generation (and while imports are killed with -9): every response
//! is whole old or whole new content, never a mix and never a short body.

use super::corrupt::Rng;
use ferry_e2e::*;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The watched file's two versions: different sizes, so `Content-Range`
/// and `Content-Length` say which one a response claims to be.
pub fn versions() -> [Vec<u8>; 2] {
    [random_bytes(1_000_000, 71), random_bytes(1_200_000, 72)]
}

/// What a client saw.
#[derive(Default, Debug)]
pub struct Seen {
    /// Whole bodies of version 1 and 2 (GET and Range).
    pub whole: [u64; 2],
    /// Responses that were neither version whole, each described.
    pub bad: Vec<String>,
}

/// One HTTP/1.1 request with `Connection: close`; the status, the header
/// block and the body as read to the end of the stream (or an I/O error).
fn request(
    addr: &str,
    path: &str,
    range: Option<(usize, usize)>,
) -> std::io::Result<(u16, String, Vec<u8>)> {
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    let range = range.map_or(String::new(), |(a, b)| format!("Range: bytes={a}-{b}\r\n"));
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: campaign\r\n{range}Connection: close\r\n\r\n"
    )?;
    let mut all = Vec::new();
    s.read_to_end(&mut all)?;
    let end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no end of headers"))?;
    let head = String::from_utf8_lossy(&all[..end]).to_ascii_lowercase();
    let status = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status"))?;
    Ok((status, head, all[end + 4..].to_vec()))
}

/// The value of header `name` (lower case) in `head`.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// Checks one response against the two versions; which version it was.
fn judge(
    v: &[Vec<u8>; 2],
    status: u16,
    head: &str,
    body: &[u8],
    range: Option<(usize, usize)>,
) -> Result<usize, String> {
    let len: Option<usize> = header(head, "content-length").and_then(|l| l.parse().ok());
    if len != Some(body.len()) {
        return Err(format!(
            "status {status}: Content-Length {len:?} but {} body bytes (a short body)",
            body.len()
        ));
    }
    match (status, range) {
        (200, None) => v
            .iter()
            .position(|x| x == body)
            .ok_or_else(|| format!("a {}-byte body that is neither version", body.len())),
        (206, Some((a, b))) => {
            let cr = header(head, "content-range").unwrap_or("");
            let i = v
                .iter()
                .position(|x| cr == format!("bytes {a}-{b}/{}", x.len()))
                .ok_or_else(|| format!("Content-Range {cr:?} names neither version"))?;
            if body == &v[i][a..=b] {
                Ok(i)
            } else {
                Err(format!("a {cr} body that is not version {}'s bytes", i + 1))
            }
        }
        _ => Err(format!("status {status} for range {range:?}")),
    }
}

/// Loops requests (every other one a random Range inside both versions)
/// until `stop`; returns what it saw.
pub fn client(addr: String, path: &str, seed: u64, stop: Arc<AtomicBool>) -> Seen {
    let v = versions();
    let mut rng = Rng::new(seed);
    let mut seen = Seen::default();
    let shorter = v[0].len().min(v[1].len()) as u64;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let range = n.is_multiple_of(2).then(|| {
            let a = rng.below(shorter) as usize;
            (a, a + rng.below(shorter - a as u64) as usize)
        });
        match request(&addr, path, range) {
            Ok((status, head, body)) => match judge(&v, status, &head, &body, range) {
                Ok(i) => seen.whole[i] += 1,
                Err(e) => seen.bad.push(format!("request {n} ({range:?}): {e}")),
            },
            Err(e) => seen.bad.push(format!("request {n} ({range:?}): {e}")),
        }
    }
    seen
}

/// Writes version `i` of the watched file and exports it into `media`.
pub fn export_version(env: &Env, i: usize, media: &str) {
    env.write_src("watched.bin", &versions()[i]);
    env.export(media).expect_ok();
}

/// Runs imports of bundles alternating the watched file between the two
/// versions, `clean` of them to the end and then `killed` killed with -9 at
/// a random instant and run again, while two clients loop requests. Returns
/// what the clients saw.
pub fn during_imports(clean: u64, killed: u64, seed: u64) -> Vec<Seen> {
    let env = Env::new();
    export_version(&env, 0, "m0");
    env.import("m0").expect_ok();
    let server = env.serve();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..2u64)
        .map(|c| {
            let (addr, stop) = (server.addr.clone(), stop.clone());
            std::thread::spawn(move || client(addr, "/files/tools/watched.bin", seed + c, stop))
        })
        .collect();
    let mut rng = Rng::new(seed);
    let mut import_time = Duration::from_millis(50);
    for k in 1..=clean + killed {
        let media = format!("m{k}");
        export_version(&env, (k % 2) as usize, &media);
        let m = env.root().join(&media);
        if k <= clean {
            let t0 = Instant::now();
            env.import(&media).expect_ok();
            import_time = import_time.max(t0.elapsed());
        } else {
            let mut child = std::process::Command::new(bin("ferry-in"))
                .arg("--state")
                .arg(&env.in_state)
                .arg("import")
                .arg(&m)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_micros(
                rng.below(import_time.as_micros() as u64 + 1),
            ));
            let _ = child.kill();
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(100));
            env.import(&media).expect_ok();
        }
        assert_eq!(env.applied_sequence(), k + 1);
        // Let the clients see this generation for a moment.
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    clients.into_iter().map(|c| c.join().unwrap()).collect()
}
