//! `ferry-in client-config`: configuration that points ordinary clients at
//! this agent's stores, for what the current generation actually holds (no
//! file for a store that holds nothing), one file per client, printed or
//! written under `--out DIR`.
//!
//! - images (`held.images`): containerd `hosts.toml` for the registry and a
//!   mirror per `--upstream`, containers-registries.conf (podman, cri-o,
//!   skopeo), the GPU Operator's `values.yaml` for the chart's images held,
//!   with `driver.repoConfig` and `driver.certConfig`, and its ConfigMaps;
//! - apt: deb822 `.sources` (`Signed-By` the site key for the site view, or
//!   upstream's keyring for the byte-exact view), the site key;
//! - yum: a dnf `.repo` (`gpgcheck=1`, `repo_gpgcheck=1` when the metadata's
//!   signature is held); PyPI: `pip.conf`; Helm: `helm repo add`.
//!
//! With the site CA (`STATE/tls/ca.pem`, `ferry-in tls init`) URLs default
//! to https and every https config names the CA where clients keep it
//! (`--ca-path`); without it, http. Repositories are served under their
//! upstream path (`nvcr.io/nvidia/driver` is `HOST:PORT/nvidia/driver`).

mod held;
mod packages;
mod registry;
mod urls;

use crate::genread::GenRead;
use crate::layout::Layout;
use crate::site_key::SiteKey;
use anyhow::{Context, Result};
use held::Held;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use urls::{Base, Urls};

/// `client-config`'s options.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// How clients reach `serve`: http[s]://HOST[:PORT], or HOST[:PORT]
    /// (https when STATE/tls/ca.pem exists, else http).
    #[arg(long)]
    pub url: String,
    /// A store or source on a listener of its own, as `serve --listen` places
    /// it: registry=URL, STORE=URL (its sources at URL/<source>/) or
    /// STORE/SOURCE=URL (that source at URL/). Repeatable.
    #[arg(long = "listen-url", value_name = "SPEC=URL")]
    pub listen_url: Vec<String>,
    /// A site layout's ports, as `serve --preset` serves them: deepops
    /// (registry :5000, yum :8001, helm :8002, pypi :8003, files :8004 on
    /// the host of --url).
    #[arg(long)]
    pub preset: Option<String>,
    /// An upstream registry the images came from, which clients then pull
    /// through this registry as its mirror (repeatable).
    #[arg(long)]
    pub upstream: Vec<String>,
    /// Write one file per client under DIR instead of printing them.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Where clients keep the site CA; the https configs name this path.
    #[arg(long, default_value = "/etc/ferry/ca.pem")]
    pub ca_path: String,
    /// The apt view clients use: `site` (indices of what is held, signed
    /// with the site key) or `upstream` (byte-exact, upstream's key).
    #[arg(long, value_enum, default_value_t = AptView::Site)]
    pub apt_view: AptView,
    /// Where clients keep the site key (Signed-By of the site view).
    #[arg(long, default_value = "/etc/apt/keyrings/ferry-site.asc")]
    pub apt_keyring: String,
    /// SOURCE=PATH: upstream's keyring for the byte-exact view (repeatable).
    #[arg(long, value_name = "SOURCE=PATH")]
    pub apt_signed_by: Vec<String>,
    /// SOURCE=URL: the vendor's key of a yum source, dnf's gpgkey (repeatable).
    #[arg(long, value_name = "SOURCE=URL")]
    pub gpgkey: Vec<String>,
    /// The Kubernetes namespace of the GPU Operator's ConfigMaps.
    #[arg(long, default_value = "gpu-operator")]
    pub namespace: String,
}

/// Which apt view the `.sources` file names.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AptView {
    /// `/apt-site/<source>/`: only what is held, signed with the site key.
    Site,
    /// `/apt/<source>/`: upstream's indices byte for byte, upstream's key.
    Upstream,
}

