//! apt repositories end to end with real components: tiny real `.deb`s made
//! with `dpkg-deb`, a repository made with `reprepro` and signed by a
//! throwaway key made with `gpg`, served by a static HTTP server as the
//! upstream; `ferry-out` exports, `ferry-in` imports and serves, and
//! `apt-get` (in a private `-o Dir=` root) updates and downloads from both
//! the byte-exact view (upstream's key) and the site-signed filtered view
//! (the site key). Skipped when a tool is missing (scripts/test.sh installs them).

use ferry_e2e::*;
use std::path::{Path, PathBuf};
use std::process::Command;

pub(crate) const TOOLS: [&str; 4] = ["gpg", "reprepro", "dpkg-deb", "apt-get"];
const DEB_PAYLOAD: usize = 150_000;

pub(crate) struct Pkg<'a> {
    pub(crate) name: &'a str,
    pub(crate) version: &'a str,
    pub(crate) arch: &'a str,
    pub(crate) extra: &'a str,
    pub(crate) seed: u64,
}

/// Builds a real .deb with a random payload; returns its path.
fn build_deb(dir: &Path, p: &Pkg<'_>) -> PathBuf {
    build_deb_sized(dir, p, DEB_PAYLOAD)
}

/// A real .deb (dpkg-deb, gzip) of `p` with `size` random bytes in
/// `usr/share/<name>/data.bin`; returns its path.
pub(crate) fn build_deb_sized(dir: &Path, p: &Pkg<'_>, size: usize) -> PathBuf {
    let root = dir.join(format!("build-{}-{}", p.name, p.version));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
    std::fs::write(
        root.join("DEBIAN/control"),
        format!(
            "Package: {}\nVersion: {}\nArchitecture: {}\nMaintainer: Ferry Test <t@example.org>\nSection: misc\nPriority: optional\n{}Description: ferry test package {}\n",
            p.name, p.version, p.arch, p.extra, p.name
        ),
    )
    .unwrap();
    let data = root.join(format!("usr/share/{}/data.bin", p.name));
    std::fs::create_dir_all(data.parent().unwrap()).unwrap();
    std::fs::write(&data, random_bytes(size, p.seed)).unwrap();
    let out = dir.join(format!("{}_{}_{}.deb", p.name, p.version, p.arch));
    sh_text(
        Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zgzip", "-z1", "--build"])
            .arg(&root)
            .arg(&out),
    );
    out
}

/// The upstream: a reprepro repository under `dir/repo`, signed with `key`.
pub(crate) struct Repo {
    pub(crate) dir: PathBuf,
    home: PathBuf,
}

impl Repo {
    fn new(dir: &Path, home: &Path, fpr: &str) -> Repo {
        let repo = dir.join("repo");
        std::fs::create_dir_all(repo.join("conf")).unwrap();
        std::fs::write(
            repo.join("conf/distributions"),
            format!(
                "Origin: FerryTest\nLabel: FerryTest\nCodename: stable\nSuite: stable\nArchitectures: amd64\nComponents: main\nSignWith: {fpr}\n"
            ),
        )
        .unwrap();
        Repo {
            dir: repo,
            home: home.to_path_buf(),
        }
    }
    fn reprepro(&self, args: &[&str]) {
        sh_text(
            Command::new("reprepro")
                .env("GNUPGHOME", &self.home)
                .arg("--silent")
                .arg("-b")
                .arg(&self.dir)
                .args(args),
        );
    }
    pub(crate) fn include(&self, deb: &Path) {
        self.reprepro(&["includedeb", "stable", deb.to_str().unwrap()]);
    }
}

