//! Helpers for the end-to-end tests: they drive the real `ferry-out` and
//! `ferry-in` binaries, as an operator would, in temporary directories.
//!
//! The binaries must be built first (`cargo build --workspace`, which the
//! README's test command does); [`bin`] says so if they are missing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The path of a workspace binary, next to the test executable's directory.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory");
    let p = dir.join(name);
    assert!(
        p.is_file(),
        "{} is missing: build the binaries first with `cargo build --workspace`",
        p.display()
    );
    p
}

/// A run's outcome, with text forms for assertions.
pub struct Run {
    /// Exit status success.
    pub ok: bool,
    /// Exit code.
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// The outcome of a finished command.
    pub fn from(o: Output) -> Run {
        Run {
            ok: o.status.success(),
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Panics unless the run succeeded.
    pub fn expect_ok(self) -> Run {
        assert!(
            self.ok,
            "command failed ({:?}):\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    /// Panics unless the run failed and stderr mentions every one of `needles`.
    pub fn expect_fail(self, needles: &[&str]) -> Run {
        assert!(
            !self.ok,
            "command should have failed:\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        for n in needles {
            assert!(
                self.stderr.contains(n),
                "stderr lacks {n:?}:\n{}",
                self.stderr
            );
        }
        self
    }

    /// stdout and stderr together.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// A test setup: an outside state, an inside state, a source tree, a config.
pub struct Env {
    /// Keeps the temporary directory alive.
    pub dir: tempfile::TempDir,
    /// The outside state directory.
    pub out_state: PathBuf,
    /// The inside state directory.
    pub in_state: PathBuf,
    /// The source tree of the `tools` source.
    pub src: PathBuf,
    /// The config file.
    pub config: PathBuf,
}

impl Default for Env {
    fn default() -> Self {
        Self::new()
    }
}

impl Env {
    /// A fresh setup with a key made outside and trusted inside, and an
    /// empty source tree `tools`.
    pub fn new() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        let src = root.join("upstream/tools");
        std::fs::create_dir_all(&src).unwrap();
        let config = root.join("ferry-out.toml");
        std::fs::write(
            &config,
            format!(
                "[[source]]\nname = \"tools\"\ntype = \"files\"\npath = \"{}\"\n",
                src.display()
            ),
        )
        .unwrap();
        let env = Env {
            out_state: root.join("out-state"),
            in_state: root.join("in-state"),
            src,
            config,
            dir,
        };
        env.out(&["keygen"]).expect_ok();
        env.trust_own_key();
        env
    }

    /// The outside's stream id, as `ferry-out status` prints it.
    pub fn stream(&self) -> String {
        let r = self.out(&["status"]).expect_ok();
        r.stdout
            .lines()
            .find_map(|l| l.strip_prefix("stream:"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| panic!("ferry-out status names no stream:\n{}", r.stdout))
    }

    /// `ferry-in trust add signing.pub --stream ID` for this outside's key
    /// and stream.
    pub fn trust_own_key(&self) {
        self.inn(&[
            "trust",
            "add",
            self.out_state.join("signing.pub").to_str().unwrap(),
            "--stream",
            &self.stream(),
        ])
        .expect_ok();
    }

    /// The temporary root.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `ferry-out --state OUT args…`.
    pub fn out(&self, args: &[&str]) -> Run {
        run(Command::new(bin("ferry-out"))
            .arg("--state")
            .arg(&self.out_state)
            .args(args))
    }

    /// Runs `ferry-in --state IN args…`.
    pub fn inn(&self, args: &[&str]) -> Run {
        run(Command::new(bin("ferry-in"))
            .arg("--state")
            .arg(&self.in_state)
            .args(args))
    }

    /// Exports into `media` (relative to the temporary root).
    pub fn export(&self, media: &str) -> Run {
        self.export_with(media, &[])
    }

    /// Exports into `media` with `extra` arguments (such as `--volume-size 1M`).
    pub fn export_with(&self, media: &str, extra: &[&str]) -> Run {
        let m = self.root().join(media);
        let mut args = vec![
            "export",
            "--config",
            self.config.to_str().unwrap(),
            "--to",
            m.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        self.out(&args)
    }

    /// `export --reship REPORT` (a `ferry-in scrub --json` report) to
    /// `media`, with `extra` arguments (such as `--unsigned`).
    pub fn export_reship(&self, report: &Path, media: &str, extra: &[&str]) -> Run {
        let m = self.root().join(media);
        let mut args = vec!["export"];
        args.extend_from_slice(extra);
        args.extend([
            "--reship",
            report.to_str().unwrap(),
            "--config",
            self.config.to_str().unwrap(),
            "--to",
            m.to_str().unwrap(),
        ]);
        self.out(&args)
    }

    /// Imports from `media` (relative to the temporary root).
    pub fn import(&self, media: &str) -> Run {
        let m = self.root().join(media);
        self.inn(&["import", m.to_str().unwrap()])
    }

    /// Verifies `media` (relative to the temporary root).
    pub fn verify(&self, media: &str) -> Run {
        let m = self.root().join(media);
        self.inn(&["verify", m.to_str().unwrap()])
    }

    /// The single bundle directory in `media`, panicking if there is not exactly one.
    pub fn only_bundle(&self, media: &str) -> PathBuf {
        let dirs: Vec<_> = std::fs::read_dir(self.root().join(media))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.join("manifest.ferry").is_file())
            .collect();
        assert_eq!(dirs.len(), 1, "expected one bundle in {media}: {dirs:?}");
        dirs.into_iter().next().unwrap()
    }

    /// `ferry-in status --json`, parsed as a tiny subset: the applied sequence.
    pub fn applied_sequence(&self) -> u64 {
        let r = self.inn(&["status", "--json"]).expect_ok();
        let line = r
            .stdout
            .lines()
            .find(|l| l.contains("\"applied_sequence\""))
            .expect("applied_sequence in status");
        line.trim()
            .trim_start_matches("\"applied_sequence\":")
            .trim()
            .trim_end_matches(',')
            .parse()
            .expect("a number")
    }

    /// Where the bytes of `tools/<path>` in the inside's current generation
    /// are: its object (`STATE/objects/ab/<sha256>`), found through the
    /// generation's path index (a link followed); a path that does not
    /// exist when the generation holds no such file.
    pub fn served(&self, path: &str) -> PathBuf {
        self.served_in("tools", path)
    }

    /// [`Env::served`] for `path` of any `source`.
    pub fn served_in(&self, source: &str, path: &str) -> PathBuf {
        ferry_harness::served_path(
            &agent_inside::layout::Layout::new(&self.in_state),
            source,
            path,
        )
    }

    /// What the inside's current generation serves of `source`: each
    /// path's bytes hashed or its link's target, as [`tree_digest`] gives
    /// a tree.
    pub fn served_digest(&self, source: &str) -> std::collections::BTreeMap<String, String> {
        served_digest_of(&self.in_state, source)
    }

    /// The inside's current generation written out as a plain tree by
    /// `ferry-in export-tree` (`<dir>/<store>/<source>/<path>`), for the
    /// checks that walk directories; a new directory each call.
    pub fn export_tree(&self) -> PathBuf {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = self.dir.path().join(format!("served-tree-{n}"));
        self.inn(&["export-tree", dir.to_str().unwrap()])
            .expect_ok();
        dir
    }

    /// The files of the inside's chunk store, sorted. It keeps only chunks
    /// that are not ranges of a served file (those of patched objects'
    /// recipes, and what `scrub` salvaged).
    pub fn chunk_files(&self) -> Vec<PathBuf> {
        let mut out = vec![];
        let Ok(fans) = std::fs::read_dir(self.in_state.join("chunks")) else {
            return out;
        };
        for fan in fans {
            for e in std::fs::read_dir(fan.unwrap().path()).unwrap() {
                out.push(e.unwrap().path());
            }
        }
        out.sort();
        out
    }

    /// Writes a file in the source tree (creating directories).
    pub fn write_src(&self, path: &str, data: &[u8]) {
        let p = self.src.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
}

fn run(cmd: &mut Command) -> Run {
    Run::from(cmd.output().expect("run binary"))
}

/// Deterministic pseudo-random bytes (xorshift64*), fast enough for GiBs.
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

/// Compressible text: numbered lines of words.
pub fn text_bytes(n: usize, seed: u64) -> Vec<u8> {
    const WORDS: [&str; 12] = [
        "ferry", "bundle", "chunk", "volume", "manifest", "signed", "delta", "import", "export",
        "store", "air", "gap",
    ];
    let mut out = Vec::with_capacity(n + 100);
    let mut x = seed | 1;
    let mut line = 0u64;
    while out.len() < n {
        line += 1;
        out.extend_from_slice(format!("{line:08} ").as_bytes());
        for _ in 0..8 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.extend_from_slice(WORDS[(x % 12) as usize].as_bytes());
            out.push(b' ');
        }
        out.push(b'\n');
    }
    out.truncate(n);
    out
}

/// What the current generation of the inside state directory `state`
/// serves of `source` (see [`Env::served_digest`]); empty without one.
pub fn served_digest_of(state: &Path, source: &str) -> std::collections::BTreeMap<String, String> {
    ferry_harness::served_digest(&agent_inside::layout::Layout::new(state), source)
}

/// Every regular file under `root`, relative path to content hash, for comparing trees.
pub fn tree_digest(root: &Path) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    fn walk(base: &Path, dir: &Path, out: &mut std::collections::BTreeMap<String, String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            let ft = e.file_type().unwrap();
            if ft.is_symlink() {
                out.insert(
                    rel,
                    format!("link:{}", std::fs::read_link(&p).unwrap().display()),
                );
            } else if ft.is_dir() {
                walk(base, &p, out);
            } else {
                let data = std::fs::read(&p).unwrap();
                out.insert(rel, ferry_protocol::id::Sha256::of(&data).to_hex());
            }
        }
    }
    walk(root, root, &mut out);
    out
}

/// The total size of every file under `dir`.
pub fn dir_bytes(dir: &Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        n += if m.is_dir() {
            dir_bytes(&e.path())
        } else {
            m.len()
        };
    }
    n
}

/// Runs `ferry-in --state STATE args…`, for copies of a state directory.
pub fn ferry_in(state: &Path, args: &[&str]) -> Run {
    run(Command::new(bin("ferry-in"))
        .arg("--state")
        .arg(state)
        .args(args))
}

/// Runs `ferry-out --state STATE args…`, for copies of a state directory.
pub fn ferry_out(state: &Path, args: &[&str]) -> Run {
    run(Command::new(bin("ferry-out"))
        .arg("--state")
        .arg(state)
        .args(args))
}

/// Copies the tree `from` to `to` with `cp -a`, keeping symlinks, hard links
/// and modes. `to` must not exist yet.
pub fn copy_tree(from: &Path, to: &Path) {
    assert!(!to.exists(), "{} exists already", to.display());
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("run cp");
    assert!(
        st.success(),
        "cp -a {} {} failed",
        from.display(),
        to.display()
    );
}

/// Writes `size` bytes of [`random_bytes`] to `path` in 8 MiB pieces (each
/// with its own seed derived from `seed`), creating directories, so a large
/// file never sits in memory whole.
pub fn write_random_file(path: &Path, size: u64, seed: u64) {
    use std::io::Write;
    const PIECE: u64 = 8 << 20;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut done = 0u64;
    let mut i = 0u64;
    while done < size {
        let n = PIECE.min(size - done);
        let piece_seed = seed.wrapping_mul(1_000_003).wrapping_add(i);
        f.write_all(&random_bytes(n as usize, piece_seed)).unwrap();
        done += n;
        i += 1;
    }
    f.flush().unwrap();
}

/// The few fields of `ferry-in status --json` the tests look at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// `applied_sequence`.
    pub applied_sequence: u64,
    /// `generation`: the generation the database names.
    pub generation: Option<String>,
    /// `serving_generation`: the generation `current` points at.
    pub serving_generation: Option<String>,
}

/// `ferry-in --state STATE status --json`, panicking unless it succeeds.
pub fn status_of(state: &Path) -> Status {
    let r = ferry_in(state, &["status", "--json"]).expect_ok();
    // Top-level keys of the pretty-printed object sit at an indent of two spaces.
    let field = |key: &str| -> String {
        let prefix = format!("  \"{key}\": ");
        let line = r
            .stdout
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("{key} missing from status:\n{}", r.stdout));
        line[prefix.len()..].trim_end_matches(',').to_string()
    };
    let opt_str =
        |v: String| -> Option<String> { (v != "null").then(|| v.trim_matches('"').to_string()) };
    Status {
        applied_sequence: field("applied_sequence")
            .parse()
            .expect("applied_sequence is a number"),
        generation: opt_str(field("generation")),
        serving_generation: opt_str(field("serving_generation")),
    }
}

