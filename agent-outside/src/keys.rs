//! Keys over time (docs/trust.md): `ferry-out key rotate` (a new signing key,
//! vouched for by the old one), `ferry-out root init|revoke|rotate` (an
//! offline root key that revokes keys and replaces a lost signing key), and
//! the validity extensions `resend` writes beside expired bundles.
//!
//! Statements wait in `STATE/trust-statements.ferry` (the
//! `ferry_protocol::trust` encoding) and ride in every bundle exported from
//! then on ([`extensions`]): a rotation until the next rotation replaces it,
//! revocations for good. So an inside that missed the bundle where a key
//! changed learns it from any later one, once it has applied the bundles
//! before.

use crate::layout::Layout;
use crate::ledger::Ledger;
use anyhow::{Context, Result};
use ferry_agent_common::fsx;
use ferry_protocol::id::ManifestHash;
use ferry_protocol::keys::{PublicKey, SecretKey};
use ferry_protocol::manifest::Extension;
use ferry_protocol::trust::{self, SignedStatement, Statement, MAX_STATEMENTS};
use std::path::{Path, PathBuf};

/// Why a key command refuses.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A key file is missing or does not parse.
    #[error("cannot use key {path}: {why}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A bundle awaits its signature: its key is already chosen.
    #[error(
        "bundle {0} awaits its signature; sign and publish it (or discard it) before changing keys"
    )]
    AwaitingSignature(u64),
    /// `root init` would replace a root key.
    #[error("{0} already exists; a root key is made once (the inside trusts it)")]
    RootExists(PathBuf),
    /// The pending statements file is damaged.
    #[error("{path} is damaged: {source}")]
    Statements {
        /// The file.
        path: PathBuf,
        /// The decoding error.
        #[source]
        source: trust::StatementError,
    },
    /// Too many statements wait to ride along.
    #[error("{0} statements already wait in the next bundles; rotate the signing key first (a rotation replaces the earlier one)")]
    TooMany(usize),
}

/// Where pending statements wait.
pub fn statements_path(layout: &Layout) -> PathBuf {
    layout.root.join("trust-statements.ferry")
}

/// Where `root init` writes the root key (move it offline).
pub fn root_key_path(layout: &Layout) -> PathBuf {
    layout.root.join("root.key")
}

/// Where `root init` writes the root public key (for `ferry-in trust add --root`).
pub fn root_pub_path(layout: &Layout) -> PathBuf {
    layout.root.join("root.pub")
}

/// The statements waiting to ride along.
pub fn pending(layout: &Layout) -> Result<Vec<SignedStatement>> {
    let path = statements_path(layout);
    match std::fs::read(&path) {
        Ok(b) => Ok(trust::decode(&b).map_err(|source| KeyError::Statements { path, source })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![]),
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot read {}", path.display()))),
    }
}

/// The extension records bundle `sequence` carries: the pending statements
/// that apply from it or earlier (none: no extension, the manifest is as before).
pub fn extensions(layout: &Layout, sequence: u64) -> Result<Vec<Extension>> {
    let list: Vec<SignedStatement> = pending(layout)?
        .into_iter()
        .filter(|s| match &s.statement {
            Statement::Rotate { from_sequence, .. } | Statement::Revoke { from_sequence, .. } => {
                *from_sequence <= sequence
            }
            Statement::Extend { .. } => false,
        })
        .collect();
    Ok(if list.is_empty() {
        vec![]
    } else {
        vec![trust::extension(&list)]
    })
}

fn save(layout: &Layout, list: &[SignedStatement]) -> Result<()> {
    if list.len() > MAX_STATEMENTS {
        return Err(KeyError::TooMany(list.len()).into());
    }
    fsx::write_atomic(&statements_path(layout), &trust::encode(list))
}

/// Reads a secret key file.
pub fn read_secret(path: &Path) -> Result<SecretKey> {
    let text = std::fs::read_to_string(path).map_err(|e| KeyError::Key {
        path: path.into(),
        why: e.to_string(),
    })?;
    Ok(SecretKey::from_text(&text).map_err(|e| KeyError::Key {
        path: path.into(),
        why: e.to_string(),
    })?)
}

