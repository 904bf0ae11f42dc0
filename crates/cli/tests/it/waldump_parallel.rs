//! `waldump --stats` decoded by several threads prints exactly what one thread prints: on
//! WAL of 1 MiB segments with records spanning segment (so chunk) boundaries and an
//! `XLOG_SWITCH`, with `-s`/`-e` inside segments, to the end of WAL, and with damage in a middle segment (a flipped bit in
//! a record and in a record crossing a boundary, a truncated and a missing segment): the
//! same standard output, the same one-line error, the same exit code — and equal to
//! pg_waldump's statistics where one of the same version is installed. The trace variable
//! shows that the chunks were merged (not decoded again by one thread).

use std::path::Path;
use std::process::{Command, Output};

use pg_walstream_testkit::{TestServer, servers, unique_name};

use crate::support::{bin, stderr};

const SEGMENT: u64 = 1 << 20;
const TRACE: &str = "PG_WALSTREAM_WALDUMP_TRACE";

fn parse_lsn(s: &str) -> u64 {
    let (hi, lo) = s.split_once('/').unwrap();
    (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap()
}

fn lsn_text(v: u64) -> String {
    format!("{:X}/{:X}", v >> 32, v as u32)
}

fn segment_name(number: u64) -> String {
    let per_log = 0x1_0000_0000 / SEGMENT;
    format!("{:08X}{:08X}{:08X}", 1, number / per_log, number % per_log)
}

async fn lsn(c: &tokio_postgres::Client) -> u64 {
    let row = c
        .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
        .await
        .unwrap();
    parse_lsn(row.get(0))
}

/// Writes ~8 MiB of WAL on a server with 1 MiB segments: updates after checkpoints (full-page
/// images), inserts, and after each a logical message sized to cross the next segment
/// boundary; an `XLOG_SWITCH` in the middle. Returns (start, end) of the range, both inside segments; the segments are
/// copied into `dir` while the last one is still being written (so it ends in zeros).
async fn generate(server: &TestServer, dir: &Path) -> (u64, u64) {
    let c = server.admin("postgres").await;
    c.execute(
        "SELECT pg_create_physical_replication_slot($1, true)",
        &[&unique_name("wal_par")],
    )
    .await
    .unwrap();
    c.batch_execute(
        "CREATE TABLE p (aid int PRIMARY KEY, abalance int, filler char(84));
         INSERT INTO p SELECT g, 0, '' FROM generate_series(1, 5000) g;
         CHECKPOINT;",
    )
    .await
    .unwrap();
    // Start past the segment start, on a record boundary.
    c.batch_execute("SELECT pg_switch_wal(); UPDATE p SET abalance = 1 WHERE aid = 1")
        .await
        .unwrap();
    let start = lsn(&c).await;
    for round in 0..8 {
        if round == 3 {
            // A switch in the middle: the rest of its segment is skipped.
            c.batch_execute("SELECT pg_switch_wal()").await.unwrap();
            continue;
        }
        c.batch_execute(&format!(
            "UPDATE p SET abalance = abalance + 1 WHERE aid % 6 = {round};
             INSERT INTO p SELECT g, 0, '' FROM generate_series({a}, {b}) g;
             CHECKPOINT;",
            a = 10_000 + round * 1000,
            b = 10_999 + round * 1000,
        ))
        .await
        .unwrap();
        // A message from here to a few KiB past the next segment start.
        let at = lsn(&c).await;
        let to_boundary = SEGMENT - at % SEGMENT;
        c.execute(
            "SELECT pg_logical_emit_message(false, 'wal_par', repeat('m', $1::text::int))",
            &[&((to_boundary + 5000) as i64).to_string()],
        )
        .await
        .unwrap();
    }
    c.batch_execute("INSERT INTO p VALUES (-1)").await.unwrap();
    let end = lsn(&c).await;
    c.batch_execute("INSERT INTO p VALUES (-2)").await.unwrap();
    for number in start / SEGMENT..=lsn(&c).await / SEGMENT {
        let name = segment_name(number);
        std::fs::copy(
            server.data_dir().join("pg_wal").join(&name),
            dir.join(&name),
        )
        .unwrap();
    }
    (start, end)
}

/// (LSN, total length) of every record in the range, from one thread's `--json`.
fn records(dir: &Path, range: &[&str]) -> Vec<(u64, u64)> {
    let out = waldump(dir, 1, &[range, &["--json"]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let r: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                parse_lsn(r["lsn"].as_str().unwrap()),
                r["total_length"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn waldump(dir: &Path, jobs: u32, extra: &[&str]) -> Output {
    Command::new(bin())
        .args(["waldump", "-p", dir.to_str().unwrap(), "--jobs"])
        .arg(jobs.to_string())
        .args(extra)
        .env(TRACE, "1")
        .output()
        .unwrap()
}

/// Runs one thread and four on `extra`; asserts the same output and returns the
/// sequential run and the parallel run's trace line.
fn same(v: u32, what: &str, dir: &Path, extra: &[&str]) -> (Output, String) {
    let one = waldump(dir, 1, extra);
    let four = waldump(dir, 4, extra);
    let (one_err, four_err) = (stderr(&one), stderr(&four));
    let trace: Vec<&str> = four_err
        .lines()
        .filter(|l| l.starts_with("waldump: 4 jobs"))
        .collect();
    let errors: Vec<&str> = four_err
        .lines()
        .filter(|l| !l.starts_with("waldump: "))
        .collect();
    assert_eq!(trace.len(), 1, "PostgreSQL {v}, {what}: trace {four_err:?}");
    assert!(
        !one_err.contains("waldump: "),
        "PostgreSQL {v}, {what}: {one_err:?}"
    );
    assert!(
        one.stdout == four.stdout,
        "PostgreSQL {v}, {what}: standard output differs"
    );
    assert_eq!(
        one_err.lines().collect::<Vec<_>>(),
        errors,
        "PostgreSQL {v}, {what}: errors"
    );
    assert_eq!(
        one.status.code(),
        four.status.code(),
        "PostgreSQL {v}, {what}"
    );
    (one, trace[0].to_owned())
}

/// How many chunks the trace line says were merged.
fn merged(trace: &str) -> usize {
    trace
        .strip_suffix(" merged")
        .and_then(|t| t.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not merged: {trace:?}"))
}

fn normalized(text: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(text)
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect()
}

#[tokio::test]
async fn parallel_stats_equal_sequential_ones() {
    for shared in servers() {
        let v = shared.version();
        let server = TestServer::builder(v)
            .initdb_arg("--wal-segsize=1")
            .setting("autovacuum", "off")
            .start()
            .unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let (start, end) = generate(&server, dir).await;
        let segments = end / SEGMENT - start / SEGMENT + 1;
        assert!(segments >= 7, "PostgreSQL {v}: {segments} segments");
        assert!(start % SEGMENT != 0 && end % SEGMENT != 0);
        let (s, e) = (lsn_text(start), lsn_text(end));
        let range = ["-s", &s, "-e", &e];
        let all = records(dir, &range);
        let crossing: Vec<u64> = all
            .iter()
            // At least 200 bytes in the next segment (the messages: some KiB).
            .filter(|(l, len)| l % SEGMENT + len > SEGMENT + 200)
            .map(|(l, _)| *l)
            .collect();
        assert!(crossing.len() >= 6, "PostgreSQL {v}: {crossing:X?}");

        for stats in ["--stats", "--stats=record"] {
            let (out, trace) = same(v, stats, dir, &[&range[..], &[stats]].concat());
            assert!(out.status.success(), "PostgreSQL {v}: {}", stderr(&out));
            if stats == "--stats=record" {
                let text = String::from_utf8_lossy(&out.stdout);
                assert!(text.contains("XLOG/SWITCH"), "PostgreSQL {v}: {text}");
            }
            assert!(merged(&trace) >= 6, "PostgreSQL {v}: {trace}");
            if let Some(tool) = pg_walstream_testkit::client_tool_of_version("pg_waldump", v) {
                let theirs = Command::new(tool)
                    .args(["-p", dir.to_str().unwrap()])
                    .args([&range[..], &[stats]].concat())
                    .output()
                    .unwrap();
                assert!(theirs.status.success(), "pg_waldump: {}", stderr(&theirs));
                assert_eq!(
                    normalized(&out.stdout),
                    normalized(&theirs.stdout),
                    "PostgreSQL {v}: {stats} differs from pg_waldump's"
                );
            }
        }
        // A filter, and the start on a segment boundary.
        let (out, trace) = same(
            v,
            "-r Heap",
            dir,
            &[&range[..], &["--stats", "-r", "Heap"]].concat(),
        );
        assert!(
            out.status.success() && merged(&trace) >= 6,
            "PostgreSQL {v}: {trace}"
        );
        let seg_start = lsn_text(start / SEGMENT * SEGMENT + SEGMENT);
        let (out, _) = same(
            v,
            "-s at a segment",
            dir,
            &["-s", &seg_start, "-e", &e, "--stats"],
        );
        assert!(out.status.success(), "PostgreSQL {v}: {}", stderr(&out));

        // To the end of WAL: the zeros after the last record.
        let (out, trace) = same(v, "end of WAL", dir, &["-s", &s, "--stats"]);
        assert_eq!(out.status.code(), Some(1), "PostgreSQL {v}");
        assert!(merged(&trace) >= 6, "PostgreSQL {v}: {trace}");

        // Damage in a middle segment.
        let middle = start / SEGMENT + segments / 2;
        let path = dir.join(segment_name(middle));
        let original = std::fs::read(&path).unwrap();
        let mut flipped = original.clone();
        // The last byte of a record within one page of that segment.
        let (victim, len) = all
            .iter()
            .find(|(l, len)| l / SEGMENT == middle && l % 8192 + len < 8192 && *len > 30)
            .copied()
            .unwrap_or_else(|| panic!("PostgreSQL {v}: no record in segment {middle:X}"));
        flipped[(victim % SEGMENT + len - 1) as usize] ^= 0x10;
        std::fs::write(&path, &flipped).unwrap();
        let (out, trace) = same(v, "flipped bit", dir, &[&range[..], &["--stats"]].concat());
        assert_eq!(out.status.code(), Some(1), "PostgreSQL {v}");
        let line = stderr(&out);
        assert!(
            line.contains(&format!("record at {}", lsn_text(victim))),
            "PostgreSQL {v}: {line}"
        );
        assert!(merged(&trace) >= 2, "PostgreSQL {v}: {trace}");

        std::fs::write(&path, &original[..(SEGMENT / 3) as usize]).unwrap();
        let (out, _) = same(v, "truncated", dir, &[&range[..], &["--stats"]].concat());
        assert_eq!(out.status.code(), Some(1), "PostgreSQL {v}");
        std::fs::remove_file(&path).unwrap();
        let (out, _) = same(v, "missing", dir, &[&range[..], &["--stats"]].concat());
        assert_eq!(out.status.code(), Some(1), "PostgreSQL {v}");
        std::fs::write(&path, &original).unwrap();

        // A flipped bit in the part of a crossing record that lies in the next segment:
        // reported by the chunk where the record starts, at its LSN.
        let at = crossing[crossing.len() / 2];
        let next = dir.join(segment_name(at / SEGMENT + 1));
        let original = std::fs::read(&next).unwrap();
        let mut flipped = original.clone();
        flipped[100] ^= 0x01;
        std::fs::write(&next, &flipped).unwrap();
        let (out, _) = same(
            v,
            "crossing record",
            dir,
            &[&range[..], &["--stats"]].concat(),
        );
        assert_eq!(out.status.code(), Some(1), "PostgreSQL {v}");
        let line = stderr(&out);
        assert!(
            line.contains(&format!("record at {}", lsn_text(at))),
            "PostgreSQL {v}: {line}"
        );
        std::fs::write(&next, &original).unwrap();

        // The last segment cut in a record: the same error at the end.
        let last = dir.join(segment_name(end / SEGMENT));
        let bytes = std::fs::read(&last).unwrap();
        std::fs::write(&last, &bytes[..(end % SEGMENT) as usize - 3]).unwrap();
        let (out, _) = same(v, "truncated last", dir, &["-s", &s, "--stats"]);
        assert_eq!(out.status.code(), Some(1), "PostgreSQL {v}");
    }
}
