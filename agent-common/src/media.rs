//! Where bundles sit in a media directory.
//!
//! A bundle is a directory `bundle-<stream>-<sequence>` (the stream's first
//! 8 hex digits, the sequence as 8 decimal digits) holding `manifest.ferry`
//! and its volume files. Readers find bundles by their manifest, at the top of
//! the media directory or one level down, so an operator may also point a
//! reader at a single bundle directory.

use anyhow::{Context, Result};
use ferry_protocol::id::StreamId;
use std::path::{Path, PathBuf};

/// The name of the manifest file in a bundle directory.
pub const MANIFEST_FILE: &str = "manifest.ferry";

/// The directory name of a bundle.
pub fn bundle_dir_name(stream: StreamId, sequence: u64) -> String {
    format!("bundle-{}-{sequence:08}", &stream.to_hex()[..8])
}

/// Every bundle directory in `media`: `media` itself if it holds a manifest,
/// and each direct subdirectory that does. Sorted by path.
pub fn find_bundles(media: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    // Anything named like a manifest makes a bundle, so that a manifest that
    // is not a regular file (a FIFO on hostile media) is refused by name when
    // it is opened, not silently passed over.
    if media.join(MANIFEST_FILE).exists() {
        out.push(media.to_path_buf());
    }
    let rd = std::fs::read_dir(media)
        .with_context(|| format!("cannot read media directory {}", media.display()))?;
    for e in rd {
        let e = e?;
        let name = e.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue; // temporary directories of an unfinished write
        }
        if e.file_type()?.is_dir() && e.path().join(MANIFEST_FILE).exists() {
            out.push(e.path());
        }
    }
    out.sort();
    Ok(out)
}