/// Reads a public key file.
pub fn read_public(path: &Path) -> Result<PublicKey> {
    let text = std::fs::read_to_string(path).map_err(|e| KeyError::Key {
        path: path.into(),
        why: e.to_string(),
    })?;
    Ok(PublicKey::from_text(&text).map_err(|e| KeyError::Key {
        path: path.into(),
        why: e.to_string(),
    })?)
}

fn fresh_key() -> Result<SecretKey> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no randomness for a key: {e}"))?;
    Ok(SecretKey::from_seed(seed))
}

/// The first sequence a key made now signs (refused while a bundle awaits its signature).
fn next_sequence(ledger: &Ledger) -> Result<u64> {
    if let Some(r) = ledger.awaiting_signature()? {
        return Err(KeyError::AwaitingSignature(r.sequence).into());
    }
    Ok(ledger.head()?.sequence + 1)
}

/// A key change made: the statement and the new public key.
#[derive(Debug)]
pub struct Rotated {
    /// The new signing key.
    pub new: PublicKey,
    /// The key it replaces.
    pub old: PublicKey,
    /// The first sequence the new key signs.
    pub from_sequence: u64,
}

/// Records `statement` as the pending rotation (replacing an earlier
/// rotation; revocations stay) and writes the new key to `key_path` and
/// `STATE/signing.pub`.
fn install(
    layout: &Layout,
    key_path: &Path,
    new: &SecretKey,
    signed: SignedStatement,
) -> Result<()> {
    let mut list: Vec<SignedStatement> = pending(layout)?
        .into_iter()
        .filter(|s| !matches!(s.statement, Statement::Rotate { .. }))
        .collect();
    list.push(signed);
    save(layout, &list)?;
    fsx::write_private(key_path, format!("{}\n", new.to_text()).as_bytes())?;
    fsx::write_atomic(
        &layout.signing_pub(),
        format!("{}\n", new.public().to_text()).as_bytes(),
    )?;
    fsx::sync_dir(&layout.root)
}

/// `key rotate`: a new signing key in `key_path`, vouched for by the old
/// key there (both sign the rotation statement).
pub fn rotate(layout: &Layout, ledger: &Ledger, key_path: &Path, now: u64) -> Result<Rotated> {
    let old = read_secret(key_path)?;
    let from_sequence = next_sequence(ledger)?;
    let new = fresh_key()?;
    let statement = Statement::Rotate {
        stream: ledger.stream()?,
        from_sequence,
        old: old.public().0,
        new: new.public().0,
        created: now,
    };
    let signed = SignedStatement::sign(statement, &[&old, &new]);
    install(layout, key_path, &new, signed)?;
    Ok(Rotated {
        new: new.public(),
        old: old.public(),
        from_sequence,
    })
}

/// `root init`: makes the root key (`STATE/root.key`, `root.pub`).
pub fn root_init(layout: &Layout) -> Result<PublicKey> {
    let path = root_key_path(layout);
    if path.exists() {
        return Err(KeyError::RootExists(path).into());
    }
    std::fs::create_dir_all(&layout.root)
        .with_context(|| format!("cannot create {}", layout.root.display()))?;
    let root = fresh_key()?;
    fsx::write_private(&path, format!("{}\n", root.to_text()).as_bytes())?;
    fsx::write_atomic(
        &root_pub_path(layout),
        format!("{}\n", root.public().to_text()).as_bytes(),
    )?;
    fsx::sync_dir(&layout.root)?;
    Ok(root.public())
}

