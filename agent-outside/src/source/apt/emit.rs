//! Turning what the scan gathered into items.

use crate::source::{Item, ItemKind};
use crate::upstream::{Client, Expect};
use anyhow::{Context, Result};
use ferry_protocol::id::Sha256;
use std::io::Read;
use std::path::PathBuf;

/// Where an item's bytes come from.
pub(super) enum FileSrc {
    /// Already in memory (release files).
    Bytes(Vec<u8>),
    /// Downloaded and checked into the cache.
    Cached {
        file: PathBuf,
        sha: Sha256,
        fp: Option<String>,
    },
    /// Unchanged since the last bundle: downloaded (into `dest`) only if
    /// the ledger lost it.
    Remote {
        url: String,
        dest: PathBuf,
        expect: Expect,
        fp: String,
    },
}

impl FileSrc {
    /// The item at `path`; `source` names the source in errors.
    pub(super) fn into_item(self, path: String, client: &Client, source: &str) -> Item {
        let kind = match self {
            FileSrc::Bytes(b) => {
                let sha = Sha256::of(&b);
                bytes_file(b, Some(sha), None)
            }
            FileSrc::Cached { file, sha, fp } => ItemKind::File {
                executable: false,
                fingerprint: fp,
                expected_sha256: Some(sha),
                open: Box::new(move || {
                    let f = std::fs::File::open(&file)
                        .with_context(|| format!("cannot open {}", file.display()))?;
                    Ok(Box::new(f) as Box<dyn Read>)
                }),
            },
            FileSrc::Remote {
                url,
                dest,
                expect,
                fp,
            } => {
                let client = client.clone();
                let what = format!("source {source:?}: {path}");
                let sha = expect
                    .checksum
                    .as_ref()
                    .and_then(|c| Sha256::from_hex(&c.hex));
                ItemKind::File {
                    executable: false,
                    fingerprint: Some(fp),
                    expected_sha256: sha,
                    open: Box::new(move || {
                        client
                            .open_downloaded(&url, &dest, &expect)
                            .with_context(|| what)
                    }),
                }
            }
        };
        Item {
            path,
            predecessor: None,
            kind,
        }
    }
}

/// A file item whose bytes are in memory.
pub(super) fn bytes_file(
    bytes: Vec<u8>,
    expected_sha256: Option<Sha256>,
    fingerprint: Option<String>,
) -> ItemKind {
    ItemKind::File {
        executable: false,
        fingerprint,
        expected_sha256,
        open: Box::new(move || Ok(Box::new(std::io::Cursor::new(bytes)) as Box<dyn Read>)),
    }
}

/// Sends every item, in order.
pub(super) fn emit_all(
    files: Vec<(String, FileSrc)>,
    client: &Client,
    source: &str,
    sink: &mut dyn FnMut(Item) -> Result<()>,
) -> Result<()> {
    for (path, src) in files {
        sink(src.into_item(path, client, source))?;
    }
    Ok(())
}
