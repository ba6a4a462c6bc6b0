//! Each file parsed as its client parses it (TOML, YAML, deb822, INI), and
//! the fields that point the client at the store checked.

use super::held::{Suite, YumRepo};
use super::*;
use crate::layout::GEN_INDEX;
use ferry_protocol::catalog::Catalog;
use serde_norway::Value;
use std::collections::BTreeSet;

const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Images of the GPU Operator, an apt, a yum, a PyPI and a Helm source.
fn held() -> Held {
    let mut h = Held::default();
    h.images
        .insert("nvidia/driver".into(), set(&["550.54.15-ubuntu22.04"]));
    h.images
        .insert("nvidia/gpu-operator".into(), set(&["v24.3.0"]));
    h.images.insert(
        "nvidia/k8s/container-toolkit".into(),
        set(&["v1.15.0-ubuntu20.04"]),
    );
    h.images
        .insert("nfd/node-feature-discovery".into(), set(&["v0.15.4"]));
    h.apt.entry("ubuntu".into()).or_default().insert(
        "jammy".into(),
        Suite {
            components: set(&["main", "universe"]),
            architectures: set(&["amd64"]),
        },
    );
    h.yum.insert(
        "cuda".into(),
        YumRepo {
            signed_metadata: true,
            key: true,
        },
    );
    h.pypi = vec!["py".into()];
    h.helm = vec!["charts".into()];
    h
}

fn render_with(h: &Held, url: &str, ca: Option<&str>, upstreams: &[String]) -> Vec<ClientFile> {
    let scheme = if ca.is_some() { "https" } else { "http" };
    let urls = Urls::new(Base::parse(url, scheme).unwrap(), None, &[]).unwrap();
    let cx = Ctx {
        held: h,
        urls: &urls,
        ca,
        ca_path: "/etc/ferry/ca.pem",
        upstreams,
        namespace: "gpu-operator",
        apt: AptSettings {
            view: AptView::Site,
            keyring: "/etc/apt/keyrings/ferry-site.asc".into(),
            site_key: Some("-----BEGIN PGP PUBLIC KEY BLOCK-----\n".into()),
            signed_by: BTreeMap::new(),
        },
        gpgkeys: BTreeMap::new(),
        go_keys: BTreeMap::new(),
    };
    render(&cx).unwrap()
}

fn file<'a>(files: &'a [ClientFile], path: &str) -> &'a str {
    &files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| {
            panic!(
                "no {path} in {:?}",
                files.iter().map(|f| &f.path).collect::<Vec<_>>()
            )
        })
        .body
}

/// An INI file as `section -> key -> value`.
fn ini(text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut cur = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            cur = s.to_string();
            continue;
        }
        let (k, v) = line.split_once('=').expect("key = value");
        out.entry(cur.clone())
            .or_default()
            .insert(k.trim().to_string(), v.trim().to_string());
    }
    out
}

fn yaml(text: &str) -> Value {
    serde_norway::from_str(text).unwrap()
}

