//! Faults injected with the testkit's proxy and server helpers, and how the stream's errors
//! classify them: every network or server fault is transient, every configuration or
//! authentication fault permanent, on both backends.

use std::time::{Duration, Instant};

use pg_walstream_codec::Lsn;
use pg_walstream_stream::{
    Error, ErrorClass, EventKind, LogicalConfig, LogicalStream, ReadTimeout, RetryPolicy,
};
use pg_walstream_testkit::{AuthUser, FaultProxy, TestServer, servers};

use crate::support::{Fixture, backend};

const DDL: &str = "CREATE TABLE f (id int PRIMARY KEY)";

async fn fixture(server: &TestServer) -> Fixture {
    Fixture::new(server, "faults", DDL, "FOR TABLE f").await
}

/// The fixture's conninfo, through `proxy`.
fn through(proxy: &FaultProxy, server: &TestServer, fx: &Fixture) -> String {
    fx.conninfo.replacen(
        &format!(" port={} ", server.port()),
        &format!(" port={} ", proxy.port()),
        1,
    )
}

/// Reads until the next Commit and returns its end LSN.
async fn next_commit(stream: &mut LogicalStream, version: u32) -> Lsn {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(30), stream.next_event())
            .await
            .unwrap_or_else(|_| panic!("PG {version}: no commit"))
            .unwrap_or_else(|| panic!("PG {version}: stream ended"))
            .unwrap_or_else(|e| panic!("PG {version}: {e}"));
        if let EventKind::Commit(commit) = event.kind() {
            return commit.end_lsn;
        }
    }
}

