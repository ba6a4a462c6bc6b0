//! `ferry-in serve` over TLS and on several listeners, with real clients
//! that verify it: a site CA from `ferry-in tls init`, curl with and without
//! `--cacert`, pip with `--cert`, apt-get over https with
//! `Acquire::https::CaInfo`, dnf with `sslcacert`; the certificate replaced while serving (a new
//! connection sees the new one; a bad new pair keeps the old one); a store
//! listener that refuses other stores' routes; the DeepOps preset serving
//! the paths DeepOps's client configs use. skopeo pulls over TLS are in
//! `oci_registry` and `delta_clients::oci` (`skopeo_pull` in tests/lib.rs).

use ferry_e2e::*;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// `curl -sS [--cacert CA] URL`: its exit code and stderr.
fn curl_code(ca: Option<&Path>, url: &str) -> (Option<i32>, String) {
    let mut c = Command::new("curl");
    c.args(["-sS", "-o", "/dev/null"]);
    if let Some(ca) = ca {
        c.arg("--cacert").arg(ca);
    }
    let o = c.arg(url).output().expect("run curl");
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Curl's exit code for a certificate it cannot verify.
const CURL_PEER_FAILED_VERIFICATION: i32 = 60;

#[test]
fn tls_init_then_serve_https_that_clients_verify_with_the_site_ca_only() {
    if !have_tools(&current_test(), &["curl"]) {
        return;
    }
    let env = Env::new();
    let data = random_bytes(300_000, 7);
    env.write_src("bin/tool", &data);
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();
    let srv = env.serve_tls_with(&["--tls", "--header-timeout", "1s"]);
    assert_eq!(srv.get("/files/tools/bin/tool"), data);
    // Ranges work as over HTTP.
    assert_eq!(
        curl(&[
            "--cacert",
            srv.ca.to_str().unwrap(),
            "-r",
            "10-19",
            &srv.url("/files/tools/bin/tool")
        ]),
        data[10..20]
    );
    // The name in the certificate works too.
    let port = srv.addr.rsplit(':').next().unwrap();
    assert_eq!(
        curl_code(Some(&srv.ca), &format!("https://localhost:{port}/healthz")).0,
        Some(0)
    );
    // Without the CA, curl refuses the server.
    let (code, err) = curl_code(None, &srv.url("/healthz"));
    assert_eq!(code, Some(CURL_PEER_FAILED_VERIFICATION), "{err}");
    // Plain HTTP to the TLS port gets no answer.
    let (code, _) = curl_code(None, &format!("http://{}/healthz", srv.addr));
    assert_ne!(code, Some(0));
    // A client that never starts its handshake is closed after the header
    // timeout, as one that never sends its headers.
    let mut stalled = std::net::TcpStream::connect(&srv.addr).unwrap();
    stalled
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let start = Instant::now();
    let n = std::io::Read::read(&mut stalled, &mut [0u8; 64]).expect("closed, not timed out");
    assert_eq!(n, 0, "the server sent something to a silent client");
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "closed too soon"
    );
    assert!(start.elapsed() < Duration::from_secs(10), "not closed");
    // A second `tls init` keeps the CA every client trusts.
    env.inn(&["tls", "init", "--name", "other"])
        .expect_fail(&["--force"]);
    assert_eq!(srv.get("/healthz"), b"ok");
}

