//! Container images end to end with real components: Debian's
//! `docker-registry` as the upstream, images pushed into it with `skopeo`,
//! `ferry-out` exporting from it, `ferry-in` importing and serving, and
//! `skopeo` pulling from `ferry-in serve`. Skipped, with a message, when
//! `docker-registry` or `skopeo` is not installed (scripts/test.sh installs both).

use ferry_e2e::docker_registry as registry;
use ferry_e2e::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A fresh `Env` and a work directory, or `None` (after [`skip`]) when
/// `docker-registry` or `skopeo` is missing.
fn setup() -> Option<(Env, PathBuf)> {
    if !have_tools(&current_test(), &["docker-registry", "skopeo"]) {
        return None;
    }
    let env = Env::new();
    let work = env.root().join("oci");
    std::fs::create_dir_all(&work).unwrap();
    Some((env, work))
}

fn sha(data: &[u8]) -> String {
    ferry_protocol::id::Sha256::of(data).to_hex()
}

/// An OCI image layout with an index over amd64 and arm64 sharing one big
/// layer; each platform adds a small layer of its own. Returns the layout dir.
pub(crate) fn build_image(dir: &Path, shared: &[u8], tag: &str, salt: u64) -> PathBuf {
    let layout = OciLayout::new(&dir.join(format!("layout-{tag}")));
    let tar_of = |name: &str, content: &[u8]| -> Vec<u8> {
        let src = dir.join(format!("tar-src-{tag}-{name}"));
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join(name), content).unwrap();
        tar_of_dir(&src)
    };
    let shared_tar = tar_of("shared.bin", shared);
    let mut manifests = Vec::new();
    for (i, arch) in ["amd64", "arm64"].into_iter().enumerate() {
        let own = tar_of(
            &format!("{arch}.txt"),
            format!("{arch} {tag} {salt}\n").as_bytes(),
        );
        let m = layout.manifest(
            arch,
            &format!(r#"{{"Env":["N={i}"]}}"#),
            &[Layer::tar(&shared_tar), Layer::tar(&own)],
        );
        manifests.push((arch, m));
    }
    let index = layout.index(&manifests);
    layout.tag(tag, &index, true);
    layout.dir
}

fn push(layout: &Path, tag: &str, reg: &str, repo: &str) {
    skopeo_push(layout, tag, reg, &format!("{repo}:{tag}"), &["--all"]).expect_ok();
}

fn config(env: &Env, reg: &str, images: &[&str]) {
    let list: Vec<String> = images.iter().map(|i| format!("{i:?}")).collect();
    std::fs::write(
        &env.config,
        format!(
            "[[source]]\nname = \"hub\"\ntype = \"oci\"\nregistry = \"http://{reg}\"\nimages = [{}]\n",
            list.join(", ")
        ),
    )
    .unwrap();
}

#[test]
fn images_from_a_registry_are_pulled_by_skopeo_from_the_inside() {
    let Some((env, work)) = setup() else {
        return;
    };
    let (_reg, reg) = registry(&work);
    let shared = random_bytes(2_000_000, 77);
    let v1 = build_image(&work, &shared, "v1", 1);
    push(&v1, "v1", &reg, "library/demo");
    config(&env, &reg, &["library/demo:v1"]);
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();
    let srv = env.serve_tls();
    let inside = srv.addr.clone();

    // The index, each platform's manifest and every blob are byte-exact.
    for arch in ["amd64", "arm64"] {
        let up = skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--override-arch",
            arch,
            &format!("docker://{reg}/library/demo:v1"),
        ])
        .expect_ok();
        let down = skopeo_read(
            &srv,
            "inspect",
            &["--raw", "--override-arch", arch],
            "library/demo:v1",
        )
        .expect_ok();
        assert_eq!(
            up.stdout, down.stdout,
            "{arch}: the inside serves another index"
        );
    }
    // skopeo compresses layers on their way into a registry, so compare what
    // the inside serves with what the upstream registry serves.
    let up = work.join("from-upstream");
    skopeo(&[
        "copy",
        "--all",
        "--src-tls-verify=false",
        &format!("docker://{reg}/library/demo:v1"),
        &format!("oci:{}:v1", up.display()),
    ])
    .expect_ok();
    let down = work.join("from-inside");
    let dest = format!("oci:{}:v1", down.display());
    skopeo_pull(&srv, "library/demo:v1", &dest, &["--all"]).expect_ok();
    let mut n = 0;
    for e in std::fs::read_dir(up.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        let mine = std::fs::read(down.join("blobs/sha256").join(e.file_name())).unwrap_or_default();
        assert_eq!(
            std::fs::read(e.path()).unwrap(),
            mine,
            "blob {:?}",
            e.file_name()
        );
        n += 1;
    }
    assert!(
        n >= 8,
        "only {n} blobs pulled (index, 2 manifests, 2 configs, 3 layers expected)"
    );

    // `ferry-in client-config` tells podman-style clients to use the inside
    // as a mirror of the upstream: skopeo resolves the upstream name to it.
    let out = work.join("client-config");
    env.inn(&[
        "client-config",
        "--url",
        &format!("https://{inside}"),
        "--upstream",
        "upstream.invalid",
        "--out",
        out.to_str().unwrap(),
    ])
    .expect_ok();
    let conf_file = out.join("containers/registries.conf");
    let mirrored = skopeo(&[
        "inspect",
        "--raw",
        "--cert-dir",
        srv.cert_dir.to_str().unwrap(),
        "--registries-conf",
        conf_file.to_str().unwrap(),
        "docker://upstream.invalid/library/demo:v1",
    ])
    .expect_ok();
    let direct = skopeo_read(&srv, "inspect", &["--raw"], "library/demo:v1").expect_ok();
    assert_eq!(mirrored.stdout, direct.stdout);

    // A new tag that shares the big layer ships only what is new.
    let v2 = build_image(&work, &shared, "v2", 2);
    push(&v2, "v2", &reg, "library/demo");
    config(&env, &reg, &["library/demo:v1", "library/demo:v2"]);
    env.export("m2").expect_ok();
    let delta = dir_bytes(&env.only_bundle("m2"));
    assert!(
        delta < 200_000,
        "a tag sharing a 2 MB layer shipped {delta} bytes"
    );
    env.import("m2").expect_ok();
    let tags = skopeo_read(&srv, "list-tags", &[], "library/demo").expect_ok();
    assert!(
        tags.stdout.contains("\"v1\"") && tags.stdout.contains("\"v2\""),
        "{}",
        tags.stdout
    );
    let dest = format!("oci:{}:v2", work.join("pulled2").display());
    skopeo_pull(&srv, "library/demo:v2", &dest, &[]).expect_ok();
}

