//! Following timeline switches: which timeline's file holds each segment, from the
//! requested timeline's history file (`%08X.history`) in the WAL directory.
//!
//! pg_waldump reads the files of one timeline only (`-t`), so a range that starts before a
//! promotion cannot be dumped with it in one go. We read each segment the way the server's
//! recovery does (`XLogFileReadAnyTLI`): from the newest timeline of the history whose
//! range covers the segment and whose file exists — the segment holding a switch point from
//! the newer timeline, whose file is a copy of the older one up to the switch point. Unlike
//! the server we never read a segment from a timeline that ended before it starts: that
//! file holds WAL of another history.

use std::path::Path;

use pg_walstream_codec::{Lsn, WalSegmentSize};
use pg_walstream_slot::parse_timeline_history;

use crate::error::CliError;

/// One timeline of the history: it holds WAL from `begin` up to `end` (exclusive; `None`:
/// the requested timeline, open-ended).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TimelineRange {
    timeline: u32,
    begin: Lsn,
    end: Option<Lsn>,
}

/// The timelines a dump may read, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Timelines {
    ranges: Vec<TimelineRange>,
}

impl Timelines {
    /// Only `timeline`, from the start of WAL.
    pub(crate) fn single(timeline: u32) -> Self {
        Self {
            ranges: vec![TimelineRange {
                timeline,
                begin: Lsn::INVALID,
                end: None,
            }],
        }
    }

    /// `timeline` and its ancestors, from `dir/%08X.history` if it exists (timeline 1 has
    /// none; without the file only `timeline` is read, as pg_waldump does).
    ///
    /// # Errors
    /// An unreadable or malformed history file (timelines not increasing, switch points
    /// going back).
    pub(crate) fn load(dir: &Path, timeline: u32) -> Result<Self, CliError> {
        let path = dir.join(format!("{timeline:08X}.history"));
        if timeline <= 1 || !path.is_file() {
            return Ok(Self::single(timeline));
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| CliError::failed(format!("reading {}", path.display()), &e))?;
        Self::from_history(timeline, &text)
            .map_err(|why| CliError::message(format!("{}: {why}", path.display())))
    }

    fn from_history(timeline: u32, text: &str) -> Result<Self, String> {
        let entries = parse_timeline_history(text).map_err(|e| e.to_string())?;
        let mut ranges = Vec::with_capacity(entries.len() + 1);
        let mut begin = Lsn::INVALID;
        let mut last_timeline = 0;
        for entry in &entries {
            if entry.timeline <= last_timeline || entry.timeline >= timeline {
                return Err(format!(
                    "timeline {} is out of sequence (timeline IDs must be increasing, below \
                     {timeline})",
                    entry.timeline
                ));
            }
            if entry.switchpoint < begin {
                return Err(format!(
                    "the switch point {} of timeline {} precedes the one before it",
                    entry.switchpoint, entry.timeline
                ));
            }
            ranges.push(TimelineRange {
                timeline: entry.timeline,
                begin,
                end: Some(entry.switchpoint),
            });
            begin = entry.switchpoint;
            last_timeline = entry.timeline;
        }
        ranges.push(TimelineRange {
            timeline,
            begin,
            end: None,
        });
        ranges.reverse();
        Ok(Self { ranges })
    }

    /// The requested (newest) timeline.
    pub(crate) fn newest(&self) -> u32 {
        self.ranges[0].timeline
    }

    /// The timelines whose files may hold segment `number`, newest first: those that began
    /// before the segment ends and ended after it starts.
    pub(crate) fn for_segment(
        &self,
        number: u64,
        size: WalSegmentSize,
    ) -> impl Iterator<Item = u32> + '_ {
        let start = size.segment_start_lsn(number).unwrap_or(Lsn::MAX);
        let end = size.segment_start_lsn(number + 1).unwrap_or(Lsn::MAX);
        self.ranges
            .iter()
            .filter(move |r| r.begin < end && r.end.is_none_or(|e| e > start))
            .map(|r| r.timeline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(t: &Timelines, number: u64) -> Vec<u32> {
        let size = WalSegmentSize::new(16 << 20).unwrap();
        t.for_segment(number, size).collect()
    }

    #[test]
    fn segments_come_from_the_newest_timeline_covering_them() {
        // Timeline 1 ended at 0/3000100 (inside segment 3), timeline 2 at 0/5000000 (the
        // start of segment 5).
        let t = Timelines::from_history(
            3,
            "1\t0/3000100\tno recovery target specified\n\n# x\n2\t0/5000000\treason\n",
        )
        .unwrap();
        assert_eq!(t.newest(), 3);
        assert_eq!(segs(&t, 1), [1]);
        assert_eq!(segs(&t, 3), [2, 1]);
        assert_eq!(segs(&t, 4), [2]);
        assert_eq!(segs(&t, 5), [3]);
        assert_eq!(segs(&t, 9), [3]);
        assert_eq!(segs(&Timelines::single(4), 2), [4]);
    }

    #[test]
    fn malformed_histories_are_errors() {
        assert!(Timelines::from_history(2, "2\t0/3000100\tx\n").is_err());
        assert!(Timelines::from_history(3, "2\t0/1\tx\n1\t0/2\tx\n").is_err());
        assert!(Timelines::from_history(3, "1\t0/5\tx\n2\t0/2\tx\n").is_err());
        assert!(Timelines::from_history(3, "1\tnot-an-lsn\n").is_err());
    }
}
