//! Moving an existing air gap to Ferry (`ferry-in adopt`): the inside
//! already holds a registry filled by skopeo and an apt mirror tree; its
//! signed inventory, loaded outside with `receipt add`, makes the first
//! export carry only what the inside lacks, and the import takes the rest
//! from the adopted locations, checking every digest.

use crate::apt::{fixture, Apt, TOOLS as APT_TOOLS};
use crate::oci_registry::build_image;
use ferry_e2e::docker_registry as registry;
use ferry_e2e::*;
use ferry_protocol::id::Sha256;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

/// A real .deb `name_1.0_all.deb` with a random payload of `size` bytes.
fn deb(dir: &Path, name: &str, size: usize, seed: u64) -> PathBuf {
    let p = crate::apt::Pkg {
        name,
        version: "1.0",
        arch: "all",
        extra: "",
        seed,
    };
    crate::apt::build_deb_sized(dir, &p, size)
}

/// `ferry-in adopt ARGS… --to STICK`, then `trust-inside` and `receipt add`
/// of the inventory outside.
fn adopt_and_carry_out(env: &Env, args: &[&str]) -> Run {
    let stick = env.root().join("stick");
    let mut all = vec!["adopt"];
    all.extend_from_slice(args);
    all.extend(["--to", stick.to_str().unwrap()]);
    env.inn(&all).expect_ok();
    env.out(&[
        "trust-inside",
        env.in_state.join("inside.pub").to_str().unwrap(),
    ])
    .expect_ok();
    let inv = std::fs::read_dir(&stick)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "ferryinv"))
        .expect("an inventory file");
    env.out(&["receipt", "add", inv.to_str().unwrap()])
        .expect_ok()
}

/// The SHA-256s `ferry-in adopt` recorded.
fn adopted(env: &Env) -> HashSet<Sha256> {
    let idx: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(&std::fs::read(env.in_state.join("adopted.json")).unwrap()).unwrap();
    idx.keys().map(|h| Sha256::from_hex(h).unwrap()).collect()
}

/// Bytes of the served files (each content once) the inventory lacks: the
/// regular files of the current generation's store trees (`<kind>/<source>/`;
/// derived views such as `apt-site/` are not catalog objects).
fn missing_bytes(env: &Env) -> u64 {
    const STORES: [&str; 9] = [
        "files", "oci", "apt", "yum", "pypi", "helm", "cargo", "npm", "go",
    ];
    let have = adopted(env);
    let mut seen = HashSet::new();
    let mut missing = 0;
    let tree = env.export_tree();
    let mut todo: Vec<PathBuf> = STORES
        .iter()
        .map(|s| tree.join(s))
        .filter(|d| d.is_dir())
        .collect();
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                todo.push(e.path());
            } else if t.is_file() {
                let bytes = std::fs::read(e.path()).unwrap();
                let sha = Sha256::of(&bytes);
                if !have.contains(&sha) && seen.insert(sha) {
                    missing += bytes.len() as u64;
                }
            }
        }
    }
    missing
}

/// Asserts that the bundle in `media` is at most the objects the inside
/// lacked plus 1%, and that they are more than `at_least` bytes (what the
/// test made new upstream).
fn only_the_missing_travelled(env: &Env, media: &str, at_least: u64) {
    let bundle = dir_bytes(&env.only_bundle(media));
    let missing = missing_bytes(env);
    eprintln!("first bundle: {bundle} bytes; objects the inside lacked: {missing} bytes");
    assert!(
        missing > at_least,
        "what is new upstream is missing: {missing}"
    );
    assert!(
        bundle <= missing + missing / 100,
        "bundle {bundle} bytes > missing {missing} bytes + 1%"
    );
}

