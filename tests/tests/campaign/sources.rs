//! Real bundles of every source type for the campaigns: for each type an
//! upstream built with the real tools (`dpkg-deb` + `reprepro` + `gpg` for
//! apt, `rpmbuild` + `createrepo_c` for yum, `tar` for helm charts, Python's
//! `zipfile` for wheels, `docker-registry` + `skopeo` for OCI, a sparse
//! registry of crate files for cargo, packuments over random tarballs for
//! npm), `ferry-out` exports bundle 1, the upstream changes (about 1.5 MB of new, incompressible
//! bytes, so bundle 2 spans two or more 1 MiB volumes), `ferry-out` exports
//! bundle 2, and `ferry-in` applies bundle 1.

use ferry_e2e::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Bytes of new data in bundle 2: more than one 1 MiB volume.
const V2_PAYLOAD: usize = 1_500_000;

/// One source type's two real bundles, bundle 1 applied inside.
pub struct Built {
    /// The source type (`files`, `apt`, ...).
    pub kind: &'static str,
    /// The outside and inside states (bundle 1 applied).
    pub env: Env,
    /// Bundle 1's directory.
    pub b1: PathBuf,
    /// Bundle 2's directory (two or more volumes).
    pub b2: PathBuf,
    /// Upstream servers, kept running while the bundles are used.
    pub _servers: Vec<KillOnDrop>,
}

/// The tools every source type needs; a missing one is reported by
/// [`have_tools`] (the caller decides whether that is a failure).
pub const TOOLS: &[&str] = &[
    "gpg",
    "reprepro",
    "dpkg-deb",
    "rpmbuild",
    "createrepo_c",
    "tar",
    "python3",
    "docker-registry",
    "skopeo",
];

/// Exports into `media` with 1 MiB volumes; returns the bundle directory.
fn export(env: &Env, media: &str) -> PathBuf {
    env.export_with(media, &["--volume-size", "1M"]).expect_ok();
    env.only_bundle(media)
}

/// Exports bundle 1, runs `update`, exports bundle 2, imports bundle 1.
fn finish(
    kind: &'static str,
    env: Env,
    servers: Vec<KillOnDrop>,
    update: impl FnOnce(&Env),
) -> Built {
    let b1 = export(&env, "m1");
    update(&env);
    let b2 = export(&env, "m2");
    assert!(
        b2.join(ferry_protocol::volume::file_name(1)).is_file(),
        "{kind}: bundle 2 should span two volumes"
    );
    env.import("m1").expect_ok();
    assert_eq!(env.applied_sequence(), 1, "{kind}: bundle 1 applied");
    Built {
        kind,
        env,
        b1,
        b2,
        _servers: servers,
    }
}

/// Every source type's bundles.
pub fn all() -> Vec<Built> {
    vec![files(), apt(), yum(), helm(), pypi(), oci(), cargo(), npm()]
}

/// A `files` source over a local tree.
pub fn files() -> Built {
    let env = Env::new();
    env.write_src("docs/readme.txt", &text_bytes(60_000, 1));
    env.write_src("bin/tool", &random_bytes(150_000, 2));
    env.write_src("a.txt", b"alpha\n");
    finish("files", env, vec![], |env| {
        env.write_src("a.txt", b"alpha 2\n");
        env.write_src("big/blob.bin", &random_bytes(V2_PAYLOAD, 3));
    })
}

/// Builds a real `.deb` of `name` `version` with `payload` random bytes.
fn deb(dir: &Path, name: &str, version: &str, payload: usize, seed: u64) -> PathBuf {
    let root = dir.join(format!("build-{name}-{version}"));
    std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
    std::fs::write(
        root.join("DEBIAN/control"),
        format!(
            "Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: Ferry <t@example.org>\nSection: misc\nPriority: optional\nDescription: campaign package\n"
        ),
    )
    .unwrap();
    let data = root.join(format!("usr/share/{name}/data.bin"));
    std::fs::create_dir_all(data.parent().unwrap()).unwrap();
    std::fs::write(&data, random_bytes(payload, seed)).unwrap();
    let out = dir.join(format!("{name}_{version}_all.deb"));
    sh(Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zgzip", "-z1", "--build"])
        .arg(&root)
        .arg(&out));
    out
}

