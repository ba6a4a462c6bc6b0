//! The objects an export puts, as the scan finds them, without the whole
//! change list in memory: up to a number of them held in key order, the
//! rest written out in sorted runs (files in the bundle's temporary
//! directory, unlinked as soon as they are made, so that neither a finished
//! export nor a crash leaves one behind), merged into one sorted file once
//! the scan is done. What reads the change afterwards (the validation, the
//! sums, the manifest, the ledger's rows) reads it again in key order, as
//! many times as it needs, one object at a time.
//!
//! Each put carries the fingerprint its file was read with, if any (the
//! `files` source's; written into its row at the commit): a first export
//! reads every file, and these are its largest holder but the puts
//! themselves, so they go out in the runs beside their objects. The
//! fingerprints a kept copy made as it linked a file
//! ([`super::links::fingerprints_after`]) replace them when the puts are
//! finished ([`Puts::finish`]).
//!
//! A delta's few changes stay in memory: the same code, with no run
//! written ([`Puts::held`] is the bound; tests make it small to force the
//! runs).

use anyhow::{anyhow, bail, Context, Result};
use ferry_protocol::catalog::{Change, Changes, Object, SourceKind};
use ferry_protocol::path::ObjectKey;
use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// How many objects put an export holds in memory before it writes them out
/// as a sorted run (about 350 bytes each: some 22 MiB).
pub const PUTS_HELD: usize = 1 << 16;

/// Objects put, each at its key, readable in key order.
#[derive(Debug)]
pub(crate) struct Puts {
    /// Where runs go (`None`: never written out).
    dir: Option<PathBuf>,
    /// How many are held before a run is written.
    held_most: usize,
    held: BTreeMap<ObjectKey, Held>,
    runs: Vec<Run>,
    /// After [`Puts::finish`], when runs were written: the one sorted run
    /// they make.
    merged: Option<Run>,
}

/// An object put and the fingerprint its file was read with, if any.
type Held = (Object, Option<String>);

/// A put read again: its key, object and fingerprint (the last only when
/// asked for: [`Puts::iter_with_fingerprints`]).
pub(crate) type Put = (ObjectKey, Object, Option<String>);

/// A sorted run of puts in an unlinked file: their number and bytes.
#[derive(Debug)]
struct Run {
    file: File,
    len: u64,
    bytes: u64,
}

impl Puts {
    /// Puts held in memory, never written out.
    pub(crate) fn in_memory(held: BTreeMap<ObjectKey, Object>) -> Puts {
        Puts {
            dir: None,
            held_most: usize::MAX,
            held: held.into_iter().map(|(k, o)| (k, (o, None))).collect(),
            runs: Vec::new(),
            merged: None,
        }
    }

    /// Puts of which at most `held` are kept in memory, the others written
    /// out in sorted runs in `dir`.
    pub(crate) fn spilling(dir: &Path, held: usize) -> Puts {
        Puts {
            dir: Some(dir.to_path_buf()),
            held_most: held.max(1),
            held: BTreeMap::new(),
            runs: Vec::new(),
            merged: None,
        }
    }

    /// Whether `key` is put among those held now (the others are checked
    /// when the runs are merged: [`Puts::finish`]).
    pub(crate) fn holds(&self, key: &ObjectKey) -> bool {
        self.held.contains_key(key)
    }

