//! The examples under `examples/`, end to end: each example's own
//! `ferry-out.toml`, with only its upstreams replaced by local stand-ins
//! (the rule its header states), exported, imported and served over TLS;
//! `ferry-in client-config --out DIR` then written, and each real client
//! run with only the file written for it: skopeo with the CA directory
//! (no insecure flag), apt-get with the `.sources` file (`Signed-By`) and
//! the CA setting, apt-get again with the GPU Operator's `custom-repo.list`
//! as the driver container reads it, dnf with the `.repo` file
//! (`gpgcheck=1`, vendor-signed packages), pip with `pip.conf`; Helm's
//! repository and the plain files with curl and the CA (helm itself is not
//! installed here). The stand-ins are built from the example's own lists:
//! a real `docker-registry` filled with skopeo, a reprepro repository, a
//! createrepo_c repository of signed RPMs, a PEP 503 tree and a chart
//! repository directory, served by a static HTTP server.
//!
//! Each example also keeps the client configuration `client-config` writes
//! for its documented URL (`examples/<name>/client-config/`); the test
//! writes it again and compares (`FERRY_EXAMPLES_WRITE=1` rewrites it).

use ferry_e2e::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const TOOLS: &[&str] = &[
    "docker-registry",
    "skopeo",
    "gpg",
    "reprepro",
    "dpkg-deb",
    "apt-get",
    "rpmbuild",
    "rpmsign",
    "createrepo_c",
    "dnf",
    "tar",
    "curl",
    "python3",
];

/// `examples/NAME/`.
fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

/// The example's config with its upstreams replaced by the stand-ins, as
/// its header says: every quoted `http(s)://HOST/PATH` by `WEB/HOST/PATH`,
/// the host of every `registry =` by `http://REGISTRY`, every key file
/// under `/etc/ferry/keys/` by `KEYS/NAME`. Comments are kept as they are.
fn substitute(text: &str, web: &str, registry: &str, keys: &Path) -> String {
    let mut out = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with('#') {
            out += line;
            out.push('\n');
            continue;
        }
        let is_registry = line.trim_start().starts_with("registry");
        for (i, part) in line.split('"').enumerate() {
            if i > 0 {
                out.push('"');
            }
            if i % 2 == 0 {
                out += part;
                continue;
            }
            let url = part
                .strip_prefix("https://")
                .or_else(|| part.strip_prefix("http://"));
            if let Some(rest) = url {
                out += &format!("{web}/{rest}");
            } else if is_registry {
                out += &format!("http://{registry}");
            } else if let Some(name) = part.strip_prefix("/etc/ferry/keys/") {
                out += &keys.join(name).display().to_string();
            } else {
                out += part;
            }
        }
        out.push('\n');
    }
    out
}

/// Where the stand-in web server keeps `http(s)://HOST/PATH`.
fn web_dir(web_root: &Path, url: &str) -> PathBuf {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .unwrap_or_else(|| panic!("not a URL: {url}"));
    web_root.join(rest.trim_end_matches('/'))
}

fn strings(t: &toml::Table, key: &str) -> Vec<String> {
    t.get(key)
        .and_then(|v| v.as_array())
        .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

fn s<'a>(t: &'a toml::Table, key: &str) -> &'a str {
    t.get(key)
        .and_then(|v| v.as_str())
        .unwrap_or_else(|| panic!("no {key} in {t:?}"))
}

/// What the stand-ins hold, to check the clients got it.
#[derive(Default)]
struct Held {
    /// (registry host of the example, repository, tag, the layer's sha256).
    images: Vec<(String, String, String, String)>,
    /// apt source -> (package -> the deb built).
    debs: BTreeMap<String, BTreeMap<String, PathBuf>>,
    /// yum source -> package names.
    rpms: BTreeMap<String, Vec<String>>,
    /// yum source -> the vendor key (armored) signing its packages.
    rpm_keys: BTreeMap<String, PathBuf>,
    /// helm source -> (chart, version, the archive built).
    charts: BTreeMap<String, Vec<(String, String, PathBuf)>>,
    /// pypi source -> projects (name, version).
    wheels: BTreeMap<String, Vec<(String, String)>>,
    /// files source -> (file name, bytes).
    files: BTreeMap<String, Vec<(String, Vec<u8>)>>,
    /// The upstream apt keys (binary), to trust as a distribution image does.
    apt_keys: Vec<PathBuf>,
}

