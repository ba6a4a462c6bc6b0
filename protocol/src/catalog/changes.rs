//! A catalog's changes as an export finds them while it scans: the objects
//! put (new or changed) and the keys removed, against the last catalog,
//! without the next catalog ever being built beside it. What the next
//! catalog would say (its objects, its sizes, whether it is valid) is read
//! from the last one and the changes together, in one ordered pass or by
//! looking up only the keys near a change.

use super::{check_encoding, Catalog, Change, FileObject, Object, SourceKind};
use crate::id::Sha256;
use crate::path::{check_key, check_symlink_target, ObjectKey};
use crate::Error;
use std::collections::BTreeMap;
use std::iter::Peekable;

/// Changes to a catalog: objects put and keys removed, each in key order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// The next catalog's sources.
    pub sources: BTreeMap<String, SourceKind>,
    /// Objects added, or put in place of the last catalog's.
    pub puts: BTreeMap<ObjectKey, Object>,
    /// Keys of the last catalog the next one does not hold, sorted.
    pub removes: Vec<ObjectKey>,
}

/// The sizes a manifest's totals give of the catalog it makes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sums {
    /// Objects.
    pub objects: u64,
    /// Bytes of the regular files (saturating).
    pub bytes: u64,
    /// The largest regular file.
    pub max_object: u64,
}

impl Sums {
    /// The sums of `objects`.
    pub fn of<'a>(objects: impl IntoIterator<Item = &'a Object>) -> Sums {
        objects.into_iter().fold(Sums::default(), Sums::with)
    }

    /// These sums and object `o`'s.
    pub fn with(mut self, o: &Object) -> Sums {
        self.objects += 1;
        if let Object::File(f) = o {
            self.bytes = self.bytes.saturating_add(f.size);
            self.max_object = self.max_object.max(f.size);
        }
        self
    }
}

impl Changes {
    /// Whether the next catalog is the last one, given the last one's sources.
    pub fn is_empty(&self, last_sources: &BTreeMap<String, SourceKind>) -> bool {
        self.puts.is_empty() && self.removes.is_empty() && self.sources == *last_sources
    }

    /// The changes of `list` (as [`Catalog::diff`] gives them) to a catalog
    /// of `sources`.
    pub fn from_list(sources: BTreeMap<String, SourceKind>, list: Vec<Change>) -> Changes {
        let mut changes = Changes {
            sources,
            ..Changes::default()
        };
        for c in list {
            match c {
                Change::Put { key, object } => {
                    changes.puts.insert(key, object);
                }
                Change::Remove { key } => changes.removes.push(key),
            }
        }
        changes.removes.sort_unstable();
        changes
    }

    /// The change list, in the order [`Catalog::diff`] gives it: the puts in
    /// key order, then the removals in key order.
    pub fn into_list(self) -> Vec<Change> {
        let mut out = Vec::with_capacity(self.puts.len() + self.removes.len());
        out.extend(
            self.puts
                .into_iter()
                .map(|(key, object)| Change::Put { key, object }),
        );
        out.extend(self.removes.into_iter().map(|key| Change::Remove { key }));
        out
    }
}

/// The next catalog's objects in key order: the last catalog's, merged with
/// the changes ([`Catalog::objects_after`]).
struct After<'a, L: Iterator, P: Iterator> {
    last: Peekable<L>,
    puts: Peekable<P>,
    removes: &'a [ObjectKey],
}

impl<'a, L, P> Iterator for After<'a, L, P>
where
    L: Iterator<Item = (&'a ObjectKey, &'a Object)>,
    P: Iterator<Item = (&'a ObjectKey, &'a Object)>,
{
    type Item = (&'a ObjectKey, &'a Object);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let take_put = match (self.last.peek(), self.puts.peek()) {
                (None, None) => return None,
                (None, Some(_)) => true,
                (Some(_), None) => false,
                (Some((l, _)), Some((p, _))) => p <= l,
            };
            if take_put {
                let put = self.puts.next();
                // A put replaces the last catalog's object at its key.
                if let (Some((l, _)), Some((p, _))) = (self.last.peek(), &put) {
                    if l == p {
                        self.last.next();
                    }
                }
                return put;
            }
            let (key, object) = self.last.next()?;
            while self.removes.first().is_some_and(|r| r < key) {
                self.removes = &self.removes[1..];
            }
            if self.removes.first() == Some(key) {
                self.removes = &self.removes[1..];
                continue;
            }
            return Some((key, object));
        }
    }
}