/// Runs a tool, panicking with its command line and output unless it
/// succeeds; returns its stdout.
pub fn sh(cmd: &mut Command) -> Vec<u8> {
    let o = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

/// [`sh`], its stdout as text.
pub fn sh_text(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&sh(cmd)).into_owned()
}

/// A throwaway ed25519 OpenPGP signing key in a GNUPGHOME of its own
/// (`dir/gnupg-NAME`, mode 0700): (that home, the key's fingerprint, its
/// binary public key at `dir/NAME.gpg`).
pub fn gpg_key(dir: &Path, name: &str) -> (PathBuf, String, PathBuf) {
    let home = dir.join(format!("gnupg-{name}"));
    std::fs::create_dir_all(&home).unwrap();
    let mut perm = std::fs::metadata(&home).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o700);
    std::fs::set_permissions(&home, perm).unwrap();
    let gpg = || {
        let mut c = Command::new("gpg");
        c.env("GNUPGHOME", &home).args(["--batch", "--quiet"]);
        c
    };
    sh(gpg().args([
        "--passphrase",
        "",
        "--quick-gen-key",
        &format!("Ferry Test {name} <{name}@example.org>"),
        "ed25519",
        "sign",
        "never",
    ]));
    let listing = sh_text(gpg().args(["--with-colons", "--list-keys"]));
    let fpr = listing
        .lines()
        .find(|l| l.starts_with("fpr:"))
        .and_then(|l| l.split(':').nth(9))
        .expect("a fingerprint")
        .to_string();
    let public = dir.join(format!("{name}.gpg"));
    let bytes = sh(gpg().args(["--export", &fpr]));
    assert!(!bytes.is_empty(), "gpg exported no public key");
    std::fs::write(&public, bytes).unwrap();
    (home, fpr, public)
}