/// The stand-ins: a static web server over `web_root`, a docker-registry,
/// and the keys that sign what they serve.
struct StandIns {
    web: Upstream,
    web_root: PathBuf,
    _registry: KillOnDrop,
    registry: String,
    keys: PathBuf,
    work: PathBuf,
    /// key file name -> (GNUPGHOME, fingerprint).
    signers: BTreeMap<String, (PathBuf, String)>,
}

impl StandIns {
    fn new(root: &Path) -> StandIns {
        let web_root = root.join("upstream");
        let keys = root.join("keys");
        let work = root.join("work");
        for d in [&web_root, &keys, &work] {
            std::fs::create_dir_all(d).unwrap();
        }
        let reg_dir = root.join("registry");
        std::fs::create_dir_all(&reg_dir).unwrap();
        let (process, registry) = docker_registry(&reg_dir);
        StandIns {
            web: http_upstream(&web_root),
            web_root,
            _registry: process,
            registry,
            keys,
            work,
            signers: BTreeMap::new(),
        }
    }

    /// The key that signs for `file` (a name under `/etc/ferry/keys/`),
    /// made once and written to `KEYS/file` (armored for `.asc`).
    fn signer(&mut self, file: &str) -> (PathBuf, String) {
        if let Some(k) = self.signers.get(file) {
            return k.clone();
        }
        let stem = file.split('.').next().unwrap();
        let (home, fpr, public) = gpg_key(&self.work, stem);
        let dest = self.keys.join(file);
        if file.ends_with(".asc") {
            std::fs::write(&dest, gpg(&home, &["--armor", "--export", &fpr])).unwrap();
        } else {
            std::fs::copy(&public, &dest).unwrap();
        }
        self.signers
            .insert(file.to_string(), (home.clone(), fpr.clone()));
        (home, fpr)
    }

    /// Builds every source's stand-in from the example's own lists.
    fn build(&mut self, config: &toml::Table) -> Held {
        let mut held = Held::default();
        let sources = config["source"].as_array().expect("[[source]] tables");
        for src in sources {
            let t = src.as_table().unwrap();
            let name = s(t, "name").to_string();
            match s(t, "type") {
                "oci" => self.oci(t, &mut held),
                "apt" => self.apt(&name, t, &mut held),
                "yum" => self.yum(&name, t, &mut held),
                "helm" => self.helm(&name, t, &mut held),
                "pypi" => self.pypi(&name, t, &mut held),
                "files" => self.files(&name, t, &mut held),
                other => panic!("no stand-in for a {other} source"),
            }
        }
        held
    }

    fn oci(&self, t: &toml::Table, held: &mut Held) {
        for image in strings(t, "images") {
            let (repo, tag) = image.rsplit_once(':').unwrap();
            let layer = push_image(&self.work, &self.registry, repo, tag);
            held.images.push((
                s(t, "registry").to_string(),
                repo.to_string(),
                tag.to_string(),
                layer,
            ));
        }
    }

    fn apt(&mut self, name: &str, t: &toml::Table, held: &mut Held) {
        let key = s(t, "keyring").strip_prefix("/etc/ferry/keys/").unwrap();
        let (home, fpr) = self.signer(key);
        held.apt_keys.push(self.keys.join(key));
        let repo = web_dir(&self.web_root, s(t, "url"));
        std::fs::create_dir_all(repo.join("conf")).unwrap();
        let suites = strings(t, "suites");
        let comps = strings(t, "components").join(" ");
        let archs = strings(t, "architectures").join(" ");
        let dists: Vec<String> = suites
            .iter()
            .map(|suite| {
                format!(
                    "Origin: StandIn\nLabel: StandIn\nCodename: {suite}\nArchitectures: {archs}\nComponents: {comps}\nSignWith: {fpr}\n"
                )
            })
            .collect();
        std::fs::write(repo.join("conf/distributions"), dists.join("\n")).unwrap();
        let reprepro = |args: &[&str]| {
            sh_text(
                Command::new("reprepro")
                    .env("GNUPGHOME", &home)
                    .arg("--silent")
                    .arg("-b")
                    .arg(&repo)
                    .args(args),
            )
        };
        let mut debs = BTreeMap::new();
        for (i, pkg) in strings(t, "packages").iter().enumerate() {
            let deb = build_deb(&self.work, pkg, i as u64);
            // Each in the last suite, as kernel packages come in -updates
            // and -security.
            reprepro(&["includedeb", suites.last().unwrap(), deb.to_str().unwrap()]);
            debs.insert(pkg.clone(), deb);
        }
        reprepro(&["export"]);
        held.debs.insert(name.to_string(), debs);
    }

