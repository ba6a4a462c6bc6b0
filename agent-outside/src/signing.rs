//! Signing apart from exporting: `export --unsigned`, `sign`, `publish`.
//!
//! `export` parses upstream data (indexes, archives, registries) from the
//! internet. With `export --unsigned` (or `[export] sign = "separate"`) it
//! never opens `signing.key`: it writes the bundle with an unsigned manifest
//! file (`manifest.unsigned`, under its own magic, which no reader takes for
//! a manifest) and the ledger records that the sequence awaits its
//! signature. `sign` (no ledger, no sources: runnable on another machine with
//! only the key and the bundle) checks the bundle against its manifest body,
//! shows what it signs and writes `manifest.ferry` atomically. `publish` (or
//! the next `export`, which publishes a signed bundle first) checks that the
//! signed manifest is a valid signature of exactly the unsigned file the
//! ledger recorded, by this outside's key when `signing.pub` is there, moves
//! the record into the stream and copies the bundle to media.
//!
//! The chain: a bundle's successor names its manifest hash, which exists
//! only once it is signed. So while a bundle awaits its signature, `export`
//! refuses to build another ([`SigningError::AwaitingSignature`]); `discard`
//! drops the waiting bundle instead.

use crate::layout::Layout;
use crate::ledger::{BundleRecord, Ledger};
use anyhow::{Context, Result};
use ferry_agent_common::fsx;
use ferry_agent_common::media::{MANIFEST_FILE, UNSIGNED_MANIFEST_FILE};
use ferry_protocol::catalog::Change;
use ferry_protocol::codec;
use ferry_protocol::id::ManifestHash;
use ferry_protocol::keys::{PublicKey, SecretKey};
use ferry_protocol::limits::ReceiverLimits;
use ferry_protocol::manifest::{self, Manifest, UnsignedManifest};
use ferry_protocol::volume;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The decisions of signing apart, as types.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SigningError {
    /// An export while the last one still awaits its signature.
    #[error("bundle {sequence} ({}) was exported unsigned and awaits its signature: sign it (`ferry-out sign {} --key FILE`) and publish it (`ferry-out publish --to DIR`), or drop it (`ferry-out discard`), before the next export", dir.display(), dir.display())]
    AwaitingSignature {
        /// Its sequence.
        sequence: u64,
        /// Its kept directory.
        dir: PathBuf,
    },
    /// `sign` on a directory without an unsigned manifest.
    #[error("{} holds no unsigned bundle ({UNSIGNED_MANIFEST_FILE} is missing)", dir.display())]
    NotUnsigned {
        /// The directory.
        dir: PathBuf,
    },
    /// `sign` on a bundle already signed.
    #[error("bundle {} is signed already ({MANIFEST_FILE} exists)", dir.display())]
    AlreadySigned {
        /// The bundle directory.
        dir: PathBuf,
    },
    /// The unsigned bundle is not what its manifest body describes.
    #[error("unsigned bundle {} does not match its manifest; not signing it: {source}", dir.display())]
    Inconsistent {
        /// The bundle directory.
        dir: PathBuf,
        /// What is wrong.
        #[source]
        source: ferry_protocol::Error,
    },
    /// `publish` before `sign`.
    #[error("bundle {sequence} is not signed yet: {} has no {MANIFEST_FILE} (run `ferry-out sign {} --key FILE`)", dir.display(), dir.display())]
    NotSigned {
        /// Its sequence.
        sequence: u64,
        /// Its kept directory.
        dir: PathBuf,
    },
    /// The signed manifest does not verify.
    #[error("the signed manifest of bundle {sequence} does not verify: {source}")]
    BadSignature {
        /// Its sequence.
        sequence: u64,
        /// Why.
        #[source]
        source: ferry_protocol::Error,
    },
    /// The signed manifest signs another body than the one exported.
    #[error("the signed manifest of bundle {sequence} is not a signature of the bundle exported (its body differs from the unsigned manifest the ledger recorded)")]
    NotThisBundle {
        /// Its sequence.
        sequence: u64,
    },
    /// Signed by a key other than this outside's.
    #[error("bundle {sequence} is signed by key {found}, but this outside's key (signing.pub) is {expected}")]
    SignerMismatch {
        /// Its sequence.
        sequence: u64,
        /// The key of `signing.pub`.
        expected: String,
        /// The key that signed.
        found: String,
    },
}

