//! Upstream provenance (bundle-format §19): what the outside checked upstream
//! before it shipped a source's objects, and against which key. Carried in a
//! manifest as a **non-critical** extension (kind 3): a reader that does not
//! know it ignores it, one that does keeps it and shows it (`ferry-in status`).
//!
//! Each bundle carries the provenance of every source of its catalog as the
//! outside last scanned it, so a reader keeps the latest bundle's record
//! whole. It vouches for nothing by itself: the bundle's signature does.

use crate::manifest::{Extension, Manifest};
use serde::{Deserialize, Serialize};

/// The extension kind of a provenance record.
pub const EXTENSION_KIND: u32 = 3;
/// The version byte before the record's postcard body.
pub const VERSION: u8 = 1;
/// The most entries a record may hold.
pub const MAX_VOUCHES: usize = 1 << 16;

/// How upstream vouched for objects. Wire order is the variant index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Method {
    /// An OpenPGP signature over the index that lists every object's digest
    /// (apt's `InRelease`/`Release.gpg`, yum's `repomd.xml.asc`); `key` is
    /// the signing certificate's fingerprint.
    OpenPgp,
    /// A cosign signature over the image's manifest digest; `key` is
    /// `SHA256:` of the public key's SubjectPublicKeyInfo.
    Cosign,
    /// The Go checksum database: a signed tree head and an inclusion proof;
    /// `key` is the verifier key's name.
    GoSumdb,
    /// Digests from the upstream index, fetched over TLS (or from local
    /// files), with no upstream signature checked.
    DigestsOnly,
}

impl Method {
    /// A short name: `openpgp`, `cosign`, `go-sumdb`, `digests-only`.
    pub fn name(self) -> &'static str {
        match self {
            Method::OpenPgp => "openpgp",
            Method::Cosign => "cosign",
            Method::GoSumdb => "go-sumdb",
            Method::DigestsOnly => "digests-only",
        }
    }
}

/// One statement: upstream vouched for a source's objects (or one object) so.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vouch {
    /// The source's name.
    pub source: String,
    /// The object's path within the source, or `None` for every object of
    /// the source no other entry names.
    pub object: Option<String>,
    /// How.
    pub method: Method,
    /// The key that verified, when one did.
    pub key: Option<String>,
    /// What was checked, in words (such as `InRelease of bookworm`).
    pub detail: String,
}

/// A bundle's provenance record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// Source entries first, then objects, each sorted.
    pub vouches: Vec<Vouch>,
}

/// Why a provenance record is not used (the bundle is not refused for it:
/// the extension is not critical).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProvenanceError {
    /// More than one kind-3 record.
    #[error("the manifest carries two provenance records")]
    Twice,
    /// A version this reader does not know.
    #[error("provenance record version {0} is not supported (this reader knows version 1)")]
    Version(u8),
    /// The body does not decode, holds too many entries or bytes after them.
    #[error("the provenance record does not decode")]
    Body,
}

impl Provenance {
    /// Sorted: by source, the source's own entry before its objects' entries.
    pub fn new(mut vouches: Vec<Vouch>) -> Provenance {
        vouches.sort_by(|a, b| (&a.source, &a.object).cmp(&(&b.source, &b.object)));
        vouches.dedup_by(|a, b| a.source == b.source && a.object == b.object);
        Provenance { vouches }
    }

    /// The manifest extension that carries it (not critical).
    pub fn extension(&self) -> Extension {
        let mut data = vec![VERSION];
        data.extend(postcard::to_stdvec(self).expect("a provenance record always serializes"));
        Extension {
            kind: EXTENSION_KIND,
            critical: false,
            data,
        }
    }

    /// Decodes the extension's data.
    pub fn from_data(data: &[u8]) -> Result<Provenance, ProvenanceError> {
        match data.split_first() {
            Some((&VERSION, body)) => {
                let (p, rest): (Provenance, _) =
                    postcard::take_from_bytes(body).map_err(|_| ProvenanceError::Body)?;
                if !rest.is_empty() || p.vouches.len() > MAX_VOUCHES {
                    return Err(ProvenanceError::Body);
                }
                Ok(p)
            }
            Some((&v, _)) => Err(ProvenanceError::Version(v)),
            None => Err(ProvenanceError::Body),
        }
    }

    /// What vouched for `path` of `source`: its own entry, else the source's.
    pub fn lookup(&self, source: &str, path: &str) -> Option<&Vouch> {
        let of = |object: Option<&str>| {
            self.vouches
                .iter()
                .find(|v| v.source == source && v.object.as_deref() == object)
        };
        of(Some(path)).or_else(|| of(None))
    }
}

/// The provenance record of `m`, if it carries one.
pub fn provenance(m: &Manifest) -> Result<Option<Provenance>, ProvenanceError> {
    let Some(ext) = m
        .extension(EXTENSION_KIND)
        .map_err(|_| ProvenanceError::Twice)?
    else {
        return Ok(None);
    };
    Provenance::from_data(&ext.data).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Provenance {
        Provenance::new(vec![
            Vouch {
                source: "images".into(),
                object: Some("repos/app/_tags/1".into()),
                method: Method::Cosign,
                key: Some("SHA256:abc".into()),
                detail: "app:1".into(),
            },
            Vouch {
                source: "images".into(),
                object: None,
                method: Method::DigestsOnly,
                key: None,
                detail: "d".into(),
            },
        ])
    }

    #[test]
    fn round_trips_with_exact_bytes_and_looks_up_objects_then_sources() {
        let p = Provenance::new(vec![Vouch {
            source: "a".into(),
            object: None,
            method: Method::OpenPgp,
            key: Some("K".into()),
            detail: "d".into(),
        }]);
        let ext = p.extension();
        assert!(!ext.critical);
        assert_eq!(ext.kind, 3);
        // version, count 1, "a", None, variant 0, Some "K", "d" (bundle-format §19).
        assert_eq!(ext.data, [1, 1, 1, b'a', 0, 0, 1, 1, b'K', 1, b'd']);
        assert_eq!(Provenance::from_data(&ext.data).unwrap(), p);

        let s = sample();
        assert_eq!(s.vouches[0].object, None, "the source entry sorts first");
        let back = Provenance::from_data(&s.extension().data).unwrap();
        assert_eq!(
            back.lookup("images", "repos/app/_tags/1").unwrap().method,
            Method::Cosign
        );
        assert_eq!(
            back.lookup("images", "blobs/sha256/x").unwrap().method,
            Method::DigestsOnly
        );
        assert!(back.lookup("other", "x").is_none());
    }

    #[test]
    fn bad_records_are_typed() {
        let mut data = sample().extension().data;
        data.push(0);
        assert_eq!(Provenance::from_data(&data), Err(ProvenanceError::Body));
        data[0] = 2;
        assert_eq!(
            Provenance::from_data(&data),
            Err(ProvenanceError::Version(2))
        );
        assert_eq!(Provenance::from_data(&[]), Err(ProvenanceError::Body));
    }
}