/// `root rotate`: a new signing key in `key_path` vouched for by the root
/// key (the old signing key, named by `STATE/signing.pub`, is lost or
/// leaked and signs nothing from the next sequence on).
pub fn root_rotate(
    layout: &Layout,
    ledger: &Ledger,
    root_key: &Path,
    key_path: &Path,
    now: u64,
) -> Result<Rotated> {
    let root = read_secret(root_key)?;
    let old = read_public(&layout.signing_pub())?;
    let from_sequence = next_sequence(ledger)?;
    let new = fresh_key()?;
    let statement = Statement::Rotate {
        stream: ledger.stream()?,
        from_sequence,
        old: old.0,
        new: new.public().0,
        created: now,
    };
    let signed = SignedStatement::sign(statement, &[&root, &new]);
    install(layout, key_path, &new, signed)?;
    Ok(Rotated {
        new: new.public(),
        old,
        from_sequence,
    })
}

/// `root revoke`: `key` signs nothing of this stream from `from` on
/// (default: the next sequence), said by the root key; rides in the next
/// bundles. Returns the sequence.
pub fn root_revoke(
    layout: &Layout,
    ledger: &Ledger,
    root_key: &Path,
    key: PublicKey,
    from: Option<u64>,
    now: u64,
) -> Result<u64> {
    let root = read_secret(root_key)?;
    let from_sequence = match from {
        Some(f) => f.max(1),
        None => next_sequence(ledger)?,
    };
    let statement = Statement::Revoke {
        stream: ledger.stream()?,
        from_sequence,
        key: key.0,
        created: now,
    };
    let mut list = pending(layout)?;
    list.push(SignedStatement::sign(statement, &[&root]));
    save(layout, &list)?;
    Ok(from_sequence)
}

/// Writes every pending revocation to `media/revocations.ferry`
/// (bundle-format §16.7); returns its path.
pub fn write_revocations(layout: &Layout, media: &Path) -> Result<PathBuf> {
    let bytes = revocations_file(layout)?.unwrap_or_else(|| trust::encode(&[]));
    std::fs::create_dir_all(media).with_context(|| format!("cannot create {}", media.display()))?;
    let path = media.join(trust::REVOCATIONS_FILE);
    fsx::write_atomic(&path, &bytes)?;
    Ok(path)
}

/// Every pending revocation as the bytes of `revocations.ferry`, or none
/// when there is none (what `push` sends before its bundles).
pub fn revocations_file(layout: &Layout) -> Result<Option<Vec<u8>>> {
    let list: Vec<SignedStatement> = pending(layout)?
        .into_iter()
        .filter(|s| matches!(s.statement, Statement::Revoke { .. }))
        .collect();
    Ok((!list.is_empty()).then(|| trust::encode(&list)))
}

/// The validity extension file for a resent bundle: `sequence` of this
/// stream, whose manifest hash is `manifest`, good until `expires`, signed
/// by `key` (the current signing key).
pub fn extension_file(
    ledger: &Ledger,
    sequence: u64,
    manifest: ManifestHash,
    expires: u64,
    key: &SecretKey,
    now: u64,
) -> Result<Vec<u8>> {
    let statement = Statement::Extend {
        stream: ledger.stream()?,
        sequence,
        manifest,
        expires,
        created: now,
    };
    Ok(trust::encode(&[SignedStatement::sign(statement, &[key])]))
}

/// `ferry-out key …`.
#[derive(clap::Subcommand)]
pub enum KeyCmd {
    /// Makes a new signing key; the next bundles carry a rotation statement
    /// signed by the old key and the new one, and from the next sequence on
    /// the inside accepts only the new key for this stream.
    Rotate {
        /// The secret signing key file (default: STATE/signing.key); the
        /// new key replaces it there.
        #[arg(long)]
        key: Option<PathBuf>,
    },
}

