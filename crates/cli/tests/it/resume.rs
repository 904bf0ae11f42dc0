//! `recv -o FILE` interrupted (SIGINT, SIGKILL) and restarted, in every output format: the
//! file ends up holding every committed row exactly once and no half line or frame.
//!
//! The interruption points are chosen by the output the test observes (the file's length),
//! never by sleeping: SIGINT while a streamed transaction's block is being written and the
//! transaction is still open on the server (json, text, raw) or while a large transaction's
//! line is being written (jsonl-tx), then SIGKILL twice while transactions are written.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pg_walstream_testkit::{servers, unique_name};
use serde_json::Value;

use crate::support::{Fixture, args, bin, column, ok_lines, run, stderr};

/// More than the 64 KiB output buffer: a file this long holds bytes of the transaction being
/// written (the earlier, acknowledged output is far shorter).
const PAST_BUFFER: u64 = 64 * 1024 + 1;

fn spawn_recv(ci: &str, slot: &str, format: &str, path: &str, streaming: bool) -> Child {
    let mut command = Command::new(bin());
    command.args([
        "recv",
        "-d",
        ci,
        "--slot",
        slot,
        "--publication",
        "p",
        "--format",
        format,
        "-o",
        path,
        // Only the stop's final status update (never one on the timer) reports progress, so a
        // SIGKILL always leaves the slot behind the file.
        "--status-interval",
        "3600",
    ]);
    if streaming {
        command.args(["--streaming", "on"]);
    }
    command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn recv")
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Waits until the output file is at least `len` bytes long (the process still running).
async fn wait_for_len(v: u32, child: &mut Child, path: &Path, len: u64) {
    let start = Instant::now();
    while file_len(path) < len {
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!("PostgreSQL {v}: recv exited ({status}) before writing {len} bytes");
        }
        // A generous bound against a hang, not a timing assertion.
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "PostgreSQL {v}: {} has {} bytes, not {len}, after 300 s",
            path.display(),
            file_len(path)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn interrupt(v: u32, mut child: Child) {
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let mut err = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        std::io::Read::read_to_string(&mut pipe, &mut err).expect("stderr");
    }
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert_eq!(status.code(), Some(0), "PostgreSQL {v}: SIGINT: {err}");
    assert!(err.is_empty(), "PostgreSQL {v}: {err}");
}

fn kill(mut child: Child) {
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");
}

async fn insert(fx: &Fixture, from: i32, count: i32) {
    fx.admin
        .batch_execute(&format!(
            "INSERT INTO t SELECT i, repeat('x', 100), NULL FROM generate_series({from}, {}) i",
            from + count - 1
        ))
        .await
        .expect("insert");
}

fn insert_id(event: &Value) -> Option<i64> {
    (event["kind"] == "insert").then(|| {
        column(&event["new"], "id")["text"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("no id in {event}"))
    })
}

fn parse_line(v: u32, format: &str, index: usize, line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| {
        panic!("PostgreSQL {v}: {format}: line {index} is broken ({e}): {line:.300}")
    })
}

/// The inserted ids the file holds, checking that every line or frame is whole.
async fn ids_in_file(v: u32, format: &str, path: &Path) -> Vec<i64> {
    let bytes = std::fs::read(path).expect("read output");
    if format != "raw" {
        assert!(
            bytes.ends_with(b"\n"),
            "PostgreSQL {v}: {format}: the file ends inside a line"
        );
    }
    match format {
        "json" => String::from_utf8(bytes)
            .expect("UTF-8")
            .lines()
            .enumerate()
            .filter_map(|(i, l)| insert_id(&parse_line(v, format, i, l)))
            .collect(),
        "jsonl-tx" => String::from_utf8(bytes)
            .expect("UTF-8")
            .lines()
            .enumerate()
            .flat_map(|(i, l)| {
                let unit = parse_line(v, format, i, l);
                let events = unit["events"].as_array().cloned().unwrap_or_default();
                events.iter().filter_map(insert_id).collect::<Vec<_>>()
            })
            .collect(),
        "text" => {
            let text = String::from_utf8(bytes).expect("UTF-8");
            let value = format!("v[text]='{}' big[text]=NULL", "x".repeat(100));
            text.lines()
                .enumerate()
                .filter_map(|(i, line)| {
                    let kind = line.split(' ').next().unwrap_or("");
                    assert!(
                        matches!(
                            kind,
                            "BEGIN"
                                | "COMMIT"
                                | "RELATION"
                                | "INSERT"
                                | "STREAM_START"
                                | "STREAM_STOP"
                                | "STREAM_COMMIT"
                        ),
                        "PostgreSQL {v}: text: line {i} is broken: {line:.300}"
                    );
                    if kind != "INSERT" {
                        return None;
                    }
                    let id = line
                        .split_once("id[int4]='")
                        .and_then(|(_, rest)| rest.split_once('\''))
                        .and_then(|(id, rest)| Some((id.parse::<i64>().ok()?, rest)));
                    match id {
                        Some((id, rest)) if rest.trim_start().starts_with(&value) => Some(id),
                        _ => panic!("PostgreSQL {v}: text: line {i} is broken: {line:.300}"),
                    }
                })
                .collect()
        }
        "raw" => {
            let arg = path.to_string_lossy().into_owned();
            let decoded = run(args(&["decode", &arg])).await;
            ok_lines(v, "decode of the raw capture", &decoded)
                .iter()
                .filter_map(insert_id)
                .collect()
        }
        other => unreachable!("{other}"),
    }
}