/// `rpmbuild -bb SPEC` as the tests build packages: under `work/rpmbuild`,
/// the package into `rpmdir/noarch/`, no build-id links, no post-install
/// steps, payload compressor `payload` (rpm's `_binary_payload`, such as
/// `w1.gzdio` or `w19.zstdio`).
pub fn rpmbuild(work: &Path, rpmdir: &Path, spec: &Path, payload: &str) {
    sh(Command::new("rpmbuild")
        .arg("-bb")
        .arg("--define")
        .arg(format!("_topdir {}", work.join("rpmbuild").display()))
        .arg("--define")
        .arg(format!("_rpmdir {}", rpmdir.display()))
        .args(["--define", "_build_id_links none"])
        .args(["--define", "__os_install_post %{nil}"])
        .arg("--define")
        .arg(format!("_binary_payload {payload}"))
        .arg(spec));
}

/// `dnf download --resolve PKGS` from the yum tree of `ferry-in serve` at
/// `addr` (repository `yum/el`), in an install root of its own under the
/// test's root (`dnf-TAG/`), checking no signature; returns the download
/// directory and the file names in it, sorted.
pub fn dnf_download(env: &Env, addr: &str, pkgs: &[&str], tag: &str) -> (PathBuf, Vec<String>) {
    let url = format!("http://{addr}/yum/el/");
    let unchecked = ["--setopt=gpgcheck=0", "--setopt=ferry.gpgcheck=0"].map(String::from);
    dnf_download_ok(env, &url, &unchecked, pkgs, tag)
}