#[test]
fn a_registry_and_an_apt_mirror_are_adopted_and_only_the_rest_travels() {
    let test = current_test();
    if !have_tools(&test, &APT_TOOLS) || !have_tools(&test, &["docker-registry", "skopeo"]) {
        return;
    }
    let fx = fixture("[\"app\", \"newpkg\"]", "[]");
    let env = &fx.env;
    let work = env.root().join("oci");
    for d in ["upstream", "inside"] {
        std::fs::create_dir_all(work.join(d)).unwrap();
    }
    let (_up, up) = registry(&work.join("upstream"));
    let (_inreg, inreg) = registry(&work.join("inside"));

    // What the site carried by hand before: image v1 copied into its own
    // registry by skopeo, and a copy of the apt repository.
    let v1 = build_image(&work, &random_bytes(1_500_000, 11), "v1", 1);
    skopeo_push(&v1, "v1", &up, "library/demo:v1", &["--all"]).expect_ok();
    skopeo(&[
        "copy",
        "--all",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{up}/library/demo:v1"),
        &format!("docker://{inreg}/library/demo:v1"),
    ])
    .expect_ok();
    let mirror = env.root().join("site-mirror");
    copy_tree(&fx.repo.dir, &mirror);

    // Upstream moved on: image v2 with a new big layer, a new package.
    let v2 = build_image(&work, &random_bytes(2_000_000, 12), "v2", 2);
    skopeo_push(&v2, "v2", &up, "library/demo:v2", &["--all"]).expect_ok();
    fx.repo.include(&deb(&fx.work, "newpkg", 400_000, 13));
    let config = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        format!("{config}\n[[source]]\nname = \"hub\"\ntype = \"oci\"\nregistry = \"http://{up}\"\nimages = [\"library/demo:v1\", \"library/demo:v2\"]\n"),
    )
    .unwrap();

    let added = adopt_and_carry_out(
        env,
        &[
            "--registry",
            &format!("http://{inreg}"),
            "--tree",
            mirror.to_str().unwrap(),
        ],
    );
    assert!(added.stdout.contains("inventory of"), "{}", added.all());
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();

    only_the_missing_travelled(env, "m1", 2_000_000);

    // Clients see the full set, over TLS.
    let srv = env.serve_tls();
    for tag in ["v1", "v2"] {
        let dest = format!("oci:{}:{tag}", work.join(format!("pulled-{tag}")).display());
        skopeo_pull(&srv, &format!("library/demo:{tag}"), &dest, &["--all"]).expect_ok();
    }
    let apt = Apt::new(
        &fx.work.join("apt-client"),
        &format!("https://{}/apt/deb/", srv.addr),
        &fx.upstream_key,
    );
    let ca = format!("Acquire::https::CaInfo={}", srv.ca.display());
    let r = apt.run(&["-o", &ca, "update"]);
    assert!(
        r.ok && !r.all().contains("\nW:") && !r.all().contains("\nE:"),
        "{}",
        r.all()
    );
    for (pkg, file) in [
        ("app", "app_1.0_amd64.deb"),
        ("newpkg", "newpkg_1.0_all.deb"),
    ] {
        apt.run(&["-o", &ca, "download", pkg]).expect_ok();
        let want = std::fs::read(fx.work.join(file)).unwrap();
        assert_eq!(apt.downloaded(file), want, "{file}");
    }
}

#[test]
fn an_adopted_file_altered_after_the_inventory_is_refused_and_nothing_applied() {
    let env = Env::new();
    for i in 0..4u64 {
        env.write_src(&format!("dir/f{i}.bin"), &random_bytes(300_000, i));
    }
    // The site's copy of the tree, carried by hand long ago.
    let site = env.root().join("site-files");
    copy_tree(&env.src, &site);
    env.write_src("dir/new.bin", &random_bytes(500_000, 9));
    adopt_and_carry_out(&env, &["--tree", site.to_str().unwrap()]);
    env.export("m1").expect_ok();
    let bundle = dir_bytes(&env.only_bundle("m1"));
    assert!(
        bundle < 500_000 + 5_000,
        "only new.bin travels: {bundle} bytes"
    );

    // Altered after the inventory: same size, other bytes.
    let victim = site.join("dir/f2.bin");
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&victim, &bytes).unwrap();
    env.import("m1").expect_fail(&[
        "f2.bin",
        "is not what the inventory said",
        "nothing was applied",
    ]);
    assert_eq!(env.applied_sequence(), 0);
    assert!(
        !env.in_state.join("store/current").exists(),
        "nothing served"
    );

    // Put back, the same bundle applies, every file exact.
    bytes[1000] ^= 0xff;
    std::fs::write(&victim, &bytes).unwrap();
    env.import("m1").expect_ok();
    assert_eq!(env.applied_sequence(), 1);
    assert_eq!(env.served_digest("tools"), tree_digest(&env.src));
}

