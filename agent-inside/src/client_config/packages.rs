//! Package clients: apt (deb822 `.sources` with `Signed-By`, and the
//! one-line list the GPU Operator's driver container reads), dnf (`.repo`),
//! pip (`pip.conf`), Helm (`helm repo add`), cargo (`.cargo/config.toml`)
//! npm (`.npmrc`) and Go (`go.env`: GOPROXY, GOSUMDB).

use super::{AptView, ClientConfigError, ClientFile, Ctx};
use anyhow::Result;
use ferry_protocol::catalog::SourceKind;
use std::fmt::Write;

/// The URL of `source` of `kind`, among the held sources `held`.
fn url_of<'a>(
    cx: &Ctx<'_>,
    kind: SourceKind,
    source: &str,
    held: impl Iterator<Item = &'a String>,
) -> Result<String, ClientConfigError> {
    let held: Vec<&str> = held.map(String::as_str).collect();
    cx.urls.source(kind, source, &held)
}

/// The apt URL of `source` in the view `view`: the store's tree (`/apt/`,
/// or its listener), or the site view, which the base serves (`/apt-site/`).
fn apt_url(cx: &Ctx<'_>, source: &str, view: AptView) -> Result<String, ClientConfigError> {
    match view {
        AptView::Upstream => url_of(cx, SourceKind::Apt, source, cx.held.apt.keys()),
        AptView::Site => Ok(format!("{}/apt-site/{source}/", cx.urls.base().url())),
    }
}

/// apt: `/etc/apt/sources.list.d/ferry.sources`, a deb822 stanza per held
/// suite; with the site view, the site key for its `Signed-By`; with https
/// and the site CA, an apt.conf snippet naming the CA for the host.
pub(super) fn apt(cx: &Ctx<'_>) -> Result<Vec<ClientFile>> {
    let mut out = Vec::new();
    if cx.held.apt.is_empty() {
        return Ok(out);
    }
    let mut t = String::new();
    for (source, suites) in &cx.held.apt {
        let url = apt_url(cx, source, cx.apt.view)?;
        for (suite, held) in suites {
            if !t.is_empty() {
                t.push('\n');
            }
            let _ = writeln!(t, "Types: deb");
            let _ = writeln!(t, "URIs: {url}");
            let _ = writeln!(t, "Suites: {suite}");
            let comps: Vec<&str> = held.components.iter().map(String::as_str).collect();
            let _ = writeln!(t, "Components: {}", comps.join(" "));
            if !held.architectures.is_empty() {
                let arches: Vec<&str> = held.architectures.iter().map(String::as_str).collect();
                let _ = writeln!(t, "Architectures: {}", arches.join(" "));
            }
            match (cx.apt.view, cx.apt.signed_by.get(source)) {
                (AptView::Site, _) => {
                    let _ = writeln!(t, "Signed-By: {}", cx.apt.keyring);
                }
                (AptView::Upstream, Some(k)) => {
                    let _ = writeln!(t, "Signed-By: {k}");
                }
                (AptView::Upstream, None) => {
                    let _ = writeln!(
                        t,
                        "# Signed-By: upstream's archive keyring (--apt-signed-by {source}=PATH)"
                    );
                }
            }
        }
    }
    if let (AptView::Site, Some(key)) = (cx.apt.view, &cx.apt.site_key) {
        out.push(ClientFile {
            path: "apt/ferry-site.asc".into(),
            dest: format!("apt site key: {}", cx.apt.keyring),
            body: key.clone(),
        });
    }
    out.push(ClientFile {
        path: "apt/ferry.sources".into(),
        dest: "apt: /etc/apt/sources.list.d/ferry.sources".into(),
        body: t,
    });
    if let Some(conf) = apt_ca_conf(cx)? {
        out.push(conf);
    }
    Ok(out)
}