#[test]
fn a_corrupt_or_missing_upstream_blob_fails_the_export_naming_it() {
    let Some((env, work)) = setup() else {
        return;
    };
    let (_reg, reg) = registry(&work);
    let v1 = build_image(&work, &random_bytes(300_000, 5), "v1", 1);
    push(&v1, "v1", &reg, "library/bad");
    let _ = &v1;
    config(&env, &reg, &["library/bad:v1"]);
    // Corrupt the biggest blob (the shared layer) in the registry's own storage.
    let store = work.join("storage/docker/registry/v2/blobs/sha256");
    let data = std::fs::read_dir(&store)
        .unwrap()
        .flat_map(|fan| std::fs::read_dir(fan.unwrap().path()).unwrap())
        .map(|e| e.unwrap().path().join("data"))
        .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .unwrap();
    let big = data
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let mut bytes = std::fs::read(&data).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&data, &bytes).unwrap();
    env.export("m1").expect_fail(&[&big, "SHA-256"]);
    assert!(
        !env.root().join("m1").exists(),
        "a failed export wrote to the media"
    );
    // Gone altogether: the export names the blob it could not fetch.
    std::fs::remove_file(&data).unwrap();
    env.export("m1").expect_fail(&[&big]);
}

#[test]
fn ferry_in_push_fills_a_second_registry_that_skopeo_pulls_from() {
    let Some((env, work)) = setup() else {
        return;
    };
    std::fs::create_dir_all(work.join("up")).unwrap();
    std::fs::create_dir_all(work.join("site")).unwrap();
    let (_up, up) = registry(&work.join("up"));
    let (_site, site) = registry(&work.join("site"));
    let shared = random_bytes(1_000_000, 9);
    let v1 = build_image(&work, &shared, "v1", 1);
    push(&v1, "v1", &up, "library/demo");
    push(&v1, "v1", &up, "team/other"); // the same blobs in a second repository
    config(&env, &up, &["library/demo:v1", "team/other:v1"]);
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();

    let r = env
        .inn(&["push", "--to", &format!("http://{site}")])
        .expect_ok();
    assert!(r.stdout.contains("pushed 2 tag(s)"), "{}", r.all());
    // The second repository's blobs were mounted or already there, not uploaded again.
    assert!(
        r.stdout.contains("mounted") && !r.stdout.contains(" 0 mounted, 0 already"),
        "{}",
        r.all()
    );
    for repo in ["library/demo", "team/other"] {
        let a = skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{up}/{repo}:v1"),
        ])
        .expect_ok();
        let b = skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{site}/{repo}:v1"),
        ])
        .expect_ok();
        assert_eq!(a.stdout, b.stdout, "{repo}");
        skopeo(&[
            "copy",
            "--all",
            "--src-tls-verify=false",
            &format!("docker://{site}/{repo}:v1"),
            &format!("oci:{}:v1", work.join(repo.replace('/', "-")).display()),
        ])
        .expect_ok();
    }
    // Pushing again uploads nothing.
    let again = env
        .inn(&["push", "--to", &format!("http://{site}")])
        .expect_ok();
    assert!(again.stdout.contains("0 blobs uploaded"), "{}", again.all());
}

