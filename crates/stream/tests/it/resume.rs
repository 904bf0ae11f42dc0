//! Automatic reconnect and resume (issue 17): faults injected with the testkit's proxy and
//! server helpers while a writer commits numbered rows; a consumer following the delivery
//! contract (apply at Commit, report `end_lsn`, discard a partial transaction at
//! `Reconnected`) ends with every row exactly once.

use std::time::{Duration, Instant};

use pg_walstream_codec::Lsn;
use pg_walstream_stream::{Error, EventKind, LogicalStream, ReadTimeout, RetryPolicy};
use pg_walstream_testkit::{FaultProxy, TestServer, servers};

use crate::support::{Fixture, text};

const DDL: &str = "CREATE TABLE r (id int PRIMARY KEY)";

fn through(proxy: &FaultProxy, server: &TestServer, fx: &Fixture) -> String {
    fx.conninfo.replacen(
        &format!(" port={} ", server.port()),
        &format!(" port={} ", proxy.port()),
        1,
    )
}

fn quick_retry() -> RetryPolicy {
    RetryPolicy::default()
        .initial_delay(Duration::from_millis(50))
        .max_delay(Duration::from_millis(500))
}

/// Applies events the way the contract asks; returns what happened.
#[derive(Default)]
struct Applier {
    pending: Vec<i32>,
    applied: Vec<i32>,
    reconnected: u64,
    last_end: Lsn,
}

