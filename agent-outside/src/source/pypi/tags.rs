//! Which files fit the interpreters and platforms a source serves: wheel
//! file names and their compressed tag sets (PEP 425, PEP 600 manylinux,
//! musllinux, macOS), `requires-python`, and the PEP 508 marker environments
//! dependencies are evaluated in.

use anyhow::{anyhow, Result};
use ferry_formats::pypi::normalize;
use pep508_rs::pep440_rs::{Version, VersionSpecifiers};
use pep508_rs::{MarkerEnvironment, MarkerEnvironmentBuilder};
use std::str::FromStr;

/// A Python version and a platform the mirror serves.
pub(super) struct Targets {
    /// `(major, minor)`.
    pub(super) pythons: Vec<(u32, u32)>,
    /// Wheel platform tags; empty means all.
    pub(super) platforms: Vec<String>,
    /// Marker environments, one per Python × platform family.
    pub(super) envs: Vec<MarkerEnvironment>,
}

/// Marker environments for every Python × platform family configured.
pub(super) fn marker_envs(
    pythons: &[(u32, u32)],
    platforms: &[String],
) -> Result<Vec<MarkerEnvironment>> {
    // (sys_platform, platform_system, os_name, platform_machine)
    let mut families: Vec<(&str, &str, &str, String)> = Vec::new();
    for p in platforms {
        let fam = if let Some(arch) = linux_arch(p) {
            Some(("linux", "Linux", "posix", arch.to_string()))
        } else if let Some((_, arch)) = macos_tag(p) {
            let arch = if arch == "universal2" || arch == "universal" {
                "arm64"
            } else {
                arch
            };
            Some(("darwin", "Darwin", "posix", arch.to_string()))
        } else {
            match p.as_str() {
                "win_amd64" => Some(("win32", "Windows", "nt", "AMD64".into())),
                "win32" => Some(("win32", "Windows", "nt", "x86".into())),
                "win_arm64" => Some(("win32", "Windows", "nt", "ARM64".into())),
                _ => None,
            }
        };
        if let Some(f) = fam {
            if !families.contains(&f) {
                families.push(f);
            }
        }
    }
    if families.is_empty() {
        families = vec![
            ("linux", "Linux", "posix", "x86_64".into()),
            ("darwin", "Darwin", "posix", "arm64".into()),
            ("win32", "Windows", "nt", "AMD64".into()),
        ];
    }
    let mut out = Vec::new();
    for (maj, min) in pythons {
        let full = format!("{maj}.{min}.0");
        let short = format!("{maj}.{min}");
        for (sys, system, os, machine) in &families {
            out.push(
                MarkerEnvironment::try_from(MarkerEnvironmentBuilder {
                    implementation_name: "cpython",
                    implementation_version: &full,
                    os_name: os,
                    platform_machine: machine,
                    platform_python_implementation: "CPython",
                    platform_release: "",
                    platform_system: system,
                    platform_version: "",
                    python_full_version: &full,
                    python_version: &short,
                    sys_platform: sys,
                })
                .map_err(|e| anyhow!("python {short}: {e}"))?,
            );
        }
    }
    Ok(out)
}

/// What a distribution file name says.
#[derive(Debug, PartialEq, Eq)]
pub struct Dist<'a> {
    /// Normalized project name.
    pub project: String,
    /// The version, as written.
    pub version: &'a str,
    /// `(python, abi, platform)` tags of a wheel; `None` for an sdist.
    pub tags: Option<(&'a str, &'a str, &'a str)>,
}

/// Reads a wheel (`name-ver[-build]-py-abi-plat.whl`) or sdist
/// (`name-ver.tar.gz` / `.zip`) file name.
pub fn parse_filename(f: &str) -> Option<Dist<'_>> {
    if let Some(stem) = f.strip_suffix(".whl") {
        let parts: Vec<&str> = stem.split('-').collect();
        if parts.len() != 5 && parts.len() != 6 {
            return None;
        }
        let n = parts.len();
        return Some(Dist {
            project: normalize(parts[0]),
            version: parts[1],
            tags: Some((parts[n - 3], parts[n - 2], parts[n - 1])),
        });
    }
    let stem = f
        .strip_suffix(".tar.gz")
        .or_else(|| f.strip_suffix(".zip"))?;
    let (name, version) = stem.rsplit_once('-')?;
    (!name.is_empty() && !version.is_empty()).then(|| Dist {
        project: normalize(name),
        version,
        tags: None,
    })
}

