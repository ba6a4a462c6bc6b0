//! Which blob of the last bundle a new blob descends from, for the
//! exporter's patches ([`crate::source::Item::predecessor`]).
//!
//! A blob's path is its digest, so no file-name rule pairs a new layer with
//! the old one. The previous manifest of the same repository and tag tells:
//! the layer at position `i` descends from the layer at position `i`, the
//! config from the config; in an index, a platform's manifest from the
//! manifest of the same platform. The previous manifest is the one the last
//! catalog's tag file names (`repos/<repo>/_tags/<tag>`), read back from the
//! manifest cache. A tag the last catalog lacks (a new release selected by
//! a pattern) descends from the tag of the same repository whose name
//! shares the longest prefix with it. Everything here is a guess: a missing
//! manifest or a wrong pairing costs bytes, never correctness.

use crate::source::ScanCtx;
use ferry_formats::oci::{parse_path, tag_file, Descriptor, Digest, Manifest, OciPath};
use ferry_protocol::catalog::Object;
use ferry_protocol::id::Sha256;
use std::collections::HashMap;
use std::path::Path;

/// The last catalog's tags of one source and the pairings found so far.
#[derive(Default)]
pub(super) struct Lineage {
    /// Served repository -> its tags in the last catalog, with the manifest
    /// each named.
    tags: HashMap<String, Vec<(String, Digest)>>,
    /// New manifest -> the manifest of the last catalog it replaces.
    manifests: HashMap<Digest, Digest>,
    /// New blob -> the blob of the last catalog it most likely descends from.
    blobs: HashMap<Digest, Digest>,
}

impl Lineage {
    /// Reads the tags of the last catalog's objects of this source.
    pub(super) fn new(cx: &ScanCtx<'_>) -> Lineage {
        // A tag file is `sha256:<hex>\n`: its SHA-256 names the manifest.
        let by_tag_file: HashMap<Sha256, Digest> = cx
            .previous_paths()
            .filter_map(|(p, _)| match parse_path(p) {
                Some(OciPath::Manifest(hex)) => Digest::from_hex(hex),
                _ => None,
            })
            .map(|d| (Sha256::of(&tag_file(&d)), d))
            .collect();
        let mut tags: HashMap<String, Vec<(String, Digest)>> = HashMap::new();
        for (p, o) in cx.previous_paths() {
            let (Some(OciPath::Tag { repo, tag }), Object::File(f)) = (parse_path(p), o) else {
                continue;
            };
            if let Some(d) = by_tag_file.get(&f.sha256) {
                tags.entry(repo.to_string())
                    .or_default()
                    .push((tag.to_string(), *d));
            }
        }
        Lineage {
            tags,
            ..Lineage::default()
        }
    }

    /// The manifest served repository `repo`'s tag `tag` named in the last
    /// catalog; for a tag it lacked, the one of the tag whose name shares
    /// the longest prefix with `tag` (the greatest name among equals).
    /// Fallback tags of referrers (`sha256-…`) are no release.
    fn previous(&self, repo: &str, tag: &str) -> Option<Digest> {
        let tags = self.tags.get(repo)?;
        if let Some((_, d)) = tags.iter().find(|(t, _)| t == tag) {
            return Some(*d);
        }
        if tag.starts_with("sha256-") {
            return None;
        }
        tags.iter()
            .filter(|(t, _)| !t.starts_with("sha256-"))
            .map(|(t, d)| {
                let common = t.bytes().zip(tag.bytes()).take_while(|(a, b)| a == b);
                (common.count(), t, d)
            })
            .filter(|(common, _, _)| *common > 0)
            .max_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)))
            .map(|(_, _, d)| *d)
    }

    /// Served repository `repo`'s tag `tag` names manifest `digest` now:
    /// it replaces the one [`Lineage::previous`] finds.
    pub(super) fn tagged(&mut self, repo: &str, tag: &str, digest: Digest) {
        if let Some(old) = self.previous(repo, tag).filter(|old| *old != digest) {
            self.manifests.entry(digest).or_insert(old);
        }
    }

    /// Pairs manifest `new` (digest `digest`) with the one it replaces (read
    /// from `cache`): blobs by position, recorded for [`Lineage::blob`]; an
    /// index's manifests by platform, recorded for their own walk.
    pub(super) fn pair(&mut self, cache: &Path, digest: &Digest, new: &Manifest) {
        let Some(old) = self.manifests.get(digest).and_then(|d| cached(cache, d)) else {
            return;
        };
        let digest = |d: &Descriptor| Digest::parse(&d.digest).ok();
        let configs = new.config.iter().zip(old.config.iter());
        let layers = new.layers.iter().flatten().zip(old.layers.iter().flatten());
        let blobs = new.blobs.iter().flatten().zip(old.blobs.iter().flatten());
        for (n, o) in configs.chain(layers).chain(blobs) {
            if let (Some(n), Some(o)) = (digest(n), digest(o)) {
                if n != o {
                    self.blobs.entry(n).or_insert(o);
                }
            }
        }
        let platform = |d: &Descriptor| d.platform.as_ref().map(|p| p.full());
        let old_children = old.manifests.unwrap_or_default();
        for n in new.manifests.iter().flatten() {
            let want = platform(n);
            let Some(o) = old_children
                .iter()
                .find(|o| want.is_some() && platform(o) == want)
            else {
                continue;
            };
            if let (Some(n), Some(o)) = (digest(n), digest(o)) {
                if n != o {
                    self.manifests.entry(n).or_insert(o);
                }
            }
        }
    }

    /// The blob of the last catalog that `blob` most likely descends from.
    pub(super) fn blob(&self, blob: &Digest) -> Option<Digest> {
        self.blobs.get(blob).copied()
    }
}