/// An apt repository made with `reprepro`, signed with a throwaway key.
pub fn apt() -> Built {
    let env = Env::new();
    let work = env.root().join("apt");
    let repo = work.join("repo");
    std::fs::create_dir_all(repo.join("conf")).unwrap();
    let (home, fpr, key) = gpg_key(&work, "upstream");
    std::fs::write(
        repo.join("conf/distributions"),
        format!("Codename: stable\nSuite: stable\nArchitectures: amd64\nComponents: main\nSignWith: {fpr}\n"),
    )
    .unwrap();
    let include = move |deb: &Path| {
        sh(Command::new("reprepro")
            .env("GNUPGHOME", &home)
            .arg("--silent")
            .arg("-b")
            .arg(&repo)
            .args(["includedeb", "stable"])
            .arg(deb));
    };
    include(&deb(&work, "base", "1.0", 100_000, 1));
    let up = http_upstream(&work.join("repo"));
    std::fs::write(
        &env.config,
        format!(
            "[[source]]\nname = \"deb\"\ntype = \"apt\"\nurl = \"{}\"\nsuites = [\"stable\"]\ncomponents = [\"main\"]\narchitectures = [\"amd64\"]\nkeyring = \"{}\"\n",
            up.url,
            key.display()
        ),
    )
    .unwrap();
    finish("apt", env, vec![up.process], |_| {
        include(&deb(&work, "big", "1.0", V2_PAYLOAD, 2));
    })
}

/// Builds a noarch rpm of `name` with `payload` random bytes into `repo/Packages`.
fn rpm(work: &Path, repo: &Path, name: &str, payload: usize, seed: u64) {
    let data = work.join(format!("{name}.data"));
    std::fs::write(&data, random_bytes(payload, seed)).unwrap();
    let spec = work.join(format!("{name}.spec"));
    std::fs::write(
        &spec,
        format!(
            "Name: {name}\nVersion: 1.0\nRelease: 1\nSummary: campaign\nLicense: MIT\nBuildArch: noarch\n%description\ncampaign\n%install\nmkdir -p %{{buildroot}}/usr/share/{name}\ncp {} %{{buildroot}}/usr/share/{name}/data\n%files\n/usr/share/{name}/data\n",
            data.display()
        ),
    )
    .unwrap();
    rpmbuild(work, &repo.join("Packages"), &spec, "w1.gzdio");
    sh(Command::new("createrepo_c")
        .args(["--update", "--quiet"])
        .arg(repo));
}

/// A yum repository made with `rpmbuild` and `createrepo_c`.
pub fn yum() -> Built {
    let env = Env::new();
    let work = env.root().join("yum-work");
    let repo = env.root().join("yum-repo");
    std::fs::create_dir_all(repo.join("Packages")).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    rpm(&work, &repo, "base", 100_000, 11);
    let up = http_upstream(&repo);
    std::fs::write(
        &env.config,
        format!(
            "[[source]]\nname = \"el\"\ntype = \"yum\"\nbaseurl = \"{}/\"\n",
            up.url
        ),
    )
    .unwrap();
    finish("yum", env, vec![up.process], |_| {
        rpm(&work, &repo, "big", V2_PAYLOAD, 12)
    })
}

/// Packages a chart (`tar -cz` of `<name>/Chart.yaml`, `templates/…`) into
/// `up/<name>-<version>.tgz` and rewrites `up/index.yaml` over `charts`.
fn chart(work: &Path, up: &Path, name: &str, payload: usize, charts: &[&str]) {
    let c = work.join(name).join(name);
    std::fs::create_dir_all(c.join("templates")).unwrap();
    std::fs::write(
        c.join("Chart.yaml"),
        format!("apiVersion: v2\nname: {name}\nversion: 1.0.0\n"),
    )
    .unwrap();
    std::fs::write(
        c.join("templates/blob.txt"),
        random_bytes(payload, name.len() as u64),
    )
    .unwrap();
    sh(Command::new("tar")
        .args([
            "--sort=name",
            "--mtime=@0",
            "--owner=0",
            "--group=0",
            "-czf",
        ])
        .arg(up.join(format!("{name}-1.0.0.tgz")))
        .arg("-C")
        .arg(work.join(name))
        .arg(name));
    let mut index = String::from("apiVersion: v1\nentries:\n");
    for n in charts {
        let tgz = std::fs::read(up.join(format!("{n}-1.0.0.tgz"))).unwrap();
        let digest = ferry_protocol::id::Sha256::of(&tgz).to_hex();
        index += &format!(
            "  {n}:\n  - apiVersion: v2\n    name: {n}\n    version: 1.0.0\n    digest: {digest}\n    created: \"2024-05-01T10:00:00Z\"\n    urls:\n    - {n}-1.0.0.tgz\n"
        );
    }
    index += "generated: \"2024-05-01T10:00:00Z\"\n";
    std::fs::write(up.join("index.yaml"), index).unwrap();
}

