//! npm registries end to end: packages packed with the real `npm pack`
//! (`a` depending on `b` and the scoped `@s/c`), a stand-in registry of
//! packuments written here and served by `python3 -m http.server`;
//! `ferry-out export`, `ferry-in import`, then the real `npm install`
//! against `ferry-in serve` with a fresh cache.

use ferry_e2e::*;
use std::path::Path;
use std::process::Command;

/// Packs packages with `npm pack` and writes the registry's packuments.
const REGISTRY_PY: &str = r#"
import base64, hashlib, json, os, subprocess, sys
work, up, url = sys.argv[1], sys.argv[2], sys.argv[3]
specs = json.loads(sys.argv[4])   # [[name, version, {dep: range}, deprecated or null]]
docs = {}
for name, version, deps, deprecated in specs:
    d = os.path.join(work, "src", name.replace("/", "_") + "-" + version)
    os.makedirs(d, exist_ok=True)
    body = "module.exports = " + json.dumps(name + " " + version) + ";\n"
    for dep in deps:
        body += "module.exports += ' ' + require(" + json.dumps(dep) + ");\n"
    open(os.path.join(d, "index.js"), "w").write(body)
    json.dump({"name": name, "version": version, "main": "index.js", "dependencies": deps},
              open(os.path.join(d, "package.json"), "w"))
    out = subprocess.run(["npm", "pack", "--json", "--pack-destination", work], cwd=d,
                         check=True, capture_output=True, text=True).stdout
    tgz = os.path.join(work, json.loads(out)[0]["filename"])
    data = open(tgz, "rb").read()
    base = name.split("/")[-1]
    rel = f"tarballs/{name}/-/{base}-{version}.tgz"
    os.makedirs(os.path.dirname(os.path.join(up, rel)), exist_ok=True)
    open(os.path.join(up, rel), "wb").write(data)
    v = {"name": name, "version": version, "dependencies": deps, "readme": "a long readme",
         "dist": {"tarball": f"{url}/{rel}", "shasum": hashlib.sha1(data).hexdigest(),
                  "integrity": "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()}}
    if deprecated:
        v["deprecated"] = deprecated
    doc = docs.setdefault(name, {"name": name, "dist-tags": {}, "versions": {}, "time": {}})
    doc["versions"][version] = v
    doc["dist-tags"]["latest"] = version
    doc["time"][version] = "2026-01-01T00:00:00.000Z"
for name, doc in docs.items():
    p = os.path.join(up, name)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    json.dump(doc, open(p, "w"))
"#;

/// Writes the registry of `specs` (name, version, deps, deprecation).
fn registry(work: &Path, up: &Path, url: &str, specs: &serde_json::Value) {
    sh(Command::new("python3")
        .arg("-c")
        .arg(REGISTRY_PY)
        .arg(work)
        .arg(up)
        .arg(url)
        .arg(specs.to_string()));
}

fn npm(dir: &Path, args: &[&str]) -> Run {
    let o = Command::new("npm")
        .args(args)
        .current_dir(dir)
        .env("npm_config_cache", dir.join(".npm-cache"))
        .env("npm_config_userconfig", dir.join(".npmrc-none"))
        .env("npm_config_audit", "false")
        .env("npm_config_fund", "false")
        .env("npm_config_update_notifier", "false")
        .output()
        .expect("npm runs");
    Run {
        ok: o.status.success(),
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// GETs of tarballs in an http.server request log.
fn tarball_gets(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split("\"GET ").nth(1)?.split(' ').next())
        .filter(|p| p.ends_with(".tgz"))
        .map(String::from)
        .collect()
}

#[test]
fn npm_install_against_ferry_in_then_a_delta() {
    let test = "npm::npm_install_against_ferry_in_then_a_delta";
    if !have_tools(test, &["npm", "node", "python3", "curl"]) {
        return;
    }
    let env = Env::new();
    let (work, up_dir) = (env.root().join("work"), env.root().join("upstream"));
    std::fs::create_dir_all(&up_dir).unwrap();
    let log = env.root().join("upstream.log");
    let up = http_upstream_logged(&up_dir, &log);
    let v1 = serde_json::json!([
        ["b", "1.0.0", {}, null],
        ["@s/c", "1.0.0", {}, null],
        ["a", "1.0.0", {"b": "^1.0.0", "@s/c": "1.x"}, null],
    ]);
    registry(&work, &up_dir, &up.url, &v1);
    std::fs::write(
        &env.config,
        format!(
            "[[source]]\nname = \"js\"\ntype = \"npm\"\nregistry = \"{}\"\npackages = {{ a = \"^1\" }}\n",
            up.url
        ),
    )
    .unwrap();
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();
    let store = env.export_tree().join("npm/js");
    assert_eq!(dir_names(&store.join("tarballs")), ["@s", "a", "b"]);

    let srv = env.serve();
    let (body, head) = curl_response(&[&format!("http://{}/npm/js/@s%2fc", srv.addr)]);
    assert!(head.contains("200"), "{head}");
    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        doc.pointer("/versions/1.0.0/dist/tarball").unwrap(),
        &format!("http://{}/npm/js/tarballs/@s/c/-/c-1.0.0.tgz", srv.addr)
    );
    assert_eq!(
        doc.pointer("/versions/1.0.0/readme").unwrap(),
        "a long readme"
    );
    let (body, head) = curl_response(&[
        "-H",
        "Accept: application/vnd.npm.install-v1+json",
        &format!("http://{}/npm/js/b", srv.addr),
    ]);
    assert!(
        head.contains("application/vnd.npm.install-v1+json"),
        "{head}"
    );
    let short: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(short.pointer("/versions/1.0.0/readme").is_none(), "{short}");

    // The real npm installs from ferry-in alone.
    let app = env.root().join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("package.json"),
        r#"{"name":"app","version":"1.0.0","dependencies":{"a":"^1"}}"#,
    )
    .unwrap();
    let registry_url = format!("http://{}/npm/js/", srv.addr);
    npm(&app, &["install", "--registry", &registry_url]).expect_ok();
    let out = Command::new("node")
        .args(["-e", "console.log(require('a'))"])
        .current_dir(&app)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "a 1.0.0 @s/c 1.0.0 b 1.0.0"
    );

    // Upstream publishes b 1.1.0 and deprecates b 1.0.0: the lockfile keeps
    // 1.0.0 carried; only the new tarball is downloaded and shipped.
    let v2 = serde_json::json!([
        ["b", "1.0.0", {}, "use 1.1"],
        ["b", "1.1.0", {}, null],
        ["@s/c", "1.0.0", {}, null],
        ["a", "1.0.0", {"b": "^1.0.0", "@s/c": "1.x"}, null],
    ]);
    std::fs::remove_dir_all(&work).unwrap();
    let before = tarball_gets(&log).len();
    let sizes: Vec<u64> = ["tarballs/b/-/b-1.0.0.tgz", "tarballs/a/-/a-1.0.0.tgz"]
        .iter()
        .map(|p| std::fs::metadata(up_dir.join(p)).unwrap().len())
        .collect();
    registry(&work, &up_dir, &up.url, &v2);
    // npm pack is reproducible for the same files: the old tarballs are the same.
    assert_eq!(
        sizes[0],
        std::fs::metadata(up_dir.join("tarballs/b/-/b-1.0.0.tgz"))
            .unwrap()
            .len()
    );
    std::fs::write(
        &env.config,
        format!(
            "[[source]]\nname = \"js\"\ntype = \"npm\"\nregistry = \"{}\"\npackages = {{ a = \"^1\" }}\nlockfiles = [\"{}\"]\n",
            up.url,
            app.join("package-lock.json").display()
        ),
    )
    .unwrap();
    env.export("m2").expect_ok();
    assert_eq!(tarball_gets(&log)[before..], ["/tarballs/b/-/b-1.1.0.tgz"]);
    let shipped = dir_bytes(&env.only_bundle("m2"));
    assert!(
        shipped < 16 * 1024,
        "the delta ships one small tarball and packuments: {shipped} bytes"
    );
    env.import("m2").expect_ok();
    let (body, _) = curl_response(&[&format!("http://{}/npm/js/b", srv.addr)]);
    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        doc.pointer("/versions/1.0.0/deprecated").unwrap(),
        "use 1.1"
    );
    assert_eq!(doc.pointer("/dist-tags/latest").unwrap(), "1.1.0");
    // A fresh install takes the new version; the locked one still installs.
    npm(&app, &["ci", "--registry", &registry_url]).expect_ok();
    std::fs::remove_file(app.join("package-lock.json")).unwrap();
    std::fs::remove_dir_all(app.join("node_modules")).unwrap();
    npm(&app, &["install", "--registry", &registry_url]).expect_ok();
    let out = Command::new("node")
        .args(["-e", "console.log(require('a'))"])
        .current_dir(&app)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "a 1.0.0 @s/c 1.0.0 b 1.1.0"
    );
}

