//! The index client: one agent per source, project pages fetched by
//! content negotiation, downloads checked against the index's SHA-256.

use super::emit::Verify;
use super::page::{parse_html_page, parse_json_page, IndexFile};
use super::PypiSource;
use anyhow::{anyhow, bail, Context, Result};
use std::path::Path;

/// What the client asks an index for: PEP 691 JSON first, HTML otherwise.
const ACCEPT: &str = "application/vnd.pypi.simple.v1+json, \
application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01";
/// The largest project page or metadata file read.
pub(super) const MAX_PAGE: u64 = 64 << 20;

impl PypiSource {
    /// Fetches and parses a project's page.
    pub(super) fn page(&self, project: &str) -> Result<Vec<IndexFile>> {
        let url = self
            .index
            .join(&format!("{project}/"))
            .with_context(|| format!("cannot make a project URL for {project}"))?;
        let mut resp = self
            .agent
            .get(url.as_str())
            .header("Accept", ACCEPT)
            .call()
            .with_context(|| format!("cannot reach the index at {url}"))?;
        if resp.status() == 404 {
            bail!("project {project} is not on the index ({url}: 404 Not Found)");
        }
        if !resp.status().is_success() {
            bail!("{url}: HTTP {}", resp.status());
        }
        let ctype = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        // The final URL after redirects is what relative links resolve against.
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_PAGE)
            .read_to_vec()
            .with_context(|| format!("cannot read {url}"))?;
        if ctype.starts_with("application/vnd.pypi.simple.v1+json") {
            parse_json_page(&body, &url).with_context(|| format!("{url} (PEP 691 JSON)"))
        } else {
            let text = String::from_utf8_lossy(&body);
            parse_html_page(&text, &url).with_context(|| format!("{url} (PEP 503 HTML)"))
        }
    }

    /// Downloads `url` into `dest`, checking its SHA-256.
    pub(super) fn download(&self, url: &str, sha256: &str, what: &str, dest: &Path) -> Result<()> {
        let resp = self
            .agent
            .get(url)
            .call()
            .with_context(|| format!("cannot fetch {url}"))?;
        if !resp.status().is_success() {
            bail!("{url}: HTTP {}", resp.status());
        }
        let tmp = dest.with_extension("part");
        let mut out = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        let mut reader = Verify::new(
            Box::new(resp.into_body().into_with_config().limit(u64::MAX).reader()),
            sha256,
            format!("source {:?}: {what} from {url}", self.name),
        )?;
        std::io::copy(&mut reader, &mut out).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            anyhow!(e)
        })?;
        std::fs::rename(&tmp, dest)
            .with_context(|| format!("cannot rename into {}", dest.display()))?;
        Ok(())
    }
}

/// An HTTP client that reports statuses as responses, trusting the CA
/// certificates of `ca_file` (a PEM bundle) when given.
pub(super) fn make_agent(ca_file: Option<&Path>) -> Result<ureq::Agent> {
    let mut config = ureq::Agent::config_builder().http_status_as_error(false);
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let certs: Vec<_> = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .collect();
        if certs.is_empty() {
            bail!("{} holds no PEM certificate", path.display());
        }
        config = config.tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::from(certs))
                .build(),
        );
    }
    Ok(config.build().into())
}