/// What `sign` signed.
#[derive(Debug)]
pub struct Signed {
    /// The bundle directory.
    pub dir: PathBuf,
    /// The manifest body signed.
    pub manifest: Manifest,
    /// The signed manifest's hash.
    pub hash: ManifestHash,
    /// The key that signed.
    pub signer: PublicKey,
}

impl Signed {
    /// What was signed, for the operator to read: sequence, stream, counts, sources.
    pub fn describe(&self) -> String {
        let m = &self.manifest;
        let (puts, removes) = m.changes.iter().fold((0, 0), |(p, r), c| match c {
            Change::Put { .. } => (p + 1, r),
            _ => (p, r + 1),
        });
        let sources: Vec<String> = m
            .sources
            .iter()
            .map(|(n, k)| format!("{n} ({k:?})"))
            .collect();
        format!(
            "signed bundle {seq} of stream {stream} ({dir}) with key {key}\n  \
             previous {prev}; created {created}, expires {expires}\n  \
             {puts} objects put, {removes} removed; catalog {objects} objects, {bytes} bytes\n  \
             {chunks} chunks ({raw} bytes uncompressed) in {vols} volumes ({vbytes} bytes)\n  \
             sources: {sources}\n  manifest hash {hash}",
            seq = m.sequence,
            stream = m.stream,
            dir = self.dir.display(),
            key = self.signer.to_text(),
            prev = m.previous.map_or("none".into(), |h| h.to_string()),
            created = ferry_agent_common::format_time(m.created),
            expires = ferry_agent_common::format_time(m.expires),
            objects = m.totals.objects,
            bytes = m.totals.catalog_bytes,
            chunks = m.chunks.len(),
            raw = m.totals.chunk_raw_bytes,
            vols = m.volumes.len(),
            vbytes = m.totals.volume_bytes,
            sources = sources.join(", "),
            hash = self.hash,
        )
    }
}

/// The bundles under `dir` that wait for a signature: `dir` itself if it
/// holds an unsigned manifest, else each direct subdirectory that holds one
/// and no signed manifest. Sorted.
pub fn unsigned_bundles(dir: &Path) -> Result<Vec<PathBuf>> {
    if dir.join(UNSIGNED_MANIFEST_FILE).exists() || dir.join(MANIFEST_FILE).exists() {
        return Ok(vec![dir.to_path_buf()]);
    }
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let p = e?.path();
        let hidden = p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if !hidden && p.join(UNSIGNED_MANIFEST_FILE).is_file() && !p.join(MANIFEST_FILE).exists() {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// Reads a secret key file.
pub fn load_key(path: &Path) -> Result<SecretKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read signing key {}", path.display()))?;
    SecretKey::from_text(&text).with_context(|| format!("signing key {}", path.display()))
}

/// Checks the unsigned bundle in `dir` (the manifest body as a receiver
/// checks one, every volume's size and hash, every chunk against its id),
/// signs it with `key` and writes its manifest file atomically.
pub fn sign(dir: &Path, key: &SecretKey) -> Result<Signed> {
    if std::fs::symlink_metadata(dir.join(MANIFEST_FILE)).is_ok() {
        return Err(SigningError::AlreadySigned { dir: dir.into() }.into());
    }
    let path = dir.join(UNSIGNED_MANIFEST_FILE);
    let limits = ReceiverLimits::default();
    let mut file = Vec::new();
    match std::fs::File::open(&path) {
        Ok(f) => f
            .take(limits.max_manifest_bytes + 1)
            .read_to_end(&mut file)
            .with_context(|| format!("cannot read {}", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(SigningError::NotUnsigned { dir: dir.into() }.into())
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("cannot open {}", path.display())))
        }
    };
    let inconsistent = |source| SigningError::Inconsistent {
        dir: dir.into(),
        source,
    };
    let mut unsigned = UnsignedManifest::parse(&file, &limits).map_err(inconsistent)?;
    name_chunks(dir, &mut unsigned).map_err(inconsistent)?;
    check_volumes(dir, unsigned.manifest.manifest().map_err(inconsistent)?)
        .map_err(inconsistent)?;
    let signed = unsigned.sign(key).map_err(inconsistent)?;
    let manifest = unsigned.manifest.into_manifest().map_err(inconsistent)?;
    fsx::write_atomic(&dir.join(MANIFEST_FILE), &signed)?;
    fsx::sync_dir(dir)?;
    Ok(Signed {
        dir: dir.into(),
        manifest,
        hash: ManifestHash::of(&signed),
        signer: key.public(),
    })
}