    fn yum(&mut self, name: &str, t: &toml::Table, held: &mut Held) {
        let repo = web_dir(&self.web_root, s(t, "baseurl"));
        let mut pkgs = strings(t, "packages");
        if pkgs.is_empty() {
            // Everything: the stand-in's one package is named after the repository.
            pkgs.push(format!("{name}-tool"));
        }
        let key_file = match t.get("keyring") {
            Some(k) => k
                .as_str()
                .unwrap()
                .strip_prefix("/etc/ferry/keys/")
                .unwrap()
                .to_string(),
            None => format!("{name}-vendor.asc"),
        };
        let (home, fpr) = self.signer(&key_file);
        let mut rpms = Vec::new();
        for p in &pkgs {
            rpms.push(build_rpm(&self.work, &repo, p));
        }
        rpmsign(&home, &fpr, &rpms);
        crate::yum::createrepo(&repo);
        if t.contains_key("keyring") {
            sign_repomd(&home, &repo);
        }
        // The vendor key as dnf's gpgkey reads it: armored.
        let armored = self.work.join(format!("{name}-gpgkey.asc"));
        std::fs::write(&armored, gpg(&home, &["--armor", "--export", &fpr])).unwrap();
        held.rpm_keys.insert(name.to_string(), armored);
        held.rpms.insert(name.to_string(), pkgs);
    }

    fn helm(&self, name: &str, t: &toml::Table, held: &mut Held) {
        let dir = web_dir(&self.web_root, s(t, "url"));
        let mut wanted: Vec<(String, String)> = match t.get("charts").and_then(|c| c.as_table()) {
            Some(c) => c
                .iter()
                .map(|(chart, range)| {
                    let v = range.as_str().unwrap().trim_start_matches('=');
                    (chart.clone(), format!("v{v}"))
                })
                .collect(),
            None => vec![],
        };
        if wanted.is_empty() {
            // Every chart: two of them.
            wanted = vec![
                ("gpu-operator".into(), "v23.6.1".into()),
                ("network-operator".into(), "23.7.0".into()),
            ];
        }
        let mut built = Vec::new();
        let mut entries = Vec::new();
        for (chart, version) in &wanted {
            let tgz = crate::helm::chart(&self.work, &dir, chart, version);
            entries.push((
                chart.as_str(),
                version.as_str(),
                format!("pkgs/{chart}-{version}.tgz"),
            ));
            built.push((chart.clone(), version.clone(), tgz));
        }
        crate::helm::index(&dir, &entries);
        held.charts.insert(name.to_string(), built);
    }

    fn pypi(&self, name: &str, t: &toml::Table, held: &mut Held) {
        let simple = web_dir(&self.web_root, s(t, "index"));
        let root = simple.parent().unwrap();
        let mut projects = Vec::new();
        for req in strings(t, "requirements") {
            let (project, version) = req.split_once("==").expect("name==version");
            let st = Command::new("python3")
                .args(["-c", WHEEL_PY])
                .arg(root)
                .args([project, version])
                .status()
                .unwrap();
            assert!(st.success(), "building the {project} wheel");
            projects.push((project.to_string(), version.to_string()));
        }
        let links: String = projects
            .iter()
            .map(|(p, _)| format!("<a href=\"{p}/\">{p}</a>\n"))
            .collect();
        std::fs::write(
            simple.join("index.html"),
            format!("<!DOCTYPE html><html><body>\n{links}</body></html>\n"),
        )
        .unwrap();
        held.wheels.insert(name.to_string(), projects);
    }

    fn files(&self, name: &str, t: &toml::Table, held: &mut Held) {
        let mut files = Vec::new();
        for (i, url) in strings(t, "urls").iter().enumerate() {
            let path = web_dir(&self.web_root, url);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let bytes = random_bytes(30_000, 40 + i as u64);
            std::fs::write(&path, &bytes).unwrap();
            let file = url.rsplit('/').next().unwrap().to_string();
            files.push((file, bytes));
        }
        held.files.insert(name.to_string(), files);
    }
}

