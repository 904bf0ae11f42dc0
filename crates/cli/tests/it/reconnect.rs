//! `recv -o FILE` reconnecting by itself (issue 17): connections cut by the testkit's proxy
//! (at once and in the middle of a message), the walsender terminated, the server restarted,
//! crashed while recv was reconnecting and recv SIGKILLed then, and started again. The file
//! ends up holding every committed row exactly once, in commit order.
//!
//! Faults are injected by progress (rows seen in the file, connections seen by the proxy),
//! never by time.

use std::io::Read as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pg_walstream_testkit::{AuthUser, FaultProxy, TestServer, servers, unique_name};
use serde_json::Value;

use crate::support::{args, bin, column, ok_lines, run};

const SCHEMA: &str = "CREATE TABLE t (id int PRIMARY KEY, v text, big text);
                      CREATE PUBLICATION p FOR TABLE t;";

/// A generous bound against a hang, never a timing assertion.
const PATIENCE: Duration = Duration::from_secs(120);

fn spawn_recv(conninfo: &str, slot: &str, format: &str, path: &Path) -> Child {
    Command::new(bin())
        .args(["recv", "-d", conninfo, "--slot", slot, "--publication", "p"])
        .args([
            "--format",
            format,
            "--streaming",
            "on",
            "--status-interval",
            "1",
        ])
        .arg("-o")
        .arg(path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn recv")
}

fn insert_id(event: &Value) -> Option<i64> {
    (event["kind"] == "insert").then(|| {
        column(&event["new"], "id")["text"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("no id in {event}"))
    })
}

/// The ids in the file's complete lines (a line being written is left out).
fn ids_in(path: &Path, format: &str) -> Vec<i64> {
    let text = std::fs::read(path).unwrap_or_default();
    let end = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let text = String::from_utf8_lossy(&text[..end]);
    let mut ids = Vec::new();
    for line in text.lines() {
        let value: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{format}: a broken line ({e}): {line:.300}"));
        if format == "jsonl-tx" {
            let events = value["events"].as_array().cloned().unwrap_or_default();
            ids.extend(events.iter().filter_map(insert_id));
        } else {
            ids.extend(insert_id(&value));
        }
    }
    ids
}

/// Waits until the file's complete lines hold at least `count` rows.
async fn wait_for_rows(v: u32, child: &mut Child, path: &Path, format: &str, count: usize) {
    let start = Instant::now();
    loop {
        let seen = ids_in(path, format).len();
        if seen >= count {
            return;
        }
        if let Some(status) = child.try_wait().expect("try_wait") {
            let mut err = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = pipe.read_to_string(&mut err);
            }
            panic!("PostgreSQL {v}: recv exited ({status}) at {seen} of {count} rows: {err}");
        }
        assert!(
            start.elapsed() < PATIENCE,
            "PostgreSQL {v}: {seen} of {count} rows in the file after {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// SIGINT, exit code 0; returns standard error.
async fn interrupt(v: u32, mut child: Child) -> String {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let mut err = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        pipe.read_to_string(&mut err).expect("stderr");
    }
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert_eq!(status.code(), Some(0), "PostgreSQL {v}: SIGINT: {err}");
    err
}

/// Commits rows `from..from+count` in transactions of 1–`largest` rows (a fixed sequence).
async fn commit_rows(client: &tokio_postgres::Client, from: i64, count: i64, largest: i64) {
    let mut next = from;
    let mut size = 1;
    while next < from + count {
        let last = (next + size - 1).min(from + count - 1);
        client
            .batch_execute(&format!(
                "INSERT INTO t SELECT i, 'x', NULL FROM generate_series({next}, {last}) i"
            ))
            .await
            .expect("insert");
        next = last + 1;
        size = size * 7 % largest + 1;
    }
}

fn assert_each_row_once(v: u32, format: &str, path: &Path, total: i64) {
    let ids = ids_in(path, format);
    let bytes = std::fs::read(path).expect("read");
    assert!(
        bytes.is_empty() || bytes.ends_with(b"\n"),
        "PostgreSQL {v}: {format}: the file ends inside a line"
    );
    let expected: Vec<i64> = (1..=total).collect();
    if ids != expected {
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        panic!(
            "PostgreSQL {v}: {format}: {} rows in the file, {} distinct, {total} committed",
            ids.len(),
            sorted.len()
        );
    }
}

/// Drops `slot` once the stopped receiver's walsender has released it.
async fn drop_slot(server: &TestServer, admin: &tokio_postgres::Client, slot: &str) {
    let start = Instant::now();
    while server.slot_active_pid(slot).await.unwrap().is_some() {
        assert!(start.elapsed() < PATIENCE, "{slot} stays active");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    admin
        .execute("SELECT pg_drop_replication_slot($1)", &[&slot])
        .await
        .expect("drop slot");
}

fn reconnect_lines(err: &str) -> usize {
    err.lines()
        .filter(|l| l.contains("reconnected after"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recv_reconnects_after_cuts_and_a_terminated_walsender_with_each_row_once() {
    let dir = tempfile::tempdir().unwrap();
    for server in servers() {
        let v = server.version();
        let db = server.create_database("cli_reconnect").await;
        let admin = server.admin(&db).await;
        admin.batch_execute(SCHEMA).await.expect("schema");
        let ci = server.conninfo(AuthUser::Scram, &db);
        for format in ["json", "jsonl-tx"] {
            let slot = unique_name("cli_reconnect");
            ok_lines(
                v,
                "slot create",
                &run(args(&["slot", "create", "-d", &ci, &slot])).await,
            );
            let proxy = FaultProxy::for_server(server).await.unwrap();
            let path = dir.path().join(format!("reconnect-{v}.{format}"));
            let mut child = spawn_recv(
                &proxy.conninfo(server, AuthUser::Scram, &db),
                &slot,
                format,
                &path,
            );
            let writer = server.admin(&db).await;
            let writer = std::sync::Arc::new(writer);
            let batch = 600;
            for round in 0..4i64 {
                let from = round * batch + 1;
                if round == 2 {
                    // Inside the next CopyData message the server sends: this batch's first.
                    proxy.cut_after_server_bytes(9);
                }
                let accepted = proxy.connections_accepted();
                let writing = {
                    let writer = writer.clone();
                    tokio::spawn(async move { commit_rows(&writer, from, batch, 40).await })
                };
                let half = usize::try_from(from - 1 + batch / 2).unwrap();
                wait_for_rows(v, &mut child, &path, format, half).await;
                match round {
                    0 => proxy.cut_all(),
                    1 => {
                        let start = Instant::now();
                        while server.terminate_walsender(&slot).await.unwrap().is_none() {
                            assert!(start.elapsed() < PATIENCE, "PostgreSQL {v}: no walsender");
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                    _ => {}
                }
                writing.await.unwrap();
                let all = usize::try_from(from - 1 + batch).unwrap();
                wait_for_rows(v, &mut child, &path, format, all).await;
                let start = Instant::now();
                while round < 3 && proxy.connections_accepted() <= accepted {
                    assert!(
                        start.elapsed() < PATIENCE,
                        "PostgreSQL {v}: {format}: round {round} did not reconnect"
                    );
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            let err = interrupt(v, child).await;
            assert_each_row_once(v, format, &path, 4 * batch);
            // The first cut always meets a streaming connection: at least its line. (A later
            // fault may meet a connection being opened, whose retry says "retrying in".)
            assert!(
                reconnect_lines(&err) >= 1,
                "PostgreSQL {v}: {format}: one stderr line per reconnect: {err}"
            );
            eprintln!(
                "PostgreSQL {v}: {format}: {} connections, {} reset, stderr: {err}",
                proxy.connections_accepted(),
                proxy.connections_reset()
            );
            drop_slot(server, &admin, &slot).await;
            admin.batch_execute("TRUNCATE t").await.expect("truncate");
        }
    }
}

/// A server restart, then an immediate shutdown during which recv is SIGKILLed while it is
/// reconnecting (the proxy has seen its attempts), the server started again and a new recv
/// run on the same file: every row once. The killed process's unsynced output is cut back to
/// FILE.ack; the new one starts after FILE.ack's position (a Commit's `end_lsn`: the server
/// skips every commit record that starts before it, `origptr < start_decoding_at` in
/// decode.c, and the next commit record starts at or after it), so nothing is lost or doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recv_survives_a_restart_and_a_kill_while_reconnecting_on_every_version() {
    let dir = tempfile::tempdir().unwrap();
    for version in servers().iter().map(TestServer::version) {
        let server = TestServer::start(version).unwrap();
        let v = server.version();
        let db = server.create_database("cli_restart").await;
        server
            .admin(&db)
            .await
            .batch_execute(SCHEMA)
            .await
            .expect("schema");
        let ci = server.conninfo(AuthUser::Scram, &db);
        let slot = unique_name("cli_restart");
        ok_lines(
            v,
            "slot create",
            &run(args(&["slot", "create", "-d", &ci, &slot])).await,
        );
        let proxy = FaultProxy::for_server(&server).await.unwrap();
        let through = proxy.conninfo(&server, AuthUser::Scram, &db);
        let format = "jsonl-tx";
        let path = dir.path().join(format!("restart-{v}.{format}"));
        let mut first = spawn_recv(&through, &slot, format, &path);

        // 100 rows in small transactions, then 2000 in one (streamed: more than the test
        // servers' logical_decoding_work_mem).
        let writer = server.admin(&db).await;
        commit_rows(&writer, 1, 100, 10).await;
        commit_rows(&writer, 101, 2000, 2000).await;
        wait_for_rows(v, &mut first, &path, format, 2100).await;
        drop(writer);
        let restart = tokio::task::spawn_blocking(move || {
            server.restart().unwrap();
            server
        });
        let server = restart.await.unwrap();
        let writer = server.admin(&db).await;
        commit_rows(&writer, 2101, 100, 10).await;
        wait_for_rows(v, &mut first, &path, format, 2200).await;
        commit_rows(&writer, 2201, 100, 10).await;
        wait_for_rows(v, &mut first, &path, format, 2300).await;
        drop(writer);

        let accepted = proxy.connections_accepted();
        let server = tokio::task::spawn_blocking(move || {
            server.crash_stop().unwrap();
            server
        })
        .await
        .unwrap();
        let start = Instant::now();
        while proxy.connections_accepted() <= accepted {
            assert!(
                start.elapsed() < PATIENCE,
                "PostgreSQL {v}: recv made no reconnect attempt"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        first.kill().expect("SIGKILL");
        first.wait().expect("wait");
        let server = tokio::task::spawn_blocking(move || {
            server.start_again().unwrap();
            server
        })
        .await
        .unwrap();

        let mut second = spawn_recv(&through, &slot, format, &path);
        let writer = server.admin(&db).await;
        commit_rows(&writer, 2301, 100, 10).await;
        wait_for_rows(v, &mut second, &path, format, 2400).await;
        interrupt(v, second).await;
        assert_each_row_once(v, format, &path, 2400);
        drop(proxy);
        server.stop();
    }
}

/// `--no-retry`: the first connection failure ends recv with exit code 1 and one line; a bad
/// `--retry-max-elapsed` is a usage error (exit 2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_retry_stops_at_the_first_failure_and_bad_durations_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    for server in servers() {
        let v = server.version();
        let db = server.create_database("cli_noretry").await;
        let admin = server.admin(&db).await;
        admin.batch_execute(SCHEMA).await.expect("schema");
        let ci = server.conninfo(AuthUser::Scram, &db);
        let slot = unique_name("cli_noretry");
        ok_lines(
            v,
            "slot create",
            &run(args(&["slot", "create", "-d", &ci, &slot])).await,
        );
        for bad in ["0s", "5 parsecs", "-1m"] {
            let out = run(args(&[
                "recv",
                "-d",
                &ci,
                "--slot",
                &slot,
                "-P",
                "p",
                "--retry-max-elapsed",
                bad,
            ]))
            .await;
            assert_eq!(out.status.code(), Some(2), "PostgreSQL {v}: {bad}");
        }
        let proxy = FaultProxy::for_server(server).await.unwrap();
        let path = dir.path().join(format!("noretry-{v}.json"));
        let mut child = Command::new(bin())
            .args(["recv", "-d", &proxy.conninfo(server, AuthUser::Scram, &db)])
            .args(["--slot", &slot, "--publication", "p", "--no-retry", "-o"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn recv");
        admin
            .batch_execute("INSERT INTO t VALUES (1, 'x', NULL)")
            .await
            .unwrap();
        wait_for_rows(v, &mut child, &path, "json", 1).await;
        proxy.cut_all();
        let mut err = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            pipe.read_to_string(&mut err).expect("stderr");
        }
        let status = tokio::task::spawn_blocking(move || child.wait())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status.code(), Some(1), "PostgreSQL {v}: {err}");
        assert_eq!(err.lines().count(), 1, "PostgreSQL {v}: {err}");
        assert_eq!(reconnect_lines(&err), 0, "PostgreSQL {v}: {err}");
        assert_each_row_once(v, "json", &path, 1);
        drop_slot(server, &admin, &slot).await;
    }
}

/// Insert ids in a json or text file's complete lines.
fn ids_in_lines(path: &Path, format: &str) -> Vec<i64> {
    if format == "json" {
        return ids_in(path, format);
    }
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let end = text.rfind('\n').map_or(0, |i| i + 1);
    text[..end]
        .lines()
        .filter(|l| l.starts_with("INSERT "))
        .map(|l| {
            let (_, rest) = l
                .split_once("id[int4]='")
                .unwrap_or_else(|| panic!("no id in {l}"));
            rest[..rest.find('\'').unwrap()].parse().unwrap()
        })
        .collect()
}

async fn wait_for_id(v: u32, child: &mut Child, path: &Path, format: &str, id: i64) {
    let start = Instant::now();
    while !ids_in_lines(path, format).contains(&id) {
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "PostgreSQL {v}: {format}: recv exited"
        );
        assert!(
            start.elapsed() < PATIENCE,
            "PostgreSQL {v}: {format}: no row {id}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Streamed blocks (`--streaming on`, json and text: written as they arrive) of a transaction
/// still running when the connection is cut and when recv is stopped and started again: the
/// server sends that transaction again from its first change each time, so recv acknowledges
/// nothing after its first block until it ends — otherwise `FILE.ack`'s cut would keep the
/// blocks and the file would hold them twice. A transaction committed meanwhile is held back
/// with it and arrives again once. Every committed row is in the file exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recv_keeps_an_open_streamed_transaction_once_across_a_cut_and_a_restart() {
    // json: the first stop is a SIGKILL; text: a SIGINT.
    let dir = tempfile::tempdir().unwrap();
    for server in servers() {
        let v = server.version();
        let db = server.create_database("cli_streamcut").await;
        let admin = server.admin(&db).await;
        admin.batch_execute(SCHEMA).await.expect("schema");
        let ci = server.conninfo(AuthUser::Scram, &db);
        for format in ["json", "text"] {
            let slot = unique_name("cli_streamcut");
            ok_lines(
                v,
                "slot create",
                &run(args(&["slot", "create", "-d", &ci, &slot])).await,
            );
            let proxy = FaultProxy::for_server(server).await.unwrap();
            let through = proxy.conninfo(server, AuthUser::Scram, &db);
            let path = dir.path().join(format!("streamcut-{v}.{format}"));
            let mut child = spawn_recv(&through, &slot, format, &path);
            // 2000 rows in a transaction left open: more than logical_decoding_work_mem, so
            // the server streams them before the commit.
            let open = server.admin(&db).await;
            open.batch_execute(
                "BEGIN; INSERT INTO t SELECT i, 'x', NULL FROM generate_series(1, 2000) i",
            )
            .await
            .expect("open transaction");
            wait_for_id(v, &mut child, &path, format, 1).await;
            commit_rows(&admin, 2001, 10, 3).await;
            wait_for_id(v, &mut child, &path, format, 2010).await;
            // Past recv's one-second sync: without the hold it would have acknowledged 2010.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let accepted = proxy.connections_accepted();
            proxy.cut_all();
            let start = Instant::now();
            while proxy.connections_accepted() <= accepted {
                assert!(start.elapsed() < PATIENCE, "PostgreSQL {v}: no reconnect");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            wait_for_id(v, &mut child, &path, format, 2010).await;
            if format == "json" {
                // A crash while acknowledgements are held: the restart cuts the file back to
                // FILE.ack, before the open transaction's blocks and the commits behind it.
                child.kill().expect("SIGKILL");
                child.wait().expect("wait");
            } else {
                interrupt(v, child).await;
            }
            let mut child = spawn_recv(&through, &slot, format, &path);
            open.batch_execute("COMMIT").await.expect("commit");
            commit_rows(&admin, 2011, 10, 3).await;
            wait_for_id(v, &mut child, &path, format, 2020).await;
            interrupt(v, child).await;
            let mut ids = ids_in_lines(&path, format);
            let total = ids.len();
            ids.sort_unstable();
            ids.dedup();
            let expected: Vec<i64> = (1..=2020).collect();
            assert!(
                total == 2020 && ids == expected,
                "PostgreSQL {v}: {format}: {total} rows in the file, {} distinct, 2020 committed",
                ids.len()
            );
            drop(proxy);
            drop_slot(server, &admin, &slot).await;
            admin.batch_execute("TRUNCATE t").await.expect("truncate");
        }
    }
}
