//! The optional inside configuration file (TOML), `--config FILE`:
//!
//! ```toml
//! [limits]                      # what a bundle may ask of this agent
//! max_manifest = "256M"
//! max_chunk = "4M"
//! max_object = "256G"
//! max_bundle = "4T"             # bytes on the media
//! max_bundle_uncompressed = "8T"
//! max_volumes = 100000
//! max_objects = 50000000
//!
//! [push]                        # after every import that applied a bundle
//! to = "https://registry.site:5000"   # copy the images there (as `ferry-in push --to`)
//!
//! [publish]                     # after every import that applied a bundle, and the
//!                               # defaults of `ferry-in publish` (its flags override)
//! endpoint = "https://s3.site:9000"   # S3-compatible storage (docs/publish.md)
//! bucket = "mirror"
//! region = "us-east-1"
//! prefix = ""                   # or "site-a/" to share a bucket
//! ca = "/etc/ferry/s3-ca.pem"   # the CA to trust for https (default: the system's)
//! virtual_host = false
//! retries = 4
//! jobs = 4
//! prune = true                  # delete what no kept generation names
//! keep = 2
//!
//! [serve]                       # `ferry-in serve` (its flags override these)
//! header_timeout = "20s"        # to send a request's headers, and keep-alive idle time
//! idle_timeout = "60s"          # no byte moving either way closes a connection
//! max_connections = 4096        # open at once; more are answered 503 and closed
//! page_size = 1000              # entries on one page of a directory listing
//! listen = ["registry=0.0.0.0:5000", "yum=0.0.0.0:8001"]  # as `serve --listen` (repeated)
//! preset = "deepops"            # DeepOps's ports and paths (`serve --preset`)
//! preset_host = "0.0.0.0"       # the address the preset's listeners bind
//! tls = true                    # HTTPS with STATE/tls/server.pem and .key (`tls init`)
//! tls_cert = "/etc/ferry/tls/server.pem"   # or HTTPS with this pair (both keys)
//! tls_key = "/etc/ferry/tls/server.key"
//!
//! [trust]                       # times a bundle may carry (see crate::policy)
//! max_clock_skew = "1h"         # `created` at most this far beyond the local clock
//! max_validity = "90d"          # `expires - created` at most this (ferry-out's default is 90d)
//! warn_after = "7d"             # status and /ferry/health warn when the newest bundle is older
//!
//! [held]                        # STATE/held/: bundles waiting for a gap to fill
//! max_bytes = "4G"
//! max_bundles = 64
//! reserve = "256M"              # free space the filesystem must keep
//!
//! [spool]                       # the diode spool: partial and complete bundles
//! max_bytes = "64G"
//! max_bundles = 16
//! reserve = "256M"
//!
//! [store]
//! keep_previous = false         # true: the generation before the current one stays
//!                               # on disk until the next import (about 2x the disk)
//! reference_in_memory = "160M"  # a longer base reference form (a large layer's plain
//!                               # bytes) is spilled to disk while an object is rebuilt
//!                               # (less beside a large encoder: a deb's xz, ~100 MiB;
//!                               # a wheel's base is held up to 160 MiB whatever this says:
//!                               # the members it shares are copied from it)
//! ```
//!
//! Every key is optional; a missing limit keeps its default
//! (`ReceiverLimits::default()`, `ServeSettings::default()`,
//! `Policy::default()`); without `[push]` nothing is pushed,
//! without `[publish]` nothing is published after an import.

