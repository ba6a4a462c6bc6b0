//! Identifiers: chunk ids, object digests, stream ids and manifest hashes.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! hex_id {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Lower-case hex form.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// Parses the lower- or upper-case hex form.
            pub fn from_hex(s: &str) -> Option<Self> {
                let mut out = [0u8; $len];
                hex::decode_to_slice(s, &mut out).ok()?;
                Some(Self(out))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }
    };
}

hex_id!(
    /// A chunk's id: the BLAKE3 hash of its uncompressed bytes.
    ChunkId,
    32
);
hex_id!(
    /// An object's digest: SHA-256 of its exact bytes, the digest upstream
    /// ecosystems (OCI, apt, PyPI) already publish and clients check.
    Sha256,
    32
);
hex_id!(
    /// A manifest's hash: BLAKE3 of the whole manifest file, signature included.
    /// Each manifest names its predecessor's hash, which makes the chain.
    ManifestHash,
    32
);
hex_id!(
    /// A stream: one outside agent's sequence of bundles, chosen at random when
    /// the outside state is created.
    StreamId,
    16
);

impl ChunkId {
    /// The id of these bytes.
    pub fn of(data: &[u8]) -> Self {
        ChunkId(*blake3::hash(data).as_bytes())
    }
}

impl ManifestHash {
    /// The hash of a whole manifest file.
    pub fn of(manifest_file: &[u8]) -> Self {
        ManifestHash(*blake3::hash(manifest_file).as_bytes())
    }
}

impl Sha256 {
    /// The SHA-256 of these bytes.
    pub fn of(data: &[u8]) -> Self {
        use sha2::Digest;
        Sha256(sha2::Sha256::digest(data).into())
    }
}

/// Incremental SHA-256, for objects too large to hold in memory.
#[derive(Default, Clone)]
pub struct Sha256Hasher(sha2::Sha256);

impl Sha256Hasher {
    /// A fresh hasher.
    pub fn new() -> Self {
        Self::default()
    }
    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        use sha2::Digest;
        self.0.update(data);
    }
    /// The digest of everything fed.
    pub fn finish(self) -> Sha256 {
        use sha2::Digest;
        Sha256(self.0.finalize().into())
    }
}

/// A reader that feeds what it reads to a [`Sha256Hasher`] and counts it.
pub struct Sha256Reader<R> {
    /// What is read.
    pub inner: R,
    /// What was read so far, hashed.
    pub hasher: Sha256Hasher,
    /// Bytes read so far.
    pub read: u64,
}

impl<R> Sha256Reader<R> {
    /// A reader of `inner` hashing with `hasher` (a fresh one, or one that
    /// has hashed what came before).
    pub fn new(inner: R, hasher: Sha256Hasher) -> Self {
        Sha256Reader {
            inner,
            hasher,
            read: 0,
        }
    }
}

impl<R: std::io::Read> std::io::Read for Sha256Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

/// A writer that feeds what it writes to a BLAKE3 hasher and counts it.
pub struct Blake3Writer<W> {
    /// Where the bytes go.
    pub inner: W,
    /// What was written so far, hashed.
    pub hasher: blake3::Hasher,
    /// Bytes written so far.
    pub written: u64,
}

impl<W> Blake3Writer<W> {
    /// A writer to `inner`, hashing from nothing.
    pub fn new(inner: W) -> Self {
        Blake3Writer {
            inner,
            hasher: blake3::Hasher::new(),
            written: 0,
        }
    }
}

impl<W: std::io::Write> std::io::Write for Blake3Writer<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let id = ChunkId::of(b"hello");
        assert_eq!(ChunkId::from_hex(&id.to_hex()), Some(id));
        assert_eq!(ChunkId::from_hex("zz"), None);
        assert_eq!(ChunkId::from_hex(&id.to_hex()[..10]), None);
    }

    #[test]
    fn sha256_known_answer() {
        assert_eq!(
            Sha256::of(b"abc").to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let mut h = Sha256Hasher::new();
        h.update(b"a");
        h.update(b"bc");
        assert_eq!(h.finish(), Sha256::of(b"abc"));
    }
}
