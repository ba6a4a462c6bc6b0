//! pip with the `pip.conf` `client-config` writes and nothing else: no
//! `--index-url`, no other configuration file; an install resolves the
//! dependencies from `ferry-in serve` alone, reading each wheel's core
//! metadata from the PEP 658 `.metadata` file the project page offers.

use crate::pypi::{have_pip, upstream, wheel, write_config};
use ferry_e2e::*;
use ferry_protocol::id::Sha256;
use std::process::Command;

#[test]
fn pip_install_with_only_the_written_pip_conf() {
    if !have_pip("pip_install_with_only_the_written_pip_conf") {
        return;
    }
    let env = Env::new();
    let up_dir = env.root().join("upstream-pypi");
    let (a1, b10) = (wheel("alpha-1.0-"), wheel("beta-1.0-"));
    upstream(&up_dir, &[&a1, &b10], &[]);
    let up = http_upstream(&up_dir);
    write_config(
        &env,
        &format!(
            "[[source]]\nname = \"py\"\ntype = \"pypi\"\nindex = \"{}/simple/\"\nrequirements = [\"alpha==1.0\"]\npython = [\"3.11\"]\nplatforms = [\"manylinux_2_17_x86_64\"]\n",
            up.url
        ),
    );
    env.export("m").expect_ok();
    env.import("m").expect_ok();
    drop(up); // pip must not need the upstream
    let server = env.serve();
    let out = client_config(&env, &format!("http://{}", server.addr), "pip", &[]);
    let conf = out.join("pip/pip.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    assert!(
        text.contains(&format!(
            "index-url = http://{}/pypi/py/simple/",
            server.addr
        )),
        "{text}"
    );

    // PEP 658: the page offers each wheel's METADATA with its SHA-256.
    let held = env.served_in("py", &format!("files/{a1}"));
    let meta =
        ferry_formats::pypi::wheel_metadata(std::fs::File::open(&held).unwrap(), 1 << 20).unwrap();
    let page = curl(&[
        "-H",
        "Accept: application/vnd.pypi.simple.v1+json",
        &format!("http://{}/pypi/py/simple/alpha/", server.addr),
    ]);
    let page: serde_json::Value = serde_json::from_slice(&page).unwrap();
    assert_eq!(
        page["files"][0]["core-metadata"]["sha256"].as_str(),
        Some(Sha256::of(&meta).to_hex().as_str()),
        "{page}"
    );
    let served = curl(&[&format!(
        "http://{}/pypi/py/files/{a1}.metadata",
        server.addr
    )]);
    assert_eq!(served, meta);

    let target = env.root().join("site-packages");
    let o = Command::new("python3")
        .args(["-m", "pip", "install", "-v", "--target"])
        .arg(&target)
        .arg("alpha==1.0")
        .env("PIP_CONFIG_FILE", &conf)
        .env("PIP_CACHE_DIR", env.root().join("pip-cache"))
        .env_remove("PIP_INDEX_URL")
        .env_remove("PIP_EXTRA_INDEX_URL")
        .env_remove("PIP_FIND_LINKS")
        .env("PIP_NO_INPUT", "1")
        .output()
        .unwrap();
    let r = Run::from(o).expect_ok();
    assert_eq!(
        std::fs::read_to_string(target.join("alpha/__init__.py")).unwrap(),
        "VERSION = '1.0'\n"
    );
    assert!(
        target.join("beta/__init__.py").is_file(),
        "the dependency beta came from the index"
    );
    assert!(
        r.stdout.contains(&format!("{a1}.metadata")),
        "pip did not read the .metadata file:\n{}",
        r.stdout
    );
}