/// The first packages: `app` needs libpre (Pre-Depends), libbase and the
/// virtual `virt-thing` (provided by `provider`), recommends `extra`;
/// `unrelated` is not needed; `pinned-tool` is pinned.
fn first_packages() -> Vec<Pkg<'static>> {
    vec![
        Pkg {
            name: "app",
            version: "1.0",
            arch: "amd64",
            extra:
                "Pre-Depends: libpre\nDepends: libbase (>= 1.0), virt-thing\nRecommends: extra\n",
            seed: 1,
        },
        Pkg {
            name: "libpre",
            version: "1.0",
            arch: "amd64",
            extra: "",
            seed: 2,
        },
        Pkg {
            name: "libbase",
            version: "1.0",
            arch: "all",
            extra: "",
            seed: 3,
        },
        Pkg {
            name: "provider",
            version: "1.0",
            arch: "all",
            extra: "Provides: virt-thing\n",
            seed: 4,
        },
        Pkg {
            name: "extra",
            version: "1.0",
            arch: "all",
            extra: "",
            seed: 5,
        },
        Pkg {
            name: "unrelated",
            version: "1.0",
            arch: "amd64",
            extra: "",
            seed: 6,
        },
        Pkg {
            name: "pinned-tool",
            version: "1.0",
            arch: "all",
            extra: "",
            seed: 7,
        },
    ]
}

pub(crate) struct Fixture {
    pub(crate) env: Env,
    pub(crate) work: PathBuf,
    pub(crate) repo: Repo,
    pub(crate) upstream: Upstream,
    pub(crate) upstream_key: PathBuf,
    pub(crate) debs: std::collections::BTreeMap<String, PathBuf>,
}

pub(crate) fn fixture(packages: &str, pin: &str) -> Fixture {
    let env = Env::new();
    let work = env.root().join("apt");
    std::fs::create_dir_all(&work).unwrap();
    let (home, fpr, upstream_key) = gpg_key(&work, "upstream");
    let repo = Repo::new(&work, &home, &fpr);
    let mut debs = std::collections::BTreeMap::new();
    for p in first_packages() {
        let deb = build_deb(&work, &p);
        repo.include(&deb);
        debs.insert(p.name.to_string(), deb);
    }
    let upstream = http_upstream(&repo.dir);
    std::fs::write(
        &env.config,
        format!(
            "[[source]]\nname = \"deb\"\ntype = \"apt\"\nurl = \"{}\"\nsuites = [\"stable\"]\ncomponents = [\"main\"]\narchitectures = [\"amd64\"]\npackages = {packages}\npin = {pin}\nkeyring = \"{}\"\n",
            upstream.url,
            upstream_key.display()
        ),
    )
    .unwrap();
    Fixture {
        env,
        work,
        repo,
        upstream,
        upstream_key,
        debs,
    }
}

/// A private apt root pointing at `url` with `key`.
pub(crate) struct Apt {
    pub(crate) root: PathBuf,
}

