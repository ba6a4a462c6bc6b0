//! What ferry-in accepts beyond the bundle format's own limits: how far a
//! bundle's times may stray from the local clock, and how much disk the
//! held area and the diode spool may take.
//!
//! Defaults, and why:
//! - `max_clock_skew` 1 hour: a bundle made "later" than the inside's clock
//!   plus this is refused. An hour covers clocks set by hand on a
//!   disconnected site (drift of seconds a day) and time zones mistaken for
//!   UTC are caught (they are whole hours, so a 1 h skew still accepts a
//!   bundle made right now by an outside one hour ahead; two hours not).
//! - `max_validity` 90 days: `ferry-out`'s default `[export] expires` is
//!   90d, so every default bundle passes; a bundle valid for longer (such as
//!   `expires` at the end of time) is refused, which bounds how long a
//!   stolen or withheld bundle stays usable (a freeze attack).
//! - held area: 4 GiB and 64 bundles; spool: 64 GiB and 16 bundle
//!   directories; both keep 256 MiB of the filesystem free.
//! - `keep_previous` off: once a new generation is current, the one before
//!   it is deleted, so the store takes about the bytes it serves (requests
//!   still answering from it finish on their open files, or are answered
//!   again from the new one, see `serve`). On, it stays until the next
//!   import, for clients that must see one generation across many requests.

use ferry_agent_common::units::human_bytes;
use std::path::PathBuf;

/// Limits on time and disk, from the config's `[trust]`, `[held]`,
/// `[spool]` and `[store]` sections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// How far (seconds) a bundle's `created` may lie beyond the local clock.
    pub max_clock_skew_secs: u64,
    /// Longest validity (`expires - created`, seconds) accepted.
    pub max_validity_secs: u64,
    /// Age (seconds) of the newest applied bundle past which `status` and
    /// `/ferry/health` warn: a withheld stick is a silent freeze otherwise
    /// (`[trust] warn_after`).
    pub warn_after_secs: u64,
    /// The held area (`STATE/held/`).
    pub held: Quota,
    /// The diode spool.
    pub spool: Quota,
    /// Whether the generation before the current one stays on disk until
    /// the next import (`[store] keep_previous`).
    pub keep_previous: bool,
    /// The longest reference form of a base an import holds in memory to
    /// rebuild an object from windows against it; a longer one is spilled
    /// to disk (`[store] reference_in_memory`; `store::REFERENCE_IN_MEMORY`).
    pub reference_in_memory: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_clock_skew_secs: 3600,
            max_validity_secs: 90 * 86_400,
            warn_after_secs: 7 * 86_400,
            held: Quota {
                max_bytes: 4 << 30,
                max_bundles: 64,
                reserve_bytes: 256 << 20,
            },
            spool: Quota {
                max_bytes: 64 << 30,
                max_bundles: 16,
                reserve_bytes: 256 << 20,
            },
            keep_previous: false,
            reference_in_memory: crate::store::REFERENCE_IN_MEMORY,
        }
    }
}

/// How much an area may hold, and how much free space it must leave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    /// Most bytes in the area.
    pub max_bytes: u64,
    /// Most bundles in the area.
    pub max_bundles: u64,
    /// Free bytes the filesystem must keep after a write into the area.
    pub reserve_bytes: u64,
}

/// A write into the held area or the spool that would break its quota or
/// the free-space reserve.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    /// The area's byte quota.
    #[error(
        "the {area} directory ({}) holds {} and {} more would pass its limit of {} ([{area}] max_bytes in the config)",
        .path.display(), human_bytes(*.used), human_bytes(*.adding), human_bytes(*.limit)
    )]
    Bytes {
        /// "held" or "spool".
        area: &'static str,
        /// The area's directory.
        path: PathBuf,
        /// Bytes in it now.
        used: u64,
        /// Bytes the write needs.
        adding: u64,
        /// The limit.
        limit: u64,
    },
    /// The area's bundle count.
    #[error(
        "the {area} directory ({}) holds {count} bundles, its limit ([{area}] max_bundles in the config)",
        .path.display()
    )]
    Count {
        /// "held" or "spool".
        area: &'static str,
        /// The area's directory.
        path: PathBuf,
        /// Bundles in it now.
        count: u64,
    },
    /// The filesystem's free space.
    #[error(
        "the filesystem of the {area} directory ({}) has {} free; {} more would leave less than the reserve of {} ([{area}] reserve in the config)",
        .path.display(), human_bytes(*.free), human_bytes(*.adding), human_bytes(*.reserve)
    )]
    Space {
        /// "held" or "spool".
        area: &'static str,
        /// The area's directory.
        path: PathBuf,
        /// Free bytes.
        free: u64,
        /// Bytes the write needs.
        adding: u64,
        /// The reserve.
        reserve: u64,
    },
}

impl Quota {
    /// Checks that `adding` bytes more (as one more bundle when `new_bundle`)
    /// fit an area at `path` holding `used` bytes in `count` bundles, with
    /// `free` bytes free on its filesystem (`None`: not checked).
    pub fn check(
        &self,
        area: &'static str,
        path: PathBuf,
        (used, count): (u64, u64),
        adding: u64,
        new_bundle: bool,
        free: Option<u64>,
    ) -> Result<(), QuotaError> {
        if new_bundle && count >= self.max_bundles {
            return Err(QuotaError::Count { area, path, count });
        }
        if used.saturating_add(adding) > self.max_bytes {
            return Err(QuotaError::Bytes {
                area,
                path,
                used,
                adding,
                limit: self.max_bytes,
            });
        }
        match free {
            Some(free) if free < adding.saturating_add(self.reserve_bytes) => {
                Err(QuotaError::Space {
                    area,
                    path,
                    free,
                    adding,
                    reserve: self.reserve_bytes,
                })
            }
            _ => Ok(()),
        }
    }
}

/// Bytes (apparent sizes) of the regular files under `dir`, recursively.
pub fn dir_bytes(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    for e in rd.flatten() {
        match e.file_type() {
            Ok(t) if t.is_dir() => total += dir_bytes(&e.path()),
            Ok(t) if t.is_file() => total += e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => {}
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_names_the_limit_it_would_break() {
        let q = Quota {
            max_bytes: 100,
            max_bundles: 2,
            reserve_bytes: 10,
        };
        let p = PathBuf::from("/held");
        assert_eq!(
            q.check("held", p.clone(), (50, 1), 50, true, Some(60)),
            Ok(())
        );
        assert!(matches!(
            q.check("held", p.clone(), (50, 2), 1, true, None),
            Err(QuotaError::Count { count: 2, .. })
        ));
        // Replacing a bundle already counted is not one more.
        assert_eq!(q.check("held", p.clone(), (50, 2), 1, false, None), Ok(()));
        assert!(matches!(
            q.check("held", p.clone(), (50, 1), 51, true, None),
            Err(QuotaError::Bytes {
                used: 50,
                adding: 51,
                limit: 100,
                ..
            })
        ));
        let e = q.check("spool", p, (0, 0), 60, true, Some(65)).unwrap_err();
        assert!(matches!(
            e,
            QuotaError::Space {
                free: 65,
                adding: 60,
                reserve: 10,
                ..
            }
        ));
        assert!(e.to_string().contains("[spool] reserve"), "{e}");
    }
}