/// `Acquire::https::HOST::CAInfo` for every https host of the apt sources.
fn apt_ca_conf(cx: &Ctx<'_>) -> Result<Option<ClientFile>> {
    let mut t = String::new();
    for host in cx.urls.hosts() {
        if let Some(p) = cx.ca_path(host) {
            let _ = writeln!(t, "Acquire::https::\"{}\"::CAInfo \"{p}\";", host.host());
        }
    }
    Ok((!t.is_empty()).then(|| ClientFile {
        path: "apt/ferry-ca.conf".into(),
        dest: "apt CA: /etc/apt/apt.conf.d/60ferry-ca".into(),
        body: t,
    }))
}

/// The one-line list of the byte-exact views, for the driver container
/// (its image already trusts the distribution's key), as the seed writes it.
pub(super) fn apt_list(cx: &Ctx<'_>) -> Result<String> {
    let mut t = String::new();
    for (source, suites) in &cx.held.apt {
        let url = apt_url(cx, source, AptView::Upstream)?;
        for (suite, held) in suites {
            let comps: Vec<&str> = held.components.iter().map(String::as_str).collect();
            let opts = match held.architectures.iter().next() {
                Some(_) => {
                    let a: Vec<&str> = held.architectures.iter().map(String::as_str).collect();
                    format!("[arch={}] ", a.join(","))
                }
                None => String::new(),
            };
            let _ = writeln!(t, "deb {opts}{url} {suite} {}", comps.join(" "));
        }
    }
    Ok(t)
}

/// dnf/yum: a section per held yum source, `gpgcheck=1`, `repo_gpgcheck=1`
/// when the metadata's signature is held, the vendor's key.
pub(super) fn dnf_repo(cx: &Ctx<'_>) -> Result<String> {
    let mut t = String::new();
    for (source, repo) in &cx.held.yum {
        let url = url_of(cx, SourceKind::Yum, source, cx.held.yum.keys())?;
        if !t.is_empty() {
            t.push('\n');
        }
        let _ = writeln!(t, "[ferry-{source}]");
        let _ = writeln!(t, "name={source} (ferry-in)");
        let _ = writeln!(t, "baseurl={url}");
        let _ = writeln!(t, "enabled=1");
        let _ = writeln!(t, "gpgcheck=1");
        let _ = writeln!(t, "repo_gpgcheck={}", u8::from(repo.signed_metadata));
        match cx.gpgkeys.get(source) {
            Some(k) => {
                let _ = writeln!(t, "gpgkey={k}");
            }
            None if repo.key => {
                let _ = writeln!(t, "gpgkey={url}repodata/repomd.xml.key");
            }
            None => {
                let _ = writeln!(t, "# gpgkey=the vendor's key (--gpgkey {source}=URL)");
            }
        }
        if let Some(p) = cx.ca_path_of(&url) {
            let _ = writeln!(t, "sslcacert={p}");
        }
    }
    Ok(t)
}

/// dnf: `/etc/yum.repos.d/ferry.repo`.
pub(super) fn dnf(cx: &Ctx<'_>) -> Result<Vec<ClientFile>> {
    if cx.held.yum.is_empty() {
        return Ok(Vec::new());
    }
    Ok(vec![ClientFile {
        path: "yum/ferry.repo".into(),
        dest: "dnf / yum: /etc/yum.repos.d/ferry.repo".into(),
        body: dnf_repo(cx)?,
    }])
}

/// pip: `/etc/pip.conf`, the first PyPI source as the index, the others as
/// extra indexes; the CA, or `trusted-host` over plain HTTP.
pub(super) fn pip(cx: &Ctx<'_>) -> Result<Vec<ClientFile>> {
    let mut urls = Vec::new();
    for s in &cx.held.pypi {
        urls.push(url_of(cx, SourceKind::Pypi, s, cx.held.pypi.iter())?);
    }
    let Some(first) = urls.first() else {
        return Ok(Vec::new());
    };
    let mut t = String::from("[global]\n");
    let _ = writeln!(t, "index-url = {first}simple/");
    for u in &urls[1..] {
        let _ = writeln!(t, "extra-index-url = {u}simple/");
    }
    match cx.ca_path_of(first) {
        Some(p) => {
            let _ = writeln!(t, "cert = {p}");
        }
        None if first.starts_with("http://") => {
            let host = cx.host_of(first);
            let _ = writeln!(t, "trusted-host = {host}");
        }
        None => {}
    }
    Ok(vec![ClientFile {
        path: "pip/pip.conf".into(),
        dest: "pip: /etc/pip.conf (or ~/.config/pip/pip.conf)".into(),
        body: t,
    }])
}