/// [`dnf_download_from`], which must succeed; returns the download
/// directory and the file names in it, sorted.
pub fn dnf_download_ok(
    env: &Env,
    url: &str,
    opts: &[String],
    pkgs: &[&str],
    tag: &str,
) -> (PathBuf, Vec<String>) {
    let out = dnf_download_from(env, url, opts, pkgs, tag);
    assert!(
        out.status.success(),
        "dnf download failed:\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let dest = env.root().join(format!("dnf-{tag}/dl"));
    let mut names = dir_names(&dest);
    names.sort();
    (dest, names)
}

/// `dnf download --resolve PKGS` from the repository `ferry` at `url`, with
/// the dnf arguments `opts` (such as `--setopt=ferry.sslcacert=CA`), in an
/// install root of its own (`dnf-TAG/`), into `dnf-TAG/dl/`: dnf's output.
pub fn dnf_download_from(
    env: &Env,
    url: &str,
    opts: &[String],
    pkgs: &[&str],
    tag: &str,
) -> Output {
    let root = env.root().join(format!("dnf-{tag}"));
    let dest = root.join("dl");
    std::fs::create_dir_all(&dest).unwrap();
    Command::new("dnf")
        .args(["-y", "-q", "--releasever=1", "--setopt=reposdir=/dev/null"])
        .arg(format!(
            "--setopt=cachedir={}",
            root.join("cache").display()
        ))
        .arg(format!("--installroot={}", root.join("root").display()))
        .args(opts)
        .arg(format!("--repofrompath=ferry,{url}"))
        .args(["--repo=ferry", "download", "--resolve"])
        .args(pkgs)
        .arg("--destdir")
        .arg(&dest)
        .output()
        .unwrap()
}

/// The names in directory `dir`, sorted (empty if it does not exist).
pub fn dir_names(dir: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<String> = rd
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// One object of a crafted bundle: its source, the source's kind, its path
/// and its bytes.
pub type CraftedObject<'a> = (
    &'a str,
    ferry_protocol::catalog::SourceKind,
    &'a str,
    &'a [u8],
);

/// Crafts bundle 1 of a fixed stream whose catalog holds exactly `objects`
/// (regular files), signed with the outside's key, honestly, with
/// `ferry_protocol::builder` (chunks cut with the default parameters and
/// zstd where it pays, one volume, exact totals),
/// as `media/bundle-…-00000001/` (relative to the temporary root). Returns
/// the bundle directory. For content the outside cannot produce yet.
pub fn craft_bundle(env: &Env, media: &str, objects: &[CraftedObject<'_>]) -> PathBuf {
    use ferry_protocol::builder::{BundleBuilder, MemoryVolumes, PackOptions, Position, Stamp};
    use ferry_protocol::catalog::{Catalog, Object};
    use ferry_protocol::id::StreamId;
    use ferry_protocol::keys::SecretKey;
    use ferry_protocol::path::ObjectKey;
    use ferry_protocol::volume;

    let key = SecretKey::from_text(
        &std::fs::read_to_string(env.out_state.join("signing.key")).expect("the outside's key"),
    )
    .expect("a secret key");
    // The outside's own stream: the inside trusts its key for that stream only.
    let stream = StreamId::from_hex(&env.stream()).expect("a stream id");
    let position = Position {
        stream,
        sequence: 1,
        previous: None,
    };
    let opts = PackOptions {
        volume_size: u64::MAX,
        level: 3,
    };
    let mut builder = BundleBuilder::new(position, opts, MemoryVolumes::default());
    let mut catalog = Catalog::default();
    for (source, kind, path, data) in objects {
        catalog.sources.insert(source.to_string(), *kind);
        let file = builder
            .add_file(*data, false, &Default::default())
            .expect("in memory");
        let key = ObjectKey {
            source: source.to_string(),
            path: path.to_string(),
        };
        let previous = catalog.objects.insert(key, Object::File(file));
        assert!(previous.is_none(), "{source}/{path} is crafted twice");
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let stamp = Stamp {
        created: now,
        expires: now + 86_400,
        producer: "ferry-e2e crafted".into(),
        extensions: vec![],
    };
    let built = builder
        .finish(&Catalog::default(), &catalog, stamp, &key)
        .expect("an honest bundle passes its own checks");
    let dir = env
        .root()
        .join(media)
        .join(format!("bundle-{}-00000001", &stream.to_hex()[..8]));
    std::fs::create_dir_all(&dir).unwrap();
    for (i, bytes) in built.sink.volumes.iter().enumerate() {
        std::fs::write(dir.join(volume::file_name(i as u32)), bytes).unwrap();
    }
    std::fs::write(dir.join("manifest.ferry"), &built.file).unwrap();
    dir
}

/// A child process killed (and reaped) when dropped: servers started by tests.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running `ferry-in serve` and its `host:port`.
pub struct Server {
    /// The process.
    pub process: KillOnDrop,
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

impl Env {
    /// Starts `ferry-in serve` on a free loopback port.
    pub fn serve(&self) -> Server {
        self.serve_with(&[])
    }

    /// Starts `ferry-in serve` on a free loopback port with extra flags.
    pub fn serve_with(&self, flags: &[&str]) -> Server {
        use std::io::BufRead;
        let mut child = Command::new(bin("ferry-in"))
            .arg("--state")
            .arg(&self.in_state)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(flags)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start ferry-in serve");
        let mut line = String::new();
        std::io::BufReader::new(child.stderr.take().expect("stderr"))
            .read_line(&mut line)
            .expect("ferry-in serve prints its address");
        let addr = line
            .split("http://")
            .nth(1)
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .trim()
            .to_string();
        Server {
            process: KillOnDrop(child),
            addr,
        }
    }
}

/// Starts `docker-registry` on a fresh port with storage under `dir`.
pub fn docker_registry(dir: &Path) -> (KillOnDrop, String) {
    docker_registry_with(dir, "")
}

/// [`docker_registry`] with `http` settings added (indented by four
/// spaces under `http:`, such as `tls:` and its certificate).
pub fn docker_registry_with(dir: &Path, http: &str) -> (KillOnDrop, String) {
    let port = free_port();
    let cfg = dir.join("registry.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n{http}",
            dir.join("storage").display()
        ),
    )
    .unwrap();
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    for _ in 0..100 {
        if std::net::TcpStream::connect(&addr).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    (KillOnDrop(child), addr)
}

/// `skopeo ARGS…`.
pub fn skopeo(args: &[&str]) -> Run {
    let o = Command::new("skopeo").args(args).output().unwrap();
    Run {
        ok: o.status.success(),
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// A plain static HTTP server over a directory (Python's `http.server`),
/// standing in for an upstream mirror; killed when dropped. The directory
/// may be changed between exports to play an upstream update.
pub struct Upstream {
    /// Keeps the server running.
    pub process: KillOnDrop,
    /// `http://127.0.0.1:<port>` (no trailing slash).
    pub url: String,
}

/// Serves `dir` over HTTP on a free loopback port.
pub fn http_upstream(dir: &Path) -> Upstream {
    http_upstream_to(dir, std::process::Stdio::null())
}

/// [`http_upstream`], its request log going to `log`.
fn http_upstream_to(dir: &Path, log: std::process::Stdio) -> Upstream {
    use std::io::BufRead;
    let mut child = Command::new("python3")
        .args([
            "-u",
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            "0",
            "--directory",
        ])
        .arg(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("start python3 -m http.server");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("http.server prints its port");
    // "Serving HTTP on 127.0.0.1 port 41234 (http://127.0.0.1:41234/) ..."
    let port = line
        .split(" port ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no port in {line:?}"))
        .to_string();
    Upstream {
        process: KillOnDrop(child),
        url: format!("http://127.0.0.1:{port}"),
    }
}

/// Whether every named command is on PATH; when one is not, [`skip`]s the
/// calling test naming it and returns false.
pub fn have_tools(test: &str, tools: &[&str]) -> bool {
    for t in tools {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !found {
            skip(
                test,
                &format!("{t} is not installed (scripts/test.sh installs it)"),
            );
            return false;
        }
    }
    true
}

/// Whether the environment switch `var` is `1`; when it is not, [`skip`]s the
/// calling test (which needs something the switch vouches for, the network)
/// and returns false.
pub fn switched_on(test: &str, var: &str, what: &str) -> bool {
    if std::env::var(var).as_deref() == Ok("1") {
        return true;
    }
    skip(test, &format!("set {var}=1 to run it ({what})"));
    false
}

/// The one way a test that cannot run here says so; the caller returns
/// right after. With `FERRY_REQUIRE_TOOLS=1` (scripts/test.sh sets it: CI
/// has every tool and privilege) it panics instead, naming `reason`.
/// Otherwise it prints `SKIP <test>: <reason>` and appends that line to
/// the file named by `FERRY_SKIP_LOG`, if set, so the skip is counted.
pub fn skip(test: &str, reason: &str) {
    let require = std::env::var("FERRY_REQUIRE_TOOLS").as_deref() == Ok("1");
    let log = std::env::var_os("FERRY_SKIP_LOG").map(PathBuf::from);
    skip_with(test, reason, require, log.as_deref());
}

/// [`skip`] with its environment as arguments.
fn skip_with(test: &str, reason: &str, require: bool, log: Option<&Path>) {
    use std::io::Write;
    let line = format!("SKIP {test}: {reason}");
    if require {
        panic!("{line}; FERRY_REQUIRE_TOOLS=1 says every test must run here");
    }
    eprintln!("{line}");
    if let Some(log) = log {
        // One write of one line to a file opened for appending: lines from
        // tests running in parallel do not interleave.
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("FERRY_SKIP_LOG {}: {e}", log.display()));
        f.write_all(format!("{line}\n").as_bytes())
            .unwrap_or_else(|e| panic!("FERRY_SKIP_LOG {}: {e}", log.display()));
    }
}

/// Tests in this binary share two cores. A test that keeps them busy for
/// long (kill -9 spreads, a 1 GiB tree) holds [`heavy`]; a test whose
/// fixed-rate UDP relays lose packets when starved (diode) holds [`alone`],
/// so the two never overlap, as when they were separate binaries.
static MACHINE: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// Held for the length of a test that keeps the cores busy for long.
pub fn heavy() -> std::sync::RwLockReadGuard<'static, ()> {
    MACHINE.read().unwrap_or_else(|e| e.into_inner())
}

/// Held for the length of a test that must not share the cores with a
/// [`heavy`] one (nor with another that holds `alone`).
pub fn alone() -> std::sync::RwLockWriteGuard<'static, ()> {
    MACHINE.write().unwrap_or_else(|e| e.into_inner())
}

/// The running test's name, as libtest names the thread it runs a test on
/// (`module::test`), for helpers shared by many tests that [`skip`].
pub fn current_test() -> String {
    std::thread::current()
        .name()
        .unwrap_or("an unnamed test")
        .to_string()
}

/// A loopback port free for both TCP and UDP right now, for a server a test
/// starts (a small race with other processes remains, as with any such probe).
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind a UDP port");
        let port = udp.local_addr().expect("local address").port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no loopback port free for both TCP and UDP in 100 tries");
}

/// Waits until a process has a UDP socket bound to `port` (as
/// `/proc/net/udp` lists it): the receiver or listener a test started is
/// ready for datagrams. Panics naming `what` after 60 s.
pub fn wait_udp_bound(port: u16, what: &str) {
    let needle = format!(":{port:04X}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let table = std::fs::read_to_string("/proc/net/udp").expect("read /proc/net/udp");
        // "  sl  local_address rem_address ...": the second column, ADDR:PORT in hex.
        let bound = table
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().nth(1))
            .any(|local| local.ends_with(&needle));
        if bound {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not bind UDP port {port} within 60 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

fn run_curl(flags: &[&str], args: &[&str]) -> Output {
    Command::new("curl")
        .arg("-sS")
        .args(flags)
        .args(args)
        .output()
        .expect("run curl (scripts/test.sh installs it)")
}

/// Runs `curl -sS --fail-with-body args…`: its stdout, panicking with what
/// curl said unless it exits 0 (so unless the HTTP status is below 400).
pub fn curl(args: &[&str]) -> Vec<u8> {
    let o = run_curl(&["--fail-with-body"], args);
    assert!(
        o.status.success(),
        "curl {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

/// Runs `curl -sS -D /dev/stderr args…` whatever the HTTP status: the body
/// and the response headers, to assert on.
pub fn curl_response(args: &[&str]) -> (Vec<u8>, String) {
    let o = run_curl(&["-D", "/dev/stderr"], args);
    (o.stdout, String::from_utf8_lossy(&o.stderr).into_owned())
}

/// A tmpfs of `size_mib` MiB mounted at a directory for the length of a
/// test; unmounted on drop, even on panic. Needs root (tests here run as
/// root); where it cannot mount, [`Tmpfs::mount`] [`skip`]s the test (which
/// fails it when `FERRY_REQUIRE_TOOLS=1`: CI can mount).
pub struct Tmpfs {
    /// The mount point.
    pub dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs at `dir` (created); `None` (after saying so) when it cannot.
    pub fn mount(test: &str, dir: &Path, size_mib: u64) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(dir)
            .output();
        let why = match out {
            Ok(o) if o.status.success() => {
                return Some(Tmpfs {
                    dir: dir.to_path_buf(),
                })
            }
            Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
            Err(e) => e.to_string(),
        };
        skip(test, &format!("cannot mount a tmpfs: {why}"));
        None
    }

    /// Changes its size (a disk that fills up, or gets room again).
    pub fn resize(&self, size_mib: u64) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,size={size_mib}m")])
            .arg(&self.dir)
            .status()
            .unwrap();
        assert!(
            st.success(),
            "cannot resize the tmpfs at {}",
            self.dir.display()
        );
    }

    /// Free bytes on it.
    pub fn free(&self) -> u64 {
        let out = Command::new("df")
            .args(["-B1", "--output=avail"])
            .arg(&self.dir)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines().nth(1).unwrap().trim().parse().unwrap()
    }

    /// Writes a filler file so that about `leave` bytes stay free.
    pub fn fill_to(&self, name: &str, leave: u64) -> PathBuf {
        let path = self.dir.join(name);
        let n = self.free().saturating_sub(leave) as usize;
        std::fs::write(&path, vec![0xa5u8; n]).unwrap();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

// ---- tls: `ferry-in serve` over HTTPS, and clients that verify it -------

/// A running `ferry-in serve --tls`, its `127.0.0.1:PORT`, the site CA that
/// clients trust, and what it printed on stderr (read as it comes).
pub struct TlsServer {
    /// The process.
    pub process: KillOnDrop,
    /// `127.0.0.1:PORT` of its first listener.
    pub addr: String,
    /// The site CA (`STATE/tls/ca.pem`).
    pub ca: PathBuf,
    /// A directory holding the CA as `ca.crt`, as skopeo's
    /// `--src-cert-dir`/`--cert-dir` and containers' `certs.d` want it.
    pub cert_dir: PathBuf,
    /// stderr so far.
    pub log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl TlsServer {
    /// `https://ADDR{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    /// `curl --cacert CA https://ADDR{path}` (see [`curl`]).
    pub fn get(&self, path: &str) -> Vec<u8> {
        curl(&["--cacert", self.ca.to_str().unwrap(), &self.url(path)])
    }

    /// Waits up to 10 s for stderr to contain `needle`.
    pub fn wait_log(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let log = self.log.lock().unwrap().clone();
            if log.contains(needle) {
                return log;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "serve never said {needle:?}:\n{log}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

/// Starts `ferry-in --state STATE serve ARGS…`; returns the process, the
/// addresses of its `serving … on SCHEME://ADDR` lines (one per listener),
/// and its stderr, read on a thread as it comes.
pub fn spawn_serve(
    state: &Path,
    args: &[&str],
) -> (
    KillOnDrop,
    Vec<String>,
    std::sync::Arc<std::sync::Mutex<String>>,
) {
    use std::io::BufRead;
    let mut child = Command::new(bin("ferry-in"))
        .arg("--state")
        .arg(state)
        .arg("serve")
        .args(args)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start ferry-in serve");
    let mut lines = std::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let mut addrs = Vec::new();
    // The `serving` lines come first, one per listener, then the TLS line.
    for line in lines.by_ref() {
        let line = line.expect("read serve's stderr");
        log.lock().unwrap().push_str(&format!("{line}\n"));
        match line.split("://").nth(1) {
            Some(rest) if line.contains(" serving ") => {
                addrs.push(rest.split_whitespace().next().unwrap().to_string());
            }
            _ => break,
        }
    }
    assert!(!addrs.is_empty(), "serve said: {}", log.lock().unwrap());
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            sink.lock().unwrap().push_str(&format!("{line}\n"));
        }
    });
    (KillOnDrop(child), addrs, log)
}

impl Env {
    /// `ferry-in tls init --name localhost --ip 127.0.0.1`, once; returns
    /// the site CA.
    pub fn tls_init(&self) -> PathBuf {
        let ca = self.in_state.join("tls/ca.pem");
        if !ca.exists() {
            self.inn(&["tls", "init", "--name", "localhost", "--ip", "127.0.0.1"])
                .expect_ok();
        }
        ca
    }

    /// Starts `ferry-in serve --tls` (after [`Env::tls_init`]) on a free
    /// loopback port.
    pub fn serve_tls(&self) -> TlsServer {
        self.serve_tls_with(&["--tls"])
    }

    /// Starts `ferry-in serve --listen 127.0.0.1:0 FLAGS…` with the site CA
    /// made; `flags` say how TLS is served (`--tls`, or `--tls-cert`/`--tls-key`).
    pub fn serve_tls_with(&self, flags: &[&str]) -> TlsServer {
        let ca = self.tls_init();
        let cert_dir = self.root().join("client-certs");
        std::fs::create_dir_all(&cert_dir).unwrap();
        std::fs::copy(&ca, cert_dir.join("ca.crt")).unwrap();
        let mut args = vec!["--listen", "127.0.0.1:0"];
        args.extend(flags);
        let (process, addrs, log) = spawn_serve(&self.in_state, &args);
        assert!(
            log.lock().unwrap().contains("https://"),
            "serve is not on TLS"
        );
        TlsServer {
            process,
            addr: addrs[0].clone(),
            ca,
            cert_dir,
            log,
        }
    }
}

/// `skopeo copy FLAGS… docker://ADDR/IMAGE DEST` from a TLS serve,
/// verifying its certificate with the site CA (no `--src-tls-verify=false`).
/// `FLAGS` may hold skopeo's global options too (`--override-arch`).
pub fn skopeo_pull(srv: &TlsServer, image: &str, dest: &str, flags: &[&str]) -> Run {
    let from = format!("docker://{}/{image}", srv.addr);
    let mut args = vec!["copy", "--src-cert-dir", srv.cert_dir.to_str().unwrap()];
    args.extend(flags);
    args.extend([from.as_str(), dest]);
    skopeo(&args)
}

/// `skopeo copy FLAGS… oci:LAYOUT:TAG docker://REG/IMAGE`: an image laid
/// out by a test pushed into its upstream `docker-registry`, which speaks
/// plain HTTP (so `--dest-tls-verify=false`).
pub fn skopeo_push(layout: &Path, tag: &str, reg: &str, image: &str, flags: &[&str]) -> Run {
    let from = format!("oci:{}:{tag}", layout.display());
    let to = format!("docker://{reg}/{image}");
    let mut args = vec!["copy", "--dest-tls-verify=false"];
    args.extend(flags);
    args.extend([from.as_str(), to.as_str()]);
    skopeo(&args)
}

/// `skopeo inspect|list-tags ARGS… docker://ADDR/NAME` against a TLS serve,
/// verifying it with the site CA.
pub fn skopeo_read(srv: &TlsServer, cmd: &str, args: &[&str], name: &str) -> Run {
    let at = format!("docker://{}/{name}", srv.addr);
    let mut all = vec![cmd, "--cert-dir", srv.cert_dir.to_str().unwrap()];
    all.extend(args);
    all.push(&at);
    skopeo(&all)
}

// ---- clientcfg: gpg, and the client configuration `ferry-in client-config` writes ----

/// `gpg --batch` in the GNUPGHOME `home` (no passphrase, loopback pinentry),
/// as the fixtures sign repositories and packages; panics naming the
/// arguments when gpg fails; returns its standard output.
pub fn gpg(home: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("gpg")
        .env("GNUPGHOME", home)
        .args([
            "--batch",
            "--quiet",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
        ])
        .args(args)
        .output()
        .expect("run gpg");
    assert!(
        out.status.success(),
        "gpg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Signs `rpms` in place with `rpmsign --addsign` and the key `fpr` of the
/// GNUPGHOME `home`, as a vendor signs its packages.
pub fn rpmsign(home: &Path, fpr: &str, rpms: &[PathBuf]) {
    let out = Command::new("rpmsign")
        .arg("--addsign")
        .args(["--define", &format!("_gpg_name {fpr}")])
        .args(["--define", &format!("_gpg_path {}", home.display())])
        .args(["--define", "__gpg /usr/bin/gpg"])
        .args([
            "--define",
            "_gpg_sign_cmd_extra_args --batch --pinentry-mode loopback --passphrase ''",
        ])
        .args(rpms)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run rpmsign");
    assert!(
        out.status.success(),
        "rpmsign {rpms:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// [`dnf_download`] as a site runs dnf: `gpgcheck=1` and `repo_gpgcheck=1`
/// with the vendor's `key` (armored); `dnf download` checks the metadata's
/// signature, and each downloaded package's is checked with `rpm -K`
/// against `key` alone.
pub fn dnf_download_signed(
    env: &Env,
    addr: &str,
    pkgs: &[&str],
    tag: &str,
    key: &Path,
) -> (PathBuf, Vec<String>) {
    let url = format!("http://{addr}/yum/el/");
    dnf_download_signed_from(env, &url, &[], pkgs, tag, key)
}

/// [`dnf_download_signed`] from the repository at `url`, with the dnf
/// arguments `extra` too (such as `--setopt=ferry.sslcacert=CA`).
pub fn dnf_download_signed_from(
    env: &Env,
    url: &str,
    extra: &[String],
    pkgs: &[&str],
    tag: &str,
    key: &Path,
) -> (PathBuf, Vec<String>) {
    let mut opts = vec![
        "--setopt=ferry.gpgcheck=1".to_string(),
        "--setopt=ferry.repo_gpgcheck=1".to_string(),
        format!("--setopt=ferry.gpgkey=file://{}", key.display()),
    ];
    opts.extend_from_slice(extra);
    let (dir, names) = dnf_download_ok(env, url, &opts, pkgs, tag);
    let db = env.root().join(format!("dnf-{tag}/rpmdb"));
    std::fs::create_dir_all(&db).unwrap();
    let rpm = |args: &[&std::ffi::OsStr]| {
        Command::new("rpm")
            .arg("--dbpath")
            .arg(&db)
            .args(args)
            .output()
            .expect("run rpm")
    };
    let o = rpm(&["--import".as_ref(), key.as_os_str()]);
    assert!(
        o.status.success(),
        "rpm --import: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    for n in &names {
        let o = rpm(&["-K".as_ref(), dir.join(n).as_os_str()]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success() && out.contains("signatures OK"),
            "rpm -K {n}: {out}{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    (dir, names)
}

/// Signs `repo`'s `repodata/repomd.xml` with the key of the GNUPGHOME
/// `home` (`repodata/repomd.xml.asc`, armored, detached), as a vendor does.
pub fn sign_repomd(home: &Path, repo: &Path) {
    let repomd = repo.join("repodata/repomd.xml");
    let asc = repo.join("repodata/repomd.xml.asc");
    let _ = std::fs::remove_file(&asc);
    let (asc, repomd) = (asc.to_str().unwrap(), repomd.to_str().unwrap());
    gpg(home, &["--armor", "--detach-sign", "--output", asc, repomd]);
}

/// `ferry-in client-config --url URL --out DIR FLAGS…` for `env`'s state;
/// returns DIR (`client-config-TAG` under the test's root).
pub fn client_config(env: &Env, url: &str, tag: &str, flags: &[&str]) -> PathBuf {
    let dir = env.root().join(format!("client-config-{tag}"));
    let mut args = vec!["client-config", "--url", url, "--out"];
    let d = dir.to_str().expect("a UTF-8 path").to_string();
    args.push(&d);
    args.extend(flags);
    env.inn(&args).expect_ok();
    dir
}

/// A Python that builds wheels offline: `pip wheel --no-build-isolation`
/// with setuptools and wheel already installed (pyenv's `python3` lacks the
/// `wheel` package, so Debian's `/usr/bin/python3` with python3-setuptools,
/// python3-wheel and python3-pip, which scripts/test.sh installs). A build
/// with isolation fetches setuptools from the network at every run (about
/// 10 s each); this one reads nothing but the project.
pub fn wheel_python() -> Option<&'static str> {
    static FOUND: std::sync::OnceLock<Option<&'static str>> = std::sync::OnceLock::new();
    *FOUND.get_or_init(|| {
        ["python3", "/usr/bin/python3"].into_iter().find(|p| {
            Command::new(p)
                .args(["-c", "import setuptools, wheel, pip"])
                .output()
                .is_ok_and(|o| o.status.success())
        })
    })
}

/// A deterministic tar of the directory `src` (sorted names, mtime 0,
/// owner root), as an image layer's content.
pub fn tar_of_dir(src: &Path) -> Vec<u8> {
    sh(Command::new("tar")
        .args(["--sort=name", "--mtime=@0", "--owner=0", "--group=0", "-C"])
        .arg(src)
        .args(["-cf", "-", "."]))
}

/// An OCI image layout being written (the image-spec's `oci-layout`,
/// `blobs/sha256/` and `index.json`), for skopeo to push into a registry.
pub struct OciLayout {
    /// The layout's directory.
    pub dir: PathBuf,
}

/// A blob of an [`OciLayout`]: its SHA-256 (hex) and size.
#[derive(Clone, Debug)]
pub struct Blob {
    pub sha: String,
    pub size: usize,
}

/// A layer for [`OciLayout::manifest`]: its bytes, media type and diff id
/// (the SHA-256 of its uncompressed tar, hex).
pub struct Layer<'a> {
    pub bytes: &'a [u8],
    pub media_type: &'a str,
    pub diff_id: String,
}

impl Layer<'_> {
    /// An uncompressed tar layer (`…layer.v1.tar`; its diff id is its digest).
    pub fn tar(bytes: &[u8]) -> Layer<'_> {
        Layer {
            bytes,
            media_type: "application/vnd.oci.image.layer.v1.tar",
            diff_id: ferry_protocol::id::Sha256::of(bytes).to_hex(),
        }
    }
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

impl OciLayout {
    /// Creates the layout directory `dir` with its `oci-layout` file.
    pub fn new(dir: &Path) -> OciLayout {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        OciLayout {
            dir: dir.to_path_buf(),
        }
    }

    /// Stores `data` as a blob.
    pub fn put(&self, data: &[u8]) -> Blob {
        let sha = ferry_protocol::id::Sha256::of(data).to_hex();
        std::fs::write(self.dir.join("blobs/sha256").join(&sha), data).unwrap();
        Blob {
            sha,
            size: data.len(),
        }
    }

    /// Stores a linux/`arch` image: its config (with `config` as the
    /// config's `config` object, JSON) and its manifest over `layers`;
    /// returns the manifest.
    pub fn manifest(&self, arch: &str, config: &str, layers: &[Layer<'_>]) -> Blob {
        let diff_ids: Vec<String> = layers
            .iter()
            .map(|l| format!("\"sha256:{}\"", l.diff_id))
            .collect();
        let cfg = self.put(
            format!(
                r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":[{}]}},"config":{config}}}"#,
                diff_ids.join(",")
            )
            .as_bytes(),
        );
        let descs: Vec<String> = layers
            .iter()
            .map(|l| {
                let b = self.put(l.bytes);
                format!(
                    r#"{{"mediaType":"{}","digest":"sha256:{}","size":{}}}"#,
                    l.media_type, b.sha, b.size
                )
            })
            .collect();
        self.put(
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{}","size":{}}},"layers":[{}]}}"#,
                cfg.sha,
                cfg.size,
                descs.join(",")
            )
            .as_bytes(),
        )
    }

    /// Stores an image index over `(arch, manifest)` pairs; returns it.
    pub fn index(&self, manifests: &[(&str, Blob)]) -> Blob {
        let entries: Vec<String> = manifests
            .iter()
            .map(|(arch, m)| {
                format!(
                    r#"{{"mediaType":"{OCI_MANIFEST}","digest":"sha256:{}","size":{},"platform":{{"architecture":"{arch}","os":"linux"}}}}"#,
                    m.sha, m.size
                )
            })
            .collect();
        self.put(
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}]}}"#,
                entries.join(",")
            )
            .as_bytes(),
        )
    }

    /// Writes `index.json` naming `top` (a manifest, or an index when
    /// `is_index`) as `tag`.
    pub fn tag(&self, tag: &str, top: &Blob, is_index: bool) {
        let media = if is_index { OCI_INDEX } else { OCI_MANIFEST };
        std::fs::write(
            self.dir.join("index.json"),
            format!(
                r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{media}","digest":"sha256:{}","size":{},"annotations":{{"org.opencontainers.image.ref.name":"{tag}"}}}}]}}"#,
                top.sha, top.size
            ),
        )
        .unwrap();
    }
}

// ---- helper "gosum": an upstream that wants one exact Authorization header ----

/// Serves `dir` over HTTP like [`http_upstream`], answering `401` to any
/// request whose `Authorization` header is not exactly `authorization`.
pub fn http_upstream_with_auth(dir: &Path, authorization: &str) -> Upstream {
    use std::io::BufRead;
    const SERVER: &str = r#"
import functools, http.server, sys
class H(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        if self.headers.get("Authorization") != sys.argv[2]:
            self.send_error(401, "wrong or missing Authorization")
            return
        super().do_GET()
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(H, directory=sys.argv[1]))
print("port", s.server_address[1], flush=True)
s.serve_forever()
"#;
    let mut child = Command::new("python3")
        .args(["-u", "-c", SERVER])
        .arg(dir)
        .arg(authorization)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start python3");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the server prints its port");
    let port = line
        .trim()
        .strip_prefix("port ")
        .expect("port N")
        .to_string();
    Upstream {
        process: KillOnDrop(child),
        url: format!("http://127.0.0.1:{port}"),
    }
}

// ---- cosign (helper "cosign"): key-based cosign signatures in a registry ----
//
// No cosign binary is packaged for this machine (Debian has none, and the
// registries reachable here carry no key-based signer for OCI images), so
// these helpers write exactly what `cosign sign --key` writes to a
// registry, with openssl doing the signing: an ECDSA P-256 key
// (`openssl ecparam -name prime256v1 -genkey`), the simple-signing payload,
// its signature (`openssl dgst -sha256 -sign`, ASN.1 DER, base64) in the
// layer annotation `dev.cosignproject.cosign/signature`, and the signature
// manifest pushed with skopeo under the tag `sha256-<hex>.sig`.

/// A cosign-style key pair made with openssl in `dir`: (private PEM, public
/// PEM SubjectPublicKeyInfo, as `cosign.pub`).
pub fn cosign_keypair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let key = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    sh(Command::new("openssl")
        .args([
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
        ])
        .arg(&key));
    sh(Command::new("openssl")
        .args(["ec", "-pubout", "-in"])
        .arg(&key)
        .arg("-out")
        .arg(&public));
    (key, public)
}

/// The simple-signing payload cosign signs for `digest` of `reference`
/// (`registry/repository`).
pub fn cosign_payload(reference: &str, digest: &str) -> String {
    format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"{reference}"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":null}}"#
    )
}

/// `payload` signed with `key` by openssl: base64 of the DER ECDSA signature
/// over its SHA-256.
pub fn cosign_sign(key: &Path, payload: &[u8]) -> String {
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("payload");
    std::fs::write(&file, payload).unwrap();
    let sig = dir.path().join("sig");
    sh(Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .arg("-out")
        .arg(&sig)
        .arg(&file));
    base64::engine::general_purpose::STANDARD.encode(std::fs::read(sig).unwrap())
}

/// Pushes with skopeo, into `repo` of the plain-HTTP registry `reg`, the
/// signature manifest of image `digest` (`sha256:<hex>`): one
/// simple-signing layer `payload` annotated with `signature`, tagged
/// `sha256-<hex>.sig`, as cosign does. `work` holds the layout.
pub fn cosign_attach(
    work: &Path,
    reg: &str,
    repo: &str,
    digest: &str,
    payload: &[u8],
    signature: &str,
) {
    let hex = digest.strip_prefix("sha256:").unwrap();
    let layout = OciLayout::new(&work.join(format!(
        "sig-{hex}-{}",
        ferry_protocol::id::Sha256::of(signature.as_bytes()).to_hex()
    )));
    let config = layout.put(
        br#"{"architecture":"","os":"","rootfs":{"type":"layers","diff_ids":[]},"config":{}}"#,
    );
    let layer = layout.put(payload);
    let manifest = layout.put(
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{}","size":{}}},"layers":[{{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","digest":"sha256:{}","size":{},"annotations":{{"dev.cosignproject.cosign/signature":"{signature}"}}}}]}}"#,
            config.sha, config.size, layer.sha, layer.size
        )
        .as_bytes(),
    );
    let tag = format!("sha256-{hex}.sig");
    layout.tag(&tag, &manifest, false);
    skopeo_push(
        &layout.dir,
        &tag,
        reg,
        &format!("{repo}:{tag}"),
        &["--preserve-digests"],
    )
    .expect_ok();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skip_is_logged_one_line_each() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("skips");
        skip_with("m::a", "x is not installed", false, Some(&log));
        skip_with("m::b", "set Y=1", false, Some(&log));
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "SKIP m::a: x is not installed\nSKIP m::b: set Y=1\n"
        );
        // Without a log it only prints.
        skip_with("m::c", "z", false, None);
        assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 2);
    }

    #[test]
    #[should_panic(expected = "SKIP m::a: x is not installed; FERRY_REQUIRE_TOOLS=1")]
    fn a_skip_fails_when_every_test_must_run() {
        skip_with("m::a", "x is not installed", true, None);
    }
}