/// A Helm chart repository (charts made with `tar`, `index.yaml` written here).
pub fn helm() -> Built {
    let env = Env::new();
    let work = env.root().join("helm-work");
    let up = env.root().join("helm-up");
    std::fs::create_dir_all(&up).unwrap();
    chart(&work, &up, "base", 50_000, &["base"]);
    let server = http_upstream(&up);
    std::fs::write(
        &env.config,
        format!(
            "[[source]]\nname = \"charts\"\ntype = \"helm\"\nurl = \"{}\"\n",
            server.url
        ),
    )
    .unwrap();
    finish("helm", env, vec![server.process], |_| {
        chart(&work, &up, "big", V2_PAYLOAD, &["base", "big"])
    })
}

/// Writes a pure-Python wheel `name-version-py3-none-any.whl` (METADATA,
/// WHEEL, RECORD and a random data file) with Python's `zipfile`, and the
/// PEP 503 pages of `simple/` over every wheel in `packages/`.
const PYPI_PY: &str = r#"
import base64, hashlib, os, random, sys, zipfile
root, name, version, payload = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
pkgs = os.path.join(root, "packages"); os.makedirs(pkgs, exist_ok=True)
whl = os.path.join(pkgs, f"{name}-{version}-py3-none-any.whl")
di = f"{name}-{version}.dist-info"
files = {
    f"{name}/__init__.py": b"",
    f"{name}/data.bin": random.Random(version).randbytes(payload),
    f"{di}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
    f"{di}/WHEEL": b"Wheel-Version: 1.0\nGenerator: campaign\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
def h(d): return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b"=").decode()
record = "".join(f"{p},{h(d)},{len(d)}\n" for p, d in files.items()) + f"{di}/RECORD,,\n"
files[f"{di}/RECORD"] = record.encode()
with zipfile.ZipFile(whl, "w") as z:
    for p, d in files.items(): z.writestr(p, d)
proj = os.path.join(root, "simple", name); os.makedirs(proj, exist_ok=True)
links = ""
for f in sorted(os.listdir(pkgs)):
    if f.startswith(name + "-"):
        d = hashlib.sha256(open(os.path.join(pkgs, f), "rb").read()).hexdigest()
        links += f'<a href="../../packages/{f}#sha256={d}">{f}</a>\n'
open(os.path.join(proj, "index.html"), "w").write(f"<html><body>\n{links}</body></html>\n")
"#;

/// Adds a wheel to the PyPI upstream at `root`.
fn wheel(root: &Path, name: &str, version: &str, payload: usize) {
    sh(Command::new("python3")
        .arg("-c")
        .arg(PYPI_PY)
        .arg(root)
        .args([name, version, &payload.to_string()]));
}

/// A PyPI simple index (PEP 503 pages over wheels written here).
pub fn pypi() -> Built {
    let env = Env::new();
    let up = env.root().join("pypi-up");
    wheel(&up, "alpha", "1.0", 50_000);
    let server = http_upstream(&up);
    std::fs::write(
        &env.config,
        format!(
            "[[source]]\nname = \"web\"\ntype = \"pypi\"\nindex = \"{}/simple/\"\nrequirements = [\"alpha\"]\npython = [\"3.11\"]\nplatforms = [\"manylinux_2_17_x86_64\"]\n",
            server.url
        ),
    )
    .unwrap();
    finish("pypi", env, vec![server.process], |_| {
        wheel(&up, "alpha", "2.0", V2_PAYLOAD)
    })
}

/// A crate file of `payload` random bytes and its index line.
fn krate(work: &Path, name: &str, version: &str, payload: usize, seed: u64) -> LocalCrate {
    let data = random_bytes(payload, seed);
    let file = work.join(format!("{name}-{version}.crate"));
    std::fs::write(&file, &data).unwrap();
    LocalCrate {
        name: name.into(),
        version: version.into(),
        file,
        line: format!(
            r#"{{"name":"{name}","vers":"{version}","deps":[],"cksum":"{}","features":{{}},"yanked":false}}"#,
            ferry_protocol::id::Sha256::of(&data)
        ),
    }
}

