//! The OCI pull API under `/v2/`.

use super::*;

/// Adds OCI objects `(source, path, bytes)` to generation `name` (written
/// by `write_gen` before).
fn add_oci(layout: &Layout, name: &str, objects: &[(&str, &str, &[u8])]) {
    let dir = layout.gen(name);
    let mut catalog = Catalog::from_bytes(&std::fs::read(dir.join(GEN_INDEX)).unwrap()).unwrap();
    for (source, path, data) in objects {
        catalog.sources.insert(source.to_string(), SourceKind::Oci);
        catalog.objects.insert(key(source, path), file_object(data));
        let p = dir.join(GEN_OCI).join(source).join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    catalog.validate().unwrap();
    std::fs::write(dir.join(GEN_INDEX), catalog.to_bytes()).unwrap();
}

fn hex_of(data: &[u8]) -> String {
    Sha256::of(data).to_hex()
}

const MANIFEST: &[u8] =
    br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}"#;
const BARE_MANIFEST: &[u8] = br#"{"schemaVersion":2,"layers":[]}"#;
const BARE_INDEX: &[u8] = br#"{"schemaVersion":2,"manifests":[]}"#;
const BLOB: &[u8] = b"a layer's bytes, more or less";

/// A store with a files source and two OCI sources, served.
async fn served_oci() -> (Store, SocketAddr) {
    let s = store();
    write_gen(&s.layout, "g1", &[("src", "hello.txt", HELLO)], &[], false);
    let tag = |d: &[u8]| format!("sha256:{}\n", hex_of(d)).into_bytes();
    let (m, bm, bi) = (tag(MANIFEST), tag(BARE_MANIFEST), tag(BARE_INDEX));
    let paths = [
        format!("manifests/sha256/{}", hex_of(MANIFEST)),
        format!("manifests/sha256/{}", hex_of(BARE_MANIFEST)),
        format!("manifests/sha256/{}", hex_of(BARE_INDEX)),
        format!("blobs/sha256/{}", hex_of(BLOB)),
    ];
    add_oci(
        &s.layout,
        "g1",
        &[
            ("a-reg", &paths[0], MANIFEST),
            ("a-reg", &paths[1], BARE_MANIFEST),
            ("a-reg", &paths[2], BARE_INDEX),
            ("a-reg", &paths[3], BLOB),
            ("a-reg", "repos/library/demo/_tags/v1", &m),
            ("a-reg", "repos/library/demo/_tags/bare", &bm),
            ("a-reg", "repos/library/demo/_tags/index", &bi),
            ("a-reg", "repos/library/demo/sub/_tags/x", &m),
            ("a-reg", "repos/zeta/_tags/t", &m),
            // Also in a later source: the first source wins.
            ("b-reg", &paths[1], BARE_MANIFEST),
            ("b-reg", "repos/library/demo/_tags/v1", &bm),
            ("b-reg", "repos/other/_tags/latest", &bm),
        ],
    );
    set_current(&s.layout, "g1");
    let addr = start(&s.layout).await;
    (s, addr)
}

