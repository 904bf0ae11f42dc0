//! The SQL workload run against every server, and the end state it leaves.

use std::collections::BTreeMap;

use pg_walstream_codec::PgTimestamp;
use pg_walstream_testkit::unique_name;
use tokio_postgres::Client;

/// The tables of the workload and their columns (in `SELECT` order; `id` first).
pub(crate) const TABLES: &[(&str, &[&str])] = &[
    ("t_default", &["id", "v", "big", "m", "extra"]),
    ("t_full", &["id", "v", "big"]),
    ("t_trunc", &["id", "v"]),
    ("t_origin", &["id", "v"]),
];

/// Names unique to one run on one server (slots, origins and gids are cluster-wide).
pub(crate) struct Names {
    pub(crate) slot: String,
    pub(crate) two_phase_slot: String,
    pub(crate) origin: String,
    pub(crate) gid_commit: String,
    pub(crate) gid_rollback: String,
    pub(crate) gid_big: String,
}

impl Names {
    pub(crate) fn new() -> Self {
        Self {
            slot: unique_name("codec_fid"),
            two_phase_slot: unique_name("codec_fid_2pc"),
            origin: unique_name("codec_origin"),
            gid_commit: unique_name("gid_commit"),
            gid_rollback: unique_name("gid_rollback"),
            gid_big: unique_name("gid_big"),
        }
    }
}

/// The commit LSN given to `pg_replication_origin_xact_setup` for the origin transaction.
pub(crate) const ORIGIN_LSN: u64 = 0x00AB_CDEF;

/// The commit time given to `pg_replication_origin_xact_setup`: 2020-01-01 00:00:00 UTC,
/// in microseconds since 2000-01-01.
pub(crate) const ORIGIN_COMMIT_TIME: PgTimestamp = PgTimestamp(631_152_000_000_000);

/// Logical decoding messages the workload emits that commit: (prefix, content, transactional).
pub(crate) fn expected_messages() -> Vec<(String, Vec<u8>, bool)> {
    vec![
        ("m_tx".into(), b"hello".to_vec(), true),
        ("m_nt".into(), b"now".to_vec(), false),
        ("m_bytes".into(), vec![0, 0xff, 1], true),
        ("m_stream".into(), b"in stream".to_vec(), true),
    ]
}

/// Schema and publication; runs before the slots exist.
pub(crate) async fn setup(admin: &Client, names: &Names) {
    admin
        .batch_execute(&format!(
            "CREATE TYPE mood AS ENUM ('ok', 'sad');
             CREATE TABLE t_default (id int PRIMARY KEY, v text, big text, m mood);
             ALTER TABLE t_default ALTER COLUMN big SET STORAGE EXTERNAL;
             CREATE TABLE t_full (id int PRIMARY KEY, v text, big text);
             ALTER TABLE t_full ALTER COLUMN big SET STORAGE EXTERNAL;
             ALTER TABLE t_full REPLICA IDENTITY FULL;
             CREATE TABLE t_trunc (id serial PRIMARY KEY, v text);
             CREATE TABLE t_origin (id int PRIMARY KEY, v text);
             CREATE PUBLICATION pub FOR ALL TABLES;
             SELECT pg_replication_origin_create('{}');",
            names.origin
        ))
        .await
        .expect("workload setup");
}

