//! Project pages of the simple repository API: PEP 691 JSON and PEP 503
//! HTML, read into [`IndexFile`]s (links resolved against the page's URL,
//! hashes, `requires-python`, PEP 592 yanks, PEP 658/714 metadata).

use anyhow::{anyhow, Context, Result};
use std::collections::HashMap;

/// One file of a project page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexFile {
    /// The file name.
    pub filename: String,
    /// Where to download it.
    pub url: String,
    /// The SHA-256 the index states (lower-case hex).
    pub sha256: Option<String>,
    /// `requires-python`, as given.
    pub requires_python: Option<String>,
    /// `Some(reason)` (maybe empty) when yanked.
    pub yanked: Option<String>,
    /// `Some(hash)` when the index offers a PEP 658 `.metadata` file
    /// (`Some(None)`: offered without a SHA-256).
    pub metadata: Option<Option<String>>,
}

/// Parses a PEP 691 JSON project page.
pub fn parse_json_page(body: &[u8], base: &url::Url) -> Result<Vec<IndexFile>> {
    let v: serde_json::Value = serde_json::from_slice(body).context("not JSON")?;
    let files = v
        .get("files")
        .and_then(|f| f.as_array())
        .ok_or_else(|| anyhow!("no `files` array"))?;
    let mut out = Vec::new();
    for f in files {
        let filename = f
            .get("filename")
            .and_then(|x| x.as_str())
            .ok_or_else(|| anyhow!("a file without `filename`"))?
            .to_string();
        let href = f
            .get("url")
            .and_then(|x| x.as_str())
            .ok_or_else(|| anyhow!("{filename}: no `url`"))?;
        let url = base
            .join(href)
            .with_context(|| format!("{filename}: bad url {href:?}"))?;
        let sha256 = f
            .get("hashes")
            .and_then(|h| h.get("sha256"))
            .and_then(|x| x.as_str())
            .map(str::to_ascii_lowercase);
        let requires_python = f
            .get("requires-python")
            .and_then(|x| x.as_str())
            .map(str::to_string);
        let yanked = match f.get("yanked") {
            Some(serde_json::Value::Bool(true)) => Some(String::new()),
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            _ => None,
        };
        let meta = f
            .get("core-metadata")
            .or_else(|| f.get("dist-info-metadata"));
        let metadata = match meta {
            Some(serde_json::Value::Bool(true)) => Some(None),
            Some(serde_json::Value::Object(m)) => Some(
                m.get("sha256")
                    .and_then(|x| x.as_str())
                    .map(str::to_ascii_lowercase),
            ),
            _ => None,
        };
        let mut url = url;
        url.set_fragment(None);
        out.push(IndexFile {
            filename,
            url: url.to_string(),
            sha256,
            requires_python,
            yanked,
            metadata,
        });
    }
    Ok(out)
}

