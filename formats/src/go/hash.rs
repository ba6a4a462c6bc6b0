//! The `h1:` hash of `go.sum` and the checksum database (Go's `dirhash`
//! Hash1): the SHA-256 of the lines `"<sha256 hex>  <name>\n"` of every
//! file, sorted by name, in base64. A module zip's names are
//! `<module>@<version>/<file>`; a `go.mod` alone is hashed as the one file
//! `go.mod`.

use base64::Engine as _;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{Read, Seek};
use thiserror::Error;

/// The most a module zip may hold uncompressed (Go's own limit).
pub const MAX_ZIP_UNCOMPRESSED: u64 = 500 << 20;
/// The largest `go.mod` Go reads.
pub const MAX_GO_MOD: u64 = 16 << 20;

/// Why a hash could not be computed or is not one.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum HashError {
    /// Not a zip archive, or an entry that does not read.
    #[error("not a readable module zip: {reason}")]
    Zip {
        /// What the zip reader said.
        reason: String,
    },
    /// A file name outside `<module>@<version>/`, twice in the zip, not
    /// UTF-8 or with a newline.
    #[error("module zip file name {name:?}: {reason}")]
    BadName {
        /// The name.
        name: String,
        /// Which rule.
        reason: &'static str,
    },
    /// More than [`MAX_ZIP_UNCOMPRESSED`] bytes uncompressed.
    #[error("the module zip holds more than {limit} bytes uncompressed")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// Not `h1:` and the base64 of 32 bytes.
    #[error("{hash:?} is not an h1: hash")]
    NotH1 {
        /// The text.
        hash: String,
    },
}

/// Checks the form of an `h1:` hash.
pub fn check_h1(hash: &str) -> Result<(), HashError> {
    let ok = hash
        .strip_prefix("h1:")
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .is_some_and(|d| d.len() == 32);
    if ok {
        Ok(())
    } else {
        Err(HashError::NotH1 {
            hash: hash.to_string(),
        })
    }
}

/// Hash1 of `(name, sha256)` pairs.
fn hash1(files: &BTreeMap<String, [u8; 32]>) -> String {
    let mut h = Sha256::new();
    for (name, sum) in files {
        h.update(format!("{}  {name}\n", hex::encode(sum)).as_bytes());
    }
    format!(
        "h1:{}",
        base64::engine::general_purpose::STANDARD.encode(h.finalize())
    )
}

/// The `h1:` hash of a `go.mod` (the `<version>/go.mod` line of `go.sum`).
pub fn go_mod_h1(bytes: &[u8]) -> String {
    let mut files = BTreeMap::new();
    files.insert("go.mod".to_string(), Sha256::digest(bytes).into());
    hash1(&files)
}

/// The `h1:` hash of a module zip whose files must all lie under
/// `<module>@<version>/`, read at most [`MAX_ZIP_UNCOMPRESSED`] bytes.
pub fn zip_h1<R: Read + Seek>(zip: R, module: &str, version: &str) -> Result<String, HashError> {
    let zerr = |e: zip::result::ZipError| HashError::Zip {
        reason: e.to_string(),
    };
    let mut archive = zip::ZipArchive::new(zip).map_err(zerr)?;
    let prefix = format!("{module}@{version}/");
    let mut files = BTreeMap::new();
    let mut total = 0u64;
    for i in 0..archive.len() {
        let mut f = archive.by_index(i).map_err(zerr)?;
        let raw = f.name_raw().to_vec();
        let name = String::from_utf8(raw).map_err(|e| HashError::BadName {
            name: String::from_utf8_lossy(e.as_bytes()).into_owned(),
            reason: "not UTF-8",
        })?;
        let bad = |reason| HashError::BadName {
            name: name.clone(),
            reason,
        };
        if name.contains('\n') {
            return Err(bad("a newline"));
        }
        if !name.starts_with(&prefix) {
            return Err(bad("not under <module>@<version>/"));
        }
        let mut h = Sha256::new();
        let mut buf = [0u8; 64 * 1024];
        loop {
            let n = f.read(&mut buf).map_err(|e| HashError::Zip {
                reason: format!("{name}: {e}"),
            })?;
            if n == 0 {
                break;
            }
            total += n as u64;
            if total > MAX_ZIP_UNCOMPRESSED {
                return Err(HashError::TooLarge {
                    limit: MAX_ZIP_UNCOMPRESSED,
                });
            }
            h.update(&buf[..n]);
        }
        if files.insert(name.clone(), h.finalize().into()).is_some() {
            return Err(bad("twice in the zip"));
        }
    }
    Ok(hash1(&files))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Write};

    fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, data) in files {
            w.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn go_mod_hash_matches_go() {
        // rsc.io/quote v1.5.2/go.mod in go.sum (and dirhash.Hash1 of Go's x/mod),
        // go.mod "module \"rsc.io/quote\"\n\nrequire \"rsc.io/sampler\" v1.3.0\n".
        let gomod = b"module \"rsc.io/quote\"\n\nrequire \"rsc.io/sampler\" v1.3.0\n";
        assert_eq!(
            go_mod_h1(gomod),
            "h1:LzX7hefJvL54yjefDEDHNONDjII0t9xZLPXsUe+TKr0="
        );
    }

    #[test]
    fn zip_hash_is_order_free_and_names_are_checked() {
        let a = zip_of(&[
            ("m.com/a@v1.0.0/x.go", b"x"),
            ("m.com/a@v1.0.0/go.mod", b"m"),
        ]);
        let b = zip_of(&[
            ("m.com/a@v1.0.0/go.mod", b"m"),
            ("m.com/a@v1.0.0/x.go", b"x"),
        ]);
        let ha = zip_h1(Cursor::new(&a), "m.com/a", "v1.0.0").unwrap();
        assert_eq!(ha, zip_h1(Cursor::new(&b), "m.com/a", "v1.0.0").unwrap());
        check_h1(&ha).unwrap();
        let mut lines = BTreeMap::new();
        lines.insert(
            "m.com/a@v1.0.0/go.mod".to_string(),
            Sha256::digest(b"m").into(),
        );
        lines.insert(
            "m.com/a@v1.0.0/x.go".to_string(),
            Sha256::digest(b"x").into(),
        );
        assert_eq!(ha, hash1(&lines));
        assert!(matches!(
            zip_h1(Cursor::new(&a), "m.com/a", "v1.0.1"),
            Err(HashError::BadName { .. })
        ));
        assert!(matches!(
            zip_h1(Cursor::new(b"not a zip"), "m.com/a", "v1.0.0"),
            Err(HashError::Zip { .. })
        ));
        assert!(check_h1("h1:abc").is_err());
    }
}
