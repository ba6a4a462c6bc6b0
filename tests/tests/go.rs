//! Go modules end to end: real modules (`example.com/a` requiring
//! `example.com/b` v1.0.0 and `example.com/Upper/c`, which requires `b`
//! v1.1.0) made into a GOPROXY tree by golang.org/x/mod/zip (Debian's
//! golang-golang-x-mod-dev, the code the go command uses), served over HTTP;
//! a real checksum database (golang.org/x/mod/sumdb's server and test
//! storage, ed25519-signed notes) built here; `ferry-out export`,
//! `ferry-in import`, then the real `go mod download` and `go build`
//! against `ferry-in serve --tls` with only the `client-config` settings.

use ferry_e2e::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The helper: `pack PROXYDIR MODULE VERSION SRCDIR` lays a version out in
/// a GOPROXY tree; `sumdb PROXYDIR` serves a checksum database of that tree
/// and prints `URL KEY`.
const HELPER_GO: &str = include_str!("../go-helper/main.go");

/// The helper, built once per test run (GOPATH mode over Debian's x/mod)
/// into `target/tmp/go-helper/` (kept, with its Go build cache, and built
/// again only when its source changes).
fn helper() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-helper");
        let bin = dir.join("helper");
        if bin.is_file()
            && std::fs::read_to_string(dir.join("main.go")).ok().as_deref() == Some(HELPER_GO)
        {
            return bin;
        }
        let work = dir.join(format!("build-{}", std::process::id()));
        std::fs::create_dir_all(&work).unwrap();
        std::fs::write(work.join("main.go"), HELPER_GO).unwrap();
        sh(Command::new("go")
            .args(["build", "-o", "helper", "main.go"])
            .current_dir(&work)
            .env("GO111MODULE", "off")
            .env("GOPATH", "/usr/share/gocode")
            .env("GOCACHE", dir.join("cache"))
            .env("GOFLAGS", ""));
        // Renames are atomic: a concurrent run sees the old or the new pair.
        std::fs::rename(work.join("helper"), &bin).unwrap();
        std::fs::rename(work.join("main.go"), dir.join("main.go")).unwrap();
        let _ = std::fs::remove_dir_all(&work);
        bin
    })
}

/// Whether go and Debian's x/mod are here; skips the test otherwise.
fn have_go(test: &str) -> bool {
    if !have_tools(test, &["go", "python3", "curl"]) {
        return false;
    }
    if !Path::new("/usr/share/gocode/src/golang.org/x/mod/zip").is_dir() {
        skip(test, "golang-golang-x-mod-dev is not installed");
        return false;
    }
    true
}

/// A module's source: `go.mod` with `requires`, and one package file.
fn module(
    work: &Path,
    path: &str,
    version: &str,
    requires: &[(&str, &str)],
    body: &str,
) -> PathBuf {
    let dir = work
        .join("src")
        .join(format!("{}@{version}", path.replace('/', "_")));
    std::fs::create_dir_all(&dir).unwrap();
    let mut m = format!("module {path}\n\ngo 1.19\n");
    for (p, v) in requires {
        m.push_str(&format!("\nrequire {p} {v}\n"));
    }
    std::fs::write(dir.join("go.mod"), m).unwrap();
    let pkg = path.rsplit('/').next().unwrap().to_lowercase();
    std::fs::write(
        dir.join(format!("{pkg}.go")),
        format!("package {pkg}\n\n{body}\n"),
    )
    .unwrap();
    dir
}

/// Packs a version into the proxy tree `up`.
fn publish(
    up: &Path,
    work: &Path,
    path: &str,
    version: &str,
    requires: &[(&str, &str)],
    body: &str,
) {
    let src = module(work, path, version, requires, body);
    sh(Command::new(helper())
        .arg("pack")
        .arg(up)
        .args([path, version])
        .arg(&src));
}