    /// Puts `object` at `key`, not put before (among the held ones:
    /// refused; among those written out: [`Puts::finish`] refuses it),
    /// with the fingerprint its file was read with, if any.
    pub(crate) fn insert(
        &mut self,
        key: ObjectKey,
        object: Object,
        fingerprint: Option<String>,
    ) -> Result<()> {
        anyhow::ensure!(self.merged.is_none(), "puts added after they were merged");
        match self.held.entry(key) {
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert((object, fingerprint));
            }
            std::collections::btree_map::Entry::Occupied(o) => bail!(two_items(o.key())),
        }
        if self.held.len() >= self.held_most {
            self.write_run()?;
        }
        Ok(())
    }

    /// Writes the objects held as a sorted run.
    fn write_run(&mut self) -> Result<()> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        let held = std::mem::take(&mut self.held);
        let mut w = RunWriter::create(dir, &format!("run-{}", self.runs.len()))?;
        for (key, (object, fingerprint)) in &held {
            w.push(key, object, fingerprint.as_deref())?;
        }
        drop(held);
        self.runs.push(w.finish()?);
        Ok(())
    }

    /// Ends the puts: the runs written, if any, are merged into one (a key
    /// in two of them is an error naming it, as two items at one path are).
    /// Each put read with a fingerprint whose key `after` names gets that
    /// fingerprint instead (the file's after a kept copy was linked to it),
    /// and its entry is taken out of `after`.
    pub(crate) fn finish(&mut self, after: &mut HashMap<ObjectKey, String>) -> Result<()> {
        if self.merged.is_some() {
            return Ok(());
        }
        if self.runs.is_empty() {
            if !after.is_empty() {
                for (key, (_, fingerprint)) in self.held.iter_mut() {
                    relink(key, fingerprint, after);
                }
            }
            return Ok(());
        }
        if !self.held.is_empty() {
            self.write_run()?;
        }
        let dir = self.dir.clone().expect("runs are written in a directory");
        let runs = std::mem::take(&mut self.runs);
        let mut heads = Vec::with_capacity(runs.len());
        for run in &runs {
            let mut r = run.reader(&dir, true);
            let first = r.next().transpose()?;
            heads.push((r, first));
        }
        let mut w = RunWriter::create(&dir, "merged")?;
        let mut last: Option<ObjectKey> = None;
        loop {
            let mut min: Option<usize> = None;
            for (i, (_, head)) in heads.iter().enumerate() {
                let Some((k, _, _)) = head else { continue };
                if min.is_none_or(|m| heads[m].1.as_ref().is_some_and(|(mk, _, _)| k < mk)) {
                    min = Some(i);
                }
            }
            let Some(i) = min else { break };
            let next = heads[i].0.next().transpose()?;
            let (key, object, mut fingerprint) =
                std::mem::replace(&mut heads[i].1, next).expect("a head");
            if last.as_ref() == Some(&key) {
                bail!(two_items(&key));
            }
            relink(&key, &mut fingerprint, after);
            w.push(&key, &object, fingerprint.as_deref())?;
            last = Some(key);
        }
        drop(heads);
        drop(runs);
        self.merged = Some(w.finish()?);
        Ok(())
    }

    /// How many objects are put.
    pub(crate) fn len(&self) -> u64 {
        match &self.merged {
            Some(run) => run.len,
            None => self.held.len() as u64 + self.runs.iter().map(|r| r.len).sum::<u64>(),
        }
    }

    /// Whether none is.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The objects put, in key order, read again (each a copy).
    pub(crate) fn iter(&self) -> Result<impl Iterator<Item = Result<(ObjectKey, Object)>> + '_> {
        Ok(self
            .read(false)?
            .map(|put| put.map(|(key, object, _)| (key, object))))
    }

    /// The objects put, in key order, read again with their fingerprints.
    pub(crate) fn iter_with_fingerprints(&self) -> Result<PutsIter<'_>> {
        self.read(true)
    }

    fn read(&self, fingerprints: bool) -> Result<PutsIter<'_>> {
        match (&self.merged, self.runs.is_empty()) {
            (Some(run), _) => Ok(PutsIter::Run(
                run.reader(self.dir.as_deref().expect("dir"), fingerprints),
            )),
            (None, true) => Ok(PutsIter::Held(self.held.iter(), fingerprints)),
            (None, false) => Err(anyhow!(
                "the export's puts were read before they were merged"
            )),
        }
    }

    /// Calls `f` on each object put, in key order.
    pub(crate) fn each(&self, mut f: impl FnMut(&ObjectKey, &Object) -> Result<()>) -> Result<()> {
        for put in self.iter()? {
            let (key, object) = put?;
            f(&key, &object)?;
        }
        Ok(())
    }

    /// Calls `f` on each object put and its fingerprint, in key order.
    pub(crate) fn each_with_fingerprint(
        &self,
        mut f: impl FnMut(&ObjectKey, &Object, Option<&str>) -> Result<()>,
    ) -> Result<()> {
        for put in self.iter_with_fingerprints()? {
            let (key, object, fingerprint) = put?;
            f(&key, &object, fingerprint.as_deref())?;
        }
        Ok(())
    }

    /// The objects put, in memory.
    pub(crate) fn into_map(self) -> Result<BTreeMap<ObjectKey, Object>> {
        if self.merged.is_none() && self.runs.is_empty() {
            return Ok(self.held.into_iter().map(|(k, (o, _))| (k, o)).collect());
        }
        self.iter()?.collect()
    }
}

/// An export's changes: the next catalog's sources, the objects put
/// ([`Puts`]) and the keys removed (sorted).
#[derive(Debug)]
pub struct ChangeSet {
    pub(crate) sources: BTreeMap<String, SourceKind>,
    pub(crate) puts: Puts,
    pub(crate) removes: Vec<ObjectKey>,
}

