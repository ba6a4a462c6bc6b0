//! Crate registries end to end: a stand-in sparse registry built from real
//! published crates (the `.crate` files and index lines this machine's
//! cargo downloaded to build the workspace: `itoa`, `crc32fast`, `cfg-if`),
//! served by `python3 -m http.server`; `ferry-out export`, `ferry-in
//! import`, then the real `cargo fetch` and `cargo build --offline` of a
//! small project against `ferry-in serve`, with `CARGO_HOME` in a temporary
//! directory holding only the source replacement.
//!
//! Set `FERRY_TEST_CARGO=1` to also mirror a few real crates from the
//! registry this machine's cargo uses (`https://index.crates.io/`, or
//! `FERRY_TEST_CARGO_INDEX`).

use ferry_e2e::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The `.cargo/config.toml` a site gives its developers (what
/// `store::cargo::cargo_config_toml` writes for `ferry-in client-config`).
fn client_config(addr: &str, source: &str) -> String {
    format!(
        "[source.crates-io]\nreplace-with = \"ferry-{source}\"\n\n[source.ferry-{source}]\nregistry = \"sparse+http://{addr}/cargo/{source}/\"\n"
    )
}

/// A cargo home holding only the client configuration for `addr`.
fn cargo_home_for(root: &Path, addr: &str, source: &str) -> PathBuf {
    let home = root.join("cargo-home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("config.toml"), client_config(addr, source)).unwrap();
    home
}

/// `cargo ARGS` in `dir` with `home` as `CARGO_HOME`.
fn cargo(home: &Path, dir: &Path, args: &[&str]) -> Run {
    let o = Command::new("cargo")
        .args(args)
        .current_dir(dir)
        .env("CARGO_HOME", home)
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .env("CARGO_TERM_COLOR", "never")
        .env("CARGO_NET_RETRY", "1")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .expect("cargo runs");
    Run {
        ok: o.status.success(),
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// A small binary crate using `itoa` and `crc32fast`.
fn project(dir: &Path) {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nitoa = \"1\"\ncrc32fast = \"1\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("src/main.rs"),
        "fn main() {\n    let mut b = itoa::Buffer::new();\n    let s = b.format(123456789u32);\n    println!(\"{s} {:08x}\", crc32fast::hash(s.as_bytes()));\n}\n",
    )
    .unwrap();
}

/// The version of `name` in the lockfile of `dir`.
fn locked_version(dir: &Path, name: &str) -> String {
    let lock = std::fs::read_to_string(dir.join("Cargo.lock")).unwrap();
    let at = lock
        .find(&format!("name = \"{name}\"\nversion = \""))
        .unwrap_or_else(|| panic!("{name} not in {lock}"));
    let rest = &lock[at..];
    let v = rest.split("version = \"").nth(1).unwrap();
    v[..v.find('"').unwrap()].to_string()
}

/// GETs of `.crate` files in an http.server request log.
fn crate_gets(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split("\"GET ").nth(1)?.split(' ').next())
        .filter(|p| p.ends_with(".crate"))
        .map(String::from)
        .collect()
}

fn get(addr: &str, path: &str) -> (u16, String) {
    let (body, head) = curl_response(&[&format!("http://{addr}{path}")]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[test]
fn cargo_fetch_and_offline_build_against_ferry_in_then_a_delta() {
    let test = "cargo::cargo_fetch_and_offline_build_against_ferry_in_then_a_delta";
    if !have_tools(test, &["cargo", "python3", "curl"]) {
        return;
    }
    let Some(c) = local_crates(
        test,
        &[
            ("itoa", "1.0.18"),
            ("itoa", "1.0.19"),
            ("crc32fast", "1.5.4"),
            ("cfg-if", "1.0.4"),
        ],
    ) else {
        return;
    };
    let (itoa18, itoa19, crc, cfg_if) = (&c[0], &c[1], &c[2], &c[3]);
    let env = Env::new();
    let up_dir = env.root().join("upstream");
    cargo_registry(&up_dir, &[itoa18, crc, cfg_if], None);
    let log = env.root().join("upstream.log");
    let up = http_upstream_logged(&up_dir, &log);
    let config = |extra: &str| {
        std::fs::write(
            &env.config,
            format!(
                "[[source]]\nname = \"rs\"\ntype = \"cargo\"\nindex = \"sparse+{}/\"\ncrates = {{ itoa = \"1\", crc32fast = \"1\" }}\n{extra}",
                up.url
            ),
        )
        .unwrap()
    };
    config("");

    // First export: the two roots and cfg-if, which crc32fast needs; the
    // optional dependencies the stand-in lacks are warnings.
    let r = env.export("m1").expect_ok();
    assert!(
        r.stderr.contains("crate itoa 1.0.18 depends on no-panic \"^0.1\" (normal), which no version on the registry satisfies"),
        "{}",
        r.stderr
    );
    env.import("m1").expect_ok();
    let store = env.export_tree().join("cargo/rs");
    let mut crates = dir_names(&store.join("crates"));
    crates.sort();
    assert_eq!(crates, ["cfg-if", "crc32fast", "itoa"]);
    assert_eq!(
        std::fs::read_to_string(store.join("it/oa/itoa")).unwrap(),
        format!("{}\n", itoa18.line),
        "the index file is upstream's line, byte for byte"
    );

    let srv = env.serve();
    let (st, body) = get(&srv.addr, "/cargo/rs/config.json");
    assert_eq!(st, 200);
    let cfg: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        cfg["dl"],
        format!(
            "http://{}/cargo/rs/crates/{{crate}}/{{crate}}-{{version}}.crate",
            srv.addr
        )
    );
    assert_eq!(get(&srv.addr, "/cargo/rs/no/-s/no-such").0, 404);

    // The real cargo resolves, downloads and builds against ferry-in alone.
    let home = cargo_home_for(env.root(), &srv.addr, "rs");
    let app = env.root().join("app");
    project(&app);
    cargo(&home, &app, &["fetch"]).expect_ok();
    assert_eq!(locked_version(&app, "itoa"), "1.0.18");
    cargo(&home, &app, &["build", "--offline"]).expect_ok();
    let out = Command::new(app.join("target/debug/app")).output().unwrap();
    let want = format!("123456789 {:08x}", crc32_of(b"123456789"));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), want);

    // Upstream publishes itoa 1.0.19; the lockfile keeps 1.0.18 carried.
    cargo_registry(&up_dir, &[itoa18, itoa19, crc, cfg_if], None);
    config(&format!(
        "lockfiles = [\"{}\"]\n",
        app.join("Cargo.lock").display()
    ));
    let before = crate_gets(&log).len();
    env.export("m2").expect_ok();
    let fetched = crate_gets(&log)[before..].to_vec();
    assert_eq!(
        fetched,
        ["/crates/itoa/itoa-1.0.19.crate"],
        "only the new version is downloaded"
    );
    let new_size = std::fs::metadata(&itoa19.file).unwrap().len();
    let shipped = dir_bytes(&env.only_bundle("m2"));
    assert!(
        shipped < new_size + 16 * 1024,
        "the delta ships itoa 1.0.19 ({new_size} bytes) and its index file, not the unchanged crates: {shipped} bytes"
    );
    env.import("m2").expect_ok();
    // A generation is an index over objects: written out again to be read.
    let store = env.export_tree().join("cargo/rs");
    assert_eq!(
        std::fs::read_to_string(store.join("it/oa/itoa")).unwrap(),
        format!("{}\n{}\n", itoa18.line, itoa19.line)
    );
    // The locked build still works; an update moves to the new version.
    cargo(&home, &app, &["build", "--offline", "--locked"]).expect_ok();
    cargo(&home, &app, &["update", "-p", "itoa"]).expect_ok();
    assert_eq!(locked_version(&app, "itoa"), "1.0.19");
    cargo(&home, &app, &["fetch"]).expect_ok();
    cargo(&home, &app, &["build", "--offline"]).expect_ok();

    // The lockfile moved on: 1.0.18 is neither locked nor the newest any
    // more, so it leaves the store.
    env.export("m3").expect_ok();
    env.import("m3").expect_ok();
    let store = env.export_tree().join("cargo/rs");
    assert_eq!(dir_names(&store.join("crates/itoa")), ["itoa-1.0.19.crate"]);
    assert_eq!(
        std::fs::read_to_string(store.join("it/oa/itoa")).unwrap(),
        format!("{}\n", itoa19.line)
    );
    cargo(&home, &app, &["build", "--offline", "--locked"]).expect_ok();

    // Nothing changed upstream: nothing to export.
    let r = env.export("m4").expect_ok();
    assert!(dir_names(&env.root().join("m4")).is_empty(), "{}", r.all());
}

/// CRC-32 (IEEE), bit by bit: what crc32fast must print.
fn crc32_of(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A synthetic crate (random bytes) and its index line with `deps`.
fn synthetic(dir: &Path, name: &str, version: &str, deps: &str, seed: u64) -> LocalCrate {
    let data = random_bytes(2000, seed);
    let file = dir.join(format!("{name}-{version}.crate"));
    std::fs::write(&file, &data).unwrap();
    LocalCrate {
        name: name.into(),
        version: version.into(),
        file,
        line: format!(
            r#"{{"name":"{name}","vers":"{version}","deps":[{deps}],"cksum":"{}","features":{{}},"yanked":false}}"#,
            ferry_protocol::id::Sha256::of(&data)
        ),
    }
}

#[test]
fn cargo_bad_upstream_data_fails_naming_source_crate_and_version() {
    let env = Env::new();
    let work = env.root().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let dep = r#"{"name":"gone","req":"^2","features":[],"optional":false,"default_features":true,"target":null,"kind":"normal"}"#;
    let a = synthetic(&work, "alpha", "1.0.0", dep, 1);
    let up_dir = env.root().join("upstream");
    let up = http_upstream(&up_dir);
    let export_with = |crates: &[&LocalCrate], extra: &str, media: &str| {
        cargo_registry(&up_dir, crates, None);
        std::fs::write(
            &env.config,
            format!(
                "[[source]]\nname = \"rs\"\ntype = \"cargo\"\nindex = \"{}\"\n{extra}",
                up.url
            ),
        )
        .unwrap();
        env.export(media)
    };
    let roots = "crates = { alpha = \"1\" }\n";
    // An unsatisfiable dependency: a warning by default, an error when asked.
    let r = export_with(&[&a], roots, "warned").expect_ok();
    env.import("warned").expect_ok();
    assert!(
        r.stderr
            .contains("source \"rs\": crate alpha 1.0.0 depends on gone \"^2\""),
        "{}",
        r.stderr
    );
    export_with(&[&a], &format!("{roots}unsatisfiable = \"error\"\n"), "media").expect_fail(&[
        "source \"rs\"",
        "crate alpha 1.0.0 depends on gone \"^2\" (normal), which no version on the registry satisfies",
    ]);
    // A malformed index entry names the crate and the version.
    let mut broken = synthetic(&work, "beta", "2.1.0", "", 2);
    broken.line = broken.line.replace("\"cksum\"", "\"checksum\"");
    export_with(&[&broken], "crates = { beta = \"2\" }\n", "media").expect_fail(&[
        "source \"rs\"",
        "crate beta: malformed index file",
        "(version 2.1.0): not an index entry",
    ]);
    // A root the registry lacks, or that no version matches.
    export_with(&[&a], "crates = { nothere = \"1\" }\n", "media")
        .expect_fail(&["source \"rs\"", "crate nothere is not on the registry"]);
    export_with(&[&a], "crates = { alpha = \"2\" }\n", "media")
        .expect_fail(&["crate alpha: no version matches \"^2\""]);
    // A lockfile whose checksum is not the index's.
    let lock = work.join("Cargo.lock");
    std::fs::write(
        &lock,
        format!(
            "version = 4\n\n[[package]]\nname = \"alpha\"\nversion = \"1.0.0\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"{}\"\n",
            "0".repeat(64)
        ),
    )
    .unwrap();
    export_with(
        &[&a],
        &format!("lockfiles = [\"{}\"]\n", lock.display()),
        "media",
    )
    .expect_fail(&[
        "source \"rs\"",
        "crate alpha 1.0.0 has checksum 0000",
        "the index's cksum is",
    ]);
    // Settings errors.
    export_with(&[&a], "crates = { alpha = \"one\" }\n", "media").expect_fail(&[
        "source \"rs\" (cargo)",
        "\"one\" is not a semver requirement",
    ]);
    export_with(&[&a], "", "media").expect_fail(&[
        "source \"rs\" (cargo)",
        "needs `crates` (or `lockfiles`, or `pin`)",
    ]);
    assert!(dir_names(&env.root().join("media")).is_empty());
    // A yanked version is carried only when asked for exactly.
    let mut y = synthetic(&work, "gamma", "1.1.0", "", 3);
    y.line = y.line.replace("\"yanked\":false", "\"yanked\":true");
    let old = synthetic(&work, "gamma", "1.0.0", "", 4);
    export_with(&[&old, &y], "crates = { gamma = \"1\" }\n", "g1").expect_ok();
    env.import("g1").expect_ok();
    let store = env.export_tree().join("cargo/rs/crates/gamma");
    assert_eq!(dir_names(&store), ["gamma-1.0.0.crate"]);
    export_with(&[&old, &y], "crates = { gamma = \"=1.1.0\" }\n", "g2").expect_ok();
    env.import("g2").expect_ok();
    let store = env.export_tree().join("cargo/rs/crates/gamma");
    assert_eq!(dir_names(&store), ["gamma-1.1.0.crate"]);
}

/// Paths and bytes of a crafted cargo source.
type Files<'a> = &'a [(&'a str, &'a [u8])];

#[test]
fn cargo_inside_refuses_index_files_not_matching_the_crates() {
    use ferry_protocol::catalog::SourceKind::Cargo;
    let data = b"crate bytes";
    let line = |sum: &str| {
        format!(
            r#"{{"name":"itoa","vers":"1.0.0","deps":[],"cksum":"{sum}","features":{{}},"yanked":false}}"#
        )
    };
    let good = line(&ferry_protocol::id::Sha256::of(data).to_hex());
    let wrong = line(&"0".repeat(64));
    let crate_path = "crates/itoa/itoa-1.0.0.crate";
    let cases: [(Files<'_>, &str); 4] = [
        (
            &[(crate_path, data), ("it/oa/itoa", wrong.as_bytes())],
            "has cksum 0000",
        ),
        (
            &[("it/oa/itoa", good.as_bytes())],
            "does not hold crates/itoa/itoa-1.0.0.crate",
        ),
        (&[(crate_path, data)], "a crate file no index line lists"),
        (&[("config.json", b"{}")], "not a path of a cargo source"),
    ];
    for (objects, needle) in cases {
        let env = Env::new();
        let objs: Vec<CraftedObject<'_>> =
            objects.iter().map(|(p, d)| ("rs", Cargo, *p, *d)).collect();
        craft_bundle(&env, "bad", &objs);
        env.import("bad").expect_fail(&[needle]);
        assert_eq!(env.applied_sequence(), 0);
        assert!(!env.in_state.join("store/current").exists(), "{needle}");
    }
}

#[test]
fn cargo_real_registry_when_asked() {
    let test = "cargo::cargo_real_registry_when_asked";
    if !switched_on(
        test,
        "FERRY_TEST_CARGO",
        "it mirrors real crates from the network",
    ) {
        return;
    }
    if !have_tools(test, &["cargo", "curl"]) {
        return;
    }
    let index = std::env::var("FERRY_TEST_CARGO_INDEX")
        .unwrap_or_else(|_| "https://index.crates.io/".into());
    let env = Env::new();
    std::fs::write(
        &env.config,
        format!(
            "[[source]]\nname = \"real\"\ntype = \"cargo\"\nindex = \"{index}\"\ncrates = {{ itoa = \"1\", crc32fast = \"1\" }}\noptional_dependencies = false\n"
        ),
    )
    .unwrap();
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();
    let crates = dir_names(&env.export_tree().join("cargo/real/crates"));
    assert_eq!(crates, ["cfg-if", "crc32fast", "itoa"]);
    let srv = env.serve();
    let home = cargo_home_for(env.root(), &srv.addr, "real");
    let app = env.root().join("app");
    project(&app);
    cargo(&home, &app, &["fetch"]).expect_ok();
    cargo(&home, &app, &["build", "--offline"]).expect_ok();
}

#[test]
fn cargo_pins_stay_after_upstream_drops_them() {
    let env = Env::new();
    let work = env.root().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let (old, new) = (
        synthetic(&work, "delta", "1.0.0", "", 5),
        synthetic(&work, "delta", "1.1.0", "", 6),
    );
    let up_dir = env.root().join("upstream");
    cargo_registry(&up_dir, &[&old, &new], None);
    let up = http_upstream(&up_dir);
    std::fs::write(
        &env.config,
        format!(
            "[[source]]\nname = \"rs\"\ntype = \"cargo\"\nindex = \"{}\"\ncrates = {{ delta = \"1\" }}\npin = [\"delta@1.0.0\"]\n",
            up.url
        ),
    )
    .unwrap();
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();
    let store = env.export_tree().join("cargo/rs");
    let both = ["delta-1.0.0.crate", "delta-1.1.0.crate"];
    assert_eq!(dir_names(&store.join("crates/delta")), both);
    // Upstream drops the pinned version: it stays, with its index line.
    cargo_registry(&up_dir, &[&new], None);
    let r = env.export("m2").expect_ok();
    assert!(
        r.stderr.contains("keeping pinned crate delta 1.0.0"),
        "{}",
        r.stderr
    );
    env.import("m2").expect_ok();
    let store = env.export_tree().join("cargo/rs");
    assert_eq!(dir_names(&store.join("crates/delta")), both);
    assert_eq!(
        std::fs::read_to_string(store.join("de/lt/delta")).unwrap(),
        format!("{}\n{}\n", new.line, old.line)
    );
    // The next export with nothing new ships nothing.
    let r = env.export("m3").expect_ok();
    assert!(dir_names(&env.root().join("m3")).is_empty(), "{}", r.all());
}

#[test]
fn cargo_dev_and_optional_dependencies_follow_the_settings() {
    let env = Env::new();
    let work = env.root().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let dep = |name: &str, optional: bool, kind: &str| {
        format!(
            r#"{{"name":"{name}","req":"^1","features":[],"optional":{optional},"default_features":true,"target":"cfg(windows)","kind":"{kind}"}}"#
        )
    };
    let deps = [
        dep("zeta", false, "dev"),
        dep("eta", true, "normal"),
        dep("theta", false, "build"),
    ]
    .join(",");
    let crates = [
        synthetic(&work, "epsilon", "1.0.0", &deps, 7),
        synthetic(&work, "zeta", "1.0.0", "", 8),
        synthetic(&work, "eta", "1.0.0", "", 9),
        synthetic(&work, "theta", "1.0.0", "", 10),
    ];
    let up_dir = env.root().join("upstream");
    cargo_registry(&up_dir, &crates.iter().collect::<Vec<_>>(), None);
    let up = http_upstream(&up_dir);
    let mut seq = 0;
    let mut carried = |extra: &str| {
        std::fs::write(
            &env.config,
            format!(
                "[[source]]\nname = \"rs\"\ntype = \"cargo\"\nindex = \"{}\"\ncrates = {{ epsilon = \"1\" }}\n{extra}",
                up.url
            ),
        )
        .unwrap();
        seq += 1;
        let media = format!("m{seq}");
        env.export(&media).expect_ok();
        env.import(&media).expect_ok();
        dir_names(&env.export_tree().join("cargo/rs/crates"))
    };
    // Defaults: normal and build dependencies of every target, optional ones
    // too; no dev-dependencies.
    assert_eq!(carried(""), ["epsilon", "eta", "theta"]);
    assert_eq!(
        carried("dev_dependencies = true\noptional_dependencies = false\n"),
        ["epsilon", "theta", "zeta"]
    );
    assert_eq!(carried("dependencies = false\n"), ["epsilon"]);
}

#[test]
fn a_registry_wanting_cargos_bare_token_is_read_with_token_scheme_bare() {
    let env = Env::new();
    let work = env.root().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let a = synthetic(&work, "alpha", "1.0.0", "", 1);
    let up_dir = env.root().join("upstream");
    cargo_registry(&up_dir, &[&a], None);
    // cargo sends the token itself as the header's value, no scheme.
    let up = http_upstream_with_auth(&up_dir, "cio-t0ken");
    let token = env.root().join("token");
    std::fs::write(&token, "cio-t0ken\n").unwrap();
    let export_with = |extra: &str, media: &str| {
        std::fs::write(
            &env.config,
            format!(
                "[[source]]\nname = \"rs\"\ntype = \"cargo\"\nindex = \"{}\"\n\
                 crates = {{ alpha = \"1\" }}\ntoken_file = \"{}\"\n{extra}",
                up.url,
                token.display()
            ),
        )
        .unwrap();
        env.export(media)
    };
    export_with("", "media").expect_fail(&["source \"rs\"", "401"]);
    export_with("token_scheme = \"Token\"\n", "media")
        .expect_fail(&["`token_scheme` is \"bearer\" or \"bare\", not \"Token\""]);
    assert!(dir_names(&env.root().join("media")).is_empty());
    export_with("token_scheme = \"bare\"\n", "bare").expect_ok();
    env.import("bare").expect_ok();
    assert!(env
        .served_in("rs", "crates/alpha/alpha-1.0.0.crate")
        .is_file());
}
