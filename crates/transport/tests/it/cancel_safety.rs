//! Cancelling a read between the server's ErrorResponse and its ReadyForQuery must not lose
//! the error (issue 12, item 10): the next call delivers it, with its SQLSTATE.
//!
//! A relay in front of the real server forwards everything but holds the bytes after each
//! ErrorResponse until the test releases them, so the client has the error and cannot have
//! the ReadyForQuery; the test then drops the pending read (`tokio::time::timeout`) and
//! calls again after releasing.

use std::net::SocketAddr;
use std::time::Duration;

use pg_walstream_testkit::{AuthUser, servers};
use pg_walstream_transport::{Response, Transport, TransportError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::support::{chain, connect};

/// The relay: `errors` gets a message each time an ErrorResponse was forwarded; the relay
/// then forwards nothing more until `release` gets one.
struct HoldingRelay {
    addr: SocketAddr,
    errors: mpsc::UnboundedReceiver<()>,
    release: mpsc::UnboundedSender<()>,
}

async fn holding_relay(target: SocketAddr) -> HoldingRelay {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let (errors_tx, errors) = mpsc::unbounded_channel();
    let (release, mut release_rx) = mpsc::unbounded_channel::<()>();
    tokio::spawn(async move {
        let (client, _) = listener.accept().await.expect("accept");
        let server = TcpStream::connect(target).await.expect("connect to server");
        let (mut client_read, mut client_write) = client.into_split();
        let (mut server_read, mut server_write) = server.into_split();
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
        });
        // sslmode=disable: the server's side is a plain sequence of tagged messages.
        loop {
            let mut header = [0u8; 5];
            if server_read.read_exact(&mut header).await.is_err() {
                return;
            }
            let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
            let mut body = vec![0; len - 4];
            if server_read.read_exact(&mut body).await.is_err() {
                return;
            }
            if client_write.write_all(&header).await.is_err()
                || client_write.write_all(&body).await.is_err()
            {
                return;
            }
            if header[0] == b'E' {
                let _ = errors_tx.send(());
                if release_rx.recv().await.is_none() {
                    return;
                }
            }
        }
    });
    HoldingRelay {
        addr,
        errors,
        release,
    }
}

/// How long a read is given before the test drops it. The read cannot finish in that time
/// (its ReadyForQuery is held back), so the length only decides how likely the dropped read
/// had already consumed the error; the outcome after the release is the same either way.
const DROP_AFTER: Duration = Duration::from_millis(500);

fn assert_division_by_zero(error: &TransportError, cell: &str) {
    assert_eq!(
        error.code().map(|c| c.code().to_owned()).as_deref(),
        Some("22012"),
        "{cell}: {error:?}: {}",
        chain(error)
    );
}

#[tokio::test]
async fn an_error_survives_a_cancelled_read() {
    for server in servers() {
        let v = server.version();
        let db = server.create_database("cancelsafe").await;
        let target = format!("{}:{}", server.host(), server.port())
            .parse()
            .expect("server address");
        let mut relay = holding_relay(target).await;
        let ci = format!(
            "host=127.0.0.1 port={} user={} password={} dbname={db} sslmode=disable",
            relay.addr.port(),
            AuthUser::Scram.name(),
            AuthUser::Scram.password().expect("password"),
        );
        let mut conn = connect(&ci)
            .await
            .unwrap_or_else(|e| panic!("PG {v}: {}", chain(&e)));

        // A COPY that fails on its third row: CopyData, CopyData, ErrorResponse, ReadyForQuery.
        let cell = format!("PG {v}: read_copy_data");
        conn.send_query("COPY (SELECT 1 / (3 - i) FROM generate_series(1, 5) i) TO STDOUT")
            .await
            .expect("send COPY");
        assert_eq!(
            conn.next_response().await.expect("CopyOut"),
            Response::CopyOut,
            "{cell}"
        );
        assert_eq!(
            conn.read_copy_data().await.expect("row 1").as_deref(),
            Some(&b"0\n"[..]),
            "{cell}"
        );
        assert_eq!(
            conn.read_copy_data().await.expect("row 2").as_deref(),
            Some(&b"1\n"[..]),
            "{cell}"
        );
        relay
            .errors
            .recv()
            .await
            .expect("the relay forwarded the error");
        let dropped = tokio::time::timeout(DROP_AFTER, conn.read_copy_data()).await;
        assert!(
            dropped.is_err(),
            "{cell}: finished without ReadyForQuery: {dropped:?}"
        );
        relay.release.send(()).expect("release");
        let error = conn
            .read_copy_data()
            .await
            .expect_err("the error is delivered by the next call");
        assert_division_by_zero(&error, &cell);
        let sets = conn
            .simple_query("SELECT 1 AS one")
            .await
            .expect("idle again");
        assert_eq!(sets[0].get_str(0, "one").expect("one"), Some("1"), "{cell}");

        // The same for a failing query read with next_response.
        let cell = format!("PG {v}: next_response");
        conn.send_query("SELECT 1/0").await.expect("send");
        relay
            .errors
            .recv()
            .await
            .expect("the relay forwarded the error");
        let dropped = tokio::time::timeout(DROP_AFTER, conn.next_response()).await;
        assert!(
            dropped.is_err(),
            "{cell}: finished without ReadyForQuery: {dropped:?}"
        );
        relay.release.send(()).expect("release");
        let error = conn
            .next_response()
            .await
            .expect_err("the error is delivered by the next call");
        assert_division_by_zero(&error, &cell);
        let sets = conn
            .simple_query("SELECT 2 AS two")
            .await
            .expect("idle again");
        assert_eq!(sets[0].get_str(0, "two").expect("two"), Some("2"), "{cell}");
        conn.close().await.expect("close");
    }
}