impl Catalog {
    /// The objects of the catalog `changes` make of this one, in key order,
    /// without making it.
    pub fn objects_after<'a>(
        &'a self,
        changes: &'a Changes,
    ) -> impl Iterator<Item = (&'a ObjectKey, &'a Object)> + 'a {
        After {
            last: self.objects.iter().peekable(),
            puts: changes.puts.iter().peekable(),
            removes: &changes.removes,
        }
    }

    /// The regular files of the catalog `changes` make of this one.
    pub fn files_after<'a>(
        &'a self,
        changes: &'a Changes,
    ) -> impl Iterator<Item = (&'a ObjectKey, &'a FileObject)> + 'a {
        self.objects_after(changes).filter_map(|(k, o)| match o {
            Object::File(f) => Some((k, f)),
            Object::Symlink { .. } => None,
        })
    }

    /// Checks what `changes` can break in this catalog (itself valid): what
    /// [`Catalog::validate`] of the catalog they make would find, looking
    /// only at the sources, the objects put, their ancestors and the paths
    /// below them.
    pub fn validate_changes(&self, changes: &Changes) -> Result<(), Error> {
        validate_changes(self, changes)
    }

    /// Applies changes already checked ([`Catalog::validate_changes`]),
    /// taking their objects: this catalog becomes the next one.
    pub fn absorb(&mut self, sources: BTreeMap<String, SourceKind>, changes: Vec<Change>) {
        self.sources = sources;
        for change in changes {
            match change {
                Change::Put { key, object } => {
                    self.objects.insert(key, object);
                }
                Change::Remove { key } => {
                    self.objects.remove(&key);
                }
            }
        }
    }
}

/// A last catalog as changes are checked against it
/// ([`validate_changes`]): a [`Catalog`] in memory, or one kept elsewhere in
/// key order (the outside ledger's rows), read only near the changes.
pub trait LastCatalog {
    /// Its sources.
    fn sources(&self) -> &BTreeMap<String, SourceKind>;
    /// Whether it holds `key`.
    fn holds(&self, key: &ObjectKey) -> Result<bool, Error>;
    /// Hands `visit` its keys from `from` on, in key order, until `visit`
    /// returns false.
    fn keys_from(
        &self,
        from: &ObjectKey,
        visit: &mut dyn FnMut(&ObjectKey) -> bool,
    ) -> Result<(), Error>;
}

impl LastCatalog for Catalog {
    fn sources(&self) -> &BTreeMap<String, SourceKind> {
        &self.sources
    }

    fn holds(&self, key: &ObjectKey) -> Result<bool, Error> {
        Ok(self.objects.contains_key(key))
    }

    fn keys_from(
        &self,
        from: &ObjectKey,
        visit: &mut dyn FnMut(&ObjectKey) -> bool,
    ) -> Result<(), Error> {
        for (k, _) in self.objects.range(from..) {
            if !visit(k) {
                break;
            }
        }
        Ok(())
    }
}

/// `changes` as [`Changes`] (the puts and removals in key order), after
/// the checks each change gets against the catalog `last` it applies to:
/// its key valid, no key changed twice, a removed key held, a patch's base
/// held as a file with the digest the patch was made against
/// (`file_digest`: the digest of the file `last` holds at a key; `None`
/// when it holds none, or a symlink). What the changes make is not
/// checked here: [`validate_changes`] does that (or, of a whole catalog,
/// [`Catalog::validate`]). [`Catalog::apply`] and the inside's apply over
/// its database rows both check with this.
pub fn check_changes(
    last: &impl LastCatalog,
    file_digest: &mut dyn FnMut(&ObjectKey) -> Result<Option<Sha256>, Error>,
    sources: &BTreeMap<String, SourceKind>,
    changes: &[Change],
) -> Result<Changes, Error> {
    // The result holds a copy of every change: made up front, then moved.
    check_changes_owned(last, file_digest, sources, changes.to_vec())
}

