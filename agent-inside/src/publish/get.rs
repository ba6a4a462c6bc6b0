//! `ferry-in publish-get SOURCE/PATH`: resolves a path through what a
//! publish put in the bucket, as a front end would (docs/publish.md), and
//! checks every step: `current` → the manifest (its SHA-256) → the two
//! index files (theirs) → the path's entry (following links) → the object
//! (its size and SHA-256).
//!
//! It reads the whole index files: a check, not a front end (which keeps
//! them, immutable, by key, or reads their blocks with range requests).

use super::manifest::{self, Current, Manifest};
use super::{s3, BucketArgs};
use crate::pathindex::{self, Entry, IndexFile, View};
use anyhow::{bail, Context, Result};
use ferry_protocol::id::Sha256;
use ferry_protocol::path::ObjectKey;
use std::path::PathBuf;

/// `ferry-in publish-get`'s flags.
#[derive(clap::Args, Debug)]
pub struct GetArgs {
    #[command(flatten)]
    pub bucket: BucketArgs,
    /// What to fetch: SOURCE/PATH, or a derived file (apt-site/SOURCE/PATH,
    /// pypi-meta/SOURCE/PATH).
    pub what: String,
    /// Write the bytes to FILE ("-": standard output); without it only the
    /// resolution is printed.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// What a path resolved to.
#[derive(Debug, serde::Serialize)]
pub struct Resolved {
    /// The generation `current` named.
    pub generation: String,
    /// The key of the object.
    pub key: String,
    /// Its SHA-256.
    pub sha256: String,
    /// Its size.
    pub size: u64,
    /// Served executable.
    pub executable: bool,
    /// The bytes (checked).
    #[serde(skip)]
    pub bytes: Vec<u8>,
}

fn get_checked(client: &s3::Client, key: &str, sha: &Sha256, size: u64) -> Result<Vec<u8>> {
    let bytes = client
        .get(key)?
        .with_context(|| format!("the bucket has no {}", client.key(key)))?;
    let got = Sha256::of(&bytes);
    if bytes.len() as u64 != size || got != *sha {
        bail!(
            "{} is not what the manifest names: {} bytes, SHA-256 {got} (expected {size} bytes, {sha})",
            client.key(key),
            bytes.len()
        );
    }
    Ok(bytes)
}

/// Resolves `what` through the bucket's `current`.
pub fn resolve(args: &GetArgs, target: &s3::Target) -> Result<Resolved> {
    let client = s3::Client::new(target)?;
    let cur_bytes = client.get(manifest::CURRENT)?.with_context(|| {
        format!(
            "the bucket has no {}: nothing was published there",
            client.key(manifest::CURRENT)
        )
    })?;
    let cur: Current = serde_json::from_slice(&cur_bytes)
        .with_context(|| format!("{} does not decode", client.key(manifest::CURRENT)))?;
    if cur.format != manifest::FORMAT {
        bail!(
            "{} is of layout version {}; this ferry-in reads version {}",
            client.key(manifest::CURRENT),
            cur.format,
            manifest::FORMAT
        );
    }
    let m_bytes = client
        .get(&cur.manifest)?
        .with_context(|| format!("the bucket has no {}", client.key(&cur.manifest)))?;
    if Sha256::of(&m_bytes) != cur.manifest_sha256 {
        bail!(
            "{} is not the manifest `current` names (its SHA-256 differs)",
            client.key(&cur.manifest)
        );
    }
    let m: Manifest = serde_json::from_slice(&m_bytes)
        .with_context(|| format!("{} does not decode", client.key(&cur.manifest)))?;
    let found = |sha: Sha256, size: u64, executable: bool| -> Result<Resolved> {
        let key = manifest::object_key(&sha);
        let bytes = get_checked(&client, &key, &sha, size)?;
        Ok(Resolved {
            generation: m.generation.clone(),
            key: client.key(&key),
            sha256: sha.to_hex(),
            size,
            executable,
            bytes,
        })
    };
    if let Some(b) = m.derived.get(&args.what) {
        return found(b.sha256, b.size, false);
    }
    let index = |b: &manifest::Blob| -> Result<IndexFile<Vec<u8>>> {
        let key = manifest::index_key(&b.sha256);
        let bytes = get_checked(&client, &key, &b.sha256, b.size)?;
        IndexFile::open(bytes).with_context(|| client.key(&key))
    };
    let view = View::new(index(&m.index.base)?, index(&m.index.delta)?)
        .context("the manifest's index files")?;
    let Some((source, path)) = args.what.split_once('/') else {
        bail!(
            "give SOURCE/PATH, such as tools/bin/tool (got {:?})",
            args.what
        );
    };
    let mut key = ObjectKey {
        source: source.to_string(),
        path: path.to_string(),
    };
    for _ in 0..16 {
        match view
            .get(&pathindex::key_of(&key))
            .with_context(|| format!("generation {}: path index", m.generation))?
        {
            Some(Entry::File {
                sha256,
                size,
                executable,
            }) => return found(sha256, size, executable),
            Some(Entry::Symlink { target }) => {
                let dir = key.path.rsplit_once('/').map_or("", |(d, _)| d);
                key.path = join(dir, &target).with_context(|| {
                    format!("{}/{}: its link leaves the source", key.source, key.path)
                })?;
            }
            Some(Entry::Tombstone) | None => bail!(
                "{}/{} is not in generation {} (published as current)",
                key.source,
                key.path,
                m.generation
            ),
        }
    }
    bail!("{}: more than 16 links in a row", args.what)
}

/// `dir` joined with the relative link target `target`, `..` resolved;
/// None when it leaves the source's root.
fn join(dir: &str, target: &str) -> Option<String> {
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for p in target.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::join;

    #[test]
    fn a_link_target_resolves_within_the_source() {
        assert_eq!(join("copy", "../d0/f3.bin").as_deref(), Some("d0/f3.bin"));
        assert_eq!(join("a/b", "./c").as_deref(), Some("a/b/c"));
        assert_eq!(join("", "x").as_deref(), Some("x"));
        assert_eq!(join("a", "../../x"), None, "leaves the source");
    }
}
