//! Counters and gauges through the `metrics` facade: free when no recorder is installed
//! (each handle is then a no-op), one atomic operation each otherwise.
//!
//! | name | kind | meaning |
//! |---|---|---|
//! | `walstream_events_total` | counter | events delivered to the application |
//! | `walstream_errors_total` | counter | errors that ended a stream |
//! | `walstream_frames_total` | counter | CopyData frames received |
//! | `walstream_bytes_total` | counter | CopyData bytes received |
//! | `walstream_status_updates_total` | counter | standby status updates sent |
//! | `walstream_reconnects_total` | counter | reconnects after a transient failure |
//! | `walstream_replays_dropped_total` | counter | replayed transactions dropped after a reconnect (already reported processed) |
//! | `walstream_received_lsn` | gauge | highest WAL position received |
//! | `walstream_flushed_lsn` | gauge | flush position last sent |
//! | `walstream_applied_lsn` | gauge | apply position last sent |
//! | `walstream_lag_bytes` | gauge | received − flushed |
//! | `walstream_backpressured` | gauge | 1 while reading is paused for the application |
//!
//! Every metric carries a `slot` label.

use metrics::{Counter, Gauge, counter, gauge};
use pg_walstream_codec::Lsn;
use pg_walstream_codec::replication::StandbyStatusUpdate;

use crate::error::Error;

/// The metric handles of one stream.
pub(crate) struct StreamMetrics {
    events: Counter,
    errors: Counter,
    frames: Counter,
    bytes: Counter,
    status_updates: Counter,
    reconnects: Counter,
    received: Gauge,
    flushed: Gauge,
    applied: Gauge,
    lag: Gauge,
    backpressured: Gauge,
}

impl StreamMetrics {
    pub(crate) fn new(slot: &str) -> Self {
        let slot = slot.to_owned();
        StreamMetrics {
            events: counter!("walstream_events_total", "slot" => slot.clone()),
            errors: counter!("walstream_errors_total", "slot" => slot.clone()),
            frames: counter!("walstream_frames_total", "slot" => slot.clone()),
            bytes: counter!("walstream_bytes_total", "slot" => slot.clone()),
            status_updates: counter!("walstream_status_updates_total", "slot" => slot.clone()),
            reconnects: counter!("walstream_reconnects_total", "slot" => slot.clone()),
            received: gauge!("walstream_received_lsn", "slot" => slot.clone()),
            flushed: gauge!("walstream_flushed_lsn", "slot" => slot.clone()),
            applied: gauge!("walstream_applied_lsn", "slot" => slot.clone()),
            lag: gauge!("walstream_lag_bytes", "slot" => slot.clone()),
            backpressured: gauge!("walstream_backpressured", "slot" => slot),
        }
    }

    /// A batch of `events` events was handed over.
    pub(crate) fn on_events(&mut self, events: usize) {
        self.events.increment(events as u64);
    }

    /// The stream failed with `error`.
    pub(crate) fn on_error(&mut self, error: &Error) {
        tracing::warn!(%error, "replication stream failed");
        self.errors.increment(1);
    }

    pub(crate) fn on_reconnect(&mut self) {
        self.reconnects.increment(1);
    }

    /// One read of `frames` frames, `bytes` bytes in all.
    pub(crate) fn on_frames(&mut self, frames: usize, bytes: usize) {
        self.frames.increment(frames as u64);
        self.bytes.increment(bytes as u64);
    }

    pub(crate) fn on_status(&mut self, update: &StandbyStatusUpdate) {
        tracing::trace!(
            write = %update.write,
            flush = %update.flush,
            apply = %update.apply,
            reply_requested = update.reply_requested,
            "status update"
        );
        self.status_updates.increment(1);
        self.flushed.set(as_gauge(update.flush.0));
        self.applied.set(as_gauge(update.apply.0));
        self.lag.set(as_gauge(
            update.write.checked_distance(update.flush).unwrap_or(0),
        ));
    }

    pub(crate) fn on_wait(&mut self, backpressured: bool, received: Lsn) {
        self.received.set(as_gauge(received.0));
        self.backpressured
            .set(if backpressured { 1.0 } else { 0.0 });
    }
}

/// The counter of replayed transactions the stream drops (kept by the receiving side, not the
/// driver: the replay filter runs where the application takes events).
pub(crate) fn replays_dropped(slot: &str) -> Counter {
    counter!("walstream_replays_dropped_total", "slot" => slot.to_owned())
}

/// Gauges are `f64`: LSNs above 2^53 lose their lowest bits, which is fine for monitoring.
#[allow(clippy::cast_precision_loss)]
fn as_gauge(value: u64) -> f64 {
    value as f64
}

#[cfg(test)]
mod tests {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};
    use pg_walstream_codec::PgTimestamp;

    use super::*;
    use crate::error::Error;

    #[test]
    fn counters_and_gauges_reach_an_installed_recorder() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let mut m = metrics::with_local_recorder(&recorder, || StreamMetrics::new("s1"));
        m.on_frames(2, 150);
        m.on_error(&Error::ServerEnded);
        m.on_status(&StandbyStatusUpdate {
            write: Lsn(0x300),
            flush: Lsn(0x100),
            apply: Lsn(0x100),
            send_time: PgTimestamp(0),
            reply_requested: false,
        });
        m.on_wait(true, Lsn(0x300));
        let values: std::collections::HashMap<String, DebugValue> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| {
                let key = key.key();
                assert!(key.labels().any(|l| l.key() == "slot" && l.value() == "s1"));
                (key.name().to_owned(), value)
            })
            .collect();
        let counter = |name: &str| match values.get(name) {
            Some(DebugValue::Counter(n)) => *n,
            other => panic!("{name}: {other:?}"),
        };
        let gauge = |name: &str| match values.get(name) {
            Some(DebugValue::Gauge(g)) => g.into_inner(),
            other => panic!("{name}: {other:?}"),
        };
        assert_eq!(counter("walstream_frames_total"), 2);
        assert_eq!(counter("walstream_bytes_total"), 150);
        assert_eq!(counter("walstream_errors_total"), 1);
        assert_eq!(counter("walstream_events_total"), 0);
        assert_eq!(counter("walstream_status_updates_total"), 1);
        assert!((gauge("walstream_lag_bytes") - 512.0).abs() < f64::EPSILON);
        assert!((gauge("walstream_flushed_lsn") - 256.0).abs() < f64::EPSILON);
        assert!((gauge("walstream_backpressured") - 1.0).abs() < f64::EPSILON);
        assert!((gauge("walstream_received_lsn") - 768.0).abs() < f64::EPSILON);
    }
}
