//! PyPI mirroring end to end: real wheels built with `pip wheel` from tiny
//! setuptools projects (one retagged as a platform wheel for three tags), a
//! static PEP 503 upstream served by `python3 -m http.server` and a PEP 691
//! JSON upstream (a small Python handler with content negotiation and PEP 658
//! `.metadata` files); `ferry-out export`, `ferry-in import`, then the real
//! `pip download` / `pip install --target` against `ferry-in serve`.
//!
//! Fixture projects: `alpha` 1.0, 2.0, 3.0 (300 kB of random data each;
//! 2.0 requires `beta>=1.0`, `native>=1; platform_system == 'Linux'`,
//! `gamma; python_version < '3'` and has an extra `fast = [delta]`), `beta`
//! 1.0 and 1.1 (1.1 yanked upstream), `native` 1.0 as
//! `cp311-cp311-manylinux_2_17_x86_64`, `cp311-cp311-win_amd64` and
//! `cp312-cp312-manylinux_2_17_x86_64`, `gamma` 1.0 and `delta` 1.0.
//!
//! Set `FERRY_TEST_PYPI=1` to also mirror a few real packages from the index
//! pip is configured with (`PIP_INDEX_URL`, else `pip config`, else pypi.org).

use ferry_e2e::*;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Builds the fixture wheels, writes upstream indexes, and serves a PEP 691
/// upstream.
const FIXTURE_PY: &str = r#"
import base64, hashlib, html, http.server, json, os, random, shutil, subprocess, sys, zipfile

def project(root, name, version, deps=(), extras=None, payload=0, seed=0):
    d = os.path.join(root, f"{name}-{version}")
    pkg = os.path.join(d, name)
    os.makedirs(pkg)
    with open(os.path.join(pkg, "__init__.py"), "w") as f:
        f.write(f"VERSION = {version!r}\n")
    if payload:
        with open(os.path.join(pkg, "data.bin"), "wb") as f:
            f.write(random.Random(seed).randbytes(payload))
    toml = ('[build-system]\nrequires = ["setuptools>=61"]\n'
            'build-backend = "setuptools.build_meta"\n[project]\n'
            f'name = "{name}"\nversion = "{version}"\nrequires-python = ">=3.8"\n'
            f'dependencies = {json.dumps(list(deps))}\n')
    if extras:
        toml += "[project.optional-dependencies]\n"
        toml += "".join(f"{k} = {json.dumps(v)}\n" for k, v in extras.items())
    toml += (f'[tool.setuptools]\npackages = ["{name}"]\n'
             f'[tool.setuptools.package-data]\n{name} = ["*.bin"]\n')
    with open(os.path.join(d, "pyproject.toml"), "w") as f:
        f.write(toml)
    return d

def retag(src, tag, outdir):
    name, ver = os.path.basename(src).split("-")[:2]
    dst = os.path.join(outdir, f"{name}-{ver}-{tag}.whl")
    entries, record = {}, None
    with zipfile.ZipFile(src) as zin:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith(".dist-info/RECORD"):
                record = info.filename
                continue
            if info.filename.endswith(".dist-info/WHEEL"):
                lines = [l for l in data.decode().splitlines()
                         if not l.startswith(("Tag:", "Root-Is-Purelib:"))]
                lines += ["Root-Is-Purelib: false", f"Tag: {tag}"]
                data = ("\n".join(lines) + "\n").encode()
            entries[info.filename] = data
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        rec = []
        for fn, data in entries.items():
            zout.writestr(fn, data)
            h = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            rec.append(f"{fn},sha256={h},{len(data)}")
        rec.append(f"{record},,")
        zout.writestr(record, "\n".join(rec) + "\n")

def build(out):
    src = os.path.join(out, "src")
    built = os.path.join(out, "built")
    os.makedirs(src)
    dirs = [
        project(src, "alpha", "1.0", ["beta>=1.0"], payload=300000, seed=1),
        project(src, "alpha", "2.0",
                ["beta>=1.0", "native>=1; platform_system == 'Linux'", "gamma; python_version < '3'"],
                {"fast": ["delta"]}, payload=300000, seed=2),
        project(src, "alpha", "3.0", ["beta>=1.0"], payload=300000, seed=3),
        project(src, "beta", "1.0"),
        project(src, "beta", "1.1"),
        project(src, "native", "1.0"),
        project(src, "gamma", "1.0"),
        project(src, "delta", "1.0"),
    ]
    # One pip run per set of distinct names (pip refuses two versions of one project).
    groups = [[d for i, d in enumerate(dirs) if i in g] for g in ([0, 3, 5, 6, 7], [1, 4], [2])]
    for group in groups:
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                        "-w", built] + group,
                       check=True)
    pure = os.path.join(built, "native-1.0-py3-none-any.whl")
    for tag in ["cp311-cp311-manylinux_2_17_x86_64", "cp311-cp311-win_amd64",
                "cp312-cp312-manylinux_2_17_x86_64"]:
        retag(pure, tag, built)
    os.remove(pure)

