//! `ferry-in publish` to a real local S3 server (moto, started by each test;
//! skipped, and said so, when moto is not installed): only the
//! change is uploaded, `current` is written last and names the new
//! generation, a path resolves through the published index to the right
//! bytes, a failed publish leaves `current` on the old generation and the
//! next one completes, and `--prune` deletes only what no kept generation
//! names.

use ferry_e2e::*;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BUCKET: &str = "mirror";
const AUTH: &str = "AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00";

/// A moto S3 server (`python3 -m moto.server`) on a free port of
/// 127.0.0.1, stopped on drop.
struct Moto {
    child: Child,
    port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts moto and makes the bucket, or skips the test.
fn moto(test: &str) -> Option<Moto> {
    let installed = Command::new("python3")
        .args(["-c", "import moto.server"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        skip(
            test,
            "moto not installed (python3 -m pip install 'moto[server]'; scripts/test.sh does)",
        );
        return None;
    }
    let port = free_port();
    let child = Command::new("python3")
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start python3 -m moto.server");
    let m = Moto { child, port };
    let t0 = Instant::now();
    // Listening is not yet serving: under load moto has reset the first
    // connection it accepted. Its first answer is the bucket's creation.
    let (code, body) = loop {
        match try_http(port, "PUT", &format!("/{BUCKET}")) {
            Ok(answer) => break answer,
            Err(e) => {
                assert!(
                    t0.elapsed() < Duration::from_secs(60),
                    "moto did not answer on {port} within 60 s: {e}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    };
    assert_eq!(
        code,
        200,
        "create bucket: {}",
        String::from_utf8_lossy(&body)
    );
    Some(m)
}

/// A request to moto, with an Authorization header it takes without
/// checking (it refuses anonymous reads of objects): (status, body).
fn http(port: u16, method: &str, path: &str) -> (u16, Vec<u8>) {
    try_http(port, method, path).expect("a request to moto")
}

/// [`http`], its connection's failure an error.
fn try_http(port: u16, method: &str, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: {AUTH}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut all = vec![];
    s.read_to_end(&mut all)?;
    let end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&all[..end]).into_owned();
    let code = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = all[end + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    Ok((code, body))
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = vec![];
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 4 + n..];
    }
}

/// Every key in the bucket, read from moto itself (not through ferry-in).
fn keys(port: u16) -> BTreeSet<String> {
    let (code, body) = http(port, "GET", &format!("/{BUCKET}?list-type=2&max-keys=1000"));
    assert_eq!(code, 200);
    let text = String::from_utf8(body).unwrap();
    assert!(
        !text.contains("<IsTruncated>true"),
        "more than 1000 keys in the test bucket"
    );
    text.split("<Key>")
        .skip(1)
        .map(|s| s.split("</Key>").next().unwrap().to_string())
        .collect()
}

fn object_keys(port: u16) -> BTreeSet<String> {
    keys(port)
        .into_iter()
        .filter(|k| k.starts_with("objects/"))
        .collect()
}

/// The generation `current` names, read from moto.
fn current(port: u16) -> String {
    let (code, body) = http(port, "GET", &format!("/{BUCKET}/current"));
    assert_eq!(code, 200, "no current in the bucket");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    v["generation"].as_str().unwrap().to_string()
}

fn sha_hex(data: &[u8]) -> String {
    ferry_protocol::id::Sha256::of(data).to_hex()
}

fn object_key(data: &[u8]) -> String {
    let h = sha_hex(data);
    format!("objects/{}/{h}", &h[..2])
}

/// Runs `ferry-in --state IN <args>` with the bucket's flags and credentials
/// (moto checks none, but the requests are signed as for a real server).
fn inn_s3(env: &Env, port: u16, args: &[&str]) -> Run {
    let o = Command::new(bin("ferry-in"))
        .arg("--state")
        .arg(&env.in_state)
        .args(args)
        .args(["--endpoint", &format!("http://127.0.0.1:{port}")])
        .args(["--bucket", BUCKET])
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .output()
        .expect("run ferry-in");
    Run::from(o)
}

/// `ferry-in publish --json …`: the report.
fn publish(env: &Env, port: u16, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["publish", "--json"];
    args.extend_from_slice(extra);
    let r = inn_s3(env, port, &args).expect_ok();
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.all()))
}

/// `ferry-in publish-get WHAT -o -`: the bytes.
fn get(env: &Env, port: u16, what: &str) -> Vec<u8> {
    let out = env.root().join("got");
    inn_s3(
        env,
        port,
        &["publish-get", what, "-o", out.to_str().unwrap()],
    )
    .expect_ok();
    std::fs::read(out).unwrap()
}

fn gen_name(env: &Env) -> String {
    std::fs::read_link(env.in_state.join("store/current"))
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

fn step(env: &Env, media: &str) {
    env.export(media).expect_ok();
    env.import(media).expect_ok();
}

#[test]
fn publish_uploads_only_the_change_and_switches_current_last() {
    let Some(m) = moto("publish::publish_uploads_only_the_change_and_switches_current_last") else {
        return;
    };
    let env = Env::new();
    let mut contents = BTreeSet::new();
    for i in 0..20u64 {
        let data = random_bytes(1000 + i as usize * 300, i);
        contents.insert(sha_hex(&data));
        env.write_src(&format!("d{}/f{i}.bin", i % 3), &data);
    }
    // Enough keys that a 5-key delta leaves the base as it is (a delta
    // over 1/16 of the base makes the import write a new one).
    for i in 0..300 {
        let data = format!("small file {i}\n");
        contents.insert(sha_hex(data.as_bytes()));
        env.write_src(&format!("many/x{i:03}"), data.as_bytes());
    }
    // The same bytes under a second path: one object.
    env.write_src("copy/f0.bin", &random_bytes(1000, 0));
    std::os::unix::fs::symlink("../d0/f3.bin", env.src.join("copy/link")).unwrap();
    // Bigger than the part size: a multipart upload (moto takes 5 MiB parts).
    let big = random_bytes(11 << 20, 99);
    contents.insert(sha_hex(&big));
    env.write_src("big.iso", &big);
    step(&env, "m1");

    let r = publish(&env, m.port, &["--part-size", "5242880"]);
    assert_eq!(r["objects_uploaded"], contents.len() as u64, "{r}");
    assert_eq!(r["index_files_uploaded"], 2, "{r}");
    let want: BTreeSet<String> = contents
        .iter()
        .map(|h| format!("objects/{}/{h}", &h[..2]))
        .collect();
    assert_eq!(
        object_keys(m.port),
        want,
        "the bucket holds each content once"
    );
    let g1 = gen_name(&env);
    assert_eq!(current(m.port), g1);
    assert!(keys(m.port).contains(&format!("gens/{g1}.json")));
    // Through the published index: a file, a link, the multipart object.
    assert_eq!(
        get(&env, m.port, "tools/d1/f4.bin"),
        random_bytes(1000 + 4 * 300, 4)
    );
    assert_eq!(
        get(&env, m.port, "tools/copy/link"),
        random_bytes(1000 + 3 * 300, 3)
    );
    assert_eq!(get(&env, m.port, "tools/big.iso"), big);
    inn_s3(&env, m.port, &["publish-get", "tools/nothing/here"])
        .expect_fail(&["tools/nothing/here", "is not in generation"]);

    // Nothing new: nothing sent.
    let again = publish(&env, m.port, &[]);
    assert_eq!(again["already"], true);
    assert_eq!(again["puts"], 0);

    // A delta: 3 files changed, 1 added, 1 removed.
    let before = object_keys(m.port);
    let mut new = vec![];
    for (i, path) in [
        (100u64, "d0/f0.bin"),
        (101, "d1/f1.bin"),
        (102, "d2/f2.bin"),
        (103, "d9/new.bin"),
    ] {
        let data = random_bytes(5000, i);
        env.write_src(path, &data);
        new.push((path, data));
    }
    std::fs::remove_file(env.src.join("d0/f6.bin")).unwrap();
    step(&env, "m2");
    let g2 = gen_name(&env);
    assert_ne!(g1, g2);
    let r = publish(&env, m.port, &[]);
    assert_eq!(r["changed_keys"], 5, "{r}");
    assert_eq!(r["objects_uploaded"], 4, "{r}");
    assert_eq!(r["object_bytes"], 4 * 5000, "{r}");
    // 4 objects, the delta index file (the base is unchanged), the manifest
    // and `current`.
    assert_eq!(r["index_files_uploaded"], 1, "{r}");
    assert_eq!(r["puts"], 4 + 1 + 2, "{r}");
    let added: BTreeSet<String> = object_keys(m.port).difference(&before).cloned().collect();
    let want: BTreeSet<String> = new.iter().map(|(_, d)| object_key(d)).collect();
    assert_eq!(added, want, "exactly the changed contents were uploaded");
    assert_eq!(current(m.port), g2);
    for (path, data) in &new {
        assert_eq!(&get(&env, m.port, &format!("tools/{path}")), data);
    }
    inn_s3(&env, m.port, &["publish-get", "tools/d0/f6.bin"])
        .expect_fail(&["is not in generation"]);
    // The old objects stay until a prune is asked for.
    assert!(object_keys(m.port).is_superset(&before));

    // --prune --keep 1: what only the first generation named goes (the
    // old bytes of 2 of the changed files and of the removed one; those of
    // d0/f0.bin are still copy/f0.bin's).
    let r = publish(&env, m.port, &["--prune", "--keep", "1"]);
    assert_eq!(r["already"], true, "{r}");
    assert_eq!(r["pruned_objects"], 3, "{r}");
    assert_eq!(r["pruned_manifests"], 1, "{r}");
    let gone: Vec<String> = [(1u64, 1300usize), (2, 1600), (6, 2800)]
        .iter()
        .map(|(seed, n)| object_key(&random_bytes(*n, *seed)))
        .collect();
    let now = object_keys(m.port);
    for g in &gone {
        assert!(!now.contains(g), "{g} should be pruned");
    }
    // copy/f0.bin still names the old bytes of d0/f0.bin: kept.
    assert_eq!(
        get(&env, m.port, "tools/copy/f0.bin"),
        random_bytes(1000, 0)
    );
    assert!(!keys(m.port).contains(&format!("gens/{g1}.json")));
    assert_eq!(get(&env, m.port, "tools/big.iso"), big);
}

/// Flips the byte at `at` of `path`.
fn flip(path: &Path, at: u64) {
    use std::io::{Seek, SeekFrom};
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8];
    f.seek(SeekFrom::Start(at)).unwrap();
    f.read_exact(&mut b).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&[!b[0]]).unwrap();
}

#[test]
fn a_rotten_object_stops_the_publish_before_current_moves() {
    let Some(m) = moto("publish::a_rotten_object_stops_the_publish_before_current_moves") else {
        return;
    };
    let env = Env::new();
    for i in 0..5u64 {
        env.write_src(&format!("f{i}"), &random_bytes(3000, i));
    }
    step(&env, "m1");
    publish(&env, m.port, &[]);
    let g1 = gen_name(&env);
    for i in 0..3u64 {
        env.write_src(&format!("f{i}"), &random_bytes(4000, 10 + i));
    }
    step(&env, "m2");
    let rotten = env.served("f1");
    flip(&rotten, 7);
    inn_s3(&env, m.port, &["publish", "--jobs", "1"]).expect_fail(&[
        rotten.to_str().unwrap(),
        "rotten",
        "`current` in the bucket still names the generation published before",
    ]);
    assert_eq!(
        current(m.port),
        g1,
        "current moved before everything was up"
    );
    assert!(
        !object_keys(m.port).contains(&object_key(&random_bytes(4000, 11))),
        "the rotten bytes were left under the object's key"
    );
    assert_eq!(get(&env, m.port, "tools/f1"), random_bytes(3000, 1));
    flip(&rotten, 7);
    let r = publish(&env, m.port, &[]);
    let up = r["objects_uploaded"].as_u64().unwrap();
    assert!((1..=3).contains(&up), "{r}");
    assert_eq!(current(m.port), gen_name(&env));
    for i in 0..3u64 {
        assert_eq!(
            get(&env, m.port, &format!("tools/f{i}")),
            random_bytes(4000, 10 + i)
        );
    }
}

/// A TCP relay to moto that cuts every connection, and refuses new ones,
/// once `budget` bytes went towards the server: the server going away in
/// the middle of a publish.
struct Relay {
    port: u16,
    sent: Arc<AtomicU64>,
    budget: Arc<AtomicU64>,
    cut: Arc<AtomicBool>,
}

impl Relay {
    fn new(to: u16) -> Relay {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let r = Relay {
            port,
            sent: Arc::default(),
            budget: Arc::new(AtomicU64::new(u64::MAX)),
            cut: Arc::default(),
        };
        let (sent, budget, cut) = (r.sent.clone(), r.budget.clone(), r.cut.clone());
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(c) = c else { return };
                if cut.load(Ordering::SeqCst) {
                    drop(c);
                    continue;
                }
                let s = TcpStream::connect(("127.0.0.1", to)).unwrap();
                let (c2, s2) = (c.try_clone().unwrap(), s.try_clone().unwrap());
                let (sent, budget, cut) = (sent.clone(), budget.clone(), cut.clone());
                std::thread::spawn(move || {
                    let (mut c, mut s) = (c, s);
                    let mut buf = [0u8; 8192];
                    loop {
                        let n = match c.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let total = sent.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
                        if cut.load(Ordering::SeqCst) || total > budget.load(Ordering::SeqCst) {
                            cut.store(true, Ordering::SeqCst);
                            break;
                        }
                        if s.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = c.shutdown(std::net::Shutdown::Both);
                    let _ = s.shutdown(std::net::Shutdown::Both);
                });
                std::thread::spawn(move || {
                    let (mut s2, mut c2) = (s2, c2);
                    let _ = std::io::copy(&mut s2, &mut c2);
                    let _ = c2.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        r
    }
}

#[test]
fn the_server_going_away_mid_publish_leaves_current_and_the_next_publish_completes() {
    let Some(m) = moto(
        "publish::the_server_going_away_mid_publish_leaves_current_and_the_next_publish_completes",
    ) else {
        return;
    };
    let relay = Relay::new(m.port);
    let env = Env::new();
    for i in 0..4u64 {
        env.write_src(&format!("f{i}"), &random_bytes(2000, i));
    }
    step(&env, "m1");
    publish(&env, relay.port, &[]);
    let g1 = gen_name(&env);
    for i in 0..6u64 {
        env.write_src(&format!("n{i}"), &random_bytes(100_000, 50 + i));
    }
    step(&env, "m2");
    // Room for about two of the six new objects, then the line is cut.
    relay.budget.store(
        relay.sent.load(Ordering::SeqCst) + 250_000,
        Ordering::SeqCst,
    );
    inn_s3(
        &env,
        relay.port,
        &["publish", "--jobs", "1", "--retries", "1"],
    )
    .expect_fail(&["PUT objects/", "current` in the bucket still names"]);
    assert!(relay.cut.load(Ordering::SeqCst), "the relay never cut");
    assert_eq!(
        current(m.port),
        g1,
        "current moved though the publish failed"
    );
    let up = object_keys(m.port);
    let new_up = (0..6u64)
        .filter(|i| up.contains(&object_key(&random_bytes(100_000, 50 + i))))
        .count();
    assert!(new_up < 6, "every object went up before the cut");
    // The line is back: the next publish sends the rest and switches.
    relay.cut.store(false, Ordering::SeqCst);
    relay.budget.store(u64::MAX, Ordering::SeqCst);
    let r = publish(&env, relay.port, &[]);
    assert_eq!(
        r["objects_uploaded"].as_u64().unwrap(),
        6 - new_up as u64,
        "only what the failed publish did not record: {r}"
    );
    assert_eq!(current(m.port), gen_name(&env));
    for i in 0..6u64 {
        assert_eq!(
            get(&env, m.port, &format!("tools/n{i}")),
            random_bytes(100_000, 50 + i)
        );
    }
}

/// `ferry-in --config C …` with the test credentials and no bucket flags:
/// the bucket comes from the config's `[publish]`.
fn inn_config(env: &Env, config: &Path, args: &[&str]) -> Run {
    let o = Command::new(bin("ferry-in"))
        .arg("--state")
        .arg(&env.in_state)
        .arg("--config")
        .arg(config)
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .output()
        .expect("run ferry-in");
    Run::from(o)
}

#[test]
fn an_import_publishes_when_the_config_has_a_publish_section() {
    let Some(m) = moto("publish::an_import_publishes_when_the_config_has_a_publish_section") else {
        return;
    };
    let env = Env::new();
    for i in 0..10u64 {
        env.write_src(&format!("d/f{i}.bin"), &random_bytes(2000, i));
    }
    let good = env.root().join("good.toml");
    std::fs::write(
        &good,
        format!(
            "[publish]\nendpoint = \"http://127.0.0.1:{}\"\nbucket = \"{BUCKET}\"\nprune = true\nkeep = 1\n",
            m.port
        ),
    )
    .unwrap();
    env.export("m1").expect_ok();
    let media = env.root().join("m1");
    let r = inn_config(&env, &good, &["import", media.to_str().unwrap()]).expect_ok();
    assert!(r.stderr.contains("published generation"), "{}", r.all());
    let g1 = gen_name(&env);
    assert_eq!(current(m.port), g1, "the import published its generation");
    assert!(object_keys(m.port).contains(&object_key(&random_bytes(2000, 3))));

    // The bucket unreachable (nothing listens there): the import is applied
    // and served, the exit code says the step after it failed, and the
    // bucket still names the last generation published.
    let bad = env.root().join("bad.toml");
    std::fs::write(
        &bad,
        format!(
            "[publish]\nendpoint = \"http://127.0.0.1:{}\"\nbucket = \"{BUCKET}\"\nretries = 0\n",
            free_port()
        ),
    )
    .unwrap();
    env.write_src("d/f0.bin", &random_bytes(3000, 50));
    env.export("m2").expect_ok();
    let media = env.root().join("m2");
    let r = inn_config(&env, &bad, &["import", media.to_str().unwrap()]);
    assert_eq!(r.code, Some(3), "{}", r.all());
    assert!(
        r.stderr
            .contains("the import is applied, but the publish to http://127.0.0.1:"),
        "{}",
        r.all()
    );
    assert!(r.stderr.contains("ferry-in publish"), "{}", r.all());
    let g2 = gen_name(&env);
    assert_ne!(g1, g2, "the import was applied");
    assert_eq!(current(m.port), g1);

    // `ferry-in publish` with the good config alone (no flags) catches up;
    // the config's prune with keep = 1 drops the old f0.bin.
    let r = inn_config(&env, &good, &["publish"]).expect_ok();
    assert!(r.stderr.contains("pruned 1 objects"), "{}", r.all());
    assert_eq!(current(m.port), g2);
    let objects = object_keys(m.port);
    assert!(objects.contains(&object_key(&random_bytes(3000, 50))));
    assert!(!objects.contains(&object_key(&random_bytes(2000, 0))));

    // Published already: nothing sent. A [publish] section without a
    // bucket is refused when the config is read, naming what is missing,
    // before any command runs.
    let r = inn_config(&env, &good, &["publish", "--json"]).expect_ok();
    assert!(r.stdout.contains("\"already\": true"), "{}", r.all());
    let nobucket = env.root().join("nobucket.toml");
    std::fs::write(
        &nobucket,
        format!("[publish]\nendpoint = \"http://127.0.0.1:{}\"\n", m.port),
    )
    .unwrap();
    inn_config(&env, &nobucket, &["status"]).expect_fail(&["no bucket", "[publish]"]);
}
