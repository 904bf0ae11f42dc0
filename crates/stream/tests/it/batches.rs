//! Batched hand-off and read coalescing against real servers: `next_batch` delivers what
//! `next_event` does, with coalescing off too; batches respect the byte and event bounds; a
//! long coalescing budget never makes the walsender give up waiting for our reply; coalescing
//! is on over TCP and off over a Unix-domain socket unless configured.

use std::time::Duration;

use pg_walstream_codec::Lsn;
use pg_walstream_stream::{LogicalStream, ReadCoalescing, RetryPolicy};
use pg_walstream_testkit::{TestServer, servers, unique_name};

use crate::support::Fixture;

/// What identifies an event across slots: its position and its message bytes.
type Seen = (Lsn, Vec<u8>);

/// Whether a pgoutput message is a change (not Begin, Commit, Relation or Type).
fn is_change(data: &[u8]) -> bool {
    !matches!(data.first(), Some(b'B' | b'C' | b'R' | b'Y'))
}

/// Counts the transactions that carried a change. PG14's pgoutput also sends the Begin and
/// Commit of a transaction without a published change (an autovacuum ANALYZE in the
/// database, say); PG15+ skip those. So a test counts only the transactions it wrote.
#[derive(Default)]
struct Transactions {
    changed: bool,
    complete: usize,
}

impl Transactions {
    fn see(&mut self, data: &[u8]) {
        match data.first() {
            Some(b'B') => self.changed = false,
            Some(b'C') if self.changed => self.complete += 1,
            _ if is_change(data) => self.changed = true,
            _ => {}
        }
    }
}

/// The first `commits` transactions that carried a change, whole, without the empty ones.
fn with_changes(events: Vec<Seen>, commits: usize, ctx: &str) -> Vec<Seen> {
    let mut out = Vec::new();
    let mut transaction = Vec::new();
    let mut kept = 0;
    for event in events {
        let commit = event.1.first() == Some(&b'C');
        transaction.push(event);
        if commit {
            if transaction.iter().any(|(_, data)| is_change(data)) {
                out.append(&mut transaction);
                kept += 1;
                if kept == commits {
                    break;
                }
            } else {
                transaction.clear();
            }
        }
    }
    assert_eq!(kept, commits, "{ctx}: transactions with changes");
    out
}

/// The events every slot is guaranteed to see alike: those of the transactions with changes,
/// all but Relation messages. The server sends a Relation again after its cache entry for
/// the table is invalidated, and a non-transactional invalidation (autovacuum updating
/// `pg_class` in place) reaches each walsender at its own moment; so each slot checks that
/// its first change follows one.
fn comparable(events: Vec<Seen>, commits: usize, ctx: &str) -> Vec<Seen> {
    let events = with_changes(events, commits, ctx);
    let first_change = events
        .iter()
        .position(|(_, data)| data.first() != Some(&b'B'))
        .unwrap_or_else(|| panic!("{ctx}: no change"));
    assert_eq!(
        events[first_change].1.first(),
        Some(&b'R'),
        "{ctx}: the first change is not preceded by its relation"
    );
    events
        .into_iter()
        .filter(|(_, data)| data.first() != Some(&b'R'))
        .collect()
}

fn seen(event: &pg_walstream_stream::Event) -> Seen {
    (event.xlog_data().wal_start, event.xlog_data().data.to_vec())
}

/// The [`comparable`] events through `next_event` until `commits` transactions with changes
/// arrived.
async fn by_events(stream: &mut LogicalStream, commits: usize, ctx: &str) -> Vec<Seen> {
    let mut out = Vec::new();
    let mut transactions = Transactions::default();
    while transactions.complete < commits {
        let event = tokio::time::timeout(Duration::from_secs(60), stream.next_event())
            .await
            .unwrap_or_else(|_| panic!("{ctx}: timed out after {out:?}"))
            .unwrap_or_else(|| panic!("{ctx}: stream ended"))
            .unwrap_or_else(|e| panic!("{ctx}: {e}"));
        transactions.see(&event.xlog_data().data);
        out.push(seen(&event));
    }
    comparable(out, commits, ctx)
}