use crate::layout::Layout;
use crate::policy::{Policy, Quota};
use crate::serve::{Listen, ServeSettings, TlsFiles};
use anyhow::{bail, Context, Result};
use ferry_agent_common::units::{parse_duration_secs, parse_size};
use ferry_protocol::limits::ReceiverLimits;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    limits: Limits,
    push: Option<Push>,
    publish: Option<crate::publish::Section>,
    #[serde(default)]
    serve: Serve,
    #[serde(default)]
    trust: TrustTimes,
    #[serde(default)]
    held: Area,
    #[serde(default)]
    spool: Area,
    #[serde(default)]
    store: StoreSection,
    #[serde(default)]
    upstream: crate::upstream::UpstreamSection,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct StoreSection {
    keep_previous: Option<bool>,
    reference_in_memory: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TrustTimes {
    max_clock_skew: Option<String>,
    max_validity: Option<String>,
    warn_after: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Area {
    max_bytes: Option<String>,
    max_bundles: Option<u64>,
    reserve: Option<String>,
}

impl Area {
    fn apply(&self, file: &str, area: &str, q: &mut Quota) -> Result<()> {
        if let Some(v) = &self.max_bytes {
            q.max_bytes = parse_size(v).with_context(|| format!("{file}{area}.max_bytes"))?;
        }
        if let Some(v) = &self.reserve {
            q.reserve_bytes = parse_size(v).with_context(|| format!("{file}{area}.reserve"))?;
        }
        match self.max_bundles {
            Some(0) => bail!("{file}{area}.max_bundles must be at least 1"),
            Some(n) => q.max_bundles = n,
            None => {}
        }
        Ok(())
    }
}

fn read_file(path: Option<&Path>) -> Result<File> {
    match path {
        None => Ok(File::default()),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("config {} is not valid", path.display()))
        }
    }
}

/// The time and disk policy: the defaults, then `[trust]`, `[held]`,
/// `[spool]` and `[store]` from `path`.
pub fn load_policy(path: Option<&Path>) -> Result<Policy> {
    let f = read_file(path)?;
    let file = path.map_or_else(String::new, |p| format!("config {}: ", p.display()));
    let mut p = Policy::default();
    if let Some(v) = &f.trust.max_clock_skew {
        p.max_clock_skew_secs =
            parse_duration_secs(v).with_context(|| format!("{file}trust.max_clock_skew"))?;
    }
    if let Some(v) = &f.trust.max_validity {
        p.max_validity_secs =
            parse_duration_secs(v).with_context(|| format!("{file}trust.max_validity"))?;
        if p.max_validity_secs == 0 {
            bail!("{file}trust.max_validity must be at least 1s");
        }
    }
    if let Some(v) = &f.trust.warn_after {
        p.warn_after_secs =
            parse_duration_secs(v).with_context(|| format!("{file}trust.warn_after"))?;
    }
    f.held.apply(&file, "held", &mut p.held)?;
    f.spool.apply(&file, "spool", &mut p.spool)?;
    if let Some(keep) = f.store.keep_previous {
        p.keep_previous = keep;
    }
    if let Some(v) = &f.store.reference_in_memory {
        p.reference_in_memory =
            parse_size(v).with_context(|| format!("{file}store.reference_in_memory"))?;
    }
    Ok(p)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Push {
    to: String,
}

/// The registry to push to after every import that applied a bundle
/// (`[push] to`), if the config names one.
pub fn load_push_target(path: Option<&Path>) -> Result<Option<String>> {
    let Some(path) = path else { return Ok(None) };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config {}", path.display()))?;
    let f: File =
        toml::from_str(&text).with_context(|| format!("config {} is not valid", path.display()))?;
    match f.push {
        Some(p) if !p.to.starts_with("http://") && !p.to.starts_with("https://") => bail!(
            "config {}: push.to must be a registry URL such as https://registry.site:5000, not {:?}",
            path.display(),
            p.to
        ),
        Some(p) => Ok(Some(p.to)),
        None => Ok(None),
    }
}

/// The config's `[publish]` section, if it has one.
pub fn load_publish(path: Option<&Path>) -> Result<Option<crate::publish::Section>> {
    Ok(read_file(path)?.publish)
}

/// The keys imports check carried upstream signatures with (`[upstream]`,
/// `crate::upstream`); `None` when the config names none. Read once per
/// run and kept for it.
pub fn load_upstream(
    path: Option<&Path>,
) -> Result<Option<&'static crate::upstream::UpstreamKeys>> {
    let Some(path) = path else { return Ok(None) };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config {}", path.display()))?;
    let f: File =
        toml::from_str(&text).with_context(|| format!("config {} is not valid", path.display()))?;
    let keys = f
        .upstream
        .load()
        .with_context(|| format!("config {}", path.display()))?;
    Ok((!keys.cosign.is_empty()).then(|| &*Box::leak(Box::new(keys))))
}

/// `[serve]`: see [`ServeSettings`].
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Serve {
    header_timeout: Option<String>,
    idle_timeout: Option<String>,
    max_connections: Option<usize>,
    page_size: Option<usize>,
    #[serde(default)]
    listen: Vec<String>,
    preset: Option<String>,
    preset_host: Option<String>,
    #[serde(default)]
    tls: bool,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
}

