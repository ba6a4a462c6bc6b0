//! A container layer gzipped by the real skopeo (containers/image writes
//! gzip layers with klauspost/pgzip, `DefaultCompression`): two
//! generations of a layer, the second with one file edited, go through a
//! bundle as a small patch and are rebuilt byte for byte (recipe encoder 5).
//! Without skopeo the test prints `skipped: ...` and returns.

use crate::Pair;
use std::path::Path;
use std::process::Command;

/// Text files of about `len` bytes each: lines of words, as source trees
/// and configuration files look.
fn text_file(len: usize, seed: u64) -> Vec<u8> {
    const WORDS: [&str; 16] = [
        "layer", "image", "ferry", "config", "value", "return", "struct", "the", "of", "a", "fn",
        "let", "impl", "pub", "use", "mod",
    ];
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 64);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(WORDS[(x % 16) as usize].as_bytes());
        out.push(if x.is_multiple_of(9) { b'\n' } else { b' ' });
        if x.is_multiple_of(97) {
            out.extend_from_slice(format!("{}", x % 100_000).as_bytes());
        }
    }
    out
}

/// The sha256 hex digest of a file (coreutils' `sha256sum`).
fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

/// The layer skopeo writes for a tar of `files`: a `dir:` image holding the
/// uncompressed tar, copied to an OCI layout with `--dest-compress`.
fn skopeo_layer(work: &Path, files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let tree = work.join("tree");
    for (name, data) in files {
        let path = tree.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }
    let src = work.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let tar = work.join("layer.tar");
    let ok = Command::new("tar")
        .args(["--sort=name", "--mtime=@0", "--owner=0", "--group=0", "-cf"])
        .arg(&tar)
        .arg("-C")
        .arg(&tree)
        .arg(".")
        .status()
        .unwrap();
    assert!(ok.success());
    let (layer_digest, layer_len) = (sha256(&tar), std::fs::metadata(&tar).unwrap().len());
    std::fs::rename(&tar, src.join(&layer_digest)).unwrap();
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["sha256:{layer_digest}"]}},"config":{{}}}}"#
    );
    let config_path = work.join("config.json");
    std::fs::write(&config_path, &config).unwrap();
    let config_digest = sha256(&config_path);
    std::fs::rename(&config_path, src.join(&config_digest)).unwrap();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{config_digest}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:{layer_digest}","size":{layer_len}}}]}}"#,
        config.len()
    );
    std::fs::write(src.join("manifest.json"), manifest).unwrap();
    std::fs::write(src.join("version"), "Directory Transport Version: 1.1\n").unwrap();
    let dest = work.join("oci");
    let out = Command::new("skopeo")
        .args([
            "copy",
            "--quiet",
            "--dest-compress",
            "--dest-compress-format",
            "gzip",
        ])
        .arg(format!("dir:{}", src.display()))
        .arg(format!("oci:{}:latest", dest.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "skopeo copy: {out:?}");
    // The one gzip blob of the layout is the layer.
    let blobs = dest.join("blobs/sha256");
    std::fs::read_dir(blobs)
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .find(|b| b.starts_with(&[0x1f, 0x8b]))
        .expect("skopeo wrote a gzip layer")
}

#[test]
fn a_layer_skopeo_gzipped_ships_as_a_small_patch_and_rebuilds() {
    if Command::new("skopeo").arg("--version").output().is_err() {
        println!("skipped: skopeo is not installed");
        return;
    }
    // About 3.2 MB of files: four pgzip blocks (3.1 MiB).
    let mut files: Vec<(String, Vec<u8>)> = (0..40u64)
        .map(|i| (format!("app/src/file{i:02}.txt"), text_file(80_000, i + 1)))
        .collect();
    let work = tempfile::tempdir().unwrap();
    let old = skopeo_layer(&work.path().join("1"), &files);
    // Generation 2: one file edited in its middle, one file added.
    files[17].1[40_000..40_040].copy_from_slice(&[b'#'; 40]);
    files.push(("app/NEWS".into(), text_file(5_000, 99)));
    let new = skopeo_layer(&work.path().join("2"), &files);
    let plain: usize = files.iter().map(|(_, d)| d.len()).sum();
    assert!(plain > 3 << 20, "several pgzip blocks: {plain} bytes");
    assert!(new.len() > 500_000, "a layer of {} bytes", new.len());
    // pgzip's ending; the recipe is encoder 5 at level 5 (DefaultCompression).
    assert!(new[..new.len() - 8].ends_with(&[0, 0, 0xff, 0xff, 3, 0]));
    let a = ferry_recipe::analyze(&new, &ferry_recipe::Options::default());
    let params: Vec<_> = a
        .recipe
        .zlib_params()
        .iter()
        .map(|p| (p.encoder, p.level))
        .collect();
    assert_eq!(params, vec![(ferry_recipe::zlib::PGZIP_ENCODER, 5)]);

    let mut p = Pair::new();
    p.outside.write("layers/app-1.0.tar.gz", &old);
    assert_eq!(p.drive(), 1);
    p.outside.remove("layers/app-1.0.tar.gz");
    p.outside.write("layers/app-1.1.tar.gz", &new);
    let (e, media) = p.export_to_media().expect("a second bundle");
    assert_eq!(e.delta.patched, 1, "{:?}", e.delta);
    assert!(
        e.record.bytes < new.len() as u64 / 10,
        "bundle is {} bytes for a {} byte layer",
        e.record.bytes,
        new.len()
    );
    println!("layer {} bytes, bundle {} bytes", new.len(), e.record.bytes);
    let report = p.inside.import(&media).unwrap();
    assert!(report.ok(), "{:?}", report.failed);
    p.assert_in_sync();
}