#[test]
fn npm_pins_stay_inside_after_upstream_unpublishes_them() {
    let test = "npm::npm_pins_stay_inside_after_upstream_unpublishes_them";
    if !have_tools(test, &["npm", "node", "python3", "curl"]) {
        return;
    }
    let env = Env::new();
    let (work, up_dir) = (env.root().join("work"), env.root().join("upstream"));
    std::fs::create_dir_all(&up_dir).unwrap();
    let log = env.root().join("upstream.log");
    let up = http_upstream_logged(&up_dir, &log);
    registry(
        &work,
        &up_dir,
        &up.url,
        &serde_json::json!([
            ["b", "1.0.0", {}, null],
            ["@s/c", "1.0.0", {}, null],
            ["a", "1.0.0", {"b": "^1.0.0"}, null],
        ]),
    );
    std::fs::write(
        &env.config,
        format!(
            "[[source]]\nname = \"js\"\ntype = \"npm\"\nregistry = \"{}\"\npackages = {{ a = \"^1\" }}\npin = [\"b@1.0.0\", \"@s/c@1.0.0\", \"d@9.9.9\"]\n",
            up.url
        ),
    )
    .unwrap();
    let m1 = env.export("m1").expect_ok();
    assert!(
        m1.stderr
            .contains("pinned package d 9.9.9 is neither upstream nor in the last bundle"),
        "{}",
        m1.stderr
    );
    env.import("m1").expect_ok();

    // Upstream unpublishes b 1.0.0 (publishing 1.1.0) and the whole of @s/c.
    std::fs::remove_dir_all(&work).unwrap();
    std::fs::remove_file(up_dir.join("@s/c")).unwrap();
    registry(
        &work,
        &up_dir,
        &up.url,
        &serde_json::json!([["b", "1.1.0", {}, null], ["a", "1.0.0", {"b": "^1.0.0"}, null]]),
    );
    let before = tarball_gets(&log).len();
    let m2 = env.export("m2").expect_ok();
    for kept in [
        "keeping pinned package b 1.0.0",
        "keeping pinned package @s/c 1.0.0",
    ] {
        assert!(m2.stderr.contains(kept), "{kept}: {}", m2.stderr);
    }
    // Kept from the last bundle, not downloaded again.
    assert_eq!(tarball_gets(&log)[before..], ["/tarballs/b/-/b-1.1.0.tgz"]);
    env.import("m2").expect_ok();
    let store = env.export_tree().join("npm/js");
    assert!(store.join("tarballs/b/-/b-1.0.0.tgz").is_file());
    assert!(store.join("tarballs/@s/c/-/c-1.0.0.tgz").is_file());

    let srv = env.serve();
    let (body, head) = curl_response(&[&format!("http://{}/npm/js/b", srv.addr)]);
    assert!(head.contains("200"), "{head}");
    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let versions: Vec<&String> = doc["versions"].as_object().unwrap().keys().collect();
    assert_eq!(versions, ["1.0.0", "1.1.0"]);
    assert_eq!(doc.pointer("/dist-tags/latest").unwrap(), "1.1.0");
    // The real npm installs both pins from ferry-in alone.
    let app = env.root().join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("package.json"),
        r#"{"name":"app","version":"1.0.0","dependencies":{"b":"1.0.0","@s/c":"1.0.0"}}"#,
    )
    .unwrap();
    let registry_url = format!("http://{}/npm/js/", srv.addr);
    npm(&app, &["install", "--registry", &registry_url]).expect_ok();
    let out = Command::new("node")
        .args(["-e", "console.log(require('b') + ' ' + require('@s/c'))"])
        .current_dir(&app)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "b 1.0.0 @s/c 1.0.0"
    );

    // Unpinned, b 1.0.0 and @s/c leave at the next export.
    std::fs::write(
        &env.config,
        format!(
            "[[source]]\nname = \"js\"\ntype = \"npm\"\nregistry = \"{}\"\npackages = {{ a = \"^1\" }}\n",
            up.url
        ),
    )
    .unwrap();
    env.export("m3").expect_ok();
    env.import("m3").expect_ok();
    let store = env.export_tree().join("npm/js");
    assert!(!store.join("tarballs/b/-/b-1.0.0.tgz").exists());
    assert!(!store.join("tarballs/@s").exists());
}