async fn interrupted_and_resumed(fx: &Fixture, format: &str, dir: &Path) {
    let v = fx.version();
    let ci = fx.conninfo();
    let slot = unique_name("cli_resume");
    ok_lines(
        v,
        "slot create",
        &run(args(&["slot", "create", "-d", &ci, &slot])).await,
    );
    let path = dir.join(format!("resume-{v}.{format}"));
    let arg = path.to_string_lossy().into_owned();
    let mut expected: Vec<i64> = Vec::new();
    let mut add = |from: i32, count: i32| expected.extend((from..from + count).map(i64::from));

    // 1. SIGINT with output written after the last acknowledgement.
    let streaming_block = format != "jsonl-tx";
    let mut child = spawn_recv(&ci, &slot, format, &arg, streaming_block);
    insert(fx, 1, 3).await;
    add(1, 3);
    if streaming_block {
        // A transaction still open on the server, streamed (2000 rows exceed the test
        // servers' logical_decoding_work_mem): its blocks are written, never acknowledged.
        let open = fx.server.admin(&fx.db).await;
        open.batch_execute(
            "BEGIN; INSERT INTO t SELECT i, repeat('x', 100), NULL FROM generate_series(1000, 2999) i",
        )
        .await
        .expect("open transaction");
        wait_for_len(v, &mut child, &path, PAST_BUFFER).await;
        interrupt(v, child).await;
        open.batch_execute("COMMIT").await.expect("commit");
    } else {
        // One line of several MB: SIGINT lands while it is being written.
        insert(fx, 1000, 4000).await;
        wait_for_len(v, &mut child, &path, PAST_BUFFER).await;
        interrupt(v, child).await;
    }
    add(1000, if streaming_block { 2000 } else { 4000 });

    // 2. and 3. SIGKILL while transactions are written (a torn buffer, an unsynced tail).
    for (from, count) in [(30_000, 1500), (40_000, 1500)] {
        let before = file_len(&path);
        let mut child = spawn_recv(&ci, &slot, format, &arg, true);
        insert(fx, from, 3).await;
        insert(fx, from + 10, count).await;
        add(from, 3);
        add(from + 10, count);
        wait_for_len(v, &mut child, &path, before + PAST_BUFFER).await;
        kill(child);
    }

    // 4. To the end.
    let end = fx.current_lsn().await;
    let out = run(args(&[
        "recv",
        "-d",
        &ci,
        "--slot",
        &slot,
        "--publication",
        "p",
        "--format",
        format,
        "-o",
        &arg,
        "--streaming",
        "on",
        "--endpos",
        &end,
        "--drop-slot",
    ]))
    .await;
    assert!(
        out.status.success(),
        "PostgreSQL {v}: {format}: {}",
        stderr(&out)
    );

    let mut ids = ids_in_file(v, format, &path).await;
    ids.sort_unstable();
    let mut duplicates = ids.clone();
    duplicates.dedup();
    let duplicated = ids.len() - duplicates.len();
    assert_eq!(
        duplicated, 0,
        "PostgreSQL {v}: {format}: {duplicated} rows are in the file more than once"
    );
    assert_eq!(
        ids.len(),
        expected.len(),
        "PostgreSQL {v}: {format}: rows missing"
    );
    assert!(ids == expected, "PostgreSQL {v}: {format}: other rows");
    fx.admin
        .batch_execute("TRUNCATE t")
        .await
        .expect("truncate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_recv_leaves_every_committed_row_once_in_every_format_on_every_version() {
    let dir = tempfile::tempdir().unwrap();
    for server in servers() {
        let fx = Fixture::new(server, "cli_resume").await;
        for format in ["json", "jsonl-tx", "text", "raw"] {
            let started = Instant::now();
            interrupted_and_resumed(&fx, format, dir.path()).await;
            eprintln!(
                "PostgreSQL {}: {format}: {:.1} s",
                fx.version(),
                started.elapsed().as_secs_f64()
            );
        }
    }
}
