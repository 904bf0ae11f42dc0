//! SSL negotiation corner cases: a server that refuses SSLRequest, certificate files read
//! only when TLS is used, unix sockets, several hosts, `sslrootcert=system`.

use std::net::SocketAddr;

use pg_walstream_testkit::{AuthUser, TestServer, servers, unique_name};
use pg_walstream_transport::{Backend, Transport, TransportError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{backend, chain, connect, connect_native};

const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// A relay in front of `target` that answers every SSLRequest with `N`, like a server built
/// without SSL support, and relays everything else.
async fn no_ssl_relay(target: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut first = [0u8; 8];
                if inbound.read_exact(&mut first).await.is_err() {
                    return;
                }
                let Ok(mut outbound) = TcpStream::connect(target).await else {
                    return;
                };
                if first == SSL_REQUEST {
                    if inbound.write_all(b"N").await.is_err() {
                        return;
                    }
                } else if outbound.write_all(&first).await.is_err() {
                    return;
                }
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    });
    addr
}

/// [`no_ssl_relay`] in front of `server`'s TCP port.
async fn no_ssl_relay_for(server: &TestServer) -> SocketAddr {
    let target = format!("{}:{}", server.host(), server.port());
    no_ssl_relay(target.parse().expect("addr")).await
}

// Native backend only: it checks typed TLS/auth errors or settings libpq 15 lacks.
#[tokio::test]
async fn server_without_ssl_follows_sslmode() {
    for server in servers() {
        let v = server.version();
        let db = server.create_database("nossl").await;
        let relay = no_ssl_relay_for(server).await;
        let password = AuthUser::Scram.password().expect("password");
        for (mode, connects) in [
            ("disable", true),
            ("allow", true),
            ("prefer", true),
            ("require", false),
            ("verify-full", false),
        ] {
            let ci = format!(
                "host=127.0.0.1 port={} user={} password={password} dbname={db} sslmode={mode} sslrootcert='{}'",
                relay.port(),
                AuthUser::Scram.name(),
                server.ca_cert_path().display()
            );
            let cell = format!("PG {v}: SSL refused, sslmode={mode}");
            match connect_native(&ci).await {
                Ok(mut conn) if connects => {
                    assert!(!conn.is_tls(), "{cell}");
                    conn.simple_query("SELECT 1").await.expect("query");
                    conn.close().await.expect("close");
                }
                Err(TransportError::SslRefused { .. }) if !connects => {}
                Ok(_) => panic!("{cell}: connected"),
                Err(e) => panic!("{cell}: {}", chain(&e)),
            }
        }
    }
}

// Native backend only: the typed file error is the native backend's.
#[tokio::test]
async fn certificate_files_are_read_only_once_a_server_accepts_tls() {
    let dir = std::env::temp_dir().join(unique_name("pgws_roots"));
    std::fs::create_dir_all(&dir).expect("create directory");
    let garbage = dir.join("root.crt");
    std::fs::write(&garbage, "not a certificate\n").expect("write root file");
    for server in servers() {
        let v = server.version();
        let db = server.create_database("lazytls").await;
        let relay = no_ssl_relay_for(server).await;
        let password = AuthUser::Scram.password().expect("password");
        let conninfo = |port: u16, mode: &str| {
            format!(
                "host=127.0.0.1 port={port} user={} password={password} dbname={db} sslmode={mode} sslrootcert='{}'",
                AuthUser::Scram.name(),
                garbage.display()
            )
        };
        // A server that refuses SSL: the unreadable root file is never opened (as libpq).
        for mode in ["allow", "prefer"] {
            let cell = format!("PG {v}: SSL refused, sslmode={mode}");
            let mut conn = connect_native(&conninfo(relay.port(), mode))
                .await
                .unwrap_or_else(|e| panic!("{cell}: {}", chain(&e)));
            assert!(!conn.is_tls(), "{cell}");
            conn.simple_query("SELECT 1").await.expect("query");
            conn.close().await.expect("close");
        }
        // A server that accepts it: the file is read then, and its error names it.
        let cell = format!("PG {v}: SSL accepted, sslmode=prefer");
        let err = connect_native(&conninfo(server.port(), "prefer"))
            .await
            .expect_err("an unreadable root file must not be skipped");
        assert!(
            matches!(&err, TransportError::TlsFile { what: "root certificate file", path, .. }
                if *path == garbage.display().to_string()),
            "{cell}: {err:?}"
        );
    }
    std::fs::remove_dir_all(&dir).expect("remove directory");
}

