//! Stream binding, bundle times and the held area's limits (issue 10,
//! defects 7 and 9), in one process.

use crate::{random_bytes, Outside, Pair};
use agent_inside::db::Bind;
use agent_inside::import::{Refusal, Report};
use agent_inside::policy::QuotaError;
use ferry_protocol::id::StreamId;
use ferry_protocol::keys::SecretKey;

/// The one refusal a report holds.
fn only_refusal(r: &Report) -> Refusal {
    let all: Vec<_> = r.refusals().cloned().collect();
    assert_eq!(all.len(), 1, "expected one refusal: {:?}", r.failed);
    all.into_iter().next().unwrap()
}

/// The one quota error a report holds.
fn only_quota_error(r: &Report) -> QuotaError {
    let all: Vec<_> = r
        .errors
        .iter()
        .filter_map(|e| e.chain().find_map(|c| c.downcast_ref::<QuotaError>()))
        .cloned()
        .collect();
    assert_eq!(all.len(), 1, "expected one quota error: {:?}", r.failed);
    all.into_iter().next().unwrap()
}

/// Names in the held area (temporary copies included).
fn held_entries(p: &Pair) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(p.inside.layout.held())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_fresh_inside_adopts_only_a_stream_its_key_is_bound_to() {
    let p = Pair::new();
    let other = Outside::new(&p.dir.path().join("other"), 2).unwrap();
    // Their key is trusted, but for our stream only.
    p.inside.trust(&other.key, Bind::Stream(p.outside.stream()));
    other.write("x.txt", b"theirs");
    let e = other.export().unwrap().unwrap();
    let media = p.dir.path().join("their-media");
    std::fs::create_dir_all(&media).unwrap();
    other.write_to_media(&e, &media).unwrap();
    let r = p.inside.import(&media).unwrap();
    assert_eq!(
        only_refusal(&r),
        Refusal::KeyNotForStream {
            key: other.key.public().short(),
            stream: other.stream(),
        }
    );
    assert_eq!(
        p.inside.applied().stream,
        None,
        "the store adopted a stream"
    );

    // The explicit command lets the fresh store follow theirs.
    assert!(p
        .inside
        .db()
        .bind(&other.key.public(), other.stream())
        .unwrap());
    let r = p.inside.import(&media).unwrap();
    assert_eq!(r.applied, vec![1], "{:?}", r.failed);
    assert_eq!(p.inside.applied().stream, Some(other.stream()));
    assert_eq!(p.inside.db().signer(1).unwrap(), Some(other.key.public()));
}

#[test]
fn a_trusted_key_cannot_continue_a_stream_it_is_not_bound_to() {
    let mut p = Pair::new();
    p.outside.write("a.txt", b"one");
    assert_eq!(p.drive(), 1);
    // The same history, now signed by a second trusted key bound to another stream.
    let mut rogue = p.outside.fork(&p.dir.path().join("rogue")).unwrap();
    rogue.key = SecretKey::from_seed([7; 32]);
    p.inside.trust(&rogue.key, Bind::Stream(StreamId([9; 16])));
    rogue.write("b.txt", b"two");
    let e = rogue.export().unwrap().unwrap();
    let media = p.new_media();
    rogue.write_to_media(&e, &media).unwrap();
    let r = p.inside.import(&media).unwrap();
    assert_eq!(
        only_refusal(&r),
        Refusal::KeyNotForStream {
            key: rogue.key.public().short(),
            stream: p.outside.stream(),
        }
    );
    assert_eq!(p.inside.applied().sequence, 1);
    p.assert_in_sync();
}

#[test]
fn the_signer_of_every_applied_bundle_is_recorded() {
    let mut p = Pair::new();
    for i in 0..2 {
        p.outside
            .write(&format!("f{i}"), format!("v{i}").as_bytes());
        p.step().unwrap();
    }
    let db = p.inside.db();
    for seq in [1, 2] {
        assert_eq!(db.signer(seq).unwrap(), Some(p.outside.key.public()));
    }
}

