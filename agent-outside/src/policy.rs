//! `[policy]` of ferry-out.toml: site rules checked when the config loads.
//!
//! `require_upstream_signatures = true` makes an upstream signature
//! mandatory for every source: a source whose ecosystem has one Ferry checks
//! (apt's and yum's `keyring`, an OCI source's `cosign_keys`, Go's `sumdb`)
//! must have it configured, and a source whose ecosystem has none (files,
//! PyPI, Helm, cargo, npm) must say why it is shipped anyway with
//! `unsigned_ok = "reason"`. The reason is recorded in the bundle's
//! provenance (docs/trust.md, "Upstream signatures").

use crate::config::SourceConfig;
use crate::source::Source;
use serde::Deserialize;
use thiserror::Error;

/// `[policy]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Every source must check an upstream signature, or carry `unsigned_ok`.
    #[serde(default)]
    pub require_upstream_signatures: bool,
}

/// A source the policy refuses.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PolicyError {
    /// Its ecosystem is signed upstream, but no key is configured.
    #[error(
        "source {name:?} ({kind}): [policy] require_upstream_signatures is set, but `{setting}` is not (set it, or `unsigned_ok = \"why\"`)"
    )]
    NoKeys {
        /// The source.
        name: String,
        /// Its type.
        kind: &'static str,
        /// The setting that names the keys.
        setting: &'static str,
    },
    /// Its ecosystem has no upstream signature Ferry checks, and it is not
    /// marked `unsigned_ok`.
    #[error(
        "source {name:?} ({kind}): [policy] require_upstream_signatures is set, and {kind} has no upstream signature ferry-out checks: mark it `unsigned_ok = \"why\"` to ship it anyway"
    )]
    Unsignable {
        /// The source.
        name: String,
        /// Its type.
        kind: &'static str,
    },
    /// `unsigned_ok` is empty.
    #[error("source {name:?}: `unsigned_ok` must give a reason")]
    NoReason {
        /// The source.
        name: String,
    },
}

impl PolicyConfig {
    /// Checks one built source against the policy.
    pub fn check(&self, cfg: &SourceConfig, src: &dyn Source) -> Result<(), PolicyError> {
        let name = cfg.name.clone();
        if cfg
            .unsigned_ok
            .as_deref()
            .is_some_and(|r| r.trim().is_empty())
        {
            return Err(PolicyError::NoReason { name });
        }
        if !self.require_upstream_signatures || src.checks_signature() || cfg.unsigned_ok.is_some()
        {
            return Ok(());
        }
        let kind = cfg.kind.name();
        Err(match src.signable() {
            Some(setting) => PolicyError::NoKeys {
                name,
                kind,
                setting,
            },
            None => PolicyError::Unsignable { name, kind },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// The policy's verdict on the one source of `source` (TOML).
    fn verdict(source: &str) -> Result<(), PolicyError> {
        let text = format!("[policy]\nrequire_upstream_signatures = true\n[[source]]\n{source}");
        let cfg: Config = toml::from_str(&text).unwrap();
        let s = &cfg.sources[0];
        cfg.policy
            .check(s, &*crate::source::from_config(s).unwrap())
    }

    #[test]
    fn each_source_without_an_upstream_signature_is_named_by_variant() {
        let yum = "name = \"el\"\ntype = \"yum\"\nbaseurl = \"http://x/\"\npackages = [\"a\"]\n";
        assert_eq!(
            verdict(yum),
            Err(PolicyError::NoKeys {
                name: "el".into(),
                kind: "yum",
                setting: "keyring"
            })
        );
        assert_eq!(
            verdict(&format!("{yum}unsigned_ok = \"internal\"\n")),
            Ok(())
        );
        let oci = "name = \"hub\"\ntype = \"oci\"\nregistry = \"http://x\"\nimages = [\"a:1\"]\n";
        assert!(matches!(
            verdict(oci),
            Err(PolicyError::NoKeys {
                setting: "cosign_keys",
                ..
            })
        ));
        let files = "name = \"t\"\ntype = \"files\"\npath = \"/nonexistent\"\n";
        assert_eq!(
            verdict(files),
            Err(PolicyError::Unsignable {
                name: "t".into(),
                kind: "files"
            })
        );
        assert_eq!(
            verdict(&format!("{files}unsigned_ok = \" \"\n")),
            Err(PolicyError::NoReason { name: "t".into() })
        );
    }
}