/// Writes a pure-Python wheel `NAME-VERSION-py3-none-any.whl` (a package
/// `NAME`, METADATA, WHEEL, RECORD) into `ROOT/packages/` and its PEP 503
/// page `ROOT/simple/NAME/index.html` with the file's SHA-256.
const WHEEL_PY: &str = r#"
import base64, hashlib, os, re, sys, zipfile
root, name, version = sys.argv[1:4]
fn = f"{name}-{version}-py3-none-any.whl"
di = f"{name}-{version}.dist-info"
files = {
    f"{name}/__init__.py": f"VERSION = {version!r}\n".encode(),
    f"{di}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
    f"{di}/WHEEL": b"Wheel-Version: 1.0\nGenerator: ferry-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
rec = ""
for p, d in files.items():
    h = base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b"=").decode()
    rec += f"{p},sha256={h},{len(d)}\n"
files[f"{di}/RECORD"] = (rec + f"{di}/RECORD,,\n").encode()
os.makedirs(f"{root}/packages", exist_ok=True)
with zipfile.ZipFile(f"{root}/packages/{fn}", "w") as z:
    for p, d in files.items():
        z.writestr(zipfile.ZipInfo(p, (2020, 1, 1, 0, 0, 0)), d)
sha = hashlib.sha256(open(f"{root}/packages/{fn}", "rb").read()).hexdigest()
norm = re.sub(r"[-_.]+", "-", name).lower()
os.makedirs(f"{root}/simple/{norm}", exist_ok=True)
with open(f"{root}/simple/{norm}/index.html", "w") as f:
    f.write(f'<!DOCTYPE html><html><body><a href="../../packages/{fn}#sha256={sha}">{fn}</a></body></html>\n')
"#;

/// A one-layer linux/amd64 image `repo:tag` pushed into `reg` with skopeo;
/// returns the SHA-256 of its layer as the registry holds it.
fn push_image(work: &Path, reg: &str, repo: &str, tag: &str) -> String {
    let id = format!("{}-{tag}", repo.replace('/', "_"));
    let layout = OciLayout::new(&work.join(format!("layout-{id}")));
    let src = work.join(format!("rootfs-{id}"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("image.txt"), format!("{repo}:{tag}\n")).unwrap();
    let tar = tar_of_dir(&src);
    let manifest = layout.manifest("amd64", "{}", &[Layer::tar(&tar)]);
    layout.tag(tag, &manifest, false);
    skopeo_push(&layout.dir, tag, reg, &format!("{repo}:{tag}"), &[]).expect_ok();
    // skopeo compresses the layer on the way in: the registry's manifest names it.
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{reg}/{repo}:{tag}"),
    ])
    .expect_ok();
    let m: serde_json::Value = serde_json::from_str(&raw.stdout).unwrap();
    let digest = m["layers"][0]["digest"].as_str().unwrap();
    digest.strip_prefix("sha256:").unwrap().to_string()
}

/// A small `.deb` of package `name` (amd64, a kernel-like version).
fn build_deb(work: &Path, name: &str, seed: u64) -> PathBuf {
    let p = crate::apt::Pkg {
        name,
        version: "5.4.0-91.102",
        arch: "amd64",
        extra: "",
        seed,
    };
    crate::apt::build_deb_sized(work, &p, 20_000)
}

/// A small noarch RPM of package `name` into `repo/Packages/noarch/`.
fn build_rpm(work: &Path, repo: &Path, name: &str) -> PathBuf {
    let spec = work.join(format!("{name}.spec"));
    std::fs::write(
        &spec,
        format!(
            "Name: {name}\nVersion: 1.0\nRelease: 1\nSummary: stand-in {name}\nLicense: MIT\nBuildArch: noarch\n%description\nstand-in\n%install\nmkdir -p %{{buildroot}}/usr/share/{name}\necho {name} > %{{buildroot}}/usr/share/{name}/data\n%files\n/usr/share/{name}/data\n"
        ),
    )
    .unwrap();
    rpmbuild(work, &repo.join("Packages"), &spec, "w1.gzdio");
    repo.join(format!("Packages/noarch/{name}-1.0-1.noarch.rpm"))
}

/// The example's stand-ins built, its config substituted, exported and
/// imported into `env`; returns the config (as the example has it) and
/// what the stand-ins hold.
fn run_flow(env: &Env, name: &str) -> (StandIns, toml::Table, Held) {
    let text = std::fs::read_to_string(example(name).join("ferry-out.toml")).unwrap();
    let config: toml::Table = toml::from_str(&text).unwrap();
    let mut stand = StandIns::new(env.root());
    let held = stand.build(&config);
    let substituted = substitute(&text, &stand.web.url, &stand.registry, &stand.keys);
    // Only upstreams changed: the same sources, names and selections.
    let parsed: toml::Table = toml::from_str(&substituted).unwrap();
    assert_eq!(
        parsed["source"].as_array().unwrap().len(),
        config["source"].as_array().unwrap().len()
    );
    let bare = substituted
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<String>();
    assert!(
        !bare.contains("https://") && !bare.contains("/etc/ferry/keys/"),
        "an upstream left in:\n{substituted}"
    );
    std::fs::write(&env.config, substituted).unwrap();
    env.export("m").expect_ok();
    env.import("m").expect_ok();
    (stand, config, held)
}