#[test]
fn a_configured_push_follows_every_import_and_its_failure_keeps_the_import() {
    let Some((env, work)) = setup() else {
        return;
    };
    std::fs::create_dir_all(work.join("up")).unwrap();
    std::fs::create_dir_all(work.join("site")).unwrap();
    let (_up, up) = registry(&work.join("up"));
    let (_site, site) = registry(&work.join("site"));
    let shared = random_bytes(500_000, 11);
    let v1 = build_image(&work, &shared, "v1", 1);
    push(&v1, "v1", &up, "library/demo");
    config(&env, &up, &["library/demo:v1"]);
    env.export("m1").expect_ok();

    let cfg = work.join("ferry-in.toml");
    std::fs::write(&cfg, format!("[push]\nto = \"http://{site}\"\n")).unwrap();
    let m1 = env.root().join("m1");
    let r = env
        .inn(&[
            "--config",
            cfg.to_str().unwrap(),
            "import",
            m1.to_str().unwrap(),
        ])
        .expect_ok();
    assert!(r.stderr.contains("pushed 1 tag(s)"), "{}", r.all());
    let raw = |reg: &str| {
        skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{reg}/library/demo:v1"),
        ])
        .expect_ok()
        .stdout
    };
    assert_eq!(raw(&up), raw(&site));

    // The next import's push fails (nothing listens there): the import stays
    // applied and served, and the exit code (3) and message say what to retry.
    let v2 = build_image(&work, &shared, "v2", 2);
    push(&v2, "v2", &up, "library/demo");
    config(&env, &up, &["library/demo:v1", "library/demo:v2"]);
    env.export("m2").expect_ok();
    let dead = format!("http://127.0.0.1:{}", free_port());
    std::fs::write(&cfg, format!("[push]\nto = \"{dead}\"\n")).unwrap();
    let m2 = env.root().join("m2");
    let r = env.inn(&[
        "--config",
        cfg.to_str().unwrap(),
        "import",
        m2.to_str().unwrap(),
    ]);
    assert_eq!(r.code, Some(3), "{}", r.all());
    assert!(
        r.stderr.contains("the import is applied, but the push to")
            && r.stderr.contains(&format!("ferry-in push --to {dead}")),
        "{}",
        r.all()
    );
    assert_eq!(env.applied_sequence(), 2);
    // A config with a push target that is not a URL is refused up front.
    std::fs::write(&cfg, "[push]\nto = \"registry.site\"\n").unwrap();
    env.inn(&["--config", cfg.to_str().unwrap(), "status"])
        .expect_fail(&["push.to must be a registry URL"]);
}

#[test]
fn tag_patterns_select_tags_by_regex_and_semver() {
    let Some((env, work)) = setup() else {
        return;
    };
    let (_reg, reg) = registry(&work);
    let layout = build_image(&work, &random_bytes(100_000, 3), "v1", 1);
    for (repo, tag) in [
        ("library/demo", "v1.9.0"),
        ("library/demo", "v1.10.2"),
        ("library/demo", "v2.0.0"),
        ("library/demo", "latest"),
        ("nvidia/cuda", "11.4.2-base-ubi8"),
        ("nvidia/cuda", "11.4.2-runtime-ubi8"),
        ("nvidia/cuda", "12.0.0-base-ubi8"),
    ] {
        skopeo_push(&layout, "v1", &reg, &format!("{repo}:{tag}"), &["--all"]).expect_ok();
    }
    std::fs::write(
        &env.config,
        format!(
            "[[source]]\nname = \"hub\"\ntype = \"oci\"\nregistry = \"http://{reg}\"\n\
             [source.tags]\n\"library/demo\" = \"semver:>=1.9, <2\"\n\"nvidia/cuda\" = '11\\.4\\..*-base-ubi8'\n"
        ),
    )
    .unwrap();
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();
    let srv = env.serve_tls();
    let tags = |repo: &str| skopeo_read(&srv, "list-tags", &[], repo).expect_ok().stdout;
    let demo = tags("library/demo");
    assert!(
        demo.contains("\"v1.9.0\"") && demo.contains("\"v1.10.2\""),
        "{demo}"
    );
    assert!(
        !demo.contains("v2.0.0") && !demo.contains("latest"),
        "{demo}"
    );
    let cuda = tags("nvidia/cuda");
    assert!(cuda.contains("11.4.2-base-ubi8"), "{cuda}");
    assert!(
        !cuda.contains("runtime") && !cuda.contains("12.0.0"),
        "{cuda}"
    );
}

/// Uploads `data` as a blob of `repo` (POST then PUT, as the distribution
/// spec has it); returns its digest.
fn upload_blob(work: &Path, reg: &str, repo: &str, data: &[u8]) -> String {
    let hex = sha(data);
    let file = work.join(format!("upload-{hex}"));
    std::fs::write(&file, data).unwrap();
    let headers = curl(&[
        "-D",
        "-",
        "-o",
        "/dev/null",
        "-X",
        "POST",
        &format!("http://{reg}/v2/{repo}/blobs/uploads/"),
    ]);
    let headers = String::from_utf8(headers).unwrap();
    let location = headers
        .lines()
        .find_map(|l| {
            l.strip_prefix("Location: ")
                .or(l.strip_prefix("location: "))
        })
        .expect("an upload location")
        .trim()
        .to_string();
    let location = if location.starts_with('/') {
        format!("http://{reg}{location}")
    } else {
        location
    };
    let sep = if location.contains('?') { '&' } else { '?' };
    curl(&[
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        &format!("@{}", file.display()),
        &format!("{location}{sep}digest=sha256:{hex}"),
    ]);
    format!("sha256:{hex}")
}

