//! Packaging: the Debian packages scripts/package.sh builds, installed with
//! dpkg into a throwaway root and used from there; the Kubernetes manifests
//! of deploy/kubernetes, parsed and checked against each other and against
//! the real binary.
//!
//! The package test builds release binaries and both packages (minutes), so
//! it is `#[ignore]`d and scripts/test.sh leaves it out; run it with
//! `FERRY_TEST_PACKAGING=1 cargo test -p ferry-e2e --test e2e packaging:: -- --ignored`.

use ferry_e2e::{bin, have_tools, switched_on};
use serde_norway::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `cmd`, asserts it succeeded, returns its stdout.
fn output(cmd: &mut Command) -> String {
    let o = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The one `NAME_*.deb` in `dir`.
fn deb(dir: &Path, name: &str) -> PathBuf {
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let f = p.file_name().unwrap().to_string_lossy();
            f.starts_with(&format!("{name}_")) && f.ends_with(".deb")
        })
        .collect();
    assert_eq!(found.len(), 1, "one {name} package in {}", dir.display());
    found.into_iter().next().unwrap()
}

/// An empty root that dpkg can install into: its own database, nothing else.
fn dpkg_root(root: &Path) {
    let db = root.join("var/lib/dpkg");
    for d in ["info", "updates", "triggers"] {
        std::fs::create_dir_all(db.join(d)).unwrap();
    }
    for f in ["status", "available"] {
        std::fs::write(db.join(f), b"").unwrap();
    }
    std::fs::create_dir_all(root.join("etc")).unwrap();
}

/// `dpkg --root ROOT ARGS…`: maintainer scripts run on this machine with
/// DPKG_ROOT set (the root holds no shell to chroot into), and the
/// package's Depends (libc) are not looked for in the empty root.
fn dpkg(root: &Path, args: &[&str]) -> String {
    output(
        Command::new("dpkg")
            .arg(format!("--root={}", root.display()))
            .args(["--force-script-chrootless", "--force-depends"])
            .args(args),
    )
}

