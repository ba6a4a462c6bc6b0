//! Which packages a yum source mirrors: the named ones (newest per
//! architecture) and pins, with the closure of their requirements.

use super::primary::Package;
use anyhow::{anyhow, Result};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Picks the packages to mirror: `wanted` names (newest per architecture) and
/// `pinned` file names, with the closure of their requirements. Returns the
/// indexes into `pkgs`, and warnings (unresolved requirements).
pub fn select(
    pkgs: &[Package],
    wanted: &[String],
    pinned: &[String],
) -> Result<(BTreeSet<usize>, Vec<String>)> {
    let mut by_name: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut providers: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, p) in pkgs.iter().enumerate() {
        by_name.entry(&p.name).or_default().push(i);
        providers.entry(&p.name).or_default().push(i);
        for pr in &p.provides {
            providers.entry(pr).or_default().push(i);
        }
    }
    let newest_per_arch = |ix: &[usize]| -> Vec<usize> {
        let mut best: BTreeMap<&str, usize> = BTreeMap::new();
        for &i in ix
            .iter()
            .filter(|&&i| !matches!(pkgs[i].arch.as_str(), "src" | "nosrc"))
        {
            let e = best.entry(&pkgs[i].arch).or_insert(i);
            if pkgs[i].evr.cmp_rpm(&pkgs[*e].evr) == std::cmp::Ordering::Greater {
                *e = i;
            }
        }
        best.into_values().collect()
    };
    let mut chosen = BTreeSet::new();
    let mut queue = Vec::new();
    for w in wanted {
        let ix = by_name
            .get(w.as_str())
            .ok_or_else(|| anyhow!("package {w:?} is not in the repository"))?;
        for i in newest_per_arch(ix) {
            if chosen.insert(i) {
                queue.push(i);
            }
        }
    }
    for pin in pinned {
        for (i, p) in pkgs.iter().enumerate() {
            if p.nvra() == *pin && chosen.insert(i) {
                queue.push(i);
            }
        }
    }
    let mut warnings = BTreeSet::new();
    while let Some(i) = queue.pop() {
        for req in &pkgs[i].requires {
            if req.starts_with("rpmlib(") {
                continue;
            }
            let Some(cands) = providers.get(req.as_str()) else {
                warnings.insert(format!(
                    "{}: requirement {req:?} is provided by nothing in primary metadata",
                    pkgs[i].nvra()
                ));
                continue;
            };
            if cands.iter().any(|c| chosen.contains(c)) {
                continue;
            }
            // The newest provider, preferring one named as the requirement,
            // then the same architecture (or noarch), then by name.
            let arch = &pkgs[i].arch;
            let best = cands
                .iter()
                .copied()
                .max_by(|&x, &y| {
                    let (px, py) = (&pkgs[x], &pkgs[y]);
                    (px.name == *req)
                        .cmp(&(py.name == *req))
                        .then_with(|| {
                            (px.arch == *arch || px.arch == "noarch")
                                .cmp(&(py.arch == *arch || py.arch == "noarch"))
                        })
                        .then_with(|| py.name.cmp(&px.name))
                        .then_with(|| px.evr.cmp_rpm(&py.evr))
                })
                .expect("non-empty");
            if chosen.insert(best) {
                queue.push(best);
            }
        }
    }
    Ok((chosen, warnings.into_iter().collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::yum::primary::Evr;
    use ferry_formats::rpm::Checksum;

    fn pkg(name: &str, ver: &str, provides: &[&str], requires: &[&str]) -> Package {
        Package {
            name: name.into(),
            arch: "noarch".into(),
            evr: Evr {
                epoch: 0,
                ver: ver.into(),
                rel: "1".into(),
            },
            href: format!("Packages/{name}-{ver}-1.noarch.rpm"),
            checksum: Checksum::new("sha256", &"0".repeat(64)).unwrap(),
            size: None,
            provides: provides.iter().map(|s| s.to_string()).collect(),
            requires: requires.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn closure_through_names_virtual_provides_and_files() {
        let pkgs = vec![
            pkg(
                "app",
                "1.0",
                &[],
                &["lib", "virt-thing", "/usr/bin/tool", "rpmlib(X)"],
            ),
            pkg("app", "2.0", &[], &["lib", "virt-thing", "/usr/bin/tool"]),
            pkg("lib", "1.0", &[], &[]),
            pkg("lib", "1.5", &[], &[]),
            pkg("impl", "1.0", &["virt-thing"], &[]),
            pkg("tool", "1.0", &["/usr/bin/tool"], &["missing-dep"]),
            pkg("unrelated", "1.0", &[], &[]),
        ];
        let (chosen, warnings) = select(&pkgs, &["app".into()], &[]).unwrap();
        let names: Vec<String> = chosen.iter().map(|&i| pkgs[i].nvra()).collect();
        assert_eq!(
            names,
            [
                "app-2.0-1.noarch",
                "lib-1.5-1.noarch",
                "impl-1.0-1.noarch",
                "tool-1.0-1.noarch"
            ]
        );
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("missing-dep"));
        let (chosen, _) = select(&pkgs, &["lib".into()], &["app-1.0-1.noarch".into()]).unwrap();
        assert!(chosen.contains(&0) && chosen.contains(&3) && !chosen.contains(&1));
        assert!(select(&pkgs, &["nope".into()], &[]).is_err());
    }
}