/// Every volume of `m` in `dir`: size and hash, then every chunk it holds
/// decoded and checked against its id.
/// Names the chunks a version-4 unsigned manifest lists without ids, from
/// the volumes in `dir` (each must be the whole of its object), then checks
/// the body is in the writer's form.
fn name_chunks(dir: &Path, u: &mut UnsignedManifest) -> Result<(), ferry_protocol::Error> {
    let mut ids = Vec::new();
    for t in u.manifest.to_name() {
        let path = dir.join(volume::file_name(t.place.volume));
        let bad = |e: std::io::Error| ferry_protocol::Error::BadVolume {
            index: t.place.volume,
            why: format!("{}: {e}", path.display()),
        };
        let f = std::fs::File::open(&path).map_err(bad)?;
        let mut stored = vec![0; t.place.stored_len as usize];
        f.read_exact_at(&mut stored, t.place.offset).map_err(bad)?;
        let (id, _) =
            codec::decode_whole(&t.sha256, &t.key, t.place.codec, &stored, t.place.raw_len)?;
        ids.push(id);
    }
    if !u.manifest.is_named() {
        u.name(&ids)?;
    }
    Ok(())
}

fn check_volumes(dir: &Path, m: &Manifest) -> Result<(), ferry_protocol::Error> {
    for (i, entry) in m.volumes.iter().enumerate() {
        let index = i as u32;
        let path = dir.join(volume::file_name(index));
        let bad = |e: std::io::Error| ferry_protocol::Error::BadVolume {
            index,
            why: format!("{}: {e}", path.display()),
        };
        let f = std::fs::File::open(&path).map_err(bad)?;
        volume::verify(std::io::BufReader::new(&f), index, entry)?;
        for c in m.chunks.iter().filter(|c| c.volume == index) {
            let mut stored = vec![0; c.stored_len as usize];
            f.read_exact_at(&mut stored, c.offset).map_err(bad)?;
            codec::decode(&c.id, c.codec, &stored, c.raw_len)?;
        }
    }
    Ok(())
}

/// Moves the bundle awaiting its signature into the stream once it is
/// signed: the signed manifest must verify, sign exactly the unsigned file
/// the ledger recorded, and (when `signing.pub` is kept) be signed by this
/// outside's key. Returns its record, or `None` when nothing waits.
/// [`SigningError::NotSigned`] when it is not signed yet.
pub fn publish(layout: &Layout, ledger: &Ledger) -> Result<Option<BundleRecord>> {
    let Some(pending) = ledger.awaiting_signature()? else {
        return Ok(None);
    };
    let sequence = pending.sequence;
    let dir = layout.bundle(&pending.dir_name);
    let path = dir.join(MANIFEST_FILE);
    let signed = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(SigningError::NotSigned { sequence, dir }.into())
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("cannot read {}", path.display())))
        }
    };
    let (unsigned, signer) = manifest::strip_signature(&signed)
        .map_err(|source| SigningError::BadSignature { sequence, source })?;
    if ManifestHash::of(&unsigned) != pending.hash {
        return Err(SigningError::NotThisBundle { sequence }.into());
    }
    check_signer(layout, sequence, signer)?;
    let record = BundleRecord {
        hash: ManifestHash::of(&signed),
        bytes: pending.bytes - unsigned.len() as u64 + signed.len() as u64,
        ..pending
    };
    let leftover = dir.join(UNSIGNED_MANIFEST_FILE);
    if leftover.exists() {
        std::fs::remove_file(&leftover)
            .with_context(|| format!("cannot remove {}", leftover.display()))?;
        fsx::sync_dir(&dir)?;
    }
    ledger.commit_signed(&record)?;
    Ok(Some(record))
}