#[test]
fn https_configs_parse_and_name_the_ca() {
    let f = render_with(&held(), "mirror.site:8443", Some(CA), &["nvcr.io".into()]);
    assert_eq!(file(&f, "ca.pem"), CA);

    let own: toml::Table =
        toml::from_str(file(&f, "containerd/mirror.site:8443/hosts.toml")).unwrap();
    assert_eq!(own["server"].as_str(), Some("https://mirror.site:8443"));
    let host = &own["host"]["https://mirror.site:8443"];
    assert_eq!(host["ca"].as_str(), Some("/etc/ferry/ca.pem"));
    assert_eq!(host["capabilities"].as_array().unwrap().len(), 2);
    let mirror: toml::Table = toml::from_str(file(&f, "containerd/nvcr.io/hosts.toml")).unwrap();
    assert_eq!(mirror["server"].as_str(), Some("https://nvcr.io"));
    assert!(mirror["host"].get("https://mirror.site:8443").is_some());

    let regs: toml::Table = toml::from_str(file(&f, "containers/registries.conf")).unwrap();
    let regs = regs["registry"].as_array().unwrap();
    assert_eq!(regs[0]["location"].as_str(), Some("mirror.site:8443"));
    assert_eq!(regs[0]["insecure"].as_bool(), Some(false));
    assert_eq!(regs[1]["prefix"].as_str(), Some("nvcr.io"));
    assert_eq!(
        regs[1]["mirror"][0]["location"].as_str(),
        Some("mirror.site:8443")
    );
    assert_eq!(file(&f, "containers/certs.d/mirror.site:8443/ca.crt"), CA);

    let v = yaml(file(&f, "gpu-operator/values.yaml"));
    assert_eq!(
        v["driver"]["repository"].as_str(),
        Some("mirror.site:8443/nvidia")
    );
    assert_eq!(v["driver"]["version"].as_str(), Some("550.54.15"));
    assert_eq!(
        v["driver"]["repoConfig"]["configMapName"].as_str(),
        Some("repo-config")
    );
    assert_eq!(
        v["driver"]["certConfig"]["name"].as_str(),
        Some("cert-config")
    );
    assert_eq!(v["operator"]["version"].as_str(), Some("v24.3.0"));
    assert_eq!(
        v["toolkit"]["repository"].as_str(),
        Some("mirror.site:8443/nvidia/k8s")
    );
    assert_eq!(
        v["node-feature-discovery"]["image"]["repository"].as_str(),
        Some("mirror.site:8443/nfd/node-feature-discovery")
    );
    // Images not held are left to the chart's defaults.
    assert!(v.get("dcgmExporter").is_none() && v["driver"].get("manager").is_none());

    let cm = yaml(file(&f, "gpu-operator/repo-config-ubuntu.yaml"));
    assert_eq!(cm["kind"].as_str(), Some("ConfigMap"));
    assert_eq!(cm["metadata"]["name"].as_str(), Some("repo-config"));
    assert_eq!(cm["metadata"]["namespace"].as_str(), Some("gpu-operator"));
    assert_eq!(
        cm["data"]["custom-repo.list"].as_str(),
        Some("deb [arch=amd64] https://mirror.site:8443/apt/ubuntu/ jammy main universe\n")
    );
    let cm = yaml(file(&f, "gpu-operator/repo-config-rhel.yaml"));
    let repo = ini(cm["data"]["custom-repo.repo"].as_str().unwrap());
    assert_eq!(
        repo["ferry-cuda"]["baseurl"],
        "https://mirror.site:8443/yum/cuda/"
    );
    let cm = yaml(file(&f, "gpu-operator/cert-config.yaml"));
    assert_eq!(cm["data"]["ferry-ca.crt"].as_str(), Some(CA));

    let sources = file(&f, "apt/ferry.sources");
    let para = ferry_formats::deb::paragraphs(sources).next().unwrap();
    let fields = ferry_formats::deb::fields(para);
    assert_eq!(fields["uris"], "https://mirror.site:8443/apt-site/ubuntu/");
    assert_eq!(fields["suites"], "jammy");
    assert_eq!(fields["components"], "main universe");
    assert_eq!(fields["signed-by"], "/etc/apt/keyrings/ferry-site.asc");
    assert!(file(&f, "apt/ferry-site.asc").starts_with("-----BEGIN PGP PUBLIC KEY BLOCK"));
    assert_eq!(
        file(&f, "apt/ferry-ca.conf"),
        "Acquire::https::\"mirror.site\"::CAInfo \"/etc/ferry/ca.pem\";\n"
    );

    let repo = ini(file(&f, "yum/ferry.repo"));
    let cuda = &repo["ferry-cuda"];
    assert_eq!(cuda["gpgcheck"], "1");
    assert_eq!(cuda["repo_gpgcheck"], "1");
    assert_eq!(
        cuda["gpgkey"],
        "https://mirror.site:8443/yum/cuda/repodata/repomd.xml.key"
    );
    assert_eq!(cuda["sslcacert"], "/etc/ferry/ca.pem");

    let pip = ini(file(&f, "pip/pip.conf"));
    assert_eq!(
        pip["global"]["index-url"],
        "https://mirror.site:8443/pypi/py/simple/"
    );
    assert_eq!(pip["global"]["cert"], "/etc/ferry/ca.pem");
    assert_eq!(
        file(&f, "helm/repo-add.sh"),
        "helm repo add charts https://mirror.site:8443/helm/charts/ --ca-file /etc/ferry/ca.pem\n"
    );
}

