//! `ferry-in push --to REGISTRY`: copies the current generation's images into
//! an existing registry (Harbor, Zot, distribution), for sites that outgrow
//! serving from one machine.
//!
//! For every tag of every OCI source: blobs first, skipping those the
//! registry has (`HEAD`), mounting from another repository of the same push
//! where the registry allows it, uploading the rest in one `PUT`; then child
//! manifests by digest, then the tagged manifest by tag. What is pushed is
//! read from the current generation, whose every object was verified on import.

use crate::genread::GenRead;
use crate::layout::Layout;
use anyhow::{anyhow, bail, Context, Result};
use ferry_formats::oci::{media_type, parse_path, Digest, OciPath, MANIFEST_MEDIA_TYPE};
use ferry_protocol::catalog::SourceKind;
use ferry_protocol::path::ObjectKey;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

/// What a push did.
#[derive(Debug, Default)]
pub struct Report {
    /// Tags pushed.
    pub tags: u64,
    /// Blobs uploaded, mounted, and already present.
    pub uploaded: u64,
    /// See `uploaded`.
    pub mounted: u64,
    /// See `uploaded`.
    pub present: u64,
    /// Bytes uploaded.
    pub bytes: u64,
    /// Manifests put.
    pub manifests: u64,
}

struct Target {
    base: String,
    agent: ureq::Agent,
}

impl Target {
    fn url(&self, path: &str) -> String {
        format!("{}/v2/{path}", self.base)
    }
}

/// The push configured to follow every import (`[push] to` in `--config`):
/// pushes the current generation to `registry` and prints what it did. A
/// failure is printed, naming the registry and how to retry, and returned
/// as `false`; it never undoes the import, which stays applied and served.
pub fn after_import(layout: &Layout, registry: &str) -> bool {
    eprintln!("ferry-in: pushing the images to {registry} ([push] in the config)");
    match push(layout, registry) {
        Ok(r) => {
            eprintln!("ferry-in: {}", r.summary(registry));
            true
        }
        Err(e) => {
            eprintln!(
                "ferry-in: error: the import is applied, but the push to {registry} failed: {}; retry with `ferry-in push --to {registry}`",
                ferry_agent_common::one_line(&e)
            );
            false
        }
    }
}

impl Report {
    /// One line: what a push to `registry` did.
    pub fn summary(&self, registry: &str) -> String {
        format!(
            "pushed {} tag(s) to {registry}: {} blobs uploaded ({}), {} mounted, {} already there; {} manifests",
            self.tags,
            self.uploaded,
            ferry_agent_common::units::human_bytes(self.bytes),
            self.mounted,
            self.present,
            self.manifests
        )
    }
}

/// Pushes every tag of the current generation to `registry` (`http(s)://host:port`).
pub fn push(layout: &Layout, registry: &str) -> Result<Report> {
    if !registry.starts_with("http://") && !registry.starts_with("https://") {
        bail!("--to must be a registry URL such as http://registry.local:5000");
    }
    let files = GenRead::open_current(layout)?
        .ok_or_else(|| anyhow!("nothing imported yet: there is nothing to push"))?;
    let t = Target {
        base: registry.trim_end_matches('/').to_string(),
        agent: ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into(),
    };
    let mut report = Report::default();
    // Where each blob already went in this push, for cross-repository mounts.
    let mut placed: HashMap<String, String> = HashMap::new();
    for (source, kind) in files.sources() {
        if *kind != SourceKind::Oci {
            continue;
        }
        let root = Src {
            files: &files,
            source,
        };
        // repository -> tag -> digest
        let mut tags: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for item in files.scan(source, "repos/", "repos/") {
            let (key, _) = item?;
            if let Some(OciPath::Tag { repo, tag }) = parse_path(&key.path) {
                let digest = std::fs::read_to_string(root.path(&key.path)?)?
                    .trim()
                    .to_string();
                tags.entry(repo.to_string())
                    .or_default()
                    .insert(tag.to_string(), digest);
            }
        }
        for (repo, repo_tags) in &tags {
            let mut done: HashSet<String> = HashSet::new();
            for (tag, digest) in repo_tags {
                push_manifest(&t, &root, repo, digest, &mut done, &mut placed, &mut report)
                    .with_context(|| format!("pushing {repo}:{tag}"))?;
                let bytes = read_manifest(&root, digest)?;
                put_manifest(&t, repo, tag, &bytes)
                    .with_context(|| format!("tagging {repo}:{tag}"))?;
                report.tags += 1;
                eprintln!("ferry-in: pushed {repo}:{tag} ({digest})");
            }
        }
    }
    Ok(report)
}

