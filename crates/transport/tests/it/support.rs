//! Helpers shared by the test modules.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use pg_walstream_transport::conninfo::Config;
use pg_walstream_transport::{Backend, Connection, TransportError};
use tokio::net::{TcpListener, TcpStream};

/// The backend this run of the suite tests: `PG_WALSTREAM_TEST_BACKEND` (`native`, the
/// default, or `libpq`). `cargo xtask test` runs the suite once per backend.
pub(crate) fn backend() -> Backend {
    std::env::var("PG_WALSTREAM_TEST_BACKEND")
        .unwrap_or_else(|_| "native".into())
        .parse()
        .expect("PG_WALSTREAM_TEST_BACKEND is native or libpq")
}

/// Connects to a libpq connection string with the backend under test.
pub(crate) async fn connect(conninfo: &str) -> Result<Connection, TransportError> {
    let config: Config = conninfo
        .parse()
        .unwrap_or_else(|e| panic!("bad test conninfo {conninfo:?}: {e}"));
    let connection = Connection::connect_with(&config, backend()).await?;
    assert_eq!(connection.backend(), backend());
    Ok(connection)
}

/// Connects with the native backend, for tests of behaviour only it has (e.g. direct TLS with
/// a libpq older than 17, typed TLS errors).
pub(crate) async fn connect_native(conninfo: &str) -> Result<Connection, TransportError> {
    let config: Config = conninfo
        .parse()
        .unwrap_or_else(|e| panic!("bad test conninfo {conninfo:?}: {e}"));
    Connection::connect(&config).await
}

/// The error and its whole `source()` chain, as a user would see it logged.
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Whether psql 15 accepts the connection (`Some(true)`), refuses it (`Some(false)`), or is not
/// installed (`None`). Used to cross-check the expected table against libpq itself.
pub(crate) fn psql_accepts(conninfo: &str, command: &str) -> Option<bool> {
    let psql = Path::new("/usr/lib/postgresql/15/bin/psql");
    if !psql.exists() {
        return None;
    }
    let output = Command::new(psql)
        .args(["-X", "-A", "-t", "-w", "-d", conninfo, "-c", command])
        .env_remove("PGSSLMODE")
        .env("HOME", "/nonexistent")
        .output()
        .ok()?;
    Some(output.status.success())
}

/// A TCP relay listening on `bind` (e.g. `127.0.0.2:0`) that forwards every connection to
/// `target`: reaches the server under an address its certificate does not name.
pub(crate) async fn relay(bind: &str, target: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind(bind).await.expect("bind relay");
    let addr = listener.local_addr().expect("relay address");
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    addr
}