/// Events through `next_batch` until `commits` transactions with changes arrived (whole
/// batches: the last may hold more); checks each batch against the bounds.
async fn by_batches(
    stream: &mut LogicalStream,
    commits: usize,
    max_events: usize,
    max_bytes: usize,
    ctx: &str,
) -> Vec<Seen> {
    let mut out = Vec::new();
    let mut transactions = Transactions::default();
    while transactions.complete < commits {
        let batch = tokio::time::timeout(Duration::from_secs(60), stream.next_batch())
            .await
            .unwrap_or_else(|_| panic!("{ctx}: timed out after {} commits", transactions.complete))
            .unwrap_or_else(|| panic!("{ctx}: stream ended"));
        assert!(!batch.is_empty(), "{ctx}: empty batch");
        assert!(batch.len() <= max_events, "{ctx}: {} events", batch.len());
        let sizes: Vec<usize> = batch
            .iter()
            .map(|e| e.as_ref().map_or(0, |e| e.xlog_data().data.len()))
            .collect();
        let bytes: usize = sizes.iter().sum();
        let largest = sizes.iter().copied().max().unwrap_or(0);
        // The event that crosses the byte budget is admitted, no further one.
        assert!(
            bytes < max_bytes + largest,
            "{ctx}: a batch of {bytes} bytes, budget {max_bytes}"
        );
        for event in batch {
            let event = event.unwrap_or_else(|e| panic!("{ctx}: {e}"));
            transactions.see(&event.xlog_data().data);
            out.push(seen(&event));
        }
    }
    out
}

/// The tables: `t` is published, `unpublished` is not.
const TABLES: &str =
    "CREATE TABLE t (id int PRIMARY KEY, v text); CREATE TABLE unpublished (x int)";

/// Four transactions that change `t` ([`WRITTEN`]), and two that change only `unpublished`:
/// PG14 sends those as a Begin and a Commit with nothing between, PG15+ not at all.
const WORKLOAD: [&str; 6] = [
    "INSERT INTO t SELECT g, repeat('v', 100) FROM generate_series(1, 3000) g",
    "UPDATE t SET v = 'u' WHERE id % 7 = 0",
    "INSERT INTO unpublished VALUES (1)",
    "INSERT INTO t SELECT g, repeat('w', 3000) FROM generate_series(3001, 3200) g",
    "DELETE FROM t WHERE id % 3 = 0",
    "INSERT INTO unpublished VALUES (2)",
];

/// The transactions of [`WORKLOAD`] with a published change.
const WRITTEN: usize = 4;

#[tokio::test]
async fn next_batch_delivers_what_next_event_does_with_coalescing_on_and_off() {
    for server in servers() {
        let v = server.version();
        let fx = Fixture::new(server, "batches", TABLES, "FOR TABLE t").await;
        // Three slots see the same transactions: per event (default budget), per batch
        // (default budget) and per event with coalescing off.
        let mut per_event = fx.start(fx.config()).await;
        let mut batched = fx
            .start(
                fx.config()
                    .slot(&unique_name("batch"))
                    .channel_bytes(64 * 1024),
            )
            .await;
        let mut uncoalesced = fx
            .start(
                fx.config()
                    .slot(&unique_name("nocoal"))
                    .read_coalescing(Duration::ZERO),
            )
            .await;
        fx.exec(&WORKLOAD).await;
        let ctx = format!("PG {v}");
        let expected = by_events(&mut per_event, WRITTEN, &format!("{ctx} per event")).await;
        assert!(expected.len() > 4000, "{ctx}: {} events", expected.len());
        let got = comparable(
            by_batches(&mut batched, WRITTEN, 1024, 64 * 1024, &ctx).await,
            WRITTEN,
            &format!("{ctx} batches"),
        );
        assert_eq!(got.len(), expected.len(), "{ctx}: batches");
        assert!(got == expected, "{ctx}: batches differ from events");
        let plain = by_events(&mut uncoalesced, WRITTEN, &format!("{ctx} budget 0")).await;
        assert_eq!(plain.len(), expected.len(), "{ctx}: budget 0");
        assert!(plain == expected, "{ctx}: budget 0 differs");
        for stream in [per_event, batched, uncoalesced] {
            stream
                .stop()
                .await
                .unwrap_or_else(|e| panic!("{ctx}: stop: {e}"));
        }
    }
}