#[test]
fn plain_http_names_no_ca_and_trusts_the_host() {
    let mut h = held();
    h.yum.get_mut("cuda").unwrap().signed_metadata = false;
    let f = render_with(&h, "http://10.0.0.5:8080", None, &[]);
    assert!(f
        .iter()
        .all(|f| f.path != "ca.pem" && !f.body.contains("ca.pem")));
    assert!(f.iter().all(|f| !f.path.contains("cert-config")));
    let regs: toml::Table = toml::from_str(file(&f, "containers/registries.conf")).unwrap();
    assert_eq!(regs["registry"][0]["insecure"].as_bool(), Some(true));
    let v = yaml(file(&f, "gpu-operator/values.yaml"));
    assert!(v["driver"].get("certConfig").is_none());
    let repo = ini(file(&f, "yum/ferry.repo"));
    assert_eq!(repo["ferry-cuda"]["repo_gpgcheck"], "0");
    let pip = ini(file(&f, "pip/pip.conf"));
    assert_eq!(pip["global"]["trusted-host"], "10.0.0.5");
}

#[test]
fn nothing_is_written_for_what_is_not_held() {
    let mut h = held();
    h.images.clear();
    h.apt.clear();
    let f = render_with(&h, "http://10.0.0.5:8080", None, &["nvcr.io".into()]);
    let paths: Vec<&str> = f.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        ["yum/ferry.repo", "pip/pip.conf", "helm/repo-add.sh"]
    );
    assert!(f.iter().all(|f| !f.body.contains("nvcr.io")));

    // Images that are not the GPU Operator's: registry files, no values.
    let mut h = Held::default();
    h.images.insert("library/demo".into(), set(&["v1"]));
    let f = render_with(&h, "http://10.0.0.5:8080", None, &[]);
    let paths: Vec<&str> = f.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "containerd/10.0.0.5:8080/hosts.toml",
            "containers/registries.conf"
        ]
    );
}

#[test]
fn the_store_state_decides_what_is_possible() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::new(dir.path());
    let args = |extra: &[&str]| {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            a: Args,
        }
        let mut argv = vec!["x", "--url", "h:1"];
        argv.extend(extra);
        Cli::parse_from(argv).a
    };
    let e = files(&layout, &args(&[])).unwrap_err();
    assert!(matches!(
        e.downcast_ref::<ClientConfigError>(),
        Some(ClientConfigError::NothingImported { .. })
    ));
    // A generation holding an apt source, without a site key.
    let gen = layout.gen("g1");
    std::fs::create_dir_all(&gen).unwrap();
    let c = held::tests::catalog(
        &[("deb", ferry_protocol::catalog::SourceKind::Apt)],
        &[("deb", "dists/stable/main/binary-amd64/Packages")],
    );
    std::fs::write(gen.join(GEN_INDEX), c.to_bytes()).unwrap();
    std::os::unix::fs::symlink("gens/g1", layout.current_link()).unwrap();
    let e = files(&layout, &args(&[])).unwrap_err();
    assert!(matches!(
        e.downcast_ref::<ClientConfigError>(),
        Some(ClientConfigError::NoSiteKey { .. })
    ));
    let f = files(
        &layout,
        &args(&["--apt-view", "upstream", "--apt-signed-by", "deb=/k.gpg"]),
    )
    .unwrap();
    assert_eq!(f.len(), 1);
    assert!(f[0].body.contains("URIs: http://h:1/apt/deb/\n"));
    assert!(f[0].body.contains("Signed-By: /k.gpg\n"));
    let e = files(&layout, &args(&["--gpgkey", "cuda"])).unwrap_err();
    assert!(matches!(
        e.downcast_ref::<ClientConfigError>(),
        Some(ClientConfigError::BadPair { .. })
    ));
    // The site CA in the state: https by default, and the CA named.
    std::fs::create_dir_all(layout.tls_dir()).unwrap();
    std::fs::write(layout.tls_ca(), CA).unwrap();
    let f = files(&layout, &args(&["--apt-view", "upstream"])).unwrap();
    assert_eq!(file(&f, "ca.pem"), CA);
    assert!(file(&f, "apt/ferry.sources").contains("URIs: https://h:1/apt/deb/\n"));
    assert!(file(&f, "apt/ferry-ca.conf").contains("CAInfo \"/etc/ferry/ca.pem\""));
    // An explicit http URL names no CA.
    let mut a = args(&["--apt-view", "upstream"]);
    a.url = "http://h:1".into();
    let f = files(&layout, &a).unwrap();
    assert!(f
        .iter()
        .all(|f| f.path != "ca.pem" && f.path != "apt/ferry-ca.conf"));
    // An empty generation holds nothing to configure.
    std::fs::write(gen.join(GEN_INDEX), Catalog::default().to_bytes()).unwrap();
    let e = files(&layout, &args(&[])).unwrap_err();
    assert!(matches!(
        e.downcast_ref::<ClientConfigError>(),
        Some(ClientConfigError::NothingHeld)
    ));
}
