//! The transaction assembler against real servers: every committed row arrives exactly once,
//! rows of rolled-back transactions and subtransactions never — whole, streamed (`on`,
//! `parallel`), two-phase (both delivery points), in memory, spilled and in partial chunks.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use futures::StreamExt as _;
use pg_walstream_stream::assembler::{
    Assemble, Assembled, AssemblerConfig, Overflow, TransactionEnd, TwoPhaseDelivery,
};
use pg_walstream_stream::{Event, EventKind, Streaming};
use pg_walstream_testkit::{TestServer, servers, unique_name};

use crate::support::{Fixture, text};

const SENTINEL: i64 = 999_999;
const DDL: &str = "CREATE TABLE a (id int PRIMARY KEY, pad text)";

/// What a consumer applied: rows by top-level xid, so a rollback can void them.
#[derive(Default)]
struct Applier {
    committed: Vec<i64>,
    /// Rows of transactions delivered at their prepare, by xid, until decided.
    prepared: HashMap<u32, Vec<i64>>,
    /// Rows of chunks of open transactions: (subxid, id) by top-level xid.
    chunks: HashMap<u32, Vec<(u32, i64)>>,
    spilled: usize,
    partial: usize,
}

fn id(event: &Event) -> Option<(u32, i64)> {
    let EventKind::Insert(change) = event.kind() else {
        return None;
    };
    let tuple = change.new_tuple()?;
    let id = text(&tuple, 0)?.parse().ok()?;
    Some((change.xid().map_or(0, |x| x.0), id))
}

impl Applier {
    fn apply(&mut self, item: Assembled, ctx: &str) -> bool {
        match item {
            Assembled::Transaction(transaction) => {
                let xid = transaction.xid().0;
                self.spilled += usize::from(transaction.is_spilled());
                let mut rows: Vec<i64> = self
                    .chunks
                    .remove(&xid)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(_, id)| id)
                    .collect();
                if transaction.is_partial() {
                    self.partial += 1;
                }
                let prepared = matches!(
                    transaction.end(),
                    TransactionEnd::Prepare(_) | TransactionEnd::StreamPrepare(_)
                );
                for event in transaction
                    .into_events()
                    .unwrap_or_else(|e| panic!("{ctx}: {e}"))
                {
                    let event = event.unwrap_or_else(|e| panic!("{ctx}: {e}"));
                    rows.extend(id(&event).map(|(_, id)| id));
                }
                let sentinel = rows.contains(&SENTINEL);
                if prepared {
                    self.prepared.insert(xid, rows);
                } else {
                    self.committed.extend(rows);
                }
                sentinel
            }
            Assembled::Chunk(chunk) => {
                let rows = self.chunks.entry(chunk.xid.0).or_default();
                rows.extend(chunk.events.iter().filter_map(id));
                false
            }
            Assembled::Aborted { xid, subxid } => {
                if xid == subxid {
                    self.chunks.remove(&xid.0);
                } else if let Some(rows) = self.chunks.get_mut(&xid.0) {
                    rows.retain(|(sub, _)| *sub != subxid.0);
                }
                false
            }
            Assembled::CommitPrepared(passed) => {
                if let EventKind::CommitPrepared(c) = passed.event.kind()
                    && let Some(rows) = self.prepared.remove(&c.xid.0)
                {
                    self.committed.extend(rows);
                }
                false
            }
            Assembled::RollbackPrepared(passed) => {
                if let EventKind::RollbackPrepared(r) = passed.event.kind() {
                    self.prepared.remove(&r.xid.0);
                }
                false
            }
            other => panic!("{ctx}: unexpected {other:?}"),
        }
    }
}