/// The first set of modules: b v1.0.0 and v1.1.0, c (upper case in its
/// path) requiring b v1.1.0, a requiring b v1.0.0 and c.
fn publish_v1(up: &Path, work: &Path) {
    let b = |v: &str| format!("func B() string {{ return \"b {v}\" }}");
    publish(up, work, "example.com/b", "v1.0.0", &[], &b("v1.0.0"));
    publish(up, work, "example.com/b", "v1.1.0", &[], &b("v1.1.0"));
    publish(
        up,
        work,
        "example.com/Upper/c",
        "v1.0.0",
        &[("example.com/b", "v1.1.0")],
        "import \"example.com/b\"\n\nfunc C() string { return \"c \" + b.B() }",
    );
    publish(
        up,
        work,
        "example.com/a",
        "v1.0.0",
        &[("example.com/b", "v1.0.0"), ("example.com/Upper/c", "v1.0.0")],
        "import (\n\t\"example.com/Upper/c\"\n\t\"example.com/b\"\n)\n\nfunc A() string { return \"a \" + b.B() + \" \" + c.C() }",
    );
}

/// A real checksum database over `up`: its URL and verifier key.
struct Sumdb {
    _process: KillOnDrop,
    url: String,
    key: String,
}

fn sumdb(up: &Path) -> Sumdb {
    use std::io::BufRead;
    let mut child = Command::new(helper())
        .arg("sumdb")
        .arg(up)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let (url, key) = line.trim().split_once(' ').expect("URL KEY");
    Sumdb {
        _process: KillOnDrop(child),
        url: url.to_string(),
        key: key.to_string(),
    }
}

/// Every file under `dir`, by its `/`-separated path below it.
fn files_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_str().unwrap().to_string();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// The go command in `dir` with a fresh module cache and `env` (KEY=VALUE
/// lines) as its only proxy settings.
fn go(dir: &Path, home: &Path, env: &str, args: &[&str]) -> Run {
    let mut cmd = Command::new("go");
    cmd.args(args)
        .current_dir(dir)
        .env("HOME", home)
        .env("GOPATH", home.join("gopath"))
        .env("GOCACHE", home.join("gocache"))
        .env("GOENV", "off")
        .env("GO111MODULE", "on")
        .env("GOTOOLCHAIN", "local")
        .env_remove("GOFLAGS")
        .env_remove("GONOSUMDB")
        .env_remove("GOPRIVATE")
        .env_remove("GONOPROXY")
        .env_remove("SSL_CERT_FILE");
    for l in env.lines().filter(|l| !l.trim().is_empty()) {
        let (k, v) = l.split_once('=').unwrap();
        cmd.env(k, v);
    }
    let o = cmd.output().expect("go runs");
    Run {
        ok: o.status.success(),
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// A program using example.com/a at `version`.
fn make_app(root: &Path, version: &str) -> PathBuf {
    let app = root.join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("go.mod"),
        format!("module example.com/app\n\ngo 1.19\n\nrequire example.com/a {version}\n"),
    )
    .unwrap();
    std::fs::write(
        app.join("main.go"),
        "package main\n\nimport (\n\t\"fmt\"\n\n\t\"example.com/a\"\n)\n\nfunc main() { fmt.Println(a.A()) }\n",
    )
    .unwrap();
    let _ = std::fs::remove_file(app.join("go.sum"));
    app
}

/// GETs of zips in an http.server request log.
fn zip_gets(log: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split("\"GET ").nth(1)?.split(' ').next())
        .filter(|p| p.ends_with(".zip"))
        .map(String::from)
        .collect();
    v.sort();
    v
}

fn config(env: &Env, body: &str) {
    std::fs::write(
        &env.config,
        format!("[[source]]\nname = \"gomods\"\ntype = \"go\"\n{body}"),
    )
    .unwrap();
}

