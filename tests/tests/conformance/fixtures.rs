//! One upstream repository per source type, built with the ecosystem's own
//! tools, each with a large artifact the export must download. To add a
//! source type: write a builder here returning a [`Fixture`], and add one
//! `conformance!` line in `main.rs`.

use ferry_e2e::{gpg_key, have_tools, random_bytes, rpmbuild, sh_text};
use std::path::{Path, PathBuf};
use std::process::Command;

/// An upstream to serve and the `[[source]]` table that mirrors it.
pub struct Fixture {
    /// The directory to serve.
    pub root: PathBuf,
    /// The source's table (after `name` and `type`) for the upstream URL.
    pub table: Box<dyn Fn(&str) -> String>,
    /// The `type`.
    pub kind: &'static str,
    /// The served path of a large artifact the export downloads.
    pub artifact: String,
}

fn sha256(bytes: &[u8]) -> String {
    ferry_protocol::id::Sha256::of(bytes).to_hex()
}

/// `files`: one URL with its SHA-256.
pub fn files(dir: &Path, _test: &str) -> Option<Fixture> {
    let root = dir.join("files-upstream");
    std::fs::create_dir_all(root.join("dl")).unwrap();
    let data = random_bytes(400_000, 41);
    std::fs::write(root.join("dl/big.bin"), &data).unwrap();
    let sha = sha256(&data);
    Some(Fixture {
        root,
        table: Box::new(move |url| {
            format!("urls = [{{ url = \"{url}/dl/big.bin\", sha256 = \"{sha}\" }}]\n")
        }),
        kind: "files",
        artifact: "dl/big.bin".into(),
    })
}

/// `helm`: one chart (a gzip'd tar) and an `index.yaml` with its digest.
pub fn helm(dir: &Path, test: &str) -> Option<Fixture> {
    if !have_tools(test, &["tar"]) {
        return None;
    }
    let root = dir.join("helm-upstream");
    let src = dir.join("helm-src/web");
    std::fs::create_dir_all(src.join("templates")).unwrap();
    std::fs::create_dir_all(root.join("pkgs")).unwrap();
    std::fs::write(
        src.join("Chart.yaml"),
        "apiVersion: v2\nname: web\nversion: 1.0.0\n",
    )
    .unwrap();
    std::fs::write(src.join("templates/blob.txt"), random_bytes(300_000, 42)).unwrap();
    let tgz = root.join("pkgs/web-1.0.0.tgz");
    sh_text(
        Command::new("tar")
            .args(["--sort=name", "--mtime=@0", "-czf"])
            .arg(&tgz)
            .arg("-C")
            .arg(src.parent().unwrap())
            .arg("web"),
    );
    let digest = sha256(&std::fs::read(&tgz).unwrap());
    std::fs::write(
        root.join("index.yaml"),
        format!(
            "apiVersion: v1\nentries:\n  web:\n  - apiVersion: v2\n    name: web\n    version: 1.0.0\n    digest: {digest}\n    urls:\n    - pkgs/web-1.0.0.tgz\n"
        ),
    )
    .unwrap();
    Some(Fixture {
        root,
        table: Box::new(|url| format!("url = \"{url}\"\n")),
        kind: "helm",
        artifact: "pkgs/web-1.0.0.tgz".into(),
    })
}

/// `yum`: one noarch package built with rpmbuild, in a repository made
/// with createrepo_c.
pub fn yum(dir: &Path, test: &str) -> Option<Fixture> {
    if !have_tools(test, &["rpmbuild", "createrepo_c"]) {
        return None;
    }
    let root = dir.join("yum-upstream");
    let work = dir.join("yum-work");
    std::fs::create_dir_all(&work).unwrap();
    let data = work.join("big.data");
    std::fs::write(&data, random_bytes(300_000, 43)).unwrap();
    let spec = work.join("big.spec");
    std::fs::write(
        &spec,
        format!(
            "Name: big\nVersion: 1.0\nRelease: 1\nSummary: test\nLicense: MIT\nBuildArch: noarch\n\
             %description\ntest\n%install\nmkdir -p %{{buildroot}}/usr/share/big\n\
             cp {} %{{buildroot}}/usr/share/big/data\n%files\n/usr/share/big/data\n",
            data.display()
        ),
    )
    .unwrap();
    rpmbuild(&work, &root.join("Packages"), &spec, "w1.gzdio");
    sh_text(Command::new("createrepo_c").arg("--quiet").arg(&root));
    Some(Fixture {
        root,
        table: Box::new(|url| format!("baseurl = \"{url}\"\n")),
        kind: "yum",
        artifact: "Packages/noarch/big-1.0-1.noarch.rpm".into(),
    })
}

