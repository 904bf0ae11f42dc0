//! Writes WAL on a real server and asks the server what it wrote.

use std::collections::BTreeMap;

use pg_walstream_codec::Lsn;
use pg_walstream_testkit::{TestServer, unique_name};
use tokio_postgres::Client;

use super::Row;

/// The WAL range a workload wrote and the server's view of it.
pub(crate) struct Generated {
    pub(crate) version: u32,
    /// The segment files from the one holding `start` to the one holding `end`, read while
    /// the test's physical slot still kept them (a checkpoint by another test on the shared
    /// server may remove them once it is dropped).
    pub(crate) wal: Vec<u8>,
    pub(crate) segment_size: u32,
    pub(crate) start: Lsn,
    pub(crate) end: Lsn,
    /// The `wal_compression` methods used for full-page images (besides none).
    pub(crate) compressions: Vec<&'static str>,
    /// pg_get_wal_records_info over the range (15+).
    pub(crate) walinspect: Option<Vec<Row>>,
    /// pg_get_wal_records_info's `description` of each record (15+; '' for none).
    pub(crate) descriptions: Option<Vec<String>>,
    /// pg_get_wal_stats(per_record) over the range: count, record size, FPI size (15+).
    pub(crate) stats: Option<BTreeMap<String, (i64, i64, i64)>>,
}

async fn lsn(client: &Client, sql: &str) -> Lsn {
    let text: String = client.query_one(sql, &[]).await.unwrap().get(0);
    text.parse().unwrap()
}

/// A pgbench-like round on a fresh table: load, checkpoint (so the next change of every
/// page logs a full-page image, compressed as `wal_compression` says), update every page,
/// then small transactions.
async fn round(client: &Client, table: &str) {
    client
        .batch_execute(&format!(
            "CREATE TABLE {table} (aid int PRIMARY KEY, bid int, abalance int, filler char(84));
             INSERT INTO {table} SELECT g, g % 10, 0, '' FROM generate_series(1, 5000) g;
             CHECKPOINT;
             UPDATE {table} SET abalance = abalance + 1 WHERE aid % 40 = 0;"
        ))
        .await
        .unwrap();
    for i in 0..20 {
        client
            .batch_execute(&format!(
                "BEGIN;
                 UPDATE {table} SET abalance = abalance + {i} WHERE aid = {};
                 DELETE FROM {table} WHERE aid = {};
                 INSERT INTO {table} VALUES ({}, 1, 0, 'x');
                 COMMIT;",
                i * 97 + 1,
                i * 89 + 2,
                10_000 + i
            ))
            .await
            .unwrap();
    }
    client
        .batch_execute(&format!(
            "BEGIN; INSERT INTO {table} VALUES (-1); ROLLBACK;"
        ))
        .await
        .unwrap();
    // Commit and abort records with subtransactions, dropped relations and invalidation
    // messages; pruning, freezing and visibility-map records from a vacuum; catalog
    // multi-inserts from CREATE TABLE.
    client
        .batch_execute(&format!(
            "BEGIN; SAVEPOINT a; INSERT INTO {table} VALUES (-2); RELEASE a;
                    SAVEPOINT b; INSERT INTO {table} VALUES (-3); COMMIT;
             BEGIN; SAVEPOINT c; INSERT INTO {table} VALUES (-4); RELEASE c; ROLLBACK;
             CREATE TABLE {table}_gone (x int); DROP TABLE {table}_gone;
             DELETE FROM {table} WHERE aid % 3 = 0;"
        ))
        .await
        .unwrap();
    client
        .batch_execute(&format!("VACUUM (FREEZE) {table}"))
        .await
        .unwrap();
}

