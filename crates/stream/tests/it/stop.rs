//! Stop at an LSN, graceful stop, and the crate documentation's example.

use std::time::Duration;

use pg_walstream_codec::Lsn;
use pg_walstream_stream::{CreateSlotOptions, EventKind, LogicalConfig, LogicalStream, Streaming};
use pg_walstream_testkit::servers;

use crate::support::{Fixture, text};

#[tokio::test]
async fn stop_at_lsn_delivers_exactly_the_transactions_before_it() {
    for server in servers() {
        let v = server.version();
        // At the WAL position right after the second commit, and one byte before it, inside
        // the second transaction's commit record (the crossing transaction).
        for back_off in [0, 1] {
            let fx = Fixture::new(
                server,
                "stopat",
                "CREATE TABLE t (id int PRIMARY KEY)",
                "FOR TABLE t",
            )
            .await;
            fx.exec(&[&format!(
                "SELECT pg_create_logical_replication_slot('{}', 'pgoutput')",
                fx.slot
            )])
            .await;
            fx.exec(&["INSERT INTO t VALUES (1)", "INSERT INTO t VALUES (2)"])
                .await;
            // The second commit record's end, from the slot itself: `pg_current_wal_lsn()`
            // may already include WAL that other tests or the server wrote after it.
            let commit_ends = fx.commit_end_lsns().await;
            assert_eq!(commit_ends.len(), 2, "PG {v}: {commit_ends:?}");
            let stop = Lsn(commit_ends[1].0 - back_off);
            fx.exec(&["INSERT INTO t VALUES (3)", "INSERT INTO t VALUES (4)"])
                .await;
            let mut stream = fx.start(fx.config().stop_at(stop)).await;
            let mut ids = Vec::new();
            let mut commits = Vec::new();
            while let Some(event) =
                tokio::time::timeout(Duration::from_secs(30), stream.next_event())
                    .await
                    .unwrap_or_else(|_| panic!("PG {v}: stream did not stop at {stop}"))
            {
                match event.unwrap_or_else(|e| panic!("PG {v}: {e}")).kind() {
                    EventKind::Insert(c) => ids.push(text(&c.new_tuple().unwrap(), 0).unwrap()),
                    EventKind::Commit(c) => commits.push(*c),
                    _ => {}
                }
            }
            assert_eq!(ids, ["1", "2"], "PG {v}: stop at {stop}");
            let last = commits.last().unwrap();
            assert!(last.commit_lsn < stop, "PG {v}: {last:?} vs {stop}");
            if back_off == 1 {
                assert!(
                    last.end_lsn >= stop,
                    "PG {v}: the crossing transaction, {last:?} vs {stop}"
                );
            }
        }
    }
}

/// The crate documentation's example, against a real server.
#[tokio::test]
async fn crate_doc_example_runs() {
    let server = &servers()[0];
    let fx = Fixture::new(
        server,
        "doc",
        "CREATE TABLE t (id int PRIMARY KEY)",
        "FOR TABLE t",
    )
    .await;
    fx.exec(&["CREATE PUBLICATION app_pub FOR TABLE t"]).await;
    let config = LogicalConfig::builder()
        .conninfo(&fx.conninfo)
        .backend(crate::support::backend())
        .slot(&fx.slot)
        .publication("app_pub")
        .create_slot_if_missing(CreateSlotOptions::default())
        .build()
        .unwrap();
    let mut stream = LogicalStream::connect(config).await.unwrap();
    fx.exec(&["INSERT INTO t VALUES (7)"]).await;
    let feedback = stream.feedback().clone();
    let mut seen = Vec::new();
    while let Some(event) = stream.next_event().await {
        let event = event.unwrap();
        match event.kind() {
            EventKind::Insert(change) => {
                let table = change.relation().name();
                for (column, value) in change.new_row().into_iter().flatten() {
                    seen.push(format!("{table}.{} = {:?}", column.name, value.as_str()));
                }
            }
            EventKind::Commit(commit) => {
                feedback.processed(commit.end_lsn);
                break;
            }
            _ => {}
        }
    }
    assert_eq!(seen, ["t.id = Some(Ok(\"7\"))"]);
    stream.stop().await.unwrap();
}

