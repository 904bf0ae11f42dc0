//! Every test user × sslmode × replication mode succeeds or fails exactly as libpq does.

use std::fmt::Write as _;

use pg_walstream_testkit::{AuthUser, TestServer, servers};
use pg_walstream_transport::{SqlState, Transport};

use crate::support::{chain, connect, psql_accepts};

/// What libpq does for one cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Connected without TLS.
    Plain,
    /// Connected with TLS.
    Tls,
    /// Refused by the server's pg_hba.conf (SQLSTATE 28000).
    Refused,
}
use Outcome::{Plain, Refused, Tls};

const MODES: [&str; 6] = [
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];

/// libpq's behaviour, per user, for the sslmodes in [`MODES`] order. `allow` tries plain first
/// and retries with TLS when the server rejects the plain session; `prefer` tries TLS first.
/// The hostssl-only and cert users are rejected on plain connections.
const EXPECTED: [(AuthUser, [Outcome; 6]); 6] = [
    (AuthUser::Trust, [Plain, Plain, Tls, Tls, Tls, Tls]),
    (AuthUser::Password, [Plain, Plain, Tls, Tls, Tls, Tls]),
    (AuthUser::Md5, [Plain, Plain, Tls, Tls, Tls, Tls]),
    (AuthUser::Scram, [Plain, Plain, Tls, Tls, Tls, Tls]),
    (AuthUser::SslOnly, [Refused, Tls, Tls, Tls, Tls, Tls]),
    (AuthUser::Cert, [Refused, Tls, Tls, Tls, Tls, Tls]),
];

fn conninfo(
    server: &TestServer,
    user: AuthUser,
    db: &str,
    mode: &str,
    replication: &str,
) -> String {
    let mut ci = format!(
        "host=localhost port={} user={} dbname={db} sslmode={mode} replication={replication} sslrootcert='{}'",
        server.port(),
        server.user_name(user),
        server.ca_cert_path().display()
    );
    if let Some(password) = user.password() {
        write!(ci, " password={password}").expect("write to String");
    }
    if user == AuthUser::Cert {
        let (cert, key) = server.client_cert_paths();
        write!(
            ci,
            " sslcert='{}' sslkey='{}'",
            cert.display(),
            key.display()
        )
        .expect("write to String");
    }
    ci
}

#[tokio::test]
async fn user_sslmode_replication_matrix() {
    for server in servers() {
        let v = server.version();
        let db = server.create_database("matrix").await;
        for (user, outcomes) in EXPECTED {
            for (mode, expected) in MODES.into_iter().zip(outcomes) {
                for replication in ["database", "true"] {
                    let ci = conninfo(server, user, &db, mode, replication);
                    let cell = format!("PG {v}: {user:?} sslmode={mode} replication={replication}");
                    if let Some(psql_ok) = psql_accepts(&ci, "IDENTIFY_SYSTEM") {
                        assert_eq!(
                            psql_ok,
                            expected != Refused,
                            "{cell}: the table disagrees with psql 15"
                        );
                    }
                    match (connect(&ci).await, expected) {
                        (Ok(mut conn), Plain | Tls) => {
                            assert_eq!(conn.is_tls(), expected == Tls, "{cell}: TLS in use");
                            let sets = conn
                                .simple_query("IDENTIFY_SYSTEM")
                                .await
                                .unwrap_or_else(|e| panic!("{cell}: {}", chain(&e)));
                            assert_eq!(sets[0].columns()[0], "systemid", "{cell}");
                            assert_eq!(sets[0].command_tag(), "IDENTIFY_SYSTEM", "{cell}");
                            conn.close()
                                .await
                                .unwrap_or_else(|e| panic!("{cell}: close: {}", chain(&e)));
                        }
                        (Err(e), Refused) => {
                            assert_eq!(
                                e.code(),
                                Some(SqlState::INVALID_AUTHORIZATION_SPECIFICATION),
                                "{cell}: {}",
                                chain(&e)
                            );
                            assert!(
                                e.to_string().contains("no pg_hba.conf entry"),
                                "{cell}: {e}"
                            );
                        }
                        (Ok(_), Refused) => panic!("{cell}: connected, libpq is refused"),
                        (Err(e), _) => panic!("{cell}: expected {expected:?}, got {}", chain(&e)),
                    }
                }
            }
        }
    }
}