def metadata(path):
    with zipfile.ZipFile(path) as z:
        name = [n for n in z.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1][0]
        return z.read(name)

def sha(data):
    return hashlib.sha256(data).hexdigest()

def index(root, yanked):
    pkgs = os.path.join(root, "packages")
    projects = {}
    for fn in sorted(os.listdir(pkgs)):
        if fn.endswith(".whl"):
            projects.setdefault(fn.split("-")[0].lower().replace("_", "-"), []).append(fn)
    shutil.rmtree(os.path.join(root, "simple"), ignore_errors=True)
    os.makedirs(os.path.join(root, "simple"))
    with open(os.path.join(root, "simple", "index.html"), "w") as f:
        f.write("<!DOCTYPE html><html><body>\n")
        for p in projects:
            f.write(f'<a href="{p}/">{p}</a>\n')
        f.write("</body></html>\n")
    for p, files in projects.items():
        d = os.path.join(root, "simple", p)
        os.makedirs(d)
        links, jfiles = [], []
        for fn in files:
            path = os.path.join(pkgs, fn)
            with open(path, "rb") as f:
                data = f.read()
            meta = metadata(path)
            with open(path + ".metadata", "wb") as f:
                f.write(meta)
            rp = [l.split(":", 1)[1].strip() for l in meta.decode().splitlines()
                  if l.startswith("Requires-Python:")]
            rp = rp[0] if rp else None
            attrs = f' data-requires-python="{html.escape(rp)}"' if rp else ""
            y = yanked.get(fn)
            if y is not None:
                attrs += f' data-yanked="{html.escape(y)}"'
            links.append(f'<a href="../../packages/{fn}#sha256={sha(data)}"{attrs}>{fn}</a><br/>')
            jf = {"filename": fn, "url": f"../../packages/{fn}", "hashes": {"sha256": sha(data)},
                  "requires-python": rp, "yanked": y if y is not None else False,
                  "core-metadata": {"sha256": sha(meta)}}
            jfiles.append(jf)
        with open(os.path.join(d, "index.html"), "w") as f:
            f.write("<!DOCTYPE html><html><body>\n" + "\n".join(links) + "\n</body></html>\n")
        with open(os.path.join(d, "index.json"), "w") as f:
            json.dump({"meta": {"api-version": "1.1"}, "name": p, "files": jfiles}, f)

class Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass
    def do_GET(self):
        with open(LOG, "a") as f:
            f.write(self.path + "\n")
        if self.path.endswith("/") and "vnd.pypi.simple.v1+json" in self.headers.get("Accept", ""):
            p = self.translate_path(self.path) + "index.json"
            if os.path.exists(p):
                with open(p, "rb") as f:
                    body = f.read()
                self.send_response(200)
                self.send_header("Content-Type", "application/vnd.pypi.simple.v1+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
        return super().do_GET()

if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "build":
        build(sys.argv[2])
    elif cmd == "index":
        index(sys.argv[2], json.loads(sys.argv[3]))
    elif cmd == "serve":
        LOG = sys.argv[3]
        os.chdir(sys.argv[2])
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        print("PORT", srv.server_address[1], flush=True)
        srv.serve_forever()
"#;

pub(crate) fn have_pip(test: &str) -> bool {
    if !have_tools(test, &["python3"]) {
        return false;
    }
    let ok = Command::new("python3")
        .args(["-m", "pip", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        skip(
            test,
            "python3 -m pip is not available (scripts/test.sh installs python3-pip)",
        );
    } else if wheel_python().is_none() {
        skip(
            test,
            "no python3 with setuptools, wheel and pip to build the fixture wheels \
             (scripts/test.sh installs python3-setuptools python3-wheel python3-pip)",
        );
        return false;
    }
    ok
}

/// Writes the fixture script into `dir`.
fn script(dir: &Path) -> PathBuf {
    let p = dir.join("fixture.py");
    std::fs::write(&p, FIXTURE_PY).unwrap();
    p
}

/// The built wheels, once per test binary run, under cargo's temporary
/// directory for tests (target/tmp: replaced by the next run, never left
/// behind in the system's temporary directory).
fn wheels() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pypi-wheels");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let st = Command::new(wheel_python().expect("checked by have_pip"))
            .arg(script(&dir))
            .arg("build")
            .arg(&dir)
            .status()
            .expect("run the fixture builder");
        assert!(st.success(), "building the fixture wheels failed");
        dir.join("built")
    })
}

