//! The published layout's small files: the generation manifest
//! (`gens/<G>.json`) and the `current` pointer (docs/publish.md).

use ferry_protocol::catalog::SourceKind;
use ferry_protocol::id::Sha256;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The layout's version, in every manifest and in `current`.
pub const FORMAT: u32 = 1;
/// The pointer's key.
pub const CURRENT: &str = "current";

/// The key of the object with SHA-256 `sha`.
pub fn object_key(sha: &Sha256) -> String {
    let hex = sha.to_hex();
    format!("objects/{}/{hex}", &hex[..2])
}

/// The key of the index file with SHA-256 `sha`.
pub fn index_key(sha: &Sha256) -> String {
    format!("index/{}", sha.to_hex())
}

/// The key of generation `name`'s manifest.
pub fn manifest_key(name: &str) -> String {
    format!("gens/{name}.json")
}

/// A file named by its SHA-256.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blob {
    /// SHA-256 of its bytes (lower-case hex in JSON).
    #[serde(with = "hex_sha")]
    pub sha256: Sha256,
    /// Its size in bytes.
    pub size: u64,
}

/// A generation's two path index files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexFiles {
    /// `index/<sha256>`: every key of some earlier generation.
    pub base: Blob,
    /// `index/<sha256>`: the keys put or removed since that base.
    pub delta: Blob,
}

/// `gens/<G>.json`: what a front end needs to serve generation G.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    /// The generation's name (as on the inside).
    pub generation: String,
    /// Its sources and their kinds (`files`, `apt`, `pypi`, …).
    pub sources: BTreeMap<String, SourceKind>,
    /// How many keys (files and links) it holds.
    pub objects: u64,
    /// The bytes of its files.
    pub bytes: u64,
    /// Its path index.
    pub index: IndexFiles,
    /// The stores' derived files (`apt-site/<source>/<path>`,
    /// `pypi-meta/<source>/<path>`), each an object under `objects/`.
    pub derived: BTreeMap<String, Blob>,
}

/// `current`: the generation front ends serve.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Current {
    /// [`FORMAT`].
    pub format: u32,
    /// The generation's name.
    pub generation: String,
    /// Its manifest's key (relative to the prefix).
    pub manifest: String,
    /// The SHA-256 of the manifest's bytes.
    #[serde(with = "hex_sha")]
    pub manifest_sha256: Sha256,
}

mod hex_sha {
    use ferry_protocol::id::Sha256;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(s: &Sha256, ser: S) -> Result<S::Ok, S::Error> {
        ser.serialize_str(&s.to_hex())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Sha256, D::Error> {
        let s = String::deserialize(de)?;
        if s.len() != 64 {
            return Err(serde::de::Error::custom("a SHA-256 is 64 hex digits"));
        }
        Sha256::from_hex(&s).ok_or_else(|| serde::de::Error::custom("a SHA-256 is 64 hex digits"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_json_are_as_documented() {
        let sha = Sha256::of(b"x");
        let hex = sha.to_hex();
        assert_eq!(object_key(&sha), format!("objects/{}/{hex}", &hex[..2]));
        assert_eq!(index_key(&sha), format!("index/{hex}"));
        assert_eq!(manifest_key("G"), "gens/G.json");
        let cur = Current {
            format: FORMAT,
            generation: "G".into(),
            manifest: manifest_key("G"),
            manifest_sha256: sha,
        };
        let v: serde_json::Value = serde_json::to_value(&cur).unwrap();
        assert_eq!(v["manifest_sha256"], hex);
        let back: Current = serde_json::from_value(v).unwrap();
        assert_eq!(back, cur);
        let bad = serde_json::json!({"format": 1, "generation": "G", "manifest": "m", "manifest_sha256": "abc"});
        assert!(serde_json::from_value::<Current>(bad).is_err());
    }
}