/// Once the stop LSN is reached and every event was taken, the connection stays open until
/// the application stops. If it breaks meanwhile (here: the walsender is terminated), `stop`
/// must return that error promptly — the driver must neither hang nor spin on the broken
/// connection.
#[tokio::test]
async fn connection_lost_after_the_stop_lsn_is_reported_by_stop() {
    for server in servers() {
        let v = server.version();
        let fx = Fixture::new(
            server,
            "stoplost",
            "CREATE TABLE t (id int PRIMARY KEY)",
            "FOR TABLE t",
        )
        .await;
        fx.exec(&[&format!(
            "SELECT pg_create_logical_replication_slot('{}', 'pgoutput')",
            fx.slot
        )])
        .await;
        fx.exec(&["INSERT INTO t VALUES (1)"]).await;
        let stop = fx.current_lsn().await;
        fx.exec(&["INSERT INTO t VALUES (2)"]).await;
        let mut stream = fx.start(fx.config().stop_at(stop)).await;
        // Up to the crossing transaction's Commit, and not one poll further.
        loop {
            let event = tokio::time::timeout(Duration::from_secs(60), stream.next_event())
                .await
                .unwrap_or_else(|_| panic!("PG {v}: no commit"))
                .unwrap_or_else(|| panic!("PG {v}: ended before the commit"))
                .unwrap_or_else(|e| panic!("PG {v}: {e}"));
            if matches!(event.kind(), EventKind::Commit(_)) {
                break;
            }
        }
        let terminate = format!(
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots \
             WHERE slot_name = '{}' AND active_pid IS NOT NULL",
            fx.slot
        );
        fx.exec(&[&terminate]).await;
        let inactive = format!(
            "SELECT NOT active FROM pg_replication_slots WHERE slot_name = '{}'",
            fx.slot
        );
        let start = std::time::Instant::now();
        while !fx
            .admin
            .query_one(&inactive, &[])
            .await
            .expect("slot row")
            .get::<_, bool>(0)
        {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "PG {v}: still active"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let outcome = tokio::time::timeout(Duration::from_secs(60), stream.stop())
            .await
            .unwrap_or_else(|_| panic!("PG {v}: stop hangs after the connection was lost"));
        assert!(outcome.is_err(), "PG {v}: the lost connection is reported");
    }
}

/// A streamed transaction still open when the stop LSN is reached lies beyond the stop (it
/// commits later): the plain transaction committing after the stop is not delivered, and the
/// stream ends right after the crossing one.
#[tokio::test]
async fn stop_lsn_is_honoured_while_a_streamed_transaction_is_open() {
    for server in servers() {
        let v = server.version();
        let fx = Fixture::new(
            server,
            "stopstream",
            "CREATE TABLE t (id int PRIMARY KEY, pad text)",
            "FOR TABLE t",
        )
        .await;
        fx.exec(&[&format!(
            "SELECT pg_create_logical_replication_slot('{}', 'pgoutput')",
            fx.slot
        )])
        .await;
        // A large transaction (streamed: well above logical_decoding_work_mem = 64kB) stays
        // open on its own connection while two small ones commit.
        let db = fx.admin_db().await;
        let other = server.admin(&db).await;
        other
            .batch_execute(
                "BEGIN; INSERT INTO t SELECT g, repeat('x', 100) \
                 FROM generate_series(1000, 5999) g",
            )
            .await
            .unwrap_or_else(|e| panic!("PG {v}: {e}"));
        fx.exec(&["INSERT INTO t VALUES (1)"]).await;
        let stop = fx.current_lsn().await;
        fx.exec(&["INSERT INTO t VALUES (2)"]).await;
        other
            .batch_execute("COMMIT")
            .await
            .unwrap_or_else(|e| panic!("PG {v}: {e}"));
        let mut stream = fx
            .start(fx.config().streaming(Streaming::On).stop_at(stop))
            .await;
        let mut plain_ids = Vec::new();
        let mut streamed_blocks = 0;
        let mut in_block = false;
        while let Some(event) = tokio::time::timeout(Duration::from_secs(60), stream.next_event())
            .await
            .unwrap_or_else(|_| panic!("PG {v}: the stream did not stop at {stop}"))
        {
            match event.unwrap_or_else(|e| panic!("PG {v}: {e}")).kind() {
                EventKind::StreamStart(_) => {
                    in_block = true;
                    streamed_blocks += 1;
                }
                EventKind::StreamStop => in_block = false,
                EventKind::Insert(c) if !in_block => {
                    plain_ids.push(text(&c.new_tuple().unwrap(), 0).unwrap());
                }
                EventKind::StreamCommit(c) => {
                    panic!("PG {v}: the streamed transaction commits after the stop: {c:?}")
                }
                _ => {}
            }
        }
        assert!(
            streamed_blocks >= 1,
            "PG {v}: the large transaction was streamed"
        );
        assert_eq!(plain_ids, ["1"], "PG {v}: stop at {stop}");
    }
}

/// A `StopHandle` used from another task (`stop_when`) ends the application's loop only after
/// the final status update — carrying the last acknowledgement — went out; the slot shows it.
#[tokio::test]
async fn stop_handle_ends_the_loop_after_the_final_status_update() {
    for server in servers() {
        let fx = Fixture::new(
            server,
            "stophandle",
            "CREATE TABLE t (id int PRIMARY KEY)",
            "FOR TABLE t",
        )
        .await;
        let v = fx.version;
        // No status update on the timer: only the final one can carry the report.
        let config = fx
            .config()
            .status_interval(Duration::from_secs(3600))
            .build()
            .unwrap();
        let mut stream = LogicalStream::connect(config).await.unwrap();
        let stop = stream.stop_handle();
        assert!(!stop.is_stop_requested());
        // The "signal": fired from the loop once the commit is acknowledged; the task of
        // `stop_when` then stops the stream while the loop waits for the next event.
        let (fire, signal) = tokio::sync::oneshot::channel::<()>();
        stop.stop_when(signal);
        let mut fire = Some(fire);
        fx.exec(&["INSERT INTO t VALUES (1)"]).await;
        let mut acked = None;
        let mut after_stop = 0;
        while let Some(event) = stream.next_event().await {
            let event = event.unwrap();
            if acked.is_some() {
                after_stop += 1;
            }
            if let Some(lsn) = stream.feedback().ack(&event).unwrap() {
                acked = Some(lsn);
                let _ = fire.take().map(|fire| fire.send(()));
            }
        }
        let acked = acked.unwrap_or_else(|| panic!("PG {v}: no commit"));
        assert_eq!(
            after_stop, 0,
            "PG {v}: nothing was written after the commit"
        );
        assert!(stop.is_stop_requested());
        let confirmed = fx.wait_confirmed(acked, Duration::from_secs(10)).await;
        assert!(
            confirmed.is_some_and(|c| c >= acked),
            "PG {v}: confirmed {confirmed:?} < acknowledged {acked}"
        );
        // Stopping again does nothing more.
        stop.stop();
        stream.stop().await.unwrap();
    }
}

/// Dropping a stream stops it gracefully in the background: the final status update carries
/// the last report (the runtime keeps running here).
#[tokio::test]
async fn dropping_the_stream_sends_the_final_status_update() {
    for server in servers() {
        let fx = Fixture::new(
            server,
            "dropstream",
            "CREATE TABLE t (id int PRIMARY KEY)",
            "FOR TABLE t",
        )
        .await;
        let v = fx.version;
        let config = fx
            .config()
            .status_interval(Duration::from_secs(3600))
            .build()
            .unwrap();
        let mut stream = LogicalStream::connect(config).await.unwrap();
        // A live stop handle must not keep the dropped stream's connection open.
        let _handle = stream.stop_handle();
        fx.exec(&["INSERT INTO t VALUES (1)"]).await;
        let mut acked = None;
        while acked.is_none() {
            let event = tokio::time::timeout(Duration::from_secs(30), stream.next_event())
                .await
                .unwrap_or_else(|_| panic!("PG {v}: no commit"))
                .unwrap()
                .unwrap();
            acked = stream.feedback().ack(&event).unwrap();
        }
        drop(stream);
        let acked = acked.unwrap();
        let confirmed = fx.wait_confirmed(acked, Duration::from_secs(10)).await;
        assert!(
            confirmed.is_some_and(|c| c >= acked),
            "PG {v}: confirmed {confirmed:?} < acknowledged {acked}"
        );
        // The walsender is gone: the slot is free for a new stream.
        let config = fx.config().build().unwrap();
        let again = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                match LogicalStream::connect(config.clone()).await {
                    Ok(stream) => break stream,
                    Err(error) if error.is_transient() => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(error) => panic!("PG {v}: {error}"),
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("PG {v}: slot still active"));
        again.stop().await.unwrap();
    }
}
