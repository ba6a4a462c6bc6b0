//! Downloads: the index files each selected suite, component and
//! architecture lists, and the selected `.deb` files, each checked against
//! the size and SHA256 its Release or stanza gives.

use super::emit::FileSrc;
use super::index::{parse_stanzas, Stanza};
use super::{AptSettings, AptSource};
use crate::upstream::Expect;
use anyhow::{bail, Context, Result};
use ferry_formats::deb::{decompress, Release, PACKAGES_VARIANTS};
use ferry_formats::rpm::{Checksum, ChecksumKind};
use ferry_protocol::id::Sha256;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// What the index step gathered.
#[derive(Default)]
pub(super) struct Indices {
    /// Release and index files to ship, by catalog path.
    pub(super) files: Vec<(String, FileSrc)>,
    /// Every stanza of every parsed `Packages`.
    pub(super) stanzas: Vec<Stanza>,
    /// The cached index files still listed (by SHA256 hex).
    pub(super) used: BTreeSet<String>,
}

impl AptSource {
    /// Fetches and verifies every selected suite's release and index files
    /// (into `idx_cache`, by SHA256) and parses their `Packages`.
    pub(super) fn fetch_indices(&self, idx_cache: &Path) -> Result<Indices> {
        let mut out = Indices::default();
        let arches: BTreeSet<&str> = self
            .s
            .architectures
            .iter()
            .map(String::as_str)
            .chain(["all"])
            .collect();
        for suite in &self.s.suites {
            let (rel_files, release) = self.fetch_release(suite)?;
            for (p, b) in rel_files {
                out.files.push((p, FileSrc::Bytes(b)));
            }
            self.fetch_extras(suite, &release, idx_cache, &mut out)?;
            for comp in &self.s.components {
                let mut found_any = false;
                for arch in &arches {
                    found_any |=
                        self.fetch_arch_dir((suite, comp, arch), &release, idx_cache, &mut out)?;
                }
                if !found_any {
                    bail!(
                        "dists/{suite}/Release lists no Packages for component {comp:?} and architectures {:?}",
                        self.s.architectures
                    );
                }
            }
        }
        Ok(out)
    }

    /// Fetches the files Release lists in `<comp>/binary-<arch>/` and parses
    /// one `Packages` variant; `false` when Release lists none there.
    fn fetch_arch_dir(
        &self,
        (suite, comp, arch): (&str, &str, &str),
        release: &Release,
        idx_cache: &Path,
        out: &mut Indices,
    ) -> Result<bool> {
        let name = &self.name;
        let dir = format!("{comp}/binary-{arch}/");
        let listed: Vec<(&String, &(u64, Sha256))> = release
            .sha256
            .iter()
            .filter(|(p, _)| p.starts_with(&dir) && !p[dir.len()..].contains('/'))
            .collect();
        let present = self.fetch_listed(suite, release, &listed, idx_cache, out)?;
        let Some((v, f)) = PACKAGES_VARIANTS
            .iter()
            .find_map(|v| present.get(*v).map(|f| (v, f)))
        else {
            if !listed.is_empty() {
                bail!("dists/{suite}/{dir}: Release lists no Packages file upstream serves");
            }
            return Ok(false);
        };
        let file = format!("dists/{suite}/{dir}{v}");
        let bytes = std::fs::read(f)?;
        let text = decompress(v, bytes).with_context(|| format!("cannot decompress {file}"))?;
        out.stanzas
            .extend(parse_stanzas(name, &file, &text, (suite, comp, arch))?);
        Ok(true)
    }

    /// Fetches `listed` files of `suite` (Release paths with their size and
    /// SHA256) into `idx_cache` and adds them (and their by-hash copies) to
    /// `out`; returns the file name -> cached file of those upstream serves.
    fn fetch_listed(
        &self,
        suite: &str,
        release: &Release,
        listed: &[(&String, &(u64, Sha256))],
        idx_cache: &Path,
        out: &mut Indices,
    ) -> Result<BTreeMap<String, PathBuf>> {
        let mut present: BTreeMap<String, PathBuf> = BTreeMap::new();
        for (rel, (size, sha)) in listed {
            let path = format!("dists/{suite}/{rel}");
            let hex = sha.to_hex();
            let cached = idx_cache.join(&hex);
            if !cached.is_file() && !self.download(&path, &cached, *size, sha, true)? {
                continue; // listed but not served upstream
            }
            out.used.insert(hex.clone());
            present.insert(
                rel.rsplit('/').next().unwrap_or(rel).to_string(),
                cached.clone(),
            );
            let fp = Some(format!("sha256:{hex}:{size}"));
            out.files.push((
                path.clone(),
                FileSrc::Cached {
                    file: cached.clone(),
                    sha: *sha,
                    fp: fp.clone(),
                },
            ));
            if release.by_hash {
                let d = &rel[..rel.rfind('/').unwrap_or(0)];
                out.files.push((
                    format!("dists/{suite}/{d}/by-hash/SHA256/{hex}"),
                    FileSrc::Cached {
                        file: cached,
                        sha: *sha,
                        fp,
                    },
                ));
            }
        }
        Ok(present)
    }

