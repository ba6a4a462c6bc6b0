//! What a scan lists: per carried version its `.info`, `.mod`, zip (downloaded
//! when the exporter opens it, its `h1:` checked before it is read) and
//! checked `go.sum` lines; per module `@v/list` and `@latest`.

use super::select::{GoError, Picked, Selected};
use super::GoSource;
use crate::source::{Item, ItemKind, ScanCtx};
use crate::upstream::{prune_downloads, Expect};
use anyhow::Result;
use ferry_formats::go::hash::zip_h1;
use ferry_formats::go::{checksums_path, escape, latest_path, list_path, version_file, GoVersion};
use std::collections::HashSet;
use std::io::{Seek, SeekFrom};

/// The file name a zip is downloaded to in `downloads/`.
fn download_name(module: &str, version: &str) -> String {
    format!(
        "{}@{}.zip",
        escape(module).replace('/', "%2f"),
        escape(version)
    )
}

impl GoSource {
    /// Lists every carried file.
    pub(super) fn emit(
        &self,
        cx: &ScanCtx<'_>,
        selected: &Selected,
        sink: &mut dyn FnMut(Item) -> Result<()>,
    ) -> Result<()> {
        for (module, versions) in selected {
            let mut zipped = Vec::new();
            for (version, p) in versions {
                sink(Item::from_bytes(
                    version_file(module, version, "info"),
                    p.info.clone(),
                ))?;
                sink(Item::from_bytes(
                    version_file(module, version, "mod"),
                    p.go_mod.clone(),
                ))?;
                let mut sums = format!("{module} {version}/go.mod {}\n", p.mod_h1);
                if let Some(h) = &p.zip_h1 {
                    sums.insert_str(0, &format!("{module} {version} {h}\n"));
                    sink(self.zip_item(cx, module, version, h)?)?;
                    zipped.push(GoVersion::parse(version)?);
                }
                sink(Item::from_bytes(
                    checksums_path(module, version),
                    sums.into_bytes(),
                ))?;
            }
            zipped.sort();
            let Some(latest) = zipped.iter().rfind(|v| v.is_release()).or(zipped.last()) else {
                continue;
            };
            let info: &Picked = &versions[&latest.text];
            sink(Item::from_bytes(latest_path(module), info.info.clone()))?;
            let list: String = zipped.iter().map(|v| format!("{}\n", v.text)).collect();
            sink(Item::from_bytes(list_path(module), list.into_bytes()))?;
        }
        Ok(())
    }

    /// One zip, whose `h1:` is checked when it is opened.
    fn zip_item(&self, cx: &ScanCtx<'_>, module: &str, version: &str, h1: &str) -> Result<Item> {
        let url = self
            .proxy
            .join(&format!("{}/@v/{}.zip", escape(module), escape(version)))?
            .to_string();
        let cached = cx
            .cache_dir
            .join("downloads")
            .join(download_name(module, version));
        let client = self.client.clone();
        let (module, version, h1) = (module.to_string(), version.to_string(), h1.to_string());
        let against = match &self.sumdb {
            Some((k, _)) => format!("go.sum or checksum database {}", k.name),
            None => "go.sum".to_string(),
        };
        Ok(Item {
            path: version_file(&module, &version, "zip"),
            predecessor: None,
            kind: ItemKind::File {
                executable: false,
                fingerprint: Some(h1.clone()),
                expected_sha256: None,
                open: Box::new(move || {
                    if let Some(d) = cached.parent() {
                        std::fs::create_dir_all(d)?;
                    }
                    let expect = Expect {
                        size: None,
                        checksum: None,
                    };
                    if !cached.is_file() {
                        client.download(&url, &cached, &expect)?;
                    }
                    let mut f = std::fs::File::open(&cached)?;
                    let got = zip_h1(&mut f, &module, &version);
                    let _ = std::fs::remove_file(&cached);
                    // A zip that does not read cannot have the hash either.
                    let got = got.unwrap_or_else(|e| format!("no h1: hash ({e})"));
                    if got != h1 {
                        return Err(GoError::Mismatch {
                            module,
                            version,
                            file: "zip",
                            url,
                            expected: h1,
                            got,
                            against,
                        }
                        .into());
                    }
                    f.seek(SeekFrom::Start(0))?;
                    Ok(Box::new(f) as Box<dyn std::io::Read>)
                }),
            },
        })
    }
}

/// Drops downloads no carried zip needs any more.
pub(super) fn clean_downloads(cx: &ScanCtx<'_>, selected: &Selected) {
    let wanted: HashSet<String> = selected
        .iter()
        .flat_map(|(m, vs)| vs.keys().map(move |v| download_name(m, v)))
        .collect();
    prune_downloads(&cx.cache_dir.join("downloads"), |f| wanted.contains(f));
}
