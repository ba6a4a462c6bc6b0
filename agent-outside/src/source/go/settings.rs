//! The settings of a `type = "go"` source and how they are checked.

use super::{GoSource, Op, Query};
use crate::config::SourceConfig;
use crate::upstream::{Client, NetSettings};
use anyhow::{bail, Context, Result};
use ferry_formats::go::sumdb::VerifierKey;
use ferry_formats::go::{check_path, GoVersion};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The key of sum.golang.org, as the go command has it.
pub const SUM_GOLANG_ORG: &str =
    "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8";

/// The settings of a `type = "go"` source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoSettings {
    /// The proxy's base URL.
    #[serde(default = "proxy_golang_org")]
    pub proxy: String,
    /// Module path -> query.
    #[serde(default)]
    pub modules: BTreeMap<String, String>,
    /// `go.sum` files, carried exactly.
    #[serde(default)]
    pub gosum: Vec<PathBuf>,
    /// The checksum database's verifier key, or `off`.
    #[serde(default = "sum_golang_org")]
    pub sumdb: String,
    /// Where the checksum database is read (default `https://<name>/`).
    pub sumdb_url: Option<String>,
    /// Follow `require`s.
    #[serde(default = "yes")]
    pub dependencies: bool,
    /// `warn` or `error`.
    #[serde(default = "warn")]
    pub unsatisfiable: String,
}

fn proxy_golang_org() -> String {
    "https://proxy.golang.org/".into()
}
fn sum_golang_org() -> String {
    SUM_GOLANG_ORG.into()
}
fn warn() -> String {
    "warn".into()
}
fn yes() -> bool {
    true
}

/// A URL ending in `/`, http or https.
fn base_url(text: &str, key: &str) -> Result<url::Url> {
    let mut base = text.to_string();
    if !base.ends_with('/') {
        base.push('/');
    }
    let u = url::Url::parse(&base).with_context(|| format!("`{key}` {text:?} is not a URL"))?;
    if !matches!(u.scheme(), "http" | "https") {
        bail!("`{key}` must be an http:// or https:// URL");
    }
    Ok(u)
}

/// Parses a version query of `modules`.
pub(crate) fn parse_query(q: &str) -> Result<Query> {
    let q = q.trim();
    if q == "latest" {
        return Ok(Query::Latest);
    }
    if q.starts_with(['<', '>']) {
        let mut cmps = Vec::new();
        for part in q.split_whitespace() {
            let (op, v) = [(">=", Op::Ge), ("<=", Op::Le), (">", Op::Gt), ("<", Op::Lt)]
                .into_iter()
                .find_map(|(p, op)| part.strip_prefix(p).map(|v| (op, v)))
                .with_context(|| format!("{part:?} is not a comparison (>=v1.2.0, <v2)"))?;
            cmps.push((op, short_version(v)?));
        }
        return Ok(Query::Compare(cmps));
    }
    if GoVersion::parse(q).is_ok() {
        return Ok(Query::Exact(q.to_string()));
    }
    short_version(q)?;
    Ok(Query::Prefix(q.to_string()))
}

/// `v1`, `v1.2` or `v1.2.3` as a semver (missing parts 0).
fn short_version(v: &str) -> Result<semver::Version> {
    let bad =
        || anyhow::anyhow!("{v:?} is not a version query (v1.2.3, latest, v1, v1.2, >=v1.2.0 <v2)");
    let digits = v.strip_prefix('v').ok_or_else(bad)?;
    let parts: Vec<u64> = digits
        .split('.')
        .map(|p| p.parse::<u64>().map_err(|_| bad()))
        .collect::<Result<_>>()?;
    match parts[..] {
        [a] => Ok(semver::Version::new(a, 0, 0)),
        [a, b] => Ok(semver::Version::new(a, b, 0)),
        [a, b, c] => Ok(semver::Version::new(a, b, c)),
        _ => Err(bad()),
    }
}

impl GoSource {
    /// From its config entry.
    pub fn new(cfg: &SourceConfig) -> Result<Self> {
        let s: GoSettings = cfg.settings()?;
        let proxy = base_url(&s.proxy, "proxy")?;
        if s.modules.is_empty() && s.gosum.is_empty() {
            bail!("needs `modules` (or `gosum`)");
        }
        let unsatisfiable_is_error = match s.unsatisfiable.as_str() {
            "warn" => false,
            "error" => true,
            v => bail!("`unsatisfiable` is \"warn\" or \"error\", not {v:?}"),
        };
        let mut modules = Vec::new();
        for (path, q) in &s.modules {
            check_path(path).context("`modules`")?;
            let query = parse_query(q).with_context(|| format!("module {path}"))?;
            modules.push((path.clone(), q.clone(), query));
        }
        for f in &s.gosum {
            if !f.is_file() {
                bail!("go.sum file {} does not exist", f.display());
            }
        }
        let sumdb = match s.sumdb.as_str() {
            "off" if s.gosum.is_empty() => {
                bail!("`sumdb = \"off\"` needs `gosum` files to check the modules against")
            }
            "off" => None,
            k => {
                let key = VerifierKey::parse(k).context("`sumdb`")?;
                if !ferry_formats::go::sumdb::is_path_name(&key.name) {
                    bail!(
                        "`sumdb`: the database name {:?} is not carried (letters, digits, `.-_` only)",
                        key.name
                    );
                }
                let url = match &s.sumdb_url {
                    Some(u) => base_url(u, "sumdb_url")?,
                    None => base_url(&format!("https://{}/", key.name), "sumdb")?,
                };
                Some((key, url))
            }
        };
        let net = &cfg.net;
        let client = Client::new(net, Some(proxy.as_str()))?;
        // The proxy's credentials are not the checksum database's.
        let sumdb_net = NetSettings {
            ca_file: net.ca_file.clone(),
            timeout: net.timeout.clone(),
            retries: net.retries,
            ..NetSettings::default()
        };
        let sumdb_client = Client::new(&sumdb_net, None)?;
        Ok(GoSource {
            name: cfg.name.clone(),
            proxy,
            modules,
            gosums: s.gosum,
            sumdb,
            dependencies: s.dependencies,
            unsatisfiable_is_error,
            client,
            sumdb_client,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries() {
        assert!(matches!(parse_query("latest").unwrap(), Query::Latest));
        assert!(matches!(parse_query("v1.2.3").unwrap(), Query::Exact(_)));
        assert!(matches!(parse_query("v1.2").unwrap(), Query::Prefix(_)));
        let Query::Compare(c) = parse_query(">=v1.2 <v2").unwrap() else {
            panic!()
        };
        assert_eq!(
            c,
            [
                (Op::Ge, semver::Version::new(1, 2, 0)),
                (Op::Lt, semver::Version::new(2, 0, 0))
            ]
        );
        assert!(parse_query("^1").is_err());
        assert!(parse_query("1.2").is_err());
    }
}
