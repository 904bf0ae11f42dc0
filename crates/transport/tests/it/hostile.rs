//! Hostile peers that are not PostgreSQL: a tokio listener in the test plays a server that
//! misbehaves before authentication completes (issue 12, item 11).

use pg_walstream_transport::{Backend, TransportError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::{backend, chain, connect};

/// Reads one untagged startup-phase message (length, then body) from `socket`.
async fn read_startup(socket: &mut tokio::net::TcpStream) -> Vec<u8> {
    let len = socket.read_u32().await.expect("startup length") as usize;
    let mut body = vec![0; len - 4];
    socket.read_exact(&mut body).await.expect("startup body");
    body
}

/// A peer that answers the startup message with the header of a 1 GiB ErrorResponse plus a
/// little of its body, then closes. A client that believes the header waits for the rest (and
/// reserves room for it) and then sees only "connection closed"; libpq refuses any
/// ErrorResponse over 30000 bytes before authentication, and so must we.
#[tokio::test]
async fn huge_error_response_before_authentication_is_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let peer = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("accept");
        let startup = read_startup(&mut socket).await;
        // Protocol 3.0: the client did send a StartupMessage.
        assert_eq!(&startup[..4], &[0, 3, 0, 0]);
        let mut message = vec![b'E'];
        message.extend_from_slice(&(1u32 << 30).to_be_bytes());
        message.extend_from_slice(b"SFATAL\0VFATAL\0C28000\0M");
        message.extend_from_slice(&[b'x'; 4096]);
        socket.write_all(&message).await.expect("write");
        socket.shutdown().await.expect("shutdown");
        // Hold the socket until the client has given up.
        let mut rest = Vec::new();
        let _ = socket.read_to_end(&mut rest).await;
    });
    let ci = format!("host=127.0.0.1 port={port} user=hostile dbname=x sslmode=disable");
    let error = connect(&ci)
        .await
        .expect_err("a 1 GiB pre-auth ErrorResponse is refused");
    match backend() {
        Backend::Native => assert!(
            matches!(
                error,
                TransportError::Protocol(pg_walstream_transport::message::MessageError::TooLarge {
                    tag: b'E',
                    len: 1_073_741_824,
                })
            ),
            "{error:?}: {}",
            chain(&error)
        ),
        // libpq reports the oversized error as text (it treats it as a pre-3.0 error).
        _ => assert!(
            matches!(error, TransportError::Libpq(_) | TransportError::Server(_)),
            "{error:?}"
        ),
    }
    peer.await.expect("peer task");
}