impl Apt {
    pub(crate) fn new(dir: &Path, url: &str, key: &Path) -> Apt {
        let apt = Apt::bare(dir);
        std::fs::write(
            apt.root.join("etc/apt/sources.list"),
            format!("deb [signed-by={}] {url} stable main\n", key.display()),
        )
        .unwrap();
        apt
    }
    /// A root whose only source is `sources`, a deb822 `.sources` file.
    pub(crate) fn with_sources(dir: &Path, sources: &str) -> Apt {
        let apt = Apt::bare(dir);
        std::fs::write(
            apt.root.join("etc/apt/sources.list.d/ferry.sources"),
            sources,
        )
        .unwrap();
        apt
    }
    /// A root with no source.
    fn bare(dir: &Path) -> Apt {
        let root = dir.to_path_buf();
        let _ = std::fs::remove_dir_all(&root);
        for d in [
            "etc/apt/sources.list.d",
            "etc/apt/apt.conf.d",
            "etc/apt/preferences.d",
            "etc/apt/trusted.gpg.d",
            "var/lib/apt/lists/partial",
            "var/cache/apt/archives/partial",
            "var/lib/dpkg",
            "dl",
        ] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
        std::fs::write(
            root.join("apt.conf"),
            format!("Dir \"{}/\";\n", root.display()),
        )
        .unwrap();
        Apt { root }
    }
    pub(crate) fn run(&self, args: &[&str]) -> Run {
        let r = |s: &str| format!("{s}={}", self.root.display());
        let o = Command::new("apt-get")
            .current_dir(self.root.join("dl"))
            // Read first, so the host's apt.conf.d (DEP-11, say) stays out.
            .env("APT_CONFIG", self.root.join("apt.conf"))
            .args(["-q", "-o", &r("Dir"), "-o"])
            .arg(format!(
                "Dir::State::status={}/var/lib/dpkg/status",
                self.root.display()
            ))
            .args([
                "-o",
                "Debug::NoLocking=1",
                "-o",
                "APT::Sandbox::User=root",
                "-o",
                "APT::Architecture=amd64",
                "-o",
                "APT::Architectures::=amd64",
            ])
            .args(args)
            .output()
            .expect("run apt-get");
        let run = Run {
            ok: o.status.success(),
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        };
        // apt-get update exits 0 on some fetch failures; its "W:"/"E:" lines tell.
        run
    }
    pub(crate) fn update(&self) {
        let r = self.run(&["update"]);
        assert!(r.ok, "apt-get update failed:\n{}", r.all());
        assert!(
            !r.all().contains("\nW:") && !r.all().contains("\nE:") && !r.all().starts_with("W:"),
            "apt-get update warned:\n{}",
            r.all()
        );
    }
    pub(crate) fn download(&self, pkg: &str) -> Run {
        self.run(&["download", pkg])
    }
    pub(crate) fn downloaded(&self, file: &str) -> Vec<u8> {
        std::fs::read(self.root.join("dl").join(file)).unwrap()
    }
}

fn pool_debs(env: &Env) -> Vec<String> {
    let mut out = Vec::new();
    let root = env.export_tree().join("apt/deb/pool");
    for e in walkdir(&root) {
        out.push(e.file_name().unwrap().to_string_lossy().into_owned());
    }
    out.sort();
    out
}