/// A sparse crate registry (`config.json`, index files, crate files).
pub fn cargo() -> Built {
    let env = Env::new();
    let work = env.root().join("cargo-work");
    let up = env.root().join("cargo-up");
    std::fs::create_dir_all(&work).unwrap();
    let v1 = krate(&work, "base", "1.0.0", 50_000, 11);
    cargo_registry(&up, &[&v1], None);
    let server = http_upstream(&up);
    std::fs::write(
        &env.config,
        format!(
            "[[source]]\nname = \"crates\"\ntype = \"cargo\"\nindex = \"{}/\"\ncrates = {{ base = \"*\" }}\nversions = \"all\"\n",
            server.url
        ),
    )
    .unwrap();
    finish("cargo", env, vec![server.process], |_| {
        let v2 = krate(&work, "base", "2.0.0", V2_PAYLOAD, 12);
        cargo_registry(&up, &[&v1, &v2], None);
    })
}

/// Writes package `base` of an npm registry at `root`: a tarball of random
/// bytes per `(version, size)` and the packument with their integrity.
const NPM_PY: &str = r#"
import base64, hashlib, json, os, random, sys
root, versions = sys.argv[1], json.loads(sys.argv[2])
doc = {"name": "base", "dist-tags": {}, "versions": {}}
for v, size in versions:
    rel = f"tarballs/base/-/base-{v}.tgz"
    os.makedirs(os.path.join(root, os.path.dirname(rel)), exist_ok=True)
    data = random.Random(v).randbytes(size)
    open(os.path.join(root, rel), "wb").write(data)
    sri = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    doc["versions"][v] = {"name": "base", "version": v, "dist": {"tarball": rel, "integrity": sri}}
    doc["dist-tags"]["latest"] = v
json.dump(doc, open(os.path.join(root, "base"), "w"))
"#;

/// An npm registry (one packument over tarballs of random bytes).
pub fn npm() -> Built {
    let env = Env::new();
    let up = env.root().join("npm-up");
    let write = |versions: &str| {
        sh(Command::new("python3")
            .arg("-c")
            .arg(NPM_PY)
            .arg(&up)
            .arg(versions));
    };
    write("[[\"1.0.0\", 50000]]");
    let server = http_upstream(&up);
    std::fs::write(
        &env.config,
        format!(
            "[[source]]\nname = \"js\"\ntype = \"npm\"\nregistry = \"{}/\"\npackages = {{ base = \"*\" }}\nversions = \"all\"\n",
            server.url
        ),
    )
    .unwrap();
    finish("npm", env, vec![server.process], |_| {
        write(&format!("[[\"1.0.0\", 50000], [\"2.0.0\", {V2_PAYLOAD}]]"));
    })
}

/// Starts `docker-registry` on a free port with storage under `dir`.
fn registry(dir: &Path) -> (KillOnDrop, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = dir.join("registry.yml");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.join("storage").display()
        ),
    )
    .unwrap();
    let child = KillOnDrop(
        Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry"),
    );
    let addr = format!("127.0.0.1:{port}");
    for _ in 0..200 {
        if std::net::TcpStream::connect(&addr).is_ok() {
            return (child, addr);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("docker-registry did not listen on {addr}");
}

/// Pushes a one-layer image (a `tar` of `payload` random bytes) as
/// `reg/app:tag` with `skopeo copy` from an OCI layout.
fn image(dir: &Path, reg: &str, tag: &str, payload: usize) {
    let layout = OciLayout::new(&dir.join(format!("layout-{tag}")));
    let src = dir.join(format!("src-{tag}"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join("data.bin"),
        random_bytes(payload, tag.len() as u64),
    )
    .unwrap();
    let layer = tar_of_dir(&src);
    let manifest = layout.manifest("amd64", "{}", &[Layer::tar(&layer)]);
    layout.tag(tag, &manifest, false);
    skopeo_push(&layout.dir, tag, reg, &format!("app:{tag}"), &[]).expect_ok();
}

/// An OCI registry (`docker-registry`) with images pushed by `skopeo`.
pub fn oci() -> Built {
    let env = Env::new();
    let work = env.root().join("oci");
    let (reg_proc, reg) = registry(&work.join("registry"));
    let reg2 = reg.clone();
    image(&work, &reg, "v1", 50_000);
    let config = move |env: &Env, images: &str| {
        std::fs::write(
            &env.config,
            format!(
                "[[source]]\nname = \"hub\"\ntype = \"oci\"\nregistry = \"http://{reg}\"\nimages = [{images}]\n"
            ),
        )
        .unwrap();
    };
    config(&env, "\"app:v1\"");
    finish("oci", env, vec![reg_proc], |env| {
        image(&work, &reg2, "v2", V2_PAYLOAD);
        config(env, "\"app:v1\", \"app:v2\"");
    })
}
