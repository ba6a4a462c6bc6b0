//! Object keys and the rules that keep every object inside its store.
//!
//! An object is named by a source name and a relative path. Both are checked
//! here, on the receiving side, before anything touches a filesystem:
//!
//! - a source name is 1 to 64 of `[A-Za-z0-9._-]`, not starting with `.`;
//! - a path is 1 to 4096 bytes of `/`-separated components, each 1 to 255
//!   bytes, none `.` or `..`, none containing NUL or `\`; no leading or
//!   trailing `/`, no empty component;
//! - a symlink target is relative and normal (leading `..` components, then
//!   names) and, resolved from the link's directory, stays inside the link's
//!   source tree;
//! - no object is the ancestor directory of another (checked in
//!   [`crate::catalog`]), so a link or file can never stand where a directory
//!   of a later object must be.

use crate::Error;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where an object lives: its source and its path within the source.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectKey {
    /// The source name from the outside configuration.
    pub source: String,
    /// The `/`-separated relative path within the source.
    pub path: String,
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.source, self.path)
    }
}

fn unsafe_path(path: &str, why: &'static str) -> Error {
    Error::UnsafePath {
        path: path.to_string(),
        why,
    }
}

/// Checks a source name.
pub fn check_source_name(name: &str) -> Result<(), Error> {
    if name.is_empty() || name.len() > 64 {
        return Err(unsafe_path(
            name,
            "a source name must be 1 to 64 characters",
        ));
    }
    if name.starts_with('.') {
        return Err(unsafe_path(name, "a source name may not start with '.'"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(unsafe_path(
            name,
            "a source name may hold only letters, digits, '.', '_' and '-'",
        ));
    }
    Ok(())
}

/// Checks an object path.
pub fn check_path(path: &str) -> Result<(), Error> {
    if path.is_empty() {
        return Err(unsafe_path(path, "empty path"));
    }
    if path.len() > 4096 {
        return Err(unsafe_path(path, "path longer than 4096 bytes"));
    }
    if path.starts_with('/') {
        return Err(unsafe_path(path, "absolute path"));
    }
    for comp in path.split('/') {
        match comp {
            "" => return Err(unsafe_path(path, "empty path component (// or trailing /)")),
            "." => return Err(unsafe_path(path, "'.' component")),
            ".." => return Err(unsafe_path(path, "'..' component (path traversal)")),
            _ => {}
        }
        if comp.len() > 255 {
            return Err(unsafe_path(path, "component longer than 255 bytes"));
        }
        if comp.contains('\0') {
            return Err(unsafe_path(path, "NUL byte"));
        }
        if comp.contains('\\') {
            return Err(unsafe_path(path, "backslash"));
        }
    }
    Ok(())
}

/// Checks an object key: its source name and its path.
pub fn check_key(key: &ObjectKey) -> Result<(), Error> {
    check_source_name(&key.source)?;
    check_path(&key.path)
}

/// Checks that a symlink at `link_path` pointing to `target` stays in its source.
pub fn check_symlink_target(link_path: &str, target: &str) -> Result<(), Error> {
    if target.is_empty() || target.len() > 4096 {
        return Err(unsafe_path(
            target,
            "symlink target empty or longer than 4096 bytes",
        ));
    }
    if target.starts_with('/') {
        return Err(unsafe_path(target, "absolute symlink target"));
    }
    if target.contains('\0') || target.contains('\\') {
        return Err(unsafe_path(target, "symlink target holds NUL or backslash"));
    }
    // Targets must be normal: some leading `..`, then plain names. With that
    // form, resolution climbs only through the link's own (real) parent
    // directories and then descends through names, each of which, if itself a
    // link, passed this same check; so no chain of links can leave the source.
    let depth = link_path.split('/').count() - 1;
    let mut ups = 0;
    let mut seen_name = false;
    for comp in target.split('/') {
        match comp {
            "" | "." => {
                return Err(unsafe_path(
                    target,
                    "symlink target is not normal (empty or '.' component)",
                ))
            }
            ".." if seen_name => {
                return Err(unsafe_path(
                    target,
                    "symlink target is not normal ('..' after a name)",
                ))
            }
            ".." => ups += 1,
            _ => seen_name = true,
        }
    }
    if ups > depth {
        return Err(unsafe_path(target, "symlink target escapes its source"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_paths() {
        for p in ["a", "a/b.txt", "dir/sub/file-1.2_3", "...", "a..b", "..x/y"] {
            check_path(p).unwrap();
        }
    }

    #[test]
    fn bad_paths_are_named() {
        for (p, why) in [
            ("", "empty"),
            ("/etc/passwd", "absolute"),
            ("../x", "traversal"),
            ("a/../../x", "traversal"),
            ("a/./b", "'.'"),
            ("a//b", "empty path component"),
            ("a/", "empty path component"),
            ("a\\..\\b", "backslash"),
            ("a\0b", "NUL"),
        ] {
            let e = check_path(p).unwrap_err().to_string();
            assert!(e.contains(why), "{p:?}: {e}");
        }
        assert!(check_path(&"x/".repeat(3000)).is_err());
        assert!(check_path(&"x".repeat(300)).is_err());
    }

    #[test]
    fn source_names() {
        check_source_name("tools-1.x_y").unwrap();
        for bad in ["", ".hidden", "a/b", "..", "a b", &"x".repeat(65)] {
            assert!(check_source_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn symlink_targets() {
        check_symlink_target("a/b/link", "../c").unwrap();
        check_symlink_target("a/b/link", "../../c").unwrap();
        check_symlink_target("link", "target").unwrap();
        assert!(check_symlink_target("a/link", "./b/../c").is_err());
        assert!(check_symlink_target("d", "x/../..").is_err());
        assert!(check_symlink_target("a/b/link", "../../../etc/passwd").is_err());
        assert!(check_symlink_target("link", "../x").is_err());
        assert!(check_symlink_target("link", "/etc/passwd").is_err());
        assert!(check_symlink_target("a/link", "b/../../..").is_err());
    }
}
