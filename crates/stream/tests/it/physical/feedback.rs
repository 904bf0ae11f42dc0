//! Hot standby feedback sets the slot's xmin and releases it; the slot's restart_lsn follows
//! only what the writer made durable.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pg_walstream_codec::{Lsn, WalSegmentSize, Xid};
use pg_walstream_stream::wal_writer::{SyncPolicy, WalWriter, WalWriterOptions};
use pg_walstream_stream::{HotStandbyXmin, PhysicalStream, ReceiveEnd, receive_wal};
use pg_walstream_testkit::{TestServer, servers, unique_name};
use tokio::sync::Notify;

use super::{config, lsn, physical_slot};

async fn slot_value(admin: &tokio_postgres::Client, column: &str, slot: &str) -> Option<String> {
    admin
        .query_one(
            &format!("SELECT {column}::text FROM pg_replication_slots WHERE slot_name = $1"),
            &[&slot],
        )
        .await
        .unwrap()
        .get(0)
}

async fn eventually<F: Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Drops `slot` once the walsender of the stopped stream has released it (it exits just
/// after our Terminate; until then the slot is "active", SQLSTATE 55006).
async fn drop_slot(admin: &tokio_postgres::Client, slot: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match admin
            .execute("SELECT pg_drop_replication_slot($1)", &[&slot])
            .await
        {
            Ok(_) => return,
            Err(error)
                if error.code() == Some(&tokio_postgres::error::SqlState::OBJECT_IN_USE)
                    && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => panic!("dropping {slot}: {error}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_standby_feedback_holds_and_releases_the_slot_xmin() {
    for server in servers() {
        let version = server.version();
        let (admin, slot) = physical_slot(server, "hs").await;
        let full: i64 = admin
            .query_one("SELECT txid_current()", &[])
            .await
            .unwrap()
            .get(0);
        let xmin = HotStandbyXmin {
            xmin: Xid(full as u32),
            xmin_epoch: (full >> 32) as u32,
            catalog_xmin: Xid(full as u32),
            catalog_xmin_epoch: (full >> 32) as u32,
        };
        let stream = PhysicalStream::connect(
            config(server)
                .slot(&slot)
                .hot_standby_interval(Duration::from_millis(200))
                .build()
                .unwrap(),
        )
        .await
        .unwrap_or_else(|e| panic!("PG {version}: {e}"));
        assert_eq!(
            slot_value(&admin, "xmin", &slot).await,
            None,
            "PG {version}: no xmin before"
        );
        stream.feedback().set_hot_standby(Some(xmin));
        let expected = (full as u32).to_string();
        eventually(&format!("PG {version}: slot xmin {expected}"), || async {
            slot_value(&admin, "xmin", &slot).await.as_deref() == Some(expected.as_str())
        })
        .await;
        assert_eq!(
            slot_value(&admin, "catalog_xmin", &slot).await.as_deref(),
            Some(expected.as_str()),
            "PG {version}: catalog_xmin"
        );
        stream.feedback().set_hot_standby(None);
        eventually(&format!("PG {version}: slot xmin released"), || async {
            slot_value(&admin, "xmin", &slot).await.is_none()
        })
        .await;
        stream.stop().await.unwrap();
        drop_slot(&admin, &slot).await;
    }
}

/// Streams into a writer with `sync` until the written position passes the server's flush
/// position after some writes; checks the slot never passes the reported flush position.
async fn stream_with_policy(server: &TestServer, sync: SyncPolicy) -> (Lsn, Lsn, Lsn) {
    let version = server.version();
    let (admin, slot) = physical_slot(server, "sync").await;
    let created: Lsn = slot_value(&admin, "restart_lsn", &slot)
        .await
        .unwrap()
        .parse()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut options = WalWriterOptions::new(WalSegmentSize::DEFAULT);
    options.sync = sync;
    let mut writer = WalWriter::new(dir.path(), options).unwrap();
    let stream = PhysicalStream::connect(config(server).slot(&slot).build().unwrap())
        .await
        .unwrap_or_else(|e| panic!("PG {version}: {e}"));
    assert_eq!(stream.info().segment_size, WalSegmentSize::DEFAULT);
    let feedback = stream.feedback().clone();
    let stop = Arc::new(Notify::new());
    let task = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let outcome = receive_wal(stream, &mut writer, None, stop.notified(), |_| {}).await;
            (outcome, writer)
        })
    };
    let table = unique_name("sync_t");
    admin
        .batch_execute(&format!(
            "CREATE TABLE {table} (id int); INSERT INTO {table} SELECT generate_series(1, 1000)"
        ))
        .await
        .unwrap();
    let target = lsn(&admin, "SELECT pg_current_wal_flush_lsn()::text").await;
    eventually(&format!("PG {version}: {target} written"), || async {
        let restart = slot_value(&admin, "restart_lsn", &slot).await;
        // Read after the slot: what was reported before the server could have seen it.
        let reported = feedback.flushed_lsn();
        let restart: Lsn = restart.map_or(Lsn::INVALID, |t| t.parse().unwrap());
        // Until the server applies a first report, the slot keeps its creation position.
        assert!(
            restart <= reported || restart == created,
            "PG {version}: slot restart_lsn {restart} passed the flushed position {reported}"
        );
        let done = feedback.written_lsn() >= target;
        if sync == SyncPolicy::Synchronous {
            // The slot itself advanced mid-segment, to what was fsynced.
            done && reported >= target && restart >= target
        } else {
            done
        }
    })
    .await;
    let restart: Lsn = slot_value(&admin, "restart_lsn", &slot)
        .await
        .unwrap()
        .parse()
        .unwrap();
    let flushed = feedback.flushed_lsn();
    assert!(
        restart <= flushed || restart == created,
        "PG {version}: {restart} > {flushed}"
    );
    stop.notify_one();
    let (outcome, _writer) = task.await.unwrap();
    assert_eq!(outcome.unwrap(), ReceiveEnd::Stopped, "PG {version}");
    drop_slot(&admin, &slot).await;
    (target, flushed, restart)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_lsn_follows_only_fsynced_wal() {
    for server in servers() {
        let version = server.version();
        let (target, flushed, restart) = stream_with_policy(server, SyncPolicy::Synchronous).await;
        assert!(
            flushed >= target,
            "PG {version}: synchronous flush reached {target}"
        );
        assert!(
            restart >= target,
            "PG {version}: slot advanced to {restart}"
        );
        let (target, flushed, _) = stream_with_policy(server, SyncPolicy::PerSegment).await;
        // Per segment, only segment boundaries are ever reported as flushed.
        assert!(
            flushed.is_segment_start(WalSegmentSize::DEFAULT),
            "PG {version}: per-segment flush {flushed} (target {target})"
        );
    }
}
