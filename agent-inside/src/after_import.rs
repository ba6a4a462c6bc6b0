//! What follows every import that applied a bundle, as the config asks: a
//! push of the images to a registry (`[push]`, [`crate::registry_push`]) and
//! a publish of the generation to an S3-compatible bucket (`[publish]`,
//! [`crate::publish`]). Each runs after the import has committed, whichever
//! way the bundle came (`import`, `watch`, `receive`, `listen`); a failure
//! is printed with the command that retries it and never undoes the import.

use crate::layout::Layout;
use crate::publish;
use anyhow::{Context, Result};
use std::path::Path;

/// The steps configured to follow an import.
#[derive(Clone, Debug, Default)]
pub struct AfterImport {
    /// `[push] to`: the registry to push the images to.
    pub push_to: Option<String>,
    /// `[publish]`: the bucket to publish the generation to.
    pub publish: Option<publish::Settings>,
}

impl AfterImport {
    /// The steps the config at `path` names (none without a config).
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let publish = match crate::config::load_publish(path)? {
            Some(section) => Some(section.settings().with_context(|| {
                format!(
                    "config {}: [publish]",
                    path.map(|p| p.display().to_string()).unwrap_or_default()
                )
            })?),
            None => None,
        };
        Ok(AfterImport {
            push_to: crate::config::load_push_target(path)?,
            publish,
        })
    }

    /// Runs each configured step once an import applied `applied` bundles
    /// (nothing when it applied none); `false` when a step failed. Every
    /// step runs even when one before it failed.
    pub fn run(&self, layout: &Layout, applied: usize) -> bool {
        if applied == 0 {
            return true;
        }
        let mut ok = true;
        if let Some(to) = &self.push_to {
            ok &= crate::registry_push::after_import(layout, to);
        }
        if let Some(settings) = &self.publish {
            ok &= publish::after_import(layout, settings);
        }
        ok
    }
}
