//! The walk of one image: its manifest, an index's manifests for the
//! selected platforms, every blob they name, and (with `referrers`) what
//! refers to them: the OCI referrers API, its `sha256-<hex>` tag fallback and
//! cosign's `sha256-<hex>.{sig,att,sbom}` tags.

use super::blob::clean_cache;
use super::lineage::Lineage;
use super::reference::ImageRef;
use super::registry::MAX_MANIFEST;
use super::signatures::{CosignPolicy, SignatureRefused, Signed};
use super::OciSource;
use crate::source::{Item, ItemKind, ScanCtx};
use anyhow::{anyhow, bail, Context, Result};
use ferry_formats::oci::{tag_file, tag_path, Digest, Manifest, Platform, INDEX_MEDIA_TYPE};
use ferry_protocol::path::ObjectKey;
use std::collections::{HashMap, HashSet};
use std::io::{Cursor, Read};
use std::path::PathBuf;

/// The cosign tag suffixes mirrored with `referrers = true`.
const COSIGN_SUFFIXES: [&str; 3] = ["sig", "att", "sbom"];

/// How deep referrers of referrers are followed (a signature of an attestation).
const MAX_REFERRER_DEPTH: usize = 3;

/// What one scan has listed so far.
pub(super) struct ScanState {
    /// Catalog paths already listed.
    pub(super) seen: HashSet<String>,
    /// Tag lists fetched, per repository (for patterns, cosign and fallback tags).
    tag_lists: HashMap<String, HashSet<String>>,
    /// Manifests whose referrers were looked up.
    referred: HashSet<String>,
    /// `STATE/cache/<source>/blobs`: downloads, kept across runs.
    pub(super) blob_dir: PathBuf,
    /// `STATE/cache/<source>/manifests`: every manifest seen, for pins.
    pub(super) manifest_dir: PathBuf,
    /// What new manifests and blobs replace (the exporter's patch bases).
    lineage: Lineage,
    /// The source's name (for the keys of predecessors).
    source: String,
}

impl ScanState {
    /// A fresh state; creates the cache directories and drops the cached
    /// blobs the last bundle already holds.
    pub(super) fn open(cx: &ScanCtx<'_>) -> Result<ScanState> {
        let st = ScanState {
            seen: HashSet::new(),
            tag_lists: HashMap::new(),
            referred: HashSet::new(),
            blob_dir: cx.cache_dir.join("blobs"),
            manifest_dir: cx.cache_dir.join("manifests"),
            lineage: Lineage::new(cx),
            source: cx.source.to_string(),
        };
        for d in [&st.blob_dir, &st.manifest_dir] {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
        }
        clean_cache(cx, &st.blob_dir)?;
        Ok(st)
    }

    /// Keeps a manifest in the manifest cache (by hex), once.
    fn cache_manifest(&self, digest: &Digest, bytes: &[u8]) -> Result<()> {
        let hex = digest.hex();
        let cached = self.manifest_dir.join(&hex);
        if !cached.is_file() {
            let tmp = self.manifest_dir.join(format!("{hex}.tmp"));
            std::fs::write(&tmp, bytes)
                .and_then(|()| std::fs::rename(&tmp, &cached))
                .with_context(|| format!("cannot write {}", cached.display()))?;
        }
        Ok(())
    }
}

/// An item whose content is `bytes`.
fn in_memory(
    path: String,
    fingerprint: Option<String>,
    digest: Option<&Digest>,
    bytes: Vec<u8>,
) -> Item {
    Item {
        path,
        predecessor: None,
        kind: ItemKind::File {
            executable: false,
            fingerprint,
            expected_sha256: digest.map(Digest::sha256),
            open: Box::new(move || Ok(Box::new(Cursor::new(bytes)) as Box<dyn Read>)),
        },
    }
}