/// PUTs a manifest under `reference` (a tag or its digest); returns its digest.
fn put_manifest(
    work: &Path,
    reg: &str,
    repo: &str,
    reference: &str,
    media: &str,
    body: &[u8],
) -> String {
    let hex = sha(body);
    let file = work.join(format!("manifest-{hex}"));
    std::fs::write(&file, body).unwrap();
    curl(&[
        "-X",
        "PUT",
        "-H",
        &format!("Content-Type: {media}"),
        "--data-binary",
        &format!("@{}", file.display()),
        &format!("http://{reg}/v2/{repo}/manifests/{reference}"),
    ]);
    format!("sha256:{hex}")
}

/// The manifest `reference` of `repo` as `reg` serves it, byte-exact.
fn raw_manifest(reg: &str, repo: &str, reference: &str) -> Vec<u8> {
    raw_manifest_at(&[], &format!("http://{reg}"), repo, reference)
}

/// The manifest `reference` of `repo` as the registry at `base` serves it,
/// with `curl_args` (such as `--cacert CA`).
fn raw_manifest_at(curl_args: &[&str], base: &str, repo: &str, reference: &str) -> Vec<u8> {
    let mut args = curl_args.to_vec();
    let url = format!("{base}/v2/{repo}/manifests/{reference}");
    args.extend([
        "-H",
        "Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json",
        &url,
    ]);
    curl(&args)
}

/// [`raw_manifest_at`] a TLS `ferry-in serve`, verified with its CA.
fn raw_manifest_tls(srv: &TlsServer, repo: &str, reference: &str) -> Vec<u8> {
    let ca = srv.ca.to_str().unwrap();
    raw_manifest_at(&["--cacert", ca], &srv.url(""), repo, reference)
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

#[test]
fn referrers_and_cosign_tags_are_mirrored_and_served() {
    let Some((env, work)) = setup() else {
        return;
    };
    let (_reg, reg) = registry(&work);
    let repo = "library/signed";
    let v1 = build_image(&work, &random_bytes(200_000, 31), "v1", 1);
    push(&v1, "v1", &reg, repo);
    let index = raw_manifest(&reg, repo, "v1");
    let subject = format!("sha256:{}", sha(&index));
    let subject_hex = sha(&index);

    // A cosign-style signature under the tag sha256-<hex>.sig.
    let payload = format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"{reg}/{repo}"}},"image":{{"docker-manifest-digest":"{subject}"}},"type":"cosign container image signature"}}}}"#
    );
    let sig_layer = upload_blob(&work, &reg, repo, payload.as_bytes());
    let sig_config_bytes =
        br#"{"architecture":"","os":"","rootfs":{"type":"layers","diff_ids":[]},"config":{}}"#;
    let sig_config = upload_blob(&work, &reg, repo, sig_config_bytes);
    let sig = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{sig_config}","size":{}}},"layers":[{{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","digest":"{sig_layer}","size":{},"annotations":{{"dev.cosignproject.cosign/signature":"MEUCIQDfake"}}}}]}}"#,
        sig_config_bytes.len(),
        payload.len()
    );
    let sig_tag = format!("sha256-{subject_hex}.sig");
    put_manifest(&work, &reg, repo, &sig_tag, OCI_MANIFEST, sig.as_bytes());

    // An SBOM artifact whose subject is the index, found through the
    // referrers tag schema (docker-registry 2.8 has no referrers API).
    let sbom_bytes = br#"{"spdxVersion":"SPDX-2.3","name":"demo"}"#;
    let sbom_layer = upload_blob(&work, &reg, repo, sbom_bytes);
    let empty = upload_blob(&work, &reg, repo, b"{}");
    let artifact = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"application/spdx+json","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{empty}","size":2}},"layers":[{{"mediaType":"application/spdx+json","digest":"{sbom_layer}","size":{}}}],"subject":{{"mediaType":"{OCI_INDEX}","digest":"{subject}","size":{}}},"annotations":{{"org.example":"sbom"}}}}"#,
        sbom_bytes.len(),
        index.len()
    );
    let artifact_digest = format!("sha256:{}", sha(artifact.as_bytes()));
    put_manifest(
        &work,
        &reg,
        repo,
        &artifact_digest,
        OCI_MANIFEST,
        artifact.as_bytes(),
    );
    let fallback = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{artifact_digest}","size":{},"artifactType":"application/spdx+json"}}]}}"#,
        artifact.len()
    );
    let fallback_tag = format!("sha256-{subject_hex}");
    put_manifest(
        &work,
        &reg,
        repo,
        &fallback_tag,
        OCI_INDEX,
        fallback.as_bytes(),
    );

    std::fs::write(
        &env.config,
        format!(
            "[[source]]\nname = \"hub\"\ntype = \"oci\"\nregistry = \"http://{reg}\"\nimages = [\"{repo}:v1\"]\nreferrers = true\nplatforms = [\"linux/amd64\"]\n"
        ),
    )
    .unwrap();
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();
    let srv = env.serve_tls();
    let inside = srv.addr.clone();
    let ca = srv.ca.to_str().unwrap();

    // The cosign tag and the fallback tag are ordinary tags, byte-exact.
    for tag in [&sig_tag, &fallback_tag, &"v1".to_string()] {
        assert_eq!(
            raw_manifest_tls(&srv, repo, tag),
            raw_manifest(&reg, repo, tag),
            "tag {tag}"
        );
    }
    let tags = skopeo_read(&srv, "list-tags", &[], repo).expect_ok();
    assert!(tags.stdout.contains(&sig_tag), "{}", tags.stdout);
    // skopeo copies the signature back out, blobs and all.
    let sig_out = work.join("sig-out");
    let dest = format!("oci:{}:sig", sig_out.display());
    skopeo_pull(&srv, &format!("{repo}:{sig_tag}"), &dest, &[]).expect_ok();
    let sig_hex = sig_layer.strip_prefix("sha256:").unwrap();
    assert_eq!(
        std::fs::read(sig_out.join("blobs/sha256").join(sig_hex)).unwrap(),
        payload.as_bytes()
    );
    // The artifact and its blob, by digest.
    assert_eq!(
        raw_manifest_tls(&srv, repo, &artifact_digest),
        artifact.as_bytes()
    );
    assert_eq!(
        srv.get(&format!("/v2/{repo}/blobs/{sbom_layer}")),
        sbom_bytes
    );

    // The referrers API lists the artifact, and filters by artifactType.
    let referrers = |srv: &TlsServer, query: &str| -> Vec<u8> {
        srv.get(&format!("/v2/{repo}/referrers/{subject}{query}"))
    };
    let all = referrers(&srv, "");
    assert_eq!(index_digests(&all), vec![artifact_digest.clone()]);
    let v: serde_json::Value = serde_json::from_slice(&all).unwrap();
    assert_eq!(v["manifests"][0]["artifactType"], "application/spdx+json");
    assert_eq!(v["manifests"][0]["annotations"]["org.example"], "sbom");
    assert_eq!(v["manifests"][0]["size"], artifact.len());
    let none = referrers(&srv, "?artifactType=application/vnd.other");
    assert!(index_digests(&none).is_empty());
    let some = referrers(&srv, "?artifactType=application/spdx%2Bjson");
    assert_eq!(index_digests(&some), vec![artifact_digest.clone()]);
    // A digest nothing refers to: an empty index, not an error.
    let other = srv.get(&format!("/v2/{repo}/referrers/sha256:{}", "0".repeat(64)));
    assert!(index_digests(&other).is_empty());

    // A second hop uses ferry-in serve as its upstream (over TLS, trusting
    // the site CA): it has the referrers API, so the artifact comes through
    // it (and not the fallback tag).
    let env2 = Env::new();
    std::fs::write(
        &env2.config,
        format!(
            "[[source]]\nname = \"hop\"\ntype = \"oci\"\nregistry = \"https://{inside}\"\nca_file = \"{ca}\"\nimages = [\"{repo}:v1\"]\nreferrers = true\nplatforms = [\"linux/amd64\"]\n"
        ),
    )
    .unwrap();
    env2.export("h1").expect_ok();
    env2.import("h1").expect_ok();
    let srv2 = env2.serve_tls();
    assert_eq!(
        index_digests(&referrers(&srv2, "")),
        vec![artifact_digest.clone()]
    );
    // Through the API, not the fallback tag.
    let tags2 = srv2.get(&format!("/v2/{repo}/tags/list"));
    assert!(
        !String::from_utf8_lossy(&tags2).contains(&format!("\"{fallback_tag}\"")),
        "{}",
        String::from_utf8_lossy(&tags2)
    );
    assert_eq!(
        raw_manifest_tls(&srv2, repo, &artifact_digest),
        artifact.as_bytes()
    );
    assert_eq!(raw_manifest_tls(&srv2, repo, &sig_tag), sig.as_bytes());
}

