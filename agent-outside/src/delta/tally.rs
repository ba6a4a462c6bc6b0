//! What became of the compressed streams the export's fresh analyses found:
//! rebuilt from their content, or left compressed and why (the export's
//! report prints it, so that an operator sees what a setting leaves on the
//! table: xz streams not tried at `fast`, say).

use ferry_agent_common::units::human_bytes;
use ferry_recipe::{LiteralReason, Outcome, Report};
use std::sync::{Arc, Mutex};

/// Every reason a stream is left compressed, in the order the report prints
/// them (a reason's place is [`slot`]).
pub const REASONS: [LiteralReason; 8] = [
    LiteralReason::Skipped,
    LiteralReason::NotModelled,
    LiteralReason::PreflateFailed,
    LiteralReason::NotIdentical,
    LiteralReason::TooLarge,
    LiteralReason::Ratio,
    LiteralReason::Corrupt,
    LiteralReason::Inconsistent,
];

/// Streams and their compressed bytes, by outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamTally {
    /// Objects whose analysis these streams come from.
    pub objects: u64,
    /// Streams rebuilt bit-exactly from their decoded content, and their bytes.
    pub rebuilt: (u64, u64),
    /// Streams left compressed, by the reason of the same index in [`REASONS`].
    pub left: [(u64, u64); REASONS.len()],
    /// The plain bytes the xz streams not tried hold, by their indexes (those
    /// whose index was read): what `--delta-xz always` would re-encode.
    pub skipped_plain: u64,
}

impl StreamTally {
    /// Adds the streams of one object's analysis.
    pub fn add(&mut self, report: &Report) {
        self.objects += 1;
        for s in &report.streams {
            let slot = match s.outcome {
                Outcome::Reproduced => &mut self.rebuilt,
                Outcome::Literal(why) => &mut self.left[slot(why)],
            };
            slot.0 += 1;
            slot.1 += s.compressed_len;
            if s.outcome == Outcome::Literal(LiteralReason::Skipped) {
                self.skipped_plain += s.plain_len.unwrap_or(0);
            }
        }
    }

    /// Streams left compressed, and their bytes.
    pub fn left_total(&self) -> (u64, u64) {
        self.left
            .iter()
            .fold((0, 0), |(n, b), (m, c)| (n + m, b + c))
    }

    /// Each reason with streams, its streams and bytes.
    pub fn left_by_reason(&self) -> impl Iterator<Item = (LiteralReason, u64, u64)> + '_ {
        REASONS
            .iter()
            .zip(&self.left)
            .filter(|(_, (n, _))| *n > 0)
            .map(|(r, (n, b))| (*r, *n, *b))
    }
}

impl StreamTally {
    /// The export report's line on these streams (`None` when no analysis
    /// found any): how many were rebuilt, and how many were left compressed
    /// and why, with what would change it.
    pub fn line(&self) -> Option<String> {
        let (left, left_bytes) = self.left_total();
        if self.rebuilt.0 == 0 && left == 0 {
            return None;
        }
        let (rebuilt, rebuilt_bytes) = self.rebuilt;
        let mut line = format!(
            "  streams in {} object{} analysed: {rebuilt} rebuilt from their content ({})",
            self.objects,
            if self.objects == 1 { "" } else { "s" },
            human_bytes(rebuilt_bytes)
        );
        if left > 0 {
            let one = self.left_by_reason().count() == 1;
            let why: Vec<String> = self
                .left_by_reason()
                .map(|(r, n, b)| {
                    let what = match r {
                        LiteralReason::Skipped if self.skipped_plain > 0 => format!(
                            "xz not tried at this setting, {} decoded (`--delta-xz always` \
                             re-encodes them on both sides, at xz's speed: about 2 MB/s a core)",
                            human_bytes(self.skipped_plain)
                        ),
                        r => what(r).to_string(),
                    };
                    if one {
                        what
                    } else {
                        format!("{n} {what} ({})", human_bytes(b))
                    }
                })
                .collect();
            line += &format!(
                "; {left} left compressed ({}): {}",
                human_bytes(left_bytes),
                why.join(", ")
            );
        }
        Some(line)
    }
}