#[test]
fn a_replaced_certificate_serves_new_connections_and_a_bad_one_is_not_used() {
    if !have_tools(&current_test(), &["curl"]) {
        return;
    }
    let env = Env::new();
    env.tls_init();
    // Serve copies, to be replaced as an operator (or certbot) would.
    let live = env.root().join("live");
    std::fs::create_dir_all(&live).unwrap();
    let (cert, key) = (live.join("server.pem"), live.join("server.key"));
    let tls = env.in_state.join("tls");
    std::fs::copy(tls.join("server.pem"), &cert).unwrap();
    std::fs::copy(tls.join("server.key"), &key).unwrap();
    let srv = env.serve_tls_with(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    assert_eq!(srv.get("/healthz"), b"ok");
    // A second site with its own CA: its certificate replaces the first.
    let other = env.root().join("other-state");
    ferry_in(
        &other,
        &["tls", "init", "--name", "localhost", "--ip", "127.0.0.1"],
    )
    .expect_ok();
    let other_ca = other.join("tls/ca.pem");
    std::fs::copy(other.join("tls/server.key"), &key).unwrap();
    std::fs::copy(other.join("tls/server.pem"), &cert).unwrap();
    // The files are looked at when a connection comes, at most once a second.
    let deadline = Instant::now() + Duration::from_secs(10);
    while curl_code(Some(&other_ca), &srv.url("/healthz")).0 != Some(0) {
        assert!(
            Instant::now() < deadline,
            "the new certificate is not served"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    srv.wait_log("loaded the new certificate");
    assert_eq!(
        curl_code(Some(&srv.ca), &srv.url("/healthz")).0,
        Some(CURL_PEER_FAILED_VERIFICATION),
        "the first CA no longer verifies the server"
    );
    // A bad pair: the first site's certificate with the second site's key.
    std::fs::copy(tls.join("server.pem"), &cert).unwrap();
    let log = wait_reported(&srv, &other_ca, "keeping the certificate in use");
    assert!(log.contains("does not fit"), "{log}");
    // Garbage in the key file is reported too, and changes nothing either.
    std::fs::write(&key, "not a key\n").unwrap();
    let log = wait_reported(&srv, &other_ca, "holds no PEM private key");
    assert!(log.contains(key.to_str().unwrap()), "{log}");
}

/// Connects (verifying with `ca`: the pair in use) until serve reports
/// `needle`; returns its stderr.
fn wait_reported(srv: &TlsServer, ca: &Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert_eq!(
            curl_code(Some(ca), &srv.url("/healthz")).0,
            Some(0),
            "the pair in use was dropped"
        );
        let log = srv.log.lock().unwrap().clone();
        if log.contains(needle) {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "serve never said {needle:?}:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A PEP 503 tree at `dir` with alpha 1.0 and the beta it needs; returns
/// alpha's wheel name.
fn pypi_tree(dir: &Path) -> String {
    let a1 = crate::pypi::wheel("alpha-1.0-");
    let b10 = crate::pypi::wheel("beta-1.0-");
    crate::pypi::upstream(dir, &[&a1, &b10], &[]);
    a1
}

#[test]
fn pip_installs_from_serve_over_tls_with_the_site_ca() {
    if !crate::pypi::have_pip(&current_test()) {
        return;
    }
    let env = Env::new();
    let up_dir = env.root().join("upstream-pypi");
    pypi_tree(&up_dir.join("pypi"));
    let up = http_upstream(&up_dir);
    std::fs::write(
        &env.config,
        format!(
            "[[source]]\nname = \"web\"\ntype = \"pypi\"\nindex = \"{}/pypi/simple/\"\nrequirements = [\"alpha\"]\npython = [\"3.11\"]\nplatforms = [\"manylinux_2_17_x86_64\"]\n",
            up.url
        ),
    )
    .unwrap();
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();
    let srv = env.serve_tls();
    let index = srv.url("/pypi/web/simple/");
    let target = env.root().join("site");
    let install = |cert: Option<&Path>| {
        let mut args = vec![
            "install".to_string(),
            "--no-cache-dir".into(),
            "--disable-pip-version-check".into(),
            "--retries".into(),
            "0".into(),
            "--index-url".into(),
            index.clone(),
            "--target".into(),
            target.display().to_string(),
            "alpha".into(),
        ];
        if let Some(c) = cert {
            args.extend(["--cert".into(), c.display().to_string()]);
        }
        crate::pypi::pip(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let refused = install(None);
    assert!(
        !refused.ok && refused.all().contains("CERTIFICATE_VERIFY_FAILED"),
        "pip trusted an unknown CA:\n{}",
        refused.all()
    );
    install(Some(&srv.ca)).expect_ok();
    let names = dir_names(&target);
    assert!(
        names.iter().any(|n| n.starts_with("alpha")) && names.iter().any(|n| n.starts_with("beta")),
        "alpha and its dependency beta installed: {names:?}"
    );
}

#[test]
fn apt_get_updates_and_downloads_over_https_with_the_site_ca() {
    if !have_tools(&current_test(), &crate::apt::TOOLS) {
        return;
    }
    let fx = crate::apt::fixture("[\"app\"]", "[]");
    let env = &fx.env;
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();
    let srv = env.serve_tls();
    let url = srv.url("/apt/deb/");
    // Without the CA apt refuses the server.
    let plain = crate::apt::Apt::new(&fx.work.join("apt-no-ca"), &url, &fx.upstream_key);
    let r = plain.run(&["update"]);
    assert!(
        !r.ok || r.all().contains("\nE:") || r.all().contains("\nW:"),
        "apt-get trusted an unknown CA:\n{}",
        r.all()
    );
    assert!(r.all().contains("certificate"), "{}", r.all());
    // With it (the https method's CaInfo), update and download work.
    let apt = crate::apt::Apt::new(&fx.work.join("apt-ca"), &url, &fx.upstream_key);
    let conf = apt.root.join("apt.conf");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str(&format!(
        "Acquire::https::CaInfo \"{}\";\n",
        srv.ca.display()
    ));
    std::fs::write(&conf, text).unwrap();
    apt.update();
    apt.download("libbase").expect_ok();
    assert_eq!(
        apt.downloaded("libbase_1.0_all.deb"),
        std::fs::read(&fx.debs["libbase"]).unwrap()
    );
}

#[test]
fn dnf_downloads_over_https_with_the_site_ca() {
    let Some((env, work, repo)) = crate::yum::setup(&current_test()) else {
        return;
    };
    crate::yum::first_repo(&work, &repo);
    let up = http_upstream(&repo);
    crate::yum::config(&env, &up.url, "packages = [\"app\"]\n");
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();
    let srv = env.serve_tls();
    let url = srv.url("/yum/el/");
    let unchecked = ["--setopt=gpgcheck=0", "--setopt=ferry.gpgcheck=0"].map(String::from);
    let refused = dnf_download_from(&env, &url, &unchecked, &["app"], "no-ca");
    assert!(!refused.status.success(), "dnf trusted an unknown CA");
    let mut with_ca = unchecked.to_vec();
    with_ca.push(format!("--setopt=ferry.sslcacert={}", srv.ca.display()));
    let out = dnf_download_from(&env, &url, &with_ca, &["app"], "ca");
    assert!(
        out.status.success(),
        "dnf download over https failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = dir_names(&env.root().join("dnf-ca/dl"));
    for p in ["app-1.0", "libfoo-1.0", "toolx-1.0", "webimpl-1.0"] {
        assert!(got.iter().any(|n| n.starts_with(p)), "{p} in {got:?}");
    }
}

#[test]
fn a_store_listener_serves_its_store_at_the_root_and_refuses_the_others() {
    if !have_tools(&current_test(), &["curl"]) {
        return;
    }
    let env = Env::new();
    env.write_src("docs/readme.txt", b"hello\n");
    env.write_src("docs/second.txt", b"two\n");
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();
    let (_p, addrs, _log) = spawn_serve(
        &env.in_state,
        &[
            "--page-size",
            "1",
            "--listen",
            "files=127.0.0.1:0",
            "--listen",
            "files/tools=127.0.0.1:0",
            "--listen",
            "registry=127.0.0.1:0",
        ],
    );
    let (store, source, registry) = (&addrs[0], &addrs[1], &addrs[2]);
    let get = |addr: &str, path: &str| curl_response(&[&format!("http://{addr}{path}")]);
    assert_eq!(get(store, "/tools/docs/readme.txt").0, b"hello\n");
    assert_eq!(get(source, "/docs/readme.txt").0, b"hello\n");
    // Redirects name the listener's own paths.
    let (_, head) = get(source, "/docs");
    assert!(
        head.contains("301") && head.to_ascii_lowercase().contains("location: /docs/\r"),
        "{head}"
    );
    // So do the next-page links of a listing.
    let (body, head) = get(source, "/docs/");
    assert!(
        head.to_ascii_lowercase().contains("link: </docs/?marker="),
        "{head}"
    );
    assert!(
        String::from_utf8_lossy(&body).contains("href=\"?marker="),
        "{}",
        String::from_utf8_lossy(&body)
    );
    // The files listener has no registry; the registry listener no files.
    let (body, head) = get(store, "/v2/");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    assert!(!String::from_utf8_lossy(&body).contains("{}"));
    let (_, head) = get(registry, "/files/tools/docs/readme.txt");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    let (body, head) = get(registry, "/v2/");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, b"{}");
    for a in [store, source, registry] {
        assert_eq!(get(a, "/healthz").0, b"ok");
    }
}

/// DeepOps's client configuration, unchanged: yum `baseurl=http://HOST:8001/<repo>`,
/// `helm --stable-repo-url http://HOST:8002` (`/index.yaml`), pip
/// `--index-url http://HOST:8003/simple/`, files at `http://HOST:8004/<file>`,
/// and the registry at `HOST:5000/v2/`.
#[test]
fn the_deepops_preset_serves_the_paths_deepops_clients_use() {
    if !have_tools(&current_test(), &["curl", "createrepo_c", "tar"])
        || !crate::pypi::have_pip(&current_test())
    {
        return;
    }
    let _ports = alone(); // the preset's ports are fixed
    let env = Env::new();
    let kubectl = random_bytes(50_000, 3);
    env.write_src("kubectl", &kubectl);
    let up = env.root().join("up");
    // A yum repository named as DeepOps names it.
    let cuda = up.join("yum/cuda");
    std::fs::create_dir_all(cuda.join("Packages")).unwrap();
    crate::yum::createrepo(&cuda);
    // A chart repository and a PyPI index.
    let charts = up.join("charts");
    let work = env.root().join("work");
    crate::helm::chart(&work, &charts, "gpu-tool", "1.0.0");
    crate::helm::index(
        &charts,
        &[("gpu-tool", "1.0.0", "pkgs/gpu-tool-1.0.0.tgz".into())],
    );
    let a1 = pypi_tree(&up.join("pypi"));
    let http = http_upstream(&up);
    let u = &http.url;
    std::fs::write(
        &env.config,
        format!(
            "[[source]]\nname = \"misc\"\ntype = \"files\"\npath = \"{}\"\n\n\
             [[source]]\nname = \"cuda\"\ntype = \"yum\"\nbaseurl = \"{u}/yum/cuda/\"\n\n\
             [[source]]\nname = \"charts\"\ntype = \"helm\"\nurl = \"{u}/charts\"\n\n\
             [[source]]\nname = \"pip\"\ntype = \"pypi\"\nindex = \"{u}/pypi/simple/\"\n\
             requirements = [\"alpha\"]\npython = [\"3.11\"]\nplatforms = [\"manylinux_2_17_x86_64\"]\n",
            env.src.display()
        ),
    )
    .unwrap();
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();
    let (_p, addrs, log) = spawn_serve(
        &env.in_state,
        &["--preset", "deepops", "--preset-host", "127.0.0.1"],
    );
    assert_eq!(addrs.len(), 5, "{}", log.lock().unwrap());
    let h = "http://127.0.0.1";
    assert_eq!(curl(&[&format!("{h}:5000/v2/")]), b"{}");
    // The yum address serves yum only: no registry there.
    let (_, head) = curl_response(&[&format!("{h}:8001/v2/")]);
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    let repomd = curl(&[&format!("{h}:8001/cuda/repodata/repomd.xml")]);
    assert_eq!(
        repomd,
        std::fs::read(cuda.join("repodata/repomd.xml")).unwrap()
    );
    // As helm does: the chart's URL in the index, relative to the repository.
    let index: serde_norway::Value =
        serde_norway::from_slice(&curl(&[&format!("{h}:8002/index.yaml")])).unwrap();
    let url = index["entries"]["gpu-tool"][0]["urls"][0].as_str().unwrap();
    assert_eq!(
        curl(&[&format!("{h}:8002/{url}")]),
        std::fs::read(charts.join("pkgs/gpu-tool-1.0.0.tgz")).unwrap()
    );
    assert_eq!(curl(&[&format!("{h}:8004/kubectl")]), kubectl);
    let dest = env.root().join("pip-dl");
    crate::pypi::pip(&[
        "download",
        "--no-cache-dir",
        "--disable-pip-version-check",
        "--index-url",
        &format!("{h}:8003/simple/"),
        "--dest",
        dest.to_str().unwrap(),
        "alpha",
    ])
    .expect_ok();
    assert!(dir_names(&dest).contains(&a1), "{:?}", dir_names(&dest));
}

#[test]
fn over_the_connection_cap_a_tls_client_is_told_503_over_tls() {
    if !have_tools(&current_test(), &["curl"]) {
        return;
    }
    let env = Env::new();
    let srv = env.serve_tls_with(&["--tls", "--max-connections", "1"]);
    assert_eq!(srv.get("/healthz"), b"ok");
    // A silent client holds the only place (until the header timeout, 20 s).
    // On a loaded machine the place may still be the first request's when
    // the silent client comes (refused, then), or the silent client not
    // yet accepted when curl comes: curl then gets its answer, and the
    // silent client tries again.
    let started = std::time::Instant::now();
    let mut _held;
    let (body, head) = loop {
        _held = std::net::TcpStream::connect(&srv.addr).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let (body, head) =
            curl_response(&["--cacert", srv.ca.to_str().unwrap(), &srv.url("/healthz")]);
        if !head.starts_with("HTTP/1.1 200") || started.elapsed() > Duration::from_secs(15) {
            break (body, head);
        }
    };
    assert!(
        head.starts_with("HTTP/1.1 503"),
        "{head}\nserve said:\n{}",
        srv.log.lock().unwrap()
    );
    assert!(
        String::from_utf8_lossy(&body).contains("too many open connections"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    srv.wait_log("refused 1 connection(s)");
}