/// [`check_changes`] of a change list the caller gives away: each object
/// is moved into the result, never copied (a first import's change list is
/// the whole catalog). The same checks; no key changed twice is checked by
/// the puts' map and the sorted removals, so no set of keys is kept
/// beside them.
pub fn check_changes_owned(
    last: &impl LastCatalog,
    file_digest: &mut dyn FnMut(&ObjectKey) -> Result<Option<Sha256>, Error>,
    sources: &BTreeMap<String, SourceKind>,
    changes: Vec<Change>,
) -> Result<Changes, Error> {
    let twice = |key: &ObjectKey| Error::Inconsistent(format!("object {key} changed twice"));
    let mut out = Changes {
        sources: sources.clone(),
        ..Changes::default()
    };
    for c in changes {
        check_change(last, file_digest, &c)?;
        match c {
            Change::Put { key, object } => match out.puts.entry(key) {
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(object);
                }
                std::collections::btree_map::Entry::Occupied(o) => return Err(twice(o.key())),
            },
            Change::Remove { key } => out.removes.push(key),
        }
    }
    out.removes.sort();
    if let Some(w) = out.removes.windows(2).find(|w| w[0] == w[1]) {
        return Err(twice(&w[0]));
    }
    if let Some(k) = out.removes.iter().find(|k| out.puts.contains_key(*k)) {
        return Err(twice(k));
    }
    Ok(out)
}

/// [`check_changes_owned`] and [`validate_changes`] of a change list over
/// a last catalog `last` that holds no object (a first import's: its
/// change list is the whole catalog), without a map of the puts: the
/// checked objects are the list's own, in key order, moved out of it
/// (each `(key, object)` where the change was; a list out of key order is
/// sorted in place first). The same checks, and the same errors as those
/// two of a list in key order (as a manifest writer makes it): every key
/// valid, no key twice, no key removed (`last` holds none), no patch (no
/// base is held), then every source name, every object's source declared,
/// its target or encoding, and no object where another one's directory
/// stands. Of a list out of key order, a key twice is found after the
/// other checks of the list (the map finds it where its second change is).
pub fn check_first_changes(
    last: &impl LastCatalog,
    sources: &BTreeMap<String, SourceKind>,
    mut changes: Vec<Change>,
) -> Result<Vec<(ObjectKey, Object)>, Error> {
    let twice = |key: &ObjectKey| Error::Inconsistent(format!("object {key} changed twice"));
    let mut sorted = true;
    for (i, c) in changes.iter().enumerate() {
        // `last` holds no file: every patch's base is missing.
        check_change(last, &mut |_| Ok(None), c)?;
        if let Some(before) = i.checked_sub(1).and_then(|b| changes.get(b)) {
            if sorted && before.key() == c.key() {
                return Err(twice(c.key()));
            }
            sorted &= before.key() < c.key();
        }
    }
    if !sorted {
        changes.sort_unstable_by(|a, b| a.key().cmp(b.key()));
        if let Some(w) = changes.windows(2).find(|w| w[0].key() == w[1].key()) {
            return Err(twice(w[0].key()));
        }
    }
    // Every change is a put (a removal was refused above); in place.
    let puts: Vec<(ObjectKey, Object)> = changes
        .into_iter()
        .filter_map(|c| match c {
            Change::Put { key, object } => Some((key, object)),
            Change::Remove { .. } => None,
        })
        .collect();
    validate_first(sources, &puts)?;
    Ok(puts)
}

/// Whether a first import's change list, read in order as a stream
/// (`changes` gives it from the start), passes every check
/// [`check_first_changes`] makes, without holding it: every change a put
/// with a valid key, keys in strictly increasing order, the sources'
/// names, each put against the sources, and no object where another
/// needs a directory (in key order, a key's ancestors are among the keys
/// before it that are prefixes of it: a chain kept as the keys go by).
/// `false` when a check fails or the list is not in key order: then
/// [`check_first_changes`] of the list decoded says why, so a bad list
/// gets the same error as ever.
pub fn first_changes_pass(
    last: &impl LastCatalog,
    sources: &BTreeMap<String, SourceKind>,
    changes: impl Iterator<Item = Change>,
) -> Result<bool, Error> {
    if sources
        .keys()
        .any(|n| crate::path::check_source_name(n).is_err())
    {
        return Ok(false);
    }
    // The keys before this one that are prefixes of it (same source), in
    // order: each a prefix of the next.
    let mut chain: Vec<ObjectKey> = Vec::new();
    for c in changes {
        if check_change(last, &mut |_| Ok(None), &c).is_err() {
            return Ok(false);
        }
        let Change::Put { key, object } = c else {
            return Ok(false);
        };
        if chain.last().is_some_and(|before| *before >= key)
            || check_put(sources, &key, &object).is_err()
        {
            return Ok(false);
        }
        while chain
            .last()
            .is_some_and(|p| p.source != key.source || !key.path.starts_with(&p.path))
        {
            chain.pop();
        }
        if chain
            .iter()
            .any(|p| key.path.as_bytes().get(p.path.len()) == Some(&b'/'))
        {
            return Ok(false);
        }
        chain.push(key);
    }
    Ok(true)
}

