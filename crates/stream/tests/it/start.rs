//! Starting: exported snapshots, the raw API, and configuration errors caught before START.

use std::time::Duration;

use pg_walstream_stream::{
    ConfigError, CreateSlotOptions, Error, LogicalConfig, LogicalStream, PreparedStream, Streaming,
};
use pg_walstream_testkit::servers;

use crate::support::{Fixture, backend};

#[tokio::test]
async fn exported_snapshot_then_raw_frames_from_the_slot() {
    for server in servers() {
        let v = server.version();
        let fx = Fixture::new(
            server,
            "snapshot",
            "CREATE TABLE t (id int PRIMARY KEY)",
            "FOR TABLE t",
        )
        .await;
        fx.exec(&["INSERT INTO t SELECT generate_series(1, 3)"])
            .await;
        let config = LogicalConfig::builder()
            .conninfo(&fx.conninfo)
            .backend(backend())
            .slot(&fx.slot)
            .publication("pub")
            .create_slot_if_missing(CreateSlotOptions {
                temporary: true,
                export_snapshot: true,
                failover: false,
            })
            .build()
            .unwrap();
        let prepared = PreparedStream::connect(config)
            .await
            .unwrap_or_else(|e| panic!("PG {v}: {e}"));
        let snapshot = prepared
            .snapshot_name()
            .unwrap_or_else(|| panic!("PG {v}: no snapshot"))
            .to_owned();
        assert!(prepared.created_slot().is_some(), "PG {v}");
        // A row committed after the slot: not in the snapshot, but in the stream.
        fx.exec(&["INSERT INTO t VALUES (4)"]).await;
        let copy = server.admin(&fx.admin_db().await).await;
        copy.batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ; SET TRANSACTION SNAPSHOT '{snapshot}'"
        ))
        .await
        .unwrap_or_else(|e| panic!("PG {v}: import snapshot: {e}"));
        let count: i64 = copy
            .query_one("SELECT count(*) FROM t", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(
            count, 3,
            "PG {v}: the snapshot sees the rows before the slot"
        );
        copy.batch_execute("COMMIT").await.unwrap();

        let mut stream = prepared.start().await.unwrap();
        let mut tags = String::new();
        let mut ack = None;
        while ack.is_none() {
            let frame = tokio::time::timeout(Duration::from_secs(30), stream.next_frame())
                .await
                .unwrap_or_else(|_| panic!("PG {v}: no frames"))
                .unwrap()
                .unwrap_or_else(|e| panic!("PG {v}: {e}"));
            tags.push(char::from(frame.xlog.data[0]));
            // The server sends Relation (and Type) frames with 0/0 positions.
            let tag = frame.xlog.data[0];
            assert_eq!(
                tag == b'R',
                frame.xlog.wal_start.0 == 0,
                "PG {v}: {}",
                char::from(tag)
            );
            ack = frame.ack_lsn;
        }
        assert_eq!(tags, "BRIC", "PG {v}: only the row after the snapshot");
        stream.feedback().processed(ack.unwrap());
        stream.stop().await.unwrap();
    }
}

#[tokio::test]
async fn unsupported_options_fail_before_start() {
    for server in servers() {
        let v = server.version();
        let fx = Fixture::new(
            server,
            "preflight",
            "CREATE TABLE t (id int PRIMARY KEY)",
            "FOR TABLE t",
        )
        .await;
        let attempts = [
            (fx.config().two_phase(true), 15, "two-phase"),
            (fx.config().streaming(Streaming::Parallel), 16, "parallel"),
            (
                fx.config().origin(pg_walstream_stream::OriginFilter::None),
                16,
                "origin",
            ),
        ];
        for (config, needs, what) in attempts {
            let result = LogicalStream::connect(config.build().unwrap()).await;
            if v < needs {
                assert!(
                    matches!(result, Err(Error::Config(ConfigError::Unsupported { needs: n, .. })) if n == needs),
                    "PG {v} {what}: {result:?}"
                );
            } else {
                let stream = result.unwrap_or_else(|e| panic!("PG {v} {what}: {e}"));
                stream.stop().await.unwrap();
            }
        }
        // Nothing was created by the failed attempts before the first success.
        let missing = LogicalConfig::builder()
            .conninfo(&fx.conninfo)
            .backend(backend())
            .slot("no_such_slot_here")
            .publication("pub")
            .build()
            .unwrap();
        let result = LogicalStream::connect(missing).await;
        assert!(
            matches!(result, Err(Error::SlotNotFound { .. })),
            "PG {v}: {result:?}"
        );
    }
}

/// `CreateSlotOptions::failover` creates a failover slot on 17+ and is refused before
/// anything is sent on older servers.
#[tokio::test]
async fn failover_slot_on_17_and_later_refused_before() {
    for server in servers() {
        let v = server.version();
        let fx = Fixture::new(
            server,
            "failover",
            "CREATE TABLE t (id int PRIMARY KEY)",
            "FOR TABLE t",
        )
        .await;
        let config = fx
            .config()
            .create_slot_if_missing(CreateSlotOptions {
                failover: true,
                ..CreateSlotOptions::default()
            })
            .build()
            .unwrap();
        let outcome = PreparedStream::connect(config).await;
        if v >= 17 {
            let prepared = outcome.unwrap_or_else(|e| panic!("PG {v}: {e}"));
            assert!(prepared.created_slot().is_some(), "PG {v}");
            drop(prepared);
            let failover: bool = fx
                .admin
                .query_one(
                    "SELECT failover FROM pg_replication_slots WHERE slot_name = $1",
                    &[&fx.slot],
                )
                .await
                .unwrap_or_else(|e| panic!("PG {v}: {e}"))
                .get(0);
            assert!(failover, "PG {v}: not a failover slot");
        } else {
            let error = outcome.err().unwrap_or_else(|| panic!("PG {v}: accepted"));
            assert!(
                matches!(
                    &error,
                    Error::Slot(pg_walstream_slot::SlotError::Unsupported { needs: 17, .. })
                ),
                "PG {v}: {error}"
            );
        }
    }
}