fn error_code(r: &Reply) -> String {
    let v: serde_json::Value =
        serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {r:?}"));
    v["errors"][0]["code"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn oci_base_and_read_only() {
    let (_s, addr) = served_oci().await;
    for target in ["/v2/", "/v2"] {
        let r = get(addr, target).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.text(), "{}");
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(
            r.header("docker-distribution-api-version"),
            Some("registry/2.0")
        );
    }
    for method in ["PUT", "POST", "PATCH", "DELETE"] {
        for target in [
            "/v2/",
            "/v2/library/demo/manifests/v1",
            "/v2/library/demo/blobs/uploads/",
        ] {
            let r = send(addr, method, target, &[("Content-Length", "0")]).await;
            assert_eq!(r.status, 405, "{method} {target}: {r:?}");
            assert_eq!(error_code(&r), "UNSUPPORTED");
            assert!(r.text().contains("read-only"), "{}", r.text());
        }
    }
    // Files are still served; the OCI sources are not files sources.
    assert_eq!(get(addr, "/files/src/hello.txt").await.body, HELLO);
    let html = get(addr, "/files/").await.text();
    assert!(html.contains("src/") && !html.contains("a-reg"), "{html}");
    let p = format!("/files/a-reg/blobs/sha256/{}", hex_of(BLOB));
    assert_eq!(get(addr, &p).await.status, 404);
    assert_eq!(get(addr, "/v2/nothing/here").await.status, 404);
}

#[tokio::test]
async fn oci_manifests_by_tag_and_digest() {
    let (_s, addr) = served_oci().await;
    let digest = format!("sha256:{}", hex_of(MANIFEST));
    for target in [
        "/v2/library/demo/manifests/v1".to_string(),
        format!("/v2/library/demo/manifests/{digest}"),
        "/v2/library/demo/sub/manifests/x".to_string(),
    ] {
        let r = get(addr, &target).await;
        assert_eq!(r.status, 200, "{target}: {r:?}");
        assert_eq!(r.body, MANIFEST);
        assert_eq!(
            r.header("content-type"),
            Some(crate::store::oci::MANIFEST_MEDIA_TYPE)
        );
        assert_eq!(r.header("docker-content-digest"), Some(digest.as_str()));
        assert_eq!(
            r.header("content-length"),
            Some(&*MANIFEST.len().to_string())
        );
        assert_eq!(r.header("etag"), Some(&*format!("\"{digest}\"")));
        assert_eq!(r.header("x-ferry-generation"), Some("g1"));
    }
    let r = send(addr, "HEAD", "/v2/library/demo/manifests/v1", &[]).await;
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert_eq!(r.header("docker-content-digest"), Some(digest.as_str()));
    assert_eq!(
        r.header("content-length"),
        Some(&*MANIFEST.len().to_string())
    );
    let r = send(
        addr,
        "GET",
        "/v2/library/demo/manifests/v1",
        &[("If-None-Match", &format!("\"{digest}\""))],
    )
    .await;
    assert_eq!(r.status, 304);

    // Media types from the JSON when it has no mediaType.
    let r = get(addr, "/v2/library/demo/manifests/bare").await;
    assert_eq!(r.body, BARE_MANIFEST);
    assert_eq!(
        r.header("content-type"),
        Some(crate::store::oci::MANIFEST_MEDIA_TYPE)
    );
    let r = get(addr, "/v2/library/demo/manifests/index").await;
    assert_eq!(r.body, BARE_INDEX);
    assert_eq!(
        r.header("content-type"),
        Some(crate::store::oci::INDEX_MEDIA_TYPE)
    );

    // A repository in a later source too: the first source's tag wins;
    // one only in the later source is found there.
    assert_eq!(
        get(addr, "/v2/other/manifests/latest").await.body,
        BARE_MANIFEST
    );

    for (target, status, code) in [
        ("/v2/library/demo/manifests/nope", 404, "MANIFEST_UNKNOWN"),
        ("/v2/library/demo/manifests/-bad", 404, "MANIFEST_UNKNOWN"),
        ("/v2/nobody/manifests/v1", 404, "NAME_UNKNOWN"),
        ("/v2/library/manifests/v1", 404, "NAME_UNKNOWN"),
        ("/v2/Library/demo/manifests/v1", 400, "NAME_INVALID"),
        (
            "/v2/library/demo/manifests/sha256:abc",
            400,
            "DIGEST_INVALID",
        ),
    ] {
        let r = get(addr, target).await;
        assert_eq!(
            (r.status, error_code(&r).as_str()),
            (status, code),
            "{target}"
        );
        assert_eq!(
            r.header("docker-distribution-api-version"),
            Some("registry/2.0")
        );
    }
    let missing = format!("/v2/library/demo/manifests/sha256:{}", hex_of(b"nothing"));
    assert_eq!(error_code(&get(addr, &missing).await), "MANIFEST_UNKNOWN");
    // A blob is not a manifest.
    let blob = format!("/v2/library/demo/manifests/sha256:{}", hex_of(BLOB));
    assert_eq!(get(addr, &blob).await.status, 404);
}

#[tokio::test]
async fn oci_blobs_with_ranges() {
    let (_s, addr) = served_oci().await;
    let digest = format!("sha256:{}", hex_of(BLOB));
    let target = format!("/v2/library/demo/blobs/{digest}");
    let r = get(addr, &target).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, BLOB);
    assert_eq!(r.header("docker-content-digest"), Some(digest.as_str()));
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    let r = send(addr, "GET", &target, &[("Range", "bytes=2-6")]).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &BLOB[2..=6]);
    assert_eq!(r.header("docker-content-digest"), Some(digest.as_str()));
    let r = send(addr, "HEAD", &target, &[]).await;
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert_eq!(r.header("content-length"), Some(&*BLOB.len().to_string()));

    // A manifest can be fetched as a blob.
    let m = format!("/v2/library/demo/blobs/sha256:{}", hex_of(MANIFEST));
    assert_eq!(get(addr, &m).await.body, MANIFEST);

    let missing = format!("/v2/library/demo/blobs/sha256:{}", hex_of(b"nothing"));
    let r = get(addr, &missing).await;
    assert_eq!((r.status, error_code(&r).as_str()), (404, "BLOB_UNKNOWN"));
    let r = send(addr, "HEAD", &missing, &[]).await;
    assert_eq!(r.status, 404);
    let r = get(addr, "/v2/library/demo/blobs/md5:00").await;
    assert_eq!(error_code(&r), "DIGEST_INVALID");
    // A blob of a source that does not hold the repository.
    let r = get(addr, &format!("/v2/other/blobs/{digest}")).await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn oci_tags_and_catalog_paginate() {
    let (_s, addr) = served_oci().await;
    let json = |r: &Reply| -> serde_json::Value { serde_json::from_slice(&r.body).unwrap() };
    let r = get(addr, "/v2/library/demo/tags/list").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        json(&r),
        serde_json::json!({"name": "library/demo", "tags": ["bare", "index", "v1"]})
    );
    assert_eq!(r.header("link"), None);

    let r = get(addr, "/v2/library/demo/tags/list?n=2").await;
    assert_eq!(json(&r)["tags"], serde_json::json!(["bare", "index"]));
    assert_eq!(
        r.header("link"),
        Some("</v2/library/demo/tags/list?n=2&last=index>; rel=\"next\"")
    );
    let r = get(addr, "/v2/library/demo/tags/list?n=2&last=index").await;
    assert_eq!(json(&r)["tags"], serde_json::json!(["v1"]));
    assert_eq!(r.header("link"), None);
    let r = get(addr, "/v2/library/demo/tags/list?n=0").await;
    assert_eq!(json(&r)["tags"], serde_json::json!([]));
    let r = get(addr, "/v2/library/demo/tags/list?n=x").await;
    assert_eq!(r.status, 400);
    let r = get(addr, "/v2/nobody/tags/list").await;
    assert_eq!(error_code(&r), "NAME_UNKNOWN");

    let r = get(addr, "/v2/_catalog").await;
    assert_eq!(
        json(&r),
        serde_json::json!({"repositories": ["library/demo", "library/demo/sub", "other", "zeta"]})
    );
    let r = get(addr, "/v2/_catalog?n=3").await;
    assert_eq!(
        json(&r)["repositories"],
        serde_json::json!(["library/demo", "library/demo/sub", "other"])
    );
    assert_eq!(
        r.header("link"),
        Some("</v2/_catalog?n=3&last=other>; rel=\"next\"")
    );
    let r = get(addr, "/v2/_catalog?n=3&last=other").await;
    assert_eq!(json(&r)["repositories"], serde_json::json!(["zeta"]));
    assert_eq!(r.header("link"), None);
}

#[tokio::test]
async fn oci_before_the_first_import() {
    let s = store();
    let addr = start(&s.layout).await;
    assert_eq!(get(addr, "/v2/").await.status, 200);
    assert_eq!(get(addr, "/v2/a/manifests/v1").await.status, 503);
}