/// What `serve` may be told on its command line; `None` (or empty, or
/// false) keeps the config's value (or the default).
#[derive(Default)]
pub struct ServeFlags {
    pub header_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub max_connections: Option<usize>,
    pub page_size: Option<usize>,
    /// `--listen`, repeated: replaces `[serve] listen`.
    pub listen: Vec<String>,
    /// `--preset`, replaces `[serve] preset`.
    pub preset: Option<String>,
    pub preset_host: Option<String>,
    /// `--tls`: HTTPS with the state's `tls/` pair.
    pub tls: bool,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

/// Where `serve` listens and whether over TLS: `[serve]`, then the flags.
/// The preset's listeners come first; a `listen` on one of its addresses
/// replaces it.
fn serve_places(
    file: &str,
    c: &Serve,
    flags: &ServeFlags,
    layout: &Layout,
    s: &mut ServeSettings,
) -> Result<()> {
    let (listen, listen_what) = if flags.listen.is_empty() {
        (&c.listen, format!("{file}serve.listen"))
    } else {
        (&flags.listen, "--listen".to_string())
    };
    let explicit = listen
        .iter()
        .map(|l| l.parse::<Listen>())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| listen_what.clone())?;
    let host = flags
        .preset_host
        .as_deref()
        .or(c.preset_host.as_deref())
        .unwrap_or("0.0.0.0");
    let preset = match flags.preset.as_deref().or(c.preset.as_deref()) {
        Some(name) => crate::serve::preset(name, host)?,
        None => Vec::new(),
    };
    s.listen = crate::serve::combine(preset, explicit).with_context(|| listen_what)?;
    let pair = |cert: &Option<PathBuf>, key: &Option<PathBuf>, what: &str| match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        })),
        (None, None) => Ok(None),
        _ => bail!("{what}: give both the certificate and its key"),
    };
    let state_pair = TlsFiles {
        cert: layout.tls_cert(),
        key: layout.tls_key(),
    };
    s.tls = match pair(&flags.tls_cert, &flags.tls_key, "--tls-cert/--tls-key")? {
        Some(p) => Some(p),
        None if flags.tls => Some(state_pair),
        None => match pair(
            &c.tls_cert,
            &c.tls_key,
            &format!("{file}serve.tls_cert/tls_key"),
        )? {
            Some(p) => Some(p),
            None if c.tls => Some(state_pair),
            None => None,
        },
    };
    Ok(())
}

