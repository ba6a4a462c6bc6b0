//! The inside's OCI store and registry with a real client (skopeo): a small
//! two-platform image, crafted into a signed bundle (the outside has no OCI
//! source yet), is imported and pulled back digest-exact by tag and by
//! digest; and a blob whose bytes do not match its digest is refused.

use ferry_e2e::*;
use ferry_protocol::catalog::SourceKind;
use ferry_protocol::id::Sha256;
use std::path::Path;
use std::process::Command;

const OCI: SourceKind = SourceKind::Oci;
const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";

fn digest(data: &[u8]) -> String {
    format!("sha256:{}", Sha256::of(data).to_hex())
}

fn hex(data: &[u8]) -> String {
    Sha256::of(data).to_hex()
}

/// One platform's image: layer tar, config, manifest.
struct Image {
    layer: Vec<u8>,
    config: Vec<u8>,
    manifest: Vec<u8>,
}

/// A real, uncompressed layer tar made by `tar`, holding `files`.
fn layer_tar(root: &Path, name: &str, files: &[(&str, &[u8])]) -> Vec<u8> {
    let dir = root.join(name);
    for (path, data) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    let out = root.join(format!("{name}.tar"));
    let st = Command::new("tar")
        .args(["--format=ustar", "--owner=0", "--group=0", "-cf"])
        .arg(&out)
        .arg("-C")
        .arg(&dir)
        .args(files.iter().map(|(p, _)| *p))
        .status()
        .expect("run tar");
    assert!(st.success());
    std::fs::read(out).unwrap()
}

fn image(root: &Path, arch: &str, files: &[(&str, &[u8])]) -> Image {
    let layer = layer_tar(root, arch, files);
    let config = format!(
        r#"{{"architecture":"{arch}","os":"linux","config":{{"Cmd":["/hello"]}},"rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
        digest(&layer)
    )
    .into_bytes();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{MANIFEST_TYPE}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}]}}"#,
        digest(&config),
        config.len(),
        digest(&layer),
        layer.len()
    )
    .into_bytes();
    Image {
        layer,
        config,
        manifest,
    }
}

fn index(images: &[(&str, &Image)]) -> Vec<u8> {
    let entries: Vec<String> = images
        .iter()
        .map(|(arch, img)| {
            format!(
                r#"{{"mediaType":"{MANIFEST_TYPE}","digest":"{}","size":{},"platform":{{"architecture":"{arch}","os":"linux"}}}}"#,
                digest(&img.manifest),
                img.manifest.len()
            )
        })
        .collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{INDEX_TYPE}","manifests":[{}]}}"#,
        entries.join(",")
    )
    .into_bytes()
}

/// Asserts that OCI layout `dir` holds `img`'s blobs, byte-exact.
fn assert_holds(dir: &Path, img: &Image, what: &str) {
    for (name, data) in [
        ("layer", &img.layer),
        ("config", &img.config),
        ("manifest", &img.manifest),
    ] {
        let p = dir.join("blobs/sha256").join(hex(data));
        let got = std::fs::read(&p).unwrap_or_else(|e| {
            panic!(
                "{what}: the {name} {} is missing: {e}; the layout holds {:?}, index.json: {}",
                p.display(),
                dir_names(&dir.join("blobs/sha256")),
                std::fs::read_to_string(dir.join("index.json")).unwrap_or_default()
            )
        });
        assert!(got == *data, "{what}: the {name} differs");
    }
}

fn has_blob(dir: &Path, data: &[u8]) -> bool {
    dir.join("blobs/sha256").join(hex(data)).is_file()
}

