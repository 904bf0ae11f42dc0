//! Stop at an LSN, graceful stop, and the crate documentation's example.

use std::time::Duration;

use pg_walstream_codec::Lsn;
use pg_walstream_stream::{CreateSlotOptions, EventKind, LogicalConfig, LogicalStream};
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
            let stop = Lsn(fx.current_lsn().await.0 - back_off);
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
                let table = &change.relation().name;
                for column in change.new_tuple().into_iter().flat_map(|t| t.columns()) {
                    seen.push(format!("{table}: {column:?}"));
                }
            }
            EventKind::Commit(commit) => {
                feedback.processed(commit.end_lsn);
                break;
            }
            _ => {}
        }
    }
    assert_eq!(seen, ["t: Text([55])"]);
    stream.stop().await.unwrap();
}
