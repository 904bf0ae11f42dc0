//! `connect_timeout` against a server that accepts TCP and never answers.

use std::time::{Duration, Instant};

use pg_walstream_transport::TransportError;
use tokio::net::TcpListener;

use crate::support::connect;

#[tokio::test]
async fn stalled_server_hits_connect_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let accepted = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket); // keep it open, never answer
        }
    });
    for mode in ["disable", "prefer", "require"] {
        let started = Instant::now();
        let ci = format!(
            "host=127.0.0.1 port={port} user=nobody dbname=x sslmode={mode} connect_timeout=2"
        );
        let err = connect(&ci).await.expect_err("must time out");
        let elapsed = started.elapsed();
        assert!(
            matches!(err, TransportError::ConnectTimeout { timeout, .. } if timeout == Duration::from_secs(2)),
            "sslmode={mode}: {err:?}"
        );
        // Not before the timeout (the timer guarantees that); no upper bound, which would
        // only measure how busy the machine is.
        assert!(
            elapsed >= Duration::from_secs(2),
            "sslmode={mode}: gave up after {elapsed:?}"
        );
        assert!(err.is_transient(), "sslmode={mode}");
        assert!(
            err.to_string().contains("timeout expired"),
            "sslmode={mode}: {err}"
        );
    }
    accepted.abort();
}