#[test]
fn a_bundle_from_the_future_or_valid_too_long_is_refused() {
    let mut p = Pair::new();
    p.outside.write("a.txt", b"later");
    let now = ferry_agent_common::now_unix();
    // Made two hours ahead of this clock (the default skew is one hour).
    let e = p.outside.export_at(now + 7200).unwrap().unwrap();
    let media = p.new_media();
    p.outside.write_to_media(&e, &media).unwrap();
    let r = p.inside.import(&media).unwrap();
    assert!(
        matches!(
            only_refusal(&r),
            Refusal::FromTheFuture {
                sequence: 1,
                created,
                max_skew_secs: 3600,
                ..
            } if created == now + 7200
        ),
        "{:?}",
        r.failed
    );
    assert_eq!(p.inside.applied().sequence, 0);
    // A larger allowed skew (the config's [trust] max_clock_skew) takes it.
    p.inside.apply.policy.max_clock_skew_secs = 3 * 3600;
    assert_eq!(p.inside.import(&media).unwrap().applied, vec![1]);

    // Valid to the end of time: refused, whatever the skew.
    p.outside.opts.expires_in = u64::MAX;
    p.outside.write("b.txt", b"forever");
    let e = p.outside.export().unwrap().unwrap();
    let media = p.new_media();
    p.outside.write_to_media(&e, &media).unwrap();
    let r = p.inside.import(&media).unwrap();
    assert!(
        matches!(
            only_refusal(&r),
            Refusal::ValidTooLong {
                sequence: 2,
                expires: u64::MAX,
                max_validity_secs,
                ..
            } if max_validity_secs == 90 * 86_400
        ),
        "{:?}",
        r.failed
    );
    assert_eq!(p.inside.applied().sequence, 1);
    assert_eq!(std::fs::read(p.inside.served("a.txt")).unwrap(), b"later");
    assert!(!p.inside.served("b.txt").exists());
}

#[test]
fn the_held_area_keeps_its_quota_and_leaves_no_temporary_copy() {
    let mut p = Pair::new();
    let mut media = vec![];
    for i in 0..4 {
        p.outside
            .write(&format!("f{i}.bin"), &random_bytes(100_000, i));
        media.push(p.export_to_media().unwrap().1);
    }
    assert!(p.inside.import(&media[0]).unwrap().ok());
    p.inside.apply.policy.held.max_bundles = 1;
    assert_eq!(p.inside.import(&media[2]).unwrap().held, vec![3]);
    // A second held bundle passes the count.
    let r = p.inside.import(&media[3]).unwrap();
    assert_eq!(r.held, vec![3], "only the bundle held before stays held");
    assert!(matches!(
        only_quota_error(&r),
        QuotaError::Count { count: 1, .. }
    ));
    // And with room for two but too few bytes, the byte quota.
    p.inside.apply.policy.held.max_bundles = 2;
    p.inside.apply.policy.held.max_bytes = 150_000;
    let r = p.inside.import(&media[3]).unwrap();
    assert!(matches!(
        only_quota_error(&r),
        QuotaError::Bytes { limit: 150_000, .. }
    ));
    assert!(r.failed[0].contains("was not held"), "{:?}", r.failed);
    assert_eq!(held_entries(&p).len(), 1, "{:?}", held_entries(&p));
    assert_eq!(p.inside.db().held().unwrap().len(), 1);

    // The free-space reserve: more than the disk has.
    p.inside.apply.policy.held.max_bytes = u64::MAX;
    p.inside.apply.policy.held.reserve_bytes = u64::MAX / 2;
    p.inside.apply.no_space_check = false;
    let r = p.inside.import(&media[3]).unwrap();
    assert!(matches!(only_quota_error(&r), QuotaError::Space { .. }));

    // A leftover temporary copy (an interrupted hold) is swept on the next import.
    let leftover = p.inside.layout.held().join(".bundle-x.tmp");
    std::fs::create_dir_all(leftover.join("sub")).unwrap();
    p.inside.apply.policy = agent_inside::policy::Policy::default();
    p.inside.apply.no_space_check = true;
    let r = p.inside.import(&media[1]).unwrap();
    assert_eq!(r.applied, vec![2, 3], "{:?}", r.failed);
    assert!(!leftover.exists());
    assert!(held_entries(&p).is_empty(), "{:?}", held_entries(&p));
}

