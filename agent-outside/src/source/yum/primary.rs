//! Primary metadata (`primary.xml`): the packages a repository holds, and
//! rpm's version order.

use anyhow::{anyhow, bail, Context, Result};
use ferry_formats::rpm::Checksum;

/// An `(epoch, version, release)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evr {
    /// Epoch (0 when absent).
    pub epoch: u64,
    /// Version.
    pub ver: String,
    /// Release.
    pub rel: String,
}

impl Evr {
    /// Compares as rpm does: epoch, then version, then release with `rpmvercmp`.
    pub fn cmp_rpm(&self, other: &Evr) -> std::cmp::Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| rpmvercmp(&self.ver, &other.ver))
            .then_with(|| rpmvercmp(&self.rel, &other.rel))
    }
}

/// rpm's version comparison: alternating runs of digits and letters compared
/// segment by segment (numbers numerically, and a number beats letters), `~`
/// sorts before anything (even the end), `^` after the end but before anything
/// else, other characters only separate.
pub fn rpmvercmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    if a == b {
        return Equal;
    }
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    let sep = |c: u8| !c.is_ascii_alphanumeric() && c != b'~' && c != b'^';
    loop {
        while !a.is_empty() && sep(a[0]) {
            a = &a[1..];
        }
        while !b.is_empty() && sep(b[0]) {
            b = &b[1..];
        }
        match (a.first(), b.first()) {
            (Some(b'~'), Some(b'~')) => {
                a = &a[1..];
                b = &b[1..];
                continue;
            }
            (Some(b'~'), _) => return Less,
            (_, Some(b'~')) => return Greater,
            (Some(b'^'), Some(b'^')) => {
                a = &a[1..];
                b = &b[1..];
                continue;
            }
            (Some(b'^'), None) => return Greater,
            (None, Some(b'^')) => return Less,
            (Some(b'^'), _) => return Less,
            (_, Some(b'^')) => return Greater,
            (None, None) => return Equal,
            (None, _) => return Less,
            (_, None) => return Greater,
            _ => {}
        }
        let numeric = a[0].is_ascii_digit();
        let take = |s: &[u8]| -> usize {
            s.iter()
                .take_while(|c| {
                    if numeric {
                        c.is_ascii_digit()
                    } else {
                        c.is_ascii_alphabetic()
                    }
                })
                .count()
        };
        let (la, lb) = (take(a), take(b));
        if lb == 0 {
            // Different kinds of segment: a number is newer than letters.
            return if numeric { Greater } else { Less };
        }
        let (sa, sb) = (&a[..la], &b[..lb]);
        let ord = if numeric {
            let ta = trim_zeros(sa);
            let tb = trim_zeros(sb);
            ta.len().cmp(&tb.len()).then_with(|| ta.cmp(tb))
        } else {
            sa.cmp(sb)
        };
        if ord != Equal {
            return ord;
        }
        a = &a[la..];
        b = &b[lb..];
    }
}

fn trim_zeros(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&c| c == b'0').count();
    &s[n..]
}

/// A package as primary metadata describes it.
#[derive(Debug, Clone)]
pub struct Package {
    /// Name.
    pub name: String,
    /// Architecture (`noarch`, `x86_64`, `src`, …).
    pub arch: String,
    /// Epoch, version, release.
    pub evr: Evr,
    /// `location href`, relative to the base URL.
    pub href: String,
    /// Checksum of the `.rpm`.
    pub checksum: Checksum,
    /// Size of the `.rpm` (`<size package=…>`).
    pub size: Option<u64>,
    /// Names it provides (`rpm:provides`), and file paths primary lists.
    pub provides: Vec<String>,
    /// Names (or file paths) it requires.
    pub requires: Vec<String>,
}

impl Package {
    /// `name-version-release.arch`, the `.rpm` file name without extension.
    pub fn nvra(&self) -> String {
        format!(
            "{}-{}-{}.{}",
            self.name, self.evr.ver, self.evr.rel, self.arch
        )
    }
}