/// Decodes the HTML character references a simple page uses.
fn html_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';').filter(|e| *e <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let ent = &rest[1..end];
        let c = match ent {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => ent
                .strip_prefix("#x")
                .or_else(|| ent.strip_prefix("#X"))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| ent.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match c {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The attributes of a start tag's inside (after the tag name), names
/// lower-cased, values unescaped; a bare attribute has an empty value.
fn parse_attrs(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'=' && b[i] != b'/' {
            i += 1;
        }
        if start == i {
            break;
        }
        let name = s[start..i].to_ascii_lowercase();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < b.len() && b[i] == b'=' {
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                let q = b[i];
                let vstart = i + 1;
                i = vstart;
                while i < b.len() && b[i] != q {
                    i += 1;
                }
                value = html_unescape(&s[vstart..i.min(b.len())]);
                i += 1;
            } else {
                let vstart = i;
                while i < b.len() && !b[i].is_ascii_whitespace() {
                    i += 1;
                }
                value = html_unescape(&s[vstart..i]);
            }
        }
        out.entry(name).or_insert(value);
    }
    out
}

/// Parses a PEP 503 HTML project page: every `<a href>`, its text the file
/// name, `#sha256=` in the URL, `data-requires-python`, `data-yanked`,
/// `data-core-metadata` / `data-dist-info-metadata`.
pub fn parse_html_page(html: &str, base: &url::Url) -> Result<Vec<IndexFile>> {
    let lower = html.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(i) = lower[pos..].find("<a") {
        let at = pos + i;
        let after = lower.as_bytes().get(at + 2).copied();
        if !after.is_some_and(|c| c.is_ascii_whitespace()) {
            pos = at + 2;
            continue;
        }
        let Some(gt) = html[at..].find('>') else {
            break;
        };
        let attrs = parse_attrs(&html[at + 2..at + gt]);
        let text_start = at + gt + 1;
        let text_end = lower[text_start..]
            .find("</a")
            .map(|e| text_start + e)
            .unwrap_or(html.len());
        pos = text_end;
        let Some(href) = attrs.get("href") else {
            continue;
        };
        let mut url = base
            .join(href)
            .with_context(|| format!("bad link {href:?}"))?;
        let sha256 = url
            .fragment()
            .and_then(|f| f.strip_prefix("sha256=").map(|h| h.to_ascii_lowercase()));
        url.set_fragment(None);
        let text = html_unescape(html[text_start..text_end].trim());
        let filename = if text.is_empty() {
            url.path_segments()
                .and_then(|mut s| s.next_back().map(str::to_string))
                .unwrap_or_default()
        } else {
            text
        };
        let meta = attrs
            .get("data-core-metadata")
            .or_else(|| attrs.get("data-dist-info-metadata"));
        let metadata = match meta.map(String::as_str) {
            None | Some("false") => None,
            Some(v) => Some(v.strip_prefix("sha256=").map(|h| h.to_ascii_lowercase())),
        };
        out.push(IndexFile {
            filename,
            url: url.to_string(),
            sha256,
            requires_python: attrs.get("data-requires-python").cloned(),
            yanked: attrs.get("data-yanked").cloned(),
            metadata,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_pages() {
        let base = url::Url::parse("http://h/simple/foo/").unwrap();
        let html = r#"<!DOCTYPE html><html><body>
<a href="../../files/foo-1.0-py3-none-any.whl#sha256=ABCD" data-requires-python="&gt;=3.8">foo-1.0-py3-none-any.whl</a><br/>
<A HREF='https://x/foo-0.9.tar.gz#sha256=ee' data-yanked="bad &amp; broken" data-core-metadata="sha256=12">foo-0.9.tar.gz</A>
<a href="foo-2.0-py3-none-any.whl" data-dist-info-metadata="true" data-yanked>foo-2.0-py3-none-any.whl</a>
</body></html>"#;
        let files = parse_html_page(html, &base).unwrap();
        assert_eq!(files.len(), 3);
        assert_eq!(files[0].url, "http://h/files/foo-1.0-py3-none-any.whl");
        assert_eq!(files[0].sha256.as_deref(), Some("abcd"));
        assert_eq!(files[0].requires_python.as_deref(), Some(">=3.8"));
        assert_eq!(files[0].yanked, None);
        assert_eq!(files[1].yanked.as_deref(), Some("bad & broken"));
        assert_eq!(files[1].metadata, Some(Some("12".into())));
        assert_eq!(files[2].yanked.as_deref(), Some(""));
        assert_eq!(files[2].metadata, Some(None));
        assert_eq!(files[2].url, "http://h/simple/foo/foo-2.0-py3-none-any.whl");
    }

    #[test]
    fn json_pages() {
        let base = url::Url::parse("http://h/simple/foo/").unwrap();
        let body = br#"{"meta":{"api-version":"1.1"},"name":"foo","files":[
          {"filename":"foo-1.0-py3-none-any.whl","url":"/f/foo-1.0-py3-none-any.whl","hashes":{"sha256":"aa"},
           "requires-python":">=3.9","yanked":"oops","core-metadata":{"sha256":"bb"}},
          {"filename":"foo-1.1.tar.gz","url":"foo-1.1.tar.gz","hashes":{},"yanked":false,"dist-info-metadata":true}]}"#;
        let files = parse_json_page(body, &base).unwrap();
        assert_eq!(files[0].url, "http://h/f/foo-1.0-py3-none-any.whl");
        assert_eq!(files[0].yanked.as_deref(), Some("oops"));
        assert_eq!(files[0].metadata, Some(Some("bb".into())));
        assert_eq!(files[1].sha256, None);
        assert_eq!(files[1].yanked, None);
        assert_eq!(files[1].metadata, Some(None));
    }
}