/// `client-config` flags every flow passes: each yum source's vendor key,
/// each image registry as an upstream, where the site key and the CA go.
fn client_flags(config: &toml::Table, held: &Held, keyring: &Path, ca: &Path) -> Vec<String> {
    let mut flags = vec![
        "--apt-keyring".to_string(),
        keyring.display().to_string(),
        "--ca-path".into(),
        ca.display().to_string(),
    ];
    for (source, key) in &held.rpm_keys {
        flags.push("--gpgkey".into());
        flags.push(format!("{source}=file://{}", key.display()));
    }
    for up in upstreams(config) {
        flags.push("--upstream".into());
        flags.push(up);
    }
    flags
}

/// The example's image registries, in order.
fn upstreams(config: &toml::Table) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for src in config["source"].as_array().unwrap() {
        if let Some(r) = src.get("registry").and_then(|r| r.as_str()) {
            if !out.iter().any(|o| o == r) {
                out.push(r.to_string());
            }
        }
    }
    out
}

/// Runs `client-config --out DIR` with `flags` (DIR = `client-config-TAG`
/// under the root, its CA at `DIR/ca.pem`).
fn write_client_config(env: &Env, url: &str, tag: &str, flags: &[String]) -> PathBuf {
    let f: Vec<&str> = flags.iter().map(String::as_str).collect();
    client_config(env, url, tag, &f)
}

/// skopeo pulls every image from `reg` (as the client config names it),
/// trusting the CA directory `client-config` wrote for it; each layer is
/// the stand-in's.
fn pull_images(env: &Env, out: &Path, reg: &str, held: &Held) {
    let certs = out.join("containers/certs.d").join(reg);
    assert!(certs.join("ca.crt").is_file(), "no CA for {reg}");
    let hosts =
        std::fs::read_to_string(out.join("containerd").join(reg).join("hosts.toml")).unwrap();
    assert!(
        hosts.contains(&format!("[host.\"https://{reg}\"]")),
        "{hosts}"
    );
    assert!(hosts.contains("ca = "), "{hosts}");
    for (i, (_, repo, tag, layer)) in held.images.iter().enumerate() {
        let dest = env.root().join(format!("pulled-{i}"));
        skopeo(&[
            "copy",
            "--src-cert-dir",
            certs.to_str().unwrap(),
            &format!("docker://{reg}/{repo}:{tag}"),
            &format!("oci:{}:{tag}", dest.display()),
        ])
        .expect_ok();
        assert!(
            dest.join("blobs/sha256").join(layer).is_file(),
            "{repo}:{tag}: not the stand-in's layer"
        );
    }
}

/// apt-get with the `.sources` file and the CA setting written, and the
/// site key where the file says: every package comes down byte for byte.
fn apt_install(env: &Env, out: &Path, keyring: &Path, held: &Held) {
    if held.debs.is_empty() {
        return;
    }
    std::fs::create_dir_all(keyring.parent().unwrap()).unwrap();
    std::fs::copy(out.join("apt/ferry-site.asc"), keyring).unwrap();
    let sources = std::fs::read_to_string(out.join("apt/ferry.sources")).unwrap();
    assert!(sources.contains("URIs: https://"), "{sources}");
    let apt = crate::apt::Apt::with_sources(&env.root().join("apt-client"), &sources);
    std::fs::copy(
        out.join("apt/ferry-ca.conf"),
        apt.root.join("etc/apt/apt.conf.d/60ferry-ca"),
    )
    .unwrap();
    apt.update();
    for debs in held.debs.values() {
        for (pkg, deb) in debs {
            let r = apt.run(&["install", "-y", "--download-only", pkg]);
            assert!(r.ok, "apt-get install {pkg}:\n{}", r.all());
            let file = deb.file_name().unwrap();
            let got = std::fs::read(apt.root.join("var/cache/apt/archives").join(file))
                .unwrap_or_else(|e| panic!("apt-get did not fetch {file:?}: {e}"));
            assert_eq!(got, std::fs::read(deb).unwrap(), "{pkg}");
        }
    }
}

