//! At apply time: the objects a bundle names without carrying their content
//! (the inside's inventory said it holds them) are read from their adopted
//! locations into the staging area, each checked (size and SHA-256 against
//! the catalog, its chunks against the catalog's list) before the build uses
//! any of it. The build then reads them from staging like carried chunks, and
//! checks every chunk id and the object's SHA-256 again.

use super::{load_index, registry, AdoptError, Adopted, Location};
use crate::chunkstore::ChunkStore;
use crate::layout::Layout;
use anyhow::Result;
use ferry_protocol::catalog::{Catalog, Encoding, Object};
use ferry_protocol::codec::Codec;
use ferry_protocol::path::ObjectKey;
use std::collections::HashSet;
use std::io::Read;

/// Stages, from their adopted locations, the objects of `wanting` (keys of
/// `next` whose chunks the store, the bundle and the previous generation
/// lack) that the adoption index holds. Returns the keys it could not
/// stage (not adopted), for the caller to report. A location whose bytes are
/// not the catalog's object is [`AdoptError::Mismatch`].
pub fn stage(
    layout: &Layout,
    next: &Catalog,
    wanting: &[&ObjectKey],
    chunks: &ChunkStore,
) -> Result<Vec<ObjectKey>> {
    if wanting.is_empty() {
        return Ok(vec![]);
    }
    let index = load_index(layout)?;
    let mut left = Vec::new();
    let mut done = HashSet::new();
    for key in wanting {
        let Some(Object::File(f)) = next.objects.get(*key) else {
            left.push((*key).clone());
            continue;
        };
        let Encoding::Chunks(want) = &f.encoding else {
            left.push((*key).clone());
            continue;
        };
        let Some(a) = index.get(&f.sha256.to_hex()) else {
            left.push((*key).clone());
            continue;
        };
        if !done.insert(f.sha256) {
            continue;
        }
        let reader = open(a, &f.sha256.to_hex())?;
        let found =
            ferry_protocol::builder::cut_file(reader, f.executable, |id, data| -> Result<()> {
                chunks.put(id, Codec::Raw, data.len() as u32, &data)
            })
            .map_err(|e| AdoptError::Unreadable {
                location: a.location.to_string(),
                why: format!("{e:#}"),
            })?;
        let same_chunks = matches!(&found.encoding, Encoding::Chunks(c) if c == want);
        if found.sha256 != f.sha256 || found.size != f.size || !same_chunks {
            return Err(AdoptError::Mismatch {
                location: a.location.to_string(),
                want: f.sha256,
                want_size: f.size,
                found: found.sha256,
                found_size: found.size,
            }
            .into());
        }
    }
    Ok(left)
}

/// A reader over the adopted bytes of `a` (SHA-256 `hex`).
fn open(a: &Adopted, hex: &str) -> Result<Box<dyn Read>, AdoptError> {
    let unreadable = |why: String| AdoptError::Unreadable {
        location: a.location.to_string(),
        why,
    };
    match &a.location {
        Location::File(p) => Ok(Box::new(
            std::fs::File::open(p).map_err(|e| unreadable(e.to_string()))?,
        )),
        Location::Registry {
            base,
            repo,
            kind,
            ca,
        } => {
            let agent =
                registry::agent(base, ca.as_deref()).map_err(|e| unreadable(format!("{e:#}")))?;
            let url = format!("{base}/v2/{repo}/{kind}/sha256:{hex}");
            let resp = agent
                .get(&url)
                .header("Accept", registry::ACCEPT)
                .call()
                .map_err(|e| unreadable(format!("GET {url}: {e}")))?;
            if resp.status() != 200 {
                return Err(unreadable(format!("GET {url}: status {}", resp.status())));
            }
            // One byte more than the catalog's size is enough to tell a
            // mismatch; the digest check does the rest.
            let limit = a.size.saturating_add(1);
            Ok(Box::new(
                resp.into_body().into_with_config().limit(limit).reader(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adopt::{index_path, Index};

    #[test]
    fn an_adopted_file_is_staged_only_while_it_is_the_catalogs_object() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(&dir.path().join("state"));
        std::fs::create_dir_all(&layout.root).unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let file = dir.path().join("adopted.bin");
        std::fs::write(&file, &data).unwrap();
        let object = ferry_protocol::builder::cut_file(&data[..], false, |_, _| {
            Ok::<_, ferry_protocol::builder::BuildError>(())
        })
        .unwrap();
        let mut index = Index::new();
        index.insert(
            object.sha256.to_hex(),
            Adopted {
                size: object.size,
                location: Location::File(file.clone()),
            },
        );
        std::fs::write(index_path(&layout), serde_json::to_vec(&index).unwrap()).unwrap();
        let key = ObjectKey {
            source: "tools".into(),
            path: "a.bin".into(),
        };
        let other = ObjectKey {
            source: "tools".into(),
            path: "b.bin".into(),
        };
        let mut next = Catalog::default();
        next.objects
            .insert(key.clone(), Object::File(object.clone()));
        let mut elsewhere = object.clone();
        elsewhere.sha256 = ferry_protocol::id::Sha256::of(b"not adopted");
        next.objects.insert(other.clone(), Object::File(elsewhere));
        let chunks = ChunkStore::new(&dir.path().join("chunks"), 1 << 20)
            .with_staging(&dir.path().join("staging"));

        let left = stage(&layout, &next, &[&key, &other], &chunks).unwrap();
        assert_eq!(left, vec![other], "only the adopted object is staged");
        for c in object.chunks() {
            assert!(chunks.contains(&c.id));
        }

        let mut altered = data.clone();
        altered[500] ^= 1;
        std::fs::write(&file, &altered).unwrap();
        let e = stage(&layout, &next, &[&key], &chunks).unwrap_err();
        match e.downcast_ref::<AdoptError>() {
            Some(AdoptError::Mismatch { location, want, .. }) => {
                assert_eq!(location, &file.display().to_string());
                assert_eq!(*want, object.sha256);
            }
            other => panic!("not a mismatch: {other:?} ({e:#})"),
        }
        std::fs::remove_file(&file).unwrap();
        let e = stage(&layout, &next, &[&key], &chunks).unwrap_err();
        assert!(matches!(
            e.downcast_ref::<AdoptError>(),
            Some(AdoptError::Unreadable { .. })
        ));
    }
}