/// Parses uncompressed primary metadata.
pub fn parse_primary(xml: &str) -> Result<Vec<Package>> {
    let doc = roxmltree::Document::parse_with_options(
        xml,
        roxmltree::ParsingOptions {
            allow_dtd: false,
            nodes_limit: u32::MAX,
            ..Default::default()
        },
    )
    .context("primary metadata is not XML")?;
    let mut out = Vec::new();
    for p in doc
        .root_element()
        .children()
        .filter(|n| n.has_tag_name("package"))
    {
        if p.attribute("type") != Some("rpm") {
            continue;
        }
        let child = |name: &str| p.children().find(|n| n.has_tag_name(name));
        let name = child("name")
            .and_then(|n| n.text())
            .ok_or_else(|| anyhow!("primary: a <package> has no <name>"))?
            .to_string();
        let arch = child("arch")
            .and_then(|n| n.text())
            .unwrap_or("")
            .to_string();
        let v =
            child("version").ok_or_else(|| anyhow!("primary: package {name} has no <version>"))?;
        let evr = Evr {
            epoch: v
                .attribute("epoch")
                .unwrap_or("0")
                .parse()
                .with_context(|| format!("primary: package {name}: epoch"))?,
            ver: v.attribute("ver").unwrap_or("").to_string(),
            rel: v.attribute("rel").unwrap_or("").to_string(),
        };
        let loc = child("location")
            .ok_or_else(|| anyhow!("primary: package {name} has no <location>"))?;
        if loc.attribute("xml:base").is_some() || loc.attribute("base").is_some() {
            bail!("primary: package {name} has an xml:base location, which is not supported");
        }
        let href = loc
            .attribute("href")
            .ok_or_else(|| anyhow!("primary: package {name} has no location href"))?
            .to_string();
        let ck = child("checksum")
            .ok_or_else(|| anyhow!("primary: package {name} has no <checksum>"))?;
        let checksum = Checksum::new(ck.attribute("type").unwrap_or(""), ck.text().unwrap_or(""))
            .with_context(|| format!("primary: package {href}"))?;
        let size = child("size")
            .and_then(|n| n.attribute("package"))
            .and_then(|s| s.parse().ok());
        let mut provides = Vec::new();
        let mut requires = Vec::new();
        if let Some(fmt) = child("format") {
            for sec in fmt.children() {
                match sec.tag_name().name() {
                    "provides" | "requires" => {
                        let list = if sec.tag_name().name() == "provides" {
                            &mut provides
                        } else {
                            &mut requires
                        };
                        for e in sec.children().filter(|n| n.has_tag_name("entry")) {
                            if let Some(n) = e.attribute("name") {
                                list.push(n.to_string());
                            }
                        }
                    }
                    "file" => {
                        if let Some(t) = sec.text() {
                            provides.push(t.to_string());
                        }
                    }
                    _ => {}
                }
            }
        }
        out.push(Package {
            name,
            arch,
            evr,
            href,
            checksum,
            size,
            provides,
            requires,
        });
    }
    Ok(out)
}

/// Decompresses metadata by its file name: `.gz`, `.xz`, `.zst`, or plain XML.
pub(super) fn decompress(href: &str, data: &[u8], limit: u64) -> Result<Vec<u8>> {
    if !ferry_formats::compress::is_compressed(href) && !href.ends_with(".xml") {
        bail!("{href}: unsupported compression (gz, xz, zst and plain XML are)");
    }
    Ok(ferry_formats::compress::decompress(href, data, limit)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering::*;

    #[test]
    fn version_comparison_follows_rpm() {
        for (a, b, o) in [
            ("1.0", "1.0", Equal),
            ("1.0", "1.1", Less),
            ("1.10", "1.9", Greater),
            ("1.0a", "1.0", Greater),
            ("1.0", "1.0.1", Less),
            ("2.0", "2a", Greater),
            ("1.0~rc1", "1.0", Less),
            ("1.0~rc1", "1.0~rc2", Less),
            ("1.0^git1", "1.0", Greater),
            ("1.0^git1", "1.0.1", Less),
            ("001", "1", Equal),
            ("1_0", "1.0", Equal),
            ("a", "1", Less),
        ] {
            assert_eq!(rpmvercmp(a, b), o, "{a} vs {b}");
            assert_eq!(rpmvercmp(b, a), o.reverse(), "{b} vs {a}");
        }
    }
}