fn walkdir(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walkdir(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn media_is_empty(env: &Env, media: &str) -> bool {
    std::fs::read_dir(env.root().join(media))
        .map(|mut d| d.next().is_none())
        .unwrap_or(true)
}

/// A deb of `version` whose payload is 1 MB of text made of words (so xz
/// compresses it as it does real files), with `edits` lines changed; built
/// by dpkg-deb with its default compression (xz, multi-threaded).
fn build_text_deb(dir: &Path, version: &str, edits: &[usize]) -> PathBuf {
    const WORDS: [&str; 16] = [
        "ferry", "bundle", "chunk", "inside", "outside", "diode", "mirror", "release", "package",
        "signed", "delta", "stream", "recipe", "patch", "store", "serve",
    ];
    let bytes = random_bytes(200_000, 5);
    let mut text = String::new();
    for (i, line) in bytes.chunks(8).enumerate() {
        if edits.contains(&i) {
            text.push_str(&format!("line {i} was edited in release {version}\n"));
            continue;
        }
        let words: Vec<&str> = line.iter().map(|b| WORDS[(b & 15) as usize]).collect();
        text.push_str(&format!("{i}: {}\n", words.join(" ")));
    }
    let root = dir.join(format!("build-editor-{version}"));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
    std::fs::write(
        root.join("DEBIAN/control"),
        format!(
            "Package: editor\nVersion: {version}\nArchitecture: all\nMaintainer: Ferry Test <t@example.org>\nSection: doc\nPriority: optional\nDescription: a text-heavy package\n"
        ),
    )
    .unwrap();
    let doc = root.join("usr/share/doc/editor/manual.txt");
    std::fs::create_dir_all(doc.parent().unwrap()).unwrap();
    std::fs::write(&doc, text).unwrap();
    let out = dir.join(format!("editor_{version}_all.deb"));
    sh_text(
        Command::new("dpkg-deb")
            .args(["--root-owner-group", "--build"])
            .arg(&root)
            .arg(&out),
    );
    out
}

#[test]
fn apt_update_ships_a_patched_deb_that_apt_get_downloads_byte_for_byte() {
    if !have_tools(
        "apt_update_ships_a_patched_deb_that_apt_get_downloads_byte_for_byte",
        &TOOLS,
    ) {
        return;
    }
    let fx = fixture("[\"editor\"]", "[]");
    let env = &fx.env;
    // The high setting: xz streams are reproduced, so a deb travels as a
    // patch of its decompressed content against the release the inside has.
    let config = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        format!("[export]\ndelta = \"high\"\n\n{config}"),
    )
    .unwrap();
    let v1 = build_text_deb(&fx.work, "1.0", &[]);
    fx.repo.include(&v1);
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();

    let v2 = build_text_deb(&fx.work, "1.1", &[10, 10_000, 22_000]);
    fx.repo.include(&v2);
    env.export("m2").expect_ok();
    let delta = dir_bytes(&env.only_bundle("m2"));
    let new_deb = std::fs::metadata(&v2).unwrap().len();
    eprintln!("update bundle: {delta} bytes; new deb {new_deb} bytes");
    assert!(
        delta * 10 < new_deb,
        "update bundle {delta} bytes for a {new_deb}-byte deb: not shipped as a patch"
    );
    env.import("m2").expect_ok();

    // apt-get, checking upstream's signature, gets upstream's exact bytes.
    let server = env.serve();
    let apt = Apt::new(
        &fx.work.join("apt-patched"),
        &format!("http://{}/apt/deb/", server.addr),
        &fx.upstream_key,
    );
    apt.update();
    apt.download("editor").expect_ok();
    assert_eq!(
        apt.downloaded("editor_1.1_all.deb"),
        std::fs::read(&v2).unwrap()
    );
}

#[test]
fn apt_closure_update_pin_and_both_views() {
    if !have_tools("apt_closure_update_pin_and_both_views", &TOOLS) {
        return;
    }
    let fx = fixture("[\"app\"]", "[\"pinned-tool\"]");
    let env = &fx.env;
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();

    // The closure: app, Pre-Depends libpre, Depends libbase and virt-thing's
    // provider; not the Recommends (recommends = false) nor unrelated; the
    // pinned package comes along.
    assert_eq!(
        pool_debs(env),
        vec![
            "app_1.0_amd64.deb",
            "libbase_1.0_all.deb",
            "libpre_1.0_amd64.deb",
            "pinned-tool_1.0_all.deb",
            "provider_1.0_all.deb",
        ]
    );
    // Byte for byte the upstream's release file.
    assert_eq!(
        std::fs::read(env.served_in("deb", "dists/stable/InRelease")).unwrap(),
        std::fs::read(fx.repo.dir.join("dists/stable/InRelease")).unwrap()
    );

    let server = env.serve();
    let site_key = fx.work.join("site.gpg");
    env.inn(&[
        "site-key",
        "--binary",
        "--output",
        site_key.to_str().unwrap(),
    ])
    .expect_ok();
    let armored = env.inn(&["site-key"]).expect_ok();
    assert!(armored
        .stdout
        .starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----"));

    // Byte-exact view, verified with the upstream's key.
    let exact = Apt::new(
        &fx.work.join("apt-exact"),
        &format!("http://{}/apt/deb/", server.addr),
        &fx.upstream_key,
    );
    exact.update();
    exact.download("app").expect_ok();
    assert_eq!(
        exact.downloaded("app_1.0_amd64.deb"),
        std::fs::read(&fx.debs["app"]).unwrap()
    );
    // Upstream's index lists `unrelated`, but it was not mirrored.
    assert!(!exact.download("unrelated").ok);

    // The filtered view, verified with the site key, lists only what is held.
    let site = Apt::new(
        &fx.work.join("apt-site"),
        &format!("http://{}/apt-site/deb/", server.addr),
        &site_key,
    );
    site.update();
    site.download("libpre").expect_ok();
    assert_eq!(
        site.downloaded("libpre_1.0_amd64.deb"),
        std::fs::read(&fx.debs["libpre"]).unwrap()
    );
    let r = site.download("unrelated");
    assert!(!r.ok && r.all().contains("unrelated"), "{}", r.all());
    // The filtered view is not signed by upstream's key.
    let wrong = Apt::new(
        &fx.work.join("apt-site-wrong"),
        &format!("http://{}/apt-site/deb/", server.addr),
        &fx.upstream_key,
    );
    let r = wrong.run(&["update"]);
    assert!(
        r.all().contains("NO_PUBKEY") || r.all().contains("not signed"),
        "{}",
        r.all()
    );

    // Upstream update: app 2.0, pinned-tool removed upstream.
    let app2 = build_deb(
        &fx.work,
        &Pkg {
            name: "app",
            version: "2.0",
            arch: "amd64",
            extra: "Pre-Depends: libpre\nDepends: libbase (>= 1.0), virt-thing\n",
            seed: 11,
        },
    );
    fx.repo.include(&app2);
    fx.repo.reprepro(&["remove", "stable", "pinned-tool"]);
    env.export("m2").expect_ok();
    let b2 = env.only_bundle("m2");
    let delta = dir_bytes(&b2);
    let new_deb = std::fs::metadata(&app2).unwrap().len();
    let first = dir_bytes(&env.only_bundle("m1"));
    eprintln!("bundle 1: {first} bytes; update bundle: {delta} bytes; new deb {new_deb} bytes");
    // Only the new deb and the changed indices travel.
    assert!(
        delta < new_deb + 64 * 1024,
        "delta {delta} bytes for a {new_deb}-byte deb"
    );
    assert!(first > 4 * new_deb);
    env.import("m2").expect_ok();
    assert_eq!(
        pool_debs(env),
        vec![
            "app_2.0_amd64.deb",
            "libbase_1.0_all.deb",
            "libpre_1.0_amd64.deb",
            "pinned-tool_1.0_all.deb",
            "provider_1.0_all.deb",
        ]
    );
    exact.update();
    exact.download("app").expect_ok();
    assert_eq!(
        exact.downloaded("app_2.0_amd64.deb"),
        std::fs::read(&app2).unwrap()
    );
    site.update();
    site.download("pinned-tool").expect_ok();
    assert_eq!(
        site.downloaded("pinned-tool_1.0_all.deb"),
        std::fs::read(&fx.debs["pinned-tool"]).unwrap()
    );
    site.download("app").expect_ok();
    assert_eq!(
        site.downloaded("app_2.0_amd64.deb"),
        std::fs::read(&app2).unwrap()
    );
    // Nothing changed upstream: the next export has nothing to carry.
    env.export("m3").expect_ok();
    assert!(media_is_empty(env, "m3"));
    drop(fx.upstream);
}

#[test]
fn apt_tampered_upstream_ships_nothing() {
    if !have_tools("apt_tampered_upstream_ships_nothing", &TOOLS) {
        return;
    }
    let fx = fixture("[]", "[]");
    let env = &fx.env;
    let dists = fx.repo.dir.join("dists/stable");

    // A wrong keyring.
    let (_, _, other_key) = gpg_key(&fx.work, "other");
    let good_cfg = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        good_cfg.replace(
            fx.upstream_key.to_str().unwrap(),
            other_key.to_str().unwrap(),
        ),
    )
    .unwrap();
    env.export("bad-key").expect_fail(&[
        "source \"deb\"",
        "dists/stable/InRelease",
        "BAD SIGNATURE",
    ]);
    assert!(media_is_empty(env, "bad-key"));
    std::fs::write(&env.config, &good_cfg).unwrap();

    // A bad signature: the signed text changed.
    let inrelease = std::fs::read_to_string(dists.join("InRelease")).unwrap();
    std::fs::write(
        dists.join("InRelease"),
        inrelease.replace("Origin: FerryTest", "Origin: FerryEvil"),
    )
    .unwrap();
    env.export("bad-sig").expect_fail(&[
        "source \"deb\"",
        "dists/stable/InRelease",
        "BAD SIGNATURE",
    ]);
    assert!(media_is_empty(env, "bad-sig"));
    std::fs::write(dists.join("InRelease"), &inrelease).unwrap();

    // An index that does not match the Release.
    let pk = dists.join("main/binary-amd64/Packages");
    let packages = std::fs::read_to_string(&pk).unwrap();
    std::fs::write(
        &pk,
        packages.replace("ferry test package", "ferry test pakage"),
    )
    .unwrap();
    env.export("bad-index").expect_fail(&[
        "source \"deb\"",
        "dists/stable/main/binary-amd64/Packages",
        "size mismatch",
        "expected",
    ]);
    assert!(media_is_empty(env, "bad-index"));
    std::fs::write(&pk, &packages).unwrap();

    // A deb whose bytes differ from its stanza.
    let rel = walkdir(&fx.repo.dir.join("pool"))
        .into_iter()
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("extra_")
        })
        .unwrap();
    let good = std::fs::read(&rel).unwrap();
    let mut bad = good.clone();
    let n = bad.len();
    bad[n - 10] ^= 0xff;
    std::fs::write(&rel, &bad).unwrap();
    env.export("bad-deb").expect_fail(&[
        "source \"deb\"",
        "pool/main/e/extra/extra_1.0_all.deb",
        "checksum mismatch",
        "expected",
    ]);
    assert!(media_is_empty(env, "bad-deb"));
    std::fs::write(&rel, &good).unwrap();

    // Repaired upstream: the export goes through, everything mirrored.
    env.export("good").expect_ok();
    env.import("good").expect_ok();
    assert_eq!(pool_debs(env).len(), 7);
}