/// Why no configuration could be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientConfigError {
    /// `--url` or a `--listen-url` URL that is not `scheme://host[:port]`.
    #[error("URL {url:?}: {why}")]
    BadUrl { url: String, why: String },
    /// A `--listen-url` that is not `SPEC=URL`.
    #[error("--listen-url {spec:?}: not registry=URL, STORE=URL or STORE/SOURCE=URL")]
    BadListen { spec: String },
    /// A `--listen-url` naming no store.
    #[error(
        "--listen-url {spec:?}: no store {store:?}; stores: registry, files, apt, yum, pypi, helm"
    )]
    UnknownStore { spec: String, store: String },
    /// `--preset` names no preset.
    #[error("no preset {name:?}; presets: deepops")]
    UnknownPreset { name: String },
    /// A `SOURCE=VALUE` option without `=`.
    #[error("{option} {value:?}: not SOURCE=VALUE")]
    BadPair { option: String, value: String },
    /// A preset serves one source of a store at its root, and several are held.
    #[error("the {store} listener serves one source at its root and {sources:?} are held; name one with --listen-url {store}/SOURCE=URL")]
    SeveralSources { store: String, sources: Vec<String> },
    /// Nothing was ever imported.
    #[error("nothing imported yet in {state}: there is no store to configure clients for")]
    NothingImported { state: PathBuf },
    /// The current generation holds no source.
    #[error("the current generation holds nothing clients could use")]
    NothingHeld,
    /// An apt source is held but there is no site key to sign its view.
    #[error("apt sources are held but there is no site key ({path}); run `ferry-in site-key`, or use --apt-view upstream")]
    NoSiteKey { path: PathBuf },
}

/// One file for one client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientFile {
    /// Its path under `--out`.
    pub path: String,
    /// Which client, and where the file goes on a client (or how it is used).
    pub dest: String,
    /// Its text.
    pub body: String,
}

/// The apt settings of a run.
struct AptSettings {
    view: AptView,
    keyring: String,
    site_key: Option<String>,
    signed_by: BTreeMap<String, String>,
}

/// Everything the files are made from.
struct Ctx<'a> {
    held: &'a Held,
    urls: &'a Urls,
    /// The site CA (PEM), if the state has one.
    ca: Option<&'a str>,
    ca_path: &'a str,
    upstreams: &'a [String],
    namespace: &'a str,
    apt: AptSettings,
    gpgkeys: BTreeMap<String, String>,
    /// Go source -> its carried checksum database's verifier key.
    go_keys: BTreeMap<String, String>,
}

impl Ctx<'_> {
    /// Where clients keep the CA, when `base` is https and there is a CA.
    fn ca_path(&self, base: &Base) -> Option<&str> {
        (self.ca.is_some() && base.scheme == "https").then_some(self.ca_path)
    }

    /// Where clients keep the CA, when `url` is https and there is a CA.
    fn ca_path_of(&self, url: &str) -> Option<&str> {
        (self.ca.is_some() && url.starts_with("https://")).then_some(self.ca_path)
    }

    /// The host (no port) of `url`.
    fn host_of<'u>(&self, url: &'u str) -> &'u str {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        let authority = rest.split('/').next().unwrap_or(rest);
        match authority.rsplit_once(':') {
            Some((h, p)) if p.parse::<u16>().is_ok() => h,
            _ => authority,
        }
    }
}

/// Every file, in the order they are printed.
fn render(cx: &Ctx<'_>) -> Result<Vec<ClientFile>> {
    let mut out = Vec::new();
    if let Some(ca) = cx.ca {
        if cx.urls.hosts().iter().any(|b| cx.ca_path(b).is_some()) {
            out.push(ClientFile {
                path: "ca.pem".into(),
                dest: format!("site CA, for every client: {}", cx.ca_path),
                body: ca.to_string(),
            });
        }
    }
    if !cx.held.images.is_empty() {
        out.extend(registry::containerd(cx)?);
        out.extend(registry::containers(cx)?);
        out.extend(registry::gpu_operator_values(cx)?);
        out.extend(registry::gpu_operator_config_maps(cx)?);
    }
    out.extend(packages::apt(cx)?);
    out.extend(packages::dnf(cx)?);
    out.extend(packages::pip(cx)?);
    out.extend(packages::helm(cx)?);
    out.extend(packages::cargo(cx)?);
    out.extend(packages::npm(cx)?);
    out.extend(packages::go(cx)?);
    Ok(out)
}