/// The changes: DML, TOAST, identities, messages, ALTER TABLE, streamed, rolled back and
/// prepared transactions, and one transaction from a replication origin.
pub(crate) async fn run(admin: &Client, origin_session: &Client, names: &Names) {
    let statements = [
        // Plain transaction with TOASTed values and a transactional message.
        "BEGIN;
         INSERT INTO t_default VALUES (1, 'a', repeat('x', 3000), 'ok'), (2, 'b', NULL, 'sad'),
                                      (3, 'c', 'small', NULL);
         INSERT INTO t_full VALUES (1, 'a', repeat('y', 3000)), (2, 'b', NULL);
         INSERT INTO t_trunc (v) VALUES ('t1'), ('t2');
         SELECT pg_logical_emit_message(true, 'm_tx', 'hello');
         SELECT pg_logical_emit_message(true, 'm_bytes', '\\x00ff01'::bytea);
         COMMIT;"
            .to_string(),
        "SELECT pg_logical_emit_message(false, 'm_nt', 'now');".to_string(),
        // Unchanged TOAST under DEFAULT and FULL identity; key change; deletes.
        "UPDATE t_default SET v = 'a2' WHERE id = 1;
         UPDATE t_full SET v = 'a2' WHERE id = 1;
         UPDATE t_default SET id = 10 WHERE id = 2;
         DELETE FROM t_default WHERE id = 3;
         DELETE FROM t_full WHERE id = 2;
         TRUNCATE t_trunc RESTART IDENTITY;"
            .to_string(),
        // Schema change mid-stream.
        "ALTER TABLE t_default ADD COLUMN extra int8;
         UPDATE t_default SET extra = 5000000000 WHERE id = 1;
         INSERT INTO t_default VALUES (4, 'd', NULL, 'ok', -1);"
            .to_string(),
        // Big (streamed) transaction with a rolled-back savepoint.
        "BEGIN;
         INSERT INTO t_default SELECT g, repeat('s', 100), NULL, 'ok', g FROM generate_series(1000, 1999) g;
         SELECT pg_logical_emit_message(true, 'm_stream', 'in stream');
         SAVEPOINT s1;
         INSERT INTO t_default SELECT g, repeat('r', 100), NULL, 'sad', g FROM generate_series(2000, 2999) g;
         ROLLBACK TO SAVEPOINT s1;
         INSERT INTO t_default SELECT g, 'after', NULL, NULL, NULL FROM generate_series(3000, 3099) g;
         UPDATE t_full SET v = 'in-stream' WHERE id = 1;
         COMMIT;"
            .to_string(),
        // Big transaction rolled back.
        "BEGIN;
         INSERT INTO t_default SELECT g, repeat('z', 100), NULL, 'ok', g FROM generate_series(5000, 6999) g;
         SELECT pg_logical_emit_message(true, 'm_rolled', 'gone');
         ROLLBACK;"
            .to_string(),
        // Prepared transactions: committed, rolled back, and a big (streamed) one.
        format!(
            "BEGIN; INSERT INTO t_default VALUES (7000, 'prepared', NULL, 'ok', 7);
             PREPARE TRANSACTION '{}';",
            names.gid_commit
        ),
        format!("COMMIT PREPARED '{}'", names.gid_commit),
        format!(
            "BEGIN; INSERT INTO t_default VALUES (7001, 'rolled back', NULL, 'ok', 7);
             PREPARE TRANSACTION '{}';",
            names.gid_rollback
        ),
        format!("ROLLBACK PREPARED '{}'", names.gid_rollback),
        format!(
            "BEGIN;
             INSERT INTO t_default SELECT g, repeat('p', 100), NULL, 'sad', g FROM generate_series(8000, 8999) g;
             PREPARE TRANSACTION '{}';",
            names.gid_big
        ),
        format!("COMMIT PREPARED '{}'", names.gid_big),
    ];
    for sql in &statements {
        admin
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }
    origin_session
        .batch_execute(&format!(
            "SELECT pg_replication_origin_session_setup('{}');
             BEGIN;
             SELECT pg_replication_origin_xact_setup('0/ABCDEF', '2020-01-01 00:00:00+00');
             INSERT INTO t_origin VALUES (1, 'from origin');
             COMMIT;
             SELECT pg_replication_origin_session_reset();",
            names.origin
        ))
        .await
        .expect("origin transaction");
    admin
        .batch_execute("INSERT INTO t_default VALUES (9999, 'last', NULL, NULL, NULL)")
        .await
        .expect("last insert");
}

/// A table's rows as text, keyed by id: column name → value (`None` = NULL).
pub(crate) type Rows = BTreeMap<i64, BTreeMap<String, Option<String>>>;

/// The end state of every table, read back with SQL.
pub(crate) async fn snapshot(admin: &Client) -> BTreeMap<String, Rows> {
    let mut out = BTreeMap::new();
    for (table, columns) in TABLES {
        let select: Vec<String> = columns.iter().map(|c| format!("{c}::text")).collect();
        let sql = format!("SELECT {} FROM {table} ORDER BY id", select.join(", "));
        let mut rows = Rows::new();
        for row in admin.query(&sql, &[]).await.expect("snapshot") {
            let mut values = BTreeMap::new();
            for (i, c) in columns.iter().enumerate() {
                values.insert((*c).to_string(), row.get::<_, Option<String>>(i));
            }
            let id: i64 = values["id"]
                .as_deref()
                .expect("id")
                .parse()
                .expect("numeric id");
            rows.insert(id, values);
        }
        out.insert((*table).to_string(), rows);
    }
    out
}
