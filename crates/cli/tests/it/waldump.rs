//! `pg-walstream waldump` on WAL written by each server: `--stats=record` and the record
//! lines of the types in [`EXACT_TYPES`] equal pg_waldump's (where a pg_waldump of the same
//! major version exists: Debian's 15, the PyPI wheel's 18),
//! JSON lines and saved full-page images agree with the stats, and a flipped bit, a
//! truncated segment and a missing segment end with one line naming the LSN and exit 1.

use std::path::Path;
use std::process::Command;

use pg_walstream_testkit::{TestServer, servers, unique_name};

use crate::support::{args, json_lines, run, stderr};

/// The WAL of a small pgbench-like workload (after a checkpoint, so with full-page
/// images), spanning a segment switch, copied out of pg_wal into `dir`.
struct Wal {
    start: String,
    end: String,
    /// (segment file name, first LSN of the segment) of the copied files.
    files: Vec<(String, u64)>,
}

async fn generate(server: &TestServer, dir: &Path) -> Wal {
    let db = server.create_database("waldump").await;
    let c = server.admin(&db).await;
    let slot = unique_name("waldump");
    c.execute(
        "SELECT pg_create_physical_replication_slot($1, true)",
        &[&slot],
    )
    .await
    .unwrap();
    let q = |sql: &'static str| {
        let c = &c;
        async move {
            let row = c.query_one(sql, &[]).await.unwrap();
            row.get::<_, String>(0)
        }
    };
    c.batch_execute(
        "CREATE TABLE a (aid int PRIMARY KEY, abalance int, filler char(84));
         INSERT INTO a SELECT g, 0, '' FROM generate_series(1, 3000) g;
         CHECKPOINT;",
    )
    .await
    .unwrap();
    let start = q("SELECT pg_current_wal_insert_lsn()::text").await;
    c.batch_execute("UPDATE a SET abalance = 1 WHERE aid % 30 = 0; SELECT pg_switch_wal();")
        .await
        .unwrap();
    for i in 0..20 {
        c.batch_execute(&format!(
            "UPDATE a SET abalance = abalance + 1 WHERE aid = {}",
            i * 7 + 1
        ))
        .await
        .unwrap();
    }
    // Commits and aborts with subtransactions, dropped relations and invalidations; a
    // vacuum's pruning, freezing and visibility records; catalog multi-inserts.
    c.batch_execute(
        "BEGIN; SAVEPOINT s; INSERT INTO a VALUES (-1); RELEASE s; COMMIT;
         BEGIN; SAVEPOINT t; INSERT INTO a VALUES (-2); RELEASE t; ROLLBACK;
         CREATE TABLE gone (x int); DROP TABLE gone;
         DELETE FROM a WHERE aid % 4 = 0;",
    )
    .await
    .unwrap();
    c.batch_execute("VACUUM (FREEZE) a").await.unwrap();
    let end = q("SELECT pg_current_wal_flush_lsn()::text").await;
    let seg_size: i64 = c
        .query_one(
            "SELECT setting::bigint * 1048576 FROM pg_settings WHERE name = 'wal_segment_size' AND unit = 'MB' \
             UNION ALL SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size' AND unit = 'B'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let seg_size = seg_size as u64;
    let lsn = |s: &str| {
        let (hi, lo) = s.split_once('/').unwrap();
        (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap()
    };
    let mut files = Vec::new();
    for segno in lsn(&start) / seg_size..=lsn(&end) / seg_size {
        let per_log = 0x1_0000_0000 / seg_size;
        let name = format!("{:08X}{:08X}{:08X}", 1, segno / per_log, segno % per_log);
        std::fs::copy(
            server.data_dir().join("pg_wal").join(&name),
            dir.join(&name),
        )
        .unwrap();
        files.push((name, segno * seg_size));
    }
    c.execute("SELECT pg_drop_replication_slot($1)", &[&slot])
        .await
        .unwrap();
    Wal { start, end, files }
}

/// (rmgr, record type) whose `waldump` line must equal pg_waldump's byte for byte.
const EXACT_TYPES: [(&str, &str); 36] = [
    ("Transaction", "COMMIT"),
    ("Transaction", "ABORT"),
    ("Transaction", "COMMIT_PREPARED"),
    ("Transaction", "ABORT_PREPARED"),
    ("Transaction", "ASSIGNMENT"),
    ("Transaction", "INVALIDATION"),
    ("Heap2", "PRUNE"),
    ("Heap2", "VACUUM"),
    ("Heap2", "FREEZE_PAGE"),
    ("Heap2", "PRUNE_ON_ACCESS"),
    ("Heap2", "PRUNE_VACUUM_SCAN"),
    ("Heap2", "PRUNE_VACUUM_CLEANUP"),
    ("Heap2", "VISIBLE"),
    ("Heap2", "MULTI_INSERT"),
    ("Heap2", "MULTI_INSERT+INIT"),
    ("Heap", "INSERT"),
    ("Heap", "INSERT+INIT"),
    ("Heap", "DELETE"),
    ("Heap", "UPDATE"),
    ("Heap", "UPDATE+INIT"),
    ("Heap", "HOT_UPDATE"),
    ("Heap", "HOT_UPDATE+INIT"),
    ("Heap", "LOCK"),
    ("Btree", "INSERT_LEAF"),
    ("Btree", "INSERT_UPPER"),
    ("Btree", "DEDUP"),
    ("Btree", "SPLIT_L"),
    ("Btree", "SPLIT_R"),
    ("XLOG", "CHECKPOINT_ONLINE"),
    ("XLOG", "CHECKPOINT_SHUTDOWN"),
    ("Standby", "LOCK"),
    ("Standby", "RUNNING_XACTS"),
    ("XLOG", "FPI"),
    ("XLOG", "FPI_FOR_HINT"),
    ("XLOG", "SWITCH"),
    ("XLOG", "CHECKPOINT_REDO"),
];

fn normalized(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect()
}

/// A pg_waldump of exactly `version`, if one is installed: beside the server, Debian's, or
/// the PyPI wheel's (18) that `cargo xtask test` installs under target/bench-tools.
fn pg_waldump(version: u32) -> Option<std::path::PathBuf> {
    pg_walstream_testkit::client_tool_of_version("pg_waldump", version)
}

fn one_line_failure(what: &str, output: &std::process::Output, needle: &str) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(1), "{what}: {err}");
    assert_eq!(err.lines().count(), 1, "{what}: not one line: {err:?}");
    assert!(err.contains(needle), "{what}: {err:?} lacks {needle:?}");
}