/// Manifest `digest` from the manifest cache, if it is there and parses.
fn cached(cache: &Path, digest: &Digest) -> Option<Manifest> {
    let bytes = std::fs::read(cache.join(digest.hex())).ok()?;
    (Digest::of(&bytes) == *digest)
        .then(|| Manifest::parse(&bytes).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_formats::oci::tag_path;
    use ferry_protocol::catalog::{Catalog, Encoding, FileObject, SourceKind};
    use ferry_protocol::path::ObjectKey;

    fn d(n: u8) -> Digest {
        Digest::of(&[n])
    }

    fn file(bytes: &[u8]) -> Object {
        Object::File(FileObject {
            size: bytes.len() as u64,
            sha256: Sha256::of(bytes),
            executable: false,
            encoding: Encoding::Chunks(vec![]),
        })
    }

    fn manifest(config: &Digest, layers: &[Digest]) -> Vec<u8> {
        let layers: Vec<String> = layers
            .iter()
            .map(|l| format!(r#"{{"digest":"{l}"}}"#))
            .collect();
        format!(
            r#"{{"schemaVersion":2,"config":{{"digest":"{config}"}},"layers":[{}]}}"#,
            layers.join(",")
        )
        .into_bytes()
    }

    fn index(children: &[(&str, Digest)]) -> Vec<u8> {
        let list: Vec<String> = children
            .iter()
            .map(|(arch, m)| {
                format!(r#"{{"digest":"{m}","platform":{{"os":"linux","architecture":"{arch}"}}}}"#)
            })
            .collect();
        format!(r#"{{"schemaVersion":2,"manifests":[{}]}}"#, list.join(",")).into_bytes()
    }

    #[test]
    fn tags_name_their_manifests_and_new_tags_take_the_closest() {
        let dir = tempfile::tempdir().unwrap();
        let (m1, m2, sig) = (d(1), d(2), d(3));
        let mut c = Catalog::default();
        c.sources.insert("hub".into(), SourceKind::Oci);
        let mut put = |path: String, o: Object| {
            c.objects.insert(
                ObjectKey {
                    source: "hub".into(),
                    path,
                },
                o,
            );
        };
        for m in [m1, m2, sig] {
            put(m.manifest_path(), file(b"{}"));
        }
        put(tag_path("lib/app", "1.4"), file(&tag_file(&m1)));
        put(tag_path("lib/app", "2.0"), file(&tag_file(&m2)));
        put(tag_path("lib/app", "sha256-ab"), file(&tag_file(&sig)));
        put(tag_path("lib/app", "gone"), file(b"sha256:nothing\n"));
        let cx = ScanCtx {
            previous: &c,
            cache_dir: dir.path().into(),
            source: "hub",
        };
        let mut l = Lineage::new(&cx);
        assert_eq!(l.previous("lib/app", "1.4"), Some(m1));
        assert_eq!(l.previous("lib/app", "1.5"), Some(m1));
        assert_eq!(l.previous("lib/app", "2.1"), Some(m2));
        assert_eq!(l.previous("lib/app", "latest"), None);
        assert_eq!(l.previous("lib/app", "gone"), None);
        assert_eq!(l.previous("lib/app", "sha256-cd"), None);
        assert_eq!(l.previous("lib/other", "1.4"), None);
        // A tag naming the same manifest as before replaces nothing.
        l.tagged("lib/app", "1.4", m1);
        l.tagged("lib/app", "1.5", d(7));
        assert_eq!(l.manifests.get(&m1), None);
        assert_eq!(l.manifests[&d(7)], m1);
    }

    #[test]
    fn layers_pair_by_position_and_index_entries_by_platform() {
        let dir = tempfile::tempdir().unwrap();
        let write = |bytes: Vec<u8>| {
            let digest = Digest::of(&bytes);
            std::fs::write(dir.path().join(digest.hex()), bytes).unwrap();
            digest
        };
        let old_amd = write(manifest(&d(10), &[d(11), d(12)]));
        let old_arm = write(manifest(&d(20), &[d(21)]));
        let old_index = write(index(&[("amd64", old_amd), ("arm64", old_arm)]));
        let new_index = index(&[("arm64", d(40)), ("amd64", d(41))]);
        let mut l = Lineage::default();
        l.manifests.insert(Digest::of(&new_index), old_index);
        let new_index_m = Manifest::parse(&new_index).unwrap();
        l.pair(dir.path(), &Digest::of(&new_index), &new_index_m);
        assert_eq!(l.manifests[&d(40)], old_arm);
        assert_eq!(l.manifests[&d(41)], old_amd);

        // Layer i from layer i; an unchanged layer pairs with nothing; a
        // layer past the old manifest's last has no predecessor.
        let new_amd = Manifest::parse(&manifest(&d(30), &[d(11), d(32), d(33)])).unwrap();
        l.pair(dir.path(), &d(41), &new_amd);
        assert_eq!(l.blob(&d(30)), Some(d(10)));
        assert_eq!(l.blob(&d(11)), None);
        assert_eq!(l.blob(&d(32)), Some(d(12)));
        assert_eq!(l.blob(&d(33)), None);

        // A manifest missing from the cache (or not matching its digest)
        // pairs nothing.
        let mut l = Lineage::default();
        std::fs::write(dir.path().join(d(99).hex()), manifest(&d(10), &[])).unwrap();
        for old in [d(98), d(99)] {
            l.manifests.insert(d(41), old);
            l.pair(dir.path(), &d(41), &new_amd);
            assert_eq!(l.blob(&d(30)), None);
        }
    }
}