impl OciSource {
    /// Lists one configured image: its tag, its manifests and blobs, and
    /// with `referrers` what refers to them.
    pub(super) fn mirror(
        &self,
        image: &ImageRef,
        st: &mut ScanState,
        sink: &mut dyn FnMut(Item) -> Result<()>,
    ) -> Result<()> {
        let reference = image.reference();
        let (bytes, digest) = self
            .registry
            .manifest(&image.repo, &reference)
            .with_context(|| format!("image {}:{reference}", image.repo))?;
        if let (Some(want), Some(_)) = (&image.digest, &image.tag) {
            if *want != digest {
                bail!("image {}: tag and digest disagree", image.repo);
            }
        }
        let Some(signed) = self.signed_or_refused(image, &digest, st)? else {
            return Ok(());
        };
        if let Some(tag) = &image.tag {
            self.emit_tag(&image.repo, tag, &digest, st, sink)?;
            st.lineage.tagged(&self.served(&image.repo), tag, digest);
        }
        let walked = self.walk(&image.repo, bytes, &digest, false, st, sink)?;
        if self.referrers {
            for m in walked {
                self.referrers(&image.repo, &m, 0, st, sink)
                    .context("referrers")?;
            }
        }
        if let Some(s) = signed {
            self.emit_tag(&image.repo, &s.tag, &s.digest, st, sink)?;
            self.walk(&image.repo, s.manifest.clone(), &s.digest, true, st, sink)?;
            let mut vouches = self.vouches.lock().expect("vouches");
            if let Some(tag) = &image.tag {
                let path = tag_path(&self.served(&image.repo), tag);
                vouches.push(self.vouch(path, &image.repo, tag, &s));
            }
            vouches.push(self.vouch(digest.manifest_path(), &image.repo, &reference, &s));
        }
        Ok(())
    }

    /// With `cosign_keys`: `Some(Some(signature))` when the image's signature
    /// verifies; `None` when the image is to be left out (`refuse-image`),
    /// after a warning naming it; an error when the export must fail.
    /// Without keys: `Some(None)`.
    #[allow(clippy::option_option)]
    fn signed_or_refused(
        &self,
        image: &ImageRef,
        digest: &Digest,
        st: &mut ScanState,
    ) -> Result<Option<Option<Signed>>> {
        let Some(c) = &self.cosign else {
            return Ok(Some(None));
        };
        // A tag pattern may pick cosign's or the referrers fallback's own
        // tags (`sha256-<hex>[.sig]`): signatures are not images to sign.
        if image
            .tag
            .as_deref()
            .is_some_and(ferry_formats::oci::is_artifact_tag)
        {
            return Ok(Some(None));
        }
        let has = self
            .tag_list(&image.repo, st)?
            .contains(&ferry_formats::cosign::signature_tag(digest));
        match self.check_signature(c, &image.repo, digest, has, &st.blob_dir)? {
            Ok(s) => Ok(Some(Some(s))),
            Err(reason) => {
                let refused = SignatureRefused {
                    repo: image.repo.clone(),
                    tag: image.reference(),
                    digest: *digest,
                    reason,
                };
                match c.policy {
                    CosignPolicy::RefuseExport => Err(refused.into()),
                    CosignPolicy::RefuseImage => {
                        eprintln!(
                            "ferry-out: warning: source {:?}: {refused}; left out of the bundle",
                            self.name
                        );
                        Ok(None)
                    }
                }
            }
        }
    }

    /// Whether an index entry's platform is one to keep.
    fn wants(&self, p: Option<&Platform>) -> bool {
        if self.platforms.is_empty() {
            return true;
        }
        let Some(p) = p else { return false };
        let (full, short) = (p.full(), p.os_arch());
        self.platforms.iter().any(|w| *w == full || *w == short)
    }

    /// Lists `repo`'s tag `tag` naming manifest `digest`.
    pub(super) fn emit_tag(
        &self,
        repo: &str,
        tag: &str,
        digest: &Digest,
        st: &mut ScanState,
        sink: &mut dyn FnMut(Item) -> Result<()>,
    ) -> Result<()> {
        let path = tag_path(&self.served(repo), tag);
        if !st.seen.insert(path.clone()) {
            return Ok(());
        }
        sink(in_memory(
            path,
            Some(digest.to_string()),
            None,
            tag_file(digest),
        ))
    }

