//! The physical stream's metrics move: WAL bytes, completed segments, status updates, hot
//! standby feedback, reconnects, received position and timeline.

// Gauges are f64; test LSNs are far below 2^52.
#![allow(clippy::cast_precision_loss)]

use std::collections::HashMap;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use pg_walstream_codec::Xid;
use pg_walstream_stream::wal_writer::{WalWriter, WalWriterOptions};
use pg_walstream_stream::{HotStandbyXmin, PhysicalStart, PhysicalStream};
use pg_walstream_testkit::servers;

use super::{config, lsn, physical_slot, private_server, receive_until, segment_size, write_load};

/// A current-thread runtime: the stream's metric handles are created on this thread, where
/// the local recorder is installed, and keep reporting to it from the driver task.
#[tokio::test]
async fn physical_metrics_count_what_the_stream_did() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = ::metrics::set_default_local_recorder(&recorder);
    for shared in servers() {
        let version = shared.version();
        let server = private_server(version);
        let (admin, slot) = physical_slot(&server, "pm").await;
        let start = lsn(&admin, "SELECT pg_current_wal_flush_lsn()::text")
            .await
            .segment_start(segment_size());
        let stream = PhysicalStream::connect(
            config(&server)
                .slot(&slot)
                .reconnect(true)
                .start(PhysicalStart::At {
                    lsn: start,
                    timeline: None,
                })
                .build()
                .unwrap(),
        )
        .await
        .unwrap_or_else(|e| panic!("PG {version}: start: {e}"));
        let full: i64 = admin
            .query_one("SELECT txid_current()", &[])
            .await
            .unwrap()
            .get(0);
        stream.feedback().set_hot_standby(Some(HotStandbyXmin {
            xmin: Xid(full as u32),
            xmin_epoch: (full >> 32) as u32,
            ..HotStandbyXmin::default()
        }));
        write_load(&admin, "metrics_load", 3).await;
        let end = lsn(&admin, "SELECT pg_current_wal_flush_lsn()::text").await;
        let dir = tempfile::tempdir().unwrap();
        let mut writer = WalWriter::new(dir.path(), WalWriterOptions::new(segment_size())).unwrap();
        receive_until(stream, &mut writer, end, &format!("PG {version}")).await;

        let values: HashMap<String, DebugValue> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter(|(key, _, _, _)| {
                key.key()
                    .labels()
                    .any(|l| l.key() == "slot" && l.value() == slot)
            })
            .map(|(key, _, _, value)| (key.key().name().to_owned(), value))
            .collect();
        let counter = |name: &str| match values.get(name) {
            Some(DebugValue::Counter(n)) => *n,
            other => panic!("PG {version}: {name}: {other:?}"),
        };
        let gauge = |name: &str| match values.get(name) {
            Some(DebugValue::Gauge(g)) => g.into_inner(),
            other => panic!("PG {version}: {name}: {other:?}"),
        };
        let received = end.checked_distance(start).unwrap();
        assert!(
            counter("walstream_physical_bytes_total") >= received,
            "PG {version}: bytes"
        );
        assert!(writer.completed_segments() >= 2, "PG {version}");
        assert_eq!(
            counter("walstream_physical_segments_total"),
            writer.completed_segments(),
            "PG {version}: segments"
        );
        assert!(
            counter("walstream_physical_status_updates_total") >= 1,
            "PG {version}: status updates"
        );
        assert!(
            counter("walstream_physical_hot_standby_feedback_total") >= 1,
            "PG {version}: hot standby feedback"
        );
        assert_eq!(counter("walstream_physical_reconnects_total"), 1);
        assert_eq!(counter("walstream_physical_timeline_switches_total"), 0);
        assert_eq!(counter("walstream_physical_errors_total"), 0);
        assert!(gauge("walstream_physical_received_lsn") >= end.0 as f64);
        assert!(gauge("walstream_physical_flushed_lsn") >= start.0 as f64);
        assert!((gauge("walstream_physical_timeline") - 1.0).abs() < f64::EPSILON);
    }
}