// ---- helper "cargo": crate registries (tests/tests/cargo.rs, conformance) ----

/// A real published crate version taken from this machine's cargo caches:
/// its `.crate` file and its line of the registry's index.
#[derive(Clone, Debug)]
pub struct LocalCrate {
    /// The crate's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// The `.crate` file in `CARGO_HOME/registry/cache/…`.
    pub file: PathBuf,
    /// Its index line, as the registry published it.
    pub line: String,
}

/// `$CARGO_HOME`, else `~/.cargo`.
pub fn cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo")
        })
}

/// Reads one entry of cargo's own index cache
/// (`registry/index/<registry>/.cache/<index path>`: a version byte, a
/// 4-byte index version, a header string, then `version NUL line NUL`
/// pairs); the line of `version`, if the cache has it.
fn cached_index_line(cache_file: &Path, version: &str) -> Option<String> {
    let bytes = std::fs::read(cache_file).ok()?;
    let mut parts = bytes.get(5..)?.split(|&b| b == 0);
    parts.next()?; // the header (ETag or Last-Modified)
    while let (Some(v), Some(line)) = (parts.next(), parts.next()) {
        if v == version.as_bytes() {
            return String::from_utf8(line.to_vec()).ok();
        }
    }
    None
}

/// `name` `version` from this machine's cargo caches (the `.crate` that
/// building the workspace downloaded, and its index line from cargo's index
/// cache); `None` when either is missing.
pub fn local_crate(name: &str, version: &str) -> Option<LocalCrate> {
    let registry = cargo_home().join("registry");
    let file_name = format!("{name}-{version}.crate");
    let index_path = ferry_formats::cargo::index_path(name).ok()?;
    for dir in std::fs::read_dir(registry.join("cache")).ok()?.flatten() {
        let file = dir.path().join(&file_name);
        let cache = registry
            .join("index")
            .join(dir.file_name())
            .join(".cache")
            .join(&index_path);
        if let (true, Some(line)) = (file.is_file(), cached_index_line(&cache, version)) {
            return Some(LocalCrate {
                name: name.into(),
                version: version.into(),
                file,
                line,
            });
        }
    }
    None
}

