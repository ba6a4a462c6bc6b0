//! Both Ferry agents in one process, for fast tests.
//!
//! A [`Pair`] holds an outside (`ferry-out`'s state, a signing key and one
//! `files` source named `tools`) and an inside (`ferry-in`'s state, trusting
//! that key) in one temporary directory. It calls the agents' library
//! functions directly — `agent_outside::export`, `agent_inside::import`,
//! `agent_inside::apply` — with no sockets and no child processes, so a test
//! of a whole export and import takes milliseconds. The model is
//! quinn-proto's test `Pair` (`quinn-proto/src/tests/util.rs`): one side
//! produces, the other consumes, and [`Pair::step`] / [`Pair::drive`] move
//! bundles across until the two agree.
//!
//! This crate depends on both agents and nothing depends on it, so it is the
//! one place both can be reached without a dependency cycle. The end-to-end
//! tests in `tests/` still drive the real binaries for what only they can
//! show (command lines, exit codes, crashes with `kill -9`, real clients).

#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

use agent_inside::apply::ApplyOptions;
use agent_inside::db::{Applied, Bind, Db};
use agent_inside::import::{self, Report};
use agent_outside::config::Config;
use agent_outside::export::{self, ExportOptions, Exported};
use agent_outside::ledger::Ledger;
use agent_outside::source::Source;
use anyhow::{Context, Result};
use ferry_protocol::catalog::Catalog;
use ferry_protocol::keys::SecretKey;
use ferry_protocol::limits::ReceiverLimits;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Held by the tests that count streamed analyses
/// (`ferry_recipe::stream_expand::streamed_analyses`, a count for the whole
/// process), so that another test's analysis is not counted as theirs.
#[cfg(test)]
pub(crate) static COUNTING_STREAMED: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[cfg(test)]
mod cut_tests;
#[cfg(test)]
mod delta_tests;
#[cfg(test)]
mod disk_tests;
#[cfg(test)]
mod pgzip_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod trust_tests;
#[cfg(test)]
mod volume_tests;
#[cfg(test)]
mod window_tests;

/// The name of the `files` source every outside of the harness has.
pub const SOURCE: &str = "tools";

/// An outside agent: its state, key, source tree and export settings.
pub struct Outside {
    /// The state directory.
    pub layout: agent_outside::layout::Layout,
    /// The tree of the `tools` source.
    pub src: PathBuf,
    /// The signing key.
    pub key: SecretKey,
    /// Export settings (1 MiB volumes, zstd 3, 30 days by default).
    pub opts: ExportOptions,
    sources: Vec<Box<dyn Source>>,
}

impl Outside {
    /// An outside with state in `root/out-state`, its source tree in
    /// `root/upstream`, and a key from `seed`.
    pub fn new(root: &Path, seed: u8) -> Result<Outside> {
        let src = root.join("upstream");
        std::fs::create_dir_all(&src)?;
        let layout = agent_outside::layout::Layout::new(&root.join("out-state"));
        std::fs::create_dir_all(&layout.root)?;
        Outside::with(layout, src, SecretKey::from_seed([seed; 32]))
    }

    fn with(
        layout: agent_outside::layout::Layout,
        src: PathBuf,
        key: SecretKey,
    ) -> Result<Outside> {
        let config = layout.root.join("ferry-out.toml");
        std::fs::write(
            &config,
            format!(
                "[[source]]\nname = \"{SOURCE}\"\ntype = \"files\"\npath = \"{}\"\n",
                src.display()
            ),
        )?;
        let cfg = Config::load(&config)?;
        let sources = cfg
            .sources
            .iter()
            .map(agent_outside::source::from_config)
            .collect::<Result<Vec<_>>>()?;
        Ok(Outside {
            layout,
            src,
            key,
            opts: ExportOptions {
                volume_size: 1 << 20,
                level: 3,
                expires_in: 30 * 86_400,
                delta: Default::default(),
                puts_held: agent_outside::export::PUTS_HELD,
                media: None,
            },
            sources,
        })
    }