    /// Fetches the index files a client asks for besides `Packages`, when
    /// the Release lists them: `<comp>/i18n/Translation-<lang>` (any
    /// compression) for `languages`, and with `contents`/`dep11` the
    /// `Contents-<arch>` files (per component and per suite) and everything
    /// under `<comp>/dep11/`. Upstream not serving one is no error (apt
    /// then asks for another compression, as it does upstream).
    fn fetch_extras(
        &self,
        suite: &str,
        release: &Release,
        idx_cache: &Path,
        out: &mut Indices,
    ) -> Result<()> {
        let listed: Vec<(&String, &(u64, Sha256))> = release
            .sha256
            .iter()
            .filter(|(p, _)| !p.contains("/by-hash/") && extra_wanted(&self.s, p))
            .collect();
        self.fetch_listed(suite, release, &listed, idx_cache, out)?;
        Ok(())
    }

    /// Downloads the `.deb` files that are new (by SHA256) into `deb_cache`
    /// and adds every selected one to `files`: cached, or, when the last
    /// bundle has it unchanged, fetched only if the ledger lost it.
    pub(super) fn fetch_debs(
        &self,
        prev_sha: &HashMap<&str, Option<&Sha256>>,
        debs: &BTreeMap<&str, &Stanza>,
        deb_cache: &Path,
        files: &mut Vec<(String, FileSrc)>,
    ) -> Result<()> {
        for st in debs.values() {
            let sha = Sha256::from_hex(&st.sha256).expect("checked when parsed");
            let fp = format!("sha256:{}:{}", st.sha256, st.size);
            let cached = deb_cache.join(&st.sha256);
            if prev_sha.get(st.filename.as_str()) == Some(&Some(&sha)) {
                files.push((
                    st.filename.clone(),
                    FileSrc::Remote {
                        url: self.url_of(&st.filename),
                        dest: cached,
                        expect: expect_sha256(st.size, &sha),
                        fp,
                    },
                ));
                continue;
            }
            if !cached.is_file() {
                self.download(&st.filename, &cached, st.size, &sha, false)?;
            }
            files.push((
                st.filename.clone(),
                FileSrc::Cached {
                    file: cached,
                    sha,
                    fp: Some(fp),
                },
            ));
        }
        Ok(())
    }

    /// Downloads `path` to `dest`, checking size and SHA256; `Ok(false)` on
    /// 404 when `allow_missing`. The error names the source and the file.
    fn download(
        &self,
        path: &str,
        dest: &Path,
        size: u64,
        sha: &Sha256,
        allow_missing: bool,
    ) -> Result<bool> {
        match self
            .client
            .download(&self.url_of(path), dest, &expect_sha256(size, sha))
        {
            Ok(_) => Ok(true),
            Err(e) if allow_missing && e.is_not_found() => Ok(false),
            Err(e) => Err(e).with_context(|| path.to_string()),
        }
    }
}

/// Whether `rel` (a path of a suite's Release) is an extra index file the
/// settings carry: a translation of `languages`, a `Contents-<arch>` of the
/// selected architectures or `all` (with `contents`), a DEP-11 file (with
/// `dep11`), of a selected component.
fn extra_wanted(s: &AptSettings, rel: &str) -> bool {
    let (dir, file) = rel.rsplit_once('/').unwrap_or(("", rel));
    let stem = file.split('.').next().unwrap_or(file);
    let in_comp = |sub: &str| {
        s.components.iter().any(|c| match sub {
            "" => dir == c,
            _ => {
                dir.strip_prefix(c.as_str())
                    .and_then(|d| d.strip_prefix('/'))
                    == Some(sub)
            }
        })
    };
    if in_comp("i18n") {
        return s
            .languages
            .iter()
            .any(|l| stem.strip_prefix("Translation-") == Some(l.as_str()));
    }
    if in_comp("dep11") {
        return s.dep11;
    }
    let contents = stem
        .strip_prefix("Contents-")
        .is_some_and(|a| a == "all" || s.architectures.iter().any(|x| x == a));
    s.contents && contents && (dir.is_empty() || in_comp(""))
}

/// A size and SHA256 as a Release or stanza gives them.
fn expect_sha256(size: u64, sha: &Sha256) -> Expect {
    Expect {
        size: Some(size),
        checksum: Some(
            Checksum::of_kind(ChecksumKind::Sha256, &sha.to_hex()).expect("64 hex digits"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extras_are_the_configured_index_files_of_selected_components() {
        let mut s: AptSettings = toml::from_str(
            "url = \"http://x\"\nsuites = [\"s\"]\ncomponents = [\"main\"]\narchitectures = [\"amd64\"]\nkeyring = \"k\"\n",
        )
        .unwrap();
        let want = |s: &AptSettings, p: &str| extra_wanted(s, p);
        assert!(want(&s, "main/i18n/Translation-en"));
        assert!(want(&s, "main/i18n/Translation-en.bz2"));
        assert!(!want(&s, "main/i18n/Translation-de.bz2"));
        assert!(!want(&s, "contrib/i18n/Translation-en"));
        assert!(!want(&s, "main/dep11/Components-amd64.yml.gz"));
        assert!(!want(&s, "main/Contents-amd64.gz"));
        assert!(!want(&s, "main/binary-amd64/Packages"));
        s.contents = true;
        s.dep11 = true;
        s.languages.clear();
        assert!(!want(&s, "main/i18n/Translation-en"));
        assert!(want(&s, "main/dep11/icons-64x64.tar.gz"));
        assert!(want(&s, "main/Contents-amd64.gz"));
        assert!(want(&s, "Contents-all.gz"));
        assert!(!want(&s, "main/Contents-arm64.gz"));
        assert!(!want(&s, "main/Contents-udeb-amd64.gz"));
    }
}