/// `cp311` -> (3, Some(11)); `py3` -> (3, None).
fn interp_version(tag: &str, prefix: &str) -> Option<(u32, Option<u32>)> {
    let digits = tag.strip_prefix(prefix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let major = digits[..1].parse().ok()?;
    let minor = if digits.len() > 1 {
        Some(digits[1..].parse().ok()?)
    } else {
        None
    };
    Some((major, minor))
}

/// Whether one python tag and one abi tag run on CPython `maj.min` (the tags
/// pip generates: `cpXY-cpXY`, `cpXY-abi3` for Y up to min, `cpXY-none`,
/// `pyX-none`, `pyXY-none` for Y up to min).
fn interp_fits(py: &str, abi: &str, maj: u32, min: u32) -> bool {
    if let Some((m, n)) = interp_version(py, "cp") {
        let Some(n) = n else { return false };
        if m != maj {
            return false;
        }
        return (n == min && (abi == format!("cp{maj}{min}") || abi == "none"))
            || (abi == "abi3" && n <= min);
    }
    if let Some((m, n)) = interp_version(py, "py") {
        return m == maj && abi == "none" && n.is_none_or(|n| n <= min);
    }
    false
}

/// `manylinux_2_17_x86_64` (and the legacy aliases), `musllinux_1_2_aarch64`:
/// `(family, major, minor, arch)`.
fn glibc_tag(t: &str) -> Option<(&'static str, u32, u32, &str)> {
    for (legacy, (a, b)) in [
        ("manylinux1_", (2, 5)),
        ("manylinux2010_", (2, 12)),
        ("manylinux2014_", (2, 17)),
    ] {
        if let Some(arch) = t.strip_prefix(legacy) {
            return Some(("manylinux", a, b, arch));
        }
    }
    for fam in ["manylinux", "musllinux"] {
        if let Some(rest) = t.strip_prefix(fam).and_then(|r| r.strip_prefix('_')) {
            let mut it = rest.splitn(3, '_');
            let a = it.next()?.parse().ok()?;
            let b = it.next()?.parse().ok()?;
            let arch = it.next()?;
            return Some((
                if fam == "manylinux" {
                    "manylinux"
                } else {
                    "musllinux"
                },
                a,
                b,
                arch,
            ));
        }
    }
    None
}

/// The architecture of a Linux platform tag.
fn linux_arch(t: &str) -> Option<&str> {
    glibc_tag(t)
        .map(|(_, _, _, a)| a)
        .or_else(|| t.strip_prefix("linux_"))
}

/// `macosx_11_0_arm64` -> ((11, 0), "arm64").
fn macos_tag(t: &str) -> Option<((u32, u32), &str)> {
    let rest = t.strip_prefix("macosx_")?;
    let mut it = rest.splitn(3, '_');
    let a = it.next()?.parse().ok()?;
    let b = it.next()?.parse().ok()?;
    Some(((a, b), it.next()?))
}

/// Whether a wheel's platform tag runs on configured platform `want`:
/// equal; `manylinux`/`musllinux` of the same architecture and a libc no
/// newer (legacy `manylinux1`/`2010`/`2014` read as 2.5/2.12/2.17); macOS of
/// the same architecture (or `universal2`) and a version no newer.
pub fn platform_fits(wheel: &str, want: &str) -> bool {
    if wheel == want || wheel == "any" {
        return true;
    }
    if let (Some((wf, wa, wb, warch)), Some((cf, ca, cb, carch))) =
        (glibc_tag(wheel), glibc_tag(want))
    {
        return wf == cf && warch == carch && (wa, wb) <= (ca, cb);
    }
    if let (Some((wv, warch)), Some((cv, carch))) = (macos_tag(wheel), macos_tag(want)) {
        let arch_ok = warch == carch
            || (warch == "universal2" && matches!(carch, "x86_64" | "arm64"))
            || (matches!(warch, "intel" | "universal") && carch == "x86_64");
        return arch_ok && wv <= cv;
    }
    false
}

impl Targets {
    /// Whether a wheel with these (compressed) tags fits a configured
    /// Python and a configured platform.
    pub(super) fn wheel_fits(&self, py: &str, abi: &str, plat: &str) -> bool {
        wheel_fits(py, abi, plat, &self.pythons, &self.platforms)
    }

    /// Whether `requires-python` admits a configured Python (as `X.Y.0` or
    /// a late `X.Y.99`). An unreadable value admits everything.
    pub(super) fn python_ok(&self, requires: Option<&str>) -> bool {
        let Some(r) = requires.map(str::trim).filter(|r| !r.is_empty()) else {
            return true;
        };
        let Ok(spec) = VersionSpecifiers::from_str(r) else {
            return true;
        };
        self.pythons.iter().any(|(a, b)| {
            [0, 99].iter().any(|micro| {
                Version::from_str(&format!("{a}.{b}.{micro}")).is_ok_and(|v| spec.contains(&v))
            })
        })
    }
}

/// Whether a wheel's tags (each maybe a `.`-separated set) fit one of
/// `pythons` and one of `platforms` (all platforms when that is empty).
pub fn wheel_fits(
    py: &str,
    abi: &str,
    plat: &str,
    pythons: &[(u32, u32)],
    platforms: &[String],
) -> bool {
    let interp = py.split('.').any(|p| {
        abi.split('.').any(|a| {
            pythons
                .iter()
                .any(|(maj, min)| interp_fits(p, a, *maj, *min))
        })
    });
    let platform = platforms.is_empty()
        || plat
            .split('.')
            .any(|w| w == "any" || platforms.iter().any(|c| platform_fits(w, c)));
    interp && platform
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_filenames() {
        let d = parse_filename("Foo_Bar-1.0-1-cp311-abi3-manylinux_2_17_x86_64.whl").unwrap();
        assert_eq!(d.project, "foo-bar");
        assert_eq!(d.version, "1.0");
        assert_eq!(d.tags, Some(("cp311", "abi3", "manylinux_2_17_x86_64")));
        let s = parse_filename("foo-bar-2.0.tar.gz").unwrap();
        assert_eq!(
            (s.project.as_str(), s.version, s.tags),
            ("foo-bar", "2.0", None)
        );
        assert!(parse_filename("x.whl").is_none());
    }

    #[test]
    fn tags() {
        let py = [(3, 11)];
        let lin = vec!["manylinux_2_17_x86_64".to_string()];
        assert!(wheel_fits("py3", "none", "any", &py, &lin));
        assert!(wheel_fits("py2.py3", "none", "any", &py, &lin));
        assert!(wheel_fits(
            "cp311",
            "cp311",
            "manylinux2014_x86_64",
            &py,
            &lin
        ));
        assert!(wheel_fits(
            "cp311",
            "cp311",
            "manylinux_2_5_x86_64.manylinux1_x86_64",
            &py,
            &lin
        ));
        assert!(!wheel_fits(
            "cp311",
            "cp311",
            "manylinux_2_28_x86_64",
            &py,
            &lin
        ));
        assert!(!wheel_fits(
            "cp311",
            "cp311",
            "manylinux_2_17_aarch64",
            &py,
            &lin
        ));
        assert!(!wheel_fits("cp311", "cp311", "win_amd64", &py, &lin));
        assert!(!wheel_fits(
            "cp312",
            "cp312",
            "manylinux_2_17_x86_64",
            &py,
            &lin
        ));
        assert!(wheel_fits(
            "cp38",
            "abi3",
            "manylinux_2_17_x86_64",
            &py,
            &lin
        ));
        assert!(!wheel_fits(
            "cp312",
            "abi3",
            "manylinux_2_17_x86_64",
            &py,
            &lin
        ));
        assert!(wheel_fits("py310", "none", "any", &py, &lin));
        assert!(!wheel_fits("py2", "none", "any", &py, &lin));
        assert!(wheel_fits("cp311", "cp311", "win_amd64", &py, &[]));
        assert!(platform_fits("macosx_10_9_universal2", "macosx_11_0_arm64"));
        assert!(!platform_fits("macosx_12_0_arm64", "macosx_11_0_arm64"));
        assert!(!platform_fits(
            "musllinux_1_1_x86_64",
            "manylinux_2_17_x86_64"
        ));
    }
}
