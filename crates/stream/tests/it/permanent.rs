//! Permanent failures met while reconnecting stop the stream after exactly one attempt
//! (issue 17): a password changed during the outage (28P01) and a slot invalidated by
//! `max_slot_wal_keep_size` (55000; the setting exists since 13, so on every version here).
//!
//! Both run on a private server per version (the password belongs to a shared test user; the
//! setting would invalidate other tests' slots). Nothing depends on time: the outage is made
//! with the testkit's proxy and the attempt can only happen once the server is in the state
//! under test.

use std::time::{Duration, Instant};

use pg_walstream_stream::{Error, EventKind, LogicalStream, RetryPolicy};
use pg_walstream_testkit::{AuthUser, FaultProxy, TestServer, servers};
use pg_walstream_transport::SqlState;

use crate::support::Fixture;

const DDL: &str = "CREATE TABLE r (id int PRIMARY KEY)";

/// A generous bound against a hang, never a timing assertion.
const PATIENCE: Duration = Duration::from_secs(120);

fn through(proxy: &FaultProxy, server: &TestServer, fx: &Fixture) -> String {
    fx.conninfo.replacen(
        &format!(" port={} ", server.port()),
        &format!(" port={} ", proxy.port()),
        1,
    )
}

fn quick_retry() -> RetryPolicy {
    RetryPolicy::default()
        .initial_delay(Duration::from_millis(50))
        .max_delay(Duration::from_millis(200))
}

/// The SQLSTATE of a server error, wherever the stream wrapped it.
fn sqlstate(error: &Error) -> Option<SqlState> {
    match error {
        Error::Transport(e) => e.code(),
        Error::Slot(e) => e.code(),
        _ => None,
    }
}

/// Reads until the first Commit (not acknowledged: the slot keeps its position).
async fn first_commit(stream: &mut LogicalStream, v: u32) {
    loop {
        let event = tokio::time::timeout(PATIENCE, stream.next_event())
            .await
            .unwrap_or_else(|_| panic!("PG {v}: no commit"))
            .unwrap_or_else(|| panic!("PG {v}: the stream ended"))
            .unwrap_or_else(|e| panic!("PG {v}: {e}"));
        if matches!(event.kind(), EventKind::Commit(_)) {
            return;
        }
    }
}

/// The error that ends the stream; no `Reconnected` event on the way.
async fn final_error(stream: &mut LogicalStream, v: u32) -> Error {
    loop {
        match tokio::time::timeout(PATIENCE, stream.next_event())
            .await
            .unwrap_or_else(|_| panic!("PG {v}: no error"))
        {
            Some(Ok(event)) => assert!(
                !matches!(event.kind(), EventKind::Reconnected(_)),
                "PG {v}: reconnected"
            ),
            Some(Err(error)) => return error,
            None => panic!("PG {v}: ended without an error"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_password_and_invalidated_slot_stop_after_one_attempt_on_every_version() {
    for version in servers().iter().map(TestServer::version) {
        let server = TestServer::builder(version)
            .initdb_arg("--wal-segsize=1")
            .setting("max_slot_wal_keep_size", "1MB")
            .start()
            .unwrap();
        let v = server.version();
        let proxy = FaultProxy::for_server(&server).await.unwrap();

        // 1. The password changes while the stream is connected; the connection is cut.
        let fx = Fixture::new(&server, "permauth", DDL, "FOR TABLE r").await;
        let config = fx
            .config()
            .conninfo(&through(&proxy, &server, &fx))
            .retry(quick_retry());
        let mut stream = fx.start(config).await;
        fx.exec(&["INSERT INTO r VALUES (1)"]).await;
        first_commit(&mut stream, v).await;
        let user = server.user_name(AuthUser::Scram);
        fx.exec(&[&format!(
            "ALTER ROLE {user} PASSWORD 'not-the-test-password'"
        )])
        .await;
        proxy.cut_all();
        let error = final_error(&mut stream, v).await;
        assert_eq!(
            sqlstate(&error),
            Some(SqlState::INVALID_PASSWORD),
            "PG {v}: {error:?}"
        );
        assert!(!error.is_transient(), "PG {v}");
        assert_eq!(stream.feedback().reconnect_attempts(), 1, "PG {v}");
        assert_eq!(stream.feedback().reconnects(), 0, "PG {v}");
        let password = server.password(AuthUser::Scram);
        fx.exec(&[&format!("ALTER ROLE {user} PASSWORD '{password}'")])
            .await;

        // 2. The slot loses its WAL while the path to the server is dead (blackholed): the
        // checkpoint that invalidates it terminates its walsender, whose FATAL (57P01,
        // transient) reaches the stream only once the path works again — after the slot is
        // invalidated, so the one attempt meets it.
        let fx = Fixture::new(&server, "permlost", DDL, "FOR TABLE r").await;
        let config = fx
            .config()
            .conninfo(&through(&proxy, &server, &fx))
            .retry(quick_retry());
        let mut stream = fx.start(config).await;
        fx.exec(&["INSERT INTO r VALUES (1)"]).await;
        first_commit(&mut stream, v).await;
        proxy.blackhole();
        for _ in 0..4 {
            fx.exec(&[
                "INSERT INTO r SELECT max(id) + 1 FROM r",
                "SELECT pg_switch_wal()",
            ])
            .await;
        }
        let started = Instant::now();
        loop {
            fx.exec(&["CHECKPOINT"]).await;
            let status: Option<String> = fx
                .admin
                .query_one(
                    "SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1",
                    &[&fx.slot],
                )
                .await
                .unwrap()
                .get(0);
            if status.as_deref() == Some("lost") {
                break;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "PG {v}: the slot was not invalidated ({status:?})"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        proxy.resume();
        let error = final_error(&mut stream, v).await;
        assert_eq!(
            sqlstate(&error),
            Some(SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE),
            "PG {v}: {error:?}"
        );
        assert!(!error.is_transient(), "PG {v}");
        assert_eq!(stream.feedback().reconnect_attempts(), 1, "PG {v}");
        assert_eq!(stream.feedback().reconnects(), 0, "PG {v}");
        drop(stream);
        drop(proxy);
        server.stop();
    }
}
