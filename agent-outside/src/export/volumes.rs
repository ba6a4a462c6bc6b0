//! Where an export's volumes are written: the bundle's directory in the
//! state, and, when the export writes to media, the bundle's directory on
//! the media as well, byte for byte as each volume is written
//! ([`MediaCopy`]).
//!
//! Writing the media's copy while the bundle is built overlaps it with the
//! scan: on a USB disk the copy after the export took as long again as a
//! large first export. The invariants are those of a copy made after:
//!
//! - The media's copy is written under a temporary name
//!   (`fsx::tmp_name`, `.NAME.tmp`, which nothing reading media takes for a
//!   bundle) and renamed to the bundle's name only by
//!   [`MediaCopy::publish`], called after the ledger's commit: the inside
//!   never sees a bundle the outside did not commit.
//! - Every file published is synced, then the directory, before the rename.
//! - A failure on the media's side (full, removed, an I/O error) never fails
//!   the export: the media's copy stops, the state's bundle is whole, and
//!   `publish` reports the failure so the caller copies the bundle again
//!   (which reports what is wrong with the media, as it always did). An
//!   export that fails, or a copy never published, removes the temporary
//!   directory.

use anyhow::{bail, Context, Result};
use ferry_agent_common::fsx;
use ferry_protocol::builder::VolumeSink;
use ferry_protocol::volume;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};

/// Buffer of each volume writer.
const BUFFER: usize = 1 << 20;

/// Volume files in the bundle directory being written, and on media.
pub(crate) struct VolumeFiles {
    /// The bundle's temporary directory in the state.
    pub(crate) dir: PathBuf,
    /// The copy on media, if the export writes to media.
    pub(crate) media: Option<Arc<MediaCopy>>,
}

/// One volume being written to the state (and media).
pub(crate) struct VolumeWriter {
    state: BufWriter<File>,
    media: Option<MediaVolume>,
}

impl Write for VolumeWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.state.write(buf)?;
        if let Some(m) = &mut self.media {
            if !m.push(&buf[..n]) {
                self.media = None;
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.state.flush()
    }
}

/// A volume's copy on media, written by a thread of its own: a slow media
/// (a USB disk) is written while the export goes on, its writes made
/// durable every [`SYNCED_EVERY`] bytes (so its writing starts then, not
/// at the end) and at the end.
struct MediaVolume {
    /// Bytes not sent yet.
    buf: Vec<u8>,
    tx: Option<mpsc::SyncSender<Vec<u8>>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
    copy: Arc<MediaCopy>,
    /// The volume's file on media, for messages.
    path: PathBuf,
}

/// Bytes of a message to a media writer, and how many it holds at most.
const SENT: usize = 1 << 20;
const QUEUED: usize = 8;
/// A media writer syncs its file each time it wrote this many bytes.
const SYNCED_EVERY: u64 = 32 << 20;

impl MediaVolume {
    fn start(path: PathBuf, copy: Arc<MediaCopy>) -> Option<MediaVolume> {
        let mut f = match File::create(&path) {
            Ok(f) => f,
            Err(e) => {
                copy.fail(&e, &path);
                return None;
            }
        };
        let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(QUEUED);
        let thread = std::thread::Builder::new()
            .name("ferry-media".into())
            .spawn(move || -> std::io::Result<()> {
                let mut unsynced = 0u64;
                for bytes in rx {
                    f.write_all(&bytes)?;
                    unsynced += bytes.len() as u64;
                    if unsynced >= SYNCED_EVERY {
                        f.sync_data()?;
                        unsynced = 0;
                    }
                }
                f.sync_all()
            });
        match thread {
            Ok(thread) => Some(MediaVolume {
                buf: Vec::with_capacity(SENT),
                tx: Some(tx),
                thread: Some(thread),
                copy,
                path,
            }),
            Err(e) => {
                copy.fail(&e, &path);
                None
            }
        }
    }

    /// Queues `bytes`; `false` once the copy failed (its error recorded).
    fn push(&mut self, bytes: &[u8]) -> bool {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() < SENT {
            return true;
        }
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(SENT));
        match self.tx.as_ref().map(|tx| tx.send(full)) {
            Some(Ok(())) => true,
            _ => {
                self.finish();
                false
            }
        }
    }

    /// Sends what is left, waits for the writer, records its error.
    fn finish(&mut self) {
        if let Some(tx) = self.tx.take() {
            if !self.buf.is_empty() {
                let _ = tx.send(std::mem::take(&mut self.buf));
            }
        }
        let Some(thread) = self.thread.take() else {
            return;
        };
        let result = thread
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the media writer panicked")));
        if let Err(e) = result {
            self.copy.fail(&e, &self.path);
        }
    }
}

impl Drop for MediaVolume {
    fn drop(&mut self) {
        self.finish();
    }
}

impl VolumeSink for VolumeFiles {
    type Writer = VolumeWriter;