    /// Lists a manifest and everything it refers to; with `all`, every
    /// manifest of an index (not only the wanted platforms). Returns the
    /// digests of the manifests listed.
    fn walk(
        &self,
        repo: &str,
        bytes: Vec<u8>,
        digest: &Digest,
        all: bool,
        st: &mut ScanState,
        sink: &mut dyn FnMut(Item) -> Result<()>,
    ) -> Result<Vec<Digest>> {
        let m = Manifest::parse_v2(&bytes)
            .with_context(|| format!("image {repo}: manifest {digest}"))?;
        st.lineage.pair(&st.manifest_dir, digest, &m);
        let mut children = Vec::new();
        if let Some(list) = &m.manifests {
            children.extend(
                list.iter()
                    .filter(|d| all || self.wants(d.platform.as_ref()))
                    .map(|d| d.digest.clone()),
            );
            if children.is_empty() && !list.is_empty() {
                bail!(
                    "image {repo}: index {digest} has no manifest for platforms {:?}",
                    self.platforms
                );
            }
        }
        let blobs: Vec<String> = match m.manifests {
            Some(_) => Vec::new(),
            None => m.blob_descriptors().map(|d| d.digest.clone()).collect(),
        };
        st.cache_manifest(digest, &bytes)?;
        let mut walked = Vec::new();
        if st.seen.insert(digest.manifest_path()) {
            walked.push(*digest);
            let item = in_memory(
                digest.manifest_path(),
                Some(digest.to_string()),
                Some(digest),
                bytes,
            );
            sink(item)?;
        }
        for b in blobs {
            let blob = Digest::parse(&b)
                .with_context(|| format!("image {repo}: manifest {digest} names blob {b:?}"))?;
            self.emit_blob(repo, &blob, st, sink)?;
        }
        for c in children {
            let (cbytes, cdigest) = self
                .registry
                .manifest(repo, &c)
                .with_context(|| format!("image {repo}"))?;
            walked.extend(self.walk(repo, cbytes, &cdigest, all, st, sink)?);
        }
        Ok(walked)
    }

    /// Lists a blob, once per scan; it is downloaded (into the blob cache)
    /// only when the exporter opens it.
    fn emit_blob(
        &self,
        repo: &str,
        blob: &Digest,
        st: &mut ScanState,
        sink: &mut dyn FnMut(Item) -> Result<()>,
    ) -> Result<()> {
        let path = blob.blob_path();
        if !st.seen.insert(path.clone()) {
            return Ok(());
        }
        let predecessor = st.lineage.blob(blob).map(|p| ObjectKey {
            source: st.source.clone(),
            path: p.blob_path(),
        });
        let (registry, repo, blob, dir) = (
            self.registry.clone(),
            repo.to_string(),
            *blob,
            st.blob_dir.clone(),
        );
        sink(Item {
            path,
            predecessor,
            kind: ItemKind::File {
                executable: false,
                fingerprint: Some(blob.to_string()),
                expected_sha256: Some(blob.sha256()),
                open: Box::new(move || {
                    let file = registry
                        .fetch_blob(&repo, &blob, &dir)
                        .with_context(|| format!("image {repo}: blob {blob}"))?;
                    Ok(Box::new(
                        std::fs::File::open(&file)
                            .with_context(|| format!("cannot read {}", file.display()))?,
                    ) as Box<dyn Read>)
                }),
            },
        })
    }