#[tokio::test]
async fn waldump_matches_pg_waldump_and_reports_damage() {
    for server in servers() {
        let v = server.version();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("wal");
        std::fs::create_dir(&dir).unwrap();
        let wal = generate(server, &dir).await;
        let d = dir.to_str().unwrap();
        let range = ["-p", d, "-s", &wal.start, "-e", &wal.end];

        let ours = run(args(
            &[&["waldump"][..], &range, &["--stats=record"]].concat(),
        ))
        .await;
        assert!(ours.status.success(), "PostgreSQL {v}: {}", stderr(&ours));
        let ours_text = String::from_utf8_lossy(&ours.stdout).into_owned();
        if let Some(tool) = pg_waldump(v) {
            eprintln!("PostgreSQL {v}: comparing with {}", tool.display());
            let theirs = Command::new(tool)
                .args([&range[..], &["--stats=record"]].concat())
                .output()
                .unwrap();
            assert!(theirs.status.success(), "pg_waldump: {}", stderr(&theirs));
            assert_eq!(
                normalized(&ours_text),
                normalized(&String::from_utf8_lossy(&theirs.stdout)),
                "PostgreSQL {v}: --stats=record differs from pg_waldump's"
            );
            let rmgr = run(args(&[&["waldump"][..], &range, &["--stats"]].concat())).await;
            let theirs = Command::new(pg_waldump(v).unwrap())
                .args([&range[..], &["--stats"]].concat())
                .output()
                .unwrap();
            assert_eq!(
                normalized(&String::from_utf8_lossy(&rmgr.stdout)),
                normalized(&String::from_utf8_lossy(&theirs.stdout)),
                "PostgreSQL {v}: --stats differs from pg_waldump's"
            );
            // Record lines: byte for byte equal for the record types whose description is
            // pg_waldump's own (the codec's `desc_exact`); the others differ only after `desc:`.
            // pg_waldump prints commit times in local time; ours are UTC.
            let ours = run(args(&[&["waldump"][..], &range].concat())).await;
            let theirs = Command::new(pg_waldump(v).unwrap())
                .env("TZ", "UTC")
                .args(range)
                .output()
                .unwrap();
            let ours = String::from_utf8_lossy(&ours.stdout).into_owned();
            let theirs = String::from_utf8_lossy(&theirs.stdout).into_owned();
            assert_eq!(
                ours.lines().count(),
                theirs.lines().count(),
                "PostgreSQL {v}: record lines"
            );
            let mut exact = 0;
            let mut kinds = std::collections::BTreeSet::new();
            for (a, b) in ours.lines().zip(theirs.lines()) {
                let (head_a, _) = a.split_once("desc: ").unwrap();
                let (head_b, _) = b.split_once("desc: ").unwrap();
                assert_eq!(head_a, head_b, "PostgreSQL {v}: record line");
                if let Some(t) = EXACT_TYPES.iter().find(|t| {
                    a.starts_with(&format!("rmgr: {:<11} ", t.0))
                        && a.contains(&format!("desc: {} ", t.1))
                }) {
                    assert_eq!(
                        a, b,
                        "PostgreSQL {v}: record line differs from pg_waldump's"
                    );
                    exact += 1;
                    kinds.insert(format!("{}/{}", t.0, t.1));
                }
            }
            assert!(
                exact > 100,
                "PostgreSQL {v}: {exact} lines compared exactly"
            );
            // Pruning and visibility records depend on the server-wide xmin horizon (other
            // tests' slots may hold it back): compared whenever present, required never.
            eprintln!("PostgreSQL {v}: {exact} lines equal pg_waldump's, of {kinds:?}");
            for kind in ["Transaction/COMMIT", "Transaction/ABORT"] {
                assert!(
                    kinds.contains(kind),
                    "PostgreSQL {v}: no {kind} line compared: {kinds:?}"
                );
            }
            assert!(
                kinds.iter().any(|k| k.starts_with("Heap2/MULTI_INSERT")),
                "PostgreSQL {v}: no MULTI_INSERT line compared: {kinds:?}"
            );
        }
        let total: Vec<u64> = normalized(&ours_text)
            .iter()
            .find(|l| l.starts_with("Total "))
            .unwrap()
            .split(' ')
            .filter_map(|w| w.parse().ok())
            .collect();

        // JSON: one object per record, the same count and FPI bytes as the stats.
        let saved = tmp.path().join("fpw");
        std::fs::create_dir(&saved).unwrap();
        let json = run(args(
            &[
                &["waldump"][..],
                &range,
                &["--json", "--save-fullpage", saved.to_str().unwrap()],
            ]
            .concat(),
        ))
        .await;
        assert!(json.status.success(), "PostgreSQL {v}: {}", stderr(&json));
        let records = json_lines(&json);
        assert_eq!(
            records.len() as u64,
            total[0],
            "PostgreSQL {v}: JSON records"
        );
        let fpi: u64 = records
            .iter()
            .map(|r| r["fpi_length"].as_u64().unwrap())
            .sum();
        assert_eq!(fpi, total[2], "PostgreSQL {v}: FPI bytes");
        let images: usize = records
            .iter()
            .flat_map(|r| r["blocks"].as_array().unwrap())
            .filter(|b| !b["image"].is_null())
            .count();
        let files: Vec<_> = std::fs::read_dir(&saved).unwrap().collect();
        assert!(
            images > 0,
            "PostgreSQL {v}: the workload should log full-page images"
        );
        assert_eq!(files.len(), images, "PostgreSQL {v}: saved images");
        for f in files {
            assert_eq!(f.unwrap().metadata().unwrap().len(), 8192);
        }
        // pg_waldump 16+ saves them too: the same names, byte for byte.
        if let Some(tool) = pg_waldump(v).filter(|_| v >= 16) {
            let theirs_dir = tmp.path().join("fpw-theirs");
            std::fs::create_dir(&theirs_dir).unwrap();
            let out = Command::new(tool)
                .args(
                    [
                        &range[..],
                        &["-q", "--save-fullpage", theirs_dir.to_str().unwrap()],
                    ]
                    .concat(),
                )
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "pg_waldump --save-fullpage: {}",
                stderr(&out)
            );
            let mut names: Vec<_> = std::fs::read_dir(&theirs_dir)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort();
            eprintln!(
                "PostgreSQL {v}: comparing {} saved full-page images",
                names.len()
            );
            assert_eq!(
                names.len(),
                images,
                "PostgreSQL {v}: pg_waldump saved images"
            );
            for name in names {
                assert!(
                    std::fs::read(theirs_dir.join(&name)).unwrap()
                        == std::fs::read(saved.join(&name)).unwrap_or_default(),
                    "PostgreSQL {v}: saved page {name:?} differs from pg_waldump's"
                );
            }
        }

        // A flipped bit in a record that fits in its page: reported at that record.
        let victim = records
            .iter()
            .filter(|r| r["rmgr"] == "Heap" && r["total_length"].as_u64().unwrap() > 60)
            .find(|r| {
                let lsn = parse_lsn(r["lsn"].as_str().unwrap());
                lsn % 8192 + r["total_length"].as_u64().unwrap() < 8192
            })
            .expect("a heap record within one page");
        let lsn = parse_lsn(victim["lsn"].as_str().unwrap());
        let (name, seg_start) = wal.files.iter().rev().find(|(_, s)| *s <= lsn).unwrap();
        let path = dir.join(name);
        let mut bytes = std::fs::read(&path).unwrap();
        let at = (lsn - seg_start) as usize + victim["total_length"].as_u64().unwrap() as usize - 1;
        bytes[at] ^= 0x04;
        std::fs::write(&path, &bytes).unwrap();
        let bad = run(args(&[&["waldump"][..], &range, &["-q"]].concat())).await;
        one_line_failure(
            &format!("PostgreSQL {v}: flipped bit"),
            &bad,
            &format!("checksum in record at {}", victim["lsn"].as_str().unwrap()),
        );
        bytes[at] ^= 0x04;

        // The segment cut inside a record: a typed "ends inside a record" error.
        std::fs::write(&path, &bytes[..(lsn - seg_start) as usize + 10]).unwrap();
        let cut = run(args(&[&["waldump"][..], &range, &["-q"]].concat())).await;
        one_line_failure(
            &format!("PostgreSQL {v}: truncated"),
            &cut,
            "inside a record",
        );
        // The segment missing: the file name and where the WAL continues.
        std::fs::remove_file(&path).unwrap();
        if wal.files.len() > 1 && name != &wal.files[0].0 {
            let gap = run(args(&[&["waldump"][..], &range, &["-q"]].concat())).await;
            one_line_failure(&format!("PostgreSQL {v}: missing segment"), &gap, name);
        }
    }
}

fn parse_lsn(s: &str) -> u64 {
    let (hi, lo) = s.split_once('/').unwrap();
    (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap()
}

#[tokio::test]
async fn rmgr_list_and_bad_arguments() {
    let list = run(args(&["waldump", "--rmgr=list"])).await;
    assert!(list.status.success());
    let text = String::from_utf8_lossy(&list.stdout);
    assert_eq!(text.lines().count(), 22);
    assert!(text.starts_with("XLOG\nTransaction\n"));
    let bad = run(args(&["waldump", "-r", "Nope", "-p", "/nonexistent"])).await;
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("resource manager \"Nope\" does not exist"));
    let bad = run(args(&["waldump", "-s", "12", "-p", "/"])).await;
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
}