#[test]
fn go_mod_download_and_build_against_ferry_in_then_a_delta() {
    let test = "go::go_mod_download_and_build_against_ferry_in_then_a_delta";
    if !have_go(test) {
        return;
    }
    let env = Env::new();
    let (work, up_dir) = (env.root().join("work"), env.root().join("upstream"));
    std::fs::create_dir_all(&up_dir).unwrap();
    publish_v1(&up_dir, &work);
    let log = env.root().join("upstream.log");
    let up = http_upstream_logged(&up_dir, &log);
    let db = sumdb(&up_dir);
    let cfg = |q: &str| {
        format!(
            "proxy = \"{}\"\nmodules = {{ \"example.com/a\" = \"{q}\" }}\nsumdb = \"{}\"\nsumdb_url = \"{}\"\n",
            up.url, db.key, db.url
        )
    };
    config(&env, &cfg("latest"));
    env.export("m1").expect_ok();
    assert_eq!(
        zip_gets(&log),
        [
            "/example.com/!upper/c/@v/v1.0.0.zip",
            "/example.com/a/@v/v1.0.0.zip",
            "/example.com/b/@v/v1.0.0.zip",
            "/example.com/b/@v/v1.1.0.zip",
        ]
    );
    env.import("m1").expect_ok();
    let store = env.export_tree().join("go/gomods");
    assert_eq!(
        std::fs::read_to_string(store.join("example.com/b/@v/list")).unwrap(),
        "v1.0.0\nv1.1.0\n"
    );
    assert!(store.join("example.com/!upper/c/@v/v1.0.0.zip").is_file());

    // The go command, with only the client-config settings, over TLS.
    let srv = env.serve_tls();
    let url = format!("https://{}", srv.addr);
    let ca = srv.ca.to_str().unwrap();
    let cc = client_config(&env, &url, "go", &["--ca-path", ca]);
    let goenv = std::fs::read_to_string(cc.join("go/go.env")).unwrap();
    assert!(
        goenv.contains(&format!("GOPROXY={url}/go/gomods/\n")),
        "{goenv}"
    );
    assert!(goenv.contains("SSL_CERT_FILE="), "{goenv}");
    // The checksum database stays on, proxied by ferry-in.
    assert!(goenv.contains(&format!("GOSUMDB={}\n", db.key)), "{goenv}");
    assert!(!goenv.contains("GONOSUMDB"), "{goenv}");
    let home = env.root().join("home");
    let app = make_app(env.root(), "v1.0.0");
    let modmod = format!("{goenv}GOFLAGS=-mod=mod\n");
    go(&app, &home, &modmod, &["mod", "download", "-x"]).expect_ok();
    go(&app, &home, &modmod, &["build", "-o", "app", "."]).expect_ok();
    go(&app, &home, &goenv, &["mod", "tidy"]).expect_ok();
    // The go command verified through ferry-in's database proxy: it keeps
    // the tree head it saw, and every lookup.
    let seen = home.join("gopath/pkg/sumdb/db.test/latest");
    let head1 = std::fs::read_to_string(&seen).expect("the go command kept a tree head");
    let lookups = home.join("gopath/pkg/mod/cache/download/sumdb/db.test/lookup");
    assert!(lookups.join("example.com/b@v1.1.0").is_file());
    let carried_head = std::fs::read_to_string(store.join("sumdb/db.test/latest")).unwrap();
    assert_eq!(head1, carried_head);
    let out = Command::new(app.join("app")).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "a b v1.1.0 c b v1.1.0"
    );
    // What the go command wrote is what the checksum database says.
    let gosum = std::fs::read_to_string(app.join("go.sum")).unwrap();
    let carried = std::fs::read_to_string(store.join("checksums/example.com/b@v1.1.0")).unwrap();
    for l in carried.lines() {
        assert!(gosum.contains(l), "{l} not in {gosum}");
    }
    let (body, head) = curl_response(&[
        "--cacert",
        srv.ca.to_str().unwrap(),
        &format!("{url}/go/gomods/example.com/a/@latest"),
    ]);
    assert!(head.contains("200"), "{head}");
    assert!(String::from_utf8_lossy(&body).contains("\"v1.0.0\""));

    // Upstream publishes a v1.1.0 requiring a new b v1.2.0: only their zips
    // are downloaded and shipped.
    let b12 = "func B() string { return \"b v1.2.0\" }";
    publish(&up_dir, &work, "example.com/b", "v1.2.0", &[], b12);
    publish(
        &up_dir,
        &work,
        "example.com/a",
        "v1.1.0",
        &[("example.com/b", "v1.2.0"), ("example.com/Upper/c", "v1.0.0")],
        "import (\n\t\"example.com/Upper/c\"\n\t\"example.com/b\"\n)\n\nfunc A() string { return \"a2 \" + b.B() + \" \" + c.C() }",
    );
    let before = zip_gets(&log);
    config(
        &env,
        &format!(
            "{}\ngosum = [\"{}\"]\n",
            cfg("latest"),
            app.join("go.sum").display()
        ),
    );
    env.export("m2").expect_ok();
    let mut new: Vec<String> = zip_gets(&log)
        .into_iter()
        .filter(|g| !before.contains(g))
        .collect();
    new.sort();
    assert_eq!(
        new,
        [
            "/example.com/a/@v/v1.1.0.zip",
            "/example.com/b/@v/v1.2.0.zip"
        ]
    );
    let shipped = dir_bytes(&env.only_bundle("m2"));
    assert!(
        shipped < 16 * 1024,
        "the delta ships two small zips and metadata: {shipped} bytes"
    );
    env.import("m2").expect_ok();
    // A generation is an index over objects: written out again to be read.
    let store = env.export_tree().join("go/gomods");
    // The same client, with the head of the first export in its cache: the
    // new head is proved consistent with it from the carried tiles.
    let app2 = make_app(&env.root().join("v2"), "v1.1.0");
    go(&app2, &home, &modmod, &["mod", "download"]).expect_ok();
    go(&app2, &home, &modmod, &["build", "-o", "app", "."]).expect_ok();
    let head2 = std::fs::read_to_string(&seen).unwrap();
    assert_ne!(head1, head2, "the client moved to the second export's head");
    assert_eq!(
        head2,
        std::fs::read_to_string(store.join("sumdb/db.test/latest")).unwrap()
    );
    assert!(lookups.join("example.com/b@v1.2.0").is_file());
    let out = Command::new(app2.join("app")).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "a2 b v1.2.0 c b v1.2.0"
    );
}

