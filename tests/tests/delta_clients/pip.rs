//! A wheel update: two releases of a project built by `pip wheel`
//! (setuptools), differing in one module, behind a static PEP 503 index.
//! The new wheel ships as a patch of its inflated members against the old
//! one, and `pip download` / `pip install` with `--require-hashes` get the
//! exact wheel from `ferry-in serve`.

use super::{delta_high, patched_line, real_files, touch_up};
use ferry_e2e::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn sha(data: &[u8]) -> String {
    ferry_protocol::id::Sha256::of(data).to_hex()
}

/// `python3 -m pip ARGS…` without the user's configuration.
fn pip(args: &[&str]) -> Vec<u8> {
    pip_of("python3", args)
}

/// `python -m pip args…` with no user configuration.
fn pip_of(python: &str, args: &[&str]) -> Vec<u8> {
    sh(Command::new(python)
        .args(["-m", "pip", "--disable-pip-version-check", "--no-cache-dir"])
        .args(args)
        .env("PIP_CONFIG_FILE", "/dev/null")
        .env_remove("PIP_FIND_LINKS")
        .env_remove("PIP_INDEX_URL")
        .env_remove("PIP_EXTRA_INDEX_URL")
        .env("PIP_NO_INPUT", "1"))
}

/// Builds the wheel of project `tool` `version` (package `tool` holding the
/// modules under `src`) into `up/packages/`, and writes the upstream's
/// PEP 503 pages for every wheel there; returns the wheel's path.
fn wheel(work: &Path, up: &Path, src: &Path, version: &str) -> PathBuf {
    let proj = work.join(format!("tool-{version}"));
    let _ = std::fs::remove_dir_all(&proj);
    std::fs::create_dir_all(&proj).unwrap();
    copy_tree(src, &proj.join("tool"));
    std::fs::write(
        proj.join("tool/__init__.py"),
        format!("VERSION = {version:?}\n"),
    )
    .unwrap();
    let mut packages = vec!["tool".to_string()];
    for e in std::fs::read_dir(src).unwrap() {
        packages.push(format!("tool.{}", e.unwrap().file_name().to_string_lossy()));
    }
    packages.sort();
    std::fs::write(
        proj.join("pyproject.toml"),
        format!(
            "[build-system]\nrequires = [\"setuptools>=61\"]\nbuild-backend = \"setuptools.build_meta\"\n\
             [project]\nname = \"tool\"\nversion = \"{version}\"\nrequires-python = \">=3.8\"\n\
             [tool.setuptools]\npackages = {packages:?}\n"
        ),
    )
    .unwrap();
    let pkgs = up.join("packages");
    let python = wheel_python().expect("checked by have_pip");
    pip_of(
        python,
        &[
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            pkgs.to_str().unwrap(),
        ]
        .into_iter()
        .chain([proj.to_str().unwrap()])
        .collect::<Vec<_>>(),
    );
    let links: String = dir_names(&pkgs)
        .iter()
        .map(|w| {
            let digest = sha(&std::fs::read(pkgs.join(w)).unwrap());
            format!("<a href=\"../../packages/{w}#sha256={digest}\">{w}</a><br/>\n")
        })
        .collect();
    std::fs::create_dir_all(up.join("simple/tool")).unwrap();
    std::fs::write(
        up.join("simple/index.html"),
        "<html><body><a href=\"tool/\">tool</a></body></html>\n",
    )
    .unwrap();
    std::fs::write(
        up.join("simple/tool/index.html"),
        format!("<html><body>\n{links}</body></html>\n"),
    )
    .unwrap();
    pkgs.join(format!("tool-{version}-py3-none-any.whl"))
}

#[test]
fn an_updated_wheel_ships_as_a_patch_and_pip_gets_it_with_hashes_checked() {
    if !crate::pypi::have_pip(&current_test()) {
        return;
    }
    let env = Env::new();
    let work = env.root().join("work");
    let up = env.root().join("upstream-pypi");
    let src = work.join("src");
    real_files(&src);
    let v1 = wheel(&work, &up, &src, "1.0");
    let upstream = http_upstream(&up);
    std::fs::write(
        &env.config,
        format!(
            "[[source]]\nname = \"web\"\ntype = \"pypi\"\nindex = \"{}/simple/\"\n\
             requirements = [\"tool\"]\npython = [\"3.11\"]\nplatforms = [\"manylinux_2_17_x86_64\"]\n",
            upstream.url
        ),
    )
    .unwrap();
    delta_high(&env);
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();

    touch_up(&src.join("json/decoder.py"), "CHANGED_IN = '1.1'");
    let v2 = wheel(&work, &up, &src, "1.1");
    std::fs::remove_file(&v1).unwrap();
    let r = env.export("m2").expect_ok();
    let bundle = dir_bytes(&env.only_bundle("m2"));
    let new = std::fs::read(&v2).unwrap();
    eprintln!(
        "update bundle: {bundle} bytes; new wheel {} bytes; {}",
        new.len(),
        patched_line(&r)
    );
    assert!(
        bundle * 10 < new.len() as u64,
        "update bundle {bundle} bytes for a {}-byte wheel: not shipped as a patch",
        new.len()
    );
    env.import("m2").expect_ok();

    // pip, checking the hash pinned in the requirements, gets the exact wheel.
    let srv = env.serve();
    let index = format!("http://{}/pypi/web/simple/", srv.addr);
    let reqs = work.join("requirements.txt");
    std::fs::write(&reqs, format!("tool==1.1 --hash=sha256:{}\n", sha(&new))).unwrap();
    let dest = work.join("dl");
    pip(&[
        "download",
        "--require-hashes",
        "--no-deps",
        "--index-url",
        &index,
        "-r",
        reqs.to_str().unwrap(),
        "--dest",
        dest.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read(dest.join("tool-1.1-py3-none-any.whl")).unwrap(),
        new
    );
    let target = work.join("site");
    pip(&[
        "install",
        "--require-hashes",
        "--no-deps",
        "--index-url",
        &index,
        "-r",
        reqs.to_str().unwrap(),
        "--target",
        target.to_str().unwrap(),
    ]);
    let got = sh(Command::new("python3")
        .args([
            "-c",
            "import tool, tool.json.decoder as d; print(tool.VERSION, d.CHANGED_IN)",
        ])
        .env("PYTHONPATH", &target));
    assert_eq!(String::from_utf8_lossy(&got).trim(), "1.1 1.1");
}