/// The file name of the built wheel starting with `prefix`.
pub(crate) fn wheel(prefix: &str) -> String {
    let mut names: Vec<String> = dir_names(wheels())
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect();
    assert_eq!(
        names.len(),
        1,
        "one wheel starting with {prefix}: {names:?}"
    );
    names.pop().unwrap()
}

/// Makes (or remakes) the upstream tree at `root`: `packages/` holds exactly
/// the wheels named, `simple/` their PEP 503 pages and PEP 691 documents.
pub(crate) fn upstream(root: &Path, files: &[&String], yanked: &[(&str, &str)]) {
    let pkgs = root.join("packages");
    let _ = std::fs::remove_dir_all(&pkgs);
    std::fs::create_dir_all(&pkgs).unwrap();
    for f in files {
        std::fs::copy(wheels().join(f), pkgs.join(f)).unwrap();
    }
    let y: std::collections::BTreeMap<&str, &str> = yanked.iter().copied().collect();
    let y = format!(
        "{{{}}}",
        y.iter()
            .map(|(k, v)| format!("\"{k}\": \"{v}\""))
            .collect::<Vec<_>>()
            .join(",")
    );
    let st = Command::new("python3")
        .arg(script(root))
        .arg("index")
        .arg(root)
        .arg(y)
        .status()
        .unwrap();
    assert!(st.success(), "writing the upstream index failed");
}

/// The PEP 691 upstream server over `root`, logging request paths to `log`.
fn json_upstream(root: &Path, log: &Path) -> Upstream {
    use std::io::BufRead;
    let mut child = Command::new("python3")
        .arg("-u")
        .arg(script(root))
        .arg("serve")
        .arg(root)
        .arg(log)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the JSON upstream");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("PORT ")
        .expect("PORT line")
        .to_string();
    Upstream {
        process: KillOnDrop(child),
        url: format!("http://127.0.0.1:{port}"),
    }
}

/// A plain HTTP/1.0 GET: status, headers (lower-cased names), body.
fn get(addr: &str, path: &str, accept: Option<&str>) -> (u16, String, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n{accept}\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_string())
}