/// The digests an image index lists, in order.
fn index_digests(body: &[u8]) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_slice(body).expect("an image index");
    assert_eq!(v["mediaType"], OCI_INDEX, "{v}");
    v["manifests"]
        .as_array()
        .expect("a manifests array")
        .iter()
        .map(|d| d["digest"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn dropped_images_are_removed_inside_unless_pinned() {
    let Some((env, work)) = setup() else {
        return;
    };
    let (_reg, reg) = registry(&work);
    let keep = build_image(&work, &random_bytes(300_000, 41), "keep", 1);
    let gone = build_image(&work, &random_bytes(300_000, 42), "gone", 2);
    let stay = build_image(&work, &random_bytes(300_000, 43), "stay", 3);
    push(&keep, "keep", &reg, "team/kept");
    push(&gone, "gone", &reg, "team/gone");
    push(&stay, "stay", &reg, "team/stay");
    let write = |images: &[&str]| {
        let list: Vec<String> = images.iter().map(|i| format!("{i:?}")).collect();
        std::fs::write(
            &env.config,
            format!(
                "[[source]]\nname = \"hub\"\ntype = \"oci\"\nregistry = \"http://{reg}\"\nimages = [{}]\npin = [\"team/kept:keep\"]\n",
                list.join(", ")
            ),
        )
        .unwrap();
    };
    write(&["team/kept:keep", "team/gone:gone", "team/stay:stay"]);
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();
    let kept_index = raw_manifest(&reg, "team/kept", "keep");
    let gone_index = raw_manifest(&reg, "team/gone", "gone");
    // The blobs only the dropped image has: its big layer among them.
    let blobs_of = |repo: &str, tag: &str| -> Vec<String> {
        let out = work.join(format!("pull-{}", repo.replace('/', "-")));
        skopeo(&[
            "copy",
            "--all",
            "--src-tls-verify=false",
            &format!("docker://{reg}/{repo}:{tag}"),
            &format!("oci:{}:{tag}", out.display()),
        ])
        .expect_ok();
        std::fs::read_dir(out.join("blobs/sha256"))
            .unwrap()
            .map(|e| format!("sha256:{}", e.unwrap().file_name().to_string_lossy()))
            .collect()
    };
    let gone_blobs = blobs_of("team/gone", "gone");
    let kept_blobs = blobs_of("team/kept", "keep");
    {
        let srv = env.serve();
        for b in &gone_blobs {
            curl(&[
                "-o",
                "/dev/null",
                &format!("http://{}/v2/team/stay/blobs/{b}", srv.addr),
            ]);
        }
    }

    // Both dropped from the config; the pinned one also vanishes upstream.
    write(&["team/stay:stay"]);
    std::fs::remove_dir_all(work.join("storage/docker/registry/v2/repositories/team/kept"))
        .unwrap();
    assert!(skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{reg}/team/kept:keep")
    ])
    .stderr
    .contains("manifest unknown"));
    env.export("m2").expect_ok();
    let delta = dir_bytes(&env.only_bundle("m2"));
    assert!(
        delta < 100_000,
        "keeping a pinned image shipped {delta} bytes"
    );
    env.import("m2").expect_ok();
    let srv = env.serve_tls();
    let status = |path: String| -> String {
        let o = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(&srv.ca)
            .arg(srv.url(&path))
            .output()
            .unwrap();
        String::from_utf8(o.stdout).unwrap()
    };
    // The dropped image is gone: its repository, its manifests, its blobs.
    assert_eq!(status("/v2/team/gone/tags/list".to_string()), "404");
    assert_eq!(
        status(format!(
            "/v2/team/stay/manifests/sha256:{}",
            sha(&gone_index)
        )),
        "404"
    );
    for b in &gone_blobs {
        assert_eq!(
            status(format!("/v2/team/stay/blobs/{b}")),
            "404",
            "blob {b} of the dropped image is still served"
        );
    }
    // ... and no longer stored in the current generation.
    let current = std::fs::canonicalize(env.in_state.join("store/current")).unwrap();
    let mut held = Vec::new();
    for e in walk(&current) {
        held.push(e.file_name().unwrap().to_string_lossy().into_owned());
    }
    for b in &gone_blobs {
        let hex = b.strip_prefix("sha256:").unwrap();
        assert!(!held.iter().any(|h| h == hex), "{hex} still stored");
    }
    // The pinned image stays whole, byte-exact.
    assert_eq!(raw_manifest_tls(&srv, "team/kept", "keep"), kept_index);
    for b in &kept_blobs {
        assert_eq!(
            status(format!("/v2/team/kept/blobs/{b}")),
            "200",
            "blob {b} of the pinned image"
        );
    }
    let dest = format!("oci:{}:keep", work.join("kept-inside").display());
    skopeo_pull(&srv, "team/kept:keep", &dest, &["--all"]).expect_ok();
    // Unpinned, it goes too.
    std::fs::write(
        &env.config,
        format!(
            "[[source]]\nname = \"hub\"\ntype = \"oci\"\nregistry = \"http://{reg}\"\nimages = [\"team/stay:stay\"]\n"
        ),
    )
    .unwrap();
    env.export("m3").expect_ok();
    env.import("m3").expect_ok();
    assert_eq!(status("/v2/team/kept/tags/list".to_string()), "404");
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// A TCP relay in front of the registry: it forwards both ways, counts the
/// bytes it sends back, and with a limit cuts every connection once that
/// many bytes went back in all (an upstream that stops answering half-way).
const RELAY: &str = r#"
import socket, sys, threading
target, limit, port_file, count_file = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
lock = threading.Lock()
total = [0]
def pump(a, b, count):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            if count:
                with lock:
                    room = limit - total[0] if limit else len(data)
                    data = data[:max(room, 0)]
                    total[0] += len(data)
                    open(count_file, "w").write(str(total[0]))
                if not data:
                    break
            b.sendall(data)
            if count and limit and total[0] >= limit:
                break
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0))
srv.listen(16)
open(port_file, "w").write(str(srv.getsockname()[1]))
while True:
    c, _ = srv.accept()
    u = socket.create_connection(("127.0.0.1", target))
    threading.Thread(target=pump, args=(c, u, False), daemon=True).start()
    threading.Thread(target=pump, args=(u, c, True), daemon=True).start()
