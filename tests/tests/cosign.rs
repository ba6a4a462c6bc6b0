//! Upstream trust checked outside and again inside (issue 12): cosign
//! signatures of images (`cosign_keys`, `cosign_policy`), the
//! `[policy] require_upstream_signatures` switch, and the provenance record
//! `ferry-in status` shows.
//!
//! The upstream is Debian's `docker-registry`, filled with skopeo. No cosign
//! binary is available here, so the signatures are made with openssl in
//! exactly cosign's on-registry format (tests/lib.rs, `cosign_*` helpers).

use ferry_e2e::docker_registry as registry;
use ferry_e2e::*;
use std::path::{Path, PathBuf};

/// A fresh `Env` and a work directory, or `None` (after [`skip`]) when a
/// tool is missing.
fn setup() -> Option<(Env, PathBuf)> {
    if !have_tools(
        &current_test(),
        &["docker-registry", "skopeo", "openssl", "curl"],
    ) {
        return None;
    }
    let env = Env::new();
    let work = env.root().join("cosign");
    std::fs::create_dir_all(&work).unwrap();
    Some((env, work))
}

/// Pushes a one-layer image `repo:tag` (content from `salt`); returns the
/// digest of its manifest as the registry serves it.
fn push_image(work: &Path, reg: &str, repo: &str, tag: &str, salt: u64) -> String {
    let name = format!("{}-{tag}", repo.replace('/', "_"));
    let src = work.join(format!("src-{name}"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), random_bytes(5_000, salt)).unwrap();
    let layout = OciLayout::new(&work.join(format!("layout-{name}")));
    let m = layout.manifest("amd64", "{}", &[Layer::tar(&tar_of_dir(&src))]);
    layout.tag(tag, &m, false);
    skopeo_push(&layout.dir, tag, reg, &format!("{repo}:{tag}"), &[]).expect_ok();
    let served = curl(&[
        "-H",
        "Accept: application/vnd.oci.image.manifest.v1+json",
        &format!("http://{reg}/v2/{repo}/manifests/{tag}"),
    ]);
    format!(
        "sha256:{}",
        ferry_protocol::id::Sha256::of(&served).to_hex()
    )
}

/// Signs `digest` of `repo` with `key` and attaches the signature.
fn sign(work: &Path, reg: &str, repo: &str, digest: &str, key: &Path) {
    let payload = cosign_payload(&format!("{reg}/{repo}"), digest);
    let sig = cosign_sign(key, payload.as_bytes());
    cosign_attach(work, reg, repo, digest, payload.as_bytes(), &sig);
}

/// Writes the outside config: one OCI source `hub` with `images`, keys and
/// an optional policy.
fn config(env: &Env, reg: &str, images: &[&str], keys: &[&Path], policy: Option<&str>) {
    let list = |v: Vec<String>| v.join(", ");
    let images = list(images.iter().map(|i| format!("{i:?}")).collect());
    let keys = list(
        keys.iter()
            .map(|k| format!("{:?}", k.display().to_string()))
            .collect(),
    );
    let policy = policy.map_or(String::new(), |p| format!("cosign_policy = \"{p}\"\n"));
    std::fs::write(
        &env.config,
        format!(
            "[[source]]\nname = \"hub\"\ntype = \"oci\"\nregistry = \"http://{reg}\"\nimages = [{images}]\ncosign_keys = [{keys}]\n{policy}"
        ),
    )
    .unwrap();
}

/// An inside config checking source `hub`'s signatures with `key`.
fn inside_config(env: &Env, key: &Path) -> PathBuf {
    let path = env.root().join("ferry-in.toml");
    std::fs::write(
        &path,
        format!(
            "[upstream]\ncosign_keys = {{ hub = [{:?}] }}\n",
            key.display().to_string()
        ),
    )
    .unwrap();
    path
}

fn import_with(env: &Env, conf: &Path, media: &str) -> Run {
    let m = env.root().join(media);
    env.inn(&[
        "--config",
        conf.to_str().unwrap(),
        "import",
        m.to_str().unwrap(),
    ])
}

