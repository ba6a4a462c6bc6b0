use super::*;

fn srcs() -> BTreeMap<String, SourceKind> {
    [("s".to_string(), SourceKind::Files)].into_iter().collect()
}

fn key(p: &str) -> ObjectKey {
    ObjectKey {
        source: "s".into(),
        path: p.into(),
    }
}

fn file(content: &[u8]) -> Object {
    Object::File(FileObject {
        size: content.len() as u64,
        sha256: Sha256::of(content),
        executable: false,
        encoding: Encoding::Chunks(vec![ChunkRef {
            id: ChunkId::of(content),
            len: content.len() as u32,
        }]),
    })
}

#[test]
fn diff_then_apply_gives_the_target() {
    let mut a = Catalog {
        sources: srcs(),
        ..Default::default()
    };
    a.objects.insert(key("keep"), file(b"1"));
    a.objects.insert(key("change"), file(b"2"));
    a.objects.insert(key("remove"), file(b"3"));
    let mut b = Catalog {
        sources: srcs(),
        ..Default::default()
    };
    b.objects.insert(key("keep"), file(b"1"));
    b.objects.insert(key("change"), file(b"22"));
    b.objects.insert(key("new/file"), file(b"4"));
    let d = a.diff(&b);
    assert_eq!(d.len(), 3);
    assert_eq!(
        a.delta_stats(&d),
        DeltaStats {
            added: 1,
            changed: 1,
            removed: 1
        }
    );
    assert_eq!(a.apply(&srcs(), &d).unwrap(), b);
    assert!(b.diff(&b).is_empty());
}

/// A file carried as a patch against `base` (holding `base_content`).
fn patched(size: u64, base: &str, base_content: &[u8]) -> Object {
    Object::File(FileObject {
        size,
        sha256: Sha256([1; 32]),
        executable: false,
        encoding: Encoding::Rebuilt(Box::new(Rebuilt {
            recipe: vec![],
            expanded_len: size,
            expanded_blake3: [2; 32],
            expanded: Expanded::Patch {
                base: Base {
                    key: key(base),
                    sha256: Sha256::of(base_content),
                    form: BaseForm::Bytes,
                    len: base_content.len() as u64,
                    blake3: [3; 32],
                },
                patch: vec![ChunkRef {
                    id: ChunkId::of(b"patch"),
                    len: 5,
                }],
            },
        })),
    })
}

#[test]
fn a_patch_needs_its_base_in_the_base_catalog_with_its_digest() {
    let mut a = Catalog {
        sources: srcs(),
        ..Default::default()
    };
    a.objects.insert(key("tool-1.0"), file(b"old release"));
    let put = |o: Object| Change::Put {
        key: key("tool-1.1"),
        object: o,
    };
    let next = a
        .apply(&srcs(), &[put(patched(100, "tool-1.0", b"old release"))])
        .unwrap();
    assert!(matches!(&next.objects[&key("tool-1.1")], Object::File(f) if f.format_version() == 2));
    for (base, content, why) in [
        ("tool-0.9", &b"old release"[..], "does not hold"),
        ("tool-1.0", &b"other bytes"[..], "was made against"),
    ] {
        let e = a
            .apply(&srcs(), &[put(patched(100, base, content))])
            .unwrap_err();
        assert!(
            matches!(&e, Error::MissingBase { why: w, .. } if w.contains(why)),
            "{e}"
        );
    }
    // The base may go in the same bundle: it is looked up in the base catalog.
    let both = [
        Change::Remove {
            key: key("tool-1.0"),
        },
        put(patched(100, "tool-1.0", b"old release")),
    ];
    assert!(a.apply(&srcs(), &both).is_ok());
}

#[test]
fn rebuilt_encodings_are_checked() {
    let check = |o: Object| {
        let mut c = Catalog {
            sources: srcs(),
            ..Default::default()
        };
        c.objects.insert(key("x"), o);
        c.validate()
    };
    let with = |f: &dyn Fn(&mut Rebuilt, &mut u64)| {
        let Object::File(mut fo) = patched(100, "b", b"b") else {
            unreachable!()
        };
        let Encoding::Rebuilt(r) = &mut fo.encoding else {
            unreachable!()
        };
        f(r, &mut fo.size);
        Object::File(fo)
    };
    assert!(check(with(&|_, _| {})).is_ok());
    // No recipe: the object is its expanded form, so the lengths agree.
    assert!(check(with(&|_, size| *size = 99)).is_err());
    // A base in another source.
    assert!(check(with(&|r, _| {
        if let Expanded::Patch { base, .. } = &mut r.expanded {
            base.key.source = "other".into();
        }
    }))
    .is_err());
    // An empty patch, and an empty chunk.
    assert!(check(with(&|r, _| r.expanded = match &r.expanded {
        Expanded::Patch { base, .. } => Expanded::Patch {
            base: base.clone(),
            patch: vec![],
        },
        e => e.clone(),
    }))
    .is_err());
    assert!(check(with(&|r, _| r.recipe = vec![ChunkRef {
        id: ChunkId::of(b""),
        len: 0
    }]))
    .is_err());
    // Expanded chunks must add up to the expanded length.
    let chunks = |n: u32| {
        with(&move |r, _| {
            r.expanded = Expanded::Chunks(vec![ChunkRef {
                id: ChunkId::of(b"e"),
                len: n,
            }])
        })
    };
    assert!(check(chunks(100)).is_ok());
    assert!(check(chunks(101)).is_err());
}

