//! Connections that must fail: typed errors, understandable messages, no leaked password.

use std::fmt::Write as _;

use pg_walstream_auth::AuthError;
use pg_walstream_testkit::{AuthUser, TestServer, servers};
use pg_walstream_transport::{SqlState, Transport, TransportError};

use crate::support::{chain, connect, connect_native, relay};

/// Asserts that neither `Display` (with sources) nor `Debug` of `error` contains `secret`.
fn assert_no_leak(error: &TransportError, secret: &str, cell: &str) {
    let display = chain(error);
    let debug = format!("{error:?}");
    assert!(
        !display.contains(secret),
        "{cell}: password in Display: {display}"
    );
    assert!(
        !debug.contains(secret),
        "{cell}: password in Debug: {debug}"
    );
}

fn base(server: &TestServer, user: AuthUser, db: &str) -> String {
    format!(
        "host=localhost port={} user={} dbname={db} replication=database sslrootcert='{}'",
        server.port(),
        server.user_name(user),
        server.ca_cert_path().display()
    )
}

#[tokio::test]
async fn wrong_password_is_a_typed_server_error_without_the_password() {
    for server in servers() {
        let v = server.version();
        let db = server.create_database("wrongpw").await;
        for user in [AuthUser::Password, AuthUser::Md5, AuthUser::Scram] {
            for mode in ["disable", "require"] {
                let secret = "not-the-Secret-42";
                let ci = format!(
                    "{} sslmode={mode} password={secret}",
                    base(server, user, &db)
                );
                let cell = format!("PG {v}: {user:?} sslmode={mode}");
                let err = connect(&ci).await.expect_err(&cell);
                assert_eq!(
                    err.code(),
                    Some(SqlState::INVALID_PASSWORD),
                    "{cell}: {}",
                    chain(&err)
                );
                assert!(
                    err.to_string().contains("password authentication failed"),
                    "{cell}: {err}"
                );
                assert!(!err.is_transient(), "{cell}");
                assert_no_leak(&err, secret, &cell);
                assert_no_leak(&err, user.password().expect("has a password"), &cell);
            }
        }
    }
}

// Native backend only: it checks typed TLS/auth errors or settings libpq 15 lacks.
#[tokio::test]
async fn wrong_ca_fails_verification() {
    for server in servers() {
        let v = server.version();
        let db = server.create_database("wrongca").await;
        let password = AuthUser::Scram.password().expect("scram password");
        for mode in ["verify-ca", "verify-full"] {
            let ci = format!(
                "host=localhost port={} user={} dbname={db} password={password} sslmode={mode} sslrootcert='{}'",
                server.port(),
                AuthUser::Scram.name(),
                server.certs().untrusted_ca_cert().display()
            );
            let cell = format!("PG {v}: untrusted CA, sslmode={mode}");
            let err = connect_native(&ci).await.expect_err(&cell);
            assert!(matches!(err, TransportError::Tls { .. }), "{cell}: {err:?}");
            let text = chain(&err);
            assert!(
                text.contains("TLS error") && text.contains("certificate"),
                "{cell}: {text}"
            );
            assert_no_leak(&err, password, &cell);
        }
        // `require` does not verify: the same untrusted CA file is irrelevant... except that
        // libpq treats an existing sslrootcert file as a request to verify the chain.
        let ci = format!(
            "host=localhost port={} user={} dbname={db} password={password} sslmode=require sslrootcert='{}'",
            server.port(),
            AuthUser::Scram.name(),
            server.certs().untrusted_ca_cert().display()
        );
        let err = connect_native(&ci)
            .await
            .expect_err("require + root cert file verifies like verify-ca");
        assert!(matches!(err, TransportError::Tls { .. }), "PG {v}: {err:?}");
    }
}

// Native backend only: it checks typed TLS/auth errors or settings libpq 15 lacks.
#[tokio::test]
async fn host_name_mismatch_fails_only_under_verify_full() {
    for server in servers() {
        let v = server.version();
        let db = server.create_database("wronghost").await;
        // 127.0.0.2 reaches the server through a relay, but the certificate names only
        // localhost and 127.0.0.1.
        let target = format!("{}:{}", server.host(), server.port())
            .parse()
            .expect("server address");
        let relay = relay("127.0.0.2:0", target).await;
        let password = AuthUser::Scram.password().expect("scram password");
        let ci = |mode: &str| {
            format!(
                "host=127.0.0.2 port={} user={} dbname={db} password={password} sslmode={mode} sslrootcert='{}'",
                relay.port(),
                AuthUser::Scram.name(),
                server.ca_cert_path().display()
            )
        };
        let err = connect_native(&ci("verify-full"))
            .await
            .expect_err("name mismatch");
        let text = chain(&err);
        assert!(matches!(err, TransportError::Tls { .. }), "PG {v}: {err:?}");
        assert!(text.contains("not valid for name"), "PG {v}: {text}");
        assert_no_leak(&err, password, "verify-full mismatch");
        // `hostaddr` dials the right address, but `host` is what the certificate must name.
        let hostaddr = format!(
            "host=db.invalid hostaddr=127.0.0.1 port={} user={} dbname={db} password={password} sslmode=verify-full sslrootcert='{}'",
            server.port(),
            AuthUser::Scram.name(),
            server.ca_cert_path().display()
        );
        let err = connect_native(&hostaddr)
            .await
            .expect_err("host name not in the certificate");
        assert!(
            chain(&err).contains("not valid for name"),
            "PG {v}: {}",
            chain(&err)
        );
        let conn = connect_native(&ci("verify-ca"))
            .await
            .unwrap_or_else(|e| panic!("PG {v}: verify-ca ignores the name: {}", chain(&e)));
        assert!(conn.is_tls(), "PG {v}");
        conn.close().await.expect("close");
    }
}