fn status_json(env: &Env) -> serde_json::Value {
    let r = env.inn(&["status", "--json"]).expect_ok();
    serde_json::from_str(&r.stdout).unwrap()
}

/// The `SHA256:` id ferry prints for a public key file.
fn key_id(public: &Path) -> String {
    let pem = std::fs::read_to_string(public).unwrap();
    ferry_formats::cosign::PublicKey::from_pem(&pem, "k")
        .unwrap()
        .id()
        .to_string()
}

#[test]
fn a_signed_image_is_carried_with_its_signature_checked_again_inside_and_its_provenance_shown() {
    let Some((env, work)) = setup() else { return };
    let (_reg, reg) = registry(&work);
    let (key, public) = cosign_keypair(&work.join("keys"), "vendor");
    let digest = push_image(&work, &reg, "team/app", "v1", 1);
    sign(&work, &reg, "team/app", &digest, &key);
    config(&env, &reg, &["team/app:v1"], &[&public], None);
    env.export("m1").expect_ok();
    let conf = inside_config(&env, &public);
    import_with(&env, &conf, "m1").expect_ok();

    // The provenance: the tag's own entry names the key; the source's too.
    let id = key_id(&public);
    let v = status_json(&env);
    let vouches = v["provenance"]["vouches"].as_array().unwrap();
    let tag_entry = vouches
        .iter()
        .find(|e| e["object"] == "repos/team/app/_tags/v1")
        .unwrap_or_else(|| panic!("no entry for the tag: {v:#}"));
    assert_eq!(tag_entry["method"], "cosign");
    assert_eq!(tag_entry["key"], id.as_str());
    let source_entry = vouches.iter().find(|e| e["object"].is_null()).unwrap();
    assert!(source_entry["detail"].as_str().unwrap().contains(&id));
    let human = env.inn(&["status"]).expect_ok();
    assert!(human.stdout.contains(&id), "{}", human.stdout);
    let one = env
        .inn(&["status", "--object", "hub/repos/team/app/_tags/v1"])
        .expect_ok();
    assert!(
        one.stdout.contains(&format!("key:        {id}")),
        "{}",
        one.stdout
    );
    // A layer has no entry of its own: its source's answers.
    let hex = digest.strip_prefix("sha256:").unwrap();
    let manifest_entry = env
        .inn(&[
            "status",
            "--json",
            "--object",
            &format!("hub/manifests/sha256/{hex}"),
        ])
        .expect_ok();
    let m: serde_json::Value = serde_json::from_str(&manifest_entry.stdout).unwrap();
    assert_eq!(m["vouch"]["method"], "cosign");
    env.inn(&["status", "--object", "hub/repos/team/app/_tags/nope"])
        .expect_fail(&["no such object"]);

    // The signature tag is served inside, for skopeo or cosign there.
    let srv = env.serve_tls();
    let tags = skopeo_read(&srv, "list-tags", &[], "team/app").expect_ok();
    assert!(
        tags.stdout.contains(&format!("sha256-{hex}.sig")),
        "{}",
        tags.stdout
    );
}