/// [`validate_changes`] of the puts `puts` (in key order, without a key
/// twice) over a last catalog that holds no object.
fn validate_first(
    sources: &BTreeMap<String, SourceKind>,
    puts: &[(ObjectKey, Object)],
) -> Result<(), Error> {
    for name in sources.keys() {
        crate::path::check_source_name(name)?;
    }
    let holds = |k: &ObjectKey| puts.binary_search_by(|(p, _)| p.cmp(k)).is_ok();
    let mut probe = ObjectKey {
        source: String::new(),
        path: String::new(),
    };
    for (key, obj) in puts {
        check_put(sources, key, obj)?;
        // No ancestor directory of this path is an object...
        if an_ancestor_is(key, &mut probe, |k| Ok(holds(k)))? {
            return Err(stands_in_the_way(key));
        }
        // ...and nothing lies below it.
        probe.path.clear();
        probe.path.push_str(&key.path);
        probe.path.push('/');
        let at = puts.partition_point(|(p, _)| *p < probe);
        if let Some((k, _)) = puts.get(at) {
            if k.source == key.source && k.path.starts_with(&probe.path) {
                return Err(stands_in_the_way(k));
            }
        }
    }
    Ok(())
}

/// The checks of one change against the catalog `last` it applies to: its
/// key valid, a patch's base held with the digest it was made against
/// (`file_digest`, as [`check_changes`] takes it), a removed key held.
fn check_change(
    last: &impl LastCatalog,
    file_digest: &mut dyn FnMut(&ObjectKey) -> Result<Option<Sha256>, Error>,
    change: &Change,
) -> Result<(), Error> {
    check_key(change.key())?;
    match change {
        Change::Put { key, object } => {
            let base = match object {
                Object::File(f) => f.base(),
                Object::Symlink { .. } => None,
            };
            match base {
                Some(base) => check_base(file_digest(&base.key)?, key, &base.key, &base.sha256),
                None => Ok(()),
            }
        }
        Change::Remove { key } if !last.holds(key)? => Err(Error::Inconsistent(format!(
            "removes {key}, which the base catalog does not hold"
        ))),
        Change::Remove { .. } => Ok(()),
    }
}

/// The base `base` of a patch of `key`, made against digest `sha256`, is
/// the file of digest `held` (`None`: no file there).
fn check_base(
    held: Option<Sha256>,
    key: &ObjectKey,
    base: &ObjectKey,
    sha256: &Sha256,
) -> Result<(), Error> {
    match held {
        Some(held) if held == *sha256 => Ok(()),
        Some(held) => Err(Error::MissingBase {
            key: key.to_string(),
            base: base.to_string(),
            why: format!(
                "the patch was made against SHA-256 {sha256}, the base catalog holds {held}"
            ),
        }),
        None => Err(Error::MissingBase {
            key: key.to_string(),
            base: base.to_string(),
            why: "the base catalog does not hold it".into(),
        }),
    }
}

/// [`validate_changes`] of puts that come one at a time, in key order (an
/// export's, read back from where it spilled them), never held together:
/// [`PutsCheck::new`] checks the sources, then [`PutsCheck::put`] each put.
/// A put below another is found when the one below comes (the puts that
/// may still have one below them are kept: each a prefix of the next, so at
/// most a path's depth of them). The same verdict as [`validate_changes`];
/// of several faults it may name another first.
pub struct PutsCheck<'a, L: LastCatalog> {
    last: &'a L,
    sources: &'a BTreeMap<String, SourceKind>,
    removes: &'a [ObjectKey],
    /// Puts a later put may lie below, the last put on top.
    open: Vec<ObjectKey>,
}

impl<'a, L: LastCatalog> PutsCheck<'a, L> {
    /// Checks the sources of the next catalog (`sources`) against `last`'s,
    /// with the keys `removes` (sorted) removed.
    pub fn new(
        last: &'a L,
        sources: &'a BTreeMap<String, SourceKind>,
        removes: &'a [ObjectKey],
    ) -> Result<Self, Error> {
        check_sources(last, sources, removes)?;
        Ok(PutsCheck {
            last,
            sources,
            removes,
            open: Vec::new(),
        })
    }