#[test]
fn an_https_registry_is_adopted_verifying_its_certificate_with_a_ca_file() {
    let test = current_test();
    if !have_tools(&test, &["docker-registry", "skopeo"]) {
        return;
    }
    let env = Env::new();
    let work = env.root().join("oci");
    for d in ["upstream", "inside"] {
        std::fs::create_dir_all(work.join(d)).unwrap();
    }
    // The site's own registry speaks https with a certificate of the site's
    // CA (made here by `ferry-in tls init` in a state of its own).
    let pki = env.root().join("site-pki");
    ferry_in(
        &pki,
        &["tls", "init", "--name", "localhost", "--ip", "127.0.0.1"],
    )
    .expect_ok();
    let ca = pki.join("tls/ca.pem");
    let cert_dir = env.root().join("site-certs");
    std::fs::create_dir_all(&cert_dir).unwrap();
    std::fs::copy(&ca, cert_dir.join("ca.crt")).unwrap();
    let tls = format!(
        "  tls:\n    certificate: {}\n    key: {}\n",
        pki.join("tls/server.pem").display(),
        pki.join("tls/server.key").display()
    );
    let (_up, up) = registry(&work.join("upstream"));
    let (_inreg, inreg) = docker_registry_with(&work.join("inside"), &tls);

    let v1 = build_image(&work, &random_bytes(1_500_000, 21), "v1", 1);
    skopeo_push(&v1, "v1", &up, "library/demo:v1", &["--all"]).expect_ok();
    skopeo(&[
        "copy",
        "--all",
        "--src-tls-verify=false",
        "--dest-cert-dir",
        cert_dir.to_str().unwrap(),
        &format!("docker://{up}/library/demo:v1"),
        &format!("docker://{inreg}/library/demo:v1"),
    ])
    .expect_ok();
    let v2 = build_image(&work, &random_bytes(2_000_000, 22), "v2", 2);
    skopeo_push(&v2, "v2", &up, "library/demo:v2", &["--all"]).expect_ok();
    std::fs::write(
        &env.config,
        format!("[[source]]\nname = \"hub\"\ntype = \"oci\"\nregistry = \"http://{up}\"\nimages = [\"library/demo:v1\", \"library/demo:v2\"]\n"),
    )
    .unwrap();

    // Without the CA the registry's certificate is not trusted: refused,
    // never read unverified.
    let https = format!("https://{inreg}");
    let r = env.inn(&[
        "adopt",
        "--registry",
        &https,
        "--to",
        env.root().join("s0").to_str().unwrap(),
    ]);
    assert!(!r.ok, "adopt trusted an unknown CA:\n{}", r.all());
    assert!(!env.in_state.join("adopted.json").exists());

    adopt_and_carry_out(
        &env,
        &["--registry", &https, "--registry-ca", ca.to_str().unwrap()],
    );
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();
    only_the_missing_travelled(&env, "m1", 2_000_000);

    let srv = env.serve_tls();
    for tag in ["v1", "v2"] {
        let dest = format!("oci:{}:{tag}", work.join(format!("pulled-{tag}")).display());
        skopeo_pull(&srv, &format!("library/demo:{tag}"), &dest, &["--all"]).expect_ok();
    }
    // The v2 layer the bundle carried and the v1 layers taken from the
    // adopted registry both came through: each pull holds blobs.
    for tag in ["v1", "v2"] {
        let pulled = dir_names(&work.join(format!("pulled-{tag}/blobs/sha256")));
        assert!(pulled.len() >= 3, "{tag}: {pulled:?}");
    }
}