    /// A copy of this outside (state and source tree) under `root`: the same
    /// stream, key and ledger, from here on a history of its own (a fork).
    pub fn fork(&self, root: &Path) -> Result<Outside> {
        let layout = agent_outside::layout::Layout::new(&root.join("out-state"));
        let src = root.join("upstream");
        copy_tree(&self.layout.root, &layout.root)?;
        copy_tree(&self.src, &src)?;
        let key = SecretKey::from_text(&self.key.to_text())?;
        Outside::with(layout, src, key)
    }

    /// The stream this outside exports.
    pub fn stream(&self) -> ferry_protocol::id::StreamId {
        Ledger::open(&self.layout)
            .and_then(|l| l.stream())
            .expect("the outside's stream")
    }

    /// Writes a file of the source tree (creating directories).
    pub fn write(&self, path: &str, data: &[u8]) {
        let p = self.src.join(path);
        std::fs::create_dir_all(p.parent().expect("a path in the tree")).unwrap();
        std::fs::write(p, data).unwrap();
    }

    /// Removes a file of the source tree.
    pub fn remove(&self, path: &str) {
        std::fs::remove_file(self.src.join(path)).unwrap();
    }

    /// Exports now, as `ferry-out export` does (without the copy to media).
    pub fn export(&self) -> Result<Option<Exported>> {
        self.export_at(ferry_agent_common::now_unix())
    }

    /// Exports with the creation time `now` (Unix seconds).
    pub fn export_at(&self, now: u64) -> Result<Option<Exported>> {
        let ledger = Ledger::open(&self.layout)?;
        export::export_at(
            &self.layout,
            &ledger,
            &self.key,
            &self.sources,
            &self.opts,
            now,
        )
    }

    /// Exports with other sources than the `tools` tree (a test's own).
    pub fn export_sources(&self, sources: &[Box<dyn Source>]) -> Result<Option<Exported>> {
        let ledger = Ledger::open(&self.layout)?;
        export::export(&self.layout, &ledger, &self.key, sources, &self.opts)
    }

    /// The catalog the ledger holds for bundle `sequence`.
    pub fn catalog(&self, sequence: u64) -> Result<Catalog> {
        Ledger::open(&self.layout)?.catalog(sequence)
    }

    /// Copies exported bundle `e` into the media directory `media`, as
    /// `ferry-out export --to` does.
    pub fn write_to_media(&self, e: &Exported, media: &Path) -> Result<PathBuf> {
        export::copy_to_media(&self.layout, &e.record, media)?;
        Ok(media.join(&e.record.dir_name))
    }
}

/// An inside agent: its state, limits and apply settings.
pub struct Inside {
    /// The state directory.
    pub layout: agent_inside::layout::Layout,
    /// Receiver limits.
    pub limits: ReceiverLimits,
    /// Apply settings (the space check is off: tests run on shared disks).
    pub apply: ApplyOptions,
}

impl Inside {
    /// An inside with state in `root/in-state`.
    pub fn new(root: &Path) -> Inside {
        Inside {
            layout: agent_inside::layout::Layout::new(&root.join("in-state")),
            limits: ReceiverLimits::default(),
            apply: ApplyOptions {
                allow_expired: false,
                no_space_check: true,
                policy: agent_inside::policy::Policy::default(),
                rebase: false,
                upstream: None,
            },
        }
    }

    /// Opens the database (close it, by dropping it, before an import).
    pub fn db(&self) -> Db {
        Db::open(&self.layout.db()).expect("the inside's database opens")
    }

    /// Trusts `key`'s public half bound as `bind` says, as `ferry-in trust
    /// add --stream ID` (or `--first-use`) does.
    pub fn trust(&self, key: &SecretKey, bind: Bind) {
        self.db().trust(&key.public(), bind).expect("trust");
    }

    /// Imports every bundle in `media`, as `ferry-in import` does.
    pub fn import(&self, media: &Path) -> Result<Report> {
        import::import(&self.layout, media, &self.limits, self.apply)
    }

    /// Checks every bundle in `media` and applies nothing, as `ferry-in verify` does.
    pub fn verify(&self, media: &Path) -> Result<Report> {
        import::verify(&self.layout, media, &self.limits, self.apply)
    }

    /// What has been applied.
    pub fn applied(&self) -> Applied {
        self.db().applied().expect("applied record")
    }