/// The place of `why` in [`REASONS`] (a new reason fails to compile here).
fn slot(why: LiteralReason) -> usize {
    match why {
        LiteralReason::Skipped => 0,
        LiteralReason::NotModelled => 1,
        LiteralReason::PreflateFailed => 2,
        LiteralReason::NotIdentical => 3,
        LiteralReason::TooLarge => 4,
        LiteralReason::Ratio => 5,
        LiteralReason::Corrupt => 6,
        LiteralReason::Inconsistent => 7,
    }
}

/// What streams left compressed for `why` are, for an operator.
fn what(why: LiteralReason) -> &'static str {
    match why {
        LiteralReason::Skipped => "xz not tried at this setting (`--delta-xz always` tries them)",
        LiteralReason::NotModelled => "xz or zstd that no known encoder settings reproduce",
        LiteralReason::PreflateFailed => "deflate of an encoder Ferry does not model",
        LiteralReason::NotIdentical => "deflate modelled but not rebuilt identically",
        LiteralReason::TooLarge => "over the expansion limits",
        LiteralReason::Ratio => "inflating past the ratio limit",
        LiteralReason::Corrupt => "that do not decode",
        LiteralReason::Inconsistent => "whose length disagrees with their container",
    }
}

/// A tally the analysis threads add to.
#[derive(Clone, Default)]
pub(crate) struct SharedTally(Arc<Mutex<StreamTally>>);

impl SharedTally {
    /// Adds one object's analysis.
    pub(crate) fn add(&self, report: &Report) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).add(report);
    }

    /// What was added so far.
    pub(crate) fn get(&self) -> StreamTally {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_recipe::{StreamKind, StreamReport};

    fn stream(outcome: Outcome, len: u64) -> StreamReport {
        StreamReport {
            kind: StreamKind::Xz,
            offset: 0,
            compressed_len: len,
            plain_len: None,
            recipe_len: 0,
            outcome,
        }
    }

    #[test]
    fn every_reason_has_its_own_place() {
        for (i, r) in REASONS.iter().enumerate() {
            assert_eq!(slot(*r), i, "{r:?}");
        }
    }

    #[test]
    fn the_line_names_each_reason_and_what_would_change_it() {
        assert_eq!(StreamTally::default().line(), None);
        let mut t = StreamTally::default();
        t.add(&Report {
            input_len: 100,
            streams: vec![stream(Outcome::Literal(LiteralReason::Skipped), 2048)],
        });
        let line = t.line().unwrap();
        assert!(
            line.contains("streams in 1 object analysed: 0 rebuilt")
                && line.contains("1 left compressed")
                && line.ends_with("xz not tried at this setting (`--delta-xz always` tries them)"),
            "{line}"
        );
        // With the plain size its index gives, the line says what trying
        // the stream would re-encode.
        let mut with_index = t;
        with_index.add(&Report {
            input_len: 100,
            streams: vec![StreamReport {
                plain_len: Some(3 << 20),
                ..stream(Outcome::Literal(LiteralReason::Skipped), 1024)
            }],
        });
        assert_eq!(with_index.skipped_plain, 3 << 20);
        let line = with_index.line().unwrap();
        assert!(
            line.contains("xz not tried at this setting, 3.0 MiB decoded")
                && line.contains("re-encodes them on both sides"),
            "{line}"
        );
        t.add(&Report {
            input_len: 100,
            streams: vec![stream(Outcome::Literal(LiteralReason::Corrupt), 10)],
        });
        let line = t.line().unwrap();
        assert!(
            line.contains("in 2 objects") && line.contains("1 that do not decode ("),
            "{line}"
        );
    }

    #[test]
    fn streams_are_counted_by_outcome_and_reason() {
        let mut t = StreamTally::default();
        t.add(&Report {
            input_len: 100,
            streams: vec![
                stream(Outcome::Reproduced, 10),
                stream(Outcome::Literal(LiteralReason::Skipped), 40),
                stream(Outcome::Literal(LiteralReason::Skipped), 5),
                stream(Outcome::Literal(LiteralReason::PreflateFailed), 7),
            ],
        });
        t.add(&Report {
            input_len: 1,
            streams: vec![],
        });
        assert_eq!(t.objects, 2);
        assert_eq!(t.rebuilt, (1, 10));
        assert_eq!(t.left_total(), (3, 52));
        let by: Vec<_> = t.left_by_reason().collect();
        assert_eq!(
            by,
            vec![
                (LiteralReason::Skipped, 2, 45),
                (LiteralReason::PreflateFailed, 1, 7)
            ]
        );
    }
}
