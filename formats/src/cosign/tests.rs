//! Fixed vectors: a key pair, payload and signature made with openssl
//! (`openssl ecparam -name prime256v1 -genkey`, `openssl dgst -sha256 -sign`),
//! independent of the code under test; variations signed with p256's
//! deterministic (RFC 6979) signer from a fixed scalar.

use super::*;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::SigningKey;
use p256::pkcs8::LineEnding;

const KEY: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqnAvYSqorQZlTJ4654+F18re6CRX\nMGQbSZPItdE3N2Nmj+2EfxFcI0zOZ3fq34kzEwgObCqIJ+ed7QuEtHvMmg==\n-----END PUBLIC KEY-----\n";
const OTHER_KEY: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEdq9NPrJM4sxkG4PnU1L1pbxNKlgT\nKSp04CqRkkTNsFNDeJcqnRmsL6iJ953TBCkkwpHcDnwkWe8GKG5bD/r2iQ==\n-----END PUBLIC KEY-----\n";
const PAYLOAD: &str = r#"{"critical":{"identity":{"docker-reference":"registry.example/team/app"},"image":{"docker-manifest-digest":"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},"type":"cosign container image signature"},"optional":null}"#;
const SIGNATURE: &str = "MEYCIQDkcSm5pCZnil5MQk9axCA4eECAo+1+RWYOn1BvEqdS3wIhAJiqRav715ONmv/JxG7o82w9lweNKwmw1cEd5U2cyre4";
const IMAGE: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn manifest(payload: &[u8], signature: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2,
                   "digest": Digest::of(b"{}").to_string()},
        "layers": [{
            "mediaType": SIMPLESIGNING_MEDIA_TYPE,
            "size": payload.len(),
            "digest": Digest::of(payload).to_string(),
            "annotations": {SIGNATURE_ANNOTATION: signature}
        }]
    }))
    .unwrap()
}

fn check(
    manifest: &[u8],
    payload: &[u8],
    repo: &str,
    keys: &[PublicKey],
) -> Result<Verified, CosignError> {
    let image = Digest::parse(IMAGE).unwrap();
    verify(
        manifest,
        &mut |_| Ok(payload.to_vec()),
        &image,
        Some(repo),
        keys,
    )
}

fn keys() -> (PublicKey, PublicKey) {
    (
        PublicKey::from_pem(KEY, "cosign.pub").unwrap(),
        PublicKey::from_pem(OTHER_KEY, "other.pub").unwrap(),
    )
}

/// A deterministic signer and a payload for `image` in `repo`, signed by it.
fn signed(kind: &str, image: &str, reference: &str) -> (PublicKey, Vec<u8>, String) {
    let sk = SigningKey::from_slice(&[7u8; 32]).unwrap();
    let pem = sk
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let payload = format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"{reference}"}},"image":{{"docker-manifest-digest":"{image}"}},"type":"{kind}"}},"optional":null}}"#
    );
    let sig: Signature = sk.sign(payload.as_bytes());
    let b64 = base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes());
    (
        PublicKey::from_pem(&pem, "p256.pub").unwrap(),
        payload.into_bytes(),
        b64,
    )
}

#[test]
fn an_openssl_signature_verifies_with_its_key_only() {
    let (key, other) = keys();
    let m = manifest(PAYLOAD.as_bytes(), SIGNATURE);
    let v = check(
        &m,
        PAYLOAD.as_bytes(),
        "team/app",
        &[other.clone(), key.clone()],
    )
    .unwrap();
    assert_eq!(v.key_id, key.id());
    assert_eq!(v.key_name, "cosign.pub");
    assert_eq!(v.payload, Digest::of(PAYLOAD.as_bytes()));
    assert!(key.id().starts_with("SHA256:") && key.id() != other.id());
    assert!(matches!(
        check(&m, PAYLOAD.as_bytes(), "team/app", &[other]),
        Err(CosignError::NoKeyVerifies { .. })
    ));
}

