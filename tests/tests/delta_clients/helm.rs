//! A Helm chart update. `helm` is not packaged in Debian, so the chart is
//! laid out as `helm package` lays it out (`<name>/Chart.yaml`,
//! `values.yaml`, `templates/`, `files/`) and packed with tar and gzip; the
//! client side does what `helm pull` does (index.yaml, the chart URL, its
//! SHA-256 against the index digest), as tests/tests/helm.rs does. The new
//! chart ships as a patch of its tar against the old one.

use super::{delta_high, patched_line, real_files, tar_gz, touch_up};
use ferry_e2e::*;
use std::path::Path;

fn sha(data: &[u8]) -> String {
    ferry_protocol::id::Sha256::of(data).to_hex()
}

/// Writes chart `web` `version` under `root/web/` (`files/` holds the real
/// files already there) and returns its `.tgz`.
fn chart(root: &Path, version: &str, replicas: u32) -> Vec<u8> {
    let c = root.join("web");
    std::fs::create_dir_all(c.join("templates")).unwrap();
    let write = |p: &str, s: String| std::fs::write(c.join(p), s).unwrap();
    write(
        "Chart.yaml",
        format!(
            "apiVersion: v2\nname: web\ndescription: A web service\ntype: application\n\
             version: {version}\nappVersion: \"{version}\"\n"
        ),
    );
    write(
        "values.yaml",
        format!(
            "replicaCount: {replicas}\nimage:\n  repository: registry.example/web\n  tag: \"{version}\"\n\
             service:\n  type: ClusterIP\n  port: 80\n"
        ),
    );
    write(
        "templates/_helpers.tpl",
        "{{- define \"web.fullname\" -}}\n{{ .Release.Name }}-{{ .Chart.Name }}\n{{- end }}\n"
            .into(),
    );
    write(
        "templates/deployment.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ include \"web.fullname\" . }}\n\
         spec:\n  replicas: {{ .Values.replicaCount }}\n  template:\n    spec:\n      containers:\n\
         \x20       - name: web\n          image: \"{{ .Values.image.repository }}:{{ .Values.image.tag }}\"\n"
            .into(),
    );
    write(
        "templates/configmap.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ include \"web.fullname\" . }}\n\
         data:\n{{ (.Files.Glob \"files/**\").AsConfig | indent 2 }}\n"
            .into(),
    );
    tar_gz(&c, Some("web"))
}

/// The chart repository's `index.yaml` for `web-<version>.tgz` files.
fn index(up: &Path, charts: &[(&str, &[u8])]) {
    let mut s = String::from("apiVersion: v1\nentries:\n  web:\n");
    for (version, tgz) in charts {
        s += &format!(
            "  - apiVersion: v2\n    name: web\n    version: {version}\n    appVersion: \"{version}\"\n\
             \x20   created: \"2024-05-01T10:00:00Z\"\n    digest: {}\n    urls:\n    - web-{version}.tgz\n",
            sha(tgz)
        );
        std::fs::write(up.join(format!("web-{version}.tgz")), tgz).unwrap();
    }
    s += "generated: \"2024-05-01T10:00:00Z\"\n";
    std::fs::write(up.join("index.yaml"), s).unwrap();
}

#[test]
fn an_updated_chart_ships_as_a_patch_and_a_helm_pull_gets_its_bytes() {
    if !have_tools(&current_test(), &["tar", "gzip", "curl", "python3"]) {
        return;
    }
    let env = Env::new();
    let work = env.root().join("work");
    let up = env.root().join("upstream-charts");
    std::fs::create_dir_all(&up).unwrap();
    real_files(&work.join("web/files"));
    let v1 = chart(&work, "1.0.0", 1);
    index(&up, &[("1.0.0", &v1)]);
    let upstream = http_upstream(&up);
    std::fs::write(
        &env.config,
        format!(
            "[[source]]\nname = \"charts\"\ntype = \"helm\"\nurl = \"{}\"\ncharts = {{ \"web\" = \">=1.0\" }}\n",
            upstream.url
        ),
    )
    .unwrap();
    delta_high(&env);
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();

    // 1.1.0: a value and one bundled file change.
    touch_up(&work.join("web/files/json/decoder.py"), "# 1.1.0");
    let v2 = chart(&work, "1.1.0", 3);
    index(&up, &[("1.0.0", &v1), ("1.1.0", &v2)]);
    let r = env.export("m2").expect_ok();
    let bundle = dir_bytes(&env.only_bundle("m2"));
    eprintln!(
        "update bundle: {bundle} bytes; new chart {} bytes; {}",
        v2.len(),
        patched_line(&r)
    );
    assert!(
        bundle * 4 < v2.len() as u64,
        "update bundle {bundle} bytes for a {}-byte chart: not shipped as a patch",
        v2.len()
    );
    env.import("m2").expect_ok();

    // What `helm pull web --version 1.1.0` does against ferry-in serve.
    let srv = env.serve();
    let repo = format!("http://{}/helm/charts", srv.addr);
    let idx: serde_norway::Value =
        serde_norway::from_slice(&curl(&[&format!("{repo}/index.yaml")])).unwrap();
    let entry = idx["entries"]["web"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|e| e["version"].as_str() == Some("1.1.0"))
        .expect("1.1.0 in the inside's index");
    let url = entry["urls"][0].as_str().unwrap();
    let got = curl(&[&format!("{repo}/{url}")]);
    assert_eq!(entry["digest"].as_str(), Some(sha(&got).as_str()));
    assert_eq!(got, v2);
}