#[test]
fn bad_deltas_are_refused() {
    let a = Catalog::default();
    let rm = Change::Remove { key: key("ghost") };
    assert!(a
        .apply(&srcs(), &[rm])
        .unwrap_err()
        .to_string()
        .contains("ghost"));
    let put = Change::Put {
        key: key("x"),
        object: file(b"x"),
    };
    assert!(a.apply(&srcs(), &[put.clone(), put]).is_err());
    let trav = Change::Put {
        key: key("../../etc/passwd"),
        object: file(b"x"),
    };
    assert!(a.apply(&srcs(), &[trav]).is_err());
}

#[test]
fn object_cannot_be_a_directory_of_another() {
    let changes = vec![
        Change::Put {
            key: key("a"),
            object: Object::Symlink { target: "b".into() },
        },
        Change::Put {
            key: key("a/x"),
            object: file(b"x"),
        },
    ];
    let e = Catalog::default()
        .apply(&srcs(), &changes)
        .unwrap_err()
        .to_string();
    assert!(e.contains("s/a/x"), "{e}");
}

#[test]
fn escaping_symlink_is_refused() {
    let changes = vec![Change::Put {
        key: key("link"),
        object: Object::Symlink {
            target: "../../../etc/shadow".into(),
        },
    }];
    assert!(Catalog::default().apply(&srcs(), &changes).is_err());
}

#[test]
fn size_must_match_chunks() {
    let mut o = file(b"abc");
    if let Object::File(f) = &mut o {
        f.size = 1 << 40;
    }
    let changes = vec![Change::Put {
        key: key("big"),
        object: o,
    }];
    assert!(Catalog::default().apply(&srcs(), &changes).is_err());
}

#[test]
fn source_kinds_keep_their_indices() {
    assert_eq!(postcard::to_stdvec(&SourceKind::Files).unwrap(), [0]);
    assert_eq!(postcard::to_stdvec(&SourceKind::Oci).unwrap(), [1]);
    for (i, k) in SourceKind::ALL.iter().enumerate() {
        assert_eq!(postcard::to_stdvec(k).unwrap(), [i as u8], "{}", k.name());
    }
}

#[test]
fn undeclared_source_is_refused() {
    let changes = vec![Change::Put {
        key: key("x"),
        object: file(b"x"),
    }];
    let e = Catalog::default()
        .apply(&BTreeMap::new(), &changes)
        .unwrap_err();
    assert!(e.to_string().contains("does not declare"), "{e}");
}

/// A file of `lens` windows against a base of `base_len` bytes, window `i`
/// taking `refs[i]` (start, len) of the reference form.
fn windowed(lens: &[u64], refs: &[(u64, u64)], base_len: u64) -> Object {
    let Object::File(mut f) = patched(lens.iter().sum(), "b", b"b") else {
        unreachable!()
    };
    let Encoding::Rebuilt(r) = &mut f.encoding else {
        unreachable!()
    };
    let Expanded::Patch { mut base, .. } = r.expanded.clone() else {
        unreachable!()
    };
    base.len = base_len;
    let windows = lens
        .iter()
        .zip(refs)
        .map(|(&len, &(reference_start, reference_len))| Window {
            len,
            blake3: [4; 32],
            reference_start,
            reference_len,
            patch: vec![ChunkRef {
                id: ChunkId::of(&len.to_le_bytes()),
                len: 7,
            }],
        })
        .collect();
    r.expanded = Expanded::Windows { base, windows };
    Object::File(f)
}

#[test]
fn windows_are_checked_and_need_version_3() {
    let check = |o: &Object| {
        let mut c = Catalog {
            sources: srcs(),
            ..Default::default()
        };
        c.objects.insert(key("x"), o.clone());
        c.validate()
    };
    let good = windowed(&[10, 20, 5], &[(0, 40), (10, 50), (60, 40)], 100);
    check(&good).unwrap();
    let Object::File(f) = &good else {
        unreachable!()
    };
    assert_eq!(f.format_version(), 3);
    assert_eq!(f.base().map(|b| b.len), Some(100));
    assert_eq!(f.chunks().count(), 3, "every window's patch is needed");
    assert_eq!(f.held_chunks().count(), 0, "no window patch is kept");
    let Object::File(p) = patched(100, "b", b"b") else {
        unreachable!()
    };
    assert_eq!(p.format_version(), 2);
    let bad = [
        windowed(&[], &[], 100),                                    // no window
        windowed(&[10, 0], &[(0, 10), (0, 10)], 100),               // an empty window
        windowed(&[MAX_WINDOW + 1], &[(0, 10)], 100),               // too large
        windowed(&[10, 20], &[(0, 40), (90, 20)], 100),             // past the reference form
        windowed(&[10, 20], &[(50, 40), (10, 50)], 100),            // goes back
        windowed(&[10], &[(0, MAX_WINDOW_REFERENCE + 1)], 1 << 40), // prefix too large
        windowed(&[10], &[(u64::MAX, 2)], 100),                     // overflow
    ];
    for (i, o) in bad.iter().enumerate() {
        assert!(check(o).is_err(), "case {i} passed");
    }
    // Lengths that do not add up.
    let Object::File(mut f) = good else {
        unreachable!()
    };
    f.size = 36;
    if let Encoding::Rebuilt(r) = &mut f.encoding {
        r.expanded_len = 36;
    }
    assert!(check(&Object::File(f)).is_err());
}
