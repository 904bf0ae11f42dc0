//! A consumer that stalls longer than `wal_sender_timeout` keeps its connection and bounded
//! memory, and receives every row afterwards.

use std::time::{Duration, Instant};

use pg_walstream_stream::{CreateSlotOptions, EventKind, LogicalConfig, LogicalStream};
use pg_walstream_testkit::{AuthUser, TestServer, servers, unique_name};

const ROWS: usize = 200_000;
/// Bound on the growth of this process's resident memory while the consumer stalls.
const MAX_RSS_GROWTH: u64 = 64 * 1024 * 1024;
/// Bound on the peak resident memory of the whole test process.
const MAX_PEAK_RSS: u64 = 128 * 1024 * 1024;

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("status field")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_consumer_survives_wal_sender_timeout() {
    let version = servers().last().expect("a server").version();
    let server = TestServer::builder(version)
        .setting("wal_sender_timeout", "2s")
        .start()
        .expect("private server");
    let db = server.create_database("slow").await;
    let admin = server.admin(&db).await;
    admin
        .batch_execute(
            "CREATE TABLE big (id int PRIMARY KEY); CREATE PUBLICATION pub FOR TABLE big",
        )
        .await
        .unwrap();
    let slot = unique_name("slow");
    let config = LogicalConfig::builder()
        .conninfo(&format!(
            "{} sslmode=disable",
            server.conninfo(AuthUser::Scram, &db)
        ))
        .backend(crate::support::backend())
        .slot(&slot)
        .publication("pub")
        .create_slot_if_missing(CreateSlotOptions::default())
        .status_interval(Duration::from_millis(500))
        .channel_capacity(256)
        .build()
        .unwrap();
    let mut stream = LogicalStream::connect(config).await.unwrap();
    let pid_query = "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1";
    let pid_before: Option<i32> = admin.query_one(pid_query, &[&slot]).await.unwrap().get(0);
    assert!(pid_before.is_some(), "PG {version}: slot not active");
    admin
        .batch_execute(&format!(
            "INSERT INTO big SELECT g FROM generate_series(1, {ROWS}) g"
        ))
        .await
        .unwrap();
    let mut rows = 0;
    let mut stalled = false;
    let mut growth = 0;
    let started = Instant::now();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(120), stream.next_event())
            .await
            .expect("events keep coming")
            .expect("stream open")
            .unwrap_or_else(|e| panic!("PG {version}: after {rows} rows: {e}"));
        match event.kind() {
            EventKind::Insert(_) => {
                rows += 1;
                if rows == ROWS / 2 && !stalled {
                    stalled = true;
                    let before = status_kib("VmRSS:");
                    let updates = stream.feedback().status_updates_sent();
                    tokio::time::sleep(Duration::from_secs(8)).await;
                    growth = status_kib("VmRSS:").saturating_sub(before) * 1024;
                    let during = stream.feedback().status_updates_sent() - updates;
                    assert!(
                        during >= 10,
                        "PG {version}: {during} status updates during the stall"
                    );
                }
            }
            EventKind::Commit(c) => {
                stream.feedback().processed(c.end_lsn);
                break;
            }
            _ => {}
        }
    }
    assert_eq!(rows, ROWS, "PG {version}");
    assert!(started.elapsed() > Duration::from_secs(8));
    let pid_after: Option<i32> = admin.query_one(pid_query, &[&slot]).await.unwrap().get(0);
    assert_eq!(
        pid_after, pid_before,
        "PG {version}: the walsender was replaced"
    );
    assert!(
        growth < MAX_RSS_GROWTH,
        "PG {version}: RSS grew {growth} bytes during the stall"
    );
    let peak = status_kib("VmHWM:") * 1024;
    eprintln!(
        "PG {version}: {rows} rows in {:?}, RSS growth during the 8 s stall {} KiB, peak RSS {} KiB",
        started.elapsed(),
        growth / 1024,
        peak / 1024
    );
    assert!(peak < MAX_PEAK_RSS, "PG {version}: peak RSS {peak}");
    stream.stop().await.unwrap();
}
