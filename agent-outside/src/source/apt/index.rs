//! Package indices: the stanzas of `Packages` files, and the dependency
//! fields the selection follows.

use anyhow::{anyhow, bail, Result};
use ferry_formats::deb::{fields, paragraphs};
use ferry_protocol::id::Sha256;
use serde::{Deserialize, Serialize};

/// One binary package stanza.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Stanza {
    pub(super) package: String,
    pub(super) filename: String,
    pub(super) size: u64,
    pub(super) sha256: String,
    /// Where it was listed: suite, component, architecture directory.
    pub(super) suite: String,
    pub(super) component: String,
    pub(super) arch: String,
    /// The stanza as upstream wrote it.
    pub(super) text: String,
    #[serde(skip)]
    pub(super) deps: Vec<Vec<String>>,
    #[serde(skip)]
    pub(super) recommends: Vec<Vec<String>>,
    #[serde(skip)]
    pub(super) provides: Vec<String>,
}

/// Dependency field: alternatives groups of package names (versions and
/// architecture qualifiers dropped).
fn dep_groups(v: &str) -> Vec<Vec<String>> {
    v.split(',')
        .map(|g| {
            g.split('|')
                .filter_map(|alt| {
                    let n = alt.trim().split([' ', '(', '[', '<']).next()?.trim();
                    let n = n.split(':').next().unwrap_or(n);
                    (!n.is_empty()).then(|| n.to_string())
                })
                .collect::<Vec<_>>()
        })
        .filter(|g| !g.is_empty())
        .collect()
}

pub(super) fn parse_stanzas(
    source: &str,
    file: &str,
    text: &str,
    (suite, component, arch): (&str, &str, &str),
) -> Result<Vec<Stanza>> {
    let mut out = Vec::new();
    for para in paragraphs(text) {
        let f = fields(para);
        let get = |k: &str| {
            f.get(k).cloned().ok_or_else(|| {
                anyhow!(
                    "source {source:?}: {file}: a stanza ({}) has no {k} field",
                    f.get("package").map(String::as_str).unwrap_or("no Package")
                )
            })
        };
        let filename = get("filename")?;
        if ferry_protocol::path::check_path(&filename).is_err() || !filename.starts_with("pool/") {
            bail!("source {source:?}: {file}: Filename {filename:?} is not a path under pool/");
        }
        let size = get("size")?
            .parse()
            .map_err(|_| anyhow!("source {source:?}: {file}: bad Size for {filename}"))?;
        let sha256 = get("sha256")?;
        if Sha256::from_hex(&sha256).is_none() {
            bail!("source {source:?}: {file}: bad SHA256 for {filename}");
        }
        let mut deps = dep_groups(f.get("pre-depends").map(String::as_str).unwrap_or(""));
        deps.extend(dep_groups(
            f.get("depends").map(String::as_str).unwrap_or(""),
        ));
        out.push(Stanza {
            package: get("package")?,
            filename,
            size,
            sha256,
            suite: suite.into(),
            component: component.into(),
            arch: arch.into(),
            text: format!("{para}\n"),
            deps,
            recommends: dep_groups(f.get("recommends").map(String::as_str).unwrap_or("")),
            provides: dep_groups(f.get("provides").map(String::as_str).unwrap_or(""))
                .into_iter()
                .flatten()
                .collect(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deps_parse() {
        assert_eq!(
            dep_groups("libc6 (>= 2.3), foo | bar:any [amd64], python3:any (>= 3)"),
            vec![
                vec!["libc6".to_string()],
                vec!["foo".to_string(), "bar".to_string()],
                vec!["python3".to_string()]
            ]
        );
        assert!(dep_groups("").is_empty());
    }
}