/// dnf installs every package of every yum source with only the `.repo`
/// file written (`gpgcheck=1`, the vendor's key) into a root of its own.
fn dnf_install(env: &Env, out: &Path, held: &Held) {
    if held.rpms.is_empty() {
        return;
    }
    let repo = std::fs::read_to_string(out.join("yum/ferry.repo")).unwrap();
    assert!(repo.lines().any(|l| l == "gpgcheck=1"), "{repo}");
    assert!(repo.contains("sslcacert="), "{repo}");
    let pkgs: Vec<&str> = held.rpms.values().flatten().map(String::as_str).collect();
    let root = env.root().join("dnf-client");
    let o = Command::new("dnf")
        .args(["-y", "--releasever=1", "--noplugins"])
        .arg(format!("--installroot={}", root.join("root").display()))
        .arg(format!("--setopt=reposdir={}", out.join("yum").display()))
        .arg(format!(
            "--setopt=cachedir={}",
            root.join("cache").display()
        ))
        .arg("install")
        .args(&pkgs)
        .output()
        .expect("run dnf");
    let r = Run::from(o);
    assert!(r.ok, "dnf install:\n{}", r.all());
    for p in pkgs {
        let got = root.join("root/usr/share").join(p).join("data");
        assert!(got.is_file(), "{p} not installed:\n{}", r.all());
    }
}

/// pip installs every requirement with only the `pip.conf` written.
fn pip_install(env: &Env, out: &Path, held: &Held) {
    if held.wheels.is_empty() {
        return;
    }
    let conf = out.join("pip/pip.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    assert!(text.contains("index-url = https://"), "{text}");
    let target = env.root().join("site-packages");
    for (project, version) in held.wheels.values().flatten() {
        let o = Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--target",
            ])
            .arg(&target)
            .arg(format!("{project}=={version}"))
            .env("PIP_CONFIG_FILE", &conf)
            .env("PIP_CACHE_DIR", env.root().join("pip-cache"))
            // Only pip.conf: no setting of this host's environment.
            .env_remove("PIP_INDEX_URL")
            .env_remove("PIP_EXTRA_INDEX_URL")
            .env_remove("PIP_FIND_LINKS")
            .env_remove("PIP_CERT")
            .env_remove("REQUESTS_CA_BUNDLE")
            .env_remove("CURL_CA_BUNDLE")
            .env("PIP_NO_INPUT", "1")
            .output()
            .unwrap();
        Run::from(o).expect_ok();
        assert_eq!(
            std::fs::read_to_string(target.join(project).join("__init__.py")).unwrap(),
            format!("VERSION = '{version}'\n")
        );
    }
}

/// What `helm repo add` then `helm pull` read, with the CA the line names:
/// the index and every chart, byte for byte.
fn helm_pull(out: &Path, held: &Held) {
    if held.charts.is_empty() {
        return;
    }
    let lines = std::fs::read_to_string(out.join("helm/repo-add.sh")).unwrap();
    for (source, charts) in &held.charts {
        let line = lines
            .lines()
            .find(|l| l.starts_with(&format!("helm repo add {source} ")))
            .unwrap_or_else(|| panic!("no repo add line for {source}:\n{lines}"));
        let words: Vec<&str> = line.split_whitespace().collect();
        let (url, ca) = (words[4].trim_end_matches('/'), words[6]);
        assert_eq!(words[5], "--ca-file", "{line}");
        let index: serde_norway::Value =
            serde_norway::from_slice(&curl(&["--cacert", ca, &format!("{url}/index.yaml")]))
                .unwrap();
        for (chart, version, tgz) in charts {
            let entry = index["entries"][chart.as_str()]
                .as_sequence()
                .and_then(|e| e.iter().find(|e| e["version"].as_str() == Some(version)))
                .unwrap_or_else(|| panic!("{chart} {version} not in the index"));
            let rel = entry["urls"][0].as_str().unwrap();
            let got = curl(&["--cacert", ca, &format!("{url}/{rel}")]);
            assert_eq!(got, std::fs::read(tgz).unwrap(), "{chart} {version}");
        }
    }
}