#[test]
fn go_sum_driven_export_and_bad_data_refused_by_name() {
    let test = "go::go_sum_driven_export_and_bad_data_refused_by_name";
    if !have_go(test) {
        return;
    }
    let env = Env::new();
    let (work, up_dir) = (env.root().join("work"), env.root().join("upstream"));
    std::fs::create_dir_all(&up_dir).unwrap();
    publish_v1(&up_dir, &work);
    // The real go command writes the go.sum, from a file:// GOPROXY.
    let home = env.root().join("home");
    let app = make_app(env.root(), "v1.0.0");
    let file_proxy = format!("GOPROXY=file://{}\nGOSUMDB=off\n", up_dir.display());
    go(&app, &home, &file_proxy, &["mod", "tidy"]).expect_ok();
    let gosum = app.join("go.sum");
    let up = http_upstream(&up_dir);
    let cfg = |extra: &str| format!("proxy = \"{}\"\nsumdb = \"off\"\n{extra}", up.url);
    config(&env, &cfg(&format!("gosum = [\"{}\"]\n", gosum.display())));
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();
    let store = env.export_tree().join("go/gomods");
    // Exactly the go.sum's versions: a zip for a version line, a go.mod
    // alone for a `/go.mod` line only.
    let text = std::fs::read_to_string(&gosum).unwrap();
    for l in text.lines() {
        let (m, v) = l.split_once(' ').unwrap();
        let v = v.split(' ').next().unwrap();
        let (v, ext) = match v.strip_suffix("/go.mod") {
            Some(v) => (v, "mod"),
            None => (v, "zip"),
        };
        let f = store.join(format!("{}/@v/{v}.{ext}", m.replace("Upper", "!upper")));
        assert!(f.is_file(), "{} missing for {l}", f.display());
    }
    assert_eq!(
        text.lines().filter(|l| !l.contains("/go.mod")).count(),
        3,
        "{text}"
    );
    assert!(
        !store.join("example.com/b/@v/v1.0.0.zip").exists(),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(store.join("example.com/b/@v/list")).unwrap(),
        "v1.1.0\n"
    );
    let srv = env.serve();
    // No database carried: client-config lists exactly the carried modules
    // in GONOSUMDB and leaves GOSUMDB at its default for anything else.
    let url = format!("http://{}", srv.addr);
    let cc = client_config(&env, &url, "go", &[]);
    let goenv = std::fs::read_to_string(cc.join("go/go.env")).unwrap();
    assert_eq!(
        goenv,
        format!(
            "GOPROXY={url}/go/gomods/\n\
             GONOSUMDB=example.com/Upper/c,example.com/a,example.com/b\n"
        )
    );
    let home2 = env.root().join("home2");
    go(&app, &home2, &goenv, &["mod", "download"]).expect_ok();
    go(&app, &home2, &goenv, &["build", "-o", "app", "."]).expect_ok();

    // A tampered zip: its h1 is not the go.sum's.
    let zip = up_dir.join("example.com/b/@v/v1.1.0.zip");
    let good = std::fs::read(&zip).unwrap();
    let src = module(
        &work.join("evil"),
        "example.com/b",
        "v1.1.0",
        &[],
        "func B() string { return \"evil\" }",
    );
    let evil = env.root().join("evil-proxy");
    sh(Command::new(helper())
        .arg("pack")
        .arg(&evil)
        .args(["example.com/b", "v1.1.0"])
        .arg(&src));
    std::fs::copy(evil.join("example.com/b/@v/v1.1.0.zip"), &zip).unwrap();
    let fresh = Env::new();
    let fresh_cfg = |extra: &str| {
        std::fs::write(
            &fresh.config,
            format!(
                "[[source]]\nname = \"gomods\"\ntype = \"go\"\n{}",
                cfg(extra)
            ),
        )
        .unwrap();
        fresh.export("media")
    };
    fresh_cfg(&format!("gosum = [\"{}\"]\n", gosum.display())).expect_fail(&[
        "source \"gomods\"",
        "module example.com/b v1.1.0: zip checksum mismatch: go.sum",
        "/example.com/b/@v/v1.1.0.zip has h1:",
        "tampered",
    ]);
    std::fs::write(&zip, &good).unwrap();
    // A go.mod whose line in go.sum is wrong.

    let line = text
        .lines()
        .find(|l| l.starts_with("example.com/a v1.0.0/go.mod"))
        .unwrap();
    let bad_sum = env.root().join("bad.sum");
    std::fs::write(
        &bad_sum,
        format!(
            "{}h1:{}=\n",
            line.split("h1:").next().unwrap(),
            "A".repeat(43)
        ),
    )
    .unwrap();
    fresh_cfg(&format!("gosum = [\"{}\"]\n", bad_sum.display())).expect_fail(&[
        "module example.com/a v1.0.0: go.mod checksum mismatch: go.sum",
        "go.sum",
    ]);
    fresh_cfg("modules = { \"example.com/a\" = \"v9\" }\ngosum = []\n")
        .expect_fail(&["source \"gomods\" (go)", "needs `gosum` files"]);
    std::fs::write(&bad_sum, "example.com/a v1.0.0 h1:short\n").unwrap();
    fresh_cfg(&format!("gosum = [\"{}\"]\n", bad_sum.display()))
        .expect_fail(&["go.sum line 1", "is not an h1: hash"]);
    assert!(dir_names(&fresh.root().join("media")).is_empty());

    // Inside: a zip whose h1 is not its checksums line, a version file no
    // line vouches for, a path outside the layout.
    use ferry_protocol::catalog::SourceKind::Go;
    let mod_text = b"module example.com/x\n";
    type Files<'a> = &'a [(&'a str, &'a [u8])];
    let info = br#"{"Version":"v1.0.0"}"#;
    let zip_bytes = std::fs::read(up_dir.join("example.com/b/@v/v1.0.0.zip")).unwrap();
    let mod_b = std::fs::read(up_dir.join("example.com/b/@v/v1.0.0.mod")).unwrap();
    let real_sums: String = text
        .lines()
        .filter(|l| l.starts_with("example.com/b v1.0.0/"))
        .map(|l| format!("{l}\n"))
        .collect();
    let wrong_zip = format!("example.com/b v1.0.0 h1:{}=\n{real_sums}", "A".repeat(43));
    let cases: [(Files<'_>, &str); 3] = [
        (
            &[
                ("example.com/b/@v/v1.0.0.info", info),
                ("example.com/b/@v/v1.0.0.mod", &mod_b),
                ("example.com/b/@v/v1.0.0.zip", &zip_bytes),
                ("checksums/example.com/b@v1.0.0", wrong_zip.as_bytes()),
            ],
            "h1 mismatch",
        ),
        (
            &[("example.com/x/@v/v1.0.0.mod", mod_text)],
            "no checksums line of its version vouches for it",
        ),
        (
            &[("example.com/x/@v/v1.0.0.tgz", b"x")],
            "not a path of a go source",
        ),
    ];
    for (objects, needle) in cases {
        let env = Env::new();
        let objs: Vec<CraftedObject<'_>> = objects
            .iter()
            .map(|(p, d)| ("gomods", Go, *p, *d))
            .collect();
        craft_bundle(&env, "bad", &objs);
        env.import("bad").expect_fail(&[needle]);
        assert_eq!(env.applied_sequence(), 0);
    }
}

#[test]
fn a_checksum_database_that_disagrees_is_refused() {
    let test = "go::a_checksum_database_that_disagrees_is_refused";
    if !have_go(test) {
        return;
    }
    let env = Env::new();
    let (work, up_dir) = (env.root().join("work"), env.root().join("upstream"));
    std::fs::create_dir_all(&up_dir).unwrap();
    publish(
        &up_dir,
        &work,
        "example.com/b",
        "v1.0.0",
        &[],
        "func B() string { return \"b\" }",
    );
    let up = http_upstream(&up_dir);
    let db = sumdb(&up_dir);
    let export = |key: &str| {
        config(
            &env,
            &format!(
                "proxy = \"{}\"\nmodules = {{ \"example.com/b\" = \"v1\" }}\nsumdb = \"{key}\"\nsumdb_url = \"{}\"\n",
                up.url, db.url
            ),
        );
        env.export("media")
    };
    // A require the proxy does not have: a warning, or an error when asked;
    // a query nothing matches.
    publish(
        &up_dir,
        &work,
        "example.com/r",
        "v1.0.0",
        &[("example.com/gone", "v1.0.0")],
        "func R() {}",
    );
    let other = |modules: &str, extra: &str, media: &str| {
        config(
            &env,
            &format!(
                "proxy = \"{}\"\nmodules = {{ {modules} }}\nsumdb = \"{}\"\nsumdb_url = \"{}\"\n{extra}",
                up.url, db.key, db.url
            ),
        );
        env.export(media)
    };
    let run = other("\"example.com/r\" = \"latest\"", "", "warned").expect_ok();
    assert!(
        run.stderr.contains(
            "module example.com/gone v1.0.0 (required by example.com/r@v1.0.0) is not on the proxy"
        ),
        "{}",
        run.stderr
    );
    other(
        "\"example.com/r\" = \"latest\"",
        "unsatisfiable = \"error\"\n",
        "media",
    )
    .expect_fail(&[
        "source \"gomods\"",
        "module example.com/gone v1.0.0 (required by example.com/r@v1.0.0) is not on the proxy",
    ]);
    other("\"example.com/b\" = \">=v2\"", "", "media")
        .expect_fail(&["module example.com/b: no version matches \">=v2\""]);
    other("\"example.com/nothere\" = \"latest\"", "", "media")
        .expect_fail(&["module example.com/nothere is not on the proxy"]);
    // The database records the genuine zip; upstream then serves another.
    let curl = curl_response(&[&format!("{}lookup/example.com/b@v1.0.0", db.url)]);
    assert!(curl.1.contains("200"), "{}", curl.1);
    let src = module(
        &work.join("evil"),
        "example.com/b",
        "v1.0.0",
        &[],
        "func B() string { return \"evil\" }",
    );
    sh(Command::new(helper())
        .arg("pack")
        .arg(&up_dir)
        .args(["example.com/b", "v1.0.0"])
        .arg(&src));
    export(&db.key).expect_fail(&[
        "source \"gomods\"",
        "module example.com/b v1.0.0: zip checksum mismatch",
        "checksum database db.test says h1:",
    ]);
    // Another database's key does not verify its notes.
    let other = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8";
    export(other).expect_fail(&[
        "module example.com/b v1.0.0: checksum database",
        "no valid signature by sum.golang.org",
    ]);
    assert!(dir_names(&env.root().join("media")).is_empty());
}

#[test]
fn a_tampered_tile_a_foreign_note_or_a_missing_record_is_refused_at_import() {
    let test = "go::a_tampered_tile_a_foreign_note_or_a_missing_record_is_refused_at_import";
    if !have_go(test) {
        return;
    }
    let env = Env::new();
    let (work, up_dir) = (env.root().join("work"), env.root().join("upstream"));
    std::fs::create_dir_all(&up_dir).unwrap();
    publish_v1(&up_dir, &work);
    let up = http_upstream(&up_dir);
    let db = sumdb(&up_dir);
    config(
        &env,
        &format!(
            "proxy = \"{}\"\nmodules = {{ \"example.com/a\" = \"latest\" }}\nsumdb = \"{}\"\nsumdb_url = \"{}\"\n",
            up.url, db.key, db.url
        ),
    );
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();
    let good = files_under(&env.export_tree().join("go/gomods"));
    let paths: Vec<&str> = good.iter().map(|(p, _)| p.as_str()).collect();
    for want in [
        "sumdb/db.test/key",
        "sumdb/db.test/latest",
        "sumdb/db.test/records/example.com/!upper/c@v1.0.0",
        "sumdb/db.test/tile/8/0/000.p/4",
    ] {
        assert!(paths.contains(&want), "{want} not in {paths:?}");
    }
    // The whole good set imports; each bad variant is refused, nothing applied.
    let tampered_tile = |(p, mut d): (String, Vec<u8>)| {
        if p.contains("/tile/") {
            d[0] ^= 1;
        }
        Some((p, d))
    };
    let latest = good
        .iter()
        .find(|(p, _)| p == "sumdb/db.test/latest")
        .unwrap();
    let text = String::from_utf8(latest.1.clone()).unwrap();
    let text_file = env.root().join("note.txt");
    std::fs::write(
        &text_file,
        text.split("\n\n").next().unwrap().to_string() + "\n",
    )
    .unwrap();
    let out = Command::new(helper())
        .arg("sign")
        .arg("db.test")
        .arg(&text_file)
        .output()
        .unwrap();
    assert!(out.status.success());
    let foreign = out.stdout;
    let foreign_note = |(p, d): (String, Vec<u8>)| {
        Some((
            p.clone(),
            if p == "sumdb/db.test/latest" {
                foreign.clone()
            } else {
                d
            },
        ))
    };
    let no_record =
        |(p, d): (String, Vec<u8>)| (!p.contains("records/example.com/b@")).then_some((p, d));
    type Edit<'a> = &'a dyn Fn((String, Vec<u8>)) -> Option<(String, Vec<u8>)>;
    let cases: [(Edit<'_>, &[&str]); 4] = [
        (&|f| Some(f), &[]),
        (
            &tampered_tile,
            &[
                "checksum database db.test: the tiles of sumdb/db.test/latest",
                "the tiles do not make the signed root hash",
            ],
        ),
        (
            &foreign_note,
            &[
                "checksum database db.test",
                "sumdb/db.test/latest",
                "no valid signature by db.test",
            ],
        ),
        (
            &no_record,
            &[
                "checksum database db.test: module example.com/b v1.0.0",
                "is not held",
            ],
        ),
    ];
    use ferry_protocol::catalog::SourceKind::Go;
    for (edit, needles) in cases {
        let files: Vec<(String, Vec<u8>)> = good.iter().cloned().filter_map(edit).collect();
        let fresh = Env::new();
        let objs: Vec<CraftedObject<'_>> = files
            .iter()
            .map(|(p, d)| ("gomods", Go, p.as_str(), d.as_slice()))
            .collect();
        craft_bundle(&fresh, "media", &objs);
        if needles.is_empty() {
            fresh.import("media").expect_ok();
            assert_eq!(fresh.applied_sequence(), 1);
        } else {
            fresh.import("media").expect_fail(needles);
            assert_eq!(fresh.applied_sequence(), 0);
        }
    }
}
