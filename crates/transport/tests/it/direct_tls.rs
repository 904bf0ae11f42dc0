//! `sslnegotiation=direct`: TLS without SSLRequest, ALPN `postgresql` (PostgreSQL 17+).

use pg_walstream_testkit::{AuthUser, servers};
use pg_walstream_transport::{Transport, TransportError};

use crate::support::{chain, connect_native};

// Native backend only: it checks typed TLS/auth errors or settings libpq 15 lacks.
#[tokio::test]
async fn direct_tls_works_on_17_and_later_and_fails_cleanly_before() {
    for server in servers() {
        let v = server.version();
        let db = server.create_database("direct").await;
        let ci = format!(
            "host=localhost port={} user={} password={} dbname={db} replication=database sslmode=verify-full sslnegotiation=direct sslrootcert='{}'",
            server.port(),
            AuthUser::Scram.name(),
            AuthUser::Scram.password().expect("scram password"),
            server.ca_cert_path().display()
        );
        let result = connect_native(&ci).await;
        if v >= 17 {
            let mut conn = result.unwrap_or_else(|e| panic!("PG {v}: {}", chain(&e)));
            assert!(conn.is_tls(), "PG {v}");
            let sets = conn
                .simple_query("IDENTIFY_SYSTEM")
                .await
                .expect("query over direct TLS");
            assert_eq!(sets.len(), 1, "PG {v}");
            conn.close().await.expect("close");
        } else {
            let err = result.expect_err("servers before 17 do not speak direct TLS");
            assert!(
                matches!(err, TransportError::DirectTlsRefused { .. }),
                "PG {v}: {err:?}"
            );
            assert!(
                chain(&err).contains("PostgreSQL 17"),
                "PG {v}: {}",
                chain(&err)
            );
        }
    }
}