    /// Checks the next put, `object` at `key` (after every put before it in
    /// key order).
    pub fn put(&mut self, key: &ObjectKey, object: &Object) -> Result<(), Error> {
        check_put(self.sources, key, object)?;
        if let Some(top) = self.open.last() {
            if top >= key {
                return Err(Error::Inconsistent(if top == key {
                    format!("object {key} changed twice")
                } else {
                    format!("object {key} put after {top}, out of key order")
                }));
            }
        }
        // Puts `key` is not within `p/` or before it: no later put can be
        // below them either.
        let within = |p: &ObjectKey| {
            p.source == key.source
                && key.path.starts_with(&p.path)
                && key
                    .path
                    .as_bytes()
                    .get(p.path.len())
                    .is_some_and(|&c| c <= b'/')
        };
        while self.open.last().is_some_and(|p| !within(p)) {
            self.open.pop();
        }
        // No put is an ancestor directory of this one...
        let below = |p: &ObjectKey| key.path.as_bytes().get(p.path.len()) == Some(&b'/');
        if self.open.iter().any(below) {
            return Err(stands_in_the_way(key));
        }
        // ...nor an object of the last catalog kept...
        let mut probe = ObjectKey {
            source: String::new(),
            path: String::new(),
        };
        let kept =
            |k: &ObjectKey| Ok(self.removes.binary_search(k).is_err() && self.last.holds(k)?);
        if an_ancestor_is(key, &mut probe, kept)? {
            return Err(stands_in_the_way(key));
        }
        // ...and nothing kept lies below it.
        probe.path.clear();
        probe.path.push_str(&key.path);
        probe.path.push('/');
        let below = |k: &ObjectKey| k.source == key.source && k.path.starts_with(&probe.path);
        if let Some(k) = first_kept(self.last, self.removes, &probe, below)? {
            return Err(stands_in_the_way(&k));
        }
        self.open.push(key.clone());
        Ok(())
    }
}

/// Whether the catalog `changes` make of `last` holds `key`.
fn holds_after(last: &impl LastCatalog, changes: &Changes, key: &ObjectKey) -> Result<bool, Error> {
    Ok(changes.puts.contains_key(key)
        || (changes.removes.binary_search(key).is_err() && last.holds(key)?))
}

/// The first key of `last` from `from` on that `within` accepts and
/// `removes` (sorted) do not hold (the keys are visited while `within` holds).
fn first_kept(
    last: &impl LastCatalog,
    removes: &[ObjectKey],
    from: &ObjectKey,
    within: impl Fn(&ObjectKey) -> bool,
) -> Result<Option<ObjectKey>, Error> {
    let mut found = None;
    last.keys_from(from, &mut |k| {
        if !within(k) {
            return false;
        }
        if removes.binary_search(k).is_err() {
            found = Some(k.clone());
            return false;
        }
        true
    })?;
    Ok(found)
}

/// Checks what `changes` can break in `last` (itself valid): what
/// [`Catalog::validate`] of the catalog they make would find, looking only
/// at the sources, the objects put, their ancestors and the paths below
/// them.
pub fn validate_changes(last: &impl LastCatalog, changes: &Changes) -> Result<(), Error> {
    check_sources(last, &changes.sources, &changes.removes)?;
    let mut probe = ObjectKey {
        source: String::new(),
        path: String::new(),
    };
    for (key, obj) in &changes.puts {
        check_put(&changes.sources, key, obj)?;
        // No ancestor directory of this path is an object...
        if an_ancestor_is(key, &mut probe, |k| holds_after(last, changes, k))? {
            return Err(stands_in_the_way(key));
        }
        // ...and nothing lies below it.
        probe.path.clear();
        probe.path.push_str(&key.path);
        probe.path.push('/');
        let below = |k: &ObjectKey| k.source == key.source && k.path.starts_with(&probe.path);
        let put_below = changes.puts.range(&probe..).next().map(|(k, _)| k);
        if let Some(k) = put_below.filter(|k| below(k)) {
            return Err(stands_in_the_way(k));
        }
        if let Some(k) = first_kept(last, &changes.removes, &probe, below)? {
            return Err(stands_in_the_way(&k));
        }
    }
    Ok(())
}