/// Helm: a `helm repo add` line per held chart repository.
pub(super) fn helm(cx: &Ctx<'_>) -> Result<Vec<ClientFile>> {
    let mut t = String::new();
    for s in &cx.held.helm {
        let url = url_of(cx, SourceKind::Helm, s, cx.held.helm.iter())?;
        let _ = write!(t, "helm repo add {s} {url}");
        if let Some(p) = cx.ca_path_of(&url) {
            let _ = write!(t, " --ca-file {p}");
        }
        t.push('\n');
    }
    if t.is_empty() {
        return Ok(Vec::new());
    }
    Ok(vec![ClientFile {
        path: "helm/repo-add.sh".into(),
        dest: "Helm: run".into(),
        body: t,
    }])
}

/// cargo: `.cargo/config.toml` taking crates.io from the first cargo source
/// (the others as named registries), with the CA over https.
pub(super) fn cargo(cx: &Ctx<'_>) -> Result<Vec<ClientFile>> {
    let Some(first) = cx.held.cargo.first() else {
        return Ok(Vec::new());
    };
    let base = cx.urls.base().url();
    let mut t = crate::store::cargo::cargo_config_toml(&base, first);
    for s in &cx.held.cargo[1..] {
        let _ = write!(
            t,
            "\n[registries.{s}]\nindex = \"sparse+{base}/cargo/{s}/\"\n"
        );
    }
    if let Some(p) = cx.ca_path_of(&base) {
        let _ = write!(t, "\n[http]\ncainfo = \"{p}\"\n");
    }
    Ok(vec![ClientFile {
        path: "cargo/config.toml".into(),
        dest: "cargo: ~/.cargo/config.toml (or .cargo/config.toml in a project)".into(),
        body: t,
    }])
}

/// npm: `.npmrc` with the first npm source as the registry, and the CA
/// over https.
pub(super) fn npm(cx: &Ctx<'_>) -> Result<Vec<ClientFile>> {
    let Some(first) = cx.held.npm.first() else {
        return Ok(Vec::new());
    };
    let base = cx.urls.base().url();
    let mut t = crate::store::npm::npmrc(&base, first);
    if let Some(p) = cx.ca_path_of(&base) {
        let _ = writeln!(t, "cafile={p}");
    }
    Ok(vec![ClientFile {
        path: "npm/npmrc".into(),
        dest: "npm: ~/.npmrc (or /etc/npmrc)".into(),
        body: t,
    }])
}

/// Go: `go.env` (the environment, or `go env -w` lines) with every go source
/// in GOPROXY, the carried checksum database's key in GOSUMDB, GONOSUMDB
/// for the modules of sources carried without it (docs/sources/go.md), and
/// the CA over https (`SSL_CERT_FILE`, which the go command honours).
use crate::store::go::GoEnvSource;

pub(super) fn go(cx: &Ctx<'_>) -> Result<Vec<ClientFile>> {
    if cx.held.go.is_empty() {
        return Ok(Vec::new());
    }
    let base = cx.urls.base().url();
    let sources: Vec<GoEnvSource> = cx
        .held
        .go
        .iter()
        .map(|name| GoEnvSource {
            name: name.clone(),
            key: cx.go_keys.get(name).cloned(),
            modules: cx.held.go_modules.get(name).cloned().unwrap_or_default(),
        })
        .collect();
    let mut t = crate::store::go::go_env(&base, &sources);
    if let Some(p) = cx.ca_path_of(&base) {
        let _ = writeln!(t, "SSL_CERT_FILE={p}");
    }
    Ok(vec![ClientFile {
        path: "go/go.env".into(),
        dest: "Go: the environment (or `go env -w` each line)".into(),
        body: t,
    }])
}
