//! `export --rebase`: a rebase snapshot (bundle-format §17) of the stream's
//! head, for a new or rebuilt inside that lacks the bundles before it.
//!
//! The sources are read again, every object whole (no scan cache, no patch,
//! nothing counted as held), into the head's catalog: if any object's
//! content differs from the head's (the sources moved on since the last
//! export), the snapshot is refused and a normal export comes first. The
//! bundle has the head's sequence and predecessor, a delta from the empty
//! catalog carrying every chunk, and the critical rebase record naming the
//! head's manifest hash. It is not a bundle of the stream's ledger: the
//! stream goes on from the head as before.
//!
//! Signing apart (`--unsigned`), the snapshot waits in `STATE/bundles/`
//! with its unsigned manifest, like a bundle: `ferry-out sign` signs it
//! there (or a copy on the signing host), and `publish --to MEDIA` checks
//! the signature and writes it out ([`publish_snapshots`]).

use super::scanner::{scan_and_pack, Counted};
use super::{check_none_awaits_signature, ExportOptions};
use crate::delta::DeltaOptions;
use crate::layout::Layout;
use crate::ledger::{Last, Ledger};
use crate::source::Source;
use anyhow::{Context, Result};
use ferry_agent_common::{fsx, media};
use ferry_protocol::builder::Position;
use ferry_protocol::catalog::{Catalog, Changes, Object, Sums};
use ferry_protocol::keys::SecretKey;
use ferry_protocol::path::ObjectKey;
use ferry_protocol::rebase::Rebase;
use std::collections::HashSet;
use std::path::PathBuf;

/// Why a rebase snapshot cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum RebaseError {
    /// Nothing exported yet: bundle 1 already carries everything.
    #[error("nothing has been exported yet; the first bundle already carries everything")]
    NothingExported,
    /// The sources no longer give the head's catalog.
    #[error("the sources changed since bundle {sequence} ({key}: {what}); run `ferry-out export` first, then `export --rebase`")]
    SourcesChanged {
        /// The head's sequence.
        sequence: u64,
        /// The first object that differs.
        key: String,
        /// How.
        what: &'static str,
    },
}

/// What `export_rebase` wrote.
pub struct Rebased {
    /// The sequence it snapshots (the head).
    pub sequence: u64,
    /// The snapshot's directory under `STATE/bundles/`.
    pub dir: PathBuf,
    /// Its bytes (manifest and volumes).
    pub bytes: u64,
    /// Objects in it.
    pub objects: u64,
}

/// Writes the rebase snapshot of the head, made at `now`: signed with
/// `key`, or unsigned for `ferry-out sign` without one.
pub fn export_rebase(
    layout: &Layout,
    ledger: &Ledger,
    key: Option<&SecretKey>,
    sources: &[Box<dyn Source>],
    opts: &ExportOptions,
    now: u64,
) -> Result<Rebased> {
    check_none_awaits_signature(layout, ledger)?;
    let head = ledger.head()?;
    let (Some(of), sequence) = (head.hash, head.sequence) else {
        return Err(RebaseError::NothingExported.into());
    };
    let previous = match sequence {
        1 => None,
        s => ledger
            .bundles()?
            .into_iter()
            .find(|r| r.sequence == s - 1)
            .map(|r| r.hash),
    };
    let position = Position {
        stream: ledger.stream()?,
        sequence,
        previous,
    };
    let whole = ExportOptions {
        volume_size: opts.volume_size,
        level: opts.level,
        expires_in: opts.expires_in,
        delta: DeltaOptions {
            level: None,
            ..opts.delta
        },
        puts_held: opts.puts_held,
        media: None,
    };
    let tmp = layout.export_tmp();
    fsx::remove_dir_if_exists(&tmp)?;
    std::fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let result = (|| -> Result<Rebased> {
        // Nothing counted as held: not even what inventories name.
        let (reship, adopted) = (HashSet::new(), Default::default());
        let counted = Counted {
            reship: &reship,
            adopted: &adopted,
        };
        let (_, changes, builder) = scan_and_pack(
            layout,
            &Last::empty(),
            position,
            counted,
            sources,
            &whole,
            None,
        )?;
        // Against an empty catalog, every object is a change; a snapshot
        // is compared with the head's whole catalog, in memory.
        let scanned = Catalog {
            sources: changes.sources,
            objects: changes.puts.into_map()?,
        };
        same_content(sequence, &ledger.catalog(sequence)?, &scanned)?;
        let mark = Some(Rebase { of }.extension());
        let stamp = super::stamp(layout, sequence, sources, mark, (now, opts.expires_in))?;
        let sums = Sums::of(scanned.objects.values());
        // The manifest of the change from the empty catalog: every object put.
        let changes = super::ChangeSet::in_memory(Changes {
            sources: scanned.sources,
            puts: scanned.objects,
            removes: Vec::new(),
        });
        let signing = key.map_or(super::Signing::Separate, super::Signing::Now);
        let (manifest, file) =
            super::write_manifest(&tmp, builder, &changes, (sums, stamp), signing)
                .with_context(|| format!("rebase snapshot of bundle {sequence}"))?;
        Ok(Rebased {
            sequence,
            dir: PathBuf::new(),
            bytes: file.len() as u64 + manifest.totals.volume_bytes,
            objects: manifest.totals.objects,
        })
    })();
    let mut rebased = result.inspect_err(|_| {
        let _ = fsx::remove_dir_if_exists(&tmp);
    })?;
    let dir = layout.bundle(&media::rebase_dir_name(position.stream, sequence));
    fsx::remove_dir_if_exists(&dir)?;
    std::fs::create_dir_all(layout.bundles())?;
    std::fs::rename(&tmp, &dir)
        .with_context(|| format!("cannot rename the snapshot into {}", dir.display()))?;
    fsx::sync_dir(&layout.bundles())?;
    rebased.dir = dir;
    Ok(rebased)
}

