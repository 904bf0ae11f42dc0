//! Replication commands against real servers, every version of the run.

mod commands;
mod create;
mod timeline;

use pg_walstream_testkit::{AuthUser, TestServer};
use pg_walstream_transport::conninfo::Config;
use pg_walstream_transport::{Backend, Connection};

/// A replication connection (`replication=database` or `true`) as the scram user.
pub(crate) async fn replication(server: &TestServer, db: &str, replication: &str) -> Connection {
    let conninfo = format!(
        "{} replication={replication} sslmode=disable",
        server.conninfo(AuthUser::Scram, db)
    );
    connect(server, &conninfo).await
}

/// A plain SQL connection as the superuser over the unix socket.
pub(crate) async fn sql(server: &TestServer, db: &str) -> Connection {
    connect(server, &server.admin_conninfo(db)).await
}

/// Connects with the backend named by `PG_WALSTREAM_TEST_BACKEND` (`native`, the default, or
/// `libpq`): `cargo xtask test` runs this suite once per backend.
pub(crate) async fn connect(server: &TestServer, conninfo: &str) -> Connection {
    let config = Config::parse(conninfo).unwrap_or_else(|error| panic!("{conninfo}: {error}"));
    let backend: Backend = std::env::var("PG_WALSTREAM_TEST_BACKEND")
        .unwrap_or_else(|_| "native".into())
        .parse()
        .expect("PG_WALSTREAM_TEST_BACKEND is native or libpq");
    let connection = Connection::connect_with(&config, backend)
        .await
        .unwrap_or_else(|error| {
            panic!(
                "PostgreSQL {} ({backend:?}): connect {conninfo}: {error}",
                server.version()
            )
        });
    assert_eq!(connection.backend(), backend);
    connection
}