#[test]
fn npm_bad_upstream_data_and_bundles_are_refused_by_name() {
    let test = "npm::npm_bad_upstream_data_and_bundles_are_refused_by_name";
    if !have_tools(test, &["npm", "python3"]) {
        return;
    }
    let env = Env::new();
    let (work, up_dir) = (env.root().join("work"), env.root().join("upstream"));
    std::fs::create_dir_all(&up_dir).unwrap();
    let up = http_upstream(&up_dir);
    registry(
        &work,
        &up_dir,
        &up.url,
        &serde_json::json!([["a", "1.0.0", {"gone": "^2", "b": "^5"}, null], ["b", "1.0.0", {}, null]]),
    );
    let export = |extra: &str| {
        std::fs::write(
            &env.config,
            format!(
                "[[source]]\nname = \"js\"\ntype = \"npm\"\nregistry = \"{}\"\n{extra}",
                up.url
            ),
        )
        .unwrap();
        env.export("media")
    };
    export("packages = { a = \"1\" }\nunsatisfiable = \"error\"\n").expect_fail(&[
        "source \"js\"",
        "package a 1.0.0 depends on",
        "which no version on the registry satisfies",
    ]);
    export("packages = { nothere = \"1\" }\n")
        .expect_fail(&["source \"js\"", "package nothere is not on the registry"]);
    export("packages = { a = \"^3\" }\n").expect_fail(&["package a: no version matches"]);
    export("packages = { a = \"latest\" }\n")
        .expect_fail(&["source \"js\" (npm)", "is not a semver range"]);
    let lock = work.join("package-lock.json");
    std::fs::write(&lock, r#"{"lockfileVersion":1,"dependencies":{}}"#).unwrap();
    export(&format!("lockfiles = [\"{}\"]\n", lock.display()))
        .expect_fail(&["source \"js\"", "lockfileVersion 1 is not read"]);
    // A packument that is not one names the package; a version entry that
    // is not usable (not semver) is left out, as npm leaves it.
    std::fs::write(
        up_dir.join("b"),
        r#"{"name":"b","versions":{"1.0":{"version":"1.0","dist":{"tarball":"x"}}}}"#,
    )
    .unwrap();
    export("packages = { b = \"*\" }\n")
        .expect_fail(&["source \"js\"", "package b: no version matches"]);
    std::fs::write(up_dir.join("b"), r#"{"name":"other"}"#).unwrap();
    export("packages = { b = \"*\" }\n").expect_fail(&[
        "source \"js\"",
        "package b: malformed packument",
        "names \"other\"",
    ]);
    assert!(dir_names(&env.root().join("media")).is_empty());

    // Inside: a tarball that does not match its packument's integrity, a
    // packument naming a tarball not held, a path outside the layout.
    use ferry_protocol::catalog::SourceKind::Npm;
    let doc = |sha1: &str| {
        format!(
            r#"{{"name":"x","versions":{{"1.0.0":{{"version":"1.0.0","dist":{{"tarball":"t","shasum":"{sha1}"}}}}}}}}"#
        )
    };
    let wrong = doc(&"0".repeat(40));
    type Files<'a> = &'a [(&'a str, &'a [u8])];
    let odd = r#"{"name":"x","versions":{"1.0":{"version":"1.0","dist":{"tarball":"t"}}}}"#;
    let cases: [(Files<'_>, &str); 4] = [
        (&[("packuments/x.json", odd.as_bytes())], "version \"1.0\""),
        (
            &[
                ("packuments/x.json", wrong.as_bytes()),
                ("tarballs/x/-/x-1.0.0.tgz", b"tgz"),
            ],
            "the packument says",
        ),
        (
            &[("packuments/x.json", wrong.as_bytes())],
            "does not hold tarballs/x/-/x-1.0.0.tgz",
        ),
        (&[("x.json", b"{}")], "not a path of an npm source"),
    ];
    for (objects, needle) in cases {
        let env = Env::new();
        let objs: Vec<CraftedObject<'_>> =
            objects.iter().map(|(p, d)| ("js", Npm, *p, *d)).collect();
        craft_bundle(&env, "bad", &objs);
        env.import("bad").expect_fail(&[needle]);
        assert_eq!(env.applied_sequence(), 0);
    }
}
