//! Both backends live in one binary and are chosen per connection at run time.

use pg_walstream_testkit::{AuthUser, servers};
use pg_walstream_transport::conninfo::Config;
use pg_walstream_transport::{Backend, Connection, Transport, TransportError};

#[tokio::test]
async fn both_backends_are_linked_and_selectable_at_run_time() {
    for server in servers() {
        let version = server.version();
        let conninfo = format!(
            "{} sslmode=require replication=database",
            server.conninfo(AuthUser::Scram, "postgres")
        );
        let config = Config::parse(&conninfo).unwrap();
        let mut systems = Vec::new();
        for backend in [Backend::Native, Backend::Libpq] {
            assert_eq!(
                backend.is_available(),
                cfg!(feature = "libpq") || backend == Backend::Native
            );
            match Connection::connect_with(&config, backend).await {
                Ok(mut connection) => {
                    assert_eq!(connection.backend(), backend, "PG {version}");
                    assert!(
                        connection.is_tls(),
                        "PG {version} {backend:?}: sslmode=require"
                    );
                    let sets = connection.simple_query("IDENTIFY_SYSTEM").await.unwrap();
                    systems.push(sets[0].get_str(0, "systemid").unwrap().map(str::to_owned));
                    assert_eq!(
                        connection.server_version_num().map(|n| n / 10_000),
                        Some(version)
                    );
                    connection.close().await.unwrap();
                }
                Err(TransportError::Config(message)) if !backend.is_available() => {
                    assert!(message.contains("libpq"), "{message}");
                }
                Err(error) => panic!("PG {version} {backend:?}: {error}"),
            }
        }
        if cfg!(feature = "libpq") {
            assert_eq!(systems.len(), 2, "PG {version}: both backends connected");
            assert_eq!(
                systems[0], systems[1],
                "PG {version}: same server through both backends"
            );
        }
    }
}