#[test]
fn yum_pypi_and_helm_trees_are_adopted_and_only_the_rest_travels() {
    let Some((env, work, repo)) = crate::yum::setup(&current_test()) else {
        return;
    };
    if !have_tools(&current_test(), &["rpmsign", "curl", "tar"])
        || !crate::pypi::have_pip(&current_test())
    {
        return;
    }
    let site = env.root().join("site");
    std::fs::create_dir_all(&site).unwrap();
    // yum: a signed repository, carried by hand; then a big package comes.
    let (home, fpr, _) = gpg_key(env.root(), "vendor");
    let key = env.root().join("vendor.asc");
    std::fs::write(&key, gpg(&home, &["--armor", "--export", &fpr])).unwrap();
    crate::yum::first_repo(&work, &repo);
    crate::yum::sign_repo(&repo, &home, &fpr);
    copy_tree(&repo, &site.join("rocky"));
    crate::yum::rpm(&work, &repo, "bigapp", "1.0", &[], &[], false, 1_000_000);
    crate::yum::sign_repo(&repo, &home, &fpr);
    // PyPI: alpha 1.0 and beta carried; alpha 3.0 comes.
    let pypi = env.root().join("upstream-pypi");
    let (a1, a3, b10) = (
        crate::pypi::wheel("alpha-1.0-"),
        crate::pypi::wheel("alpha-3.0-"),
        crate::pypi::wheel("beta-1.0-"),
    );
    crate::pypi::upstream(&pypi, &[&a1, &b10], &[]);
    copy_tree(&pypi, &site.join("pypi"));
    crate::pypi::upstream(&pypi, &[&a1, &a3, &b10], &[]);
    // Helm: web 1.0.0 carried; web 1.1.0 comes.
    let charts = env.root().join("upstream-charts");
    crate::helm::chart(&work, &charts, "web", "1.0.0");
    let listed = |versions: &[&'static str]| {
        versions
            .iter()
            .map(|v| ("web", *v, format!("pkgs/web-{v}.tgz")))
            .collect::<Vec<_>>()
    };
    crate::helm::index(&charts, &listed(&["1.0.0"]));
    copy_tree(&charts, &site.join("charts"));
    crate::helm::chart(&work, &charts, "web", "1.1.0");
    crate::helm::index(&charts, &listed(&["1.0.0", "1.1.0"]));

    let (up_yum, up_pypi, up_helm) = (
        http_upstream(&repo),
        http_upstream(&pypi),
        http_upstream(&charts),
    );
    std::fs::write(
        &env.config,
        format!(
            "[[source]]\nname = \"el\"\ntype = \"yum\"\nbaseurl = \"{}/\"\nkeyring = \"{}\"\n\
             [[source]]\nname = \"web\"\ntype = \"pypi\"\nindex = \"{}/simple/\"\nrequirements = [\"alpha\"]\npython = [\"3.11\"]\nplatforms = [\"manylinux_2_17_x86_64\"]\n\
             [[source]]\nname = \"charts\"\ntype = \"helm\"\nurl = \"{}\"\n",
            up_yum.url,
            key.display(),
            up_pypi.url,
            up_helm.url
        ),
    )
    .unwrap();

    adopt_and_carry_out(&env, &["--tree", site.to_str().unwrap()]);
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();
    only_the_missing_travelled(&env, "m1", 1_000_000);

    // Clients see the full set over https, verifying the site CA.
    let srv = env.serve_tls();
    let ca = srv.ca.display().to_string();
    let (_, got) = dnf_download_signed_from(
        &env,
        &srv.url("/yum/el/"),
        &[format!("--setopt=ferry.sslcacert={ca}")],
        &["app", "bigapp"],
        "adopted",
        &key,
    );
    for p in [
        "app-1.0",
        "bigapp-1.0",
        "libfoo-1.0",
        "toolx-1.0",
        "webimpl-1.0",
    ] {
        assert!(got.iter().any(|n| n.starts_with(p)), "{p} in {got:?}");
    }
    let target = env.root().join("pip-target");
    crate::pypi::pip(&[
        "install",
        "--no-cache-dir",
        "--disable-pip-version-check",
        "--retries",
        "0",
        "--index-url",
        &srv.url("/pypi/web/simple/"),
        "--cert",
        &ca,
        "--target",
        target.to_str().unwrap(),
        "alpha==3.0",
    ])
    .expect_ok();
    let names = dir_names(&target);
    assert!(
        names.iter().any(|n| n.starts_with("alpha-3.0"))
            && names.iter().any(|n| n.starts_with("beta")),
        "alpha 3.0 and beta installed: {names:?}"
    );
    let base = srv.url("");
    let versions = crate::helm::helm_pull(
        &env,
        base.trim_end_matches('/'),
        &["--cacert", &ca],
        "web",
        "adopted",
    );
    assert_eq!(versions, ["1.1.0", "1.0.0"]);
}
