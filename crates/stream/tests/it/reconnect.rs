//! The resume contract under a real failure: the walsender is terminated mid-stream, the
//! application reconnects from the end LSN it recorded, and has every committed row exactly
//! once.

use std::time::Duration;

use pg_walstream_codec::Lsn;
use pg_walstream_stream::{EventKind, LogicalStream, RetryPolicy};
use pg_walstream_testkit::servers;

use crate::support::{Fixture, text};

const ROWS: i32 = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_walsender_then_resume_from_recorded_position_exactly_once() {
    for server in servers() {
        let v = server.version();
        let fx = Fixture::new(
            server,
            "reconnect",
            "CREATE TABLE n (id int PRIMARY KEY)",
            "FOR TABLE n",
        )
        .await;
        // Create the slot before the writer starts.
        fx.start(fx.config()).await.stop().await.unwrap();
        let writer = server.admin(&fx.admin_db().await).await;
        let writing = tokio::spawn(async move {
            for id in 1..=ROWS {
                writer
                    .batch_execute(&format!("INSERT INTO n VALUES ({id})"))
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
        // The destination: rows applied and the end LSN of the last applied transaction,
        // updated together at each Commit.
        let mut applied: Vec<i32> = Vec::new();
        let mut applied_end = Lsn::INVALID;
        let mut reconnects = 0;
        let mut killed = false;
        'connect: loop {
            let config = fx
                .config()
                .retry(RetryPolicy::never())
                .start_lsn(applied_end)
                .build()
                .unwrap();
            let mut stream = match LogicalStream::connect(config).await {
                Ok(stream) => stream,
                Err(e) if e.is_transient() && reconnects < 50 => {
                    // The terminated walsender may still hold the slot for a moment.
                    reconnects += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                Err(e) => panic!("PG {v}: reconnect: {e}"),
            };
            let mut pending = Vec::new();
            loop {
                let event = tokio::time::timeout(Duration::from_secs(30), stream.next_event())
                    .await
                    .unwrap_or_else(|_| panic!("PG {v}: stalled at {} rows", applied.len()))
                    .unwrap_or_else(|| panic!("PG {v}: stream ended"));
                let event = match event {
                    Ok(event) => event,
                    Err(e) if e.is_transient() => {
                        reconnects += 1;
                        continue 'connect;
                    }
                    Err(e) => panic!("PG {v}: {e}"),
                };
                match event.kind() {
                    EventKind::Begin(_) => pending.clear(),
                    EventKind::Insert(c) => {
                        pending.push(
                            text(&c.new_tuple().unwrap(), 0)
                                .unwrap()
                                .parse::<i32>()
                                .unwrap(),
                        );
                    }
                    EventKind::Commit(c) => {
                        applied.append(&mut pending);
                        applied_end = c.end_lsn;
                        stream.feedback().processed(c.end_lsn);
                        if applied.len() >= ROWS as usize {
                            stream.stop().await.unwrap();
                            break 'connect;
                        }
                        if applied.len() >= 100 && !killed {
                            killed = true;
                            fx.exec(&[&format!(
                                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = '{}'",
                                fx.slot
                            )])
                            .await;
                        }
                    }
                    _ => {}
                }
            }
        }
        writing.await.unwrap();
        assert!(
            killed && reconnects >= 1,
            "PG {v}: the walsender was not terminated"
        );
        let expected: Vec<i32> = (1..=ROWS).collect();
        assert_eq!(
            applied, expected,
            "PG {v}: every row exactly once, in order"
        );
    }
}