/// The next catalog's sources (`sources`): every name valid, and a source
/// of `last` that is gone takes every object of it along (`removes`,
/// sorted, are the keys removed).
fn check_sources(
    last: &impl LastCatalog,
    sources: &BTreeMap<String, SourceKind>,
    removes: &[ObjectKey],
) -> Result<(), Error> {
    for name in sources.keys() {
        crate::path::check_source_name(name)?;
    }
    for gone in last.sources().keys() {
        if sources.contains_key(gone) {
            continue;
        }
        let from = ObjectKey {
            source: gone.clone(),
            path: String::new(),
        };
        if let Some(key) = first_kept(last, removes, &from, |k| k.source == *gone)? {
            return Err(undeclared(&key));
        }
    }
    Ok(())
}

/// Whether `held` says yes of an ancestor directory of `key` (each given
/// as `probe`, a key reused so that no key is allocated per ancestor).
fn an_ancestor_is(
    key: &ObjectKey,
    probe: &mut ObjectKey,
    mut held: impl FnMut(&ObjectKey) -> Result<bool, Error>,
) -> Result<bool, Error> {
    probe.source.clone_from(&key.source);
    let mut path = key.path.as_str();
    while let Some(i) = path.rfind('/') {
        path = &path[..i];
        probe.path.clear();
        probe.path.push_str(path);
        if held(probe)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The checks of one put on its own: a key a store can hold, of a declared
/// source, and an object whose encoding (or link target) is valid.
fn check_put(
    sources: &BTreeMap<String, SourceKind>,
    key: &ObjectKey,
    object: &Object,
) -> Result<(), Error> {
    check_key(key)?;
    if !sources.contains_key(&key.source) {
        return Err(undeclared(key));
    }
    match object {
        Object::Symlink { target } => check_symlink_target(&key.path, target),
        Object::File(f) => check_encoding(key, f),
    }
}

fn undeclared(key: &ObjectKey) -> Error {
    Error::Inconsistent(format!(
        "object {key} belongs to source {:?}, which the manifest does not declare",
        key.source
    ))
}

fn stands_in_the_way(key: &ObjectKey) -> Error {
    Error::UnsafePath {
        path: key.to_string(),
        why: "an object of the same catalog stands where its directory must be",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(source: &str, path: &str) -> ObjectKey {
        ObjectKey {
            source: source.into(),
            path: path.into(),
        }
    }

    fn link(t: &str) -> Object {
        Object::Symlink { target: t.into() }
    }

    fn last() -> Catalog {
        let mut c = Catalog::default();
        c.sources.insert("a".into(), SourceKind::Files);
        c.sources.insert("b".into(), SourceKind::Files);
        for p in ["d/x", "d/y", "e", "f/g/h"] {
            c.objects.insert(key("a", p), link("t"));
        }
        c.objects.insert(key("b", "z"), link("t"));
        c
    }

    /// The next catalog made the slow way: a copy, changed, validated whole.
    fn made(last: &Catalog, changes: &Changes) -> Result<Catalog, Error> {
        let mut next = last.clone();
        next.absorb(changes.sources.clone(), changes.clone().into_list());
        next.validate().map(|()| next)
    }

    /// Keys put, keys removed, the sources.
    type Case = (
        Vec<(&'static str, &'static str)>,
        Vec<(&'static str, &'static str)>,
        Vec<&'static str>,
    );

    /// Every way to change `last()` in the cases below agrees with making
    /// the next catalog and validating it whole: the same verdict, the
    /// same objects, the same sums.
    #[test]
    fn changes_are_checked_and_merged_as_the_whole_next_catalog_would_be() {
        let last = last();
        let cases: Vec<Case> = vec![
            // puts, removes, sources
            (vec![], vec![], vec!["a", "b"]),
            (
                vec![("a", "d/w"), ("a", "e")],
                vec![("a", "d/y")],
                vec!["a", "b"],
            ),
            // A put where a directory is (below it: d/x, d/y).
            (vec![("a", "d")], vec![], vec!["a", "b"]),
            // ... fine once what is below is gone.
            (
                vec![("a", "d")],
                vec![("a", "d/x"), ("a", "d/y")],
                vec!["a", "b"],
            ),
            // A put below an object (e).
            (vec![("a", "e/q")], vec![], vec!["a", "b"]),
            (vec![("a", "e/q")], vec![("a", "e")], vec!["a", "b"]),
            // A put below another put.
            (vec![("a", "n"), ("a", "n/m")], vec![], vec!["a", "b"]),
            // ... with puts between them in key order ('-' and '.' sort
            // before '/').
            (
                vec![("a", "n"), ("a", "n-x"), ("a", "n.y/z"), ("a", "n/m")],
                vec![],
                vec!["a", "b"],
            ),
            (
                vec![("a", "n"), ("a", "n-x"), ("a", "n.y/z"), ("a", "n0")],
                vec![],
                vec!["a", "b"],
            ),
            (
                vec![("a", "n-x/q"), ("a", "n/m"), ("a", "n")],
                vec![],
                vec!["a", "b"],
            ),
            // A deep ancestor.
            (vec![("a", "f")], vec![], vec!["a", "b"]),
            (vec![("a", "f/g/h/i")], vec![("a", "f/g/h")], vec!["a", "b"]),
            // A source dropped with or without its objects.
            (vec![], vec![("b", "z")], vec!["a"]),
            (vec![], vec![], vec!["a"]),
            // A put of an undeclared source.
            (vec![("c", "x")], vec![], vec!["a", "b"]),
            (vec![("c", "x")], vec![], vec!["a", "b", "c"]),
            (vec![("a", "../x")], vec![], vec!["a", "b"]),
        ];
        for (puts, removes, sources) in cases {
            let changes = Changes {
                sources: sources
                    .iter()
                    .map(|s| (s.to_string(), SourceKind::Files))
                    .collect(),
                puts: puts.iter().map(|(s, p)| (key(s, p), link("new"))).collect(),
                removes: removes.iter().map(|(s, p)| key(s, p)).collect(),
            };
            let what = format!("{puts:?} {removes:?} {sources:?}");
            let slow = made(&last, &changes);
            let fast = last.validate_changes(&changes);
            assert_eq!(fast.is_ok(), slow.is_ok(), "{what}: {fast:?} / {slow:?}");
            // The puts one at a time, in key order: the same verdict.
            let streamed = PutsCheck::new(&last, &changes.sources, &changes.removes)
                .and_then(|mut c| changes.puts.iter().try_for_each(|(k, o)| c.put(k, o)));
            assert_eq!(streamed.is_ok(), slow.is_ok(), "{what}: {streamed:?}");
            if let Ok(next) = slow {
                let merged: Vec<_> = last.objects_after(&changes).collect();
                let whole: Vec<_> = next.objects.iter().collect();
                assert_eq!(merged, whole, "{what}");
                let sums = Sums::of(next.objects.values());
                assert_eq!(Sums::of(merged.iter().map(|(_, o)| *o)), sums);
                assert_eq!(sums.objects, next.objects.len() as u64);
            }
        }
    }

    /// A first import's checks without a map ([`check_first_changes`])
    /// agree with [`check_changes_owned`] and [`validate_changes`] over the
    /// empty catalog: the same objects in key order, or the same error;
    /// a list out of key order gives the same objects.
    #[test]
    fn a_first_change_list_is_checked_as_the_map_checks_it() {
        let empty = Catalog::default();
        let files = |names: &[&str]| -> BTreeMap<String, SourceKind> {
            names
                .iter()
                .map(|s| (s.to_string(), SourceKind::Files))
                .collect()
        };
        let put = |s: &str, p: &str, t: &str| Change::Put {
            key: key(s, p),
            object: link(t),
        };
        let patch = Change::Put {
            key: key("a", "p"),
            object: Object::File(FileObject {
                size: 1,
                sha256: Sha256::of(b"x"),
                executable: false,
                encoding: crate::catalog::Encoding::Rebuilt(Box::new(crate::catalog::Rebuilt {
                    recipe: vec![],
                    expanded_len: 1,
                    expanded_blake3: [0; 32],
                    expanded: crate::catalog::Expanded::Patch {
                        base: crate::catalog::Base {
                            key: key("a", "base"),
                            sha256: Sha256::of(b"b"),
                            form: crate::catalog::BaseForm::Bytes,
                            len: 1,
                            blake3: [0; 32],
                        },
                        patch: vec![],
                    },
                })),
            }),
        };
        let ab = files(&["a", "b"]);
        let cases: Vec<(BTreeMap<String, SourceKind>, Vec<Change>)> = vec![
            (ab.clone(), vec![]),
            (files(&[]), vec![]),
            (
                ab.clone(),
                vec![
                    put("a", "d/x", "t"),
                    put("a", "d/y", "t"),
                    put("b", "z", "t"),
                ],
            ),
            // Out of key order.
            (
                ab.clone(),
                vec![
                    put("b", "z", "t"),
                    put("a", "d/y", "t"),
                    put("a", "d/x", "t"),
                ],
            ),
            // A key twice, in order and out of it.
            (ab.clone(), vec![put("a", "x", "1"), put("a", "x", "2")]),
            (
                ab.clone(),
                vec![put("a", "x", "1"), put("a", "w", "t"), put("a", "x", "2")],
            ),
            // A removal; a bad key; a patch (its base is not held).
            (ab.clone(), vec![Change::Remove { key: key("a", "x") }]),
            (ab.clone(), vec![put("a", "../x", "t")]),
            (ab.clone(), vec![patch]),
            // An object where a directory stands, above and below; with
            // a key between them.
            (ab.clone(), vec![put("a", "n", "t"), put("a", "n/m", "t")]),
            (
                ab.clone(),
                vec![
                    put("a", "n", "t"),
                    put("a", "n-1", "t"),
                    put("a", "n/m", "t"),
                ],
            ),
            (ab.clone(), vec![put("a", "f/g/h", "t"), put("a", "f", "t")]),
            // An undeclared source; a bad source name; a bad target.
            (ab.clone(), vec![put("c", "x", "t")]),
            (files(&["a", "../b"]), vec![put("a", "x", "t")]),
            (ab.clone(), vec![put("a", "x", "/etc/passwd")]),
            // Prefixes that are no directory (kept in the stream's chain),
            // and the same paths in two sources.
            (
                ab.clone(),
                vec![
                    put("a", "n", "t"),
                    put("a", "n-1", "t"),
                    put("a", "n-1x/m", "t"),
                    put("a", "nm/o", "t"),
                    put("b", "n/m", "t"),
                ],
            ),
            (ab.clone(), vec![put("a", "n", "t"), put("b", "n/m", "t")]),
            // Two objects where directories stand, the later one first in
            // a stream's pass.
            (
                ab.clone(),
                vec![
                    put("a", "n", "t"),
                    put("a", "n-1", "t"),
                    put("a", "n-1/x", "t"),
                    put("a", "n/x", "t"),
                ],
            ),
            (
                ab.clone(),
                vec![
                    put("a", "f", "t"),
                    put("a", "f/g", "t"),
                    put("a", "f/g/h", "t"),
                ],
            ),
        ];
        for (i, (sources, changes)) in cases.into_iter().enumerate() {
            let mut digest = |_: &ObjectKey| Ok(None);
            let map = check_changes_owned(&empty, &mut digest, &sources, changes.clone())
                .and_then(|c| validate_changes(&empty, &c).map(|()| c));
            // The stream's pass accepts exactly the lists in key order the
            // checks accept (the others go to `check_first_changes`).
            let in_order = changes.windows(2).all(|w| w[0].key() < w[1].key());
            let pass = first_changes_pass(&empty, &sources, changes.iter().cloned()).unwrap();
            assert_eq!(pass, in_order && map.is_ok(), "case {i}");
            let first = check_first_changes(&empty, &sources, changes);
            match (map, first) {
                (Ok(map), Ok(first)) => {
                    assert!(map.removes.is_empty(), "case {i}");
                    let map: Vec<_> = map.puts.into_iter().collect();
                    assert_eq!(map, first, "case {i}");
                }
                (Err(m), Err(f)) => assert_eq!(m.to_string(), f.to_string(), "case {i}"),
                (m, f) => panic!("case {i}: the map gave {m:?}, the list {f:?}"),
            }
        }
    }

    #[test]
    fn the_change_list_is_the_diffs() {
        let last = last();
        let mut changes = Changes {
            sources: last.sources.clone(),
            ..Changes::default()
        };
        changes.puts.insert(key("a", "e"), link("other"));
        changes.puts.insert(key("a", "new"), link("t"));
        changes.removes = vec![key("a", "d/x"), key("b", "z")];
        let mut next = last.clone();
        next.absorb(changes.sources.clone(), changes.clone().into_list());
        assert_eq!(changes.into_list(), last.diff(&next));
    }
}
