//! An image index over two platforms, each with one `tar+gzip` layer of
//! real files, updated under the same tag (one file changed per platform,
//! and the index lists the platforms in the other order): ferry-out pairs
//! each new manifest with the previous one of its platform and each layer
//! with the layer at its position, ships patches, and `skopeo` pulls the
//! exact layers from `ferry-in serve`.

use super::{delta_high, patched_line, stdlib_packages, tar_gz, touch_up};
use ferry_e2e::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn sha(data: &[u8]) -> String {
    ferry_protocol::id::Sha256::of(data).to_hex()
}

/// A platform's image: its architecture and its one layer (gzip'd tar).
struct Platform<'a> {
    arch: &'a str,
    layer: &'a [u8],
}

/// An OCI image layout holding an index tagged `latest` over `platforms`
/// (in that order), each a manifest with a config and one `tar+gzip` layer.
/// Returns the layout directory.
fn image(dir: &Path, name: &str, platforms: &[Platform<'_>]) -> PathBuf {
    let layout = OciLayout::new(&dir.join(format!("layout-{name}")));
    let mut manifests = Vec::new();
    for p in platforms {
        let layer = Layer {
            bytes: p.layer,
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip",
            diff_id: sha(&gunzip(dir, p.layer)),
        };
        let m = layout.manifest(p.arch, &format!(r#"{{"Env":["IMAGE={name}"]}}"#), &[layer]);
        manifests.push((p.arch, m));
    }
    let index = layout.index(&manifests);
    layout.tag("latest", &index, true);
    layout.dir
}

/// `gzip -dc` of `gz` (a layer's tar, for its diff id).
fn gunzip(dir: &Path, gz: &[u8]) -> Vec<u8> {
    let p = dir.join("layer.gz");
    std::fs::write(&p, gz).unwrap();
    sh(Command::new("gzip").arg("-dc").arg(&p))
}

/// Pushes the layout's `latest` into `reg` as `lib/app:latest`, every
/// platform, keeping every blob as it is (no recompression).
fn push(layout: &Path, reg: &str) {
    let flags = ["--all", "--preserve-digests"];
    skopeo_push(layout, "latest", reg, "lib/app:latest", &flags).expect_ok();
}

#[test]
fn updated_gzip_layers_ship_as_patches_and_skopeo_pulls_their_exact_digests() {
    if !have_tools(
        &current_test(),
        &["docker-registry", "skopeo", "tar", "gzip", "python3"],
    ) {
        return;
    }
    let env = Env::new();
    let work = env.root().join("oci");
    // The platforms' layers hold different files, so a layer patched
    // against the other platform's would not be small.
    let (amd, arm) = (work.join("rootfs-amd64"), work.join("rootfs-arm64"));
    stdlib_packages(&amd, &["json", "email"]);
    stdlib_packages(&arm, &["http", "logging"]);
    let (_reg, reg) = docker_registry(&work);
    let (amd1, arm1) = (tar_gz(&amd, None), tar_gz(&arm, None));
    let v1 = [
        Platform {
            arch: "amd64",
            layer: &amd1,
        },
        Platform {
            arch: "arm64",
            layer: &arm1,
        },
    ];
    push(&image(&work, "v1", &v1), &reg);
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

    // v2: one file of each layer changed; the tag moves; the index lists
    // arm64 first now.
    touch_up(&amd.join("json/decoder.py"), "# patched in v2");
    touch_up(&arm.join("http/client.py"), "# patched in v2");
    let (amd2, arm2) = (tar_gz(&amd, None), tar_gz(&arm, None));
    let v2 = [
        Platform {
            arch: "arm64",
            layer: &arm2,
        },
        Platform {
            arch: "amd64",
            layer: &amd2,
        },
    ];
    push(&image(&work, "v2", &v2), &reg);
    let r = env.export("m2").expect_ok();
    let bundle = dir_bytes(&env.only_bundle("m2"));
    let layers = (amd2.len() + arm2.len()) as u64;
    eprintln!(
        "update bundle: {bundle} bytes; new layers {layers} bytes; {}",
        patched_line(&r)
    );
    // Without their predecessors (a blob's path is its digest) the layers
    // would ship whole, and the bundle would outweigh them.
    assert!(
        bundle * 4 < layers,
        "update bundle {bundle} bytes for {layers} bytes of new layers"
    );
    env.import("m2").expect_ok();

    // skopeo pulls both platforms from the inside (checking every digest):
    // the layers are v2's, byte for byte.
    let srv = env.serve_tls();
    let out = work.join("pulled");
    let dest = format!("oci:{}:latest", out.display());
    skopeo_pull(&srv, "lib/app:latest", &dest, &["--all"]).expect_ok();
    for layer in [&amd2, &arm2] {
        let pulled = std::fs::read(out.join("blobs/sha256").join(sha(layer)))
            .expect("skopeo pulled the v2 layer by its digest");
        assert_eq!(&pulled, layer);
    }
}
