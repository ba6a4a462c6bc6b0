//! Tests of the manifest file: framing, signatures, versions and limits.

use super::*;

fn sample() -> Manifest {
    Manifest {
        stream: StreamId([1; 16]),
        sequence: 2,
        previous: Some(ManifestHash([9; 32])),
        created: 1_700_000_000,
        expires: 1_800_000_000,
        chunking: ChunkParams::DEFAULT,
        sources: BTreeMap::new(),
        changes: vec![],
        chunks: vec![ChunkEntry {
            id: ChunkId::of(b"abc"),
            raw_len: 3,
            stored_len: 3,
            codec: Codec::Raw,
            volume: 0,
            offset: crate::volume::HEADER_LEN as u64,
        }],
        volumes: vec![VolumeEntry {
            size: crate::volume::HEADER_LEN as u64 + 3,
            blake3: [0; 32],
        }],
        totals: Totals {
            max_chunk: 3,
            chunk_raw_bytes: 3,
            volume_bytes: crate::volume::HEADER_LEN as u64 + 3,
            max_object: 0,
            objects: 0,
            catalog_bytes: 0,
        },
        producer: "test".into(),
        extensions: vec![],
    }
}

#[test]
fn an_unsigned_manifest_parses_only_whole_and_never_opens_as_signed() {
    let limits = ReceiverLimits::default();
    let key = SecretKey::from_seed([3; 32]);
    let file = sample().to_unsigned();
    let u = UnsignedManifest::parse(&file, &limits).unwrap();
    assert_eq!(u.manifest.manifest().unwrap(), &sample());
    assert_eq!(u.sign(&key).unwrap(), sample().sign(&key));
    assert!(matches!(
        Manifest::open(&file, &[key.public()], &limits),
        Err(Error::Unsigned)
    ));
    let mut longer = file.clone();
    longer.push(0);
    assert!(matches!(
        UnsignedManifest::parse(&longer, &limits),
        Err(Error::Inconsistent(_))
    ));
    assert!(matches!(
        UnsignedManifest::parse(&file[..file.len() - 1], &limits),
        Err(Error::TruncatedManifest(_))
    ));
    let signed = sample().sign(&key);
    assert!(matches!(
        UnsignedManifest::parse(&signed, &limits),
        Err(Error::BadManifestMagic)
    ));
    let mut forged = signed.clone();
    forged[20] ^= 1;
    assert!(matches!(strip_signature(&forged), Err(Error::BadSignature)));
}

#[test]
fn sign_open_round_trip_and_deterministic() {
    let key = SecretKey::from_seed([3; 32]);
    let file = sample().sign(&key);
    assert_eq!(file, sample().sign(&key));
    let v = Manifest::open(&file, &[key.public()], &ReceiverLimits::default()).unwrap();
    assert_eq!(v.manifest, sample());
    assert_eq!(v.hash, ManifestHash::of(&file));
}

/// `sample()` with one `Put` of a patched file (a version-2 object).
fn sample_v2() -> Manifest {
    use crate::catalog::{
        Base, BaseForm, ChunkRef, Encoding, Expanded, FileObject, Object, Rebuilt,
    };
    use crate::path::ObjectKey;
    let mut m = sample();
    let key = |p: &str| ObjectKey {
        source: "s".into(),
        path: p.into(),
    };
    m.changes.push(Change::Put {
        key: key("new"),
        object: Object::File(FileObject {
            size: 10,
            sha256: crate::id::Sha256([5; 32]),
            executable: false,
            encoding: Encoding::Rebuilt(Box::new(Rebuilt {
                recipe: vec![],
                expanded_len: 10,
                expanded_blake3: [6; 32],
                expanded: Expanded::Patch {
                    base: Base {
                        key: key("old"),
                        sha256: crate::id::Sha256([7; 32]),
                        form: BaseForm::Expanded { version: 1 },
                        len: 9,
                        blake3: [8; 32],
                    },
                    patch: vec![ChunkRef {
                        id: ChunkId::of(b"abc"),
                        len: 3,
                    }],
                },
            })),
        }),
    });
    m
}

#[test]
fn version_2_only_when_an_object_needs_it_and_never_smuggled_into_version_1() {
    let key = SecretKey::from_seed([3; 32]);
    let lim = ReceiverLimits::default();
    let v1 = sample().sign(&key);
    assert_eq!(u32::from_le_bytes(v1[8..12].try_into().unwrap()), 1);
    let v2 = sample_v2().sign(&key);
    assert_eq!(u32::from_le_bytes(v2[8..12].try_into().unwrap()), 2);
    assert_eq!(
        Manifest::open(&v2, &[key.public()], &lim)
            .unwrap()
            .manifest()
            .unwrap(),
        &sample_v2()
    );
    // The same body signed as version 1: refused after decoding.
    let body = postcard::to_stdvec(&sample_v2()).unwrap();
    let smuggled = sign_body(&body, 1, &key);
    let e = Manifest::open(&smuggled, &[key.public()], &lim).unwrap_err();
    assert!(
        matches!(e, Error::Inconsistent(ref w) if w.contains("version 1")),
        "{e}"
    );
    // A version this reader does not know.
    let future = sign_body(&body, 5, &key);
    let e = Manifest::open(&future, &[key.public()], &lim).unwrap_err();
    assert!(matches!(e, Error::UnsupportedFormat(5, 4)), "{e}");
    // Windows need version 3, and are refused in a version-2 file.
    let mut v3 = sample_v2();
    if let Change::Put {
        object: crate::catalog::Object::File(f),
        ..
    } = &mut v3.changes[0]
    {
        if let crate::catalog::Encoding::Rebuilt(r) = &mut f.encoding {
            if let crate::catalog::Expanded::Patch { base, patch } = r.expanded.clone() {
                r.expanded = crate::catalog::Expanded::Windows {
                    windows: vec![crate::catalog::Window {
                        len: r.expanded_len,
                        blake3: [0; 32],
                        reference_start: 0,
                        reference_len: base.len,
                        patch,
                    }],
                    base,
                };
            }
        }
    }
    let signed = v3.sign(&key);
    assert_eq!(u32::from_le_bytes(signed[8..12].try_into().unwrap()), 3);
    assert_eq!(
        Manifest::open(&signed, &[key.public()], &lim)
            .unwrap()
            .manifest,
        v3
    );
    let body = postcard::to_stdvec(&v3).unwrap();
    let e = Manifest::open(&sign_body(&body, 2, &key), &[key.public()], &lim).unwrap_err();
    assert!(
        matches!(e, Error::Inconsistent(ref w) if w.contains("version 2")),
        "{e}"
    );
}