    /// Where the bytes of `tools/<path>` in the current generation are: its
    /// object (`STATE/objects/ab/<sha256>`, found through the generation's
    /// path index; a link followed), or a path that does not exist when
    /// the generation does not hold it as a file.
    pub fn served(&self, path: &str) -> PathBuf {
        served_path(&self.layout, SOURCE, path)
    }

    /// What the current generation serves of `tools`, as [`tree_digest`]
    /// gives a tree: each path's bytes hashed (read from its object) or its
    /// link target.
    pub fn served_digest(&self) -> BTreeMap<String, String> {
        served_digest(&self.layout, SOURCE)
    }

    /// The object file that holds the bytes of `tools/<path>` in the current
    /// catalog (`STATE/objects/ab/<sha256>`): what serve, ranges and patch
    /// bases read. The path of [`Inside::served`] is a link to it.
    pub fn object_of(&self, path: &str) -> PathBuf {
        let key = ferry_protocol::path::ObjectKey {
            source: SOURCE.into(),
            path: path.into(),
        };
        let catalog = self.db().catalog().expect("the catalog");
        match catalog.objects.get(&key) {
            Some(ferry_protocol::catalog::Object::File(f)) => {
                agent_inside::objects::ObjectStore::new(&self.layout.objects()).path(&f.sha256)
            }
            other => panic!("{key} is no file of the catalog: {other:?}"),
        }
    }

    /// The chunks the inside holds, as hex: those of its chunk store, and
    /// every chunk of its catalog that is a byte range of a file of the
    /// current generation whose bytes hash to the chunk's id.
    pub fn held_chunks(&self) -> std::collections::BTreeSet<String> {
        let catalog = self.db().catalog().expect("the catalog");
        let objects = agent_inside::objects::ObjectStore::new(&self.layout.objects());
        let mut held: std::collections::BTreeSet<String> = self.chunk_files().into_iter().collect();
        for (_, f) in catalog.files() {
            let at = objects.path(&f.sha256);
            for (id, offset, len) in agent_inside::ranges::ranges_of(f) {
                if agent_inside::ranges::read_range(&at, &id, offset, len).is_ok() {
                    held.insert(id.to_hex());
                }
            }
        }
        held
    }

    /// Bytes the state directory takes on disk (allocated blocks), counting
    /// a hard-linked file once, as `du` does.
    pub fn disk_bytes(&self) -> u64 {
        use std::os::unix::fs::MetadataExt;
        fn walk(dir: &Path, seen: &mut std::collections::HashSet<(u64, u64)>) -> u64 {
            let mut total = 0;
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let Ok(m) = e.path().symlink_metadata() else {
                    continue;
                };
                if seen.insert((m.dev(), m.ino())) {
                    total += m.blocks() * 512;
                }
                if m.is_dir() {
                    total += walk(&e.path(), seen);
                }
            }
            total
        }
        walk(&self.layout.root, &mut std::collections::HashSet::new())
    }

    /// Bytes of the files the current generation serves.
    pub fn served_bytes(&self) -> u64 {
        self.db().catalog().expect("the catalog").total_bytes()
    }

    /// The generation directories on disk, by name.
    pub fn generations(&self) -> Vec<String> {
        let mut out: Vec<String> = std::fs::read_dir(self.layout.gens())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        out.sort();
        out
    }

    /// The chunk ids in the chunk store, as hex.
    pub fn chunk_files(&self) -> Vec<String> {
        let mut out = Vec::new();
        for fan in std::fs::read_dir(self.layout.chunks())
            .into_iter()
            .flatten()
        {
            for e in std::fs::read_dir(fan.unwrap().path()).unwrap() {
                out.push(e.unwrap().file_name().to_string_lossy().into_owned());
            }
        }
        out.sort();
        out
    }
}

/// An outside and an inside that trusts it, in one temporary directory.
pub struct Pair {
    /// Keeps the temporary directory alive.
    pub dir: tempfile::TempDir,
    /// The outside.
    pub outside: Outside,
    /// The inside.
    pub inside: Inside,
    media: u32,
}

