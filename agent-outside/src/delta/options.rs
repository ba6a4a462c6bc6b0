//! The delta settings of an export (`[export] delta`, `delta_xz`, the
//! windows and limits) and what they decide before any analysis: the zstd
//! level, whether xz streams are reproduced, an object's window.

use anyhow::{bail, Result};

/// The zstd level of `fast` patches (scheduled exports).
pub const FAST: i32 = 3;
/// The zstd level of `high` patches (a slow diode, small media).
pub const HIGH: i32 = 19;
/// From this patch level on, xz streams are reproduced too (slow, and the
/// largest gain on debs and RPMs).
pub const SLOW_LEVELS: i32 = 10;

/// How an export encodes changed objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeltaOptions {
    /// zstd level of patches; `None` ships every object whole.
    pub level: Option<i32>,
    /// Largest object (and expanded form) analysed and patched; both are
    /// held in memory. Larger objects ship whole, unless a gzip member, a
    /// zip or a deb under `max_streamed`.
    pub max_object: u64,
    /// Largest object patched when it is one gzip member (an image layer),
    /// a zip (a wheel, a jar) or a deb, which is analysed as its copy is read
    /// ([`DeltaOptions::streamed_min`]) and never held: its expanded form and
    /// its base's reference form are spilled, up to `ferry_recipe`'s 1 GiB
    /// expansion bound.
    pub max_streamed: u64,
    /// An expanded form larger than this is cut into windows of about this
    /// size (format version 3), each its own zstd frame against a range of
    /// the base's reference form ([`DEFAULT_WINDOW`]; at most 48 MiB).
    pub window: u64,
    /// Whether xz streams (debs, RPMs) are reproduced.
    pub xz: XzPolicy,
    /// The largest changed object (with a predecessor) the scan reads whole
    /// before its patch is made ([`SCAN_HELD`]); a larger one streams
    /// through the chunker into its kept copy, which its analysis reads
    /// under the memory budget.
    pub scan_held: u64,
    /// Whether a large GNU gzip stream (an image layer) is cut so that the
    /// inside rebuilds its pieces on every core: recipe version 4
    /// (`ferry_recipe::Segment::ZlibCuts`), which an inside built before it
    /// refuses. Off, every recipe is version 3 at most (`[export]
    /// delta_recipe_version = 3`).
    pub deflate_cuts: bool,
    /// The newest recipe version the insides read (`[export]
    /// delta_recipe_version`): no recipe needs a newer one.
    pub recipe_version: u8,
    /// A changed object kept only in its copy (over `scan_held`) of at
    /// least this size that is one gzip member (an image layer) or a zip (a
    /// wheel) is analysed as its copy is read, its expanded form written to
    /// a spill file and never held; a base of at least this size that is
    /// one has its reference form made the same way ([`STREAMED_MIN`]).
    pub streamed_min: u64,
}

/// The default [`DeltaOptions::streamed_min`]: 32 MiB. Smaller objects fit
/// beside others in the memory budget, and their whole analysis reads
/// their block ends beside the inflate as the streamed one does.
pub const STREAMED_MIN: u64 = 32 << 20;

/// Whether an export reproduces xz streams, so that a deb's or an RPM's
/// payload travels as a patch of its decompressed content. Rebuilding an xz
/// stream costs what compressing it costs (about 1.5 MB/s a core, on both
/// sides), so by default only the slow settings do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum XzPolicy {
    /// At patch levels of [`SLOW_LEVELS`] and up (`high`), not at `fast`.
    #[default]
    Auto,
    /// At every level: the fewest bytes, at xz's speed.
    Always,
    /// Never: xz streams travel as their compressed bytes.
    Never,
}

impl XzPolicy {
    /// Reads `[export] delta_xz` / `--delta-xz`: `auto`, `always` or `never`.
    pub fn parse(s: &str) -> Result<XzPolicy> {
        Ok(match s {
            "auto" => XzPolicy::Auto,
            "always" => XzPolicy::Always,
            "never" => XzPolicy::Never,
            _ => bail!("xz setting {s:?} is not auto, always or never"),
        })
    }

    /// Whether patches at zstd `level` reproduce xz streams.
    pub fn reproduces(self, level: i32) -> bool {
        match self {
            XzPolicy::Auto => level >= SLOW_LEVELS,
            XzPolicy::Always => true,
            XzPolicy::Never => false,
        }
    }
}

impl DeltaOptions {
    /// Whether an object of `size` bytes may be patched: up to
    /// `max_object`, or up to `max_streamed` when `streamed` says it starts
    /// as a gzip member, a zip or a deb (asked only then).
    pub fn patchable(&self, size: u64, streamed: impl FnOnce() -> bool) -> bool {
        size <= self.max_object || (size <= self.max_streamed && streamed())
    }

    /// The largest expanded (or reference) form patched against: one
    /// spilled to a file is never held whole, and may be as large as a
    /// layer's; one held in memory is bounded by `max_object`.
    pub(super) fn max_form(&self, spilled: bool) -> u64 {
        if spilled {
            self.max_object.max(self.max_streamed)
        } else {
            self.max_object
        }
    }
}

/// The default [`DeltaOptions::window`]: 48 MiB.
pub const DEFAULT_WINDOW: u64 = 48 << 20;

/// The window of an object whose recipe's encoder holds more than
/// [`LARGE_ENCODER`] (a deb's data.tar.xz: an xz encoder at preset 6
/// holds about 94 MiB and a block's output): the inside holds one
/// window and its reference range (about 43 MiB for 16 MiB windows, 128
/// MiB for 48 MiB ones) beside the encoder while it rebuilds.
pub const ENCODER_WINDOW: u64 = 16 << 20;

/// An encoder holding more than this makes the object's windows
/// [`ENCODER_WINDOW`] long.
const LARGE_ENCODER: u64 = 64 << 20;

/// The window for an object of `recipe` (its encoding; empty: the object is
/// its own expanded form): [`ENCODER_WINDOW`] when its rebuild holds a
/// large encoder, else `window`.
pub(super) fn window_for(recipe: &[u8], window: u64) -> u64 {
    let encoder = ferry_recipe::Recipe::from_bytes(recipe).map_or(0, |r| r.rebuild_memory());
    if encoder > LARGE_ENCODER {
        window.min(ENCODER_WINDOW)
    } else {
        window
    }
}

/// The default [`DeltaOptions::scan_held`]: 8 MiB. Objects up to this size
/// waiting for the analysis pool are held outside the memory budget (the
/// scan keeps about 48 MiB of them in flight, and one more).
pub const SCAN_HELD: u64 = 8 << 20;

impl Default for DeltaOptions {
    fn default() -> Self {
        DeltaOptions {
            level: Some(FAST),
            max_object: 256 << 20,
            max_streamed: 1 << 30,
            window: DEFAULT_WINDOW,
            xz: XzPolicy::Auto,
            scan_held: SCAN_HELD,
            deflate_cuts: true,
            recipe_version: ferry_recipe::RECIPE_VERSION,
            streamed_min: STREAMED_MIN,
        }
    }
}

/// Reads a delta setting: `off`, `fast`, `high` or a zstd level 1 to 22.
pub fn parse_level(s: &str) -> Result<Option<i32>> {
    Ok(match s {
        "off" => None,
        "fast" => Some(FAST),
        "high" => Some(HIGH),
        n => match n.parse::<i32>() {
            Ok(l) if (1..=22).contains(&l) => Some(l),
            _ => bail!("delta setting {s:?} is not off, fast, high or a zstd level 1 to 22"),
        },
    })
}
