//! `recv --format jsonl-tx --streaming on` keeps memory flat on a large streamed transaction:
//! its events wait in a temporary file, not in memory, until its Stream Commit.

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::Instant;

use pg_walstream_testkit::{servers, unique_name};

use crate::support::{Fixture, args, bin, ok_lines, run};

/// Rows of the transaction: ~9.7 KB of JSON each (a 9600-character value stored out of line,
/// uncompressed), ~240 MB in all.
const ROWS: usize = 25_000;

/// The peak resident set of a running process, from `/proc/<pid>/status`.
fn peak_rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM");
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_streamed_transaction_in_jsonl_tx_keeps_memory_flat() {
    // One version is enough to show the bound; the newest of the run.
    let server = servers().last().expect("a server");
    let fx = Fixture::new(server, "cli_spool").await;
    let v = fx.version();
    let ci = fx.conninfo();
    let slot = unique_name("cli_spool");
    ok_lines(
        v,
        "slot create",
        &run(args(&["slot", "create", "-d", &ci, &slot])).await,
    );
    let started = Instant::now();
    fx.admin
        .batch_execute(&format!(
            "INSERT INTO t SELECT i, 'v', repeat(md5(i::text), 300) FROM generate_series(1, {ROWS}) i"
        ))
        .await
        .expect("large transaction");
    let mut child = Command::new(bin())
        .args([
            "recv",
            "-d",
            &ci,
            "--slot",
            &slot,
            "--publication",
            "p",
            "--format",
            "jsonl-tx",
            "--streaming",
            "on",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn recv");
    let pid = child.id();
    let mut stdout = child.stdout.take().unwrap();
    // Reads the transaction's line in chunks (never whole), counting its bytes and inserts.
    let (line_bytes, inserts, head) = tokio::task::spawn_blocking(move || {
        let needle = br#"{"kind":"insert""#;
        let mut buf = vec![0u8; 1 << 20];
        let (mut total, mut inserts, mut head) = (0u64, 0usize, Vec::new());
        let mut carry: Vec<u8> = Vec::new();
        loop {
            let n = stdout.read(&mut buf).expect("read stdout");
            assert!(n > 0, "recv closed its output before the transaction ended");
            let chunk = &buf[..n];
            let newline = chunk.iter().position(|b| *b == b'\n');
            let used = &chunk[..newline.map_or(n, |p| p + 1)];
            total += used.len() as u64;
            if head.len() < 128 {
                head.extend_from_slice(&used[..used.len().min(128)]);
            }
            carry.extend_from_slice(used);
            inserts += carry.windows(needle.len()).filter(|w| w == needle).count();
            let keep = carry.len().saturating_sub(needle.len() - 1);
            carry.drain(..keep);
            if newline.is_some() {
                return (total, inserts, head);
            }
        }
    })
    .await
    .expect("join");
    // Still running (no --endpos): its peak so far covers the whole transaction.
    let peak = peak_rss_bytes(pid);
    let killed = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("wait");
    assert_eq!(
        output.status.code(),
        Some(0),
        "PostgreSQL {v}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!(
        "PostgreSQL {v}: streamed transaction of {ROWS} rows, {} MB of JSON; peak RSS of recv \
         {} MB; {:.1} s",
        line_bytes >> 20,
        peak >> 20,
        started.elapsed().as_secs_f64()
    );
    assert!(
        head.starts_with(br#"{"kind":"transaction","xid":"#)
            && String::from_utf8_lossy(&head).contains(r#""streamed":true"#),
        "PostgreSQL {v}: {}",
        String::from_utf8_lossy(&head)
    );
    assert_eq!(
        inserts, ROWS,
        "PostgreSQL {v}: every row in the transaction"
    );
    assert!(
        line_bytes > 200 << 20,
        "PostgreSQL {v}: the transaction is {line_bytes} bytes"
    );
    // Memory holds bounded buffers only: the stream's channel (1 MiB of messages) and the
    // read buffers its events pin, the runtime, the mapped binary. Their high-water mark
    // depends on how far this reader lets recv fall behind (31 MB for 23 MB of JSON, 47-48 MB
    // for 234 and 468 MB on a quiet machine, up to 65 MB on a busy one), never on the
    // transaction's size; holding the transaction would take more than its whole size.
    assert!(
        peak < line_bytes / 2,
        "PostgreSQL {v}: peak RSS {peak} bytes for a streamed transaction of {line_bytes} bytes"
    );
    ok_lines(
        v,
        "slot drop",
        &run(args(&["slot", "drop", "-d", &ci, &slot, "--wait"])).await,
    );
}
