//! The fault-injection proxy and the server-side fault helpers.
//!
//! Byte-level controls are checked against a small local upstream (exact byte counts); the
//! rest against the real servers of the run.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pg_walstream_testkit::{AuthUser, FaultProxy, TestServer, servers, unique_name};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// Bytes the test upstream sends first on every connection.
const GREETING: usize = 100_000;

/// The byte at offset `i` of the greeting.
fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

/// An upstream that sends `GREETING` bytes, then echoes whatever it receives.
async fn upstream() -> SocketAddr {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let greeting: Vec<u8> = (0..GREETING).map(pattern).collect();
                if socket.write_all(&greeting).await.is_err() {
                    return;
                }
                let mut buffer = [0u8; 4096];
                while let Ok(n) = socket.read(&mut buffer).await {
                    if n == 0 || socket.write_all(&buffer[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    address
}

async fn read_greeting(client: &mut TcpStream) {
    let mut greeting = vec![0u8; GREETING];
    client.read_exact(&mut greeting).await.unwrap();
    assert!(greeting.iter().enumerate().all(|(i, b)| *b == pattern(i)));
}

async fn echo(client: &mut TcpStream, message: &[u8]) -> Vec<u8> {
    client.write_all(message).await.unwrap();
    let mut reply = vec![0u8; message.len()];
    client.read_exact(&mut reply).await.unwrap();
    reply
}

#[tokio::test]
async fn forwards_both_ways_and_counts() {
    let proxy = FaultProxy::start(upstream().await).await.unwrap();
    let mut client = TcpStream::connect(proxy.address()).await.unwrap();
    read_greeting(&mut client).await;
    assert_eq!(echo(&mut client, b"ping").await, b"ping");
    assert_eq!(proxy.connections_accepted(), 1);
    assert_eq!(proxy.bytes_from_client(), 4);
    assert_eq!(proxy.bytes_from_server(), GREETING as u64 + 4);
    assert_eq!(proxy.connections_reset(), 0);
}

#[tokio::test]
async fn cut_after_server_bytes_delivers_exactly_that_many_then_eof() {
    let proxy = FaultProxy::start(upstream().await).await.unwrap();
    // Not on a chunk boundary: part of a read is forwarded, the rest dropped.
    let budget = 40_037;
    proxy.cut_after_server_bytes(budget);
    let mut client = TcpStream::connect(proxy.address()).await.unwrap();
    let mut received = Vec::new();
    let end = client.read_to_end(&mut received).await;
    assert!(end.is_ok(), "{end:?}");
    assert_eq!(received.len() as u64, budget);
    assert!(received.iter().enumerate().all(|(i, b)| *b == pattern(i)));
    assert_eq!(proxy.connections_reset(), 1);
    // The cut was one-shot: the next connection is normal.
    let mut client = TcpStream::connect(proxy.address()).await.unwrap();
    read_greeting(&mut client).await;
    assert_eq!(echo(&mut client, b"again").await, b"again");
}

#[tokio::test]
async fn cut_all_resets_open_connections_only() {
    let proxy = FaultProxy::start(upstream().await).await.unwrap();
    let mut first = TcpStream::connect(proxy.address()).await.unwrap();
    let mut second = TcpStream::connect(proxy.address()).await.unwrap();
    read_greeting(&mut first).await;
    read_greeting(&mut second).await;
    proxy.cut_all();
    for client in [&mut first, &mut second] {
        let mut byte = [0u8; 1];
        // Resolves without any timeout: the proxy reset the socket.
        let read = client.read(&mut byte).await;
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
    assert_eq!(proxy.connections_reset(), 2);
    let mut later = TcpStream::connect(proxy.address()).await.unwrap();
    read_greeting(&mut later).await;
    assert_eq!(echo(&mut later, b"later").await, b"later");
}

#[tokio::test]
async fn delay_holds_every_chunk() {
    let proxy = FaultProxy::start(upstream().await).await.unwrap();
    let mut client = TcpStream::connect(proxy.address()).await.unwrap();
    read_greeting(&mut client).await;
    let delay = Duration::from_millis(150);
    proxy.set_delay(delay);
    let started = Instant::now();
    assert_eq!(echo(&mut client, b"slow").await, b"slow");
    // Held once on the way up and once on the way down.
    assert!(started.elapsed() >= 2 * delay, "{:?}", started.elapsed());
    proxy.resume();
    assert_eq!(echo(&mut client, b"fast").await, b"fast");
}

#[tokio::test]
async fn blackhole_keeps_sockets_open_and_holds_bytes_until_resume() {
    let proxy = FaultProxy::start(upstream().await).await.unwrap();
    let mut client = TcpStream::connect(proxy.address()).await.unwrap();
    read_greeting(&mut client).await;
    proxy.blackhole();
    client.write_all(b"held").await.unwrap();
    let mut reply = [0u8; 4];
    // A read deadline is what detects a blackhole: the read neither returns data nor fails.
    let silent =
        tokio::time::timeout(Duration::from_millis(300), client.read_exact(&mut reply)).await;
    assert!(
        silent.is_err(),
        "read returned through a blackhole: {silent:?}"
    );
    // A connection opened meanwhile is accepted but carries nothing.
    let mut fresh = TcpStream::connect(proxy.address()).await.unwrap();
    let mut byte = [0u8; 1];
    let silent = tokio::time::timeout(Duration::from_millis(100), fresh.read(&mut byte)).await;
    assert!(silent.is_err(), "{silent:?}");
    proxy.resume();
    client.read_exact(&mut reply).await.unwrap();
    assert_eq!(&reply, b"held");
    read_greeting(&mut fresh).await;
    assert_eq!(proxy.connections_reset(), 0);
}

#[tokio::test]
async fn cut_all_breaks_a_postgres_session_through_the_proxy() {
    for server in servers() {
        let version = server.version();
        let proxy = FaultProxy::for_server(server).await.unwrap();
        let conninfo = format!(
            "{} sslmode=disable",
            proxy.conninfo(server, AuthUser::Scram, "postgres")
        );
        let (client, connection) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("PG {version}: through the proxy: {e}"));
        let driver = tokio::spawn(connection);
        let row = client.query_one("SELECT 1::int", &[]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), 1);
        proxy.cut_all();
        let error = client.query_one("SELECT 1::int", &[]).await;
        assert!(error.is_err(), "PG {version}: query after a cut: {error:?}");
        assert!(driver.await.unwrap().is_err(), "PG {version}");
        assert!(client.is_closed());
    }
}

#[tokio::test]
async fn slot_helpers_see_an_inactive_slot() {
    for server in servers() {
        let db = server.create_database("testkit_slot").await;
        let admin = server.admin(&db).await;
        let slot = unique_name("idle");
        admin
            .execute(
                "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
                &[&slot],
            )
            .await
            .unwrap();
        assert_eq!(server.slot_active_pid(&slot).await.unwrap(), None);
        assert_eq!(server.terminate_walsender(&slot).await.unwrap(), None);
        let waited = server
            .wait_for_walsender(&slot, Duration::from_millis(100))
            .await
            .unwrap();
        assert_eq!(waited, None);
        admin
            .execute("SELECT pg_drop_replication_slot($1)", &[&slot])
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_port_and_data_and_the_proxy_reconnects() {
    let server = TestServer::start(servers()[0].version()).unwrap();
    let port = server.port();
    let proxy = FaultProxy::for_server(&server).await.unwrap();
    let conninfo = format!(
        "{} sslmode=disable",
        proxy.conninfo(&server, AuthUser::Scram, "postgres")
    );
    let connect = || async {
        let (client, connection) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls)
            .await
            .expect("connects through the proxy");
        (client, tokio::spawn(connection))
    };
    server
        .admin("postgres")
        .await
        .batch_execute(
            "CREATE TABLE kept (id int); INSERT INTO kept VALUES (7); \
             GRANT SELECT ON kept TO PUBLIC",
        )
        .await
        .unwrap();
    let (client, driver) = connect().await;
    assert_eq!(
        client
            .query_one("SELECT 1::int", &[])
            .await
            .unwrap()
            .get::<_, i32>(0),
        1
    );
    server.restart().unwrap();
    assert_eq!(server.port(), port);
    // The session from before the restart ended (fast shutdown terminates it).
    assert!(client.query_one("SELECT 1::int", &[]).await.is_err());
    assert!(driver.await.unwrap().is_err());
    let (client, _driver) = connect().await;
    let row = client.query_one("SELECT id FROM kept", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 7);
    assert_eq!(proxy.connections_accepted(), 2);
}
