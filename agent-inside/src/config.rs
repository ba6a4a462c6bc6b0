//! The optional inside configuration file (TOML), `--config FILE`:
//!
//! ```toml
//! [limits]                      # what a bundle may ask of this agent
//! max_manifest = "256M"
//! max_chunk = "4M"
//! max_object = "256G"
//! max_bundle = "4T"             # bytes on the media
//! max_bundle_uncompressed = "8T"
//! max_volumes = 100000
//! max_objects = 50000000
//!
//! [push]                        # after every import that applied a bundle
//! to = "https://registry.site:5000"   # copy the images there (as `ferry-in push --to`)
//! ```
//!
//! Every key is optional; a missing limit keeps its default
//! (`ReceiverLimits::default()`); without `[push]` nothing is pushed.

use anyhow::{bail, Context, Result};
use ferry_agent_common::units::parse_size;
use ferry_protocol::limits::ReceiverLimits;
use serde::Deserialize;
use std::path::Path;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    limits: Limits,
    push: Option<Push>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Push {
    to: String,
}

/// The registry to push to after every import that applied a bundle
/// (`[push] to`), if the config names one.
pub fn load_push_target(path: Option<&Path>) -> Result<Option<String>> {
    let Some(path) = path else { return Ok(None) };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config {}", path.display()))?;
    let f: File =
        toml::from_str(&text).with_context(|| format!("config {} is not valid", path.display()))?;
    match f.push {
        Some(p) if !p.to.starts_with("http://") && !p.to.starts_with("https://") => bail!(
            "config {}: push.to must be a registry URL such as https://registry.site:5000, not {:?}",
            path.display(),
            p.to
        ),
        Some(p) => Ok(Some(p.to)),
        None => Ok(None),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Limits {
    max_manifest: Option<String>,
    max_chunk: Option<String>,
    max_object: Option<String>,
    max_bundle: Option<String>,
    max_bundle_uncompressed: Option<String>,
    max_volumes: Option<u32>,
    max_objects: Option<u64>,
}

/// Reads the limits from `path`, or the defaults without a file.
pub fn load_limits(path: Option<&Path>) -> Result<ReceiverLimits> {
    let mut l = ReceiverLimits::default();
    let Some(path) = path else { return Ok(l) };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config {}", path.display()))?;
    let f: File =
        toml::from_str(&text).with_context(|| format!("config {} is not valid", path.display()))?;
    let size = |v: &Option<String>, key: &str, into: &mut u64| -> Result<()> {
        if let Some(s) = v {
            *into = parse_size(s)
                .with_context(|| format!("config {}: limits.{key}", path.display()))?;
        }
        Ok(())
    };
    size(
        &f.limits.max_manifest,
        "max_manifest",
        &mut l.max_manifest_bytes,
    )?;
    let mut chunk = l.max_chunk_bytes as u64;
    size(&f.limits.max_chunk, "max_chunk", &mut chunk)?;
    if chunk == 0 || chunk > u32::MAX as u64 {
        bail!(
            "config {}: limits.max_chunk must be between 1 byte and 4G",
            path.display()
        );
    }
    l.max_chunk_bytes = chunk as u32;
    size(&f.limits.max_object, "max_object", &mut l.max_object_bytes)?;
    size(&f.limits.max_bundle, "max_bundle", &mut l.max_bundle_bytes)?;
    size(
        &f.limits.max_bundle_uncompressed,
        "max_bundle_uncompressed",
        &mut l.max_bundle_raw_bytes,
    )?;
    if let Some(v) = f.limits.max_volumes {
        l.max_volumes = v;
    }
    if let Some(v) = f.limits.max_objects {
        l.max_objects = v;
    }
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_and_bad_configs() {
        let d = std::env::temp_dir().join(format!("ferry-in-config-{}", std::process::id()));
        std::fs::write(&d, "[limits]\nmax_object = \"1G\"\nmax_volumes = 7\n").unwrap();
        let l = load_limits(Some(&d)).unwrap();
        assert_eq!(l.max_object_bytes, 1 << 30);
        assert_eq!(l.max_volumes, 7);
        assert_eq!(l.max_chunk_bytes, ReceiverLimits::default().max_chunk_bytes);
        std::fs::write(&d, "[limits]\nmax_objekt = \"1G\"\n").unwrap();
        assert!(load_limits(Some(&d)).is_err());
        std::fs::write(&d, "[limits]\nmax_chunk = \"lots\"\n").unwrap();
        assert!(load_limits(Some(&d))
            .unwrap_err()
            .to_string()
            .contains("max_chunk"));
        std::fs::write(&d, "[push]\nto = \"http://r:5000\"\n").unwrap();
        assert_eq!(
            load_push_target(Some(&d)).unwrap().as_deref(),
            Some("http://r:5000")
        );
        assert_eq!(load_limits(Some(&d)).unwrap(), ReceiverLimits::default());
        std::fs::write(&d, "[push]\nto = \"r:5000\"\n").unwrap();
        assert!(load_push_target(Some(&d))
            .unwrap_err()
            .to_string()
            .contains("push.to"));
        std::fs::remove_file(&d).unwrap();
        assert_eq!(load_limits(None).unwrap(), ReceiverLimits::default());
        assert_eq!(load_push_target(None).unwrap(), None);
    }
}
