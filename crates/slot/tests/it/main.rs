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

pub(crate) async fn connect(server: &TestServer, conninfo: &str) -> Connection {
    let config = Config::parse(conninfo).unwrap_or_else(|error| panic!("{conninfo}: {error}"));
    Connection::connect(&config).await.unwrap_or_else(|error| {
        panic!(
            "PostgreSQL {}: connect {conninfo}: {error}",
            server.version()
        )
    })
}
