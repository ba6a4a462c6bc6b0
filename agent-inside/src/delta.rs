//! The applied and the next catalog of an apply, read by key: the applied
//! one is the database's rows ([`Snapshot`]), the next one those rows
//! merged with the bundle's changes. Nothing holds either whole: an apply
//! of a delta holds its change, and reads the rows it needs (a key, the
//! keys under a prefix, or, for what only a pass can tell, the rows one
//! at a time).
//!
//! The changes get the checks of [`Catalog::apply`], in one place
//! ([`check_changes`]: every key valid, no key changed twice, a removed
//! key held, a patch's base held with the digest the patch was made
//! against), against the rows; the result is checked by
//! [`validate_changes`] over the rows (what the changes can break in a
//! valid catalog), instead of a whole `validate`. The next catalog's sums
//! (objects, bytes, largest file) come from the applied sums kept in the
//! database and the changed keys' rows; the rows are read through only
//! when the largest file is replaced or removed by a smaller one.
//!
//! A rebase snapshot's next catalog is made from nothing
//! ([`Catalogs::rebase`]: held whole, as before); a first import's is its
//! change (the applied catalog is empty): the manifest's change list
//! itself, checked in place and kept in key order
//! ([`check_first_changes`]), never copied into a map.

use crate::db::{key_bytes, Snapshot};
use anyhow::Result;
use ferry_protocol::catalog::{
    check_changes_owned, check_first_changes, first_changes_pass, validate_changes, Catalog,
    Change, Changes, FileObject, LastCatalog, Object, SourceKind, Sums,
};
use ferry_protocol::id::Sha256;
use ferry_protocol::manifest::{ChunkEntry, ColumnChanges, Columns};
use ferry_protocol::path::ObjectKey;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// The applied catalog (the snapshot's rows) and the next one, read by key.
pub struct Catalogs<'s> {
    prev: Rows<'s>,
    next: Next<'s>,
    sums: Sums,
}

/// The next catalog.
enum Next<'s> {
    /// The applied rows changed by these (checked) changes.
    Rows(Changes),
    /// Made apart from the rows (a rebase snapshot), held whole.
    Whole(Catalog),
    /// A first import's (the applied catalog is empty): its change list,
    /// checked, every change a put, in key order.
    Sorted {
        /// The next catalog's sources.
        sources: BTreeMap<String, SourceKind>,
        /// Its objects, in key order.
        objects: Vec<(ObjectKey, Object)>,
    },
    /// A first import's whose change list passed every check as a stream
    /// (`first_changes_pass`): read from the manifest's columns a change
    /// at a time by every pass, never held decoded; every change a put, in
    /// key order.
    Stream {
        /// The next catalog's sources.
        sources: BTreeMap<String, SourceKind>,
        /// Its objects, in key order.
        columns: Columns,
        /// The manifest's chunk table (named), which refs by index read.
        chunks: &'s [ChunkEntry],
    },
}