"#;

/// Starts the relay to `reg`; its address and the file it counts bytes in.
fn relay(work: &Path, reg: &str, limit: u64, name: &str) -> (KillOnDrop, String, PathBuf) {
    let script = work.join("relay.py");
    std::fs::write(&script, RELAY).unwrap();
    let port_file = work.join(format!("{name}.port"));
    let count_file = work.join(format!("{name}.count"));
    let target = reg.rsplit(':').next().unwrap();
    let child = KillOnDrop(
        Command::new("python3")
            .arg(&script)
            .args([target, &limit.to_string()])
            .arg(&port_file)
            .arg(&count_file)
            .spawn()
            .unwrap(),
    );
    for _ in 0..200 {
        if let Ok(p) = std::fs::read_to_string(&port_file) {
            if !p.is_empty() {
                return (child, format!("127.0.0.1:{p}"), count_file);
            }
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("the relay did not start");
}

#[test]
fn an_upstream_cut_half_way_ships_nothing_and_a_rerun_resumes() {
    if !have_tools(&current_test(), &["python3"]) {
        return;
    }
    let Some((env, work)) = setup() else {
        return;
    };
    let (_reg, reg) = registry(&work);
    // Random bytes: skopeo's compression cannot shrink the 3 MB layer.
    let v1 = build_image(&work, &random_bytes(3_000_000, 51), "v1", 1);
    push(&v1, "v1", &reg, "library/big");
    let layer_size = 3_000_000u64;
    let cache = env.out_state.join("cache/hub/blobs");

    let (relay1, cut, _) = relay(&work, &reg, 1_500_000, "cut");
    config(&env, &cut, &["library/big:v1"]);
    env.export("m1").expect_fail(&["library/big", "resumes"]);
    drop(relay1);
    assert!(
        !env.root().join("m1").exists(),
        "a failed export wrote to the media"
    );
    let parts: Vec<PathBuf> = walk(&cache)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "part"))
        .collect();
    assert_eq!(parts.len(), 1, "{parts:?}");
    let kept = std::fs::metadata(&parts[0]).unwrap().len();
    assert!(
        kept > 500_000 && kept < layer_size,
        "{kept} bytes kept of the cut download"
    );

    // The upstream answers again: the re-run fetches only what it lacked.
    let (_relay2, whole, count) = relay(&work, &reg, 0, "whole");
    config(&env, &whole, &["library/big:v1"]);
    env.export("m1").expect_ok();
    let fetched: u64 = std::fs::read_to_string(&count).unwrap().parse().unwrap();
    assert!(
        fetched < layer_size - kept + 200_000,
        "the re-run fetched {fetched} bytes; {kept} of the {layer_size}-byte layer were cached"
    );
    assert!(!parts[0].exists(), "the partial download was not completed");
    env.import("m1").expect_ok();
    let srv = env.serve_tls();
    // Every blob is byte-exact from the inside.
    let out = work.join("pulled");
    let dest = format!("oci:{}:v1", out.display());
    skopeo_pull(&srv, "library/big:v1", &dest, &["--all"]).expect_ok();
    let up = work.join("pulled-up");
    skopeo(&[
        "copy",
        "--all",
        "--src-tls-verify=false",
        &format!("docker://{reg}/library/big:v1"),
        &format!("oci:{}:v1", up.display()),
    ])
    .expect_ok();
    for e in std::fs::read_dir(up.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        assert_eq!(
            std::fs::read(e.path()).unwrap(),
            std::fs::read(out.join("blobs/sha256").join(e.file_name())).unwrap()
        );
    }
    // A later export clears cached blobs the last bundle holds.
    env.export("m2").expect_ok();
    let left: Vec<PathBuf> = walk(&cache);
    assert!(left.is_empty(), "{left:?}");
}