impl ChangeSet {
    /// `changes`, held in memory.
    pub fn in_memory(changes: Changes) -> ChangeSet {
        ChangeSet {
            sources: changes.sources,
            puts: Puts::in_memory(changes.puts),
            removes: changes.removes,
        }
    }

    /// No change yet; the puts written out in `dir` from `held` on.
    pub(crate) fn spilling(dir: &Path, held: usize) -> ChangeSet {
        ChangeSet {
            sources: BTreeMap::new(),
            puts: Puts::spilling(dir, held),
            removes: Vec::new(),
        }
    }

    /// Whether the next catalog is the last one, given the last one's sources.
    pub(crate) fn is_empty(&self, last_sources: &BTreeMap<String, SourceKind>) -> bool {
        self.puts.is_empty() && self.removes.is_empty() && self.sources == *last_sources
    }

    /// How many changes there are.
    pub(crate) fn count(&self) -> u64 {
        self.puts.len() + self.removes.len() as u64
    }

    /// A copy of the changes in memory (a delta's few, or a manifest
    /// written in memory).
    pub(crate) fn to_changes(&self) -> Result<Changes> {
        Ok(Changes {
            sources: self.sources.clone(),
            puts: self.puts.iter()?.collect::<Result<_>>()?,
            removes: self.removes.clone(),
        })
    }

    /// The change list (the puts, then the removals, each in key order).
    pub(crate) fn to_list(&self) -> Result<Vec<Change>> {
        Ok(self.to_changes()?.into_list())
    }
}

/// The objects put, in key order, read again (with their fingerprints or
/// not).
pub(crate) enum PutsIter<'a> {
    Held(std::collections::btree_map::Iter<'a, ObjectKey, Held>, bool),
    Run(RunReader<'a>),
}

impl Iterator for PutsIter<'_> {
    type Item = Result<Put>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            PutsIter::Held(it, fingerprints) => it.next().map(|(k, (o, f))| {
                Ok((
                    k.clone(),
                    o.clone(),
                    f.as_ref().filter(|_| *fingerprints).cloned(),
                ))
            }),
            PutsIter::Run(r) => r.next(),
        }
    }
}

/// A put's `fingerprint`, if it was read with one, becomes the one `after`
/// holds for its `key` (the file's once a kept copy was linked to it),
/// taken out of `after`.
fn relink(
    key: &ObjectKey,
    fingerprint: &mut Option<String>,
    after: &mut HashMap<ObjectKey, String>,
) {
    if fingerprint.is_some() {
        if let Some(f) = after.remove(key) {
            *fingerprint = Some(f);
        }
    }
}

fn two_items(key: &ObjectKey) -> String {
    format!("source {:?}: two items at path {:?}", key.source, key.path)
}

/// Writes a run: each put as its encoding's length (4 bytes, little-endian)
/// and the postcard encoding of its key, fingerprint and object.
struct RunWriter {
    w: BufWriter<File>,
    dir: PathBuf,
    len: u64,
    bytes: u64,
    buf: Vec<u8>,
}

impl RunWriter {
    /// A run in `dir`, its file unlinked at once.
    fn create(dir: &Path, name: &str) -> Result<RunWriter> {
        let path = dir.join(format!(".puts-{name}"));
        let cannot = || {
            format!(
                "cannot write the export's list of changes in {}",
                path.display()
            )
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .with_context(cannot)?;
        std::fs::remove_file(&path).with_context(cannot)?;
        Ok(RunWriter {
            w: BufWriter::with_capacity(1 << 16, file),
            dir: dir.to_path_buf(),
            len: 0,
            bytes: 0,
            buf: Vec::new(),
        })
    }

    fn push(&mut self, key: &ObjectKey, object: &Object, fingerprint: Option<&str>) -> Result<()> {
        self.buf.clear();
        self.buf.extend_from_slice(&[0; 4]);
        let buf = std::mem::take(&mut self.buf);
        let mut buf = postcard::to_extend(&(key, fingerprint, object), buf)
            .with_context(|| format!("cannot encode the change of {key}"))?;
        let n = u32::try_from(buf.len() - 4)
            .map_err(|_| anyhow!("the change of {key} is too large to list"))?;
        buf[..4].copy_from_slice(&n.to_le_bytes());
        self.w.write_all(&buf).with_context(|| self.cannot())?;
        self.bytes += buf.len() as u64;
        self.len += 1;
        self.buf = buf;
        Ok(())
    }

    fn cannot(&self) -> String {
        format!(
            "cannot write the export's list of changes in {}",
            self.dir.display()
        )
    }

    fn finish(self) -> Result<Run> {
        let cannot = self.cannot();
        let file = self
            .w
            .into_inner()
            .map_err(|e| e.into_error())
            .context(cannot)?;
        Ok(Run {
            file,
            len: self.len,
            bytes: self.bytes,
        })
    }
}

impl Run {
    /// Its puts from the start (several readers may read it at once), with
    /// their fingerprints or not.
    fn reader<'a>(&'a self, dir: &Path, fingerprints: bool) -> RunReader<'a> {
        RunReader {
            r: BufReader::with_capacity(
                1 << 16,
                At {
                    file: &self.file,
                    at: 0,
                    end: self.bytes,
                },
            ),
            left: self.len,
            dir: dir.to_path_buf(),
            buf: Vec::new(),
            fingerprints,
        }
    }
}