/// Checks that `scanned` holds the same objects, with the same content, as
/// the head's catalog `head` (encodings may differ: the snapshot carries
/// every object whole).
fn same_content(sequence: u64, head: &Catalog, scanned: &Catalog) -> Result<(), RebaseError> {
    let changed = |key: &ObjectKey, what| RebaseError::SourcesChanged {
        sequence,
        key: key.to_string(),
        what,
    };
    for (key, o) in &head.objects {
        let same = match (o, scanned.objects.get(key)) {
            (_, None) => return Err(changed(key, "no longer at its source")),
            (Object::File(a), Some(Object::File(b))) => {
                a.sha256 == b.sha256 && a.size == b.size && a.executable == b.executable
            }
            (a, Some(b)) => a == b,
        };
        if !same {
            return Err(changed(key, "its content changed"));
        }
    }
    if let Some(key) = scanned
        .objects
        .keys()
        .find(|k| !head.objects.contains_key(k))
    {
        return Err(changed(key, "new at its source"));
    }
    if head.sources != scanned.sources {
        return Err(RebaseError::SourcesChanged {
            sequence,
            key: "the list of sources".into(),
            what: "changed",
        });
    }
    Ok(())
}

/// `ferry-out export --rebase`: writes the snapshot and copies it to `media`
/// (a directory: a snapshot is for one inside, never sent over a diode).
pub fn rebase_cmd(
    layout: &Layout,
    ledger: &Ledger,
    key: Option<&SecretKey>,
    sources: &[Box<dyn Source>],
    opts: &ExportOptions,
    media_dir: &std::path::Path,
) -> Result<()> {
    if media_dir.to_string_lossy().starts_with("diode://") {
        anyhow::bail!("export --rebase writes to a media directory, not a diode");
    }
    let r = export_rebase(
        layout,
        ledger,
        key,
        sources,
        opts,
        ferry_agent_common::now_unix(),
    )?;
    let name = r.dir.file_name().expect("a named directory").to_owned();
    if key.is_none() {
        println!(
            "rebase snapshot of bundle {} exported unsigned to {} ({} objects, {}); sign it with `ferry-out sign --key KEY {}`, then `ferry-out publish --to MEDIA` writes it out",
            r.sequence,
            r.dir.display(),
            r.objects,
            ferry_agent_common::units::human_bytes(r.bytes),
            layout.bundles().display()
        );
        return Ok(());
    }
    std::fs::create_dir_all(media_dir)
        .with_context(|| format!("cannot create media directory {}", media_dir.display()))?;
    fsx::copy_dir_atomic(&r.dir, &media_dir.join(&name), |_| {})
        .with_context(|| format!("cannot write the snapshot to {}", media_dir.display()))?;
    println!(
        "rebase snapshot of bundle {} written to {} ({} objects, {}); a new or rebuilt inside imports it (`ferry-in import --rebase` if it holds anything), then bundle {} on",
        r.sequence,
        media_dir.join(&name).display(),
        r.objects,
        ferry_agent_common::units::human_bytes(r.bytes),
        r.sequence + 1
    );
    Ok(())
}

/// `publish`: writes each rebase snapshot signed since `export --rebase
/// --unsigned` (its directory holds both manifests) to `media_dir`, once
/// its signature is checked like a bundle's (`signing::check_signed`);
/// its unsigned manifest is then removed, so it is written out once.
/// Returns the snapshots written (directory names).
pub fn publish_snapshots(layout: &Layout, media_dir: &std::path::Path) -> Result<Vec<String>> {
    let mut written = vec![];
    let Ok(rd) = std::fs::read_dir(layout.bundles()) else {
        return Ok(written);
    };
    let mut dirs: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("rebase-"))
                && p.join(media::MANIFEST_FILE).is_file()
                && p.join(media::UNSIGNED_MANIFEST_FILE).is_file()
        })
        .collect();
    dirs.sort();
    for dir in dirs {
        crate::signing::check_signed(layout, &dir)?;
        let leftover = dir.join(media::UNSIGNED_MANIFEST_FILE);
        std::fs::remove_file(&leftover)
            .with_context(|| format!("cannot remove {}", leftover.display()))?;
        fsx::sync_dir(&dir)?;
        let name = dir.file_name().expect("a named directory").to_owned();
        std::fs::create_dir_all(media_dir)
            .with_context(|| format!("cannot create media directory {}", media_dir.display()))?;
        fsx::copy_dir_atomic(&dir, &media_dir.join(&name), |_| {})
            .with_context(|| format!("cannot write the snapshot to {}", media_dir.display()))?;
        written.push(name.to_string_lossy().into_owned());
    }
    Ok(written)
}