#[test]
fn an_expanded_form_over_the_limit_is_refused() {
    let m = sample_v2();
    let lim = ReceiverLimits {
        max_expanded_bytes: 9,
        ..ReceiverLimits::default()
    };
    let mut next = crate::catalog::Catalog::default();
    next.sources.insert("s".into(), SourceKind::Files);
    if let Change::Put { key, object } = &m.changes[0] {
        next.objects.insert(key.clone(), object.clone());
    }
    let mut m = m;
    m.totals = Totals::of(&next, &m.chunks, &m.volumes);
    let e = m.check_result(&next, &lim).unwrap_err();
    assert!(
        matches!(e, Error::OverLimit { ref what, value: 10, limit: 9 } if what.contains("expanded")),
        "{e}"
    );
    let ok = ReceiverLimits {
        max_expanded_bytes: 10,
        ..lim
    };
    m.check_result(&next, &ok).unwrap();
    // A patch that repeats one chunk ref past the limit: refused before
    // anything is gathered in memory.
    if let Some(crate::catalog::Object::File(f)) = next.objects.values_mut().next() {
        if let crate::catalog::Encoding::Rebuilt(r) = &mut f.encoding {
            if let crate::catalog::Expanded::Patch { patch, .. } = &mut r.expanded {
                *patch = vec![patch[0]; 4];
            }
        }
    }
    m.changes[0] = Change::Put {
        key: next.objects.keys().next().unwrap().clone(),
        object: next.objects.values().next().unwrap().clone(),
    };
    let e = m.check_result(&next, &ok).unwrap_err();
    assert!(
        matches!(e, Error::OverLimit { ref what, value: 12, limit: 10 } if what.contains("patch")),
        "{e}"
    );
}

#[test]
fn every_flipped_byte_is_caught() {
    let key = SecretKey::from_seed([3; 32]);
    let file = sample().sign(&key);
    for i in 0..file.len() {
        let mut f = file.clone();
        f[i] ^= 0x40;
        assert!(
            Manifest::open(&f, &[key.public()], &ReceiverLimits::default()).is_err(),
            "flip at byte {i} went unnoticed"
        );
    }
}

#[test]
fn truncation_and_wrong_key() {
    let key = SecretKey::from_seed([3; 32]);
    let other = SecretKey::from_seed([4; 32]);
    let file = sample().sign(&key);
    let lim = ReceiverLimits::default();
    for n in [0, 5, 16, file.len() - 1] {
        assert!(Manifest::open(&file[..n], &[key.public()], &lim).is_err());
    }
    let e = Manifest::open(&file, &[other.public()], &lim).unwrap_err();
    assert!(matches!(e, Error::UntrustedKey(_)), "{e}");
    let mut forged = sample().sign(&other);
    // Claim to be the trusted key with the other key's signature.
    let n = forged.len();
    forged[n - 96..n - 64].copy_from_slice(&key.public().0);
    assert!(matches!(
        Manifest::open(&forged, &[key.public()], &lim).unwrap_err(),
        Error::BadSignature
    ));
}

#[test]
fn absurd_sizes_are_refused_before_use() {
    let key = SecretKey::from_seed([3; 32]);
    let mut m = sample();
    m.totals.max_object = u64::MAX;
    let e = Manifest::open(&m.sign(&key), &[key.public()], &ReceiverLimits::default()).unwrap_err();
    assert!(e.to_string().contains("largest object"), "{e}");
    let mut m = sample();
    m.chunks[0].offset = u64::MAX - 1;
    assert!(Manifest::open(&m.sign(&key), &[key.public()], &ReceiverLimits::default()).is_err());
    let mut m = sample();
    m.chunks[0].raw_len = 1 << 30;
    assert!(Manifest::open(&m.sign(&key), &[key.public()], &ReceiverLimits::default()).is_err());
    let lim = ReceiverLimits {
        max_manifest_bytes: 10,
        ..Default::default()
    };
    assert!(matches!(
        Manifest::open(&sample().sign(&key), &[key.public()], &lim).unwrap_err(),
        Error::ManifestTooLarge { .. }
    ));
}

#[test]
fn critical_extension_is_refused_and_other_ignored() {
    let key = SecretKey::from_seed([3; 32]);
    let lim = ReceiverLimits::default();
    let mut m = sample();
    m.extensions.push(Extension {
        kind: 77,
        critical: false,
        data: vec![1],
    });
    Manifest::open(&m.sign(&key), &[key.public()], &lim).unwrap();
    m.extensions.push(Extension {
        kind: 78,
        critical: true,
        data: vec![],
    });
    assert!(matches!(
        Manifest::open(&m.sign(&key), &[key.public()], &lim).unwrap_err(),
        Error::UnknownCriticalExtension(78)
    ));
}