#[test]
fn skopeo_pulls_a_two_platform_image_digest_exact() {
    let env = Env::new();
    let root = env.root().join("image");
    let big = random_bytes(400_000, 5);
    let amd = image(
        &root,
        "amd64",
        &[("hello", b"hello from amd64\n"), ("data/big.bin", &big)],
    );
    let arm = image(&root, "arm64", &[("hello", b"hello from arm64\n")]);
    let idx = index(&[("amd64", &amd), ("arm64", &arm)]);
    let tag = |d: &[u8]| format!("{}\n", digest(d)).into_bytes();
    let (tag_idx, tag_amd) = (tag(&idx), tag(&amd.manifest));
    let p = |kind: &str, d: &[u8]| format!("{kind}/sha256/{}", hex(d));
    let paths = [
        p("blobs", &amd.layer),
        p("blobs", &amd.config),
        p("blobs", &arm.layer),
        p("blobs", &arm.config),
        p("manifests", &amd.manifest),
        p("manifests", &arm.manifest),
        p("manifests", &idx),
    ];
    craft_bundle(
        &env,
        "m1",
        &[
            ("registry", OCI, &paths[0], &amd.layer),
            ("registry", OCI, &paths[1], &amd.config),
            ("registry", OCI, &paths[2], &arm.layer),
            ("registry", OCI, &paths[3], &arm.config),
            ("registry", OCI, &paths[4], &amd.manifest),
            ("registry", OCI, &paths[5], &arm.manifest),
            ("registry", OCI, &paths[6], &idx),
            ("registry", OCI, "repos/library/demo/_tags/v1", &tag_idx),
            ("registry", OCI, "repos/library/demo/_tags/latest", &tag_amd),
            ("plain", SourceKind::Files, "readme.txt", b"files too\n"),
        ],
    );
    env.import("m1").expect_ok();
    assert_eq!(env.applied_sequence(), 1);
    let stored = env.export_tree().join("oci/registry");
    assert!(std::fs::read(stored.join(&paths[0])).unwrap() == amd.layer);
    // Over TLS, skopeo verifying the server with the site CA.
    let srv = env.serve_tls();
    let repo = "library/demo";
    let read = |cmd: &str, args: &[&str], name: &str| {
        skopeo_read(&srv, cmd, args, name)
            .expect_ok()
            .stdout
            .into_bytes()
    };

    // inspect: the index by tag, amd64 picked by default, arm64 on request.
    let raw = read("inspect", &["--raw"], &format!("{repo}:v1"));
    assert!(raw == idx, "inspect --raw differs from the index");
    let info = String::from_utf8(read("inspect", &[], &format!("{repo}:v1"))).unwrap();
    assert!(
        info.contains(&format!("\"Digest\": \"{}\"", digest(&idx))),
        "{info}"
    );
    assert!(info.contains("\"Architecture\": \"amd64\""), "{info}");
    assert!(info.contains(&digest(&amd.layer)), "{info}");
    let arm64 = ["--override-arch", "arm64"];
    let info = String::from_utf8(read("inspect", &arm64, &format!("{repo}:v1"))).unwrap();
    assert!(info.contains("\"Architecture\": \"arm64\""), "{info}");
    assert!(info.contains(&digest(&arm.layer)), "{info}");
    let info = String::from_utf8(read("inspect", &[], &format!("{repo}:latest"))).unwrap();
    assert!(
        info.contains(&format!("\"Digest\": \"{}\"", digest(&amd.manifest))),
        "{info}"
    );

    // list-tags.
    let tags = String::from_utf8(read("list-tags", &[], repo)).unwrap();
    assert!(
        tags.contains("\"latest\"") && tags.contains("\"v1\""),
        "{tags}"
    );

    // copy by tag: the amd64 image, every blob byte-exact.
    let out = env.root().join("pulled");
    std::fs::create_dir_all(&out).unwrap();
    let copy = |image: String, dest: &Path, tag: &str, extra: &[&str]| {
        let dest = format!("oci:{}:{tag}", dest.display());
        // The oci: transport gzips uncompressed layers (rewriting the
        // manifest) unless told to keep every digest.
        let mut flags = vec!["--insecure-policy", "--preserve-digests"];
        flags.extend_from_slice(extra);
        skopeo_pull(&srv, &image, &dest, &flags).expect_ok();
    };
    copy(format!("{repo}:v1"), &out.join("by-tag"), "v1", &[]);
    assert_holds(&out.join("by-tag"), &amd, "copy by tag");
    assert!(!has_blob(&out.join("by-tag"), &arm.layer));
    let index_json = std::fs::read_to_string(out.join("by-tag/index.json")).unwrap();
    assert!(index_json.contains(&digest(&amd.manifest)), "{index_json}");

    // by the index's digest, for arm64.
    copy(
        format!("{repo}@{}", digest(&idx)),
        &out.join("arm"),
        "arm",
        &arm64,
    );
    assert_holds(&out.join("arm"), &arm, "copy of arm64 by digest");
    assert!(!has_blob(&out.join("arm"), &amd.layer));

    // by a manifest's digest.
    copy(
        format!("{repo}@{}", digest(&amd.manifest)),
        &out.join("by-digest"),
        "x",
        &[],
    );
    assert_holds(&out.join("by-digest"), &amd, "copy by manifest digest");

    // --all: the index itself and both platforms.
    copy(format!("{repo}:v1"), &out.join("all"), "all", &["--all"]);
    assert_holds(&out.join("all"), &amd, "copy --all");
    assert_holds(&out.join("all"), &arm, "copy --all");
    assert!(has_blob(&out.join("all"), &idx));

    // The plain files source is still served as files.
    assert_eq!(srv.get("/files/plain/readme.txt"), b"files too\n");
}

#[test]
fn blob_not_matching_its_digest_is_refused() {
    let env = Env::new();
    let claimed = b"what the path says";
    let path = format!("blobs/sha256/{}", hex(claimed));
    craft_bundle(
        &env,
        "bad",
        &[("registry", OCI, &path, b"something else entirely")],
    );
    let r = env.import("bad");
    assert!(!r.ok, "should have been refused:\n{}", r.all());
    assert!(
        r.stderr.contains(&format!("registry/{path}")),
        "the object is not named:\n{}",
        r.stderr
    );
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    assert_eq!(env.applied_sequence(), 0);
    assert!(!env.in_state.join("store/current").exists());
    assert!(dir_names(&env.in_state.join("store/gens")).is_empty());
    assert!(dir_names(&env.in_state.join("chunks")).is_empty());
    // verify (the dry run) refuses it the same way.
    let r = env.verify("bad");
    assert!(!r.ok && r.stderr.contains(&path), "{}", r.all());

    // A tag naming a manifest the source does not hold is refused when the
    // generation is built, and nothing is applied either.
    let env = Env::new();
    let tag = format!("{}\n", digest(b"{}"));
    craft_bundle(
        &env,
        "dangling",
        &[(
            "registry",
            OCI,
            "repos/library/demo/_tags/v1",
            tag.as_bytes(),
        )],
    );
    let r = env.import("dangling");
    assert!(!r.ok, "should have been refused:\n{}", r.all());
    assert!(
        r.stderr.contains("registry/repos/library/demo/_tags/v1"),
        "{}",
        r.stderr
    );
    assert_eq!(env.applied_sequence(), 0);
    assert!(!env.in_state.join("store/current").exists());
    assert!(dir_names(&env.in_state.join("store/gens")).is_empty());
}
