//! The index client, over the source's shared upstream client
//! (`crate::upstream`): project pages fetched by content negotiation,
//! downloads checked against the index's SHA-256.

use super::page::{parse_html_page, parse_json_page, IndexFile};
use super::PypiSource;
use crate::upstream::{Expect, UpstreamError};
use anyhow::{bail, Context, Result};
use ferry_formats::rpm::Checksum;
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
            .client
            .get_response(url.as_str(), &[("Accept", ACCEPT)])
            .context("cannot reach the index")?;
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

    /// Downloads `url` into `dest` (through `dest.part`, resumed when a
    /// connection breaks), checked against the index's SHA-256 before it is
    /// renamed into place.
    pub(super) fn download(&self, url: &str, sha256: &str, what: &str, dest: &Path) -> Result<()> {
        let what = format!("{what} from {url}");
        self.client
            .download(url, dest, &expect_sha256(sha256, &what)?)
            .map_err(|e| explain(e, &what))?;
        Ok(())
    }
}

/// What a download of a file the index states SHA-256 `hex` for must be.
pub(super) fn expect_sha256(hex: &str, what: &str) -> Result<Expect> {
    let checksum = Checksum::new("sha256", hex)
        .with_context(|| format!("{what}: the index's sha256 {hex:?} is not 64 hex digits"))?;
    Ok(Expect {
        size: None,
        checksum: Some(checksum),
    })
}

/// A failed download, said as a PyPI mirror operator reads it: a checksum
/// mismatch names the file and both digests.
pub(super) fn explain(e: UpstreamError, what: &str) -> anyhow::Error {
    let why = match &e {
        UpstreamError::ChecksumMismatch { expected, got, .. } => format!(
            "{what}: the index states SHA-256 {}, the download has {} (tampered or corrupted upstream)",
            expected.trim_start_matches("sha256:"),
            got.trim_start_matches("sha256:")
        ),
        _ => what.to_string(),
    };
    anyhow::Error::new(e).context(why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mismatch_names_the_file_and_both_digests_and_stays_typed() {
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        let e = explain(
            UpstreamError::ChecksumMismatch {
                url: "http://h/x.whl".into(),
                expected: format!("sha256:{a}"),
                got: format!("sha256:{b}"),
            },
            "x.whl from http://h/x.whl",
        );
        let text = format!("{e:#}");
        assert!(
            text.contains(&format!(
                "the index states SHA-256 {a}, the download has {b}"
            )),
            "{text}"
        );
        assert!(matches!(
            e.downcast_ref::<UpstreamError>(),
            Some(UpstreamError::ChecksumMismatch { .. })
        ));
        assert!(expect_sha256("12", "x").is_err());
        let ok = expect_sha256(&a, "x").unwrap();
        assert_eq!(ok.checksum.unwrap().hex, a);
    }
}