/// `ferry-out root …`: the offline root key.
#[derive(clap::Subcommand)]
pub enum RootCmd {
    /// Makes the root key (STATE/root.key and root.pub). Give root.pub to
    /// `ferry-in trust add --root`, then move root.key offline.
    Init,
    /// Revokes a signing key: from the next sequence (or --from) on, the
    /// inside refuses anything it signs for this stream.
    Revoke {
        /// The root secret key file (default: STATE/root.key).
        #[arg(long)]
        root_key: Option<PathBuf>,
        /// The first sequence the key may no longer sign (default: the next).
        #[arg(long)]
        from: Option<u64>,
        /// Also write every pending revocation to MEDIA/revocations.ferry,
        /// which an import applies before any bundle: the news reaches the
        /// inside without waiting for the next bundle.
        #[arg(long, value_name = "MEDIA")]
        to: Option<PathBuf>,
        /// The public key file of the key to revoke.
        pubkey_file: PathBuf,
    },
    /// Replaces a lost or leaked signing key (the one STATE/signing.pub
    /// names) with a new one vouched for by the root key.
    Rotate {
        /// The root secret key file (default: STATE/root.key).
        #[arg(long)]
        root_key: Option<PathBuf>,
        /// Where the new secret signing key goes (default: STATE/signing.key).
        #[arg(long)]
        key: Option<PathBuf>,
    },
}

fn print_rotated(r: &Rotated, how: &str) {
    println!("{}", r.new.to_text());
    eprintln!(
        "ferry-out: key {} replaces {} from bundle {} on ({how}); the next bundles carry the statement, the inside follows it by itself",
        r.new.short(),
        r.old.short(),
        r.from_sequence
    );
}

/// Runs `key …`.
pub fn run_key(layout: &Layout, cmd: KeyCmd) -> Result<()> {
    let now = ferry_agent_common::now_unix();
    match cmd {
        KeyCmd::Rotate { key } => {
            let ledger = Ledger::open(layout)?;
            let path = key.unwrap_or_else(|| layout.signing_key());
            let r = rotate(layout, &ledger, &path, now)?;
            print_rotated(&r, "signed by the old key and the new one");
        }
    }
    Ok(())
}

/// Runs `root …`.
pub fn run_root(layout: &Layout, cmd: RootCmd) -> Result<()> {
    let now = ferry_agent_common::now_unix();
    match cmd {
        RootCmd::Init => {
            let k = root_init(layout)?;
            println!("{}", k.to_text());
            eprintln!(
                "ferry-out: wrote {} (secret) and {}; give root.pub to `ferry-in trust add --root`, then move root.key to offline storage",
                root_key_path(layout).display(),
                root_pub_path(layout).display()
            );
        }
        RootCmd::Revoke {
            root_key,
            from,
            to,
            pubkey_file,
        } => {
            let ledger = Ledger::open(layout)?;
            let key = read_public(&pubkey_file)?;
            let root = root_key.unwrap_or_else(|| root_key_path(layout));
            let seq = root_revoke(layout, &ledger, &root, key, from, now)?;
            println!(
                "key {} revoked from bundle {seq} on; the next bundles carry the revocation",
                key.short()
            );
            if let Some(media) = to {
                let path = write_revocations(layout, &media)?;
                println!("revocations written to {}", path.display());
            }
        }
        RootCmd::Rotate { root_key, key } => {
            let ledger = Ledger::open(layout)?;
            let root = root_key.unwrap_or_else(|| root_key_path(layout));
            let path = key.unwrap_or_else(|| layout.signing_key());
            let r = root_rotate(layout, &ledger, &root, &path, now)?;
            print_rotated(&r, "signed by the root key and the new one");
        }
    }
    Ok(())
}

/// After `resend` wrote bundle `r` into `media`: when it expires within
/// `valid_for` seconds of `now` (or has expired), writes a validity
/// extension beside it ([`extension_for`]). Returns the new expiry, or none
/// when not needed or no key is at hand.
pub fn extend_resent(
    ledger: &Ledger,
    r: &crate::ledger::BundleRecord,
    media: &Path,
    key_path: &Path,
    valid_for: u64,
    now: u64,
) -> Result<Option<u64>> {
    let Some((bytes, until)) = extension_for(ledger, r, key_path, valid_for, now)? else {
        return Ok(None);
    };
    let dir = media.join(&r.dir_name);
    fsx::write_atomic(&dir.join(trust::VALIDITY_FILE), &bytes)?;
    fsx::sync_dir(&dir)?;
    Ok(Some(until))
}