/// What one agent's package must hold and do, installed under `root`.
/// `subs`: subcommands its man page must list, each with a page of its own.
fn check_installed(root: &Path, deb: &Path, agent: &str, units: &[&str], subs: &[&str]) {
    let fields = output(
        Command::new("dpkg-deb")
            .args(["-f"])
            .arg(deb)
            .args(["Package", "Version", "Depends", "Section"]),
    );
    assert!(fields.contains(&format!("Package: {agent}\n")), "{fields}");
    assert!(fields.contains("Version: 0."), "{fields}");
    assert!(
        fields.contains("libc6"),
        "Depends from the binary: {fields}"
    );
    let conffiles = output(Command::new("dpkg-deb").arg("-I").arg(deb).arg("conffiles"));
    assert!(
        conffiles
            .lines()
            .any(|l| l == format!("/etc/ferry/{agent}.toml")),
        "the config is a conffile: {conffiles}"
    );
    dpkg(root, &["-i", &deb.display().to_string()]);
    let status = dpkg(root, &["-s", agent]);
    assert!(status.contains("Status: install ok installed"), "{status}");

    let exe = root.join("usr/bin").join(agent);
    let version = output(Command::new(&exe).arg("--version"));
    assert_eq!(version.trim(), format!("{agent} 0.1.0"));
    for unit in units {
        let path = root.join("usr/lib/systemd/system").join(unit);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let exec = text
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .unwrap_or_else(|| panic!("{unit}: no ExecStart"));
        assert!(
            exec.starts_with(&format!("/usr/bin/{agent} ")),
            "{unit} runs the packaged binary: {exec}"
        );
    }
    let sysusers =
        std::fs::read_to_string(root.join(format!("usr/lib/sysusers.d/{agent}.conf"))).unwrap();
    assert!(sysusers.contains(&format!("u {agent} ")), "{sysusers}");
    if Path::new("/usr/bin/systemd-sysusers").exists() {
        let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap_or_default();
        assert!(
            passwd.lines().any(|l| l.starts_with(&format!("{agent}:"))),
            "postinst made the user {agent} in the root: {passwd}"
        );
    }

    let man = root.join(format!("usr/share/man/man1/{agent}.1.gz"));
    let page = output(
        Command::new("man")
            .arg("-l")
            .arg(&man)
            .env("MANWIDTH", "100"),
    );
    assert!(page.contains("SYNOPSIS"), "{page}");
    for sub in subs {
        assert!(page.contains(sub), "{agent}(1) lists {sub}: {page}");
        let sub_page = root.join(format!("usr/share/man/man1/{agent}-{sub}.1.gz"));
        assert!(sub_page.is_file(), "{} is missing", sub_page.display());
    }
    assert!(
        !page.contains("generate-docs"),
        "the hidden generator is not documented: {page}"
    );

    let bash = root.join(format!("usr/share/bash-completion/completions/{agent}"));
    let complete = output(Command::new("bash").arg("-c").arg(format!(
        "source '{}' && complete -p {agent}",
        bash.display()
    )));
    assert!(complete.contains(agent), "{complete}");
    for f in [
        format!("usr/share/zsh/vendor-completions/_{agent}"),
        format!("usr/share/fish/vendor_completions.d/{agent}.fish"),
    ] {
        let text = std::fs::read_to_string(root.join(&f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(text.contains("status"), "{f} completes subcommands");
    }

    dpkg(root, &["-P", agent]);
    assert!(!exe.exists(), "purge removed {}", exe.display());
    assert!(
        !root.join(format!("etc/ferry/{agent}.toml")).exists(),
        "purge removed the conffile"
    );
}

/// Builds both packages with scripts/package.sh, installs each into a
/// throwaway root with dpkg, checks what it holds and that it works from
/// there, then purges it. The ferry-in package is first carried through a
/// bundle (export, import) and installed from the inside's store.
#[test]
#[ignore = "builds release binaries and packages: FERRY_TEST_PACKAGING=1 … -- --ignored"]
fn debian_packages_install_and_work() {
    let test = "debian_packages_install_and_work";
    if !switched_on(test, "FERRY_TEST_PACKAGING", "it builds release packages")
        || !have_tools(test, &["dpkg", "dpkg-deb", "man", "bash"])
    {
        return;
    }
    let _heavy = ferry_e2e::heavy();
    output(Command::new("bash").arg(workspace().join("scripts/package.sh")));
    let target = bin("ferry-in")
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .to_path_buf();
    let debs = target.join("debian");
    for (agent, units, subs) in [
        (
            "ferry-in",
            &["ferry-in-serve.service", "ferry-in-import@.service"][..],
            &["serve", "import", "tls"][..],
        ),
        (
            "ferry-out",
            &["ferry-out-export.service", "ferry-out-sign.service"][..],
            &["export", "sign", "publish"][..],
        ),
    ] {
        let root = tempfile::Builder::new()
            .prefix("packaging-root-")
            .tempdir()
            .unwrap();
        dpkg_root(root.path());
        let built = deb(&debs, agent);
        // Self-bootstrap (docs/install.md): the ferry-in package installed
        // is the copy a bundle carried in as a plain file.
        let env;
        let package = if agent == "ferry-in" {
            env = ferry_e2e::Env::new();
            let name = built.file_name().unwrap().to_str().unwrap();
            std::fs::copy(&built, env.src.join(name)).unwrap();
            env.export("media").expect_ok();
            env.import("media").expect_ok();
            let carried = env.served(name);
            assert_eq!(
                std::fs::read(&carried).unwrap(),
                std::fs::read(&built).unwrap(),
                "the bundle carried the package byte for byte"
            );
            carried
        } else {
            built
        };
        check_installed(root.path(), &package, agent, units, subs);
    }
}

/// Every YAML document in deploy/kubernetes, by kind and name.
fn manifests() -> Vec<(String, Value)> {
    let dir = workspace().join("deploy/kubernetes");
    let mut docs = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for doc in text.split("\n---\n") {
            let v: Value =
                serde_norway::from_str(doc).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            let kind = v["kind"]
                .as_str()
                .unwrap_or_else(|| panic!("{}: no kind", f.display()));
            docs.push((kind.to_string(), v));
        }
    }
    docs
}

fn one<'a>(docs: &'a [(String, Value)], kind: &str) -> &'a Value {
    let found: Vec<&Value> = docs
        .iter()
        .filter(|(k, _)| k == kind)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(found.len(), 1, "one {kind}");
    found[0]
}

