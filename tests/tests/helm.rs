//! Helm chart repositories end to end: charts packaged in the test (a chart
//! is a gzip'd tar of `<name>/Chart.yaml`, `values.yaml`, `templates/…`),
//! an upstream `index.yaml` written in the test and served by a plain HTTP
//! server, `ferry-out` exporting, `ferry-in` importing and serving. The
//! `helm` client is not packaged in Debian and there is no Go toolchain here,
//! so the client side does what `helm repo add` + `helm pull` do: fetch
//! `index.yaml` from `ferry-in serve`, resolve each chart URL against the
//! repository URL, download it with curl, check its SHA-256 against the
//! index `digest`, and untar it.

use ferry_e2e::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const TOOLS: &[&str] = &["tar", "curl", "python3"];

/// Packages chart `name` `version` into `dir/pkgs/<name>-<version>.tgz`;
/// returns its path.
pub(crate) fn chart(work: &Path, dir: &Path, name: &str, version: &str) -> PathBuf {
    let src = work.join(format!("{name}-{version}"));
    let c = src.join(name);
    std::fs::create_dir_all(c.join("templates")).unwrap();
    std::fs::write(
        c.join("Chart.yaml"),
        format!("apiVersion: v2\nname: {name}\nversion: {version}\nappVersion: \"{version}\"\n"),
    )
    .unwrap();
    std::fs::write(
        c.join("values.yaml"),
        format!("replicas: 1\nimage: {name}\n"),
    )
    .unwrap();
    std::fs::write(
        c.join("templates/configmap.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\n",
    )
    .unwrap();
    // Some bulk, so that shipping a chart twice would show in bundle sizes.
    std::fs::write(
        c.join("templates/blob.txt"),
        random_bytes(100_000, version.len() as u64 * 7 + name.len() as u64),
    )
    .unwrap();
    let out_dir = dir.join("pkgs");
    std::fs::create_dir_all(&out_dir).unwrap();
    let tgz = out_dir.join(format!("{name}-{version}.tgz"));
    let ok = Command::new("tar")
        .args([
            "--sort=name",
            "--mtime=@0",
            "--owner=0",
            "--group=0",
            "-czf",
        ])
        .arg(&tgz)
        .arg("-C")
        .arg(&src)
        .arg(name)
        .status()
        .unwrap()
        .success();
    assert!(ok, "tar");
    tgz
}

fn sha(p: &Path) -> String {
    ferry_protocol::id::Sha256::of(&std::fs::read(p).unwrap()).to_hex()
}

/// Writes `dir/index.yaml` for `charts` (name, version, url as written).
pub(crate) fn index(dir: &Path, charts: &[(&str, &str, String)]) {
    let mut s = String::from("apiVersion: v1\nentries:\n");
    let mut names: Vec<&str> = charts.iter().map(|c| c.0).collect();
    names.dedup();
    for n in names {
        s += &format!("  {n}:\n");
        for (name, version, url) in charts.iter().filter(|c| c.0 == n) {
            let digest = sha(&dir.join(format!("pkgs/{name}-{version}.tgz")));
            s += &format!(
                "  - apiVersion: v2\n    name: {name}\n    version: {version}\n    appVersion: \"{version}\"\n    description: test chart\n    created: \"2024-05-01T10:00:00Z\"\n    digest: {digest}\n    urls:\n    - {url}\n"
            );
        }
    }
    s += "generated: \"2024-05-01T10:00:00Z\"\n";
    std::fs::write(dir.join("index.yaml"), s).unwrap();
}

pub(crate) fn config(env: &Env, url: &str, extra: &str) {
    std::fs::write(
        &env.config,
        format!("[[source]]\nname = \"charts\"\ntype = \"helm\"\nurl = \"{url}\"\n{extra}"),
    )
    .unwrap();
}

/// What `helm repo add` + `helm pull` do, against `ferry-in serve`: returns
/// the versions of `chart` the index lists, after downloading, verifying and
/// unpacking each.
fn helm_pull_all(env: &Env, addr: &str, chart: &str, tag: &str) -> Vec<String> {
    helm_pull(env, &format!("http://{addr}"), &[], chart, tag)
}

/// [`helm_pull_all`] from the server at `base` (`http://…` or `https://…`),
/// with `extra` curl options (such as `--cacert CA`).
pub(crate) fn helm_pull(
    env: &Env,
    base: &str,
    extra: &[&str],
    chart: &str,
    tag: &str,
) -> Vec<String> {
    let repo_url = format!("{base}/helm/charts");
    let work = env.root().join(format!("client-{tag}"));
    std::fs::create_dir_all(&work).unwrap();
    let idx = work.join("index.yaml");
    let get = |out: &Path, url: &str| {
        let mut args = extra.to_vec();
        args.extend(["-o", out.to_str().unwrap(), url]);
        curl(&args);
    };
    get(&idx, &format!("{repo_url}/index.yaml"));
    let v: serde_norway::Value = serde_norway::from_slice(&std::fs::read(&idx).unwrap()).unwrap();
    assert_eq!(v["apiVersion"].as_str(), Some("v1"));
    let mut versions = Vec::new();
    for e in v["entries"][chart].as_sequence().expect("chart in index") {
        let version = e["version"].as_str().unwrap().to_string();
        let url = e["urls"][0].as_str().unwrap();
        assert!(!url.contains("://"), "chart URLs are relative: {url}");
        let file = work.join(format!("{chart}-{version}.tgz"));
        get(&file, &format!("{repo_url}/{url}"));
        assert_eq!(
            sha(&file),
            e["digest"].as_str().unwrap(),
            "downloaded chart matches the index digest"
        );
        let dest = work.join(format!("x-{version}"));
        std::fs::create_dir_all(&dest).unwrap();
        assert!(Command::new("tar")
            .arg("-xzf")
            .arg(&file)
            .arg("-C")
            .arg(&dest)
            .status()
            .unwrap()
            .success());
        let chart_yaml = std::fs::read_to_string(dest.join(chart).join("Chart.yaml")).unwrap();
        assert!(chart_yaml.contains(&format!("version: {version}")));
        versions.push(version);
    }
    versions
}

pub(crate) fn setup(test: &str) -> Option<(Env, PathBuf, PathBuf)> {
    if !have_tools(test, TOOLS) {
        return None;
    }
    let env = Env::new();
    let work = env.root().join("work");
    let up = env.root().join("upstream-charts");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(&up).unwrap();
    Some((env, work, up))
}

/// Version ranges select charts; the inside index points at the inside
/// server; an update ships only the new chart (an unchanged chart is not
/// downloaded again), a removed version disappears, a pinned one stays in
/// the index; the same upstream gives no new bundle.
#[test]
fn ranges_update_pin_and_client() {
    let Some((env, work, dir)) = setup("ranges_update_pin_and_client") else {
        return;
    };
    let up = http_upstream(&dir);
    for v in ["0.9.0", "1.0.0", "1.1.0", "2.0.0"] {
        chart(&work, &dir, "web", v);
    }
    chart(&work, &dir, "db", "0.1.0");
    // Relative, host-absolute and absolute chart URLs.
    let charts = vec![
        ("db", "0.1.0", "pkgs/db-0.1.0.tgz".to_string()),
        ("web", "0.9.0", "pkgs/web-0.9.0.tgz".to_string()),
        ("web", "1.0.0", "/pkgs/web-1.0.0.tgz".to_string()),
        ("web", "1.1.0", format!("{}/pkgs/web-1.1.0.tgz", up.url)),
        ("web", "2.0.0", "pkgs/web-2.0.0.tgz".to_string()),
    ];
    index(&dir, &charts);
    config(
        &env,
        &up.url,
        "charts = { \"web\" = \">=0.9, <2\" }\npin = [\"web-1.0.0\"]\n",
    );
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();
    {
        let server = env.serve();
        assert_eq!(
            helm_pull_all(&env, &server.addr, "web", "1"),
            ["1.1.0", "1.0.0", "0.9.0"]
        );
    }
    assert!(!env.served_in("charts", "charts/db-0.1.0.tgz").exists());
    let r = env.export("m-same").expect_ok();
    assert!(
        r.stdout.contains("no changes"),
        "the same index gives the same bytes: {}",
        r.stdout
    );

    // Upstream: 0.9.0 and the pinned 1.0.0 go, 1.2.0 comes; 1.1.0 stays, but
    // its file is now garbage: fetching it again would fail its digest.
    chart(&work, &dir, "web", "1.2.0");
    let new_chart = std::fs::metadata(dir.join("pkgs/web-1.2.0.tgz"))
        .unwrap()
        .len();
    let charts = vec![
        ("db", "0.1.0", "pkgs/db-0.1.0.tgz".to_string()),
        ("web", "1.1.0", format!("{}/pkgs/web-1.1.0.tgz", up.url)),
        ("web", "1.2.0", "pkgs/web-1.2.0.tgz".to_string()),
        ("web", "2.0.0", "pkgs/web-2.0.0.tgz".to_string()),
    ];
    index(&dir, &charts);
    let f = dir.join("pkgs/web-1.1.0.tgz");
    let len = std::fs::metadata(&f).unwrap().len() as usize;
    std::fs::write(&f, vec![1u8; len]).unwrap();
    env.export("m2").expect_ok();
    let bundle = dir_bytes(&env.only_bundle("m2"));
    assert!(
        bundle < new_chart + 8 * 1024,
        "the delta ({bundle} bytes) carries the new chart ({new_chart} bytes) and a small index"
    );
    env.import("m2").expect_ok();
    let server = env.serve();
    assert_eq!(
        helm_pull_all(&env, &server.addr, "web", "2"),
        ["1.2.0", "1.1.0", "1.0.0"]
    );
    assert!(!env.served_in("charts", "charts/web-0.9.0.tgz").exists());
}

/// A chart whose bytes do not match its index digest fails the export,
/// naming source, chart, expected and actual; nothing reaches media.
#[test]
fn chart_digest_mismatch_fails_export() {
    let Some((env, work, dir)) = setup("chart_digest_mismatch_fails_export") else {
        return;
    };
    let up = http_upstream(&dir);
    chart(&work, &dir, "web", "1.0.0");
    chart(&work, &dir, "web", "1.1.0");
    index(
        &dir,
        &[
            ("web", "1.0.0", "pkgs/web-1.0.0.tgz".to_string()),
            ("web", "1.1.0", "pkgs/web-1.1.0.tgz".to_string()),
        ],
    );
    let f = dir.join("pkgs/web-1.1.0.tgz");
    let mut b = std::fs::read(&f).unwrap();
    b[100] ^= 1;
    std::fs::write(&f, b).unwrap();
    config(&env, &up.url, "charts = { \"web\" = \"*\" }\n");
    env.export("m").expect_fail(&[
        "source \"charts\"",
        "chart web-1.1.0",
        "checksum mismatch: expected sha256:",
        "got sha256:",
    ]);
    assert!(
        dir_names(&env.root().join("m")).is_empty(),
        "nothing on media"
    );
    // An entry without a digest cannot be verified: refused.
    let text = std::fs::read_to_string(dir.join("index.yaml")).unwrap();
    let no_digest: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("digest:"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(dir.join("index.yaml"), no_digest).unwrap();
    env.export("m").expect_fail(&["has no digest"]);
    assert!(
        dir_names(&env.root().join("m")).is_empty(),
        "nothing on media"
    );
}

/// ferry-in refuses a helm source whose index does not match its charts, or
/// with paths a helm source does not have (crafted bundles), and applies
/// nothing.
#[test]
fn inside_refuses_index_not_matching_charts() {
    use ferry_protocol::catalog::SourceKind::Helm;
    let good = ferry_protocol::id::Sha256::of(b"chart").to_hex();
    let idx = |url: &str| {
        format!(
            "apiVersion: v1\nentries:\n  web:\n  - name: web\n    version: 1.0.0\n    digest: {good}\n    urls:\n    - {url}\n"
        )
    };
    let ok_index = idx("charts/web-1.0.0.tgz");
    let elsewhere = idx("https://evil.example/web-1.0.0.tgz");
    for (objects, needle) in [
        (
            vec![
                ("c", Helm, "index.yaml", ok_index.as_bytes()),
                ("c", Helm, "charts/web-1.0.0.tgz", b"CHART".as_slice()),
            ],
            "but the index says",
        ),
        (
            vec![
                ("c", Helm, "index.yaml", elsewhere.as_bytes()),
                ("c", Helm, "charts/web-1.0.0.tgz", b"chart".as_slice()),
            ],
            "not a chart the bundle holds",
        ),
        (
            vec![
                ("c", Helm, "index.yaml", ok_index.as_bytes()),
                ("c", Helm, "charts/web-1.0.0.tgz", b"chart".as_slice()),
                ("c", Helm, "notes.txt", b"x".as_slice()),
            ],
            "c/notes.txt: not a path of a helm source",
        ),
    ] {
        let env = Env::new();
        craft_bundle(&env, "bad", &objects);
        let r = env.import("bad");
        assert!(!r.ok, "should have been refused:\n{}", r.all());
        assert!(
            r.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}",
            r.stderr
        );
        assert_eq!(env.applied_sequence(), 0);
        assert!(!env.in_state.join("store/current").exists());
    }
    let env = Env::new();
    craft_bundle(
        &env,
        "ok",
        &[
            ("c", Helm, "index.yaml", ok_index.as_bytes()),
            ("c", Helm, "charts/web-1.0.0.tgz", b"chart"),
        ],
    );
    env.import("ok").expect_ok();
}