impl Applier {
    fn apply(&mut self, stream: &LogicalStream, kind: &EventKind, v: u32) {
        match kind {
            EventKind::Begin(_) => self.pending.clear(),
            EventKind::Insert(c) => self
                .pending
                .push(text(&c.new_tuple().unwrap(), 0).unwrap().parse().unwrap()),
            EventKind::Commit(c) => {
                assert!(
                    c.end_lsn > self.last_end,
                    "PG {v}: transaction at {} delivered again after {}",
                    c.end_lsn,
                    self.last_end
                );
                self.applied.append(&mut self.pending);
                self.last_end = c.end_lsn;
                stream.feedback().processed(c.end_lsn);
            }
            EventKind::Reconnected(r) => {
                assert!(r.resume_lsn >= self.last_end, "PG {v}: {r:?}");
                self.pending.clear();
                self.reconnected += 1;
            }
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cuts_mid_frame_cuts_and_terminations_lose_and_duplicate_nothing() {
    for server in servers() {
        let v = server.version();
        let fx = Fixture::new(server, "resume", DDL, "FOR TABLE r").await;
        let proxy = FaultProxy::for_server(server).await.unwrap();
        let config = fx
            .config()
            .conninfo(&through(&proxy, server, &fx))
            .retry(quick_retry())
            .channel_capacity(32);
        let mut stream = fx.start(config).await;
        // Four batches of 40 transactions of 1–40 rows (a fixed pseudo-random sequence); each
        // batch is written once the fault of the one before has been recovered from, and each
        // fault is injected half-way through a batch (by progress, never by time).
        let mut seed = 0x2545_F491_u32 ^ v;
        let batches: Vec<Vec<u32>> = (0..4)
            .map(|_| {
                (0..40)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 17;
                        seed ^= seed << 5;
                        1 + seed % 40
                    })
                    .collect()
            })
            .collect();
        let batch_ends: Vec<u32> = batches
            .iter()
            .scan(0, |sum, b| {
                *sum += b.iter().sum::<u32>();
                Some(*sum)
            })
            .collect();
        let total = *batch_ends.last().unwrap();
        let db = fx.admin_db().await;
        let writer = server.admin(&db).await;
        let (go, mut go_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let writing = tokio::spawn(async move {
            let mut next = 1;
            for batch in batches {
                go_rx.recv().await.expect("go");
                for size in batch {
                    writer
                        .batch_execute(&format!(
                            "INSERT INTO r SELECT generate_series({next}, {})",
                            next + size - 1
                        ))
                        .await
                        .unwrap();
                    next += size;
                }
            }
        });
        go.send(()).unwrap();
        let mut applier = Applier::default();
        let mut faults = 0;
        let mut batch = 0;
        while applier.applied.len() < total as usize {
            let event = tokio::time::timeout(Duration::from_secs(60), stream.next_event())
                .await
                .unwrap_or_else(|_| panic!("PG {v}: stalled at {} rows", applier.applied.len()))
                .unwrap_or_else(|| panic!("PG {v}: the stream ended"))
                .unwrap_or_else(|e| panic!("PG {v}: the stream failed: {e}"));
            applier.apply(&stream, event.kind(), v);
            let done = applier.applied.len() as u32;
            let batch_start = if batch == 0 { 0 } else { batch_ends[batch - 1] };
            if faults == batch
                && batch < 3
                && done >= batch_start + (batch_ends[batch] - batch_start) / 2
            {
                faults += 1;
                match batch {
                    0 => proxy.cut_all(),
                    1 => {
                        server.terminate_walsender(&fx.slot).await.unwrap();
                    }
                    _ => proxy.cut_after_server_bytes(9), // inside the next CopyData message
                }
            }
            if batch < 3 && done >= batch_ends[batch] && faults > batch {
                // The third fault fires on the next bytes the server sends: the last batch.
                if batch == 2 || applier.reconnected > batch as u64 {
                    batch += 1;
                    go.send(()).unwrap();
                }
            }
        }
        writing.await.unwrap();
        let expected: Vec<i32> = (1..=total as i32).collect();
        assert_eq!(
            applier.applied, expected,
            "PG {v}: every row exactly once, in order"
        );
        assert_eq!(faults, 3, "PG {v}");
        assert!(
            applier.reconnected >= 3,
            "PG {v}: {} reconnects",
            applier.reconnected
        );
        assert_eq!(
            applier.reconnected,
            stream.feedback().reconnects(),
            "PG {v}: one Reconnected event per reconnect"
        );
        stream.stop().await.unwrap();
    }
}

/// A permanent failure met while reconnecting (here: the slot was dropped during the
/// outage) ends the stream at once with its typed error, after exactly one attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slot_dropped_during_an_outage_stops_after_one_attempt() {
    for server in servers() {
        let v = server.version();
        let fx = Fixture::new(server, "resumegone", DDL, "FOR TABLE r").await;
        // A long, fixed first delay leaves ample time to drop the slot before the attempt.
        let retry = RetryPolicy::default()
            .initial_delay(Duration::from_secs(3))
            .jitter(false);
        let mut stream = fx.start(fx.config().retry(retry)).await;
        fx.exec(&["INSERT INTO r VALUES (1)"]).await;
        let mut applier = Applier::default();
        while applier.applied.is_empty() {
            let event = stream.next_event().await.unwrap().unwrap();
            applier.apply(&stream, event.kind(), v);
        }
        server.terminate_walsender(&fx.slot).await.unwrap();
        let inactive = Instant::now();
        while server.slot_active_pid(&fx.slot).await.unwrap().is_some() {
            assert!(
                inactive.elapsed() < Duration::from_secs(30),
                "PG {v}: slot stays active"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        fx.exec(&[&format!("SELECT pg_drop_replication_slot('{}')", fx.slot)])
            .await;
        let error = loop {
            match tokio::time::timeout(Duration::from_secs(60), stream.next_event())
                .await
                .unwrap_or_else(|_| panic!("PG {v}: no error"))
            {
                Some(Ok(event)) => {
                    assert!(
                        !matches!(event.kind(), EventKind::Reconnected(_)),
                        "PG {v}: reconnected to a dropped slot"
                    );
                }
                Some(Err(error)) => break error,
                None => panic!("PG {v}: ended without an error"),
            }
        };
        assert!(
            matches!(error, Error::SlotNotFound { .. }),
            "PG {v}: {error:?}"
        );
        assert!(!error.is_transient(), "PG {v}");
        assert_eq!(stream.feedback().reconnect_attempts(), 1, "PG {v}");
        assert_eq!(stream.feedback().reconnects(), 0, "PG {v}");
        assert!(stream.next_event().await.is_none(), "PG {v}");
    }
}

/// A blackholed connection (a dead path: nothing flows, no reset) is detected by the read
/// deadline and replaced by a new connection once the path works again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackholed_connection_is_detected_and_replaced() {
    for server in servers() {
        let v = server.version();
        let fx = Fixture::new(server, "resumehole", DDL, "FOR TABLE r").await;
        let proxy = FaultProxy::for_server(server).await.unwrap();
        let config = fx
            .config()
            .conninfo(&through(&proxy, server, &fx))
            .read_timeout(ReadTimeout::Fixed(Duration::from_secs(2)))
            .retry(quick_retry());
        let mut stream = fx.start(config).await;
        fx.exec(&["INSERT INTO r VALUES (1)"]).await;
        let mut applier = Applier::default();
        while applier.applied.is_empty() {
            let event = stream.next_event().await.unwrap().unwrap();
            applier.apply(&stream, event.kind(), v);
        }
        proxy.blackhole();
        let feedback = stream.feedback().clone();
        let detected = Instant::now();
        while feedback.reconnect_attempts() == 0 {
            assert!(
                detected.elapsed() < Duration::from_secs(60),
                "PG {v}: the dead connection was not detected"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        proxy.resume();
        fx.exec(&["INSERT INTO r VALUES (2)"]).await;
        while applier.applied.len() < 2 {
            let event = tokio::time::timeout(Duration::from_secs(60), stream.next_event())
                .await
                .unwrap_or_else(|_| panic!("PG {v}: not recovered"))
                .unwrap()
                .unwrap_or_else(|e| panic!("PG {v}: {e}"));
            applier.apply(&stream, event.kind(), v);
        }
        assert_eq!(applier.applied, [1, 2], "PG {v}");
        assert!(applier.reconnected >= 1, "PG {v}");
        stream.stop().await.unwrap();
    }
}

/// The delivery contract for reports made *after* the reconnect's dial: the new connection
/// resumes where the processed position stood when it was dialled, so the server replays a
/// transaction reported while the application was still busy with the old connection's events;
/// the stream drops that replay (as the server would have skipped it), and delivers the next
/// transaction whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_reported_after_the_dial_is_not_delivered_again() {
    for server in servers() {
        let v = server.version();
        let fx = Fixture::new(server, "replay", DDL, "FOR TABLE r").await;
        let proxy = FaultProxy::for_server(server).await.unwrap();
        let config = fx
            .config()
            .conninfo(&through(&proxy, server, &fx))
            .retry(quick_retry());
        let mut stream = fx.start(config).await;
        fx.exec(&["INSERT INTO r VALUES (1)", "INSERT INTO r VALUES (2)"])
            .await;
        // Both transactions arrive; nothing is reported yet.
        let mut commits = Vec::new();
        while commits.len() < 2 {
            if let EventKind::Commit(c) = next_within_a_minute(&mut stream, v).await.kind() {
                commits.push(*c);
            }
        }
        proxy.cut_all();
        let resume = loop {
            if let EventKind::Reconnected(r) = next_within_a_minute(&mut stream, v).await.kind() {
                break r.resume_lsn;
            }
        };
        // The dial read nothing processed: the server replays from before the first commit.
        assert!(
            resume < commits[0].commit_lsn,
            "PG {v}: resumed at {resume}, after {:?}",
            commits[0]
        );
        // Reported now, after the dial, while the old connection's work is being finished.
        stream.feedback().processed(commits[0].end_lsn);
        fx.exec(&["INSERT INTO r VALUES (3)"]).await;
        let mut ids = Vec::new();
        let mut begins = Vec::new();
        while ids.len() < 2 {
            match next_within_a_minute(&mut stream, v).await.kind() {
                EventKind::Begin(b) => begins.push(b.final_lsn),
                EventKind::Insert(c) => ids.push(text(&c.new_tuple().unwrap(), 0).unwrap()),
                _ => {}
            }
        }
        assert_eq!(ids, ["2", "3"], "PG {v}: replayed {begins:?}");
        assert_eq!(begins[0], commits[1].commit_lsn, "PG {v}");
        stream
            .stop()
            .await
            .unwrap_or_else(|e| panic!("PG {v}: {e}"));
    }
}

async fn next_within_a_minute(stream: &mut LogicalStream, v: u32) -> pg_walstream_stream::Event {
    tokio::time::timeout(Duration::from_secs(60), stream.next_event())
        .await
        .unwrap_or_else(|_| panic!("PG {v}: no event within 60 s"))
        .unwrap_or_else(|| panic!("PG {v}: the stream ended"))
        .unwrap_or_else(|e| panic!("PG {v}: {e}"))
}
