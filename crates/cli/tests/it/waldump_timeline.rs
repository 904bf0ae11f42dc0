//! `waldump -t 2` across a promotion: with `00000002.history` in the directory, the range
//! starting on timeline 1 is read from timeline 1's segments up to the switch point and
//! from timeline 2's after it — every record, as pg_walinspect on the promoted server lists
//! them (15+); without the history file only timeline 2's files are read, as pg_waldump does.

use pg_walstream_testkit::{TestServer, servers, unique_name};

use crate::support::{args, json_lines, run, stderr};

async fn text(c: &tokio_postgres::Client, sql: &str) -> String {
    c.query_one(sql, &[]).await.unwrap().get(0)
}

fn parse_lsn(s: &str) -> u64 {
    let (hi, lo) = s.split_once('/').unwrap();
    (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap()
}

#[tokio::test]
async fn waldump_follows_a_timeline_switch_with_the_history_file() {
    for shared in servers() {
        let v = shared.version();
        let server = TestServer::start(v).unwrap();
        let c = server.admin("postgres").await;
        // The slot keeps timeline 1's segments from `start` on through the promotion.
        c.execute(
            "SELECT pg_create_physical_replication_slot($1, true)",
            &[&unique_name("waldump_tli")],
        )
        .await
        .unwrap();
        c.batch_execute(
            "CREATE TABLE t (i int, filler text);
             INSERT INTO t SELECT g, repeat('x', 100) FROM generate_series(1, 2000) g;
             CHECKPOINT;",
        )
        .await
        .unwrap();
        let start = text(&c, "SELECT pg_current_wal_insert_lsn()::text").await;
        c.batch_execute("UPDATE t SET i = i + 1 WHERE i % 10 = 0; SELECT pg_switch_wal();")
            .await
            .unwrap();
        c.batch_execute("UPDATE t SET i = i + 1 WHERE i % 10 = 1")
            .await
            .unwrap();
        drop(c);

        // Restart as a standby with nothing to follow, and promote: timeline 2.
        server.stop_server().unwrap();
        std::fs::write(server.data_dir().join("standby.signal"), "").unwrap();
        server.start_again().unwrap();
        let c = server.admin("postgres").await;
        let promoted: bool = c
            .query_one("SELECT pg_promote(true, 60)", &[])
            .await
            .unwrap()
            .get(0);
        assert!(promoted, "PostgreSQL {v}: promotion");
        c.batch_execute("UPDATE t SET i = i + 1 WHERE i % 10 = 2; SELECT pg_switch_wal();")
            .await
            .unwrap();
        c.batch_execute("UPDATE t SET i = i + 1 WHERE i % 10 = 3")
            .await
            .unwrap();
        // Records before `cut` are complete well before `end`.
        let cut = text(&c, "SELECT pg_current_wal_insert_lsn()::text").await;
        c.batch_execute("INSERT INTO t VALUES (0, 'last')")
            .await
            .unwrap();
        let end = text(&c, "SELECT pg_current_wal_flush_lsn()::text").await;

        let pg_wal = server.data_dir().join("pg_wal");
        let history = std::fs::read_to_string(pg_wal.join("00000002.history")).unwrap();
        let switch = history
            .lines()
            .find_map(|l| l.strip_prefix("1\t"))
            .and_then(|rest| rest.split('\t').next())
            .map_or_else(|| panic!("PostgreSQL {v}: history {history:?}"), parse_lsn);
        assert!(
            parse_lsn(&start) < switch && switch < parse_lsn(&cut),
            "PostgreSQL {v}: the switch point {switch:X} lies inside the range"
        );

        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().to_str().unwrap();
        for entry in std::fs::read_dir(&pg_wal).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_file() {
                std::fs::copy(entry.path(), tmp.path().join(entry.file_name())).unwrap();
            }
        }
        let range = ["-p", d, "-t", "2", "-s", &start, "-e", &end];
        let out = run(args(&[&["waldump"][..], &range, &["--json"]].concat())).await;
        assert!(out.status.success(), "PostgreSQL {v}: {}", stderr(&out));
        let records = json_lines(&out);
        let ours: Vec<(String, String, String)> = records
            .iter()
            .filter(|r| parse_lsn(r["lsn"].as_str().unwrap()) < parse_lsn(&cut))
            .map(|r| {
                (
                    r["lsn"].as_str().unwrap().to_owned(),
                    r["rmgr"].as_str().unwrap().to_owned(),
                    r["type"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert!(
            ours.iter().any(|(l, _, _)| parse_lsn(l) < switch)
                && ours.iter().any(|(l, _, _)| parse_lsn(l) >= switch),
            "PostgreSQL {v}: records on both timelines"
        );
        // Timeline 2 begins with the end-of-recovery record.
        let first_after = ours
            .iter()
            .find(|(l, _, _)| parse_lsn(l) >= switch)
            .unwrap();
        assert_eq!(
            (first_after.1.as_str(), first_after.2.as_str()),
            ("XLOG", "END_OF_RECOVERY"),
            "PostgreSQL {v}: the first record of timeline 2"
        );
        if v >= 15 {
            c.batch_execute("CREATE EXTENSION pg_walinspect")
                .await
                .unwrap();
            let rows = c
                .query(
                    "SELECT start_lsn::text, resource_manager, record_type \
                     FROM pg_get_wal_records_info($1::text::pg_lsn, $2::text::pg_lsn) \
                     WHERE start_lsn < $2::text::pg_lsn",
                    &[&start, &cut],
                )
                .await
                .unwrap();
            let theirs: Vec<(String, String, String)> = rows
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect();
            assert_eq!(
                ours, theirs,
                "PostgreSQL {v}: records differ from pg_walinspect's"
            );
        }

        // --stats across the switch: the same on four threads as on one.
        let stats = |jobs: &str| {
            std::process::Command::new(crate::support::bin())
                .args(["waldump", "--stats=record", "--jobs", jobs])
                .args(range)
                .output()
                .unwrap()
        };
        let (one, four) = (stats("1"), stats("4"));
        assert!(one.status.success(), "PostgreSQL {v}: {}", stderr(&one));
        assert!(
            one.stdout == four.stdout && one.status.code() == four.status.code(),
            "PostgreSQL {v}: --stats on four threads differs across the switch: {}",
            stderr(&four)
        );

        // Without the history file only timeline 2's files count: the range's first
        // segment is not there (pg_waldump's behaviour).
        std::fs::remove_file(tmp.path().join("00000002.history")).unwrap();
        let out = run(args(&[&["waldump"][..], &range, &["-q"]].concat())).await;
        assert_eq!(
            out.status.code(),
            Some(1),
            "PostgreSQL {v}: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains("could not find file \"00000002"),
            "PostgreSQL {v}: {}",
            stderr(&out)
        );
    }
}