fn strs(v: &Value) -> Vec<String> {
    v.as_sequence()
        .unwrap_or_else(|| panic!("not a list: {v:?}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// The manifests parse, the kustomization names every file, and the
/// StatefulSet agrees with the Service, the ConfigMap and the Secret
/// layout `serve --tls` reads; its config is one the real ferry-in accepts.
#[test]
fn kubernetes_manifests_agree() {
    let docs = manifests();
    let dir = workspace().join("deploy/kubernetes");
    let kust = one(&docs, "Kustomization");
    for r in strs(&kust["resources"]) {
        assert!(dir.join(&r).is_file(), "kustomization names {r}");
    }
    let sts = one(&docs, "StatefulSet");
    let pod = &sts["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    let args = strs(&c["args"]);
    let state = args[args.iter().position(|a| a == "--state").unwrap() + 1].clone();
    assert!(
        args.contains(&"serve".into()) && args.contains(&"--tls".into()),
        "{args:?}"
    );
    let listen = &args[args.iter().position(|a| a == "--listen").unwrap() + 1];
    let port = c["ports"][0]["containerPort"].as_u64().unwrap();
    assert!(
        listen.ends_with(&format!(":{port}")),
        "{listen} is the container port"
    );

    let svc = one(&docs, "Service");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], c["ports"][0]["name"]);
    assert_eq!(
        svc["spec"]["selector"],
        sts["spec"]["selector"]["matchLabels"]
    );
    assert_eq!(
        sts["spec"]["template"]["metadata"]["labels"],
        sts["spec"]["selector"]["matchLabels"]
    );

    // Every mount has a volume or a claim; the state is the PVC, the TLS
    // Secret lands where --tls reads it.
    let claims: Vec<&str> = sts["spec"]["volumeClaimTemplates"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|t| t["metadata"]["name"].as_str().unwrap())
        .collect();
    let volumes = pod["volumes"].as_sequence().unwrap();
    let mut mounted = std::collections::BTreeMap::new();
    for m in c["volumeMounts"].as_sequence().unwrap() {
        let name = m["name"].as_str().unwrap();
        let vol = volumes.iter().find(|v| v["name"].as_str() == Some(name));
        assert!(
            vol.is_some() || claims.contains(&name),
            "mount {name} has a volume"
        );
        mounted.insert(m["mountPath"].as_str().unwrap().to_string(), (name, vol));
    }
    assert!(
        claims.contains(&mounted[&state].0),
        "the state directory is on the PVC"
    );
    let (_, tls) = &mounted[&format!("{state}/tls")];
    let items: Vec<&str> = tls.unwrap()["secret"]["items"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|i| i["path"].as_str().unwrap())
        .collect();
    assert_eq!(items, ["server.pem", "server.key"]);

    // The ConfigMap's config is mounted where --config reads it, and the
    // real ferry-in accepts it.
    let config = &args[args.iter().position(|a| a == "--config").unwrap() + 1];
    let cm = one(&docs, "ConfigMap");
    let (_, vol) = &mounted[Path::new(config).parent().unwrap().to_str().unwrap()];
    assert_eq!(vol.unwrap()["configMap"]["name"], cm["metadata"]["name"]);
    let file_name = Path::new(config).file_name().unwrap().to_str().unwrap();
    let text = cm["data"][file_name]
        .as_str()
        .expect("the config file in the ConfigMap");
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join(file_name);
    std::fs::write(&file, text).unwrap();
    output(
        Command::new(bin("ferry-in"))
            .arg("--state")
            .arg(tmp.path().join("state"))
            .arg("--config")
            .arg(&file)
            .arg("status"),
    );
    serve_as_the_pod_does(
        &args,
        &state,
        config,
        &file,
        &tls.unwrap()["secret"]["items"],
    );
}

/// Runs the real ferry-in with the container's arguments, the state, config
/// and Secret paths moved into a temporary directory and the port to a free
/// one: the Secret's items, made from `tls init`'s files as the README says,
/// land where `serve --tls` reads them, and a client trusting the site CA
/// gets an answer over HTTPS.
fn serve_as_the_pod_does(args: &[String], state: &str, config: &str, file: &Path, items: &Value) {
    let tmp = tempfile::tempdir().unwrap();
    let admin = tmp.path().join("admin");
    output(
        Command::new(bin("ferry-in"))
            .arg("--state")
            .arg(&admin)
            .args(["tls", "init", "--name", "localhost", "--ip", "127.0.0.1"]),
    );
    // `kubectl create secret tls --cert=server.pem --key=server.key`.
    let secret = [("tls.crt", "server.pem"), ("tls.key", "server.key")];
    let pod_state = tmp.path().join("pod-state");
    std::fs::create_dir_all(pod_state.join("tls")).unwrap();
    for item in items.as_sequence().unwrap() {
        let key = item["key"].as_str().unwrap();
        let from = secret
            .iter()
            .find(|(k, _)| *k == key)
            .expect("a key of a tls Secret")
            .1;
        let to = pod_state.join("tls").join(item["path"].as_str().unwrap());
        std::fs::copy(admin.join("tls").join(from), to).unwrap();
    }
    let port = ferry_e2e::free_port();
    let mapped: Vec<String> = args
        .iter()
        .map(|a| match a.as_str() {
            a if a == state => pod_state.display().to_string(),
            a if a == config => file.display().to_string(),
            a if a.starts_with("0.0.0.0:") => format!("127.0.0.1:{port}"),
            a => a.to_string(),
        })
        .collect();
    let mut child = Command::new(bin("ferry-in"))
        .args(&mapped)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut line).unwrap();
    let _serve = ferry_e2e::KillOnDrop(child);
    assert!(
        line.contains(&format!("https://127.0.0.1:{port}")),
        "{line}"
    );
    let ca = admin.join("tls/ca.pem");
    // Any HTTP answer (an empty store has nothing to serve) over a verified
    // TLS connection: curl says nothing when the handshake fails.
    let (_, headers) = ferry_e2e::curl_response(&[
        "--cacert",
        ca.to_str().unwrap(),
        &format!("https://127.0.0.1:{port}/"),
    ]);
    assert!(headers.starts_with("HTTP/1.1 "), "{headers}");
}