/// The objects a next catalog has that the applied rows do not give it
/// ([`Catalogs::puts`]): a delta's puts or a whole catalog (a map), or a
/// first import's checked change list (in key order).
#[derive(Clone, Copy, Debug)]
pub enum Puts<'a> {
    /// Held in a map.
    Map(&'a BTreeMap<ObjectKey, Object>),
    /// Held in key order, no key twice.
    Sorted(&'a [(ObjectKey, Object)]),
    /// Read from a change list's columns (puts only, in key order, no key
    /// twice), a change at a time; its refs by index from the chunk table.
    Stream(&'a Columns, &'a [ChunkEntry]),
}

/// A put: its key and object, borrowed from where they are held, or
/// decoded from the columns (owned).
pub type Put<'a> = (Cow<'a, ObjectKey>, Cow<'a, Object>);

/// The objects of [`Puts`] from a key on, in key order. (One is made a
/// pass, never held in numbers: its variants' sizes do not matter.)
#[derive(Clone)]
#[allow(clippy::large_enum_variant)]
pub enum PutsIter<'a> {
    /// Of a map.
    Map(std::collections::btree_map::Range<'a, ObjectKey, Object>),
    /// Of a sorted list.
    Sorted(std::slice::Iter<'a, (ObjectKey, Object)>),
    /// Of columns: the changes, and the key they start from (skipped to
    /// on the first `next`).
    Stream(ColumnChanges<'a>, Option<ObjectKey>),
}

impl<'a> Iterator for PutsIter<'a> {
    type Item = Put<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let borrowed = |(k, o): (&'a ObjectKey, &'a Object)| (Cow::Borrowed(k), Cow::Borrowed(o));
        match self {
            PutsIter::Map(r) => r.next().map(borrowed),
            PutsIter::Sorted(s) => s.next().map(|(k, o)| borrowed((k, o))),
            PutsIter::Stream(changes, start) => loop {
                let Change::Put { key, object } = changes.next()? else {
                    unreachable!("a streamed first import's changes are puts (checked)")
                };
                if start.as_ref().is_some_and(|s| key < *s) {
                    continue;
                }
                *start = None;
                return Some((Cow::Owned(key), Cow::Owned(object)));
            },
        }
    }
}

impl<'a> IntoIterator for Puts<'a> {
    type Item = Put<'a>;
    type IntoIter = PutsIter<'a>;

    fn into_iter(self) -> PutsIter<'a> {
        self.iter()
    }
}

impl<'a> Puts<'a> {
    /// Every object, in key order.
    pub fn iter(self) -> PutsIter<'a> {
        self.from(None)
    }

    /// The objects from `start` (`None`: the first) on, in key order.
    pub fn from(self, start: Option<&ObjectKey>) -> PutsIter<'a> {
        match (self, start) {
            (Puts::Map(m), Some(s)) => PutsIter::Map(m.range(s..)),
            (Puts::Map(m), None) => PutsIter::Map(m.range::<ObjectKey, _>(..)),
            (Puts::Sorted(v), Some(s)) => {
                PutsIter::Sorted(v[v.partition_point(|(k, _)| k < s)..].iter())
            }
            (Puts::Sorted(v), None) => PutsIter::Sorted(v.iter()),
            (Puts::Stream(c, chunks), s) => PutsIter::Stream(c.iter(chunks), s.cloned()),
        }
    }

    /// The object at `key` (of columns: read through up to it; only a
    /// first import's rare lookups, e.g. objects to adopt).
    pub fn get(self, key: &ObjectKey) -> Option<Cow<'a, Object>> {
        match self {
            Puts::Map(m) => m.get(key).map(Cow::Borrowed),
            Puts::Sorted(v) => v
                .binary_search_by(|(k, _)| k.cmp(key))
                .ok()
                .map(|i| Cow::Borrowed(&v[i].1)),
            Puts::Stream(..) => {
                let (k, o) = self.from(Some(key)).next()?;
                (*k == *key).then_some(o)
            }
        }
    }

    /// Whether it holds `key`.
    pub fn contains_key(self, key: &ObjectKey) -> bool {
        self.get(key).is_some()
    }

    /// The objects, in key order.
    pub fn values(self) -> impl Iterator<Item = Cow<'a, Object>> {
        self.iter().map(|(_, o)| o)
    }

    /// How many objects.
    pub fn len(self) -> usize {
        match self {
            Puts::Map(m) => m.len(),
            Puts::Sorted(v) => v.len(),
            Puts::Stream(c, _) => c.len(),
        }
    }

    /// Whether there is none.
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

/// The applied catalog as [`LastCatalog`]: the snapshot's rows and sources.
struct Rows<'s> {
    snap: &'s Snapshot,
    sources: BTreeMap<String, SourceKind>,
}

fn io(e: anyhow::Error) -> ferry_protocol::Error {
    ferry_protocol::Error::Io(std::io::Error::other(format!("{e:#}")))
}

impl LastCatalog for Rows<'_> {
    fn sources(&self) -> &BTreeMap<String, SourceKind> {
        &self.sources
    }

    fn holds(&self, key: &ObjectKey) -> Result<bool, ferry_protocol::Error> {
        self.snap.holds(key).map_err(io)
    }

    fn keys_from(
        &self,
        from: &ObjectKey,
        visit: &mut dyn FnMut(&ObjectKey) -> bool,
    ) -> Result<(), ferry_protocol::Error> {
        self.snap
            .rows_from(&key_bytes(from), false, &mut |k, _| Ok(visit(&k)))
            .map_err(io)
    }
}