/// The settings of `ferry-in serve` for the state under `layout`: the
/// defaults, then `[serve]` from `path`, then the command line's `flags`.
pub fn load_serve_settings(
    path: Option<&Path>,
    flags: &ServeFlags,
    layout: &Layout,
) -> Result<ServeSettings> {
    let f = read_file(path)?;
    let file = path.map_or_else(String::new, |p| format!("config {}: ", p.display()));
    let mut s = ServeSettings::default();
    let secs = |v: &Option<String>, what: &str, into: &mut Duration| -> Result<()> {
        if let Some(v) = v {
            let n = parse_duration_secs(v).with_context(|| what.to_string())?;
            if n == 0 {
                bail!("{what} must be at least 1s");
            }
            *into = Duration::from_secs(n);
        }
        Ok(())
    };
    let count = |v: Option<usize>, what: &str, into: &mut usize| -> Result<()> {
        match v {
            Some(0) => bail!("{what} must be at least 1"),
            Some(n) => *into = n,
            None => {}
        }
        Ok(())
    };
    let c = &f.serve;
    secs(
        &c.header_timeout,
        &format!("{file}serve.header_timeout"),
        &mut s.header_timeout,
    )?;
    secs(
        &c.idle_timeout,
        &format!("{file}serve.idle_timeout"),
        &mut s.idle_timeout,
    )?;
    count(
        c.max_connections,
        &format!("{file}serve.max_connections"),
        &mut s.max_connections,
    )?;
    count(
        c.page_size,
        &format!("{file}serve.page_size"),
        &mut s.page_size,
    )?;
    secs(
        &flags.header_timeout,
        "--header-timeout",
        &mut s.header_timeout,
    )?;
    secs(&flags.idle_timeout, "--idle-timeout", &mut s.idle_timeout)?;
    count(
        flags.max_connections,
        "--max-connections",
        &mut s.max_connections,
    )?;
    count(flags.page_size, "--page-size", &mut s.page_size)?;
    serve_places(&file, c, flags, layout, &mut s)?;
    Ok(s)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Limits {
    max_manifest: Option<String>,
    max_chunk: Option<String>,
    max_object: Option<String>,
    max_bundle: Option<String>,
    max_bundle_uncompressed: Option<String>,
    max_volumes: Option<u32>,
    max_objects: Option<u64>,
    max_expanded: Option<String>,
}

/// Reads the limits from `path`, or the defaults without a file.
pub fn load_limits(path: Option<&Path>) -> Result<ReceiverLimits> {
    let mut l = ReceiverLimits::default();
    let Some(path) = path else { return Ok(l) };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config {}", path.display()))?;
    let f: File =
        toml::from_str(&text).with_context(|| format!("config {} is not valid", path.display()))?;
    let size = |v: &Option<String>, key: &str, into: &mut u64| -> Result<()> {
        if let Some(s) = v {
            *into = parse_size(s)
                .with_context(|| format!("config {}: limits.{key}", path.display()))?;
        }
        Ok(())
    };
    size(
        &f.limits.max_manifest,
        "max_manifest",
        &mut l.max_manifest_bytes,
    )?;
    let mut chunk = l.max_chunk_bytes as u64;
    size(&f.limits.max_chunk, "max_chunk", &mut chunk)?;
    if chunk == 0 || chunk > u32::MAX as u64 {
        bail!(
            "config {}: limits.max_chunk must be between 1 byte and 4G",
            path.display()
        );
    }
    l.max_chunk_bytes = chunk as u32;
    size(&f.limits.max_object, "max_object", &mut l.max_object_bytes)?;
    size(&f.limits.max_bundle, "max_bundle", &mut l.max_bundle_bytes)?;
    size(
        &f.limits.max_bundle_uncompressed,
        "max_bundle_uncompressed",
        &mut l.max_bundle_raw_bytes,
    )?;
    if let Some(v) = f.limits.max_volumes {
        l.max_volumes = v;
    }
    if let Some(v) = f.limits.max_objects {
        l.max_objects = v;
    }
    size(
        &f.limits.max_expanded,
        "max_expanded",
        &mut l.max_expanded_bytes,
    )?;
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_and_bad_configs() {
        let d = std::env::temp_dir().join(format!("ferry-in-config-{}", std::process::id()));
        std::fs::write(&d, "[limits]\nmax_object = \"1G\"\nmax_volumes = 7\n").unwrap();
        let l = load_limits(Some(&d)).unwrap();
        assert_eq!(l.max_object_bytes, 1 << 30);
        assert_eq!(l.max_volumes, 7);
        assert_eq!(l.max_chunk_bytes, ReceiverLimits::default().max_chunk_bytes);
        std::fs::write(&d, "[limits]\nmax_objekt = \"1G\"\n").unwrap();
        assert!(load_limits(Some(&d)).is_err());
        std::fs::write(&d, "[limits]\nmax_chunk = \"lots\"\n").unwrap();
        assert!(load_limits(Some(&d))
            .unwrap_err()
            .to_string()
            .contains("max_chunk"));
        std::fs::write(&d, "[push]\nto = \"http://r:5000\"\n").unwrap();
        assert_eq!(
            load_push_target(Some(&d)).unwrap().as_deref(),
            Some("http://r:5000")
        );
        assert_eq!(load_limits(Some(&d)).unwrap(), ReceiverLimits::default());
        std::fs::write(&d, "[push]\nto = \"r:5000\"\n").unwrap();
        assert!(load_push_target(Some(&d))
            .unwrap_err()
            .to_string()
            .contains("push.to"));
        std::fs::remove_file(&d).unwrap();
        assert_eq!(load_limits(None).unwrap(), ReceiverLimits::default());
        assert_eq!(load_push_target(None).unwrap(), None);
    }

    #[test]
    fn publish_section_and_flags() {
        use crate::publish::PublishArgs;
        let d = std::env::temp_dir().join(format!("ferry-in-publish-{}", std::process::id()));
        std::fs::write(
            &d,
            "[publish]\nendpoint = \"https://s3.site:9000\"\nbucket = \"mirror\"\nprefix = \"a/\"\njobs = 8\nprune = true\n",
        )
        .unwrap();
        let section = load_publish(Some(&d)).unwrap().unwrap();
        let s = section.settings().unwrap();
        assert_eq!(s.target.endpoint, "https://s3.site:9000");
        assert_eq!(s.target.bucket, "mirror");
        assert_eq!(s.target.prefix, "a/");
        assert_eq!(s.target.region, "us-east-1");
        assert_eq!(s.target.retries, 4);
        assert_eq!((s.jobs, s.prune, s.keep), (8, true, 2));
        // A flag overrides the section; what it leaves out comes from it.
        let mut flags = PublishArgs::default();
        flags.bucket.bucket = Some("other".into());
        flags.keep = Some(5);
        let s = flags.settings(Some(&section)).unwrap();
        assert_eq!(
            (s.target.bucket.as_str(), s.target.prefix.as_str(), s.keep),
            ("other", "a/", 5)
        );
        // Without a section, the flags must name the endpoint.
        let e = flags.settings(None).unwrap_err().to_string();
        assert!(e.contains("no S3 endpoint"), "{e}");
        for (text, needle) in [
            (
                "[publish]\nendpoint = \"s3.site\"\nbucket = \"b\"\n",
                "https://",
            ),
            (
                "[publish]\nendpoint = \"http://s\"\nbucket = \"b\"\nprefix = \"a\"\n",
                "must end in '/'",
            ),
            (
                "[publish]\nendpoint = \"http://s\"\nbucket = \"b\"\nkeep = 0\n",
                "keep must be at least 1",
            ),
            ("[publish]\nendpoint = \"http://s\"\n", "no bucket"),
        ] {
            std::fs::write(&d, text).unwrap();
            let e = load_publish(Some(&d))
                .unwrap()
                .unwrap()
                .settings()
                .unwrap_err();
            assert!(e.to_string().contains(needle), "{text}: {e}");
        }
        std::fs::write(&d, "[publish]\nendpiont = \"http://s\"\n").unwrap();
        assert!(load_publish(Some(&d)).is_err(), "an unknown key is refused");
        std::fs::remove_file(&d).unwrap();
        assert!(load_publish(None).unwrap().is_none());
    }

    #[test]
    fn policy_from_config() {
        let d = std::env::temp_dir().join(format!("ferry-in-cfg-p-{}", std::process::id()));
        assert_eq!(load_policy(None).unwrap(), Policy::default());
        std::fs::write(
            &d,
            "[trust]\nmax_clock_skew = \"5m\"\nmax_validity = \"30d\"\n[held]\nmax_bytes = \"1G\"\nmax_bundles = 3\n[spool]\nreserve = \"1G\"\n[store]\nkeep_previous = true\nreference_in_memory = \"32M\"\n",
        )
        .unwrap();
        let p = load_policy(Some(&d)).unwrap();
        assert!(p.keep_previous && !Policy::default().keep_previous);
        assert_eq!(p.reference_in_memory, 32 << 20);
        assert_eq!(
            Policy::default().reference_in_memory,
            crate::store::REFERENCE_IN_MEMORY
        );
        assert_eq!(
            (p.max_clock_skew_secs, p.max_validity_secs),
            (300, 30 * 86_400)
        );
        assert_eq!((p.held.max_bytes, p.held.max_bundles), (1 << 30, 3));
        assert_eq!(p.held.reserve_bytes, Policy::default().held.reserve_bytes);
        assert_eq!(p.spool.reserve_bytes, 1 << 30);
        assert_eq!(p.spool.max_bytes, Policy::default().spool.max_bytes);
        for (bad, key) in [
            ("[trust]\nmax_validity = \"0s\"\n", "trust.max_validity"),
            (
                "[trust]\nmax_clock_skew = \"soon\"\n",
                "trust.max_clock_skew",
            ),
            ("[trust]\nwarn_after = \"soon\"\n", "trust.warn_after"),
            ("[held]\nmax_bundles = 0\n", "held.max_bundles"),
            ("[spool]\nmax_bytes = \"lots\"\n", "spool.max_bytes"),
            ("[held]\nmax_byte = \"1G\"\n", "max_byte"),
            ("[store]\nkeep_previous = \"yes\"\n", "keep_previous"),
            ("[store]\nkeep = true\n", "keep"),
            (
                "[store]\nreference_in_memory = \"big\"\n",
                "store.reference_in_memory",
            ),
        ] {
            std::fs::write(&d, bad).unwrap();
            let e = load_policy(Some(&d)).unwrap_err();
            assert!(format!("{e:#}").contains(key), "{bad}: {e:#}");
        }
        std::fs::remove_file(&d).unwrap();
    }

    #[test]
    fn serve_settings_from_config_and_flags() {
        let d = std::env::temp_dir().join(format!("ferry-in-cfg-s-{}", std::process::id()));
        let none = ServeFlags::default();
        let st = Layout::new(Path::new("/state"));
        assert_eq!(
            load_serve_settings(None, &none, &st).unwrap(),
            ServeSettings::default()
        );
        std::fs::write(
            &d,
            "[serve]\nheader_timeout = \"5s\"\nmax_connections = 300\n[limits]\nmax_volumes = 7\n",
        )
        .unwrap();
        let s = load_serve_settings(Some(&d), &none, &st).unwrap();
        assert_eq!(s.header_timeout, Duration::from_secs(5));
        assert_eq!(s.max_connections, 300);
        assert_eq!(s.idle_timeout, ServeSettings::default().idle_timeout);
        assert_eq!(load_limits(Some(&d)).unwrap().max_volumes, 7);
        let flags = ServeFlags {
            header_timeout: Some("2m".into()),
            page_size: Some(50),
            ..ServeFlags::default()
        };
        let s = load_serve_settings(Some(&d), &flags, &st).unwrap();
        assert_eq!(s.header_timeout, Duration::from_secs(120));
        assert_eq!((s.max_connections, s.page_size), (300, 50));
        for (bad, key) in [
            ("[serve]\nidle_timeout = \"soon\"\n", "serve.idle_timeout"),
            ("[serve]\nheader_timeout = \"0s\"\n", "serve.header_timeout"),
            ("[serve]\npage_size = 0\n", "serve.page_size"),
            ("[serve]\nmax_conections = 5\n", "max_conections"),
            ("[serve]\nlisten = [\"rpm=h:1\"]\n", "serve.listen"),
            ("[serve]\ntls_cert = \"c.pem\"\n", "serve.tls_cert"),
            ("[serve]\npreset = \"nope\"\n", "nope"),
        ] {
            std::fs::write(&d, bad).unwrap();
            let e = load_serve_settings(Some(&d), &none, &st).unwrap_err();
            assert!(format!("{e:#}").contains(key), "{bad}: {e:#}");
        }
        std::fs::remove_file(&d).unwrap();
    }

    #[test]
    fn serve_listeners_and_tls_from_config_and_flags() {
        use crate::serve::Scope;
        use ferry_protocol::catalog::SourceKind;
        let d = std::env::temp_dir().join(format!("ferry-in-cfg-l-{}", std::process::id()));
        let st = Layout::new(Path::new("/state"));
        std::fs::write(
            &d,
            "[serve]\npreset = \"deepops\"\npreset_host = \"10.0.0.5\"\nlisten = [\"helm/charts=10.0.0.5:8002\"]\ntls = true\n",
        )
        .unwrap();
        let s = load_serve_settings(Some(&d), &ServeFlags::default(), &st).unwrap();
        assert_eq!(s.listen.len(), 5);
        assert!(s.listen.contains(&Listen {
            scope: Scope::Source(SourceKind::Helm, "charts".into()),
            addr: "10.0.0.5:8002".into()
        }));
        assert_eq!(s.tls.unwrap().cert, st.tls_cert());
        let flags = ServeFlags {
            listen: vec!["yum=127.0.0.1:0".into()],
            preset: Some("deepops".into()),
            preset_host: Some("127.0.0.1".into()),
            tls_cert: Some("c.pem".into()),
            tls_key: Some("c.key".into()),
            ..ServeFlags::default()
        };
        let s = load_serve_settings(Some(&d), &flags, &st).unwrap();
        assert_eq!(s.listen.len(), 6);
        assert!(s.listen.iter().all(|l| l.addr.starts_with("127.0.0.1:")));
        assert_eq!(s.tls.unwrap().key, PathBuf::from("c.key"));
        std::fs::remove_file(&d).unwrap();
    }
}