/// `apt`: one package built with dpkg-deb, in a repository made with
/// reprepro and signed with a throwaway gpg key.
pub fn apt(dir: &Path, test: &str) -> Option<Fixture> {
    if !have_tools(test, &["gpg", "reprepro", "dpkg-deb"]) {
        return None;
    }
    let work = dir.join("apt-work");
    let (home, fpr, keyring) = gpg_key(&work, "upstream");
    let pkg = work.join("pkg");
    std::fs::create_dir_all(pkg.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(pkg.join("usr/share/big")).unwrap();
    std::fs::write(
        pkg.join("DEBIAN/control"),
        "Package: big\nVersion: 1.0\nArchitecture: all\nMaintainer: T <t@example.org>\nSection: misc\nPriority: optional\nDescription: test\n",
    )
    .unwrap();
    std::fs::write(pkg.join("usr/share/big/data"), random_bytes(300_000, 44)).unwrap();
    let deb = work.join("big_1.0_all.deb");
    sh_text(
        Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zgzip", "-z1", "--build"])
            .arg(&pkg)
            .arg(&deb),
    );
    let root = dir.join("apt-upstream");
    std::fs::create_dir_all(root.join("conf")).unwrap();
    std::fs::write(
        root.join("conf/distributions"),
        format!(
            "Codename: stable\nSuite: stable\nArchitectures: amd64\nComponents: main\nSignWith: {fpr}\n"
        ),
    )
    .unwrap();
    sh_text(
        Command::new("reprepro")
            .env("GNUPGHOME", &home)
            .arg("--silent")
            .arg("-b")
            .arg(&root)
            .args(["includedeb", "stable", deb.to_str().unwrap()]),
    );
    Some(Fixture {
        root,
        table: Box::new(move |url| {
            format!(
                "url = \"{url}\"\nsuites = [\"stable\"]\ncomponents = [\"main\"]\narchitectures = [\"amd64\"]\nkeyring = \"{}\"\n",
                keyring.display()
            )
        }),
        kind: "apt",
        artifact: "pool/main/b/big/big_1.0_all.deb".into(),
    })
}

/// `pypi`: a PEP 503 simple index with one wheel and its SHA-256.
pub fn pypi(dir: &Path, _test: &str) -> Option<Fixture> {
    let root = dir.join("pypi-upstream");
    std::fs::create_dir_all(root.join("simple/big")).unwrap();
    std::fs::create_dir_all(root.join("packages")).unwrap();
    let wheel = "big-1.0-py3-none-any.whl";
    let data = random_bytes(300_000, 45);
    std::fs::write(root.join("packages").join(wheel), &data).unwrap();
    std::fs::write(
        root.join("simple/big/index.html"),
        format!(
            "<!DOCTYPE html><html><body>\n<a href=\"../../packages/{wheel}#sha256={}\">{wheel}</a>\n</body></html>\n",
            sha256(&data)
        ),
    )
    .unwrap();
    Some(Fixture {
        root,
        table: Box::new(|url| {
            format!(
                "index = \"{url}/simple/\"\nrequirements = [\"big\"]\npython = [\"3.11\"]\ndependencies = false\n"
            )
        }),
        kind: "pypi",
        artifact: format!("packages/{wheel}"),
    })
}

/// `oci`: a registry laid out as files under `v2/`: one image manifest
/// (by tag), its config and one large layer (by digest).
pub fn oci(dir: &Path, _test: &str) -> Option<Fixture> {
    let root = dir.join("oci-upstream");
    let repo = root.join("v2/library/big");
    std::fs::create_dir_all(repo.join("manifests")).unwrap();
    std::fs::create_dir_all(repo.join("blobs")).unwrap();
    let layer = random_bytes(400_000, 46);
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let blob = |bytes: &[u8]| {
        let digest = format!("sha256:{}", sha256(bytes));
        std::fs::write(repo.join("blobs").join(&digest), bytes).unwrap();
        digest
    };
    let (layer_digest, config_digest) = (blob(&layer), blob(config));
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer_digest}","size":{}}}]}}"#,
        config.len(),
        layer.len()
    );
    std::fs::write(repo.join("manifests/v1"), manifest).unwrap();
    Some(Fixture {
        root,
        table: Box::new(|url| format!("registry = \"{url}\"\nimages = [\"library/big:v1\"]\n")),
        kind: "oci",
        artifact: format!("v2/library/big/blobs/{layer_digest}"),
    })
}

