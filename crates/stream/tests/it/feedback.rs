//! LSN feedback against real servers: the slot follows what the application reports, and
//! follows keepalives while the publication is idle.

use std::time::Duration;

use pg_walstream_codec::Lsn;
use pg_walstream_stream::EventKind;
use pg_walstream_testkit::servers;
use tokio::sync::mpsc;

use crate::support::{Fixture, collect};

#[tokio::test]
async fn confirmed_flush_reaches_last_commit_only_after_report() {
    for server in servers() {
        let v = server.version();
        let fx = Fixture::new(
            server,
            "ack",
            "CREATE TABLE t (id int PRIMARY KEY)",
            "FOR TABLE t",
        )
        .await;
        let mut stream = fx.start(fx.config()).await;
        let start = fx.confirmed_flush().await.expect("slot created");
        fx.exec(&[
            "INSERT INTO t VALUES (1)",
            "INSERT INTO t VALUES (2)",
            "INSERT INTO t VALUES (3)",
        ])
        .await;
        let events = collect(&mut stream, 3, v).await;
        let ends: Vec<Lsn> = events
            .iter()
            .filter_map(|e| match e.kind() {
                EventKind::Commit(c) => Some(c.end_lsn),
                _ => None,
            })
            .collect();
        assert_eq!(ends.len(), 3, "PG {v}");
        // Delivered, not reported: several status intervals later the slot has not moved.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert!(stream.feedback().status_updates_sent() >= 3, "PG {v}");
        let unreported = fx.confirmed_flush().await.unwrap();
        assert!(
            unreported < ends[0],
            "PG {v}: slot at {unreported} before any report (start {start}, first end {})",
            ends[0]
        );
        // Report the first transaction only.
        stream.feedback().processed(ends[0]);
        let seen = fx
            .wait_confirmed(ends[0], Duration::from_secs(10))
            .await
            .unwrap();
        assert!(
            seen >= ends[0] && seen < ends[1],
            "PG {v}: {seen} after reporting {}",
            ends[0]
        );
        // Report the last commit: the slot reaches its end LSN.
        let last = events.iter().rev().find(|e| e.ack_lsn().is_some()).unwrap();
        assert_eq!(stream.feedback().ack(last), Ok(Some(ends[2])), "PG {v}");
        let seen = fx
            .wait_confirmed(ends[2], Duration::from_secs(10))
            .await
            .unwrap();
        assert!(
            seen >= ends[2],
            "PG {v}: confirmed_flush_lsn {seen} < last end {}",
            ends[2]
        );
        stream.stop().await.unwrap();
    }
}