#[test]
fn unsigned_and_wrong_key_images_fail_the_export_or_are_left_out_by_policy() {
    let Some((env, work)) = setup() else { return };
    let (_reg, reg) = registry(&work);
    let (key, public) = cosign_keypair(&work.join("keys"), "vendor");
    let (other_key, _) = cosign_keypair(&work.join("keys"), "stranger");
    let good = push_image(&work, &reg, "team/app", "v1", 1);
    sign(&work, &reg, "team/app", &good, &key);
    let unsigned = push_image(&work, &reg, "team/bare", "v1", 2);
    let foreign = push_image(&work, &reg, "team/forged", "v1", 3);
    sign(&work, &reg, "team/forged", &foreign, &other_key);
    let images = ["team/app:v1", "team/bare:v1", "team/forged:v1"];

    // Default policy: the export fails naming the first refused image.
    config(&env, &reg, &images, &[&public], None);
    env.export("m1")
        .expect_fail(&["team/bare:v1", &unsigned, "no cosign signature"]);
    assert!(
        !walk_files(&env.root().join("m1"))
            .iter()
            .any(|f| f.ends_with("manifest.ferry")),
        "a refused export wrote a bundle"
    );
    config(
        &env,
        &reg,
        &["team/app:v1", "team/forged:v1"],
        &[&public],
        Some("refuse-export"),
    );
    env.export("m1")
        .expect_fail(&["team/forged:v1", &foreign, "no signature verifies"]);

    // refuse-image: both are left out, each named, the signed one ships.
    config(&env, &reg, &images, &[&public], Some("refuse-image"));
    let r = env.export("m1").expect_ok();
    for needle in [
        "team/bare:v1",
        "no cosign signature",
        "team/forged:v1",
        "no signature verifies",
    ] {
        assert!(
            r.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}",
            r.stderr
        );
    }
    env.import("m1").expect_ok();
    env.inn(&["status", "--object", "hub/repos/team/app/_tags/v1"])
        .expect_ok();
    for repo in ["team/bare", "team/forged"] {
        env.inn(&["status", "--object", &format!("hub/repos/{repo}/_tags/v1")])
            .expect_fail(&["no such object"]);
    }
}

#[test]
fn a_signature_over_another_digest_or_an_altered_payload_is_refused() {
    let Some((env, work)) = setup() else { return };
    let (_reg, reg) = registry(&work);
    let (key, public) = cosign_keypair(&work.join("keys"), "vendor");
    let v1 = push_image(&work, &reg, "team/app", "v1", 1);
    let v2 = push_image(&work, &reg, "team/app", "v2", 2);
    // v2's signature tag holds a valid signature by the right key, over a
    // payload naming v1: a signature moved to another image.
    let moved = cosign_payload(&format!("{reg}/team/app"), &v1);
    let sig = cosign_sign(&key, moved.as_bytes());
    cosign_attach(&work, &reg, "team/app", &v2, moved.as_bytes(), &sig);
    // v3: the payload changed after signing (the signature no longer fits).
    let v3 = push_image(&work, &reg, "team/app", "v3", 3);
    let honest = cosign_payload(&format!("{reg}/team/app"), &v3);
    let sig = cosign_sign(&key, honest.as_bytes());
    let altered = honest.replace("\"optional\":null", "\"optional\":{}");
    cosign_attach(&work, &reg, "team/app", &v3, altered.as_bytes(), &sig);

    config(&env, &reg, &["team/app:v2"], &[&public], None);
    env.export("m1").expect_fail(&[
        "team/app:v2",
        &format!("the signature is for manifest {v1}, not {v2}"),
    ]);
    config(&env, &reg, &["team/app:v3"], &[&public], None);
    env.export("m1")
        .expect_fail(&["team/app:v3", "no signature verifies"]);
}

#[test]
fn the_inside_refuses_a_carried_signature_its_keys_do_not_verify() {
    let Some((env, work)) = setup() else { return };
    let (_reg, reg) = registry(&work);
    let (key, public) = cosign_keypair(&work.join("keys"), "vendor");
    let (_, stranger) = cosign_keypair(&work.join("keys"), "stranger");
    let digest = push_image(&work, &reg, "team/app", "v1", 1);
    sign(&work, &reg, "team/app", &digest, &key);
    config(&env, &reg, &["team/app:v1"], &[&public], None);
    env.export("m1").expect_ok();

    // The inside trusts another key: the carried signature does not verify.
    let conf = inside_config(&env, &stranger);
    import_with(&env, &conf, "m1").expect_fail(&[
        "hub",
        "team/app:v1",
        &digest,
        "carried cosign signature is refused",
        "no signature verifies",
    ]);
    assert_eq!(status_json(&env)["applied_sequence"], 0, "nothing applied");
    // With the vendor's key it applies.
    let conf = inside_config(&env, &public);
    import_with(&env, &conf, "m1").expect_ok();
    assert_eq!(status_json(&env)["applied_sequence"], 1);
}

