//! An image layer (tar of real files, gzip) updated under the same tag:
//! ferry-out pairs the new layer with the old by its position in the tag's
//! previous manifest, ships a patch, and `skopeo` pulls the exact layer.

use super::{delta_high, patched_line, real_files, run, tar_gz, touch_up};
use ferry_e2e::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn sha(data: &[u8]) -> String {
    ferry_protocol::id::Sha256::of(data).to_hex()
}

/// An OCI image layout holding one image tagged `tag`: a config and one
/// `tar+gzip` layer, `layer`. Returns the layout directory.
fn image(dir: &Path, tag: &str, layer: &[u8], diff_id: &str) -> PathBuf {
    let layout = dir.join(format!("layout-{tag}"));
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| -> (String, usize) {
        let h = sha(data);
        std::fs::write(blobs.join(&h), data).unwrap();
        (h, data.len())
    };
    let (lh, ls) = put(layer);
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["sha256:{diff_id}"]}},"config":{{"Env":["TAG={tag}"]}}}}"#
    );
    let (ch, cs) = put(config.as_bytes());
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{ch}","size":{cs}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:{lh}","size":{ls}}}]}}"#
    );
    let (mh, ms) = put(manifest.as_bytes());
    std::fs::write(
        layout.join("index.json"),
        format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:{mh}","size":{ms},"annotations":{{"org.opencontainers.image.ref.name":"latest"}}}}]}}"#
        ),
    )
    .unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    layout
}

/// The layer of the files under `src`: tar, then gzip (real tools), and
/// the digest of the tar (the config's diff id).
fn layer(src: &Path) -> (Vec<u8>, String) {
    let gz = tar_gz(src, None);
    let tar = run(Command::new("gzip").arg("-dc").arg(write_tmp(src, &gz)));
    (gz, sha(&tar))
}

fn write_tmp(src: &Path, data: &[u8]) -> PathBuf {
    let p = src.with_extension("tar.gz");
    std::fs::write(&p, data).unwrap();
    p
}

/// Pushes the layout's `latest` into `reg` as `lib/app:latest`, keeping
/// every blob as it is (no recompression).
fn push(layout: &Path, reg: &str) {
    skopeo(&[
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &format!("oci:{}:latest", layout.display()),
        &format!("docker://{reg}/lib/app:latest"),
    ])
    .expect_ok();
}

#[test]
fn an_updated_gzip_layer_ships_as_a_patch_and_skopeo_pulls_its_exact_digest() {
    if !have_tools(
        &current_test(),
        &["docker-registry", "skopeo", "tar", "gzip", "python3"],
    ) {
        return;
    }
    let env = Env::new();
    let work = env.root().join("oci");
    let src = work.join("rootfs");
    real_files(&src);
    let (_reg, reg) = docker_registry(&work);
    let (layer1, diff1) = layer(&src);
    push(&image(&work, "v1", &layer1, &diff1), &reg);
    std::fs::write(
        &env.config,
        format!(
            "[[source]]\nname = \"hub\"\ntype = \"oci\"\nregistry = \"http://{reg}\"\nimages = [\"lib/app:latest\"]\n"
        ),
    )
    .unwrap();
    delta_high(&env);
    env.export("m1").expect_ok();
    env.import("m1").expect_ok();

    // v2: one file of the layer changed; the tag moves.
    touch_up(&src.join("json/decoder.py"), "# patched in v2");
    let (layer2, diff2) = layer(&src);
    assert_ne!(layer1, layer2);
    push(&image(&work, "v2", &layer2, &diff2), &reg);
    let r = env.export("m2").expect_ok();
    let bundle = dir_bytes(&env.only_bundle("m2"));
    eprintln!(
        "update bundle: {bundle} bytes; new layer {} bytes; {}",
        layer2.len(),
        patched_line(&r)
    );
    // Without its predecessor (a blob's path is its digest) the layer
    // would ship whole: the bundle would outweigh it.
    assert!(
        bundle * 4 < layer2.len() as u64,
        "update bundle {bundle} bytes for a {}-byte layer",
        layer2.len()
    );
    env.import("m2").expect_ok();

    // skopeo pulls the new image from the inside: the layer digest is v2's,
    // and its bytes are upstream's (skopeo checks every digest).
    let srv = env.serve();
    let out = work.join("pulled");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{}/lib/app:latest", srv.addr),
        &format!("oci:{}:latest", out.display()),
    ])
    .expect_ok();
    let pulled = std::fs::read(out.join("blobs/sha256").join(sha(&layer2)))
        .expect("skopeo pulled the v2 layer by its digest");
    assert_eq!(pulled, layer2);
}