/// The generation `current` names.
fn current_gen(layout: &Layout) -> Result<GenRead> {
    GenRead::open_current(layout)?.ok_or_else(|| {
        ClientConfigError::NothingImported {
            state: layout.root.clone(),
        }
        .into()
    })
}

/// `SOURCE=VALUE` options, by source.
fn pairs(option: &str, values: &[String]) -> Result<BTreeMap<String, String>, ClientConfigError> {
    values
        .iter()
        .map(|v| match v.split_once('=') {
            Some((s, x)) if !s.is_empty() && !x.is_empty() => Ok((s.to_string(), x.to_string())),
            _ => Err(ClientConfigError::BadPair {
                option: option.to_string(),
                value: v.clone(),
            }),
        })
        .collect()
}

/// The files for the current generation under `layout`.
pub fn files(layout: &Layout, args: &Args) -> Result<Vec<ClientFile>> {
    let gen = current_gen(layout)?;
    let held = Held::of(&gen)?;
    if held.is_empty() {
        return Err(ClientConfigError::NothingHeld.into());
    }
    let ca = match std::fs::read_to_string(layout.tls_ca()) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).context(format!("cannot read {}", layout.tls_ca().display())),
    };
    let scheme = if ca.is_some() { "https" } else { "http" };
    let urls = Urls::new(
        Base::parse(&args.url, scheme)?,
        args.preset.as_deref(),
        &args.listen_url,
    )?;
    let signed_by = pairs("--apt-signed-by", &args.apt_signed_by)?;
    let gpgkeys = pairs("--gpgkey", &args.gpgkey)?;
    let mut go_keys = BTreeMap::new();
    for (source, path) in &held.go_sumdb {
        let key = ferry_protocol::path::ObjectKey {
            source: source.clone(),
            path: path.clone(),
        };
        let meta = gen
            .file(&key)?
            .with_context(|| format!("generation {}: {key} is not a file", gen.name()))?;
        let f = gen.bytes_path(&key, &meta);
        let text =
            std::fs::read_to_string(&f).with_context(|| format!("cannot read {}", f.display()))?;
        go_keys.insert(source.clone(), text.trim().to_string());
    }
    let site_key = match (args.apt_view, held.apt.is_empty()) {
        (AptView::Site, false) => match SiteKey::load(layout)? {
            Some(k) => Some(k.public_armored()?),
            None => {
                return Err(ClientConfigError::NoSiteKey {
                    path: layout.site_key(),
                }
                .into())
            }
        },
        _ => None,
    };
    let cx = Ctx {
        held: &held,
        urls: &urls,
        ca: ca.as_deref(),
        ca_path: &args.ca_path,
        upstreams: &args.upstream,
        namespace: &args.namespace,
        apt: AptSettings {
            view: args.apt_view,
            keyring: args.apt_keyring.clone(),
            site_key,
            signed_by,
        },
        gpgkeys,
        go_keys,
    };
    render(&cx)
}

/// `ferry-in client-config`: prints the files, or writes them under `--out`.
pub fn run(layout: &Layout, args: &Args) -> Result<i32> {
    let files = files(layout, args)?;
    match &args.out {
        Some(dir) => write_all(dir, &files)?,
        None => {
            for f in &files {
                println!("# {} ({})\n{}", f.dest, f.path, f.body);
            }
        }
    }
    Ok(0)
}

/// Writes every file under `dir` and lists them on standard error.
fn write_all(dir: &Path, files: &[ClientFile]) -> Result<()> {
    for f in files {
        let p = dir.join(&f.path);
        let parent = ferry_agent_common::fsx::parent(&p);
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
        ferry_agent_common::fsx::write_atomic(&p, f.body.as_bytes())
            .with_context(|| format!("cannot write {}", p.display()))?;
        eprintln!("{}: {}", p.display(), f.dest);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