/// `python3 -m pip args…` with no user configuration (so no find-links).
pub(crate) fn pip(args: &[&str]) -> Run {
    let o = Command::new("python3")
        .args(["-m", "pip"])
        .args(args)
        .env("PIP_CONFIG_FILE", "/dev/null")
        .env_remove("PIP_FIND_LINKS")
        .env_remove("PIP_INDEX_URL")
        .env_remove("PIP_EXTRA_INDEX_URL")
        // requests prefers these to pip's --cert: a site's CA would be ignored.
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("CURL_CA_BUNDLE")
        .env("PIP_NO_INPUT", "1")
        .output()
        .unwrap();
    Run {
        ok: o.status.success(),
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// `pip download` of `reqs` for CPython 3.11 on manylinux x86_64 from
/// `index` into a new directory; returns the files downloaded.
fn pip_download(env: &Env, index: &str, dest: &str, reqs: &[&str]) -> Vec<String> {
    let dest = env.root().join(dest);
    let mut args = vec![
        "download",
        "--no-cache-dir",
        "--disable-pip-version-check",
        "--index-url",
        index,
        "--only-binary",
        ":all:",
        "--python-version",
        "3.11",
        "--platform",
        "manylinux_2_17_x86_64",
        "--dest",
        dest.to_str().unwrap(),
    ];
    args.extend(reqs);
    pip(&args).expect_ok();
    dir_names(&dest)
}

pub(crate) fn write_config(env: &Env, body: &str) {
    std::fs::write(&env.config, body).unwrap();
}

/// The files the inside serves for source `src`.
fn served_files(env: &Env, src: &str) -> Vec<String> {
    dir_names(&env.export_tree().join("pypi").join(src).join("files"))
}

fn bundle_bytes(env: &Env, media: &str) -> u64 {
    dir_bytes(&env.only_bundle(media))
}

#[test]
fn pypi_html_index_mirror_update_and_pin() {
    if !have_pip("pypi_html_index_mirror_update_and_pin") {
        return;
    }
    let env = Env::new();
    let up_dir = env.root().join("upstream-pypi");
    let (a1, a2, a3) = (
        wheel("alpha-1.0-"),
        wheel("alpha-2.0-"),
        wheel("alpha-3.0-"),
    );
    let (b10, b11) = (wheel("beta-1.0-"), wheel("beta-1.1-"));
    let n_lin = wheel("native-1.0-cp311-cp311-manylinux");
    let n_win = wheel("native-1.0-cp311-cp311-win");
    let n_312 = wheel("native-1.0-cp312");
    let (g, d) = (wheel("gamma-"), wheel("delta-"));
    let all1 = [&a1, &a2, &b10, &b11, &n_lin, &n_win, &n_312, &g, &d];
    upstream(&up_dir, &all1, &[(&b11, "broken <build>")]);
    let up = http_upstream(&up_dir);
    write_config(
        &env,
        &format!(
            r#"[[source]]
name = "web"
type = "pypi"
index = "{}/simple/"
requirements = ["alpha>=1", "beta==1.1"]
python = ["3.11"]
platforms = ["manylinux_2_17_x86_64"]
pin = ["beta==1.0"]
"#,
            up.url
        ),
    );

    env.export("m1").expect_ok();
    env.import("m1").expect_ok();
    let files = served_files(&env, "web");
    let mut want = vec![a2.clone(), b10.clone(), b11.clone(), n_lin.clone()];
    want.sort();
    assert_eq!(
        files, want,
        "latest alpha, its dependencies for Linux/3.11 (not gamma: python<3; not delta: an extra \
         not asked for), the yanked beta asked for exactly, only the manylinux cp311 native"
    );

    let srv = env.serve();
    // PEP 503 HTML with hashes, requires-python escaped and yanked marked.
    let (st, head, body) = get(&srv.addr, "/pypi/web/simple/beta/", None);
    assert_eq!(st, 200);
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(
        body.contains(&format!(
            "href=\"../../files/{b11}#sha256={}\"",
            ferry_protocol::id::Sha256::of(&std::fs::read(wheels().join(&b11)).unwrap())
        )),
        "{body}"
    );
    assert!(body.contains("data-requires-python=\"&gt;=3.8\""), "{body}");
    assert!(
        body.contains("data-yanked=\"broken &lt;build&gt;\""),
        "{body}"
    );
    assert_eq!(body.matches("data-yanked").count(), 1, "{body}");
    // PEP 691 JSON when asked for.
    let (st, head, body) = get(
        &srv.addr,
        "/pypi/web/simple/beta/",
        Some("application/vnd.pypi.simple.v1+json"),
    );
    assert_eq!(st, 200);
    assert!(
        head.contains("content-type: application/vnd.pypi.simple.v1+json"),
        "{head}"
    );
    assert!(body.contains("\"yanked\":\"broken <build>\""), "{body}");
    assert!(body.contains("\"yanked\":false"), "{body}");
    // The project list, and a non-normalized name redirected.
    let (st, _, body) = get(&srv.addr, "/pypi/web/simple/", None);
    assert_eq!(st, 200);
    for p in ["alpha", "beta", "native"] {
        assert!(body.contains(&format!("href=\"{p}/\"")), "{body}");
    }
    assert!(!body.contains("gamma"), "{body}");
    let (st, head, _) = get(&srv.addr, "/pypi/web/simple/Alpha_/", None);
    assert_eq!(st, 301);
    assert!(head.contains("location: /pypi/web/simple/alpha/"), "{head}");
    let (st, _, _) = get(&srv.addr, "/pypi/web/simple/gamma/", None);
    assert_eq!(st, 404);

    // The real pip resolves against ferry-in: alpha 2.0 and its dependencies,
    // the yanked beta 1.1 passed over for 1.0.
    let index = format!("http://{}/pypi/web/simple/", srv.addr);
    let got = pip_download(&env, &index, "dl1", &["alpha"]);
    let mut want = vec![a2.clone(), b10.clone(), n_lin.clone()];
    want.sort();
    assert_eq!(got, want);
    let target = env.root().join("site");
    pip(&[
        "install",
        "--no-cache-dir",
        "--disable-pip-version-check",
        "--index-url",
        &index,
        "--target",
        target.to_str().unwrap(),
        "alpha",
    ])
    .expect_ok();
    let o = Command::new("python3")
        .arg("-c")
        .arg("import alpha, beta, native; print(alpha.VERSION, beta.VERSION, native.VERSION)")
        .env("PYTHONPATH", &target)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "2.0 1.0 1.0");

    // Upstream update: alpha 3.0 arrives, alpha 2.0 and the pinned beta 1.0
    // disappear.
    let all2 = [&a1, &a3, &b11, &n_lin, &n_win, &n_312, &g, &d];
    upstream(&up_dir, &all2, &[(&b11, "broken <build>")]);
    let r = env.export("m2").expect_ok();
    assert!(
        r.all().contains(&format!("keeping pinned {b10}")),
        "{}",
        r.all()
    );
    let new_size = std::fs::metadata(wheels().join(&a3)).unwrap().len();
    let shipped = bundle_bytes(&env, "m2");
    assert!(
        shipped >= new_size / 2 && shipped < new_size + 64 * 1024,
        "the update ships alpha 3.0 ({new_size} bytes of random data) and small indexes, \
         not the unchanged wheels: bundle is {shipped} bytes"
    );
    env.import("m2").expect_ok();
    let mut want = vec![a3.clone(), b10.clone(), b11.clone()];
    want.sort();
    assert_eq!(
        served_files(&env, "web"),
        want,
        "alpha 2.0 gone upstream, native no longer required (alpha 3.0 does not need it), \
         pinned beta 1.0 kept"
    );
    let (st, _, _) = get(&srv.addr, "/pypi/web/simple/native/", None);
    assert_eq!(st, 404);
    let (_, _, body) = get(&srv.addr, "/pypi/web/simple/alpha/", None);
    assert!(body.contains(&a3) && !body.contains(&a2), "{body}");
    let (st, _, _) = get(&srv.addr, &format!("/pypi/web/files/{a2}"), None);
    assert_eq!(st, 404);
    let got = pip_download(&env, &index, "dl2", &["alpha", "beta==1.0"]);
    let mut want = vec![a3.clone(), b10.clone()];
    want.sort();
    assert_eq!(got, want);

    // Nothing changed upstream: nothing to export.
    let r = env.export("m3").expect_ok();
    assert!(dir_names(&env.root().join("m3")).is_empty(), "{}", r.all());
}

#[test]
fn pypi_json_index_with_core_metadata_and_all_versions() {
    if !have_pip("pypi_json_index_with_core_metadata_and_all_versions") {
        return;
    }
    let env = Env::new();
    let up_dir = env.root().join("upstream-json");
    let (a1, a2) = (wheel("alpha-1.0-"), wheel("alpha-2.0-"));
    let (b10, b11) = (wheel("beta-1.0-"), wheel("beta-1.1-"));
    let n_lin = wheel("native-1.0-cp311-cp311-manylinux");
    upstream(&up_dir, &[&a1, &a2, &b10, &b11, &n_lin], &[(&b11, "")]);
    let log = env.root().join("requests.log");
    let up = json_upstream(&up_dir, &log);
    write_config(
        &env,
        &format!(
            r#"[[source]]
name = "json"
type = "pypi"
index = "{}/simple"
requirements = ["Alpha"]
python = ["3.11"]
platforms = ["manylinux2014_x86_64"]
versions = "all"
"#,
            up.url
        ),
    );
    env.export("m1").expect_ok();
    let requests = std::fs::read_to_string(&log).unwrap();
    assert!(
        requests.contains(&format!("/packages/{a2}.metadata")),
        "dependencies read from the PEP 658 metadata file: {requests}"
    );
    assert!(
        !requests.contains("/simple/gamma/"),
        "gamma's marker is false for Python 3.11: {requests}"
    );
    env.import("m1").expect_ok();
    let mut want = vec![
        a1.clone(),
        a2.clone(),
        b10.clone(),
        b11.clone(),
        n_lin.clone(),
    ];
    want.sort();
    assert_eq!(
        served_files(&env, "json"),
        want,
        "every version, the yanked one included"
    );
    let srv = env.serve();
    let (_, _, body) = get(
        &srv.addr,
        "/pypi/json/simple/beta/",
        Some("application/vnd.pypi.simple.v1+json"),
    );
    assert!(body.contains("\"yanked\":true"), "{body}");
    assert!(body.contains("\"versions\":[\"1.0\",\"1.1\"]"), "{body}");
    let index = format!("http://{}/pypi/json/simple/", srv.addr);
    let got = pip_download(&env, &index, "dl", &["alpha==1.0"]);
    let mut want = vec![a1.clone(), b10.clone()];
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn pypi_tampered_upstream_fails_the_export() {
    if !have_pip("pypi_tampered_upstream_fails_the_export") {
        return;
    }
    let env = Env::new();
    let up_dir = env.root().join("upstream-bad");
    let b10 = wheel("beta-1.0-");
    let a1 = wheel("alpha-1.0-");
    upstream(&up_dir, &[&a1, &b10], &[]);
    // The file changes after the index was written: the hash no longer matches.
    let victim = up_dir.join("packages").join(&a1);
    let mut data = std::fs::read(&victim).unwrap();
    let n = data.len();
    data[n / 2] ^= 0xff;
    std::fs::write(&victim, data).unwrap();
    let up = http_upstream(&up_dir);
    // Also a files source, which must not ship either.
    env.write_src("readme.txt", b"hello");
    for deps in [true, false] {
        write_config(
            &env,
            &format!(
                r#"[[source]]
name = "tools"
type = "files"
path = "{}"

[[source]]
name = "bad"
type = "pypi"
index = "{}/simple/"
requirements = ["alpha"]
python = ["3.11"]
dependencies = {deps}
"#,
                env.src.display(),
                up.url
            ),
        );
        let r = env.export("media").expect_fail(&[
            "source \"bad\"",
            &a1,
            "the index states SHA-256",
            "the download has",
        ]);
        assert!(
            dir_names(&env.root().join("media")).is_empty(),
            "a failed export writes nothing to media: {}",
            r.all()
        );
    }
}

#[test]
fn pypi_config_errors_are_clear() {
    let env = Env::new();
    for (body, needle) in [
        (
            "requirements = [\"alpha>=\"]\npython = [\"3.11\"]",
            "not a PEP 508 requirement",
        ),
        ("requirements = [\"alpha\"]", "`python` must name"),
        (
            "requirements = [\"alpha\"]\npython = [\"3\"]",
            "is not major.minor",
        ),
        (
            "requirements = [\"alpha\"]\npython = [\"3.11\"]\nversions = \"newest\"",
            "newest",
        ),
        (
            "requirements = [\"alpha\"]\npython = [\"3.11\"]\nplatform = []",
            "platform",
        ),
    ] {
        write_config(
            &env,
            &format!(
                "[[source]]\nname = \"p\"\ntype = \"pypi\"\nindex = \"http://127.0.0.1:9/simple/\"\n{body}\n"
            ),
        );
        env.export("media").expect_fail(&["source \"p\"", needle]);
    }
}

/// The index pip is configured with on this machine.
fn configured_index() -> String {
    if let Ok(u) = std::env::var("PIP_INDEX_URL") {
        return u;
    }
    let o = Command::new("python3")
        .args(["-m", "pip", "config", "get", "global.index-url"])
        .output();
    match o {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        _ => "https://pypi.org/simple/".to_string(),
    }
}

#[test]
fn pypi_real_index_when_asked() {
    if !switched_on(
        "pypi_real_index_when_asked",
        "FERRY_TEST_PYPI",
        "it mirrors real packages from the network",
    ) {
        return;
    }
    if !have_pip("pypi_real_index_when_asked") {
        return;
    }
    let env = Env::new();
    write_config(
        &env,
        &format!(
            r#"[[source]]
name = "real"
type = "pypi"
index = "{}"
requirements = ["requests==2.32.3", "six"]
python = ["3.11"]
platforms = ["manylinux_2_17_x86_64"]
"#,
            configured_index()
        ),
    );
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();
    let files = served_files(&env, "real");
    for p in [
        "requests-2.32.3-",
        "six-",
        "urllib3-",
        "idna-",
        "certifi-",
        "charset_normalizer-",
    ] {
        assert!(files.iter().any(|f| f.starts_with(p)), "{p} in {files:?}");
    }
    let srv = env.serve();
    let index = format!("http://{}/pypi/real/simple/", srv.addr);
    let got = pip_download(&env, &index, "dl", &["requests==2.32.3", "six"]);
    assert!(
        got.iter().any(|f| f.starts_with("requests-2.32.3-")),
        "{got:?}"
    );
}
