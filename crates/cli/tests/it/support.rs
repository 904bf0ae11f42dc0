//! Running the `pg-walstream` binary and a small workload against the run's servers.

use std::path::PathBuf;
use std::process::{Command, Output};

use pg_walstream_testkit::{AuthUser, TestServer, client_tool};
use serde_json::Value;

/// The binary under test.
pub(crate) fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_pg-walstream"))
}

/// Runs the binary with `args`, waiting for it on a blocking thread.
pub(crate) async fn run(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(bin())
            .args(&args)
            .env("RUST_BACKTRACE", "1")
            .output()
            .expect("run pg-walstream")
    })
    .await
    .expect("join")
}

/// `args` as owned strings.
pub(crate) fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// Standard output as lines of JSON.
pub(crate) fn json_lines(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

/// Standard error, for assertion messages.
pub(crate) fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts success and returns the JSON lines.
pub(crate) fn ok_lines(v: u32, what: &str, output: &Output) -> Vec<Value> {
    assert!(
        output.status.success(),
        "PostgreSQL {v}: {what} failed ({}): {}",
        output.status,
        stderr(output)
    );
    json_lines(output)
}

/// A database with table `t` (an out-of-line `big` column) and publication `p`.
pub(crate) struct Fixture {
    pub(crate) server: &'static TestServer,
    pub(crate) db: String,
    pub(crate) admin: tokio_postgres::Client,
}

/// The value of the TOASTed column: 9600 characters, stored out of line.
pub(crate) const BIG_SQL: &str =
    "(SELECT string_agg(md5(i::text), '') FROM generate_series(1, 300) i)";

impl Fixture {
    pub(crate) async fn new(server: &'static TestServer, prefix: &str) -> Self {
        let db = server.create_database(prefix).await;
        let admin = server.admin(&db).await;
        admin
            .batch_execute(
                "CREATE TABLE t (id int PRIMARY KEY, v text, big text);
                 ALTER TABLE t ALTER COLUMN big SET STORAGE EXTERNAL;
                 CREATE PUBLICATION p FOR TABLE t;",
            )
            .await
            .expect("schema");
        Fixture { server, db, admin }
    }

    pub(crate) fn version(&self) -> u32 {
        self.server.version()
    }

    /// A replication-capable user's connection string.
    pub(crate) fn conninfo(&self) -> String {
        self.server.conninfo(AuthUser::Scram, &self.db)
    }

    pub(crate) async fn current_lsn(&self) -> String {
        self.admin
            .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
            .await
            .expect("pg_current_wal_lsn")
            .get(0)
    }

    /// Insert, update keeping the TOASTed value, insert + delete, truncate, a
    /// non-transactional logical message: six transactions' worth of events.
    pub(crate) async fn workload(&self) {
        let statements = [
            format!("INSERT INTO t VALUES (1, 'a', {BIG_SQL})"),
            "UPDATE t SET v = 'b' WHERE id = 1".to_owned(),
            "INSERT INTO t VALUES (2, 'it''s', NULL)".to_owned(),
            "DELETE FROM t WHERE id = 2".to_owned(),
            "TRUNCATE t".to_owned(),
            "SELECT pg_logical_emit_message(false, 'cli', 'done')".to_owned(),
        ];
        for statement in statements {
            self.admin
                .batch_execute(&statement)
                .await
                .unwrap_or_else(|e| panic!("{statement}: {e}"));
        }
        // The non-transactional message is not flushed by a commit, and decoding (walsender
        // or SQL) reads only flushed WAL. A transaction that wrote WAL and has an xid flushes
        // the (cluster-wide) WAL when it commits: one in another database (never decoded by
        // this database's slots) flushes the message, with no wait. (A bare txid_current()
        // would not: its commit is asynchronous, since it wrote no WAL before it.)
        self.server
            .admin("postgres")
            .await
            .batch_execute("CREATE TEMP TABLE cli_flush (x int)")
            .await
            .expect("flushing the WAL");
    }

    /// `confirmed_flush_lsn` of `slot`, `None` if it does not exist.
    pub(crate) async fn confirmed_flush(&self, slot: &str) -> Option<String> {
        self.admin
            .query_opt(
                "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await
            .expect("pg_replication_slots")
            .map(|row| row.get(0))
    }

    /// Runs psql (superuser, unix socket) with extra arguments.
    pub(crate) async fn psql(&self, extra: Vec<String>) -> Output {
        let psql = client_tool("psql", self.version()).expect("psql is installed");
        let conninfo = self.server.admin_conninfo(&self.db);
        tokio::task::spawn_blocking(move || {
            Command::new(psql)
                .arg("-X")
                .arg("-v")
                .arg("ON_ERROR_STOP=1")
                .arg("-d")
                .arg(conninfo)
                .args(extra)
                .output()
                .expect("run psql")
        })
        .await
        .expect("join")
    }
}

/// The highest pgoutput protocol version of a server version.
pub(crate) fn max_proto(version: u32) -> u32 {
    match version {
        14 => 2,
        15 => 3,
        _ => 4,
    }
}

/// The kinds of `events`, without Relation/Type messages (which the server may repeat
/// after invalidations).
pub(crate) fn kinds(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or("?"))
        .filter(|k| !matches!(*k, "relation" | "type"))
        .collect()
}

/// The workload's events, relations left out.
pub(crate) const WORKLOAD_KINDS: [&str; 16] = [
    "begin", "insert", "commit", "begin", "update", "commit", "begin", "insert", "commit", "begin",
    "delete", "commit", "begin", "truncate", "commit", "message",
];

/// The value key and value of column `name` in a tuple array.
pub(crate) fn column<'a>(tuple: &'a Value, name: &str) -> &'a Value {
    tuple
        .as_array()
        .and_then(|cols| cols.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no column {name} in {tuple}"))
}
