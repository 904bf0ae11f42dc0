//! Every server of the run accepts the connections the later tests rely on.

use pg_walstream_testkit::{AuthUser, servers};

use crate::{psql, text};

#[tokio::test]
async fn wal_level_is_logical_and_settings_are_applied() {
    for server in servers() {
        let admin = server.admin("postgres").await;
        for (name, expected) in [
            ("wal_level", "logical"),
            ("ssl", "on"),
            ("max_prepared_transactions", "10"),
            ("max_replication_slots", "200"),
            ("logical_decoding_work_mem", "64kB"),
        ] {
            let row = admin.query_one(&format!("SHOW {name}"), &[]).await.unwrap();
            let value: String = row.get(0);
            assert_eq!(value, expected, "PostgreSQL {}: {name}", server.version());
        }
        let row = admin
            .query_one("SHOW server_version_num", &[])
            .await
            .unwrap();
        let number: String = row.get(0);
        assert_eq!(number.parse::<u32>().unwrap() / 10000, server.version());
    }
}

#[tokio::test]
async fn every_auth_user_opens_logical_and_physical_replication_connections() {
    for server in servers() {
        let db = server.create_database("testkit_repl").await;
        for user in AuthUser::ALL {
            for replication in ["database", "true"] {
                let conninfo = format!("{} replication={replication}", server.conninfo(user, &db));
                let output = psql(server, &conninfo, "IDENTIFY_SYSTEM");
                assert!(
                    output.status.success(),
                    "PostgreSQL {} user {user:?} replication={replication}: {}",
                    server.version(),
                    text(&output)
                );
                let row = String::from_utf8_lossy(&output.stdout);
                let fields: Vec<&str> = row.trim().split('|').collect();
                assert_eq!(fields.len(), 4, "IDENTIFY_SYSTEM row {row:?}");
                let expected_db = if replication == "database" {
                    db.as_str()
                } else {
                    ""
                };
                assert_eq!(
                    fields[3],
                    expected_db,
                    "dbname field on PostgreSQL {}",
                    server.version()
                );
            }
        }
    }
}

#[tokio::test]
async fn authentication_is_really_enforced() {
    for server in servers() {
        let version = server.version();
        let base = |user: AuthUser| server.conninfo(user, "postgres");
        let cases = [
            (
                format!("{} password=wrong", base(AuthUser::Scram)),
                "password authentication failed",
            ),
            (
                format!("{} password=wrong", base(AuthUser::Md5)),
                "password authentication failed",
            ),
            (
                format!("{} password=wrong", base(AuthUser::Password)),
                "password authentication failed",
            ),
            (
                format!("{} sslmode=disable host=127.0.0.1", base(AuthUser::SslOnly)),
                "no pg_hba.conf entry",
            ),
            (
                format!(
                    "{} sslcert=/nonexistent sslkey=/nonexistent",
                    base(AuthUser::Cert)
                ),
                "certificate",
            ),
        ];
        for (conninfo, expected) in cases {
            let output = psql(server, &conninfo, "SELECT 1");
            assert!(
                !output.status.success(),
                "PostgreSQL {version}: {conninfo} must fail"
            );
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(
                stderr.contains(expected),
                "PostgreSQL {version}: {conninfo}: {stderr}"
            );
        }
    }
}

#[tokio::test]
async fn tls_verifies_with_the_generated_ca_only() {
    for server in servers() {
        let version = server.version();
        let ok = psql(
            server,
            &server.conninfo(AuthUser::SslOnly, "postgres"),
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        );
        assert!(ok.status.success(), "PostgreSQL {version}: {}", text(&ok));
        assert_eq!(String::from_utf8_lossy(&ok.stdout).trim(), "t");

        let untrusted = format!(
            "{} sslrootcert={}",
            server.conninfo(AuthUser::SslOnly, "postgres"),
            server.certs().untrusted_ca_cert().display()
        );
        let output = psql(server, &untrusted, "SELECT 1");
        assert!(
            !output.status.success(),
            "PostgreSQL {version}: an untrusted CA must fail"
        );
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("certificate verify failed"),
            "{}",
            text(&output)
        );

        let wrong_name = format!(
            "{} host=wrong.example hostaddr=127.0.0.1",
            server.conninfo(AuthUser::SslOnly, "postgres")
        );
        let output = psql(server, &wrong_name, "SELECT 1");
        assert!(
            !output.status.success(),
            "PostgreSQL {version}: a wrong host name must fail verify-full"
        );
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("does not match host name"),
            "{}",
            text(&output)
        );
    }
}

#[tokio::test]
async fn the_cert_user_logs_in_with_its_certificate_and_no_password() {
    for server in servers() {
        let output = psql(
            server,
            &server.conninfo(AuthUser::Cert, "postgres"),
            "SELECT current_user",
        );
        assert!(
            output.status.success(),
            "PostgreSQL {}: {}",
            server.version(),
            text(&output)
        );
        assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "cert_user");
        assert!(
            !server
                .conninfo(AuthUser::Cert, "postgres")
                .contains("password")
        );
    }
}
