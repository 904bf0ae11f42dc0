//! The delivery contract's replay rule on the application side: after a reconnect, a
//! transaction the application already reported as processed is not delivered again.
//!
//! The new connection resumes where the application's processed position stood when it was
//! dialled. Reports made after that — while the application was still working through events
//! of the old connection — cannot reach the server's start position, so the server replays
//! those transactions. This filter drops them as the server itself would have had the resume
//! position been the later report: decode.c skips a transaction whose commit record starts
//! before `start_decoding_at` (`SnapBuildXactNeedsSkip(…, buf->origptr)`), and a Commit's
//! record starts at its `commit_lsn`, the Begin's `final_lsn`, which is below the reported
//! `end_lsn` of every transaction the application processed.

use metrics::Counter;
use pg_walstream_codec::Lsn;

use crate::events::EventKind;

/// Which events after a [`EventKind::Reconnected`] are replays of processed transactions.
#[derive(Debug)]
pub(crate) struct ReplayFilter {
    /// A reconnect happened and no transaction of the new connection was delivered yet.
    armed: bool,
    /// Inside a transaction that is dropped, up to and including its Commit.
    skipping: bool,
    /// Transactions dropped so far.
    dropped: u64,
    /// `walstream_replays_dropped_total`, counted with `dropped`.
    metric: Counter,
}

impl ReplayFilter {
    /// A filter counting the transactions it drops into `metric` as well.
    pub(crate) fn new(metric: Counter) -> Self {
        ReplayFilter {
            armed: false,
            skipping: false,
            dropped: 0,
            metric,
        }
    }

    /// How many replayed transactions were dropped, whole, since the stream started.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Whether `kind` goes to the application; `processed` gives the processed position now
    /// (read only at a Begin after a reconnect, never on the normal path).
    pub(crate) fn admits(&mut self, kind: &EventKind, processed: impl FnOnce() -> Lsn) -> bool {
        match kind {
            EventKind::Reconnected(_) => {
                self.armed = true;
                self.skipping = false;
                true
            }
            EventKind::Commit(_) if self.skipping => {
                self.skipping = false;
                false
            }
            _ if self.skipping => false,
            EventKind::Begin(begin) if self.armed => {
                if begin.final_lsn < processed() {
                    self.skipping = true;
                    self.dropped += 1;
                    self.metric.increment(1);
                    false
                } else {
                    // Commits come in commit order: no later one can be a replay.
                    self.armed = false;
                    true
                }
            }
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use pg_walstream_codec::pgoutput::{Begin, Commit};
    use pg_walstream_codec::{Lsn, PgTimestamp, Xid};

    use metrics::Counter;

    use super::ReplayFilter;
    use crate::events::{EventKind, Reconnected};

    fn begin(final_lsn: u64) -> EventKind {
        EventKind::Begin(Begin {
            final_lsn: Lsn(final_lsn),
            commit_time: PgTimestamp(0),
            xid: Xid(7),
        })
    }

    fn commit(commit_lsn: u64, end_lsn: u64) -> EventKind {
        EventKind::Commit(Commit {
            flags: 0,
            commit_lsn: Lsn(commit_lsn),
            end_lsn: Lsn(end_lsn),
            commit_time: PgTimestamp(0),
        })
    }

    fn reconnected() -> EventKind {
        EventKind::Reconnected(Reconnected {
            attempt: 1,
            resume_lsn: Lsn(0x10),
            downtime: Duration::ZERO,
        })
    }

    #[test]
    fn without_a_reconnect_everything_is_delivered() {
        let mut filter = ReplayFilter::new(Counter::noop());
        for kind in [begin(0x100), commit(0x100, 0x130)] {
            assert!(filter.admits(&kind, || Lsn(0x500)));
        }
    }

    #[test]
    fn the_processed_position_is_not_read_without_a_reconnect() {
        let mut filter = ReplayFilter::new(Counter::noop());
        for kind in [begin(0x100), commit(0x100, 0x130)] {
            assert!(filter.admits(&kind, || panic!("read on the normal path")));
        }
    }

    #[test]
    fn processed_transactions_replayed_after_a_reconnect_are_dropped_whole() {
        let mut filter = ReplayFilter::new(Counter::noop());
        let processed = Lsn(0x230); // the end of the second transaction
        assert!(filter.admits(&reconnected(), || processed));
        // The first two were processed after the dial: dropped, Begin through Commit.
        for kind in [begin(0x100), commit(0x100, 0x130), begin(0x200)] {
            assert!(!filter.admits(&kind, || processed), "{kind:?}");
        }
        assert!(!filter.admits(&commit(0x200, 0x230), || processed));
        // The third was not: delivered, and so is everything after it.
        assert!(filter.admits(&begin(0x230), || processed));
        assert!(filter.admits(&commit(0x230, 0x260), || processed));
        assert!(filter.admits(&begin(0x100), || processed), "disarmed");
        assert_eq!(filter.dropped(), 2, "both replays counted, nothing else");
    }

    #[test]
    fn a_new_reconnect_re_arms_and_ends_a_dropped_transaction() {
        let mut filter = ReplayFilter::new(Counter::noop());
        assert!(filter.admits(&reconnected(), || Lsn(0x300)));
        assert!(!filter.admits(&begin(0x100), || Lsn(0x300)));
        // Cut inside the dropped transaction: its replay comes after the next Reconnected.
        assert!(filter.admits(&reconnected(), || Lsn(0x300)));
        assert!(!filter.admits(&begin(0x100), || Lsn(0x300)));
        assert!(!filter.admits(&commit(0x100, 0x130), || Lsn(0x300)));
        assert!(filter.admits(&begin(0x300), || Lsn(0x300)));
        assert_eq!(
            filter.dropped(),
            2,
            "the cut one is counted at each of its two drops"
        );
    }

    #[test]
    fn drops_reach_the_metric() {
        let recorder = metrics_util::debugging::DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let mut filter = metrics::with_local_recorder(&recorder, || {
            ReplayFilter::new(metrics::counter!("walstream_replays_dropped_total"))
        });
        for kind in [reconnected(), begin(0x100), commit(0x100, 0x130)] {
            filter.admits(&kind, || Lsn(0x200));
        }
        let counted: Vec<_> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| (key.key().name().to_owned(), value))
            .collect();
        assert_eq!(
            counted,
            [(
                "walstream_replays_dropped_total".to_owned(),
                metrics_util::debugging::DebugValue::Counter(1)
            )]
        );
    }
}