/// One OCI source of the generation being pushed.
struct Src<'a> {
    files: &'a GenRead,
    source: &'a str,
}

impl Src<'_> {
    /// Where the bytes of the file at `path` are; an error if not held.
    fn path(&self, path: &str) -> Result<PathBuf> {
        let key = ObjectKey {
            source: self.source.to_string(),
            path: path.to_string(),
        };
        let f = self
            .files
            .file(&key)?
            .ok_or_else(|| anyhow!("{key} is missing from the store"))?;
        Ok(self.files.bytes_path(&key, &f))
    }
}

fn read_manifest(root: &Src<'_>, digest: &str) -> Result<Vec<u8>> {
    let digest = Digest::parse(digest)?;
    std::fs::read(root.path(&digest.manifest_path())?)
        .with_context(|| format!("manifest {digest} is missing from the store"))
}

fn push_manifest(
    t: &Target,
    root: &Src<'_>,
    repo: &str,
    digest: &str,
    done: &mut HashSet<String>,
    placed: &mut HashMap<String, String>,
    report: &mut Report,
) -> Result<()> {
    if !done.insert(digest.to_string()) {
        return Ok(());
    }
    let bytes = read_manifest(root, digest)?;
    let v: serde_json::Value =
        serde_json::from_slice(&bytes).with_context(|| format!("manifest {digest}"))?;
    let digests = |field: &str| -> Vec<String> {
        match &v[field] {
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|d| d["digest"].as_str().map(str::to_string))
                .collect(),
            serde_json::Value::Object(_) => v[field]["digest"]
                .as_str()
                .map(str::to_string)
                .into_iter()
                .collect(),
            _ => vec![],
        }
    };
    for child in digests("manifests") {
        push_manifest(t, root, repo, &child, done, placed, report)?;
    }
    for blob in digests("config").into_iter().chain(digests("layers")) {
        push_blob(t, root, repo, &blob, placed, report).with_context(|| format!("blob {blob}"))?;
    }
    put_manifest(t, repo, digest, &bytes)?;
    report.manifests += 1;
    Ok(())
}

fn push_blob(
    t: &Target,
    root: &Src<'_>,
    repo: &str,
    digest: &str,
    placed: &mut HashMap<String, String>,
    report: &mut Report,
) -> Result<()> {
    let head = t
        .agent
        .head(t.url(&format!("{repo}/blobs/{digest}")))
        .call()?;
    if head.status() == 200 {
        report.present += 1;
        placed
            .entry(digest.to_string())
            .or_insert_with(|| repo.to_string());
        return Ok(());
    }
    let start = match placed.get(digest) {
        Some(from) => t
            .agent
            .post(t.url(&format!("{repo}/blobs/uploads/?mount={digest}&from={from}")))
            .send(())?,
        None => t
            .agent
            .post(t.url(&format!("{repo}/blobs/uploads/")))
            .send(())?,
    };
    if start.status() == 201 {
        report.mounted += 1;
        return Ok(());
    }
    if start.status() != 202 {
        bail!(
            "the registry answered HTTP {} to starting an upload",
            start.status()
        );
    }
    let location = start
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .ok_or_else(|| anyhow!("the registry started an upload without a Location"))?;
    let mut url = if location.starts_with("http") {
        location.to_string()
    } else {
        format!("{}{location}", t.base)
    };
    url.push(if url.contains('?') { '&' } else { '?' });
    url.push_str(&format!("digest={digest}"));
    let path: PathBuf = root.path(&Digest::parse(digest)?.blob_path())?;
    let file =
        std::fs::File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
    let len = file.metadata()?.len();
    let resp = t
        .agent
        .put(&url)
        .header("Content-Type", "application/octet-stream")
        .header("Content-Length", &len.to_string())
        .send(file)?;
    if resp.status() != 201 {
        bail!("the registry answered HTTP {} to the upload", resp.status());
    }
    report.uploaded += 1;
    report.bytes += len;
    placed.insert(digest.to_string(), repo.to_string());
    Ok(())
}

fn put_manifest(t: &Target, repo: &str, reference: &str, bytes: &[u8]) -> Result<()> {
    let resp = t
        .agent
        .put(t.url(&format!("{repo}/manifests/{reference}")))
        .header(
            "Content-Type",
            &media_type(bytes).unwrap_or_else(|_| MANIFEST_MEDIA_TYPE.to_string()),
        )
        .send(bytes)?;
    if !resp.status().is_success() {
        bail!(
            "the registry answered HTTP {} to manifest {repo}:{reference}",
            resp.status()
        );
    }
    Ok(())
}