#[tokio::test]
async fn batches_respect_small_event_and_byte_bounds() {
    for server in servers() {
        let v = server.version();
        let fx = Fixture::new(server, "bounds", TABLES, "FOR TABLE t").await;
        let mut stream = fx
            .start(fx.config().channel_capacity(16).channel_bytes(8 * 1024))
            .await;
        fx.exec(&WORKLOAD).await;
        let ctx = format!("PG {v}");
        let got = with_changes(
            by_batches(&mut stream, WRITTEN, 16, 8 * 1024, &ctx).await,
            WRITTEN,
            &ctx,
        );
        // 3000 + 3000/7 + 200 + 3200/3 rows, and a Begin and a Commit per statement (and the
        // Relation messages, not counted: the server may repeat one after an invalidation).
        let rows = 3000 + 3000 / 7 + 200 + 3200 / 3;
        let counted = got
            .iter()
            .filter(|(_, data)| data.first() != Some(&b'R'))
            .count();
        assert_eq!(counted, rows + 2 * WRITTEN, "{ctx}");
        stream.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_coalescing_budget_never_delays_a_reply_past_the_senders_timeout() {
    for version in servers().iter().map(TestServer::version) {
        // The walsender asks for a reply after 0.5 s without one and gives up after 1 s;
        // our status interval is far longer, so only replies to its keepalives keep us.
        let server = TestServer::builder(version)
            .setting("wal_sender_timeout", "1s")
            .start()
            .expect("private server");
        let fx = Fixture::new(
            &server,
            "keepalive",
            "CREATE TABLE t (id int PRIMARY KEY)",
            "FOR TABLE t",
        )
        .await;
        let mut stream = fx
            .start(
                fx.config()
                    .read_coalescing(ReadCoalescing::MAX_BUDGET)
                    .status_interval(Duration::from_secs(600))
                    .retry(RetryPolicy::never()),
            )
            .await;
        let pid_query = "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1";
        let pid = |row: tokio_postgres::Row| row.get::<_, Option<i32>>(0);
        let before = pid(fx.admin.query_one(pid_query, &[&fx.slot]).await.unwrap());
        assert!(before.is_some(), "PG {version}: slot not active");
        // A trickle of small transactions for several sender timeouts: every read is small,
        // so each is followed by a coalescing wait.
        let commits = 40;
        for id in 0..commits {
            fx.exec(&[&format!("INSERT INTO t VALUES ({id})")]).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let events = by_events(&mut stream, commits, &format!("PG {version}")).await;
        let inserts = events
            .iter()
            .filter(|(_, data)| data.first() == Some(&b'I'))
            .count();
        assert_eq!(inserts, commits, "PG {version}");
        // Still the same walsender: it never timed us out (with no retry, a timeout would
        // also have ended the stream with an error above).
        let after = pid(fx.admin.query_one(pid_query, &[&fx.slot]).await.unwrap());
        assert_eq!(after, before, "PG {version}: the walsender was replaced");
        stream.stop().await.unwrap();
    }
}

#[tokio::test]
async fn coalescing_waits_1_ms_over_tcp_and_400_us_over_a_unix_socket_unless_configured() {
    for server in servers() {
        let version = server.version();
        let fx = Fixture::new(
            server,
            "coalesce_socket",
            "CREATE TABLE t (id int PRIMARY KEY)",
            "FOR TABLE t",
        )
        .await;
        let unix = format!("{} host={}", fx.conninfo, server.socket_dir().display());
        let configured = Duration::from_millis(3);
        for (session, (conninfo, set, expected, what)) in [
            (&fx.conninfo, None, ReadCoalescing::DEFAULT_BUDGET, "TCP"),
            (
                &unix,
                None,
                ReadCoalescing::DEFAULT_UNIX_BUDGET,
                "Unix socket",
            ),
            (
                &unix,
                Some(configured),
                configured,
                "Unix socket, configured",
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let ctx = format!("PG {version}, {what}");
            let mut config = fx.config().conninfo(conninfo);
            if let Some(budget) = set {
                config = config.read_coalescing(budget);
            }
            let mut stream = fx.start(config).await;
            assert_eq!(stream.info().read_coalescing.budget, expected, "{ctx}");
            if session == 0 {
                // After the first session created the slot.
                fx.exec(&["INSERT INTO t VALUES (1)"]).await;
            }
            // Nothing acknowledged: every session streams the same insert again.
            let events = by_events(&mut stream, 1, &ctx).await;
            let inserts = events
                .iter()
                .filter(|(_, data)| data.first() == Some(&b'I'))
                .count();
            assert_eq!(inserts, 1, "{ctx}");
            stream.stop().await.unwrap();
        }
    }
}