/// Writes the workload; returns the ids that must arrive.
async fn workload(server: &TestServer, fx: &Fixture, two_phase: bool) -> BTreeSet<i64> {
    let db = fx.admin_db().await;
    let other = server.admin(&db).await;
    let mut expected: BTreeSet<i64> = BTreeSet::new();
    // Two large transactions open at once (both streamed when streaming is on).
    fx.exec(&["BEGIN; INSERT INTO a SELECT g, repeat('a', 100) FROM generate_series(1, 1500) g;"])
        .await;
    other
        .batch_execute(
            "BEGIN; INSERT INTO a SELECT g, repeat('b', 100) FROM generate_series(10001, 11500) g;",
        )
        .await
        .unwrap();
    fx.exec(&["SAVEPOINT sp;
         INSERT INTO a SELECT g, repeat('x', 100) FROM generate_series(20001, 21500) g;
         ROLLBACK TO sp;
         INSERT INTO a SELECT g, repeat('a', 100) FROM generate_series(1501, 3000) g;"])
        .await;
    other.batch_execute("COMMIT").await.unwrap();
    fx.exec(&["COMMIT"]).await;
    expected.extend(1..=3000);
    expected.extend(10_001..=11_500);
    // A large transaction rolled back, and a small one with a rolled-back savepoint.
    fx.exec(&[
        "BEGIN;
         INSERT INTO a SELECT g, repeat('r', 100) FROM generate_series(30001, 31500) g;
         ROLLBACK;",
        "BEGIN; INSERT INTO a VALUES (40001, 's'); SAVEPOINT s1;
         INSERT INTO a VALUES (40002, 'gone'); ROLLBACK TO s1; INSERT INTO a VALUES (40003, 's');
         COMMIT;",
    ])
    .await;
    expected.extend([40_001, 40_003]);
    if two_phase {
        fx.exec(&[
            "BEGIN; INSERT INTO a VALUES (50001, 'p'); PREPARE TRANSACTION 'small_commit';",
            "COMMIT PREPARED 'small_commit'",
            "BEGIN; INSERT INTO a VALUES (50002, 'p'); PREPARE TRANSACTION 'small_rollback';",
            "ROLLBACK PREPARED 'small_rollback'",
            "BEGIN; INSERT INTO a SELECT g, repeat('P', 100) FROM generate_series(60001, 61500) g;
             PREPARE TRANSACTION 'big_commit';",
            "BEGIN; INSERT INTO a SELECT g, repeat('R', 100) FROM generate_series(70001, 71500) g;
             PREPARE TRANSACTION 'big_rollback';",
            "COMMIT PREPARED 'big_commit'",
            "ROLLBACK PREPARED 'big_rollback'",
        ])
        .await;
        expected.insert(50_001);
        expected.extend(60_001..=61_500);
    }
    fx.exec(&[&format!("INSERT INTO a VALUES ({SENTINEL}, 'end')")])
        .await;
    expected.insert(SENTINEL);
    expected
}

/// One database per server for every run of a test: a run empties the table and takes a
/// slot of its own, dropped afterwards (no database copy and no retained WAL per run).
async fn fixture(server: &TestServer) -> Fixture {
    Fixture::new(server, "assemble", DDL, "FOR TABLE a").await
}

/// Drops the run's slot. After a stop the walsender may still be exiting (the slot is then
/// active for a moment): end it and wait for it first.
async fn drop_slot(server: &TestServer, fx: &Fixture, ctx: &str) {
    server
        .terminate_walsender(&fx.slot)
        .await
        .unwrap_or_else(|e| panic!("{ctx}: {e}"));
    fx.admin
        .execute("SELECT pg_drop_replication_slot($1)", &[&fx.slot])
        .await
        .unwrap_or_else(|e| panic!("{ctx}: dropping the slot: {e}"));
}

async fn run(
    server: &TestServer,
    fx: &mut Fixture,
    streaming: Streaming,
    two_phase: bool,
    config: AssemblerConfig,
    ctx: &str,
) -> Applier {
    fx.exec(&["TRUNCATE a"]).await;
    fx.slot = unique_name("slot");
    let stream = fx
        .start(fx.config().streaming(streaming).two_phase(two_phase))
        .await;
    let expected = workload(server, fx, two_phase).await;
    let mut transactions = Assemble::new(stream, config);
    let mut applier = Applier::default();
    loop {
        let item = tokio::time::timeout(Duration::from_secs(60), transactions.next())
            .await
            .unwrap_or_else(|_| panic!("{ctx}: timed out"))
            .unwrap_or_else(|| panic!("{ctx}: stream ended"))
            .unwrap_or_else(|e| panic!("{ctx}: {e}"));
        if applier.apply(item, ctx) {
            break;
        }
    }
    let delivered: BTreeSet<i64> = applier.committed.iter().copied().collect();
    assert_eq!(
        delivered.len(),
        applier.committed.len(),
        "{ctx}: a row arrived twice"
    );
    assert_eq!(delivered, expected, "{ctx}");
    assert!(applier.prepared.is_empty(), "{ctx}: undecided prepared");
    transactions
        .into_inner()
        .stop()
        .await
        .unwrap_or_else(|e| panic!("{ctx}: stop: {e}"));
    drop_slot(server, fx, ctx).await;
    applier
}

fn spill(limit: usize) -> AssemblerConfig {
    AssemblerConfig {
        memory_limit: limit,
        ..AssemblerConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_and_streamed_transactions_exactly_once_in_memory_and_spilled() {
    for server in servers() {
        let v = server.version();
        let mut fx = fixture(server).await;
        // 16 KiB: the small transactions stay in memory, the large ones spill.
        let mut runs = vec![
            (Streaming::Off, 16 << 10),
            (Streaming::On, 16 << 10),
            (Streaming::On, 64 << 20),
        ];
        if v >= 16 {
            runs.push((Streaming::Parallel, 16 << 10));
        }
        for (streaming, limit) in runs {
            let ctx = format!("PG {v} {streaming:?} limit {limit}");
            let applier = run(server, &mut fx, streaming, false, spill(limit), &ctx).await;
            if limit < 64 << 20 {
                assert!(applier.spilled >= 2, "{ctx}: the large ones spill");
            } else {
                assert_eq!(applier.spilled, 0, "{ctx}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_chunks_with_voided_aborts_still_apply_exactly_once() {
    for server in servers() {
        let ctx = format!("PG {} partial", server.version());
        let mut fx = fixture(server).await;
        let config = AssemblerConfig {
            memory_limit: 16 << 10,
            overflow: Overflow::Partial,
            ..AssemblerConfig::default()
        };
        let applier = run(server, &mut fx, Streaming::On, false, config, &ctx).await;
        assert!(
            applier.partial >= 2,
            "{ctx}: the large ones arrive in chunks"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_phase_at_prepare_and_at_commit_prepared() {
    for server in servers().iter().filter(|s| s.version() >= 15) {
        let v = server.version();
        let mut fx = fixture(server).await;
        for (streaming, two_phase) in [
            (Streaming::Off, TwoPhaseDelivery::AtCommitPrepared),
            (Streaming::On, TwoPhaseDelivery::AtCommitPrepared),
            (Streaming::On, TwoPhaseDelivery::AtPrepare),
        ] {
            let ctx = format!("PG {v} {streaming:?} {two_phase:?}");
            let config = AssemblerConfig {
                memory_limit: 16 << 10,
                two_phase,
                ..AssemblerConfig::default()
            };
            run(server, &mut fx, streaming, true, config, &ctx).await;
        }
    }
}

/// Peak resident set size of this process, from `/proc/self/status` (`VmHWM`), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .expect("VmHWM");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("VmHWM in kB");
    kib * 1024
}

/// A 16 MiB streamed transaction through a 2 MiB assembler: the assembler never holds more
/// than the limit (plus the one event that crosses it), and, when each test runs in its own
/// process (nextest), the process's peak RSS grows by less than the transaction's size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_streamed_transaction_stays_within_the_memory_limit() {
    const ROWS: i64 = 16 * 1024; // ~1 KiB each: 16 MiB of row data
    const LIMIT: usize = 2 << 20;
    let own_process = std::env::var("NEXTEST_EXECUTION_MODE").as_deref() == Ok("process-per-test");
    for server in servers() {
        let v = server.version();
        let fx = fixture(server).await;
        let stream = fx.start(fx.config().streaming(Streaming::On)).await;
        let before = peak_rss();
        fx.exec(&[&format!(
            "INSERT INTO a SELECT g, repeat('L', 1000) FROM generate_series(1, {ROWS}) g"
        )])
        .await;
        let mut transactions = Assemble::new(stream, spill(LIMIT));
        let transaction = loop {
            let item = tokio::time::timeout(Duration::from_secs(120), transactions.next())
                .await
                .unwrap_or_else(|_| panic!("PG {v}: timed out"))
                .unwrap_or_else(|| panic!("PG {v}: stream ended"))
                .unwrap_or_else(|e| panic!("PG {v}: {e}"));
            if let Assembled::Transaction(transaction) = item {
                break transaction;
            }
        };
        assert!(transaction.is_spilled(), "PG {v}");
        assert!(
            transaction.spilled_bytes() > 12 << 20,
            "PG {v}: {} spilled bytes, {} events",
            transaction.spilled_bytes(),
            transaction.len()
        );
        let (mut count, mut sum) = (0i64, 0i64);
        for event in transaction.into_events().unwrap() {
            if let Some((_, id)) = id(&event.unwrap_or_else(|e| panic!("PG {v}: {e}"))) {
                count += 1;
                sum += id;
            }
        }
        assert_eq!((count, sum), (ROWS, ROWS * (ROWS + 1) / 2), "PG {v}");
        let largest_held = transactions.assembler_mut().peak_memory_held();
        assert!(
            largest_held > LIMIT / 2 && largest_held <= LIMIT + 4096,
            "PG {v}: held {largest_held} bytes"
        );
        let grown = peak_rss().saturating_sub(before);
        eprintln!(
            "PG {v}: 16 MiB transaction, limit 2 MiB, assembler held at most {largest_held} B, \
             peak RSS grew {} KiB",
            grown / 1024
        );
        if own_process {
            assert!(grown < 12 << 20, "PG {v}: peak RSS grew {grown} bytes");
        }
        transactions.into_inner().stop().await.unwrap();
        drop_slot(server, &fx, &format!("PG {v}")).await;
        fx.exec(&["DROP TABLE a"]).await;
    }
}
