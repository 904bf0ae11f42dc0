//! A server whose administrator raised `scram_iterations` (PostgreSQL 16+) still works
//! below the client's cap, and the cap is configurable (issue 12, item 8).

use pg_walstream_auth::AuthError;
use pg_walstream_testkit::{AuthUser, TestServer, servers};
use pg_walstream_transport::conninfo::Config;
use pg_walstream_transport::{Backend, Connection, Transport, TransportError};

use crate::support::{backend, chain};

/// Iterations of the private server's SCRAM verifiers: 5× PostgreSQL's default.
const SERVER_ITERATIONS: u32 = 20_480;

#[tokio::test]
async fn raised_scram_iterations_below_the_cap_work_and_above_it_are_refused() {
    for shared in servers() {
        let v = shared.version();
        if v < 16 {
            continue; // scram_iterations exists from PostgreSQL 16 on
        }
        // A private server, so its users' verifiers (created at start) use the raised count.
        let server = tokio::task::spawn_blocking(move || {
            TestServer::builder(v)
                .setting("scram_iterations", &SERVER_ITERATIONS.to_string())
                .start()
        })
        .await
        .expect("join")
        .unwrap_or_else(|e| panic!("PG {v}: private server: {e}"));
        let ci = format!(
            "{} sslmode=require",
            server.conninfo(AuthUser::Scram, "postgres")
        );
        let mut config = Config::parse(&ci).expect("conninfo");
        let mut conn = Connection::connect_with(&config, backend())
            .await
            .unwrap_or_else(|e| panic!("PG {v}: {}", chain(&e)));
        conn.simple_query("SELECT 1").await.expect("query");
        conn.close().await.expect("close");
        // The verifier really uses the raised count.
        let verifier: String = server
            .admin("postgres")
            .await
            .query_one(
                "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
                &[&AuthUser::Scram.name()],
            )
            .await
            .expect("verifier")
            .get(0);
        assert!(
            verifier.starts_with(&format!("SCRAM-SHA-256${SERVER_ITERATIONS}:")),
            "PG {v}: {verifier}"
        );

        // A client cap below the server's count refuses before deriving anything. libpq has
        // no cap, so only the native backend enforces it.
        config.max_scram_iterations = SERVER_ITERATIONS - 1;
        match (
            Connection::connect_with(&config, backend()).await,
            backend(),
        ) {
            (Err(error), Backend::Native) => assert!(
                matches!(
                    error,
                    TransportError::Auth(AuthError::ScramIterationsTooHigh {
                        iterations: SERVER_ITERATIONS,
                        max,
                    }) if max == SERVER_ITERATIONS - 1
                ),
                "PG {v}: {error:?}"
            ),
            (Ok(conn), Backend::Libpq) => conn.close().await.expect("close"),
            (other, backend) => panic!("PG {v} {backend:?}: {other:?}"),
        }
        tokio::task::spawn_blocking(move || server.stop())
            .await
            .expect("stop");
    }
}