/// Checks the signed manifest in `dir` against its unsigned one (the very
/// file signed, nothing else changed) and, when `signing.pub` is kept,
/// that this outside's key signed it: what `publish` checks of a bundle,
/// for a rebase snapshot signed apart.
pub fn check_signed(layout: &Layout, dir: &Path) -> Result<()> {
    let read = |name: &str| {
        let p = dir.join(name);
        std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))
    };
    let (signed, unsigned) = (read(MANIFEST_FILE)?, read(UNSIGNED_MANIFEST_FILE)?);
    let sequence = manifest::peek_unverified(&signed).map_or(0, |(_, m)| m.head().sequence);
    let (stripped, signer) = manifest::strip_signature(&signed)
        .map_err(|source| SigningError::BadSignature { sequence, source })?;
    if stripped != unsigned {
        return Err(SigningError::NotThisBundle { sequence }.into());
    }
    check_signer(layout, sequence, signer)
}

/// [`SigningError::SignerMismatch`] unless `signer` is the key of
/// `signing.pub` (no check when it is not kept).
fn check_signer(layout: &Layout, sequence: u64, signer: PublicKey) -> Result<()> {
    let pub_path = layout.signing_pub();
    if !pub_path.exists() {
        return Ok(());
    }
    let text = std::fs::read_to_string(&pub_path)
        .with_context(|| format!("cannot read {}", pub_path.display()))?;
    let expected = PublicKey::from_text(text.trim())
        .with_context(|| format!("public key {}", pub_path.display()))?;
    if expected != signer {
        return Err(SigningError::SignerMismatch {
            sequence,
            expected: expected.to_text(),
            found: signer.to_text(),
        }
        .into());
    }
    Ok(())
}

/// [`publish`], but `None` also while the waiting bundle is not signed yet.
pub fn publish_if_signed(layout: &Layout, ledger: &Ledger) -> Result<Option<BundleRecord>> {
    match ledger.awaiting_signature()? {
        Some(p) if layout.bundle(&p.dir_name).join(MANIFEST_FILE).exists() => {
            publish(layout, ledger)
        }
        _ => Ok(None),
    }
}

