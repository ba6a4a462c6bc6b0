//! Which images a scan mirrors: image references (`repo:tag`,
//! `repo@sha256:…`) and tag patterns matched against a repository's tags.

use super::walk::ScanState;
use super::OciSource;
use anyhow::{Context, Result};
use ferry_formats::oci::{check_repo, check_tag, Digest};

/// An image to mirror.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef {
    /// Repository, such as `nvidia/driver`.
    pub repo: String,
    /// Tag, such as `470.82.01`, when given.
    pub tag: Option<String>,
    /// Digest, when given.
    pub digest: Option<Digest>,
}

impl ImageRef {
    /// Parses `repo:tag`, `repo@sha256:…` or `repo` (tag `latest`). The
    /// repository and tag follow the distribution spec's grammar
    /// ([`ferry_formats::oci::valid_repo`], [`ferry_formats::oci::valid_tag`]).
    pub fn parse(s: &str) -> Result<ImageRef> {
        let what = || format!("image {s:?}");
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(Digest::parse(d).with_context(what)?)),
            None => (s, None),
        };
        let (repo, tag) = match rest.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r.to_string(), Some(t.to_string())),
            _ => (rest.to_string(), None),
        };
        let tag = if tag.is_none() && digest.is_none() {
            Some("latest".to_string())
        } else {
            tag
        };
        check_repo(&repo).with_context(what)?;
        if let Some(t) = &tag {
            check_tag(t).with_context(what)?;
        }
        Ok(ImageRef { repo, tag, digest })
    }

    /// What to ask the registry for: the digest if given, else the tag.
    pub fn reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => unreachable!("ImageRef::parse gives a tag or a digest"),
        }
    }
}

/// Which tags of a repository to mirror.
pub enum TagPattern {
    /// Tags matching this regular expression in full.
    Regex(regex::Regex),
    /// Tags that parse as a semantic version (a leading `v` allowed) within this range.
    Semver(semver::VersionReq),
}

impl TagPattern {
    /// Parses a pattern: `semver:<range>` or a regular expression.
    pub fn parse(s: &str) -> Result<TagPattern> {
        match s.strip_prefix("semver:") {
            Some(r) => Ok(TagPattern::Semver(
                semver::VersionReq::parse(r.trim())
                    .with_context(|| format!("{r:?} is not a semver range"))?,
            )),
            None => Ok(TagPattern::Regex(
                regex::Regex::new(&format!("^(?:{s})$"))
                    .with_context(|| format!("{s:?} is not a regular expression"))?,
            )),
        }
    }

    /// Whether `tag` is selected.
    pub fn matches(&self, tag: &str) -> bool {
        match self {
            TagPattern::Regex(r) => r.is_match(tag),
            TagPattern::Semver(req) => semver::Version::parse(tag.strip_prefix('v').unwrap_or(tag))
                .map(|v| req.matches(&v))
                .unwrap_or(false),
        }
    }
}

impl OciSource {
    /// The images of this scan: the configured ones, then every tag a
    /// pattern selects (in tag order, each once).
    pub(super) fn select_images(&self, st: &mut ScanState) -> Result<Vec<ImageRef>> {
        let mut images = self.images.clone();
        for (repo, pattern) in &self.patterns {
            let tags = self.tag_list(repo, st)?;
            let mut picked: Vec<_> = tags
                .iter()
                .filter(|t| pattern.matches(t))
                .cloned()
                .collect();
            picked.sort();
            if picked.is_empty() {
                eprintln!(
                    "ferry-out: warning: source {:?}: no tag of {repo} matches its pattern",
                    self.name
                );
            }
            for tag in picked {
                let image = ImageRef {
                    repo: repo.clone(),
                    tag: Some(tag),
                    digest: None,
                };
                if !images.contains(&image) {
                    images.push(image);
                }
            }
        }
        Ok(images)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_formats::oci::{DigestError, NameError};

    #[test]
    fn image_references() {
        let r = ImageRef::parse("nvidia/gpu-operator:v1.9.0").unwrap();
        assert_eq!(
            (r.repo.as_str(), r.tag.as_deref()),
            ("nvidia/gpu-operator", Some("v1.9.0"))
        );
        assert_eq!(r.reference(), "v1.9.0");
        let r = ImageRef::parse("library/busybox").unwrap();
        assert_eq!(r.tag.as_deref(), Some("latest"));
        let d = format!("sha256:{}", "a".repeat(64));
        let r = ImageRef::parse(&format!("nvidia/k8s-device-plugin@{d}")).unwrap();
        assert_eq!((r.tag, r.digest), (None, Some(Digest::parse(&d).unwrap())));
        let r = ImageRef::parse(&format!("a:t@{d}")).unwrap();
        assert_eq!(r.reference(), d);
        for (bad, want_name) in [
            ("Upper/case:1", true),
            ("x:bad tag", true),
            ("", true),
            ("a//b:1", true),
            ("a..b:1", true),
            ("x@sha256:12", false),
        ] {
            let e = ImageRef::parse(bad).unwrap_err();
            if want_name {
                assert!(e.downcast_ref::<NameError>().is_some(), "{bad}: {e:#}");
            } else {
                assert!(
                    matches!(
                        e.downcast_ref::<DigestError>(),
                        Some(DigestError::Hex { .. })
                    ),
                    "{bad}: {e:#}"
                );
            }
        }
    }

    #[test]
    fn tag_patterns() {
        let p = TagPattern::parse(r"11\.4\..*-base-ubi8").unwrap();
        assert!(p.matches("11.4.2-base-ubi8"));
        assert!(!p.matches("11.4.2-base-ubi8-extra"));
        assert!(!p.matches("11.5.0-base-ubi8"));
        let s = TagPattern::parse("semver:>=1.9, <2").unwrap();
        assert!(s.matches("v1.9.0") && s.matches("1.10.3"));
        assert!(!s.matches("v2.0.0") && !s.matches("latest") && !s.matches("1.8.9"));
        assert!(TagPattern::parse("semver:not a range").is_err());
        assert!(TagPattern::parse("(unclosed").is_err());
    }
}
