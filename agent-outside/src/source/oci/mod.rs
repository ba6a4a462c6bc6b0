//! `type = "oci"`: container images from an OCI distribution registry.
//!
//! For each configured image it fetches the manifest (by tag or digest),
//! follows an index or manifest list to the selected platforms, and lists
//! every manifest and blob under the catalog layout the inside's registry
//! store serves ([`ferry_formats::oci`]):
//!
//! - `manifests/sha256/<hex>` and `blobs/sha256/<hex>`, byte-exact, each
//!   checked against its digest (a mismatch fails the export and names the
//!   image and the digest);
//! - `repos/<repository>/_tags/<tag>`, holding the tagged manifest's digest.
//!
//! Blobs are content-addressed: a layer shared by ten images is listed once,
//! and its digest is its fingerprint, so a blob shipped before is never
//! downloaded again.
//!
//! Registries: `http://` or `https://` base URLs (a bare host means https);
//! anonymous access, the bearer-token challenge (Docker Hub, nvcr.io,
//! ghcr.io) and basic authentication (`username` and `password_file`, or a
//! docker `config.json`).
//!
//! A scan is a pipeline: select the images (`reference`: configured ones
//! and tag patterns), fetch and walk each (`walk`: manifests, indexes,
//! referrers; blobs are downloaded into the cache, `blob`, only when the
//! exporter opens them), then keep the pins the scan did not list (`pins`).
//! Each new blob names its likely predecessor for the exporter's patches
//! (`lineage`: the blob at the same position of the tag's previous manifest).
//! The registry client is `registry`, its credentials `auth`, the settings
//! `settings`.

pub mod auth;
mod blob;
mod lineage;
mod pins;
pub mod reference;
pub mod registry;
pub mod settings;
pub mod signatures;
mod walk;

use super::{Item, ScanCtx, Source};
use anyhow::Result;
use ferry_protocol::catalog::SourceKind;
use ferry_protocol::provenance::{Method, Vouch};
use reference::{ImageRef, TagPattern};
use registry::Registry;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use walk::ScanState;

pub use settings::OciSettings;

/// An OCI source.
pub struct OciSource {
    name: String,
    registry: Arc<Registry>,
    images: Vec<ImageRef>,
    patterns: Vec<(String, TagPattern)>,
    platforms: Vec<String>,
    referrers: bool,
    pins: Vec<ImageRef>,
    prefix: Option<String>,
    rename: BTreeMap<String, String>,
    /// `cosign_keys` and `cosign_policy`, when keys are given.
    cosign: Option<signatures::Cosign>,
    /// The images whose signatures verified in the last scan.
    vouches: Mutex<Vec<Vouch>>,
}

impl OciSource {
    /// The name upstream repository `repo` is served under inside.
    fn served(&self, repo: &str) -> String {
        let renamed = self.rename.get(repo).map(String::as_str).unwrap_or(repo);
        match &self.prefix {
            Some(p) => format!("{p}/{renamed}"),
            None => renamed.to_string(),
        }
    }
}

impl Source for OciSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> SourceKind {
        SourceKind::Oci
    }

    fn scan(&self, cx: &ScanCtx<'_>, sink: &mut dyn FnMut(Item) -> Result<()>) -> Result<()> {
        self.vouches.lock().expect("vouches").clear();
        let mut st = ScanState::open(cx)?;
        let images = self.select_images(&mut st)?;
        for image in &images {
            self.mirror(image, &mut st, sink)?;
        }
        self.keep_pins(cx, &mut st, sink)
    }

    fn signable(&self) -> Option<&'static str> {
        Some("cosign_keys")
    }

    fn checks_signature(&self) -> bool {
        self.cosign.is_some()
    }

    fn provenance(&self) -> Vec<Vouch> {
        let mut out = self.vouches.lock().expect("vouches").clone();
        out.push(match &self.cosign {
            Some(c) => Vouch {
                source: self.name.clone(),
                object: None,
                method: Method::Cosign,
                key: None,
                detail: format!(
                    "every image's manifest digest signed by a cosign key of {}; layers by their digests in the signed manifests (pinned images as last shipped)",
                    c.keys.iter().map(|k| k.id()).collect::<Vec<_>>().join(", ")
                ),
            },
            None => Vouch {
                source: self.name.clone(),
                object: None,
                method: Method::DigestsOnly,
                key: None,
                detail: "manifest digests from the registry over TLS only; no cosign key configured".into(),
            },
        });
        out
    }
}