#[test]
fn an_expired_held_bundle_is_dropped() {
    let mut p = Pair::new();
    p.outside.write("a", b"1");
    assert_eq!(p.drive(), 1);
    p.outside.write("b", b"2");
    let (_, m2) = p.export_to_media().unwrap();
    // Bundle 3 expired a day ago; held only because expiry was allowed then.
    p.outside.opts.expires_in = 86_400;
    p.outside.write("c", b"3");
    let e3 = p
        .outside
        .export_at(ferry_agent_common::now_unix() - 2 * 86_400)
        .unwrap()
        .unwrap();
    let m3 = p.new_media();
    p.outside.write_to_media(&e3, &m3).unwrap();
    let r = p.inside.import(&m3).unwrap();
    assert!(matches!(
        only_refusal(&r),
        Refusal::Expired { sequence: 3, .. }
    ));
    assert!(held_entries(&p).is_empty(), "an expired bundle was held");
    p.inside.apply.allow_expired = true;
    assert_eq!(p.inside.import(&m3).unwrap().held, vec![3]);
    p.inside.apply.allow_expired = false;

    // The next import, of anything, drops it with a refusal.
    let empty = p.new_media();
    let r = p.inside.import(&empty).unwrap();
    assert_eq!(r.dropped, vec![3]);
    assert!(matches!(
        only_refusal(&r),
        Refusal::Expired { sequence: 3, .. }
    ));
    assert!(held_entries(&p).is_empty(), "{:?}", held_entries(&p));
    assert!(p.inside.db().held().unwrap().is_empty());
    assert_eq!(p.inside.import(&m2).unwrap().applied, vec![2]);
}

#[test]
fn a_held_bundle_that_does_not_chain_onto_the_genuine_one_is_dropped() {
    let mut p = Pair::new();
    p.outside.write("a", b"1");
    assert_eq!(p.drive(), 1);
    // A fork of the outside after bundle 1 (a restored backup): its 2 and 3.
    let fork = p.outside.fork(&p.dir.path().join("fork")).unwrap();
    for (i, f) in ["x", "y"].iter().enumerate() {
        fork.write(f, format!("fork {i}").as_bytes());
        fork.export().unwrap().unwrap();
    }
    let fork_media = p.new_media();
    let fork3 = agent_outside::ledger::Ledger::open(&fork.layout)
        .unwrap()
        .bundles()
        .unwrap()
        .into_iter()
        .find(|b| b.sequence == 3)
        .unwrap();
    agent_outside::export::copy_to_media(&fork.layout, &fork3, &fork_media).unwrap();
    assert_eq!(p.inside.import(&fork_media).unwrap().held, vec![3]);

    // The genuine 2 arrives: it applies, and the fork's 3 names another predecessor.
    p.outside.write("b", b"2");
    let (_, m2) = p.export_to_media().unwrap();
    let r = p.inside.import(&m2).unwrap();
    assert_eq!(r.applied, vec![2]);
    assert_eq!(r.dropped, vec![3]);
    assert!(matches!(
        only_refusal(&r),
        Refusal::BadPrevious {
            sequence: 3,
            applied: 2
        }
    ));
    assert!(held_entries(&p).is_empty(), "{:?}", held_entries(&p));
    assert!(p.inside.db().held().unwrap().is_empty());
    // The genuine 3 then applies.
    p.outside.write("c", b"3");
    assert_eq!(p.drive(), 1);
    p.assert_in_sync();
}
