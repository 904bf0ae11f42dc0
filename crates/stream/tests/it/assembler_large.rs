//! One transaction larger than 500 MB through a 4 MiB assembler (issue 17): it arrives
//! complete, spilled, and — when the test has its process to itself (nextest) — the process's
//! peak resident set (`VmHWM` in `/proc/self/status`) grows by far less than the transaction.
//!
//! The rows are 8,000 identical characters: compressed in the heap and the WAL (the server
//! writes a few MB), sent decompressed by pgoutput (8 KB each), so the stream, not the
//! server's disk, carries the half gigabyte. It runs on the newest server of the run only
//! (the assembler does not depend on the version; the stream tests cover every version) and
//! takes 10–40 s here; every wait is bounded.

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use pg_walstream_stream::assembler::{Assemble, Assembled, AssemblerConfig, Overflow};
use pg_walstream_stream::{EventKind, Streaming};
use pg_walstream_testkit::servers;

use crate::support::{Fixture, text};

/// 66,000 rows of 8,000 bytes: 528 MB of row values.
const ROWS: i64 = 66_000;
const VALUE_LEN: usize = 8_000;
const LIMIT: usize = 4 << 20;

/// Peak resident set size of this process, in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .expect("VmHWM in kB");
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_over_500_mb_stays_within_the_memory_limit() {
    let own_process = std::env::var("NEXTEST_EXECUTION_MODE").as_deref() == Ok("process-per-test");
    let server = servers().last().expect("a server");
    let v = server.version();
    let started = Instant::now();
    let fx = Fixture::new(
        server,
        "assemble_large",
        "CREATE TABLE big (id int PRIMARY KEY, pad text)",
        "FOR TABLE big",
    )
    .await;
    let stream = fx.start(fx.config().streaming(Streaming::On)).await;
    let before = peak_rss();
    fx.exec(&[&format!(
        "INSERT INTO big SELECT g, repeat('L', {VALUE_LEN}) FROM generate_series(1, {ROWS}) g"
    )])
    .await;
    let config = AssemblerConfig {
        memory_limit: LIMIT,
        overflow: Overflow::Spill { dir: None },
        ..AssemblerConfig::default()
    };
    let mut transactions = Assemble::new(stream, config);
    let transaction = loop {
        let item = tokio::time::timeout(Duration::from_secs(300), transactions.next())
            .await
            .unwrap_or_else(|_| panic!("PG {v}: no transaction within 300 s"))
            .unwrap_or_else(|| panic!("PG {v}: stream ended"))
            .unwrap_or_else(|e| panic!("PG {v}: {e}"));
        if let Assembled::Transaction(transaction) = item {
            break transaction;
        }
    };
    let spilled = transaction.spilled_bytes();
    assert!(spilled > 500_000_000, "PG {v}: {spilled} bytes spilled");
    let (mut count, mut sum) = (0i64, 0i64);
    for event in transaction.into_events().unwrap() {
        let event = event.unwrap_or_else(|e| panic!("PG {v}: {e}"));
        if let EventKind::Insert(change) = event.kind() {
            let row = change.new_tuple().expect("new row");
            let id: i64 = text(&row, 0).and_then(|t| t.parse().ok()).expect("id");
            let pad = row.columns().nth(1).and_then(|c| c.value()).expect("pad");
            assert!(
                pad.len() == VALUE_LEN && pad.iter().all(|b| *b == b'L'),
                "PG {v}: row {id} has another value"
            );
            count += 1;
            sum += id;
        }
    }
    assert_eq!((count, sum), (ROWS, ROWS * (ROWS + 1) / 2), "PG {v}");
    let held = transactions.assembler_mut().peak_memory_held();
    assert!(
        held <= LIMIT + 2 * VALUE_LEN + 4096,
        "PG {v}: held {held} bytes"
    );
    let grown = peak_rss().saturating_sub(before);
    eprintln!(
        "PG {v}: {spilled} bytes spilled, assembler held at most {held} B, peak RSS grew {} KiB, \
         {:.1} s",
        grown / 1024,
        started.elapsed().as_secs_f64()
    );
    // The limit itself is checked exactly above; RSS only shows the transaction was not held
    // elsewhere. What it does hold are bounded buffers (the stream's channel of messages, the
    // read buffers they pin, the spill file's buffers) whose high-water mark depends on how
    // far this consumer falls behind: 19-40 MiB on a quiet machine, 75 MiB in a busy CI run.
    // Holding the transaction would take more than its whole size.
    if own_process {
        assert!(
            grown < spilled / 4,
            "PG {v}: peak RSS grew {grown} bytes for {spilled} bytes spilled"
        );
    }
    transactions.into_inner().stop().await.unwrap();
    server.terminate_walsender(&fx.slot).await.unwrap();
    fx.exec(&[
        &format!("SELECT pg_drop_replication_slot('{}')", fx.slot),
        "DROP TABLE big",
    ])
    .await;
}
