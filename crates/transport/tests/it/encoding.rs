//! Both backends talk UTF-8 whatever the database encoding, and neither lets `PG*`
//! variables outside the parsed configuration change the session (issue 12, item 7).

use std::process::Command;

use pg_walstream_testkit::{AuthUser, servers, unique_name};
use pg_walstream_transport::conninfo::{Config, ConnInfoError};
use pg_walstream_transport::{Backend, Connection, Transport, TransportError};

use crate::support::{backend, chain};

#[tokio::test]
async fn a_latin1_database_returns_utf8_text() {
    for server in servers() {
        let v = server.version();
        let db = unique_name("latin1");
        let admin = server.admin("postgres").await;
        admin
            .batch_execute(&format!(
                "CREATE DATABASE {db} ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
            ))
            .await
            .expect("create LATIN1 database");
        // tokio-postgres speaks UTF-8; the server stores the text as LATIN1.
        server
            .admin(&db)
            .await
            .batch_execute(
                "CREATE TABLE t(v text); INSERT INTO t VALUES ('café ñandú'); GRANT SELECT ON t TO PUBLIC",
            )
            .await
            .expect("setup");
        for replication in [None, Some("database")] {
            let cell = format!("PG {v}: replication={replication:?}");
            let ci = match replication {
                Some(r) => format!(
                    "{} sslmode=disable replication={r}",
                    server.conninfo(AuthUser::Scram, &db)
                ),
                None => format!("{} sslmode=disable", server.conninfo(AuthUser::Scram, &db)),
            };
            let config = Config::parse(&ci).expect("conninfo");
            let mut conn = Connection::connect_with(&config, backend())
                .await
                .unwrap_or_else(|e| panic!("{cell}: {}", chain(&e)));
            assert_eq!(conn.parameter("client_encoding"), Some("UTF8"), "{cell}");
            assert_eq!(conn.parameter("server_encoding"), Some("LATIN1"), "{cell}");
            let sets = conn
                .simple_query("SELECT v, length(v) AS n FROM t")
                .await
                .unwrap_or_else(|e| panic!("{cell}: {}", chain(&e)));
            assert_eq!(
                sets[0].get_str(0, "v").expect("valid UTF-8"),
                Some("café ñandú"),
                "{cell}"
            );
            assert_eq!(sets[0].get_str(0, "n").expect("n"), Some("10"), "{cell}");
            conn.close().await.expect("close");
        }
    }
}

/// The name of the child-process test below, for `--exact`.
const CHILD_TEST: &str = "encoding::environment_child";
/// Tells the child which case to run.
const CHILD_CASE: &str = "PG_WALSTREAM_TEST_ENV_CASE";

/// Runs this test binary again, with `env` added, to execute one [`environment_child`] case:
/// environment variables are process-wide, so they cannot be set in this process while
/// other tests run.
fn run_child(case: &str, env: &[(&str, &str)]) {
    let mut child = Command::new(std::env::current_exe().expect("test binary"));
    child
        .args([CHILD_TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_CASE, case);
    for (name, value) in env {
        child.env(name, value);
    }
    let output = child.output().expect("run the child test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child case {case} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn environment_variables_outside_the_config_have_no_effect() {
    // Settings libpq would take from the environment although the configuration (parsed
    // from another environment) says nothing of them: neutralised by explicit keywords.
    run_child(
        "neutralised",
        &[
            ("PGCLIENTENCODING", "LATIN1"),
            ("PGGSSENCMODE", "require"),
            ("PGTARGETSESSIONATTRS", "read-only"),
            ("PGSSLCOMPRESSION", "1"),
        ],
    );
    // A setting pg-walstream does not support, given in the environment it parses: an error
    // on both backends, not silently honoured by one and ignored by the other.
    run_child("rejected", &[("PGCLIENTENCODING", "LATIN1")]);
    run_child("rejected-crl", &[("PGSSLCRL", "/nonexistent/root.crl")]);
    // A variable libpq would read and no keyword can neutralise: the libpq backend refuses.
    run_child("unneutralisable", &[("PGSSLCRL", "/nonexistent/root.crl")]);
    // Variables libpq sends as session settings are part of the configuration: both
    // backends apply them.
    run_child(
        "session-settings",
        &[("PGTZ", "America/Lima"), ("PGDATESTYLE", "SQL, DMY")],
    );
}

/// One case of [`environment_variables_outside_the_config_have_no_effect`]; does nothing
/// unless run by it.
#[tokio::test]
async fn environment_child() {
    let Ok(case) = std::env::var(CHILD_CASE) else {
        return;
    };
    let server = &servers()[0];
    let ci = format!(
        "{} sslmode=disable",
        server.conninfo(AuthUser::Scram, "postgres")
    );
    // An environment without any of the variables the parent set.
    let clean = [("USER", "nobody")];
    match case.as_str() {
        "neutralised" => {
            let config = Config::parse_with_env(&ci, &clean).expect("conninfo");
            let mut conn = Connection::connect_with(&config, backend())
                .await
                .unwrap_or_else(|e| panic!("{case}: {}", chain(&e)));
            assert_eq!(conn.parameter("client_encoding"), Some("UTF8"), "{case}");
            let sets = conn
                .simple_query("SELECT pg_is_in_recovery()::text AS r")
                .await
                .expect("query");
            assert_eq!(sets[0].get_str(0, "r").expect("r"), Some("false"));
            conn.close().await.expect("close");
        }
        "rejected" | "rejected-crl" => {
            let error = Config::parse(&ci).expect_err("unsupported setting in the environment");
            let var = if case == "rejected" {
                "PGCLIENTENCODING"
            } else {
                "PGSSLCRL"
            };
            assert!(
                matches!(&error, ConnInfoError::UnsupportedEnvironment { var: v, .. } if *v == var),
                "{error:?}"
            );
            assert!(error.to_string().contains(var), "{error}");
        }
        "unneutralisable" => {
            let config = Config::parse_with_env(&ci, &clean).expect("conninfo");
            match (
                Connection::connect_with(&config, backend()).await,
                backend(),
            ) {
                (Ok(conn), Backend::Native) => conn.close().await.expect("close"),
                (Err(TransportError::Config(message)), Backend::Libpq) => {
                    assert!(message.contains("PGSSLCRL"), "{message}");
                }
                (other, backend) => panic!("{backend:?}: {other:?}"),
            }
        }
        "session-settings" => {
            let config = Config::parse(&ci).expect("conninfo");
            let mut conn = Connection::connect_with(&config, backend())
                .await
                .unwrap_or_else(|e| panic!("{case}: {}", chain(&e)));
            let sets = conn
                .simple_query(
                    "SELECT current_setting('TimeZone') AS tz, current_setting('DateStyle') AS ds",
                )
                .await
                .expect("query");
            assert_eq!(sets[0].get_str(0, "tz").expect("tz"), Some("America/Lima"));
            assert_eq!(sets[0].get_str(0, "ds").expect("ds"), Some("SQL, DMY"));
            conn.close().await.expect("close");
        }
        other => panic!("unknown case {other}"),
    }
}