/// The validity extension a resent (or pushed again) bundle `r` needs: when
/// it expires within `valid_for` seconds of `now` (or has expired), the
/// bytes of `validity.ferry` good until `now + valid_for`, signed with the
/// key at `key_path`, and that expiry. None when not needed; without a
/// readable key (signing apart) it says so and gives none.
pub fn extension_for(
    ledger: &Ledger,
    r: &crate::ledger::BundleRecord,
    key_path: &Path,
    valid_for: u64,
    now: u64,
) -> Result<Option<(Vec<u8>, u64)>> {
    let until = now.saturating_add(valid_for);
    if r.expires >= until {
        return Ok(None);
    }
    let key = match read_secret(key_path) {
        Ok(k) => k,
        Err(e) => {
            eprintln!(
                "ferry-out: warning: bundle {} expires {} and no validity extension is written ({e:#}); the inside will refuse it as expired",
                r.sequence,
                ferry_agent_common::format_time(r.expires)
            );
            return Ok(None);
        }
    };
    let bytes = extension_file(ledger, r.sequence, r.hash, until, &key, now)?;
    Ok(Some((bytes, until)))
}

/// `cosign`: adds a co-signature by the key at `key_path` beside each signed
/// bundle in `dir` (a bundle directory, or a directory of them), for a
/// stream whose inside needs more than one signature. Returns the bundle
/// directories co-signed (a bundle the key already co-signed is left as is).
pub fn cosign(key_path: &Path, dir: &Path) -> Result<Vec<PathBuf>> {
    use ferry_agent_common::media;
    let key = read_secret(key_path)?;
    let dirs = media::find_bundles(dir)?;
    if dirs.is_empty() {
        anyhow::bail!("no signed bundle in {}", dir.display());
    }
    let mut done = vec![];
    for d in dirs {
        let manifest = std::fs::read(d.join(media::MANIFEST_FILE))
            .with_context(|| format!("cannot read the manifest in {}", d.display()))?;
        let hash = ManifestHash::of(&manifest);
        let path = d.join(trust::COSIGN_FILE);
        let mut sigs = match std::fs::read(&path) {
            Ok(b) => {
                trust::cosigners(&hash, &b).map_err(|source| KeyError::Statements {
                    path: path.clone(),
                    source,
                })?;
                trust::decode_cosignatures(&b).expect("checked just above")
            }
            Err(_) => vec![],
        };
        if sigs.iter().any(|s| s.key == key.public().0) {
            continue;
        }
        sigs.push(trust::cosign(&hash, &key));
        fsx::write_atomic(&path, &trust::encode_cosignatures(&sigs))?;
        fsx::sync_dir(&d)?;
        done.push(d);
    }
    Ok(done)
}

/// Runs `cosign`.
pub fn run_cosign(key: &Path, dir: &Path) -> Result<()> {
    let done = cosign(key, dir)?;
    for d in &done {
        println!("co-signed {}", d.display());
    }
    if done.is_empty() {
        println!(
            "every bundle in {} already carries this key's co-signature",
            dir.display()
        );
    }
    Ok(())
}

/// Lines for `ferry-out status`: the statements that ride in the next bundles.
pub fn status_lines(layout: &Layout) -> Result<Vec<String>> {
    Ok(pending(layout)?
        .iter()
        .map(|s| match &s.statement {
            Statement::Rotate {
                from_sequence,
                old,
                new,
                ..
            } => format!(
                "trust:   rotation from key {} to {} from bundle {from_sequence} rides in every bundle",
                PublicKey(*old).short(),
                PublicKey(*new).short()
            ),
            Statement::Revoke {
                from_sequence, key, ..
            } => format!(
                "trust:   revocation of key {} from bundle {from_sequence} rides in every bundle",
                PublicKey(*key).short()
            ),
            Statement::Extend { .. } => "trust:   a validity extension (misplaced)".to_string(),
        })
        .collect())
}