#[tokio::test]
async fn unix_socket_never_uses_tls() {
    for server in servers() {
        let v = server.version();
        for mode in ["disable", "prefer", "require"] {
            let ci = format!(
                "host='{}' port={} user=postgres dbname=postgres sslmode={mode}",
                server.socket_dir().display(),
                server.port()
            );
            let mut conn = connect(&ci)
                .await
                .unwrap_or_else(|e| panic!("PG {v} sslmode={mode}: {}", chain(&e)));
            assert!(
                !conn.is_tls(),
                "PG {v}: libpq ignores sslmode on unix sockets"
            );
            assert!(conn.is_unix_socket(), "PG {v} sslmode={mode}");
            let sets = conn
                .simple_query("SELECT current_user")
                .await
                .expect("query");
            assert_eq!(
                sets[0].rows()[0].get_str(0).expect("user"),
                Some("postgres")
            );
            let token = conn.cancel_token().expect("key data");
            token.cancel().await.expect("cancel over the unix socket");
            conn.close().await.expect("close");
        }
        let tcp = format!(
            "{} sslmode=disable",
            server.conninfo(AuthUser::Scram, "postgres")
        );
        let conn = connect(&tcp)
            .await
            .unwrap_or_else(|e| panic!("PG {v} over TCP: {}", chain(&e)));
        assert!(!conn.is_unix_socket(), "PG {v}: {tcp}");
        conn.close().await.expect("close");
    }
}

#[tokio::test]
async fn later_hosts_are_tried_when_earlier_ones_fail() {
    // A port nothing listens on: bind, note the port, close.
    let dead_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    for server in servers() {
        let v = server.version();
        let db = server.create_database("multihost").await;
        let ci = format!(
            "host=127.0.0.1,localhost port={dead_port},{} user={} password={} dbname={db} sslmode=require",
            server.port(),
            AuthUser::Scram.name(),
            AuthUser::Scram.password().expect("password")
        );
        let mut conn = connect(&ci)
            .await
            .unwrap_or_else(|e| panic!("PG {v}: {}", chain(&e)));
        conn.simple_query("SELECT 1").await.expect("query");
        conn.close().await.expect("close");
        let only_dead = format!("host=127.0.0.1 port={dead_port} user=x dbname=x sslmode=disable");
        let err = connect(&only_dead).await.expect_err("nothing listens");
        // Typed on the native backend; libpq gives only its message, classified transient.
        if backend() == Backend::Native {
            assert!(matches!(err, TransportError::Connect { .. }), "{err:?}");
        }
        assert!(err.is_transient(), "{err:?}");
        assert!(
            chain(&err).contains("could not connect") || chain(&err).contains("Connection refused"),
            "{}",
            chain(&err)
        );
    }
}

// Native backend only: it checks typed TLS/auth errors or settings libpq 15 lacks.
#[tokio::test]
async fn system_roots_do_not_trust_the_test_ca() {
    for server in servers() {
        let v = server.version();
        let ci = format!(
            "host=localhost port={} user={} password={} dbname=postgres sslmode=verify-full sslrootcert=system",
            server.port(),
            AuthUser::Scram.name(),
            AuthUser::Scram.password().expect("password")
        );
        let err = connect_native(&ci)
            .await
            .expect_err("the test CA is not a public root");
        assert!(matches!(err, TransportError::Tls { .. }), "PG {v}: {err:?}");
        assert!(
            chain(&err).contains("UnknownIssuer"),
            "PG {v}: {}",
            chain(&err)
        );
    }
}
