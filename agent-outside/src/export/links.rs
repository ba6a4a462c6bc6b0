//! The fingerprints of the files whose kept copies this export made as
//! hard links to them (`References::link`).
//!
//! A link changes the linked file's change time, which the `files`
//! source's fingerprint holds: recorded as listed, every linked file would
//! be read again by the next export. So once every link is made, each
//! linked file is looked at again, and its new fingerprint is recorded
//! instead if nothing but its change time differs from when it was linked
//! (size, modification time, inode), and only if that change time is
//! earlier than the change time of a file created before the look: then
//! any later write gives the file another change time, and the next export
//! reads it (the rule git uses for its index's "racy" entries). A file
//! that fails either keeps the fingerprint it was listed with, and is read
//! again next time, which is always safe.

use super::keeper::Linked;
use crate::delta::Stamp;
use anyhow::{Context, Result};
use ferry_protocol::path::ObjectKey;
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Rounds of looking again, a tick of the filesystem's clock apart, for
/// files linked in the same tick as the look.
const ROUNDS: usize = 3;

/// The new fingerprints of the files `linked` (see the module's docs), by
/// key. `dir` is where the clock file is made (the copies' directory, on
/// the linked files' filesystem).
pub(super) fn fingerprints_after(
    linked: Vec<Linked>,
    dir: &Path,
) -> Result<HashMap<ObjectKey, String>> {
    let mut out = HashMap::with_capacity(linked.len());
    let mut waiting = linked;
    for round in 0..ROUNDS {
        if waiting.is_empty() {
            break;
        }
        if round > 0 {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let clock = now_on(dir)?;
        let mut later = Vec::new();
        for l in waiting {
            let Ok(md) = std::fs::symlink_metadata(&l.path) else {
                continue;
            };
            if Stamp::of(&md) != l.stamp {
                continue;
            }
            if (md.ctime(), md.ctime_nsec()) < clock {
                out.insert(l.key, crate::source::file_fingerprint(&md));
            } else {
                later.push(l);
            }
        }
        waiting = later;
    }
    Ok(out)
}

/// The change time a file created in `dir` now gets.
fn now_on(dir: &Path) -> Result<(i64, i64)> {
    let path = dir.join(".clock.tmp");
    let _ = std::fs::remove_file(&path);
    let md = std::fs::File::create(&path)
        .and_then(|f| f.metadata())
        .with_context(|| format!("cannot create {}", path.display()))?;
    let _ = std::fs::remove_file(&path);
    Ok((md.ctime(), md.ctime_nsec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delta::{Link, References};
    use ferry_protocol::id::Sha256;

    fn key(p: &str) -> ObjectKey {
        ObjectKey {
            source: "s".into(),
            path: p.into(),
        }
    }

    #[test]
    fn a_linked_file_gets_its_fingerprint_after_the_link_unless_it_changed() {
        let dir = tempfile::tempdir().unwrap();
        let refs = References::new(dir.path().join("objects"));
        let mut linked = Vec::new();
        let mut listed = HashMap::new();
        for (name, data) in [("a", &b"alpha"[..]), ("b", b"beta"), ("c", b"gamma")] {
            let path = dir.path().join(name);
            std::fs::write(&path, data).unwrap();
            let fp = crate::source::file_fingerprint(&std::fs::metadata(&path).unwrap());
            listed.insert(key(name), fp.clone());
            let Link::Made(stamp) = refs.link(&Sha256::of(data), &path, &fp).unwrap() else {
                panic!("{name} not linked");
            };
            linked.push(Linked {
                key: key(name),
                path,
                stamp,
            });
        }
        // The copy is the file itself.
        let a = dir.path().join("a");
        let copy = refs.dir().join(Sha256::of(b"alpha").to_hex());
        assert_eq!(
            std::fs::metadata(&a).unwrap().ino(),
            std::fs::metadata(&copy).unwrap().ino()
        );
        // b rewritten in place after its link (another size); c replaced.
        std::fs::write(dir.path().join("b"), b"beta, longer").unwrap();
        std::fs::remove_file(dir.path().join("c")).unwrap();
        std::fs::write(dir.path().join("c"), b"gamma").unwrap();
        let after = fingerprints_after(linked, refs.dir()).unwrap();
        let now = crate::source::file_fingerprint(&std::fs::metadata(&a).unwrap());
        assert_eq!(after.get(&key("a")), Some(&now), "a: its fingerprint now");
        assert_ne!(now, listed[&key("a")], "the link changed a's change time");
        assert!(!after.contains_key(&key("b")), "b changed: read again");
        assert!(!after.contains_key(&key("c")), "c replaced: read again");
    }

    #[test]
    fn a_file_changed_since_it_was_listed_is_not_linked() {
        let dir = tempfile::tempdir().unwrap();
        let refs = References::new(dir.path().join("objects"));
        let path = dir.path().join("f");
        std::fs::write(&path, b"one").unwrap();
        let fp = crate::source::file_fingerprint(&std::fs::metadata(&path).unwrap());
        std::fs::write(&path, b"two, and more").unwrap();
        assert!(matches!(
            refs.link(&Sha256::of(b"one"), &path, &fp).unwrap(),
            Link::Refused
        ));
        assert_eq!(refs.get(&Sha256::of(b"one")).unwrap(), None);
    }
}
