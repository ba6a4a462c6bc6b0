//! Pins: `repository:tag`s kept inside as the last bundle had them, even
//! when they leave the configuration or vanish upstream. A pinned tag the
//! scan did not list is carried over unchanged ([`ItemKind::Keep`]) with its
//! manifests (read back from the manifest cache to learn what they name) and
//! their blobs.

use super::walk::ScanState;
use super::OciSource;
use crate::source::{Item, ItemKind, ScanCtx};
use anyhow::{anyhow, Context, Result};
use ferry_formats::oci::{parse_path, tag_file, tag_path, Digest, Manifest, OciPath};
use ferry_protocol::catalog::Object;
use ferry_protocol::path::ObjectKey;

impl OciSource {
    /// Keeps every pinned image the scan did not list.
    pub(super) fn keep_pins(
        &self,
        cx: &ScanCtx<'_>,
        st: &mut ScanState,
        sink: &mut dyn FnMut(Item) -> Result<()>,
    ) -> Result<()> {
        for pin in &self.pins {
            let tag = pin.tag.as_deref().expect("pins have tags");
            let path = tag_path(&self.served(&pin.repo), tag);
            if st.seen.contains(&path) {
                continue;
            }
            let key = ObjectKey {
                source: self.name.clone(),
                path: path.clone(),
            };
            let Some(Object::File(f)) = cx.previous.objects.get(&key) else {
                eprintln!(
                    "ferry-out: warning: source {:?}: pin {}:{tag} is neither selected nor in the last bundle; nothing to keep",
                    self.name, pin.repo
                );
                continue;
            };
            // The tag file is `sha256:<hex>\n`: find the manifest whose tag file has its SHA-256.
            let manifest = cx
                .previous_paths()
                .filter_map(|(p, _)| match parse_path(p) {
                    Some(OciPath::Manifest(hex)) => Digest::from_hex(hex),
                    _ => None,
                })
                .find(|d| ferry_protocol::id::Sha256::of(&tag_file(d)) == f.sha256)
                .ok_or_else(|| {
                    anyhow!(
                        "pin {}:{tag}: the last bundle's tag names no manifest it holds",
                        pin.repo
                    )
                })?;
            st.seen.insert(path.clone());
            sink(Item {
                path,
                predecessor: None,
                kind: ItemKind::Keep,
            })?;
            let what = format!("pin {}:{tag}", pin.repo);
            self.keep_manifests(cx, &what, manifest, st, sink)?;
        }
        Ok(())
    }

    /// Keeps manifest `top`, the manifests of the last bundle it names (an
    /// index's), and every blob they name.
    fn keep_manifests(
        &self,
        cx: &ScanCtx<'_>,
        what: &str,
        top: Digest,
        st: &mut ScanState,
        sink: &mut dyn FnMut(Item) -> Result<()>,
    ) -> Result<()> {
        let held = |p: &str| {
            cx.previous.objects.contains_key(&ObjectKey {
                source: self.name.clone(),
                path: p.to_string(),
            })
        };
        let mut stack = vec![top];
        while let Some(d) = stack.pop() {
            let mpath = d.manifest_path();
            if !st.seen.insert(mpath.clone()) {
                continue;
            }
            let file = st.manifest_dir.join(d.hex());
            let bytes = std::fs::read(&file).with_context(|| {
                format!(
                    "{what}: manifest {d} is not in the cache ({}), so its blobs are unknown",
                    file.display()
                )
            })?;
            let m = Manifest::parse(&bytes)
                .with_context(|| format!("{} is not a manifest", file.display()))?;
            sink(Item {
                path: mpath,
                predecessor: None,
                kind: ItemKind::Keep,
            })?;
            for child in m.manifests.iter().flatten() {
                if let Ok(c) = Digest::parse(&child.digest) {
                    if held(&c.manifest_path()) {
                        stack.push(c);
                    }
                }
            }
            for b in m.blob_descriptors() {
                let Ok(b) = Digest::parse(&b.digest) else {
                    continue;
                };
                if st.seen.insert(b.blob_path()) {
                    sink(Item {
                        path: b.blob_path(),
                        predecessor: None,
                        kind: ItemKind::Keep,
                    })?;
                }
            }
        }
        Ok(())
    }
}