#[test]
fn an_image_carried_without_its_signature_is_refused_inside() {
    let Some((env, work)) = setup() else { return };
    let (_reg, reg) = registry(&work);
    let (_, public) = cosign_keypair(&work.join("keys"), "vendor");
    push_image(&work, &reg, "team/app", "v1", 1);
    // An outside that checks nothing (no cosign_keys) ships it unsigned.
    std::fs::write(
        &env.config,
        format!("[[source]]\nname = \"hub\"\ntype = \"oci\"\nregistry = \"http://{reg}\"\nimages = [\"team/app:v1\"]\n"),
    )
    .unwrap();
    env.export("m1").expect_ok();
    let conf = inside_config(&env, &public);
    import_with(&env, &conf, "m1").expect_fail(&["team/app:v1", "no cosign signature"]);
    assert_eq!(status_json(&env)["applied_sequence"], 0);
    // Its provenance says so once applied without keys.
    env.import("m1").expect_ok();
    let v = status_json(&env);
    let e = &v["provenance"]["vouches"][0];
    assert_eq!(e["method"], "digests-only", "{v:#}");
}

/// Every regular file under `dir`.
fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn require_upstream_signatures_refuses_sources_without_keys_at_load() {
    let env = Env::new();
    let files = env.src.display().to_string();
    let write = |body: &str| {
        std::fs::write(
            &env.config,
            format!("[policy]\nrequire_upstream_signatures = true\n\n{body}"),
        )
        .unwrap()
    };
    // yum without a keyring, an OCI source without cosign_keys, go without
    // a checksum database: each named, with the setting it lacks.
    write("[[source]]\nname = \"rocky\"\ntype = \"yum\"\nbaseurl = \"http://127.0.0.1:9/\"\npackages = [\"x\"]\n");
    env.export("m1").expect_fail(&[
        "source \"rocky\" (yum)",
        "require_upstream_signatures",
        "`keyring`",
    ]);
    write("[[source]]\nname = \"hub\"\ntype = \"oci\"\nregistry = \"http://127.0.0.1:9\"\nimages = [\"a:1\"]\n");
    env.export("m1")
        .expect_fail(&["source \"hub\" (oci)", "`cosign_keys`"]);
    // A source with no upstream signature format needs `unsigned_ok`.
    write(&format!(
        "[[source]]\nname = \"tools\"\ntype = \"files\"\npath = {files:?}\n"
    ));
    env.export("m1")
        .expect_fail(&["source \"tools\" (files)", "unsigned_ok"]);
    write(&format!(
        "[[source]]\nname = \"tools\"\ntype = \"files\"\npath = {files:?}\nunsigned_ok = \"\"\n"
    ));
    env.export("m1")
        .expect_fail(&["`unsigned_ok` must give a reason"]);
    std::fs::write(env.src.join("tool.sh"), "echo hi\n").unwrap();
    write(&format!(
        "[[source]]\nname = \"tools\"\ntype = \"files\"\npath = {files:?}\nunsigned_ok = \"built in-house, reviewed before export\"\n"
    ));
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();
    let v = status_json(&env);
    let e = &v["provenance"]["vouches"][0];
    assert_eq!(e["method"], "digests-only");
    assert!(
        e["detail"]
            .as_str()
            .unwrap()
            .contains("unsigned_ok: built in-house"),
        "{v:#}"
    );
    // Without the switch, the same yum source loads (and fails later only
    // for want of an upstream, which says nothing about the policy).
    std::fs::write(
        &env.config,
        "[[source]]\nname = \"rocky\"\ntype = \"yum\"\nbaseurl = \"http://127.0.0.1:9/\"\npackages = [\"x\"]\n",
    )
    .unwrap();
    let r = env.export("m2");
    assert!(
        !r.stderr.contains("require_upstream_signatures"),
        "{}",
        r.stderr
    );
}
