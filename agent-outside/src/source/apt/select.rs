//! Which packages an apt source mirrors: everything, or the named ones
//! (and pins upstream still has) with the closure of their dependencies.

use super::index::Stanza;
use super::AptSource;
use anyhow::{bail, Result};
use std::collections::{BTreeSet, HashMap};

impl AptSource {
    /// The stanzas the selection takes: all, or the closure of `packages`.
    pub(super) fn select<'a>(&self, all: &'a [Stanza]) -> Result<Vec<&'a Stanza>> {
        let mut pins_and_named: Vec<&String> = self.s.packages.iter().collect();
        if self.s.packages.is_empty() {
            return Ok(all.iter().collect());
        }
        let mut by_name: HashMap<&str, Vec<&Stanza>> = HashMap::new();
        let mut providers: HashMap<&str, Vec<&str>> = HashMap::new();
        for st in all {
            by_name.entry(&st.package).or_default().push(st);
            for p in &st.provides {
                providers.entry(p).or_default().push(&st.package);
            }
        }
        for p in &self.s.packages {
            if !by_name.contains_key(p.as_str()) {
                bail!(
                    "package {p:?} is in no Packages index of suites {:?}, components {:?}, architectures {:?}", self.s.suites, self.s.components, self.s.architectures
                );
            }
        }
        // Pinned packages upstream still has are selected too.
        pins_and_named.extend(
            self.s
                .pin
                .iter()
                .filter(|p| by_name.contains_key(p.as_str())),
        );
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        let mut todo: Vec<&str> = pins_and_named.iter().map(|s| s.as_str()).collect();
        while let Some(n) = todo.pop() {
            if !seen.insert(n) {
                continue;
            }
            for st in by_name.get(n).into_iter().flatten() {
                let groups = st.deps.iter().chain(if self.s.recommends {
                    &st.recommends[..]
                } else {
                    &[]
                });
                for g in groups {
                    // The first alternative that exists, real or virtual.
                    let pick = g.iter().find_map(|alt| {
                        if by_name.contains_key(alt.as_str()) {
                            Some(vec![alt.as_str()])
                        } else {
                            providers.get(alt.as_str()).cloned()
                        }
                    });
                    match pick {
                        Some(names) => todo.extend(names),
                        None => eprintln!(
                            "ferry-out: warning: source {:?}: {} needs {}, which no selected index has",
                            self.name,
                            st.package,
                            g.join(" | ")
                        ),
                    }
                }
            }
        }
        Ok(all
            .iter()
            .filter(|st| seen.contains(st.package.as_str()))
            .collect())
    }
}