#[tokio::test]
async fn idle_publication_slot_advances_and_nothing_is_lost() {
    for server in servers() {
        let v = server.version();
        let fx = Fixture::new(
            server,
            "idle",
            "CREATE TABLE published (id int PRIMARY KEY); CREATE TABLE other (id int PRIMARY KEY)",
            "FOR TABLE published",
        )
        .await;
        let mut stream = fx.start(fx.config()).await;
        // A consumer that acknowledges everything it processes and forwards inserted ids.
        let (ids_tx, mut ids) = mpsc::unbounded_channel();
        let consumer = tokio::spawn(async move {
            let feedback = stream.feedback().clone();
            while let Some(event) = stream.next_event().await {
                let event = event.expect("stream error");
                if let EventKind::Insert(c) = event.kind() {
                    let id = c
                        .new_tuple()
                        .unwrap()
                        .columns()
                        .next()
                        .unwrap()
                        .value()
                        .unwrap()
                        .to_vec();
                    let _ = ids_tx.send(String::from_utf8(id).unwrap());
                }
                feedback.ack(&event).unwrap();
            }
        });
        fx.exec(&["INSERT INTO published VALUES (1)"]).await;
        let first = tokio::time::timeout(Duration::from_secs(30), ids.recv())
            .await
            .unwrap();
        assert_eq!(first.as_deref(), Some("1"), "PG {v}");
        // Only unpublished writes for a while.
        for i in 0..20 {
            fx.exec(&[&format!("INSERT INTO other VALUES ({i})")]).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let target = fx.current_lsn().await;
        let seen = fx
            .wait_confirmed(target, Duration::from_secs(30))
            .await
            .unwrap();
        assert!(
            seen >= target,
            "PG {v}: slot stuck at {seen}, server at {target}"
        );
        // Published writes resume: nothing lost.
        fx.exec(&[
            "INSERT INTO published VALUES (2)",
            "INSERT INTO published VALUES (3)",
        ])
        .await;
        let mut rest = Vec::new();
        for _ in 0..2 {
            rest.push(
                tokio::time::timeout(Duration::from_secs(30), ids.recv())
                    .await
                    .unwrap()
                    .unwrap(),
            );
        }
        assert_eq!(rest, ["2", "3"], "PG {v}");
        consumer.abort();
    }
}

#[tokio::test]
async fn restart_resumes_after_the_last_reported_transaction() {
    for server in servers() {
        let v = server.version();
        let fx = Fixture::new(
            server,
            "resume",
            "CREATE TABLE t (id int PRIMARY KEY)",
            "FOR TABLE t",
        )
        .await;
        let mut stream = fx.start(fx.config()).await;
        fx.exec(&[
            "INSERT INTO t VALUES (1)",
            "INSERT INTO t VALUES (2)",
            "INSERT INTO t VALUES (3)",
        ])
        .await;
        let events = collect(&mut stream, 3, v).await;
        let ends: Vec<Lsn> = events
            .iter()
            .filter_map(|e| match e.kind() {
                EventKind::Commit(c) => Some(c.end_lsn),
                _ => None,
            })
            .collect();
        // Wait for a keepalive to arrive after everything: it must not cover the third,
        // unreported transaction.
        tokio::time::sleep(Duration::from_millis(600)).await;
        stream.feedback().processed(ends[1]);
        stream.stop().await.unwrap();
        let confirmed = fx.confirmed_flush().await.unwrap();
        assert!(
            confirmed >= ends[1] && confirmed < ends[2],
            "PG {v}: {confirmed} vs {ends:?}"
        );
        // A new stream on the same slot starts with the unreported transaction.
        let mut stream = fx.start(fx.config()).await;
        let again = collect(&mut stream, 1, v).await;
        let ids: Vec<String> = again
            .iter()
            .filter_map(|e| match e.kind() {
                EventKind::Insert(c) => {
                    Some(crate::support::text(&c.new_tuple().unwrap(), 0).unwrap())
                }
                _ => None,
            })
            .collect();
        assert_eq!(ids, ["3"], "PG {v}");
        stream.stop().await.unwrap();
    }
}

/// The dedupe contract: an application that records the `end_lsn` of the last transaction it
/// applied (in its own store, atomically with the data) restarts with that as the start LSN and
/// receives each transaction exactly once, even when the slot was told less.
#[tokio::test]
async fn restart_from_the_applications_own_position_skips_applied_transactions() {
    for server in servers() {
        let v = server.version();
        let fx = Fixture::new(
            server,
            "dedupe",
            "CREATE TABLE t (id int PRIMARY KEY)",
            "FOR TABLE t",
        )
        .await;
        let mut stream = fx.start(fx.config()).await;
        fx.exec(&[
            "INSERT INTO t VALUES (1)",
            "INSERT INTO t VALUES (2)",
            "INSERT INTO t VALUES (3)",
        ])
        .await;
        let events = collect(&mut stream, 3, v).await;
        let ends: Vec<Lsn> = events
            .iter()
            .filter_map(|e| match e.kind() {
                EventKind::Commit(c) => Some(c.end_lsn),
                _ => None,
            })
            .collect();
        // The slot only hears about the first; the application durably applied two.
        stream.feedback().processed(ends[0]);
        stream.stop().await.unwrap();
        assert!(fx.confirmed_flush().await.unwrap() < ends[1], "PG {v}");
        let mut stream = fx.start(fx.config().start_lsn(ends[1])).await;
        assert_eq!(stream.info().resume_lsn, ends[1], "PG {v}: flush floor");
        // "Confirmed flush" is what the slot was told: still below the application's own.
        assert!(stream.info().confirmed_flush_lsn < ends[1], "PG {v}");
        // Never `0/0` before the first status update: the slot's position.
        assert!(
            stream.feedback().confirmed_flush_lsn() >= stream.info().confirmed_flush_lsn,
            "PG {v}: one meaning of confirmed flush"
        );
        let again = collect(&mut stream, 1, v).await;
        let ids: Vec<String> = again
            .iter()
            .filter_map(|e| match e.kind() {
                EventKind::Insert(c) => {
                    Some(crate::support::text(&c.new_tuple().unwrap(), 0).unwrap())
                }
                _ => None,
            })
            .collect();
        assert_eq!(ids, ["3"], "PG {v}");
        stream.stop().await.unwrap();
    }
}

#[tokio::test]
async fn requested_status_update_confirms_without_waiting_for_the_interval() {
    for server in servers() {
        let v = server.version();
        let fx = Fixture::new(
            server,
            "request",
            "CREATE TABLE t (id int PRIMARY KEY)",
            "FOR TABLE t",
        )
        .await;
        let mut stream = fx
            .start(fx.config().status_interval(Duration::from_secs(120)))
            .await;
        fx.exec(&["INSERT INTO t VALUES (1)"]).await;
        let events = collect(&mut stream, 1, v).await;
        let end = events.last().unwrap().ack_lsn().unwrap();
        stream.feedback().processed(end);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(
            fx.confirmed_flush().await.unwrap() < end,
            "PG {v}: confirmed before the interval"
        );
        stream.feedback().request_status_update();
        let seen = fx
            .wait_confirmed(end, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(seen >= end, "PG {v}: {seen} < {end}");
        stream.stop().await.unwrap();
    }
}

/// A non-transactional message emitted inside a transaction T is delivered before T (at
/// decode time, not at T's commit). Its `lsn` is the end of its WAL record, which is where
/// T's commit record starts: acknowledging it must not make the server skip T after a
/// restart (`origptr < start_decoding_at`), and the message itself must not come again.
#[tokio::test]
async fn acknowledged_non_transactional_message_does_not_skip_its_transaction() {
    for server in servers() {
        let v = server.version();
        let fx = Fixture::new(
            server,
            "msgack",
            "CREATE TABLE t (id int PRIMARY KEY)",
            "FOR TABLE t",
        )
        .await;
        let mut stream = fx.start(fx.config().messages(true)).await;
        fx.exec(&["BEGIN;
                   INSERT INTO t VALUES (1);
                   SELECT pg_logical_emit_message(false, 'nt', 'inside');
                   COMMIT;"])
            .await;
        let message = loop {
            let event = tokio::time::timeout(Duration::from_secs(60), stream.next_event())
                .await
                .unwrap_or_else(|_| panic!("PG {v}: no message"))
                .unwrap_or_else(|| panic!("PG {v}: stream ended"))
                .unwrap_or_else(|e| panic!("PG {v}: {e}"));
            if let EventKind::Message(m) = event.kind() {
                assert!(!m.is_transactional(), "PG {v}");
                break event;
            }
            assert!(
                !matches!(event.kind(), EventKind::Commit(_)),
                "PG {v}: the transaction arrived before its non-transactional message"
            );
        };
        let ack = stream
            .feedback()
            .ack(&message)
            .unwrap()
            .expect("ack position");
        let EventKind::Message(m) = message.kind() else {
            unreachable!()
        };
        assert_eq!(ack, m.lsn, "PG {v}: acknowledged at the record's end");
        stream.feedback().request_status_update();
        let confirmed = fx.wait_confirmed(ack, Duration::from_secs(30)).await;
        assert!(confirmed.is_some_and(|c| c >= ack), "PG {v}: {confirmed:?}");
        // The process "crashes" before the transaction is processed: nothing more reported.
        stream.stop().await.unwrap();

        let mut stream = fx.start(fx.config().messages(true)).await;
        // A later transaction, so that a skipped T shows as the wrong first commit.
        fx.exec(&["INSERT INTO t VALUES (2)"]).await;
        let events = collect(&mut stream, 1, v).await;
        let mut ids = Vec::new();
        for event in &events {
            match event.kind() {
                EventKind::Insert(c) => {
                    ids.push(crate::support::text(&c.new_tuple().unwrap(), 0).unwrap());
                }
                EventKind::Message(m) => panic!("PG {v}: message delivered again: {m:?}"),
                _ => {}
            }
        }
        assert_eq!(
            ids,
            ["1"],
            "PG {v}: the transaction of the message comes first"
        );
        stream.stop().await.unwrap();
    }
}