impl<'s> Catalogs<'s> {
    /// The catalog of `snap` changed by `sources` and `changes`, after
    /// every check of [`Catalog::apply`] (made against the rows). The
    /// changes' objects are moved in, never copied: a first import's
    /// change list is the whole catalog, held once, where the manifest's
    /// decoding put it (in key order, no map).
    pub fn absorb(
        snap: &'s Snapshot,
        sources: &BTreeMap<String, SourceKind>,
        changes: Vec<Change>,
    ) -> Result<Catalogs<'s>> {
        let prev = Rows {
            snap,
            sources: snap.sources()?,
        };
        let applied = snap.sums()?;
        if applied.objects == 0 {
            // A first import (or one after a delta emptied the catalog).
            let objects = check_first_changes(&prev, sources, changes)?;
            return Ok(Catalogs::sorted(prev, sources.clone(), objects));
        }
        let mut digest = |k: &ObjectKey| match snap.get(k).map_err(io)? {
            Some(Object::File(f)) => Ok(Some(f.sha256)),
            _ => Ok(None),
        };
        let checked = check_changes_owned(&prev, &mut digest, sources, changes)?;
        validate_changes(&prev, &checked)?;
        let mut c = Catalogs {
            prev,
            next: Next::Rows(checked),
            sums: applied,
        };
        c.sums = c.next_sums(applied)?;
        Ok(c)
    }

    /// [`Catalogs::absorb`] of a change list kept as the manifest's
    /// columns (`chunks`: its named chunk table). Over an empty applied
    /// catalog, a list that passes every check as a stream
    /// (`first_changes_pass`) is the next catalog as it is, read a change
    /// at a time; any other (a delta, or a bad or unsorted first list,
    /// whose error must be the one it always was) is decoded whole and
    /// absorbed as before.
    pub fn absorb_columns(
        snap: &'s Snapshot,
        sources: &BTreeMap<String, SourceKind>,
        columns: Columns,
        chunks: &'s [ChunkEntry],
    ) -> Result<Catalogs<'s>> {
        if snap.sums()?.objects == 0 {
            let prev = Rows {
                snap,
                sources: snap.sources()?,
            };
            if first_changes_pass(&prev, sources, columns.iter(chunks))? {
                let sums = columns.iter(chunks).fold(Sums::default(), |s, c| match c {
                    Change::Put { object, .. } => s.with(&object),
                    Change::Remove { .. } => s,
                });
                return Ok(Catalogs {
                    prev,
                    sums,
                    next: Next::Stream {
                        sources: sources.clone(),
                        columns,
                        chunks,
                    },
                });
            }
        }
        Catalogs::absorb(snap, sources, columns.decode_all(chunks))
    }

    /// A rebase snapshot's next catalog: `changes` applied to the empty
    /// catalog (and validated whole); `snap` is still the applied one.
    pub fn rebase(
        snap: &'s Snapshot,
        sources: &BTreeMap<String, SourceKind>,
        changes: &[Change],
    ) -> Result<Catalogs<'s>> {
        let next = Catalog::default().apply(sources, changes)?;
        let prev = Rows {
            snap,
            sources: snap.sources()?,
        };
        Ok(Catalogs::whole(prev, next))
    }

    fn sorted(
        prev: Rows<'s>,
        sources: BTreeMap<String, SourceKind>,
        objects: Vec<(ObjectKey, Object)>,
    ) -> Catalogs<'s> {
        Catalogs {
            prev,
            sums: Sums::of(objects.iter().map(|(_, o)| o)),
            next: Next::Sorted { sources, objects },
        }
    }

    fn whole(prev: Rows<'s>, next: Catalog) -> Catalogs<'s> {
        Catalogs {
            prev,
            sums: Sums::of(next.objects.values()),
            next: Next::Whole(next),
        }
    }

    /// The next catalog's sums, from the applied ones and the rows of the
    /// changed keys; the rows are read through when the largest file went
    /// and no put is as large.
    fn next_sums(&self, applied: Sums) -> Result<Sums> {
        let Next::Rows(ch) = &self.next else {
            unreachable!("sums of whole catalogs are counted")
        };
        let mut s = applied;
        let mut lost_largest = false;
        let mut drop = |s: &mut Sums, old: Option<Object>| {
            if let Some(old) = old {
                s.objects = s.objects.saturating_sub(1);
                if let Object::File(f) = old {
                    s.bytes = s.bytes.saturating_sub(f.size);
                    lost_largest |= f.size == applied.max_object;
                }
            }
        };
        let mut put_max = 0;
        for (k, o) in &ch.puts {
            drop(&mut s, self.prev.snap.get(k)?);
            s = s.with(o);
            if let Object::File(f) = o {
                put_max = put_max.max(f.size);
            }
        }
        for k in &ch.removes {
            drop(&mut s, self.prev.snap.get(k)?);
        }
        // The files the changes left hold at most the applied largest: a
        // put at least as large is the largest; else, if a file of that
        // size went, only a pass tells.
        if lost_largest && put_max >= applied.max_object {
            s.max_object = put_max;
        } else if lost_largest {
            let mut max = 0;
            self.for_each_from(None, &mut |_, o| {
                if let Object::File(f) = o {
                    max = max.max(f.size);
                }
                Ok(true)
            })?;
            s.max_object = max;
        }
        Ok(s)
    }

    /// The next catalog's sums.
    pub fn sums(&self) -> Sums {
        self.sums
    }

    /// The next catalog's sources.
    pub fn sources(&self) -> &BTreeMap<String, SourceKind> {
        match &self.next {
            Next::Rows(ch) => &ch.sources,
            Next::Whole(c) => &c.sources,
            Next::Sorted { sources, .. } | Next::Stream { sources, .. } => sources,
        }
    }

    /// The applied catalog's sources.
    pub fn prev_sources(&self) -> &BTreeMap<String, SourceKind> {
        &self.prev.sources
    }

    /// Whether the next catalog is the applied rows changed by a delta
    /// (then every key it does not put is unchanged).
    pub fn is_delta(&self) -> bool {
        matches!(self.next, Next::Rows(_))
    }

    /// The objects the next catalog has that the applied rows do not give
    /// it: the puts of a delta, or every object of a whole next catalog.
    pub fn puts(&self) -> Puts<'_> {
        match &self.next {
            Next::Rows(ch) => Puts::Map(&ch.puts),
            Next::Whole(c) => Puts::Map(&c.objects),
            Next::Sorted { objects, .. } => Puts::Sorted(objects),
            Next::Stream {
                columns, chunks, ..
            } => Puts::Stream(columns, chunks),
        }
    }

    /// The keys a delta removes (none for a whole next catalog).
    pub fn removes(&self) -> &[ObjectKey] {
        match &self.next {
            Next::Rows(ch) => &ch.removes,
            Next::Whole(_) | Next::Sorted { .. } | Next::Stream { .. } => &[],
        }
    }

    /// The changes from the applied catalog, put or removed (`None`), in
    /// key order: the puts, then the removals. A whole next catalog's are
    /// its objects (the keys it drops are in no change).
    pub fn changes(
        &self,
    ) -> impl Iterator<Item = (Cow<'_, ObjectKey>, Option<Cow<'_, Object>>)> + '_ {
        let puts = self.puts().into_iter().map(|(k, o)| (k, Some(o)));
        puts.chain(self.removes().iter().map(|k| (Cow::Borrowed(k), None)))
    }

    /// Whether the applied catalog is empty (a first import, or one after
    /// a delta emptied it): nothing of it is used, no chunk of the store
    /// is a range of its files.
    pub fn prev_is_empty(&self) -> Result<bool> {
        Ok(self.prev.snap.sums()?.objects == 0)
    }

    /// The next catalog's object at `key`.
    pub fn get(&self, key: &ObjectKey) -> Result<Option<Object>> {
        if let Some(o) = self.puts().get(key) {
            return Ok(Some(o.into_owned()));
        }
        if !self.is_delta() || self.removes().binary_search(key).is_ok() {
            return Ok(None);
        }
        self.prev.snap.get(key)
    }

    /// The applied catalog's object at `key`.
    pub fn prev_get(&self, key: &ObjectKey) -> Result<Option<Object>> {
        self.prev.snap.get(key)
    }

    /// Whether file `f`, at `key` of the next catalog, is unchanged since
    /// the applied one.
    pub fn unchanged(&self, key: &ObjectKey, f: &FileObject) -> Result<bool> {
        if self.is_delta() && !self.puts().contains_key(key) {
            return Ok(true);
        }
        Ok(matches!(self.prev_get(key)?, Some(Object::File(p)) if p == *f))
    }

    /// Hands `visit` the next catalog's objects in key order, from `from`
    /// (a source and a path prefix; `None`: every object) on, while
    /// `visit` returns true and the key is in that source under that
    /// prefix: the applied rows merged with the puts, without the removed
    /// keys.
    pub fn for_each_from(
        &self,
        from: Option<(&str, &str)>,
        visit: &mut dyn FnMut(&ObjectKey, &Object) -> Result<bool>,
    ) -> Result<()> {
        let within = |k: &ObjectKey| {
            from.is_none_or(|(source, prefix)| k.source == source && k.path.starts_with(prefix))
        };
        let start = from.map(|(source, prefix)| ObjectKey {
            source: source.to_string(),
            path: prefix.to_string(),
        });
        let mut puts = self
            .puts()
            .from(start.as_ref())
            .take_while(|(k, _)| within(k))
            .peekable();
        let mut going = true;
        if self.is_delta() {
            let removes = self.removes();
            let from_bytes = start.as_ref().map(key_bytes).unwrap_or_default();
            self.prev.snap.rows_from(&from_bytes, true, &mut |k, o| {
                if !within(&k) {
                    return Ok(false);
                }
                while let Some((p, po)) = puts.next_if(|(p, _)| **p <= k) {
                    let replaces = *p == k;
                    if !visit(&p, &po)? {
                        going = false;
                        return Ok(false);
                    }
                    if replaces {
                        return Ok(true);
                    }
                }
                if removes.binary_search(&k).is_ok() {
                    return Ok(true);
                }
                let o = o.expect("rows read with their objects");
                going = visit(&k, &o)?;
                Ok(going)
            })?;
        }
        if going {
            for (k, o) in puts {
                if !visit(&k, &o)? {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Hands `visit` the objects of the next catalog's sources of `kind`,
    /// in key order.
    pub fn for_each_of_kind(
        &self,
        kind: SourceKind,
        visit: &mut dyn FnMut(&ObjectKey, &Object) -> Result<()>,
    ) -> Result<()> {
        for (source, k) in self.sources() {
            if *k == kind {
                self.for_each_from(Some((source, "")), &mut |k, o| {
                    // Keys of `source` only: "ab" must not be read for "a".
                    visit(k, o).map(|()| true)
                })?;
            }
        }
        Ok(())
    }

    /// The next catalog's objects of the sources of `kind`, as a catalog
    /// (with every source): what a store of that kind reads.
    pub fn next_of_kind(&self, kind: SourceKind) -> Result<Catalog> {
        let mut c = Catalog {
            sources: self.sources().clone(),
            ..Catalog::default()
        };
        self.for_each_of_kind(kind, &mut |k, o| {
            c.objects.insert(k.clone(), o.clone());
            Ok(())
        })?;
        Ok(c)
    }

    /// The applied catalog's objects of the sources of `kind`, as a
    /// catalog (with every source).
    pub fn prev_of_kind(&self, kind: SourceKind) -> Result<Catalog> {
        let mut c = Catalog {
            sources: self.prev.sources.clone(),
            ..Catalog::default()
        };
        for (source, k) in &self.prev.sources {
            if *k != kind {
                continue;
            }
            let from = key_bytes(&ObjectKey {
                source: source.clone(),
                path: String::new(),
            });
            self.prev.snap.rows_from(&from, true, &mut |k, o| {
                if k.source != *source {
                    return Ok(false);
                }
                c.objects
                    .insert(k, o.expect("rows read with their objects"));
                Ok(true)
            })?;
        }
        Ok(c)
    }

    /// The next catalog's objects at `keys`, as a catalog (with every
    /// source).
    pub fn next_at<'k>(&self, keys: impl IntoIterator<Item = &'k ObjectKey>) -> Result<Catalog> {
        let mut c = Catalog {
            sources: self.sources().clone(),
            ..Catalog::default()
        };
        for k in keys {
            if let Some(o) = self.get(k)? {
                c.objects.insert(k.clone(), o);
            }
        }
        Ok(c)
    }

    /// The next catalog whole, when it is held whole (a rebase snapshot).
    pub fn next_whole(&self) -> Option<&Catalog> {
        match &self.next {
            Next::Whole(c) => Some(c),
            Next::Rows(_) | Next::Sorted { .. } | Next::Stream { .. } => None,
        }
    }

    /// The applied catalog's digest of the file at `key`, if it holds one.
    pub fn prev_digest(&self, key: &ObjectKey) -> Result<Option<Sha256>> {
        Ok(match self.prev_get(key)? {
            Some(Object::File(f)) => Some(f.sha256),
            _ => None,
        })
    }

    /// What the next catalog adds, changes and removes in the applied one
    /// ([`Catalog::delta_stats`]; for a whole next catalog, its diff).
    pub fn delta_stats(&self) -> Result<ferry_protocol::catalog::DeltaStats> {
        let mut s = ferry_protocol::catalog::DeltaStats::default();
        let mut kept = 0u64;
        for (key, o) in self.puts() {
            match self.prev_get(&key)? {
                Some(p) if p == *o && !self.is_delta() => kept += 1,
                Some(_) => {
                    kept += 1;
                    s.changed += 1
                }
                None => s.added += 1,
            }
        }
        s.removed = if self.is_delta() {
            self.removes().len()
        } else {
            (self.prev.snap.sums()?.objects.saturating_sub(kept)) as usize
        };
        Ok(s)
    }
}

/// For tests: an applied catalog stored in a database of its own, and
/// the [`Catalogs`] of a next catalog over it.
#[cfg(test)]
pub(crate) struct Fixture {
    _tmp: tempfile::TempDir,
    _db: crate::db::Db,
    snap: Snapshot,
}

#[cfg(test)]
impl Fixture {
    /// `prev` stored as the applied catalog.
    pub(crate) fn new(prev: &Catalog) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let db = crate::db::Db::open(&tmp.path().join("ferry-in.redb")).unwrap();
        crate::db::commit_test_apply(&db, 1, crate::db::CatalogUpdate::Whole(prev));
        let snap = db.snapshot().unwrap();
        Fixture {
            _tmp: tmp,
            _db: db,
            snap,
        }
    }

    /// The catalogs of an apply from the stored catalog (empty) to
    /// `next` held whole in a map, as a first import held it before its
    /// change list was kept in key order (not checked).
    pub(crate) fn whole(&self, next: &Catalog) -> Catalogs<'_> {
        let prev = Rows {
            snap: &self.snap,
            sources: self.snap.sources().unwrap(),
        };
        assert_eq!(
            self.snap.sums().unwrap().objects,
            0,
            "over the empty catalog"
        );
        Catalogs::whole(prev, next.clone())
    }

    /// The catalogs of an apply from the stored catalog to `next` (not
    /// checked: a test's catalogs need not be valid).
    pub(crate) fn catalogs(&self, next: &Catalog) -> Catalogs<'_> {
        let prev = Rows {
            snap: &self.snap,
            sources: self.snap.sources().unwrap(),
        };
        let applied = self.snap.sums().unwrap();
        if applied.objects == 0 {
            let objects = next
                .objects
                .iter()
                .map(|(k, o)| (k.clone(), o.clone()))
                .collect();
            return Catalogs::sorted(prev, next.sources.clone(), objects);
        }
        let mut changes = Changes {
            sources: next.sources.clone(),
            ..Changes::default()
        };
        for c in self.snap.catalog().unwrap().diff(next) {
            match c {
                Change::Put { key, object } => {
                    changes.puts.insert(key, object);
                }
                Change::Remove { key } => changes.removes.push(key),
            }
        }
        let mut c = Catalogs {
            prev,
            next: Next::Rows(changes),
            sums: applied,
        };
        c.sums = c.next_sums(applied).unwrap();
        c
    }
}

#[cfg(test)]
mod tests;