/// A file read from a position of its own.
struct At<'a> {
    file: &'a File,
    at: u64,
    end: u64,
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let most = usize::try_from(self.end - self.at).unwrap_or(usize::MAX);
        let want = buf.len().min(most);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// A run's puts, read in order.
pub(crate) struct RunReader<'a> {
    r: BufReader<At<'a>>,
    left: u64,
    dir: PathBuf,
    buf: Vec<u8>,
    /// Whether the fingerprints are read (else left in the run).
    fingerprints: bool,
}

impl RunReader<'_> {
    fn read_one(&mut self) -> Result<Put> {
        let mut n = [0u8; 4];
        self.r.read_exact(&mut n)?;
        self.buf.resize(u32::from_le_bytes(n) as usize, 0);
        self.r.read_exact(&mut self.buf)?;
        let (key, fingerprint, object): (ObjectKey, Option<&str>, Object) =
            postcard::from_bytes(&self.buf)?;
        let fingerprint = fingerprint.filter(|_| self.fingerprints).map(str::to_owned);
        Ok((key, object, fingerprint))
    }
}

impl Iterator for RunReader<'_> {
    type Item = Result<Put>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let read = self.read_one().with_context(|| {
            format!(
                "cannot read back the export's list of changes in {} (the disk?)",
                self.dir.display()
            )
        });
        if read.is_err() {
            self.left = 0;
        }
        Some(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_protocol::catalog::{ChunkRef, Encoding, FileObject};
    use ferry_protocol::id::{ChunkId, Sha256};

    fn key(path: &str) -> ObjectKey {
        ObjectKey {
            source: "s".into(),
            path: path.into(),
        }
    }

    fn file(n: u64) -> Object {
        Object::File(FileObject {
            size: n,
            sha256: Sha256([n as u8; 32]),
            executable: n.is_multiple_of(2),
            encoding: Encoding::Chunks(vec![ChunkRef {
                id: ChunkId([n as u8; 32]),
                len: n as u32,
            }]),
        })
    }

    /// Keys in a scrambled order (as sources and patches finish).
    fn scrambled(n: u64) -> Vec<u64> {
        (0..n).map(|i| (i * 7919) % n).collect()
    }

    #[test]
    fn puts_read_back_in_key_order_whether_held_or_written_out_in_runs() {
        for held in [1, 3, 10, 1000] {
            let dir = tempfile::tempdir().unwrap();
            let mut puts = Puts::spilling(dir.path(), held);
            for i in scrambled(101) {
                puts.insert(key(&format!("f{i:03}")), file(i), None)
                    .unwrap();
            }
            // Runs are unlinked files: nothing is left in the directory.
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
            assert_eq!(puts.runs.is_empty(), held > 101, "held {held}");
            puts.finish(&mut HashMap::new()).unwrap();
            assert_eq!(puts.len(), 101);
            let want: Vec<(ObjectKey, Object)> = (0..101)
                .map(|i| (key(&format!("f{i:03}")), file(i)))
                .collect();
            // Read twice, the same.
            for _ in 0..2 {
                let got: Vec<_> = puts.iter().unwrap().map(Result::unwrap).collect();
                assert_eq!(got, want, "held {held}");
            }
            let mut seen = 0;
            puts.each(|_, _| {
                seen += 1;
                Ok(())
            })
            .unwrap();
            assert_eq!(seen, 101);
            assert_eq!(puts.into_map().unwrap().len(), 101);
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        }
    }

    #[test]
    fn fingerprints_go_with_their_puts_and_the_links_new_ones_replace_them_at_the_end() {
        for held in [3, 1000] {
            let dir = tempfile::tempdir().unwrap();
            let mut puts = Puts::spilling(dir.path(), held);
            // Even ones read with a fingerprint, odd ones without.
            let fp = |i: u64| i.is_multiple_of(2).then(|| format!("fp{i}"));
            for i in scrambled(20) {
                puts.insert(key(&format!("f{i:02}")), file(i), fp(i))
                    .unwrap();
            }
            assert_eq!(puts.runs.is_empty(), held > 20, "held {held}");
            // Made as kept copies were linked: a put read with one gets it;
            // a put listed without one, and a key not put, do not.
            let mut after: HashMap<ObjectKey, String> = [
                (key("f04"), "linked4".to_string()),
                (key("f05"), "linked5".to_string()),
                (key("other"), "linked".to_string()),
            ]
            .into_iter()
            .collect();
            puts.finish(&mut after).unwrap();
            let mut left: Vec<&str> = after.keys().map(|k| k.path.as_str()).collect();
            left.sort_unstable();
            assert_eq!(left, ["f05", "other"], "held {held}");
            let want: Vec<Put> = (0..20)
                .map(|i| {
                    let f = if i == 4 {
                        Some("linked4".into())
                    } else {
                        fp(i)
                    };
                    (key(&format!("f{i:02}")), file(i), f)
                })
                .collect();
            let got: Vec<Put> = puts
                .iter_with_fingerprints()
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert_eq!(got, want, "held {held}");
            // Read without them, the objects alone.
            let objects: Vec<(ObjectKey, Object)> =
                puts.iter().unwrap().map(Result::unwrap).collect();
            let want_objects: Vec<_> = want
                .iter()
                .map(|(k, o, _)| (k.clone(), o.clone()))
                .collect();
            assert_eq!(objects, want_objects);
            let mut n = 0;
            puts.each_with_fingerprint(|k, _, f| {
                assert_eq!(f, want[n].2.as_deref(), "{k}");
                n += 1;
                Ok(())
            })
            .unwrap();
            assert_eq!(n, 20);
        }
    }

    #[test]
    fn a_key_put_twice_is_refused_held_or_in_two_runs() {
        let dir = tempfile::tempdir().unwrap();
        // Both held: refused at once.
        let mut puts = Puts::spilling(dir.path(), 100);
        puts.insert(key("a"), file(1), None).unwrap();
        let e = puts.insert(key("a"), file(2), None).unwrap_err();
        assert_eq!(e.to_string(), "source \"s\": two items at path \"a\"");
        // In two runs: refused by the merge.
        let mut puts = Puts::spilling(dir.path(), 2);
        for p in ["b", "a", "c", "d", "a", "e"] {
            puts.insert(key(p), file(1), None).unwrap();
        }
        let e = puts.finish(&mut HashMap::new()).unwrap_err();
        assert_eq!(e.to_string(), "source \"s\": two items at path \"a\"");
    }

    #[test]
    fn the_change_set_counts_and_lists_puts_then_removes() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = ChangeSet::spilling(dir.path(), 2);
        c.sources.insert("s".into(), SourceKind::Files);
        for i in scrambled(5) {
            c.puts.insert(key(&format!("p{i}")), file(i), None).unwrap();
        }
        c.removes = vec![key("r0"), key("r1")];
        c.puts.finish(&mut HashMap::new()).unwrap();
        assert_eq!(c.count(), 7);
        assert!(!c.is_empty(&c.sources.clone()));
        let list = c.to_list().unwrap();
        let keys: Vec<String> = list.iter().map(|c| c.key().path.clone()).collect();
        assert_eq!(keys, ["p0", "p1", "p2", "p3", "p4", "r0", "r1"]);
        assert!(matches!(list[5], Change::Remove { .. }));
        // The same changes held in memory list the same.
        let held = ChangeSet::in_memory(c.to_changes().unwrap());
        assert_eq!(held.to_list().unwrap(), list);
        let empty = ChangeSet::in_memory(Changes {
            sources: c.sources.clone(),
            ..Changes::default()
        });
        assert!(empty.is_empty(&c.sources));
    }

    #[test]
    fn a_run_that_cannot_be_written_names_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("gone");
        let mut puts = Puts::spilling(&gone, 1);
        let e = puts.insert(key("a"), file(1), None).unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("gone"), "{msg}");
        assert!(msg.contains("list of changes"), "{msg}");
    }
}
