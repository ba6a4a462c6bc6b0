use super::*;
use ferry_protocol::chunking::ChunkParams;
use ferry_protocol::id::ManifestHash;
use ferry_protocol::keys::SecretKey;
use ferry_protocol::manifest::Totals;

const S: StreamId = StreamId([5; 16]);

fn key(n: u8) -> SecretKey {
    SecretKey::from_seed([n; 32])
}

fn manifest(sequence: u64, statements: &[SignedStatement]) -> Manifest {
    Manifest {
        stream: S,
        sequence,
        previous: (sequence > 1).then_some(ManifestHash([1; 32])),
        created: 1,
        expires: 2,
        chunking: ChunkParams::DEFAULT,
        sources: Default::default(),
        changes: vec![],
        chunks: vec![],
        volumes: vec![],
        totals: Totals::default(),
        producer: "t".into(),
        extensions: if statements.is_empty() {
            vec![]
        } else {
            vec![trust::extension(statements)]
        },
    }
}

fn rotate(from: u64, old: &SecretKey, new: &SecretKey, signers: &[&SecretKey]) -> SignedStatement {
    SignedStatement::sign(
        Statement::Rotate {
            stream: S,
            from_sequence: from,
            old: old.public().0,
            new: new.public().0,
            created: 1,
        },
        signers,
    )
}

/// A view trusting `k` for stream `S`, with `root` as its root key.
fn view(k: &SecretKey, root: &SecretKey) -> View {
    let mut v = View::default();
    v.keys.insert(
        k.public(),
        KeyBinding {
            streams: vec![S],
            first_use: false,
        },
    );
    v.ring.add_root(&root.public(), Bind::Stream(S));
    v
}

#[test]
fn a_rotation_hands_over_and_the_old_key_is_retired_from_its_sequence() {
    let (k1, k2, root) = (key(1), key(2), key(9));
    let v = view(&k1, &root);
    let rot = rotate(3, &k1, &k2, &[&k1, &k2]);
    let next = v
        .admit(&manifest(3, std::slice::from_ref(&rot)), &k2.public(), 2)
        .unwrap();
    // The same statement again (it rides in every later bundle): no change.
    let again = next.admit(&manifest(4, &[rot]), &k2.public(), 3).unwrap();
    assert_eq!(again, next);
    assert_eq!(next.allows(&k1.public(), S, 2), Ok(()));
    assert!(matches!(
        next.allows(&k1.public(), S, 3),
        Err(Refusal::RetiredKey { ref key, from_sequence: 3, ref by, .. })
            if *key == k1.public().short() && *by == k2.public().short()
    ));
    assert!(matches!(
        next.allows(&k2.public(), S, 2),
        Err(Refusal::KeyNotForStream { .. })
    ));
    // Without the statement the new key is unknown.
    assert!(matches!(
        v.admit(&manifest(3, &[]), &k2.public(), 2),
        Err(Refusal::UntrustedKey { .. })
    ));
}

#[test]
fn a_rotation_needs_both_keys_a_current_old_key_and_a_future_sequence() {
    let (k1, k2, k3, root) = (key(1), key(2), key(3), key(9));
    let v = view(&k1, &root);
    let only_new = rotate(3, &k1, &k2, &[&k2]);
    assert!(matches!(
        v.admit(&manifest(3, &[only_new]), &k2.public(), 2),
        Err(Refusal::BadStatement(trust::StatementError::Unsigned(_)))
    ));
    let past = rotate(2, &k1, &k2, &[&k1, &k2]);
    assert!(matches!(
        v.admit(&manifest(3, &[past]), &k2.public(), 2),
        Err(Refusal::BadRotation { .. })
    ));
    // A retired key cannot name another successor.
    let v = v
        .admit(
            &manifest(3, &[rotate(3, &k1, &k2, &[&k1, &k2])]),
            &k2.public(),
            2,
        )
        .unwrap();
    let fork = rotate(5, &k1, &k3, &[&k1, &k3]);
    assert!(v.admit(&manifest(5, &[fork]), &k3.public(), 4).is_err());
}

#[test]
fn the_root_replaces_a_lost_key_and_revokes() {
    let (k1, k2, root, stranger) = (key(1), key(2), key(9), key(8));
    let v = view(&k1, &root);
    let by_root = rotate(4, &k1, &k2, &[&root, &k2]);
    let next = v.admit(&manifest(4, &[by_root]), &k2.public(), 3).unwrap();
    assert!(next.allows(&k1.public(), S, 4).is_err());
    let revoke = |by: &SecretKey| {
        SignedStatement::sign(
            Statement::Revoke {
                stream: S,
                from_sequence: 6,
                key: k2.public().0,
                created: 1,
            },
            &[by],
        )
    };
    assert!(matches!(
        next.admit(&manifest(6, &[revoke(&stranger)]), &k2.public(), 5),
        Err(Refusal::BadStatement(trust::StatementError::Unsigned(_)))
    ));
    // The revoked key cannot sign the bundle that carries its revocation;
    // a root rotation to a new key in the same bundle can.
    assert!(matches!(
        next.admit(&manifest(6, &[revoke(&root)]), &k2.public(), 5),
        Err(Refusal::RevokedKey {
            from_sequence: 6,
            ..
        })
    ));
    let k3 = key(3);
    let both = [revoke(&root), rotate(6, &k2, &k3, &[&root, &k3])];
    let revoked = next.admit(&manifest(6, &both), &k3.public(), 5).unwrap();
    assert!(matches!(
        revoked.allows(&k2.public(), S, 6),
        Err(Refusal::RevokedKey {
            from_sequence: 6,
            ..
        })
    ));
    assert_eq!(revoked.allows(&k2.public(), S, 5), Ok(()));
    // A root rotation by a key that is not a root of the stream is refused.
    let fake = rotate(4, &k1, &k2, &[&stranger, &k2]);
    assert!(v.admit(&manifest(4, &[fake]), &k2.public(), 3).is_err());
}

#[test]
fn a_threshold_counts_distinct_keys_allowed_at_the_sequence() {
    let (k1, k2, k3, root) = (key(1), key(2), key(3), key(9));
    let mut v = view(&k1, &root);
    v.keys.insert(
        k2.public(),
        KeyBinding {
            streams: vec![S],
            first_use: false,
        },
    );
    v.ring.thresholds.push((S, 2));
    let m = manifest(2, &[]);
    assert!(matches!(
        v.check_threshold(&m, &k1.public(), &[k1.public(), k3.public()]),
        Err(Refusal::TooFewSignatures {
            have: 1,
            need: 2,
            ..
        })
    ));
    assert_eq!(v.check_threshold(&m, &k1.public(), &[k2.public()]), Ok(()));
    // A co-signer retired before the sequence does not count.
    v.ring
        .end(&k2.public(), S, 2, Ended::Revoked { root: None });
    assert!(v.check_threshold(&m, &k1.public(), &[k2.public()]).is_err());
}