/// `cargo`: a sparse registry (`config.json` with a relative `dl`, one
/// index file) holding one crate file and its index line with its `cksum`.
pub fn cargo(dir: &Path, _test: &str) -> Option<Fixture> {
    let root = dir.join("cargo-upstream");
    let data = random_bytes(300_000, 47);
    let file = dir.join("big-1.0.0.crate");
    std::fs::write(&file, &data).unwrap();
    let line = format!(
        r#"{{"name":"big","vers":"1.0.0","deps":[],"cksum":"{}","features":{{}},"yanked":false}}"#,
        sha256(&data)
    );
    let krate = ferry_e2e::LocalCrate {
        name: "big".into(),
        version: "1.0.0".into(),
        file,
        line,
    };
    ferry_e2e::cargo_registry(&root, &[&krate], None);
    Some(Fixture {
        root,
        table: Box::new(|url| format!("index = \"{url}/\"\ncrates = {{ big = \"1\" }}\n")),
        kind: "cargo",
        artifact: "crates/big/big-1.0.0.crate".into(),
    })
}

/// `npm`: a registry of one packument (at `/big`) whose version's
/// `dist.tarball` is relative to the registry and whose `integrity` is the
/// tarball's SHA-512.
pub fn npm(dir: &Path, test: &str) -> Option<Fixture> {
    if !have_tools(test, &["python3"]) {
        return None;
    }
    let root = dir.join("npm-upstream");
    std::fs::create_dir_all(root.join("tarballs/big/-")).unwrap();
    let tgz = root.join("tarballs/big/-/big-1.0.0.tgz");
    std::fs::write(&tgz, random_bytes(300_000, 48)).unwrap();
    let integrity = sh_text(
        Command::new("python3")
            .arg("-c")
            .arg("import base64,hashlib,sys; print(base64.b64encode(hashlib.sha512(open(sys.argv[1],'rb').read()).digest()).decode())")
            .arg(&tgz),
    );
    std::fs::write(
        root.join("big"),
        format!(
            r#"{{"name":"big","dist-tags":{{"latest":"1.0.0"}},"versions":{{"1.0.0":{{"name":"big","version":"1.0.0","dist":{{"tarball":"tarballs/big/-/big-1.0.0.tgz","integrity":"sha512-{}"}}}}}}}}"#,
            integrity.trim()
        ),
    )
    .unwrap();
    Some(Fixture {
        root,
        table: Box::new(|url| format!("registry = \"{url}/\"\npackages = {{ big = \"1\" }}\n")),
        kind: "npm",
        artifact: "tarballs/big/-/big-1.0.0.tgz".into(),
    })
}

/// Lays out a GOPROXY tree of one module version whose zip holds a large
/// file, and writes the `go.sum` of it (`dirhash` Hash1, as the go command
/// computes it).
const GO_PROXY_PY: &str = r#"
import base64, hashlib, os, sys, zipfile
root, gosum, data = sys.argv[1], sys.argv[2], open(sys.argv[3], "rb").read()
mod, ver = "example.com/big", "v1.0.0"
d = os.path.join(root, mod, "@v")
os.makedirs(d, exist_ok=True)
gomod = b"module example.com/big\n\ngo 1.19\n"
files = {f"{mod}@{ver}/go.mod": gomod, f"{mod}@{ver}/big.go": b"package big\n", f"{mod}@{ver}/blob.bin": data}
with zipfile.ZipFile(os.path.join(d, ver + ".zip"), "w", zipfile.ZIP_DEFLATED) as z:
    for n, b in files.items():
        z.writestr(n, b)
def h1(fs):
    s = "".join(f"{hashlib.sha256(b).hexdigest()}  {n}\n" for n, b in sorted(fs.items()))
    return "h1:" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()
open(os.path.join(d, ver + ".mod"), "wb").write(gomod)
open(os.path.join(d, ver + ".info"), "w").write('{"Version":"v1.0.0"}\n')
open(os.path.join(d, "list"), "w").write("v1.0.0\n")
open(gosum, "w").write(f"{mod} {ver} {h1(files)}\n{mod} {ver}/go.mod {h1({'go.mod': gomod})}\n")
"#;

/// `go`: a GOPROXY tree of one module whose zip holds a large random file,
/// checked against a `go.sum` (no checksum database).
pub fn go(dir: &Path, test: &str) -> Option<Fixture> {
    if !have_tools(test, &["python3"]) {
        return None;
    }
    let root = dir.join("go-upstream");
    let blob = dir.join("go-blob.bin");
    std::fs::write(&blob, random_bytes(300_000, 49)).unwrap();
    let gosum = dir.join("go.sum");
    sh_text(
        Command::new("python3")
            .arg("-c")
            .arg(GO_PROXY_PY)
            .arg(&root)
            .arg(&gosum)
            .arg(&blob),
    );
    let gosum = gosum.display().to_string();
    Some(Fixture {
        root,
        table: Box::new(move |url| {
            format!("proxy = \"{url}/\"\nsumdb = \"off\"\ngosum = [\"{gosum}\"]\n")
        }),
        kind: "go",
        artifact: "example.com/big/@v/v1.0.0.zip".into(),
    })
}
