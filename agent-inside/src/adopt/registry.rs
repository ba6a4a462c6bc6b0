//! A registry, adopted over the distribution API: `/v2/_catalog`,
//! `/v2/<repo>/tags/list`, each tag's manifest (its digest is the SHA-256 of
//! the bytes received), the manifests an index names, and the blobs
//! (config, layers) each image manifest names with their declared sizes.
//! Blob digests are the registry's word here; they are checked when an apply
//! takes the bytes (`super::stage`).

use super::{AdoptError, Adopted, Index, Location};
use anyhow::Result;
use ferry_protocol::id::Sha256;
use std::io::Read;
use std::path::Path;

/// The Accept header for manifests: every kind ferry carries.
pub(super) const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// Largest manifest or listing read.
const SMALL: u64 = 16 << 20;

/// An HTTP agent for `base`, verifying https with `ca` (else the system's roots).
pub(super) fn agent(base: &str, ca: Option<&Path>) -> Result<ureq::Agent> {
    let err = |why: String| AdoptError::Registry {
        base: base.into(),
        why,
    };
    if !base.starts_with("http://") && !base.starts_with("https://") {
        return Err(err("a registry is given as http(s)://host:port".into()).into());
    }
    let mut config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(600)));
    if let Some(file) = ca {
        let pem =
            std::fs::read(file).map_err(|e| err(format!("cannot read {}: {e}", file.display())))?;
        let certs: Vec<_> = ureq::tls::parse_pem(&pem)
            .filter_map(|i| match i {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        if certs.is_empty() {
            return Err(err(format!("{}: no PEM certificate in it", file.display())).into());
        }
        config = config.tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
                .build(),
        );
    }
    Ok(config.build().into())
}

/// GETs `url`, returning its body (at most `limit` bytes) or a named error.
pub(super) fn get(
    agent: &ureq::Agent,
    base: &str,
    url: &str,
    accept: &str,
    limit: u64,
) -> Result<Vec<u8>, AdoptError> {
    let err = |why: String| AdoptError::Registry {
        base: base.into(),
        why,
    };
    let resp = agent
        .get(url)
        .header("Accept", accept)
        .call()
        .map_err(|e| err(format!("GET {url}: {e}")))?;
    if resp.status() != 200 {
        return Err(err(format!("GET {url}: status {}", resp.status())));
    }
    let mut out = Vec::new();
    resp.into_body()
        .into_with_config()
        .limit(limit)
        .reader()
        .read_to_end(&mut out)
        .map_err(|e| err(format!("GET {url}: {e}")))?;
    Ok(out)
}

/// Every name of a paginated listing (`_catalog`, `tags/list`): `field`
/// of each page, following `Link: <…>; rel="next"`.
fn list(
    agent: &ureq::Agent,
    base: &str,
    path: &str,
    field: &str,
) -> Result<Vec<String>, AdoptError> {
    let err = |why: String| AdoptError::Registry {
        base: base.into(),
        why,
    };
    let mut out = Vec::new();
    let mut next = Some(format!("{base}/v2/{path}"));
    let mut pages = 0;
    while let Some(url) = next.take() {
        pages += 1;
        if pages > 10_000 {
            return Err(err(format!("{path}: more than 10000 pages")));
        }
        let resp = agent
            .get(&url)
            .header("Accept", "application/json")
            .call()
            .map_err(|e| err(format!("GET {url}: {e}")))?;
        if resp.status() != 200 {
            return Err(err(format!("GET {url}: status {}", resp.status())));
        }
        next = resp
            .headers()
            .get("link")
            .and_then(|v| v.to_str().ok())
            .and_then(|l| {
                l.split_once('<')?
                    .1
                    .split_once('>')
                    .map(|(u, _)| u.to_string())
            })
            .map(|u| {
                if u.starts_with("http") {
                    u
                } else {
                    format!("{base}{u}")
                }
            });
        let mut body = Vec::new();
        resp.into_body()
            .into_with_config()
            .limit(SMALL)
            .reader()
            .read_to_end(&mut body)
            .map_err(|e| err(format!("GET {url}: {e}")))?;
        let v: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| err(format!("GET {url}: not JSON: {e}")))?;
        out.extend(strings(&v, field));
    }
    Ok(out)
}

/// Adds every manifest and blob of the registry at `base` to `index`;
/// returns how many.
pub(super) fn inventory(base: &str, ca: Option<&Path>, index: &mut Index) -> Result<u64> {
    let base = base.trim_end_matches('/');
    let agent = agent(base, ca)?;
    let repos = list(&agent, base, "_catalog?n=1000", "repositories")?;
    let mut n = 0;
    for repo in repos {
        let tags = list(&agent, base, &format!("{repo}/tags/list"), "tags")?;
        let mut todo: Vec<String> = tags;
        let mut seen = std::collections::HashSet::new();
        while let Some(reference) = todo.pop() {
            if !seen.insert(reference.clone()) {
                continue;
            }
            let url = format!("{base}/v2/{repo}/manifests/{reference}");
            let body = get(&agent, base, &url, ACCEPT, SMALL)?;
            let loc = |kind: &str| Location::Registry {
                base: base.into(),
                repo: repo.clone(),
                kind: kind.into(),
                ca: ca.map(Path::to_path_buf),
            };
            let sha = Sha256::of(&body);
            if index
                .insert(
                    sha.to_hex(),
                    Adopted {
                        size: body.len() as u64,
                        location: loc("manifests"),
                    },
                )
                .is_none()
            {
                n += 1;
            }
            let m: serde_json::Value =
                serde_json::from_slice(&body).map_err(|e| AdoptError::Registry {
                    base: base.into(),
                    why: format!("{url}: not JSON: {e}"),
                })?;
            for child in descriptors(&m, "manifests") {
                todo.push(format!("sha256:{}", child.0));
            }
            let blobs = descriptors(&m, "layers")
                .into_iter()
                .chain(m.get("config").and_then(descriptor));
            for (hex, size) in blobs {
                if index
                    .insert(
                        hex,
                        Adopted {
                            size,
                            location: loc("blobs"),
                        },
                    )
                    .is_none()
                {
                    n += 1;
                }
            }
        }
    }
    Ok(n)
}

/// A descriptor's sha256 hex and size.
fn descriptor(d: &serde_json::Value) -> Option<(String, u64)> {
    let hex = d.get("digest")?.as_str()?.strip_prefix("sha256:")?;
    Sha256::from_hex(hex)?;
    Some((hex.to_string(), d.get("size")?.as_u64()?))
}

fn descriptors(m: &serde_json::Value, field: &str) -> Vec<(String, u64)> {
    m.get(field)
        .and_then(|a| a.as_array())
        .map(|a| a.iter().filter_map(descriptor).collect())
        .unwrap_or_default()
}

fn strings(v: &serde_json::Value, field: &str) -> Vec<String> {
    v.get(field)
        .and_then(|a| a.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