pub(crate) async fn generate(server: &TestServer) -> Generated {
    let version = server.version();
    let db = server.create_database("wal").await;
    let client = server.admin(&db).await;
    let inspect = version >= 15;
    if inspect {
        client
            .batch_execute("CREATE EXTENSION pg_walinspect")
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL {version}: pg_walinspect: {e}"));
    }
    let slot = unique_name("walkeep");
    client
        .execute(
            "SELECT pg_create_physical_replication_slot($1, true)",
            &[&slot],
        )
        .await
        .unwrap();
    let timeline: i32 = client
        .query_one("SELECT timeline_id FROM pg_control_checkpoint()", &[])
        .await
        .unwrap()
        .get(0);
    let segment_size: i64 = client
        .query_one(
            "SELECT setting::bigint * (CASE unit WHEN 'B' THEN 1 WHEN 'kB' THEN 1024 ELSE 1048576 END) \
             FROM pg_settings WHERE name = 'wal_segment_size'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let start = lsn(&client, "SELECT pg_current_wal_insert_lsn()::text").await;

    let candidates: &[(&str, &'static str)] = if version == 14 {
        &[("off", "none"), ("on", "pglz")]
    } else {
        &[
            ("off", "none"),
            ("pglz", "pglz"),
            ("lz4", "lz4"),
            ("zstd", "zstd"),
        ]
    };
    let mut compressions = Vec::new();
    for (setting, name) in candidates {
        if client
            .batch_execute(&format!("SET wal_compression = {setting}"))
            .await
            .is_err()
        {
            eprintln!(
                "PostgreSQL {version}: wal_compression = {setting} is not supported by this build"
            );
            continue;
        }
        round(&client, &format!("acc_{name}")).await;
        if *name != "none" {
            compressions.push(*name);
        }
    }
    // A segment switch, then one record longer than a segment (it spans a boundary), then a
    // commit that flushes it all.
    client
        .batch_execute("SELECT pg_switch_wal()")
        .await
        .unwrap();
    client
        .execute(
            "SELECT pg_logical_emit_message(false, 'wal-test', repeat('x', $1::int))",
            &[&((segment_size + 4096) as i32)],
        )
        .await
        .unwrap();
    client
        .batch_execute("CREATE TABLE done (x int); INSERT INTO done VALUES (1)")
        .await
        .unwrap();
    let end = lsn(&client, "SELECT pg_current_wal_flush_lsn()::text").await;

    let (walinspect, descriptions, stats) = if inspect {
        // Commit times in UTC, the zone our descriptions use.
        client.batch_execute("SET TimeZone = 'UTC'").await.unwrap();
        let rows = client
            .query(
                "SELECT start_lsn::text, end_lsn::text, prev_lsn::text, xid::text::bigint,
                        resource_manager, record_type, record_length::bigint,
                        main_data_length::bigint, fpi_length::bigint,
                        ((length(coalesce(block_ref, '')) -
                          length(replace(coalesce(block_ref, ''), 'blkref #', ''))) / 8)::bigint,
                        coalesce(description, ''), coalesce(block_ref, '')
                 FROM pg_get_wal_records_info($1::text::pg_lsn, $2::text::pg_lsn)",
                &[&start.to_string(), &end.to_string()],
            )
            .await
            .unwrap();
        let descriptions = rows.iter().map(|r| pg_waldump_times(r.get(10))).collect();
        let rows = rows
            .iter()
            .map(|r| Row {
                start: r.get(0),
                end: r.get(1),
                prev: r.get(2),
                xid: r.get(3),
                rmgr: r.get(4),
                record_type: r.get(5),
                record_length: r.get(6),
                main_data_length: r.get(7),
                fpi_length: r.get(8),
                blocks: r.get(9),
                block_refs: r.get(11),
            })
            .collect();
        let stats = client
            .query(
                "SELECT \"resource_manager/record_type\", count::bigint, record_size::bigint,
                        fpi_size::bigint
                 FROM pg_get_wal_stats($1::text::pg_lsn, $2::text::pg_lsn, true)
                 WHERE count > 0",
                &[&start.to_string(), &end.to_string()],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get::<_, String>(0), (r.get(1), r.get(2), r.get(3))))
            .collect();
        (Some(rows), Some(descriptions), Some(stats))
    } else {
        (None, None, None)
    };
    let segment = u64::from(segment_size as u32);
    let wal = super::segments::read_range(
        &server.data_dir().join("pg_wal"),
        timeline as u32,
        Lsn::new(start.as_u64() / segment * segment),
        end,
        segment_size as u32,
    );
    client
        .execute("SELECT pg_drop_replication_slot($1)", &[&slot])
        .await
        .unwrap();
    Generated {
        version,
        wal,
        segment_size: segment_size as u32,
        start,
        end,
        compressions,
        walinspect,
        descriptions,
        stats,
    }
}

/// pg_walinspect's description with each timestamp (`2024-01-02 03:04:05.6+00`, the
/// backend's ISO style in UTC, fraction without trailing zeros) written as pg_waldump
/// writes it under `TZ=UTC` (`2024-01-02 03:04:05.600000 UTC`).
pub(crate) fn pg_waldump_times(text: &str) -> String {
    use std::fmt::Write as _;
    let b = text.as_bytes();
    let shape = b"0000-00-00 00:00:00";
    let digit_at = |i: usize, j: usize| -> bool {
        b.get(i + j).is_some_and(|c| match shape[j] {
            b'0' => c.is_ascii_digit(),
            s => *c == s,
        })
    };
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        if (0..shape.len()).all(|j| digit_at(i, j)) {
            let mut k = i + shape.len();
            let mut frac = String::new();
            if b.get(k) == Some(&b'.') {
                k += 1;
                while b.get(k).is_some_and(u8::is_ascii_digit) {
                    frac.push(char::from(b[k]));
                    k += 1;
                }
            }
            if text[k..].starts_with("+00") {
                out.push_str(&text[i..i + shape.len()]);
                let _ = write!(out, ".{frac:0<6} UTC");
                i = k + 3;
                continue;
            }
        }
        let ch = text[i..].chars().next().unwrap();
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

#[test]
fn walinspect_times_become_pg_waldump_times() {
    assert_eq!(
        pg_waldump_times("7: 2024-01-02 03:04:05.6+00; rels: base/5/1"),
        "7: 2024-01-02 03:04:05.600000 UTC; rels: base/5/1"
    );
    assert_eq!(
        pg_waldump_times("2024-01-02 03:04:05+00"),
        "2024-01-02 03:04:05.000000 UTC"
    );
    assert_eq!(pg_waldump_times("off: 3, x"), "off: 3, x");
}