/// Runs openssl; panics with its output when it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let o = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `ferry-out export` into `media` with extra environment variables.
fn export_with_env(env: &Env, media: &str, vars: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(bin("ferry-out"));
    cmd.arg("--state")
        .arg(&env.out_state)
        .args(["export", "--config"])
        .arg(&env.config)
        .arg("--to")
        .arg(env.root().join(media));
    for v in [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
    ] {
        cmd.env_remove(v);
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    Run {
        ok: o.status.success(),
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

#[test]
fn https_with_a_private_ca_basic_auth_from_docker_config_and_proxy_settings() {
    if !have_tools(&current_test(), &["openssl", "htpasswd"]) {
        return;
    }
    let Some((env, work)) = setup() else {
        return;
    };
    // A private CA and a certificate for 127.0.0.1 issued by it.
    openssl(
        &work,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=Ferry test CA",
        ],
    );
    openssl(
        &work,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "reg.key",
            "-out",
            "reg.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        work.join("san.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        &work,
        &[
            "x509",
            "-req",
            "-in",
            "reg.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "reg.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
    let o = Command::new("htpasswd")
        .args(["-Bbn", "mirror", "s3cret:pw"])
        .output()
        .unwrap();
    assert!(o.status.success());
    std::fs::write(work.join("htpasswd"), &o.stdout).unwrap();
    let port = free_port();
    let cfg = work.join("registry.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {d}/storage\nhttp:\n  addr: 127.0.0.1:{port}\n  tls:\n    certificate: {d}/reg.pem\n    key: {d}/reg.key\nauth:\n  htpasswd:\n    realm: ferry-test\n    path: {d}/htpasswd\n",
            d = work.display()
        ),
    )
    .unwrap();
    let _reg = KillOnDrop(
        Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let reg = format!("127.0.0.1:{port}");
    for _ in 0..100 {
        if std::net::TcpStream::connect(&reg).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let v1 = build_image(&work, &random_bytes(200_000, 61), "v1", 1);
    // The registry speaks TLS with a CA skopeo is not told of: the push
    // (the test's setup) does not check it; ferry-out, the subject, does.
    let creds = ["--all", "--dest-creds", "mirror:s3cret:pw"];
    skopeo_push(&v1, "v1", &reg, "library/tls:v1", &creds).expect_ok();
    // base64("mirror:s3cret:pw")
    std::fs::write(
        work.join("config.json"),
        r#"{"auths":{"127.0.0.1:PORT":{"auth":"bWlycm9yOnMzY3JldDpwdw=="}}}"#
            .replace("PORT", &port.to_string()),
    )
    .unwrap();
    std::fs::write(
        work.join("wrong.json"),
        format!(r#"{{"auths":{{"https://127.0.0.1:{port}":{{"username":"mirror","password":"nope"}}}}}}"#),
    )
    .unwrap();
    let write = |extra: &str| {
        std::fs::write(
            &env.config,
            format!(
                "[[source]]\nname = \"secure\"\ntype = \"oci\"\nregistry = \"https://{reg}\"\nimages = [\"library/tls:v1\"]\n{extra}"
            ),
        )
        .unwrap();
    };
    let ca = work.join("ca.pem");
    let auth = work.join("config.json");
    // Without the CA, the certificate is refused.
    write(&format!("auth_file = {:?}\n", auth.display().to_string()));
    export_with_env(&env, "m1", &[]).expect_fail(&["library/tls", "UnknownIssuer"]);
    // With the CA but a wrong password: a 401 that says so.
    write(&format!(
        "ca_file = {:?}\nauth_file = {:?}\n",
        ca.display().to_string(),
        work.join("wrong.json").display().to_string()
    ));
    export_with_env(&env, "m1", &[]).expect_fail(&["401"]);
    assert!(!env.root().join("m1").exists());
    // The right credentials through a proxy that does not exist: refused...
    write(&format!(
        "ca_file = {:?}\nauth_file = {:?}\n",
        ca.display().to_string(),
        auth.display().to_string()
    ));
    let dead = format!("http://127.0.0.1:{}", free_port());
    export_with_env(&env, "m1", &[("HTTPS_PROXY", &dead)])
        .expect_fail(&["library/tls", &format!("through the proxy {dead}")]);
    // ...unless NO_PROXY exempts the registry.
    export_with_env(
        &env,
        "m1",
        &[("HTTPS_PROXY", &dead), ("NO_PROXY", "127.0.0.1")],
    )
    .expect_ok();
    env.import("m1").expect_ok();
    let srv = env.serve_tls();
    assert_eq!(
        skopeo_read(&srv, "inspect", &["--raw"], "library/tls:v1")
            .expect_ok()
            .stdout,
        skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--creds",
            "mirror:s3cret:pw",
            &format!("docker://{reg}/library/tls:v1")
        ])
        .expect_ok()
        .stdout
    );
}

#[test]
fn repositories_are_served_renamed_and_under_a_prefix() {
    let Some((env, work)) = setup() else {
        return;
    };
    let (_reg, reg) = registry(&work);
    let v1 = build_image(&work, &random_bytes(150_000, 71), "v1", 1);
    push(&v1, "v1", &reg, "nvidia/driver");
    push(&v1, "v1", &reg, "nvidia/gpu-operator");
    std::fs::write(
        &env.config,
        format!(
            "[[source]]\nname = \"nv\"\ntype = \"oci\"\nregistry = \"http://{reg}\"\n\
             images = [\"nvidia/driver:v1\", \"nvidia/gpu-operator:v1\"]\nprefix = \"nvcr.io\"\n\
             rename = {{ \"nvidia/driver\" = \"gpu/driver\" }}\n"
        ),
    )
    .unwrap();
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();
    let srv = env.serve_tls();
    for (up, inside) in [
        ("nvidia/driver", "nvcr.io/gpu/driver"),
        ("nvidia/gpu-operator", "nvcr.io/nvidia/gpu-operator"),
    ] {
        let a = skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{reg}/{up}:v1"),
        ])
        .expect_ok();
        let b = skopeo_read(&srv, "inspect", &["--raw"], &format!("{inside}:v1")).expect_ok();
        assert_eq!(a.stdout, b.stdout, "{inside}");
        let dest = format!("oci:{}:v1", work.join(inside.replace('/', "-")).display());
        skopeo_pull(&srv, &format!("{inside}:v1"), &dest, &["--all"]).expect_ok();
    }
    // The upstream names are not served.
    for gone in ["nvidia/driver", "gpu/driver", "nvidia/gpu-operator"] {
        let r = skopeo_read(&srv, "inspect", &["--raw"], &format!("{gone}:v1")).expect_fail(&[]);
        assert!(!r.stderr.contains("certificate"), "{}", r.stderr);
    }
    let catalog = srv.get("/v2/_catalog");
    let v: serde_json::Value = serde_json::from_slice(&catalog).unwrap();
    assert_eq!(
        v["repositories"],
        serde_json::json!(["nvcr.io/gpu/driver", "nvcr.io/nvidia/gpu-operator"])
    );
    // Two names for one repository are refused.
    std::fs::write(
        &env.config,
        format!(
            "[[source]]\nname = \"nv\"\ntype = \"oci\"\nregistry = \"http://{reg}\"\n\
             images = [\"a/b:v1\"]\nrename = {{ \"a/b\" = \"c\", \"d/e\" = \"c\" }}\n"
        ),
    )
    .unwrap();
    env.export("m2").expect_fail(&["same name \"c\""]);
}
