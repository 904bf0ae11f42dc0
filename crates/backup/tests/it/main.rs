//! Base backups of real servers, every version of the run, restored and compared.

mod errors;
mod incremental;
mod restore;

use pg_walstream_testkit::{AuthUser, TestServer, servers};
use pg_walstream_transport::conninfo::Config;
use pg_walstream_transport::{Backend, Connection};

/// The versions of this run (the shared servers'), for tests on private servers.
pub(crate) fn versions() -> Vec<u32> {
    servers().iter().map(TestServer::version).collect()
}

/// The backend named by `PG_WALSTREAM_TEST_BACKEND` (`native`, the default, or `libpq`):
/// `cargo xtask test` runs this suite once per backend.
pub(crate) fn backend() -> Backend {
    std::env::var("PG_WALSTREAM_TEST_BACKEND")
        .unwrap_or_else(|_| "native".into())
        .parse()
        .expect("PG_WALSTREAM_TEST_BACKEND is native or libpq")
}

/// A physical replication connection (`replication=true`) as the scram user.
pub(crate) async fn replication(server: &TestServer) -> Connection {
    let conninfo = format!(
        "{} replication=true sslmode=disable",
        server.conninfo(AuthUser::Scram, "postgres")
    );
    connect(server, &conninfo).await
}

pub(crate) async fn connect(server: &TestServer, conninfo: &str) -> Connection {
    let config = Config::parse(conninfo).unwrap_or_else(|error| panic!("{conninfo}: {error}"));
    let backend = backend();
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
