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

/// The name of the unsigned manifest file of a bundle exported unsigned
/// (`ferry-out export --unsigned`), before `ferry-out sign` writes
/// [`MANIFEST_FILE`]. A reader finds such a bundle and refuses it by name.
pub const UNSIGNED_MANIFEST_FILE: &str = "manifest.unsigned";

/// The directory name of a bundle.
pub fn bundle_dir_name(stream: StreamId, sequence: u64) -> String {
    format!("{BUNDLE_DIR_PREFIX}{}-{sequence:08}", &stream.to_hex()[..8])
}

/// The directory name of the rebase snapshot of bundle `sequence`
/// (bundle-format §17): found by its manifest like any bundle, and apart from
/// the stream's own bundle of that sequence.
pub fn rebase_dir_name(stream: StreamId, sequence: u64) -> String {
    format!("rebase-{}-{sequence:08}", &stream.to_hex()[..8])
}

/// How every bundle directory's name starts.
pub const BUNDLE_DIR_PREFIX: &str = "bundle-";

/// Every bundle directory in `media`: `media` itself if it holds a manifest,
/// and each direct subdirectory that does or is named like a bundle
/// (`bundle-…`). Sorted by path.
pub fn find_bundles(media: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    // Anything named like a manifest makes a bundle, so that a manifest that
    // is not a regular file (a FIFO on hostile media) is refused by name when
    // it is opened, not silently passed over.
    let has_manifest =
        |d: &Path| d.join(MANIFEST_FILE).exists() || d.join(UNSIGNED_MANIFEST_FILE).exists();
    if has_manifest(media) {
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
        // A directory named like a bundle is one even without its manifest
        // (a partial copy, or tampering): opening it then fails by name, so
        // the import reports it instead of finding "no bundle".
        let named = name.to_string_lossy().starts_with(BUNDLE_DIR_PREFIX);
        if e.file_type()?.is_dir() && (named || has_manifest(&e.path())) {
            out.push(e.path());
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_directory_without_its_manifest_is_still_found() {
        let media = tempfile::tempdir().unwrap();
        let dir = |n: &str| {
            let p = media.path().join(n);
            std::fs::create_dir(&p).unwrap();
            p
        };
        let whole = dir("bundle-0a1b2c3d-00000001");
        std::fs::write(whole.join(MANIFEST_FILE), b"m").unwrap();
        let headless = dir("bundle-0a1b2c3d-00000002");
        dir(".bundle-0a1b2c3d-00000003.tmp");
        dir("photos");
        assert_eq!(find_bundles(media.path()).unwrap(), vec![whole, headless]);
    }
}
