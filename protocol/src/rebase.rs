//! Rebase snapshots (bundle-format §17): a bundle that carries a stream's
//! whole catalog at sequence N, every object's content included, so that a
//! new or rebuilt inside joins the stream at N without the bundles before it.
//!
//! It is marked by a critical manifest extension (kind 2) naming the manifest
//! hash of the stream's own bundle N, whose catalog it equals: a reader that
//! applies it records that hash as the chain link at N, so bundle N+1 follows
//! as usual. A reader that does not know kind 2 refuses the bundle (critical),
//! instead of applying a full catalog as a delta. Its `changes` are a delta
//! from the empty catalog.

use crate::id::ManifestHash;
use crate::manifest::{Extension, Manifest};
use serde::{Deserialize, Serialize};

/// The extension kind that marks a rebase snapshot.
pub const EXTENSION_KIND: u32 = 2;
/// The version byte before the record's postcard body.
pub const VERSION: u8 = 1;

/// What a rebase snapshot says of itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rebase {
    /// The manifest hash of the stream's bundle at the snapshot's sequence,
    /// whose catalog the snapshot carries.
    pub of: ManifestHash,
}

/// Why a rebase record is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RebaseError {
    /// More than one kind-2 record.
    #[error("the manifest carries two rebase records")]
    Twice,
    /// A version this reader does not know.
    #[error("rebase record version {0} is not supported (this reader knows version 1)")]
    Version(u8),
    /// Not marked critical (an older reader would misapply it).
    #[error("the rebase record is not marked critical")]
    NotCritical,
    /// The body does not decode.
    #[error("the rebase record does not decode")]
    Body,
}

impl Rebase {
    /// The manifest extension that carries it.
    pub fn extension(&self) -> Extension {
        let mut data = vec![VERSION];
        data.extend(postcard::to_stdvec(self).expect("a rebase record always serializes"));
        Extension {
            kind: EXTENSION_KIND,
            critical: true,
            data,
        }
    }
}

/// The rebase record of `m`, if it is a rebase snapshot.
pub fn rebase(m: &Manifest) -> Result<Option<Rebase>, RebaseError> {
    let Some(ext) = m
        .extension(EXTENSION_KIND)
        .map_err(|_| RebaseError::Twice)?
    else {
        return Ok(None);
    };
    if !ext.critical {
        return Err(RebaseError::NotCritical);
    }
    match ext.data.split_first() {
        Some((&VERSION, body)) => {
            let (r, rest) = postcard::take_from_bytes(body).map_err(|_| RebaseError::Body)?;
            if rest.is_empty() {
                Ok(Some(r))
            } else {
                Err(RebaseError::Body)
            }
        }
        Some((&v, _)) => Err(RebaseError::Version(v)),
        None => Err(RebaseError::Body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(extensions: Vec<Extension>) -> Manifest {
        Manifest {
            stream: crate::id::StreamId([1; 16]),
            sequence: 5,
            previous: Some(ManifestHash([9; 32])),
            created: 0,
            expires: 0,
            chunking: crate::chunking::ChunkParams::DEFAULT,
            sources: Default::default(),
            changes: vec![],
            chunks: vec![],
            volumes: vec![],
            totals: Default::default(),
            producer: String::new(),
            extensions,
        }
    }

    #[test]
    fn a_rebase_record_round_trips_and_bad_ones_are_named() {
        let r = Rebase {
            of: ManifestHash([7; 32]),
        };
        assert_eq!(rebase(&manifest(vec![r.extension()])), Ok(Some(r)));
        assert_eq!(rebase(&manifest(vec![])), Ok(None));
        assert_eq!(
            rebase(&manifest(vec![r.extension(), r.extension()])),
            Err(RebaseError::Twice)
        );
        let mut v2 = r.extension();
        v2.data[0] = 2;
        assert_eq!(rebase(&manifest(vec![v2])), Err(RebaseError::Version(2)));
        let mut soft = r.extension();
        soft.critical = false;
        assert_eq!(rebase(&manifest(vec![soft])), Err(RebaseError::NotCritical));
        let mut long = r.extension();
        long.data.push(0);
        assert_eq!(rebase(&manifest(vec![long])), Err(RebaseError::Body));
    }
}