/// Drops the bundle awaiting its signature: its record, catalog and kept
/// directory. Returns its sequence, or `None` when nothing waits.
pub fn discard(layout: &Layout, ledger: &Ledger) -> Result<Option<u64>> {
    let Some(rec) = ledger.discard_unsigned()? else {
        return Ok(None);
    };
    fsx::remove_dir_if_exists(&layout.bundle(&rec.dir_name))?;
    Ok(Some(rec.sequence))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Commit;
    use ferry_protocol::builder::{BundleBuilder, PackOptions, Position, Stamp, VolumeSink};
    use ferry_protocol::catalog::{Catalog, Object, SourceKind};
    use ferry_protocol::id::StreamId;
    use ferry_protocol::path::ObjectKey;
    use std::collections::HashSet;

    struct Files(PathBuf);

    impl VolumeSink for Files {
        type Writer = std::fs::File;
        fn create(&mut self, index: u32) -> std::io::Result<std::fs::File> {
            std::fs::File::create(self.0.join(volume::file_name(index)))
        }
        fn close(&mut self, _: u32, _: std::fs::File) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// An unsigned bundle 1 in `layout`'s bundles, recorded in `ledger` as
    /// awaiting its signature; returns its directory.
    fn unsigned_bundle(layout: &Layout, ledger: &Ledger) -> PathBuf {
        let dir = layout.bundle("bundle-test-00000001");
        std::fs::create_dir_all(&dir).unwrap();
        let position = Position {
            stream: StreamId([5; 16]),
            sequence: 1,
            previous: None,
        };
        let opts = PackOptions {
            volume_size: 1 << 20,
            level: 3,
        };
        let mut b = BundleBuilder::new(position, opts, Files(dir.clone()));
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let f = b.add_file(&data[..], false, &HashSet::new()).unwrap();
        let mut next = Catalog::default();
        next.sources.insert("s".into(), SourceKind::Files);
        let key = ObjectKey {
            source: "s".into(),
            path: "a".into(),
        };
        next.objects.insert(key, Object::File(f));
        let stamp = Stamp {
            created: 1,
            expires: 2,
            producer: "test".into(),
            extensions: vec![],
        };
        let u = b
            .finish_unsigned(&Catalog::default(), &next, stamp)
            .unwrap();
        std::fs::write(dir.join(UNSIGNED_MANIFEST_FILE), &u.file).unwrap();
        let record = BundleRecord {
            sequence: 1,
            created: 1,
            expires: 2,
            hash: ManifestHash::of(&u.file),
            dir_name: "bundle-test-00000001".into(),
            bytes: u.file.len() as u64 + u.manifest.totals.volume_bytes,
            chunks: u.manifest.chunks.len() as u64,
            chunk_raw_bytes: u.manifest.totals.chunk_raw_bytes,
            added: 1,
            changed: 0,
            removed: 0,
            objects: 1,
            catalog_bytes: 200_000,
            written: false,
        };
        ledger
            .commit_unsigned(&Commit {
                record: &record,
                sources: &next.sources,
                changes: &crate::export::ChangeSet::in_memory(
                    ferry_protocol::catalog::Changes::from_list(
                        next.sources.clone(),
                        Catalog::default().diff(&next),
                    ),
                ),
                sums: ferry_protocol::catalog::Sums::of(next.objects.values()),
                shipped: &[],
                scan: &[],
            })
            .unwrap();
        dir
    }

    fn variant(e: anyhow::Error) -> SigningError {
        e.downcast::<SigningError>().expect("a SigningError")
    }

    #[test]
    fn sign_checks_the_bundle_and_publish_checks_the_signature() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path());
        let ledger = Ledger::open(&layout).unwrap();
        let dir = unsigned_bundle(&layout, &ledger);
        let ours = SecretKey::from_seed([1; 32]);
        let theirs = SecretKey::from_seed([2; 32]);
        std::fs::write(layout.signing_pub(), ours.public().to_text()).unwrap();

        assert!(matches!(
            variant(publish(&layout, &ledger).unwrap_err()),
            SigningError::NotSigned { sequence: 1, .. }
        ));
        assert!(matches!(
            variant(sign(tmp.path(), &ours).unwrap_err()),
            SigningError::NotUnsigned { .. }
        ));
        let vol = dir.join(volume::file_name(0));
        let good = std::fs::read(&vol).unwrap();
        let mut bad = good.clone();
        bad[good.len() - 10] ^= 1;
        std::fs::write(&vol, &bad).unwrap();
        assert!(matches!(
            variant(sign(&dir, &ours).unwrap_err()),
            SigningError::Inconsistent {
                source: ferry_protocol::Error::BadVolume { index: 0, .. },
                ..
            }
        ));
        assert!(!dir.join(MANIFEST_FILE).exists());
        std::fs::write(&vol, &good).unwrap();

        // Another key's signature is refused; so is a valid signature of another body.
        sign(&dir, &theirs).unwrap();
        assert!(matches!(
            variant(sign(&dir, &ours).unwrap_err()),
            SigningError::AlreadySigned { .. }
        ));
        assert!(matches!(
            variant(publish(&layout, &ledger).unwrap_err()),
            SigningError::SignerMismatch { sequence: 1, .. }
        ));
        let unsigned = std::fs::read(dir.join(UNSIGNED_MANIFEST_FILE)).unwrap();
        let mut other = UnsignedManifest::parse(&unsigned, &ReceiverLimits::default())
            .unwrap()
            .manifest
            .into_manifest()
            .unwrap();
        other.producer = "someone else".into();
        std::fs::write(dir.join(MANIFEST_FILE), other.sign(&ours)).unwrap();
        assert!(matches!(
            variant(publish(&layout, &ledger).unwrap_err()),
            SigningError::NotThisBundle { sequence: 1 }
        ));
        let mut forged = std::fs::read(dir.join(MANIFEST_FILE)).unwrap();
        forged[20] ^= 1;
        std::fs::write(dir.join(MANIFEST_FILE), forged).unwrap();
        assert!(matches!(
            variant(publish(&layout, &ledger).unwrap_err()),
            SigningError::BadSignature { sequence: 1, .. }
        ));

        std::fs::remove_file(dir.join(MANIFEST_FILE)).unwrap();
        let signed = sign(&dir, &ours).unwrap();
        let r = publish(&layout, &ledger).unwrap().expect("published");
        assert_eq!(r.hash, signed.hash);
        assert_eq!(ledger.head().unwrap().hash, Some(signed.hash));
        assert!(!dir.join(UNSIGNED_MANIFEST_FILE).exists());
        assert!(publish(&layout, &ledger).unwrap().is_none());
    }
}
