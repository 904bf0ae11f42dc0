//! Stop at an LSN, graceful stop, and the crate documentation's example.

use pg_walstream_stream::{CreateSlotOptions, EventKind, LogicalConfig, LogicalStream};
use pg_walstream_testkit::servers;

use crate::support::Fixture;

#[tokio::test]
async fn stop_at_lsn_delivers_exactly_the_transactions_before_it() {
    for server in servers() {
        let v = server.version();
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
        let stop = fx.current_lsn().await;
        fx.exec(&["INSERT INTO t VALUES (3)", "INSERT INTO t VALUES (4)"])
            .await;
        let mut stream = fx.start(fx.config().stop_at(stop)).await;
        let mut ids = Vec::new();
        let mut ends = Vec::new();
        while let Some(event) =
            tokio::time::timeout(std::time::Duration::from_secs(30), stream.next_event())
                .await
                .unwrap_or_else(|_| panic!("PG {v}: stream did not stop at {stop}"))
        {
            match event.unwrap_or_else(|e| panic!("PG {v}: {e}")).kind() {
                EventKind::Insert(c) => ids.push(
                    String::from_utf8(
                        c.new_tuple()
                            .unwrap()
                            .columns()
                            .next()
                            .unwrap()
                            .value()
                            .unwrap()
                            .to_vec(),
                    )
                    .unwrap(),
                ),
                EventKind::Commit(c) => ends.push(c.end_lsn),
                _ => {}
            }
        }
        assert_eq!(ids, ["1", "2"], "PG {v}: stop at {stop}");
        assert!(
            ends.iter().all(|e| e.0 <= stop.0 + 0x1000),
            "PG {v}: {ends:?} vs {stop}"
        );
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