    fn create(&mut self, index: u32) -> std::io::Result<VolumeWriter> {
        let f = File::create(self.dir.join(volume::file_name(index)))?;
        let media = match &self.media {
            Some(copy) if !copy.has_failed() => {
                MediaVolume::start(copy.tmp.join(volume::file_name(index)), Arc::clone(copy))
            }
            _ => None,
        };
        Ok(VolumeWriter {
            state: BufWriter::with_capacity(BUFFER, f),
            media,
        })
    }

    fn close(&mut self, _index: u32, w: VolumeWriter) -> std::io::Result<()> {
        let VolumeWriter { state, media } = w;
        let mut f = state.into_inner().map_err(|e| e.into_error())?;
        f.flush()?;
        f.sync_all()?;
        // The media's copy last: its writer may still be behind.
        drop(media);
        Ok(())
    }
}

/// A bundle's copy on media, written as it is built, under a temporary
/// name until [`MediaCopy::publish`] (see the module's invariants).
pub struct MediaCopy {
    /// The bundle's directory on media.
    to: PathBuf,
    /// Its temporary name, being written.
    tmp: PathBuf,
    /// What stopped the copy, if something did.
    failed: Mutex<Option<String>>,
    /// Whether `publish` renamed it (else dropping it removes `tmp`).
    published: AtomicBool,
    /// The directories `start` made to hold it, deepest first: removed
    /// again (when empty) if it is never published, so a failed export
    /// leaves the media as it found it.
    made: Vec<PathBuf>,
}

impl MediaCopy {
    /// Starts the copy of bundle `dir_name` in media directory `media`.
    /// `None` if its temporary directory cannot be made: the copy after the
    /// export then says what is wrong with the media.
    pub(crate) fn start(media: &Path, dir_name: &str) -> Option<Arc<MediaCopy>> {
        let to = media.join(dir_name);
        let tmp = fsx::tmp_name(&to);
        let made: Vec<PathBuf> = media
            .ancestors()
            .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
            .map(Path::to_path_buf)
            .collect();
        // Made first, so that a failure below removes what it made.
        let copy = MediaCopy {
            to,
            tmp,
            failed: Mutex::new(None),
            published: AtomicBool::new(false),
            made,
        };
        std::fs::create_dir_all(media).ok()?;
        remove_unfinished(media, dir_name);
        fsx::remove_dir_if_exists(&copy.tmp).ok()?;
        std::fs::create_dir(&copy.tmp).ok()?;
        Some(Arc::new(copy))
    }

    fn fail(&self, e: &std::io::Error, path: &Path) {
        let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        failed.get_or_insert_with(|| format!("{} while writing {}", e, path.display()));
    }

    fn has_failed(&self) -> bool {
        self.failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// Completes the copy from the state's bundle directory `from` (each of
    /// its files not written whole yet, the manifest), syncs it and renames
    /// it to the bundle's name. Returns the bundle's bytes. An error if the
    /// copy failed on the way: the caller copies the bundle again.
    pub fn publish(&self, from: &Path) -> Result<u64> {
        if let Some(why) = self
            .failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            bail!("{why}");
        }
        let mut total = 0;
        let entries =
            std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))?;
        for e in entries {
            let e = e.with_context(|| format!("cannot read {}", from.display()))?;
            let meta = e
                .metadata()
                .with_context(|| format!("cannot read {}", e.path().display()))?;
            if !meta.is_file() {
                continue;
            }
            let len = meta.len();
            let dst = self.tmp.join(e.file_name());
            let written = std::fs::metadata(&dst).is_ok_and(|m| m.len() == len);
            if !written {
                std::fs::copy(e.path(), &dst).with_context(|| {
                    format!("cannot copy {} to {}", e.path().display(), dst.display())
                })?;
                File::open(&dst)
                    .and_then(|f| f.sync_all())
                    .with_context(|| format!("cannot sync {}", dst.display()))?;
            }
            total += len;
        }
        fsx::sync_dir(&self.tmp)?;
        fsx::remove_dir_if_exists(&self.to)?;
        std::fs::rename(&self.tmp, &self.to)
            .with_context(|| format!("cannot rename into {}", self.to.display()))?;
        self.published.store(true, Ordering::Release);
        fsx::sync_dir(fsx::parent(&self.to))?;
        Ok(total)
    }
}

/// Removes the unfinished copies on `media` of earlier bundles of the
/// stream of `dir_name` (`NAME-SEQUENCE`): what an export killed while it
/// wrote left there, taking the media's space. An export or a copy of that
/// very bundle removes its own; this removes the others.
fn remove_unfinished(media: &Path, dir_name: &str) {
    let Some((stream, _)) = dir_name.rsplit_once('-') else {
        return;
    };
    let prefix = format!(".{stream}-");
    let Ok(entries) = std::fs::read_dir(media) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let unfinished = name.starts_with(&prefix)
            && name.ends_with(".tmp")
            && e.file_type().is_ok_and(|t| t.is_dir());
        if unfinished && std::fs::remove_dir_all(e.path()).is_ok() {
            eprintln!(
                "ferry-out: removed {}, the unfinished copy of an export that was stopped",
                e.path().display()
            );
        }
    }
}

