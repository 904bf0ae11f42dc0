//! Helpers shared by the test modules.

use std::time::{Duration, Instant};

use pg_walstream_codec::Lsn;
use pg_walstream_stream::{
    CreateSlotOptions, Event, EventKind, LogicalConfig, LogicalConfigBuilder, LogicalStream,
};
use pg_walstream_testkit::{AuthUser, TestServer, unique_name};
use pg_walstream_transport::Backend;

/// The backend named by `PG_WALSTREAM_TEST_BACKEND` (`native`, the default, or `libpq`):
/// `cargo xtask test` runs the suite once per backend.
pub(crate) fn backend() -> Backend {
    std::env::var("PG_WALSTREAM_TEST_BACKEND")
        .unwrap_or_else(|_| "native".into())
        .parse()
        .expect("PG_WALSTREAM_TEST_BACKEND is native or libpq")
}

/// A fresh database with `ddl` applied and a publication `pub` for `tables`.
pub(crate) struct Fixture {
    pub(crate) version: u32,
    pub(crate) admin: tokio_postgres::Client,
    pub(crate) conninfo: String,
    pub(crate) slot: String,
}

impl Fixture {
    pub(crate) async fn new(
        server: &TestServer,
        prefix: &str,
        ddl: &str,
        publication: &str,
    ) -> Self {
        let db = server.create_database(prefix).await;
        let admin = server.admin(&db).await;
        admin
            .batch_execute(ddl)
            .await
            .unwrap_or_else(|e| panic!("PG {}: {ddl}: {e}", server.version()));
        admin
            .batch_execute(&format!("CREATE PUBLICATION pub {publication}"))
            .await
            .unwrap_or_else(|e| panic!("PG {}: publication: {e}", server.version()));
        Fixture {
            version: server.version(),
            admin,
            conninfo: format!("{} sslmode=disable", server.conninfo(AuthUser::Scram, &db)),
            slot: unique_name("slot"),
        }
    }

    /// A config for this fixture's slot (created if missing) and publication.
    pub(crate) fn config(&self) -> LogicalConfigBuilder {
        LogicalConfig::builder()
            .conninfo(&self.conninfo)
            .backend(backend())
            .slot(&self.slot)
            .publication("pub")
            .create_slot_if_missing(CreateSlotOptions::default())
            .status_interval(Duration::from_millis(200))
    }

    pub(crate) async fn start(&self, config: LogicalConfigBuilder) -> LogicalStream {
        let config = config.build().expect("valid config");
        let stream = LogicalStream::connect(config)
            .await
            .unwrap_or_else(|e| panic!("PG {}: start: {e}", self.version));
        assert_eq!(
            stream.info().backend,
            Some(backend()),
            "PG {}",
            self.version
        );
        stream
    }

    /// Runs each SQL text as its own simple query (its own transaction unless it has
    /// explicit BEGIN/COMMIT).
    pub(crate) async fn exec(&self, statements: &[&str]) {
        for sql in statements {
            self.admin
                .batch_execute(sql)
                .await
                .unwrap_or_else(|e| panic!("PG {}: {sql}: {e}", self.version));
        }
    }

    /// The fixture database's name.
    pub(crate) async fn admin_db(&self) -> String {
        self.admin
            .query_one("SELECT current_database()::text", &[])
            .await
            .expect("current_database")
            .get(0)
    }

    pub(crate) async fn current_lsn(&self) -> Lsn {
        let row = self
            .admin
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
            .await
            .expect("pg_current_wal_lsn");
        row.get::<_, String>(0).parse().expect("lsn")
    }

    /// The end of each commit record the slot would send, in order, read without consuming
    /// anything (`pg_logical_slot_peek_binary_changes`). A Commit row's `lsn` is the commit
    /// record's end: logical.c `commit_cb_wrapper` sets `ctx->write_location = txn->end_lsn`.
    /// Unlike `pg_current_wal_lsn()`, this cannot pick up WAL other sessions wrote meanwhile.
    pub(crate) async fn commit_end_lsns(&self) -> Vec<Lsn> {
        self.admin
            .query(
                "SELECT lsn::text FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL, \
                 'proto_version', '1', 'publication_names', 'pub') \
                 WHERE get_byte(data, 0) = ascii('C')",
                &[&self.slot],
            )
            .await
            .unwrap_or_else(|e| panic!("PG {}: peek: {e}", self.version))
            .iter()
            .map(|row| row.get::<_, String>(0).parse().expect("lsn"))
            .collect()
    }

