//! The delivery contract across a process crash right after a *post-dial* report (issue 17):
//! a consumer process receives two transactions without reporting, its connection is cut,
//! the stream redials (resuming before both), and only then the consumer reports the first
//! one's `end_lsn` — a report the new connection's start position does not contain. The
//! process is SIGKILLed right after that report (once at once, with no periodic status update
//! due for an hour, once after the slot confirmed it) and started again at the reported position: no
//! transaction at or before it is delivered again and nothing after it is skipped.
//!
//! The consumer is this test binary run again with [`CHILD_ENV`] set ([`crash_child`]). It
//! writes one line per event of interest, each in one `write(2)`: `C END_LSN ID DROPPED` per
//! Commit (`DROPPED`: the stream's count of replays it dropped so far),
//! `R` per `Reconnected`, `P LSN` once it has reported `LSN`.

use std::io::Write as _;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use pg_walstream_codec::Lsn;
use pg_walstream_stream::{EventKind, LogicalConfig, RetryPolicy};
use pg_walstream_testkit::{AuthUser, FaultProxy, TestServer, servers, unique_name};

use crate::chaos::connect;
use crate::support::{backend, drop_slot_when_released, spawn_test_process, text};

/// The child's settings: `conninfo \t slot \t output \t start LSN \t status interval (ms)
/// \t mode` (`hold`: report nothing until a reconnect, then the first commit seen; `follow`:
/// report every commit).
const CHILD_ENV: &str = "PG_WALSTREAM_CRASH_REPORT_CHILD";
/// A generous bound against a hang, never a timing assertion.
const PATIENCE: Duration = Duration::from_secs(120);

/// The consumer (only when run as this test's child; otherwise it returns at once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child() {
    let Ok(settings) = std::env::var(CHILD_ENV) else {
        return;
    };
    let fields: Vec<&str> = settings.split('\t').collect();
    let [conninfo, slot, output, start, status_ms, mode] = fields[..] else {
        panic!("bad {CHILD_ENV}: {settings:?}");
    };
    let mut config = LogicalConfig::builder()
        .conninfo(conninfo)
        .backend(backend())
        .slot(slot)
        .publication("pub")
        .status_interval(Duration::from_millis(status_ms.parse().expect("interval")))
        .retry(RetryPolicy::default().initial_delay(Duration::from_millis(50)));
    let start: Lsn = start.parse().expect("start LSN");
    if start != Lsn::INVALID {
        config = config.start_lsn(start);
    }
    let mut stream = connect(config.build().expect("config")).await;
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(output)
        .expect("output");
    let (mut first_commit, mut reported, mut id) = (None, false, String::new());
    while let Some(event) = stream.next_event().await {
        let event = event.unwrap_or_else(|e| panic!("the stream failed: {e}"));
        match event.kind() {
            EventKind::Insert(change) => id = text(&change.new_tuple().expect("row"), 0).unwrap(),
            EventKind::Commit(c) => {
                let dropped = stream.replays_dropped();
                out.write_all(format!("C {} {id} {dropped}\n", c.end_lsn).as_bytes())
                    .expect("output");
                first_commit.get_or_insert(c.end_lsn);
                if mode == "follow" {
                    stream.feedback().processed(c.end_lsn);
                }
            }
            EventKind::Reconnected(_) => {
                out.write_all(b"R\n").expect("output");
                if mode == "hold" && !reported {
                    // Reported after the dial: the new connection's start does not hold it.
                    let lsn = first_commit.expect("a commit before the cut");
                    stream.feedback().processed(lsn);
                    out.write_all(format!("P {lsn}\n").as_bytes())
                        .expect("output");
                    reported = true;
                }
            }
            _ => {}
        }
    }
    panic!("the stream ended");
}

fn spawn(
    conninfo: &str,
    slot: &str,
    output: &Path,
    start: Lsn,
    status_ms: u64,
    mode: &str,
) -> Child {
    let settings = format!(
        "{conninfo}\t{slot}\t{}\t{start}\t{status_ms}\t{mode}",
        output.display()
    );
    spawn_test_process("crash_report::crash_child", CHILD_ENV, &settings)
}

/// The child's output lines so far.
fn lines(output: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(output).unwrap_or_default();
    let whole = text.rfind('\n').map_or(0, |i| i + 1);
    text[..whole].lines().map(str::to_owned).collect()
}

