//! Counters and gauges of a physical stream through the `metrics` facade (free without a
//! recorder); the table is in [`PhysicalStream`](crate::PhysicalStream)'s documentation.

use metrics::{Counter, Gauge, counter, gauge};
use pg_walstream_codec::Lsn;
use pg_walstream_codec::replication::FrontendMessage;

use crate::error::Error;

/// The metric handles of one physical stream (cheap to clone: each handle is shared).
#[derive(Clone)]
pub(crate) struct PhysicalMetrics {
    bytes: Counter,
    segments: Counter,
    status_updates: Counter,
    hot_standby: Counter,
    timeline_switches: Counter,
    reconnects: Counter,
    errors: Counter,
    received: Gauge,
    flushed: Gauge,
    lag: Gauge,
    server_lag: Gauge,
    timeline: Gauge,
}

impl std::fmt::Debug for PhysicalMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PhysicalMetrics")
    }
}

impl PhysicalMetrics {
    /// Handles labelled with `slot` (`""` without a slot).
    pub(crate) fn new(slot: &str) -> Self {
        let slot = slot.to_owned();
        let c = |name: &'static str| counter!(name, "slot" => slot.clone());
        let g = |name: &'static str| gauge!(name, "slot" => slot.clone());
        PhysicalMetrics {
            bytes: c("walstream_physical_bytes_total"),
            segments: c("walstream_physical_segments_total"),
            status_updates: c("walstream_physical_status_updates_total"),
            hot_standby: c("walstream_physical_hot_standby_feedback_total"),
            timeline_switches: c("walstream_physical_timeline_switches_total"),
            reconnects: c("walstream_physical_reconnects_total"),
            errors: c("walstream_physical_errors_total"),
            received: g("walstream_physical_received_lsn"),
            flushed: g("walstream_physical_flushed_lsn"),
            lag: g("walstream_physical_lag_bytes"),
            server_lag: g("walstream_physical_server_lag_bytes"),
            timeline: g("walstream_physical_timeline"),
        }
    }

    /// The stream started on `timeline`; `reconnect` when it replaces one that failed.
    pub(crate) fn on_start(&self, timeline: u32, reconnect: bool) {
        self.timeline.set(f64::from(timeline));
        if reconnect {
            self.reconnects.increment(1);
        }
    }

    /// `bytes` of WAL arrived.
    pub(crate) fn on_wal(&self, bytes: u64) {
        self.bytes.increment(bytes);
    }

    /// A message went to the server.
    pub(crate) fn on_transmit(&self, message: &FrontendMessage) {
        match message {
            FrontendMessage::StandbyStatusUpdate(update) => {
                self.status_updates.increment(1);
                self.flushed.set(as_gauge(update.flush.0));
                self.lag.set(as_gauge(
                    update.write.checked_distance(update.flush).unwrap_or(0),
                ));
            }
            FrontendMessage::HotStandbyFeedback(_) => self.hot_standby.increment(1),
        }
    }

    /// The stream moved on to `timeline`.
    pub(crate) fn on_timeline_switch(&self, timeline: u32) {
        self.timeline_switches.increment(1);
        self.timeline.set(f64::from(timeline));
    }

    /// `count` segment files were completed by [`receive_wal`](crate::receive_wal).
    pub(crate) fn on_segments(&self, count: u64) {
        self.segments.increment(count);
    }

    /// Before waiting: the highest position received and the server's latest WAL end.
    pub(crate) fn on_wait(&self, received: Lsn, server_wal_end: Lsn) {
        self.received.set(as_gauge(received.0));
        self.server_lag.set(as_gauge(
            server_wal_end.checked_distance(received).unwrap_or(0),
        ));
    }

    /// The stream failed.
    pub(crate) fn on_error(&self, error: &Error) {
        tracing::warn!(%error, "physical replication stream failed");
        self.errors.increment(1);
    }
}

/// Gauges are `f64`: LSNs above 2^53 lose their lowest bits, which is fine for monitoring.
#[allow(clippy::cast_precision_loss)]
fn as_gauge(value: u64) -> f64 {
    value as f64
}