    pub(crate) async fn confirmed_flush(&self) -> Option<Lsn> {
        let row = self
            .admin
            .query_one(
                "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
                &[&self.slot],
            )
            .await
            .expect("slot row");
        row.get::<_, Option<String>>(0)
            .map(|s| s.parse().expect("lsn"))
    }

    /// Polls until the slot's confirmed_flush_lsn reaches `target` (or `timeout` passes);
    /// returns the last value seen.
    pub(crate) async fn wait_confirmed(&self, target: Lsn, timeout: Duration) -> Option<Lsn> {
        let start = Instant::now();
        loop {
            let seen = self.confirmed_flush().await;
            if seen.is_some_and(|s| s >= target) || start.elapsed() > timeout {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Reads events until `commits` transaction-ending events (Commit, Stream Commit, Prepare,
/// Commit/Rollback Prepared) have arrived, with a deadline. A Begin followed at once by its
/// Commit is left out and not counted: PG14's pgoutput sends one for every transaction of the
/// database without a published change (an autovacuum ANALYZE, say), PG15+ skip them.
pub(crate) async fn collect(
    stream: &mut LogicalStream,
    commits: usize,
    version: u32,
) -> Vec<Event> {
    let mut events = Vec::new();
    let mut seen = 0;
    let deadline = Duration::from_secs(60);
    while seen < commits {
        let event = tokio::time::timeout(deadline, stream.next_event())
            .await
            .unwrap_or_else(|_| panic!("PG {version}: timed out after {seen} commits: {events:#?}"))
            .unwrap_or_else(|| panic!("PG {version}: stream ended after {seen} commits"))
            .unwrap_or_else(|e| panic!("PG {version}: stream error: {e}"));
        if matches!(event.kind(), EventKind::Commit(_))
            && events
                .last()
                .is_some_and(|last: &Event| matches!(last.kind(), EventKind::Begin(_)))
        {
            events.pop();
            continue;
        }
        if matches!(
            event.kind(),
            EventKind::Commit(_)
                | EventKind::StreamCommit(_)
                | EventKind::Prepare(_)
                | EventKind::StreamPrepare(_)
                | EventKind::CommitPrepared(_)
                | EventKind::RollbackPrepared(_)
        ) || (matches!(event.kind(), EventKind::StreamAbort(a) if a.xid == a.subxid))
        {
            seen += 1;
        }
        events.push(event);
    }
    events
}

/// The text of column `index` of a tuple, `None` for NULL/unchanged.
pub(crate) fn text(
    tuple: &pg_walstream_codec::pgoutput::TupleData<'_>,
    index: usize,
) -> Option<String> {
    tuple
        .columns()
        .nth(index)?
        .value()
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// Runs this test binary again as a separate process with only `test` (e.g.
/// `chaos::chaos_consumer_process`), with `env` set to `settings`: a consumer that a test can
/// SIGKILL and start again.
pub(crate) fn spawn_test_process(test: &str, env: &str, settings: &str) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", test, "--nocapture"])
        .env(env, settings)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("spawn the consumer")
}

/// Drops `slot` once no walsender holds it any more (a killed consumer's walsender notices
/// only when it next touches the socket).
pub(crate) async fn drop_slot_when_released(
    server: &TestServer,
    admin: &tokio_postgres::Client,
    slot: &str,
) {
    let v = server.version();
    let started = Instant::now();
    while server.slot_active_pid(slot).await.unwrap().is_some() {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "PG {v}: slot stays active"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    admin
        .execute("SELECT pg_drop_replication_slot($1)", &[&slot])
        .await
        .unwrap();
}
