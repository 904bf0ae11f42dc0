//! Liveness: an idle but healthy server is pinged and answers in time; a silent peer ends the
//! stream at the read deadline instead of hanging.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pg_walstream_stream::{
    CreateSlotOptions, Error, EventKind, LogicalConfig, LogicalStream, ReadTimeout, RetryPolicy,
};
use pg_walstream_testkit::{AuthUser, TestServer, servers, unique_name};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::support::backend;

/// Forwards `from` to `to` until EOF; while `frozen`, stops forwarding (without closing).
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
) {
    let mut buf = vec![0; 64 * 1024];
    loop {
        let Ok(n) = from.read(&mut buf).await else {
            return;
        };
        if n == 0 {
            return;
        }
        while frozen.load(Ordering::Acquire) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// A TCP relay to `port` on localhost that can be frozen: a peer that stays connected but
/// says nothing.
async fn freezable_relay(port: u16) -> (u16, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay_port = listener.local_addr().unwrap().port();
    let frozen = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&frozen);
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let Ok(outbound) = TcpStream::connect(("127.0.0.1", port)).await else {
                continue;
            };
            let (ir, iw) = inbound.into_split();
            let (or, ow) = outbound.into_split();
            tokio::spawn(pump(ir, ow, Arc::clone(&flag)));
            tokio::spawn(pump(or, iw, Arc::clone(&flag)));
        }
    });
    (relay_port, frozen)
}

fn config(
    server: &TestServer,
    db: &str,
    port: u16,
    slot: &str,
    timeout: Duration,
) -> LogicalConfig {
    let conninfo = format!(
        "host=127.0.0.1 port={port} user={} password={} dbname={db} sslmode=disable",
        server.user_name(AuthUser::Scram),
        server.password(AuthUser::Scram)
    );
    LogicalConfig::builder()
        .conninfo(&conninfo)
        .backend(backend())
        .slot(slot)
        .publication("pub")
        .create_slot_if_missing(CreateSlotOptions::default())
        .status_interval(Duration::from_secs(60))
        .read_timeout(ReadTimeout::Fixed(timeout))
        .retry(RetryPolicy::never())
        .build()
        .unwrap()
}

// Multi-threaded: the relay must keep running while the server's (blocking) drop waits for
// the walsender to see its client gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_server_without_keepalives_is_pinged_and_silent_peer_times_out() {
    let version = servers().last().expect("a server").version();
    // wal_sender_timeout = 0: the server never sends keepalives on its own.
    let server = TestServer::builder(version)
        .setting("wal_sender_timeout", "0")
        .start()
        .expect("private server");
    let db = server.create_database("live").await;
    let admin = server.admin(&db).await;
    admin
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY); CREATE PUBLICATION pub FOR TABLE t")
        .await
        .unwrap();
    let (relay, frozen) = freezable_relay(server.port()).await;
    let mut stream = LogicalStream::connect(config(
        &server,
        &db,
        relay,
        &unique_name("live"),
        Duration::from_secs(2),
    ))
    .await
    .unwrap_or_else(|e| panic!("PG {version}: {e}"));
    // Idle for three read deadlines: the pings at half-deadline keep it alive.
    let idle = tokio::time::timeout(Duration::from_secs(6), stream.next_event()).await;
    assert!(idle.is_err(), "PG {version}: idle stream yielded {idle:?}");
    admin
        .batch_execute("INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    let begin = tokio::time::timeout(Duration::from_secs(10), stream.next_event())
        .await
        .unwrap();
    assert!(
        matches!(begin.unwrap().unwrap().kind(), EventKind::Begin(_)),
        "PG {version}"
    );
    while let Some(event) = stream.next_event().await {
        if matches!(event.unwrap().kind(), EventKind::Commit(_)) {
            break;
        }
    }
    // The peer goes silent without closing: the stream fails at its deadline.
    frozen.store(true, Ordering::Release);
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(20), stream.next_event())
        .await
        .unwrap_or_else(|_| panic!("PG {version}: hung on a silent peer"));
    let error = match result {
        Some(Err(error)) => error,
        other => panic!("PG {version}: {other:?}"),
    };
    assert!(
        matches!(error, Error::ReadTimeout { .. }),
        "PG {version}: {error}"
    );
    assert!(error.is_transient());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(5),
        "PG {version}: failed after {waited:?}"
    );
    assert!(stream.next_event().await.is_none());
    // Let the relay notice the closed client so the walsender can exit and the server stop.
    frozen.store(false, Ordering::Release);
}