impl Drop for MediaCopy {
    fn drop(&mut self) {
        if !*self.published.get_mut() {
            let _ = std::fs::remove_dir_all(&self.tmp);
            for dir in &self.made {
                // Fails, and stops, at the first one something else filled.
                if std::fs::remove_dir(dir).is_err() {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_volumes(files: &mut VolumeFiles, volumes: &[&[u8]]) {
        for (i, bytes) in volumes.iter().enumerate() {
            let mut w = files.create(i as u32).unwrap();
            for piece in bytes.chunks(7) {
                w.write_all(piece).unwrap();
            }
            files.close(i as u32, w).unwrap();
        }
    }

    /// The names in `dir`, sorted.
    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    fn listing(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let name = e.file_name().to_string_lossy().into_owned();
                (name, std::fs::read(e.path()).unwrap())
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn the_media_copy_appears_whole_and_only_when_published() {
        let d = tempfile::tempdir().unwrap();
        let (state, media) = (d.path().join("state"), d.path().join("media"));
        std::fs::create_dir(&state).unwrap();
        let copy = MediaCopy::start(&media, "ferry-1").unwrap();
        let mut files = VolumeFiles {
            dir: state.clone(),
            media: Some(Arc::clone(&copy)),
        };
        write_volumes(&mut files, &[b"the first volume's bytes", b"second"]);
        std::fs::write(state.join("manifest.ferry"), b"signed manifest").unwrap();
        // Before the commit, only the temporary name is on media.
        assert_eq!(names(&media), [".ferry-1.tmp"]);
        let n = copy.publish(&state).unwrap();
        assert_eq!(n, 24 + 6 + 15);
        assert_eq!(names(&media), ["ferry-1"]);
        assert_eq!(listing(&media.join("ferry-1")), listing(&state));
        drop((files, copy));
        assert!(media.join("ferry-1").is_dir(), "a published copy stays");
    }

    #[test]
    fn a_full_media_stops_its_copy_not_the_export_and_publish_says_why() {
        let d = tempfile::tempdir().unwrap();
        let (state, media) = (d.path().join("state"), d.path().join("media"));
        std::fs::create_dir(&state).unwrap();
        let copy = MediaCopy::start(&media, "ferry-2").unwrap();
        // The second volume's file on media is /dev/full: every write fails
        // with ENOSPC, as on a full disk.
        std::os::unix::fs::symlink("/dev/full", copy.tmp.join(volume::file_name(1))).unwrap();
        let mut files = VolumeFiles {
            dir: state.clone(),
            media: Some(Arc::clone(&copy)),
        };
        let big = vec![7u8; 3 << 20];
        write_volumes(&mut files, &[b"one", &big, b"three"]);
        // The state's bundle is whole.
        assert_eq!(
            std::fs::read(state.join(volume::file_name(1))).unwrap(),
            big
        );
        assert_eq!(
            std::fs::read(state.join(volume::file_name(2))).unwrap(),
            b"three"
        );
        let err = format!("{:#}", copy.publish(&state).unwrap_err());
        assert!(err.contains("No space left on device"), "{err}");
        assert!(err.contains(".ferry-2.tmp"), "{err}");
        assert!(!media.join("ferry-2").exists());
        drop((files, copy));
        assert!(
            !media.join(".ferry-2.tmp").exists(),
            "an unpublished copy is removed"
        );
    }

    #[test]
    fn an_unpublished_copy_leaves_the_media_as_it_found_it() {
        let d = tempfile::tempdir().unwrap();
        // Directories the copy made are removed with it.
        let media = d.path().join("stick/exports");
        let copy = MediaCopy::start(&media, "ferry-3").unwrap();
        assert!(copy.tmp.is_dir());
        drop(copy);
        assert!(
            !d.path().join("stick").exists(),
            "the media's new directories go"
        );
        // One that was there stays, and so does what it held.
        std::fs::create_dir_all(&media).unwrap();
        std::fs::write(media.join("ferry-1"), b"an earlier bundle").unwrap();
        drop(MediaCopy::start(&media, "ferry-3").unwrap());
        assert_eq!(
            std::fs::read_dir(&media).unwrap().count(),
            1,
            "only what was there before"
        );
    }

    #[test]
    fn an_export_removes_the_unfinished_copies_of_its_stream() {
        let d = tempfile::tempdir().unwrap();
        let media = d.path().join("media");
        for dir in [".ferry-7.tmp", ".other-7.tmp", "ferry-6"] {
            std::fs::create_dir_all(media.join(dir)).unwrap();
            std::fs::write(media.join(dir).join("volume"), b"bytes").unwrap();
        }
        std::fs::write(media.join(".ferry-8.tmp"), b"a file, not a copy").unwrap();
        let copy = MediaCopy::start(&media, "ferry-9").unwrap();
        assert_eq!(
            names(&media),
            [".ferry-8.tmp", ".ferry-9.tmp", ".other-7.tmp", "ferry-6"],
            "only the stream's unfinished copies go"
        );
        drop(copy);
    }
}