impl Pair {
    /// A fresh pair with an empty source tree.
    pub fn new() -> Pair {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let outside = Outside::new(dir.path(), 1).expect("an outside");
        let inside = Inside::new(dir.path());
        inside.trust(&outside.key, Bind::Stream(outside.stream()));
        Pair {
            dir,
            outside,
            inside,
            media: 0,
        }
    }

    /// A new, empty media directory (`media-1`, `media-2`, …).
    pub fn new_media(&mut self) -> PathBuf {
        self.media += 1;
        let m = self.dir.path().join(format!("media-{}", self.media));
        std::fs::create_dir_all(&m).unwrap();
        m
    }

    /// Exports and writes the bundle to a new media directory; `None` when
    /// nothing changed.
    pub fn export_to_media(&mut self) -> Option<(Exported, PathBuf)> {
        let e = self.outside.export().expect("export")?;
        let media = self.new_media();
        self.outside
            .write_to_media(&e, &media)
            .expect("copy to media");
        Some((e, media))
    }

    /// One round: export what changed, carry it across, import it. `None`
    /// when the outside had nothing new.
    pub fn step(&mut self) -> Option<(Exported, Report)> {
        let (e, media) = self.export_to_media()?;
        let report = self.inside.import(&media).expect("import runs");
        Some((e, report))
    }

    /// Steps until the outside has nothing new; panics on a failed import.
    /// Returns the number of bundles moved.
    pub fn drive(&mut self) -> usize {
        let mut n = 0;
        while let Some((e, report)) = self.step() {
            assert!(
                report.ok(),
                "bundle {} failed: {:?}",
                e.record.sequence,
                report.failed
            );
            n += 1;
        }
        n
    }

    /// Panics unless the inside serves exactly the outside's source tree.
    pub fn assert_in_sync(&self) {
        assert_eq!(
            self.inside.served_digest(),
            tree_digest(&self.outside.src),
            "the inside does not serve the source tree"
        );
    }
}

impl Default for Pair {
    fn default() -> Self {
        Self::new()
    }
}

/// Where the bytes of `source`'s `path` in the current generation of the
/// state at `layout` are (see [`Inside::served`]): resolved as `serve` does
/// (`agent_inside::serve::resolve`, links followed within the catalog).
pub fn served_path(layout: &agent_inside::layout::Layout, source: &str, path: &str) -> PathBuf {
    let absent = || layout.root.join("not-served").join(source).join(path);
    let Some(gen) = agent_inside::genread::GenRead::open_current(layout).expect("the generation")
    else {
        return absent();
    };
    match agent_inside::serve::resolve(&gen, source, path).expect("the path index") {
        agent_inside::serve::Resolved::File(key, f) => gen.bytes_path(&key, &f),
        _ => absent(),
    }
}

/// What the current generation of `layout` serves of `source`, as
/// [`tree_digest`] gives a tree (bytes hashed from their objects).
pub fn served_digest(
    layout: &agent_inside::layout::Layout,
    source: &str,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(gen) = agent_inside::genread::GenRead::open_current(layout).expect("the generation")
    else {
        return out;
    };
    for item in gen.scan(source, "", "") {
        let (key, held) = item.expect("the path index");
        let v = match held {
            agent_inside::genread::Held::Link(t) => format!("link:{t}"),
            agent_inside::genread::Held::File(f) => {
                let data = std::fs::read(gen.bytes_path(&key, &f)).unwrap();
                ferry_protocol::id::Sha256::of(&data).to_hex()
            }
        };
        out.insert(key.path, v);
    }
    out
}

/// Every entry under `root`: regular files by content hash, links by target.
pub fn tree_digest(root: &Path) -> BTreeMap<String, String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap())
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            let ft = e.file_type().unwrap();
            if ft.is_symlink() {
                let target = std::fs::read_link(&p).unwrap();
                out.insert(rel, format!("link:{}", target.display()));
            } else if ft.is_dir() {
                walk(base, &p, out);
            } else {
                let data = std::fs::read(&p).unwrap();
                out.insert(rel, ferry_protocol::id::Sha256::of(&data).to_hex());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Copies a directory tree (regular files, links, directories).
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let ft = e.file_type()?;
        if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
        } else if ft.is_dir() {
            copy_tree(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}

/// Deterministic pseudo-random bytes (xorshift64*).
pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(n);
    out
}