/// Mirrors a few small real packages from the Debian archive this machine
/// uses (/etc/apt/sources.list*), verified with Debian's keyring. Skipped
/// unless FERRY_TEST_REAL_DEBIAN=1 (it needs the network).
#[test]
fn apt_real_debian() {
    if !switched_on(
        "apt_real_debian",
        "FERRY_TEST_REAL_DEBIAN",
        "it mirrors real packages from the network",
    ) {
        return;
    }
    if !have_tools("apt_real_debian", &["apt-get"]) {
        return;
    }
    let sources = std::fs::read_to_string("/etc/apt/sources.list.d/debian.sources")
        .or_else(|_| std::fs::read_to_string("/etc/apt/sources.list"))
        .unwrap_or_default();
    let url = sources
        .lines()
        .find_map(|l| {
            l.strip_prefix("URIs:").map(str::trim).or_else(|| {
                l.strip_prefix("deb ")
                    .and_then(|r| r.split_whitespace().last())
            })
        })
        .unwrap_or("http://deb.debian.org/debian")
        .to_string();
    let suite = sources
        .lines()
        .find_map(|l| {
            l.strip_prefix("Suites:")
                .and_then(|s| s.split_whitespace().next())
        })
        .unwrap_or("bookworm")
        .to_string();
    let env = Env::new();
    let keyring = "/usr/share/keyrings/debian-archive-keyring.gpg";
    std::fs::write(
        &env.config,
        format!(
            "[[source]]\nname = \"debian\"\ntype = \"apt\"\nurl = \"{url}\"\nsuites = [\"{suite}\"]\ncomponents = [\"main\"]\narchitectures = [\"amd64\"]\npackages = [\"hello\", \"base-files\"]\nkeyring = \"{keyring}\"\n"
        ),
    )
    .unwrap();
    env.export("m").expect_ok();
    env.import("m").expect_ok();
    let server = env.serve();
    let apt = Apt::new(
        &env.root().join("apt-real"),
        &format!("http://{}/apt/debian/", server.addr),
        Path::new(keyring),
    );
    std::fs::write(
        apt.root.join("etc/apt/sources.list"),
        format!(
            "deb [signed-by={keyring}] http://{}/apt/debian/ {suite} main\n",
            server.addr
        ),
    )
    .unwrap();
    apt.update();
    apt.download("hello").expect_ok();
}