#[test]
fn a_changed_payload_or_signature_is_refused() {
    let (key, _) = keys();
    let tampered = PAYLOAD.replace("0123456789abcdef\"", "0123456789abcdee\"");
    // The manifest names the tampered blob: the signature fails.
    let m = manifest(tampered.as_bytes(), SIGNATURE);
    assert!(matches!(
        check(
            &m,
            tampered.as_bytes(),
            "team/app",
            std::slice::from_ref(&key)
        ),
        Err(CosignError::NoKeyVerifies { .. })
    ));
    // The blob differs from what the manifest names.
    let m = manifest(PAYLOAD.as_bytes(), SIGNATURE);
    assert!(matches!(
        check(
            &m,
            tampered.as_bytes(),
            "team/app",
            std::slice::from_ref(&key)
        ),
        Err(CosignError::PayloadDigest { .. })
    ));
    let m = manifest(PAYLOAD.as_bytes(), "not base64!");
    assert!(matches!(
        check(
            &m,
            PAYLOAD.as_bytes(),
            "team/app",
            std::slice::from_ref(&key)
        ),
        Err(CosignError::Malformed { .. })
    ));
    let m = manifest(PAYLOAD.as_bytes(), "AAAA");
    assert!(matches!(
        check(&m, PAYLOAD.as_bytes(), "team/app", &[key]),
        Err(CosignError::Malformed { .. })
    ));
}

#[test]
fn valid_signatures_over_wrong_claims_are_refused() {
    let image = IMAGE;
    let (k, p, s) = signed(CRITICAL_TYPE, image, "registry.example:5000/team/app");
    check(&manifest(&p, &s), &p, "team/app", std::slice::from_ref(&k)).unwrap();
    let (k, p, s) = signed(
        CRITICAL_TYPE,
        "sha256:1111111111111111111111111111111111111111111111111111111111111111",
        "team/app",
    );
    assert!(matches!(
        check(&manifest(&p, &s), &p, "team/app", &[k]),
        Err(CosignError::DigestMismatch { .. })
    ));
    let (k, p, s) = signed(CRITICAL_TYPE, image, "registry.example/team/other");
    assert!(matches!(
        check(&manifest(&p, &s), &p, "team/app", std::slice::from_ref(&k)),
        Err(CosignError::WrongReference { .. })
    ));
    // Unless the repository is not asked about (a renamed image inside).
    let img = Digest::parse(IMAGE).unwrap();
    verify(&manifest(&p, &s), &mut |_| Ok(p.clone()), &img, None, &[k]).unwrap();
    // A repository whose name only ends like ours.
    let (k, p, s) = signed(CRITICAL_TYPE, image, "registry.example/xteam/app");
    assert!(matches!(
        check(&manifest(&p, &s), &p, "team/app", &[k]),
        Err(CosignError::WrongReference { .. })
    ));
    let (k, p, s) = signed("atomic container signature", image, "team/app");
    assert!(matches!(
        check(&manifest(&p, &s), &p, "team/app", &[k]),
        Err(CosignError::Payload { .. })
    ));
}

#[test]
fn manifests_without_signature_layers_and_bad_keys_are_refused() {
    let (key, _) = keys();
    let empty = br#"{"schemaVersion":2,"layers":[{"mediaType":"application/octet-stream","size":1,"digest":"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}]}"#;
    assert_eq!(
        check(empty, b"", "team/app", std::slice::from_ref(&key)),
        Err(CosignError::NoSignatureLayer)
    );
    assert!(matches!(
        check(b"not json", b"", "team/app", &[key]),
        Err(CosignError::NotAManifest(_))
    ));
    assert!(matches!(
        PublicKey::from_pem(
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
            "x.pub"
        ),
        Err(KeyError::NotP256 { .. })
    ));
    assert_eq!(
        signature_tag(&Digest::parse(IMAGE).unwrap()),
        "sha256-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.sig"
    );
}