/// Compares the client configuration written for the documented URL with
/// the example's copy (`FERRY_EXAMPLES_WRITE=1` rewrites the copy). Files
/// holding this run's CA or site key are not kept.
fn check_kept_config(env: &Env, name: &str, url: &str, flags: &[String]) {
    let out = write_client_config(env, url, &format!("{name}-documented"), flags);
    let kept = example(name).join("client-config");
    let holds_keys = |rel: &str| {
        rel == "ca.pem"
            || rel == "apt/ferry-site.asc"
            || rel.starts_with("containers/certs.d/")
            || rel == "gpu-operator/cert-config.yaml"
    };
    let written: BTreeMap<String, String> = tree_digest(&out)
        .into_keys()
        .filter(|rel| !holds_keys(rel))
        .map(|rel| {
            let text = std::fs::read_to_string(out.join(&rel)).unwrap();
            (rel, text)
        })
        .collect();
    if std::env::var("FERRY_EXAMPLES_WRITE").as_deref() == Ok("1") {
        let _ = std::fs::remove_dir_all(&kept);
        for (rel, text) in &written {
            let p = kept.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        return;
    }
    let have: BTreeMap<String, String> = tree_digest(&kept)
        .into_keys()
        .map(|rel| {
            let text = std::fs::read_to_string(kept.join(&rel)).unwrap();
            (rel, text)
        })
        .collect();
    assert_eq!(
        have.keys().collect::<Vec<_>>(),
        written.keys().collect::<Vec<_>>(),
        "examples/{name}/client-config is out of date: FERRY_EXAMPLES_WRITE=1 rewrites it"
    );
    for (rel, text) in &written {
        assert_eq!(
            &have[rel], text,
            "examples/{name}/client-config/{rel} is out of date: FERRY_EXAMPLES_WRITE=1 rewrites it"
        );
    }
}

#[test]
fn gpu_operator_example_end_to_end_over_tls() {
    if !have_tools(&current_test(), TOOLS) || !crate::pypi::have_pip(&current_test()) {
        return;
    }
    let env = Env::new();
    let (_stand, config, held) = run_flow(&env, "gpu-operator");
    let srv = env.serve_tls();
    let url = format!("https://{}", srv.addr);
    let out_dir = env.root().join("client-config-gpu");
    let keyring = env.root().join("keyrings/ferry-site.asc");
    let flags = client_flags(&config, &held, &keyring, &out_dir.join("ca.pem"));
    let out = write_client_config(&env, &url, "gpu", &flags);
    assert_eq!(out, out_dir);

    pull_images(&env, &out, &srv.addr, &held);
    apt_install(&env, &out, &keyring, &held);
    dnf_install(&env, &out, &held);
    helm_pull(&out, &held);
    for (source, files) in &held.files {
        for (file, bytes) in files {
            assert_eq!(&srv.get(&format!("/files/{source}/{file}")), bytes);
        }
    }
    gpu_operator_values(&env, &out, &srv.addr, &held);

    let mut documented = Vec::new();
    for up in upstreams(&config) {
        documented.extend(["--upstream".to_string(), up]);
    }
    for source in held.rpm_keys.keys() {
        documented.extend([
            "--gpgkey".to_string(),
            format!("{source}=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-centosofficial"),
        ]);
    }
    check_kept_config(
        &env,
        "gpu-operator",
        "https://mirror.example:8443",
        &documented,
    );
}

/// The GPU Operator's values.yaml points every held image at the registry
/// and names both ConfigMaps; the driver container's `custom-repo.list`,
/// used by apt-get as the driver container would (the distribution's key
/// trusted, the CA from `cert-config`), installs the kernel packages.
fn gpu_operator_values(env: &Env, out: &Path, addr: &str, held: &Held) {
    let values: serde_norway::Value = serde_norway::from_str(
        &std::fs::read_to_string(out.join("gpu-operator/values.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        values["operator"]["repository"].as_str(),
        Some(format!("{addr}/nvidia").as_str()),
        "{values:?}"
    );
    assert_eq!(values["driver"]["version"].as_str(), Some("470.82.01"));
    assert_eq!(
        values["driver"]["repoConfig"]["configMapName"].as_str(),
        Some("repo-config")
    );
    assert_eq!(
        values["driver"]["certConfig"]["name"].as_str(),
        Some("cert-config")
    );
    assert_eq!(
        values["toolkit"]["repository"].as_str(),
        Some(format!("{addr}/nvidia/k8s").as_str())
    );
    let cm: serde_norway::Value = serde_norway::from_str(
        &std::fs::read_to_string(out.join("gpu-operator/repo-config-rhel.yaml")).unwrap(),
    )
    .unwrap();
    let repo = cm["data"]["custom-repo.repo"].as_str().unwrap();
    assert!(
        repo.contains(&format!("baseurl=https://{addr}/yum/baseos/")),
        "{repo}"
    );
    let cm: serde_norway::Value = serde_norway::from_str(
        &std::fs::read_to_string(out.join("gpu-operator/repo-config-ubuntu.yaml")).unwrap(),
    )
    .unwrap();
    let list = cm["data"]["custom-repo.list"].as_str().unwrap().to_string();
    let cert: serde_norway::Value = serde_norway::from_str(
        &std::fs::read_to_string(out.join("gpu-operator/cert-config.yaml")).unwrap(),
    )
    .unwrap();
    let ca = cert["data"]
        .as_mapping()
        .and_then(|m| m.values().next())
        .and_then(|v| v.as_str())
        .expect("the CA in cert-config")
        .to_string();

    // The driver container: the list in sources.list.d, the distribution's
    // key trusted, the CA it mounts from cert-config.
    let apt = crate::apt::Apt::with_sources(&env.root().join("apt-driver"), "");
    std::fs::write(
        apt.root.join("etc/apt/sources.list.d/custom-repo.list"),
        &list,
    )
    .unwrap();
    for key in &held.apt_keys {
        std::fs::copy(
            key,
            apt.root
                .join("etc/apt/trusted.gpg.d")
                .join(key.file_name().unwrap()),
        )
        .unwrap();
    }
    let ca_file = apt.root.join("ferry-ca.crt");
    std::fs::write(&ca_file, ca).unwrap();
    std::fs::write(
        apt.root.join("etc/apt/apt.conf.d/60ferry-ca"),
        format!("Acquire::https::CAInfo \"{}\";\n", ca_file.display()),
    )
    .unwrap();
    apt.update();
    for (pkg, deb) in held.debs.values().flatten() {
        let r = apt.run(&["install", "-y", "--download-only", pkg]);
        assert!(
            r.ok,
            "apt-get install {pkg} (custom-repo.list):\n{}",
            r.all()
        );
        let file = deb.file_name().unwrap();
        assert!(apt.root.join("var/cache/apt/archives").join(file).is_file());
    }
}

#[test]
fn deepops_example_end_to_end_over_tls_on_deepops_ports() {
    if !have_tools(&current_test(), TOOLS) || !crate::pypi::have_pip(&current_test()) {
        return;
    }
    let env = Env::new();
    let (_stand, config, held) = run_flow(&env, "deepops");
    let _ports = alone(); // the preset's ports are fixed
    env.tls_init();
    let (_p, addrs, log) = spawn_serve(
        &env.in_state,
        &["--preset", "deepops", "--preset-host", "127.0.0.1", "--tls"],
    );
    assert_eq!(addrs.len(), 5, "{}", log.lock().unwrap());
    let out_dir = env.root().join("client-config-deepops");
    let keyring = env.root().join("keyrings/ferry-site.asc");
    let mut flags = client_flags(&config, &held, &keyring, &out_dir.join("ca.pem"));
    flags.extend(["--preset".into(), "deepops".into()]);
    let out = write_client_config(&env, "https://127.0.0.1", "deepops", &flags);
    assert_eq!(out, out_dir);

    pull_images(&env, &out, "127.0.0.1:5000", &held);
    let repo = std::fs::read_to_string(out.join("yum/ferry.repo")).unwrap();
    assert!(
        repo.contains("baseurl=https://127.0.0.1:8001/cuda/"),
        "{repo}"
    );
    assert!(repo.lines().any(|l| l == "repo_gpgcheck=1"), "{repo}");
    dnf_install(&env, &out, &held);
    pip_install(&env, &out, &held);
    helm_pull(&out, &held);
    let ca = out.join("ca.pem");
    for files in held.files.values() {
        for (file, bytes) in files {
            let got = curl(&[
                "--cacert",
                ca.to_str().unwrap(),
                &format!("https://127.0.0.1:8004/{file}"),
            ]);
            assert_eq!(&got, bytes, "{file}");
        }
    }

    let mut documented = vec!["--preset".to_string(), "deepops".into()];
    for up in upstreams(&config) {
        documented.extend(["--upstream".into(), up]);
    }
    for source in held.rpm_keys.keys() {
        documented.extend([
            "--gpgkey".into(),
            format!("{source}=file:///etc/pki/rpm-gpg/{source}.asc"),
        ]);
    }
    check_kept_config(&env, "deepops", "https://mirror.example", &documented);
}