/// The crates `wanted` (`(name, version)`) from this machine's cargo
/// caches, or `None` after [`skip`]ping `test` naming the first missing one.
pub fn local_crates(test: &str, wanted: &[(&str, &str)]) -> Option<Vec<LocalCrate>> {
    let mut out = Vec::new();
    for (n, v) in wanted {
        match local_crate(n, v) {
            Some(c) => out.push(c),
            None => {
                skip(
                    test,
                    &format!(
                        "crate {n} {v} is not in {}'s registry caches (building the workspace online puts it there)",
                        cargo_home().display()
                    ),
                );
                return None;
            }
        }
    }
    Some(out)
}

/// Writes a sparse registry under `root` (served statically, it is a
/// stand-in upstream): `config.json` whose `dl` is `dl` (default: the
/// relative `crates/{crate}/{crate}-{version}.crate`), each crate's index
/// file holding the lines of `crates` in order, and the `.crate` files.
/// Index files and crates of earlier calls not in `crates` are removed.
pub fn cargo_registry(root: &Path, crates: &[&LocalCrate], dl: Option<&str>) {
    let _ = std::fs::remove_dir_all(root);
    std::fs::create_dir_all(root).unwrap();
    let config =
        serde_json::json!({ "dl": dl.unwrap_or("crates/{crate}/{crate}-{version}.crate") });
    std::fs::write(root.join("config.json"), config.to_string()).unwrap();
    let mut files: std::collections::BTreeMap<String, String> = Default::default();
    for c in crates {
        let path = ferry_formats::cargo::index_path(&c.name).unwrap();
        let text = files.entry(path).or_default();
        text.push_str(&c.line);
        text.push('\n');
        let dest = root.join(ferry_formats::cargo::crate_path(&c.name, &c.version));
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&c.file, &dest).unwrap();
    }
    for (path, text) in files {
        let dest = root.join(path);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::write(dest, text).unwrap();
    }
}

/// [`http_upstream`] whose request log (`"GET /path HTTP/1.1" 200 …`, one
/// line a request) goes to the file `log`.
pub fn http_upstream_logged(dir: &Path, log: &Path) -> Upstream {
    let log = std::fs::File::create(log).expect("create the request log");
    http_upstream_to(dir, log.into())
}