#[tokio::test]
async fn missing_client_certificate() {
    for server in servers() {
        let v = server.version();
        let db = server.create_database("nocert").await;
        let ci = format!("{} sslmode=verify-full", base(server, AuthUser::Cert, &db));
        let err = connect(&ci)
            .await
            .expect_err("cert user without certificate");
        assert_eq!(
            err.code(),
            Some(SqlState::INVALID_AUTHORIZATION_SPECIFICATION),
            "PG {v}: {}",
            chain(&err)
        );
        assert!(
            chain(&err).contains("certificate"),
            "PG {v}: {}",
            chain(&err)
        );
    }
}

// Native backend only: it checks typed TLS/auth errors or settings libpq 15 lacks.
#[tokio::test]
async fn channel_binding_require() {
    for server in servers() {
        let v = server.version();
        let db = server.create_database("cbind").await;
        // MD5 cannot bind the channel.
        let md5_pw = AuthUser::Md5.password().expect("md5 password");
        let ci = format!(
            "{} sslmode=require channel_binding=require password={md5_pw}",
            base(server, AuthUser::Md5, &db)
        );
        let err = connect_native(&ci)
            .await
            .expect_err("md5 with channel_binding=require");
        assert!(
            matches!(
                err,
                TransportError::Auth(AuthError::ChannelBindingMethodRefused { .. })
            ),
            "PG {v}: {err:?}"
        );
        assert!(
            chain(&err).contains("channel binding is required"),
            "PG {v}: {}",
            chain(&err)
        );
        assert_no_leak(&err, md5_pw, "md5 channel binding");
        // Trust never authenticates, so nothing is bound either.
        let ci = format!(
            "{} sslmode=require channel_binding=require",
            base(server, AuthUser::Trust, &db)
        );
        let err = connect_native(&ci)
            .await
            .expect_err("trust with channel_binding=require");
        assert!(
            matches!(
                err,
                TransportError::Auth(AuthError::ChannelBindingNotPerformed)
            ),
            "PG {v}: {err:?}"
        );
        // SCRAM without TLS offers no -PLUS.
        let scram_pw = AuthUser::Scram.password().expect("scram password");
        let ci = format!(
            "{} sslmode=disable channel_binding=require password={scram_pw}",
            base(server, AuthUser::Scram, &db)
        );
        let err = connect_native(&ci)
            .await
            .expect_err("scram over plain TCP with channel_binding=require");
        assert!(matches!(err, TransportError::Auth(_)), "PG {v}: {err:?}");
        assert_no_leak(&err, scram_pw, "scram plain channel binding");
        // SCRAM-SHA-256-PLUS over TLS works (the server's final signature is verified).
        let ci = format!(
            "{} sslmode=verify-full channel_binding=require password={scram_pw}",
            base(server, AuthUser::Scram, &db)
        );
        let conn = connect_native(&ci)
            .await
            .unwrap_or_else(|e| panic!("PG {v}: SCRAM-PLUS: {}", chain(&e)));
        assert!(conn.is_tls());
        conn.close().await.expect("close");
    }
}

// Native backend only: it checks typed TLS/auth errors or settings libpq 15 lacks.
#[tokio::test]
async fn require_auth_mismatch() {
    for server in servers() {
        let v = server.version();
        let db = server.create_database("reqauth").await;
        let scram_pw = AuthUser::Scram.password().expect("scram password");
        let cases = [
            (AuthUser::Scram, Some(scram_pw), "md5", false),
            (
                AuthUser::Md5,
                AuthUser::Md5.password(),
                "scram-sha-256",
                false,
            ),
            (
                AuthUser::Password,
                AuthUser::Password.password(),
                "!password",
                false,
            ),
            (AuthUser::Trust, None, "scram-sha-256", false),
            (AuthUser::Scram, Some(scram_pw), "scram-sha-256", true),
            (AuthUser::Trust, None, "none", true),
        ];
        for (user, password, require, ok) in cases {
            let mut ci = format!(
                "{} sslmode=require require_auth={require}",
                base(server, user, &db)
            );
            if let Some(pw) = password {
                write!(ci, " password={pw}").expect("write to String");
            }
            let cell = format!("PG {v}: {user:?} require_auth={require}");
            match connect_native(&ci).await {
                Ok(conn) if ok => conn.close().await.expect("close"),
                Ok(_) => panic!("{cell}: connected"),
                Err(e) if ok => panic!("{cell}: {}", chain(&e)),
                Err(e) => {
                    assert!(
                        matches!(e, TransportError::Auth(AuthError::RequireAuthFailed { .. })),
                        "{cell}: {e:?}"
                    );
                    assert!(
                        chain(&e).contains(require.trim_start_matches('!')),
                        "{cell}: {}",
                        chain(&e)
                    );
                    if let Some(pw) = password {
                        assert_no_leak(&e, pw, &cell);
                    }
                }
            }
        }
    }
}