    /// The tags of `repo`, fetched once per scan.
    pub(super) fn tag_list<'s>(
        &self,
        repo: &str,
        st: &'s mut ScanState,
    ) -> Result<&'s HashSet<String>> {
        if !st.tag_lists.contains_key(repo) {
            let tags = self.registry.tags(repo)?;
            st.tag_lists
                .insert(repo.to_string(), tags.into_iter().collect());
        }
        Ok(&st.tag_lists[repo])
    }

    /// Lists what refers to manifest `digest` of `repo`: the OCI referrers
    /// API (or its fallback tag) and cosign's tags, then, to
    /// [`MAX_REFERRER_DEPTH`], what refers to those.
    fn referrers(
        &self,
        repo: &str,
        digest: &Digest,
        depth: usize,
        st: &mut ScanState,
        sink: &mut dyn FnMut(Item) -> Result<()>,
    ) -> Result<()> {
        if depth > MAX_REFERRER_DEPTH || !st.referred.insert(format!("{repo}@{digest}")) {
            return Ok(());
        }
        let mut found = self.referrers_api(repo, digest, st, sink)?;
        found.extend(self.cosign_tags(repo, digest, st, sink)?);
        for r in found {
            let rd =
                Digest::parse(&r).with_context(|| format!("{repo}: referrer {r:?} of {digest}"))?;
            if !st.seen.contains(&rd.manifest_path()) {
                let (bytes, rdigest) = self
                    .registry
                    .manifest(repo, &r)
                    .with_context(|| format!("{repo}: referrer {r} of {digest}"))?;
                self.walk(repo, bytes, &rdigest, true, st, sink)?;
            }
            self.referrers(repo, &rd, depth + 1, st, sink)?;
        }
        Ok(())
    }

    /// The referrers API's answer for `digest` or, when the registry answers
    /// 404, the `sha256-<hex>` fallback tag's index (listed with its tag).
    /// Returns the referrers' digests as the index gives them.
    fn referrers_api(
        &self,
        repo: &str,
        digest: &Digest,
        st: &mut ScanState,
        sink: &mut dyn FnMut(Item) -> Result<()>,
    ) -> Result<Vec<String>> {
        let mut resp = self.registry.request(
            repo,
            &format!("{repo}/referrers/{digest}"),
            &[("Accept", INDEX_MEDIA_TYPE)],
        )?;
        let status = resp.status().as_u16();
        let listed = |m: Manifest| -> Vec<String> {
            m.manifests
                .unwrap_or_default()
                .into_iter()
                .map(|d| d.digest)
                .collect()
        };
        match status {
            200 => {
                let bytes = resp
                    .body_mut()
                    .with_config()
                    .limit(MAX_MANIFEST)
                    .read_to_vec()?;
                let index = Manifest::parse(&bytes).with_context(|| {
                    format!("{repo}: the referrers of {digest} are not an image index")
                })?;
                Ok(listed(index))
            }
            404 => {
                let fallback = format!("sha256-{}", digest.hex());
                if !self.tag_list(repo, st)?.contains(&fallback) {
                    return Ok(Vec::new());
                }
                let (bytes, idigest) = self.registry.manifest(repo, &fallback)?;
                self.emit_tag(repo, &fallback, &idigest, st, sink)?;
                let index = Manifest::parse(&bytes).with_context(|| {
                    format!("{repo}: tag {fallback} (referrers of {digest}) is not an image index")
                })?;
                self.walk(repo, bytes, &idigest, true, st, sink)?;
                Ok(listed(index))
            }
            _ => Err(anyhow!(
                "{repo}: the referrers API answered HTTP {status} for {digest} (expected 200, or 404 when unsupported)"
            )),
        }
    }

    /// Lists cosign's `sha256-<hex>.{sig,att,sbom}` tags of `digest` that
    /// `repo` has, with what they tag; returns the tagged manifests' digests.
    fn cosign_tags(
        &self,
        repo: &str,
        digest: &Digest,
        st: &mut ScanState,
        sink: &mut dyn FnMut(Item) -> Result<()>,
    ) -> Result<Vec<String>> {
        let mut found = Vec::new();
        for suffix in COSIGN_SUFFIXES {
            let tag = format!("sha256-{}.{suffix}", digest.hex());
            if !self.tag_list(repo, st)?.contains(&tag) {
                continue;
            }
            let (bytes, mdigest) = self
                .registry
                .manifest(repo, &tag)
                .with_context(|| format!("{repo}: cosign tag {tag}"))?;
            self.emit_tag(repo, &tag, &mdigest, st, sink)?;
            self.walk(repo, bytes, &mdigest, true, st, sink)?;
            found.push(mdigest.to_string());
        }
        Ok(found)
    }
}