/// The error the stream ends with (it must end within a minute).
async fn failure(stream: &mut LogicalStream, version: u32) -> Error {
    loop {
        match tokio::time::timeout(Duration::from_secs(60), stream.next_event())
            .await
            .unwrap_or_else(|_| panic!("PG {version}: the stream did not fail"))
        {
            Some(Ok(_)) => {}
            Some(Err(error)) => return error,
            None => panic!("PG {version}: the stream ended without an error"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackholed_connection_fails_at_the_read_deadline_as_transient() {
    for server in servers() {
        let v = server.version();
        let fx = fixture(server).await;
        let proxy = FaultProxy::for_server(server).await.unwrap();
        let config = fx
            .config()
            .retry(RetryPolicy::never())
            .conninfo(&through(&proxy, server, &fx))
            .read_timeout(ReadTimeout::Fixed(Duration::from_secs(2)));
        let mut stream = fx.start(config).await;
        fx.exec(&["INSERT INTO f VALUES (1)"]).await;
        let _ = next_commit(&mut stream, v).await;
        proxy.blackhole();
        let started = Instant::now();
        let error = failure(&mut stream, v).await;
        let waited = started.elapsed();
        assert!(
            matches!(error, Error::ReadTimeout { .. }),
            "PG {v}: {error:?}"
        );
        assert!(error.is_transient(), "PG {v}");
        // The deadline, not a sooner failure (the proxy kept the socket open).
        assert!(waited >= Duration::from_millis(1500), "PG {v}: {waited:?}");
        assert_eq!(proxy.connections_reset(), 0, "PG {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cut_mid_frame_is_transient() {
    for server in servers() {
        let v = server.version();
        let fx = fixture(server).await;
        let proxy = FaultProxy::for_server(server).await.unwrap();
        let config = fx
            .config()
            .retry(RetryPolicy::never())
            .conninfo(&through(&proxy, server, &fx));
        let mut stream = fx.start(config).await;
        fx.exec(&["INSERT INTO f VALUES (1)"]).await;
        let _ = next_commit(&mut stream, v).await;
        // 9 bytes: past a CopyData header, inside the message (XLogData or keepalive).
        proxy.cut_after_server_bytes(9);
        fx.exec(&["INSERT INTO f VALUES (2)"]).await;
        let error = failure(&mut stream, v).await;
        assert!(error.is_transient(), "PG {v}: {error:?}");
        // The proxy counts the reset once its pump has closed both sockets, which can come
        // after the client already saw end-of-file: wait for it (a bound against hangs only).
        let counted = Instant::now();
        while proxy.connections_reset() == 0 {
            assert!(
                counted.elapsed() < Duration::from_secs(30),
                "PG {v}: no reset"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(proxy.connections_reset(), 1, "PG {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_connection_is_transient() {
    for server in servers() {
        let v = server.version();
        let fx = fixture(server).await;
        let proxy = FaultProxy::for_server(server).await.unwrap();
        let config = fx
            .config()
            .retry(RetryPolicy::never())
            .conninfo(&through(&proxy, server, &fx));
        let mut stream = fx.start(config).await;
        fx.exec(&["INSERT INTO f VALUES (1)"]).await;
        let _ = next_commit(&mut stream, v).await;
        proxy.cut_all();
        let error = failure(&mut stream, v).await;
        assert!(error.is_transient(), "PG {v}: {error:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_walsender_is_transient_and_frees_the_slot() {
    for server in servers() {
        let v = server.version();
        let fx = fixture(server).await;
        let mut stream = fx.start(fx.config().retry(RetryPolicy::never())).await;
        fx.exec(&["INSERT INTO f VALUES (1)"]).await;
        let _ = next_commit(&mut stream, v).await;
        let pid = server
            .wait_for_walsender(&fx.slot, Duration::from_secs(10))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("PG {v}: no walsender on the slot"));
        assert_eq!(
            server.terminate_walsender(&fx.slot).await.unwrap(),
            Some(pid)
        );
        let error = failure(&mut stream, v).await;
        assert!(error.is_transient(), "PG {v}: {error:?}");
        // terminate_walsender waited for the process to exit: the slot is free at once.
        assert_eq!(server.slot_active_pid(&fx.slot).await.unwrap(), None);
        let again = fx.start(fx.config().retry(RetryPolicy::never())).await;
        again.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slot_in_use_is_transient_and_missing_slot_or_bad_password_are_permanent() {
    for server in servers() {
        let v = server.version();
        let fx = fixture(server).await;
        let stream = fx.start(fx.config().retry(RetryPolicy::never())).await;
        let second =
            LogicalStream::connect(fx.config().retry(RetryPolicy::never()).build().unwrap()).await;
        let error = second
            .err()
            .unwrap_or_else(|| panic!("PG {v}: a second stream started"));
        assert_eq!(error.classify(), ErrorClass::Transient, "PG {v}: {error:?}");
        stream.stop().await.unwrap();

        let missing = LogicalConfig::builder()
            .conninfo(&fx.conninfo)
            .backend(backend())
            .slot("no_such_slot_here")
            .publication("pub")
            .build()
            .unwrap();
        let error = LogicalStream::connect(missing).await.err().unwrap();
        assert!(!error.is_transient(), "PG {v}: {error:?}");

        let db = fx.admin_db().await;
        let wrong = format!(
            "{} password=wrong sslmode=disable",
            server.conninfo(AuthUser::Scram, &db)
        );
        let config = fx
            .config()
            .retry(RetryPolicy::never())
            .conninfo(&wrong)
            .build()
            .unwrap();
        let error = LogicalStream::connect(config).await.err().unwrap();
        assert!(!error.is_transient(), "PG {v}: {error:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_restart_and_crash_restart_are_transient() {
    let server = TestServer::start(servers()[0].version()).unwrap();
    let v = server.version();
    let fx = fixture(&server).await;
    let proxy = FaultProxy::for_server(&server).await.unwrap();
    let db = fx.admin_db().await;
    for (id, crash) in [(1, false), (2, true)] {
        let config = fx
            .config()
            .retry(RetryPolicy::never())
            .conninfo(&through(&proxy, &server, &fx));
        let mut stream = fx.start(config).await;
        let admin = server.admin(&db).await;
        admin
            .batch_execute(&format!("INSERT INTO f VALUES ({id})"))
            .await
            .unwrap();
        // Acknowledged, so a fast shutdown's walsender is not kept waiting for confirmation.
        let end = next_commit(&mut stream, v).await;
        stream.feedback().processed(end);
        if crash {
            server.crash_restart().unwrap();
        } else {
            server.restart().unwrap();
        }
        let error = failure(&mut stream, v).await;
        // At a fast shutdown the walsender ends the COPY with CommandComplete and no CopyDone
        // (walsender.c, WalSndDone); both backends take that as the end of the stream
        // (`ServerEnded`), which is transient.
        assert!(error.is_transient(), "PG {v} crash={crash}: {error:?}");
    }
    // Same port, same data: a new stream through the same proxy starts on the slot.
    let config = fx
        .config()
        .retry(RetryPolicy::never())
        .conninfo(&through(&proxy, &server, &fx));
    fx.start(config).await.stop().await.unwrap();
}