/// Waits until `done` holds for the child's lines; panics if the child exits.
async fn wait_until(output: &Path, child: &mut Child, v: u32, done: impl Fn(&[String]) -> bool) {
    let started = Instant::now();
    while !done(&lines(output)) {
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "PG {v}: the consumer exited: {:?}",
            lines(output)
        );
        assert!(started.elapsed() < PATIENCE, "PG {v}: {:?}", lines(output));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The lines after the `P` line.
fn after_report(lines: &[String]) -> &[String] {
    let p = lines
        .iter()
        .position(|l| l.starts_with("P "))
        .map_or(lines.len(), |i| i + 1);
    &lines[p..]
}

/// `(end_lsn, id)` of each `C` line.
fn commits(lines: &[String]) -> Vec<(Lsn, i64)> {
    commit_fields(lines).map(|(lsn, id, _)| (lsn, id)).collect()
}

/// `(end_lsn, id, replays dropped)` of each `C` line.
fn commit_fields(lines: &[String]) -> impl Iterator<Item = (Lsn, i64, u64)> + '_ {
    lines.iter().filter_map(|l| l.strip_prefix("C ")).map(|l| {
        let mut fields = l.split(' ');
        let mut next = || fields.next().expect("C line");
        let lsn = next().parse().expect("LSN");
        let id = next().parse().expect("id");
        (lsn, id, next().parse().expect("dropped"))
    })
}

async fn confirmed(server: &TestServer, db: &str, slot: &str) -> Lsn {
    let admin = server.admin(db).await;
    let row = admin
        .query_one(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .unwrap();
    row.get::<_, String>(0).parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_right_after_a_post_dial_report_redelivers_nothing_reported_and_skips_nothing() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for server in servers() {
        let v = server.version();
        // Killed at once (no periodic status update due for an hour: the report has most
        // likely not reached the server), and killed once the slot has confirmed it.
        for confirmed_first in [false, true] {
            let db = server.create_database("crashrep").await;
            let admin = server.admin(&db).await;
            admin
                .batch_execute(
                    "CREATE TABLE r (id bigint PRIMARY KEY); CREATE PUBLICATION pub FOR TABLE r",
                )
                .await
                .unwrap();
            let slot = unique_name("crashrep");
            admin
                .execute(
                    "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
                    &[&slot],
                )
                .await
                .unwrap();
            let proxy = FaultProxy::for_server(server).await.unwrap();
            let conninfo = format!(
                "{} sslmode=disable",
                proxy.conninfo(server, AuthUser::Scram, &db)
            );
            let first = dir.path().join(format!("{v}-{confirmed_first}-a"));
            let status_ms = if confirmed_first { 100 } else { 3_600_000 };
            let mut child = spawn(&conninfo, &slot, &first, Lsn::INVALID, status_ms, "hold");
            for id in 1..=2 {
                admin
                    .batch_execute(&format!("INSERT INTO r VALUES ({id})"))
                    .await
                    .unwrap();
            }
            wait_until(&first, &mut child, v, |l| commits(l).len() == 2).await;
            proxy.cut_all();
            wait_until(&first, &mut child, v, |l| {
                l.iter().any(|l| l.starts_with("P "))
            })
            .await;
            let reported: Lsn = lines(&first)
                .iter()
                .find_map(|l| l.strip_prefix("P "))
                .unwrap()
                .parse()
                .unwrap();
            let before = commits(&lines(&first)[..2]);
            assert_eq!(
                reported, before[0].0,
                "PG {v}: the first commit was reported"
            );
            if confirmed_first {
                // The unreported second transaction comes again on the new connection; the
                // reported first one must not (dropped as a replay).
                wait_until(&first, &mut child, v, |l| {
                    commits(after_report(l)).iter().any(|c| c.1 == 2)
                })
                .await;
                let started = Instant::now();
                while confirmed(server, &db, &slot).await < reported {
                    assert!(started.elapsed() < PATIENCE, "PG {v}: never confirmed");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            child.kill().unwrap();
            child.wait().unwrap();
            let killed = lines(&first);
            if confirmed_first {
                // Transaction 1 came again after the report and was dropped by the stream.
                let (_, _, dropped) = commit_fields(after_report(&killed))
                    .find(|c| c.1 == 2)
                    .expect("transaction 2 again");
                assert_eq!(dropped, 1, "PG {v}: replays dropped before transaction 2");
            }
            let replayed = commits(after_report(&killed));
            assert!(
                replayed.iter().all(|(end, _)| *end > reported),
                "PG {v}: delivered again after the report of {reported}: {replayed:?}"
            );
            // The restart, at the position the killed process reported.
            let second = dir.path().join(format!("{v}-{confirmed_first}-b"));
            let mut child = spawn(&conninfo, &slot, &second, reported, 100, "follow");
            admin
                .batch_execute("INSERT INTO r VALUES (3)")
                .await
                .unwrap();
            wait_until(&second, &mut child, v, |l| {
                commits(l).iter().any(|c| c.1 == 3)
            })
            .await;
            child.kill().unwrap();
            child.wait().unwrap();
            let after = commits(&lines(&second));
            assert!(
                after.iter().all(|(end, _)| *end > reported),
                "PG {v}: delivered again at or before {reported}: {after:?}"
            );
            let ids: Vec<i64> = before
                .iter()
                .filter(|(end, _)| *end <= reported)
                .chain(&after)
                .map(|c| c.1)
                .collect();
            assert_eq!(
                ids,
                [1, 2, 3],
                "PG {v} ({confirmed_first}): before {before:?}, after {after:?}"
            );
            drop(proxy);
            drop_slot_when_released(server, &admin, &slot).await;
        }
    }
}
